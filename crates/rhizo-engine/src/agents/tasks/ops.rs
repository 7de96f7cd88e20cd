//! The task operations of the local API on either side: cancel and input (client), update and
//! claim (worker), the deadlines of both, and a delegation refused for good. Each runs inside a
//! job's transaction.

use rhizo_core::{
    agent::{
        MAX_REASON_BYTES, Part, Role, Side, Task, TaskId, TaskMessage, TaskState, TaskStatus,
        TaskUpdateInput,
    },
    proto::{self, AgentMessage, agent_message::Kind},
};
use rhizo_store::{
    Tx,
    agents::{TaskChange, TaskRow, TaskSide},
};

use super::{
    EXPIRE_BATCH, Move, REASON_DEADLINE, check_size, message_id, peer_text, state_of, task_hex,
    task_view, to_json, worker_move,
};
use crate::{
    Engine, EngineError, Event,
    agents::{
        TaskError,
        file_parts::{self, TaskScope},
    },
};

impl Engine {
    fn client_task(&self, tx: &Tx<'_>, id: TaskId) -> Result<TaskRow, TaskError> {
        tx.task_by_id(&id.0, TaskSide::Client)?
            .ok_or_else(|| TaskError::UnknownTask(id.to_string()))
    }

    fn worker_task(&self, tx: &Tx<'_>, id: TaskId) -> Result<TaskRow, TaskError> {
        tx.task_by_id(&id.0, TaskSide::Worker)?
            .ok_or_else(|| TaskError::UnknownTask(id.to_string()))
    }

    /// Sends a client's agent message about `row` to its worker.
    fn send_to_worker(
        &self,
        tx: &mut Tx<'_>,
        row: &TaskRow,
        message: &AgentMessage,
        now: i64,
    ) -> Result<(), TaskError> {
        if let Some(session) = row.group_session {
            self.queue_group_agent(tx, &session, message, now)?;
            return Ok(());
        }
        let contact = tx
            .contact_by_uid(&row.peer_uid)?
            .ok_or_else(|| TaskError::UnknownAgent(peer_text(row)))?;
        self.queue_agent(tx, &contact, message, now)?
            .ok_or_else(|| TaskError::UnknownAgent(peer_text(row)))?;
        Ok(())
    }

    /// Client: cancels task `id`. A live task's `task_cancel` goes to the worker; the task
    /// becomes `canceled` when the worker's update says so (A2A: it may still be `working`
    /// until then). A task that is over is returned as it is.
    ///
    /// # Errors
    ///
    /// [`TaskError::UnknownTask`]; the engine's failures.
    pub fn cancel_task(&self, tx: &mut Tx<'_>, id: TaskId, now: i64) -> Result<Task, TaskError> {
        let out = (|| {
            let row = self.client_task(tx, id)?;
            if row.is_live() {
                let cancel = AgentMessage {
                    kind: Some(Kind::TaskCancel(proto::TaskCancel {
                        task_id: row.task_id.to_vec().into(),
                    })),
                };
                self.send_to_worker(tx, &row, &cancel, now)?;
            }
            Ok(task_view(tx, &row)?)
        })();
        self.settled(out)
    }

    /// Client: more input for live task `id` (A2A: a message naming the task), appended to
    /// its history and sent to the worker.
    ///
    /// # Errors
    ///
    /// [`TaskError::UnknownTask`], [`TaskError::BadTask`], [`TaskError::BadTransition`] for a
    /// task that is over; the engine's failures.
    pub fn task_input(
        &self,
        tx: &mut Tx<'_>,
        id: TaskId,
        mut message: TaskMessage,
        now: i64,
    ) -> Result<Task, TaskError> {
        message.role = Role::User;
        if message.message_id.is_empty() {
            message.message_id = message_id(self);
        }
        message.validate()?;
        let out = (|| {
            let row = self.client_task(tx, id)?;
            let state = state_of(&row);
            state.check_move(TaskState::Working)?;
            let scope = TaskScope::of(tx, row.peer_uid, row.group_session)?;
            file_parts::fill_parts(tx, &scope, &mut message.parts)?;
            let input = AgentMessage {
                kind: Some(Kind::TaskInput(proto::TaskInput {
                    task_id: row.task_id.to_vec().into(),
                    message: Some(rhizo_core::agent::wire::message_to_wire(&message)?),
                })),
            };
            check_size(&input)?;
            tx.add_task_message(row.id, &to_json(&message)?, now)?;
            self.send_to_worker(tx, &row, &input, now)?;
            Ok(task_view(tx, &row)?)
        })();
        self.settled(out)
    }

    /// Worker: the agent program's status change, message and artifacts for task `id`:
    /// checked against the state machine, numbered, persisted, then queued to the client.
    /// Returns the task and the event to show.
    ///
    /// # Errors
    ///
    /// [`TaskError::UnknownTask`], [`TaskError::BadTask`], [`TaskError::BadTransition`] (and
    /// nothing changes); the engine's failures.
    pub fn update_task(
        &self,
        tx: &mut Tx<'_>,
        id: TaskId,
        input: &TaskUpdateInput,
        now: i64,
    ) -> Result<(Task, Vec<Event>), TaskError> {
        let message = checked_update(self, input)?;
        let out = (|| {
            let row = self.worker_task(tx, id)?;
            state_of(&row).check_move(input.state)?;
            let mv = Move {
                state: input.state,
                message,
                artifacts: &input.artifacts,
                reason: input.reason.clone(),
            };
            let (event, update) = worker_move(tx, &row, mv, now)?;
            self.send_update(tx, &row, &update, now)?;
            let row = tx
                .task(row.id)?
                .ok_or(EngineError::Internal("a task vanished"))?;
            Ok((task_view(tx, &row)?, vec![event]))
        })();
        self.settled(out)
    }

    /// Worker: claims the next queued task (priority, then arrival): it moves to `working`
    /// (the update goes to the client) and is returned; `None` when the queue is empty.
    ///
    /// # Errors
    ///
    /// The engine's failures.
    pub fn claim_next_task(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<Option<(Task, Vec<Event>)>, TaskError> {
        self.claim_and_update(tx, None, now)
    }

    /// Worker: claims the next queued task as [`Engine::claim_next_task`] does and, with
    /// `update`, applies it in the same transaction (an instant worker's answer: claim and
    /// complete in one call). The task passes through `working` on this side; only the final
    /// update goes to the client (one envelope; the client accepts the gap in `seq`). An
    /// update the state machine refuses after `working` (`submitted`) refuses the claim too,
    /// and nothing changes.
    ///
    /// # Errors
    ///
    /// [`TaskError::BadTask`], [`TaskError::BadTransition`]; the engine's failures.
    pub fn claim_and_update(
        &self,
        tx: &mut Tx<'_>,
        update: Option<&TaskUpdateInput>,
        now: i64,
    ) -> Result<Option<(Task, Vec<Event>)>, TaskError> {
        let message = update
            .map(|u| checked_update(self, u))
            .transpose()?
            .flatten();
        if let Some(input) = update {
            TaskState::Working.check_move(input.state)?;
        }
        let out = (|| {
            let Some(row) = tx.task_queue(&[TaskState::Submitted.as_str()], 1)?.pop() else {
                return Ok(None);
            };
            let mv = Move {
                state: TaskState::Working,
                message: None,
                artifacts: &[],
                reason: None,
            };
            let (event, working) = worker_move(tx, &row, mv, now)?;
            let mut events = vec![event];
            let update = match update {
                None => working,
                Some(input) => {
                    let row = tx
                        .task(row.id)?
                        .ok_or(EngineError::Internal("a task vanished"))?;
                    let mv = Move {
                        state: input.state,
                        message,
                        artifacts: &input.artifacts,
                        reason: input.reason.clone(),
                    };
                    let (event, update) = worker_move(tx, &row, mv, now)?;
                    events.push(event);
                    update
                }
            };
            self.send_update(tx, &row, &update, now)?;
            let row = tx
                .task(row.id)?
                .ok_or(EngineError::Internal("a task vanished"))?;
            Ok(Some((task_view(tx, &row)?, events)))
        })();
        self.settled(out)
    }

    /// Ends the live tasks whose deadline passed at `now` as `failed` ("deadline passed"): the
    /// worker sends the update; the client marks its copy (a final update that comes later is
    /// refused as a bad transition). The events to show.
    ///
    /// # Errors
    ///
    /// The engine's failures.
    pub fn expire_tasks(&self, tx: &mut Tx<'_>, now: i64) -> Result<Vec<Event>, TaskError> {
        let out = (|| {
            let mut events = Vec::new();
            for row in tx.tasks_past_deadline(now, EXPIRE_BATCH)? {
                let reason = Some(REASON_DEADLINE.to_string());
                match row.side {
                    TaskSide::Worker => {
                        let mv = Move {
                            state: TaskState::Failed,
                            message: None,
                            artifacts: &[],
                            reason,
                        };
                        let (event, update) = worker_move(tx, &row, mv, now)?;
                        self.send_update(tx, &row, &update, now)?;
                        events.push(event);
                    }
                    TaskSide::Client => {
                        tx.change_task(
                            row.id,
                            &TaskChange {
                                state: TaskState::Failed.as_str(),
                                seq: None,
                                message: None,
                                reason: reason.as_deref(),
                            },
                            now,
                        )?;
                        events.push(Event::TaskUpdated {
                            task_id: task_hex(&row),
                            side: Side::Client,
                            peer: peer_text(&row),
                            status: TaskStatus {
                                state: TaskState::Failed,
                                message: None,
                                reason,
                                timestamp: now,
                            },
                            new_artifacts: Vec::new(),
                        });
                    }
                }
            }
            Ok(events)
        })();
        self.settled(out)
    }
}

/// Checks a worker's update (sizes, ids) and builds its agent message, if it has one.
fn checked_update(
    engine: &Engine,
    input: &TaskUpdateInput,
) -> Result<Option<TaskMessage>, TaskError> {
    input.validate()?;
    let message = match (&input.message, &input.text) {
        (Some(m), _) => Some(TaskMessage {
            role: Role::Agent,
            ..m.clone()
        }),
        (None, Some(text)) => Some(TaskMessage {
            message_id: message_id(engine),
            role: Role::Agent,
            parts: vec![Part::text(text.clone())],
        }),
        (None, None) => None,
    };
    if let Some(m) = &message {
        m.validate()?;
    }
    Ok(message)
}

/// Client: outgoing messages that failed for good (`events` of an outbox result): a
/// `task_delegate` among them ends its task `failed`, with why the agent refused it (e.g. it
/// blocked us). The events of the tasks it ended.
///
/// # Errors
///
/// If the database fails.
pub(crate) fn on_messages_failed(
    tx: &mut Tx<'_>,
    events: &[Event],
    now: i64,
) -> Result<Vec<Event>, EngineError> {
    let mut out = Vec::new();
    for event in events {
        let Event::MessageState {
            id,
            state: rhizo_store::messaging::MessageState::Failed,
            ..
        } = event
        else {
            continue;
        };
        let Some(row) = tx.message(*id)? else {
            continue;
        };
        let summary: Option<serde_json::Value> = (row.kind == "agent")
            .then(|| {
                row.body
                    .as_deref()
                    .and_then(|b| serde_json::from_str(b).ok())
            })
            .flatten();
        let Some(task_id) = summary
            .filter(|s| s["kind"] == "task_delegate")
            .and_then(|s| s["task"].as_str().and_then(|t| t.parse::<TaskId>().ok()))
        else {
            continue;
        };
        let Some(task) = tx.task_by_id(&task_id.0, TaskSide::Client)? else {
            continue;
        };
        if !task.is_live() {
            continue;
        }
        // The message-level reason may end with advice for chat ("send again to start a new
        // one") that is wrong for a task the agent's node refuses: keep only what happened.
        let what = row
            .error
            .as_deref()
            .and_then(|e| e.split(';').next())
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .unwrap_or("the agent refused the task");
        let reason = format!("not delivered: {what}");
        let reason: String = reason.chars().take(MAX_REASON_BYTES / 4).collect();
        tx.change_task(
            task.id,
            &TaskChange {
                state: TaskState::Failed.as_str(),
                seq: None,
                message: None,
                reason: Some(&reason),
            },
            now,
        )?;
        out.push(Event::TaskUpdated {
            task_id: task_id.to_string(),
            side: Side::Client,
            peer: peer_text(&task),
            status: TaskStatus {
                state: TaskState::Failed,
                message: None,
                reason: Some(reason),
                timestamp: now,
            },
            new_artifacts: Vec::new(),
        });
    }
    Ok(out)
}
