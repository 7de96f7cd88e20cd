//! File parts of tasks (issue 16): a task message or artifact names a file by reference
//! ([`FilePart`]); the file itself is a file message of the same conversation (sent first with
//! `POST /v1/files`), fetched over `/rhizo/file/1` like any file.
//!
//! ```text
//!  outgoing: {"file": {"id": N}} ─▶ fill: file row N, sent in the task's conversation?
//!            ─▶ hash, name, size, mime ─▶ TaskFile on the wire (the key stays in the file
//!            message)
//!  view:     each file part ─▶ the file row with its hash in the task's conversation ─▶
//!            its id and state here (`rhizo files get ID` fetches it)
//! ```

use rhizo_core::agent::{AgentError, Artifact, FilePart, Part, TaskMessage};
use rhizo_store::{Reader, StoreError, files::FileRow};

use super::TaskError;

/// The conversation of a task: the peer (a contact's UID, or a group's address) and the
/// group's session when it is a group task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskScope {
    /// The task's peer UID (a group's address for a client's group task).
    pub(crate) peer: [u8; 32],
    /// The group session of a group task.
    pub(crate) group: Option<[u8; 16]>,
}

impl TaskScope {
    /// The scope of a task with `peer` and `group` (a client's group task names only the
    /// group's address: its session is looked up).
    pub(crate) fn of(
        reader: &Reader<'_>,
        peer: [u8; 32],
        group: Option<[u8; 16]>,
    ) -> Result<Self, StoreError> {
        let group = match group {
            Some(g) => Some(g),
            None => reader.group_by_address(&peer)?.map(|g| g.session_id),
        };
        Ok(Self { peer, group })
    }

    /// Whether the file message `row` was sent or received in this conversation.
    fn holds(&self, row: &FileRow) -> bool {
        match self.group {
            Some(g) => row.group == Some(g),
            None => row.contact_uid == Some(self.peer),
        }
    }
}

/// Fills in the file parts of an outgoing message or artifacts from their file rows.
///
/// # Errors
///
/// [`TaskError::BadTask`] for a part whose id names no file of the task's conversation.
pub(crate) fn fill_parts(
    reader: &Reader<'_>,
    scope: &TaskScope,
    parts: &mut [Part],
) -> Result<(), TaskError> {
    for part in parts {
        let Some(file) = part.file.as_mut() else {
            continue;
        };
        let Some(id) = file.id else {
            // Already a whole reference (a stored request sent again).
            continue;
        };
        let row = reader
            .file(id)?
            .filter(|r| scope.holds(r))
            .ok_or(TaskError::BadTask(AgentError::Invalid(
                "a file part's id names no file sent in this task's conversation: send the \
                 file to the peer first (POST /v1/files), then name its id",
            )))?;
        *file = FilePart {
            id: Some(id),
            hash: hex::encode(row.hash),
            name: row.name,
            size: row.size,
            mime: row.mime,
            state: None,
        };
    }
    Ok(())
}

/// [`fill_parts`] over a message and artifacts.
///
/// # Errors
///
/// As [`fill_parts`].
pub(crate) fn fill_all(
    reader: &Reader<'_>,
    scope: &TaskScope,
    message: Option<&mut TaskMessage>,
    artifacts: &mut [Artifact],
) -> Result<(), TaskError> {
    if let Some(m) = message {
        fill_parts(reader, scope, &mut m.parts)?;
    }
    for a in artifacts {
        fill_parts(reader, scope, &mut a.parts)?;
    }
    Ok(())
}

/// Shows the file parts as they are here: the id and state of the file message with the
/// part's hash in the task's conversation (none yet: no id, no state).
///
/// # Errors
///
/// If the database fails.
pub(crate) fn resolve_parts(
    reader: &Reader<'_>,
    scope: &TaskScope,
    parts: &mut [Part],
) -> Result<(), StoreError> {
    for file in parts.iter_mut().filter_map(|p| p.file.as_mut()) {
        let Ok(hash) = file.hash_bytes() else {
            continue;
        };
        let row = reader
            .files_with_hash(&hash)?
            .into_iter()
            .find(|r| scope.holds(r));
        file.id = row.as_ref().map(|r| r.message_id);
        file.state = row.map(|r| r.state);
    }
    Ok(())
}
