use std::path::Path;

use super::migrate::Step;
use super::*;
use crate::data_dir::{DataDir, InitOutcome};

/// Small Argon2id costs: the tests check the format and the steps, not the cost.
const FAST: KdfParams = KdfParams {
    m_kib: 256,
    t: 1,
    p: 1,
};

const CONTACT_NAME: &str = "Zanzibar-Quokka-Contact";
const MESSAGE_TEXT: &str = "meet me by the old lighthouse at nine";

fn pass(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned()).expect("passphrase")
}

/// A plaintext data dir with an identity and a database holding a contact name and a text.
fn plaintext_dir(root: &Path) -> (DataDir, [u8; 32], [u8; 32]) {
    let dir = DataDir::new(root.join("data"));
    let InitOutcome::Created(identity) = dir.init(1_700_000_000).expect("init") else {
        panic!("a new identity");
    };
    let mut store = dir.open_store().expect("store");
    store.migrate_mls().expect("mls tables");
    store
        .write(|tx| {
            tx.set_meta("test.contact", CONTACT_NAME)?;
            tx.set_meta("test.message", MESSAGE_TEXT)
        })
        .expect("write");
    drop(store);
    (dir, *identity.root.to_bytes(), *identity.device.to_bytes())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of the database (with its side files) and of the key files.
fn stored_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in [
        "rhizo.db",
        "rhizo.db-wal",
        "root.key",
        "device.key",
        "vault",
    ] {
        all.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    all
}

fn assert_contents(dir: &DataDir) {
    let store = dir.open_store().expect("open");
    assert_eq!(
        store
            .read()
            .get_meta("test.contact")
            .expect("read")
            .as_deref(),
        Some(CONTACT_NAME)
    );
    assert_eq!(
        store
            .read()
            .get_meta("test.message")
            .expect("read")
            .as_deref(),
        Some(MESSAGE_TEXT)
    );
}

#[test]
fn the_vault_file_opens_with_its_passphrase_only() {
    let key = VaultKey::generate().expect("key");
    let bytes = encode_vault(&key, &pass("correct horse"), FAST).expect("encode");
    assert_eq!(bytes.len(), VAULT_FILE_BYTES);
    let opened = decode_vault(&bytes, &pass("correct horse")).expect("decode");
    assert_eq!(*opened.0, *key.0);
    assert!(matches!(
        decode_vault(&bytes, &pass("battery staple")),
        Err(VaultError::WrongPassphrase)
    ));
    // Parameters are checked before any derivation: a 4 TiB memory cost is refused at once.
    let mut hostile = bytes.clone();
    hostile[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_vault(&hostile, &pass("correct horse")),
        Err(VaultError::Damaged(_))
    ));
    assert!(matches!(
        decode_vault(&bytes[..40], &pass("correct horse")),
        Err(VaultError::Damaged(_))
    ));
}

#[test]
fn a_sealed_file_opens_under_its_own_name_only() {
    let key = VaultKey::generate().expect("key");
    let sealed = key.seal_file("root.key", &[7; 32]).expect("seal");
    assert_eq!(sealed.len(), 32 + SEALED_FILE_OVERHEAD);
    assert_eq!(
        &key.open_file("root.key", &sealed).expect("open")[..],
        &[7; 32]
    );
    assert!(key.open_file("device.key", &sealed).is_err());
    let other = VaultKey::generate().expect("key");
    assert!(other.open_file("root.key", &sealed).is_err());
}

#[test]
fn passphrase_text_is_checked() {
    assert!(Passphrase::new(String::new()).is_err());
    assert!(Passphrase::new("\n".into()).is_err());
    assert!(Passphrase::new("x".repeat(MAX_PASSPHRASE_BYTES + 1)).is_err());
    assert_eq!(pass("secret\n").as_bytes(), b"secret");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("pass");
    std::fs::write(&file, "from a file\n").expect("write");
    assert_eq!(
        Passphrase::from_file(&file).expect("read").as_bytes(),
        b"from a file"
    );
}

#[test]
fn an_encrypted_data_dir_holds_no_name_text_or_key_in_the_clear() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, root_key, device_key) = plaintext_dir(tmp.path());
    let before = stored_bytes(dir.path());
    assert!(
        contains(&before, CONTACT_NAME.as_bytes()),
        "the scan sees plaintext"
    );
    assert!(contains(&before, &root_key));
    let unlocked = dir
        .set_passphrase(&pass("long passphrase"), FAST)
        .expect("encrypt");
    assert!(unlocked.is_encrypted());
    let after = stored_bytes(dir.path());
    for needle in [
        CONTACT_NAME.as_bytes(),
        MESSAGE_TEXT.as_bytes(),
        &root_key,
        &device_key,
    ] {
        assert!(
            !contains(&after, needle),
            "found in the clear after encryption"
        );
    }
    assert!(!contains(&after, b"SQLite format 3"));
    // Without the passphrase nothing opens; with it everything is as it was.
    let locked = DataDir::new(dir.path());
    assert!(locked.load().is_err());
    assert!(locked.open_store().is_err());
    let opened = DataDir::new(dir.path())
        .unlock(&pass("long passphrase"))
        .expect("unlock");
    assert_eq!(*opened.load().expect("identity").root.to_bytes(), root_key);
    assert_contents(&opened);
}

#[test]
fn a_wrong_passphrase_fails_clearly_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, _, _) = plaintext_dir(tmp.path());
    dir.set_passphrase(&pass("right one"), FAST)
        .expect("encrypt");
    let before = stored_bytes(dir.path());
    let err = DataDir::new(dir.path())
        .unlock(&pass("wrong one"))
        .expect_err("wrong passphrase");
    assert!(matches!(err, VaultError::WrongPassphrase));
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert_eq!(stored_bytes(dir.path()), before);
    assert_contents(
        &DataDir::new(dir.path())
            .unlock(&pass("right one"))
            .expect("unlock"),
    );
}

#[test]
fn a_passphrase_change_rekeys_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, root_key, _) = plaintext_dir(tmp.path());
    let first = dir.set_passphrase(&pass("first"), FAST).expect("encrypt");
    let db_before = std::fs::read(dir.database()).expect("db");
    let second = first.set_passphrase(&pass("second"), FAST).expect("change");
    assert_ne!(std::fs::read(dir.database()).expect("db"), db_before);
    assert!(matches!(
        DataDir::new(dir.path()).unlock(&pass("first")),
        Err(VaultError::WrongPassphrase)
    ));
    assert_eq!(*second.load().expect("identity").root.to_bytes(), root_key);
    assert_contents(
        &DataDir::new(dir.path())
            .unlock(&pass("second"))
            .expect("unlock"),
    );
    // A data dir that is encrypted but not unlocked cannot be migrated.
    assert!(matches!(
        DataDir::new(dir.path()).set_passphrase(&pass("third"), FAST),
        Err(VaultError::NoPassphrase)
    ));
}

#[test]
fn an_interrupted_migration_loses_nothing_and_can_run_again() {
    for step in Step::ALL {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, root_key, _) = plaintext_dir(tmp.path());
        let err = dir
            .migrate(&pass("new"), FAST, Some(step))
            .expect_err("injected");
        assert!(matches!(err, VaultError::Injected(_)), "{err}");
        // The next unlock undoes it (before the commit) or finishes it (after).
        let reopened = DataDir::new(dir.path())
            .unlock(&pass("new"))
            .expect("recover");
        assert_eq!(reopened.is_encrypted(), step == Step::Committed, "{step:?}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".next"))
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
        assert_eq!(
            *reopened.load().expect("identity").root.to_bytes(),
            root_key
        );
        assert_contents(&reopened);
        // And the migration (or a change) completes on a second run.
        let done = reopened.set_passphrase(&pass("new"), FAST).expect("again");
        assert!(done.is_encrypted());
        assert_contents(&done);
    }
}

#[test]
fn a_backup_restores_into_a_fresh_data_dir_plain_or_encrypted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, root_key, device_key) = plaintext_dir(tmp.path());
    let dir = dir.set_passphrase(&pass("store"), FAST).expect("encrypt");
    let archive = tmp.path().join("backup.rhz");
    backup::write_backup(&dir, &archive, &pass("backup pass"), FAST).expect("backup");
    let bytes = std::fs::read(&archive).expect("archive");
    for needle in [
        CONTACT_NAME.as_bytes(),
        MESSAGE_TEXT.as_bytes(),
        &root_key,
        &device_key,
    ] {
        assert!(!contains(&bytes, needle), "the backup holds plaintext");
    }
    // No temporary copy is left behind.
    assert!(
        std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .all(|e| !e.file_name().to_string_lossy().starts_with('.'))
    );
    assert!(
        backup::write_backup(&dir, &archive, &pass("x"), FAST).is_err(),
        "no overwrite"
    );

    let wrong = DataDir::new(tmp.path().join("wrong"));
    assert!(matches!(
        backup::restore_backup(&wrong, &archive, &pass("not it")),
        Err(VaultError::WrongPassphrase)
    ));
    assert!(!wrong.path().exists(), "a wrong passphrase writes nothing");

    let plain = DataDir::new(tmp.path().join("plain"));
    backup::restore_backup(&plain, &archive, &pass("backup pass")).expect("restore");
    assert!(!plain.is_encrypted());
    assert_eq!(*plain.load().expect("identity").root.to_bytes(), root_key);
    assert_contents(&plain);
    assert!(matches!(
        backup::restore_backup(&plain, &archive, &pass("backup pass")),
        Err(VaultError::NotFresh(_))
    ));

    let encrypted = DataDir::new(tmp.path().join("enc"))
        .create_vault(&pass("new store"), FAST)
        .expect("vault");
    backup::restore_backup(&encrypted, &archive, &pass("backup pass")).expect("restore");
    for needle in [CONTACT_NAME.as_bytes(), &root_key[..]] {
        assert!(!contains(&stored_bytes(encrypted.path()), needle));
    }
    let reopened = DataDir::new(encrypted.path())
        .unlock(&pass("new store"))
        .expect("unlock");
    assert_eq!(
        *reopened.load().expect("identity").device.to_bytes(),
        device_key
    );
    assert_contents(&reopened);
}
