//! Signed DHT records as storing nodes see them: `validate_record` on the raw
//! key and value, then `should_replace` against what is already stored.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use rhizo_core::proto;
use rhizo_core::records::{
    DeviceList, IdentityRecord, KeyPackageBundle, MAX_CLOCK_SKEW, MAX_DEVICES,
    MAX_KEY_PACKAGE_BYTES, MAX_KEY_PACKAGES, MAX_RECORD_BYTES, MAX_RECORD_TTL, RecordError,
    RecordKind, ValidRecord, device_list_key, identity_key, key_packages_key, should_replace,
    validate_record,
};
use rhizo_core::{CertError, DeviceCertificate, DeviceKey, RootKey};

const NOW: u64 = 1_700_000_000;
const DAY: u64 = 24 * 60 * 60;

fn root() -> RootKey {
    RootKey::from_bytes(&[7u8; 32])
}

fn attacker() -> RootKey {
    RootKey::from_bytes(&[66u8; 32])
}

fn device(seed: u8) -> DeviceKey {
    DeviceKey::from_bytes(&[seed; 32])
}

fn cert(root: &RootKey, seed: u8) -> DeviceCertificate {
    root.certify_device(&device(seed).public(), NOW)
}

fn key_packages(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8 + 1; 100 + i]).collect()
}

fn bundle(version: u64) -> KeyPackageBundle {
    KeyPackageBundle::new(
        &device(9),
        cert(&root(), 9),
        version,
        key_packages(3),
        2,
        NOW,
        3 * DAY,
    )
    .expect("valid bundle")
}

/// Signs `body` as a record of `kind` with `sign`, the way a (possibly
/// malicious) publisher would.
fn signed_record(kind: RecordKind, body: &[u8], sign: impl Fn(&[u8]) -> [u8; 64]) -> Vec<u8> {
    let mut message = b"rhizo/record/v1".to_vec();
    message.push(kind.wire_value());
    message.extend_from_slice(body);
    proto::SignedRecord {
        kind: i32::from(kind.wire_value()),
        body: Bytes::copy_from_slice(body),
        signature: Bytes::copy_from_slice(&sign(&message)),
    }
    .encode_to_vec()
}

fn identity_body(root_pk: &[u8], created_at: u64, expires_at: u64) -> Vec<u8> {
    proto::IdentityBody {
        root_pk: Bytes::copy_from_slice(root_pk),
        created_at,
        expires_at,
    }
    .encode_to_vec()
}

#[test]
fn identity_record_round_trip() {
    let root = root();
    let record = IdentityRecord::new(&root, NOW, 3 * DAY).expect("valid");
    let key = identity_key(&root.public().uid());
    assert_eq!(record.key(), key);
    let value = record.encode();
    let valid = validate_record(&key, &value, NOW).expect("valid");
    assert_eq!(valid, ValidRecord::Identity(record.clone()));
    assert_eq!(valid.kind(), RecordKind::Identity);
    assert_eq!(valid.key(), key);
    assert_eq!(valid.uid(), root.public().uid());
    assert_eq!(valid.created_at(), NOW);
    assert_eq!(valid.expires_at(), NOW + 3 * DAY);
    assert_eq!(valid.encode(), value);
    assert_eq!(record.root_pk(), root.public());
    // Still valid one second before expiry, from a node whose clock lags.
    assert!(validate_record(&key, &value, NOW + 3 * DAY - 1).is_ok());
    assert!(validate_record(&key, &value, NOW - MAX_CLOCK_SKEW).is_ok());
}

#[test]
fn device_list_round_trip() {
    let root = root();
    let certs = vec![cert(&root, 1), cert(&root, 2)];
    let list = DeviceList::new(&root, 4, certs.clone(), NOW, 7 * DAY).expect("valid");
    let key = device_list_key(&root.public().uid());
    let valid = validate_record(&key, &list.encode(), NOW).expect("valid");
    let ValidRecord::DeviceList(decoded) = valid else {
        panic!("wrong kind: {valid:?}");
    };
    assert_eq!(decoded, list);
    assert_eq!(decoded.devices(), certs.as_slice());
    assert_eq!(decoded.version(), 4);
    assert_eq!(decoded.root_pk(), root.public());
    // An empty list (every device revoked) is a valid list.
    let empty = DeviceList::new(&root, 5, Vec::new(), NOW, DAY).expect("valid");
    assert!(validate_record(&key, &empty.encode(), NOW).is_ok());
}

#[test]
fn key_package_bundle_round_trip() {
    let root = root();
    let bundle = bundle(1);
    let key = key_packages_key(&root.public().uid(), &device(9).public());
    assert_eq!(bundle.key(), key);
    let valid = validate_record(&key, &bundle.encode(), NOW).expect("valid");
    let ValidRecord::KeyPackages(decoded) = valid else {
        panic!("wrong kind: {valid:?}");
    };
    assert_eq!(decoded, bundle);
    assert_eq!(decoded.key_packages().len(), 3);
    assert_eq!(decoded.last_resort_index(), 2);
    assert_eq!(
        decoded.last_resort().map(|kp| kp.to_vec()),
        Some(key_packages(3)[2].clone())
    );
    assert_eq!(decoded.device_cert().device(), device(9).public());
}

#[test]
fn largest_key_package_bundle_fits_in_a_record() {
    let kps = vec![vec![0xAB; MAX_KEY_PACKAGE_BYTES]; MAX_KEY_PACKAGES];
    let bundle = KeyPackageBundle::new(&device(9), cert(&root(), 9), 1, kps, 0, NOW, DAY)
        .expect("the limits must fit together");
    let value = bundle.encode();
    assert!(value.len() <= MAX_RECORD_BYTES, "{}", value.len());
    assert!(validate_record(&bundle.key(), &value, NOW).is_ok());
}

#[test]
fn signed_bytes_are_as_documented() {
    let root = root();
    let record = IdentityRecord::new(&root, NOW, DAY).expect("valid");
    let body = identity_body(root.public().as_bytes(), NOW, NOW + DAY);
    let mut message = b"rhizo/record/v1\x01".to_vec();
    message.extend_from_slice(&body);
    assert_eq!(root.public().verify(&message, record.signature()), Ok(()));
    assert_eq!(
        record.encode(),
        signed_record(RecordKind::Identity, &body, |m| root.sign(m))
    );
}

#[test]
fn wrong_key_is_refused() {
    let root = root();
    let uid = root.public().uid();
    let other_uid = attacker().public().uid();
    let identity = IdentityRecord::new(&root, NOW, DAY)
        .expect("valid")
        .encode();
    for key in [
        identity_key(&other_uid).to_vec(),
        device_list_key(&uid).to_vec(),
        identity_key(&uid)[..31].to_vec(),
        Vec::new(),
    ] {
        assert_eq!(
            validate_record(&key, &identity, NOW),
            Err(RecordError::WrongKey)
        );
    }
    let list = DeviceList::new(&root, 1, vec![cert(&root, 1)], NOW, DAY)
        .expect("valid")
        .encode();
    assert_eq!(
        validate_record(&identity_key(&uid), &list, NOW),
        Err(RecordError::WrongKey)
    );
    // A bundle stored under another device's key.
    let bundle = bundle(1).encode();
    assert_eq!(
        validate_record(&key_packages_key(&uid, &device(10).public()), &bundle, NOW),
        Err(RecordError::WrongKey)
    );
}

#[test]
fn expired_records_are_refused() {
    let root = root();
    let record = IdentityRecord::new(&root, NOW, DAY).expect("valid");
    assert_eq!(
        validate_record(&record.key(), &record.encode(), NOW + DAY),
        Err(RecordError::Expired {
            expires_at: NOW + DAY,
            now: NOW + DAY
        })
    );
    let bundle = bundle(1);
    assert!(matches!(
        validate_record(&bundle.key(), &bundle.encode(), NOW + 30 * DAY),
        Err(RecordError::Expired { .. })
    ));
}

#[test]
fn too_long_ttl_is_refused() {
    let root = root();
    // The builder refuses it…
    assert_eq!(
        IdentityRecord::new(&root, NOW, MAX_RECORD_TTL + 1),
        Err(RecordError::TtlTooLong {
            ttl: MAX_RECORD_TTL + 1,
            max: MAX_RECORD_TTL
        })
    );
    assert!(IdentityRecord::new(&root, NOW, MAX_RECORD_TTL).is_ok());
    assert!(matches!(
        IdentityRecord::new(&root, NOW, 0),
        Err(RecordError::InvalidLifetime { .. })
    ));
    // …and so does a storing node, even when correctly signed.
    let body = identity_body(root.public().as_bytes(), NOW, NOW + 30 * DAY);
    let value = signed_record(RecordKind::Identity, &body, |m| root.sign(m));
    assert_eq!(
        validate_record(&identity_key(&root.public().uid()), &value, NOW),
        Err(RecordError::TtlTooLong {
            ttl: 30 * DAY,
            max: MAX_RECORD_TTL
        })
    );
    // expires_at before created_at.
    let body = identity_body(root.public().as_bytes(), NOW, NOW - 1);
    let value = signed_record(RecordKind::Identity, &body, |m| root.sign(m));
    assert_eq!(
        validate_record(&identity_key(&root.public().uid()), &value, NOW),
        Err(RecordError::InvalidLifetime {
            created_at: NOW,
            expires_at: NOW - 1
        })
    );
}

#[test]
fn future_created_at_is_refused() {
    let root = root();
    let later = NOW + MAX_CLOCK_SKEW + 1;
    let record = IdentityRecord::new(&root, later, DAY).expect("valid");
    assert_eq!(
        validate_record(&record.key(), &record.encode(), NOW),
        Err(RecordError::CreatedInFuture {
            created_at: later,
            now: NOW
        })
    );
    let within_skew = IdentityRecord::new(&root, NOW + MAX_CLOCK_SKEW, DAY).expect("valid");
    assert!(validate_record(&within_skew.key(), &within_skew.encode(), NOW).is_ok());
}

#[test]
fn forged_signature_is_refused() {
    let victim = root();
    let attacker = attacker();
    let uid = victim.public().uid();

    // Identity record claiming the victim's root key, signed by the attacker.
    let body = identity_body(victim.public().as_bytes(), NOW, NOW + DAY);
    let value = signed_record(RecordKind::Identity, &body, |m| attacker.sign(m));
    assert_eq!(
        validate_record(&identity_key(&uid), &value, NOW),
        Err(RecordError::InvalidSignature)
    );

    // Device list claiming the victim's root key, listing the attacker's
    // device (certified by the attacker), signed by the attacker.
    let body = proto::DeviceListBody {
        root_pk: Bytes::copy_from_slice(victim.public().as_bytes()),
        version: 99,
        devices: vec![Bytes::copy_from_slice(&cert(&attacker, 1).to_bytes())],
        created_at: NOW,
        expires_at: NOW + DAY,
    }
    .encode_to_vec();
    let value = signed_record(RecordKind::DeviceList, &body, |m| attacker.sign(m));
    assert_eq!(
        validate_record(&device_list_key(&uid), &value, NOW),
        Err(RecordError::InvalidSignature)
    );

    // Key packages for the victim's device, signed by another device key.
    let bundle = bundle(1);
    let body = proto::KeyPackageBundleBody::decode(
        proto::SignedRecord::decode(bundle.encode().as_slice())
            .expect("envelope")
            .body,
    )
    .expect("body")
    .encode_to_vec();
    let value = signed_record(RecordKind::KeyPackages, &body, |m| device(10).sign(m));
    assert_eq!(
        validate_record(&bundle.key(), &value, NOW),
        Err(RecordError::InvalidSignature)
    );
    // Signed by the root instead of the device.
    let value = signed_record(RecordKind::KeyPackages, &body, |m| victim.sign(m));
    assert_eq!(
        validate_record(&bundle.key(), &value, NOW),
        Err(RecordError::InvalidSignature)
    );
}

#[test]
fn tampered_records_are_refused() {
    let root = root();
    let list = DeviceList::new(&root, 1, vec![cert(&root, 1)], NOW, DAY).expect("valid");
    let value = list.encode();
    let key = list.key();
    // Every single bit flip is refused (by decoding, the key, or a signature).
    for bit in 0..value.len() * 8 {
        let mut tampered = value.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        assert!(
            validate_record(&key, &tampered, NOW).is_err(),
            "bit {bit} flip accepted"
        );
    }
    // An identity body re-labelled as another kind fails.
    let identity = IdentityRecord::new(&root, NOW, DAY).expect("valid");
    let mut envelope = proto::SignedRecord::decode(identity.encode().as_slice()).expect("decode");
    envelope.kind = proto::RecordKind::DeviceList.into();
    assert!(
        validate_record(
            &device_list_key(&root.public().uid()),
            &envelope.encode_to_vec(),
            NOW
        )
        .is_err()
    );
    envelope.kind = 0;
    assert_eq!(
        validate_record(&identity.key(), &envelope.encode_to_vec(), NOW),
        Err(RecordError::UnknownKind(0))
    );
    envelope.kind = 42;
    assert_eq!(
        validate_record(&identity.key(), &envelope.encode_to_vec(), NOW),
        Err(RecordError::UnknownKind(42))
    );
    // Unsigned bytes appended to a valid record are refused.
    let mut padded = identity.encode();
    padded.extend_from_slice(&[0x7a, 0x01, 0x00]); // field 15, 1 byte
    assert_eq!(
        validate_record(&identity.key(), &padded, NOW),
        Err(RecordError::NonCanonical)
    );
}

#[test]
fn device_list_with_foreign_certificate_is_refused() {
    let root = root();
    let foreign = cert(&attacker(), 2);
    // The builder refuses it…
    assert_eq!(
        DeviceList::new(&root, 1, vec![cert(&root, 1), foreign], NOW, DAY),
        Err(RecordError::DeviceListCertificate {
            index: 1,
            source: CertError::WrongRoot
        })
    );
    // …and so does validation of a list the root key really signed.
    let body = proto::DeviceListBody {
        root_pk: Bytes::copy_from_slice(root.public().as_bytes()),
        version: 1,
        devices: vec![
            Bytes::copy_from_slice(&cert(&root, 1).to_bytes()),
            Bytes::copy_from_slice(&foreign.to_bytes()),
        ],
        created_at: NOW,
        expires_at: NOW + DAY,
    }
    .encode_to_vec();
    let value = signed_record(RecordKind::DeviceList, &body, |m| root.sign(m));
    let key = device_list_key(&root.public().uid());
    assert_eq!(
        validate_record(&key, &value, NOW),
        Err(RecordError::DeviceListCertificate {
            index: 1,
            source: CertError::WrongRoot
        })
    );
    // A certificate naming the right root but with a bad signature.
    let mut broken = cert(&root, 2).to_bytes();
    broken[136] ^= 1;
    let body = proto::DeviceListBody {
        root_pk: Bytes::copy_from_slice(root.public().as_bytes()),
        version: 1,
        devices: vec![Bytes::copy_from_slice(&broken)],
        created_at: NOW,
        expires_at: NOW + DAY,
    }
    .encode_to_vec();
    let value = signed_record(RecordKind::DeviceList, &body, |m| root.sign(m));
    assert_eq!(
        validate_record(&key, &value, NOW),
        Err(RecordError::DeviceListCertificate {
            index: 0,
            source: CertError::InvalidSignature
        })
    );
}

#[test]
fn device_list_limits() {
    let root = root();
    let too_many: Vec<_> = (0..=MAX_DEVICES as u8)
        .map(|i| cert(&root, i + 1))
        .collect();
    assert_eq!(
        DeviceList::new(&root, 1, too_many.clone(), NOW, DAY),
        Err(RecordError::TooManyDevices {
            max: MAX_DEVICES,
            actual: MAX_DEVICES + 1
        })
    );
    assert!(DeviceList::new(&root, 1, too_many[..MAX_DEVICES].to_vec(), NOW, DAY).is_ok());
    let body = proto::DeviceListBody {
        root_pk: Bytes::copy_from_slice(root.public().as_bytes()),
        version: 1,
        devices: too_many
            .iter()
            .map(|c| Bytes::copy_from_slice(&c.to_bytes()))
            .collect(),
        created_at: NOW,
        expires_at: NOW + DAY,
    }
    .encode_to_vec();
    let value = signed_record(RecordKind::DeviceList, &body, |m| root.sign(m));
    assert!(matches!(
        validate_record(&device_list_key(&root.public().uid()), &value, NOW),
        Err(RecordError::TooManyDevices { .. })
    ));
    let twice = vec![
        cert(&root, 1),
        root.certify_device(&device(1).public(), NOW + 1),
    ];
    assert_eq!(
        DeviceList::new(&root, 1, twice, NOW, DAY),
        Err(RecordError::DuplicateDevice { index: 1 })
    );
}

#[test]
fn key_package_bundle_limits() {
    let root = root();
    let new = |kps: Vec<Vec<u8>>, last_resort: usize| {
        KeyPackageBundle::new(&device(9), cert(&root, 9), 1, kps, last_resort, NOW, DAY)
    };
    assert_eq!(new(Vec::new(), 0), Err(RecordError::NoKeyPackages));
    assert_eq!(
        new(key_packages(MAX_KEY_PACKAGES + 1), 0),
        Err(RecordError::TooManyKeyPackages {
            max: MAX_KEY_PACKAGES,
            actual: MAX_KEY_PACKAGES + 1
        })
    );
    assert_eq!(
        new(vec![vec![1; 10], vec![0; MAX_KEY_PACKAGE_BYTES + 1]], 0),
        Err(RecordError::KeyPackageSize {
            index: 1,
            max: MAX_KEY_PACKAGE_BYTES,
            actual: MAX_KEY_PACKAGE_BYTES + 1
        })
    );
    assert!(matches!(
        new(vec![Vec::new()], 0),
        Err(RecordError::KeyPackageSize { index: 0, .. })
    ));
    assert_eq!(
        new(key_packages(2), 2),
        Err(RecordError::LastResortOutOfRange { index: 2, count: 2 })
    );
    // The certificate must name the signing device…
    assert_eq!(
        KeyPackageBundle::new(&device(10), cert(&root, 9), 1, key_packages(1), 0, NOW, DAY),
        Err(RecordError::CertificateNotForDevice)
    );
    // …and verify.
    let mut broken = cert(&root, 9).to_bytes();
    broken[136] ^= 1;
    let broken = DeviceCertificate::decode(&broken).expect("well-formed");
    assert_eq!(
        KeyPackageBundle::new(&device(9), broken, 1, key_packages(1), 0, NOW, DAY),
        Err(RecordError::BundleCertificate(CertError::InvalidSignature))
    );
    // A stored bundle whose certificate does not verify is refused.
    let body = proto::KeyPackageBundleBody {
        device_cert: Bytes::copy_from_slice(&broken.to_bytes()),
        version: 1,
        key_packages: vec![Bytes::from_static(b"kp")],
        last_resort_index: 0,
        created_at: NOW,
        expires_at: NOW + DAY,
    }
    .encode_to_vec();
    let value = signed_record(RecordKind::KeyPackages, &body, |m| device(9).sign(m));
    let key = key_packages_key(&root.public().uid(), &device(9).public());
    assert_eq!(
        validate_record(&key, &value, NOW),
        Err(RecordError::BundleCertificate(CertError::InvalidSignature))
    );
}

#[test]
fn oversized_value_is_refused_before_decoding() {
    // Not a record at all: only the size check can have produced the error.
    let junk = vec![0xFF; MAX_RECORD_BYTES + 1];
    assert_eq!(
        validate_record(&[0; 32], &junk, NOW),
        Err(RecordError::TooLarge {
            max: MAX_RECORD_BYTES,
            actual: MAX_RECORD_BYTES + 1
        })
    );
    let same_size_junk = vec![0xFF; MAX_RECORD_BYTES];
    assert!(matches!(
        validate_record(&[0; 32], &same_size_junk, NOW),
        Err(RecordError::Malformed(_))
    ));
    // Builders refuse to make records that no node would store.
    let kps = vec![vec![1; MAX_KEY_PACKAGE_BYTES]; MAX_KEY_PACKAGES];
    const { assert!(MAX_KEY_PACKAGES * MAX_KEY_PACKAGE_BYTES < MAX_RECORD_BYTES) };
    assert!(KeyPackageBundle::new(&device(9), cert(&root(), 9), 1, kps, 0, NOW, DAY).is_ok());
}

#[test]
fn should_replace_versioned_records() {
    let root = root();
    let list = |version: u64, devices: Vec<DeviceCertificate>, now: u64| {
        ValidRecord::from(DeviceList::new(&root, version, devices, now, DAY).expect("valid"))
    };
    let v2 = list(2, vec![cert(&root, 1)], NOW);
    let v3 = list(3, vec![cert(&root, 1), cert(&root, 2)], NOW);
    assert_eq!(should_replace(&v2, &v3), Ok(true));
    // Lower version refused.
    assert_eq!(
        should_replace(&v3, &v2),
        Err(RecordError::VersionNotNewer {
            existing: 3,
            incoming: 2
        })
    );
    // Equal version, different content refused.
    let v3_other = list(3, vec![cert(&root, 3)], NOW);
    assert_eq!(
        should_replace(&v3, &v3_other),
        Err(RecordError::VersionNotNewer {
            existing: 3,
            incoming: 3
        })
    );
    // Equal version, same content (a republish): nothing to do.
    assert_eq!(should_replace(&v3, &v3.clone()), Ok(false));
    // Same version re-signed later (longer expiry) is still a different record.
    let v3_later = list(3, vec![cert(&root, 1), cert(&root, 2)], NOW + 60);
    assert!(should_replace(&v3, &v3_later).is_err());

    let b1 = ValidRecord::from(bundle(1));
    let b2 = ValidRecord::from(bundle(2));
    assert_eq!(should_replace(&b1, &b2), Ok(true));
    assert_eq!(
        should_replace(&b2, &b1),
        Err(RecordError::VersionNotNewer {
            existing: 2,
            incoming: 1
        })
    );
    // Records under different keys never replace each other.
    assert_eq!(should_replace(&v2, &b2), Err(RecordError::DifferentKeys));
    let other_root = attacker();
    let other =
        ValidRecord::from(DeviceList::new(&other_root, 9, Vec::new(), NOW, DAY).expect("valid"));
    assert_eq!(should_replace(&v2, &other), Err(RecordError::DifferentKeys));
}

#[test]
fn should_replace_identity_records_by_created_at() {
    let root = root();
    let at = |now: u64, ttl: u64| {
        ValidRecord::from(IdentityRecord::new(&root, now, ttl).expect("valid"))
    };
    let old = at(NOW, DAY);
    let new = at(NOW + 60, DAY);
    assert_eq!(should_replace(&old, &new), Ok(true));
    assert_eq!(
        should_replace(&new, &old),
        Err(RecordError::VersionNotNewer {
            existing: NOW + 60,
            incoming: NOW
        })
    );
    assert_eq!(should_replace(&old, &at(NOW, DAY)), Ok(false));
    assert!(should_replace(&old, &at(NOW, 2 * DAY)).is_err());
}

#[test]
fn errors_read_well() {
    let message = RecordError::TooLarge {
        max: MAX_RECORD_BYTES,
        actual: 70_000,
    }
    .to_string();
    assert!(message.contains("70000 bytes"), "{message}");
    let message = RecordError::VersionNotNewer {
        existing: 3,
        incoming: 2,
    }
    .to_string();
    assert!(message.contains("higher version"), "{message}");
    let message = RecordError::DeviceListCertificate {
        index: 1,
        source: CertError::WrongRoot,
    }
    .to_string();
    assert!(message.contains("different identity"), "{message}");
}

proptest! {
    #[test]
    fn validate_never_panics(
        key in proptest::collection::vec(any::<u8>(), 0..40),
        value in proptest::collection::vec(any::<u8>(), 0..2000),
        now in any::<u64>(),
    ) {
        let _ = validate_record(&key, &value, now);
    }

    #[test]
    fn validate_never_panics_on_well_formed_envelopes(
        kind in 0i32..5,
        body in proptest::collection::vec(any::<u8>(), 0..600),
        signature in proptest::collection::vec(any::<u8>(), 64),
        now in any::<u64>(),
    ) {
        let value = proto::SignedRecord {
            kind,
            body: body.into(),
            signature: signature.into(),
        }
        .encode_to_vec();
        prop_assert!(validate_record(&[0; 32], &value, now).is_err());
    }

    #[test]
    fn mutated_valid_records_never_panic(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        now in NOW - DAY..NOW + 8 * DAY,
    ) {
        let record = bundle(1);
        let mut value = record.encode();
        let i = index.index(value.len());
        value[i] = byte;
        if let Ok(valid) = validate_record(&record.key(), &value, now) {
            // Only an unchanged byte can pass.
            prop_assert_eq!(valid.encode(), record.encode());
        }
    }

    #[test]
    fn identity_round_trip(seed in any::<[u8; 32]>(), now in 0u64..u64::MAX / 2, ttl in 1..=MAX_RECORD_TTL) {
        let root = RootKey::from_bytes(&seed);
        let record = IdentityRecord::new(&root, now, ttl).expect("valid");
        let valid = validate_record(&record.key(), &record.encode(), now);
        prop_assert_eq!(valid, Ok(ValidRecord::Identity(record)));
    }
}
