//! Tests of the parent module: delete-on-receipt with several devices, on real SQLite.

use super::*;
use crate::{
    Store,
    mailbox::{MailboxQuota, MailboxStored, NewMailboxEntry},
};

const ALICE: [u8; 32] = [1; 32];
const A1: [u8; 32] = [11; 32];
const A2: [u8; 32] = [12; 32];
const A3: [u8; 32] = [13; 32];

fn store_entry(s: &mut Store, digest: u8, now: i64) -> MailboxStored {
    let entry = NewMailboxEntry {
        recipient_uid: ALICE,
        sender_uid: [2; 32],
        digest: [digest; 32],
        envelope: b"sealed",
        expires_at: now + 1000,
        sender_cert: &[],
    };
    s.write(|tx| tx.mailbox_store(&entry, &MailboxQuota::default(), now))
        .unwrap()
}

fn fetch(s: &Store, device: &[u8; 32], now: i64) -> Vec<[u8; 32]> {
    s.read()
        .mailbox_fetch_for(&ALICE, device, now, 0, 64, usize::MAX)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.digest)
        .collect()
}

fn ack(s: &mut Store, device: &[u8; 32], digest: u8, now: i64) -> MailboxAcked {
    s.write(|tx| tx.mailbox_ack(&ALICE, device, &[[digest; 32]], &[], now))
        .unwrap()
}

fn note(s: &mut Store, version: u64, devices: &[[u8; 32]], now: i64) {
    s.write(|tx| tx.note_mailbox_device_list(&ALICE, version, devices, now))
        .unwrap();
}

#[test]
fn an_entry_waits_for_every_device_it_is_addressed_to() {
    let mut s = Store::open_in_memory().unwrap();
    note(&mut s, 1, &[A1, A2], 5);
    assert_eq!(store_entry(&mut s, 7, 10), MailboxStored::Stored);
    // a1 fetches and acknowledges: kept for a2, and a1 does not get it again.
    assert_eq!(fetch(&s, &A1, 11), vec![[7; 32]]);
    assert_eq!(
        ack(&mut s, &A1, 7, 12),
        MailboxAcked {
            handled: 1,
            deleted: 0
        }
    );
    assert!(fetch(&s, &A1, 13).is_empty());
    // A retransmission is a duplicate, not a second copy.
    assert_eq!(store_entry(&mut s, 7, 14), MailboxStored::Duplicate);
    // a2, later, gets it once; its acknowledgement deletes and tombstones it.
    assert_eq!(fetch(&s, &A2, 20), vec![[7; 32]]);
    assert_eq!(
        ack(&mut s, &A2, 7, 21),
        MailboxAcked {
            handled: 1,
            deleted: 1
        }
    );
    assert!(fetch(&s, &A2, 22).is_empty());
    assert_eq!(store_entry(&mut s, 7, 23), MailboxStored::AlreadyDelivered);
    let acks: i64 = s
        .conn
        .query_row("SELECT count(*) FROM mailbox_device_acks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(acks, 0, "acknowledgements go with their entry");
}

#[test]
fn a_device_listed_later_or_revoked_never_blocks_the_deletion() {
    let mut s = Store::open_in_memory().unwrap();
    note(&mut s, 1, &[A1], 5);
    store_entry(&mut s, 7, 10);
    // a3 is linked after the store: it may fetch the entry, but a1 alone was addressed.
    note(&mut s, 2, &[A1, A3], 11);
    assert_eq!(fetch(&s, &A3, 12), vec![[7; 32]]);
    assert_eq!(ack(&mut s, &A1, 7, 13).deleted, 1);
    assert!(fetch(&s, &A3, 14).is_empty());

    // Addressed to a1 and a2; a2 is revoked (a newer list without it): a1's acknowledgement
    // is the last one needed.
    note(&mut s, 3, &[A1, A2], 20);
    store_entry(&mut s, 8, 21);
    note(&mut s, 4, &[A1], 22);
    assert_eq!(ack(&mut s, &A1, 8, 23).deleted, 1);
}

#[test]
fn entries_from_before_any_list_are_addressed_at_their_first_acknowledgement() {
    let mut s = Store::open_in_memory().unwrap();
    // No list known at store time (or a row from before migration 20).
    store_entry(&mut s, 7, 10);
    // Without any list, the first acknowledgement deletes (one device, as before).
    store_entry(&mut s, 9, 10);
    assert_eq!(ack(&mut s, &A1, 9, 11).deleted, 1);
    note(&mut s, 1, &[A1, A2], 12);
    assert_eq!(
        ack(&mut s, &A1, 7, 13),
        MailboxAcked {
            handled: 1,
            deleted: 0
        }
    );
    // Fixed now: a3 linked later does not join the targets.
    note(&mut s, 2, &[A1, A2, A3], 14);
    assert_eq!(ack(&mut s, &A2, 7, 15).deleted, 1);
}

#[test]
fn a_digest_not_held_is_tombstoned_only_for_a_lone_device() {
    let mut s = Store::open_in_memory().unwrap();
    note(&mut s, 1, &[A1, A2], 5);
    // a1 has it from elsewhere: a later copy here must still reach a2.
    assert_eq!(ack(&mut s, &A1, 7, 10), MailboxAcked::default());
    assert_eq!(store_entry(&mut s, 7, 11), MailboxStored::Stored);
    // With a1 alone listed, a late copy is refused as before.
    note(&mut s, 2, &[A1], 12);
    ack(&mut s, &A1, 8, 13);
    assert_eq!(store_entry(&mut s, 8, 14), MailboxStored::AlreadyDelivered);
    // A final rejection by a1 counts as a1 being done, never tombstones what is not held.
    note(&mut s, 3, &[A1, A2], 15);
    store_entry(&mut s, 9, 16);
    let rejected = s
        .write(|tx| tx.mailbox_ack(&ALICE, &A1, &[], &[[9; 32], [10; 32]], 17))
        .unwrap();
    assert_eq!(
        rejected,
        MailboxAcked {
            handled: 1,
            deleted: 0
        }
    );
    assert_eq!(fetch(&s, &A2, 18), vec![[7; 32], [9; 32]]);
    assert_eq!(store_entry(&mut s, 10, 19), MailboxStored::Stored);
}

#[test]
fn acknowledgements_per_entry_are_bounded() {
    let mut s = Store::open_in_memory().unwrap();
    let many: Vec<[u8; 32]> = (0..16u8).map(|i| [100 + i; 32]).collect();
    note(&mut s, 1, &many, 5);
    store_entry(&mut s, 7, 10);
    // Devices of later lists acknowledge too; past 16 nothing more is kept.
    for i in 0..20u8 {
        ack(&mut s, &[200 + i; 32], 7, 11);
    }
    let acks: i64 = s
        .conn
        .query_row("SELECT count(*) FROM mailbox_device_acks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(acks, MAX_TARGET_DEVICES as i64);
    // More than 16 devices in a list is an error, not a silent cut.
    let seventeen: Vec<[u8; 32]> = (0..17u8).map(|i| [i; 32]).collect();
    assert!(
        s.write(|tx| tx.note_mailbox_device_list(&ALICE, 2, &seventeen, 12))
            .is_err()
    );
}

#[test]
fn an_older_list_never_replaces_the_devices_of_a_newer_one() {
    let mut s = Store::open_in_memory().unwrap();
    note(&mut s, 2, &[A1], 5);
    note(&mut s, 1, &[A1, A2], 6);
    assert_eq!(
        s.read().mailbox_listed_devices(&ALICE).unwrap(),
        Some(vec![A1])
    );
    assert_eq!(s.read().mailbox_device_list_version(&ALICE).unwrap(), 2);
    // A version-only note keeps the devices.
    s.write(|tx| tx.note_mailbox_device_list_version(&ALICE, 3, 7))
        .unwrap();
    assert_eq!(
        s.read().mailbox_listed_devices(&ALICE).unwrap(),
        Some(vec![A1])
    );
}
