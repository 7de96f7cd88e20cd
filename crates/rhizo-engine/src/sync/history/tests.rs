//! History transfer: pages by cursor, several in flight, resumed after either side stops,
//! history of a conversation joined later kept until it is; on engines with real SQLite
//! stores and a simulated clock.

use rhizo_e2e::RekeyPolicy;

use super::*;
use crate::groups::tests::{Node, T0, device_node, node, settle, trio};
use crate::sync::sync_session;
use crate::sync::tests::{alice_with_a2, link_a2};

/// Writes `count` earlier text messages of the group straight into a1's store (node 0), as
/// its history: sequence numbers from `seq`, one ms apart from `sent_at`.
fn fill_history(nodes: &mut [Node], session: [u8; 16], count: u64, seq: u64, sent_at: i64) {
    let a1 = &mut nodes[0];
    let a1_device = a1.device();
    a1.store
        .write(|tx| {
            for i in 0..count {
                let row = HistoryRow {
                    id: 0,
                    session_id: session,
                    outgoing: i % 2 == 0,
                    sender_device: a1_device,
                    seq: seq + i,
                    body: format!("old {i}"),
                    sent_at: sent_at + i as i64,
                    read: i % 3 == 0,
                };
                tx.insert_history(&row, sent_at, &mut u64::MAX.clone())?;
            }
            Ok::<_, rhizo_store::StoreError>(())
        })
        .unwrap();
}

fn texts(node: &Node, session: &[u8; 16]) -> Vec<String> {
    node.store
        .read()
        .messages(session, rhizo_store::messaging::MAX_HISTORY)
        .unwrap()
        .into_iter()
        .filter_map(|m| m.body)
        .collect()
}

/// Runs `poll_history` on every online node, then the outbox rounds; the progress seen.
fn step(nodes: &mut [Node], now: i64) -> (i64, Vec<(usize, HistoryProgress)>) {
    let mut seen = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        if !n.online {
            continue;
        }
        let moved = n.store.write(|tx| n.engine.poll_history(tx, now)).unwrap();
        seen.extend(moved.into_iter().map(|p| (i, p)));
    }
    let (now, _) = settle(nodes, now, 20);
    (now, seen)
}

#[test]
fn the_history_goes_in_pages_and_the_new_device_shows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, now) = alice_with_a2(tmp.path());
    // 2450 earlier messages in the group (3 pages of 1000 at most).
    let n = 2450;
    fill_history(&mut nodes, session, n, 1_000_000, now - 86_400_000);
    let before = texts(&nodes[3], &session).len();
    let device = nodes[3].device();
    let a1 = &mut nodes[0];
    let started = a1
        .store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap()
        .expect("a sync group");
    assert_eq!(started.total, n);
    let mut now = now;
    let mut last = None;
    for _ in 0..12 {
        let (at, seen) = step(&mut nodes, now);
        now = at;
        if let Some((_, p)) = seen.iter().rev().find(|(i, _)| *i == 3) {
            last = Some(*p);
        }
        if last.is_some_and(|p| p.finished) {
            break;
        }
    }
    let last = last.expect("a2 showed progress");
    assert!(
        last.finished && last.done == n && last.total == n,
        "{last:?}"
    );
    assert_eq!(texts(&nodes[3], &session).len(), before + n as usize);
    // The sender's side ends too once the last page is acknowledged, and says so once.
    let (now, seen) = step(&mut nodes, now);
    let ended: Vec<_> = seen.iter().filter(|(i, p)| *i == 0 && p.finished).collect();
    assert_eq!(ended.len(), 1, "{seen:?}");
    let (_, seen) = step(&mut nodes, now);
    assert!(seen.iter().all(|(i, _)| *i != 0), "{seen:?}");
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert!(out.finished && out.done == n, "{out:?}");
}

#[test]
fn several_pages_go_before_the_first_acknowledgement_and_each_ack_lets_the_next_go() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, now) = alice_with_a2(tmp.path());
    let pages = HISTORY_WINDOW + 2;
    let n = (pages * MAX_HISTORY_PAGE_MESSAGES) as u64;
    fill_history(&mut nodes, session, n, 3_000_000, now - 1000);
    let device = nodes[3].device();
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap();
    // One poll: a full window of pages, no acknowledgement yet.
    a1.store
        .write(|tx| a1.engine.poll_history(tx, now))
        .unwrap();
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert_eq!(out.flight.len(), HISTORY_WINDOW, "{out:?}");
    assert_eq!(out.done, 0);
    // Nothing more goes while the window is full.
    let a1 = &mut nodes[0];
    let moved = a1
        .store
        .write(|tx| a1.engine.poll_history(tx, now))
        .unwrap();
    assert!(moved.is_empty(), "{moved:?}");
    // a2 stores the pages and acknowledges them (one cumulative ack); the rest follows, and
    // the transfer ends without any page sent twice (no resend deadline passes).
    let mut now = now;
    for _ in 0..12 {
        let (at, _) = step(&mut nodes, now);
        now = at;
        let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
        if out.finished {
            break;
        }
    }
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert!(
        out.finished && out.done == n && out.flight.is_empty(),
        "{out:?}"
    );
    let old = texts(&nodes[3], &session)
        .into_iter()
        .filter(|t| t.starts_with("old "))
        .count();
    assert_eq!(old as u64, n);
}

#[test]
fn a_page_after_a_gap_waits_and_the_sender_goes_back_after_the_resend_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, now) = alice_with_a2(tmp.path());
    let n = (3 * MAX_HISTORY_PAGE_MESSAGES) as u64;
    fill_history(&mut nodes, session, n, 4_000_000, now - 1000);
    let device = nodes[3].device();
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap();
    // a2 gets the second page before the first (a lost or reordered envelope): ignored.
    let (second, page2, last) = {
        let reader = nodes[0].store.read();
        let sync = sync_session(&reader).unwrap().expect("a sync group");
        let mut out = OutState::load(&reader).unwrap().expect("a transfer");
        let (first, _) = next_page(&reader, &out, &sync).unwrap();
        out.sent = first.last().unwrap().id as u64;
        let (page2, last) = next_page(&reader, &out, &sync).unwrap();
        (out, page2, last)
    };
    let page = HistoryPage {
        transfer: second.transfer,
        to_device: device.to_vec().into(),
        after: second.sent,
        next: page2.last().unwrap().id as u64,
        total: n,
        done: MAX_HISTORY_PAGE_MESSAGES as u64,
        last,
        messages: page2.iter().map(history_message).collect(),
    };
    let a2 = &mut nodes[3];
    let moved = a2
        .store
        .write(|tx| apply_page(tx, a2.engine.me(), page, now))
        .unwrap();
    assert!(!moved, "a page after a gap is not stored");
    assert_eq!(InState::load(&nodes[3].store.read()).unwrap().next, 0);
    // The real pages then go; a2 being offline, none is acknowledged: after the resend
    // deadline they go again from the acknowledged cursor, and the transfer ends.
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.poll_history(tx, now))
        .unwrap();
    nodes[3].online = false;
    let (now, _) = step(&mut nodes, now);
    nodes[3].online = true;
    let mut now = now + HISTORY_RESEND_MS;
    for _ in 0..12 {
        let (at, _) = step(&mut nodes, now);
        now = at + HISTORY_RESEND_MS;
        if OutState::load(&nodes[0].store.read())
            .unwrap()
            .unwrap()
            .finished
        {
            break;
        }
    }
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert!(out.finished && out.done == n, "{out:?}");
    let old = texts(&nodes[3], &session)
        .into_iter()
        .filter(|t| t.starts_with("old "))
        .count();
    assert_eq!(old as u64, n);
}

#[test]
fn history_of_a_group_the_new_device_joins_later_is_kept_until_it_joins() {
    let tmp = tempfile::tempdir().unwrap();
    // Alice (node 0) is in a group with bob and carol; a2 is linked and in the sync group,
    // but not in that group yet (its Welcome comes after the history).
    let (mut nodes, session) = trio(tmp.path());
    let (mut a2, _) = link_a2(tmp.path(), &mut nodes[0]);
    let (package, device) = (a2.key_package(), a2.device());
    nodes.push(a2);
    for at in [1, 2] {
        crate::sync::tests::knows_a2(&mut nodes, at, device);
    }
    let (now, _) = settle(&mut nodes, T0, 20);
    assert!(
        nodes[3]
            .store
            .read()
            .group_by_session(&session)
            .unwrap()
            .is_none()
    );
    fill_history(&mut nodes, session, 40, 5_000_000, now - 1000);
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap();
    let mut now = now;
    for _ in 0..6 {
        let (at, _) = step(&mut nodes, now);
        now = at;
    }
    let incoming = InState::load(&nodes[3].store.read()).unwrap();
    assert!(incoming.finished && incoming.received == 40, "{incoming:?}");
    // Not lost: kept aside, as the group is not on a2.
    assert_eq!(nodes[3].store.read().pending_history_count().unwrap(), 40);
    // a1 adds a2 to the group: a2 joins, and the history is in the group there.
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            a1.engine
                .add_own_device_to_group(tx, &session, &package, now)
        })
        .unwrap();
    settle(&mut nodes, now, 20);
    assert!(
        nodes[3]
            .store
            .read()
            .group_by_session(&session)
            .unwrap()
            .is_some()
    );
    let old = texts(&nodes[3], &session)
        .into_iter()
        .filter(|t| t.starts_with("old "))
        .count();
    assert_eq!(old, 40);
    assert_eq!(nodes[3].store.read().pending_history_count().unwrap(), 0);
}

#[test]
fn a_transfer_resumes_from_the_last_acknowledged_page_after_the_new_device_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, now) = alice_with_a2(tmp.path());
    fill_history(&mut nodes, session, 300, 2_000_000, now - 1000);
    let device = nodes[3].device();
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap();
    // The first page reaches a2, which stops before acknowledging it.
    let (now, _) = step(&mut nodes, now);
    nodes[3].online = false;
    let (now, _) = step(&mut nodes, now);
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert_eq!(out.done, 0, "nothing acknowledged yet");
    // a2 comes back: it acknowledges the page it has, the next one goes; nothing twice.
    nodes[3].online = true;
    let mut now = now + HISTORY_RESEND_MS;
    for _ in 0..12 {
        let (at, _) = step(&mut nodes, now);
        now = at + HISTORY_RESEND_MS;
        if OutState::load(&nodes[0].store.read())
            .unwrap()
            .unwrap()
            .finished
        {
            break;
        }
    }
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert!(out.finished && out.done == 300, "{out:?}");
    let old: Vec<String> = texts(&nodes[3], &session)
        .into_iter()
        .filter(|t| t.starts_with("old "))
        .collect();
    assert_eq!(old.len(), 300);
}

#[test]
fn an_empty_history_finishes_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a1 = node(tmp.path(), 1, RekeyPolicy::default());
    let a2 = device_node(tmp.path(), 1, 201, RekeyPolicy::default());
    let (c1, c2) = (a1.engine.me().certificate, a2.engine.me().certificate);
    let mut nodes = vec![a1, a2];
    let (p, device) = (nodes[1].key_package(), nodes[1].device());
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            a1.engine.link_own_device(tx, c2, None, T0)?;
            a1.engine.add_device_to_sync_group(tx, &device, &p, T0)
        })
        .unwrap();
    let a2 = &mut nodes[1];
    a2.store
        .write(|tx| a2.engine.link_own_device(tx, c1, None, T0))
        .unwrap();
    let (now, _) = settle(&mut nodes, T0, 20);
    let a1 = &mut nodes[0];
    let started = a1
        .store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap()
        .unwrap();
    assert_eq!(started.total, 0);
    let (now, _) = step(&mut nodes, now);
    step(&mut nodes, now);
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert!(out.finished, "{out:?}");
}
