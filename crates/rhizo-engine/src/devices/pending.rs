//! Own-device adds to 1:1 conversations that are not done yet (issue 15), persisted (meta
//! [`META_DEVICE_ADDS`], the device's KeyPackage under [`META_DEVICE_ADD_KEY_PACKAGE`]) so a
//! restart keeps them:
//!
//! - a conversation whose own commit (a self-update) is still pending when a device is linked
//!   gets the device's add once that commit resolved (merged or dropped);
//! - an add that the contact refused for good, or that lost to the contact's own commit, is
//!   withdrawn from the new device (it drops the conversation it joined, which the contact
//!   never applied) and tried again later with a fresh commit, at most
//!   [`MAX_DEVICE_ADD_ATTEMPTS`] adds in all; then it is given up (logged). The new device
//!   then has no conversation with that contact, not a broken one.
//!
//! ```text
//!  add_own_device_to_conversations ─▶ own commit pending ─▶ mark: waiting
//!                                  ─▶ Add commit queued  ─▶ mark: in flight (its commit id)
//!  retry_device_adds (after inbound frames, transmit results, mailbox fetches, the sweep):
//!    waiting, no pending commit, due    ─▶ Add commit queued (in flight)
//!    in flight, the device is a member  ─▶ done (merged)
//!    in flight, its commit is gone      ─▶ withdrawn on the device (an empty
//!       ConversationJoin), waiting DEVICE_ADD_RETRY_MS; after the last attempt: given up
//!    device not listed any more, no open conversation with the contact ─▶ dropped
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use rhizo_core::{
    DevicePublicKey,
    proto::{ConversationJoin, SyncMessage},
};
use rhizo_store::{Reader, Tx};
use tracing::{debug, info, warn};

use crate::{Engine, EngineError};

/// Meta key: the adds not done yet, one per line:
/// hex(device) ` ` hex(contact uid) ` ` hex(commit id) or `-` ` ` attempts ` ` due at (ms).
pub(crate) const META_DEVICE_ADDS: &str = "device_adds";
/// Meta key prefix (then hex(device)): the KeyPackage the adds of that device use.
pub(crate) const META_DEVICE_ADD_KEY_PACKAGE: &str = "device_add_key_package:";
/// Adds of one device to one conversation, at most (the first one included).
pub const MAX_DEVICE_ADD_ATTEMPTS: u32 = 3;
/// How long after a refused add the next one goes out (ms): time for the contact's node to
/// fetch our newest device list.
pub const DEVICE_ADD_RETRY_MS: i64 = 15 * 60 * 1000;

/// One add of `device` to the open 1:1 conversation with `contact` that is not done yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingAdd {
    pub(crate) device: [u8; 32],
    pub(crate) contact: [u8; 32],
    /// The add commit sent and not yet merged; `None` while waiting.
    pub(crate) commit: Option<[u8; 32]>,
    /// Adds sent so far.
    pub(crate) attempts: u32,
    /// Not retried before (ms).
    pub(crate) due_at: i64,
}

impl PendingAdd {
    fn parse(line: &str) -> Option<Self> {
        let mut f = line.split(' ');
        let device = hex::decode(f.next()?).ok()?.try_into().ok()?;
        let contact = hex::decode(f.next()?).ok()?.try_into().ok()?;
        let commit = match f.next()? {
            "-" => None,
            id => Some(hex::decode(id).ok()?.try_into().ok()?),
        };
        Some(Self {
            device,
            contact,
            commit,
            attempts: f.next()?.parse().ok()?,
            due_at: f.next()?.parse().ok()?,
        })
    }

    fn line(&self) -> String {
        let commit = self.commit.map_or_else(|| "-".to_owned(), hex::encode);
        format!(
            "{} {} {commit} {} {}",
            hex::encode(self.device),
            hex::encode(self.contact),
            self.attempts,
            self.due_at
        )
    }
}

/// The adds not done yet (damaged lines are skipped).
pub(crate) fn pending_adds(reader: &Reader<'_>) -> Result<Vec<PendingAdd>, EngineError> {
    let text = reader.get_meta(META_DEVICE_ADDS)?.unwrap_or_default();
    Ok(text.lines().filter_map(PendingAdd::parse).collect())
}

fn key_package_key(device: &[u8; 32]) -> String {
    format!("{META_DEVICE_ADD_KEY_PACKAGE}{}", hex::encode(device))
}

/// Writes `adds`, and drops the KeyPackages no add uses any more (of `devices`).
fn store_adds(
    tx: &mut Tx<'_>,
    adds: &[PendingAdd],
    devices: &[[u8; 32]],
) -> Result<(), EngineError> {
    let lines: Vec<String> = adds.iter().map(PendingAdd::line).collect();
    tx.set_meta(META_DEVICE_ADDS, &lines.join("\n"))?;
    for device in devices {
        if !adds.iter().any(|a| a.device == *device) {
            tx.set_meta(&key_package_key(device), "")?;
        }
    }
    Ok(())
}

/// Records `add` (replacing the one for the same device and contact, unless `add` waits and
/// that one is in flight) and the device's KeyPackage.
pub(crate) fn record(
    tx: &mut Tx<'_>,
    add: PendingAdd,
    key_package: &[u8],
) -> Result<(), EngineError> {
    let mut adds = pending_adds(tx)?;
    let in_flight = adds
        .iter()
        .any(|a| (a.device, a.contact) == (add.device, add.contact) && a.commit.is_some());
    if in_flight && add.commit.is_none() {
        return Ok(());
    }
    adds.retain(|a| (a.device, a.contact) != (add.device, add.contact));
    tx.set_meta(&key_package_key(&add.device), &hex::encode(key_package))?;
    adds.push(add);
    store_adds(tx, &adds, &[])
}

/// What [`Engine::retry_device_adds`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAddRetry {
    /// Add commits queued.
    pub sent: usize,
    /// Adds merged (done).
    pub merged: usize,
    /// Adds refused or lost, withdrawn from the device.
    pub withdrawn: usize,
    /// Adds given up or dropped (device no longer listed, conversation gone, last attempt).
    pub dropped: usize,
}

/// Whether there may be adds not done yet: starts true (a restart reads them once), false once
/// a look found none, true again when one is recorded.
#[derive(Debug)]
pub(crate) struct AddsWaiting(AtomicBool);

impl Default for AddsWaiting {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl AddsWaiting {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Moves the own-device adds that are not done yet on (see the module docs): sends the
    /// waiting ones whose conversation has no pending commit any more, settles the ones in
    /// flight. Called by the engine after inbound frames, transmit results, mailbox fetches
    /// and in the sweep; cheap when there are none (no read).
    ///
    /// # Errors
    ///
    /// The database or MLS.
    pub fn retry_device_adds(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<DeviceAddRetry, EngineError> {
        if !self.device_adds.0.load(Ordering::Relaxed) {
            return Ok(DeviceAddRetry::default());
        }
        let adds = pending_adds(tx)?;
        if adds.is_empty() {
            self.device_adds.0.store(false, Ordering::Relaxed);
            return Ok(DeviceAddRetry::default());
        }
        let listed = super::listed_devices_of(tx, &self.me, self.me.uid.as_bytes())?;
        let devices: Vec<[u8; 32]> = adds.iter().map(|a| a.device).collect();
        let mut done = DeviceAddRetry::default();
        let kept = self.in_job(tx, |tx| -> Result<Vec<PendingAdd>, EngineError> {
            let mut kept = Vec::new();
            for add in adds {
                let still = DevicePublicKey::from_bytes(&add.device)
                    .is_ok_and(|d| listed.contains(&d) && d != self.me.device.public());
                let next = if still {
                    self.move_add(tx, add, now, &mut done)?
                } else {
                    done.dropped += 1;
                    None
                };
                kept.extend(next);
            }
            store_adds(tx, &kept, &devices)?;
            Ok(kept)
        })?;
        debug!(left = kept.len(), "own-device adds looked at");
        if done != DeviceAddRetry::default() {
            info!(?done, "own-device adds moved on");
        }
        Ok(done)
    }

    /// One add: what is left of it (`None`: done or dropped).
    fn move_add(
        &self,
        tx: &mut Tx<'_>,
        mut add: PendingAdd,
        now: i64,
        done: &mut DeviceAddRetry,
    ) -> Result<Option<PendingAdd>, EngineError> {
        let (Some(contact), Ok(device)) = (
            tx.contact_by_uid(&add.contact)?,
            DevicePublicKey::from_bytes(&add.device),
        ) else {
            done.dropped += 1;
            return Ok(None);
        };
        let Some(row) = tx.open_conversation_with(&contact.uid)? else {
            done.dropped += 1;
            return Ok(None);
        };
        let mls = tx.mls()?;
        let Some(conversation) = self.conversations.load(&mls, &row.group_id)? else {
            done.dropped += 1;
            return Ok(None);
        };
        let member = conversation.members().iter().any(|c| c.device() == device);
        let pending = conversation.pending_commit_id();
        self.conversations.stage(conversation);
        if member {
            if add.commit.is_some() {
                done.merged += 1;
            }
            return Ok(None);
        }
        if let Some(commit) = add.commit {
            if pending == Some(commit) {
                return Ok(Some(add));
            }
            // Refused for good, or lost to the contact's own commit: the device's copy of the
            // conversation is in an epoch the contact never applied.
            withdraw(tx, self, &contact, &row.session_id, &device, now)?;
            done.withdrawn += 1;
            add.commit = None;
            add.due_at = now.saturating_add(DEVICE_ADD_RETRY_MS);
            if add.attempts >= MAX_DEVICE_ADD_ATTEMPTS {
                warn!(
                    attempts = add.attempts,
                    "the contact keeps refusing our new device in a 1:1 conversation: given up"
                );
                done.dropped += 1;
                return Ok(None);
            }
            return Ok(Some(add));
        }
        if pending.is_some() || now < add.due_at {
            return Ok(Some(add));
        }
        let key = tx.get_meta(&key_package_key(&add.device))?;
        let Some(package) = key
            .and_then(|k| hex::decode(k).ok())
            .filter(|k| !k.is_empty())
        else {
            done.dropped += 1;
            return Ok(None);
        };
        match self.add_to_conversation(tx, &contact, &row, &device, &package, now)? {
            super::direct::Added::Sent(commit) => {
                done.sent += 1;
                add.commit = Some(commit);
                add.attempts += 1;
                Ok(Some(add))
            }
            super::direct::Added::Waiting => Ok(Some(add)),
            super::direct::Added::Member | super::direct::Added::Failed => {
                done.dropped += 1;
                Ok(None)
            }
        }
    }

    /// [`Self::retry_device_adds`] inside a savepoint, for the engine's own calls: a failure
    /// is logged and leaves the adds for the next call.
    pub(crate) fn retry_device_adds_safely(&self, tx: &mut Tx<'_>, now: i64) {
        if !self.device_adds.0.load(Ordering::Relaxed) {
            return;
        }
        let moved = tx.in_savepoint(|tx| self.retry_device_adds(tx, now));
        match moved {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!(error = %e, "own-device adds not moved on for now"),
            Err(e) => debug!(error = %e, "own-device adds not moved on for now"),
        }
    }
}

/// Tells our `device` (over the sync group) to drop its copy of the 1:1 conversation
/// `session_id` with `contact`: a [`ConversationJoin`] without a Welcome.
fn withdraw(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &rhizo_store::messaging::Contact,
    session_id: &[u8; 16],
    device: &DevicePublicKey,
    now: i64,
) -> Result<(), EngineError> {
    let join = ConversationJoin {
        to_device: device.as_bytes().to_vec().into(),
        session_id: session_id.to_vec().into(),
        contact: Some(crate::sync::contact_sync(contact)),
        welcome: Vec::new().into(),
    };
    let sync = SyncMessage {
        conversation: Some(join),
        ..SyncMessage::default()
    };
    crate::sync::queue_if_synced(tx, engine, sync, now)
}
