//! Sending: texts queued in existing conversations (many in one transaction, a savepoint each:
//! the group commit), and the first message to a contact (a new conversation from the
//! KeyPackages the driver fetched: the Welcome, then the text).

use prost::Message as _;
use rhizo_core::proto::ChatContent;
use rhizo_store::{
    Store,
    messaging::{Contact, ConversationRow, MessageRow},
};

use crate::{
    Counters, Engine, EngineError,
    contacts::find_contact,
    conversations::{create_conversation, queue_application, queue_application_tx},
    profiles::own_profile_record,
    receipts::queue_read_receipt,
};

/// What [`Engine::queue_texts`] did with one text.
#[derive(Debug)]
pub enum Queued {
    /// Queued in an existing conversation (committed).
    Message {
        /// Its row.
        row: MessageRow,
        /// The contact's name.
        contact: String,
    },
    /// The contact has no conversation yet: the first message takes its own path
    /// ([`Engine::send_first`], after the driver fetched the contact's KeyPackages).
    FirstMessage(Contact),
    /// No contact by that name or UID.
    UnknownContact,
}

impl Engine {
    /// Queues texts `(to, text)` (to: a contact's name or UID): every text whose contact has a
    /// conversation is encrypted and queued in ONE transaction (a savepoint each), so many
    /// texts share one `fsync`. One answer per text, in order; `Err` for all when the
    /// transaction failed (nothing was committed).
    ///
    /// # Errors
    ///
    /// If the database fails outside a text's savepoint.
    pub fn queue_texts(
        &self,
        store: &mut Store,
        texts: &[(String, String)],
        now: i64,
    ) -> Result<Vec<Result<Queued, EngineError>>, EngineError> {
        let mut answers: Vec<Option<Result<Queued, EngineError>>> = Vec::with_capacity(texts.len());
        let mut ready: Vec<(usize, Contact, ConversationRow, &str)> = Vec::new();
        for (i, (to, text)) in texts.iter().enumerate() {
            answers.push(match find_contact(store, to)? {
                None => Some(Ok(Queued::UnknownContact)),
                Some(contact) => match store.read().open_conversation_with(&contact.uid)? {
                    Some(session) => {
                        ready.push((i, contact, session, text));
                        None
                    }
                    None => Some(Ok(Queued::FirstMessage(contact))),
                },
            });
        }
        if !ready.is_empty() {
            let outcome = store.write(|tx| -> Result<_, EngineError> {
                let mut ids = Vec::with_capacity(ready.len());
                for (_, contact, session, text) in &ready {
                    let content = chat_content(text, now, Vec::new());
                    ids.push(tx.in_savepoint(|tx| {
                        queue_application_tx(
                            tx,
                            self,
                            contact,
                            session,
                            &content,
                            "text",
                            Some(text),
                            now,
                        )
                    })?);
                }
                Ok(ids)
            });
            self.conversations.settle(&outcome);
            let ids = outcome?;
            Counters::add(&self.counters.send_commits, 1);
            // Committed: read each row back for its answer.
            for (id, (i, contact, _, _)) in ids.into_iter().zip(&ready) {
                answers[*i] = Some(id.and_then(|id| {
                    let row = store
                        .message(id)?
                        .ok_or(EngineError::Internal("message vanished"))?;
                    Ok(Queued::Message {
                        row,
                        contact: contact.name.clone(),
                    })
                }));
            }
        }
        let queued = answers
            .iter()
            .filter(|a| matches!(a, Some(Ok(Queued::Message { .. }))))
            .count();
        Counters::add(&self.counters.grouped_sends, queued as u64);
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(EngineError::Internal("a text got no answer"))))
            .collect())
    }

    /// The first message to a contact: a new conversation with the devices whose KeyPackages
    /// the driver fetched (or the open one, if another send made it meanwhile), committed on
    /// its own. The first text carries our profile, if we set one.
    ///
    /// # Errors
    ///
    /// If MLS (e.g. a KeyPackage of a device not listed for the contact) or the database fails.
    pub fn send_first(
        &self,
        store: &mut Store,
        contact: &Contact,
        text: &str,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<MessageRow, EngineError> {
        let (session, new) = match store.read().open_conversation_with(&contact.uid)? {
            Some(row) => (row, false),
            None => (
                create_conversation(store, self, contact, key_packages, now)?,
                true,
            ),
        };
        let profile = if new {
            own_profile_record(store, &self.me)?.unwrap_or_default()
        } else {
            Vec::new()
        };
        let content = chat_content(text, now, profile);
        let id = queue_application(
            store,
            self,
            contact,
            &session,
            &content,
            "text",
            Some(text),
            now,
        )?;
        store
            .message(id)?
            .ok_or(EngineError::Internal("message vanished"))
    }

    /// Marks the received messages of every conversation with `contact` read and queues signed
    /// READ receipts naming them; whether anything was queued.
    ///
    /// # Errors
    ///
    /// If signing or the database fails.
    pub fn mark_read(
        &self,
        store: &mut Store,
        contact: &Contact,
        now: i64,
    ) -> Result<bool, EngineError> {
        let mut queued = false;
        for conv in store.read().conversations_with(&contact.uid)? {
            queued |= queue_read_receipt(store, self, contact, &conv.session_id, now)?;
        }
        Ok(queued)
    }
}

/// A chat message's plaintext.
fn chat_content(text: &str, now: i64, profile: Vec<u8>) -> Vec<u8> {
    ChatContent {
        text: text.to_string(),
        sent_at_ms: crate::ms(now),
        profile: profile.into(),
    }
    .encode_to_vec()
}
