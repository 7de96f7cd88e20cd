//! Contacts and their devices (`contacts`, `contact_devices`).

use rusqlite::{Connection, OptionalExtension, params};

use super::blob;
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Atomic, Reader, Tx};

/// Longest contact name.
pub const MAX_CONTACT_NAME_CHARS: usize = 64;

/// Most devices remembered per contact.
pub const MAX_DEVICES_PER_CONTACT: usize = 16;

/// A device of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactDevice {
    /// Its Ed25519 public key.
    pub device_pk: [u8; 32],
    /// Its libp2p PeerId (derived from `device_pk`), as text.
    pub peer_id: String,
    /// Where it was last reachable (multiaddrs).
    pub addrs: Vec<String>,
    /// Its certificate from the contact's root key, when known.
    pub certificate: Option<Vec<u8>>,
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's UID.
    pub uid: [u8; 32],
    /// Their root public key (UID = hash of it).
    pub root_pk: [u8; 32],
    /// The local name for them (unique).
    pub name: String,
    /// Whether the safety number was compared.
    pub verified: bool,
    /// When added (unix ms).
    pub added_at: i64,
    /// Their devices.
    pub devices: Vec<ContactDevice>,
}

/// What [`add_contact`](crate::Tx::add_contact) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddContact {
    /// A new contact.
    Added,
    /// A known contact (same UID): devices and addresses were merged.
    Updated,
    /// A known contact gained device keys not stored before: merged, and its `key_changed`
    /// flag is set (see [`Reader::contact_key_changed`]).
    KeyChanged,
}

impl Reader<'_> {
    /// All contacts, by name.
    pub fn list_contacts(&self) -> Result<Vec<Contact>, StoreError> {
        const CTX: &str = "listing contacts";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uid, root_pk, name, verified, added_at FROM contacts ORDER BY name",
            )
            .context(CTX)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Contact {
                    uid: blob(r.get(0)?)?,
                    root_pk: blob(r.get(1)?)?,
                    name: r.get(2)?,
                    verified: r.get::<_, i64>(3)? != 0,
                    added_at: r.get(4)?,
                    devices: Vec::new(),
                })
            })
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        let mut out = Vec::with_capacity(rows.len());
        for mut c in rows {
            c.devices = self.contact_devices(&c.uid)?;
            out.push(c);
        }
        Ok(out)
    }

    /// A contact by its local name.
    pub fn contact_by_name(&self, name: &str) -> Result<Option<Contact>, StoreError> {
        Ok(self.list_contacts()?.into_iter().find(|c| c.name == name))
    }

    /// A contact by UID.
    pub fn contact_by_uid(&self, uid: &[u8; 32]) -> Result<Option<Contact>, StoreError> {
        const CTX: &str = "reading a contact";
        let contact = self
            .conn
            .prepare_cached(
                "SELECT uid, root_pk, name, verified, added_at FROM contacts WHERE uid = ?1",
            )
            .context(CTX)?
            .query_row([&uid[..]], |r| {
                Ok(Contact {
                    uid: blob(r.get(0)?)?,
                    root_pk: blob(r.get(1)?)?,
                    name: r.get(2)?,
                    verified: r.get::<_, i64>(3)? != 0,
                    added_at: r.get(4)?,
                    devices: Vec::new(),
                })
            })
            .optional()
            .context(CTX)?;
        let Some(mut contact) = contact else {
            return Ok(None);
        };
        contact.devices = self.contact_devices(&contact.uid)?;
        Ok(Some(contact))
    }

    /// Whether a known contact gained device keys since the user last verified it (see
    /// [`AddContact::KeyChanged`]); `false` for an unknown UID.
    pub fn contact_key_changed(&self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT key_changed FROM contacts WHERE uid = ?1")
            .context("reading a key change")?
            .query_row([&uid[..]], |r| r.get::<_, i64>(0))
            .optional()
            .context("reading a key change")?
            .is_some_and(|v| v != 0))
    }

    /// The contact with UID `uid` if `device_pk` is one of its listed devices: how an envelope's
    /// (`sender_id`, `sender_device`) is resolved. `None` when the UID is not a contact or the
    /// device is not listed for it.
    pub fn contact_by_uid_device(
        &self,
        uid: &[u8; 32],
        device_pk: &[u8; 32],
    ) -> Result<Option<Contact>, StoreError> {
        let listed = self
            .conn
            .prepare_cached("SELECT 1 FROM contact_devices WHERE uid = ?1 AND device_pk = ?2")
            .context("finding a device")?
            .query_row(params![&uid[..], &device_pk[..]], |_| Ok(()))
            .optional()
            .context("finding a device")?
            .is_some();
        if !listed {
            return Ok(None);
        }
        self.contact_by_uid(uid)
    }

    /// The contact one of whose devices is `device_pk` (at most one: a device key belongs to
    /// one contact). To resolve an envelope's sender use [`contact_by_uid_device`](crate::Reader::contact_by_uid_device),
    /// which also checks the UID the sender claims.
    pub fn contact_by_device(&self, device_pk: &[u8; 32]) -> Result<Option<Contact>, StoreError> {
        let uid: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT uid FROM contact_devices WHERE device_pk = ?1",
                [&device_pk[..]],
                |r| r.get(0),
            )
            .optional()
            .context("finding a device")?;
        match uid {
            Some(uid) => self.contact_by_uid(&blob(uid).context("finding a device")?),
            None => Ok(None),
        }
    }

    fn contact_devices(&self, uid: &[u8; 32]) -> Result<Vec<ContactDevice>, StoreError> {
        const CTX: &str = "reading contact devices";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT device_pk, peer_id, addrs, certificate FROM contact_devices
                 WHERE uid = ?1 ORDER BY device_pk",
            )
            .context(CTX)?;
        stmt.query_map([&uid[..]], |r| {
            Ok(ContactDevice {
                device_pk: blob(r.get(0)?)?,
                peer_id: r.get(1)?,
                addrs: split_addrs(&r.get::<_, String>(2)?),
                certificate: r.get(3)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }
}

impl Tx<'_> {
    /// Adds a contact or, if the UID is known, merges its devices. A different UID under a
    /// name already in use is refused ([`StoreError::NameTaken`]), and so is a device key that
    /// is already listed for another contact ([`StoreError::DeviceKeyTaken`]): one device key
    /// belongs to at most one contact. Nothing is changed when it is refused.
    pub fn add_contact(&mut self, contact: &Contact, now: i64) -> Result<AddContact, StoreError> {
        const CTX: &str = "adding a contact";
        if contact.name.trim().is_empty() || contact.name.chars().count() > MAX_CONTACT_NAME_CHARS {
            return Err(StoreError::InvalidInput(format!(
                "a contact name has 1 to {MAX_CONTACT_NAME_CHARS} characters"
            )));
        }
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let by_name: Option<Vec<u8>> = tx
            .query_row(
                "SELECT uid FROM contacts WHERE name = ?1",
                [&contact.name],
                |r| r.get(0),
            )
            .optional()
            .context(CTX)?;
        if let Some(uid) = &by_name
            && uid.as_slice() != contact.uid
        {
            return Err(StoreError::NameTaken(contact.name.clone()));
        }
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM contacts WHERE uid = ?1",
                [&contact.uid[..]],
                |_| Ok(()),
            )
            .optional()
            .context(CTX)?
            .is_some();
        let outcome = if exists {
            tx.execute(
                "UPDATE contacts SET updated_at = ?2 WHERE uid = ?1",
                params![&contact.uid[..], now],
            )
            .context(CTX)?;
            AddContact::Updated
        } else {
            tx.execute(
                "INSERT INTO contacts (uid, root_pk, name, verified, added_at, updated_at)
                 VALUES (?1, ?2, ?3, 0, ?4, ?4)",
                params![&contact.uid[..], &contact.root_pk[..], contact.name, now],
            )
            .context(CTX)?;
            AddContact::Added
        };
        let added = upsert_devices(&tx, &contact.uid, &contact.devices)?;
        let outcome = if outcome == AddContact::Updated && added > 0 {
            mark_key_changed(&tx, &contact.uid)?;
            AddContact::KeyChanged
        } else {
            outcome
        };
        tx.commit().context(CTX)?;
        Ok(outcome)
    }

    /// Replaces what is known of a contact's devices' addresses and certificates (merging).
    /// A device key listed for another contact is refused ([`StoreError::DeviceKeyTaken`]).
    /// A device key not stored before sets the contact's `key_changed` flag.
    pub fn update_contact_devices(
        &mut self,
        uid: &[u8; 32],
        devices: &[ContactDevice],
    ) -> Result<(), StoreError> {
        let tx = Atomic::begin(self.conn).context("updating devices")?;
        if upsert_devices(&tx, uid, devices)? > 0 {
            mark_key_changed(&tx, uid)?;
        }
        tx.commit().context("updating devices")
    }

    /// Forgets the contact's devices that `listed` (the devices its newest device list names)
    /// does not name: revoked ones, or an identity recovered on a new device (issue 15). How
    /// many were dropped.
    pub fn drop_unlisted_contact_devices(
        &mut self,
        uid: &[u8; 32],
        listed: &[[u8; 32]],
    ) -> Result<usize, StoreError> {
        const CTX: &str = "dropping unlisted contact devices";
        let tx = Atomic::begin(self.conn).context(CTX)?;
        let stored: Vec<Vec<u8>> = tx
            .prepare("SELECT device_pk FROM contact_devices WHERE uid = ?1")
            .context(CTX)?
            .query_map([&uid[..]], |r| r.get(0))
            .context(CTX)?
            .collect::<Result<_, _>>()
            .context(CTX)?;
        let mut dropped = 0;
        for device in stored
            .iter()
            .filter(|d| !listed.iter().any(|l| l[..] == d[..]))
        {
            dropped += tx
                .execute(
                    "DELETE FROM contact_devices WHERE uid = ?1 AND device_pk = ?2",
                    params![&uid[..], device],
                )
                .context(CTX)?;
        }
        tx.commit().context(CTX)?;
        Ok(dropped)
    }

    /// Marks a contact verified (safety number compared) or not. Verifying clears the
    /// contact's `key_changed` flag.
    pub fn set_contact_verified(
        &mut self,
        uid: &[u8; 32],
        verified: bool,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE contacts SET verified = ?2,
                   key_changed = CASE WHEN ?2 THEN 0 ELSE key_changed END
                 WHERE uid = ?1",
                params![&uid[..], verified as i64],
            )
            .context("verifying a contact")?
            > 0)
    }
}

fn join_addrs(addrs: &[String]) -> String {
    addrs.join("\n")
}

fn split_addrs(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Sets a contact's `key_changed` flag.
fn mark_key_changed(tx: &Connection, uid: &[u8; 32]) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE contacts SET key_changed = 1 WHERE uid = ?1",
        [&uid[..]],
    )
    .context("marking a key change")?;
    Ok(())
}

/// Merges `devices` into the contact's; returns how many device keys were not stored before.
fn upsert_devices(
    tx: &Connection,
    uid: &[u8; 32],
    devices: &[ContactDevice],
) -> Result<usize, StoreError> {
    const CTX: &str = "updating contact devices";
    let mut added = 0;
    for d in devices.iter().take(MAX_DEVICES_PER_CONTACT) {
        // Checked here for a clear error; the UNIQUE index on device_pk is the backstop.
        let owner: Option<String> = tx
            .query_row(
                "SELECT c.name FROM contact_devices d JOIN contacts c ON c.uid = d.uid
                 WHERE d.device_pk = ?1 AND d.uid <> ?2",
                params![&d.device_pk[..], &uid[..]],
                |r| r.get(0),
            )
            .optional()
            .context(CTX)?;
        if let Some(contact) = owner {
            return Err(StoreError::DeviceKeyTaken {
                device: d.device_pk.iter().map(|b| format!("{b:02x}")).collect(),
                contact,
            });
        }
        let known = tx
            .query_row(
                "SELECT 1 FROM contact_devices WHERE uid = ?1 AND device_pk = ?2",
                params![&uid[..], &d.device_pk[..]],
                |_| Ok(()),
            )
            .optional()
            .context(CTX)?
            .is_some();
        added += usize::from(!known);
        tx.execute(
            "INSERT INTO contact_devices (uid, device_pk, peer_id, addrs, certificate)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (uid, device_pk) DO UPDATE SET
               peer_id = excluded.peer_id,
               addrs = CASE WHEN excluded.addrs = '' THEN addrs ELSE excluded.addrs END,
               certificate = coalesce(excluded.certificate, certificate)",
            params![
                &uid[..],
                &d.device_pk[..],
                d.peer_id,
                join_addrs(&d.addrs),
                d.certificate
            ],
        )
        .context(CTX)?;
    }
    Ok(added)
}
