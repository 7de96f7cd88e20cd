//! Test users for the mailbox tests here and in the node (feature `test-support`): a root key
//! and a device from a seed, their certificate, device list and signed envelopes.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use bytes::Bytes;
use rhizo_core::{
    DeviceKey, RootKey, Uid,
    envelope::{MessageType, NONCE_LEN, SecureMessage, SessionId},
    records::{DeviceList, RecordKind},
};

/// A test user: a root key and one device, from a seed.
#[derive(Debug)]
pub struct TestUser {
    /// The root key.
    pub root: RootKey,
    /// The one device.
    pub device: DeviceKey,
}

impl TestUser {
    /// The test user (seeds 1..=9) whose device is `device`.
    pub fn by_device(device: &rhizo_core::DevicePublicKey) -> Option<Self> {
        (1..=9)
            .map(Self::new)
            .find(|u| u.device.public() == *device)
    }

    /// The user of `seed` (1..=9 in the tests).
    pub fn new(seed: u8) -> Self {
        Self {
            root: RootKey::from_bytes(&[seed; 32]),
            device: DeviceKey::from_bytes(&[seed + 100; 32]),
        }
    }

    /// The user's UID.
    pub fn uid(&self) -> Uid {
        self.root.public().uid()
    }

    /// The device's certificate, encoded.
    pub fn cert(&self) -> Bytes {
        self.root
            .certify_device(&self.device.public(), 1)
            .encode()
            .into()
    }

    /// A signed device list of `version`, issued at `now_ms`, listing the device.
    pub fn device_list(&self, version: u64, now_ms: i64) -> Bytes {
        let cert = self.root.certify_device(&self.device.public(), 1);
        DeviceList::new(
            &self.root,
            version,
            vec![cert],
            (now_ms / 1000) as u64,
            3 * 86_400,
        )
        .unwrap()
        .encode()
        .into()
    }

    /// Another device of the user (`n` ≥ 1; the first one is [`device`](Self::device)).
    pub fn linked(&self, n: u8) -> DeviceKey {
        DeviceKey::from_bytes(&[self.device.public().as_bytes()[0] ^ n.wrapping_mul(37); 32])
    }

    /// A signed device list of `version`, issued at `now_ms`, listing `devices`.
    pub fn device_list_of(&self, version: u64, devices: &[&DeviceKey], now_ms: i64) -> Bytes {
        let certs = devices
            .iter()
            .map(|d| self.root.certify_device(&d.public(), 1))
            .collect();
        DeviceList::new(
            &self.root,
            version,
            certs,
            (now_ms / 1000) as u64,
            3 * 86_400,
        )
        .unwrap()
        .encode()
        .into()
    }

    /// A device list (version 9) for this user's UID, signed by this user's root, that lists
    /// `device` with a certificate issued by `issuer`'s root: what only a forger publishes (the
    /// builder refuses it, and so does every validation).
    pub fn forged_device_list(&self, issuer: &Self, device: &DeviceKey, now_ms: i64) -> Bytes {
        use prost::Message as _;
        let foreign = issuer.root.certify_device(&device.public(), 1);
        let own = self.root.certify_device(&self.device.public(), 1);
        let now = (now_ms / 1000) as u64;
        let body = rhizo_core::proto::DeviceListBody {
            root_pk: Bytes::copy_from_slice(self.root.public().as_bytes()),
            version: 9,
            devices: vec![
                Bytes::copy_from_slice(&own.to_bytes()),
                Bytes::copy_from_slice(&foreign.to_bytes()),
            ],
            created_at: now,
            expires_at: now + 86_400,
        }
        .encode_to_vec();
        let kind = RecordKind::DeviceList.wire_value();
        let mut message = b"rhizo/record/v1".to_vec();
        message.push(kind);
        message.extend_from_slice(&body);
        rhizo_core::proto::SignedRecord {
            kind: i32::from(kind),
            body: body.into(),
            signature: Bytes::copy_from_slice(&self.root.sign(&message)),
        }
        .encode_to_vec()
        .into()
    }

    /// A signed envelope from `self` to `to`.
    pub fn envelope(&self, to: &Self, seq: u64, at_ms: i64) -> Vec<u8> {
        self.envelope_to(to.uid(), MessageType::Application, seq, at_ms)
    }

    /// A signed envelope of `msg_type` from `self` whose `recipient_id` is `recipient` (a UID
    /// or a group address).
    pub fn envelope_to(
        &self,
        recipient: Uid,
        msg_type: MessageType,
        seq: u64,
        at_ms: i64,
    ) -> Vec<u8> {
        let mut m = SecureMessage {
            msg_type,
            sender_id: self.uid(),
            sender_device: self.device.public(),
            recipient_id: recipient,
            session_id: SessionId::from_bytes([1; 16]),
            sequence_num: seq,
            timestamp: at_ms as u64,
            nonce: [seq as u8; NONCE_LEN],
            payload: vec![0xAB; 100].into(),
            signature: [0; 64],
        };
        m.sign(&self.device).unwrap();
        m.encode()
    }
}
