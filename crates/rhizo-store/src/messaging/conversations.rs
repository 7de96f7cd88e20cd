//! Conversations (`conversations`): one per MLS group, with its next sequence number.

use rusqlite::{OptionalExtension, Row, params};

use super::blob;
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    /// The envelope session id (16 bytes).
    pub session_id: [u8; 16],
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The contact it is with.
    pub contact_uid: [u8; 32],
    /// When created (unix ms).
    pub created_at: i64,
}

/// Sequence numbers one conversation may use per millisecond a node runs before a later
/// start's floor could reach them. A node sends far fewer (each envelope is an MLS encryption
/// and a durable commit), so the floor of any later start lies above every number used before.
pub const SEQUENCES_PER_MS: i64 = 1_000;

/// The lowest next sequence number of every conversation when a node starts at `now_ms`
/// (unix ms): `now_ms × SEQUENCES_PER_MS`, about 2^51 today, far below `i64::MAX` (year
/// 294,000). A clock before 1970 gives 1, the lowest valid number.
pub fn sequence_floor(now_ms: i64) -> i64 {
    now_ms.saturating_mul(SEQUENCES_PER_MS).max(1)
}

impl Reader<'_> {
    /// The conversations with a contact, oldest first.
    pub fn conversations_with(&self, uid: &[u8; 32]) -> Result<Vec<ConversationRow>, StoreError> {
        const CTX: &str = "reading conversations";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT session_id, group_id, contact_uid, created_at FROM conversations
                 WHERE contact_uid = ?1 ORDER BY created_at, session_id",
            )
            .context(CTX)?;
        stmt.query_map([&uid[..]], conversation_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// A direct conversation (with one contact) by session id; a group's is not one (see
    /// [`Reader::group_by_session`](crate::Reader::group_by_session)).
    pub fn conversation(
        &self,
        session_id: &[u8; 16],
    ) -> Result<Option<ConversationRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT session_id, group_id, contact_uid, created_at FROM conversations
             WHERE session_id = ?1 AND kind = 'direct'",
                [&session_id[..]],
                conversation_row,
            )
            .optional()
            .context("reading a conversation")
    }
}

impl Reader<'_> {
    /// Whether a direct conversation is closed; `None` if it is not known.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn conversation_closed(&self, session_id: &[u8; 16]) -> Result<Option<bool>, StoreError> {
        self.conn
            .query_row(
                "SELECT closed_at IS NOT NULL FROM conversations
                 WHERE session_id = ?1 AND kind = 'direct'",
                [&session_id[..]],
                |r| r.get(0),
            )
            .optional()
            .context("reading a conversation")
    }
}

impl Tx<'_> {
    /// Opens a closed direct conversation again, now on MLS group `group_id` (a device that
    /// dropped its copy joins it anew); false (and nothing changed) if it is not closed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn reopen_conversation(
        &mut self,
        session_id: &[u8; 16],
        group_id: &[u8],
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE conversations SET group_id = ?2, closed_at = NULL
                 WHERE session_id = ?1 AND kind = 'direct' AND closed_at IS NOT NULL",
                params![&session_id[..], group_id],
            )
            .context("reopening a conversation")?
            == 1)
    }

    /// Records a new conversation (ours, or created by a peer's Welcome); false (and nothing
    /// changed) if it was known.
    pub fn insert_conversation(&mut self, row: &ConversationRow) -> Result<bool, StoreError> {
        Ok(self.conn
            .execute(
                "INSERT OR IGNORE INTO conversations (session_id, group_id, contact_uid, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    &row.session_id[..],
                    row.group_id,
                    &row.contact_uid[..],
                    row.created_at
                ],
            )
            .context("creating a conversation")?
            == 1)
    }

    /// Raises every conversation's next sequence number to at least the floor of a node
    /// started at `now_ms` ([`sequence_floor`]); the number of conversations raised.
    ///
    /// A node does this each time it starts, so a node started on a database restored from an
    /// older copy never sends a number it already used after that copy was made: those were
    /// all below the floor of a later start (see [`SEQUENCES_PER_MS`]).
    pub fn raise_sequence_floor(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        let floor = sequence_floor(now_ms);
        self.conn
            .execute(
                "UPDATE conversations SET next_seq = ?1 WHERE next_seq < ?1",
                [floor],
            )
            .context("raising the sequence floor")
    }

    /// Takes the next sequence number of a conversation (persisted before use, so a number is
    /// never handed out twice, also across a crash).
    pub fn take_next_seq(&mut self, session_id: &[u8; 16]) -> Result<u64, StoreError> {
        let seq: i64 = self
            .conn
            .query_row(
                "UPDATE conversations SET next_seq = next_seq + 1 WHERE session_id = ?1
                 RETURNING next_seq - 1",
                [&session_id[..]],
                |r| r.get(0),
            )
            .context("taking a sequence number")?;
        Ok(seq as u64)
    }
}

fn conversation_row(r: &Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        session_id: blob(r.get(0)?)?,
        group_id: r.get(1)?,
        contact_uid: blob(r.get(2)?)?,
        created_at: r.get(3)?,
    })
}
