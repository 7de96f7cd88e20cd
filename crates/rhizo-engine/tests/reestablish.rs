//! A 1:1 conversation the recipient lost is started anew by the sender's engine, with no user
//! action: the recipient answers UNKNOWN_SESSION (its state is gone) or cannot open the
//! Welcome (DECRYPTION_FAILED: its KeyPackage is gone); the messages not yet delivered wait,
//! still queued, and move in their original order (same row ids) into a new conversation made
//! from fresh KeyPackages; bounded attempts, then a clear failure.
//!
//! Real engines on real SQLite files in temp dirs, real MLS; the network is direct calls and
//! the clock is simulated.

use rhizo_core::agent::{NewTask, TaskId, TaskState};
use rhizo_core::mailbox::FetchedEntry;
use rhizo_core::records::{ValidRecord, validate_record};
use rhizo_core::{DeviceKey, RootKey};
use rhizo_e2e::{E2eStore, RekeyPolicy};
use rhizo_engine::contacts::peer_id_of_device;
use rhizo_engine::outbox::DeviceAnswer;
use rhizo_engine::reestablish::{MAX_REESTABLISH_ATTEMPTS, REESTABLISH_DELAYS_MS};
use rhizo_engine::send::Queued;
use rhizo_engine::{Engine, EngineError, Event, Me, agents::Delegated};
use rhizo_store::messaging::{Contact, ContactDevice, MessageState};
use rhizo_store::{Store, StoreError};

/// The parties' names by seed.
const NAMES: [&str; 3] = ["", "alice", "bob"];

/// The simulated clock's start (unix ms).
const T0: i64 = 1_800_000_000_000;

fn me(seed: u8, name: &str) -> Me {
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed.wrapping_add(100); 32]);
    let certificate = root.certify_device(&device.public(), 1);
    Me::primary(root, device, certificate, Some(name.into()))
}

fn contact(seed: u8, name: &str) -> Contact {
    let me = me(seed, name);
    let device = me.device.public();
    Contact {
        uid: *me.uid.as_bytes(),
        root_pk: *me.root_public.as_bytes(),
        name: name.into(),
        verified: true,
        added_at: 0,
        devices: vec![ContactDevice {
            device_pk: *device.as_bytes(),
            peer_id: peer_id_of_device(&device)
                .expect("a device key is a PeerId")
                .to_string(),
            addrs: vec![],
            certificate: None,
        }],
    }
}

/// One side: an engine and its database (a new file is a node that lost its state).
struct Side {
    engine: Engine,
    store: Store,
}

impl Side {
    /// Side `seed` on database `file` in `dir`, with the other side as a contact.
    fn open(dir: &tempfile::TempDir, file: &str, seed: u8, other: u8) -> Self {
        let mut side = Self::stranger(dir, file, seed);
        let other = contact(other, NAMES[other as usize]);
        side.store
            .write(|tx| tx.add_contact(&other, 1))
            .expect("contact");
        side
    }

    /// Side `seed` on database `file` in `dir`, with no contact.
    fn stranger(dir: &tempfile::TempDir, file: &str, seed: u8) -> Self {
        let path = dir.path().join(file);
        let store = Store::open(&path).expect("store");
        E2eStore::open(&path).expect("MLS tables");
        let engine = Engine::with_seed(
            me(seed, NAMES[seed as usize]),
            RekeyPolicy::default(),
            u64::from(seed) * 1_000 + file.len() as u64,
        )
        .expect("engine");
        Self { engine, store }
    }

    /// One of this side's current KeyPackages, as a sender picks it from the DHT.
    fn key_package(&mut self, picker: &Engine, now: i64) -> Vec<u8> {
        let engine = &self.engine;
        let (key, record) = self
            .store
            .write(|tx| engine.key_package_record(tx, now))
            .expect("KeyPackages");
        let secs = u64::try_from(now / 1000).expect("positive");
        let Ok(ValidRecord::KeyPackages(bundle)) = validate_record(&key, &record, secs) else {
            panic!("the KeyPackage bundle does not validate");
        };
        picker.choose_key_package(&bundle).expect("a KeyPackage")
    }

    /// A first text to bob in a new conversation from `key_package`; its row id.
    fn send_first(&mut self, text: &str, key_package: Vec<u8>, now: i64) -> i64 {
        let engine = &self.engine;
        self.store
            .write(|tx| engine.send_first(tx, &contact(2, "bob"), text, &[key_package], now))
            .expect("first message")
            .id
    }

    /// The engine's own attempt at a new conversation with bob, from `key_packages`.
    fn reestablish(
        &mut self,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<Event>, EngineError> {
        let engine = &self.engine;
        self.store
            .write(|tx| engine.reestablish(tx, &contact(2, "bob"), key_packages, now))
    }

    /// No message waits for a new conversation, now or later.
    fn nothing_parked(&self) -> bool {
        self.engine
            .due_reestablishments(&self.store.read(), i64::MAX - 1)
            .expect("due")
            .is_empty()
    }

    fn error(&self, id: i64) -> String {
        let row = self.store.read().message(id).expect("read").expect("row");
        row.error.unwrap_or_default()
    }

    fn state(&self, id: i64) -> MessageState {
        self.store
            .read()
            .message(id)
            .expect("read")
            .expect("row")
            .state
    }

    /// The texts received from `from`, in history order.
    fn received(&self, from: &Contact) -> Vec<String> {
        let reader = self.store.read();
        let mut rows = Vec::new();
        for c in reader.conversations_with(&from.uid).expect("read") {
            rows.extend(reader.messages(&c.session_id, 100).expect("read"));
        }
        rows.retain(|m| !m.outgoing);
        rows.sort_by_key(|m| (m.sent_at, m.seq));
        rows.into_iter().filter_map(|m| m.body).collect()
    }
}

/// Sends everything due from `from` to `to` (direct delivery, answers back), until nothing is
/// due at `now`; the sender's events, and the texts `to` received, in order.
fn deliver(from: &mut Side, to: &mut Side, now: i64) -> (Vec<Event>, Vec<String>) {
    let device = to.engine.me().device.public();
    let (mut events, mut texts) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let transmits = from
            .engine
            .poll_transmits(&from.store.read(), now)
            .expect("poll");
        if transmits.is_empty() {
            break;
        }
        for t in transmits {
            let engine = &to.engine;
            let inbound = to
                .store
                .write(|tx| Ok::<_, StoreError>(engine.handle_frame(tx, &t.frame, now)))
                .expect("recipient commits");
            for e in inbound.events {
                match e {
                    Event::MessageReceived { text, .. } => texts.push(text),
                    Event::TaskReceived { task_id, .. } => texts.push(format!("task {task_id}")),
                    _ => {}
                }
            }
            let answers: Vec<DeviceAnswer> = vec![(device, Ok(inbound.response))];
            let engine = &from.engine;
            let result = from
                .store
                .write(|tx| engine.on_transmit_result(tx, &t, answers, now))
                .expect("outcome");
            assert!(result.unreachable.is_none(), "{:?}", result.unreachable);
            events.extend(result.events);
        }
    }
    (events, texts)
}

/// Alice and bob with a conversation (alice's "hello" delivered).
fn established(dir: &tempfile::TempDir) -> (Side, Side) {
    let mut alice = Side::open(dir, "alice.db", 1, 2);
    let mut bob = Side::open(dir, "bob.db", 2, 1);
    let kp = bob.key_package(&alice.engine, T0);
    alice.send_first("hello", kp, T0);
    let (_, texts) = deliver(&mut alice, &mut bob, T0);
    assert_eq!(texts, ["hello"]);
    (alice, bob)
}

fn reestablishing(events: &[Event]) -> Option<u32> {
    events.iter().find_map(|e| match e {
        Event::ConversationReestablishing { messages, .. } => Some(*messages),
        _ => None,
    })
}

#[test]
fn a_conversation_the_recipient_lost_is_started_anew_and_its_texts_arrive_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut alice, _bob) = established(&dir);
    // Bob's node lost its state (a fresh database: no conversation, new KeyPackages).
    let mut bob = Side::open(&dir, "bob-restored.db", 2, 1);
    let t1 = T0 + 60_000;
    let ids: Vec<i64> = ["one", "two", "three"]
        .iter()
        .map(|t| queue(&mut alice, &mut bob, t, t1))
        .collect();
    let (events, texts) = deliver(&mut alice, &mut bob, t1);
    assert!(texts.is_empty());
    assert_eq!(reestablishing(&events), Some(3), "{events:?}");
    for id in &ids {
        assert_eq!(alice.state(*id), MessageState::Queued, "parked, not failed");
    }
    let reader = alice.store.read();
    assert!(
        alice
            .engine
            .poll_transmits(&reader, t1)
            .expect("poll")
            .is_empty()
    );
    // Not before the first delay: the recipient republishes its bundle meanwhile.
    let first = t1 + REESTABLISH_DELAYS_MS[0];
    assert!(
        alice
            .engine
            .due_reestablishments(&reader, first - 1)
            .expect("due")
            .is_empty()
    );
    let due = alice
        .engine
        .due_reestablishments(&reader, first)
        .expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].messages, due[0].attempts), (3, 0));
    assert!(due[0].needs_key_packages);
    // The driver fetched bob's fresh KeyPackages.
    let kp = bob.key_package(&alice.engine, first);
    assert_eq!(due[0].contact.name, "bob");
    let events = alice.reestablish(&[kp], first).expect("re-established");
    assert!(
        events.contains(&Event::ConversationReestablished {
            contact: "bob".into(),
            messages: 3
        }),
        "{events:?}"
    );
    let (_, texts) = deliver(&mut alice, &mut bob, first);
    assert_eq!(texts, ["one", "two", "three"], "in the original order");
    for id in &ids {
        assert_eq!(alice.state(*id), MessageState::Delivered, "the same rows");
    }
    assert_eq!(bob.received(&contact(1, "alice")), ["one", "two", "three"]);
    assert!(alice.nothing_parked());
    // The new conversation is the open one: the next text goes straight in it.
    let later = queue(&mut alice, &mut bob, "four", first + 1_000);
    let (_, texts) = deliver(&mut alice, &mut bob, first + 1_000);
    assert_eq!(texts, ["four"]);
    assert_eq!(alice.state(later), MessageState::Delivered);
}

#[test]
fn a_welcome_the_recipient_cannot_open_is_sent_again_and_a_send_meanwhile_keeps_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut alice = Side::open(&dir, "alice.db", 1, 2);
    let mut bob = Side::open(&dir, "bob.db", 2, 1);
    // A KeyPackage bob no longer holds (made by a copy of his node that is gone).
    let mut lost = Side::open(&dir, "bob-lost.db", 2, 1);
    let stale = lost.key_package(&alice.engine, T0);
    let first = alice.send_first("first", stale, T0);
    let (events, texts) = deliver(&mut alice, &mut bob, T0);
    assert!(texts.is_empty());
    assert_eq!(reestablishing(&events), Some(1), "{events:?}");
    assert_eq!(alice.state(first), MessageState::Queued);
    // The user sends again before the engine's own attempt: the new conversation takes the
    // waiting text first.
    let t1 = T0 + 2_000;
    let engine = &alice.engine;
    let queued = alice
        .store
        .write(|tx| engine.queue_text(tx, "bob", "second", t1))
        .expect("queue");
    assert!(matches!(queued, Queued::FirstMessage(_)));
    let kp = bob.key_package(&alice.engine, t1);
    let second = alice.send_first("second", kp, t1);
    let (_, texts) = deliver(&mut alice, &mut bob, t1);
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(alice.state(first), MessageState::Delivered);
    assert_eq!(alice.state(second), MessageState::Delivered);
    assert!(alice.nothing_parked());
}

#[test]
fn attempts_are_bounded_and_the_last_failure_says_what_happened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut alice, _bob) = established(&dir);
    let mut bob = Side::open(&dir, "bob-restored.db", 2, 1);
    let t1 = T0 + 60_000;
    let id = queue(&mut alice, &mut bob, "one", t1);
    let (events, _) = deliver(&mut alice, &mut bob, t1);
    assert_eq!(reestablishing(&events), Some(1));
    let mut now = t1;
    let bob_contact = contact(2, "bob");
    for attempt in 0..MAX_REESTABLISH_ATTEMPTS {
        let delay = REESTABLISH_DELAYS_MS[attempt as usize];
        let reader = alice.store.read();
        assert!(
            alice
                .engine
                .due_reestablishments(&reader, now + delay - 1)
                .expect("due")
                .is_empty(),
            "attempt {attempt} comes after its delay"
        );
        let due = alice
            .engine
            .due_reestablishments(&reader, now + delay)
            .expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempts, attempt);
        now += delay;
        // No KeyPackage found (or none works): the engine is told.
        let err = alice.reestablish(&[], now);
        let engine = &alice.engine;
        assert!(err.is_err(), "no KeyPackage: no conversation");
        let events = alice
            .store
            .write(|tx| engine.reestablish_failed(tx, &bob_contact, "no KeyPackage found", now))
            .expect("recorded");
        let last = attempt + 1 == MAX_REESTABLISH_ATTEMPTS;
        assert_eq!(
            alice.state(id),
            if last {
                MessageState::Failed
            } else {
                MessageState::Queued
            }
        );
        let failed = events.iter().find_map(|e| match e {
            Event::ConversationReestablishFailed {
                error, messages, ..
            } => Some((error.clone(), *messages)),
            _ => None,
        });
        assert_eq!(failed.is_some(), last, "{events:?}");
        if let Some((error, messages)) = failed {
            assert_eq!(messages, 1);
            assert!(error.contains("no new one could be started"), "{error}");
            assert!(events.contains(&Event::MessageState {
                id,
                contact: "bob".into(),
                state: MessageState::Failed
            }));
        }
    }
    assert!(alice.nothing_parked());
    assert!(alice.error(id).contains("send again"));
}

#[test]
fn a_contact_that_keeps_losing_conversations_is_not_asked_for_ever() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut alice, _bob) = established(&dir);
    let mut now = T0 + 1_000;
    let mut parked = 0;
    for round in 0..5u8 {
        // Each round bob's node comes back without the conversation.
        let mut bob = Side::open(&dir, &format!("bob-{round}.db"), 2, 1);
        now += 1_000;
        let id = queue(&mut alice, &mut bob, &format!("text {round}"), now);
        let (events, _) = deliver(&mut alice, &mut bob, now);
        if reestablishing(&events).is_none() {
            assert_eq!(alice.state(id), MessageState::Failed);
            assert!(alice.error(id).contains("lost within an hour"));
            break;
        }
        parked += 1;
        // The engine's own attempt, with bob's new KeyPackage: the text moves and arrives.
        now += REESTABLISH_DELAYS_MS[0];
        let kp = bob.key_package(&alice.engine, now);
        alice.reestablish(&[kp], now).expect("re-established");
        let (_, texts) = deliver(&mut alice, &mut bob, now);
        assert_eq!(texts, [format!("text {round}")]);
    }
    assert_eq!(
        parked, 3,
        "three lost conversations within the hour, not more"
    );
}

/// Queues `text` to bob: in the open conversation, or as a first message with bob's
/// KeyPackage.
fn queue(alice: &mut Side, bob: &mut Side, text: &str, now: i64) -> i64 {
    let engine = &alice.engine;
    match alice
        .store
        .write(|tx| engine.queue_text(tx, "bob", text, now))
        .expect("queue")
    {
        Queued::Message { row, .. } => row.id,
        Queued::FirstMessage(_) => {
            let kp = bob.key_package(&alice.engine, now);
            alice.send_first(text, kp, now)
        }
        Queued::UnknownContact => panic!("bob is a contact"),
    }
}

#[test]
fn a_task_is_delegated_again_with_the_same_id_between_the_texts_around_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut alice, _bob) = established(&dir);
    let mut bob = Side::open(&dir, "bob-restored.db", 2, 1);
    let t1 = T0 + 60_000;
    let before = queue(&mut alice, &mut bob, "before", t1);
    let task_id = TaskId([7; 16]);
    let new = NewTask {
        to: "bob".into(),
        text: Some("summarize this".into()),
        ..NewTask::default()
    };
    let engine = &alice.engine;
    let delegated = alice
        .store
        .write(|tx| engine.delegate(tx, &new, task_id, t1))
        .expect("delegated");
    assert!(matches!(delegated, Delegated::Task(_)));
    let after = queue(&mut alice, &mut bob, "after", t1);
    let (events, received) = deliver(&mut alice, &mut bob, t1);
    assert!(received.is_empty());
    assert_eq!(reestablishing(&events), Some(3), "{events:?}");
    let first = t1 + REESTABLISH_DELAYS_MS[0];
    let kp = bob.key_package(&alice.engine, first);
    alice.reestablish(&[kp], first).expect("re-established");
    let (_, received) = deliver(&mut alice, &mut bob, first);
    assert_eq!(
        received,
        [
            "before".to_string(),
            format!("task {task_id}"),
            "after".into()
        ]
    );
    assert_eq!(alice.state(before), MessageState::Delivered);
    assert_eq!(alice.state(after), MessageState::Delivered);
    let task = alice
        .engine
        .task(&alice.store.read(), task_id)
        .expect("read")
        .expect("the task");
    assert!(!task.status.state.is_terminal(), "the task lives on");
}

#[test]
fn a_welcome_refused_in_a_receipt_after_the_request_was_accepted_is_sent_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut alice = Side::open(&dir, "alice.db", 1, 2);
    // Bob does not know alice: her first message is held as a message request.
    let mut bob = Side::stranger(&dir, "bob.db", 2);
    let mut lost = Side::open(&dir, "bob-lost.db", 2, 1);
    let stale = lost.key_package(&alice.engine, T0);
    let first = alice.send_first("first", stale, T0);
    deliver(&mut alice, &mut bob, T0);
    assert_eq!(alice.state(first), MessageState::Sent, "held");
    // Bob accepts; the Welcome's KeyPackage is gone, so the refusal goes back in a receipt.
    let t1 = T0 + 30_000;
    let alice_uid = contact(1, "alice").uid;
    let held = bob
        .store
        .write(|tx| {
            tx.add_contact(&contact(1, "alice"), 2)?;
            tx.held_envelopes(&alice_uid)
        })
        .expect("held");
    let entries = held
        .into_iter()
        .map(|e| FetchedEntry {
            envelope: e.into(),
            expires_at_ms: u64::MAX,
        })
        .collect();
    let engine = &bob.engine;
    bob.store
        .write(|tx| engine.apply_fetched(tx, entries, t1))
        .expect("applied");
    bob.store
        .write(|tx| tx.take_request(&alice_uid))
        .expect("request taken");
    let mut events = Vec::new();
    for t in bob
        .engine
        .poll_transmits(&bob.store.read(), t1)
        .expect("poll")
    {
        let engine = &alice.engine;
        let inbound = alice
            .store
            .write(|tx| Ok::<_, StoreError>(engine.handle_frame(tx, &t.frame, t1)))
            .expect("alice commits");
        events.extend(inbound.events);
    }
    assert_eq!(reestablishing(&events), Some(1), "{events:?}");
    assert_eq!(alice.state(first), MessageState::Queued, "parked again");
    let due = t1 + REESTABLISH_DELAYS_MS[0];
    let kp = bob.key_package(&alice.engine, due);
    alice.reestablish(&[kp], due).expect("re-established");
    let (_, texts) = deliver(&mut alice, &mut bob, due);
    assert_eq!(texts, ["first"]);
    assert_eq!(alice.state(first), MessageState::Delivered);
}

#[test]
fn other_agent_messages_move_too_in_order_as_the_same_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut alice, _bob) = established(&dir);
    let mut bob = Side::open(&dir, "bob-restored.db", 2, 1);
    let t1 = T0 + 60_000;
    let before = queue(&mut alice, &mut bob, "before", t1);
    let task_id = TaskId([9; 16]);
    let new = NewTask {
        to: "bob".into(),
        text: Some("count the words".into()),
        ..NewTask::default()
    };
    let engine = &alice.engine;
    let bob_contact = contact(2, "bob");
    alice
        .store
        .write(|tx| {
            engine.delegate(tx, &new, task_id, t1)?;
            // A cancel and a capability query wait behind the delegation.
            engine.cancel_task(tx, task_id, t1)?;
            engine.query_capabilities(tx, &bob_contact, t1)?;
            Ok::<_, rhizo_engine::agents::TaskError>(())
        })
        .expect("queued");
    let after = queue(&mut alice, &mut bob, "after", t1);
    // The rows between the two texts (ids grow in queue order).
    let agent_rows: Vec<i64> = {
        let reader = alice.store.read();
        (before + 1..after)
            .filter_map(|id| reader.message(id).expect("read"))
            .filter(|m| m.kind == "agent")
            .map(|m| m.id)
            .collect()
    };
    assert_eq!(agent_rows.len(), 3, "delegation, cancel, query");
    let (events, received) = deliver(&mut alice, &mut bob, t1);
    assert!(received.is_empty());
    assert_eq!(reestablishing(&events), Some(5), "{events:?}");
    let first = t1 + REESTABLISH_DELAYS_MS[0];
    let kp = bob.key_package(&alice.engine, first);
    let events = alice.reestablish(&[kp], first).expect("re-established");
    assert!(
        events.contains(&Event::ConversationReestablished {
            contact: "bob".into(),
            messages: 5
        }),
        "nothing failed: {events:?}"
    );
    let (_, received) = deliver(&mut alice, &mut bob, first);
    assert_eq!(
        received,
        [
            "before".to_string(),
            format!("task {task_id}"),
            "after".into()
        ]
    );
    for id in [before, after].iter().chain(&agent_rows) {
        assert_eq!(alice.state(*id), MessageState::Delivered, "row {id}");
    }
    // The cancel came after the delegation (same task id): bob's copy is canceled, and his
    // answer ends alice's task.
    let worker = bob
        .engine
        .task(&bob.store.read(), task_id)
        .expect("read")
        .expect("bob holds the task");
    assert_eq!(worker.status.state, TaskState::Canceled);
    deliver(&mut bob, &mut alice, first);
    let task = alice
        .engine
        .task(&alice.store.read(), task_id)
        .expect("read")
        .expect("the task");
    assert_eq!(task.status.state, TaskState::Canceled);
}

/// A node restored from an older copy (protocol.md §13): its next text to bob goes after a
/// self-update of its own (once; confirmed by bob's receipt), and bob reads both. The text is
/// held (no envelope) until bob confirmed the commit, then sealed in the fresh epoch.
#[test]
fn a_restored_node_sends_a_self_update_before_its_next_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut alice, mut bob) = established(&dir);
    alice
        .store
        .write(|tx| rhizo_engine::restored::note_restored(tx, T0 + 1_000))
        .expect("noted");
    let due = |alice: &Side| -> Vec<String> {
        let items = alice.store.read().outbox_due(i64::MAX - 1, 10);
        items.expect("outbox").into_iter().map(|i| i.kind).collect()
    };
    queue(&mut alice, &mut bob, "after restore", T0 + 2_000);
    assert_eq!(
        due(&alice),
        ["commit"],
        "the text waits for the fresh epoch"
    );
    let (_, texts) = deliver(&mut alice, &mut bob, T0 + 2_000);
    assert_eq!(texts, ["after restore"]);
    // Confirmed by bob's receipt: the next text needs no other commit.
    queue(&mut alice, &mut bob, "and again", T0 + 3_000);
    assert_eq!(due(&alice), ["text"]);
    let (_, texts) = deliver(&mut alice, &mut bob, T0 + 3_000);
    assert_eq!(texts, ["and again"]);
}
