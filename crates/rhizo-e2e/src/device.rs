//! [`Device`]: the local MLS member — a rhizo device key used as the MLS
//! signature key, and its certificate as the MLS credential — and the check
//! every remote leaf must pass.

use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use rhizo_core::{DeviceCertificate, DeviceKey};

use crate::E2eError;

/// This device as an MLS member.
///
/// * MLS signature key = the device's Ed25519 key ([`DeviceKey`]); openmls
///   signs through [`Signer`], so the secret never leaves the `DeviceKey`
///   (wiped on drop).
/// * MLS credential = a `BasicCredential` whose identity is the 137-byte
///   [`DeviceCertificate`] encoding.
pub struct Device {
    key: DeviceKey,
    certificate: DeviceCertificate,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Builds the local member from the device's 32-byte Ed25519 seed and its
    /// encoded [`DeviceCertificate`].
    ///
    /// # Errors
    ///
    /// [`E2eError::InvalidCertificate`] if the certificate does not decode or
    /// verify, [`E2eError::InvalidCredential`] if it certifies another key.
    pub fn new(device_seed: &[u8; 32], certificate: &[u8]) -> Result<Self, E2eError> {
        let key = DeviceKey::from_bytes(device_seed);
        let certificate = DeviceCertificate::decode(certificate)?;
        if certificate.device() != key.public() {
            return Err(E2eError::InvalidCredential(
                "the certificate is for another device key",
            ));
        }
        certificate.verify()?;
        Ok(Self { key, certificate })
    }

    /// Like [`new`](Self::new) without any checks, so tests can build the
    /// broken devices a malicious peer would.
    #[cfg(test)]
    pub(crate) fn new_unchecked(device_seed: &[u8; 32], certificate: DeviceCertificate) -> Self {
        Self {
            key: DeviceKey::from_bytes(device_seed),
            certificate,
        }
    }

    /// This device's certificate.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.certificate
    }

    /// The MLS signature public key: the device's Ed25519 public key.
    pub(crate) fn signature_key(&self) -> [u8; 32] {
        *self.key.public().as_bytes()
    }

    /// Credential and signature key for openmls.
    pub(crate) fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.certificate.encode()).into(),
            signature_key: self.signature_key().to_vec().into(),
        }
    }
}

impl Signer for Device {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.key.sign(payload).to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// Checks that a leaf's credential is a rhizo device certificate that
/// verifies and certifies exactly the leaf's signature key; returns it.
///
/// Cheap checks (type, decoding, key equality) come before the signature.
pub(crate) fn certificate_of_leaf(
    credential: &Credential,
    signature_key: &[u8],
) -> Result<DeviceCertificate, E2eError> {
    if credential.credential_type() != CredentialType::Basic {
        return Err(E2eError::InvalidCredential("not a basic credential"));
    }
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| E2eError::InvalidCredential("basic credential does not decode"))?;
    let certificate = DeviceCertificate::decode(basic.identity())?;
    if certificate.device().as_bytes().as_slice() != signature_key {
        return Err(E2eError::InvalidCredential(
            "the certificate is for another key than the MLS signature key",
        ));
    }
    certificate.verify()?;
    Ok(certificate)
}

#[cfg(test)]
mod tests {
    use rhizo_core::RootKey;

    use super::*;

    #[test]
    fn device_checks_its_certificate() {
        let root = RootKey::from_bytes(&[1; 32]);
        let seed = [2; 32];
        let cert = root.certify_device(&DeviceKey::from_bytes(&seed).public(), 5);
        let device = Device::new(&seed, &cert.encode()).expect("valid");
        assert_eq!(device.certificate(), &cert);

        let other = root.certify_device(&DeviceKey::from_bytes(&[3; 32]).public(), 5);
        assert!(matches!(
            Device::new(&seed, &other.encode()),
            Err(E2eError::InvalidCredential(_))
        ));
        let mut forged = cert.encode();
        forged[136] ^= 1;
        assert!(matches!(
            Device::new(&seed, &forged),
            Err(E2eError::InvalidCertificate(_))
        ));
        assert!(matches!(
            Device::new(&seed, b"short"),
            Err(E2eError::InvalidCertificate(_))
        ));
    }

    #[test]
    fn leaf_check_binds_certificate_to_signature_key() {
        let root = RootKey::from_bytes(&[1; 32]);
        let seed = [2; 32];
        let cert = root.certify_device(&DeviceKey::from_bytes(&seed).public(), 5);
        let device = Device::new(&seed, &cert.encode()).expect("valid");
        let CredentialWithKey {
            credential,
            signature_key,
        } = device.credential_with_key();
        assert_eq!(
            certificate_of_leaf(&credential, signature_key.as_slice()).expect("bound"),
            cert
        );
        assert!(matches!(
            certificate_of_leaf(&credential, &[7; 32]),
            Err(E2eError::InvalidCredential(_))
        ));
        let garbage: Credential = BasicCredential::new(vec![1, 2, 3]).into();
        assert!(matches!(
            certificate_of_leaf(&garbage, signature_key.as_slice()),
            Err(E2eError::InvalidCertificate(_))
        ));
    }
}
