//! Sending a file message: the content is already in the content store (`crate::files`); the
//! message carrying its reference is queued like a text (one job of the group commit), or
//! starts the conversation (`send_first_file`).

use rhizo_core::file::FileRef;
use rhizo_engine::{files::MAX_CAPTION_BYTES, outbox::Target, send::Queued};
use rhizo_store::messaging::Contact;

use super::{GroupError, JobError, MessageView, Messaging, SendError, views::message_view};
use crate::events::ApiEvent;

impl Messaging {
    /// Queues a message carrying `file` (its content already stored) to a contact (name or
    /// UID), with `caption`; its row.
    ///
    /// # Errors
    ///
    /// A caption over [`MAX_CAPTION_BYTES`], an unknown contact, no KeyPackages for a first
    /// message, or the database / engine.
    pub async fn send_file(
        &self,
        to: &str,
        file: FileRef,
        caption: &str,
    ) -> Result<MessageView, SendError> {
        if caption.len() > MAX_CAPTION_BYTES {
            return Err(SendError::BadText {
                max: MAX_CAPTION_BYTES,
            });
        }
        let now = self.now();
        let (to, caption) = (to.to_string(), caption.to_string());
        let (f, c, name) = (file.clone(), caption.clone(), to.clone());
        let queued = self
            .with_tx(move |tx, engine| -> Result<Queued, SendError> {
                Ok(engine.queue_file(tx, &to, &f, &c, now)?)
            })
            .await?;
        match queued {
            Queued::Message { row, contact } => Ok(self.queued(&row, contact)),
            Queued::FirstMessage(contact) => self.send_first_file(contact, file, caption).await,
            Queued::UnknownContact => Err(SendError::UnknownContact(name)),
        }
    }

    fn queued(&self, row: &rhizo_store::messaging::MessageRow, contact: String) -> MessageView {
        let view = message_view(row);
        self.emit(ApiEvent::MessageState {
            id: view.id,
            contact,
            state: view.state.clone(),
        });
        self.inner.outbox_wake.notify_one();
        view
    }

    async fn send_first_file(
        &self,
        contact: Contact,
        file: FileRef,
        caption: String,
    ) -> Result<MessageView, SendError> {
        let key_packages = self.fetch_key_packages(&contact).await?;
        let now = self.now();
        let name = contact.name.clone();
        let row = self
            .with_tx(move |tx, engine| {
                Ok::<_, SendError>(engine.send_first_file(
                    tx,
                    &contact,
                    &file,
                    &caption,
                    &key_packages,
                    now,
                )?)
            })
            .await?;
        Ok(self.queued(&row, name))
    }
}

impl Messaging {
    /// Queues a message carrying `file` (its content already stored) in a group (id, id
    /// prefix or name), with `caption`; its row and the member devices it goes to.
    ///
    /// # Errors
    ///
    /// A caption over [`MAX_CAPTION_BYTES`], an unknown group, or the database / engine.
    pub async fn send_group_file(
        &self,
        group: &str,
        file: FileRef,
        caption: &str,
    ) -> Result<(MessageView, u32), GroupError> {
        if caption.len() > MAX_CAPTION_BYTES {
            return Err(GroupError::BadText {
                max: MAX_CAPTION_BYTES,
            });
        }
        let group = self.find_group(group).await?;
        let (caption, now, session_id) = (caption.to_string(), self.now(), group.session_id);
        let queued = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.queue_group_file(
                    tx,
                    &session_id,
                    &file,
                    &caption,
                    now,
                )?)
            })
            .await?;
        let view = message_view(&queued.row);
        self.emit_group_queued(&group, &view, queued.total);
        self.inner.outbox_wake.notify_one();
        Ok((view, queued.total))
    }

    /// The member devices of group `session_id` that may hold one of its files (all but
    /// this one).
    ///
    /// # Errors
    ///
    /// The database or the engine.
    pub async fn group_file_holders(&self, session_id: [u8; 16]) -> Result<Vec<Target>, JobError> {
        self.with_engine(move |tx, engine| engine.group_file_holders(tx, &session_id))
            .await
    }

    /// Whether the device `device` is a member of an active group in which a message carried
    /// the file with content hash `hash`.
    ///
    /// # Errors
    ///
    /// The database or the engine.
    pub async fn may_serve_group_file(
        &self,
        hash: [u8; 32],
        device: [u8; 32],
    ) -> Result<bool, JobError> {
        self.with_engine(move |tx, engine| engine.may_serve_group_file(tx, &hash, &device))
            .await
    }
}
