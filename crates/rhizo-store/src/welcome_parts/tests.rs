use rhizo_core::welcome::{
    MAX_PENDING_PER_SENDER, MAX_PENDING_WELCOMES, Reassembly, WelcomePart, WelcomePartError,
    split_welcome,
};

use super::WELCOME_PART_TTL_MS;
use crate::{Store, StoreError};

/// A Welcome of three parts, different for each `seed`.
fn parts(seed: u8) -> (Vec<u8>, Vec<WelcomePart>) {
    let len = 2 * rhizo_core::welcome::MAX_PART_BYTES + 100;
    let welcome: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
    let parts = split_welcome(&welcome).unwrap();
    assert_eq!(parts.len(), 3);
    (welcome, parts)
}

fn keep(
    s: &mut Store,
    sender: u8,
    part: &WelcomePart,
    now: i64,
) -> Result<Reassembly, WelcomePartError> {
    s.write(|tx| tx.keep_welcome_part(&[sender; 32], part, now))
        .unwrap()
}

#[test]
fn parts_survive_a_reopen_and_reassemble_from_the_table_then_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let (welcome, parts) = parts(1);
    let mut s = Store::open(&path).unwrap();
    assert_eq!(
        keep(&mut s, 7, &parts[2], 10),
        Ok(Reassembly::Pending {
            received: 1,
            count: 3
        })
    );
    assert_eq!(
        keep(&mut s, 7, &parts[0], 11).unwrap(),
        Reassembly::Pending {
            received: 2,
            count: 3
        }
    );
    // The same piece again: nothing changes.
    assert_eq!(keep(&mut s, 7, &parts[0], 12), Ok(Reassembly::Duplicate));
    drop(s);
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.read().welcome_parts_held().unwrap().parts, 2);
    assert_eq!(
        keep(&mut s, 7, &parts[1], 13),
        Ok(Reassembly::Complete(welcome))
    );
    assert_eq!(s.read().welcome_parts_held().unwrap(), Default::default());
}

#[test]
fn a_rolled_back_transaction_keeps_no_part() {
    let mut s = Store::open_in_memory().unwrap();
    let (_, parts) = parts(1);
    let failed: Result<(), StoreError> = s.write(|tx| {
        tx.keep_welcome_part(&[7; 32], &parts[0], 10)?.unwrap();
        Err(StoreError::InvalidInput("refused later".into()))
    });
    assert!(failed.is_err());
    assert_eq!(s.read().welcome_parts_held().unwrap().parts, 0);
}

#[test]
fn bounds_per_sender_and_per_node_and_expiry() {
    let mut s = Store::open_in_memory().unwrap();
    // Per sender: a third unfinished Welcome is refused, nothing kept.
    for seed in 0..MAX_PENDING_PER_SENDER as u8 {
        assert!(keep(&mut s, 1, &parts(seed).1[0], 10).is_ok());
    }
    assert_eq!(
        keep(&mut s, 1, &parts(9).1[0], 11),
        Err(WelcomePartError::TooManyPending)
    );
    assert_eq!(
        s.read().welcome_parts_held().unwrap().welcomes,
        MAX_PENDING_PER_SENDER
    );
    // Per node: beyond the bound the oldest unfinished Welcome (sender 1's first) is dropped.
    let others = MAX_PENDING_WELCOMES - MAX_PENDING_PER_SENDER + 1;
    for (i, sender) in (2..).take(others).enumerate() {
        assert!(keep(&mut s, sender, &parts(50).1[0], 20 + i as i64).is_ok());
    }
    assert_eq!(
        s.read().welcome_parts_held().unwrap().welcomes,
        MAX_PENDING_WELCOMES
    );
    // Sender 1 has room for one more now.
    assert!(keep(&mut s, 1, &parts(9).1[0], 100).is_ok());
    // Expiry: an unfinished Welcome is dropped a TTL after its first piece.
    let later = 100 + WELCOME_PART_TTL_MS;
    assert!(keep(&mut s, 99, &parts(3).1[0], later).is_ok());
    assert_eq!(s.read().welcome_parts_held().unwrap().welcomes, 1);
}

#[test]
fn a_conflicting_or_mismatched_part_drops_the_unfinished_welcome() {
    let mut s = Store::open_in_memory().unwrap();
    let (_, parts) = parts(1);
    keep(&mut s, 7, &parts[0], 10).unwrap();
    let mut other = parts[0].clone();
    other.data[0] ^= 1;
    assert_eq!(
        keep(&mut s, 7, &other, 11),
        Err(WelcomePartError::Conflict(0))
    );
    assert_eq!(s.read().welcome_parts_held().unwrap().parts, 0);
    keep(&mut s, 7, &parts[0], 12).unwrap();
    let mut wrong_count = parts[1].clone();
    wrong_count.count = 4;
    assert!(matches!(
        keep(&mut s, 7, &wrong_count, 13),
        Err(WelcomePartError::CountMismatch {
            expected: 3,
            got: 4
        })
    ));
    assert_eq!(s.read().welcome_parts_held().unwrap().parts, 0);
    // Pieces that do not hash to the id: refused whole at the end, nothing left.
    keep(&mut s, 7, &parts[0], 14).unwrap();
    keep(&mut s, 7, &parts[1], 14).unwrap();
    let mut last = parts[2].clone();
    last.data[0] ^= 1;
    assert_eq!(
        keep(&mut s, 7, &last, 15),
        Err(WelcomePartError::HashMismatch)
    );
    assert_eq!(s.read().welcome_parts_held().unwrap().parts, 0);
}

#[test]
fn a_damaged_row_is_a_clear_error_not_a_panic() {
    let mut s = Store::open_in_memory().unwrap();
    let (_, parts) = parts(1);
    keep(&mut s, 7, &parts[0], 10).unwrap();
    keep(&mut s, 7, &parts[1], 10).unwrap();
    // Damage a stored piece: its index no longer fits the Welcome.
    s.write(|tx| {
        tx.conn
            .execute("UPDATE welcome_parts SET idx = 7 WHERE idx = 1", [])
            .map_err(|e| StoreError::InvalidInput(e.to_string()))
    })
    .unwrap();
    let err = s
        .write(|tx| tx.keep_welcome_part(&[7; 32], &parts[2], 11))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("damaged"), "{text}");
    // The caller drops it; the inviter can send it again.
    let dropped = s
        .write(|tx| tx.drop_welcome_parts(&[7; 32], &parts[0].welcome_id))
        .unwrap();
    assert_eq!(dropped, 2);
}
