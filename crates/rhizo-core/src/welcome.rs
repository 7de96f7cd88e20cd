//! Welcomes larger than one envelope: the [`WelcomePart`] codec (`proto/envelope.proto`,
//! `MESSAGE_TYPE_WELCOME_PART`), [`split_welcome`] for the sender, the bounded in-memory
//! [`WelcomeReassembler`] for the receiver and [`join_parts`] (the hash check every reassembly
//! ends with). The node keeps the pieces in its store instead (rhizo-store `welcome_parts`,
//! under the same bounds), so a piece it acknowledged survives a restart.
//!
//! An MLS Welcome carries the group's whole ratchet tree (rhizo uses the ratchet-tree
//! extension), about 1.5 KiB per member device with X-Wing keys, plus one encrypted group
//! secret per added device: 180 KB at 64 devices, 2.7 MB at 1,000. A Welcome that fits one
//! envelope payload ([`MAX_PAYLOAD_BYTES`]) is sent whole as `MESSAGE_TYPE_WELCOME`, exactly as
//! before (1:1 conversations never need more). A larger one is cut into consecutive pieces of
//! at most [`MAX_PART_BYTES`], each in its own signed envelope to the new member. The receiver
//! keeps the pieces of each `(sender, welcome_id)` until all have arrived, joins them, checks
//! SHA-256 against `welcome_id`, and only then hands the Welcome to MLS.
//!
//! Every input is bounded: [`MAX_WELCOME_PARTS`] pieces, [`MAX_WELCOME_BYTES`] in all,
//! [`MAX_PENDING_PER_SENDER`] unfinished Welcomes per sender, [`MAX_PENDING_WELCOMES`] and
//! [`MAX_PENDING_BYTES`] per node (the oldest unfinished one is dropped to make room) and
//! [`WELCOME_PART_TTL_SECS`] for an unfinished one.

use std::collections::BTreeMap;

use prost::Message as _;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::Uid;
use crate::envelope::MAX_PAYLOAD_BYTES;
use crate::proto;

/// Largest piece of a Welcome in one [`WelcomePart`]: an envelope payload less room for the
/// part's own fields (id, index, count, tags and lengths: under 64 bytes).
pub const MAX_PART_BYTES: usize = MAX_PAYLOAD_BYTES - 1024;

/// Most pieces of one Welcome.
pub const MAX_WELCOME_PARTS: usize = 64;

/// Largest Welcome, whole or reassembled: [`MAX_WELCOME_PARTS`] full pieces (about 15.9 MiB;
/// a Welcome to a group of 4,096 devices is about 11 MiB).
pub const MAX_WELCOME_BYTES: usize = MAX_WELCOME_PARTS * MAX_PART_BYTES;

/// Largest encoded [`WelcomePart`].
pub const MAX_WELCOME_PART_BYTES: usize = MAX_PAYLOAD_BYTES;

/// Unfinished Welcomes kept per sender UID; a further one is refused.
pub const MAX_PENDING_PER_SENDER: usize = 2;

/// Unfinished Welcomes kept per node; beyond it the oldest is dropped.
pub const MAX_PENDING_WELCOMES: usize = 8;

/// Bytes of unfinished Welcomes kept per node; beyond it the oldest are dropped.
pub const MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;

/// An unfinished Welcome is dropped this long after its first piece arrived (the pieces are
/// sent together, directly or to the same mailbox).
pub const WELCOME_PART_TTL_SECS: u64 = 24 * 60 * 60;

/// Length of a Welcome id (SHA-256).
pub const WELCOME_ID_LEN: usize = 32;

/// Error from the Welcome-part codec or reassembly.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WelcomePartError {
    /// The input is larger than its limit.
    #[error("welcome {what} too large: {len} bytes, at most {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a protobuf `WelcomePart`.
    #[error("malformed welcome part: {0}")]
    Decode(String),
    /// Valid protobuf, but not the one canonical encoding.
    #[error("malformed welcome part: valid protobuf but not in canonical form")]
    NonCanonical,
    /// `welcome_id` is not 32 bytes.
    #[error("welcome part id must be {WELCOME_ID_LEN} bytes, got {0}")]
    IdLength(usize),
    /// `count` outside 2..=[`MAX_WELCOME_PARTS`] or `index` not below it.
    #[error("welcome part {index} of {count} is out of range (2..={MAX_WELCOME_PARTS} parts)")]
    BadIndex {
        /// The part's index.
        index: u32,
        /// The part's count.
        count: u32,
    },
    /// A part without data.
    #[error("welcome part without data")]
    EmptyData,
    /// A part whose count differs from the earlier parts of the same Welcome; the unfinished
    /// Welcome is dropped.
    #[error("welcome part says {got} parts, earlier parts said {expected}; dropped")]
    CountMismatch {
        /// The count of the first part.
        expected: u32,
        /// This part's count.
        got: u32,
    },
    /// The same index again with different data; the unfinished Welcome is dropped.
    #[error("welcome part {0} arrived twice with different data; dropped")]
    Conflict(u32),
    /// The joined pieces do not hash to `welcome_id`; dropped.
    #[error("reassembled welcome does not match its id; dropped")]
    HashMismatch,
    /// The sender already has [`MAX_PENDING_PER_SENDER`] unfinished Welcomes.
    #[error("too many unfinished welcomes from this sender (at most {MAX_PENDING_PER_SENDER})")]
    TooManyPending,
    /// The Welcome fits one envelope and must be sent whole.
    #[error("a welcome of {0} bytes fits one envelope; send it whole")]
    FitsOneEnvelope(usize),
}

/// One piece of a Welcome too large for one envelope (`proto/envelope.proto` `WelcomePart`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomePart {
    /// SHA-256 of the whole serialized Welcome.
    pub welcome_id: [u8; WELCOME_ID_LEN],
    /// 0-based position, below `count`.
    pub index: u32,
    /// Number of pieces, 2..=[`MAX_WELCOME_PARTS`].
    pub count: u32,
    /// The piece, 1..=[`MAX_PART_BYTES`] bytes.
    pub data: Vec<u8>,
}

impl WelcomePart {
    /// Canonical protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        proto::WelcomePart {
            welcome_id: bytes::Bytes::copy_from_slice(&self.welcome_id),
            index: self.index,
            count: self.count,
            data: bytes::Bytes::copy_from_slice(&self.data),
        }
        .encode_to_vec()
    }

    /// Decodes and checks a part (size, canonical form, id length, index/count range, data).
    ///
    /// # Errors
    ///
    /// [`WelcomePartError::TooLarge`], [`WelcomePartError::Decode`],
    /// [`WelcomePartError::NonCanonical`], [`WelcomePartError::IdLength`],
    /// [`WelcomePartError::BadIndex`], [`WelcomePartError::EmptyData`].
    pub fn decode(bytes: &[u8]) -> Result<Self, WelcomePartError> {
        if bytes.len() > MAX_WELCOME_PART_BYTES {
            return Err(WelcomePartError::TooLarge {
                what: "part",
                len: bytes.len(),
                max: MAX_WELCOME_PART_BYTES,
            });
        }
        let wire = proto::WelcomePart::decode(bytes)
            .map_err(|e| WelcomePartError::Decode(e.to_string()))?;
        if wire.encode_to_vec() != bytes {
            return Err(WelcomePartError::NonCanonical);
        }
        let welcome_id = wire
            .welcome_id
            .as_ref()
            .try_into()
            .map_err(|_| WelcomePartError::IdLength(wire.welcome_id.len()))?;
        let (index, count) = (wire.index, wire.count);
        if !(2..=MAX_WELCOME_PARTS as u32).contains(&count) || index >= count {
            return Err(WelcomePartError::BadIndex { index, count });
        }
        if wire.data.is_empty() {
            return Err(WelcomePartError::EmptyData);
        }
        if wire.data.len() > MAX_PART_BYTES {
            return Err(WelcomePartError::TooLarge {
                what: "part data",
                len: wire.data.len(),
                max: MAX_PART_BYTES,
            });
        }
        Ok(Self {
            welcome_id,
            index,
            count,
            data: wire.data.to_vec(),
        })
    }
}

/// Whether a serialized Welcome of `len` bytes fits one envelope payload (send it whole as
/// `MESSAGE_TYPE_WELCOME`); otherwise [`split_welcome`] it.
pub fn fits_one_envelope(len: usize) -> bool {
    len <= MAX_PAYLOAD_BYTES
}

/// Cuts a Welcome too large for one envelope into parts, in order.
///
/// # Errors
///
/// [`WelcomePartError::FitsOneEnvelope`] if it fits one envelope (send it whole),
/// [`WelcomePartError::TooLarge`] beyond [`MAX_WELCOME_BYTES`].
pub fn split_welcome(welcome: &[u8]) -> Result<Vec<WelcomePart>, WelcomePartError> {
    if fits_one_envelope(welcome.len()) {
        return Err(WelcomePartError::FitsOneEnvelope(welcome.len()));
    }
    if welcome.len() > MAX_WELCOME_BYTES {
        return Err(WelcomePartError::TooLarge {
            what: "welcome",
            len: welcome.len(),
            max: MAX_WELCOME_BYTES,
        });
    }
    let welcome_id: [u8; WELCOME_ID_LEN] = Sha256::digest(welcome).into();
    let count = welcome.len().div_ceil(MAX_PART_BYTES) as u32;
    Ok(welcome
        .chunks(MAX_PART_BYTES)
        .zip(0u32..)
        .map(|(data, index)| WelcomePart {
            welcome_id,
            index,
            count,
            data: data.to_vec(),
        })
        .collect())
}

/// Joins the pieces of a Welcome, in order, and checks the whole against `welcome_id` (what
/// every reassembly ends with: [`WelcomeReassembler`], or a store that keeps the pieces).
///
/// # Errors
///
/// [`WelcomePartError::TooLarge`] beyond [`MAX_WELCOME_BYTES`],
/// [`WelcomePartError::HashMismatch`] when the pieces do not hash to `welcome_id`.
pub fn join_parts<'a>(
    welcome_id: &[u8; WELCOME_ID_LEN],
    pieces: impl IntoIterator<Item = &'a Vec<u8>>,
) -> Result<Vec<u8>, WelcomePartError> {
    let mut welcome = Vec::new();
    for piece in pieces {
        if welcome.len().saturating_add(piece.len()) > MAX_WELCOME_BYTES {
            return Err(WelcomePartError::TooLarge {
                what: "welcome",
                len: welcome.len().saturating_add(piece.len()),
                max: MAX_WELCOME_BYTES,
            });
        }
        welcome.extend_from_slice(piece);
    }
    if <[u8; WELCOME_ID_LEN]>::from(Sha256::digest(&welcome)) != *welcome_id {
        return Err(WelcomePartError::HashMismatch);
    }
    Ok(welcome)
}

/// What [`WelcomeReassembler::insert`] did with a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembly {
    /// Kept; `received` of `count` parts are here.
    Pending {
        /// Parts held.
        received: u32,
        /// Parts in all.
        count: u32,
    },
    /// The same part again (same data): nothing changed.
    Duplicate,
    /// The last part: the whole Welcome, its hash checked. Handle it as a
    /// `MESSAGE_TYPE_WELCOME` payload.
    Complete(Vec<u8>),
}

/// One unfinished Welcome.
#[derive(Debug)]
struct Pending {
    count: u32,
    parts: Vec<Option<Vec<u8>>>,
    received: u32,
    bytes: usize,
    first_at: u64,
}

/// Bounded reassembly of Welcomes sent in parts, per `(sender UID, welcome_id)`.
///
/// Sans-IO: time is passed in (`now`, Unix seconds). Memory is bounded by
/// [`MAX_PENDING_WELCOMES`] × [`MAX_WELCOME_BYTES`] and [`MAX_PENDING_BYTES`].
#[derive(Debug, Default)]
pub struct WelcomeReassembler {
    pending: BTreeMap<(Uid, [u8; WELCOME_ID_LEN]), Pending>,
    bytes: usize,
    dropped: u64,
}

impl WelcomeReassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unfinished Welcomes held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of parts held.
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Unfinished Welcomes dropped so far (expired, evicted for room, or refused on a bad
    /// part).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds a part (already decoded with [`WelcomePart::decode`]) from `sender`, received
    /// `now` (Unix seconds). Expired Welcomes are dropped first.
    ///
    /// # Errors
    ///
    /// [`WelcomePartError::TooManyPending`] (the part is not kept),
    /// [`WelcomePartError::CountMismatch`], [`WelcomePartError::Conflict`],
    /// [`WelcomePartError::TooLarge`], [`WelcomePartError::HashMismatch`]: the unfinished
    /// Welcome is dropped.
    pub fn insert(
        &mut self,
        sender: Uid,
        part: WelcomePart,
        now: u64,
    ) -> Result<Reassembly, WelcomePartError> {
        self.expire(now);
        let key = (sender, part.welcome_id);
        if !self.pending.contains_key(&key) {
            let from_sender = self.pending.keys().filter(|(s, _)| *s == sender).count();
            if from_sender >= MAX_PENDING_PER_SENDER {
                return Err(WelcomePartError::TooManyPending);
            }
            self.pending.insert(
                key,
                Pending {
                    count: part.count,
                    parts: vec![None; part.count as usize],
                    received: 0,
                    bytes: 0,
                    first_at: now,
                },
            );
        }
        let result = self.add(key, part);
        if result.is_err() {
            self.remove(&key);
        }
        if let Ok(Reassembly::Pending { .. }) = result {
            self.make_room(&key);
        }
        result
    }

    /// Puts `part` into the unfinished Welcome `key` (which exists).
    fn add(
        &mut self,
        key: (Uid, [u8; WELCOME_ID_LEN]),
        part: WelcomePart,
    ) -> Result<Reassembly, WelcomePartError> {
        let Some(entry) = self.pending.get_mut(&key) else {
            return Err(WelcomePartError::TooManyPending);
        };
        if part.count != entry.count {
            return Err(WelcomePartError::CountMismatch {
                expected: entry.count,
                got: part.count,
            });
        }
        let slot = entry
            .parts
            .get_mut(part.index as usize)
            .ok_or(WelcomePartError::BadIndex {
                index: part.index,
                count: part.count,
            })?;
        if let Some(held) = slot {
            return if *held == part.data {
                Ok(Reassembly::Duplicate)
            } else {
                Err(WelcomePartError::Conflict(part.index))
            };
        }
        let total = entry.bytes.saturating_add(part.data.len());
        if total > MAX_WELCOME_BYTES {
            return Err(WelcomePartError::TooLarge {
                what: "welcome",
                len: total,
                max: MAX_WELCOME_BYTES,
            });
        }
        self.bytes = self.bytes.saturating_add(part.data.len());
        entry.bytes = total;
        *slot = Some(part.data);
        entry.received += 1;
        if entry.received < entry.count {
            return Ok(Reassembly::Pending {
                received: entry.received,
                count: entry.count,
            });
        }
        let joined = join_parts(&key.1, entry.parts.iter().flatten());
        self.take(&key);
        if joined.is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
        joined.map(Reassembly::Complete)
    }

    /// Drops unfinished Welcomes whose first part is older than [`WELCOME_PART_TTL_SECS`].
    pub fn expire(&mut self, now: u64) {
        let old: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.first_at) > WELCOME_PART_TTL_SECS)
            .map(|(k, _)| *k)
            .collect();
        for key in old {
            self.remove(&key);
        }
    }

    /// Drops the oldest unfinished Welcomes other than `keep` while over the per-node bounds.
    fn make_room(&mut self, keep: &(Uid, [u8; WELCOME_ID_LEN])) {
        while self.pending.len() > MAX_PENDING_WELCOMES || self.bytes > MAX_PENDING_BYTES {
            let oldest = self
                .pending
                .iter()
                .filter(|(k, _)| *k != keep)
                .min_by_key(|(_, p)| p.first_at)
                .map(|(k, _)| *k);
            let Some(oldest) = oldest else { return };
            self.remove(&oldest);
        }
    }

    /// Forgets an unfinished Welcome, counted as dropped.
    fn remove(&mut self, key: &(Uid, [u8; WELCOME_ID_LEN])) {
        if self.take(key) {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Forgets an unfinished Welcome; whether it was held.
    fn take(&mut self, key: &(Uid, [u8; WELCOME_ID_LEN])) -> bool {
        let Some(p) = self.pending.remove(key) else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(p.bytes);
        true
    }
}

#[cfg(test)]
mod tests;
