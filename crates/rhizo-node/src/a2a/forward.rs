//! The worker side (`agent.a2a_url`): each task this node receives is sent to a local A2A
//! server with `SendStreamingMessage`, and what the server streams back (status, messages,
//! artifacts) is relayed to the client with [`AgentBackend::update_task`]. A cancel (or a
//! passed deadline) of the task is sent on as `CancelTask`. An existing A2A agent becomes
//! reachable over rhizo by configuration alone.
//!
//! ```text
//!  task_received ─▶ queue (bounded) ─▶ MAX_FORWARDS jobs ─ POST SendStreamingMessage ─▶ A2A
//!  update_task ◀─ relay (artifacts held until the next status) ◀─ SSE (bounded parser) ◀─┘
//!  task_updated (worker, ended here) ─▶ the job ─ CancelTask ─▶ A2A
//! ```

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rhizo_core::agent::{
    self, MAX_ARTIFACTS, MAX_PARTS, MAX_REASON_BYTES, Role, Side, Task, TaskState, TaskUpdateInput,
};
use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, mpsc, oneshot, watch};
use tracing::{debug, warn};

use super::{
    AgentBackend, BackendError, PROTOCOL_VERSION, TaskQuery, VERSION_HEADER,
    json::{
        Artifact, Message, Role as A2aRole, Status, StreamResponse, artifact_from_a2a,
        message_from_a2a, part_to_a2a,
    },
    sse::{SseError, SseParser},
    stream_ends_at,
};
use crate::events::ApiEvent;

/// Tasks forwarded at once.
pub const MAX_FORWARDS: usize = 4;
/// Received tasks waiting for a forwarding job; more are picked up by the next sweep.
pub const FORWARD_QUEUE: usize = 256;
/// A2A task ids remembered per rhizo task (to send input to an `input-required` task).
const MAX_REMEMBERED: usize = 1024;
/// Bound for connecting to the A2A server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream silent this long (no event, no keep-alive) is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound for a `CancelTask` call.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why forwarding one task failed; the task ends `failed` with this as its reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the A2A server at {url}: {source}")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("the A2A server answered {0}")]
    Refused(String),
    /// The event stream broke its bound or format.
    #[error("the A2A server's event stream: {0}")]
    Stream(#[from] SseError),
    /// The server sent something that is not A2A.
    #[error("the A2A server sent what is not A2A JSON-RPC: {0}")]
    Malformed(String),
    /// The stream ended while the task was still running.
    #[error("the A2A server closed the stream before the task ended")]
    Closed,
}

/// The forwarding service's shared state.
struct Shared<B> {
    backend: B,
    url: String,
    http: reqwest::Client,
    /// The tasks being forwarded, each with the signal that ends it.
    active: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// rhizo task id → the A2A server's task id.
    a2a_ids: Mutex<lru::LruCache<String, String>>,
}

/// Runs the worker side until `stop`: forwards every task received to the A2A server at `url`.
pub async fn run<B: AgentBackend>(backend: B, url: String, mut stop: watch::Receiver<bool>) {
    let http = match reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "cannot start the A2A forwarder");
            return;
        }
    };
    let shared = Arc::new(Shared {
        backend,
        url,
        http,
        active: Mutex::new(HashMap::new()),
        a2a_ids: Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(MAX_REMEMBERED).unwrap_or(NonZeroUsize::MIN),
        )),
    });
    let (queue, rx) = mpsc::channel::<String>(FORWARD_QUEUE);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let jobs: Vec<_> = (0..MAX_FORWARDS)
        .map(|_| tokio::spawn(job_loop(shared.clone(), rx.clone())))
        .collect();
    let mut events = shared.backend.subscribe();
    sweep(&shared, &queue).await;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            event = events.recv() => match event {
                Ok(ApiEvent::TaskReceived { task_id, .. }) => enqueue(&queue, task_id),
                Ok(ApiEvent::TaskUpdated { task_id, side: Side::Worker, status, .. })
                    if status.state.is_terminal() => shared.end(&task_id),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => sweep(&shared, &queue).await,
                Err(RecvError::Closed) => break,
            },
        }
    }
    drop(queue);
    for job in jobs {
        job.abort();
    }
}

fn enqueue(queue: &mpsc::Sender<String>, task_id: String) {
    if queue.try_send(task_id).is_err() {
        warn!("A2A forward queue full: the task waits for the next sweep");
    }
}

/// Queues the tasks that wait for the A2A server (at start, and after missed events).
async fn sweep<B: AgentBackend>(shared: &Shared<B>, queue: &mpsc::Sender<String>) {
    let query = TaskQuery {
        side: Some(Side::Worker),
        state: Some(TaskState::Submitted),
        limit: FORWARD_QUEUE,
        ..TaskQuery::default()
    };
    match shared.backend.tasks(query).await {
        Ok(tasks) => tasks.into_iter().rev().for_each(|t| enqueue(queue, t.id)),
        Err(e) => warn!(error = %e, "cannot list the tasks waiting for the A2A server"),
    }
}

async fn job_loop<B: AgentBackend>(
    shared: Arc<Shared<B>>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<String>>>,
) {
    loop {
        let next = rx.lock().await.recv().await;
        let Some(task_id) = next else { return };
        shared.forward(&task_id).await;
    }
}

/// Removes a task from the active set when its job ends, however it ends.
struct ActiveGuard<'a, B> {
    shared: &'a Shared<B>,
    task_id: String,
}

impl<B> Drop for ActiveGuard<'_, B> {
    fn drop(&mut self) {
        self.shared
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.task_id);
    }
}

impl<B: AgentBackend> Shared<B> {
    /// Ends the job forwarding `task_id`, if one runs (it sends `CancelTask` on).
    fn end(&self, task_id: &str) {
        let signal = self
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task_id);
        if let Some(signal) = signal {
            let _ = signal.send(());
        }
    }

    fn a2a_id(&self, task_id: &str) -> Option<String> {
        self.a2a_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task_id)
            .cloned()
    }

    /// Forwards one task, if it waits for the A2A server: a new task, or new input for one
    /// the server asked input for.
    async fn forward(&self, task_id: &str) {
        let task = match self.backend.task(task_id).await {
            Ok(t) if t.side == Side::Worker => t,
            Ok(_) => return,
            Err(e) => return debug!(error = %e, "task to forward is gone"),
        };
        let a2a_id = match task.status.state {
            TaskState::Submitted => None,
            TaskState::InputRequired | TaskState::AuthRequired
                if task.history.last().is_some_and(|m| m.role == Role::User) =>
            {
                match self.a2a_id(task_id) {
                    Some(id) => Some(id),
                    None => {
                        return self
                            .fail(task_id, "the A2A server's task was forgotten")
                            .await;
                    }
                }
            }
            _ => return,
        };
        let (signal, ended) = oneshot::channel();
        {
            let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
            if active.contains_key(task_id) {
                return;
            }
            active.insert(task_id.to_string(), signal);
        }
        let _guard = ActiveGuard {
            shared: self,
            task_id: task_id.to_string(),
        };
        let mut relay = Relay::new(self, &task, a2a_id);
        if let Err(e) = relay.run(ended).await {
            self.fail(task_id, &e.to_string()).await;
        }
    }

    /// Ends the task `failed` with `reason` (unless it ended meanwhile).
    async fn fail(&self, task_id: &str, reason: &str) {
        warn!(
            task = task_id,
            reason, "forwarding to the A2A server failed"
        );
        let update = TaskUpdateInput {
            state: TaskState::Failed,
            text: None,
            message: None,
            artifacts: Vec::new(),
            reason: Some(truncate(reason, MAX_REASON_BYTES)),
        };
        if let Err(e) = self.backend.update_task(task_id, update).await {
            debug!(error = %e, "the failed task could not be updated");
        }
    }

    /// Best effort: asks the A2A server to cancel its task.
    async fn cancel_remote(&self, a2a_id: &str) {
        let body = json!({
            "jsonrpc": "2.0", "id": a2a_id, "method": "CancelTask", "params": {"id": a2a_id},
        });
        let sent = self
            .http
            .post(&self.url)
            .header(VERSION_HEADER, PROTOCOL_VERSION)
            .timeout(CANCEL_TIMEOUT)
            .json(&body)
            .send()
            .await;
        if let Err(e) = sent {
            debug!(error = %e, "CancelTask to the A2A server failed");
        }
    }
}

/// The `SendStreamingMessage` request for `task`: its newest client message, continuing the
/// server's task `a2a_id` if there is one.
pub fn send_request(task: &Task, a2a_id: Option<&str>) -> Value {
    let last = task.history.iter().rev().find(|m| m.role == Role::User);
    let message = Message {
        message_id: last.map_or_else(super::json::random_id, |m| m.message_id.clone()),
        context_id: None,
        task_id: a2a_id.map(String::from),
        role: A2aRole::User,
        parts: last.map_or_else(Vec::new, |m| m.parts.iter().map(part_to_a2a).collect()),
        metadata: None,
    };
    json!({
        "jsonrpc": "2.0",
        "id": task.id,
        "method": "SendStreamingMessage",
        "params": {
            "message": message,
            "metadata": {"rhizo": {"taskId": task.id, "from": task.peer, "skill": task.skill}},
        },
    })
}

/// One task's forwarding: the request, then the server's events relayed as updates.
struct Relay<'a, B> {
    shared: &'a Shared<B>,
    task_id: String,
    request: Value,
    a2a_id: Option<String>,
    /// Artifacts streamed since the last status, sent with the next one.
    artifacts: Vec<agent::Artifact>,
    /// The task stopped (or ended) here: stop reading.
    stopped: bool,
}

impl<'a, B: AgentBackend> Relay<'a, B> {
    fn new(shared: &'a Shared<B>, task: &Task, a2a_id: Option<String>) -> Self {
        Self {
            shared,
            task_id: task.id.clone(),
            request: send_request(task, a2a_id.as_deref()),
            a2a_id,
            artifacts: Vec::new(),
            stopped: false,
        }
    }

    fn unreachable(&self, source: reqwest::Error) -> ForwardError {
        ForwardError::Unreachable {
            url: self.shared.url.clone(),
            source,
        }
    }

    /// Sends the request and relays the stream until the task stops, the stream ends, or
    /// `ended` fires (the task ended on our side: the server is asked to cancel).
    async fn run(&mut self, mut ended: oneshot::Receiver<()>) -> Result<(), ForwardError> {
        let mut response = self
            .shared
            .http
            .post(&self.shared.url)
            .header(VERSION_HEADER, PROTOCOL_VERSION)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&self.request)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(ForwardError::Refused(format!("HTTP {}", response.status())));
        }
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut parser = SseParser::default();
        let mut plain = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk.map_err(|e| self.unreachable(e))?,
                signal = &mut ended => {
                    // A signal: the task ended here. A dropped sender: it ended at the server.
                    if signal.is_ok()
                        && let Some(id) = &self.a2a_id
                    {
                        self.shared.cancel_remote(id).await;
                    }
                    return Ok(());
                }
            };
            let Some(chunk) = chunk else { break };
            if !is_sse {
                // An answer that is not a stream: a JSON-RPC error, read within the bound.
                plain.extend_from_slice(&chunk);
                if plain.len() > super::sse::MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge(super::sse::MAX_EVENT_BYTES).into());
                }
                continue;
            }
            for event in parser.push(&chunk)? {
                self.event(&event.data).await?;
                if self.stopped {
                    return Ok(());
                }
            }
        }
        if !is_sse {
            self.event(&String::from_utf8_lossy(&plain)).await?;
        }
        if self.stopped {
            Ok(())
        } else {
            Err(ForwardError::Closed)
        }
    }

    /// Handles one JSON-RPC response of the stream.
    async fn event(&mut self, data: &str) -> Result<(), ForwardError> {
        let v: Value =
            serde_json::from_str(data).map_err(|e| ForwardError::Malformed(e.to_string()))?;
        if let Some(error) = v.get("error") {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(ForwardError::Refused(format!("{code}: {message}")));
        }
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        let event: StreamResponse =
            serde_json::from_value(result).map_err(|e| ForwardError::Malformed(e.to_string()))?;
        match event {
            StreamResponse::Task(t) => {
                // A continued task's snapshot repeats the artifacts already relayed.
                if self.a2a_id.is_none() {
                    self.hold(t.artifacts.iter());
                }
                self.remember(&t.id);
                self.status(&t.status).await;
            }
            StreamResponse::StatusUpdate(s) => {
                self.remember(&s.task_id);
                self.status(&s.status).await;
            }
            StreamResponse::ArtifactUpdate(a) => {
                self.remember(&a.task_id);
                if a.append
                    && let Some(last) = self
                        .artifacts
                        .last_mut()
                        .filter(|l| l.artifact_id == a.artifact.artifact_id)
                    && let Ok(more) = artifact_from_a2a(&a.artifact)
                    && last.parts.len() + more.parts.len() <= MAX_PARTS
                {
                    last.parts.extend(more.parts);
                } else {
                    self.hold(std::iter::once(&a.artifact));
                }
                if self.artifacts.len() >= MAX_ARTIFACTS {
                    self.send(TaskState::Working, None, None).await;
                }
            }
            StreamResponse::Message(m) => self.answered(&m).await,
        }
        Ok(())
    }

    fn remember(&mut self, a2a_id: &str) {
        if self.a2a_id.is_none() && !a2a_id.is_empty() {
            self.a2a_id = Some(a2a_id.to_string());
            self.shared
                .a2a_ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .put(self.task_id.clone(), a2a_id.to_string());
        }
    }

    fn hold<'x>(&mut self, artifacts: impl Iterator<Item = &'x Artifact>) {
        for a in artifacts {
            match artifact_from_a2a(a) {
                Ok(a) => self.artifacts.push(a),
                Err(e) => warn!(error = %e, "an artifact of the A2A server is not carried"),
            }
        }
    }

    /// Relays a status of the server's task (`submitted` is where the task already is).
    async fn status(&mut self, status: &Status) {
        let Some(state) = status.state.to_rhizo() else {
            return;
        };
        if state == TaskState::Submitted {
            return;
        }
        let message = status
            .message
            .as_ref()
            .and_then(|m| message_from_a2a(m, Role::Agent).ok());
        let reason = matches!(
            state,
            TaskState::Failed | TaskState::Rejected | TaskState::Canceled
        )
        .then(|| {
            message
                .as_ref()
                .map(|m| truncate(&m.joined_text(), MAX_REASON_BYTES))
        })
        .flatten();
        self.send(state, message, reason).await;
    }

    /// The server answered with a message and no task: the task is done, the message is its
    /// result.
    async fn answered(&mut self, m: &Message) {
        match message_from_a2a(m, Role::Agent) {
            Ok(message) => {
                self.artifacts.push(agent::Artifact {
                    artifact_id: message.message_id.clone(),
                    name: None,
                    description: None,
                    parts: message.parts.clone(),
                });
                self.send(TaskState::Completed, Some(message), None).await;
            }
            Err(e) => {
                let reason = format!("the A2A server's answer is not carried: {e}");
                self.send(TaskState::Failed, None, Some(reason)).await;
            }
        }
    }

    /// Sends one update with the held artifacts.
    async fn send(
        &mut self,
        state: TaskState,
        message: Option<agent::TaskMessage>,
        reason: Option<String>,
    ) {
        if stream_ends_at(state) {
            self.stopped = true;
            // Ended by the server: no cancel to send on when our own update comes back.
            if state.is_terminal() {
                self.shared
                    .active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&self.task_id);
            }
        }
        let update = TaskUpdateInput {
            state,
            text: None,
            message,
            artifacts: std::mem::take(&mut self.artifacts),
            reason,
        };
        match self.shared.backend.update_task(&self.task_id, update).await {
            Ok(_) => {}
            Err(BackendError::BadTransition(e)) => {
                // The task ended here meanwhile (canceled, deadline): nothing more to relay.
                debug!(task = %self.task_id, error = %e, "relay stops");
                self.stopped = true;
            }
            Err(e) => warn!(task = %self.task_id, error = %e, "cannot relay an A2A update"),
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
