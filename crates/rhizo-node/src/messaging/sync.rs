//! The sync group's driver (issue 15): after a link, the device with the root key looks up the
//! new device's KeyPackages in the DHT (again and again until the device, running its full node
//! now, has published them), then the engine puts the device in our sync group
//! ([`rhizo_engine::sync`]): created at the first link, a Welcome to the device either way.

use std::time::Duration;

use rhizo_core::{
    DevicePublicKey,
    records::{KeyPackageBundle, ValidRecord, key_packages_key, validate_record},
};
use tracing::{debug, info, warn};

use super::Messaging;

/// How long to wait between two looks for the new device's KeyPackages.
const KEY_PACKAGE_RETRY: Duration = Duration::from_secs(2);
/// How many looks before giving up (5 minutes): the device publishes within seconds of its
/// link, so a device still without KeyPackages then is not running.
const KEY_PACKAGE_LOOKS: u32 = 150;

impl Messaging {
    /// Puts our newly linked `device` in the sync group, in the background.
    pub(super) fn spawn_sync_group_add(&self, device: DevicePublicKey) {
        let this = self.clone();
        tokio::spawn(async move { this.sync_group_add(device).await });
    }

    async fn sync_group_add(&self, device: DevicePublicKey) {
        for _ in 0..KEY_PACKAGE_LOOKS {
            if let Some(package) = self.own_key_package(&device).await {
                let now = self.now();
                let key = *device.as_bytes();
                let added = self
                    .with_engine(move |tx, engine| {
                        engine.add_device_to_sync_group(tx, &key, &package, now)
                    })
                    .await;
                match added {
                    Ok(made) => {
                        info!(?made, "the new device is in our sync group");
                        self.inner.outbox_wake.notify_one();
                        return;
                    }
                    // A KeyPackage used up meanwhile: look again.
                    Err(e) => debug!(error = %e, "adding the new device to the sync group"),
                }
            }
            tokio::time::sleep(KEY_PACKAGE_RETRY).await;
        }
        warn!("the new device published no KeyPackages; it is not in our sync group");
    }

    /// One KeyPackage of our own `device`'s newest bundle in the DHT, if it published one.
    async fn own_key_package(&self, device: &DevicePublicKey) -> Option<Vec<u8>> {
        let me = self.inner.engine.me();
        let key = key_packages_key(&me.uid, device);
        let values = self
            .inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default();
        let now = u64::try_from(self.inner.clock.now_secs()).unwrap_or(0);
        let best = values
            .iter()
            .filter_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::KeyPackages(bundle)) => Some(bundle),
                _ => None,
            })
            .filter(|b| {
                b.device_cert().root() == me.root_public && b.device_cert().device() == *device
            })
            .max_by_key(KeyPackageBundle::version)?;
        self.inner.engine.choose_key_package(&best)
    }
}
