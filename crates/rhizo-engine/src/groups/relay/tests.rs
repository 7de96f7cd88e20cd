//! Member-relayed fan-out: the tree's shape and bounds, the frame codec, the relay's checks,
//! and a simulated group on a simulated clock (relays offline, silent, removed), each member
//! showing each message once; the receiver's dedupe checked on real engines.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::groups::tests::{T0, deliver, pump, received_texts, trio};

fn dev(i: usize) -> DeviceId {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&(i as u64).to_be_bytes());
    d[31] = 0xd7;
    d
}

fn devices(n: usize) -> Vec<DeviceId> {
    (1..=n).map(dev).collect()
}

/// The whole tree from the sender down: (device, depth, the copies it uploads).
fn walk(branches: &[RelayBranch], depth: usize, out: &mut Vec<(DeviceId, usize, usize)>) {
    for b in branches {
        let children = relay_branches(&b.subtree, RELAY_FANOUT);
        out.push((b.relay, depth, children.len()));
        walk(&children, depth + 1, out);
    }
}

#[test]
fn the_tree_reaches_every_device_once_with_fan_out_at_most_k_and_depth_log_k() {
    for n in (0..=80).chain([100, 300, 1000, 4096]) {
        for rotation in [0u64, 1, 7, 0xdead_beef_u64, u64::MAX] {
            let all = devices(n);
            let top = sender_branches(&all, rotation, RELAY_FANOUT);
            assert!(top.len() <= RELAY_FANOUT, "n={n}");
            let mut seen = Vec::new();
            walk(&top, 1, &mut seen);
            let mut got: Vec<DeviceId> = seen.iter().map(|(d, _, _)| *d).collect();
            got.sort_unstable();
            assert_eq!(got, all, "n={n}: every device exactly once");
            assert!(seen.iter().all(|(_, _, copies)| *copies <= RELAY_FANOUT));
            // Depth: ⌈log_K n⌉ levels of relaying, plus the leaves' level.
            let depth = seen.iter().map(|(_, d, _)| *d).max().unwrap_or(0);
            let mut bound = 1;
            let mut reach = RELAY_FANOUT;
            while reach < n {
                reach *= RELAY_FANOUT;
                bound += 1;
            }
            assert!(depth <= bound + 1, "n={n}: depth {depth} > {}", bound + 1);
            // Branches differ by at most one device: the load is even.
            let sizes: Vec<usize> = top.iter().map(|b| b.subtree.len() + 1).collect();
            let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
            if let (Some(lo), Some(hi)) = (lo, hi) {
                assert!(hi - lo <= 1, "n={n}: {sizes:?}");
            }
        }
    }
    // Up to K other devices: every one is sent to directly, nobody relays.
    let direct = sender_branches(&devices(RELAY_FANOUT), 3, RELAY_FANOUT);
    assert_eq!(direct.len(), RELAY_FANOUT);
    assert!(direct.iter().all(|b| b.subtree.is_empty()));
    // 49 others (B10's group) with K = 6: 6 relays, each with 7 or 8 to deliver to (split
    // again by the relay); with K = 8: 8 relays with 5 or 6 each.
    let b10 = sender_branches(&devices(49), 11, 6);
    assert_eq!(b10.len(), 6);
    assert!(b10.iter().all(|b| (7..=8).contains(&b.subtree.len())));
    let k8 = sender_branches(&devices(49), 11, 8);
    assert_eq!(k8.len(), 8);
    assert!(k8.iter().all(|b| (5..=6).contains(&b.subtree.len())));
}

#[test]
fn the_rotation_spreads_the_relay_role_over_every_member() {
    let all = devices(49);
    let mut relays: HashMap<DeviceId, usize> = HashMap::new();
    for rotation in 0..49u64 {
        for b in sender_branches(&all, rotation, RELAY_FANOUT) {
            *relays.entry(b.relay).or_default() += 1;
        }
    }
    assert_eq!(relays.len(), 49, "every member relays for some message");
    // The same message gives the same tree whatever order the roster came in.
    let mut shuffled = all.clone();
    shuffled.reverse();
    assert_eq!(
        sender_branches(&all, 5, RELAY_FANOUT),
        sender_branches(&shuffled, 5, RELAY_FANOUT)
    );
    assert_eq!(rotation_of(&[0, 0, 0, 0, 0, 0, 0, 9, 0xff]), 9);
    assert_eq!(rotation_of(&[1]), 1 << 56);
}

#[test]
fn a_relay_frame_round_trips_and_bad_frames_are_refused() {
    let frame = RelayFrame {
        from_relay: false,
        forward_to: devices(3),
        envelope: vec![0x08, 1, 2, 3],
    };
    let bytes = frame.encode().unwrap();
    assert!(is_relay_frame(&bytes));
    assert_eq!(bytes.len(), 5 + 3 * 32 + 4);
    assert_eq!(RelayFrame::decode(&bytes).unwrap(), frame);
    // A leaf's frame from a relay: no list.
    let leaf = RelayFrame {
        from_relay: true,
        forward_to: Vec::new(),
        envelope: vec![0x08, 9],
    };
    let leaf_bytes = leaf.encode().unwrap();
    assert_eq!(leaf_bytes, [0xB2, 1, 1, 0, 0, 0x08, 9]);
    assert_eq!(RelayFrame::decode(&leaf_bytes).unwrap(), leaf);
    // Not relay frames: a bare envelope, a batch.
    assert!(!is_relay_frame(&[0x08, 1]) && !is_relay_frame(&[0xB1]));
    let refused = |bytes: &[u8]| RelayFrame::decode(bytes).unwrap_err();
    assert!(matches!(refused(&[0xB2, 1]), RelayError::Malformed(_)));
    assert_eq!(
        refused(&[0xB2, 2, 0, 0, 1]),
        RelayError::UnsupportedVersion(2)
    );
    assert_eq!(refused(&[0xB2, 1, 0, 0, 0, 8]), RelayError::BadFlags);
    assert_eq!(refused(&[0xB2, 1, 2, 0, 1, 8]), RelayError::BadFlags);
    assert!(matches!(
        refused(&[0xB2, 1, 0, 0, 2, 0]),
        RelayError::Malformed(_)
    ));
    let no_envelope = [&bytes[..5 + 3 * 32]].concat();
    assert!(matches!(refused(&no_envelope), RelayError::Malformed(_)));
    let mut twice = frame.clone();
    twice.forward_to.push(dev(1));
    assert_eq!(twice.encode().unwrap_err(), RelayError::BadTarget);
    let mut repeated = bytes.clone();
    repeated[5 + 32..5 + 64].copy_from_slice(&dev(1));
    assert_eq!(refused(&repeated), RelayError::BadTarget);
    let too_many = RelayFrame {
        from_relay: false,
        forward_to: devices(MAX_RELAY_TARGETS + 1),
        envelope: vec![1],
    };
    assert!(matches!(
        too_many.encode().unwrap_err(),
        RelayError::TargetCount { .. }
    ));
    let huge = vec![0xB2; MAX_RELAY_FRAME_BYTES + 1];
    assert!(matches!(refused(&huge), RelayError::TooLarge { .. }));
}

proptest! {
    #[test]
    fn relay_frames_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = RelayFrame::decode(&bytes);
        let mut marked = bytes.clone();
        if marked.len() >= 2 {
            marked[0] = RELAY_FRAME_MARKER;
            marked[1] = RELAY_FRAME_VERSION;
            if let Some(flags) = marked.get_mut(2) {
                *flags &= 1;
            }
        }
        let _ = RelayFrame::decode(&marked);
    }

    #[test]
    fn relay_frames_round_trip(n in 1usize..40, envelope in proptest::collection::vec(any::<u8>(), 1..300)) {
        let frame = RelayFrame { from_relay: n % 2 == 0, forward_to: devices(n), envelope };
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(RelayFrame::decode(&bytes).unwrap(), frame);
    }
}

#[test]
fn a_relay_forwards_only_for_members_and_within_its_queue_caps() {
    let members = devices(20);
    let (sender, me) = (dev(1), dev(2));
    let check = RelayCheck {
        members: &members,
        sender: &sender,
        me: &me,
        queued_in_group: 0,
        queued_total: 0,
    };
    assert_eq!(check_forwarding(&check, &[dev(3), dev(4)]), Ok(()));
    // A removed member (no longer in the roster) in the list: refused, nothing forwarded.
    let removed = dev(21);
    let err = check_forwarding(&check, &[dev(3), removed]).unwrap_err();
    assert_eq!(err, RelayError::TargetNotMember);
    assert_eq!(
        err.code(),
        rhizo_core::envelope::ErrorCode::UnexpectedMember
    );
    // A removed member as sender: refused.
    let stranger = RelayCheck {
        sender: &removed,
        ..check
    };
    assert_eq!(
        check_forwarding(&stranger, &[dev(3)]),
        Err(RelayError::SenderNotMember)
    );
    // The sender or the relay itself in the list, an empty list.
    assert_eq!(
        check_forwarding(&check, &[dev(1)]),
        Err(RelayError::BadTarget)
    );
    assert_eq!(
        check_forwarding(&check, &[dev(2)]),
        Err(RelayError::BadTarget)
    );
    assert!(matches!(
        check_forwarding(&check, &[]),
        Err(RelayError::TargetCount { count: 0, .. })
    ));
    // Full queues: a clear refusal the sender answers by delivering itself.
    let busy_group = RelayCheck {
        queued_in_group: MAX_RELAY_JOBS_PER_GROUP,
        ..check
    };
    let err = check_forwarding(&busy_group, &[dev(3)]).unwrap_err();
    assert_eq!(err.code(), rhizo_core::envelope::ErrorCode::RateLimited);
    let busy = RelayCheck {
        queued_total: MAX_RELAY_JOBS,
        ..check
    };
    assert!(matches!(
        check_forwarding(&busy, &[dev(3)]),
        Err(RelayError::QueueFull {
            max: MAX_RELAY_JOBS,
            ..
        })
    ));
    // The sender never picks a removed member: the plan is over the current roster only.
    let roster: Vec<DeviceId> = members.iter().copied().filter(|d| *d != sender).collect();
    for rotation in 0..40 {
        let plan = RelayedSend::plan(&roster, rotation);
        assert!(plan.route(&removed).is_none());
        assert!(plan.branches().iter().all(|b| b.relay != removed));
    }
}

/// How a simulated member behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Online,
    /// Unreachable: a send to it fails at once; the sender's mailbox fallback takes it.
    Offline,
    /// Accepts relay frames and acknowledges, never forwards.
    Silent,
    /// Forwards only after this many ms (a slow or overloaded relay).
    Late(i64),
}

/// One hop's latency on the simulated network.
const HOP_MS: i64 = 10;

/// A frame in flight: (arrives at, from, to, forwarding list).
type InFlight = (i64, DeviceId, DeviceId, Vec<DeviceId>);

/// A simulated group: the sender (device 0) and `n` others, one message.
struct Sim {
    behaviour: HashMap<DeviceId, Behaviour>,
    roster: Vec<DeviceId>,
    sender: DeviceId,
    in_flight: Vec<InFlight>,
    /// Receipts on their way back to the sender: (arrives at, device).
    receipts: Vec<(i64, DeviceId)>,
    /// Copies each device received (relayed, direct, mailbox).
    received: BTreeMap<DeviceId, usize>,
    /// What each device's store shows: once per (sender, message id), as
    /// `insert_group_incoming`'s `INSERT OR IGNORE` does.
    shown: BTreeMap<DeviceId, usize>,
    /// When each device first had it.
    first_at: BTreeMap<DeviceId, i64>,
    /// Copies the sender uploaded.
    sender_copies: usize,
    /// Envelopes the sender stored in mailboxes.
    mailboxed: Vec<DeviceId>,
}

impl Sim {
    fn new(n: usize, special: &[(usize, Behaviour)]) -> Self {
        let roster: Vec<DeviceId> = (0..=n).map(dev).collect();
        let mut behaviour: HashMap<DeviceId, Behaviour> =
            roster.iter().map(|d| (*d, Behaviour::Online)).collect();
        for (i, b) in special {
            behaviour.insert(dev(*i), *b);
        }
        Self {
            behaviour,
            roster,
            sender: dev(0),
            in_flight: Vec::new(),
            receipts: Vec::new(),
            received: BTreeMap::new(),
            shown: BTreeMap::new(),
            first_at: BTreeMap::new(),
            sender_copies: 0,
            mailboxed: Vec::new(),
        }
    }

    fn others(&self) -> Vec<DeviceId> {
        self.roster
            .iter()
            .copied()
            .filter(|d| *d != self.sender)
            .collect()
    }

    /// `device` has the envelope at `now` (a copy; shown once); its receipt to the sender.
    fn arrive(&mut self, device: DeviceId, now: i64) {
        *self.received.entry(device).or_default() += 1;
        let shown = self.shown.entry(device).or_default();
        if *shown == 0 {
            *shown = 1;
            self.first_at.insert(device, now);
        }
        self.receipts.push((now + HOP_MS, device));
    }

    /// A relay's handling of a frame with `list` from `from`: its checks, then its children.
    fn relay(&mut self, at: i64, me: DeviceId, from: DeviceId, list: Vec<DeviceId>) {
        if list.is_empty() {
            return;
        }
        let check = RelayCheck {
            members: &self.roster,
            sender: &self.sender,
            me: &me,
            queued_in_group: 0,
            queued_total: 0,
        };
        assert_eq!(check_forwarding(&check, &list), Ok(()), "from {from:?}");
        let start = match self.behaviour[&me] {
            Behaviour::Silent => return,
            Behaviour::Late(ms) => at + ms,
            _ => at,
        };
        for b in relay_branches(&list, RELAY_FANOUT) {
            if self.behaviour[&b.relay] == Behaviour::Offline {
                // The relay's own outbox: the child's mailbox; its subtree the relay sends
                // itself (the same rule as the sender's).
                self.mailboxed.push(b.relay);
                for d in b.subtree {
                    self.in_flight.push((start + HOP_MS, me, d, Vec::new()));
                }
            } else {
                self.in_flight
                    .push((start + HOP_MS, me, b.relay, b.subtree));
            }
        }
    }

    /// Runs one message to the end (or `until`): the sender's plan, frames hop by hop, the
    /// sender's answers, receipts and direct fallback.
    fn run(&mut self, rotation: u64, until: i64) -> RelayedSend {
        let mut plan = RelayedSend::plan(&self.others(), rotation);
        let mut now = T0;
        for b in plan.branches().to_vec() {
            self.sender_copies += 1;
            let ok = self.behaviour[&b.relay] != Behaviour::Offline;
            if ok {
                self.in_flight
                    .push((now + HOP_MS, self.sender, b.relay, b.subtree));
            }
            // An unreachable relay answers nothing: its subtree goes direct at once. An
            // accepted frame: the relay persisted the job before answering.
            plan.on_relay_answer(&b.relay, ok, now + 2 * HOP_MS);
        }
        while now < until {
            now += 1;
            let due: Vec<InFlight> = extract(&mut self.in_flight, |f| f.0 <= now);
            for (at, from, to, list) in due {
                self.arrive(to, at);
                self.relay(at, to, from, list);
            }
            for (_, device) in extract(&mut self.receipts, |r| r.0 <= now) {
                plan.on_receipt(&device);
            }
            for device in plan.due_direct(now) {
                self.sender_copies += 1;
                if self.behaviour[&device] == Behaviour::Offline {
                    self.mailboxed.push(device);
                } else {
                    self.in_flight
                        .push((now + HOP_MS, self.sender, device, Vec::new()));
                }
            }
            if self.in_flight.is_empty()
                && self.receipts.is_empty()
                && plan.next_deadline().is_none()
            {
                break;
            }
        }
        plan
    }

    /// Every online member showed it exactly once.
    fn assert_each_online_member_shows_it_once(&self) {
        for d in self.others() {
            if self.behaviour[&d] != Behaviour::Offline {
                assert_eq!(self.shown.get(&d), Some(&1), "device {:?}", d[7]);
            }
        }
    }
}

fn extract<T>(v: &mut Vec<T>, pick: impl Fn(&T) -> bool) -> Vec<T> {
    let (out, keep): (Vec<T>, Vec<T>) = v.drain(..).partition(|x| pick(x));
    *v = keep;
    out
}

#[test]
fn with_every_relay_online_the_sender_uploads_at_most_k_copies_and_everyone_has_it() {
    for (n, rotation) in [(49, 0u64), (49, 77), (12, 5), (200, 3), (8, 1)] {
        let mut sim = Sim::new(n, &[]);
        let plan = sim.run(rotation, T0 + 10 * RELAY_RECEIPT_WAIT_MS);
        assert!(
            sim.sender_copies <= RELAY_FANOUT,
            "n={n}: {}",
            sim.sender_copies
        );
        assert_eq!(plan.delivered(), (n, n));
        sim.assert_each_online_member_shows_it_once();
        assert!(sim.received.values().all(|c| *c == 1), "no copy twice");
        // Well before the fallback: the tree's depth in hops.
        let last = sim.first_at.values().max().copied().unwrap_or(T0);
        assert!(last - T0 <= 4 * HOP_MS, "n={n}: {}", last - T0);
    }
}

#[test]
fn an_unreachable_relay_has_its_subtree_sent_by_the_sender_at_once() {
    let all = (1..=49).map(dev).collect::<Vec<_>>();
    let relays: Vec<DeviceId> = sender_branches(&all, 0, RELAY_FANOUT)
        .iter()
        .map(|b| b.relay)
        .collect();
    let offline = usize::try_from(u64::from_be_bytes(relays[2][..8].try_into().unwrap())).unwrap();
    let mut sim = Sim::new(49, &[(offline, Behaviour::Offline)]);
    let plan = sim.run(0, T0 + 10 * RELAY_RECEIPT_WAIT_MS);
    sim.assert_each_online_member_shows_it_once();
    // The offline relay went to its mailbox; its subtree arrived directly, not after the wait.
    assert_eq!(sim.mailboxed, vec![dev(offline)]);
    let last = sim.first_at.values().max().copied().unwrap_or(T0);
    assert!(last - T0 < RELAY_RECEIPT_WAIT_MS);
    assert_eq!(plan.delivered(), (48, 49));
    assert_eq!(plan.route(&dev(offline)), Some(RelayRoute::SentDirect));
}

#[test]
fn a_relay_that_never_forwards_has_its_subtree_sent_directly_after_the_wait() {
    let all = (1..=49).map(dev).collect::<Vec<_>>();
    let branch = sender_branches(&all, 9, RELAY_FANOUT).remove(4);
    let silent =
        usize::try_from(u64::from_be_bytes(branch.relay[..8].try_into().unwrap())).unwrap();
    let mut sim = Sim::new(49, &[(silent, Behaviour::Silent)]);
    let plan = sim.run(9, T0 + 10 * RELAY_RECEIPT_WAIT_MS);
    assert_eq!(plan.delivered(), (49, 49));
    sim.assert_each_online_member_shows_it_once();
    for d in &branch.subtree {
        let at = sim.first_at[d];
        // Not before the wait ran out, and right after it.
        assert!(at >= T0 + RELAY_RECEIPT_WAIT_MS, "{at}");
        assert!(at <= T0 + RELAY_RECEIPT_WAIT_MS + 4 * HOP_MS);
    }
    // The sender paid K copies plus the silent relay's subtree.
    assert_eq!(sim.sender_copies, RELAY_FANOUT + branch.subtree.len());
}

#[test]
fn a_late_relay_and_the_fallback_both_deliver_and_each_member_shows_it_once() {
    let all = (1..=30).map(dev).collect::<Vec<_>>();
    let branch = sender_branches(&all, 2, RELAY_FANOUT).remove(0);
    let late = usize::try_from(u64::from_be_bytes(branch.relay[..8].try_into().unwrap())).unwrap();
    let mut sim = Sim::new(30, &[(late, Behaviour::Late(RELAY_RECEIPT_WAIT_MS + 50))]);
    let plan = sim.run(2, T0 + 10 * RELAY_RECEIPT_WAIT_MS);
    assert_eq!(plan.delivered(), (30, 30));
    // Its subtree got two copies (the fallback's and the late relay's), and shows one.
    for d in &branch.subtree {
        assert_eq!(sim.received[d], 2);
    }
    sim.assert_each_online_member_shows_it_once();
}

/// The dedupe the relay design leans on, on real engines: bob gets alice's group envelope from
/// her, then the same bytes again (as a relay would forward them): the second copy is answered
/// with a signed `REPLAY_DETECTED`, which a sender's (or relay's) outbox counts as delivered
/// (`outcome_of`), and shown nowhere.
#[test]
fn a_relayed_copy_of_an_envelope_already_received_is_answered_and_shown_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.queue_group_text(tx, &session, "once only", T0 + 1))
        .unwrap();
    let envelope = nodes[0]
        .store
        .read()
        .group_outbox_due(T0 + 1, 10)
        .unwrap()
        .remove(0)
        .envelope;
    let (_, events) = pump(&mut nodes, 0, T0 + 1);
    assert_eq!(received_texts(&events, 1), ["once only"]);
    let bob = nodes[1].device();
    let mut again = Vec::new();
    let response = deliver(&mut nodes, &bob, &envelope, T0 + 5, &mut again).unwrap();
    assert!(received_texts(&again, 1).is_empty(), "shown once");
    let status = crate::wire::status_of_response(&response).unwrap();
    assert_eq!(
        status,
        rhizo_core::envelope::ReceiptStatus::Rejected(
            rhizo_core::envelope::ErrorCode::ReplayDetected
        )
    );
    assert!(matches!(
        crate::outbox::outcome_of(status),
        crate::Outcome::Final(rhizo_store::messaging::MessageState::Delivered, None)
    ));
}
