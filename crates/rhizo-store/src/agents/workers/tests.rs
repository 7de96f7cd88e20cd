use super::*;
use crate::agents::{NewTaskRow, TaskSide};

fn store() -> (tempfile::TempDir, crate::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::Store::open(&dir.path().join("w.db")).unwrap();
    (dir, store)
}

fn client_task(tx: &mut Tx<'_>) -> i64 {
    tx.insert_task(
        &NewTaskRow {
            task_id: [1; 16],
            side: TaskSide::Client,
            peer_uid: [2; 32],
            context_id: "c",
            skill: None,
            priority: 1,
            deadline: None,
            requirements: "[]",
            state: "submitted",
            reason: None,
            request: "{}",
        },
        1,
    )
    .unwrap()
    .unwrap()
}

#[test]
fn workers_are_bounded_kept_apart_and_go_with_their_task() {
    let (_dir, mut store) = store();
    store
        .write(|tx| {
            let task = client_task(tx);
            assert!(!tx.is_all_mode_task(task)?);
            tx.mark_all_mode_task(task)?;
            assert!(tx.is_all_mode_task(task)?);
            for i in 0..MAX_TASK_WORKERS {
                let uid = [u8::try_from(i % 256).unwrap(); 32];
                let mut uid = uid;
                uid[0] = u8::try_from(i / 256).unwrap();
                assert!(tx.add_task_worker(task, &uid, &[9; 32], 2)?);
            }
            assert!(
                !tx.add_task_worker(task, &[0xee; 32], &[9; 32], 3)?,
                "bounded"
            );
            assert!(!tx.add_task_worker(task, &[0; 32], &[9; 32], 3)?, "once");
            let change = WorkerChange {
                state: "completed",
                seq: Some(2),
                message: None,
                reason: None,
                artifacts: Some("[1]"),
            };
            tx.change_task_worker(task, &[0; 32], &change, 4)?;
            let w = tx.task_worker(task, &[0; 32])?.unwrap();
            assert_eq!(
                (w.state.as_str(), w.last_seq, w.artifacts.as_str()),
                ("completed", 2, "[1]")
            );
            assert!(!w.is_live());
            assert_eq!(tx.task_workers(task)?.len(), MAX_TASK_WORKERS);
            assert_eq!(tx.live_task_workers(10)?.len(), 10);
            tx.conn.execute("DELETE FROM tasks", []).unwrap();
            assert!(tx.task_workers(task)?.is_empty(), "gone with the task");
            assert!(!tx.is_all_mode_task(task)?);
            Ok::<_, StoreError>(())
        })
        .unwrap();
}
