//! Re-replication: on a timer (the node's [`Clock`](crate::clock::Clock)), purge what expired
//! and copy what we hold to those of the current replicas (the [`ReplicaPlan`](super::ReplicaPlan)'s
//! first [`REPLICAS`] that count, deep peers before them included) that have not had it yet, so
//! the copies survive churn.

use std::collections::HashSet;

use bytes::Bytes;
use libp2p::PeerId;
use rhizo_core::{
    Uid,
    mailbox::{MAX_TTL_SECS, MIN_TTL_SECS, MailboxRequest, MailboxResponse, REPLICAS},
};
use rhizo_net::ClosestPeer;
use rhizo_store::{DbError, mailbox::MailboxEntry};
use tracing::{debug, info, warn};

use super::{Mailbox, REPLICATE_BATCH};

impl Mailbox {
    /// Purges expired entries, then copies what we hold to those of the current closest
    /// [`REPLICAS`] nodes that have not had it yet, so the copies survive churn.
    pub async fn replicate_pass(&self) {
        let recipients = match self.purge_and_list().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "mailbox re-replication: cannot read the store");
                return;
            }
        };
        if let Ok(mut pushed) = self.inner.pushed.lock() {
            pushed.retain(|k, _| recipients.contains(k));
        }
        for recipient in recipients {
            self.replicate_mailbox(recipient).await;
        }
    }

    /// Runs re-replication every `replicate` interval (on tokio's clock, which a test pauses)
    /// until `shutdown` fires.
    pub async fn run_replication(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let interval = self.inner.settings.replicate;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            self.replicate_pass().await;
        }
    }

    /// Purges expired entries; the recipients we still hold entries for.
    async fn purge_and_list(&self) -> Result<Vec<[u8; 32]>, DbError> {
        let now = self.inner.clock.now_ms();
        self.inner
            .db
            .write(move |tx| -> Result<_, DbError> {
                let purged = tx.mailbox_purge_expired(now)?;
                if purged > 0 {
                    info!(purged, "expired mailbox entries purged");
                }
                Ok(tx.mailbox_recipients(now)?)
            })
            .await
    }

    /// Copies one recipient's entries to the closest replicas that do not have them yet.
    async fn replicate_mailbox(&self, recipient: [u8; 32]) {
        let uid = Uid::from_bytes(&recipient);
        // The peers a store goes to: REPLICAS that count, and every deep peer before them.
        let plan = self.plan(&uid, false).await;
        let closest: Vec<ClosestPeer> = plan
            .prefix(REPLICAS)
            .iter()
            .map(|c| c.peer.clone())
            .collect();
        let already: HashSet<PeerId> = self
            .inner
            .pushed
            .lock()
            .map(|p| p.get(&recipient).cloned().unwrap_or_default())
            .unwrap_or_default();
        let targets: Vec<ClosestPeer> = closest
            .into_iter()
            .filter(|p| !already.contains(&p.peer))
            .collect();
        if targets.is_empty() {
            return;
        }
        let now = self.inner.clock.now_ms();
        let entries = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> {
                Ok(r.mailbox_entries(&recipient, now, REPLICATE_BATCH)?)
            })
            .await;
        let Ok(entries) = entries else { return };
        for target in targets {
            if self.push_entries(&target, uid, &entries).await {
                debug!(peer = %target.peer, count = entries.len(), "mailbox entries replicated");
                if let Ok(mut pushed) = self.inner.pushed.lock() {
                    pushed.entry(recipient).or_default().insert(target.peer);
                }
            }
        }
    }

    /// Stores `entries` on `target`; false at the first that failed for a reason worth a
    /// retry.
    async fn push_entries(&self, target: &ClosestPeer, uid: Uid, entries: &[MailboxEntry]) -> bool {
        for entry in entries {
            let remaining = (entry.expires_at - self.inner.clock.now_ms()) / 1000;
            if remaining < i64::from(MIN_TTL_SECS) {
                continue;
            }
            let request = MailboxRequest::Store {
                recipient: uid,
                envelope: Bytes::copy_from_slice(&entry.envelope),
                ttl_secs: u32::try_from(remaining).unwrap_or(MAX_TTL_SECS),
                sender_cert: Bytes::copy_from_slice(&entry.sender_cert),
            }
            .encode();
            match self.request(target, request).await {
                Ok(MailboxResponse::Stored { .. }) => {}
                Ok(MailboxResponse::Error { code, .. }) if !code.is_transient() => {
                    // Refused for good (e.g. already delivered): nothing to retry.
                }
                _ => return false,
            }
        }
        true
    }
}
