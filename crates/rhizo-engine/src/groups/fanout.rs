//! Group fan-out: the sender signs ONE envelope per message; the same bytes go to every member
//! device still pending (batch frames per device, the driver's Transmit machinery), and, for a
//! member none of whose devices answered, to that member's mailbox.
//!
//! ```text
//!  poll_group_transmits ─▶ per group (and recipient), in order: frames ≤ MAX_BATCH_ENVELOPES
//!     targets = every member device with a pending delivery row
//!  driver sends to each target ─▶ on_group_transmit_result(answers)
//!     valid receipt from a device ─▶ its delivery rows delivered/read/failed ─▶ k/n events
//!     members none of whose devices answered ─▶ unreachable ─▶ driver stores on their
//!     mailboxes ─▶ on_group_mailbox_result (stored: retried directly later)
//!  a text's first attempt to more than RELAY_FANOUT devices, and a relay job: relay frames
//!     per target ([`super::relay`]); a relay that accepted holds its subtree's rows
//! ```

use rhizo_core::{
    DevicePublicKey,
    envelope::{
        EnvelopeBatch, ErrorCode, MAX_BATCH_ENVELOPES, MAX_BATCH_FRAME_BYTES, ReceiptStatus,
        SecureMessage,
    },
};
use rhizo_store::{
    Reader, Tx,
    groups::{DeliveryState, GroupOutboxItem},
    messaging::{MessageState, NO_RETRY},
};

use super::{
    group_id_hex,
    relay::{RELAY_JOB_KIND, on_relays_answered, relay_transmit},
};
use crate::{
    Counters, Engine, EngineError, Event, MailboxAttempt, Outcome,
    contacts::peer_id_of_device,
    outbox::{
        DeviceAnswer, OUTBOX_BATCH, STORED_RETRY_MS, Target, outcome_of, parse_statuses,
        retry_delay,
    },
    rng::EngineRng,
};

/// One member device to send a group frame to.
#[derive(Debug, Clone)]
pub struct GroupTarget {
    /// The member's UID (for the mailbox fallback).
    pub member: [u8; 32],
    /// The device.
    pub target: Target,
}

/// One frame of a group: consecutive due envelopes of one group (and one recipient), and the
/// member devices that still lack any of them.
#[derive(Debug, Clone)]
pub struct GroupTransmit {
    /// The group's session id.
    pub session_id: [u8; 16],
    /// The outbox rows it carries, in order.
    pub items: Vec<GroupOutboxItem>,
    /// The request bytes (`/rhizo/msg/1`): a bare envelope or a batch frame.
    pub frame: Vec<u8>,
    /// The member devices to send it to.
    pub targets: Vec<GroupTarget>,
    /// The envelopes as sent, or why they could not be read back.
    pub(super) sent: Result<Vec<SecureMessage>, String>,
    /// Member-relayed fan-out: the frame for each relay head (instead of `frame`) with the
    /// subtree it forwards to; empty for a plain frame.
    pub(super) relays: Vec<RelayTarget>,
}

/// One target's own frame in member-relayed fan-out.
#[derive(Debug, Clone)]
pub(super) struct RelayTarget {
    /// The device it goes to.
    pub(super) device: [u8; 32],
    /// Its request bytes (a relay frame).
    pub(super) frame: Vec<u8>,
    /// The devices it forwards to.
    pub(super) subtree: Vec<[u8; 32]>,
}

impl GroupTransmit {
    /// The member UIDs the frame goes to (whose mailboxes get it when none of their devices
    /// answers).
    pub fn members(&self) -> Vec<[u8; 32]> {
        let mut uids: Vec<[u8; 32]> = self.targets.iter().map(|t| t.member).collect();
        uids.sort_unstable();
        uids.dedup();
        uids
    }

    /// The same envelopes, one per transmit (bare frames, in order), for those of `devices`
    /// among the targets: devices that took no batch frame (nodes older than them, which do not
    /// speak `/rhizo/msg/2`) get the envelopes one by one, directly, as in 1:1.
    pub fn singles_to(&self, devices: &[DevicePublicKey]) -> Vec<Self> {
        let targets: Vec<GroupTarget> = self
            .targets
            .iter()
            .filter(|t| devices.contains(&t.target.device))
            .cloned()
            .collect();
        self.items
            .iter()
            .map(|item| Self {
                session_id: self.session_id,
                items: vec![item.clone()],
                frame: item.envelope.clone(),
                targets: targets.clone(),
                sent: SecureMessage::decode(&item.envelope)
                    .map(|m| vec![m])
                    .map_err(|e| e.to_string()),
                relays: Vec::new(),
            })
            .collect()
    }

    /// The request bytes for `device`: its relay frame in member-relayed fan-out, else the
    /// common frame.
    pub fn frame_for(&self, device: &DevicePublicKey) -> &[u8] {
        self.relays
            .iter()
            .find(|r| r.device == *device.as_bytes())
            .map_or(&self.frame, |r| &r.frame)
    }
}

/// What [`Engine::on_group_transmit_result`] made of the answers.
#[derive(Debug, Default)]
pub struct GroupTransmitResult {
    /// State and count changes to show.
    pub events: Vec<Event>,
    /// Members none of whose devices answered with a valid receipt: the driver stores each
    /// item in their mailboxes and reports with [`Engine::on_group_mailbox_result`].
    pub unreachable: Vec<[u8; 32]>,
    /// Member-relayed fan-out: the devices of relays that did not take the message, to send
    /// to directly now (the driver delivers it like a polled transmit).
    pub fallback: Option<GroupTransmit>,
}

impl Engine {
    /// The due group envelopes at `now`, as frames per group, in order, each with the member
    /// devices that still lack one of its envelopes. Only reads.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn poll_group_transmits(
        &self,
        reader: &Reader<'_>,
        now: i64,
    ) -> Result<Vec<GroupTransmit>, EngineError> {
        let items = reader.group_outbox_due(now, OUTBOX_BATCH)?;
        let mut runs: Vec<Vec<GroupOutboxItem>> = Vec::new();
        for item in items {
            // A relay job (another member's envelope we forward) goes in a frame of its own.
            let own = |i: &GroupOutboxItem| i.kind != RELAY_JOB_KIND;
            match runs.iter_mut().find(|r| {
                r.first().is_some_and(|f| {
                    f.session_id == item.session_id
                        && f.recipient_uid == item.recipient_uid
                        && own(f)
                        && own(&item)
                })
            }) {
                Some(run) => run.push(item),
                None => runs.push(vec![item]),
            }
        }
        let mut out = Vec::new();
        for run in runs {
            for chunk in chunks(&run) {
                // A relayed item goes alone, in order: the items before it, it, the rest.
                let mut start = 0;
                for (i, item) in chunk.iter().enumerate() {
                    if let Some(relayed) = relay_transmit(reader, item, now)? {
                        if i > start {
                            out.push(group_transmit(reader, &chunk[start..i], now)?);
                        }
                        out.push(relayed);
                        start = i + 1;
                    }
                }
                if start < chunk.len() {
                    out.push(group_transmit(reader, &chunk[start..], now)?);
                }
            }
        }
        Ok(out)
    }

    /// Writes what the member devices answered to `transmit`, inside `tx`: each device's valid
    /// receipt moves its delivery rows; a message every device has is `delivered`; one some
    /// device still lacks is retried after a backoff. Members none of whose devices answered
    /// are returned for the mailbox fallback.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn on_group_transmit_result(
        &self,
        tx: &mut Tx<'_>,
        transmit: &GroupTransmit,
        answers: Vec<DeviceAnswer>,
        now: i64,
    ) -> Result<GroupTransmitResult, EngineError> {
        if transmit.items.len() > 1 {
            Counters::add(&self.counters.batches_sent, 1);
            Counters::add(
                &self.counters.batched_envelopes_sent,
                transmit.items.len() as u64,
            );
        }
        let sent = match &transmit.sent {
            Ok(sent) => sent,
            Err(why) => {
                tracing::warn!(%why, "a queued group envelope does not decode");
                return Ok(GroupTransmitResult::default());
            }
        };
        let mut answered: Vec<[u8; 32]> = Vec::new();
        let mut accepted: Vec<[u8; 32]> = Vec::new();
        let mut unreadable: Vec<i64> = Vec::new();
        let mut last_error = String::from("no member device answered");
        for (device, answer) in answers {
            match answer.and_then(|response| parse_statuses(&response, &device, sent)) {
                Ok(statuses) => {
                    unreadable.extend(record_device(tx, transmit, &device, &statuses, now)?);
                    accepted.push(*device.as_bytes());
                    if let Some(t) = transmit.targets.iter().find(|t| t.target.device == device) {
                        answered.push(t.member);
                    }
                }
                Err(e) => last_error = e,
            }
        }
        self.reseal_unreadable(tx, transmit, &unreadable, now)?;
        let fallback = on_relays_answered(tx, transmit, &accepted, now)?;
        let mut events = Vec::new();
        for item in &transmit.items {
            events.extend(settle_item(tx, &self.rng, item, &last_error, now)?);
        }
        let unreachable = transmit
            .members()
            .into_iter()
            .filter(|m| !answered.contains(m))
            .collect();
        Ok(GroupTransmitResult {
            events,
            unreachable,
            fallback,
        })
    }

    /// Texts some member device could not decrypt: encrypted again in the group's current
    /// epoch when they were made in an older one (same `message_id`: shown once); otherwise
    /// the device is on another branch of this epoch and the text stays pending there.
    fn reseal_unreadable(
        &self,
        tx: &mut Tx<'_>,
        transmit: &GroupTransmit,
        unreadable: &[i64],
        now: i64,
    ) -> Result<(), EngineError> {
        if unreadable.is_empty() {
            return Ok(());
        }
        let Some(group) = tx.group_by_session(&transmit.session_id)? else {
            return Ok(());
        };
        // Waiting to be re-added: encrypted again once we are back (their next refusal).
        let Some(mut conversation) = self.try_load_group(tx, &group)? else {
            return Ok(());
        };
        let mut done: Vec<i64> = Vec::new();
        for id in unreadable {
            if done.contains(id) {
                continue;
            }
            let Some((row, epoch)) = tx.group_resend(*id)? else {
                continue;
            };
            // Made in the current epoch: the member is on another branch of it (a fork the
            // commit ordering resolves); the same envelope is retried (or encrypted again
            // after our own rollback).
            if epoch < conversation.epoch() {
                let signer = self.signer();
                super::admin::reseal(tx, signer, &group, &mut conversation, &row, now)?;
                done.push(*id);
            }
        }
        self.conversations.stage(conversation);
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        Ok(())
    }

    /// Writes what storing `item` in `member`'s mailbox gave: held by replicas → `stored`
    /// (direct delivery is retried after [`STORED_RETRY_MS`]); otherwise it is retried with
    /// backoff.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn on_group_mailbox_result(
        &self,
        tx: &mut Tx<'_>,
        item: &GroupOutboxItem,
        member: &[u8; 32],
        attempt: &MailboxAttempt,
        now: i64,
    ) -> Result<Vec<Event>, EngineError> {
        if let Some(replicas) = attempt.stored_on {
            let next = if matches!(item.kind.as_str(), "read_receipt" | "receipt") {
                NO_RETRY
            } else {
                // Devices a relay holds are sent to directly when the hold ends, not later.
                let held = tx.next_held_delivery(item.id, now)?.unwrap_or(i64::MAX);
                (now + STORED_RETRY_MS).min(held)
            };
            tracing::debug!(
                id = item.id,
                replicas,
                member = %hex::encode(&member[..4]),
                "group member offline: envelope stored on mailbox replicas"
            );
            tx.mark_stored(item.id, replicas, next, now)?;
            return Ok(Vec::new());
        }
        let error = if attempt.quota_full {
            "a member's mailbox replicas refused it (quota full); it stays queued".to_string()
        } else {
            format!("a member is unreachable: {}", attempt.errors.join("; "))
        };
        let retry_at = now + retry_delay(&self.rng, item.attempts);
        tx.record_attempt_failed(item.id, retry_at, &error)?;
        Ok(Vec::new())
    }
}

/// Consecutive items cut into frames of at most [`MAX_BATCH_ENVELOPES`] envelopes and
/// [`MAX_BATCH_FRAME_BYTES`] bytes (a single larger envelope goes alone).
fn chunks(items: &[GroupOutboxItem]) -> Vec<&[GroupOutboxItem]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    for (i, item) in items.iter().enumerate() {
        let size = item.envelope.len() + 8;
        if i > start && (i - start >= MAX_BATCH_ENVELOPES || bytes + size > MAX_BATCH_FRAME_BYTES) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The frame for `items` and its targets: every device with a pending delivery row of any of
/// them (its peer id from the device key, addresses when it is a listed contact device).
fn group_transmit(
    reader: &Reader<'_>,
    items: &[GroupOutboxItem],
    now: i64,
) -> Result<GroupTransmit, EngineError> {
    let mut targets: Vec<GroupTarget> = Vec::new();
    for item in items {
        for (device, member) in reader.pending_deliveries_due(item.id, now)? {
            if targets
                .iter()
                .any(|t| *t.target.device.as_bytes() == device)
            {
                continue;
            }
            let Ok(key) = DevicePublicKey::from_bytes(&device) else {
                continue;
            };
            if let Some(target) = member_target(reader, key, &member)? {
                targets.push(GroupTarget { member, target });
            }
        }
    }
    let sent = items
        .iter()
        .map(|i| SecureMessage::decode(&i.envelope).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>();
    let frame = match items {
        [one] => one.envelope.clone(),
        many => EnvelopeBatch {
            envelopes: many.iter().map(|i| i.envelope.clone().into()).collect(),
        }
        .encode()?,
    };
    Ok(GroupTransmit {
        session_id: items.first().map(|i| i.session_id).unwrap_or_default(),
        items: items.to_vec(),
        frame,
        targets,
        sent,
        relays: Vec::new(),
    })
}

/// Where to send to a member's device: its peer id from the device key, its addresses when it
/// is a listed contact device. `None` when the key gives no peer id.
pub(crate) fn member_target(
    reader: &Reader<'_>,
    key: DevicePublicKey,
    member: &[u8; 32],
) -> Result<Option<Target>, EngineError> {
    let Some(peer_id) = peer_id_of_device(&key) else {
        return Ok(None);
    };
    let device = *key.as_bytes();
    let addrs = reader
        .contact_by_uid_device(member, &device)?
        .and_then(|c| c.devices.into_iter().find(|d| d.device_pk == device))
        .map(|d| d.addrs)
        .unwrap_or_default();
    Ok(Some(Target {
        device: key,
        peer_id: peer_id.to_string(),
        addrs,
    }))
}

/// One device's receipt: its delivery row of each item moves on. A text the device could not
/// decrypt (made in an epoch it no longer has) stays pending there and is returned, to be
/// encrypted again.
fn record_device(
    tx: &mut Tx<'_>,
    transmit: &GroupTransmit,
    device: &DevicePublicKey,
    statuses: &[ReceiptStatus],
    now: i64,
) -> Result<Vec<i64>, EngineError> {
    let mut unreadable = Vec::new();
    for (item, status) in transmit.items.iter().zip(statuses) {
        let is_text = matches!(item.kind.as_str(), "text" | "control");
        if is_text && *status == ReceiptStatus::Rejected(ErrorCode::DecryptionFailed) {
            unreadable.push(item.id);
            continue;
        }
        let state = match outcome_of(*status) {
            Outcome::Final(MessageState::Read, _) => DeliveryState::Read,
            Outcome::Final(MessageState::Failed, _) | Outcome::Closed(_) => DeliveryState::Failed,
            Outcome::Final(_, _) | Outcome::Held => DeliveryState::Delivered,
            Outcome::Retry(_, _) => continue,
        };
        tx.set_delivery(item.id, device.as_bytes(), state, now)?;
    }
    Ok(unreadable)
}

/// After the answers: a message no device lacks any more is delivered (or failed, when every
/// device refused it); one still pending somewhere is retried after a backoff (or, when every
/// pending device is held by a relay, when the first hold ends). A finished relay job is
/// deleted. The count event, when something changed.
fn settle_item(
    tx: &mut Tx<'_>,
    rng: &EngineRng,
    item: &GroupOutboxItem,
    why: &str,
    now: i64,
) -> Result<Vec<Event>, EngineError> {
    let counts = tx.delivery_counts(item.id)?;
    let pending = counts
        .total
        .saturating_sub(counts.delivered)
        .saturating_sub(counts.failed);
    if item.kind == RELAY_JOB_KIND && pending == 0 {
        tx.delete_relay_job(item.id)?;
        return Ok(Vec::new());
    }
    let state = if pending > 0 {
        let held = tx.next_held_delivery(item.id, now)?;
        let at = match held {
            Some(at) if tx.pending_deliveries_due(item.id, now)?.is_empty() => at,
            _ => now + retry_delay(rng, item.attempts),
        };
        tx.record_attempt_failed(item.id, at, why)?;
        if counts.delivered > 0 || item.state == MessageState::Queued {
            MessageState::Sent
        } else {
            item.state
        }
    } else if counts.delivered == 0 && counts.total > 0 {
        MessageState::Failed
    } else {
        MessageState::Delivered
    };
    let error = (state == MessageState::Failed).then_some("every member device refused it");
    let changed = tx.advance_message_state(item.id, state, now, error)?;
    // Commits, Welcomes, controls and agent rows are not in the group's message list, so
    // their counts are no event.
    if item.kind != "text" || (!changed && pending > 0 && counts.delivered == 0) {
        return Ok(Vec::new());
    }
    Ok(vec![Event::GroupMessageState {
        id: item.id,
        group: group_id_hex(&item.session_id),
        state,
        delivered: counts.delivered,
        read: counts.read,
        total: counts.total,
    }])
}
