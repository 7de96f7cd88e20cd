//! The pairing ticket `rhizo pair` prints: `"rhz1pair"` followed by lowercase RFC 4648 base32
//! (no padding) of
//!
//! ```text
//! version (1) ‖ node channel key (X-Wing, 1216) ‖ one-time secret (32) ‖ created_at (u64 BE)
//!             ‖ url length (u16 BE) ‖ url (UTF-8, where the node's `/v1/ws` is reached)
//! ```
//!
//! Like the other tickets it parses in any letter case (the QR code carries the upper-case
//! form). It is not signed: the client learns the node's key from it, and the handshake proves
//! both that the node holds that key and that the client holds the secret. A ticket pairs one
//! client, once, within [`PAIR_TICKET_TTL_SECS`].

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE};
use thiserror::Error;
use zeroize::Zeroizing;

use super::channel::{KEM_PUBLIC_KEY_LEN, PSK_LEN};

/// Prefix of a pairing ticket's text form.
pub const PAIR_TICKET_PREFIX: &str = "rhz1pair";
/// Version byte of the binary form.
pub const PAIR_TICKET_VERSION: u8 = 1;
/// How long a pairing ticket is valid: long enough to scan it, short enough to not linger.
pub const PAIR_TICKET_TTL_SECS: u64 = 10 * 60;
/// Longest URL in a ticket: a `ws://` or `wss://` URL with a host name and a path.
pub const MAX_PAIR_URL_BYTES: usize = 256;
/// Longest ticket text accepted (checked before decoding); a ticket with the longest URL fits.
pub const MAX_PAIR_TICKET_CHARS: usize = 2600;

const FIXED_LEN: usize = 1 + KEM_PUBLIC_KEY_LEN + PSK_LEN + 8 + 2;

/// Why a pairing ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PairTicketError {
    /// Not a pairing ticket.
    #[error(
        "not a pairing ticket: it must start with \"rhz1pair\"; run `rhizo pair` again and copy all of it"
    )]
    MissingPrefix,
    /// Too long, bad base32, wrong version or lengths, a bad URL.
    #[error("damaged pairing ticket ({0}); run `rhizo pair` again and copy all of it")]
    Malformed(&'static str),
}

/// A pairing ticket; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct PairTicket {
    /// The node's channel key (X-Wing public key).
    pub node_pk: Vec<u8>,
    /// The one-time secret.
    pub secret: Zeroizing<[u8; PSK_LEN]>,
    /// Unix seconds when it was made.
    pub created_at: u64,
    /// Where the node's WebSocket API is reached, such as `ws://127.0.0.1:7780/v1/ws`.
    pub url: String,
}

impl fmt::Debug for PairTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairTicket")
            .field("created_at", &self.created_at)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PairTicket {
    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + self.url.len());
        out.push(PAIR_TICKET_VERSION);
        out.extend_from_slice(&self.node_pk);
        out.extend_from_slice(self.secret.as_ref());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&(self.url.len() as u16).to_be_bytes());
        out.extend_from_slice(self.url.as_bytes());
        out
    }

    /// Parses the binary form.
    ///
    /// # Errors
    ///
    /// [`PairTicketError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PairTicketError> {
        if bytes.len() < FIXED_LEN {
            return Err(PairTicketError::Malformed("too short"));
        }
        if bytes[0] != PAIR_TICKET_VERSION {
            return Err(PairTicketError::Malformed("unknown version"));
        }
        let (node_pk, rest) = bytes[1..].split_at(KEM_PUBLIC_KEY_LEN);
        let (secret, rest) = rest.split_at(PSK_LEN);
        let (created_at, rest) = rest.split_at(8);
        let (url_len, url) = rest.split_at(2);
        let url_len = usize::from(u16::from_be_bytes([url_len[0], url_len[1]]));
        if url.len() != url_len || url_len > MAX_PAIR_URL_BYTES {
            return Err(PairTicketError::Malformed("URL length"));
        }
        let url = std::str::from_utf8(url).map_err(|_| PairTicketError::Malformed("URL"))?;
        if !(url.starts_with("ws://") || url.starts_with("wss://"))
            || url.chars().any(char::is_control)
        {
            return Err(PairTicketError::Malformed("URL is not ws:// or wss://"));
        }
        let mut s = Zeroizing::new([0u8; PSK_LEN]);
        s.copy_from_slice(secret);
        let mut t = [0u8; 8];
        t.copy_from_slice(created_at);
        Ok(Self {
            node_pk: node_pk.to_vec(),
            secret: s,
            created_at: u64::from_be_bytes(t),
            url: url.to_owned(),
        })
    }

    /// The ticket as a terminal QR code (the upper-case text), or the text if it does not fit.
    pub fn to_qr_string(&self) -> String {
        let text = self.to_string().to_ascii_uppercase();
        rhizo_core::ticket::render_qr(&text).unwrap_or(text)
    }
}

impl fmt::Display for PairTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PAIR_TICKET_PREFIX)?;
        f.write_str(&BASE32_NOPAD.encode(&self.to_bytes()).to_ascii_lowercase())
    }
}

impl FromStr for PairTicket {
    type Err = PairTicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.len() > MAX_PAIR_TICKET_CHARS {
            return Err(PairTicketError::Malformed("too long"));
        }
        let n = PAIR_TICKET_PREFIX.len();
        let encoded = match (text.get(..n), text.get(n..)) {
            (Some(p), Some(rest)) if p.eq_ignore_ascii_case(PAIR_TICKET_PREFIX) => rest,
            _ => return Err(PairTicketError::MissingPrefix),
        };
        let bytes = BASE32_NOPAD_NOCASE
            .decode(encoded.as_bytes())
            .map_err(|_| PairTicketError::Malformed("not base32"))?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> PairTicket {
        PairTicket {
            node_pk: vec![3u8; KEM_PUBLIC_KEY_LEN],
            secret: Zeroizing::new([5u8; PSK_LEN]),
            created_at: 1_700_000_000,
            url: "ws://127.0.0.1:7780/v1/ws".into(),
        }
    }

    #[test]
    fn round_trips_in_any_case() {
        let t = ticket();
        let text = t.to_string();
        assert!(text.starts_with("rhz1pair"));
        assert!(text.len() <= MAX_PAIR_TICKET_CHARS);
        assert_eq!(text.parse::<PairTicket>().unwrap(), t);
        assert_eq!(
            format!(" {}\n", text.to_uppercase())
                .parse::<PairTicket>()
                .unwrap(),
            t
        );
        assert!(t.to_qr_string().contains('█'));
    }

    #[test]
    fn refuses_damage() {
        let text = ticket().to_string();
        assert_eq!(
            "rhz1contactabc".parse::<PairTicket>(),
            Err(PairTicketError::MissingPrefix)
        );
        assert!(text[..text.len() - 7].parse::<PairTicket>().is_err());
        assert!(format!("{text}1").parse::<PairTicket>().is_err());
        let mut t = ticket();
        t.url = "http://x".into();
        assert!(t.to_string().parse::<PairTicket>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,64}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400)) {
            let _ = s.parse::<PairTicket>();
            let _ = PairTicket::from_bytes(&bytes);
        }
    }
}
