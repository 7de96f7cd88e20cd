//! [`KeyPackageBundle`]: one device's MLS KeyPackages, signed by that device.

use std::fmt;

use bytes::Bytes;
use prost::Message;

use super::signed::{SignedRecord, VersionedBody, sealed::Body};
use super::{
    MAX_KEY_PACKAGE_BYTES, MAX_KEY_PACKAGES, RECORD_KEY_LEN, RecordError, RecordKind,
    decode_canonical, key_packages_key,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{DeviceCertificate, DeviceKey, Uid};

/// One device's MLS KeyPackages ("prekeys"), stored under
/// [`key_packages_key`](super::key_packages_key)`(uid, device_pk)` so a new
/// contact can start an encrypted conversation while the device is offline.
///
/// Body (`rhizo.v1.KeyPackageBundleBody`): `device_cert` (the 137-byte
/// [`DeviceCertificate`] naming the root and this device), `version`,
/// `key_packages` (1 to [`MAX_KEY_PACKAGES`] opaque TLS-serialized MLS
/// KeyPackages, each 1 to [`MAX_KEY_PACKAGE_BYTES`] bytes),
/// `last_resort_index` (which KeyPackage is the last-resort one, reused once
/// the others are consumed), `created_at`, `expires_at`.
///
/// Signed by the **device** key named in the certificate; the certificate is
/// verified against the root it names, and the UID of that root plus the
/// device key must derive the key the record is stored under. Storing nodes
/// cannot check that the device is on the user's current
/// [`DeviceList`](super::DeviceList); readers must.
///
/// This crate does not parse the KeyPackages: the MLS layer checks them
/// (including that their credentials and signature keys match the device).
pub type KeyPackageBundle = SignedRecord<KeyPackageBundleBody>;

/// The body of a [`KeyPackageBundle`]: the device certificate, the version
/// and the KeyPackages.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPackageBundleBody {
    device_cert: DeviceCertificate,
    version: u64,
    key_packages: Vec<Bytes>,
    last_resort_index: usize,
}

impl KeyPackageBundleBody {
    /// The certificate of the device that signed the bundle, verified against
    /// the root it names.
    pub fn device_cert(&self) -> &DeviceCertificate {
        &self.device_cert
    }

    /// The opaque MLS KeyPackages, in the publisher's order.
    pub fn key_packages(&self) -> &[Bytes] {
        &self.key_packages
    }

    /// Index into [`key_packages`](Self::key_packages) of the last-resort
    /// KeyPackage; always in range.
    pub fn last_resort_index(&self) -> usize {
        self.last_resort_index
    }

    /// The last-resort KeyPackage.
    pub fn last_resort(&self) -> Option<&Bytes> {
        self.key_packages.get(self.last_resort_index)
    }
}

impl KeyPackageBundle {
    /// Signs a new bundle with `device`, valid from `now` for `ttl` seconds.
    ///
    /// # Errors
    ///
    /// * [`RecordError::CertificateNotForDevice`] if `cert` certifies another
    ///   device key; [`RecordError::BundleCertificate`] if it does not verify;
    /// * [`RecordError::NoKeyPackages`], [`RecordError::TooManyKeyPackages`],
    ///   [`RecordError::KeyPackageSize`],
    ///   [`RecordError::LastResortOutOfRange`] for bad KeyPackages;
    /// * [`RecordError::TtlTooLong`] / [`RecordError::InvalidLifetime`] for a
    ///   bad `ttl`; [`RecordError::TooLarge`] if the record would not fit in
    ///   the DHT.
    #[allow(clippy::too_many_arguments)] // one per signed field, as documented
    pub fn new<I, B>(
        device: &DeviceKey,
        cert: DeviceCertificate,
        version: u64,
        key_packages: I,
        last_resort_index: usize,
        now: u64,
        ttl: u64,
    ) -> Result<Self, RecordError>
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        if cert.device() != device.public() {
            return Err(RecordError::CertificateNotForDevice);
        }
        let key_packages: Vec<Bytes> = key_packages.into_iter().map(Into::into).collect();
        check_key_packages(&key_packages, last_resort_index)?;
        cert.verify().map_err(RecordError::BundleCertificate)?;
        let body = KeyPackageBundleBody {
            device_cert: cert,
            version,
            key_packages,
            last_resort_index,
        };
        Self::sign(body, now, ttl, |message| device.sign(message))
    }
}

impl VersionedBody for KeyPackageBundleBody {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Body for KeyPackageBundleBody {
    const KIND: RecordKind = RecordKind::KeyPackages;

    fn key(&self) -> [u8; RECORD_KEY_LEN] {
        key_packages_key(&self.device_cert.root().uid(), &self.device_cert.device())
    }

    fn uid(&self) -> Uid {
        self.device_cert.root().uid()
    }

    fn ordering_version(&self, _created_at: u64) -> u64 {
        self.version
    }

    fn encode(&self, created_at: u64, expires_at: u64) -> Vec<u8> {
        proto::KeyPackageBundleBody {
            device_cert: Bytes::copy_from_slice(&self.device_cert.to_bytes()),
            version: self.version,
            key_packages: self.key_packages.clone(),
            // In range of u32: `check_key_packages` bounds it by MAX_KEY_PACKAGES.
            last_resort_index: u32::try_from(self.last_resort_index).unwrap_or(u32::MAX),
            created_at,
            expires_at,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<(Self, u64, u64), RecordError> {
        let decoded: proto::KeyPackageBundleBody =
            decode_canonical(bytes).map_err(|e| e.into_record_error("key-package bundle body"))?;
        let device_cert = DeviceCertificate::decode(&decoded.device_cert)
            .map_err(RecordError::BundleCertificate)?;
        let last_resort_index = usize::try_from(decoded.last_resort_index).unwrap_or(usize::MAX);
        check_key_packages(&decoded.key_packages, last_resort_index)?;
        let body = Self {
            device_cert,
            version: decoded.version,
            key_packages: decoded.key_packages,
            last_resort_index,
        };
        Ok((body, decoded.created_at, decoded.expires_at))
    }

    fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), RecordError> {
        self.device_cert
            .device()
            .verify(message, signature)
            .map_err(|_| RecordError::InvalidSignature)?;
        self.device_cert
            .verify()
            .map_err(RecordError::BundleCertificate)
    }
}

/// Checks the KeyPackage count, sizes and the last-resort index.
fn check_key_packages(key_packages: &[Bytes], last_resort_index: usize) -> Result<(), RecordError> {
    if key_packages.is_empty() {
        return Err(RecordError::NoKeyPackages);
    }
    if key_packages.len() > MAX_KEY_PACKAGES {
        return Err(RecordError::TooManyKeyPackages {
            max: MAX_KEY_PACKAGES,
            actual: key_packages.len(),
        });
    }
    for (index, key_package) in key_packages.iter().enumerate() {
        if key_package.is_empty() || key_package.len() > MAX_KEY_PACKAGE_BYTES {
            return Err(RecordError::KeyPackageSize {
                index,
                max: MAX_KEY_PACKAGE_BYTES,
                actual: key_package.len(),
            });
        }
    }
    if last_resort_index >= key_packages.len() {
        return Err(RecordError::LastResortOutOfRange {
            index: u64::try_from(last_resort_index).unwrap_or(u64::MAX),
            count: key_packages.len(),
        });
    }
    Ok(())
}

impl fmt::Debug for KeyPackageBundleBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<usize> = self.key_packages.iter().map(Bytes::len).collect();
        f.debug_struct("KeyPackageBundleBody")
            .field("device_cert", &self.device_cert)
            .field("version", &self.version)
            .field("key_package_sizes", &sizes)
            .field("last_resort_index", &self.last_resort_index)
            .finish()
    }
}
