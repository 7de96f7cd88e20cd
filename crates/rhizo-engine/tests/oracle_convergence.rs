//! A sender and a receiver exchange envelopes and receipts over a simulated
//! channel that drops, duplicates and reorders, on a simulated clock
//! (quinn-proto style: no sockets, no sleeps). Every message must reach the
//! application exactly once and in order, and the sender must see every one
//! `Delivered`. (The models are the engine's test oracle, `tests/oracle/`.)

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use proptest::prelude::*;
mod oracle;

use oracle::{DeliveryState, DeliveryTracker, MessageId, ReceiveOrdering, RetryPolicy};
use rhizo_core::envelope::{
    DeliveryReceipt, EnvelopeId, MAX_RECEIPT_ENTRIES, MessageType, ReceiptEntry, ReceiptStatus,
    SecureMessage, SessionId, envelope_digest,
};
use rhizo_core::seen::{Freshness, MemorySeenStore, SeenSet};
use rhizo_core::{DeviceKey, Uid};

/// What the channel does to the n-th packet in one direction; once the
/// schedule runs out, packets arrive once after [`CALM_DELAY`].
#[derive(Debug, Clone, Copy)]
struct Fault {
    drop: bool,
    duplicate: bool,
    /// Milliseconds in flight (duplicates get their own extra delay).
    delay: u64,
}

const CALM_DELAY: u64 = 40;
/// Upper bound on simulation steps: far above what any schedule needs.
const MAX_STEPS: usize = 200_000;

fn fault() -> impl Strategy<Value = Fault> {
    (any::<bool>(), prop::bool::weighted(0.2), 0u64..3_000).prop_map(|(drop, duplicate, delay)| {
        Fault {
            drop,
            duplicate,
            delay,
        }
    })
}

/// One direction of the channel: packets in flight, ordered by arrival time.
struct Link {
    faults: std::vec::IntoIter<Fault>,
    in_flight: BTreeMap<(u64, u64), Vec<u8>>,
    counter: u64,
}

impl Link {
    fn new(faults: Vec<Fault>) -> Self {
        Self {
            faults: faults.into_iter(),
            in_flight: BTreeMap::new(),
            counter: 0,
        }
    }

    fn send(&mut self, now: u64, packet: Vec<u8>) {
        let fault = self.faults.next().unwrap_or(Fault {
            drop: false,
            duplicate: false,
            delay: CALM_DELAY,
        });
        if fault.drop {
            return;
        }
        if fault.duplicate {
            self.put(now + fault.delay + 500, packet.clone());
        }
        self.put(now + fault.delay, packet);
    }

    fn put(&mut self, at: u64, packet: Vec<u8>) {
        self.counter += 1;
        self.in_flight.insert((at, self.counter), packet);
    }

    fn next_arrival(&self) -> Option<u64> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    fn arrived(&mut self, now: u64) -> Vec<Vec<u8>> {
        let later = self.in_flight.split_off(&(now + 1, 0));
        std::mem::replace(&mut self.in_flight, later)
            .into_values()
            .collect()
    }
}

struct Sender {
    device: DeviceKey,
    tracker: DeliveryTracker,
    outbox: HashMap<MessageId, Vec<u8>>,
    delivered: BTreeSet<MessageId>,
}

struct Receiver {
    device: DeviceKey,
    sender_device: rhizo_core::DevicePublicKey,
    seen: SeenSet<MemorySeenStore>,
    ordering: ReceiveOrdering<u64>,
    application: Vec<u64>,
}

const SESSION: SessionId = SessionId::from_bytes([7; 16]);
const START: u64 = 1_700_000_000_000;

fn sender(n: u64, policy: RetryPolicy, seed: u64) -> Sender {
    let device = DeviceKey::from_bytes(&[1; 32]);
    let mut tracker = DeliveryTracker::with_policy(device.public(), policy, seed);
    let mut outbox = HashMap::new();
    for seq in 1..=n {
        let mut message = SecureMessage {
            msg_type: MessageType::Application,
            sender_id: Uid::from_bytes(&[10; 32]),
            sender_device: device.public(),
            recipient_id: Uid::from_bytes(&[20; 32]),
            session_id: SESSION,
            sequence_num: seq,
            timestamp: START,
            nonce: [seq as u8; 32],
            payload: Bytes::from(format!("message {seq}")),
            signature: [0; 64],
        };
        message.sign(&device).expect("sign");
        let bytes = message.encode();
        let id = MessageId {
            session_id: SESSION,
            sequence_num: seq,
        };
        tracker
            .enqueue(id, envelope_digest(&bytes), START)
            .expect("enqueue");
        outbox.insert(id, bytes);
    }
    Sender {
        device,
        tracker,
        outbox,
        delivered: BTreeSet::new(),
    }
}

fn receiver(sender_device: rhizo_core::DevicePublicKey) -> Receiver {
    Receiver {
        device: DeviceKey::from_bytes(&[2; 32]),
        sender_device,
        seen: SeenSet::new(MemorySeenStore::new()),
        // Never give up on a gap here: the sender heals every drop.
        ordering: ReceiveOrdering::new().with_gap_timeout(u64::MAX),
        application: Vec::new(),
    }
}

impl Receiver {
    /// Processes one envelope; returns its receipt entry (also for replays).
    fn on_envelope(&mut self, bytes: &[u8], now: u64) -> ReceiptEntry {
        let message = SecureMessage::decode(bytes).expect("channel does not corrupt");
        message.verify(&self.sender_device).expect("verifies");
        match self
            .seen
            .check_and_insert(&message.id(), message.timestamp, now)
            .expect("in window")
        {
            Freshness::New => {
                let run = self
                    .ordering
                    .push(message.sequence_num, message.sequence_num, now)
                    .expect("within window, not a duplicate");
                self.application.extend(run);
            }
            Freshness::Replay => {}
        }
        ReceiptEntry {
            envelope: message.id(),
            envelope_digest: envelope_digest(bytes),
            status: ReceiptStatus::Delivered,
        }
    }

    /// Coalesces entries into signed receipts of at most
    /// [`MAX_RECEIPT_ENTRIES`] entries.
    fn receipts(&self, entries: BTreeMap<EnvelopeId, ReceiptEntry>, now: u64) -> Vec<Vec<u8>> {
        let entries: Vec<ReceiptEntry> = entries.into_values().collect();
        entries
            .chunks(MAX_RECEIPT_ENTRIES)
            .map(|chunk| {
                let mut receipt = DeliveryReceipt {
                    recipient_device: self.device.public(),
                    timestamp: now,
                    entries: chunk.to_vec(),
                    signature: [0; 64],
                };
                receipt.sign(&self.device).expect("sign");
                receipt.encode()
            })
            .collect()
    }
}

impl Sender {
    fn on_receipt(&mut self, bytes: &[u8], recipient: &rhizo_core::DevicePublicKey, now: u64) {
        let receipt = DeliveryReceipt::decode(bytes).expect("channel does not corrupt");
        receipt.verify(recipient).expect("verifies");
        for change in self.tracker.on_receipt(&receipt, now) {
            assert_eq!(change.to, DeliveryState::Delivered, "{change:?}");
            assert!(
                self.delivered.insert(change.id),
                "Delivered twice: {change:?}"
            );
        }
    }
}

/// Runs the simulation; returns the receiver's application log and the
/// sender's delivered set, or panics if it does not converge.
fn simulate(
    n: u64,
    policy: RetryPolicy,
    seed: u64,
    data_faults: Vec<Fault>,
    receipt_faults: Vec<Fault>,
) -> (Sender, Receiver) {
    let mut sender = sender(n, policy, seed);
    let mut receiver = receiver(sender.device.public());
    let recipient_pk = receiver.device.public();
    let mut to_receiver = Link::new(data_faults);
    let mut to_sender = Link::new(receipt_faults);
    let mut now = START;
    for _ in 0..MAX_STEPS {
        let mut entries = BTreeMap::new();
        for packet in to_receiver.arrived(now) {
            let entry = receiver.on_envelope(&packet, now);
            entries.insert(entry.envelope, entry);
        }
        for receipt in receiver.receipts(entries, now) {
            to_sender.send(now, receipt);
        }
        for packet in to_sender.arrived(now) {
            sender.on_receipt(&packet, &recipient_pk, now);
        }
        while let Some(id) = sender.tracker.poll_transmit(now) {
            to_receiver.send(now, sender.outbox[&id].clone());
        }
        if sender.delivered.len() as u64 == n && receiver.application.len() as u64 == n {
            return (sender, receiver);
        }
        let next = [
            to_receiver.next_arrival(),
            to_sender.next_arrival(),
            sender.tracker.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("something is always pending until convergence");
        assert!(next >= now, "time went backwards: {next} < {now}");
        now = next;
    }
    panic!(
        "no convergence after {MAX_STEPS} steps: delivered {:?}, application {:?}",
        sender.delivered.len(),
        receiver.application.len()
    );
}

fn check_converged(n: u64, sender: &Sender, receiver: &Receiver) {
    let expected: Vec<u64> = (1..=n).collect();
    assert_eq!(receiver.application, expected, "exactly once, in order");
    for seq in 1..=n {
        let id = MessageId {
            session_id: SESSION,
            sequence_num: seq,
        };
        assert!(sender.delivered.contains(&id));
        assert_eq!(sender.tracker.state(&id), Some(DeliveryState::Delivered));
    }
    assert_eq!(sender.tracker.poll_timeout(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn delivery_converges_over_a_lossy_channel(
        n in 1u64..=60,
        max_in_flight in 1usize..=40,
        seed in any::<u64>(),
        data_faults in proptest::collection::vec(fault(), 0..200),
        receipt_faults in proptest::collection::vec(fault(), 0..200),
    ) {
        let policy = RetryPolicy { max_in_flight, ..RetryPolicy::default() };
        let (sender, receiver) = simulate(n, policy, seed, data_faults, receipt_faults);
        check_converged(n, &sender, &receiver);
    }
}

#[test]
fn a_perfect_channel_needs_one_attempt_each() {
    let (sender, receiver) = simulate(60, RetryPolicy::default(), 1, Vec::new(), Vec::new());
    check_converged(60, &sender, &receiver);
    assert_eq!(total_attempts(&sender, 60), 60);
}

fn total_attempts(sender: &Sender, n: u64) -> u32 {
    (1..=n)
        .map(|seq| {
            let id = MessageId {
                session_id: SESSION,
                sequence_num: seq,
            };
            sender.tracker.attempts(&id).expect("tracked")
        })
        .sum()
}

#[test]
fn dropping_everything_for_a_while_still_converges() {
    let blackout = Fault {
        drop: true,
        duplicate: false,
        delay: 0,
    };
    let (sender, receiver) = simulate(
        60,
        RetryPolicy::default(),
        7,
        vec![blackout; 150],
        vec![blackout; 150],
    );
    check_converged(60, &sender, &receiver);
    assert!(total_attempts(&sender, 60) > 150);
}

#[test]
fn a_replayed_envelope_is_delivered_exactly_once() {
    let mut sender = sender(1, RetryPolicy::default(), 3);
    let mut receiver = receiver(sender.device.public());
    let id = MessageId {
        session_id: SESSION,
        sequence_num: 1,
    };
    assert_eq!(sender.tracker.poll_transmit(START), Some(id));
    let bytes = sender.outbox[&id].clone();

    // The same bytes arrive three times (a retransmission and two replays).
    let mut entries = Vec::new();
    for i in 0..3 {
        entries.push(receiver.on_envelope(&bytes, START + i));
    }
    assert_eq!(receiver.application, vec![1]);
    // Every copy is acknowledged, identically.
    assert!(entries.windows(2).all(|pair| pair[0] == pair[1]));

    let recipient_pk = receiver.device.public();
    for entry in entries {
        let receipts = receiver.receipts(BTreeMap::from([(entry.envelope, entry)]), START);
        for receipt in receipts {
            sender.on_receipt(&receipt, &recipient_pk, START + 10);
        }
    }
    assert_eq!(sender.delivered, BTreeSet::from([id]));
    assert_eq!(sender.tracker.state(&id), Some(DeliveryState::Delivered));

    // A replay much later (after the seen-set was pruned) is refused by the
    // timestamp window instead.
    let later = START + rhizo_core::seen::MAX_ENVELOPE_AGE + 1;
    receiver.seen.prune(later).expect("prune");
    let message = SecureMessage::decode(&bytes).expect("decode");
    assert!(
        receiver
            .seen
            .check_and_insert(&message.id(), message.timestamp, later)
            .is_err()
    );
    assert_eq!(receiver.application, vec![1]);
}
