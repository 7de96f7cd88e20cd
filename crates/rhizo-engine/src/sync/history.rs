//! History transfer (issue 15): after a link, the device with the root key sends the new
//! device the recent text messages (the last [`DEFAULT_HISTORY_DAYS`] days, or what the user
//! chose) over the sync group, in pages by row id (the cursor), up to [`HISTORY_WINDOW`] pages
//! in flight:
//!
//! ```text
//!  start_history_transfer(device, days) ─▶ out-state (meta sync.history.out)
//!  poll_history (driver: at once after a page or an ack arrived, Event::HistoryMoved) ─▶
//!     pages after the last one sent until HISTORY_WINDOW are unacknowledged ─▶ sync group
//!     (nothing acknowledged for HISTORY_RESEND_MS: back to the acked cursor, sent again)
//!  the new device: HistoryPage ─▶ rows stored (a conversation not here yet: kept aside until
//!     it is, rhizo-store history_pending; a message it already has kept) ─▶ in-state
//!     (meta sync.history.in) ─▶ poll_history ─▶ HistoryAck(next), cumulative
//!  HistoryAck(next) ─▶ acked cursor moves, pages up to it leave the window ─▶ the next pages
//! ```
//!
//! Both states are in the store: either side stopping resumes from the last acknowledged
//! cursor. Memory stays bounded: at most [`HISTORY_WINDOW`] pages are queued at a time (in the
//! store's outbox, like any envelope), and a page is built from one bounded query.
//! `poll_history` returns the progress the driver shows (`device_sync_progress`).

use rhizo_core::proto::{HistoryAck, HistoryMessage, HistoryPage, SyncMessage};
use rhizo_store::{
    Reader, Tx,
    messaging::{HistoryRow, HistoryStored, MAX_PENDING_HISTORY},
};
use tracing::{debug, warn};

use crate::{Engine, EngineError, Me};

/// History sent to a new device by default (days).
pub const DEFAULT_HISTORY_DAYS: u32 = 30;
/// Most days of history a transfer asks for.
pub const MAX_HISTORY_DAYS: u32 = 3650;
/// Most messages per page.
pub const MAX_HISTORY_PAGE_MESSAGES: usize = 1000;
/// Most text per page (bytes, with [`MESSAGE_OVERHEAD`] per message): with the page's own
/// fields the sync message stays inside one MLS message
/// ([`rhizo_e2e::MAX_PLAINTEXT_BYTES`], 248 KiB).
pub const MAX_HISTORY_PAGE_BYTES: usize = 200 * 1024;
/// What one message adds to a page besides its text (its encoded fields, at most).
const MESSAGE_OVERHEAD: usize = 96;
/// Most pages sent and not acknowledged yet.
pub const HISTORY_WINDOW: usize = 4;
/// Nothing acknowledged this long while pages are in flight: they are sent again from the
/// acknowledged cursor (ms).
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

/// The sending side, one meta line: `device transfer since total done acked sent flight
/// sent_at finished reported sent_all moved` (`flight`: `next:count` per page in flight,
/// comma-separated, `-` for none; a line written before the window had the count of the one
/// page in flight there and ended at `reported`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OutState {
    device: [u8; 32],
    transfer: u64,
    since: i64,
    total: u64,
    /// Messages acknowledged.
    done: u64,
    /// The acknowledged cursor.
    acked: u64,
    /// The cursor after the last page sent (== acked: none in flight).
    sent: u64,
    /// The pages in flight, oldest first: (the cursor after it, its messages).
    flight: Vec<(u64, u64)>,
    /// When the window last moved (a page sent into an empty window, or an ack); 0: nothing
    /// in flight.
    sent_at: i64,
    finished: bool,
    /// Whether the end was shown (returned by `poll_history` once).
    reported: bool,
    /// Whether the last page was sent (nothing after `sent`).
    sent_all: bool,
    /// An acknowledgement moved `done` since `poll_history` last reported.
    moved: bool,
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

fn parse_flight(text: &str) -> Option<Vec<(u64, u64)>> {
    if text == "-" {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|page| {
            let (next, count) = page.split_once(':')?;
            Some((next.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

impl OutState {
    fn load(reader: &Reader<'_>) -> Result<Option<Self>, EngineError> {
        let Some(text) = reader.get_meta(META_OUT)? else {
            return Ok(None);
        };
        let f = fields(&text);
        let parse = || -> Option<Self> {
            let acked: u64 = f.get(5)?.parse().ok()?;
            let sent: u64 = f.get(6)?.parse().ok()?;
            let in_flight = f.get(7)?;
            // A line from before the window: one page in flight, its count alone.
            let flight = match in_flight.parse::<u64>() {
                Ok(count) if sent != acked => vec![(sent, count)],
                Ok(_) => Vec::new(),
                Err(_) => parse_flight(in_flight)?,
            };
            Some(Self {
                device: hex::decode(f.first()?).ok()?.try_into().ok()?,
                transfer: f.get(1)?.parse().ok()?,
                since: f.get(2)?.parse().ok()?,
                total: f.get(3)?.parse().ok()?,
                done: f.get(4)?.parse().ok()?,
                acked,
                sent,
                flight,
                sent_at: f.get(8)?.parse().ok()?,
                finished: f.get(9)? == &"1",
                reported: f.get(10)? == &"1",
                sent_all: f.get(11).is_some_and(|v| *v == "1"),
                moved: f.get(12).is_some_and(|v| *v == "1"),
            })
        };
        Ok(parse())
    }

    fn store(&self, tx: &mut Tx<'_>) -> Result<(), EngineError> {
        let flight = if self.flight.is_empty() {
            "-".to_owned()
        } else {
            self.flight
                .iter()
                .map(|(next, count)| format!("{next}:{count}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let line = format!(
            "{} {} {} {} {} {} {} {} {} {} {} {} {}",
            hex::encode(self.device),
            self.transfer,
            self.since,
            self.total,
            self.done,
            self.acked,
            self.sent,
            flight,
            self.sent_at,
            u8::from(self.finished),
            u8::from(self.reported),
            u8::from(self.sent_all),
            u8::from(self.moved)
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

    /// Messages in the pages in flight.
    fn in_flight(&self) -> u64 {
        self.flight.iter().map(|(_, count)| count).sum()
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
    /// first pages go at the next [`Engine::poll_history`]. `None` without a sync group.
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
            flight: Vec::new(),
            sent_at: 0,
            finished: false,
            reported: false,
            sent_all: false,
            moved: false,
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

    /// Moves the history transfers on: sends the next pages while fewer than
    /// [`HISTORY_WINDOW`] are unacknowledged (or sends them again from the acknowledged
    /// cursor when nothing was acknowledged for [`HISTORY_RESEND_MS`]), and the
    /// acknowledgement of the pages received. The progress of each transfer that moved.
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
            out.moved = false;
            out.store(tx)?;
            return Ok(Some(out.progress()));
        }
        let Some(group) = super::active_sync_group(tx)? else {
            return Ok(None);
        };
        let mut report = out.moved;
        out.moved = false;
        if !out.flight.is_empty() && now.saturating_sub(out.sent_at) >= HISTORY_RESEND_MS {
            // Nothing acknowledged for a while: from the acknowledged cursor again.
            debug!(
                acked = out.acked,
                "history pages unacknowledged: sending them again"
            );
            out.flight.clear();
            out.sent = out.acked;
            out.sent_all = false;
        }
        while out.flight.len() < HISTORY_WINDOW && !out.sent_all {
            let (page, last) = next_page(tx, &out, &group.session_id)?;
            let next = page
                .last()
                .map_or(out.sent, |r| u64::try_from(r.id).unwrap_or(0));
            let sync = SyncMessage {
                history: Some(HistoryPage {
                    transfer: out.transfer,
                    to_device: out.device.to_vec().into(),
                    after: out.sent,
                    next,
                    total: out.total,
                    done: out.done.saturating_add(out.in_flight()),
                    last,
                    messages: page.iter().map(history_message).collect(),
                }),
                ..SyncMessage::default()
            };
            super::queue_sync(tx, self, &group, sync, now)?;
            if out.flight.is_empty() {
                out.sent_at = now.max(1);
            }
            out.flight.push((next, page.len() as u64));
            out.sent = next;
            out.sent_all = last;
            report = true;
        }
        out.store(tx)?;
        Ok(report.then(|| out.progress()))
    }
}

/// The page after `out.sent`: as many messages as fit [`MAX_HISTORY_PAGE_MESSAGES`] and
/// [`MAX_HISTORY_PAGE_BYTES`] (one message larger than that goes alone), and whether it is
/// the last one.
fn next_page(
    reader: &Reader<'_>,
    out: &OutState,
    sync_session: &[u8; 16],
) -> Result<(Vec<HistoryRow>, bool), EngineError> {
    // One more than a page holds: whether anything is left after it.
    let rows = reader.history_page(
        i64::try_from(out.sent).unwrap_or(i64::MAX),
        out.since,
        sync_session,
        MAX_HISTORY_PAGE_MESSAGES + 1,
    )?;
    let fetched = rows.len();
    let mut bytes = 0usize;
    let mut page: Vec<HistoryRow> = Vec::new();
    for row in rows.into_iter().take(MAX_HISTORY_PAGE_MESSAGES) {
        bytes = bytes.saturating_add(row.body.len() + MESSAGE_OVERHEAD);
        if bytes > MAX_HISTORY_PAGE_BYTES && !page.is_empty() {
            break;
        }
        page.push(row);
        if bytes > MAX_HISTORY_PAGE_BYTES {
            break; // One message larger than a page's budget goes alone.
        }
    }
    let last = page.len() == fetched;
    Ok((page, last))
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
/// where we are (it may overlap what we have: a message we have is kept), its
/// acknowledgement due; a page we have already is acknowledged again; one after a gap is
/// ignored (the sender sends again from our acknowledged cursor). Whether the state moved.
pub(crate) fn apply_page(
    tx: &mut Tx<'_>,
    me: &Me,
    page: HistoryPage,
    now: i64,
) -> Result<bool, EngineError> {
    if page.to_device.as_ref() != me.device.public().as_bytes() {
        return Ok(false);
    }
    let mut state = InState::load(tx)?;
    if state.transfer != page.transfer {
        state = InState {
            transfer: page.transfer,
            ..InState::default()
        };
    }
    if page.next <= state.next && page.after < state.next {
        // Already stored: its acknowledgement was lost, or the sender went back.
        state.ack_due = true;
        state.store(tx)?;
        return Ok(true);
    }
    if page.after > state.next {
        return Ok(false); // After a gap: the sender sends the missing pages again.
    }
    if page.messages.len() > MAX_HISTORY_PAGE_MESSAGES {
        warn!(
            messages = page.messages.len(),
            "a history page with too many messages ignored"
        );
        return Ok(false);
    }
    let mut room = MAX_PENDING_HISTORY.saturating_sub(tx.pending_history_count()?);
    let (mut pending, mut full) = (0u64, 0u64);
    for m in &page.messages {
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
        match tx.insert_history(&row, now, &mut room)? {
            HistoryStored::Pending => pending += 1,
            HistoryStored::Full => full += 1,
            HistoryStored::Stored | HistoryStored::Kept => {}
        }
    }
    if pending > 0 {
        debug!(
            pending,
            "history for conversations this device is not in yet: kept until they are joined"
        );
    }
    if full > 0 {
        warn!(
            dropped = full,
            max = MAX_PENDING_HISTORY,
            "history for conversations this device is not in: too many waiting, not stored"
        );
    }
    state.next = page.next;
    state.received = page.done.saturating_add(page.messages.len() as u64);
    state.total = page.total;
    state.finished = page.last;
    state.ack_due = true;
    state.store(tx)?;
    Ok(true)
}

/// An acknowledgement from the device we send history to (cumulative: every page up to its
/// cursor arrived): those pages leave the window, the next may go. Whether the state moved.
pub(crate) fn apply_ack(tx: &mut Tx<'_>, ack: HistoryAck, now: i64) -> Result<bool, EngineError> {
    let Some(mut out) = OutState::load(tx)? else {
        return Ok(false);
    };
    if out.transfer != ack.transfer || ack.next < out.acked || out.finished {
        return Ok(false);
    }
    if ack.next > out.sent {
        // Beyond what is in flight: pages sent before we went back to the acknowledged cursor
        // arrived after all (their acknowledgement was late). On from the receiver's cursor.
        out.done = out.done.saturating_add(out.in_flight());
        out.flight.clear();
        out.acked = ack.next;
        out.sent = ack.next;
        out.sent_all = false;
    } else {
        let arrived = out
            .flight
            .iter()
            .take_while(|(next, _)| *next <= ack.next)
            .count();
        if arrived == 0 {
            return Ok(false); // An old acknowledgement, or nothing in flight.
        }
        let on_page = out.flight[arrived - 1].0 == ack.next;
        for (_, count) in out.flight.drain(..arrived) {
            out.done = out.done.saturating_add(count);
        }
        out.acked = ack.next;
        if !on_page {
            // Inside a page (we went back and the pages changed): on from there.
            out.flight.clear();
            out.sent = out.acked;
            out.sent_all = false;
        }
    }
    out.sent_at = if out.flight.is_empty() { 0 } else { now.max(1) };
    out.finished = out.sent_all && out.flight.is_empty();
    out.moved = true;
    out.store(tx)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
