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
    let uid = root.public().uid();
    let me = Me {
        root,
        device,
        certificate,
        uid,
        name: None,
    };
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
    let cert = engine.certify_device(&new, NOW);
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
        let cert = engine.certify_device(&DeviceKey::from_bytes(&[seed; 32]).public(), NOW);
        store
            .write(|tx| engine.link_own_device(tx, cert, None, NOW))
            .unwrap();
    }
    assert_eq!(engine.own_devices(&store.read()).unwrap().len(), 16);
    let cert = engine.certify_device(&DeviceKey::from_bytes(&[99; 32]).public(), NOW);
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
