//! Issue 15: a newly linked device joins this identity's conversations, and the device lists a
//! commit needs are fetched. See [`rhizo_engine::devices::lists`].
//!
//! ```text
//!  add_device (linked, list published) ─▶ spawn_join_new_device(device)
//!     ─▶ the new device's KeyPackage bundle from the DHT (looked for again until it is
//!        published: when the device sends us a Kademlia request, or after a short backoff)
//!     ─▶ add_own_device_to_group in every active group (a distinct one-time KeyPackage each,
//!        then the last-resort one) ─▶ commits to the members, Welcomes to the new device
//!  inbound / mailbox frames ─▶ refresh_wanted_device_lists
//!     ─▶ each wanted UID's newest device list + proofs from the DHT ─▶ learn_listed_devices
//! ```

use rhizo_core::{
    DevicePublicKey, Uid,
    records::{KeyPackageBundle, ValidRecord, key_packages_key, validate_record},
};
use rhizo_store::groups::GroupStatus;
use tracing::{debug, info, warn};

use super::{ContactError, JobError, Messaging};
use crate::events::ApiEvent;

impl Messaging {
    /// After a link: in the background, adds the new device to every active group we are in
    /// (its KeyPackages come from the DHT once it published them). Failures are logged.
    pub(super) fn spawn_join_new_device(&self, device: DevicePublicKey) {
        let this = self.clone();
        tokio::spawn(async move {
            match this.join_new_device(device).await {
                Ok(Some(groups)) => info!(groups, "the new device was added to our groups"),
                Ok(None) => warn!("the new device published no KeyPackages: not added to groups"),
                Err(e) => warn!(error = %e, "adding the new device to our groups failed"),
            }
        });
    }

    /// Adds `device` (our own, just linked) to every active group; how many, or `None` if its
    /// KeyPackages never showed up in the DHT.
    async fn join_new_device(&self, device: DevicePublicKey) -> Result<Option<usize>, JobError> {
        let Some(packages) = self.await_own_key_packages(&device).await else {
            return Ok(None);
        };
        let sessions: Vec<[u8; 16]> = self
            .with_reader(|reader, _| {
                Ok::<_, JobError>(
                    reader
                        .groups()
                        .map_err(|e| JobError::Engine(e.into()))?
                        .into_iter()
                        .filter(|g| g.status == GroupStatus::Active)
                        // The sync group of our devices has its own add (`sync`).
                        .filter(|g| {
                            !rhizo_engine::sync::is_sync_group(reader, &g.session_id)
                                .unwrap_or(true)
                        })
                        .map(|g| g.session_id)
                        .collect(),
                )
            })
            .await?;
        let mut added = 0;
        for (i, session) in sessions.into_iter().enumerate() {
            // One-time KeyPackages first, one per group; then the last-resort one (reusable).
            let Some(package) = packages.get(i).or(packages.last()).cloned() else {
                break;
            };
            let now = self.now();
            let done = self
                .with_engine(move |tx, engine| {
                    engine.add_own_device_to_group(tx, &session, &package, now)
                })
                .await;
            match done {
                Ok(()) => added += 1,
                Err(e) => warn!(error = %e, "the new device was not added to a group"),
            }
        }
        self.inner.outbox_wake.notify_one();
        Ok(Some(added))
    }

    /// One KeyPackage of each of our other listed devices that published a bundle (for a new
    /// 1:1 conversation: our devices are its leaves too). One look each, no retry: a device
    /// without one is left out.
    pub(super) async fn own_key_packages(&self) -> Vec<Vec<u8>> {
        let devices = self
            .with_reader(|reader, engine| engine.own_devices(reader).map_err(JobError::from))
            .await
            .unwrap_or_default();
        let mut out = Vec::new();
        for device in devices.iter().filter(|d| !d.this_device) {
            let device = device.certificate.device();
            if let Some(bundle) = self.own_bundle(&device).await
                && let Some(package) = self.inner.engine.choose_key_package(&bundle)
            {
                out.push(package);
            }
        }
        out
    }

    /// Our own device's newest valid KeyPackage bundle in the DHT, if any.
    async fn own_bundle(&self, device: &DevicePublicKey) -> Option<KeyPackageBundle> {
        let me = self.inner.engine.me();
        let key = key_packages_key(&me.uid, device);
        let now = u64::try_from(self.inner.clock.now_secs()).unwrap_or(0);
        let values = self
            .inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default();
        values
            .iter()
            .filter_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::KeyPackages(bundle)) => Some(bundle),
                _ => None,
            })
            .filter(|b| b.device_cert().root() == me.root_public)
            .max_by_key(KeyPackageBundle::version)
    }

    /// Our own device's newest KeyPackage bundle from the DHT, looked for until it shows up
    /// (bounded, woken by the device's own DHT activity: [`Messaging::await_own_device`]):
    /// its one-time KeyPackages, then its last-resort one.
    async fn await_own_key_packages(&self, device: &DevicePublicKey) -> Option<Vec<Vec<u8>>> {
        self.await_own_device(device, || async move {
            let bundle = self.own_bundle(device).await?;
            let packages = packages_in_order(&bundle);
            (!packages.is_empty()).then_some(packages)
        })
        .await
    }

    /// Fetches, in the background, the newest device list of each UID the engine wants (a
    /// commit added a device of the committer's own that the list we know does not name), so
    /// the committer's retry applies. At most [`super::requests::MAX_RESOLVING`] lookups run
    /// at once; UIDs not looked up now are wanted again on the commit's next retry.
    pub(super) fn refresh_wanted_device_lists(&self) {
        let wanted = self.inner.engine.wanted_device_lists();
        if wanted.is_empty() {
            return;
        }
        let Ok(permit) = self.inner.resolving.clone().try_acquire_owned() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            for uid in wanted {
                if let Err(e) = this.refresh_device_list(&uid).await {
                    debug!(error = %e, "fetching a committer's device list failed");
                }
            }
        });
    }

    /// `uid`'s newest device list and its devices' proofs from the DHT, given to the engine.
    async fn refresh_device_list(&self, uid: &Uid) -> Result<(), ContactError> {
        // The name is not stored: a known contact keeps its own.
        let found = self.contact_from_dht(uid, "member").await?;
        let (uid, now) = (*uid, self.now());
        let changed = self
            .with_tx(move |tx, engine| {
                Ok::<_, ContactError>(engine.learn_listed_devices(tx, &uid, found.devices, now)?)
            })
            .await?;
        if let Some(contact) = changed {
            self.emit(ApiEvent::KeyChange { contact });
        }
        Ok(())
    }
}

/// A bundle's one-time KeyPackages in order, then its last-resort one.
fn packages_in_order(bundle: &KeyPackageBundle) -> Vec<Vec<u8>> {
    let last = bundle.last_resort_index();
    let mut out: Vec<Vec<u8>> = bundle
        .key_packages()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != last)
        .map(|(_, kp)| kp.to_vec())
        .collect();
    out.extend(bundle.last_resort().map(|kp| kp.to_vec()));
    out
}
