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
        },
        MailboxRequest::Challenge {
            recipient: uid(&alice),
        },
        MailboxRequest::Fetch(fetch(&alice, [7; 32])),
        MailboxRequest::Delete(DeleteRequest::new(
            uid(&alice),
            alice.list.clone(),
            &receipt,
        )),
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
        },
        MailboxResponse::Deleted { count: 4 },
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
    // A default-valued field written out: decodes with prost, but is not canonical.
    let mut bytes = MailboxRequest::Challenge {
        recipient: Uid::from_bytes(&[1; 32]),
    }
    .encode();
    bytes.extend_from_slice(&[0x10, 0x00]);
    assert!(MailboxRequest::decode(&bytes).is_err());
    assert!(MailboxRequest::decode(&[]).is_err());
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
    // Certified by alice's root but not in her published list.
    let extra = DeviceKey::from_bytes(&[55; 32]);
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
    let mut r = DeliveryReceipt {
        recipient_device: device.public(),
        timestamp: NOW * 1000,
        entries: vec![ReceiptEntry {
            envelope: EnvelopeId {
                sender_device: DeviceKey::from_bytes(&[42; 32]).public(),
                session_id: SessionId::from_bytes([1; 16]),
                sequence_num: 1,
            },
            envelope_digest: digest,
            status: ReceiptStatus::Delivered,
        }],
        signature: [0; 64],
    };
    r.sign(device).unwrap();
    r
}

#[test]
fn delete_needs_a_receipt_signed_by_a_listed_device() {
    let alice = user(1, 1);
    let ok = DeleteRequest::new(
        uid(&alice),
        alice.list.clone(),
        &signed_receipt(&alice.device, [9; 32]),
    );
    let (a, digests) = ok.verify(NOW, 0).unwrap();
    assert_eq!(a.device, alice.device.public());
    assert_eq!(digests, vec![[9; 32]]);
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
