//! [`Reader`] and [`Tx`]: the two views of the database every table group's methods hang on.
//!
//! ```text
//!   Store::read()  ──► Reader<'_>   every read method, on any connection
//!   Store::write(f) ─► &mut Tx<'_>  every write method; derefs to Reader, so reads
//!                                   inside a transaction are the same methods
//!   Db (db.rs)      ─► &mut Tx<'_>  one job's savepoint inside a group commit
//! ```
//!
//! A write method that changes several rows runs in its own savepoint ([`Atomic`]), so each
//! call still happens completely or not at all, also inside a caller's larger transaction.

use rusqlite::Connection;

use crate::Store;
use crate::error::{SqliteContext, StoreError};
use crate::peer_book::PeerBookLimits;

/// A read-only view of the database: every read method of the store lives here once, and is
/// reached the same way from a [`Store`] ([`Store::read`]), a reader connection
/// ([`Store::open_reader`]) or a write transaction ([`Tx`] derefs to it).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'c> {
    pub(crate) conn: &'c Connection,
    pub(crate) limits: PeerBookLimits,
}

/// A write transaction: the only way to change the database. Obtained from
/// [`Store::write`] or, in the node, from a [`Db`](crate::Db) job; committed by whoever
/// created it after the closure returned `Ok`, rolled back otherwise.
pub struct Tx<'c> {
    pub(crate) read: Reader<'c>,
    /// When (unix ms) the mailbox's store path next purges expired entries
    /// (see [`crate::mailbox::MAILBOX_PURGE_INTERVAL_MS`]).
    pub(crate) mailbox_purge_due: &'c mut i64,
    /// Which group commit of the [`Db`](crate::Db) this transaction is (0 outside one).
    pub(crate) group: u64,
    /// What [`after_commit`](Tx::after_commit) registered, run when the transaction ends.
    pub(crate) hooks: Vec<Hook>,
    /// [`checkpoint_after_commit`](Tx::checkpoint_after_commit) was asked for.
    pub(crate) checkpoint: bool,
}

/// A callback told whether the changes it was registered with were committed.
pub(crate) type Hook = Box<dyn FnOnce(bool) + Send>;

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("group", &self.group)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl<'c> std::ops::Deref for Tx<'c> {
    type Target = Reader<'c>;

    fn deref(&self) -> &Reader<'c> {
        &self.read
    }
}

impl<'c> Tx<'c> {
    /// A view of a connection that is already inside a transaction.
    pub(crate) fn new(
        conn: &'c Connection,
        limits: PeerBookLimits,
        mailbox_purge_due: &'c mut i64,
    ) -> Self {
        Self {
            read: Reader { conn, limits },
            mailbox_purge_due,
            group: 0,
            hooks: Vec::new(),
            checkpoint: false,
        }
    }

    /// Runs `f` once the transaction holding this job's changes ended: `f(true)` after it
    /// committed, `f(false)` when it (or, in a [`Db`](crate::Db) group, this job's savepoint)
    /// was rolled back. Hooks run on the thread that owns the connection, before its next
    /// transaction begins, so in-memory state that mirrors the database (a cache of loaded
    /// MLS conversations) can follow exactly what was committed.
    pub fn after_commit(&mut self, f: impl FnOnce(bool) + Send + 'static) {
        self.hooks.push(Box::new(f));
    }

    /// Asks the connection's owner to checkpoint the write-ahead log (`TRUNCATE`) once this
    /// transaction committed, e.g. after deleting secrets, so the zeroed pages (secure delete)
    /// replace the old page images in the file and the log is emptied. A checkpoint cannot run
    /// inside a transaction; best effort (busy readers delay it to a later request).
    pub fn checkpoint_after_commit(&mut self) {
        self.checkpoint = true;
    }

    /// Which group commit of the [`Db`](crate::Db) this job runs in: the same number for every
    /// job committed together, a larger one for each later group (0 outside a `Db`). Lets a
    /// caller count the transactions its jobs took.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// Runs `f` inside a savepoint: what it changed is kept when it returns `Ok` and rolled
    /// back when it returns `Err`, leaving the transaction usable either way. This is how one
    /// transaction applies several independent items (group commit) where each may be refused
    /// on its own. The outer `Result` is the savepoint's own failure.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite refuses the savepoint itself.
    pub fn in_savepoint<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let savepoint = Atomic::begin(self.read.conn).context("using a savepoint")?;
        let out = f(self);
        if out.is_ok() {
            savepoint.commit().context("using a savepoint")?;
        } else {
            savepoint.rollback().context("using a savepoint")?;
        }
        Ok(out)
    }

    /// Runs `f` in a savepoint of its own, so a write method that changes several rows happens
    /// completely or not at all, also inside a larger transaction.
    pub(crate) fn atomic<T>(
        &self,
        f: impl FnOnce(&Atomic<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let savepoint = Atomic::begin(self.read.conn).context("starting a savepoint")?;
        // On an error the savepoint is dropped unreleased, which rolls it back.
        let out = f(&savepoint)?;
        savepoint.commit().context("releasing a savepoint")?;
        Ok(out)
    }

    /// Opens the MLS state ([`rhizo_e2e::E2eStore`]) on this transaction's connection: MLS
    /// changes then commit or roll back together with this transaction's rows.
    ///
    /// # Errors
    ///
    /// [`rhizo_e2e::E2eError`] if the MLS tables are missing.
    pub fn mls(&self) -> Result<rhizo_e2e::E2eStore<'c>, rhizo_e2e::E2eError> {
        rhizo_e2e::E2eStore::from_connection(self.read.conn)
    }
}

/// A savepoint on a borrowed connection: released by [`commit`](Self::commit), rolled back by
/// [`rollback`](Self::rollback) or when dropped unreleased. It derefs to the connection, so a
/// method body reads like one on a `rusqlite::Transaction`.
pub(crate) struct Atomic<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Atomic<'c> {
    /// Opens a savepoint (nested savepoints of the same name shadow each other in SQLite).
    pub(crate) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("SAVEPOINT atomic")?;
        Ok(Self { conn, open: true })
    }

    /// Keeps what was done since [`begin`](Self::begin).
    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.open = false;
        self.conn.execute_batch("RELEASE atomic")
    }

    /// Undoes what was done since [`begin`](Self::begin).
    pub(crate) fn rollback(mut self) -> rusqlite::Result<()> {
        self.open = false;
        self.conn
            .execute_batch("ROLLBACK TO atomic; RELEASE atomic")
    }
}

impl std::ops::Deref for Atomic<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Atomic<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self
                .conn
                .execute_batch("ROLLBACK TO atomic; RELEASE atomic")
        {
            tracing::warn!(error = %e, "could not roll back a savepoint");
        }
    }
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: fsynced before the commit returns. For everything that
    /// acknowledges something to a peer or the user.
    #[default]
    Full,
    /// `synchronous = NORMAL` for this commit: in WAL mode the database stays consistent and
    /// the commit survives a crash of the process, and power loss once any later ordinary
    /// commit has synced the log. Only for changes that are redone if lost (e.g. marking a
    /// message delivered from its receipt: lost → it is sent again and the recipient answers
    /// "already have it").
    Relaxed,
}

impl Store {
    /// The read view of this connection.
    pub fn read(&self) -> Reader<'_> {
        Reader {
            conn: &self.conn,
            limits: self.limits,
        }
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`) and commits it when `f` returns
    /// `Ok` (fsynced: [`Durability::Full`]); rolls everything back when it returns `Err`.
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`StoreError`] if the transaction cannot begin or commit.
    pub fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write_with(Durability::Full, f)
    }

    /// [`write`](Self::write) with the given [`Durability`] for its commit.
    ///
    /// # Errors
    ///
    /// What `f` returns, or [`StoreError`] if the transaction cannot begin or commit.
    pub fn write_with<T, E: From<StoreError>>(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut checkpoint = false;
        let out = self.with_durability(durability, |store| {
            let tx = store
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .context("starting a transaction")?;
            let mut view = Tx::new(&tx, store.limits, &mut store.mailbox_purge_due);
            let out = f(&mut view);
            let hooks = std::mem::take(&mut view.hooks);
            checkpoint = view.checkpoint;
            let committed: Result<T, E> = match out {
                Ok(out) => tx
                    .commit()
                    .context("committing a transaction")
                    .map(|()| out)
                    .map_err(E::from),
                Err(e) => Err(e),
            };
            let ok = committed.is_ok();
            for hook in hooks {
                hook(ok);
            }
            committed
        });
        if out.is_ok() && checkpoint {
            self.checkpoint_best_effort();
        }
        out
    }

    /// Runs `f` (which commits) with `synchronous = NORMAL` when `durability` is relaxed, and
    /// sets it back to FULL afterwards whatever `f` did.
    pub(crate) fn with_durability<T, E: From<StoreError>>(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        const CTX: &str = "switching the sync mode";
        if durability == Durability::Full {
            return f(self);
        }
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .context(CTX)?;
        let out = f(self);
        // Back to FULL before anything else commits; if even that failed, say so.
        self.conn
            .execute_batch("PRAGMA synchronous = FULL")
            .context(CTX)?;
        out
    }
}
