//! Issue 15: our own devices in 1:1 conversations. Alice has a1 and a2 (both listed), bob has
//! b1: a new 1:1 conversation holds every listed device of both sides, what a1 sends shows on
//! a2 as ours (once), and what bob sends reaches a1 and a2 once each.

use rhizo_e2e::RekeyPolicy;
use rhizo_store::messaging::{ContactDevice, MessageRow, MessageState};

use crate::Event;
use crate::groups::tests::{Node, T0, deliver, device_node, node};

/// Runs node `from`'s 1:1 outbox once: each due frame to the contact's devices (answers
/// counted) and to our own other devices (best effort); the events on every node.
pub(super) fn pump_direct(nodes: &mut [Node], from: usize, now: i64) -> Vec<(usize, Event)> {
    let transmits = {
        let node = &nodes[from];
        node.engine.poll_transmits(&node.store.read(), now).unwrap()
    };
    let mut events = Vec::new();
    for t in transmits {
        let answers = t
            .targets()
            .iter()
            .map(|target| {
                let device = *target.device.as_bytes();
                (
                    target.device,
                    deliver(nodes, &device, &t.frame, now, &mut events),
                )
            })
            .collect();
        for target in t.own_targets() {
            let _ = deliver(nodes, target.device.as_bytes(), &t.frame, now, &mut events);
        }
        let node = &mut nodes[from];
        let result = node
            .store
            .write(|tx| node.engine.on_transmit_result(tx, &t, answers, now))
            .unwrap();
        events.extend(result.events.into_iter().map(|e| (from, e)));
    }
    events
}

/// a1, b1, a2: alice's devices list each other; each side knows the other as a contact with
/// every listed device.
fn alice_twice_and_bob(dir: &std::path::Path) -> Vec<Node> {
    alice_twice_and(dir, true)
}

/// [`alice_twice_and_bob`]; bob's contact entry names a2 only if `bob_knows_a2`.
fn alice_twice_and(dir: &std::path::Path, bob_knows_a2: bool) -> Vec<Node> {
    let mut nodes = vec![
        node(dir, 1, RekeyPolicy::default()),
        node(dir, 2, RekeyPolicy::default()),
        device_node(dir, 1, 201, RekeyPolicy::default()),
    ];
    let (a1, a2) = (
        nodes[0].engine.me().certificate,
        nodes[2].engine.me().certificate,
    );
    for (at, other) in [(0, a2), (2, a1)] {
        let n = &mut nodes[at];
        n.store
            .write(|tx| n.engine.link_own_device(tx, other, None, T0))
            .unwrap();
    }
    let mut alice = nodes[0].contact("alice");
    let a2_device = ContactDevice {
        device_pk: nodes[2].device(),
        peer_id: String::new(),
        addrs: vec![],
        certificate: None,
    };
    if bob_knows_a2 {
        alice.devices.push(a2_device);
    }
    let bob = nodes[1].contact("bob");
    for (at, contact) in [(0, &bob), (2, &bob), (1, &alice)] {
        nodes[at]
            .store
            .write(|tx| tx.add_contact(contact, 1))
            .unwrap();
    }
    nodes
}

/// The texts of `node`'s conversations with `with`.
pub(super) fn texts(node: &Node, with: &[u8; 32]) -> Vec<MessageRow> {
    let reader = node.store.read();
    let mut all = Vec::new();
    for conversation in reader.conversations_with(with).unwrap() {
        all.extend(reader.messages(&conversation.session_id, 100).unwrap());
    }
    all.retain(|m| m.kind == "text");
    all
}

pub(super) fn received(events: &[(usize, Event)], at: usize) -> Vec<String> {
    events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::MessageReceived { text, .. } if *i == at => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_conversation_holds_every_device_and_what_one_sends_shows_on_the_other_as_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = alice_twice_and_bob(tmp.path());
    let packages = vec![nodes[1].key_package(), nodes[2].key_package()];
    let bob = nodes[1].contact("bob");
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.send_first(tx, &bob, "hello bob", &packages, T0))
        .unwrap();
    let events = pump_direct(&mut nodes, 0, T0);
    assert_eq!(received(&events, 1), ["hello bob"]);
    // On a2: the same text, ours (outgoing), once; nothing "received" from bob.
    assert!(received(&events, 2).is_empty());
    let on_a2 = texts(&nodes[2], &bob.uid);
    assert_eq!(on_a2.len(), 1);
    assert!(on_a2[0].outgoing);
    assert_eq!(on_a2[0].body.as_deref(), Some("hello bob"));

    // Bob answers: a1 and a2 each receive it once.
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "hi alice", T0 + 1))
        .unwrap();
    let events = pump_direct(&mut nodes, 1, T0 + 1);
    assert_eq!(received(&events, 0), ["hi alice"]);
    assert_eq!(received(&events, 2), ["hi alice"]);

    // a2 sends in the same conversation: bob receives it, a1 shows it as ours.
    let a2 = &mut nodes[2];
    a2.store
        .write(|tx| a2.engine.queue_text(tx, "bob", "from a2", T0 + 2))
        .unwrap();
    let events = pump_direct(&mut nodes, 2, T0 + 2);
    assert_eq!(received(&events, 1), ["from a2"]);
    assert!(received(&events, 0).is_empty());
    let on_a1: Vec<(bool, String)> = texts(&nodes[0], &bob.uid)
        .into_iter()
        .map(|m| (m.outgoing, m.body.unwrap_or_default()))
        .collect();
    assert!(on_a1.contains(&(true, "from a2".into())), "{on_a1:?}");
    assert_eq!(
        texts(&nodes[1], &nodes[0].uid()).len(),
        3,
        "bob has each text once (hello, his answer, from a2)"
    );
}

#[test]
fn a_revoked_device_still_running_cannot_read_what_follows_in_a_1to1_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = alice_twice_and_bob(tmp.path());
    let packages = vec![nodes[1].key_package(), nodes[2].key_package()];
    let bob = nodes[1].contact("bob");
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.send_first(tx, &bob, "hello bob", &packages, T0))
        .unwrap();
    pump_direct(&mut nodes, 0, T0);
    let say = |nodes: &mut [Node], text: &str, now: i64| {
        let b1 = &mut nodes[1];
        b1.store
            .write(|tx| b1.engine.queue_text(tx, "alice", text, now))
            .unwrap();
        pump_direct(nodes, 1, now)
    };
    let events = say(&mut nodes, "before", T0 + 1);
    assert_eq!(received(&events, 2), ["before"]);
    // a1 revokes a2: a remove commit to bob (a2, no longer listed, is not sent it).
    let a2 = nodes[2].engine.me().device.public();
    let a1 = &mut nodes[0];
    let list = a1
        .store
        .write(|tx| a1.engine.revoke_own_device(tx, &a2, T0 + 2))
        .unwrap();
    assert!(list.is_some());
    pump_direct(&mut nodes, 0, T0 + 2);
    // Bob still addresses a2 (his copy of alice's list is older): it cannot read.
    let events = say(&mut nodes, "after revoke", T0 + 3);
    assert_eq!(received(&events, 0), ["after revoke"]);
    assert!(received(&events, 2).is_empty());
}

#[test]
fn a_contact_that_knows_an_older_list_fetches_the_newer_one_and_takes_the_retried_welcome() {
    let tmp = tempfile::tempdir().unwrap();
    // Bob stored alice before a2 was linked: only a1.
    let mut nodes = alice_twice_and(tmp.path(), false);
    let packages = vec![nodes[1].key_package(), nodes[2].key_package()];
    let bob = nodes[1].contact("bob");
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.send_first(tx, &bob, "hello bob", &packages, T0))
        .unwrap();
    let events = pump_direct(&mut nodes, 0, T0);
    assert!(
        received(&events, 1).is_empty(),
        "not yet: a2 is unknown to bob"
    );
    let alice = rhizo_core::Uid::from_bytes(&nodes[0].uid());
    assert_eq!(nodes[1].engine.wanted_device_lists(), vec![alice]);
    // Bob's driver fetched alice's newest list: both devices.
    let mut devices = nodes[0].contact("alice").devices;
    devices.push(ContactDevice {
        device_pk: nodes[2].device(),
        peer_id: String::new(),
        addrs: vec![],
        certificate: None,
    });
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.learn_listed_devices(tx, &alice, devices, T0 + 1))
        .unwrap();
    // a1 retries (after its backoff): bob joins and reads the text.
    let later = T0 + 10 * 60 * 1000;
    let events = pump_direct(&mut nodes, 0, later);
    assert_eq!(received(&events, 1), ["hello bob"]);
}

/// The history transfer after a link, run to its end: `poll_history` on every node, then the
/// group outboxes, a few rounds.
fn transfer_history(nodes: &mut [Node], to: [u8; 32], mut now: i64) -> i64 {
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.start_history_transfer(tx, &to, 30, now))
        .unwrap()
        .expect("a sync group");
    for _ in 0..6 {
        for n in nodes.iter_mut() {
            n.store.write(|tx| n.engine.poll_history(tx, now)).unwrap();
        }
        now = crate::groups::tests::settle(nodes, now, 20).0;
    }
    now
}

#[test]
fn an_existing_conversation_gets_a_newly_linked_device_and_its_history() {
    let tmp = tempfile::tempdir().unwrap();
    // a1 and b1 talk first; bob knows only a1.
    let mut a1 = node(tmp.path(), 1, RekeyPolicy::default());
    let mut b1 = node(tmp.path(), 2, RekeyPolicy::default());
    let (alice, bob) = (a1.contact("alice"), b1.contact("bob"));
    a1.store.write(|tx| tx.add_contact(&bob, 1)).unwrap();
    b1.store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
    let packages = vec![b1.key_package()];
    a1.store
        .write(|tx| a1.engine.send_first(tx, &bob, "hello bob", &packages, T0))
        .unwrap();
    let mut nodes = vec![a1, b1];
    assert_eq!(received(&pump_direct(&mut nodes, 0, T0), 1), ["hello bob"]);

    // Link a2 (it knows no contact yet): the sync group first, then the 1:1 conversation.
    let (a2, _) = crate::sync::tests::link_a2(tmp.path(), &mut nodes[0]);
    nodes.push(a2);
    let (now, _) = crate::groups::tests::settle(&mut nodes, T0, 20);
    let (device, package) = (nodes[2].device(), nodes[2].key_package());
    let key = rhizo_core::DevicePublicKey::from_bytes(&device).unwrap();
    let a1 = &mut nodes[0];
    let added = a1
        .store
        .write(|tx| {
            a1.engine
                .add_own_device_to_conversations(tx, &key, &package, now)
        })
        .unwrap();
    assert_eq!(added, 1);
    // Again: a commit is pending there, nothing more.
    let again = a1
        .store
        .write(|tx| {
            a1.engine
                .add_own_device_to_conversations(tx, &key, &package, now)
        })
        .unwrap();
    assert_eq!(again, 0);
    // The Welcome went over the sync group, to a2 only: a2 has bob and the conversation.
    let (now, _) = crate::groups::tests::settle(&mut nodes, now, 20);
    let session = nodes[0]
        .store
        .read()
        .open_conversation_with(&bob.uid)
        .unwrap()
        .unwrap()
        .session_id;
    let on_a2 = nodes[2].store.read();
    assert!(on_a2.contact_by_uid(&bob.uid).unwrap().is_some());
    assert!(on_a2.conversation(&session).unwrap().is_some());
    assert!(
        nodes[1]
            .store
            .read()
            .conversations_with(&nodes[0].uid())
            .unwrap()
            .len()
            == 1,
        "bob got no second conversation"
    );

    // a2 sends at once: bob does not know a2 yet, so he neither takes it nor holds it as a
    // message request; he wants alice's newest device list, and a2 retries.
    let a2 = &mut nodes[2];
    a2.store
        .write(|tx| a2.engine.queue_text(tx, "bob", "early from a2", now))
        .unwrap();
    assert!(received(&pump_direct(&mut nodes, 2, now), 1).is_empty());
    let alice_uid = rhizo_core::Uid::from_bytes(&nodes[0].uid());
    assert_eq!(nodes[1].engine.wanted_device_lists(), vec![alice_uid]);
    assert!(
        nodes[1]
            .store
            .read()
            .held_envelopes(&alice.uid)
            .unwrap()
            .is_empty()
    );
    // The commit to bob: he fetches alice's newest device list first (a2 is new to him).
    pump_direct(&mut nodes, 0, now);
    assert_eq!(nodes[1].engine.wanted_device_lists(), vec![alice_uid]);
    let mut devices = alice.devices.clone();
    devices.push(ContactDevice {
        device_pk: device,
        peer_id: String::new(),
        addrs: vec![],
        certificate: None,
    });
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.learn_listed_devices(tx, &alice_uid, devices, now))
        .unwrap();
    let now = now + 10 * 60 * 1000;
    pump_direct(&mut nodes, 0, now);
    assert_eq!(
        received(&pump_direct(&mut nodes, 2, now), 1),
        ["early from a2"]
    );

    // b1 → alice arrives on a1 and on a2; a2 → bob arrives.
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "hi both", now))
        .unwrap();
    let events = pump_direct(&mut nodes, 1, now);
    assert_eq!(received(&events, 0), ["hi both"]);
    assert_eq!(received(&events, 2), ["hi both"]);
    let a2 = &mut nodes[2];
    a2.store
        .write(|tx| a2.engine.queue_text(tx, "bob", "from a2", now))
        .unwrap();
    assert_eq!(received(&pump_direct(&mut nodes, 2, now), 1), ["from a2"]);

    // The history transfer now covers the conversation: a2 has the text from before its link.
    transfer_history(&mut nodes, device, now);
    let bodies: Vec<String> = texts(&nodes[2], &bob.uid)
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    assert!(bodies.contains(&"hello bob".to_owned()), "{bodies:?}");
}

/// a1 (node 0) commits Add(`package`) in its 1:1 conversation with bob (node 1) directly, as a
/// forger would, and sends it; the commit row's state once bob answered.
fn forged_add(nodes: &mut [Node], package: Vec<u8>, now: i64) -> MessageState {
    let id = queue_forged_add(nodes, package, now);
    pump_direct(nodes, 0, now);
    let row = nodes[0].store.read().message(id).unwrap();
    row.expect("the commit row").state
}

/// [`forged_add`] up to the outbox: the commit is queued (its row id), not sent.
pub(super) fn queue_forged_add(nodes: &mut [Node], package: Vec<u8>, now: i64) -> i64 {
    let bob = nodes[1].contact("bob");
    let a1 = &mut nodes[0];
    let engine = &a1.engine;
    a1.store
        .write(|tx| {
            engine.in_job(tx, |tx| {
                let row = tx
                    .open_conversation_with(&bob.uid)?
                    .expect("a conversation");
                let mls = tx.mls()?;
                let mut conversation = engine
                    .conversations
                    .load(&mls, &row.group_id)?
                    .expect("its state");
                let (commit, _) = conversation.add_devices(
                    &mls,
                    engine.mls_device(),
                    &[package],
                    crate::secs(now),
                )?;
                engine.conversations.stage(conversation);
                let out = crate::conversations::Outgoing::commit(commit);
                let id = crate::conversations::queue_sealed_tx(
                    tx,
                    engine,
                    &bob,
                    &row.session_id,
                    out,
                    now,
                )?;
                Ok::<_, crate::EngineError>(id)
            })
        })
        .unwrap()
}

/// Issue 15: a forged device is refused in a conversation commit, by the contact's engine (the
/// membership rule of `conversations::check_membership`, applied to every commit of a 1:1
/// conversation): a device certified by another root, and a device of alice's root that the
/// newest device list bob fetched does not name (listed only in an older version).
#[test]
fn a_forged_device_is_refused_in_a_1to1_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a1 = node(tmp.path(), 1, RekeyPolicy::default());
    let mut b1 = node(tmp.path(), 2, RekeyPolicy::default());
    let (alice, bob) = (a1.contact("alice"), b1.contact("bob"));
    a1.store.write(|tx| tx.add_contact(&bob, 1)).unwrap();
    b1.store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
    let packages = vec![b1.key_package()];
    a1.store
        .write(|tx| a1.engine.send_first(tx, &bob, "hello bob", &packages, T0))
        .unwrap();
    let mut nodes = vec![a1, b1];
    assert_eq!(received(&pump_direct(&mut nodes, 0, T0), 1), ["hello bob"]);

    // Another root's device: refused for good at once (no device list would make it alice's).
    let mut mallory = device_node(tmp.path(), 9, 201, RekeyPolicy::default());
    let state = forged_add(&mut nodes, mallory.key_package(), T0 + 1);
    assert_eq!(state, MessageState::Failed);
    assert!(nodes[1].engine.wanted_device_lists().is_empty());

    // A device of alice's root that the newest list bob fetched does not name (an older version
    // named it): refused for good too, without fetching again.
    let mut old = device_node(tmp.path(), 1, 202, RekeyPolicy::default());
    let alice_uid = rhizo_core::Uid::from_bytes(&nodes[0].uid());
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| {
            b1.engine
                .learn_listed_devices(tx, &alice_uid, alice.devices.clone(), T0 + 2)
        })
        .unwrap();
    let state = forged_add(&mut nodes, old.key_package(), T0 + 3);
    assert_eq!(state, MessageState::Failed);
    assert!(nodes[1].engine.wanted_device_lists().is_empty());

    // The conversation still works, and bob's side has neither device.
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "still here", T0 + 4))
        .unwrap();
    assert_eq!(
        received(&pump_direct(&mut nodes, 1, T0 + 4), 0),
        ["still here"]
    );
}
