//! A node started on a database restored from an older copy (protocol.md §13): its MLS state
//! is the copy's, so its own sender ratchets are back at the generations they had then, and
//! the next application messages would use generations it already used after the copy was
//! made. Once the driver says the database was restored ([`note_restored`], stored, so it
//! also holds after another restart), the rekey rule fires in every conversation whose last
//! own commit is older than the restore: a self-update of ours (a fresh epoch, from this
//! device's fresh randomness) goes out before our next application message in it.
//!
//! - In a group our commit is applied at once, so that message is sealed in the fresh epoch.
//! - In a 1:1 conversation the commit is pending until the peer confirms it, so the message
//!   is **held**: its row is queued with its plaintext content and no envelope (rhizo-store
//!   `messaging/held.rs`), in the same transaction as the pending commit, and every later
//!   message in that conversation waits behind it. When the peer's receipt confirms the
//!   commit, the held messages are sealed in the new epoch, in order, and go out. A crash in
//!   between loses nothing and never seals a held message in the old epoch. If the commit is
//!   dropped instead (refused for good, or it lost to the peer's own commit), another
//!   self-update goes out and the messages keep waiting for it.
//!
//! ```text
//!  driver: the database was restored ─▶ note_restored(tx, now): meta fresh_epoch_before = now
//!  our next application message in a conversation ─▶ fresh_epoch_due?
//!     ─▶ our last own commit < fresh_epoch_before: a self-update first
//!        group: applied at once, the message sealed in the new epoch
//!        1:1:   pending; the message held (no envelope), and every later one behind it
//!  1:1: the peer's receipt confirms the commit ─▶ release_held: sealed in the new epoch, due
//! ```

use rhizo_core::envelope::MessageType;
use rhizo_e2e::{Conversation, Device};
use rhizo_store::{
    Reader, Tx,
    messaging::{Contact, ConversationRow, NewMessage},
};
use tracing::debug;

use crate::{
    Engine, EngineError, Me, cache::ConversationCache, conversations::seal, inbound::Parts,
    rng::EngineRng, secs,
};

/// Held messages sealed per conversation per call (the rest follow at the next call: the
/// next receipt, send or sweep).
pub const MAX_RELEASE: usize = 256;
/// Conversations with held messages the hourly sweep looks at.
const SWEEP_SESSIONS: usize = 64;

/// Meta key: unix seconds of the start that found the database restored; every conversation
/// whose last own commit is older needs a fresh epoch before our next application message.
pub const META_FRESH_EPOCH_BEFORE: &str = "fresh_epoch_before";

/// Whether `conversation` needs a fresh epoch of ours before our next application message in
/// it: its last own commit is older than the restore the driver noted.
pub(crate) fn fresh_epoch_due(
    reader: &Reader<'_>,
    conversation: &Conversation,
) -> Result<bool, EngineError> {
    let Some(before) = reader.get_meta(META_FRESH_EPOCH_BEFORE)? else {
        return Ok(false);
    };
    // Seconds: a commit in the same second as the restore was found may be from the copy (a
    // restore right after a commit), so it counts as older. The price: our fresh commit, if made
    // in that same second, counts as older too, so the next message (in a later second) gets
    // one more self-update; after that the last own commit is newer and none follows.
    Ok(before
        .parse::<u64>()
        .is_ok_and(|before| conversation.last_own_commit_at() <= before))
}

/// The driver found the database restored from an older copy at `now` (unix ms): from now on
/// every group gets a self-update of ours before our next application message in it (see the
/// module doc). Stored, so it holds across restarts until each group had its fresh epoch.
///
/// # Errors
///
/// If the database fails.
pub fn note_restored(tx: &mut Tx<'_>, now: i64) -> Result<(), EngineError> {
    Ok(tx.set_meta(META_FRESH_EPOCH_BEFORE, &secs(now).to_string())?)
}

/// What holding and sealing need of the engine (an [`Engine`]'s, or an inbound job's
/// [`Parts`]).
#[derive(Clone, Copy)]
pub(crate) struct Sealer<'a> {
    me: &'a Me,
    mls_device: &'a Device,
    conversations: &'a ConversationCache,
    rng: &'a EngineRng,
}

impl<'a> From<&'a Engine> for Sealer<'a> {
    fn from(engine: &'a Engine) -> Self {
        Self {
            me: &engine.me,
            mls_device: &engine.mls_device,
            conversations: &engine.conversations,
            rng: &engine.rng,
        }
    }
}

impl<'a> From<Parts<'a>> for Sealer<'a> {
    fn from((me, mls_device, conversations, _, rng): Parts<'a>) -> Self {
        Self {
            me,
            mls_device,
            conversations,
            rng,
        }
    }
}

/// Whether an application message in 1:1 conversation `session` must be held for a fresh
/// epoch (see the module doc): a restore needs one, or earlier messages are still held. Then
/// our self-update is queued if none is pending, inside `tx` (`conversation` is changed; the
/// caller stages it).
pub(crate) fn hold_for_fresh_epoch(
    tx: &mut Tx<'_>,
    sealer: Sealer<'_>,
    contact: &Contact,
    session: &ConversationRow,
    conversation: &mut Conversation,
    now: i64,
) -> Result<bool, EngineError> {
    if !fresh_epoch_due(tx, conversation)? && tx.held_messages(&session.session_id, 1)?.is_empty() {
        return Ok(false);
    }
    if !conversation.has_pending_commit() {
        queue_self_update(tx, sealer, contact, &session.session_id, conversation, now)?;
    }
    Ok(true)
}

/// Makes our self-update in `conversation` (pending until the peer confirms it) and queues it.
fn queue_self_update(
    tx: &mut Tx<'_>,
    sealer: Sealer<'_>,
    contact: &Contact,
    session_id: &[u8; 16],
    conversation: &mut Conversation,
    now: i64,
) -> Result<(), EngineError> {
    let mls = tx.mls().map_err(EngineError::Mls)?;
    let commit = conversation
        .self_update(&mls, sealer.mls_device, secs(now))
        .map_err(EngineError::Mls)?;
    let seq = tx.take_next_seq(session_id)?;
    let envelope = seal(
        sealer.me,
        sealer.rng,
        contact,
        session_id,
        seq,
        MessageType::Commit,
        commit,
        now,
    )?;
    let row = NewMessage {
        session_id: *session_id,
        sender_device: *sealer.me.device.public().as_bytes(),
        seq,
        kind: "commit",
        body: None,
        sent_at: now,
    };
    tx.insert_outgoing(&row, &envelope, now)?;
    debug!("restored: a self-update of ours first, messages held until it is confirmed");
    Ok(())
}

/// Seals the messages held in 1:1 conversation `session_id` once our fresh epoch is there (no
/// commit of ours pending, and none due for the restore), in order, and makes them due at
/// `now`; if our commit was dropped meanwhile, queues another self-update and keeps them held.
/// How many it sealed. Inside `tx`; the conversation is staged in the cache.
pub(crate) fn release_held(
    tx: &mut Tx<'_>,
    sealer: Sealer<'_>,
    session_id: &[u8; 16],
    now: i64,
) -> Result<usize, EngineError> {
    let held = tx.held_messages(session_id, MAX_RELEASE)?;
    if held.is_empty() {
        return Ok(0);
    }
    let Some(session) = tx.conversation(session_id)? else {
        return Ok(0);
    };
    let Some(contact) = tx.contact_by_uid(&session.contact_uid)? else {
        return Ok(0);
    };
    let mls = tx.mls().map_err(EngineError::Mls)?;
    let Some(mut conversation) = sealer
        .conversations
        .load(&mls, &session.group_id)
        .map_err(EngineError::Mls)?
    else {
        return Ok(0);
    };
    let released = (|| -> Result<usize, EngineError> {
        if conversation.has_pending_commit() {
            return Ok(0);
        }
        if fresh_epoch_due(tx, &conversation)? {
            // Our commit was dropped (refused for good, or it lost to the peer's): another.
            queue_self_update(tx, sealer, &contact, session_id, &mut conversation, now)?;
            return Ok(0);
        }
        let mut released = 0;
        for message in held {
            let ciphertext = conversation
                .encrypt(&mls, sealer.mls_device, &message.content, secs(now))
                .map_err(EngineError::Mls)?;
            let envelope = seal(
                sealer.me,
                sealer.rng,
                &contact,
                session_id,
                message.seq,
                MessageType::Application,
                ciphertext,
                now,
            )?;
            released += usize::from(tx.release_held(message.id, &envelope, now)?);
        }
        debug!(released, "held messages sealed in our fresh epoch");
        Ok(released)
    })()?;
    sealer.conversations.stage(conversation);
    Ok(released)
}

/// [`release_held`] for every conversation with held messages (the hourly sweep's safety net,
/// for a confirmation that came by a path that did not release them).
pub(crate) fn release_all_held(
    tx: &mut Tx<'_>,
    sealer: Sealer<'_>,
    now: i64,
) -> Result<usize, EngineError> {
    let mut released = 0;
    for session in tx.sessions_with_held(SWEEP_SESSIONS)? {
        released += release_held(tx, sealer, &session, now)?;
    }
    Ok(released)
}

#[cfg(test)]
mod tests;
