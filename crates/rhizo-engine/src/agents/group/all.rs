//! `all`-mode group tasks (docs/agents.md "Agents in groups"): every agent member that can
//! take the task runs it, and the client keeps each worker's status and results apart.
//!
//! ```text
//!  client: delegate_to_group(mode all) ─▶ task_delegate{mode: 1} to the group
//!  each member that can take it ─▶ task_claim (as for any-of)
//!  client: on_claim ─ a new member (≤ MAX_TASK_WORKERS) ─▶ a worker row (submitted)
//!     ─▶ task_assign{that member, mode 1}: it runs its copy; the others ignore the assignment
//!  client: on_update from a worker ─▶ its own row (state, message, artifacts) ─▶ settle:
//!     the task's overall state — submitted until a worker starts; working while a worker
//!     runs; once every worker ended: completed (all did), completed with a PARTIAL reason
//!     (some did), canceled (all canceled) or failed (none completed) — unless the task
//!     waits for claims (below): then it stays working
//!  driver pass: a worker whose heartbeats stopped (unreachable) ends failed (UNREACHABLE);
//!     a task whose claim window passed with every worker ended settles
//! ```
//!
//! The claim window: claims reach the client in any order, and a member's claim can arrive
//! after another worker finished. So while not every other member of the group has claimed
//! (and the task has fewer than `MAX_TASK_WORKERS` workers), a task whose workers all ended
//! stays `working` until [`CLAIM_WINDOW_MS`] after it was sent; a claim inside the window is
//! assigned as usual. Once every other member claimed, the task settles as soon as its
//! workers end. A claim applied after the task ended is not assigned.

use rhizo_core::{
    Uid,
    agent::{
        Artifact, MAX_REASON_BYTES, Side, TaskId, TaskMode, TaskState, TaskStatus, TaskWorker,
    },
    proto::{self, AgentMessage, agent_message::Kind},
};
use rhizo_store::{
    Reader, StoreError, Tx,
    agents::{TaskChange, TaskRow, TaskSide, TaskWorkerRow, WorkerChange},
};
use tracing::debug;

use super::{GroupAgentCtx, delegate_of, queue_reply};
use crate::{
    Engine, EngineError, Event,
    agents::{
        TaskError,
        tasks::{CheckedUpdate, from_json, peer_text, state_of, to_json},
    },
    inbound::Reject,
};

/// Why a worker's part ended when its heartbeats stopped while it ran the task.
pub const REASON_UNREACHABLE: &str =
    "UNREACHABLE: the member's heartbeats stopped while it ran the task";
/// Workers checked for silence per pass at most.
const SILENT_BATCH: usize = 256;
/// Workers named one by one in an overall reason (the rest are counted).
const NAMED_IN_REASON: usize = 8;
/// How long after an `all`-mode task was sent it waits for claims (ms): while some other
/// member has not claimed, the task does not end before this (see the module doc).
pub const CLAIM_WINDOW_MS: i64 = 30_000;
/// Tasks whose claim window passed settled per pass at most.
const SETTLE_BATCH: usize = 64;

/// The client: a member claims an `all`-mode task. A new one (while the task has fewer than
/// `MAX_TASK_WORKERS`) becomes a worker, and the assignment naming it goes to the group; a
/// worker claiming again gets its assignment again; another device of a worker is ignored.
pub(super) fn on_claim(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    row: &TaskRow,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let added = match tx.task_worker(row.id, &ctx.sender)? {
        Some(w) if w.device != ctx.sender_device => {
            debug!("a claim from another device of a worker is ignored");
            return Ok(Vec::new());
        }
        Some(_) => false,
        None => {
            if !tx.add_task_worker(row.id, &ctx.sender, &ctx.sender_device, now)? {
                debug!("an all-mode task has all the workers it keeps: a claim is ignored");
                return Ok(Vec::new());
            }
            true
        }
    };
    let assign = AgentMessage {
        kind: Some(Kind::TaskAssign(proto::TaskAssign {
            task_id: row.task_id.to_vec().into(),
            worker: ctx.sender.to_vec().into(),
            task: Some(delegate_of(row, TaskMode::All).map_err(Reject::internal)?),
            worker_device: ctx.sender_device.to_vec().into(),
        })),
    };
    queue_reply(tx, &ctx.group.address, &assign, now)?;
    let assigned = added.then(|| Event::TaskAssigned {
        task_id: TaskId(row.task_id).to_string(),
        group: crate::groups::group_id_hex(&ctx.group.session_id),
        worker: Uid::from_bytes(&ctx.sender).to_string(),
    });
    Ok(assigned.into_iter().collect())
}

/// The client: a worker's update of an `all`-mode task, applied to its own part once and in
/// order (as a one-worker task's update is), then the task's overall state follows. An update
/// from a member that is not a worker is ignored.
pub(super) fn on_update(
    tx: &mut Tx<'_>,
    ctx: &GroupAgentCtx<'_>,
    row: &TaskRow,
    u: CheckedUpdate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let Some(worker) = tx.task_worker(row.id, &ctx.sender)? else {
        debug!("an update from a member that does not run the task is ignored");
        return Ok(Vec::new());
    };
    if u.seq <= worker.last_seq {
        return Ok(Vec::new());
    }
    let from = worker.state.parse().unwrap_or(TaskState::Failed);
    if let Err(e) = TaskState::check_move(from, u.state) {
        debug!(error = %e, "a worker's update is refused");
        return Ok(Vec::new());
    }
    let mut artifacts: Vec<Artifact> = from_json(&worker.artifacts).unwrap_or_default();
    for a in &u.artifacts {
        artifacts.retain(|old| old.artifact_id != a.artifact_id);
        artifacts.push(a.clone());
    }
    let excess = artifacts
        .len()
        .saturating_sub(rhizo_store::agents::MAX_TASK_ARTIFACTS);
    artifacts.drain(..excess);
    let message = u
        .message
        .as_ref()
        .map(to_json)
        .transpose()
        .map_err(Reject::internal)?;
    let reason = (!u.reason.is_empty()).then_some(u.reason.as_str());
    let change = WorkerChange {
        state: u.state.as_str(),
        seq: Some(u.seq),
        message: message.as_deref(),
        reason,
        artifacts: Some(&to_json(&artifacts).map_err(Reject::internal)?),
    };
    tx.change_task_worker(row.id, &ctx.sender, &change, now)?;
    let agent = Uid::from_bytes(&ctx.sender);
    match u.state {
        TaskState::Completed => ctx.health.with_breakers(|b| b.on_success(&agent)),
        TaskState::Failed | TaskState::Rejected => {
            ctx.health.with_breakers(|b| b.on_failure(&agent, now));
        }
        _ => {}
    }
    let progress = Progress {
        message: u.message,
        artifacts: u.artifacts,
    };
    let me = ctx.me.uid.as_bytes();
    Ok(settle(tx, me, row, progress, now)?.into_iter().collect())
}

/// What a worker's change brought, for the task's event.
#[derive(Default)]
struct Progress {
    message: Option<rhizo_core::agent::TaskMessage>,
    artifacts: Vec<Artifact>,
}

/// The task's overall state follows its workers' (see the module doc; `me` is the client):
/// stored when it changed, while the task is live. The event tells the client's program what
/// changed (the overall status, the worker's message and new artifacts).
fn settle(
    tx: &mut Tx<'_>,
    me: &[u8; 32],
    row: &TaskRow,
    progress: Progress,
    now: i64,
) -> Result<Option<Event>, StoreError> {
    if !row.is_live() {
        return Ok(None);
    }
    let current = state_of(row);
    let workers = tx.task_workers(row.id)?;
    let (mut state, mut reason) = overall(&workers).unwrap_or((current, None));
    if state.is_terminal() && waits_for_claims(tx, me, row, &workers, now)? {
        (state, reason) = (TaskState::Working, None);
    }
    if state != current {
        tx.change_task(
            row.id,
            &TaskChange {
                state: state.as_str(),
                seq: None,
                message: None,
                reason: reason.as_deref(),
            },
            now,
        )?;
    }
    Ok(Some(Event::TaskUpdated {
        task_id: TaskId(row.task_id).to_string(),
        side: Side::Client,
        peer: peer_text(row),
        status: TaskStatus {
            state,
            message: progress.message,
            reason,
            timestamp: now,
        },
        new_artifacts: progress.artifacts,
    }))
}

/// Whether `row`, run by `workers`, still waits for claims: its claim window is open, it has
/// room for more workers, and some member of its group other than `me` has not claimed.
fn waits_for_claims(
    tx: &Tx<'_>,
    me: &[u8; 32],
    row: &TaskRow,
    workers: &[TaskWorkerRow],
    now: i64,
) -> Result<bool, StoreError> {
    let Some(session) = row.group_session else {
        return Ok(false);
    };
    if now >= row.created_at.saturating_add(CLAIM_WINDOW_MS)
        || workers.len() >= rhizo_store::agents::MAX_TASK_WORKERS
    {
        return Ok(false);
    }
    Ok(tx
        .group_members(&session)?
        .iter()
        .any(|m| m.uid != *me && !workers.iter().any(|w| w.worker == m.uid)))
}

/// The overall state of a task run by `workers` (and why, when not every worker completed);
/// `None` before any worker.
fn overall(workers: &[TaskWorkerRow]) -> Option<(TaskState, Option<String>)> {
    if workers.is_empty() {
        return None;
    }
    let states: Vec<TaskState> = workers
        .iter()
        .map(|w| w.state.parse().unwrap_or(TaskState::Failed))
        .collect();
    if states.iter().any(|s| !s.is_terminal()) {
        let started = states.iter().any(|s| *s != TaskState::Submitted);
        let state = if started {
            TaskState::Working
        } else {
            TaskState::Submitted
        };
        return Some((state, None));
    }
    let n = states.len();
    let completed = states
        .iter()
        .filter(|s| **s == TaskState::Completed)
        .count();
    if completed == n {
        return Some((TaskState::Completed, None));
    }
    let others = workers
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s != TaskState::Completed);
    let mut named: Vec<String> = others
        .clone()
        .take(NAMED_IN_REASON)
        .map(|(w, s)| {
            let who = Uid::from_bytes(&w.worker).to_string();
            match &w.reason {
                Some(r) => format!("{who} {s}: {r}"),
                None => format!("{who} {s}"),
            }
        })
        .collect();
    let rest = others.count().saturating_sub(NAMED_IN_REASON);
    if rest > 0 {
        named.push(format!("{rest} more"));
    }
    let details = named.join("; ");
    let (state, reason) = if completed > 0 {
        let why = format!("PARTIAL: {completed} of {n} workers completed; {details}");
        (TaskState::Completed, why)
    } else if states.iter().all(|s| *s == TaskState::Canceled) {
        (
            TaskState::Canceled,
            format!("every worker canceled: {details}"),
        )
    } else {
        (TaskState::Failed, format!("no worker completed: {details}"))
    };
    Some((state, Some(clip(reason))))
}

/// `text` cut to [`MAX_REASON_BYTES`] at a character boundary.
fn clip(mut text: String) -> String {
    if text.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A task's mode and, for `all`, its workers as the API shows them (client side only).
pub(crate) fn workers_view(
    reader: &Reader<'_>,
    row: &TaskRow,
) -> Result<(TaskMode, Vec<TaskWorker>), EngineError> {
    if row.side != TaskSide::Client
        || row.group_session.is_none()
        || !reader.is_all_mode_task(row.id)?
    {
        return Ok((TaskMode::Any, Vec::new()));
    }
    let workers = reader
        .task_workers(row.id)?
        .into_iter()
        .map(|w| {
            Ok(TaskWorker {
                worker: Uid::from_bytes(&w.worker).to_string(),
                state: w.state.parse().unwrap_or(TaskState::Failed),
                message: w.message.as_deref().map(from_json).transpose()?,
                reason: w.reason,
                artifacts: from_json(&w.artifacts)?,
                updated_at: w.updated_at,
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    Ok((TaskMode::All, workers))
}

impl Engine {
    fn worker_silent(&self, w: &TaskWorkerRow, now: i64) -> bool {
        self.agent_health
            .is_unreachable(&Uid::from_bytes(&w.worker), now)
    }

    /// Client: whether a worker of a live `all`-mode task went silent. Only reads.
    pub(super) fn silent_workers(&self, reader: &Reader<'_>, now: i64) -> Result<bool, StoreError> {
        Ok(reader
            .live_task_workers(SILENT_BATCH)?
            .iter()
            .any(|w| self.worker_silent(w, now)))
    }

    /// Client: each worker of a live `all`-mode task that went silent (see
    /// [`Engine::group_tasks_to_reassign`]) ends `failed` ([`REASON_UNREACHABLE`]; its later
    /// updates are refused), and its task's overall state follows; the tasks' events.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn end_silent_workers(&self, tx: &mut Tx<'_>, now: i64) -> Result<Vec<Event>, TaskError> {
        let mut events = Vec::new();
        for w in tx.live_task_workers(SILENT_BATCH)? {
            if !self.worker_silent(&w, now) {
                continue;
            }
            let change = WorkerChange {
                state: TaskState::Failed.as_str(),
                seq: None,
                message: None,
                reason: Some(REASON_UNREACHABLE),
                artifacts: None,
            };
            tx.change_task_worker(w.task, &w.worker, &change, now)?;
            let Some(row) = tx.task(w.task)? else {
                continue;
            };
            events.extend(settle(
                tx,
                self.me.uid.as_bytes(),
                &row,
                Progress::default(),
                now,
            )?);
        }
        Ok(events)
    }

    /// Client: whether a live `all`-mode task's claim window passed while every worker of it
    /// ended (it waits for claims no more): [`Engine::settle_claim_windows`] has work. Only
    /// reads.
    pub(super) fn claim_windows_passed(
        &self,
        reader: &Reader<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(!reader
            .held_all_mode_tasks(now.saturating_sub(CLAIM_WINDOW_MS), 1)?
            .is_empty())
    }

    /// Client: when the claim window of a task waiting for claims (every worker ended) ends,
    /// if any: the driver's next pass is due then. Only reads.
    pub(crate) fn next_claim_window_end(
        &self,
        reader: &Reader<'_>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(reader
            .held_all_mode_tasks(i64::MAX, 1)?
            .first()
            .map(|(_, sent)| sent.saturating_add(CLAIM_WINDOW_MS)))
    }

    /// Client: each live `all`-mode task whose claim window passed while every worker of it
    /// ended settles into its overall state (the oldest first, a bounded batch per pass):
    /// the members that never claimed are not waited for. The tasks' events.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn settle_claim_windows(&self, tx: &mut Tx<'_>, now: i64) -> Result<Vec<Event>, TaskError> {
        let mut events = Vec::new();
        let cutoff = now.saturating_sub(CLAIM_WINDOW_MS);
        for (id, _) in tx.held_all_mode_tasks(cutoff, SETTLE_BATCH)? {
            let Some(row) = tx.task(id)? else {
                continue;
            };
            events.extend(settle(
                tx,
                self.me.uid.as_bytes(),
                &row,
                Progress::default(),
                now,
            )?);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests;
