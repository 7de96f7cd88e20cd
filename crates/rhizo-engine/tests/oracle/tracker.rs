//! [`DeliveryTracker`]: the sender's view of every outgoing envelope, with
//! retransmission and bounded exponential backoff (the oracle model of the engine's outbox).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use thiserror::Error;

use rhizo_core::envelope::{DIGEST_LEN, DeliveryReceipt, ErrorCode, ReceiptStatus, SessionId};
use rhizo_core::identity::DevicePublicKey;

pub use rhizo_core::delivery::{INITIAL_BACKOFF, MAX_BACKOFF};

/// Most envelopes of one conversation sent but not yet acknowledged: enough
/// to keep a link busy with chat messages, and keeps the receiver's reorder
/// buffer small.
pub const MAX_IN_FLIGHT: usize = 32;
/// Most envelopes tracked at once (all conversations): a long offline
/// period's outgoing messages; the envelope bytes live in the node's outbox.
pub const MAX_TRACKED_MESSAGES: usize = 65_536;

/// An outgoing envelope, from its sender's point of view: the sender device
/// is implicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The conversation.
    pub session_id: SessionId,
    /// The envelope's sequence number.
    pub sequence_num: u64,
}

/// Where an outgoing envelope stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting to be sent: never tried, waiting out a backoff after a failure,
    /// or held back by [`RetryPolicy::max_in_flight`].
    Queued,
    /// Handed to the transport; waiting for a receipt, retransmitted if none
    /// comes in time.
    Sent,
    /// A recipient device acknowledged the exact bytes.
    Delivered,
    /// A recipient device reported it shown. Final; the tracker forgets it.
    Read,
    /// A recipient device refused it for good. Final; the tracker forgets it.
    Rejected(ErrorCode),
}

/// A state transition, reported to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateChange {
    /// Which envelope.
    pub id: MessageId,
    /// State before.
    pub from: DeliveryState,
    /// State after.
    pub to: DeliveryState,
}

/// Retry timing and concurrency: the node's retry schedule
/// ([`rhizo_core::delivery::RetryPolicy`]) plus the model's in-flight window. [`Default`] uses
/// [`INITIAL_BACKOFF`], [`MAX_BACKOFF`] and [`MAX_IN_FLIGHT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first attempt, in milliseconds (at least 1 is used).
    pub initial_backoff: u64,
    /// Cap on the doubling delay, in milliseconds.
    pub max_backoff: u64,
    /// Most envelopes per conversation in [`DeliveryState::Sent`] (at least 1
    /// is used).
    pub max_in_flight: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

impl RetryPolicy {
    /// The node's delay after `attempts` attempts (see
    /// [`rhizo_core::delivery::RetryPolicy::backoff`]).
    pub fn backoff(&self, attempts: u32, noise: u64) -> u64 {
        rhizo_core::delivery::RetryPolicy {
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
        .backoff(attempts, noise)
    }
}

/// Error from [`DeliveryTracker::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The envelope is already tracked.
    #[error("envelope {0:?} is already being delivered")]
    AlreadyTracked(MessageId),
    /// [`MAX_TRACKED_MESSAGES`] undelivered envelopes are already tracked.
    #[error("too many undelivered messages ({max}); wait until some are delivered or delete some")]
    TooManyMessages {
        /// The limit.
        max: usize,
    },
}

#[derive(Debug, Clone)]
struct Tracked {
    digest: [u8; DIGEST_LEN],
    state: DeliveryState,
    attempts: u32,
    /// When to act next: send (Queued) or retransmit (Sent). Unused otherwise.
    deadline: u64,
}

/// The sender side of delivery, sans-IO (like `quinn-proto`): it never sends,
/// sleeps or reads a clock; the driver tells it what happened and asks what to
/// do.
///
/// ```text
///           enqueue                poll_transmit / on_send_attempt
///   ──────────────────► Queued ─────────────────────────────► Sent ──┐ no receipt by the
///                        ▲  ▲    on_transport_error,                 │ deadline: poll_transmit
///                        │  └─── transient REJECTED ───────────────┘◄┘ returns it again
///      retry_now ────────┘        on_receipt DELIVERED
///   (peer reachable)       Queued/Sent ──────────────────► Delivered ──READ──► Read (forgotten)
///                          any ─── final REJECTED ──► Rejected (forgotten)
/// ```
///
/// Driver loop: after [`enqueue`](Self::enqueue) and after every event, call
/// [`poll_transmit`](Self::poll_transmit) until it returns `None`, sending
/// the envelope for each id it returns (from the node's outbox); then wake up
/// at [`poll_timeout`](Self::poll_timeout) and repeat.
///
/// Each attempt `k` (1, 2, …) sets the next deadline `backoff(k)` later:
/// [`RetryPolicy::initial_backoff`] doubling per attempt up to
/// [`RetryPolicy::max_backoff`], minus up to 25 % deterministic jitter derived
/// from the seed given at construction, the message id and `k` (so a test with
/// the same seed replays exactly). Attempts are unlimited.
///
/// At most [`RetryPolicy::max_in_flight`] envelopes per conversation are
/// `Sent` at once; the rest wait `Queued`, lowest deadline (then lowest
/// sequence number) first.
///
/// Receipts must have been verified (signature, and recipient device
/// certified for the recipient) before [`on_receipt`](Self::on_receipt);
/// entries count only if they name this device and the digest of the bytes
/// that were enqueued. The first acknowledging recipient device makes an
/// envelope `Delivered`.
#[derive(Debug)]
pub struct DeliveryTracker {
    local_device: DevicePublicKey,
    policy: RetryPolicy,
    jitter_seed: u64,
    messages: BTreeMap<MessageId, Tracked>,
    /// `(deadline, id)` of every Queued or Sent message.
    timers: BTreeSet<(u64, MessageId)>,
    /// Number of Sent messages per conversation (absent = 0).
    in_flight: BTreeMap<SessionId, usize>,
    /// Delivered messages, oldest first (may hold ids no longer Delivered),
    /// evicted first when the tracker is full.
    delivered: VecDeque<MessageId>,
    delivered_count: usize,
}

impl DeliveryTracker {
    /// A tracker for envelopes signed by `local_device`, with the default
    /// [`RetryPolicy`]; `jitter_seed` makes retry jitter deterministic (pass
    /// random bytes in production, a constant in tests).
    pub fn new(local_device: DevicePublicKey, jitter_seed: u64) -> Self {
        Self::with_policy(local_device, RetryPolicy::default(), jitter_seed)
    }

    /// A tracker with an explicit [`RetryPolicy`].
    pub fn with_policy(
        local_device: DevicePublicKey,
        policy: RetryPolicy,
        jitter_seed: u64,
    ) -> Self {
        Self {
            local_device,
            policy: RetryPolicy {
                max_in_flight: policy.max_in_flight.max(1),
                ..policy
            },
            jitter_seed,
            messages: BTreeMap::new(),
            timers: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            delivered: VecDeque::new(),
            delivered_count: 0,
        }
    }

    /// Starts tracking an envelope, `Queued` and due at `now`.
    /// `envelope_digest` is [`envelope_digest`](rhizo_core::envelope::envelope_digest)
    /// of the encoded envelope, which receipts must match.
    ///
    /// When full, the oldest `Delivered` envelopes are forgotten to make room.
    ///
    /// # Errors
    ///
    /// [`DeliveryError::AlreadyTracked`]; [`DeliveryError::TooManyMessages`]
    /// if [`MAX_TRACKED_MESSAGES`] undelivered envelopes are tracked.
    pub fn enqueue(
        &mut self,
        id: MessageId,
        envelope_digest: [u8; DIGEST_LEN],
        now: u64,
    ) -> Result<(), DeliveryError> {
        if self.messages.contains_key(&id) {
            return Err(DeliveryError::AlreadyTracked(id));
        }
        while self.messages.len() >= MAX_TRACKED_MESSAGES {
            let Some(oldest) = self.delivered.pop_front() else {
                return Err(DeliveryError::TooManyMessages {
                    max: MAX_TRACKED_MESSAGES,
                });
            };
            if self.state(&oldest) == Some(DeliveryState::Delivered) {
                self.forget(&oldest);
            }
        }
        self.messages.insert(
            id,
            Tracked {
                digest: envelope_digest,
                state: DeliveryState::Queued,
                attempts: 0,
                deadline: now,
            },
        );
        self.timers.insert((now, id));
        Ok(())
    }

    /// The next envelope to (re)send now, if any; it is recorded as an attempt
    /// (see [`on_send_attempt`](Self::on_send_attempt)) and is `Sent`.
    /// Call repeatedly until `None`.
    pub fn poll_transmit(&mut self, now: u64) -> Option<MessageId> {
        let id = self
            .timers
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| *id)
            .find(|id| self.may_send(id))?;
        self.on_send_attempt(id, now);
        Some(id)
    }

    /// When [`poll_transmit`](Self::poll_transmit) will next have something
    /// to return (unix ms; may be in the past), or `None` if nothing is
    /// waiting on time.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers
            .iter()
            .find(|(_, id)| self.may_send(id))
            .map(|(deadline, _)| *deadline)
    }

    /// Records that the envelope was handed to the transport at `now`
    /// (whether or not [`poll_transmit`](Self::poll_transmit) chose it):
    /// it becomes `Sent` and is retransmitted if no receipt arrives within the
    /// next backoff delay. Ignored for envelopes that are not `Queued` or
    /// `Sent`.
    pub fn on_send_attempt(&mut self, id: MessageId, now: u64) -> Option<StateChange> {
        let noise = self.noise(&id)?;
        let tracked = self.messages.get_mut(&id)?;
        if !matches!(tracked.state, DeliveryState::Queued | DeliveryState::Sent) {
            return None;
        }
        let from = tracked.state;
        tracked.attempts = tracked.attempts.saturating_add(1);
        let deadline = now.saturating_add(self.policy.backoff(tracked.attempts, noise));
        self.timers.remove(&(tracked.deadline, id));
        tracked.deadline = deadline;
        tracked.state = DeliveryState::Sent;
        self.timers.insert((deadline, id));
        if from == DeliveryState::Queued {
            *self.in_flight.entry(id.session_id).or_default() += 1;
            return Some(StateChange {
                id,
                from,
                to: DeliveryState::Sent,
            });
        }
        None
    }

    /// Records that sending failed (no device reachable, stream reset, …):
    /// a `Sent` envelope goes back to `Queued` until its backoff delay passes.
    pub fn on_transport_error(&mut self, id: MessageId, now: u64) -> Option<StateChange> {
        self.requeue(id, now)
    }

    /// Applies a verified receipt; returns the resulting transitions. Entries
    /// for other devices, unknown envelopes or other digests are ignored.
    ///
    /// `DELIVERED` makes a `Queued`/`Sent` envelope `Delivered`; `READ` makes
    /// any tracked envelope `Read` and forgets it; `REJECTED` with a
    /// [transient](ErrorCode::is_transient) code requeues a `Sent` envelope
    /// with backoff, with any other code makes it `Rejected` and forgets it.
    pub fn on_receipt(&mut self, receipt: &DeliveryReceipt, now: u64) -> Vec<StateChange> {
        let mut changes = Vec::new();
        for entry in &receipt.entries {
            if entry.envelope.sender_device != self.local_device {
                continue;
            }
            let id = MessageId {
                session_id: entry.envelope.session_id,
                sequence_num: entry.envelope.sequence_num,
            };
            let Some(tracked) = self.messages.get(&id) else {
                continue;
            };
            if tracked.digest != entry.envelope_digest {
                continue;
            }
            let from = tracked.state;
            let change = match entry.status {
                ReceiptStatus::Delivered => match from {
                    DeliveryState::Queued | DeliveryState::Sent => {
                        self.mark_delivered(id);
                        Some(DeliveryState::Delivered)
                    }
                    _ => None,
                },
                ReceiptStatus::Read => {
                    self.forget(&id);
                    Some(DeliveryState::Read)
                }
                // Held as a message request by the recipient's node: no state change here; a
                // retransmission is answered `Held` again, and acceptance brings `Delivered`.
                ReceiptStatus::Held => None,
                ReceiptStatus::Rejected(code) if code.is_transient() => {
                    if let Some(change) = self.requeue(id, now) {
                        changes.push(change);
                    }
                    None
                }
                ReceiptStatus::Rejected(code) => match from {
                    DeliveryState::Queued | DeliveryState::Sent => {
                        self.forget(&id);
                        Some(DeliveryState::Rejected(code))
                    }
                    _ => None,
                },
            };
            if let Some(to) = change {
                changes.push(StateChange { id, from, to });
            }
        }
        changes
    }

    /// Makes every `Queued` envelope of a conversation due at `now`, for
    /// example when one of the recipient's devices just became reachable.
    pub fn retry_now(&mut self, session_id: SessionId, now: u64) {
        let range = MessageId {
            session_id,
            sequence_num: 0,
        }..=MessageId {
            session_id,
            sequence_num: u64::MAX,
        };
        for (id, tracked) in self.messages.range_mut(range) {
            if tracked.state == DeliveryState::Queued && tracked.deadline > now {
                self.timers.remove(&(tracked.deadline, *id));
                tracked.deadline = now;
                self.timers.insert((now, *id));
            }
        }
    }

    /// Stops tracking an envelope (for example deleted by the user); returns
    /// its last state.
    pub fn forget(&mut self, id: &MessageId) -> Option<DeliveryState> {
        let tracked = self.messages.remove(id)?;
        match tracked.state {
            DeliveryState::Queued => {
                self.timers.remove(&(tracked.deadline, *id));
            }
            DeliveryState::Sent => {
                self.timers.remove(&(tracked.deadline, *id));
                self.release_slot(id.session_id);
            }
            DeliveryState::Delivered => {
                self.delivered_count -= 1;
                self.compact_delivered();
            }
            DeliveryState::Read | DeliveryState::Rejected(_) => {}
        }
        Some(tracked.state)
    }

    /// The state of a tracked envelope; `None` if not tracked (never
    /// enqueued, or forgotten after `Read`/`Rejected`).
    pub fn state(&self, id: &MessageId) -> Option<DeliveryState> {
        self.messages.get(id).map(|tracked| tracked.state)
    }

    /// Number of attempts made so far for a tracked envelope.
    pub fn attempts(&self, id: &MessageId) -> Option<u32> {
        self.messages.get(id).map(|tracked| tracked.attempts)
    }

    /// Number of tracked envelopes.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether the envelope may be (re)sent now, deadline aside.
    fn may_send(&self, id: &MessageId) -> bool {
        match self.state(id) {
            Some(DeliveryState::Sent) => true,
            Some(DeliveryState::Queued) => {
                self.in_flight.get(&id.session_id).copied().unwrap_or(0) < self.policy.max_in_flight
            }
            _ => false,
        }
    }

    /// Sent → Queued with backoff (transport error, transient rejection).
    fn requeue(&mut self, id: MessageId, now: u64) -> Option<StateChange> {
        let noise = self.noise(&id)?;
        let tracked = self.messages.get_mut(&id)?;
        if tracked.state != DeliveryState::Sent {
            return None;
        }
        let deadline = now.saturating_add(self.policy.backoff(tracked.attempts.max(1), noise));
        self.timers.remove(&(tracked.deadline, id));
        tracked.deadline = deadline;
        tracked.state = DeliveryState::Queued;
        self.timers.insert((deadline, id));
        self.release_slot(id.session_id);
        Some(StateChange {
            id,
            from: DeliveryState::Sent,
            to: DeliveryState::Queued,
        })
    }

    /// Queued/Sent → Delivered, leaving the timers.
    fn mark_delivered(&mut self, id: MessageId) {
        let Some(tracked) = self.messages.get_mut(&id) else {
            return;
        };
        let from = tracked.state;
        tracked.state = DeliveryState::Delivered;
        self.timers.remove(&(tracked.deadline, id));
        if from == DeliveryState::Sent {
            self.release_slot(id.session_id);
        }
        self.delivered.push_back(id);
        self.delivered_count += 1;
    }

    fn release_slot(&mut self, session_id: SessionId) {
        if let Some(count) = self.in_flight.get_mut(&session_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(&session_id);
            }
        }
    }

    /// Drops stale ids from `delivered` once they outnumber live ones, so the
    /// queue stays proportional to the tracked set.
    fn compact_delivered(&mut self) {
        if self.delivered.len() > 2 * self.delivered_count + 16 {
            let messages = &self.messages;
            self.delivered
                .retain(|id| messages.get(id).map(|t| t.state) == Some(DeliveryState::Delivered));
        }
    }

    /// Deterministic per-attempt noise for jitter: SplitMix64 over the seed,
    /// the id and the attempt number.
    fn noise(&self, id: &MessageId) -> Option<u64> {
        let attempts = self.messages.get(id)?.attempts;
        let mut state = split_mix(self.jitter_seed);
        for chunk in id.session_id.as_bytes().chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            state = split_mix(state ^ u64::from_le_bytes(word));
        }
        state = split_mix(state ^ id.sequence_num);
        Some(split_mix(state ^ u64::from(attempts)))
    }
}

/// The SplitMix64 finaliser: a cheap, well-mixed 64-bit hash step.
fn split_mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhizo_core::DeviceKey;
    use rhizo_core::envelope::{EnvelopeId, ReceiptEntry};

    fn me() -> DeviceKey {
        DeviceKey::from_bytes(&[3; 32])
    }

    fn session(n: u8) -> SessionId {
        SessionId::from_bytes([n; 16])
    }

    fn id(n: u8, seq: u64) -> MessageId {
        MessageId {
            session_id: session(n),
            sequence_num: seq,
        }
    }

    fn digest(id: MessageId) -> [u8; DIGEST_LEN] {
        let mut digest = [0; DIGEST_LEN];
        digest[..8].copy_from_slice(&id.sequence_num.to_le_bytes());
        digest[8] = id.session_id.as_bytes()[0];
        digest
    }

    fn receipt(ids: &[MessageId], status: ReceiptStatus) -> DeliveryReceipt {
        DeliveryReceipt {
            recipient_device: DeviceKey::from_bytes(&[8; 32]).public(),
            timestamp: 0,
            entries: ids
                .iter()
                .map(|id| ReceiptEntry {
                    envelope: EnvelopeId {
                        sender_device: me().public(),
                        session_id: id.session_id,
                        sequence_num: id.sequence_num,
                    },
                    envelope_digest: digest(*id),
                    status,
                })
                .collect(),
            signature: [0; 64],
        }
    }

    fn tracker() -> DeliveryTracker {
        DeliveryTracker::new(me().public(), 42)
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_down() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1, 0), 1_000);
        assert_eq!(policy.backoff(2, 0), 2_000);
        assert_eq!(policy.backoff(9, 0), 256_000);
        assert_eq!(policy.backoff(10, 0), MAX_BACKOFF);
        assert_eq!(policy.backoff(u32::MAX, 0), MAX_BACKOFF);
        for noise in [1, 77, u64::MAX] {
            let delay = policy.backoff(3, noise);
            assert!((3_000..=4_000).contains(&delay), "{delay}");
        }
        let tiny = RetryPolicy {
            initial_backoff: 0,
            max_backoff: 0,
            max_in_flight: 0,
        };
        assert_eq!(tiny.backoff(5, 12345), 1);
    }

    #[test]
    fn send_receipt_delivered_then_read() {
        let mut t = tracker();
        let a = id(1, 1);
        t.enqueue(a, digest(a), 0).expect("enqueue");
        assert_eq!(
            t.enqueue(a, digest(a), 0),
            Err(DeliveryError::AlreadyTracked(a))
        );
        assert_eq!(t.poll_timeout(), Some(0));
        assert_eq!(t.poll_transmit(0), Some(a));
        assert_eq!(t.poll_transmit(0), None);
        assert_eq!(t.state(&a), Some(DeliveryState::Sent));
        let first_retry = t.poll_timeout().expect("retransmit timer");
        assert!((750..=1_000).contains(&first_retry));

        let changes = t.on_receipt(&receipt(&[a], ReceiptStatus::Delivered), 10);
        assert_eq!(
            changes,
            vec![StateChange {
                id: a,
                from: DeliveryState::Sent,
                to: DeliveryState::Delivered
            }]
        );
        assert_eq!(t.poll_timeout(), None);
        // A duplicate receipt changes nothing.
        assert!(
            t.on_receipt(&receipt(&[a], ReceiptStatus::Delivered), 11)
                .is_empty()
        );
        let changes = t.on_receipt(&receipt(&[a], ReceiptStatus::Read), 12);
        assert_eq!(changes[0].to, DeliveryState::Read);
        assert_eq!(t.state(&a), None);
        assert!(t.is_empty());
    }

    #[test]
    fn unanswered_sends_are_retransmitted_with_growing_delays() {
        let mut t = tracker();
        let a = id(1, 1);
        t.enqueue(a, digest(a), 0).expect("enqueue");
        let mut now = 0;
        let mut previous_gap = 0;
        for attempt in 1..=12 {
            assert_eq!(t.poll_transmit(now), Some(a));
            assert_eq!(t.attempts(&a), Some(attempt));
            let next = t.poll_timeout().expect("timer");
            let gap = next - now;
            assert!(gap <= MAX_BACKOFF);
            if attempt < 9 {
                assert!(
                    gap > previous_gap,
                    "attempt {attempt}: {gap} <= {previous_gap}"
                );
            }
            previous_gap = gap;
            assert_eq!(t.poll_transmit(next - 1), None);
            now = next;
        }
        assert!(previous_gap >= MAX_BACKOFF * 3 / 4);
    }

    #[test]
    fn transport_errors_requeue_and_retry_now_wakes() {
        let mut t = tracker();
        let a = id(1, 1);
        t.enqueue(a, digest(a), 0).expect("enqueue");
        assert_eq!(t.poll_transmit(0), Some(a));
        let change = t.on_transport_error(a, 5).expect("change");
        assert_eq!(change.to, DeliveryState::Queued);
        assert_eq!(t.on_transport_error(a, 6), None);
        let due = t.poll_timeout().expect("timer");
        assert!(due > 5);
        assert_eq!(t.poll_transmit(due - 1), None);
        t.retry_now(session(1), 7);
        assert_eq!(t.poll_timeout(), Some(7));
        assert_eq!(t.poll_transmit(7), Some(a));
    }

    #[test]
    fn in_flight_is_bounded_per_conversation() {
        let policy = RetryPolicy {
            max_in_flight: 2,
            ..RetryPolicy::default()
        };
        let mut t = DeliveryTracker::with_policy(me().public(), policy, 1);
        for seq in 1..=4 {
            t.enqueue(id(1, seq), digest(id(1, seq)), 0)
                .expect("enqueue");
        }
        t.enqueue(id(2, 1), digest(id(2, 1)), 0).expect("enqueue");
        let mut sent = Vec::new();
        while let Some(next) = t.poll_transmit(0) {
            sent.push(next);
        }
        assert_eq!(sent, vec![id(1, 1), id(1, 2), id(2, 1)]);
        // Session 1's queued messages do not make poll_timeout spin.
        assert!(t.poll_timeout().expect("timer") > 0);
        t.on_receipt(&receipt(&[id(1, 1)], ReceiptStatus::Delivered), 1);
        assert_eq!(t.poll_transmit(1), Some(id(1, 3)));
        assert_eq!(t.poll_transmit(1), None);
    }

    #[test]
    fn receipts_must_match_device_and_digest() {
        let mut t = tracker();
        let a = id(1, 1);
        t.enqueue(a, digest(a), 0).expect("enqueue");
        t.poll_transmit(0);
        let mut wrong_digest = receipt(&[a], ReceiptStatus::Delivered);
        wrong_digest.entries[0].envelope_digest[31] ^= 1;
        assert!(t.on_receipt(&wrong_digest, 1).is_empty());
        let mut other_device = receipt(&[a], ReceiptStatus::Delivered);
        other_device.entries[0].envelope.sender_device = DeviceKey::from_bytes(&[9; 32]).public();
        assert!(t.on_receipt(&other_device, 1).is_empty());
        assert_eq!(t.state(&a), Some(DeliveryState::Sent));
        // Unknown envelopes are ignored too.
        assert!(
            t.on_receipt(&receipt(&[id(5, 5)], ReceiptStatus::Delivered), 1)
                .is_empty()
        );
    }

    #[test]
    fn rejections_are_final_or_transient() {
        let mut t = tracker();
        let (a, b) = (id(1, 1), id(1, 2));
        t.enqueue(a, digest(a), 0).expect("enqueue");
        t.enqueue(b, digest(b), 0).expect("enqueue");
        t.poll_transmit(0);
        t.poll_transmit(0);
        let changes = t.on_receipt(
            &receipt(&[a], ReceiptStatus::Rejected(ErrorCode::DecryptionFailed)),
            1,
        );
        assert_eq!(
            changes[0].to,
            DeliveryState::Rejected(ErrorCode::DecryptionFailed)
        );
        assert_eq!(t.state(&a), None);
        let changes = t.on_receipt(
            &receipt(&[b], ReceiptStatus::Rejected(ErrorCode::RateLimited)),
            1,
        );
        assert_eq!(changes[0].to, DeliveryState::Queued);
        assert_eq!(t.state(&b), Some(DeliveryState::Queued));
    }

    #[test]
    fn full_tracker_evicts_delivered_first() {
        let mut t = tracker();
        let first = id(0, 1);
        t.enqueue(first, digest(first), 0).expect("enqueue");
        t.on_receipt(&receipt(&[first], ReceiptStatus::Delivered), 0);
        let mut seq = 1;
        while t.len() < MAX_TRACKED_MESSAGES {
            t.enqueue(id(1, seq), digest(id(1, seq)), 0)
                .expect("enqueue");
            seq += 1;
        }
        t.enqueue(id(1, seq), digest(id(1, seq)), 0)
            .expect("evicts the delivered one");
        assert_eq!(t.state(&first), None);
        assert_eq!(
            t.enqueue(id(1, seq + 1), [0; DIGEST_LEN], 0),
            Err(DeliveryError::TooManyMessages {
                max: MAX_TRACKED_MESSAGES
            })
        );
    }

    #[test]
    fn delivered_queue_stays_bounded() {
        let mut t = tracker();
        for seq in 1..=1_000 {
            let m = id(1, seq);
            t.enqueue(m, digest(m), 0).expect("enqueue");
            t.on_receipt(&receipt(&[m], ReceiptStatus::Delivered), 0);
            t.on_receipt(&receipt(&[m], ReceiptStatus::Read), 0);
        }
        assert!(t.is_empty());
        assert!(t.delivered.len() <= 16 + 1, "{}", t.delivered.len());
    }
}
