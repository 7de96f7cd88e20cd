//! Delivery and read receipts: queued to a contact as signed receipt envelopes (READ when the
//! user saw messages, DELIVERED for what came through a mailbox), and applied when a contact's
//! receipt arrives (new states, our self-update merged, a refused conversation closed).

use rhizo_core::DevicePublicKey;
use rhizo_core::envelope::{
    DeliveryReceipt, EnvelopeId, ErrorCode, MAX_RECEIPT_ENTRIES, MessageType, ReceiptEntry,
    ReceiptStatus, SecureMessage, SessionId, envelope_digest,
};
use rhizo_store::{
    Store,
    messaging::{Contact, MessageState, NewOutgoing},
};

use crate::{
    Engine, EngineError, Event, Me, cache::ConversationCache, commits::settle_commit_tx,
    conversations::seal, inbound::Reject, outbox::close_conversation,
};

/// Marks the conversation's received messages read and queues one signed READ receipt naming
/// them (in chunks of at most [`MAX_RECEIPT_ENTRIES`]). Returns whether anything was queued.
pub(crate) fn queue_read_receipt(
    store: &mut Store,
    engine: &Engine,
    contact: &Contact,
    session_id: &[u8; 16],
    now: i64,
) -> Result<bool, EngineError> {
    store.transaction(|tx| -> Result<bool, EngineError> {
        let unread = rhizo_store::messaging::mark_read_tx(tx, session_id, MAX_RECEIPT_ENTRIES)?;
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
            &engine.me,
            contact,
            session_id,
            entries,
            MessageType::ReadReceipt,
            now,
        )?;
        Ok(true)
    })
}

/// Queues signed DELIVERED receipts for envelopes that came through a mailbox (their senders
/// had no direct answer), one receipt envelope per conversation.
pub(crate) fn queue_delivery_receipts(
    store: &mut Store,
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
        let Some(contact) = store.contact_by_uid_device(&uid, &device)? else {
            continue;
        };
        store.transaction(|tx| -> Result<(), EngineError> {
            // A Welcome refused for good left no conversation here: the refusal still goes
            // back, in a closed placeholder (nothing is ever sent in it but receipts).
            if rhizo_store::messaging::conversation_tx(tx, &session_id)?.is_none() {
                rhizo_store::requests::insert_closed_conversation_tx(
                    tx,
                    &session_id,
                    &contact.uid,
                    now,
                )?;
            }
            for chunk in entries.chunks(MAX_RECEIPT_ENTRIES) {
                queue_receipt_tx(
                    tx,
                    &engine.me,
                    &contact,
                    &session_id,
                    chunk.to_vec(),
                    MessageType::DeliveryReceipt,
                    now,
                )?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Inside a transaction: signs a receipt with `entries`, seals it as a `msg_type` envelope to
/// the contact and queues it in the outbox.
pub(crate) fn queue_receipt_tx(
    tx: &rusqlite::Connection,
    me: &Me,
    contact: &Contact,
    session_id: &[u8; 16],
    entries: Vec<ReceiptEntry>,
    msg_type: MessageType,
    now: i64,
) -> Result<(), EngineError> {
    let mut receipt = DeliveryReceipt {
        recipient_device: me.device.public(),
        timestamp: u64::try_from(now).unwrap_or(0),
        entries,
        signature: [0; 64],
    };
    receipt.sign(&me.device).map_err(EngineError::from)?;
    let seq = rhizo_store::messaging::take_next_seq_tx(tx, session_id)?;
    let envelope = seal(
        me,
        contact,
        session_id,
        seq,
        msg_type,
        receipt.encode(),
        now,
    )?;
    rhizo_store::messaging::insert_outgoing_tx(
        tx,
        &NewOutgoing {
            session_id: *session_id,
            sender_device: *me.device.public().as_bytes(),
            seq,
            kind: if msg_type == MessageType::ReadReceipt {
                "read_receipt"
            } else {
                "receipt"
            },
            body: None,
            sent_at: now,
            envelope: &envelope,
        },
        now,
    )?;
    Ok(())
}

/// Applies a contact's signed receipt (delivery or read) for our envelopes in this
/// conversation: new states; our self-update merged when its envelope is delivered or read
/// (also when the row was already delivered: an earlier path may have marked it without the
/// merge); a Welcome or any envelope refused for good with SESSION_CLOSED closes the
/// conversation, so nothing is sent into it forever.
pub(crate) fn apply_receipt_tx(
    tx: &rusqlite::Transaction<'_>,
    me: &Me,
    conversations: &ConversationCache,
    contact: &Contact,
    receipt: &DeliveryReceipt,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let mut events = Vec::new();
    for entry in receipt.entries.iter().filter(|e| {
        e.envelope.session_id == message.session_id
            && e.envelope.sender_device == me.device.public()
    }) {
        // What we sent under that id, if the receipt names its exact bytes.
        let sent_type = std::cell::Cell::new(None);
        let commit = std::cell::Cell::new(None);
        let matches = |sent: &[u8]| {
            if envelope_digest(sent) != entry.envelope_digest {
                return false;
            }
            if let Ok(m) = SecureMessage::decode(sent) {
                sent_type.set(Some(m.msg_type));
                if m.msg_type == MessageType::Commit {
                    commit.set(Some(rhizo_e2e::commit_id(&m.payload)));
                }
            }
            true
        };
        let (session, device, seq) = (
            entry.envelope.session_id.as_bytes(),
            me.device.public(),
            entry.envelope.sequence_num,
        );
        let state = match entry.status {
            ReceiptStatus::Read => MessageState::Read,
            // A receipt that came later (through a mailbox): it has our envelope.
            ReceiptStatus::Delivered | ReceiptStatus::Rejected(ErrorCode::ReplayDetected) => {
                MessageState::Delivered
            }
            // Held as a request: a Delivered receipt follows on acceptance.
            ReceiptStatus::Held => continue,
            ReceiptStatus::Rejected(code) if code.is_transient() => continue,
            ReceiptStatus::Rejected(code) => {
                let why = format!("refused by the recipient: {}", code.as_str());
                let Some(id) = rhizo_store::messaging::mark_outgoing_failed_tx(
                    tx,
                    session,
                    device.as_bytes(),
                    seq,
                    now,
                    &why,
                    matches,
                )?
                else {
                    continue;
                };
                events.push(Event::MessageState {
                    id,
                    contact: contact.name.clone(),
                    state: MessageState::Failed,
                });
                if let Some(commit_id) = commit.get() {
                    settle_commit_tx(tx, conversations, session, commit_id, MessageState::Failed)
                        .map_err(Reject::internal)?;
                }
                if sent_type.get() == Some(MessageType::Welcome) || code == ErrorCode::SessionClosed
                {
                    let mut changed = Vec::new();
                    close_conversation(tx, session, &why, now, &mut changed)
                        .map_err(Reject::internal)?;
                    events.extend(changed.into_iter().map(|(id, state)| Event::MessageState {
                        id,
                        contact: contact.name.clone(),
                        state,
                    }));
                }
                continue;
            }
        };
        let changed = if state == MessageState::Read {
            rhizo_store::messaging::mark_outgoing_read_tx(
                tx,
                session,
                device.as_bytes(),
                seq,
                now,
                matches,
            )?
        } else {
            rhizo_store::messaging::mark_outgoing_delivered_tx(
                tx,
                session,
                device.as_bytes(),
                seq,
                now,
                matches,
            )?
        };
        // Our self-update reached the peer: merge it, whether or not the row changed now.
        if let Some(commit_id) = commit.get() {
            settle_commit_tx(tx, conversations, session, commit_id, state)
                .map_err(Reject::internal)?;
        }
        if let Some(id) = changed {
            events.push(Event::MessageState {
                id,
                contact: contact.name.clone(),
                state,
            });
        }
    }
    Ok(events)
}
