//! The node's DHT record rules: what it stores for others, through rhizo-core's validation.

use rhizo_core::records::{should_replace, validate_record};
use rhizo_net::{AcceptedRecord, RecordValidator};

/// Validates records with [`validate_record`] (size, signature, key, expiry) and refuses
/// replacements that do not grow the version ([`should_replace`]). An accepted record is owned
/// by its UID (the network bounds the records kept per UID) and expires at its signed expiry.
/// rhizo-net runs it on the blocking pool, after the sender's rate limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreRecordValidator;

impl RecordValidator for CoreRecordValidator {
    fn validate(
        &self,
        key: &[u8],
        value: &[u8],
        existing: Option<&[u8]>,
    ) -> Result<AcceptedRecord, String> {
        let now = u64::try_from(crate::unix_now()).unwrap_or(0);
        let incoming = validate_record(key, value, now).map_err(|e| e.to_string())?;
        if let Some(existing) = existing
            && let Ok(existing) = validate_record(key, existing, now)
        {
            // An expired or invalid stored copy is simply replaced.
            match should_replace(&existing, &incoming) {
                Ok(true) => {}
                Ok(false) => return Err("not newer than the stored record".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(AcceptedRecord {
            owner: incoming.uid().as_bytes().to_vec(),
            expires_at_unix: Some(incoming.expires_at()),
        })
    }
}

#[cfg(test)]
mod tests {
    use rhizo_core::{
        RootKey,
        records::{
            DeviceList, IdentityRecord, Profile, device_list_key, identity_key, profile_key,
        },
    };

    use super::*;

    fn now() -> u64 {
        u64::try_from(crate::unix_now()).unwrap()
    }

    #[test]
    fn stores_valid_records_and_refuses_forged_oversized_and_older_ones() {
        let v = CoreRecordValidator;
        let root = RootKey::from_bytes(&[1; 32]);
        let uid = root.public().uid();
        let identity = IdentityRecord::new(&root, now(), 3600).unwrap().encode();
        v.validate(&identity_key(&uid), &identity, None).unwrap();
        // Under another user's key: refused.
        let other = RootKey::from_bytes(&[2; 32]).public().uid();
        assert!(v.validate(&identity_key(&other), &identity, None).is_err());
        // A flipped byte (forged signature or body): refused.
        let mut forged = identity.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(v.validate(&identity_key(&uid), &forged, None).is_err());
        // Oversized: refused before decoding.
        assert!(
            v.validate(&identity_key(&uid), &vec![0u8; 128 * 1024], None)
                .is_err()
        );

        // Device lists: the version must grow.
        let key = device_list_key(&uid);
        let v1 = DeviceList::new(&root, 1, vec![], now(), 3600)
            .unwrap()
            .encode();
        let v2 = DeviceList::new(&root, 2, vec![], now(), 3600)
            .unwrap()
            .encode();
        v.validate(&key, &v2, Some(&v1)).unwrap();
        let err = v.validate(&key, &v1, Some(&v2)).unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn a_device_list_without_a_revoked_device_is_never_replaced_by_the_older_one() {
        let v = CoreRecordValidator;
        let root = RootKey::from_bytes(&[3; 32]);
        let key = device_list_key(&root.public().uid());
        let cert = |seed: u8| {
            let device = rhizo_core::DeviceKey::from_bytes(&[seed; 32]);
            root.certify_device(&device.public(), now())
        };
        let both = DeviceList::new(&root, 10, vec![cert(1), cert(2)], now(), 3600)
            .unwrap()
            .encode();
        let revoked = DeviceList::new(&root, 11, vec![cert(1)], now(), 3600)
            .unwrap()
            .encode();
        v.validate(&key, &revoked, Some(&both)).unwrap();
        let err = v.validate(&key, &both, Some(&revoked)).unwrap_err();
        assert!(err.contains("version"), "{err}");
    }

    #[test]
    fn a_device_list_naming_another_roots_device_is_refused() {
        use rhizo_engine::mailbox::test_support::TestUser;
        let v = CoreRecordValidator;
        let (alice, mallory) = (TestUser::new(1), TestUser::new(3));
        let key = device_list_key(&alice.uid());
        let now_ms = i64::try_from(now()).unwrap() * 1000;
        let genuine = alice.device_list_of(2, &[&alice.device], now_ms);
        v.validate(&key, &genuine, None).unwrap();
        // Signed by alice's root, but one device certified by mallory's: refused, alone or
        // over the genuine list (its version 9 is higher).
        let forged = alice.forged_device_list(&mallory, &mallory.linked(1), now_ms);
        let err = v.validate(&key, &forged, None).unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        assert!(v.validate(&key, &forged, Some(&genuine)).is_err());
        // Mallory's own list stored under alice's key: refused.
        let hers = mallory.device_list_of(3, &[&mallory.device], now_ms);
        assert!(v.validate(&key, &hers, Some(&genuine)).is_err());
    }

    #[test]
    fn an_accepted_record_is_owned_by_its_uid_and_expires_when_it_says() {
        let v = CoreRecordValidator;
        let root = RootKey::from_bytes(&[3; 32]);
        let uid = root.public().uid();
        let record = IdentityRecord::new(&root, now(), 3600).unwrap();
        let expires = record.expires_at();
        let accepted = v
            .validate(&identity_key(&uid), &record.encode(), None)
            .unwrap();
        assert_eq!(accepted.owner, uid.as_bytes().to_vec());
        assert_eq!(accepted.expires_at_unix, Some(expires));
    }

    #[test]
    fn a_storing_node_refuses_forged_oversized_and_older_profiles() {
        let v = CoreRecordValidator;
        let root = RootKey::from_bytes(&[1; 32]);
        let key = profile_key(&root.public().uid());
        let ttl = 3 * 24 * 3600;
        let profile = |version| {
            Profile::new(
                &root,
                version,
                "Alice",
                vec![1; 100],
                "image/png",
                now(),
                ttl,
            )
            .unwrap()
            .encode()
        };
        let (v1, v2) = (profile(1), profile(2));
        v.validate(&key, &v1, None).unwrap();
        v.validate(&key, &v2, Some(&v1)).unwrap();
        // Older than the stored one: refused.
        assert!(v.validate(&key, &v1, Some(&v2)).is_err());
        // Forged: another root's profile under alice's key, or a flipped byte.
        let mallory = RootKey::from_bytes(&[2; 32]);
        let forged = Profile::new(&mallory, 9, "Alice", Vec::new(), "", now(), ttl)
            .unwrap()
            .encode();
        assert!(v.validate(&key, &forged, None).is_err());
        let mut flipped = v2.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(v.validate(&key, &flipped, None).is_err());
        // Unsigned: the body with a zero signature.
        let mut unsigned = v2.clone();
        let n = unsigned.len();
        unsigned[n - 64..].fill(0);
        assert!(v.validate(&key, &unsigned, None).is_err());
        // Oversized: refused before decoding.
        assert!(v.validate(&key, &vec![0u8; 70 * 1024], None).is_err());
    }

    #[test]
    fn a_storing_node_keeps_agent_cards_under_their_keys_only() {
        use rhizo_core::records::{AgentCardRecord, agent_card_device_key, agent_card_key};
        let v = CoreRecordValidator;
        let root = RootKey::from_bytes(&[4; 32]);
        let device_key = rhizo_core::DeviceKey::from_bytes(&[5; 32]);
        let device = device_key.public();
        let cert =
            rhizo_core::records::CardDevice::sign(&device_key, root.certify_device(&device, now()))
                .unwrap();
        let card: rhizo_core::agent::AgentCard = serde_json::from_value(serde_json::json!({
            "name": "Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]
        }))
        .unwrap();
        let ttl = 3 * 24 * 3600;
        let record = |root: &RootKey, version| {
            AgentCardRecord::new(root, version, card.clone(), vec![cert], now(), ttl)
        };
        let (v1, v2) = (
            record(&root, 1).unwrap().encode(),
            record(&root, 2).unwrap().encode(),
        );
        let key = agent_card_key(&root.public().uid());
        let accepted = v.validate(&key, &v1, None).unwrap();
        assert_eq!(accepted.owner, root.public().uid().as_bytes().to_vec());
        // Under the listed device's key too, owned by the same UID.
        let device_key = agent_card_device_key(&device);
        assert_eq!(
            v.validate(&device_key, &v1, None).unwrap().owner,
            accepted.owner
        );
        v.validate(&key, &v2, Some(&v1)).unwrap();
        assert!(v.validate(&key, &v1, Some(&v2)).is_err(), "older");
        // Under another UID's key, or an unlisted device's: refused.
        let other = RootKey::from_bytes(&[6; 32]);
        assert!(
            v.validate(&agent_card_key(&other.public().uid()), &v1, None)
                .is_err()
        );
        let unlisted = rhizo_core::DeviceKey::from_bytes(&[7; 32]).public();
        assert!(
            v.validate(&agent_card_device_key(&unlisted), &v1, None)
                .is_err()
        );
        // A bad signature: a flipped byte, or a zero signature.
        let mut flipped = v1.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(v.validate(&key, &flipped, None).is_err());
        let mut unsigned = v1.clone();
        let n = unsigned.len();
        unsigned[n - 64..].fill(0);
        assert!(v.validate(&key, &unsigned, None).is_err());
        // Another root's card listing our device cannot be built (the certificate is ours);
        // nor with its own certificate of our device and a binding our device never signed
        // (rhizo-core's agent_card tests show the validator refusing such bytes).
        assert!(record(&other, 1).is_err());
        let squat = AgentCardRecord::new(
            &other,
            9,
            card.clone(),
            vec![rhizo_core::records::CardDevice {
                certificate: other.certify_device(&device, now()),
                signature: other.sign(b"not a binding"),
            }],
            now(),
            ttl,
        );
        assert!(squat.is_err());
    }
}

#[cfg(test)]
mod dht_tests;
