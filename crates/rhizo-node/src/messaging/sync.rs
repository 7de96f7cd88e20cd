//! The sync group's driver (issue 15): after a link, the device with the root key looks up the
//! new device's KeyPackages in the DHT (until the device, running its full node now, has
//! published them: again each time that device sends us a Kademlia request, e.g. to store
//! them here, and after a short backoff otherwise), then the engine puts the device in our sync
//! group ([`rhizo_engine::sync`]): created at the first link, a Welcome to the device either
//! way. Then the device is added to our open 1:1 conversations (their Welcomes go over the
//! sync group) and gets the history, moved on as pages and acknowledgements arrive.

use std::{future::Future, sync::atomic::Ordering, time::Duration};

use libp2p::PeerId;
use rhizo_core::{
    DevicePublicKey,
    records::{KeyPackageBundle, ValidRecord, key_packages_key, validate_record},
};
use rhizo_engine::{
    contacts::peer_id_of_device,
    sync::history::{HistoryProgress, MAX_HISTORY_DAYS},
};
use tracing::{debug, info, warn};

use super::{Inner, JobError, Messaging};
use crate::events::ApiEvent;

/// How often the driver looks at the history transfers without being woken: the resend
/// deadline of a transfer in progress
/// ([`HISTORY_RESEND_MS`](rhizo_engine::sync::history::HISTORY_RESEND_MS)) is met within this. Pages and
/// acknowledgements move them on at once ([`rhizo_engine::Event::HistoryMoved`]).
const HISTORY_IDLE_POLL: Duration = Duration::from_secs(5);

/// The first wait between two looks for the new device's KeyPackages; it doubles up to
/// [`KEY_PACKAGE_RETRY`]. The device's Kademlia requests to us wake the look at once.
const KEY_PACKAGE_FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two looks for the new device's KeyPackages.
const KEY_PACKAGE_RETRY: Duration = Duration::from_secs(2);
/// The shortest time between two looks (a device busy in the DHT wakes them often).
const KEY_PACKAGE_MIN_GAP: Duration = Duration::from_millis(50);
/// How long to look before giving up (5 minutes): the device publishes within seconds of its
/// link, so a device still without KeyPackages then is not running.
const KEY_PACKAGE_GIVE_UP: Duration = Duration::from_secs(300);

/// One lookup waiting for our newly linked device (in `awaited_devices` while it lives).
struct Awaiting<'a> {
    inner: &'a Inner,
    peer: PeerId,
}

impl<'a> Awaiting<'a> {
    fn new(inner: &'a Inner, peer: PeerId) -> Self {
        if let Ok(mut awaited) = inner.awaited_devices.lock() {
            *awaited.entry(peer).or_default() += 1;
        }
        Self { inner, peer }
    }
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut awaited) = self.inner.awaited_devices.lock()
            && let Some(n) = awaited.get_mut(&self.peer)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                awaited.remove(&self.peer);
            }
        }
    }
}

impl Messaging {
    /// `peer` connected (`connected`) or sent us a Kademlia request: wakes the publisher while
    /// nothing is published yet (on a connection: a peer to look our records up with), and the
    /// lookups of a newly linked device's KeyPackages when `peer` is that device.
    pub(crate) fn on_peer_active(&self, peer: &PeerId, connected: bool) {
        if connected {
            self.inner.publish_wake.notify_one();
        }
        let awaited = self
            .inner
            .awaited_devices
            .lock()
            .is_ok_and(|awaited| awaited.contains_key(peer));
        if awaited {
            self.inner.awaited_device_wake.notify_waiters();
        }
    }

    /// Runs `look` until it finds something about our newly linked `device` in the DHT: at
    /// once, then each time that device sends us a Kademlia request (it is up and publishing;
    /// its KeyPackages may be stored here) or connects, and otherwise after a backoff from
    /// [`KEY_PACKAGE_FIRST_RETRY`] up to [`KEY_PACKAGE_RETRY`] (it may publish on other
    /// peers only). `None` after [`KEY_PACKAGE_GIVE_UP`].
    pub(super) async fn await_own_device<T, F, Fut>(
        &self,
        device: &DevicePublicKey,
        mut look: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let _awaiting = peer_id_of_device(device).map(|peer| Awaiting::new(&self.inner, peer));
        let deadline = tokio::time::Instant::now() + KEY_PACKAGE_GIVE_UP;
        let mut backoff = KEY_PACKAGE_FIRST_RETRY;
        loop {
            let started = tokio::time::Instant::now();
            // Registered before the look: a wake during it is not lost.
            let wake = self.inner.awaited_device_wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            if let Some(found) = look().await {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::select! {
                () = wake => {}
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(KEY_PACKAGE_RETRY);
            tokio::time::sleep_until(started + KEY_PACKAGE_MIN_GAP).await;
        }
    }

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
                self.inner.history_wake.notify_one();
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "the history transfer did not start"),
        }
    }

    /// Moves history transfers on until `shutdown` fires: pages out, acknowledgements back,
    /// `device_sync_progress` events. Woken when a transfer starts and when a page or an
    /// acknowledgement arrived; otherwise it looks every [`HISTORY_IDLE_POLL`] (for the resend
    /// of pages nothing acknowledged).
    pub async fn run_history(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.history_pass().await {
                warn!(error = %e, "a history transfer step failed");
            }
            tokio::select! {
                () = tokio::time::sleep(HISTORY_IDLE_POLL) => {}
                () = self.inner.history_wake.notified() => {}
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
        let added = self
            .await_own_device(&device, || async move {
                let package = self.own_key_package(&device).await?;
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
                        Some(package)
                    }
                    // A KeyPackage used up meanwhile: look again.
                    Err(e) => {
                        debug!(error = %e, "adding the new device to the sync group");
                        None
                    }
                }
            })
            .await;
        if added.is_none() {
            warn!("the new device published no KeyPackages; it is not in our sync group");
        }
        added
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
