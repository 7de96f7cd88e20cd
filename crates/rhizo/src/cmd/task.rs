//! `rhizo task send|list|show|cancel|input`: delegate tasks to agents and follow them.
//!
//! Arguments are checked before any request is made: `--data` must be JSON, `--priority` one
//! of the four, `--deadline` a duration (`30s`, `5m`, `2h`, `1d`) or an RFC 3339 time in the
//! future, and the whole request passes [`NewTask::validate`].

use std::time::Duration;

use anyhow::{anyhow, bail};
use rhizo_core::agent::{NewTask, Priority, Task, TaskId, TaskMode, TaskState};
use rhizo_node::{Config, events::ApiEvent};
use serde_json::json;

use crate::{
    api_client::{ApiClient, StreamItem},
    cli::{TaskCommand, TaskListArgs, TaskSendArgs},
    cmd::contacts::urlencode,
};

/// How long a relative deadline may reach: a week, like the mailbox's longest TTL.
const MAX_RELATIVE_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);
/// With no event for this long, `--wait` re-reads the task (a safety net, not a timeout).
const WAIT_POLL: Duration = Duration::from_secs(10);

/// `--deadline`: relative to when the task is sent, or an absolute time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// From now.
    In(Duration),
    /// Unix milliseconds.
    At(i64),
}

impl Deadline {
    /// Unix milliseconds, given the time now.
    pub(crate) fn resolve(self, now_ms: i64) -> anyhow::Result<i64> {
        let at = match self {
            Self::In(d) => now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Self::At(at) => at,
        };
        if at <= now_ms {
            bail!("the deadline is in the past");
        }
        Ok(at)
    }
}

/// Parses `--data`.
pub(crate) fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
}

/// Parses `--priority`.
pub(crate) fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse::<Priority>()
        .map_err(|_| "must be low, normal, high or urgent".to_string())
}

/// Parses `--deadline`: `30s`, `5m`, `2h`, `1d`, or an RFC 3339 time (`2026-12-07T10:00:00Z`).
pub(crate) fn parse_deadline(s: &str) -> Result<Deadline, String> {
    let s = s.trim();
    let unit = s.chars().last().ok_or("empty deadline")?;
    let scale = match unit {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(24 * 3600),
        _ => None,
    };
    if let Some(scale) = scale
        && let Ok(n) = s[..s.len() - 1].parse::<u64>()
    {
        let d = Duration::from_secs(n.saturating_mul(scale));
        if d.is_zero() || d > MAX_RELATIVE_DEADLINE {
            return Err("a relative deadline is 1s to 7d".into());
        }
        return Ok(Deadline::In(d));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Deadline::At(t.timestamp_millis()))
        .map_err(|_| {
            "must be a duration (30s, 5m, 2h, 1d) or an RFC 3339 time (2026-12-07T10:00:00Z)"
                .to_string()
        })
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) async fn run(config: &Config, command: &TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Send(args) => send(config, args).await,
        TaskCommand::List(args) => list(&ApiClient::connect(config)?, args).await,
        TaskCommand::Show { id, json } => {
            let id = checked_id(id)?;
            let task = get(&ApiClient::connect(config)?, &id).await?;
            print_task(&task, *json)
        }
        TaskCommand::Cancel { id } => {
            let id = checked_id(id)?;
            let task: Task = ApiClient::connect(config)?
                .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
                .await?;
            if task.status.state == TaskState::Canceled {
                println!("task {} canceled", task.id);
            } else {
                println!(
                    "task {}: cancel sent to the worker (state now {})",
                    task.id, task.status.state
                );
            }
            Ok(())
        }
        TaskCommand::Input { id, text } => {
            let id = checked_id(id)?;
            let task: Task = ApiClient::connect(config)?
                .post(&format!("/v1/tasks/{id}/input"), &json!({ "text": text }))
                .await?;
            println!("task {}: input sent (state {})", task.id, task.status.state);
            Ok(())
        }
    }
}

/// A task id as typed: 32 hex digits (normalised to lowercase).
pub(crate) fn checked_id(id: &str) -> anyhow::Result<String> {
    id.trim()
        .parse::<TaskId>()
        .map(|id| id.to_string())
        .map_err(|e| anyhow!("{id:?}: {e}"))
}

/// The request `rhizo task send` makes, checked.
pub(crate) fn new_task(args: &TaskSendArgs, now_ms: i64) -> anyhow::Result<NewTask> {
    let task = NewTask {
        to: args.agent.clone(),
        text: Some(args.text.clone()),
        data: args.data.clone(),
        skill: args.skill.clone(),
        priority: args.priority,
        deadline: args.deadline.map(|d| d.resolve(now_ms)).transpose()?,
        mode: if args.all {
            TaskMode::All
        } else {
            TaskMode::Any
        },
        ..NewTask::default()
    };
    task.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(task)
}

async fn send(config: &Config, args: &TaskSendArgs) -> anyhow::Result<()> {
    let request = new_task(args, now_ms())?;
    let api = ApiClient::connect(config)?;
    if !args.wait {
        let task: Task = api.post("/v1/tasks", &request).await?;
        return if args.json {
            print_task(&task, true)
        } else {
            println!("{}", task.id);
            Ok(())
        };
    }
    let task = delegate_and_wait(&api, &request, None, |task| {
        eprintln!("task {}: {}", task.id, describe_status(task));
    })
    .await?;
    if args.json {
        return print_task(&task, true);
    }
    match task.status.state {
        TaskState::Completed => {
            print_artifacts(&task);
            Ok(())
        }
        state => bail!(
            "task {} ended {state}{}",
            task.id,
            task.status
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
    }
}

/// Delegates `request` and follows `/v1/events` until the task ends (or `limit` passes: then
/// the task as it is). `progress` sees each new state.
pub(crate) async fn delegate_and_wait(
    api: &ApiClient,
    request: &NewTask,
    limit: Option<Duration>,
    mut progress: impl FnMut(&Task),
) -> anyhow::Result<Task> {
    // Subscribe first, so no update between the POST and the subscription is missed.
    let mut events = api.events("").await?;
    let mut task: Task = api.post("/v1/tasks", request).await?;
    progress(&task);
    let give_up = limit.map(|l| tokio::time::Instant::now() + l);
    while !task.status.state.is_terminal() {
        let wait = give_up.map_or(WAIT_POLL, |g| {
            WAIT_POLL.min(g.saturating_duration_since(tokio::time::Instant::now()))
        });
        let changed = match tokio::time::timeout(wait, events.next()).await {
            Ok(Ok(Some(StreamItem::Event(event)))) => {
                matches!(*event, ApiEvent::TaskUpdated { ref task_id, .. } if *task_id == task.id)
            }
            Ok(Ok(Some(StreamItem::Lagged))) | Err(_) => true,
            Ok(Ok(None)) => bail!("the node closed the event stream"),
            Ok(Err(e)) => return Err(e),
        };
        if changed {
            let now = get(api, &task.id).await?;
            if now.status_history.len() != task.status_history.len() {
                progress(&now);
            }
            task = now;
        }
        if give_up.is_some_and(|g| tokio::time::Instant::now() >= g) {
            break;
        }
    }
    Ok(task)
}

async fn get(api: &ApiClient, id: &str) -> anyhow::Result<Task> {
    api.get(&format!("/v1/tasks/{}", urlencode(id))).await
}

async fn list(api: &ApiClient, args: &TaskListArgs) -> anyhow::Result<()> {
    let mut path = format!("/v1/tasks?limit={}", args.limit);
    if let Some(side) = &args.side {
        path.push_str(&format!("&side={side}"));
    }
    if let Some(state) = &args.state {
        let state: TaskState = state
            .parse()
            .map_err(|_| anyhow!("--state: unknown task state {state:?}"))?;
        path.push_str(&format!("&state={state}"));
    }
    if let Some(peer) = &args.peer {
        path.push_str(&format!("&peer={}", urlencode(peer)));
    }
    let tasks: Vec<Task> = api.get(&path).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(());
    }
    if tasks.is_empty() {
        println!("No tasks.");
        return Ok(());
    }
    println!(
        "{:<32}  {:<6}  {:<20}  {:<14}  SKILL",
        "ID", "SIDE", "PEER", "STATE"
    );
    for t in &tasks {
        println!(
            "{:<32}  {:<6}  {:<20}  {:<14}  {}",
            t.id,
            t.side.as_str(),
            short_peer(t),
            t.status.state.as_str(),
            t.skill.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn short_peer(t: &Task) -> String {
    t.peer_name.clone().unwrap_or_else(|| {
        let mut p = t.peer.clone();
        if p.len() > 20 {
            p.truncate(16);
            p.push('…');
        }
        p
    })
}

/// `working`, `failed: deadline passed`, …
pub(crate) fn describe_status(task: &Task) -> String {
    match &task.status.reason {
        Some(reason) => format!("{}: {reason}", task.status.state),
        None => task.status.state.to_string(),
    }
}

fn print_task(task: &Task, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(task)?);
        return Ok(());
    }
    println!("task {}", task.id);
    println!("  {} side, peer {}", task.side.as_str(), short_peer(task));
    if let Some(skill) = &task.skill {
        println!("  skill {skill}");
    }
    println!("  priority {}", task.priority.as_str());
    println!("  state {}", describe_status(task));
    for s in &task.status_history {
        println!("    {} {}", crate::cmd::chat::time_of(s.timestamp), s.state);
    }
    for m in &task.history {
        println!("  {:?}: {}", m.role, m.joined_text());
    }
    if !task.artifacts.is_empty() || !task.workers.is_empty() {
        println!("  artifacts:");
        print_artifacts(task);
    }
    Ok(())
}

/// Each artifact's parts: text as it is, data as JSON, bytes as a note; an `all` task's
/// per worker, each under a line naming the worker and its state.
fn print_artifacts(task: &Task) {
    print_parts(&task.artifacts);
    for w in &task.workers {
        match &w.reason {
            Some(reason) => println!("worker {}: {}: {reason}", w.worker, w.state),
            None => println!("worker {}: {}", w.worker, w.state),
        }
        print_parts(&w.artifacts);
    }
}

fn print_parts(artifacts: &[rhizo_core::agent::Artifact]) {
    for a in artifacts {
        for p in &a.parts {
            println!("{}", p.as_text());
        }
    }
}

#[cfg(test)]
mod tests;
