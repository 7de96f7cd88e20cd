//! Agent cards: our own (the signed record we publish, and its version) and a bounded cache of
//! other agents' cards (found in the DHT or received in a capability answer).
//!
//! ```text
//!  upsert_agent_card(row) ──▶ agent_cards (one row per UID; replaced only by a higher version;
//!                             ≤ MAX_CACHED_AGENT_CARDS, the oldest fetched dropped first)
//!  set_own_agent_card(version, record | None) ──▶ own_agent_card (one row; the version stays)
//! ```
//!
//! Records are opaque here (the caller validates them). Times are what the caller passes:
//! `fetched_at` / `updated_at` unix milliseconds, `expires_at` unix seconds (the
//! record's own expiry).

use rusqlite::{OptionalExtension, params};

use crate::{
    error::{SqliteContext, StoreError},
    messaging::blob,
    tx::{Reader, Tx},
};

/// Cached cards of other agents: each record is at most 60 KiB, so the cache stays under
/// 60 MiB; the least recently fetched go first.
pub const MAX_CACHED_AGENT_CARDS: usize = 1024;
/// A cached card of another agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCardRow {
    /// Whose card.
    pub uid: [u8; 32],
    /// Its version: a card is only replaced by a higher one.
    pub version: u64,
    /// The signed record (opaque here).
    pub record: Vec<u8>,
    /// When the record expires (unix seconds).
    pub expires_at: u64,
    /// When it was fetched or received (unix ms).
    pub fetched_at: i64,
}

/// Our own card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnAgentCard {
    /// The version of the last card signed (also after it was removed).
    pub version: u64,
    /// The signed record we publish; `None` once the card was removed.
    pub record: Option<Vec<u8>>,
    /// When it was last signed or removed (unix ms).
    pub updated_at: i64,
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput(format!("{what} {v} is too large")))
}

fn card_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentCardRow> {
    Ok(AgentCardRow {
        uid: blob(r.get(0)?)?,
        version: r.get::<_, i64>(1)? as u64,
        record: r.get(2)?,
        expires_at: r.get::<_, i64>(3)? as u64,
        fetched_at: r.get(4)?,
    })
}

impl Reader<'_> {
    /// The cached card of `uid`, if any.
    pub fn agent_card(&self, uid: &[u8; 32]) -> Result<Option<AgentCardRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT uid, version, record, expires_at, fetched_at FROM agent_cards
                 WHERE uid = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([&uid[..]], card_row).optional())
            .context("reading an agent card")
    }

    /// Cached cards, the most recently fetched first, at most `limit`.
    pub fn agent_cards(&self, limit: usize) -> Result<Vec<AgentCardRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT uid, version, record, expires_at, fetched_at FROM agent_cards
                 ORDER BY fetched_at DESC, uid LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], card_row)?
                    .collect()
            })
            .context("listing agent cards")
    }

    /// Our own card (also after it was removed, for its version), if one was ever set.
    pub fn own_agent_card(&self) -> Result<Option<OwnAgentCard>, StoreError> {
        self.conn
            .prepare_cached("SELECT version, record, updated_at FROM own_agent_card WHERE id = 0")
            .and_then(|mut stmt| {
                stmt.query_row([], |r| {
                    Ok(OwnAgentCard {
                        version: r.get::<_, i64>(0)? as u64,
                        record: r.get(1)?,
                        updated_at: r.get(2)?,
                    })
                })
                .optional()
            })
            .context("reading our agent card")
    }
}

impl Tx<'_> {
    /// Caches `row` unless a card of a higher version is cached for its UID (the same version
    /// only refreshes `fetched_at`); true if written. Then drops the least recently fetched
    /// cards beyond [`MAX_CACHED_AGENT_CARDS`].
    pub fn upsert_agent_card(&mut self, row: &AgentCardRow) -> Result<bool, StoreError> {
        let version = to_i64(row.version, "agent card version")?;
        let expires_at = to_i64(row.expires_at, "agent card expiry")?;
        let written = self
            .conn
            .execute(
                "INSERT INTO agent_cards (uid, version, record, expires_at, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (uid) DO UPDATE SET
                   version = excluded.version, record = excluded.record,
                   expires_at = excluded.expires_at, fetched_at = excluded.fetched_at
                 WHERE excluded.version >= agent_cards.version",
                params![
                    &row.uid[..],
                    version,
                    row.record,
                    expires_at,
                    row.fetched_at
                ],
            )
            .context("storing an agent card")?
            == 1;
        self.conn
            .execute(
                "DELETE FROM agent_cards WHERE uid NOT IN
                   (SELECT uid FROM agent_cards ORDER BY fetched_at DESC, uid LIMIT ?1)",
                [i64::try_from(MAX_CACHED_AGENT_CARDS).unwrap_or(i64::MAX)],
            )
            .context("bounding the agent card cache")?;
        Ok(written)
    }

    /// Forgets the cached card of `uid`; true if there was one.
    pub fn delete_agent_card(&mut self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM agent_cards WHERE uid = ?1", [&uid[..]])
            .context("deleting an agent card")?
            > 0)
    }

    /// Stores our card: `record` signed with `version`, or `None` to remove it (the version is
    /// kept). A version lower than the stored one is refused.
    pub fn set_own_agent_card(
        &mut self,
        version: u64,
        record: Option<&[u8]>,
        now: i64,
    ) -> Result<(), StoreError> {
        let version = to_i64(version, "agent card version")?;
        let changed = self
            .conn
            .execute(
                "INSERT INTO own_agent_card (id, version, record, updated_at)
                 VALUES (0, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET
                   version = excluded.version, record = excluded.record,
                   updated_at = excluded.updated_at
                 WHERE excluded.version >= own_agent_card.version",
                params![version, record, now],
            )
            .context("storing our agent card")?;
        if changed == 0 {
            return Err(StoreError::InvalidInput(format!(
                "agent card version {version} is lower than the stored one"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
