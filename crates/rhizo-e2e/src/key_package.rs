//! KeyPackages: what a device publishes (in the DHT) so others can add it to
//! a conversation while it is offline.

use openmls::ciphersuite::hash_ref::make_key_package_ref;
use openmls::prelude::tls_codec::{DeserializeBytes as _, Serialize as _};
use openmls::prelude::{
    Capabilities, CredentialType, ExtensionType, KeyPackage, KeyPackageBundle, KeyPackageIn,
    KeyPackageRef, Lifetime, ProtocolVersion, Welcome,
};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::storage::StorageProvider as _;
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

/// Most superseded KeyPackages whose private keys wait out their grace period
/// ([`delete_retired_key_packages`]); beyond it the oldest are deleted at once
/// (a Welcome still in flight for one of them then fails to join, and its
/// sender starts over). 1024 is over 100 rotations of a 9-KeyPackage bundle.
pub const MAX_RETIRED_KEY_PACKAGES: usize = 1024;

/// How long a one-time KeyPackage a Welcome used keeps its private keys (init key and leaf
/// encryption key), from its first use: a second sender may have fetched the bundle before our
/// republished one replaced it and picked the same KeyPackage; its Welcome joins too within
/// this window. This is the forward-secrecy cost: an init key lives up to this long (plus the
/// time until the next publication runs [`delete_used_key_packages`]) after it was used.
pub const USED_KEY_PACKAGE_GRACE_SECS: u64 = 10 * 60;

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
        .extensions(vec![
            ExtensionType::LastResort,
            ExtensionType::Unknown(rhizo_core::group::GROUP_STATE_EXTENSION_TYPE),
        ])
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

/// The TLS-serialized KeyPackageRef of one of our serialized KeyPackages (no
/// validation: they are ours, and may have expired by the time they are
/// deleted).
fn own_key_package_ref(store: &E2eStore, key_package: &[u8]) -> Result<Vec<u8>, E2eError> {
    let hash_ref = make_key_package_ref(key_package, CIPHERSUITE, store.provider().crypto())
        .map_err(E2eError::mls)?;
    hash_ref.tls_serialize_detached().map_err(E2eError::mls)
}

/// Records `key_packages` (as [`create_key_packages`] returned them) as the
/// set this device publishes from `now` (unix seconds), and marks every set
/// published before as *retired* at `now`. A retired KeyPackage can still be
/// joined with (a Welcome made from it may be in flight) until
/// [`delete_retired_key_packages`] deletes its private keys.
///
/// # Errors
///
/// [`E2eError::Storage`] if the database fails (nothing is changed).
pub fn replace_published_key_packages(
    store: &E2eStore,
    key_packages: &[impl AsRef<[u8]>],
    now: u64,
) -> Result<(), E2eError> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let atomic = store.atomic()?;
    store.conn().execute(
        "UPDATE e2e_own_key_packages SET retired_at = ?1 WHERE retired_at IS NULL",
        [now],
    )?;
    for key_package in key_packages {
        let hash_ref = own_key_package_ref(store, key_package.as_ref())?;
        store.conn().execute(
            "INSERT INTO e2e_own_key_packages (hash_ref, created_at, retired_at)
             VALUES (?1, ?2, NULL)
             ON CONFLICT (hash_ref) DO UPDATE SET retired_at = NULL",
            rusqlite::params![hash_ref, now],
        )?;
    }
    atomic.commit()
}

/// Deletes the private keys (openmls' KeyPackage bundle: init key and leaf
/// encryption key) of our KeyPackages retired before `retired_before` (unix
/// seconds), and of the oldest retired ones beyond
/// [`MAX_RETIRED_KEY_PACKAGES`]. Returns how many were deleted. With the
/// database's secure delete on (see [`E2eStore`]), the bytes are zeroed in
/// the file; a WAL checkpoint then clears the old page images from the log.
///
/// A KeyPackage a Welcome already used is gone from openmls' storage (joining
/// deletes a one-time KeyPackage); deleting it again is harmless.
///
/// # Errors
///
/// [`E2eError::Storage`] if the database fails (nothing is changed).
pub fn delete_retired_key_packages(
    store: &E2eStore,
    retired_before: u64,
) -> Result<usize, E2eError> {
    let retired_before = i64::try_from(retired_before).unwrap_or(i64::MAX);
    let keep = i64::try_from(MAX_RETIRED_KEY_PACKAGES).unwrap_or(i64::MAX);
    let atomic = store.atomic()?;
    let refs: Vec<Vec<u8>> = {
        let conn = store.conn();
        let mut stmt = conn.prepare(
            "SELECT hash_ref FROM e2e_own_key_packages
             WHERE retired_at < ?1
                OR hash_ref IN (SELECT hash_ref FROM e2e_own_key_packages
                                WHERE retired_at IS NOT NULL
                                ORDER BY retired_at DESC, hash_ref
                                LIMIT -1 OFFSET ?2)",
        )?;
        let rows = stmt.query_map(rusqlite::params![retired_before, keep], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    delete_key_packages(store, OWN_TABLE, &refs)?;
    atomic.commit()?;
    Ok(refs.len())
}

/// Our bookkeeping table of published KeyPackages.
const OWN_TABLE: &str = "e2e_own_key_packages";
/// Our bookkeeping table of used one-time KeyPackages.
const USED_TABLE: &str = "e2e_used_key_packages";

/// Deletes the private keys of our KeyPackages `refs` (TLS-serialized KeyPackageRefs) from
/// openmls' storage and their rows from `table` (one of ours, with a `hash_ref` column).
fn delete_key_packages(store: &E2eStore, table: &str, refs: &[Vec<u8>]) -> Result<(), E2eError> {
    let provider = store.provider();
    for bytes in refs {
        let hash_ref = KeyPackageRef::tls_deserialize_exact_bytes(bytes)
            .map_err(|_| E2eError::Malformed("stored KeyPackageRef"))?;
        provider
            .storage()
            .delete_key_package(&hash_ref)
            .map_err(E2eError::Storage)?;
        store
            .conn()
            .execute(&format!("DELETE FROM {table} WHERE hash_ref = ?1"), [bytes])?;
    }
    Ok(())
}

/// Our one-time KeyPackages (ref and private bundle) that `welcome`'s secrets name, read before
/// joining: openmls deletes a one-time KeyPackage when a Welcome uses it, and
/// [`keep_used_key_packages`] puts it back for [`USED_KEY_PACKAGE_GRACE_SECS`]. First deletes
/// the used ones whose window ended before `now`, so a Welcome for one of them fails.
pub(crate) fn used_key_packages_of(
    store: &E2eStore,
    welcome: &Welcome,
    now: u64,
) -> Result<Vec<(KeyPackageRef, KeyPackageBundle)>, E2eError> {
    delete_used_key_packages(store, now.saturating_sub(USED_KEY_PACKAGE_GRACE_SECS))?;
    let mut found = Vec::new();
    for secrets in welcome.secrets() {
        let hash_ref = secrets.new_member();
        let bundle: Option<KeyPackageBundle> = store
            .provider()
            .storage()
            .key_package(&hash_ref)
            .map_err(E2eError::Storage)?;
        if let Some(bundle) = bundle.filter(|b| !b.key_package().last_resort()) {
            found.push((hash_ref, bundle));
        }
    }
    Ok(found)
}

/// Puts back the one-time KeyPackages a Welcome just used (as [`used_key_packages_of`] read
/// them) and records their first use at `now` (unix seconds; a later use keeps the first time,
/// so the window never grows). Call inside the join's transaction.
pub(crate) fn keep_used_key_packages(
    store: &E2eStore,
    used: &[(KeyPackageRef, KeyPackageBundle)],
    now: u64,
) -> Result<(), E2eError> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    for (hash_ref, bundle) in used {
        store
            .provider()
            .storage()
            .write_key_package(hash_ref, bundle)
            .map_err(E2eError::Storage)?;
        let bytes = hash_ref.tls_serialize_detached().map_err(E2eError::mls)?;
        store.conn().execute(
            "INSERT INTO e2e_used_key_packages (hash_ref, used_at) VALUES (?1, ?2)
             ON CONFLICT (hash_ref) DO NOTHING",
            rusqlite::params![bytes, now],
        )?;
    }
    Ok(())
}

/// Deletes the private keys of our one-time KeyPackages a Welcome first used before
/// `used_before` (unix seconds; pass `now - USED_KEY_PACKAGE_GRACE_SECS`). Returns how many
/// were deleted. As with [`delete_retired_key_packages`], secure delete zeroes the bytes.
///
/// # Errors
///
/// [`E2eError::Storage`] if the database fails (nothing is changed).
pub fn delete_used_key_packages(store: &E2eStore, used_before: u64) -> Result<usize, E2eError> {
    let used_before = i64::try_from(used_before).unwrap_or(i64::MAX);
    let atomic = store.atomic()?;
    let refs: Vec<Vec<u8>> = {
        let conn = store.conn();
        let mut stmt =
            conn.prepare("SELECT hash_ref FROM e2e_used_key_packages WHERE used_at < ?1")?;
        let rows = stmt.query_map([used_before], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    delete_key_packages(store, USED_TABLE, &refs)?;
    atomic.commit()?;
    Ok(refs.len())
}

#[cfg(test)]
mod retire_tests {
    use rhizo_core::{DeviceKey, RootKey};

    use super::*;

    fn device() -> Device {
        let root = RootKey::from_bytes(&[1; 32]);
        let key = DeviceKey::from_bytes(&[2; 32]);
        let certificate = root.certify_device(&key.public(), 1);
        Device::new(&key.to_bytes(), &certificate.encode()).unwrap()
    }

    /// Every stored openmls KeyPackage bundle (its private keys, serialized).
    fn stored_bundles(store: &E2eStore) -> Vec<Vec<u8>> {
        let mut stmt = store
            .conn()
            .prepare("SELECT key_package FROM openmls_key_packages")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The database file and its WAL after a truncating checkpoint.
    fn raw_file(store: &E2eStore, path: &std::path::Path) -> Vec<u8> {
        let _: (i64, i64, i64) = store
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        bytes.extend(std::fs::read(wal).unwrap_or_default());
        bytes
    }

    fn contains_any(haystack: &[u8], needles: &[&[u8]]) -> bool {
        let windows: std::collections::HashSet<&[u8]> = haystack.windows(48).collect();
        needles.iter().any(|n| windows.contains(n))
    }

    #[test]
    fn retired_key_packages_are_kept_for_the_grace_period_then_wiped_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mls.db");
        let store = E2eStore::open(&path).unwrap();
        let device = device();

        let old = create_key_packages(&store, &device, 2, false).unwrap();
        replace_published_key_packages(&store, &old, 100).unwrap();
        let old_secrets = stored_bundles(&store);
        assert_eq!(old_secrets.len(), 2);
        // A rotation at 200: the old ones are retired, not deleted.
        let new = create_key_packages(&store, &device, 2, false).unwrap();
        replace_published_key_packages(&store, &new, 200).unwrap();
        assert_eq!(delete_retired_key_packages(&store, 200).unwrap(), 0);
        assert_eq!(
            stored_bundles(&store).len(),
            4,
            "kept during the grace period"
        );

        // Pieces of the old private-key records that no other record shares.
        let kept = stored_bundles(&store)
            .into_iter()
            .filter(|b| !old_secrets.contains(b))
            .collect::<Vec<_>>();
        let kept_windows: std::collections::HashSet<&[u8]> =
            kept.iter().flat_map(|k| k.windows(48)).collect();
        let pieces: Vec<&[u8]> = old_secrets
            .iter()
            .flat_map(|b| b.chunks_exact(48))
            .filter(|piece| !kept_windows.contains(piece))
            .collect();
        assert!(!pieces.is_empty());
        let before = raw_file(&store, &path);
        assert!(
            contains_any(&before, &pieces),
            "the test must see the old keys in the file while they are kept"
        );

        // After the grace period: gone from openmls' storage and from the file's bytes.
        assert_eq!(delete_retired_key_packages(&store, 201).unwrap(), 2);
        assert_eq!(stored_bundles(&store), kept);
        let after = raw_file(&store, &path);
        assert!(
            !contains_any(&after, &pieces),
            "a deleted private key is still readable in the database file"
        );
        // The published ones are untouched, and deleting again is harmless.
        assert_eq!(delete_retired_key_packages(&store, u64::MAX).unwrap(), 0);
        assert_eq!(stored_bundles(&store).len(), 2);
    }

    #[test]
    fn retired_key_packages_beyond_the_bound_go_at_once() {
        let store = E2eStore::open_in_memory().unwrap();
        let device = device();
        // Pretend many rotations happened: fill the table past the bound cheaply.
        for i in 0..(MAX_RETIRED_KEY_PACKAGES + 3) {
            store
                .conn()
                .execute(
                    "INSERT INTO e2e_own_key_packages (hash_ref, created_at, retired_at)
                     VALUES (?1, 0, ?2)",
                    rusqlite::params![
                        KeyPackageRef::tls_deserialize_exact_bytes(&{
                            let mut r = vec![32u8];
                            r.extend_from_slice(&(i as u64).to_be_bytes());
                            r.extend_from_slice(&[0; 24]);
                            r
                        })
                        .unwrap()
                        .tls_serialize_detached()
                        .unwrap(),
                        i as i64
                    ],
                )
                .unwrap();
        }
        let current = create_key_packages(&store, &device, 1, false).unwrap();
        replace_published_key_packages(&store, &current, 5000).unwrap();
        // Nothing is past its grace period at 0, but the 3 oldest exceed the bound.
        assert_eq!(delete_retired_key_packages(&store, 0).unwrap(), 3);
        let left: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM e2e_own_key_packages", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(left as usize, MAX_RETIRED_KEY_PACKAGES + 1);
        assert_eq!(stored_bundles(&store).len(), 1, "the published one stays");
    }

    #[test]
    fn mls_work_on_a_borrowed_connection_runs_with_secure_delete_and_sets_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        drop(E2eStore::open(&path).unwrap());
        // The caller's own connection (the node's), with SQLite's default.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let secure = |c: &rusqlite::Connection| -> i64 {
            c.query_row("PRAGMA secure_delete", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(secure(&conn), 0);
        let store = E2eStore::from_connection(&conn).unwrap();
        let atomic = store.atomic().unwrap();
        assert_eq!(secure(&conn), 1, "on while MLS state changes");
        atomic.commit().unwrap();
        assert_eq!(secure(&conn), 0, "set back afterwards");
        drop(store.atomic().unwrap()); // rolled back
        assert_eq!(secure(&conn), 0);
    }
}
