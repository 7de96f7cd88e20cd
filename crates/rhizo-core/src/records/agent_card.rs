//! [`AgentCardRecord`]: an agent's signed card (seed 004 capabilities, shaped as A2A 1.0's
//! AgentCard), stored under [`agent_card_key`](super::agent_card_key)`(uid)`.
//!
//! The body holds the owner's root key, a version and the card exactly as the model
//! ([`AgentCard`]) has it; decoding checks the model's limits ([`AgentCard::validate`]), which
//! are chosen so that a maximal card fits in one DHT value. Each skill id is also announced as a
//! Kademlia provider record under [`skill_key`](super::skill_key)`(id)`.

use std::fmt;

use prost::Message;

use super::signed::{SignedRecord, VersionedBody, sealed::Body};
use super::{
    RECORD_KEY_LEN, RecordError, RecordKind, agent_card_device_key, agent_card_key,
    decode_canonical, root_key_from,
};
use crate::agent::{AgentCard, AgentLimits, AgentSkill};
use crate::identity::SIGNATURE_LEN;
use crate::proto;
use crate::{DEVICE_CERT_LEN, DeviceCertificate, RootKey, RootPublicKey, Uid};

/// Shortest card lifetime: a card lives 3 to 7 days, like a profile, and its owner re-signs it
/// (with the next version) while online.
pub const MIN_AGENT_CARD_TTL: u64 = 3 * 24 * 60 * 60;
/// Most devices a card lists: each is one more key the card may be stored under, so this bounds
/// the copies of one card a storing node keeps.
pub const MAX_AGENT_CARD_DEVICES: usize = 4;

// The model's limits leave 1 KiB of a DHT value for the envelope, the signature and the device
// certificates (see `agent.rs`); these fit in it.
const _: () = assert!(MAX_AGENT_CARD_DEVICES * (DEVICE_CERT_LEN + 3) + 256 <= 1024);

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
    devices: Vec<DeviceCertificate>,
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

    /// The devices that serve the agent (certified by the root key).
    pub fn devices(&self) -> &[DeviceCertificate] {
        &self.devices
    }
}

impl AgentCardRecord {
    /// Signs `card` as version `version` of our card, served by `devices` (certified by
    /// `root`), valid from `now` for `ttl` seconds (3 to 7 days).
    ///
    /// # Errors
    ///
    /// [`RecordError::AgentCard`] for a card the model refuses, or for more than
    /// [`MAX_AGENT_CARD_DEVICES`] devices, one twice or one `root` did not certify;
    /// [`RecordError::TtlTooShort`] / [`RecordError::TtlTooLong`] for a lifetime outside 3–7
    /// days; [`RecordError::TooLarge`] if the encoding does not fit.
    pub fn new(
        root: &RootKey,
        version: u64,
        card: AgentCard,
        devices: Vec<DeviceCertificate>,
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
                .any(|d| key == agent_card_device_key(&d.device()))
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
                .map(|cert| bytes::Bytes::copy_from_slice(&cert.to_bytes()))
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
        if decoded.devices.len() > MAX_AGENT_CARD_DEVICES {
            return Err(DEVICES_ERROR);
        }
        let devices = decoded
            .devices
            .iter()
            .map(|bytes| DeviceCertificate::decode(bytes).map_err(|_| DEVICES_ERROR))
            .collect::<Result<Vec<_>, _>>()?;
        check_devices(&devices)?;
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

impl AgentCardBody {
    /// Every listed device is certified by the card's root key.
    fn verify_devices(&self) -> Result<(), RecordError> {
        self.devices
            .iter()
            .try_for_each(|cert| cert.verify_for(&self.root_pk).map_err(|_| DEVICES_ERROR))
    }
}

/// The count and uniqueness of a card's devices.
fn check_devices(devices: &[DeviceCertificate]) -> Result<(), RecordError> {
    let unique = devices
        .iter()
        .enumerate()
        .all(|(i, d)| devices[..i].iter().all(|e| e.device() != d.device()));
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
