//! Tests of the replica's rules, with real SQLite and a controlled clock.

use rhizo_core::{
    DeviceKey,
    envelope::{DeliveryReceipt, ReceiptEntry, ReceiptStatus},
    mailbox::{FetchRequest, MailboxRequest},
};
use rhizo_store::Store;

use super::test_support::TestUser as User;
use super::*;

/// The test's clock: 2026-11-22, unix ms.
const T0: i64 = 1_795_300_000_000;
const REPLICA: &[u8] = b"replica";

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
        let (context, nonces) = (&self.context, &self.nonces);
        self.store
            .write(|tx| {
                Ok::<_, StoreError>(handle_request(
                    tx,
                    context,
                    nonces,
                    now,
                    [(now % 251) as u8; 32],
                    &request.encode(),
                ))
            })
            .unwrap()
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
        replica
            .store
            .write(|tx| tx.mailbox_purge_expired(T0 + 3_600_000))
            .unwrap(),
        1
    );
    assert_eq!(replica.store.read().mailbox_summary().unwrap().count, 0);
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
    // A Welcome (or receipt) for another recipient than the mailbox named.
    let welcome = alice.envelope_to(bob.uid(), MessageType::Welcome, 1, T0);
    assert_eq!(
        code(&replica.store(T0, &carol, welcome, 0)),
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
    let (context, nonces) = (&replica.context, &replica.nonces);
    let r = replica
        .store
        .write(|tx| {
            Ok::<_, StoreError>(handle_request(
                tx,
                context,
                nonces,
                T0,
                [0; 32],
                &[0xFF; 40],
            ))
        })
        .unwrap();
    assert!(code(&r).is_some());
    assert_eq!(replica.store.read().mailbox_summary().unwrap().count, 0);
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
    assert_eq!(replica.store.read().mailbox_summary().unwrap().count, 2);
    // What is held keeps the certificate, for re-replication.
    let held = replica
        .store
        .read()
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
fn a_group_message_may_be_stored_in_any_members_mailbox() {
    let (alice, bob) = (User::new(1), User::new(2));
    let mut replica = Replica::new(MailboxQuota::default());
    // Addressed to the group, stored for bob (whose devices did not answer).
    let address = rhizo_core::group::GroupAddress::from_group_id(&[7; 32]);
    let group = rhizo_core::Uid::from_bytes(address.as_bytes());
    for (seq, msg_type) in [(1, MessageType::Application), (2, MessageType::Commit)] {
        let envelope = alice.envelope_to(group, msg_type, seq, T0);
        assert_eq!(code(&replica.store(T0, &bob, envelope, 0)), None);
    }
    assert_eq!(replica.store.read().mailbox_summary().unwrap().count, 2);
}

// Delete-on-receipt with several devices, and revoked or forged devices.

impl Replica {
    /// A fetch by `signer` under the device list `list`.
    fn fetch_as(
        &mut self,
        now: i64,
        who: &User,
        signer: &DeviceKey,
        list: &Bytes,
    ) -> MailboxResponse {
        let nonce = self.challenge(now, who);
        let request = MailboxRequest::Fetch(FetchRequest::new(
            signer,
            REPLICA,
            who.uid(),
            nonce,
            list.clone(),
            64,
        ));
        self.call(now, &request)
    }

    /// A delete receipt by `signer`, under `list`, for `envelope`.
    fn ack_as(
        &mut self,
        now: i64,
        who: &User,
        signer: &DeviceKey,
        list: &Bytes,
        envelope: &[u8],
    ) -> MailboxResponse {
        let message = SecureMessage::decode(envelope).unwrap();
        let mut receipt = DeliveryReceipt {
            recipient_device: signer.public(),
            timestamp: now as u64,
            entries: vec![ReceiptEntry::for_envelope(
                &message,
                ReceiptStatus::Delivered,
            )],
            signature: [0; 64],
        };
        receipt.sign(signer).unwrap();
        let request = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
            who.uid(),
            list.clone(),
            &receipt,
        ));
        self.call(now, &request)
    }
}

fn count(response: MailboxResponse) -> usize {
    page(response).0.len()
}

#[test]
fn a1_acknowledges_and_a2_offline_later_still_gets_it_exactly_once() {
    let (alice, bob) = (User::new(1), User::new(2));
    let (a1, a2) = (&alice.device, &alice.linked(1));
    let list = alice.device_list_of(1, &[a1, a2], T0);
    let mut replica = Replica::new(MailboxQuota::default());
    // a1 polls: the replica learns alice's devices, so what is stored next is addressed to both.
    assert_eq!(count(replica.fetch_as(T0, &alice, a1, &list)), 0);
    let envelope = bob.envelope(&alice, 1, T0);
    replica.store(T0 + 1, &alice, envelope.clone(), 0);
    assert_eq!(count(replica.fetch_as(T0 + 2, &alice, a1, &list)), 1);
    assert_eq!(
        replica.ack_as(T0 + 3, &alice, a1, &list, &envelope),
        MailboxResponse::Deleted { count: 1 }
    );
    // Not handed to a1 again, and not deleted: a2 has not had it.
    assert_eq!(count(replica.fetch_as(T0 + 4, &alice, a1, &list)), 0);
    // Bob's retransmission is a duplicate, not a second copy.
    assert!(matches!(
        replica.store(T0 + 5, &alice, envelope.clone(), 0),
        MailboxResponse::Stored {
            duplicate: true,
            ..
        }
    ));
    // a2 comes online an hour later: it gets it, once.
    let later = T0 + 3_600_000;
    assert_eq!(count(replica.fetch_as(later, &alice, a2, &list)), 1);
    assert_eq!(
        replica.ack_as(later + 1, &alice, a2, &list, &envelope),
        MailboxResponse::Deleted { count: 1 }
    );
    assert_eq!(count(replica.fetch_as(later + 2, &alice, a2, &list)), 0);
    assert_eq!(count(replica.fetch_as(later + 3, &alice, a1, &list)), 0);
    // Every device had it: deleted and tombstoned.
    assert_eq!(
        code(&replica.store(later + 4, &alice, envelope, 0)),
        Some(ErrorCode::ReplayDetected)
    );
}

#[test]
fn a3_listed_after_the_store_never_blocks_the_deletion() {
    let (alice, bob) = (User::new(1), User::new(2));
    let (a1, a3) = (&alice.device, &alice.linked(3));
    let v1 = alice.device_list_of(1, &[a1], T0);
    let v2 = alice.device_list_of(2, &[a1, a3], T0);
    let mut replica = Replica::new(MailboxQuota::default());
    assert_eq!(count(replica.fetch_as(T0, &alice, a1, &v1)), 0);
    let envelope = bob.envelope(&alice, 1, T0);
    replica.store(T0 + 1, &alice, envelope.clone(), 0);
    // a3 is linked: it may fetch what is held…
    assert_eq!(count(replica.fetch_as(T0 + 2, &alice, a3, &v2)), 1);
    // …but the entry was addressed to a1 alone: a1's receipt deletes it.
    assert_eq!(
        replica.ack_as(T0 + 3, &alice, a1, &v2, &envelope),
        MailboxResponse::Deleted { count: 1 }
    );
    assert_eq!(count(replica.fetch_as(T0 + 4, &alice, a3, &v2)), 0);
    // What is stored now is addressed to a1 and a3, and waits for a3.
    let second = bob.envelope(&alice, 2, T0);
    replica.store(T0 + 5, &alice, second.clone(), 0);
    replica.ack_as(T0 + 6, &alice, a1, &v2, &second);
    assert_eq!(count(replica.fetch_as(T0 + 7, &alice, a3, &v2)), 1);
}

#[test]
fn a_revoked_device_is_refused_even_with_an_older_list_that_names_it() {
    let (alice, bob) = (User::new(1), User::new(2));
    let (a1, a2) = (&alice.device, &alice.linked(1));
    let v1 = alice.device_list_of(1, &[a1, a2], T0);
    let v2 = alice.device_list_of(2, &[a1], T0);
    let mut replica = Replica::new(MailboxQuota::default());
    assert_eq!(count(replica.fetch_as(T0, &alice, a2, &v1)), 0);
    let envelope = bob.envelope(&alice, 1, T0);
    replica.store(T0 + 1, &alice, envelope.clone(), 0);
    // a1 revokes a2 and polls with the new list: the replica keeps the newest version.
    assert_eq!(count(replica.fetch_as(T0 + 2, &alice, a1, &v2)), 1);
    // a2, still running, with the old list that names it: refused as stale.
    let stale = replica.fetch_as(T0 + 3, &alice, a2, &v1);
    assert_eq!(code(&stale), Some(ErrorCode::UnknownSender));
    assert!(
        format!("{stale:?}").contains("stale device list"),
        "{stale:?}"
    );
    // With the newest list: it is not in it.
    let unlisted = replica.fetch_as(T0 + 4, &alice, a2, &v2);
    assert!(format!("{unlisted:?}").contains("not in the UID's device list"));
    // Its receipts are refused the same way.
    assert_eq!(
        code(&replica.ack_as(T0 + 5, &alice, a2, &v1, &envelope)),
        Some(ErrorCode::UnknownSender)
    );
    // The entry was addressed to a1 and a2; a2 is revoked, so a1's receipt is the last needed.
    assert_eq!(
        replica.ack_as(T0 + 6, &alice, a1, &v2, &envelope),
        MailboxResponse::Deleted { count: 1 }
    );
    assert_eq!(
        code(&replica.store(T0 + 7, &alice, envelope, 0)),
        Some(ErrorCode::ReplayDetected)
    );
}

#[test]
fn a_device_certified_by_another_root_is_refused() {
    let (alice, bob, mallory) = (User::new(1), User::new(2), User::new(3));
    let intruder = mallory.linked(1);
    let mut replica = Replica::new(MailboxQuota::default());
    replica.store(T0, &alice, bob.envelope(&alice, 1, T0), 0);
    // Mallory's own list (her root, her UID) for alice's mailbox: another UID.
    let hers = mallory.device_list_of(1, &[&intruder], T0);
    let refused = replica.fetch_as(T0 + 1, &alice, &intruder, &hers);
    assert_eq!(code(&refused), Some(ErrorCode::UnknownSender));
    assert!(
        format!("{refused:?}").contains("another UID"),
        "{refused:?}"
    );
    // A list signed by alice's root naming a device mallory's root certified: invalid.
    let forged = alice.forged_device_list(&mallory, &intruder, T0);
    let refused = replica.fetch_as(T0 + 2, &alice, &intruder, &forged);
    assert_eq!(code(&refused), Some(ErrorCode::UnknownSender));
    assert!(
        format!("{refused:?}").contains("invalid device list"),
        "{refused:?}"
    );
    // Nothing was handed out, and the entry is still there for alice.
    assert_eq!(replica.fetched(T0 + 3, &alice), 1);
}

#[test]
fn a_revoke_noted_between_the_check_and_the_write_wins() {
    let (alice, bob) = (User::new(1), User::new(2));
    let (a1, a2) = (&alice.device, &alice.linked(1));
    let v1 = alice.device_list_of(1, &[a1, a2], T0);
    let v2 = alice.device_list_of(2, &[a1], T0);
    let mut replica = Replica::new(MailboxQuota::default());
    replica.store(T0, &alice, bob.envelope(&alice, 1, T0), 0);
    // a2's fetch passes the check (the node runs it on a reader, before the write)…
    let nonce = replica.challenge(T0, &alice);
    let request = MailboxRequest::Fetch(FetchRequest::new(a2, REPLICA, alice.uid(), nonce, v1, 64));
    let checked = authorize(&replica.context, &replica.nonces, |_| Ok(1), T0, request).unwrap();
    // …then a1's fetch with the list that revokes a2 is served first…
    assert_eq!(count(replica.fetch_as(T0 + 1, &alice, a1, &v2)), 1);
    // …so a2's is refused when its write comes.
    let answer = replica
        .store
        .write(|tx| Ok::<_, StoreError>(serve(tx, T0 + 2, checked)))
        .unwrap();
    assert_eq!(code(&answer), Some(ErrorCode::UnknownSender));
    assert!(
        format!("{answer:?}").contains("stale device list"),
        "{answer:?}"
    );
}
