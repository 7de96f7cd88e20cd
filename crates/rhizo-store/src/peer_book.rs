//! The peer book: peers we have heard of, their addresses, and how dialling
//! them went, so a restarted node can reconnect without the bootstrap nodes.
//!
//! ```text
//!   identify / kad / mdns / bootstrap / manual / exchange
//!        │ upsert_peer(id, addrs, source, now)
//!        ▼
//!   peers ──1:n──► peer_addrs   (newest MAX_ADDRS_PER_PEER kept; cascade delete)
//!        │  ≤ MAX_PEERS rows: evict most failures, then oldest last_seen
//!        ▼
//!   peers_for_dial(limit): fewest failures first, then most recently seen
//!        │ dial → record_dial_success / record_dial_failure
//!        │ evict_failing_peers(n): forget peers that failed n dials in a row
//!        ▼
//!   set_peer_reputation / peer_reputations: the abuse score and reputation ban (unix ms) of
//!   each peer, persisted across restarts
//! ```
//!
//! A peer may get a reputation before we ever see it at an address (it connected to us). Its
//! row is then a placeholder: source `identify`, no addresses, `first_seen = last_seen = 0`
//! ("never seen"); the first [`upsert_peer`](crate::Tx::upsert_peer) fills in the real source and times.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Rows, ToSql};

use crate::Store;
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Atomic, Reader, Tx};

/// Most addresses remembered per peer: a peer rarely has more real ones,
/// and a peer that advertises hundreds must not bloat the book.
pub const MAX_ADDRS_PER_PEER: usize = 16;

/// Most peers in the book: plenty to rejoin the network, yet it bounds the
/// file and the cost of `list_peers` against a flood of fake peer ids.
pub const MAX_PEERS: usize = 10_000;

/// Longest peer id accepted: a base58 libp2p peer id is about 52 characters;
/// anything far longer is not one.
pub const MAX_PEER_ID_BYTES: usize = 128;

/// Longest address kept: real multiaddrs, even relayed ones, are a few
/// hundred bytes; longer ones are junk from a peer and are dropped.
pub const MAX_ADDR_BYTES: usize = 1024;

/// How the peer book is bounded. Always the constants above, except in
/// tests, which shrink them to exercise eviction cheaply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerBookLimits {
    max_peers: usize,
    max_addrs_per_peer: usize,
}

impl Default for PeerBookLimits {
    fn default() -> Self {
        Self {
            max_peers: MAX_PEERS,
            max_addrs_per_peer: MAX_ADDRS_PER_PEER,
        }
    }
}

/// Where we first learned of a peer. Stored as lowercase text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSource {
    /// A configured bootstrap node.
    Bootstrap,
    /// Told by the peer itself through libp2p identify.
    Identify,
    /// Found in the Kademlia DHT.
    Kademlia,
    /// Found on the local network through mDNS.
    Mdns,
    /// Added by the user.
    Manual,
    /// Learned from another node's peer-book sample (peer exchange).
    Exchange,
}

impl PeerSource {
    /// Every source, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Bootstrap,
        Self::Identify,
        Self::Kademlia,
        Self::Mdns,
        Self::Manual,
        Self::Exchange,
    ];

    /// The lowercase name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Identify => "identify",
            Self::Kademlia => "kademlia",
            Self::Mdns => "mdns",
            Self::Manual => "manual",
            Self::Exchange => "exchange",
        }
    }
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not the name of any [`PeerSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown peer source {0:?} (expected one of bootstrap, identify, kademlia, mdns, manual, \
     exchange)"
)]
pub struct UnknownPeerSource(pub String);

impl FromStr for PeerSource {
    type Err = UnknownPeerSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| UnknownPeerSource(s.to_owned()))
    }
}

impl ToSql for PeerSource {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for PeerSource {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map_err(FromSqlError::other)
    }
}

/// One peer as the book knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The libp2p peer id, as text.
    pub peer_id: String,
    /// Known multiaddrs, most recently seen first.
    pub addrs: Vec<String>,
    /// Where we first learned of the peer.
    pub source: PeerSource,
    /// When we first learned of the peer (unix seconds).
    pub first_seen: i64,
    /// When we last heard of or reached the peer (unix seconds).
    pub last_seen: i64,
    /// Dial failures since the last success.
    pub failures: u32,
    /// When the last dial failed (unix seconds), if ever.
    pub last_failure: Option<i64>,
}

/// Columns read by [`collect_records`], in its order; `p` is `peers` (or a
/// subset of it) and `a` is `peer_addrs`.
const RECORD_COLUMNS: &str =
    "p.peer_id, p.source, p.first_seen, p.last_seen, p.failures, p.last_failure, a.addr";

/// Peer book methods.
impl Reader<'_> {
    /// Up to `limit` peers worth dialling: those with at least one address,
    /// fewest failures first, then most recently seen.
    ///
    /// # Errors
    ///
    /// If SQLite fails or a row holds an unknown source.
    pub fn peers_for_dial(&self, limit: usize) -> Result<Vec<PeerRecord>, StoreError> {
        const CONTEXT: &str = "choosing peers to dial";
        let sql = format!(
            "WITH p AS (
                 SELECT * FROM peers
                 WHERE EXISTS (SELECT 1 FROM peer_addrs a WHERE a.peer_id = peers.peer_id)
                 ORDER BY failures ASC, last_seen DESC, peer_id LIMIT ?1)
             SELECT {RECORD_COLUMNS} FROM p JOIN peer_addrs a ON a.peer_id = p.peer_id
             ORDER BY p.failures ASC, p.last_seen DESC, p.peer_id, a.last_seen DESC, a.addr"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CONTEXT)?;
        let rows = stmt.query([sql_count(limit)]).context(CONTEXT)?;
        collect_records(rows).context(CONTEXT)
    }

    /// Every peer in the book, most recently seen first.
    ///
    /// # Errors
    ///
    /// If SQLite fails or a row holds an unknown source.
    pub fn list_peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        const CONTEXT: &str = "listing peers";
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM peers p LEFT JOIN peer_addrs a ON a.peer_id = p.peer_id
             ORDER BY p.last_seen DESC, p.peer_id, a.last_seen DESC, a.addr"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CONTEXT)?;
        let rows = stmt.query([]).context(CONTEXT)?;
        collect_records(rows).context(CONTEXT)
    }

    /// How many peers the book holds.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn peer_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM peers", [], |row| row.get(0))
            .context("counting peers")
    }

    /// Every peer with a non-zero reputation or a reputation ban (expired or not), as
    /// `(peer_id, score, banned_until)`, by peer id: what to load into the in-memory reputation
    /// table at start.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn peer_reputations(&self) -> Result<Vec<(String, i32, Option<i64>)>, StoreError> {
        const CONTEXT: &str = "reading peer reputations";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT peer_id, reputation, banned_until FROM peers
                 WHERE reputation <> 0 OR banned_until IS NOT NULL ORDER BY peer_id",
            )
            .context(CONTEXT)?;
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(Iterator::collect)
            .context(CONTEXT)
    }
}

impl Tx<'_> {
    /// Records that `peer_id` was seen now at `addrs`.
    ///
    /// A new peer is added with `source`; a known peer keeps the source it
    /// was first seen with and gets `last_seen = now`. Addresses are merged
    /// (known ones get `last_seen = now`); empty and over-long ones are
    /// skipped, and only the newest [`MAX_ADDRS_PER_PEER`] are kept (from
    /// `addrs`, the first ones win). Adding a peer to a full book evicts the
    /// peer with the most failures, then the one seen longest ago.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidPeerId`] for an empty or over-long id, or if
    /// SQLite fails (then nothing was changed).
    pub fn upsert_peer(
        &mut self,
        peer_id: &str,
        addrs: &[String],
        source: PeerSource,
        now: i64,
    ) -> Result<(), StoreError> {
        if peer_id.is_empty() || peer_id.len() > MAX_PEER_ID_BYTES {
            return Err(StoreError::InvalidPeerId { len: peer_id.len() });
        }
        let limits = self.limits;
        let addrs = usable_addrs(addrs, limits.max_addrs_per_peer);
        const CONTEXT: &str = "updating the peer book";

        let tx = Atomic::begin(self.conn).context(CONTEXT)?;
        // A placeholder row (see the module docs) takes the source and time of this sighting.
        let known = tx
            .prepare_cached(
                "UPDATE peers SET
                     last_seen = ?2,
                     first_seen = CASE WHEN first_seen = 0 AND last_seen = 0 THEN ?2
                                       ELSE first_seen END,
                     source = CASE WHEN first_seen = 0 AND last_seen = 0 THEN ?3
                                   ELSE source END
                 WHERE peer_id = ?1",
            )
            .and_then(|mut stmt| stmt.execute((peer_id, now, source)))
            .context(CONTEXT)?
            > 0;
        if !known {
            tx.prepare_cached(
                "INSERT INTO peers (peer_id, source, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?3)",
            )
            .and_then(|mut stmt| stmt.execute((peer_id, source, now)))
            .context(CONTEXT)?;
        }
        if !addrs.is_empty() {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO peer_addrs (peer_id, addr, last_seen) VALUES (?1, ?2, ?3)
                     ON CONFLICT (peer_id, addr) DO UPDATE SET last_seen = excluded.last_seen",
                )
                .context(CONTEXT)?;
            for addr in &addrs {
                insert.execute((peer_id, addr, now)).context(CONTEXT)?;
            }
            tx.prepare_cached(
                "DELETE FROM peer_addrs WHERE peer_id = ?1 AND addr NOT IN (
                     SELECT addr FROM peer_addrs WHERE peer_id = ?1
                     ORDER BY last_seen DESC, addr LIMIT ?2)",
            )
            .and_then(|mut stmt| stmt.execute((peer_id, sql_count(limits.max_addrs_per_peer))))
            .context(CONTEXT)?;
        }
        if !known {
            evict_over_limit(&tx, peer_id, limits.max_peers).context(CONTEXT)?;
        }
        tx.commit().context(CONTEXT)
    }

    /// Records a successful dial: `failures = 0`, `last_seen = now`.
    /// Does nothing for an unknown peer.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn record_dial_success(&mut self, peer_id: &str, now: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE peers SET failures = 0, last_seen = ?2 WHERE peer_id = ?1")
            .and_then(|mut stmt| stmt.execute((peer_id, now)))
            .context("recording a dial success")?;
        Ok(())
    }

    /// Records a failed dial: increments `failures` and sets
    /// `last_failure = now`. Returns the new failure count, or 0 for an
    /// unknown peer.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn record_dial_failure(&mut self, peer_id: &str, now: i64) -> Result<u32, StoreError> {
        let failures = self
            .conn
            .prepare_cached(
                "UPDATE peers SET failures = min(failures + 1, 4294967295), last_failure = ?2
                 WHERE peer_id = ?1 RETURNING failures",
            )
            .and_then(|mut stmt| stmt.query_row((peer_id, now), |row| row.get(0)).optional())
            .context("recording a dial failure")?;
        Ok(failures.unwrap_or(0))
    }

    /// Forgets a peer and its addresses. Returns whether it was known.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn remove_peer(&mut self, peer_id: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM peers WHERE peer_id = ?1")
            .and_then(|mut stmt| stmt.execute([peer_id]))
            .context("removing a peer")?;
        Ok(removed > 0)
    }

    /// Stores `peer_id`'s reputation `score` and the end of its reputation ban (`banned_until`,
    /// unix ms; `None` = not banned), replacing what was stored.
    ///
    /// A peer not in the book is added as a placeholder without addresses (see the module
    /// docs), evicting like [`upsert_peer`](Self::upsert_peer) when the book is full (a
    /// placeholder, never seen, is itself among the first evicted later); a neutral state
    /// (score 0, no ban) for an unknown peer adds nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidPeerId`] for an empty or over-long id, or if SQLite fails.
    pub fn set_peer_reputation(
        &mut self,
        peer_id: &str,
        score: i32,
        banned_until: Option<i64>,
    ) -> Result<(), StoreError> {
        if peer_id.is_empty() || peer_id.len() > MAX_PEER_ID_BYTES {
            return Err(StoreError::InvalidPeerId { len: peer_id.len() });
        }
        const CONTEXT: &str = "storing a peer's reputation";
        let max_peers = self.limits.max_peers;
        let tx = Atomic::begin(self.conn).context(CONTEXT)?;
        let known = tx
            .prepare_cached(
                "UPDATE peers SET reputation = ?2, banned_until = ?3 WHERE peer_id = ?1",
            )
            .and_then(|mut stmt| stmt.execute((peer_id, score, banned_until)))
            .context(CONTEXT)?
            > 0;
        if !known && (score != 0 || banned_until.is_some()) {
            tx.prepare_cached(
                "INSERT INTO peers (peer_id, source, first_seen, last_seen, reputation, banned_until)
                 VALUES (?1, ?2, 0, 0, ?3, ?4)",
            )
            .and_then(|mut stmt| stmt.execute((peer_id, PeerSource::Identify, score, banned_until)))
            .context(CONTEXT)?;
            evict_over_limit(&tx, peer_id, max_peers).context(CONTEXT)?;
        }
        tx.commit().context(CONTEXT)
    }

    /// Forgets the peers whose last `min_failures` or more dials all failed, with their
    /// addresses, and returns how many went. Kept whatever their failures: peers the user or the
    /// configuration named (sources `manual` and `bootstrap`), and peers with a negative
    /// reputation or a reputation ban (forgetting them would forgive them).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for `min_failures` 0 (that would empty the book), or if
    /// SQLite fails.
    pub fn evict_failing_peers(&mut self, min_failures: u32) -> Result<usize, StoreError> {
        if min_failures == 0 {
            return Err(StoreError::InvalidInput(
                "min_failures must be at least 1: 0 would forget every peer in the book".into(),
            ));
        }
        let evicted = self
            .conn
            .prepare_cached(
                "DELETE FROM peers
                 WHERE failures >= ?1 AND source NOT IN ('manual', 'bootstrap')
                   AND reputation >= 0 AND banned_until IS NULL",
            )
            .and_then(|mut stmt| stmt.execute([min_failures]))
            .context("evicting failing peers")?;
        if evicted > 0 {
            tracing::debug!(evicted, min_failures, "evicted peers that keep failing");
        }
        Ok(evicted)
    }
}

impl Store {
    /// Shrinks the peer book limits, so tests can fill the book cheaply.
    #[cfg(test)]
    pub(crate) fn with_peer_book_limits(mut self, max_peers: usize, max_addrs: usize) -> Self {
        self.limits = PeerBookLimits {
            max_peers,
            max_addrs_per_peer: max_addrs,
        };
        self
    }
}

/// The addresses of `addrs` worth storing: non-empty, at most
/// [`MAX_ADDR_BYTES`], without duplicates, the first `max` of them.
fn usable_addrs(addrs: &[String], max: usize) -> Vec<&str> {
    let mut seen = HashSet::new();
    let mut usable = Vec::new();
    for addr in addrs {
        if usable.len() == max {
            break;
        }
        if addr.is_empty() || addr.len() > MAX_ADDR_BYTES {
            tracing::debug!(len = addr.len(), "skipping unusable peer address");
            continue;
        }
        if seen.insert(addr.as_str()) {
            usable.push(addr.as_str());
        }
    }
    usable
}

/// Evicts peers beyond `max_peers`: most failures first, then seen longest ago. Never `keep`
/// (the peer just added: we just heard of it).
fn evict_over_limit(
    tx: &rusqlite::Connection,
    keep: &str,
    max_peers: usize,
) -> rusqlite::Result<()> {
    let count: i64 = tx.query_row("SELECT count(*) FROM peers", [], |row| row.get(0))?;
    let excess = count.saturating_sub(sql_count(max_peers));
    if excess > 0 {
        let evicted = tx
            .prepare_cached(
                "DELETE FROM peers WHERE peer_id IN (
                     SELECT peer_id FROM peers WHERE peer_id <> ?1
                     ORDER BY failures DESC, last_seen ASC, peer_id LIMIT ?2)",
            )?
            .execute((keep, excess))?;
        tracing::debug!(evicted, "peer book full: evicted peers");
    }
    Ok(())
}

/// A count or limit as an SQLite integer (saturating; these are small).
fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Folds rows of [`RECORD_COLUMNS`] (one per peer × address, a peer's rows
/// adjacent, `addr` NULL for a peer without addresses) into records.
fn collect_records(mut rows: Rows<'_>) -> rusqlite::Result<Vec<PeerRecord>> {
    let mut records: Vec<PeerRecord> = Vec::new();
    while let Some(row) = rows.next()? {
        let peer_id = row.get_ref(0)?.as_str()?;
        if records.last().is_none_or(|last| last.peer_id != peer_id) {
            records.push(PeerRecord {
                peer_id: peer_id.to_owned(),
                addrs: Vec::new(),
                source: row.get(1)?,
                first_seen: row.get(2)?,
                last_seen: row.get(3)?,
                failures: row.get(4)?,
                last_failure: row.get(5)?,
            });
        }
        if let (Some(addr), Some(record)) = (row.get::<_, Option<String>>(6)?, records.last_mut()) {
            record.addrs.push(addr);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
