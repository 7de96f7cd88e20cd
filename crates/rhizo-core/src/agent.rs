//! The agent protocol's data model (seed 004, shaped as A2A 1.0): task states and the
//! transitions between them, priorities, messages with parts, artifacts, cards and liveness.
//!
//! These types are what the engine stores, what the local API's `/v1` JSON speaks (snake_case)
//! and what the A2A binding and the MCP server translate; the wire form inside MLS is
//! `proto/agent.proto`, converted by [`wire`].
//!
//! Layout:
//! - `agent.rs`: states, priorities, the JSON model, limits and validation;
//! - `agent/card.rs`: the agent card as the user writes it, its skills, limits and checks;
//! - `agent/group.rs`: tasks sent to a group: their mode and an `all` task's workers;
//! - `agent/wire.rs`: conversions between the model and the protobuf wire messages.

use std::fmt;

use serde::{Deserialize, Serialize};

mod card;
mod file_part;
mod group;
pub mod wire;

pub use card::{
    AgentCard, AgentLimits, AgentSkill, MAX_CARD_DESCRIPTION_BYTES, MAX_CARD_NAME_CHARS,
    MAX_CARD_VERSION_BYTES, MAX_EXAMPLE_BYTES, MAX_EXAMPLES, MAX_MODE_BYTES, MAX_MODES,
    MAX_SKILL_DESCRIPTION_BYTES, MAX_SKILL_NAME_BYTES, MAX_SKILLS, MAX_TAG_BYTES, MAX_TAGS,
    check_skill_id,
};
pub use file_part::{FilePart, decode_raw};
pub use group::{TaskMode, TaskWorker};

/// Largest encoded part a task message carries inline (the MLS envelope limit, with room for
/// the rest of the message). A bigger part gets [`AgentError::TooLarge`]; once files land it
/// goes as a file reference.
pub const MAX_INLINE_PART_BYTES: usize = 48 * 1024;
/// Most parts in one message or artifact.
pub const MAX_PARTS: usize = 16;
/// Most artifacts in one update.
pub const MAX_ARTIFACTS: usize = 8;
/// Most requirements in a delegation, and the longest one in bytes.
pub const MAX_REQUIREMENTS: usize = 16;
/// Longest requirement, bytes.
pub const MAX_REQUIREMENT_BYTES: usize = 256;
/// Longest id (message id, artifact id, context id), bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest skill id, bytes (`[a-z0-9._-]`).
pub const MAX_SKILL_ID_BYTES: usize = 64;
/// Longest reason text, bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Length of a task id in bytes (shown as 32 lowercase hex digits).
pub const TASK_ID_LEN: usize = 16;

/// A2A's task states. The wire value is the `u32` in `TaskUpdate.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// Received, queued, not started. Wire 1.
    Submitted,
    /// Being worked on. Wire 2.
    Working,
    /// The worker waits for more input from the client. Wire 3.
    InputRequired,
    /// Done; artifacts hold the result. Wire 4. Terminal.
    Completed,
    /// Ended with an error (or its deadline passed). Wire 5. Terminal.
    Failed,
    /// Canceled by the client before it finished. Wire 6. Terminal.
    Canceled,
    /// Refused by the worker (queue full, unknown skill, blocked). Wire 7. Terminal.
    Rejected,
    /// The worker needs authorization first. Wire 8.
    AuthRequired,
}

impl TaskState {
    /// Every state, in wire order.
    pub const ALL: [Self; 8] = [
        Self::Submitted,
        Self::Working,
        Self::InputRequired,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
        Self::Rejected,
        Self::AuthRequired,
    ];

    /// The state as written in JSON and the docs (`input-required`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Working => "working",
            Self::InputRequired => "input-required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Rejected => "rejected",
            Self::AuthRequired => "auth-required",
        }
    }

    /// The wire value (1–8).
    pub const fn wire(self) -> u32 {
        match self {
            Self::Submitted => 1,
            Self::Working => 2,
            Self::InputRequired => 3,
            Self::Completed => 4,
            Self::Failed => 5,
            Self::Canceled => 6,
            Self::Rejected => 7,
            Self::AuthRequired => 8,
        }
    }

    /// The state of a wire value.
    ///
    /// # Errors
    ///
    /// [`AgentError::Malformed`] for a value outside 1–8.
    pub fn from_wire(value: u32) -> Result<Self, AgentError> {
        Self::ALL
            .into_iter()
            .find(|s| s.wire() == value)
            .ok_or(AgentError::Malformed("unknown task state"))
    }

    /// Whether the task is over: nothing moves it again.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Rejected
        )
    }

    /// Whether a task in this state may move to `next`. Terminal states move nowhere;
    /// `submitted` is only ever the first state; a live state may repeat (`working` → `working`
    /// carries progress) and reach any live or terminal state.
    pub const fn can_move_to(self, next: Self) -> bool {
        !self.is_terminal() && !matches!(next, Self::Submitted)
    }

    /// Checks a transition.
    ///
    /// # Errors
    ///
    /// [`AgentError::BadTransition`] when [`can_move_to`](Self::can_move_to) says no.
    pub fn check_move(self, next: Self) -> Result<(), AgentError> {
        if self.can_move_to(next) {
            Ok(())
        } else {
            Err(AgentError::BadTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or(AgentError::Invalid("unknown task state"))
    }
}

/// seed 004's task priority; the worker's queue serves higher first, then older first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Wire 0.
    Low,
    /// Wire 1 (the default).
    #[default]
    Normal,
    /// Wire 2.
    High,
    /// Wire 3.
    Urgent,
}

impl Priority {
    /// The wire value (0–3), also the queue rank.
    pub const fn wire(self) -> u32 {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::High => 2,
            Self::Urgent => 3,
        }
    }

    /// The priority of a wire value; values above 3 are `urgent`.
    pub const fn from_wire(value: u32) -> Self {
        match value {
            0 => Self::Low,
            1 => Self::Normal,
            2 => Self::High,
            _ => Self::Urgent,
        }
    }

    /// As written in JSON and on the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Low, Self::Normal, Self::High, Self::Urgent]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(AgentError::Invalid(
                "priority must be low, normal, high or urgent",
            ))
    }
}

/// Who wrote a task message (A2A's role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The client that delegated the task. Wire 1.
    User,
    /// The worker agent. Wire 2.
    Agent,
}

/// Which end of a task this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// We delegated it.
    Client,
    /// We execute it.
    Worker,
}

impl Side {
    /// As stored and written in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Worker => "worker",
        }
    }
}

/// A2A's Part: exactly one of `text`, `data` (any JSON value), `raw` (base64 in JSON) or
/// `file` (a file by reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Structured JSON content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Bytes, base64 (standard alphabet, padded) in JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Media type of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// A file name for the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A file by reference ([`FilePart`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePart>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// A JSON data part.
    pub fn data(value: serde_json::Value) -> Self {
        Self {
            data: Some(value),
            ..Self::default()
        }
    }

    /// Checks that exactly one content field is set and the sizes are within limits.
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] for zero or several contents or a bad raw encoding,
    /// [`AgentError::TooLarge`] for a part over [`MAX_INLINE_PART_BYTES`].
    pub fn validate(&self) -> Result<(), AgentError> {
        let set = [self.text.is_some(), self.data.is_some(), self.raw.is_some()];
        if set.into_iter().filter(|x| *x).count() + usize::from(self.file.is_some()) != 1 {
            return Err(AgentError::Invalid(
                "a part holds exactly one of text, data, raw, file",
            ));
        }
        if let Some(f) = &self.file {
            f.validate()?;
        }
        if self.media_type.as_ref().is_some_and(|m| m.len() > 128)
            || self.filename.as_ref().is_some_and(|f| f.len() > 256)
        {
            return Err(AgentError::Invalid("part media type or file name too long"));
        }
        if self.encoded_len()? > MAX_INLINE_PART_BYTES {
            return Err(AgentError::TooLarge {
                limit: MAX_INLINE_PART_BYTES,
            });
        }
        Ok(())
    }

    /// Bytes the content takes on the wire.
    fn encoded_len(&self) -> Result<usize, AgentError> {
        if let Some(t) = &self.text {
            return Ok(t.len());
        }
        if let Some(d) = &self.data {
            return Ok(serde_json::to_string(d).map_or(usize::MAX, |s| s.len()));
        }
        if let Some(r) = &self.raw {
            // 4 base64 characters carry 3 bytes.
            return decode_raw(r).map(|b| b.len());
        }
        Ok(0)
    }

    /// The part's text, or its JSON data as text, or a note for raw bytes.
    pub fn as_text(&self) -> String {
        if let Some(t) = &self.text {
            t.clone()
        } else if let Some(d) = &self.data {
            d.to_string()
        } else if let Some(f) = &self.file {
            f.as_text()
        } else {
            format!(
                "[{} bytes{}]",
                self.raw
                    .as_deref()
                    .and_then(|r| decode_raw(r).ok())
                    .map_or(0, |b| b.len()),
                self.media_type
                    .as_deref()
                    .map(|m| format!(" {m}"))
                    .unwrap_or_default()
            )
        }
    }
}

/// A2A's Message: one turn of a task, by the client (`user`) or the worker (`agent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// Unique per sender.
    pub message_id: String,
    /// Who wrote it.
    pub role: Role,
    /// Its content.
    pub parts: Vec<Part>,
}

impl TaskMessage {
    /// A message of one text part.
    pub fn text(message_id: impl Into<String>, role: Role, text: impl Into<String>) -> Self {
        Self {
            message_id: message_id.into(),
            role,
            parts: vec![Part::text(text)],
        }
    }

    /// All text of the message, parts joined by newlines.
    pub fn joined_text(&self) -> String {
        self.parts
            .iter()
            .map(Part::as_text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks ids, part count and every part.
    ///
    /// # Errors
    ///
    /// As [`Part::validate`]; [`AgentError::Invalid`] for too many parts or a bad id.
    pub fn validate(&self) -> Result<(), AgentError> {
        check_id(&self.message_id, "message_id")?;
        check_parts(&self.parts)
    }
}

/// A2A's Artifact: a result of the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Unique within the task.
    pub artifact_id: String,
    /// Optional human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its content.
    pub parts: Vec<Part>,
}

impl Artifact {
    /// Checks the id, names and parts.
    ///
    /// # Errors
    ///
    /// As [`TaskMessage::validate`].
    pub fn validate(&self) -> Result<(), AgentError> {
        check_id(&self.artifact_id, "artifact_id")?;
        if self.name.as_ref().is_some_and(|n| n.len() > 256)
            || self.description.as_ref().is_some_and(|d| d.len() > 1024)
        {
            return Err(AgentError::Invalid("artifact name or description too long"));
        }
        check_parts(&self.parts)
    }
}

/// One entry of a task's status history (A2A's TaskStatus, plus a reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The state entered.
    pub state: TaskState,
    /// A message that came with it (a question for `input-required`, an answer, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<TaskMessage>,
    /// Why, for `failed`, `rejected` and `canceled` (e.g. `RATE_LIMITED: queue full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When, unix milliseconds.
    pub timestamp: i64,
}

/// A task as this node knows it, on either side (the `/v1/tasks` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// 32 lowercase hex digits.
    pub id: String,
    /// A2A's context id (groups related tasks); the client's choice, or the task id.
    pub context_id: String,
    /// Which end we are.
    pub side: Side,
    /// The other end's UID.
    pub peer: String,
    /// The other end's contact name, if it is a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_name: Option<String>,
    /// The skill asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Queue priority.
    pub priority: Priority,
    /// Unix milliseconds; past it the task fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// seed 004 requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// The current status (the last entry of `status_history`).
    pub status: TaskStatus,
    /// Every status the task went through, oldest first.
    pub status_history: Vec<TaskStatus>,
    /// The messages of the task (A2A's history), oldest first: the client's request first.
    pub history: Vec<TaskMessage>,
    /// Results so far.
    pub artifacts: Vec<Artifact>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
    /// A group task's group (the group's id, hex of its session id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A group task's assignee: the member that runs it (its UID), once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// A group task's mode (`all`: every agent member runs it).
    #[serde(default, skip_serializing_if = "TaskMode::is_any")]
    pub mode: TaskMode,
    /// An `all`-mode task's workers, each with its own status and results; the task's own
    /// status is the overall one (see docs/agents.md "Agents in groups").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<TaskWorker>,
}

/// `POST /v1/tasks`: delegate a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// The agent: a contact name or a UID; or a group (its name or id) when no contact has
    /// that name (docs/agents.md "Agents in groups").
    pub to: String,
    /// Shorthand for one text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Shorthand for one JSON data part (after the text part, if both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Further parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// The skill asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Default `normal`.
    #[serde(default)]
    pub priority: Priority,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// seed 004 requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// A2A context id; default the task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// The client's message id; default random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// To a group: `any` (one agent member runs it, the default) or `all` (every agent member
    /// that has the skill).
    #[serde(default, skip_serializing_if = "TaskMode::is_any")]
    pub mode: TaskMode,
}

impl NewTask {
    /// The parts the request carries: `text`, then `data`, then `parts`.
    pub fn all_parts(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        if let Some(t) = &self.text {
            parts.push(Part::text(t.clone()));
        }
        if let Some(d) = &self.data {
            parts.push(Part::data(d.clone()));
        }
        parts.extend(self.parts.iter().cloned());
        parts
    }

    /// Checks the request before anything is stored or sent.
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] / [`AgentError::TooLarge`] naming what is wrong.
    pub fn validate(&self) -> Result<(), AgentError> {
        if self.to.trim().is_empty() {
            return Err(AgentError::Invalid("`to` names no agent"));
        }
        let parts = self.all_parts();
        if parts.is_empty() {
            return Err(AgentError::Invalid("a task needs text, data or parts"));
        }
        check_parts(&parts)?;
        if let Some(skill) = &self.skill {
            check_skill_id(skill)?;
        }
        if let Some(c) = &self.context_id {
            check_id(c, "context_id")?;
        }
        if let Some(m) = &self.message_id {
            check_id(m, "message_id")?;
        }
        check_requirements(&self.requirements)
    }
}

/// `POST /v1/agent/tasks/{id}`: the worker's status change, message and artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdateInput {
    /// The new state.
    pub state: TaskState,
    /// Shorthand for an agent message of one text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A full agent message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<TaskMessage>,
    /// Results to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Why, for failed / rejected / canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TaskUpdateInput {
    /// Checks sizes and ids (not the transition: that needs the task's current state).
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] / [`AgentError::TooLarge`].
    pub fn validate(&self) -> Result<(), AgentError> {
        if let Some(m) = &self.message {
            m.validate()?;
        }
        if self.artifacts.len() > MAX_ARTIFACTS {
            return Err(AgentError::Invalid("too many artifacts in one update"));
        }
        for a in &self.artifacts {
            a.validate()?;
        }
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_REASON_BYTES)
        {
            return Err(AgentError::Invalid("reason too long"));
        }
        Ok(())
    }
}

fn check_id(id: &str, _what: &'static str) -> Result<(), AgentError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(AgentError::Invalid(
            "ids are 1-128 bytes with no control characters",
        ));
    }
    Ok(())
}

fn check_parts(parts: &[Part]) -> Result<(), AgentError> {
    if parts.is_empty() || parts.len() > MAX_PARTS {
        return Err(AgentError::Invalid("a message holds 1 to 16 parts"));
    }
    parts.iter().try_for_each(Part::validate)
}

fn check_requirements(reqs: &[String]) -> Result<(), AgentError> {
    if reqs.len() > MAX_REQUIREMENTS || reqs.iter().any(|r| r.len() > MAX_REQUIREMENT_BYTES) {
        return Err(AgentError::Invalid(
            "at most 16 requirements of 256 bytes each",
        ));
    }
    Ok(())
}

/// A task id: 16 random bytes, written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub [u8; TASK_ID_LEN]);

impl TaskId {
    /// A fresh random id.
    ///
    /// # Errors
    ///
    /// If the OS random source fails.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; TASK_ID_LEN];
        getrandom::fill(&mut b)?;
        Ok(Self(b))
    }

    /// From wire bytes.
    ///
    /// # Errors
    ///
    /// [`AgentError::Malformed`] unless exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AgentError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| AgentError::Malformed("task id is not 16 bytes"))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl std::str::FromStr for TaskId {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(|_| AgentError::Invalid("a task id is 32 hex digits"))?;
        Self::from_slice(&bytes).map_err(|_| AgentError::Invalid("a task id is 32 hex digits"))
    }
}

/// An agent's liveness as this node sees it from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// A heartbeat arrived within 1.5 × its announced interval.
    Alive,
    /// The last heartbeat is older than 1.5 × the interval, but not 3 ×.
    Late,
    /// No heartbeat for 3 × the interval: tasks go through the mailbox.
    Unreachable,
    /// No heartbeat heard yet (tasks are tried directly, then through the mailbox).
    Unknown,
}

impl Liveness {
    /// What a heartbeat `age_ms` old, announcing `interval_s`, means.
    pub fn of(age_ms: i64, interval_s: u32) -> Self {
        let interval = i64::from(interval_s.max(1)) * 1000;
        if age_ms <= interval * 3 / 2 {
            Self::Alive
        } else if age_ms <= interval * 3 {
            Self::Late
        } else {
            Self::Unreachable
        }
    }

    /// As written in JSON and on the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Late => "late",
            Self::Unreachable => "unreachable",
            Self::Unknown => "unknown",
        }
    }
}

/// A circuit breaker's state for one remote agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the backoff ends.
    Open,
    /// One trial call is let through.
    HalfOpen,
}

/// Why an agent-protocol value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A wire message does not decode or breaks a structural rule.
    #[error("malformed agent message: {0}")]
    Malformed(&'static str),
    /// A value given through the API breaks a rule.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// A part is over the inline limit.
    #[error("part too large: over {limit} bytes inline (large data goes as a file)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A state change the task state machine does not allow.
    #[error("a task cannot move from {from} to {to}")]
    BadTransition {
        /// The current state.
        from: TaskState,
        /// The state asked for.
        to: TaskState,
    },
}

#[cfg(test)]
mod tests;
