//! [`Db`]: the one owner of the database. One writer thread group-commits every write; a few
//! reader threads answer reads on their own read-only connections.
//!
//! ```text
//!   db.write(f).await ──┐                    writer thread (owns the Store)
//!   db.try_write(f) ────┤ bounded queue ──►  take ≤ group jobs ─► BEGIN IMMEDIATE
//!                       │  (Busy if full)      job 1: SAVEPOINT … RELEASE  (or ROLLBACK TO: only
//!                       │                      job 2: SAVEPOINT … RELEASE   its own rows go)
//!                       │                      …
//!                       │                    COMMIT (one fsync) ─► answer every job
//!   db.read(f).await ───┴─► bounded queue ─► reader threads, one read-only connection each
//! ```
//!
//! Persist before acknowledging: a job's answer is sent only after the commit that holds its
//! rows returned. A job that fails rolls back its own savepoint; its neighbours still commit.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::error::SqliteContext;
use crate::tx::{Atomic, Durability, Hook, Reader, Tx};
use crate::{Store, StoreError};

/// Write jobs waiting for the writer; beyond this `write` waits and `try_write` is refused.
pub const DEFAULT_WRITE_QUEUE: usize = 1024;
/// Most jobs in one group commit: enough to amortise the fsync over a burst, small enough that
/// the first job of a group is not held long.
pub const DEFAULT_GROUP: usize = 64;
/// Reader threads (each with its own read-only connection).
pub const DEFAULT_READERS: usize = 2;
/// Read jobs waiting for a reader; beyond this `read` waits.
pub const DEFAULT_READ_QUEUE: usize = 256;

/// How a [`Db`] is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbConfig {
    /// Write jobs that may wait for the writer ([`DEFAULT_WRITE_QUEUE`]).
    pub write_queue: usize,
    /// Most jobs per group commit ([`DEFAULT_GROUP`]).
    pub group: usize,
    /// Reader threads ([`DEFAULT_READERS`]); none for an in-memory database, whose reads then
    /// run on the writer.
    pub readers: usize,
    /// Read jobs that may wait for a reader ([`DEFAULT_READ_QUEUE`]).
    pub read_queue: usize,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            write_queue: DEFAULT_WRITE_QUEUE,
            group: DEFAULT_GROUP,
            readers: DEFAULT_READERS,
            read_queue: DEFAULT_READ_QUEUE,
        }
    }
}

/// Why a [`Db`] call did not run or did not commit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The write queue is full ([`Db::try_write`]): nothing was done; try again later.
    #[error("the database is busy (its write queue is full); try again later")]
    Busy,
    /// The database was closed (the node is shutting down): nothing was done.
    #[error("the database is closed")]
    Closed,
    /// The store failed while running the job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The group commit that held this job's changes failed: none of them were kept.
    #[error("committing to the database failed; nothing of this change was kept")]
    Commit(#[source] Arc<StoreError>),
    /// The job panicked; its changes were rolled back.
    #[error("a database job panicked; its changes were rolled back")]
    Panicked,
}

/// How many commits and jobs the writer has done (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbStats {
    /// Transactions committed (each one `fsync` at most).
    pub commits: u64,
    /// Of them, those committed with [`Durability::Full`] (one `fsync` each); the rest were
    /// relaxed (no `fsync` of their own).
    pub durable_commits: u64,
    /// Write jobs run (committed or rolled back).
    pub jobs: u64,
    /// Write jobs refused by [`Db::try_write`] because the queue was full.
    pub busy: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    durable_commits: AtomicU64,
    jobs: AtomicU64,
    busy: AtomicU64,
}

/// One write job, its result kept until the group's commit decided its fate.
trait WriteJob: Send {
    fn durability(&self) -> Durability;
    /// Runs the job; true if it succeeded (its savepoint is kept).
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Answers the caller once the group's commit returned.
    fn finish(self: Box<Self>, committed: Result<(), &Arc<StoreError>>);
}

struct TypedJob<F, T, E> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    panicked: bool,
    durability: Durability,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> WriteJob for TypedJob<F, T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send,
    T: Send,
    E: From<DbError> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        match catch_unwind(AssertUnwindSafe(|| f(tx))) {
            Ok(out) => {
                let ok = out.is_ok();
                self.out = Some(out);
                ok
            }
            Err(_) => {
                self.panicked = true;
                false
            }
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), &Arc<StoreError>>) {
        let answer = match (self.out, committed) {
            // Its own failure stands whatever happened to the group.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(E::from(DbError::Commit(Arc::clone(e)))),
            (None, Ok(())) if self.panicked => Err(E::from(DbError::Panicked)),
            (None, Ok(())) => Err(E::from(DbError::Closed)),
        };
        // The caller may have stopped waiting; then nobody needs the answer.
        let _ = self.reply.send(answer);
    }
}

/// What the writer thread is asked to do.
enum Job {
    /// A write, group-committed with its neighbours.
    Write(Box<dyn WriteJob>),
    /// A read on the writer's connection (an in-memory database has no readers).
    Read(ReadJob),
}

type ReadJob = Box<dyn FnOnce(Reader<'_>) + Send>;

/// The database's one owner: a cloneable handle to the writer thread and the reader pool.
///
/// Dropping the last handle closes the queues; the threads finish the jobs already queued and
/// exit.
#[derive(Debug, Clone)]
pub struct Db {
    writer: mpsc::Sender<Job>,
    readers: Option<mpsc::Sender<ReadJob>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Write(_) => "Job::Write",
            Self::Read(_) => "Job::Read",
        })
    }
}

impl Db {
    /// Takes ownership of `store` and starts the writer thread and, for a database in a file,
    /// `config.readers` reader threads.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if a reader connection cannot be opened, or a thread cannot be spawned.
    pub fn start(store: Store, config: DbConfig) -> Result<Self, StoreError> {
        let counters = Arc::new(Counters::default());
        let mut reader_stores = Vec::new();
        if store.conn.path().is_some_and(|p| !p.is_empty()) {
            for _ in 0..config.readers {
                reader_stores.push(store.open_reader()?);
            }
        }
        let readers = if reader_stores.is_empty() {
            None
        } else {
            let (tx, rx) = mpsc::channel::<ReadJob>(config.read_queue.max(1));
            let rx = Arc::new(std::sync::Mutex::new(rx));
            for (i, reader) in reader_stores.into_iter().enumerate() {
                let rx = Arc::clone(&rx);
                spawn(format!("rhizo-db-reader-{i}"), move || {
                    reader_loop(&reader, &rx)
                })?;
            }
            Some(tx)
        };
        let (writer, rx) = mpsc::channel(config.write_queue.max(1));
        let group = config.group.max(1);
        let thread_counters = Arc::clone(&counters);
        spawn("rhizo-db-writer".into(), move || {
            writer_loop(store, rx, group, &thread_counters);
        })?;
        Ok(Self {
            writer,
            readers,
            counters,
        })
    }

    /// Runs `f` in the next group commit, waiting for room in the queue, and returns its result
    /// once the commit holding its changes returned (fsynced: [`Durability::Full`]). When `f`
    /// fails, only its own changes are rolled back.
    ///
    /// # Errors
    ///
    /// What `f` returns; [`DbError::Closed`] if the database was closed,
    /// [`DbError::Commit`] if the group's commit failed.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.write_with(Durability::Full, f).await
    }

    /// [`write`](Self::write) with the given [`Durability`]; a group is committed durably if
    /// any of its jobs needs it.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub async fn write_with<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (job, pending) = typed_job(durability, f);
        if self.writer.send(Job::Write(job)).await.is_err() {
            return Err(E::from(DbError::Closed));
        }
        pending.await
    }

    /// Queues `f` for the next group commit without waiting for room: [`DbError::Busy`] (and
    /// nothing done) when the queue is full. For writes driven by the network, which must not
    /// pile up. Await the returned [`Pending`] for `f`'s result, after its commit.
    ///
    /// # Errors
    ///
    /// [`DbError::Busy`] if the queue is full, [`DbError::Closed`] if the database was closed.
    pub fn try_write<T, E, F>(&self, durability: Durability, f: F) -> Result<Pending<T, E>, DbError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (job, pending) = typed_job(durability, f);
        match self.writer.try_send(Job::Write(job)) {
            Ok(()) => Ok(pending),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.busy.fetch_add(1, Ordering::Relaxed);
                Err(DbError::Busy)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(DbError::Closed),
        }
    }

    /// Runs `f` on a reader connection (the last committed state), waiting for room in the
    /// read queue.
    ///
    /// # Errors
    ///
    /// What `f` returns; [`DbError::Closed`] if the database was closed.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(Reader<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |reader| {
            let out = catch_unwind(AssertUnwindSafe(|| f(reader)))
                .unwrap_or_else(|_| Err(E::from(DbError::Panicked)));
            let _ = reply.send(out);
        });
        let sent = match &self.readers {
            Some(readers) => readers.send(job).await.is_ok(),
            None => self.writer.send(Job::Read(job)).await.is_ok(),
        };
        if !sent {
            return Err(E::from(DbError::Closed));
        }
        Pending { rx }.await
    }

    /// Commits and jobs so far.
    pub fn stats(&self) -> DbStats {
        DbStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            durable_commits: self.counters.durable_commits.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            busy: self.counters.busy.load(Ordering::Relaxed),
        }
    }
}

/// The answer to a queued job: resolves once the job ran and its commit returned.
#[derive(Debug)]
pub struct Pending<T, E> {
    rx: oneshot::Receiver<Result<T, E>>,
}

impl<T, E: From<DbError>> Future for Pending<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(E::from(DbError::Closed))))
    }
}

fn typed_job<T, E, F>(durability: Durability, f: F) -> (Box<dyn WriteJob>, Pending<T, E>)
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job = TypedJob {
        f: Some(f),
        out: None,
        panicked: false,
        durability,
        reply,
    };
    (Box::new(job), Pending { rx })
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map(drop)
        .map_err(|e| StoreError::InvalidInput(format!("cannot start a database thread: {e}")))
}

fn reader_loop(store: &Store, rx: &std::sync::Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // One reader waits on the queue at a time; the others wait for the lock.
        let job = match rx.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else {
            return;
        };
        job(store.read());
    }
}

fn writer_loop(mut store: Store, mut rx: mpsc::Receiver<Job>, group: usize, counters: &Counters) {
    let mut next: Option<Job> = None;
    loop {
        let Some(first) = next.take().or_else(|| rx.blocking_recv()) else {
            return;
        };
        let first = match first {
            Job::Write(job) => job,
            Job::Read(job) => {
                job(store.read());
                continue;
            }
        };
        let mut jobs = vec![first];
        while jobs.len() < group {
            match rx.try_recv() {
                Ok(Job::Write(job)) => jobs.push(job),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_group(&mut store, jobs, counters);
    }
}

/// Runs `jobs` in one transaction, a savepoint each, commits once, then answers each.
fn commit_group(store: &mut Store, mut jobs: Vec<Box<dyn WriteJob>>, counters: &Counters) {
    let durability = if jobs.iter().any(|j| j.durability() == Durability::Full) {
        Durability::Full
    } else {
        Durability::Relaxed
    };
    // Hooks of jobs whose savepoint was kept (told the group's fate), and of jobs rolled back.
    let mut kept: Vec<Hook> = Vec::new();
    let mut dropped: Vec<Hook> = Vec::new();
    // Whether a kept job asked for a checkpoint once the group committed.
    let mut checkpoint = false;
    let result = store.with_durability(durability, |store| -> Result<(), StoreError> {
        let tx = store
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context("starting a group commit")?;
        let mut view = Tx::new(&tx, store.limits, &mut store.mailbox_purge_due);
        // Numbered as the commit it becomes (a failed group's number is used again).
        view.group = counters.commits.load(Ordering::Relaxed) + 1;
        for job in &mut jobs {
            let savepoint = Atomic::begin(&tx).context("starting a job's savepoint")?;
            let ok = job.run(&mut view);
            let hooks = std::mem::take(&mut view.hooks);
            let asked = std::mem::take(&mut view.checkpoint);
            if ok {
                checkpoint |= asked;
                kept.extend(hooks);
                savepoint.commit().context("releasing a job's savepoint")?;
            } else {
                dropped.extend(hooks);
                savepoint
                    .rollback()
                    .context("rolling back a job's savepoint")?;
            }
        }
        tx.commit().context("committing a group")
    });
    if result.is_ok() && checkpoint {
        store.checkpoint_best_effort();
    }
    for hook in dropped {
        hook(false);
    }
    for hook in kept {
        hook(result.is_ok());
    }
    counters
        .jobs
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    let result = result.map_err(Arc::new);
    if result.is_ok() {
        counters.commits.fetch_add(1, Ordering::Relaxed);
        if durability == Durability::Full {
            counters.durable_commits.fetch_add(1, Ordering::Relaxed);
        }
    } else if let Err(e) = &result {
        tracing::warn!(error = %e, jobs = jobs.len(), "a group commit failed");
    }
    for job in jobs {
        job.finish(result.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests;
