//! Agent tasks (issue 13): the async driver of the engine's task half.
//!
//! ```text
//!  API /v1/tasks ─▶ delegate ─▶ Db::write: engine.delegate (stored + queued in one job)
//!                     └─ no conversation ─▶ KeyPackages from the DHT ─▶ engine.delegate_first
//!                     └─ a UID that is no contact ─▶ added by UID (DHT identity) first
//!  API /v1/agent/tasks ─▶ claim_next_task / update_task (worker) ─▶ the update is queued
//!  task timer (Clock) ─▶ expire_tasks at the earliest live deadline; agent answers left by
//!                        the mailbox path are flushed
//!  message request from a stranger, and we are an agent that accepts anyone ─▶ accepted
//! ```

use std::time::Duration;

use rhizo_core::{
    Uid,
    agent::{
        AgentError, NewTask, Part, Role, Side, Task, TaskId, TaskMessage, TaskState,
        TaskUpdateInput,
    },
};
use rhizo_engine::{
    EngineError,
    agents::{AgentPolicy, Delegated, TaskError as EngineTaskError},
    contacts::find_contact_in,
};
use rhizo_store::{
    DbError, StoreError,
    agents::{TaskQuery, TaskSide},
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::{ContactError, GroupError, JobError, Messaging, SendError};

/// Tasks one listing returns by default.
const DEFAULT_TASK_LIMIT: usize = 100;
/// Longest wait of the task timer when no deadline is near (new tasks wake it anyway).
const TASK_TIMER_IDLE_MS: i64 = 60_000;
/// Wait after a failed pass of the task timer.
const TASK_TIMER_RETRY_MS: i64 = 1_000;

/// Why a task operation failed; the local API maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// No such task.
    #[error("no task {0}: see `rhizo task list`")]
    UnknownTask(String),
    /// The agent is neither a contact nor a UID.
    #[error(
        "no agent '{0}': give a contact name or a UID (find agents with `rhizo agents find SKILL`)"
    )]
    UnknownAgent(String),
    /// The task state machine does not allow it.
    #[error("a task cannot move from {from} to {to}")]
    BadTransition {
        /// Current state.
        from: TaskState,
        /// Asked for.
        to: TaskState,
    },
    /// The request breaks a rule (it names the rule).
    #[error("bad task: {0}")]
    BadTask(#[source] AgentError),
    /// The agent failed too often lately: its circuit breaker is open (the message says when
    /// it is tried again).
    #[error("agent {agent} is unavailable: {why}")]
    AgentUnavailable {
        /// The agent.
        agent: String,
        /// Why, and when it is tried again.
        why: String,
    },
    /// The agent's KeyPackages were not found (first contact).
    #[error(
        "cannot start a conversation with {0}: none of their devices' KeyPackages were found \
         in the DHT (is their node running and connected to the network?)"
    )]
    NoKeyPackages(String),
    /// Adding the agent (a UID) as a contact failed.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<EngineTaskError> for TaskError {
    fn from(e: EngineTaskError) -> Self {
        match e {
            EngineTaskError::UnknownTask(t) => Self::UnknownTask(t),
            EngineTaskError::UnknownAgent(a) => Self::UnknownAgent(a),
            EngineTaskError::BadTransition { from, to } => Self::BadTransition { from, to },
            EngineTaskError::BadTask(e) => Self::BadTask(e),
            EngineTaskError::AgentUnavailable { agent, open } => Self::AgentUnavailable {
                agent,
                why: open.to_string(),
            },
            EngineTaskError::Engine(e) => Self::Engine(e),
            _ => Self::Engine(EngineError::Internal("task operation failed")),
        }
    }
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

impl From<JobError> for TaskError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Engine(e) => Self::Engine(e),
            JobError::Db(e) => Self::Db(e),
        }
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

/// `GET /v1/tasks` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskListQuery {
    /// `client` or `worker`.
    #[serde(default)]
    pub side: Option<Side>,
    /// States, comma-separated (`working,input-required`).
    #[serde(default)]
    pub state: Option<String>,
    /// The other end: a contact name or a UID.
    #[serde(default)]
    pub peer: Option<String>,
    /// A2A context id.
    #[serde(default)]
    pub context_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `POST /v1/tasks/{id}/input` body: a full message, or `{"text": …}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskInputBody {
    /// Shorthand for one text part.
    #[serde(default)]
    pub text: Option<String>,
    /// The message id (default random).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The parts (after the text part, if both are given).
    #[serde(default)]
    pub parts: Vec<Part>,
}

impl From<TaskMessage> for TaskInputBody {
    /// A full message (its role is set to `user` when sent).
    fn from(message: TaskMessage) -> Self {
        Self {
            text: None,
            message_id: (!message.message_id.is_empty()).then_some(message.message_id),
            parts: message.parts,
        }
    }
}

impl TaskInputBody {
    /// The message it describes (role `user`).
    fn into_message(self) -> TaskMessage {
        let mut parts: Vec<Part> = self.text.map(Part::text).into_iter().collect();
        parts.extend(self.parts);
        TaskMessage {
            message_id: self.message_id.unwrap_or_default(),
            role: Role::User,
            parts,
        }
    }
}

/// Parses states written comma-separated.
///
/// # Errors
///
/// [`TaskError::BadTask`] naming an unknown state.
pub fn parse_states(text: &str) -> Result<Vec<TaskState>, TaskError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<TaskState>().map_err(TaskError::BadTask))
        .collect()
}

fn parse_id(id: &str) -> Result<TaskId, TaskError> {
    id.trim()
        .parse()
        .map_err(|_| TaskError::UnknownTask(id.to_string()))
}

/// One agent member of a group, as `GET /v1/groups/{id}/agents` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupAgentView {
    /// The member's UID.
    pub uid: String,
    /// Its contact name, if it is a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its liveness, from its heartbeats to the group.
    pub liveness: rhizo_core::agent::Liveness,
    /// When its last heartbeat arrived (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<i64>,
    /// The load its last heartbeat said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<rhizo_engine::agents::heartbeat::Load>,
}

impl Messaging {
    /// The agent members of a group (its id, an id prefix or its name) we heard heartbeats
    /// from, with their liveness.
    pub async fn group_agents(&self, group: &str) -> Result<Vec<GroupAgentView>, GroupError> {
        let group = self.find_group(group).await?;
        let now = self.now();
        self.with_reader(move |reader, engine| {
            let agents = engine.group_agents(reader, &group.session_id, now)?;
            let mut out = Vec::with_capacity(agents.len());
            for a in agents {
                let name = reader
                    .contact_by_uid(&a.uid)
                    .map_err(EngineError::from)?
                    .map(|c| c.name);
                out.push(GroupAgentView {
                    uid: Uid::from_bytes(&a.uid).to_string(),
                    name,
                    liveness: a.liveness,
                    last_heartbeat: a.last_heartbeat,
                    load: a.load,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Delegates a task (client side): stored `submitted` and queued to the agent (a contact
    /// name or UID). A UID that is no contact is added by UID first (identity from the DHT);
    /// with no conversation yet, the task opens one (first message).
    pub async fn delegate(&self, new: NewTask) -> Result<Task, TaskError> {
        new.validate()?;
        let id = TaskId::random().map_err(|_| EngineError::Internal("no randomness"))?;
        let delegated = self.delegate_in_group(new.clone(), id).await?;
        let contact = match delegated {
            Delegated::Task(task) => return Ok(self.delegated(*task)),
            Delegated::FirstMessage(contact) => contact,
            Delegated::UnknownAgent => {
                let Ok(uid) = new.to.trim().parse::<Uid>() else {
                    return Err(TaskError::UnknownAgent(new.to));
                };
                let text = uid.to_string();
                let name = format!("agent-{}", &text[..text.len().min(8)]);
                self.add_contact_by_uid(&text, &name).await?;
                match self.delegate_in_group(new.clone(), id).await? {
                    Delegated::Task(task) => return Ok(self.delegated(*task)),
                    Delegated::FirstMessage(contact) => contact,
                    Delegated::UnknownAgent => return Err(TaskError::UnknownAgent(new.to)),
                }
            }
        };
        let key_packages = self.task_key_packages(&contact).await?;
        let now = self.now();
        let task = self
            .with_tx(move |tx, engine| {
                engine
                    .delegate_first(tx, &contact, &new, id, &key_packages, now)
                    .map_err(TaskError::from)
            })
            .await?;
        Ok(self.delegated(task))
    }

    /// The contact's KeyPackages for a first agent message.
    async fn task_key_packages(
        &self,
        contact: &rhizo_store::messaging::Contact,
    ) -> Result<Vec<Vec<u8>>, TaskError> {
        self.fetch_key_packages(contact).await.map_err(|e| match e {
            SendError::NoKeyPackages(name) => TaskError::NoKeyPackages(name),
            SendError::Db(e) => TaskError::Db(e),
            SendError::Engine(e) => TaskError::Engine(e),
            _ => TaskError::Engine(EngineError::Internal("fetching KeyPackages failed")),
        })
    }

    /// One job of the group commit: the engine stores the task and queues it.
    async fn delegate_in_group(&self, new: NewTask, id: TaskId) -> Result<Delegated, TaskError> {
        let now = self.now();
        let this = self.clone();
        self.inner
            .db
            .write(move |tx| -> Result<Delegated, TaskError> {
                Ok(this.inner.engine.delegate(tx, &new, id, now)?)
            })
            .await
    }

    /// A task was delegated: wake the outbox (it is queued) and the task timer (its deadline).
    fn delegated(&self, task: Task) -> Task {
        self.inner.outbox_wake.notify_one();
        self.inner.agent_wake.notify_one();
        task
    }

    /// A task by id (ours first, else one we execute).
    pub async fn task(&self, id: &str) -> Result<Task, TaskError> {
        let task_id = parse_id(id)?;
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, TaskError> { Ok(this.inner.engine.task(&r, task_id)?) })
            .await?
            .ok_or_else(|| TaskError::UnknownTask(id.to_string()))
    }

    /// Tasks, newest first.
    pub async fn tasks(&self, query: TaskListQuery) -> Result<Vec<Task>, TaskError> {
        let states = match &query.state {
            Some(s) => parse_states(s)?,
            None => Vec::new(),
        };
        let peer_uid = match &query.peer {
            Some(peer) => Some(self.peer_uid(peer).await?),
            None => None,
        };
        let store_query = TaskQuery {
            side: query.side.map(|s| match s {
                Side::Client => TaskSide::Client,
                Side::Worker => TaskSide::Worker,
            }),
            states: states.iter().map(|s| s.as_str().to_string()).collect(),
            peer_uid,
            context_id: query.context_id,
            limit: query.limit.unwrap_or(DEFAULT_TASK_LIMIT),
        };
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, TaskError> {
                Ok(this.inner.engine.tasks(&r, &store_query)?)
            })
            .await
    }

    /// The UID of a contact name or a UID.
    async fn peer_uid(&self, peer: &str) -> Result<[u8; 32], TaskError> {
        if let Ok(uid) = peer.trim().parse::<Uid>() {
            return Ok(*uid.as_bytes());
        }
        let name = peer.to_string();
        self.with_reader(move |reader, _| {
            find_contact_in(reader, &name)?
                .map(|c| c.uid)
                .ok_or(TaskError::UnknownAgent(name))
        })
        .await
    }

    /// An agent program called the worker API now (it counts as attached).
    fn note_agent_call(&self) {
        self.inner.agent_presence.touch();
    }

    /// When (unix ms) an agent program last called `/v1/agent/tasks*`, if ever: the wake-up
    /// supervisor counts it as attached for a while after.
    pub fn last_agent_call_ms(&self) -> Option<i64> {
        self.inner.agent_presence.last_call_ms()
    }

    /// Worker load for heartbeats: tasks queued (`submitted`), working, and the queue bound.
    pub async fn worker_load(&self) -> Result<(u64, u64, u32), TaskError> {
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, TaskError> {
                let policy = this.inner.engine.agent_policy(&r)?;
                Ok((
                    r.count_tasks(TaskSide::Worker, TaskState::Submitted.as_str())?,
                    r.count_tasks(TaskSide::Worker, TaskState::Working.as_str())?,
                    policy.max_queue(),
                ))
            })
            .await
    }

    /// Worker: tasks in `states` (default: submitted, working, input-required), queue order.
    pub async fn worker_tasks(
        &self,
        states: Option<Vec<TaskState>>,
    ) -> Result<Vec<Task>, TaskError> {
        self.note_agent_call();
        let states = states.filter(|s| !s.is_empty()).unwrap_or_else(|| {
            vec![
                TaskState::Submitted,
                TaskState::Working,
                TaskState::InputRequired,
            ]
        });
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, TaskError> {
                Ok(this.inner.engine.worker_queue(
                    &r,
                    &states,
                    rhizo_store::agents::MAX_TASK_LIST,
                )?)
            })
            .await
    }

    /// Client: cancels a task (the worker's update says when it is `canceled`).
    pub async fn cancel_task(&self, id: &str) -> Result<Task, TaskError> {
        let task_id = parse_id(id)?;
        let now = self.now();
        let this = self.clone();
        let task = self
            .inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                Ok(this.inner.engine.cancel_task(tx, task_id, now)?)
            })
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(task)
    }

    /// Client: more input for a task (in `input-required`).
    pub async fn task_input(&self, id: &str, body: TaskInputBody) -> Result<Task, TaskError> {
        let task_id = parse_id(id)?;
        let message = body.into_message();
        let now = self.now();
        let this = self.clone();
        let task = self
            .inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                Ok(this.inner.engine.task_input(tx, task_id, message, now)?)
            })
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(task)
    }

    /// Worker: the agent program's status change, message and artifacts for a task.
    pub async fn update_task(&self, id: &str, input: TaskUpdateInput) -> Result<Task, TaskError> {
        self.note_agent_call();
        let task_id = parse_id(id)?;
        let now = self.now();
        let this = self.clone();
        let (task, events) = self
            .inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                Ok(this.inner.engine.update_task(tx, task_id, &input, now)?)
            })
            .await?;
        self.emit_events(events);
        self.inner.outbox_wake.notify_one();
        Ok(task)
    }

    /// Worker: claims the next queued task (it moves to `working`); `None` when none waits.
    /// With `update` (an instant worker's answer, e.g. `completed` with its artifacts) the
    /// task also takes that update in the same durable commit, and only the update goes to the
    /// client.
    pub async fn claim_next_task(
        &self,
        update: Option<TaskUpdateInput>,
    ) -> Result<Option<Task>, TaskError> {
        self.note_agent_call();
        if let Some(input) = &update {
            input.validate()?;
            TaskState::Working.check_move(input.state)?;
        }
        // An empty queue needs no write (a task that arrives after this read is announced
        // by its own `task_received`).
        let empty = self
            .inner
            .db
            .read(move |r| -> Result<_, TaskError> {
                Ok(r.task_queue(&[TaskState::Submitted.as_str()], 1)?
                    .is_empty())
            })
            .await?;
        if empty {
            return Ok(None);
        }
        let now = self.now();
        let this = self.clone();
        let claimed = self
            .inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                Ok(this
                    .inner
                    .engine
                    .claim_and_update(tx, update.as_ref(), now)?)
            })
            .await?;
        Ok(claimed.map(|(task, events)| {
            self.emit_events(events);
            self.inner.outbox_wake.notify_one();
            task
        }))
    }

    /// Sends one agent message (a capability query, a wake-up, …) to a contact (name or UID)
    /// on the reliable path; the first message to a contact opens the conversation. Its
    /// outbox row id.
    pub async fn send_agent_message(
        &self,
        to: &str,
        message: rhizo_core::proto::AgentMessage,
    ) -> Result<i64, TaskError> {
        let name = to.to_string();
        let contact = self
            .with_reader(move |reader, _| {
                find_contact_in(reader, &name)?.ok_or(TaskError::UnknownAgent(name))
            })
            .await?;
        let now = self.now();
        let this = self.clone();
        let (c, m) = (contact.clone(), message.clone());
        let queued = self
            .inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                Ok(this.inner.engine.queue_agent(tx, &c, &m, now)?)
            })
            .await?;
        let id = match queued {
            Some(id) => id,
            None => {
                let key_packages = self.task_key_packages(&contact).await?;
                self.with_tx(move |tx, engine| {
                    engine
                        .send_agent_first(tx, &contact, &message, &key_packages, now)
                        .map_err(TaskError::from)
                })
                .await?
            }
        };
        self.inner.outbox_wake.notify_one();
        Ok(id)
    }

    /// The worker policy the inbound path applies (card, queue bound, who may send tasks).
    pub async fn agent_policy(&self) -> Result<AgentPolicy, TaskError> {
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, TaskError> { Ok(this.inner.engine.agent_policy(&r)?) })
            .await
    }

    /// Changes the worker policy: the cards part sets the card, the config the queue bound
    /// and `accept_tasks_from`.
    pub async fn update_agent_policy(
        &self,
        change: impl FnOnce(&mut AgentPolicy) + Send + 'static,
    ) -> Result<AgentPolicy, TaskError> {
        let this = self.clone();
        self.inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                let engine = &this.inner.engine;
                let mut policy = engine.agent_policy(tx)?;
                change(&mut policy);
                engine.set_agent_policy(tx, &policy)?;
                Ok(policy)
            })
            .await
    }

    /// A stranger's message request: accepted when we are an agent that takes tasks from
    /// anyone (`agent.accept_tasks_from = "anyone"` and a card), so a task from someone who
    /// found us by skill is applied; otherwise it waits for the user.
    pub(super) fn spawn_accept_task_request(&self, uid: Uid) {
        let Ok(permit) = self.inner.resolving.clone().try_acquire_owned() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match this.agent_policy().await {
                Ok(policy) if policy.accepts_strangers() => {}
                Ok(_) => return,
                Err(e) => {
                    debug!(error = %e, "reading the agent policy failed");
                    return;
                }
            }
            let text = uid.to_string();
            let name = format!("agent-{}", &text[..text.len().min(8)]);
            match this.add_contact_by_uid(&text, &name).await {
                Ok(_) => info!("a task request from a new client was accepted"),
                Err(e) => debug!(error = %e, "accepting a task request failed"),
            }
        });
    }

    /// The task timer: at the earliest deadline of a live task, ends the tasks past it
    /// (`failed`, "deadline passed"); also sends agent answers left in the agent outbox, and
    /// offers again the group tasks whose assignee went silent (woken by liveness changes).
    /// Runs until `shutdown` fires.
    pub async fn run_task_timer(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            // Shutdown does not wait for a pass (each change it made is its own commit).
            let pass = tokio::select! {
                pass = self.task_timer_pass() => pass,
                _ = shutdown.changed() => return,
            };
            let next = match pass {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "the task timer's pass failed");
                    Some(self.now() + TASK_TIMER_RETRY_MS)
                }
            };
            let now = self.now();
            let wait = next
                .map(|t| (t - now).clamp(0, TASK_TIMER_IDLE_MS))
                .unwrap_or(TASK_TIMER_IDLE_MS);
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            tokio::select! {
                () = self.inner.agent_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Expires what is due and flushes the agent outbox; the next deadline. A pass with
    /// nothing to do (nothing due, no answer waiting, no more tasks than the bound) only
    /// reads: it is woken on every task, and a write would queue behind (or delay) the task's
    /// own commits.
    async fn task_timer_pass(&self) -> Result<Option<i64>, TaskError> {
        let now = self.now();
        let this = self.clone();
        let (deadline, waiting, over_bound, silent) = self
            .inner
            .db
            .read(move |r| -> Result<_, TaskError> {
                let engine = &this.inner.engine;
                Ok((
                    engine.next_agent_deadline(&r)?,
                    r.agent_outbox_len()?,
                    r.more_tasks_than(rhizo_store::agents::MAX_TASKS)?,
                    engine.group_tasks_to_reassign(&r, now)?,
                ))
            })
            .await?;
        let due = deadline.is_some_and(|d| d <= now);
        if !due && waiting == 0 && !over_bound && !silent {
            return Ok(deadline);
        }
        let this = self.clone();
        // One job: what is due, the answers left by the mailbox path, and the bound on stored
        // tasks (the oldest that are over go first).
        let (events, queued) = self
            .inner
            .db
            .write(move |tx| -> Result<_, TaskError> {
                let engine = &this.inner.engine;
                let mut events = if due {
                    engine.expire_tasks(tx, now)?
                } else {
                    Vec::new()
                };
                // Workers of `all` tasks that went silent: their parts end.
                if silent {
                    events.extend(engine.end_silent_workers(tx, now)?);
                    // `all` tasks whose claim window passed settle.
                    events.extend(engine.settle_claim_windows(tx, now)?);
                }
                // Group tasks whose assignee went silent go to the group again.
                let offered = if silent {
                    engine.reassign_group_tasks(tx, now)?
                } else {
                    0
                };
                let queued = engine.flush_agent_outbox_safely(tx, now) + offered;
                tx.prune_tasks(rhizo_store::agents::MAX_TASKS)?;
                Ok((events, queued))
            })
            .await?;
        if !events.is_empty() || queued > 0 {
            self.emit_events(events);
            self.inner.outbox_wake.notify_one();
        }
        if !due {
            return Ok(deadline);
        }
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, TaskError> {
                Ok(this.inner.engine.next_agent_deadline(&r)?)
            })
            .await
    }
}
