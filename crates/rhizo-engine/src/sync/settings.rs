//! Contact and conversation settings kept the same on our devices (issue 20): a rename, a
//! removal, a block or unblock, mute, archive, deleted history or a deleted message made on one
//! device goes to the others as a `SettingSync` in the sync group (so a device that was offline
//! gets it from its mailbox like any sync message).
//!
//! Each setting of each peer (its name or removal, block, mute, archive) remembers when it last
//! changed, in meta `sync.at.<setting>.<peer hex>`, on the device that made the change and on
//! those that applied it; a change not later than that is ignored. So the last writer wins, and
//! applying one again, or an older one late, changes nothing. Deleting cannot be undone: it is
//! always applied (again: nothing left to delete).

use rhizo_core::{
    Uid,
    proto::{SettingKind, SettingSync, SyncMessage, SyncedMessage},
};
use rhizo_store::{Reader, StoreError, Tx};
use tracing::debug;

use crate::{Engine, EngineError, Event, cache::ConversationCache, inbound::Reject};

/// A change of a contact's or conversation's settings made on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingChange {
    /// The contact got this name.
    Rename(String),
    /// The contact was removed.
    Remove,
    /// The UID was blocked (`true`) or unblocked.
    Block(bool),
    /// The conversation was muted (`true`) or unmuted.
    Mute(bool),
    /// The conversation was archived (`true`) or unarchived.
    Archive(bool),
    /// The conversation's history was deleted.
    ClearHistory,
}

impl SettingChange {
    fn kind(&self) -> SettingKind {
        match self {
            Self::Rename(_) => SettingKind::SettingRename,
            Self::Remove => SettingKind::SettingRemove,
            Self::Block(true) => SettingKind::SettingBlock,
            Self::Block(false) => SettingKind::SettingUnblock,
            Self::Mute(true) => SettingKind::SettingMute,
            Self::Mute(false) => SettingKind::SettingUnmute,
            Self::Archive(true) => SettingKind::SettingArchive,
            Self::Archive(false) => SettingKind::SettingUnarchive,
            Self::ClearHistory => SettingKind::SettingClearHistory,
        }
    }
}

/// The setting a kind changes, as its version is kept (`None`: a deletion, always applied).
fn setting_of(kind: SettingKind) -> Option<&'static str> {
    match kind {
        SettingKind::SettingRename | SettingKind::SettingRemove => Some("contact"),
        SettingKind::SettingBlock | SettingKind::SettingUnblock => Some("block"),
        SettingKind::SettingMute | SettingKind::SettingUnmute => Some("mute"),
        SettingKind::SettingArchive | SettingKind::SettingUnarchive => Some("archive"),
        SettingKind::SettingUnspecified
        | SettingKind::SettingClearHistory
        | SettingKind::SettingDeleteMessage => None,
    }
}

fn version_key(setting: &str, peer: &[u8; 32]) -> String {
    format!("sync.at.{setting}.{}", hex::encode(peer))
}

/// Whether a change made `at` is later than the last one of `setting` of `peer`; if so, it is
/// remembered as the last one.
fn newer(tx: &mut Tx<'_>, setting: &str, peer: &[u8; 32], at: i64) -> Result<bool, StoreError> {
    let key = version_key(setting, peer);
    let last = tx
        .get_meta(&key)?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MIN);
    if at <= last {
        return Ok(false);
    }
    tx.set_meta(&key, &at.to_string())?;
    Ok(true)
}

impl Engine {
    /// Tells our other devices (the sync group) about `change` to the settings of `peer` (a
    /// contact's or sender's UID, or a group's address), made here at `now`, and remembers
    /// when it was made; nothing without a sync group.
    ///
    /// # Errors
    ///
    /// MLS or the database.
    pub fn sync_setting(
        &self,
        tx: &mut Tx<'_>,
        peer: &[u8; 32],
        change: SettingChange,
        now: i64,
    ) -> Result<(), EngineError> {
        if super::active_sync_group(tx)?.is_none() {
            return Ok(());
        }
        let kind = change.kind();
        if let Some(setting) = setting_of(kind) {
            newer(tx, setting, peer, now)?;
        }
        let name = match change {
            SettingChange::Rename(name) => name,
            _ => String::new(),
        };
        let setting = SettingSync {
            at_ms: now,
            peer: peer.to_vec().into(),
            kind: kind.into(),
            name,
            message: None,
        };
        queue(tx, self, setting, now)
    }

    /// Tells our other devices that message `id` (a text or file) is deleted here; called
    /// before it is deleted (nothing for an unknown message, or without a sync group).
    ///
    /// # Errors
    ///
    /// MLS or the database.
    pub fn sync_message_delete(
        &self,
        tx: &mut Tx<'_>,
        id: i64,
        now: i64,
    ) -> Result<(), EngineError> {
        let Some(row) = tx.message(id)? else {
            return Ok(());
        };
        let setting = SettingSync {
            at_ms: now,
            kind: SettingKind::SettingDeleteMessage.into(),
            message: Some(SyncedMessage {
                session_id: row.session_id.to_vec().into(),
                sender_device: row.sender_device.to_vec().into(),
                seq: row.seq,
            }),
            ..SettingSync::default()
        };
        queue(tx, self, setting, now)
    }
}

fn queue(
    tx: &mut Tx<'_>,
    engine: &Engine,
    setting: SettingSync,
    now: i64,
) -> Result<(), EngineError> {
    let sync = SyncMessage {
        setting: Some(setting),
        ..SyncMessage::default()
    };
    super::queue_if_synced(tx, engine, sync, now)
}

/// How a conversation is named in events: its group's id, or the contact's name.
fn conversation_name(
    reader: &Reader<'_>,
    session_id: &[u8; 16],
) -> Result<Option<String>, StoreError> {
    if let Some(g) = reader.group_by_session(session_id)? {
        return Ok(Some(crate::groups::group_id_hex(&g.session_id)));
    }
    let Some(c) = reader.conversation(session_id)? else {
        return Ok(None);
    };
    Ok(reader.contact_by_uid(&c.contact_uid)?.map(|c| c.name))
}

/// A peer's conversation: how events name it, and its sessions.
type PeerConversation = (String, Vec<[u8; 16]>);

/// How `peer` is named in events, and its 1:1 or group sessions: a contact (its name), a
/// group (its id); `None` for neither.
fn peer_conversation(
    reader: &Reader<'_>,
    peer: &[u8; 32],
) -> Result<Option<PeerConversation>, StoreError> {
    if let Some(c) = reader.contact_by_uid(peer)? {
        let sessions = reader
            .conversations_with(peer)?
            .into_iter()
            .map(|c| c.session_id)
            .collect();
        return Ok(Some((c.name, sessions)));
    }
    Ok(reader.group_by_address(peer)?.map(|g| {
        (
            crate::groups::group_id_hex(&g.session_id),
            vec![g.session_id],
        )
    }))
}

fn changed(conversation: String, change: &str) -> Event {
    Event::ConversationChanged {
        conversation,
        change: change.into(),
    }
}

/// Applies a setting another of our devices changed (the caller checked it came from our own
/// device in our sync group). Malformed or stale: ignored.
pub(crate) fn apply_setting(
    tx: &mut Tx<'_>,
    (me, conversations): (&crate::Me, &ConversationCache),
    sync: SettingSync,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let Ok(kind) = SettingKind::try_from(sync.kind) else {
        debug!("a synced setting of an unknown kind ignored");
        return Ok(Vec::new());
    };
    if kind == SettingKind::SettingDeleteMessage {
        return apply_message_delete(tx, sync.message);
    }
    let Ok(peer) = <[u8; 32]>::try_from(sync.peer.as_ref()) else {
        debug!("a synced setting without a peer ignored");
        return Ok(Vec::new());
    };
    if peer == *me.uid.as_bytes() {
        return Ok(Vec::new());
    }
    if let Some(setting) = setting_of(kind)
        && !newer(tx, setting, &peer, sync.at_ms)?
    {
        return Ok(Vec::new());
    }
    let contact = tx.contact_by_uid(&peer)?;
    match kind {
        SettingKind::SettingRename => {
            let Some(contact) = contact else {
                return Ok(Vec::new());
            };
            let name = sync.name.trim();
            match tx.rename_contact(&contact.uid, name) {
                Ok(true) => Ok(vec![changed(name.to_string(), "renamed")]),
                Ok(false) => Ok(Vec::new()),
                Err(StoreError::NameTaken(_) | StoreError::InvalidInput(_)) => {
                    debug!("a synced name is taken or bad here; kept the old one");
                    Ok(Vec::new())
                }
                Err(e) => Err(e.into()),
            }
        }
        SettingKind::SettingRemove => {
            let Some(contact) = contact else {
                return Ok(Vec::new());
            };
            forget(tx, conversations, &contact.uid)?;
            Ok(vec![changed(contact.name, "removed")])
        }
        SettingKind::SettingBlock | SettingKind::SettingUnblock => {
            let name = contact.map_or_else(|| Uid::from_bytes(&peer).to_string(), |c| c.name);
            if kind == SettingKind::SettingBlock {
                let limits = crate::requests::REQUEST_LIMITS;
                tx.block_sender(&peer, &limits, now)?;
                Ok(vec![changed(name, "blocked")])
            } else if tx.unblock_sender(&peer)? {
                Ok(vec![changed(name, "unblocked")])
            } else {
                Ok(Vec::new())
            }
        }
        _ => apply_conversation_setting(tx, kind, &peer, now),
    }
}

fn forget(
    tx: &mut Tx<'_>,
    conversations: &ConversationCache,
    uid: &[u8; 32],
) -> Result<(), Reject> {
    match crate::manage::forget_contact(tx, conversations, uid) {
        Ok(_) => Ok(()),
        Err(EngineError::Store(e)) => Err(Reject::Store(e)),
        Err(e) => Err(Reject::internal(e)),
    }
}

/// Mute, archive (or their undoing), or a deleted history, of a contact's or group's
/// conversation known here (an unknown one: ignored).
fn apply_conversation_setting(
    tx: &mut Tx<'_>,
    kind: SettingKind,
    peer: &[u8; 32],
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let Some((name, sessions)) = peer_conversation(tx, peer)? else {
        return Ok(Vec::new());
    };
    let (muted, archived, change) = match kind {
        SettingKind::SettingMute => (Some(true), None, "muted"),
        SettingKind::SettingUnmute => (Some(false), None, "unmuted"),
        SettingKind::SettingArchive => (None, Some(true), "archived"),
        SettingKind::SettingUnarchive => (None, Some(false), "unarchived"),
        SettingKind::SettingClearHistory => {
            for session in &sessions {
                tx.clear_history(session)?;
            }
            return Ok(vec![changed(name, "deleted")]);
        }
        _ => return Ok(Vec::new()),
    };
    tx.set_conversation_settings(peer, muted, archived, now)?;
    Ok(vec![changed(name, change)])
}

/// A message another of our devices deleted: deleted here too (if it is here).
fn apply_message_delete(
    tx: &mut Tx<'_>,
    message: Option<SyncedMessage>,
) -> Result<Vec<Event>, Reject> {
    let Some(m) = message else {
        return Ok(Vec::new());
    };
    let (Ok(session), Ok(device)) = (
        <[u8; 16]>::try_from(m.session_id.as_ref()),
        <[u8; 32]>::try_from(m.sender_device.as_ref()),
    ) else {
        debug!("a synced message deletion with a bad reference ignored");
        return Ok(Vec::new());
    };
    let ids = tx.delete_by_envelope(&session, &device, m.seq)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let conversation = conversation_name(tx, &session)?.unwrap_or_default();
    Ok(ids
        .into_iter()
        .map(|id| Event::MessageDeleted {
            id,
            conversation: conversation.clone(),
            for_everyone: false,
        })
        .collect())
}

#[cfg(test)]
mod tests;
