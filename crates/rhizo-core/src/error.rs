//! Error types, one enum per operation.
//!
//! * [`KeyError`] — generating keys, parsing public keys, verifying signatures.
//! * [`CertError`] — decoding and verifying a [`DeviceCertificate`](crate::DeviceCertificate).
//! * [`IdCodeError`] — parsing a typed-in code such as a [`Uid`](crate::Uid).
//!
//! Every message says what went wrong and, where the user can do something
//! about it, what to do.

use thiserror::Error;

/// Error from generating a key, parsing a public key or verifying a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error(
        "the operating system's random number generator failed, so no key was generated; \
         retry, and check that the system entropy source is available"
    )]
    Randomness(#[source] getrandom::Error),
    /// The bytes are not a canonical encoding of a point on the Ed25519 curve.
    #[error(
        "not a valid Ed25519 public key (not a canonically encoded curve point); \
         the key is corrupted or is not an Ed25519 key"
    )]
    InvalidPublicKey,
    /// The key is a small-order ("weak") point, which would let anyone forge
    /// signatures that verify under it.
    #[error(
        "weak Ed25519 public key (small-order point) rejected: signatures under it can be \
         forged by anyone; the key is corrupted or malicious"
    )]
    WeakPublicKey,
    /// The signature does not verify under the key.
    #[error("signature verification failed: the message was altered or was not signed by this key")]
    InvalidSignature,
    /// Text that should hold a public key is not 64 hexadecimal characters.
    #[error("invalid public key text: expected exactly 64 hexadecimal characters (0-9, a-f)")]
    InvalidHex,
}

/// Error from decoding or verifying a [`DeviceCertificate`](crate::DeviceCertificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// The encoded certificate is not exactly
    /// [`DEVICE_CERT_LEN`](crate::DEVICE_CERT_LEN) bytes long.
    #[error(
        "device certificate has the wrong length: expected {expected} bytes, got {actual}; \
         it was truncated or is not a device certificate"
    )]
    WrongLength {
        /// The only accepted length.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// The certificate's version byte is not one this build understands.
    #[error(
        "unsupported device certificate version {0} (this build understands version 1); \
         the peer may run a newer rhizo — upgrade to read it"
    )]
    UnsupportedVersion(u8),
    /// The certificate was issued by a different root key than the one expected.
    #[error(
        "device certificate belongs to a different identity: its root key is not the expected one"
    )]
    WrongRoot,
    /// The signature does not verify under the certificate's root key.
    #[error(
        "device certificate signature is invalid: the certificate was altered or was not \
         signed by its root key"
    )]
    InvalidSignature,
    /// The root or device key inside the certificate is not a valid, strong
    /// Ed25519 public key.
    #[error(
        "device certificate contains an invalid or weak public key; the certificate is corrupted"
    )]
    InvalidKey,
}

/// Error from [`idcode::decode`](crate::idcode::decode), i.e. from parsing a
/// typed-in code such as a [`Uid`](crate::Uid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdCodeError {
    /// The code does not have the expected number of characters once dashes and
    /// spaces are removed.
    #[error(
        "wrong length: expected {expected} characters (not counting dashes and spaces), \
         got {actual}; copy the whole code"
    )]
    WrongLength {
        /// The only accepted number of characters.
        expected: usize,
        /// The number of characters given, not counting dashes and whitespace.
        actual: usize,
    },
    /// A character outside the base32 alphabet (A–Z, 2–7) was found.
    #[error(
        "invalid character {character:?} at position {position}: codes use only the letters \
         A-Z and the digits 2-7 (never 0, 1, 8 or 9)"
    )]
    InvalidCharacter {
        /// The offending character, as typed.
        character: char,
        /// 1-based position of the character in the input, counting every
        /// character (including dashes and spaces).
        position: usize,
    },
    /// A group's check character does not match its data characters.
    #[error(
        "check character mismatch in group {group} of 4 (printed blocks {} and {}): \
         probably a typo — compare those 14 characters with the original",
        2 * .group - 1,
        2 * .group
    )]
    CheckMismatch {
        /// 1-based index (1–4) of the 14-character check group, i.e. printed
        /// blocks `2 * group - 1` and `2 * group`.
        group: usize,
    },
    /// The check characters match but the code is not the canonical encoding of
    /// 32 bytes (the unused low bits of the last data character are not zero).
    /// A typo cannot produce this; the code was constructed by hand.
    #[error(
        "the code has valid check characters but is not a canonical encoding of 32 bytes; \
         copy it again from its source"
    )]
    NonCanonical,
}
