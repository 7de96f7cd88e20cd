use super::*;
use crate::Store;

#[test]
fn a_healthy_database_is_ok_and_reports_its_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    let mut store = Store::open(&path).expect("open");
    store.write(|tx| tx.set_meta("k", "v")).expect("write");
    // Checked while the store is still open (a running node).
    let report = check_integrity(&path).expect("check");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.schema_version, crate::SCHEMA_VERSION);
}

#[test]
fn a_file_that_is_not_a_database_is_named_so_and_left_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    let garbage = vec![0x5a_u8; 8192];
    std::fs::write(&path, &garbage).expect("write");
    let err = check_integrity(&path).expect_err("garbage");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).expect("read"), garbage);
}

#[test]
fn damaged_pages_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    {
        let mut store = Store::open(&path).expect("open");
        store
            .write(|tx| {
                for i in 0..200 {
                    tx.set_meta(&format!("key-{i}"), &"x".repeat(200))?;
                }
                Ok::<(), StoreError>(())
            })
            .expect("write");
        store.checkpoint().expect("checkpoint");
    }
    // Overwrite every page but the first (the header and the schema stay readable).
    let mut bytes = std::fs::read(&path).expect("read");
    let page = 4096;
    for b in bytes.iter_mut().skip(page) {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).expect("write");
    match check_integrity(&path) {
        Ok(report) => assert!(!report.is_ok(), "{report:?}"),
        Err(err) => assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}"),
    }
}

#[test]
fn a_missing_file_is_an_open_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = check_integrity(&dir.path().join("nope.db")).expect_err("missing");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
}
