//! Agents in groups (issue 14; docs/agents.md "Agents in groups"): tasks addressed to a group,
//! run by exactly one agent member, and heartbeats among members.
//!
//! ```text
//!  client: delegate_to_group ─▶ task_delegate in the group's MLS (one envelope, every member)
//!  member with a card (and the skill) and room ─▶ task_claim to the group (stores nothing)
//!  client: on_claim ─ the first claim it applies finds the task unassigned ─▶ assignee
//!     ─▶ task_assign{worker, task} to the group (a claim from the assignee again: re-sent)
//!  the named member: on_assign ─▶ the task stored (submitted, group, assignee = us)
//!     ─▶ its agent program claims it as any task; updates go to the group
//!  client: task_update from the assignee only (others are ignored)
//!  `all` mode (group/all.rs): every claim is assigned (to its member); each worker's status
//!     and results kept apart; the task's own status is the overall one
//!  heartbeats: seal_group_heartbeats ─▶ one ephemeral envelope per group, sent once to each
//!     member device ─▶ members' liveness maps (agent_liveness events, group_agents)
//! ```

use prost::Message as _;
use rhizo_core::{
    DevicePublicKey, Uid,
    agent::{Liveness, NewTask, TaskId, TaskMessage, TaskMode, TaskState, wire},
    envelope::{ErrorCode, MessageType},
    proto::{self, AgentMessage, ChatContent, Heartbeat, agent_message::Kind},
};
use rhizo_store::{
    Reader, StoreError, Tx,
    agents::{TaskRow, TaskSide},
    groups::{GroupRow, GroupStatus},
};
use tracing::debug;

use super::{
    AgentPolicy, TaskError,
    health::AgentHealth,
    heartbeat::Load,
    queue_reply,
    tasks::{self, TaskSender},
};

pub mod all;
pub mod card;
use crate::{
    Engine, EngineError, Event, Me, conversations::seal_to, groups::active_group, inbound::Reject,
    outbox::Target,
};

/// Live tasks a client has in one group at once (each one fans out to every member).
pub const MAX_LIVE_GROUP_TASKS: usize = 64;
/// Groups sent a heartbeat per round at most (the most recently active first).
pub const MAX_GROUP_HEARTBEATS: usize = 32;
/// Shortest interval between two heartbeats to one group, seconds: each is an MLS message to
/// every member device.
pub const MIN_GROUP_HEARTBEAT_SECS: u64 = 10;

/// Group tasks whose assignee went silent, offered again per pass at most.
const REASSIGN_BATCH: usize = 64;
/// Why a member's copy of a group task ended when the client gave it to another member.
pub const REASON_REASSIGNED: &str = "REASSIGNED: the client gave the task to another member";

/// Who sent an agent message in a group, and who we are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupAgentCtx<'a> {
    /// Us.
    pub(crate) me: &'a Me,
    /// Remote agents' liveness and circuit breakers.
    pub(crate) health: &'a AgentHealth,
    /// The group.
    pub(crate) group: &'a GroupRow,
    /// The sending member's UID (from its MLS leaf).
    pub(crate) sender: [u8; 32],
    /// The sending device (it signed the envelope and holds a leaf of `sender`).
    pub(crate) sender_device: [u8; 32],
}

fn malformed<T>(_: T) -> Reject {
    Reject::Code(ErrorCode::Malformed)
}

/// Applies one agent message a member sent to the group, inside the envelope's transaction.
pub(crate) fn apply_group_agent(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    message: AgentMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let Some(kind) = message.kind else {
        return Err(Reject::Code(ErrorCode::Malformed));
    };
    let address = ctx.group.address;
    match kind {
        Kind::TaskDelegate(d) => on_group_task(tx, ctx, d, now),
        Kind::TaskClaim(c) => on_claim(tx, ctx, &c, now),
        Kind::TaskAssign(a) => on_assign(tx, ctx, a, now),
        Kind::TaskUpdate(u) => on_group_update(tx, ctx, u, now),
        Kind::TaskCancel(c) => tasks::cancel_from(tx, &ctx.sender, &address, &c, now),
        Kind::TaskInput(i) => tasks::input_from(tx, &ctx.sender, i, now),
        Kind::Heartbeat(h) => Ok(ctx
            .health
            .with_liveness(|m| m.on_heartbeat(Uid::from_bytes(&ctx.sender), &h, now))),
        Kind::CapabilityQuery(_) | Kind::CapabilityAnswer(_) | Kind::WakeUp(_) => Ok(Vec::new()),
    }
}

/// A member: a task sent to the group. Claimed (a `task_claim` to the group) when we are an
/// agent that can take it: a card, the skill if one is asked, room in the queue, its deadline
/// ahead, the client not blocked, and not ours already. Nothing is stored until assigned.
fn on_group_task(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    d: proto::TaskDelegate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let task_id = d.task_id.clone();
    let d = tasks::check_delegation(d)?;
    let policy = AgentPolicy::read(tx)?;
    let Some(card) = &policy.card else {
        return Ok(Vec::new());
    };
    let queued = tx.count_tasks(TaskSide::Worker, TaskState::Submitted.as_str())?;
    let can_take = d.skill.as_ref().is_none_or(|s| card.has_skill(s))
        && d.deadline.is_none_or(|t| t > now)
        && queued < u64::from(policy.max_queue())
        && !tx.is_blocked(&ctx.sender)?
        && tx
            .task_with_peer(TaskSide::Worker, &ctx.sender, &d.task_id.0)?
            .is_none();
    if can_take {
        let claim = AgentMessage {
            kind: Some(Kind::TaskClaim(proto::TaskClaim { task_id })),
        };
        queue_reply(tx, &ctx.group.address, &claim, now)?;
    }
    Ok(Vec::new())
}

/// The client: a member claims a group task. The first claim applied while the task is live
/// and unassigned wins; the assignment (with the task) goes to the group. A claim from the
/// assignee again sends the assignment again; any other later claim is ignored.
fn on_claim(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    c: &proto::TaskClaim,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let task_id = TaskId::from_slice(&c.task_id).map_err(malformed)?;
    let Some(row) = tx.task_with_peer(TaskSide::Client, &ctx.group.address, &task_id.0)? else {
        return Ok(Vec::new());
    };
    if !row.is_live() {
        return Ok(Vec::new());
    }
    if tx.is_all_mode_task(row.id)? {
        return all::on_claim(tx, ctx, &row, now);
    }
    match row.assignee {
        Some(assignee) if assignee != ctx.sender => {
            debug!("a claim for a task another member runs is ignored");
            return Ok(Vec::new());
        }
        Some(_) => {}
        None => tx.set_task_group(row.id, &ctx.group.session_id, Some(&ctx.sender), now)?,
    }
    let assigned = row.assignee.is_none().then(|| Event::TaskAssigned {
        task_id: TaskId(row.task_id).to_string(),
        group: crate::groups::group_id_hex(&ctx.group.session_id),
        worker: Uid::from_bytes(&ctx.sender).to_string(),
    });
    let assign = AgentMessage {
        kind: Some(Kind::TaskAssign(proto::TaskAssign {
            task_id: c.task_id.clone(),
            worker: ctx.sender.to_vec().into(),
            task: Some(delegate_of(&row, TaskMode::Any).map_err(Reject::internal)?),
            worker_device: ctx.sender_device.to_vec().into(),
        })),
    };
    queue_reply(tx, &ctx.group.address, &assign, now)?;
    Ok(assigned.into_iter().collect())
}

/// A member: the client names who runs a group task (a member's device). Us: the task is stored (as any task
/// delivered to us, with its queue and skill checks) and marked as the group's; answers go to
/// the group. Another member: nothing to do (we stored nothing).
fn on_assign(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    a: proto::TaskAssign,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    TaskId::from_slice(&a.task_id).map_err(malformed)?;
    let worker: [u8; 32] = a.worker.as_ref().try_into().map_err(malformed)?;
    let device: [u8; 32] = a.worker_device.as_ref().try_into().map_err(malformed)?;
    let task = a.task.ok_or(Reject::Code(ErrorCode::Malformed))?;
    if task.task_id != a.task_id {
        return Err(Reject::Code(ErrorCode::Malformed));
    }
    let me = *ctx.me.uid.as_bytes();
    if worker != me || device != *ctx.me.device.public().as_bytes() {
        if TaskMode::from_wire(task.mode) == TaskMode::All {
            // Another member runs its own copy too: ours (if we claimed) is unchanged.
            return Ok(Vec::new());
        }
        return stop_reassigned(tx, ctx, &a.task_id, now);
    }
    let from = TaskSender {
        uid: ctx.sender,
        reply_to: ctx.group.address,
        group: Some((ctx.group.session_id, me)),
    };
    tasks::store_delegation(tx, &from, task, now)
}

/// A member: the client gave a group task to another member or device (we had gone silent): our
/// copy ends `canceled` here (the agent program sees it and stops); nothing is sent, the
/// client applies updates from the new assignee only.
fn stop_reassigned(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    task_id: &[u8],
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let task_id = TaskId::from_slice(task_id).map_err(malformed)?;
    let Some(row) = tx.task_with_peer(TaskSide::Worker, &ctx.sender, &task_id.0)? else {
        return Ok(Vec::new());
    };
    if row.group_session != Some(ctx.group.session_id) || !row.is_live() {
        return Ok(Vec::new());
    }
    let mv = tasks::Move {
        state: TaskState::Canceled,
        message: None,
        artifacts: &[],
        reason: Some(REASON_REASSIGNED.to_string()),
    };
    let (event, _not_sent) = tasks::worker_move(tx, &row, mv, now).map_err(tasks::reject)?;
    Ok(vec![event])
}

/// The client: a worker's update of a group task, applied only from its assignee.
fn on_group_update(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    u: proto::TaskUpdate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let u = tasks::check_update(u)?;
    let Some(row) = tx.task_with_peer(TaskSide::Client, &ctx.group.address, &u.task_id.0)? else {
        return Ok(Vec::new());
    };
    if tx.is_all_mode_task(row.id)? {
        return all::on_update(tx, ctx, &row, u, now);
    }
    if row.assignee != Some(ctx.sender) {
        debug!("an update from a member that does not run the task is ignored");
        return Ok(Vec::new());
    }
    tasks::apply_update(tx, ctx.health, &ctx.sender, &row, u, now)
}

/// The `task_delegate` of a stored client task in `mode` (what `task_assign` carries).
fn delegate_of(row: &TaskRow, mode: TaskMode) -> Result<proto::TaskDelegate, TaskError> {
    let request: TaskMessage = tasks::from_json(&row.request)?;
    let requirements: Vec<String> = serde_json::from_str(&row.requirements).unwrap_or_default();
    Ok(proto::TaskDelegate {
        task_id: row.task_id.to_vec().into(),
        context_id: row.context_id.clone(),
        message: Some(wire::message_to_wire(&request)?),
        skill: row.skill.clone().unwrap_or_default(),
        priority: row.priority,
        deadline_ms: row.deadline.map_or(0, |d| u64::try_from(d).unwrap_or(0)),
        requirements,
        mode: mode.wire(),
    })
}

/// The group `to` names: its id (hex of its session id), its address (as a UID: what an A2A
/// client's task shows as the peer) or the name of exactly one group we are in.
pub(crate) fn group_named(reader: &Reader<'_>, to: &str) -> Result<Option<GroupRow>, StoreError> {
    let wanted = to.trim();
    let active: Vec<GroupRow> = reader
        .groups()?
        .into_iter()
        .filter(|g| g.status == GroupStatus::Active)
        .collect();
    let lower = wanted.to_ascii_lowercase();
    if let Some(g) = active.iter().find(|g| {
        crate::groups::group_id_hex(&g.session_id) == lower
            || Uid::from_bytes(&g.address).to_string() == wanted
    }) {
        return Ok(Some(g.clone()));
    }
    let mut named = active.into_iter().filter(|g| g.name == wanted);
    Ok(match (named.next(), named.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    })
}

/// The plaintext content of a group agent row to encrypt again after a rollback (its body
/// holds the message, hex); `None` when it does not decode.
pub(crate) fn resend_content(body: Option<&str>, sent_at: i64) -> Option<ChatContent> {
    let message = AgentMessage::decode(hex::decode(body?).ok()?.as_slice()).ok()?;
    Some(ChatContent {
        sent_at_ms: crate::ms(sent_at),
        agent: Some(message),
        ..ChatContent::default()
    })
}

/// A heartbeat sealed for one group by [`Engine::seal_group_heartbeats`]: send `frame` once
/// to each target; the answers do not matter.
#[derive(Debug, Clone)]
pub struct GroupEphemeral {
    /// The group's session id.
    pub session_id: [u8; 16],
    /// The envelope (`/rhizo/msg/1` request bytes).
    pub frame: Vec<u8>,
    /// Every other member device.
    pub targets: Vec<Target>,
}

/// One agent member of a group, as [`Engine::group_agents`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct GroupAgent {
    /// The member's UID.
    pub uid: [u8; 32],
    /// Its liveness, from its heartbeats.
    pub liveness: Liveness,
    /// When its last heartbeat arrived (unix ms).
    pub last_heartbeat: Option<i64>,
    /// The load it said.
    pub load: Option<Load>,
}

impl Engine {
    /// Client: delegates `new` to the group `group` as task `task_id` (any-of: one agent
    /// member runs it, see the module doc): stored `submitted` (peer: the group's address) and
    /// its `task_delegate` queued in the group, inside `tx`.
    ///
    /// # Errors
    ///
    /// `LimitReached` beyond [`MAX_LIVE_GROUP_TASKS`]; the engine's failures.
    pub(crate) fn delegate_to_group(
        &self,
        tx: &mut Tx<'_>,
        group: &GroupRow,
        new: &NewTask,
        task_id: TaskId,
        now: i64,
    ) -> Result<rhizo_core::agent::Task, TaskError> {
        let live = tx.count_live_group_tasks(&group.session_id)?;
        if live >= MAX_LIVE_GROUP_TASKS as u64 {
            return Err(StoreError::LimitReached {
                what: "live tasks in this group",
                max: MAX_LIVE_GROUP_TASKS,
            }
            .into());
        }
        let (row, message) =
            tasks::insert_client_task(tx, self, &group.address, new, task_id, now)?;
        tx.set_task_group(row.id, &group.session_id, None, now)?;
        if new.mode == TaskMode::All {
            tx.mark_all_mode_task(row.id)?;
        }
        self.queue_group_agent(tx, &group.session_id, &message, now)?;
        let row = tx
            .task(row.id)?
            .ok_or(EngineError::Internal("a task vanished"))?;
        Ok(tasks::task_view(tx, &row)?)
    }

    /// Client: whether a live group task's assignee (or a worker of an `all`-mode task) went
    /// silent (its liveness, from its heartbeats to the group, is `unreachable` at `now`), or
    /// an `all`-mode task's claim window passed: [`Engine::reassign_group_tasks`],
    /// [`Engine::end_silent_workers`] or [`Engine::settle_claim_windows`] has work. Only reads.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn group_tasks_to_reassign(
        &self,
        reader: &Reader<'_>,
        now: i64,
    ) -> Result<bool, EngineError> {
        Ok(reader
            .assigned_group_tasks(REASSIGN_BATCH)?
            .iter()
            .any(|row| self.assignee_silent(row, now))
            || self.silent_workers(reader, now)?
            || self.claim_windows_passed(reader, now)?)
    }

    fn assignee_silent(&self, row: &TaskRow, now: i64) -> bool {
        row.assignee
            .is_some_and(|a| self.agent_health.is_unreachable(&Uid::from_bytes(&a), now))
    }

    /// Client: offers again each live group task whose assignee went silent (see
    /// [`Engine::group_tasks_to_reassign`]): the assignment is cleared and the task's
    /// `task_delegate` goes to the group again, so the first claim wins as before. The silent
    /// member holds the task and does not claim it; if it comes back, the new assignment
    /// stops its copy, and its updates are ignored. An assignee never heard from is not
    /// replaced (a silent worker of an `all`-mode task is not replaced either:
    /// [`Engine::end_silent_workers`] ends its part). How many were offered again.
    ///
    /// # Errors
    ///
    /// The engine's failures.
    pub fn reassign_group_tasks(&self, tx: &mut Tx<'_>, now: i64) -> Result<usize, TaskError> {
        let mut offered = 0;
        for row in tx.assigned_group_tasks(REASSIGN_BATCH)? {
            let Some(session) = row
                .group_session
                .filter(|_| self.assignee_silent(&row, now))
            else {
                continue;
            };
            let delegate = AgentMessage {
                kind: Some(Kind::TaskDelegate(delegate_of(&row, TaskMode::Any)?)),
            };
            let again = tx.in_savepoint(|tx| {
                tx.set_task_group(row.id, &session, None, now)?;
                self.queue_group_agent(tx, &session, &delegate, now)
            })?;
            match again {
                Ok(_) => offered += 1,
                Err(e) => debug!(error = %e, "a silent assignee's task was not offered again"),
            }
        }
        Ok(offered)
    }

    /// Queues `message` in the group `session_id` on the reliable path (a group outbox row of
    /// kind `"agent"`, never shown as chat; its body is the message, hex, to encrypt it again
    /// after a rollback). Its row id.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], MLS or the database.
    pub(crate) fn queue_group_agent(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        message: &AgentMessage,
        now: i64,
    ) -> Result<i64, EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let content = ChatContent {
                sent_at_ms: crate::ms(now),
                agent: Some(message.clone()),
                ..ChatContent::default()
            };
            let body = hex::encode(message.encode_to_vec());
            let (id, _) =
                self.queue_group_content(tx, &group, content, "agent", Some(&body), now)?;
            Ok(id)
        })
    }

    /// Seals our heartbeat (`load`, the interval to the next) for each group we are in, at
    /// most [`MAX_GROUP_HEARTBEATS`] (most recently active first), inside `tx`: ephemeral as
    /// [`Engine::seal_heartbeat`] (no message row, outbox entry or mailbox copy), after a
    /// self-update when the group's rekey rule says so. Send each frame only after `tx`
    /// committed.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails.
    pub fn seal_group_heartbeats(
        &self,
        tx: &mut Tx<'_>,
        load: Load,
        interval_s: u32,
        now: i64,
    ) -> Result<Vec<GroupEphemeral>, EngineError> {
        let mut groups: Vec<GroupRow> = tx
            .groups()?
            .into_iter()
            .filter(|g| g.status == GroupStatus::Active)
            .collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.updated_at));
        groups.truncate(MAX_GROUP_HEARTBEATS);
        let hb = self.next_heartbeat(load, interval_s, now);
        let mut out = Vec::new();
        for group in groups {
            let sealed =
                self.group_job(tx, |tx| self.seal_group_heartbeat(tx, &group, &hb, now))?;
            out.extend(sealed);
        }
        Ok(out)
    }

    fn seal_group_heartbeat(
        &self,
        tx: &mut Tx<'_>,
        group: &GroupRow,
        hb: &Heartbeat,
        now: i64,
    ) -> Result<Option<GroupEphemeral>, EngineError> {
        let mut conversation = self.load_group(tx, group)?;
        let devices =
            crate::groups::other_devices(&crate::groups::roster(&conversation)?, &self.me);
        if devices.is_empty() {
            return Ok(None);
        }
        self.rekey_group_if_due(tx, group, &mut conversation, &devices, now)?;
        let content = ChatContent {
            sent_at_ms: crate::ms(now),
            agent: Some(AgentMessage {
                kind: Some(Kind::Heartbeat(*hb)),
            }),
            ..ChatContent::default()
        };
        let mls = tx.mls()?;
        let ciphertext = conversation.encrypt(
            &mls,
            &self.mls_device,
            &content.encode_to_vec(),
            crate::secs(now),
        )?;
        let seq = tx.take_next_seq(&group.session_id)?;
        let frame = seal_to(
            &self.me,
            &self.rng,
            Uid::from_bytes(&group.address),
            &group.session_id,
            seq,
            MessageType::Application,
            ciphertext,
            now,
        )?;
        self.conversations.stage(conversation);
        let mut targets = Vec::new();
        for (device, member) in &devices {
            let Ok(key) = DevicePublicKey::from_bytes(device) else {
                continue;
            };
            targets.extend(crate::groups::member_target(tx, key, member)?);
        }
        Ok(Some(GroupEphemeral {
            session_id: group.session_id,
            frame,
            targets,
        }))
    }

    /// The agent members of group `session_id` we heard heartbeats from (not us), with their
    /// liveness at `now`, last heartbeat and load.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`]; the database.
    pub fn group_agents(
        &self,
        reader: &Reader<'_>,
        session_id: &[u8; 16],
        now: i64,
    ) -> Result<Vec<GroupAgent>, EngineError> {
        reader
            .group_by_session(session_id)?
            .ok_or(EngineError::UnknownGroup)?;
        let me = *self.me.uid.as_bytes();
        let members = reader.group_members(session_id)?;
        Ok(self.agent_health.with_liveness(|map| {
            members
                .iter()
                .filter(|m| m.uid != me)
                .filter_map(|m| {
                    let (liveness, last_heartbeat, load) = map.of(&Uid::from_bytes(&m.uid), now);
                    (liveness != Liveness::Unknown).then_some(GroupAgent {
                        uid: m.uid,
                        liveness,
                        last_heartbeat,
                        load,
                    })
                })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests;
