//! [`E2eStore`]: the openmls provider (RustCrypto + SQLite storage) and this
//! crate's own bookkeeping tables, all on one SQLite connection.
//!
//! # Tables
//!
//! * `openmls_*` (and openmls' `vc_*`/`registered_vc_*` tables): created and
//!   migrated by `openmls_sqlite_storage` with refinery, which tracks its
//!   versions in `openmls_sqlite_storage_migrations`. Keys are serialized
//!   with serde JSON; most values with postcard behind a tag byte, and rows
//!   written as JSON by older builds are still read ([`StoreCodec`]).
//! * `e2e_schema`: this crate's schema version ([`SCHEMA_VERSION`]). It does
//!   not use `PRAGMA user_version`, which belongs to `rhizo-store` when the
//!   file is the node's shared `rhizo.db`.
//! * `e2e_conversations`: one row per conversation — rekey counters and the
//!   pending own commit.
//! * `e2e_deferred`: buffered future-epoch messages, at most
//!   [`MAX_DEFERRED`](crate::MAX_DEFERRED) per conversation.
//! * `e2e_own_key_packages` (version 2): the KeyPackage refs this device
//!   published, and when each was superseded, so that their private keys are
//!   deleted after a grace period
//!   ([`delete_retired_key_packages`](crate::delete_retired_key_packages)).
//! * `e2e_used_key_packages` (created on every open if missing): our one-time KeyPackages a
//!   Welcome used, kept for a short grace window
//!   ([`delete_used_key_packages`](crate::delete_used_key_packages)).
//! * `e2e_group_applied` and `e2e_group_snapshots` (version 3): for groups, the id of the
//!   commit applied in each recent epoch and a copy of the group's openmls rows from before
//!   it, so a late commit with a smaller id can replace it (see the crate docs, "Groups").
//!   They hold epoch secrets and are deleted as they leave the rollback window.
//!   Version 4 adds to `e2e_group_applied` the commit's time (from its authenticated data)
//!   and its sender's UID: the ordering key of a late commit ("Groups", commit ordering).
//!
//! # Secure delete
//!
//! The `openmls_*` tables hold private keys (KeyPackage init and leaf keys,
//! epoch secrets). SQLite has no per-table secure delete: `PRAGMA
//! secure_delete` is a setting of a *connection* (per attached database), not
//! stored in the file, and covers every table that connection deletes from.
//! So it is turned on where MLS state is written: for good on the
//! connections this crate owns ([`E2eStore::open`],
//! [`E2eStore::open_in_memory`], [`E2eStore::migrate_connection`], via
//! [`secure_delete_on`]), and on a borrowed connection
//! ([`E2eStore::from_connection`]: the node's `rhizo-store` connection) for
//! the duration of each unit of MLS work (every state-changing call runs in
//! one), then set back. Not for good on the node's connection: its other
//! tables (messages, mailbox, peer book) hold no MLS secrets, and zeroing on
//! their hot paths would be work for nothing. Deleted and overwritten content is zeroed in the page (and freed
//! pages are zeroed) instead of lingering in free space. In WAL mode the old
//! page images stay in the `-wal` file until a checkpoint copies the zeroed
//! pages back and the log is restarted or truncated.
//!
//! Every name is prefixed (`openmls_`, `vc_`, `registered_vc_`, `e2e_`), so
//! the tables coexist with `rhizo-store`'s in one file.

#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::SqliteStorageProvider;
use openmls_traits::OpenMlsProvider;
use rusqlite::{Connection, OptionalExtension};

use crate::E2eError;

mod codec;
pub(crate) use codec::{BINARY_TAG, StoreCodec};

/// Version of the `e2e_*` tables this build reads and writes.
pub const SCHEMA_VERSION: u32 = 4;

/// How long a statement waits for another connection's lock (the node's own
/// `rhizo-store` connection to the same file) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The `e2e_*` tables, version 1.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS e2e_conversations (
    group_id BLOB PRIMARY KEY,
    sent_since_commit INTEGER NOT NULL,
    last_commit_at INTEGER NOT NULL,
    pending_commit BLOB,
    pending_commit_epoch INTEGER,
    pending_commit_at INTEGER,
    deferred_dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS e2e_deferred (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    message_hash BLOB NOT NULL,
    message BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (group_id, message_hash)
);
CREATE INDEX IF NOT EXISTS e2e_deferred_group ON e2e_deferred (group_id, id);
";

/// The `e2e_*` tables added in version 2: our own published KeyPackages (by
/// TLS-serialized KeyPackageRef), with the time each was superseded.
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS e2e_own_key_packages (
    hash_ref BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE INDEX IF NOT EXISTS e2e_own_key_packages_retired
    ON e2e_own_key_packages (retired_at) WHERE retired_at IS NOT NULL;
";

/// Our one-time KeyPackages a Welcome used, with the time of first use: openmls deletes such a
/// KeyPackage when a Welcome uses it; rhizo puts it back and keeps it for
/// [`USED_KEY_PACKAGE_GRACE_SECS`](crate::USED_KEY_PACKAGE_GRACE_SECS), so that a second Welcome
/// made from the same (stale) bundle joins too
/// ([`delete_used_key_packages`](crate::delete_used_key_packages)).
const SCHEMA_USED_KEY_PACKAGES: &str = "
CREATE TABLE IF NOT EXISTS e2e_used_key_packages (
    hash_ref BLOB PRIMARY KEY,
    used_at INTEGER NOT NULL
) STRICT;
";

/// The `e2e_*` tables added in version 3 (groups): per group, the commit applied in each of
/// the last [`ROLLBACK_EPOCHS`](rhizo_core::group::ROLLBACK_EPOCHS) epochs and a copy of the
/// group's openmls rows from before it (`tbl` names the openmls table, `c0..c4` its columns).
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS e2e_group_applied (
    group_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    commit_id BLOB NOT NULL,
    PRIMARY KEY (group_id, epoch)
);
CREATE TABLE IF NOT EXISTS e2e_group_snapshots (
    group_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    seq INTEGER NOT NULL,
    c0, c1, c2, c3, c4,
    PRIMARY KEY (group_id, epoch, tbl, seq)
);
";

/// Version 4: when each applied group commit was made (its sender's clock, from the commit's
/// authenticated data; NULL when it carries none) and who made it (the sender's UID).
const SCHEMA_V4: &str = "
ALTER TABLE e2e_group_applied ADD COLUMN made_at INTEGER;
ALTER TABLE e2e_group_applied ADD COLUMN sender BLOB;
";

/// Turns on `PRAGMA secure_delete` for `conn` (see the [module docs](self)):
/// deleted MLS secrets are overwritten with zeros in the database file.
///
/// # Errors
///
/// [`E2eError::Storage`] if SQLite refuses the setting.
pub fn secure_delete_on(conn: &Connection) -> Result<(), E2eError> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// Where MLS state lives: an SQLite connection plus the RustCrypto provider.
///
/// Open one per database file and pass `&E2eStore` to every
/// [`Conversation`](crate::Conversation) call. It is `Send` but not `Sync`
/// (like [`rusqlite::Connection`]): keep it on one thread at a time, e.g.
/// behind the node's blocking task.
///
/// # Persistence contract
///
/// Every call that changes MLS state ([`create_key_packages`](crate::create_key_packages),
/// [`Conversation::create`](crate::Conversation::create),
/// [`join`](crate::Conversation::join), [`encrypt`](crate::Conversation::encrypt),
/// [`process`](crate::Conversation::process),
/// [`self_update`](crate::Conversation::self_update),
/// [`confirm_commit`](crate::Conversation::confirm_commit)) runs in one SQLite
/// transaction and has **committed it to disk before it returns** its output.
/// So the caller may send what a call returns as soon as it returns, and
/// must not send anything from a call that failed.
///
/// # Sharing a caller's transaction
///
/// [`from_connection`](Self::from_connection) borrows a connection the caller owns — typically
/// inside the caller's own transaction — so that MLS state changes commit or roll back together
/// with the caller's rows (a received message and its seen-set entry, say). Each call then runs
/// in a SAVEPOINT and is durable only when the caller's transaction commits.
pub struct E2eStore<'c> {
    conn: ConnRef<'c>,
    crypto: RustCrypto,
}

/// An owned connection, or one borrowed from the caller.
enum ConnRef<'c> {
    Owned(Connection),
    Borrowed(&'c Connection),
}

impl std::ops::Deref for ConnRef<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Self::Owned(c) => c,
            Self::Borrowed(c) => c,
        }
    }
}

impl std::fmt::Debug for E2eStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eStore")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

impl<'c> E2eStore<'c> {
    /// Uses a connection the caller owns (and may be inside a transaction on). The MLS tables
    /// must exist: open the file once with [`open`](Self::open) first (or call
    /// [`migrate_connection`](Self::migrate_connection)).
    ///
    /// # Errors
    ///
    /// [`E2eError::Storage`] if the MLS tables are missing.
    pub fn from_connection(conn: &'c Connection) -> Result<Self, E2eError> {
        let present: Option<u32> = conn
            .query_row("SELECT version FROM e2e_schema WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()?;
        if present.is_none() {
            return Err(E2eError::Malformed(
                "MLS tables missing: open the store once first",
            ));
        }
        Ok(Self {
            conn: ConnRef::Borrowed(conn),
            crypto: RustCrypto::default(),
        })
    }

    /// Creates or upgrades the MLS tables on a caller's connection (not inside a transaction).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn migrate_connection(conn: &mut Connection) -> Result<(), E2eError> {
        secure_delete_on(conn)?;
        SqliteStorageProvider::<StoreCodec, &mut Connection>::new(conn)
            .run_migrations()
            .map_err(|e| E2eError::Migration(e.to_string()))?;
        migrate(conn)
    }
}

impl E2eStore<'static> {
    /// Opens (creating if needed, mode 0600 on unix) the SQLite file at
    /// `path` and creates or upgrades the MLS tables in it.
    ///
    /// The file may be the node's shared `rhizo.db`: this uses its own
    /// connection, switches the file to WAL (as `rhizo-store` does), waits up
    /// to 5 s for the other connection's locks, and never touches
    /// `PRAGMA user_version` or tables without its prefixes.
    ///
    /// # Errors
    ///
    /// [`E2eError::CreateFile`] if the file cannot be created,
    /// [`E2eError::Storage`] if it cannot be opened or is not a database, [`E2eError::Migration`] if openmls' migrations fail,
    /// [`E2eError::SchemaTooNew`] if a newer build wrote the `e2e_*` tables.
    pub fn open(path: &Path) -> Result<Self, E2eError> {
        create_private_file(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        // MLS state must survive power loss once a call returned: a lost
        // commit after its message went out desynchronises the group.
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn)
    }

    /// An in-memory store for tests: everything is lost when it is dropped.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_in_memory() -> Result<Self, E2eError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, E2eError> {
        E2eStore::migrate_connection(&mut conn)?;
        Ok(Self {
            conn: ConnRef::Owned(conn),
            crypto: RustCrypto::default(),
        })
    }
}

impl E2eStore<'_> {
    /// The openmls provider over this store's connection.
    pub(crate) fn provider(&self) -> MlsProvider<'_> {
        MlsProvider {
            crypto: &self.crypto,
            storage: SqliteStorageProvider::new(&*self.conn),
        }
    }

    /// This store's connection, for the `e2e_*` tables.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts an all-or-nothing unit of work: a transaction, or a savepoint
    /// inside one already open. Dropping the guard without
    /// [`Atomic::commit`] rolls it back.
    pub(crate) fn atomic(&self) -> Result<Atomic<'_>, E2eError> {
        // Secure delete for everything this unit of MLS work deletes or overwrites (see the
        // module docs); a borrowed connection gets its own setting back when the unit ends.
        let secure: bool = self
            .conn
            .query_row("PRAGMA secure_delete", [], |row| row.get(0))?;
        if !secure {
            secure_delete_on(&self.conn)?;
        }
        let nested = !self.conn.is_autocommit();
        // IMMEDIATE takes the write lock up front, so the busy timeout
        // applies instead of a read→write upgrade failing under WAL.
        self.conn.execute_batch(if nested {
            "SAVEPOINT e2e_atomic"
        } else {
            "BEGIN IMMEDIATE"
        })?;
        Ok(Atomic {
            conn: &self.conn,
            nested,
            finished: false,
            restore_secure_delete: !secure,
        })
    }

    /// Writes a consistent copy of the whole database to `path` (tests use it
    /// to clone a device's state).
    #[cfg(test)]
    pub(crate) fn copy_to(&self, path: &Path) -> Result<(), E2eError> {
        let path = path
            .to_str()
            .ok_or(E2eError::Malformed("test path"))?
            .to_owned();
        self.conn.execute("VACUUM INTO ?1", [path])?;
        Ok(())
    }
}

/// Creates `path` with owner-only permissions if it does not exist yet.
fn create_private_file(path: &Path) -> Result<(), E2eError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(E2eError::CreateFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates or checks the `e2e_*` tables.
fn migrate(conn: &mut Connection) -> Result<(), E2eError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS e2e_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );",
    )?;
    let found: Option<u32> = tx
        .query_row("SELECT version FROM e2e_schema WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()?;
    match found {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(E2eError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(found) if found == SCHEMA_VERSION => {}
        Some(found) => {
            if found < 2 {
                tx.execute_batch(SCHEMA_V2)?;
            }
            if found < 3 {
                tx.execute_batch(SCHEMA_V3)?;
            }
            tx.execute_batch(SCHEMA_V4)?;
            tx.execute(
                "UPDATE e2e_schema SET version = ?1 WHERE id = 1",
                [SCHEMA_VERSION],
            )?;
        }
        None => {
            tx.execute_batch(SCHEMA_V1)?;
            tx.execute_batch(SCHEMA_V2)?;
            tx.execute_batch(SCHEMA_V3)?;
            tx.execute_batch(SCHEMA_V4)?;
            tx.execute(
                "INSERT INTO e2e_schema (id, version) VALUES (1, ?1)",
                [SCHEMA_VERSION],
            )?;
        }
    }
    // Not versioned: idempotent, so it is there whatever version the file came from.
    tx.execute_batch(SCHEMA_USED_KEY_PACKAGES)?;
    tx.commit()?;
    Ok(())
}

/// Guard of [`E2eStore::atomic`].
pub(crate) struct Atomic<'a> {
    conn: &'a Connection,
    nested: bool,
    finished: bool,
    /// Turn secure delete off again when the unit ends (it was off before).
    restore_secure_delete: bool,
}

impl Atomic<'_> {
    fn restore(&self) {
        if self.restore_secure_delete
            && let Err(error) = self.conn.pragma_update(None, "secure_delete", "OFF")
        {
            tracing::warn!(%error, "restoring secure_delete failed");
        }
    }
}

impl Atomic<'_> {
    /// Makes the unit of work permanent (durable once the outermost one
    /// commits).
    pub(crate) fn commit(mut self) -> Result<(), E2eError> {
        self.finished = true;
        let done = self.conn.execute_batch(if self.nested {
            "RELEASE e2e_atomic"
        } else {
            "COMMIT"
        });
        self.restore();
        done?;
        Ok(())
    }
}

impl Drop for Atomic<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let rollback = if self.nested {
            "ROLLBACK TO e2e_atomic; RELEASE e2e_atomic"
        } else {
            "ROLLBACK"
        };
        if let Err(error) = self.conn.execute_batch(rollback) {
            tracing::warn!(%error, "rolling back MLS state failed");
        }
        self.restore();
    }
}

/// The [`OpenMlsProvider`] openmls calls: RustCrypto for crypto and
/// randomness, [`SqliteStorageProvider`] on the store's connection.
pub(crate) struct MlsProvider<'a> {
    crypto: &'a RustCrypto,
    storage: SqliteStorageProvider<StoreCodec, &'a Connection>,
}

impl<'a> OpenMlsProvider for MlsProvider<'a> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = SqliteStorageProvider<StoreCodec, &'a Connection>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}
