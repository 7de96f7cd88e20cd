//! Tests of the parent module (kept apart so the module file holds only its logic).

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rhizo_core::{
    envelope::{DeliveryReceipt, ErrorCode, ReceiptEntry, ReceiptStatus, SecureMessage},
    mailbox::{FetchRequest, MailboxRequest, MailboxResponse, REPLICAS, mailbox_key},
};
use rhizo_engine::mailbox::check_store;
use rhizo_engine::mailbox::test_support::TestUser as User;
use rhizo_store::{Db, DbConfig, DbError, Durability, Store, mailbox::MailboxQuota};
use tokio::sync::Semaphore;

use super::*;
use crate::clock::{PausedClock, SystemClock};

fn now_ms() -> i64 {
    crate::clock::Clock::now_ms(&SystemClock)
}

fn start(store: Store) -> Db {
    Db::start(store, DbConfig::default()).unwrap()
}

/// Holds the database's writer (as a long commit would) until the returned sender is used or
/// dropped; returns once the writer is inside the job.
fn hold_writer(db: &Db) -> std_mpsc::SyncSender<()> {
    let (started_tx, started_rx) = std_mpsc::sync_channel(1);
    let (release_tx, release_rx) = std_mpsc::sync_channel::<()>(1);
    // Nobody waits for the answer; the job runs all the same.
    drop(
        db.try_write(Durability::Full, move |_tx| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Ok::<_, DbError>(())
        })
        .unwrap(),
    );
    started_rx.recv().unwrap();
    release_tx
}

/// The test's clock: 2026-11-22, unix ms.
const T0: i64 = 1_795_300_000_000;
const REPLICA: &[u8] = b"replica";

fn code(response: &MailboxResponse) -> Option<ErrorCode> {
    match response {
        MailboxResponse::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Checked stores of `count` envelopes from alice to bob, timestamped now.
fn checked_stores(count: u64) -> Vec<CheckedStore> {
    let (alice, bob) = (User::new(1), User::new(2));
    let now = now_ms();
    (1..=count)
        .map(|seq| {
            check_store(
                |_| Ok(()),
                now,
                bob.uid(),
                alice.envelope(&bob, seq, now).into(),
                0,
                alice.cert(),
            )
            .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_share_commits_and_are_all_durable() {
    const N: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let db = start(Store::open(&path).unwrap());
    let clock: SharedClock = Arc::new(SystemClock);
    let writer = ReplicaWriter::new(db.clone(), MailboxQuota::default(), N, clock);
    let stores = checked_stores(N as u64);
    // All N outstanding at once: queued while the database's writer is busy (here: held by
    // the test, as a commit in progress would hold it).
    let answers: Vec<_> = {
        let _busy = hold_writer(&db);
        stores
            .iter()
            .map(|c| writer.submit(c.clone()).unwrap())
            .collect()
    };
    for answer in answers {
        assert!(
            matches!(
                answer.await,
                MailboxResponse::Stored {
                    duplicate: false,
                    ..
                }
            ),
            "every store acknowledged"
        );
    }
    let stats = writer.stats();
    assert_eq!(stats.stores, N as u64);
    assert!(
        stats.commits < N as u64,
        "{} commits for {N} stores",
        stats.commits
    );
    // At most: the held job alone, then full groups.
    assert!(
        stats.commits <= 1 + N.div_ceil(STORE_GROUP) as u64,
        "{stats:?}"
    );

    // Acknowledged means durable: all of them are there after a reopen.
    drop(writer);
    drop(db);
    let reopened = Store::open(&path).unwrap();
    let held = reopened
        .read()
        .mailbox_entries(User::new(2).uid().as_bytes(), now_ms(), 1000)
        .unwrap();
    assert_eq!(held.len(), N);
    let mut digests: Vec<[u8; 32]> = held.iter().map(|e| e.digest).collect();
    digests.sort_unstable();
    let mut expected: Vec<[u8; 32]> = stores.iter().map(CheckedStore::digest).collect();
    expected.sort_unstable();
    assert_eq!(digests, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_writer_queue_is_rate_limited_not_queued() {
    let db = start(Store::open_in_memory().unwrap());
    let clock: SharedClock = Arc::new(SystemClock);
    let writer = ReplicaWriter::new(db.clone(), MailboxQuota::default(), 2, clock);
    let stores = checked_stores(2 + STORE_GROUP as u64 + 2);
    let mut accepted = Vec::new();
    let mut refused = 0;
    {
        let _busy = hold_writer(&db);
        for c in &stores {
            match writer.submit(c.clone()) {
                Ok(answer) => accepted.push(answer),
                Err(r) => {
                    assert_eq!(code(&r), Some(ErrorCode::RateLimited));
                    refused += 1;
                }
            }
        }
    }
    // Two may wait while the database is busy; the others are refused at once.
    assert!(refused >= 1, "the queue is bounded");
    assert_eq!(writer.stats().refused_busy, refused);
    assert_eq!(accepted.len(), 2);
    for answer in accepted {
        assert!(matches!(answer.await, MailboxResponse::Stored { .. }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_replica_checks_then_group_commits_concurrent_requests() {
    const N: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let db = start(Store::open(&path).unwrap());
    let replica = MailboxReplica::new(
        db.clone(),
        ReplicaContext {
            local_peer: REPLICA.to_vec(),
            quota: MailboxQuota::default(),
        },
    );
    let (alice, bob) = (User::new(1), User::new(2));
    let now = now_ms();
    let request = |envelope: Vec<u8>| {
        MailboxRequest::Store {
            recipient: bob.uid(),
            envelope: envelope.into(),
            ttl_secs: 0,
            sender_cert: alice.cert(),
        }
        .encode()
    };
    let mut forged = alice.envelope(&bob, N + 1, now);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut payloads: Vec<Vec<u8>> = (1..=N)
        .map(|seq| request(alice.envelope(&bob, seq, now)))
        .collect();
    // The same envelope twice, a forged one: answered on their own, the others unaffected.
    payloads.push(request(alice.envelope(&bob, 1, now)));
    payloads.push(request(forged));
    let tasks: Vec<_> = payloads
        .into_iter()
        .map(|p| {
            let replica = replica.clone();
            tokio::spawn(async move { replica.handle(p).await })
        })
        .collect();
    let mut stored = 0;
    let mut duplicates = 0;
    let mut answers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            MailboxResponse::Stored {
                duplicate: false, ..
            } => stored += 1,
            MailboxResponse::Stored {
                duplicate: true, ..
            } => duplicates += 1,
            other => answers.push(code(&other)),
        }
    }
    assert_eq!((stored, duplicates), (N, 1));
    assert_eq!(answers, [Some(ErrorCode::InvalidSignature)]);
    let stats = replica.writer_stats();
    assert_eq!(
        stats.stores,
        N + 1,
        "the forged one never reached the writer"
    );
    assert!((1..=N + 1).contains(&stats.commits), "{stats:?}");
    // Fetches and deletes still work beside the writer.
    assert!(matches!(
        replica
            .handle(
                MailboxRequest::Challenge {
                    recipient: bob.uid()
                }
                .encode()
            )
            .await,
        MailboxResponse::Challenge { .. }
    ));
    drop(replica);
    drop(db);
    let held = Store::open(&path)
        .unwrap()
        .read()
        .mailbox_entries(bob.uid().as_bytes(), now_ms(), 1000)
        .unwrap();
    assert_eq!(held.len() as u64, N);
}

#[test]
fn a_replay_detected_answer_never_makes_a_message_delivered() {
    // Two replicas answer REPLAY_DETECTED (unsigned; anyone near the mailbox key can):
    // "stop storing there", counted like replicas holding it; the row becomes `stored`,
    // never `delivered` (the old code marked it delivered on any such answer).
    let outcome = StoreOutcome {
        replicas: 0,
        tombstoned: 2,
        ..StoreOutcome::default()
    };
    assert_eq!(outcome.verdict(), StoreVerdict::Stored { replicas: 2 });
    let outcome = StoreOutcome {
        replicas: 3,
        tombstoned: 2,
        ..StoreOutcome::default()
    };
    assert_eq!(outcome.verdict(), StoreVerdict::Stored { replicas: 5 });
    assert_eq!(StoreOutcome::default().verdict(), StoreVerdict::Retry);
}

#[test]
fn a_replica_takes_stores_only_near_its_mailboxes() {
    assert!(responsible(0));
    assert!(responsible(RESPONSIBLE_RANK - 1));
    assert!(!responsible(RESPONSIBLE_RANK));
    // A network smaller than the slack never refuses: fewer peers than RESPONSIBLE_RANK
    // can be closer.
    const { assert!(RESPONSIBLE_RANK > 2 * REPLICAS) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_far_from_a_mailbox_refuses_stores_for_it() {
    let (alice, bob) = (User::new(1), User::new(2));
    let db = start(Store::open_in_memory().unwrap());
    let context = ReplicaContext {
        local_peer: REPLICA.to_vec(),
        quota: MailboxQuota::default(),
    };
    let bobs_key = mailbox_key(&bob.uid());
    let neighbourhood: Neighbourhood = Arc::new(move |key| {
        Box::pin(async move { responsible(if key == bobs_key { 20 } else { 3 }) })
    });
    let replica =
        MailboxReplica::with_neighbourhood(db, context, Some(neighbourhood), Arc::new(SystemClock));
    let now = now_ms();
    let store_for = |to: &User| {
        MailboxRequest::Store {
            recipient: to.uid(),
            envelope: alice.envelope(to, 1, now).into(),
            ttl_secs: 0,
            sender_cert: alice.cert(),
        }
        .encode()
    };
    let refused = replica.handle(store_for(&bob)).await;
    assert_eq!(
        code(&refused),
        Some(ErrorCode::QuotaExceeded),
        "{refused:?}"
    );
    let carol = User::new(4);
    assert!(matches!(
        replica.handle(store_for(&carol)).await,
        MailboxResponse::Stored { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_and_delete_checks_run_without_waiting_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = start(Store::open(&dir.path().join("r.db")).unwrap());
    let replica = MailboxReplica::new(
        db.clone(),
        ReplicaContext {
            local_peer: REPLICA.to_vec(),
            quota: MailboxQuota::default(),
        },
    );
    let (alice, bob) = (User::new(1), User::new(2));
    let warm = MailboxRequest::Challenge {
        recipient: bob.uid(),
    };
    let nonce = match replica.handle(warm.encode()).await {
        MailboxResponse::Challenge { nonce, .. } => nonce,
        other => panic!("{other:?}"),
    };
    let bad_fetch = MailboxRequest::Fetch(FetchRequest::new(
        &alice.device,
        REPLICA,
        bob.uid(),
        nonce,
        bob.device_list(1, now_ms()),
        64,
    ));
    let _ = replica.handle(bad_fetch.encode()).await;
    // The database's writer held (a long commit, or a flood): challenges, badly signed
    // fetches and deletes are still answered (an old replica took the lock before checking).
    let _busy = hold_writer(&db);
    let within = |f| tokio::time::timeout(Duration::from_secs(10), f);
    let challenge = within(replica.handle(warm.encode()))
        .await
        .expect("a challenge does not wait for the store");
    let MailboxResponse::Challenge { nonce, .. } = challenge else {
        panic!("{challenge:?}");
    };
    let bad_fetch = MailboxRequest::Fetch(FetchRequest::new(
        &alice.device,
        REPLICA,
        bob.uid(),
        nonce,
        bob.device_list(1, now_ms()),
        64,
    ));
    let answer = within(replica.handle(bad_fetch.encode()))
        .await
        .expect("a bad fetch is refused without waiting for the store");
    assert_eq!(code(&answer), Some(ErrorCode::UnknownSender));
    let mut receipt = DeliveryReceipt {
        recipient_device: alice.device.public(),
        timestamp: now_ms() as u64,
        entries: vec![ReceiptEntry::for_envelope(
            &SecureMessage::decode(&alice.envelope(&bob, 1, now_ms())).unwrap(),
            ReceiptStatus::Delivered,
        )],
        signature: [0; 64],
    };
    receipt.sign(&alice.device).unwrap();
    let bad_delete = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
        bob.uid(),
        bob.device_list(1, now_ms()),
        &receipt,
    ));
    let answer = within(replica.handle(bad_delete.encode()))
        .await
        .expect("a bad delete is refused without waiting for the store");
    assert_eq!(code(&answer), Some(ErrorCode::UnknownSender));
}

#[test]
fn a_full_request_semaphore_answers_rate_limited_at_once() {
    let in_flight = Arc::new(Semaphore::new(2));
    let first = admit(&in_flight).unwrap();
    let _second = admit(&in_flight).unwrap();
    let busy = admit(&in_flight).unwrap_err();
    assert_eq!(
        code(&MailboxResponse::decode(&busy).unwrap()),
        Some(ErrorCode::RateLimited)
    );
    drop(first);
    admit(&in_flight).expect("room again once one finished");
}

#[tokio::test(start_paused = true)]
async fn the_replication_timer_purges_on_simulated_hours() {
    // The node's clock and tokio's timer move together: two simulated hours pass in
    // milliseconds, the replication pass runs on its hourly timer and purges what expired.
    let db = start(Store::open_in_memory().unwrap());
    let (alice, bob) = (User::new(1), User::new(2));
    let envelope = alice.envelope(&bob, 1, T0);
    let (recipient_uid, sender_uid) = (*bob.uid().as_bytes(), *alice.uid().as_bytes());
    let sender_cert = alice.cert();
    db.write(move |tx| -> Result<_, DbError> {
        let entry = rhizo_store::mailbox::NewMailboxEntry {
            recipient_uid,
            sender_uid,
            digest: rhizo_core::envelope::envelope_digest(&envelope),
            envelope: &envelope,
            // Gone half an hour in.
            expires_at: T0 + 30 * 60 * 1000,
            sender_cert: &sender_cert,
        };
        Ok(tx.mailbox_store(&entry, &MailboxQuota::default(), T0)?)
    })
    .await
    .unwrap();
    let held = |db: &Db| {
        let db = db.clone();
        async move {
            db.read(|r| -> Result<_, DbError> { Ok(r.mailbox_summary()?.count) })
                .await
                .unwrap()
        }
    };
    assert_eq!(held(&db).await, 1);
    let (client, _events, _event_loop) = rhizo_net::start(rhizo_net::NetConfig::new(
        rhizo_net::Keypair::generate_ed25519(),
    ))
    .unwrap();
    let mailbox = Mailbox::new(
        db.clone(),
        client,
        libp2p::PeerId::random(),
        MailboxSettings {
            ttl_secs: 3600,
            poll: Duration::from_secs(60),
            replicate: Duration::from_secs(3600),
            quota: MailboxQuota::default(),
        },
        Arc::new(PausedClock::starting_at(T0)),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(mailbox.run_replication(stopped));
    // Bounded: at most a simulated day, in steps of a simulated hour.
    let mut purged = false;
    for _ in 0..24 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        if held(&db).await == 0 {
            purged = true;
            break;
        }
    }
    assert!(purged, "the hourly pass purged the expired entry");
    stop.send(true).unwrap();
    task.await.unwrap();
}
