//! Private groups (issue 14): the group's address, roles, profile and the wire bodies that
//! ride in MLS.
//!
//! A group is one MLS group (see `rhizo-e2e`). Who may change it and what it is called live in
//! the MLS GroupContext extension [`GROUP_STATE_EXTENSION_TYPE`] (0xF7A1), whose body is a
//! canonical [`GroupState`]: the admins' UIDs and the [`GroupProfile`]. Every member checks
//! the role rule against it on every commit (`rhizo-e2e`). A member that lost its group state
//! asks the admins to re-add it with a [`GroupRejoin`].
//!
//! ```text
//!   group_id (32 random bytes) ──SHA-256("rhizo/group-address/v1" ‖ id)──► GroupAddress
//!   GroupState ──encode()──► canonical protobuf (≤ 48 KiB) ──decode()──► GroupState / GroupError
//! ```
//!
//! Decoders accept only the canonical protobuf encoding (re-encode check) and return a typed
//! [`GroupError`] for anything else; nothing here panics on input.
//!
//! ```
//! use rhizo_core::RootKey;
//! use rhizo_core::group::{GroupProfile, GroupRole, GroupState};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alice = RootKey::from_bytes(&[1u8; 32]).public().uid();
//! let bob = RootKey::from_bytes(&[2u8; 32]).public().uid();
//! let state = GroupState::new(vec![alice], GroupProfile::named("Hiking")?)?;
//! let bytes = state.encode();
//! let back = GroupState::decode(&bytes)?;
//! assert_eq!(back, state);
//! assert_eq!(back.role_of(&alice), GroupRole::Admin);
//! assert_eq!(back.role_of(&bob), GroupRole::Member);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::Uid;
use crate::identity::UID_LEN;
use crate::proto;

/// MLS extension type of the group's roles-and-profile GroupContext extension (private-use
/// range); a required capability of every group.
pub const GROUP_STATE_EXTENSION_TYPE: u16 = 0xF7A1;
/// The [`GroupState`] format this build writes and reads.
pub const GROUP_STATE_VERSION: u32 = 1;
/// Length of an MLS group id of a rhizo group.
pub const GROUP_ID_LEN: usize = 32;
/// Domain tag hashed before the group id to derive a [`GroupAddress`].
pub const GROUP_ADDRESS_DOMAIN: &[u8] = b"rhizo/group-address/v1";
/// Most members (UIDs) in one group.
pub const MAX_GROUP_MEMBERS: usize = 1000;
/// Most admins in one group.
pub const MAX_GROUP_ADMINS: usize = 64;
/// Most groups one node is a member of.
pub const MAX_GROUPS_PER_NODE: usize = 256;
/// Most pending proposals / change intents per group.
pub const MAX_GROUP_INTENTS: usize = 16;
/// Most held group requests (invitations from non-contacts) per node.
pub const MAX_GROUP_REQUESTS: usize = 64;
/// How many past epochs a member can still reorder (roll back to) when a smaller-id commit
/// arrives late; older state snapshots are deleted.
pub const ROLLBACK_EPOCHS: u64 = 8;
/// Commit ordering: competing commits made in the same span of this many seconds (by their
/// senders' clocks, from the commits' authenticated data) are ordered by commit id; across
/// spans the earlier span wins (a commit made on a stale epoch loses to the one made first).
pub const COMMIT_TIME_SPAN_SECS: u64 = 60;
/// Commit ordering: a sender that made the commits opening this many of the
/// [`ROLLBACK_EPOCHS`] epochs before a commit's epoch loses every tie in that epoch, which
/// bounds what grinding commit ids (or backdating) can win.
pub const MAX_RECENT_OPENINGS: u64 = 3;
/// An admin answers at most one [`GroupRejoin`] per (group, UID) in this many seconds.
pub const GROUP_REJOIN_INTERVAL_SECS: u64 = 60;
/// Longest group name, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 64;
/// Longest group description, in bytes.
pub const MAX_GROUP_DESCRIPTION_BYTES: usize = 512;
/// Largest group avatar image, in bytes.
pub const MAX_GROUP_AVATAR_BYTES: usize = 32 * 1024;
/// Longest avatar media type, in bytes.
pub const MAX_GROUP_AVATAR_MIME_BYTES: usize = 64;
/// Largest encoded [`GroupState`] (the whole extension body).
pub const MAX_GROUP_STATE_BYTES: usize = 48 * 1024;
/// Largest KeyPackage a [`GroupRejoin`] carries.
pub const MAX_REJOIN_KEY_PACKAGE_BYTES: usize = crate::records::MAX_KEY_PACKAGE_BYTES;
/// Largest encoded [`GroupRejoin`].
pub const MAX_GROUP_REJOIN_BYTES: usize = MAX_REJOIN_KEY_PACKAGE_BYTES + 64;

/// Error from building or decoding a group wire body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The input is larger than its limit.
    #[error("group {what} too large: {len} bytes, at most {max}")]
    TooLarge {
        /// Which body.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a protobuf message of the expected type.
    #[error("malformed group {what}: {reason}")]
    Decode {
        /// Which body.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Valid protobuf, but not the one canonical encoding.
    #[error(
        "malformed group {0}: valid protobuf but not in canonical form (field order, defaults \
         or unknown fields); the sender's encoder is broken"
    )]
    NonCanonical(&'static str),
    /// A [`GroupState`] version this build does not understand.
    #[error(
        "unsupported group state version {0} (this build reads version 1); \
         a member may run a newer rhizo"
    )]
    UnsupportedVersion(u32),
    /// The admin list breaks a rule.
    #[error("invalid group admins: {0}")]
    Admins(&'static str),
    /// A profile field breaks a rule.
    #[error("invalid group {field}: {reason}")]
    Profile {
        /// The field (`name`, `description`, `avatar`, `avatar_mime`).
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A group id is not [`GROUP_ID_LEN`] bytes.
    #[error("group id must be {GROUP_ID_LEN} bytes, got {0}")]
    GroupIdLength(usize),
    /// A rejoin request carries no KeyPackage.
    #[error("group rejoin request carries no KeyPackage")]
    EmptyKeyPackage,
}

/// The address group envelopes are sent to (`SecureMessage.recipient_id`):
/// SHA-256([`GROUP_ADDRESS_DOMAIN`] ‖ group_id). Shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupAddress([u8; 32]);

impl GroupAddress {
    /// The address of the group with this MLS group id.
    pub fn from_group_id(group_id: &[u8]) -> Self {
        Self(
            Sha256::new()
                .chain_update(GROUP_ADDRESS_DOMAIN)
                .chain_update(group_id)
                .finalize()
                .into(),
        )
    }

    /// Wraps 32 raw bytes (read back from storage or an envelope).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(*bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for GroupAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for GroupAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupAddress({self})")
    }
}

/// A member's role in a group, read from the current [`GroupState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    /// May add and remove members and change the [`GroupState`].
    Admin,
    /// May send, self-update and remove its own other devices.
    Member,
}

impl GroupRole {
    /// `admin` / `member`, as in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for GroupRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What members see of a group: name, description, avatar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupProfile {
    /// 1..=[`MAX_GROUP_NAME_CHARS`] characters, no control characters.
    pub name: String,
    /// At most [`MAX_GROUP_DESCRIPTION_BYTES`] bytes.
    pub description: String,
    /// At most [`MAX_GROUP_AVATAR_BYTES`]; empty for none.
    pub avatar: Vec<u8>,
    /// At most [`MAX_GROUP_AVATAR_MIME_BYTES`]; empty when there is no avatar.
    pub avatar_mime: String,
}

impl GroupProfile {
    /// A profile with only a name.
    ///
    /// # Errors
    ///
    /// [`GroupError::Profile`] for a bad name.
    pub fn named(name: &str) -> Result<Self, GroupError> {
        let profile = Self {
            name: name.to_string(),
            ..Self::default()
        };
        profile.validate()?;
        Ok(profile)
    }

    /// Checks every field against its limit.
    ///
    /// # Errors
    ///
    /// [`GroupError::Profile`] naming the first bad field.
    pub fn validate(&self) -> Result<(), GroupError> {
        let bad = |field, reason| Err(GroupError::Profile { field, reason });
        let chars = self.name.chars().count();
        if chars == 0 {
            return bad("name", "must not be empty");
        }
        if chars > MAX_GROUP_NAME_CHARS {
            return bad("name", "longer than 64 characters");
        }
        if self.name.chars().any(char::is_control) {
            return bad("name", "contains a control character");
        }
        if self.description.len() > MAX_GROUP_DESCRIPTION_BYTES {
            return bad("description", "longer than 512 bytes");
        }
        if self.avatar.len() > MAX_GROUP_AVATAR_BYTES {
            return bad("avatar", "larger than 32 KiB");
        }
        if self.avatar_mime.len() > MAX_GROUP_AVATAR_MIME_BYTES {
            return bad("avatar_mime", "longer than 64 bytes");
        }
        if self.avatar_mime.chars().any(char::is_control) {
            return bad("avatar_mime", "contains a control character");
        }
        Ok(())
    }
}

/// The body of the GroupContext extension [`GROUP_STATE_EXTENSION_TYPE`]: the admins (sorted,
/// distinct, 1..=[`MAX_GROUP_ADMINS`]) and the [`GroupProfile`]. Always valid once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    admins: Vec<Uid>,
    profile: GroupProfile,
}

impl GroupState {
    /// A state with these admins (any order, duplicates merged) and this profile.
    ///
    /// # Errors
    ///
    /// [`GroupError::Admins`] for no admins or more than [`MAX_GROUP_ADMINS`];
    /// [`GroupError::Profile`] for a bad profile field; [`GroupError::TooLarge`] when the
    /// encoding exceeds [`MAX_GROUP_STATE_BYTES`].
    pub fn new(mut admins: Vec<Uid>, profile: GroupProfile) -> Result<Self, GroupError> {
        admins.sort();
        admins.dedup();
        let state = Self { admins, profile };
        state.validate()?;
        let len = state.to_proto().encoded_len();
        if len > MAX_GROUP_STATE_BYTES {
            return Err(GroupError::TooLarge {
                what: "state",
                len,
                max: MAX_GROUP_STATE_BYTES,
            });
        }
        Ok(state)
    }

    fn validate(&self) -> Result<(), GroupError> {
        if self.admins.is_empty() {
            return Err(GroupError::Admins("a group needs at least one admin"));
        }
        if self.admins.len() > MAX_GROUP_ADMINS {
            return Err(GroupError::Admins("more than 64 admins"));
        }
        self.profile.validate()
    }

    /// The admins' UIDs, ascending.
    pub fn admins(&self) -> &[Uid] {
        &self.admins
    }

    /// The profile.
    pub fn profile(&self) -> &GroupProfile {
        &self.profile
    }

    /// Whether `uid` is an admin.
    pub fn is_admin(&self, uid: &Uid) -> bool {
        self.admins.binary_search(uid).is_ok()
    }

    /// `uid`'s role (every UID that is not an admin is a member).
    pub fn role_of(&self, uid: &Uid) -> GroupRole {
        if self.is_admin(uid) {
            GroupRole::Admin
        } else {
            GroupRole::Member
        }
    }

    /// The same state with another admin list.
    ///
    /// # Errors
    ///
    /// As [`GroupState::new`].
    pub fn with_admins(&self, admins: Vec<Uid>) -> Result<Self, GroupError> {
        Self::new(admins, self.profile.clone())
    }

    /// The same state with another profile.
    ///
    /// # Errors
    ///
    /// As [`GroupState::new`].
    pub fn with_profile(&self, profile: GroupProfile) -> Result<Self, GroupError> {
        Self::new(self.admins.clone(), profile)
    }

    fn to_proto(&self) -> proto::GroupState {
        proto::GroupState {
            version: GROUP_STATE_VERSION,
            admins: self
                .admins
                .iter()
                .map(|u| bytes::Bytes::copy_from_slice(u.as_bytes()))
                .collect(),
            profile: Some(proto::GroupProfile {
                name: self.profile.name.clone(),
                description: self.profile.description.clone(),
                avatar: bytes::Bytes::copy_from_slice(&self.profile.avatar),
                avatar_mime: self.profile.avatar_mime.clone(),
            }),
        }
    }

    /// The canonical encoding (the extension body).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes and checks an extension body.
    ///
    /// # Errors
    ///
    /// The first check that fails: [`GroupError::TooLarge`], [`GroupError::Decode`],
    /// [`GroupError::NonCanonical`], [`GroupError::UnsupportedVersion`],
    /// [`GroupError::Admins`] (wrong length, not strictly ascending, none, too many),
    /// [`GroupError::Profile`].
    pub fn decode(bytes: &[u8]) -> Result<Self, GroupError> {
        let wire: proto::GroupState = decode_canonical("state", bytes, MAX_GROUP_STATE_BYTES)?;
        if wire.version != GROUP_STATE_VERSION {
            return Err(GroupError::UnsupportedVersion(wire.version));
        }
        let mut admins = Vec::with_capacity(wire.admins.len().min(MAX_GROUP_ADMINS));
        for raw in &wire.admins {
            let fixed: &[u8; UID_LEN] = raw
                .as_ref()
                .try_into()
                .map_err(|_| GroupError::Admins("an admin UID is not 32 bytes"))?;
            let uid = Uid::from_bytes(fixed);
            if admins.last().is_some_and(|last| *last >= uid) {
                return Err(GroupError::Admins("admins are not strictly ascending"));
            }
            admins.push(uid);
        }
        let profile = wire.profile.unwrap_or_default();
        let state = Self {
            admins,
            profile: GroupProfile {
                name: profile.name,
                description: profile.description,
                avatar: profile.avatar.to_vec(),
                avatar_mime: profile.avatar_mime,
            },
        };
        state.validate()?;
        Ok(state)
    }
}

/// A request to the admins to re-add this device with a fresh KeyPackage (recovery of a member
/// that lost or forked its group state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRejoin {
    /// The MLS group id.
    pub group_id: [u8; GROUP_ID_LEN],
    /// The new KeyPackage (TLS-serialized MlsMessage), at most
    /// [`MAX_REJOIN_KEY_PACKAGE_BYTES`].
    pub key_package: Vec<u8>,
}

impl GroupRejoin {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        proto::GroupRejoin {
            group_id: bytes::Bytes::copy_from_slice(&self.group_id),
            key_package: bytes::Bytes::copy_from_slice(&self.key_package),
        }
        .encode_to_vec()
    }

    /// Decodes and checks a rejoin request (the KeyPackage itself is checked by `rhizo-e2e`).
    ///
    /// # Errors
    ///
    /// [`GroupError::TooLarge`], [`GroupError::Decode`], [`GroupError::NonCanonical`],
    /// [`GroupError::GroupIdLength`], [`GroupError::EmptyKeyPackage`].
    pub fn decode(bytes: &[u8]) -> Result<Self, GroupError> {
        let wire: proto::GroupRejoin = decode_canonical("rejoin", bytes, MAX_GROUP_REJOIN_BYTES)?;
        let group_id = wire
            .group_id
            .as_ref()
            .try_into()
            .map_err(|_| GroupError::GroupIdLength(wire.group_id.len()))?;
        if wire.key_package.is_empty() {
            return Err(GroupError::EmptyKeyPackage);
        }
        if wire.key_package.len() > MAX_REJOIN_KEY_PACKAGE_BYTES {
            return Err(GroupError::TooLarge {
                what: "rejoin key package",
                len: wire.key_package.len(),
                max: MAX_REJOIN_KEY_PACKAGE_BYTES,
            });
        }
        Ok(Self {
            group_id,
            key_package: wire.key_package.to_vec(),
        })
    }
}

/// Size check, protobuf decode, canonical re-encode check.
fn decode_canonical<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<M, GroupError> {
    if bytes.len() > max {
        return Err(GroupError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    let wire = M::decode(bytes).map_err(|e| GroupError::Decode {
        what,
        reason: e.to_string(),
    })?;
    if wire.encode_to_vec() != bytes {
        return Err(GroupError::NonCanonical(what));
    }
    Ok(wire)
}

#[cfg(test)]
mod tests;
