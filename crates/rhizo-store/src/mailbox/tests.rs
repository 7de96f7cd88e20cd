//! Tests of the parent module (kept apart so the module file holds only its logic).

use super::*;
use crate::Store;

fn entry(
    recipient: u8,
    sender: u8,
    digest: u8,
    envelope: &[u8],
    expires_at: i64,
) -> NewMailboxEntry<'_> {
    NewMailboxEntry {
        recipient_uid: [recipient; 32],
        sender_uid: [sender; 32],
        digest: [digest; 32],
        envelope,
        expires_at,
        sender_cert: &[],
    }
}

#[test]
fn store_fetch_dedupe_delete_and_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.db");
    let q = MailboxQuota::default();
    {
        let mut s = Store::open(&path).unwrap();
        assert_eq!(
            s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"env-a", 1000), &q, 10))
                .unwrap(),
            MailboxStored::Stored
        );
        assert_eq!(
            s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"env-a", 1000), &q, 11))
                .unwrap(),
            MailboxStored::Duplicate
        );
        assert_eq!(
            s.write(|tx| tx.mailbox_store(&entry(1, 2, 4, b"env-b", 1000), &q, 12))
                .unwrap(),
            MailboxStored::Stored
        );
        // Dropped without any shutdown step, as a crash right after the ack would.
    }
    let mut s = Store::open(&path).unwrap();
    let held = s
        .read()
        .mailbox_fetch(&[1; 32], 20, 10, usize::MAX)
        .unwrap();
    assert!(!held.more);
    assert_eq!(
        held.entries
            .iter()
            .map(|e| e.envelope.clone())
            .collect::<Vec<_>>(),
        vec![b"env-a".to_vec(), b"env-b".to_vec()]
    );
    assert_eq!(held.entries[0].digest, [3; 32]);
    assert_eq!(
        s.read()
            .mailbox_fetch(&[9; 32], 20, 10, usize::MAX)
            .unwrap(),
        MailboxPage::default()
    );
    assert_eq!(
        s.read().mailbox_summary().unwrap(),
        MailboxSummary {
            count: 2,
            bytes: 10,
            oldest: Some(10),
            recipients: 1,
            tombstones: 0,
        }
    );
    assert_eq!(
        s.write(|tx| tx.mailbox_delete(&[1; 32], &[[3; 32], [7; 32]], 30))
            .unwrap(),
        1
    );
    // Another recipient's receipt cannot delete it.
    assert_eq!(
        s.write(|tx| tx.mailbox_delete(&[9; 32], &[[4; 32]], 30))
            .unwrap(),
        0
    );
    assert_eq!(s.read().mailbox_entries(&[1; 32], 20, 10).unwrap().len(), 1);
    assert_eq!(s.read().mailbox_summary().unwrap().tombstones, 3);
}

#[test]
fn expired_entries_are_not_handed_out_and_are_purged() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"short", 100), &q, 10))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 4, b"long", 10_000), &q, 10))
        .unwrap();
    assert_eq!(
        s.read().mailbox_entries(&[1; 32], 100, 10).unwrap().len(),
        1,
        "expired at 100"
    );
    assert_eq!(s.write(|tx| tx.mailbox_purge_expired(100)).unwrap(), 1);
    assert_eq!(s.read().mailbox_summary().unwrap().count, 1);
}

#[test]
fn full_quotas_are_errors_and_lose_nothing_already_stored() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota {
        max_bytes_per_recipient: 10,
        max_count_per_recipient: 2,
        max_bytes_per_sender: 8,
        max_count_per_sender: 100,
        ..MailboxQuota::default()
    };
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 1, b"1234", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(1, 3, 2, b"1234", 1000), &q, 0))
        .unwrap();
    // Recipient count full.
    let err = s
        .write(|tx| tx.mailbox_store(&entry(1, 4, 3, b"1", 1000), &q, 0))
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
    // Sender bytes full (sender 2 has 4 of 8 bytes; 5 more is too much).
    let err = s
        .write(|tx| tx.mailbox_store(&entry(5, 2, 4, b"12345", 1000), &q, 0))
        .unwrap_err();
    assert!(err.to_string().contains("from you"), "{err}");
    assert_eq!(
        s.read().mailbox_summary().unwrap().count,
        2,
        "nothing stored was lost"
    );
    // The read-only check agrees, and lets through what is already held.
    let err = s
        .read()
        .mailbox_check_quota(&entry(1, 4, 3, b"1", 1000), &q, 0)
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
    s.read()
        .mailbox_check_quota(&entry(1, 2, 1, b"1234", 1000), &q, 0)
        .unwrap();
    // Once expired, entries no longer count against the quota (for the check too).
    s.read()
        .mailbox_check_quota(&entry(1, 4, 3, b"1", 5000), &q, 1000)
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(1, 4, 3, b"1", 5000), &q, 1000))
        .unwrap();
}

#[test]
fn fetch_pages_by_count_and_bytes_in_storage_order() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    // Stored out of digest order: pages follow storage order.
    for (digest, env) in [(9, &b"aaaa"[..]), (2, b"bbbb"), (5, b"cccc")] {
        s.write(|tx| tx.mailbox_store(&entry(1, 2, digest, env, 1000), &q, 0))
            .unwrap();
    }
    let digests = |p: &MailboxPage| p.entries.iter().map(|e| e.digest[0]).collect::<Vec<_>>();
    let page = s.read().mailbox_fetch(&[1; 32], 10, 2, usize::MAX).unwrap();
    assert_eq!((digests(&page), page.more), (vec![9, 2], true));
    let page = s.read().mailbox_fetch(&[1; 32], 10, 3, usize::MAX).unwrap();
    assert_eq!((digests(&page), page.more), (vec![9, 2, 5], false));
    // 8 bytes fit two envelopes of 4; 11 bytes still two.
    let page = s.read().mailbox_fetch(&[1; 32], 10, 10, 8).unwrap();
    assert_eq!((digests(&page), page.more), (vec![9, 2], true));
    let page = s.read().mailbox_fetch(&[1; 32], 10, 10, 11).unwrap();
    assert_eq!((digests(&page), page.more), (vec![9, 2], true));
    let page = s.read().mailbox_fetch(&[1; 32], 10, 10, 12).unwrap();
    assert_eq!((digests(&page), page.more), (vec![9, 2, 5], false));
    // The cap is strict, even for the first envelope.
    let page = s.read().mailbox_fetch(&[1; 32], 10, 10, 3).unwrap();
    assert_eq!((digests(&page), page.more), (vec![], true));
    let page = s.read().mailbox_fetch(&[1; 32], 10, 0, usize::MAX).unwrap();
    assert_eq!((digests(&page), page.more), (vec![], true));
    // Deleting the first page lets the next one through.
    s.write(|tx| tx.mailbox_delete(&[1; 32], &[[9; 32], [2; 32]], 10))
        .unwrap();
    let page = s.read().mailbox_fetch(&[1; 32], 10, 2, usize::MAX).unwrap();
    assert_eq!((digests(&page), page.more), (vec![5], false));
    assert_eq!(
        s.read()
            .mailbox_entries(&[1; 32], 10, usize::MAX)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_tombstone_refuses_a_late_re_store_until_it_expires() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"env", 500), &q, 10))
        .unwrap();
    assert_eq!(
        s.write(|tx| tx.mailbox_delete(&[1; 32], &[[3; 32]], 20))
            .unwrap(),
        1
    );
    // A replica that had not heard of the delete pushes it again: refused, nothing written.
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"env", 500), &q, 30))
            .unwrap(),
        MailboxStored::AlreadyDelivered
    );
    s.read()
        .mailbox_check_quota(&entry(1, 2, 3, b"env", 500), &q, 30)
        .unwrap();
    assert_eq!(s.read().mailbox_summary().unwrap().count, 0);
    // The same digest for another recipient is another envelope.
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(4, 2, 3, b"env", 500), &q, 30))
            .unwrap(),
        MailboxStored::Stored
    );

    // A digest deleted before it ever arrived here is refused too, for a week.
    assert_eq!(
        s.write(|tx| tx.mailbox_delete(&[1; 32], &[[7; 32]], 100))
            .unwrap(),
        0
    );
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(1, 2, 7, b"late", 100 + TOMBSTONE_TTL_MS), &q, 200))
            .unwrap(),
        MailboxStored::AlreadyDelivered
    );
    // A second delete never shortens a tombstone.
    s.write(|tx| tx.mailbox_delete(&[1; 32], &[[7; 32]], 0))
        .unwrap();
    assert_eq!(s.read().mailbox_summary().unwrap().tombstones, 2);

    // The deleted envelope's tombstone lasts as long as the envelope would have (500).
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"env", 600), &q, 500))
            .unwrap(),
        MailboxStored::Stored,
        "an expired tombstone no longer refuses"
    );
    // Recipient 4's envelope (expired at 500) is still there: the store path purges at most
    // every MAILBOX_PURGE_INTERVAL_MS, not on every store.
    assert_eq!(s.write(|tx| tx.mailbox_purge_expired(500)).unwrap(), 1);
    assert_eq!(s.read().mailbox_summary().unwrap().tombstones, 1);
    assert_eq!(
        s.write(|tx| tx.mailbox_purge_expired(100 + TOMBSTONE_TTL_MS))
            .unwrap(),
        1
    );
    assert_eq!(s.read().mailbox_summary().unwrap().tombstones, 0);
    assert_eq!(s.read().mailbox_summary().unwrap().count, 0);
}

/// Usage counters as the tables hold them, and as a full scan of `mailbox` computes them.
fn usage_and_scan(s: &Store) -> [Vec<(Vec<u8>, i64, i64)>; 4] {
    let rows = |sql: &str| -> Vec<(Vec<u8>, i64, i64)> {
        let mut stmt = s.conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    [
        rows("SELECT recipient_uid, envelopes, bytes FROM mailbox_usage_by_recipient ORDER BY 1"),
        rows(
            "SELECT recipient_uid, count(*), sum(length(envelope)) FROM mailbox
             GROUP BY recipient_uid ORDER BY 1",
        ),
        rows("SELECT sender_uid, envelopes, bytes FROM mailbox_usage_by_sender ORDER BY 1"),
        rows(
            "SELECT sender_uid, count(*), sum(length(envelope)) FROM mailbox
             GROUP BY sender_uid ORDER BY 1",
        ),
    ]
}

fn assert_counters_exact(s: &Store) {
    let [by_recipient, scan_recipient, by_sender, scan_sender] = usage_and_scan(s);
    assert_eq!(by_recipient, scan_recipient, "recipient counters");
    assert_eq!(by_sender, scan_sender, "sender counters");
}

#[test]
fn a_batch_has_one_outcome_per_entry_and_stores_what_passed() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota {
        max_bytes_per_recipient: 1000,
        max_count_per_recipient: 3,
        max_bytes_per_sender: 1000,
        max_count_per_sender: 100,
        ..MailboxQuota::default()
    };
    // Recipient 1 already holds one; digest 9 was delivered (tombstoned).
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 1, b"held", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_delete(&[1; 32], &[[9; 32]], 0))
        .unwrap();
    let batch = [
        entry(1, 2, 1, b"held", 1000),  // already held
        entry(1, 2, 2, b"new-a", 1000), // stored: 2 of 3
        entry(1, 3, 2, b"new-a", 1000), // the same envelope again in the batch
        entry(1, 2, 9, b"late", 1000),  // tombstoned
        entry(1, 4, 3, b"new-b", 1000), // stored: 3 of 3, the quota boundary
        entry(1, 4, 4, b"new-c", 1000), // one too many for recipient 1
        entry(5, 4, 4, b"new-c", 1000), // the same digest for another recipient: stored
        entry(1, 4, 3, b"new-b", 1000), // a duplicate passes even at a full quota
    ];
    let outcomes = s
        .write(|tx| tx.mailbox_store_batch(&batch, &q, 10))
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            Ok(MailboxStored::Duplicate),
            Ok(MailboxStored::Stored),
            Ok(MailboxStored::Duplicate),
            Ok(MailboxStored::AlreadyDelivered),
            Ok(MailboxStored::Stored),
            Err(MailboxRefusal::QuotaExceeded {
                limit: QuotaLimit::Recipient,
                held_count: 3,
                held_bytes: 14,
            }),
            Ok(MailboxStored::Stored),
            Ok(MailboxStored::Duplicate),
        ]
    );
    let digests = |r: u8| {
        s.read()
            .mailbox_entries(&[r; 32], 20, 10)
            .unwrap()
            .iter()
            .map(|e| e.digest[0])
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(1), vec![1, 2, 3]);
    assert_eq!(digests(5), vec![4]);
    assert_counters_exact(&s);

    // A sender quota reached inside a batch refuses only what is over it.
    let q = MailboxQuota {
        max_bytes_per_sender: 10,
        ..MailboxQuota::default()
    };
    let outcomes = s
        .write(|tx| {
            tx.mailbox_store_batch(
                &[
                    entry(7, 8, 1, b"12345", 1000),
                    entry(6, 8, 2, b"123456", 1000),
                    entry(6, 8, 3, b"12345", 1000),
                    entry(6, 9, 4, b"123456", 1000),
                ],
                &q,
                20,
            )
        })
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            Ok(MailboxStored::Stored),
            Err(MailboxRefusal::QuotaExceeded {
                limit: QuotaLimit::Sender,
                held_count: 1,
                held_bytes: 5,
            }),
            Ok(MailboxStored::Stored),
            Ok(MailboxStored::Stored),
        ]
    );
    assert!(
        outcomes[1]
            .unwrap_err()
            .to_string()
            .contains("1 envelopes (5 bytes) from you")
    );
    assert_counters_exact(&s);
    // An empty batch is a no-op.
    assert!(
        s.write(|tx| tx.mailbox_store_batch(&[], &q, 30))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn expired_entries_never_block_a_sender_and_are_purged_on_a_timer() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota {
        max_count_per_sender: 2,
        ..MailboxQuota::default()
    };
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 1, b"a", 100), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(3, 2, 2, b"b", 100), &q, 0))
        .unwrap();
    // Both expired at 100, not purged yet (the last purge was at 0): the sender's quota is
    // full by the counters, yet neither the check nor the store refuse.
    assert_eq!(s.read().mailbox_summary().unwrap().count, 2);
    s.read()
        .mailbox_check_quota(&entry(4, 2, 3, b"c", 1000), &q, 100)
        .unwrap();
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(4, 2, 3, b"c", 1000), &q, 100))
            .unwrap(),
        MailboxStored::Stored
    );
    assert_eq!(
        s.read().mailbox_summary().unwrap().count,
        1,
        "purged, then stored"
    );
    assert_counters_exact(&s);

    // Without a quota refusal, expired entries wait for the timer.
    s.write(|tx| tx.mailbox_store(&entry(5, 6, 1, b"d", 200), &q, 150))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(5, 6, 2, b"e", 5000), &q, 300))
        .unwrap();
    assert_eq!(
        s.read().mailbox_summary().unwrap().count,
        3,
        "expired at 200, kept"
    );
    assert_eq!(
        s.read().mailbox_entries(&[5; 32], 300, 10).unwrap().len(),
        1
    );
    assert!(!s.read().mailbox_recipients(300).unwrap().contains(&[1; 32]));
    s.write(|tx| {
        tx.mailbox_store(
            &entry(5, 6, 3, b"f", 200_000),
            &q,
            100 + MAILBOX_PURGE_INTERVAL_MS,
        )
    })
    .unwrap();
    // 100 + interval: the purge ran; 1000 (recipient 4) and 5000 had expired too.
    assert_eq!(s.read().mailbox_summary().unwrap().count, 1);
    assert_counters_exact(&s);

    // An expired copy of the same envelope is replaced, not reported as a duplicate.
    s.write(|tx| tx.mailbox_store(&entry(8, 6, 7, b"g", 70_000), &q, 69_000))
        .unwrap();
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(8, 6, 7, b"g", 90_000), &q, 80_000))
            .unwrap(),
        MailboxStored::Stored
    );
    assert_eq!(
        s.read().mailbox_entries(&[8; 32], 80_000, 10).unwrap()[0].expires_at,
        90_000
    );
    assert_counters_exact(&s);
}

#[test]
fn a_committed_batch_survives_a_reopen_with_its_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.db");
    let q = MailboxQuota::default();
    let envelopes: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let batch: Vec<NewMailboxEntry<'_>> = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| entry(i as u8 % 4, i as u8 % 3, i as u8, e, 1_000_000))
        .collect();
    let acknowledged = {
        let mut s = Store::open(&path).unwrap();
        let outcomes = s
            .write(|tx| tx.mailbox_store_batch(&batch, &q, 10))
            .unwrap();
        assert!(outcomes.iter().all(|o| *o == Ok(MailboxStored::Stored)));
        outcomes.len()
        // Dropped without any shutdown step, as a crash right after the acks would.
    };
    let s = Store::open(&path).unwrap();
    let mut held = 0;
    for r in 0..4u8 {
        for e in s.read().mailbox_entries(&[r; 32], 20, 100).unwrap() {
            assert_eq!(e.envelope, envelopes[usize::from(e.digest[0])]);
            held += 1;
        }
    }
    assert_eq!(held, acknowledged);
    assert_counters_exact(&s);
}

/// A model row: (recipient, digest) → (sender, size, expires_at).
type ModelRow = ((u8, u8), (u8, u64, i64));

/// The reference model of the mailbox for the property test: the semantics the counters,
/// the purge timer and the batching must not change.
#[derive(Default)]
struct Model {
    /// In storage order.
    rows: Vec<ModelRow>,
    /// (recipient, digest) → expires_at.
    tombstones: std::collections::HashMap<(u8, u8), i64>,
}

impl Model {
    fn usage(&self, now: i64, key: impl Fn(&(u8, u8), &(u8, u64, i64)) -> bool) -> (u64, u64) {
        self.rows
            .iter()
            .filter(|(k, v)| v.2 > now && key(k, v))
            .fold((0, 0), |(c, b), (_, v)| (c + 1, b + v.1))
    }

    fn store(&mut self, e: &NewMailboxEntry<'_>, q: &MailboxQuota, now: i64) -> MailboxOutcome {
        let key = (e.recipient_uid[0], e.digest[0]);
        if self.tombstones.get(&key).is_some_and(|&t| t > now) {
            return Ok(MailboxStored::AlreadyDelivered);
        }
        if let Some(i) = self.rows.iter().position(|(k, _)| *k == key) {
            if self.rows[i].1.2 > now {
                return Ok(MailboxStored::Duplicate);
            }
            self.rows.remove(i);
        }
        let size = e.envelope.len() as u64;
        let r = self.usage(now, |k, _| k.0 == key.0);
        if r.0 + 1 > q.max_count_per_recipient || r.1 + size > q.max_bytes_per_recipient {
            return Err(MailboxRefusal::QuotaExceeded {
                limit: QuotaLimit::Recipient,
                held_count: r.0,
                held_bytes: r.1,
            });
        }
        let sd = self.usage(now, |_, v| v.0 == e.sender_uid[0]);
        if sd.0 + 1 > q.max_count_per_sender || sd.1 + size > q.max_bytes_per_sender {
            return Err(MailboxRefusal::QuotaExceeded {
                limit: QuotaLimit::Sender,
                held_count: sd.0,
                held_bytes: sd.1,
            });
        }
        self.rows.push((key, (e.sender_uid[0], size, e.expires_at)));
        Ok(MailboxStored::Stored)
    }

    fn delete(&mut self, recipient: u8, digests: &[u8], now: i64) -> usize {
        let mut n = 0;
        for &d in digests {
            let key = (recipient, d);
            let held = self.rows.iter().position(|(k, _)| *k == key);
            let expires_at = match held.map(|i| self.rows.remove(i).1.2) {
                Some(expires_at) if expires_at > now => {
                    n += 1;
                    expires_at
                }
                _ => now + TOMBSTONE_TTL_MS,
            };
            let t = self.tombstones.entry(key).or_insert(expires_at);
            *t = (*t).max(expires_at);
        }
        n
    }

    fn purge(&mut self, now: i64) -> usize {
        let before = self.rows.len();
        self.rows.retain(|(_, v)| v.2 > now);
        self.tombstones.retain(|_, t| *t > now);
        before - self.rows.len()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// (recipient, sender, digest, ttl) per entry, then the clock step.
    Store(Vec<(u8, u8, u8, i64)>, i64),
    Delete(u8, Vec<u8>, i64),
    Purge(i64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let entry = (0..4u8, 0..3u8, 0..12u8, 1..200_000i64);
    prop_oneof![
        4 => (proptest::collection::vec(entry, 0..10), 0..40_000i64)
            .prop_map(|(e, step)| Op::Store(e, step)),
        1 => (0..4u8, proptest::collection::vec(0..12u8, 0..4), 0..40_000i64)
            .prop_map(|(r, d, step)| Op::Delete(r, d, step)),
        1 => (0..100_000i64).prop_map(Op::Purge),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// After any sequence of batches, deletes and purges, the usage counters equal a full scan,
    /// every outcome is the model's, and what fetch returns is the model's unexpired rows.
    #[test]
    fn counters_and_outcomes_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut s = Store::open_in_memory().unwrap();
        let mut model = Model::default();
        let q = MailboxQuota {
            max_bytes_per_recipient: 120,
            max_count_per_recipient: 5,
            max_bytes_per_sender: 150,
            max_count_per_sender: 6,
            ..MailboxQuota::default()
        };
        // The digest names the bytes (5 to 49 of them): the same digest, the same envelope.
        let bodies: Vec<Vec<u8>> = (0..12u8).map(|d| vec![d; 5 + 4 * usize::from(d)]).collect();
        let mut now = 1_000;
        for op in ops {
            match op {
                Op::Store(entries, step) => {
                    now += step;
                    let batch: Vec<NewMailboxEntry<'_>> = entries
                        .iter()
                        .map(|&(r, sd, d, ttl)| {
                            entry(r, sd, d, &bodies[usize::from(d)], now + ttl)
                        })
                        .collect();
                    let expected: Vec<MailboxOutcome> =
                        batch.iter().map(|e| model.store(e, &q, now)).collect();
                    proptest::prop_assert_eq!(s.write(|tx| tx.mailbox_store_batch(&batch, &q, now)).unwrap(), expected);
                }
                Op::Delete(recipient, digests, step) => {
                    now += step;
                    let named: Vec<[u8; 32]> = digests.iter().map(|&d| [d; 32]).collect();
                    proptest::prop_assert_eq!(
                        s.write(|tx| tx.mailbox_delete(&[recipient; 32], &named, now)).unwrap(),
                        model.delete(recipient, &digests, now)
                    );
                }
                Op::Purge(step) => {
                    now += step;
                    // The store may have purged some already on its own timer.
                    let purged = s.write(|tx| tx.mailbox_purge_expired(now)).unwrap();
                    proptest::prop_assert!(purged <= model.purge(now));
                }
            }
            let [by_recipient, scan_recipient, by_sender, scan_sender] = usage_and_scan(&s);
            proptest::prop_assert_eq!(by_recipient, scan_recipient);
            proptest::prop_assert_eq!(by_sender, scan_sender);
            for r in 0..4u8 {
                let held: Vec<u8> = s
                    .read().mailbox_entries(&[r; 32], now, 100)
                    .unwrap()
                    .iter()
                    .map(|e| e.digest[0])
                    .collect();
                let expected: Vec<u8> = model
                    .rows
                    .iter()
                    .filter(|(k, v)| k.0 == r && v.2 > now)
                    .map(|(k, _)| k.1)
                    .collect();
                proptest::prop_assert_eq!(held, expected);
            }
        }
    }
}

#[test]
fn recipients_with_unexpired_entries() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    s.write(|tx| tx.mailbox_store(&entry(5, 2, 1, b"a", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(5, 2, 2, b"b", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(3, 2, 3, b"c", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(4, 2, 4, b"d", 100), &q, 0))
        .unwrap();
    assert_eq!(
        s.read().mailbox_recipients(50).unwrap(),
        vec![[3; 32], [4; 32], [5; 32]]
    );
    assert_eq!(
        s.read().mailbox_recipients(100).unwrap(),
        vec![[3; 32], [5; 32]],
        "4's only entry expired"
    );
    assert!(s.read().mailbox_recipients(1000).unwrap().is_empty());
}

#[test]
fn a_device_list_version_only_grows() {
    let mut s = Store::open_in_memory().unwrap();
    assert_eq!(s.read().mailbox_device_list_version(&[1; 32]).unwrap(), 0);
    s.write(|tx| tx.note_mailbox_device_list_version(&[1; 32], 3, 10))
        .unwrap();
    assert_eq!(s.read().mailbox_device_list_version(&[1; 32]).unwrap(), 3);
    s.write(|tx| tx.note_mailbox_device_list_version(&[1; 32], 2, 20))
        .unwrap();
    assert_eq!(s.read().mailbox_device_list_version(&[1; 32]).unwrap(), 3);
    s.write(|tx| tx.note_mailbox_device_list_version(&[1; 32], 7, 30))
        .unwrap();
    assert_eq!(s.read().mailbox_device_list_version(&[1; 32]).unwrap(), 7);
    assert_eq!(s.read().mailbox_device_list_version(&[2; 32]).unwrap(), 0);
    s.write(|tx| tx.note_mailbox_device_list_version(&[2; 32], u64::MAX, 40))
        .unwrap();
    assert_eq!(
        s.read().mailbox_device_list_version(&[2; 32]).unwrap(),
        i64::MAX as u64,
        "clamped, still the highest"
    );
}

#[test]
fn fetch_pages_after_a_cursor_past_what_is_left() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    for d in 1..=5u8 {
        s.write(|tx| tx.mailbox_store(&entry(1, 2, d, b"env", 1000), &q, 0))
            .unwrap();
    }
    let digests = |p: &MailboxPage| p.entries.iter().map(|e| e.digest[0]).collect::<Vec<_>>();
    let first = s
        .read()
        .mailbox_fetch_after(&[1; 32], 10, 0, 2, usize::MAX)
        .unwrap();
    assert_eq!((digests(&first), first.more), (vec![1, 2], true));
    assert_eq!(first.next_cursor, first.entries[1].id);
    // Nothing deleted: the cursor still moves on.
    let second = s
        .read()
        .mailbox_fetch_after(&[1; 32], 10, first.next_cursor, 2, usize::MAX)
        .unwrap();
    assert_eq!((digests(&second), second.more), (vec![3, 4], true));
    let last = s
        .read()
        .mailbox_fetch_after(&[1; 32], 10, second.next_cursor, 2, usize::MAX)
        .unwrap();
    assert_eq!((digests(&last), last.more), (vec![5], false));
    // Past the end: empty, the cursor unchanged.
    let past = s
        .read()
        .mailbox_fetch_after(&[1; 32], 10, last.next_cursor, 2, usize::MAX)
        .unwrap();
    assert_eq!((digests(&past), past.more), (vec![], false));
    assert_eq!(past.next_cursor, last.next_cursor);
}

#[test]
fn the_sender_certificate_is_kept_with_the_entry() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    let mut e = entry(1, 2, 3, b"env", 1000);
    e.sender_cert = &[7; 137];
    s.write(|tx| tx.mailbox_store(&e, &q, 0)).unwrap();
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 4, b"env2", 1000), &q, 0))
        .unwrap();
    let held = s.read().mailbox_entries(&[1; 32], 10, 10).unwrap();
    assert_eq!(held[0].sender_cert, vec![7; 137]);
    assert!(held[1].sender_cert.is_empty());
}

#[test]
fn a_rejection_deletes_only_an_entry_that_is_held() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota::default();
    s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"held", 1000), &q, 0))
        .unwrap();
    // Rejected: the held one goes (tombstoned), the unknown digest is ignored.
    assert_eq!(
        s.write(|tx| tx.mailbox_delete_held(&[1; 32], &[[3; 32], [4; 32]], 10))
            .unwrap(),
        1
    );
    assert_eq!(s.read().mailbox_summary().unwrap().tombstones, 1);
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(1, 2, 3, b"held", 1000), &q, 20))
            .unwrap(),
        MailboxStored::AlreadyDelivered
    );
    // The digest the rejection named but this replica never held can still be stored
    // (with `mailbox_delete`, the old path for every entry, it was tombstoned for a week).
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(1, 2, 4, b"real", 1000), &q, 20))
            .unwrap(),
        MailboxStored::Stored
    );
    // Another recipient's rejection cannot touch it.
    assert_eq!(
        s.write(|tx| tx.mailbox_delete_held(&[9; 32], &[[4; 32]], 30))
            .unwrap(),
        0
    );
    assert_eq!(s.read().mailbox_entries(&[1; 32], 30, 10).unwrap().len(), 1);
}

#[test]
fn tombstones_are_bounded_per_recipient() {
    let mut s = Store::open_in_memory().unwrap();
    let over = MAX_TOMBSTONES_PER_RECIPIENT as usize + 10;
    let digests: Vec<[u8; 32]> = (0..over)
        .map(|i| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&(i as u64).to_be_bytes());
            d
        })
        .collect();
    // Deleted in two receipts at different times: the earliest-expiring go first.
    s.write(|tx| tx.mailbox_delete(&[1; 32], &digests[..10], 0))
        .unwrap();
    s.write(|tx| tx.mailbox_delete(&[1; 32], &digests[10..], 1000))
        .unwrap();
    s.write(|tx| tx.mailbox_delete(&[2; 32], &digests[..5], 0))
        .unwrap();
    let count = |r: u8| -> i64 {
        s.conn
            .query_row(
                "SELECT count(*) FROM mailbox_tombstones WHERE recipient_uid = ?1",
                [&[r; 32][..]],
                |row| row.get(0),
            )
            .unwrap()
    };
    assert_eq!(count(1), MAX_TOMBSTONES_PER_RECIPIENT as i64);
    assert_eq!(count(2), 5, "another recipient's are not touched");
    // The ten of the first receipt (expiring first) went.
    let q = MailboxQuota::default();
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(1, 2, 0, b"x", TOMBSTONE_TTL_MS), &q, 2000))
            .unwrap(),
        MailboxStored::Stored
    );
}

#[test]
fn device_list_rows_are_bounded_and_forgotten() {
    let mut s = Store::open_in_memory().unwrap();
    let uid = |i: u64| {
        let mut u = [0u8; 32];
        u[..8].copy_from_slice(&i.to_be_bytes());
        u
    };
    // The public call's bound is MAX_DEVICE_LIST_ROWS; 16 here keeps the test short.
    let n = 16 + 3;
    for i in 0..n {
        s.write(|tx| tx.note_device_list_bounded(&uid(i), 1, None, i as i64, 16))
            .unwrap();
    }
    // Noting a known UID again does not evict anyone.
    s.write(|tx| tx.note_device_list_bounded(&uid(n - 1), 2, None, n as i64, 16))
        .unwrap();
    let rows = |s: &Store| -> i64 {
        s.conn
            .query_row("SELECT count(*) FROM mailbox_device_lists", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(rows(&s), 16);
    // The least recently noted went; the newest is there.
    assert_eq!(s.read().mailbox_device_list_version(&uid(0)).unwrap(), 0);
    assert_eq!(s.read().mailbox_device_list_version(&uid(3)).unwrap(), 1);
    assert_eq!(
        s.read().mailbox_device_list_version(&uid(n - 1)).unwrap(),
        2
    );
    // Not noted for DEVICE_LIST_MEMORY_MS: forgotten by the purge.
    s.write(|tx| tx.mailbox_purge_expired(n as i64 + DEVICE_LIST_MEMORY_MS))
        .unwrap();
    assert_eq!(rows(&s), 0);
}

#[test]
fn the_node_wide_cap_evicts_expired_then_the_largest_recipient_fairly() {
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota {
        max_total_count: 4,
        max_total_bytes: 1000,
        ..MailboxQuota::default()
    };
    // Recipient 1 holds 3 (one expiring at 50), recipient 2 holds 1: full.
    s.write(|tx| tx.mailbox_store(&entry(1, 9, 1, b"a", 50), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(1, 9, 2, b"b", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(1, 9, 3, b"c", 1000), &q, 0))
        .unwrap();
    s.write(|tx| tx.mailbox_store(&entry(2, 9, 4, b"d", 1000), &q, 0))
        .unwrap();
    // At 10 nothing is expired; recipient 1 (3) holds more than 2 would (2): its oldest goes.
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(2, 9, 5, b"e", 1000), &q, 10))
            .unwrap(),
        MailboxStored::Stored
    );
    let digests = |s: &Store, r: u8, now| {
        s.read()
            .mailbox_entries(&[r; 32], now, 10)
            .unwrap()
            .iter()
            .map(|e| e.digest[0])
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&s, 1, 10), vec![2, 3]);
    assert_eq!(digests(&s, 2, 10), vec![4, 5]);
    // Now 2 and 2: storing for 2 again would make it the largest: refused, nothing lost.
    let err = s
        .write(|tx| tx.mailbox_store(&entry(2, 9, 6, b"f", 1000), &q, 20))
        .unwrap_err();
    assert!(err.to_string().contains("mailbox is full"), "{err}");
    s.read()
        .mailbox_check_quota(&entry(2, 9, 6, b"f", 1000), &q, 20)
        .unwrap_err();
    // A third recipient (holding none) may take from the largest (2 each; 1 is first).
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(3, 9, 7, b"g", 1000), &q, 20))
            .unwrap(),
        MailboxStored::Stored
    );
    assert_eq!(s.read().mailbox_summary().unwrap().count, 4);
    // Expired entries go before anyone is evicted.
    s.write(|tx| tx.mailbox_store(&entry(3, 9, 8, b"h", 100), &q, 30))
        .unwrap_err();
    let q2 = MailboxQuota {
        max_total_count: 5,
        ..q
    };
    s.write(|tx| tx.mailbox_store(&entry(3, 9, 8, b"h", 100), &q2, 30))
        .unwrap();
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(4, 9, 9, b"i", 1000), &q2, 100))
            .unwrap(),
        MailboxStored::Stored
    );
    assert_eq!(digests(&s, 3, 100), vec![7], "the expired one went");
    assert_eq!(s.read().mailbox_summary().unwrap().count, 5);
    assert_counters_exact(&s);
    // The bytes cap binds the same way.
    let mut s = Store::open_in_memory().unwrap();
    let q = MailboxQuota {
        max_total_bytes: 10,
        ..MailboxQuota::default()
    };
    s.write(|tx| tx.mailbox_store(&entry(1, 9, 1, b"12345678", 1000), &q, 0))
        .unwrap();
    assert_eq!(
        s.write(|tx| tx.mailbox_store(&entry(2, 9, 2, b"123", 1000), &q, 0))
            .unwrap(),
        MailboxStored::Stored
    );
    assert!(digests(&s, 1, 0).is_empty(), "8 bytes > 3: evicted");
    let err = s
        .write(|tx| tx.mailbox_store(&entry(2, 9, 3, b"12345678", 1000), &q, 0))
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
}
