//! Messages (`messages`): the history of each conversation, both directions, and the states
//! an outgoing message moves through.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::outbox::NO_RETRY;
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// Most messages returned by one history query.
pub const MAX_HISTORY: usize = 10_000;

/// Where an outgoing message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Persisted, not yet handed to any device of the recipient.
    Queued,
    /// Handed over, no receipt yet.
    Sent,
    /// Held by mailbox replicas for the offline recipient (how many: [`MessageRow::replicas`]);
    /// direct delivery is still retried, slowly.
    Stored,
    /// A device of the recipient signed a delivery receipt.
    Delivered,
    /// The recipient's client showed it.
    Read,
    /// Refused by the recipient (see the error).
    Failed,
    /// An incoming message, stored.
    Received,
}

impl MessageState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Stored => "stored",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "sent" => Self::Sent,
            "stored" => Self::Stored,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            "received" => Self::Received,
            _ => Self::Queued,
        }
    }

    /// Rank for monotone updates: a state never goes back.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Sent => 1,
            Self::Stored => 2,
            Self::Delivered | Self::Failed | Self::Received => 3,
            Self::Read => 4,
        }
    }
}

impl std::fmt::Display for MessageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// Row id.
    pub id: i64,
    /// The conversation.
    pub session_id: [u8; 16],
    /// Whether we sent it.
    pub outgoing: bool,
    /// The sending device.
    pub sender_device: [u8; 32],
    /// The sender's sequence number.
    pub seq: u64,
    /// `text`, `welcome`, `commit`, …
    pub kind: String,
    /// The text, for text messages.
    pub body: Option<String>,
    /// Sender's timestamp (unix ms).
    pub sent_at: i64,
    /// When it arrived (incoming) or was delivered.
    pub received_at: Option<i64>,
    /// State.
    pub state: MessageState,
    /// Attempts so far (outgoing).
    pub attempts: u32,
    /// Last error (outgoing).
    pub error: Option<String>,
    /// How many mailbox replicas acknowledged holding it (outgoing, once `stored`).
    pub replicas: Option<u32>,
}

/// A message to store, in either direction: what both have in common. The direction-specific
/// part is an argument of [`Tx::insert_outgoing`] (the signed envelope to send) or
/// [`Tx::insert_incoming`] (the digest of the envelope it came in).
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// The conversation.
    pub session_id: [u8; 16],
    /// The sending device (ours for an outgoing message).
    pub sender_device: [u8; 32],
    /// Its sequence number (for ours, from [`Tx::take_next_seq`]).
    pub seq: u64,
    /// `text`, `welcome`, `commit`, `receipt`, …
    pub kind: &'a str,
    /// The text, for text messages.
    pub body: Option<&'a str>,
    /// The sender's timestamp (unix ms).
    pub sent_at: i64,
}

/// An incoming message shown to the user but not yet acknowledged as read.
#[derive(Debug, Clone)]
pub struct UnreadMessage {
    /// Row id.
    pub id: i64,
    /// The sending device.
    pub sender_device: [u8; 32],
    /// Its sequence number.
    pub seq: u64,
    /// The envelope digest.
    pub digest: [u8; 32],
}

/// Our newest outgoing self-update (commit) of a conversation, as [`latest_commits`](crate::Reader::latest_commits)
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommit {
    /// Row id.
    pub id: i64,
    /// The conversation.
    pub session_id: [u8; 16],
    /// The conversation's MLS group id.
    pub group_id: Vec<u8>,
    /// Its state.
    pub state: MessageState,
    /// The signed envelope carrying it.
    pub envelope: Vec<u8>,
    /// When it was made (unix ms).
    pub sent_at: i64,
}

pub(super) const MESSAGE_COLUMNS: &str = "id, session_id, direction, sender_device, seq, kind, body, \
                               sent_at, received_at, state, attempts, error, replicas";

impl Reader<'_> {
    /// The outgoing message with this (session, our device, seq).
    pub fn outgoing_message_id(
        &self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM messages WHERE session_id = ?1 AND sender_device = ?2
                   AND seq = ?3 AND direction = 'out'",
                params![&session_id[..], &sender_device[..], seq as i64],
                |r| r.get(0),
            )
            .optional()
            .context("finding a message")
    }

    /// A conversation's history in order: by sender timestamp, then sender, then sequence.
    pub fn messages(
        &self,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        const CTX: &str = "reading messages";
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE session_id = ?1 AND kind IN ('text', 'file')
             ORDER BY sent_at DESC, sender_device DESC, seq DESC LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        let mut rows = stmt
            .query_map(
                params![&session_id[..], limit.min(MAX_HISTORY) as i64],
                message_row,
            )
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        // Newest N were selected; show them oldest first.
        rows.reverse();
        Ok(rows)
    }

    /// One message by id.
    pub fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
        self.conn
            .query_row(&sql, [id], message_row)
            .optional()
            .context("reading a message")
    }

    /// The newest outgoing commit of each open conversation (at most `limit`, oldest
    /// conversations first): what a pending self-update is checked against.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn latest_commits(&self, limit: usize) -> Result<Vec<SentCommit>, StoreError> {
        const CTX: &str = "reading sent commits";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.session_id, c.group_id, m.state, m.envelope, m.sent_at
                 FROM conversations c JOIN messages m ON m.id = (
                     SELECT max(id) FROM messages
                     WHERE session_id = c.session_id AND direction = 'out' AND kind = 'commit')
                 WHERE c.closed_at IS NULL AND c.kind = 'direct' AND m.envelope IS NOT NULL
                 ORDER BY c.created_at, c.session_id LIMIT ?1",
            )
            .context(CTX)?;
        stmt.query_map([limit as i64], |r| {
            Ok(SentCommit {
                id: r.get(0)?,
                session_id: blob(r.get(1)?)?,
                group_id: r.get(2)?,
                state: MessageState::parse(&r.get::<_, String>(3)?),
                envelope: r.get(4)?,
                sent_at: r.get(5)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }
}

impl Tx<'_> {
    /// Stores an incoming message, with the digest of the envelope it came in (named by read
    /// receipts); `None` if it was already stored.
    pub fn insert_incoming(
        &mut self,
        m: &NewMessage<'_>,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.insert_received(m, ("in", "received"), digest, now)
            .context("storing a message")
    }

    /// Stores a message another device of ours sent (issue 15: it reached this device as a
    /// leaf of the same conversation): outgoing, `delivered` as far as this device is concerned
    /// (the sending device tracks the recipient's receipts), no envelope to send; `None` if it
    /// was already stored.
    pub fn insert_sent_elsewhere(
        &mut self,
        m: &NewMessage<'_>,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.insert_received(m, ("out", "delivered"), digest, now)
            .context("storing a message sent from another device")
    }

    /// One message that reached this device, with its (direction, state); `None` if stored.
    fn insert_received(
        &mut self,
        m: &NewMessage<'_>,
        (direction, state): (&str, &str),
        digest: &[u8; 32],
        now: i64,
    ) -> rusqlite::Result<Option<i64>> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO messages (session_id, direction, sender_device, seq, kind,
                body, sent_at, received_at, state, digest)
             VALUES (?1, ?9, ?2, ?3, ?4, ?5, ?6, ?7, ?10, ?8)",
            params![
                &m.session_id[..],
                &m.sender_device[..],
                m.seq as i64,
                m.kind,
                m.body,
                m.sent_at,
                now,
                &digest[..],
                direction,
                state
            ],
        )?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// Moves a message forward to `state` (never backwards); true when it changed.
    pub fn advance_message_state(
        &mut self,
        id: i64,
        state: MessageState,
        at: i64,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "updating a message";
        let current: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM messages WHERE id = ?1")
            .context(CTX)?
            .query_row([id], |row| row.get(0))
            .optional()
            .context(CTX)?;
        let Some(current) = current else {
            return Ok(false);
        };
        if MessageState::parse(&current).rank() >= state.rank() {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "UPDATE messages SET state = ?2, received_at = coalesce(received_at, ?3),
               error = ?4, attempts = attempts + (?2 = 'sent')
             WHERE id = ?1",
            )
            .context(CTX)?
            .execute(params![id, state.as_str(), at, error])
            .context(CTX)?;
        Ok(true)
    }

    /// Marks a conversation's received messages read; returns them.
    pub fn mark_read(
        &mut self,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<UnreadMessage>, StoreError> {
        const CTX: &str = "marking messages read";
        let unread = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id, sender_device, seq, digest FROM messages
                     WHERE session_id = ?1 AND direction = 'in' AND state = 'received'
                       AND digest IS NOT NULL
                     ORDER BY id LIMIT ?2",
                )
                .context(CTX)?;
            stmt.query_map(params![&session_id[..], limit as i64], |r| {
                Ok(UnreadMessage {
                    id: r.get(0)?,
                    sender_device: blob(r.get(1)?)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    digest: blob(r.get(3)?)?,
                })
            })
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?
        };
        for m in &unread {
            self.conn
                .execute("UPDATE messages SET state = 'read' WHERE id = ?1", [m.id])
                .context(CTX)?;
        }
        Ok(unread)
    }

    /// One received message (session, sender device, seq) becomes `read`, without a receipt
    /// (another of our devices read it); whether it was unread.
    pub fn mark_read_by_envelope(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "marking a message read";
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE messages SET state = 'read'
                 WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3
                   AND direction = 'in' AND state = 'received'",
            )
            .context(CTX)?
            .execute(params![&session_id[..], &sender_device[..], seq as i64])
            .context(CTX)?;
        Ok(changed > 0)
    }

    /// Our outgoing message (session, our device, seq) becomes `read` (from
    /// queued, sent, stored or delivered), if `envelope_matches` accepts the envelope we sent (the
    /// receipt names its digest); returns its id when it changed.
    pub fn mark_outgoing_read(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        if !sent_envelope_matches(self.conn, session_id, sender_device, seq, envelope_matches)? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "UPDATE messages SET state = 'read', received_at = coalesce(received_at, ?4)
             WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3 AND direction = 'out'
               AND state IN ('queued', 'sent', 'stored', 'delivered')
             RETURNING id",
                params![&session_id[..], &sender_device[..], seq as i64, at],
                |r| r.get(0),
            )
            .optional()
            .context("marking a message read")
    }

    /// Our outgoing message (session, our device, seq) becomes `delivered`
    /// (from queued, sent or stored only: a read or failed message stays), if `envelope_matches`
    /// accepts the envelope we sent (the receipt names its digest); returns its id when it changed.
    pub fn mark_outgoing_delivered(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        if !sent_envelope_matches(self.conn, session_id, sender_device, seq, envelope_matches)? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "UPDATE messages SET state = 'delivered', received_at = coalesce(received_at, ?4)
             WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3 AND direction = 'out'
               AND state IN ('queued', 'sent', 'stored')
             RETURNING id",
                params![&session_id[..], &sender_device[..], seq as i64, at],
                |r| r.get(0),
            )
            .optional()
            .context("marking a message delivered")
    }

    /// Our outgoing message (session, our device, seq) becomes `failed` with
    /// `error` (from queued, sent or stored only), if `envelope_matches` accepts the envelope we
    /// sent; returns its id when it changed.
    pub fn mark_outgoing_failed(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        error: &str,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        if !sent_envelope_matches(self.conn, session_id, sender_device, seq, envelope_matches)? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "UPDATE messages SET state = 'failed', error = ?5, next_attempt_at = ?6,
               received_at = coalesce(received_at, ?4)
             WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3 AND direction = 'out'
               AND state IN ('queued', 'sent', 'stored')
             RETURNING id",
                params![
                    &session_id[..],
                    &sender_device[..],
                    seq as i64,
                    at,
                    error,
                    NO_RETRY
                ],
                |r| r.get(0),
            )
            .optional()
            .context("marking a message failed")
    }
}

/// Whether we sent (session, our device, seq) with an envelope that `envelope_matches` accepts.
fn sent_envelope_matches(
    tx: &Connection,
    session_id: &[u8; 16],
    sender_device: &[u8; 32],
    seq: u64,
    envelope_matches: impl Fn(&[u8]) -> bool,
) -> Result<bool, StoreError> {
    let sent: Option<Vec<u8>> = tx
        .query_row(
            "SELECT envelope FROM messages WHERE session_id = ?1 AND sender_device = ?2
               AND seq = ?3 AND direction = 'out' AND envelope IS NOT NULL",
            params![&session_id[..], &sender_device[..], seq as i64],
            |r| r.get(0),
        )
        .optional()
        .context("reading a sent envelope")?;
    Ok(sent.is_some_and(|e| envelope_matches(&e)))
}

pub(super) fn message_row(row: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: row.get(0)?,
        session_id: blob(row.get(1)?)?,
        outgoing: row.get::<_, String>(2)? == "out",
        sender_device: blob(row.get(3)?)?,
        seq: row.get::<_, i64>(4)? as u64,
        kind: row.get(5)?,
        body: row.get(6)?,
        sent_at: row.get(7)?,
        received_at: row.get(8)?,
        state: MessageState::parse(&row.get::<_, String>(9)?),
        attempts: row.get::<_, i64>(10)? as u32,
        error: row.get(11)?,
        replicas: row.get::<_, Option<i64>>(12)?.map(|n| n as u32),
    })
}

pub(crate) fn blob<const N: usize>(v: Vec<u8>) -> Result<[u8; N], rusqlite::Error> {
    let len = v.len();
    <[u8; N]>::try_from(v).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("expected {N} bytes, found {len}").into(),
        )
    })
}
