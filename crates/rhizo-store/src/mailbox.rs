//! The mailbox a node keeps for others: sealed envelopes for users whose devices are offline.
//!
//! ```text
//!  store (tombstone? quota check, dedupe, one transaction, committed before the ack)
//!     └─▶ mailbox row ──fetch (by recipient, unexpired, paged)──▶ delete (by digest, on receipt)
//!                      └─ purge_expired(now) ─▶ gone                    └─▶ tombstone (refuses a
//!                                                                            late re-store)
//!  mailbox_device_lists: newest device-list version seen per UID (a stale list is refused)
//! ```
//!
//! The envelopes are opaque here (already end-to-end encrypted and signed); rows are keyed by the
//! recipient's UID and the envelope's digest, so a retransmission is stored once. Times are unix
//! milliseconds passed in by the caller.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Store,
    error::{SqliteContext, StoreError},
    messaging::blob,
};

/// How long a tombstone lasts for a digest deleted without being held here (unix ms): a week,
/// the longest any replica keeps an envelope.
pub const TOMBSTONE_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Limits on what one node holds, per recipient and per sender: a full quota is an error to the
/// sender, never a silent drop of what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxQuota {
    /// Bytes held for one recipient.
    pub max_bytes_per_recipient: u64,
    /// Envelopes held for one recipient.
    pub max_count_per_recipient: u64,
    /// Bytes held from one sender (all recipients).
    pub max_bytes_per_sender: u64,
    /// Envelopes held from one sender (all recipients).
    pub max_count_per_sender: u64,
}

impl Default for MailboxQuota {
    fn default() -> Self {
        Self {
            // 64 MiB / 4096 envelopes per recipient: a week of heavy chat, bounded.
            max_bytes_per_recipient: 64 * 1024 * 1024,
            max_count_per_recipient: 4096,
            // One sender may not fill a replica: 16 MiB / 1024 envelopes.
            max_bytes_per_sender: 16 * 1024 * 1024,
            max_count_per_sender: 1024,
        }
    }
}

/// An envelope to keep.
#[derive(Debug, Clone)]
pub struct NewMailboxEntry<'a> {
    /// Whose mailbox.
    pub recipient_uid: [u8; 32],
    /// Who sent it (for the per-sender quota).
    pub sender_uid: [u8; 32],
    /// The envelope's digest (dedupe, and what a delete receipt names).
    pub digest: [u8; 32],
    /// The sealed envelope.
    pub envelope: &'a [u8],
    /// When it may be dropped (unix ms).
    pub expires_at: i64,
}

/// What [`Store::mailbox_store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxStored {
    /// Newly stored (and committed).
    Stored,
    /// The same envelope was already held.
    Duplicate,
    /// The recipient already acknowledged this envelope (it is tombstoned): nothing was stored.
    AlreadyDelivered,
}

/// One held envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Its digest.
    pub digest: [u8; 32],
    /// The sealed envelope.
    pub envelope: Vec<u8>,
    /// When stored (unix ms).
    pub stored_at: i64,
    /// When it expires (unix ms).
    pub expires_at: i64,
}

/// One page of [`Store::mailbox_fetch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxPage {
    /// Envelopes, in storage order.
    pub entries: Vec<MailboxEntry>,
    /// Whether more unexpired envelopes follow (fetch again after deleting these).
    pub more: bool,
}

/// What the mailbox holds, for `rhizo mailbox`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxSummary {
    /// Envelopes held.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When the oldest was stored (unix ms).
    pub oldest: Option<i64>,
    /// Distinct recipients.
    pub recipients: u64,
    /// Tombstones of delivered envelopes (including expired ones not yet purged).
    pub tombstones: u64,
}

impl Store {
    /// Stores an envelope for `entry.recipient_uid` unless a quota would be exceeded, in one
    /// transaction that is committed before this returns (acknowledge only after `Ok`). Expired
    /// entries of the recipient and the sender are purged first, so they do not count. An
    /// envelope the recipient already acknowledged (an unexpired tombstone) is not stored again:
    /// [`MailboxStored::AlreadyDelivered`].
    pub fn mailbox_store(
        &mut self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<MailboxStored, StoreError> {
        const CTX: &str = "storing in the mailbox";
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context(CTX)?;
        tx.execute(
            "DELETE FROM mailbox WHERE expires_at <= ?1 AND (recipient_uid = ?2 OR sender_uid = ?3)",
            params![now, &entry.recipient_uid[..], &entry.sender_uid[..]],
        )
        .context(CTX)?;
        if let Some(known) = known_outcome(&tx, entry, now)? {
            return Ok(known);
        }
        check_quota(&tx, entry, quota, now)?;
        tx.execute(
            "INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, stored_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                &entry.recipient_uid[..],
                &entry.sender_uid[..],
                &entry.digest[..],
                entry.envelope,
                now,
                entry.expires_at
            ],
        )
        .context(CTX)?;
        tx.commit().context(CTX)?;
        Ok(MailboxStored::Stored)
    }

    /// Whether [`mailbox_store`](Self::mailbox_store) would refuse `entry` for a full quota,
    /// without writing anything (check it before costly work such as verifying a signature).
    /// Expired entries do not count; an envelope already held or already delivered passes
    /// (storing it is then a no-op). [`StoreError::QuotaExceeded`] when full.
    pub fn mailbox_check_quota(
        &self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<(), StoreError> {
        if known_outcome(&self.conn, entry, now)?.is_some() {
            return Ok(());
        }
        check_quota(&self.conn, entry, quota, now)
    }

    /// Unexpired envelopes held for `recipient`, in storage order (oldest first): at most
    /// `limit`, and no more than `max_bytes` of envelopes in all (`usize::MAX` for no cap).
    /// `more` tells whether further unexpired envelopes follow. The byte cap is strict: an
    /// envelope larger than `max_bytes` is never returned (the page is then empty with `more`
    /// set), so store nothing larger than the cap used to fetch.
    pub fn mailbox_fetch(
        &self,
        recipient: &[u8; 32],
        now: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailboxPage, StoreError> {
        const CTX: &str = "reading the mailbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT length(envelope), digest, envelope, stored_at, expires_at FROM mailbox
                 WHERE recipient_uid = ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3",
            )
            .context(CTX)?;
        // One row past the limit tells whether there is more.
        let probe = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let mut rows = stmt
            .query(params![&recipient[..], now, probe])
            .context(CTX)?;
        let mut page = MailboxPage::default();
        let mut bytes: usize = 0;
        while let Some(r) = rows.next().context(CTX)? {
            let size = usize::try_from(r.get::<_, i64>(0).context(CTX)?).unwrap_or(usize::MAX);
            if page.entries.len() >= limit || bytes.saturating_add(size) > max_bytes {
                page.more = true;
                break;
            }
            bytes += size;
            page.entries.push(MailboxEntry {
                digest: blob(r.get(1).context(CTX)?).context(CTX)?,
                envelope: r.get(2).context(CTX)?,
                stored_at: r.get(3).context(CTX)?,
                expires_at: r.get(4).context(CTX)?,
            });
        }
        Ok(page)
    }

    /// Unexpired envelopes held for `recipient`, in storage order, at most `limit` (no byte cap;
    /// e.g. for re-replication).
    pub fn mailbox_entries(
        &self,
        recipient: &[u8; 32],
        now: i64,
        limit: usize,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        Ok(self
            .mailbox_fetch(recipient, now, limit, usize::MAX)?
            .entries)
    }

    /// The recipients for whom unexpired envelopes are held, by UID.
    pub fn mailbox_recipients(&self, now: i64) -> Result<Vec<[u8; 32]>, StoreError> {
        const CTX: &str = "listing mailbox recipients";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT recipient_uid FROM mailbox WHERE expires_at > ?1
                 ORDER BY recipient_uid",
            )
            .context(CTX)?;
        stmt.query_map([now], |r| blob(r.get(0)?))
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Deletes what the recipient acknowledged (delete-on-receipt); returns how many envelopes
    /// went. Every digest named is tombstoned for `recipient`, so a late re-replication of it is
    /// refused ([`MailboxStored::AlreadyDelivered`]): until the deleted envelope's own expiry,
    /// or for [`TOMBSTONE_TTL_MS`] from `now` (unix ms) for a digest not held here.
    pub fn mailbox_delete(
        &mut self,
        recipient: &[u8; 32],
        digests: &[[u8; 32]],
        now: i64,
    ) -> Result<usize, StoreError> {
        const CTX: &str = "deleting from the mailbox";
        let tx = self.conn.transaction().context(CTX)?;
        let mut n = 0;
        for d in digests {
            let deleted: Option<i64> = tx
                .query_row(
                    "DELETE FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2
                     RETURNING expires_at",
                    params![&recipient[..], &d[..]],
                    |r| r.get(0),
                )
                .optional()
                .context(CTX)?;
            if deleted.is_some() {
                n += 1;
            }
            let expires_at = deleted.unwrap_or_else(|| now.saturating_add(TOMBSTONE_TTL_MS));
            tx.execute(
                "INSERT INTO mailbox_tombstones (recipient_uid, digest, expires_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (recipient_uid, digest)
                 DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                params![&recipient[..], &d[..], expires_at],
            )
            .context(CTX)?;
        }
        tx.commit().context(CTX)?;
        Ok(n)
    }

    /// Drops every expired envelope and expired tombstone; returns how many envelopes went.
    pub fn mailbox_purge_expired(&mut self, now: i64) -> Result<usize, StoreError> {
        const CTX: &str = "purging the mailbox";
        let tx = self.conn.transaction().context(CTX)?;
        let n = tx
            .execute("DELETE FROM mailbox WHERE expires_at <= ?1", [now])
            .context(CTX)?;
        tx.execute(
            "DELETE FROM mailbox_tombstones WHERE expires_at <= ?1",
            [now],
        )
        .context(CTX)?;
        tx.commit().context(CTX)?;
        Ok(n)
    }

    /// Count, bytes, oldest and recipients of what is held, and the tombstones kept.
    pub fn mailbox_summary(&self) -> Result<MailboxSummary, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(envelope)), 0), min(stored_at),
                        count(DISTINCT recipient_uid),
                        (SELECT count(*) FROM mailbox_tombstones)
                 FROM mailbox",
                [],
                |r| {
                    Ok(MailboxSummary {
                        count: r.get::<_, i64>(0)? as u64,
                        bytes: r.get::<_, i64>(1)? as u64,
                        oldest: r.get(2)?,
                        recipients: r.get::<_, i64>(3)? as u64,
                        tombstones: r.get::<_, i64>(4)? as u64,
                    })
                },
            )
            .context("summarising the mailbox")
    }

    /// The newest device-list version seen for `uid` by this mailbox (0 if none): a request
    /// carrying an older list is refused.
    pub fn mailbox_device_list_version(&self, uid: &[u8; 32]) -> Result<u64, StoreError> {
        let version: Option<i64> = self
            .conn
            .query_row(
                "SELECT version FROM mailbox_device_lists WHERE uid = ?1",
                [&uid[..]],
                |r| r.get(0),
            )
            .optional()
            .context("reading a device-list version")?;
        Ok(version.map_or(0, |v| v as u64))
    }

    /// Notes that a valid device list of `version` was seen for `uid` at `at` (unix ms); the
    /// stored version only grows (`updated_at` is the last time one was noted).
    pub fn note_mailbox_device_list_version(
        &mut self,
        uid: &[u8; 32],
        version: u64,
        at: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO mailbox_device_lists (uid, version, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (uid) DO UPDATE SET
                   version = max(version, excluded.version), updated_at = excluded.updated_at",
                params![&uid[..], i64::try_from(version).unwrap_or(i64::MAX), at],
            )
            .context("noting a device-list version")?;
        Ok(())
    }
}

/// What storing `entry` would be without writing: `Duplicate` if held, `AlreadyDelivered` if
/// tombstoned (unexpired), `None` if new.
fn known_outcome(
    conn: &Connection,
    entry: &NewMailboxEntry<'_>,
    now: i64,
) -> Result<Option<MailboxStored>, StoreError> {
    const CTX: &str = "checking the mailbox";
    let key = params![&entry.recipient_uid[..], &entry.digest[..], now];
    let tombstoned = conn
        .query_row(
            "SELECT 1 FROM mailbox_tombstones
             WHERE recipient_uid = ?1 AND digest = ?2 AND expires_at > ?3",
            key,
            |_| Ok(()),
        )
        .optional()
        .context(CTX)?
        .is_some();
    if tombstoned {
        return Ok(Some(MailboxStored::AlreadyDelivered));
    }
    let held = conn
        .query_row(
            "SELECT 1 FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2 AND expires_at > ?3",
            key,
            |_| Ok(()),
        )
        .optional()
        .context(CTX)?
        .is_some();
    Ok(held.then_some(MailboxStored::Duplicate))
}

/// [`StoreError::QuotaExceeded`] if adding `entry` would overflow a quota (unexpired entries
/// count).
fn check_quota(
    conn: &Connection,
    entry: &NewMailboxEntry<'_>,
    quota: &MailboxQuota,
    now: i64,
) -> Result<(), StoreError> {
    const CTX: &str = "checking the mailbox quota";
    let size = entry.envelope.len() as u64;
    let usage = |column: &str, key: &[u8; 32]| -> Result<(u64, u64), StoreError> {
        conn.query_row(
            &format!(
                "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM mailbox
                 WHERE {column} = ?1 AND expires_at > ?2"
            ),
            params![&key[..], now],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .context(CTX)
    };
    let (r_count, r_bytes) = usage("recipient_uid", &entry.recipient_uid)?;
    if r_count + 1 > quota.max_count_per_recipient || r_bytes + size > quota.max_bytes_per_recipient
    {
        return Err(StoreError::QuotaExceeded(format!(
            "the mailbox for this recipient is full ({r_count} envelopes, {r_bytes} bytes)"
        )));
    }
    let (s_count, s_bytes) = usage("sender_uid", &entry.sender_uid)?;
    if s_count + 1 > quota.max_count_per_sender || s_bytes + size > quota.max_bytes_per_sender {
        return Err(StoreError::QuotaExceeded(format!(
            "this node already holds {s_count} envelopes ({s_bytes} bytes) from you"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
                s.mailbox_store(&entry(1, 2, 3, b"env-a", 1000), &q, 10)
                    .unwrap(),
                MailboxStored::Stored
            );
            assert_eq!(
                s.mailbox_store(&entry(1, 2, 3, b"env-a", 1000), &q, 11)
                    .unwrap(),
                MailboxStored::Duplicate
            );
            assert_eq!(
                s.mailbox_store(&entry(1, 2, 4, b"env-b", 1000), &q, 12)
                    .unwrap(),
                MailboxStored::Stored
            );
            // Dropped without any shutdown step, as a crash right after the ack would.
        }
        let mut s = Store::open(&path).unwrap();
        let held = s.mailbox_fetch(&[1; 32], 20, 10, usize::MAX).unwrap();
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
            s.mailbox_fetch(&[9; 32], 20, 10, usize::MAX).unwrap(),
            MailboxPage::default()
        );
        assert_eq!(
            s.mailbox_summary().unwrap(),
            MailboxSummary {
                count: 2,
                bytes: 10,
                oldest: Some(10),
                recipients: 1,
                tombstones: 0,
            }
        );
        assert_eq!(
            s.mailbox_delete(&[1; 32], &[[3; 32], [7; 32]], 30).unwrap(),
            1
        );
        // Another recipient's receipt cannot delete it.
        assert_eq!(s.mailbox_delete(&[9; 32], &[[4; 32]], 30).unwrap(), 0);
        assert_eq!(s.mailbox_entries(&[1; 32], 20, 10).unwrap().len(), 1);
        assert_eq!(s.mailbox_summary().unwrap().tombstones, 3);
    }

    #[test]
    fn expired_entries_are_not_handed_out_and_are_purged() {
        let mut s = Store::open_in_memory().unwrap();
        let q = MailboxQuota::default();
        s.mailbox_store(&entry(1, 2, 3, b"short", 100), &q, 10)
            .unwrap();
        s.mailbox_store(&entry(1, 2, 4, b"long", 10_000), &q, 10)
            .unwrap();
        assert_eq!(
            s.mailbox_entries(&[1; 32], 100, 10).unwrap().len(),
            1,
            "expired at 100"
        );
        assert_eq!(s.mailbox_purge_expired(100).unwrap(), 1);
        assert_eq!(s.mailbox_summary().unwrap().count, 1);
    }

    #[test]
    fn full_quotas_are_errors_and_lose_nothing_already_stored() {
        let mut s = Store::open_in_memory().unwrap();
        let q = MailboxQuota {
            max_bytes_per_recipient: 10,
            max_count_per_recipient: 2,
            max_bytes_per_sender: 8,
            max_count_per_sender: 100,
        };
        s.mailbox_store(&entry(1, 2, 1, b"1234", 1000), &q, 0)
            .unwrap();
        s.mailbox_store(&entry(1, 3, 2, b"1234", 1000), &q, 0)
            .unwrap();
        // Recipient count full.
        let err = s
            .mailbox_store(&entry(1, 4, 3, b"1", 1000), &q, 0)
            .unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
        // Sender bytes full (sender 2 has 4 of 8 bytes; 5 more is too much).
        let err = s
            .mailbox_store(&entry(5, 2, 4, b"12345", 1000), &q, 0)
            .unwrap_err();
        assert!(err.to_string().contains("from you"), "{err}");
        assert_eq!(
            s.mailbox_summary().unwrap().count,
            2,
            "nothing stored was lost"
        );
        // The read-only check agrees, and lets through what is already held.
        let err = s
            .mailbox_check_quota(&entry(1, 4, 3, b"1", 1000), &q, 0)
            .unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
        s.mailbox_check_quota(&entry(1, 2, 1, b"1234", 1000), &q, 0)
            .unwrap();
        // Once expired, entries no longer count against the quota (for the check too).
        s.mailbox_check_quota(&entry(1, 4, 3, b"1", 5000), &q, 1000)
            .unwrap();
        s.mailbox_store(&entry(1, 4, 3, b"1", 5000), &q, 1000)
            .unwrap();
    }

    #[test]
    fn fetch_pages_by_count_and_bytes_in_storage_order() {
        let mut s = Store::open_in_memory().unwrap();
        let q = MailboxQuota::default();
        // Stored out of digest order: pages follow storage order.
        for (digest, env) in [(9, &b"aaaa"[..]), (2, b"bbbb"), (5, b"cccc")] {
            s.mailbox_store(&entry(1, 2, digest, env, 1000), &q, 0)
                .unwrap();
        }
        let digests = |p: &MailboxPage| p.entries.iter().map(|e| e.digest[0]).collect::<Vec<_>>();
        let page = s.mailbox_fetch(&[1; 32], 10, 2, usize::MAX).unwrap();
        assert_eq!((digests(&page), page.more), (vec![9, 2], true));
        let page = s.mailbox_fetch(&[1; 32], 10, 3, usize::MAX).unwrap();
        assert_eq!((digests(&page), page.more), (vec![9, 2, 5], false));
        // 8 bytes fit two envelopes of 4; 11 bytes still two.
        let page = s.mailbox_fetch(&[1; 32], 10, 10, 8).unwrap();
        assert_eq!((digests(&page), page.more), (vec![9, 2], true));
        let page = s.mailbox_fetch(&[1; 32], 10, 10, 11).unwrap();
        assert_eq!((digests(&page), page.more), (vec![9, 2], true));
        let page = s.mailbox_fetch(&[1; 32], 10, 10, 12).unwrap();
        assert_eq!((digests(&page), page.more), (vec![9, 2, 5], false));
        // The cap is strict, even for the first envelope.
        let page = s.mailbox_fetch(&[1; 32], 10, 10, 3).unwrap();
        assert_eq!((digests(&page), page.more), (vec![], true));
        let page = s.mailbox_fetch(&[1; 32], 10, 0, usize::MAX).unwrap();
        assert_eq!((digests(&page), page.more), (vec![], true));
        // Deleting the first page lets the next one through.
        s.mailbox_delete(&[1; 32], &[[9; 32], [2; 32]], 10).unwrap();
        let page = s.mailbox_fetch(&[1; 32], 10, 2, usize::MAX).unwrap();
        assert_eq!((digests(&page), page.more), (vec![5], false));
        assert_eq!(
            s.mailbox_entries(&[1; 32], 10, usize::MAX).unwrap().len(),
            1
        );
    }

    #[test]
    fn a_tombstone_refuses_a_late_re_store_until_it_expires() {
        let mut s = Store::open_in_memory().unwrap();
        let q = MailboxQuota::default();
        s.mailbox_store(&entry(1, 2, 3, b"env", 500), &q, 10)
            .unwrap();
        assert_eq!(s.mailbox_delete(&[1; 32], &[[3; 32]], 20).unwrap(), 1);
        // A replica that had not heard of the delete pushes it again: refused, nothing written.
        assert_eq!(
            s.mailbox_store(&entry(1, 2, 3, b"env", 500), &q, 30)
                .unwrap(),
            MailboxStored::AlreadyDelivered
        );
        s.mailbox_check_quota(&entry(1, 2, 3, b"env", 500), &q, 30)
            .unwrap();
        assert_eq!(s.mailbox_summary().unwrap().count, 0);
        // The same digest for another recipient is another envelope.
        assert_eq!(
            s.mailbox_store(&entry(4, 2, 3, b"env", 500), &q, 30)
                .unwrap(),
            MailboxStored::Stored
        );

        // A digest deleted before it ever arrived here is refused too, for a week.
        assert_eq!(s.mailbox_delete(&[1; 32], &[[7; 32]], 100).unwrap(), 0);
        assert_eq!(
            s.mailbox_store(&entry(1, 2, 7, b"late", 100 + TOMBSTONE_TTL_MS), &q, 200)
                .unwrap(),
            MailboxStored::AlreadyDelivered
        );
        // A second delete never shortens a tombstone.
        s.mailbox_delete(&[1; 32], &[[7; 32]], 0).unwrap();
        assert_eq!(s.mailbox_summary().unwrap().tombstones, 2);

        // The deleted envelope's tombstone lasts as long as the envelope would have (500).
        assert_eq!(
            s.mailbox_store(&entry(1, 2, 3, b"env", 600), &q, 500)
                .unwrap(),
            MailboxStored::Stored,
            "an expired tombstone no longer refuses"
        );
        assert_eq!(s.mailbox_purge_expired(500).unwrap(), 0);
        assert_eq!(s.mailbox_summary().unwrap().tombstones, 1);
        // (Recipient 4's envelope went with the store at 500: same sender, expired.)
        assert_eq!(s.mailbox_purge_expired(100 + TOMBSTONE_TTL_MS).unwrap(), 1);
        assert_eq!(s.mailbox_summary().unwrap().tombstones, 0);
        assert_eq!(s.mailbox_summary().unwrap().count, 0);
    }

    #[test]
    fn recipients_with_unexpired_entries() {
        let mut s = Store::open_in_memory().unwrap();
        let q = MailboxQuota::default();
        s.mailbox_store(&entry(5, 2, 1, b"a", 1000), &q, 0).unwrap();
        s.mailbox_store(&entry(5, 2, 2, b"b", 1000), &q, 0).unwrap();
        s.mailbox_store(&entry(3, 2, 3, b"c", 1000), &q, 0).unwrap();
        s.mailbox_store(&entry(4, 2, 4, b"d", 100), &q, 0).unwrap();
        assert_eq!(
            s.mailbox_recipients(50).unwrap(),
            vec![[3; 32], [4; 32], [5; 32]]
        );
        assert_eq!(
            s.mailbox_recipients(100).unwrap(),
            vec![[3; 32], [5; 32]],
            "4's only entry expired"
        );
        assert!(s.mailbox_recipients(1000).unwrap().is_empty());
    }

    #[test]
    fn a_device_list_version_only_grows() {
        let mut s = Store::open_in_memory().unwrap();
        assert_eq!(s.mailbox_device_list_version(&[1; 32]).unwrap(), 0);
        s.note_mailbox_device_list_version(&[1; 32], 3, 10).unwrap();
        assert_eq!(s.mailbox_device_list_version(&[1; 32]).unwrap(), 3);
        s.note_mailbox_device_list_version(&[1; 32], 2, 20).unwrap();
        assert_eq!(s.mailbox_device_list_version(&[1; 32]).unwrap(), 3);
        s.note_mailbox_device_list_version(&[1; 32], 7, 30).unwrap();
        assert_eq!(s.mailbox_device_list_version(&[1; 32]).unwrap(), 7);
        assert_eq!(s.mailbox_device_list_version(&[2; 32]).unwrap(), 0);
        s.note_mailbox_device_list_version(&[2; 32], u64::MAX, 40)
            .unwrap();
        assert_eq!(
            s.mailbox_device_list_version(&[2; 32]).unwrap(),
            i64::MAX as u64,
            "clamped, still the highest"
        );
    }
}
