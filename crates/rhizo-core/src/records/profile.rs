//! [`Profile`]: a user's signed display name and avatar (seed 003's user meta).

use std::fmt;

use prost::Message;

use super::signed::{SignedRecord, VersionedBody, sealed::Body};
use super::{
    RECORD_KEY_LEN, RecordError, RecordKind, decode_canonical, profile_key, root_key_from,
};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{RootKey, RootPublicKey, Uid};

/// Longest display name, in characters.
pub const MAX_PROFILE_NAME_CHARS: usize = 64;
/// Largest avatar image: with the other fields the record stays well inside one DHT packet
/// ([`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES)).
pub const MAX_AVATAR_BYTES: usize = 32 * 1024;
/// Longest avatar media type.
pub const MAX_AVATAR_MIME_BYTES: usize = 64;
/// Shortest profile lifetime: a profile lives 3 to 7 days and its owner republishes it while
/// online.
pub const MIN_PROFILE_TTL: u64 = 3 * 24 * 60 * 60;

/// A user's profile, signed by the root key and stored under
/// [`profile_key`](super::profile_key)`(uid)`; a higher `version` replaces a lower one.
///
/// ```
/// use rhizo_core::RootKey;
/// use rhizo_core::records::{Profile, ValidRecord, profile_key, validate_record};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = RootKey::from_bytes(&[7u8; 32]);
/// let now = 1_700_000_000;
/// let profile = Profile::new(&root, 1, "Alice", Vec::new(), "", now, 3 * 24 * 3600)?;
/// let key = profile_key(&root.public().uid());
/// assert_eq!(validate_record(&key, &profile.encode(), now)?, ValidRecord::Profile(profile));
/// # Ok(())
/// # }
/// ```
pub type Profile = SignedRecord<ProfileBody>;

/// The body of a [`Profile`]: the owner's root key, the version, the display
/// name and the avatar.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileBody {
    root_pk: RootPublicKey,
    version: u64,
    name: String,
    avatar: bytes::Bytes,
    avatar_mime: String,
}

impl ProfileBody {
    /// The owner's root public key.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Avatar image bytes (empty for none).
    pub fn avatar(&self) -> &[u8] {
        &self.avatar
    }

    /// Avatar media type (empty for none).
    pub fn avatar_mime(&self) -> &str {
        &self.avatar_mime
    }
}

impl Profile {
    /// Signs a profile valid from `now` for `ttl` seconds (3 to 7 days).
    ///
    /// # Errors
    ///
    /// [`RecordError::ProfileField`] for a bad name, avatar or media type;
    /// [`RecordError::TtlTooShort`] / [`RecordError::TtlTooLong`] for a lifetime outside 3–7
    /// days; [`RecordError::TooLarge`] if the encoding does not fit.
    pub fn new(
        root: &RootKey,
        version: u64,
        name: &str,
        avatar: Vec<u8>,
        avatar_mime: &str,
        now: u64,
        ttl: u64,
    ) -> Result<Self, RecordError> {
        check_fields(name, &avatar, avatar_mime)?;
        let body = ProfileBody {
            root_pk: root.public(),
            version,
            name: name.to_string(),
            avatar: avatar.into(),
            avatar_mime: avatar_mime.to_string(),
        };
        Self::sign(body, now, ttl, |message| root.sign(message))
    }
}

impl VersionedBody for ProfileBody {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Body for ProfileBody {
    const KIND: RecordKind = RecordKind::Profile;

    fn key(&self) -> [u8; RECORD_KEY_LEN] {
        profile_key(&self.root_pk.uid())
    }

    fn uid(&self) -> Uid {
        self.root_pk.uid()
    }

    fn ordering_version(&self, _created_at: u64) -> u64 {
        self.version
    }

    fn encode(&self, created_at: u64, expires_at: u64) -> Vec<u8> {
        proto::ProfileBody {
            root_pk: bytes::Bytes::copy_from_slice(self.root_pk.as_bytes()),
            version: self.version,
            name: self.name.clone(),
            avatar: self.avatar.clone(),
            avatar_mime: self.avatar_mime.clone(),
            created_at,
            expires_at,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<(Self, u64, u64), RecordError> {
        let decoded: proto::ProfileBody =
            decode_canonical(bytes).map_err(|e| e.into_record_error("profile body"))?;
        let root_pk = root_key_from(&decoded.root_pk)?;
        check_fields(&decoded.name, &decoded.avatar, &decoded.avatar_mime)?;
        let body = Self {
            root_pk,
            version: decoded.version,
            name: decoded.name,
            avatar: decoded.avatar,
            avatar_mime: decoded.avatar_mime,
        };
        Ok((body, decoded.created_at, decoded.expires_at))
    }

    fn check_ttl(ttl: u64) -> Result<(), RecordError> {
        if ttl < MIN_PROFILE_TTL {
            return Err(RecordError::TtlTooShort {
                ttl,
                min: MIN_PROFILE_TTL,
            });
        }
        Ok(())
    }

    fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), RecordError> {
        self.root_pk
            .verify(message, signature)
            .map_err(|_| RecordError::InvalidSignature)
    }
}

/// The name, avatar and media type limits.
fn check_fields(name: &str, avatar: &[u8], mime: &str) -> Result<(), RecordError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_PROFILE_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(RecordError::ProfileField(
            "the name must have 1 to 64 characters and no control characters",
        ));
    }
    if avatar.len() > MAX_AVATAR_BYTES {
        return Err(RecordError::ProfileField(
            "the avatar is larger than 32 KiB; scale it down (e.g. to 128x128)",
        ));
    }
    let mime_ok = mime.len() <= MAX_AVATAR_MIME_BYTES
        && mime.bytes().all(|b| b.is_ascii_graphic())
        && mime
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
    if avatar.is_empty() != mime.is_empty() || (!mime.is_empty() && !mime_ok) {
        return Err(RecordError::ProfileField(
            "an avatar needs a media type such as image/png (and no avatar, none)",
        ));
    }
    Ok(())
}

impl fmt::Debug for ProfileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileBody")
            .field("root_pk", &self.root_pk)
            .field("version", &self.version)
            .field("name", &self.name)
            .field("avatar_bytes", &self.avatar.len())
            .field("avatar_mime", &self.avatar_mime)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ValidRecord, should_replace, signed_message, validate_record};

    const NOW: u64 = 1_700_000_000;
    const TTL: u64 = 3 * 24 * 3600;

    fn root(seed: u8) -> RootKey {
        RootKey::from_bytes(&[seed; 32])
    }

    fn profile(version: u64) -> Profile {
        Profile::new(
            &root(1),
            version,
            "Alice",
            vec![1, 2, 3],
            "image/png",
            NOW,
            TTL,
        )
        .unwrap()
    }

    #[test]
    fn round_trips_under_its_key_and_nowhere_else() {
        let p = profile(1);
        let key = profile_key(&root(1).public().uid());
        assert_eq!(
            validate_record(&key, &p.encode(), NOW).unwrap(),
            ValidRecord::Profile(p.clone())
        );
        let other = profile_key(&root(2).public().uid());
        assert_eq!(
            validate_record(&other, &p.encode(), NOW),
            Err(RecordError::WrongKey)
        );
    }

    #[test]
    fn a_forged_profile_is_refused() {
        let p = profile(1);
        let key = p.key();
        // Every byte flipped in turn: never accepted as a different valid profile.
        let bytes = p.encode();
        for i in 0..bytes.len() {
            let mut forged = bytes.clone();
            forged[i] ^= 0x01;
            if let Ok(ValidRecord::Profile(q)) = validate_record(&key, &forged, NOW) {
                panic!("byte {i} flipped still verifies: {q:?}");
            }
        }
        // Signed by another root, claiming the first one's key: refused.
        let mallory = Profile::new(&root(2), 9, "Alice", Vec::new(), "", NOW, TTL).unwrap();
        assert!(validate_record(&key, &mallory.encode(), NOW).is_err());
    }

    #[test]
    fn limits_are_enforced_by_the_builder_and_the_validator() {
        let r = root(1);
        assert!(Profile::new(&r, 1, "", Vec::new(), "", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, &"x".repeat(65), Vec::new(), "", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a\nb", Vec::new(), "", NOW, TTL).is_err());
        assert!(
            Profile::new(
                &r,
                1,
                "a",
                vec![0; MAX_AVATAR_BYTES + 1],
                "image/png",
                NOW,
                TTL
            )
            .is_err()
        );
        assert!(Profile::new(&r, 1, "a", vec![0; 10], "", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a", vec![0; 10], "png", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a", vec![0; 10], "image/png/x", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a", vec![0; 10], "image/ png", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a", vec![0; 10], "/png", NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a", vec![0; 10], &"i/".repeat(33), NOW, TTL).is_err());
        assert!(Profile::new(&r, 1, "a", Vec::new(), "image/png", NOW, TTL).is_err());
        // 64 characters (multi-byte ones count once) are fine; so is a full week.
        assert!(Profile::new(&r, 1, &"é".repeat(64), Vec::new(), "", NOW, TTL).is_ok());
        assert!(Profile::new(&r, 1, "a", Vec::new(), "", NOW, 7 * 24 * 3600).is_ok());
        assert!(Profile::new(&r, 1, "a", vec![0; MAX_AVATAR_BYTES], "image/png", NOW, TTL).is_ok());
        assert!(matches!(
            Profile::new(&r, 1, "a", Vec::new(), "", NOW, TTL - 1),
            Err(RecordError::TtlTooShort { .. })
        ));
        assert!(matches!(
            Profile::new(&r, 1, "a", Vec::new(), "", NOW, 7 * 24 * 3600 + 1),
            Err(RecordError::TtlTooLong { .. })
        ));
        // An oversized avatar crafted past the builder and signed: the validator refuses it.
        let mut big = profile(1);
        big.body.avatar = vec![0u8; MAX_AVATAR_BYTES + 1].into();
        big.signature = r.sign(&signed_message(RecordKind::Profile, &big.body_bytes()));
        assert!(matches!(
            validate_record(&big.key(), &big.encode(), NOW),
            Err(RecordError::ProfileField(_))
        ));
        // And a name crafted past the builder.
        let mut named = profile(1);
        named.body.name = "x".repeat(MAX_PROFILE_NAME_CHARS + 1);
        named.signature = r.sign(&signed_message(RecordKind::Profile, &named.body_bytes()));
        assert!(matches!(
            validate_record(&named.key(), &named.encode(), NOW),
            Err(RecordError::ProfileField(_))
        ));
        // A lifetime over 7 days.
        let mut long = profile(1);
        long.expires_at = NOW + 7 * 24 * 3600 + 1;
        long.signature = r.sign(&signed_message(RecordKind::Profile, &long.body_bytes()));
        assert!(matches!(
            validate_record(&long.key(), &long.encode(), NOW),
            Err(RecordError::TtlTooLong { .. })
        ));
        // So is a too-short lifetime.
        let mut short = profile(1);
        short.expires_at = NOW + 60;
        short.signature = r.sign(&signed_message(RecordKind::Profile, &short.body_bytes()));
        assert!(matches!(
            validate_record(&short.key(), &short.encode(), NOW),
            Err(RecordError::TtlTooShort { .. })
        ));
    }

    #[test]
    fn a_valid_profile_reads_back_through_valid_record() {
        let p = profile(5);
        assert_eq!(p.root_pk(), root(1).public());
        assert_eq!(
            (p.name(), p.avatar(), p.avatar_mime()),
            ("Alice", &[1u8, 2, 3][..], "image/png")
        );
        assert_eq!((p.created_at(), p.expires_at()), (NOW, NOW + TTL));
        let v = ValidRecord::from(p.clone());
        assert_eq!(v.kind(), RecordKind::Profile);
        assert_eq!(v.kind().to_string(), "profile");
        assert_eq!(v.key(), profile_key(&root(1).public().uid()));
        assert_eq!(v.uid(), root(1).public().uid());
        assert_eq!(v.ordering_version(), 5);
        assert_eq!(v.encode(), p.encode());
        // The key is distinct from the other records' keys for the same UID.
        let uid = root(1).public().uid();
        assert_ne!(p.key(), super::super::identity_key(&uid));
        assert_ne!(p.key(), super::super::device_list_key(&uid));
    }

    #[test]
    fn only_a_newer_version_replaces_a_stored_one() {
        let (v1, v2) = (
            ValidRecord::Profile(profile(1)),
            ValidRecord::Profile(profile(2)),
        );
        assert_eq!(should_replace(&v1, &v2), Ok(true));
        assert!(should_replace(&v2, &v1).is_err());
        assert_eq!(should_replace(&v2, &v2.clone()), Ok(false));
    }
}
