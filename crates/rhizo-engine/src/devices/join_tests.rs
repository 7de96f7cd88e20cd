//! Issue 15: our own devices in 1:1 conversations. Alice has a1 and a2 (both listed), bob has
//! b1: a new 1:1 conversation holds every listed device of both sides, what a1 sends shows on
//! a2 as ours (once), and what bob sends reaches a1 and a2 once each.

use rhizo_e2e::RekeyPolicy;
use rhizo_store::messaging::{ContactDevice, MessageRow};

use crate::Event;
use crate::groups::tests::{Node, T0, deliver, device_node, node};

/// Runs node `from`'s 1:1 outbox once: each due frame to the contact's devices (answers
/// counted) and to our own other devices (best effort); the events on every node.
fn pump_direct(nodes: &mut [Node], from: usize, now: i64) -> Vec<(usize, Event)> {
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
fn texts(node: &Node, with: &[u8; 32]) -> Vec<MessageRow> {
    let reader = node.store.read();
    let mut all = Vec::new();
    for conversation in reader.conversations_with(with).unwrap() {
        all.extend(reader.messages(&conversation.session_id, 100).unwrap());
    }
    all.retain(|m| m.kind == "text");
    all
}

fn received(events: &[(usize, Event)], at: usize) -> Vec<String> {
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
