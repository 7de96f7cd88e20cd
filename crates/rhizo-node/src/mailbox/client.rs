//! The client side: storing an envelope on the replicas of a recipient's mailbox, fetching
//! pages of our own mailbox and deleting what a receipt names — from a remote replica, or from
//! our own table when we are among our closest nodes.

use std::time::Instant;

use bytes::Bytes;
use libp2p::PeerId;
use rhizo_core::{
    DeviceCertificate, DeviceKey, DevicePublicKey, Uid,
    envelope::{DeliveryReceipt, ErrorCode},
    mailbox::{
        FetchRequest, FetchedEntry, MAX_FETCH_ENTRIES, MailboxRequest, MailboxResponse, REPLICAS,
        check_device_list, mailbox_key,
    },
};
use rhizo_engine::mailbox::{Authorized, ListedDevices, delete_targets, serve};
use rhizo_net::ClosestPeer;
use rhizo_store::DbError;
use tracing::debug;

use super::placement::{Candidate, ReplicaPlan};
use super::{
    CLOSEST_CACHE_ENTRIES, CLOSEST_CACHE_TTL, EXTRA_CANDIDATES, EXTRA_FETCH_REPLICAS, Mailbox,
};

/// What storing one envelope on the replicas did.
#[derive(Debug, Clone, Default)]
pub struct StoreOutcome {
    /// Replicas that acknowledged (persisted) it.
    pub replicas: u32,
    /// Of those (and of the tombstoned), the ones that count towards [`REPLICAS`]: a deep
    /// peer past the first [`MAX_DEEP_REPLICAS`](super::placement::MAX_DEEP_REPLICAS) does not
    /// (see [`ReplicaPlan`]).
    pub counted: u32,
    /// Why the others did not, for the sender's error line.
    pub errors: Vec<String>,
    /// Whether a replica refused because a quota was full.
    pub quota_full: bool,
    /// Replicas that answered `REPLAY_DETECTED`: they hold a tombstone for it (the recipient
    /// fetched and deleted it there, as far as an unsigned answer from a replica tells).
    /// "Stop storing here", never "delivered": only a signed receipt from one of the
    /// recipient's devices makes a message delivered.
    pub tombstoned: u32,
}

/// What the sender does with an outgoing row after storing it on the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreVerdict {
    /// Held on (or already taken from) this many replicas: the row becomes `stored`.
    Stored {
        /// Replicas that acknowledged it or hold its tombstone.
        replicas: u32,
    },
    /// No replica holds it: stays queued, retried with backoff.
    Retry,
}

impl StoreOutcome {
    /// The sender's decision: a replica's `REPLAY_DETECTED` counts like a replica that holds
    /// the envelope (stop storing there), never as delivered.
    pub fn verdict(&self) -> StoreVerdict {
        match self.replicas.saturating_add(self.tombstoned) {
            0 => StoreVerdict::Retry,
            replicas => StoreVerdict::Stored { replicas },
        }
    }
}

/// One replica's answer to a fetch.
#[derive(Debug, Clone)]
pub struct Page {
    /// Envelopes held for us.
    pub entries: Vec<FetchedEntry>,
    /// Whether the replica holds more than it returned.
    pub more: bool,
    /// Where the next page starts (the replica's `next_cursor`).
    pub next_cursor: u64,
}

/// Where a fetch goes: a remote replica or our own store (we may be among our closest nodes).
#[derive(Debug, Clone)]
pub enum Source {
    /// This node's own mailbox table.
    Local,
    /// A replica.
    Remote(ClosestPeer),
}

/// A fetch answer as a [`Page`], or why there is none.
fn page_of(response: MailboxResponse) -> Result<Page, String> {
    match response {
        MailboxResponse::Fetched {
            entries,
            more,
            next_cursor,
        } => Ok(Page {
            entries,
            more,
            next_cursor,
        }),
        MailboxResponse::Error { code, detail } => Err(format!("{}: {detail}", code.as_str())),
        _ => Err("unexpected answer to a fetch".into()),
    }
}

impl Mailbox {
    /// The replicas for `uid`'s mailbox: the closest peers to its mailbox key (cached briefly
    /// when `cached`).
    pub async fn closest(&self, uid: &Uid, cached: bool) -> Vec<ClosestPeer> {
        let key = mailbox_key(uid);
        if cached
            && let Ok(cache) = self.inner.closest.lock()
            && let Some((at, peers)) = cache.get(&key)
            && at.elapsed() < CLOSEST_CACHE_TTL
        {
            return peers.clone();
        }
        let peers = match self.inner.client.closest_peers(key.to_vec()).await {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "closest-peers lookup failed");
                Vec::new()
            }
        };
        if let Ok(mut cache) = self.inner.closest.lock() {
            if cache.len() >= CLOSEST_CACHE_ENTRIES {
                cache.clear();
            }
            if !peers.is_empty() {
                cache.insert(key, (Instant::now(), peers.clone()));
            }
        }
        peers
    }

    pub(super) async fn request(
        &self,
        peer: &ClosestPeer,
        request: Vec<u8>,
    ) -> Result<MailboxResponse, String> {
        let bytes = self
            .inner
            .client
            .mailbox_request(peer.peer, peer.addrs.clone(), request)
            .await
            .map_err(|e| e.to_string())?;
        MailboxResponse::decode(&bytes).map_err(|e| e.to_string())
    }

    /// The replica plan for `uid`'s mailbox: its closest peers (see
    /// [`closest`](Self::closest)), deep ones marked (see [`ReplicaPlan`]).
    pub async fn plan(&self, uid: &Uid, cached: bool) -> ReplicaPlan {
        ReplicaPlan::new(&mailbox_key(uid), self.closest(uid, cached).await)
    }

    /// Where a fetch of `uid`'s mailbox looks: our own table, then the replicas of its plan
    /// up to [`REPLICAS`] + [`EXTRA_FETCH_REPLICAS`] that count, and every deep peer before
    /// them — the peers senders store on.
    pub async fn fetch_sources(&self, uid: &Uid) -> Vec<Source> {
        let plan = self.plan(uid, false).await;
        let mut sources = vec![Source::Local];
        sources.extend(
            plan.prefix(REPLICAS + EXTRA_FETCH_REPLICAS)
                .iter()
                .map(|c| Source::Remote(c.peer.clone())),
        );
        sources
    }

    /// Stores a sealed envelope for `recipient` on the replicas of its [`ReplicaPlan`] until
    /// [`REPLICAS`] that count hold it (never on `exclude`: the recipient's own devices), with
    /// `sender_cert`, the certificate of the device that signed it. Deep peers (ids ground
    /// next to the key) get it too, but past the first two they do not count, so an eclipse
    /// cannot take the whole set. Returns how many acknowledged.
    pub async fn store_for(
        &self,
        recipient: &Uid,
        exclude: &[PeerId],
        envelope: &[u8],
        ttl_secs: u32,
        sender_cert: &DeviceCertificate,
    ) -> StoreOutcome {
        let plan = self.plan(recipient, true).await;
        let mut candidates: Vec<&Candidate> = plan
            .candidates
            .iter()
            .filter(|c| !exclude.contains(&c.peer.peer))
            .collect();
        let uncounted = candidates.iter().filter(|c| !c.counts).count();
        candidates.truncate(REPLICAS + EXTRA_CANDIDATES + uncounted);
        let request = MailboxRequest::Store {
            recipient: *recipient,
            envelope: Bytes::copy_from_slice(envelope),
            ttl_secs,
            sender_cert: Bytes::from(sender_cert.encode()),
        }
        .encode();
        let mut outcome = StoreOutcome::default();
        if candidates.is_empty() {
            outcome
                .errors
                .push("no mailbox replica is known (is the node connected?)".into());
            return outcome;
        }
        let mut next = 0;
        while (outcome.counted as usize) < REPLICAS && next < candidates.len() {
            // The next candidates up to the one that would make REPLICAS counted.
            let want = REPLICAS - outcome.counted as usize;
            let mut end = next;
            let mut counting = 0;
            while end < candidates.len() && counting < want {
                counting += usize::from(candidates[end].counts);
                end += 1;
            }
            let batch = &candidates[next..end];
            next = end;
            let results = futures::future::join_all(
                batch.iter().map(|c| self.request(&c.peer, request.clone())),
            )
            .await;
            for (candidate, result) in batch.iter().zip(results) {
                record_store_answer(&mut outcome, candidate, result);
            }
        }
        if outcome.replicas == 0 {
            // The cached set may be stale.
            if let Ok(mut cache) = self.inner.closest.lock() {
                cache.remove(&mailbox_key(recipient));
            }
        }
        outcome
    }

    /// One page of our mailbox from `source`, after position `cursor` (0: from the oldest;
    /// see [`FetchPager`](rhizo_core::mailbox::FetchPager)), authenticated with a fresh
    /// challenge.
    pub async fn fetch_page(
        &self,
        source: &Source,
        device: &DeviceKey,
        uid: &Uid,
        device_list: &[u8],
        cursor: u64,
    ) -> Result<Page, String> {
        match source {
            Source::Local => {
                let now = self.inner.clock.now_ms();
                let list = own_list(uid, device_list, &device.public(), now)?;
                let authorized = Authorized::Fetch {
                    uid: *uid.as_bytes(),
                    list,
                    cursor,
                    limit: MAX_FETCH_ENTRIES as usize,
                };
                page_of(self.serve_locally(now, authorized).await?)
            }
            Source::Remote(peer) => {
                let challenge = MailboxRequest::Challenge { recipient: *uid }.encode();
                let nonce = match self.request(peer, challenge).await? {
                    MailboxResponse::Challenge { nonce, .. } => nonce,
                    MailboxResponse::Error { code, detail } => {
                        return Err(format!("{}: {detail}", code.as_str()));
                    }
                    _ => return Err("unexpected answer to a challenge".into()),
                };
                let fetch = FetchRequest::new(
                    device,
                    &peer.peer.to_bytes(),
                    *uid,
                    nonce,
                    Bytes::copy_from_slice(device_list),
                    MAX_FETCH_ENTRIES,
                )
                .with_cursor(cursor);
                page_of(
                    self.request(peer, MailboxRequest::Fetch(fetch).encode())
                        .await?,
                )
            }
        }
    }

    /// Deletes what `receipt` names from `source` (delete-on-receipt); returns how many.
    pub async fn delete(
        &self,
        source: &Source,
        uid: &Uid,
        device_list: &[u8],
        receipt: &DeliveryReceipt,
    ) -> Result<u32, String> {
        match source {
            Source::Local => {
                let now = self.inner.clock.now_ms();
                // As a replica would (`DeleteRequest::verify`): what we have, and what we
                // refused for good, only if held; per device.
                let authorized = Authorized::Delete {
                    uid: *uid.as_bytes(),
                    list: own_list(uid, device_list, &receipt.recipient_device, now)?,
                    targets: delete_targets(receipt),
                };
                match self.serve_locally(now, authorized).await? {
                    MailboxResponse::Deleted { count } => Ok(count),
                    MailboxResponse::Error { code, detail } => {
                        Err(format!("{}: {detail}", code.as_str()))
                    }
                    _ => Err("unexpected answer to a delete".into()),
                }
            }
            Source::Remote(peer) => {
                let request = MailboxRequest::Delete(rhizo_core::mailbox::DeleteRequest::new(
                    *uid,
                    Bytes::copy_from_slice(device_list),
                    receipt,
                ))
                .encode();
                match self.request(peer, request).await? {
                    MailboxResponse::Deleted { count } => Ok(count),
                    MailboxResponse::Error { code, detail } => {
                        Err(format!("{}: {detail}", code.as_str()))
                    }
                    _ => Err("unexpected answer to a delete".into()),
                }
            }
        }
    }

    /// A fetch or delete on our own table, by the replica's rules (`serve`): the device list
    /// is noted, a page holds what this device has not acknowledged, and an entry goes once
    /// every device it is addressed to has it.
    async fn serve_locally(
        &self,
        now: i64,
        authorized: Authorized,
    ) -> Result<MailboxResponse, String> {
        self.inner
            .db
            .write(move |tx| Ok::<_, DbError>(serve(tx, now, authorized)))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Adds one replica's answer to a store to `outcome`.
fn record_store_answer(
    outcome: &mut StoreOutcome,
    candidate: &Candidate,
    result: Result<MailboxResponse, String>,
) {
    let peer = candidate.peer.peer;
    let holds = match result {
        Ok(MailboxResponse::Stored { .. }) => {
            outcome.replicas += 1;
            true
        }
        Ok(MailboxResponse::Error { code, detail }) => {
            match code {
                ErrorCode::QuotaExceeded => outcome.quota_full = true,
                ErrorCode::ReplayDetected => outcome.tombstoned += 1,
                _ => {}
            }
            outcome
                .errors
                .push(format!("{peer}: {} ({detail})", code.as_str()));
            code == ErrorCode::ReplayDetected
        }
        Ok(_) => {
            outcome.errors.push(format!("{peer}: unexpected answer"));
            false
        }
        Err(e) => {
            outcome.errors.push(format!("{peer}: {e}"));
            false
        }
    };
    if holds && candidate.counts {
        outcome.counted += 1;
    }
}

/// Our own device list, checked as a replica checks it (it names `device`).
fn own_list(
    uid: &Uid,
    device_list: &[u8],
    device: &DevicePublicKey,
    now_ms: i64,
) -> Result<ListedDevices, String> {
    let now_secs = u64::try_from(now_ms).unwrap_or(0) / 1000;
    check_device_list(uid, device_list, device, now_secs, 0)
        .map(ListedDevices::from)
        .map_err(|e| format!("{}: {e}", e.code().as_str()))
}
