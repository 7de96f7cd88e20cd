//! Linking a new device to an identity: the link ticket (`rhz1link…`) and the
//! messages of `/rhizo/link/1`.
//!
//! ```text
//!  new device (no root key)                      device with the root key
//!  LinkTicket::new(device_pk, secret, addrs) ──"rhz1link…" / QR──▶ FromStr, check_fresh(now)
//!                                              ◀── LinkRequest { primary_pk, proof }        (hello)
//!  verify proof(secret, Primary) ─▶ LinkResponse { proof(secret, Device) } ──▶ verify
//!                                              ◀── LinkRequest { primary_pk, proof, certificate }
//!  certificate for this device? ─▶ write identity files, forget the secret ─▶ LinkResponse
//! ```
//!
//! # Text form
//!
//! `"rhz1link"` followed by the RFC 4648 base32 encoding (lowercase, no padding)
//! of a canonically encoded protobuf `rhizo.v1.LinkTicket` (`proto/link.proto`):
//! the new device's public key, a 32-byte one-time secret, its listen addresses
//! and when the ticket was made. Parsing accepts any letter case (the QR code
//! carries the upper-case form). A ticket is not signed: the secret is what the
//! device with the root key proves it has, and the Noise handshake proves the
//! peer holds the ticket's device key. It is valid for [`LINK_TICKET_TTL_SECS`]
//! and for one link.
//!
//! # Proofs
//!
//! ```text
//! proof = HMAC-SHA256(secret, "rhizo/link/v1" ‖ role ‖ primary_pk ‖ device_pk)
//! ```
//!
//! with `role` = `0x01` for the requester (the device with the root key) and
//! `0x02` for the new device, so one side's proof is never valid as the other's.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE};
use hmac::{Hmac, KeyInit, Mac};
use prost::Message;
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::PUBLIC_KEY_LEN;
use crate::proto;
use crate::records::{CanonicalError, decode_canonical};
use crate::ticket::{MAX_ADDR_BYTES, MAX_TICKET_ADDRS, render_qr};
use crate::{DeviceCertificate, DevicePublicKey};

/// Prefix of a link ticket's text form.
pub const LINK_TICKET_PREFIX: &str = "rhz1link";
/// Domain tag of the link proofs.
pub const LINK_DOMAIN: &[u8] = b"rhizo/link/v1";
/// Length of the one-time secret.
pub const LINK_SECRET_LEN: usize = 32;
/// Length of a proof (HMAC-SHA256).
pub const LINK_PROOF_LEN: usize = 32;
/// How long a link ticket is valid: long enough to carry it to the other device.
pub const LINK_TICKET_TTL_SECS: u64 = 10 * 60;
/// Longest ticket text accepted; checked before decoding (8 addresses of 256 bytes fit).
pub const MAX_LINK_TICKET_CHARS: usize = 4096;
/// Largest `/rhizo/link/1` request or response frame.
pub const MAX_LINK_MESSAGE_BYTES: usize = 4096;

/// Why a link ticket or a link message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Not a link ticket.
    #[error(
        "not a link ticket: it must start with \"rhz1link\"; run `rhizo device link` on the new \
         device and copy the whole ticket"
    )]
    MissingPrefix,
    /// Longer than [`MAX_LINK_TICKET_CHARS`].
    #[error("link ticket too long: {0} characters, at most 4096")]
    TooLong(usize),
    /// Bad base32 or protobuf, a key of the wrong size, bad addresses.
    #[error("damaged link ticket ({0}); copy it again from the new device")]
    Malformed(&'static str),
    /// The ticket is older than [`LINK_TICKET_TTL_SECS`] (or made in the future).
    #[error(
        "the link ticket has expired (tickets are valid for 10 minutes): run `rhizo device link` \
         on the new device again"
    )]
    Expired,
    /// A proof does not verify: the secret is not the ticket's.
    #[error("the link proof does not verify: the ticket's secret does not match")]
    WrongProof,
    /// A link message is not well-formed.
    #[error("malformed link message ({0})")]
    BadMessage(&'static str),
}

impl From<CanonicalError> for LinkError {
    fn from(error: CanonicalError) -> Self {
        match error {
            CanonicalError::Malformed => Self::Malformed("not a valid encoding"),
            CanonicalError::NonCanonical => Self::Malformed("not canonically encoded"),
        }
    }
}

/// The one-time secret of a link ticket (zeroized on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkSecret(Zeroizing<[u8; LINK_SECRET_LEN]>);

impl LinkSecret {
    /// A fresh random secret.
    ///
    /// # Errors
    ///
    /// If the OS has no randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; LINK_SECRET_LEN]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// A secret from its bytes.
    pub fn from_bytes(bytes: &[u8; LINK_SECRET_LEN]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8; LINK_SECRET_LEN] {
        &self.0
    }

    /// The proof of `role` for a link between `primary` and `device`.
    pub fn proof(
        &self,
        role: LinkRole,
        primary: &DevicePublicKey,
        device: &DevicePublicKey,
    ) -> [u8; LINK_PROOF_LEN] {
        self.mac(role, primary, device)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks `proof` for `role` in constant time.
    ///
    /// # Errors
    ///
    /// [`LinkError::WrongProof`] if it does not verify.
    pub fn verify(
        &self,
        role: LinkRole,
        primary: &DevicePublicKey,
        device: &DevicePublicKey,
        proof: &[u8],
    ) -> Result<(), LinkError> {
        self.mac(role, primary, device)
            .verify_slice(proof)
            .map_err(|_| LinkError::WrongProof)
    }

    fn mac(
        &self,
        role: LinkRole,
        primary: &DevicePublicKey,
        device: &DevicePublicKey,
    ) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .expect("HMAC takes a key of any length");
        mac.update(LINK_DOMAIN);
        mac.update(&[role as u8]);
        mac.update(primary.as_bytes());
        mac.update(device.as_bytes());
        mac
    }
}

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(…)")
    }
}

/// Which side of a link a proof is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkRole {
    /// The device with the root key, which asks.
    Primary = 1,
    /// The new device, which answers.
    Device = 2,
}

/// What `rhizo device link` prints on the new device; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkTicket {
    device_pk: DevicePublicKey,
    secret: LinkSecret,
    addrs: Vec<String>,
    created_at: u64,
}

impl LinkTicket {
    /// A ticket for `device_pk` reachable at `addrs`, made at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// [`LinkError::Malformed`] if there are more than 8 addresses or one is empty, longer
    /// than 256 bytes or has control characters.
    pub fn new(
        device_pk: DevicePublicKey,
        secret: LinkSecret,
        addrs: Vec<String>,
        now: u64,
    ) -> Result<Self, LinkError> {
        check_addrs(&addrs)?;
        Ok(Self {
            device_pk,
            secret,
            addrs,
            created_at: now,
        })
    }

    /// The new device's key (its PeerId derives from it).
    pub fn device_pk(&self) -> DevicePublicKey {
        self.device_pk
    }

    /// The one-time secret.
    pub fn secret(&self) -> &LinkSecret {
        &self.secret
    }

    /// Where the new device listens.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// When the ticket was made (Unix seconds).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Whether the ticket is still valid at `now`: not older than [`LINK_TICKET_TTL_SECS`],
    /// not more than a minute in the future (clock skew between two devices).
    ///
    /// # Errors
    ///
    /// [`LinkError::Expired`].
    pub fn check_fresh(&self, now: u64) -> Result<(), LinkError> {
        let too_old = now > self.created_at.saturating_add(LINK_TICKET_TTL_SECS);
        let from_future = self.created_at > now.saturating_add(60);
        if too_old || from_future {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    /// The ticket as a terminal QR code (the upper-case text), or the text if it does not fit.
    pub fn to_qr_string(&self) -> String {
        let text = self.to_string().to_ascii_uppercase();
        render_qr(&text).unwrap_or(text)
    }

    fn encode(&self) -> Vec<u8> {
        proto::LinkTicket {
            device_pk: Bytes::copy_from_slice(self.device_pk.as_bytes()),
            secret: Bytes::copy_from_slice(self.secret.as_bytes()),
            addrs: self.addrs.clone(),
            created_at: self.created_at,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, LinkError> {
        let decoded: proto::LinkTicket = decode_canonical(bytes)?;
        let device_pk = device_key(&decoded.device_pk)
            .ok_or(LinkError::Malformed("the device key is not a valid key"))?;
        let secret = <[u8; LINK_SECRET_LEN]>::try_from(decoded.secret.as_ref())
            .map_err(|_| LinkError::Malformed("the secret is not 32 bytes"))?;
        check_addrs(&decoded.addrs)?;
        Ok(Self {
            device_pk,
            secret: LinkSecret::from_bytes(&secret),
            addrs: decoded.addrs,
            created_at: decoded.created_at,
        })
    }
}

impl fmt::Display for LinkTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(LINK_TICKET_PREFIX)?;
        f.write_str(&BASE32_NOPAD.encode(&self.encode()).to_ascii_lowercase())
    }
}

impl fmt::Debug for LinkTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkTicket")
            .field("device_pk", &self.device_pk)
            .field("addrs", &self.addrs)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl FromStr for LinkTicket {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.len() > MAX_LINK_TICKET_CHARS {
            return Err(LinkError::TooLong(text.len()));
        }
        let prefix_len = LINK_TICKET_PREFIX.len();
        let encoded = match (text.get(..prefix_len), text.get(prefix_len..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case(LINK_TICKET_PREFIX) => rest,
            _ => return Err(LinkError::MissingPrefix),
        };
        let bytes = BASE32_NOPAD_NOCASE
            .decode(encoded.as_bytes())
            .map_err(|_| LinkError::Malformed("not base32, or characters are missing"))?;
        Self::decode(&bytes)
    }
}

/// A `/rhizo/link/1` request: the hello (no certificate) or the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// The requester's device key; its PeerId must be the stream's peer.
    pub primary_pk: DevicePublicKey,
    /// The requester's proof ([`LinkRole::Primary`]).
    pub proof: [u8; LINK_PROOF_LEN],
    /// The new device's certificate, in the second request.
    pub certificate: Option<DeviceCertificate>,
}

impl LinkRequest {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        proto::LinkRequest {
            primary_pk: Bytes::copy_from_slice(self.primary_pk.as_bytes()),
            proof: Bytes::copy_from_slice(&self.proof),
            certificate: self
                .certificate
                .map(|c| Bytes::copy_from_slice(&c.to_bytes()))
                .unwrap_or_default(),
        }
        .encode_to_vec()
    }

    /// Parses a frame payload (size first, then structure; no signature work).
    ///
    /// # Errors
    ///
    /// [`LinkError::BadMessage`].
    pub fn decode(bytes: &[u8]) -> Result<Self, LinkError> {
        if bytes.len() > MAX_LINK_MESSAGE_BYTES {
            return Err(LinkError::BadMessage("too large"));
        }
        let decoded: proto::LinkRequest =
            decode_canonical(bytes).map_err(|_| LinkError::BadMessage("not a link request"))?;
        let primary_pk = device_key(&decoded.primary_pk)
            .ok_or(LinkError::BadMessage("invalid requester key"))?;
        let proof = <[u8; LINK_PROOF_LEN]>::try_from(decoded.proof.as_ref())
            .map_err(|_| LinkError::BadMessage("the proof is not 32 bytes"))?;
        let certificate = if decoded.certificate.is_empty() {
            None
        } else {
            Some(
                DeviceCertificate::decode(&decoded.certificate)
                    .map_err(|_| LinkError::BadMessage("invalid certificate"))?,
            )
        };
        Ok(Self {
            primary_pk,
            proof,
            certificate,
        })
    }
}

/// Why the new device refused a request (the `error` field of `LinkResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[repr(u32)]
pub enum LinkRefusal {
    /// The requester's proof does not verify.
    #[error(
        "the new device refused the link: the ticket's secret did not match (copy the ticket \
         again)"
    )]
    WrongProof = 1,
    /// The device has no open ticket (expired, used, or never made).
    #[error(
        "the new device has no open link ticket (it expired or was used): run `rhizo device \
         link` on it again"
    )]
    NoTicket = 2,
    /// The certificate is not for the answering device.
    #[error("the new device refused the certificate: it is not for its key")]
    WrongDevice = 3,
    /// The request could not be parsed.
    #[error("the new device could not read the request (a different rhizo version?)")]
    Malformed = 4,
}

/// A `/rhizo/link/1` response: the new device's proof, or why it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkResponse {
    /// Accepted; the new device's proof ([`LinkRole::Device`]).
    Accepted([u8; LINK_PROOF_LEN]),
    /// Refused.
    Refused(LinkRefusal),
}

impl LinkResponse {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let (proof, error) = match self {
            Self::Accepted(proof) => (Bytes::copy_from_slice(proof), 0),
            Self::Refused(why) => (Bytes::new(), *why as u32),
        };
        proto::LinkResponse { proof, error }.encode_to_vec()
    }

    /// Parses a frame payload.
    ///
    /// # Errors
    ///
    /// [`LinkError::BadMessage`].
    pub fn decode(bytes: &[u8]) -> Result<Self, LinkError> {
        if bytes.len() > MAX_LINK_MESSAGE_BYTES {
            return Err(LinkError::BadMessage("too large"));
        }
        let decoded: proto::LinkResponse =
            decode_canonical(bytes).map_err(|_| LinkError::BadMessage("not a link response"))?;
        let refusal = match decoded.error {
            0 => {
                let proof = <[u8; LINK_PROOF_LEN]>::try_from(decoded.proof.as_ref())
                    .map_err(|_| LinkError::BadMessage("the proof is not 32 bytes"))?;
                return Ok(Self::Accepted(proof));
            }
            1 => LinkRefusal::WrongProof,
            2 => LinkRefusal::NoTicket,
            3 => LinkRefusal::WrongDevice,
            _ => LinkRefusal::Malformed,
        };
        Ok(Self::Refused(refusal))
    }
}

fn device_key(bytes: &[u8]) -> Option<DevicePublicKey> {
    <&[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
        .ok()
        .and_then(|b| DevicePublicKey::from_bytes(b).ok())
}

fn check_addrs(addrs: &[String]) -> Result<(), LinkError> {
    if addrs.len() > MAX_TICKET_ADDRS {
        return Err(LinkError::Malformed("more than 8 addresses"));
    }
    let bad =
        |a: &String| a.is_empty() || a.len() > MAX_ADDR_BYTES || a.chars().any(char::is_control);
    if addrs.iter().any(bad) {
        return Err(LinkError::Malformed(
            "an address is empty, too long or has control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
