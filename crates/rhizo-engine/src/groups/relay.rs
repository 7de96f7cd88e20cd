//! Member-relayed group fan-out (issue 14, B10): above [`RELAY_FANOUT`] (6) other member devices the
//! sender does not upload one copy per device. It sends the same envelope bytes to at most
//! [`RELAY_FANOUT`] **relays** — member devices — each with a forwarding list (the subtree of
//! member devices it must deliver to); a relay splits its list the same way, so every device
//! uploads at most [`RELAY_FANOUT`] copies and the depth is about log_K N.
//!
//! ```text
//!  sender: other member devices (sorted), rotated per message ─▶ relay_branches: ≤ K branches
//!     ─▶ RelayFrame { forward_to = subtree, envelope } to each branch's head (a bare envelope
//!        to a head with an empty subtree)
//!  relay: decode_relay_frame ─▶ the envelope through the normal inbound path (it is a member)
//!     ─▶ check_forwarding (sender and every listed device are current members; caps)
//!     ─▶ job persisted, then acknowledged ─▶ relay_branches(forward_to) to its own children
//!  sender: RelayedSend per message ─▶ relay refused / unreachable: its subtree direct at once
//!     ─▶ relay accepted: subtree `relayed`; each device's delivery receipt ─▶ delivered
//!     ─▶ still relayed RELAY_RECEIPT_WAIT_MS after the acceptance ─▶ sent directly
//! ```
//!
//! The tree and the sender's bookkeeping are pure functions and a small state machine over
//! `now` (no store, no clock); the rules are in protocol.md §29 "Member-relayed fan-out".

use std::collections::HashSet;

mod forward;
mod send;

pub(crate) use forward::RELAY_JOB_KIND;
pub(crate) use send::{on_relays_answered, relay_transmit};

/// Most relays (and children of one relay) per group message: the sender's and every relay's
/// upload is at most this many frames. B10's target is ≤ 8 × one copy, and a relay frame is a
/// copy plus its forwarding list (32 B a device): 8 frames are over it by construction (8.8×
/// measured), 6 are under it (BENCHMARKS.md B10).
pub const RELAY_FANOUT: usize = 6;
/// Most devices one forwarding list may name (a group's MLS device cap, rhizo-e2e's
/// `MAX_GROUP_DEVICES`).
pub const MAX_RELAY_TARGETS: usize = 4096;
/// Most forwarding jobs a relay keeps for one group at a time: a sender cannot make one member
/// do unbounded work; more is refused (`RATE_LIMITED`, the sender delivers itself).
pub const MAX_RELAY_JOBS_PER_GROUP: usize = 64;
/// Most forwarding jobs a relay keeps over all its groups.
pub const MAX_RELAY_JOBS: usize = 512;
/// How long the sender waits for the delivery receipts of devices a relay accepted before it
/// sends to the ones still missing directly (one outbox retry round and a mailbox store fit).
pub const RELAY_RECEIPT_WAIT_MS: i64 = 30_000;
/// The first byte of a relay frame (a bare envelope starts with `0x08`, a batch with `0xB1`).
pub const RELAY_FRAME_MARKER: u8 = 0xB2;
/// The only relay frame version this build reads and writes.
pub const RELAY_FRAME_VERSION: u8 = 1;
/// Bytes before the device list: marker, version, flags, count (u16, big-endian).
const RELAY_HEADER_BYTES: usize = 5;
/// Flag bit: the frame comes from a relay (not from the envelope's sender), so its receiver
/// acknowledges the envelope to the sender with a delivery receipt envelope.
const FLAG_FROM_RELAY: u8 = 0x01;
/// Largest envelope a relay frame carries (the envelope bound).
const MAX_RELAYED_ENVELOPE_BYTES: usize = rhizo_core::envelope::MAX_ENVELOPE_BYTES;
/// Largest relay frame: header, a full list and the largest envelope (below the 512 KiB
/// request limit of `/rhizo/msg/1`).
pub const MAX_RELAY_FRAME_BYTES: usize =
    RELAY_HEADER_BYTES + 32 * MAX_RELAY_TARGETS + MAX_RELAYED_ENVELOPE_BYTES;

/// A member device key.
pub type DeviceId = [u8; 32];

/// One branch of the fan-out tree: a head (sent the envelope) and the devices it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayBranch {
    /// The device the envelope goes to.
    pub relay: DeviceId,
    /// The devices it must deliver to (empty: a plain delivery, no relaying).
    pub subtree: Vec<DeviceId>,
}

/// Why a relay frame or a forwarding job is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The frame is over [`MAX_RELAY_FRAME_BYTES`].
    #[error("relay frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a relay frame, or cut short.
    #[error("malformed relay frame: {0}")]
    Malformed(&'static str),
    /// A version this build does not read.
    #[error("relay frame version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// The forwarding list is empty or longer than [`MAX_RELAY_TARGETS`].
    #[error("a forwarding list of {count} devices (1 to {max} allowed)")]
    TargetCount {
        /// Devices listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Unknown flag bits, or an empty list on a frame from the envelope's sender.
    #[error("a relay frame with unknown flags or an empty forwarding list from the sender")]
    BadFlags,
    /// The list names a device twice, the sender, or the relay itself.
    #[error("the forwarding list names a device twice, the sender or the relay itself")]
    BadTarget,
    /// The envelope's sender device is not a current member device of the group.
    #[error("the relayed envelope's sender is not a current member device of the group")]
    SenderNotMember,
    /// The list names a device that is not a current member device of the group.
    #[error("the forwarding list names a device that is not a member of the group")]
    TargetNotMember,
    /// The relay's forwarding queue for the group (or over all groups) is full.
    #[error("the relay's forwarding queue is full ({queued} jobs, limit {max}); deliver directly")]
    QueueFull {
        /// Jobs queued.
        queued: usize,
        /// The limit hit.
        max: usize,
    },
}

impl RelayError {
    /// The wire code a relay answers with (the sender then delivers the subtree itself).
    pub fn code(&self) -> rhizo_core::envelope::ErrorCode {
        use rhizo_core::envelope::ErrorCode;
        match self {
            Self::TooLarge { .. } | Self::TargetCount { .. } => ErrorCode::TooLarge,
            Self::UnsupportedVersion(_) => ErrorCode::InvalidVersion,
            Self::Malformed(_) | Self::BadTarget | Self::BadFlags => ErrorCode::Malformed,
            Self::SenderNotMember => ErrorCode::UnknownSender,
            Self::TargetNotMember => ErrorCode::UnexpectedMember,
            Self::QueueFull { .. } => ErrorCode::RateLimited,
        }
    }
}

/// Whether a `/rhizo/msg/1` request is a relay frame.
pub fn is_relay_frame(request: &[u8]) -> bool {
    request.first() == Some(&RELAY_FRAME_MARKER)
}

/// A relay frame: the envelope bytes as the sender signed them, and the devices to forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFrame {
    /// Sent by a relay (not by the envelope's sender): the receiver acknowledges the envelope
    /// to its sender with a delivery receipt envelope, as for one fetched from a mailbox.
    pub from_relay: bool,
    /// Devices the relay delivers to (no repeats, at most [`MAX_RELAY_TARGETS`]; empty only
    /// on a frame from a relay: a leaf of the tree).
    pub forward_to: Vec<DeviceId>,
    /// The encoded envelope (a bare `SecureMessage`).
    pub envelope: Vec<u8>,
}

impl RelayFrame {
    /// `0xB2 ‖ version ‖ flags ‖ count (u16 BE) ‖ count × 32-byte device key ‖ envelope`.
    /// Refuses what [`RelayFrame::decode`] would refuse, so whatever it returns decodes.
    ///
    /// # Errors
    ///
    /// An empty list from the sender, a too long or repeating list, an empty or too large
    /// envelope.
    pub fn encode(&self) -> Result<Vec<u8>, RelayError> {
        check_list(&self.forward_to, self.from_relay)?;
        check_envelope(self.envelope.len())?;
        let count = u16::try_from(self.forward_to.len()).map_err(|_| RelayError::TargetCount {
            count: self.forward_to.len(),
            max: MAX_RELAY_TARGETS,
        })?;
        let mut out = Vec::with_capacity(
            RELAY_HEADER_BYTES + 32 * self.forward_to.len() + self.envelope.len(),
        );
        out.push(RELAY_FRAME_MARKER);
        out.push(RELAY_FRAME_VERSION);
        out.push(if self.from_relay { FLAG_FROM_RELAY } else { 0 });
        out.extend_from_slice(&count.to_be_bytes());
        for device in &self.forward_to {
            out.extend_from_slice(device);
        }
        out.extend_from_slice(&self.envelope);
        Ok(out)
    }

    /// Parses a relay frame: size first, then marker, version, flags, count, list and envelope
    /// size.
    ///
    /// # Errors
    ///
    /// Any of [`RelayError`]'s frame errors.
    pub fn decode(frame: &[u8]) -> Result<Self, RelayError> {
        if frame.len() > MAX_RELAY_FRAME_BYTES {
            return Err(RelayError::TooLarge {
                len: frame.len(),
                max: MAX_RELAY_FRAME_BYTES,
            });
        }
        let Some((header, rest)) = frame.split_first_chunk::<RELAY_HEADER_BYTES>() else {
            return Err(RelayError::Malformed("shorter than its header"));
        };
        let [marker, version, flags, c0, c1] = *header;
        if marker != RELAY_FRAME_MARKER {
            return Err(RelayError::Malformed("not a relay frame"));
        }
        if version != RELAY_FRAME_VERSION {
            return Err(RelayError::UnsupportedVersion(version));
        }
        if flags & !FLAG_FROM_RELAY != 0 {
            return Err(RelayError::BadFlags);
        }
        let from_relay = flags & FLAG_FROM_RELAY != 0;
        let count = usize::from(u16::from_be_bytes([c0, c1]));
        if count > MAX_RELAY_TARGETS {
            return Err(RelayError::TargetCount {
                count,
                max: MAX_RELAY_TARGETS,
            });
        }
        let Some((list, envelope)) = rest.split_at_checked(32 * count) else {
            return Err(RelayError::Malformed("the device list is cut short"));
        };
        let forward_to: Vec<DeviceId> = list
            .chunks_exact(32)
            .filter_map(|c| <DeviceId>::try_from(c).ok())
            .collect();
        check_list(&forward_to, from_relay)?;
        check_envelope(envelope.len())?;
        Ok(Self {
            from_relay,
            forward_to,
            envelope: envelope.to_vec(),
        })
    }
}

/// At most [`MAX_RELAY_TARGETS`] devices, none twice; empty only from a relay.
fn check_list(list: &[DeviceId], from_relay: bool) -> Result<(), RelayError> {
    if list.is_empty() && !from_relay {
        return Err(RelayError::BadFlags);
    }
    if list.len() > MAX_RELAY_TARGETS {
        return Err(RelayError::TargetCount {
            count: list.len(),
            max: MAX_RELAY_TARGETS,
        });
    }
    let mut seen = HashSet::with_capacity(list.len());
    if !list.iter().all(|d| seen.insert(*d)) {
        return Err(RelayError::BadTarget);
    }
    Ok(())
}

/// A non-empty envelope no larger than the envelope bound.
fn check_envelope(len: usize) -> Result<(), RelayError> {
    if len == 0 {
        return Err(RelayError::Malformed("no envelope"));
    }
    if len > MAX_RELAYED_ENVELOPE_BYTES {
        return Err(RelayError::TooLarge {
            len,
            max: MAX_RELAYED_ENVELOPE_BYTES,
        });
    }
    Ok(())
}

/// The rotation of one message's tree: its first 8 bytes (a message id or envelope digest is
/// random, so the relay load spreads over the members message by message).
pub fn rotation_of(message: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    for (slot, byte) in first.iter_mut().zip(message) {
        *slot = *byte;
    }
    u64::from_be_bytes(first)
}

/// The sender's tree over `devices` (the other member devices): sorted, rotated by `rotation`,
/// cut into at most `fanout` contiguous branches of near-equal size; each branch's first device
/// is its relay, the rest its subtree. With `fanout` or fewer devices every branch is one
/// device with an empty subtree (direct delivery). `fanout` 0 counts as 1.
pub fn sender_branches(devices: &[DeviceId], rotation: u64, fanout: usize) -> Vec<RelayBranch> {
    let mut sorted = devices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if !sorted.is_empty() {
        let shift = usize::try_from(rotation % sorted.len() as u64).unwrap_or(0);
        sorted.rotate_left(shift);
    }
    relay_branches(&sorted, fanout)
}

/// A relay's children for its forwarding list, in the list's order: the same cut as the
/// sender's (at most `fanout` branches), without sorting or rotation (the sender chose them).
pub fn relay_branches(list: &[DeviceId], fanout: usize) -> Vec<RelayBranch> {
    let fanout = fanout.max(1);
    let n = list.len();
    let branches = n.min(fanout);
    let mut out = Vec::with_capacity(branches);
    let mut start = 0;
    for b in 0..branches {
        // The first n % branches branches take one more device.
        let len = n / branches + usize::from(b < n % branches);
        let chunk = &list[start..start + len];
        start += len;
        if let Some((relay, subtree)) = chunk.split_first() {
            out.push(RelayBranch {
                relay: *relay,
                subtree: subtree.to_vec(),
            });
        }
    }
    out
}

/// What a relay knows when a relay frame comes in, to decide whether it forwards.
#[derive(Debug, Clone, Copy)]
pub struct RelayCheck<'a> {
    /// The group's current member devices (its MLS roster), ours included.
    pub members: &'a [DeviceId],
    /// The relayed envelope's sender device (from its verified signature).
    pub sender: &'a DeviceId,
    /// This relay's own device.
    pub me: &'a DeviceId,
    /// Forwarding jobs this relay holds for the group now.
    pub queued_in_group: usize,
    /// Forwarding jobs this relay holds over all groups now.
    pub queued_total: usize,
}

/// A relay's decision on `forward_to`: the sender is a current member device, every listed
/// device is one (not the sender, not the relay), and the queues have room. Checked after the
/// envelope itself was accepted by the inbound path (signature, group, epoch), before the job
/// is persisted and the frame acknowledged.
///
/// # Errors
///
/// Why it is refused ([`RelayError::code`] is the answer).
pub fn check_forwarding(check: &RelayCheck<'_>, forward_to: &[DeviceId]) -> Result<(), RelayError> {
    if forward_to.is_empty() {
        return Err(RelayError::TargetCount {
            count: 0,
            max: MAX_RELAY_TARGETS,
        });
    }
    check_list(forward_to, false)?;
    if !check.members.contains(check.sender) {
        return Err(RelayError::SenderNotMember);
    }
    if forward_to
        .iter()
        .any(|d| d == check.sender || d == check.me)
    {
        return Err(RelayError::BadTarget);
    }
    let members: HashSet<&DeviceId> = check.members.iter().collect();
    if !forward_to.iter().all(|d| members.contains(d)) {
        return Err(RelayError::TargetNotMember);
    }
    if check.queued_in_group >= MAX_RELAY_JOBS_PER_GROUP {
        return Err(RelayError::QueueFull {
            queued: check.queued_in_group,
            max: MAX_RELAY_JOBS_PER_GROUP,
        });
    }
    if check.queued_total >= MAX_RELAY_JOBS {
        return Err(RelayError::QueueFull {
            queued: check.queued_total,
            max: MAX_RELAY_JOBS,
        });
    }
    Ok(())
}

/// Where the sender is with one member device of one relayed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRoute {
    /// Not sent yet (a relay head, or a device the sender delivers itself).
    Pending,
    /// A relay accepted it at this time (unix ms); its receipt is awaited.
    Relayed {
        /// The relay that took it.
        via: DeviceId,
        /// When the relay accepted.
        at: i64,
    },
    /// To be sent by the sender itself (a relay refused, was unreachable or its wait ran out).
    Direct,
    /// Handed to the sender's own outbox (retries, batching, mailbox fallback) by
    /// [`RelayedSend::due_direct`]; its receipt is awaited.
    SentDirect,
    /// The device confirmed it (a delivery receipt).
    Delivered,
}

/// The sender's side of one relayed message: a route per member device, the relays' answers
/// and the devices' receipts in, the devices to deliver directly out (quinn-proto style: pure
/// state over `now`).
#[derive(Debug, Clone)]
pub struct RelayedSend {
    routes: Vec<(DeviceId, RelayRoute)>,
    branches: Vec<RelayBranch>,
}

impl RelayedSend {
    /// The plan for one message to `devices` (at most [`MAX_RELAY_TARGETS`] are taken, the
    /// group's cap) with `rotation` ([`rotation_of`]).
    pub fn plan(devices: &[DeviceId], rotation: u64) -> Self {
        let devices = &devices[..devices.len().min(MAX_RELAY_TARGETS)];
        let branches = sender_branches(devices, rotation, RELAY_FANOUT);
        let routes = branches
            .iter()
            .flat_map(|b| std::iter::once(b.relay).chain(b.subtree.iter().copied()))
            .map(|d| (d, RelayRoute::Pending))
            .collect();
        Self { routes, branches }
    }

    /// The frames to send now: one per branch (the head, and its subtree as forwarding list).
    pub fn branches(&self) -> &[RelayBranch] {
        &self.branches
    }

    /// Where `device` is.
    pub fn route(&self, device: &DeviceId) -> Option<RelayRoute> {
        self.routes
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, r)| *r)
    }

    /// A relay's answer to its frame: accepted (it had the envelope and persisted the job: it
    /// is delivered, its subtree relayed from `now`), or not (refused, unreachable, no answer:
    /// it and its subtree are sent directly at once).
    pub fn on_relay_answer(&mut self, relay: &DeviceId, accepted: bool, now: i64) {
        let Some(branch) = self.branches.iter().find(|b| b.relay == *relay) else {
            return;
        };
        let subtree: HashSet<DeviceId> = branch.subtree.iter().copied().collect();
        for (device, route) in &mut self.routes {
            let in_branch = subtree.contains(device);
            if *device == *relay {
                if *route == RelayRoute::Pending {
                    *route = if accepted {
                        RelayRoute::Delivered
                    } else {
                        RelayRoute::Direct
                    };
                }
            } else if in_branch && *route == RelayRoute::Pending {
                *route = if accepted {
                    RelayRoute::Relayed {
                        via: *relay,
                        at: now,
                    }
                } else {
                    RelayRoute::Direct
                };
            }
        }
    }

    /// A device's delivery receipt (through its relay's path, or a direct answer).
    pub fn on_receipt(&mut self, device: &DeviceId) {
        if let Some((_, route)) = self.routes.iter_mut().find(|(d, _)| d == device) {
            *route = RelayRoute::Delivered;
        }
    }

    /// The devices the sender delivers itself at `now` (its normal outbox: retries, batching,
    /// mailbox fallback): those marked direct, and those still relayed
    /// [`RELAY_RECEIPT_WAIT_MS`] after their relay accepted. Each is handed out once.
    pub fn due_direct(&mut self, now: i64) -> Vec<DeviceId> {
        let mut out = Vec::new();
        for (device, route) in &mut self.routes {
            let due = match *route {
                RelayRoute::Direct => true,
                RelayRoute::Relayed { at, .. } => now >= at.saturating_add(RELAY_RECEIPT_WAIT_MS),
                RelayRoute::Pending | RelayRoute::SentDirect | RelayRoute::Delivered => false,
            };
            if due {
                *route = RelayRoute::SentDirect;
                out.push(*device);
            }
        }
        out
    }

    /// When [`RelayedSend::due_direct`] has something next (the earliest relayed wait's end).
    pub fn next_deadline(&self) -> Option<i64> {
        self.routes
            .iter()
            .filter_map(|(_, r)| match r {
                RelayRoute::Relayed { at, .. } => Some(at.saturating_add(RELAY_RECEIPT_WAIT_MS)),
                _ => None,
            })
            .min()
    }

    /// `delivered k/n`.
    pub fn delivered(&self) -> (usize, usize) {
        let k = self
            .routes
            .iter()
            .filter(|(_, r)| *r == RelayRoute::Delivered)
            .count();
        (k, self.routes.len())
    }
}

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;
