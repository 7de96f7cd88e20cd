//! Wake on task: the node runs even when the agent program does not. When a task or a
//! `wake_up` arrives and no agent program is attached, the node starts the configured
//! `agent.wake_command` (like inetd or systemd socket activation), supervises it, and restarts
//! it with backoff (1 s doubling to 60 s) while work is pending. Its output goes to
//! `<data_dir>/agent-wake.log`, bounded (one rotation to `agent-wake.log.1`). It is killed when
//! the node stops.
//!
//! "Attached" ([`AgentPresence`]): an `/v1/events?agent=1` stream is open, or the worker API
//! (`/v1/agent/tasks*`, `/v1/agent/heartbeat`) was called in the last [`ATTACHED_FOR_MS`], or
//! an A2A server (`agent.a2a_url`) takes the tasks.
//!
//! ```text
//!  events: task_received / wake_up ─▶ attached? ── yes ─▶ nothing
//!                                        └─ no ─▶ running? ── no ─▶ spawn wake_command
//!  child exits ─▶ work pending (queued tasks, or a trigger during the run)?
//!                  ── yes, not attached ─▶ restart after backoff (×2, ≤ 60 s)
//!                  ── no ─▶ backoff back to 1 s, wait for the next trigger
//! ```

use std::{
    future::Future,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
    sync::{Mutex, broadcast, watch},
};
use tracing::{info, warn};

use crate::{clock::SharedClock, events::ApiEvent};

/// How long a call of the worker API counts as an attached agent program.
pub const ATTACHED_FOR_MS: i64 = 15_000;
/// The first restart delay of the wake command.
pub const WAKE_FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest restart delay of the wake command.
pub const WAKE_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The wake command's log is rotated beyond this size (one old copy is kept).
pub const MAX_WAKE_LOG_BYTES: u64 = 1024 * 1024;
/// The wake log's file name in the data dir.
pub const WAKE_LOG_FILE: &str = "agent-wake.log";
/// Bytes read from the child's output at once.
const LOG_CHUNK: usize = 8 * 1024;

/// Whether an agent program is attached to this node (see the module doc).
#[derive(Debug)]
pub struct AgentPresence {
    clock: SharedClock,
    /// When the worker API was last called (unix ms; `i64::MIN`: never).
    last_call: AtomicI64,
    /// Open `/v1/events?agent=1` streams.
    streams: AtomicUsize,
    /// An A2A server takes the tasks (`agent.a2a_url`).
    a2a: bool,
}

/// Held while an `/v1/events?agent=1` stream is open.
#[derive(Debug)]
pub struct AgentStream(Arc<AgentPresence>);

impl Drop for AgentStream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AgentPresence {
    /// Nobody attached yet; `a2a`: an A2A server is configured (always attached).
    pub fn new(clock: SharedClock, a2a: bool) -> Self {
        Self {
            clock,
            last_call: AtomicI64::new(i64::MIN),
            streams: AtomicUsize::new(0),
            a2a,
        }
    }

    /// The worker API was called now (the handlers of `/v1/agent/tasks*` call it).
    pub fn touch(&self) {
        self.last_call.store(self.clock.now_ms(), Ordering::Relaxed);
    }

    /// When (unix ms) the worker API was last called, if ever.
    pub fn last_call_ms(&self) -> Option<i64> {
        let last = self.last_call.load(Ordering::Relaxed);
        (last != i64::MIN).then_some(last)
    }

    /// An `/v1/events?agent=1` stream opened; attached until the guard is dropped.
    pub fn stream_opened(self: &Arc<Self>) -> AgentStream {
        self.streams.fetch_add(1, Ordering::Relaxed);
        AgentStream(Arc::clone(self))
    }

    /// Whether an agent program is attached now.
    pub fn is_attached(&self) -> bool {
        let last = self.last_call.load(Ordering::Relaxed);
        self.a2a
            || self.streams.load(Ordering::Relaxed) > 0
            || (last != i64::MIN && self.clock.now_ms().saturating_sub(last) <= ATTACHED_FOR_MS)
    }
}

/// What the supervisor runs and where its output goes.
#[derive(Debug, Clone)]
pub struct WakeSettings {
    /// The program and its arguments (not empty).
    pub command: Vec<String>,
    /// The log file.
    pub log: PathBuf,
    /// Its bound before rotation.
    pub max_log_bytes: u64,
}

/// Counts the supervisor reports (for the node's logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WakeCounts {
    /// Triggers handled (task_received / wake_up events).
    pub triggers: u64,
    /// Times the command was started.
    pub starts: u64,
    /// Times it exited (or could not start).
    pub exits: u64,
}

/// Runs the wake-command supervisor until `stop` fires: triggers come from `events`;
/// `pending()` says whether work is still queued when the command exits. `counts` follows what
/// happened.
pub async fn supervise<P, F>(
    settings: WakeSettings,
    presence: Arc<AgentPresence>,
    mut events: broadcast::Receiver<ApiEvent>,
    pending: P,
    counts: watch::Sender<WakeCounts>,
    mut stop: watch::Receiver<bool>,
) where
    P: Fn() -> F,
    F: Future<Output = bool>,
{
    let mut child: Option<Child> = None;
    let mut backoff = WAKE_FIRST_BACKOFF;
    let mut restart_at: Option<tokio::time::Instant> = None;
    // A trigger arrived while the command ran: work it may not have seen.
    let mut triggered_during_run = false;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            event = events.recv() => {
                let trigger = match event {
                    Ok(ApiEvent::TaskReceived { .. } | ApiEvent::WakeUp { .. }) => true,
                    // Missed events may have held a task.
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Ok(_) => false,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !trigger {
                    continue;
                }
                if child.is_some() {
                    triggered_during_run = true;
                } else if restart_at.is_none() && !presence.is_attached() {
                    child = start(&settings, &counts);
                    triggered_during_run = false;
                }
                counts.send_modify(|c| c.triggers += 1);
            }
            status = wait(&mut child), if child.is_some() => {
                child = None;
                counts.send_modify(|c| c.exits += 1);
                info!(?status, "the wake command exited");
                if (triggered_during_run || pending().await) && !presence.is_attached() {
                    restart_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(WAKE_MAX_BACKOFF);
                } else {
                    backoff = WAKE_FIRST_BACKOFF;
                }
                triggered_during_run = false;
            }
            () = sleep_until(restart_at), if restart_at.is_some() => {
                restart_at = None;
                if !presence.is_attached() {
                    child = start(&settings, &counts);
                }
            }
        }
    }
    if let Some(mut c) = child {
        // Killed with the node; `kill_on_drop` covers a panic on the way.
        let _ = c.kill().await;
    }
}

async fn wait(child: &mut Option<Child>) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts the command with its output piped into the bounded log; `None` if it cannot start
/// (counted as an exit: the next trigger tries again).
fn start(settings: &WakeSettings, counts: &watch::Sender<WakeCounts>) -> Option<Child> {
    let (program, args) = settings.command.split_first()?;
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    counts.send_modify(|c| c.starts += 1);
    match spawned {
        Ok(mut child) => {
            info!(program, "started the wake command");
            let log = Arc::new(Mutex::new(BoundedLog::new(
                settings.log.clone(),
                settings.max_log_bytes,
            )));
            if let Some(out) = child.stdout.take() {
                tokio::spawn(copy_to_log(out, Arc::clone(&log)));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(copy_to_log(err, log));
            }
            Some(child)
        }
        Err(e) => {
            warn!(program, error = %e, "cannot start the wake command");
            counts.send_modify(|c| c.exits += 1);
            None
        }
    }
}

/// Copies a child's output into the log until it closes.
async fn copy_to_log(mut from: impl AsyncRead + Unpin, log: Arc<Mutex<BoundedLog>>) {
    let mut buf = vec![0u8; LOG_CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Err(e) = log.lock().await.write(&buf[..n]).await {
                    warn!(error = %e, "cannot write the wake command's log");
                    return;
                }
            }
        }
    }
}

/// A log file rotated to `<name>.1` when it would grow past its bound.
#[derive(Debug)]
struct BoundedLog {
    path: PathBuf,
    max: u64,
}

impl BoundedLog {
    fn new(path: PathBuf, max: u64) -> Self {
        Self { path, max }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = tokio::fs::metadata(&self.path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if len.saturating_add(bytes.len() as u64) > self.max {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            tokio::fs::rename(&self.path, &old).await.or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
        let keep = usize::try_from(self.max).unwrap_or(usize::MAX);
        let bytes = &bytes[bytes.len().saturating_sub(keep)..];
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        file.write_all(bytes).await
    }
}

#[cfg(test)]
mod tests;
