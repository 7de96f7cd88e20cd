//! Sending: a text queued in an existing conversation (one job of the database's group commit,
//! so many texts — and any other writes queued meanwhile — share one `fsync`), and the first
//! message to a contact (a new conversation from the
//! KeyPackages the driver fetched: the Welcome, then the text).

use prost::Message as _;
use rhizo_core::proto::ChatContent;
use std::sync::atomic::Ordering;

use rhizo_store::{
    Tx,
    messaging::{Contact, MessageRow},
};

use crate::{
    Counters, Engine, EngineError,
    contacts::find_contact_in,
    conversations::{first_conversation, queue_application_tx},
    receipts::queue_read_receipt,
    reestablish::unpark_into,
};

/// What [`Engine::queue_text`] did with a text.
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
    /// Queues one text `to` a contact (name or UID) inside `tx`: one job of the database's
    /// group commit, which shares one `fsync` with every other write queued meanwhile (other
    /// texts, mailbox stores, …). The loaded conversation it changed is cached only once the
    /// group holding this job committed ([`Tx::after_commit`]); when the job fails, what it
    /// staged is dropped at once, so the next job of the group loads the database's state.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails (the job's savepoint is then rolled back).
    pub fn queue_text(
        &self,
        tx: &mut Tx<'_>,
        to: &str,
        text: &str,
        now: i64,
    ) -> Result<Queued, EngineError> {
        let out = self.queue_text_in(tx, to, text, now);
        if out.is_err() {
            self.conversations.discard_staged();
        }
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        if out
            .as_ref()
            .is_ok_and(|q| matches!(q, Queued::Message { .. }))
        {
            Counters::add(&self.counters.grouped_sends, 1);
            let group = tx.group();
            if group == 0 || self.counters.last_send_group.swap(group, Ordering::Relaxed) != group {
                Counters::add(&self.counters.send_commits, 1);
            }
        }
        out
    }

    fn queue_text_in(
        &self,
        tx: &mut Tx<'_>,
        to: &str,
        text: &str,
        now: i64,
    ) -> Result<Queued, EngineError> {
        let Some(contact) = find_contact_in(tx, to)? else {
            return Ok(Queued::UnknownContact);
        };
        let Some(session) = tx.open_conversation_with(&contact.uid)? else {
            return Ok(Queued::FirstMessage(contact));
        };
        // Messages parked for a new conversation (the contact started this one) go first.
        unpark_into(tx, self, &contact, &session, Vec::new(), now)?;
        let content = chat_content(text, now, Vec::new());
        let id = queue_application_tx(
            tx,
            self,
            &contact,
            &session,
            &content,
            "text",
            Some(text),
            now,
        )?;
        let row = tx
            .message(id)?
            .ok_or(EngineError::Internal("message vanished"))?;
        Ok(Queued::Message {
            row,
            contact: contact.name,
        })
    }

    /// The first message to a contact: a new conversation with the devices whose KeyPackages
    /// the driver fetched (or the open one, if another send made it meanwhile), inside `tx` (a
    /// job of the group commit). The first text carries our profile, if we set one.
    ///
    /// # Errors
    ///
    /// If MLS (e.g. a KeyPackage of a device not listed for the contact) or the database fails.
    pub fn send_first(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        text: &str,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<MessageRow, EngineError> {
        self.in_job(tx, |tx| {
            let (session, profile) = first_conversation(tx, self, contact, key_packages, now)?;
            let content = chat_content(text, now, profile);
            let id = queue_application_tx(
                tx,
                self,
                contact,
                &session,
                &content,
                "text",
                Some(text),
                now,
            )?;
            tx.message(id)?
                .ok_or(EngineError::Internal("message vanished"))
        })
    }

    /// Marks the received messages of every conversation with `contact` read and queues signed
    /// READ receipts naming them, inside `tx`; whether anything was queued.
    ///
    /// # Errors
    ///
    /// If signing or the database fails.
    pub fn mark_read(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        now: i64,
    ) -> Result<bool, EngineError> {
        let mut queued = false;
        for conv in tx.conversations_with(&contact.uid)? {
            queued |= queue_read_receipt(tx, self, contact, &conv.session_id, now)?;
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
        agent: None,
        ..ChatContent::default()
    }
    .encode_to_vec()
}
