//! [`AgentCardRecord`]: an agent's signed card (seed 004 capabilities, shaped as A2A 1.0's
//! AgentCard), stored under [`agent_card_key`](super::agent_card_key)`(uid)`.
//!
//! The body holds the owner's root key, a version and the card exactly as the model
//! ([`AgentCard`]) has it; decoding checks the model's limits ([`AgentCard::validate`]), which
//! are chosen so that a maximal card fits in one DHT value. Each skill id is also announced as a
//! Kademlia provider record under [`skill_key`](super::skill_key)`(id)`.
//!
//! A card lists the devices that serve the agent ([`CardDevice`]), and is also stored under
//! each one's [`agent_card_device_key`]. The root key can certify any device key (a PeerId is
//! public), so each listed device also signs its own binding to the card's root: without it
//! another identity could store a card under an agent's device key first and take its place.
//!
//! ```text
//! binding signature = Ed25519(device key, "rhizo/agent-card-binding/v1" ‖ certificate (137 bytes))
//! ```

use std::fmt;

use prost::Message;

use super::signed::{SignedRecord, VersionedBody, sealed::Body};
use super::{
    RECORD_KEY_LEN, RecordError, RecordKind, agent_card_device_key, agent_card_key,
    decode_canonical, root_key_from,
};
use crate::agent::{AgentCard, AgentLimits, AgentSkill};
use crate::identity::{self, SIGNATURE_LEN};
use crate::proto;
use crate::{DEVICE_CERT_LEN, DeviceCertificate, DeviceKey, RootKey, RootPublicKey, Uid};

/// Shortest card lifetime: a card lives 3 to 7 days, like a profile, and its owner re-signs it
/// (with the next version) while online.
pub const MIN_AGENT_CARD_TTL: u64 = 3 * 24 * 60 * 60;
/// Most devices a card lists: each is one more key the card may be stored under, so this bounds
/// the copies of one card a storing node keeps.
pub const MAX_AGENT_CARD_DEVICES: usize = 4;
/// Domain tag at the start of the message a listed device signs ([`CardDevice`]).
pub const AGENT_CARD_BINDING_DOMAIN: &[u8] = b"rhizo/agent-card-binding/v1";

// The model's limits leave 1.25 KiB of a DHT value for the envelope, the signature and the
// devices (certificate and binding signature, see `agent/card.rs`); these fit in it.
const _: () =
    assert!(MAX_AGENT_CARD_DEVICES * (DEVICE_CERT_LEN + 3 + SIGNATURE_LEN + 2) + 256 <= 1280);

/// A device a card lists: its certificate from the card's root (certification) and the
/// device key's own signature over it (the binding: the device agreed to serve that root's
/// card).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardDevice {
    /// The device's certificate from the card's root.
    pub certificate: DeviceCertificate,
    /// Ed25519(device key, [`AGENT_CARD_BINDING_DOMAIN`] ‖ certificate).
    pub signature: [u8; SIGNATURE_LEN],
}

impl CardDevice {
    /// Signs `certificate`'s binding with `device`.
    ///
    /// # Errors
    ///
    /// [`RecordError::AgentCard`] if `certificate` is not for `device`'s key.
    pub fn sign(device: &DeviceKey, certificate: DeviceCertificate) -> Result<Self, RecordError> {
        if certificate.device() != device.public() {
            return Err(DEVICES_ERROR);
        }
        Ok(Self {
            certificate,
            signature: device.sign(&binding_message(&certificate)),
        })
    }

    /// Checks it for a card of `root`: `root` certified the device, the device signed the
    /// binding.
    ///
    /// # Errors
    ///
    /// [`RecordError::AgentCard`] naming which check failed.
    pub fn verify_for(&self, root: &RootPublicKey) -> Result<(), RecordError> {
        self.certificate
            .verify_for(root)
            .map_err(|_| DEVICES_ERROR)?;
        self.certificate
            .device()
            .verify(&binding_message(&self.certificate), &self.signature)
            .map_err(|_| BINDING_ERROR)
    }
}

/// `"rhizo/agent-card-binding/v1" ‖ certificate`: what a listed device signs.
fn binding_message(certificate: &DeviceCertificate) -> Vec<u8> {
    identity::signed_message(AGENT_CARD_BINDING_DOMAIN, &[&certificate.to_bytes()])
}

/// An agent's card, signed by the root key and stored under
/// [`agent_card_key`](super::agent_card_key)`(uid)`; a higher `version` replaces a lower one.
///
/// ```
/// use rhizo_core::RootKey;
/// use rhizo_core::agent::AgentCard;
/// use rhizo_core::records::{AgentCardRecord, ValidRecord, agent_card_key, validate_record};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = RootKey::from_bytes(&[7u8; 32]);
/// let card: AgentCard = serde_json::from_str(
///     r#"{"name": "Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]}"#,
/// )?;
/// let now = 1_700_000_000;
/// let record = AgentCardRecord::new(&root, 1, card, Vec::new(), now, 3 * 24 * 3600)?;
/// let key = agent_card_key(&root.public().uid());
/// assert_eq!(validate_record(&key, &record.encode(), now)?, ValidRecord::AgentCard(record));
/// # Ok(())
/// # }
/// ```
pub type AgentCardRecord = SignedRecord<AgentCardBody>;

/// The body of an [`AgentCardRecord`]: the owner's root key, the version and the card.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentCardBody {
    root_pk: RootPublicKey,
    version: u64,
    card: AgentCard,
    devices: Vec<CardDevice>,
}

impl AgentCardBody {
    /// The owner's root public key.
    pub fn root_pk(&self) -> RootPublicKey {
        self.root_pk
    }

    /// The card (valid: it passed [`AgentCard::validate`]).
    pub fn card(&self) -> &AgentCard {
        &self.card
    }

    /// The devices that serve the agent (certified by the root key, each bound by its own
    /// signature).
    pub fn devices(&self) -> &[CardDevice] {
        &self.devices
    }
}

impl AgentCardRecord {
    /// Signs `card` as version `version` of our card, served by `devices` (certified by
    /// `root`, each with its binding signature: [`CardDevice::sign`]), valid from `now` for
    /// `ttl` seconds (3 to 7 days).
    ///
    /// # Errors
    ///
    /// [`RecordError::AgentCard`] for a card the model refuses, or for more than
    /// [`MAX_AGENT_CARD_DEVICES`] devices, one twice, one `root` did not certify or one
    /// whose binding signature does not verify;
    /// [`RecordError::TtlTooShort`] / [`RecordError::TtlTooLong`] for a lifetime outside 3–7
    /// days; [`RecordError::TooLarge`] if the encoding does not fit.
    pub fn new(
        root: &RootKey,
        version: u64,
        card: AgentCard,
        devices: Vec<CardDevice>,
        now: u64,
        ttl: u64,
    ) -> Result<Self, RecordError> {
        check_card(&card)?;
        check_devices(&devices)?;
        let body = AgentCardBody {
            root_pk: root.public(),
            version,
            card,
            devices,
        };
        body.verify_devices()?;
        Self::sign(body, now, ttl, |message| root.sign(message))
    }
}

impl VersionedBody for AgentCardBody {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Body for AgentCardBody {
    const KIND: RecordKind = RecordKind::AgentCard;

    fn key(&self) -> [u8; RECORD_KEY_LEN] {
        agent_card_key(&self.root_pk.uid())
    }

    fn belongs_under(&self, key: &[u8]) -> bool {
        key == self.key()
            || self
                .devices
                .iter()
                .any(|d| key == agent_card_device_key(&d.certificate.device()))
    }

    fn uid(&self) -> Uid {
        self.root_pk.uid()
    }

    fn ordering_version(&self, _created_at: u64) -> u64 {
        self.version
    }

    fn encode(&self, created_at: u64, expires_at: u64) -> Vec<u8> {
        let card = &self.card;
        proto::AgentCardBody {
            root_pk: bytes::Bytes::copy_from_slice(self.root_pk.as_bytes()),
            version: self.version,
            name: card.name.clone(),
            description: card.description.clone(),
            agent_version: card.version.clone(),
            skills: card.skills.iter().map(skill_to_wire).collect(),
            default_input_modes: card.default_input_modes.clone(),
            default_output_modes: card.default_output_modes.clone(),
            limits: Some(proto::AgentLimits {
                max_queue: card.limits.max_queue,
                max_concurrent: card.limits.max_concurrent,
                max_part_bytes: card.limits.max_part_bytes,
            }),
            created_at,
            expires_at,
            devices: self
                .devices
                .iter()
                .map(|d| bytes::Bytes::copy_from_slice(&d.certificate.to_bytes()))
                .collect(),
            device_signatures: self
                .devices
                .iter()
                .map(|d| bytes::Bytes::copy_from_slice(&d.signature))
                .collect(),
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<(Self, u64, u64), RecordError> {
        let decoded: proto::AgentCardBody =
            decode_canonical(bytes).map_err(|e| e.into_record_error("agent card body"))?;
        let root_pk = root_key_from(&decoded.root_pk)?;
        let limits = decoded
            .limits
            .ok_or(RecordError::Malformed("agent card without limits"))?;
        let card = AgentCard {
            name: decoded.name,
            description: decoded.description,
            version: decoded.agent_version,
            skills: decoded.skills.into_iter().map(skill_from_wire).collect(),
            default_input_modes: decoded.default_input_modes,
            default_output_modes: decoded.default_output_modes,
            limits: AgentLimits {
                max_queue: limits.max_queue,
                max_concurrent: limits.max_concurrent,
                max_part_bytes: limits.max_part_bytes,
            },
        };
        check_card(&card)?;
        let devices = decode_devices(&decoded.devices, &decoded.device_signatures)?;
        let body = Self {
            root_pk,
            version: decoded.version,
            card,
            devices,
        };
        Ok((body, decoded.created_at, decoded.expires_at))
    }

    fn check_ttl(ttl: u64) -> Result<(), RecordError> {
        if ttl < MIN_AGENT_CARD_TTL {
            return Err(RecordError::TtlTooShort {
                ttl,
                min: MIN_AGENT_CARD_TTL,
            });
        }
        Ok(())
    }

    fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), RecordError> {
        self.root_pk
            .verify(message, signature)
            .map_err(|_| RecordError::InvalidSignature)?;
        self.verify_devices()
    }
}

/// What a bad device list of a card is refused with.
const DEVICES_ERROR: RecordError = RecordError::AgentCard(
    "a card lists at most 4 devices, each once, certified by the card's root key",
);
/// What a device whose binding signature does not verify is refused with.
const BINDING_ERROR: RecordError = RecordError::AgentCard(
    "a device the card lists did not sign its binding to the card's root (agent-card-binding)",
);
/// What a card from before binding signatures is refused with.
const UNBOUND_ERROR: RecordError = RecordError::AgentCard(
    "the card lists devices without their binding signatures (an older format): its owner's \
     node signs it again with them",
);

impl AgentCardBody {
    /// Every listed device is certified by the card's root key and signed its binding.
    fn verify_devices(&self) -> Result<(), RecordError> {
        self.devices
            .iter()
            .try_for_each(|d| d.verify_for(&self.root_pk))
    }
}

/// The devices of a decoded body (field 12, and their binding signatures in field 13), their
/// count and uniqueness checked; the signatures are verified later, with the root's.
fn decode_devices(
    certificates: &[bytes::Bytes],
    signatures: &[bytes::Bytes],
) -> Result<Vec<CardDevice>, RecordError> {
    if certificates.len() > MAX_AGENT_CARD_DEVICES {
        return Err(DEVICES_ERROR);
    }
    if signatures.is_empty() && !certificates.is_empty() {
        return Err(UNBOUND_ERROR);
    }
    if signatures.len() != certificates.len() {
        return Err(BINDING_ERROR);
    }
    let devices = certificates
        .iter()
        .zip(signatures)
        .map(|(cert, signature)| {
            Ok(CardDevice {
                certificate: DeviceCertificate::decode(cert).map_err(|_| DEVICES_ERROR)?,
                signature: signature[..].try_into().map_err(|_| BINDING_ERROR)?,
            })
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    check_devices(&devices)?;
    Ok(devices)
}

/// The count and uniqueness of a card's devices.
fn check_devices(devices: &[CardDevice]) -> Result<(), RecordError> {
    let device = |d: &CardDevice| d.certificate.device();
    let unique = devices
        .iter()
        .enumerate()
        .all(|(i, d)| devices[..i].iter().all(|e| device(e) != device(d)));
    if devices.len() > MAX_AGENT_CARD_DEVICES || !unique {
        return Err(DEVICES_ERROR);
    }
    Ok(())
}

/// The model's limits, as a record error.
fn check_card(card: &AgentCard) -> Result<(), RecordError> {
    card.validate().map_err(|e| match e {
        crate::agent::AgentError::Invalid(what) | crate::agent::AgentError::Malformed(what) => {
            RecordError::AgentCard(what)
        }
        _ => RecordError::AgentCard("the card breaks a limit"),
    })
}

fn skill_to_wire(skill: &AgentSkill) -> proto::AgentSkill {
    proto::AgentSkill {
        id: skill.id.clone(),
        name: skill.name.clone(),
        description: skill.description.clone(),
        tags: skill.tags.clone(),
        examples: skill.examples.clone(),
        input_modes: skill.input_modes.clone(),
        output_modes: skill.output_modes.clone(),
    }
}

fn skill_from_wire(skill: proto::AgentSkill) -> AgentSkill {
    AgentSkill {
        id: skill.id,
        name: skill.name,
        description: skill.description,
        tags: skill.tags,
        examples: skill.examples,
        input_modes: skill.input_modes,
        output_modes: skill.output_modes,
    }
}

impl fmt::Debug for AgentCardBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCardBody")
            .field("root_pk", &self.root_pk)
            .field("version", &self.version)
            .field("name", &self.card.name)
            .field("skills", &self.card.skills.len())
            .field("devices", &self.devices.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
