//! rhizo's one SQLite database: the schema, its migrations, a small key →
//! value table, the peer book, and the messaging, mailbox, request, profile, agent card, ban and
//! channel tables — with [`Db`], the database's one owner in the node.
//!
//! Every read is a method of [`Reader`], every write a method of [`Tx`] (which derefs to
//! [`Reader`], so reads inside a transaction are the same methods). The API reads no clock:
//! every call that records a time takes `now` from the caller. No SQLite type is part of it.
//!
//! ```text
//!   rhizo-node / rhizo-engine (async)
//!        │ db.write(|tx| tx.add_contact(..)).await     db.read(|r| r.list_contacts()).await
//!        │ db.try_write(..) → Busy when full            │
//!        ▼                                              ▼
//!   ┌──── Db ── writer thread ────────┐        ┌── reader threads ──┐
//!   │ bounded queue → group commit:   │        │ Store::open_reader │
//!   │ BEGIN; job₁ SAVEPOINT; job₂ …;  │        │ (read-only, WAL)   │
//!   │ COMMIT; answer every job        │        └────────────────────┘
//!   └─────────────────────────────────┘
//!        │ Tx / Reader methods, one file per table group:
//!        ├──► meta, peers, peer_addrs, bans, channels, channel_posts
//!        ├──► contacts, contact_devices, conversations, messages (outbox), seen
//!        ├──► groups, group_members, message_deliveries, group_requests, group_intents,
//!        │    group_rejoins, welcome_parts
//!        ├──► mailbox_*, request_*, profiles, agent_cards
//!        └──► tasks, task_events, task_messages, task_artifacts, agent_outbox
//!        │ open: create 0600 → WAL → migrate to SCHEMA_VERSION
//!        ▼
//!   rhizo.db (+ -wal, -shm; the MLS tables of rhizo-e2e live in the same file: Tx::mls)
//! ```
//!
//! # Layout
//!
//! - [`Store`] (this file): opening the file, connection settings, `meta`.
//! - `cipher`: encryption at rest — [`DbKey`], [`Store::open_keyed`] (SQLCipher with a raw
//!   key), [`Store::export_to`] (a whole copy under another key or none), [`Store::migrate_mls`].
//! - `tx`: [`Reader`], [`Tx`] (savepoints, [`Tx::mls`]), [`Durability`],
//!   [`Store::read`] / [`Store::write`].
//! - `db`: [`Db`] — the writer thread with its bounded queue and group commit, the reader
//!   pool, [`DbError`], [`DbConfig`].
//! - `migrations`: the ordered `MIGRATIONS` and [`SCHEMA_VERSION`]; the
//!   version lives in `PRAGMA user_version`.
//! - `peer_book`: [`PeerSource`], [`PeerRecord`] and the peer book methods,
//!   with their limits ([`MAX_PEERS`], [`MAX_ADDRS_PER_PEER`]).
//! - [`mailbox`]: envelopes held for offline users (batches of stores in one transaction,
//!   quotas read from usage counters that triggers keep exact, TTL with an amortized purge,
//!   delete-on-receipt with tombstones, device-list versions seen).
//! - [`messaging`]: one file per table group — contacts, conversations, messages (one
//!   [`NewMessage`](messaging::NewMessage) for both directions), the outbox (with the `stored`
//!   state for messages held by mailbox replicas), messages parked while a conversation the
//!   recipient lost is re-established, the seen-set.
//! - [`requests`]: message requests (envelopes from non-contacts held within bounds until the
//!   user accepts, declines or blocks), declined conversations, closed conversations.
//! - [`files`]: files and attachments (issue 16): the file each `file` message carries, its
//!   state here, and who may fetch it.
//! - [`groups`]: private groups (issue 14): the group of a `group` conversation, its members,
//!   per-device delivery state of our group messages, held invitations and pending changes.
//! - [`presence`]: contacts' last-seen times and a replica's push subscriptions, kept across
//!   restarts (bounded copies of the node's in-memory state).
//! - [`profiles`]: our profile and the newest one received from each contact.
//! - [`agent_cards`]: our agent card and a bounded cache of other agents' cards
//!   ([`AgentCardRow`]).
//! - [`bans`]: explicit bans of peer ids and IP ranges ([`BanRow`]), temporary or permanent.
//!   (Reputation scores and reputation bans live on the peer book rows.)
//! - [`channels`]: the public channels joined ([`ChannelRow`]) and their bounded post history
//!   ([`ChannelPostRow`]).
//! - [`agents`]: agent tasks on both sides (issue 13) with their status history, messages and
//!   artifacts, and the agent messages an inbound transaction queued for sending.
//! - [`welcome_parts`]: the pieces of Welcomes sent in parts, kept (bounded, expiring) until
//!   the rest arrives and reassembled from the table.
//! - `integrity`: [`check_integrity`] (and [`check_integrity_keyed`] for an encrypted file), a
//!   read-only `PRAGMA integrity_check` (`rhizo doctor`).
//! - `error`: [`StoreError`], [`SqliteError`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent_cards;
pub mod agents;
pub mod bans;
pub mod channels;
mod cipher;
#[cfg(feature = "db")]
mod db;
mod error;
pub mod files;
pub mod groups;
mod integrity;
pub mod mailbox;
pub mod messaging;
mod migrations;
mod peer_book;
pub mod presence;
pub mod profiles;
pub mod requests;
mod tx;
pub mod welcome_parts;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension};

pub use agent_cards::{AgentCardRow, OwnAgentCard};
pub use bans::{BanKind, BanRow, UnknownBanKind};
pub use channels::{ChannelPostRow, ChannelRow};
pub use cipher::{DB_KEY_BYTES, DbKey};
#[cfg(feature = "db")]
pub use db::{
    DEFAULT_GROUP, DEFAULT_READ_QUEUE, DEFAULT_READERS, DEFAULT_WRITE_QUEUE, Db, DbConfig, DbError,
    DbStats, Pending,
};
pub use error::{SqliteError, StoreError};
pub use integrity::{IntegrityReport, MAX_INTEGRITY_LINES, check_integrity, check_integrity_keyed};
pub use migrations::SCHEMA_VERSION;
pub use peer_book::{
    MAX_ADDR_BYTES, MAX_ADDRS_PER_PEER, MAX_PEER_ID_BYTES, MAX_PEERS, PeerRecord, PeerSource,
    UnknownPeerSource,
};
pub use tx::{Durability, Reader, Tx};

use error::SqliteContext;
use peer_book::PeerBookLimits;

/// How long a statement waits for another connection's lock before failing
/// with "database is locked": long enough to ride out a checkpoint or a
/// second process's migration, short enough not to hang the node.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection (`prepare_cached`): more than the hot paths use
/// together, so none is parsed again on every call.
const STATEMENT_CACHE: usize = 64;

/// The node's database: one SQLite connection and the tables in it.
///
/// Writes that touch more than one row run in one transaction per call, so
/// each call either happens completely or not at all.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    limits: PeerBookLimits,
    /// When (unix ms, the callers' clock) the mailbox's store path next purges expired entries
    /// (see [`mailbox::MAILBOX_PURGE_INTERVAL_MS`]).
    mailbox_purge_due: i64,
    /// The key of an encrypted database (SQLCipher), kept for [`open_reader`](Self::open_reader).
    key: Option<DbKey>,
}

#[cfg(feature = "test-support")]
impl Store {
    /// The connection, for tests that inspect the database with SQL or drive MLS state
    /// directly (feature `test-support`; production code reads through [`Store::read`] and
    /// writes through [`Store::write`] or the `Db`).
    #[doc(hidden)]
    pub fn connection(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

impl Store {
    /// Opens the database at `path`, creating it (mode 0600 on unix) if it
    /// does not exist, and upgrades its schema to [`SCHEMA_VERSION`].
    ///
    /// The parent directory must exist. SQLite gives the `-wal` and `-shm`
    /// side files the same permissions as the database file.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotADatabase`] if the file is not an SQLite database
    /// (or is damaged), [`StoreError::SchemaTooNew`] if a newer rhizo wrote
    /// it, [`StoreError::CreateFile`] / [`StoreError::Open`] if it cannot be
    /// created or opened, [`StoreError::Migration`] if an upgrade step fails.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_keyed(path, None)
    }

    /// Opens a fresh database that lives in memory only (for tests).
    ///
    /// # Errors
    ///
    /// Only if SQLite itself fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().context("opening an in-memory database")?;
        Self::init(conn, Path::new(":memory:"))
    }

    /// Copies the write-ahead log into the database file and empties it
    /// (`wal_checkpoint(TRUNCATE)`), so pages zeroed by a secure delete replace the old page
    /// images in both. Best effort: readers in the middle of a transaction delay it (then it
    /// returns `Ok(false)`), and the next call does it.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn checkpoint(&self) -> Result<bool, StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .context("checkpointing the write-ahead log")?;
        Ok(busy == 0)
    }

    /// [`checkpoint`](Self::checkpoint) where a failure or a busy reader only delays it (what
    /// [`Tx::checkpoint_after_commit`] asks for).
    pub(crate) fn checkpoint_best_effort(&self) {
        match self.checkpoint() {
            Ok(true) => {}
            Ok(false) => tracing::debug!("a checkpoint was delayed by busy readers"),
            Err(e) => tracing::debug!(error = %e, "a checkpoint failed"),
        }
    }

    /// Opens another connection to this database's file for reading only (`query_only`): WAL
    /// lets it read the last committed state while the writer is in the middle of a
    /// transaction (e.g. the mailbox replica's quota checks, the [`Db`]'s reader pool).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for an in-memory database (there is no file to share), or
    /// what [`open`](Self::open) returns.
    pub fn open_reader(&self) -> Result<Self, StoreError> {
        let reader = match self.conn.path() {
            Some(path) if !path.is_empty() => Self::open_keyed(Path::new(path), self.key.as_ref())?,
            _ => {
                return Err(StoreError::InvalidInput(
                    "an in-memory database has no file another connection could open".into(),
                ));
            }
        };
        reader
            .conn
            .execute_batch("PRAGMA query_only = ON")
            .context("making a reader read-only")?;
        Ok(reader)
    }

    /// Applies connection settings and migrations.
    fn init(mut conn: Connection, path: &Path) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .context("setting the busy timeout")?;
        // The first statement that reads the file: this is where a file that
        // is not SQLite at all shows up.
        let journal_mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|source| match source.sqlite_error_code() {
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                    StoreError::NotADatabase {
                        path: path.to_owned(),
                        source: source.into(),
                    }
                }
                _ => StoreError::Open {
                    path: path.to_owned(),
                    source: source.into(),
                },
            })?;
        if !journal_mode.eq_ignore_ascii_case("wal") && !journal_mode.eq_ignore_ascii_case("memory")
        {
            tracing::warn!(
                path = %path.display(),
                %journal_mode,
                "SQLite refused WAL mode; writes will be slower"
            );
        }
        // FULL: every commit is fsynced before the call returns, so what the node
        // acknowledged (a received message, MLS state, a used nonce) survives a
        // power loss or OS crash too, not only a crash of the process (which WAL
        // with NORMAL would already survive).
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .context("configuring the connection")?;
        // Savepoint (statement) journals in memory: every job of a group commit runs in a
        // savepoint, and past 64 KiB of pages SQLite spilled that journal to a temp file,
        // created and unlinked in every commit (open, write, close in the writer's profile).
        // It holds at most the pages one group changes.
        conn.execute_batch("PRAGMA temp_store = MEMORY;")
            .context("keeping temporary data in memory")?;
        // Plans that do not depend on bound values: without this, SQLite marks a statement
        // whose `LIMIT ?n` (or a partial index's condition) it read a bound value for as
        // expired when that parameter is bound again, and re-prepares it on every run (the
        // outbox's, the tasks' statements: `sqlite3Reprepare` in the writer's profile).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .context("configuring the connection")?;
        migrations::migrate(&mut conn)?;
        // Room for every statement the hot paths keep prepared (the default is 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            conn,
            limits: PeerBookLimits::default(),
            mailbox_purge_due: i64::MIN,
            key: None,
        })
    }
}

impl Reader<'_> {
    /// The schema version of the open database (`PRAGMA user_version`);
    /// [`SCHEMA_VERSION`] once [`Store::open`] has succeeded.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrations::user_version(self.conn)
    }

    /// The value stored under `key` in `meta`, if any.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
            .context("reading meta")
    }
}

impl Tx<'_> {
    /// Stores `value` under `key` in `meta`, replacing any previous value.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute([key, value]))
            .context("writing meta")?;
        Ok(())
    }
}

/// Creates the database file if missing, readable by its owner only.
///
/// An existing file is left as it is (SQLite would open it anyway); this
/// just makes sure a new one is never briefly world-readable.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::CreateFile {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_store_is_migrated_and_configured() {
        let store = Store::open_in_memory().expect("open");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        let foreign_keys: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .expect("pragma");
        assert_eq!(foreign_keys, 1);
        let synchronous: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .expect("pragma");
        assert_eq!(
            synchronous, 2,
            "2 = FULL: an acknowledged message survives power loss"
        );
        let temp_store: i64 = store
            .conn
            .query_row("PRAGMA temp_store", [], |row| row.get(0))
            .expect("pragma");
        assert_eq!(temp_store, 2, "2 = MEMORY: no temp file per group commit");
    }

    #[test]
    fn a_reader_sees_what_the_writer_committed_not_what_it_is_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = Store::open(&dir.path().join("rhizo.db")).expect("open");
        let reader = writer.open_reader().expect("reader");
        writer
            .write(|tx| tx.set_meta("k", "committed"))
            .expect("set");
        let tx = writer.conn.transaction().expect("tx");
        tx.execute("UPDATE meta SET value = 'pending' WHERE key = 'k'", [])
            .expect("update");
        assert_eq!(
            reader.read().get_meta("k").expect("read").as_deref(),
            Some("committed"),
            "not blocked by the open write transaction"
        );
        tx.commit().expect("commit");
        assert_eq!(
            reader.read().get_meta("k").expect("read").as_deref(),
            Some("pending")
        );
        assert!(matches!(
            Store::open_in_memory().expect("open").open_reader(),
            Err(StoreError::InvalidInput(_))
        ));
    }

    #[test]
    fn meta_round_trip_and_overwrite() {
        let mut store = Store::open_in_memory().expect("open");
        assert_eq!(store.read().get_meta("node.name").expect("get"), None);
        store
            .write(|tx| tx.set_meta("node.name", "alice"))
            .expect("set");
        assert_eq!(
            store.read().get_meta("node.name").expect("get").as_deref(),
            Some("alice")
        );
        store
            .write(|tx| tx.set_meta("node.name", "bob"))
            .expect("set");
        assert_eq!(
            store.read().get_meta("node.name").expect("get").as_deref(),
            Some("bob")
        );
    }
}
