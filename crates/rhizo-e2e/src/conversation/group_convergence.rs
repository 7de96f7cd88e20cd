//! Seeded randomized convergence of a group: 3 admins and 2 members make concurrent commits
//! (self-updates, renames, a removal) delivered in random order, with duplicates and losses
//! that are resent later; one member is offline the whole time and replays everything in
//! random order at the end. Every member still in the group must end in the same epoch, with
//! the same epoch authenticator, tree hash and roster.

use rhizo_core::group::{GroupProfile, GroupState};

use super::group_tests::{Member, group_of};
use super::*;

const T0: u64 = 1_000_000;
/// Seeds run by default (each a fresh group of five, about 0.3 s of CPU in a debug build, so
/// the test stays under 20 s); `RHIZO_GROUP_SEEDS=500` runs more.
const SEEDS: u64 = 40;
const OFFLINE: usize = 3;
const REMOVABLE: usize = 4;
/// Not in the group at first: an admin may add it (round 0); it joins at the end from the
/// Welcome if that add is the one everybody kept.
const NEWCOMER: usize = 5;

/// splitmix64: a tiny deterministic generator, enough for schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One commit by member `i`, if it makes one this round; an add keeps its Welcome in `welcome`.
fn maybe_commit(
    m: &mut [Member],
    i: usize,
    round: usize,
    rng: &mut Rng,
    welcome: &mut Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    if !m[i].conv().group.is_active() || !rng.chance(45) {
        return None;
    }
    let removable = m[REMOVABLE].uid();
    let newcomer = (round == 0 && welcome.is_none()).then(|| m[NEWCOMER].key_package());
    let admins = [m[0].uid(), m[1].uid(), m[2].uid()];
    let choice = if i < 3 { rng.below(4) } else { 3 };
    let result = m[i].with(|c, s, d| match choice {
        0 => {
            let profile = GroupProfile::named(&format!("r{round}-{i}")).expect("name");
            let state = GroupState::new(admins.to_vec(), profile).expect("state");
            c.set_state(s, d, &state, T0).map(|g| g.commit)
        }
        1 if round == 1 => c
            .remove_members(s, d, &[MemberRef::Uid(removable)], T0)
            .map(|g| g.commit),
        2 if newcomer.is_some() => {
            let package = newcomer.clone().unwrap_or_default();
            c.add_members(s, d, &[package], T0).map(|g| {
                *welcome = g.welcome;
                g.commit
            })
        }
        _ => c.self_update(s, d, T0),
    });
    match result {
        Ok(commit) => Some(commit),
        Err(E2eError::NoSuchMember) => None,
        Err(error) => panic!("member {i} could not commit: {error}"),
    }
}

/// Delivers `inbox` to `m[j]` in random order; with `lossy`, some messages are lost (kept to
/// be resent later), and some are delivered twice. Messages too far ahead are kept too.
/// Returns whether anything was processed.
fn deliver(m: &mut Member, j: usize, inbox: &mut Vec<Vec<u8>>, rng: &mut Rng, lossy: bool) -> bool {
    rng.shuffle(inbox);
    let mut kept = Vec::new();
    let mut progress = false;
    for message in inbox.drain(..) {
        if lossy && rng.chance(30) {
            kept.push(message);
            continue;
        }
        let copies = if rng.chance(15) { 2 } else { 1 };
        for _ in 0..copies {
            match m.try_process(&message) {
                Ok(_) => progress = true,
                Err(E2eError::WrongEpoch { .. }) => {
                    kept.push(message.clone());
                    break;
                }
                // A member removed on a branch that may still lose processes nothing until a
                // rollback brings it back: the sender resends.
                Err(_) if j == REMOVABLE => {
                    kept.push(message.clone());
                    break;
                }
                Err(error) => panic!("member {j}: {error}"),
            }
        }
    }
    *inbox = kept;
    progress
}

/// Runs one schedule; returns whether the newcomer ended in the group and member 4 did not.
fn run(seed: u64) -> (bool, bool) {
    let mut rng = Rng(seed);
    let mut m: Vec<Member> = (0..6u8).map(|i| Member::new(i + 1, 10 * i + 11)).collect();
    group_of(&mut m[..5], &[0, 1, 2]);
    let mut inbox: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 6];
    let mut welcome = None;
    for round in 0..3 {
        for i in 0..5 {
            if i == OFFLINE {
                continue;
            }
            if let Some(commit) = maybe_commit(&mut m, i, round, &mut rng, &mut welcome) {
                for (j, queue) in inbox.iter_mut().enumerate() {
                    if j != i {
                        queue.push(commit.clone());
                    }
                }
            }
        }
        for j in 0..5 {
            if j != OFFLINE {
                deliver(&mut m[j], j, &mut inbox[j], &mut rng, true);
            }
        }
    }
    settle(&mut m, &mut inbox, &mut rng, 5);
    let newcomer = m[NEWCOMER].uid();
    let kept_the_add = m[0]
        .conv()
        .roster()
        .expect("roster")
        .iter()
        .any(|e| e.uid == newcomer);
    if kept_the_add {
        m[NEWCOMER].join(welcome.as_deref().expect("the add's Welcome"));
        settle(&mut m, &mut inbox, &mut rng, 6);
    }
    check(&m, seed);
    let removed = !m[0]
        .conv()
        .roster()
        .expect("roster")
        .iter()
        .any(|e| e.uid == m[REMOVABLE].uid());
    (kept_the_add, removed)
}

/// Everything left is resent until it is all through; the offline member replays it all.
fn settle(m: &mut [Member], inbox: &mut [Vec<Vec<u8>>], rng: &mut Rng, members: usize) {
    for _ in 0..20 {
        let mut progress = false;
        for j in 0..members {
            progress |= deliver(&mut m[j], j, &mut inbox[j], rng, false);
        }
        if !progress {
            break;
        }
    }
}

/// Every member still in the group has the same state as member 0 (never removed).
fn check(m: &[Member], seed: u64) {
    let reference = m[0].conv.as_ref().expect("conv");
    let roster = reference.roster().expect("roster");
    for (j, member) in m.iter().enumerate().skip(1) {
        let in_group = roster.iter().any(|entry| entry.uid == member.uid());
        if j == NEWCOMER && !in_group {
            continue;
        }
        let conv = member.conv.as_ref().expect("conv");
        if !in_group {
            assert_eq!(j, REMOVABLE, "seed {seed}: member {j} lost");
            assert!(
                !conv.group.is_active(),
                "seed {seed}: removed member still active"
            );
            continue;
        }
        assert_eq!(
            conv.epoch(),
            reference.epoch(),
            "seed {seed}: member {j} epoch"
        );
        assert_eq!(
            conv.epoch_authenticator(),
            reference.epoch_authenticator(),
            "seed {seed}: member {j} authenticator"
        );
        assert_eq!(
            conv.tree_hash(),
            reference.tree_hash(),
            "seed {seed}: member {j} tree"
        );
        assert_eq!(
            conv.roster().expect("roster"),
            roster,
            "seed {seed}: member {j} roster"
        );
    }
}

#[test]
fn concurrent_commits_converge_for_many_seeded_schedules() {
    let seeds = std::env::var("RHIZO_GROUP_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SEEDS);
    let (mut added, mut removed) = (0, 0);
    for seed in 0..seeds {
        let (a, r) = run(seed);
        added += usize::from(a);
        removed += usize::from(r);
    }
    // The schedules exercise adds and removals, not only self-updates and renames.
    assert!(added > 0 && removed > 0, "added {added}, removed {removed}");
}
