//! Contacts: our ticket, adding a contact by ticket or by UID (their identity record and
//! device list from the DHT, checked against the UID), and which of their devices may be
//! trusted (a proof of possession: the device signed its certificate).

use libp2p::{Multiaddr, PeerId};
use rhizo_core::{
    Uid,
    records::{
        DeviceList, IdentityRecord, ValidRecord, device_list_key, identity_key, key_packages_key,
        validate_record,
    },
    ticket::{ContactTicket, TicketDevice},
};
use rhizo_engine::contacts::{find_contact_in, proven_list_devices, proven_ticket_devices};
use rhizo_store::messaging::{AddContact, Contact};

use super::{ContactError, ContactView, Messaging, views::view_of};
use crate::events::ApiEvent;

impl Messaging {
    /// Our contact ticket, with the addresses the node listens on.
    pub async fn invite(&self) -> Result<ContactTicket, ContactError> {
        let info = self
            .inner
            .client
            .info()
            .await
            .map_err(ContactError::Network)?;
        // Advertised addresses win over the bound listeners (`--announce`).
        let source = if info.external_addrs.is_empty() {
            &info.listen_addrs
        } else {
            &info.external_addrs
        };
        let addrs: Vec<String> = source
            .iter()
            .filter(|a| dialable(a))
            .map(ToString::to_string)
            .take(rhizo_core::ticket::MAX_TICKET_ADDRS)
            .collect();
        let me = self.inner.engine.me();
        let device = TicketDevice::with_proof(&me.device, me.certificate, addrs)
            .map_err(ContactError::BadTicket)?;
        ContactTicket::new(
            me.root_signer()?,
            vec![device],
            me.name.clone(),
            u64::try_from(self.inner.clock.now_secs()).unwrap_or(0),
        )
        .map_err(ContactError::BadTicket)
    }

    /// Adds (or updates) a contact from a ticket; `name` overrides the ticket's name.
    pub async fn add_contact(
        &self,
        ticket: &str,
        name: Option<String>,
    ) -> Result<(ContactView, bool), ContactError> {
        let ticket: ContactTicket = ticket.trim().parse().map_err(ContactError::BadTicket)?;
        if ticket.uid() == self.inner.engine.me().uid {
            return Err(ContactError::Ourselves("ticket"));
        }
        let name = name
            .or_else(|| ticket.name().map(String::from))
            .ok_or(ContactError::NoName)?;
        let devices = proven_ticket_devices(&ticket)
            .map_err(|_| ContactError::UnprovenDevices(name.clone()))?;
        // Tell the network layer where the devices are, so it can dial them.
        for d in &devices {
            for addr in &d.addrs {
                if let (Ok(peer), Ok(addr)) =
                    (d.peer_id.parse::<PeerId>(), addr.parse::<Multiaddr>())
                {
                    let _ = self
                        .inner
                        .client
                        .dial(addr.with_p2p(peer).unwrap_or_else(|a| a))
                        .await;
                }
            }
        }
        let contact = Contact {
            uid: *ticket.uid().as_bytes(),
            root_pk: *ticket.root_pk().as_bytes(),
            name,
            verified: false,
            added_at: self.now(),
            devices,
        };
        self.store_contact(contact, ticket.uid()).await
    }

    /// Adds a contact by UID alone: their signed identity record and device list come from the
    /// DHT and are checked against the UID (UID = hash of the root key).
    pub async fn add_contact_by_uid(
        &self,
        uid: &str,
        name: &str,
    ) -> Result<(ContactView, bool), ContactError> {
        let uid: Uid = uid.trim().parse().map_err(ContactError::BadUid)?;
        if uid == self.inner.engine.me().uid {
            return Err(ContactError::Ourselves("UID"));
        }
        let contact = self.contact_from_dht(&uid, name).await?;
        let listed: Vec<[u8; 32]> = contact.devices.iter().map(|d| d.device_pk).collect();
        let stored = self.store_contact(contact, uid).await?;
        // The newest device list decides: devices it no longer names (revoked, or an identity
        // recovered on a new device) are no longer addressed.
        self.with_tx(move |tx, _| {
            Ok::<_, ContactError>(tx.drop_unlisted_contact_devices(uid.as_bytes(), &listed)?)
        })
        .await?;
        Ok(stored)
    }

    /// A UID's identity record and proven devices from the DHT, as a contact not stored (for
    /// adding it, or for inviting a UID that is no contact into a group).
    pub(super) async fn contact_from_dht(
        &self,
        uid: &Uid,
        name: &str,
    ) -> Result<Contact, ContactError> {
        let uid = *uid;
        let (identity, devices) = self.lookup_identity(&uid).await?;
        // Never an older list than one found before: a device it names may be revoked.
        let version = devices.version();
        let newest = self
            .with_tx(move |tx, engine| {
                Ok::<_, ContactError>(engine.note_device_list_version(tx, &uid, version)?)
            })
            .await?;
        if !newest {
            return Err(ContactError::StaleDeviceList(uid.to_string()));
        }
        // Proof of possession: each device's KeyPackage bundle, signed by the device itself.
        let now = u64::try_from(self.inner.clock.now_secs()).unwrap_or(0);
        let mut bundles = Vec::new();
        for cert in devices.devices() {
            let key = key_packages_key(&uid, &cert.device());
            bundles.extend(
                self.inner
                    .client
                    .get_records(key.to_vec())
                    .await
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| match validate_record(&key, v, now) {
                        Ok(ValidRecord::KeyPackages(bundle)) => Some(bundle),
                        _ => None,
                    }),
            );
        }
        let contact = Contact {
            uid: *uid.as_bytes(),
            root_pk: *identity.root_pk().as_bytes(),
            name: name.to_string(),
            verified: false,
            added_at: self.now(),
            devices: proven_list_devices(&devices, &bundles)
                .map_err(|_| ContactError::UnprovenDevices(name.to_string()))?,
        };
        Ok(contact)
    }

    /// Stores a new or updated contact, announces it, and accepts their pending message
    /// request, if any. By UID: re-adding a known contact keeps the name it already has.
    async fn store_contact(
        &self,
        contact: Contact,
        uid: Uid,
    ) -> Result<(ContactView, bool), ContactError> {
        let now = self.now();
        let outcome = self
            .with_tx(move |tx, engine| {
                let outcome = tx.add_contact(&contact, now)?;
                engine.sync_contact(tx, &contact, now)?;
                Ok::<_, ContactError>(outcome)
            })
            .await?;
        let view = self.contact_view(&uid.to_string()).await?;
        self.emit(ApiEvent::ContactAdded {
            name: view.name.clone(),
        });
        if outcome == AddContact::KeyChanged {
            self.emit(ApiEvent::KeyChange {
                contact: view.name.clone(),
            });
        }
        // Adding someone whose message request is pending accepts it.
        self.apply_requests(uid).await?;
        // A newly known contact may unblock queued messages.
        self.inner.outbox_wake.notify_one();
        Ok((view, outcome == AddContact::Added))
    }

    async fn contact_view(&self, name: &str) -> Result<ContactView, ContactError> {
        let name = name.to_string();
        self.with_reader(move |reader, engine| {
            let c = find_contact_in(reader, &name)?.ok_or(ContactError::UnknownContact(name))?;
            let changed = reader.contact_key_changed(&c.uid)?;
            Ok(view_of(&c, engine.me(), changed))
        })
        .await
    }

    /// All contacts.
    pub async fn contacts(&self) -> Result<Vec<ContactView>, ContactError> {
        self.with_reader(|reader, engine| {
            let mut views = Vec::new();
            for c in reader.list_contacts()? {
                let changed = reader.contact_key_changed(&c.uid)?;
                views.push(view_of(&c, engine.me(), changed));
            }
            Ok(views)
        })
        .await
    }

    /// Marks a contact verified after the user compared safety numbers.
    pub async fn verify_contact(&self, name: &str) -> Result<ContactView, ContactError> {
        let name = name.to_string();
        let now = self.now();
        let view = self
            .with_tx(move |tx, engine| {
                let c = find_contact_in(tx, &name)?
                    .ok_or_else(|| ContactError::UnknownContact(name.clone()))?;
                tx.set_contact_verified(&c.uid, true)?;
                let c = find_contact_in(tx, &name)?.ok_or(ContactError::UnknownContact(name))?;
                engine.sync_contact(tx, &c, now)?;
                Ok(view_of(&c, engine.me(), false))
            })
            .await;
        // The sync message to our other devices.
        self.inner.outbox_wake.notify_one();
        view
    }

    /// A UID's signed identity record and newest device list from the DHT, both checked
    /// against the UID (UID = hash of the root key).
    pub(super) async fn lookup_identity(
        &self,
        uid: &Uid,
    ) -> Result<(IdentityRecord, DeviceList), ContactError> {
        let now = u64::try_from(self.inner.clock.now_secs()).unwrap_or(0);
        let key = identity_key(uid);
        let identity = self
            .inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default()
            .iter()
            .find_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::Identity(r)) => Some(r),
                _ => None,
            })
            .ok_or_else(|| ContactError::NotInDht(uid.to_string()))?;
        let key = device_list_key(uid);
        let devices = self
            .inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::DeviceList(d)) if d.root_pk() == identity.root_pk() => Some(d),
                _ => None,
            })
            .max_by_key(DeviceList::version)
            .ok_or_else(|| ContactError::NotInDht(uid.to_string()))?;
        Ok((identity, devices))
    }
}

/// Whether a listen address can go in a ticket (not 0.0.0.0 or ::).
fn dialable(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => !ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => !ip.is_unspecified(),
        _ => false,
    }
}
