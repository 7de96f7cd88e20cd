//! Message requests: what the engine does with envelopes from someone who is not a contact.
//!
//! ```text
//!  inbound envelope ─▶ precheck: signature ok, sender not a contact ─▶ precheck_request
//!     ─▶ hold_tx (bounded, rhizo-store `requests`) ─▶ signed receipt `HELD`; event
//!        `MessageRequest` (the driver looks the sender's identity up in the DHT)
//!  accept ─▶ the held envelopes go through `apply_fetched`, oldest first ─▶ DELIVERED receipts
//! ```

use rhizo_core::envelope::{ErrorCode, MessageType, ReceiptStatus, SecureMessage};
use rhizo_store::{
    StoreError, Tx,
    requests::{HeldEnvelope, HoldOutcome, RequestLimits},
};

use crate::{
    Event, Me,
    inbound::{Precheck, Received},
    wire::receipt_response,
};

/// Bounds on held requests (per sender and in all; see [`RequestLimits`]).
pub const REQUEST_LIMITS: RequestLimits = RequestLimits::DEFAULT;

/// What precheck answers for a correctly signed envelope from a non-contact: conversation
/// envelopes are held; anything else (receipts) means nothing without a conversation. From our
/// own UID only if `own_listed` (the sending device is in our device list, issue 15: e.g. the
/// Welcome to a group our other device added us to).
pub(crate) fn precheck_request(me: &Me, message: SecureMessage, own_listed: bool) -> Precheck {
    if message.sender_id == me.uid && !own_listed {
        // Our own UID from a device our device list does not name: not a request.
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender));
    }
    match message.msg_type {
        // A piece of a Welcome: a group invitation in parts (held as a group request once
        // whole).
        MessageType::Welcome
        | MessageType::WelcomePart
        | MessageType::Application
        | MessageType::Commit => Precheck::Request(Box::new(message)),
        _ => Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender)),
    }
}

/// Inside a transaction: holds a non-contact's envelope; the receipt status to answer and the
/// event for a new request.
pub(crate) fn hold_tx(
    tx: &mut Tx<'_>,
    message: &SecureMessage,
    now: i64,
) -> Result<(ReceiptStatus, Option<Event>), StoreError> {
    let envelope = message.encode();
    let outcome = tx.hold_request(
        &HeldEnvelope {
            sender_uid: *message.sender_id.as_bytes(),
            sender_device: *message.sender_device.as_bytes(),
            session_id: *message.session_id.as_bytes(),
            seq: message.sequence_num,
            envelope: &envelope,
        },
        &REQUEST_LIMITS,
        now,
    )?;
    Ok(match outcome {
        HoldOutcome::Held { new_sender } => (
            ReceiptStatus::Held,
            new_sender.then(|| Event::MessageRequest {
                uid: message.sender_id.to_string(),
            }),
        ),
        HoldOutcome::AlreadyHeld => (ReceiptStatus::Held, None),
        HoldOutcome::Blocked => (ReceiptStatus::Rejected(ErrorCode::UnknownSender), None),
        HoldOutcome::SessionDeclined => (ReceiptStatus::Rejected(ErrorCode::SessionClosed), None),
        // Transient: nothing held is dropped to make room; the sender retries later.
        HoldOutcome::SenderFull | HoldOutcome::AllFull => {
            (ReceiptStatus::Rejected(ErrorCode::QuotaExceeded), None)
        }
    })
}

/// Holds one bare envelope from a non-contact (in a savepoint of `tx`; the receipt goes back
/// only after `tx` committed).
pub(crate) fn hold(tx: &mut Tx<'_>, me: &Me, message: &SecureMessage, now: i64) -> Received {
    match tx
        .in_savepoint(|tx| hold_tx(tx, message, now))
        .and_then(|held| held)
    {
        Ok((status, event)) => Received {
            response: receipt_response(me, &[(message, status)], now),
            events: event.into_iter().collect(),
            status: Some(status),
        },
        Err(e) => {
            tracing::warn!(error = %e, "holding a message request failed");
            let status = ReceiptStatus::Rejected(ErrorCode::Internal);
            Received {
                response: receipt_response(me, &[(message, status)], now),
                events: Vec::new(),
                status: Some(status),
            }
        }
    }
}
