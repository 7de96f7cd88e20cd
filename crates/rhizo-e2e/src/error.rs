//! [`E2eError`]: everything that can go wrong in this crate, with messages a
//! user (or the node's log) can act on.

use rhizo_core::CertError;
use thiserror::Error;

/// Error from an end-to-end encryption operation.
///
/// Errors about *input* (a peer's bytes) never leave the conversation in a
/// half-changed state: each operation runs in one SQLite transaction that is
/// rolled back on error, and the in-memory group is reloaded from it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum E2eError {
    /// The input is larger than the named limit; it was rejected before any
    /// parsing or cryptography.
    #[error("{what} is too large: {len} bytes, the limit is {max}")]
    TooLarge {
        /// What was too large ("KeyPackage", "MLS message", …).
        what: &'static str,
        /// The size that was given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not the expected MLS structure (TLS decoding failed or a
    /// different message type was given).
    #[error("malformed {0}: the bytes do not decode; the sender is buggy or the data was damaged")]
    Malformed(&'static str),
    /// The object uses a ciphersuite other than [`CIPHERSUITE`](crate::CIPHERSUITE).
    #[error("unsupported MLS ciphersuite 0x{0:04x}; rhizo only speaks X-Wing (0x004f)")]
    WrongCiphersuite(u16),
    /// A member's credential is not a valid rhizo device certificate bound to
    /// its MLS signature key.
    #[error("invalid device credential: {0}")]
    InvalidCredential(&'static str),
    /// The device certificate inside a credential does not decode or verify.
    #[error("invalid device certificate: {0}")]
    InvalidCertificate(#[from] CertError),
    /// A KeyPackage's signature, lifetime or contents are invalid.
    #[error("invalid KeyPackage: {0}")]
    InvalidKeyPackage(String),
    /// The message is for another conversation.
    #[error("message belongs to another conversation (group id mismatch)")]
    WrongGroup,
    /// The message's epoch cannot be processed: too old (its keys are
    /// deleted) or too far in the future to buffer.
    #[error(
        "message is for epoch {message_epoch} but the conversation is at epoch {group_epoch}; \
         it is too old or too far ahead to process"
    )]
    WrongEpoch {
        /// Epoch named in the message.
        message_epoch: u64,
        /// The conversation's current epoch.
        group_epoch: u64,
    },
    /// The message failed to decrypt or authenticate.
    #[error("message failed to decrypt or authenticate: {0}")]
    DecryptionFailed(String),
    /// The message key for this message was already used: a duplicate or a
    /// replay.
    #[error("duplicate or replayed message: its key was already used and deleted")]
    Replayed,
    /// A Welcome that was not encrypted to any of this device's KeyPackages
    /// (or whose KeyPackage was already consumed).
    #[error("Welcome is not for this device or its KeyPackage was already used")]
    NoMatchingKeyPackage,
    /// A Welcome for a conversation this device already has.
    #[error("already a member of this conversation")]
    AlreadyJoined,
    /// A message this device sent itself came back.
    #[error("received one of this device's own messages")]
    OwnMessage,
    /// A valid MLS message of a kind rhizo does not use (proposals, external
    /// commits, unsupported proposal types …).
    #[error("unsupported MLS message: {0}")]
    Unsupported(&'static str),
    /// `self_update` while a commit is already pending.
    #[error("a commit is already pending; wait for confirm_commit or a competing commit")]
    CommitPending,
    /// `confirm_commit` without a pending commit.
    #[error("no pending commit to confirm")]
    NoPendingCommit,
    /// The [`Device`](crate::Device) passed in is not this conversation's member.
    #[error("this device is not the conversation's local member")]
    WrongDevice,
    /// Creating a conversation needs at least one peer device.
    #[error("no peer KeyPackages given")]
    NoPeers,
    /// Too many devices for one conversation.
    #[error("too many devices: {count}, the limit is {max}")]
    TooManyDevices {
        /// Devices that would be in the group.
        count: usize,
        /// [`MAX_GROUP_DEVICES`](crate::MAX_GROUP_DEVICES).
        max: usize,
    },
    /// A member device of the conversation is not one the caller expects (see
    /// [`Conversation::check_members`](crate::Conversation::check_members)):
    /// someone added a device that is neither ours nor a listed device of
    /// the contact.
    #[error(
        "the conversation has an unexpected member device {device} (not ours, not a listed \
         device of the contact); it is refused"
    )]
    UnexpectedMember {
        /// The device public key, hex.
        device: String,
    },
    /// The database file could not be created.
    #[error(
        "cannot create the MLS state file {path}: {source}; check that the directory exists and is writable"
    )]
    CreateFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("MLS state storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    /// Creating openmls' tables failed.
    #[error("MLS state storage migration failed: {0}")]
    Migration(String),
    /// The database was written by a newer rhizo-e2e.
    #[error(
        "MLS state schema version {found} is newer than this build ({supported}); upgrade rhizo"
    )]
    SchemaTooNew {
        /// Version found in the file.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// A group operation on a 1:1 conversation (or a Welcome without the group extension).
    #[error("this conversation is not a group")]
    NotAGroup,
    /// The group's state extension does not decode.
    #[error("invalid group state: {0}")]
    GroupState(#[from] rhizo_core::group::GroupError),
    /// Our own group commit breaks a group rule (e.g. we are not an admin); nothing was sent
    /// or changed.
    #[error("the group refuses this change: {0:?}")]
    Refused(crate::CommitRejectReason),
    /// A removal names a user or device without a leaf in the group.
    #[error("no such member in this group")]
    NoSuchMember,
    /// Any other openmls failure (including internal errors).
    #[error("MLS error: {0}")]
    Mls(String),
}

impl E2eError {
    /// Wraps an openmls error that has no more specific variant.
    pub(crate) fn mls(error: impl std::fmt::Display) -> Self {
        Self::Mls(error.to_string())
    }
}
