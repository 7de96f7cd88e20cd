//! The mailbox a node keeps for others: sealed envelopes for users whose devices are offline.
//!
//! ```text
//!  store (quota check, dedupe, one transaction, committed before the ack)
//!     └─▶ mailbox row ──fetch (by recipient, unexpired)──▶ delete (by digest, on receipt)
//!                      └─ purge_expired(now) ─▶ gone
//! ```
//!
//! The envelopes are opaque here (already end-to-end encrypted and signed); rows are keyed by the
//! recipient's UID and the envelope's digest, so a retransmission is stored once. Times are unix
//! milliseconds passed in by the caller.

use rusqlite::{OptionalExtension, params};

use crate::{
    Store,
    error::{SqliteContext, StoreError},
};

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
}

impl Store {
    /// Stores an envelope for `entry.recipient_uid` unless a quota would be exceeded, in one
    /// transaction that is committed before this returns (acknowledge only after `Ok`). Expired
    /// entries of the recipient and the sender are purged first, so they do not count.
    pub fn mailbox_store(
        &mut self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<MailboxStored, StoreError> {
        const CTX: &str = "storing in the mailbox";
        let size = entry.envelope.len() as u64;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context(CTX)?;
        tx.execute(
            "DELETE FROM mailbox WHERE expires_at <= ?1 AND (recipient_uid = ?2 OR sender_uid = ?3)",
            params![now, &entry.recipient_uid[..], &entry.sender_uid[..]],
        )
        .context(CTX)?;
        let held: bool = tx
            .query_row(
                "SELECT 1 FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2",
                params![&entry.recipient_uid[..], &entry.digest[..]],
                |_| Ok(()),
            )
            .optional()
            .context(CTX)?
            .is_some();
        if held {
            return Ok(MailboxStored::Duplicate);
        }
        let usage = |column: &str, key: &[u8; 32]| -> Result<(u64, u64), StoreError> {
            tx.query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM mailbox
                     WHERE {column} = ?1"
                ),
                [&key[..]],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .context(CTX)
        };
        let (r_count, r_bytes) = usage("recipient_uid", &entry.recipient_uid)?;
        if r_count + 1 > quota.max_count_per_recipient
            || r_bytes + size > quota.max_bytes_per_recipient
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

    /// Unexpired envelopes held for `recipient`, oldest first, at most `limit`.
    pub fn mailbox_fetch(
        &self,
        recipient: &[u8; 32],
        now: i64,
        limit: usize,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        const CTX: &str = "reading the mailbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT digest, envelope, stored_at, expires_at FROM mailbox
                 WHERE recipient_uid = ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3",
            )
            .context(CTX)?;
        stmt.query_map(params![&recipient[..], now, limit as i64], |r| {
            let digest: Vec<u8> = r.get(0)?;
            Ok(MailboxEntry {
                digest: digest.try_into().unwrap_or([0; 32]),
                envelope: r.get(1)?,
                stored_at: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// Deletes what the recipient acknowledged (delete-on-receipt); returns how many went.
    pub fn mailbox_delete(
        &mut self,
        recipient: &[u8; 32],
        digests: &[[u8; 32]],
    ) -> Result<usize, StoreError> {
        const CTX: &str = "deleting from the mailbox";
        let tx = self.conn.transaction().context(CTX)?;
        let mut n = 0;
        for d in digests {
            n += tx
                .execute(
                    "DELETE FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2",
                    params![&recipient[..], &d[..]],
                )
                .context(CTX)?;
        }
        tx.commit().context(CTX)?;
        Ok(n)
    }

    /// Drops every expired envelope; returns how many.
    pub fn mailbox_purge_expired(&mut self, now: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM mailbox WHERE expires_at <= ?1", [now])
            .context("purging the mailbox")
    }

    /// Count, bytes, oldest and recipients of what is held.
    pub fn mailbox_summary(&self) -> Result<MailboxSummary, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(envelope)), 0), min(stored_at),
                        count(DISTINCT recipient_uid) FROM mailbox",
                [],
                |r| {
                    Ok(MailboxSummary {
                        count: r.get::<_, i64>(0)? as u64,
                        bytes: r.get::<_, i64>(1)? as u64,
                        oldest: r.get(2)?,
                        recipients: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .context("summarising the mailbox")
    }
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
        let held = s.mailbox_fetch(&[1; 32], 20, 10).unwrap();
        assert_eq!(
            held.iter().map(|e| e.envelope.clone()).collect::<Vec<_>>(),
            vec![b"env-a".to_vec(), b"env-b".to_vec()]
        );
        assert!(s.mailbox_fetch(&[9; 32], 20, 10).unwrap().is_empty());
        assert_eq!(
            s.mailbox_summary().unwrap(),
            MailboxSummary {
                count: 2,
                bytes: 10,
                oldest: Some(10),
                recipients: 1
            }
        );
        assert_eq!(s.mailbox_delete(&[1; 32], &[[3; 32], [7; 32]]).unwrap(), 1);
        // Another recipient's receipt cannot delete it.
        assert_eq!(s.mailbox_delete(&[9; 32], &[[4; 32]]).unwrap(), 0);
        assert_eq!(s.mailbox_fetch(&[1; 32], 20, 10).unwrap().len(), 1);
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
            s.mailbox_fetch(&[1; 32], 100, 10).unwrap().len(),
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
        // Once expired, entries no longer count against the quota.
        s.mailbox_store(&entry(1, 4, 3, b"1", 5000), &q, 1000)
            .unwrap();
    }
}
