//! The mailbox's quota and eviction arithmetic inside a store transaction: what one entry
//! would meet (its tombstone, the copy held, the usage counters), the node-wide cap and who is
//! evicted for it, the amortized purge of expired entries, the tombstone bound.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    MAILBOX_PURGE_LIMIT, MAX_EVICTIONS_PER_STORE, MAX_TOMBSTONES_PER_RECIPIENT, MailboxQuota,
    MailboxRefusal, NewMailboxEntry, QuotaLimit,
};
use crate::error::{SqliteContext, StoreError};
use crate::messaging::blob;

/// What the store path needs to know about one entry, read in one statement: its tombstone, the
/// copy already held (if any) and the usage counters of its recipient and sender.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// An unexpired tombstone names its digest for its recipient.
    pub(super) tombstoned: bool,
    /// The same (recipient, digest) is held, until then (expired or not).
    pub(super) held_until: Option<i64>,
    /// (envelopes, bytes) held for the recipient.
    pub(super) recipient: (u64, u64),
    /// (envelopes, bytes) held from the sender.
    pub(super) sender: (u64, u64),
}

impl Probe {
    pub(super) fn read(
        conn: &Connection,
        entry: &NewMailboxEntry<'_>,
        now: i64,
    ) -> Result<Self, StoreError> {
        const CTX: &str = "checking the mailbox";
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        conn.prepare_cached(
            "SELECT
               EXISTS (SELECT 1 FROM mailbox_tombstones
                       WHERE recipient_uid = ?1 AND digest = ?2 AND expires_at > ?4),
               (SELECT expires_at FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2),
               coalesce((SELECT envelopes FROM mailbox_usage_by_recipient
                         WHERE recipient_uid = ?1), 0),
               coalesce((SELECT bytes FROM mailbox_usage_by_recipient WHERE recipient_uid = ?1),
                        0),
               coalesce((SELECT envelopes FROM mailbox_usage_by_sender WHERE sender_uid = ?3), 0),
               coalesce((SELECT bytes FROM mailbox_usage_by_sender WHERE sender_uid = ?3), 0)",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    &entry.recipient_uid[..],
                    &entry.digest[..],
                    &entry.sender_uid[..],
                    now
                ],
                |r| {
                    Ok(Self {
                        tombstoned: r.get(0)?,
                        held_until: r.get(1)?,
                        recipient: (count(r.get(2)?), count(r.get(3)?)),
                        sender: (count(r.get(4)?), count(r.get(5)?)),
                    })
                },
            )
        })
        .context(CTX)
    }

    /// The quota `entry` would overflow, if any (the recipient's is checked first).
    pub(super) fn refusal(
        &self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
    ) -> Option<MailboxRefusal> {
        let size = u64::try_from(entry.envelope.len()).unwrap_or(u64::MAX);
        let over = |(count, bytes): (u64, u64), max_count: u64, max_bytes: u64| {
            count.saturating_add(1) > max_count || bytes.saturating_add(size) > max_bytes
        };
        let refuse = |limit, (held_count, held_bytes)| MailboxRefusal::QuotaExceeded {
            limit,
            held_count,
            held_bytes,
        };
        if over(
            self.recipient,
            quota.max_count_per_recipient,
            quota.max_bytes_per_recipient,
        ) {
            Some(refuse(QuotaLimit::Recipient, self.recipient))
        } else if over(
            self.sender,
            quota.max_count_per_sender,
            quota.max_bytes_per_sender,
        ) {
            Some(refuse(QuotaLimit::Sender, self.sender))
        } else {
            None
        }
    }
}

/// Deletes up to [`MAILBOX_PURGE_LIMIT`] expired entries (oldest expiry first, through the expiry
/// index; the usage triggers update the counters). Returns how many went and whether more
/// expired entries may remain.
pub(super) fn purge_some(conn: &Connection, now: i64) -> Result<(usize, bool), StoreError> {
    let limit = i64::try_from(MAILBOX_PURGE_LIMIT).unwrap_or(i64::MAX);
    let n = conn
        .prepare_cached(
            "DELETE FROM mailbox WHERE id IN
               (SELECT id FROM mailbox WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![now, limit]))
        .context("purging the mailbox")?;
    Ok((n, n >= MAILBOX_PURGE_LIMIT))
}

/// Whether any expired entry waits to be purged (one seek in the expiry index).
pub(super) fn any_expired(conn: &Connection, now: i64) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM mailbox WHERE expires_at <= ?1)")
        .and_then(|mut s| s.query_row([now], |r| r.get(0)))
        .context("checking the mailbox")
}

/// (envelopes, bytes) held in all (one row, kept by triggers).
pub(super) fn total_usage(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    conn.prepare_cached(
        "SELECT coalesce((SELECT envelopes FROM mailbox_usage_total WHERE id = 0), 0),
                coalesce((SELECT bytes FROM mailbox_usage_total WHERE id = 0), 0)",
    )
    .and_then(|mut s| s.query_row([], |r| Ok((count(r.get(0)?), count(r.get(1)?)))))
    .context("reading the mailbox's total usage")
}

/// Whether storing `size` more bytes in one more envelope would pass the node-wide cap.
pub(super) fn over_total((count, bytes): (u64, u64), size: u64, quota: &MailboxQuota) -> bool {
    count.saturating_add(1) > quota.max_total_count
        || bytes.saturating_add(size) > quota.max_total_bytes
}

/// The recipient holding the most: by envelopes when the count cap binds, else by bytes
/// (UID, envelopes, bytes). A scan of the usage table, run only at the node-wide cap.
pub(super) fn largest_recipient(
    conn: &Connection,
    by_count: bool,
) -> Result<Option<([u8; 32], u64, u64)>, StoreError> {
    const CTX: &str = "finding the largest mailbox";
    let sql = if by_count {
        "SELECT recipient_uid, envelopes, bytes FROM mailbox_usage_by_recipient
         ORDER BY envelopes DESC, bytes DESC LIMIT 1"
    } else {
        "SELECT recipient_uid, envelopes, bytes FROM mailbox_usage_by_recipient
         ORDER BY bytes DESC, envelopes DESC LIMIT 1"
    };
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let row: Option<(Vec<u8>, i64, i64)> = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .context(CTX)?;
    row.map(|(uid, c, b)| Ok((blob(uid).context(CTX)?, count(c), count(b))))
        .transpose()
}

/// Which recipient's oldest entry may be evicted for `entry`, if any: the largest one, and only
/// while it holds strictly more (in the binding dimension) than `entry`'s recipient would
/// with it (`own` = what that recipient holds now). Fairness: nobody is evicted to make room
/// for a recipient that would become the largest.
pub(super) fn eviction_victim(
    conn: &Connection,
    entry: &NewMailboxEntry<'_>,
    own: (u64, u64),
    total: (u64, u64),
    quota: &MailboxQuota,
) -> Result<Option<[u8; 32]>, StoreError> {
    let size = u64::try_from(entry.envelope.len()).unwrap_or(u64::MAX);
    let by_count = total.0.saturating_add(1) > quota.max_total_count;
    let Some((uid, count, bytes)) = largest_recipient(conn, by_count)? else {
        return Ok(None);
    };
    let larger = if by_count {
        count > own.0.saturating_add(1)
    } else {
        bytes > own.1.saturating_add(size)
    };
    Ok((larger && uid != entry.recipient_uid).then_some(uid))
}

/// The node-wide refusal `entry` would get without writing anything: over the cap with no
/// larger recipient to evict from. Expired entries are the caller's concern.
pub(super) fn node_refusal(
    conn: &Connection,
    entry: &NewMailboxEntry<'_>,
    own: (u64, u64),
    quota: &MailboxQuota,
) -> Result<Option<MailboxRefusal>, StoreError> {
    let size = u64::try_from(entry.envelope.len()).unwrap_or(u64::MAX);
    let total = total_usage(conn)?;
    if !over_total(total, size, quota) || eviction_victim(conn, entry, own, total, quota)?.is_some()
    {
        return Ok(None);
    }
    Ok(Some(MailboxRefusal::QuotaExceeded {
        limit: QuotaLimit::Node,
        held_count: total.0,
        held_bytes: total.1,
    }))
}

/// Makes room for `entry` under the node-wide cap, inside the store's transaction: expired
/// entries go first, then, one at a time, the oldest entry of the largest recipient (see
/// [`eviction_victim`]), at most [`MAX_EVICTIONS_PER_STORE`]. `Some` refusal when there is
/// still no room (nothing was evicted in vain: the transaction keeps what it did, which only
/// ever moves the node towards fair shares).
pub(super) fn make_room(
    conn: &Connection,
    entry: &NewMailboxEntry<'_>,
    own: (u64, u64),
    quota: &MailboxQuota,
    now: i64,
) -> Result<Option<MailboxRefusal>, StoreError> {
    let size = u64::try_from(entry.envelope.len()).unwrap_or(u64::MAX);
    let mut total = total_usage(conn)?;
    if !over_total(total, size, quota) {
        return Ok(None);
    }
    purge_some(conn, now)?;
    total = total_usage(conn)?;
    for _ in 0..MAX_EVICTIONS_PER_STORE {
        if !over_total(total, size, quota) {
            return Ok(None);
        }
        let Some(victim) = eviction_victim(conn, entry, own, total, quota)? else {
            break;
        };
        conn.prepare_cached(
            "DELETE FROM mailbox WHERE id =
               (SELECT id FROM mailbox WHERE recipient_uid = ?1 ORDER BY id LIMIT 1)",
        )
        .and_then(|mut s| s.execute([&victim[..]]))
        .context("evicting from the mailbox")?;
        total = total_usage(conn)?;
    }
    if !over_total(total, size, quota) {
        return Ok(None);
    }
    Ok(Some(MailboxRefusal::QuotaExceeded {
        limit: QuotaLimit::Node,
        held_count: total.0,
        held_bytes: total.1,
    }))
}

/// Keeps at most [`MAX_TOMBSTONES_PER_RECIPIENT`] tombstones for `recipient`: past it, those
/// expiring first go.
pub(super) fn prune_tombstones(conn: &Connection, recipient: &[u8; 32]) -> Result<(), StoreError> {
    const CTX: &str = "pruning mailbox tombstones";
    let held: i64 = conn
        .prepare_cached("SELECT count(*) FROM mailbox_tombstones WHERE recipient_uid = ?1")
        .and_then(|mut s| s.query_row([&recipient[..]], |r| r.get(0)))
        .context(CTX)?;
    let excess =
        held.saturating_sub(i64::try_from(MAX_TOMBSTONES_PER_RECIPIENT).unwrap_or(i64::MAX));
    if excess > 0 {
        conn.prepare_cached(
            "DELETE FROM mailbox_tombstones WHERE recipient_uid = ?1 AND digest IN
               (SELECT digest FROM mailbox_tombstones WHERE recipient_uid = ?1
                ORDER BY expires_at LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![&recipient[..], excess]))
        .context(CTX)?;
    }
    Ok(())
}
