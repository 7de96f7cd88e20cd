//! Opening real database files: creation, permissions, re-opening, old and
//! foreign files.

use std::path::Path;

use rhizo_store::{PeerSource, SCHEMA_VERSION, Store, StoreError};
use rusqlite::Connection;

fn journal_mode(path: &Path) -> String {
    Connection::open(path)
        .expect("raw open")
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal_mode")
}

#[test]
fn open_creates_a_private_wal_database_and_reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");

    {
        let mut store = Store::open(&path).expect("open new");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        store
            .write(|tx| tx.set_meta("identity", "alice"))
            .expect("set");
        store
            .write(|tx| {
                tx.upsert_peer(
                    "A",
                    &["/ip4/127.0.0.1/tcp/1".to_owned()],
                    PeerSource::Manual,
                    10,
                )
            })
            .expect("upsert");
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    assert_eq!(journal_mode(&path), "wal");

    let store = Store::open(&path).expect("reopen");
    assert_eq!(
        store.read().get_meta("identity").expect("get").as_deref(),
        Some("alice")
    );
    let peers = store.read().list_peers().expect("list");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].addrs, ["/ip4/127.0.0.1/tcp/1"]);
}

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    {
        // Schema version 1 exactly as it shipped, written without rhizo-store.
        let conn = Connection::open(&path).expect("raw open");
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
             INSERT INTO meta (key, value) VALUES ('identity', 'alice');
             PRAGMA user_version = 1;",
        )
        .expect("build v1");
    }

    let mut store = Store::open(&path).expect("open old");
    assert_eq!(
        store.read().schema_version().expect("version"),
        SCHEMA_VERSION
    );
    assert_eq!(
        store.read().get_meta("identity").expect("get").as_deref(),
        Some("alice")
    );

    // The peer book, new in version 2, works.
    store
        .write(|tx| {
            tx.upsert_peer(
                "A",
                &["/ip4/10.0.0.1/tcp/4001".to_owned()],
                PeerSource::Bootstrap,
                100,
            )
        })
        .expect("upsert");
    assert_eq!(
        store
            .write(|tx| tx.record_dial_failure("A", 101))
            .expect("failure"),
        1
    );
    let dial = store.read().peers_for_dial(8).expect("dial");
    assert_eq!(dial.len(), 1);
    assert_eq!(dial[0].source, PeerSource::Bootstrap);
    drop(store);

    assert_eq!(journal_mode(&path), "wal");
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.read().peer_count().expect("count"), 1);
}

#[test]
fn a_database_from_a_newer_rhizo_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    Connection::open(&path)
        .expect("raw open")
        .execute_batch("PRAGMA user_version = 999;")
        .expect("set version");

    let err = Store::open(&path).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, known } if known == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version 999 is newer than this rhizo (knows {SCHEMA_VERSION}): upgrade rhizo"
        )
    );
    // Nothing was changed.
    let version: i64 = Connection::open(&path)
        .expect("raw open")
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, 999);
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [
        ("short.db", b"definitely not sqlite".to_vec()),
        ("long.db", (0..8192u32).map(|i| (i * 7 + 3) as u8).collect()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).expect("write garbage");

        let err = Store::open(&path).expect_err("must refuse");
        assert!(
            matches!(err, StoreError::NotADatabase { .. }),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(name), "{message}");
        assert!(
            message.ends_with(
                "is not a rhizo database or is corrupt: move it away to start fresh, or restore a backup"
            ),
            "{message}"
        );
        // The file is left alone.
        assert_eq!(std::fs::read(&path).expect("read back"), bytes);
    }
}

#[test]
fn a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("rhizo.db");
    let err = Store::open(&path).expect_err("must fail");
    assert!(matches!(err, StoreError::CreateFile { .. }), "{err:?}");
}
