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
    messaging::{Contact, MessageRow},
};

use crate::{
    Engine, EngineError,
    contacts::find_contact_in,
    conversations::{first_conversation, queue_application_tx},
    reestablish::unpark_into,
    send::Queued,
};

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

#[cfg(test)]
mod tests;
