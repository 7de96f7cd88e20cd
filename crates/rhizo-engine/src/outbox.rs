//! The outbox: due envelopes → batches per contact ([`Transmit`]) → what each device answered
//! → outcomes written in one transaction → retries with backoff, and the mailbox fallback when
//! no device of the contact answered.
//!
//! ```text
//!  poll_transmits(now) ─▶ per contact, in order: batch frames (≤ MAX_BATCH_ENVELOPES, frame cap)
//!  driver sends each to every device ─▶ on_transmit_result(answers)
//!     some device signed a receipt ─▶ best outcome per envelope ─▶ one relaxed tx
//!     none answered ─▶ TransmitResult::unreachable ─▶ driver stores on mailbox replicas
//!                    ─▶ on_mailbox_result: `stored` (retried directly later) or backoff
//!  next_deadline() ─▶ the driver sleeps until then (or until woken by a new message)
//! ```

use rhizo_core::{
    DevicePublicKey,
    envelope::{
        DeliveryReceipt, EnvelopeBatch, ErrorCode, ErrorMessage, MAX_BATCH_ENVELOPES,
        MAX_BATCH_FRAME_BYTES, ReceiptStatus, SecureMessage,
    },
};
use rhizo_store::{
    Reader, Tx,
    messaging::{Contact, MessageState, OutboxItem},
};
use tracing::{debug, info};

use crate::{
    Counters, Engine, EngineError, Event,
    cache::ConversationCache,
    commits::settle_commit_tx,
    reestablish::{Closing, park_or_close},
    rng::EngineRng,
    wire::{RESPONSE_ERROR, RESPONSE_RECEIPT},
};

/// Outbox entries handled per pass.
pub const OUTBOX_BATCH: usize = 64;
/// Longest retry delay: an unreachable contact is retried at least this often.
const MAX_RETRY_DELAY_MS: i64 = 5 * 60 * 1_000;
/// A stored envelope is retried directly this often, in case the contact is back but has not
/// fetched its mailbox yet.
pub const STORED_RETRY_MS: i64 = 10 * 60 * 1_000;

/// One frame to send: consecutive due envelopes of one contact (a bare envelope, or a batch
/// frame), and the contact's devices to try. Transmits of one contact come in order.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Whom it goes to.
    pub contact: Contact,
    /// The outbox rows it carries, in order.
    pub items: Vec<OutboxItem>,
    /// The request bytes (`/rhizo/msg/1`).
    pub frame: Vec<u8>,
    /// The envelopes as sent (to check each device's receipt against), or why they could not
    /// be read back.
    sent: Result<Vec<SecureMessage>, String>,
    /// The contact is an agent whose heartbeats stopped (liveness `unreachable`): no direct
    /// attempt, the envelopes go straight to its mailbox.
    pub mailbox_only: bool,
    /// Our own other listed devices (issue 15: leaves of every 1:1 conversation too).
    own: Vec<Target>,
}

/// One device of a [`Transmit`]'s contact to send the frame to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The device key (its receipts must be signed by it).
    pub device: DevicePublicKey,
    /// Its libp2p PeerId (text).
    pub peer_id: String,
    /// Addresses known for it.
    pub addrs: Vec<String>,
}

impl Transmit {
    /// The devices to send the frame to: every listed device of the contact (each holds its
    /// own MLS leaf).
    /// None when the contact is an agent whose liveness is `unreachable`
    /// ([`Transmit::mailbox_only`]): the frame goes straight to its mailbox.
    pub fn targets(&self) -> Vec<Target> {
        if self.mailbox_only {
            return Vec::new();
        }
        targets_of(&self.contact)
    }

    /// The same envelopes, one per transmit (bare frames, in order), for a device that takes
    /// no batch frames (a node older than them: it does not speak `/rhizo/msg/2`).
    pub fn singles(&self) -> Vec<Self> {
        if self.items.len() <= 1 {
            return vec![self.clone()];
        }
        self.items
            .iter()
            .filter_map(|item| transmit(&self.contact, std::slice::from_ref(item)).ok())
            .map(|t| Self {
                mailbox_only: self.mailbox_only,
                own: self.own.clone(),
                ..t
            })
            .collect()
    }

    /// Our own other listed devices, which hold leaves of the conversation too (issue 15): the
    /// driver sends them the frame as well, so what we send shows there as ours. Best effort:
    /// their answers do not count for the envelope's state (pass only the contact's devices'
    /// answers to [`Engine::check_answers`]).
    pub fn own_targets(&self) -> &[Target] {
        &self.own
    }
}

/// Every listed device of `contact`, as a target to send a frame to.
pub(crate) fn targets_of(contact: &Contact) -> Vec<Target> {
    contact
        .devices
        .iter()
        .filter_map(|d| {
            Some(Target {
                device: DevicePublicKey::from_bytes(&d.device_pk).ok()?,
                peer_id: d.peer_id.clone(),
                addrs: d.addrs.clone(),
            })
        })
        .collect()
}

/// What one device answered to a [`Transmit`]: its response bytes, or why it could not be
/// reached.
pub type DeviceAnswer = (DevicePublicKey, Result<Vec<u8>, String>);

/// What [`Engine::on_transmit_result`] made of the answers.
#[derive(Debug, Default)]
pub struct TransmitResult {
    /// State changes to show.
    pub events: Vec<Event>,
    /// No device answered with a valid receipt (why): the driver stores each item on the
    /// contact's mailbox replicas and reports with [`Engine::on_mailbox_result`].
    pub unreachable: Option<String>,
}

/// What storing one envelope on the contact's mailbox replicas gave.
#[derive(Debug, Clone, Default)]
pub struct MailboxAttempt {
    /// Replicas that hold it now (`None`: none took it).
    pub stored_on: Option<u32>,
    /// The replicas refused it: a quota for this sender or recipient is full.
    pub quota_full: bool,
    /// Other errors (the first two are shown).
    pub errors: Vec<String>,
}

impl Engine {
    /// The due outbox envelopes at `now`, as frames per contact, in order (a Welcome before
    /// the messages after it). Under load a message costs a fraction of a round trip, a commit
    /// and a signature, while one message alone still goes at once (a batch of one is bare).
    ///
    /// Only reads (the driver runs it on a reader connection, off the writer thread).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn poll_transmits(
        &self,
        reader: &Reader<'_>,
        now: i64,
    ) -> Result<Vec<Transmit>, EngineError> {
        let items = reader.outbox_due(now, OUTBOX_BATCH)?;
        let mut per_contact: Vec<(Contact, Vec<OutboxItem>)> = Vec::new();
        for item in items {
            let Some(contact) = reader.contact_by_uid(&item.contact_uid)? else {
                continue;
            };
            match per_contact.iter_mut().find(|(c, _)| c.uid == contact.uid) {
                Some((_, items)) => items.push(item),
                None => per_contact.push((contact, vec![item])),
            }
        }
        let own = own_targets(reader, &self.me)?;
        let mut out = Vec::new();
        for (contact, mut items) in per_contact {
            in_sequence_order(&mut items);
            let unreachable = self
                .agent_health
                .is_unreachable(&rhizo_core::Uid::from_bytes(&contact.uid), now);
            for chunk in batches(&items) {
                let mut t = transmit(&contact, chunk)?;
                t.mailbox_only = unreachable;
                t.own.clone_from(&own);
                out.push(t);
            }
        }
        Ok(out)
    }

    /// When the next outbox envelope is due (unix ms), if any.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn next_deadline(&self, reader: &Reader<'_>) -> Result<Option<i64>, EngineError> {
        Ok(reader.outbox_next_attempt()?)
    }

    /// Writes what the contact's devices answered to `transmit`, inside `tx`:
    /// [`check_answers`](Self::check_answers) then
    /// [`on_checked_answers`](Self::on_checked_answers) in one call (the driver runs the check
    /// before queueing the job instead, off the database's writer thread).
    ///
    /// # Errors
    ///
    /// If the database fails (the job's savepoint is then rolled back).
    pub fn on_transmit_result(
        &self,
        tx: &mut Tx<'_>,
        transmit: &Transmit,
        answers: Vec<DeviceAnswer>,
        now: i64,
    ) -> Result<TransmitResult, EngineError> {
        self.on_checked_answers(tx, transmit, Self::check_answers(transmit, answers), now)
    }

    /// Reads what the contact's devices answered to `transmit` and verifies their signed
    /// receipts. Pure CPU work (an Ed25519 verification per answer) that needs no database,
    /// so the driver runs it before the write job; only a receipt that verified counts.
    pub fn check_answers(transmit: &Transmit, answers: Vec<DeviceAnswer>) -> CheckedAnswers {
        CheckedAnswers(best_outcomes(transmit, answers))
    }

    /// Writes [checked](Self::check_answers) answers to `transmit`, inside `tx` (a job of the
    /// database's group commit; it need not wait for the disk: lost, it is redone — the
    /// envelope is sent again and answered "already have it"). An envelope is delivered once
    /// any device signed a receipt for it; when none did, [`TransmitResult::unreachable`] says
    /// why and nothing is written (the driver tries the mailbox).
    ///
    /// # Errors
    ///
    /// If the database fails (the job's savepoint is then rolled back).
    pub fn on_checked_answers(
        &self,
        tx: &mut Tx<'_>,
        transmit: &Transmit,
        checked: CheckedAnswers,
        now: i64,
    ) -> Result<TransmitResult, EngineError> {
        if transmit.items.len() > 1 {
            Counters::add(&self.counters.batches_sent, 1);
            Counters::add(
                &self.counters.batched_envelopes_sent,
                transmit.items.len() as u64,
            );
        }
        let outcomes = match checked.0 {
            Ok(outcomes) => outcomes,
            Err(why) => {
                return Ok(TransmitResult {
                    events: Vec::new(),
                    unreachable: Some(why),
                });
            }
        };
        let mut events = self.record_outcomes(tx, transmit, outcomes, now)?;
        // A task whose delegation the agent refused for good ends `failed`.
        events.extend(crate::agents::tasks::on_messages_failed(tx, &events, now)?);
        Ok(TransmitResult {
            events,
            unreachable: None,
        })
    }

    /// Writes what the receipts said: new states (and a confirmed self-update where a commit
    /// was delivered or read), `sent` for what the recipient's node holds as a message
    /// request, a closed conversation where the recipient refused it for good, or a retry for
    /// an envelope refused for now. The conversations it changed are cached once `tx`
    /// committed ([`Tx::after_commit`]).
    fn record_outcomes(
        &self,
        tx: &mut Tx<'_>,
        transmit: &Transmit,
        outcomes: Vec<Outcome>,
        now: i64,
    ) -> Result<Vec<Event>, EngineError> {
        self.note_agent_delivery(transmit, &outcomes, now);
        let updates: Vec<SentUpdate> = transmit
            .items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| SentUpdate::new(item, outcome))
            .collect();
        let outcome = (|| -> Result<_, EngineError> {
            let mut changed = Vec::new();
            let mut closed = 0u64;
            let mut parked = Vec::new();
            let mut settled = Vec::new();
            for update in updates {
                if update.commit_id.is_some() {
                    settled.push(update.session_id);
                }
                let closing =
                    update.apply(tx, &self.conversations, &self.rng, now, &mut changed)?;
                closed += closing.closed;
                parked.extend(closing.event(&transmit.contact.name));
            }
            // A self-update confirmed: what waited for its fresh epoch goes out now.
            for session in settled {
                crate::restored::release_held(tx, self.into(), &session, now)?;
            }
            Ok((changed, closed, parked))
        })();
        if outcome.is_err() {
            self.conversations.discard_staged();
        }
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        let (changed, closed, parked) = outcome?;
        // A commit of ours settled here may be what own-device adds wait for.
        self.retry_device_adds_safely(tx, now);
        Counters::add(&self.counters.conversations_closed, closed);
        Ok(changed
            .into_iter()
            .map(|(id, state)| Event::MessageState {
                id,
                contact: transmit.contact.name.clone(),
                state,
            })
            .chain(parked)
            .collect())
    }

    /// What a transmit's outcomes tell about the contact as an agent: a delivered envelope
    /// means it reads our conversation (its MLS generations caught up, see
    /// [`crate::agents::heartbeat`]); an agent message that failed for good is a failure for
    /// its circuit breaker.
    fn note_agent_delivery(&self, transmit: &Transmit, outcomes: &[Outcome], now: i64) {
        let uid = rhizo_core::Uid::from_bytes(&transmit.contact.uid);
        if outcomes.iter().any(|o| {
            matches!(
                o,
                Outcome::Final(MessageState::Delivered | MessageState::Read, _)
            )
        }) {
            self.agent_health.confirm(&uid);
        }
        let failed_for_good = transmit.items.iter().zip(outcomes).any(|(item, o)| {
            item.kind == "agent"
                && matches!(
                    o,
                    Outcome::Final(MessageState::Failed, _) | Outcome::Closed(_)
                )
        });
        if failed_for_good {
            self.note_agent_outcome(&uid, false, now);
        }
    }

    /// Writes what storing `item` on the contact's mailbox replicas gave (after no device
    /// answered, `why`). Stored → state `stored` (receipts are then final; others are retried
    /// directly after [`STORED_RETRY_MS`]); a replica's `REPLAY_DETECTED` counts as holding
    /// it, never as delivered; otherwise it stays queued with the reason and is retried with
    /// backoff.
    ///
    /// # Errors
    ///
    /// If the database fails. Runs inside `tx` (a job of the database's group commit).
    pub fn on_mailbox_result(
        &self,
        tx: &mut Tx<'_>,
        item: &OutboxItem,
        contact: &Contact,
        why: &str,
        attempt: &MailboxAttempt,
        now: i64,
    ) -> Result<Vec<Event>, EngineError> {
        let id = item.id;
        if !tx.outgoing_in_session(id, &item.session_id)? {
            // Parked meanwhile (the recipient lost the conversation): it waits for a new one.
            return Ok(Vec::new());
        }
        if let Some(replicas) = attempt.stored_on {
            // Receipts are not acknowledged in turn: once a replica holds one, it is done.
            let final_once_stored = matches!(item.kind.as_str(), "read_receipt" | "receipt");
            let next = if final_once_stored {
                rhizo_store::messaging::NO_RETRY
            } else {
                now + STORED_RETRY_MS
            };
            debug!(
                id,
                replicas, "contact offline: envelope stored on mailbox replicas"
            );
            let changed = tx.mark_stored(id, replicas, next, now)?;
            return Ok(changed
                .then(|| Event::MessageState {
                    id,
                    contact: contact.name.clone(),
                    state: MessageState::Stored,
                })
                .into_iter()
                .collect());
        }
        let delay = retry_delay(&self.rng, item.attempts);
        let mut error = format!("no device of {} is reachable ({why})", contact.name);
        if attempt.quota_full {
            error.push_str(
                "; the mailbox replicas refused it: their quota for this sender or recipient \
                 is full (it stays queued and is retried)",
            );
        } else if !attempt.errors.is_empty() {
            error.push_str("; mailbox: ");
            error.push_str(
                &attempt
                    .errors
                    .iter()
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        debug!(id, %error, delay_ms = delay, "delivery failed; will retry");
        tx.record_attempt_failed(id, now + delay, &error)?;
        Ok(Vec::new())
    }
}

/// Puts one contact's due envelopes in the order its devices must read them: each
/// conversation's in sequence order (a Welcome before the messages after it), conversations
/// in the order they first appear. Rows are queued in sequence order, except messages moved
/// into a new conversation ([`crate::reestablish`]): they keep their older ids.
fn in_sequence_order(items: &mut [OutboxItem]) {
    let mut sessions: Vec<[u8; 16]> = Vec::new();
    for item in items.iter() {
        if !sessions.contains(&item.session_id) {
            sessions.push(item.session_id);
        }
    }
    items.sort_by_key(|i| (sessions.iter().position(|s| *s == i.session_id), i.seq));
}

/// The frame for consecutive envelopes of one contact.
fn transmit(contact: &Contact, items: &[OutboxItem]) -> Result<Transmit, EngineError> {
    let sent = items
        .iter()
        .map(|i| SecureMessage::decode(&i.envelope).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>();
    let frame = match items {
        [one] => one.envelope.clone(),
        many => EnvelopeBatch {
            envelopes: many.iter().map(|i| i.envelope.clone().into()).collect(),
        }
        .encode()?,
    };
    Ok(Transmit {
        contact: contact.clone(),
        items: items.to_vec(),
        frame,
        sent,
        mailbox_only: false,
        own: Vec::new(),
    })
}

/// Our other listed devices as targets (their PeerIds from their keys; addresses from the
/// network's routing).
fn own_targets(reader: &Reader<'_>, me: &crate::Me) -> Result<Vec<Target>, EngineError> {
    Ok(
        crate::devices::listed_devices_of(reader, me, me.uid.as_bytes())?
            .into_iter()
            .filter(|d| *d != me.device.public())
            .filter_map(|device| {
                Some(Target {
                    peer_id: crate::contacts::peer_id_of_device(&device)?.to_string(),
                    device,
                    addrs: Vec::new(),
                })
            })
            .collect(),
    )
}

/// The answers to a [`Transmit`] once read and their receipts verified
/// ([`Engine::check_answers`]): an outcome per envelope, or why no device answered validly.
#[derive(Debug)]
pub struct CheckedAnswers(Result<Vec<Outcome>, String>);

/// The best outcome per envelope across the devices that answered with a valid receipt
/// (delivered on one device beats failed on another), or why none did.
fn best_outcomes(transmit: &Transmit, answers: Vec<DeviceAnswer>) -> Result<Vec<Outcome>, String> {
    let sent = transmit.sent.as_ref().map_err(Clone::clone)?;
    if transmit.mailbox_only {
        return Err(
            "the agent is unreachable (its heartbeats stopped): straight to its mailbox".into(),
        );
    }
    let mut last_error = String::from("the contact has no known device");
    let mut best: Option<Vec<Outcome>> = None;
    for (device, answer) in answers {
        match answer.and_then(|response| parse_response(&response, &device, sent)) {
            Ok(result) => {
                best = Some(match best {
                    None => result,
                    Some(current) => current
                        .into_iter()
                        .zip(result)
                        .map(|(a, b)| better_outcome(a, b))
                        .collect(),
                });
            }
            Err(e) => last_error = e,
        }
    }
    best.ok_or(last_error)
}

/// The delay before retry number `attempts + 1` (rhizo-core's backoff, its jitter from `rng`,
/// the engine's generator).
pub(crate) fn retry_delay(rng: &EngineRng, attempts: u32) -> i64 {
    let noise = rng.next_u64();
    let delay =
        rhizo_core::delivery::RetryPolicy::default().backoff(attempts.saturating_add(1), noise);
    i64::try_from(delay).unwrap_or(MAX_RETRY_DELAY_MS)
}

/// One outgoing envelope's outcome, to write (see [`Engine::on_transmit_result`]).
pub(crate) struct SentUpdate {
    id: i64,
    attempts: u32,
    session_id: [u8; 16],
    kind: String,
    /// The commit id, if the envelope is a self-update.
    commit_id: Option<[u8; 32]>,
    outcome: Outcome,
}

impl SentUpdate {
    pub(crate) fn new(item: &OutboxItem, outcome: Outcome) -> Self {
        let commit_id = (item.kind == "commit")
            .then(|| SecureMessage::decode(&item.envelope).ok())
            .flatten()
            .map(|m| rhizo_e2e::commit_id(&m.payload));
        Self {
            id: item.id,
            attempts: item.attempts,
            session_id: item.session_id,
            kind: item.kind.clone(),
            commit_id,
            outcome,
        }
    }

    /// Writes it inside `tx`; pushes changed states on `changed`; returns whether it closed
    /// the conversation (and parked its messages for a new one). An answer for a row that has
    /// moved on (parked, or re-sent in a new conversation) changes nothing.
    pub(crate) fn apply(
        self,
        tx: &mut Tx<'_>,
        conversations: &ConversationCache,
        rng: &EngineRng,
        now: i64,
        changed: &mut Vec<(i64, MessageState)>,
    ) -> Result<Closing, EngineError> {
        let session = self.session_id;
        if !tx.outgoing_in_session(self.id, &session)? {
            return Ok(Closing::default());
        }
        match &self.outcome {
            Outcome::Final(state, error) => {
                let state = *state;
                if tx.advance_message_state(self.id, state, now, error.as_deref())? {
                    changed.push((self.id, state));
                }
                if let Some(commit_id) = self.commit_id {
                    settle_commit_tx(tx, conversations, &session, commit_id, state)?;
                }
                if state == MessageState::Failed && self.kind == "welcome" {
                    // The Welcome was refused for good: nothing in this conversation can
                    // ever be read there. One the recipient could not open (its KeyPackage
                    // is gone) is started anew with fresh KeyPackages; any other refusal
                    // (blocked, unexpected member) stands.
                    if error.as_deref() == Some(refusal(ErrorCode::DecryptionFailed).as_str()) {
                        return park_or_close(tx, &session, WELCOME_NOT_OPENED, now, changed);
                    }
                    let closed = close_conversation(
                        tx,
                        &session,
                        "the recipient refused the conversation's Welcome; send again to start a new one",
                        now,
                        changed,
                    )?;
                    return Ok(Closing {
                        closed,
                        parked: None,
                    });
                }
                Ok(Closing::default())
            }
            Outcome::Held => {
                if tx.mark_held(self.id)? {
                    changed.push((self.id, MessageState::Sent));
                }
                Ok(Closing::default())
            }
            Outcome::Closed(why) => self.fail_and_close(tx, why, now, changed),
            Outcome::Retry(code, why) => {
                // UNKNOWN_SESSION while no Welcome of ours is on its way: the recipient lost
                // (or never had) this conversation, and retrying cannot change that; a new
                // conversation can.
                if *code == Some(ErrorCode::UnknownSession) && !tx.welcome_pending(&session)? {
                    return park_or_close(tx, &session, CONVERSATION_LOST, now, changed);
                }
                let error = format!("the recipient will take it later: {why}");
                let retry_at = now + retry_delay(rng, self.attempts);
                tx.record_attempt_failed(self.id, retry_at, &error)?;
                Ok(Closing::default())
            }
        }
    }

    /// The recipient refused the conversation for good: this row fails with `why` and the
    /// conversation closes; how many conversations it closed (0 or 1).
    fn fail_and_close(
        &self,
        tx: &mut Tx<'_>,
        why: &str,
        now: i64,
        changed: &mut Vec<(i64, MessageState)>,
    ) -> Result<Closing, EngineError> {
        if tx.advance_message_state(self.id, MessageState::Failed, now, Some(why))? {
            changed.push((self.id, MessageState::Failed));
        }
        let closed = close_conversation(tx, &self.session_id, why, now, changed)?;
        Ok(Closing {
            closed,
            parked: None,
        })
    }
}

/// Closes a conversation the recipient refused for good; what waited to go in it fails.
pub(crate) fn close_conversation(
    tx: &mut Tx<'_>,
    session: &[u8; 16],
    why: &str,
    now: i64,
    changed: &mut Vec<(i64, MessageState)>,
) -> Result<u64, EngineError> {
    let Some(failed) = tx.close_conversation(session, why, now)? else {
        return Ok(0);
    };
    info!(
        failed = failed.len(),
        "conversation closed: the recipient refused it for good"
    );
    changed.extend(failed.into_iter().map(|id| (id, MessageState::Failed)));
    Ok(1)
}

/// What a device's receipt says about one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A final state: delivered or read, or failed with the reason to show.
    Final(MessageState, Option<String>),
    /// Held by the recipient's node as a message request: `sent`, not resent; a signed
    /// delivery receipt follows if the recipient accepts.
    Held,
    /// The recipient does not have this conversation and never will (SESSION_CLOSED): the
    /// conversation is closed; the next send starts a new one.
    Closed(String),
    /// Refused for now (with the code when the recipient gave one): retried later.
    Retry(Option<ErrorCode>, String),
}

impl Outcome {
    /// How good an outcome is for the sender (higher wins across a contact's devices).
    fn rank(&self) -> u8 {
        match self {
            Self::Retry(..) => 0,
            Self::Final(MessageState::Failed, _) | Self::Closed(_) => 1,
            Self::Held => 2,
            Self::Final(..) => 3,
        }
    }
}

/// The better of two devices' outcomes for one envelope: delivered (or read) beats held,
/// which beats failed, which beats a refusal to retry.
pub fn better_outcome(a: Outcome, b: Outcome) -> Outcome {
    if b.rank() > a.rank() { b } else { a }
}

/// Splits due envelopes into the batches sent together: up to [`MAX_BATCH_ENVELOPES`] and
/// within the frame limit.
pub fn batches(items: &[OutboxItem]) -> Vec<&[OutboxItem]> {
    // Room for the marker, version and each envelope's tag and length.
    const FRAME_BUDGET: usize = MAX_BATCH_FRAME_BYTES - 1024;
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start + 1;
        let mut bytes = items[start].envelope.len() + 8;
        while end < items.len()
            && end - start < MAX_BATCH_ENVELOPES
            && bytes + items[end].envelope.len() + 8 <= FRAME_BUDGET
        {
            bytes += items[end].envelope.len() + 8;
            end += 1;
        }
        out.push(&items[start..end]);
        start = end;
    }
    out
}

/// Interprets a `/rhizo/msg/1` response to the envelopes `sent` (one, or a batch): one outcome
/// per envelope, or `Err` when the response is not a valid receipt from `device` for all of
/// them.
pub(crate) fn parse_response(
    response: &[u8],
    device: &DevicePublicKey,
    sent: &[SecureMessage],
) -> Result<Vec<Outcome>, String> {
    parse_statuses(response, device, sent).map(|s| s.into_iter().map(outcome_of).collect())
}

/// What `device`'s signed receipt says of each envelope of `sent` (or why it says nothing).
pub(crate) fn parse_statuses(
    response: &[u8],
    device: &DevicePublicKey,
    sent: &[SecureMessage],
) -> Result<Vec<ReceiptStatus>, String> {
    match response.split_first() {
        Some((&RESPONSE_RECEIPT, body)) => {
            let receipt = DeliveryReceipt::decode(body).map_err(|e| e.to_string())?;
            if receipt.recipient_device != *device {
                return Err("receipt from another device".into());
            }
            receipt.verify(device).map_err(|e| e.to_string())?;
            sent.iter()
                .map(|m| {
                    let entry = receipt
                        .entries
                        .iter()
                        .find(|e| e.envelope == m.id() && e.envelope_digest == m.digest())
                        .ok_or("receipt does not acknowledge this envelope")?;
                    Ok(entry.status)
                })
                .collect()
        }
        Some((&RESPONSE_ERROR, body)) => {
            let e = ErrorMessage::decode(body).map_err(|e| e.to_string())?;
            Err(format!("recipient answered {}", e.code.as_str()))
        }
        _ => Err("malformed response".into()),
    }
}

/// What a receipt entry's status means for the envelope it names.
pub fn outcome_of(status: ReceiptStatus) -> Outcome {
    match status {
        ReceiptStatus::Delivered => Outcome::Final(MessageState::Delivered, None),
        ReceiptStatus::Read => Outcome::Final(MessageState::Read, None),
        ReceiptStatus::Held => Outcome::Held,
        // Seen before: our first receipt was lost; it was delivered. (Signed by the recipient's
        // device; a mailbox replica's unsigned REPLAY_DETECTED never comes this way.)
        ReceiptStatus::Rejected(ErrorCode::ReplayDetected) => {
            Outcome::Final(MessageState::Delivered, None)
        }
        ReceiptStatus::Rejected(ErrorCode::SessionClosed) => Outcome::Closed(
            "the recipient does not have this conversation (a declined message request); \
             send again to start a new one"
                .into(),
        ),
        ReceiptStatus::Rejected(code) if code.is_transient() => {
            Outcome::Retry(Some(code), format!("recipient answered {}", code.as_str()))
        }
        // Final: retrying the same envelope cannot succeed.
        ReceiptStatus::Rejected(code) => Outcome::Final(MessageState::Failed, Some(refusal(code))),
    }
}

/// Why an envelope failed when the recipient refused it for good with `code`.
pub(crate) fn refusal(code: ErrorCode) -> String {
    format!("refused by the recipient: {}", code.as_str())
}

/// Why a conversation is re-established when the recipient could not open its Welcome.
pub(crate) const WELCOME_NOT_OPENED: &str =
    "the recipient could not open the conversation (its KeyPackage is gone)";
/// Why a conversation is re-established when the recipient no longer has it.
pub(crate) const CONVERSATION_LOST: &str = "the recipient does not have this conversation any more";
