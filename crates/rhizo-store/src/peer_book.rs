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
mod tests {
    use super::*;
    use crate::Store;

    fn addrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn peer(store: &Store, peer_id: &str) -> PeerRecord {
        store
            .read()
            .list_peers()
            .expect("list")
            .into_iter()
            .find(|p| p.peer_id == peer_id)
            .expect("peer present")
    }

    fn ids(records: &[PeerRecord]) -> Vec<&str> {
        records.iter().map(|p| p.peer_id.as_str()).collect()
    }

    #[test]
    fn source_names_round_trip() {
        for source in PeerSource::ALL {
            assert_eq!(source.as_str().parse::<PeerSource>(), Ok(source));
            assert_eq!(source.to_string(), source.as_str());
        }
        assert_eq!(
            "Mdns".parse::<PeerSource>(),
            Err(UnknownPeerSource("Mdns".to_owned()))
        );
    }

    #[test]
    fn upsert_inserts_then_merges_addresses_and_keeps_first_source() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| {
                tx.upsert_peer(
                    "A",
                    &addrs(&["/ip4/1/tcp/1", "/ip4/2/tcp/2"]),
                    PeerSource::Mdns,
                    100,
                )
            })
            .expect("upsert");
        store
            .write(|tx| {
                tx.upsert_peer(
                    "A",
                    &addrs(&["/ip4/3/tcp/3", "/ip4/1/tcp/1"]),
                    PeerSource::Kademlia,
                    200,
                )
            })
            .expect("upsert");

        let a = peer(&store, "A");
        assert_eq!(a.source, PeerSource::Mdns, "first source wins");
        assert_eq!((a.first_seen, a.last_seen), (100, 200));
        assert_eq!((a.failures, a.last_failure), (0, None));
        // Newest first; the two refreshed at 200 tie and sort by text.
        assert_eq!(
            a.addrs,
            addrs(&["/ip4/1/tcp/1", "/ip4/3/tcp/3", "/ip4/2/tcp/2"])
        );
        assert_eq!(store.read().peer_count().expect("count"), 1);
    }

    #[test]
    fn upsert_without_addresses_only_touches_last_seen() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/ip4/1/tcp/1"]), PeerSource::Identify, 100))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("A", &[], PeerSource::Identify, 150))
            .expect("upsert");
        let a = peer(&store, "A");
        assert_eq!(a.last_seen, 150);
        assert_eq!(a.addrs, addrs(&["/ip4/1/tcp/1"]));
    }

    #[test]
    fn unusable_addresses_and_peer_ids_are_rejected() {
        let mut store = Store::open_in_memory().expect("open");
        let long = "x".repeat(MAX_ADDR_BYTES + 1);
        store
            .write(|tx| {
                tx.upsert_peer(
                    "A",
                    &[String::new(), long, "/ip4/1".into(), "/ip4/1".into()],
                    PeerSource::Manual,
                    1,
                )
            })
            .expect("upsert");
        assert_eq!(peer(&store, "A").addrs, addrs(&["/ip4/1"]));

        for bad in [String::new(), "p".repeat(MAX_PEER_ID_BYTES + 1)] {
            let err = store
                .write(|tx| tx.upsert_peer(&bad, &[], PeerSource::Manual, 1))
                .expect_err("invalid id");
            assert!(matches!(err, StoreError::InvalidPeerId { len } if len == bad.len()));
        }
        assert_eq!(store.read().peer_count().expect("count"), 1);
    }

    #[test]
    fn address_cap_drops_the_oldest() {
        let mut store = Store::open_in_memory()
            .expect("open")
            .with_peer_book_limits(100, 3);
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a1", "/a2"]), PeerSource::Identify, 10))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a3"]), PeerSource::Identify, 20))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a4", "/a2"]), PeerSource::Identify, 30))
            .expect("upsert");
        // /a1 (seen at 10) is the oldest and goes.
        assert_eq!(peer(&store, "A").addrs, addrs(&["/a2", "/a4", "/a3"]));

        // More in one call than the cap: the first ones given win.
        store
            .write(|tx| {
                tx.upsert_peer(
                    "A",
                    &addrs(&["/b1", "/b2", "/b3", "/b4", "/b5"]),
                    PeerSource::Identify,
                    40,
                )
            })
            .expect("upsert");
        assert_eq!(peer(&store, "A").addrs, addrs(&["/b1", "/b2", "/b3"]));
    }

    #[test]
    fn default_address_cap_is_max_addrs_per_peer() {
        let mut store = Store::open_in_memory().expect("open");
        let many: Vec<String> = (0..MAX_ADDRS_PER_PEER + 5)
            .map(|i| format!("/ip4/{i}"))
            .collect();
        store
            .write(|tx| tx.upsert_peer("A", &many, PeerSource::Identify, 1))
            .expect("upsert");
        assert_eq!(peer(&store, "A").addrs.len(), MAX_ADDRS_PER_PEER);
    }

    #[test]
    fn peer_cap_evicts_most_failures_then_oldest() {
        let mut store = Store::open_in_memory()
            .expect("open")
            .with_peer_book_limits(3, 4);
        store
            .write(|tx| tx.upsert_peer("old", &addrs(&["/o"]), PeerSource::Mdns, 10))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("flaky", &addrs(&["/f"]), PeerSource::Mdns, 30))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("mid", &addrs(&["/m"]), PeerSource::Mdns, 20))
            .expect("upsert");
        store
            .write(|tx| tx.record_dial_failure("flaky", 31))
            .expect("failure");

        // Full: adding a fourth evicts "flaky" (most failures) despite being newest.
        store
            .write(|tx| tx.upsert_peer("new1", &addrs(&["/n1"]), PeerSource::Mdns, 40))
            .expect("upsert");
        assert_eq!(store.read().peer_count().expect("count"), 3);
        assert_eq!(
            ids(&store.read().list_peers().expect("list")),
            ["new1", "mid", "old"]
        );

        // Then the oldest by last_seen; its addresses go with it.
        store
            .write(|tx| tx.upsert_peer("new2", &addrs(&["/n2"]), PeerSource::Mdns, 50))
            .expect("upsert");
        assert_eq!(
            ids(&store.read().list_peers().expect("list")),
            ["new2", "new1", "mid"]
        );
        let orphan_addrs: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM peer_addrs WHERE peer_id IN ('old', 'flaky')",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(orphan_addrs, 0);

        // Updating a known peer never evicts.
        store
            .write(|tx| tx.upsert_peer("mid", &addrs(&["/m2"]), PeerSource::Mdns, 60))
            .expect("upsert");
        assert_eq!(store.read().peer_count().expect("count"), 3);
    }

    #[test]
    fn the_peer_being_added_is_never_evicted() {
        let mut store = Store::open_in_memory()
            .expect("open")
            .with_peer_book_limits(1, 4);
        store
            .write(|tx| tx.upsert_peer("A", &[], PeerSource::Manual, 100))
            .expect("upsert");
        // B's clock is behind and B would sort as oldest; A goes anyway.
        store
            .write(|tx| tx.upsert_peer("B", &[], PeerSource::Manual, 50))
            .expect("upsert");
        assert_eq!(ids(&store.read().list_peers().expect("list")), ["B"]);
    }

    #[test]
    fn dial_failures_count_up_and_success_resets() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Bootstrap, 10))
            .expect("upsert");
        assert_eq!(
            store
                .write(|tx| tx.record_dial_failure("A", 11))
                .expect("failure"),
            1
        );
        assert_eq!(
            store
                .write(|tx| tx.record_dial_failure("A", 12))
                .expect("failure"),
            2
        );
        let a = peer(&store, "A");
        assert_eq!((a.failures, a.last_failure, a.last_seen), (2, Some(12), 10));

        store
            .write(|tx| tx.record_dial_success("A", 20))
            .expect("success");
        let a = peer(&store, "A");
        assert_eq!((a.failures, a.last_seen), (0, 20));
        assert_eq!(
            a.last_failure,
            Some(12),
            "history of the last failure is kept"
        );

        // Unknown peers: no error, nothing created.
        assert_eq!(
            store
                .write(|tx| tx.record_dial_failure("nobody", 30))
                .expect("failure"),
            0
        );
        store
            .write(|tx| tx.record_dial_success("nobody", 30))
            .expect("success");
        assert_eq!(store.read().peer_count().expect("count"), 1);
    }

    #[test]
    fn peers_for_dial_orders_by_failures_then_recency_and_skips_addressless() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("stale", &addrs(&["/s"]), PeerSource::Kademlia, 10))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("fresh", &addrs(&["/f1", "/f2"]), PeerSource::Kademlia, 30))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("failing", &addrs(&["/x"]), PeerSource::Kademlia, 40))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("no-addrs", &[], PeerSource::Kademlia, 50))
            .expect("upsert");
        store
            .write(|tx| tx.record_dial_failure("failing", 41))
            .expect("failure");

        let all = store.read().peers_for_dial(10).expect("dial");
        assert_eq!(ids(&all), ["fresh", "stale", "failing"]);
        assert_eq!(all[0].addrs, addrs(&["/f1", "/f2"]));
        assert_eq!(all[2].failures, 1);

        assert_eq!(
            ids(&store.read().peers_for_dial(2).expect("dial")),
            ["fresh", "stale"]
        );
        assert!(store.read().peers_for_dial(0).expect("dial").is_empty());
    }

    #[test]
    fn list_peers_includes_peers_without_addresses() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Manual, 10))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("B", &[], PeerSource::Manual, 20))
            .expect("upsert");
        let all = store.read().list_peers().expect("list");
        assert_eq!(ids(&all), ["B", "A"]);
        assert!(all[0].addrs.is_empty());
    }

    #[test]
    fn remove_peer_cascades_to_addresses() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a1", "/a2"]), PeerSource::Manual, 10))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("B", &addrs(&["/b"]), PeerSource::Manual, 10))
            .expect("upsert");
        assert!(store.write(|tx| tx.remove_peer("A")).expect("remove"));
        assert!(!store.write(|tx| tx.remove_peer("A")).expect("remove again"));
        let remaining: Vec<String> = store
            .conn
            .prepare("SELECT peer_id || ' ' || addr FROM peer_addrs")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(remaining, ["B /b"]);
    }

    #[test]
    fn reputation_is_stored_per_peer_and_listed_when_not_neutral() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Kademlia, 10))
            .expect("upsert");
        store
            .write(|tx| tx.upsert_peer("B", &addrs(&["/b"]), PeerSource::Kademlia, 10))
            .expect("upsert");
        assert!(store.read().peer_reputations().expect("list").is_empty());

        store
            .write(|tx| tx.set_peer_reputation("A", -30, None))
            .expect("set");
        store
            .write(|tx| tx.set_peer_reputation("B", -60, Some(1_700_000_000_000)))
            .expect("set");
        assert_eq!(
            store.read().peer_reputations().expect("list"),
            [
                ("A".to_owned(), -30, None),
                ("B".to_owned(), -60, Some(1_700_000_000_000))
            ]
        );
        // Overwrite; back to neutral drops it from the list, but keeps the peer.
        store
            .write(|tx| tx.set_peer_reputation("A", 0, None))
            .expect("set");
        store
            .write(|tx| tx.set_peer_reputation("B", 5, None))
            .expect("set");
        assert_eq!(
            store.read().peer_reputations().expect("list"),
            [("B".to_owned(), 5, None)]
        );
        assert_eq!(store.read().peer_count().expect("count"), 2);
        assert_eq!(
            peer(&store, "A").addrs,
            addrs(&["/a"]),
            "addresses untouched"
        );

        for bad in [String::new(), "p".repeat(MAX_PEER_ID_BYTES + 1)] {
            let err = store
                .write(|tx| tx.set_peer_reputation(&bad, -1, None))
                .expect_err("invalid id");
            assert!(matches!(err, StoreError::InvalidPeerId { .. }), "{err:?}");
        }
    }

    #[test]
    fn reputation_of_an_unknown_peer_adds_a_placeholder() {
        let mut store = Store::open_in_memory().expect("open");
        // Neutral: nothing to remember, nothing added.
        store
            .write(|tx| tx.set_peer_reputation("ghost", 0, None))
            .expect("set");
        assert_eq!(store.read().peer_count().expect("count"), 0);

        store
            .write(|tx| tx.set_peer_reputation("M", -55, Some(99)))
            .expect("set");
        let m = peer(&store, "M");
        assert!(m.addrs.is_empty());
        assert_eq!(
            (m.source, m.first_seen, m.last_seen),
            (PeerSource::Identify, 0, 0)
        );
        assert!(
            store.read().peers_for_dial(10).expect("dial").is_empty(),
            "no address"
        );
        assert_eq!(
            store.read().peer_reputations().expect("list"),
            [("M".to_owned(), -55, Some(99))]
        );

        // The first real sighting fills in the source and times; the reputation stays.
        store
            .write(|tx| tx.upsert_peer("M", &addrs(&["/m"]), PeerSource::Mdns, 500))
            .expect("upsert");
        let m = peer(&store, "M");
        assert_eq!(
            (m.source, m.first_seen, m.last_seen),
            (PeerSource::Mdns, 500, 500)
        );
        // Later sightings keep the first source, as for any peer.
        store
            .write(|tx| tx.upsert_peer("M", &[], PeerSource::Kademlia, 600))
            .expect("upsert");
        let m = peer(&store, "M");
        assert_eq!(
            (m.source, m.first_seen, m.last_seen),
            (PeerSource::Mdns, 500, 600)
        );
        assert_eq!(
            store.read().peer_reputations().expect("list"),
            [("M".to_owned(), -55, Some(99))]
        );
    }

    #[test]
    fn placeholders_respect_the_peer_cap() {
        let mut store = Store::open_in_memory()
            .expect("open")
            .with_peer_book_limits(2, 4);
        store
            .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Mdns, 10))
            .expect("upsert");
        store
            .write(|tx| tx.set_peer_reputation("X", -10, None))
            .expect("set");
        store
            .write(|tx| tx.set_peer_reputation("Y", -20, None))
            .expect("set");
        // X (never seen: last_seen 0) went to make room for Y; A stays.
        assert_eq!(store.read().peer_count().expect("count"), 2);
        assert_eq!(
            store.read().peer_reputations().expect("list"),
            [("Y".to_owned(), -20, None)]
        );
        assert_eq!(peer(&store, "A").addrs, addrs(&["/a"]));
    }

    #[test]
    fn evict_failing_peers_spares_configured_and_penalised_peers() {
        let mut store = Store::open_in_memory().expect("open");
        for (id, source) in [
            ("flaky", PeerSource::Kademlia),
            ("flaky-mdns", PeerSource::Mdns),
            ("flaky-pex", PeerSource::Exchange),
            ("once", PeerSource::Identify),
            ("boot", PeerSource::Bootstrap),
            ("mine", PeerSource::Manual),
            ("bad", PeerSource::Kademlia),
            ("banned", PeerSource::Kademlia),
            ("fine", PeerSource::Kademlia),
        ] {
            store
                .write(|tx| tx.upsert_peer(id, &addrs(&[&format!("/{id}")]), source, 10))
                .expect("upsert");
        }
        for id in [
            "flaky",
            "flaky-mdns",
            "flaky-pex",
            "boot",
            "mine",
            "bad",
            "banned",
        ] {
            for t in 0..3 {
                store
                    .write(|tx| tx.record_dial_failure(id, 20 + t))
                    .expect("failure");
            }
        }
        store
            .write(|tx| tx.record_dial_failure("once", 20))
            .expect("failure");
        store
            .write(|tx| tx.set_peer_reputation("bad", -5, None))
            .expect("set");
        store
            .write(|tx| tx.set_peer_reputation("banned", 0, Some(1000)))
            .expect("set");

        assert_eq!(
            store.write(|tx| tx.evict_failing_peers(3)).expect("evict"),
            3
        );
        assert_eq!(
            ids(&store.read().list_peers().expect("list"))
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>(),
            ["bad", "banned", "boot", "fine", "mine", "once"]
                .into_iter()
                .collect()
        );
        let orphans: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM peer_addrs WHERE peer_id LIKE 'flaky%'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(orphans, 0, "addresses go with the peer");
        assert_eq!(
            store.write(|tx| tx.evict_failing_peers(3)).expect("evict"),
            0
        );
        assert_eq!(
            store.write(|tx| tx.evict_failing_peers(1)).expect("evict"),
            1,
            "once"
        );
        let err = store
            .write(|tx| tx.evict_failing_peers(0))
            .expect_err("zero");
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("at least 1"), "{err}");
    }

    #[test]
    fn unknown_source_in_the_file_is_an_error_not_a_panic() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.upsert_peer("A", &[], PeerSource::Manual, 10))
            .expect("upsert");
        store
            .conn
            .execute("UPDATE peers SET source = 'carrier-pigeon'", [])
            .expect("corrupt");
        let err = store.read().list_peers().expect_err("unknown source");
        assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
    }
}
