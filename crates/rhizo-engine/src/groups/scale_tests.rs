//! A large group: the Welcome no longer fits one envelope and travels in parts, directly and
//! through the mailbox.

use rhizo_core::envelope::{MessageType, SecureMessage};
use rhizo_core::{DeviceKey, RootKey};
use rhizo_e2e::{Device, E2eStore, RekeyPolicy};

use super::tests::{Node, info, node, pump};
use crate::Event;

const T0: i64 = 1_800_000_000_000;

/// KeyPackages of `count` devices of one other user (made locally; never joined).
fn pool_key_packages(count: usize) -> Vec<Vec<u8>> {
    let pool = E2eStore::open_in_memory().unwrap();
    let root = RootKey::from_bytes(&[77; 32]);
    (0..count)
        .map(|i| {
            let mut seed = [78u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = DeviceKey::from_bytes(&seed);
            let cert = root.certify_device(&key.public(), 1);
            let device = Device::new(&seed, &cert.encode()).unwrap();
            rhizo_e2e::create_key_packages(&pool, &device, 1, false)
                .unwrap()
                .remove(0)
        })
        .collect()
}

/// Alice creates a group of 300 devices: bob (alice is his contact) and 298 devices of
/// another user. Returns the nodes and the group's session.
fn big_group(dir: &std::path::Path, bob_online: bool) -> (Vec<Node>, [u8; 16], NodeEventsOf) {
    big_group_with(dir, bob_online, true)
}

/// As [`big_group`]; `contact`: whether bob has alice as a contact.
fn big_group_with(
    dir: &std::path::Path,
    bob_online: bool,
    contact: bool,
) -> (Vec<Node>, [u8; 16], NodeEventsOf) {
    let mut nodes = vec![
        node(dir, 1, RekeyPolicy::default()),
        node(dir, 2, RekeyPolicy::default()),
    ];
    if contact {
        let alice = nodes[0].contact("alice");
        nodes[1]
            .store
            .write(|tx| tx.add_contact(&alice, 1))
            .unwrap();
    }
    let mut kps = pool_key_packages(298);
    kps.push(nodes[1].key_package());
    nodes[1].online = bob_online;
    let group = {
        let a = &mut nodes[0];
        a.store
            .write(|tx| a.engine.create_group(tx, "big", &kps, T0))
            .unwrap()
    };
    let (_, events) = pump(&mut nodes, 0, T0);
    (nodes, group.session_id, events)
}

type NodeEventsOf = super::tests::NodeEvents;

fn joined(events: &NodeEventsOf) -> bool {
    events
        .iter()
        .any(|(i, e)| *i == 1 && matches!(e, Event::GroupCreated { .. }))
}

#[test]
fn a_member_joins_a_group_of_300_devices_through_a_welcome_in_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, events) = big_group(tmp.path(), true);
    assert!(joined(&events), "bob joined from the reassembled Welcome");
    let bob = info(&mut nodes[1], &session);
    let alice = info(&mut nodes[0], &session);
    assert_eq!(bob.epoch, alice.epoch);
    assert_eq!(bob.fingerprint, alice.fingerprint);
    let devices: usize = bob.members.iter().map(|m| m.devices.len()).sum();
    assert_eq!(devices, 300);
}

#[test]
fn the_parts_of_a_welcome_arrive_through_the_mailbox_in_any_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, events) = big_group(tmp.path(), false);
    assert!(!joined(&events));
    // What the driver stores in bob's mailbox: the signed part envelopes to his UID.
    let mut parts = welcome_parts_to_bob(&nodes);
    assert!(parts.len() >= 2, "{}", parts.len());
    parts.reverse();
    // A duplicate on the way changes nothing.
    parts.insert(1, parts[0].clone());
    nodes[1].online = true;
    let bob_device = *nodes[1].engine.me().device.public().as_bytes();
    let mut events = Vec::new();
    for bytes in &parts {
        super::tests::deliver(&mut nodes, &bob_device, bytes, T0 + 1, &mut events).unwrap();
    }
    assert!(joined(&events));
    assert_eq!(
        info(&mut nodes[1], &session).fingerprint,
        info(&mut nodes[0], &session).fingerprint
    );
}

/// The signed part envelopes of the Welcome to bob still in alice's outbox.
fn welcome_parts_to_bob(nodes: &[Node]) -> Vec<Vec<u8>> {
    let bob_uid = *nodes[1].engine.me().uid.as_bytes();
    nodes[0]
        .store
        .read()
        .group_outbox_due(i64::MAX - 1, 1000)
        .unwrap()
        .into_iter()
        .map(|item| item.envelope)
        .filter(|bytes| {
            let m = SecureMessage::decode(bytes).unwrap();
            m.msg_type == MessageType::WelcomePart && *m.recipient_id.as_bytes() == bob_uid
        })
        .collect()
}

#[test]
fn parts_acknowledged_before_a_restart_are_kept_and_the_welcome_joins_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, _) = big_group(tmp.path(), false);
    let parts = welcome_parts_to_bob(&nodes);
    assert!(parts.len() >= 2, "{}", parts.len());
    nodes[1].online = true;
    let bob_device = *nodes[1].engine.me().device.public().as_bytes();
    let mut events = Vec::new();
    let (first, rest) = parts.split_at(parts.len() - 1);
    for bytes in first {
        let response =
            super::tests::deliver(&mut nodes, &bob_device, bytes, T0 + 1, &mut events).unwrap();
        // Acknowledged: the part is in bob's database.
        assert_eq!(
            crate::wire::status_of_response(&response),
            Some(rhizo_core::envelope::ReceiptStatus::Delivered)
        );
    }
    let held = nodes[1].store.read().welcome_parts_held().unwrap();
    assert_eq!(held.parts, first.len());
    // Bob's node restarts (a new engine on the same database): nothing in memory survives.
    nodes[1] = node(tmp.path(), 2, RekeyPolicy::default());
    super::tests::deliver(&mut nodes, &bob_device, &rest[0], T0 + 2, &mut events).unwrap();
    assert!(
        joined(&events),
        "bob joined from the parts kept across the restart"
    );
    assert_eq!(nodes[1].store.read().welcome_parts_held().unwrap().parts, 0);
    assert_eq!(
        info(&mut nodes[1], &session).fingerprint,
        info(&mut nodes[0], &session).fingerprint
    );
}

/// The group request bob's node showed: its id and the group's name.
fn request_at_bob(events: &NodeEventsOf) -> Option<(i64, String)> {
    events.iter().find_map(|(i, e)| match e {
        Event::GroupRequest { id, name, .. } if *i == 1 => Some((*id, name.clone())),
        _ => None,
    })
}

#[test]
fn a_welcome_in_parts_from_a_non_contact_is_a_group_request_accept_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, events) = big_group_with(tmp.path(), true, false);
    assert!(!joined(&events));
    let request = request_at_bob(&events).expect("bob holds a group request for the Welcome");
    assert_eq!(request.1, "big");
    // The whole Welcome is kept with the request; the parts are gone.
    let held = nodes[1].store.read().group_requests(T0 + 1).unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        held[0]
            .welcome
            .as_ref()
            .is_some_and(|w| w.len() > 255 * 1024)
    );
    assert_eq!(nodes[1].store.read().welcome_parts_held().unwrap().parts, 0);
    let b = &mut nodes[1];
    let (group, _) = b
        .store
        .write(|tx| b.engine.accept_group_request(tx, request.0, T0 + 2))
        .unwrap();
    assert_eq!(group.session_id, session);
    assert_eq!(
        info(&mut nodes[1], &session).fingerprint,
        info(&mut nodes[0], &session).fingerprint
    );
}

#[test]
fn a_declined_welcome_in_parts_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _, events) = big_group_with(tmp.path(), true, false);
    let (id, _) = request_at_bob(&events).expect("a group request");
    let b = &mut nodes[1];
    assert!(
        b.store
            .write(|tx| b.engine.decline_group_request(tx, id))
            .unwrap()
    );
    assert!(
        nodes[1]
            .store
            .read()
            .group_requests(T0 + 1)
            .unwrap()
            .is_empty()
    );
}
