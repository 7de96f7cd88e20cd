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
    let mut nodes = vec![
        node(dir, 1, RekeyPolicy::default()),
        node(dir, 2, RekeyPolicy::default()),
    ];
    let alice = nodes[0].contact("alice");
    nodes[1]
        .store
        .write(|tx| tx.add_contact(&alice, 1))
        .unwrap();
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
    let bob_uid = *nodes[1].engine.me().uid.as_bytes();
    let mut parts: Vec<Vec<u8>> = nodes[0]
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
        .collect();
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
