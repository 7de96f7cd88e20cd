//! Settings kept the same on two devices of one user (a1, a2): engines on real SQLite stores,
//! frames handed between them by the group tests' in-memory network, on a simulated clock.

use rhizo_e2e::RekeyPolicy;
use rhizo_store::messaging::{Contact, ContactDevice, ConversationSettings};

use super::*;
use crate::groups::tests::{Node, NodeEvents, T0, node, settle};
use crate::sync::tests::{alice_with_a2, link_a2};

/// a1 and a2 in their sync group, both with bob (node 2 of the returned nodes) as a contact.
fn two_devices_with_bob(dir: &std::path::Path) -> (Vec<Node>, Contact, i64) {
    let mut a1 = node(dir, 1, RekeyPolicy::default());
    let bob = node(dir, 2, RekeyPolicy::default());
    let (a2, _) = link_a2(dir, &mut a1);
    let mut nodes = vec![a1, a2, bob];
    let (now, _) = settle(&mut nodes, T0, 20);
    let contact = nodes[2].contact("bob");
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            tx.add_contact(&contact, now)?;
            a1.engine.sync_contact(tx, &contact, now)
        })
        .unwrap();
    let (now, _) = settle(&mut nodes, now, 20);
    assert!(
        nodes[1]
            .store
            .read()
            .contact_by_uid(&contact.uid)
            .unwrap()
            .is_some()
    );
    (nodes, contact, now)
}

/// Changes a setting on node `at` as the node's API does: the change here, then to the sync
/// group.
fn change(node: &mut Node, peer: &[u8; 32], change: SettingChange, now: i64) {
    node.store
        .write(|tx| {
            match &change {
                SettingChange::Rename(name) => {
                    tx.rename_contact(peer, name)?;
                }
                SettingChange::Block(true) => {
                    tx.block_sender(peer, &crate::requests::REQUEST_LIMITS, now)?;
                }
                SettingChange::Block(false) => {
                    tx.unblock_sender(peer)?;
                }
                SettingChange::Mute(on) => {
                    tx.set_conversation_settings(peer, Some(*on), None, now)?;
                }
                SettingChange::Archive(on) => {
                    tx.set_conversation_settings(peer, None, Some(*on), now)?;
                }
                SettingChange::Remove => {
                    node.engine.remove_contact(tx, peer)?;
                }
                SettingChange::ClearHistory => {}
            }
            node.engine.sync_setting(tx, peer, change, now)
        })
        .unwrap();
}

fn changes(events: &NodeEvents, at: usize) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|(i, _)| *i == at)
        .filter_map(|(_, e)| match e {
            Event::ConversationChanged {
                conversation,
                change,
            } => Some((conversation.clone(), change.clone())),
            _ => None,
        })
        .collect()
}

fn pair(conversation: &str, change: &str) -> (String, String) {
    (conversation.into(), change.into())
}

#[test]
fn a_rename_block_mute_and_archive_on_one_device_reach_the_other_also_when_it_was_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, bob, now) = two_devices_with_bob(tmp.path());
    // a2 is offline while a1 changes bob's settings.
    nodes[1].online = false;
    let a1 = &mut nodes[0];
    change(a1, &bob.uid, SettingChange::Rename("bobby".into()), now);
    change(a1, &bob.uid, SettingChange::Block(true), now + 1);
    change(a1, &bob.uid, SettingChange::Mute(true), now + 2);
    change(a1, &bob.uid, SettingChange::Archive(true), now + 3);
    let (now, _) = settle(&mut nodes, now + 4, 2);
    let a2 = nodes[1].store.read();
    assert_eq!(a2.contact_by_uid(&bob.uid).unwrap().unwrap().name, "bob");
    nodes[1].online = true;
    let (now, events) = settle(&mut nodes, now, 20);
    let a2 = nodes[1].store.read();
    assert_eq!(a2.contact_by_uid(&bob.uid).unwrap().unwrap().name, "bobby");
    assert!(a2.is_blocked(&bob.uid).unwrap());
    assert_eq!(
        a2.conversation_settings(&bob.uid).unwrap(),
        ConversationSettings {
            muted: true,
            archived: true
        }
    );
    assert_eq!(
        changes(&events, 1),
        [
            pair("bobby", "renamed"),
            pair("bobby", "blocked"),
            pair("bobby", "muted"),
            pair("bobby", "archived")
        ]
    );
    // Undone on a2: back on a1, and a1 shows the changes as events.
    let a2 = &mut nodes[1];
    change(a2, &bob.uid, SettingChange::Block(false), now);
    change(a2, &bob.uid, SettingChange::Archive(false), now + 1);
    let (now, events) = settle(&mut nodes, now + 2, 20);
    let a1 = nodes[0].store.read();
    assert!(!a1.is_blocked(&bob.uid).unwrap());
    assert!(!a1.conversation_settings(&bob.uid).unwrap().archived);
    assert!(a1.conversation_settings(&bob.uid).unwrap().muted);
    assert_eq!(
        changes(&events, 0),
        [pair("bobby", "unblocked"), pair("bobby", "unarchived")]
    );
    // Removed on a1: gone on a2 too.
    change(&mut nodes[0], &bob.uid, SettingChange::Remove, now);
    let (_, events) = settle(&mut nodes, now + 1, 20);
    assert!(
        nodes[1]
            .store
            .read()
            .contact_by_uid(&bob.uid)
            .unwrap()
            .is_none()
    );
    assert_eq!(changes(&events, 1), [pair("bobby", "removed")]);
}

#[test]
fn the_last_change_of_a_setting_wins_and_a_replay_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, bob, now) = two_devices_with_bob(tmp.path());
    let first = now;
    // Each device changes the same settings while the other is away: a2 later for mute,
    // a1 later for the name.
    // (The changes carry the times given; the network's clock moves on regardless.)
    nodes[1].online = false;
    change(&mut nodes[0], &bob.uid, SettingChange::Mute(true), now);
    change(
        &mut nodes[0],
        &bob.uid,
        SettingChange::Rename("b-late".into()),
        now + 10,
    );
    let (later, _) = settle(&mut nodes, now + 11, 2);
    nodes[0].online = false;
    nodes[1].online = true;
    change(&mut nodes[1], &bob.uid, SettingChange::Mute(false), now + 5);
    change(
        &mut nodes[1],
        &bob.uid,
        SettingChange::Rename("b-early".into()),
        now + 6,
    );
    let (later, _) = settle(&mut nodes, later, 2);
    nodes[0].online = true;
    let (now, _) = settle(&mut nodes, later, 30);
    for (i, n) in nodes[..2].iter().enumerate() {
        let reader = n.store.read();
        assert_eq!(
            reader.contact_by_uid(&bob.uid).unwrap().unwrap().name,
            "b-late",
            "{i}"
        );
        assert!(
            !reader.conversation_settings(&bob.uid).unwrap().muted,
            "{i}"
        );
    }
    // a1's mute applied again (a copy from the mailbox): nothing happens.
    let sync = SettingSync {
        at_ms: first,
        peer: bob.uid.to_vec().into(),
        kind: SettingKind::SettingMute.into(),
        ..SettingSync::default()
    };
    let a2 = &mut nodes[1];
    let events = a2
        .store
        .write(|tx| {
            let e = &a2.engine;
            apply_setting(tx, (e.me(), &e.conversations), sync, now)
                .map_err(|_| StoreError::InvalidInput("refused".into()))
        })
        .unwrap();
    assert!(events.is_empty());
    assert!(
        !nodes[1]
            .store
            .read()
            .conversation_settings(&bob.uid)
            .unwrap()
            .muted
    );
}

fn texts(node: &Node, session: &[u8; 16]) -> Vec<String> {
    node.store
        .read()
        .messages(session, 50)
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == "text")
        .filter_map(|m| m.body)
        .collect()
}

#[test]
fn a_deleted_message_and_a_deleted_history_are_deleted_on_the_other_device() {
    let tmp = tempfile::tempdir().unwrap();
    // Alice (a1 = 0, a2 = 3) in a group with bob (1) and carol (2).
    let (mut nodes, session, now) = alice_with_a2(tmp.path());
    let b = &mut nodes[1];
    for text in ["one", "two"] {
        b.store
            .write(|tx| b.engine.queue_group_text(tx, &session, text, now))
            .unwrap();
    }
    let (now, _) = settle(&mut nodes, now, 20);
    assert_eq!(texts(&nodes[3], &session), ["one", "two"]);
    let group = nodes[0]
        .store
        .read()
        .group_by_session(&session)
        .unwrap()
        .unwrap();
    let one = nodes[0]
        .store
        .read()
        .messages(&session, 50)
        .unwrap()
        .into_iter()
        .find(|m| m.body.as_deref() == Some("one"))
        .unwrap()
        .id;
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            a1.engine.sync_message_delete(tx, one, now)?;
            tx.delete_message_locally(one)?;
            Ok::<_, EngineError>(())
        })
        .unwrap();
    change(
        &mut nodes[0],
        &group.address,
        SettingChange::Mute(true),
        now,
    );
    let (now, events) = settle(&mut nodes, now + 1, 20);
    assert_eq!(texts(&nodes[3], &session), ["two"]);
    let hex = crate::groups::group_id_hex(&session);
    assert!(events.iter().any(|(i, e)| *i == 3
        && matches!(e, Event::MessageDeleted { conversation, for_everyone: false, .. }
            if *conversation == hex)));
    assert!(
        nodes[3]
            .store
            .read()
            .conversation_settings(&group.address)
            .unwrap()
            .muted
    );
    // Bob and carol are not told anything (the sync group is ours only).
    assert_eq!(texts(&nodes[1], &session), ["one", "two"]);
    // The whole history, deleted on a2: deleted on a1.
    let a2 = &mut nodes[3];
    a2.store
        .write(|tx| {
            tx.clear_history(&session)?;
            a2.engine
                .sync_setting(tx, &group.address, SettingChange::ClearHistory, now)
        })
        .unwrap();
    let (_, events) = settle(&mut nodes, now + 1, 20);
    assert!(texts(&nodes[0], &session).is_empty());
    assert_eq!(changes(&events, 0), [pair(&hex, "deleted")]);
}

#[test]
fn a_contact_synced_with_a_new_device_key_is_a_key_change_event_on_the_other_device() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, mut bob, now) = two_devices_with_bob(tmp.path());
    // a1 learns a second device of bob's and tells a2.
    bob.devices.push(ContactDevice {
        device_pk: [77; 32],
        peer_id: String::new(),
        addrs: vec![],
        certificate: None,
    });
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            tx.add_contact(&bob, now)?;
            a1.engine.sync_contact(tx, &bob, now)
        })
        .unwrap();
    let (now, events) = settle(&mut nodes, now, 20);
    let key_changes = |events: &NodeEvents| {
        events
            .iter()
            .filter(|(i, e)| {
                *i == 1 && matches!(e, Event::KeyChange { contact } if contact == "bob")
            })
            .count()
    };
    assert_eq!(key_changes(&events), 1);
    assert!(nodes[1].store.read().contact_key_changed(&bob.uid).unwrap());
    // The same contact again: no new key, no event.
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.sync_contact(tx, &bob, now))
        .unwrap();
    let (_, events) = settle(&mut nodes, now, 20);
    assert_eq!(key_changes(&events), 0);
}
