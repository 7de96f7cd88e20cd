//! The sync group's driver (issue 15): after a link, the device with the root key looks up the
//! new device's KeyPackages in the DHT (again and again until the device, running its full node
//! now, has published them), then the engine puts the device in our sync group
//! ([`rhizo_engine::sync`]): created at the first link, a Welcome to the device either way.
//! Then the device is added to our open 1:1 conversations (their Welcomes go over the sync
//! group) and gets the history.

use std::{sync::atomic::Ordering, time::Duration};

use rhizo_core::{
    DevicePublicKey,
    records::{KeyPackageBundle, ValidRecord, key_packages_key, validate_record},
};
use rhizo_engine::sync::history::{HistoryProgress, MAX_HISTORY_DAYS};
use tracing::{debug, info, warn};

use super::{JobError, Messaging};
use crate::events::ApiEvent;

/// How often a history transfer in progress is moved on (a page or an acknowledgement).
const HISTORY_POLL: Duration = Duration::from_millis(250);
/// How often the driver looks whether a transfer started.
const HISTORY_IDLE_POLL: Duration = Duration::from_secs(5);

/// How long to wait between two looks for the new device's KeyPackages.
const KEY_PACKAGE_RETRY: Duration = Duration::from_secs(2);
/// How many looks before giving up (5 minutes): the device publishes within seconds of its
/// link, so a device still without KeyPackages then is not running.
const KEY_PACKAGE_LOOKS: u32 = 150;

impl Messaging {
    /// Days of history a new device gets when `device add` does not say: the config's
    /// `devices.history_days`
    /// ([`rhizo_engine::sync::history::DEFAULT_HISTORY_DAYS`] unless set).
    pub fn set_default_history_days(&self, days: u32) {
        let days = days.clamp(1, MAX_HISTORY_DAYS);
        self.inner.history_days.store(days, Ordering::Relaxed);
    }

    /// Puts our newly linked `device` in the sync group and in our open 1:1 conversations, then
    /// sends it the last `history_days` days of history (default: the config's
    /// `devices.history_days`), in the background.
    pub(super) fn spawn_sync_group_add(&self, device: DevicePublicKey, history_days: Option<u32>) {
        let history_days =
            history_days.unwrap_or_else(|| self.inner.history_days.load(Ordering::Relaxed));
        let this = self.clone();
        tokio::spawn(async move {
            if let Some(package) = this.sync_group_add(device).await {
                this.join_conversations(device, package).await;
                this.start_history(device, history_days).await;
            }
        });
    }

    /// Adds our new `device` (`package`: its reusable last-resort KeyPackage) to every open 1:1
    /// conversation: a commit to each contact, the Welcomes over the sync group, queued before
    /// the history so that the history finds those conversations there.
    async fn join_conversations(&self, device: DevicePublicKey, package: Vec<u8>) {
        let now = self.now();
        let added = self
            .with_engine(move |tx, engine| {
                engine.add_own_device_to_conversations(tx, &device, &package, now)
            })
            .await;
        match added {
            Ok(n) => info!(
                conversations = n,
                "the new device was added to our 1:1 conversations"
            ),
            Err(e) => warn!(error = %e, "adding the new device to our 1:1 conversations failed"),
        }
        self.inner.outbox_wake.notify_one();
    }

    async fn start_history(&self, device: DevicePublicKey, days: u32) {
        let now = self.now();
        let key = *device.as_bytes();
        let started = self
            .with_engine(move |tx, engine| engine.start_history_transfer(tx, &key, days, now))
            .await;
        match started {
            Ok(Some(progress)) => {
                info!(
                    total = progress.total,
                    "sending our history to the new device"
                );
                self.emit(progress_event(progress));
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "the history transfer did not start"),
        }
    }

    /// Moves history transfers on until `shutdown` fires: pages out, acknowledgements back,
    /// `device_sync_progress` events.
    pub async fn run_history(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            let wait = match self.history_pass().await {
                Ok(true) => HISTORY_POLL,
                Ok(false) => HISTORY_IDLE_POLL,
                Err(e) => {
                    warn!(error = %e, "a history transfer step failed");
                    HISTORY_IDLE_POLL
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One step of the history transfers; whether one is in progress.
    async fn history_pass(&self) -> Result<bool, JobError> {
        let active = self
            .with_reader(|reader, engine| engine.history_active(reader).map_err(JobError::from))
            .await?;
        if !active {
            return Ok(false);
        }
        let now = self.now();
        let moved = self
            .with_engine(move |tx, engine| engine.poll_history(tx, now))
            .await?;
        if !moved.is_empty() {
            self.inner.outbox_wake.notify_one();
        }
        for progress in moved {
            self.emit(progress_event(progress));
        }
        Ok(true)
    }

    /// The KeyPackage the device is in the sync group with now (`None`: it is not).
    async fn sync_group_add(&self, device: DevicePublicKey) -> Option<Vec<u8>> {
        for _ in 0..KEY_PACKAGE_LOOKS {
            if let Some(package) = self.own_key_package(&device).await {
                let now = self.now();
                let key = *device.as_bytes();
                let used = package.clone();
                let added = self
                    .with_engine(move |tx, engine| {
                        engine.add_device_to_sync_group(tx, &key, &used, now)
                    })
                    .await;
                match added {
                    Ok(made) => {
                        info!(?made, "the new device is in our sync group");
                        self.inner.outbox_wake.notify_one();
                        return Some(package);
                    }
                    // A KeyPackage used up meanwhile: look again.
                    Err(e) => debug!(error = %e, "adding the new device to the sync group"),
                }
            }
            tokio::time::sleep(KEY_PACKAGE_RETRY).await;
        }
        warn!("the new device published no KeyPackages; it is not in our sync group");
        None
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
        // The last-resort KeyPackage (reusable): the one-time ones go to the groups the new
        // device joins at the same time (`device_join`), so the two never take the same one.
        best.last_resort()
            .map(|b| b.to_vec())
            .or_else(|| self.inner.engine.choose_key_package(&best))
    }
}

fn progress_event(p: HistoryProgress) -> ApiEvent {
    ApiEvent::DeviceSyncProgress {
        sending: p.sending,
        done: p.done,
        total: p.total,
        finished: p.finished,
    }
}
