//! Files and attachments (issue 16): a `file` message carries a [`FileRef`] inside MLS
//! (`ChatContent.file`, its text the caption); its row in `files` records the reference in the
//! same transaction as the message. The content never passes through the engine: the driver
//! (rhizo-node `files`) encrypts it into the content store before queueing the message, and
//! fetches a received file's content over `/rhizo/file/1` after the message is stored.
//!
//! ```text
//!  send:    driver: content store import ─▶ FileRef ─▶ queue_file (a Db job) ─▶ message row
//!           + files row (state done) ─▶ outbox, like a text
//!  receive: MLS ─▶ ChatContent.file ─▶ FileRef::from_proto (checked) ─▶ message row (kind
//!           `file`) + files row (offered; inline content kept until the driver stores it)
//! ```

use prost::Message as _;
use rhizo_core::{file::FileRef, proto::ChatContent};
use rhizo_store::{
    Tx,
    files::NewFile,
    groups::GroupStatus,
    messaging::{Contact, MessageRow},
};

use crate::{
    Engine, EngineError,
    contacts::find_contact_in,
    conversations::{first_conversation, queue_application_tx},
    groups::{GroupQueued, active_group, fanout::member_target},
    inbound::Reject,
    outbox::Target,
    reestablish::unpark_into,
    send::Queued,
};

/// A group member's device: (member UID, device key).
type MemberDevice = ([u8; 32], [u8; 32]);

/// Longest caption of a file message (its text): less than a text, so a file with inline
/// content and its caption fit in one envelope.
pub const MAX_CAPTION_BYTES: usize = 4096;

/// A file message's plaintext: the reference and the caption.
fn file_content(file: &FileRef, caption: &str, now: i64, profile: Vec<u8>) -> Vec<u8> {
    ChatContent {
        text: caption.to_string(),
        sent_at_ms: crate::ms(now),
        profile: profile.into(),
        file: Some(file.to_proto()),
        ..ChatContent::default()
    }
    .encode_to_vec()
}

/// The file reference a decrypted message carries, checked (a malformed one refuses the
/// message before anything is stored).
pub(crate) fn file_of(content: &ChatContent) -> Result<Option<FileRef>, Reject> {
    content
        .file
        .as_ref()
        .map(FileRef::from_proto)
        .transpose()
        .map_err(|_| Reject::Code(rhizo_core::envelope::ErrorCode::Malformed))
}

/// Records the file of message `message_id` in `tx`.
pub(crate) fn insert_file_row(
    tx: &mut Tx<'_>,
    message_id: i64,
    file: &FileRef,
    outgoing: bool,
    now: i64,
) -> Result<(), rhizo_store::StoreError> {
    // Received inline content waits in the row until the driver stored it (then `done`).
    let state = if outgoing { "done" } else { "offered" };
    tx.insert_file(
        &NewFile {
            message_id,
            outgoing,
            hash: &file.hash,
            key: file.key.as_bytes(),
            name: &file.name,
            size: file.size,
            mime: &file.mime,
            state,
            inline: if outgoing {
                None
            } else {
                file.inline.as_deref()
            },
        },
        now,
    )
}

impl Engine {
    /// Queues a file message `to` a contact (name or UID) inside `tx`, like
    /// [`queue_text`](Self::queue_text): the content is already in the driver's content store
    /// (or inline in `file`).
    ///
    /// # Errors
    ///
    /// If MLS or the database fails (the job's savepoint is then rolled back).
    pub fn queue_file(
        &self,
        tx: &mut Tx<'_>,
        to: &str,
        file: &FileRef,
        caption: &str,
        now: i64,
    ) -> Result<Queued, EngineError> {
        self.in_job(tx, |tx| {
            let Some(contact) = find_contact_in(tx, to)? else {
                return Ok(Queued::UnknownContact);
            };
            let Some(session) = tx.open_conversation_with(&contact.uid)? else {
                return Ok(Queued::FirstMessage(contact));
            };
            unpark_into(tx, self, &contact, &session, Vec::new(), now)?;
            let content = file_content(file, caption, now, Vec::new());
            let id = queue_application_tx(
                tx,
                self,
                &contact,
                &session,
                &content,
                "file",
                Some(caption),
                now,
            )?;
            insert_file_row(tx, id, file, true, now)?;
            let row = tx
                .message(id)?
                .ok_or(EngineError::Internal("message vanished"))?;
            Ok(Queued::Message {
                row,
                contact: contact.name,
            })
        })
    }

    /// The first message to a contact is a file: a new conversation, as
    /// [`send_first`](Self::send_first) does for a text.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails.
    pub fn send_first_file(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        file: &FileRef,
        caption: &str,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<MessageRow, EngineError> {
        self.in_job(tx, |tx| {
            let (session, profile) = first_conversation(tx, self, contact, key_packages, now)?;
            let content = file_content(file, caption, now, profile);
            let id = queue_application_tx(
                tx,
                self,
                contact,
                &session,
                &content,
                "file",
                Some(caption),
                now,
            )?;
            insert_file_row(tx, id, file, true, now)?;
            tx.message(id)?
                .ok_or(EngineError::Internal("message vanished"))
        })
    }
}

impl Engine {
    /// Queues a file message in a group (its content already in the driver's content store, or
    /// inline in `file`), like [`queue_group_text`](Self::queue_group_text).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], MLS or the database.
    pub fn queue_group_file(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        file: &FileRef,
        caption: &str,
        now: i64,
    ) -> Result<GroupQueued, EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let content = ChatContent {
                text: caption.to_string(),
                sent_at_ms: crate::ms(now),
                file: Some(file.to_proto()),
                ..ChatContent::default()
            };
            let (id, total) =
                self.queue_group_content(tx, &group, content, "file", Some(caption), now)?;
            insert_file_row(tx, id, file, true, now)?;
            let row = tx
                .message(id)?
                .ok_or(EngineError::Internal("message vanished"))?;
            Ok(GroupQueued { row, total })
        })
    }

    /// The devices that may hold a file sent in group `session_id`: every member device in
    /// its roster but this one (the sender, and members who fetched it). Empty when the group
    /// is not active here or its state is gone.
    ///
    /// # Errors
    ///
    /// MLS or the database.
    pub fn group_file_holders(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
    ) -> Result<Vec<Target>, EngineError> {
        let me = *self.me.device.public().as_bytes();
        let Some(members) = self.active_roster(tx, session_id)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (uid, device) in members {
            if device == me {
                continue;
            }
            let key = rhizo_core::DevicePublicKey::from_bytes(&device);
            if let Some(target) = key.ok().map(|k| member_target(tx, k, &uid)).transpose()? {
                out.extend(target);
            }
        }
        Ok(out)
    }

    /// Whether the member device `device` of an active group in which a message carried the
    /// file with content hash `hash` may fetch it from us (the group half of the serving
    /// rule; 1:1 conversations are checked by the store's `may_fetch`).
    ///
    /// # Errors
    ///
    /// MLS or the database.
    pub fn may_serve_group_file(
        &self,
        tx: &mut Tx<'_>,
        hash: &[u8; 32],
        device: &[u8; 32],
    ) -> Result<bool, EngineError> {
        for session_id in tx.file_groups(hash)? {
            let members = self.active_roster(tx, &session_id)?.unwrap_or_default();
            if members.iter().any(|(_, d)| d == device) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// (member UID, device) of every device in an active group's roster; `None` when the
    /// group is unknown, not active, or its MLS state is gone.
    fn active_roster(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
    ) -> Result<Option<Vec<MemberDevice>>, EngineError> {
        match self.group_info(tx, session_id) {
            Ok(info) if !info.rejoining && info.group.status == GroupStatus::Active => Ok(Some(
                info.members
                    .iter()
                    .flat_map(|m| m.devices.iter().map(|d| (m.uid, *d)))
                    .collect(),
            )),
            Ok(_) | Err(EngineError::UnknownGroup) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;
