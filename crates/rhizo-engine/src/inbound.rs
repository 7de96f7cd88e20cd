//! Inbound `/rhizo/msg/1` frames: decoding and every envelope's signature before the write job
//! ([`Engine::check_frame`], pure CPU: the driver runs it off the database's writer thread),
//! the checks before the changes (recipient, replay window, known sender device, seen cache),
//! then the Welcome / application / commit / receipt paths in one transaction, committed
//! before the signed receipt is returned.
//!
//! ```text
//!  bytes ─▶ size, decode, signatures (check_frame: no database)
//!     ─▶ precheck (recipient, window, sender, seen LRU)
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
    devices::lists::DeviceLists,
    requests,
    rng::EngineRng,
    wire::{error_response, receipt_response, status_of_response},
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
    /// inside `tx`: [`check_frame`](Self::check_frame) then
    /// [`handle_checked`](Self::handle_checked) in one call (the driver runs the check before
    /// queueing the job instead, off the database's writer thread).
    pub fn handle_frame(&self, tx: &mut Tx<'_>, payload: &[u8], now: i64) -> Inbound {
        self.handle_checked(tx, self.check_frame(payload), now)
    }

    /// The work on an inbound frame that needs no database: decoding it and verifying every
    /// envelope's signature. Pure CPU (an Ed25519 verification per envelope), so the driver
    /// runs it before the frame's write job; a frame that fails here is answered with an
    /// error, and nothing is stored or signed for.
    pub fn check_frame(&self, payload: &[u8]) -> CheckedFrame {
        if crate::groups::relay::is_relay_frame(payload) {
            CheckedFrame {
                batch: false,
                relay: Some(payload.to_vec()),
                checked: Ok(Vec::new()),
            }
        } else if is_batch_frame(payload) {
            CheckedFrame {
                batch: true,
                relay: None,
                checked: check_batch(payload),
            }
        } else {
            CheckedFrame {
                batch: false,
                relay: None,
                checked: check_bare(payload).map(|message| vec![message]),
            }
        }
    }

    /// Applies a [`checked`](Self::check_frame) frame at `now` inside `tx` (a job of the
    /// database's group commit: the driver returns the response only after that commit).
    /// What the frame changes sits in savepoints of `tx`; the loaded conversations and the
    /// seen-set cache follow only once it committed ([`Tx::after_commit`]).
    pub fn handle_checked(&self, tx: &mut Tx<'_>, frame: CheckedFrame, now: i64) -> Inbound {
        let context = Context {
            me: &self.me,
            mls_device: &self.mls_device,
            conversations: &self.conversations,
            seen: &self.seen,
            health: &self.agent_health,
            rng: &self.rng,
        };
        let envelopes = frame.envelopes();
        let received = match (frame.relay, frame.batch, frame.checked) {
            // A relay frame (member-relayed group fan-out): its envelope, and a job to forward
            // it (its signature is checked in the job, as the frame is decoded there).
            (Some(raw), _, _) => self.receive_relayed(tx, &raw, now),
            (None, _, Err(refused)) => refused,
            (None, true, Ok(messages)) => apply_batch(tx, &context, messages, now),
            (None, false, Ok(mut messages)) => match messages.pop() {
                Some(message) => apply_bare(tx, &context, message, now),
                None => refuse(ErrorCode::Malformed, "no envelope"),
            },
        };
        // Answers the agent messages of this frame queued (task updates, capability answers)
        // go into the conversations' outboxes in the same commit.
        let agent_queued = self.flush_agent_outbox_safely(tx, now);
        // A receipt or commit in the frame may have resolved what own-device adds wait for.
        self.retry_device_adds_safely(tx, now);
        // A receipt answers each envelope of the batch (an error answers none).
        if frame.batch && received.status.is_some() {
            Counters::add(&self.counters.batches_received, 1);
            Counters::add(&self.counters.batched_envelopes_received, envelopes as u64);
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

/// An inbound frame made ready for its write job by [`Engine::check_frame`]: decoded, and the
/// signature of every envelope verified (or the error response that refuses it).
pub struct CheckedFrame {
    batch: bool,
    /// A relay frame, kept whole: it is decoded and checked in its write job.
    relay: Option<Vec<u8>>,
    /// The verified envelopes in order (one for a bare envelope), or the answer refusing the
    /// frame.
    checked: Result<Vec<Verified>, Received>,
}

impl std::fmt::Debug for CheckedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedFrame")
            .field("batch", &self.batch)
            .field("envelopes", &self.checked.as_ref().map(Vec::len).ok())
            .finish()
    }
}

impl CheckedFrame {
    /// How many envelopes passed the checks (0 for a refused frame).
    pub fn envelopes(&self) -> usize {
        self.checked.as_ref().map_or(0, Vec::len)
    }
}

/// An envelope whose signature verified against the sender device it names. Only
/// [`Verified::check`] makes one, so what reaches [`precheck`] was verified.
pub(crate) struct Verified(SecureMessage);

impl Verified {
    /// Verifies `message`'s signature; the message back when it does not verify.
    pub(crate) fn check(message: SecureMessage) -> Result<Self, Box<SecureMessage>> {
        match message.verify(&message.sender_device) {
            Ok(()) => Ok(Self(message)),
            Err(_) => Err(Box::new(message)),
        }
    }
}

/// A bare envelope decoded and verified, or the error answer (not signed for).
fn check_bare(payload: &[u8]) -> Result<Verified, Received> {
    // Cheap checks first: size and structure, before any signature work.
    let message = SecureMessage::decode(payload).map_err(|e| Received {
        response: error_response(e.code(), &e.to_string(), None),
        events: Vec::new(),
        status: None,
    })?;
    Verified::check(message).map_err(|message| {
        let refused = Some((message.session_id, message.sequence_num));
        let response = error_response(ErrorCode::InvalidSignature, "bad signature", refused);
        Received {
            status: status_of_response(&response),
            response,
            events: Vec::new(),
        }
    })
}

/// A batch frame's envelopes decoded and verified; a frame or an envelope that does not
/// decode, or an envelope whose signature does not verify (which an honest sender never
/// sends), refuses the whole batch: nothing is signed for.
fn check_batch(payload: &[u8]) -> Result<Vec<Verified>, Received> {
    let messages = decode_batch(payload).map_err(|(code, detail)| refuse(code, &detail))?;
    messages
        .into_iter()
        .map(|message| {
            Verified::check(message).map_err(|_| {
                refuse(
                    ErrorCode::InvalidSignature,
                    "an envelope of the batch: bad signature",
                )
            })
        })
        .collect()
}

/// What applying a checked envelope needs from the engine.
pub(crate) struct Context<'a> {
    pub(crate) me: &'a Me,
    pub(crate) mls_device: &'a Device,
    pub(crate) conversations: &'a Arc<ConversationCache>,
    pub(crate) seen: &'a Arc<Mutex<SeenSet<InTransaction>>>,
    pub(crate) health: &'a AgentHealth,
    pub(crate) rng: &'a EngineRng,
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

/// The checks before an envelope's changes, once its signature verified ([`Verified`]: nothing
/// is signed for an envelope whose signature did not; size and the per-peer rate limit were
/// checked before): recipient, replay window, known sender device, and the in-memory seen
/// cache.
pub(crate) fn precheck(
    reader: &Reader<'_>,
    (me, lists): (&Me, &DeviceLists),
    seen: &Mutex<SeenSet<InTransaction>>,
    message: Verified,
    now: i64,
) -> Precheck {
    let Verified(message) = message;
    let Ok(group) = crate::groups::group_of(reader, me, &message) else {
        return Precheck::Error(ErrorCode::Internal, "database");
    };
    // Another device of ours, in a 1:1 conversation with a contact (issue 15).
    let own = group.is_none() && message.sender_id == me.uid && message.recipient_id != me.uid;
    if group.is_none() && message.recipient_id != me.uid && !own {
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
    if own {
        return match own_device_contact(reader, me, &message) {
            Ok(Some(_)) if replayed(seen, &message, now) => {
                Precheck::Status(ReceiptStatus::Rejected(ErrorCode::ReplayDetected))
            }
            Ok(Some(contact)) => Precheck::Ready(Box::new(message), Peer::OwnDevice(contact)),
            Ok(None) => Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender)),
            Err(_) => Precheck::Error(ErrorCode::Internal, "database"),
        };
    }
    // The block list (issue 20): refused before anything is stored or held as a request.
    match crate::manage::blocked(reader, message.sender_id.as_bytes()) {
        Ok(true) => return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender)),
        Ok(false) => {}
        Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
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
            Ok(None) if message.sender_id != me.uid => {
                return match reader.contact_by_uid(message.sender_id.as_bytes()) {
                    // A contact's device we do not know yet (linked since we stored the
                    // contact): its newest device list first; the sender retries.
                    Ok(Some(_)) => newer_device(lists, &message, now),
                    Ok(None) => requests::precheck_request(me, message, false),
                    Err(_) => Precheck::Error(ErrorCode::Internal, "database"),
                };
            }
            Ok(None) => {
                let own = message.sender_id == me.uid
                    && crate::devices::listed_devices_of(reader, me, me.uid.as_bytes())
                        .is_ok_and(|listed| listed.contains(&message.sender_device));
                return requests::precheck_request(me, message, own);
            }
            Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
        },
        Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
    };
    if replayed(seen, &message, now) {
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::ReplayDetected));
    }
    Precheck::Ready(Box::new(message), Peer::Contact(contact))
}

/// An envelope from a device of a stored contact that the contact's stored devices do not
/// name: the driver fetches the contact's newest device list and the sender retries
/// (`SEQUENCE_ERROR`); once that list was fetched (within
/// [`crate::devices::lists::FRESH_MS`]) and still does not name it, refused for good.
fn newer_device(lists: &DeviceLists, message: &SecureMessage, now: i64) -> Precheck {
    let uid = message.sender_id.as_bytes();
    if lists.fresh(uid, now) {
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender));
    }
    lists.want(uid);
    Precheck::Status(ReceiptStatus::Rejected(ErrorCode::SequenceError))
}

/// The contact of an envelope from another device of ours (its `recipient_id`), if the device
/// is one our device list names (not this one) and the recipient is a stored contact.
fn own_device_contact(
    reader: &Reader<'_>,
    me: &Me,
    message: &SecureMessage,
) -> Result<Option<rhizo_store::messaging::Contact>, crate::EngineError> {
    let listed = crate::devices::listed_devices_of(reader, me, me.uid.as_bytes())?;
    if message.sender_device == me.device.public() || !listed.contains(&message.sender_device) {
        return Ok(None);
    }
    Ok(reader.contact_by_uid(message.recipient_id.as_bytes())?)
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
    let context = Context {
        me,
        mls_device,
        conversations,
        seen,
        health,
        rng,
    };
    match check_bare(payload) {
        Ok(message) => apply_bare(tx, &context, message, now),
        Err(refused) => refused,
    }
}

/// Deduplicates, decrypts and stores one verified envelope, in a savepoint of `tx` (the
/// receipt goes back only after `tx` committed).
fn apply_bare(tx: &mut Tx<'_>, context: &Context<'_>, message: Verified, now: i64) -> Received {
    let Context {
        me,
        mls_device,
        conversations,
        seen,
        health,
        rng,
    } = *context;
    let reply = |response: Vec<u8>| Received {
        status: status_of_response(&response),
        response,
        events: Vec::new(),
    };
    let refused = Some((message.0.session_id, message.0.sequence_num));
    let Verified(message) = message;
    let (message, contact) = match precheck(
        tx,
        (me, &conversations.device_lists),
        seen,
        Verified(message.clone()),
        now,
    ) {
        Precheck::Ready(m, c) => (m, c),
        Precheck::Request(m) => {
            let parts = (me, mls_device, &**conversations, health, rng);
            let held = hold_request(tx, parts, &m, now);
            // A re-adding Welcome joined from a stranger: its conversation follows the commit.
            settle_after_commit(tx, conversations, seen, Vec::new());
            return held;
        }
        Precheck::Status(status) => return receipted(me, &[(&message, status)], now, Vec::new()),
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
        Ok(events) => receipted(me, &[(&message, ReceiptStatus::Delivered)], now, events),
        // The transaction rolled back: nothing was stored, the seen-set is unchanged.
        Err(Reject::Code(code)) => {
            debug!(
                code = code.as_str(),
                seq = message.sequence_num,
                "envelope refused"
            );
            let refused = ReceiptStatus::Rejected(code);
            receipted(me, &[(&message, refused)], now, Vec::new())
        }
        Err(Reject::Store(e)) => {
            warn!(error = %e, "storing an incoming message failed");
            reply(error_response(ErrorCode::Internal, "storage", refused))
        }
    }
}

/// [`apply_batch`] for a batch frame's bytes (checked here first).
#[cfg(test)]
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
    let context = Context {
        me,
        mls_device,
        conversations,
        seen,
        health,
        rng,
    };
    match check_batch(payload) {
        Ok(messages) => apply_batch(tx, &context, messages, now),
        Err(refused) => refused,
    }
}

/// Applies a batch frame (see [`EnvelopeBatch`]) whose envelopes all verified
/// ([`check_batch`]: a frame or an envelope that does not decode or verify refuses the whole
/// batch with an error): every envelope is checked as a bare one would be, then all are
/// applied in order in ONE transaction (group commit: one `fsync` for the batch), each inside
/// its own savepoint so a refused envelope changes nothing while the others stand. After a
/// transient refusal the later envelopes are answered `SEQUENCE_ERROR` unprocessed, so nothing
/// overtakes a message the sender will retry. The answer is one signed receipt with an entry
/// per envelope, in order.
fn apply_batch(
    tx: &mut Tx<'_>,
    context: &Context<'_>,
    verified: Vec<Verified>,
    now: i64,
) -> Received {
    let Context {
        me,
        mls_device,
        conversations,
        seen,
        health,
        rng,
    } = *context;
    let messages: Vec<SecureMessage> = verified.iter().map(|v| v.0.clone()).collect();
    let checked: Vec<Precheck> = verified
        .into_iter()
        .map(|m| precheck(tx, (me, &conversations.device_lists), seen, m, now))
        .collect();
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
            receipted(me, &answers, now, applied.events)
        }
        Err(Reject::Code(code)) => refuse(code, "batch refused"),
        Err(Reject::Store(e)) => {
            warn!(error = %e, "storing an incoming batch failed");
            refuse(ErrorCode::Internal, "storage")
        }
    }
}

/// The signed receipt answering `answers`, with the first one's status (none if signing
/// failed: the answer is then an error), without decoding the receipt again.
fn receipted(
    me: &Me,
    answers: &[(&SecureMessage, ReceiptStatus)],
    now: i64,
    events: Vec<Event>,
) -> Received {
    let response = receipt_response(me, answers, now);
    let signed = response.first() == Some(&crate::wire::RESPONSE_RECEIPT);
    Received {
        status: answers
            .first()
            .map(|(_, status)| *status)
            .filter(|_| signed),
        response,
        events,
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
