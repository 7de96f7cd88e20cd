//! [`IdentityRecord`]: a user's root public key, published under the UID.

use prost::Message;

use super::signed::{SignedRecord, sealed::Body};
use super::{
    RECORD_KEY_LEN, RecordError, RecordKind, decode_canonical, identity_key, root_key_from,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{RootKey, RootPublicKey, Uid};

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
pub type IdentityRecord = SignedRecord<IdentityBody>;

/// The body of an [`IdentityRecord`]: the root public key it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityBody {
    root_pk: RootPublicKey,
}

impl IdentityBody {
    /// The root public key the record publishes.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
    }
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
        let body = IdentityBody {
            root_pk: root.public(),
        };
        Self::sign(body, now, ttl, |message| root.sign(message))
    }
}

impl Body for IdentityBody {
    const KIND: RecordKind = RecordKind::Identity;

    fn key(&self) -> [u8; RECORD_KEY_LEN] {
        identity_key(&self.root_pk.uid())
    }

    fn uid(&self) -> Uid {
        self.root_pk.uid()
    }

    fn ordering_version(&self, created_at: u64) -> u64 {
        created_at
    }

    fn encode(&self, created_at: u64, expires_at: u64) -> Vec<u8> {
        proto::IdentityBody {
            root_pk: bytes::Bytes::copy_from_slice(self.root_pk.as_bytes()),
            created_at,
            expires_at,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<(Self, u64, u64), RecordError> {
        let decoded: proto::IdentityBody =
            decode_canonical(bytes).map_err(|e| e.into_record_error("identity body"))?;
        let root_pk = root_key_from(&decoded.root_pk)?;
        Ok((Self { root_pk }, decoded.created_at, decoded.expires_at))
    }

    fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), RecordError> {
        self.root_pk
            .verify(message, signature)
            .map_err(|_| RecordError::InvalidSignature)
    }
}
