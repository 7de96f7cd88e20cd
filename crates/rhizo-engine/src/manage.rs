//! Managing contacts and conversations (issue 20): removing a contact (with its 1:1
//! conversations' MLS state), the block check on inbound envelopes, and "delete for everyone"
//! as a `ChatContent.delete` inside MLS, sent and honoured.
//!
//! ```text
//!  block: precheck ─▶ sender UID on the block list? ─▶ UNKNOWN_SENDER (final; nothing stored,
//!         no request; a mailbox entry is acknowledged to the replica and dropped)
//!         group text from a blocked member ─▶ decrypted (MLS moves on), not stored or shown
//!  delete for everyone: our text/file row ─▶ MessageDelete{message_id | sender_device, seq}
//!         ─▶ queued in the group, or in the open 1:1 conversation with the contact
//!  received MessageDelete ─▶ only the requester's own row ─▶ `deleted`, Event::MessageDeleted
//! ```

use prost::Message as _;
use rhizo_core::{
    envelope::ErrorCode,
    proto::{ChatContent, MessageDelete},
};
use rhizo_store::{
    Reader, StoreError, Tx,
    groups::GroupRow,
    messaging::{Contact, DeleteTarget},
};

use crate::{
    Engine, EngineError, Event, conversations::queue_application_tx, groups::group_id_hex,
    inbound::Reject,
};

/// What [`Engine::delete_for_everyone`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedForEveryone {
    /// The request's outbox row (it goes like any message, best effort).
    pub request_id: i64,
    /// The conversation: the contact's name, or the group's id (hex).
    pub conversation: String,
}

/// Whether envelopes from `uid` are refused (the block list, for contacts and others alike).
pub(crate) fn blocked(reader: &Reader<'_>, uid: &[u8; 32]) -> Result<bool, StoreError> {
    reader.is_blocked(uid)
}

/// Removes the contact `uid` in a savepoint: the MLS state of every 1:1 conversation with it,
/// then its rows. False if there was no such contact.
pub(crate) fn forget_contact(
    tx: &mut Tx<'_>,
    conversations: &crate::cache::ConversationCache,
    uid: &[u8; 32],
) -> Result<bool, EngineError> {
    tx.in_savepoint(|tx| {
        let mls = tx.mls()?;
        for conversation in tx.conversations_with(uid)? {
            if let Some(c) = conversations.load(&mls, &conversation.group_id)? {
                c.delete(&mls)?;
            }
        }
        Ok::<_, EngineError>(tx.remove_contact(uid)?)
    })?
}

impl Engine {
    /// Removes a contact inside `tx`: the MLS state of every 1:1 conversation with it is
    /// forgotten, then its rows go (devices, conversations, history, settings). False if there
    /// was no such contact. Later envelopes from it are message requests again.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails (nothing is changed then).
    pub fn remove_contact(&self, tx: &mut Tx<'_>, uid: &[u8; 32]) -> Result<bool, EngineError> {
        self.in_job(tx, |tx| forget_contact(tx, &self.conversations, uid))
    }

    /// "Delete for everyone" of our message `id` (a text or file we sent, in a 1:1
    /// conversation or a group), inside `tx`: a `MessageDelete` goes to the conversation's
    /// other devices, and the message is deleted here. Best effort: the peers' nodes honour it,
    /// a modified client need not.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownMessage`] (no shown message with that id),
    /// [`EngineError::NotYourMessage`] (a received one), [`EngineError::ConversationClosed`]
    /// (no open conversation with the contact), group errors, MLS or the database.
    pub fn delete_for_everyone(
        &self,
        tx: &mut Tx<'_>,
        id: i64,
        now: i64,
    ) -> Result<DeletedForEveryone, EngineError> {
        let row = tx
            .message(id)?
            .filter(|r| matches!(r.kind.as_str(), "text" | "file"))
            .ok_or(EngineError::UnknownMessage(id))?;
        if !row.outgoing {
            return Err(EngineError::NotYourMessage);
        }
        let out = if let Some(group) = tx.group_by_session(&row.session_id)? {
            let message_id = tx
                .message_group_id(id)?
                .ok_or(EngineError::Internal("a group message without an id"))?;
            let content = delete_content(
                MessageDelete {
                    message_id: message_id.to_vec().into(),
                    ..MessageDelete::default()
                },
                now,
            );
            let request_id = self.group_job(tx, |tx| {
                let group = crate::groups::active_group(tx, &group.session_id)?;
                Ok(self
                    .queue_group_content(tx, &group, content, "delete", None, now)?
                    .0)
            })?;
            DeletedForEveryone {
                request_id,
                conversation: group_id_hex(&group.session_id),
            }
        } else {
            let conversation = tx
                .conversation(&row.session_id)?
                .ok_or(EngineError::Internal("a message without its conversation"))?;
            let contact = tx
                .contact_by_uid(&conversation.contact_uid)?
                .ok_or(EngineError::Internal("a conversation without its contact"))?;
            let session = tx
                .open_conversation_with(&contact.uid)?
                .ok_or(EngineError::ConversationClosed)?;
            let request = MessageDelete {
                sender_device: row.sender_device.to_vec().into(),
                seq: row.seq,
                ..MessageDelete::default()
            };
            let content = delete_content(request, now).encode_to_vec();
            let request_id = self.in_job(tx, |tx| {
                queue_application_tx(tx, self, &contact, &session, &content, "delete", None, now)
            })?;
            DeletedForEveryone {
                request_id,
                conversation: contact.name,
            }
        };
        tx.delete_message_locally(id)?;
        Ok(out)
    }
}

fn delete_content(request: MessageDelete, now: i64) -> ChatContent {
    ChatContent {
        sent_at_ms: crate::ms(now),
        delete: Some(request),
        ..ChatContent::default()
    }
}

/// A `MessageDelete` received in a 1:1 conversation with `contact`: the contact's own message
/// (or, `from_me`, ours sent by the requesting device of ours) is deleted in any conversation
/// with it. Unknown or someone else's: nothing happens (still acknowledged).
pub(crate) fn apply_direct_delete(
    tx: &mut Tx<'_>,
    contact: &Contact,
    from_me: bool,
    request: &MessageDelete,
) -> Result<Vec<Event>, Reject> {
    let sender_device: [u8; 32] = request
        .sender_device
        .as_ref()
        .try_into()
        .map_err(|_| Reject::Code(ErrorCode::Malformed))?;
    let sessions: Vec<[u8; 16]> = tx
        .conversations_with(&contact.uid)?
        .into_iter()
        .map(|c| c.session_id)
        .collect();
    let target = DeleteTarget::Direct {
        sender_device,
        seq: request.seq,
        outgoing: from_me,
    };
    Ok(deleted_events(
        tx.delete_requested(&sessions, &target)?,
        &contact.name,
    ))
}

/// A `MessageDelete` from `sender_uid` in `group`: its own message with that id is deleted.
pub(crate) fn apply_group_delete(
    tx: &mut Tx<'_>,
    group: &GroupRow,
    sender_uid: [u8; 32],
    request: &MessageDelete,
) -> Result<Vec<Event>, Reject> {
    let message_id: [u8; 16] = request
        .message_id
        .as_ref()
        .try_into()
        .map_err(|_| Reject::Code(ErrorCode::Malformed))?;
    let target = DeleteTarget::Group {
        sender_uid,
        message_id,
    };
    let ids = tx.delete_requested(&[group.session_id], &target)?;
    Ok(deleted_events(ids, &group_id_hex(&group.session_id)))
}

fn deleted_events(ids: Vec<i64>, conversation: &str) -> Vec<Event> {
    ids.into_iter()
        .map(|id| Event::MessageDeleted {
            id,
            conversation: conversation.to_string(),
            for_everyone: true,
        })
        .collect()
}

#[cfg(test)]
mod tests;
