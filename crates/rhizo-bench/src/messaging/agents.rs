//! B14 and B15: the agent protocol between two in-process rhizo nodes, each against the plain
//! messaging figure of the same pair in the same run.
//!
//! * **B14**: a task's round trip — `POST /v1/tasks` at alice until her `task_updated` event says
//!   `completed` — with a trivial worker at bob (on `task_received`: claim, then `completed` with
//!   one text artifact). A task takes three envelopes (delegate, working, completed) where a
//!   message takes one, so the target is p50 ≤ 2.5 × B2's message p50, measured on the same
//!   pair right before.
//! * **B15**: tasks per second with 8 in flight (one client, one worker), against B3's 64 B
//!   msg/s on the same pair right before. Target ≥ 0.4.
//!
//! Both run with three workers in turn: the one that claims, then completes (two calls, the
//! first rows); one that goes straight from `submitted` to `completed` (a diagnostic); and one
//! that claims and completes in one call (`POST /v1/agent/tasks/next` with `update`), the
//! documented path of an instant worker, on which the targets are judged.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail};
use futures::StreamExt;
use rhizo_core::agent::{Artifact, NewTask, Part, Task, TaskState, TaskUpdateInput};
use rhizo_node::events::ApiEvent;
use serde::Serialize;
use tokio::{sync::Notify, task::JoinHandle};

use super::{Api, B3_CONCURRENCY, Disk, Pair, let_rate_limit_refill};
use crate::report::{Row, Target};
use crate::{Summary, ms};

/// How long one task may take.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a B15 batch may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// B14's and B15's figures.
#[derive(Debug, Clone, Serialize)]
pub struct AgentResult {
    /// Timed sequential tasks.
    pub tasks: usize,
    /// Task round trip (ms).
    pub round_trip: Summary,
    /// The pair's message send → delivered, same run (ms).
    pub message: Summary,
    /// Tasks in B15's batch.
    pub batch: usize,
    /// Completed tasks per second, 8 in flight.
    pub tasks_per_s: f64,
    /// The pair's 64 B messages per second, 8 in flight, same run.
    pub msgs_per_s: f64,
    /// Diagnostic: the round trip when the worker goes straight to `completed` without
    /// claiming (two envelopes: delegate, completed) (ms).
    pub direct_round_trip: Summary,
    /// Diagnostic: tasks/s, 8 in flight, with that worker.
    pub direct_tasks_per_s: f64,
    /// The round trip when the worker claims and completes in one call (ms).
    pub one_call_round_trip: Summary,
    /// Tasks/s, 8 in flight, with that worker.
    pub one_call_tasks_per_s: f64,
    /// Diagnostic, the straight-to-completed worker's sequential tasks in stages (ms): the
    /// `POST /v1/tasks`; its
    /// return → `task_received` at the worker; that event → the worker's `completed` POST
    /// returned; that → alice's `task_updated` (completed).
    pub direct_stages: [Summary; 4],
    /// Diagnostic: the store writers' work per 64 B message of the reference batch.
    pub writer_per_message: WriterWork,
    /// Diagnostic: the store writers' work per task of the one-call worker's batch.
    pub writer_per_task: WriterWork,
}

/// The store writer threads' jobs and committed transactions per item of a batch, at alice
/// (the sender, the client) and at bob (the recipient, the worker).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriterWork {
    /// Write jobs at alice per item.
    pub alice_jobs: f64,
    /// Commits at alice per item.
    pub alice_commits: f64,
    /// Write jobs at bob per item.
    pub bob_jobs: f64,
    /// Commits at bob per item.
    pub bob_commits: f64,
    /// Durable (fsynced) commits at alice per item.
    pub alice_fsyncs: f64,
    /// Durable (fsynced) commits at bob per item.
    pub bob_fsyncs: f64,
}

/// Both nodes' writer counters (jobs, commits, durable commits) now.
async fn writer_counters(pair: &Pair) -> anyhow::Result<[u64; 6]> {
    let a = pair.alice.api.messaging_stats().await?;
    let b = pair.bob.api.messaging_stats().await?;
    Ok([
        a.db_write_jobs,
        a.db_commits,
        b.db_write_jobs,
        b.db_commits,
        a.db_durable_commits,
        b.db_durable_commits,
    ])
}

impl WriterWork {
    /// The work between two [`writer_counters`] readings, per item of `n`.
    fn between(before: [u64; 6], after: [u64; 6], n: usize) -> Self {
        let per = |k: usize| after[k].saturating_sub(before[k]) as f64 / n.max(1) as f64;
        Self {
            alice_jobs: per(0),
            alice_commits: per(1),
            bob_jobs: per(2),
            bob_commits: per(3),
            alice_fsyncs: per(4),
            bob_fsyncs: per(5),
        }
    }

    /// Diagnostic rows: this work of `what`.
    fn rows(&self, bench: &'static str, what: &str) -> Vec<Row> {
        [
            ("write jobs at alice", self.alice_jobs),
            ("commits at alice", self.alice_commits),
            ("write jobs at bob", self.bob_jobs),
            ("commits at bob", self.bob_commits),
            ("durable commits at alice", self.alice_fsyncs),
            ("durable commits at bob", self.bob_fsyncs),
        ]
        .into_iter()
        .map(|(name, v)| Row::new(bench, format!("diagnostic: {name} per {what}"), v, "n"))
        .collect()
    }
}

impl AgentResult {
    /// The rows of the worker that claims and completes in one call (the targets' path).
    fn one_call_rows(&self) -> Vec<Row> {
        vec![
            Row::new(
                "B14",
                "task delegate → completed p50, worker claims and completes in one call",
                self.one_call_round_trip.p50,
                "ms",
            )
            .reference(
                "message send → delivered p50 (B2, same pair)",
                self.message.p50,
            )
            .target(Target::ratio_at_most(2.5)),
            Row::new(
                "B14",
                "task delegate → completed p99, worker claims and completes in one call",
                self.one_call_round_trip.p99,
                "ms",
            )
            .reference(
                "message send → delivered p99 (B2, same pair)",
                self.message.p99,
            ),
            Row::new(
                "B15",
                "tasks completed, 8 in flight, worker claims and completes in one call",
                self.one_call_tasks_per_s,
                "tasks/s",
            )
            .reference(
                "64 B messages delivered, 8 in flight (B3, same pair)",
                self.msgs_per_s,
            )
            .target(Target::ratio_at_least(0.4)),
        ]
    }

    /// Report rows of `bench`: B14 against the message p50, B15 against B3's rate.
    pub fn rows(&self, bench: &str) -> Vec<Row> {
        let rows = vec![
            Row::new(
                "B14",
                "task delegate → completed p50",
                self.round_trip.p50,
                "ms",
            )
            .reference(
                "message send → delivered p50 (B2, same pair)",
                self.message.p50,
            )
            .target(Target::ratio_at_most(2.5)),
            Row::new(
                "B14",
                "task delegate → completed p99",
                self.round_trip.p99,
                "ms",
            )
            .reference(
                "message send → delivered p99 (B2, same pair)",
                self.message.p99,
            ),
            Row::new(
                "B15",
                "tasks completed, 8 in flight",
                self.tasks_per_s,
                "tasks/s",
            )
            .reference(
                "64 B messages delivered, 8 in flight (B3, same pair)",
                self.msgs_per_s,
            )
            .target(Target::ratio_at_least(0.4)),
            Row::new(
                "B14",
                "diagnostic: worker straight to completed (2 envelopes) p50",
                self.direct_round_trip.p50,
                "ms",
            )
            .reference(
                "message send → delivered p50 (B2, same pair)",
                self.message.p50,
            ),
            Row::new(
                "B15",
                "diagnostic: worker straight to completed, 8 in flight",
                self.direct_tasks_per_s,
                "tasks/s",
            )
            .reference(
                "64 B messages delivered, 8 in flight (B3, same pair)",
                self.msgs_per_s,
            ),
        ];
        let stages = [
            "POST /v1/tasks",
            "→ task_received at the worker",
            "→ worker's completed POST returned",
            "→ completed at the client",
        ];
        let writer = self
            .writer_per_message
            .rows("B15", "64 B message (reference batch)")
            .into_iter()
            .chain(
                self.writer_per_task
                    .rows("B15", "task (one-call worker's batch)"),
            );
        let rows = rows
            .into_iter()
            .chain(self.one_call_rows())
            .chain(writer)
            .chain(stages.iter().zip(&self.direct_stages).map(|(name, s)| {
                Row::new(
                    "B14",
                    format!("diagnostic: straight to completed, stage {name} p50"),
                    s.p50,
                    "ms",
                )
                .reference("that worker's round trip p50", self.direct_round_trip.p50)
            }));
        rows.filter(|r| r.bench == bench).collect()
    }
}

/// B14 and B15 on one warm pair of nodes.
pub async fn run_agents(quick: bool) -> anyhow::Result<AgentResult> {
    super::install_tracing();
    let mut pair = Pair::start(Disk::Tmp).await?;
    let outcome = measure(&mut pair, quick).await;
    pair.shutdown().await;
    outcome
}

async fn measure(pair: &mut Pair, quick: bool) -> anyhow::Result<AgentResult> {
    let (tasks, batch) = if quick { (5, 16) } else { (100, 200) };
    pair.warm_up(if quick { 3 } else { 10 }).await?;
    // Bob serves tasks (a contact's tasks need no card); alice watches them complete.
    let done = Completions::open(&pair.alice.api).await?;
    let message = Summary::of(&pair.sequential(tasks, "b14-ref").await?.total);
    let_rate_limit_refill(batch, quick).await;
    let before = writer_counters(pair).await?;
    let (msgs_per_s, _, _) = pair.pipelined(batch, 64, "b15-ref").await?;
    let writer_per_message = WriterWork::between(before, writer_counters(pair).await?, batch);
    let mut writer_per_task = WriterWork::default();
    let mut figures = Vec::new();
    let mut direct_stages = None;
    for mode in [Mode::Claim, Mode::Direct, Mode::OneCall] {
        let worker = Worker::start(pair.bob.api.clone(), mode).await?;
        let outcome = tasks_on(pair, &done, &worker.stamps, tasks, batch, quick).await;
        worker.stop();
        let (round_trip, rate, stages, work) = outcome?;
        if matches!(mode, Mode::OneCall) {
            writer_per_task = work;
        }
        figures.push((round_trip, rate));
        if matches!(mode, Mode::Direct) {
            direct_stages = Some(stages);
        }
    }
    let [
        (round_trip, tasks_per_s),
        (direct_round_trip, direct_tasks_per_s),
        (one_call_round_trip, one_call_tasks_per_s),
    ] = figures[..]
    else {
        bail!("three worker modes");
    };
    let direct_stages = direct_stages.ok_or_else(|| anyhow!("no stages"))?;
    Ok(AgentResult {
        tasks,
        round_trip,
        message,
        batch,
        tasks_per_s,
        msgs_per_s,
        direct_round_trip,
        direct_tasks_per_s,
        one_call_round_trip,
        one_call_tasks_per_s,
        direct_stages,
        writer_per_message,
        writer_per_task,
    })
}

/// `tasks` sequential round trips (after a warm-up), then `batch` tasks 8 in flight.
async fn tasks_on(
    pair: &Pair,
    done: &Completions,
    stamps: &Stamps,
    tasks: usize,
    batch: usize,
    quick: bool,
) -> anyhow::Result<(Summary, f64, [Summary; 4], WriterWork)> {
    // Warm the agent path (the worker's first claim, the first agent rows).
    for _ in 0..3 {
        delegate_and_wait(&pair.alice.api, done, "warm-up").await?;
    }
    let mut round_trip = Vec::with_capacity(tasks);
    let mut stages: [Vec<f64>; 4] = Default::default();
    for i in 0..tasks {
        let start = Instant::now();
        let task = delegate(&pair.alice.api, &format!("b14 #{i}")).await?;
        let posted = Instant::now();
        let at = done.wait(&task.id).await?;
        round_trip.push(ms(at.saturating_duration_since(start)));
        let stamp = stamps
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .remove(&task.id);
        if let Some((received, Some(completed))) = stamp {
            let points = [start, posted, received, completed, at];
            for (k, w) in points.windows(2).enumerate() {
                stages[k].push(ms(w[1].saturating_duration_since(w[0])));
            }
        }
    }
    let_rate_limit_refill(batch * 3, quick).await;
    let before = writer_counters(pair).await?;
    let rate = pipelined_tasks(&pair.alice.api, done, batch).await?;
    let work = WriterWork::between(before, writer_counters(pair).await?, batch);
    Ok((
        Summary::of(&round_trip),
        rate,
        stages.map(|s| Summary::of(&s)),
        work,
    ))
}

/// Delegates one task to bob; when alice saw it `completed`.
async fn delegate_and_wait(api: &Api, done: &Completions, text: &str) -> anyhow::Result<Instant> {
    let task = delegate(api, text).await?;
    done.wait(&task.id).await
}

async fn delegate(api: &Api, text: &str) -> anyhow::Result<Task> {
    let request = NewTask {
        to: "bob".into(),
        text: Some(text.into()),
        ..NewTask::default()
    };
    api.post("/v1/tasks", &request).await
}

/// `n` tasks with [`B3_CONCURRENCY`] in flight (each delegated, then awaited); tasks/s.
async fn pipelined_tasks(api: &Api, done: &Completions, n: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let finished: Vec<Instant> = tokio::time::timeout(
        BATCH_TIMEOUT,
        futures::stream::iter(0..n)
            .map(|i| async move { delegate_and_wait(api, done, &format!("b15 #{i}")).await })
            .buffer_unordered(B3_CONCURRENCY)
            .collect::<Vec<_>>(),
    )
    .await
    .map_err(|_| anyhow!("B15: {n} tasks did not complete in time"))?
    .into_iter()
    .collect::<anyhow::Result<_>>()?;
    let last = finished.into_iter().max().unwrap_or_else(Instant::now);
    Ok(n as f64 / last.saturating_duration_since(start).as_secs_f64())
}

/// A node's `task_received` / `task_updated` events, read in the background.
struct EventFeed {
    task: JoinHandle<()>,
}

impl EventFeed {
    /// Subscribes to `path` on `api` and calls `on` for each event (the subscription exists
    /// once this returns).
    async fn open(
        api: &Api,
        path: &str,
        mut on: impl FnMut(ApiEvent) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let mut response = api
            .http
            .get(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET {path}: {}", response.status());
        }
        let task = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    if let Some(data) = line.trim_end().strip_prefix("data:")
                        && let Ok(event) = serde_json::from_str::<ApiEvent>(data.trim_start())
                    {
                        on(event);
                    }
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When each of alice's tasks was seen `completed` (a failed task is an error).
struct Completions {
    seen: Arc<Mutex<HashMap<String, Result<Instant, String>>>>,
    changed: Arc<Notify>,
    _feed: EventFeed,
}

impl Completions {
    async fn open(api: &Api) -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let changed = Arc::new(Notify::new());
        let (s, c) = (Arc::clone(&seen), Arc::clone(&changed));
        let feed = EventFeed::open(api, "/v1/events", move |event| {
            let ApiEvent::TaskUpdated {
                task_id, status, ..
            } = event
            else {
                return;
            };
            let outcome = match status.state {
                TaskState::Completed => Ok(Instant::now()),
                s if s.is_terminal() => Err(format!("{s}: {}", status.reason.unwrap_or_default())),
                _ => return,
            };
            if let Ok(mut seen) = s.lock() {
                seen.entry(task_id).or_insert(outcome);
            }
            c.notify_waiters();
        })
        .await?;
        Ok(Self {
            seen,
            changed,
            _feed: feed,
        })
    }

    async fn wait(&self, id: &str) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + TASK_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            let entry = self
                .seen
                .lock()
                .map_err(|_| anyhow!("poisoned"))?
                .remove(id);
            match entry {
                Some(Ok(at)) => return Ok(at),
                Some(Err(why)) => bail!("task {id} ended {why}"),
                None => {}
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .map_err(|_| anyhow!("task {id} not completed in time"))?;
        }
    }
}

/// How the trivial worker answers a task.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Claims it (`working`, one envelope back), then `completed` (another).
    Claim,
    /// Straight from `submitted` to `completed` (one envelope back).
    Direct,
    /// Claims and completes in one call (one envelope back, one durable commit at the worker).
    OneCall,
}

/// Per task id: when the worker heard of it, and when its `completed` POST returned
/// (straight-to-completed worker only).
type Stamps = Arc<Mutex<HashMap<String, (Instant, Option<Instant>)>>>;

/// Bob's trivial worker: completes every task it hears of with one artifact.
struct Worker {
    task: JoinHandle<()>,
    stamps: Stamps,
    _feed: EventFeed,
}

impl Worker {
    async fn start(api: Api, mode: Mode) -> anyhow::Result<Self> {
        let wake = Arc::new(Notify::new());
        let w = Arc::clone(&wake);
        let direct = api.clone();
        let stamps: Stamps = Arc::default();
        let st = Arc::clone(&stamps);
        let feed = EventFeed::open(&api, "/v1/events?agent=1", move |event| {
            let ApiEvent::TaskReceived { task_id, .. } = event else {
                return;
            };
            match mode {
                Mode::Claim => w.notify_one(),
                // One call per task heard of (each claims and completes one); the loop below
                // catches what an event missed.
                Mode::OneCall => {
                    let api = direct.clone();
                    tokio::spawn(async move { claim_and_complete(&api).await });
                }
                Mode::Direct => {
                    let (api, st) = (direct.clone(), Arc::clone(&st));
                    if let Ok(mut map) = st.lock()
                        && map.len() < 100_000
                    {
                        map.insert(task_id.clone(), (Instant::now(), None));
                    }
                    tokio::spawn(async move {
                        let done = complete(&api, &task_id).await;
                        if done.is_ok()
                            && let Ok(mut map) = st.lock()
                            && let Some(entry) = map.get_mut(&task_id)
                        {
                            entry.1 = Some(Instant::now());
                        }
                    });
                }
            }
        })
        .await?;
        if matches!(mode, Mode::Direct) {
            let task = tokio::spawn(std::future::pending());
            return Ok(Self {
                task,
                stamps,
                _feed: feed,
            });
        }
        let task = tokio::spawn(async move {
            let mut claimed: HashSet<String> = HashSet::new();
            loop {
                // A missed wake-up costs at most this long.
                let _ = tokio::time::timeout(Duration::from_millis(200), wake.notified()).await;
                if matches!(mode, Mode::OneCall) {
                    while let Ok(Some(_)) = claim_and_complete(&api).await {}
                    continue;
                }
                while let Ok(Some(task)) = claim(&api).await {
                    if claimed.insert(task.id.clone()) {
                        let api = api.clone();
                        tokio::spawn(async move { complete(&api, &task.id).await });
                    }
                }
            }
        });
        Ok(Self {
            task,
            stamps,
            _feed: feed,
        })
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// The next queued task, now `working` (None when the queue is empty).
async fn claim(api: &Api) -> anyhow::Result<Option<Task>> {
    let (status, body) = api
        .post_raw("/v1/agent/tasks/next", &serde_json::json!({}))
        .await?;
    if status == reqwest::StatusCode::NO_CONTENT || body.trim().is_empty() {
        return Ok(None);
    }
    if !status.is_success() {
        bail!("POST /v1/agent/tasks/next: {status} {body}");
    }
    Ok(Some(serde_json::from_str(&body)?))
}

/// The next queued task, claimed and completed in one call (None when the queue is empty).
async fn claim_and_complete(api: &Api) -> anyhow::Result<Option<Task>> {
    let body = serde_json::json!({ "update": completed() });
    let (status, body) = api.post_raw("/v1/agent/tasks/next", &body).await?;
    if status == reqwest::StatusCode::NO_CONTENT || body.trim().is_empty() {
        return Ok(None);
    }
    if !status.is_success() {
        bail!("POST /v1/agent/tasks/next: {status} {body}");
    }
    Ok(Some(serde_json::from_str(&body)?))
}

async fn complete(api: &Api, id: &str) -> anyhow::Result<Task> {
    api.post(&format!("/v1/agent/tasks/{id}"), &completed())
        .await
}

/// The trivial worker's answer: `completed` with one text artifact.
fn completed() -> TaskUpdateInput {
    TaskUpdateInput {
        state: TaskState::Completed,
        text: None,
        message: None,
        artifacts: vec![Artifact {
            artifact_id: "result".into(),
            name: None,
            description: None,
            parts: vec![Part::text("ok")],
        }],
        reason: None,
    }
}
