//! Tasks sent to a group: who runs them ([`TaskMode`]) and, for `all`, each worker's own
//! status and results ([`TaskWorker`]).

use serde::{Deserialize, Serialize};

use super::{Artifact, TaskMessage, TaskState};

/// Who runs a task sent to a group: one agent member (`any`, the default) or every agent
/// member that can (`all`: each worker's status and artifacts are kept apart, see
/// [`TaskWorker`]). A task to one agent ignores it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskMode {
    /// Any one agent member (wire 0).
    #[default]
    Any,
    /// Every agent member that has the skill (wire 1).
    All,
}

impl TaskMode {
    /// The wire value (`TaskDelegate.mode`).
    pub const fn wire(self) -> u32 {
        match self {
            Self::Any => 0,
            Self::All => 1,
        }
    }

    /// The mode of a wire value; unknown values are `any`.
    pub const fn from_wire(value: u32) -> Self {
        match value {
            1 => Self::All,
            _ => Self::Any,
        }
    }

    /// Whether this is the default, `any` (not shown in JSON).
    pub fn is_any(&self) -> bool {
        *self == Self::Any
    }
}

/// One worker of an `all`-mode group task, as the client sees it: the member, its own status
/// and its own results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskWorker {
    /// The member's UID.
    pub worker: String,
    /// Its state. A worker whose heartbeats stopped while it ran the task is `failed` with
    /// reason `UNREACHABLE: …`.
    pub state: TaskState,
    /// Its last message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<TaskMessage>,
    /// Why it failed, was rejected or canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Unix milliseconds of its last change.
    pub updated_at: i64,
}
