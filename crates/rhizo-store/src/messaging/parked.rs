//! Outgoing messages parked while their 1:1 conversation is re-established: the recipient lost
//! the conversation (or could not join it), so what was not delivered waits, still `queued`,
//! for a new conversation with the contact, and then moves into it as the same row (same id,
//! same `sent_at`, new session, sequence number and envelope).
//!
//! ```text
//!  park_conversation ─▶ the conversation closes; its texts, agent messages and profile
//!     updates not delivered stay `queued` with no envelope (parked), when to try next in
//!     `next_attempt_at`; everything else in it (Welcome, commits, receipts) fails
//!  parked_due ─▶ the contacts whose parked rows are due ─▶ a new conversation ─▶ unpark
//!  (or reschedule_parked, and after the last attempt fail_parked)
//! ```
//!
//! A parked row: outgoing, `queued`, no envelope, in a closed direct conversation. The outbox
//! ([`outbox_due`](crate::Reader::outbox_due)) never sends it (it has no envelope); its
//! `next_attempt_at` still wakes the driver.

use rusqlite::{OptionalExtension, params};

use super::{MessageRow, outbox::NO_RETRY};
use super::{blob, messages::message_row};
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// The kinds of outgoing rows that are parked (re-sent in a new conversation); every other
/// kind belongs to the lost conversation's MLS group and fails with it.
pub const PARKED_KINDS: [&str; 3] = ["text", "agent", "profile"];

/// The rows [`PARKED_KINDS`] names, as SQL.
const PARKED_KINDS_SQL: &str = "('text', 'agent', 'profile')";

/// A contact whose parked messages are due for another attempt at a new conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedContact {
    /// The contact.
    pub contact_uid: [u8; 32],
    /// Attempts at a new conversation that failed so far.
    pub attempts: u32,
    /// How many messages wait.
    pub messages: u32,
}

/// What [`Tx::park_conversation`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parked {
    /// Rows parked (still `queued`), oldest first.
    pub parked: Vec<i64>,
    /// Rows parked that had been `sent` or `stored` (their state went back to `queued`).
    pub requeued: Vec<i64>,
    /// Rows that failed with the conversation.
    pub failed: Vec<i64>,
}

impl Reader<'_> {
    /// Contacts whose parked messages are due at `now` (at most `limit`, the longest waiting
    /// first).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn parked_due(&self, now: i64, limit: usize) -> Result<Vec<ParkedContact>, StoreError> {
        const CTX: &str = "reading parked messages";
        let sql = format!(
            "SELECT c.contact_uid, max(m.attempts), count(*), min(m.next_attempt_at) AS due
             FROM messages m JOIN conversations c ON c.session_id = m.session_id
             WHERE m.direction = 'out' AND m.state = 'queued' AND m.envelope IS NULL
               AND m.kind IN {PARKED_KINDS_SQL} AND c.kind = 'direct'
               AND c.closed_at IS NOT NULL
             GROUP BY c.contact_uid HAVING due <= ?1 ORDER BY due LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(params![now, limit as i64], |r| {
            Ok(ParkedContact {
                contact_uid: blob(r.get(0)?)?,
                attempts: r.get::<_, i64>(1)? as u32,
                messages: r.get::<_, i64>(2)? as u32,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// The messages to `contact_uid` parked for a new conversation, in the order they were
    /// queued (at most `limit`).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn parked_messages(
        &self,
        contact_uid: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        const CTX: &str = "reading parked messages";
        let sql = format!(
            "SELECT {} FROM messages m
             WHERE {} ORDER BY m.id LIMIT ?2",
            super::messages::MESSAGE_COLUMNS,
            parked_of_contact()
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(params![&contact_uid[..], limit as i64], message_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// How many direct conversations with `contact_uid` were closed at or after `since`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn conversations_closed_since(
        &self,
        contact_uid: &[u8; 32],
        since: i64,
    ) -> Result<u32, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM conversations
                 WHERE contact_uid = ?1 AND kind = 'direct' AND closed_at >= ?2",
                params![&contact_uid[..], since],
                |r| r.get::<_, i64>(0),
            )
            .context("counting closed conversations")
            .map(|n| n as u32)
    }

    /// Whether row `id` is an outgoing envelope of conversation `session_id` (not parked, not
    /// moved to another conversation): what an answer to that envelope may change.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn outgoing_in_session(&self, id: i64, session_id: &[u8; 16]) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM messages WHERE id = ?1 AND session_id = ?2 AND direction = 'out'
                   AND envelope IS NOT NULL",
            )
            .context("reading a message")?
            .query_row(params![id, &session_id[..]], |_| Ok(()))
            .optional()
            .context("reading a message")
            .map(|r| r.is_some())
    }
}

/// The SQL condition for a parked row of contact `?1` (on `messages m`).
fn parked_of_contact() -> String {
    format!(
        "m.direction = 'out' AND m.state = 'queued' AND m.envelope IS NULL
         AND m.kind IN {PARKED_KINDS_SQL}
         AND m.session_id IN (SELECT session_id FROM conversations
           WHERE contact_uid = ?1 AND kind = 'direct' AND closed_at IS NOT NULL)"
    )
}

impl Tx<'_> {
    /// Inside a transaction: closes a direct conversation the recipient lost, or could not
    /// join, and parks what waited to go in it: its texts, agent messages and profile updates
    /// not yet delivered become `queued` with no envelope, next tried at `retry_at`, with
    /// `error` saying why; what else waited (the Welcome, commits, receipts, other kinds held
    /// for a fresh epoch) fails with `error`. `None` if it was closed already (or is not known).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn park_conversation(
        &mut self,
        session_id: &[u8; 16],
        error: &str,
        retry_at: i64,
        now: i64,
    ) -> Result<Option<Parked>, StoreError> {
        const CTX: &str = "parking a conversation's messages";
        let closed = self
            .conn
            .execute(
                "UPDATE conversations SET closed_at = ?2
                 WHERE session_id = ?1 AND closed_at IS NULL AND kind = 'direct'",
                params![&session_id[..], now],
            )
            .context(CTX)?;
        if closed == 0 {
            return Ok(None);
        }
        let mut out = Parked::default();
        let before: Vec<(i64, String)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, state FROM messages WHERE session_id = ?1 AND direction = 'out'
                   AND state IN ('queued', 'sent', 'stored') AND kind IN {PARKED_KINDS_SQL}
                 ORDER BY id"
            ))
            .context(CTX)?
            .query_map([&session_id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .context(CTX)?
            .collect::<Result<_, _>>()
            .context(CTX)?;
        self.conn
            .prepare_cached(&format!(
                "UPDATE messages SET state = 'queued', envelope = NULL, attempts = 0,
                   next_attempt_at = ?2, error = ?3, replicas = NULL, held = NULL
                 WHERE session_id = ?1 AND direction = 'out'
                   AND state IN ('queued', 'sent', 'stored') AND kind IN {PARKED_KINDS_SQL}"
            ))
            .context(CTX)?
            .execute(params![&session_id[..], retry_at, error])
            .context(CTX)?;
        for (id, state) in before {
            if state != "queued" {
                out.requeued.push(id);
            }
            out.parked.push(id);
        }
        out.failed = self
            .conn
            .prepare_cached(
                "UPDATE messages SET state = 'failed', error = ?2, next_attempt_at = ?3,
                   held = NULL
                 WHERE session_id = ?1 AND direction = 'out'
                   AND state IN ('queued', 'sent', 'stored')
                   AND (envelope IS NOT NULL OR held IS NOT NULL)
                 RETURNING id",
            )
            .context(CTX)?
            .query_map(params![&session_id[..], error, NO_RETRY], |r| r.get(0))
            .context(CTX)?
            .collect::<Result<Vec<i64>, _>>()
            .context(CTX)?;
        Ok(Some(out))
    }

    /// Inside a transaction: an attempt at a new conversation with `contact_uid` failed; its
    /// parked messages count it and are next tried at `retry_at`, `error` saying why. How many
    /// rows it changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn reschedule_parked(
        &mut self,
        contact_uid: &[u8; 32],
        retry_at: i64,
        error: &str,
    ) -> Result<usize, StoreError> {
        let sql = format!(
            "UPDATE messages AS m SET attempts = attempts + 1, next_attempt_at = ?2, error = ?3
             WHERE {}",
            parked_of_contact()
        );
        self.conn
            .execute(&sql, params![&contact_uid[..], retry_at, error])
            .context("rescheduling parked messages")
    }

    /// Inside a transaction: no new conversation with `contact_uid` could be made: its parked
    /// messages fail with `error`. Their ids.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn fail_parked(
        &mut self,
        contact_uid: &[u8; 32],
        error: &str,
    ) -> Result<Vec<i64>, StoreError> {
        const CTX: &str = "failing parked messages";
        let sql = format!(
            "UPDATE messages AS m SET state = 'failed', error = ?2, next_attempt_at = ?3
             WHERE {} RETURNING id",
            parked_of_contact()
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        let mut ids = stmt
            .query_map(params![&contact_uid[..], error, NO_RETRY], |r| r.get(0))
            .context(CTX)?
            .collect::<Result<Vec<i64>, _>>()
            .context(CTX)?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Inside a transaction: moves parked row `id` into conversation `session_id` as sequence
    /// number `seq` with its new `envelope`, queued and due at `now` (its id, kind, body and
    /// `sent_at` stay). False if it is not parked (any more).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails (e.g. `seq` taken in that conversation).
    pub fn unpark(
        &mut self,
        id: i64,
        session_id: &[u8; 16],
        seq: u64,
        envelope: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE messages SET session_id = ?2, seq = ?3, envelope = ?4, attempts = 0,
                   next_attempt_at = ?5, error = NULL
                 WHERE id = ?1 AND direction = 'out' AND state = 'queued' AND envelope IS NULL",
            )
            .context("moving a parked message")?
            .execute(params![id, &session_id[..], seq as i64, envelope, now])
            .context("moving a parked message")?
            == 1)
    }

    /// Inside a transaction: parked row `id` will not be sent again (nothing can rebuild it):
    /// it fails with `error`. True if it changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn fail_parked_message(&mut self, id: i64, error: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE messages SET state = 'failed', error = ?2, next_attempt_at = ?3
                 WHERE id = ?1 AND direction = 'out' AND state = 'queued' AND envelope IS NULL",
            )
            .context("failing a parked message")?
            .execute(params![id, error, NO_RETRY])
            .context("failing a parked message")?
            == 1)
    }
}
