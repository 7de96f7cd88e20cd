//! Tests of the parent module (kept apart so the module file holds only its logic).

use rhizo_core::{
    RootKey,
    envelope::{MessageType, NONCE_LEN, ReceiptEntry, ReceiptStatus, SessionId},
    records::DeviceList,
};

use super::*;

/// The test's clock: 2026-11-22, unix ms.
const T0: i64 = 1_795_300_000_000;
const REPLICA: &[u8] = b"replica";

struct User {
    root: RootKey,
    device: DeviceKey,
}

impl User {
    /// The test user (seeds 1..=9) whose device is `device`.
    fn by_device(device: &rhizo_core::DevicePublicKey) -> Option<Self> {
        (1..=9)
            .map(Self::new)
            .find(|u| u.device.public() == *device)
    }

    fn new(seed: u8) -> Self {
        Self {
            root: RootKey::from_bytes(&[seed; 32]),
            device: DeviceKey::from_bytes(&[seed + 100; 32]),
        }
    }

    fn uid(&self) -> Uid {
        self.root.public().uid()
    }

    fn cert(&self) -> Bytes {
        self.root
            .certify_device(&self.device.public(), 1)
            .encode()
            .into()
    }

    fn device_list(&self, version: u64, now_ms: i64) -> Bytes {
        let cert = self.root.certify_device(&self.device.public(), 1);
        DeviceList::new(
            &self.root,
            version,
            vec![cert],
            (now_ms / 1000) as u64,
            3 * 86_400,
        )
        .unwrap()
        .encode()
        .into()
    }

    /// A signed envelope from `self` to `to`.
    fn envelope(&self, to: &Self, seq: u64, at_ms: i64) -> Vec<u8> {
        let mut m = SecureMessage {
            msg_type: MessageType::Application,
            sender_id: self.uid(),
            sender_device: self.device.public(),
            recipient_id: to.uid(),
            session_id: SessionId::from_bytes([1; 16]),
            sequence_num: seq,
            timestamp: at_ms as u64,
            nonce: [seq as u8; NONCE_LEN],
            payload: vec![0xAB; 100].into(),
            signature: [0; 64],
        };
        m.sign(&self.device).unwrap();
        m.encode()
    }
}

struct Replica {
    store: Store,
    context: ReplicaContext,
    nonces: Mutex<NonceBook>,
}

impl Replica {
    fn new(quota: MailboxQuota) -> Self {
        Self {
            store: Store::open_in_memory().unwrap(),
            context: ReplicaContext {
                local_peer: REPLICA.to_vec(),
                quota,
            },
            nonces: Mutex::new(NonceBook::new(16)),
        }
    }

    fn call(&mut self, now: i64, request: &MailboxRequest) -> MailboxResponse {
        handle_request(
            &mut self.store,
            &self.context,
            &self.nonces,
            now,
            [(now % 251) as u8; 32],
            &request.encode(),
        )
    }

    fn store(&mut self, now: i64, to: &User, envelope: Vec<u8>, ttl: u32) -> MailboxResponse {
        self.call(
            now,
            &MailboxRequest::Store {
                recipient: to.uid(),
                sender_cert: SecureMessage::decode(&envelope)
                    .ok()
                    .and_then(|m| User::by_device(&m.sender_device))
                    .map(|u| u.cert())
                    .unwrap_or_default(),
                envelope: envelope.into(),
                ttl_secs: ttl,
            },
        )
    }

    fn challenge(&mut self, now: i64, who: &User) -> [u8; 32] {
        match self.call(
            now,
            &MailboxRequest::Challenge {
                recipient: who.uid(),
            },
        ) {
            MailboxResponse::Challenge { nonce, .. } => nonce,
            other => panic!("no challenge: {other:?}"),
        }
    }

    fn fetch_request(&mut self, now: i64, who: &User, signer: &DeviceKey) -> MailboxRequest {
        let nonce = self.challenge(now, who);
        MailboxRequest::Fetch(FetchRequest::new(
            signer,
            REPLICA,
            who.uid(),
            nonce,
            who.device_list(1, now),
            64,
        ))
    }

    fn fetched(&mut self, now: i64, who: &User) -> usize {
        let request = self.fetch_request(now, who, &who.device);
        match self.call(now, &request) {
            MailboxResponse::Fetched { entries, .. } => entries.len(),
            other => panic!("fetch refused: {other:?}"),
        }
    }
}

fn code(response: &MailboxResponse) -> Option<ErrorCode> {
    match response {
        MailboxResponse::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn entries_expire_at_their_ttl_under_a_controlled_clock() {
    let (alice, bob) = (User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    let stored = replica.store(T0, &bob, alice.envelope(&bob, 1, T0), 3600);
    assert!(
        matches!(stored, MailboxResponse::Stored { expires_at_ms, duplicate: false }
        if expires_at_ms == (T0 + 3_600_000) as u64)
    );
    // The sender's retransmission is a duplicate, stored once.
    assert!(matches!(
        replica.store(T0 + 1, &bob, alice.envelope(&bob, 1, T0), 3600),
        MailboxResponse::Stored {
            duplicate: true,
            ..
        }
    ));
    assert_eq!(replica.fetched(T0 + 3_599_000, &bob), 1);
    assert_eq!(
        replica.fetched(T0 + 3_600_000, &bob),
        0,
        "expired entries are not handed out"
    );
    assert_eq!(
        replica.store.mailbox_purge_expired(T0 + 3_600_000).unwrap(),
        1
    );
    assert_eq!(replica.store.mailbox_summary().unwrap().count, 0);
    // No TTL asked for: the default, 7 days; more than 7 days asked for: capped.
    let r = replica.store(T0, &bob, alice.envelope(&bob, 2, T0), 0);
    assert!(matches!(r, MailboxResponse::Stored { expires_at_ms, .. }
        if expires_at_ms == (T0 + 7 * 86_400_000) as u64));
    let r = replica.store(T0, &bob, alice.envelope(&bob, 3, T0), u32::MAX);
    assert!(matches!(r, MailboxResponse::Stored { expires_at_ms, .. }
        if expires_at_ms == (T0 + 7 * 86_400_000) as u64));
}

#[test]
fn a_replayed_fetch_is_refused() {
    let (alice, bob) = (User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    replica.store(T0, &bob, alice.envelope(&bob, 1, T0), 0);
    let request = replica.fetch_request(T0, &bob, &bob.device);
    assert!(
        matches!(replica.call(T0, &request), MailboxResponse::Fetched { ref entries, .. } if entries.len() == 1)
    );
    // The captured request again: refused, nothing handed out.
    assert_eq!(
        code(&replica.call(T0 + 1, &request)),
        Some(ErrorCode::ReplayDetected)
    );
    // A nonce used after its 60 s: refused.
    let late = replica.fetch_request(T0, &bob, &bob.device);
    assert_eq!(
        code(&replica.call(T0 + 61_000, &late)),
        Some(ErrorCode::SessionExpired)
    );
}

#[test]
fn a_fetch_by_a_key_not_in_the_device_list_is_refused() {
    let (alice, bob) = (User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    replica.store(T0, &bob, alice.envelope(&bob, 1, T0), 0);
    // Alice's device, with bob's (valid) device list.
    let request = replica.fetch_request(T0, &bob, &alice.device);
    assert_eq!(
        code(&replica.call(T0, &request)),
        Some(ErrorCode::UnknownSender)
    );
    // An older device list than one the replica has seen is refused too.
    let nonce = replica.challenge(T0, &bob);
    let newer = MailboxRequest::Fetch(FetchRequest::new(
        &bob.device,
        REPLICA,
        bob.uid(),
        nonce,
        bob.device_list(5, T0),
        64,
    ));
    assert!(matches!(
        replica.call(T0, &newer),
        MailboxResponse::Fetched { .. }
    ));
    let stale = replica.fetch_request(T0, &bob, &bob.device);
    assert_eq!(
        code(&replica.call(T0, &stale)),
        Some(ErrorCode::UnknownSender)
    );
}

#[test]
fn delete_on_receipt_needs_the_recipient_and_blocks_late_copies() {
    let (alice, bob) = (User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    let envelope = alice.envelope(&bob, 1, T0);
    replica.store(T0, &bob, envelope.clone(), 0);
    let message = SecureMessage::decode(&envelope).unwrap();
    let receipt = |signer: &DeviceKey| {
        let mut r = DeliveryReceipt {
            recipient_device: signer.public(),
            timestamp: T0 as u64,
            entries: vec![ReceiptEntry::for_envelope(
                &message,
                ReceiptStatus::Delivered,
            )],
            signature: [0; 64],
        };
        r.sign(signer).unwrap();
        r
    };
    // Alice cannot delete bob's mail.
    let by_alice = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
        bob.uid(),
        bob.device_list(1, T0),
        &receipt(&alice.device),
    ));
    assert_eq!(
        code(&replica.call(T0, &by_alice)),
        Some(ErrorCode::UnknownSender)
    );
    let by_bob = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
        bob.uid(),
        bob.device_list(1, T0),
        &receipt(&bob.device),
    ));
    assert_eq!(
        replica.call(T0, &by_bob),
        MailboxResponse::Deleted { count: 1 }
    );
    assert_eq!(replica.fetched(T0, &bob), 0);
    // A late copy (re-replication, a retry) is refused as already delivered.
    assert_eq!(
        code(&replica.store(T0, &bob, envelope, 0)),
        Some(ErrorCode::ReplayDetected)
    );
}

#[test]
fn a_full_quota_is_an_error_and_loses_nothing() {
    let (alice, bob) = (User::new(1), User::new(2));
    let quota = MailboxQuota {
        max_count_per_sender: 2,
        ..MailboxQuota::default()
    };
    let mut replica = Replica::new(quota);
    for seq in 1..=2 {
        assert!(matches!(
            replica.store(T0, &bob, alice.envelope(&bob, seq, T0), 0),
            MailboxResponse::Stored { .. }
        ));
    }
    assert_eq!(
        code(&replica.store(T0, &bob, alice.envelope(&bob, 3, T0), 0)),
        Some(ErrorCode::QuotaExceeded)
    );
    // A forged envelope is refused on its signature before any quota is counted.
    let mut forged = alice.envelope(&bob, 4, T0);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        code(&replica.store(T0, &bob, forged.clone(), 0)),
        Some(ErrorCode::InvalidSignature)
    );
    // Nothing already stored was lost.
    assert_eq!(replica.fetched(T0, &bob), 2);
    // With room, a forged envelope is refused on its signature.
    let mut roomy = Replica::new(MailboxQuota::default());
    assert_eq!(
        code(&roomy.store(T0, &bob, forged, 0)),
        Some(ErrorCode::InvalidSignature)
    );
}

#[test]
fn bad_store_requests_get_clear_errors() {
    let (alice, bob, carol) = (User::new(1), User::new(2), User::new(3));
    let mut replica = Replica::new(MailboxQuota::default());
    // For another recipient than the mailbox named.
    assert_eq!(
        code(&replica.store(T0, &carol, alice.envelope(&bob, 1, T0), 0)),
        Some(ErrorCode::Malformed)
    );
    // Not an envelope.
    assert_eq!(
        code(&replica.store(T0, &bob, b"junk".to_vec(), 0)),
        Some(ErrorCode::Malformed)
    );
    // Too old to be accepted by the recipient anyway.
    let old = alice.envelope(&bob, 1, T0 - 15 * 86_400_000);
    assert_eq!(
        code(&replica.store(T0, &bob, old, 0)),
        Some(ErrorCode::SessionExpired)
    );
    // Garbage bytes as a request.
    let r = handle_request(
        &mut replica.store,
        &replica.context,
        &replica.nonces,
        T0,
        [0; 32],
        &[0xFF; 40],
    );
    assert!(code(&r).is_some());
    assert_eq!(replica.store.mailbox_summary().unwrap().count, 0);
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

/// Waits (bounded) until only the test holds `store`, then closes it.
async fn close(store: Arc<Mutex<Store>>) {
    let store = tokio::time::timeout(Duration::from_secs(10), async move {
        let mut store = store;
        loop {
            match Arc::try_unwrap(store) {
                Ok(store) => return store,
                Err(shared) => store = shared,
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the writer let go of the store");
    drop(store.into_inner().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_share_commits_and_are_all_durable() {
    const N: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
    let writer = ReplicaWriter::spawn(store.clone(), MailboxQuota::default(), N);
    let stores = checked_stores(N as u64);
    // All N outstanding at once: queued while the store is busy (here: locked by the test,
    // as a commit in progress would hold it).
    let answers: Vec<_> = {
        let _busy = store.lock().unwrap();
        stores
            .iter()
            .map(|c| writer.submit(c.clone()).unwrap())
            .collect()
    };
    for answer in answers {
        assert!(
            matches!(
                answer.await.unwrap(),
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
    // At most: what the writer took before it found the store busy, then full groups.
    assert!(
        stats.commits <= 1 + N.div_ceil(STORE_GROUP) as u64,
        "{stats:?}"
    );

    // Acknowledged means durable: all of them are there after a reopen.
    drop(writer);
    close(store).await;
    let reopened = Store::open(&path).unwrap();
    let held = reopened
        .mailbox_entries(User::new(2).uid().as_bytes(), now_ms(), 1000)
        .unwrap();
    assert_eq!(held.len(), N);
    let mut digests: Vec<[u8; 32]> = held.iter().map(|e| e.digest).collect();
    digests.sort_unstable();
    let mut expected: Vec<[u8; 32]> = stores.iter().map(|c| c.digest).collect();
    expected.sort_unstable();
    assert_eq!(digests, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_writer_queue_is_rate_limited_not_queued() {
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let writer = ReplicaWriter::spawn(store.clone(), MailboxQuota::default(), 2);
    let stores = checked_stores(2 + STORE_GROUP as u64 + 2);
    let mut accepted = Vec::new();
    let mut refused = 0;
    {
        let _busy = store.lock().unwrap();
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
    // The writer holds at most one group while the store is busy; the queue 2 more.
    assert!(refused >= 1, "the queue is bounded");
    assert_eq!(writer.stats().refused_busy, refused);
    for answer in accepted {
        assert!(matches!(
            answer.await.unwrap(),
            MailboxResponse::Stored { .. }
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_replica_checks_then_group_commits_concurrent_requests() {
    const N: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
    let replica = MailboxReplica::new(
        store.clone(),
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
    close(store).await;
    let held = Store::open(&path)
        .unwrap()
        .mailbox_entries(bob.uid().as_bytes(), now_ms(), 1000)
        .unwrap();
    assert_eq!(held.len() as u64, N);
}

/// A fetch page: (envelopes, more, next_cursor).
fn page(response: MailboxResponse) -> (Vec<Bytes>, bool, u64) {
    match response {
        MailboxResponse::Fetched {
            entries,
            more,
            next_cursor,
        } => (
            entries.into_iter().map(|e| e.envelope).collect(),
            more,
            next_cursor,
        ),
        other => panic!("fetch refused: {other:?}"),
    }
}

#[test]
fn junk_left_on_the_replica_does_not_hide_a_later_message() {
    // 70 envelopes from a throwaway key that the recipient leaves on the replica (more
    // than a page), then a real one: the recipient pages past the junk with the cursor.
    let (mallory, alice, bob) = (User::new(3), User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    for seq in 1..=70 {
        let r = replica.store(T0, &bob, mallory.envelope(&bob, seq, T0), 0);
        assert!(matches!(r, MailboxResponse::Stored { .. }), "{r:?}");
    }
    let real = alice.envelope(&bob, 1, T0);
    replica.store(T0, &bob, real.clone(), 0);
    let mut pager = rhizo_core::mailbox::FetchPager::new();
    let mut seen_real = false;
    while let Some(cursor) = pager.next() {
        let nonce = replica.challenge(T0, &bob);
        let request = MailboxRequest::Fetch(
            FetchRequest::new(
                &bob.device,
                REPLICA,
                bob.uid(),
                nonce,
                bob.device_list(1, T0),
                64,
            )
            .with_cursor(cursor),
        );
        let (entries, more, next_cursor) = page(replica.call(T0, &request));
        // The recipient handles only alice's (a contact); nothing is deleted here.
        let handled = entries.iter().filter(|e| e[..] == real[..]).count();
        seen_real |= handled > 0;
        pager.page(entries.len(), handled, more, next_cursor);
    }
    assert!(
        seen_real,
        "the real message behind 70 junk envelopes was fetched"
    );
    // Without a cursor (the old request), the first page is all junk.
    let request = replica.fetch_request(T0, &bob, &bob.device);
    let (entries, more, _) = page(replica.call(T0, &request));
    assert!(more && entries.iter().all(|e| e[..] != real[..]));
}

#[test]
fn nobody_can_use_up_a_senders_quota_in_her_name() {
    let (alice, bob, mallory) = (User::new(1), User::new(2), User::new(3));
    let quota = MailboxQuota {
        max_count_per_sender: 2,
        ..MailboxQuota::default()
    };
    let mut replica = Replica::new(quota);
    // Mallory signs envelopes that claim alice as sender_id with her own device (a valid
    // envelope signature by its sender_device), with her own or alice's certificate.
    let in_alices_name = |seq: u64, cert: Bytes| {
        let mut m = SecureMessage::decode(&mallory.envelope(&bob, seq, T0)).unwrap();
        m.sender_id = alice.uid();
        m.sign(&mallory.device).unwrap();
        MailboxRequest::Store {
            recipient: bob.uid(),
            envelope: m.encode().into(),
            ttl_secs: 0,
            sender_cert: cert,
        }
    };
    for seq in 1..=3 {
        for cert in [mallory.cert(), alice.cert()] {
            assert_eq!(
                code(&replica.call(T0, &in_alices_name(seq, cert))),
                Some(ErrorCode::UnknownSender)
            );
        }
    }
    // No certificate at all: refused.
    let bare = MailboxRequest::Store {
        recipient: bob.uid(),
        envelope: alice.envelope(&bob, 9, T0).into(),
        ttl_secs: 0,
        sender_cert: Bytes::new(),
    };
    assert_eq!(code(&replica.call(T0, &bare)), Some(ErrorCode::Malformed));
    // Alice's quota is untouched: her two stores go through.
    for seq in 1..=2 {
        let r = replica.store(T0, &bob, alice.envelope(&bob, seq, T0), 0);
        assert!(matches!(r, MailboxResponse::Stored { .. }), "{r:?}");
    }
    assert_eq!(replica.store.mailbox_summary().unwrap().count, 2);
    // What is held keeps the certificate, for re-replication.
    let held = replica
        .store
        .mailbox_entries(bob.uid().as_bytes(), T0, 10)
        .unwrap();
    assert_eq!(held[0].sender_cert, alice.cert().to_vec());
}

#[test]
fn a_rejection_deletes_only_a_verified_envelope_the_replica_holds() {
    let (alice, bob) = (User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    let held = alice.envelope(&bob, 1, T0);
    replica.store(T0, &bob, held.clone(), 0);
    let later = alice.envelope(&bob, 2, T0);
    let rejecting = |envelopes: &[&Vec<u8>]| {
        let mut r = DeliveryReceipt {
            recipient_device: bob.device.public(),
            timestamp: T0 as u64,
            entries: envelopes
                .iter()
                .map(|e| {
                    ReceiptEntry::for_envelope(
                        &SecureMessage::decode(e).unwrap(),
                        ReceiptStatus::Rejected(ErrorCode::DecryptionFailed),
                    )
                })
                .collect(),
            signature: [0; 64],
        };
        r.sign(&bob.device).unwrap();
        MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
            bob.uid(),
            bob.device_list(1, T0),
            &r,
        ))
    };
    // One held (deleted), one this replica never had (ignored: no tombstone).
    assert_eq!(
        replica.call(T0, &rejecting(&[&held, &later])),
        MailboxResponse::Deleted { count: 1 }
    );
    assert_eq!(replica.fetched(T0, &bob), 0);
    // The one it never held can still be stored (the old replica tombstoned any digest a
    // rejection named, and refused it as REPLAY_DETECTED for a week).
    assert!(matches!(
        replica.store(T0, &bob, later, 0),
        MailboxResponse::Stored { .. }
    ));
    // The deleted one stays deleted.
    assert_eq!(
        code(&replica.store(T0, &bob, held, 0)),
        Some(ErrorCode::ReplayDetected)
    );
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
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let context = ReplicaContext {
        local_peer: REPLICA.to_vec(),
        quota: MailboxQuota::default(),
    };
    let bobs_key = mailbox_key(&bob.uid());
    let neighbourhood: Neighbourhood = Arc::new(move |key| {
        Box::pin(async move { responsible(if key == bobs_key { 20 } else { 3 }) })
    });
    let replica = MailboxReplica::with_neighbourhood(store, context, Some(neighbourhood));
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

// Holding the store's lock across the awaits is the point: it stands for a long commit.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_and_delete_checks_run_without_the_store_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::open(&dir.path().join("r.db")).unwrap()));
    let replica = MailboxReplica::new(
        store.clone(),
        ReplicaContext {
            local_peer: REPLICA.to_vec(),
            quota: MailboxQuota::default(),
        },
    );
    let (alice, bob) = (User::new(1), User::new(2));
    // The reader connection is opened before the lock is taken (as on a running node).
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
    // The writer's lock held (a long commit, or a flood): challenges, badly signed fetches
    // and deletes are still answered (the old replica took the lock before checking).
    let _busy = store.lock().unwrap();
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
