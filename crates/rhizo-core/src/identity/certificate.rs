//! [`DeviceCertificate`]: a root key's signed statement that a device key
//! belongs to the identity.
//!
//! The wire format is documented on [`DeviceCertificate`].

use std::fmt;

use super::{DevicePublicKey, Hex, PUBLIC_KEY_LEN, RootKey, RootPublicKey, SIGNATURE_LEN};
use crate::error::CertError;

/// Domain tag at the start of the signed message.
pub const DEVICE_CERT_DOMAIN: &[u8] = b"rhizo/device-cert/v1";
/// The only wire format version this build reads and writes.
pub const DEVICE_CERT_VERSION: u8 = 1;
/// Length of an encoded certificate: version(1) ‖ root(32) ‖ device(32) ‖
/// created_at(8) ‖ signature(64). Fixed, so decode rejects anything else
/// before touching keys or signatures.
pub const DEVICE_CERT_LEN: usize = 1 + PUBLIC_KEY_LEN + PUBLIC_KEY_LEN + 8 + SIGNATURE_LEN;

/// Length of the signed message: domain ‖ root ‖ device ‖ created_at.
const SIGNED_MESSAGE_LEN: usize = DEVICE_CERT_DOMAIN.len() + PUBLIC_KEY_LEN + PUBLIC_KEY_LEN + 8;

/// A root key's signature binding a device public key to the identity.
///
/// Issue one with [`RootKey::certify_device`]; send it with
/// [`encode`](Self::encode); on receipt, [`decode`](Self::decode) it and then
/// call [`verify_for`](Self::verify_for) with the root key you expect (for
/// example the one matching the peer's [`Uid`](crate::Uid)). A decoded
/// certificate is *not* trusted until verified.
///
/// Holding a certificate does not prove possession of the device key: the
/// transport (libp2p's Noise handshake) must authenticate the peer as that key.
///
/// # Wire format
///
/// Exactly [`DEVICE_CERT_LEN`] = 137 bytes:
///
/// ```text
/// offset  len  field
///      0    1  version = 1
///      1   32  root public key (Ed25519, compressed)
///     33   32  device public key (Ed25519, compressed)
///     65    8  created_at, Unix seconds, big-endian
///     73   64  Ed25519 signature by the root key over
///              "rhizo/device-cert/v1" ‖ root ‖ device ‖ created_at (u64 BE)
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceCertificate {
    root: RootPublicKey,
    device: DevicePublicKey,
    created_at: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl DeviceCertificate {
    /// Signs a new certificate; called by [`RootKey::certify_device`].
    pub(super) fn issue(root: &RootKey, device: &DevicePublicKey, created_at: u64) -> Self {
        let root_public = root.public();
        let signature = root.sign(&signed_message(&root_public, device, created_at));
        Self {
            root: root_public,
            device: *device,
            created_at,
            signature,
        }
    }

    /// The root public key that issued (claims to have issued) the certificate.
    pub fn root(&self) -> RootPublicKey {
        self.root
    }

    /// The certified device public key.
    pub fn device(&self) -> DevicePublicKey {
        self.device
    }

    /// Issue time claimed by the root key holder, in Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The root key's Ed25519 signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// Encodes to the 137-byte wire format as a fixed-size array.
    pub fn to_bytes(&self) -> [u8; DEVICE_CERT_LEN] {
        let mut out = [0u8; DEVICE_CERT_LEN];
        let (version, rest) = out.split_at_mut(1);
        let (root, rest) = rest.split_at_mut(PUBLIC_KEY_LEN);
        let (device, rest) = rest.split_at_mut(PUBLIC_KEY_LEN);
        let (created_at, signature) = rest.split_at_mut(8);
        version[0] = DEVICE_CERT_VERSION;
        root.copy_from_slice(self.root.as_bytes());
        device.copy_from_slice(self.device.as_bytes());
        created_at.copy_from_slice(&self.created_at.to_be_bytes());
        signature.copy_from_slice(&self.signature);
        out
    }

    /// Encodes to the 137-byte wire format (see the
    /// [wire format](Self#wire-format)).
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes().to_vec()
    }

    /// Decodes the 137-byte wire format. Does **not** check the signature:
    /// call [`verify_for`](Self::verify_for) (or [`verify`](Self::verify))
    /// before trusting the result.
    ///
    /// # Errors
    ///
    /// Checked in this order, never panicking:
    ///
    /// * [`CertError::WrongLength`] unless exactly [`DEVICE_CERT_LEN`] bytes.
    /// * [`CertError::UnsupportedVersion`] unless the version byte is 1.
    /// * [`CertError::InvalidKey`] if either key is not a valid, strong
    ///   Ed25519 public key.
    pub fn decode(bytes: &[u8]) -> Result<Self, CertError> {
        let wrong_length = CertError::WrongLength {
            expected: DEVICE_CERT_LEN,
            actual: bytes.len(),
        };
        if bytes.len() != DEVICE_CERT_LEN {
            return Err(wrong_length);
        }
        // After the length check every `take` succeeds; the `ok_or` only keeps
        // this function free of panicking paths.
        let mut rest = bytes;
        let [version] = *take(&mut rest).ok_or(wrong_length)?;
        if version != DEVICE_CERT_VERSION {
            return Err(CertError::UnsupportedVersion(version));
        }
        let root = RootPublicKey::from_bytes(take(&mut rest).ok_or(wrong_length)?)
            .map_err(|_| CertError::InvalidKey)?;
        let device = DevicePublicKey::from_bytes(take(&mut rest).ok_or(wrong_length)?)
            .map_err(|_| CertError::InvalidKey)?;
        let created_at = u64::from_be_bytes(*take(&mut rest).ok_or(wrong_length)?);
        let signature = *take(&mut rest).ok_or(wrong_length)?;
        Ok(Self {
            root,
            device,
            created_at,
            signature,
        })
    }

    /// Checks the signature against the root key embedded in the certificate.
    ///
    /// This only proves the certificate is self-consistent; to know the device
    /// belongs to a *particular* identity use [`verify_for`](Self::verify_for).
    ///
    /// # Errors
    ///
    /// [`CertError::InvalidSignature`] if the signature does not verify.
    pub fn verify(&self) -> Result<(), CertError> {
        let message = signed_message(&self.root, &self.device, self.created_at);
        self.root
            .verify(&message, &self.signature)
            .map_err(|_| CertError::InvalidSignature)
    }

    /// Checks that the certificate was issued by `expected_root` and that its
    /// signature verifies.
    ///
    /// # Errors
    ///
    /// * [`CertError::WrongRoot`] if the embedded root key is not
    ///   `expected_root` (checked first, before any signature work).
    /// * [`CertError::InvalidSignature`] if the signature does not verify.
    pub fn verify_for(&self, expected_root: &RootPublicKey) -> Result<(), CertError> {
        if self.root != *expected_root {
            return Err(CertError::WrongRoot);
        }
        self.verify()
    }
}

impl fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCertificate")
            .field("root", &self.root)
            .field("device", &self.device)
            .field("created_at", &self.created_at)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}

/// Splits the first `N` bytes off `rest`, or `None` if it is shorter.
fn take<'a, const N: usize>(rest: &mut &'a [u8]) -> Option<&'a [u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(head)
}

/// The bytes the root key signs.
fn signed_message(
    root: &RootPublicKey,
    device: &DevicePublicKey,
    created_at: u64,
) -> [u8; SIGNED_MESSAGE_LEN] {
    let mut message = [0u8; SIGNED_MESSAGE_LEN];
    let (domain, rest) = message.split_at_mut(DEVICE_CERT_DOMAIN.len());
    let (root_out, rest) = rest.split_at_mut(PUBLIC_KEY_LEN);
    let (device_out, created_at_out) = rest.split_at_mut(PUBLIC_KEY_LEN);
    domain.copy_from_slice(DEVICE_CERT_DOMAIN);
    root_out.copy_from_slice(root.as_bytes());
    device_out.copy_from_slice(device.as_bytes());
    created_at_out.copy_from_slice(&created_at.to_be_bytes());
    message
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::DeviceKey;

    const NOW: u64 = 1_700_000_000;

    fn root() -> RootKey {
        RootKey::from_bytes(&[7u8; 32])
    }

    fn device() -> DevicePublicKey {
        DeviceKey::from_bytes(&[9u8; 32]).public()
    }

    #[test]
    fn issued_certificate_verifies() {
        let root = root();
        let cert = root.certify_device(&device(), NOW);
        assert_eq!(cert.root(), root.public());
        assert_eq!(cert.device(), device());
        assert_eq!(cert.created_at(), NOW);
        assert_eq!(cert.verify(), Ok(()));
        assert_eq!(cert.verify_for(&root.public()), Ok(()));
    }

    #[test]
    fn encoding_layout_and_round_trip() {
        let root = root();
        let cert = root.certify_device(&device(), NOW);
        let bytes = cert.encode();
        assert_eq!(bytes.len(), DEVICE_CERT_LEN);
        assert_eq!(DEVICE_CERT_LEN, 137);
        assert_eq!(bytes, cert.to_bytes());
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..33], root.public().as_bytes());
        assert_eq!(&bytes[33..65], device().as_bytes());
        assert_eq!(bytes[65..73], NOW.to_be_bytes());
        assert_eq!(&bytes[73..], cert.signature());

        let decoded = DeviceCertificate::decode(&bytes).expect("decode");
        assert_eq!(decoded, cert);
        assert_eq!(decoded.verify_for(&root.public()), Ok(()));
    }

    #[test]
    fn signature_covers_the_documented_message() {
        let root = root();
        let cert = root.certify_device(&device(), NOW);
        let mut message = b"rhizo/device-cert/v1".to_vec();
        message.extend_from_slice(root.public().as_bytes());
        message.extend_from_slice(device().as_bytes());
        message.extend_from_slice(&NOW.to_be_bytes());
        assert_eq!(root.public().verify(&message, cert.signature()), Ok(()));
    }

    #[test]
    fn verify_for_another_root_is_wrong_root() {
        let cert = root().certify_device(&device(), NOW);
        let other = RootKey::from_bytes(&[8u8; 32]).public();
        assert_eq!(cert.verify_for(&other), Err(CertError::WrongRoot));
    }

    #[test]
    fn wrong_root_is_checked_before_the_signature() {
        let mut bytes = root().certify_device(&device(), NOW).encode();
        bytes[DEVICE_CERT_LEN - 1] ^= 0x01;
        let cert = DeviceCertificate::decode(&bytes).expect("signature is not checked by decode");
        let other = RootKey::from_bytes(&[8u8; 32]).public();
        assert_eq!(cert.verify_for(&other), Err(CertError::WrongRoot));
        assert_eq!(cert.verify(), Err(CertError::InvalidSignature));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let root = root();
        let bytes = root.certify_device(&device(), NOW).encode();
        for bit in 0..DEVICE_CERT_LEN * 8 {
            let mut tampered = bytes.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            let accepted = DeviceCertificate::decode(&tampered).and_then(|cert| cert.verify());
            assert!(accepted.is_err(), "bit {bit} flip accepted");
            let accepted_for = DeviceCertificate::decode(&tampered)
                .and_then(|cert| cert.verify_for(&root.public()));
            assert!(
                accepted_for.is_err(),
                "bit {bit} flip accepted by verify_for"
            );
        }
    }

    #[test]
    fn signature_by_another_root_is_invalid() {
        let victim = root().public();
        let attacker = RootKey::from_bytes(&[66u8; 32]);
        let mut bytes = attacker.certify_device(&device(), NOW).encode();
        bytes[1..33].copy_from_slice(victim.as_bytes());
        let forged = DeviceCertificate::decode(&bytes).expect("well-formed");
        assert_eq!(forged.root(), victim);
        assert_eq!(forged.verify(), Err(CertError::InvalidSignature));
        assert_eq!(forged.verify_for(&victim), Err(CertError::InvalidSignature));
    }

    #[test]
    fn decode_rejects_wrong_length_and_version_first() {
        let bytes = root().certify_device(&device(), NOW).encode();
        for len in [0, 1, 136, 138, 1000] {
            let mut input = bytes.clone();
            input.resize(len, 0);
            assert_eq!(
                DeviceCertificate::decode(&input),
                Err(CertError::WrongLength {
                    expected: 137,
                    actual: len
                })
            );
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        // Garbage keys too: the version is checked before the keys.
        v2[1..65].fill(0);
        assert_eq!(
            DeviceCertificate::decode(&v2),
            Err(CertError::UnsupportedVersion(2))
        );
        let message = CertError::UnsupportedVersion(2).to_string();
        assert!(message.contains("version 2"), "{message}");
        let message = CertError::WrongLength {
            expected: 137,
            actual: 3,
        }
        .to_string();
        assert!(message.contains("expected 137 bytes, got 3"), "{message}");
    }

    #[test]
    fn decode_rejects_weak_embedded_keys() {
        let mut bytes = root().certify_device(&device(), NOW).encode();
        bytes[33..65].fill(0);
        assert_eq!(
            DeviceCertificate::decode(&bytes),
            Err(CertError::InvalidKey)
        );
    }

    #[test]
    fn debug_shows_fields_in_hex() {
        let cert = root().certify_device(&device(), NOW);
        let debug = format!("{cert:?}");
        assert!(debug.contains(&root().public().to_string()), "{debug}");
        assert!(debug.contains(&device().to_string()), "{debug}");
        assert!(debug.contains("1700000000"), "{debug}");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(cert) = DeviceCertificate::decode(&bytes) {
                prop_assert_eq!(cert.encode(), bytes);
                let _ = cert.verify();
            }
        }

        #[test]
        fn decode_never_panics_on_right_length(mut bytes in proptest::collection::vec(any::<u8>(), DEVICE_CERT_LEN)) {
            bytes[0] = DEVICE_CERT_VERSION;
            if let Ok(cert) = DeviceCertificate::decode(&bytes) {
                prop_assert_eq!(cert.encode(), bytes);
                prop_assert_eq!(cert.verify(), Err(CertError::InvalidSignature));
            }
        }

        #[test]
        fn round_trip(seed in any::<[u8; 32]>(), device_seed in any::<[u8; 32]>(), created_at in any::<u64>()) {
            let root = RootKey::from_bytes(&seed);
            let device = DeviceKey::from_bytes(&device_seed).public();
            let cert = root.certify_device(&device, created_at);
            let decoded = DeviceCertificate::decode(&cert.encode());
            prop_assert_eq!(decoded, Ok(cert));
            prop_assert_eq!(cert.verify_for(&root.public()), Ok(()));
        }
    }
}
