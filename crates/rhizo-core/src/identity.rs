//! Identity: root and device keys, UIDs, fingerprints and device certificates.
//!
//! ```text
//! RootKey ──public()──► RootPublicKey ──uid()─────────► Uid          (SHA-256, printed via idcode)
//!    │                        └─────────fingerprint()──► Fingerprint  (SHA-256[..20], base32)
//!    │ certify_device(&DevicePublicKey, created_at)
//!    ▼
//! DeviceCertificate { root, device, created_at, signature }
//! ```
//!
//! # Domain separation
//!
//! Every hash and signature here is prefixed with a distinct ASCII tag of the
//! form `rhizo/<purpose>/v<n>` (see [`UID_DOMAIN`], [`FINGERPRINT_DOMAIN`],
//! [`DEVICE_CERT_DOMAIN`]). Other rhizo code that signs with
//! [`RootKey::sign`] or [`DeviceKey::sign`] must prefix its messages with its
//! own distinct `rhizo/…` tag so a signature for one purpose can never be
//! replayed as another.
//!
//! # Layout
//!
//! * `keys` — [`RootKey`], [`RootPublicKey`], [`DeviceKey`], [`DevicePublicKey`].
//! * `uid` — [`Uid`] and [`Fingerprint`], both derived from a [`RootPublicKey`].
//! * `certificate` — [`DeviceCertificate`] and its 137-byte wire format.
//! * `phrase` — the root key as a BIP-39 recovery phrase ([`RootKey::to_phrase`],
//!   [`RootKey::from_phrase`]).

mod certificate;
mod keys;
mod phrase;
mod uid;

use std::fmt;

pub use certificate::{
    DEVICE_CERT_DOMAIN, DEVICE_CERT_LEN, DEVICE_CERT_VERSION, DeviceCertificate,
};
pub use keys::{
    DeviceKey, DevicePublicKey, PUBLIC_KEY_LEN, RootKey, RootPublicKey, SECRET_KEY_LEN,
    SIGNATURE_LEN,
};
pub use phrase::{PHRASE_WORDS, PhraseError};
pub use uid::{FINGERPRINT_DOMAIN, FINGERPRINT_LEN, Fingerprint, UID_DOMAIN, UID_LEN, Uid};

/// `domain ‖ parts…`, concatenated with no length prefixes: the message an
/// Ed25519 signature covers. Every rhizo signature is domain-separated this
/// way (records, tickets, possession proofs, envelopes, receipts, channel
/// posts, mailbox fetches); each caller's parts have fixed lengths or come
/// last, so the concatenation is unambiguous.
pub(crate) fn signed_message(domain: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len = domain.len() + parts.iter().map(|part| part.len()).sum::<usize>();
    let mut message = Vec::with_capacity(len);
    message.extend_from_slice(domain);
    parts
        .iter()
        .for_each(|part| message.extend_from_slice(part));
    message
}

/// Writes `bytes` as lowercase hexadecimal.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Lowercase hex rendering of a byte slice for `Debug` output.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0)
    }
}

/// Parses exactly 64 hexadecimal characters (either case) into 32 bytes.
fn parse_hex_32(s: &str) -> Option<[u8; 32]> {
    let digits = s.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        let hi = char::from(*hi).to_digit(16)?;
        let lo = char::from(*lo).to_digit(16)?;
        *byte = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 8);
        let text = format!("{:?}", Hex(&bytes));
        assert_eq!(text.len(), 64);
        assert_eq!(parse_hex_32(&text), Some(bytes));
        assert_eq!(parse_hex_32(&text.to_uppercase()), Some(bytes));
        assert_eq!(parse_hex_32(&text[1..]), None);
        assert_eq!(parse_hex_32(&text.replacen('0', "g", 1)), None);
        assert_eq!(parse_hex_32(&"é".repeat(32)), None);
    }

    #[test]
    fn signed_message_is_the_domain_then_the_parts() {
        assert_eq!(signed_message(b"rhizo/x/v1", &[]), b"rhizo/x/v1");
        assert_eq!(
            signed_message(b"rhizo/x/v1", &[b"\x02", b"body", b""]),
            b"rhizo/x/v1\x02body"
        );
    }
}
