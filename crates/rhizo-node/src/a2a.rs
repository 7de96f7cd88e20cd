//! The A2A 1.0 binding: every remote agent served as an A2A endpoint on the local API, and a
//! local A2A server made reachable over rhizo.
//!
//! ```text
//!  A2A client (any SDK) ── JSON-RPC / SSE ──▶ /a2a/{agent}/        (local API, bearer token)
//!        GET .well-known/agent-card.json ◀── the agent's rhizo card (card::agent_card)
//!        SendMessage ──▶ file parts? AgentBackend::attach_file (a file message to the agent)
//!                    ──▶ AgentBackend::delegate ──▶ rhizo task (MLS) ──▶ the worker's node
//!        SendStreamingMessage / SubscribeToTask ◀── ApiEvent::TaskUpdated (stream::follow)
//!        GetTask / ListTasks / CancelTask ──▶ AgentBackend::task / tasks / cancel_task
//!
//!  worker's node: task_received ──▶ forward (agent.a2a_url) ── SendStreamingMessage ──▶
//!        local A2A server ── SSE status / artifacts ──▶ AgentBackend::update_task ──▶ client
//! ```
//!
//! The binding talks to the node through [`AgentBackend`], the task and card methods of the
//! messaging service, so the JSON-RPC layer is tested against an in-memory backend.
//!
//! Files: `json` (the A2A JSON and its mapping to `rhizo_core::agent`), `rpc` (JSON-RPC
//! dispatch and A2A's error codes), `stream` (SSE of a task's updates), `card` (the A2A
//! agent card), `sse` (a bounded SSE parser), `forward` (the worker side), `backend` (the
//! messaging and file services as the [`AgentBackend`]).
//!
//! A client's file parts (issue 16): a `raw` part too large to travel inline (over
//! `MAX_INLINE_PART_BYTES`) or a `url` part `urn:rhizo:file:HASH` naming a file known here
//! becomes a rhizo file part: the bytes are stored and sent to the agent as a file message
//! (bounded by `files_max_mib` and the storage cap), a known file is named by its file message
//! with the agent (sent to it first if it never was), and the task names that message.

use std::future::Future;

use rhizo_core::agent::{AgentCard, NewTask, Side, Task, TaskMessage, TaskState, TaskUpdateInput};
use tokio::sync::broadcast;

use crate::events::ApiEvent;

mod backend;
pub use backend::NodeAgents;
pub mod card;
pub mod forward;
pub mod json;
pub mod rpc;
pub mod sse;
pub mod stream;

/// The A2A protocol version this binding speaks (`supportedInterfaces[].protocolVersion`,
/// the `A2A-Version` header).
pub const PROTOCOL_VERSION: &str = "1.0";
/// The header A2A clients name their protocol version in.
pub const VERSION_HEADER: &str = "A2A-Version";

/// A remote agent as the binding needs it: who, and its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAgent {
    /// Its UID.
    pub uid: String,
    /// Its contact name, if it is a contact.
    pub name: Option<String>,
    /// Its card.
    pub card: AgentCard,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only this side.
    pub side: Option<Side>,
    /// Only with this peer (UID).
    pub peer: Option<String>,
    /// Only in this state.
    pub state: Option<TaskState>,
    /// Only in this context.
    pub context_id: Option<String>,
    /// Most tasks, newest first.
    pub limit: usize,
}

/// Why the node refused or failed an agent call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No such agent (no card cached or found).
    #[error("unknown agent: {0}")]
    UnknownAgent(String),
    /// No such task.
    #[error("unknown task: {0}")]
    UnknownTask(String),
    /// The request breaks a rule (the message names it).
    #[error("{0}")]
    BadTask(String),
    /// A state change the task's state machine refuses.
    #[error("{0}")]
    BadTransition(String),
    /// The agent cannot take tasks now (circuit breaker open, queue full, blocked).
    #[error("{0}")]
    Unavailable(String),
    /// The node failed.
    #[error("{0}")]
    Internal(String),
}

/// A file an A2A client's part carries in, before the node stores or finds it.
#[derive(Clone, PartialEq, Eq)]
pub enum InboundFile {
    /// Bytes (a `raw` part too large to travel inline): stored, then sent to the agent as a
    /// file message.
    Bytes {
        /// The file's name (the part's `filename`, or one made up).
        name: String,
        /// Its MIME type (the part's `mediaType`, or guessed from the name).
        mime: String,
        /// The content.
        bytes: Vec<u8>,
    },
    /// A file already known here, by content hash (a `url` part `urn:rhizo:file:HASH`).
    Known {
        /// The content hash.
        hash: [u8; 32],
    },
}

impl std::fmt::Debug for InboundFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes { name, mime, bytes } => f
                .debug_struct("Bytes")
                .field("name", name)
                .field("mime", mime)
                .field("len", &bytes.len())
                .finish(),
            Self::Known { hash } => f
                .debug_struct("Known")
                .field("hash", &hex::encode(hash))
                .finish(),
        }
    }
}

/// What the A2A binding needs from the node: the task and card methods of the messaging
/// service (agents-spec.md), behind a trait so the JSON-RPC layer can be tested in memory.
pub trait AgentBackend: Clone + Send + Sync + 'static {
    /// A remote agent by UID or contact name, with its card (`refresh`: fetch it again).
    fn agent(
        &self,
        who: &str,
        refresh: bool,
    ) -> impl Future<Output = Result<RemoteAgent, BackendError>> + Send;
    /// Delegates a task; answers it as stored (`submitted`).
    fn delegate(&self, task: NewTask) -> impl Future<Output = Result<Task, BackendError>> + Send;
    /// One task, either side.
    fn task(&self, id: &str) -> impl Future<Output = Result<Task, BackendError>> + Send;
    /// Tasks, newest first.
    fn tasks(
        &self,
        query: TaskQuery,
    ) -> impl Future<Output = Result<Vec<Task>, BackendError>> + Send;
    /// Asks the worker to cancel a task we delegated.
    fn cancel_task(&self, id: &str) -> impl Future<Output = Result<Task, BackendError>> + Send;
    /// More input for a task we delegated that is `input-required`.
    fn task_input(
        &self,
        id: &str,
        message: TaskMessage,
    ) -> impl Future<Output = Result<Task, BackendError>> + Send;
    /// The worker's update of a task it executes.
    fn update_task(
        &self,
        id: &str,
        update: TaskUpdateInput,
    ) -> impl Future<Output = Result<Task, BackendError>> + Send;
    /// Makes `file` a file of the conversation with agent `to` (its UID, or a group's
    /// address): bytes are stored and sent to it as a file message; a known hash names the
    /// file message with it that carries that content, or sends the file (whole here) to it.
    /// The file message's id, for a task's file part.
    fn attach_file(
        &self,
        to: &str,
        file: InboundFile,
    ) -> impl Future<Output = Result<i64, BackendError>> + Send;
    /// The node's event stream (bounded: a slow reader is told it lagged).
    fn subscribe(&self) -> broadcast::Receiver<ApiEvent>;
}

/// Whether a task in `state` has stopped for now: over, or waiting for its client. An A2A
/// stream ends there.
pub const fn stream_ends_at(state: TaskState) -> bool {
    state.is_terminal() || matches!(state, TaskState::InputRequired | TaskState::AuthRequired)
}

#[cfg(test)]
mod tests;
