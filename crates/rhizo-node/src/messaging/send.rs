//! Sending: texts gather in a bounded queue while a transaction waits for the disk and are
//! committed together (the engine's `queue_texts`: one `fsync` for many); the first message to
//! a contact fetches their KeyPackages from the DHT and starts a conversation (`send_first`).
//! Also the history with a contact (and its READ receipts).

use rhizo_core::{
    DevicePublicKey, Uid,
    records::{KeyPackageBundle, ValidRecord, key_packages_key, validate_record},
};
use rhizo_engine::{
    MAX_TEXT_BYTES, contacts::find_contact, publish::pick_key_package, send::Queued,
};
use rhizo_store::messaging::Contact;

use super::{ContactError, MessageView, Messaging, SendError, views::message_view};
use crate::events::ApiEvent;

/// Most texts waiting for a group commit; more are refused as busy, not queued without bound.
const MAX_PENDING_SENDS: usize = 1024;
/// Most texts in one group commit.
const SEND_GROUP: usize = 64;

/// Texts to encrypt and queue, committed together.
#[derive(Default)]
pub(super) struct SendQueue {
    jobs: Vec<SendJob>,
    /// A drain task is running (it takes jobs until the queue is empty).
    draining: bool,
}

/// One text to send (to a contact by name or UID), and where its answer goes.
struct SendJob {
    to: String,
    text: String,
    reply: tokio::sync::oneshot::Sender<Result<Grouped, SendError>>,
}

/// What the group commit did with a text.
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

    /// The first message to a contact: a new conversation (Welcome, then the text), committed
    /// on its own.
    async fn send_first(&self, contact: Contact, text: String) -> Result<MessageView, SendError> {
        let key_packages = self.fetch_key_packages(&contact).await?;
        let now = self.now();
        let name = contact.name.clone();
        let row = self
            .with_store(move |store, engine| {
                Ok::<_, SendError>(engine.send_first(store, &contact, &text, &key_packages, now)?)
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

    /// Queues a text through the group commit: the first sender to find no drain running
    /// starts one; every sender waits for its own answer, which comes only after the
    /// transaction holding its message committed (persist before acknowledge).
    async fn send_in_group(&self, to: String, text: String) -> Result<Grouped, SendError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start_drain = {
            let mut queue = self
                .inner
                .sends
                .lock()
                .map_err(|_| rhizo_engine::EngineError::Internal("send queue poisoned"))?;
            if queue.jobs.len() >= MAX_PENDING_SENDS {
                return Err(SendError::Busy(MAX_PENDING_SENDS));
            }
            queue.jobs.push(SendJob { to, text, reply });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_drain {
            // A task of its own: a caller that goes away must not strand the others' jobs.
            tokio::spawn(self.clone().drain_sends());
        }
        answer.await.map_err(|_| SendError::Stopped)?
    }

    /// Commits queued sends, up to [`SEND_GROUP`] per transaction, until none are left.
    async fn drain_sends(self) {
        loop {
            let jobs: Vec<SendJob> = {
                let Ok(mut queue) = self.inner.sends.lock() else {
                    return;
                };
                if queue.jobs.is_empty() {
                    queue.draining = false;
                    return;
                }
                let n = queue.jobs.len().min(SEND_GROUP);
                queue.jobs.drain(..n).collect()
            };
            let (work, replies): (Vec<_>, Vec<_>) =
                jobs.into_iter().map(|j| ((j.to, j.text), j.reply)).unzip();
            let now = self.now();
            let names: Vec<String> = work.iter().map(|(to, _)| to.clone()).collect();
            let results = self
                .with_engine(move |store, engine| engine.queue_texts(store, &work, now))
                .await;
            let answers = match results {
                Ok(answers) => answers,
                Err(e) => {
                    // Nothing of this group was committed: every sender hears why.
                    let e = std::sync::Arc::new(e);
                    for reply in replies {
                        let _ = reply.send(Err(SendError::NotSaved(e.clone())));
                    }
                    continue;
                }
            };
            let mut queued = false;
            for ((answer, reply), to) in answers.into_iter().zip(replies).zip(names) {
                let answer = match answer {
                    Ok(Queued::Message { row, contact }) => {
                        queued = true;
                        let view = message_view(&row);
                        self.emit(ApiEvent::MessageState {
                            id: view.id,
                            contact,
                            state: view.state.clone(),
                        });
                        Ok(Grouped::Queued(view))
                    }
                    Ok(Queued::FirstMessage(contact)) => Ok(Grouped::FirstMessage(contact)),
                    Ok(_) => Err(SendError::UnknownContact(to)),
                    Err(e) => Err(SendError::Engine(e)),
                };
                let _ = reply.send(answer);
            }
            if queued {
                self.inner.outbox_wake.notify_one();
            }
        }
    }

    /// Looks the contact's KeyPackages up in the DHT, newest valid bundle per device.
    async fn fetch_key_packages(&self, contact: &Contact) -> Result<Vec<Vec<u8>>, SendError> {
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
            let mut noise = [0u8; 8];
            getrandom::fill(&mut noise)
                .map_err(|_| rhizo_engine::EngineError::Internal("no randomness"))?;
            if let Some(bundle) = best
                && let Some(kp) = pick_key_package(&bundle, u64::from_le_bytes(noise))
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
            .with_store(move |store, engine| {
                let c = find_contact(store, &with)?
                    .ok_or_else(|| ContactError::UnknownContact(with.clone()))?;
                let queued = mark_read && engine.mark_read(store, &c, now)?;
                let mut all = Vec::new();
                for conv in store.read().conversations_with(&c.uid)? {
                    all.extend(store.read().messages(&conv.session_id, limit)?);
                }
                all.retain(|m| m.kind == "text");
                all.sort_by(|a, b| {
                    (a.sent_at, a.sender_device, a.seq).cmp(&(b.sent_at, b.sender_device, b.seq))
                });
                // The newest `limit` across the contact's conversations.
                if all.len() > limit {
                    all.drain(..all.len() - limit);
                }
                Ok::<_, ContactError>((all.iter().map(message_view).collect::<Vec<_>>(), queued))
            })
            .await?;
        if queued {
            self.inner.outbox_wake.notify_one();
        }
        Ok(views)
    }
}
