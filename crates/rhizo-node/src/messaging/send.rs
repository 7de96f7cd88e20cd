//! Sending: each text is one job of the database's group commit (the engine's `queue_text`
//! inside a [`Db::write`](rhizo_store::Db::write): one `fsync` for many); the first message to
//! a contact fetches their KeyPackages from the DHT and starts a conversation (`send_first`).
//! Also the history with a contact (and its READ receipts).

use rhizo_core::{
    DevicePublicKey, Uid,
    records::{KeyPackageBundle, ValidRecord, key_packages_key, validate_record},
};
use rhizo_engine::{MAX_TEXT_BYTES, contacts::find_contact_in, send::Queued};
use rhizo_store::messaging::Contact;

use super::{ContactError, MessageView, Messaging, SendError, views::message_view};
use crate::events::ApiEvent;

/// What queueing a text did.
enum Grouped {
    /// Queued in an existing conversation (committed).
    Queued(MessageView),
    /// The contact has no conversation yet: the first message takes its own path.
    FirstMessage(Contact),
}

impl Messaging {
    /// Queues a text message to a contact (by name or UID); returns its row.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<MessageView, SendError> {
        if text.is_empty() || text.len() > MAX_TEXT_BYTES {
            return Err(SendError::BadText {
                max: MAX_TEXT_BYTES,
            });
        }
        match self.send_in_group(to.to_string(), text.to_string()).await? {
            Grouped::Queued(view) => Ok(view),
            Grouped::FirstMessage(contact) => self.send_first(contact, text.to_string()).await,
        }
    }

    /// The first message to a contact: a new conversation (Welcome, then the text), one job
    /// of the database's group commit.
    async fn send_first(&self, contact: Contact, text: String) -> Result<MessageView, SendError> {
        let mut key_packages = self.fetch_key_packages(&contact).await?;
        // Our own other devices are leaves of the conversation too (issue 15).
        key_packages.extend(self.own_key_packages().await);
        let now = self.now();
        let name = contact.name.clone();
        let row = self
            .with_tx(move |tx, engine| {
                Ok::<_, SendError>(engine.send_first(tx, &contact, &text, &key_packages, now)?)
            })
            .await?;
        let view = message_view(&row);
        self.emit(ApiEvent::MessageState {
            id: view.id,
            contact: name,
            state: view.state.clone(),
        });
        self.inner.outbox_wake.notify_one();
        Ok(view)
    }

    /// Queues a text as one job of the database's group commit: while one group waits for the
    /// disk, the next sends (and any other writes) gather in the writer's bounded queue, so
    /// under load many texts share one `fsync`. The answer comes only after the transaction
    /// holding the message committed (persist before acknowledge).
    async fn send_in_group(&self, to: String, text: String) -> Result<Grouped, SendError> {
        let now = self.now();
        let this = self.clone();
        let name = to.clone();
        let queued = self
            .inner
            .db
            .write(move |tx| -> Result<Queued, SendError> {
                Ok(this.inner.engine.queue_text(tx, &to, &text, now)?)
            })
            .await;
        match queued? {
            Queued::Message { row, contact } => {
                let view = message_view(&row);
                self.emit(ApiEvent::MessageState {
                    id: view.id,
                    contact,
                    state: view.state.clone(),
                });
                self.inner.outbox_wake.notify_one();
                Ok(Grouped::Queued(view))
            }
            Queued::FirstMessage(contact) => Ok(Grouped::FirstMessage(contact)),
            Queued::UnknownContact => Err(SendError::UnknownContact(name)),
        }
    }

    /// Looks the contact's KeyPackages up in the DHT, newest valid bundle per device.
    pub(super) async fn fetch_key_packages(
        &self,
        contact: &Contact,
    ) -> Result<Vec<Vec<u8>>, SendError> {
        let uid = Uid::from_bytes(&contact.uid);
        let now = u64::try_from(self.inner.clock.now_secs()).unwrap_or(0);
        let mut out = Vec::new();
        for device in &contact.devices {
            let Ok(device_pk) = DevicePublicKey::from_bytes(&device.device_pk) else {
                continue;
            };
            let key = key_packages_key(&uid, &device_pk);
            let values = self
                .inner
                .client
                .get_records(key.to_vec())
                .await
                .unwrap_or_default();
            let best = values
                .iter()
                .filter_map(|v| match validate_record(&key, v, now) {
                    Ok(ValidRecord::KeyPackages(bundle)) => Some(bundle),
                    _ => None,
                })
                .filter(|b| b.device_cert().root().as_bytes() == &contact.root_pk)
                .max_by_key(KeyPackageBundle::version);
            if let Some(bundle) = best
                && let Some(kp) = self.inner.engine.choose_key_package(&bundle)
            {
                out.push(kp);
            }
        }
        if out.is_empty() {
            return Err(SendError::NoKeyPackages(contact.name.clone()));
        }
        Ok(out)
    }

    /// History with a contact, in order. With `mark_read`, received messages count as shown
    /// to the user: they become `read` and a signed READ receipt goes back to the sender.
    pub async fn history(
        &self,
        with: &str,
        limit: usize,
        mark_read: bool,
    ) -> Result<Vec<MessageView>, ContactError> {
        let with = with.to_string();
        let now = self.now();
        let (views, queued) = self
            .with_tx(move |tx, engine| {
                let c = find_contact_in(tx, &with)?
                    .ok_or_else(|| ContactError::UnknownContact(with.clone()))?;
                let queued = mark_read && engine.mark_read(tx, &c, now)?;
                let mut all = Vec::new();
                for conv in tx.conversations_with(&c.uid)? {
                    all.extend(tx.messages(&conv.session_id, limit)?);
                }
                all.retain(|m| m.kind == "text" || m.kind == "file");
                all.sort_by(|a, b| {
                    (a.sent_at, a.sender_device, a.seq).cmp(&(b.sent_at, b.sender_device, b.seq))
                });
                // The newest `limit` across the contact's conversations.
                if all.len() > limit {
                    all.drain(..all.len() - limit);
                }
                let mut views = Vec::with_capacity(all.len());
                for m in &all {
                    let mut view = message_view(m);
                    if m.kind == "file" {
                        view.file = tx.file(m.id)?.as_ref().map(super::views::FileSummary::of);
                    }
                    views.push(view);
                }
                Ok::<_, ContactError>((views, queued))
            })
            .await?;
        if queued {
            self.inner.outbox_wake.notify_one();
        }
        Ok(views)
    }
}
