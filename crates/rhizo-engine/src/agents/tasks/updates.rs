//! The client's side of a worker's `task_update`: checked before its task is looked up,
//! then applied once, in order (see the parent module's diagram).

use rhizo_core::{
    agent::{
        Artifact, MAX_ARTIFACTS, MAX_REASON_BYTES, Side, TaskId, TaskMessage, TaskState,
        TaskStatus, wire,
    },
    envelope::ErrorCode,
    proto,
};
use rhizo_store::{
    Tx,
    agents::{TaskChange, TaskRow, TaskSide},
};
use tracing::debug;

use super::{AgentCtx, malformed, peer_text, state_of, to_json};
use crate::{Event, inbound::Reject};

/// Client: a status change from the worker. Applied once, in order (an update number at or
/// below the last applied is a duplicate); a transition the state machine refuses changes
/// nothing.
pub(crate) fn on_update(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    u: proto::TaskUpdate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let u = check_update(u)?;
    let Some(row) = tx.task_with_peer(TaskSide::Client, &ctx.contact.uid, &u.task_id.0)? else {
        debug!("an update for a task we did not send to this agent is ignored");
        return Ok(Vec::new());
    };
    apply_update(tx, ctx.health, &ctx.contact.uid, &row, u, now)
}

/// The checked fields of an inbound `task_update`.
pub(crate) struct CheckedUpdate {
    pub(crate) task_id: TaskId,
    pub(crate) seq: u64,
    pub(crate) state: TaskState,
    pub(crate) message: Option<TaskMessage>,
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) reason: String,
}

/// Checks an inbound `task_update` (before its task is looked up: a malformed one is refused
/// whatever it names).
pub(crate) fn check_update(u: proto::TaskUpdate) -> Result<CheckedUpdate, Reject> {
    let task_id = TaskId::from_slice(&u.task_id).map_err(malformed)?;
    let state = TaskState::from_wire(u.state).map_err(malformed)?;
    let message = u
        .message
        .map(wire::message_from_wire)
        .transpose()
        .map_err(malformed)?;
    if u.artifacts.len() > MAX_ARTIFACTS || u.reason.len() > MAX_REASON_BYTES {
        return Err(Reject::Code(ErrorCode::Malformed));
    }
    let artifacts = u
        .artifacts
        .into_iter()
        .map(wire::artifact_from_wire)
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    Ok(CheckedUpdate {
        task_id,
        seq: u.seq,
        state,
        message,
        artifacts,
        reason: u.reason,
    })
}

/// Client: applies worker `agent`'s update `u` to task `row` (checked here: numbering, parts,
/// the state machine); the outcome feeds the agent's circuit breaker.
pub(crate) fn apply_update(
    tx: &mut Tx<'_>,
    health: &crate::agents::health::AgentHealth,
    agent: &[u8; 32],
    row: &TaskRow,
    u: CheckedUpdate,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let CheckedUpdate {
        task_id,
        state,
        message,
        artifacts,
        ..
    } = u;
    if u.seq <= row.last_seq {
        return Ok(Vec::new());
    }
    if let Err(e) = state_of(row).check_move(state) {
        debug!(error = %e, "a task update is refused");
        return Ok(Vec::new());
    }
    let reason = (!u.reason.is_empty()).then_some(u.reason);
    let message_json = message
        .as_ref()
        .map(to_json)
        .transpose()
        .map_err(Reject::internal)?;
    tx.change_task(
        row.id,
        &TaskChange {
            state: state.as_str(),
            seq: Some(u.seq),
            message: message_json.as_deref(),
            reason: reason.as_deref(),
        },
        now,
    )?;
    for a in &artifacts {
        let json = to_json(a).map_err(Reject::internal)?;
        tx.put_task_artifact(row.id, &a.artifact_id, &json, now)?;
    }
    // The outcome feeds the agent's circuit breaker.
    let agent = rhizo_core::Uid::from_bytes(agent);
    match state {
        TaskState::Completed => health.with_breakers(|b| b.on_success(&agent)),
        TaskState::Failed | TaskState::Rejected => {
            health.with_breakers(|b| b.on_failure(&agent, now));
        }
        _ => {}
    }
    Ok(vec![Event::TaskUpdated {
        task_id: task_id.to_string(),
        side: Side::Client,
        peer: peer_text(row),
        status: TaskStatus {
            state,
            message,
            reason,
            timestamp: now,
        },
        new_artifacts: artifacts,
    }])
}
