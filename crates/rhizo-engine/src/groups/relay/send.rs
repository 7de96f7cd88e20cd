//! The sending side of member-relayed fan-out in the group outbox: which due item goes
//! through relays and with which frames, and what the relays' answers do to the delivery rows.
//!
//! ```text
//!  our text or commit, first attempt, > RELAY_FANOUT due devices ─▶ sender_branches ─▶ a
//!     relay frame per head (a bare envelope to a head without subtree); a commit's devices
//!     of members it removed get the bare envelope directly
//!  a relay job (kind `relay`), first attempt ─▶ the same, frames marked from_relay; every
//!     later attempt: a leaf frame (empty list, from_relay) to each due device
//!  answers ─▶ accepted head, ours: subtree rows held RELAY_RECEIPT_WAIT_MS (their
//!     receipts come as receipt envelopes) ─▶ then still pending: sent directly
//!           accepted head, a relay job: subtree rows delivered (handed over)
//!           head not accepted, ours: its subtree as a direct transmit at once (fallback)
//! ```

use rhizo_core::{DevicePublicKey, envelope::SecureMessage};
use rhizo_store::{
    Reader, Tx,
    groups::{DeliveryState, GroupOutboxItem},
};

use super::{
    DeviceId, RELAY_FANOUT, RELAY_JOB_KIND, RELAY_RECEIPT_WAIT_MS, RelayBranch, RelayFrame,
    rotation_of, sender_branches,
};
use crate::{
    EngineError,
    groups::{
        GroupTarget, GroupTransmit,
        fanout::{RelayTarget, member_target},
    },
};

/// Our outbox kinds whose first attempt goes through relays above [`RELAY_FANOUT`] due
/// devices: texts and commits (the same envelope bytes for every member device). Welcomes are
/// one envelope per new member (addressed to its UID), controls and receipts are small and few.
const RELAYED_KINDS: [&str; 2] = ["text", "commit"];

/// The transmit for `item` when it goes through relays (or is a relay job), else `None` (the
/// plain path: one frame to every due device).
///
/// # Errors
///
/// If the database fails.
pub(crate) fn relay_transmit(
    reader: &Reader<'_>,
    item: &GroupOutboxItem,
    now: i64,
) -> Result<Option<GroupTransmit>, EngineError> {
    let job = item.kind == RELAY_JOB_KIND;
    let first = item.attempts == 0;
    let ours = first && RELAYED_KINDS.contains(&item.kind.as_str());
    if !(job || ours) {
        return Ok(None);
    }
    let due = reader.pending_deliveries_due(item.id, now)?;
    if due.is_empty() || (!job && due.len() <= RELAY_FANOUT) {
        return Ok(None);
    }
    let Ok(message) = SecureMessage::decode(&item.envelope) else {
        return Ok(None);
    };
    // A commit's devices of members it removed get it directly (a relay, past the commit,
    // would refuse to forward to non-members); the members it keeps go through relays.
    let (devices, direct) = if item.kind == "commit" {
        let kept: Vec<[u8; 32]> = reader
            .group_members(&item.session_id)?
            .iter()
            .map(|m| m.uid)
            .collect();
        let (relayed, direct): (Vec<_>, Vec<_>) =
            due.iter().partition(|(_, member)| kept.contains(member));
        let ids = |v: Vec<&(DeviceId, [u8; 32])>| v.into_iter().map(|(d, _)| *d).collect();
        (ids(relayed), ids(direct))
    } else {
        (
            due.iter().map(|(d, _)| *d).collect::<Vec<DeviceId>>(),
            Vec::new(),
        )
    };
    let leaf = |d: &DeviceId| RelayBranch {
        relay: *d,
        subtree: Vec::new(),
    };
    let mut branches: Vec<RelayBranch> = if first && devices.len() > RELAY_FANOUT {
        sender_branches(&devices, rotation_of(&message.digest()), RELAY_FANOUT)
    } else {
        devices.iter().map(leaf).collect()
    };
    branches.extend(direct.iter().map(leaf));
    let mut targets = Vec::with_capacity(branches.len());
    let mut relays = Vec::with_capacity(branches.len());
    for branch in branches {
        let Some((_, member)) = due.iter().find(|(d, _)| *d == branch.relay) else {
            continue;
        };
        let Ok(key) = DevicePublicKey::from_bytes(&branch.relay) else {
            continue;
        };
        let Some(target) = member_target(reader, key, member)? else {
            continue;
        };
        let frame = if branch.subtree.is_empty() && !job {
            item.envelope.clone()
        } else {
            RelayFrame {
                from_relay: job,
                forward_to: branch.subtree.clone(),
                envelope: item.envelope.clone(),
            }
            .encode()
            .map_err(|_| EngineError::Internal("a relay frame does not encode"))?
        };
        targets.push(GroupTarget {
            member: *member,
            target,
        });
        relays.push(RelayTarget {
            device: branch.relay,
            frame,
            subtree: branch.subtree,
        });
    }
    Ok(Some(GroupTransmit {
        session_id: item.session_id,
        items: vec![item.clone()],
        frame: item.envelope.clone(),
        targets,
        sent: Ok(vec![message]),
        relays,
    }))
}

/// What the relay heads' answers do (`accepted`: the devices that answered with a valid
/// receipt): see the module docs. The fallback transmit for the subtrees of heads that did
/// not accept our text, if any.
///
/// # Errors
///
/// If the database fails.
pub(crate) fn on_relays_answered(
    tx: &mut Tx<'_>,
    transmit: &GroupTransmit,
    accepted: &[DeviceId],
    now: i64,
) -> Result<Option<GroupTransmit>, EngineError> {
    let Some(item) = transmit.items.first() else {
        return Ok(None);
    };
    if transmit.relays.iter().all(|r| r.subtree.is_empty()) {
        return Ok(None);
    }
    let job = item.kind == RELAY_JOB_KIND;
    let mut orphaned: Vec<DeviceId> = Vec::new();
    for relay in transmit.relays.iter().filter(|r| !r.subtree.is_empty()) {
        match (accepted.contains(&relay.device), job) {
            (true, true) => {
                for device in &relay.subtree {
                    tx.set_delivery(item.id, device, DeliveryState::Delivered, now)?;
                }
            }
            (true, false) => {
                tx.hold_deliveries(item.id, &relay.subtree, now + RELAY_RECEIPT_WAIT_MS)?;
            }
            (false, _) => orphaned.extend(relay.subtree.iter().copied()),
        }
    }
    if orphaned.is_empty() || job {
        return Ok(None);
    }
    let mut targets = Vec::with_capacity(orphaned.len());
    for (device, member) in tx.pending_deliveries_due(item.id, now)? {
        if !orphaned.contains(&device) {
            continue;
        }
        let Ok(key) = DevicePublicKey::from_bytes(&device) else {
            continue;
        };
        if let Some(target) = member_target(tx, key, &member)? {
            targets.push(GroupTarget { member, target });
        }
    }
    Ok(Some(GroupTransmit {
        relays: Vec::new(),
        targets,
        ..transmit.clone()
    }))
}
