//! Files for a task that did not come through `POST /v1/files` (issue 16, the A2A binding's
//! file parts): bytes stored and sent to the task's peer as a file message, or a file known
//! here by content hash, named by its file message with the peer (sent to it first if none
//! went there yet).
//!
//! ```text
//!  bytes ─▶ tmp/upload-… ─▶ import (encrypt + tree, files_max_mib, storage cap) ─▶ FileRef
//!        ─▶ send_file / send_group_file ─▶ the file message's id
//!  hash  ─▶ a file message with it in the peer's conversation? ─▶ its id
//!        ─▶ else a complete file with it here ─▶ its FileRef sent to the peer ─▶ the new id
//! ```

use rhizo_core::{
    Uid,
    file::{FileKey, FileRef},
};
use rhizo_store::{DbError, files::FileRow};

use super::{Files, FilesError, content::ContentError};
use crate::messaging::MessagingError;

/// Why a file could not be attached to a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The task's peer is neither a UID nor a group's address.
    #[error("'{0}' is not an agent's UID or a group's address")]
    UnknownPeer(String),
    /// No file message here carries that content.
    #[error(
        "no file with content hash {0} is known here: send it with POST /v1/files first, or \
         give its bytes"
    )]
    UnknownHash(String),
    /// The file is known but not whole here, so it cannot be sent on.
    #[error("file {0} is not downloaded here yet: fetch it first (`rhizo files get {0}`)")]
    NotReady(i64),
    /// The content store refused (size limit, storage cap) or failed.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The file message could not be sent.
    #[error(transparent)]
    Send(#[from] MessagingError),
}

impl From<DbError> for AttachError {
    fn from(e: DbError) -> Self {
        Self::Files(e.into())
    }
}

/// The conversation a task's file goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A contact's 1:1 conversation (its UID).
    Contact([u8; 32]),
    /// A group (its session).
    Group([u8; 16]),
}

impl Target {
    /// Whether the file message `row` was sent or received in this conversation.
    fn holds(self, row: &FileRow) -> bool {
        match self {
            Self::Contact(uid) => row.group.is_none() && row.contact_uid == Some(uid),
            Self::Group(session) => row.group == Some(session),
        }
    }
}

impl Files {
    /// The conversation of peer `to` (a contact's UID, or a group's address).
    async fn target(&self, to: &str) -> Result<Target, AttachError> {
        let uid: Uid = to
            .trim()
            .parse()
            .map_err(|_| AttachError::UnknownPeer(to.to_string()))?;
        let address = *uid.as_bytes();
        let group = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.group_by_address(&address)?) })
            .await?;
        Ok(group.map_or(Target::Contact(address), |g| Target::Group(g.session_id)))
    }

    /// Sends `file` (its content stored) in `target`'s conversation; the message's id.
    async fn send_to(&self, target: Target, file: FileRef) -> Result<i64, AttachError> {
        let messaging = &self.inner.messaging;
        let sent = match target {
            Target::Contact(uid) => messaging
                .send_file(&Uid::from_bytes(&uid).to_string(), file, "")
                .await
                .map_err(MessagingError::from)?,
            Target::Group(session) => {
                messaging
                    .send_group_file(&hex::encode(session), file, "")
                    .await
                    .map_err(MessagingError::from)?
                    .0
            }
        };
        Ok(sent.id)
    }

    /// Stores `bytes` as a new file named `name` and sends it to peer `to` (a UID or a group's
    /// address); the file message's id.
    ///
    /// # Errors
    ///
    /// An unknown peer; over `files_max_mib` or the storage cap; I/O; sending failed.
    pub async fn attach_bytes(
        &self,
        to: &str,
        name: String,
        mime: String,
        bytes: Vec<u8>,
    ) -> Result<i64, AttachError> {
        let target = self.target(to).await?;
        let (size, max) = (bytes.len() as u64, self.inner.settings.max_bytes);
        if size > max {
            return Err(FilesError::from(ContentError::TooLarge { size, max }).into());
        }
        let path = self.inner.content.upload_path();
        let written = tokio::fs::write(&path, bytes)
            .await
            .map_err(super::content::io("writing an attached file"));
        let imported = match written {
            Ok(()) => self.import(path.clone(), |_| {}).await,
            Err(e) => Err(e.into()),
        };
        let _ = tokio::fs::remove_file(&path).await;
        let imported = imported?;
        let inline = self.inline_content(imported.hash, imported.size).await;
        let file = FileRef {
            name,
            size: imported.size,
            mime,
            hash: imported.hash,
            key: imported.key,
            inline,
        };
        self.send_to(target, file).await
    }

    /// The file message with content `hash` in the conversation with peer `to` (a UID or a
    /// group's address); when none went there, the file (whole here) is sent to it first.
    ///
    /// # Errors
    ///
    /// An unknown peer or hash; a file not downloaded yet; sending failed.
    pub async fn attach_known(&self, to: &str, hash: [u8; 32]) -> Result<i64, AttachError> {
        let target = self.target(to).await?;
        let rows = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.files_with_hash(&hash)?) })
            .await?;
        if let Some(row) = rows.iter().find(|r| target.holds(r)) {
            return Ok(row.message_id);
        }
        let Some(first) = rows.first() else {
            return Err(AttachError::UnknownHash(hex::encode(hash)));
        };
        let whole = self.inner.content.has(&hash);
        let Some(row) = rows.iter().find(|r| whole && r.state == "done") else {
            return Err(AttachError::NotReady(first.message_id));
        };
        let inline = self.inline_content(hash, row.size).await;
        let file = FileRef {
            name: row.name.clone(),
            size: row.size,
            mime: row.mime.clone(),
            hash,
            key: FileKey::from_bytes(row.key),
            inline,
        };
        self.send_to(target, file).await
    }
}
