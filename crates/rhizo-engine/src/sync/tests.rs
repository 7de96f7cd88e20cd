//! The sync group and read markers: engines on real SQLite stores, frames handed between them
//! by the group tests' in-memory network, on a simulated clock.

use rhizo_e2e::RekeyPolicy;
use rhizo_store::messaging::{ContactDevice, MessageState};

use super::*;
use crate::groups::tests::{Node, T0, device_node, info, node, settle, trio};

/// Alice's second device (`[201; 32]`): each device lists the other (a1 links it, a2 adopts
/// the list), and a1 puts it in the sync group.
pub(crate) fn link_a2(dir: &std::path::Path, a1: &mut Node) -> (Node, SyncGroupAdd) {
    let mut a2 = device_node(dir, 1, 201, RekeyPolicy::default());
    let (c1, c2) = (a1.engine.me().certificate, a2.engine.me().certificate);
    a1.store
        .write(|tx| a1.engine.link_own_device(tx, c2, Some("a2".into()), T0))
        .unwrap();
    a2.store
        .write(|tx| a2.engine.link_own_device(tx, c1, None, T0))
        .unwrap();
    let package = a2.key_package();
    let device = a2.device();
    let made = a1
        .store
        .write(|tx| {
            a1.engine
                .add_device_to_sync_group(tx, &device, &package, T0)
        })
        .unwrap();
    (a2, made)
}

fn sync_of(node: &Node) -> Option<[u8; 16]> {
    sync_session(&node.store.read()).unwrap()
}

#[test]
fn the_first_link_creates_the_sync_group_and_the_new_device_joins_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a1 = node(tmp.path(), 1, RekeyPolicy::default());
    let (a2, made) = link_a2(tmp.path(), &mut a1);
    assert_eq!(made, SyncGroupAdd::Created);
    let mut nodes = vec![a1, a2];
    let (_, events) = settle(&mut nodes, T0, 20);
    // Joined at once, and nothing the user sees: no group request, no group shown.
    assert!(
        events.iter().all(|(i, e)| *i != 1
            || !matches!(e, Event::GroupRequest { .. } | Event::GroupCreated { .. }))
    );
    let session = sync_of(&nodes[0]).expect("a1 has a sync group");
    assert_eq!(sync_of(&nodes[1]), Some(session));
    for n in &mut nodes {
        let members = info(n, &session).members;
        assert_eq!(members.len(), 1, "only our UID");
        assert_eq!(members[0].devices.len(), 2);
        assert!(n.engine.sync_group(&n.store.read()).unwrap().is_some());
    }
    // Linking it again changes nothing.
    let device = nodes[1].device();
    let package = nodes[1].key_package();
    let a1 = &mut nodes[0];
    let again = a1
        .store
        .write(|tx| {
            a1.engine
                .add_device_to_sync_group(tx, &device, &package, T0)
        })
        .unwrap();
    assert_eq!(again, SyncGroupAdd::AlreadyIn);
}

#[test]
fn a_group_named_like_the_sync_group_from_a_contact_is_not_our_sync_group() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = trio(tmp.path());
    // Bob (who has alice as a contact) is invited by alice to a group named like a sync group.
    let kp = nodes[1].key_package();
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.create_group(tx, SYNC_GROUP_NAME, &[kp], T0))
        .unwrap();
    settle(&mut nodes, T0, 20);
    assert_eq!(sync_of(&nodes[1]), None);
    assert_eq!(sync_of(&nodes[0]), None);
}

/// Gives `at` alice's second device as listed (as it would learn from her newest list).
pub(crate) fn knows_a2(nodes: &mut [Node], at: usize, a2: [u8; 32]) {
    let mut alice = nodes[0].contact("alice");
    alice.devices.push(ContactDevice {
        device_pk: a2,
        peer_id: String::new(),
        addrs: vec![],
        certificate: None,
    });
    let n = &mut nodes[at];
    n.store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
}

fn state_of(node: &Node, session: &[u8; 16], text: &str) -> MessageState {
    let reader = node.store.read();
    let messages = reader.messages(session, 50).unwrap();
    messages
        .iter()
        .find(|m| m.body.as_deref() == Some(text))
        .map(|m| m.state)
        .expect("the message is stored")
}

/// Alice (node 0 of the trio, in the group with bob and carol) links a2 (node 3): the sync
/// group and the trio's group both have a2 (it joins the group's Welcome from its own device
/// at once, as an ordinary group, not as the sync group). The nodes, the group and the time.
pub(crate) fn alice_with_a2(dir: &std::path::Path) -> (Vec<Node>, [u8; 16], i64) {
    let (mut nodes, session) = trio(dir);
    let (mut a2, made) = link_a2(dir, &mut nodes[0]);
    assert_eq!(made, SyncGroupAdd::Created);
    let (package, device) = (a2.key_package(), a2.device());
    nodes.push(a2);
    for at in [1, 2] {
        knows_a2(&mut nodes, at, device);
    }
    let (now, _) = settle(&mut nodes, T0, 20);
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            a1.engine
                .add_own_device_to_group(tx, &session, &package, now)
        })
        .unwrap();
    let (now, _) = settle(&mut nodes, now, 20);
    // A Welcome from another device of ours is joined at once (not held as a request).
    let joined = nodes[3].store.read().group_by_session(&session).unwrap();
    assert!(joined.is_some(), "a2 joined the trio's group");
    assert!(sync_session(&nodes[3].store.read()).unwrap().is_some());
    (nodes, session, now)
}

#[test]
fn read_on_one_device_is_read_on_the_other_with_one_read_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, now) = alice_with_a2(tmp.path());
    let b = &mut nodes[1];
    b.store
        .write(|tx| b.engine.queue_group_text(tx, &session, "hello alice", now))
        .unwrap();
    let (now, _) = settle(&mut nodes, now, 20);
    assert_eq!(
        state_of(&nodes[0], &session, "hello alice"),
        MessageState::Received
    );
    assert_eq!(
        state_of(&nodes[3], &session, "hello alice"),
        MessageState::Received
    );
    // Read on a2: the READ receipt goes to bob, the read marker to a1.
    let a2 = &mut nodes[3];
    let queued = a2
        .store
        .write(|tx| a2.engine.mark_group_read(tx, &session, now))
        .unwrap();
    assert!(queued);
    settle(&mut nodes, now, 20);
    assert_eq!(
        state_of(&nodes[0], &session, "hello alice"),
        MessageState::Read
    );
    // a1 has nothing left to receipt: one READ receipt to bob, not two.
    let a1 = &mut nodes[0];
    let again = a1
        .store
        .write(|tx| a1.engine.mark_group_read(tx, &session, now))
        .unwrap();
    assert!(!again);
    // Bob counts one READ receipt from alice's devices (a2's), of the 3 other devices.
    let reader = nodes[1].store.read();
    let sent = reader.messages(&session, 50).unwrap();
    let id = sent
        .iter()
        .find(|m| m.body.as_deref() == Some("hello alice"))
        .map(|m| m.id)
        .unwrap();
    let counts = reader.delivery_counts(id).unwrap();
    assert_eq!((counts.total, counts.read), (3, 1));
}

#[test]
fn a_read_marker_outside_the_sync_group_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let b = &mut nodes[1];
    b.store
        .write(|tx| b.engine.queue_group_text(tx, &session, "hi", T0))
        .unwrap();
    settle(&mut nodes, T0, 20);
    // Bob is no device of alice's: his "marker" in the shared group changes nothing.
    let entries = nodes[0]
        .store
        .read()
        .messages(&session, 50)
        .unwrap()
        .iter()
        .map(|m| (session, m.sender_device, m.seq))
        .collect::<Vec<_>>();
    let group = nodes[0]
        .store
        .read()
        .group_by_session(&session)
        .unwrap()
        .unwrap();
    let bob = nodes[1].uid();
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            let sync = SyncMessage {
                read: Some(ReadMarker {
                    entries: entries
                        .iter()
                        .map(|(s, d, q)| ReadEntry {
                            session_id: s.to_vec().into(),
                            sender_device: d.to_vec().into(),
                            seq: *q,
                        })
                        .collect(),
                }),
                ..SyncMessage::default()
            };
            let e = &a.engine;
            apply_sync(
                tx,
                (e.me(), e.mls_device(), &e.conversations),
                &group,
                bob,
                sync,
                T0,
            )
            .map_err(|_| rhizo_store::StoreError::InvalidInput("refused".into()))
        })
        .unwrap();
    assert_eq!(state_of(&nodes[0], &session, "hi"), MessageState::Received);
}

#[test]
fn a_contact_and_our_profile_set_on_one_device_appear_on_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a1 = node(tmp.path(), 1, RekeyPolicy::default());
    let bob = node(tmp.path(), 2, RekeyPolicy::default());
    let (a2, _) = link_a2(tmp.path(), &mut a1);
    let mut nodes = vec![a1, a2];
    let (now, _) = settle(&mut nodes, T0, 20);
    let mut contact = bob.contact("bob");
    contact.verified = true;
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            tx.add_contact(&contact, now)?;
            tx.set_contact_verified(&contact.uid, true)?;
            a1.engine.sync_contact(tx, &contact, now)?;
            a1.engine
                .set_profile(tx, "Alice", Vec::new(), "", false, now)
        })
        .unwrap();
    // Twice: applying it again changes nothing.
    a1.store
        .write(|tx| a1.engine.sync_contact(tx, &contact, now))
        .unwrap();
    settle(&mut nodes, now, 20);
    let reader = nodes[1].store.read();
    let synced = reader
        .contact_by_uid(&contact.uid)
        .unwrap()
        .expect("bob synced");
    assert_eq!(synced.name, "bob");
    assert!(synced.verified);
    assert_eq!(synced.devices.len(), 1);
    assert_eq!(reader.list_contacts().unwrap().len(), 1);
    let me = nodes[1].uid();
    let profile = reader.profile(&me).unwrap().expect("our profile synced");
    assert_eq!(profile.name, "Alice");
}
