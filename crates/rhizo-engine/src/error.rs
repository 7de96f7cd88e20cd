//! [`EngineError`]: why an engine operation failed (the database, MLS, signing, randomness).
//!
//! Refusals of a peer's envelope are not errors: they are answered on the wire (see
//! [`crate::wire`]). A user's mistake (an unknown contact, a bad ticket) is the driver's typed
//! error per operation; the engine reports what it could not do.

use rhizo_core::envelope::EnvelopeError;
use rhizo_core::records::RecordError;
use rhizo_e2e::E2eError;
use rhizo_store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// MLS (rhizo-e2e).
    #[error("end-to-end encryption: {0}")]
    Mls(#[from] E2eError),
    /// Signing or encoding an envelope or receipt.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// Building or signing a DHT record or profile.
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// The system's random number generator failed.
    #[error("the system's random number generator failed: {0}")]
    Random(#[source] getrandom::Error),
    /// No group with that id (or name) on this node.
    #[error("no such group")]
    UnknownGroup,
    /// Only an admin of the group may do this (add or remove members, change the profile).
    #[error("only an admin of the group may do this; ask one of its admins")]
    NotAdmin,
    /// We left the group or were removed from it.
    #[error("you are no longer a member of this group")]
    NotInGroup,
    /// We are waiting to be re-added to the group (our state of it was behind for good or
    /// lost: we asked its admins, or ask at its next envelope): nothing can be sent or
    /// changed until their Welcome.
    #[error("rejoining this group: waiting for an admin to add this device again")]
    Rejoining,
    /// The change would leave the group without an admin who is still a member.
    #[error("this would leave the group without an admin: make another member admin first")]
    NoAdminLeft,
    /// The UID named is not a member of the group.
    #[error("not a member of this group: add them first")]
    NotAMember,
    /// A group's name, profile or limits (rhizo-core `group`).
    #[error("group: {0}")]
    Group(#[from] rhizo_core::group::GroupError),
    /// The group would have more member UIDs than allowed.
    #[error("a group has at most {max} members ({count} asked for)")]
    TooManyMembers {
        /// How many it would have.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Only a device that holds the root key may do this (sign a profile, an agent card, a
    /// device list or a contact ticket; link or revoke a device).
    #[error("this device does not hold the root key: do this on the device that holds it")]
    NoRootKey,
    /// No shown message (text or file) with this id on this node.
    #[error("no message with id {0}: the ids are in the history (`rhizo messages NAME --json`)")]
    UnknownMessage(i64),
    /// Only the sender of a message may delete it for everyone.
    #[error("only messages you sent can be deleted for everyone; delete it here only instead")]
    NotYourMessage,
    /// The 1:1 conversation with the contact is closed and no new one exists yet.
    #[error("the conversation with this contact is closed: send them a message first")]
    ConversationClosed,
    /// The store does not hold what it must (e.g. a conversation's MLS state is missing).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
