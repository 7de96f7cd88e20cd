use std::os::unix::fs::PermissionsExt;

use rhizo_core::RootKey;

use super::*;
use crate::data_dir::InitOutcome;

#[test]
fn init_link_makes_only_a_device_key_and_link_completes_a_companion() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("new"));
    let InitLinkOutcome::Created(device) = dir.init_link().unwrap() else {
        panic!("expected a new device key");
    };
    assert!(!dir.root_key_file().exists());
    assert!(dir.is_initialised() && dir.is_pending_link());
    assert!(matches!(dir.load(), Err(DataDirError::PendingLink(_))));
    assert!(matches!(
        dir.load_device().unwrap(),
        DeviceIdentity::PendingLink(d) if d.public() == device.public()
    ));
    // A second init (either kind) changes nothing.
    assert!(matches!(
        dir.init_link().unwrap(),
        InitLinkOutcome::AlreadyInitialised(d) if matches!(*d, DeviceIdentity::PendingLink(_))
    ));
    assert!(dir.init(1).is_err());

    let secret = LinkSecret::from_bytes(&[5; 32]);
    dir.write_link_secret(&secret, 77).unwrap();
    let mode = fs::metadata(dir.link_secret_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let (read, at) = dir.read_link_secret().unwrap();
    assert_eq!((read.as_bytes(), at), (secret.as_bytes(), 77));

    let root = RootKey::from_bytes(&[1; 32]);
    let other = DeviceKey::from_bytes(&[2; 32]);
    let wrong = root.certify_device(&other.public(), 10);
    assert!(
        dir.complete_link(&device, &wrong).is_err(),
        "a certificate for another key"
    );
    let cert = root.certify_device(&device.public(), 10);
    let companion = dir.complete_link(&device, &cert).unwrap();
    assert_eq!(companion.certificate.root().uid(), root.public().uid());
    assert!(!dir.is_pending_link() && dir.read_link_secret().is_none());
    let loaded = dir.load_device().unwrap();
    assert_eq!(loaded.uid(), Some(root.public().uid()));
    assert!(matches!(loaded, DeviceIdentity::Companion(_)));
    // Root-only operations say where to run them.
    let err = dir.load().unwrap_err();
    assert!(matches!(err, DataDirError::NoRootKey { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&root.public().fingerprint().to_string()),
        "{err}"
    );
    // Linking again is refused: the device is no longer waiting.
    assert!(dir.complete_link(&device, &cert).is_err());
}

#[test]
fn a_recovered_identity_has_the_same_uid_and_a_new_device() {
    let tmp = tempfile::tempdir().unwrap();
    let first = DataDir::new(tmp.path().join("first"));
    let InitOutcome::Created(original) = first.init(1).unwrap() else {
        panic!("expected a new identity");
    };
    let phrase = original.root.to_phrase();
    let again = DataDir::new(tmp.path().join("again"));
    let root = RootKey::from_phrase(&phrase).unwrap();
    let InitOutcome::Created(recovered) = again.init_with_root(root, 2).unwrap() else {
        panic!("expected a recovered identity");
    };
    assert_eq!(recovered.uid(), original.uid());
    assert_ne!(recovered.device.public(), original.device.public());
}

#[test]
fn a_primary_loads_as_primary_and_a_damaged_companion_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let InitOutcome::Created(first) = dir.init(1).unwrap() else {
        panic!("expected a new identity");
    };
    assert!(matches!(
        dir.load_device().unwrap(),
        DeviceIdentity::Primary(_)
    ));
    assert!(matches!(
        dir.init_link().unwrap(),
        InitLinkOutcome::AlreadyInitialised(_)
    ));
    // Without its root key and with an identity.pub it is a companion.
    fs::remove_file(dir.root_key_file()).unwrap();
    fs::write(dir.identity_pub_file(), first.root_public().as_bytes()).unwrap();
    assert!(matches!(
        dir.load_device().unwrap(),
        DeviceIdentity::Companion(_)
    ));
    fs::write(dir.identity_pub_file(), b"short").unwrap();
    assert!(matches!(
        dir.load_device(),
        Err(DataDirError::Damaged { .. })
    ));
}
