//! Files and attachments (issue 16): one row per `file` message, with the file's reference
//! (hash, key, name, size, MIME type, received inside MLS), its state here, and the path it
//! was last saved to. The content itself lives in the node's content store under the data dir.
//!
//! ```text
//!  insert_file(row)            ◀── a file message sent or received (same transaction)
//!  set_file_state(id, …)       ◀── fetch progress: offered → downloading → done | failed
//!  files(), file(id)           ──▶ `rhizo files`, `GET /v1/files`
//!  files_with_hash(hash)       ──▶ a task's file part: the file message with its hash
//!  may_fetch(hash, peer_id)    ──▶ /rhizo/file/1: is the requester in a conversation the file
//!                                  was sent in?
//!  file_hashes()               ──▶ the content store's clean-up: what is still referenced
//! ```

use rusqlite::{OptionalExtension, Row, params};

use crate::{
    error::{SqliteContext, StoreError},
    messaging::blob,
    tx::{Reader, Tx},
};

/// Most rows [`Reader::files`] returns.
pub const MAX_FILES_LISTED: usize = 10_000;

/// A received file's inline content waiting for the content store: (message, hash, encrypted
/// content).
pub type InlineFile = (i64, [u8; 32], Vec<u8>);

/// A file message's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// The message that carries it.
    pub message_id: i64,
    /// Whether we sent it.
    pub outgoing: bool,
    /// The bao root hash of its encrypted content.
    pub hash: [u8; 32],
    /// Its content key.
    pub key: [u8; 32],
    /// Its name.
    pub name: String,
    /// Its plaintext size.
    pub size: u64,
    /// Its MIME type.
    pub mime: String,
    /// `offered`, `downloading`, `done` or `failed`.
    pub state: String,
    /// Encrypted bytes held so far.
    pub done_bytes: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Where it was last saved (plaintext), if it was.
    pub path: Option<String>,
    /// The UID of the contact the message is with (1:1), if any.
    pub contact_uid: Option<[u8; 32]>,
    /// When the row was made (unix ms).
    pub created_at: i64,
    /// The group's session, if the message was sent in a group.
    pub group: Option<[u8; 16]>,
    /// Whether the message came from a contact (a 1:1 conversation's, or a group member who
    /// is one): only their files download by themselves.
    pub from_contact: bool,
}

const COLUMNS: &str = "f.message_id, f.outgoing, f.hash, f.key, f.name, f.size, f.mime, f.state,
    f.done_bytes, f.error, f.path, c.contact_uid, f.created_at,
    CASE WHEN c.kind = 'group' THEN c.session_id END,
    EXISTS (SELECT 1 FROM contacts k WHERE k.uid = COALESCE(c.contact_uid, m.sender_uid))";

fn file_row(r: &Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        message_id: r.get(0)?,
        outgoing: r.get::<_, i64>(1)? != 0,
        hash: blob(r.get(2)?)?,
        key: blob(r.get(3)?)?,
        name: r.get(4)?,
        size: r.get::<_, i64>(5)?.max(0) as u64,
        mime: r.get(6)?,
        state: r.get(7)?,
        done_bytes: r.get::<_, i64>(8)?.max(0) as u64,
        error: r.get(9)?,
        path: r.get(10)?,
        contact_uid: r.get::<_, Option<Vec<u8>>>(11)?.map(blob).transpose()?,
        created_at: r.get(12)?,
        group: r.get::<_, Option<Vec<u8>>>(13)?.map(blob).transpose()?,
        from_contact: r.get::<_, i64>(14)? != 0,
    })
}

fn size_i64(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::InvalidInput(format!("file size {size}")))
}

impl Reader<'_> {
    /// The file of message `message_id`, if it carries one.
    pub fn file(&self, message_id: i64) -> Result<Option<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM files f JOIN messages m ON m.id = f.message_id
             JOIN conversations c ON c.session_id = m.session_id WHERE f.message_id = ?1"
        );
        self.conn
            .query_row(&sql, [message_id], file_row)
            .optional()
            .context("reading a file")
    }

    /// Every file, newest first (at most [`MAX_FILES_LISTED`]).
    pub fn files(&self) -> Result<Vec<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM files f JOIN messages m ON m.id = f.message_id
             JOIN conversations c ON c.session_id = m.session_id
             ORDER BY f.message_id DESC LIMIT {MAX_FILES_LISTED}"
        );
        self.conn
            .prepare(&sql)
            .and_then(|mut stmt| stmt.query_map([], file_row)?.collect())
            .context("listing files")
    }

    /// The files whose content hash is `hash` (newest first, at most 64): a task's file
    /// part is the file message with its hash in the task's conversation.
    pub fn files_with_hash(&self, hash: &[u8; 32]) -> Result<Vec<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM files f JOIN messages m ON m.id = f.message_id
             JOIN conversations c ON c.session_id = m.session_id
             WHERE f.hash = ?1 ORDER BY f.message_id DESC LIMIT 64"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_map([&hash[..]], file_row)?.collect())
            .context("reading the files of a hash")
    }

    /// Whether the peer `peer_id` (a contact's device) may fetch the file with content hash
    /// `hash`: it belongs to the contact of a 1:1 conversation, or to a member of a group, that
    /// a message carrying the file was sent in.
    pub fn may_fetch(&self, hash: &[u8; 32], peer_id: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM files f
                 JOIN messages m ON m.id = f.message_id
                 JOIN conversations c ON c.session_id = m.session_id
                 JOIN contact_devices d ON d.peer_id = ?2
                 WHERE f.hash = ?1 AND (c.contact_uid = d.uid OR EXISTS (
                     SELECT 1 FROM group_members g
                     WHERE g.session_id = c.session_id AND g.uid = d.uid)))",
            )
            .and_then(|mut stmt| stmt.query_row(params![&hash[..], peer_id], |r| r.get(0)))
            .context("checking who may fetch a file")
    }

    /// The files received with inline content not yet moved to the content store: (message,
    /// hash, encrypted content), at most `limit`.
    pub fn files_inline(&self, limit: usize) -> Result<Vec<InlineFile>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT message_id, hash, inline FROM files WHERE inline IS NOT NULL LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((r.get(0)?, blob(r.get(1)?)?, r.get(2)?))
                })?
                .collect()
            })
            .context("reading inline files")
    }

    /// The groups (sessions) in which a message carried the file with content hash `hash`.
    pub fn file_groups(&self, hash: &[u8; 32]) -> Result<Vec<[u8; 16]>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT DISTINCT c.session_id FROM files f
                 JOIN messages m ON m.id = f.message_id
                 JOIN conversations c ON c.session_id = m.session_id
                 WHERE f.hash = ?1 AND c.kind = 'group' LIMIT 64",
            )
            .and_then(|mut stmt| stmt.query_map([&hash[..]], |r| blob(r.get(0)?))?.collect())
            .context("listing the groups of a file")
    }

    /// The content hashes any file row still references (the content store keeps these).
    pub fn file_hashes(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.conn
            .prepare("SELECT DISTINCT hash FROM files")
            .and_then(|mut stmt| stmt.query_map([], |r| blob(r.get(0)?))?.collect())
            .context("listing file hashes")
    }
}

/// A new file row (see [`Tx::insert_file`]).
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    /// The message that carries it.
    pub message_id: i64,
    /// Whether we sent it.
    pub outgoing: bool,
    /// The content hash.
    pub hash: &'a [u8; 32],
    /// The content key.
    pub key: &'a [u8; 32],
    /// The name.
    pub name: &'a str,
    /// The plaintext size.
    pub size: u64,
    /// The MIME type.
    pub mime: &'a str,
    /// The first state (`done` for ours, else `offered`).
    pub state: &'a str,
    /// Received inline content (encrypted), kept until the driver stored it.
    pub inline: Option<&'a [u8]>,
}

impl Tx<'_> {
    /// Records the file of message `f.message_id` (in the transaction that stores the message).
    pub fn insert_file(&mut self, f: &NewFile<'_>, now: i64) -> Result<(), StoreError> {
        let done = if f.state == "done" {
            size_i64(f.size)?
        } else {
            0
        };
        self.conn
            .execute(
                "INSERT INTO files (message_id, outgoing, hash, key, name, size, mime, state,
                    done_bytes, inline, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
                params![
                    f.message_id,
                    i64::from(f.outgoing),
                    &f.hash[..],
                    &f.key[..],
                    f.name,
                    size_i64(f.size)?,
                    f.mime,
                    f.state,
                    done,
                    f.inline,
                    now
                ],
            )
            .context("storing a file")?;
        Ok(())
    }

    /// Moves every file row with content `hash` to `state` with `done_bytes` held (and the
    /// error, for `failed`); how many rows changed.
    pub fn set_file_state(
        &mut self,
        hash: &[u8; 32],
        state: &str,
        done_bytes: u64,
        error: Option<&str>,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE files SET state = ?2, done_bytes = ?3, error = ?4, updated_at = ?5
                 WHERE hash = ?1 AND outgoing = 0",
                params![&hash[..], state, size_i64(done_bytes)?, error, now],
            )
            .context("updating a file's state")
    }

    /// Forgets message `message_id`'s inline content (the content store has it now).
    pub fn clear_file_inline(&mut self, message_id: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE files SET inline = NULL WHERE message_id = ?1",
                [message_id],
            )
            .context("clearing a file's inline content")?;
        Ok(())
    }

    /// Records where message `message_id`'s file was saved.
    pub fn set_file_path(&mut self, message_id: i64, path: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE files SET path = ?2 WHERE message_id = ?1",
                params![message_id, path],
            )
            .context("recording a file's path")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
