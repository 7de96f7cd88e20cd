//! A member who comes back: through its mailbox (its delivery receipts count it), or from an
//! old or lost state (it asks to be re-added by itself), on the simulated clock.

use rhizo_core::{envelope::ReceiptStatus, mailbox::FetchedEntry};
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

#[test]
fn a_member_restored_from_an_old_state_asks_to_be_readded_and_reads_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut nodes, session) = trio(dir);
    let old = dir.join("bob-old.db");
    snapshot(&nodes[1], &old);
    // The group moves on: a rename (a commit) every member applies.
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .update_group_profile(tx, &session, Some("moved on"), None, T0 + 1)
        })
        .unwrap();
    let (now, _) = settle(&mut nodes, T0 + 1, 10);
    let epoch = info(&mut nodes[0], &session).epoch;
    assert_eq!(info(&mut nodes[1], &session).epoch, epoch);
    // Bob's node is restored from the copy taken before: the commit is gone from his state
    // and will never be sent again (it was acknowledged).
    reopen_from(&mut nodes, 1, dir, 2, &old);
    assert!(info(&mut nodes[1], &session).epoch < epoch);
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .queue_group_text(tx, &session, "after restore", now)
        })
        .unwrap();
    let bob = nodes[1].device();
    // Alice's due frame (every pending envelope to bob, oldest first) handed to bob at `at`.
    let send = |nodes: &mut Vec<Node>, at: i64| {
        let frame = {
            let a = &nodes[0];
            let mut due = a.engine.poll_group_transmits(&a.store.read(), at).unwrap();
            due.remove(0).frame
        };
        let response = deliver(nodes, &bob, &frame, at, &mut Vec::new()).unwrap();
        crate::wire::status_of_response(&response)
    };
    let rejoins = |nodes: &Vec<Node>, at: i64| {
        let b = &nodes[1];
        let due = b.engine.poll_group_transmits(&b.store.read(), at).unwrap();
        due.iter()
            .flat_map(|t| &t.items)
            .filter(|i| i.kind == "rejoin")
            .count()
    };
    // Made in an epoch bob cannot reach: deferred (retried by alice), nothing asked yet.
    let deferred = Some(ReceiptStatus::Rejected(
        rhizo_core::envelope::ErrorCode::SequenceError,
    ));
    assert_eq!(send(&mut nodes, now), deferred);
    assert_eq!(rejoins(&nodes, now), 0);
    // The same envelope again much later (a retry, or a late copy) is no sign: sealed then.
    let much_later = now + 2 * REJOIN_AFTER_BEHIND_MS;
    assert_eq!(send(&mut nodes, much_later), deferred);
    assert_eq!(rejoins(&nodes, much_later), 0);
    // New messages of the group keep coming in that later epoch; one sealed just before
    // REJOIN_AFTER_BEHIND_MS after bob first fell behind asks nothing yet...
    let text = |nodes: &mut Vec<Node>, body: &str, at: i64| {
        let a = &mut nodes[0];
        a.store
            .write(|tx| a.engine.queue_group_text(tx, &session, body, at))
            .unwrap();
    };
    text(&mut nodes, "still here", now + REJOIN_AFTER_BEHIND_MS - 1);
    assert_eq!(send(&mut nodes, much_later), deferred);
    assert_eq!(rejoins(&nodes, much_later), 0);
    // ...one sealed at REJOIN_AFTER_BEHIND_MS does: bob asks the admin by himself (his old
    // MLS state is dropped), although it waits behind the older ones in alice's frame.
    let later = now + REJOIN_AFTER_BEHIND_MS;
    text(&mut nodes, "anyone?", later);
    send(&mut nodes, much_later);
    assert_eq!(rejoins(&nodes, much_later), 1);
    // Bounded: more envelopes meanwhile ask nothing more.
    send(&mut nodes, much_later + 1);
    send(&mut nodes, much_later + REJOIN_RETRY_MS - 1);
    assert_eq!(rejoins(&nodes, much_later + REJOIN_RETRY_MS - 1), 1);
    let row = nodes[1]
        .store
        .read()
        .group_rejoin(&session)
        .unwrap()
        .unwrap();
    assert_eq!(row.requested_at, Some(much_later));
    // Alice re-adds bob's device; bob joins from her Welcome and reads new messages.
    let (now, events) = settle(&mut nodes, much_later + 1, 20);
    assert!(
        events
            .iter()
            .any(|(i, e)| *i == 1 && matches!(e, Event::GroupCreated { .. }))
    );
    assert!(
        nodes[1]
            .store
            .read()
            .group_rejoin(&session)
            .unwrap()
            .is_none()
    );
    let a = &mut nodes[0];
    a.store
        .write(|tx| a.engine.queue_group_text(tx, &session, "welcome back", now))
        .unwrap();
    let (_, events) = settle(&mut nodes, now, 20);
    assert_eq!(received_texts(&events, 1), ["welcome back"]);
    assert_eq!(received_texts(&events, 2), ["welcome back"]);
    let fingerprints: Vec<String> = (0..3)
        .map(|i| info(&mut nodes[i], &session).fingerprint)
        .collect();
    assert!(fingerprints.iter().all(|f| *f == fingerprints[0]));
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
