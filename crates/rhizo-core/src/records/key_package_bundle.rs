//! [`KeyPackageBundle`]: one device's MLS KeyPackages, signed by that device.

use std::fmt;

use bytes::Bytes;
use prost::Message;

use super::{
    Hex, MAX_KEY_PACKAGE_BYTES, MAX_KEY_PACKAGES, RECORD_KEY_LEN, RecordError, RecordKind,
    check_encoded_size, check_key, check_lifetime, decode_canonical, encode_envelope,
    expiry_for_new, key_packages_key, signed_message,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{DeviceCertificate, DeviceKey};

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
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPackageBundle {
    device_cert: DeviceCertificate,
    version: u64,
    key_packages: Vec<Bytes>,
    last_resort_index: usize,
    created_at: u64,
    expires_at: u64,
    signature: [u8; SIGNATURE_LEN],
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
        let expires_at = expiry_for_new(now, ttl)?;
        let mut bundle = Self {
            device_cert: cert,
            version,
            key_packages,
            last_resort_index,
            created_at: now,
            expires_at,
            signature: [0; SIGNATURE_LEN],
        };
        bundle.signature = device.sign(&signed_message(RecordKind::KeyPackages, &bundle.body()));
        check_encoded_size(&bundle.encode())?;
        Ok(bundle)
    }

    /// The certificate of the device that signed the bundle, verified against
    /// the root it names.
    pub fn device_cert(&self) -> &DeviceCertificate {
        &self.device_cert
    }

    /// The bundle's version; higher replaces lower.
    pub fn version(&self) -> u64 {
        self.version
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

    /// Claimed creation time, Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Expiry time, Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The device key's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The DHT key this record belongs under.
    pub fn key(&self) -> [u8; RECORD_KEY_LEN] {
        key_packages_key(&self.device_cert.root().uid(), &self.device_cert.device())
    }

    /// Encodes the `SignedRecord` value to store in the DHT.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(RecordKind::KeyPackages, self.body(), &self.signature)
    }

    /// The canonical body encoding.
    fn body(&self) -> Vec<u8> {
        proto::KeyPackageBundleBody {
            device_cert: Bytes::copy_from_slice(&self.device_cert.to_bytes()),
            version: self.version,
            key_packages: self.key_packages.clone(),
            // In range of u32: `check_key_packages` bounds it by MAX_KEY_PACKAGES.
            last_resort_index: u32::try_from(self.last_resort_index).unwrap_or(u32::MAX),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
        .encode_to_vec()
    }

    /// Decodes and checks a key-package body; see
    /// [`validate_record`](super::validate_record) for the order.
    pub(super) fn validate(
        key: &[u8],
        body: &[u8],
        signature: [u8; SIGNATURE_LEN],
        now: u64,
    ) -> Result<Self, RecordError> {
        let decoded: proto::KeyPackageBundleBody =
            decode_canonical(body).map_err(|e| e.into_record_error("key-package bundle body"))?;
        let device_cert = DeviceCertificate::decode(&decoded.device_cert)
            .map_err(RecordError::BundleCertificate)?;
        let last_resort_index = usize::try_from(decoded.last_resort_index).unwrap_or(usize::MAX);
        check_key_packages(&decoded.key_packages, last_resort_index)?;
        check_key(
            key,
            &key_packages_key(&device_cert.root().uid(), &device_cert.device()),
        )?;
        check_lifetime(decoded.created_at, decoded.expires_at, now)?;
        device_cert
            .device()
            .verify(&signed_message(RecordKind::KeyPackages, body), &signature)
            .map_err(|_| RecordError::InvalidSignature)?;
        device_cert
            .verify()
            .map_err(RecordError::BundleCertificate)?;
        Ok(Self {
            device_cert,
            version: decoded.version,
            key_packages: decoded.key_packages,
            last_resort_index,
            created_at: decoded.created_at,
            expires_at: decoded.expires_at,
            signature,
        })
    }

    /// Whether the signed fields are equal (signatures aside).
    pub(super) fn same_content(&self, other: &Self) -> bool {
        self.device_cert == other.device_cert
            && self.version == other.version
            && self.key_packages == other.key_packages
            && self.last_resort_index == other.last_resort_index
            && self.created_at == other.created_at
            && self.expires_at == other.expires_at
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

impl fmt::Debug for KeyPackageBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<usize> = self.key_packages.iter().map(Bytes::len).collect();
        f.debug_struct("KeyPackageBundle")
            .field("device_cert", &self.device_cert)
            .field("version", &self.version)
            .field("key_package_sizes", &sizes)
            .field("last_resort_index", &self.last_resort_index)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}
