//! History transfer (issue 15): the text messages a newly linked device is sent, read in pages
//! by row id (the cursor), and stored on that device as history (never receipted, never sent).

use rusqlite::params;

use super::messages::blob;
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// One text message of the history, as a page carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// Its row id on the sending device (the cursor).
    pub id: i64,
    /// Its conversation's session id.
    pub session_id: [u8; 16],
    /// Whether we sent it.
    pub outgoing: bool,
    /// The device that sent it.
    pub sender_device: [u8; 32],
    /// Its sequence number in the session.
    pub seq: u64,
    /// The text.
    pub body: String,
    /// The sender's clock when it was sent (unix ms).
    pub sent_at: i64,
    /// Whether it was read (incoming) or got a READ receipt (outgoing).
    pub read: bool,
}

impl Reader<'_> {
    /// Up to `limit` text messages with a row id above `after` sent at or after `since` (unix
    /// ms), oldest row first, leaving out `skip_session` (the sync group's).
    pub fn history_page(
        &self,
        after: i64,
        since: i64,
        skip_session: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        const CTX: &str = "reading history";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, session_id, direction, sender_device, seq, body, sent_at, state
                 FROM messages WHERE id > ?1 AND sent_at >= ?2 AND session_id != ?3
                   AND kind = 'text' AND body IS NOT NULL
                 ORDER BY id LIMIT ?4",
            )
            .context(CTX)?;
        stmt.query_map(
            params![after, since, &skip_session[..], limit as i64],
            |r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    session_id: blob(r.get(1)?)?,
                    outgoing: r.get::<_, String>(2)? == "out",
                    sender_device: blob(r.get(3)?)?,
                    seq: r.get::<_, i64>(4)? as u64,
                    body: r.get(5)?,
                    sent_at: r.get(6)?,
                    read: r.get::<_, String>(7)? == "read",
                })
            },
        )
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// How many messages [`Reader::history_page`] would give from the start.
    pub fn history_count(&self, since: i64, skip_session: &[u8; 16]) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM messages WHERE sent_at >= ?1 AND session_id != ?2
                   AND kind = 'text' AND body IS NOT NULL",
                params![since, &skip_session[..]],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .context("counting history")
    }
}

/// Most history messages kept for conversations this device is not in yet
/// ([`HistoryStored::Pending`]); beyond it a message is refused ([`HistoryStored::Full`]).
pub const MAX_PENDING_HISTORY: u64 = 200_000;

/// What [`Tx::insert_history`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryStored {
    /// Stored in its conversation.
    Stored,
    /// Already there (the same message came live, or a page came twice): kept as it was.
    Kept,
    /// Its conversation is not here yet: kept aside, and moved into the conversation when one
    /// with its session id is created (a trigger of migration 26).
    Pending,
    /// Its conversation is not here and [`MAX_PENDING_HISTORY`] messages already wait: not
    /// stored.
    Full,
}

impl Tx<'_> {
    /// Stores one message of a history transfer in its conversation, or, when that
    /// conversation is not here yet, aside until it is (a message already there is kept as
    /// it was). An incoming one is `read` or `received` without a digest (never receipted),
    /// an outgoing one `delivered` or `read` without an envelope (never sent). `room`: how many
    /// more may be kept aside (start from [`MAX_PENDING_HISTORY`] less
    /// [`Reader::pending_history_count`]); lowered for each one kept aside.
    pub fn insert_history(
        &mut self,
        row: &HistoryRow,
        now: i64,
        room: &mut u64,
    ) -> Result<HistoryStored, StoreError> {
        const CTX: &str = "storing history";
        let state = match (row.outgoing, row.read) {
            (_, true) => "read",
            (true, false) => "delivered",
            (false, false) => "received",
        };
        let direction = if row.outgoing { "out" } else { "in" };
        let here: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM conversations WHERE session_id = ?1)")
            .context(CTX)?
            .query_row([&row.session_id[..]], |r| r.get(0))
            .context(CTX)?;
        if here {
            let n = self
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO messages (session_id, direction, sender_device, seq,
                        kind, body, sent_at, received_at, state)
                     VALUES (?1, ?2, ?3, ?4, 'text', ?5, ?6, ?7, ?8)",
                )
                .context(CTX)?
                .execute(params![
                    &row.session_id[..],
                    direction,
                    &row.sender_device[..],
                    row.seq as i64,
                    row.body,
                    row.sent_at,
                    now,
                    state
                ])
                .context(CTX)?;
            return Ok(if n == 1 {
                HistoryStored::Stored
            } else {
                HistoryStored::Kept
            });
        }
        if *room == 0 {
            let waiting: bool = self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM history_pending
                     WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3)",
                )
                .context(CTX)?
                .query_row(
                    params![&row.session_id[..], &row.sender_device[..], row.seq as i64],
                    |r| r.get(0),
                )
                .context(CTX)?;
            return Ok(if waiting {
                HistoryStored::Kept
            } else {
                HistoryStored::Full
            });
        }
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO history_pending (session_id, direction, sender_device, seq,
                    body, sent_at, received_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .context(CTX)?
            .execute(params![
                &row.session_id[..],
                direction,
                &row.sender_device[..],
                row.seq as i64,
                row.body,
                row.sent_at,
                now,
                state
            ])
            .context(CTX)?;
        Ok(if n == 1 {
            *room -= 1;
            HistoryStored::Pending
        } else {
            HistoryStored::Kept
        })
    }
}

impl Reader<'_> {
    /// How many history messages wait for their conversation ([`HistoryStored::Pending`]).
    pub fn pending_history_count(&self) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM history_pending")
            .context("counting pending history")?
            .query_row([], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .context("counting pending history")
    }
}
