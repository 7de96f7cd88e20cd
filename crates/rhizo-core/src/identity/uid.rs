//! [`Uid`] and [`Fingerprint`]: hashes of a [`RootPublicKey`] for humans.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::RootPublicKey;
use crate::error::IdCodeError;
use crate::idcode;

/// Domain tag hashed before the root public key to derive a [`Uid`].
pub const UID_DOMAIN: &[u8] = b"rhizo/uid/v1";
/// Domain tag hashed before the root public key to derive a [`Fingerprint`].
pub const FINGERPRINT_DOMAIN: &[u8] = b"rhizo/fingerprint/v1";
/// Length of a [`Uid`]: a full SHA-256 output, so UIDs never collide.
pub const UID_LEN: usize = 32;
/// Length of a [`Fingerprint`]: 160 bits, enough against second preimages
/// while staying 32 base32 characters long to read out.
pub const FINGERPRINT_LEN: usize = 20;
/// Base32 characters per printed fingerprint group.
const FINGERPRINT_GROUP_CHARS: usize = 4;

/// SHA-256(`domain` ‖ `root`).
fn domain_hash(domain: &[u8], root: &RootPublicKey) -> [u8; 32] {
    let digest = Sha256::new()
        .chain_update(domain)
        .chain_update(root.as_bytes())
        .finalize();
    digest.into()
}

/// A user ID: SHA-256(`"rhizo/uid/v1"` ‖ root public key).
///
/// This is what users share to be found. It commits to the root key, so a
/// peer presenting a root key can be checked against a UID without trusting
/// anyone.
///
/// `Display` (and serde) print it as a typo-checked [`idcode`], e.g.
/// `"ABCDEFG-HIJKLMN-…"`; `FromStr` parses that form tolerantly (lower case,
/// without dashes). `Debug` shows `Uid(<display form>)`.
///
/// ```
/// use rhizo_core::{RootKey, Uid};
///
/// let uid = RootKey::from_bytes(&[7u8; 32]).public().uid();
/// let text = uid.to_string();
/// assert_eq!(text.parse::<Uid>(), Ok(uid));
/// assert_eq!(text.to_lowercase().replace('-', "").parse::<Uid>(), Ok(uid));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid([u8; UID_LEN]);

impl Uid {
    /// Derives the UID of a root public key.
    pub fn from_root(root: &RootPublicKey) -> Self {
        Self(domain_hash(UID_DOMAIN, root))
    }

    /// Wraps 32 raw bytes (for example read back from storage). Any 32 bytes
    /// are accepted; use [`Uid::from_root`] to derive one.
    pub fn from_bytes(bytes: &[u8; UID_LEN]) -> Self {
        Self(*bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; UID_LEN] {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&idcode::encode(&self.0))
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({self})")
    }
}

/// Parses the [`idcode`] form; see [`idcode::decode`] for what is tolerated.
impl FromStr for Uid {
    type Err = IdCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        idcode::decode(s).map(Self)
    }
}

/// Serializes as the display string.
impl Serialize for Uid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Deserializes from the display string (or any form [`FromStr`] accepts).
impl<'de> Deserialize<'de> for Uid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The per-identity fingerprint users read out to each other to confirm a
/// root key: SHA-256(`"rhizo/fingerprint/v1"` ‖ root public key), first 20
/// bytes.
///
/// `Display` prints 32 base32 characters in 8 groups of 4 separated by spaces,
/// e.g. `"ABCD EFGH IJKL MNOP QRST UVWX YZ23 4567"`. (The pairwise safety
/// number for two identities is a separate, later construct.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// Derives the fingerprint of a root public key.
    pub fn from_root(root: &RootPublicKey) -> Self {
        let hash = domain_hash(FINGERPRINT_DOMAIN, root);
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&hash[..FINGERPRINT_LEN]);
        Self(fingerprint)
    }

    /// The 20 raw bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 20 bytes = 160 bits = exactly 32 base32 characters, no padding.
        let encoded = BASE32_NOPAD.encode(&self.0);
        for (i, group) in encoded
            .as_bytes()
            .chunks(FINGERPRINT_GROUP_CHARS)
            .enumerate()
        {
            if i > 0 {
                f.write_str(" ")?;
            }
            group
                .iter()
                .try_for_each(|&b| write!(f, "{}", char::from(b)))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootKey;

    fn seven_root() -> RootPublicKey {
        RootKey::from_bytes(&[7u8; 32]).public()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn uid_fixed_vector() {
        let root = seven_root();
        // Independent computation with sha2 directly.
        let mut hasher = Sha256::new();
        hasher.update(b"rhizo/uid/v1");
        hasher.update(root.as_bytes());
        let expected = hex(&hasher.finalize());

        let uid = root.uid();
        assert_eq!(hex(uid.as_bytes()), expected);
        assert_eq!(uid, Uid::from_root(&root));
        // Frozen values (cross-checked with Python hashlib/cryptography): a change
        // here breaks every existing UID.
        assert_eq!(
            root.to_string(),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(
            expected,
            "ef2bdaa8704c7d799b40e4898fbaa85477eee80a0e25bfb6f414d246799cf402"
        );
        assert_eq!(
            uid.to_string(),
            "54V5VKD-QJR6XTY-G2A4SEY-7OVIKRX-3652AKB-YS37NXX-UCTJEM6-M46QBAP"
        );

        assert_eq!(uid.to_string().parse::<Uid>(), Ok(uid));
        assert_eq!(Uid::from_bytes(uid.as_bytes()), uid);
        assert_eq!(format!("{uid:?}"), format!("Uid({uid})"));
    }

    #[test]
    fn uid_serde_is_the_display_string() {
        let uid = seven_root().uid();
        let json = serde_json::to_string(&uid).expect("serialize");
        assert_eq!(json, format!("\"{uid}\""));
        assert_eq!(
            serde_json::from_str::<Uid>(&json).expect("deserialize"),
            uid
        );
        let typo = json.replacen('A', "B", 1).replacen('C', "D", 1);
        if typo != json {
            assert!(serde_json::from_str::<Uid>(&typo).is_err());
        }
        assert!(serde_json::from_str::<Uid>("42").is_err());
    }

    #[test]
    fn fingerprint_fixed_vector_and_format() {
        let root = seven_root();
        let mut hasher = Sha256::new();
        hasher.update(b"rhizo/fingerprint/v1");
        hasher.update(root.as_bytes());
        let full = hasher.finalize();

        let fingerprint = root.fingerprint();
        assert_eq!(fingerprint.as_bytes()[..], full[..20]);
        assert_eq!(fingerprint, Fingerprint::from_root(&root));

        let text = fingerprint.to_string();
        assert_eq!(text, "4OZC KDPN JHA3 FSK2 BOK7 HEKJ KAHN 2D5B");
        let groups: Vec<&str> = text.split(' ').collect();
        assert_eq!(groups.len(), 8);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert_eq!(
            BASE32_NOPAD.decode(groups.concat().as_bytes()),
            Ok(full[..20].to_vec())
        );
    }

    #[test]
    fn uid_and_fingerprint_are_domain_separated() {
        let root = seven_root();
        assert_ne!(
            root.uid().as_bytes()[..20],
            root.fingerprint().as_bytes()[..]
        );
        assert_ne!(root.uid(), RootKey::from_bytes(&[8u8; 32]).public().uid());
    }
}
