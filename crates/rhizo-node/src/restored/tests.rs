//! Run tokens: a restart is not a restore; a database copied back from before the last start
//! or stop is, and stays noted for the engine until each group had its fresh epoch.

use rhizo_store::Store;

use super::*;

const T0: i64 = 1_800_000_000_000;

fn noted(store: &Store) -> Option<String> {
    store
        .read()
        .get_meta(rhizo_engine::restored::META_FRESH_EPOCH_BEFORE)
        .unwrap()
}

/// Copies a database with its WAL (no write is under way), replacing `to`'s.
fn copy_db(from: &Path, to: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", to.display()));
        let source = format!("{}{ext}", from.display());
        if ext != "-shm" && Path::new(&source).exists() {
            std::fs::copy(&source, format!("{}{ext}", to.display())).unwrap();
        }
    }
}

#[test]
fn a_restart_is_no_restore_and_a_copy_from_before_the_last_start_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let db = dir.database();
    let backup = tmp.path().join("backup.db");
    {
        // A new database (or one from a build without tokens): not restored.
        let mut store = Store::open(&db).unwrap();
        assert!(!start_run(&mut store, &dir, T0).unwrap());
    }
    {
        // A plain restart: not restored. The backup is made during this run.
        let mut store = Store::open(&db).unwrap();
        assert!(!start_run(&mut store, &dir, T0 + 1_000).unwrap());
        copy_db(&db, &backup);
    }
    {
        // Another start after it (the node went on running): the backup is now older.
        let mut store = Store::open(&db).unwrap();
        assert!(!start_run(&mut store, &dir, T0 + 2_000).unwrap());
        assert_eq!(noted(&store), None);
    }
    copy_db(&backup, &db);
    let mut store = Store::open(&db).unwrap();
    assert!(start_run(&mut store, &dir, T0 + 3_600_000).unwrap());
    assert_eq!(noted(&store).as_deref(), Some("1800003600"));
    drop(store);
    // The next restart is no new restore; the note stays for the engine.
    let mut store = Store::open(&db).unwrap();
    assert!(!start_run(&mut store, &dir, T0 + 3_700_000).unwrap());
    assert_eq!(noted(&store).as_deref(), Some("1800003600"));
}

#[test]
fn a_database_whose_token_file_is_gone_counts_as_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut store = Store::open(&dir.database()).unwrap();
    assert!(!start_run(&mut store, &dir, T0).unwrap());
    std::fs::remove_file(tmp.path().join(RUN_TOKEN_FILE)).unwrap();
    assert!(start_run(&mut store, &dir, T0 + 1_000).unwrap());
}

#[tokio::test]
async fn a_copy_made_during_a_run_that_stopped_cleanly_is_found_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let db_path = dir.database();
    let backup = tmp.path().join("backup.db");
    let mut store = Store::open(&db_path).unwrap();
    assert!(!start_run(&mut store, &dir, T0).unwrap());
    copy_db(&db_path, &backup);
    let db = Db::start(store, rhizo_store::DbConfig::default()).unwrap();
    end_run(&db, &dir).await;
    drop(db);
    copy_db(&backup, &db_path);
    let mut store = Store::open(&db_path).unwrap();
    assert!(start_run(&mut store, &dir, T0 + 60_000).unwrap());
}
