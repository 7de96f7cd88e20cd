//! The workers of `all`-mode group tasks (client side): `all_mode_tasks` marks a client task
//! every agent member runs, and `task_workers` keeps each member's own status and results (its
//! artifacts as one JSON array the engine merges). Both go with their task.

use rusqlite::{OptionalExtension, Row, params};

use super::{LIVE_STATES, limit, placeholders};
use crate::error::{SqliteContext, StoreError};
use crate::messaging::blob;
use crate::tx::{Reader, Tx};

/// Workers one `all`-mode task keeps at most: later claims are not assigned. With
/// `MAX_LIVE_GROUP_TASKS` live tasks per group, a group holds at most both multiplied.
pub const MAX_TASK_WORKERS: usize = 256;

/// One worker of an `all`-mode task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskWorkerRow {
    /// The task's row id.
    pub task: i64,
    /// The member's UID.
    pub worker: [u8; 32],
    /// Its device that claimed (the one that runs the task).
    pub device: [u8; 32],
    /// Its state (as the engine stores task states).
    pub state: String,
    /// The last update number applied from it.
    pub last_seq: u64,
    /// Its last message (JSON), if any.
    pub message: Option<String>,
    /// Why it ended, if it said.
    pub reason: Option<String>,
    /// Its artifacts, a JSON array.
    pub artifacts: String,
    /// When it was assigned (unix ms).
    pub joined_at: i64,
    /// Its last change (unix ms).
    pub updated_at: i64,
}

impl TaskWorkerRow {
    /// Whether it still runs the task.
    pub fn is_live(&self) -> bool {
        LIVE_STATES.contains(&self.state.as_str())
    }
}

/// A change of one worker's status.
#[derive(Debug, Clone, Copy)]
pub struct WorkerChange<'a> {
    /// The new state.
    pub state: &'a str,
    /// The update number applied (unchanged when `None`).
    pub seq: Option<u64>,
    /// Its message (JSON), replacing the last one when given.
    pub message: Option<&'a str>,
    /// Why (replaces the last reason when given).
    pub reason: Option<&'a str>,
    /// All its artifacts now (a JSON array), when they changed.
    pub artifacts: Option<&'a str>,
}

const COLUMNS: &str =
    "task, worker, device, state, last_seq, message, reason, artifacts, joined_at, updated_at";

fn worker_row(r: &Row<'_>) -> rusqlite::Result<TaskWorkerRow> {
    Ok(TaskWorkerRow {
        task: r.get(0)?,
        worker: blob(r.get(1)?)?,
        device: blob(r.get(2)?)?,
        state: r.get(3)?,
        last_seq: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        message: r.get(5)?,
        reason: r.get(6)?,
        artifacts: r.get(7)?,
        joined_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

impl Reader<'_> {
    /// Whether client task `task` is `all`-mode.
    pub fn is_all_mode_task(&self, task: i64) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM all_mode_tasks WHERE task = ?1")
            .and_then(|mut s| s.query_row([task], |_| Ok(())).optional())
            .map(|found| found.is_some())
            .context("reading a task's mode")
    }

    /// The workers of `all`-mode task `task`, in the order they were assigned.
    pub fn task_workers(&self, task: i64) -> Result<Vec<TaskWorkerRow>, StoreError> {
        const CTX: &str = "reading a task's workers";
        let sql = format!(
            "SELECT {COLUMNS} FROM task_workers WHERE task = ?1 ORDER BY joined_at, worker"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map([task], worker_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Member `worker` of `all`-mode task `task`, if it was assigned.
    pub fn task_worker(
        &self,
        task: i64,
        worker: &[u8; 32],
    ) -> Result<Option<TaskWorkerRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM task_workers WHERE task = ?1 AND worker = ?2");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(params![task, &worker[..]], worker_row)
                    .optional()
            })
            .context("reading a task's worker")
    }

    /// Workers still running a live `all`-mode client task, least recently changed first, at
    /// most `limit` (the client checks whether they went silent).
    pub fn live_task_workers(&self, limit: usize) -> Result<Vec<TaskWorkerRow>, StoreError> {
        const CTX: &str = "reading the workers of live tasks";
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("w.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let live = placeholders(2, LIVE_STATES.len());
        let sql = format!(
            "SELECT {cols} FROM task_workers w JOIN tasks t ON t.id = w.task
             WHERE t.side = 'client' AND t.state IN ({live}) AND w.state IN ({live})
             ORDER BY w.updated_at LIMIT ?1"
        );
        let mut values: Vec<rusqlite::types::Value> = vec![self::limit(limit).into()];
        values.extend(LIVE_STATES.iter().map(|s| (*s).to_string().into()));
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(rusqlite::params_from_iter(values), worker_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Live `all`-mode client tasks sent at or before `sent_by` that have workers, every one
    /// of them ended (the task waits for members that have not claimed): `(row id, sent at)`,
    /// the oldest first, at most `limit`.
    pub fn held_all_mode_tasks(
        &self,
        sent_by: i64,
        limit: usize,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        const CTX: &str = "reading the all-mode tasks waiting for claims";
        let live = placeholders(3, LIVE_STATES.len());
        let sql = format!(
            "SELECT t.id, t.created_at FROM tasks t JOIN all_mode_tasks a ON a.task = t.id
             WHERE t.side = 'client' AND t.state IN ({live}) AND t.created_at <= ?1
               AND EXISTS (SELECT 1 FROM task_workers w WHERE w.task = t.id)
               AND NOT EXISTS (SELECT 1 FROM task_workers w
                               WHERE w.task = t.id AND w.state IN ({live}))
             ORDER BY t.created_at, t.id LIMIT ?2"
        );
        let mut values: Vec<rusqlite::types::Value> =
            vec![sent_by.into(), self::limit(limit).into()];
        values.extend(LIVE_STATES.iter().map(|s| (*s).to_string().into()));
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(rusqlite::params_from_iter(values), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }
}

impl Tx<'_> {
    /// Marks client task `task` as `all`-mode.
    pub fn mark_all_mode_task(&mut self, task: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO all_mode_tasks (task) VALUES (?1)")
            .and_then(|mut s| s.execute([task]))
            .context("marking an all-mode task")?;
        Ok(())
    }

    /// Adds member `worker` (its device `device`) to `all`-mode task `task`, `submitted`;
    /// false when it is there already or the task has [`MAX_TASK_WORKERS`].
    pub fn add_task_worker(
        &mut self,
        task: i64,
        worker: &[u8; 32],
        device: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO task_workers
                   (task, worker, device, state, joined_at, updated_at)
                 SELECT ?1, ?2, ?3, 'submitted', ?4, ?4
                 WHERE (SELECT count(*) FROM task_workers WHERE task = ?1) < ?5",
            )
            .and_then(|mut s| {
                s.execute(params![
                    task,
                    &worker[..],
                    &device[..],
                    now,
                    limit(MAX_TASK_WORKERS)
                ])
            })
            .map(|n| n == 1)
            .context("adding a task's worker")
    }

    /// Applies `change` to member `worker` of task `task`.
    pub fn change_task_worker(
        &mut self,
        task: i64,
        worker: &[u8; 32],
        change: &WorkerChange<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let seq = change.seq.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        self.conn
            .prepare_cached(
                "UPDATE task_workers SET state = ?3, last_seq = coalesce(?4, last_seq),
                    message = coalesce(?5, message), reason = coalesce(?6, reason),
                    artifacts = coalesce(?7, artifacts), updated_at = ?8
                 WHERE task = ?1 AND worker = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    task,
                    &worker[..],
                    change.state,
                    seq,
                    change.message,
                    change.reason,
                    change.artifacts,
                    now
                ])
            })
            .context("changing a task's worker")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
