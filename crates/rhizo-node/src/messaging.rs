//! The messaging service: the thin async driver around the sans-IO [`rhizo_engine::Engine`].
//!
//! ```text
//!  API ─▶ Messaging (this module: I/O only)                       rhizo_engine::Engine
//!         send_text ─▶ Db::write (group commit, writer thread) ──▶ queue_text / send_first
//!         outbox timer (Clock) ─▶ poll_transmits ─▶ Client::send_message to each device
//!                               ─▶ on_transmit_result ─▶ mailbox store ─▶ on_mailbox_result
//!         inbound /rhizo/msg/1 ─▶ check_frame ─▶ Db::try_write: handle_checked ─▶ signed receipt
//!         mailbox poll (Clock) ─▶ fetch pages ─▶ apply_fetched ─▶ delete with a signed receipt
//!         publisher (Clock) ─▶ PublishSchedule ─▶ records ─▶ DHT
//!         DHT lookups: KeyPackages, identity records, device lists, profiles, agent cards
//! ```
//!
//! The engine decides; this module looks things up in the DHT, sends frames with rhizo-net's
//! [`Client`], runs the timers on the injected [`Clock`](crate::clock::Clock), and streams
//! events to the API. Store and MLS work runs as jobs of the database's one owner ([`Db`]):
//! writes (with MLS state) in its group commit, answered after their commit; reads on its
//! reader pool.
//! Persist-before-acknowledge: an incoming message is committed (MLS state, seen-set and the
//! message row together) before its receipt is sent; an outgoing one before its first send.
//!
//! Files: `agents` (tasks: delegate, the worker's queue and updates, the task timer),
//! `contacts` (tickets, UIDs, proofs), `devices` (this identity's devices: link, list, revoke), `device_join` (a new device
//! added to our groups; committers' device lists fetched), `groups` (private groups: create, add, the group
//! outbox, re-adds), `group_views` (group list, info, history, invitations), `send` (the group commit, the first message,
//! history), `outbox` (the delivery loop), `heartbeats` (agent heartbeats and
//! liveness), `mailbox_poll` (fetching ours), `publish` (records and their schedule),
//! `sync` (our devices' sync group after a link), `manage` (rename, remove, block contacts; delete,
//! mute, archive conversations; delete for everyone), `typing` (typing indicators), `profiles`, `agent_cards` (our card, skill provider records, finding agents), `reestablish`
//! (new conversations for messages the recipient's lost conversation left), `requests`,
//! `views` (JSON), `error` (typed errors).

use std::sync::Arc;

use libp2p::PeerId;
use rhizo_engine::{Engine, EngineError, Event};
use rhizo_net::Client;
use rhizo_store::{Db, DbError, Durability, Reader, Tx};
use tokio::sync::{Notify, broadcast};
use tracing::warn;

mod agent_cards;
mod agents;
mod contacts;
mod device_join;
mod devices;
mod error;
mod files;
mod group_views;
mod groups;
mod heartbeats;
mod mailbox_poll;
mod manage;
mod outbox;
mod profiles;
mod publish;
mod reestablish;
mod requests;
mod send;
mod sync;
mod typing;
mod views;

pub use agent_cards::{
    ASK_AGENT_TIMEOUT, AgentLoad, AgentView, FIND_CARD_TIMEOUT, MAX_FIND_PROVIDERS, OwnCardView,
};
pub use agents::{TaskError, TaskInputBody, TaskListQuery, parse_states};
pub use error::{
    CardError, ContactError, FetchError, GroupError, JobError, MessagingError, ProfileError,
    RequestError, SendError,
};
pub use group_views::{
    GroupInfoView, GroupMemberView, GroupMessageView, GroupRequestView, GroupView,
};
pub use heartbeats::{HeartbeatSettings, MAX_HEARTBEATS_PER_ROUND};
pub use manage::{ConversationView, DeletedView, ManageError};
pub use requests::RequestView;
pub use rhizo_engine::{
    MAX_TEXT_BYTES, Me,
    publish::seed_versions_after_recovery,
    wire::{RESPONSE_ERROR, RESPONSE_RECEIPT, batch_len, conduct_of, rate_limited_response},
};
pub use typing::TypingView;
pub use views::{
    ContactView, FetchReport, FileSummary, HeldView, MailboxStatus, MessageView, ProfileView,
    QueuedView,
};

use crate::{agent_wake::AgentPresence, clock::SharedClock, events::ApiEvent, mailbox::Mailbox};

/// The messaging service (cheap to clone).
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").finish_non_exhaustive()
    }
}

struct Inner {
    db: Db,
    engine: Engine,
    client: Client,
    clock: SharedClock,
    events: broadcast::Sender<ApiEvent>,
    outbox_wake: Notify,
    /// Wakes the task timer (a new task, a new deadline).
    agent_wake: Notify,
    mailbox: Mailbox,
    /// Fetches the mailbox now (a revoke: the replicas learn the newest device list at once).
    mailbox_wake: Notify,
    /// Identity lookups of message-request senders running at once.
    resolving: Arc<tokio::sync::Semaphore>,
    /// Wakes the liveness ticker when a heartbeat changed an agent's liveness.
    liveness_wake: Notify,
    /// Whether an agent program is attached (wake on task).
    agent_presence: Arc<AgentPresence>,
    /// The skills of our card announced as provider records (at most `MAX_SKILLS`).
    announced_skills: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Re-adds of members whose add lost the commit ordering, per (group, UID) (bounded).
    readds: std::sync::Mutex<std::collections::HashMap<(String, String), u32>>,
    /// Clock skew against the peers that answered with a receipt (`rhizo doctor`).
    clock_skews: crate::clock_skew::ClockSkews,
    /// The contacts' presence (kept by `presence::run`).
    presence: crate::presence::Presence,
    /// Batch frames are taken (off: refused as `MALFORMED`, as a node older than them does).
    batch_frames: std::sync::atomic::AtomicBool,
    /// Days of history a new device gets when `device add` does not say (`devices.history_days`).
    history_days: std::sync::atomic::AtomicU32,
    /// Moves the history transfers on now: one started, or a page or acknowledgement arrived.
    history_wake: Notify,
    /// Wakes the publisher: a peer connected while nothing was published yet (a linked
    /// device's first publication waits for a peer to look our records up with).
    publish_wake: Notify,
    /// Our newly linked devices whose KeyPackages we look for (`sync`, `device_join`), by
    /// PeerId, with the number of lookups waiting for each.
    awaited_devices: std::sync::Mutex<std::collections::HashMap<libp2p::PeerId, usize>>,
    /// Wakes those lookups: an awaited device did something in the DHT with us.
    awaited_device_wake: Notify,
    /// We hide our presence: no typing indicators are sent.
    hide_presence: std::sync::atomic::AtomicBool,
}

/// Counters of the messaging service since start.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct MessagingStats {
    /// Transactions that committed texts queued through the group commit.
    pub send_commits: u64,
    /// Texts queued through the group commit (÷ `send_commits` = texts per `fsync`).
    pub grouped_sends: u64,
    /// Batch frames sent (each answered by one receipt).
    pub batches_sent: u64,
    /// Envelopes sent inside batch frames.
    pub batched_envelopes_sent: u64,
    /// Batch frames received and applied (one transaction each).
    pub batches_received: u64,
    /// Envelopes received inside batch frames.
    pub batched_envelopes_received: u64,
    /// MLS conversations found loaded in memory.
    pub conversation_cache_hits: u64,
    /// MLS conversations loaded from the database.
    pub conversation_cache_misses: u64,
    /// Mailbox replica: transactions that committed stores for others (one `fsync` each).
    #[serde(default)]
    pub mailbox_commits: u64,
    /// Mailbox replica: stores answered from them (÷ `mailbox_commits` = stores per `fsync`).
    #[serde(default)]
    pub mailbox_stores: u64,
    /// Mailbox replica: stores answered `RATE_LIMITED` because the writer's queue was full.
    #[serde(default)]
    pub mailbox_refused_busy: u64,
    /// New message requests (senders who are not contacts).
    #[serde(default)]
    pub requests_received: u64,
    /// Message requests accepted (their envelopes applied).
    #[serde(default)]
    pub requests_accepted: u64,
    /// Conversations closed because the peer refused them for good.
    #[serde(default)]
    pub conversations_closed: u64,
    /// Jobs the store's writer thread ran (all callers).
    #[serde(default)]
    pub db_write_jobs: u64,
    /// Transactions the store's writer thread committed (one `fsync` each at most).
    #[serde(default)]
    pub db_commits: u64,
    /// Of them, the durable ones (one `fsync` each; the rest were relaxed).
    #[serde(default)]
    pub db_durable_commits: u64,
}

impl Messaging {
    pub(crate) fn new(
        db: Db,
        client: Client,
        me: Me,
        rekey: rhizo_e2e::RekeyPolicy,
        mailbox: Mailbox,
        clock: SharedClock,
        agent_presence: Arc<AgentPresence>,
    ) -> Result<Self, EngineError> {
        let (events, _) = broadcast::channel(crate::events::EVENT_BUFFER);
        mailbox.set_own_uid(me.uid);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                engine: Engine::new(me, rekey)?,
                client,
                clock,
                events,
                outbox_wake: Notify::new(),
                agent_wake: Notify::new(),
                mailbox,
                mailbox_wake: Notify::new(),
                resolving: Arc::new(tokio::sync::Semaphore::new(requests::MAX_RESOLVING)),
                liveness_wake: Notify::new(),
                agent_presence,
                announced_skills: std::sync::Mutex::default(),
                readds: std::sync::Mutex::default(),
                clock_skews: crate::clock_skew::ClockSkews::default(),
                presence: crate::presence::Presence::default(),
                batch_frames: std::sync::atomic::AtomicBool::new(true),
                history_days: std::sync::atomic::AtomicU32::new(
                    rhizo_engine::sync::history::DEFAULT_HISTORY_DAYS,
                ),
                history_wake: Notify::new(),
                publish_wake: Notify::new(),
                awaited_devices: std::sync::Mutex::default(),
                awaited_device_wake: Notify::new(),
                hide_presence: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> MessagingStats {
        let e = self.inner.engine.stats();
        let replica = self.inner.mailbox.replica_stats();
        let db = self.inner.db.stats();
        MessagingStats {
            send_commits: e.send_commits,
            grouped_sends: e.grouped_sends,
            batches_sent: e.batches_sent,
            batched_envelopes_sent: e.batched_envelopes_sent,
            batches_received: e.batches_received,
            batched_envelopes_received: e.batched_envelopes_received,
            conversation_cache_hits: e.conversation_cache_hits,
            conversation_cache_misses: e.conversation_cache_misses,
            mailbox_commits: replica.commits,
            mailbox_stores: replica.stores,
            mailbox_refused_busy: replica.refused_busy,
            requests_received: e.requests_received,
            requests_accepted: e.requests_accepted,
            conversations_closed: e.conversations_closed,
            db_write_jobs: db.jobs,
            db_commits: db.commits,
            db_durable_commits: db.durable_commits,
        }
    }

    /// Clock skew against the peers that answered with a receipt.
    pub fn clock_skew(&self) -> crate::clock_skew::ClockSkewSummary {
        self.inner.clock_skews.summary()
    }

    /// The sender side of the event stream (other services publish on it too).
    pub fn event_sender(&self) -> broadcast::Sender<ApiEvent> {
        self.inner.events.clone()
    }

    /// Whether an agent program is attached: the worker API handlers `touch()` it, and
    /// `/v1/events?agent=1` streams hold it.
    pub fn agent_presence(&self) -> &Arc<AgentPresence> {
        &self.inner.agent_presence
    }

    /// What we know of agent `uid` now: liveness, last heartbeat, load and breaker.
    pub fn agent_status(&self, uid: &rhizo_core::Uid) -> rhizo_engine::agents::health::AgentStatus {
        self.inner.engine.agent_status(uid, self.now())
    }

    /// Subscribes to incoming messages and state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<ApiEvent> {
        self.inner.events.subscribe()
    }

    /// Takes batch frames (`true`, the default) or refuses them as a node older than them does.
    pub fn set_batch_frames(&self, on: bool) {
        self.inner
            .batch_frames
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The contacts' presence.
    pub fn presence(&self) -> &crate::presence::Presence {
        &self.inner.presence
    }

    /// Contacts' last-seen times saved by an earlier run (none if they cannot be read).
    pub(crate) async fn saved_last_seen(&self) -> Vec<(String, i64)> {
        self.inner
            .db
            .read(|r| r.last_seen().map_err(DbError::from))
            .await
            .unwrap_or_default()
    }

    /// Saves contacts' last-seen times (best effort: presence is not worth failing for).
    pub(crate) async fn save_last_seen(&self, seen: Vec<(String, i64)>) {
        let saved = self
            .inner
            .db
            .write_with(Durability::Relaxed, move |tx| {
                tx.save_last_seen(&seen).map_err(DbError::from)
            })
            .await;
        if let Err(e) = saved {
            warn!(error = %e, "last-seen times not saved");
        }
    }

    /// Sends a `presence` event to API clients.
    pub(crate) fn emit_presence(&self, event: ApiEvent) {
        self.emit(event);
    }

    fn emit(&self, event: ApiEvent) {
        // A new contact may be connected already: presence compares at once.
        if matches!(event, ApiEvent::ContactAdded { .. }) {
            self.inner.presence.wake();
        }
        // No subscriber is fine: events are also in the database.
        let _ = self.inner.events.send(event);
    }

    /// Emits the engine's events; looks up the senders of new message requests.
    fn emit_events(&self, events: Vec<Event>) {
        for event in events {
            if let Some(event) = reestablish::api_event(&event) {
                self.emit(event);
                continue;
            }
            let event = match event {
                Event::MessageReceived {
                    id,
                    contact,
                    text,
                    sent_at,
                    muted,
                } => ApiEvent::MessageReceived {
                    id,
                    contact,
                    text,
                    sent_at,
                    muted,
                },
                Event::MessageDeleted {
                    id,
                    conversation,
                    for_everyone,
                } => ApiEvent::MessageDeleted {
                    id,
                    conversation,
                    for_everyone,
                },
                Event::ConversationChanged {
                    conversation,
                    change,
                } => ApiEvent::ConversationChanged {
                    conversation,
                    change,
                },
                Event::KeyChange { contact } => ApiEvent::KeyChange { contact },
                Event::Typing { conversation, from } => ApiEvent::Typing { conversation, from },
                Event::MessageState { id, contact, state } => ApiEvent::MessageState {
                    id,
                    contact,
                    state: state.to_string(),
                },
                Event::MessageRequest { uid } => {
                    self.inner.engine.note_request_received();
                    if let Ok(parsed) = uid.parse() {
                        self.spawn_resolve(parsed);
                        self.spawn_accept_task_request(parsed);
                    }
                    ApiEvent::MessageRequest {
                        uid,
                        name: None,
                        safety_number: None,
                    }
                }
                Event::TaskReceived {
                    task_id,
                    from,
                    skill,
                } => {
                    // Its deadline may be the next one.
                    self.inner.agent_wake.notify_one();
                    ApiEvent::TaskReceived {
                        task_id,
                        from,
                        skill,
                    }
                }
                Event::TaskUpdated {
                    task_id,
                    side,
                    peer,
                    status,
                    new_artifacts,
                } => ApiEvent::TaskUpdated {
                    task_id,
                    side,
                    peer,
                    status,
                    new_artifacts,
                },
                Event::TaskAssigned {
                    task_id,
                    group,
                    worker,
                } => ApiEvent::TaskAssigned {
                    task_id,
                    group,
                    worker,
                },
                Event::AgentLiveness { uid, liveness } => {
                    // A heartbeat moved the next liveness deadline.
                    self.inner.liveness_wake.notify_one();
                    ApiEvent::AgentLiveness { uid, liveness }
                }
                Event::AgentCard { uid, agent } => ApiEvent::AgentCard { uid, agent },
                Event::WakeUp { from, reason } => ApiEvent::WakeUp { from, reason },
                Event::GroupAddUndone { group, uids } => {
                    self.spawn_readd(group, uids);
                    continue;
                }
                Event::HistoryMoved => {
                    self.inner.history_wake.notify_one();
                    continue;
                }
                event => match groups::api_event(event) {
                    Some(event) => event,
                    None => continue,
                },
            };
            self.emit(event);
        }
    }

    /// Now, on the node's clock (unix ms).
    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Runs `f` with a write transaction and the engine: one job of the database's group
    /// commit, answered once the commit holding its changes returned (when `f` fails, only its
    /// own changes are rolled back).
    async fn with_tx<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>, &Engine) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let this = self.clone();
        self.inner
            .db
            .write(move |tx| f(tx, &this.inner.engine))
            .await
    }

    /// Runs `f` with a reader (the last committed state) and the engine, on the database's
    /// reader pool.
    async fn with_reader<T, E>(
        &self,
        f: impl FnOnce(&Reader<'_>, &Engine) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let this = self.clone();
        self.inner
            .db
            .read(move |reader| f(&reader, &this.inner.engine))
            .await
    }

    /// [`with_tx`](Self::with_tx) for a call of the engine.
    async fn with_engine<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>, &Engine) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, JobError> {
        self.with_tx(move |tx, engine| f(tx, engine).map_err(JobError::from))
            .await
    }

    /// Handles one inbound `/rhizo/msg/1` request; returns the response bytes.
    pub async fn handle_inbound(&self, peer: PeerId, payload: Vec<u8>) -> Vec<u8> {
        // Decoding and the signatures first, off the database's writer thread (which then
        // only applies): a bare envelope here, a batch (an Ed25519 verification per envelope)
        // on the blocking pool. The inbound permits bound how many run at once.
        let batch = rhizo_core::envelope::is_batch_frame(&payload);
        if batch
            && !self
                .inner
                .batch_frames
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return rhizo_engine::wire::batch_refused_response();
        }
        let frame = if batch {
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.inner.engine.check_frame(&payload)).await
            {
                Ok(frame) => frame,
                Err(e) => {
                    warn!(%peer, error = %e, "checking an inbound batch failed");
                    return rhizo_engine::wire::internal_error_response();
                }
            }
        } else {
            self.inner.engine.check_frame(&payload)
        };
        let now = self.now();
        let this = self.clone();
        // One job of the database's group commit: the receipt goes back only after the commit
        // holding what the frame changed. A full queue is answered RATE_LIMITED (the sender
        // retries), never waited on without bound.
        let job = move |tx: &mut rhizo_store::Tx<'_>| -> Result<_, DbError> {
            Ok(this.inner.engine.handle_checked(tx, frame, now))
        };
        let pending = match self.inner.db.try_write(Durability::Full, job) {
            Ok(pending) => pending,
            Err(DbError::Busy) => return rhizo_engine::wire::rate_limited_response(),
            Err(e) => {
                warn!(%peer, error = %e, "inbound message not taken");
                return rhizo_engine::wire::internal_error_response();
            }
        };
        match pending.await {
            Ok(inbound) => {
                if inbound.agent_queued > 0 || inbound.group_due {
                    self.inner.outbox_wake.notify_one();
                }
                self.emit_events(inbound.events);
                self.refresh_wanted_device_lists();
                inbound.response
            }
            Err(e) => {
                warn!(%peer, error = %e, "inbound message failed");
                rhizo_engine::wire::internal_error_response()
            }
        }
    }
}

#[cfg(test)]
mod tests;
