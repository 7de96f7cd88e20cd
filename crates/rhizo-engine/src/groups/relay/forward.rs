//! The relay's side of member-relayed fan-out: a relay frame in; its envelope through the
//! normal inbound path (this device is a member too); the forwarding job checked and kept in
//! the group outbox (a row of kind `relay`, a delivery row per listed device) in the same
//! transaction as the envelope, so the answer goes back only once the job is durable.
//!
//! ```text
//!  RelayFrame ─▶ receive_in(envelope) ─▶ not accepted: that answer, nothing forwarded
//!     ─▶ from a relay and new here: DELIVERED receipt envelope queued to the sender
//!     ─▶ forward_to non-empty: check_forwarding (roster, caps) ─▶ refused: error answer
//!        ─▶ kept: outbox row `relay` ─▶ poll_group_transmits sends it on (relay frames)
//! ```

use rhizo_core::envelope::{ErrorCode, ReceiptEntry, ReceiptStatus, SecureMessage};
use rhizo_store::{
    Tx,
    groups::{GroupSend, MemberDevice},
    messaging::NewMessage,
};
use tracing::{debug, warn};

use super::{DeviceId, RelayCheck, RelayError, RelayFrame, check_forwarding};
use crate::{
    Engine, EngineError,
    groups::roster,
    inbound::{Received, receive_in},
    receipts::queue_delivery_receipts,
    wire::error_response,
};

/// The kind of a relay job's outbox row.
pub(crate) const RELAY_JOB_KIND: &str = "relay";
/// A relay job's row takes a sequence number from its own range (bit 62 set, the rest from the
/// envelope's digest), apart from our own envelopes' sequence numbers: the row is ours (our
/// device), and `(session, device, seq)` is unique.
const RELAY_SEQ_BASE: u64 = 1 << 62;

impl Engine {
    /// Handles one inbound relay frame inside `tx` (see the module docs).
    pub(crate) fn receive_relayed(&self, tx: &mut Tx<'_>, payload: &[u8], now: i64) -> Received {
        let frame = match RelayFrame::decode(payload) {
            Ok(frame) => frame,
            Err(e) => return refused(&e),
        };
        let received = self.receive_with(receive_in, tx, &frame.envelope, now);
        let fresh = received.status == Some(ReceiptStatus::Delivered);
        let again = received.status == Some(ReceiptStatus::Rejected(ErrorCode::ReplayDetected));
        let Ok(message) = SecureMessage::decode(&frame.envelope) else {
            return received;
        };
        if !(fresh || again) {
            return received;
        }
        if frame.from_relay && fresh {
            // The sender learns `delivered` from us, as for an envelope fetched from a mailbox.
            let entry = ReceiptEntry::for_envelope(&message, ReceiptStatus::Delivered);
            let queued = self.in_job(tx, |tx| {
                tx.in_savepoint(|tx| {
                    queue_delivery_receipts(tx, self, vec![(message.clone(), entry)], now)
                })
            });
            if !matches!(queued, Ok(Ok(()))) {
                warn!("queueing a delivery receipt for a relayed envelope failed");
            }
        }
        if frame.forward_to.is_empty() {
            return received;
        }
        let kept = self.group_job(tx, |tx| {
            Ok(tx.in_savepoint(|tx| self.keep_relay_job(tx, &message, &frame, now))?)
        });
        match kept {
            Ok(Ok(Ok(()))) => received,
            Ok(Ok(Err(refusal))) => {
                debug!(error = %refusal, "a relay job refused");
                Received {
                    events: received.events,
                    ..refused(&refusal)
                }
            }
            Ok(Err(e)) | Err(e) => {
                warn!(error = %e, "keeping a relay job failed");
                Received {
                    response: error_response(ErrorCode::Internal, "storage", None),
                    events: received.events,
                    status: None,
                }
            }
        }
    }

    /// Checks `frame`'s forwarding list against the group's roster and the queue caps, then
    /// keeps the job in the group outbox. `Ok(Err(_))`: refused (nothing kept).
    fn keep_relay_job(
        &self,
        tx: &mut Tx<'_>,
        message: &SecureMessage,
        frame: &RelayFrame,
        now: i64,
    ) -> Result<Result<(), RelayError>, EngineError> {
        let session_id = *message.session_id.as_bytes();
        let Some(group) = tx.group_by_session(&session_id)? else {
            return Ok(Err(RelayError::SenderNotMember));
        };
        let conversation = self.load_group(tx, &group)?;
        let members = roster(&conversation)?;
        self.conversations.stage(conversation);
        let devices: Vec<MemberDevice> = members
            .iter()
            .flat_map(|m| m.devices.iter().map(|d| (*d, m.uid)))
            .collect();
        let ids: Vec<DeviceId> = devices.iter().map(|(d, _)| *d).collect();
        let (queued_in_group, queued_total) = tx.open_relay_jobs(&session_id)?;
        let me = *self.me.device.public().as_bytes();
        let check = RelayCheck {
            members: &ids,
            sender: message.sender_device.as_bytes(),
            me: &me,
            queued_in_group,
            queued_total,
        };
        if let Err(refusal) = check_forwarding(&check, &frame.forward_to) {
            return Ok(Err(refusal));
        }
        let targets: Vec<MemberDevice> = devices
            .into_iter()
            .filter(|(d, _)| frame.forward_to.contains(d))
            .collect();
        let row = NewMessage {
            session_id,
            sender_device: me,
            seq: RELAY_SEQ_BASE | (super::rotation_of(&message.digest()) & (RELAY_SEQ_BASE - 1)),
            kind: RELAY_JOB_KIND,
            body: None,
            sent_at: now,
        };
        let send = GroupSend {
            recipient_uid: None,
            sender_uid: *message.sender_id.as_bytes(),
            message_id: None,
            devices: &targets,
            epoch: None,
        };
        tx.insert_group_outgoing(&row, &frame.envelope, &send, now)?;
        Ok(Ok(()))
    }
}

/// The answer refusing a relay frame (its envelope may have been taken; nothing forwarded).
fn refused(e: &RelayError) -> Received {
    Received {
        response: error_response(e.code(), &e.to_string(), None),
        events: Vec::new(),
        status: None,
    }
}
