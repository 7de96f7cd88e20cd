//! Offline delivery over `/rhizo/mailbox/1`: the replica this node runs for others, and the
//! client side that stores in, fetches from and deletes from other nodes' replicas.
//!
//! ```text
//!  sender ── Store(envelope) ──▶ 5 nodes closest to SHA-256("rhizo/mailbox/v1" ‖ UID)
//!      replica, on the blocking pool: size, decode, recipient, window ─▶ quota (read-only)
//!        ─▶ signature ─▶ bounded queue (full: RATE_LIMITED) ─▶ ReplicaWriter: up to 64 waiting
//!        stores in ONE SQLite transaction (one fsync) ─▶ each waiter's own StoreOk / refusal
//!  recipient ── Challenge ──▶ replica: fresh single-use nonce (60 s)
//!            ── Fetch(nonce, device list, signature by a listed device) ──▶ envelopes
//!            ── Delete(signed receipt naming the digests) ──▶ gone (tombstoned)
//!  replica ── every `mailbox_replicate_secs`: copy what it holds to the current closest 5
//! ```
//!
//! The replica's request handling ([`handle_request`]) is a plain function over the store, the
//! nonce book and a caller-given clock, so it is unit tested with real SQLite and a controlled
//! clock; [`MailboxReplica`] runs the same checks for the node and commits stores through its
//! [`ReplicaWriter`] (group commit: a store is answered only after the transaction holding it
//! committed); [`Mailbox`] wraps the replica and the network calls.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use libp2p::PeerId;
use rhizo_core::{
    DeviceKey, Uid,
    envelope::{DeliveryReceipt, ErrorCode, MAX_ENVELOPE_BYTES, SecureMessage, envelope_digest},
    mailbox::{
        DEFAULT_TTL_SECS, FetchRequest, FetchedEntry, MAX_FETCH_ENTRIES, MAX_RESPONSE_BYTES,
        MAX_TTL_SECS, MIN_TTL_SECS, MailboxRequest, MailboxResponse, NonceBook, REPLICAS,
        mailbox_key,
    },
    seen::check_timestamp,
};
use rhizo_net::{Client, ClosestPeer};
use rhizo_store::{
    Store, StoreError,
    mailbox::{MailboxOutcome, MailboxQuota, MailboxStored, NewMailboxEntry},
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Nonces a replica keeps outstanding at once (oldest evicted first).
const NONCE_BOOK_CAPACITY: usize = 4096;
/// How long a closest-peers answer is reused for stores to the same mailbox.
const CLOSEST_CACHE_TTL: Duration = Duration::from_secs(30);
/// Mailboxes whose closest peers are cached.
const CLOSEST_CACHE_ENTRIES: usize = 256;
/// Candidates tried per store beyond the first [`REPLICAS`] (when some refuse or are down).
const EXTRA_CANDIDATES: usize = 10;
/// Envelopes copied per recipient per re-replication pass.
const REPLICATE_BATCH: usize = 256;
/// Bytes of envelopes a fetch response may carry (the frame limit minus room for framing).
const FETCH_MAX_BYTES: usize = MAX_RESPONSE_BYTES - 64 * 1024;
/// Most stores the replica's writer commits in one transaction (one `fsync` for all of them):
/// enough to carry the node's 64 inbound requests in flight in one commit.
pub const STORE_GROUP: usize = 64;
/// Most checked stores waiting for the replica's writer; more are answered `RATE_LIMITED`
/// rather than queued without bound.
pub const MAX_PENDING_STORES: usize = 256;

/// Settings of the replica and of our use of others' replicas.
#[derive(Debug, Clone, Copy)]
pub struct MailboxSettings {
    /// TTL we ask replicas for when storing (seconds).
    pub ttl_secs: u32,
    /// How often we fetch our own mailbox.
    pub poll: Duration,
    /// How often we re-replicate what we hold.
    pub replicate: Duration,
    /// Quotas of what we hold for others.
    pub quota: MailboxQuota,
}

/// What storing one envelope on the replicas did.
#[derive(Debug, Clone, Default)]
pub struct StoreOutcome {
    /// Replicas that acknowledged (persisted) it.
    pub replicas: u32,
    /// Why the others did not, for the sender's error line.
    pub errors: Vec<String>,
    /// Whether a replica refused because a quota was full.
    pub quota_full: bool,
    /// Whether a replica said the recipient already fetched and acknowledged it.
    pub already_delivered: bool,
}

/// One replica's answer to a fetch.
#[derive(Debug, Clone)]
pub struct Page {
    /// Envelopes held for us.
    pub entries: Vec<FetchedEntry>,
    /// Whether the replica holds more than it returned.
    pub more: bool,
}

/// Where a fetch goes: a remote replica or our own store (we may be among our closest nodes).
#[derive(Debug, Clone)]
pub enum Source {
    /// This node's own mailbox table.
    Local,
    /// A replica.
    Remote(ClosestPeer),
}

/// The replica's fixed context.
#[derive(Debug, Clone)]
pub struct ReplicaContext {
    /// Our PeerId bytes: fetch signatures are bound to them.
    pub local_peer: Vec<u8>,
    /// Quotas.
    pub quota: MailboxQuota,
}

/// The mailbox service (cheap to clone).
#[derive(Clone)]
pub struct Mailbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

/// A closest-peers answer and when it was fetched.
type CachedPeers = (Instant, Vec<ClosestPeer>);

struct Inner {
    store: Arc<Mutex<Store>>,
    client: Client,
    replica: MailboxReplica,
    settings: MailboxSettings,
    closest: Mutex<HashMap<[u8; 32], CachedPeers>>,
    /// Peers each held mailbox was already copied to (re-replication).
    pushed: Mutex<HashMap<[u8; 32], HashSet<PeerId>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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

fn error(code: ErrorCode, detail: impl Into<String>) -> MailboxResponse {
    MailboxResponse::Error {
        code,
        detail: detail.into(),
    }
}

/// Handles one decoded-or-not request as a replica, synchronously: a store is committed alone
/// (a one-entry batch) before it is answered. Cheap checks (size, structure, timestamps, quota)
/// run before any signature verification. The node runs the same checks through
/// [`MailboxReplica`], which commits stores in groups.
pub fn handle_request(
    store: &mut Store,
    context: &ReplicaContext,
    nonces: &Mutex<NonceBook>,
    now_ms: i64,
    random: [u8; 32],
    payload: &[u8],
) -> MailboxResponse {
    match MailboxRequest::decode(payload) {
        Ok(request) => answer_request(store, context, nonces, now_ms, random, request),
        Err(e) => error(e.code(), e.to_string()),
    }
}

/// Answers a decoded request (see [`handle_request`]).
fn answer_request(
    store: &mut Store,
    context: &ReplicaContext,
    nonces: &Mutex<NonceBook>,
    now_ms: i64,
    random: [u8; 32],
    request: MailboxRequest,
) -> MailboxResponse {
    let now_u = u64::try_from(now_ms).unwrap_or(0);
    match request {
        MailboxRequest::Store {
            recipient,
            envelope,
            ttl_secs,
        } => {
            let quota_check = |entry: &NewMailboxEntry<'_>| {
                store.mailbox_check_quota(entry, &context.quota, now_ms)
            };
            match check_store(quota_check, now_ms, recipient, envelope, ttl_secs) {
                Ok(checked) => commit_stores(store, &context.quota, &[checked], now_ms)
                    .map(|mut answers| answers.pop())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| error(ErrorCode::Internal, "the store was not committed")),
                Err(refused) => refused,
            }
        }
        MailboxRequest::Challenge { recipient } => {
            let Ok(mut book) = nonces.lock() else {
                return error(ErrorCode::Internal, "nonce book unavailable");
            };
            let (nonce, expires_at_ms) = book.issue(recipient, random, now_u);
            MailboxResponse::Challenge {
                nonce,
                expires_at_ms,
            }
        }
        MailboxRequest::Fetch(request) => {
            // The nonce is consumed first, whatever follows: a captured request never works
            // twice.
            let taken = match nonces.lock() {
                Ok(mut book) => book.take(&request.recipient, &request.nonce, now_u),
                Err(_) => return error(ErrorCode::Internal, "nonce book unavailable"),
            };
            if let Err(e) = taken {
                return error(e.code(), e.to_string());
            }
            let uid = *request.recipient.as_bytes();
            let min_version = match store.mailbox_device_list_version(&uid) {
                Ok(v) => v,
                Err(e) => return error(ErrorCode::Internal, e.to_string()),
            };
            let authorized = match request.verify(&context.local_peer, now_u / 1000, min_version) {
                Ok(a) => a,
                Err(e) => return error(e.code(), e.to_string()),
            };
            if let Err(e) =
                store.note_mailbox_device_list_version(&uid, authorized.device_list_version, now_ms)
            {
                return error(ErrorCode::Internal, e.to_string());
            }
            let limit = request.max_entries.clamp(1, MAX_FETCH_ENTRIES) as usize;
            match store.mailbox_fetch(&uid, now_ms, limit, FETCH_MAX_BYTES) {
                Ok(page) => {
                    let more = page.more;
                    MailboxResponse::Fetched {
                        entries: page
                            .entries
                            .into_iter()
                            .map(|e| FetchedEntry {
                                envelope: Bytes::from(e.envelope),
                                expires_at_ms: u64::try_from(e.expires_at).unwrap_or(0),
                            })
                            .collect(),
                        more,
                    }
                }
                Err(e) => error(ErrorCode::Internal, e.to_string()),
            }
        }
        MailboxRequest::Delete(request) => {
            let uid = *request.recipient.as_bytes();
            let min_version = match store.mailbox_device_list_version(&uid) {
                Ok(v) => v,
                Err(e) => return error(ErrorCode::Internal, e.to_string()),
            };
            let (authorized, digests) = match request.verify(now_u / 1000, min_version) {
                Ok(v) => v,
                Err(e) => return error(e.code(), e.to_string()),
            };
            if let Err(e) =
                store.note_mailbox_device_list_version(&uid, authorized.device_list_version, now_ms)
            {
                return error(ErrorCode::Internal, e.to_string());
            }
            match store.mailbox_delete(&uid, &digests, now_ms) {
                Ok(n) => MailboxResponse::Deleted {
                    count: u32::try_from(n).unwrap_or(u32::MAX),
                },
                Err(e) => error(ErrorCode::Internal, e.to_string()),
            }
        }
    }
}

/// A store request that passed every check a replica makes before committing it: size,
/// decoding, recipient, time window, quota (read-only) and the envelope's signature.
#[derive(Debug, Clone)]
pub struct CheckedStore {
    recipient_uid: [u8; 32],
    sender_uid: [u8; 32],
    digest: [u8; 32],
    envelope: Bytes,
    expires_at: i64,
}

impl CheckedStore {
    fn entry(&self) -> NewMailboxEntry<'_> {
        NewMailboxEntry {
            recipient_uid: self.recipient_uid,
            sender_uid: self.sender_uid,
            digest: self.digest,
            envelope: &self.envelope,
            expires_at: self.expires_at,
        }
    }

    /// The answer for this store once the transaction holding it committed with `outcome`.
    fn answer(&self, outcome: MailboxOutcome) -> MailboxResponse {
        match outcome {
            Ok(MailboxStored::AlreadyDelivered) => error(
                ErrorCode::ReplayDetected,
                "the recipient already fetched and acknowledged this envelope",
            ),
            Ok(stored) => MailboxResponse::Stored {
                expires_at_ms: u64::try_from(self.expires_at).unwrap_or(0),
                duplicate: stored == MailboxStored::Duplicate,
            },
            Err(refusal) => error(ErrorCode::QuotaExceeded, refusal.to_string()),
        }
    }
}

/// The checks of a store request, cheapest first: `quota_check` (read-only, see
/// [`Store::mailbox_check_quota`]) runs before the signature is verified, so a full mailbox
/// costs the sender no verification.
fn check_store(
    quota_check: impl FnOnce(&NewMailboxEntry<'_>) -> Result<(), StoreError>,
    now_ms: i64,
    recipient: Uid,
    envelope: Bytes,
    ttl_secs: u32,
) -> Result<CheckedStore, MailboxResponse> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(error(
            ErrorCode::Malformed,
            format!("envelope of {} bytes is over the limit", envelope.len()),
        ));
    }
    let message = SecureMessage::decode(&envelope).map_err(|e| error(e.code(), e.to_string()))?;
    if message.recipient_id != recipient {
        return Err(error(
            ErrorCode::Malformed,
            "the envelope is for another UID",
        ));
    }
    let now_u = u64::try_from(now_ms).unwrap_or(0);
    check_timestamp(message.timestamp, now_u).map_err(|e| error(e.code(), e.to_string()))?;
    let ttl = if ttl_secs == 0 {
        DEFAULT_TTL_SECS
    } else {
        ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
    };
    // Never longer than the recipient would accept the envelope (its replay window).
    let window_end = i64::try_from(message.timestamp)
        .unwrap_or(i64::MAX)
        .saturating_add(rhizo_core::seen::MAX_ENVELOPE_AGE as i64);
    let checked = CheckedStore {
        recipient_uid: *recipient.as_bytes(),
        sender_uid: *message.sender_id.as_bytes(),
        digest: envelope_digest(&envelope),
        expires_at: now_ms.saturating_add(i64::from(ttl) * 1000).min(window_end),
        envelope,
    };
    // Quota before signature work: a full mailbox costs the sender no verification.
    match quota_check(&checked.entry()) {
        Ok(()) => {}
        Err(StoreError::QuotaExceeded(why)) => return Err(error(ErrorCode::QuotaExceeded, why)),
        Err(e) => return Err(error(ErrorCode::Internal, e.to_string())),
    }
    if message.verify(&message.sender_device).is_err() {
        return Err(error(ErrorCode::InvalidSignature, "bad envelope signature"));
    }
    Ok(checked)
}

/// Commits `stores` in one transaction and returns each one's answer, in order; `Err` (nothing
/// was committed) with the reason.
fn commit_stores(
    store: &mut Store,
    quota: &MailboxQuota,
    stores: &[CheckedStore],
    now_ms: i64,
) -> Result<Vec<MailboxResponse>, String> {
    let entries: Vec<NewMailboxEntry<'_>> = stores.iter().map(CheckedStore::entry).collect();
    let outcomes = store
        .mailbox_store_batch(&entries, quota, now_ms)
        .map_err(|e| e.to_string())?;
    Ok(stores
        .iter()
        .zip(outcomes)
        .map(|(checked, outcome)| checked.answer(outcome))
        .collect())
}

/// The replica as the node runs it: each request is checked on the blocking pool (the read-only
/// quota check on a second connection to the database, so it does not wait for a commit in
/// progress; nothing locked while the signature is verified); a store that passed goes to the
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
    store: Arc<Mutex<Store>>,
    context: ReplicaContext,
    nonces: Mutex<NonceBook>,
    /// Started with the first store (on the runtime that handles it).
    writer: OnceLock<ReplicaWriter>,
    /// A second connection for the read-only quota checks, so they do not wait while the
    /// writer holds `store` through a commit (`None`: in-memory store, checks share `store`).
    reader: OnceLock<Option<Mutex<Store>>>,
}

/// What the blocking part of [`MailboxReplica::handle`] decided.
enum Step {
    /// The answer (a refusal, or any request but a store).
    Answer(MailboxResponse),
    /// A checked store, for the writer.
    Commit(CheckedStore),
}

impl MailboxReplica {
    /// A replica over `store`.
    pub fn new(store: Arc<Mutex<Store>>, context: ReplicaContext) -> Self {
        Self {
            inner: Arc::new(ReplicaShared {
                store,
                context,
                nonces: Mutex::new(NonceBook::new(NONCE_BOOK_CAPACITY)),
                writer: OnceLock::new(),
                reader: OnceLock::new(),
            }),
        }
    }

    /// Answers one request (as [`handle_request`] would, with the real clock); a store is
    /// answered only after the transaction holding it committed. Must run inside a tokio
    /// runtime.
    pub async fn handle(&self, payload: Vec<u8>) -> MailboxResponse {
        let this = self.clone();
        let step = tokio::task::spawn_blocking(move || this.check(&payload))
            .await
            .unwrap_or_else(|e| Step::Answer(error(ErrorCode::Internal, e.to_string())));
        match step {
            Step::Answer(response) => response,
            Step::Commit(checked) => self.writer().store(checked).await,
        }
    }

    /// How the group commit went so far (zeros before the first store).
    pub fn writer_stats(&self) -> ReplicaWriterStats {
        self.inner
            .writer
            .get()
            .map(ReplicaWriter::stats)
            .unwrap_or_default()
    }

    fn writer(&self) -> &ReplicaWriter {
        self.inner.writer.get_or_init(|| {
            ReplicaWriter::spawn(
                self.inner.store.clone(),
                self.inner.context.quota,
                MAX_PENDING_STORES,
            )
        })
    }

    /// The connection for read-only checks: the reader (opened on first use), else the store.
    fn check_connection(&self) -> &Mutex<Store> {
        let shared = &self.inner;
        let reader = shared.reader.get_or_init(|| {
            let opened = shared.store.lock().ok()?.open_reader();
            match opened {
                Ok(reader) => Some(Mutex::new(reader)),
                Err(e) => {
                    debug!(error = %e, "mailbox quota checks share the store connection");
                    None
                }
            }
        });
        reader.as_ref().unwrap_or(&shared.store)
    }

    /// The blocking part of [`handle`](Self::handle).
    fn check(&self, payload: &[u8]) -> Step {
        let request = match MailboxRequest::decode(payload) {
            Ok(r) => r,
            Err(e) => return Step::Answer(error(e.code(), e.to_string())),
        };
        let shared = &self.inner;
        let now = now_ms();
        match request {
            MailboxRequest::Store {
                recipient,
                envelope,
                ttl_secs,
            } => {
                let quota_check = |entry: &NewMailboxEntry<'_>| {
                    let store = self
                        .check_connection()
                        .lock()
                        .map_err(|_| StoreError::InvalidInput("store unavailable".into()))?;
                    store.mailbox_check_quota(entry, &shared.context.quota, now)
                };
                match check_store(quota_check, now, recipient, envelope, ttl_secs) {
                    Ok(checked) => Step::Commit(checked),
                    Err(refused) => Step::Answer(refused),
                }
            }
            other => {
                let Ok(mut store) = shared.store.lock() else {
                    return Step::Answer(error(ErrorCode::Internal, "store unavailable"));
                };
                Step::Answer(answer_request(
                    &mut store,
                    &shared.context,
                    &shared.nonces,
                    now,
                    random32(),
                    other,
                ))
            }
        }
    }
}

/// The replica's group commit: ONE task owns the write side of the mailbox; checked stores
/// reach it through a bounded queue, it takes up to [`STORE_GROUP`] waiting ones, commits them
/// in one transaction ([`Store::mailbox_store_batch`], on the blocking pool) and answers each
/// waiter with its own outcome. While one group waits for the disk, the next gathers. Cheap to
/// clone; the task ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ReplicaWriter {
    jobs: mpsc::Sender<StoreJob>,
    counters: Arc<WriterCounters>,
}

/// One checked store and where its answer goes.
#[derive(Debug)]
struct StoreJob {
    store: CheckedStore,
    reply: oneshot::Sender<MailboxResponse>,
}

#[derive(Debug, Default)]
struct WriterCounters {
    commits: AtomicU64,
    stores: AtomicU64,
    refused_busy: AtomicU64,
}

/// Counters of a [`ReplicaWriter`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaWriterStats {
    /// Transactions committed (one `fsync` each).
    pub commits: u64,
    /// Stores answered from those transactions (÷ `commits` = stores per `fsync`).
    pub stores: u64,
    /// Stores answered `RATE_LIMITED` because the queue was full.
    pub refused_busy: u64,
}

impl ReplicaWriter {
    /// Starts the writer task on the current tokio runtime (call it from inside one), with room
    /// for `capacity` waiting stores (at least 1).
    pub fn spawn(store: Arc<Mutex<Store>>, quota: MailboxQuota, capacity: usize) -> Self {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(WriterCounters::default());
        tokio::spawn(run_writer(store, quota, queue, counters.clone()));
        Self { jobs, counters }
    }

    /// Queues `checked` for the next group; the receiver gets its answer once that group
    /// committed. A full queue is answered at once: `Err` with a `RATE_LIMITED` refusal.
    pub fn submit(
        &self,
        checked: CheckedStore,
    ) -> Result<oneshot::Receiver<MailboxResponse>, MailboxResponse> {
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(StoreJob {
            store: checked,
            reply,
        }) {
            Ok(()) => Ok(answer),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
                Err(error(
                    ErrorCode::RateLimited,
                    "this replica has too many stores waiting to be written; retry shortly",
                ))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(error(ErrorCode::Internal, "the mailbox writer stopped"))
            }
        }
    }

    /// [`submit`](Self::submit), then waits for the answer.
    pub async fn store(&self, checked: CheckedStore) -> MailboxResponse {
        match self.submit(checked) {
            Ok(answer) => answer
                .await
                .unwrap_or_else(|_| error(ErrorCode::Internal, "the store was dropped")),
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

/// The writer task (see [`ReplicaWriter`]): until every sender is gone, takes what waits (up to
/// [`STORE_GROUP`]), commits it in one transaction, answers each waiter.
async fn run_writer(
    store: Arc<Mutex<Store>>,
    quota: MailboxQuota,
    mut queue: mpsc::Receiver<StoreJob>,
    counters: Arc<WriterCounters>,
) {
    let mut jobs = Vec::with_capacity(STORE_GROUP);
    while queue.recv_many(&mut jobs, STORE_GROUP).await > 0 {
        let (stores, replies): (Vec<CheckedStore>, Vec<oneshot::Sender<MailboxResponse>>) =
            jobs.drain(..).map(|job| (job.store, job.reply)).unzip();
        let store = store.clone();
        let committed = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().map_err(|_| "store unavailable".to_string())?;
            commit_stores(&mut store, &quota, &stores, now_ms())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match committed {
            Ok(answers) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .stores
                    .fetch_add(answers.len() as u64, Ordering::Relaxed);
                for (answer, reply) in answers.into_iter().zip(replies) {
                    // A waiter that went away (its connection closed) needs no answer.
                    let _ = reply.send(answer);
                }
            }
            Err(why) => {
                // Nothing of this group was committed: every waiter hears why.
                warn!(error = %why, stores = replies.len(), "mailbox group commit failed");
                for reply in replies {
                    let _ = reply.send(error(ErrorCode::Internal, why.clone()));
                }
            }
        }
    }
}

/// The answer to a peer over its rate limit.
pub fn rate_limited_response() -> Vec<u8> {
    error(
        ErrorCode::RateLimited,
        "too many mailbox requests; slow down",
    )
    .encode()
}

impl Mailbox {
    /// The service; `local_peer` is this node's PeerId.
    pub fn new(
        store: Arc<Mutex<Store>>,
        client: Client,
        local_peer: PeerId,
        settings: MailboxSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                replica: MailboxReplica::new(
                    store.clone(),
                    ReplicaContext {
                        local_peer: local_peer.to_bytes(),
                        quota: settings.quota,
                    },
                ),
                store,
                client,
                settings,
                closest: Mutex::new(HashMap::new()),
                pushed: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> MailboxSettings {
        self.inner.settings
    }

    /// Answers one inbound `/rhizo/mailbox/1` request (as a replica; the node's guard has
    /// already applied the per-peer rate limit).
    pub async fn handle_inbound(&self, peer: PeerId, payload: Vec<u8>) -> Vec<u8> {
        debug!(%peer, bytes = payload.len(), "mailbox request");
        self.inner.replica.handle(payload).await.encode()
    }

    /// How the replica's group commit went so far.
    pub fn replica_stats(&self) -> ReplicaWriterStats {
        self.inner.replica.writer_stats()
    }

    /// The replicas for `uid`'s mailbox: the closest peers to its mailbox key (cached briefly
    /// when `cached`).
    pub async fn closest(&self, uid: &Uid, cached: bool) -> Vec<ClosestPeer> {
        let key = mailbox_key(uid);
        if cached
            && let Ok(cache) = self.inner.closest.lock()
            && let Some((at, peers)) = cache.get(&key)
            && at.elapsed() < CLOSEST_CACHE_TTL
        {
            return peers.clone();
        }
        let peers = match self.inner.client.closest_peers(key.to_vec()).await {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "closest-peers lookup failed");
                Vec::new()
            }
        };
        if let Ok(mut cache) = self.inner.closest.lock() {
            if cache.len() >= CLOSEST_CACHE_ENTRIES {
                cache.clear();
            }
            if !peers.is_empty() {
                cache.insert(key, (Instant::now(), peers.clone()));
            }
        }
        peers
    }

    async fn request(
        &self,
        peer: &ClosestPeer,
        request: Vec<u8>,
    ) -> Result<MailboxResponse, String> {
        let bytes = self
            .inner
            .client
            .mailbox_request(peer.peer, peer.addrs.clone(), request)
            .await
            .map_err(|e| e.to_string())?;
        MailboxResponse::decode(&bytes).map_err(|e| e.to_string())
    }

    /// Stores a sealed envelope for `recipient` on up to [`REPLICAS`] of the closest nodes
    /// (never on `exclude`: the recipient's own devices). Returns how many acknowledged.
    pub async fn store_for(
        &self,
        recipient: &Uid,
        exclude: &[PeerId],
        envelope: &[u8],
        ttl_secs: u32,
    ) -> StoreOutcome {
        let candidates: Vec<ClosestPeer> = self
            .closest(recipient, true)
            .await
            .into_iter()
            .filter(|p| !exclude.contains(&p.peer))
            .take(REPLICAS + EXTRA_CANDIDATES)
            .collect();
        let request = MailboxRequest::Store {
            recipient: *recipient,
            envelope: Bytes::copy_from_slice(envelope),
            ttl_secs,
        }
        .encode();
        let mut outcome = StoreOutcome::default();
        if candidates.is_empty() {
            outcome
                .errors
                .push("no mailbox replica is known (is the node connected?)".into());
            return outcome;
        }
        let mut next = 0;
        while (outcome.replicas as usize) < REPLICAS && next < candidates.len() {
            let want = REPLICAS - outcome.replicas as usize;
            let batch = &candidates[next..candidates.len().min(next + want)];
            next += batch.len();
            let results =
                futures::future::join_all(batch.iter().map(|p| self.request(p, request.clone())))
                    .await;
            for (peer, result) in batch.iter().zip(results) {
                match result {
                    Ok(MailboxResponse::Stored { .. }) => outcome.replicas += 1,
                    Ok(MailboxResponse::Error { code, detail }) => {
                        match code {
                            ErrorCode::QuotaExceeded => outcome.quota_full = true,
                            ErrorCode::ReplayDetected => outcome.already_delivered = true,
                            _ => {}
                        }
                        outcome
                            .errors
                            .push(format!("{}: {} ({detail})", peer.peer, code.as_str()));
                    }
                    Ok(_) => outcome
                        .errors
                        .push(format!("{}: unexpected answer", peer.peer)),
                    Err(e) => outcome.errors.push(format!("{}: {e}", peer.peer)),
                }
            }
        }
        if outcome.replicas == 0 {
            // The cached set may be stale.
            if let Ok(mut cache) = self.inner.closest.lock() {
                cache.remove(&mailbox_key(recipient));
            }
        }
        outcome
    }

    /// One page of our mailbox from `source`, authenticated with a fresh challenge.
    pub async fn fetch_page(
        &self,
        source: &Source,
        device: &DeviceKey,
        uid: &Uid,
        device_list: &[u8],
    ) -> Result<Page, String> {
        match source {
            Source::Local => {
                let uid = *uid.as_bytes();
                let store = self.inner.store.clone();
                tokio::task::spawn_blocking(move || {
                    let store = store
                        .lock()
                        .map_err(|_| "store lock poisoned".to_string())?;
                    let limit = MAX_FETCH_ENTRIES as usize;
                    let page = store
                        .mailbox_fetch(&uid, now_ms(), limit, FETCH_MAX_BYTES)
                        .map_err(|e| e.to_string())?;
                    Ok(Page {
                        more: page.more,
                        entries: page
                            .entries
                            .into_iter()
                            .map(|e| FetchedEntry {
                                envelope: Bytes::from(e.envelope),
                                expires_at_ms: u64::try_from(e.expires_at).unwrap_or(0),
                            })
                            .collect(),
                    })
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Source::Remote(peer) => {
                let challenge = MailboxRequest::Challenge { recipient: *uid }.encode();
                let nonce = match self.request(peer, challenge).await? {
                    MailboxResponse::Challenge { nonce, .. } => nonce,
                    MailboxResponse::Error { code, detail } => {
                        return Err(format!("{}: {detail}", code.as_str()));
                    }
                    _ => return Err("unexpected answer to a challenge".into()),
                };
                let fetch = FetchRequest::new(
                    device,
                    &peer.peer.to_bytes(),
                    *uid,
                    nonce,
                    Bytes::copy_from_slice(device_list),
                    MAX_FETCH_ENTRIES,
                );
                match self
                    .request(peer, MailboxRequest::Fetch(fetch).encode())
                    .await?
                {
                    MailboxResponse::Fetched { entries, more } => Ok(Page { entries, more }),
                    MailboxResponse::Error { code, detail } => {
                        Err(format!("{}: {detail}", code.as_str()))
                    }
                    _ => Err("unexpected answer to a fetch".into()),
                }
            }
        }
    }

    /// Deletes what `receipt` names from `source` (delete-on-receipt); returns how many.
    pub async fn delete(
        &self,
        source: &Source,
        uid: &Uid,
        device_list: &[u8],
        receipt: &DeliveryReceipt,
    ) -> Result<u32, String> {
        match source {
            Source::Local => {
                let uid = *uid.as_bytes();
                let digests: Vec<[u8; 32]> =
                    receipt.entries.iter().map(|e| e.envelope_digest).collect();
                let store = self.inner.store.clone();
                tokio::task::spawn_blocking(move || {
                    let mut store = store
                        .lock()
                        .map_err(|_| "store lock poisoned".to_string())?;
                    store
                        .mailbox_delete(&uid, &digests, now_ms())
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Source::Remote(peer) => {
                let request = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
                    *uid,
                    Bytes::copy_from_slice(device_list),
                    receipt,
                ))
                .encode();
                match self.request(peer, request).await? {
                    MailboxResponse::Deleted { count } => Ok(count),
                    MailboxResponse::Error { code, detail } => {
                        Err(format!("{}: {detail}", code.as_str()))
                    }
                    _ => Err("unexpected answer to a delete".into()),
                }
            }
        }
    }

    /// Purges expired entries, then copies what we hold to those of the current closest
    /// [`REPLICAS`] nodes that have not had it yet, so the copies survive churn.
    pub async fn replicate_pass(&self) {
        let store = self.inner.store.clone();
        let recipients = tokio::task::spawn_blocking(move || {
            let mut store = store
                .lock()
                .map_err(|_| "store lock poisoned".to_string())?;
            let purged = store
                .mailbox_purge_expired(now_ms())
                .map_err(|e| e.to_string())?;
            if purged > 0 {
                info!(purged, "expired mailbox entries purged");
            }
            store
                .mailbox_recipients(now_ms())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let recipients = match recipients {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "mailbox re-replication: cannot read the store");
                return;
            }
        };
        if let Ok(mut pushed) = self.inner.pushed.lock() {
            pushed.retain(|k, _| recipients.contains(k));
        }
        for recipient in recipients {
            let uid = Uid::from_bytes(&recipient);
            let closest: Vec<ClosestPeer> = self
                .closest(&uid, false)
                .await
                .into_iter()
                .take(REPLICAS)
                .collect();
            let already: HashSet<PeerId> = self
                .inner
                .pushed
                .lock()
                .map(|p| p.get(&recipient).cloned().unwrap_or_default())
                .unwrap_or_default();
            let targets: Vec<ClosestPeer> = closest
                .into_iter()
                .filter(|p| !already.contains(&p.peer))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let store = self.inner.store.clone();
            let entries = tokio::task::spawn_blocking(move || {
                let store = store
                    .lock()
                    .map_err(|_| "store lock poisoned".to_string())?;
                store
                    .mailbox_entries(&recipient, now_ms(), REPLICATE_BATCH)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let Ok(entries) = entries else { continue };
            for target in targets {
                let mut ok = true;
                for entry in &entries {
                    let remaining = (entry.expires_at - now_ms()) / 1000;
                    if remaining < i64::from(MIN_TTL_SECS) {
                        continue;
                    }
                    let request = MailboxRequest::Store {
                        recipient: uid,
                        envelope: Bytes::copy_from_slice(&entry.envelope),
                        ttl_secs: u32::try_from(remaining).unwrap_or(MAX_TTL_SECS),
                    }
                    .encode();
                    match self.request(&target, request).await {
                        Ok(MailboxResponse::Stored { .. }) => {}
                        Ok(MailboxResponse::Error { code, .. }) if !code.is_transient() => {
                            // Refused for good (e.g. already delivered): nothing to retry.
                        }
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    debug!(peer = %target.peer, count = entries.len(), "mailbox entries replicated");
                    if let Ok(mut pushed) = self.inner.pushed.lock() {
                        pushed.entry(recipient).or_default().insert(target.peer);
                    }
                }
            }
        }
    }

    /// Runs re-replication every `replicate` interval until `shutdown` fires.
    pub async fn run_replication(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let interval = self.inner.settings.replicate;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            self.replicate_pass().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use rhizo_core::{
        RootKey,
        envelope::{MessageType, NONCE_LEN, ReceiptEntry, ReceiptStatus, SessionId},
        records::DeviceList,
    };

    use super::*;

    /// The test's clock: 2026-11-22, unix ms.
    const T0: i64 = 1_795_300_000_000;
    const REPLICA: &[u8] = b"replica";

    struct User {
        root: RootKey,
        device: DeviceKey,
    }

    impl User {
        fn new(seed: u8) -> Self {
            Self {
                root: RootKey::from_bytes(&[seed; 32]),
                device: DeviceKey::from_bytes(&[seed + 100; 32]),
            }
        }

        fn uid(&self) -> Uid {
            self.root.public().uid()
        }

        fn device_list(&self, version: u64, now_ms: i64) -> Bytes {
            let cert = self.root.certify_device(&self.device.public(), 1);
            DeviceList::new(
                &self.root,
                version,
                vec![cert],
                (now_ms / 1000) as u64,
                3 * 86_400,
            )
            .unwrap()
            .encode()
            .into()
        }

        /// A signed envelope from `self` to `to`.
        fn envelope(&self, to: &Self, seq: u64, at_ms: i64) -> Vec<u8> {
            let mut m = SecureMessage {
                msg_type: MessageType::Application,
                sender_id: self.uid(),
                sender_device: self.device.public(),
                recipient_id: to.uid(),
                session_id: SessionId::from_bytes([1; 16]),
                sequence_num: seq,
                timestamp: at_ms as u64,
                nonce: [seq as u8; NONCE_LEN],
                payload: vec![0xAB; 100].into(),
                signature: [0; 64],
            };
            m.sign(&self.device).unwrap();
            m.encode()
        }
    }

    struct Replica {
        store: Store,
        context: ReplicaContext,
        nonces: Mutex<NonceBook>,
    }

    impl Replica {
        fn new(quota: MailboxQuota) -> Self {
            Self {
                store: Store::open_in_memory().unwrap(),
                context: ReplicaContext {
                    local_peer: REPLICA.to_vec(),
                    quota,
                },
                nonces: Mutex::new(NonceBook::new(16)),
            }
        }

        fn call(&mut self, now: i64, request: &MailboxRequest) -> MailboxResponse {
            handle_request(
                &mut self.store,
                &self.context,
                &self.nonces,
                now,
                [(now % 251) as u8; 32],
                &request.encode(),
            )
        }

        fn store(&mut self, now: i64, to: &User, envelope: Vec<u8>, ttl: u32) -> MailboxResponse {
            self.call(
                now,
                &MailboxRequest::Store {
                    recipient: to.uid(),
                    envelope: envelope.into(),
                    ttl_secs: ttl,
                },
            )
        }

        fn challenge(&mut self, now: i64, who: &User) -> [u8; 32] {
            match self.call(
                now,
                &MailboxRequest::Challenge {
                    recipient: who.uid(),
                },
            ) {
                MailboxResponse::Challenge { nonce, .. } => nonce,
                other => panic!("no challenge: {other:?}"),
            }
        }

        fn fetch_request(&mut self, now: i64, who: &User, signer: &DeviceKey) -> MailboxRequest {
            let nonce = self.challenge(now, who);
            MailboxRequest::Fetch(FetchRequest::new(
                signer,
                REPLICA,
                who.uid(),
                nonce,
                who.device_list(1, now),
                64,
            ))
        }

        fn fetched(&mut self, now: i64, who: &User) -> usize {
            let request = self.fetch_request(now, who, &who.device);
            match self.call(now, &request) {
                MailboxResponse::Fetched { entries, .. } => entries.len(),
                other => panic!("fetch refused: {other:?}"),
            }
        }
    }

    fn code(response: &MailboxResponse) -> Option<ErrorCode> {
        match response {
            MailboxResponse::Error { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn entries_expire_at_their_ttl_under_a_controlled_clock() {
        let (alice, bob) = (User::new(1), User::new(2));
        let mut replica = Replica::new(MailboxQuota::default());
        let stored = replica.store(T0, &bob, alice.envelope(&bob, 1, T0), 3600);
        assert!(
            matches!(stored, MailboxResponse::Stored { expires_at_ms, duplicate: false }
            if expires_at_ms == (T0 + 3_600_000) as u64)
        );
        // The sender's retransmission is a duplicate, stored once.
        assert!(matches!(
            replica.store(T0 + 1, &bob, alice.envelope(&bob, 1, T0), 3600),
            MailboxResponse::Stored {
                duplicate: true,
                ..
            }
        ));
        assert_eq!(replica.fetched(T0 + 3_599_000, &bob), 1);
        assert_eq!(
            replica.fetched(T0 + 3_600_000, &bob),
            0,
            "expired entries are not handed out"
        );
        assert_eq!(
            replica.store.mailbox_purge_expired(T0 + 3_600_000).unwrap(),
            1
        );
        assert_eq!(replica.store.mailbox_summary().unwrap().count, 0);
        // No TTL asked for: the default, 7 days; more than 7 days asked for: capped.
        let r = replica.store(T0, &bob, alice.envelope(&bob, 2, T0), 0);
        assert!(matches!(r, MailboxResponse::Stored { expires_at_ms, .. }
            if expires_at_ms == (T0 + 7 * 86_400_000) as u64));
        let r = replica.store(T0, &bob, alice.envelope(&bob, 3, T0), u32::MAX);
        assert!(matches!(r, MailboxResponse::Stored { expires_at_ms, .. }
            if expires_at_ms == (T0 + 7 * 86_400_000) as u64));
    }

    #[test]
    fn a_replayed_fetch_is_refused() {
        let (alice, bob) = (User::new(1), User::new(2));
        let mut replica = Replica::new(MailboxQuota::default());
        replica.store(T0, &bob, alice.envelope(&bob, 1, T0), 0);
        let request = replica.fetch_request(T0, &bob, &bob.device);
        assert!(
            matches!(replica.call(T0, &request), MailboxResponse::Fetched { ref entries, .. } if entries.len() == 1)
        );
        // The captured request again: refused, nothing handed out.
        assert_eq!(
            code(&replica.call(T0 + 1, &request)),
            Some(ErrorCode::ReplayDetected)
        );
        // A nonce used after its 60 s: refused.
        let late = replica.fetch_request(T0, &bob, &bob.device);
        assert_eq!(
            code(&replica.call(T0 + 61_000, &late)),
            Some(ErrorCode::SessionExpired)
        );
    }

    #[test]
    fn a_fetch_by_a_key_not_in_the_device_list_is_refused() {
        let (alice, bob) = (User::new(1), User::new(2));
        let mut replica = Replica::new(MailboxQuota::default());
        replica.store(T0, &bob, alice.envelope(&bob, 1, T0), 0);
        // Alice's device, with bob's (valid) device list.
        let request = replica.fetch_request(T0, &bob, &alice.device);
        assert_eq!(
            code(&replica.call(T0, &request)),
            Some(ErrorCode::UnknownSender)
        );
        // An older device list than one the replica has seen is refused too.
        let nonce = replica.challenge(T0, &bob);
        let newer = MailboxRequest::Fetch(FetchRequest::new(
            &bob.device,
            REPLICA,
            bob.uid(),
            nonce,
            bob.device_list(5, T0),
            64,
        ));
        assert!(matches!(
            replica.call(T0, &newer),
            MailboxResponse::Fetched { .. }
        ));
        let stale = replica.fetch_request(T0, &bob, &bob.device);
        assert_eq!(
            code(&replica.call(T0, &stale)),
            Some(ErrorCode::UnknownSender)
        );
    }

    #[test]
    fn delete_on_receipt_needs_the_recipient_and_blocks_late_copies() {
        let (alice, bob) = (User::new(1), User::new(2));
        let mut replica = Replica::new(MailboxQuota::default());
        let envelope = alice.envelope(&bob, 1, T0);
        replica.store(T0, &bob, envelope.clone(), 0);
        let message = SecureMessage::decode(&envelope).unwrap();
        let receipt = |signer: &DeviceKey| {
            let mut r = DeliveryReceipt {
                recipient_device: signer.public(),
                timestamp: T0 as u64,
                entries: vec![ReceiptEntry::for_envelope(
                    &message,
                    ReceiptStatus::Delivered,
                )],
                signature: [0; 64],
            };
            r.sign(signer).unwrap();
            r
        };
        // Alice cannot delete bob's mail.
        let by_alice = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
            bob.uid(),
            bob.device_list(1, T0),
            &receipt(&alice.device),
        ));
        assert_eq!(
            code(&replica.call(T0, &by_alice)),
            Some(ErrorCode::UnknownSender)
        );
        let by_bob = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
            bob.uid(),
            bob.device_list(1, T0),
            &receipt(&bob.device),
        ));
        assert_eq!(
            replica.call(T0, &by_bob),
            MailboxResponse::Deleted { count: 1 }
        );
        assert_eq!(replica.fetched(T0, &bob), 0);
        // A late copy (re-replication, a retry) is refused as already delivered.
        assert_eq!(
            code(&replica.store(T0, &bob, envelope, 0)),
            Some(ErrorCode::ReplayDetected)
        );
    }

    #[test]
    fn a_full_quota_is_an_error_before_any_signature_work_and_loses_nothing() {
        let (alice, bob) = (User::new(1), User::new(2));
        let quota = MailboxQuota {
            max_count_per_sender: 2,
            ..MailboxQuota::default()
        };
        let mut replica = Replica::new(quota);
        for seq in 1..=2 {
            assert!(matches!(
                replica.store(T0, &bob, alice.envelope(&bob, seq, T0), 0),
                MailboxResponse::Stored { .. }
            ));
        }
        assert_eq!(
            code(&replica.store(T0, &bob, alice.envelope(&bob, 3, T0), 0)),
            Some(ErrorCode::QuotaExceeded)
        );
        // A forged envelope to a full quota gets the quota error: the signature was not checked.
        let mut forged = alice.envelope(&bob, 4, T0);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            code(&replica.store(T0, &bob, forged.clone(), 0)),
            Some(ErrorCode::QuotaExceeded)
        );
        // Nothing already stored was lost.
        assert_eq!(replica.fetched(T0, &bob), 2);
        // With room, a forged envelope is refused on its signature.
        let mut roomy = Replica::new(MailboxQuota::default());
        assert_eq!(
            code(&roomy.store(T0, &bob, forged, 0)),
            Some(ErrorCode::InvalidSignature)
        );
    }

    #[test]
    fn bad_store_requests_get_clear_errors() {
        let (alice, bob, carol) = (User::new(1), User::new(2), User::new(3));
        let mut replica = Replica::new(MailboxQuota::default());
        // For another recipient than the mailbox named.
        assert_eq!(
            code(&replica.store(T0, &carol, alice.envelope(&bob, 1, T0), 0)),
            Some(ErrorCode::Malformed)
        );
        // Not an envelope.
        assert_eq!(
            code(&replica.store(T0, &bob, b"junk".to_vec(), 0)),
            Some(ErrorCode::Malformed)
        );
        // Too old to be accepted by the recipient anyway.
        let old = alice.envelope(&bob, 1, T0 - 15 * 86_400_000);
        assert_eq!(
            code(&replica.store(T0, &bob, old, 0)),
            Some(ErrorCode::SessionExpired)
        );
        // Garbage bytes as a request.
        let r = handle_request(
            &mut replica.store,
            &replica.context,
            &replica.nonces,
            T0,
            [0; 32],
            &[0xFF; 40],
        );
        assert!(code(&r).is_some());
        assert_eq!(replica.store.mailbox_summary().unwrap().count, 0);
    }

    /// Checked stores of `count` envelopes from alice to bob, timestamped now.
    fn checked_stores(count: u64) -> Vec<CheckedStore> {
        let (alice, bob) = (User::new(1), User::new(2));
        let now = now_ms();
        (1..=count)
            .map(|seq| {
                check_store(
                    |_| Ok(()),
                    now,
                    bob.uid(),
                    alice.envelope(&bob, seq, now).into(),
                    0,
                )
                .unwrap()
            })
            .collect()
    }

    /// Waits (bounded) until only the test holds `store`, then closes it.
    async fn close(store: Arc<Mutex<Store>>) {
        let store = tokio::time::timeout(Duration::from_secs(10), async move {
            let mut store = store;
            loop {
                match Arc::try_unwrap(store) {
                    Ok(store) => return store,
                    Err(shared) => store = shared,
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer let go of the store");
        drop(store.into_inner().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_stores_share_commits_and_are_all_durable() {
        const N: usize = 150;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.db");
        let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
        let writer = ReplicaWriter::spawn(store.clone(), MailboxQuota::default(), N);
        let stores = checked_stores(N as u64);
        // All N outstanding at once: queued while the store is busy (here: locked by the test,
        // as a commit in progress would hold it).
        let answers: Vec<_> = {
            let _busy = store.lock().unwrap();
            stores
                .iter()
                .map(|c| writer.submit(c.clone()).unwrap())
                .collect()
        };
        for answer in answers {
            assert!(
                matches!(
                    answer.await.unwrap(),
                    MailboxResponse::Stored {
                        duplicate: false,
                        ..
                    }
                ),
                "every store acknowledged"
            );
        }
        let stats = writer.stats();
        assert_eq!(stats.stores, N as u64);
        assert!(
            stats.commits < N as u64,
            "{} commits for {N} stores",
            stats.commits
        );
        // At most: what the writer took before it found the store busy, then full groups.
        assert!(
            stats.commits <= 1 + N.div_ceil(STORE_GROUP) as u64,
            "{stats:?}"
        );

        // Acknowledged means durable: all of them are there after a reopen.
        drop(writer);
        close(store).await;
        let reopened = Store::open(&path).unwrap();
        let held = reopened
            .mailbox_entries(User::new(2).uid().as_bytes(), now_ms(), 1000)
            .unwrap();
        assert_eq!(held.len(), N);
        let mut digests: Vec<[u8; 32]> = held.iter().map(|e| e.digest).collect();
        digests.sort_unstable();
        let mut expected: Vec<[u8; 32]> = stores.iter().map(|c| c.digest).collect();
        expected.sort_unstable();
        assert_eq!(digests, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_writer_queue_is_rate_limited_not_queued() {
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let writer = ReplicaWriter::spawn(store.clone(), MailboxQuota::default(), 2);
        let stores = checked_stores(2 + STORE_GROUP as u64 + 2);
        let mut accepted = Vec::new();
        let mut refused = 0;
        {
            let _busy = store.lock().unwrap();
            for c in &stores {
                match writer.submit(c.clone()) {
                    Ok(answer) => accepted.push(answer),
                    Err(r) => {
                        assert_eq!(code(&r), Some(ErrorCode::RateLimited));
                        refused += 1;
                    }
                }
            }
        }
        // The writer holds at most one group while the store is busy; the queue 2 more.
        assert!(refused >= 1, "the queue is bounded");
        assert_eq!(writer.stats().refused_busy, refused);
        for answer in accepted {
            assert!(matches!(
                answer.await.unwrap(),
                MailboxResponse::Stored { .. }
            ));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_replica_checks_then_group_commits_concurrent_requests() {
        const N: u64 = 40;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.db");
        let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
        let replica = MailboxReplica::new(
            store.clone(),
            ReplicaContext {
                local_peer: REPLICA.to_vec(),
                quota: MailboxQuota::default(),
            },
        );
        let (alice, bob) = (User::new(1), User::new(2));
        let now = now_ms();
        let request = |envelope: Vec<u8>| {
            MailboxRequest::Store {
                recipient: bob.uid(),
                envelope: envelope.into(),
                ttl_secs: 0,
            }
            .encode()
        };
        let mut forged = alice.envelope(&bob, N + 1, now);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let mut payloads: Vec<Vec<u8>> = (1..=N)
            .map(|seq| request(alice.envelope(&bob, seq, now)))
            .collect();
        // The same envelope twice, a forged one: answered on their own, the others unaffected.
        payloads.push(request(alice.envelope(&bob, 1, now)));
        payloads.push(request(forged));
        let tasks: Vec<_> = payloads
            .into_iter()
            .map(|p| {
                let replica = replica.clone();
                tokio::spawn(async move { replica.handle(p).await })
            })
            .collect();
        let mut stored = 0;
        let mut duplicates = 0;
        let mut answers = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                MailboxResponse::Stored {
                    duplicate: false, ..
                } => stored += 1,
                MailboxResponse::Stored {
                    duplicate: true, ..
                } => duplicates += 1,
                other => answers.push(code(&other)),
            }
        }
        assert_eq!((stored, duplicates), (N, 1));
        assert_eq!(answers, [Some(ErrorCode::InvalidSignature)]);
        let stats = replica.writer_stats();
        assert_eq!(
            stats.stores,
            N + 1,
            "the forged one never reached the writer"
        );
        assert!((1..=N + 1).contains(&stats.commits), "{stats:?}");
        // Fetches and deletes still work beside the writer.
        assert!(matches!(
            replica
                .handle(
                    MailboxRequest::Challenge {
                        recipient: bob.uid()
                    }
                    .encode()
                )
                .await,
            MailboxResponse::Challenge { .. }
        ));
        drop(replica);
        close(store).await;
        let held = Store::open(&path)
            .unwrap()
            .mailbox_entries(bob.uid().as_bytes(), now_ms(), 1000)
            .unwrap();
        assert_eq!(held.len() as u64, N);
    }
}
