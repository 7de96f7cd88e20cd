//! Safety numbers: one number two contacts compare to rule out a
//! man in the middle.
//!
//! Both sides compute the same 60 digits from the two root public keys, in
//! person or over a call read them out (or scan the QR code), and mark the
//! contact verified if they match. If either root key changes, the number
//! changes.
//!
//! # Derivation
//!
//! ```text
//! (lo, hi) = the two 32-byte root public keys, sorted bytewise
//! h        = SHA-512( "rhizo/safety/v1" ‖ lo ‖ hi )                    64 bytes
//! group i  = BE40( h[5i .. 5i+5] ) mod 100000,  i = 0 … 11               12 × 5 digits
//! ```
//!
//! Each group is a 40-bit big-endian integer reduced mod 10⁵ and printed
//! with leading zeros. The reduction bias is below 10⁻⁷ per group, so the 60
//! digits carry ≈ 199 bits: finding a second key pair with the same number is
//! far out of reach without Signal's iterated hashing. Sorting the keys makes
//! the number symmetric; the UIDs are not hashed separately because each one
//! derives from its root key. Keys are equal-length, so `lo ‖ hi` is
//! unambiguous.
//!
//! `Display` prints 12 groups of 5 digits separated by spaces; the alternate
//! form (`{:#}`) prints 3 lines of 4 groups. The QR code carries the 60
//! digits without separators, which [`FromStr`] parses back for comparison.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha512};
use thiserror::Error;

use crate::RootPublicKey;

/// Domain tag hashed before the two sorted root keys.
pub const SAFETY_NUMBER_DOMAIN: &[u8] = b"rhizo/safety/v1";
/// Number of 5-digit groups.
pub const SAFETY_NUMBER_GROUPS: usize = 12;
/// Digits per group.
const GROUP_DIGITS: usize = 5;
/// Total digits: 12 groups of 5.
pub const SAFETY_NUMBER_DIGITS: usize = SAFETY_NUMBER_GROUPS * GROUP_DIGITS;
/// Hash bytes per group: 40 bits, so reducing mod 10⁵ is nearly unbiased.
const GROUP_BYTES: usize = 5;
/// 10⁵: one group's range.
const GROUP_MODULUS: u64 = 100_000;
/// Groups per line in the alternate `Display` form.
const GROUPS_PER_LINE: usize = 4;

/// The pairwise safety number of two identities; see the
/// [module docs](self) for the derivation.
///
/// ```
/// use rhizo_core::RootKey;
/// use rhizo_core::safety::SafetyNumber;
///
/// let alice = RootKey::from_bytes(&[1u8; 32]).public();
/// let bob = RootKey::from_bytes(&[2u8; 32]).public();
/// let number = SafetyNumber::between(&alice, &bob);
/// assert_eq!(number, SafetyNumber::between(&bob, &alice));
/// assert_eq!(number.to_string().len(), 60 + 11);
/// assert_eq!(number.to_string().parse::<SafetyNumber>(), Ok(number));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyNumber([u32; SAFETY_NUMBER_GROUPS]);

impl SafetyNumber {
    /// The safety number between two root keys; the same whichever side
    /// computes it.
    pub fn between(a: &RootPublicKey, b: &RootPublicKey) -> Self {
        let (lo, hi) = if a.as_bytes() <= b.as_bytes() {
            (a, b)
        } else {
            (b, a)
        };
        let hash = Sha512::new()
            .chain_update(SAFETY_NUMBER_DOMAIN)
            .chain_update(lo.as_bytes())
            .chain_update(hi.as_bytes())
            .finalize();
        let mut groups = [0u32; SAFETY_NUMBER_GROUPS];
        for (group, chunk) in groups.iter_mut().zip(hash.chunks_exact(GROUP_BYTES)) {
            let value = chunk
                .iter()
                .fold(0u64, |acc, &byte| acc << 8 | u64::from(byte));
            // < 100000, so it always fits.
            *group = u32::try_from(value % GROUP_MODULUS).unwrap_or(0);
        }
        Self(groups)
    }

    /// The 12 groups, each below 100000.
    pub fn groups(&self) -> &[u32; SAFETY_NUMBER_GROUPS] {
        &self.0
    }

    /// The 60 digits without separators (what the QR code carries).
    pub fn digits(&self) -> String {
        self.0.iter().map(|g| format!("{g:05}")).collect()
    }

    /// The digits as a QR code drawn with Unicode half blocks, for the other
    /// side to scan and compare with [`FromStr`]. Falls back to the plain
    /// digits if rendering fails (60 digits always fit).
    pub fn to_qr_string(&self) -> String {
        let digits = self.digits();
        crate::ticket::render_qr(&digits).unwrap_or(digits)
    }
}

/// `12345 67890 …` (12 groups); `{:#}` prints 3 lines of 4 groups.
impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.iter().enumerate() {
            if i > 0 {
                let line_break = f.alternate() && i % GROUPS_PER_LINE == 0;
                f.write_str(if line_break { "\n" } else { " " })?;
            }
            write!(f, "{group:05}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

/// Why a typed-in or scanned safety number could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SafetyNumberError {
    /// Not exactly 60 digits once whitespace is removed.
    #[error("a safety number has 60 digits, got {actual}; enter all 12 groups")]
    WrongLength {
        /// Digits given.
        actual: usize,
    },
    /// Something other than a digit or whitespace.
    #[error("invalid character {character:?} at position {position}: safety numbers are digits")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// 1-based position in the input.
        position: usize,
    },
}

/// Parses 60 digits, ignoring whitespace (so both the `Display` forms and the
/// QR content parse).
impl FromStr for SafetyNumber {
    type Err = SafetyNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut groups = [0u32; SAFETY_NUMBER_GROUPS];
        let mut count = 0usize;
        for (index, character) in s.chars().enumerate() {
            if character.is_whitespace() {
                continue;
            }
            let digit = character
                .to_digit(10)
                .ok_or(SafetyNumberError::InvalidCharacter {
                    character,
                    position: index + 1,
                })?;
            if let Some(group) = groups.get_mut(count / GROUP_DIGITS) {
                *group = *group * 10 + digit;
            }
            count += 1;
        }
        if count != SAFETY_NUMBER_DIGITS {
            return Err(SafetyNumberError::WrongLength { actual: count });
        }
        Ok(Self(groups))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::RootKey;

    fn key(seed: u8) -> RootPublicKey {
        RootKey::from_bytes(&[seed; 32]).public()
    }

    #[test]
    fn symmetric() {
        assert_eq!(
            SafetyNumber::between(&key(1), &key(2)),
            SafetyNumber::between(&key(2), &key(1))
        );
    }

    #[test]
    fn changes_when_either_key_changes() {
        let base = SafetyNumber::between(&key(1), &key(2));
        assert_ne!(base, SafetyNumber::between(&key(1), &key(3)));
        assert_ne!(base, SafetyNumber::between(&key(3), &key(2)));
        assert_ne!(base, SafetyNumber::between(&key(1), &key(1)));
    }

    #[test]
    fn fixed_vector() {
        let (a, b) = (key(7), key(8));
        // Independent recomputation from the documented derivation.
        let (lo, hi) = if a.as_bytes() < b.as_bytes() {
            (a, b)
        } else {
            (b, a)
        };
        let mut input = b"rhizo/safety/v1".to_vec();
        input.extend_from_slice(lo.as_bytes());
        input.extend_from_slice(hi.as_bytes());
        let hash = Sha512::digest(&input);
        let expected: String = hash[..60]
            .chunks(5)
            .map(|c| {
                let mut be = [0u8; 8];
                be[3..].copy_from_slice(c);
                format!("{:05}", u64::from_be_bytes(be) % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ");
        let number = SafetyNumber::between(&a, &b);
        assert_eq!(number.to_string(), expected);
        // Frozen: changing the derivation breaks every verified contact.
        assert_eq!(
            number.to_string(),
            "19318 79507 76085 20169 01558 94034 17484 74118 72935 09134 96977 82887"
        );
    }

    #[test]
    fn display_forms_and_parsing() {
        let number = SafetyNumber::between(&key(1), &key(2));
        let text = number.to_string();
        assert_eq!(text.len(), 71);
        assert_eq!(text.split(' ').count(), 12);
        let lines = format!("{number:#}");
        assert_eq!(lines.lines().count(), 3);
        assert!(lines.lines().all(|l| l.split(' ').count() == 4));
        assert_eq!(number.digits().len(), 60);
        assert_eq!(number.digits().parse(), Ok(number));
        assert_eq!(lines.parse(), Ok(number));
        assert_eq!(text.parse(), Ok(number));
        assert_eq!(
            text[..70].parse::<SafetyNumber>(),
            Err(SafetyNumberError::WrongLength { actual: 59 })
        );
        assert_eq!(
            format!("{text}1").parse::<SafetyNumber>(),
            Err(SafetyNumberError::WrongLength { actual: 61 })
        );
        assert_eq!(
            "12a".parse::<SafetyNumber>(),
            Err(SafetyNumberError::InvalidCharacter {
                character: 'a',
                position: 3
            })
        );
        assert!(format!("{number:?}").starts_with("SafetyNumber("));
        assert!(number.groups().iter().all(|&g| g < 100_000));
    }

    #[test]
    fn qr_code_renders() {
        let qr = SafetyNumber::between(&key(1), &key(2)).to_qr_string();
        assert!(qr.lines().count() > 10, "{qr}");
        assert!(!qr.chars().any(|c| c.is_ascii_digit()));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,200}") {
            let _ = text.parse::<SafetyNumber>();
        }

        #[test]
        fn symmetric_for_any_keys(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let (a, b) = (RootKey::from_bytes(&a).public(), RootKey::from_bytes(&b).public());
            let number = SafetyNumber::between(&a, &b);
            prop_assert_eq!(number, SafetyNumber::between(&b, &a));
            prop_assert_eq!(number.to_string().parse::<SafetyNumber>(), Ok(number));
        }
    }
}
