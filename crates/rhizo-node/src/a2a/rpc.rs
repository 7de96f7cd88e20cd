//! JSON-RPC 2.0 dispatch of A2A's methods (`POST /a2a/{agent}/`), and A2A's error codes.
//!
//! Every answer is HTTP 200 with a JSON-RPC response, as a2a-sdk's server does; the two
//! streaming methods answer `text/event-stream` whose events each carry one JSON-RPC response
//! (see [`super::stream`]).

use std::time::Duration;

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use rhizo_core::agent::{Role, Side, Task, TaskState};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{
    AgentBackend, BackendError, TaskQuery,
    json::{
        ListParams, MapError, Message, SendRequest, TaskIdParams, inbound_files,
        message_with_files, new_task_from_send, task_to_a2a,
    },
    stream, stream_ends_at,
};
use crate::events::ApiEvent;

/// How long a blocking `SendMessage` waits for its task to end or stop before it answers the
/// task as it is (A2A allows an unfinished task; `GetTask` or `SubscribeToTask` follow it).
pub const SEND_WAIT: Duration = Duration::from_secs(60);
/// `ListTasks` page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest `ListTasks` page.
pub const MAX_PAGE_SIZE: usize = 100;

/// An A2A / JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// -32700: the body is not JSON.
    #[error("invalid JSON: {0}")]
    Parse(String),
    /// -32600: not a JSON-RPC 2.0 request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// -32601.
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// -32602: the params break a rule (the message names it).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// -32603: the node failed, or the agent cannot take tasks now.
    #[error("{0}")]
    Internal(String),
    /// -32001.
    #[error("task not found: {0}")]
    TaskNotFound(String),
    /// -32002.
    #[error("task cannot be canceled: {0}")]
    TaskNotCancelable(String),
    /// -32003.
    #[error("push notifications are not supported: follow a task with SubscribeToTask")]
    PushNotSupported,
    /// -32004.
    #[error("unsupported operation: {0}")]
    Unsupported(String),
    /// -32007.
    #[error("this agent has no extended card")]
    NoExtendedCard,
    /// -32009.
    #[error("A2A version {0} is not supported: this binding speaks 1.0")]
    Version(String),
}

impl RpcError {
    /// The JSON-RPC error code.
    pub const fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => -32700,
            Self::InvalidRequest(_) => -32600,
            Self::MethodNotFound(_) => -32601,
            Self::InvalidParams(_) => -32602,
            Self::Internal(_) => -32603,
            Self::TaskNotFound(_) => -32001,
            Self::TaskNotCancelable(_) => -32002,
            Self::PushNotSupported => -32003,
            Self::Unsupported(_) => -32004,
            Self::NoExtendedCard => -32007,
            Self::Version(_) => -32009,
        }
    }

    /// A2A's reason string (`google.rpc.ErrorInfo.reason`).
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Parse(_) => "JSON_PARSE_ERROR",
            Self::InvalidRequest(_) => "INVALID_REQUEST",
            Self::MethodNotFound(_) => "METHOD_NOT_FOUND",
            Self::InvalidParams(_) => "INVALID_PARAMS",
            Self::Internal(_) => "INTERNAL_ERROR",
            Self::TaskNotFound(_) => "TASK_NOT_FOUND",
            Self::TaskNotCancelable(_) => "TASK_NOT_CANCELABLE",
            Self::PushNotSupported => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            Self::Unsupported(_) => "UNSUPPORTED_OPERATION",
            Self::NoExtendedCard => "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
            Self::Version(_) => "VERSION_NOT_SUPPORTED",
        }
    }

    /// The JSON-RPC error object, with A2A's `ErrorInfo` in `data`.
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code(),
            "message": self.to_string(),
            "data": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason(),
                "domain": "a2a-protocol.org",
                "metadata": {},
            }],
        })
    }
}

impl From<BackendError> for RpcError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::UnknownTask(id) => Self::TaskNotFound(id),
            BackendError::UnknownAgent(_)
            | BackendError::BadTask(_)
            | BackendError::BadTransition(_) => Self::InvalidParams(e.to_string()),
            BackendError::Unavailable(m) | BackendError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<MapError> for RpcError {
    fn from(e: MapError) -> Self {
        Self::InvalidParams(e.to_string())
    }
}

/// A JSON-RPC success response.
pub fn success(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error response.
pub fn failure(id: &Value, e: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()})
}

/// The answer to a request over `max` bytes (its id is not read: the body is not parsed).
pub fn too_large(max: usize) -> Response {
    let e = RpcError::InvalidRequest(format!(
        "the request is over {} MiB (or broke off): send a large file with POST /v1/files (streamed) and name \
         it in a url part as urn:rhizo:file:HASH",
        max >> 20
    ));
    Json(failure(&Value::Null, &e)).into_response()
}

/// Handles one JSON-RPC request to the binding of `agent` (a UID or contact name).
/// `version` is the request's `A2A-Version` header.
pub async fn handle<B: AgentBackend>(
    backend: &B,
    agent: &str,
    version: Option<&str>,
    body: &[u8],
) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Json(failure(&Value::Null, &RpcError::Parse(e.to_string()))).into_response();
        }
    };
    let id = match request.get("id") {
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        _ => Value::Null,
    };
    match dispatch(backend, agent, version, &request, &id).await {
        Ok(Answer::Result(result)) => Json(success(&id, result)).into_response(),
        Ok(Answer::Stream(response)) => response,
        Err(e) => Json(failure(&id, &e)).into_response(),
    }
}

/// What a method answers.
enum Answer {
    /// One JSON result.
    Result(Value),
    /// A stream of results.
    Stream(Response),
}

async fn dispatch<B: AgentBackend>(
    b: &B,
    agent: &str,
    version: Option<&str>,
    request: &Value,
    id: &Value,
) -> Result<Answer, RpcError> {
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::InvalidRequest(
            "'jsonrpc' must be \"2.0\" (batches are not supported)".into(),
        ));
    }
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return Err(RpcError::InvalidRequest("'method' is required".into()));
    };
    if let Some(v) = version.map(str::trim).filter(|v| !v.is_empty())
        && v.split('.').next() != Some("1")
    {
        return Err(RpcError::Version(v.to_string()));
    }
    let params = request.get("params").cloned().unwrap_or(json!({}));
    let result = match method {
        "SendMessage" => send_message(b, agent, params).await?,
        "SendStreamingMessage" => return send_streaming(b, agent, params, id).await,
        "SubscribeToTask" => return subscribe(b, agent, params, id).await,
        "GetTask" => get_task(b, agent, params).await?,
        "ListTasks" => list_tasks(b, agent, params).await?,
        "CancelTask" => cancel_task(b, agent, params).await?,
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => return Err(RpcError::PushNotSupported),
        "GetExtendedAgentCard" => return Err(RpcError::NoExtendedCard),
        other => return Err(RpcError::MethodNotFound(other.to_string())),
    };
    Ok(Answer::Result(result))
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(|e| RpcError::InvalidParams(e.to_string()))
}

/// Whether `task` is one we delegated to `agent` (its UID or contact name).
fn ours(task: &Task, agent: &str) -> bool {
    task.side == Side::Client && (task.peer == agent || task.peer_name.as_deref() == Some(agent))
}

/// A task we delegated to `agent`.
async fn our_task<B: AgentBackend>(b: &B, agent: &str, id: &str) -> Result<Task, RpcError> {
    let task = b.task(id).await?;
    if ours(&task, agent) {
        Ok(task)
    } else {
        Err(RpcError::TaskNotFound(id.to_string()))
    }
}

/// Starts what a send asks for: a new delegation, or more input for an `input-required` task.
async fn start<B: AgentBackend>(b: &B, agent: &str, req: &SendRequest) -> Result<Task, RpcError> {
    if let Some(task_id) = req.message.task_id.as_deref().filter(|t| !t.is_empty()) {
        let task = our_task(b, agent, task_id).await?;
        let state = task.status.state;
        if !matches!(state, TaskState::InputRequired | TaskState::AuthRequired) {
            return Err(RpcError::InvalidParams(format!(
                "task {task_id} is {state}: only a task that is input-required takes more input"
            )));
        }
        let files = attach_files(b, &task.peer, &req.message).await?;
        let message = message_with_files(&req.message, Role::User, &files)?;
        return Ok(b.task_input(task_id, message).await?);
    }
    let remote = b.agent(agent, false).await?;
    let files = attach_files(b, &remote.uid, &req.message).await?;
    let new = new_task_from_send(&remote.uid, req, &files)?;
    Ok(b.delegate(new).await?)
}

/// The file parts of a client's message made files of the conversation with `peer` (the
/// agent's UID or group address): each part's index and its file message's id. The message is
/// checked first (a part rhizo cannot carry fails before any file is stored or sent).
async fn attach_files<B: AgentBackend>(
    b: &B,
    peer: &str,
    message: &Message,
) -> Result<Vec<(usize, i64)>, RpcError> {
    let inbound = inbound_files(&message.parts)?;
    if inbound.is_empty() {
        return Ok(Vec::new());
    }
    // The rest of the message checked with placeholder ids before anything is stored or sent.
    let placeholders: Vec<(usize, i64)> = inbound.iter().map(|(i, _)| (*i, 0)).collect();
    message_with_files(message, Role::User, &placeholders)?;
    let mut out = Vec::with_capacity(inbound.len());
    for (i, file) in inbound {
        out.push((i, b.attach_file(peer, file).await?));
    }
    Ok(out)
}

async fn send_message<B: AgentBackend>(
    b: &B,
    agent: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let req: SendRequest = parse(params)?;
    // Subscribed before the task starts, so no update can slip past.
    let rx = b.subscribe();
    let task = start(b, agent, &req).await?;
    let task = if req.configuration.return_immediately || stream_ends_at(task.status.state) {
        task
    } else {
        wait_until_stopped(b, rx, &task.id).await?
    };
    Ok(json!({"task": task_to_a2a(&task, req.configuration.history_length)}))
}

/// Waits (at most [`SEND_WAIT`]) until task `id` ends or stops; answers it as it is then.
async fn wait_until_stopped<B: AgentBackend>(
    b: &B,
    mut rx: broadcast::Receiver<ApiEvent>,
    id: &str,
) -> Result<Task, RpcError> {
    let stopped = async {
        loop {
            match rx.recv().await {
                Ok(ApiEvent::TaskUpdated {
                    task_id,
                    side: Side::Client,
                    status,
                    ..
                }) if task_id == id && stream_ends_at(status.state) => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    if b.task(id)
                        .await
                        .is_ok_and(|t| stream_ends_at(t.status.state))
                    {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    };
    let _ = tokio::time::timeout(SEND_WAIT, stopped).await;
    Ok(b.task(id).await?)
}

async fn send_streaming<B: AgentBackend>(
    b: &B,
    agent: &str,
    params: Value,
    id: &Value,
) -> Result<Answer, RpcError> {
    let req: SendRequest = parse(params)?;
    let rx = b.subscribe();
    let task = start(b, agent, &req).await?;
    Ok(Answer::Stream(stream::follow(
        b.clone(),
        rx,
        task,
        id.clone(),
    )))
}

async fn subscribe<B: AgentBackend>(
    b: &B,
    agent: &str,
    params: Value,
    id: &Value,
) -> Result<Answer, RpcError> {
    let p: TaskIdParams = parse(params)?;
    let rx = b.subscribe();
    let task = our_task(b, agent, &p.id).await?;
    if task.status.state.is_terminal() {
        return Err(RpcError::Unsupported(format!(
            "task {} is {}: a finished task has no updates to stream; read it with GetTask",
            p.id, task.status.state
        )));
    }
    Ok(Answer::Stream(stream::follow(
        b.clone(),
        rx,
        task,
        id.clone(),
    )))
}

async fn get_task<B: AgentBackend>(b: &B, agent: &str, params: Value) -> Result<Value, RpcError> {
    let p: TaskIdParams = parse(params)?;
    let task = our_task(b, agent, &p.id).await?;
    Ok(json!(task_to_a2a(&task, p.history_length)))
}

async fn list_tasks<B: AgentBackend>(b: &B, agent: &str, params: Value) -> Result<Value, RpcError> {
    let p: ListParams = parse(params)?;
    let page = match p.page_size {
        None => DEFAULT_PAGE_SIZE,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                RpcError::InvalidParams(format!("pageSize must be 1 to {MAX_PAGE_SIZE}"))
            })?,
    };
    let state = match p.status {
        None => None,
        Some(s) => s.to_rhizo(),
    };
    let remote = b.agent(agent, false).await?;
    let tasks = b
        .tasks(TaskQuery {
            side: Some(Side::Client),
            peer: Some(remote.uid),
            state,
            context_id: p.context_id.filter(|c| !c.is_empty()),
            limit: page,
        })
        .await?;
    let with_artifacts = p.include_artifacts.unwrap_or(false);
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let mut a2a = task_to_a2a(t, p.history_length);
            if !with_artifacts {
                a2a.artifacts.clear();
            }
            json!(a2a)
        })
        .collect();
    Ok(json!({
        "tasks": tasks,
        "nextPageToken": "",
        "pageSize": page,
        "totalSize": tasks.len(),
    }))
}

async fn cancel_task<B: AgentBackend>(
    b: &B,
    agent: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let p: TaskIdParams = parse(params)?;
    let task = our_task(b, agent, &p.id).await?;
    if task.status.state.is_terminal() {
        return Err(RpcError::TaskNotCancelable(format!(
            "task {} is already {}",
            p.id, task.status.state
        )));
    }
    match b.cancel_task(&p.id).await {
        Ok(task) => Ok(json!(task_to_a2a(&task, p.history_length))),
        Err(BackendError::BadTransition(m)) => Err(RpcError::TaskNotCancelable(m)),
        Err(e) => Err(e.into()),
    }
}
