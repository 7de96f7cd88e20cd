//! Typing indicators (issue 20): "is typing" as an ephemeral MLS message, in 1:1
//! conversations and groups.
//!
//! ```text
//!  sender: POST typing ─▶ driver: hidden? stop ─▶ seal_typing(tx, to, connected, now)
//!     ─▶ no connected device: Offline │ < TYPING_MIN_INTERVAL_MS since the last: TooSoon
//!     │ MAX_TYPING_RUN in a row: TooMany ─▶ else ChatContent.typing sealed (no message row,
//!     outbox entry or mailbox copy) ─▶ commit ─▶ sent once to the connected devices only
//!  receiver: MLS ─▶ ChatContent.typing ─▶ on_typing: not ours, not stale ─▶ Event::Typing
//! ```
//!
//! Nothing about a typing indicator is stored on either side: the sender persists only the
//! conversation's next envelope number (so it is never reused) and the MLS ratchet; the
//! receiver only the envelope's seen-set entry and the MLS ratchet. A device that is not
//! connected when one is sent never gets it, and skips its MLS generation when the next
//! message comes. That gap is bounded: at most [`MAX_TYPING_RUN`] indicators are sealed in a
//! conversation in a row (with no other envelope of ours in between), far below the
//! receivers' MLS bound on skipped generations (1000).

use std::collections::HashMap;
use std::sync::Mutex;

use prost::Message as _;
use rhizo_core::{
    DevicePublicKey, Uid,
    envelope::{MessageType, SecureMessage},
    proto::{ChatContent, Typing},
};
use rhizo_store::{Tx, messaging::Contact};

use crate::{
    Engine, EngineError, Event,
    conversations::{seal, seal_to},
    outbox::{Target, targets_of},
};

/// Shortest time between two typing indicators sent in one conversation.
pub const TYPING_MIN_INTERVAL_MS: i64 = 3_000;
/// Typing indicators sealed in one conversation in a row (no other envelope of ours between
/// them) at most.
pub const MAX_TYPING_RUN: u32 = 100;
/// A typing indicator older than this on arrival (by its bounded send time) is not shown.
pub const TYPING_STALE_MS: i64 = 10_000;
/// Conversations whose last typing indicator is remembered (the sender's rate limit).
pub const MAX_TYPING_CONVERSATIONS: usize = 1024;

/// Where a typing indicator goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypingTo {
    /// The 1:1 conversation with this contact (its UID).
    Contact([u8; 32]),
    /// The group with this session id.
    Group([u8; 16]),
}

/// What [`Engine::seal_typing`] did.
#[derive(Debug, Clone)]
pub enum TypingSeal {
    /// Sealed: send `frame` once to each of `targets` after the transaction committed.
    Sealed {
        /// The envelope (`/rhizo/msg/1` request bytes).
        frame: Vec<u8>,
        /// The connected devices it goes to.
        targets: Vec<Target>,
    },
    /// No device of the conversation is connected: nothing sealed (typing is never stored
    /// for later).
    Offline,
    /// The last indicator in this conversation was less than [`TYPING_MIN_INTERVAL_MS`] ago.
    TooSoon,
    /// [`MAX_TYPING_RUN`] indicators in a row: none until we send something else there.
    TooMany,
    /// No open conversation (not a contact, no session, or not an active group member).
    NoConversation,
}

impl TypingSeal {
    /// Why nothing was sent, as the API says it (`None`: sealed).
    pub fn skipped(&self) -> Option<&'static str> {
        match self {
            Self::Sealed { .. } => None,
            Self::Offline => Some("offline"),
            Self::TooSoon => Some("rate_limited"),
            Self::TooMany => Some("too_many"),
            Self::NoConversation => Some("no_conversation"),
        }
    }
}

/// The sender's memory of its last typing indicators (bounded, in memory only).
#[derive(Debug, Default)]
pub(crate) struct TypingLimiter {
    last: Mutex<HashMap<TypingTo, Sent>>,
}

/// The last typing indicator sealed in a conversation.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: i64,
    seq: u64,
    run: u32,
}

impl TypingLimiter {
    /// Whether an indicator may go to `to` at `now` (rate limit only; nothing is recorded).
    fn check(&self, to: TypingTo, now: i64) -> Result<(), TypingSeal> {
        let Ok(last) = self.last.lock() else {
            return Err(TypingSeal::TooSoon);
        };
        match last.get(&to) {
            Some(s) if now.saturating_sub(s.at) < TYPING_MIN_INTERVAL_MS => {
                Err(TypingSeal::TooSoon)
            }
            _ => Ok(()),
        }
    }

    /// Records an indicator sealed with envelope number `seq`; false (nothing recorded) when
    /// it would be the [`MAX_TYPING_RUN`]+1-th in a row.
    fn record(&self, to: TypingTo, seq: u64, now: i64) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let run = match last.get(&to) {
            // Our previous envelope in this conversation was the previous indicator.
            Some(s) if s.seq.checked_add(1) == Some(seq) => s.run.saturating_add(1),
            _ => 1,
        };
        if run > MAX_TYPING_RUN {
            // Still in the run: the envelope number moves on, the count stays at its bound.
            if let Some(s) = last.get_mut(&to) {
                s.seq = seq;
            }
            return false;
        }
        if !last.contains_key(&to) && last.len() >= MAX_TYPING_CONVERSATIONS {
            let window = now.saturating_sub(TYPING_MIN_INTERVAL_MS);
            last.retain(|_, s| s.at > window && s.run > 1);
            if last.len() >= MAX_TYPING_CONVERSATIONS {
                last.clear();
            }
        }
        last.insert(to, Sent { at: now, seq, run });
        true
    }
}

fn typing_content(now: i64) -> Vec<u8> {
    ChatContent {
        sent_at_ms: crate::ms(now),
        typing: Some(Typing {}),
        ..ChatContent::default()
    }
    .encode_to_vec()
}

impl Engine {
    /// Seals a typing indicator to `to` inside `tx`, for the devices `connected` says this
    /// node is connected to (see the module docs). Send the frame only after `tx` committed,
    /// and only to the returned targets.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails (the job's savepoint is then rolled back).
    pub fn seal_typing(
        &self,
        tx: &mut Tx<'_>,
        to: TypingTo,
        connected: &dyn Fn(&Target) -> bool,
        now: i64,
    ) -> Result<TypingSeal, EngineError> {
        match to {
            TypingTo::Contact(uid) => {
                let out = self.seal_direct_typing(tx, &uid, connected, now);
                if out.is_err() {
                    self.conversations.discard_staged();
                }
                let cache = std::sync::Arc::clone(&self.conversations);
                tx.after_commit(move |committed| {
                    cache.settle(&if committed { Ok(()) } else { Err(()) });
                });
                out
            }
            TypingTo::Group(session) => self.group_job(tx, |tx| {
                self.seal_group_typing(tx, &session, connected, now)
            }),
        }
    }

    fn seal_direct_typing(
        &self,
        tx: &mut Tx<'_>,
        uid: &[u8; 32],
        connected: &dyn Fn(&Target) -> bool,
        now: i64,
    ) -> Result<TypingSeal, EngineError> {
        let Some(contact) = tx.contact_by_uid(uid)? else {
            return Ok(TypingSeal::NoConversation);
        };
        let Some(session) = tx.open_conversation_with(&contact.uid)? else {
            return Ok(TypingSeal::NoConversation);
        };
        let targets: Vec<Target> = targets_of(&contact).into_iter().filter(connected).collect();
        if targets.is_empty() {
            return Ok(TypingSeal::Offline);
        }
        let key = TypingTo::Contact(*uid);
        if let Err(why) = self.typing.check(key, now) {
            return Ok(why);
        }
        let mls = tx.mls().map_err(EngineError::Mls)?;
        let mut conversation = self
            .conversations
            .load(&mls, &session.group_id)
            .map_err(EngineError::Mls)?
            .ok_or(EngineError::Internal("conversation state missing"))?;
        let seq = tx.take_next_seq(&session.session_id)?;
        if !self.typing.record(key, seq, now) {
            return Ok(TypingSeal::TooMany);
        }
        let ciphertext = conversation
            .encrypt(
                &mls,
                &self.mls_device,
                &typing_content(now),
                crate::secs(now),
            )
            .map_err(EngineError::Mls)?;
        let frame = seal(
            &self.me,
            &self.rng,
            &contact,
            &session.session_id,
            seq,
            MessageType::Application,
            ciphertext,
            now,
        )?;
        self.conversations.stage(conversation);
        Ok(TypingSeal::Sealed { frame, targets })
    }

    fn seal_group_typing(
        &self,
        tx: &mut Tx<'_>,
        session: &[u8; 16],
        connected: &dyn Fn(&Target) -> bool,
        now: i64,
    ) -> Result<TypingSeal, EngineError> {
        let Ok(group) = crate::groups::active_group(tx, session) else {
            return Ok(TypingSeal::NoConversation);
        };
        let Some(mut conversation) = self.try_load_group(tx, &group)? else {
            return Ok(TypingSeal::NoConversation);
        };
        let devices =
            crate::groups::other_devices(&crate::groups::roster(&conversation)?, &self.me);
        let mut targets = Vec::new();
        for (device, member) in &devices {
            let Ok(key) = DevicePublicKey::from_bytes(device) else {
                continue;
            };
            targets.extend(crate::groups::member_target(tx, key, member)?);
        }
        targets.retain(|t| connected(t));
        if targets.is_empty() {
            return Ok(TypingSeal::Offline);
        }
        let key = TypingTo::Group(*session);
        if let Err(why) = self.typing.check(key, now) {
            return Ok(why);
        }
        let seq = tx.take_next_seq(&group.session_id)?;
        if !self.typing.record(key, seq, now) {
            return Ok(TypingSeal::TooMany);
        }
        let mls = tx.mls()?;
        let ciphertext = conversation.encrypt(
            &mls,
            &self.mls_device,
            &typing_content(now),
            crate::secs(now),
        )?;
        let frame = seal_to(
            &self.me,
            &self.rng,
            Uid::from_bytes(&group.address),
            &group.session_id,
            seq,
            MessageType::Application,
            ciphertext,
            now,
        )?;
        self.conversations.stage(conversation);
        Ok(TypingSeal::Sealed { frame, targets })
    }
}

/// A typing indicator received from `from` (its UID) in `conversation` (the contact's name,
/// or the group's id): an event unless it is stale. Nothing is stored.
pub(crate) fn on_typing(
    message: &SecureMessage,
    sent_at_ms: u64,
    conversation: String,
    from: &[u8; 32],
    now: i64,
) -> Vec<Event> {
    let sent_at = rhizo_core::seen::bounded_sent_at(sent_at_ms, message.timestamp, crate::ms(now));
    let sent_at = i64::try_from(sent_at).unwrap_or(i64::MAX);
    if now.saturating_sub(sent_at) > TYPING_STALE_MS {
        return Vec::new();
    }
    vec![Event::Typing {
        conversation,
        from: Uid::from_bytes(from).to_string(),
    }]
}

/// The contact a 1:1 typing indicator came from, as [`on_typing`] names it.
pub(crate) fn on_direct_typing(
    message: &SecureMessage,
    sent_at_ms: u64,
    contact: &Contact,
    now: i64,
) -> Vec<Event> {
    on_typing(message, sent_at_ms, contact.name.clone(), &contact.uid, now)
}

#[cfg(test)]
mod tests;
