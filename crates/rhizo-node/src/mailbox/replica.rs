//! [`MailboxReplica`]: the replica as the node runs it. The rules are
//! [`rhizo_engine::mailbox`]'s; this runs them off the event loop, on the database's readers
//! (signatures, then the read-only quota or device-list check, on the last committed state, so
//! nothing waits for a commit in progress), and hands what passed to the [`ReplicaWriter`] or,
//! for a fetch or delete, to one write job.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rhizo_core::{
    envelope::ErrorCode,
    mailbox::{MailboxRequest, MailboxResponse, NonceBook, mailbox_key},
};
use rhizo_engine::mailbox::{
    Authorized, CheckedStore, ReplicaContext, authorize, challenge, check_store, error, serve,
};
use rhizo_store::{Db, DbError, Durability, Reader};
use tracing::warn;

use super::{MAX_PENDING_STORES, NONCE_BOOK_CAPACITY, ReplicaWriter, ReplicaWriterStats};
use crate::clock::{SharedClock, SystemClock};

/// The replica as the node runs it (cheap to clone): each request is checked on a database
/// reader, with nothing locked while a signature is verified; a store that passed goes to the
/// [`ReplicaWriter`] and is answered after its group committed.
#[derive(Clone)]
pub struct MailboxReplica {
    inner: Arc<ReplicaShared>,
}

impl std::fmt::Debug for MailboxReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxReplica")
            .field("writer", &self.writer_stats())
            .finish_non_exhaustive()
    }
}

struct ReplicaShared {
    db: Db,
    context: ReplicaContext,
    nonces: Mutex<NonceBook>,
    writer: ReplicaWriter,
    clock: SharedClock,
    /// Refuses stores for mailboxes this node is not among the closest peers to (`None`: takes
    /// any, as in tests and benchmarks).
    neighbourhood: Option<Neighbourhood>,
}

/// Whether this node should hold a mailbox: given the mailbox key, answers `false` when this
/// node is not among the closest peers to it (by its own routing table, with slack).
pub type Neighbourhood = Arc<dyn Fn([u8; 32]) -> BoxFuture<'static, bool> + Send + Sync>;

/// What the checking part of [`MailboxReplica::handle`] decided.
enum Step {
    /// The answer (a refusal, or a challenge).
    Answer(MailboxResponse),
    /// A checked store, for the writer.
    Commit(CheckedStore),
    /// A checked fetch or delete, for one write job.
    Serve(Authorized),
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    // getrandom only fails on platforms without an entropy source; a zero nonce would still be
    // single-use (the book refuses a second take) but is logged.
    if let Err(e) = getrandom::fill(&mut b) {
        warn!(error = %e, "no randomness for a mailbox nonce");
    }
    b
}

impl MailboxReplica {
    /// A replica over `db`, on the system clock.
    pub fn new(db: Db, context: ReplicaContext) -> Self {
        Self::with_neighbourhood(db, context, None, Arc::new(SystemClock))
    }

    /// A replica over `db` that stores only for mailboxes `neighbourhood` says are its
    /// business.
    pub fn with_neighbourhood(
        db: Db,
        context: ReplicaContext,
        neighbourhood: Option<Neighbourhood>,
        clock: SharedClock,
    ) -> Self {
        let writer =
            ReplicaWriter::new(db.clone(), context.quota, MAX_PENDING_STORES, clock.clone());
        Self {
            inner: Arc::new(ReplicaShared {
                db,
                context,
                nonces: Mutex::new(NonceBook::new(NONCE_BOOK_CAPACITY)),
                writer,
                clock,
                neighbourhood,
            }),
        }
    }

    /// Answers one request (as [`handle_request`](rhizo_engine::mailbox::handle_request)
    /// would, with the node's clock); a store is answered only after the transaction holding
    /// it committed. Must run inside a tokio runtime.
    pub async fn handle(&self, payload: Vec<u8>) -> MailboxResponse {
        let request = match MailboxRequest::decode(&payload) {
            Ok(r) => r,
            Err(e) => return error(e.code(), e.to_string()),
        };
        drop(payload);
        self.handle_request(request).await
    }

    /// Answers one decoded request (see [`handle`](Self::handle)).
    pub async fn handle_request(&self, request: MailboxRequest) -> MailboxResponse {
        if let (MailboxRequest::Store { recipient, .. }, Some(neighbourhood)) =
            (&request, &self.inner.neighbourhood)
            && !neighbourhood(mailbox_key(recipient)).await
        {
            return error(
                ErrorCode::QuotaExceeded,
                "this node is not among the closest peers of this mailbox: store it on a closer \
                 one",
            );
        }
        let now = self.inner.clock.now_ms();
        if let MailboxRequest::Challenge { recipient } = request {
            return challenge(&self.inner.nonces, recipient, now, random32());
        }
        let this = self.clone();
        let step = self
            .inner
            .db
            .read(move |r| Ok::<_, DbError>(this.check(r, now, request)))
            .await
            .unwrap_or_else(|e| Step::Answer(error(ErrorCode::Internal, e.to_string())));
        match step {
            Step::Answer(response) => response,
            Step::Commit(checked) => self.inner.writer.store(checked).await,
            Step::Serve(authorized) => self.serve(now, authorized).await,
        }
    }

    /// How the group commit went so far.
    pub fn writer_stats(&self) -> ReplicaWriterStats {
        self.inner.writer.stats()
    }

    /// The checking part of [`handle`](Self::handle), on a database reader: signatures, then
    /// the read-only quota or device-list version.
    fn check(&self, reader: Reader<'_>, now: i64, request: MailboxRequest) -> Step {
        let shared = &self.inner;
        match request {
            MailboxRequest::Store {
                recipient,
                envelope,
                ttl_secs,
                sender_cert,
            } => {
                let quota = shared.context.quota;
                let quota_check = |entry: &rhizo_store::mailbox::NewMailboxEntry<'_>| {
                    reader.mailbox_check_quota(entry, &quota, now)
                };
                match check_store(quota_check, now, recipient, envelope, ttl_secs, sender_cert) {
                    Ok(checked) => Step::Commit(checked),
                    Err(refused) => Step::Answer(refused),
                }
            }
            other => {
                let min_version = |uid: &[u8; 32]| reader.mailbox_device_list_version(uid);
                match authorize(&shared.context, &shared.nonces, min_version, now, other) {
                    Ok(authorized) => Step::Serve(authorized),
                    Err(refused) => Step::Answer(refused),
                }
            }
        }
    }

    /// The writing half of a fetch or delete, as one job of the database's group commit.
    async fn serve(&self, now: i64, authorized: Authorized) -> MailboxResponse {
        let job = move |tx: &mut rhizo_store::Tx<'_>| Ok::<_, DbError>(serve(tx, now, authorized));
        match self.inner.db.try_write(Durability::Full, job) {
            Ok(pending) => pending
                .await
                .unwrap_or_else(|e| error(ErrorCode::Internal, e.to_string())),
            Err(DbError::Busy) => error(
                ErrorCode::RateLimited,
                "this replica is too busy to answer; retry shortly",
            ),
            Err(e) => error(ErrorCode::Internal, e.to_string()),
        }
    }
}
