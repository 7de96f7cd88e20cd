//! Signed DHT records and the validation every storing node runs on them.
//!
//! rhizo publishes five kinds of record in its Kademlia DHT
//! (`/rhizo/kad/1.0.0`):
//!
//! | record | stored under | signed by | tells a peer |
//! |---|---|---|---|
//! | [`IdentityRecord`] | [`identity_key`]`(uid)` | root key | the root public key behind a UID |
//! | [`DeviceList`] | [`device_list_key`]`(uid)` | root key | which devices speak for the user (versioned) |
//! | [`KeyPackageBundle`] | [`key_packages_key`]`(uid, device_pk)` | device key | one device's MLS KeyPackages (versioned) |
//! | [`Profile`] | [`profile_key`]`(uid)` | root key | display name and avatar (versioned) |
//! | [`AgentCardRecord`] | [`agent_card_key`]`(uid)` | root key | an agent's card: skills and limits (versioned) |
//!
//! All five are one type, [`SignedRecord`]`<B>`, with a per-kind body `B`
//! ([`IdentityBody`], [`DeviceListBody`], [`KeyPackageBundleBody`],
//! [`ProfileBody`], [`AgentCardBody`]): the lifetime, the signature, signing, encoding,
//! validation and the shared accessors are written once, in `signed.rs`; a
//! body brings its fields, its limits, its DHT key and its signer.
//!
//! Storing nodes call [`validate_record`] on every `PUT_VALUE` and keep the
//! record only if it passes, then [`should_replace`] to decide between it and
//! a record already stored under the same key. Readers call the same
//! [`validate_record`] on what a `GET_VALUE` returns: a record that passes is
//! self-consistent and signed, but whether its root key is the one the reader
//! *expects* is the reader's check (compare [`ValidRecord::key`] with the key
//! it asked for, which commits to the UID).
//!
//! ```text
//!  value bytes ──len ≤ MAX_RECORD_BYTES──► SignedRecord { kind, body, signature }   (canonical protobuf)
//!                                              │ decode body by kind (canonical), check counts and sizes
//!                                              ▼
//!                    key == identity_key / device_list_key / key_packages_key (derived from the body)
//!                                              │
//!            created_at < expires_at, TTL ≤ 7 days, created_at ≤ now + skew, now < expires_at
//!                                              │
//!           Ed25519 verify_strict over "rhizo/record/v1" ‖ kind ‖ body (+ device certificates)
//!                                              ▼
//!                                         ValidRecord ──should_replace(existing, incoming)──► bool / VersionNotNewer
//! ```
//!
//! # Wire format
//!
//! The value stored in the DHT is a protobuf `rhizo.v1.SignedRecord`
//! (`proto/records.proto`): `kind` (enum: 1 identity, 2 device list, 3 key
//! packages, 4 profile, 5 agent card), `body` (the encoded `IdentityBody`, `DeviceListBody`,
//! `KeyPackageBundleBody`, `ProfileBody` or `AgentCardBody`) and a 64-byte `signature`.
//!
//! Both the envelope and the body must be in canonical protobuf encoding
//! (what prost emits: ascending field numbers, no repeated scalar fields,
//! defaults omitted, minimal varints, no unknown fields). [`validate_record`]
//! re-encodes what it decoded and refuses the value if the bytes differ
//! ([`RecordError::NonCanonical`]), so a record has exactly one encoding and
//! nobody can pad a stored value with unsigned bytes.
//!
//! # Signed bytes
//!
//! ```text
//! signed = "rhizo/record/v1" ‖ kind ‖ body
//! ```
//!
//! * `"rhizo/record/v1"` — the 15 ASCII bytes of [`RECORD_SIGNATURE_DOMAIN`],
//!   no length prefix;
//! * `kind` — **one byte**, the `RecordKind` value (1, 2, 3, 4 or 5);
//! * `body` — the `body` field's bytes exactly as received (never a
//!   re-encoding).
//!
//! The signature is Ed25519 (RFC 8032) verified with `verify_strict`, by the
//! root key (`root_pk` in the body) for identity, device-list, profile and agent-card records and
//! by the device key named in `device_cert` for key-package bundles. The kind
//! byte keeps a body signed as one kind from being replayed as another; the
//! domain tag keeps record signatures apart from every other rhizo signature.
//!
//! # Record keys
//!
//! All keys are 32 bytes ([`RECORD_KEY_LEN`]):
//!
//! ```text
//! identity_key(uid)                 = SHA-256("rhizo/identity/v1"    ‖ uid)
//! device_list_key(uid)              = SHA-256("rhizo/devices/v1"     ‖ uid)
//! key_packages_key(uid, device_pk)  = SHA-256("rhizo/keypackages/v1" ‖ uid ‖ device_pk)
//! profile_key(uid)                  = SHA-256("rhizo/meta/v1"        ‖ uid)
//! agent_card_key(uid)               = SHA-256("rhizo/agent-card/v1"  ‖ uid)
//! agent_card_device_key(device_pk)  = SHA-256("rhizo/agent-card-device/v1" ‖ device_pk)
//! ```
//!
//! An agent card may be stored under its UID's key and under the device key of each device it
//! lists (so that a provider record, which names a device, leads to the card).
//!
//! Agents also announce each skill as a Kademlia *provider* record (not a value) under
//! [`skill_key`]`(id)` = SHA-256("rhizo/skill/v1" ‖ skill id), so that anyone can find the
//! agents offering a skill and then fetch their cards.
//!
//! # Replacement
//!
//! Device lists, key-package bundles, profiles and agent cards carry a `version` that must grow with
//! every change; the identity record's `created_at` plays that role. A record
//! whose version is lower, or equal with different content, is refused with
//! [`RecordError::VersionNotNewer`]; the same content again (a republish) is
//! accepted but changes nothing. To extend a versioned record's lifetime the
//! owner signs it again with the next version.
//!
//! A storing node that has never seen the newest version (or has dropped it)
//! can be handed an older, still unexpired one; readers should remember the
//! highest version they have accepted for each contact and ignore lower ones.

mod agent_card;
mod device_list;
mod identity_record;
mod key_package_bundle;
mod profile;
mod signed;

use std::fmt;

use prost::Message;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use agent_card::{
    AGENT_CARD_BINDING_DOMAIN, AgentCardBody, AgentCardRecord, CardDevice, MAX_AGENT_CARD_DEVICES,
    MIN_AGENT_CARD_TTL,
};
pub use device_list::{DeviceList, DeviceListBody};
pub use identity_record::{IdentityBody, IdentityRecord};
pub use key_package_bundle::{KeyPackageBundle, KeyPackageBundleBody};
pub use profile::{
    MAX_AVATAR_BYTES, MAX_AVATAR_MIME_BYTES, MAX_PROFILE_NAME_CHARS, MIN_PROFILE_TTL, Profile,
    ProfileBody,
};
pub use signed::{RecordBody, SignedRecord, VersionedBody};

use crate::error::CertError;
use crate::identity::{self, Hex, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use crate::proto;
use crate::{DevicePublicKey, RootPublicKey, Uid};

/// Domain tag hashed before the UID to derive [`identity_key`].
pub const IDENTITY_KEY_DOMAIN: &[u8] = b"rhizo/identity/v1";
/// Domain tag hashed before the UID to derive [`device_list_key`].
pub const DEVICE_LIST_KEY_DOMAIN: &[u8] = b"rhizo/devices/v1";
/// Domain tag hashed before the UID and device key to derive [`key_packages_key`].
pub const KEY_PACKAGES_KEY_DOMAIN: &[u8] = b"rhizo/keypackages/v1";
/// Domain tag of [`profile_key`].
pub const PROFILE_KEY_DOMAIN: &[u8] = b"rhizo/meta/v1";
/// Domain tag of [`agent_card_key`].
pub const AGENT_CARD_KEY_DOMAIN: &[u8] = b"rhizo/agent-card/v1";
/// Domain tag of [`agent_card_device_key`].
pub const AGENT_CARD_DEVICE_KEY_DOMAIN: &[u8] = b"rhizo/agent-card-device/v1";
/// Domain tag of [`skill_key`].
pub const SKILL_KEY_DOMAIN: &[u8] = b"rhizo/skill/v1";
/// Domain tag at the start of every record's signed message.
pub const RECORD_SIGNATURE_DOMAIN: &[u8] = b"rhizo/record/v1";
/// Length of a record key: a full SHA-256 output.
pub const RECORD_KEY_LEN: usize = 32;

/// Largest stored value: the Kademlia packet limit is 64 KiB
/// (`KAD_MAX_PACKET_BYTES` in rhizo-net) and 4 KiB of it stay free for the key,
/// the record framing and the closer-peers list a `GET_VALUE` reply carries too.
pub const MAX_RECORD_BYTES: usize = 60 * 1024;
/// Longest lifetime a record may claim: the design's 3–7 day TTL; owners
/// republish before it runs out, so a lost root key's records die within a week.
pub const MAX_RECORD_TTL: u64 = 7 * 24 * 60 * 60;
/// How far in the future `created_at` may lie: clocks without NTP drift by
/// minutes, and a record "from the future" would win every replacement.
pub const MAX_CLOCK_SKEW: u64 = 10 * 60;
/// Most devices in one [`DeviceList`]: generous for one person, and it bounds
/// the certificate checks a storing node does per record.
pub const MAX_DEVICES: usize = 16;
/// Most KeyPackages in one [`KeyPackageBundle`]: enough for a burst of new
/// conversations between republishes while staying inside [`MAX_RECORD_BYTES`].
pub const MAX_KEY_PACKAGES: usize = 16;
/// Largest single KeyPackage: an X-Wing (ML-KEM-768 + X25519) KeyPackage holds
/// two 1216-byte HPKE keys plus credential, extensions and signatures (≈ 2.7 KiB);
/// 16 of these at this size still fit in [`MAX_RECORD_BYTES`].
pub const MAX_KEY_PACKAGE_BYTES: usize = 3584;

// A full bundle (each KeyPackage plus up to 3 bytes of protobuf framing, the
// certificate and 1 KiB for the other fields and the envelope) must fit.
const _: () = assert!(
    MAX_KEY_PACKAGES * (MAX_KEY_PACKAGE_BYTES + 3) + crate::DEVICE_CERT_LEN + 1024
        <= MAX_RECORD_BYTES
);

/// `SHA-256(domain ‖ parts…)`.
fn hash_key(domain: &[u8], parts: &[&[u8]]) -> [u8; RECORD_KEY_LEN] {
    let mut hasher = Sha256::new().chain_update(domain);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The DHT key of a user's [`IdentityRecord`]:
/// `SHA-256("rhizo/identity/v1" ‖ uid)`.
pub fn identity_key(uid: &Uid) -> [u8; RECORD_KEY_LEN] {
    hash_key(IDENTITY_KEY_DOMAIN, &[uid.as_bytes()])
}

/// The DHT key of a user's [`DeviceList`]:
/// `SHA-256("rhizo/devices/v1" ‖ uid)`.
pub fn device_list_key(uid: &Uid) -> [u8; RECORD_KEY_LEN] {
    hash_key(DEVICE_LIST_KEY_DOMAIN, &[uid.as_bytes()])
}

/// The DHT key of one device's [`KeyPackageBundle`]:
/// `SHA-256("rhizo/keypackages/v1" ‖ uid ‖ device_pk)`.
pub fn key_packages_key(uid: &Uid, device: &DevicePublicKey) -> [u8; RECORD_KEY_LEN] {
    hash_key(
        KEY_PACKAGES_KEY_DOMAIN,
        &[uid.as_bytes(), device.as_bytes()],
    )
}

/// The DHT key of a user's [`Profile`]: SHA-256("rhizo/meta/v1" ‖ uid).
pub fn profile_key(uid: &Uid) -> [u8; RECORD_KEY_LEN] {
    hash_key(PROFILE_KEY_DOMAIN, &[uid.as_bytes()])
}

/// The DHT key of a user's [`AgentCardRecord`]: SHA-256("rhizo/agent-card/v1" ‖ uid).
pub fn agent_card_key(uid: &Uid) -> [u8; RECORD_KEY_LEN] {
    hash_key(AGENT_CARD_KEY_DOMAIN, &[uid.as_bytes()])
}

/// The second DHT key of an [`AgentCardRecord`], one per device the card lists:
/// SHA-256("rhizo/agent-card-device/v1" ‖ device_pk). A skill's provider record names a device
/// (its PeerId); this key leads from it to the card, and so to the UID.
pub fn agent_card_device_key(device: &DevicePublicKey) -> [u8; RECORD_KEY_LEN] {
    hash_key(AGENT_CARD_DEVICE_KEY_DOMAIN, &[device.as_bytes()])
}

/// The Kademlia provider key under which agents announce a skill:
/// SHA-256("rhizo/skill/v1" ‖ skill id), the id as its UTF-8 bytes.
pub fn skill_key(skill_id: &str) -> [u8; RECORD_KEY_LEN] {
    hash_key(SKILL_KEY_DOMAIN, &[skill_id.as_bytes()])
}

/// The kind of a signed record; its wire value is the `kind` byte of the
/// [signed bytes](self#signed-bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// [`IdentityRecord`], wire value 1.
    Identity,
    /// [`DeviceList`], wire value 2.
    DeviceList,
    /// [`KeyPackageBundle`], wire value 3.
    KeyPackages,
    /// [`Profile`], wire value 4.
    Profile,
    /// [`AgentCardRecord`], wire value 5.
    AgentCard,
}

impl RecordKind {
    /// The protobuf enum value.
    fn to_proto(self) -> proto::RecordKind {
        match self {
            Self::Identity => proto::RecordKind::Identity,
            Self::DeviceList => proto::RecordKind::DeviceList,
            Self::KeyPackages => proto::RecordKind::KeyPackages,
            Self::Profile => proto::RecordKind::Profile,
            Self::AgentCard => proto::RecordKind::AgentCard,
        }
    }

    /// The wire value: the `kind` field and the byte in the signed message.
    pub fn wire_value(self) -> u8 {
        match self {
            Self::Identity => 1,
            Self::DeviceList => 2,
            Self::KeyPackages => 3,
            Self::Profile => 4,
            Self::AgentCard => 5,
        }
    }

    /// Parses the protobuf `kind` field.
    fn from_wire(value: i32) -> Result<Self, RecordError> {
        match proto::RecordKind::try_from(value) {
            Ok(proto::RecordKind::Identity) => Ok(Self::Identity),
            Ok(proto::RecordKind::DeviceList) => Ok(Self::DeviceList),
            Ok(proto::RecordKind::KeyPackages) => Ok(Self::KeyPackages),
            Ok(proto::RecordKind::Profile) => Ok(Self::Profile),
            Ok(proto::RecordKind::AgentCard) => Ok(Self::AgentCard),
            Ok(proto::RecordKind::Unspecified) | Err(_) => Err(RecordError::UnknownKind(value)),
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Identity => "identity record",
            Self::DeviceList => "device list",
            Self::KeyPackages => "key-package bundle",
            Self::Profile => "profile",
            Self::AgentCard => "agent card",
        })
    }
}

/// Why a record was refused, by [`validate_record`], [`should_replace`] or a
/// builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is larger than [`MAX_RECORD_BYTES`]; checked before decoding.
    #[error(
        "record too large: {actual} bytes, at most {max} fit in one DHT packet; \
         publish fewer devices or key packages"
    )]
    TooLarge {
        /// The limit, [`MAX_RECORD_BYTES`].
        max: usize,
        /// The size given.
        actual: usize,
    },
    /// The bytes are not a well-formed record.
    #[error("malformed record: {0}; the value is corrupted or is not a rhizo record")]
    Malformed(&'static str),
    /// The record decodes but is not in canonical protobuf encoding.
    #[error(
        "record is not canonically encoded (extra, repeated, reordered or default-valued fields); \
         it was altered after signing or written by a broken encoder"
    )]
    NonCanonical,
    /// The `kind` field is not a record kind this build knows.
    #[error("unknown record kind {0}; the publisher may run a newer rhizo")]
    UnknownKind(i32),
    /// A public key in the record is not a valid, strong Ed25519 key.
    #[error("record contains an invalid or weak Ed25519 public key")]
    InvalidPublicKey,
    /// The record is stored (or asked for) under a key that its content does
    /// not derive.
    #[error(
        "record does not belong under this DHT key: its UID or device does not derive the key; \
         it was misplaced or forged"
    )]
    WrongKey,
    /// `expires_at` is not after `created_at`.
    #[error(
        "record lifetime is empty or negative: expires_at {expires_at} ≤ created_at {created_at}"
    )]
    InvalidLifetime {
        /// Claimed creation time, Unix seconds.
        created_at: u64,
        /// Claimed expiry time, Unix seconds.
        expires_at: u64,
    },
    /// The record claims a lifetime longer than [`MAX_RECORD_TTL`].
    #[error("record lifetime of {ttl} s exceeds the maximum of {max} s (7 days)")]
    TtlTooLong {
        /// `expires_at - created_at`, seconds.
        ttl: u64,
        /// The limit, [`MAX_RECORD_TTL`].
        max: u64,
    },
    /// A profile's lifetime is shorter than [`MIN_PROFILE_TTL`] (3 days).
    #[error("profile lifetime of {ttl} s is shorter than the minimum of {min} s (3 days)")]
    TtlTooShort {
        /// `expires_at - created_at`, seconds.
        ttl: u64,
        /// The limit.
        min: u64,
    },
    /// A profile field is out of its limits.
    #[error("invalid profile: {0}")]
    ProfileField(&'static str),
    /// An agent card breaks a limit of the card model (`AgentCard::validate`).
    #[error("invalid agent card: {0}")]
    AgentCard(&'static str),
    /// `created_at` lies more than [`MAX_CLOCK_SKEW`] after `now`.
    #[error(
        "record created in the future (created_at {created_at}, now {now}); \
         the publisher's clock (or ours) is wrong"
    )]
    CreatedInFuture {
        /// Claimed creation time, Unix seconds.
        created_at: u64,
        /// The validator's current time, Unix seconds.
        now: u64,
    },
    /// The record has expired.
    #[error("record expired at {expires_at} (now {now}); the owner has to republish it")]
    Expired {
        /// Claimed expiry time, Unix seconds.
        expires_at: u64,
        /// The validator's current time, Unix seconds.
        now: u64,
    },
    /// The record's signature does not verify.
    #[error(
        "record signature is invalid: the record was altered or was not signed by the key it names"
    )]
    InvalidSignature,
    /// A device certificate in a [`DeviceList`] is malformed, invalid or from
    /// another root.
    #[error("device list entry {index} is not a valid certificate for this identity: {source}")]
    DeviceListCertificate {
        /// 0-based index in the list.
        index: usize,
        /// What is wrong with it.
        source: CertError,
    },
    /// The device certificate of a [`KeyPackageBundle`] is malformed or invalid.
    #[error("key-package bundle's device certificate is invalid: {0}")]
    BundleCertificate(#[source] CertError),
    /// A [`KeyPackageBundle`] is being built with a device key that its
    /// certificate does not name.
    #[error("the device certificate names a different device key than the one signing the bundle")]
    CertificateNotForDevice,
    /// A [`DeviceList`] has more than [`MAX_DEVICES`] entries.
    #[error("device list has {actual} devices, at most {max} are allowed; remove old devices")]
    TooManyDevices {
        /// The limit, [`MAX_DEVICES`].
        max: usize,
        /// The number given.
        actual: usize,
    },
    /// A [`DeviceList`] names the same device key twice.
    #[error("device list entry {index} repeats a device key listed before it")]
    DuplicateDevice {
        /// 0-based index of the repeated entry.
        index: usize,
    },
    /// A [`KeyPackageBundle`] has no KeyPackage.
    #[error("key-package bundle is empty; it needs at least the last-resort key package")]
    NoKeyPackages,
    /// A [`KeyPackageBundle`] has more than [`MAX_KEY_PACKAGES`] KeyPackages.
    #[error("key-package bundle has {actual} key packages, at most {max} are allowed")]
    TooManyKeyPackages {
        /// The limit, [`MAX_KEY_PACKAGES`].
        max: usize,
        /// The number given.
        actual: usize,
    },
    /// A KeyPackage is larger than [`MAX_KEY_PACKAGE_BYTES`] or empty.
    #[error("key package {index} has {actual} bytes; each must have 1 to {max} bytes")]
    KeyPackageSize {
        /// 0-based index in the bundle.
        index: usize,
        /// The limit, [`MAX_KEY_PACKAGE_BYTES`].
        max: usize,
        /// The size given.
        actual: usize,
    },
    /// `last_resort_index` does not name a KeyPackage of the bundle.
    #[error("last-resort index {index} is out of range for {count} key packages")]
    LastResortOutOfRange {
        /// The index given.
        index: u64,
        /// The number of KeyPackages.
        count: usize,
    },
    /// An incoming record is not newer than the stored one: its version (for
    /// identity records: `created_at`) is lower, or equal with different
    /// content.
    #[error(
        "record version {incoming} is not newer than the stored version {existing}; \
         sign changes with a higher version"
    )]
    VersionNotNewer {
        /// Version (or identity `created_at`) of the stored record.
        existing: u64,
        /// Version (or identity `created_at`) of the incoming record.
        incoming: u64,
    },
    /// [`should_replace`] was given records that belong under different keys.
    #[error("the two records belong under different DHT keys, so neither replaces the other")]
    DifferentKeys,
}

/// A record that passed [`validate_record`]: well-formed, under the right key,
/// within its lifetime and correctly signed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidRecord {
    /// A user's root public key.
    Identity(IdentityRecord),
    /// A user's device list.
    DeviceList(DeviceList),
    /// One device's MLS KeyPackages.
    KeyPackages(KeyPackageBundle),
    /// A user's profile.
    Profile(Profile),
    /// An agent's card.
    AgentCard(AgentCardRecord),
}

/// Runs `$body` with `$record` bound to the record inside any
/// [`ValidRecord`] variant: every kind is a [`SignedRecord`] with the same
/// methods.
macro_rules! with_record {
    ($valid:expr, $record:ident => $body:expr) => {
        match $valid {
            ValidRecord::Identity($record) => $body,
            ValidRecord::DeviceList($record) => $body,
            ValidRecord::KeyPackages($record) => $body,
            ValidRecord::Profile($record) => $body,
            ValidRecord::AgentCard($record) => $body,
        }
    };
}

impl ValidRecord {
    /// Which kind of record this is.
    pub fn kind(&self) -> RecordKind {
        with_record!(self, r => r.kind())
    }

    /// The DHT key the record belongs under (derived from its content).
    pub fn key(&self) -> [u8; RECORD_KEY_LEN] {
        with_record!(self, r => r.key())
    }

    /// The UID of the identity the record belongs to.
    pub fn uid(&self) -> Uid {
        with_record!(self, r => r.uid())
    }

    /// Claimed creation time, Unix seconds.
    pub fn created_at(&self) -> u64 {
        with_record!(self, r => r.created_at())
    }

    /// Expiry time, Unix seconds: a storing node drops the record then.
    pub fn expires_at(&self) -> u64 {
        with_record!(self, r => r.expires_at())
    }

    /// What orders two records under one key: the `version` of versioned
    /// records, the `created_at` of identity records.
    pub fn ordering_version(&self) -> u64 {
        with_record!(self, r => r.ordering_version())
    }

    /// Encodes the value to store in the DHT (byte-identical to what was
    /// validated).
    pub fn encode(&self) -> Vec<u8> {
        with_record!(self, r => r.encode())
    }

    /// Whether the signed content is the same (signatures aside).
    fn same_content(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Identity(a), Self::Identity(b)) => a.same_content(b),
            (Self::DeviceList(a), Self::DeviceList(b)) => a.same_content(b),
            (Self::KeyPackages(a), Self::KeyPackages(b)) => a.same_content(b),
            (Self::Profile(a), Self::Profile(b)) => a.same_content(b),
            (Self::AgentCard(a), Self::AgentCard(b)) => a.same_content(b),
            _ => false,
        }
    }
}

impl From<IdentityRecord> for ValidRecord {
    fn from(record: IdentityRecord) -> Self {
        Self::Identity(record)
    }
}

impl From<DeviceList> for ValidRecord {
    fn from(record: DeviceList) -> Self {
        Self::DeviceList(record)
    }
}

impl From<Profile> for ValidRecord {
    fn from(record: Profile) -> Self {
        Self::Profile(record)
    }
}

impl From<AgentCardRecord> for ValidRecord {
    fn from(record: AgentCardRecord) -> Self {
        Self::AgentCard(record)
    }
}

impl From<KeyPackageBundle> for ValidRecord {
    fn from(record: KeyPackageBundle) -> Self {
        Self::KeyPackages(record)
    }
}

/// Validates a DHT record: the one function a storing node calls before it
/// stores `value` under `key`, and a reader calls on what it fetched.
///
/// `now` is the caller's current time in Unix seconds.
///
/// # Errors
///
/// Checked in this order, so that cheap checks refuse junk before any
/// signature work:
///
/// 1. [`RecordError::TooLarge`] if `value` exceeds [`MAX_RECORD_BYTES`]
///    (before decoding anything);
/// 2. decoding: [`RecordError::Malformed`], [`RecordError::NonCanonical`],
///    [`RecordError::UnknownKind`], [`RecordError::InvalidPublicKey`], the
///    count and size limits ([`RecordError::TooManyDevices`],
///    [`RecordError::TooManyKeyPackages`], [`RecordError::KeyPackageSize`],
///    [`RecordError::NoKeyPackages`], [`RecordError::LastResortOutOfRange`],
///    [`RecordError::DuplicateDevice`]) and malformed device certificates;
/// 3. [`RecordError::WrongKey`] if `key` is not the key the content derives;
/// 4. lifetime: [`RecordError::InvalidLifetime`],
///    [`RecordError::TtlTooLong`], [`RecordError::CreatedInFuture`],
///    [`RecordError::Expired`];
/// 5. signatures: [`RecordError::InvalidSignature`],
///    [`RecordError::DeviceListCertificate`],
///    [`RecordError::BundleCertificate`].
pub fn validate_record(key: &[u8], value: &[u8], now: u64) -> Result<ValidRecord, RecordError> {
    if value.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            max: MAX_RECORD_BYTES,
            actual: value.len(),
        });
    }
    let envelope: proto::SignedRecord =
        decode_canonical(value).map_err(|e| e.into_record_error("record envelope"))?;
    let kind = RecordKind::from_wire(envelope.kind)?;
    let signature = signature_from(&envelope.signature)?;
    let body = &envelope.body;
    match kind {
        RecordKind::Identity => {
            IdentityRecord::validate(key, body, signature, now).map(ValidRecord::Identity)
        }
        RecordKind::DeviceList => {
            DeviceList::validate(key, body, signature, now).map(ValidRecord::DeviceList)
        }
        RecordKind::KeyPackages => {
            KeyPackageBundle::validate(key, body, signature, now).map(ValidRecord::KeyPackages)
        }
        RecordKind::Profile => {
            Profile::validate(key, body, signature, now).map(ValidRecord::Profile)
        }
        RecordKind::AgentCard => {
            AgentCardRecord::validate(key, body, signature, now).map(ValidRecord::AgentCard)
        }
    }
}

/// Decides whether `incoming` should replace `existing`, both already
/// validated and stored under the same key.
///
/// * `Ok(true)`: `incoming` is newer (higher `version`; for identity records
///   a later `created_at`), store it.
/// * `Ok(false)`: the same content again (a republish), keep `existing`.
///
/// # Errors
///
/// * [`RecordError::DifferentKeys`] if the records belong under different
///   keys (this includes records of different kinds).
/// * [`RecordError::VersionNotNewer`] if `incoming` has a lower version, or
///   the same version with different content.
pub fn should_replace(existing: &ValidRecord, incoming: &ValidRecord) -> Result<bool, RecordError> {
    if existing.kind() != incoming.kind() || existing.key() != incoming.key() {
        return Err(RecordError::DifferentKeys);
    }
    let (old, new) = (existing.ordering_version(), incoming.ordering_version());
    if new > old {
        Ok(true)
    } else if new == old && existing.same_content(incoming) {
        Ok(false)
    } else {
        Err(RecordError::VersionNotNewer {
            existing: old,
            incoming: new,
        })
    }
}

/// The bytes a record signature covers: `"rhizo/record/v1" ‖ kind ‖ body`.
fn signed_message(kind: RecordKind, body: &[u8]) -> Vec<u8> {
    identity::signed_message(RECORD_SIGNATURE_DOMAIN, &[&[kind.wire_value()], body])
}

/// Wraps a signed body into the `SignedRecord` value stored in the DHT.
fn encode_envelope(kind: RecordKind, body: Vec<u8>, signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    proto::SignedRecord {
        kind: kind.to_proto().into(),
        body: body.into(),
        signature: bytes::Bytes::copy_from_slice(signature),
    }
    .encode_to_vec()
}

/// Checks that an encoded record a builder produced fits in the DHT.
fn check_encoded_size(encoded: &[u8]) -> Result<(), RecordError> {
    if encoded.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            max: MAX_RECORD_BYTES,
            actual: encoded.len(),
        });
    }
    Ok(())
}

/// Why [`decode_canonical`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CanonicalError {
    /// Not a valid protobuf encoding of the message.
    Malformed,
    /// Valid, but not the one canonical encoding.
    NonCanonical,
}

impl CanonicalError {
    /// The [`RecordError`] for this failure while decoding `what`.
    fn into_record_error(self, what: &'static str) -> RecordError {
        match self {
            Self::Malformed => RecordError::Malformed(what),
            Self::NonCanonical => RecordError::NonCanonical,
        }
    }
}

/// Decodes `bytes` as `M` and checks that re-encoding gives the same bytes.
pub(crate) fn decode_canonical<M: Message + Default>(bytes: &[u8]) -> Result<M, CanonicalError> {
    let message = M::decode(bytes).map_err(|_| CanonicalError::Malformed)?;
    if message.encoded_len() != bytes.len() || message.encode_to_vec() != bytes {
        return Err(CanonicalError::NonCanonical);
    }
    Ok(message)
}

/// Parses a 64-byte signature field.
fn signature_from(bytes: &[u8]) -> Result<[u8; SIGNATURE_LEN], RecordError> {
    <[u8; SIGNATURE_LEN]>::try_from(bytes)
        .map_err(|_| RecordError::Malformed("signature is not 64 bytes"))
}

/// Parses a 32-byte root public key field.
fn root_key_from(bytes: &[u8]) -> Result<RootPublicKey, RecordError> {
    let bytes =
        <&[u8; PUBLIC_KEY_LEN]>::try_from(bytes).map_err(|_| RecordError::InvalidPublicKey)?;
    RootPublicKey::from_bytes(bytes).map_err(|_| RecordError::InvalidPublicKey)
}

/// Checks a record's claimed lifetime against the limits and `now`.
fn check_lifetime(created_at: u64, expires_at: u64, now: u64) -> Result<(), RecordError> {
    let ttl = match expires_at.checked_sub(created_at) {
        Some(ttl) if ttl > 0 => ttl,
        _ => {
            return Err(RecordError::InvalidLifetime {
                created_at,
                expires_at,
            });
        }
    };
    if ttl > MAX_RECORD_TTL {
        return Err(RecordError::TtlTooLong {
            ttl,
            max: MAX_RECORD_TTL,
        });
    }
    if created_at > now.saturating_add(MAX_CLOCK_SKEW) {
        return Err(RecordError::CreatedInFuture { created_at, now });
    }
    if expires_at <= now {
        return Err(RecordError::Expired { expires_at, now });
    }
    Ok(())
}

/// The `expires_at` of a record a builder creates at `now` with `ttl` seconds
/// to live.
fn expiry_for_new(now: u64, ttl: u64) -> Result<u64, RecordError> {
    if ttl > MAX_RECORD_TTL {
        return Err(RecordError::TtlTooLong {
            ttl,
            max: MAX_RECORD_TTL,
        });
    }
    match now.checked_add(ttl) {
        Some(expires_at) if ttl > 0 => Ok(expires_at),
        _ => Err(RecordError::InvalidLifetime {
            created_at: now,
            expires_at: now.wrapping_add(ttl),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootKey;

    #[test]
    fn key_derivations_match_the_documented_hashes() {
        let root = RootKey::from_bytes(&[7u8; 32]).public();
        let uid = root.uid();
        let device = crate::DeviceKey::from_bytes(&[9u8; 32]).public();
        let manual = |parts: &[&[u8]]| -> [u8; 32] {
            let mut hasher = Sha256::new();
            parts.iter().for_each(|p| hasher.update(p));
            hasher.finalize().into()
        };
        assert_eq!(
            identity_key(&uid),
            manual(&[b"rhizo/identity/v1", uid.as_bytes()])
        );
        assert_eq!(
            device_list_key(&uid),
            manual(&[b"rhizo/devices/v1", uid.as_bytes()])
        );
        assert_eq!(
            key_packages_key(&uid, &device),
            manual(&[b"rhizo/keypackages/v1", uid.as_bytes(), device.as_bytes()])
        );
        assert_ne!(identity_key(&uid), device_list_key(&uid));
    }

    #[test]
    fn lifetime_rules() {
        let now = 1_000_000;
        assert_eq!(check_lifetime(now, now + 60, now), Ok(()));
        assert_eq!(check_lifetime(now, now + MAX_RECORD_TTL, now), Ok(()));
        assert_eq!(
            check_lifetime(now, now + MAX_RECORD_TTL + 1, now),
            Err(RecordError::TtlTooLong {
                ttl: MAX_RECORD_TTL + 1,
                max: MAX_RECORD_TTL
            })
        );
        assert!(matches!(
            check_lifetime(now, now, now),
            Err(RecordError::InvalidLifetime { .. })
        ));
        assert!(matches!(
            check_lifetime(now + 1, now, now),
            Err(RecordError::InvalidLifetime { .. })
        ));
        assert_eq!(
            check_lifetime(now + MAX_CLOCK_SKEW, now + MAX_CLOCK_SKEW + 1, now),
            Ok(())
        );
        assert_eq!(
            check_lifetime(now + MAX_CLOCK_SKEW + 1, now + MAX_CLOCK_SKEW + 2, now),
            Err(RecordError::CreatedInFuture {
                created_at: now + MAX_CLOCK_SKEW + 1,
                now
            })
        );
        assert_eq!(
            check_lifetime(now - 10, now, now),
            Err(RecordError::Expired {
                expires_at: now,
                now
            })
        );
        assert_eq!(check_lifetime(u64::MAX - 1, u64::MAX, u64::MAX - 1), Ok(()));
    }

    #[test]
    fn builder_lifetimes() {
        assert_eq!(expiry_for_new(10, 5), Ok(15));
        assert!(matches!(
            expiry_for_new(10, 0),
            Err(RecordError::InvalidLifetime { .. })
        ));
        assert!(matches!(
            expiry_for_new(u64::MAX, 1),
            Err(RecordError::InvalidLifetime { .. })
        ));
        assert!(matches!(
            expiry_for_new(10, MAX_RECORD_TTL + 1),
            Err(RecordError::TtlTooLong { .. })
        ));
    }

    #[test]
    fn signed_message_layout() {
        let message = signed_message(RecordKind::DeviceList, b"body");
        assert_eq!(message, b"rhizo/record/v1\x02body");
        assert_eq!(RecordKind::Identity.wire_value(), 1);
        assert_eq!(RecordKind::KeyPackages.wire_value(), 3);
        assert_eq!(
            RecordKind::Identity.wire_value() as i32,
            proto::RecordKind::Identity as i32
        );
        assert_eq!(
            RecordKind::DeviceList.wire_value() as i32,
            proto::RecordKind::DeviceList as i32
        );
        assert_eq!(
            RecordKind::KeyPackages.wire_value() as i32,
            proto::RecordKind::KeyPackages as i32
        );
    }

    #[test]
    fn canonical_decoding() {
        let message = proto::IdentityBody {
            root_pk: vec![1u8; 32].into(),
            created_at: 5,
            expires_at: 6,
        };
        let bytes = message.encode_to_vec();
        assert_eq!(
            decode_canonical::<proto::IdentityBody>(&bytes),
            Ok(message.clone())
        );
        // A field repeated (last one wins in protobuf) is not canonical.
        let mut doubled = bytes.clone();
        doubled.extend_from_slice(
            &proto::IdentityBody {
                created_at: 5,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(
            decode_canonical::<proto::IdentityBody>(&doubled),
            Err(CanonicalError::NonCanonical)
        );
        // An unknown field is not canonical either.
        let mut unknown = bytes.clone();
        unknown.extend_from_slice(&[0x78, 0x01]); // field 15, varint 1
        assert_eq!(
            decode_canonical::<proto::IdentityBody>(&unknown),
            Err(CanonicalError::NonCanonical)
        );
        // An explicit default value is not canonical.
        let explicit_zero = [0x10, 0x00];
        assert_eq!(
            decode_canonical::<proto::IdentityBody>(&explicit_zero),
            Err(CanonicalError::NonCanonical)
        );
        assert_eq!(
            decode_canonical::<proto::IdentityBody>(&[0x0a, 0x05]),
            Err(CanonicalError::Malformed)
        );
    }
}
