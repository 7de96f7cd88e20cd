use proptest::prelude::*;

use super::*;
use crate::{
    RootKey,
    envelope::{EnvelopeId, ReceiptEntry, ReceiptStatus, SessionId},
    records::DeviceList,
};

const NOW: u64 = 1_700_000_000;
const REPLICA: &[u8] = b"replica-peer-id";

struct User {
    root: RootKey,
    device: DeviceKey,
    list: Bytes,
}

fn user(seed: u8, version: u64) -> User {
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed.wrapping_add(100); 32]);
    let cert = root.certify_device(&device.public(), 1);
    let list = DeviceList::new(&root, version, vec![cert], NOW, 3600)
        .unwrap()
        .encode()
        .into();
    User { root, device, list }
}

fn uid(u: &User) -> Uid {
    u.root.public().uid()
}

fn fetch(u: &User, nonce: [u8; 32]) -> FetchRequest {
    FetchRequest::new(&u.device, REPLICA, uid(u), nonce, u.list.clone(), 10)
}

#[test]
fn requests_and_responses_round_trip() {
    let alice = user(1, 1);
    let receipt = signed_receipt(&alice.device, [9; 32]);
    let requests = [
        MailboxRequest::Store {
            recipient: uid(&alice),
            envelope: Bytes::from_static(b"sealed"),
            ttl_secs: 3600,
            sender_cert: alice
                .root
                .certify_device(&alice.device.public(), 1)
                .encode()
                .into(),
        },
        MailboxRequest::Challenge {
            recipient: uid(&alice),
        },
        MailboxRequest::Fetch(fetch(&alice, [7; 32])),
        MailboxRequest::Fetch(fetch(&alice, [8; 32]).with_cursor(u64::MAX)),
        MailboxRequest::Delete(DeleteRequest::new(
            uid(&alice),
            alice.list.clone(),
            &receipt,
        )),
        MailboxRequest::Notify {
            recipient: uid(&alice),
        },
    ];
    for r in requests {
        assert_eq!(MailboxRequest::decode(&r.encode()).unwrap(), r);
    }
    let responses = [
        MailboxResponse::Stored {
            expires_at_ms: 5,
            duplicate: true,
        },
        MailboxResponse::Challenge {
            nonce: [3; 32],
            expires_at_ms: 9,
        },
        MailboxResponse::Fetched {
            entries: vec![FetchedEntry {
                envelope: Bytes::from_static(b"x"),
                expires_at_ms: 1,
            }],
            more: true,
            next_cursor: 77,
        },
        MailboxResponse::Deleted { count: 4 },
        MailboxResponse::Notified,
        MailboxResponse::Error {
            code: ErrorCode::QuotaExceeded,
            detail: "full".into(),
        },
    ];
    for r in responses {
        assert_eq!(MailboxResponse::decode(&r.encode()).unwrap(), r);
    }
}

#[test]
fn oversized_and_non_canonical_input_is_refused_before_decoding() {
    let big = vec![0u8; MAX_REQUEST_BYTES + 1];
    assert!(matches!(
        MailboxRequest::decode(&big),
        Err(MailboxError::TooLarge { .. })
    ));
    let big = vec![0u8; MAX_RESPONSE_BYTES + 1];
    assert!(matches!(
        MailboxResponse::decode(&big),
        Err(MailboxError::TooLarge { .. })
    ));
    // A wire-type mismatch: not a valid encoding.
    let mut bytes = MailboxRequest::Challenge {
        recipient: Uid::from_bytes(&[1; 32]),
    }
    .encode();
    bytes.extend_from_slice(&[0x10, 0x00]);
    assert!(MailboxRequest::decode(&bytes).is_err());
    // No operation at all.
    assert_eq!(
        MailboxRequest::decode(&[]),
        Err(MailboxError::Malformed("no operation"))
    );
    // StoreRequest { recipient_uid, ttl_secs: 0 written out }: prost accepts it, but the
    // canonical encoding omits a default value.
    let mut store = vec![0x0a, 2 + 32 + 2, 0x0a, 32];
    store.extend_from_slice(&[1; 32]);
    store.extend_from_slice(&[0x18, 0x00]);
    assert_eq!(
        MailboxRequest::decode(&store),
        Err(MailboxError::NonCanonical)
    );
    // The same without the explicit zero is fine.
    store[1] -= 2;
    store.truncate(store.len() - 2);
    assert!(matches!(
        MailboxRequest::decode(&store),
        Ok(MailboxRequest::Store { ttl_secs: 0, .. })
    ));
    // A uid of the wrong length.
    let short = [0x12, 4, 0x0a, 2, 1, 1];
    assert!(matches!(
        MailboxRequest::decode(&short),
        Err(MailboxError::Malformed(_))
    ));
    // An envelope over MAX_ENVELOPE_BYTES inside a request under MAX_REQUEST_BYTES.
    let big = MailboxRequest::Store {
        recipient: Uid::from_bytes(&[1; 32]),
        envelope: vec![0; MAX_ENVELOPE_BYTES + 1].into(),
        ttl_secs: 0,
        sender_cert: Bytes::new(),
    };
    assert!(matches!(
        MailboxRequest::decode(&big.encode()),
        Err(MailboxError::TooLarge { .. })
    ));
}

#[test]
fn responses_with_out_of_range_fields_are_refused() {
    // An error detail is cut to 256 bytes when encoded…
    let long = MailboxResponse::Error {
        code: ErrorCode::Internal,
        detail: "é".repeat(200),
    };
    match MailboxResponse::decode(&long.encode()) {
        Ok(MailboxResponse::Error { detail, .. }) => {
            assert!(detail.len() <= 256 && detail.starts_with('é'));
        }
        other => panic!("unexpected {other:?}"),
    }
    // …and a longer one on the wire is refused.
    let raw = proto::MailboxResponse {
        result: Some(proto::mailbox_response::Result::Error(
            proto::MailboxError {
                code: 12,
                detail: "x".repeat(257),
            },
        )),
    }
    .encode_to_vec();
    assert!(matches!(
        MailboxResponse::decode(&raw),
        Err(MailboxError::Malformed(_))
    ));
    // An unknown error code.
    let raw = proto::MailboxResponse {
        result: Some(proto::mailbox_response::Result::Error(
            proto::MailboxError {
                code: 999,
                detail: String::new(),
            },
        )),
    }
    .encode_to_vec();
    assert!(MailboxResponse::decode(&raw).is_err());
    // More entries than a fetch may return.
    let too_many = MailboxResponse::Fetched {
        entries: vec![
            FetchedEntry {
                envelope: Bytes::from_static(b"x"),
                expires_at_ms: 1,
            };
            MAX_FETCH_ENTRIES as usize + 1
        ],
        more: false,
        next_cursor: 0,
    };
    assert!(matches!(
        MailboxResponse::decode(&too_many.encode()),
        Err(MailboxError::Malformed(_))
    ));
    // A nonce of the wrong length.
    let raw = proto::MailboxResponse {
        result: Some(proto::mailbox_response::Result::Challenge(
            proto::Challenge {
                nonce: Bytes::from_static(&[1; 31]),
                expires_at_ms: 1,
            },
        )),
    }
    .encode_to_vec();
    assert!(matches!(
        MailboxResponse::decode(&raw),
        Err(MailboxError::Malformed(_))
    ));
}

#[test]
fn every_error_maps_to_a_wire_code() {
    let cases = [
        (
            MailboxError::TooLarge { max: 1, actual: 2 },
            ErrorCode::TooLarge,
        ),
        (MailboxError::Malformed("x"), ErrorCode::Malformed),
        (MailboxError::NonCanonical, ErrorCode::Malformed),
        (MailboxError::UnknownNonce, ErrorCode::ReplayDetected),
        (MailboxError::ExpiredNonce, ErrorCode::SessionExpired),
        (
            MailboxError::DeviceList(RecordError::WrongKey),
            ErrorCode::UnknownSender,
        ),
        (
            MailboxError::StaleDeviceList { seen: 2, got: 1 },
            ErrorCode::UnknownSender,
        ),
        (MailboxError::WrongUid, ErrorCode::UnknownSender),
        (MailboxError::DeviceNotListed, ErrorCode::UnknownSender),
        (MailboxError::InvalidSignature, ErrorCode::InvalidSignature),
        (MailboxError::BadReceipt("x".into()), ErrorCode::Malformed),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code, "{error}");
        assert!(!error.to_string().is_empty());
    }
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = MailboxRequest::decode(&bytes);
        let _ = MailboxResponse::decode(&bytes);
    }
}

#[test]
fn a_listed_device_may_fetch() {
    let alice = user(1, 1);
    let a = fetch(&alice, [7; 32]).verify(REPLICA, NOW, 0).unwrap();
    assert_eq!(a.device, alice.device.public());
    assert_eq!(a.device_list_version, 1);
}

#[test]
fn a_fetch_signed_for_another_replica_is_refused() {
    let alice = user(1, 1);
    assert_eq!(
        fetch(&alice, [7; 32]).verify(b"another-replica", NOW, 0),
        Err(MailboxError::InvalidSignature)
    );
}

#[test]
fn a_device_not_in_the_list_is_refused() {
    let alice = user(1, 1);
    // Validly certified by alice's root, but not in the list she published.
    let extra = DeviceKey::from_bytes(&[55; 32]);
    let extra_cert = alice.root.certify_device(&extra.public(), 1);
    assert!(extra_cert.verify_for(&alice.root.public()).is_ok());
    let mut f = FetchRequest::new(
        &extra,
        REPLICA,
        uid(&alice),
        [7; 32],
        alice.list.clone(),
        10,
    );
    assert_eq!(
        f.verify(REPLICA, NOW, 0),
        Err(MailboxError::DeviceNotListed)
    );
    // Mallory's device with alice's list.
    let mallory = user(2, 1);
    f = FetchRequest::new(
        &mallory.device,
        REPLICA,
        uid(&alice),
        [7; 32],
        alice.list.clone(),
        10,
    );
    assert_eq!(
        f.verify(REPLICA, NOW, 0),
        Err(MailboxError::DeviceNotListed)
    );
    // Mallory's own list for alice's mailbox.
    f = FetchRequest::new(
        &mallory.device,
        REPLICA,
        uid(&alice),
        [7; 32],
        mallory.list.clone(),
        10,
    );
    assert_eq!(f.verify(REPLICA, NOW, 0), Err(MailboxError::WrongUid));
    // A tampered signature.
    let mut f = fetch(&alice, [7; 32]);
    f.signature[0] ^= 1;
    assert_eq!(
        f.verify(REPLICA, NOW, 0),
        Err(MailboxError::InvalidSignature)
    );
}

#[test]
fn a_stale_or_expired_device_list_is_refused() {
    let alice = user(1, 3);
    assert!(matches!(
        fetch(&alice, [7; 32]).verify(REPLICA, NOW, 4),
        Err(MailboxError::StaleDeviceList { seen: 4, got: 3 })
    ));
    assert!(matches!(
        fetch(&alice, [7; 32]).verify(REPLICA, NOW + 7200, 0),
        Err(MailboxError::DeviceList(_))
    ));
}

#[test]
fn a_nonce_works_once_for_its_uid_within_its_time() {
    let (a, b) = (Uid::from_bytes(&[1; 32]), Uid::from_bytes(&[2; 32]));
    let mut book = NonceBook::new(8);
    let (n, expires) = book.issue(a, [5; 32], 1_000);
    assert_eq!(expires, 1_000 + CHALLENGE_TTL_MS);
    assert_eq!(book.take(&a, &n, 2_000), Ok(()));
    // Replayed: refused.
    assert_eq!(book.take(&a, &n, 2_000), Err(MailboxError::UnknownNonce));
    // For another UID: refused, and consumed.
    let (n, _) = book.issue(a, [6; 32], 1_000);
    assert_eq!(book.take(&b, &n, 2_000), Err(MailboxError::UnknownNonce));
    assert_eq!(book.take(&a, &n, 2_000), Err(MailboxError::UnknownNonce));
    // Expired.
    let (n, _) = book.issue(a, [7; 32], 1_000);
    assert_eq!(
        book.take(&a, &n, 1_000 + CHALLENGE_TTL_MS),
        Err(MailboxError::ExpiredNonce)
    );
    // Never issued.
    assert_eq!(book.take(&a, &[9; 32], 0), Err(MailboxError::UnknownNonce));
}

#[test]
fn the_nonce_book_is_bounded() {
    let mut book = NonceBook::new(4);
    let uid = Uid::from_bytes(&[1; 32]);
    for i in 0..100u8 {
        book.issue(uid, [i; 32], 0);
        assert!(book.len() <= 4);
    }
    // The newest survive.
    assert_eq!(book.take(&uid, &[99; 32], 1), Ok(()));
    assert_eq!(
        book.take(&uid, &[0; 32], 1),
        Err(MailboxError::UnknownNonce)
    );
}

fn signed_receipt(device: &DeviceKey, digest: [u8; 32]) -> DeliveryReceipt {
    receipt_with(device, &[(digest, ReceiptStatus::Delivered)])
}

fn receipt_with(device: &DeviceKey, entries: &[([u8; 32], ReceiptStatus)]) -> DeliveryReceipt {
    let mut r = DeliveryReceipt {
        recipient_device: device.public(),
        timestamp: NOW * 1000,
        entries: entries
            .iter()
            .zip(1..)
            .map(|((digest, status), seq)| ReceiptEntry {
                envelope: EnvelopeId {
                    sender_device: DeviceKey::from_bytes(&[42; 32]).public(),
                    session_id: SessionId::from_bytes([1; 16]),
                    sequence_num: seq,
                },
                envelope_digest: *digest,
                status: *status,
            })
            .collect(),
        signature: [0; 64],
    };
    r.sign(device).unwrap();
    r
}

#[test]
fn delete_names_what_the_recipient_is_done_with() {
    let alice = user(1, 1);
    let receipt = receipt_with(
        &alice.device,
        &[
            ([1; 32], ReceiptStatus::Delivered),
            ([2; 32], ReceiptStatus::Read),
            ([3; 32], ReceiptStatus::Rejected(ErrorCode::ReplayDetected)),
            (
                [4; 32],
                ReceiptStatus::Rejected(ErrorCode::DecryptionFailed),
            ),
            // Transient: kept for a later fetch.
            ([5; 32], ReceiptStatus::Rejected(ErrorCode::UnknownSession)),
            ([6; 32], ReceiptStatus::Rejected(ErrorCode::SequenceError)),
        ],
    );
    let request = DeleteRequest::new(uid(&alice), alice.list.clone(), &receipt);
    let (_, targets) = request.verify(NOW, 0).unwrap();
    assert_eq!(
        targets,
        DeleteTargets {
            acknowledged: vec![[1; 32], [2; 32]],
            rejected: vec![[3; 32], [4; 32]],
        }
    );
    // The device list rules of a fetch apply.
    assert!(matches!(
        request.verify(NOW, 2),
        Err(MailboxError::StaleDeviceList { seen: 2, got: 1 })
    ));
    let mallory = user(2, 1);
    let wrong_list = DeleteRequest::new(uid(&alice), mallory.list.clone(), &receipt);
    assert_eq!(
        wrong_list.verify(NOW, 0).map(|_| ()),
        Err(MailboxError::WrongUid)
    );
    // Garbage instead of a receipt.
    let garbage = DeleteRequest {
        recipient: uid(&alice),
        device_list: alice.list.clone(),
        receipt: Bytes::from_static(b"not a receipt"),
    };
    assert!(matches!(
        garbage.verify(NOW, 0),
        Err(MailboxError::BadReceipt(_))
    ));
}

#[test]
fn delete_needs_a_receipt_signed_by_a_listed_device() {
    let alice = user(1, 1);
    let ok = DeleteRequest::new(
        uid(&alice),
        alice.list.clone(),
        &signed_receipt(&alice.device, [9; 32]),
    );
    let (a, targets) = ok.verify(NOW, 0).unwrap();
    assert_eq!(a.device, alice.device.public());
    assert_eq!(targets.acknowledged, vec![[9; 32]]);
    // Mallory's receipt for alice's mailbox.
    let mallory = user(2, 1);
    let bad = DeleteRequest::new(
        uid(&alice),
        alice.list.clone(),
        &signed_receipt(&mallory.device, [9; 32]),
    );
    assert_eq!(
        bad.verify(NOW, 0).map(|_| ()),
        Err(MailboxError::DeviceNotListed)
    );
    // A forged receipt.
    let mut receipt = signed_receipt(&alice.device, [9; 32]);
    receipt.entries[0].envelope_digest = [8; 32];
    let forged = DeleteRequest::new(uid(&alice), alice.list.clone(), &receipt);
    assert_eq!(
        forged.verify(NOW, 0).map(|_| ()),
        Err(MailboxError::InvalidSignature)
    );
}

#[test]
fn the_mailbox_key_is_domain_separated() {
    let u = Uid::from_bytes(&[1; 32]);
    assert_ne!(mailbox_key(&u), crate::records::profile_key(&u));
    assert_ne!(mailbox_key(&u), *u.as_bytes());
}

/// A signed envelope from `from` (its device) to `to`.
fn envelope_from(from: &User, to: &User, seq: u64) -> SecureMessage {
    let mut m = SecureMessage {
        msg_type: crate::envelope::MessageType::Application,
        sender_id: uid(from),
        sender_device: from.device.public(),
        recipient_id: uid(to),
        session_id: SessionId::from_bytes([1; 16]),
        sequence_num: seq,
        timestamp: NOW * 1000,
        nonce: [seq as u8; crate::envelope::NONCE_LEN],
        payload: vec![0xAB; 10].into(),
        signature: [0; 64],
    };
    m.sign(&from.device).unwrap();
    m
}

#[test]
fn a_store_is_bound_to_its_sender_by_the_device_certificate() {
    let (alice, bob, mallory) = (user(1, 1), user(2, 1), user(3, 1));
    let cert = |u: &User| u.root.certify_device(&u.device.public(), 1).encode();
    let from_alice = envelope_from(&alice, &bob, 1);
    assert_eq!(
        verify_store_sender(&from_alice, &cert(&alice))
            .unwrap()
            .device(),
        alice.device.public()
    );
    // No certificate, or garbage.
    assert_eq!(
        verify_store_sender(&from_alice, &[]),
        Err(MailboxError::MissingSenderCertificate)
    );
    assert_eq!(
        verify_store_sender(&from_alice, &[7; DEVICE_CERT_LEN]).map(|_| ()),
        Err(MailboxError::MissingSenderCertificate)
    );
    // Mallory signs an envelope in alice's name (sender_id = alice) with her own device and
    // her own certificate: the certificate's root is not alice's.
    let mut forged = envelope_from(&mallory, &bob, 1);
    forged.sender_id = uid(&alice);
    forged.sign(&mallory.device).unwrap();
    assert_eq!(
        verify_store_sender(&forged, &cert(&mallory)),
        Err(MailboxError::SenderMismatch)
    );
    assert_eq!(
        verify_store_sender(&forged, &cert(&alice)),
        Err(MailboxError::SenderMismatch),
        "alice's certificate names alice's device, not mallory's"
    );
    assert_eq!(
        MailboxError::SenderMismatch.code(),
        ErrorCode::UnknownSender
    );
    // A certificate for alice's device signed by another root.
    let stolen = mallory
        .root
        .certify_device(&alice.device.public(), 1)
        .encode();
    assert_eq!(
        verify_store_sender(&from_alice, &stolen),
        Err(MailboxError::SenderMismatch)
    );
    // A certificate whose signature was tampered with.
    let mut bad = cert(&alice);
    bad[DEVICE_CERT_LEN - 1] ^= 1;
    assert_eq!(
        verify_store_sender(&from_alice, &bad),
        Err(MailboxError::InvalidSenderCertificate)
    );
    // The right certificate, an envelope whose signature does not verify.
    let mut tampered = from_alice.clone();
    tampered.sequence_num += 1;
    assert_eq!(
        verify_store_sender(&tampered, &cert(&alice)),
        Err(MailboxError::InvalidSignature)
    );
    // A certificate longer than 137 bytes is refused by the codec.
    let long = MailboxRequest::Store {
        recipient: uid(&bob),
        envelope: from_alice.encode().into(),
        ttl_secs: 0,
        sender_cert: vec![0; DEVICE_CERT_LEN + 1].into(),
    };
    assert!(matches!(
        MailboxRequest::decode(&long.encode()),
        Err(MailboxError::Malformed(_))
    ));
}

/// Pages a pager through `held` envelopes (each `true` if the recipient handles it) on a model
/// replica: ids 1.., `page` per fetch, handled ones deleted. Returns the ids handled.
fn page_through(held: &[bool], page: usize) -> (Vec<u64>, usize) {
    let mut rows: Vec<(u64, bool)> = held.iter().zip(1..).map(|(h, id)| (id, *h)).collect();
    let mut pager = FetchPager::new();
    let mut handled_ids = Vec::new();
    let mut rounds = 0;
    while let Some(cursor) = pager.next() {
        rounds += 1;
        let after: Vec<(u64, bool)> = rows
            .iter()
            .copied()
            .filter(|(id, _)| *id > cursor)
            .collect();
        let returned: Vec<(u64, bool)> = after.iter().copied().take(page).collect();
        let more = after.len() > returned.len();
        let next_cursor = returned.last().map_or(cursor, |(id, _)| *id);
        let handled: Vec<u64> = returned
            .iter()
            .filter(|(_, h)| *h)
            .map(|(id, _)| *id)
            .collect();
        rows.retain(|(id, _)| !handled.contains(id));
        handled_ids.extend(&handled);
        pager.page(returned.len(), handled.len(), more, next_cursor);
    }
    (handled_ids, rounds)
}

#[test]
fn paging_gets_past_entries_the_recipient_leaves_on_the_replica() {
    // 64 junk envelopes the recipient does not handle, then a real one: the real one is
    // fetched (the old client stopped at the first page that it handled none of).
    let mut held = vec![false; MAX_FETCH_ENTRIES as usize + 10];
    held.push(true);
    let (handled, rounds) = page_through(&held, MAX_FETCH_ENTRIES as usize);
    assert_eq!(handled, vec![held.len() as u64]);
    // Two pages, then (something handled behind something left) a second pass of two.
    assert_eq!(rounds, 4);
    // A full per-recipient mailbox of junk (4096) with real ones at the end: still reached.
    let mut held = vec![false; 4096];
    held.extend([true, true]);
    let (handled, _) = page_through(&held, MAX_FETCH_ENTRIES as usize);
    assert_eq!(handled, vec![4097, 4098]);
    // Everything handled: one page per 64, no second pass.
    let (handled, rounds) = page_through(&[true; 130], 64);
    assert_eq!((handled.len(), rounds), (130, 3));
    // Nothing held: one round.
    assert_eq!(page_through(&[], 64), (vec![], 1));
}

#[test]
fn paging_is_bounded_and_stops_without_progress() {
    // A replica that answers `more` with no cursor progress (one without cursors) and the
    // recipient handles nothing: one round, not MAX_FETCH_ROUNDS.
    let mut pager = FetchPager::new();
    pager.page(64, 0, true, 0);
    assert_eq!(pager.next(), None);
    // Without cursor progress but with deletions: the same cursor again.
    let mut pager = FetchPager::new();
    pager.page(64, 64, true, 0);
    assert_eq!(pager.next(), Some(0));
    // A replica that always says `more` and moves its cursor: bounded.
    let mut pager = FetchPager::new();
    let mut rounds = 0;
    while let Some(cursor) = pager.next() {
        rounds += 1;
        pager.page(1, 0, true, cursor + 1);
    }
    assert_eq!(rounds, MAX_FETCH_ROUNDS);
    // A failure ends it.
    let mut pager = FetchPager::new();
    pager.failed();
    assert_eq!(pager.next(), None);
    // At the end, something handled and something left behind on a later page: one more pass
    // from the start (a Welcome on page 2 unblocks its messages on page 1).
    let mut pager = FetchPager::new();
    pager.page(64, 0, true, 64);
    pager.page(1, 1, false, 65);
    assert_eq!(pager.next(), Some(0));
    pager.page(64, 64, false, 64);
    assert_eq!(pager.next(), None);
}
