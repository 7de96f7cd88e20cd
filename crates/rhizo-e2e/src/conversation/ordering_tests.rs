//! The ordering key of competing group commits: time span first (a commit made on a stale
//! epoch minutes after its competitor loses, whatever its id), and a sender that opened
//! [`MAX_RECENT_OPENINGS`] recent epochs loses ties (grinding ids wins a bounded share).
//! Commit ids are random (openmls' randomness is not seeded), so the tests grind the id they
//! need: each is deterministic.

use rhizo_core::group::{COMMIT_TIME_SPAN_SECS, MAX_RECENT_OPENINGS};

use super::group_tests::{Member, group_of};
use super::*;

const T0: u64 = 1_000_000;

/// Most commits tried to find one whose id is below a bound (each try wins half the time).
const GRIND_TRIES: usize = 64;

/// A self-update commit made by `member` at `made_at` without applying it (its state stays),
/// the first whose id is below `below`: what a member grinding ids would send.
fn ground_commit(member: &mut Member, made_at: u64, below: &[u8; 32]) -> Vec<u8> {
    for _ in 0..GRIND_TRIES {
        member.conv().group.set_aad(ordering::commit_aad(made_at));
        let commit = member.raw_commit(|builder| builder.force_self_update(true));
        if commit_id(&commit) < *below {
            return commit;
        }
    }
    panic!("no commit id below the bound in {GRIND_TRIES} tries");
}

fn same_state(members: &[&Member]) {
    let first = members[0].conv.as_ref().expect("conv");
    for m in &members[1..] {
        let c = m.conv.as_ref().expect("conv");
        assert_eq!(c.epoch(), first.epoch());
        assert_eq!(c.epoch_authenticator(), first.epoch_authenticator());
    }
}

fn lost() -> Vec<Processed> {
    vec![Processed::CommitRejected {
        reason: CommitRejectReason::LostTieBreak,
    }]
}

/// group_sim seed 4 (before the fix): a member that missed a commit self-updated on the old
/// epoch minutes later; its smaller id rolled back the members within the window while those
/// beyond it refused, and the group stayed split.
#[test]
fn a_commit_made_minutes_later_on_a_stale_epoch_loses_whatever_its_id() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0]);
    let first = m[0].with(|c, s, d| c.self_update(s, d, T0)).expect("first");
    assert_eq!(
        m[1].process(&first),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    // Carol missed it and self-updates on epoch 1 ten minutes later, with a smaller id.
    let later = T0 + 10 * COMMIT_TIME_SPAN_SECS;
    let stale = ground_commit(&mut m[2], later, &commit_id(&first));
    assert_eq!(m[1].process(&stale), lost());
    assert_eq!(m[0].process(&stale), lost());
    // Her own stale commit, applied on her side, is rolled back by the first one.
    let own = m[2]
        .with(|c, s, d| c.self_update(s, d, later))
        .expect("own");
    let out = m[2].process(&first);
    assert!(
        matches!(
            out.as_slice(),
            [
                Processed::RolledBack {
                    from_epoch: 2,
                    to_epoch: 1
                },
                Processed::CommitApplied { epoch: 2 }
            ]
        ),
        "{out:?}"
    );
    assert_eq!(m[1].process(&own), lost());
    same_state(&[&m[0], &m[1], &m[2]]);
}

/// A sender that made the commits opening MAX_RECENT_OPENINGS of the last epochs loses ties
/// even with a ground (smaller) id, on every member whatever it saw first.
#[test]
fn a_sender_that_opened_recent_epochs_loses_ties_even_with_a_ground_id() {
    let mut m = vec![
        Member::new(1, 11),
        Member::new(2, 21),
        Member::new(3, 31),
        Member::new(4, 41),
    ];
    group_of(&mut m, &[0, 2]);
    for _ in 0..MAX_RECENT_OPENINGS {
        let c = m[0]
            .with(|c, s, d| c.self_update(s, d, T0))
            .expect("update");
        for member in &mut m[1..] {
            member.process(&c);
        }
    }
    let honest = m[2]
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("honest");
    let ground = ground_commit(&mut m[0], T0, &commit_id(&honest));
    // Bob sees the honest commit first, Dave the ground one: both end on the honest one.
    assert_eq!(
        m[1].process(&honest).len(),
        1,
        "the honest commit applies at Bob"
    );
    assert_eq!(m[1].process(&ground), lost());
    assert_eq!(m[3].process(&ground).len(), 1);
    assert_eq!(m[3].process(&honest).len(), 2, "Dave rolls back");
    assert_eq!(m[2].process(&ground), lost());
    m[0].process(&honest);
    same_state(&[&m[0], &m[1], &m[2], &m[3]]);
}

/// Without recent openings the same ground id wins: the bound is on the share of epochs.
#[test]
fn a_sender_without_recent_openings_wins_the_tie_with_the_smaller_id() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0, 2]);
    let honest = m[2]
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("honest");
    let ground = ground_commit(&mut m[0], T0, &commit_id(&honest));
    m[1].process(&honest);
    assert_eq!(m[1].process(&ground).len(), 2, "Bob rolls back");
    assert_eq!(m[2].process(&ground).len(), 2, "Carol rolls back");
    same_state(&[&m[1], &m[2]]);
}
