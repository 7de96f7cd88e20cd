//! KeyPackages: what a device publishes (in the DHT) so others can add it to
//! a conversation while it is offline.

use openmls::prelude::tls_codec::{DeserializeBytes as _, Serialize as _};
use openmls::prelude::{
    Capabilities, CredentialType, ExtensionType, KeyPackage, KeyPackageIn, Lifetime,
    ProtocolVersion,
};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::crypto::OpenMlsCrypto;
use rhizo_core::DeviceCertificate;

use crate::device::certificate_of_leaf;
use crate::{CIPHERSUITE, Device, E2eError, E2eStore};

/// Largest serialized KeyPackage accepted, checked before parsing. Equal to
/// `rhizo_core::records::MAX_KEY_PACKAGE_BYTES` (the DHT record limit); an
/// X-Wing KeyPackage is about 2.9 KiB (two 1216-byte public keys).
pub const MAX_KEY_PACKAGE_BYTES: usize = 3584;

/// Most KeyPackages one [`create_key_packages`] call makes: bounds the work
/// and the storage a single call can cause.
pub const MAX_KEY_PACKAGES_PER_CALL: usize = 64;

/// How long a new KeyPackage is valid: long enough to sit in the DHT between
/// refreshes, well under openmls' 84-day maximum lifetime range.
pub const KEY_PACKAGE_LIFETIME_SECS: u64 = 28 * 24 * 60 * 60;

/// The MLS wire value of [`CIPHERSUITE`].
const CIPHERSUITE_ID: u16 = CIPHERSUITE as u16;

/// What [`inspect_key_package`] learned from a valid KeyPackage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageInfo {
    /// The device's certificate (verified, and bound to the KeyPackage's
    /// signature key). Check its root / UID against the contact you expect.
    pub certificate: DeviceCertificate,
    /// The MLS KeyPackageRef (RFC 9420 §5.2), 32 bytes for this ciphersuite:
    /// a stable id for de-duplicating and deleting published KeyPackages.
    pub hash_ref: Vec<u8>,
    /// Whether it carries the `last_resort` extension (may be used more than
    /// once).
    pub last_resort: bool,
    /// Start of its validity, unix seconds.
    pub not_before: u64,
    /// End of its validity, unix seconds.
    pub not_after: u64,
}

/// The capabilities every rhizo leaf advertises: only [`CIPHERSUITE`], basic
/// credentials, and the `last_resort` KeyPackage extension.
pub(crate) fn capabilities() -> Capabilities {
    Capabilities::builder()
        .versions(vec![ProtocolVersion::Mls10])
        .ciphersuites(vec![CIPHERSUITE])
        .extensions(vec![ExtensionType::LastResort])
        .credentials(vec![CredentialType::Basic])
        .build()
}

/// Creates `count` KeyPackages for `device`, stores their private keys in
/// `store` (all or none), and returns them TLS-serialized (a bare
/// `KeyPackage`, not wrapped in an `MLSMessage`), ready to publish.
///
/// Each is one-time: joining from a Welcome that used it deletes its private
/// keys. With `last_resort`, each carries the RFC 9420 `last_resort`
/// extension and stays usable after a join (publish one as a fallback when
/// the one-time ones run out).
///
/// Lifetime: [`KEY_PACKAGE_LIFETIME_SECS`] from *openmls'* reading of the
/// system clock (openmls' `Lifetime::new`); this crate itself reads no clock.
///
/// # Errors
///
/// [`E2eError::TooLarge`] if `count` exceeds [`MAX_KEY_PACKAGES_PER_CALL`],
/// [`E2eError::Storage`] if the keys cannot be stored.
pub fn create_key_packages(
    store: &E2eStore,
    device: &Device,
    count: usize,
    last_resort: bool,
) -> Result<Vec<Vec<u8>>, E2eError> {
    if count > MAX_KEY_PACKAGES_PER_CALL {
        return Err(E2eError::TooLarge {
            what: "KeyPackage count",
            len: count,
            max: MAX_KEY_PACKAGES_PER_CALL,
        });
    }
    let provider = store.provider();
    let atomic = store.atomic()?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut builder = KeyPackage::builder()
            .key_package_lifetime(Lifetime::new(KEY_PACKAGE_LIFETIME_SECS))
            .leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(CIPHERSUITE, &provider, device, device.credential_with_key())
            .map_err(E2eError::mls)?;
        out.push(
            bundle
                .key_package()
                .tls_serialize_detached()
                .map_err(E2eError::mls)?,
        );
    }
    atomic.commit()?;
    Ok(out)
}

/// Checks a serialized KeyPackage from the network and describes it.
///
/// In order, cheapest first: size ([`MAX_KEY_PACKAGE_BYTES`]), ciphersuite
/// ([`CIPHERSUITE`]), TLS decoding, the credential (a rhizo
/// [`DeviceCertificate`] for exactly the leaf's signature key, with a valid
/// root signature), then openmls' checks: both signatures, protocol version,
/// init key ≠ encryption key, extensions within capabilities, and the
/// lifetime (against the system clock, which openmls reads itself).
///
/// # Errors
///
/// [`E2eError::TooLarge`], [`E2eError::WrongCiphersuite`],
/// [`E2eError::Malformed`], [`E2eError::InvalidCredential`] /
/// [`E2eError::InvalidCertificate`], [`E2eError::InvalidKeyPackage`].
pub fn inspect_key_package(bytes: &[u8]) -> Result<KeyPackageInfo, E2eError> {
    let (_, info) = validate_key_package(&RustCrypto::default(), bytes)?;
    Ok(info)
}

/// [`inspect_key_package`], also returning the validated [`KeyPackage`].
pub(crate) fn validate_key_package(
    crypto: &impl OpenMlsCrypto,
    bytes: &[u8],
) -> Result<(KeyPackage, KeyPackageInfo), E2eError> {
    if bytes.len() > MAX_KEY_PACKAGE_BYTES {
        return Err(E2eError::TooLarge {
            what: "KeyPackage",
            len: bytes.len(),
            max: MAX_KEY_PACKAGE_BYTES,
        });
    }
    // KeyPackage = version (u16) ‖ cipher_suite (u16) ‖ …: refuse other
    // suites before any parsing or signature work.
    let suite = match bytes.get(2..4) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => return Err(E2eError::Malformed("KeyPackage")),
    };
    if suite != CIPHERSUITE_ID {
        return Err(E2eError::WrongCiphersuite(suite));
    }
    let key_package_in = decode_untrusted(|| KeyPackageIn::tls_deserialize_exact_bytes(bytes))
        .ok_or(E2eError::Malformed("KeyPackage"))?;
    let unverified = key_package_in.unverified_credential();
    let certificate =
        certificate_of_leaf(&unverified.credential, unverified.signature_key.as_slice())?;
    let key_package = key_package_in
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(|e| E2eError::InvalidKeyPackage(e.to_string()))?;
    if key_package.ciphersuite() != CIPHERSUITE {
        return Err(E2eError::WrongCiphersuite(key_package.ciphersuite() as u16));
    }
    let hash_ref = key_package.hash_ref(crypto).map_err(E2eError::mls)?;
    let lifetime = key_package.life_time();
    let info = KeyPackageInfo {
        certificate,
        hash_ref: hash_ref.as_slice().to_vec(),
        last_resort: key_package.last_resort(),
        not_before: lifetime.not_before(),
        not_after: lifetime.not_after(),
    };
    Ok((key_package, info))
}

/// Runs a TLS decoder on untrusted bytes; `None` if it fails.
///
/// tls_codec 0.5 has a `debug_assert!` that panics on some truncated inputs
/// in builds with debug assertions (release builds return an error). The
/// decoder only reads `bytes` and builds a fresh value, so catching that
/// panic cannot leave anything half-updated; it keeps "garbage in → error
/// out" true in debug builds too.
pub(crate) fn decode_untrusted<T, E>(decode: impl FnOnce() -> Result<T, E>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .ok()
        .and_then(Result::ok)
}

/// Shorthand used by [`Conversation::create`](crate::Conversation::create).
pub(crate) fn validate_with_store(store: &E2eStore, bytes: &[u8]) -> Result<KeyPackage, E2eError> {
    validate_key_package(store.provider().crypto(), bytes).map(|(key_package, _)| key_package)
}
