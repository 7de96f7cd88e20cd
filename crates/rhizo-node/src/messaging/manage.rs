//! Managing contacts and conversations (issue 20): rename, remove, block and unblock a
//! contact; list conversations (archived ones on request); delete a conversation's history,
//! mute and archive it; delete a message here or for everyone. Each change is an event.
//!
//! ```text
//!  API / CLI ─▶ Messaging (this file) ─▶ one Db job: rhizo-store (names, settings, rows)
//!                                       or the engine (remove contact: MLS state too;
//!                                       delete for everyone: a MessageDelete in MLS)
//!            ─▶ ApiEvent::ConversationChanged / MessageDeleted ─▶ /v1/events
//!            ─▶ the same change to our other devices (a SettingSync in the sync group)
//!  block ─▶ the mailbox is fetched at once: what replicas hold from the blocked sender is
//!           acknowledged (so dropped there) and never shown
//! ```
//!
//! A *conversation* is named like everywhere else: a contact's name or UID for the 1:1
//! conversation with them, or a group's id, id prefix or name.

use rhizo_core::Uid;
use rhizo_engine::{
    EngineError, contacts::find_contact_in, groups::group_id_hex, sync::SettingChange,
};
use rhizo_store::{
    DbError, Reader, StoreError, groups::GroupRow, messaging::Contact,
    messaging::ConversationSettings,
};

use super::{GroupError, Messaging, views::view_of};
use crate::events::ApiEvent;

/// Why managing a contact or conversation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// No contact by that name or UID.
    #[error("no contact '{0}': list them with `rhizo contacts`")]
    UnknownContact(String),
    /// No contact or group by that name or id.
    #[error("no conversation '{0}': list them with `rhizo conversations`")]
    UnknownConversation(String),
    /// Two groups have that name (or id prefix).
    #[error("several groups are called '{0}': give the group's id instead")]
    Ambiguous(String),
    /// Neither a blocked contact nor a blocked UID.
    #[error("'{0}' is not blocked: list blocked senders with `rhizo requests blocked`")]
    NotBlocked(String),
    /// Our own UID.
    #[error("that is your own UID")]
    Ourselves,
    /// The database's owner did not run the job (busy, closed) or its commit failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The engine (database, MLS, signing; a name taken; an unknown message).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

/// A conversation as `GET /v1/conversations` lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConversationView {
    /// `direct` (with a contact) or `group`.
    pub kind: String,
    /// How to name it: the contact's name, or the group's id (hex).
    pub id: String,
    /// The contact's name, or the group's name.
    pub name: String,
    /// Its message events carry `muted: true` (clients do not notify).
    pub muted: bool,
    /// Hidden from the listing unless archived ones are asked for.
    pub archived: bool,
    /// The contact is blocked (always false for a group).
    pub blocked: bool,
}

/// What `DELETE /v1/messages/{id}` did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeletedView {
    /// The message's row id.
    pub id: i64,
    /// Whether a delete request went to the conversation's other members (best effort).
    pub for_everyone: bool,
    /// The conversation: the contact's name, or the group's id (hex).
    pub conversation: Option<String>,
}

/// A conversation the user named.
pub(super) enum Named {
    Direct(Contact),
    Group(GroupRow),
}

impl Named {
    /// The key of its settings: the contact's UID, or the group's address.
    fn peer(&self) -> [u8; 32] {
        match self {
            Self::Direct(c) => c.uid,
            Self::Group(g) => g.address,
        }
    }

    /// How it is named in views and events.
    fn id(&self) -> String {
        match self {
            Self::Direct(c) => c.name.clone(),
            Self::Group(g) => group_id_hex(&g.session_id),
        }
    }

    fn view(&self, reader: &Reader<'_>) -> Result<ConversationView, ManageError> {
        let ConversationSettings { muted, archived } =
            reader.conversation_settings(&self.peer())?;
        let (kind, name, blocked) = match self {
            Self::Direct(c) => ("direct", c.name.clone(), reader.is_blocked(&c.uid)?),
            Self::Group(g) => ("group", g.name.clone(), false),
        };
        Ok(ConversationView {
            kind: kind.into(),
            id: self.id(),
            name,
            muted,
            archived,
            blocked,
        })
    }
}

fn contact_in(reader: &Reader<'_>, who: &str) -> Result<Contact, ManageError> {
    find_contact_in(reader, who.trim())?.ok_or_else(|| ManageError::UnknownContact(who.into()))
}

/// A contact (name or UID) first, then a group (id, name, id prefix).
pub(super) fn conversation_in(reader: &Reader<'_>, who: &str) -> Result<Named, ManageError> {
    if let Some(c) = find_contact_in(reader, who.trim())? {
        return Ok(Named::Direct(c));
    }
    match super::groups::find_group_in(reader, who) {
        Ok(g) => Ok(Named::Group(g)),
        Err(GroupError::AmbiguousGroup(_)) => Err(ManageError::Ambiguous(who.into())),
        Err(GroupError::Db(e)) => Err(ManageError::Db(e)),
        Err(GroupError::Engine(e)) => Err(ManageError::Engine(e)),
        Err(_) => Err(ManageError::UnknownConversation(who.into())),
    }
}

/// How a message's conversation is named: its group's id, or the contact's name.
fn conversation_of(
    reader: &Reader<'_>,
    session_id: &[u8; 16],
) -> Result<Option<String>, ManageError> {
    if let Some(g) = reader.group_by_session(session_id)? {
        return Ok(Some(group_id_hex(&g.session_id)));
    }
    let Some(c) = reader.conversation(session_id)? else {
        return Ok(None);
    };
    Ok(reader.contact_by_uid(&c.contact_uid)?.map(|c| c.name))
}

impl Messaging {
    /// After a change was sent to our other devices: the outbox sends it now. After a block,
    /// the mailbox is fetched at once, so what the replicas hold for us from the blocked sender
    /// is acknowledged (dropped there) now rather than at the next poll or push (the replicas
    /// are never told whom we block: docs/protocol.md).
    pub(super) fn settings_changed(&self, blocked: bool) {
        self.inner.outbox_wake.notify_one();
        if blocked {
            self.inner.mailbox_wake.notify_one();
        }
    }

    fn emit_change(&self, conversation: String, change: &str) {
        self.emit(ApiEvent::ConversationChanged {
            conversation,
            change: change.into(),
        });
    }

    /// Gives a contact a new local name.
    pub async fn rename_contact(
        &self,
        who: &str,
        name: &str,
    ) -> Result<super::ContactView, ManageError> {
        let (who, name) = (who.to_string(), name.trim().to_string());
        let now = self.now();
        let view = self
            .with_tx(move |tx, engine| {
                let contact = contact_in(tx, &who)?;
                if tx.rename_contact(&contact.uid, &name)? {
                    engine.sync_setting(tx, &contact.uid, SettingChange::Rename(name), now)?;
                }
                let renamed = tx
                    .contact_by_uid(&contact.uid)?
                    .ok_or(ManageError::UnknownContact(who))?;
                let changed = tx.contact_key_changed(&renamed.uid)?;
                Ok::<_, ManageError>(view_of(&renamed, engine.me(), changed))
            })
            .await?;
        self.settings_changed(false);
        self.emit_change(view.name.clone(), "renamed");
        Ok(view)
    }

    /// Removes a contact with its 1:1 conversations and their history on this node (groups
    /// are not touched). Their later messages arrive as message requests.
    pub async fn remove_contact(&self, who: &str) -> Result<(), ManageError> {
        let who = who.to_string();
        let now = self.now();
        let name = self
            .with_tx(move |tx, engine| {
                let contact = contact_in(tx, &who)?;
                engine.remove_contact(tx, &contact.uid)?;
                engine.sync_setting(tx, &contact.uid, SettingChange::Remove, now)?;
                Ok::<_, ManageError>(contact.name)
            })
            .await?;
        self.settings_changed(false);
        self.emit_change(name, "removed");
        Ok(())
    }

    /// Blocks a contact (name or UID) or any UID: what they sent is refused from now on, in
    /// 1:1 conversations, message requests and mailboxes (and their group texts are not
    /// shown). Returns how many held request envelopes were dropped.
    pub async fn block(&self, who: &str) -> Result<u64, ManageError> {
        let who = who.to_string();
        let now = self.now();
        let (dropped, name) = self
            .with_tx(move |tx, engine| {
                let (uid, name) = match find_contact_in(tx, who.trim())? {
                    Some(c) => (c.uid, c.name),
                    None => {
                        let uid = who
                            .trim()
                            .parse::<Uid>()
                            .map_err(|_| ManageError::UnknownContact(who.clone()))?;
                        (*uid.as_bytes(), uid.to_string())
                    }
                };
                if uid == *engine.me().uid.as_bytes() {
                    return Err(ManageError::Ourselves);
                }
                let limits = rhizo_engine::requests::REQUEST_LIMITS;
                let dropped = tx.block_sender(&uid, &limits, now)?;
                engine.sync_setting(tx, &uid, SettingChange::Block(true), now)?;
                Ok((dropped, name))
            })
            .await?;
        self.settings_changed(true);
        self.emit_change(name, "blocked");
        Ok(dropped)
    }

    /// Lifts a block (a contact's name, or a UID).
    pub async fn unblock(&self, who: &str) -> Result<(), ManageError> {
        let who = who.to_string();
        let now = self.now();
        let name = self
            .with_tx(move |tx, engine| {
                let (uid, name) = match find_contact_in(tx, who.trim())? {
                    Some(c) => (c.uid, c.name),
                    None => match who.trim().parse::<Uid>() {
                        Ok(uid) => (*uid.as_bytes(), uid.to_string()),
                        Err(_) => return Err(ManageError::NotBlocked(who)),
                    },
                };
                if !tx.unblock_sender(&uid)? {
                    return Err(ManageError::NotBlocked(who));
                }
                engine.sync_setting(tx, &uid, SettingChange::Block(false), now)?;
                Ok(name)
            })
            .await?;
        self.settings_changed(false);
        self.emit_change(name, "unblocked");
        Ok(())
    }

    /// The conversations: every contact's and every group's (not our devices' sync group),
    /// without the archived ones unless `archived`.
    pub async fn conversations(
        &self,
        archived: bool,
    ) -> Result<Vec<ConversationView>, ManageError> {
        self.with_reader(move |reader, _| {
            let sync = rhizo_engine::sync::sync_session(reader)?;
            let named = reader
                .list_contacts()?
                .into_iter()
                .map(Named::Direct)
                .chain(
                    reader
                        .groups()?
                        .into_iter()
                        .filter(|g| sync != Some(g.session_id))
                        .map(Named::Group),
                );
            let mut out = Vec::new();
            for n in named {
                let view = n.view(reader)?;
                if archived || !view.archived {
                    out.push(view);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Sets what is given of a conversation's settings; the conversation as listed.
    pub async fn set_conversation(
        &self,
        who: &str,
        muted: Option<bool>,
        archived: Option<bool>,
    ) -> Result<ConversationView, ManageError> {
        let who = who.to_string();
        let now = self.now();
        let view = self
            .with_tx(move |tx, engine| {
                let named = conversation_in(tx, &who)?;
                let peer = named.peer();
                tx.set_conversation_settings(&peer, muted, archived, now)?;
                let changes = [
                    muted.map(SettingChange::Mute),
                    archived.map(SettingChange::Archive),
                ];
                for change in changes.into_iter().flatten() {
                    engine.sync_setting(tx, &peer, change, now)?;
                }
                named.view(tx)
            })
            .await?;
        self.settings_changed(false);
        for (flag, on, off) in [
            (muted, "muted", "unmuted"),
            (archived, "archived", "unarchived"),
        ] {
            if let Some(flag) = flag {
                self.emit_change(view.id.clone(), if flag { on } else { off });
            }
        }
        Ok(view)
    }

    /// Deletes a conversation's history on this node (the contact, or our membership of the
    /// group, stays); how many messages went.
    pub async fn delete_conversation(&self, who: &str) -> Result<usize, ManageError> {
        let who = who.to_string();
        let now = self.now();
        let (id, deleted) = self
            .with_tx(move |tx, engine| {
                let named = conversation_in(tx, &who)?;
                engine.sync_setting(tx, &named.peer(), SettingChange::ClearHistory, now)?;
                let sessions: Vec<[u8; 16]> = match &named {
                    Named::Direct(c) => tx
                        .conversations_with(&c.uid)?
                        .into_iter()
                        .map(|c| c.session_id)
                        .collect(),
                    Named::Group(g) => vec![g.session_id],
                };
                let mut deleted = 0;
                for session in &sessions {
                    deleted += tx.clear_history(session)?;
                }
                Ok::<_, ManageError>((named.id(), deleted))
            })
            .await?;
        self.settings_changed(false);
        self.emit_change(id, "deleted");
        Ok(deleted)
    }

    /// Deletes message `id` here; with `for_everyone`, also asks the conversation's other
    /// members' nodes to delete it (only a message we sent; best effort).
    pub async fn delete_message(
        &self,
        id: i64,
        for_everyone: bool,
    ) -> Result<DeletedView, ManageError> {
        let now = self.now();
        let conversation = self
            .with_tx(move |tx, engine| {
                engine.sync_message_delete(tx, id, now)?;
                if for_everyone {
                    return Ok(Some(engine.delete_for_everyone(tx, id, now)?.conversation));
                }
                let named = tx
                    .message(id)?
                    .map(|m| conversation_of(tx, &m.session_id))
                    .transpose()?
                    .flatten();
                if tx.delete_message_locally(id)? {
                    Ok(named)
                } else {
                    Err(ManageError::Engine(EngineError::UnknownMessage(id)))
                }
            })
            .await?;
        self.settings_changed(false);
        self.emit(ApiEvent::MessageDeleted {
            id,
            conversation: conversation.clone().unwrap_or_default(),
            for_everyone,
        });
        Ok(DeletedView {
            id,
            for_everyone,
            conversation,
        })
    }
}
