//! The outbox: outgoing rows of `messages` not yet delivered, when each is next tried, and
//! what mailbox replicas hold.

use rusqlite::{OptionalExtension, params};

use super::blob;
use super::{MessageState, NewMessage};
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Atomic, Reader, Tx};

/// A `next_attempt_at` that is never due: the row is final where it is (e.g. a receipt once
/// mailbox replicas hold it). [`outbox_due`](crate::Reader::outbox_due) never returns such a row and
/// [`outbox_next_attempt`](crate::Reader::outbox_next_attempt) ignores it.
pub const NO_RETRY: i64 = i64::MAX;

/// An outbox entry due for a (re)send.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// The conversation.
    pub session_id: [u8; 16],
    /// The recipient.
    pub contact_uid: [u8; 32],
    /// The sequence number.
    pub seq: u64,
    /// `text`, `welcome`, `commit`, …
    pub kind: String,
    /// The signed envelope.
    pub envelope: Vec<u8>,
    /// Attempts so far.
    pub attempts: u32,
    /// `Queued` or `Sent`, or `Stored` when mailbox replicas already hold it (then only direct
    /// delivery is retried).
    pub state: MessageState,
}

/// Outgoing messages not yet delivered, per contact and state (from [`outbox_summary`](crate::Reader::outbox_summary)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSummaryRow {
    /// The recipient.
    pub contact_uid: [u8; 32],
    /// `Queued`, `Sent` or `Stored`.
    pub state: MessageState,
    /// How many messages.
    pub count: u64,
    /// The oldest one's timestamp (`sent_at`, unix ms).
    pub oldest: i64,
    /// The fewest replicas holding one of them (`Stored` only).
    pub replicas_min: Option<u32>,
}

impl Reader<'_> {
    /// Outgoing messages of direct conversations not yet delivered (queued, sent or stored)
    /// whose next attempt is due, oldest first (a group's: [`group_outbox_due`](Self::group_outbox_due)). A row whose next attempt is [`NO_RETRY`] is never due.
    pub fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        const CTX: &str = "reading the outbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.session_id, c.contact_uid, m.seq, m.envelope, m.attempts, m.kind,
                        m.state
                 FROM messages m JOIN conversations c ON c.session_id = m.session_id
                 WHERE m.direction = 'out' AND m.state IN ('queued', 'sent', 'stored')
                   AND m.next_attempt_at <= ?1 AND m.next_attempt_at < ?3
                   AND m.envelope IS NOT NULL AND c.kind = 'direct'
                 ORDER BY m.id LIMIT ?2",
            )
            .context(CTX)?;
        stmt.query_map(params![now, limit as i64, NO_RETRY], |r| {
            Ok(OutboxItem {
                id: r.get(0)?,
                session_id: blob(r.get(1)?)?,
                contact_uid: blob(r.get(2)?)?,
                seq: r.get::<_, i64>(3)? as u64,
                envelope: r.get(4)?,
                attempts: r.get::<_, i64>(5)? as u32,
                kind: r.get(6)?,
                state: MessageState::parse(&r.get::<_, String>(7)?),
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// The earliest next attempt in the outbox (queued, sent or stored), if any; rows whose next
    /// attempt is [`NO_RETRY`] are ignored.
    pub fn outbox_next_attempt(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_at) FROM messages
                 WHERE direction = 'out' AND state IN ('queued', 'sent', 'stored')
                   AND next_attempt_at < ?1",
                [NO_RETRY],
                |r| r.get(0),
            )
            .context("reading the outbox")
    }

    /// Outgoing messages not yet delivered (queued, sent or stored), counted per contact and
    /// state, by contact then state. Rows that are final where they are (next attempt
    /// [`NO_RETRY`], e.g. receipts held by replicas) are left out: nothing is pending for them.
    pub fn outbox_summary(&self) -> Result<Vec<OutboxSummaryRow>, StoreError> {
        const CTX: &str = "summarising the outbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.contact_uid, m.state, count(*), min(m.sent_at), min(m.replicas)
                 FROM messages m JOIN conversations c ON c.session_id = m.session_id
                 WHERE m.direction = 'out' AND m.state IN ('queued', 'sent', 'stored')
                   AND m.next_attempt_at < ?1 AND c.kind = 'direct'
                 GROUP BY c.contact_uid, m.state
                 ORDER BY c.contact_uid, m.state",
            )
            .context(CTX)?;
        let mut rows = stmt
            .query_map([NO_RETRY], |r| {
                Ok(OutboxSummaryRow {
                    contact_uid: blob(r.get(0)?)?,
                    state: MessageState::parse(&r.get::<_, String>(1)?),
                    count: r.get::<_, i64>(2)? as u64,
                    oldest: r.get(3)?,
                    replicas_min: r.get::<_, Option<i64>>(4)?.map(|n| n as u32),
                })
            })
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        // By contact, then by how far along (queued, sent, stored).
        rows.sort_by_key(|r| (r.contact_uid, r.state.rank()));
        Ok(rows)
    }
}

impl Tx<'_> {
    /// Persists an outgoing message as `queued`; returns its row id.
    pub fn insert_outgoing(
        &mut self,
        m: &NewMessage<'_>,
        envelope: &[u8],
        now: i64,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO messages (session_id, direction, sender_device, seq, kind, body,
                sent_at, state, envelope, next_attempt_at)
             VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8)",
                params![
                    &m.session_id[..],
                    &m.sender_device[..],
                    m.seq as i64,
                    m.kind,
                    m.body,
                    m.sent_at,
                    envelope,
                    now
                ],
            )
            .context("queueing a message")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Drops the outgoing rows to `contact_uid` of kind `agent` whose summary is `body` (the
    /// row's JSON body without the message it carries, `wire`), that
    /// are still `queued` (not handed to any device yet) and older than row `newer` (already
    /// queued): `newer` replaces them (a task's bare status update superseded by the next
    /// one). How many it dropped. A row being sent right now still arrives; its outcome then
    /// finds no row, which changes nothing. (`newer` being queued first matters: a dropped
    /// row is never the newest, so SQLite never gives its id to the next row, which an
    /// outcome in flight would then update.)
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn drop_queued_agent_rows(
        &mut self,
        contact_uid: &[u8; 32],
        body: &str,
        newer: i64,
    ) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached(
                "DELETE FROM messages
                 WHERE direction = 'out' AND state = 'queued' AND kind = 'agent'
                   AND iif(json_valid(body), json_remove(body, '$.wire'), body) = ?2
                   AND id < ?3
                   AND session_id IN
                     (SELECT session_id FROM conversations WHERE contact_uid = ?1)",
            )
            .context("dropping superseded agent messages")?
            .execute(params![&contact_uid[..], body, newer])
            .context("dropping superseded agent messages")
    }

    /// Records that `replicas` mailbox replicas hold an outgoing message that is queued, sent or
    /// already stored: it becomes `stored`, keeps the largest replica count reported, counts an
    /// attempt, clears the error and is next tried (directly) at `next_attempt_at` ([`NO_RETRY`]
    /// for a row that is final once stored, such as a receipt). `at` is when the replicas
    /// acknowledged (unix ms); it is not persisted. True if the row changed state or replica
    /// count; false for an unknown row, an incoming one, or one already delivered, read or
    /// failed (a state never goes back).
    pub fn mark_stored(
        &mut self,
        id: i64,
        replicas: u32,
        next_attempt_at: i64,
        at: i64,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "marking a message stored";
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let before: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT state, replicas FROM messages
                 WHERE id = ?1 AND direction = 'out' AND state IN ('queued', 'sent', 'stored')",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context(CTX)?;
        let Some((state, old_replicas)) = before else {
            return Ok(false);
        };
        let new_replicas = old_replicas.unwrap_or(0).max(i64::from(replicas));
        tx.execute(
            "UPDATE messages SET state = 'stored', replicas = ?2, attempts = attempts + 1,
               next_attempt_at = ?3, error = NULL
             WHERE id = ?1",
            params![id, new_replicas, next_attempt_at],
        )
        .context(CTX)?;
        tx.commit().context(CTX)?;
        tracing::trace!(
            id,
            replicas = new_replicas,
            at,
            "message held by mailbox replicas"
        );
        Ok(state != "stored" || old_replicas != Some(new_replicas))
    }

    /// Records a failed attempt on a queued, sent or stored message: its state stays, the next
    /// attempt is at `next_attempt_at`.
    pub fn record_attempt_failed(
        &mut self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?2, error = ?3
             WHERE id = ?1 AND state IN ('queued', 'sent', 'stored')",
            )
            .context("recording a send attempt")?
            .execute(params![id, next_attempt_at, error])
            .context("recording a send attempt")?;
        Ok(())
    }

    /// Makes a queued, sent or stored outgoing message due now (`now`), e.g. to resend a
    /// self-update that waited too long for its receipt. True if it changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn make_due(&mut self, id: i64, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE messages SET next_attempt_at = ?2
                 WHERE id = ?1 AND direction = 'out' AND state IN ('queued', 'sent', 'stored')
                   AND next_attempt_at > ?2",
                params![id, now],
            )
            .context("rescheduling a message")?
            == 1)
    }
}
