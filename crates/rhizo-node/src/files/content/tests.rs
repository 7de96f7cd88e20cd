use std::collections::HashSet;

use rhizo_core::file::{self, PLAIN_CHUNK_BYTES};

use super::*;

fn store(cap: u64) -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ContentStore::open(dir.path().join(FILES_DIR), cap).unwrap();
    (dir, s)
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

#[test]
fn an_imported_file_is_fetched_by_another_store_and_resumes_from_its_valid_chunks() {
    let (dir, sender) = store(1 << 30);
    let (_d2, receiver) = store(1 << 30);
    let len = 5 * PLAIN_CHUNK_BYTES + 77;
    let path = dir.path().join("in.bin");
    fs::write(&path, plain(len)).unwrap();
    let mut seen = 0;
    let imported = sender.import(&path, u64::MAX, |d| seen = d).unwrap();
    assert_eq!((imported.size, seen), (len as u64, len as u64));
    assert!(sender.has(&imported.hash));
    let enc = file::encrypted_size(imported.size);
    // The receiver fetches chunks 0..2, "crashes", and finds them valid on restart.
    assert_eq!(
        receiver.begin_fetch(&imported.hash, enc).unwrap(),
        [false; 6]
    );
    let mut wire = Vec::new();
    sender
        .encode_chunks(&imported.hash, (0, 2), &mut wire)
        .unwrap();
    receiver
        .write_chunks(&imported.hash, enc, (0, 2), &wire)
        .unwrap();
    assert!(matches!(
        receiver.finish_fetch(&imported.hash, enc),
        Err(ContentError::NotFound)
    ));
    let valid = receiver.begin_fetch(&imported.hash, enc).unwrap();
    assert_eq!(valid, [true, true, false, false, false, false]);
    // A member still fetching serves what it has, and nothing else.
    let mut partial = Vec::new();
    receiver
        .encode_chunks(&imported.hash, (1, 2), &mut partial)
        .unwrap();
    assert!(
        receiver
            .encode_chunks(&imported.hash, (2, 3), &mut Vec::new())
            .is_err()
    );
    let mut wire = Vec::new();
    sender
        .encode_chunks(&imported.hash, (2, 6), &mut wire)
        .unwrap();
    receiver
        .write_chunks(&imported.hash, enc, (2, 6), &wire)
        .unwrap();
    receiver.finish_fetch(&imported.hash, enc).unwrap();
    assert!(receiver.has(&imported.hash));
    let out = dir.path().join("out.bin");
    receiver
        .export(&imported.hash, &imported.key, imported.size, &out)
        .unwrap();
    assert_eq!(fs::read(&out).unwrap(), plain(len));
    // A range read crosses chunk borders.
    let mut got = Vec::new();
    let (a, b) = (
        PLAIN_CHUNK_BYTES as u64 - 5,
        2 * PLAIN_CHUNK_BYTES as u64 + 9,
    );
    receiver
        .read_plain(&imported.hash, &imported.key, imported.size, (a, b), |x| {
            got.extend_from_slice(x);
            Ok(())
        })
        .unwrap();
    assert_eq!(got, &plain(len)[a as usize..b as usize]);
    // The wrong key is a clear error.
    let err = receiver
        .export(
            &imported.hash,
            &FileKey::from_bytes([0; 32]),
            imported.size,
            &out,
        )
        .unwrap_err();
    assert!(err.to_string().contains("key is wrong"), "{err}");
}

#[test]
fn bounds_the_size_limit_the_cap_and_clean_up_hold() {
    let (dir, s) = store(200_000);
    let path = dir.path().join("big.bin");
    fs::write(&path, plain(300_000)).unwrap();
    assert!(matches!(
        s.import(&path, 1000, |_| {}),
        Err(ContentError::TooLarge {
            size: 300_000,
            max: 1000
        })
    ));
    assert!(matches!(
        s.import(&path, u64::MAX, |_| {}),
        Err(ContentError::CapReached { .. })
    ));
    fs::write(&path, plain(1000)).unwrap();
    let a = s.import(&path, u64::MAX, |_| {}).unwrap();
    let b = s.import(&path, u64::MAX, |_| {}).unwrap();
    assert_ne!(a.hash, b.hash, "a fresh key each time");
    assert!(s.used_bytes() > 2000);
    let keep: HashSet<_> = [a.hash].into_iter().collect();
    assert_eq!(s.remove_unreferenced(&keep), 2, "b's content and outboard");
    assert!(s.has(&a.hash) && !s.has(&b.hash));
    // Inline content is checked against its hash.
    let mut content = Vec::new();
    s.read_plain(&a.hash, &a.key, a.size, (0, 0), |_| Ok(()))
        .unwrap();
    let (data, _) = s.complete(&a.hash);
    content.extend(fs::read(data).unwrap());
    let (_d, other) = store(1 << 20);
    assert!(
        other.insert_whole(&b.hash, &content).is_err(),
        "not b's content"
    );
    other.insert_whole(&a.hash, &content).unwrap();
    assert!(other.has(&a.hash));
}

#[test]
fn chunks_fetched_for_a_reference_with_a_wrong_hash_are_a_clear_error_and_not_kept() {
    let (dir, sender) = store(1 << 30);
    let (_d2, receiver) = store(1 << 30);
    let path = dir.path().join("in.bin");
    fs::write(&path, plain(3 * PLAIN_CHUNK_BYTES)).unwrap();
    let imported = sender.import(&path, u64::MAX, |_| {}).unwrap();
    let enc = file::encrypted_size(imported.size);
    let mut wrong = imported.hash;
    wrong[0] ^= 1;
    let mut wire = Vec::new();
    sender
        .encode_chunks(&imported.hash, (0, 3), &mut wire)
        .unwrap();
    receiver.begin_fetch(&wrong, enc).unwrap();
    let err = receiver
        .write_chunks(&wrong, enc, (0, 3), &wire)
        .unwrap_err();
    assert!(
        matches!(err, ContentError::File(file::FileError::HashMismatch(_))),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not match the file's hash"),
        "{err}"
    );
    assert_eq!(receiver.begin_fetch(&wrong, enc).unwrap(), [false; 3]);
    // A holder asked for the wrong hash has nothing to serve.
    assert!(matches!(
        sender.encode_chunks(&wrong, (0, 1), &mut Vec::new()),
        Err(ContentError::NotFound)
    ));
}
