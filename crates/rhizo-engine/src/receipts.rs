//! Delivery and read receipts: queued to a contact as signed receipt envelopes (READ when the
//! user saw messages, DELIVERED for what came through a mailbox), and applied when a contact's
//! receipt arrives (new states, our self-update merged, a refused conversation closed).

use rhizo_core::DevicePublicKey;
use std::cell::Cell;

use rhizo_core::envelope::{
    DeliveryReceipt, EnvelopeId, ErrorCode, MAX_RECEIPT_ENTRIES, MessageType, ReceiptEntry,
    ReceiptStatus, SecureMessage, SessionId, envelope_digest,
};
use rhizo_store::{
    Tx,
    messaging::{Contact, MessageState},
};

use crate::{
    Engine, EngineError, Event, Me,
    cache::ConversationCache,
    commits::settle_commit_tx,
    conversations::{Outgoing, queue_sealed_tx},
    inbound::Reject,
    outbox::{WELCOME_NOT_OPENED, close_conversation},
    reestablish::park_or_close,
};

/// Marks the conversation's received messages read and queues one signed READ receipt naming
/// them (in chunks of at most [`MAX_RECEIPT_ENTRIES`]), in a savepoint of `tx`. Returns whether
/// anything was queued.
pub(crate) fn queue_read_receipt(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    session_id: &[u8; 16],
    now: i64,
) -> Result<bool, EngineError> {
    tx.in_savepoint(|tx| -> Result<bool, EngineError> {
        let unread = tx.mark_read(session_id, MAX_RECEIPT_ENTRIES)?;
        crate::sync::queue_read_marker(tx, engine, &crate::sync::read(session_id, &unread), now)?;
        let entries: Vec<ReceiptEntry> = unread
            .iter()
            .filter_map(|m| {
                Some(ReceiptEntry {
                    envelope: EnvelopeId {
                        sender_device: DevicePublicKey::from_bytes(&m.sender_device).ok()?,
                        session_id: SessionId::from_bytes(*session_id),
                        sequence_num: m.seq,
                    },
                    envelope_digest: m.digest,
                    status: ReceiptStatus::Read,
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(false);
        }
        queue_receipt_tx(
            tx,
            engine,
            contact,
            session_id,
            entries,
            MessageType::ReadReceipt,
            now,
        )?;
        Ok(true)
    })?
}

/// Queues signed DELIVERED receipts for envelopes that came through a mailbox (their senders
/// had no direct answer), one receipt envelope per conversation, each in a savepoint of `tx`.
pub(crate) fn queue_delivery_receipts(
    tx: &mut Tx<'_>,
    engine: &Engine,
    delivered: Vec<(SecureMessage, ReceiptEntry)>,
    now: i64,
) -> Result<(), EngineError> {
    /// (session, sender device, sender UID): one receipt envelope each.
    type Key = ([u8; 16], [u8; 32], [u8; 32]);
    let mut by_session: Vec<(Key, Vec<ReceiptEntry>)> = Vec::new();
    for (message, entry) in delivered {
        let key = (
            *message.session_id.as_bytes(),
            *message.sender_device.as_bytes(),
            *message.sender_id.as_bytes(),
        );
        match by_session.iter_mut().find(|(k, _)| *k == key) {
            Some((_, entries)) => entries.push(entry),
            None => by_session.push((key, vec![entry])),
        }
    }
    for ((session_id, device, uid), entries) in by_session {
        // A group's: to the sending device, in the group's session (members need not be
        // contacts), so its `delivered k/n` counts a member who came back through a mailbox.
        if let Some(group) = tx.group_by_session(&session_id)? {
            if group.status == rhizo_store::groups::GroupStatus::Active {
                tx.in_savepoint(|tx| -> Result<(), EngineError> {
                    for chunk in entries.chunks(MAX_RECEIPT_ENTRIES) {
                        let delivered = MessageType::DeliveryReceipt;
                        crate::groups::queue_group_receipt(
                            tx,
                            engine.signer(),
                            &group,
                            (device, uid),
                            chunk.to_vec(),
                            delivered,
                            now,
                        )?;
                    }
                    Ok(())
                })??;
            }
            continue;
        }
        let Some(contact) = tx.contact_by_uid_device(&uid, &device)? else {
            continue;
        };
        tx.in_savepoint(|tx| -> Result<(), EngineError> {
            // A Welcome refused for good left no conversation here: the refusal still goes
            // back, in a closed placeholder (nothing is ever sent in it but receipts).
            if tx.conversation(&session_id)?.is_none() {
                tx.insert_closed_conversation(&session_id, &contact.uid, now)?;
            }
            for chunk in entries.chunks(MAX_RECEIPT_ENTRIES) {
                queue_receipt_tx(
                    tx,
                    engine,
                    &contact,
                    &session_id,
                    chunk.to_vec(),
                    MessageType::DeliveryReceipt,
                    now,
                )?;
            }
            Ok(())
        })??;
    }
    Ok(())
}

/// The outbox kind of a receipt envelope of `msg_type` (READ or DELIVERY).
pub(crate) fn receipt_kind(msg_type: MessageType) -> &'static str {
    if msg_type == MessageType::ReadReceipt {
        "read_receipt"
    } else {
        "receipt"
    }
}

/// Inside a transaction: signs a receipt with `entries`, seals it as a `msg_type` envelope to
/// the contact and queues it in the outbox.
pub(crate) fn queue_receipt_tx(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    session_id: &[u8; 16],
    entries: Vec<ReceiptEntry>,
    msg_type: MessageType,
    now: i64,
) -> Result<(), EngineError> {
    let me = &engine.me;
    let mut receipt = DeliveryReceipt {
        recipient_device: me.device.public(),
        timestamp: u64::try_from(now).unwrap_or(0),
        entries,
        signature: [0; 64],
    };
    receipt.sign(&me.device).map_err(EngineError::from)?;
    let out = Outgoing {
        msg_type,
        kind: receipt_kind(msg_type),
        body: None,
        payload: receipt.encode(),
    };
    queue_sealed_tx(tx, engine, contact, session_id, out, now)?;
    Ok(())
}

/// Applies a contact's signed receipt (delivery or read) for our envelopes in this
/// conversation: new states; our self-update merged when its envelope is delivered or read
/// (also when the row was already delivered: an earlier path may have marked it without the
/// merge); a Welcome or any envelope refused for good with SESSION_CLOSED closes the
/// conversation, so nothing is sent into it forever (a Welcome the recipient could not open
/// parks what waited for a new conversation, see [`crate::reestablish`]).
pub(crate) fn apply_receipt_tx(
    tx: &mut Tx<'_>,
    me: &Me,
    conversations: &ConversationCache,
    contact: &Contact,
    receipt: &DeliveryReceipt,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let ours = me.device.public();
    let mut events = Vec::new();
    for entry in receipt
        .entries
        .iter()
        .filter(|e| e.envelope.session_id == message.session_id && e.envelope.sender_device == ours)
    {
        let mut applied = AppliedEntry {
            tx: &mut *tx,
            conversations,
            contact,
            entry,
            now,
            sent: SentMatch::default(),
        };
        events.extend(applied.apply()?);
    }
    Ok(events)
}

/// What we sent under a receipt entry's id, learnt while the store checks that the receipt
/// names its exact bytes.
#[derive(Default)]
struct SentMatch {
    msg_type: Cell<Option<MessageType>>,
    commit: Cell<Option<[u8; 32]>>,
}

/// One entry of a contact's receipt for an envelope of ours.
struct AppliedEntry<'a, 't> {
    tx: &'a mut Tx<'t>,
    conversations: &'a ConversationCache,
    contact: &'a Contact,
    entry: &'a ReceiptEntry,
    now: i64,
    sent: SentMatch,
}

impl SentMatch {
    /// Whether `sent` is the envelope `entry` names (by digest); remembers its type.
    fn matches(&self, entry: &ReceiptEntry, sent: &[u8]) -> bool {
        if envelope_digest(sent) != entry.envelope_digest {
            return false;
        }
        if let Ok(m) = SecureMessage::decode(sent) {
            self.msg_type.set(Some(m.msg_type));
            if m.msg_type == MessageType::Commit {
                self.commit.set(Some(rhizo_e2e::commit_id(&m.payload)));
            }
        }
        true
    }
}

impl AppliedEntry<'_, '_> {
    fn event(&self, id: i64, state: MessageState) -> Event {
        Event::MessageState {
            id,
            contact: self.contact.name.clone(),
            state,
        }
    }

    /// Merges (or drops) our self-update if the envelope carried one.
    fn settle_commit(&mut self, state: MessageState) -> Result<(), Reject> {
        match self.sent.commit.get() {
            Some(commit_id) => settle_commit_tx(
                self.tx,
                self.conversations,
                self.entry.envelope.session_id.as_bytes(),
                commit_id,
                state,
            )
            .map_err(Reject::internal),
            None => Ok(()),
        }
    }

    fn apply(&mut self) -> Result<Vec<Event>, Reject> {
        let entry = self.entry;
        let id = &entry.envelope;
        let (session, device, seq) = (
            id.session_id.as_bytes(),
            id.sender_device.as_bytes(),
            id.sequence_num,
        );
        let state = match entry.status {
            ReceiptStatus::Read => MessageState::Read,
            // A receipt that came later (through a mailbox): it has our envelope.
            ReceiptStatus::Delivered | ReceiptStatus::Rejected(ErrorCode::ReplayDetected) => {
                MessageState::Delivered
            }
            // Held as a request: a Delivered receipt follows on acceptance.
            ReceiptStatus::Held => return Ok(Vec::new()),
            ReceiptStatus::Rejected(code) if code.is_transient() => return Ok(Vec::new()),
            ReceiptStatus::Rejected(code) => return self.refused(code),
        };
        let sent = &self.sent;
        let matches = |bytes: &[u8]| sent.matches(entry, bytes);
        let changed = if state == MessageState::Read {
            self.tx
                .mark_outgoing_read(session, device, seq, self.now, matches)?
        } else {
            self.tx
                .mark_outgoing_delivered(session, device, seq, self.now, matches)?
        };
        // Our self-update reached the peer: merge it, whether or not the row changed now.
        self.settle_commit(state)?;
        Ok(changed
            .map(|id| self.event(id, state))
            .into_iter()
            .collect())
    }

    /// Refused for good: the row fails; a refused Welcome, or SESSION_CLOSED, closes the
    /// conversation, so nothing is sent into it forever.
    fn refused(&mut self, code: ErrorCode) -> Result<Vec<Event>, Reject> {
        let entry = self.entry;
        let id = &entry.envelope;
        let sent = &self.sent;
        let session = id.session_id.as_bytes();
        let why = format!("refused by the recipient: {}", code.as_str());
        let Some(row) = self.tx.mark_outgoing_failed(
            session,
            id.sender_device.as_bytes(),
            id.sequence_num,
            self.now,
            &why,
            |bytes: &[u8]| sent.matches(entry, bytes),
        )?
        else {
            return Ok(Vec::new());
        };
        let mut events = vec![self.event(row, MessageState::Failed)];
        self.settle_commit(MessageState::Failed)?;
        let welcome = self.sent.msg_type.get() == Some(MessageType::Welcome);
        let mut changed = Vec::new();
        if welcome && code == ErrorCode::DecryptionFailed {
            // The recipient could not open it (its KeyPackage is gone): a new conversation.
            let closing = park_or_close(
                &mut *self.tx,
                session,
                WELCOME_NOT_OPENED,
                self.now,
                &mut changed,
            )
            .map_err(Reject::internal)?;
            events.extend(changed.drain(..).map(|(id, state)| self.event(id, state)));
            events.extend(closing.event(&self.contact.name));
        } else if welcome || code == ErrorCode::SessionClosed {
            close_conversation(&mut *self.tx, session, &why, self.now, &mut changed)
                .map_err(Reject::internal)?;
            events.extend(changed.into_iter().map(|(id, state)| self.event(id, state)));
        }
        Ok(events)
    }
}
