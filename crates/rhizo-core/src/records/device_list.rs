//! [`DeviceList`]: the versioned, root-signed list of a user's devices.

use prost::Message;

use super::signed::{SignedRecord, VersionedBody, sealed::Body};
use super::{
    MAX_DEVICES, RECORD_KEY_LEN, RecordError, RecordKind, decode_canonical, device_list_key,
    root_key_from,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{DeviceCertificate, RootKey, RootPublicKey, Uid};

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
pub type DeviceList = SignedRecord<DeviceListBody>;

/// The body of a [`DeviceList`]: the owner's root key, the version and the
/// device certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceListBody {
    root_pk: RootPublicKey,
    version: u64,
    devices: Vec<DeviceCertificate>,
}

impl DeviceListBody {
    /// The root public key that signed the list.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
    }

    /// The certified devices, in the order the owner listed them. Each has
    /// been verified against [`root_pk`](Self::root_pk).
    pub fn devices(&self) -> &[DeviceCertificate] {
        &self.devices
    }

    /// Checks every certificate against the list's root key.
    fn verify_certificates(&self) -> Result<(), RecordError> {
        for (index, cert) in self.devices.iter().enumerate() {
            cert.verify_for(&self.root_pk)
                .map_err(|source| RecordError::DeviceListCertificate { index, source })?;
        }
        Ok(())
    }
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
        let body = DeviceListBody {
            root_pk: root.public(),
            version,
            devices,
        };
        check_devices(&body.devices)?;
        body.verify_certificates()?;
        Self::sign(body, now, ttl, |message| root.sign(message))
    }
}

impl VersionedBody for DeviceListBody {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Body for DeviceListBody {
    const KIND: RecordKind = RecordKind::DeviceList;

    fn key(&self) -> [u8; RECORD_KEY_LEN] {
        device_list_key(&self.root_pk.uid())
    }

    fn uid(&self) -> Uid {
        self.root_pk.uid()
    }

    fn ordering_version(&self, _created_at: u64) -> u64 {
        self.version
    }

    fn encode(&self, created_at: u64, expires_at: u64) -> Vec<u8> {
        proto::DeviceListBody {
            root_pk: bytes::Bytes::copy_from_slice(self.root_pk.as_bytes()),
            version: self.version,
            devices: self
                .devices
                .iter()
                .map(|cert| bytes::Bytes::copy_from_slice(&cert.to_bytes()))
                .collect(),
            created_at,
            expires_at,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<(Self, u64, u64), RecordError> {
        let decoded: proto::DeviceListBody =
            decode_canonical(bytes).map_err(|e| e.into_record_error("device list body"))?;
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
        let body = Self {
            root_pk,
            version: decoded.version,
            devices,
        };
        Ok((body, decoded.created_at, decoded.expires_at))
    }

    fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), RecordError> {
        self.root_pk
            .verify(message, signature)
            .map_err(|_| RecordError::InvalidSignature)?;
        self.verify_certificates()
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
