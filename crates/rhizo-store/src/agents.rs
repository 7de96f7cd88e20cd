//! Agent tasks on both sides (issue 13): `tasks`, their status history (`task_events`), their
//! messages after the request (`task_messages`), their results (`task_artifacts`), and the
//! agent messages an inbound transaction queued for sending (`agent_outbox`).
//!
//! ```text
//!  tasks ─┬─ task_events     every status entered, in order (the client sees it across restarts)
//!         ├─ task_messages   input and agent messages after the request, in order
//!         └─ task_artifacts  results, one row per artifact id
//!  all_mode_tasks, task_workers   an `all`-mode group task's workers, each with its own
//!                            status and results (`agents/workers.rs`)
//!  agent_outbox              answers (task updates, capability answers) written while an
//!                            inbound envelope was applied; sent once that commit is done
//! ```
//!
//! The store knows states only as their text (`submitted`, `input-required`, …) and messages
//! and artifacts as the JSON the engine writes; the engine owns their meaning. A client's own
//! task ids are unique; a worker keeps `(side, peer, task id)` unique, so a duplicate
//! delegation inserts nothing ([`Tx::insert_task`] answers `None`).

use rusqlite::{OptionalExtension, Row, params};

use crate::error::{SqliteContext, StoreError};
use crate::messaging::blob;
use crate::tx::{Reader, Tx};

mod workers;

pub use workers::{MAX_TASK_WORKERS, TaskWorkerRow, WorkerChange};

/// States a task is still live in (not over); the text the engine stores.
pub const LIVE_STATES: [&str; 4] = ["submitted", "working", "input-required", "auth-required"];
/// Most tasks one listing returns.
pub const MAX_TASK_LIST: usize = 1_000;
/// Status history entries kept per task: past it the oldest go (the first, `submitted`, stays),
/// so a worker sending endless progress cannot grow a task without bound.
pub const MAX_TASK_EVENTS: usize = 256;
/// Messages kept per task after the request (the oldest go first).
pub const MAX_TASK_MESSAGES: usize = 256;
/// Artifacts kept per task (the oldest go first).
pub const MAX_TASK_ARTIFACTS: usize = 64;
/// Tasks kept in all: past it the oldest that are over go first (live ones are bounded by the
/// worker's queue and by what the user delegates).
pub const MAX_TASKS: usize = 10_000;
/// Most agent messages waiting in `agent_outbox`: past it, an inbound agent message that needs
/// an answer is refused for now (the sender retries).
pub const MAX_AGENT_OUTBOX: u64 = 4_096;

/// Which end of a task this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskSide {
    /// We delegated it.
    Client,
    /// We execute it.
    Worker,
}

impl TaskSide {
    /// As stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Worker => "worker",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "worker" {
            Self::Worker
        } else {
            Self::Client
        }
    }
}

/// A task to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewTaskRow<'a> {
    /// The 16-byte task id the client chose.
    pub task_id: [u8; 16],
    /// Which end we are.
    pub side: TaskSide,
    /// The other end.
    pub peer_uid: [u8; 32],
    /// A2A context id.
    pub context_id: &'a str,
    /// The skill asked for.
    pub skill: Option<&'a str>,
    /// Queue rank (0 low … 3 urgent).
    pub priority: u32,
    /// Unix ms, if any.
    pub deadline: Option<i64>,
    /// The requirements, as a JSON array.
    pub requirements: &'a str,
    /// The first state (also the first history entry).
    pub state: &'a str,
    /// Why, for a task stored already over (rejected when the queue is full).
    pub reason: Option<&'a str>,
    /// The request message, as JSON.
    pub request: &'a str,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Row id (what its history rows point at).
    pub id: i64,
    /// The task id.
    pub task_id: [u8; 16],
    /// Which end we are.
    pub side: TaskSide,
    /// The other end.
    pub peer_uid: [u8; 32],
    /// A2A context id.
    pub context_id: String,
    /// The skill asked for.
    pub skill: Option<String>,
    /// Queue rank.
    pub priority: u32,
    /// Unix ms, if any.
    pub deadline: Option<i64>,
    /// JSON array.
    pub requirements: String,
    /// The current state.
    pub state: String,
    /// The worker's last update number (sent, on the worker; applied, on the client).
    pub last_seq: u64,
    /// The request message, JSON.
    pub request: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change.
    pub updated_at: i64,
    /// The group (its session id) a group task runs in.
    pub group_session: Option<[u8; 16]>,
    /// A group task's assignee: the member that runs it.
    pub assignee: Option<[u8; 32]>,
}

impl TaskRow {
    /// Whether the task is still live (see [`LIVE_STATES`]).
    pub fn is_live(&self) -> bool {
        LIVE_STATES.contains(&self.state.as_str())
    }
}

/// One entry of a task's status history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEventRow {
    /// The update number that brought it (0 for a change made here).
    pub seq: u64,
    /// The state entered.
    pub state: String,
    /// A message that came with it, JSON.
    pub message: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Unix ms.
    pub at: i64,
}

/// A status change to record.
#[derive(Debug, Clone, Copy)]
pub struct TaskChange<'a> {
    /// The new state.
    pub state: &'a str,
    /// The update number (the worker's), or `None` to keep the task's.
    pub seq: Option<u64>,
    /// A message with it, JSON (also appended to the task's messages).
    pub message: Option<&'a str>,
    /// Why.
    pub reason: Option<&'a str>,
}

/// Which tasks [`Reader::tasks`] lists.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// One side only.
    pub side: Option<TaskSide>,
    /// Only these states (any when empty).
    pub states: Vec<String>,
    /// Only with this peer.
    pub peer_uid: Option<[u8; 32]>,
    /// Only in this context.
    pub context_id: Option<String>,
    /// At most this many (capped at [`MAX_TASK_LIST`]).
    pub limit: usize,
}

/// An agent message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOutboxRow {
    /// Row id.
    pub id: i64,
    /// To whom.
    pub peer_uid: [u8; 32],
    /// The encoded `AgentMessage`.
    pub message: Vec<u8>,
    /// The outbox row's summary (never shown as chat).
    pub summary: String,
}

const TASK_COLUMNS: &str = "id, task_id, side, peer_uid, context_id, skill, priority, deadline, \
                            requirements, state, last_seq, request, created_at, updated_at, \
                            group_session, assignee";

fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: r.get(0)?,
        task_id: blob(r.get(1)?)?,
        side: TaskSide::parse(&r.get::<_, String>(2)?),
        peer_uid: blob(r.get(3)?)?,
        context_id: r.get(4)?,
        skill: r.get(5)?,
        priority: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        deadline: r.get(7)?,
        requirements: r.get(8)?,
        state: r.get(9)?,
        last_seq: u64::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
        request: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        group_session: r.get::<_, Option<Vec<u8>>>(14)?.map(blob).transpose()?,
        assignee: r.get::<_, Option<Vec<u8>>>(15)?.map(blob).transpose()?,
    })
}

/// A row count as SQLite's integer.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `?, ?, …` for `n` values starting at parameter `first`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends a message (JSON) to task `id`'s messages; past [`MAX_TASK_MESSAGES`] the oldest
/// goes.
fn append_task_message(
    tx: &rusqlite::Connection,
    id: i64,
    message: &str,
    now: i64,
) -> Result<(), StoreError> {
    const CTX: &str = "storing a task message";
    tx.prepare_cached("INSERT INTO task_messages (task, message, at) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![id, message, now]))
        .context(CTX)?;
    tx.prepare_cached(
        "DELETE FROM task_messages WHERE task = ?1
           AND id <= (SELECT id FROM task_messages WHERE task = ?1
                      ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .and_then(|mut s| s.execute(params![id, limit(MAX_TASK_MESSAGES)]))
    .context(CTX)?;
    Ok(())
}

impl Reader<'_> {
    /// A task by row id.
    pub fn task(&self, id: i64) -> Result<Option<TaskRow>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id], task_row).optional())
            .context("reading a task")
    }

    /// A task by its id, on one side (a client's ids are unique; on the worker side the first
    /// stored, should two clients have chosen the same id).
    pub fn task_by_id(
        &self,
        task_id: &[u8; 16],
        side: TaskSide,
    ) -> Result<Option<TaskRow>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1 AND side = ?2 ORDER BY id LIMIT 1"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(params![&task_id[..], side.as_str()], task_row)
                    .optional()
            })
            .context("reading a task")
    }

    /// The task `task_id` of `side` with `peer_uid`.
    pub fn task_with_peer(
        &self,
        side: TaskSide,
        peer_uid: &[u8; 32],
        task_id: &[u8; 16],
    ) -> Result<Option<TaskRow>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE side = ?1 AND peer_uid = ?2 AND task_id = ?3"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(
                    params![side.as_str(), &peer_uid[..], &task_id[..]],
                    task_row,
                )
                .optional()
            })
            .context("reading a task")
    }

    /// Tasks matching `query`, newest first.
    pub fn tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRow>, StoreError> {
        const CTX: &str = "listing tasks";
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1");
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(side) = query.side {
            values.push(side.as_str().to_string().into());
            sql.push_str(&format!(" AND side = ?{}", values.len()));
        }
        if let Some(peer) = query.peer_uid {
            values.push(peer.to_vec().into());
            sql.push_str(&format!(" AND peer_uid = ?{}", values.len()));
        }
        if let Some(context) = &query.context_id {
            values.push(context.clone().into());
            sql.push_str(&format!(" AND context_id = ?{}", values.len()));
        }
        if !query.states.is_empty() {
            let first = values.len() + 1;
            values.extend(query.states.iter().map(|s| s.clone().into()));
            sql.push_str(&format!(
                " AND state IN ({})",
                placeholders(first, query.states.len())
            ));
        }
        values.push(
            i64::try_from(query.limit.min(MAX_TASK_LIST))
                .unwrap_or(0)
                .into(),
        );
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(rusqlite::params_from_iter(values), task_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// The worker's tasks in `states`, in queue order: priority first (highest), then arrival.
    pub fn task_queue(&self, states: &[&str], limit: usize) -> Result<Vec<TaskRow>, StoreError> {
        const CTX: &str = "reading the task queue";
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE side = 'worker' AND state IN ({})
             ORDER BY priority DESC, id LIMIT ?1",
            placeholders(2, states.len())
        );
        let mut values: Vec<rusqlite::types::Value> =
            vec![i64::try_from(limit.min(MAX_TASK_LIST)).unwrap_or(0).into()];
        values.extend(states.iter().map(|s| (*s).to_string().into()));
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(rusqlite::params_from_iter(values), task_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Live client tasks run in a group and assigned to a member, least recently changed
    /// first, at most `limit` (the client checks whether their assignee went silent).
    pub fn assigned_group_tasks(&self, limit: usize) -> Result<Vec<TaskRow>, StoreError> {
        const CTX: &str = "reading assigned group tasks";
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks
             WHERE side = 'client' AND group_session IS NOT NULL AND assignee IS NOT NULL
               AND state IN ({})
             ORDER BY updated_at LIMIT ?1",
            placeholders(2, LIVE_STATES.len())
        );
        let mut values: Vec<rusqlite::types::Value> = vec![self::limit(limit).into()];
        values.extend(LIVE_STATES.iter().map(|s| (*s).to_string().into()));
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(rusqlite::params_from_iter(values), task_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// How many live client tasks run in the group `session_id` (their bound per group).
    pub fn count_live_group_tasks(&self, session_id: &[u8; 16]) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM tasks WHERE group_session = ?1 AND side = 'client'
             AND state IN ({})",
            placeholders(2, LIVE_STATES.len())
        );
        let mut values: Vec<rusqlite::types::Value> = vec![session_id.to_vec().into()];
        values.extend(LIVE_STATES.iter().map(|s| (*s).to_string().into()));
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(rusqlite::params_from_iter(values), |r| r.get::<_, i64>(0))
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .context("counting a group's tasks")
    }

    /// How many tasks of `side` are in `state` (the worker's queue bound counts `submitted`).
    pub fn count_tasks(&self, side: TaskSide, state: &str) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM tasks WHERE side = ?1 AND state = ?2")
            .and_then(|mut s| s.query_row(params![side.as_str(), state], |r| r.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .context("counting tasks")
    }

    /// The earliest deadline of a live task on either side, if any.
    pub fn next_task_deadline(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT min(deadline) FROM tasks WHERE deadline IS NOT NULL
                   AND state IN ('submitted', 'working', 'input-required', 'auth-required')",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .context("reading task deadlines")
    }

    /// Live tasks whose deadline is at or before `now`, oldest deadline first.
    pub fn tasks_past_deadline(&self, now: i64, limit: usize) -> Result<Vec<TaskRow>, StoreError> {
        const CTX: &str = "reading tasks past their deadline";
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE deadline IS NOT NULL AND deadline <= ?1
               AND state IN ('submitted', 'working', 'input-required', 'auth-required')
             ORDER BY deadline, id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(
            params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
            task_row,
        )
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// A task's status history, oldest first.
    pub fn task_events(&self, task: i64) -> Result<Vec<TaskEventRow>, StoreError> {
        const CTX: &str = "reading a task's history";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, state, message, reason, at FROM task_events
                 WHERE task = ?1 ORDER BY id",
            )
            .context(CTX)?;
        stmt.query_map([task], |r| {
            Ok(TaskEventRow {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                state: r.get(1)?,
                message: r.get(2)?,
                reason: r.get(3)?,
                at: r.get(4)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// A task's messages after the request (JSON), oldest first.
    pub fn task_messages(&self, task: i64) -> Result<Vec<String>, StoreError> {
        self.json_column(
            "SELECT message FROM task_messages WHERE task = ?1 ORDER BY id",
            task,
        )
    }

    /// A task's artifacts (JSON), in the order they first came.
    pub fn task_artifacts(&self, task: i64) -> Result<Vec<String>, StoreError> {
        self.json_column(
            "SELECT artifact FROM task_artifacts WHERE task = ?1 ORDER BY id",
            task,
        )
    }

    fn json_column(&self, sql: &str, task: i64) -> Result<Vec<String>, StoreError> {
        const CTX: &str = "reading a task's messages or artifacts";
        let mut stmt = self.conn.prepare_cached(sql).context(CTX)?;
        stmt.query_map([task], |r| r.get(0))
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Agent messages waiting to be sent, oldest first.
    pub fn agent_outbox(&self, limit: usize) -> Result<Vec<AgentOutboxRow>, StoreError> {
        const CTX: &str = "reading the agent outbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, peer_uid, message, summary FROM agent_outbox ORDER BY id LIMIT ?1",
            )
            .context(CTX)?;
        stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(AgentOutboxRow {
                id: r.get(0)?,
                peer_uid: blob(r.get(1)?)?,
                message: r.get(2)?,
                summary: r.get(3)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// Whether more than `max` tasks are stored (both sides, every state). Reads the row-id
    /// span first (two index lookups; ids are unique, so the span bounds the count): only
    /// when that is over `max` does it count, and then at most `max + 1` rows.
    pub fn more_tasks_than(&self, max: usize) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT CASE
                   WHEN coalesce((SELECT max(id) FROM tasks) - (SELECT min(id) FROM tasks) + 1, 0)
                        > ?1
                   THEN (SELECT count(*) FROM (SELECT 1 FROM tasks LIMIT ?1 + 1)) > ?1
                   ELSE 0
                 END",
            )
            .and_then(|mut s| s.query_row([limit(max)], |r| r.get::<_, bool>(0)))
            .context("counting tasks")
    }

    /// How many agent messages wait to be sent.
    pub fn agent_outbox_len(&self) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM agent_outbox")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .context("counting the agent outbox")
    }
}

impl Tx<'_> {
    /// Stores a new task with its first history entry; `None` (and nothing changed) when the
    /// same task (side, peer, id — or a client id already used) is stored already.
    pub fn insert_task(&mut self, t: &NewTaskRow<'_>, now: i64) -> Result<Option<i64>, StoreError> {
        const CTX: &str = "storing a task";
        self.atomic(|tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO tasks (task_id, side, peer_uid, context_id, skill, priority,
                        deadline, requirements, state, request, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        &t.task_id[..],
                        t.side.as_str(),
                        &t.peer_uid[..],
                        t.context_id,
                        t.skill,
                        i64::from(t.priority),
                        t.deadline,
                        t.requirements,
                        t.state,
                        t.request,
                        now
                    ])
                })
                .context(CTX)?;
            if inserted == 0 {
                return Ok(None);
            }
            let id = tx.last_insert_rowid();
            tx.prepare_cached(
                "INSERT INTO task_events (task, seq, state, reason, at) VALUES (?1, 0, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![id, t.state, t.reason, now]))
            .context(CTX)?;
            Ok(Some(id))
        })
    }

    /// Marks task `id` as a group task of `session_id`, run by `assignee` (`None`: not assigned
    /// yet). A new assignee starts the update numbering again (its updates count from 1).
    pub fn set_task_group(
        &mut self,
        id: i64,
        session_id: &[u8; 16],
        assignee: Option<&[u8; 32]>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE tasks SET group_session = ?2, assignee = ?3, updated_at = ?4,
                 last_seq = CASE WHEN assignee IS ?3 THEN last_seq ELSE 0 END
             WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    &session_id[..],
                    assignee.map(|a| a.to_vec()),
                    now
                ])
            })
            .context("assigning a group task")?;
        Ok(())
    }

    /// Records a status change of task `id`: the new state (and update number), a history entry,
    /// and its message appended to the task's messages.
    pub fn change_task(
        &mut self,
        id: i64,
        change: &TaskChange<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        const CTX: &str = "updating a task";
        self.atomic(|tx| {
            // One statement sets the state and says the update number it stored.
            let seq: i64 = tx
                .prepare_cached(
                    "UPDATE tasks SET state = ?2, last_seq = coalesce(?3, last_seq),
                        updated_at = ?4
                     WHERE id = ?1 RETURNING last_seq",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            id,
                            change.state,
                            change.seq.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                            now
                        ],
                        |r| r.get(0),
                    )
                })
                .context(CTX)?;
            tx.prepare_cached(
                "INSERT INTO task_events (task, seq, state, message, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    seq,
                    change.state,
                    change.message,
                    change.reason,
                    now
                ])
            })
            .context(CTX)?;
            // The first entry and the newest `MAX_TASK_EVENTS - 1` stay: what is older than the
            // newest kept one goes (an index walk; nothing when there are fewer).
            tx.prepare_cached(
                "DELETE FROM task_events WHERE task = ?1
                   AND id > (SELECT min(id) FROM task_events WHERE task = ?1)
                   AND id < (SELECT id FROM task_events WHERE task = ?1
                             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )
            .and_then(|mut s| s.execute(params![id, limit(MAX_TASK_EVENTS - 2)]))
            .context(CTX)?;
            if let Some(message) = change.message {
                append_task_message(tx, id, message, now)?;
            }
            Ok(())
        })
    }

    /// Appends a message (JSON) to task `id`'s messages (more input, or with a status change);
    /// past [`MAX_TASK_MESSAGES`] the oldest goes.
    pub fn add_task_message(&mut self, id: i64, message: &str, now: i64) -> Result<(), StoreError> {
        self.atomic(|tx| {
            tx.prepare_cached("UPDATE tasks SET updated_at = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, now]))
                .context("storing a task message")?;
            append_task_message(tx, id, message, now)
        })
    }

    /// Stores an artifact (JSON) of task `id`; one with the same artifact id replaces it.
    pub fn put_task_artifact(
        &mut self,
        id: i64,
        artifact_id: &str,
        artifact: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO task_artifacts (task, artifact_id, artifact, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (task, artifact_id) DO UPDATE SET artifact = excluded.artifact,
                    at = excluded.at",
            )
            .and_then(|mut s| s.execute(params![id, artifact_id, artifact, now]))
            .context("storing a task artifact")?;
        self.conn
            .prepare_cached(
                "DELETE FROM task_artifacts WHERE task = ?1
                   AND id <= (SELECT id FROM task_artifacts WHERE task = ?1
                              ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )
            .and_then(|mut s| s.execute(params![id, limit(MAX_TASK_ARTIFACTS)]))
            .context("storing a task artifact")?;
        Ok(())
    }

    /// Past [`MAX_TASKS`] tasks (`max` in tests), forgets the oldest that are over (with their
    /// history); how many went.
    pub fn prune_tasks(&mut self, max: usize) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached(
                "DELETE FROM tasks WHERE id IN (
                   SELECT id FROM tasks
                   WHERE state NOT IN ('submitted', 'working', 'input-required', 'auth-required')
                   ORDER BY updated_at, id
                   LIMIT max(0, (SELECT count(*) FROM tasks) - ?1))",
            )
            .and_then(|mut s| s.execute([limit(max)]))
            .context("pruning tasks")
    }

    /// Queues an agent message for sending once this transaction committed; false (nothing
    /// queued) when [`MAX_AGENT_OUTBOX`] are waiting already.
    pub fn push_agent_outbox(
        &mut self,
        peer_uid: &[u8; 32],
        message: &[u8],
        summary: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        if self.agent_outbox_len()? >= MAX_AGENT_OUTBOX {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO agent_outbox (peer_uid, message, summary, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![&peer_uid[..], message, summary, now]))
            .context("queueing an agent message")?;
        Ok(true)
    }

    /// Forgets a sent (or undeliverable) agent message.
    pub fn remove_agent_outbox(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM agent_outbox WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .context("removing an agent message")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
