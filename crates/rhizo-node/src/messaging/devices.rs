//! This identity's devices on the device with the root key: link one (`/rhizo/link/1`, then a
//! new device-list version in the DHT), list them, revoke one. See [`crate::devices`].

use std::collections::HashMap;

use rhizo_core::{
    DevicePublicKey,
    link::LinkTicket,
    records::{RecordError, device_list_key},
};
use rhizo_engine::{EngineError, contacts::peer_id_of_device, devices::OwnDevice};
use tracing::{info, warn};

use super::{JobError, Messaging};
use crate::devices::{DeviceError, DeviceView, device_fingerprint, requester};

fn job_error(e: JobError) -> DeviceError {
    match e {
        JobError::Engine(EngineError::Record(RecordError::TooManyDevices { .. })) => {
            DeviceError::TooManyDevices
        }
        other => DeviceError::Job(other),
    }
}

impl Messaging {
    /// Links the device of `ticket_text`: checks the ticket, proves the secret both ways,
    /// certifies the device, signs a new device-list version, hands the device its certificate,
    /// and publishes the list. If the device does not take the certificate, the list is signed
    /// again without it. Then, in the background, the device joins our sync group and gets the
    /// last `history_days` days of history ([`super::sync`]).
    ///
    /// # Errors
    ///
    /// See [`DeviceError`].
    pub async fn add_device(
        &self,
        ticket_text: &str,
        name: Option<String>,
        history_days: Option<u32>,
    ) -> Result<DeviceView, DeviceError> {
        if !self.inner.engine.me().holds_root() {
            return Err(DeviceError::NoRootKey);
        }
        let ticket: LinkTicket = ticket_text.parse()?;
        let now = self.now();
        ticket.check_fresh(u64::try_from(now / 1000).unwrap_or(0))?;
        let me = self.inner.engine.me().device.public();
        let device = ticket.device_pk();
        if device == me {
            return Err(DeviceError::Ourselves);
        }
        let client = &self.inner.client;
        requester::hello(client, &me, &ticket).await?;
        let certificate = self
            .inner
            .engine
            .certify_device(&device, now)
            .map_err(|_| DeviceError::NoRootKey)?;
        let list = self
            .with_engine(move |tx, engine| engine.link_own_device(tx, certificate, name, now))
            .await
            .map_err(job_error)?;
        if let Err(e) = requester::send_certificate(client, &me, &ticket, certificate).await {
            warn!(error = %e, "the new device did not take its certificate; unlisting it");
            self.with_engine(move |tx, engine| engine.revoke_own_device(tx, &device, now))
                .await
                .map_err(job_error)?;
            return Err(e);
        }
        info!("linked a new device");
        self.publish_device_list(list).await;
        // Into every group we are in, once it published its KeyPackages (`device_join`).
        self.spawn_join_new_device(device);
        self.spawn_sync_group_add(device, history_days);
        let view = self
            .devices()
            .await?
            .into_iter()
            .find(|d| d.fingerprint == device_fingerprint(&device));
        view.ok_or(DeviceError::UnknownDevice("just linked".into()))
    }

    /// Puts a new device list in the DHT; a failure is logged (the publisher puts the current
    /// list again within the hour).
    async fn publish_device_list(&self, list: Vec<u8>) {
        let key = device_list_key(&self.inner.engine.me().uid).to_vec();
        if let Err(e) = self.inner.client.put_record(key, list).await {
            warn!(error = %e, "new device list not published yet; the publisher retries");
        }
    }

    /// This identity's devices, this one first, with when this node last saw each.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub async fn devices(&self) -> Result<Vec<DeviceView>, DeviceError> {
        let (devices, peers) = self
            .with_reader(|reader, engine| {
                let devices = engine.own_devices(reader).map_err(JobError::from)?;
                let peers = reader
                    .list_peers()
                    .map_err(|e| JobError::Engine(EngineError::Store(e)))?;
                Ok::<_, JobError>((devices, peers))
            })
            .await
            .map_err(job_error)?;
        let seen: HashMap<String, i64> = peers
            .into_iter()
            .map(|p| (p.peer_id, p.last_seen))
            .collect();
        Ok(devices.iter().map(|d| view(d, &seen)).collect())
    }

    /// Revokes the linked device `id` (its PeerId, or a prefix of its fingerprint or name):
    /// removes it from every group it is in and signs and publishes a device-list version
    /// without it.
    ///
    /// # Errors
    ///
    /// [`DeviceError::UnknownDevice`], [`DeviceError::ThisDevice`], or if the database fails.
    pub async fn revoke_device(&self, id: &str) -> Result<DeviceView, DeviceError> {
        if !self.inner.engine.me().holds_root() {
            return Err(DeviceError::NoRootKey);
        }
        let devices = self.devices().await?;
        let wanted = id.trim();
        let matches: Vec<&DeviceView> = devices
            .iter()
            .filter(|d| {
                d.id == wanted
                    || d.name.as_deref() == Some(wanted)
                    || (wanted.len() >= 4
                        && d.fingerprint
                            .replace(' ', "")
                            .starts_with(&wanted.replace(' ', "")))
            })
            .collect();
        let [found] = matches.as_slice() else {
            return Err(DeviceError::UnknownDevice(wanted.to_owned()));
        };
        if found.this_device {
            return Err(DeviceError::ThisDevice);
        }
        let found = (*found).clone();
        let key = self
            .with_reader(|reader, engine| engine.own_devices(reader).map_err(JobError::from))
            .await
            .map_err(job_error)?
            .into_iter()
            .map(|d| d.certificate.device())
            .find(|d| peer_id_of_device(d).is_some_and(|p| p.to_string() == found.id));
        let Some(device) = key else {
            return Err(DeviceError::UnknownDevice(wanted.to_owned()));
        };
        let now = self.now();
        let list = self
            .with_engine(move |tx, engine| engine.revoke_own_device(tx, &device, now))
            .await
            .map_err(job_error)?
            .ok_or_else(|| DeviceError::UnknownDevice(wanted.to_owned()))?;
        info!("revoked a device");
        // The remove commits the engine queued for the device's groups.
        self.inner.outbox_wake.notify_one();
        self.publish_device_list(list).await;
        // A fetch carries the new list: every replica of our mailbox notes its version at once
        // and refuses the revoked device's fetches from then on, even with an older list.
        self.inner.mailbox_wake.notify_one();
        Ok(found)
    }
}

fn view(device: &OwnDevice, seen: &HashMap<String, i64>) -> DeviceView {
    let key: DevicePublicKey = device.certificate.device();
    let id = peer_id_of_device(&key)
        .map(|p| p.to_string())
        .unwrap_or_default();
    DeviceView {
        last_seen: seen.get(&id).copied().filter(|t| *t > 0),
        id,
        name: device.name.clone(),
        fingerprint: device_fingerprint(&key),
        added_at: device.added_at,
        this_device: device.this_device,
    }
}
