//! [`SignedRecord`]: the one signed-record shape behind every DHT record kind.
//!
//! A record is a per-kind body (`B`: [`IdentityBody`](super::IdentityBody),
//! [`DeviceListBody`](super::DeviceListBody),
//! [`KeyPackageBundleBody`](super::KeyPackageBundleBody),
//! [`ProfileBody`](super::ProfileBody), [`AgentCardBody`](super::AgentCardBody)) plus the parts every kind shares: the
//! lifetime (`created_at`, `expires_at`) and the Ed25519 signature over
//! `"rhizo/record/v1" ‖ kind ‖ body`. Signing, encoding, validating, the
//! lifetime rules and the shared accessors live here once; a body only says
//! how it encodes, which structural limits it has, which key it belongs under
//! and who signs it.

use std::fmt;
use std::ops::Deref;

use super::{
    Hex, RECORD_KEY_LEN, RecordError, RecordKind, check_encoded_size, check_lifetime,
    encode_envelope, expiry_for_new, signed_message,
};
use crate::Uid;
use crate::identity::SIGNATURE_LEN;

/// What a body does for [`SignedRecord`]; sealed, so only this crate's five
/// bodies implement it.
pub(super) mod sealed {
    use super::{RECORD_KEY_LEN, RecordError, RecordKind, SIGNATURE_LEN, Uid};

    /// The per-kind half of a signed record.
    #[allow(unreachable_pub)] // the sealed-trait pattern: nameable only inside `records`
    pub trait Body: Clone + Eq + std::fmt::Debug {
        /// The kind byte and `kind` field of records with this body.
        const KIND: RecordKind;

        /// The DHT key a record with this body belongs under.
        fn key(&self) -> [u8; RECORD_KEY_LEN];

        /// Whether the record may be stored under `key`: its [`key`](Self::key), and for
        /// agent cards also the per-device keys of the devices it lists.
        fn belongs_under(&self, key: &[u8]) -> bool {
            key == self.key()
        }

        /// The UID of the identity the record belongs to.
        fn uid(&self) -> Uid;

        /// What orders two records under one key (`version`, or `created_at`
        /// for bodies without one).
        fn ordering_version(&self, created_at: u64) -> u64;

        /// The canonical protobuf encoding of the body with its lifetime.
        fn encode(&self, created_at: u64, expires_at: u64) -> Vec<u8>;

        /// Decodes a body (canonically) and checks its structural limits,
        /// with no signature work; returns it with `created_at` and
        /// `expires_at`.
        fn decode(bytes: &[u8]) -> Result<(Self, u64, u64), RecordError>;

        /// Kind-specific lifetime limits on top of the shared ones.
        fn check_ttl(_ttl: u64) -> Result<(), RecordError> {
            Ok(())
        }

        /// Verifies `signature` over `message` with the body's signing key,
        /// then any certificates the body carries.
        fn verify(
            &self,
            message: &[u8],
            signature: &[u8; SIGNATURE_LEN],
        ) -> Result<(), RecordError>;
    }
}

/// The body of a DHT record kind; implemented by the five record bodies of
/// this crate only.
pub trait RecordBody: sealed::Body {}

impl<B: sealed::Body> RecordBody for B {}

/// A body whose records carry a `version` that grows with every change
/// (device lists, key-package bundles, profiles).
pub trait VersionedBody: RecordBody {
    /// The record's version; higher replaces lower.
    fn version(&self) -> u64;
}

/// A signed DHT record: a body of kind `B`, its lifetime and the signature.
///
/// [`IdentityRecord`](super::IdentityRecord),
/// [`DeviceList`](super::DeviceList),
/// [`KeyPackageBundle`](super::KeyPackageBundle) and
/// [`Profile`](super::Profile) are this type with their bodies. The body's own
/// accessors (`root_pk()`, `devices()`, …) are reachable on the record through
/// `Deref`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRecord<B> {
    pub(super) body: B,
    pub(super) created_at: u64,
    pub(super) expires_at: u64,
    pub(super) signature: [u8; SIGNATURE_LEN],
}

impl<B: RecordBody> SignedRecord<B> {
    /// Signs `body` as a record valid from `now` for `ttl` seconds; `sign`
    /// is the signing key's Ed25519 signature function.
    pub(super) fn sign(
        body: B,
        now: u64,
        ttl: u64,
        sign: impl FnOnce(&[u8]) -> [u8; SIGNATURE_LEN],
    ) -> Result<Self, RecordError> {
        B::check_ttl(ttl)?;
        let expires_at = expiry_for_new(now, ttl)?;
        let encoded = body.encode(now, expires_at);
        let signature = sign(&signed_message(B::KIND, &encoded));
        let record = Self {
            body,
            created_at: now,
            expires_at,
            signature,
        };
        check_encoded_size(&record.encode())?;
        Ok(record)
    }

    /// Decodes and checks a body of this kind; see
    /// [`validate_record`](super::validate_record) for the order.
    pub(super) fn validate(
        key: &[u8],
        body: &[u8],
        signature: [u8; SIGNATURE_LEN],
        now: u64,
    ) -> Result<Self, RecordError> {
        let (decoded, created_at, expires_at) = B::decode(body)?;
        if !decoded.belongs_under(key) {
            return Err(RecordError::WrongKey);
        }
        check_lifetime(created_at, expires_at, now)?;
        // check_lifetime guarantees expires_at > created_at.
        B::check_ttl(expires_at - created_at)?;
        decoded.verify(&signed_message(B::KIND, body), &signature)?;
        Ok(Self {
            body: decoded,
            created_at,
            expires_at,
            signature,
        })
    }

    /// The per-kind body.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// Which kind of record this is.
    pub fn kind(&self) -> RecordKind {
        B::KIND
    }

    /// Claimed creation time, Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Expiry time, Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The signature: by the root key, or for key-package bundles by the
    /// device key.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The DHT key this record belongs under.
    pub fn key(&self) -> [u8; RECORD_KEY_LEN] {
        self.body.key()
    }

    /// The UID of the identity the record belongs to.
    pub fn uid(&self) -> Uid {
        self.body.uid()
    }

    /// What orders two records under one key: the `version` of versioned
    /// records, the `created_at` of identity records.
    pub fn ordering_version(&self) -> u64 {
        self.body.ordering_version(self.created_at)
    }

    /// Encodes the `SignedRecord` value to store in the DHT.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(B::KIND, self.body_bytes(), &self.signature)
    }

    /// The canonical body encoding (the bytes the signature covers after the
    /// domain and kind).
    pub(super) fn body_bytes(&self) -> Vec<u8> {
        self.body.encode(self.created_at, self.expires_at)
    }

    /// Whether the signed content is equal (signatures aside).
    pub(super) fn same_content(&self, other: &Self) -> bool {
        self.body == other.body
            && self.created_at == other.created_at
            && self.expires_at == other.expires_at
    }
}

impl<B: VersionedBody> SignedRecord<B> {
    /// The record's version; higher replaces lower.
    pub fn version(&self) -> u64 {
        self.body.version()
    }
}

impl<B> Deref for SignedRecord<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.body
    }
}

impl<B: RecordBody> fmt::Debug for SignedRecord<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRecord")
            .field("kind", &B::KIND)
            .field("body", &self.body)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        DeviceList, IdentityRecord, KeyPackageBundle, Profile, ValidRecord, should_replace,
        validate_record,
    };
    use super::*;
    use crate::{DeviceKey, RootKey};

    const NOW: u64 = 1_700_000_000;
    const TTL: u64 = 3 * 24 * 3600;

    /// The shared parts behave the same for every kind: what validates is the
    /// record that was signed, under its own key, with its lifetime, and a
    /// re-signed copy (a different signature) has the same content.
    fn check_shared_parts<B: RecordBody>(
        record: SignedRecord<B>,
        resign: impl Fn(&[u8]) -> [u8; SIGNATURE_LEN],
        wrap: fn(SignedRecord<B>) -> ValidRecord,
    ) {
        assert_eq!((record.created_at(), record.expires_at()), (NOW, NOW + TTL));
        assert_eq!(record.kind(), B::KIND);
        let valid = validate_record(&record.key(), &record.encode(), NOW).expect("valid");
        assert_eq!(valid, wrap(record.clone()));
        assert_eq!(valid.ordering_version(), record.ordering_version());
        assert_eq!(valid.uid(), record.uid());
        // The signature covers "rhizo/record/v1" ‖ kind ‖ body, nothing else.
        let mut copy = record.clone();
        copy.signature = resign(&signed_message(B::KIND, &record.body_bytes()));
        assert!(copy.same_content(&record));
        assert_eq!(should_replace(&valid, &wrap(copy)), Ok(false));
        // The same body a second later is other content with the same version.
        let mut later = record.clone();
        later.created_at += 1;
        assert!(!later.same_content(&record));
        // Debug names the shared shape and the kind.
        let debug = format!("{record:?}");
        assert!(debug.starts_with("SignedRecord { kind: "), "{debug}");
    }

    #[test]
    fn every_kind_shares_the_signed_record_parts() {
        let root = RootKey::from_bytes(&[1; 32]);
        let device = DeviceKey::from_bytes(&[3; 32]);
        let cert = root.certify_device(&device.public(), NOW);
        let by_root = |m: &[u8]| root.sign(m);
        let identity = IdentityRecord::new(&root, NOW, TTL).expect("identity");
        check_shared_parts(identity, by_root, ValidRecord::Identity);
        let list = DeviceList::new(&root, 2, vec![cert], NOW, TTL).expect("list");
        assert_eq!((list.version(), list.ordering_version()), (2, 2));
        check_shared_parts(list, by_root, ValidRecord::DeviceList);
        let packages = [&b"kp"[..]];
        let bundle = KeyPackageBundle::new(&device, cert, 5, packages, 0, NOW, TTL);
        check_shared_parts(
            bundle.expect("bundle"),
            |m| device.sign(m),
            ValidRecord::KeyPackages,
        );
        let profile = Profile::new(&root, 3, "Alice", Vec::new(), "", NOW, TTL).expect("profile");
        check_shared_parts(profile, by_root, ValidRecord::Profile);
    }

    #[test]
    fn the_identity_record_orders_by_created_at() {
        let root = RootKey::from_bytes(&[1; 32]);
        let record = IdentityRecord::new(&root, NOW, TTL).expect("identity");
        assert_eq!(record.ordering_version(), NOW);
        assert_eq!(record.body().root_pk(), root.public());
    }
}
