//! The publisher loop: when the engine's [`PublishSchedule`] says so, puts our identity record,
//! device list, public profile, agent card (with its skills' provider records) and KeyPackage
//! bundle in the DHT, and prunes the seen-set.
//! Runs on the node's [`Clock`](crate::clock): a paused clock moves it through simulated hours.

use std::time::Duration;

use libp2p::PeerId;
use rhizo_core::{
    mailbox::REPLICAS,
    records::{device_list_key, identity_key, key_packages_key, profile_key},
};
use rhizo_engine::{EngineError, publish::PublishSchedule};
use tracing::{debug, info, warn};

use super::{Messaging, ProfileError};

/// The first wait before the publisher tries again while nothing is published yet (it
/// doubles up to [`rhizo_engine::publish::PUBLISHER_FIRST_TRY_INTERVAL_MS`]): a linked
/// device's first KeyPackages are what its other device waits for.
const FIRST_TRY_RETRY: Duration = Duration::from_millis(100);

/// Why a record could not be published.
#[derive(Debug, thiserror::Error)]
pub(super) enum PublishError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Job(#[from] super::JobError),
    #[error("the DHT refused it: {0}")]
    Net(#[from] rhizo_net::NetError),
    #[error("our identity's records are not in the DHT yet: {0}")]
    Linked(String),
}

impl Messaging {
    /// Publishes our KeyPackage bundle (creating it once) in the DHT, then keeps republishing.
    /// Until the first publication succeeded it tries again after [`FIRST_TRY_RETRY`],
    /// doubling up to the schedule's retry interval, and at once when a peer connects.
    pub async fn run_publisher(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut schedule = PublishSchedule::default();
        let mut first_try = FIRST_TRY_RETRY;
        loop {
            self.publisher_tick(&mut schedule).await;
            let first = !schedule.published_once();
            let wait = schedule.next_check(self.now()) - self.now();
            let mut wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            if first {
                wait = wait.min(first_try);
                first_try = first_try.saturating_mul(2);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.publish_wake.notified(), if first => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Does what the schedule says is due now.
    pub(super) async fn publisher_tick(&self, schedule: &mut PublishSchedule) {
        let now = self.now();
        let due = schedule.due(now);
        if due.prune_seen {
            // Forget the ids whose envelopes the window refuses anyway.
            match self
                .with_engine(move |tx, engine| engine.prune_seen(tx, now))
                .await
            {
                Ok(n) if n > 0 => debug!(pruned = n, "seen-set pruned"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "pruning the seen-set failed"),
            }
            schedule.pruned(now);
        }
        let bundle_used = self
            .with_reader(|reader, engine| {
                engine
                    .key_packages_used(reader)
                    .map_err(super::JobError::from)
            })
            .await
            .unwrap_or(false);
        if !(due.republish || bundle_used) {
            return;
        }
        // Never sign a version at or below one of ours already in the DHT.
        if !self.catch_up_record_versions(due.republish).await {
            debug!("no peer to look our records up with yet: the publication waits for one");
            return;
        }
        // A linked device retries soon until it has found our device list (it cannot sign one,
        // and needs it for mailbox fetches); a primary's records are retried within the hour.
        let mut identity_ok = true;
        if let Err(e) = self.publish_identity().await {
            debug!(error = %e, "identity records not published yet");
            identity_ok = self.inner.engine.me().holds_root();
        }
        if due.republish
            && let Err(e) = self.publish_profile().await
        {
            debug!(error = %e, "public profile not republished yet");
        }
        if due.republish
            && let Err(e) = self.publish_agent_card().await
        {
            debug!(error = %e, "agent card not republished yet");
        }
        // A linked device that holds no device list of ours yet publishes no KeyPackages (it
        // tries again soon): our other devices add it as soon as they find them, and it would
        // not know their Welcomes and sync messages for ours.
        if !identity_ok && !self.holds_device_list().await {
            debug!("no device list of ours yet: our KeyPackages wait for it");
            return;
        }
        match self.publish_key_packages().await {
            Ok(n) => {
                info!(peers = n, "published KeyPackages in the DHT");
                if identity_ok {
                    schedule.published(self.now());
                }
            }
            Err(e) => debug!(error = %e, "KeyPackages not published yet"),
        }
    }

    /// Before we sign our records again: looks up what the DHT holds under the keys of the
    /// versioned records about to be signed (the KeyPackage bundle; on a republish also the
    /// device list and the public profile) and moves the record-version counter up to the
    /// newest version of ours found there, persisted before anything is signed. Record versions
    /// are `max(last, now) + 1`, so a device that signed several records in one second ran
    /// ahead of the clock; a device restored from a backup or recovered on a new data dir, and
    /// a lost device still online, would otherwise sign versions the DHT's holders refuse and
    /// contacts rank below the old ones. `false` while the routing table is empty: a lookup
    /// then finds nothing, and nothing could be published either (the publisher tries again
    /// soon). Otherwise best effort: a failed lookup changes nothing.
    async fn catch_up_record_versions(&self, republish: bool) -> bool {
        let client = &self.inner.client;
        if client.info().await.map_or(0, |i| i.routing_table_peers) == 0 {
            return false;
        }
        let me = self.inner.engine.me();
        let mut keys = vec![key_packages_key(&me.uid, &me.device.public()).to_vec()];
        if republish {
            if me.holds_root() {
                keys.push(device_list_key(&me.uid).to_vec());
            }
            keys.push(profile_key(&me.uid).to_vec());
        }
        let lookups = keys.into_iter().map(|key| async move {
            let values = client.get_records(key.clone()).await.unwrap_or_default();
            (key, values)
        });
        for (key, values) in futures::future::join_all(lookups).await {
            if values.is_empty() {
                continue;
            }
            let now = self.now();
            match self
                .with_engine(move |tx, engine| engine.note_own_records(tx, &key, &values, now))
                .await
            {
                Ok(Some(version)) => info!(
                    version,
                    "a record of ours in the DHT is at or above our next version: signing above it"
                ),
                Ok(None) => {}
                Err(e) => warn!(error = %e, "cannot note the versions of our records in the DHT"),
            }
        }
        true
    }

    /// Whether this device holds our device list (see
    /// [`rhizo_engine::Engine::holds_device_list`]); `false` if the database fails.
    async fn holds_device_list(&self) -> bool {
        self.with_reader(|reader, engine| {
            engine
                .holds_device_list(reader)
                .map_err(super::JobError::from)
        })
        .await
        .unwrap_or(false)
    }

    /// Publishes the signed identity record and device list, so others can add us by UID.
    async fn publish_identity(&self) -> Result<(), PublishError> {
        if !self.inner.engine.me().holds_root() {
            return self.refresh_linked_identity().await;
        }
        let now = self.now();
        let records = self
            .with_engine(move |tx, engine| engine.identity_records(tx, now))
            .await?;
        for (key, value) in records {
            self.inner.client.put_record(key, value).await?;
        }
        Ok(())
    }

    /// On a linked device: adopts our newest device list from the DHT (signed by the device
    /// that holds the root key), and stores both records again so they stay findable while
    /// that device is offline (they are signed; nobody can change them).
    pub(super) async fn refresh_linked_identity(&self) -> Result<(), PublishError> {
        let uid = self.inner.engine.me().uid;
        let (identity, list) = self
            .lookup_identity(&uid)
            .await
            .map_err(|e| PublishError::Linked(e.to_string()))?;
        let (now, bytes) = (self.now(), list.encode());
        let value = bytes.clone();
        let adopted = self
            .with_engine(move |tx, engine| engine.adopt_device_list(tx, &value, now))
            .await?;
        if adopted {
            info!(version = list.version(), "adopted our newer device list");
        }
        let client = &self.inner.client;
        client
            .put_record(identity_key(&uid).to_vec(), identity.encode())
            .await?;
        client
            .put_record(device_list_key(&uid).to_vec(), bytes)
            .await?;
        Ok(())
    }

    async fn publish_key_packages(&self) -> Result<usize, PublishError> {
        let now = self.now();
        let (key, value) = self
            .with_engine(move |tx, engine| engine.key_package_record(tx, now))
            .await?;
        Ok(self.inner.client.put_record(key, value).await?)
    }

    /// Publishes our public profile (re-signed with a new version, so it never expires while
    /// we are online) on the closest nodes; 0 when we have none or it is not public.
    pub(super) async fn publish_profile(&self) -> Result<usize, ProfileError> {
        let now = self.now();
        let record = self
            .with_engine(move |tx, engine| engine.public_profile_record(tx, now))
            .await?;
        let Some(record) = record else { return Ok(0) };
        let key = profile_key(&self.inner.engine.me().uid).to_vec();
        let closest: Vec<PeerId> = self
            .inner
            .client
            .closest_peers(key.clone())
            .await
            .unwrap_or_default()
            .into_iter()
            .take(REPLICAS)
            .map(|p| p.peer)
            .collect();
        if closest.is_empty() {
            return Err(ProfileError::NotConnected);
        }
        self.inner
            .client
            .put_record_to(key, record, closest)
            .await
            .map_err(ProfileError::Publish)
    }
}
