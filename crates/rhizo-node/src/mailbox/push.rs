//! Mailbox push, both sides.
//!
//! - As a replica: a peer whose fetch of a mailbox was answered here is a subscriber; a store
//!   committed for that mailbox sends it a `Notify` (the rules: [`PushBook`]), over the
//!   existing connection, or on its next one when that fails.
//! - As the recipient: a `Notify` for our own mailbox queues the replica that sent it (a
//!   bounded queue; a full one drops the push, the poll still runs), and the mailbox loop
//!   fetches from that replica at once.

use std::sync::Arc;

use libp2p::PeerId;
use rhizo_core::{
    Uid,
    envelope::ErrorCode,
    mailbox::{MailboxRequest, MailboxResponse},
};
use rhizo_engine::mailbox::{PushBook, Saved, error};
use rhizo_store::{DbError, presence::PushSubscriptionRow};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info};

use super::Mailbox;

/// Pushes on their way at once; the others stay due in the book.
pub const MAX_PUSHES_IN_FLIGHT: usize = 16;
/// Replicas whose push waits for the mailbox loop (more are dropped: the loop fetches from
/// all of them when it next runs anyway).
pub const PUSH_QUEUE_CAPACITY: usize = 16;

/// The recipient side's queue: replicas that told us they hold something new.
pub type PushQueue = mpsc::Receiver<PeerId>;

impl Mailbox {
    /// This node's UID: pushes for it are taken (set once, by the messaging service).
    pub fn set_own_uid(&self, uid: Uid) {
        let _ = self.inner.own_uid.set(uid);
    }

    /// The recipient side's queue of pushes (once; `None` after the first call).
    pub fn take_push_queue(&self) -> Option<PushQueue> {
        self.inner.push_rx.lock().ok()?.take()
    }

    /// A `Notify` from `peer`: queued if it is for our own mailbox.
    pub(super) fn on_notify(&self, peer: PeerId, recipient: &Uid) -> MailboxResponse {
        if self.inner.own_uid.get() != Some(recipient) {
            return error(
                ErrorCode::UnknownSession,
                "this node does not fetch that mailbox",
            );
        }
        if self.inner.push_tx.try_send(peer).is_err() {
            debug!(%peer, "mailbox push dropped: a fetch is already queued");
        }
        MailboxResponse::Notified
    }

    /// `peer` fetched `mailbox` here (its fetch was answered): it is pushed to from now on.
    pub(super) fn subscribe(&self, mailbox: [u8; 32], peer: PeerId) {
        let now = self.inner.clock.now_ms();
        if let Ok(mut book) = self.inner.push.lock() {
            book.subscribe(mailbox, peer, now);
        }
    }

    /// An entry for `mailbox` was committed here: its subscribers are pushed to.
    pub(super) fn on_stored(&self, mailbox: &[u8; 32]) {
        let now = self.inner.clock.now_ms();
        if let Ok(mut book) = self.inner.push.lock() {
            book.on_stored(mailbox, now);
        }
        self.inner.push_wake.notify_one();
    }

    /// `peer` connected: the pushes that did not reach it go out now.
    pub fn on_peer_connected(&self, peer: &PeerId) {
        let now = self.inner.clock.now_ms();
        if let Ok(mut book) = self.inner.push.lock() {
            book.on_connected(peer, now);
        }
        self.inner.push_wake.notify_one();
    }

    /// Sends the due pushes until `shutdown` fires (at most [`MAX_PUSHES_IN_FLIGHT`] at once).
    /// The subscriptions saved by the last run are taken back first; they are saved every
    /// [`PUSH_SAVE_INTERVAL_MS`] when they changed, and at shutdown.
    pub async fn run_push(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let in_flight = Arc::new(Semaphore::new(MAX_PUSHES_IN_FLIGHT));
        let mut saved = self.load_subscriptions().await;
        let mut next_save = self
            .inner
            .clock
            .now_ms()
            .saturating_add(PUSH_SAVE_INTERVAL_MS);
        loop {
            let now = self.inner.clock.now_ms();
            if now >= next_save {
                next_save = now.saturating_add(PUSH_SAVE_INTERVAL_MS);
                saved = self.save_subscriptions(saved).await;
            }
            let room = in_flight.available_permits();
            let (due, next) = match self.inner.push.lock() {
                Ok(mut book) if room > 0 => (book.poll_due(now, room), book.next_deadline()),
                // No room: the next push that finishes wakes the loop.
                Ok(_) => (Vec::new(), None),
                Err(_) => return,
            };
            for (mailbox, peer) in due {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    break;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    let delivered = this.send_notify(peer, mailbox).await;
                    let now = this.inner.clock.now_ms();
                    if let Ok(mut book) = this.inner.push.lock() {
                        book.on_sent(&mailbox, &peer, delivered, now);
                    }
                    drop(permit);
                    this.inner.push_wake.notify_one();
                });
            }
            let wait = next
                .map_or(PUSH_IDLE_WAIT_MS, |t| (t - now).max(1))
                .min(next_save.saturating_sub(now).max(1));
            let wait = std::time::Duration::from_millis(u64::try_from(wait).unwrap_or(1));
            tokio::select! {
                () = self.inner.push_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {
                    self.save_subscriptions(saved).await;
                    return;
                }
            }
        }
    }

    /// Takes back the subscriptions the last run saved; what was read.
    async fn load_subscriptions(&self) -> Vec<PushSubscriptionRow> {
        let rows = match self
            .inner
            .db
            .read(|r| r.push_subscriptions().map_err(DbError::from))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                debug!(error = %e, "push subscriptions not read");
                return Vec::new();
            }
        };
        let now = self.inner.clock.now_ms();
        let book: Vec<Saved<PeerId>> = rows
            .iter()
            .filter_map(|r| {
                Some(Saved {
                    mailbox: r.mailbox,
                    peer: r.peer.parse().ok()?,
                    fetched_at: r.fetched_at,
                    pending: r.pending,
                })
            })
            .collect();
        if !book.is_empty() {
            info!(
                subscriptions = book.len(),
                "push subscriptions taken back from the store"
            );
        }
        if let Ok(mut push) = self.inner.push.lock() {
            push.restore(book, now);
        }
        rows
    }

    /// Saves the subscriptions if they changed since `before` (what was saved last); what is
    /// saved now.
    async fn save_subscriptions(
        &self,
        before: Vec<PushSubscriptionRow>,
    ) -> Vec<PushSubscriptionRow> {
        let Ok(book) = self.inner.push.lock().map(|b| b.snapshot()) else {
            return before;
        };
        let mut rows: Vec<PushSubscriptionRow> = book
            .into_iter()
            .map(|s| PushSubscriptionRow {
                mailbox: s.mailbox,
                peer: s.peer.to_string(),
                fetched_at: s.fetched_at,
                pending: s.pending,
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.fetched_at, &a.mailbox, &a.peer).cmp(&(a.fetched_at, &b.mailbox, &b.peer))
        });
        if rows == before {
            return before;
        }
        let write = rows.clone();
        match self
            .inner
            .db
            .write(move |tx| tx.replace_push_subscriptions(&write).map_err(DbError::from))
            .await
        {
            Ok(()) => rows,
            Err(e) => {
                debug!(error = %e, "push subscriptions not saved");
                before
            }
        }
    }

    /// Sends one `Notify`; whether the peer took it.
    async fn send_notify(&self, peer: PeerId, mailbox: [u8; 32]) -> bool {
        let request = MailboxRequest::Notify {
            recipient: Uid::from_bytes(&mailbox),
        }
        .encode();
        match self
            .inner
            .client
            .mailbox_request(peer, Vec::new(), request)
            .await
        {
            // Any answer: it is reachable (an older node refuses a push it does not know;
            // it polls).
            Ok(_) => true,
            Err(e) => {
                debug!(%peer, error = %e, "mailbox push not delivered; sent on its next connection");
                false
            }
        }
    }
}

/// Longest sleep of the push loop with nothing due (a store or a connection wakes it).
const PUSH_IDLE_WAIT_MS: i64 = 60_000;
/// How often the push subscriptions are saved (when they changed), so a restart keeps them.
pub(super) const PUSH_SAVE_INTERVAL_MS: i64 = 60_000;

/// A fresh push book and the recipient side's queue.
pub(super) fn new_push_state() -> (
    std::sync::Mutex<PushBook<PeerId>>,
    mpsc::Sender<PeerId>,
    std::sync::Mutex<Option<PushQueue>>,
) {
    let (tx, rx) = mpsc::channel(PUSH_QUEUE_CAPACITY);
    (
        std::sync::Mutex::new(PushBook::new()),
        tx,
        std::sync::Mutex::new(Some(rx)),
    )
}
