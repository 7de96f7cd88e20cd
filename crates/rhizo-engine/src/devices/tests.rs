use rhizo_core::records::{
    RecordError, ValidRecord, device_list_key, should_replace, validate_record,
};
use rhizo_core::{DeviceKey, RootKey};
use rhizo_store::Store;

use super::*;

const NOW: i64 = 1_700_000_000_000;

fn engine() -> Engine {
    let root = RootKey::from_bytes(&[1; 32]);
    let device = DeviceKey::from_bytes(&[2; 32]);
    let certificate = root.certify_device(&device.public(), 1);
    let me = Me::primary(root, device, certificate, None);
    Engine::new(me, rhizo_e2e::RekeyPolicy::default()).unwrap()
}

fn listed(engine: &Engine, list: &[u8]) -> (u64, usize) {
    let key = device_list_key(&engine.me.uid);
    let Ok(ValidRecord::DeviceList(list)) = validate_record(&key, list, crate::secs(NOW)) else {
        panic!("not a valid device list");
    };
    (list.version(), list.devices().len())
}

#[test]
fn linking_and_revoking_sign_growing_device_list_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("db")).unwrap();
    let engine = engine();
    let new = DeviceKey::from_bytes(&[3; 32]).public();
    let cert = engine.certify_device(&new, NOW).unwrap();
    let first = store
        .write(|tx| publish::new_device_list(tx, &engine.me, NOW))
        .unwrap();
    let linked = store
        .write(|tx| engine.link_own_device(tx, cert, Some("laptop".into()), NOW + 1000))
        .unwrap();
    let (v1, n1) = listed(&engine, &first);
    let (v2, n2) = listed(&engine, &linked);
    assert_eq!((n1, n2), (1, 2));
    assert!(v2 > v1);
    let devices = engine.own_devices(&store.read()).unwrap();
    assert_eq!(devices.len(), 2);
    assert!(devices[0].this_device);
    assert_eq!(devices[1].name.as_deref(), Some("laptop"));
    // Linking the same device again changes nothing but the version.
    store
        .write(|tx| engine.link_own_device(tx, cert, None, NOW + 2000))
        .unwrap();
    assert_eq!(engine.own_devices(&store.read()).unwrap().len(), 2);

    let revoked = store
        .write(|tx| engine.revoke_own_device(tx, &new, NOW + 3000))
        .unwrap()
        .expect("the device was listed");
    let (v3, n3) = listed(&engine, &revoked);
    assert_eq!(n3, 1);
    assert!(v3 > v2);
    assert!(
        store
            .write(|tx| engine.revoke_own_device(tx, &new, NOW + 4000))
            .unwrap()
            .is_none()
    );
    // A newer list wins over an older one wherever records are compared: the list with the
    // revoked device never replaces the one without it.
    let key = device_list_key(&engine.me.uid);
    let valid = |bytes: &[u8]| validate_record(&key, bytes, crate::secs(NOW)).unwrap();
    assert!(should_replace(&valid(&linked), &valid(&revoked)).unwrap());
    assert!(should_replace(&valid(&revoked), &valid(&linked)).is_err());
}

#[test]
fn a_seventeenth_device_is_refused_and_another_roots_certificate_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("db")).unwrap();
    let engine = engine();
    for seed in 10..25u8 {
        let cert = engine
            .certify_device(&DeviceKey::from_bytes(&[seed; 32]).public(), NOW)
            .unwrap();
        store
            .write(|tx| engine.link_own_device(tx, cert, None, NOW))
            .unwrap();
    }
    assert_eq!(engine.own_devices(&store.read()).unwrap().len(), 16);
    let cert = engine
        .certify_device(&DeviceKey::from_bytes(&[99; 32]).public(), NOW)
        .unwrap();
    let err = store
        .write(|tx| engine.link_own_device(tx, cert, None, NOW))
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Record(RecordError::TooManyDevices { max: 16, .. })
        ),
        "{err}"
    );
    let stranger = RootKey::from_bytes(&[7; 32]);
    let foreign = stranger.certify_device(&DeviceKey::from_bytes(&[98; 32]).public(), 1);
    assert!(
        store
            .write(|tx| engine.link_own_device(tx, foreign, None, NOW))
            .is_err()
    );
}

/// The engine of a linked device of `engine`'s identity (device key `[seed; 32]`).
fn companion(primary: &Engine, seed: u8) -> Engine {
    let device = DeviceKey::from_bytes(&[seed; 32]);
    let certificate = primary.certify_device(&device.public(), NOW).unwrap();
    let me = Me::companion(device, certificate, None);
    Engine::new(me, rhizo_e2e::RekeyPolicy::default()).unwrap()
}

#[test]
fn a_linked_device_adopts_the_newest_device_list_and_signs_nothing_with_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let mut primary_store = Store::open(&tmp.path().join("a1")).unwrap();
    let mut store = Store::open(&tmp.path().join("a2")).unwrap();
    let primary = engine();
    let a2 = companion(&primary, 3);
    assert_eq!(a2.me.uid, primary.me.uid);
    assert!(!a2.me.holds_root());

    // What only the root key signs is refused with a clear error, or skipped.
    let err = store.write(|tx| a2.identity_records(tx, NOW)).unwrap_err();
    assert!(matches!(err, EngineError::NoRootKey), "{err}");
    assert!(matches!(
        a2.certify_device(&DeviceKey::from_bytes(&[9; 32]).public(), NOW),
        Err(EngineError::NoRootKey)
    ));
    assert!(
        store
            .write(|tx| a2.public_profile_record(tx, NOW))
            .unwrap()
            .is_none()
    );
    // No list adopted yet: nothing to show a mailbox replica, and no KeyPackages published
    // (the device with the root key holds one always).
    let err = store.write(|tx| a2.device_list(tx, NOW)).unwrap_err();
    assert!(matches!(err, EngineError::NoRootKey), "{err}");
    assert!(!a2.holds_device_list(&store.read()).unwrap());
    assert!(primary.holds_device_list(&primary_store.read()).unwrap());

    // The primary lists a2 (version n), then a third device (version n + 1).
    let cert = a2.me.certificate;
    let older = primary_store
        .write(|tx| primary.link_own_device(tx, cert, Some("laptop".into()), NOW))
        .unwrap();
    let a3 = DeviceKey::from_bytes(&[4; 32]).public();
    let cert3 = primary.certify_device(&a3, NOW).unwrap();
    let newer = primary_store
        .write(|tx| primary.link_own_device(tx, cert3, None, NOW + 1000))
        .unwrap();

    assert!(
        store
            .write(|tx| a2.adopt_device_list(tx, &newer, NOW))
            .unwrap()
    );
    assert!(a2.holds_device_list(&store.read()).unwrap());
    // An older version, the same one again, or another identity's list is not adopted.
    assert!(
        !store
            .write(|tx| a2.adopt_device_list(tx, &older, NOW))
            .unwrap()
    );
    assert!(
        !store
            .write(|tx| a2.adopt_device_list(tx, &newer, NOW))
            .unwrap()
    );
    let stranger = Engine::new(
        {
            let root = RootKey::from_bytes(&[7; 32]);
            let device = DeviceKey::from_bytes(&[8; 32]);
            let certificate = root.certify_device(&device.public(), 1);
            Me::primary(root, device, certificate, None)
        },
        rhizo_e2e::RekeyPolicy::default(),
    )
    .unwrap();
    let mut other_store = Store::open(&tmp.path().join("s")).unwrap();
    let foreign = other_store
        .write(|tx| stranger.device_list(tx, NOW))
        .unwrap();
    assert!(
        !store
            .write(|tx| a2.adopt_device_list(tx, &foreign, NOW))
            .unwrap()
    );
    assert!(
        !store
            .write(|tx| a2.adopt_device_list(tx, b"junk", NOW))
            .unwrap()
    );

    // The adopted list is what a2 shows replicas, and its devices are a2's own devices.
    let shown = store.write(|tx| a2.device_list(tx, NOW)).unwrap();
    assert_eq!(shown, newer);
    let devices = a2.own_devices(&store.read()).unwrap();
    assert_eq!(devices.len(), 3, "{devices:?}");
    assert!(devices[0].this_device);
    assert_eq!(devices[0].certificate, cert);
    let others: Vec<_> = devices[1..]
        .iter()
        .map(|d| d.certificate.device())
        .collect();
    assert!(others.contains(&primary.me.device.public()));
    assert!(others.contains(&a3));
}

fn device(byte: u8) -> rhizo_store::messaging::ContactDevice {
    rhizo_store::messaging::ContactDevice {
        device_pk: [byte; 32],
        peer_id: String::new(),
        addrs: vec![],
        certificate: None,
    }
}

/// The key-change rule (docs/local-api.md "Key changes"): a known contact gaining a device key
/// not stored before is a key change; the same list again, or a list without a device, is not;
/// verifying clears the flag.
#[test]
fn a_contact_gaining_a_device_key_is_a_key_change_until_verified_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("db")).unwrap();
    let engine = engine();
    let bob = rhizo_core::Uid::from_bytes(&[9; 32]);
    let learn = |store: &mut Store, devices: Vec<_>, at: i64| {
        store
            .write(|tx| engine.learn_listed_devices(tx, &bob, devices, at))
            .unwrap()
    };
    let flag = |store: &Store| store.read().contact_key_changed(&[9; 32]).unwrap();
    // Not a contact: nothing to warn about.
    assert_eq!(learn(&mut store, vec![device(20)], NOW), None);
    let contact = rhizo_store::messaging::Contact {
        uid: [9; 32],
        root_pk: [9; 32],
        name: "bob".into(),
        verified: true,
        added_at: NOW,
        devices: vec![device(20)],
    };
    store.write(|tx| tx.add_contact(&contact, NOW)).unwrap();
    assert!(!flag(&store), "a new contact is no key change");
    assert_eq!(learn(&mut store, vec![device(20)], NOW + 1), None);
    assert!(!flag(&store));
    // A second device: a key change.
    let both = vec![device(20), device(21)];
    assert_eq!(learn(&mut store, both.clone(), NOW + 2), Some("bob".into()));
    assert!(flag(&store));
    // The same list again is not a new change, and the flag stays.
    assert_eq!(learn(&mut store, both, NOW + 3), None);
    assert!(flag(&store));
    // Verifying again clears it; a list that drops a device (a revocation) adds no key.
    store
        .write(|tx| tx.set_contact_verified(&[9; 32], true))
        .unwrap();
    assert!(!flag(&store));
    assert_eq!(learn(&mut store, vec![device(21)], NOW + 4), None);
    assert!(!flag(&store));
    // Our own UID is never a contact's key change.
    let me = engine.me.uid;
    let ours = store
        .write(|tx| engine.learn_listed_devices(tx, &me, vec![device(22)], NOW + 5))
        .unwrap();
    assert_eq!(ours, None);
}
