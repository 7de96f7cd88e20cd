//! This identity's devices, as the device with the root key keeps them (a linked device adopts
//! them from the newest device list it finds): which linked devices
//! the device list names besides this one (meta key `linked_devices`), adding one when it is
//! linked and dropping one when it is revoked. Every change signs a new device-list version.
//!
//! ```text
//!  link_own_device(tx, certificate, name, now) ─▶ linked_devices += 1 ─▶ new DeviceList (bytes)
//!  revoke_own_device(tx, device_pk, now)       ─▶ linked_devices -= 1 ─▶ new DeviceList (bytes)
//!  publish::new_device_list ─▶ listed_certificates: this device first, then the linked ones
//!  listed_devices_of(uid) ─▶ our list / a contact's stored devices ─▶ a group conversation's
//!     role rule (a member adding a device of its own UID, `add_own_device_to_group`)
//! ```

use rhizo_core::records::{MAX_DEVICES, RecordError};
use rhizo_core::{DeviceCertificate, DevicePublicKey};
use rhizo_store::{Reader, Tx};

use crate::{Engine, EngineError, Me, publish};

/// Meta key: the linked devices, one per line: hex(certificate) ` ` hex(name) ` ` added_at.
const META_LINKED_DEVICES: &str = "linked_devices";
/// Longest device name kept (characters).
pub const MAX_DEVICE_NAME_CHARS: usize = 64;

/// A device of this identity, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnDevice {
    /// Its certificate from our root.
    pub certificate: DeviceCertificate,
    /// The name given when it was linked (this device: none).
    pub name: Option<String>,
    /// When it was linked (this device: its certificate's time), Unix seconds.
    pub added_at: u64,
    /// Whether it is the device running this engine.
    pub this_device: bool,
}

/// The linked devices stored (damaged lines are skipped).
fn linked(reader: &Reader<'_>) -> Result<Vec<OwnDevice>, EngineError> {
    let text = reader.get_meta(META_LINKED_DEVICES)?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let cert = hex::decode(fields.next()?).ok()?;
            let name = String::from_utf8(hex::decode(fields.next()?).ok()?).ok()?;
            let added_at = fields.next()?.parse().ok()?;
            Some(OwnDevice {
                certificate: DeviceCertificate::decode(&cert).ok()?,
                name: (!name.is_empty()).then_some(name),
                added_at,
                this_device: false,
            })
        })
        .collect())
}

fn store_linked(tx: &mut Tx<'_>, devices: &[OwnDevice]) -> Result<(), EngineError> {
    let lines: Vec<String> = devices
        .iter()
        .map(|d| {
            let name = d.name.as_deref().unwrap_or_default();
            format!(
                "{} {} {}",
                hex::encode(d.certificate.to_bytes()),
                hex::encode(name.as_bytes()),
                d.added_at
            )
        })
        .collect();
    tx.set_meta(META_LINKED_DEVICES, &lines.join("\n"))?;
    Ok(())
}

/// On a linked device: remembers the other devices `list` (our newest device list) names as
/// our linked devices, keeping the names already known.
pub(crate) fn adopt_listed(
    tx: &mut Tx<'_>,
    me: &Me,
    list: &[DeviceCertificate],
) -> Result<(), EngineError> {
    let known = linked(tx)?;
    let devices: Vec<OwnDevice> = list
        .iter()
        .filter(|c| c.root() == me.root_public && c.device() != me.device.public())
        .take(MAX_DEVICES - 1)
        .map(|c| OwnDevice {
            certificate: *c,
            name: known
                .iter()
                .find(|k| k.certificate.device() == c.device())
                .and_then(|k| k.name.clone()),
            added_at: c.created_at(),
            this_device: false,
        })
        .collect();
    store_linked(tx, &devices)
}

/// The certificates a new device list names: this device, then the linked ones from our root.
pub(crate) fn listed_certificates(
    reader: &Reader<'_>,
    me: &Me,
) -> Result<Vec<DeviceCertificate>, EngineError> {
    let mine = me.root_public;
    let mut certificates = vec![me.certificate];
    certificates.extend(
        linked(reader)?
            .into_iter()
            .map(|d| d.certificate)
            .filter(|c| c.root() == mine && c.device() != me.device.public())
            .take(MAX_DEVICES - 1),
    );
    Ok(certificates)
}

/// The devices `uid`'s newest device list names, as far as this device knows: ours from our
/// own list (this device and the linked ones), a contact's from its stored devices (proven
/// listed devices, [`crate::contacts::proven_list_devices`]); none for anyone else. Given to a
/// group conversation for the role rule's own-device exception.
///
/// # Errors
///
/// If the database fails.
pub(crate) fn listed_devices_of(
    reader: &Reader<'_>,
    me: &Me,
    uid: &[u8; 32],
) -> Result<Vec<DevicePublicKey>, EngineError> {
    if uid == me.uid.as_bytes() {
        let listed = listed_certificates(reader, me)?;
        return Ok(listed.iter().map(DeviceCertificate::device).collect());
    }
    let Some(contact) = reader.contact_by_uid(uid)? else {
        return Ok(Vec::new());
    };
    Ok(contact
        .devices
        .iter()
        .filter_map(|d| DevicePublicKey::from_bytes(&d.device_pk).ok())
        .collect())
}

/// Whether processing refused a commit only because its committer's own new device is not in
/// the device list the conversation was given.
pub(crate) fn is_device_not_listed(processed: &[rhizo_e2e::Processed]) -> bool {
    matches!(
        processed,
        [rhizo_e2e::Processed::CommitRejected {
            reason: rhizo_e2e::CommitRejectReason::DeviceNotListed
        }]
    )
}

impl Engine {
    /// This identity's devices: this one first, then the linked ones.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn own_devices(&self, reader: &Reader<'_>) -> Result<Vec<OwnDevice>, EngineError> {
        let mut devices = vec![OwnDevice {
            certificate: self.me.certificate,
            name: None,
            added_at: self.me.certificate.created_at(),
            this_device: true,
        }];
        devices.extend(linked(reader)?);
        Ok(devices)
    }

    /// Issues a certificate for `device` (a new device being linked).
    ///
    /// # Errors
    ///
    /// [`EngineError::NoRootKey`] on a linked device.
    pub fn certify_device(
        &self,
        device: &DevicePublicKey,
        now: i64,
    ) -> Result<DeviceCertificate, EngineError> {
        Ok(self
            .me
            .root_signer()?
            .certify_device(device, crate::secs(now)))
    }

    /// Lists a linked device and signs a new device-list version (returned, to publish).
    /// Listing one that is listed already only signs a new version.
    ///
    /// # Errors
    ///
    /// [`RecordError::TooManyDevices`] (inside [`EngineError::Record`]) past
    /// [`MAX_DEVICES`]; [`EngineError::Internal`] for a certificate from another root; or if
    /// the database fails.
    pub fn link_own_device(
        &self,
        tx: &mut Tx<'_>,
        certificate: DeviceCertificate,
        name: Option<String>,
        now: i64,
    ) -> Result<Vec<u8>, EngineError> {
        if certificate.root() != self.me.root_public {
            return Err(EngineError::Internal("a certificate from another root"));
        }
        let mut devices = linked(tx)?;
        let known = devices
            .iter()
            .any(|d| d.certificate.device() == certificate.device());
        if !known && certificate.device() != self.me.device.public() {
            if devices.len() + 1 >= MAX_DEVICES {
                return Err(RecordError::TooManyDevices {
                    max: MAX_DEVICES,
                    actual: devices.len() + 2,
                }
                .into());
            }
            let name = name.map(|n| n.chars().take(MAX_DEVICE_NAME_CHARS).collect());
            devices.push(OwnDevice {
                certificate,
                name,
                added_at: crate::secs(now),
                this_device: false,
            });
            store_linked(tx, &devices)?;
        }
        publish::new_device_list(tx, &self.me, now)
    }

    /// Drops a linked device, removes it from every group and 1:1 conversation it is in (a
    /// remove commit each) and signs a new device-list version without it (returned, to
    /// publish); `None` if no linked device has that key.
    ///
    /// # Errors
    ///
    /// If the database fails, MLS.
    pub fn revoke_own_device(
        &self,
        tx: &mut Tx<'_>,
        device: &DevicePublicKey,
        now: i64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let mut devices = linked(tx)?;
        let before = devices.len();
        devices.retain(|d| d.certificate.device() != *device);
        if devices.len() == before {
            return Ok(None);
        }
        store_linked(tx, &devices)?;
        // Out of every group and 1:1 conversation it is in (remove commits).
        self.remove_own_device_from_groups(tx, device, now)?;
        self.remove_own_device_from_conversations(tx, device, now)?;
        publish::new_device_list(tx, &self.me, now).map(Some)
    }
}

pub(crate) mod direct;
pub mod lists;
pub mod pending;

#[cfg(test)]
mod forged_tests;
#[cfg(test)]
mod join_tests;
#[cfg(test)]
mod pending_tests;
#[cfg(test)]
mod tests;
