//! Contact tickets: what `rhizo invite` prints and `rhizo add` reads.
//!
//! A ticket hands someone everything they need to reach a user without
//! asking the DHT first: the UID, the root public key it derives from, a few
//! devices with their addresses, and a suggested display name, all signed by
//! the root key. In the style of iroh tickets it is one copy-pasteable word —
//! a kind prefix followed by base32 — that also works as a QR code.
//!
//! ```text
//!  ContactTicket::new(&root, devices, name, now)
//!         │  ContactTicketBody ──encode──► body ──root.sign("rhizo/contact-ticket/v1" ‖ body)──► signature
//!         ▼
//!  ContactTicket { body, signature } ──encode──► bytes ──base32, lowercase──► "rhz1contact" + text
//!                                                                                  │
//!  FromStr: trim, length ≤ MAX_TICKET_CHARS, prefix, base32 (any case), decode     ▼
//!           (canonical), limits, uid == SHA-256("rhizo/uid/v1" ‖ root_pk), signature ──► ContactTicket
//! ```
//!
//! # Text form
//!
//! `"rhz1contact"` followed by the RFC 4648 base32 encoding (alphabet
//! `a–z 2–7`, lowercase, no padding) of a protobuf `rhizo.v1.ContactTicket`
//! (`proto/records.proto`). Parsing ignores surrounding whitespace and
//! accepts any letter case, so the upper-case form the QR code carries (QR
//! alphanumeric mode is denser) parses too.
//!
//! # Signed bytes
//!
//! ```text
//! signature = Ed25519(root key, "rhizo/contact-ticket/v1" ‖ body)
//! ```
//!
//! where `body` is the `body` field of `ContactTicket` exactly as transported:
//! the canonical encoding of a `ContactTicketBody { uid, root_pk, devices:
//! [TicketDevice { device_pk, addrs }], name, created_at }`. As for
//! [records](crate::records), both messages must be canonically encoded, so a
//! ticket has exactly one text form and any edit to it is detected.
//!
//! Base32 has no check characters: a typo is caught by the base32 decoder
//! (a character outside the alphabet, a wrong length), by the protobuf decoder
//! or, failing those, by the signature, and every error says to copy the
//! ticket again.
//!
//! A ticket carries `created_at` but no expiry: [`FromStr`] has no clock, and
//! the caller decides how old a ticket it accepts.
//!
//! # Device proofs (proof of possession)
//!
//! The root key can list any device key, including someone else's. So each
//! [`TicketDevice`] may carry a [`DeviceProof`]: the device's
//! [`DeviceCertificate`] from the ticket's root (certification) and the
//! device key's own signature over it (possession):
//!
//! ```text
//! possession = Ed25519(device key, "rhizo/device-possession/v1" ‖ certificate (137 bytes))
//! ```
//!
//! Parsing checks every proof present (certificate for this device and this
//! root, both signatures) and refuses the ticket if one fails
//! ([`TicketError::InvalidDeviceProof`]). A device without a proof still
//! parses (tickets made before proofs existed), but readers must not trust
//! it: see [`TicketDevice::proven_certificate`].

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE};
use prost::Message;
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use thiserror::Error;

use crate::identity::{self, PUBLIC_KEY_LEN, SIGNATURE_LEN, UID_LEN};
use crate::proto;
use crate::records::{CanonicalError, decode_canonical};
use crate::{DeviceCertificate, DeviceKey, DevicePublicKey, RootKey, RootPublicKey, Uid};

/// Prefix of a ticket's text form: the kind (`contact`) after a short project
/// and version marker.
pub const CONTACT_TICKET_PREFIX: &str = "rhz1contact";
/// Domain tag at the start of the message a ticket's signature covers.
pub const CONTACT_TICKET_DOMAIN: &[u8] = b"rhizo/contact-ticket/v1";
/// Domain tag at the start of the message a device signs to prove it agreed
/// to be listed for a root ([`DeviceProof`]).
pub const DEVICE_POSSESSION_DOMAIN: &[u8] = b"rhizo/device-possession/v1";
/// Longest ticket text: it must fit in one QR code (version 40-L holds 4296
/// alphanumeric characters); checked before any decoding.
pub const MAX_TICKET_CHARS: usize = 4096;
/// Most devices in a ticket: enough to reach someone; the full list is in
/// the DHT [`DeviceList`](crate::records::DeviceList).
pub const MAX_TICKET_DEVICES: usize = 4;
/// Most addresses per device: a device listens on a handful of transports
/// and interfaces, and each one costs QR code area.
pub const MAX_TICKET_ADDRS: usize = 8;
/// Longest address: generous for a text multiaddr with DNS names and a
/// `/p2p/` suffix.
pub const MAX_ADDR_BYTES: usize = 256;
/// Longest display name, in characters: it is a label, not a profile.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a ticket could not be created or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The text is longer than [`MAX_TICKET_CHARS`] (or a new ticket's text
    /// would be).
    #[error(
        "contact ticket too long: {actual} characters, at most {max}; \
         list fewer devices or addresses"
    )]
    TooLong {
        /// The limit, [`MAX_TICKET_CHARS`].
        max: usize,
        /// The length given, in bytes of text.
        actual: usize,
    },
    /// The text does not start with [`CONTACT_TICKET_PREFIX`].
    #[error(
        "not a contact ticket: it must start with \"rhz1contact\"; copy the whole ticket again"
    )]
    MissingPrefix,
    /// A character outside the base32 alphabet.
    #[error(
        "invalid character {character:?} at position {position} of the contact ticket \
         (only letters a-z and digits 2-7 follow \"rhz1contact\"); it was mistyped, \
         copy the ticket again"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// 1-based position in the ticket text, surrounding whitespace removed.
        position: usize,
    },
    /// The base32 text has an impossible length (characters are missing or
    /// extra).
    #[error(
        "contact ticket is incomplete: characters are missing or extra; copy the whole ticket again"
    )]
    Truncated,
    /// The decoded ticket is not well-formed.
    #[error(
        "damaged contact ticket ({0}); it was probably mistyped, copy it again from its source"
    )]
    Malformed(&'static str),
    /// A public key in the ticket is not a valid, strong Ed25519 key.
    #[error(
        "contact ticket contains an invalid public key; it was damaged, copy it again from its source"
    )]
    InvalidKey,
    /// The UID does not derive from the root key.
    #[error(
        "contact ticket's UID does not belong to its root key: the ticket was mistyped or forged; \
         copy it again from its source, and if this persists do not add this contact"
    )]
    UidMismatch,
    /// More than [`MAX_TICKET_DEVICES`] devices.
    #[error("contact ticket lists {actual} devices, at most {max} are allowed")]
    TooManyDevices {
        /// The limit, [`MAX_TICKET_DEVICES`].
        max: usize,
        /// The number given.
        actual: usize,
    },
    /// A device key appears twice.
    #[error("contact ticket lists device {index} twice")]
    DuplicateDevice {
        /// 0-based index of the repeated device.
        index: usize,
    },
    /// A device has more than [`MAX_TICKET_ADDRS`] addresses.
    #[error("contact ticket device {device} has {actual} addresses, at most {max} are allowed")]
    TooManyAddrs {
        /// 0-based device index.
        device: usize,
        /// The limit, [`MAX_TICKET_ADDRS`].
        max: usize,
        /// The number given.
        actual: usize,
    },
    /// An address is empty, longer than [`MAX_ADDR_BYTES`] or contains a
    /// control character.
    #[error(
        "contact ticket device {device} address {addr} is empty, longer than 256 bytes \
         or contains control characters"
    )]
    InvalidAddr {
        /// 0-based device index.
        device: usize,
        /// 0-based address index.
        addr: usize,
    },
    /// The name is empty, longer than [`MAX_NAME_CHARS`] or contains a control
    /// character.
    #[error("contact name must be 1 to 64 characters without control characters")]
    InvalidName,
    /// The signature does not verify under the ticket's root key.
    #[error(
        "contact ticket signature does not verify: the ticket was mistyped or altered; \
         copy it again from its source"
    )]
    InvalidSignature,
    /// A device's [`DeviceProof`] is not for this device and root, or one of
    /// its signatures does not verify.
    #[error(
        "contact ticket device {device} carries a proof that does not verify for this identity: \
         the ticket was altered or lists someone else's device; do not add it, ask for a new one"
    )]
    InvalidDeviceProof {
        /// 0-based device index.
        device: usize,
    },
}

impl From<CanonicalError> for TicketError {
    fn from(error: CanonicalError) -> Self {
        match error {
            CanonicalError::Malformed => Self::Malformed("not a valid encoding"),
            CanonicalError::NonCanonical => Self::Malformed("not canonically encoded"),
        }
    }
}

/// A device listed in a ticket: its key (from which its libp2p `PeerId`
/// derives), where it listens and, normally, its proof of possession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketDevice {
    /// The device's public key.
    pub device_pk: DevicePublicKey,
    /// Text multiaddrs such as `/ip4/192.0.2.1/udp/4001/quic-v1`: at most
    /// [`MAX_TICKET_ADDRS`], each 1 to [`MAX_ADDR_BYTES`] bytes without
    /// control characters. This crate does not parse them.
    pub addrs: Vec<String>,
    /// The device's agreement to be listed for the ticket's root; `None` in
    /// tickets made before proofs existed (such a device is not trusted).
    pub proof: Option<DeviceProof>,
}

impl TicketDevice {
    /// A device with its addresses and no proof (the device is listed but
    /// readers will not trust it: prefer [`with_proof`](Self::with_proof)).
    pub fn new(device_pk: DevicePublicKey, addrs: Vec<String>) -> Self {
        Self {
            device_pk,
            addrs,
            proof: None,
        }
    }

    /// A device with its addresses and its [`DeviceProof`], signed here with
    /// `device` over `certificate`.
    ///
    /// # Errors
    ///
    /// [`TicketError::InvalidDeviceProof`] (device 0) if `certificate` is not
    /// for `device`'s key.
    pub fn with_proof(
        device: &DeviceKey,
        certificate: DeviceCertificate,
        addrs: Vec<String>,
    ) -> Result<Self, TicketError> {
        Ok(Self {
            device_pk: device.public(),
            addrs,
            proof: Some(DeviceProof::new(device, certificate)?),
        })
    }

    /// The device's certificate if the device proved it belongs to the
    /// ticket's root. A parsed ticket's proofs are already checked, so this is
    /// `Some` exactly for the devices that carry one; `None` means: do not
    /// trust this device key for this identity.
    pub fn proven_certificate(&self) -> Option<&DeviceCertificate> {
        self.proof.as_ref().map(|p| &p.certificate)
    }
}

/// A device's proof that it agreed to be listed for a root: the root's
/// certificate for it (certification) and the device key's signature over
/// that certificate (possession). See the [module docs](self#device-proofs-proof-of-possession).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProof {
    /// The device's certificate from the root.
    pub certificate: DeviceCertificate,
    /// Ed25519(device key, [`DEVICE_POSSESSION_DOMAIN`] ‖ certificate).
    pub possession: [u8; SIGNATURE_LEN],
}

impl DeviceProof {
    /// Signs a proof for `certificate` with `device`.
    ///
    /// # Errors
    ///
    /// [`TicketError::InvalidDeviceProof`] (device 0) if `certificate` is not
    /// for `device`'s key.
    pub fn new(device: &DeviceKey, certificate: DeviceCertificate) -> Result<Self, TicketError> {
        if certificate.device() != device.public() {
            return Err(TicketError::InvalidDeviceProof { device: 0 });
        }
        Ok(Self {
            certificate,
            possession: device.sign(&possession_message(&certificate)),
        })
    }

    /// Checks the proof for `device` under `root`: the certificate names both
    /// (cheap comparisons first), the root signed it, the device signed it.
    ///
    /// # Errors
    ///
    /// [`TicketError::InvalidDeviceProof`] (device 0; callers put the index
    /// in) if any check fails.
    pub fn verify_for(
        &self,
        root: &RootPublicKey,
        device: &DevicePublicKey,
    ) -> Result<(), TicketError> {
        let invalid = TicketError::InvalidDeviceProof { device: 0 };
        if self.certificate.device() != *device {
            return Err(invalid);
        }
        self.certificate
            .verify_for(root)
            .map_err(|_| invalid.clone())?;
        device
            .verify(&possession_message(&self.certificate), &self.possession)
            .map_err(|_| invalid)
    }
}

/// `"rhizo/device-possession/v1" ‖ certificate`: what a device signs in a [`DeviceProof`].
fn possession_message(certificate: &DeviceCertificate) -> Vec<u8> {
    identity::signed_message(DEVICE_POSSESSION_DOMAIN, &[&certificate.to_bytes()])
}

/// A signed invitation to add a user as a contact; see the
/// [module docs](self) for the text form and signed bytes.
///
/// ```
/// use rhizo_core::{DeviceKey, RootKey};
/// use rhizo_core::ticket::{ContactTicket, TicketDevice};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = RootKey::from_bytes(&[7u8; 32]);
/// let device = DeviceKey::from_bytes(&[9u8; 32]).public();
/// let addrs = vec!["/ip4/192.0.2.1/udp/4001/quic-v1".to_owned()];
/// let ticket = ContactTicket::new(
///     &root,
///     vec![TicketDevice::new(device, addrs)],
///     Some("Alice".to_owned()),
///     1_700_000_000,
/// )?;
/// let text = ticket.to_string();
/// assert!(text.starts_with("rhz1contact"));
/// let parsed: ContactTicket = format!("  {}\n", text.to_uppercase()).parse()?;
/// assert_eq!(parsed, ticket);
/// assert_eq!(parsed.uid(), root.public().uid());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ContactTicket {
    uid: Uid,
    root_pk: RootPublicKey,
    devices: Vec<TicketDevice>,
    name: Option<String>,
    created_at: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl ContactTicket {
    /// Signs a ticket for `root`'s identity, created at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// [`TicketError::TooManyDevices`], [`TicketError::DuplicateDevice`],
    /// [`TicketError::TooManyAddrs`], [`TicketError::InvalidAddr`],
    /// [`TicketError::InvalidName`] if a limit is exceeded, and
    /// [`TicketError::TooLong`] if the text would exceed [`MAX_TICKET_CHARS`].
    pub fn new(
        root: &RootKey,
        devices: Vec<TicketDevice>,
        name: Option<String>,
        now: u64,
    ) -> Result<Self, TicketError> {
        check_contents(&devices, name.as_deref())?;
        let root_pk = root.public();
        check_proofs(&devices, &root_pk)?;
        let mut ticket = Self {
            uid: root_pk.uid(),
            root_pk,
            devices,
            name,
            created_at: now,
            signature: [0; SIGNATURE_LEN],
        };
        ticket.signature = root.sign(&signed_message(&ticket.body()));
        let length = text_len(ticket.encode().len());
        if length > MAX_TICKET_CHARS {
            return Err(TicketError::TooLong {
                max: MAX_TICKET_CHARS,
                actual: length,
            });
        }
        Ok(ticket)
    }

    /// The UID of the invited identity.
    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// The root public key; the UID derives from it.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
    }

    /// Devices to dial first.
    pub fn devices(&self) -> &[TicketDevice] {
        &self.devices
    }

    /// The name the inviter suggests for themselves. Untrusted text: show it
    /// as the inviter's claim.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// When the ticket was made, Unix seconds (the inviter's claim).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The root key's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The ticket as a QR code drawn with Unicode half blocks (`▀ ▄ █`), two
    /// rows of modules per line, light on dark as most terminals are. It
    /// encodes the upper-case text, which [`FromStr`] accepts.
    ///
    /// Every ticket fits in a QR code ([`MAX_TICKET_CHARS`] is below the
    /// largest code's capacity); if that ever failed, the plain text is
    /// returned instead so it can still be copied.
    pub fn to_qr_string(&self) -> String {
        let text = self.to_string().to_ascii_uppercase();
        render_qr(&text).unwrap_or(text)
    }

    /// The canonical body encoding (the signed part).
    fn body(&self) -> Vec<u8> {
        proto::ContactTicketBody {
            uid: Bytes::copy_from_slice(self.uid.as_bytes()),
            root_pk: Bytes::copy_from_slice(self.root_pk.as_bytes()),
            devices: self
                .devices
                .iter()
                .map(|d| proto::TicketDevice {
                    device_pk: Bytes::copy_from_slice(d.device_pk.as_bytes()),
                    addrs: d.addrs.clone(),
                    certificate: d
                        .proof
                        .as_ref()
                        .map(|p| Bytes::copy_from_slice(&p.certificate.to_bytes()))
                        .unwrap_or_default(),
                    possession: d
                        .proof
                        .as_ref()
                        .map(|p| Bytes::copy_from_slice(&p.possession))
                        .unwrap_or_default(),
                })
                .collect(),
            name: self.name.clone().unwrap_or_default(),
            created_at: self.created_at,
        }
        .encode_to_vec()
    }

    /// The protobuf `ContactTicket` bytes the text form encodes.
    fn encode(&self) -> Vec<u8> {
        proto::ContactTicket {
            body: self.body().into(),
            signature: Bytes::copy_from_slice(&self.signature),
        }
        .encode_to_vec()
    }

    /// Decodes and checks the protobuf bytes of a ticket.
    fn decode(bytes: &[u8]) -> Result<Self, TicketError> {
        let envelope: proto::ContactTicket = decode_canonical(bytes)?;
        let signature = <[u8; SIGNATURE_LEN]>::try_from(envelope.signature.as_ref())
            .map_err(|_| TicketError::Malformed("signature is not 64 bytes"))?;
        let body: proto::ContactTicketBody = decode_canonical(&envelope.body)?;
        let uid = <[u8; UID_LEN]>::try_from(body.uid.as_ref())
            .map_err(|_| TicketError::Malformed("UID is not 32 bytes"))?;
        let uid = Uid::from_bytes(&uid);
        let root_pk = <&[u8; PUBLIC_KEY_LEN]>::try_from(body.root_pk.as_ref())
            .ok()
            .and_then(|bytes| RootPublicKey::from_bytes(bytes).ok())
            .ok_or(TicketError::InvalidKey)?;
        if uid != root_pk.uid() {
            return Err(TicketError::UidMismatch);
        }
        if body.devices.len() > MAX_TICKET_DEVICES {
            return Err(TicketError::TooManyDevices {
                max: MAX_TICKET_DEVICES,
                actual: body.devices.len(),
            });
        }
        let devices = body
            .devices
            .into_iter()
            .map(|d| {
                let device_pk = <&[u8; PUBLIC_KEY_LEN]>::try_from(d.device_pk.as_ref())
                    .ok()
                    .and_then(|bytes| DevicePublicKey::from_bytes(bytes).ok())
                    .ok_or(TicketError::InvalidKey)?;
                let proof = match (d.certificate.is_empty(), d.possession.is_empty()) {
                    (true, true) => None,
                    (false, false) => Some(DeviceProof {
                        certificate: DeviceCertificate::decode(&d.certificate)
                            .map_err(|_| TicketError::Malformed("invalid device certificate"))?,
                        possession: <[u8; SIGNATURE_LEN]>::try_from(d.possession.as_ref())
                            .map_err(|_| TicketError::Malformed("possession is not 64 bytes"))?,
                    }),
                    _ => {
                        return Err(TicketError::Malformed(
                            "a device proof needs both certificate and possession",
                        ));
                    }
                };
                Ok(TicketDevice {
                    device_pk,
                    addrs: d.addrs,
                    proof,
                })
            })
            .collect::<Result<Vec<_>, TicketError>>()?;
        let name = (!body.name.is_empty()).then_some(body.name);
        check_contents(&devices, name.as_deref())?;
        root_pk
            .verify(&signed_message(&envelope.body), &signature)
            .map_err(|_| TicketError::InvalidSignature)?;
        // Last: up to two signature checks per device, only for a ticket the root signed.
        check_proofs(&devices, &root_pk)?;
        Ok(Self {
            uid,
            root_pk,
            devices,
            name,
            created_at: body.created_at,
            signature,
        })
    }
}

/// Prints the text form: `"rhz1contact"` ‖ lowercase base32.
impl fmt::Display for ContactTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CONTACT_TICKET_PREFIX)?;
        f.write_str(&BASE32_NOPAD.encode(&self.encode()).to_ascii_lowercase())
    }
}

impl fmt::Debug for ContactTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactTicket")
            .field("uid", &self.uid)
            .field("root_pk", &self.root_pk)
            .field("devices", &self.devices)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Parses the text form, tolerating surrounding whitespace and any letter
/// case.
///
/// Checks, in order: length ≤ [`MAX_TICKET_CHARS`], the prefix, base32, the
/// canonical protobuf encoding and limits, that the UID derives from the root
/// key, and the signature.
impl FromStr for ContactTicket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.len() > MAX_TICKET_CHARS {
            return Err(TicketError::TooLong {
                max: MAX_TICKET_CHARS,
                actual: text.len(),
            });
        }
        let prefix_len = CONTACT_TICKET_PREFIX.len();
        let encoded = match (text.get(..prefix_len), text.get(prefix_len..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case(CONTACT_TICKET_PREFIX) => {
                rest
            }
            _ => return Err(TicketError::MissingPrefix),
        };
        // Scan for a bad character first: the decoder would report a length
        // error for a multi-byte character, and it counts bytes, not characters.
        if let Some((index, character)) = encoded
            .chars()
            .enumerate()
            .find(|&(_, c)| !matches!(c.to_ascii_lowercase(), 'a'..='z' | '2'..='7'))
        {
            return Err(TicketError::InvalidCharacter {
                character,
                position: prefix_len + index + 1,
            });
        }
        let bytes = BASE32_NOPAD_NOCASE
            .decode(encoded.as_bytes())
            .map_err(|_| TicketError::Truncated)?;
        Self::decode(&bytes)
    }
}

/// Checks the device, address and name limits (no signature work).
fn check_contents(devices: &[TicketDevice], name: Option<&str>) -> Result<(), TicketError> {
    if devices.len() > MAX_TICKET_DEVICES {
        return Err(TicketError::TooManyDevices {
            max: MAX_TICKET_DEVICES,
            actual: devices.len(),
        });
    }
    for (index, device) in devices.iter().enumerate() {
        if devices[..index]
            .iter()
            .any(|d| d.device_pk == device.device_pk)
        {
            return Err(TicketError::DuplicateDevice { index });
        }
        if device.addrs.len() > MAX_TICKET_ADDRS {
            return Err(TicketError::TooManyAddrs {
                device: index,
                max: MAX_TICKET_ADDRS,
                actual: device.addrs.len(),
            });
        }
        for (addr_index, addr) in device.addrs.iter().enumerate() {
            if addr.is_empty() || addr.len() > MAX_ADDR_BYTES || addr.chars().any(char::is_control)
            {
                return Err(TicketError::InvalidAddr {
                    device: index,
                    addr: addr_index,
                });
            }
        }
    }
    if let Some(name) = name {
        // Control characters (terminal escapes, newlines) would let a ticket
        // rewrite what the user's terminal shows.
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(TicketError::InvalidName);
        }
    }
    Ok(())
}

/// Checks every device proof present against the ticket's root.
fn check_proofs(devices: &[TicketDevice], root: &RootPublicKey) -> Result<(), TicketError> {
    for (index, device) in devices.iter().enumerate() {
        if let Some(proof) = &device.proof {
            proof
                .verify_for(root, &device.device_pk)
                .map_err(|_| TicketError::InvalidDeviceProof { device: index })?;
        }
    }
    Ok(())
}

/// The bytes a ticket signature covers: `"rhizo/contact-ticket/v1" ‖ body`.
fn signed_message(body: &[u8]) -> Vec<u8> {
    identity::signed_message(CONTACT_TICKET_DOMAIN, &[body])
}

/// Length of the text form of `encoded_len` protobuf bytes.
fn text_len(encoded_len: usize) -> usize {
    CONTACT_TICKET_PREFIX.len() + BASE32_NOPAD.encode_len(encoded_len)
}

/// Renders `text` as a terminal QR code (Unicode half blocks, light modules
/// drawn as blocks so it reads on a dark background), or `None` if it does
/// not fit in any QR code.
pub fn render_qr(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L))
        .ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
    )
}

#[cfg(test)]
mod tests;
