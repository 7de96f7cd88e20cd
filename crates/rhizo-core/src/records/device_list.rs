//! [`DeviceList`]: the versioned, root-signed list of a user's devices.

use std::fmt;

use prost::Message;

use super::{
    Hex, MAX_DEVICES, RECORD_KEY_LEN, RecordError, RecordKind, check_encoded_size, check_key,
    check_lifetime, decode_canonical, device_list_key, encode_envelope, expiry_for_new,
    root_key_from, signed_message,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{DeviceCertificate, RootKey, RootPublicKey};

/// The devices that currently speak for a user, signed by the root key and
/// stored under [`device_list_key`](super::device_list_key)`(uid)`.
///
/// Body (`rhizo.v1.DeviceListBody`): `root_pk` (32 bytes), `version`,
/// `devices` (each a 137-byte [`DeviceCertificate`] issued by `root_pk`, at
/// most [`MAX_DEVICES`], no device key twice), `created_at`, `expires_at`.
/// Signed by the root key; see the [signed bytes](super#signed-bytes).
/// `version` must grow with every change: a device list with a lower version,
/// or the same version and different content, never replaces a stored one.
///
/// A device missing from the newest list is revoked.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceList {
    root_pk: RootPublicKey,
    version: u64,
    devices: Vec<DeviceCertificate>,
    created_at: u64,
    expires_at: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl DeviceList {
    /// Signs a new device list valid from `now` for `ttl` seconds.
    ///
    /// # Errors
    ///
    /// * [`RecordError::TooManyDevices`] for more than [`MAX_DEVICES`]
    ///   certificates, [`RecordError::DuplicateDevice`] if a device key
    ///   repeats;
    /// * [`RecordError::DeviceListCertificate`] if a certificate was not
    ///   issued by `root` or does not verify;
    /// * [`RecordError::TtlTooLong`] / [`RecordError::InvalidLifetime`] for a
    ///   bad `ttl`.
    pub fn new(
        root: &RootKey,
        version: u64,
        devices: Vec<DeviceCertificate>,
        now: u64,
        ttl: u64,
    ) -> Result<Self, RecordError> {
        let root_pk = root.public();
        check_devices(&devices)?;
        for (index, cert) in devices.iter().enumerate() {
            cert.verify_for(&root_pk)
                .map_err(|source| RecordError::DeviceListCertificate { index, source })?;
        }
        let expires_at = expiry_for_new(now, ttl)?;
        let mut list = Self {
            root_pk,
            version,
            devices,
            created_at: now,
            expires_at,
            signature: [0; SIGNATURE_LEN],
        };
        list.signature = root.sign(&signed_message(RecordKind::DeviceList, &list.body()));
        check_encoded_size(&list.encode())?;
        Ok(list)
    }

    /// The root public key that signed the list.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
    }

    /// The list's version; higher replaces lower.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The certified devices, in the order the owner listed them. Each has
    /// been verified against [`root_pk`](Self::root_pk).
    pub fn devices(&self) -> &[DeviceCertificate] {
        &self.devices
    }

    /// Claimed creation time, Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Expiry time, Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The root key's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The DHT key this record belongs under.
    pub fn key(&self) -> [u8; RECORD_KEY_LEN] {
        device_list_key(&self.root_pk.uid())
    }

    /// Encodes the `SignedRecord` value to store in the DHT.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(RecordKind::DeviceList, self.body(), &self.signature)
    }

    /// The canonical body encoding.
    fn body(&self) -> Vec<u8> {
        proto::DeviceListBody {
            root_pk: bytes::Bytes::copy_from_slice(self.root_pk.as_bytes()),
            version: self.version,
            devices: self
                .devices
                .iter()
                .map(|cert| bytes::Bytes::copy_from_slice(&cert.to_bytes()))
                .collect(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
        .encode_to_vec()
    }

    /// Decodes and checks a device-list body; see
    /// [`validate_record`](super::validate_record) for the order.
    pub(super) fn validate(
        key: &[u8],
        body: &[u8],
        signature: [u8; SIGNATURE_LEN],
        now: u64,
    ) -> Result<Self, RecordError> {
        let decoded: proto::DeviceListBody =
            decode_canonical(body).map_err(|e| e.into_record_error("device list body"))?;
        let root_pk = root_key_from(&decoded.root_pk)?;
        if decoded.devices.len() > MAX_DEVICES {
            return Err(RecordError::TooManyDevices {
                max: MAX_DEVICES,
                actual: decoded.devices.len(),
            });
        }
        let devices = decoded
            .devices
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                DeviceCertificate::decode(bytes)
                    .map_err(|source| RecordError::DeviceListCertificate { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_devices(&devices)?;
        check_key(key, &device_list_key(&root_pk.uid()))?;
        check_lifetime(decoded.created_at, decoded.expires_at, now)?;
        root_pk
            .verify(&signed_message(RecordKind::DeviceList, body), &signature)
            .map_err(|_| RecordError::InvalidSignature)?;
        for (index, cert) in devices.iter().enumerate() {
            cert.verify_for(&root_pk)
                .map_err(|source| RecordError::DeviceListCertificate { index, source })?;
        }
        Ok(Self {
            root_pk,
            version: decoded.version,
            devices,
            created_at: decoded.created_at,
            expires_at: decoded.expires_at,
            signature,
        })
    }

    /// Whether the signed fields are equal (signatures aside).
    pub(super) fn same_content(&self, other: &Self) -> bool {
        self.root_pk == other.root_pk
            && self.version == other.version
            && self.devices == other.devices
            && self.created_at == other.created_at
            && self.expires_at == other.expires_at
    }
}

/// Checks the count and that no device key repeats (no signature work).
fn check_devices(devices: &[DeviceCertificate]) -> Result<(), RecordError> {
    if devices.len() > MAX_DEVICES {
        return Err(RecordError::TooManyDevices {
            max: MAX_DEVICES,
            actual: devices.len(),
        });
    }
    for (index, cert) in devices.iter().enumerate() {
        if devices[..index].iter().any(|c| c.device() == cert.device()) {
            return Err(RecordError::DuplicateDevice { index });
        }
    }
    Ok(())
}

impl fmt::Debug for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceList")
            .field("root_pk", &self.root_pk)
            .field("version", &self.version)
            .field("devices", &self.devices)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}
