//! History transfer: pages by cursor, one in flight, resumed after either side stops; on
//! engines with real SQLite stores and a simulated clock.

use rhizo_e2e::RekeyPolicy;

use super::*;
use crate::groups::tests::{Node, T0, device_node, node, settle};
use crate::sync::tests::alice_with_a2;

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
                tx.insert_history(&row, sent_at)?;
            }
            Ok::<_, rhizo_store::StoreError>(())
        })
        .unwrap();
}

fn texts(node: &Node, session: &[u8; 16]) -> Vec<String> {
    node.store
        .read()
        .messages(session, 5000)
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
    // 450 earlier messages in the group (3 pages of 200 at most).
    fill_history(&mut nodes, session, 450, 1_000_000, now - 86_400_000);
    let before = texts(&nodes[3], &session).len();
    let device = nodes[3].device();
    let a1 = &mut nodes[0];
    let started = a1
        .store
        .write(|tx| a1.engine.start_history_transfer(tx, &device, 30, now))
        .unwrap()
        .expect("a sync group");
    assert_eq!(started.total, 450);
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
        last.finished && last.done == 450 && last.total == 450,
        "{last:?}"
    );
    assert_eq!(texts(&nodes[3], &session).len(), before + 450);
    // The sender's side ends too once the last page is acknowledged, and says so once.
    let (now, seen) = step(&mut nodes, now);
    let ended: Vec<_> = seen.iter().filter(|(i, p)| *i == 0 && p.finished).collect();
    assert_eq!(ended.len(), 1, "{seen:?}");
    let (_, seen) = step(&mut nodes, now);
    assert!(seen.iter().all(|(i, _)| *i != 0), "{seen:?}");
    let out = OutState::load(&nodes[0].store.read()).unwrap().unwrap();
    assert!(out.finished && out.done == 450, "{out:?}");
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
