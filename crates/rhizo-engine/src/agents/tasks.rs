//! Tasks on both sides (seed 004's task_delegate, shaped as A2A tasks).
//!
//! ```text
//!  client                                   worker
//!  delegate ── task_delegate ─────────────▶ on_delegate: (client, id) once; queue bound,
//!                                           skill, deadline ─▶ submitted (or rejected + update)
//!  on_update ◀── task_update{seq, state} ── claim_next_task / update_task / expire_tasks
//!   seq ≤ last: duplicate, ignored;         (check_move, seq + 1, persisted, then queued)
//!   check_move refused: nothing changes
//!  cancel_task ── task_cancel ────────────▶ on_cancel: live → canceled; over → its final state
//!  task_input ── task_input ──────────────▶ on_input: appended to the history
//!  expire_tasks: a live task past its deadline ends `failed` ("deadline passed") on each side
//! ```

use rhizo_core::{
    Uid,
    agent::{
        AgentError, Artifact, MAX_ID_BYTES, MAX_REQUIREMENT_BYTES, MAX_REQUIREMENTS, NewTask,
        Priority, Role, Side, Task, TaskId, TaskMessage, TaskState, TaskStatus, check_skill_id,
        wire,
    },
    envelope::ErrorCode,
    proto::{self, AgentMessage, agent_message::Kind},
};
use rhizo_store::{
    Reader, Tx,
    agents::{NewTaskRow, TaskChange, TaskQuery, TaskRow, TaskSide},
    messaging::Contact,
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{debug, warn};

use super::{
    AgentCtx, AgentPolicy, TaskError, agent_content,
    file_parts::{self, TaskScope},
    queue_reply,
};
use crate::{
    Engine, EngineError, Event,
    contacts::find_contact_in,
    conversations::{first_conversation, queue_application_tx},
    inbound::Reject,
};

/// Why a task past its deadline failed.
pub const REASON_DEADLINE: &str = "deadline passed";
/// Why a task the client canceled ended.
pub const REASON_CANCELED: &str = "canceled by client";
/// Largest encoded agent message (a task or an update with its parts): what fits an envelope
/// with room for MLS and the envelope's own fields.
pub const MAX_AGENT_MESSAGE_BYTES: usize = 192 * 1024;
/// Tasks expired per call of [`Engine::expire_tasks`] (the rest on the next).
const EXPIRE_BATCH: usize = 64;

/// What [`Engine::delegate`] did.
#[derive(Debug)]
pub enum Delegated {
    /// Stored and queued to the agent (committed with the caller's transaction).
    Task(Box<Task>),
    /// The agent is a contact with no conversation yet: the driver fetches its KeyPackages
    /// and calls [`Engine::delegate_first`].
    FirstMessage(Contact),
    /// No contact by that name or UID.
    UnknownAgent,
}

/// A task as the API shows it (the model's [`Task`]).
pub type TaskView = Task;

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value)
        .map_err(|_| EngineError::Internal("a task value does not serialize"))
}

pub(super) fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, EngineError> {
    serde_json::from_str(json).map_err(|_| EngineError::Internal("a stored task does not parse"))
}

/// A stored state (written by this engine, so always known; `failed` if it were not).
pub(super) fn state_of(row: &TaskRow) -> TaskState {
    row.state.parse().unwrap_or(TaskState::Failed)
}

fn task_hex(row: &TaskRow) -> String {
    TaskId(row.task_id).to_string()
}

pub(super) fn peer_text(row: &TaskRow) -> String {
    Uid::from_bytes(&row.peer_uid).to_string()
}

/// A fresh random message id (32 hex digits), from the engine's generator.
fn message_id(engine: &Engine) -> String {
    hex::encode(engine.random::<16>())
}

/// The task as the API shows it: the row with its status history, messages and artifacts.
///
/// # Errors
///
/// If the database fails or a stored value does not parse.
pub fn task_view(reader: &Reader<'_>, row: &TaskRow) -> Result<Task, EngineError> {
    let (mode, workers) = super::group::all::workers_view(reader, row)?;
    let scope = TaskScope::of(reader, row.peer_uid, row.group_session)?;
    let shown = |mut m: TaskMessage| -> Result<TaskMessage, EngineError> {
        file_parts::resolve_parts(reader, &scope, &mut m.parts)?;
        Ok(m)
    };
    let mut history: Vec<TaskMessage> = vec![shown(from_json(&row.request)?)?];
    for m in reader.task_messages(row.id)? {
        history.push(shown(from_json(&m)?)?);
    }
    let status_history = reader
        .task_events(row.id)?
        .into_iter()
        .map(|e| {
            Ok(TaskStatus {
                state: e.state.parse().unwrap_or(TaskState::Failed),
                message: e
                    .message
                    .as_deref()
                    .map(|m| shown(from_json(m)?))
                    .transpose()?,
                reason: e.reason,
                timestamp: e.at,
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let status = status_history.last().cloned().unwrap_or(TaskStatus {
        state: state_of(row),
        message: None,
        reason: None,
        timestamp: row.updated_at,
    });
    let mut artifacts = reader
        .task_artifacts(row.id)?
        .iter()
        .map(|a| from_json(a))
        .collect::<Result<Vec<Artifact>, _>>()?;
    for a in &mut artifacts {
        file_parts::resolve_parts(reader, &scope, &mut a.parts)?;
    }
    Ok(Task {
        id: task_hex(row),
        context_id: row.context_id.clone(),
        side: match row.side {
            TaskSide::Client => Side::Client,
            TaskSide::Worker => Side::Worker,
        },
        peer: peer_text(row),
        peer_name: reader.contact_by_uid(&row.peer_uid)?.map(|c| c.name),
        skill: row.skill.clone(),
        priority: Priority::from_wire(row.priority),
        deadline: row.deadline,
        requirements: serde_json::from_str(&row.requirements).unwrap_or_default(),
        status,
        status_history,
        history,
        artifacts,
        created_at: row.created_at,
        updated_at: row.updated_at,
        group: row.group_session.as_ref().map(crate::groups::group_id_hex),
        worker: row.assignee.map(|a| Uid::from_bytes(&a).to_string()),
        mode,
        workers,
    })
}

/// Checks an outgoing agent message's encoded size.
fn check_size(message: &AgentMessage) -> Result<(), TaskError> {
    use prost::Message as _;
    if message.encoded_len() > MAX_AGENT_MESSAGE_BYTES {
        return Err(TaskError::BadTask(AgentError::TooLarge {
            limit: MAX_AGENT_MESSAGE_BYTES,
        }));
    }
    Ok(())
}

/// A status change the worker makes.
pub(super) struct Move<'a> {
    pub(super) state: TaskState,
    pub(super) message: Option<TaskMessage>,
    pub(super) artifacts: &'a [Artifact],
    pub(super) reason: Option<String>,
}

/// The worker moves a task (the caller checked the transition): next update number, stored
/// with its history entry and artifacts; the event and the `task_update` to send.
pub(super) fn worker_move(
    tx: &mut Tx<'_>,
    row: &TaskRow,
    mv: Move<'_>,
    now: i64,
) -> Result<(Event, AgentMessage), TaskError> {
    let scope = TaskScope::of(tx, row.peer_uid, row.group_session)?;
    let (mut message, mut artifacts) = (mv.message, mv.artifacts.to_vec());
    file_parts::fill_all(tx, &scope, message.as_mut(), &mut artifacts)?;
    let mv = Move {
        message,
        artifacts: &artifacts,
        ..mv
    };
    let seq = row.last_seq + 1;
    let update = AgentMessage {
        kind: Some(Kind::TaskUpdate(proto::TaskUpdate {
            task_id: row.task_id.to_vec().into(),
            seq,
            state: mv.state.wire(),
            message: mv.message.as_ref().map(wire::message_to_wire).transpose()?,
            artifacts: mv
                .artifacts
                .iter()
                .map(wire::artifact_to_wire)
                .collect::<Result<_, _>>()?,
            reason: mv.reason.clone().unwrap_or_default(),
            at_ms: crate::ms(now),
        })),
    };
    check_size(&update)?;
    let message_json = mv.message.as_ref().map(to_json).transpose()?;
    tx.change_task(
        row.id,
        &TaskChange {
            state: mv.state.as_str(),
            seq: Some(seq),
            message: message_json.as_deref(),
            reason: mv.reason.as_deref(),
        },
        now,
    )?;
    for a in mv.artifacts {
        tx.put_task_artifact(row.id, &a.artifact_id, &to_json(a)?, now)?;
    }
    let event = Event::TaskUpdated {
        task_id: task_hex(row),
        side: Side::Worker,
        peer: peer_text(row),
        status: TaskStatus {
            state: mv.state,
            message: mv.message,
            reason: mv.reason,
            timestamp: now,
        },
        new_artifacts: mv.artifacts.to_vec(),
    };
    Ok((event, update))
}

/// A refusal of the inbound path from a task error: the database's own failure stays one.
pub(super) fn reject(e: TaskError) -> Reject {
    match e {
        TaskError::Engine(EngineError::Store(e)) => Reject::Store(e),
        e => Reject::internal(e),
    }
}

fn malformed<T>(_: T) -> Reject {
    Reject::Code(ErrorCode::Malformed)
}

/// The checked fields of an inbound `task_delegate`.
pub(super) struct Delegation {
    pub(super) task_id: TaskId,
    request: TaskMessage,
    pub(super) skill: Option<String>,
    context_id: String,
    requirements: Vec<String>,
    pub(super) deadline: Option<i64>,
    priority: Priority,
}

pub(super) fn check_delegation(d: proto::TaskDelegate) -> Result<Delegation, Reject> {
    let task_id = TaskId::from_slice(&d.task_id).map_err(malformed)?;
    let request = wire::message_from_wire(d.message.ok_or(Reject::Code(ErrorCode::Malformed))?)
        .map_err(malformed)?;
    if request.role != Role::User {
        return Err(Reject::Code(ErrorCode::Malformed));
    }
    let skill = (!d.skill.is_empty()).then_some(d.skill);
    if let Some(s) = &skill {
        check_skill_id(s).map_err(malformed)?;
    }
    if d.context_id.len() > MAX_ID_BYTES
        || d.context_id.chars().any(char::is_control)
        || d.requirements.len() > MAX_REQUIREMENTS
        || d.requirements
            .iter()
            .any(|r| r.len() > MAX_REQUIREMENT_BYTES)
    {
        return Err(Reject::Code(ErrorCode::Malformed));
    }
    let context_id = if d.context_id.is_empty() {
        task_id.to_string()
    } else {
        d.context_id
    };
    Ok(Delegation {
        task_id,
        request,
        skill,
        context_id,
        requirements: d.requirements,
        deadline: (d.deadline_ms > 0).then(|| i64::try_from(d.deadline_ms).unwrap_or(i64::MAX)),
        priority: Priority::from_wire(d.priority),
    })
}

/// Worker: a task arrived. Stored once per (client, task id) — a duplicate changes nothing;
/// refused (`rejected`, with the update sent back) for an unknown skill or a full queue;
/// `failed` when its deadline passed already; else queued (`submitted`).
pub(crate) fn on_delegate(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    d: proto::TaskDelegate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let from = TaskSender {
        uid: ctx.contact.uid,
        reply_to: ctx.contact.uid,
        group: None,
    };
    store_delegation(tx, &from, d, now)
}

/// Who an inbound task message comes from and where answers go: the contact itself (1:1), or
/// a member of a group (answers go to the group's address; see `agents/group.rs`).
pub(crate) struct TaskSender {
    /// The sender's UID.
    pub(crate) uid: [u8; 32],
    /// Where answers go: the contact's UID, or the group's address.
    pub(crate) reply_to: [u8; 32],
    /// A group task: the group's session id and us (its assignee).
    pub(crate) group: Option<([u8; 16], [u8; 32])>,
}

/// [`on_delegate`] for any sender: stored once per (client, task id); refused or queued.
pub(crate) fn store_delegation(
    tx: &mut Tx<'_>,
    from: &TaskSender,
    d: proto::TaskDelegate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let d = check_delegation(d)?;
    let uid = from.uid;
    if tx.is_blocked(&uid)? {
        return Err(Reject::Code(ErrorCode::UnknownSender));
    }
    if tx
        .task_with_peer(TaskSide::Worker, &uid, &d.task_id.0)?
        .is_some()
    {
        debug!("a task delivered again changes nothing");
        return Ok(Vec::new());
    }
    let policy = AgentPolicy::read(tx)?;
    let queued = tx.count_tasks(TaskSide::Worker, TaskState::Submitted.as_str())?;
    let refusal = match (&policy.card, &d.skill) {
        _ if d.deadline.is_some_and(|t| t <= now) => {
            Some((TaskState::Failed, REASON_DEADLINE.to_string()))
        }
        (Some(card), Some(skill)) if !card.has_skill(skill) => Some((
            TaskState::Rejected,
            format!("UNKNOWN_SKILL: this agent has no skill '{skill}'"),
        )),
        _ if queued >= u64::from(policy.max_queue()) => Some((
            TaskState::Rejected,
            format!("RATE_LIMITED: queue full ({queued} tasks)"),
        )),
        _ => None,
    };
    let request = to_json(&d.request).map_err(Reject::internal)?;
    let requirements = to_json(&d.requirements).map_err(Reject::internal)?;
    let id = tx
        .insert_task(
            &NewTaskRow {
                task_id: d.task_id.0,
                side: TaskSide::Worker,
                peer_uid: uid,
                context_id: &d.context_id,
                skill: d.skill.as_deref(),
                priority: d.priority.wire(),
                deadline: d.deadline,
                requirements: &requirements,
                state: TaskState::Submitted.as_str(),
                reason: None,
                request: &request,
            },
            now,
        )?
        .ok_or(Reject::internal("a new task was stored already"))?;
    if let Some((session, me)) = &from.group {
        tx.set_task_group(id, session, Some(me), now)?;
    }
    let Some((state, reason)) = refusal else {
        return Ok(vec![Event::TaskReceived {
            task_id: d.task_id.to_string(),
            from: Uid::from_bytes(&uid).to_string(),
            skill: d.skill,
        }]);
    };
    let row = tx.task(id)?.ok_or(Reject::internal("a task vanished"))?;
    let mv = Move {
        state,
        message: None,
        artifacts: &[],
        reason: Some(reason),
    };
    let (event, update) = worker_move(tx, &row, mv, now).map_err(reject)?;
    queue_reply(tx, &from.reply_to, &update, now)?;
    Ok(vec![event])
}

/// Worker: the client cancels. A live task ends `canceled` (the update goes back); a task
/// that is over stays as it is, and its final state is sent again.
pub(crate) fn on_cancel(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    c: &proto::TaskCancel,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    cancel_from(tx, &ctx.contact.uid, &ctx.contact.uid, c, now)
}

/// [`on_cancel`] from client `uid`; answers go to `reply_to`.
pub(crate) fn cancel_from(
    tx: &mut Tx<'_>,
    uid: &[u8; 32],
    reply_to: &[u8; 32],
    c: &proto::TaskCancel,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let task_id = TaskId::from_slice(&c.task_id).map_err(malformed)?;
    let uid = *uid;
    let Some(row) = tx.task_with_peer(TaskSide::Worker, &uid, &task_id.0)? else {
        return Ok(Vec::new());
    };
    let state = state_of(&row);
    if state.is_terminal() {
        if row.last_seq > 0 {
            let reason = tx.task_events(row.id)?.pop().and_then(|e| e.reason);
            let again = AgentMessage {
                kind: Some(Kind::TaskUpdate(proto::TaskUpdate {
                    task_id: row.task_id.to_vec().into(),
                    seq: row.last_seq,
                    state: state.wire(),
                    reason: reason.unwrap_or_default(),
                    at_ms: crate::ms(now),
                    ..proto::TaskUpdate::default()
                })),
            };
            queue_reply(tx, reply_to, &again, now)?;
        }
        return Ok(Vec::new());
    }
    let mv = Move {
        state: TaskState::Canceled,
        message: None,
        artifacts: &[],
        reason: Some(REASON_CANCELED.to_string()),
    };
    let (event, update) = worker_move(tx, &row, mv, now).map_err(reject)?;
    queue_reply(tx, reply_to, &update, now)?;
    Ok(vec![event])
}

/// Worker: more input from the client, appended to the task's messages (the worker moves it
/// back to `working` with its next update). Input for a task that is over is ignored.
pub(crate) fn on_input(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    i: proto::TaskInput,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    input_from(tx, &ctx.contact.uid, i, now)
}

/// [`on_input`] from client `uid`.
pub(crate) fn input_from(
    tx: &mut Tx<'_>,
    uid: &[u8; 32],
    i: proto::TaskInput,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let task_id = TaskId::from_slice(&i.task_id).map_err(malformed)?;
    let message = wire::message_from_wire(i.message.ok_or(Reject::Code(ErrorCode::Malformed))?)
        .map_err(malformed)?;
    let Some(row) = tx.task_with_peer(TaskSide::Worker, uid, &task_id.0)? else {
        return Ok(Vec::new());
    };
    if !row.is_live() {
        debug!("input for a task that is over is ignored");
        return Ok(Vec::new());
    }
    tx.add_task_message(row.id, &to_json(&message).map_err(Reject::internal)?, now)?;
    Ok(vec![Event::TaskReceived {
        task_id: task_id.to_string(),
        from: peer_text(&row),
        skill: row.skill,
    }])
}

/// Stores a client task to `peer_uid` (an agent, or a group's address) and builds its
/// `task_delegate`.
pub(super) fn insert_client_task(
    tx: &mut Tx<'_>,
    engine: &Engine,
    peer_uid: &[u8; 32],
    new: &NewTask,
    task_id: TaskId,
    now: i64,
) -> Result<(TaskRow, AgentMessage), TaskError> {
    let mut request = TaskMessage {
        message_id: match &new.message_id {
            Some(m) => m.clone(),
            None => message_id(engine),
        },
        role: Role::User,
        parts: new.all_parts(),
    };
    let scope = TaskScope::of(tx, *peer_uid, None)?;
    file_parts::fill_parts(tx, &scope, &mut request.parts)?;
    let context_id = new
        .context_id
        .clone()
        .unwrap_or_else(|| task_id.to_string());
    let delegate = AgentMessage {
        kind: Some(Kind::TaskDelegate(proto::TaskDelegate {
            task_id: task_id.0.to_vec().into(),
            context_id: context_id.clone(),
            message: Some(wire::message_to_wire(&request)?),
            skill: new.skill.clone().unwrap_or_default(),
            priority: new.priority.wire(),
            deadline_ms: new.deadline.map_or(0, |d| u64::try_from(d).unwrap_or(0)),
            requirements: new.requirements.clone(),
            mode: new.mode.wire(),
        })),
    };
    check_size(&delegate)?;
    let id = tx
        .insert_task(
            &NewTaskRow {
                task_id: task_id.0,
                side: TaskSide::Client,
                peer_uid: *peer_uid,
                context_id: &context_id,
                skill: new.skill.as_deref(),
                priority: new.priority.wire(),
                deadline: new.deadline,
                requirements: &to_json(&new.requirements)?,
                state: TaskState::Submitted.as_str(),
                reason: None,
                request: &to_json(&request)?,
            },
            now,
        )?
        .ok_or(EngineError::Internal("that task id is taken"))?;
    let row = tx
        .task(id)?
        .ok_or(EngineError::Internal("a task vanished"))?;
    Ok((row, delegate))
}

/// Client: the `task_delegate` of a live task of ours, rebuilt from its row (the same task id,
/// context, request, skill, priority, deadline and requirements), to send again in a new
/// conversation after the agent lost the one it went in (the worker keeps one task per client
/// and task id, so a delegation that did arrive is not run twice). `None` when no live task
/// of ours has that id.
///
/// # Errors
///
/// If the database fails or the stored task does not parse.
pub(crate) fn redelegation(
    reader: &Reader<'_>,
    task_id: &[u8; 16],
) -> Result<Option<AgentMessage>, EngineError> {
    let Some(row) = reader.task_by_id(task_id, TaskSide::Client)? else {
        return Ok(None);
    };
    if !row.is_live() {
        return Ok(None);
    }
    let request: TaskMessage = from_json(&row.request)?;
    let message = wire::message_to_wire(&request)
        .map_err(|_| EngineError::Internal("a stored task request does not encode"))?;
    Ok(Some(AgentMessage {
        kind: Some(Kind::TaskDelegate(proto::TaskDelegate {
            task_id: row.task_id.to_vec().into(),
            context_id: row.context_id.clone(),
            message: Some(message),
            skill: row.skill.clone().unwrap_or_default(),
            priority: row.priority,
            deadline_ms: row.deadline.map_or(0, |d| u64::try_from(d).unwrap_or(0)),
            requirements: from_json(&row.requirements)?,
            // A 1:1 task: no group mode.
            mode: 0,
        })),
    }))
}

impl Engine {
    /// Drops what a failed job staged (its savepoint is rolled back).
    fn settled<T>(&self, out: Result<T, TaskError>) -> Result<T, TaskError> {
        if out.is_err() {
            self.conversations.discard_staged();
        }
        out
    }

    /// Client: delegates `new` (validated here) to an agent that is a contact, as task
    /// `task_id`, inside `tx` (a job of the group commit): the task is stored `submitted` and
    /// its `task_delegate` queued in the open conversation. Without a conversation the driver
    /// takes the first-message path ([`Delegated::FirstMessage`]).
    ///
    /// # Errors
    ///
    /// [`TaskError::BadTask`] for a request that breaks a rule; the engine's failures.
    pub fn delegate(
        &self,
        tx: &mut Tx<'_>,
        new: &NewTask,
        task_id: TaskId,
        now: i64,
    ) -> Result<Delegated, TaskError> {
        new.validate()?;
        let Some(contact) = find_contact_in(tx, new.to.trim())? else {
            // No contact of that name: a group of it, whose agent members take the task.
            if let Some(group) = super::group::group_named(tx, &new.to)? {
                let out = self.delegate_to_group(tx, &group, new, task_id, now);
                return self.settled(out).map(|t| Delegated::Task(Box::new(t)));
            }
            return Ok(Delegated::UnknownAgent);
        };
        if !new.mode.is_any() {
            return Err(TaskError::BadTask(AgentError::Invalid(
                "`mode: all` is for a task sent to a group; this names an agent",
            )));
        }
        // Fail fast while the agent's circuit breaker is open (half-open: this is the trial).
        self.check_agent(&rhizo_core::Uid::from_bytes(&contact.uid), now)
            .map_err(|open| TaskError::AgentUnavailable {
                agent: contact.name.clone(),
                open,
            })?;
        if tx.open_conversation_with(&contact.uid)?.is_none() {
            return Ok(Delegated::FirstMessage(contact));
        }
        let out = (|| {
            let (row, message) = insert_client_task(tx, self, &contact.uid, new, task_id, now)?;
            self.queue_agent(tx, &contact, &message, now)?
                .ok_or(EngineError::Internal("the conversation vanished"))?;
            Ok(Delegated::Task(Box::new(task_view(tx, &row)?)))
        })();
        self.settled(out)
    }

    /// Client: the first task to a contact with no conversation yet: a new conversation with
    /// the devices whose KeyPackages the driver fetched (its Welcome first), then the task, as
    /// in [`Engine::send_first`]; the `task_delegate` carries our profile, if we set one. Inside
    /// `tx` (a job of the group commit).
    ///
    /// # Errors
    ///
    /// As [`Engine::delegate`]; MLS failures (a KeyPackage of a device not listed for the
    /// contact).
    pub fn delegate_first(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        new: &NewTask,
        task_id: TaskId,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<Task, TaskError> {
        new.validate()?;
        self.in_job(tx, |tx| -> Result<Task, TaskError> {
            let (session, profile) = first_conversation(tx, self, contact, key_packages, now)?;
            let (row, message) = insert_client_task(tx, self, &contact.uid, new, task_id, now)?;
            let content = agent_content(&message, now, profile);
            queue_application_tx(
                tx,
                self,
                contact,
                &session,
                &content,
                "agent",
                Some(&super::row_body(&message)),
                now,
            )?;
            Ok(task_view(tx, &row)?)
        })
    }

    /// A task by id: ours (client side) first, else one we execute.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn task(&self, reader: &Reader<'_>, id: TaskId) -> Result<Option<Task>, EngineError> {
        let row = match reader.task_by_id(&id.0, TaskSide::Client)? {
            Some(row) => Some(row),
            None => reader.task_by_id(&id.0, TaskSide::Worker)?,
        };
        row.map(|r| task_view(reader, &r)).transpose()
    }

    /// Tasks matching `query`, newest first.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn tasks(&self, reader: &Reader<'_>, query: &TaskQuery) -> Result<Vec<Task>, EngineError> {
        reader
            .tasks(query)?
            .iter()
            .map(|r| task_view(reader, r))
            .collect()
    }

    /// Worker: tasks in `states`, in queue order (priority, then arrival).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn worker_queue(
        &self,
        reader: &Reader<'_>,
        states: &[TaskState],
        limit: usize,
    ) -> Result<Vec<Task>, EngineError> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        reader
            .task_queue(&states, limit)?
            .iter()
            .map(|r| task_view(reader, r))
            .collect()
    }

    /// The earliest deadline of a live task on either side, or the end of an `all`-mode
    /// task's claim window while every worker of it ended, whichever comes first (the driver's
    /// task timer waits for it, then calls [`Engine::expire_tasks`] and, for the window,
    /// [`Engine::settle_claim_windows`]).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn next_agent_deadline(&self, reader: &Reader<'_>) -> Result<Option<i64>, EngineError> {
        let deadline = reader.next_task_deadline()?;
        let window = self.next_claim_window_end(reader)?;
        Ok(deadline.into_iter().chain(window).min())
    }

    /// Sends a worker's `task_update` to the task's client, if it is still a contact. A bare
    /// update of the same task still waiting in the outbox (a claim's `working`) is dropped:
    /// this one carries the newer state, so the client gets one envelope instead of two.
    fn send_update(
        &self,
        tx: &mut Tx<'_>,
        row: &TaskRow,
        update: &AgentMessage,
        now: i64,
    ) -> Result<(), TaskError> {
        if let Some(session) = row.group_session {
            self.queue_group_agent(tx, &session, update, now)?;
            return Ok(());
        }
        match tx.contact_by_uid(&row.peer_uid)? {
            Some(contact) => match self.queue_agent(tx, &contact, update, now)? {
                Some(id) => {
                    let bare = super::summary_of("task_update", Some(&row.task_id), true);
                    let dropped = tx.drop_queued_agent_rows(&contact.uid, &bare, id)?;
                    if dropped > 0 {
                        debug!(
                            dropped,
                            "a newer update of the task supersedes a queued one"
                        );
                    }
                }
                None => warn!("a task update found no conversation with its client"),
            },
            None => warn!("a task's client is no longer a contact: its update stays here"),
        }
        Ok(())
    }
}

mod ops;
mod updates;

pub(crate) use ops::on_messages_failed;
pub(crate) use updates::{CheckedUpdate, apply_update, check_update, on_update};
