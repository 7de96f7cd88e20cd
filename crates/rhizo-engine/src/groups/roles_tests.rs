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
        let seen = info(&mut nodes[i], &session);
        assert!(
            !seen.members.iter().any(|m| m.uid == alice),
            "node {i} still has alice"
        );
        assert_eq!(
            admins_of(&mut nodes[i], &session),
            vec![successor],
            "node {i}"
        );
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
