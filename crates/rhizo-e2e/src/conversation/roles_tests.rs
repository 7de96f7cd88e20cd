//! The last admin leaving: it hands its role over in an ordinary admin commit (drops itself,
//! makes another member admin), and only then can the new admin commit its removal. The role
//! rule needs no exception for it: nobody else may remove the last admin, before or after its
//! leave.

use openmls::prelude::LeafNodeIndex;
use rhizo_core::Uid;

use super::group_tests::{Member, group_of, rejected, same_state, state};
use super::*;

const T0: u64 = 1_000_000;

#[test]
fn the_last_admin_hands_over_before_leaving_and_only_then_is_removed() {
    let mut m = [Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0]);
    let alice = m[0].uid();
    // A member cannot remove the last admin (e.g. after its leave): no admin, refused.
    let coup = m[1].raw_commit(|c| c.propose_removals([LeafNodeIndex::new(0)]));
    for i in [0, 2] {
        assert_eq!(m[i].process(&coup), rejected(CommitRejectReason::NotAdmin));
    }
    // The hand-over: one GroupState commit by the leaving admin, bob the only admin after it.
    let handed = state(&[&m[1]], "Team");
    let c = m[0]
        .with(|c, s, d| c.set_state(s, d, &handed, T0))
        .expect("hand over");
    for i in [1, 2] {
        assert_eq!(
            m[i].process(&c.commit),
            vec![Processed::CommitApplied { epoch: 2 }]
        );
    }
    same_state(&m);
    // Alice is no admin any more: she could not add or rename now.
    let renamed = state(&[&m[1]], "Mine");
    assert!(matches!(
        m[0].with(|c, s, d| c.set_state(s, d, &renamed, T0)),
        Err(E2eError::Refused(CommitRejectReason::NotAdmin))
    ));
    // Bob, the new admin, removes her; everyone left agrees, and bob is the only admin.
    let r = m[1]
        .with(|c, s, d| c.remove_members(s, d, &[MemberRef::Uid(alice)], T0))
        .expect("remove the leaver");
    assert_eq!(
        m[2].process(&r.commit),
        vec![Processed::CommitApplied { epoch: 3 }]
    );
    m[0].process(&r.commit);
    assert!(!m[0].conv().group.is_active());
    same_state(&m[1..]);
    let roster = m[2].conv().roster().expect("roster");
    assert_eq!(roster.len(), 2);
    let admins: Vec<Uid> = roster
        .iter()
        .filter(|e| e.role == rhizo_core::group::GroupRole::Admin)
        .map(|e| e.uid)
        .collect();
    assert_eq!(admins, vec![m[1].uid()]);
    // Carol, a member, still cannot remove bob, the last admin now.
    let coup = m[2].raw_commit(|c| c.propose_removals([LeafNodeIndex::new(1)]));
    assert_eq!(m[1].process(&coup), rejected(CommitRejectReason::NotAdmin));
}
