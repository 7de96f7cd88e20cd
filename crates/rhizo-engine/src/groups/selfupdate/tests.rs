//! Joiners' first self-updates on the simulated clock: engines with seeded generators on real
//! SQLite stores, frames handed between them by the group tests' in-memory network.

use rhizo_core::{DeviceKey, RootKey};
use rhizo_e2e::RekeyPolicy;

use super::super::tests::{Node, info, node, pump};
use super::*;
use crate::Me;

/// A clock well inside every envelope's replay window.
const T0: i64 = 1_800_000_000_000;

/// Node `seed` of the group tests, its engine's generator seeded with `seed`.
fn seeded(dir: &std::path::Path, seed: u8) -> Node {
    let mut n = node(dir, seed, RekeyPolicy::default());
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed.wrapping_add(100); 32]);
    let me = {
        let certificate = root.certify_device(&device.public(), 1);
        Me::primary(root, device, certificate, None)
    };
    n.engine = Engine::with_seed(me, RekeyPolicy::default(), u64::from(seed)).unwrap();
    n
}

/// Alice (node 0) creates a group with `others` members, each of whom has her as a contact
/// (so each joins at once). The nodes and the group's session.
fn group(dir: &std::path::Path, others: u8) -> (Vec<Node>, [u8; 16]) {
    let mut nodes: Vec<Node> = (1..=others + 1).map(|seed| seeded(dir, seed)).collect();
    let alice = nodes[0].contact("alice");
    let mut kps = Vec::new();
    for n in &mut nodes[1..] {
        n.store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
        kps.push(n.key_package());
    }
    let group = {
        let a = &mut nodes[0];
        a.store
            .write(|tx| a.engine.create_group(tx, "joiners", &kps, T0))
            .unwrap()
    };
    pump(&mut nodes, 0, T0);
    (nodes, group.session_id)
}

/// Runs every node's self-update timer, then every outbox, at `now`; commits queued.
fn tick(nodes: &mut [Node], now: i64) -> usize {
    let mut committed = 0;
    for n in nodes.iter_mut() {
        let run = n
            .store
            .write(|tx| n.engine.run_self_updates(tx, now))
            .unwrap();
        committed += run.committed;
    }
    for from in 0..nodes.len() {
        pump(nodes, from, now);
    }
    committed
}

/// (blank paths, never committed) of node `i`'s view of the group.
fn tree(n: &mut Node, session: &[u8; 16]) -> (usize, bool) {
    n.store
        .write(|tx| {
            let group = tx.group_by_session(session)?.unwrap();
            let c = n.engine.load_group(tx, &group).unwrap();
            Ok::<_, rhizo_store::StoreError>((c.blank_paths(), c.never_committed()))
        })
        .unwrap()
}

/// The size of the one commit alice has waiting.
fn waiting_commit_bytes(a: &Node) -> usize {
    let due = a.store.read().group_outbox_due(i64::MAX - 1, 10).unwrap();
    let commits: Vec<_> = due.iter().filter(|d| d.kind == "commit").collect();
    assert_eq!(commits.len(), 1, "one commit waits");
    commits[0].envelope.len()
}

/// Ticks every 5 s until no node has a self-update scheduled (at most 3 windows of 8 devices
/// after `from`); the time then and the commits made.
fn run_until_done(nodes: &mut [Node], from: i64) -> (i64, usize) {
    let end = from + 3 * (SCAN_INTERVAL_MS + MIN_DELAY_MS + window_ms(8));
    let (mut now, mut committed) = (from, 0);
    while now < end {
        now += 5_000;
        committed += tick(nodes, now);
        let pending = nodes.iter().any(|n| {
            let schedule = n.engine.self_updates.lock();
            schedule.next_scan.is_none()
                || schedule
                    .groups
                    .values()
                    .any(|e| matches!(e, Entry::Due { .. }))
        });
        if !pending {
            return (now, committed);
        }
    }
    panic!(
        "self-updates still scheduled after {} s",
        (end - from) / 1000
    );
}

/// Every node is in the same epoch with the same fingerprint and roster.
fn converged(nodes: &mut [Node], session: &[u8; 16]) -> u64 {
    let infos: Vec<_> = nodes.iter_mut().map(|n| info(n, session)).collect();
    for other in &infos[1..] {
        assert_eq!(other.epoch, infos[0].epoch);
        assert_eq!(other.fingerprint, infos[0].fingerprint);
        assert_eq!(other.members.len(), infos[0].members.len());
    }
    infos[0].epoch
}

#[test]
fn every_joiner_self_updates_once_the_tree_fills_and_a_remove_gets_small() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group(tmp.path(), 7);
    assert!(
        tree(&mut nodes[0], &session).0 > 0,
        "blank paths after one add"
    );
    // A remove now encrypts to every leaf below the blank nodes.
    let dave = *nodes[7].engine.me().uid.as_bytes();
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.remove_group_member(tx, &session, &dave, T0 + 1))
        .unwrap();
    let blank_remove = waiting_commit_bytes(&nodes[0]);
    pump(&mut nodes, 0, T0 + 1);
    nodes.truncate(7);
    // The joiners' times are spread over MIN_DELAY + window(8 devices); nobody commits before.
    assert_eq!(tick(&mut nodes, T0 + 2), 0);
    let (now, committed) = run_until_done(&mut nodes, T0 + 2);
    // Joiners due in the same tick commit in the same epoch: the losers commit again.
    assert!(
        committed >= 6,
        "each of the 6 joiners committed: {committed}"
    );
    for (i, n) in nodes.iter_mut().enumerate() {
        let (blank, never) = tree(n, &session);
        assert_eq!(blank, 0, "node {i} sees a filled tree");
        assert!(!never, "node {i} has committed (alice: her remove)");
    }
    converged(&mut nodes, &session);
    // Nothing more is scheduled: later ticks commit nothing.
    assert_eq!(tick(&mut nodes, now + MAX_WINDOW_MS * 2), 0);
    // The same remove in the filled tree: the path secret goes to one node per level.
    let erin = *nodes[6].engine.me().uid.as_bytes();
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.remove_group_member(tx, &session, &erin, now + 1))
        .unwrap();
    let filled_remove = waiting_commit_bytes(&nodes[0]);
    assert!(
        filled_remove + 2 * 1024 < blank_remove,
        "filled {filled_remove} B, blank {blank_remove} B"
    );
}

#[test]
fn competing_self_updates_converge_and_the_loser_commits_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group(tmp.path(), 2);
    // Bob and carol both come due and commit in the same epoch before hearing of each other.
    for n in nodes.iter_mut() {
        n.store
            .write(|tx| n.engine.run_self_updates(tx, T0))
            .unwrap();
    }
    let late = T0 + MIN_DELAY_MS + window_ms(3) + 1;
    let mut committed = 0;
    for n in &mut nodes[1..] {
        let run = n
            .store
            .write(|tx| n.engine.run_self_updates(tx, late))
            .unwrap();
        committed += run.committed;
    }
    assert_eq!(committed, 2);
    for from in 0..nodes.len() {
        pump(&mut nodes, from, late);
    }
    // Exactly one of them lost the epoch: its KeyPackage leaf is back.
    let lost: Vec<bool> = (1..3).map(|i| tree(&mut nodes[i], &session).1).collect();
    assert_eq!(
        lost.iter().filter(|l| **l).count(),
        1,
        "one loser: {lost:?}"
    );
    // The loser commits again at its next look; everyone converges on a filled tree.
    let (_, more) = run_until_done(&mut nodes, late);
    assert_eq!(more, 1, "the loser committed once more");
    for (i, n) in nodes.iter_mut().enumerate().skip(1) {
        assert_eq!(tree(n, &session), (0, false), "node {i}");
    }
    let epoch = converged(&mut nodes, &session);
    assert!(epoch >= 3, "two self-updates applied: epoch {epoch}");
    for n in &nodes[1..] {
        let schedule = n.engine.self_updates.lock();
        assert_eq!(schedule.groups.get(&session), Some(&Entry::Done));
    }
}

#[test]
fn the_wait_grows_with_the_group_and_is_bounded() {
    assert_eq!(window_ms(1), WINDOW_PER_DEVICE_MS);
    assert_eq!(window_ms(100), 100 * WINDOW_PER_DEVICE_MS);
    assert_eq!(window_ms(1000), 1000 * WINDOW_PER_DEVICE_MS);
    assert_eq!(window_ms(2000), MAX_WINDOW_MS);
    assert_eq!(window_ms(usize::MAX), MAX_WINDOW_MS);
}
