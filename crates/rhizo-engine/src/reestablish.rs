//! Re-establishing a 1:1 conversation the recipient lost: when the recipient could not open
//! our Welcome (its KeyPackage is gone: `DECRYPTION_FAILED`) or no longer has the conversation
//! (`UNKNOWN_SESSION` once our Welcome was delivered), what had not been delivered is parked
//! instead of failed, and moves, in its original order and as the same rows, into a new
//! conversation made from the contact's fresh KeyPackages. The user does nothing: the messages
//! stay `queued` and then go on to `delivered`.
//!
//! ```text
//!  refusal ─▶ park_or_close: the conversation closes; texts, agent messages (delegations,
//!     updates, cancels, inputs, queries, answers) and profile updates parked (queued, no envelope), due after REESTABLISH_DELAYS_MS[0];
//!     Event::ConversationReestablishing
//!  driver: due_reestablishments(now) ─▶ fetch the contact's KeyPackages again (fresh)
//!     ─▶ reestablish(): a new conversation (its Welcome first), the parked rows encrypted
//!        again in order ─▶ Event::ConversationReestablished
//!     ─▶ or reestablish_failed(): the next attempt after REESTABLISH_DELAYS_MS[n]; after
//!        MAX_REESTABLISH_ATTEMPTS the parked rows fail ─▶ Event::ConversationReestablishFailed
//!  a send to the contact meanwhile (or a conversation the contact started) takes the parked
//!  rows first, so the order holds
//! ```
//!
//! A refusal that means "no" is not re-established: `SESSION_CLOSED` (a declined message
//! request), `UNKNOWN_SENDER` (blocked), `UNEXPECTED_MEMBER`, …; and a contact who lost
//! [`MAX_LOST_CONVERSATIONS_PER_HOUR`] conversations within an hour is not asked for another.

use prost::Message as _;
use rhizo_core::{
    envelope::MessageType,
    proto::{AgentMessage, ChatContent},
};
use rhizo_store::{
    Reader, Tx,
    messaging::{Contact, ConversationRow, MessageRow, MessageState},
};
use tracing::info;

use crate::{
    Engine, EngineError, Event,
    agents::agent_content,
    conversations::{create_conversation, encrypt_application, seal},
    outbox::close_conversation,
};

/// Waits before each attempt at a new conversation: the first lets the recipient republish
/// its KeyPackage bundle (it does within 5 s of a Welcome using one), the others back off;
/// about 10 minutes in all.
pub const REESTABLISH_DELAYS_MS: [i64; MAX_REESTABLISH_ATTEMPTS as usize] =
    [10_000, 30_000, 60_000, 180_000, 300_000];
/// Attempts at a new conversation (each a fresh KeyPackage lookup) before the parked messages
/// fail.
pub const MAX_REESTABLISH_ATTEMPTS: u32 = 5;
/// A contact whose conversations we lost this many times within [`LOST_WINDOW_MS`] is not
/// asked for another: the next loss fails the messages (something is wrong on their side).
pub const MAX_LOST_CONVERSATIONS_PER_HOUR: u32 = 3;
/// The window of [`MAX_LOST_CONVERSATIONS_PER_HOUR`].
const LOST_WINDOW_MS: i64 = 3_600_000;
/// Contacts handled per driver pass.
pub const REESTABLISH_BATCH: usize = 16;
/// Parked messages moved into the new conversation per job (the rest follow in the next
/// pass, the conversation being open by then).
pub const MAX_UNPARK: usize = 256;

/// A contact whose parked messages wait for a new conversation, due now.
#[derive(Debug, Clone)]
pub struct Reestablish {
    /// The contact.
    pub contact: Contact,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// How many messages wait.
    pub messages: u32,
    /// No conversation with the contact is open: the driver fetches its KeyPackages first
    /// (otherwise the messages move into the open one).
    pub needs_key_packages: bool,
}

/// What closing a refused conversation did (see [`park_or_close`]).
#[derive(Debug, Default)]
pub(crate) struct Closing {
    /// Conversations closed (0 or 1).
    pub(crate) closed: u64,
    /// Messages parked for a new conversation, and why.
    pub(crate) parked: Option<(u32, String)>,
}

impl Closing {
    /// The event telling the user, when messages were parked.
    pub(crate) fn event(&self, contact: &str) -> Option<Event> {
        self.parked
            .as_ref()
            .map(|(messages, reason)| Event::ConversationReestablishing {
                contact: contact.to_string(),
                reason: reason.clone(),
                messages: *messages,
            })
    }
}

/// The recipient lost conversation `session` (`why`): it closes, and what waited to go in it
/// is parked for a new conversation; or, when this contact lost too many conversations
/// lately, closed with everything in it failed (`changed` gets the rows that changed state).
pub(crate) fn park_or_close(
    tx: &mut Tx<'_>,
    session: &[u8; 16],
    why: &str,
    now: i64,
    changed: &mut Vec<(i64, MessageState)>,
) -> Result<Closing, EngineError> {
    let Some(conversation) = tx.conversation(session)? else {
        return Ok(Closing::default());
    };
    let lost = tx.conversations_closed_since(&conversation.contact_uid, now - LOST_WINDOW_MS)?;
    if lost >= MAX_LOST_CONVERSATIONS_PER_HOUR {
        let why = format!(
            "{why}; {lost} conversations with this contact were lost within an hour, so no \
             new one is started by itself: send again later"
        );
        let closed = close_conversation(tx, session, &why, now, changed)?;
        return Ok(Closing {
            closed,
            parked: None,
        });
    }
    let error = format!("{why}: a new conversation is being started");
    let retry_at = now + REESTABLISH_DELAYS_MS[0];
    let Some(parked) = tx.park_conversation(session, &error, retry_at, now)? else {
        return Ok(Closing::default());
    };
    info!(
        parked = parked.parked.len(),
        failed = parked.failed.len(),
        "conversation lost by the recipient: its messages wait for a new one"
    );
    changed.extend(parked.failed.iter().map(|id| (*id, MessageState::Failed)));
    changed.extend(parked.requeued.iter().map(|id| (*id, MessageState::Queued)));
    Ok(Closing {
        closed: 1,
        parked: (!parked.parked.is_empty()).then(|| {
            (
                u32::try_from(parked.parked.len()).unwrap_or(u32::MAX),
                why.into(),
            )
        }),
    })
}

impl Engine {
    /// The contacts whose parked messages are due for a new conversation at `now` (at most
    /// [`REESTABLISH_BATCH`]). Only reads.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn due_reestablishments(
        &self,
        reader: &Reader<'_>,
        now: i64,
    ) -> Result<Vec<Reestablish>, EngineError> {
        let mut out = Vec::new();
        for due in reader.parked_due(now, REESTABLISH_BATCH)? {
            let Some(contact) = reader.contact_by_uid(&due.contact_uid)? else {
                continue;
            };
            let needs_key_packages = reader.open_conversation_with(&contact.uid)?.is_none();
            out.push(Reestablish {
                contact,
                attempts: due.attempts,
                messages: due.messages,
                needs_key_packages,
            });
        }
        Ok(out)
    }

    /// Moves the messages parked for `contact` into a conversation with it, in their original
    /// order: the open one, else a new one with the devices whose KeyPackages the driver
    /// fetched (its Welcome first; the first message carries our profile), inside `tx` (a job
    /// of the group commit). Nothing parked: nothing happens.
    ///
    /// # Errors
    ///
    /// If MLS (e.g. a KeyPackage of a device not listed for the contact, or none fetched) or
    /// the database fails; the driver then calls [`Engine::reestablish_failed`].
    pub fn reestablish(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<Event>, EngineError> {
        self.in_job(tx, |tx| {
            if tx.parked_messages(&contact.uid, 1)?.is_empty() {
                return Ok(Vec::new());
            }
            let (session, profile) = match tx.open_conversation_with(&contact.uid)? {
                Some(open) => (open, Vec::new()),
                None => {
                    let row = create_conversation(tx, self, contact, key_packages, now)?;
                    let profile =
                        crate::profiles::own_profile_record(tx, &self.me)?.unwrap_or_default();
                    (row, profile)
                }
            };
            let (moved, mut events) = unpark_into(tx, self, contact, &session, profile, now)?;
            events.push(Event::ConversationReestablished {
                contact: contact.name.clone(),
                messages: moved,
            });
            Ok(events)
        })
    }

    /// An attempt at a new conversation with `contact` failed (`why`: no KeyPackage found, a
    /// bad one, …): the parked messages are tried again later, or, after
    /// [`MAX_REESTABLISH_ATTEMPTS`], fail, inside `tx`.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn reestablish_failed(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        why: &str,
        now: i64,
    ) -> Result<Vec<Event>, EngineError> {
        let attempts = tx
            .parked_messages(&contact.uid, 1)?
            .first()
            .map(|m| m.attempts.saturating_add(1));
        let Some(attempts) = attempts else {
            return Ok(Vec::new());
        };
        if attempts < MAX_REESTABLISH_ATTEMPTS {
            let delay = REESTABLISH_DELAYS_MS[attempts as usize];
            let error = format!(
                "the recipient lost the conversation; starting a new one failed ({why}), \
                 tried again in {} s",
                delay / 1000
            );
            tx.reschedule_parked(&contact.uid, now + delay, &error)?;
            return Ok(Vec::new());
        }
        let error = format!(
            "the recipient lost the conversation and no new one could be started after \
             {attempts} attempts ({why}); send again to try once more"
        );
        let failed = tx.fail_parked(&contact.uid, &error)?;
        info!(
            failed = failed.len(),
            "no new conversation could be started: parked messages failed"
        );
        let mut events: Vec<Event> = failed
            .iter()
            .map(|id| Event::MessageState {
                id: *id,
                contact: contact.name.clone(),
                state: MessageState::Failed,
            })
            .collect();
        events.push(Event::ConversationReestablishFailed {
            contact: contact.name.clone(),
            error,
            messages: u32::try_from(failed.len()).unwrap_or(u32::MAX),
        });
        events.extend(crate::agents::tasks::on_messages_failed(tx, &events, now)?);
        Ok(events)
    }
}

/// Moves the messages parked for `contact` (at most [`MAX_UNPARK`]) into conversation
/// `session`, in order, each encrypted again from what it said (the first carrying `profile`
/// when it is not empty); how many moved, and the events for those that cannot be sent again
/// (they fail). Nothing parked: nothing happens. Used by every send to a contact, so that a
/// new message never overtakes parked ones.
pub(crate) fn unpark_into(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    session: &ConversationRow,
    mut profile: Vec<u8>,
    now: i64,
) -> Result<(u32, Vec<Event>), EngineError> {
    let mut moved = 0u32;
    let mut failed = Vec::new();
    for row in tx.parked_messages(&contact.uid, MAX_UNPARK)? {
        let content = match content_again(tx, engine, &row, &mut profile)? {
            Ok(content) => content,
            Err(why) => {
                if tx.fail_parked_message(row.id, why)? {
                    failed.push(Event::MessageState {
                        id: row.id,
                        contact: contact.name.clone(),
                        state: MessageState::Failed,
                    });
                }
                continue;
            }
        };
        let ciphertext = encrypt_application(tx, engine, contact, session, &content, now)?;
        let seq = tx.take_next_seq(&session.session_id)?;
        let Some(ciphertext) = ciphertext else {
            // Held for a fresh epoch after a restore (crate::restored): sealed once it is there.
            if tx.unpark_held(row.id, &session.session_id, seq, &content)? {
                moved += 1;
            }
            continue;
        };
        let envelope = seal(
            &engine.me,
            &engine.rng,
            contact,
            &session.session_id,
            seq,
            MessageType::Application,
            ciphertext,
            now,
        )?;
        if tx.unpark(row.id, &session.session_id, seq, &envelope, now)? {
            moved += 1;
        }
    }
    let mut events = crate::agents::tasks::on_messages_failed(tx, &failed, now)?;
    events.splice(0..0, failed);
    Ok((moved, events))
}

/// What a parked row said, as plaintext to encrypt again: a text from its stored body (with
/// its original time), our current profile for a profile update, a task delegation rebuilt
/// from the task (same task id), any other agent message as it was queued; or why it cannot
/// be rebuilt (a task no longer live, a profile since removed, an agent row from before
/// bodies carried the message).
fn content_again(
    tx: &Tx<'_>,
    engine: &Engine,
    row: &MessageRow,
    profile: &mut Vec<u8>,
) -> Result<Result<Vec<u8>, &'static str>, EngineError> {
    let content = match row.kind.as_str() {
        "text" => ChatContent {
            text: row.body.clone().unwrap_or_default(),
            sent_at_ms: crate::ms(row.sent_at),
            profile: std::mem::take(profile).into(),
            agent: None,
            ..ChatContent::default()
        }
        .encode_to_vec(),
        "profile" => {
            let record = match std::mem::take(profile) {
                p if !p.is_empty() => p,
                _ => match crate::profiles::own_profile_record(tx, &engine.me)? {
                    Some(record) => record,
                    None => return Ok(Err("the profile it sent was removed since")),
                },
            };
            ChatContent {
                sent_at_ms: crate::ms(row.sent_at),
                profile: record.into(),
                ..ChatContent::default()
            }
            .encode_to_vec()
        }
        "agent" => match agent_again(tx, row)? {
            Ok(message) => agent_content(&message, row.sent_at, std::mem::take(profile)),
            Err(why) => return Ok(Err(why)),
        },
        _ => return Ok(Err("not sent again in a new conversation")),
    };
    Ok(Ok(content))
}

/// The agent message an `agent` row carried, to send again: a task delegation rebuilt from
/// its task (only while the task is live); any other message (update, cancel, input, query,
/// answer…) as it was, from the row's body (same task id and update number); or why not.
fn agent_again(
    tx: &Tx<'_>,
    row: &MessageRow,
) -> Result<Result<AgentMessage, &'static str>, EngineError> {
    let summary = row
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
    let delegated = summary
        .as_ref()
        .filter(|s| s["kind"] == "task_delegate")
        .map(|s| s["task"].as_str().and_then(|t| hex::decode(t).ok()));
    match delegated {
        Some(task) => {
            let Some(task) = task.and_then(|t| <[u8; 16]>::try_from(t).ok()) else {
                return Ok(Err("a task delegation that names no task"));
            };
            Ok(crate::agents::tasks::redelegation(tx, &task)?
                .ok_or("only a live task's delegation is sent again in a new conversation"))
        }
        None => Ok(crate::agents::message_of_body(row.body.as_deref())
            .ok_or("an agent message queued before re-sending was supported is not sent again")),
    }
}
