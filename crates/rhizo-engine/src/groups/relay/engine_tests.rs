//! Member-relayed fan-out on real engines and stores (sans-IO, simulated clock): a group of
//! 12 devices, the sender's frames counted; a relay offline; a relay that never forwards; a
//! forwarding list naming a non-member.

use rhizo_e2e::RekeyPolicy;

use super::*;
use crate::Event;
use crate::groups::tests::{Node, NodeEvents, T0, deliver, info, node, pump, received_texts};

/// Alice (node 0, admin) and `n − 1` members who have her as a contact (they join at once).
fn group_of(dir: &std::path::Path, n: usize) -> (Vec<Node>, [u8; 16]) {
    let mut nodes: Vec<Node> = (1..=n)
        .map(|i| node(dir, u8::try_from(i).unwrap(), RekeyPolicy::default()))
        .collect();
    let alice = nodes[0].contact("alice");
    let mut kps = Vec::new();
    for member in &mut nodes[1..] {
        member.store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
        kps.push(member.key_package());
    }
    let group = {
        let a = &mut nodes[0];
        a.store
            .write(|tx| a.engine.create_group(tx, "dozen", &kps, T0))
            .unwrap()
    };
    let (unreachable, events) = pump(&mut nodes, 0, T0);
    assert!(unreachable.is_empty());
    let joined = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::GroupCreated { .. }))
        .count();
    assert_eq!(joined, n - 1);
    (nodes, group.session_id)
}

/// Runs every node's group outbox at `now` until nothing more is sent; the events.
fn settle_all(nodes: &mut [Node], now: i64) -> NodeEvents {
    let mut events = Vec::new();
    for _ in 0..6 {
        let before = events.len();
        let mut sent = false;
        for i in 0..nodes.len() {
            if !nodes[i].online {
                continue;
            }
            let due = nodes[i]
                .engine
                .poll_group_transmits(&nodes[i].store.read(), now)
                .unwrap();
            sent |= due.iter().any(|t| !t.targets.is_empty());
            events.extend(pump(nodes, i, now).1);
        }
        if !sent && events.len() == before {
            break;
        }
    }
    events
}

/// Alice's text: queued, her first pass (its transmits' frames counted), the events.
fn alice_sends(
    nodes: &mut [Node],
    session: &[u8; 16],
    text: &str,
    now: i64,
) -> (i64, usize, NodeEvents) {
    let a = &mut nodes[0];
    let queued = a
        .store
        .write(|tx| a.engine.queue_group_text(tx, session, text, now))
        .unwrap();
    let frames: usize = nodes[0]
        .engine
        .poll_group_transmits(&nodes[0].store.read(), now)
        .unwrap()
        .iter()
        .map(|t| t.targets.len())
        .sum();
    let (_, events) = pump(nodes, 0, now);
    (queued.row.id, frames, events)
}

fn counts(nodes: &[Node], id: i64) -> (u32, u32) {
    let c = nodes[0].store.read().delivery_counts(id).unwrap();
    (c.delivered, c.total)
}

fn shown_once_everywhere(events: &NodeEvents, n: usize, text: &str) {
    for i in 1..n {
        assert_eq!(received_texts(events, i), [text], "member {i}");
    }
}

#[test]
fn a_group_of_12_devices_gets_every_message_with_the_sender_uploading_at_most_k_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group_of(tmp.path(), 12);
    for (round, text) in ["one", "two", "three"].into_iter().enumerate() {
        let now = T0 + 10 + i64::try_from(round).unwrap() * 1_000;
        let (id, frames, mut events) = alice_sends(&mut nodes, &session, text, now);
        assert!(frames <= RELAY_FANOUT, "alice sent {frames} frames");
        // Relays forward from their outboxes; leaves acknowledge to alice with receipts.
        events.extend(settle_all(&mut nodes, now));
        shown_once_everywhere(&events, 12, text);
        assert_eq!(counts(&nodes, id), (11, 11), "round {round}");
        // Nothing left anywhere (relay jobs done and deleted); nothing due at alice later.
        for n in &nodes {
            assert_eq!(n.store.read().open_relay_jobs(&session).unwrap().1, 0);
        }
        let later = nodes[0]
            .engine
            .poll_group_transmits(&nodes[0].store.read(), now + 10 * RELAY_RECEIPT_WAIT_MS)
            .unwrap();
        assert!(later.iter().all(|t| t.targets.is_empty()), "{later:?}");
    }
}

/// Alice queues `text`; its row id and the first relay head with a subtree (node indexes).
fn queue_with_a_relay(
    nodes: &mut [Node],
    session: &[u8; 16],
    text: &str,
    now: i64,
) -> (i64, usize, Vec<usize>) {
    let a = &mut nodes[0];
    let queued = a
        .store
        .write(|tx| a.engine.queue_group_text(tx, session, text, now))
        .unwrap();
    let index = |d: &[u8; 32]| nodes.iter().position(|n| n.device() == *d).unwrap();
    let (head, subtree) = nodes[0]
        .engine
        .poll_group_transmits(&nodes[0].store.read(), now)
        .unwrap()
        .iter()
        .flat_map(|t| t.relays.clone())
        .find(|r| !r.subtree.is_empty())
        .map(|r| (index(&r.device), r.subtree.iter().map(index).collect()))
        .unwrap();
    (queued.row.id, head, subtree)
}

#[test]
fn an_unreachable_relay_has_its_subtree_sent_directly_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group_of(tmp.path(), 12);
    let now = T0 + 10;
    let (id, head, subtree) = queue_with_a_relay(&mut nodes, &session, "around", now);
    nodes[head].online = false;
    let (unreachable, mut events) = pump(&mut nodes, 0, now);
    // The head's member goes to the mailbox; its subtree was sent to by alice in that pass.
    assert_eq!(unreachable, vec![(id, nodes[head].uid())]);
    for i in &subtree {
        assert_eq!(received_texts(&events, *i), ["around"]);
    }
    events.extend(settle_all(&mut nodes, now));
    for i in (1..12).filter(|i| *i != head) {
        assert_eq!(received_texts(&events, i), ["around"], "member {i}");
    }
    assert_eq!(counts(&nodes, id), (10, 11));
}

#[test]
fn a_relay_that_never_forwards_has_its_subtree_sent_directly_after_the_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group_of(tmp.path(), 12);
    let now = T0 + 10;
    let (id, head, subtree) = queue_with_a_relay(&mut nodes, &session, "quiet", now);
    let (_, mut events) = pump(&mut nodes, 0, now);
    // The head took it (and its job) but never runs its outbox: every other node does.
    for _ in 0..2 {
        for i in (1..12).filter(|i| *i != head) {
            events.extend(pump(&mut nodes, i, now).1);
        }
    }
    for i in &subtree {
        assert!(received_texts(&events, *i).is_empty());
    }
    assert_eq!(counts(&nodes, id), (11 - subtree.len() as u32, 11));
    // Before the wait ends, alice sends nothing; when it ends, she sends to the subtree.
    let early = pump(&mut nodes, 0, now + RELAY_RECEIPT_WAIT_MS - 1).1;
    assert!(early.iter().all(|(i, _)| !subtree.contains(i)));
    let after = now + RELAY_RECEIPT_WAIT_MS;
    events.extend(pump(&mut nodes, 0, after).1);
    for i in &subtree {
        assert_eq!(received_texts(&events, *i), ["quiet"]);
    }
    assert_eq!(counts(&nodes, id), (11, 11));
    // The silent relay wakes up late: its children answer "already have it", show nothing.
    let late = pump(&mut nodes, head, after + 1).1;
    for i in &subtree {
        assert!(received_texts(&late, *i).is_empty());
    }
}

#[test]
fn a_forwarding_list_with_a_non_member_is_refused_and_nothing_is_forwarded() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group_of(tmp.path(), 3);
    let outsider = node(tmp.path(), 40, RekeyPolicy::default()).device();
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .queue_group_text(tx, &session, "members only", T0 + 5)
        })
        .unwrap();
    let envelope = nodes[0]
        .store
        .read()
        .group_outbox_due(T0 + 5, 10)
        .unwrap()
        .remove(0)
        .envelope;
    let alice = nodes[0].device();
    let bob = nodes[1].device();
    let carol = nodes[2].device();
    let frame = |list: Vec<[u8; 32]>| {
        RelayFrame {
            from_relay: false,
            forward_to: list,
            envelope: envelope.clone(),
        }
        .encode()
        .unwrap()
    };
    let mut events = Vec::new();
    let response = deliver(
        &mut nodes,
        &bob,
        &frame(vec![carol, outsider]),
        T0 + 5,
        &mut events,
    )
    .unwrap();
    assert_eq!(
        crate::wire::error_code_of(&response),
        Some(rhizo_core::envelope::ErrorCode::UnexpectedMember)
    );
    assert_eq!(
        nodes[1].store.read().open_relay_jobs(&session).unwrap(),
        (0, 0)
    );
    // The sender's own device in the list: refused too.
    let response = deliver(&mut nodes, &bob, &frame(vec![alice]), T0 + 5, &mut events).unwrap();
    assert_eq!(
        crate::wire::error_code_of(&response),
        Some(rhizo_core::envelope::ErrorCode::Malformed)
    );
    // A list of members: kept before the answer, then forwarded from bob's outbox; carol
    // acknowledges to alice.
    let response = deliver(&mut nodes, &bob, &frame(vec![carol]), T0 + 5, &mut events).unwrap();
    assert!(
        crate::wire::status_of_response(&response).is_some(),
        "{:?} {:?}",
        crate::wire::error_code_of(&response),
        String::from_utf8_lossy(&response)
    );
    assert_eq!(
        nodes[1].store.read().open_relay_jobs(&session).unwrap(),
        (1, 1)
    );
    events.extend(pump(&mut nodes, 1, T0 + 6).1);
    assert_eq!(received_texts(&events, 1), ["members only"]);
    assert_eq!(received_texts(&events, 2), ["members only"]);
    assert_eq!(
        nodes[1].store.read().open_relay_jobs(&session).unwrap(),
        (0, 0)
    );
    events.extend(pump(&mut nodes, 2, T0 + 7).1);
    let due = nodes[0].store.read().group_outbox_due(T0 + 7, 10).unwrap();
    let id = due[0].id;
    assert_eq!(
        counts(&nodes, id),
        (1, 2),
        "carol's receipt envelope counted"
    );
}

/// Alice's first pass over her due commit: the frames it sends (one per target).
fn commit_frames(nodes: &[Node], now: i64) -> usize {
    nodes[0]
        .engine
        .poll_group_transmits(&nodes[0].store.read(), now)
        .unwrap()
        .iter()
        .map(|t| t.targets.len())
        .sum()
}

/// Commits go through relays too: a rename's first pass to 11 other devices is at most K
/// frames, and a removal's is at most K plus a bare copy to the removed member's device (a
/// relay, past the commit, would refuse to forward to a non-member). Every member applies
/// both, the removed member is told, and nothing is left to forward or resend.
#[test]
fn commits_go_through_relays_and_every_member_applies_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = group_of(tmp.path(), 12);
    let now = T0 + 10;
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .update_group_profile(tx, &session, Some("renamed"), None, now)
        })
        .unwrap();
    let frames = commit_frames(&nodes, now);
    assert!(frames <= RELAY_FANOUT, "alice sent {frames} frames");
    pump(&mut nodes, 0, now);
    settle_all(&mut nodes, now);
    let epoch = info(&mut nodes[0], &session).epoch;
    for (i, node) in nodes.iter_mut().enumerate() {
        let seen = info(node, &session);
        assert_eq!(seen.profile.name, "renamed", "node {i}");
        assert_eq!(seen.epoch, epoch, "node {i}");
    }

    let now = now + 1_000;
    let gone = nodes[11].uid();
    let a = &mut nodes[0];
    assert!(
        a.store
            .write(|tx| a.engine.remove_group_member(tx, &session, &gone, now))
            .unwrap()
    );
    let frames = commit_frames(&nodes, now);
    assert!(frames <= RELAY_FANOUT + 1, "alice sent {frames} frames");
    let (_, mut events) = pump(&mut nodes, 0, now);
    events.extend(settle_all(&mut nodes, now));
    assert!(
        events
            .iter()
            .any(|(i, e)| *i == 11 && matches!(e, Event::GroupLeft { removed: true, .. })),
        "the removed member is told"
    );
    for (i, node) in nodes.iter_mut().enumerate().take(11) {
        let seen = info(node, &session);
        assert_eq!(seen.epoch, epoch + 1, "node {i}");
        assert_eq!(seen.members.len(), 11, "node {i}");
    }
    for n in &nodes {
        assert_eq!(n.store.read().open_relay_jobs(&session).unwrap().1, 0);
    }
    let later = nodes[0]
        .engine
        .poll_group_transmits(&nodes[0].store.read(), now + 10 * RELAY_RECEIPT_WAIT_MS)
        .unwrap();
    assert!(later.iter().all(|t| t.targets.is_empty()), "{later:?}");
}
