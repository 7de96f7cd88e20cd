//! The outbox loop: asks the engine what is due, sends each frame to every device of the
//! contact with rhizo-net's `Client`, hands the answers back, and stores on the contact's
//! mailbox replicas what no device took; then the group frames (`groups`). First, new
//! conversations for messages a lost conversation left (`reestablish`). Timers run on the node's [`Clock`](crate::clock).

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use rhizo_core::Uid;
use rhizo_engine::{
    Engine, MailboxAttempt, Transmit,
    commits::COMMIT_SWEEP_INTERVAL_MS,
    outbox::{DeviceAnswer, Target},
};
use rhizo_net::SendError;
use rhizo_store::{Durability, messaging::OutboxItem};
use tracing::{debug, warn};

use super::{JobError, Messaging};
use crate::mailbox::StoreVerdict;

// The network layer refuses batch frames on `/rhizo/msg/1` by this byte.
const _: () = assert!(rhizo_net::BATCH_FRAME_MARKER == rhizo_core::envelope::BATCH_FRAME_MARKER);

/// Wait after a failed outbox pass (the database, not the network, failed).
const FIRST_RETRY_DELAY_MS: i64 = 1_000;
/// Shortest wait between passes (a deadline in the past is not a busy loop).
const MIN_WAIT_MS: i64 = 50;
/// Longest wait when nothing is due (a new message wakes the loop anyway).
const IDLE_WAIT_MS: i64 = 60_000;

impl Messaging {
    /// Delivers queued envelopes until `shutdown` fires.
    pub async fn run_outbox(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut last_sweep: Option<i64> = None;
        loop {
            let now = self.now();
            if last_sweep.is_none_or(|t| now.saturating_sub(t) >= COMMIT_SWEEP_INTERVAL_MS) {
                last_sweep = Some(now);
                let swept = self
                    .with_engine(move |tx, engine| engine.sweep(tx, now))
                    .await;
                if let Err(e) = swept {
                    warn!(error = %e, "pruning requests or settling pending self-updates failed");
                }
            }
            if self.inner.engine.next_self_update_at() <= now {
                // A joiner's first self-update (rhizo-engine `groups::selfupdate`): its commit
                // goes out in the pass below.
                let run = self
                    .with_engine(move |tx, engine| engine.run_self_updates(tx, now))
                    .await;
                if let Err(e) = run {
                    warn!(error = %e, "a joiner's self-update failed");
                }
            }
            // A pass may wait for the network's timeouts; shutdown does not wait for it (every
            // change it made is its own committed transaction).
            let pass = tokio::select! {
                pass = self.outbox_pass() => pass,
                _ = shutdown.changed() => return,
            };
            let next = match pass {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "outbox pass failed");
                    Some(self.now() + FIRST_RETRY_DELAY_MS)
                }
            };
            let self_update = self.inner.engine.next_self_update_at();
            let next = Some(next.map_or(self_update, |t| t.min(self_update)));
            let wait = next
                .map(|t| (t - self.now()).max(MIN_WAIT_MS))
                .unwrap_or(IDLE_WAIT_MS);
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            tokio::select! {
                () = self.inner.outbox_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends what is due; returns when the next attempt is due. A contact none of whose
    /// devices answered is not dialled again in the same pass: its later frames go straight
    /// to its mailbox replicas.
    pub(super) async fn outbox_pass(&self) -> Result<Option<i64>, JobError> {
        // Conversations the recipients lost: new ones for the messages that wait.
        self.reestablish_pass().await?;
        let now = self.now();
        let this = self.clone();
        // A read: on the reader pool, off the writer thread (it sees every committed send).
        let transmits = self
            .inner
            .db
            .read(move |reader| -> Result<_, JobError> {
                Ok(this.inner.engine.poll_transmits(&reader, now)?)
            })
            .await?;
        let mut unreachable: Option<([u8; 32], String)> = None;
        for transmit in transmits {
            let why = match &unreachable {
                Some((uid, _)) if *uid == transmit.contact.uid => {
                    Some("no device of the contact answered".to_string())
                }
                _ => self.deliver(transmit.clone()).await?,
            };
            if let Some(why) = why {
                for item in &transmit.items {
                    self.store_in_mailbox(item, &transmit, &why).await?;
                }
                unreachable = Some((transmit.contact.uid, why));
            }
        }
        self.group_outbox_pass().await?;
        let this = self.clone();
        self.inner
            .db
            .read(move |reader| -> Result<_, JobError> {
                Ok(this.inner.engine.next_deadline(&reader)?)
            })
            .await
    }

    /// Sends `frame` to one device over `/rhizo/msg/1`: its response bytes, or why it could
    /// not be reached; `None` when the device's PeerId does not parse.
    pub(super) async fn send_frame(
        &self,
        target: &Target,
        frame: &[u8],
    ) -> Option<Result<Vec<u8>, String>> {
        Some(
            self.send_frame_to(target, frame)
                .await?
                .map_err(|e| e.to_string()),
        )
    }

    /// [`send_frame`](Self::send_frame), with the network's error as it is.
    pub(super) async fn send_frame_to(
        &self,
        target: &Target,
        frame: &[u8],
    ) -> Option<Result<Vec<u8>, SendError>> {
        let peer = target.peer_id.parse::<PeerId>().ok()?;
        let addrs: Vec<Multiaddr> = target.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let sent_ms = self.now();
        let answer = self
            .inner
            .client
            .send_message(peer, addrs, frame.to_vec())
            .await;
        if let Ok(bytes) = &answer {
            self.inner
                .clock_skews
                .record(&target.peer_id, bytes, sent_ms, self.now());
        }
        Some(answer)
    }

    /// Sends one frame to every device of its contact and writes what they answered; why
    /// none answered, if none did. A batch frame that a device takes none of (it is older than
    /// batch frames) goes again as one envelope per frame, to every device.
    async fn deliver(&self, transmit: Transmit) -> Result<Option<String>, JobError> {
        let mut answers: Vec<DeviceAnswer> = Vec::new();
        let mut batch_refused = false;
        for target in transmit.targets() {
            match self.send_frame_to(&target, &transmit.frame).await {
                Some(Err(SendError::BatchUnsupported)) => batch_refused = true,
                Some(answer) => answers.push((target.device, answer.map_err(|e| e.to_string()))),
                None => {}
            }
        }
        if batch_refused && transmit.items.len() > 1 {
            self.deliver_one_by_one(&transmit).await?;
            return Ok(None);
        }
        // Our own other devices hold leaves too (issue 15): best effort, their answers do not
        // count for the envelope's state.
        for target in transmit.own_targets() {
            if let Some(Err(e)) = self.send_frame(target, &transmit.frame).await {
                debug!(error = %e, "another device of ours did not take a frame");
            }
        }
        // The receipts' signatures are verified here, off the database's writer thread.
        let checked = Engine::check_answers(&transmit, answers);
        let now = self.now();
        let this = self.clone();
        // A relaxed job of the group commit: lost in a crash, it is redone (the envelopes are
        // sent again and answered "already have it").
        let result = self
            .inner
            .db
            .write_with(Durability::Relaxed, move |tx| -> Result<_, JobError> {
                Ok(this
                    .inner
                    .engine
                    .on_checked_answers(tx, &transmit, checked, now)?)
            })
            .await?;
        self.emit_events(result.events);
        Ok(result.unreachable)
    }

    /// Delivers a batch's envelopes one per frame (a device takes no batch frames); what no
    /// device took goes to the contact's mailbox replicas.
    async fn deliver_one_by_one(&self, transmit: &Transmit) -> Result<(), JobError> {
        debug!(
            contact = %transmit.contact.name,
            envelopes = transmit.items.len(),
            "a device takes no batch frames: sending the envelopes one by one"
        );
        for single in transmit.singles() {
            if let Some(why) = Box::pin(self.deliver(single.clone())).await? {
                for item in &single.items {
                    self.store_in_mailbox(item, &single, &why).await?;
                }
            }
        }
        Ok(())
    }

    /// No device of the contact could be reached: the envelope goes to the contact's mailbox
    /// replicas, with our device certificate (the replicas bind the store to its sender).
    async fn store_in_mailbox(
        &self,
        item: &OutboxItem,
        transmit: &Transmit,
        why: &str,
    ) -> Result<(), JobError> {
        let contact = &transmit.contact;
        let exclude: Vec<PeerId> = contact
            .devices
            .iter()
            .filter_map(|d| d.peer_id.parse().ok())
            .collect();
        let ttl = self.inner.mailbox.settings().ttl_secs;
        let stored = self
            .inner
            .mailbox
            .store_for(
                &Uid::from_bytes(&contact.uid),
                &exclude,
                &item.envelope,
                ttl,
                &self.inner.engine.me().certificate,
            )
            .await;
        let attempt = MailboxAttempt {
            stored_on: match stored.verdict() {
                StoreVerdict::Stored { replicas } => Some(replicas),
                _ => None,
            },
            quota_full: stored.quota_full,
            errors: stored.errors,
        };
        let (item, contact, why) = (item.clone(), contact.clone(), why.to_string());
        let now = self.now();
        let this = self.clone();
        let events = self
            .inner
            .db
            .write(move |tx| -> Result<_, JobError> {
                Ok(this
                    .inner
                    .engine
                    .on_mailbox_result(tx, &item, &contact, &why, &attempt, now)?)
            })
            .await?;
        self.emit_events(events);
        Ok(())
    }
}
