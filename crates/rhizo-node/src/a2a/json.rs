//! A2A 1.0 JSON and its mapping to and from [`rhizo_core::agent`].
//!
//! A2A's JSON-RPC binding speaks the ProtoJSON form of `a2a.proto` (package `lf.a2a.v1`):
//! camelCase field names, enums as their value names (`TASK_STATE_WORKING`, `ROLE_USER`),
//! `bytes` as base64, `google.protobuf.Timestamp` as RFC 3339 text. These types are exactly
//! what a2a-sdk 1.x sends and parses (`json_format.MessageToDict` / `ParseDict` with unknown
//! fields ignored); fields rhizo does not use are accepted and dropped.

use rhizo_core::agent::{self, NewTask, Priority, Role as RhizoRole, TaskMessage, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A2A's `TaskState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Unset; never a valid state of a task.
    #[serde(rename = "TASK_STATE_UNSPECIFIED")]
    Unspecified,
    /// `submitted`.
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    /// `working`.
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    /// `completed`.
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    /// `failed`.
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    /// `canceled`.
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
    /// `input-required`.
    #[serde(rename = "TASK_STATE_INPUT_REQUIRED")]
    InputRequired,
    /// `rejected`.
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
    /// `auth-required`.
    #[serde(rename = "TASK_STATE_AUTH_REQUIRED")]
    AuthRequired,
}

impl From<TaskState> for State {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Submitted => Self::Submitted,
            TaskState::Working => Self::Working,
            TaskState::InputRequired => Self::InputRequired,
            TaskState::Completed => Self::Completed,
            TaskState::Failed => Self::Failed,
            TaskState::Canceled => Self::Canceled,
            TaskState::Rejected => Self::Rejected,
            TaskState::AuthRequired => Self::AuthRequired,
        }
    }
}

impl State {
    /// rhizo's state, `None` for `TASK_STATE_UNSPECIFIED`.
    pub fn to_rhizo(self) -> Option<TaskState> {
        Some(match self {
            Self::Unspecified => return None,
            Self::Submitted => TaskState::Submitted,
            Self::Working => TaskState::Working,
            Self::InputRequired => TaskState::InputRequired,
            Self::Completed => TaskState::Completed,
            Self::Failed => TaskState::Failed,
            Self::Canceled => TaskState::Canceled,
            Self::Rejected => TaskState::Rejected,
            Self::AuthRequired => TaskState::AuthRequired,
        })
    }
}

/// A2A's `Role`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Unset.
    #[default]
    #[serde(rename = "ROLE_UNSPECIFIED")]
    Unspecified,
    /// The client.
    #[serde(rename = "ROLE_USER")]
    User,
    /// The agent.
    #[serde(rename = "ROLE_AGENT")]
    Agent,
}

impl From<RhizoRole> for Role {
    fn from(r: RhizoRole) -> Self {
        match r {
            RhizoRole::User => Self::User,
            RhizoRole::Agent => Self::Agent,
        }
    }
}

/// A2A's `Part`: one of `text`, `raw` (base64), `url`, `data` (any JSON value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// A file by reference: rhizo's file parts go out as `urn:rhizo:file:HASH` (the file is a
    /// file message of the task's conversation, fetched with `/v1/files`); other URLs are not
    /// carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Structured content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Extension metadata (dropped by rhizo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// A file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// A2A's `Message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Unique per sender.
    #[serde(default)]
    pub message_id: String,
    /// The conversation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// The task it continues (a reply to `input-required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Who wrote it.
    #[serde(default)]
    pub role: Role,
    /// Its content.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Extension metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A2A's `TaskStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The state.
    pub state: State,
    /// A message with it (an agent's question, a failure's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// When, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// A2A's `Artifact`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Unique within the task.
    #[serde(default)]
    pub artifact_id: String,
    /// A name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its content.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// A2A's `Task`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The task id.
    pub id: String,
    /// Its context id.
    #[serde(default)]
    pub context_id: String,
    /// The current status.
    pub status: Status,
    /// Results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// The messages, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Message>,
}

/// A2A's `TaskStatusUpdateEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    /// The task.
    pub task_id: String,
    /// Its context.
    #[serde(default)]
    pub context_id: String,
    /// The new status.
    pub status: Status,
}

/// A2A's `TaskArtifactUpdateEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactUpdate {
    /// The task.
    pub task_id: String,
    /// Its context.
    #[serde(default)]
    pub context_id: String,
    /// The artifact (or a chunk of it).
    pub artifact: Artifact,
    /// Whether this chunk extends an artifact sent before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append: bool,
    /// Whether this is the artifact's last chunk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_chunk: bool,
}

/// A2A's `StreamResponse` (and, with only `task`/`message`, `SendMessageResponse`): one
/// event of a stream, written `{"task": …}`, `{"statusUpdate": …}`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamResponse {
    /// A task snapshot.
    Task(Task),
    /// A direct answer without a task.
    Message(Message),
    /// A status change.
    StatusUpdate(StatusUpdate),
    /// An artifact.
    ArtifactUpdate(ArtifactUpdate),
}

/// `SendMessageRequest.configuration`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendConfiguration {
    /// Answer as soon as the task exists instead of waiting for it to end or stop.
    #[serde(default)]
    pub return_immediately: bool,
    /// Most history messages in the answer.
    #[serde(default)]
    pub history_length: Option<i64>,
}

/// `SendMessage` / `SendStreamingMessage` params.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    /// The message.
    pub message: Message,
    /// How to answer.
    #[serde(default)]
    pub configuration: SendConfiguration,
    /// Request metadata: rhizo reads `skill`, `priority`, `deadline` (unix ms),
    /// `requirements` and, to a group, `mode` (`any` or `all`) from it.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `GetTask`, `CancelTask`, `SubscribeToTask` params.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskIdParams {
    /// The task id.
    #[serde(default)]
    pub id: String,
    /// Most history messages in the answer (`GetTask`).
    #[serde(default)]
    pub history_length: Option<i64>,
}

/// `ListTasks` params.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// Only this context.
    #[serde(default)]
    pub context_id: Option<String>,
    /// Only this state.
    #[serde(default)]
    pub status: Option<State>,
    /// Most tasks (default 50, at most 100).
    #[serde(default)]
    pub page_size: Option<i64>,
    /// Most history messages per task.
    #[serde(default)]
    pub history_length: Option<i64>,
    /// Whether artifacts are included.
    #[serde(default)]
    pub include_artifacts: Option<bool>,
}

/// Why an A2A value cannot be mapped to rhizo's model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// A `url` part that names no rhizo file.
    #[error(
        "a url part must name a file known to this node as urn:rhizo:file:HASH (64 hex \
         digits; other URLs are not fetched): send the bytes as a raw part, or the file with \
         POST /v1/files first"
    )]
    UrlPart,
    /// A `raw` part that is not base64.
    #[error("a raw part is not base64 (standard alphabet, padded)")]
    BadRaw,
    /// A file part's name cannot be a file name.
    #[error("a file part's filename must be 1 to 255 bytes without '/', '\\' or NUL")]
    BadFilename,
    /// A part with no content.
    #[error("a part holds one of text, data or raw")]
    EmptyPart,
    /// The message's role is not the one expected here.
    #[error("the message's role must be {0}")]
    Role(&'static str),
    /// `TASK_STATE_UNSPECIFIED` where a state is needed.
    #[error("the task state is unspecified")]
    NoState,
    /// Request metadata with a bad value.
    #[error("metadata.{0} is not valid")]
    Metadata(&'static str),
    /// rhizo's own validation refused it.
    #[error(transparent)]
    Invalid(#[from] agent::AgentError),
}

/// An A2A part as rhizo's.
///
/// # Errors
///
/// [`MapError::UrlPart`] for a file reference (see [`inbound_files`]),
/// [`MapError::EmptyPart`] for no content.
pub fn part_from_a2a(p: &Part) -> Result<agent::Part, MapError> {
    if p.url.is_some() {
        return Err(MapError::UrlPart);
    }
    if p.text.is_none() && p.data.is_none() && p.raw.is_none() {
        return Err(MapError::EmptyPart);
    }
    Ok(agent::Part {
        text: p.text.clone(),
        data: p.data.clone(),
        raw: p.raw.clone(),
        media_type: p.media_type.clone(),
        filename: p.filename.clone(),
        file: None,
    })
}

/// The A2A URL of a rhizo file part (by content hash).
pub const FILE_URL_PREFIX: &str = "urn:rhizo:file:";
/// The name of a file that came as bytes without a `filename`.
const UNNAMED_FILE: &str = "attachment";

/// The content hash a `urn:rhizo:file:HASH` URL names.
///
/// # Errors
///
/// [`MapError::UrlPart`] for any other URL.
pub fn file_url_hash(url: &str) -> Result<[u8; 32], MapError> {
    let hex_hash = url
        .trim()
        .strip_prefix(FILE_URL_PREFIX)
        .ok_or(MapError::UrlPart)?;
    hex::decode(hex_hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(MapError::UrlPart)
}

/// The parts of an A2A client's message that carry files, by index: a `url` part (it must be
/// `urn:rhizo:file:HASH`), and a `raw` part whose bytes are over
/// [`agent::MAX_INLINE_PART_BYTES`] (smaller ones travel inline in the task message). The
/// node attaches each ([`super::AgentBackend::attach_file`]) and maps the message with
/// [`message_with_files`].
///
/// # Errors
///
/// [`MapError::UrlPart`] for another URL, [`MapError::BadRaw`] for bytes that are not
/// base64, [`MapError::BadFilename`] for a name with a path in it.
pub fn inbound_files(parts: &[Part]) -> Result<Vec<(usize, super::InboundFile)>, MapError> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if let Some(url) = &p.url {
            out.push((
                i,
                super::InboundFile::Known {
                    hash: file_url_hash(url)?,
                },
            ));
            continue;
        }
        let Some(raw) = &p.raw else { continue };
        // A base64 text of at most this many characters decodes to at most the inline limit.
        if raw.len() <= agent::MAX_INLINE_PART_BYTES / 3 * 4 {
            continue;
        }
        let bytes = agent::decode_raw(raw).map_err(|_| MapError::BadRaw)?;
        if bytes.len() <= agent::MAX_INLINE_PART_BYTES {
            continue;
        }
        let name = match p.filename.as_deref().map(str::trim) {
            None | Some("") => UNNAMED_FILE.to_string(),
            Some(n) => crate::files::file_name(n).ok_or(MapError::BadFilename)?,
        };
        let mime = p
            .media_type
            .clone()
            .filter(|m| {
                !m.is_empty() && m.len() <= rhizo_core::file::MAX_MIME_BYTES && m.is_ascii()
            })
            .unwrap_or_else(|| crate::files::guess_mime(&name).to_string());
        out.push((i, super::InboundFile::Bytes { name, mime, bytes }));
    }
    Ok(out)
}

/// rhizo's part as A2A's.
pub fn part_to_a2a(p: &agent::Part) -> Part {
    if let Some(f) = &p.file {
        return Part {
            url: Some(format!("{FILE_URL_PREFIX}{}", f.hash)),
            filename: Some(f.name.clone()),
            media_type: Some(f.mime.clone()),
            ..Part::default()
        };
    }
    Part {
        text: p.text.clone(),
        raw: p.raw.clone(),
        data: p.data.clone(),
        media_type: p.media_type.clone(),
        filename: p.filename.clone(),
        ..Part::default()
    }
}

/// rhizo's task message as A2A's, inside task `task_id` of `context_id`.
pub fn message_to_a2a(m: &TaskMessage, task_id: &str, context_id: &str) -> Message {
    Message {
        message_id: m.message_id.clone(),
        context_id: Some(context_id.to_string()),
        task_id: Some(task_id.to_string()),
        role: m.role.into(),
        parts: m.parts.iter().map(part_to_a2a).collect(),
        metadata: None,
    }
}

/// An A2A message as rhizo's, written by `role` (a message whose role is unset counts as
/// `role`); checked against rhizo's limits.
///
/// # Errors
///
/// [`MapError`] for another role, a part rhizo cannot carry, or a limit broken.
pub fn message_from_a2a(m: &Message, role: RhizoRole) -> Result<TaskMessage, MapError> {
    message_with_files(m, role, &[])
}

/// [`message_from_a2a`], with the parts at the indices of `files` replaced by file parts
/// naming those file messages (what [`inbound_files`] found, attached by the node).
///
/// # Errors
///
/// As [`message_from_a2a`].
pub fn message_with_files(
    m: &Message,
    role: RhizoRole,
    files: &[(usize, i64)],
) -> Result<TaskMessage, MapError> {
    let expected = Role::from(role);
    if m.role != expected && m.role != Role::Unspecified {
        return Err(MapError::Role(match role {
            RhizoRole::User => "ROLE_USER",
            RhizoRole::Agent => "ROLE_AGENT",
        }));
    }
    let message = TaskMessage {
        message_id: if m.message_id.is_empty() {
            random_id()
        } else {
            m.message_id.clone()
        },
        role,
        parts: m
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| match files.iter().find(|(at, _)| *at == i) {
                Some((_, id)) => Ok(agent::Part {
                    file: Some(agent::FilePart {
                        id: Some(*id),
                        ..agent::FilePart::default()
                    }),
                    ..agent::Part::default()
                }),
                None => part_from_a2a(p),
            })
            .collect::<Result<_, _>>()?,
    };
    message.validate()?;
    Ok(message)
}

/// rhizo's artifact as A2A's.
pub fn artifact_to_a2a(a: &agent::Artifact) -> Artifact {
    Artifact {
        artifact_id: a.artifact_id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        parts: a.parts.iter().map(part_to_a2a).collect(),
    }
}

/// The artifacts of one worker of an `all`-mode group task, as A2A's: each id prefixed with
/// the worker's UID (`UID/id`, unique in the task) and named after the worker.
fn worker_artifacts(w: &agent::TaskWorker) -> impl Iterator<Item = Artifact> + '_ {
    w.artifacts.iter().map(|a| {
        let mut artifact = artifact_to_a2a(a);
        artifact.artifact_id = format!("{}/{}", w.worker, a.artifact_id);
        if artifact.name.is_none() {
            artifact.name = Some(format!("worker {}", w.worker));
        }
        artifact
    })
}

/// An A2A artifact as rhizo's, checked against rhizo's limits.
///
/// # Errors
///
/// [`MapError`] for a part rhizo cannot carry or a limit broken.
pub fn artifact_from_a2a(a: &Artifact) -> Result<agent::Artifact, MapError> {
    let artifact = agent::Artifact {
        artifact_id: if a.artifact_id.is_empty() {
            random_id()
        } else {
            a.artifact_id.clone()
        },
        name: a.name.clone(),
        description: a.description.clone(),
        parts: a
            .parts
            .iter()
            .map(part_from_a2a)
            .collect::<Result<_, _>>()?,
    };
    artifact.validate()?;
    Ok(artifact)
}

/// rhizo's status as A2A's. A2A has no reason field: a reason without a message becomes the
/// status message (one agent text part), so an A2A client sees why a task failed.
pub fn status_to_a2a(s: &agent::TaskStatus, task_id: &str, context_id: &str) -> Status {
    let message = match (&s.message, &s.reason) {
        (Some(m), _) => Some(message_to_a2a(m, task_id, context_id)),
        (None, Some(reason)) => Some(message_to_a2a(
            &TaskMessage::text(
                format!("{task_id}-{}-{}", s.state, s.timestamp),
                RhizoRole::Agent,
                reason.clone(),
            ),
            task_id,
            context_id,
        )),
        (None, None) => None,
    };
    Status {
        state: s.state.into(),
        message,
        timestamp: Some(crate::clock::rfc3339_utc(s.timestamp)),
    }
}

/// rhizo's task as A2A's; `history_length` keeps only the newest messages (`0`: none).
pub fn task_to_a2a(t: &agent::Task, history_length: Option<i64>) -> Task {
    let skip = history_length.map_or(0, |n| {
        t.history
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(0))
    });
    Task {
        id: t.id.clone(),
        context_id: t.context_id.clone(),
        status: status_to_a2a(&t.status, &t.id, &t.context_id),
        artifacts: t
            .artifacts
            .iter()
            .map(artifact_to_a2a)
            .chain(t.workers.iter().flat_map(worker_artifacts))
            .collect(),
        history: t
            .history
            .iter()
            .skip(skip)
            .map(|m| message_to_a2a(m, &t.id, &t.context_id))
            .collect(),
    }
}

/// The rhizo delegation an A2A `SendMessage` to agent `to` asks for. The message becomes the
/// task's request (the parts at the indices of `files` as file parts naming those file
/// messages); `metadata.skill`, `.priority`, `.deadline` and `.requirements` fill the
/// seed-004 fields A2A has no place for, and `.mode` a group task's mode.
///
/// # Errors
///
/// [`MapError`] for a bad message or metadata, or a delegation rhizo refuses.
pub fn new_task_from_send(
    to: &str,
    req: &SendRequest,
    files: &[(usize, i64)],
) -> Result<NewTask, MapError> {
    let message = message_with_files(&req.message, RhizoRole::User, files)?;
    let meta = req.metadata.as_ref();
    let field = |name: &str| meta.and_then(|m| m.get(name)).filter(|v| !v.is_null());
    let skill = match field("skill") {
        None => None,
        Some(v) => Some(v.as_str().ok_or(MapError::Metadata("skill"))?.to_string()),
    };
    let priority = match field("priority") {
        None => Priority::default(),
        Some(v) => v
            .as_str()
            .and_then(|p| p.parse().ok())
            .ok_or(MapError::Metadata("priority"))?,
    };
    let deadline = match field("deadline") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or(MapError::Metadata("deadline"))?),
    };
    let mode = match field("mode").map(Value::as_str) {
        None => agent::TaskMode::Any,
        Some(Some("any")) => agent::TaskMode::Any,
        Some(Some("all")) => agent::TaskMode::All,
        Some(_) => return Err(MapError::Metadata("mode")),
    };
    let requirements = match field("requirements") {
        None => Vec::new(),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| MapError::Metadata("requirements"))?
        }
    };
    let task = NewTask {
        to: to.to_string(),
        parts: message.parts,
        skill,
        priority,
        deadline,
        requirements,
        context_id: req.message.context_id.clone().filter(|c| !c.is_empty()),
        message_id: Some(message.message_id),
        mode,
        ..NewTask::default()
    };
    task.validate()?;
    Ok(task)
}

/// A fresh random id (32 hex digits) for a message or artifact that came without one.
pub fn random_id() -> String {
    agent::TaskId::random().map_or_else(|_| "unnamed".to_string(), |id| id.to_string())
}

#[cfg(test)]
mod tests;
