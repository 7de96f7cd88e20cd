use std::sync::mpsc as std_mpsc;

use super::*;

fn open(dir: &tempfile::TempDir, config: DbConfig) -> Db {
    let store = Store::open(&dir.path().join("rhizo.db")).expect("open");
    Db::start(store, config).expect("start")
}

fn set(key: String, value: &'static str) -> impl FnOnce(&mut Tx<'_>) -> Result<(), DbError> {
    move |tx| Ok(tx.set_meta(&key, value)?)
}

/// Queues a job that holds the writer until the returned sender is used (or dropped), and
/// waits until the writer is inside it: what is queued next waits for one group.
fn hold_writer(db: &Db) -> (std_mpsc::SyncSender<()>, Pending<(), DbError>) {
    let (started_tx, started_rx) = std_mpsc::sync_channel(1);
    let (release_tx, release_rx) = std_mpsc::sync_channel::<()>(1);
    let pending = db
        .try_write(Durability::Full, move |tx| {
            tx.set_meta("held", "yes")?;
            started_tx.send(()).expect("test alive");
            let _ = release_rx.recv();
            Ok(())
        })
        .expect("queued");
    started_rx.recv().expect("the writer runs the job");
    (release_tx, pending)
}

/// A separate connection to the same file: sees only what was committed.
fn committed(dir: &tempfile::TempDir, key: &str) -> Option<String> {
    let other = Store::open(&dir.path().join("rhizo.db")).expect("open");
    other.read().get_meta(key).expect("read")
}

#[tokio::test]
async fn many_jobs_share_few_commits_and_each_is_answered_after_its_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    let (release, held) = hold_writer(&db);
    let queued: Vec<_> = (0..100)
        .map(|i| {
            db.try_write(Durability::Full, set(format!("k{i}"), "v"))
                .expect("room in the queue")
        })
        .collect();
    release.send(()).expect("writer alive");
    held.await.expect("held job");
    for (i, pending) in queued.into_iter().enumerate() {
        pending.await.expect("job");
        assert_eq!(
            committed(&dir, &format!("k{i}")).as_deref(),
            Some("v"),
            "answered only once committed"
        );
    }
    let stats = db.stats();
    assert_eq!(stats.jobs, 101);
    // The held job alone, then 100 jobs in groups of at most DEFAULT_GROUP (64): 2 commits.
    assert_eq!(stats.commits, 3, "{stats:?}");
}

#[tokio::test]
async fn a_failing_job_rolls_back_only_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    let (release, held) = hold_writer(&db);
    let a = db
        .try_write(Durability::Full, set("a".into(), "1"))
        .expect("queued");
    let b = db
        .try_write(Durability::Full, |tx: &mut Tx<'_>| -> Result<(), DbError> {
            tx.set_meta("b", "1")?;
            Err(DbError::Store(StoreError::InvalidInput("refused".into())))
        })
        .expect("queued");
    let panics = db
        .try_write(
            Durability::Relaxed,
            |tx: &mut Tx<'_>| -> Result<(), DbError> {
                tx.set_meta("p", "1")?;
                panic!("a bug in a job");
            },
        )
        .expect("queued");
    let c = db
        .try_write(Durability::Relaxed, set("c".into(), "1"))
        .expect("queued");
    release.send(()).expect("writer alive");
    held.await.expect("held job");
    a.await.expect("a");
    assert!(matches!(
        b.await,
        Err(DbError::Store(StoreError::InvalidInput(_)))
    ));
    assert!(matches!(panics.await, Err(DbError::Panicked)));
    c.await.expect("c");
    assert_eq!(committed(&dir, "a").as_deref(), Some("1"));
    assert_eq!(
        committed(&dir, "b"),
        None,
        "the failed job's own row is gone"
    );
    assert_eq!(
        committed(&dir, "p"),
        None,
        "the panicked job's own row is gone"
    );
    assert_eq!(committed(&dir, "c").as_deref(), Some("1"));
    assert_eq!(
        db.stats().commits,
        2,
        "one for the held job, one for the group"
    );
}

#[tokio::test]
async fn try_write_is_refused_when_the_queue_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(
        &dir,
        DbConfig {
            write_queue: 2,
            ..DbConfig::default()
        },
    );
    let (release, held) = hold_writer(&db);
    let first = db
        .try_write(Durability::Full, set("1".into(), "x"))
        .expect("room");
    let second = db
        .try_write(Durability::Full, set("2".into(), "x"))
        .expect("room");
    let refused = db.try_write(Durability::Full, set("3".into(), "x"));
    assert!(matches!(refused, Err(DbError::Busy)));
    assert_eq!(db.stats().busy, 1);
    release.send(()).expect("writer alive");
    held.await.expect("held");
    first.await.expect("first");
    second.await.expect("second");
    assert_eq!(committed(&dir, "3"), None, "a refused job never runs");
}

#[tokio::test]
async fn reads_see_committed_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    db.write(set("name".into(), "alice")).await.expect("write");
    let name = db
        .read(|r| -> Result<_, DbError> { Ok(r.get_meta("name")?) })
        .await
        .expect("read");
    assert_eq!(name.as_deref(), Some("alice"));
    // A reader connection cannot write.
    let refused = db
        .read(|r| -> Result<_, DbError> {
            Ok(r.conn.execute("DELETE FROM meta", []).context("deleting")?)
        })
        .await;
    assert!(refused.is_err(), "readers are read-only");

    // In memory there is no file for readers: reads run on the writer.
    let memory =
        Db::start(Store::open_in_memory().expect("open"), DbConfig::default()).expect("start");
    memory.write(set("k".into(), "v")).await.expect("write");
    let v = memory
        .read(|r| -> Result<_, DbError> { Ok(r.get_meta("k")?) })
        .await
        .expect("read");
    assert_eq!(v.as_deref(), Some("v"));
}

#[tokio::test]
async fn a_crash_mid_group_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    db.write(set("acked".into(), "1"))
        .await
        .expect("acknowledged");
    // The writer is now inside a transaction that wrote a row and has not committed. Copy the
    // files as they are at this instant, as a kill -9 would leave them.
    let (release, held) = hold_writer(&db);
    let crashed = tempfile::tempdir().expect("tempdir");
    for name in ["rhizo.db", "rhizo.db-wal"] {
        let from = dir.path().join(name);
        if from.exists() {
            std::fs::copy(&from, crashed.path().join(name)).expect("copy");
        }
    }
    let after_crash = Store::open(&crashed.path().join("rhizo.db")).expect("reopen");
    assert_eq!(
        after_crash
            .read()
            .get_meta("acked")
            .expect("read")
            .as_deref(),
        Some("1")
    );
    assert_eq!(after_crash.read().get_meta("held").expect("read"), None);
    release.send(()).expect("writer alive");
    held.await.expect("held");
}

#[tokio::test]
async fn a_closed_database_says_so() {
    // A handle whose writer and readers are gone, as after shutdown.
    let (writer, rx) = mpsc::channel::<Job>(1);
    drop(rx);
    let closed = Db {
        writer,
        readers: None,
        counters: Arc::default(),
    };
    assert!(matches!(
        closed.write(set("k".into(), "v")).await,
        Err(DbError::Closed)
    ));
    assert!(matches!(
        closed.try_write(Durability::Full, set("k".into(), "v")),
        Err(DbError::Closed)
    ));
    assert!(matches!(
        closed
            .read(|r| -> Result<_, DbError> { Ok(r.get_meta("k")?) })
            .await,
        Err(DbError::Closed)
    ));
}

#[tokio::test]
async fn jobs_committed_together_share_a_group_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    let (release, held) = hold_writer(&db);
    let group = |tx: &mut Tx<'_>| Ok::<_, DbError>(tx.group());
    let queued: Vec<_> = (0..3)
        .map(|_| db.try_write(Durability::Full, group).expect("queued"))
        .collect();
    release.send(()).expect("writer alive");
    held.await.expect("held");
    let mut groups = Vec::new();
    for pending in queued {
        groups.push(pending.await.expect("job"));
    }
    assert_eq!(
        groups,
        [2, 2, 2],
        "the held job was group 1; the three went together"
    );
    let next = db.write(group).await.expect("job");
    assert_eq!(next, 3);
}

/// `after_commit` hooks learn each job's fate before the writer starts its next transaction:
/// `true` for a kept job of a committed group, `false` for a job rolled back to its savepoint.
#[tokio::test]
async fn after_commit_hooks_learn_each_jobs_fate_before_the_next_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    let fates = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = |name: &'static str| {
        let fates = Arc::clone(&fates);
        move |committed: bool| fates.lock().expect("fates").push((name, committed))
    };
    let (release, held) = hold_writer(&db);
    let kept = db
        .try_write(Durability::Full, {
            let hook = hook("kept");
            move |tx: &mut Tx<'_>| -> Result<(), DbError> {
                tx.after_commit(hook);
                Ok(tx.set_meta("kept", "1")?)
            }
        })
        .expect("queued");
    let failed = db
        .try_write(Durability::Full, {
            let hook = hook("failed");
            move |tx: &mut Tx<'_>| -> Result<(), DbError> {
                tx.after_commit(hook);
                Err(DbError::Store(StoreError::InvalidInput("refused".into())))
            }
        })
        .expect("queued");
    // The next group's job sees every hook of the previous group already run.
    let seen_by_next = db
        .try_write(Durability::Full, {
            let fates = Arc::clone(&fates);
            move |_: &mut Tx<'_>| -> Result<usize, DbError> {
                Ok(fates.lock().expect("fates").len())
            }
        })
        .expect("queued");
    release.send(()).expect("writer alive");
    held.await.expect("held job");
    kept.await.expect("kept");
    assert!(failed.await.is_err());
    let mut got = fates.lock().expect("fates").clone();
    got.sort_unstable();
    assert_eq!(got, vec![("failed", false), ("kept", true)]);
    let seen = seen_by_next.await.expect("next");
    assert!(
        seen == 0 || seen == 2,
        "a later job ran while hooks of its own group were pending: {seen}"
    );
    // Outside a Db: hooks run after Store::write commits or rolls back.
    let mut store = Store::open(&dir.path().join("other.db")).expect("open");
    let (h1, h2) = (hook("store-ok"), hook("store-err"));
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.after_commit(h1);
            Ok(())
        })
        .expect("commits");
    let _ = store.write(|tx| -> Result<(), StoreError> {
        tx.after_commit(h2);
        Err(StoreError::InvalidInput("no".into()))
    });
    let got = fates.lock().expect("fates").clone();
    assert!(got.contains(&("store-ok", true)) && got.contains(&("store-err", false)));
}

#[tokio::test]
async fn a_job_may_ask_for_a_checkpoint_once_its_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir, DbConfig::default());
    let wal = dir.path().join("rhizo.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // A job that fails takes its request with it.
    db.write(|tx| -> Result<(), DbError> {
        tx.set_meta("a", "1")?;
        tx.checkpoint_after_commit();
        Err(StoreError::InvalidInput("refused".into()).into())
    })
    .await
    .expect_err("the job fails");
    db.write(set("b".into(), "2")).await.expect("write");
    assert!(
        wal_len() > 0,
        "an ordinary commit leaves its pages in the log"
    );
    db.write(|tx| -> Result<(), DbError> {
        tx.set_meta("c", "3")?;
        tx.checkpoint_after_commit();
        Ok(())
    })
    .await
    .expect("write");
    assert_eq!(
        wal_len(),
        0,
        "the log is emptied before the job is answered"
    );
    assert_eq!(committed(&dir, "c").as_deref(), Some("3"));
    assert_eq!(committed(&dir, "a"), None);
}
