//! The wire envelope around every message between devices ([`SecureMessage`]),
//! signed delivery receipts ([`DeliveryReceipt`]), and the stable error codes
//! ([`ErrorCode`], [`ErrorMessage`]) a receiver reports back.
//!
//! Everything here is a codec plus signature checks: bytes in, typed values
//! out. Replay protection lives in [`seen`](crate::seen), ordering and
//! retransmission in [`delivery`](crate::delivery).
//!
//! ```text
//!  sender                                                   receiver
//!  SecureMessage{…} ──sign(&DeviceKey)──► encode() ══bytes══► decode()   size, fields, canonical form
//!                                                               │
//!                                             verify(&expected device key)
//!                                                               │
//!                            SeenSet::check_and_insert ◄────────┘ (replay, timestamp window)
//!                                                               │
//!  sender outbox (receipt)    ◄══ DeliveryReceipt{entries} ◄───┘ signed by the recipient device
//! ```
//!
//! # Wire format
//!
//! The messages are protobuf (proto3, package `rhizo.v1`, file
//! `proto/envelope.proto`), restricted to **one canonical encoding**: fields in
//! ascending field-number order, each at most once, minimal varints, default
//! values (0, empty) omitted, no unknown fields — exactly what `prost` writes.
//! Decoders re-encode what they parsed and reject the input
//! ([`EnvelopeError::NonCanonical`]) unless the bytes are identical. So an
//! accepted envelope has exactly one byte string, and its digest
//! ([`envelope_digest`]) identifies its content.
//!
//! Every `decode` checks, in this order: total size (before parsing), protobuf
//! syntax, version, every field's length, range and enum value, and the
//! canonical form. Signatures are checked only by `verify`, after all of that.
//!
//! ## `SecureMessage` (at most [`MAX_ENVELOPE_BYTES`])
//!
//! ```text
//! field  name           type        rule
//!     1  version        uint32      = 1 (ENVELOPE_VERSION)
//!     2  msg_type       MessageType known value, not 0
//!     3  sender_id      bytes       32: sender's UID
//!     4  sender_device  bytes       32: sender's device public key (Ed25519), the signer
//!     5  recipient_id   bytes       32: recipient's UID
//!     6  session_id     bytes       16: conversation id (random)
//!     7  sequence_num   uint64      >= 1, per sender device per session, from 1, never reused
//!     8  timestamp      uint64      unix milliseconds at the sender
//!     9  nonce          bytes       32 random bytes
//!    10  payload        bytes       <= MAX_PAYLOAD_BYTES, the MLS message (opaque here)
//!    11  signature      bytes       64
//! ```
//!
//! ## Envelope signature
//!
//! ```text
//! signature = Ed25519-Sign(sender device key,
//!                          "rhizo/envelope/v1" ‖ canonical encoding of fields 1–10)
//! ```
//!
//! that is, the 17 ASCII bytes of [`ENVELOPE_DOMAIN`] followed by the
//! canonical encoding of the same message with `signature` empty (omitted).
//! Since `signature` has the highest field number, the signed encoding is the
//! wire encoding minus its last 66 bytes (`0x5a 0x40` and the 64 signature
//! bytes). Verification uses `verify_strict` under the device key the caller
//! expects, after checking that it is the envelope's `sender_device`.
//!
//! ## Envelope digest
//!
//! `SHA-256("rhizo/envelope-digest/v1" ‖ envelope bytes)`
//! ([`ENVELOPE_DIGEST_DOMAIN`], [`envelope_digest`]). Receipts carry it so the
//! sender knows the recipient got exactly the bytes it signed.
//!
//! ## `DeliveryReceipt` (at most [`MAX_RECEIPT_BYTES`])
//!
//! ```text
//! field  name              type           rule
//!     1  version           uint32         = 1 (RECEIPT_VERSION)
//!     2  recipient_device  bytes          32: recipient device public key, the signer
//!     3  timestamp         uint64         unix milliseconds at the recipient
//!     4  entries           ReceiptEntry*  1..=MAX_RECEIPT_ENTRIES, no duplicate envelope ids
//!     5  signature         bytes          64
//!
//! ReceiptEntry:
//!     1  sender_device     bytes          32  ┐
//!     2  session_id        bytes          16  ├ the envelope's id (EnvelopeId)
//!     3  sequence_num      uint64         >= 1┘
//!     4  envelope_digest   bytes          32: envelope_digest(received bytes)
//!     5  status            ReceiptStatus  DELIVERED = 1 | READ = 2 | REJECTED = 3
//!     6  error_code        uint32         an ErrorCode iff status = REJECTED, else 0
//!
//! signature = Ed25519-Sign(recipient device key,
//!                          "rhizo/receipt/v1" ‖ canonical encoding of fields 1–4)
//! ```
//!
//! ## `ErrorMessage` (at most [`MAX_ERROR_MESSAGE_BYTES`])
//!
//! Sent as the payload of a signed [`SecureMessage`] of type
//! [`MessageType::Error`], so it has no signature of its own.
//!
//! ```text
//!     1  code          uint32  a known ErrorCode
//!     2  detail        string  <= MAX_ERROR_DETAIL_BYTES of UTF-8
//!     3  session_id    bytes   16, or empty if the refused envelope could not be parsed
//!     4  sequence_num  uint64  >= 1, or 0 exactly when session_id is empty
//! ```
//!
//! # Why the nonce
//!
//! Replay protection keys on the signed `(sender_device, session_id,
//! sequence_num)` (see [`seen`](crate::seen)); the 32-byte random nonce
//! additionally makes two envelopes distinct (different digests) even if a
//! device lost its state and reused a sequence number, so receipts can never
//! confuse them.

mod batch;
mod error_code;
mod message;
mod receipt;

use std::fmt;

use thiserror::Error;

use crate::error::KeyError;
pub(crate) use crate::identity::Hex;
use crate::identity::{DevicePublicKey, write_hex};

pub use batch::{
    BATCH_FRAME_MARKER, BATCH_VERSION, EnvelopeBatch, MAX_BATCH_ENVELOPES, MAX_BATCH_FRAME_BYTES,
    is_batch_frame,
};
pub use error_code::{ErrorCode, ErrorMessage, MAX_ERROR_DETAIL_BYTES, MAX_ERROR_MESSAGE_BYTES};
pub use message::{
    ENVELOPE_DIGEST_DOMAIN, ENVELOPE_DOMAIN, ENVELOPE_VERSION, MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES, MessageType, NONCE_LEN, SecureMessage, envelope_digest,
};
pub use receipt::{
    DeliveryReceipt, MAX_RECEIPT_BYTES, MAX_RECEIPT_ENTRIES, RECEIPT_DOMAIN, RECEIPT_VERSION,
    ReceiptEntry, ReceiptStatus,
};

/// Length of a [`SessionId`]: 128 random bits, so independently chosen
/// conversation ids do not collide.
pub const SESSION_ID_LEN: usize = 16;

/// Length of an [`envelope_digest`] (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// A conversation id: 16 random bytes chosen by whoever starts the
/// conversation (this crate draws no randomness for it).
///
/// `Debug` and `Display` print 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; SESSION_ID_LEN]);

impl SessionId {
    /// Wraps 16 bytes. Any value is accepted; pass fresh random bytes for a new
    /// conversation.
    pub const fn from_bytes(bytes: [u8; SESSION_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The 16 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; SESSION_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// What identifies one envelope: its signing device, its conversation and its
/// sequence number.
///
/// Used as the replay key in [`seen`](crate::seen), in receipts
/// ([`ReceiptEntry::envelope`]) and by the sender's outbox (rhizo-engine). A well-behaved
/// sender never signs two different envelopes with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvelopeId {
    /// The device key that signed the envelope.
    pub sender_device: DevicePublicKey,
    /// The conversation.
    pub session_id: SessionId,
    /// Position in the sender device's stream for this conversation (from 1).
    pub sequence_num: u64,
}

/// Error from decoding, signing or verifying a [`SecureMessage`],
/// [`DeliveryReceipt`] or [`ErrorMessage`].
///
/// [`code`](Self::code) maps each to the stable [`ErrorCode`] to report to the
/// sender.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The encoded message is larger than its limit; refused before parsing.
    #[error(
        "message too large: {len} bytes, the limit is {max}; the sender must split the \
         content or send smaller attachments"
    )]
    TooLarge {
        /// The size that was given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("payload too large: {len} bytes, the limit is {max}; split the content")]
    PayloadTooLarge {
        /// The payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not valid protobuf for this message.
    #[error("malformed message: not valid protobuf ({0}); it is corrupted or not a rhizo message")]
    Decode(#[source] prost::DecodeError),
    /// The bytes parse, but are not the one canonical encoding of the message.
    #[error(
        "malformed message: valid protobuf but not in canonical form (field order, duplicate \
         or unknown fields); the sender's encoder is broken or the message was altered"
    )]
    NonCanonical,
    /// The version field holds a value this build does not understand.
    #[error(
        "unsupported message version {0} (this build understands version 1); the peer may \
         run a newer rhizo — upgrade to read it"
    )]
    UnsupportedVersion(u32),
    /// The message type is 0 or unknown to this build.
    #[error("unknown message type {0}; the peer may run a newer rhizo")]
    UnknownMessageType(i32),
    /// The receipt status is 0 or unknown to this build.
    #[error("unknown receipt status {0}; the peer may run a newer rhizo")]
    UnknownReceiptStatus(i32),
    /// An error code is unknown, missing where required, or present where not allowed.
    #[error("invalid error code {0}: unknown, or not allowed with this status")]
    InvalidErrorCode(u32),
    /// A fixed-length field has the wrong length.
    #[error("malformed message: field `{field}` must be {expected} bytes, got {actual}")]
    FieldLength {
        /// Name of the field in `proto/envelope.proto`.
        field: &'static str,
        /// The only accepted length.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// A field that must hold a device public key does not hold a valid one.
    #[error("malformed message: field `{field}` is not a valid device public key: {source}")]
    InvalidKey {
        /// Name of the field in `proto/envelope.proto`.
        field: &'static str,
        /// Why the key was refused.
        #[source]
        source: KeyError,
    },
    /// A sequence number is 0 (they start at 1).
    #[error("invalid sequence number 0: sequence numbers start at 1")]
    ZeroSequenceNumber,
    /// A receipt has no entries.
    #[error("malformed receipt: it has no entries")]
    NoEntries,
    /// A receipt has more than [`MAX_RECEIPT_ENTRIES`] entries.
    #[error("receipt has {count} entries, the limit is {max}; send several receipts")]
    TooManyEntries {
        /// Number of entries given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A receipt names the same envelope twice.
    #[error("malformed receipt: two entries for the same envelope")]
    DuplicateEntry,
    /// An [`ErrorMessage`] detail is longer than [`MAX_ERROR_DETAIL_BYTES`].
    #[error("error detail too long: {len} bytes, the limit is {max}")]
    DetailTooLong {
        /// Length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An [`ErrorMessage`] names a session without a sequence number or the
    /// other way round.
    #[error(
        "malformed error message: session id and sequence number must both be set or both be empty"
    )]
    PartialReference,
    /// The key given to `sign` or `verify` is not the one the message names
    /// as its signer.
    #[error(
        "the message names a different signing device than the expected key; it was not \
         sent by the device you looked up"
    )]
    SignerMismatch,
    /// The signature does not verify.
    #[error("signature invalid: the message was altered or not signed by its sender device")]
    InvalidSignature,
    /// A batch frame does not start with [`BATCH_FRAME_MARKER`].
    #[error("not a batch frame: it must start with the byte 0xB1")]
    NotABatch,
    /// A batch holds fewer than 2 or more than [`MAX_BATCH_ENVELOPES`] envelopes.
    #[error(
        "a batch holds 2 to {max} envelopes, this one {count}; send one envelope bare, or split"
    )]
    BatchCount {
        /// Envelopes given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl EnvelopeError {
    /// The stable wire code to report for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. }
            | Self::PayloadTooLarge { .. }
            | Self::TooManyEntries { .. }
            | Self::DetailTooLong { .. } => ErrorCode::TooLarge,
            Self::UnsupportedVersion(_) => ErrorCode::InvalidVersion,
            Self::ZeroSequenceNumber => ErrorCode::SequenceError,
            Self::SignerMismatch => ErrorCode::UnknownSender,
            Self::InvalidSignature => ErrorCode::InvalidSignature,
            Self::Decode(_)
            | Self::NonCanonical
            | Self::UnknownMessageType(_)
            | Self::UnknownReceiptStatus(_)
            | Self::InvalidErrorCode(_)
            | Self::FieldLength { .. }
            | Self::InvalidKey { .. }
            | Self::NoEntries
            | Self::NotABatch
            | Self::BatchCount { .. }
            | Self::DuplicateEntry
            | Self::PartialReference => ErrorCode::Malformed,
        }
    }
}

impl From<prost::DecodeError> for EnvelopeError {
    fn from(error: prost::DecodeError) -> Self {
        Self::Decode(error)
    }
}

/// Refuses `len` bytes if above `max`; called before any parsing.
fn check_size(len: usize, max: usize) -> Result<(), EnvelopeError> {
    if len > max {
        return Err(EnvelopeError::TooLarge { len, max });
    }
    Ok(())
}

/// Copies a fixed-length field, or names it in the error.
fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], EnvelopeError> {
    bytes.try_into().map_err(|_| EnvelopeError::FieldLength {
        field,
        expected: N,
        actual: bytes.len(),
    })
}

/// Parses a device public key field (length, then curve point validity).
fn device_key(field: &'static str, bytes: &[u8]) -> Result<DevicePublicKey, EnvelopeError> {
    DevicePublicKey::from_bytes(&fixed(field, bytes)?)
        .map_err(|source| EnvelopeError::InvalidKey { field, source })
}

/// Requires a sequence number of at least 1.
fn sequence(sequence_num: u64) -> Result<u64, EnvelopeError> {
    if sequence_num == 0 {
        return Err(EnvelopeError::ZeroSequenceNumber);
    }
    Ok(sequence_num)
}

/// Requires `bytes` to be exactly the encoding `prost` produces for `parsed`.
fn ensure_canonical<M: prost::Message>(parsed: &M, bytes: &[u8]) -> Result<(), EnvelopeError> {
    if parsed.encoded_len() != bytes.len() || parsed.encode_to_vec() != bytes {
        return Err(EnvelopeError::NonCanonical);
    }
    Ok(())
}

/// `domain ‖ encoding of message`: the input to a signature.
fn signed_input<M: prost::Message>(domain: &[u8], message: &M) -> Vec<u8> {
    crate::identity::signed_message(domain, &[&message.encode_to_vec()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_prints_hex() {
        let id = SessionId::from_bytes([0xab; SESSION_ID_LEN]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(format!("{id:?}"), "ab".repeat(16));
        assert_eq!(id.as_bytes(), &[0xab; SESSION_ID_LEN]);
    }

    #[test]
    fn every_error_has_a_code() {
        let errors = [
            (
                EnvelopeError::TooLarge { len: 2, max: 1 },
                ErrorCode::TooLarge,
            ),
            (
                EnvelopeError::UnsupportedVersion(2),
                ErrorCode::InvalidVersion,
            ),
            (EnvelopeError::NonCanonical, ErrorCode::Malformed),
            (EnvelopeError::ZeroSequenceNumber, ErrorCode::SequenceError),
            (EnvelopeError::SignerMismatch, ErrorCode::UnknownSender),
            (EnvelopeError::InvalidSignature, ErrorCode::InvalidSignature),
        ];
        for (error, code) in errors {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn fixed_reports_the_field() {
        assert_eq!(fixed::<2>("x", &[1, 2]), Ok([1, 2]));
        assert_eq!(
            fixed::<2>("x", &[1]),
            Err(EnvelopeError::FieldLength {
                field: "x",
                expected: 2,
                actual: 1
            })
        );
    }
}
