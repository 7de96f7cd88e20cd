//! A member who comes back: through its mailbox (its delivery receipts count it), or from an
//! old or lost state (it asks to be re-added by itself), on the simulated clock.

use rhizo_core::{
    envelope::{ErrorCode, ReceiptStatus},
    mailbox::FetchedEntry,
};
use rhizo_e2e::RekeyPolicy;

use super::tests::{
    Node, deliver, info, node, pump, received_texts, settle, stored_for_offline_carol, trio,
};
use super::{REJOIN_AFTER_BEHIND_MS, REJOIN_RETRY_MS};
use crate::Event;

const T0: i64 = 1_800_000_000_000;

/// Replaces node `i` (seed `seed`) by one opened again on the database file `from`.
fn reopen_from(
    nodes: &mut [Node],
    i: usize,
    dir: &std::path::Path,
    seed: u8,
    from: &std::path::Path,
) {
    let path = dir.join(format!("node{seed}.db"));
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Closes the database first (the node is replaced by one on another file).
    nodes[i] = node(&elsewhere, seed, RekeyPolicy::default());
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    std::fs::copy(from, &path).unwrap();
    nodes[i] = node(dir, seed, RekeyPolicy::default());
}

/// A consistent copy of node `i`'s database (MLS state included).
fn snapshot(node: &Node, to: &std::path::Path) {
    node.store
        .connection()
        .execute("VACUUM INTO ?1", [to.display().to_string()])
        .unwrap();
}

#[test]
fn a_member_back_through_its_mailbox_sends_delivery_receipts_and_the_count_reaches_n() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let (id, item, _) = stored_for_offline_carol(&mut nodes, &session);
    // Carol comes back and fetches it from her mailbox (the same signed bytes).
    nodes[2].online = true;
    let c = &mut nodes[2];
    let fetched = c
        .store
        .write(|tx| {
            c.engine.apply_fetched(
                tx,
                vec![FetchedEntry {
                    envelope: item.envelope.clone().into(),
                    expires_at_ms: u64::MAX,
                }],
                T0 + 3,
            )
        })
        .unwrap();
    assert_eq!(fetched.new, 1);
    assert!(fetched.receipts_queued);
    assert!(
        fetched
            .events
            .iter()
            .any(|e| matches!(e, Event::GroupMessageReceived { .. }))
    );
    // Her node sends a signed DELIVERED receipt to alice (not her contact) in the group's
    // session, before alice's own direct retry is due: delivered 2/2.
    let (_, events) = pump(&mut nodes, 2, T0 + 4);
    assert!(events.iter().any(|(i, e)| *i == 0
        && matches!(
            e,
            Event::GroupMessageState {
                delivered: 2,
                total: 2,
                ..
            }
        )));
    let counts = nodes[0].store.read().delivery_counts(id).unwrap();
    assert_eq!((counts.delivered, counts.total), (2, 2));
}

/// Bob's node restored from a copy taken `renames` commits ago (the commits are gone from his
/// state and are never sent again: they were acknowledged); the time after they settled.
fn restore_bob_behind(
    nodes: &mut [Node],
    dir: &std::path::Path,
    session: &[u8; 16],
    renames: usize,
) -> i64 {
    let old = dir.join("bob-old.db");
    snapshot(&nodes[1], &old);
    let mut now = T0 + 1;
    for n in 0..renames {
        let a = &mut nodes[0];
        let name = format!("moved on {n}");
        a.store
            .write(|tx| {
                a.engine
                    .update_group_profile(tx, session, Some(&name), None, now)
            })
            .unwrap();
        now = settle(nodes, now, 10).0 + 1;
    }
    let epoch = info(&mut nodes[0], session).epoch;
    assert_eq!(info(&mut nodes[1], session).epoch, epoch);
    reopen_from(nodes, 1, dir, 2, &old);
    assert_eq!(info(&mut nodes[1], session).epoch + renames as u64, epoch);
    now
}

/// Alice queues a text at `at`.
fn text(nodes: &mut [Node], session: &[u8; 16], body: &str, at: i64) {
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.queue_group_text(tx, session, body, at))
        .unwrap();
}

/// Alice's due frame to bob (every pending envelope, oldest first) handed to him at `at`;
/// his answer.
fn send_to_bob(nodes: &mut [Node], at: i64) -> Option<ReceiptStatus> {
    let bob = nodes[1].device();
    let frame = {
        let a = &nodes[0];
        let mut due = a.engine.poll_group_transmits(&a.store.read(), at).unwrap();
        due.remove(0).frame
    };
    let response = deliver(nodes, &bob, &frame, at, &mut Vec::new()).unwrap();
    crate::wire::status_of_response(&response)
}

/// The `GroupRejoin` envelopes in bob's outbox.
fn rejoins(nodes: &[Node], at: i64) -> usize {
    let b = &nodes[1];
    let due = b.engine.poll_group_transmits(&b.store.read(), at).unwrap();
    due.iter()
        .flat_map(|t| &t.items)
        .filter(|i| i.kind == "rejoin")
        .count()
}

/// Bob has asked: alice re-adds his device, he joins from her Welcome and reads new messages,
/// and every member ends in the same state.
fn bob_is_readded_and_reads(nodes: &mut [Node], session: &[u8; 16], now: i64) {
    let (now, events) = settle(nodes, now, 20);
    assert!(
        events
            .iter()
            .any(|(i, e)| *i == 1 && matches!(e, Event::GroupCreated { .. }))
    );
    assert!(
        nodes[1]
            .store
            .read()
            .group_rejoin(session)
            .unwrap()
            .is_none()
    );
    text(nodes, session, "welcome back", now);
    let (_, events) = settle(nodes, now, 20);
    assert_eq!(received_texts(&events, 1), ["welcome back"]);
    assert_eq!(received_texts(&events, 2), ["welcome back"]);
    let fingerprints: Vec<String> = (0..3)
        .map(|i| info(&mut nodes[i], session).fingerprint)
        .collect();
    assert!(fingerprints.iter().all(|f| *f == fingerprints[0]));
}

#[test]
fn a_member_restored_from_an_old_state_asks_to_be_readded_and_reads_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let now = restore_bob_behind(&mut nodes, tmp.path(), &session, 1);
    text(&mut nodes, &session, "after restore", now);
    // Made in an epoch bob cannot reach: deferred (retried by alice), nothing asked yet.
    let deferred = Some(ReceiptStatus::Rejected(ErrorCode::SequenceError));
    assert_eq!(send_to_bob(&mut nodes, now), deferred);
    assert_eq!(rejoins(&nodes, now), 0);
    // The same envelope again much later (a retry, or a late copy) is no sign: sealed then.
    let much_later = now + 2 * REJOIN_AFTER_BEHIND_MS;
    assert_eq!(send_to_bob(&mut nodes, much_later), deferred);
    assert_eq!(rejoins(&nodes, much_later), 0);
    // New messages of the group keep coming in that later epoch; one sealed just before
    // REJOIN_AFTER_BEHIND_MS after bob first fell behind asks nothing yet...
    text(
        &mut nodes,
        &session,
        "still here",
        now + REJOIN_AFTER_BEHIND_MS - 1,
    );
    assert_eq!(send_to_bob(&mut nodes, much_later), deferred);
    assert_eq!(rejoins(&nodes, much_later), 0);
    // ...one sealed at REJOIN_AFTER_BEHIND_MS does: bob asks the admin by himself (his old
    // MLS state is dropped), although it waits behind the older ones in alice's frame.
    text(
        &mut nodes,
        &session,
        "anyone?",
        now + REJOIN_AFTER_BEHIND_MS,
    );
    send_to_bob(&mut nodes, much_later);
    assert_eq!(rejoins(&nodes, much_later), 1);
    // Bounded: more envelopes meanwhile ask nothing more.
    send_to_bob(&mut nodes, much_later + 1);
    send_to_bob(&mut nodes, much_later + REJOIN_RETRY_MS - 1);
    assert_eq!(rejoins(&nodes, much_later + REJOIN_RETRY_MS - 1), 1);
    let row = nodes[1]
        .store
        .read()
        .group_rejoin(&session)
        .unwrap()
        .unwrap();
    assert_eq!(row.requested_at, Some(much_later));
    bob_is_readded_and_reads(&mut nodes, &session, much_later + 1);
}

#[test]
fn a_member_restored_further_back_than_the_future_buffer_asks_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let behind = rhizo_e2e::MAX_FUTURE_EPOCHS as usize + 1;
    let now = restore_bob_behind(&mut nodes, tmp.path(), &session, behind);
    // Too far ahead to even keep (retried by alice): a first sign.
    text(&mut nodes, &session, "after restore", now);
    let refused = Some(ReceiptStatus::Rejected(ErrorCode::SequenceError));
    assert_eq!(send_to_bob(&mut nodes, now), refused);
    assert_eq!(rejoins(&nodes, now), 0);
    let later = now + REJOIN_AFTER_BEHIND_MS;
    text(&mut nodes, &session, "anyone?", later);
    send_to_bob(&mut nodes, later);
    assert_eq!(rejoins(&nodes, later), 1);
    bob_is_readded_and_reads(&mut nodes, &session, later + 1);
}

#[test]
fn a_member_whose_group_state_is_lost_asks_at_once_even_from_a_non_contact_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    // Carol (alice is no contact of hers) loses her MLS state of the group; the row stays.
    let c = &mut nodes[2];
    c.store
        .write(|tx| {
            let group = tx.group_by_session(&session)?.unwrap();
            let mls = tx.mls().unwrap();
            rhizo_e2e::Conversation::load(&mls, &group.group_id)
                .unwrap()
                .unwrap()
                .delete(&mls)
                .unwrap();
            Ok::<_, rhizo_store::StoreError>(())
        })
        .unwrap();
    // Her node starts again (nothing of the group loaded in memory).
    nodes[2] = node(tmp.path(), 3, RekeyPolicy::default());
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.queue_group_text(tx, &session, "lost?", T0 + 1))
        .unwrap();
    let (_, events) = pump(&mut nodes, 0, T0 + 1);
    assert!(received_texts(&events, 2).is_empty());
    // She asked at once; alice's Welcome joins her again although alice is not her contact.
    let (now, events) = settle(&mut nodes, T0 + 2, 20);
    assert!(
        events
            .iter()
            .any(|(i, e)| *i == 2 && matches!(e, Event::GroupCreated { .. }))
    );
    assert!(
        !events
            .iter()
            .any(|(i, e)| *i == 2 && matches!(e, Event::GroupRequest { .. }))
    );
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.queue_group_text(tx, &session, "found", now))
        .unwrap();
    let (_, events) = settle(&mut nodes, now, 20);
    assert_eq!(received_texts(&events, 2), ["found"]);
}
