//! Re-establishing 1:1 conversations the recipient lost (the engine's
//! [`reestablish`](rhizo_engine::reestablish)): for each contact whose parked messages are
//! due, the contact's KeyPackages are fetched again from the DHT (fresh: the first attempt
//! waits for the recipient to republish its bundle), a new conversation is made and the
//! messages move into it in order; a failed attempt is reported to the engine, which retries
//! with backoff and, after the last attempt, fails the messages with an event.

use rhizo_engine::{Event, reestablish::Reestablish};
use rhizo_store::messaging::Contact;
use tracing::{debug, warn};

use super::{JobError, Messaging};
use crate::events::ApiEvent;

impl Messaging {
    /// Starts a new conversation with each contact whose parked messages are due (one job
    /// each; the outbox pass then sends the Welcome and the messages).
    pub(super) async fn reestablish_pass(&self) -> Result<(), JobError> {
        let now = self.now();
        let due = self
            .with_reader(move |reader, engine| -> Result<_, JobError> {
                Ok(engine.due_reestablishments(reader, now)?)
            })
            .await?;
        for Reestablish {
            contact,
            needs_key_packages,
            ..
        } in due
        {
            let key_packages = if needs_key_packages {
                match self.fetch_key_packages(&contact).await {
                    Ok(kps) => kps,
                    Err(e) => {
                        self.reestablish_failed(contact, e.to_string()).await?;
                        continue;
                    }
                }
            } else {
                Vec::new()
            };
            let now = self.now();
            let job_contact = contact.clone();
            let made = self
                .with_tx(move |tx, engine| -> Result<_, JobError> {
                    Ok(engine.reestablish(tx, &job_contact, &key_packages, now)?)
                })
                .await;
            match made {
                Ok(events) => {
                    debug!("parked messages moved into a new conversation");
                    self.emit_events(events);
                    self.inner.outbox_wake.notify_one();
                }
                Err(e) => self.reestablish_failed(contact, e.to_string()).await?,
            }
        }
        Ok(())
    }

    /// One attempt at a new conversation with `contact` failed (`why`).
    async fn reestablish_failed(&self, contact: Contact, why: String) -> Result<(), JobError> {
        warn!(error = %why, "starting a new conversation for parked messages failed");
        let now = self.now();
        let events = self
            .with_tx(move |tx, engine| -> Result<_, JobError> {
                Ok(engine.reestablish_failed(tx, &contact, &why, now)?)
            })
            .await?;
        self.emit_events(events);
        Ok(())
    }
}

/// The API event for one of the engine's re-establishment events (`None` for any other).
pub(super) fn api_event(event: &Event) -> Option<ApiEvent> {
    Some(match event {
        Event::ConversationReestablishing {
            contact,
            reason,
            messages,
        } => ApiEvent::ConversationReestablishing {
            contact: contact.clone(),
            reason: reason.clone(),
            messages: *messages,
        },
        Event::ConversationReestablished { contact, messages } => {
            ApiEvent::ConversationReestablished {
                contact: contact.clone(),
                messages: *messages,
            }
        }
        Event::ConversationReestablishFailed {
            contact,
            error,
            messages,
        } => ApiEvent::ConversationReestablishFailed {
            contact: contact.clone(),
            error: error.clone(),
            messages: *messages,
        },
        _ => return None,
    })
}
