//! The agent protocol (issue 13, seed 004 shaped as A2A): agent messages ride the reliable
//! path inside a contact's 1:1 conversation as `ChatContent.agent`, queued like texts (outbox
//! rows of kind `"agent"`, whose body is a short JSON summary and never shown as chat).
//!
//! ```text
//!  inbound ChatContent.agent ─▶ apply (this file: the dispatcher)
//!     task_delegate / task_update / task_cancel / task_input ─▶ tasks
//!     capability_query / capability_answer                    ─▶ cards
//!     heartbeat / wake_up                                      ─▶ heartbeat
//!  answers written while an envelope is applied ─▶ agent_outbox (rhizo-store)
//!     ─▶ flush_agent_outbox (after the inbound job, or the driver's outbox pass)
//!     ─▶ queue_agent ─▶ the conversation's outbox (retries, batching, mailbox fallback)
//! ```
//!
//! Files: `agents.rs` (dispatcher, policy, sending), `agents/tasks.rs` (task semantics on both
//! sides), `agents/cards.rs` (capability query/answer), `agents/heartbeat.rs` (heartbeats, the
//! liveness map, wake-up, ephemeral sends), `agents/breaker.rs` (the circuit breaker per remote
//! agent), `agents/health.rs` (liveness and breakers together, and the engine's views of them),
//! `agents/group.rs` (tasks addressed to a group and heartbeats among its members: the same
//! messages inside the group's MLS, a task run by the one member its client assigns),
//! `agents/file_parts.rs` (file parts: a file message of the task's conversation, by hash).

use prost::Message as _;
use rhizo_core::{
    agent::{AgentCard, AgentError, TaskState},
    envelope::ErrorCode,
    proto::{AgentMessage, ChatContent, agent_message::Kind},
};
use rhizo_store::{Reader, StoreError, Tx, messaging::Contact};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::{Engine, EngineError, Event, Me, conversations::queue_application_tx, inbound::Reject};

pub mod breaker;
pub mod cards;
mod file_parts;
pub mod group;
pub mod health;
pub mod heartbeat;
pub mod tasks;

pub use tasks::{Delegated, TaskView};

#[cfg(test)]
mod tests;

/// The `meta` key holding the [`AgentPolicy`] (JSON).
pub const META_AGENT_POLICY: &str = "agent.policy";
/// Default bound of the worker's queue (tasks `submitted`) without a card or config.
pub const DEFAULT_MAX_QUEUE: u32 = 64;
/// Agent messages sent per flush of the agent outbox.
const FLUSH_BATCH: usize = 64;

/// Whose tasks a worker accepts from non-contacts (config `agent.accept_tasks_from`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptTasksFrom {
    /// Anyone who finds us (by skill): a message request carrying a task is accepted.
    #[default]
    Anyone,
    /// Contacts only.
    Contacts,
}

/// How this node acts as a worker: its card (skill checks, queue limit), the config's queue
/// bound and who may send tasks. Kept in `meta` so the inbound path reads it in its
/// transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentPolicy {
    /// Our agent card, if we are an agent.
    #[serde(default)]
    pub card: Option<AgentCard>,
    /// Config `agent.max_queue` (overrides the card's limit).
    #[serde(default)]
    pub max_queue: Option<u32>,
    /// Config `agent.accept_tasks_from`.
    #[serde(default)]
    pub accept_tasks_from: AcceptTasksFrom,
}

impl AgentPolicy {
    /// Tasks queued at most: the config's bound, else the card's, else [`DEFAULT_MAX_QUEUE`].
    pub fn max_queue(&self) -> u32 {
        self.max_queue
            .or(self.card.as_ref().map(|c| c.limits.max_queue))
            .unwrap_or(DEFAULT_MAX_QUEUE)
            .max(1)
    }

    /// Whether a message request (a non-contact's first envelopes) may be accepted as a task
    /// request: only an agent with a card, configured for `anyone`.
    pub fn accepts_strangers(&self) -> bool {
        self.card.is_some() && self.accept_tasks_from == AcceptTasksFrom::Anyone
    }

    /// The stored policy (the default when none was set).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn read(reader: &Reader<'_>) -> Result<Self, StoreError> {
        Ok(reader
            .get_meta(META_AGENT_POLICY)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default())
    }
}

/// Why a task operation (delegate, cancel, input, update, claim) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// No such task (on the side the operation works on).
    #[error("no task {0}: see `rhizo task list`")]
    UnknownTask(String),
    /// The agent is neither a contact nor a UID.
    #[error(
        "no agent '{0}': give a contact name or a UID (find agents with `rhizo agents find SKILL`)"
    )]
    UnknownAgent(String),
    /// The state machine does not allow it.
    #[error("a task cannot move from {from} to {to}")]
    BadTransition {
        /// Current state.
        from: TaskState,
        /// Asked for.
        to: TaskState,
    },
    /// The request or update breaks a rule (sizes, ids, parts).
    #[error("bad task: {0}")]
    BadTask(#[source] AgentError),
    /// The agent's circuit breaker is open: it failed too often lately.
    #[error("agent {agent} is unavailable: {open}")]
    AgentUnavailable {
        /// The agent (its contact name).
        agent: String,
        /// When a task is let through again.
        open: breaker::Open,
    },
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

impl From<AgentError> for TaskError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::BadTransition { from, to } => Self::BadTransition { from, to },
            e => Self::BadTask(e),
        }
    }
}

/// What an inbound agent message is applied with: who sent it, and who we are.
#[derive(Debug, Clone, Copy)]
pub struct AgentCtx<'a> {
    /// Us.
    pub me: &'a Me,
    /// The sender (a contact: a non-contact's envelopes are held as message requests first).
    pub contact: &'a Contact,
    /// Remote agents' liveness and circuit breakers.
    pub health: &'a health::AgentHealth,
}

/// Applies one inbound agent message from `ctx.contact` inside the envelope's transaction:
/// dispatches on its kind. A message that does not hold exactly one kind is malformed (the
/// envelope is refused and nothing changes).
pub(crate) fn apply(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    message: AgentMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let Some(kind) = message.kind else {
        return Err(Reject::Code(ErrorCode::Malformed));
    };
    match kind {
        Kind::TaskDelegate(d) => tasks::on_delegate(tx, ctx, d, now),
        Kind::TaskUpdate(u) => tasks::on_update(tx, ctx, u, now),
        Kind::TaskCancel(c) => tasks::on_cancel(tx, ctx, &c, now),
        Kind::TaskInput(i) => tasks::on_input(tx, ctx, i, now),
        Kind::CapabilityQuery(q) => cards::on_capability_query(tx, ctx, &q, now),
        Kind::CapabilityAnswer(a) => cards::on_capability_answer(tx, ctx, &a, now),
        Kind::Heartbeat(h) => Ok(heartbeat::on_heartbeat(ctx.health, ctx.contact, &h, now)),
        Kind::WakeUp(w) => Ok(heartbeat::on_wake_up(ctx.contact, &w)),
        // Group tasks only (`agents/group.rs`): nothing to do in a 1:1 conversation.
        Kind::TaskClaim(_) | Kind::TaskAssign(_) => Ok(Vec::new()),
    }
}

/// The summary an `"agent"` outbox row carries (never shown as chat).
pub fn summary(message: &AgentMessage) -> String {
    let (kind, task) = match &message.kind {
        Some(Kind::TaskDelegate(d)) => ("task_delegate", Some(&d.task_id)),
        Some(Kind::TaskUpdate(u)) => ("task_update", Some(&u.task_id)),
        Some(Kind::TaskCancel(c)) => ("task_cancel", Some(&c.task_id)),
        Some(Kind::TaskInput(i)) => ("task_input", Some(&i.task_id)),
        Some(Kind::CapabilityQuery(_)) => ("capability_query", None),
        Some(Kind::CapabilityAnswer(_)) => ("capability_answer", None),
        Some(Kind::Heartbeat(_)) => ("heartbeat", None),
        Some(Kind::WakeUp(_)) => ("wake_up", None),
        Some(Kind::TaskClaim(c)) => ("task_claim", Some(&c.task_id)),
        Some(Kind::TaskAssign(a)) => ("task_assign", Some(&a.task_id)),
        None => ("unknown", None),
    };
    let bare = matches!(&message.kind, Some(Kind::TaskUpdate(u)) if is_bare(u));
    summary_of(kind, task.map(|t| &t[..]), bare)
}

/// The body of a 1:1 `"agent"` outbox row: its [`summary`] plus the message itself
/// (`"wire"`, hex of its protobuf), so that a conversation re-established before it was
/// delivered sends the same message again (`reestablish.rs`).
pub(crate) fn row_body(message: &AgentMessage) -> String {
    let mut json: serde_json::Value =
        serde_json::from_str(&summary(message)).unwrap_or_else(|_| serde_json::json!({}));
    json["wire"] = serde_json::Value::String(hex::encode(message.encode_to_vec()));
    json.to_string()
}

/// The message a 1:1 `"agent"` row's body carries ([`row_body`]); `None` for a row written
/// before bodies carried it, or one that does not decode.
pub(crate) fn message_of_body(body: Option<&str>) -> Option<AgentMessage> {
    let json: serde_json::Value = serde_json::from_str(body?).ok()?;
    let bytes = hex::decode(json["wire"].as_str()?).ok()?;
    AgentMessage::decode(bytes.as_slice()).ok()
}

/// A status update with nothing but the state (no message, artifacts or reason) that does not
/// end the task (a claim's `working`): the next update of the task replaces it while it waits
/// in the outbox (the client accepts gaps in `seq`).
fn is_bare(u: &rhizo_core::proto::TaskUpdate) -> bool {
    u.message.is_none()
        && u.artifacts.is_empty()
        && u.reason.is_empty()
        && TaskState::from_wire(u.state).is_ok_and(|s| !s.is_terminal())
}

/// The summary text of an agent message of `kind` about `task`; `bare` marks a status update
/// a newer one supersedes.
pub(crate) fn summary_of(kind: &str, task: Option<&[u8]>, bare: bool) -> String {
    let mut json = serde_json::json!({ "kind": kind });
    if let Some(task) = task {
        json["task"] = serde_json::Value::String(hex::encode(task));
    }
    if bare {
        json["bare"] = serde_json::Value::Bool(true);
    }
    json.to_string()
}

/// Queues `message` as an answer to `to` from inside an inbound transaction: sent once that
/// transaction committed ([`Engine::flush_agent_outbox`]). Refused for now (the sender
/// retries) when too many answers wait already.
///
/// # Errors
///
/// [`Reject`] if the database fails or the agent outbox is full.
pub(crate) fn queue_reply(
    tx: &mut Tx<'_>,
    to: &[u8; 32],
    message: &AgentMessage,
    now: i64,
) -> Result<(), Reject> {
    if tx.push_agent_outbox(to, &message.encode_to_vec(), &summary(message), now)? {
        Ok(())
    } else {
        Err(Reject::Code(ErrorCode::RateLimited))
    }
}

/// The plaintext of an agent message in a conversation.
pub(crate) fn agent_content(message: &AgentMessage, now: i64, profile: Vec<u8>) -> Vec<u8> {
    ChatContent {
        text: String::new(),
        sent_at_ms: crate::ms(now),
        profile: profile.into(),
        agent: Some(message.clone()),
        ..ChatContent::default()
    }
    .encode_to_vec()
}

impl Engine {
    /// Stores the worker policy (card, queue bound, who may send tasks) the inbound path
    /// applies.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn set_agent_policy(
        &self,
        tx: &mut Tx<'_>,
        policy: &AgentPolicy,
    ) -> Result<(), EngineError> {
        let json = serde_json::to_string(policy)
            .map_err(|_| EngineError::Internal("the agent policy does not serialize"))?;
        tx.set_meta(META_AGENT_POLICY, &json)?;
        Ok(())
    }

    /// The stored worker policy.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn agent_policy(&self, reader: &Reader<'_>) -> Result<AgentPolicy, EngineError> {
        Ok(AgentPolicy::read(reader)?)
    }

    /// Queues an agent message to `contact` on the reliable path (an outbox row of kind
    /// `"agent"` in the open conversation); its row id, or `None` when there is no open
    /// conversation with the contact (the first message takes its own path).
    ///
    /// # Errors
    ///
    /// If MLS or the database fails (the caller's transaction or savepoint rolls back, and
    /// what it staged is dropped).
    pub fn queue_agent(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        message: &AgentMessage,
        now: i64,
    ) -> Result<Option<i64>, EngineError> {
        let Some(session) = tx.open_conversation_with(&contact.uid)? else {
            return Ok(None);
        };
        // Messages parked for a new conversation (the contact started this one) go first.
        crate::reestablish::unpark_into(tx, self, contact, &session, Vec::new(), now)?;
        let content = agent_content(message, now, Vec::new());
        let body = row_body(message);
        let id = queue_application_tx(
            tx,
            self,
            contact,
            &session,
            &content,
            "agent",
            Some(&body),
            now,
        )?;
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        Ok(Some(id))
    }

    /// The first agent message to a contact with no conversation yet (a capability query, a
    /// wake-up): a new conversation with the devices whose KeyPackages the driver fetched, as
    /// in [`Engine::send_first`], then the message (with our profile, if we set one), inside
    /// `tx` (a job of the group commit). Its row id.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails.
    pub fn send_agent_first(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        message: &AgentMessage,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<i64, EngineError> {
        self.in_job(tx, |tx| {
            let (session, profile) =
                crate::conversations::first_conversation(tx, self, contact, key_packages, now)?;
            let content = agent_content(message, now, profile);
            queue_application_tx(
                tx,
                self,
                contact,
                &session,
                &content,
                "agent",
                Some(&row_body(message)),
                now,
            )
        })
    }

    /// Sends the agent messages waiting in `agent_outbox` (answers written while envelopes
    /// were applied) on the reliable path, inside `tx`, each in a savepoint: one that cannot be
    /// queued now stays for the next flush; one to a UID that is no longer a contact, or with
    /// no conversation, is dropped. How many were queued.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn flush_agent_outbox(&self, tx: &mut Tx<'_>, now: i64) -> Result<usize, EngineError> {
        let mut queued = 0;
        for row in tx.agent_outbox(FLUSH_BATCH)? {
            let Ok(message) = AgentMessage::decode(row.message.as_slice()) else {
                tx.remove_agent_outbox(row.id)?;
                continue;
            };
            if let Some(group) = tx.group_by_address(&row.peer_uid)? {
                let sent = tx.in_savepoint(|tx| {
                    self.queue_group_agent(tx, &group.session_id, &message, now)?;
                    tx.remove_agent_outbox(row.id)?;
                    Ok::<_, EngineError>(())
                })?;
                match sent {
                    Ok(()) => queued += 1,
                    Err(EngineError::UnknownGroup | EngineError::NotInGroup) => {
                        debug!("an agent answer to a group we are no longer in is dropped");
                        tx.remove_agent_outbox(row.id)?;
                    }
                    Err(e) => {
                        warn!(error = %e, "queueing a group agent answer failed; tried later");
                        break;
                    }
                }
                continue;
            }
            let Some(contact) = tx.contact_by_uid(&row.peer_uid)? else {
                debug!("an agent answer to someone who is no longer a contact is dropped");
                tx.remove_agent_outbox(row.id)?;
                continue;
            };
            let sent = tx.in_savepoint(|tx| {
                let id = self.queue_agent(tx, &contact, &message, now)?;
                tx.remove_agent_outbox(row.id)?;
                Ok::<_, EngineError>(id)
            })?;
            match sent {
                Ok(Some(_)) => queued += 1,
                Ok(None) => debug!("an agent answer found no conversation and is dropped"),
                Err(e) => {
                    self.conversations.discard_staged();
                    warn!(error = %e, "queueing an agent answer failed; it is tried again later");
                    break;
                }
            }
        }
        Ok(queued)
    }

    /// [`flush_agent_outbox`](Self::flush_agent_outbox) at the end of a job (an inbound frame,
    /// the task timer), in a savepoint: a failure leaves the answers for a later flush and the
    /// job's other changes as they are. How many were queued.
    pub fn flush_agent_outbox_safely(&self, tx: &mut Tx<'_>, now: i64) -> usize {
        match tx.agent_outbox_len() {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "reading the agent outbox failed");
                return 0;
            }
        }
        let flushed = tx
            .in_savepoint(|tx| self.flush_agent_outbox(tx, now))
            .map_err(EngineError::from)
            .and_then(|r| r);
        flushed.unwrap_or_else(|e| {
            self.conversations.discard_staged();
            warn!(error = %e, "queueing agent answers failed; they are tried again later");
            0
        })
    }

    /// Whether agent answers wait to be sent (the driver then runs a flush job).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn agent_outbox_pending(&self, reader: &Reader<'_>) -> Result<bool, EngineError> {
        Ok(reader.agent_outbox_len()? > 0)
    }
}
