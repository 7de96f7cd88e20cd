//! Sending a file message: the content is already in the content store (`crate::files`); the
//! message carrying its reference is queued like a text (one job of the group commit), or
//! starts the conversation (`send_first_file`).

use rhizo_core::file::FileRef;
use rhizo_engine::{files::MAX_CAPTION_BYTES, send::Queued};
use rhizo_store::messaging::Contact;

use super::{MessageView, Messaging, SendError, views::message_view};
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
