//! Contacts: finding one by local name or UID, and which of a contact's devices may be
//! trusted (a proof of possession: the device itself signed for its certificate, in a ticket
//! or in its KeyPackage bundle). Every device of a contact is a list entry: several devices
//! per member.

use rhizo_core::{
    DevicePublicKey, Uid,
    records::{DeviceList, KeyPackageBundle},
    ticket::ContactTicket,
};
use rhizo_store::{
    Reader, StoreError,
    messaging::{Contact, ContactDevice},
};

/// None of a contact's devices proves that it belongs to them, so none can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("none of the contact's devices proves that it belongs to them")]
pub struct UnprovenDevices;

/// The contact with this local name, or else this UID; `None` if there is none. On a reader
/// (or, through `Deref`, inside a write transaction).
///
/// # Errors
///
/// If the database fails.
pub fn find_contact_in(
    reader: &Reader<'_>,
    name_or_uid: &str,
) -> Result<Option<Contact>, StoreError> {
    if let Some(c) = reader.contact_by_name(name_or_uid)? {
        return Ok(Some(c));
    }
    if let Ok(uid) = name_or_uid.parse::<Uid>() {
        return reader.contact_by_uid(uid.as_bytes());
    }
    Ok(None)
}

/// The libp2p PeerId of a device key.
pub fn peer_id_of_device(device: &DevicePublicKey) -> Option<libp2p_identity::PeerId> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(device.as_bytes()).ok()?;
    Some(libp2p_identity::PublicKey::from(pk).to_peer_id())
}

/// The devices of a ticket that may be trusted: those with a [`DeviceProof`] (the ticket's
/// parser already checked it: certificate from the ticket's root, signed by the device).
/// Devices without one are left out; with none left, [`UnprovenDevices`].
///
/// [`DeviceProof`]: rhizo_core::ticket::DeviceProof
pub fn proven_ticket_devices(
    ticket: &ContactTicket,
) -> Result<Vec<ContactDevice>, UnprovenDevices> {
    let devices: Vec<ContactDevice> = ticket
        .devices()
        .iter()
        .filter_map(|d| {
            let certificate = d.proven_certificate()?;
            Some(ContactDevice {
                device_pk: *d.device_pk.as_bytes(),
                peer_id: peer_id_of_device(&d.device_pk)?.to_string(),
                addrs: d.addrs.clone(),
                certificate: Some(certificate.encode()),
            })
        })
        .collect();
    if devices.is_empty() {
        return Err(UnprovenDevices);
    }
    Ok(devices)
}

/// The devices of a (validated) device list that may be trusted: certified by the list's root
/// (the list is) and proven by a (validated) KeyPackage bundle that the device itself signed
/// over the same root's certificate for it. With none left, [`UnprovenDevices`].
pub fn proven_list_devices(
    list: &DeviceList,
    bundles: &[KeyPackageBundle],
) -> Result<Vec<ContactDevice>, UnprovenDevices> {
    let devices: Vec<ContactDevice> = list
        .devices()
        .iter()
        .filter(|cert| {
            cert.root() == list.root_pk()
                && bundles.iter().any(|b| {
                    b.device_cert().device() == cert.device()
                        && b.device_cert().root() == list.root_pk()
                })
        })
        .filter_map(|cert| {
            Some(ContactDevice {
                device_pk: *cert.device().as_bytes(),
                peer_id: peer_id_of_device(&cert.device())?.to_string(),
                addrs: Vec::new(),
                certificate: Some(cert.encode()),
            })
        })
        .collect();
    if devices.is_empty() {
        return Err(UnprovenDevices);
    }
    Ok(devices)
}
