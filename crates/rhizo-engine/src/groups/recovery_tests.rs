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
use super::{REJOIN_AFTER_BEHIND_MS, REJOIN_GRACE_MS, REJOIN_RETRY_MS};
use crate::{EngineError, Event};

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
    send_frame(nodes, 0, 1, at)
}

/// Node `from`'s first due frame (every pending envelope, oldest first) handed to node `to`
/// alone at `at`; its answer.
fn send_frame(nodes: &mut [Node], from: usize, to: usize, at: i64) -> Option<ReceiptStatus> {
    let device = nodes[to].device();
    let frame = {
        let n = &nodes[from];
        let mut due = n.engine.poll_group_transmits(&n.store.read(), at).unwrap();
        due.remove(0).frame
    };
    let response = deliver(nodes, &device, &frame, at, &mut Vec::new()).unwrap();
    crate::wire::status_of_response(&response)
}

/// Carol queues a text at `at`.
fn carol_text(nodes: &mut [Node], session: &[u8; 16], body: &str, at: i64) {
    let c = &mut nodes[2];
    c.store
        .write(|tx| c.engine.queue_group_text(tx, session, body, at))
        .unwrap();
}

/// The `GroupRejoin` envelopes in bob's outbox.
fn rejoins(nodes: &[Node], at: i64) -> usize {
    rejoins_of(nodes, 1, at)
}

/// The `GroupRejoin` envelopes in node `i`'s outbox.
fn rejoins_of(nodes: &[Node], i: usize, at: i64) -> usize {
    let n = &nodes[i];
    let due = n.engine.poll_group_transmits(&n.store.read(), at).unwrap();
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
    // Joined: the request is off record (old envelopes refused since may note a new row).
    let row = nodes[1].store.read().group_rejoin(session).unwrap();
    assert!(row.is_none_or(|r| r.requested_at.is_none()), "{row:?}");
    assert!(!info(&mut nodes[1], session).rejoining);
    text(nodes, session, "welcome back", now);
    let (_, events) = settle(nodes, now, 20);
    for at in [1, 2] {
        let got = received_texts(&events, at);
        assert_eq!(got.iter().filter(|t| *t == "welcome back").count(), 1);
    }
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
    // Carol too: both other members show it now, but not for long yet.
    carol_text(&mut nodes, &session, "carol here", now + 1);
    assert_eq!(send_frame(&mut nodes, 2, 1, now + 1), deferred);
    assert_eq!(rejoins(&nodes, now + 1), 0);
    let just_before = now + REJOIN_AFTER_BEHIND_MS - 1;
    text(&mut nodes, &session, "still here", just_before);
    assert_eq!(send_to_bob(&mut nodes, just_before), deferred);
    assert_eq!(rejoins(&nodes, just_before), 0);
    // REJOIN_AFTER_BEHIND_MS after bob first fell behind, the grace starts (local time),
    // although the newest envelope waits behind the older ones in alice's frame...
    let moved_on = now + REJOIN_AFTER_BEHIND_MS;
    text(&mut nodes, &session, "anyone?", moved_on);
    send_to_bob(&mut nodes, moved_on);
    assert_eq!(rejoins(&nodes, moved_on), 0);
    send_to_bob(&mut nodes, moved_on + REJOIN_GRACE_MS - 1);
    assert_eq!(rejoins(&nodes, moved_on + REJOIN_GRACE_MS - 1), 0);
    // ...and still at that epoch after it, bob asks the admin by himself (his old MLS state
    // is dropped).
    let asked = moved_on + REJOIN_GRACE_MS;
    send_to_bob(&mut nodes, asked);
    assert_eq!(rejoins(&nodes, asked), 1);
    // Bounded: more envelopes meanwhile ask nothing more.
    send_to_bob(&mut nodes, asked + 1);
    send_to_bob(&mut nodes, asked + REJOIN_RETRY_MS - 1);
    assert_eq!(rejoins(&nodes, asked + REJOIN_RETRY_MS - 1), 1);
    let row = nodes[1]
        .store
        .read()
        .group_rejoin(&session)
        .unwrap()
        .unwrap();
    assert_eq!(row.requested_at, Some(asked));
    bob_is_readded_and_reads(&mut nodes, &session, asked + 1);
}

/// One member alone showing that the group moved on (alice, while carol is quiet) is no
/// majority: bob, restored from an old state, does not ask on alice's word alone (a member on
/// a losing branch looks exactly like that to the others).
#[test]
fn one_member_alone_is_no_majority_for_a_rejoin() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let now = restore_bob_behind(&mut nodes, tmp.path(), &session, 1);
    for k in 0..4 {
        let at = now + k * REJOIN_AFTER_BEHIND_MS;
        text(&mut nodes, &session, &format!("alone {k}"), at);
        send_to_bob(&mut nodes, at);
    }
    let late = now + 3 * REJOIN_AFTER_BEHIND_MS + REJOIN_GRACE_MS;
    send_to_bob(&mut nodes, late);
    assert_eq!(rejoins(&nodes, late), 0);
    // Carol's word makes it a majority: the grace starts, then bob asks.
    carol_text(&mut nodes, &session, "me too", late);
    send_frame(&mut nodes, 2, 1, late);
    send_to_bob(&mut nodes, late + REJOIN_GRACE_MS);
    assert_eq!(rejoins(&nodes, late + REJOIN_GRACE_MS), 1);
}

#[test]
fn a_member_restored_further_back_than_the_future_buffer_asks_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let behind = rhizo_e2e::MAX_FUTURE_EPOCHS as usize + 1;
    let now = restore_bob_behind(&mut nodes, tmp.path(), &session, behind);
    // Too far ahead to even keep (retried by alice and carol): first signs.
    text(&mut nodes, &session, "after restore", now);
    let refused = Some(ReceiptStatus::Rejected(ErrorCode::SequenceError));
    assert_eq!(send_to_bob(&mut nodes, now), refused);
    carol_text(&mut nodes, &session, "carol here", now);
    assert_eq!(send_frame(&mut nodes, 2, 1, now), refused);
    assert_eq!(rejoins(&nodes, now), 0);
    let later = now + REJOIN_AFTER_BEHIND_MS;
    text(&mut nodes, &session, "anyone?", later);
    send_to_bob(&mut nodes, later);
    assert_eq!(rejoins(&nodes, later), 0);
    let later = later + REJOIN_GRACE_MS;
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

/// The envelope of node `from`'s queued item number `index` (oldest first) handed to bob
/// alone at `at`, as a mailbox hands them over; his answer.
fn hand_to_bob(nodes: &mut [Node], from: usize, index: usize, at: i64) -> Option<ReceiptStatus> {
    let item = nodes[from]
        .store
        .read()
        .group_outbox_due(i64::MAX - 1, 100)
        .unwrap()
        .remove(index);
    let bob = nodes[1].device();
    let response = deliver(nodes, &bob, &item.envelope, at, &mut Vec::new()).unwrap();
    crate::wire::status_of_response(&response)
}

/// group_sim seed 468: bob misses alice's rename (it sits in her retry backoff) but gets her
/// next text, so he notes he is behind; offline, he later gets from his mailbox, first,
/// carol's text and alice's text sealed REJOIN_AFTER_BEHIND_MS after that: both other members
/// show the group moved on. The commit is merely late: the request waits the grace, the commit
/// and the texts arrive meanwhile and nothing is lost. (Before, his MLS state was deleted at
/// once, the late commit then refused with UNKNOWN_SESSION.)
#[test]
fn a_member_whose_missing_commit_is_merely_late_catches_up_in_the_grace_and_asks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let (now, _) = settle(&mut nodes, T0 + 1, 20);
    nodes[1].online = false;
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .update_group_profile(tx, &session, Some("renamed"), None, now)
        })
        .unwrap();
    text(&mut nodes, &session, "first", now + 1);
    pump(&mut nodes, 0, now + 1);
    carol_text(&mut nodes, &session, "from carol", now + 2);
    pump(&mut nodes, 2, now + 2);
    nodes[1].online = true;
    let deferred = Some(ReceiptStatus::Rejected(ErrorCode::SequenceError));
    assert_eq!(hand_to_bob(&mut nodes, 0, 1, now + 1), deferred);
    text(
        &mut nodes,
        &session,
        "much later",
        now + 1 + REJOIN_AFTER_BEHIND_MS,
    );
    let back = now + 2 * REJOIN_AFTER_BEHIND_MS;
    assert_eq!(hand_to_bob(&mut nodes, 2, 0, back), deferred);
    assert_eq!(hand_to_bob(&mut nodes, 0, 2, back), deferred);
    assert_eq!(rejoins(&nodes, back), 0);
    assert!(!info(&mut nodes[1], &session).rejoining);
    // The commit arrives in the grace (alice's retry): bob catches up, reads all, once.
    let (_, events) = settle(&mut nodes, back + 60_000, 20);
    let mut got = received_texts(&events, 1);
    got.sort();
    assert_eq!(got, ["first", "from carol", "much later"]);
    assert_eq!(rejoins(&nodes, back + REJOIN_GRACE_MS), 0);
    let (alice, bob) = (info(&mut nodes[0], &session), info(&mut nodes[1], &session));
    assert_eq!(
        (bob.epoch, &bob.fingerprint),
        (alice.epoch, &alice.fingerprint)
    );
    assert_eq!(bob.profile.name, "renamed");
}

/// While bob waits to be re-added, the group is `rejoining`: its info says so (stored members,
/// the epoch he was stuck at), and sending or changing anything is refused with
/// [`EngineError::Rejoining`], not an internal error.
#[test]
fn a_member_waiting_to_be_readded_shows_rejoining_and_refuses_sends_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let (now, _) = settle(&mut nodes, T0 + 1, 20);
    let epoch = info(&mut nodes[1], &session).epoch;
    let fresh = nodes[1].key_package();
    let b = &mut nodes[1];
    let sent = b
        .store
        .write(|tx| b.engine.request_group_rejoin(tx, &session, &fresh, now))
        .unwrap();
    assert_eq!(sent, 1);
    let shown = info(&mut nodes[1], &session);
    assert!(shown.rejoining);
    assert_eq!((shown.epoch, shown.members.len()), (epoch, 3));
    assert!(shown.fingerprint.is_empty());
    assert_eq!(shown.profile.name, "friends");
    let b = &mut nodes[1];
    let text = b
        .store
        .write(|tx| b.engine.queue_group_text(tx, &session, "hello?", now));
    assert!(matches!(text, Err(EngineError::Rejoining)), "{text:?}");
    let rename = b.store.write(|tx| {
        b.engine
            .update_group_profile(tx, &session, Some("x"), None, now)
    });
    assert!(matches!(rename, Err(EngineError::Rejoining)), "{rename:?}");
    let again = b
        .store
        .write(|tx| b.engine.request_group_rejoin(tx, &session, &fresh, now));
    assert!(matches!(again, Err(EngineError::Rejoining)), "{again:?}");
    // Alice's Welcome ends it.
    let (_, _) = settle(&mut nodes, now + 1, 20);
    let shown = info(&mut nodes[1], &session);
    assert!(!shown.rejoining);
    assert_eq!(shown.fingerprint, info(&mut nodes[0], &session).fingerprint);
}

/// Node `i` renames the group at `at`.
fn rename(nodes: &mut [Node], i: usize, session: &[u8; 16], name: &str, at: i64) {
    let n = &mut nodes[i];
    n.store
        .write(|tx| {
            n.engine
                .update_group_profile(tx, session, Some(name), None, at)
        })
        .unwrap();
}

/// Node `i` queues a text at `at` and its due frames go out.
fn say(nodes: &mut [Node], i: usize, session: &[u8; 16], body: &str, at: i64) {
    let n = &mut nodes[i];
    n.store
        .write(|tx| n.engine.queue_group_text(tx, session, body, at))
        .unwrap();
    pump(nodes, i, at);
}

/// Bob (an admin) loses the ordering at one epoch while cut off from alice's winning commit,
/// and goes on alone on his branch for ten more renames: beyond the rollback window, he can
/// never roll back. Alice and carol see only his signs (a minority): they never ask, however
/// long he talks. Bob sees alice's stale winner and both their messages on the other chain (a
/// majority): he drops his branch and asks to be re-added, and every member ends in the same
/// state with his branch's text delivered once.
#[test]
fn a_member_forked_beyond_the_window_asks_and_the_winners_never_do() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session, now) = super::tests::two_admins(tmp.path());
    rename(&mut nodes, 0, &session, "alpha", now);
    nodes[1].online = false;
    pump(&mut nodes, 0, now);
    nodes[1].online = true;
    let later = now + 5 * 60_000;
    for k in 1..=10 {
        rename(&mut nodes, 1, &session, &format!("b{k}"), later + k);
    }
    say(&mut nodes, 1, &session, "on my branch", later + 20);
    for h in 1..=4 {
        let at = later + h * REJOIN_AFTER_BEHIND_MS;
        say(&mut nodes, 1, &session, &format!("still here {h}"), at);
        assert_eq!(rejoins_of(&nodes, 0, at), 0, "alice asked");
        assert_eq!(rejoins_of(&nodes, 2, at), 0, "carol asked");
    }
    assert_eq!(info(&mut nodes[0], &session).profile.name, "alpha");
    assert_eq!(info(&mut nodes[2], &session).profile.name, "alpha");
    // Alice and carol talk; bob keeps getting it (their retries) for half an hour and more.
    let t1 = later + 5 * REJOIN_AFTER_BEHIND_MS;
    say(&mut nodes, 2, &session, "carol on the winning branch", t1);
    say(&mut nodes, 0, &session, "alice on the winning branch", t1);
    assert_eq!(rejoins(&nodes, t1), 0);
    let t2 = t1 + REJOIN_AFTER_BEHIND_MS;
    pump(&mut nodes, 0, t2);
    pump(&mut nodes, 2, t2);
    assert_eq!(rejoins(&nodes, t2), 0, "asked before the grace");
    let t3 = t2 + REJOIN_GRACE_MS;
    pump(&mut nodes, 0, t3);
    pump(&mut nodes, 2, t3);
    assert_eq!(rejoins(&nodes, t3), 1, "bob did not ask");
    assert_eq!(rejoins_of(&nodes, 0, t3), 0);
    assert_eq!(rejoins_of(&nodes, 2, t3), 0);
    let (_, events) = settle(&mut nodes, t3, 40);
    let infos = super::tests::converged(&mut nodes, &session);
    assert_eq!(infos[0].profile.name, "alpha");
    for at in [0, 2] {
        let got = received_texts(&events, at);
        assert_eq!(
            got.iter().filter(|t| *t == "on my branch").count(),
            1,
            "node {at}: {got:?}"
        );
    }
}

/// Alice's node restored from a copy taken before she sent two texts: her sender ratchet is
/// back at the generations she used for them. Noted as restored, her next text goes out after
/// a self-update of hers (a fresh epoch), and every member reads it; without the note, that
/// text would reuse a generation the members already deleted (`DECRYPTION_FAILED`).
#[test]
fn a_node_restored_from_an_older_copy_sends_in_a_fresh_epoch_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let (now, _) = settle(&mut nodes, T0 + 1, 20);
    let old = tmp.path().join("alice-old.db");
    snapshot(&nodes[0], &old);
    let epoch = info(&mut nodes[0], &session).epoch;
    text(&mut nodes, &session, "one", now);
    text(&mut nodes, &session, "two", now + 1);
    let (now, events) = settle(&mut nodes, now + 1, 20);
    assert_eq!(received_texts(&events, 1), ["one", "two"]);
    // The disk dies; alice's node starts again on the copy (its sequence floor raised, as
    // rhizo-node does at each start) and finds it restored.
    reopen_from(&mut nodes, 0, tmp.path(), 1, &old);
    nodes[0]
        .store
        .write(|tx| {
            tx.raise_sequence_floor(now)?;
            crate::restored::note_restored(tx, now)
                .map_err(|e| rhizo_store::StoreError::InvalidInput(e.to_string()))
        })
        .unwrap();
    assert_eq!(info(&mut nodes[0], &session).epoch, epoch);
    text(&mut nodes, &session, "three", now + 1);
    assert_eq!(info(&mut nodes[0], &session).epoch, epoch + 1);
    let (now, events) = settle(&mut nodes, now + 1, 20);
    for i in [1, 2] {
        assert_eq!(received_texts(&events, i), ["three"], "node {i}");
        assert_eq!(info(&mut nodes[i], &session).epoch, epoch + 1, "node {i}");
    }
    // It stops: a fresh commit made in the second the restore was found counts as older (see
    // `restored::fresh_epoch_due`), so the next text in a later second may get one more; after
    // that, none.
    let later = now + 1000;
    text(&mut nodes, &session, "four", later);
    let (now, events) = settle(&mut nodes, later, 20);
    assert_eq!(received_texts(&events, 1), ["four"]);
    let settled = info(&mut nodes[0], &session).epoch;
    assert!(settled <= epoch + 2, "{settled}");
    text(&mut nodes, &session, "five", now + 1000);
    let (_, events) = settle(&mut nodes, now + 1000, 20);
    assert_eq!(received_texts(&events, 1), ["five"]);
    assert_eq!(info(&mut nodes[0], &session).epoch, settled);
}
