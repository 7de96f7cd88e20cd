//! `rhizo agent serve --skill ID --exec CMD`: a tiny worker that makes any command an agent.
//!
//! ```text
//!  /v1/events?agent=1 ──task_received──▶ POST /v1/agent/tasks/next ──Task──▶ sh -c CMD
//!        ▲                                                            stdin: the task's text
//!        └─ task_updated (canceled) ──▶ kill the command      stdout ──▶ artifact, completed
//!                                                              exit ≠ 0 ──▶ failed (last stderr line)
//! ```
//!
//! At most `--concurrency` commands run at once; each one's stdout is capped at
//! [`MAX_OUTPUT_BYTES`] (a bigger result fails clearly instead of growing memory). Ctrl-C or
//! SIGTERM kills the running commands, marks their tasks failed and leaves.

use std::{collections::HashMap, process::Stdio, time::Duration};

use anyhow::{Context, anyhow, bail};
use rhizo_core::agent::{
    AgentCard, AgentLimits, Artifact, MAX_INLINE_PART_BYTES, MAX_REASON_BYTES, Part, Role, Side,
    Task, TaskState, TaskUpdateInput,
};
use rhizo_node::{Config, events::ApiEvent};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    sync::{oneshot, watch},
    task::JoinSet,
};

use crate::{
    api_client::{ApiClient, ApiError, StreamItem},
    cli::ServeArgs,
    cmd::{agent::parse_skill, contacts::urlencode},
};

/// Largest stdout taken as the result: what one inline part carries.
pub(crate) const MAX_OUTPUT_BYTES: usize = MAX_INLINE_PART_BYTES;
/// The end of stderr kept for the failure reason.
const STDERR_TAIL_BYTES: usize = 4096;
/// With no event for this long, look for queued tasks anyway (a safety net for a lost event).
const CLAIM_POLL: Duration = Duration::from_secs(5);
/// How long to wait for stderr to close once the command exited (a grandchild may hold it).
const STDERR_GRACE: Duration = Duration::from_secs(2);
/// The card name when neither `--name` nor an existing card gives one.
const DEFAULT_NAME: &str = "rhizo agent";

/// How one run of the command ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit 0: stdout is the result.
    Completed(Vec<u8>),
    /// The update to post: `failed` with this reason.
    Failed(String),
    /// The task was canceled (or ended elsewhere): the command was killed, nothing to post.
    Abandoned,
}

pub(crate) async fn serve(config: &Config, args: &ServeArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let card = ensure_card(&api, args).await?;
    eprintln!(
        "serving {} as {:?}: `{}` per task, {} at once (Ctrl-C to stop)",
        card.skills
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        card.name,
        args.command,
        args.concurrency
    );
    let mut events = api.events("?agent=1").await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut running: JoinSet<String> = JoinSet::new();
    let mut cancels: HashMap<String, oneshot::Sender<()>> = HashMap::new();
    let shutdown = crate::cmd::shutdown_signal();
    tokio::pin!(shutdown);
    let capacity = usize::try_from(args.concurrency).unwrap_or(1);
    let mut look = true;
    loop {
        while look && running.len() < capacity {
            match claim(&api).await {
                Some(task) => {
                    let (tx, rx) = oneshot::channel();
                    cancels.insert(task.id.clone(), tx);
                    let job = Job {
                        api: api.clone(),
                        command: args.command.clone(),
                        task,
                    };
                    running.spawn(job.run(rx, stop_rx.clone()));
                }
                None => look = false,
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            item = events.next() => match item? {
                Some(StreamItem::Event(event)) => match *event {
                    ApiEvent::TaskReceived { .. } => look = true,
                    ApiEvent::TaskUpdated { task_id, side: Side::Worker, status, .. }
                        if status.state.is_terminal() =>
                    {
                        if let Some(cancel) = cancels.remove(&task_id) {
                            let _ = cancel.send(());
                        }
                    }
                    _ => {}
                },
                Some(StreamItem::Lagged) => look = true,
                None => bail!("the node closed the event stream (was it stopped?)"),
            },
            Some(done) = running.join_next() => {
                if let Ok(id) = done {
                    cancels.remove(&id);
                }
                look = true;
            }
            () = tokio::time::sleep(CLAIM_POLL) => look = true,
        }
    }
    eprintln!(
        "stopping: {} task(s) running are marked failed",
        running.len()
    );
    let _ = stop_tx.send(true);
    while running.join_next().await.is_some() {}
    Ok(())
}

/// Claims the next queued task; `None` when there is none, or on an error (logged: tried again
/// on the next event or tick; a node that is gone ends the event stream).
async fn claim(api: &ApiClient) -> Option<Task> {
    match api
        .post_opt::<Task>("/v1/agent/tasks/next", &serde_json::json!({}))
        .await
    {
        Ok(task) => task,
        Err(e) => {
            eprintln!("claiming a task: {e:#}");
            None
        }
    }
}

/// Puts the skills in the node's card: a new card if it has none, else the present card with
/// the missing skills added (and `--name`, if given). Posts only when something changed.
async fn ensure_card(api: &ApiClient, args: &ServeArgs) -> anyhow::Result<AgentCard> {
    let present = match api.get::<serde_json::Value>("/v1/agent/card").await {
        Ok(value) => Some(
            serde_json::from_value::<AgentCard>(value)
                .context("the node's agent card does not parse")?,
        ),
        Err(e) if ApiError::has_code(&e, "NO_CARD") => None,
        Err(e) => return Err(e),
    };
    let card = merged_card(present.clone(), args.name.as_deref(), &args.skills)?;
    if present.as_ref() != Some(&card) {
        let _: serde_json::Value = api.post("/v1/agent/card", &card).await?;
    }
    Ok(card)
}

/// The card `agent serve` wants: `present` (or a new one named `name`, else
/// [`DEFAULT_NAME`]) with `name` if given and every skill of `skills` it lacks.
pub(crate) fn merged_card(
    present: Option<AgentCard>,
    name: Option<&str>,
    skills: &[String],
) -> anyhow::Result<AgentCard> {
    let mut card = present.unwrap_or_else(|| AgentCard {
        name: DEFAULT_NAME.into(),
        description: String::new(),
        version: String::new(),
        skills: Vec::new(),
        default_input_modes: vec!["text/plain".into()],
        default_output_modes: vec!["text/plain".into()],
        limits: AgentLimits::default(),
    });
    if let Some(name) = name {
        card.name = name.to_string();
    }
    for spec in skills {
        let skill = parse_skill(spec)?;
        if !card.has_skill(&skill.id) {
            card.skills.push(skill);
        }
    }
    card.validate()
        .map_err(|e| anyhow!("the card is not valid: {e}"))?;
    Ok(card)
}

/// The command's stdin: every part of the client's messages, text as it is and data as one
/// JSON line, joined by newlines and ending with one.
pub(crate) fn task_input(task: &Task) -> String {
    let mut text = task
        .history
        .iter()
        .filter(|m| m.role == Role::User)
        .flat_map(|m| m.parts.iter().map(Part::as_text))
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

/// The update an outcome posts (`None`: nothing to post).
pub(crate) fn update_of(outcome: Outcome) -> Option<TaskUpdateInput> {
    let mut update = TaskUpdateInput {
        state: TaskState::Completed,
        text: None,
        message: None,
        artifacts: Vec::new(),
        reason: None,
    };
    match outcome {
        Outcome::Completed(mut stdout) => {
            // Like `$(…)` in a shell: one trailing newline is not part of the result.
            if stdout.last() == Some(&b'\n') {
                stdout.pop();
            }
            let part = match String::from_utf8(stdout) {
                Ok(text) => Part::text(text),
                Err(e) => Part {
                    raw: Some(data_encoding::BASE64.encode(e.as_bytes())),
                    media_type: Some("application/octet-stream".into()),
                    ..Part::default()
                },
            };
            update.artifacts.push(Artifact {
                artifact_id: "stdout".into(),
                name: Some("stdout".into()),
                description: None,
                parts: vec![part],
            });
        }
        Outcome::Failed(reason) => {
            update.state = TaskState::Failed;
            update.reason = Some(bounded_reason(&reason));
        }
        Outcome::Abandoned => return None,
    }
    Some(update)
}

fn bounded_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// One task being worked on.
struct Job {
    api: ApiClient,
    command: String,
    task: Task,
}

impl Job {
    /// Runs the command for the task and posts the result; answers the task id.
    async fn run(self, cancel: oneshot::Receiver<()>, stop: watch::Receiver<bool>) -> String {
        let path = format!("/v1/agent/tasks/{}", urlencode(&self.task.id));
        let working = TaskUpdateInput {
            state: TaskState::Working,
            text: None,
            message: None,
            artifacts: Vec::new(),
            reason: None,
        };
        if let Err(e) = self.api.post::<serde_json::Value>(&path, &working).await {
            eprintln!("task {}: not taken: {e:#}", self.task.id);
            return self.task.id;
        }
        let skill = self.task.skill.clone().unwrap_or_default();
        let outcome = run_command(
            &self.command,
            &[
                ("RHIZO_TASK_ID", &self.task.id),
                ("RHIZO_TASK_SKILL", &skill),
            ],
            task_input(&self.task).into_bytes(),
            cancel,
            stop,
        )
        .await;
        let summary = match &outcome {
            Outcome::Completed(out) => format!("completed ({} bytes)", out.len()),
            Outcome::Failed(reason) => format!("failed: {reason}"),
            Outcome::Abandoned => "canceled".into(),
        };
        eprintln!("task {}: {summary}", self.task.id);
        if let Some(update) = update_of(outcome)
            && let Err(e) = self.api.post::<serde_json::Value>(&path, &update).await
        {
            eprintln!("task {}: the result was not taken: {e:#}", self.task.id);
        }
        self.task.id
    }
}

/// Runs `sh -c command` with `input` on stdin, in its own process group (killed as a whole on
/// cancel or stop).
pub(crate) async fn run_command(
    command: &str,
    env: &[(&str, &str)],
    input: Vec<u8>,
    cancel: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("cannot start the command: {e}")),
    };
    let pid = child.id();
    let outcome = tokio::select! {
        outcome = collect(&mut child, input) => outcome,
        _ = cancel => Outcome::Abandoned,
        _ = stop.wait_for(|s| *s) => Outcome::Failed("the worker stopped (rhizo agent serve was interrupted)".into()),
    };
    if !matches!(outcome, Outcome::Completed(_)) {
        kill_group(pid).await;
        let _ = child.kill().await;
    }
    outcome
}

/// Feeds stdin, reads stdout (bounded) and the end of stderr, waits for the exit.
async fn collect(child: &mut tokio::process::Child, input: Vec<u8>) -> Outcome {
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input closes the pipe early: not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let stderr = child.stderr.take().map(|e| tokio::spawn(read_tail(e)));
    let stdout = match child.stdout.take() {
        Some(out) => read_bounded(out, MAX_OUTPUT_BYTES).await,
        None => Ok(Vec::new()),
    };
    let Ok(stdout) = stdout else {
        return Outcome::Failed(format!(
            "the output is larger than {} KiB, the most a result carries inline",
            MAX_OUTPUT_BYTES / 1024
        ));
    };
    let status = match child.wait().await {
        Ok(status) => status,
        Err(e) => return Outcome::Failed(format!("waiting for the command: {e}")),
    };
    if status.success() {
        return Outcome::Completed(stdout);
    }
    let tail = match stderr {
        Some(handle) => tokio::time::timeout(STDERR_GRACE, handle)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let last = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    Outcome::Failed(last.unwrap_or_else(|| format!("the command ended with {status}")))
}

/// Reads everything, or fails once more than `limit` bytes came.
async fn read_bounded(mut from: impl AsyncRead + Unpin, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            bail!("over {limit} bytes");
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads everything, keeping the last [`STDERR_TAIL_BYTES`].
async fn read_tail(mut from: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    }
    tail
}

/// Kills the command's whole process group (what `sh -c` started too), best effort.
async fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let _ = tokio::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[cfg(test)]
mod tests;
