//! Heartbeats and liveness: the map on a simulated clock, and ephemeral sends between two
//! engines on real SQLite stores (gaps, epoch changes, no rows, no rekey, the mailbox rule).

use rhizo_core::{
    RootKey, Uid,
    agent::{BreakerState, Liveness},
    envelope::{DeliveryReceipt, ReceiptStatus, SecureMessage},
    proto::{AgentMessage, Heartbeat, WakeUp, agent_message::Kind},
};
use rhizo_e2e::{E2eStore, RekeyPolicy};
use rhizo_store::{
    Store, StoreError,
    messaging::{Contact, MessageState},
};

use super::*;
use crate::{Engine, Event, MailboxAttempt, send::Queued, wire::RESPONSE_RECEIPT};

/// A fixed clock for the two engines (well inside the replay window of "now").
fn t0() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap())
        .unwrap()
}

fn hb(seq: u64, interval_s: u32) -> Heartbeat {
    Heartbeat {
        seq,
        queued: 2,
        working: 1,
        capacity: 64,
        interval_s,
        at_ms: 0,
    }
}

fn uid(n: u8) -> Uid {
    RootKey::from_bytes(&[n; 32]).public().uid()
}

fn liveness_events(events: &[Event]) -> Vec<Liveness> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AgentLiveness { liveness, .. } => Some(*liveness),
            _ => None,
        })
        .collect()
}

#[test]
fn liveness_goes_alive_late_unreachable_with_time_and_back_with_a_heartbeat() {
    let (mut map, a) = (LivenessMap::new(), uid(1));
    assert_eq!(map.of(&a, 0).0, Liveness::Unknown);
    assert_eq!(map.next_deadline(0), None);
    let ev = map.on_heartbeat(a, &hb(1, 10), 1_000);
    assert_eq!(liveness_events(&ev), [Liveness::Alive]);
    let (live, last, load) = map.of(&a, 1_000);
    assert_eq!((live, last), (Liveness::Alive, Some(1_000)));
    assert_eq!(
        load,
        Some(Load {
            queued: 2,
            working: 1,
            capacity: 64
        })
    );
    // Nothing changes before 1.5 intervals.
    assert_eq!(map.next_deadline(1_000), Some(1_000 + 15_000 + 1));
    assert!(map.changes(16_000).is_empty());
    assert_eq!(liveness_events(&map.changes(16_001)), [Liveness::Late]);
    assert!(map.changes(16_002).is_empty(), "reported once");
    assert_eq!(map.next_deadline(16_001), Some(1_000 + 30_000 + 1));
    assert_eq!(
        liveness_events(&map.changes(31_001)),
        [Liveness::Unreachable]
    );
    assert_eq!(map.next_deadline(31_001), None);
    // A new heartbeat brings it back.
    let ev = map.on_heartbeat(a, &hb(2, 10), 40_000);
    assert_eq!(liveness_events(&ev), [Liveness::Alive]);
    // Another one while alive: no event.
    assert!(map.on_heartbeat(a, &hb(3, 10), 41_000).is_empty());
}

#[test]
fn stale_duplicate_and_zero_seq_heartbeats_change_nothing() {
    let (mut map, a) = (LivenessMap::new(), uid(1));
    map.on_heartbeat(a, &hb(5, 10), 1_000);
    let mut old = hb(5, 10);
    old.queued = 99;
    assert!(map.on_heartbeat(a, &old, 20_000).is_empty());
    old.seq = 4;
    assert!(map.on_heartbeat(a, &old, 20_000).is_empty());
    let (_, last, load) = map.of(&a, 20_000);
    assert_eq!(last, Some(1_000), "the stale one did not refresh it");
    assert_eq!(load.unwrap().queued, 2);
    assert!(map.on_heartbeat(uid(2), &hb(0, 10), 1_000).is_empty());
    assert_eq!(map.of(&uid(2), 1_000).0, Liveness::Unknown);
    // An absurd interval is capped at a day; zero is read as one second.
    let mut map = LivenessMap::new();
    map.on_heartbeat(uid(3), &hb(1, u32::MAX), 0);
    assert_eq!(
        map.next_deadline(0),
        Some(i64::from(MAX_INTERVAL_S) * 1500 + 1)
    );
    let mut map = LivenessMap::new();
    map.on_heartbeat(uid(3), &hb(1, 0), 0);
    assert_eq!(map.next_deadline(0), Some(1_501));
}

#[test]
fn the_map_is_bounded() {
    let mut map = LivenessMap::new();
    for n in 0..(MAX_TRACKED_AGENTS as u32 + 5) {
        let mut seed = [9u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        let u = RootKey::from_bytes(&seed).public().uid();
        map.on_heartbeat(u, &hb(1, 30), i64::from(n));
    }
    assert_eq!(map.peers.len(), MAX_TRACKED_AGENTS);
    assert_eq!(map.known(8).len(), 8);
}

#[test]
fn wake_up_reasons_are_cleaned_and_bounded() {
    let contact = crate::tests::party(1, "alice").contact;
    let ev = on_wake_up(
        &contact,
        &WakeUp {
            reason: format!("new\ttask\u{7}{}", "é".repeat(2000)),
        },
    );
    let [Event::WakeUp { from, reason }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(*from, Uid::from_bytes(&contact.uid).to_string());
    assert!(reason.starts_with("newtask"));
    assert!(reason.len() <= MAX_REASON_BYTES);
}

// ---- two engines ----

struct Node {
    engine: Engine,
    store: Store,
    contact: Contact,
}

struct Pair {
    _tmp: tempfile::TempDir,
    alice: Node,
    bob: Node,
}

fn node(dir: &std::path::Path, seed: u8, name: &str, rekey: RekeyPolicy) -> Node {
    let crate::tests::Party { me, contact, .. } = crate::tests::party(seed, name);
    let path = dir.join(format!("{name}.db"));
    let store = Store::open(&path).unwrap();
    E2eStore::open(&path).unwrap();
    Node {
        engine: Engine::new(me, rekey).unwrap(),
        store,
        contact,
    }
}

/// Alice and bob, contacts of each other, with a conversation alice opened (its Welcome and
/// first text delivered to bob).
fn pair(rekey: RekeyPolicy) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let mut alice = node(tmp.path(), 1, "alice", rekey);
    let mut bob = node(tmp.path(), 2, "bob", RekeyPolicy::default());
    alice
        .store
        .write(|tx| tx.add_contact(&bob.contact, 1))
        .unwrap();
    bob.store
        .write(|tx| tx.add_contact(&alice.contact, 1))
        .unwrap();
    let kp = {
        let mls = E2eStore::from_connection(bob.store.connection()).unwrap();
        rhizo_e2e::create_key_packages(&mls, bob.engine.mls_device(), 1, false)
            .unwrap()
            .remove(0)
    };
    let now = t0();
    alice
        .store
        .write(|tx| alice.engine.send_first(tx, &bob.contact, "hi", &[kp], now))
        .unwrap();
    deliver(&mut alice, &mut bob, now);
    assert_eq!(texts(&bob), 1);
    Pair {
        _tmp: tmp,
        alice,
        bob,
    }
}

impl Pair {
    /// Bob's and alice's UIDs.
    fn uids(&self) -> (Uid, Uid) {
        (
            Uid::from_bytes(&self.bob.contact.uid),
            Uid::from_bytes(&self.alice.contact.uid),
        )
    }
}

/// Queues a text from alice to bob.
fn text_to_bob(alice: &mut Node, text: &str, now: i64) -> Queued {
    let engine = &alice.engine;
    alice
        .store
        .write(|tx| engine.queue_text(tx, "bob", text, now))
        .unwrap()
}

/// Sends `from`'s due outbox to `to` and writes the answers; the events `to` produced.
fn deliver(from: &mut Node, to: &mut Node, now: i64) -> Vec<Event> {
    let transmits = from.engine.poll_transmits(&from.store.read(), now).unwrap();
    let mut events = Vec::new();
    for t in transmits {
        let inbound = handle(to, &t.frame, now);
        events.extend(inbound.events);
        let device = t.targets()[0].device;
        from.store
            .write(|tx| {
                from.engine
                    .on_transmit_result(tx, &t, vec![(device, Ok(inbound.response))], now)
            })
            .unwrap();
    }
    events
}

fn handle(to: &mut Node, frame: &[u8], now: i64) -> crate::Inbound {
    to.store
        .write(|tx| Ok::<_, StoreError>(to.engine.handle_frame(tx, frame, now)))
        .unwrap()
}

fn status(response: &[u8]) -> ReceiptStatus {
    assert_eq!(response[0], RESPONSE_RECEIPT, "expected a receipt");
    DeliveryReceipt::decode(&response[1..]).unwrap().entries[0].status
}

/// Message rows on `node` (every kind, both directions).
fn texts(node: &Node) -> i64 {
    node.store
        .connection()
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap()
}

fn seal_hb(from: &mut Node, to: &Uid, seq_hint: u32, now: i64) -> Option<Ephemeral> {
    let engine = &from.engine;
    from.store
        .write(|tx| {
            engine.seal_heartbeat(
                tx,
                to,
                Load {
                    queued: seq_hint,
                    working: 0,
                    capacity: 8,
                },
                1,
                now,
            )
        })
        .unwrap()
}

fn seq_of(frame: &[u8]) -> u64 {
    SecureMessage::decode(frame).unwrap().sequence_num
}

#[test]
fn a_heartbeat_makes_the_sender_alive_and_stores_no_row_on_either_side() {
    let p = pair(RekeyPolicy::default());
    let (bob_uid, alice_uid) = p.uids();
    let Pair {
        _tmp,
        mut alice,
        mut bob,
    } = p;
    let now = t0();
    let (rows_a, rows_b) = (texts(&alice), texts(&bob));
    let e = seal_hb(&mut alice, &bob_uid, 3, now).unwrap();
    assert_eq!(e.targets().len(), 1);
    assert_eq!(texts(&alice), rows_a, "no message row, no outbox entry");
    assert!(
        alice
            .engine
            .poll_transmits(&alice.store.read(), now)
            .unwrap()
            .is_empty()
    );
    let inbound = handle(&mut bob, &e.frame, now);
    assert_eq!(status(&inbound.response), ReceiptStatus::Delivered);
    assert_eq!(liveness_events(&inbound.events), [Liveness::Alive]);
    assert_eq!(texts(&bob), rows_b, "never a chat row");
    let s = bob.engine.agent_status(&alice_uid, now);
    assert_eq!(s.liveness, Liveness::Alive);
    assert_eq!(s.last_heartbeat, Some(now));
    assert_eq!(s.load.unwrap().queued, 3);
    assert_eq!(s.breaker, BreakerState::Closed);
    // Time alone: late, then unreachable (interval 1 s).
    let at = bob.engine.next_liveness_deadline(now).unwrap();
    assert_eq!(
        liveness_events(&bob.engine.liveness_changes(at)),
        [Liveness::Late]
    );
    let at = bob.engine.next_liveness_deadline(at).unwrap();
    assert_eq!(
        liveness_events(&bob.engine.liveness_changes(at)),
        [Liveness::Unreachable]
    );
    // A wake_up rides the same way here and reaches the driver as an event.
    let wake = AgentMessage {
        kind: Some(Kind::WakeUp(WakeUp {
            reason: "work".into(),
        })),
    };
    let engine = &alice.engine;
    let e = alice
        .store
        .write(|tx| engine.seal_ephemeral(tx, &bob_uid, wake, now))
        .unwrap()
        .unwrap();
    let inbound = handle(&mut bob, &e.frame, now);
    assert!(
        matches!(inbound.events.as_slice(), [Event::WakeUp { reason, .. }] if reason == "work")
    );
}

#[test]
fn lost_heartbeats_leave_gaps_that_never_block_later_messages() {
    let p = pair(RekeyPolicy::default());
    let (bob_uid, _) = p.uids();
    let Pair {
        _tmp,
        mut alice,
        mut bob,
    } = p;
    let now = t0();
    // Three heartbeats lost on the way, then one arrives.
    let lost: Vec<_> = (0..3)
        .map(|_| seal_hb(&mut alice, &bob_uid, 0, now).unwrap())
        .collect();
    let arrives = seal_hb(&mut alice, &bob_uid, 0, now).unwrap();
    assert!(seq_of(&arrives.frame) > seq_of(&lost[2].frame));
    let inbound = handle(&mut bob, &arrives.frame, now);
    assert_eq!(status(&inbound.response), ReceiptStatus::Delivered);
    // The next text goes through the outbox and is delivered despite the gaps.
    let q = text_to_bob(&mut alice, "after the gap", now);
    let Queued::Message { row, .. } = q else {
        panic!("no conversation")
    };
    assert!(
        row.seq > seq_of(&arrives.frame),
        "sequence numbers are never reused"
    );
    let events = deliver(&mut alice, &mut bob, now);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MessageReceived { text, .. } if text == "after the gap"))
    );
    // A lost heartbeat that shows up late is a stale one: refused or ignored, changing nothing.
    let inbound = handle(&mut bob, &lost[0].frame, now);
    assert!(liveness_events(&inbound.events).is_empty());
    assert_eq!(texts(&bob), 2);
}

#[test]
fn an_old_heartbeat_after_an_epoch_change_is_refused_harmlessly_and_no_ephemeral_send_rekeys() {
    // Alice rekeys after every 2 messages she encrypts.
    let Pair {
        _tmp,
        mut alice,
        mut bob,
    } = pair(RekeyPolicy {
        max_messages: 2,
        max_age_secs: u64::MAX,
    });
    let bob_uid = Uid::from_bytes(&bob.contact.uid);
    let alice_uid = Uid::from_bytes(&alice.contact.uid);
    let now = t0();
    let old = seal_hb(&mut alice, &bob_uid, 0, now).unwrap();
    let old2 = seal_hb(&mut alice, &bob_uid, 0, now).unwrap();
    // Sealing ephemerals past the rekey threshold queued no commit.
    assert!(
        alice
            .engine
            .poll_transmits(&alice.store.read(), now)
            .unwrap()
            .is_empty()
    );
    // The next text brings the self-update commit (a new epoch) first; bob applies both.
    text_to_bob(&mut alice, "rekeyed", now);
    let transmits = alice
        .engine
        .poll_transmits(&alice.store.read(), now)
        .unwrap();
    assert_eq!(transmits.iter().map(|t| t.items.len()).sum::<usize>(), 2);
    assert_eq!(transmits[0].items[0].kind, "commit");
    deliver(&mut alice, &mut bob, now);
    assert_eq!(texts(&bob), 2);
    // A fresh heartbeat in the new epoch.
    let fresh = seal_hb(&mut alice, &bob_uid, 0, now).unwrap();
    let inbound = handle(&mut bob, &fresh.frame, now);
    assert_eq!(status(&inbound.response), ReceiptStatus::Delivered);
    let last = bob.engine.agent_status(&alice_uid, now).last_heartbeat;
    // The old ones (previous epoch, lower seq) change nothing; later messages still go.
    for frame in [&old.frame, &old2.frame] {
        let inbound = handle(&mut bob, frame, now + 10);
        assert_eq!(inbound.response[0], RESPONSE_RECEIPT);
        assert!(liveness_events(&inbound.events).is_empty());
    }
    assert_eq!(
        bob.engine.agent_status(&alice_uid, now + 10).last_heartbeat,
        last
    );
    text_to_bob(&mut alice, "still fine", now);
    deliver(&mut alice, &mut bob, now);
    assert_eq!(texts(&bob), 3);
}

#[test]
fn ephemeral_sends_stop_after_the_bound_until_the_agent_is_heard_from() {
    let p = pair(RekeyPolicy::default());
    let (bob_uid, alice_uid) = p.uids();
    let Pair {
        _tmp,
        mut alice,
        mut bob,
    } = p;
    let now = t0();
    // Nobody to send to: not a contact.
    assert!(seal_hb(&mut alice, &uid(77), 0, now).is_none());
    for _ in 0..MAX_UNCONFIRMED_EPHEMERAL {
        assert!(seal_hb(&mut alice, &bob_uid, 0, now).is_some());
    }
    assert!(seal_hb(&mut alice, &bob_uid, 0, now).is_none(), "bounded");
    // Bob answers with a heartbeat of his own (bob has a conversation with alice too).
    let e = seal_hb(&mut bob, &alice_uid, 0, now).unwrap();
    let inbound = handle(&mut alice, &e.frame, now);
    assert_eq!(liveness_events(&inbound.events), [Liveness::Alive]);
    let e = seal_hb(&mut alice, &bob_uid, 0, now).unwrap();
    // The gap of 256 generations is still within what bob's MLS accepts.
    assert_eq!(
        status(&handle(&mut bob, &e.frame, now).response),
        ReceiptStatus::Delivered
    );
    alice.engine.note_ephemeral_answered(&bob_uid);
}

#[test]
fn a_transmit_to_an_unreachable_agent_goes_straight_to_its_mailbox() {
    let p = pair(RekeyPolicy::default());
    let (bob_uid, alice_uid) = p.uids();
    let Pair {
        _tmp,
        mut alice,
        mut bob,
    } = p;
    let now = t0();
    // Bob's heartbeat (interval 1 s) reaches alice, then bob goes silent.
    let e = seal_hb(&mut bob, &alice_uid, 0, now).unwrap();
    handle(&mut alice, &e.frame, now);
    let later = now + 3_001;
    assert_eq!(
        alice.engine.agent_status(&bob_uid, later).liveness,
        Liveness::Unreachable
    );
    text_to_bob(&mut alice, "for the mailbox", later);
    let transmits = alice
        .engine
        .poll_transmits(&alice.store.read(), later)
        .unwrap();
    let [t] = transmits.as_slice() else {
        panic!("{transmits:?}")
    };
    assert!(t.mailbox_only);
    assert!(t.targets().is_empty(), "no direct attempt");
    let result = alice
        .store
        .write(|tx| alice.engine.on_transmit_result(tx, t, Vec::new(), later))
        .unwrap();
    assert!(result.unreachable.unwrap().contains("mailbox"));
    let item = &t.items[0];
    let events = alice
        .store
        .write(|tx| {
            alice.engine.on_mailbox_result(
                tx,
                item,
                &t.contact,
                "unreachable",
                &MailboxAttempt {
                    stored_on: Some(3),
                    ..MailboxAttempt::default()
                },
                later,
            )
        })
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Event::MessageState {
            state: MessageState::Stored,
            ..
        }]
    ));
    // While alive, the direct path is used as usual.
    let e = seal_hb(&mut bob, &alice_uid, 0, later).unwrap();
    handle(&mut alice, &e.frame, later);
    text_to_bob(&mut alice, "direct", later);
    let transmits = alice
        .engine
        .poll_transmits(&alice.store.read(), later)
        .unwrap();
    assert!(
        transmits
            .iter()
            .all(|t| !t.mailbox_only && !t.targets().is_empty())
    );
    let _ = deliver(&mut alice, &mut bob, later);
}

#[test]
fn the_breaker_opens_on_agent_delivery_failures_and_shows_in_the_status() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = node(tmp.path(), 1, "alice", RekeyPolicy::default());
    let b = uid(2);
    for _ in 0..crate::agents::breaker::BREAKER_FAILURES {
        assert!(alice.engine.check_agent(&b, 0).is_ok());
        alice.engine.note_agent_outcome(&b, false, 0);
    }
    assert_eq!(alice.engine.agent_status(&b, 1).breaker, BreakerState::Open);
    let open = alice.engine.check_agent(&b, 1).unwrap_err();
    assert!(open.to_string().contains("resume"));
    alice.engine.note_agent_outcome(&b, true, 2);
    assert_eq!(
        alice.engine.agent_status(&b, 2).breaker,
        BreakerState::Closed
    );
}

/// Alice delegates a one-line task to bob.
fn delegate(
    alice: &mut Node,
    now: i64,
) -> Result<crate::agents::Delegated, crate::agents::TaskError> {
    let engine = &alice.engine;
    let new = rhizo_core::agent::NewTask {
        to: "bob".into(),
        text: Some("do it".into()),
        ..rhizo_core::agent::NewTask::default()
    };
    let id = rhizo_core::agent::TaskId::random().unwrap();
    alice.store.write(|tx| engine.delegate(tx, &new, id, now))
}

/// Bob ends the task `id` in `state`.
fn finish(bob: &mut Node, id: &str, state: rhizo_core::agent::TaskState, now: i64) {
    let engine = &bob.engine;
    let input = rhizo_core::agent::TaskUpdateInput {
        state,
        text: None,
        message: None,
        artifacts: Vec::new(),
        reason: Some("because".into()),
    };
    let id = id.parse().unwrap();
    bob.store
        .write(|tx| engine.update_task(tx, id, &input, now))
        .unwrap();
}

#[test]
fn failed_tasks_open_the_breaker_delegate_fails_fast_and_a_completed_trial_closes_it() {
    use crate::agents::{Delegated, TaskError, breaker::BREAKER_BASE_BACKOFF_MS};
    use rhizo_core::agent::TaskState;
    let p = pair(RekeyPolicy::default());
    let (bob_uid, _) = p.uids();
    let Pair {
        _tmp,
        mut alice,
        mut bob,
    } = p;
    let now = t0();
    let round = |alice: &mut Node, bob: &mut Node, end: TaskState, now: i64| {
        let Ok(Delegated::Task(task)) = delegate(alice, now) else {
            panic!("not delegated")
        };
        deliver(alice, bob, now);
        finish(bob, &task.id, end, now);
        deliver(bob, alice, now);
        deliver(alice, bob, now);
    };
    for end in [TaskState::Failed, TaskState::Rejected, TaskState::Failed] {
        round(&mut alice, &mut bob, end, now);
    }
    // A completed task in between resets the count.
    round(&mut alice, &mut bob, TaskState::Completed, now);
    for _ in 0..crate::agents::breaker::BREAKER_FAILURES {
        assert_eq!(
            alice.engine.agent_status(&bob_uid, now).breaker,
            BreakerState::Closed
        );
        round(&mut alice, &mut bob, TaskState::Failed, now);
    }
    assert_eq!(
        alice.engine.agent_status(&bob_uid, now).breaker,
        BreakerState::Open
    );
    let Err(TaskError::AgentUnavailable { open, .. }) = delegate(&mut alice, now + 1) else {
        panic!("delegate should fail fast")
    };
    assert_eq!(open.retry_at, now + BREAKER_BASE_BACKOFF_MS);
    // After the backoff: one trial goes through, a second waits for it.
    let later = now + BREAKER_BASE_BACKOFF_MS;
    let Ok(Delegated::Task(trial)) = delegate(&mut alice, later) else {
        panic!("the trial should go through")
    };
    assert!(matches!(
        delegate(&mut alice, later),
        Err(TaskError::AgentUnavailable { .. })
    ));
    deliver(&mut alice, &mut bob, later);
    finish(&mut bob, &trial.id, TaskState::Completed, later);
    deliver(&mut bob, &mut alice, later);
    assert_eq!(
        alice.engine.agent_status(&bob_uid, later).breaker,
        BreakerState::Closed
    );
    assert!(matches!(
        delegate(&mut alice, later),
        Ok(Delegated::Task(_))
    ));
}
