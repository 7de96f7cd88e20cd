//! [`DeliveryReceipt`]: a recipient device's signed statement about the
//! envelopes it received.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use prost::Message as _;

use super::error_code::code_from_u32;
use super::{
    DIGEST_LEN, EnvelopeError, EnvelopeId, ErrorCode, Hex, SecureMessage, SessionId, check_size,
    device_key, ensure_canonical, fixed, sequence, signed_input,
};
use crate::identity::{DeviceKey, DevicePublicKey, SIGNATURE_LEN};
use crate::proto;

/// The only receipt version this build reads and writes.
pub const RECEIPT_VERSION: u32 = 1;
/// Domain tag in front of the signed encoding of a receipt.
pub const RECEIPT_DOMAIN: &[u8] = b"rhizo/receipt/v1";
/// Most entries in one receipt: enough to acknowledge a whole mailbox fetch
/// or a sender's in-flight window at once, small enough to bound the receipt.
pub const MAX_RECEIPT_ENTRIES: usize = 256;
/// Largest encoded receipt: [`MAX_RECEIPT_ENTRIES`] entries of at most 105
/// bytes plus the header, rounded up.
pub const MAX_RECEIPT_BYTES: usize = 32 * 1024;

/// Most bytes one encoded entry takes, with its tag and length.
const MAX_ENTRY_BYTES: usize = 2 // tag, length
    + (2 + 32) // sender_device
    + (2 + 16) // session_id
    + (1 + 10) // sequence_num
    + (2 + DIGEST_LEN) // envelope_digest
    + 2 // status
    + (1 + 3); // error_code (u16)
/// Most bytes the receipt's own fields take.
const MAX_RECEIPT_HEADER_BYTES: usize = 2 + (2 + 32) + (1 + 10) + (2 + SIGNATURE_LEN);

// Every receipt `sign` accepts encodes within `MAX_RECEIPT_BYTES`.
const _: () =
    assert!(MAX_RECEIPT_ENTRIES * MAX_ENTRY_BYTES + MAX_RECEIPT_HEADER_BYTES <= MAX_RECEIPT_BYTES);

/// What happened to one envelope at the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptStatus {
    /// Received, verified and stored. Sent again for duplicates, so a sender
    /// whose first receipt was lost still learns of the delivery.
    Delivered,
    /// Shown to the user (implies delivered).
    Read,
    /// Refused, with the reason.
    Rejected(ErrorCode),
    /// Verified and kept by the recipient's node as a message request (the sender is not a
    /// contact yet): not shown to the user until they accept it, at which point a signed
    /// `Delivered` receipt follows. The sender does not resend it.
    Held,
}

/// One envelope acknowledged by a [`DeliveryReceipt`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptEntry {
    /// Which envelope.
    pub envelope: EnvelopeId,
    /// [`envelope_digest`](super::envelope_digest) of the bytes received,
    /// so the sender knows they are the bytes it signed.
    pub envelope_digest: [u8; DIGEST_LEN],
    /// What happened to it.
    pub status: ReceiptStatus,
}

impl ReceiptEntry {
    /// The entry for a received (decoded) envelope.
    pub fn for_envelope(message: &SecureMessage, status: ReceiptStatus) -> Self {
        Self {
            envelope: message.id(),
            envelope_digest: message.digest(),
            status,
        }
    }

    fn to_proto(self) -> proto::ReceiptEntry {
        let (status, error_code) = match self.status {
            ReceiptStatus::Delivered => (proto::ReceiptStatus::Delivered, 0),
            ReceiptStatus::Read => (proto::ReceiptStatus::Read, 0),
            ReceiptStatus::Held => (proto::ReceiptStatus::Held, 0),
            ReceiptStatus::Rejected(code) => {
                (proto::ReceiptStatus::Rejected, u32::from(code.as_u16()))
            }
        };
        proto::ReceiptEntry {
            sender_device: Bytes::copy_from_slice(self.envelope.sender_device.as_bytes()),
            session_id: Bytes::copy_from_slice(self.envelope.session_id.as_bytes()),
            sequence_num: self.envelope.sequence_num,
            envelope_digest: Bytes::copy_from_slice(&self.envelope_digest),
            status: status as i32,
            error_code,
        }
    }

    fn from_proto(wire: &proto::ReceiptEntry) -> Result<Self, EnvelopeError> {
        let status = match proto::ReceiptStatus::try_from(wire.status) {
            Ok(proto::ReceiptStatus::Delivered) => ReceiptStatus::Delivered,
            Ok(proto::ReceiptStatus::Read) => ReceiptStatus::Read,
            Ok(proto::ReceiptStatus::Held) => ReceiptStatus::Held,
            Ok(proto::ReceiptStatus::Rejected) => {
                ReceiptStatus::Rejected(code_from_u32(wire.error_code)?)
            }
            Ok(proto::ReceiptStatus::Unspecified) | Err(_) => {
                return Err(EnvelopeError::UnknownReceiptStatus(wire.status));
            }
        };
        if !matches!(status, ReceiptStatus::Rejected(_)) && wire.error_code != 0 {
            return Err(EnvelopeError::InvalidErrorCode(wire.error_code));
        }
        Ok(Self {
            envelope: EnvelopeId {
                sender_device: device_key("sender_device", &wire.sender_device)?,
                session_id: SessionId::from_bytes(fixed("session_id", &wire.session_id)?),
                sequence_num: sequence(wire.sequence_num)?,
            },
            envelope_digest: fixed("envelope_digest", &wire.envelope_digest)?,
            status,
        })
    }
}

impl fmt::Debug for ReceiptEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptEntry")
            .field("envelope", &self.envelope)
            .field("envelope_digest", &Hex(&self.envelope_digest))
            .field("status", &self.status)
            .finish()
    }
}

/// A recipient device's signed statement about envelopes it received
/// (possibly several, coalesced, up to [`MAX_RECEIPT_ENTRIES`]). Wire format
/// and signing rule in the
/// [module docs](super#deliveryreceipt-at-most-max_receipt_bytes).
///
/// A decoded receipt is not trusted until [`verify`](Self::verify) succeeds
/// under a device key certified for the recipient's UID; the sender
/// (rhizo-engine's outbox) then checks each
/// entry's digest against what it sent.
#[derive(Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The recipient device; its secret key signs the receipt.
    pub recipient_device: DevicePublicKey,
    /// Unix milliseconds at the recipient.
    pub timestamp: u64,
    /// The acknowledged envelopes, 1 to [`MAX_RECEIPT_ENTRIES`], each at most once.
    pub entries: Vec<ReceiptEntry>,
    /// Ed25519 signature by `recipient_device`; set by [`sign`](Self::sign).
    pub signature: [u8; SIGNATURE_LEN],
}

impl DeliveryReceipt {
    /// Encodes the receipt (canonical protobuf, version [`RECEIPT_VERSION`]).
    ///
    /// A receipt that [`sign`](Self::sign) accepted encodes to at most
    /// [`MAX_RECEIPT_BYTES`].
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto(true).encode_to_vec()
    }

    /// Decodes and checks a receipt: size first, then protobuf, version, every
    /// entry, duplicates and the canonical form. Does not verify the signature.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::TooLarge`] before parsing above
    /// [`MAX_RECEIPT_BYTES`]; otherwise the first problem found.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        check_size(bytes.len(), MAX_RECEIPT_BYTES)?;
        let wire = proto::DeliveryReceipt::decode(bytes)?;
        if wire.version != RECEIPT_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(wire.version));
        }
        check_entry_count(wire.entries.len())?;
        let receipt = Self {
            recipient_device: device_key("recipient_device", &wire.recipient_device)?,
            timestamp: wire.timestamp,
            entries: wire
                .entries
                .iter()
                .map(ReceiptEntry::from_proto)
                .collect::<Result<_, _>>()?,
            signature: fixed("signature", &wire.signature)?,
        };
        receipt.check_limits()?;
        ensure_canonical(&wire, bytes)?;
        Ok(receipt)
    }

    /// The exact bytes the signature covers: [`RECEIPT_DOMAIN`] followed by
    /// the canonical encoding with `signature` empty.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_input(RECEIPT_DOMAIN, &self.to_proto(false))
    }

    /// Signs the receipt with the recipient's device key, replacing
    /// [`signature`](Self::signature).
    ///
    /// # Errors
    ///
    /// * [`EnvelopeError::NoEntries`], [`EnvelopeError::TooManyEntries`] or
    ///   [`EnvelopeError::DuplicateEntry`] if the entries could not be decoded
    ///   by the sender.
    /// * [`EnvelopeError::SignerMismatch`] if `device` is not
    ///   [`recipient_device`](Self::recipient_device).
    pub fn sign(&mut self, device: &DeviceKey) -> Result<(), EnvelopeError> {
        self.check_limits()?;
        if device.public() != self.recipient_device {
            return Err(EnvelopeError::SignerMismatch);
        }
        self.signature = device.sign(&self.signed_bytes());
        Ok(())
    }

    /// Verifies the signature (`verify_strict`) under `device`, the key the
    /// caller expects for the recipient.
    ///
    /// # Errors
    ///
    /// Entry-count errors first (before signature work), then
    /// [`EnvelopeError::SignerMismatch`], then
    /// [`EnvelopeError::InvalidSignature`].
    pub fn verify(&self, device: &DevicePublicKey) -> Result<(), EnvelopeError> {
        self.check_limits()?;
        if *device != self.recipient_device {
            return Err(EnvelopeError::SignerMismatch);
        }
        device
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| EnvelopeError::InvalidSignature)
    }

    /// Entry count and uniqueness.
    fn check_limits(&self) -> Result<(), EnvelopeError> {
        check_entry_count(self.entries.len())?;
        let mut seen = BTreeSet::new();
        if !self.entries.iter().all(|entry| seen.insert(entry.envelope)) {
            return Err(EnvelopeError::DuplicateEntry);
        }
        Ok(())
    }

    fn to_proto(&self, with_signature: bool) -> proto::DeliveryReceipt {
        proto::DeliveryReceipt {
            version: RECEIPT_VERSION,
            recipient_device: Bytes::copy_from_slice(self.recipient_device.as_bytes()),
            timestamp: self.timestamp,
            entries: self.entries.iter().map(|entry| entry.to_proto()).collect(),
            signature: if with_signature {
                Bytes::copy_from_slice(&self.signature)
            } else {
                Bytes::new()
            },
        }
    }
}

/// Requires 1 to [`MAX_RECEIPT_ENTRIES`] entries.
fn check_entry_count(count: usize) -> Result<(), EnvelopeError> {
    match count {
        0 => Err(EnvelopeError::NoEntries),
        count if count > MAX_RECEIPT_ENTRIES => Err(EnvelopeError::TooManyEntries {
            count,
            max: MAX_RECEIPT_ENTRIES,
        }),
        _ => Ok(()),
    }
}

impl fmt::Debug for DeliveryReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryReceipt")
            .field("recipient_device", &self.recipient_device)
            .field("timestamp", &self.timestamp)
            .field("entries", &self.entries)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient() -> DeviceKey {
        DeviceKey::from_bytes(&[8; 32])
    }

    fn entry(seq: u64, status: ReceiptStatus) -> ReceiptEntry {
        ReceiptEntry {
            envelope: EnvelopeId {
                sender_device: DeviceKey::from_bytes(&[3; 32]).public(),
                session_id: SessionId::from_bytes([4; 16]),
                sequence_num: seq,
            },
            envelope_digest: [seq as u8; DIGEST_LEN],
            status,
        }
    }

    fn receipt(entries: Vec<ReceiptEntry>) -> DeliveryReceipt {
        DeliveryReceipt {
            recipient_device: recipient().public(),
            timestamp: 1_700_000_000_123,
            entries,
            signature: [0; SIGNATURE_LEN],
        }
    }

    #[test]
    fn round_trip_sign_verify() {
        let mut receipt = receipt(vec![
            entry(1, ReceiptStatus::Delivered),
            entry(2, ReceiptStatus::Read),
            entry(3, ReceiptStatus::Rejected(ErrorCode::DecryptionFailed)),
        ]);
        receipt.sign(&recipient()).expect("sign");
        let bytes = receipt.encode();
        let decoded = DeliveryReceipt::decode(&bytes).expect("decode");
        assert_eq!(decoded, receipt);
        assert_eq!(decoded.verify(&recipient().public()), Ok(()));
        let signed = decoded.signed_bytes();
        assert_eq!(&signed[..RECEIPT_DOMAIN.len()], RECEIPT_DOMAIN);
        assert_eq!(
            &signed[RECEIPT_DOMAIN.len()..],
            &bytes[..bytes.len() - (2 + SIGNATURE_LEN)]
        );

        let mut tampered = decoded.clone();
        tampered.entries[0].status = ReceiptStatus::Read;
        assert_eq!(
            tampered.verify(&recipient().public()),
            Err(EnvelopeError::InvalidSignature)
        );
        assert_eq!(
            decoded.verify(&DeviceKey::from_bytes(&[9; 32]).public()),
            Err(EnvelopeError::SignerMismatch)
        );
    }

    #[test]
    fn a_full_receipt_fits() {
        let entries = (1..=MAX_RECEIPT_ENTRIES as u64)
            .map(|seq| {
                let mut entry = entry(seq, ReceiptStatus::Rejected(ErrorCode::Internal));
                entry.envelope.sequence_num = u64::MAX - seq;
                entry
            })
            .collect();
        let mut receipt = receipt(entries);
        receipt.timestamp = u64::MAX;
        receipt.sign(&recipient()).expect("sign");
        let bytes = receipt.encode();
        assert!(bytes.len() <= MAX_RECEIPT_BYTES, "{}", bytes.len());
        assert_eq!(DeliveryReceipt::decode(&bytes), Ok(receipt.clone()));

        receipt.entries.push(entry(1, ReceiptStatus::Delivered));
        assert_eq!(
            receipt.sign(&recipient()),
            Err(EnvelopeError::TooManyEntries {
                count: MAX_RECEIPT_ENTRIES + 1,
                max: MAX_RECEIPT_ENTRIES
            })
        );
    }

    #[test]
    fn entries_are_checked() {
        let mut empty = receipt(vec![]);
        assert_eq!(empty.sign(&recipient()), Err(EnvelopeError::NoEntries));
        assert_eq!(
            DeliveryReceipt::decode(&empty.encode()),
            Err(EnvelopeError::NoEntries)
        );

        let duplicate = receipt(vec![
            entry(1, ReceiptStatus::Delivered),
            entry(1, ReceiptStatus::Read),
        ]);
        assert_eq!(
            DeliveryReceipt::decode(&duplicate.encode()),
            Err(EnvelopeError::DuplicateEntry)
        );

        let good = receipt(vec![entry(1, ReceiptStatus::Delivered)]);
        let mut wire = good.to_proto(true);
        wire.entries[0].error_code = 3;
        assert_eq!(
            DeliveryReceipt::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::InvalidErrorCode(3))
        );
        wire.entries[0].status = proto::ReceiptStatus::Rejected as i32;
        wire.entries[0].error_code = 0;
        assert_eq!(
            DeliveryReceipt::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::InvalidErrorCode(0))
        );
        wire.entries[0].status = 0;
        assert_eq!(
            DeliveryReceipt::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::UnknownReceiptStatus(0))
        );
        let mut wire = good.to_proto(true);
        wire.entries[0].sequence_num = 0;
        assert_eq!(
            DeliveryReceipt::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::ZeroSequenceNumber)
        );
        let mut wire = good.to_proto(true);
        wire.version = 0;
        assert_eq!(
            DeliveryReceipt::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::UnsupportedVersion(0))
        );
    }

    #[test]
    fn size_is_checked_first() {
        assert_eq!(
            DeliveryReceipt::decode(&vec![0; MAX_RECEIPT_BYTES + 1]),
            Err(EnvelopeError::TooLarge {
                len: MAX_RECEIPT_BYTES + 1,
                max: MAX_RECEIPT_BYTES
            })
        );
    }
}
