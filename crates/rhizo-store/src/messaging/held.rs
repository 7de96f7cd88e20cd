//! Outgoing 1:1 messages held for a fresh epoch (issue 14, after a restore from an older copy):
//! the row is there (queued, in its conversation, with its sequence number) but has no
//! envelope yet; its plaintext content waits in `held` until our self-update commit is
//! confirmed, and is then sealed in the new epoch. The row and our pending commit are written
//! in one transaction, so a crash in between neither loses the message nor seals it in the
//! old epoch.
//!
//! ```text
//!  insert_held ─▶ queued, envelope NULL, held = content, next attempt NO_RETRY (never due)
//!  the commit confirmed ─▶ held_messages ─▶ sealed ─▶ release_held: envelope set, held NULL,
//!     due now
//! ```

use rusqlite::params;

use super::{NewMessage, blob, outbox::NO_RETRY};
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// A message held for a fresh epoch: what to seal once it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    /// The row.
    pub id: i64,
    /// Its sequence number (taken when it was held; the envelope uses it).
    pub seq: u64,
    /// The plaintext content to encrypt.
    pub content: Vec<u8>,
}

impl Reader<'_> {
    /// The messages of conversation `session_id` held for a fresh epoch, oldest first (at most
    /// `limit`).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn held_messages(
        &self,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<HeldMessage>, StoreError> {
        const CTX: &str = "reading held messages";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, seq, held FROM messages WHERE session_id = ?1 AND held IS NOT NULL
                 ORDER BY id LIMIT ?2",
            )
            .context(CTX)?;
        stmt.query_map(params![&session_id[..], limit as i64], |r| {
            Ok(HeldMessage {
                id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                content: r.get(2)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// The conversations with messages held for a fresh epoch (at most `limit`).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn sessions_with_held(&self, limit: usize) -> Result<Vec<[u8; 16]>, StoreError> {
        const CTX: &str = "reading held messages";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT session_id FROM messages WHERE held IS NOT NULL LIMIT ?1",
            )
            .context(CTX)?;
        stmt.query_map([limit as i64], |r| blob(r.get(0)?))
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }
}

impl Tx<'_> {
    /// Inside a transaction: queues outgoing message `m` held for a fresh epoch, with the
    /// plaintext `content` to seal then (no envelope, never due until released); its row id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails (e.g. `m.seq` taken).
    pub fn insert_held(&mut self, m: &NewMessage<'_>, content: &[u8]) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO messages (session_id, direction, sender_device, seq, kind, body,
                sent_at, state, held, next_attempt_at)
             VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8)",
                params![
                    &m.session_id[..],
                    &m.sender_device[..],
                    m.seq as i64,
                    m.kind,
                    m.body,
                    m.sent_at,
                    content,
                    NO_RETRY
                ],
            )
            .context("holding a message")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Inside a transaction: held row `id` got its `envelope` (sealed in the fresh epoch): its
    /// content is forgotten and it is due at `now`. False if it was not held (any more).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn release_held(&mut self, id: i64, envelope: &[u8], now: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE messages SET envelope = ?2, held = NULL, next_attempt_at = ?3
                 WHERE id = ?1 AND held IS NOT NULL AND state = 'queued'",
            )
            .context("releasing a held message")?
            .execute(params![id, envelope, now])
            .context("releasing a held message")?
            == 1)
    }

    /// Inside a transaction: parked row `id` moves into conversation `session_id` as sequence
    /// number `seq`, held there for a fresh epoch with the plaintext `content` (see
    /// [`Tx::unpark`](crate::Tx::unpark) for one sealed at once). False if it is not parked
    /// (any more).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails (e.g. `seq` taken in that conversation).
    pub fn unpark_held(
        &mut self,
        id: i64,
        session_id: &[u8; 16],
        seq: u64,
        content: &[u8],
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE messages SET session_id = ?2, seq = ?3, held = ?4, attempts = 0,
                   next_attempt_at = ?5, error = NULL
                 WHERE id = ?1 AND direction = 'out' AND state = 'queued' AND envelope IS NULL
                   AND held IS NULL",
            )
            .context("moving a parked message")?
            .execute(params![id, &session_id[..], seq as i64, content, NO_RETRY])
            .context("moving a parked message")?
            == 1)
    }
}
