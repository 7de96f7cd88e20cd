//! The SSE stream of one task's updates (`SendStreamingMessage`, `SubscribeToTask`).
//!
//! The first event is the task as it is; then each `task_updated` event of the node for that
//! task becomes its artifact updates followed by a status update, until the task ends or stops
//! (`input-required`, `auth-required`), where the stream closes. The node's event channel is
//! bounded: a stream that lags re-reads the task and sends it whole. Keep-alive comments flow
//! while the task waits.

use std::{collections::HashSet, convert::Infallible, time::Duration};

use axum::response::{
    IntoResponse, Response,
    sse::{Event, KeepAlive, Sse},
};
use rhizo_core::agent::{Side, Task};
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{
    AgentBackend,
    json::{
        ArtifactUpdate, State, StatusUpdate, StreamResponse, artifact_to_a2a, status_to_a2a,
        task_to_a2a,
    },
    rpc::{self, RpcError},
    stream_ends_at,
};
use crate::events::ApiEvent;

/// Interval of the SSE keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Most artifact ids remembered to skip repeats (a task snapshot and the update after it can
/// carry the same artifact); beyond it repeats are sent again, which A2A clients tolerate.
const MAX_SEEN_ARTIFACTS: usize = 256;

/// Where one stream is.
struct Follow<B> {
    backend: B,
    rx: broadcast::Receiver<ApiEvent>,
    task_id: String,
    context_id: String,
    rpc_id: Value,
    /// Events decided but not sent yet.
    pending: std::collections::VecDeque<Value>,
    /// The last state sent.
    state: State,
    seen_artifacts: HashSet<String>,
    /// The stream closes once `pending` is empty.
    done: bool,
}

/// The SSE response following `task`, the events from `rx` (subscribed before the task was
/// read or started, so nothing is missed), each a JSON-RPC response with id `rpc_id`.
pub fn follow<B: AgentBackend>(
    backend: B,
    rx: broadcast::Receiver<ApiEvent>,
    task: Task,
    rpc_id: Value,
) -> Response {
    let mut follow = Follow {
        backend,
        rx,
        task_id: task.id.clone(),
        context_id: task.context_id.clone(),
        rpc_id,
        pending: std::collections::VecDeque::new(),
        state: task.status.state.into(),
        seen_artifacts: HashSet::new(),
        done: false,
    };
    follow.snapshot(&task);
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let next = f.next().await?;
        Some((
            Ok::<_, Infallible>(Event::default().data(next.to_string())),
            f,
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

impl<B: AgentBackend> Follow<B> {
    fn push(&mut self, event: StreamResponse) {
        match serde_json::to_value(&event) {
            Ok(v) => self.pending.push_back(rpc::success(&self.rpc_id, v)),
            Err(e) => self.fail(&RpcError::Internal(format!("cannot encode an update: {e}"))),
        }
    }

    fn fail(&mut self, e: &RpcError) {
        self.pending.push_back(rpc::failure(&self.rpc_id, e));
        self.done = true;
    }

    /// Sends the task whole.
    fn snapshot(&mut self, task: &Task) {
        self.seen_artifacts
            .extend(task.artifacts.iter().map(|a| a.artifact_id.clone()));
        self.state = task.status.state.into();
        self.push(StreamResponse::Task(task_to_a2a(task, None)));
        self.done |= stream_ends_at(task.status.state);
    }

    /// The next event to send; `None` closes the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Some(v);
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Ok(ApiEvent::TaskUpdated {
                    task_id,
                    side: Side::Client,
                    status,
                    new_artifacts,
                    ..
                }) if task_id == self.task_id => {
                    for a in &new_artifacts {
                        if self.seen_artifacts.len() < MAX_SEEN_ARTIFACTS
                            && !self.seen_artifacts.insert(a.artifact_id.clone())
                        {
                            continue;
                        }
                        self.push(StreamResponse::ArtifactUpdate(ArtifactUpdate {
                            task_id: self.task_id.clone(),
                            context_id: self.context_id.clone(),
                            artifact: artifact_to_a2a(a),
                            append: false,
                            last_chunk: true,
                        }));
                    }
                    let state = State::from(status.state);
                    let says_more = status.message.is_some() || status.reason.is_some();
                    if state != self.state || says_more || new_artifacts.is_empty() {
                        self.state = state;
                        self.push(StreamResponse::StatusUpdate(StatusUpdate {
                            task_id: self.task_id.clone(),
                            context_id: self.context_id.clone(),
                            status: status_to_a2a(&status, &self.task_id, &self.context_id),
                        }));
                    }
                    self.done |= stream_ends_at(status.state);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => match self.backend.task(&self.task_id).await {
                    Ok(task) => self.snapshot(&task),
                    Err(e) => self.fail(&e.into()),
                },
                Err(RecvError::Closed) => {
                    self.fail(&RpcError::Internal("the node is shutting down".into()));
                }
            }
        }
    }
}
