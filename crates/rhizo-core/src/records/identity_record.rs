//! [`IdentityRecord`]: a user's root public key, published under the UID.

use std::fmt;

use prost::Message;

use super::{
    Hex, RECORD_KEY_LEN, RecordError, RecordKind, check_encoded_size, check_key, check_lifetime,
    decode_canonical, encode_envelope, expiry_for_new, identity_key, root_key_from, signed_message,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{RootKey, RootPublicKey};

/// A user's root public key, signed by itself and stored under
/// [`identity_key`](super::identity_key)`(uid)`, so anyone who knows a UID can
/// fetch the key and check it against the UID.
///
/// Body (`rhizo.v1.IdentityBody`): `root_pk` (32 bytes), `created_at`,
/// `expires_at` (Unix seconds). Signed by the root key; see the
/// [signed bytes](super#signed-bytes). A later `created_at` replaces an
/// earlier one.
///
/// ```
/// use rhizo_core::RootKey;
/// use rhizo_core::records::{IdentityRecord, ValidRecord, identity_key, validate_record};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = RootKey::from_bytes(&[7u8; 32]);
/// let now = 1_700_000_000;
/// let record = IdentityRecord::new(&root, now, 3 * 24 * 3600)?;
/// let key = identity_key(&root.public().uid());
/// let valid = validate_record(&key, &record.encode(), now)?;
/// assert_eq!(valid, ValidRecord::Identity(record));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    root_pk: RootPublicKey,
    created_at: u64,
    expires_at: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl IdentityRecord {
    /// Signs a new identity record valid from `now` for `ttl` seconds.
    ///
    /// # Errors
    ///
    /// [`RecordError::TtlTooLong`] if `ttl` exceeds
    /// [`MAX_RECORD_TTL`](super::MAX_RECORD_TTL);
    /// [`RecordError::InvalidLifetime`] if `ttl` is 0 or `now + ttl` overflows.
    pub fn new(root: &RootKey, now: u64, ttl: u64) -> Result<Self, RecordError> {
        let expires_at = expiry_for_new(now, ttl)?;
        let root_pk = root.public();
        let body = body(&root_pk, now, expires_at);
        let signature = root.sign(&signed_message(RecordKind::Identity, &body));
        let record = Self {
            root_pk,
            created_at: now,
            expires_at,
            signature,
        };
        check_encoded_size(&record.encode())?;
        Ok(record)
    }

    /// The root public key the record publishes.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
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
        identity_key(&self.root_pk.uid())
    }

    /// Encodes the `SignedRecord` value to store in the DHT.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(
            RecordKind::Identity,
            body(&self.root_pk, self.created_at, self.expires_at),
            &self.signature,
        )
    }

    /// Decodes and checks an identity body; see
    /// [`validate_record`](super::validate_record) for the order.
    pub(super) fn validate(
        key: &[u8],
        body: &[u8],
        signature: [u8; SIGNATURE_LEN],
        now: u64,
    ) -> Result<Self, RecordError> {
        let decoded: proto::IdentityBody =
            decode_canonical(body).map_err(|e| e.into_record_error("identity body"))?;
        let root_pk = root_key_from(&decoded.root_pk)?;
        check_key(key, &identity_key(&root_pk.uid()))?;
        check_lifetime(decoded.created_at, decoded.expires_at, now)?;
        root_pk
            .verify(&signed_message(RecordKind::Identity, body), &signature)
            .map_err(|_| RecordError::InvalidSignature)?;
        Ok(Self {
            root_pk,
            created_at: decoded.created_at,
            expires_at: decoded.expires_at,
            signature,
        })
    }

    /// Whether the signed fields are equal (signatures aside).
    pub(super) fn same_content(&self, other: &Self) -> bool {
        self.root_pk == other.root_pk
            && self.created_at == other.created_at
            && self.expires_at == other.expires_at
    }
}

impl fmt::Debug for IdentityRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityRecord")
            .field("root_pk", &self.root_pk)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("signature", &Hex(&self.signature))
            .finish()
    }
}

/// The canonical body encoding.
fn body(root_pk: &RootPublicKey, created_at: u64, expires_at: u64) -> Vec<u8> {
    proto::IdentityBody {
        root_pk: bytes::Bytes::copy_from_slice(root_pk.as_bytes()),
        created_at,
        expires_at,
    }
    .encode_to_vec()
}
