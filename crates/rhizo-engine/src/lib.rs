//! rhizo's messaging protocol as a sans-IO engine (the quinn-proto half of a quinn / quinn-proto
//! split; `rhizo-node`'s `messaging` is the thin async driver).
//!
//! The engine reads no clock, opens no socket and spawns no task: every input is a store
//! transaction, bytes and `now` (unix milliseconds), and every output is data — frames to send,
//! events for the local API, and the next deadline. Conversations have N members with several
//! devices each: a conversation's devices are a list ([`Transmit::targets`]), receipts are kept
//! per envelope, and nothing assumes "the peer".
//!
//! ```text
//!   driver (rhizo-node)                    Engine (this crate)                 rhizo-store
//!   ──────────────────                     ──────────────────                 ───────────
//!   inbound /rhizo/msg/1 bytes ─▶ check_frame(bytes) (signatures, before the job)
//!                             ─▶ handle_checked(tx, checked, now) ─▶ a Db job ─▶ seen, MLS, rows
//!                             ◀─ Inbound { response (signed receipt), events }
//!   timer (Clock) ────────────▶ poll_transmits(reader, now) ─▶ [Transmit: frame + devices]
//!   send frame to each device ─▶ check_answers (receipt signatures, before the job)
//!                             ─▶ on_checked_answers(tx, transmit, checked, now)
//!                             ◀─ TransmitResult { events, unreachable → mailbox fallback }
//!   mailbox store verdict ────▶ on_mailbox_result(tx, item, contact, attempt, now)
//!   lost conversation ────────▶ due_reestablishments(reader, now), then reestablish(tx, …,
//!                                fresh KeyPackages, now) or reestablish_failed(tx, …, now)
//!   sleep until ◀──────────────  next_deadline(reader)
//!   send_text ────────────────▶ queue_text (a Db job) / send_first (Welcome from fetched KeyPackages)
//!   publisher timer ──────────▶ PublishSchedule, identity_records, key_package_record
//! ```
//!
//! # Layout
//!
//! - [`agents`]: the agent protocol (issue 13): the dispatcher of inbound agent messages, tasks
//!   on both sides, our agent card and capability answers, sending agent messages on the
//!   reliable path; heartbeats and liveness, `wake_up`, the circuit breaker; tasks addressed to a
//!   group and heartbeats among its members.
//! - [`cache`]: [`ConversationCache`], loaded MLS conversations between messages.
//! - [`commits`]: pending self-updates (MLS commits) settled from receipts, and the sweep.
//! - [`contacts`]: finding a contact by name or UID.
//! - [`conversations`]: creating a conversation (Welcome), encrypting and sealing envelopes.
//! - [`devices`]: this identity's linked devices (on the device with the root key): linking
//!   and revoking one signs a new device-list version; revoking removes the device from every
//!   group and 1:1 conversation (adding one to a 1:1 conversation waits for its pending commit,
//!   and a refused add is withdrawn and retried, `devices::pending`); other users' device lists fetched for the role rule
//!   (`devices::lists`).
//! - [`error`]: [`EngineError`], why an operation failed.
//! - [`events`]: [`Event`], what the driver shows the local API.
//! - [`fetched`]: applying envelopes fetched from a mailbox (or held as a request).
//! - [`files`]: file messages (issue 16): queueing one (its reference inside MLS, its row in
//!   `files`), and the reference of a received one checked and stored.
//! - [`groups`]: private groups (issue 14): creating and changing one (admins), group messages
//!   fanned out as one envelope to every member device with per-device delivery state, inbound
//!   group envelopes, invitations (joined or held as group requests; Welcomes in parts kept in
//!   the store until whole), the ordering driver after a rollback, re-add recovery (asked for
//!   by itself when stuck), a joiner's first self-update (`groups::selfupdate`), member-relayed
//!   fan-out for large groups (`groups::relay`).
//! - [`manage`]: managing contacts and conversations (issue 20): removing a contact, the
//!   block check on inbound envelopes, "delete for everyone" sent and honoured.
//! - [`mailbox`]: the mailbox replica's rules (what a replica answers to each request).
//! - [`inbound`]: the inbound checks and the Welcome / application / commit / receipt paths.
//! - [`outbox`]: due envelopes → [`Transmit`] batches → outcomes → retries, and the mailbox
//!   fallback.
//! - [`profiles`]: our profile and contacts' profiles received end-to-end.
//! - [`publish`]: KeyPackage bundles, identity records, device lists and their schedule.
//! - [`receipts`]: delivery and read receipts, queued and applied.
//! - [`reestablish`]: a 1:1 conversation the recipient lost: its messages parked, then moved
//!   in order into a new conversation (bounded attempts).
//! - [`requests`]: envelopes from non-contacts held as message requests.
//! - [`restored`]: a database restored from an older copy: a self-update of ours in every
//!   conversation before our next application message in it (in a 1:1, that message is held
//!   until the peer confirms the commit).
//! - `rng`: the engine's random generator (seeded from the OS, or by a simulation).
//! - [`send`]: queueing texts (the group commit) and the first message of a conversation.
//! - [`sync`]: the sync group of our own devices (kind `self`, issue 15) and the read
//!   markers it carries.
//! - [`typing`]: typing indicators (issue 20): ephemeral, rate-limited, never stored.
//! - [`wire`]: `/rhizo/msg/1` responses (receipts, errors) and what they say.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rhizo_core::{DeviceCertificate, DeviceKey, RootKey, RootPublicKey, Uid, seen::SeenSet};
use rhizo_e2e::{Device, RekeyPolicy};

pub mod agents;
pub mod cache;
pub mod commits;
pub mod contacts;
pub mod conversations;
pub mod devices;
pub mod error;
pub mod events;
pub mod fetched;
pub mod files;
pub mod groups;
pub mod inbound;
pub mod mailbox;
pub mod manage;
pub mod outbox;
pub mod profiles;
pub mod publish;
pub mod receipts;
pub mod reestablish;
pub mod requests;
pub mod restored;
mod rng;
pub mod send;
pub mod sync;
pub mod typing;
pub mod wire;

pub use cache::ConversationCache;
pub use error::EngineError;
pub use events::Event;
pub use inbound::{CheckedFrame, Inbound};
pub use outbox::{CheckedAnswers, MailboxAttempt, Outcome, Transmit, TransmitResult};

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

/// Longest chat text accepted.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// This node's identity, as the messaging engine needs it.
///
/// A primary device holds the root key; a linked (companion) device holds only its own device
/// key and certificate, and everything the root key signs (identity record, device list,
/// profiles, agent cards, contact tickets) is done by a device that holds it.
#[derive(Debug)]
pub struct Me {
    /// The root key (signs records and profiles); `None` on a linked device.
    pub root: Option<RootKey>,
    /// Our root public key (the identity's key; the UID is its hash).
    pub root_public: RootPublicKey,
    /// This device's key (signs envelopes and receipts).
    pub device: DeviceKey,
    /// The root's certificate for this device.
    pub certificate: DeviceCertificate,
    /// Our UID.
    pub uid: Uid,
    /// The name in our tickets.
    pub name: Option<String>,
}

impl Me {
    /// A device that holds the root key.
    pub fn primary(
        root: RootKey,
        device: DeviceKey,
        certificate: DeviceCertificate,
        name: Option<String>,
    ) -> Self {
        let root_public = root.public();
        Self {
            root: Some(root),
            root_public,
            device,
            certificate,
            uid: root_public.uid(),
            name,
        }
    }

    /// A linked device: its key and the root's certificate for it, no root key.
    pub fn companion(
        device: DeviceKey,
        certificate: DeviceCertificate,
        name: Option<String>,
    ) -> Self {
        let root_public = certificate.root();
        Self {
            root: None,
            root_public,
            device,
            certificate,
            uid: root_public.uid(),
            name,
        }
    }

    /// The root key, to sign what only it may sign.
    ///
    /// # Errors
    ///
    /// [`EngineError::NoRootKey`] on a linked device.
    pub fn root_signer(&self) -> Result<&RootKey, EngineError> {
        self.root.as_ref().ok_or(EngineError::NoRootKey)
    }

    /// Whether this device holds the root key.
    pub fn holds_root(&self) -> bool {
        self.root.is_some()
    }
}

/// The messaging engine: our identity, the MLS device, the seen-set cache, the loaded
/// conversations and counters. All methods take `&self` (the caches lock inside), so a driver
/// can share one engine between the database's threads; every call gets a write transaction
/// ([`Tx`](rhizo_store::Tx), a job of the group commit) or a [`Reader`](rhizo_store::Reader).
pub struct Engine {
    pub(crate) me: Me,
    pub(crate) mls_device: Device,
    /// The seen-set's LRU and window in front of the persisted `seen` table.
    pub(crate) seen: std::sync::Arc<Mutex<SeenSet<inbound::InTransaction>>>,
    pub(crate) conversations: std::sync::Arc<ConversationCache>,
    pub(crate) counters: Counters,
    pub(crate) rekey: RekeyPolicy,
    /// Remote agents' liveness and circuit breakers (in memory).
    pub(crate) agent_health: std::sync::Arc<agents::health::AgentHealth>,
    /// Where every random choice of the engine comes from (see `rng`).
    pub(crate) rng: rng::EngineRng,
    /// Joiners' first self-updates, scheduled ([`groups::selfupdate`]).
    pub(crate) self_updates: groups::selfupdate::SelfUpdates,
    /// The last typing indicators sent, per conversation (rate limit; in memory).
    pub(crate) typing: typing::TypingLimiter,
    /// Whether own-device adds may wait ([`devices::pending`]).
    pub(crate) device_adds: devices::pending::AddsWaiting,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("uid", &self.me.uid)
            .finish_non_exhaustive()
    }
}

/// How much group commit and batching happened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) send_commits: AtomicU64,
    /// The group commit of the last text queued (a new number: one more send commit).
    pub(crate) last_send_group: AtomicU64,
    pub(crate) grouped_sends: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) batched_envelopes_sent: AtomicU64,
    pub(crate) batches_received: AtomicU64,
    pub(crate) batched_envelopes_received: AtomicU64,
    pub(crate) requests_received: AtomicU64,
    pub(crate) requests_accepted: AtomicU64,
    pub(crate) conversations_closed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counters of the engine since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Transactions that committed texts queued through the group commit.
    pub send_commits: u64,
    /// Texts queued through the group commit.
    pub grouped_sends: u64,
    /// Batch frames sent.
    pub batches_sent: u64,
    /// Envelopes sent inside batch frames.
    pub batched_envelopes_sent: u64,
    /// Batch frames received and applied.
    pub batches_received: u64,
    /// Envelopes received inside batch frames.
    pub batched_envelopes_received: u64,
    /// MLS conversations found loaded in memory.
    pub conversation_cache_hits: u64,
    /// MLS conversations loaded from the database.
    pub conversation_cache_misses: u64,
    /// New message requests.
    pub requests_received: u64,
    /// Message requests accepted.
    pub requests_accepted: u64,
    /// Conversations closed because the peer refused them for good.
    pub conversations_closed: u64,
}

impl Engine {
    /// An engine for `me`, with the MLS rekey rule `rekey`; its random generator is seeded
    /// from the operating system.
    ///
    /// # Errors
    ///
    /// [`EngineError::Mls`] if the device key or certificate is not usable for MLS;
    /// [`EngineError::Random`] if the operating system has no randomness.
    pub fn new(me: Me, rekey: RekeyPolicy) -> Result<Self, EngineError> {
        Self::with_rng(me, rekey, rng::EngineRng::from_os()?)
    }

    /// An engine whose random generator is seeded with `seed`, for tests and simulations
    /// only: the same seed gives the same session ids, nonces, message ids, retry jitter and
    /// KeyPackage choices, so a schedule replays exactly — and anyone who knows the seed can
    /// predict them. MLS's own randomness is not seeded.
    ///
    /// # Errors
    ///
    /// [`EngineError::Mls`] if the device key or certificate is not usable for MLS.
    pub fn with_seed(me: Me, rekey: RekeyPolicy, seed: u64) -> Result<Self, EngineError> {
        Self::with_rng(me, rekey, rng::EngineRng::from_seed(seed))
    }

    fn with_rng(me: Me, rekey: RekeyPolicy, rng: rng::EngineRng) -> Result<Self, EngineError> {
        let mls_device = Device::new(&me.device.to_bytes(), &me.certificate.encode())?;
        Ok(Self {
            me,
            mls_device,
            seen: std::sync::Arc::new(Mutex::new(SeenSet::new(inbound::InTransaction))),
            conversations: std::sync::Arc::new(ConversationCache::new(cache::CAPACITY)),
            counters: Counters::default(),
            rekey,
            agent_health: std::sync::Arc::default(),
            rng,
            self_updates: groups::selfupdate::SelfUpdates::default(),
            typing: typing::TypingLimiter::default(),
            device_adds: devices::pending::AddsWaiting::default(),
        })
    }

    /// Our identity.
    pub fn me(&self) -> &Me {
        &self.me
    }

    /// Our MLS device.
    pub fn mls_device(&self) -> &Device {
        &self.mls_device
    }

    /// Counters since the engine was made.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (hits, misses) = self.conversations.counts();
        EngineStats {
            send_commits: get(&c.send_commits),
            grouped_sends: get(&c.grouped_sends),
            batches_sent: get(&c.batches_sent),
            batched_envelopes_sent: get(&c.batched_envelopes_sent),
            batches_received: get(&c.batches_received),
            batched_envelopes_received: get(&c.batched_envelopes_received),
            conversation_cache_hits: hits,
            conversation_cache_misses: misses,
            requests_received: get(&c.requests_received),
            requests_accepted: get(&c.requests_accepted),
            conversations_closed: get(&c.conversations_closed),
        }
    }

    /// Counts a message request the driver announced (a new sender).
    pub fn note_request_received(&self) {
        Counters::add(&self.counters.requests_received, 1);
    }

    /// Counts a message request accepted (its envelopes applied).
    pub fn note_request_accepted(&self) {
        Counters::add(&self.counters.requests_accepted, 1);
    }
}

impl Engine {
    /// Runs `f`, a job that may change loaded conversations (see [`cache`]), inside `tx`: what
    /// it staged is dropped at once when it fails (its savepoint is rolled back), and otherwise
    /// cached once the transaction holding it committed ([`Tx::after_commit`](rhizo_store::Tx)).
    pub(crate) fn in_job<T, E>(
        &self,
        tx: &mut rhizo_store::Tx<'_>,
        f: impl FnOnce(&mut rhizo_store::Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let out = f(tx);
        if out.is_err() {
            self.conversations.discard_staged();
        }
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        out
    }
}

/// Unix seconds of `now_ms`.
pub(crate) fn secs(now_ms: i64) -> u64 {
    u64::try_from(now_ms.div_euclid(1000)).unwrap_or(0)
}

/// `now_ms` as the unsigned milliseconds the wire formats carry.
pub(crate) fn ms(now_ms: i64) -> u64 {
    u64::try_from(now_ms).unwrap_or(0)
}
