//! Fetching our mailbox: from our own store and the replicas closest to our mailbox key,
//! page by page; the engine applies what a page holds, and a signed receipt deletes what was
//! handled from that replica. Polled on the node's [`Clock`](crate::clock).

use std::time::Duration;

use rhizo_core::{
    Uid,
    envelope::{ErrorCode, MAX_RECEIPT_ENTRIES, ReceiptEntry},
    mailbox::{FetchPager, FetchedEntry},
};
use tracing::{debug, info, warn};

use super::{FetchError, FetchReport, HeldView, MailboxStatus, Messaging, QueuedView};
use crate::mailbox::Source;

/// Poll interval until a replica answered for the first time (at most the configured one).
const FIRST_POLL: Duration = Duration::from_secs(2);

/// The next push from the queue; never, without one.
async fn next_push(queue: &mut Option<crate::mailbox::PushQueue>) -> Option<libp2p::PeerId> {
    match queue {
        Some(q) => q.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether a fetch error is a replica's refusal of this device under the device list sent
/// (`UNKNOWN_SENDER`: not listed, or a list older than one the replica saw).
fn refused_device(error: &str) -> bool {
    error.starts_with(ErrorCode::UnknownSender.as_str())
}

impl Messaging {
    /// Fetches our mailbox from its replicas (and from our own store, since we may be one of
    /// our closest nodes), applies what it holds in order, deletes what was handled from each
    /// replica with a signed receipt, and queues delivery receipts to the senders.
    pub async fn fetch_mailbox(&self) -> Result<FetchReport, FetchError> {
        let now = self.now();
        let device_list = self
            .with_engine(move |tx, engine| engine.device_list(tx, now))
            .await?;
        let me = self.inner.engine.me();
        // Our own table, then where senders store (the replica plan, deep peers included).
        let sources = self.inner.mailbox.fetch_sources(&me.uid).await;
        let mut report = FetchReport::default();
        for source in &sources {
            if self.fetch_from(source, &device_list, &mut report).await?
                && matches!(source, Source::Remote(_))
            {
                report.replicas += 1;
            }
        }
        if report.new > 0 {
            info!(new = report.new, "messages fetched from the mailbox");
        }
        if report.refused > 0 && !me.holds_root() {
            // A replica saw a newer device list than ours (a link or a revoke on the device
            // with the root key): adopt it, so the next fetch carries it (if it still names us).
            if let Err(e) = self.refresh_linked_identity().await {
                debug!(error = %e, "our newest device list not found yet");
            }
        }
        Ok(report)
    }

    /// Fetches every page from one source; whether it answered. Pages past what we leave on
    /// the replica (a sender who is not a contact, a transient refusal), so it never hides
    /// what follows; bounded rounds.
    async fn fetch_from(
        &self,
        source: &Source,
        device_list: &[u8],
        report: &mut FetchReport,
    ) -> Result<bool, FetchError> {
        let me = self.inner.engine.me();
        let mut answered = false;
        let mut pager = FetchPager::new();
        while let Some(cursor) = pager.next() {
            let page = match self
                .inner
                .mailbox
                .fetch_page(source, &me.device, &me.uid, device_list, cursor)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    if refused_device(&e) {
                        warn!(error = %e, "a mailbox replica refused this device's fetch");
                        report.refused += 1;
                    } else {
                        debug!(error = %e, "mailbox fetch from a replica failed");
                    }
                    pager.failed();
                    continue;
                }
            };
            answered = true;
            let (returned, more, next_cursor) = (page.entries.len(), page.more, page.next_cursor);
            report.fetched += returned;
            let handled = if returned == 0 {
                Vec::new()
            } else {
                let (handled, new) = self.apply_fetched(page.entries).await?;
                report.new += new;
                handled
            };
            pager.page(returned, handled.len(), more, next_cursor);
            for chunk in handled.chunks(MAX_RECEIPT_ENTRIES) {
                let receipt = self
                    .inner
                    .engine
                    .fetch_receipt(chunk.to_vec(), self.now())?;
                match self
                    .inner
                    .mailbox
                    .delete(source, &me.uid, device_list, &receipt)
                    .await
                {
                    Ok(n) => report.deleted += n as usize,
                    Err(e) => debug!(error = %e, "mailbox delete failed"),
                }
            }
        }
        Ok(answered)
    }

    /// Applies fetched envelopes, in conversation order; returns the receipt entries for what
    /// was handled (to delete from the replica) and how many were new.
    pub(super) async fn apply_fetched(
        &self,
        entries: Vec<FetchedEntry>,
    ) -> Result<(Vec<ReceiptEntry>, usize), FetchError> {
        let now = self.now();
        let fetched = self
            .with_engine(move |tx, engine| engine.apply_fetched(tx, entries, now))
            .await?;
        self.emit_events(fetched.events);
        self.refresh_wanted_device_lists();
        if fetched.receipts_queued {
            self.inner.outbox_wake.notify_one();
        }
        Ok((fetched.handled, fetched.new))
    }

    /// Fetches our mailbox at once at start, then every poll interval (every [`FIRST_POLL`]
    /// until a replica answered) and when woken (a revoke); and from one replica at once when
    /// it pushes (it holds something new for us), until `shutdown` fires.
    pub async fn run_mailbox(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let poll = self.inner.mailbox.settings().poll;
        let mut pushes = self.inner.mailbox.take_push_queue();
        let mut reached = false;
        let mut first = true;
        loop {
            let wait = match (first, reached) {
                (true, _) => Duration::ZERO,
                (false, true) => poll,
                (false, false) => poll.min(FIRST_POLL),
            };
            first = false;
            let mut pushed: Vec<libp2p::PeerId> = Vec::new();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.mailbox_wake.notified() => {}
                Some(peer) = next_push(&mut pushes) => pushed.push(peer),
                _ = shutdown.changed() => return,
            }
            if !pushed.is_empty() {
                if let Some(queue) = pushes.as_mut() {
                    while let Ok(peer) = queue.try_recv() {
                        if !pushed.contains(&peer) {
                            pushed.push(peer);
                        }
                    }
                }
                match self.fetch_pushed(&pushed).await {
                    Ok(report) => reached |= report.replicas > 0,
                    Err(e) => warn!(error = %e, "fetching the mailbox after a push failed"),
                }
                continue;
            }
            match self.fetch_mailbox().await {
                Ok(report) => reached |= report.replicas > 0,
                Err(e) => warn!(error = %e, "fetching the mailbox failed"),
            }
        }
    }

    /// Fetches from the replicas that pushed (they hold something new for us).
    async fn fetch_pushed(&self, replicas: &[libp2p::PeerId]) -> Result<FetchReport, FetchError> {
        let now = self.now();
        let device_list = self
            .with_engine(move |tx, engine| engine.device_list(tx, now))
            .await?;
        let mut report = FetchReport::default();
        for peer in replicas {
            let source = Source::Remote(rhizo_net::ClosestPeer {
                peer: *peer,
                addrs: Vec::new(),
            });
            if self.fetch_from(&source, &device_list, &mut report).await? {
                report.replicas += 1;
            }
        }
        if report.new > 0 {
            info!(
                new = report.new,
                "messages fetched from the mailbox after a push"
            );
        }
        Ok(report)
    }

    /// What this node holds for others and what it still has queued for its contacts.
    pub async fn mailbox_status(&self) -> Result<MailboxStatus, FetchError> {
        self.with_reader(|reader, _| {
            let held = reader.mailbox_summary()?;
            let contacts = reader.list_contacts()?;
            let queued = reader
                .outbox_summary()?
                .into_iter()
                .map(|row| QueuedView {
                    contact: contacts
                        .iter()
                        .find(|c| c.uid == row.contact_uid)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| Uid::from_bytes(&row.contact_uid).to_string()),
                    state: row.state.to_string(),
                    count: row.count,
                    oldest: row.oldest,
                    replicas: row.replicas_min,
                })
                .collect();
            Ok(MailboxStatus {
                held: HeldView {
                    count: held.count,
                    bytes: held.bytes,
                    oldest: held.oldest,
                    recipients: held.recipients,
                },
                queued,
            })
        })
        .await
    }
}
