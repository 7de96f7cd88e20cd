//! Envelopes fetched from a mailbox (or held as a message request and now accepted): applied
//! in conversation order inside one job of the group commit (each envelope in a savepoint of
//! its own), with a few passes so one that waits for another (a Welcome, a commit) is retried
//! once the others were applied; DELIVERED receipts are queued to the senders, and the entries
//! handled are returned for the replica's delete, which the driver sends only after the job
//! committed.

use rhizo_core::{
    envelope::{
        DeliveryReceipt, ErrorCode, MessageType, ReceiptEntry, ReceiptStatus, SecureMessage,
    },
    mailbox::FetchedEntry,
};
use rhizo_store::Tx;

use crate::{
    Engine, EngineError, Event, inbound::receive_in, receipts::queue_delivery_receipts,
    wire::error_code_of,
};

/// Passes over one fetched page: an envelope that waits for another (a Welcome, a commit) is
/// retried once the others were applied.
const FETCH_PASSES: usize = 3;

/// What [`Engine::apply_fetched`] did.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Receipt entries for what was handled (to delete from the replica).
    pub handled: Vec<ReceiptEntry>,
    /// New messages (and Welcomes, commits) applied.
    pub new: usize,
    /// What the user should see.
    pub events: Vec<Event>,
    /// Receipts were queued in the outbox (wake it).
    pub receipts_queued: bool,
}

impl Engine {
    /// Applies fetched envelopes, in conversation order, inside `tx` (see the module docs).
    /// Delete them from the replica only once `tx` committed.
    ///
    /// # Errors
    ///
    /// If queueing the receipts fails (the envelopes themselves are answered, not errors).
    pub fn apply_fetched(
        &self,
        tx: &mut Tx<'_>,
        entries: Vec<FetchedEntry>,
        now: i64,
    ) -> Result<Fetched, EngineError> {
        let mut pending: Vec<(SecureMessage, Vec<u8>)> = entries
            .into_iter()
            .filter_map(|e| {
                let m = SecureMessage::decode(&e.envelope).ok()?;
                Some((m, e.envelope.to_vec()))
            })
            .collect();
        pending.sort_by(|(a, _), (b, _)| {
            (a.session_id.as_bytes(), a.sequence_num)
                .cmp(&(b.session_id.as_bytes(), b.sequence_num))
        });
        let mut out = Fetched::default();
        let mut to_acknowledge: Vec<(SecureMessage, ReceiptEntry)> = Vec::new();
        for _ in 0..FETCH_PASSES {
            let before = pending.len();
            let mut retry = Vec::new();
            for (message, bytes) in pending {
                match self.apply_one(tx, &message, &bytes, now, &mut out) {
                    None => retry.push((message, bytes)),
                    Some(ack) => to_acknowledge.extend(ack.map(|entry| (message, entry))),
                }
            }
            pending = retry;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        // The senders learn `delivered` from a signed receipt, sent like any envelope
        // (directly, or through their own mailbox when they are offline).
        out.receipts_queued = !to_acknowledge.is_empty();
        // Failing here fails the job (rolled back whole): what it staged is dropped at once.
        self.in_job(tx, |tx| {
            queue_delivery_receipts(tx, self, to_acknowledge, now)
        })?;
        // Answers to the agent messages fetched (task updates, capability answers), in a
        // savepoint: a failure leaves them for a later flush.
        out.receipts_queued |= self.flush_agent_outbox_safely(tx, now) > 0;
        self.retry_device_adds_safely(tx, now);
        Ok(out)
    }

    /// Applies one fetched envelope: `None` to retry it (transient), else handled, with the
    /// entry to acknowledge to its sender, if any.
    fn apply_one(
        &self,
        tx: &mut Tx<'_>,
        message: &SecureMessage,
        bytes: &[u8],
        now: i64,
        out: &mut Fetched,
    ) -> Option<Option<ReceiptEntry>> {
        let r = self.receive_with(receive_in, tx, bytes, now);
        out.events.extend(r.events);
        let status = match r.status {
            Some(status) => status,
            None => match error_code_of(&r.response) {
                Some(code) if !code.is_transient() => ReceiptStatus::Rejected(code),
                _ => return None,
            },
        };
        // Transient: kept on the replica and tried again on the next fetch (until its TTL
        // ends). Held (a message request) is handled: this node keeps it now.
        if let ReceiptStatus::Rejected(code) = status
            && code.is_transient()
        {
            return None;
        }
        let entry = ReceiptEntry::for_envelope(message, status);
        out.handled.push(entry);
        let conversation_envelope = matches!(
            message.msg_type,
            MessageType::Welcome | MessageType::Application | MessageType::Commit
        );
        if status == ReceiptStatus::Delivered && conversation_envelope {
            out.new += 1;
            return Some(Some(entry));
        }
        // A Welcome refused for good: the sender learns it (signed) and closes that
        // conversation instead of sending in it forever.
        let refused_welcome = matches!(status, ReceiptStatus::Rejected(_))
            && message.msg_type == MessageType::Welcome;
        // A blocked contact's envelope: refused as it would be directly, so their node marks
        // it failed instead of sending it again (and it is never shown after an unblock).
        let refused_blocked = status == ReceiptStatus::Rejected(ErrorCode::UnknownSender)
            && conversation_envelope
            && crate::manage::blocked(tx, message.sender_id.as_bytes()).unwrap_or(false);
        Some((refused_welcome || refused_blocked).then_some(entry))
    }

    /// A signed receipt for fetched entries (what a replica deletes on).
    ///
    /// # Errors
    ///
    /// If signing fails.
    pub fn fetch_receipt(
        &self,
        entries: Vec<ReceiptEntry>,
        now: i64,
    ) -> Result<DeliveryReceipt, EngineError> {
        let mut receipt = DeliveryReceipt {
            recipient_device: self.me.device.public(),
            timestamp: crate::ms(now),
            entries,
            signature: [0; 64],
        };
        receipt.sign(&self.me.device)?;
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests;
