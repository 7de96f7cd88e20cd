//! Applying one checked envelope inside the caller's transaction: the seen row, then the
//! Welcome, application/commit or receipt path. On `Err` the caller rolls back.

use prost::Message as _;
use rhizo_core::{
    envelope::{DeliveryReceipt, ErrorCode, MessageType, SecureMessage},
    proto::ChatContent,
};
use rhizo_e2e::{Conversation, Device, E2eStore, Processed};
use rhizo_store::{
    Tx,
    groups::GroupRow,
    messaging::{Contact, ConversationRow, NewMessage},
};
use tracing::debug;

use super::Reject;
use crate::{
    Event, Me,
    agents::health::AgentHealth,
    cache::ConversationCache,
    conversations::check_membership,
    groups::{WelcomeIn, WelcomeKind},
    profiles::accept_contact_profile,
    publish::META_KEY_PACKAGE_BUNDLE,
    receipts::apply_receipt_tx,
    rng::EngineRng,
};

/// What applying an envelope needs of the engine: our identity, MLS device, loaded
/// conversations, the remote agents' health and the generator (the nonces of what a group
/// envelope makes us send: commits, envelopes encrypted again).
pub(crate) type Parts<'a> = (
    &'a Me,
    &'a Device,
    &'a ConversationCache,
    &'a AgentHealth,
    &'a EngineRng,
);

/// Who a checked envelope comes from: a contact (1:1 conversations, Welcomes), or a member of
/// a group we are in (checked against the group's MLS roster when applied).
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// A contact's listed device.
    Contact(Contact),
    /// Another listed device of ours, in our 1:1 conversation with this contact (issue 15):
    /// what it sent there is ours ("from me").
    OwnDevice(Contact),
    /// An envelope of this group.
    Group(Box<GroupRow>),
}

/// Applies one checked envelope inside `tx`: seen-set, MLS, message rows. On `Err` the caller
/// rolls back what it changed.
pub(crate) fn apply_envelope(
    tx: &mut Tx<'_>,
    parts: Parts<'_>,
    peer: &Peer,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let ts = i64::try_from(message.timestamp).unwrap_or(i64::MAX);
    let session_id = *message.session_id.as_bytes();
    let sender_device = *message.sender_device.as_bytes();
    if !tx.seen_insert(&sender_device, &session_id, message.sequence_num, ts)? {
        return Err(Reject::Code(ErrorCode::ReplayDetected));
    }
    let (contact, from_me) = match peer {
        Peer::Contact(contact) => (contact, false),
        Peer::OwnDevice(contact) => (contact, true),
        Peer::Group(group) => return crate::groups::apply_group(tx, parts, group, message, now),
    };
    let (me, mls_device, conversations, health, rng) = parts;
    let mls = tx.mls().map_err(Reject::internal)?;
    let mut apply = Apply {
        tx,
        mls,
        me,
        mls_device,
        conversations,
        health,
        rng,
        contact,
        from_me,
        message,
        now,
    };
    match message.msg_type {
        // Our other device's receipts to the contact: the contact's state, not ours to change.
        MessageType::ReadReceipt | MessageType::DeliveryReceipt if from_me => Ok(Vec::new()),
        MessageType::Welcome => apply.welcome(&message.payload),
        MessageType::WelcomePart => apply.welcome_part(),
        MessageType::Application | MessageType::Commit => apply.mls_message(),
        MessageType::ReadReceipt | MessageType::DeliveryReceipt => apply.receipt(),
        _ => Err(Reject::Code(ErrorCode::Malformed)),
    }
}

/// One envelope being applied, with what applying it needs.
struct Apply<'a, 't> {
    tx: &'a mut Tx<'t>,
    mls: E2eStore<'t>,
    me: &'a Me,
    mls_device: &'a Device,
    conversations: &'a ConversationCache,
    health: &'a AgentHealth,
    rng: &'a EngineRng,
    contact: &'a Contact,
    /// Sent by another device of ours ([`Peer::OwnDevice`]).
    from_me: bool,
    message: &'a SecureMessage,
    now: i64,
}

impl Apply<'_, '_> {
    fn unix(&self) -> u64 {
        crate::secs(self.now)
    }

    /// A Welcome (the envelope's payload, or the whole Welcome its parts made): join the
    /// group, check its members, persist the conversation (a group's Welcome goes the group
    /// way: joined or held as a group request).
    fn welcome(&mut self, welcome: &[u8]) -> Result<Vec<Event>, Reject> {
        let message = self.message;
        let parts = (
            self.me,
            self.mls_device,
            self.conversations,
            self.health,
            self.rng,
        );
        let arrived = WelcomeIn {
            envelope: message,
            welcome,
        };
        if let WelcomeKind::Group(events) =
            crate::groups::contact_welcome(self.tx, parts, arrived, self.now)?
        {
            return Ok(events);
        }
        let conversation = Conversation::join(&self.mls, self.mls_device, welcome, self.unix())
            .map_err(|e| {
                debug!(error = %e, "a Welcome could not be joined");
                Reject::Code(ErrorCode::DecryptionFailed)
            })?;
        if let Err(refused) = check_membership(self.tx, &conversation, self.me, self.contact) {
            return Err(self.maybe_newer_devices(&conversation, refused));
        }
        self.tx.insert_conversation(&ConversationRow {
            session_id: *message.session_id.as_bytes(),
            group_id: conversation.id().to_vec(),
            contact_uid: self.contact.uid,
            created_at: self.now,
        })?;
        // A one-time KeyPackage was used: publish a fresh bundle (an empty one is none).
        self.tx.set_meta(META_KEY_PACKAGE_BUNDLE, "")?;
        self.conversations.stage(conversation);
        Ok(Vec::new())
    }

    /// A Welcome or commit refused by the membership rule: when every member we did not expect is a
    /// device of the contact's own root (e.g. one linked after we stored the contact), the
    /// driver fetches the contact's newest device list and the sender retries
    /// (`SEQUENCE_ERROR`); anything else, or once that list was fetched (within
    /// [`crate::devices::lists::FRESH_MS`]), stays refused.
    fn maybe_newer_devices(&self, conversation: &Conversation, refused: Reject) -> Reject {
        let devices = &self.conversations.device_lists;
        if devices.fresh(&self.contact.uid, self.now) {
            return refused;
        }
        let Ok(expected) = crate::conversations::expected_members(self.tx, self.me, self.contact)
        else {
            return refused;
        };
        let unexpected: Vec<_> = conversation
            .members()
            .into_iter()
            .filter(|c| !expected.contains(&(c.root(), c.device())))
            .collect();
        let contact_root = unexpected
            .iter()
            .all(|c| c.root().as_bytes() == &self.contact.root_pk);
        if unexpected.is_empty() || !contact_root {
            return refused;
        }
        devices.want(&self.contact.uid);
        Reject::Code(ErrorCode::SequenceError)
    }

    /// A piece of a Welcome too large for one envelope: written to the store until the rest
    /// arrives; the last piece takes the Welcome path with the whole Welcome (its hash
    /// checked).
    fn welcome_part(&mut self) -> Result<Vec<Event>, Reject> {
        match crate::groups::keep_part(self.tx, self.message, self.now)? {
            Some(welcome) => self.welcome(&welcome),
            None => Ok(Vec::new()),
        }
    }

    /// The conversation this envelope names, which must be with its sender.
    fn conversation_row(&self) -> Result<ConversationRow, Reject> {
        let row = self
            .tx
            .conversation(self.message.session_id.as_bytes())?
            .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
        if row.contact_uid != self.contact.uid {
            return Err(Reject::Code(ErrorCode::UnknownSender));
        }
        Ok(row)
    }

    /// An application message or commit: MLS, then a message row per text.
    fn mls_message(&mut self) -> Result<Vec<Event>, Reject> {
        let row = self.conversation_row()?;
        let mut conversation = self
            .conversations
            .load(&self.mls, &row.group_id)
            .map_err(Reject::internal)?
            .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
        let processed = conversation
            .process(
                &self.mls,
                self.mls_device,
                &self.message.payload,
                self.unix(),
            )
            .map_err(|_| Reject::Code(ErrorCode::DecryptionFailed))?;
        for p in &processed {
            match p {
                // Not acknowledged (and rolled back): the sender retries once the commit that
                // opens that epoch has been applied here.
                Processed::Deferred => return Err(Reject::Code(ErrorCode::SequenceError)),
                // Our own concurrent commit won the tie-break; the sender applies ours. A final
                // refusal, so its commit is never confirmed.
                Processed::CommitRejected { .. } => {
                    return Err(Reject::Code(ErrorCode::SessionExpired));
                }
                // Membership may have changed: only expected devices may be in it (a device of
                // the contact's own root we do not know yet: its newest device list first).
                Processed::CommitApplied { .. } => {
                    if let Err(refused) =
                        check_membership(self.tx, &conversation, self.me, self.contact)
                    {
                        return Err(self.maybe_newer_devices(&conversation, refused));
                    }
                }
                _ => {}
            }
        }
        let mut events = Vec::new();
        for p in processed {
            let Processed::Application { plaintext, sender } = p else {
                continue;
            };
            // The MLS leaf that encrypted it must be the device that signed the envelope.
            if sender.device() != self.message.sender_device {
                return Err(Reject::Code(ErrorCode::UnknownSender));
            }
            events.extend(self.chat_content(&plaintext)?);
        }
        self.conversations.stage(conversation);
        Ok(events)
    }

    /// A decrypted chat message: its profile (if any) and its text row.
    fn chat_content(&mut self, plaintext: &[u8]) -> Result<Vec<Event>, Reject> {
        let message = self.message;
        let content =
            ChatContent::decode(plaintext).map_err(|_| Reject::Code(ErrorCode::Malformed))?;
        let ts = i64::try_from(message.timestamp).unwrap_or(i64::MAX);
        let sent_at = i64::try_from(rhizo_core::seen::bounded_sent_at(
            content.sent_at_ms,
            message.timestamp,
            crate::ms(self.now),
        ))
        .unwrap_or(ts);
        // "Delete for everyone" (from the contact, or from another device of ours).
        if let Some(request) = &content.delete {
            return crate::manage::apply_direct_delete(
                self.tx,
                self.contact,
                self.from_me,
                request,
            );
        }
        // "Is typing": shown, never stored (ours from another device: nothing).
        if content.typing.is_some() {
            if self.from_me {
                return Ok(Vec::new());
            }
            return Ok(crate::typing::on_direct_typing(
                message,
                content.sent_at_ms,
                self.contact,
                self.now,
            ));
        }
        if self.from_me {
            return self.sent_elsewhere(&content.text, content.agent.is_some(), sent_at);
        }
        if !content.profile.is_empty() {
            accept_contact_profile(self.tx, self.contact, &content.profile, self.now)?;
            if content.text.is_empty() && content.agent.is_none() && content.file.is_none() {
                return Ok(Vec::new());
            }
        }
        // An agent-protocol message: never a chat row.
        if let Some(agent) = content.agent {
            let ctx = crate::agents::AgentCtx {
                me: self.me,
                contact: self.contact,
                health: self.health,
            };
            return crate::agents::apply(self.tx, &ctx, agent, self.now);
        }
        // A file message: its reference is checked before anything is stored.
        let file = crate::files::file_of(&content)?;
        let id = self.tx.insert_incoming(
            &NewMessage {
                session_id: *message.session_id.as_bytes(),
                sender_device: *message.sender_device.as_bytes(),
                seq: message.sequence_num,
                kind: if file.is_some() { "file" } else { "text" },
                body: Some(&content.text),
                sent_at,
            },
            &message.digest(),
            self.now,
        )?;
        if let (Some(id), Some(file)) = (id, &file) {
            crate::files::insert_file_row(self.tx, id, file, false, self.now)?;
        }
        let muted = self.tx.conversation_settings(&self.contact.uid)?.muted;
        Ok(id
            .map(|id| Event::MessageReceived {
                id,
                contact: self.contact.name.clone(),
                text: content.text,
                sent_at,
                muted,
            })
            .into_iter()
            .collect())
    }

    /// A text another device of ours sent in this conversation: stored as ours (outgoing),
    /// once. Our profile and agent messages it carried are not the contact's: nothing to do.
    fn sent_elsewhere(
        &mut self,
        text: &str,
        agent: bool,
        sent_at: i64,
    ) -> Result<Vec<Event>, Reject> {
        if agent || text.is_empty() {
            return Ok(Vec::new());
        }
        let message = self.message;
        let id = self.tx.insert_sent_elsewhere(
            &NewMessage {
                session_id: *message.session_id.as_bytes(),
                sender_device: *message.sender_device.as_bytes(),
                seq: message.sequence_num,
                kind: "text",
                body: Some(text),
                sent_at,
            },
            &message.digest(),
            self.now,
        )?;
        Ok(id
            .map(|id| Event::MessageState {
                id,
                contact: self.contact.name.clone(),
                state: rhizo_store::messaging::MessageState::Delivered,
            })
            .into_iter()
            .collect())
    }

    /// A delivery or read receipt for our envelopes in this conversation.
    fn receipt(&mut self) -> Result<Vec<Event>, Reject> {
        let message = self.message;
        let receipt = DeliveryReceipt::decode(&message.payload)
            .map_err(|_| Reject::Code(ErrorCode::Malformed))?;
        // Signed by the device that sent the envelope: only it can say it has ours.
        if receipt.recipient_device != message.sender_device {
            return Err(Reject::Code(ErrorCode::InvalidSignature));
        }
        receipt
            .verify(&message.sender_device)
            .map_err(|_| Reject::Code(ErrorCode::InvalidSignature))?;
        // Only for this conversation, which must be with this contact.
        self.conversation_row()?;
        let events = apply_receipt_tx(
            self.tx,
            self.me,
            self.conversations,
            self.contact,
            &receipt,
            message,
            self.now,
        )?;
        // The receipt may have confirmed our self-update: what waited for it goes out now.
        let parts = (
            self.me,
            self.mls_device,
            self.conversations,
            self.health,
            self.rng,
        );
        crate::restored::release_held(
            self.tx,
            parts.into(),
            message.session_id.as_bytes(),
            self.now,
        )
        .map_err(Reject::internal)?;
        Ok(events)
    }
}
