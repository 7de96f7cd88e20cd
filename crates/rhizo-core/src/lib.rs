//! Sans-IO core of rhizo: who a user is, which devices speak for them, and how
//! their identity is written down for humans.
//!
//! This crate does no I/O: no sockets, no files, no clock reads. The only
//! outside resource it touches is the operating system's random number
//! generator, and only in [`RootKey::generate`] and [`DeviceKey::generate`].
//! Callers pass the current time in (for example to
//! [`RootKey::certify_device`]). The one exception is
//! [`PeerRateLimiter`], which reads time from a
//! `governor` clock the caller chooses (the monotonic clock by default, a fake
//! clock in tests).
//!
//! # Identity model
//!
//! * A user owns one long-term **root key** ([`RootKey`], Ed25519). Its public
//!   half ([`RootPublicKey`]) *is* the identity.
//! * The user's **UID** ([`Uid`]) is a hash of the root public key, printed as a
//!   typo-checked code (see [`idcode`]) such as
//!   `AAAAAAA-AAAAAAA-…` (8 groups of 7). Users share it to be found.
//! * The **fingerprint** ([`Fingerprint`]) is a shorter hash users read out to
//!   each other to confirm they have the right root key.
//! * Each device has its own **device key** ([`DeviceKey`], Ed25519), which is
//!   also the device's libp2p node identity. The root key vouches for it with
//!   a [`DeviceCertificate`].
//!
//! # Layout
//!
//! - [`agent`] — the agent protocol's model (seed 004 as A2A 1.0): task states and
//!   transitions, priorities, parts, artifacts, cards, liveness; [`agent::wire`] converts
//!   to `proto/agent.proto`.
//! - [`identity`] — root and device keys, [`Uid`], [`Fingerprint`] and
//!   [`DeviceCertificate`] (wire format: 137 bytes, see
//!   [`DEVICE_CERT_LEN`]); the domain-separated signed-message builder every
//!   signature of this crate uses.
//! - [`idcode`] — grouped base32 with one Luhn mod 32 check character per
//!   group, used to print and parse [`Uid`]s.
//! - [`error`] — one error enum per operation: [`KeyError`], [`CertError`],
//!   [`IdCodeError`].
//! - [`envelope`] — the signed envelope [`SecureMessage`], [`DeliveryReceipt`],
//!   [`ErrorMessage`] and its stable [`ErrorCode`]s, and batch frames.
//! - [`delivery`] — deterministic models of delivery states, retries and
//!   in-order receipt ([`DeliveryTracker`], [`ReceiveOrdering`]).
//! - [`file`] — files and attachments: the [`file::FileRef`] inside MLS, the per-chunk
//!   encryption, the verified tree (bao-tree) and the `/rhizo/file/1` codecs.
//! - [`seen`] — the replay window and seen-set of received envelope ids.
//! - [`records`] — signed DHT records: one [`records::SignedRecord`] type
//!   with per-kind bodies (identity, device list, KeyPackage bundle,
//!   [`Profile`], agent card) and their validation.
//! - [`mailbox`] — the `/rhizo/mailbox/1` codecs, fetch signatures and
//!   challenge nonces of offline-delivery replicas.
//! - [`link`] — linking a new device: the link ticket ([`link::LinkTicket`], `rhz1link…`),
//!   the one-time secret's proofs and the `/rhizo/link/1` messages.
//! - [`ticket`] — signed contact tickets ([`ContactTicket`]) with device
//!   possession proofs, in text and QR form.
//! - [`group`] — private groups: [`group::GroupAddress`], roles ([`group::GroupRole`]), the
//!   MLS GroupContext extension body [`group::GroupState`] with its [`group::GroupProfile`],
//!   [`group::GroupRejoin`] and the group limits.
//! - [`welcome`] — Welcomes larger than one envelope: the [`welcome::WelcomePart`] codec,
//!   [`welcome::split_welcome`] and the bounded [`welcome::WelcomeReassembler`].
//! - [`safety`] — safety numbers two users compare ([`SafetyNumber`]).
//! - [`abuse`] — per-peer token buckets ([`PeerRateLimiter`]) and a sans-IO
//!   reputation score per peer with temporary bans ([`Reputation`]).
//! - [`channel`] — public broadcast channels over gossipsub: [`ChannelId`],
//!   signed [`ChannelPost`]s and the [`PostDedupe`] cache.
//! - [`proto`] — the prost types generated from `proto/*.proto`.
//!
//! The wire formats are specified normatively in `docs/protocol.md`, with a
//! frozen vector for every signed structure (`crates/rhizo-vectors`).
//!
//! # Data flow
//!
//! ```text
//!   OS RNG ──generate()──► RootKey ──public()──► RootPublicKey ──uid()──► Uid ──Display──► "ABCDEFG-…"
//!                            │                      │                                        │
//!                            │                      └──fingerprint()──► "ABCD EFGH …"     FromStr
//!                            │                                                               ▼
//!   DeviceKey ──public()──► DevicePublicKey                                           idcode::decode
//!                            │
//!          certify_device(&device_pk, now_unix_secs)
//!                            ▼
//!                   DeviceCertificate ──encode()──► 137 bytes ──decode()──► DeviceCertificate
//!                                                                                │
//!                                                              verify_for(&expected_root) ──► Ok / CertError
//! ```
//!
//! # Example
//!
//! ```
//! use rhizo_core::{DeviceCertificate, DeviceKey, RootKey, Uid};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = RootKey::generate()?;
//! let device = DeviceKey::generate()?;
//! let cert = root.certify_device(&device.public(), 1_700_000_000);
//!
//! // Ship the certificate over the wire…
//! let bytes = cert.encode();
//! // …and check it on the other side against the identity we expect.
//! let received = DeviceCertificate::decode(&bytes)?;
//! received.verify_for(&root.public())?;
//!
//! // UIDs print as typo-checked codes and parse back.
//! let uid = root.public().uid();
//! let parsed: Uid = uid.to_string().parse()?;
//! assert_eq!(parsed, uid);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod error;
pub mod group;
pub mod idcode;
pub mod identity;
pub mod welcome;

// --- envelope & delivery (SecureMessage, error codes, seen-set, retries) ---
pub mod delivery;
pub mod envelope;
pub mod file;
pub mod seen;
pub use envelope::{
    DeliveryReceipt, EnvelopeError, EnvelopeId, ErrorCode, ErrorMessage, MessageType, ReceiptEntry,
    ReceiptStatus, SecureMessage, SessionId,
};
pub use seen::{Freshness, MemorySeenStore, SeenSet, SeenStore};
// --- end envelope & delivery ---

// --- records & tickets (DHT records, contact tickets, safety numbers) ---
pub mod link;
pub mod mailbox;
pub mod records;
pub mod safety;
pub mod ticket;
pub use records::{
    DeviceList, IdentityRecord, KeyPackageBundle, Profile, RecordError, RecordKind, ValidRecord,
    should_replace, validate_record,
};
pub use safety::{SafetyNumber, SafetyNumberError};
pub use ticket::{ContactTicket, DeviceProof, TicketDevice, TicketError};
// --- end records & tickets ---

// --- abuse resistance & public channels (rate limits, reputation, gossipsub channel posts) ---
pub mod abuse;
pub mod channel;
pub use abuse::{Conduct, PeerRateLimiter, RateLimited, Reputation, ReputationConfig, Verdict};
pub use channel::{
    ChannelDescriptor, ChannelError, ChannelId, ChannelIdError, ChannelPost, PostDedupe,
};
// --- end abuse resistance & public channels ---

/// Types generated by prost from the `.proto` files in `proto/` (package `rhizo.v1`).
pub mod proto {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/rhizo.v1.rs"));
}

pub use error::{CertError, IdCodeError, KeyError};
pub use identity::{
    DEVICE_CERT_LEN, DeviceCertificate, DeviceKey, DevicePublicKey, Fingerprint, RootKey,
    RootPublicKey, Uid,
};
