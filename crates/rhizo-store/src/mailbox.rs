//! The mailbox a node keeps for others: sealed envelopes for users whose devices are offline.
//!
//! ```text
//!  store_batch(entries) ── one transaction, one commit (one fsync) for the whole batch:
//!     purge expired (at most every MAILBOX_PURGE_INTERVAL_MS, bounded)
//!     per entry: tombstone? ─▶ already held? ─▶ quota (usage counters, O(1))
//!        ─▶ node-wide cap (full: purge expired, then evict from the largest recipient) ─▶ INSERT
//!     └─▶ mailbox row ──fetch (by recipient, unexpired, after a cursor)──▶ delete (by digest,
//!         │                                                          on receipt)
//!         │                                                          └─▶ tombstone (refuses a
//!         │                                                               late re-store; at
//!         │                                                               most 8192 per UID)
//!         └─ triggers keep mailbox_usage_by_recipient / _by_sender / _total exact on every
//!            insert and delete (stores, purges, evictions, deletes on receipt)
//!  mailbox_device_lists: newest device-list version seen per UID (a stale list is refused)
//!     and its devices; at most MAX_DEVICE_LIST_ROWS, forgotten after DEVICE_LIST_MEMORY_MS
//!  several devices (`devices`): an entry is addressed to the devices of the newest list
//!     (`targets`); each device's acknowledgement is kept (`mailbox_device_acks`) until the
//!     last one it waits for deletes it
//! ```
//!
//! The envelopes are opaque here (already end-to-end encrypted and signed); rows are keyed by the
//! recipient's UID and the envelope's digest, so a retransmission is stored once. Times are unix
//! milliseconds passed in by the caller.
//!
//! Quotas count what is held, read from the usage counters. Expired entries are purged on the
//! store path at most every [`MAILBOX_PURGE_INTERVAL_MS`] (through the expiry index: an empty
//! range in steady state) rather than on every store, and again before a quota refusal, so an
//! entry refused for a full quota is refused on unexpired entries only. Reads never return
//! expired entries, purged or not.

use rusqlite::{OptionalExtension, params};

use crate::{
    error::{SqliteContext, StoreError},
    messaging::blob,
    tx::{Atomic, Reader, Tx},
};

mod devices;
mod quota;

pub use devices::{MAX_TARGET_DEVICES, MailboxAcked};

use quota::{Probe, any_expired, make_room, node_refusal, prune_tombstones, purge_some};

/// How long a tombstone lasts for a digest deleted without being held here (unix ms): a week,
/// the longest any replica keeps an envelope.
pub const TOMBSTONE_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// How often (unix ms) the store path purges expired entries: a purge through the expiry index
/// is cheap, but not free, and nothing depends on it being sooner (quota refusals purge first).
pub const MAILBOX_PURGE_INTERVAL_MS: i64 = 60 * 1000;

/// Most expired entries one purge on the store path deletes, so a backlog (a node back after a
/// week offline) cannot stall one batch of stores; the rest go in the following batches.
pub const MAILBOX_PURGE_LIMIT: usize = 4096;

/// Most tombstones kept per recipient: twice what a recipient's quota holds, so every entry
/// deleted from a full mailbox keeps its tombstone; past it, the ones expiring first go.
pub const MAX_TOMBSTONES_PER_RECIPIENT: u64 = 8192;

/// Most `mailbox_device_lists` rows (one per UID): anyone can make UIDs, so the oldest noted
/// go first past this.
pub const MAX_DEVICE_LIST_ROWS: u64 = 16_384;

/// How long a device-list version is remembered after it was last noted: longer than any
/// device-list record lives (7 days), so an older list has expired by the time it is forgotten.
pub const DEVICE_LIST_MEMORY_MS: i64 = 8 * 24 * 60 * 60 * 1000;

/// Most entries one store may evict to make room under the node-wide cap; past it the store is
/// refused (a burst of evictions never stalls one transaction).
pub const MAX_EVICTIONS_PER_STORE: usize = 64;

/// Limits on what one node holds, per recipient, per sender and in all: a full per-recipient or
/// per-sender quota is an error to the sender, never a silent drop of what is already stored;
/// at the node-wide cap, expired entries go first, then the oldest entries of the recipient
/// holding the most (only while it holds more than the storing recipient would).
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
    /// Bytes of envelopes held in all.
    pub max_total_bytes: u64,
    /// Envelopes held in all.
    pub max_total_count: u64,
}

/// Default of [`MailboxQuota::max_total_bytes`]: 1 GiB (16 full recipients).
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Default of [`MailboxQuota::max_total_count`]: 131 072 envelopes (32 full recipients).
pub const DEFAULT_MAX_TOTAL_COUNT: u64 = 131_072;

impl Default for MailboxQuota {
    fn default() -> Self {
        Self {
            // 64 MiB / 4096 envelopes per recipient: a week of heavy chat, bounded.
            max_bytes_per_recipient: 64 * 1024 * 1024,
            max_count_per_recipient: 4096,
            // One sender may not fill a replica: 16 MiB / 1024 envelopes.
            max_bytes_per_sender: 16 * 1024 * 1024,
            max_count_per_sender: 1024,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_total_count: DEFAULT_MAX_TOTAL_COUNT,
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
    /// The sender device's encoded certificate, checked by the caller (kept for
    /// re-replication; may be empty).
    pub sender_cert: &'a [u8],
}

/// What [`mailbox_store`](crate::Tx::mailbox_store) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxStored {
    /// Newly stored (and committed).
    Stored,
    /// The same envelope was already held.
    Duplicate,
    /// The recipient already acknowledged this envelope (it is tombstoned): nothing was stored.
    AlreadyDelivered,
}

/// Which quota refused an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// What is held for the recipient ([`MailboxQuota::max_count_per_recipient`],
    /// [`MailboxQuota::max_bytes_per_recipient`]).
    Recipient,
    /// What is held from the sender ([`MailboxQuota::max_count_per_sender`],
    /// [`MailboxQuota::max_bytes_per_sender`]).
    Sender,
    /// What the node holds in all ([`MailboxQuota::max_total_count`],
    /// [`MailboxQuota::max_total_bytes`]), with no larger recipient left to evict from.
    Node,
}

/// Why one entry of [`mailbox_store_batch`](crate::Tx::mailbox_store_batch) was not stored (the others were not
/// affected). Its `Display` is the message for the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailboxRefusal {
    /// A quota is full: nothing already held was touched.
    QuotaExceeded {
        /// Which one.
        limit: QuotaLimit,
        /// Unexpired envelopes held under that limit.
        held_count: u64,
        /// Their bytes.
        held_bytes: u64,
    },
}

impl std::fmt::Display for MailboxRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::QuotaExceeded {
                limit: QuotaLimit::Recipient,
                held_count,
                held_bytes,
            } => write!(
                f,
                "the mailbox for this recipient is full ({held_count} envelopes, {held_bytes} \
                 bytes)"
            ),
            Self::QuotaExceeded {
                limit: QuotaLimit::Sender,
                held_count,
                held_bytes,
            } => write!(
                f,
                "this node already holds {held_count} envelopes ({held_bytes} bytes) from you"
            ),
            Self::QuotaExceeded {
                limit: QuotaLimit::Node,
                held_count,
                held_bytes,
            } => write!(
                f,
                "this node's mailbox is full ({held_count} envelopes, {held_bytes} bytes): try \
                 another replica"
            ),
        }
    }
}

impl From<MailboxRefusal> for StoreError {
    fn from(refusal: MailboxRefusal) -> Self {
        Self::QuotaExceeded(refusal.to_string())
    }
}

/// What one entry of [`mailbox_store_batch`](crate::Tx::mailbox_store_batch) came to.
pub type MailboxOutcome = Result<MailboxStored, MailboxRefusal>;

/// One held envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Its position in storage order (a fetch cursor).
    pub id: i64,
    /// Its digest.
    pub digest: [u8; 32],
    /// The sealed envelope.
    pub envelope: Vec<u8>,
    /// When stored (unix ms).
    pub stored_at: i64,
    /// When it expires (unix ms).
    pub expires_at: i64,
    /// The sender device's certificate, as stored with it (empty if none was).
    pub sender_cert: Vec<u8>,
}

/// One page of [`mailbox_fetch`](crate::Reader::mailbox_fetch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxPage {
    /// Envelopes, in storage order.
    pub entries: Vec<MailboxEntry>,
    /// Whether more unexpired envelopes follow (fetch again after deleting these, or from
    /// `next_cursor`).
    pub more: bool,
    /// The position of the last entry returned (the cursor given when none was).
    pub next_cursor: i64,
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

impl Reader<'_> {
    /// Whether [`mailbox_store`](crate::Tx::mailbox_store) would refuse `entry` for a full quota,
    /// without writing anything (check it before costly work such as verifying a signature).
    /// An envelope already held or already delivered passes (storing it is then a no-op). Reads
    /// the usage counters; when they say full but expired entries wait to be purged, it passes
    /// too (the store purges them, then decides). [`StoreError::QuotaExceeded`] when full.
    pub fn mailbox_check_quota(
        &self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<(), StoreError> {
        let probe = Probe::read(self.conn, entry, now)?;
        if probe.tombstoned || probe.held_until.is_some_and(|at| at > now) {
            return Ok(());
        }
        let refusal = match probe.refusal(entry, quota) {
            None => node_refusal(self.conn, entry, probe.recipient, quota)?,
            some => some,
        };
        match refusal {
            None => Ok(()),
            Some(_) if any_expired(self.conn, now)? => Ok(()),
            Some(refusal) => Err(refusal.into()),
        }
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
        self.mailbox_fetch_after(recipient, now, 0, limit, max_bytes)
    }

    /// [`mailbox_fetch`](Self::mailbox_fetch) of the entries after position `cursor` (an
    /// earlier page's `next_cursor`; 0 for the oldest), so a recipient can page past entries
    /// it leaves here.
    pub fn mailbox_fetch_after(
        &self,
        recipient: &[u8; 32],
        now: i64,
        cursor: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailboxPage, StoreError> {
        self.mailbox_page(recipient, &[], now, cursor, limit, max_bytes)
    }

    /// [`mailbox_fetch_after`](Self::mailbox_fetch_after) leaving out the entries `device`
    /// (32 bytes; empty for none) already acknowledged.
    fn mailbox_page(
        &self,
        recipient: &[u8; 32],
        device: &[u8],
        now: i64,
        cursor: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailboxPage, StoreError> {
        const CTX: &str = "reading the mailbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT length(envelope), digest, envelope, stored_at, expires_at, id,
                        coalesce(sender_cert, x'')
                 FROM mailbox
                 WHERE recipient_uid = ?1 AND id > ?4 AND expires_at > ?2
                   AND NOT EXISTS (SELECT 1 FROM mailbox_device_acks
                                   WHERE entry_id = mailbox.id AND device = ?5)
                 ORDER BY id LIMIT ?3",
            )
            .context(CTX)?;
        // One row past the limit tells whether there is more.
        let probe = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let mut rows = stmt
            .query(params![&recipient[..], now, probe, cursor, device])
            .context(CTX)?;
        let mut page = MailboxPage {
            next_cursor: cursor,
            ..MailboxPage::default()
        };
        let mut bytes: usize = 0;
        while let Some(r) = rows.next().context(CTX)? {
            let size = usize::try_from(r.get::<_, i64>(0).context(CTX)?).unwrap_or(usize::MAX);
            if page.entries.len() >= limit || bytes.saturating_add(size) > max_bytes {
                page.more = true;
                break;
            }
            bytes += size;
            let id = r.get(5).context(CTX)?;
            page.next_cursor = id;
            page.entries.push(MailboxEntry {
                id,
                digest: blob(r.get(1).context(CTX)?).context(CTX)?,
                envelope: r.get(2).context(CTX)?,
                stored_at: r.get(3).context(CTX)?,
                expires_at: r.get(4).context(CTX)?,
                sender_cert: r.get(6).context(CTX)?,
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
}

impl Tx<'_> {
    /// Stores one envelope: [`mailbox_store_batch`](Self::mailbox_store_batch) with one entry,
    /// committed before this returns (acknowledge only after `Ok`). A full quota is
    /// [`StoreError::QuotaExceeded`]; an envelope the recipient already acknowledged (an
    /// unexpired tombstone) is not stored again: [`MailboxStored::AlreadyDelivered`].
    pub fn mailbox_store(
        &mut self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<MailboxStored, StoreError> {
        let outcome = self
            .mailbox_store_batch(std::slice::from_ref(entry), quota, now)?
            .pop()
            .ok_or(StoreError::InvalidInput(
                "a one-entry batch came back without an outcome".into(),
            ))?;
        Ok(outcome?)
    }

    /// Stores `entries` in ONE transaction with one commit (group commit: one `fsync` for the
    /// whole batch), committed before this returns: acknowledge each entry only after `Ok`.
    /// Each entry gets its own outcome, in order:
    ///
    /// - [`MailboxStored::AlreadyDelivered`] if its digest is tombstoned for its recipient
    ///   (unexpired): nothing stored;
    /// - [`MailboxStored::Duplicate`] if the same envelope is held (unexpired), including an
    ///   earlier entry of this batch: stored once;
    /// - [`MailboxRefusal::QuotaExceeded`] if it would overflow the recipient's or the sender's
    ///   quota, counting what is held (earlier entries of the batch included) — after purging
    ///   expired entries, so only unexpired ones count; the other entries are not affected;
    /// - [`MailboxStored::Stored`] otherwise.
    ///
    /// `Err` (SQLite failed) means nothing of the batch was stored. Expired entries are purged
    /// first when [`MAILBOX_PURGE_INTERVAL_MS`] has passed since the last purge (at most
    /// [`MAILBOX_PURGE_LIMIT`] of them). The caller bounds the batch (the node commits at most
    /// 64 at a time).
    pub fn mailbox_store_batch(
        &mut self,
        entries: &[NewMailboxEntry<'_>],
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<Vec<MailboxOutcome>, StoreError> {
        const CTX: &str = "storing in the mailbox";
        let mut purge_due = *self.mailbox_purge_due;
        let tx = Atomic::begin(self.conn).context(CTX)?;
        if now >= purge_due {
            let (_, more) = purge_some(&tx, now)?;
            purge_due = if more {
                now
            } else {
                now.saturating_add(MAILBOX_PURGE_INTERVAL_MS)
            };
        }
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut probe = Probe::read(&tx, entry, now)?;
            if probe.tombstoned {
                outcomes.push(Ok(MailboxStored::AlreadyDelivered));
                continue;
            }
            match probe.held_until {
                Some(expires_at) if expires_at > now => {
                    outcomes.push(Ok(MailboxStored::Duplicate));
                    continue;
                }
                Some(_) => {
                    // Held but expired (not purged yet): replaced by the new copy.
                    tx.prepare_cached(
                        "DELETE FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2",
                    )
                    .and_then(|mut s| {
                        s.execute(params![&entry.recipient_uid[..], &entry.digest[..]])
                    })
                    .context(CTX)?;
                    probe = Probe::read(&tx, entry, now)?;
                }
                None => {}
            }
            let mut refusal = probe.refusal(entry, quota);
            if refusal.is_some() {
                // Expired entries still count until purged: purge, then decide on the rest.
                let (purged, more) = purge_some(&tx, now)?;
                if more {
                    purge_due = now;
                }
                if purged > 0 {
                    refusal = Probe::read(&tx, entry, now)?.refusal(entry, quota);
                }
            }
            if let Some(refusal) = refusal {
                outcomes.push(Err(refusal));
                continue;
            }
            if let Some(refusal) = make_room(&tx, entry, probe.recipient, quota, now)? {
                outcomes.push(Err(refusal));
                continue;
            }
            insert_entry(&tx, entry, now).context(CTX)?;
            outcomes.push(Ok(MailboxStored::Stored));
        }
        tx.commit().context(CTX)?;
        *self.mailbox_purge_due = purge_due;
        Ok(outcomes)
    }

    /// Deletes what the recipient acknowledged (delete-on-receipt); returns how many unexpired
    /// envelopes went. Every digest named is tombstoned for `recipient`, so a late
    /// re-replication of it is refused ([`MailboxStored::AlreadyDelivered`]): until the deleted
    /// envelope's own expiry, or for [`TOMBSTONE_TTL_MS`] from `now` (unix ms) for a digest not
    /// held here (or held but expired: the same whether a purge removed it already or not).
    pub fn mailbox_delete(
        &mut self,
        recipient: &[u8; 32],
        digests: &[[u8; 32]],
        now: i64,
    ) -> Result<usize, StoreError> {
        const CTX: &str = "deleting from the mailbox";
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let mut n = 0;
        {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2
                     RETURNING expires_at",
                )
                .context(CTX)?;
            let mut tombstone = tx
                .prepare_cached(
                    "INSERT INTO mailbox_tombstones (recipient_uid, digest, expires_at)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (recipient_uid, digest)
                     DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                )
                .context(CTX)?;
            for d in digests {
                let deleted: Option<i64> = delete
                    .query_row(params![&recipient[..], &d[..]], |r| r.get(0))
                    .optional()
                    .context(CTX)?;
                // An expired entry counts as not held (whether a purge got to it yet or not).
                let expires_at = match deleted {
                    Some(expires_at) if expires_at > now => {
                        n += 1;
                        expires_at
                    }
                    _ => now.saturating_add(TOMBSTONE_TTL_MS),
                };
                tombstone
                    .execute(params![&recipient[..], &d[..], expires_at])
                    .context(CTX)?;
            }
        }
        prune_tombstones(&tx, recipient)?;
        tx.commit().context(CTX)?;
        Ok(n)
    }

    /// Deletes the envelopes the recipient refused for good, but only those held here
    /// (unexpired): a replica verified each one's signature when it stored it, so a rejection
    /// only ever removes a verified envelope. Each one deleted is tombstoned until its own
    /// expiry; a digest not held is ignored (no tombstone), so a rejection cannot block an
    /// envelope this replica never saw. Returns how many went.
    pub fn mailbox_delete_held(
        &mut self,
        recipient: &[u8; 32],
        digests: &[[u8; 32]],
        now: i64,
    ) -> Result<usize, StoreError> {
        const CTX: &str = "deleting rejected envelopes from the mailbox";
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let mut n = 0;
        {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2
                     AND expires_at > ?3 RETURNING expires_at",
                )
                .context(CTX)?;
            let mut tombstone = tx
                .prepare_cached(
                    "INSERT INTO mailbox_tombstones (recipient_uid, digest, expires_at)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (recipient_uid, digest)
                     DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                )
                .context(CTX)?;
            for d in digests {
                let deleted: Option<i64> = delete
                    .query_row(params![&recipient[..], &d[..], now], |r| r.get(0))
                    .optional()
                    .context(CTX)?;
                if let Some(expires_at) = deleted {
                    n += 1;
                    tombstone
                        .execute(params![&recipient[..], &d[..], expires_at])
                        .context(CTX)?;
                }
            }
        }
        prune_tombstones(&tx, recipient)?;
        tx.commit().context(CTX)?;
        Ok(n)
    }

    /// Drops every expired envelope and expired tombstone; returns how many envelopes went.
    pub fn mailbox_purge_expired(&mut self, now: i64) -> Result<usize, StoreError> {
        const CTX: &str = "purging the mailbox";
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let n = tx
            .execute("DELETE FROM mailbox WHERE expires_at <= ?1", [now])
            .context(CTX)?;
        tx.execute(
            "DELETE FROM mailbox_tombstones WHERE expires_at <= ?1",
            [now],
        )
        .context(CTX)?;
        tx.execute(
            "DELETE FROM mailbox_device_lists WHERE updated_at <= ?1",
            [now.saturating_sub(DEVICE_LIST_MEMORY_MS)],
        )
        .context(CTX)?;
        tx.commit().context(CTX)?;
        Ok(n)
    }

    /// Notes that a valid device list of `version` was seen for `uid` at `at` (unix ms); the
    /// stored version only grows (`updated_at` is the last time one was noted). Its devices
    /// are not kept: see [`note_mailbox_device_list`](Self::note_mailbox_device_list).
    pub fn note_mailbox_device_list_version(
        &mut self,
        uid: &[u8; 32],
        version: u64,
        at: i64,
    ) -> Result<(), StoreError> {
        self.note_device_list_bounded(uid, version, None, at, MAX_DEVICE_LIST_ROWS)
    }

    /// Notes that a valid device list of `version` listing `devices` (at most
    /// [`MAX_TARGET_DEVICES`]) was seen for `uid` at `at` (unix ms): the version only grows,
    /// and the devices are those of the newest version noted. New entries for `uid` are
    /// addressed to them.
    pub fn note_mailbox_device_list(
        &mut self,
        uid: &[u8; 32],
        version: u64,
        devices: &[[u8; 32]],
        at: i64,
    ) -> Result<(), StoreError> {
        let devices = devices::encode_devices(devices)?;
        self.note_device_list_bounded(uid, version, Some(&devices), at, MAX_DEVICE_LIST_ROWS)
    }
}

impl Tx<'_> {
    /// [`note_mailbox_device_list_version`](Self::note_mailbox_device_list_version) keeping at
    /// most `max_rows` rows.
    fn note_device_list_bounded(
        &mut self,
        uid: &[u8; 32],
        version: u64,
        devices: Option<&[u8]>,
        at: i64,
        max_rows: u64,
    ) -> Result<(), StoreError> {
        const CTX: &str = "noting a device-list version";
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let known: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM mailbox_device_lists WHERE uid = ?1)")
            .and_then(|mut s| s.query_row([&uid[..]], |r| r.get(0)))
            .context(CTX)?;
        tx.prepare_cached(
            "INSERT INTO mailbox_device_lists (uid, version, updated_at, devices)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uid) DO UPDATE SET
               version = max(version, excluded.version),
               updated_at = max(updated_at, excluded.updated_at),
               devices = CASE
                 WHEN excluded.devices IS NOT NULL AND excluded.version >= version
                 THEN excluded.devices ELSE devices END",
        )
        .and_then(|mut s| {
            s.execute(params![
                &uid[..],
                i64::try_from(version).unwrap_or(i64::MAX),
                at,
                devices
            ])
        })
        .context(CTX)?;
        // Bounded: past `max_rows` the least recently noted go (never this one). Counted only
        // when a row was added.
        let rows: i64 = if known {
            0
        } else {
            tx.prepare_cached("SELECT count(*) FROM mailbox_device_lists")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .context(CTX)?
        };
        let excess = rows.saturating_sub(i64::try_from(max_rows).unwrap_or(i64::MAX));
        if excess > 0 {
            tx.prepare_cached(
                "DELETE FROM mailbox_device_lists WHERE uid IN
                   (SELECT uid FROM mailbox_device_lists WHERE uid != ?1
                    ORDER BY updated_at LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![&uid[..], excess]))
            .context(CTX)?;
        }
        tx.commit().context(CTX)?;
        Ok(())
    }
}

/// Inserts `entry`, stored at `now` (the checks were made).
fn insert_entry(
    conn: &rusqlite::Connection,
    entry: &NewMailboxEntry<'_>,
    now: i64,
) -> rusqlite::Result<()> {
    // Addressed to the devices of the newest device list seen for the recipient (none known:
    // NULL, fixed at the first acknowledgement; see `devices`).
    conn.prepare_cached(
        "INSERT INTO mailbox
           (recipient_uid, sender_uid, digest, envelope, stored_at, expires_at, sender_cert,
            targets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 (SELECT devices FROM mailbox_device_lists WHERE uid = ?1))",
    )?
    .execute(params![
        &entry.recipient_uid[..],
        &entry.sender_uid[..],
        &entry.digest[..],
        entry.envelope,
        now,
        entry.expires_at,
        (!entry.sender_cert.is_empty()).then_some(entry.sender_cert),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests;
