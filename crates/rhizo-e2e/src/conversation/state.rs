//! This crate's per-conversation bookkeeping next to openmls' state: rekey
//! counters, the pending own commit, and the deferred-message queue
//! (`e2e_conversations` and `e2e_deferred`).

use rusqlite::{Connection, OptionalExtension, params};

use super::commit_id;
use crate::{E2eError, MAX_DEFERRED};

/// Our own commit, created by `self_update` and waiting for `confirm_commit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingCommit {
    /// The serialized commit, exactly as returned to the caller.
    pub(super) message: Vec<u8>,
    /// SHA-256 of `message`: the tie-break key.
    pub(super) id: [u8; 32],
    /// The epoch the commit was made in (the group's epoch while pending).
    pub(super) epoch: u64,
    /// `now` given to `self_update`: becomes the last commit time.
    pub(super) created_at: u64,
}

/// One row of `e2e_conversations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConversationState {
    pub(super) group_id: Vec<u8>,
    /// Messages this device encrypted since its last own commit (or since it
    /// created or joined the conversation).
    pub(super) sent_since_commit: u64,
    /// When that commit was made, or the conversation created or joined.
    pub(super) last_commit_at: u64,
    pub(super) pending: Option<PendingCommit>,
    /// Deferred messages dropped: queue overflow or failure on retry.
    pub(super) deferred_dropped: u64,
}

impl ConversationState {
    /// Fresh state for a conversation created or joined at `now`.
    pub(super) fn new(group_id: Vec<u8>, now: u64) -> Self {
        Self {
            group_id,
            sent_since_commit: 0,
            last_commit_at: now,
            pending: None,
            deferred_dropped: 0,
        }
    }

    pub(super) fn load(conn: &Connection, group_id: &[u8]) -> Result<Option<Self>, E2eError> {
        let row = conn
            .query_row(
                "SELECT sent_since_commit, last_commit_at, pending_commit, pending_commit_epoch,
                        pending_commit_at, deferred_dropped
                 FROM e2e_conversations WHERE group_id = ?1",
                [group_id],
                |row| {
                    Ok((
                        row.get::<_, u64>(0)?,
                        row.get::<_, u64>(1)?,
                        row.get::<_, Option<Vec<u8>>>(2)?,
                        row.get::<_, Option<u64>>(3)?,
                        row.get::<_, Option<u64>>(4)?,
                        row.get::<_, u64>(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(
            |(sent_since_commit, last_commit_at, message, epoch, created_at, deferred_dropped)| {
                let pending = match (message, epoch, created_at) {
                    (Some(message), Some(epoch), Some(created_at)) => Some(PendingCommit {
                        id: commit_id(&message),
                        message,
                        epoch,
                        created_at,
                    }),
                    _ => None,
                };
                Self {
                    group_id: group_id.to_vec(),
                    sent_since_commit,
                    last_commit_at,
                    pending,
                    deferred_dropped,
                }
            },
        ))
    }

    pub(super) fn save(&self, conn: &Connection) -> Result<(), E2eError> {
        let pending = self.pending.as_ref();
        conn.execute(
            "INSERT OR REPLACE INTO e2e_conversations
                (group_id, sent_since_commit, last_commit_at, pending_commit,
                 pending_commit_epoch, pending_commit_at, deferred_dropped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                self.group_id,
                self.sent_since_commit,
                self.last_commit_at,
                pending.map(|p| &p.message),
                pending.map(|p| p.epoch),
                pending.map(|p| p.created_at),
                self.deferred_dropped,
            ],
        )?;
        Ok(())
    }

    /// Buffers a future-epoch message. A message already buffered is not
    /// stored twice. If the queue is full the oldest entry is dropped and
    /// counted in `deferred_dropped`.
    pub(super) fn defer(
        &mut self,
        conn: &Connection,
        epoch: u64,
        message: &[u8],
        now: u64,
    ) -> Result<(), E2eError> {
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO e2e_deferred (group_id, epoch, message_hash, message, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                self.group_id,
                epoch,
                commit_id(message).as_slice(),
                message,
                now
            ],
        )?;
        if inserted == 0 {
            return Ok(());
        }
        let dropped = conn.execute(
            "DELETE FROM e2e_deferred WHERE group_id = ?1 AND id NOT IN (
                SELECT id FROM e2e_deferred WHERE group_id = ?1 ORDER BY id DESC LIMIT ?2)",
            params![self.group_id, MAX_DEFERRED],
        )?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "deferred MLS message queue full; dropped the oldest"
            );
            self.deferred_dropped = self.deferred_dropped.saturating_add(dropped as u64);
        }
        Ok(())
    }

    /// Removes and returns, oldest first, the buffered messages whose epoch
    /// is at most `epoch` (ready to be processed now).
    pub(super) fn take_ready(
        &self,
        conn: &Connection,
        epoch: u64,
    ) -> Result<Vec<Vec<u8>>, E2eError> {
        let mut statement = conn.prepare(
            "SELECT message FROM e2e_deferred WHERE group_id = ?1 AND epoch <= ?2 ORDER BY id",
        )?;
        let ready = statement
            .query_map(params![self.group_id, epoch], |row| row.get(0))?
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        conn.execute(
            "DELETE FROM e2e_deferred WHERE group_id = ?1 AND epoch <= ?2",
            params![self.group_id, epoch],
        )?;
        Ok(ready)
    }

    /// Drops (and counts) buffered messages of epochs before `oldest`: in a group, parked
    /// messages that no rollback can make decryptable any more.
    pub(super) fn drop_stale(&mut self, conn: &Connection, oldest: u64) -> Result<(), E2eError> {
        let dropped = conn.execute(
            "DELETE FROM e2e_deferred WHERE group_id = ?1 AND epoch < ?2",
            params![self.group_id, oldest],
        )?;
        self.deferred_dropped = self.deferred_dropped.saturating_add(dropped as u64);
        Ok(())
    }

    /// Deletes this conversation's rows (the conversation is forgotten).
    pub(super) fn delete(&self, conn: &Connection) -> Result<(), E2eError> {
        conn.execute(
            "DELETE FROM e2e_deferred WHERE group_id = ?1",
            [&self.group_id],
        )?;
        conn.execute(
            "DELETE FROM e2e_conversations WHERE group_id = ?1",
            [&self.group_id],
        )?;
        Ok(())
    }

    /// How many messages are buffered for this conversation.
    pub(super) fn deferred_len(&self, conn: &Connection) -> Result<usize, E2eError> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM e2e_deferred WHERE group_id = ?1",
            [&self.group_id],
            |row| row.get(0),
        )?)
    }
}
