//! Inbound `/rhizo/msg/1` frames: the checks before the transaction (signature, recipient,
//! replay window, known sender device, seen cache), then the Welcome / application / commit /
//! receipt paths in one transaction, committed before the signed receipt is returned.
//!
//! ```text
//!  bytes ─▶ size, decode ─▶ precheck (signature, recipient, window, sender, seen LRU)
//!     ─▶ one tx: seen row, MLS, message rows (a savepoint per envelope of a batch)
//!     ─▶ commit ─▶ signed receipt (one entry per envelope)
//!  a relay frame (member-relayed group fan-out) ─▶ its envelope the same way, then the
//!     forwarding job kept in the same tx ([`crate::groups::relay`])
//! ```

use std::sync::{Arc, Mutex};

use rhizo_core::{
    envelope::{
        EnvelopeBatch, EnvelopeId, ErrorCode, ReceiptStatus, SecureMessage, is_batch_frame,
    },
    seen::{Freshness, SeenSet, SeenStore, check_timestamp},
};
use rhizo_e2e::Device;
use rhizo_store::{Reader, StoreError, Tx};
use tracing::{debug, warn};

mod apply;

pub(crate) use apply::{Parts, Peer, apply_envelope};

use crate::{
    Counters, Engine, Event, Me,
    agents::health::AgentHealth,
    cache::ConversationCache,
    requests,
    rng::EngineRng,
    wire::{error_response, receipt_response, received_entries, status_of_response},
};

/// What the engine answers to one inbound frame.
#[derive(Debug)]
pub struct Inbound {
    /// The response bytes (a signed receipt, or an error).
    pub response: Vec<u8>,
    /// What the user should see.
    pub events: Vec<Event>,
    /// Agent messages this frame queued in the outbox (answers to tasks): the driver wakes
    /// its outbox when there are any.
    pub agent_queued: usize,
    /// Group frames are due now (e.g. this frame made an admin commit a leaver's removal, or
    /// a rollback encrypted our texts again): the driver wakes its outbox.
    pub group_due: bool,
}

impl Engine {
    /// Handles one inbound `/rhizo/msg/1` request (a bare envelope or a batch frame) at `now`
    /// inside `tx` (a job of the database's group commit: the driver returns the response only
    /// after that commit). What the frame changes sits in savepoints of `tx`; the loaded
    /// conversations and the seen-set cache follow only once it committed
    /// ([`Tx::after_commit`]).
    pub fn handle_frame(&self, tx: &mut Tx<'_>, payload: &[u8], now: i64) -> Inbound {
        let batch = is_batch_frame(payload);
        let receive = if batch { receive_batch_in } else { receive_in };
        // A relay frame (member-relayed group fan-out): its envelope, and a job to forward it.
        let received = if crate::groups::relay::is_relay_frame(payload) {
            self.receive_relayed(tx, payload, now)
        } else {
            self.receive_with(receive, tx, payload, now)
        };
        // Answers the agent messages of this frame queued (task updates, capability answers)
        // go into the conversations' outboxes in the same commit.
        let agent_queued = self.flush_agent_outbox_safely(tx, now);
        if batch && let Some(n) = received_entries(&received.response) {
            Counters::add(&self.counters.batches_received, 1);
            Counters::add(&self.counters.batched_envelopes_received, n as u64);
        }
        // One indexed read (at most one row): whether processing queued group frames.
        let group_due = tx.group_outbox_due(now, 1).is_ok_and(|due| !due.is_empty());
        Inbound {
            response: received.response,
            events: received.events,
            agent_queued,
            group_due,
        }
    }
}

/// [`receive_in`] or [`receive_batch_in`].
type ReceiveFn = fn(
    &mut Tx<'_>,
    &Me,
    &Device,
    &Arc<ConversationCache>,
    &Arc<Mutex<SeenSet<InTransaction>>>,
    &AgentHealth,
    &EngineRng,
    &[u8],
    i64,
) -> Received;

impl Engine {
    /// Runs `receive` on `payload` with this engine's parts.
    pub(crate) fn receive_with(
        &self,
        receive: ReceiveFn,
        tx: &mut Tx<'_>,
        payload: &[u8],
        now: i64,
    ) -> Received {
        receive(
            tx,
            &self.me,
            &self.mls_device,
            &self.conversations,
            &self.seen,
            &self.agent_health,
            &self.rng,
            payload,
            now,
        )
    }
}

pub(crate) struct Received {
    pub(crate) response: Vec<u8>,
    pub(crate) events: Vec<Event>,
    /// What the receipt says (None: an error response, nothing was decided).
    pub(crate) status: Option<ReceiptStatus>,
}

/// The answer to an envelope decided before any database change.
pub(crate) enum Precheck {
    /// Passed the cheap checks and the signature: apply it (from a contact, or in a group).
    Ready(Box<SecureMessage>, Peer),
    /// Correctly signed, from someone who is not a contact (or from a device of theirs we do
    /// not know): held as a message request (see [`requests`]).
    Request(Box<SecureMessage>),
    /// Answered with a signed receipt entry of this status (only ever for an envelope whose
    /// signature verified).
    Status(ReceiptStatus),
    /// Answered with an error (not signed for; a bare envelope gets an `ErrorMessage`, a batch
    /// holding one is refused whole).
    Error(ErrorCode, &'static str),
}

/// The checks before the transaction: the signature first (nothing is signed for an envelope
/// whose signature did not verify; size and the per-peer rate limit were checked before),
/// then recipient, replay window, known sender device, and the in-memory seen cache.
pub(crate) fn precheck(
    reader: &Reader<'_>,
    me: &Me,
    seen: &Mutex<SeenSet<InTransaction>>,
    message: SecureMessage,
    now: i64,
) -> Precheck {
    if message.verify(&message.sender_device).is_err() {
        return Precheck::Error(ErrorCode::InvalidSignature, "bad signature");
    }
    let Ok(group) = crate::groups::group_of(reader, me, &message) else {
        return Precheck::Error(ErrorCode::Internal, "database");
    };
    if group.is_none() && message.recipient_id != me.uid {
        // Meant for someone else (or a group we are not in): final, retrying cannot help.
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::Malformed));
    }
    // The replay window (14 days back, 5 minutes ahead).
    if let Err(e) = check_timestamp(message.timestamp, u64::try_from(now).unwrap_or(0)) {
        return Precheck::Status(ReceiptStatus::Rejected(e.code()));
    }
    if let Some(group) = group {
        // A group's members need not be contacts: the roster decides (when applied).
        if replayed(seen, &message, now) {
            return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::ReplayDetected));
        }
        return Precheck::Ready(Box::new(message), Peer::Group(Box::new(group)));
    }
    let contact = match reader.contact_by_uid_device(
        message.sender_id.as_bytes(),
        message.sender_device.as_bytes(),
    ) {
        Ok(Some(c)) => c,
        Ok(None) => match reader.contact_by_device(message.sender_device.as_bytes()) {
            // A contact's device claiming to be someone else.
            Ok(Some(_)) => {
                return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender));
            }
            Ok(None) => return requests::precheck_request(me, message),
            Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
        },
        Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
    };
    if replayed(seen, &message, now) {
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::ReplayDetected));
    }
    Precheck::Ready(Box::new(message), Peer::Contact(contact))
}

/// The LRU of recently accepted ids answers most retransmissions without the database.
fn replayed(seen: &Mutex<SeenSet<InTransaction>>, message: &SecureMessage, now: i64) -> bool {
    let fresh = seen.lock().map_err(|_| ()).and_then(|mut s| {
        s.check(
            &message.id(),
            message.timestamp,
            u64::try_from(now).unwrap_or(0),
        )
        .map_err(|_| ())
    });
    matches!(fresh, Ok(Freshness::Replay))
}

/// After `tx` ended: the conversations it staged are cached if it committed, and the seen-set
/// cache answers for `confirmed` from then on.
fn settle_after_commit(
    tx: &mut Tx<'_>,
    conversations: &Arc<ConversationCache>,
    seen: &Arc<Mutex<SeenSet<InTransaction>>>,
    confirmed: Vec<rhizo_core::envelope::EnvelopeId>,
) {
    let (conversations, seen) = (Arc::clone(conversations), Arc::clone(seen));
    tx.after_commit(move |committed| {
        conversations.settle(&if committed { Ok(()) } else { Err(()) });
        if committed && let Ok(mut s) = seen.lock() {
            for id in &confirmed {
                s.confirm(id);
            }
        }
    });
}

/// Verifies, deduplicates, decrypts and stores one envelope, in a savepoint of `tx` (the
/// receipt goes back only after `tx` committed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn receive_in(
    tx: &mut Tx<'_>,
    me: &Me,
    mls_device: &Device,
    conversations: &Arc<ConversationCache>,
    seen: &Arc<Mutex<SeenSet<InTransaction>>>,
    health: &AgentHealth,
    rng: &EngineRng,
    payload: &[u8],
    now: i64,
) -> Received {
    // Cheap checks first: size and structure, before any signature or KEM work.
    let message = match SecureMessage::decode(payload) {
        Ok(m) => m,
        Err(e) => {
            return Received {
                response: error_response(e.code(), &e.to_string(), None),
                events: Vec::new(),
                status: None,
            };
        }
    };
    let reply = |response: Vec<u8>| Received {
        status: status_of_response(&response),
        response,
        events: Vec::new(),
    };
    let refused = Some((message.session_id, message.sequence_num));
    let (message, contact) = match precheck(tx, me, seen, message.clone(), now) {
        Precheck::Ready(m, c) => (m, c),
        Precheck::Request(m) => {
            let parts = (me, mls_device, &**conversations, health, rng);
            let held = hold_request(tx, parts, &m, now);
            // A re-adding Welcome joined from a stranger: its conversation follows the commit.
            settle_after_commit(tx, conversations, seen, Vec::new());
            return held;
        }
        Precheck::Status(status) => return reply(receipt_response(me, &[(&message, status)], now)),
        Precheck::Error(code, detail) => return reply(error_response(code, detail, refused)),
    };
    let outcome = tx
        .in_savepoint(|tx| {
            apply_envelope(
                tx,
                (me, mls_device, conversations, health, rng),
                &contact,
                &message,
                now,
            )
        })
        .map_err(Reject::from)
        .and_then(|applied| applied);
    if outcome.is_err() {
        conversations.discard_staged();
    }
    if let (Err(Reject::Code(code)), Peer::Group(group)) = (&outcome, &contact) {
        let parts = (me, mls_device, &**conversations, health, rng);
        crate::groups::after_refusal(tx, parts, group, &message, *code, now);
    }
    // Committed (or already stored): from then on the cache answers for it.
    let confirm = matches!(
        outcome,
        Ok(_) | Err(Reject::Code(ErrorCode::ReplayDetected))
    );
    settle_after_commit(
        tx,
        conversations,
        seen,
        confirm.then(|| message.id()).into_iter().collect(),
    );
    match outcome {
        Ok(events) => Received {
            response: receipt_response(me, &[(&message, ReceiptStatus::Delivered)], now),
            events,
            status: Some(ReceiptStatus::Delivered),
        },
        // The transaction rolled back: nothing was stored, the seen-set is unchanged.
        Err(Reject::Code(code)) => {
            debug!(
                code = code.as_str(),
                seq = message.sequence_num,
                "envelope refused"
            );
            reply(receipt_response(
                me,
                &[(&message, ReceiptStatus::Rejected(code))],
                now,
            ))
        }
        Err(Reject::Store(e)) => {
            warn!(error = %e, "storing an incoming message failed");
            reply(error_response(ErrorCode::Internal, "storage", refused))
        }
    }
}

/// Applies a batch frame (see [`EnvelopeBatch`]): every envelope is checked as a bare one would
/// be, then all are applied in order in ONE transaction (group commit: one `fsync` for the
/// batch), each inside its own savepoint so a refused envelope changes nothing while the others
/// stand. After a transient refusal the later envelopes are answered `SEQUENCE_ERROR`
/// unprocessed, so nothing overtakes a message the sender will retry. The answer is one signed
/// receipt with an entry per envelope, in order; a frame or an envelope that does not decode
/// refuses the whole batch with an error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn receive_batch_in(
    tx: &mut Tx<'_>,
    me: &Me,
    mls_device: &Device,
    conversations: &Arc<ConversationCache>,
    seen: &Arc<Mutex<SeenSet<InTransaction>>>,
    health: &AgentHealth,
    rng: &EngineRng,
    payload: &[u8],
    now: i64,
) -> Received {
    let messages = match decode_batch(payload) {
        Ok(messages) => messages,
        Err((code, detail)) => return refuse(code, &detail),
    };
    let checked: Vec<Precheck> = messages
        .iter()
        .map(|m| precheck(tx, me, seen, m.clone(), now))
        .collect();
    // Nothing is signed for an envelope whose signature did not verify: a batch holding one
    // (which an honest sender never sends) is refused whole.
    if let Some(Precheck::Error(code, detail)) = checked
        .iter()
        .find(|c| matches!(c, Precheck::Error(ErrorCode::InvalidSignature, _)))
    {
        return refuse(*code, &format!("an envelope of the batch: {detail}"));
    }
    let outcome = tx.in_savepoint(|tx| -> Result<_, Reject> {
        let mut applied = BatchApplied::default();
        let mut blocked = false;
        for check in &checked {
            if blocked {
                applied
                    .statuses
                    .push(ReceiptStatus::Rejected(ErrorCode::SequenceError));
                // Still looked at (header only) for a member stuck behind its group: the
                // newest envelopes of a batch wait behind an old deferred one.
                if let Precheck::Ready(message, Peer::Group(group)) = check {
                    let parts = (me, mls_device, &**conversations, health, rng);
                    let deferred = ErrorCode::SequenceError;
                    crate::groups::after_refusal(tx, parts, group, message, deferred, now);
                }
                continue;
            }
            let status = apply_checked(
                tx,
                (me, mls_device, conversations, health, rng),
                check,
                now,
                &mut applied,
            )?;
            if let ReceiptStatus::Rejected(code) = status
                && code.is_transient()
            {
                blocked = true;
            }
            applied.statuses.push(status);
        }
        Ok(applied)
    });
    let outcome = outcome.map_err(Reject::from).and_then(|applied| applied);
    if outcome.is_err() {
        conversations.discard_staged();
    }
    let confirmed = outcome
        .as_ref()
        .map(|applied| applied.confirmed.clone())
        .unwrap_or_default();
    settle_after_commit(tx, conversations, seen, confirmed);
    match outcome {
        Ok(applied) => {
            let answers: Vec<(&SecureMessage, ReceiptStatus)> =
                messages.iter().zip(applied.statuses).collect();
            let response = receipt_response(me, &answers, now);
            Received {
                status: status_of_response(&response),
                response,
                events: applied.events,
            }
        }
        Err(Reject::Code(code)) => refuse(code, "batch refused"),
        Err(Reject::Store(e)) => {
            warn!(error = %e, "storing an incoming batch failed");
            refuse(ErrorCode::Internal, "storage")
        }
    }
}

/// A correctly signed envelope from a non-contact: a Welcome to a group (or a piece of one)
/// is held as a group request; anything else as a message request. In a savepoint of `tx`.
fn hold_request(tx: &mut Tx<'_>, parts: Parts<'_>, message: &SecureMessage, now: i64) -> Received {
    let me = parts.0;
    let held = tx
        .in_savepoint(|tx| crate::groups::stranger_welcome(tx, parts, message, now))
        .and_then(|held| held);
    if held.is_err() {
        parts.2.discard_staged();
    }
    match held {
        Ok(Some((status, events))) => Received {
            response: receipt_response(me, &[(message, status)], now),
            events,
            status: Some(status),
        },
        Ok(None) => requests::hold(tx, me, message, now),
        Err(e) => {
            warn!(error = %e, "holding a group request failed");
            refuse(ErrorCode::Internal, "storage")
        }
    }
}

/// The answer that refuses a whole frame with an error (nothing was decided).
fn refuse(code: ErrorCode, detail: &str) -> Received {
    Received {
        response: error_response(code, detail, None),
        events: Vec::new(),
        status: None,
    }
}

/// A batch frame's envelopes, decoded; a frame or an envelope that does not decode refuses
/// the whole batch (with its code and why).
fn decode_batch(payload: &[u8]) -> Result<Vec<SecureMessage>, (ErrorCode, String)> {
    let batch = EnvelopeBatch::decode(payload).map_err(|e| (e.code(), e.to_string()))?;
    batch
        .envelopes
        .iter()
        .map(|bytes| {
            SecureMessage::decode(bytes)
                .map_err(|e| (e.code(), format!("an envelope of the batch: {e}")))
        })
        .collect()
}

/// What a batch's transaction collects: a status per envelope, events, and the ids the seen
/// cache may answer for once it commits.
#[derive(Default)]
struct BatchApplied {
    statuses: Vec<ReceiptStatus>,
    events: Vec<Event>,
    confirmed: Vec<EnvelopeId>,
}

/// Applies one prechecked envelope of a batch in its own savepoint; its receipt status.
fn apply_checked(
    tx: &mut Tx<'_>,
    parts: Parts<'_>,
    check: &Precheck,
    now: i64,
    out: &mut BatchApplied,
) -> Result<ReceiptStatus, Reject> {
    Ok(match check {
        Precheck::Status(status) => *status,
        Precheck::Error(code, _) => ReceiptStatus::Rejected(*code),
        Precheck::Request(message) => {
            let held = tx.in_savepoint(|tx| {
                match crate::groups::stranger_welcome(tx, parts, message, now)? {
                    Some(held) => Ok(held),
                    None => requests::hold_tx(tx, message, now)
                        .map(|(status, event)| (status, event.into_iter().collect())),
                }
            })?;
            match held {
                Ok((status, event)) => {
                    out.events.extend(event);
                    status
                }
                Err(e) => {
                    warn!(error = %e, "holding a message request failed");
                    ReceiptStatus::Rejected(ErrorCode::Internal)
                }
            }
        }
        Precheck::Ready(message, contact) => {
            let applied = tx.in_savepoint(|tx| apply_envelope(tx, parts, contact, message, now))?;
            match applied {
                Ok(new_events) => {
                    out.events.extend(new_events);
                    out.confirmed.push(message.id());
                    ReceiptStatus::Delivered
                }
                Err(Reject::Code(code)) => {
                    if code == ErrorCode::ReplayDetected {
                        out.confirmed.push(message.id());
                    }
                    if let Peer::Group(group) = contact {
                        crate::groups::after_refusal(tx, parts, group, message, code, now);
                    }
                    debug!(
                        code = code.as_str(),
                        seq = message.sequence_num,
                        "envelope refused"
                    );
                    ReceiptStatus::Rejected(code)
                }
                Err(Reject::Store(e)) => {
                    warn!(error = %e, "storing an incoming message failed");
                    ReceiptStatus::Rejected(ErrorCode::Internal)
                }
            }
        }
    })
}

/// The persisted half of the node's seen-set is the `seen` table, written inside the same
/// transaction as the message (`seen_insert`); this store tells [`SeenSet`] nothing, so the set
/// serves as the LRU cache and timestamp window in front of that table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InTransaction;

impl SeenStore for InTransaction {
    type Error = std::convert::Infallible;

    fn contains(&self, _: &EnvelopeId) -> Result<bool, Self::Error> {
        Ok(false)
    }

    fn insert(&mut self, _: &EnvelopeId, _: u64) -> Result<(), Self::Error> {
        Ok(())
    }

    fn prune_before(&mut self, _: u64) -> Result<usize, Self::Error> {
        Ok(0)
    }
}

/// Why an envelope is refused; either way the transaction rolls back.
pub(crate) enum Reject {
    /// Refused with this code (in a signed receipt entry).
    Code(ErrorCode),
    /// The database failed.
    Store(StoreError),
}

impl From<StoreError> for Reject {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Reject {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::Store(StoreError::InvalidInput(e.to_string()))
    }
}
