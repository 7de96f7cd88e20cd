use super::*;

fn key(byte: u8) -> DbKey {
    DbKey::from_bytes([byte; DB_KEY_BYTES])
}

/// Every byte of the database's files (the file and its write-ahead log).
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("db");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(std::path::PathBuf::from(wal)).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_encrypted_database_holds_nothing_in_the_clear_and_needs_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    {
        let mut store = Store::open_keyed(&path, Some(&key(7))).expect("open");
        assert!(store.is_encrypted());
        store
            .write(|tx| tx.set_meta("secret-name", "Zanzibar-Contact"))
            .expect("write");
        let reader = store.open_reader().expect("reader with the same key");
        assert_eq!(
            reader
                .read()
                .get_meta("secret-name")
                .expect("read")
                .as_deref(),
            Some("Zanzibar-Contact")
        );
    }
    let bytes = file_bytes(&path);
    assert!(!contains(&bytes, b"Zanzibar-Contact"));
    assert!(!contains(&bytes, b"SQLite format 3"));
    assert!(matches!(
        Store::open_keyed(&path, Some(&key(8))),
        Err(StoreError::NotADatabase { .. })
    ));
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NotADatabase { .. })
    ));
    // A wrong key changed nothing.
    let store = Store::open_keyed(&path, Some(&key(7))).expect("right key");
    assert_eq!(
        store
            .read()
            .get_meta("secret-name")
            .expect("read")
            .as_deref(),
        Some("Zanzibar-Contact")
    );
}

#[test]
fn export_copies_everything_under_another_key_or_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.db");
    let mut store = Store::open(&plain).expect("open");
    store.migrate_mls().expect("mls tables");
    store
        .write(|tx| tx.set_meta("k", "Plain-Value"))
        .expect("write");
    let encrypted = dir.path().join("enc.db");
    store.export_to(&encrypted, Some(&key(1))).expect("export");
    assert!(matches!(
        store.export_to(&encrypted, Some(&key(1))),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(!contains(&file_bytes(&encrypted), b"Plain-Value"));
    let copy = Store::open_keyed(&encrypted, Some(&key(1))).expect("open copy");
    assert_eq!(
        copy.read().schema_version().expect("version"),
        crate::SCHEMA_VERSION
    );
    assert_eq!(
        copy.read().get_meta("k").expect("read").as_deref(),
        Some("Plain-Value")
    );
    let back = dir.path().join("back.db");
    copy.export_to(&back, None).expect("export plain");
    let back = Store::open(&back).expect("plain again");
    assert_eq!(
        back.read().get_meta("k").expect("read").as_deref(),
        Some("Plain-Value")
    );
}
