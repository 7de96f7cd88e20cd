//! Property tests for the envelope codecs: round trips, no panics on arbitrary
//! bytes, and tamper detection down to every single bit.

use bytes::Bytes;
use proptest::prelude::*;
use rhizo_core::envelope::{
    DeliveryReceipt, EnvelopeError, EnvelopeId, ErrorCode, ErrorMessage, MAX_RECEIPT_ENTRIES,
    MessageType, ReceiptEntry, ReceiptStatus, SecureMessage, SessionId, envelope_digest,
};
use rhizo_core::{DeviceKey, Uid};

fn message_type() -> impl Strategy<Value = MessageType> {
    (0..MessageType::ALL.len()).prop_map(|i| MessageType::ALL[i])
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    (0..ErrorCode::ALL.len()).prop_map(|i| ErrorCode::ALL[i])
}

/// An unsigned envelope and the seed of its (valid) device key.
fn unsigned_envelope() -> impl Strategy<Value = ([u8; 32], SecureMessage)> {
    (
        any::<[u8; 32]>(),
        message_type(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 16]>(),
        1..=u64::MAX,
        any::<u64>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(
            |(seed, msg_type, sender, recipient, session, seq, timestamp, nonce, payload)| {
                let device = DeviceKey::from_bytes(&seed);
                let message = SecureMessage {
                    msg_type,
                    sender_id: Uid::from_bytes(&sender),
                    sender_device: device.public(),
                    recipient_id: Uid::from_bytes(&recipient),
                    session_id: SessionId::from_bytes(session),
                    sequence_num: seq,
                    timestamp,
                    nonce,
                    payload: Bytes::from(payload),
                    signature: [0; 64],
                };
                (seed, message)
            },
        )
}

fn signed_envelope() -> impl Strategy<Value = (DeviceKey, SecureMessage)> {
    unsigned_envelope().prop_map(|(seed, mut message)| {
        let device = DeviceKey::from_bytes(&seed);
        message.sign(&device).expect("valid envelope signs");
        (device, message)
    })
}

fn receipt_status() -> impl Strategy<Value = ReceiptStatus> {
    prop_oneof![
        Just(ReceiptStatus::Delivered),
        Just(ReceiptStatus::Read),
        error_code().prop_map(ReceiptStatus::Rejected),
    ]
}

fn signed_receipt() -> impl Strategy<Value = (DeviceKey, DeliveryReceipt)> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 16]>(),
        any::<u64>(),
        proptest::collection::btree_map(
            1..=u64::MAX,
            (any::<[u8; 32]>(), receipt_status()),
            1..=16,
        ),
    )
        .prop_map(|(seed, sender_seed, session, timestamp, entries)| {
            let device = DeviceKey::from_bytes(&seed);
            let sender_device = DeviceKey::from_bytes(&sender_seed).public();
            let mut receipt = DeliveryReceipt {
                recipient_device: device.public(),
                timestamp,
                entries: entries
                    .into_iter()
                    .map(|(seq, (digest, status))| ReceiptEntry {
                        envelope: EnvelopeId {
                            sender_device,
                            session_id: SessionId::from_bytes(session),
                            sequence_num: seq,
                        },
                        envelope_digest: digest,
                        status,
                    })
                    .collect(),
                signature: [0; 64],
            };
            receipt.sign(&device).expect("valid receipt signs");
            (device, receipt)
        })
}

/// Changes one field of an envelope; `which` picks the field.
fn tamper(message: &mut SecureMessage, which: usize, byte: u8) {
    let byte = byte | 1; // never a no-op XOR
    match which % 10 {
        0 => {
            let i = (MessageType::ALL
                .iter()
                .position(|t| *t == message.msg_type)
                .expect("known")
                + 1)
                % MessageType::ALL.len();
            message.msg_type = MessageType::ALL[i];
        }
        1 => {
            let mut uid = *message.sender_id.as_bytes();
            uid[0] ^= byte;
            message.sender_id = Uid::from_bytes(&uid);
        }
        2 => {
            let mut uid = *message.recipient_id.as_bytes();
            uid[31] ^= byte;
            message.recipient_id = Uid::from_bytes(&uid);
        }
        3 => {
            let mut session = *message.session_id.as_bytes();
            session[5] ^= byte;
            message.session_id = SessionId::from_bytes(session);
        }
        4 => message.sequence_num = message.sequence_num.wrapping_add(1).max(1),
        5 => message.timestamp ^= u64::from(byte),
        6 => message.nonce[7] ^= byte,
        7 => {
            let mut payload = message.payload.to_vec();
            match payload.first_mut() {
                Some(first) => *first ^= byte,
                None => payload.push(byte),
            }
            message.payload = Bytes::from(payload);
        }
        8 => message.signature[byte as usize % 64] ^= byte,
        _ => message.sender_device = DeviceKey::from_bytes(&[byte; 32]).public(),
    }
}

proptest! {
    #[test]
    fn envelope_round_trips((device, message) in signed_envelope()) {
        let bytes = message.encode();
        let decoded = SecureMessage::decode(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &message);
        prop_assert_eq!(decoded.verify(&device.public()), Ok(()));
        prop_assert_eq!(decoded.encode(), bytes.clone());
        prop_assert_eq!(decoded.digest(), envelope_digest(&bytes));
    }

    #[test]
    fn tampered_field_fails_verify(
        (device, message) in signed_envelope(),
        which in 0usize..10,
        byte in any::<u8>(),
    ) {
        let mut tampered = message.clone();
        tamper(&mut tampered, which, byte);
        prop_assume!(tampered != message);
        prop_assert!(tampered.verify(&device.public()).is_err());
        prop_assert!(tampered.verify(&tampered.sender_device).is_err());
        // Through the wire too.
        if let Ok(decoded) = SecureMessage::decode(&tampered.encode()) {
            prop_assert!(decoded.verify(&decoded.sender_device).is_err());
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = SecureMessage::decode(&bytes);
        let _ = DeliveryReceipt::decode(&bytes);
        let _ = ErrorMessage::decode(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_mutated_envelopes(
        (_, message) in signed_envelope(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = message.encode();
        for (at, value) in edits {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(decoded) = SecureMessage::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes (canonical form).
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn receipt_round_trips((device, receipt) in signed_receipt()) {
        let bytes = receipt.encode();
        let decoded = DeliveryReceipt::decode(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &receipt);
        prop_assert_eq!(decoded.verify(&device.public()), Ok(()));
        prop_assert!(decoded.entries.len() <= MAX_RECEIPT_ENTRIES);
    }

    #[test]
    fn receipt_bit_flips_are_rejected(
        (device, receipt) in signed_receipt(),
        bit in any::<usize>(),
    ) {
        let mut bytes = receipt.encode();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(decoded) = DeliveryReceipt::decode(&bytes) {
            prop_assert!(decoded.verify(&device.public()).is_err());
            prop_assert!(decoded.verify(&decoded.recipient_device).is_err());
        }
    }

    #[test]
    fn error_message_round_trips(
        code in error_code(),
        detail in ".{0,300}",
        refused in proptest::option::of((any::<[u8; 16]>(), 1..=u64::MAX)),
    ) {
        let message = ErrorMessage::new(
            code,
            &detail,
            refused.map(|(session, seq)| (SessionId::from_bytes(session), seq)),
        );
        prop_assert_eq!(ErrorMessage::decode(&message.encode()), Ok(message));
    }
}

/// Every single bit flip of a signed envelope is rejected: either it no longer
/// decodes, or it no longer verifies — neither under the original device key
/// nor under whatever key the flipped envelope names.
#[test]
fn every_bit_flip_of_a_signed_envelope_is_rejected() {
    let device = DeviceKey::from_bytes(&[0x42; 32]);
    let mut message = SecureMessage {
        msg_type: MessageType::Application,
        sender_id: Uid::from_bytes(&[1; 32]),
        sender_device: device.public(),
        recipient_id: Uid::from_bytes(&[2; 32]),
        session_id: SessionId::from_bytes([3; 16]),
        sequence_num: 300,
        timestamp: 1_700_000_000_000,
        nonce: [4; 32],
        payload: Bytes::from_static(b"hello, mls"),
        signature: [0; 64],
    };
    message.sign(&device).expect("sign");
    let bytes = message.encode();
    let (mut decode_errors, mut verify_errors) = (0, 0);
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        match SecureMessage::decode(&flipped) {
            Err(_) => decode_errors += 1,
            Ok(decoded) => {
                assert!(
                    decoded.verify(&device.public()).is_err(),
                    "bit {bit}: verifies under the original key"
                );
                assert!(
                    decoded.verify(&decoded.sender_device).is_err(),
                    "bit {bit}: verifies under its own named key"
                );
                verify_errors += 1;
            }
        }
    }
    assert_eq!(decode_errors + verify_errors, bytes.len() * 8);
    // Both layers do real work: structure errors and signature errors.
    assert!(decode_errors > 0 && verify_errors > 0);
}

#[test]
fn signature_malleability_is_rejected() {
    // Adding the group order L to S gives a different encoding of "the same"
    // signature; verify_strict must refuse it.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let device = DeviceKey::from_bytes(&[0x42; 32]);
    let mut message = SecureMessage {
        msg_type: MessageType::Commit,
        sender_id: Uid::from_bytes(&[1; 32]),
        sender_device: device.public(),
        recipient_id: Uid::from_bytes(&[2; 32]),
        session_id: SessionId::from_bytes([3; 16]),
        sequence_num: 1,
        timestamp: 0,
        nonce: [4; 32],
        payload: Bytes::new(),
        signature: [0; 64],
    };
    message.sign(&device).expect("sign");
    let mut carry = 0u16;
    for (s, l) in message.signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    let decoded = SecureMessage::decode(&message.encode()).expect("decodes");
    assert_eq!(
        decoded.verify(&device.public()),
        Err(EnvelopeError::InvalidSignature)
    );
}
