//! [`ReplicaWriter`]: the replica's stores go through the database's own group commit
//! ([`Db::try_write`]), shared with every other write of the node: a checked store is one job
//! (its own savepoint), answered only after the transaction holding it committed.

use std::future::Future;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use rhizo_core::{envelope::ErrorCode, mailbox::MailboxResponse};
use rhizo_engine::mailbox::{CheckedStore, commit_stores, error};
use rhizo_store::{Db, DbError, Durability, mailbox::MailboxQuota};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::clock::SharedClock;

/// The replica's writing half (cheap to clone): at most `capacity` checked stores wait for the
/// database at once; more, or a full database queue, are answered `RATE_LIMITED` at once.
#[derive(Debug, Clone)]
pub struct ReplicaWriter {
    db: Db,
    quota: MailboxQuota,
    clock: SharedClock,
    waiting: Arc<Semaphore>,
    counters: Arc<WriterCounters>,
}

#[derive(Debug, Default)]
struct WriterCounters {
    /// Transactions that held at least one of our stores.
    commits: AtomicU64,
    /// The database group the last of our stores ran in.
    last_group: AtomicU64,
    stores: AtomicU64,
    refused_busy: AtomicU64,
}

/// Counters of a [`ReplicaWriter`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaWriterStats {
    /// Transactions that committed stores for others (one `fsync` each; the database's group
    /// commit may hold other writes of the node in the same one).
    pub commits: u64,
    /// Stores answered from those transactions.
    pub stores: u64,
    /// Stores answered `RATE_LIMITED` because too many were waiting.
    pub refused_busy: u64,
}

fn busy() -> MailboxResponse {
    error(
        ErrorCode::RateLimited,
        "this replica has too many stores waiting to be written; retry shortly",
    )
}

impl ReplicaWriter {
    /// A writer over `db`, with room for `capacity` waiting stores (at least 1).
    pub fn new(db: Db, quota: MailboxQuota, capacity: usize, clock: SharedClock) -> Self {
        Self {
            db,
            quota,
            clock,
            waiting: Arc::new(Semaphore::new(capacity.max(1))),
            counters: Arc::default(),
        }
    }

    /// Queues `checked` for the database's next group; the future answers once that group
    /// committed. Too many waiting, or a full database queue: `Err` with a `RATE_LIMITED`
    /// refusal, at once.
    pub fn submit(
        &self,
        checked: CheckedStore,
    ) -> Result<impl Future<Output = MailboxResponse> + Send + 'static, MailboxResponse> {
        let Ok(permit) = self.waiting.clone().try_acquire_owned() else {
            self.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
            return Err(busy());
        };
        let (quota, clock) = (self.quota, self.clock.clone());
        let counters = self.counters.clone();
        let job = move |tx: &mut rhizo_store::Tx<'_>| -> Result<MailboxResponse, DbError> {
            // Jobs run one after the other on the database's writer: a new group number is a
            // new transaction holding our stores.
            if counters.last_group.swap(tx.group(), Ordering::Relaxed) != tx.group() {
                counters.commits.fetch_add(1, Ordering::Relaxed);
            }
            let mut answers = commit_stores(tx, &quota, &[checked], clock.now_ms())?;
            Ok(answers
                .pop()
                .unwrap_or_else(|| error(ErrorCode::Internal, "the store was not committed")))
        };
        let pending = match self.db.try_write(Durability::Full, job) {
            Ok(pending) => pending,
            Err(DbError::Busy) => {
                self.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
                return Err(busy());
            }
            Err(e) => return Err(error(ErrorCode::Internal, e.to_string())),
        };
        let counters = self.counters.clone();
        Ok(async move {
            let answer = pending.await;
            drop(permit);
            match answer {
                Ok(answer) => {
                    counters.stores.fetch_add(1, Ordering::Relaxed);
                    answer
                }
                Err(e) => {
                    warn!(error = %e, "a mailbox store was not committed");
                    error(ErrorCode::Internal, e.to_string())
                }
            }
        })
    }

    /// [`submit`](Self::submit), then waits for the answer.
    pub async fn store(&self, checked: CheckedStore) -> MailboxResponse {
        match self.submit(checked) {
            Ok(answer) => answer.await,
            Err(refused) => refused,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> ReplicaWriterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReplicaWriterStats {
            commits: get(&self.counters.commits),
            stores: get(&self.counters.stores),
            refused_busy: get(&self.counters.refused_busy),
        }
    }
}
