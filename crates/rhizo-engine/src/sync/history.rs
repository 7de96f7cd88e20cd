//! History transfer (issue 15): after a link, the device with the root key sends the new
//! device the recent text messages (the last [`DEFAULT_HISTORY_DAYS`] days, or what the user
//! chose) over the sync group, in pages by row id (the cursor), one page in flight:
//!
//! ```text
//!  start_history_transfer(device, days) ─▶ out-state (meta sync.history.out)
//!  poll_history (driver timer / after the outbox) ─▶ page after the acked cursor, when the
//!     last one is acked or HISTORY_RESEND_MS passed without an ack (resume) ─▶ sync group
//!  the new device: HistoryPage ─▶ rows stored (only in conversations it is in, a message it
//!     already has kept) ─▶ in-state (meta sync.history.in) ─▶ poll_history ─▶ HistoryAck
//!  HistoryAck(next) ─▶ acked cursor moves ─▶ the next page
//! ```
//!
//! Both states are in the store: either side stopping resumes from the last acknowledged
//! cursor. `poll_history` returns the progress the driver shows (`device_sync_progress`).

use rhizo_core::proto::{HistoryAck, HistoryMessage, HistoryPage, SyncMessage};
use rhizo_store::{Reader, Tx, messaging::HistoryRow};

use crate::{Engine, EngineError, Me};

/// History sent to a new device by default (days).
pub const DEFAULT_HISTORY_DAYS: u32 = 30;
/// Most days of history a transfer asks for.
pub const MAX_HISTORY_DAYS: u32 = 3650;
/// Most messages per page.
pub const MAX_HISTORY_PAGE_MESSAGES: usize = 200;
/// Most text per page (bytes): a page stays well inside one envelope.
pub const MAX_HISTORY_PAGE_BYTES: usize = 128 * 1024;
/// A page unacknowledged this long is sent again (ms).
pub const HISTORY_RESEND_MS: i64 = 30_000;
/// Meta key: the transfer this device is sending.
const META_OUT: &str = "sync.history.out";
/// Meta key: the transfer this device is receiving.
const META_IN: &str = "sync.history.in";

/// How far a history transfer got, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryProgress {
    /// Whether this device sends it (else it receives it).
    pub sending: bool,
    /// Messages acknowledged (sender) or received (receiver).
    pub done: u64,
    /// Messages in the transfer.
    pub total: u64,
    /// Whether it is over.
    pub finished: bool,
}

/// The sending side: `device transfer since total done acked sent sent_at finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutState {
    device: [u8; 32],
    transfer: u64,
    since: i64,
    total: u64,
    /// Messages acknowledged.
    done: u64,
    /// The acknowledged cursor.
    acked: u64,
    /// The cursor after the page in flight (== acked: none in flight).
    sent: u64,
    /// Messages in the page in flight.
    in_flight: u64,
    /// When the page in flight went (0: none in flight).
    sent_at: i64,
    finished: bool,
    /// Whether the end was shown (returned by `poll_history` once).
    reported: bool,
}

/// The receiving side: `transfer next received total ack_due finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct InState {
    transfer: u64,
    next: u64,
    received: u64,
    total: u64,
    ack_due: bool,
    finished: bool,
}

fn fields(text: &str) -> Vec<&str> {
    text.split(' ').collect()
}

impl OutState {
    fn load(reader: &Reader<'_>) -> Result<Option<Self>, EngineError> {
        let Some(text) = reader.get_meta(META_OUT)? else {
            return Ok(None);
        };
        let f = fields(&text);
        let parse = || -> Option<Self> {
            Some(Self {
                device: hex::decode(f.first()?).ok()?.try_into().ok()?,
                transfer: f.get(1)?.parse().ok()?,
                since: f.get(2)?.parse().ok()?,
                total: f.get(3)?.parse().ok()?,
                done: f.get(4)?.parse().ok()?,
                acked: f.get(5)?.parse().ok()?,
                sent: f.get(6)?.parse().ok()?,
                in_flight: f.get(7)?.parse().ok()?,
                sent_at: f.get(8)?.parse().ok()?,
                finished: f.get(9)? == &"1",
                reported: f.get(10)? == &"1",
            })
        };
        Ok(parse())
    }

    fn store(&self, tx: &mut Tx<'_>) -> Result<(), EngineError> {
        let line = format!(
            "{} {} {} {} {} {} {} {} {} {} {}",
            hex::encode(self.device),
            self.transfer,
            self.since,
            self.total,
            self.done,
            self.acked,
            self.sent,
            self.in_flight,
            self.sent_at,
            u8::from(self.finished),
            u8::from(self.reported)
        );
        Ok(tx.set_meta(META_OUT, &line)?)
    }

    fn progress(&self) -> HistoryProgress {
        HistoryProgress {
            sending: true,
            done: self.done,
            total: self.total,
            finished: self.finished,
        }
    }
}

impl InState {
    fn load(reader: &Reader<'_>) -> Result<Self, EngineError> {
        let text = reader.get_meta(META_IN)?.unwrap_or_default();
        let f = fields(&text);
        let parse = || -> Option<Self> {
            Some(Self {
                transfer: f.first()?.parse().ok()?,
                next: f.get(1)?.parse().ok()?,
                received: f.get(2)?.parse().ok()?,
                total: f.get(3)?.parse().ok()?,
                ack_due: f.get(4)? == &"1",
                finished: f.get(5)? == &"1",
            })
        };
        Ok(parse().unwrap_or_default())
    }

    fn store(&self, tx: &mut Tx<'_>) -> Result<(), EngineError> {
        let line = format!(
            "{} {} {} {} {} {}",
            self.transfer,
            self.next,
            self.received,
            self.total,
            u8::from(self.ack_due),
            u8::from(self.finished)
        );
        Ok(tx.set_meta(META_IN, &line)?)
    }

    fn progress(&self) -> HistoryProgress {
        HistoryProgress {
            sending: false,
            done: self.received,
            total: self.total,
            finished: self.finished,
        }
    }
}

impl Engine {
    /// Starts sending our recent history (the last `days` days, at most
    /// [`MAX_HISTORY_DAYS`]) to our linked `device`, replacing a transfer in progress; the
    /// first page goes at the next [`Engine::poll_history`]. `None` without a sync group.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn start_history_transfer(
        &self,
        tx: &mut Tx<'_>,
        device: &[u8; 32],
        days: u32,
        now: i64,
    ) -> Result<Option<HistoryProgress>, EngineError> {
        let Some(group) = super::active_sync_group(tx)? else {
            return Ok(None);
        };
        let since = now.saturating_sub(i64::from(days.min(MAX_HISTORY_DAYS)) * 86_400_000);
        let total = tx.history_count(since, &group.session_id)?;
        let state = OutState {
            device: *device,
            transfer: u64::from_be_bytes(self.random()),
            since,
            total,
            done: 0,
            acked: 0,
            sent: 0,
            in_flight: 0,
            sent_at: 0,
            finished: false,
            reported: false,
        };
        state.store(tx)?;
        Ok(Some(state.progress()))
    }

    /// Whether a history transfer needs [`Engine::poll_history`]: one we send that is not
    /// over, or an acknowledgement we owe.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn history_active(&self, reader: &Reader<'_>) -> Result<bool, EngineError> {
        let sending = OutState::load(reader)?.is_some_and(|o| !o.reported);
        Ok(sending || InState::load(reader)?.ack_due)
    }

    /// Moves the history transfers on: sends the next page (or the unacknowledged one again),
    /// and the acknowledgement of a page received. The progress of each transfer that moved.
    ///
    /// # Errors
    ///
    /// MLS or the database.
    pub fn poll_history(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<Vec<HistoryProgress>, EngineError> {
        let mut moved = Vec::new();
        if let Some(progress) = self.poll_out(tx, now)? {
            moved.push(progress);
        }
        let mut incoming = InState::load(tx)?;
        if incoming.ack_due {
            let ack = HistoryAck {
                transfer: incoming.transfer,
                next: incoming.next,
            };
            let sync = SyncMessage {
                history_ack: Some(ack),
                ..SyncMessage::default()
            };
            super::queue_if_synced(tx, self, sync, now)?;
            incoming.ack_due = false;
            incoming.store(tx)?;
            moved.push(incoming.progress());
        }
        Ok(moved)
    }

    fn poll_out(&self, tx: &mut Tx<'_>, now: i64) -> Result<Option<HistoryProgress>, EngineError> {
        let Some(mut out) = OutState::load(tx)? else {
            return Ok(None);
        };
        if out.finished {
            if out.reported {
                return Ok(None);
            }
            out.reported = true;
            out.store(tx)?;
            return Ok(Some(out.progress()));
        }
        let waiting = out.sent_at != 0;
        if waiting && now.saturating_sub(out.sent_at) < HISTORY_RESEND_MS {
            return Ok(None);
        }
        let Some(group) = super::active_sync_group(tx)? else {
            return Ok(None);
        };
        let rows = tx.history_page(
            i64::try_from(out.acked).unwrap_or(i64::MAX),
            out.since,
            &group.session_id,
            MAX_HISTORY_PAGE_MESSAGES,
        )?;
        let fetched = rows.len();
        let mut bytes = 0usize;
        let page: Vec<HistoryRow> = rows
            .into_iter()
            .take_while(|r| {
                bytes = bytes.saturating_add(r.body.len() + 96);
                bytes <= MAX_HISTORY_PAGE_BYTES
            })
            .collect();
        let page = if page.is_empty() && fetched > 0 {
            // One message larger than a page's budget still goes alone.
            tx.history_page(
                i64::try_from(out.acked).unwrap_or(i64::MAX),
                out.since,
                &group.session_id,
                1,
            )?
        } else {
            page
        };
        let last = fetched < MAX_HISTORY_PAGE_MESSAGES && page.len() == fetched;
        let next = page
            .last()
            .map_or(out.acked, |r| u64::try_from(r.id).unwrap_or(0));
        let sync = SyncMessage {
            history: Some(HistoryPage {
                transfer: out.transfer,
                to_device: out.device.to_vec().into(),
                after: out.acked,
                next,
                total: out.total,
                done: out.done,
                last,
                messages: page.iter().map(history_message).collect(),
            }),
            ..SyncMessage::default()
        };
        super::queue_sync(tx, self, &group, sync, now)?;
        out.sent = next;
        out.in_flight = page.len() as u64;
        out.sent_at = now.max(1);
        out.store(tx)?;
        Ok(Some(out.progress()))
    }
}

fn history_message(row: &HistoryRow) -> HistoryMessage {
    HistoryMessage {
        session_id: row.session_id.to_vec().into(),
        outgoing: row.outgoing,
        sender_device: row.sender_device.to_vec().into(),
        seq: row.seq,
        body: row.body.clone(),
        sent_at_ms: u64::try_from(row.sent_at).unwrap_or(0),
        read: row.read,
    }
}

/// A page that arrived in our sync group: stored when it is for this device and continues
/// where we are (a page already stored is acknowledged again), its acknowledgement due.
pub(crate) fn apply_page(
    tx: &mut Tx<'_>,
    me: &Me,
    page: HistoryPage,
    now: i64,
) -> Result<(), EngineError> {
    if page.to_device.as_ref() != me.device.public().as_bytes() {
        return Ok(());
    }
    let mut state = InState::load(tx)?;
    if state.transfer != page.transfer {
        state = InState {
            transfer: page.transfer,
            ..InState::default()
        };
    }
    if page.next <= state.next && page.after < state.next {
        // Already stored: its acknowledgement was lost.
        state.ack_due = true;
        return state.store(tx);
    }
    if page.after != state.next {
        return Ok(()); // Not where we are: the sender sends the right one again.
    }
    for m in page.messages.iter().take(MAX_HISTORY_PAGE_MESSAGES) {
        let (Ok(session_id), Ok(sender_device)) = (
            <[u8; 16]>::try_from(m.session_id.as_ref()),
            <[u8; 32]>::try_from(m.sender_device.as_ref()),
        ) else {
            continue;
        };
        let row = HistoryRow {
            id: 0,
            session_id,
            outgoing: m.outgoing,
            sender_device,
            seq: m.seq,
            body: m.body.chars().take(crate::MAX_TEXT_BYTES).collect(),
            sent_at: i64::try_from(m.sent_at_ms).unwrap_or(i64::MAX),
            read: m.read,
        };
        tx.insert_history(&row, now)?;
    }
    state.next = page.next;
    state.received = page.done.saturating_add(page.messages.len() as u64);
    state.total = page.total;
    state.finished = page.last;
    state.ack_due = true;
    state.store(tx)
}

/// An acknowledgement from the device we send history to: the next page may go.
pub(crate) fn apply_ack(tx: &mut Tx<'_>, ack: HistoryAck) -> Result<(), EngineError> {
    let Some(mut out) = OutState::load(tx)? else {
        return Ok(());
    };
    if out.transfer != ack.transfer || ack.next != out.sent || out.sent_at == 0 {
        return Ok(());
    }
    out.done = out.done.saturating_add(out.in_flight);
    out.acked = ack.next;
    out.in_flight = 0;
    out.sent_at = 0;
    out.finished = last_sent(tx, &out)?;
    out.store(tx)
}

/// Whether nothing is left after the acknowledged cursor.
fn last_sent(tx: &Tx<'_>, out: &OutState) -> Result<bool, EngineError> {
    let Some(group) = super::active_sync_group(tx)? else {
        return Ok(true);
    };
    let rest = tx.history_page(
        i64::try_from(out.acked).unwrap_or(i64::MAX),
        out.since,
        &group.session_id,
        1,
    )?;
    Ok(rest.is_empty())
}

#[cfg(test)]
mod tests;
