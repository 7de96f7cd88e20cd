//! Roles: an admin promotes and demotes (only admins; never the last one), and the last admin
//! leaving hands its role to the longest-standing member first, who then commits its removal.

use rhizo_e2e::RekeyPolicy;
use rhizo_store::groups::{GroupRole, GroupStatus};

use super::tests::{Node, T0, info, node, settle, trio};
use super::*;
use crate::Event;

fn set_admin(
    node: &mut Node,
    session: &[u8; 16],
    uid: &[u8; 32],
    admin: bool,
) -> Result<bool, EngineError> {
    node.store
        .write(|tx| node.engine.set_group_admin(tx, session, uid, admin, T0 + 1))
}

fn admins_of(node: &mut Node, session: &[u8; 16]) -> Vec<[u8; 32]> {
    info(node, session)
        .members
        .into_iter()
        .filter(|m| m.role == GroupRole::Admin)
        .map(|m| m.uid)
        .collect()
}

/// Node `i` no longer has `leaver` and has `successor` as its only admin.
fn assert_left_with_successor(
    node: &mut Node,
    session: &[u8; 16],
    leaver: &[u8; 32],
    successor: [u8; 32],
    i: usize,
) {
    let seen = info(node, session);
    assert!(
        !seen.members.iter().any(|m| m.uid == *leaver),
        "node {i} still has the leaver"
    );
    assert_eq!(admins_of(node, session), vec![successor], "node {i}");
}

#[test]
fn an_admin_promotes_and_demotes_and_every_member_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let [alice, bob] = [0, 1].map(|i| *nodes[i].engine.me().uid.as_bytes());
    // A member may not change roles; nobody may promote a stranger or demote the last admin.
    let err = set_admin(&mut nodes[1], &session, &bob, true).unwrap_err();
    assert!(matches!(err, EngineError::NotAdmin), "{err}");
    let err = set_admin(&mut nodes[0], &session, &[9; 32], true).unwrap_err();
    assert!(matches!(err, EngineError::NotAMember), "{err}");
    let err = set_admin(&mut nodes[0], &session, &alice, false).unwrap_err();
    assert!(matches!(err, EngineError::NoAdminLeft), "{err}");
    // Promoting bob is one commit every member applies; promoting him again changes nothing.
    assert!(set_admin(&mut nodes[0], &session, &bob, true).unwrap());
    assert!(!set_admin(&mut nodes[0], &session, &bob, true).unwrap());
    let (now, _) = settle(&mut nodes, T0 + 1, 20);
    let mut both = [alice, bob];
    both.sort_unstable();
    for i in [0, 1, 2] {
        assert_eq!(admins_of(&mut nodes[i], &session), both, "node {i}");
    }
    let role = |n: &Node| {
        n.store
            .read()
            .group_by_session(&session)
            .unwrap()
            .unwrap()
            .my_role
    };
    assert_eq!(role(&nodes[1]), GroupRole::Admin);
    // Bob, admin now, demotes alice: she can no longer rename.
    assert!(set_admin(&mut nodes[1], &session, &alice, false).unwrap());
    settle(&mut nodes, now, 20);
    for i in [0, 1, 2] {
        assert_eq!(admins_of(&mut nodes[i], &session), vec![bob], "node {i}");
    }
    assert_eq!(role(&nodes[0]), GroupRole::Member);
    let a = &mut nodes[0];
    let err = a
        .store
        .write(|tx| {
            a.engine
                .update_group_profile(tx, &session, Some("x"), None, now)
        })
        .unwrap_err();
    assert!(matches!(err, EngineError::NotAdmin), "{err}");
    let err = set_admin(&mut nodes[1], &session, &bob, false).unwrap_err();
    assert!(matches!(err, EngineError::NoAdminLeft), "{err}");
}

#[test]
fn the_last_admin_leaving_hands_over_to_the_longest_standing_member_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    // Dave joins later: not the longest-standing, whatever his UID.
    nodes.push(node(tmp.path(), 4, RekeyPolicy::default()));
    let dave_kp = nodes[3].key_package();
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .add_group_members(tx, &session, &[dave_kp], T0 + 60_000)
        })
        .unwrap();
    let (now, events) = settle(&mut nodes, T0 + 60_000, 20);
    let request = events
        .iter()
        .find_map(|(i, e)| match e {
            Event::GroupRequest { id, .. } if *i == 3 => Some(*id),
            _ => None,
        })
        .expect("dave holds a group request");
    let d = &mut nodes[3];
    d.store
        .write(|tx| d.engine.accept_group_request(tx, request, now))
        .unwrap();
    let [alice, bob, carol] = [0, 1, 2].map(|i| *nodes[i].engine.me().uid.as_bytes());
    let successor = bob.min(carol);
    let heir = if successor == bob { 1 } else { 2 };
    // Alice, the only admin, leaves: hand-over first, then her leave; the successor removes her.
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.leave_group(tx, &session, now))
        .unwrap();
    let (_, events) = settle(&mut nodes, now, 40);
    for i in [1, 2, 3] {
        assert_left_with_successor(&mut nodes[i], &session, &alice, successor, i);
        // The others are told (the heir made the commit).
        let told = events.iter().any(|(at, e)| {
            *at == i
                && matches!(e, Event::GroupMemberRemoved { uid, .. } if *uid == hex::encode(alice))
        });
        assert!(told || i == heir, "node {i} was not told");
    }
    let first = info(&mut nodes[1], &session);
    for i in [2, 3] {
        let other = info(&mut nodes[i], &session);
        assert_eq!(
            (other.epoch, &other.fingerprint),
            (first.epoch, &first.fingerprint)
        );
    }
    let group = nodes[0]
        .store
        .read()
        .group_by_session(&session)
        .unwrap()
        .unwrap();
    assert_eq!(group.status, GroupStatus::Left);
    // The new admin can change the group.
    let n = &mut nodes[heir];
    assert!(
        n.store
            .write(|tx| n
                .engine
                .update_group_profile(tx, &session, Some("new"), None, now + 1))
            .unwrap()
    );
}

#[test]
fn an_admin_that_is_not_the_last_drops_its_role_when_leaving() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let [alice, bob] = [0, 1].map(|i| *nodes[i].engine.me().uid.as_bytes());
    set_admin(&mut nodes[0], &session, &bob, true).unwrap();
    let (now, _) = settle(&mut nodes, T0 + 1, 20);
    let b = &mut nodes[1];
    b.store
        .write(|tx| b.engine.leave_group(tx, &session, now))
        .unwrap();
    settle(&mut nodes, now, 40);
    for i in [0, 2] {
        assert_eq!(admins_of(&mut nodes[i], &session), vec![alice], "node {i}");
        assert_eq!(info(&mut nodes[i], &session).members.len(), 2, "node {i}");
    }
}

/// Alice, the only admin, leaves while carol's first self-update (made a few minutes earlier,
/// in the same epoch) is on its way: carol's commit wins the epoch and alice's hand-over loses
/// everywhere. Alice, although she left, still applies the group's commits: she rolls back,
/// makes her hand-over again on top of carol's commit and sends her leave again after it, so
/// the successor is an admin when it gets the leave and removes her.
#[test]
fn a_hand_over_that_loses_the_ordering_is_made_again_and_the_leaver_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let (now, _) = settle(&mut nodes, T0 + 1, 20);
    let start = info(&mut nodes[0], &session).epoch;
    // Carol's first self-update: scheduled, then made when due (hours later at most).
    let c = &mut nodes[2];
    c.store
        .write(|tx| c.engine.run_self_updates(tx, now))
        .unwrap();
    let made = now + 3 * 3600 * 1000;
    let run = c
        .store
        .write(|tx| c.engine.run_self_updates(tx, made))
        .unwrap();
    assert_eq!(info(&mut nodes[2], &session).epoch, start + 1, "{run:?}");
    // Alice leaves five minutes later, before carol's commit reached her.
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.leave_group(tx, &session, made + 5 * 60_000))
        .unwrap();
    settle(&mut nodes, made + 6 * 60_000, 60);
    let [alice, bob, carol] = [0, 1, 2].map(|i| *nodes[i].engine.me().uid.as_bytes());
    let successor = bob.min(carol);
    for i in [1, 2] {
        assert_left_with_successor(&mut nodes[i], &session, &alice, successor, i);
    }
    let (b, c) = (info(&mut nodes[1], &session), info(&mut nodes[2], &session));
    assert_eq!((b.epoch, &b.fingerprint), (c.epoch, &c.fingerprint));
    // Alice's side: the group she left stays left (her removal is what she asked for).
    let group = nodes[0].store.read().group_by_session(&session).unwrap();
    assert_eq!(group.unwrap().status, GroupStatus::Left);
}

/// Issue 15: bob (no admin) adds his own second device, which his device list names.
mod own_devices {
    use rhizo_core::{DeviceKey, RootKey};
    use rhizo_store::messaging::ContactDevice;

    use super::super::tests::{Node, T0, device_node, info, received_texts, settle, trio};
    use crate::EngineError;

    /// A second device of node `seed`'s user: its certificate and one KeyPackage.
    fn second_device(seed: u8) -> (rhizo_core::DeviceCertificate, Vec<u8>) {
        let secret = [seed.wrapping_add(200); 32];
        let root = RootKey::from_bytes(&[seed; 32]);
        let certificate = root.certify_device(&DeviceKey::from_bytes(&secret).public(), 1);
        let device = rhizo_e2e::Device::new(&secret, &certificate.encode()).unwrap();
        let store = rhizo_e2e::E2eStore::open_in_memory().unwrap();
        let package = rhizo_e2e::create_key_packages(&store, &device, 1, false)
            .unwrap()
            .remove(0);
        (certificate, package)
    }

    /// `at` stores bob (node 1) as a contact with his devices and, if given, `second`.
    fn know_bob(nodes: &mut [Node], at: usize, second: Option<&rhizo_core::DeviceCertificate>) {
        let mut bob = nodes[1].contact("bob");
        if let Some(c) = second {
            bob.devices.push(ContactDevice {
                device_pk: *c.device().as_bytes(),
                peer_id: String::new(),
                addrs: vec![],
                certificate: None,
            });
        }
        let n = &mut nodes[at];
        n.store.write(|tx| tx.add_contact(&bob, 1)).unwrap();
    }

    /// The trio's group; bob links a second device (his device list names it): its certificate
    /// and KeyPackage.
    fn bob_links_a_second_device(
        dir: &std::path::Path,
    ) -> (Vec<Node>, [u8; 16], rhizo_core::DeviceCertificate, Vec<u8>) {
        let (mut nodes, session) = trio(dir);
        let (certificate, package) = second_device(2);
        let b = &mut nodes[1];
        b.store
            .write(|tx| b.engine.link_own_device(tx, certificate, None, T0))
            .unwrap();
        (nodes, session, certificate, package)
    }

    /// Bob adds his second device to the group.
    fn bob_adds(nodes: &mut [Node], session: &[u8; 16], package: &[u8]) {
        let b = &mut nodes[1];
        b.store
            .write(|tx| {
                b.engine
                    .add_own_device_to_group(tx, session, package, T0 + 1)
            })
            .unwrap();
    }

    fn bob_devices(node: &mut Node, session: &[u8; 16], bob: [u8; 32]) -> usize {
        let members = info(node, session).members;
        members.iter().find(|m| m.uid == bob).unwrap().devices.len()
    }

    #[test]
    fn members_apply_a_members_add_of_its_own_listed_device() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session, certificate, package) = bob_links_a_second_device(tmp.path());
        for at in [0, 2] {
            know_bob(&mut nodes, at, Some(&certificate));
        }
        bob_adds(&mut nodes, &session, &package);
        settle(&mut nodes, T0 + 1, 20);
        let bob = nodes[1].uid();
        let epochs: Vec<u64> = nodes.iter_mut().map(|n| info(n, &session).epoch).collect();
        assert!(epochs.iter().all(|e| *e == epochs[1]), "{epochs:?}");
        for n in &mut nodes {
            assert_eq!(bob_devices(n, &session, bob), 2);
        }
    }

    #[test]
    fn a_device_the_members_do_not_know_as_listed_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session, _, package) = bob_links_a_second_device(tmp.path());
        // Alice knows bob's older list (one device); carol does not know bob at all.
        know_bob(&mut nodes, 0, None);
        bob_adds(&mut nodes, &session, &package);
        settle(&mut nodes, T0 + 1, 20);
        let bob = nodes[1].uid();
        for i in [0, 2] {
            assert_eq!(bob_devices(&mut nodes[i], &session, bob), 1);
        }
    }

    /// Issue 15, "link a2 while b1 is offline": a member that does not know the committer's
    /// new device as listed answers SEQUENCE_ERROR and wants the committer's newest device list;
    /// once the driver gives it (fetched from the DHT), bob's retried commit applies.
    #[test]
    fn a_member_learns_the_committers_newest_list_and_applies_the_retried_add() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session, certificate, package) = bob_links_a_second_device(tmp.path());
        // Alice knows bob's older list (one device); carol does not know bob at all.
        know_bob(&mut nodes, 0, None);
        bob_adds(&mut nodes, &session, &package);
        let (now, _) = settle(&mut nodes, T0 + 1, 2);
        let bob = nodes[1].uid();
        let bob_uid = rhizo_core::Uid::from_bytes(&bob);
        let mut newest = nodes[1].contact("bob").devices;
        newest.push(ContactDevice {
            device_pk: *certificate.device().as_bytes(),
            peer_id: String::new(),
            addrs: vec![],
            certificate: None,
        });
        for i in [0, 2] {
            assert_eq!(bob_devices(&mut nodes[i], &session, bob), 1);
            let n = &mut nodes[i];
            assert_eq!(n.engine.wanted_device_lists(), vec![bob_uid]);
            assert!(n.engine.wanted_device_lists().is_empty(), "taken once");
            let devices = newest.clone();
            n.store
                .write(|tx| n.engine.learn_listed_devices(tx, &bob_uid, devices, now))
                .unwrap();
        }
        // Alice's stored contact now lists both of bob's devices (she addresses both).
        let stored = nodes[0].store.read().contact_by_uid(&bob).unwrap().unwrap();
        assert_eq!(stored.devices.len(), 2);
        settle(&mut nodes, now, 20);
        let epochs: Vec<u64> = nodes.iter_mut().map(|n| info(n, &session).epoch).collect();
        assert!(epochs.iter().all(|e| *e == epochs[1]), "{epochs:?}");
        for n in &mut nodes {
            assert_eq!(bob_devices(n, &session, bob), 2);
        }
    }

    #[test]
    fn a_member_cannot_add_another_users_device_or_an_unlisted_own_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session) = trio(tmp.path());
        let (_, carols) = second_device(3);
        let (_, unlisted) = second_device(2);
        let b = &mut nodes[1];
        let mut add = |package: &[u8]| {
            b.store.write(|tx| {
                b.engine
                    .add_own_device_to_group(tx, &session, package, T0 + 1)
            })
        };
        assert!(matches!(add(&carols), Err(EngineError::NotAdmin)));
        assert!(matches!(
            add(&unlisted),
            Err(EngineError::Mls(rhizo_e2e::E2eError::Refused(
                rhizo_e2e::CommitRejectReason::DeviceNotListed
            )))
        ));
    }

    #[test]
    fn a_revoked_device_still_running_cannot_read_what_follows() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session, certificate, _) = bob_links_a_second_device(tmp.path());
        let mut bob2 = device_node(tmp.path(), 2, 202, rhizo_e2e::RekeyPolicy::default());
        let package = bob2.key_package();
        // Bob2 knows bob's first device as listed (a companion learns it from the device list).
        let bob1 = nodes[1].engine.me().certificate;
        bob2.store
            .write(|tx| bob2.engine.link_own_device(tx, bob1, None, T0))
            .unwrap();
        nodes.push(bob2);
        for at in [0, 2] {
            know_bob(&mut nodes, at, Some(&certificate));
        }
        bob_adds(&mut nodes, &session, &package);
        let (now, events) = settle(&mut nodes, T0 + 1, 20);
        // Bob2 joins at once from the Welcome of its own user's device (no group request).
        assert!(
            events
                .iter()
                .any(|(i, e)| *i == 3 && matches!(e, crate::Event::GroupCreated { .. })),
            "bob2 joined the group"
        );
        assert!(
            !events
                .iter()
                .any(|(_, e)| matches!(e, crate::Event::GroupRequest { .. }))
        );
        let text = |nodes: &mut [Node], body: &str, now: i64| {
            let a = &mut nodes[0];
            a.store
                .write(|tx| a.engine.queue_group_text(tx, &session, body, now))
                .unwrap();
            settle(nodes, now, 20)
        };
        let (now, events) = text(&mut nodes, "to both", now);
        assert_eq!(received_texts(&events, 1), ["to both"]);
        assert_eq!(received_texts(&events, 3), ["to both"]);
        // Bob revokes it: it is removed from the group; it keeps running.
        let b = &mut nodes[1];
        let list = b
            .store
            .write(|tx| b.engine.revoke_own_device(tx, &certificate.device(), now))
            .unwrap();
        assert!(list.is_some(), "a new device-list version");
        let (now, _) = settle(&mut nodes, now, 20);
        let (_, events) = text(&mut nodes, "after revoke", now);
        assert_eq!(received_texts(&events, 1), ["after revoke"]);
        assert!(received_texts(&events, 3).is_empty());
        let bob = nodes[1].uid();
        for i in [0, 1, 2] {
            assert_eq!(bob_devices(&mut nodes[i], &session, bob), 1);
        }
    }
}
