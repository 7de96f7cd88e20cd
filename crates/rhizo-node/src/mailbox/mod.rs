//! Offline delivery over `/rhizo/mailbox/1`: the replica this node runs for others, and the
//! client side that stores in, fetches from and deletes from other nodes' replicas.
//!
//! ```text
//!  sender ── Store(envelope) ──▶ 5 nodes closest to SHA-256("rhizo/mailbox/v1" ‖ UID)
//!             (at most 2 of them "deep": ids closer to the key than the network's size
//!             explains; more deep ones get it without counting — `placement`)
//!      replica, on a database reader: size, decode, recipient, window ─▶ signature
//!        ─▶ quota (read-only) ─▶ Db::try_write (full: RATE_LIMITED) ─▶ the database's group
//!        commit, shared with every other write (one fsync per group) ─▶ StoreOk / refusal
//!  recipient ── Challenge ──▶ replica: fresh single-use nonce (60 s)
//!            ── Fetch(nonce, device list, signature by a listed device) ──▶ envelopes
//!            ── Delete(signed receipt naming the digests) ──▶ done for that device; gone
//!               (tombstoned) once every device the entry was addressed to has it
//!  replica ── every `mailbox_replicate_secs` (on the node's Clock): copy what it holds to the
//!             current closest 5
//!  replica ── Notify(UID) ──▶ a peer that fetched that mailbox here, when a store for it
//!             committed (push; on the peer's next connection if it is not reachable now)
//!  recipient: Notify for our UID ─▶ NotifyOk ─▶ fetch from that replica at once
//! ```
//!
//! The replica's rules (what it answers to each request) are sans-IO functions in
//! [`rhizo_engine::mailbox`], unit tested there with real SQLite and a controlled clock.
//!
//! # Layout
//!
//! - this file: [`Mailbox`] (the service), its settings and inbound admission.
//! - `replica`: [`MailboxReplica`] — runs the rules for the node, off its event loop.
//! - `writer`: [`ReplicaWriter`] — the replica's stores through [`Db::try_write`].
//! - `client`: storing on, fetching from and deleting from replicas (or our own table).
//! - [`placement`]: which of the closest peers make up a mailbox's replica set (eclipse
//!   resistance: ids ground next to the key cannot fill it).
//! - `replication`: copying what we hold to the current closest replicas, on a timer.
//! - `push`: telling recipients at once that we hold something new for them, and taking
//!   such pushes for our own mailbox.

mod client;
pub mod placement;
mod push;
mod replica;
mod replication;
mod writer;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use libp2p::PeerId;
use rhizo_core::{
    Uid,
    envelope::ErrorCode,
    mailbox::{MailboxRequest, MailboxResponse, REPLICAS},
};
use rhizo_engine::mailbox::PushBook;
use rhizo_engine::mailbox::error;
use rhizo_net::{Client, ClosestPeer};
use rhizo_store::{Db, mailbox::MailboxQuota};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tracing::debug;

pub use client::{Page, Source, StoreOutcome, StoreVerdict};
pub use placement::ReplicaPlan;
pub use push::{MAX_PUSHES_IN_FLIGHT, PUSH_QUEUE_CAPACITY, PushQueue};
pub use replica::{MailboxReplica, Neighbourhood};
pub use rhizo_engine::mailbox::{CheckedStore, ReplicaContext, handle_request};
pub use writer::{ReplicaWriter, ReplicaWriterStats};

use crate::clock::SharedClock;

/// Nonces a replica keeps outstanding at once (oldest evicted first).
const NONCE_BOOK_CAPACITY: usize = 4096;
/// How long a closest-peers answer is reused for stores to the same mailbox.
const CLOSEST_CACHE_TTL: Duration = Duration::from_secs(30);
/// Mailboxes whose closest peers are cached.
const CLOSEST_CACHE_ENTRIES: usize = 256;
/// Candidates tried per store beyond the first [`REPLICAS`] (when some refuse or are down).
const EXTRA_CANDIDATES: usize = 10;
/// Replicas a fetch asks beyond the first [`REPLICAS`] that count (some may have left).
pub const EXTRA_FETCH_REPLICAS: usize = 3;
/// Envelopes copied per recipient per re-replication pass.
const REPLICATE_BATCH: usize = 256;
/// Most jobs (stores among them) the database commits in one transaction (one `fsync` for all
/// of them): enough to carry the node's 64 inbound requests in flight in one commit.
pub const STORE_GROUP: usize = rhizo_store::DEFAULT_GROUP;
/// Most checked stores waiting for the database's writer; more are answered `RATE_LIMITED`
/// rather than queued without bound (the database's own queue is shared with every write).
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
    db: Db,
    clock: SharedClock,
    client: Client,
    replica: MailboxReplica,
    settings: MailboxSettings,
    closest: Mutex<HashMap<[u8; 32], CachedPeers>>,
    /// Peers each held mailbox was already copied to (re-replication).
    pushed: Mutex<HashMap<[u8; 32], HashSet<PeerId>>>,
    /// Inbound requests in flight (at most [`MAX_MAILBOX_IN_FLIGHT`]).
    in_flight: Arc<Semaphore>,
    /// Our UID (pushes for it are taken).
    own_uid: std::sync::OnceLock<Uid>,
    /// Whom to push to when a store commits here.
    push: Mutex<PushBook<PeerId>>,
    /// Wakes the push loop (a store, a connection, a push done).
    push_wake: Notify,
    /// Pushes for our own mailbox, to the mailbox loop.
    push_tx: mpsc::Sender<PeerId>,
    /// The mailbox loop's end of `push_tx` (taken once).
    push_rx: Mutex<Option<push::PushQueue>>,
}

/// Room for one inbound mailbox request (from [`Mailbox::try_admit`]); released on drop.
#[derive(Debug)]
pub struct MailboxPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// Whether a replica that counts `closer` peers of its routing table closer to a mailbox key
/// than itself (counted up to [`RESPONSIBLE_RANK`]) should take stores for that mailbox.
pub fn responsible(closer: usize) -> bool {
    closer < RESPONSIBLE_RANK
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
    /// The service; `local_peer` is this node's PeerId, `clock` the node's clock (for the
    /// replication timer and the times it stores).
    pub fn new(
        db: Db,
        client: Client,
        local_peer: PeerId,
        settings: MailboxSettings,
        clock: SharedClock,
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
        let (push, push_tx, push_rx) = push::new_push_state();
        Self {
            inner: Arc::new(Inner {
                own_uid: std::sync::OnceLock::new(),
                push,
                push_wake: Notify::new(),
                push_tx,
                push_rx,
                replica: MailboxReplica::with_neighbourhood(
                    db.clone(),
                    ReplicaContext {
                        local_peer: local_peer.to_bytes(),
                        quota: settings.quota,
                    },
                    Some(neighbourhood),
                    clock.clone(),
                ),
                db,
                clock,
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

    /// Answers one inbound `/rhizo/mailbox/1` request (as a replica; the node's peer policy has
    /// already applied the per-peer rate limit, and [`try_admit`](Self::try_admit) gave the
    /// permit, held until the answer is ready).
    pub async fn handle_inbound(
        &self,
        _permit: MailboxPermit,
        peer: PeerId,
        payload: Vec<u8>,
    ) -> Vec<u8> {
        debug!(%peer, bytes = payload.len(), "mailbox request");
        let request = match MailboxRequest::decode(&payload) {
            Ok(r) => r,
            Err(e) => return error(e.code(), e.to_string()).encode(),
        };
        drop(payload);
        let (fetched, stored) = match &request {
            MailboxRequest::Notify { recipient } => {
                return self.on_notify(peer, recipient).encode();
            }
            MailboxRequest::Fetch(f) => (Some(*f.recipient.as_bytes()), None),
            MailboxRequest::Store { recipient, .. } => (None, Some(*recipient.as_bytes())),
            _ => (None, None),
        };
        let response = self.inner.replica.handle_request(request).await;
        match (&response, fetched, stored) {
            (MailboxResponse::Fetched { .. }, Some(mailbox), _) => self.subscribe(mailbox, peer),
            (
                MailboxResponse::Stored {
                    duplicate: false, ..
                },
                _,
                Some(mailbox),
            ) => self.on_stored(&mailbox),
            _ => {}
        }
        response.encode()
    }

    /// How the replica's group commit went so far.
    pub fn replica_stats(&self) -> ReplicaWriterStats {
        self.inner.replica.writer_stats()
    }
}

#[cfg(test)]
mod revoke_tests;
#[cfg(test)]
mod tests;
