//! [`SecureMessage`]: the signed envelope, and [`MessageType`].

use std::fmt;

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};

use super::{
    DIGEST_LEN, EnvelopeError, EnvelopeId, Hex, SessionId, check_size, device_key,
    ensure_canonical, fixed, sequence, signed_input,
};
use crate::identity::{DeviceKey, DevicePublicKey, SIGNATURE_LEN, UID_LEN, Uid};
use crate::proto;

/// The only envelope version this build reads and writes.
pub const ENVELOPE_VERSION: u32 = 1;
/// Domain tag in front of the signed encoding of an envelope.
pub const ENVELOPE_DOMAIN: &[u8] = b"rhizo/envelope/v1";
/// Domain tag in front of the envelope bytes hashed by [`envelope_digest`].
pub const ENVELOPE_DIGEST_DOMAIN: &[u8] = b"rhizo/envelope-digest/v1";
/// Length of the random nonce: 256 bits, so nonces never collide.
pub const NONCE_LEN: usize = 32;
/// Largest encoded envelope accepted: fits an MLS Welcome with an inline
/// ratchet tree for a group of a few dozen devices with X-Wing keys, while
/// keeping what a mailbox replica stores and a receiver buffers per envelope
/// small. Larger content is split above this layer.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;
/// Largest payload: the envelope limit minus 1 KiB reserved for the other
/// fields (at most 250 bytes).
pub const MAX_PAYLOAD_BYTES: usize = MAX_ENVELOPE_BYTES - 1024;

/// Most bytes the fields other than the payload's contents can take: tags,
/// lengths, fixed-size fields and 10-byte varints for the two u64 fields.
const MAX_HEADER_BYTES: usize = 2 // version
    + 2 // msg_type
    + 3 * (2 + 32) // sender_id, sender_device, recipient_id
    + (2 + 16) // session_id
    + 2 * (1 + 10) // sequence_num, timestamp
    + (2 + NONCE_LEN) // nonce
    + (1 + 3) // payload tag and length (< 2^21)
    + (2 + SIGNATURE_LEN); // signature

// Every envelope `sign` accepts encodes within `MAX_ENVELOPE_BYTES`.
const _: () = assert!(MAX_PAYLOAD_BYTES + MAX_HEADER_BYTES <= MAX_ENVELOPE_BYTES);
const _: () = assert!(MAX_PAYLOAD_BYTES < 1 << 21);

/// `SHA-256("rhizo/envelope-digest/v1" ‖ bytes)`: identifies an encoded
/// envelope in a [`DeliveryReceipt`](super::DeliveryReceipt).
///
/// Hash the bytes as received; since only the canonical encoding decodes,
/// this equals [`SecureMessage::digest`] of the decoded message.
pub fn envelope_digest(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::new()
        .chain_update(ENVELOPE_DIGEST_DOMAIN)
        .chain_update(bytes)
        .finalize()
        .into()
}

/// What a [`SecureMessage`]'s payload carries. Wire values are stable (see
/// [`as_i32`](Self::as_i32)); 0 and unknown values are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// An MLS application message (chat content). Wire value 1.
    Application,
    /// An MLS Welcome adding the recipient to a group. Wire value 2.
    Welcome,
    /// An MLS Commit. Wire value 3.
    Commit,
    /// An MLS Proposal sent on its own. Wire value 4.
    Proposal,
    /// A request for a fresh MLS KeyPackage. Wire value 5.
    KeyPackageRequest,
    /// An MLS KeyPackage answering a request. Wire value 6.
    KeyPackage,
    /// An encoded [`DeliveryReceipt`](super::DeliveryReceipt) with DELIVERED or
    /// REJECTED entries. Wire value 7.
    DeliveryReceipt,
    /// An encoded [`DeliveryReceipt`](super::DeliveryReceipt) with READ
    /// entries. Wire value 8.
    ReadReceipt,
    /// An encoded [`ErrorMessage`](super::ErrorMessage). Wire value 9.
    Error,
    /// An encoded [`WelcomePart`](crate::welcome::WelcomePart): a piece of a Welcome too
    /// large for one envelope. Wire value 10.
    WelcomePart,
}

impl MessageType {
    /// Every message type, in wire-value order.
    pub const ALL: [Self; 10] = [
        Self::Application,
        Self::Welcome,
        Self::Commit,
        Self::Proposal,
        Self::KeyPackageRequest,
        Self::KeyPackage,
        Self::DeliveryReceipt,
        Self::ReadReceipt,
        Self::Error,
        Self::WelcomePart,
    ];

    /// The protobuf enum value.
    pub fn as_i32(self) -> i32 {
        proto::MessageType::from(self) as i32
    }

    /// Parses a protobuf enum value; `None` for 0 and unknown values.
    pub fn from_i32(value: i32) -> Option<Self> {
        match proto::MessageType::try_from(value).ok()? {
            proto::MessageType::Unspecified => None,
            proto::MessageType::Application => Some(Self::Application),
            proto::MessageType::Welcome => Some(Self::Welcome),
            proto::MessageType::Commit => Some(Self::Commit),
            proto::MessageType::Proposal => Some(Self::Proposal),
            proto::MessageType::KeyPackageRequest => Some(Self::KeyPackageRequest),
            proto::MessageType::KeyPackage => Some(Self::KeyPackage),
            proto::MessageType::DeliveryReceipt => Some(Self::DeliveryReceipt),
            proto::MessageType::ReadReceipt => Some(Self::ReadReceipt),
            proto::MessageType::Error => Some(Self::Error),
            proto::MessageType::WelcomePart => Some(Self::WelcomePart),
        }
    }
}

impl From<MessageType> for proto::MessageType {
    fn from(value: MessageType) -> Self {
        match value {
            MessageType::Application => Self::Application,
            MessageType::Welcome => Self::Welcome,
            MessageType::Commit => Self::Commit,
            MessageType::Proposal => Self::Proposal,
            MessageType::KeyPackageRequest => Self::KeyPackageRequest,
            MessageType::KeyPackage => Self::KeyPackage,
            MessageType::DeliveryReceipt => Self::DeliveryReceipt,
            MessageType::ReadReceipt => Self::ReadReceipt,
            MessageType::Error => Self::Error,
            MessageType::WelcomePart => Self::WelcomePart,
        }
    }
}

/// The signed envelope around every message between devices (seed 004's
/// `SecureMessage`). The wire format and the exact signing rule are in the
/// [module docs](super#securemessage-at-most-max_envelope_bytes).
///
/// Build one with a struct literal (any `signature`, e.g. `[0; 64]`), then
/// [`sign`](Self::sign) and [`encode`](Self::encode). On receipt,
/// [`decode`](Self::decode) checks size and form; the result is *not* trusted
/// until [`verify`](Self::verify) succeeds against the device key you expect
/// for [`sender_id`](Self::sender_id) (for example from its device list).
///
/// ```
/// use rhizo_core::envelope::{MessageType, SecureMessage, SessionId};
/// use rhizo_core::{DeviceKey, RootKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (alice, bob) = (RootKey::from_bytes(&[1; 32]), RootKey::from_bytes(&[2; 32]));
/// let device = DeviceKey::from_bytes(&[3; 32]);
/// let mut message = SecureMessage {
///     msg_type: MessageType::Application,
///     sender_id: alice.public().uid(),
///     sender_device: device.public(),
///     recipient_id: bob.public().uid(),
///     session_id: SessionId::from_bytes([4; 16]),
///     sequence_num: 1,
///     timestamp: 1_700_000_000_000,
///     nonce: [5; 32],
///     payload: b"mls ciphertext".to_vec().into(),
///     signature: [0; 64],
/// };
/// message.sign(&device)?;
/// let bytes = message.encode();
///
/// let received = SecureMessage::decode(&bytes)?;
/// received.verify(&device.public())?;
/// assert_eq!(received, message);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecureMessage {
    /// What the payload carries.
    pub msg_type: MessageType,
    /// The sender's UID.
    pub sender_id: Uid,
    /// The sender's device public key; its secret key signs the envelope.
    pub sender_device: DevicePublicKey,
    /// The recipient's UID.
    pub recipient_id: Uid,
    /// The conversation.
    pub session_id: SessionId,
    /// Per sender device per session, from 1, never reused.
    pub sequence_num: u64,
    /// Unix milliseconds at the sender.
    pub timestamp: u64,
    /// 32 random bytes chosen by the sender.
    pub nonce: [u8; NONCE_LEN],
    /// The MLS message; opaque here. At most [`MAX_PAYLOAD_BYTES`].
    pub payload: Bytes,
    /// Ed25519 signature by `sender_device`; set by [`sign`](Self::sign).
    pub signature: [u8; SIGNATURE_LEN],
}

impl SecureMessage {
    /// The envelope's id: `(sender_device, session_id, sequence_num)`.
    pub fn id(&self) -> EnvelopeId {
        EnvelopeId {
            sender_device: self.sender_device,
            session_id: self.session_id,
            sequence_num: self.sequence_num,
        }
    }

    /// Encodes the envelope (canonical protobuf, version
    /// [`ENVELOPE_VERSION`]).
    ///
    /// A message that [`sign`](Self::sign) accepted encodes to at most
    /// [`MAX_ENVELOPE_BYTES`]; one with a larger payload or sequence number 0
    /// encodes, but [`decode`](Self::decode) refuses it.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto(true).encode_to_vec()
    }

    /// [`envelope_digest`] of [`encode`](Self::encode).
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        envelope_digest(&self.encode())
    }

    /// Decodes and checks an envelope: size first, then protobuf, version,
    /// every field and the canonical form. Does not verify the signature.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::TooLarge`] before parsing if `bytes` exceeds
    /// [`MAX_ENVELOPE_BYTES`]; otherwise the first problem found
    /// ([`EnvelopeError::code`] gives the wire code to report).
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        check_size(bytes.len(), MAX_ENVELOPE_BYTES)?;
        let wire = proto::SecureMessage::decode(bytes)?;
        if wire.version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(wire.version));
        }
        let msg_type = MessageType::from_i32(wire.msg_type)
            .ok_or(EnvelopeError::UnknownMessageType(wire.msg_type))?;
        let message = Self {
            msg_type,
            sender_id: Uid::from_bytes(&fixed::<UID_LEN>("sender_id", &wire.sender_id)?),
            sender_device: device_key("sender_device", &wire.sender_device)?,
            recipient_id: Uid::from_bytes(&fixed::<UID_LEN>("recipient_id", &wire.recipient_id)?),
            session_id: SessionId::from_bytes(fixed("session_id", &wire.session_id)?),
            sequence_num: sequence(wire.sequence_num)?,
            timestamp: wire.timestamp,
            nonce: fixed("nonce", &wire.nonce)?,
            payload: wire.payload.clone(),
            signature: fixed("signature", &wire.signature)?,
        };
        message.check_limits()?;
        ensure_canonical(&wire, bytes)?;
        Ok(message)
    }

    /// The exact bytes the signature covers: [`ENVELOPE_DOMAIN`] followed by
    /// the canonical encoding with `signature` empty.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_input(ENVELOPE_DOMAIN, &self.to_proto(false))
    }

    /// Signs the envelope with the sender's device key, replacing
    /// [`signature`](Self::signature).
    ///
    /// # Errors
    ///
    /// * [`EnvelopeError::SignerMismatch`] if `device` is not
    ///   [`sender_device`](Self::sender_device).
    /// * [`EnvelopeError::PayloadTooLarge`] or
    ///   [`EnvelopeError::ZeroSequenceNumber`] if the message could not be
    ///   decoded by a receiver.
    pub fn sign(&mut self, device: &DeviceKey) -> Result<(), EnvelopeError> {
        self.check_limits()?;
        if device.public() != self.sender_device {
            return Err(EnvelopeError::SignerMismatch);
        }
        self.signature = device.sign(&self.signed_bytes());
        Ok(())
    }

    /// Verifies the signature (`verify_strict`) under `device`, the key the
    /// caller expects for this sender (not merely the key the envelope names).
    ///
    /// # Errors
    ///
    /// * Size errors first, as in [`sign`](Self::sign), before any signature work.
    /// * [`EnvelopeError::SignerMismatch`] if `device` is not
    ///   [`sender_device`](Self::sender_device).
    /// * [`EnvelopeError::InvalidSignature`] if the signature does not verify.
    pub fn verify(&self, device: &DevicePublicKey) -> Result<(), EnvelopeError> {
        self.check_limits()?;
        if *device != self.sender_device {
            return Err(EnvelopeError::SignerMismatch);
        }
        device
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| EnvelopeError::InvalidSignature)
    }

    /// The limits that the typed fields do not already enforce.
    fn check_limits(&self) -> Result<(), EnvelopeError> {
        if self.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(EnvelopeError::PayloadTooLarge {
                len: self.payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        sequence(self.sequence_num)?;
        Ok(())
    }

    /// The protobuf form, with or without the signature.
    fn to_proto(&self, with_signature: bool) -> proto::SecureMessage {
        proto::SecureMessage {
            version: ENVELOPE_VERSION,
            msg_type: self.msg_type.as_i32(),
            sender_id: Bytes::copy_from_slice(self.sender_id.as_bytes()),
            sender_device: Bytes::copy_from_slice(self.sender_device.as_bytes()),
            recipient_id: Bytes::copy_from_slice(self.recipient_id.as_bytes()),
            session_id: Bytes::copy_from_slice(self.session_id.as_bytes()),
            sequence_num: self.sequence_num,
            timestamp: self.timestamp,
            nonce: Bytes::copy_from_slice(&self.nonce),
            payload: self.payload.clone(),
            signature: if with_signature {
                Bytes::copy_from_slice(&self.signature)
            } else {
                Bytes::new()
            },
        }
    }
}

/// Shows the header fields; the payload only by length.
impl fmt::Debug for SecureMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureMessage")
            .field("msg_type", &self.msg_type)
            .field("sender_id", &self.sender_id)
            .field("sender_device", &self.sender_device)
            .field("recipient_id", &self.recipient_id)
            .field("session_id", &self.session_id)
            .field("sequence_num", &self.sequence_num)
            .field("timestamp", &self.timestamp)
            .field("nonce", &Hex(&self.nonce))
            .field("payload_len", &self.payload.len())
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootKey;

    fn device() -> DeviceKey {
        DeviceKey::from_bytes(&[3; 32])
    }

    fn sample() -> SecureMessage {
        let mut message = SecureMessage {
            msg_type: MessageType::Application,
            sender_id: RootKey::from_bytes(&[1; 32]).public().uid(),
            sender_device: device().public(),
            recipient_id: RootKey::from_bytes(&[2; 32]).public().uid(),
            session_id: SessionId::from_bytes([4; 16]),
            sequence_num: 7,
            timestamp: 1_700_000_000_000,
            nonce: [5; NONCE_LEN],
            payload: Bytes::from_static(b"ciphertext"),
            signature: [0; SIGNATURE_LEN],
        };
        message.sign(&device()).expect("sign");
        message
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn round_trip_and_verify() {
        let message = sample();
        let bytes = message.encode();
        let decoded = SecureMessage::decode(&bytes).expect("decode");
        assert_eq!(decoded, message);
        assert_eq!(decoded.verify(&device().public()), Ok(()));
        assert_eq!(decoded.digest(), envelope_digest(&bytes));
        assert_eq!(decoded.id().sequence_num, 7);
    }

    #[test]
    fn signed_bytes_are_the_wire_bytes_without_the_signature_field() {
        let message = sample();
        let wire = message.encode();
        let signed = message.signed_bytes();
        assert_eq!(&signed[..ENVELOPE_DOMAIN.len()], ENVELOPE_DOMAIN);
        let unsigned_wire = &wire[..wire.len() - (2 + SIGNATURE_LEN)];
        assert_eq!(&signed[ENVELOPE_DOMAIN.len()..], unsigned_wire);
        assert_eq!(&wire[wire.len() - 66..wire.len() - 64], &[0x5a, 0x40]);
        assert_eq!(&wire[wire.len() - 64..], &message.signature);
    }

    /// Frozen vector (cross-checked with an independent Python encoder and the
    /// `cryptography` package's Ed25519): a change here breaks every deployed
    /// peer. Fields as in `sample()`; device key seed `[3; 32]`.
    #[test]
    fn frozen_vector() {
        let message = sample();
        let wire = message.encode();
        assert_eq!(hex(&wire), FROZEN_WIRE);
        assert_eq!(hex(&message.digest()), FROZEN_DIGEST);
    }

    const FROZEN_WIRE: &str = "\
        080110011a20692dea00f4ccfffea227a81e303fe18405fe87e0c3a5e5238c227fee42ce86282220\
        ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d12a204a1ac9b60869\
        629c1a89abad467321a114bc7f927cebd8fc7b16cb368c12802a3210040404040404040404040404\
        0404040438074080d095ffbc314a2005050505050505050505050505050505050505050505050505\
        05050505050505520a636970686572746578745a4091400eaa0b6e63be966bc7f5e17ca48ddbac5f\
        1b1797f7fe4a12b5b79d97931b68ccdda593a95271bb938200a241e72e14e51e0b5a34d593bb0962\
        6b526bfd05";
    const FROZEN_DIGEST: &str = "d29d81e501b7c57d19c4178c5cb7f9c2755bb104f9e9d5ad5b8b28f6f89da1c3";

    #[test]
    fn header_fits_the_reserved_space() {
        let mut message = sample();
        message.payload = Bytes::from(vec![0xff; MAX_PAYLOAD_BYTES]);
        message.sequence_num = u64::MAX;
        message.timestamp = u64::MAX;
        message.sign(&device()).expect("sign");
        let bytes = message.encode();
        assert!(bytes.len() <= MAX_ENVELOPE_BYTES);
        assert_eq!(bytes.len() - MAX_PAYLOAD_BYTES, MAX_HEADER_BYTES);
        assert_eq!(SecureMessage::decode(&bytes), Ok(message.clone()));

        message.payload = Bytes::from(vec![0; MAX_PAYLOAD_BYTES + 1]);
        assert!(matches!(
            message.sign(&device()),
            Err(EnvelopeError::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            SecureMessage::decode(&message.encode()),
            Err(EnvelopeError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let junk = vec![0xff; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            SecureMessage::decode(&junk),
            Err(EnvelopeError::TooLarge {
                len: MAX_ENVELOPE_BYTES + 1,
                max: MAX_ENVELOPE_BYTES
            })
        );
    }

    #[test]
    fn version_and_type_are_checked() {
        let message = sample();
        let mut wire = message.to_proto(true);
        wire.version = 2;
        assert_eq!(
            SecureMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::UnsupportedVersion(2))
        );
        let mut wire = message.to_proto(true);
        wire.msg_type = 0;
        assert_eq!(
            SecureMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::UnknownMessageType(0))
        );
        wire.msg_type = 99;
        assert_eq!(
            SecureMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::UnknownMessageType(99))
        );
        let mut wire = message.to_proto(true);
        wire.sequence_num = 0;
        assert_eq!(
            SecureMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::ZeroSequenceNumber)
        );
        let mut wire = message.to_proto(true);
        wire.session_id = Bytes::from_static(&[1; 15]);
        assert_eq!(
            SecureMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::FieldLength {
                field: "session_id",
                expected: 16,
                actual: 15
            })
        );
        let mut wire = message.to_proto(true);
        wire.sender_device = Bytes::from_static(&[0; 32]);
        assert!(matches!(
            SecureMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::InvalidKey {
                field: "sender_device",
                ..
            })
        ));
    }

    #[test]
    fn message_types_round_trip() {
        for (i, msg_type) in MessageType::ALL.into_iter().enumerate() {
            let value = msg_type.as_i32();
            assert_eq!(usize::try_from(value), Ok(i + 1));
            assert_eq!(MessageType::from_i32(value), Some(msg_type));
        }
        assert_eq!(MessageType::from_i32(0), None);
        assert_eq!(MessageType::from_i32(11), None);
        assert_eq!(MessageType::from_i32(-1), None);
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        let wire = sample().encode();
        // Append the version field again (a duplicate; prost keeps the last).
        let mut duplicate = wire.clone();
        duplicate.extend_from_slice(&[0x08, 0x01]);
        assert_eq!(
            SecureMessage::decode(&duplicate),
            Err(EnvelopeError::NonCanonical)
        );
        // An unknown field (number 15, varint 0).
        let mut unknown = wire.clone();
        unknown.extend_from_slice(&[0x78, 0x00]);
        assert_eq!(
            SecureMessage::decode(&unknown),
            Err(EnvelopeError::NonCanonical)
        );
        // Non-minimal varint for the version: 0x81 0x00 == 1.
        let mut long_varint = vec![0x08, 0x81, 0x00];
        long_varint.extend_from_slice(&wire[2..]);
        assert_eq!(
            SecureMessage::decode(&long_varint),
            Err(EnvelopeError::NonCanonical)
        );
        // Fields out of order: move the version to the end.
        let mut reordered = wire[2..].to_vec();
        reordered.extend_from_slice(&wire[..2]);
        assert_eq!(
            SecureMessage::decode(&reordered),
            Err(EnvelopeError::NonCanonical)
        );
    }

    #[test]
    fn verify_checks_signer_then_signature() {
        let message = sample();
        let other = DeviceKey::from_bytes(&[9; 32]);
        assert_eq!(
            message.verify(&other.public()),
            Err(EnvelopeError::SignerMismatch)
        );
        let mut stolen = message.clone();
        assert_eq!(stolen.sign(&other), Err(EnvelopeError::SignerMismatch));
        stolen.timestamp += 1;
        assert_eq!(
            stolen.verify(&device().public()),
            Err(EnvelopeError::InvalidSignature)
        );
    }

    #[test]
    fn debug_hides_the_payload() {
        let text = format!("{:?}", sample());
        assert!(text.contains("payload_len: 10"));
        assert!(!text.contains("ciphertext"));
    }
}
