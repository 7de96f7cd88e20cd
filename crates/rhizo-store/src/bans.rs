//! Explicit bans: peer ids and IP ranges (CIDR) never to talk to, for a while or for good.
//!
//! ```text
//!  rhizo ban / reputation ban / config ──add_ban(row)──▶ bans (kind, value) ≤ MAX_BANS rows
//!  node start, ban list refresh  ◀──bans(now)───────── unexpired only
//!  housekeeping ──purge_expired_bans(now)──▶ expired rows gone
//! ```
//!
//! The values are opaque here: the caller checks that a peer ban holds a peer id and a CIDR ban
//! an IP range, and normalises them (this table compares text). Times are unix milliseconds passed
//! in by the caller.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, ToSql, params};

use crate::error::{SqliteContext, StoreError};
use crate::tx::{Atomic, Reader, Tx};

/// Most bans kept. A full table makes room by dropping the temporary ban that ends first;
/// permanent bans are only removed by the user.
pub const MAX_BANS: usize = 10_000;
/// Longest ban value: peer ids are about 52 characters, CIDR ranges at most 43.
pub const MAX_BAN_VALUE_BYTES: usize = 128;
/// Longest ban reason.
pub const MAX_BAN_REASON_BYTES: usize = 256;

/// What a ban names. Stored as `peer` / `cidr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanKind {
    /// A libp2p peer id (text form).
    Peer,
    /// An IP range in CIDR notation (a single address is a /32 or /128).
    Cidr,
}

impl BanKind {
    /// Both kinds.
    pub const ALL: [Self; 2] = [Self::Peer, Self::Cidr];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Cidr => "cidr",
        }
    }
}

impl fmt::Display for BanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not the name of a [`BanKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ban kind {0:?} (expected peer or cidr)")]
pub struct UnknownBanKind(pub String);

impl FromStr for BanKind {
    type Err = UnknownBanKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownBanKind(s.to_owned()))
    }
}

impl ToSql for BanKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for BanKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str()?.parse().map_err(FromSqlError::other)
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BanRow {
    /// What `value` names.
    pub kind: BanKind,
    /// The peer id or CIDR range, as text (validated and normalised by the caller).
    pub value: String,
    /// Why, for the user (e.g. "manual", "reputation", "config").
    pub reason: String,
    /// When the ban ends (unix ms); `None` = permanent.
    pub until: Option<i64>,
    /// When the ban was made (unix ms).
    pub created_at: i64,
}

impl BanRow {
    /// Reads a row of `kind, value, reason, until, created_at`.
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            kind: row.get(0)?,
            value: row.get(1)?,
            reason: row.get(2)?,
            until: row.get(3)?,
            created_at: row.get(4)?,
        })
    }
}

/// Refuses a ban whose value or reason is out of bounds.
fn check_ban(row: &BanRow) -> Result<(), StoreError> {
    if row.value.is_empty() || row.value.len() > MAX_BAN_VALUE_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "a {} ban needs a value of 1 to {MAX_BAN_VALUE_BYTES} bytes, got {}",
            row.kind,
            row.value.len()
        )));
    }
    if row.reason.len() > MAX_BAN_REASON_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "a ban reason may have at most {MAX_BAN_REASON_BYTES} bytes, got {}; shorten it",
            row.reason.len()
        )));
    }
    Ok(())
}

/// Whether a ban ending at `new` lasts longer than one ending at `old` (`None` = never ends).
fn lasts_longer(new: Option<i64>, old: Option<i64>) -> bool {
    match (new, old) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(new), Some(old)) => new > old,
    }
}

/// Ban methods.
impl Reader<'_> {
    /// The bans in force at `now` (permanent, or ending after `now`), by kind then value.
    ///
    /// # Errors
    ///
    /// If SQLite fails or a row holds an unknown kind.
    pub fn bans(&self, now: i64) -> Result<Vec<BanRow>, StoreError> {
        const CONTEXT: &str = "listing bans";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, value, reason, until, created_at FROM bans
                 WHERE until IS NULL OR until > ?1 ORDER BY kind, value",
            )
            .context(CONTEXT)?;
        stmt.query_map([now], BanRow::from_row)
            .and_then(Iterator::collect)
            .context(CONTEXT)
    }
}

impl Tx<'_> {
    /// Bans `row.value`. Returns true if it was not banned before.
    ///
    /// If it is already banned, bans are only ever extended here: the row is replaced (reason,
    /// end, creation time) only if the new ban lasts longer; otherwise nothing changes. To shorten
    /// a ban, [`remove_ban`](Self::remove_ban) it first. A new ban in a full table (see
    /// [`MAX_BANS`]) drops the temporary ban that ends first (expired ones first of all).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for an empty or over-long value or an over-long reason;
    /// [`StoreError::TableFull`] if the table is full of permanent bans; or if SQLite
    /// fails (then nothing changed).
    pub fn add_ban(&mut self, row: &BanRow) -> Result<bool, StoreError> {
        const CONTEXT: &str = "adding a ban";
        check_ban(row)?;
        let tx = Atomic::begin(self.conn).context(CONTEXT)?;
        let existing: Option<Option<i64>> = tx
            .prepare_cached("SELECT until FROM bans WHERE kind = ?1 AND value = ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![row.kind, row.value], |r| r.get(0))
                    .optional()
            })
            .context(CONTEXT)?;
        let new = match existing {
            Some(old_until) => {
                if lasts_longer(row.until, old_until) {
                    tx.prepare_cached(
                        "UPDATE bans SET reason = ?3, until = ?4, created_at = ?5
                         WHERE kind = ?1 AND value = ?2",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            row.kind,
                            row.value,
                            row.reason,
                            row.until,
                            row.created_at
                        ])
                    })
                    .context(CONTEXT)?;
                }
                false
            }
            None => {
                let count: i64 = tx
                    .query_row("SELECT count(*) FROM bans", [], |r| r.get(0))
                    .context(CONTEXT)?;
                if count >= i64::try_from(MAX_BANS).unwrap_or(i64::MAX) {
                    let dropped = tx
                        .execute(
                            "DELETE FROM bans WHERE rowid IN (
                                 SELECT rowid FROM bans WHERE until IS NOT NULL
                                 ORDER BY until, kind, value LIMIT ?1)",
                            [count - i64::try_from(MAX_BANS).unwrap_or(i64::MAX) + 1],
                        )
                        .context(CONTEXT)?;
                    if dropped == 0 {
                        return Err(StoreError::TableFull(format!(
                            "the ban list is full ({MAX_BANS} permanent bans); remove some \
                             permanent bans, or ban whole IP ranges instead of single peers"
                        )));
                    }
                    tracing::debug!(dropped, "ban list full: dropped the bans ending first");
                }
                tx.prepare_cached(
                    "INSERT INTO bans (kind, value, reason, until, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        row.kind,
                        row.value,
                        row.reason,
                        row.until,
                        row.created_at
                    ])
                })
                .context(CONTEXT)?;
                true
            }
        };
        tx.commit().context(CONTEXT)?;
        Ok(new)
    }

    /// Lifts a ban. Returns whether there was one (expired or not).
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn remove_ban(&mut self, kind: BanKind, value: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM bans WHERE kind = ?1 AND value = ?2")
            .and_then(|mut stmt| stmt.execute(params![kind, value]))
            .context("removing a ban")?;
        Ok(removed > 0)
    }

    /// Deletes the bans that ended at or before `now`; returns how many.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn purge_expired_bans(&mut self, now: i64) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM bans WHERE until IS NOT NULL AND until <= ?1")
            .and_then(|mut stmt| stmt.execute([now]))
            .context("purging expired bans")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn ban(kind: BanKind, value: &str, until: Option<i64>) -> BanRow {
        BanRow {
            kind,
            value: value.to_owned(),
            reason: "manual".to_owned(),
            until,
            created_at: 100,
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in BanKind::ALL {
            assert_eq!(kind.as_str().parse::<BanKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(
            "ip".parse::<BanKind>(),
            Err(UnknownBanKind("ip".to_owned()))
        );
    }

    #[test]
    fn add_list_remove() {
        let mut store = Store::open_in_memory().expect("open");
        let peer = ban(BanKind::Peer, "12D3KooWAbc", None);
        let range = ban(BanKind::Cidr, "192.0.2.0/24", Some(5000));
        assert!(store.write(|tx| tx.add_ban(&peer)).expect("add"));
        assert!(store.write(|tx| tx.add_ban(&range)).expect("add"));
        // The same value under the other kind is a different ban.
        assert!(
            store
                .write(|tx| tx.add_ban(&ban(BanKind::Cidr, "12D3KooWAbc", Some(10))))
                .expect("add")
        );
        assert_eq!(
            store.read().bans(1000).expect("list"),
            [range.clone(), peer.clone()],
            "unexpired only, by kind then value"
        );
        assert!(
            store
                .write(|tx| tx.remove_ban(BanKind::Cidr, "192.0.2.0/24"))
                .expect("remove")
        );
        assert!(
            !store
                .write(|tx| tx.remove_ban(BanKind::Cidr, "192.0.2.0/24"))
                .expect("again")
        );
        assert!(
            !store
                .write(|tx| tx.remove_ban(BanKind::Peer, "nobody"))
                .expect("unknown")
        );
        assert_eq!(store.read().bans(1000).expect("list"), [peer]);
    }

    #[test]
    fn re_adding_only_ever_extends_a_ban() {
        let mut store = Store::open_in_memory().expect("open");
        let first = ban(BanKind::Peer, "P", Some(1000));
        assert!(store.write(|tx| tx.add_ban(&first)).expect("add"));
        // Shorter: ignored.
        let shorter = BanRow {
            reason: "reputation".into(),
            until: Some(500),
            created_at: 200,
            ..first.clone()
        };
        assert!(!store.write(|tx| tx.add_ban(&shorter)).expect("add"));
        assert_eq!(
            store.read().bans(0).expect("list"),
            std::slice::from_ref(&first)
        );
        // Longer: replaces reason, end and creation time.
        let longer = BanRow {
            reason: "reputation".into(),
            until: Some(2000),
            created_at: 300,
            ..first.clone()
        };
        assert!(!store.write(|tx| tx.add_ban(&longer)).expect("add"));
        assert_eq!(
            store.read().bans(0).expect("list"),
            std::slice::from_ref(&longer)
        );
        // Permanent beats everything; nothing temporary replaces it.
        let forever = BanRow {
            until: None,
            created_at: 400,
            ..first.clone()
        };
        assert!(!store.write(|tx| tx.add_ban(&forever)).expect("add"));
        assert!(!store.write(|tx| tx.add_ban(&longer)).expect("add"));
        assert_eq!(store.read().bans(i64::MAX).expect("list"), [forever]);
        // Shortening needs an explicit removal.
        assert!(
            store
                .write(|tx| tx.remove_ban(BanKind::Peer, "P"))
                .expect("remove")
        );
        assert!(store.write(|tx| tx.add_ban(&shorter)).expect("add"));
        assert_eq!(store.read().bans(0).expect("list"), [shorter]);
    }

    #[test]
    fn expiry_and_purge() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.add_ban(&ban(BanKind::Peer, "A", Some(100))))
            .expect("add");
        store
            .write(|tx| tx.add_ban(&ban(BanKind::Peer, "B", Some(200))))
            .expect("add");
        store
            .write(|tx| tx.add_ban(&ban(BanKind::Peer, "C", None)))
            .expect("add");
        let values = |store: &Store, now| -> Vec<String> {
            store
                .read()
                .bans(now)
                .expect("list")
                .into_iter()
                .map(|b| b.value)
                .collect()
        };
        assert_eq!(values(&store, 99), ["A", "B", "C"]);
        assert_eq!(values(&store, 100), ["B", "C"], "ends at `until`");
        assert_eq!(values(&store, 200), ["C"]);
        // An expired ban is re-added as new once purged, and extended over while not.
        assert!(
            !store
                .write(|tx| tx.add_ban(&ban(BanKind::Peer, "A", Some(300))))
                .expect("add")
        );
        assert_eq!(values(&store, 200), ["A", "C"]);
        assert_eq!(
            store.write(|tx| tx.purge_expired_bans(250)).expect("purge"),
            1,
            "B"
        );
        assert_eq!(
            store.write(|tx| tx.purge_expired_bans(250)).expect("purge"),
            0
        );
        assert!(
            store
                .write(|tx| tx.remove_ban(BanKind::Peer, "A"))
                .expect("A still there")
        );
        assert!(
            !store
                .write(|tx| tx.remove_ban(BanKind::Peer, "B"))
                .expect("B purged")
        );
    }

    #[test]
    fn values_and_reasons_are_checked() {
        let mut store = Store::open_in_memory().expect("open");
        for bad in [
            ban(BanKind::Peer, "", None),
            ban(BanKind::Cidr, &"1".repeat(MAX_BAN_VALUE_BYTES + 1), None),
            BanRow {
                reason: "r".repeat(MAX_BAN_REASON_BYTES + 1),
                ..ban(BanKind::Peer, "P", None)
            },
        ] {
            let err = store.write(|tx| tx.add_ban(&bad)).expect_err("invalid");
            assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        }
        assert!(store.read().bans(0).expect("list").is_empty());
        // The schema refuses what the API would never write.
        assert!(
            store
                .conn
                .execute(
                    "INSERT INTO bans (kind, value, reason, created_at) VALUES ('ip', 'x', '', 0)",
                    [],
                )
                .is_err()
        );
    }

    #[test]
    fn a_full_table_drops_the_temporary_ban_ending_first() {
        let mut store = Store::open_in_memory().expect("open");
        // Fill to MAX_BANS quickly in one transaction: half permanent, half temporary.
        {
            let tx = store.conn.transaction().expect("tx");
            let mut insert = tx
                .prepare(
                    "INSERT INTO bans (kind, value, reason, until, created_at)
                     VALUES ('peer', ?1, 'bulk', ?2, 0)",
                )
                .expect("prepare");
            for i in 0..MAX_BANS {
                let until = (i % 2 == 0).then_some(1_000_000 + i as i64);
                insert
                    .execute(params![format!("p{i:05}"), until])
                    .expect("insert");
            }
            drop(insert);
            tx.commit().expect("commit");
        }
        assert!(
            store
                .write(|tx| tx.add_ban(&ban(BanKind::Cidr, "10.0.0.0/8", None)))
                .expect("add")
        );
        let all = store.read().bans(0).expect("list");
        assert_eq!(all.len(), MAX_BANS);
        assert!(
            !all.iter().any(|b| b.value == "p00000"),
            "ended first, dropped"
        );
        assert!(all.iter().any(|b| b.value == "p00002"));
        // Re-adding a known ban never needs room.
        assert!(
            !store
                .write(|tx| tx.add_ban(&ban(BanKind::Peer, "p00001", None)))
                .expect("add")
        );

        // Only permanent bans left: a new one is refused with what to do.
        store
            .conn
            .execute("UPDATE bans SET until = NULL", [])
            .expect("make permanent");
        let err = store
            .write(|tx| tx.add_ban(&ban(BanKind::Peer, "one-too-many", None)))
            .expect_err("full");
        assert!(matches!(err, StoreError::TableFull(_)), "{err:?}");
        assert!(err.to_string().contains("remove some"), "{err}");
        assert_eq!(store.read().bans(0).expect("list").len(), MAX_BANS);
    }
}
