//! Contacts and our profile, kept the same on our devices through the sync group: a contact
//! added or verified on one device, and our profile set on the device with the root key, go to
//! the others as sync messages; applying one again changes nothing.

use rhizo_core::{
    RootPublicKey, Uid,
    proto::{ContactSync, ProfileSync, SyncMessage, SyncedDevice},
    records::{MAX_DEVICES, ValidRecord, profile_key, validate_record},
};
use rhizo_store::{
    StoreError, Tx,
    messaging::{AddContact, Contact, ContactDevice},
};
use tracing::debug;

use crate::{Engine, EngineError, Me, inbound::Reject, profiles::profile_row};

/// Most addresses kept per synced contact device.
pub const MAX_SYNCED_ADDRS: usize = 8;
/// Longest address kept (bytes).
pub const MAX_SYNCED_ADDR_BYTES: usize = 256;

impl Engine {
    /// Tells our other devices (the sync group) about `contact`, just added or verified here;
    /// nothing without a sync group.
    ///
    /// # Errors
    ///
    /// MLS or the database.
    pub fn sync_contact(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        now: i64,
    ) -> Result<(), EngineError> {
        let sync = SyncMessage {
            contact: Some(contact_sync(contact)),
            ..SyncMessage::default()
        };
        super::queue_if_synced(tx, self, sync, now)
    }
}

/// `contact` as a sync message names it.
pub(crate) fn contact_sync(contact: &Contact) -> ContactSync {
    ContactSync {
        uid: contact.uid.to_vec().into(),
        root_pk: contact.root_pk.to_vec().into(),
        name: contact.name.clone(),
        verified: contact.verified,
        devices: contact
            .devices
            .iter()
            .take(MAX_DEVICES)
            .map(|d| SyncedDevice {
                device_pk: d.device_pk.to_vec().into(),
                peer_id: d.peer_id.clone(),
                addrs: d.addrs.iter().take(MAX_SYNCED_ADDRS).cloned().collect(),
                certificate: d.certificate.clone().unwrap_or_default().into(),
            })
            .collect(),
    }
}

/// Our signed profile `record` to our other devices (called where it is signed).
pub(crate) fn queue_profile(
    tx: &mut Tx<'_>,
    engine: &Engine,
    record: &[u8],
    public: bool,
    now: i64,
) -> Result<(), EngineError> {
    let sync = SyncMessage {
        profile: Some(ProfileSync {
            record: record.to_vec().into(),
            public,
        }),
        ..SyncMessage::default()
    };
    super::queue_if_synced(tx, engine, sync, now)
}

/// Adds a contact another of our devices added (a UID we know keeps its name; a name another
/// contact has is skipped), and marks it verified when it is there. Returns the contact's name
/// when a known contact gained a device key we did not have (a key change, as when this device
/// learns it itself; its `key_changed` flag is set).
pub(crate) fn apply_contact(
    tx: &mut Tx<'_>,
    sync: ContactSync,
    now: i64,
) -> Result<Option<String>, Reject> {
    let (Ok(uid), Ok(root_pk)) = (
        <[u8; 32]>::try_from(sync.uid.as_ref()),
        <[u8; 32]>::try_from(sync.root_pk.as_ref()),
    ) else {
        debug!("a synced contact with a bad UID or key ignored");
        return Ok(None);
    };
    let root = RootPublicKey::from_bytes(&root_pk).ok();
    if root.map(|r| r.uid()) != Some(Uid::from_bytes(&uid)) {
        debug!("a synced contact whose UID is not its key's ignored");
        return Ok(None);
    }
    let devices: Vec<ContactDevice> = sync
        .devices
        .iter()
        .take(MAX_DEVICES)
        .filter_map(|d| {
            Some(ContactDevice {
                device_pk: d.device_pk.as_ref().try_into().ok()?,
                peer_id: d.peer_id.chars().take(128).collect(),
                addrs: d
                    .addrs
                    .iter()
                    .filter(|a| a.len() <= MAX_SYNCED_ADDR_BYTES)
                    .take(MAX_SYNCED_ADDRS)
                    .cloned()
                    .collect(),
                certificate: (!d.certificate.is_empty()).then(|| d.certificate.to_vec()),
            })
        })
        .collect();
    let contact = Contact {
        uid,
        root_pk,
        name: sync.name,
        verified: false,
        added_at: now,
        devices,
    };
    let outcome = match tx.add_contact(&contact, now) {
        Ok(outcome) => outcome,
        Err(StoreError::NameTaken(_) | StoreError::InvalidInput(_)) => {
            debug!("a synced contact's name is taken or bad here; skipped");
            return Ok(None);
        }
        Err(StoreError::DeviceKeyTaken { .. }) => {
            debug!("a synced contact's device is another contact's here; skipped");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if sync.verified {
        tx.set_contact_verified(&uid, true)?;
    }
    if outcome != AddContact::KeyChanged || !tx.contact_key_changed(&uid)? {
        return Ok(None);
    }
    // A known contact keeps its own name here.
    Ok(tx.contact_by_uid(&uid)?.map(|c| c.name))
}

/// Keeps our profile another of our devices sent, when it is signed by our root and newer
/// than ours (the store keeps the newest version).
pub(crate) fn apply_profile(
    tx: &mut Tx<'_>,
    me: &Me,
    sync: ProfileSync,
    now: i64,
) -> Result<(), Reject> {
    let at = u64::try_from(now / 1000).unwrap_or(0);
    match validate_record(&profile_key(&me.uid), &sync.record, at) {
        Ok(ValidRecord::Profile(p)) if p.root_pk() == me.root_public => {
            let row = profile_row(&me.uid, &p, &sync.record, sync.public, now);
            tx.upsert_profile(&row)?;
        }
        Ok(_) => debug!("a synced profile that is not ours ignored"),
        Err(e) => debug!(error = %e, "a synced profile does not verify; ignored"),
    }
    Ok(())
}
