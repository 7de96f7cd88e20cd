//! Other users' device lists as the driver fetched them from the DHT, for the role rule's
//! own-device exception (issue 15): a member's commit that adds a device of its own UID is
//! accepted only if that UID's newest device list names the device. When neither our stored
//! contact nor this cache names it, the commit is answered `SEQUENCE_ERROR` (the committer
//! retries) and the UID is *wanted*: the driver fetches its newest device list, gives the
//! proven devices back ([`Engine::learn_listed_devices`]), and the retried commit applies.
//!
//! ```text
//!  commit adds an unknown own device of U ─▶ want(U) ─▶ SEQUENCE_ERROR (retried by the sender)
//!  driver: wanted_device_lists() ─▶ DHT: U's device list + KeyPackage bundles (proof)
//!        ─▶ learn_listed_devices(tx, U, devices) ─▶ contact's stored devices, and this cache
//! ```
//!
//! A list found in the DHT that is older than one found before for the same UID is not used
//! ([`Engine::note_device_list_version`]): a device only an older version names is refused.
//!
//! Bounded: at most [`MAX_WANTED`] UIDs wait to be fetched (more are dropped: a later retry of
//! the commit asks again) and [`MAX_KNOWN`] lists are kept (the oldest learned goes first).

use std::collections::VecDeque;
use std::sync::Mutex;

use rhizo_core::{DevicePublicKey, Uid};
use rhizo_store::{
    Tx,
    messaging::{AddContact, ContactDevice},
};

use crate::{Engine, EngineError};

/// UIDs waiting for their device list to be fetched, at most.
pub const MAX_WANTED: usize = 64;
/// Fetched device lists kept, at most.
pub const MAX_KNOWN: usize = 256;
/// Meta key prefix (then hex(uid)): the newest device-list version found for that UID.
const META_LIST_VERSION: &str = "device_list_version:";

/// A list fetched this recently (ms) counts as the newest: a device it does not name is refused
/// for good instead of fetched again.
pub const FRESH_MS: i64 = 10 * 60 * 1000;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct DeviceLists {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    wanted: Vec<[u8; 32]>,
    /// Oldest learned first, with when (ms).
    known: VecDeque<([u8; 32], Vec<DevicePublicKey>, i64)>,
}

impl DeviceLists {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change is one Vec operation: a poisoned lock still holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the driver for `uid`'s newest device list (once until it is taken).
    pub(crate) fn want(&self, uid: &[u8; 32]) {
        let mut state = self.state();
        if !state.wanted.contains(uid) && state.wanted.len() < MAX_WANTED {
            state.wanted.push(*uid);
        }
    }

    /// The UIDs wanted since the last call.
    pub(crate) fn take_wanted(&self) -> Vec<[u8; 32]> {
        std::mem::take(&mut self.state().wanted)
    }

    /// Keeps `devices` as `uid`'s newest listed devices.
    pub(crate) fn learn(&self, uid: &[u8; 32], devices: Vec<DevicePublicKey>, now: i64) {
        let mut state = self.state();
        state.known.retain(|(u, _, _)| u != uid);
        while state.known.len() >= MAX_KNOWN {
            state.known.pop_front();
        }
        state.known.push_back((*uid, devices, now));
    }

    /// Whether `uid`'s list was fetched within [`FRESH_MS`] before `now`.
    pub(crate) fn fresh(&self, uid: &[u8; 32], now: i64) -> bool {
        self.state()
            .known
            .iter()
            .any(|(u, _, at)| u == uid && now.saturating_sub(*at) < FRESH_MS)
    }

    /// `uid`'s devices as last learned (none if never).
    pub(crate) fn known(&self, uid: &[u8; 32]) -> Vec<DevicePublicKey> {
        self.state()
            .known
            .iter()
            .find(|(u, _, _)| u == uid)
            .map(|(_, d, _)| d.clone())
            .unwrap_or_default()
    }
}

impl Engine {
    /// The UIDs whose newest device list a commit needs (a member added a device of its own
    /// that the list we know does not name), taken: the driver fetches each from the DHT and
    /// gives the proven devices to [`Engine::learn_listed_devices`].
    pub fn wanted_device_lists(&self) -> Vec<Uid> {
        self.conversations
            .device_lists
            .take_wanted()
            .iter()
            .map(Uid::from_bytes)
            .collect()
    }

    /// Takes `devices` (proven listed devices from `uid`'s newest device list, fetched by the
    /// driver) as `uid`'s devices: a stored contact's devices gain the new ones (so we address
    /// them) and lose the ones the list no longer names, and the role rule counts them for that UID's own-device commits. Our own UID is
    /// ignored (our list is adopted by the publisher).
    ///
    /// Returns the contact's name when its keys changed: it gained a device key we did not
    /// store before (a key change, docs/local-api.md "Key changes"; its `key_changed` flag is
    /// now set, until the user verifies it again).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn learn_listed_devices(
        &self,
        tx: &mut Tx<'_>,
        uid: &Uid,
        devices: Vec<ContactDevice>,
        now: i64,
    ) -> Result<Option<String>, EngineError> {
        if *uid == self.me.uid {
            return Ok(None);
        }
        let keys = devices
            .iter()
            .filter_map(|d| DevicePublicKey::from_bytes(&d.device_pk).ok())
            .collect();
        let mut changed = None;
        if let Some(mut contact) = tx.contact_by_uid(uid.as_bytes())? {
            let listed: Vec<[u8; 32]> = devices.iter().map(|d| d.device_pk).collect();
            contact.devices = devices;
            if tx.add_contact(&contact, now)? == AddContact::KeyChanged {
                changed = Some(contact.name);
            }
            // Devices the newest list no longer names (revoked) are no longer addressed.
            tx.drop_unlisted_contact_devices(uid.as_bytes(), &listed)?;
        }
        self.conversations
            .device_lists
            .learn(uid.as_bytes(), keys, now);
        Ok(changed)
    }

    /// Notes `version` as the version of `uid`'s device list the driver just found in the DHT:
    /// false, and nothing changed, when a newer version was noted before. What was found is
    /// then an older list (from a stale or lying DHT node) and must not be used: a device it
    /// names and the newer one does not was revoked. Persisted (meta), so a restart keeps it.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn note_device_list_version(
        &self,
        tx: &mut Tx<'_>,
        uid: &Uid,
        version: u64,
    ) -> Result<bool, EngineError> {
        let key = format!("{META_LIST_VERSION}{}", hex::encode(uid.as_bytes()));
        let seen: u64 = tx.get_meta(&key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
        if version < seen {
            return Ok(false);
        }
        if version > seen {
            tx.set_meta(&key, &version.to_string())?;
        }
        Ok(true)
    }
}
