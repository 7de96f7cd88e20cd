use super::*;
use crate::RootKey;

fn uid(seed: u8) -> Uid {
    RootKey::from_bytes(&[seed; 32]).public().uid()
}

/// A Welcome of `len` bytes that does not compress to a pattern.
fn welcome(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn parts(len: usize, seed: u8) -> Vec<WelcomePart> {
    split_welcome(&welcome(len, seed)).expect("split")
}

#[test]
fn a_welcome_that_fits_is_not_split() {
    assert!(fits_one_envelope(MAX_PAYLOAD_BYTES));
    assert_eq!(
        split_welcome(&welcome(1000, 1)),
        Err(WelcomePartError::FitsOneEnvelope(1000))
    );
}

#[test]
fn split_encode_decode_reassemble_in_any_order() {
    let whole = welcome(3 * MAX_PART_BYTES + 17, 1);
    let mut pieces = split_welcome(&whole).expect("split");
    assert_eq!(pieces.len(), 4);
    assert!(pieces.iter().all(|p| p.count == 4));
    for p in &pieces {
        let bytes = p.encode();
        assert!(bytes.len() <= MAX_WELCOME_PART_BYTES, "{}", bytes.len());
        assert_eq!(&WelcomePart::decode(&bytes).expect("decode"), p);
    }
    pieces.reverse();
    let mut r = WelcomeReassembler::new();
    let last = pieces.pop().expect("part");
    for (i, p) in pieces.into_iter().enumerate() {
        assert_eq!(
            r.insert(uid(1), p, 10),
            Ok(Reassembly::Pending {
                received: i as u32 + 1,
                count: 4
            })
        );
    }
    assert_eq!(r.insert(uid(1), last, 11), Ok(Reassembly::Complete(whole)));
    assert_eq!((r.pending(), r.pending_bytes(), r.dropped()), (0, 0, 0));
}

#[test]
fn the_largest_welcome_splits_into_the_most_parts() {
    let pieces = parts(MAX_WELCOME_BYTES, 2);
    assert_eq!(pieces.len(), MAX_WELCOME_PARTS);
    assert!(matches!(
        split_welcome(&welcome(MAX_WELCOME_BYTES + 1, 2)),
        Err(WelcomePartError::TooLarge { .. })
    ));
}

#[test]
fn bad_encodings_are_refused() {
    let good = parts(MAX_PAYLOAD_BYTES + 1, 3).remove(0);
    let mut bytes = good.encode();
    bytes.push(0);
    assert!(matches!(
        WelcomePart::decode(&bytes),
        Err(WelcomePartError::Decode(_) | WelcomePartError::NonCanonical)
    ));
    let wire = |id: &[u8], index: u32, count: u32, data: &[u8]| {
        proto::WelcomePart {
            welcome_id: bytes::Bytes::copy_from_slice(id),
            index,
            count,
            data: bytes::Bytes::copy_from_slice(data),
        }
        .encode_to_vec()
    };
    assert_eq!(
        WelcomePart::decode(&wire(&[1; 31], 0, 2, b"x")),
        Err(WelcomePartError::IdLength(31))
    );
    for (index, count) in [(0, 1), (2, 2), (0, MAX_WELCOME_PARTS as u32 + 1)] {
        assert_eq!(
            WelcomePart::decode(&wire(&[1; 32], index, count, b"x")),
            Err(WelcomePartError::BadIndex { index, count })
        );
    }
    assert_eq!(
        WelcomePart::decode(&wire(&[1; 32], 0, 2, b"")),
        Err(WelcomePartError::EmptyData)
    );
    assert!(matches!(
        WelcomePart::decode(&vec![0; MAX_WELCOME_PART_BYTES + 1]),
        Err(WelcomePartError::TooLarge { what: "part", .. })
    ));
    assert!(matches!(
        WelcomePart::decode(&wire(&[1; 32], 0, 2, &vec![7; MAX_PART_BYTES + 1])),
        Err(WelcomePartError::TooLarge {
            what: "part data",
            ..
        })
    ));
    // Non-canonical: fields out of order (count before index).
    let mut swapped = Vec::new();
    swapped.extend_from_slice(&[0x0a, 32]);
    swapped.extend_from_slice(&[1; 32]);
    swapped.extend_from_slice(&[0x18, 2, 0x10, 1, 0x22, 1, b'x']);
    assert_eq!(
        WelcomePart::decode(&swapped),
        Err(WelcomePartError::NonCanonical)
    );
}

#[test]
fn a_missing_part_never_completes_and_expires() {
    let mut pieces = parts(2 * MAX_PART_BYTES + 1, 4);
    pieces.remove(1);
    let mut r = WelcomeReassembler::new();
    for p in pieces {
        assert!(matches!(
            r.insert(uid(1), p, 100),
            Ok(Reassembly::Pending { .. })
        ));
    }
    assert_eq!(r.pending(), 1);
    r.expire(100 + WELCOME_PART_TTL_SECS);
    assert_eq!(r.pending(), 1, "not yet");
    r.expire(101 + WELCOME_PART_TTL_SECS);
    assert_eq!((r.pending(), r.pending_bytes(), r.dropped()), (0, 0, 1));
}

#[test]
fn a_duplicate_part_changes_nothing_and_a_conflicting_one_drops() {
    let pieces = parts(2 * MAX_PART_BYTES, 5);
    let mut r = WelcomeReassembler::new();
    r.insert(uid(1), pieces[0].clone(), 1).expect("first");
    let held = r.pending_bytes();
    assert_eq!(
        r.insert(uid(1), pieces[0].clone(), 2),
        Ok(Reassembly::Duplicate)
    );
    assert_eq!(r.pending_bytes(), held);
    let mut other = pieces[0].clone();
    other.data[0] ^= 1;
    assert_eq!(
        r.insert(uid(1), other, 3),
        Err(WelcomePartError::Conflict(0))
    );
    assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
}

#[test]
fn a_wrong_count_drops_the_welcome() {
    let pieces = parts(2 * MAX_PART_BYTES, 6);
    let mut r = WelcomeReassembler::new();
    r.insert(uid(1), pieces[0].clone(), 1).expect("first");
    let mut second = pieces[1].clone();
    second.count = 3;
    assert_eq!(
        r.insert(uid(1), second, 2),
        Err(WelcomePartError::CountMismatch {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(r.pending(), 0);
}

#[test]
fn a_hash_mismatch_is_refused() {
    let mut pieces = parts(2 * MAX_PART_BYTES, 7);
    pieces[1].data[5] ^= 0xff;
    let mut r = WelcomeReassembler::new();
    r.insert(uid(1), pieces[0].clone(), 1).expect("first");
    assert_eq!(
        r.insert(uid(1), pieces[1].clone(), 1),
        Err(WelcomePartError::HashMismatch)
    );
    assert_eq!((r.pending(), r.pending_bytes(), r.dropped()), (0, 0, 1));
}

#[test]
fn oversize_parts_are_refused() {
    // decode refuses a piece larger than MAX_PART_BYTES; the reassembler also checks its
    // running total against MAX_WELCOME_BYTES for parts built in memory.
    let mut r = WelcomeReassembler::new();
    let id = [9; 32];
    let big = |index| WelcomePart {
        welcome_id: id,
        index,
        count: MAX_WELCOME_PARTS as u32,
        data: vec![1; MAX_PART_BYTES + MAX_PART_BYTES / 2],
    };
    // 42 pieces of 1.5 × MAX_PART_BYTES = 63 × MAX_PART_BYTES fit; a 43rd does not.
    for index in 0..42 {
        r.insert(uid(1), big(index), 1).expect("within bound");
    }
    let err = r
        .insert(uid(1), big(MAX_WELCOME_PARTS as u32 - 1), 1)
        .expect_err("over");
    assert!(matches!(
        err,
        WelcomePartError::TooLarge {
            what: "welcome",
            ..
        }
    ));
    assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
}

#[test]
fn too_many_pending_per_sender_and_per_node() {
    let mut r = WelcomeReassembler::new();
    for seed in 0..MAX_PENDING_PER_SENDER as u8 {
        r.insert(uid(1), parts(MAX_PAYLOAD_BYTES + 1, seed).remove(0), 1)
            .expect("kept");
    }
    assert_eq!(
        r.insert(uid(1), parts(MAX_PAYLOAD_BYTES + 1, 99).remove(0), 1),
        Err(WelcomePartError::TooManyPending)
    );
    // Other senders fill the node; the oldest unfinished Welcome makes room.
    for (i, sender) in (2..2 + MAX_PENDING_WELCOMES as u8).enumerate() {
        r.insert(
            uid(sender),
            parts(MAX_PAYLOAD_BYTES + 1, sender).remove(0),
            2 + i as u64,
        )
        .expect("kept");
        assert!(r.pending() <= MAX_PENDING_WELCOMES);
    }
    assert_eq!(r.pending(), MAX_PENDING_WELCOMES);
    assert_eq!(r.dropped(), MAX_PENDING_PER_SENDER as u64);
    assert!(r.pending_bytes() <= MAX_PENDING_BYTES);
}

#[test]
fn the_byte_budget_drops_the_oldest() {
    let mut r = WelcomeReassembler::new();
    // Three senders, each with a Welcome of 48 parts, all but one part held (about 11.3 MiB
    // each): the third exceeds MAX_PENDING_BYTES and the oldest goes.
    for sender in 1..=3u8 {
        let pieces = parts(48 * MAX_PART_BYTES, sender);
        for p in pieces.into_iter().skip(1) {
            r.insert(uid(sender), p, u64::from(sender)).expect("kept");
        }
        assert!(r.pending_bytes() <= MAX_PENDING_BYTES);
    }
    assert_eq!((r.pending(), r.dropped()), (2, 1));
}
