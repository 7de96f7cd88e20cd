//! The sync group (issue 15): this user's own devices in a private MLS group of their own, a
//! group conversation of kind `self` (meta key [`META_SYNC_GROUP`]). It is never listed with
//! the groups and never offered to contacts: only our own devices are in it, and its address is
//! derived from the MLS group id, a random id only they know. Over it travel read markers,
//! contacts and our profile (`state`), contact and conversation settings (`settings`), and
//! the history transfer ([`history`]).
//!
//! ```text
//!  link (device with the root key) ─▶ add_device_to_sync_group(new device's KeyPackage)
//!     no sync group yet ─▶ create it (name SYNC_GROUP_NAME, only us) ─▶ Add + Welcome
//!     else ─▶ Add (add_own_device_to_group) + Welcome to the new device
//!  Welcome from one of our own listed devices, only our UID in it, named SYNC_GROUP_NAME
//!     ─▶ joined at once, remembered as the sync group (sync_welcome)
//!  READ receipts queued on this device ─▶ a ReadMarker (≤ MAX_READ_MARKER_ENTRIES) to the
//!     sync group (queue_read_marker)
//!  a ReadMarker from our own device ─▶ those messages `read` here, NO receipt sent (one READ
//!     receipt to the contact, not two)
//!  contact added / verified here ─▶ ContactSync ─▶ added there (a known UID keeps its name)
//!     (a known contact gaining a device key there: a KeyChange event, as on this device)
//!  our profile signed (root device) ─▶ ProfileSync ─▶ kept there when newer
//!  contact renamed / removed / blocked / unblocked, conversation muted / archived / its
//!     history deleted, a message deleted ─▶ SettingSync ─▶ applied there, the last change
//!     of each setting winning (settings)
//!  revoke ─▶ removed from every group, the sync group too (remove_own_device_from_groups)
//!  existing 1:1 conversation gets the new device ─▶ ConversationJoin (the contact + the
//!     Welcome, for that device only) ─▶ joined there (crate::devices::direct)
//! ```

pub mod history;
mod settings;
mod state;

pub use settings::SettingChange;
pub use state::{MAX_SYNCED_ADDR_BYTES, MAX_SYNCED_ADDRS};
pub(crate) use state::{apply_contact, contact_sync, queue_profile};

use prost::Message as _;
use rhizo_core::{
    envelope::{ErrorCode, MAX_RECEIPT_ENTRIES, MessageType},
    proto::{ChatContent, ReadEntry, ReadMarker, SyncMessage},
};
use rhizo_e2e::Conversation;
use rhizo_store::{
    Reader, Tx,
    groups::{GroupRow, GroupStatus, MemberDevice},
    messaging::UnreadMessage,
};
use tracing::debug;

use crate::{
    Engine, EngineError, Event, Me,
    groups::{GroupEnvelope, WelcomeIn, queue_group_envelope, roster},
    inbound::{Parts, Reject},
};

/// The sync group's name (in its MLS extension): with only our UID in it and a Welcome from
/// our own listed device, it marks the group as the sync group.
pub const SYNC_GROUP_NAME: &str = "rhizo:self";
/// Meta key: hex of the sync group's session id.
pub const META_SYNC_GROUP: &str = "sync.group";
/// Most messages one read marker names (as a READ receipt).
pub const MAX_READ_MARKER_ENTRIES: usize = MAX_RECEIPT_ENTRIES;

/// What [`Engine::add_device_to_sync_group`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncGroupAdd {
    /// There was no sync group: created with the device in it.
    Created,
    /// The device was added to the sync group.
    Added,
    /// The device already had a leaf in it.
    AlreadyIn,
}

/// One received message a read marker names: (session id, sender device, seq).
pub type ReadMessage = ([u8; 16], [u8; 32], u64);

/// The sync group's session id, if this device is in one.
///
/// # Errors
///
/// If the database fails.
pub fn sync_session(reader: &Reader<'_>) -> Result<Option<[u8; 16]>, EngineError> {
    let Some(text) = reader.get_meta(META_SYNC_GROUP)? else {
        return Ok(None);
    };
    Ok(hex::decode(text).ok().and_then(|b| b.try_into().ok()))
}

/// Whether `session_id` is our sync group's (never listed, never used for texts).
///
/// # Errors
///
/// If the database fails.
pub fn is_sync_group(reader: &Reader<'_>, session_id: &[u8; 16]) -> Result<bool, EngineError> {
    Ok(sync_session(reader)?.as_ref() == Some(session_id))
}

/// The sync group, when we are in it (active).
fn active_sync_group(reader: &Reader<'_>) -> Result<Option<GroupRow>, EngineError> {
    let Some(session) = sync_session(reader)? else {
        return Ok(None);
    };
    Ok(reader
        .group_by_session(&session)?
        .filter(|g| g.status == GroupStatus::Active))
}

impl Engine {
    /// The sync group, when this device is in one.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn sync_group(&self, reader: &Reader<'_>) -> Result<Option<GroupRow>, EngineError> {
        active_sync_group(reader)
    }

    /// Puts our newly linked device `device` (its KeyPackage `key_package`, fetched from the
    /// DHT) in the sync group: creates the group at the first link, adds the device later; a
    /// Welcome goes to the device either way. The device must be in our device list already.
    ///
    /// # Errors
    ///
    /// MLS (a bad KeyPackage, the device not listed), the database.
    pub fn add_device_to_sync_group(
        &self,
        tx: &mut Tx<'_>,
        device: &[u8; 32],
        key_package: &[u8],
        now: i64,
    ) -> Result<SyncGroupAdd, EngineError> {
        self.group_job(tx, |tx| {
            self.add_to_sync_group(tx, device, key_package, now)
        })
    }

    fn add_to_sync_group(
        &self,
        tx: &mut Tx<'_>,
        device: &[u8; 32],
        key_package: &[u8],
        now: i64,
    ) -> Result<SyncGroupAdd, EngineError> {
        let (group, made) = match active_sync_group(tx)? {
            Some(group) => (group, SyncGroupAdd::Added),
            None => {
                let group = self.create_group(tx, SYNC_GROUP_NAME, &[], now)?;
                let hex = hex::encode(group.session_id);
                tx.set_meta(META_SYNC_GROUP, &hex)?;
                (group, SyncGroupAdd::Created)
            }
        };
        let conversation = self.load_group(tx, &group)?;
        let members = roster(&conversation)?;
        self.conversations.stage(conversation);
        if members.iter().any(|m| m.devices.contains(device)) {
            return Ok(SyncGroupAdd::AlreadyIn);
        }
        self.add_own_device_to_group(tx, &group.session_id, key_package, now)?;
        Ok(made)
    }
}

/// A Welcome from one of our own listed devices to a group of our UID only, named
/// [`SYNC_GROUP_NAME`]: joined at once and remembered as the sync group. `None`: not one.
pub(crate) fn sync_welcome(
    tx: &mut Tx<'_>,
    parts: Parts<'_>,
    welcome: WelcomeIn<'_>,
    info: &rhizo_e2e::WelcomeInfo,
    now: i64,
) -> Result<Option<Vec<Event>>, Reject> {
    let (me, mls_device, conversations, _, _) = parts;
    let message = welcome.envelope;
    let ours = info.members.iter().all(|c| c.root() == me.root_public);
    if message.sender_id != me.uid || !ours || info.state.profile().name != SYNC_GROUP_NAME {
        return Ok(None);
    }
    let listed =
        crate::devices::listed_devices_of(tx, me, me.uid.as_bytes()).map_err(Reject::internal)?;
    if !listed.contains(&message.sender_device) {
        return Ok(None);
    }
    let mls = tx.mls().map_err(Reject::internal)?;
    let conversation = Conversation::join(&mls, mls_device, welcome.welcome, crate::secs(now))
        .map_err(|e| {
            debug!(error = %e, "the sync group's Welcome could not be joined");
            Reject::Code(ErrorCode::DecryptionFailed)
        })?;
    let events = crate::groups::persist_join(tx, conversations, conversation, message, true, now)?;
    tx.set_meta(META_SYNC_GROUP, &hex::encode(message.session_id.as_bytes()))?;
    // Not a group the user sees: no GroupCreated event.
    drop(events);
    Ok(Some(Vec::new()))
}

/// The messages of `session_id` just marked read, as a read marker names them.
pub(crate) fn read(session_id: &[u8; 16], unread: &[UnreadMessage]) -> Vec<ReadMessage> {
    unread
        .iter()
        .map(|m| (*session_id, m.sender_device, m.seq))
        .collect()
}

/// Queues a read marker naming `read` (messages this device just marked read and receipted) to
/// the sync group, in chunks of [`MAX_READ_MARKER_ENTRIES`]; nothing without a sync group or
/// another device in it.
pub(crate) fn queue_read_marker(
    tx: &mut Tx<'_>,
    engine: &Engine,
    read: &[ReadMessage],
    now: i64,
) -> Result<(), EngineError> {
    if read.is_empty() {
        return Ok(());
    }
    let Some(group) = active_sync_group(tx)? else {
        return Ok(());
    };
    for chunk in read.chunks(MAX_READ_MARKER_ENTRIES) {
        let entries = chunk
            .iter()
            .map(|(session, device, seq)| ReadEntry {
                session_id: session.to_vec().into(),
                sender_device: device.to_vec().into(),
                seq: *seq,
            })
            .collect();
        let sync = SyncMessage {
            read: Some(ReadMarker { entries }),
            ..SyncMessage::default()
        };
        queue_sync(tx, engine, &group, sync, now)?;
    }
    Ok(())
}

/// Queues `sync` to our other devices when we are in a sync group.
pub(crate) fn queue_if_synced(
    tx: &mut Tx<'_>,
    engine: &Engine,
    sync: SyncMessage,
    now: i64,
) -> Result<(), EngineError> {
    match active_sync_group(tx)? {
        Some(group) => queue_sync(tx, engine, &group, sync, now),
        None => Ok(()),
    }
}

/// Encrypts one sync message in the sync group and queues it to our other devices there.
fn queue_sync(
    tx: &mut Tx<'_>,
    engine: &Engine,
    group: &GroupRow,
    sync: SyncMessage,
    now: i64,
) -> Result<(), EngineError> {
    engine.in_job(tx, |tx| encrypt_sync(tx, engine, group, sync, now))
}

fn encrypt_sync(
    tx: &mut Tx<'_>,
    engine: &Engine,
    group: &GroupRow,
    sync: SyncMessage,
    now: i64,
) -> Result<(), EngineError> {
    let mut conversation = engine.load_group(tx, group)?;
    let devices: Vec<MemberDevice> =
        crate::groups::other_devices(&roster(&conversation)?, &engine.me);
    if devices.is_empty() {
        engine.conversations.stage(conversation);
        return Ok(());
    }
    let content = ChatContent {
        sent_at_ms: crate::ms(now),
        sync: Some(sync),
        ..ChatContent::default()
    };
    let mls = tx.mls()?;
    let epoch = conversation.epoch();
    let ciphertext = conversation.encrypt(
        &mls,
        &engine.mls_device,
        &content.encode_to_vec(),
        crate::secs(now),
    )?;
    let out = GroupEnvelope {
        msg_type: MessageType::Application,
        kind: "sync",
        body: None,
        payload: ciphertext,
        recipient: None,
        message_id: None,
        epoch: Some(epoch),
    };
    queue_group_envelope(tx, engine.signer(), group, out, &devices, now)?;
    engine.conversations.stage(conversation);
    Ok(())
}

fn reject(e: EngineError) -> Reject {
    match e {
        EngineError::Store(e) => Reject::Store(e),
        other => Reject::internal(other),
    }
}

/// Applies a sync message that arrived in `group` from `sender_uid`: only in our sync group and
/// only from our own UID (anything else is ignored). A read marker marks the named received
/// messages read here, without a receipt; a contact is added; a setting applied; our profile
/// kept; a 1:1 conversation our device added this one to is joined.
pub(crate) fn apply_sync(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations): (&Me, &rhizo_e2e::Device, &crate::cache::ConversationCache),
    group: &GroupRow,
    sender_uid: [u8; 32],
    sync: SyncMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    if sender_uid != *me.uid.as_bytes()
        || !is_sync_group(tx, &group.session_id).map_err(Reject::internal)?
    {
        debug!("a sync message outside our sync group ignored");
        return Ok(Vec::new());
    }
    if let Some(marker) = sync.read {
        for entry in marker.entries.iter().take(MAX_READ_MARKER_ENTRIES) {
            let (Ok(session), Ok(device)) = (
                <[u8; 16]>::try_from(entry.session_id.as_ref()),
                <[u8; 32]>::try_from(entry.sender_device.as_ref()),
            ) else {
                continue;
            };
            tx.mark_read_by_envelope(&session, &device, entry.seq)?;
        }
    }
    let mut events = Vec::new();
    if let Some(contact) = sync.contact
        && let Some(contact) = state::apply_contact(tx, contact, now)?
    {
        events.push(Event::KeyChange { contact });
    }
    if let Some(setting) = sync.setting {
        events.extend(settings::apply_setting(
            tx,
            (me, conversations),
            setting,
            now,
        )?);
    }
    if let Some(profile) = sync.profile {
        state::apply_profile(tx, me, profile, now)?;
    }
    let mut history_moved = false;
    if let Some(page) = sync.history {
        history_moved |= history::apply_page(tx, me, page, now).map_err(reject)?;
    }
    if let Some(ack) = sync.history_ack {
        history_moved |= history::apply_ack(tx, ack, now).map_err(reject)?;
    }
    if history_moved {
        events.push(Event::HistoryMoved);
    }
    if let Some(join) = sync.conversation {
        let parts = (me, mls_device, conversations);
        crate::devices::direct::apply_conversation_join(tx, parts, join, now)?;
    }
    Ok(events)
}

#[cfg(test)]
pub(crate) mod tests;
