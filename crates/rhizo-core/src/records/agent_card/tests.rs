use super::*;
use crate::agent::{
    MAX_CARD_DESCRIPTION_BYTES, MAX_CARD_NAME_CHARS, MAX_CARD_VERSION_BYTES, MAX_EXAMPLE_BYTES,
    MAX_EXAMPLES, MAX_MODE_BYTES, MAX_MODES, MAX_SKILL_DESCRIPTION_BYTES, MAX_SKILL_ID_BYTES,
    MAX_SKILL_NAME_BYTES, MAX_SKILLS, MAX_TAG_BYTES, MAX_TAGS,
};
use crate::records::{
    MAX_AGENT_CARD_DEVICES, MAX_RECORD_BYTES, ValidRecord, agent_card_device_key, profile_key,
    should_replace, signed_message, skill_key, validate_record,
};

const NOW: u64 = 1_700_000_000;
const TTL: u64 = 3 * 24 * 3600;

fn root(seed: u8) -> RootKey {
    RootKey::from_bytes(&[seed; 32])
}

fn card() -> AgentCard {
    serde_json::from_value(serde_json::json!({
        "name": "Echo",
        "description": "repeats what it is told",
        "version": "1.0",
        "skills": [{"id": "echo.v1", "name": "Echo", "tags": ["text"]}],
    }))
    .unwrap()
}

fn cert(root_seed: u8, device_seed: u8) -> DeviceCertificate {
    let device = crate::DeviceKey::from_bytes(&[device_seed; 32]).public();
    root(root_seed).certify_device(&device, NOW)
}

/// Device `device_seed` as a card of root `root_seed` lists it: certified, binding signed.
fn bound(root_seed: u8, device_seed: u8) -> CardDevice {
    let device = crate::DeviceKey::from_bytes(&[device_seed; 32]);
    CardDevice::sign(&device, cert(root_seed, device_seed)).unwrap()
}

fn certs(n: usize) -> Vec<CardDevice> {
    (0..n).map(|i| bound(1, 10 + i as u8)).collect()
}

fn record(version: u64) -> AgentCardRecord {
    AgentCardRecord::new(&root(1), version, card(), vec![bound(1, 3)], NOW, TTL).unwrap()
}

/// Every field at its limit, names in 4-byte characters.
fn maximal_card() -> AgentCard {
    let s = |n: usize, c: char| c.to_string().repeat(n);
    let modes = vec![s(MAX_MODE_BYTES, 'm'); MAX_MODES];
    let skills = (0..MAX_SKILLS)
        .map(|i| AgentSkill {
            id: format!("{i:02}{}", s(MAX_SKILL_ID_BYTES - 2, 'a')),
            name: s(MAX_SKILL_NAME_BYTES, 'n'),
            description: s(MAX_SKILL_DESCRIPTION_BYTES, 'd'),
            tags: vec![s(MAX_TAG_BYTES, 't'); MAX_TAGS],
            examples: vec![s(MAX_EXAMPLE_BYTES, 'e'); MAX_EXAMPLES],
            input_modes: modes.clone(),
            output_modes: modes.clone(),
        })
        .collect();
    AgentCard {
        name: s(MAX_CARD_NAME_CHARS, '𝄞'),
        description: s(MAX_CARD_DESCRIPTION_BYTES, 'x'),
        version: s(MAX_CARD_VERSION_BYTES, 'v'),
        skills,
        default_input_modes: modes.clone(),
        default_output_modes: modes,
        limits: AgentLimits {
            max_queue: u32::MAX,
            max_concurrent: u32::MAX,
            max_part_bytes: u32::MAX,
        },
    }
}

#[test]
fn round_trips_under_its_key_and_nowhere_else() {
    let r = record(1);
    let uid = root(1).public().uid();
    let valid = validate_record(&agent_card_key(&uid), &r.encode(), NOW).unwrap();
    assert_eq!(valid, ValidRecord::AgentCard(r.clone()));
    assert_eq!(valid.kind(), RecordKind::AgentCard);
    assert_eq!(valid.kind().to_string(), "agent card");
    assert_eq!(valid.uid(), uid);
    assert_eq!(valid.ordering_version(), 1);
    assert_eq!(valid.encode(), r.encode());
    assert_eq!(r.card(), &card());
    assert_eq!(r.root_pk(), root(1).public());
    // Another UID's card key, or the same UID's profile key: refused.
    let other = agent_card_key(&root(2).public().uid());
    assert_eq!(
        validate_record(&other, &r.encode(), NOW),
        Err(RecordError::WrongKey)
    );
    assert_eq!(
        validate_record(&profile_key(&uid), &r.encode(), NOW),
        Err(RecordError::WrongKey)
    );
    let debug = format!("{r:?}");
    assert!(
        debug.contains("AgentCardBody") && debug.contains("Echo"),
        "{debug}"
    );
}

#[test]
fn keys_match_the_documented_hashes() {
    use sha2::{Digest, Sha256};
    let uid = root(1).public().uid();
    let manual = |a: &[u8], b: &[u8]| -> [u8; 32] {
        Sha256::new()
            .chain_update(a)
            .chain_update(b)
            .finalize()
            .into()
    };
    assert_eq!(
        agent_card_key(&uid),
        manual(b"rhizo/agent-card/v1", uid.as_bytes())
    );
    assert_eq!(skill_key("echo.v1"), manual(b"rhizo/skill/v1", b"echo.v1"));
    assert_ne!(skill_key("echo.v1"), skill_key("echo.v2"));
}

#[test]
fn a_maximal_card_fits_in_one_dht_value() {
    let max = maximal_card();
    assert_eq!(max.validate(), Ok(()));
    let r = AgentCardRecord::new(
        &root(1),
        u64::MAX,
        max,
        certs(MAX_AGENT_CARD_DEVICES),
        NOW,
        7 * 24 * 3600,
    )
    .unwrap();
    let len = r.encode().len();
    assert!(len <= MAX_RECORD_BYTES, "{len} bytes");
    assert!(validate_record(&r.key(), &r.encode(), NOW).is_ok());
    // One more skill, tag or example than allowed is refused before signing.
    let mut more = maximal_card();
    more.skills.push(more.skills[0].clone());
    more.skills[MAX_SKILLS].id = "extra".into();
    assert!(matches!(
        AgentCardRecord::new(&root(1), 1, more, Vec::new(), NOW, TTL),
        Err(RecordError::AgentCard(_))
    ));
    let mut tags = card();
    tags.skills[0].tags = vec!["t".into(); MAX_TAGS + 1];
    assert!(AgentCardRecord::new(&root(1), 1, tags, Vec::new(), NOW, TTL).is_err());
    let mut examples = card();
    examples.skills[0].examples = vec!["x".repeat(MAX_EXAMPLE_BYTES + 1)];
    assert!(AgentCardRecord::new(&root(1), 1, examples, Vec::new(), NOW, TTL).is_err());
}

#[test]
fn the_builder_refuses_bad_cards_and_lifetimes() {
    let r = root(1);
    let mut no_skills = card();
    no_skills.skills.clear();
    assert_eq!(
        AgentCardRecord::new(&r, 1, no_skills, Vec::new(), NOW, TTL).unwrap_err(),
        RecordError::AgentCard("a card has 1 to 32 skills")
    );
    let mut bad_id = card();
    bad_id.skills[0].id = "Echo V1".into();
    assert!(matches!(
        AgentCardRecord::new(&r, 1, bad_id, Vec::new(), NOW, TTL),
        Err(RecordError::AgentCard(_))
    ));
    let mut control = card();
    control.name = "a\u{7}b".into();
    assert!(AgentCardRecord::new(&r, 1, control, Vec::new(), NOW, TTL).is_err());
    assert!(matches!(
        AgentCardRecord::new(&r, 1, card(), Vec::new(), NOW, TTL - 1),
        Err(RecordError::TtlTooShort { .. })
    ));
    assert!(matches!(
        AgentCardRecord::new(&r, 1, card(), Vec::new(), NOW, 7 * 24 * 3600 + 1),
        Err(RecordError::TtlTooLong { .. })
    ));
}

/// Signs a body crafted past the builder, as a forger with the right key could.
fn resigned(r: AgentCardRecord, edit: impl FnOnce(&mut AgentCardRecord)) -> Vec<u8> {
    resigned_by(1, r, edit)
}

/// [`resigned`] by root `root_seed`.
fn resigned_by(
    root_seed: u8,
    mut r: AgentCardRecord,
    edit: impl FnOnce(&mut AgentCardRecord),
) -> Vec<u8> {
    edit(&mut r);
    r.signature = root(root_seed).sign(&signed_message(RecordKind::AgentCard, &r.body_bytes()));
    r.encode()
}

#[test]
fn the_validator_refuses_malformed_oversized_forged_and_wrong_key_cards() {
    let good = record(1);
    let key = good.key();
    // Signed by another root, claiming the first one's key: refused.
    let mallory = AgentCardRecord::new(&root(2), 9, card(), Vec::new(), NOW, TTL).unwrap();
    assert_eq!(
        validate_record(&key, &mallory.encode(), NOW),
        Err(RecordError::WrongKey)
    );
    // Every byte flipped in turn: never accepted as a different valid card.
    let bytes = good.encode();
    for i in 0..bytes.len() {
        let mut forged = bytes.clone();
        forged[i] ^= 0x01;
        if let Ok(ValidRecord::AgentCard(c)) = validate_record(&key, &forged, NOW) {
            panic!("byte {i} flipped still verifies: {c:?}");
        }
    }
    // A zero signature.
    let mut unsigned = bytes.clone();
    let n = unsigned.len();
    unsigned[n - 64..].fill(0);
    assert_eq!(
        validate_record(&key, &unsigned, NOW),
        Err(RecordError::InvalidSignature)
    );
    // Oversized: refused before decoding.
    assert!(matches!(
        validate_record(&key, &vec![0u8; MAX_RECORD_BYTES + 1], NOW),
        Err(RecordError::TooLarge { .. })
    ));
    // Garbage and a truncated record.
    assert!(validate_record(&key, b"\x08\x05\x12\x03abc", NOW).is_err());
    assert!(validate_record(&key, &bytes[..bytes.len() / 2], NOW).is_err());
    // Signed, but breaking the model's limits: refused by the validator too.
    let no_skills = resigned(record(1), |r| r.body.card.skills.clear());
    assert!(matches!(
        validate_record(&key, &no_skills, NOW),
        Err(RecordError::AgentCard(_))
    ));
    let dup = resigned(record(1), |r| {
        let s = r.body.card.skills[0].clone();
        r.body.card.skills.push(s);
    });
    assert_eq!(
        validate_record(&key, &dup, NOW),
        Err(RecordError::AgentCard("skill ids must be unique"))
    );
    let long = resigned(record(1), |r| r.body.card.description = "x".repeat(2000));
    assert!(matches!(
        validate_record(&key, &long, NOW),
        Err(RecordError::AgentCard(_))
    ));
    let short = resigned(record(1), |r| r.expires_at = NOW + 60);
    assert!(matches!(
        validate_record(&key, &short, NOW),
        Err(RecordError::TtlTooShort { .. })
    ));
}

#[test]
fn a_card_without_limits_is_malformed() {
    let good = record(1);
    let mut body = proto::AgentCardBody::decode(&good.body_bytes()[..]).unwrap();
    body.limits = None;
    let body = body.encode_to_vec();
    let signature = root(1).sign(&signed_message(RecordKind::AgentCard, &body));
    let value = super::super::encode_envelope(RecordKind::AgentCard, body, &signature);
    assert_eq!(
        validate_record(&good.key(), &value, NOW),
        Err(RecordError::Malformed("agent card without limits"))
    );
}

#[test]
fn only_a_newer_version_replaces_a_stored_card() {
    let (v1, v2) = (
        ValidRecord::AgentCard(record(1)),
        ValidRecord::AgentCard(record(2)),
    );
    assert_eq!(should_replace(&v1, &v2), Ok(true));
    assert!(should_replace(&v2, &v1).is_err());
    assert_eq!(should_replace(&v2, &v2.clone()), Ok(false));
    assert_eq!(record(7).version(), 7);
    // A card and a profile of the same UID never replace each other.
    let profile = crate::records::Profile::new(&root(1), 3, "A", Vec::new(), "", NOW, TTL).unwrap();
    assert_eq!(
        should_replace(&v1, &ValidRecord::Profile(profile)),
        Err(RecordError::DifferentKeys)
    );
}

#[test]
fn a_card_is_stored_under_its_uid_key_and_its_devices_keys_only() {
    let r = record(1);
    let value = r.encode();
    assert_eq!(r.devices(), &[bound(1, 3)]);
    let device = crate::DeviceKey::from_bytes(&[3; 32]).public();
    let valid = validate_record(&agent_card_device_key(&device), &value, NOW).unwrap();
    // Validated under a device key, it is still the UID's card.
    assert_eq!(valid.key(), agent_card_key(&root(1).public().uid()));
    let unlisted = crate::DeviceKey::from_bytes(&[4; 32]).public();
    assert_eq!(
        validate_record(&agent_card_device_key(&unlisted), &value, NOW),
        Err(RecordError::WrongKey)
    );
    // Devices: at most 4, each once, each certified by the card's root.
    let builder = |devices| AgentCardRecord::new(&root(1), 1, card(), devices, NOW, TTL);
    assert!(builder(certs(MAX_AGENT_CARD_DEVICES)).is_ok());
    assert!(matches!(
        builder(certs(MAX_AGENT_CARD_DEVICES + 1)),
        Err(RecordError::AgentCard(_))
    ));
    assert!(builder(vec![bound(1, 3), bound(1, 3)]).is_err());
    assert!(builder(vec![bound(2, 3)]).is_err());
    // A foreign device signed into the card past the builder: the validator refuses it too.
    let foreign = resigned(record(1), |r| r.body.devices = vec![bound(2, 5)]);
    assert!(matches!(
        validate_record(&r.key(), &foreign, NOW),
        Err(RecordError::AgentCard(_))
    ));
    let twice = resigned(record(1), |r| {
        r.body.devices = vec![bound(1, 3), bound(1, 3)]
    });
    assert!(validate_record(&r.key(), &twice, NOW).is_err());
}

/// Squatting: mallory (root 2) certifies alice's device key 3 (a PeerId is public) and lists
/// it, to be stored under that device's card key before alice's own card. Without the device's
/// binding signature no storing node or reader accepts it; alice's card (bound by her device)
/// is accepted there.
#[test]
fn a_card_listing_a_device_that_did_not_sign_its_binding_is_refused() {
    let alice_device = crate::DeviceKey::from_bytes(&[3; 32]);
    let device_key = agent_card_device_key(&alice_device.public());
    let binding = AgentCardRecord::new(&root(2), 9, card(), vec![bound(2, 3)], NOW, TTL).unwrap();
    let mallory_signed = |signature: [u8; SIGNATURE_LEN]| {
        resigned_by(2, binding.clone(), |r| {
            r.body.devices = vec![CardDevice {
                certificate: cert(2, 3),
                signature,
            }];
        })
    };
    // Signed by mallory's own device, by the root, or left zero: refused with the reason.
    let other_device = crate::DeviceKey::from_bytes(&[9; 32]);
    let message = binding_message(&cert(2, 3));
    for signature in [
        other_device.sign(&message),
        root(2).sign(&message),
        [0; SIGNATURE_LEN],
    ] {
        assert_eq!(
            validate_record(&device_key, &mallory_signed(signature), NOW),
            Err(BINDING_ERROR)
        );
    }
    // The signature of another statement by alice's device (e.g. a ticket's possession
    // proof): refused too (the domain differs).
    let possession = crate::ticket::DeviceProof::new(&alice_device, cert(2, 3)).unwrap();
    assert_eq!(
        validate_record(&device_key, &mallory_signed(possession.possession), NOW),
        Err(BINDING_ERROR)
    );
    // The builder cannot bind a device with another device's key.
    assert_eq!(
        CardDevice::sign(&other_device, cert(2, 3)),
        Err(DEVICES_ERROR)
    );
    // Alice's genuine card is accepted under the same key.
    let genuine = record(1);
    assert!(validate_record(&device_key, &genuine.encode(), NOW).is_ok());
    assert_eq!(genuine.devices()[0].verify_for(&root(1).public()), Ok(()));
    assert_eq!(
        genuine.devices()[0].verify_for(&root(2).public()),
        Err(DEVICES_ERROR)
    );
}

/// A card in the format before binding signatures (field 13 absent) is refused with a clear
/// error; so is one with a signature count that does not match its devices.
#[test]
fn a_card_without_binding_signatures_is_refused_clearly() {
    let good = record(1);
    let resign = |edit: &dyn Fn(&mut proto::AgentCardBody)| {
        let mut body = proto::AgentCardBody::decode(&good.body_bytes()[..]).unwrap();
        edit(&mut body);
        let body = body.encode_to_vec();
        let signature = root(1).sign(&signed_message(RecordKind::AgentCard, &body));
        super::super::encode_envelope(RecordKind::AgentCard, body, &signature)
    };
    let old = resign(&|b| b.device_signatures.clear());
    let err = validate_record(&good.key(), &old, NOW).unwrap_err();
    assert_eq!(err, UNBOUND_ERROR);
    assert!(err.to_string().contains("older format"), "{err}");
    let extra = resign(&|b| {
        let s = b.device_signatures[0].clone();
        b.device_signatures.push(s);
    });
    assert_eq!(
        validate_record(&good.key(), &extra, NOW),
        Err(BINDING_ERROR)
    );
    let short = resign(&|b| b.device_signatures[0] = b.device_signatures[0].slice(..63));
    assert_eq!(
        validate_record(&good.key(), &short, NOW),
        Err(BINDING_ERROR)
    );
    // A card that lists no device needs no signature.
    let bare = resign(&|b| {
        b.devices.clear();
        b.device_signatures.clear();
    });
    assert!(validate_record(&good.key(), &bare, NOW).is_ok());
}
