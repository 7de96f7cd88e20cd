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
use futures::future::BoxFuture;
use libp2p::PeerId;
use rhizo_core::{
    DeviceCertificate, DeviceKey, Uid,
    envelope::{
        DeliveryReceipt, ErrorCode, MAX_ENVELOPE_BYTES, ReceiptStatus, SecureMessage,
        envelope_digest,
    },
    mailbox::{
        DEFAULT_TTL_SECS, DeleteTargets, FetchRequest, FetchedEntry, MAX_FETCH_ENTRIES,
        MAX_RESPONSE_BYTES, MAX_TTL_SECS, MIN_TTL_SECS, MailboxRequest, MailboxResponse, NonceBook,
        REPLICAS, mailbox_key, verify_store_sender,
    },
    seen::check_timestamp,
};
use rhizo_net::{Client, ClosestPeer};
use rhizo_store::{
    Store, StoreError,
    mailbox::{MailboxOutcome, MailboxPage, MailboxQuota, MailboxStored, NewMailboxEntry},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
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
/// Most inbound mailbox requests handled at once; more are answered `RATE_LIMITED` at once
/// rather than stalling the node's event handling until one finishes.
pub const MAX_MAILBOX_IN_FLIGHT: usize = 64;
/// A replica takes stores for a mailbox only while fewer than this many peers of its routing
/// table are closer to the mailbox key than itself: twice the replica set, plus slack for
/// churn and for senders whose view of the network differs. A network smaller than this
/// (tests, a small deployment) stores everywhere.
pub const RESPONSIBLE_RANK: usize = 2 * REPLICAS + 6;

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
    /// Replicas that answered `REPLAY_DETECTED`: they hold a tombstone for it (the recipient
    /// fetched and deleted it there, as far as an unsigned answer from a replica tells).
    /// "Stop storing here", never "delivered": only a signed receipt from one of the
    /// recipient's devices makes a message delivered.
    pub tombstoned: u32,
}

/// What the sender does with an outgoing row after storing it on the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreVerdict {
    /// Held on (or already taken from) this many replicas: the row becomes `stored`.
    Stored {
        /// Replicas that acknowledged it or hold its tombstone.
        replicas: u32,
    },
    /// No replica holds it: stays queued, retried with backoff.
    Retry,
}

impl StoreOutcome {
    /// The sender's decision: a replica's `REPLAY_DETECTED` counts like a replica that holds
    /// the envelope (stop storing there), never as delivered.
    pub fn verdict(&self) -> StoreVerdict {
        match self.replicas.saturating_add(self.tombstoned) {
            0 => StoreVerdict::Retry,
            replicas => StoreVerdict::Stored { replicas },
        }
    }
}

/// One replica's answer to a fetch.
#[derive(Debug, Clone)]
pub struct Page {
    /// Envelopes held for us.
    pub entries: Vec<FetchedEntry>,
    /// Whether the replica holds more than it returned.
    pub more: bool,
    /// Where the next page starts (the replica's `next_cursor`).
    pub next_cursor: u64,
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
    /// Inbound requests in flight (at most [`MAX_MAILBOX_IN_FLIGHT`]).
    in_flight: Arc<Semaphore>,
}

/// Room for one inbound mailbox request (from [`Mailbox::try_admit`]); released on drop.
#[derive(Debug)]
pub struct MailboxPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// Whether a replica that counts `closer` peers of its routing table closer to a mailbox key
/// than itself (counted up to [`RESPONSIBLE_RANK`]) should take stores for that mailbox.
pub fn responsible(closer: usize) -> bool {
    closer < RESPONSIBLE_RANK
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
/// (a one-entry batch) before it is answered. Cheap checks (size, structure, timestamps) run
/// before any signature verification, and signatures before the quota counts and any write.
/// The node runs the same checks through [`MailboxReplica`], which commits stores in groups.
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
    match request {
        MailboxRequest::Store {
            recipient,
            envelope,
            ttl_secs,
            sender_cert,
        } => {
            let quota_check = |entry: &NewMailboxEntry<'_>| {
                store.mailbox_check_quota(entry, &context.quota, now_ms)
            };
            match check_store(
                quota_check,
                now_ms,
                recipient,
                envelope,
                ttl_secs,
                sender_cert,
            ) {
                Ok(checked) => commit_stores(store, &context.quota, &[checked], now_ms)
                    .map(|mut answers| answers.pop())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| error(ErrorCode::Internal, "the store was not committed")),
                Err(refused) => refused,
            }
        }
        MailboxRequest::Challenge { recipient } => challenge(nonces, recipient, now_ms, random),
        other => {
            let min_version = |uid: &[u8; 32]| store.mailbox_device_list_version(uid);
            match authorize(context, nonces, min_version, now_ms, other) {
                Ok(authorized) => serve(store, now_ms, authorized),
                Err(refused) => refused,
            }
        }
    }
}

/// A fresh single-use nonce for `recipient` (no store access).
fn challenge(
    nonces: &Mutex<NonceBook>,
    recipient: Uid,
    now_ms: i64,
    random: [u8; 32],
) -> MailboxResponse {
    let Ok(mut book) = nonces.lock() else {
        return error(ErrorCode::Internal, "nonce book unavailable");
    };
    let (nonce, expires_at_ms) = book.issue(recipient, random, u64::try_from(now_ms).unwrap_or(0));
    MailboxResponse::Challenge {
        nonce,
        expires_at_ms,
    }
}

/// A fetch or delete whose nonce, device list and signatures were checked.
#[derive(Debug)]
enum Authorized {
    /// Hand out a page.
    Fetch {
        uid: [u8; 32],
        device_list_version: u64,
        cursor: u64,
        limit: usize,
    },
    /// Delete what a receipt names.
    Delete {
        uid: [u8; 32],
        device_list_version: u64,
        targets: DeleteTargets,
    },
}

/// The checking half of a fetch or delete: nonce, device list (not older than what
/// `min_version` reads), signatures. Needs no write access, so the node runs it without the
/// store's lock: a flood of badly signed requests never waits for, or holds up, the store.
fn authorize(
    context: &ReplicaContext,
    nonces: &Mutex<NonceBook>,
    min_version: impl FnOnce(&[u8; 32]) -> Result<u64, StoreError>,
    now_ms: i64,
    request: MailboxRequest,
) -> Result<Authorized, MailboxResponse> {
    let now_u = u64::try_from(now_ms).unwrap_or(0);
    let refuse = |e: rhizo_core::mailbox::MailboxError| error(e.code(), e.to_string());
    let internal = |e: StoreError| error(ErrorCode::Internal, e.to_string());
    match request {
        MailboxRequest::Fetch(request) => {
            // The nonce is consumed first, whatever follows: a captured request never works
            // twice.
            let taken = match nonces.lock() {
                Ok(mut book) => book.take(&request.recipient, &request.nonce, now_u),
                Err(_) => return Err(error(ErrorCode::Internal, "nonce book unavailable")),
            };
            taken.map_err(refuse)?;
            let uid = *request.recipient.as_bytes();
            let min_version = min_version(&uid).map_err(internal)?;
            let authorized = request
                .verify(&context.local_peer, now_u / 1000, min_version)
                .map_err(refuse)?;
            Ok(Authorized::Fetch {
                uid,
                device_list_version: authorized.device_list_version,
                cursor: request.cursor,
                limit: request.max_entries.clamp(1, MAX_FETCH_ENTRIES) as usize,
            })
        }
        MailboxRequest::Delete(request) => {
            let uid = *request.recipient.as_bytes();
            let min_version = min_version(&uid).map_err(internal)?;
            let (authorized, targets) =
                request.verify(now_u / 1000, min_version).map_err(refuse)?;
            Ok(Authorized::Delete {
                uid,
                device_list_version: authorized.device_list_version,
                targets,
            })
        }
        MailboxRequest::Store { .. } | MailboxRequest::Challenge { .. } => {
            Err(error(ErrorCode::Internal, "not a fetch or delete"))
        }
    }
}

/// The writing half of a fetch or delete (under the store's lock): notes the device-list
/// version, then hands out a page or deletes.
fn serve(store: &mut Store, now_ms: i64, authorized: Authorized) -> MailboxResponse {
    let (uid, version) = match &authorized {
        Authorized::Fetch {
            uid,
            device_list_version,
            ..
        }
        | Authorized::Delete {
            uid,
            device_list_version,
            ..
        } => (*uid, *device_list_version),
    };
    if let Err(e) = store.note_mailbox_device_list_version(&uid, version, now_ms) {
        return error(ErrorCode::Internal, e.to_string());
    }
    match authorized {
        Authorized::Fetch { cursor, limit, .. } => {
            let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
            match store.mailbox_fetch_after(&uid, now_ms, cursor, limit, FETCH_MAX_BYTES) {
                Ok(page) => fetched(page),
                Err(e) => error(ErrorCode::Internal, e.to_string()),
            }
        }
        Authorized::Delete { targets, .. } => {
            let deleted = store
                .mailbox_delete(&uid, &targets.acknowledged, now_ms)
                .and_then(|a| {
                    // A rejection deletes only a (verified) envelope held here.
                    Ok(a + store.mailbox_delete_held(&uid, &targets.rejected, now_ms)?)
                });
            match deleted {
                Ok(n) => MailboxResponse::Deleted {
                    count: u32::try_from(n).unwrap_or(u32::MAX),
                },
                Err(e) => error(ErrorCode::Internal, e.to_string()),
            }
        }
    }
}

/// A store page as a `Fetched` answer.
fn fetched(page: MailboxPage) -> MailboxResponse {
    MailboxResponse::Fetched {
        more: page.more,
        next_cursor: u64::try_from(page.next_cursor).unwrap_or(0),
        entries: page
            .entries
            .into_iter()
            .map(|e| FetchedEntry {
                envelope: Bytes::from(e.envelope),
                expires_at_ms: u64::try_from(e.expires_at).unwrap_or(0),
            })
            .collect(),
    }
}

/// A store request that passed every check a replica makes before committing it: size,
/// decoding, recipient, time window, the sender's certificate and the envelope's signature,
/// and the quota (read-only).
#[derive(Debug, Clone)]
pub struct CheckedStore {
    recipient_uid: [u8; 32],
    sender_uid: [u8; 32],
    digest: [u8; 32],
    envelope: Bytes,
    expires_at: i64,
    sender_cert: Bytes,
}

impl CheckedStore {
    fn entry(&self) -> NewMailboxEntry<'_> {
        NewMailboxEntry {
            recipient_uid: self.recipient_uid,
            sender_uid: self.sender_uid,
            digest: self.digest,
            envelope: &self.envelope,
            expires_at: self.expires_at,
            sender_cert: &self.sender_cert,
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

/// The checks of a store request, cheapest first: size, decoding, recipient, time window; then
/// the sender binding ([`verify_store_sender`]: the certificate names the envelope's sender
/// and device, and both signatures verify) **before** `quota_check` (read-only, see
/// [`Store::mailbox_check_quota`]) counts anything against the sender, so nobody can use up
/// another user's per-sender quota in their name.
fn check_store(
    quota_check: impl FnOnce(&NewMailboxEntry<'_>) -> Result<(), StoreError>,
    now_ms: i64,
    recipient: Uid,
    envelope: Bytes,
    ttl_secs: u32,
    sender_cert: Bytes,
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
    verify_store_sender(&message, &sender_cert).map_err(|e| error(e.code(), e.to_string()))?;
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
        sender_cert,
    };
    match quota_check(&checked.entry()) {
        Ok(()) => Ok(checked),
        Err(StoreError::QuotaExceeded(why)) => Err(error(ErrorCode::QuotaExceeded, why)),
        Err(e) => Err(error(ErrorCode::Internal, e.to_string())),
    }
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
    /// Refuses stores for mailboxes this node is not among the closest peers to (`None`: takes
    /// any, as in tests and benchmarks).
    neighbourhood: Option<Neighbourhood>,
}

/// Whether this node should hold a mailbox: given the mailbox key, answers `false` when this
/// node is not among the closest peers to it (by its own routing table, with slack).
pub type Neighbourhood = Arc<dyn Fn([u8; 32]) -> BoxFuture<'static, bool> + Send + Sync>;

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
        Self::with_neighbourhood(store, context, None)
    }

    /// A replica over `store` that stores only for mailboxes `neighbourhood` says are its
    /// business.
    pub fn with_neighbourhood(
        store: Arc<Mutex<Store>>,
        context: ReplicaContext,
        neighbourhood: Option<Neighbourhood>,
    ) -> Self {
        Self {
            inner: Arc::new(ReplicaShared {
                store,
                context,
                nonces: Mutex::new(NonceBook::new(NONCE_BOOK_CAPACITY)),
                writer: OnceLock::new(),
                reader: OnceLock::new(),
                neighbourhood,
            }),
        }
    }

    /// Answers one request (as [`handle_request`] would, with the real clock); a store is
    /// answered only after the transaction holding it committed. Must run inside a tokio
    /// runtime.
    pub async fn handle(&self, payload: Vec<u8>) -> MailboxResponse {
        let request = match MailboxRequest::decode(&payload) {
            Ok(r) => r,
            Err(e) => return error(e.code(), e.to_string()),
        };
        drop(payload);
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
        let this = self.clone();
        let step = tokio::task::spawn_blocking(move || this.check(request))
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

    /// The blocking part of [`handle`](Self::handle). Signatures are checked with no lock
    /// held but the reader's (a short read of the device-list version); the store's (writer's)
    /// lock is taken only for what passed.
    fn check(&self, request: MailboxRequest) -> Step {
        let shared = &self.inner;
        let now = now_ms();
        let unavailable = || StoreError::InvalidInput("store unavailable".into());
        match request {
            MailboxRequest::Store {
                recipient,
                envelope,
                ttl_secs,
                sender_cert,
            } => {
                let quota_check = |entry: &NewMailboxEntry<'_>| {
                    let store = self.check_connection().lock().map_err(|_| unavailable())?;
                    store.mailbox_check_quota(entry, &shared.context.quota, now)
                };
                match check_store(quota_check, now, recipient, envelope, ttl_secs, sender_cert) {
                    Ok(checked) => Step::Commit(checked),
                    Err(refused) => Step::Answer(refused),
                }
            }
            MailboxRequest::Challenge { recipient } => {
                Step::Answer(challenge(&shared.nonces, recipient, now, random32()))
            }
            other => {
                let min_version = |uid: &[u8; 32]| {
                    self.check_connection()
                        .lock()
                        .map_err(|_| unavailable())?
                        .mailbox_device_list_version(uid)
                };
                let authorized =
                    match authorize(&shared.context, &shared.nonces, min_version, now, other) {
                        Ok(a) => a,
                        Err(refused) => return Step::Answer(refused),
                    };
                let Ok(mut store) = shared.store.lock() else {
                    return Step::Answer(error(ErrorCode::Internal, "store unavailable"));
                };
                Step::Answer(serve(&mut store, now, authorized))
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

/// A permit from `in_flight`, or the encoded `RATE_LIMITED` answer when none is free.
fn admit(in_flight: &Arc<Semaphore>) -> Result<MailboxPermit, Vec<u8>> {
    match in_flight.clone().try_acquire_owned() {
        Ok(permit) => Ok(MailboxPermit(permit)),
        Err(TryAcquireError::NoPermits) => Err(error(
            ErrorCode::RateLimited,
            "this replica is handling too many mailbox requests; retry shortly",
        )
        .encode()),
        Err(TryAcquireError::Closed) => {
            Err(error(ErrorCode::Internal, "the mailbox is shutting down").encode())
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
        let neighbourhood: Neighbourhood = {
            let client = client.clone();
            Arc::new(move |key: [u8; 32]| {
                let client = client.clone();
                Box::pin(async move {
                    match client
                        .local_closer_peers(key.to_vec(), RESPONSIBLE_RANK)
                        .await
                    {
                        Ok(closer) => responsible(closer),
                        // The network layer did not answer: do not refuse for that.
                        Err(_) => true,
                    }
                })
            })
        };
        Self {
            inner: Arc::new(Inner {
                replica: MailboxReplica::with_neighbourhood(
                    store.clone(),
                    ReplicaContext {
                        local_peer: local_peer.to_bytes(),
                        quota: settings.quota,
                    },
                    Some(neighbourhood),
                ),
                store,
                client,
                settings,
                closest: Mutex::new(HashMap::new()),
                pushed: Mutex::new(HashMap::new()),
                in_flight: Arc::new(Semaphore::new(MAX_MAILBOX_IN_FLIGHT)),
            }),
        }
    }

    /// Room for one more inbound request, without waiting: `Err` with the encoded
    /// `RATE_LIMITED` answer when [`MAX_MAILBOX_IN_FLIGHT`] are being handled, so the caller
    /// answers at once instead of stalling its loop.
    pub fn try_admit(&self) -> Result<MailboxPermit, Vec<u8>> {
        admit(&self.inner.in_flight)
    }

    /// The settings.
    pub fn settings(&self) -> MailboxSettings {
        self.inner.settings
    }

    /// Answers one inbound `/rhizo/mailbox/1` request (as a replica; the node's guard has
    /// already applied the per-peer rate limit, and [`try_admit`](Self::try_admit) gave the
    /// permit, held until the answer is ready).
    pub async fn handle_inbound(
        &self,
        _permit: MailboxPermit,
        peer: PeerId,
        payload: Vec<u8>,
    ) -> Vec<u8> {
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
    /// (never on `exclude`: the recipient's own devices), with `sender_cert`, the certificate
    /// of the device that signed it. Returns how many acknowledged.
    pub async fn store_for(
        &self,
        recipient: &Uid,
        exclude: &[PeerId],
        envelope: &[u8],
        ttl_secs: u32,
        sender_cert: &DeviceCertificate,
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
            sender_cert: Bytes::from(sender_cert.encode()),
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
        let holding = |o: &StoreOutcome| o.replicas.saturating_add(o.tombstoned) as usize;
        while holding(&outcome) < REPLICAS && next < candidates.len() {
            let want = REPLICAS - holding(&outcome);
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
                            ErrorCode::ReplayDetected => outcome.tombstoned += 1,
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

    /// One page of our mailbox from `source`, after position `cursor` (0: from the oldest;
    /// see [`FetchPager`](rhizo_core::mailbox::FetchPager)), authenticated with a fresh
    /// challenge.
    pub async fn fetch_page(
        &self,
        source: &Source,
        device: &DeviceKey,
        uid: &Uid,
        device_list: &[u8],
        cursor: u64,
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
                    let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
                    let page = store
                        .mailbox_fetch_after(&uid, now_ms(), cursor, limit, FETCH_MAX_BYTES)
                        .map_err(|e| e.to_string())?;
                    match fetched(page) {
                        MailboxResponse::Fetched {
                            entries,
                            more,
                            next_cursor,
                        } => Ok(Page {
                            entries,
                            more,
                            next_cursor,
                        }),
                        _ => Err("unexpected page".to_string()),
                    }
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
                )
                .with_cursor(cursor);
                match self
                    .request(peer, MailboxRequest::Fetch(fetch).encode())
                    .await?
                {
                    MailboxResponse::Fetched {
                        entries,
                        more,
                        next_cursor,
                    } => Ok(Page {
                        entries,
                        more,
                        next_cursor,
                    }),
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
                // As a replica would (`DeleteRequest::verify`): what we have, and what we
                // refused for good, only if held.
                let mut targets = DeleteTargets::default();
                for e in &receipt.entries {
                    match e.status {
                        ReceiptStatus::Rejected(code) if code.is_transient() => {}
                        ReceiptStatus::Rejected(_) => targets.rejected.push(e.envelope_digest),
                        _ => targets.acknowledged.push(e.envelope_digest),
                    }
                }
                let store = self.inner.store.clone();
                tokio::task::spawn_blocking(move || {
                    let mut store = store
                        .lock()
                        .map_err(|_| "store lock poisoned".to_string())?;
                    let now = now_ms();
                    let acknowledged = store.mailbox_delete(&uid, &targets.acknowledged, now);
                    acknowledged
                        .and_then(|a| {
                            Ok(a + store.mailbox_delete_held(&uid, &targets.rejected, now)?)
                        })
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
                        sender_cert: Bytes::copy_from_slice(&entry.sender_cert),
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
mod tests;
