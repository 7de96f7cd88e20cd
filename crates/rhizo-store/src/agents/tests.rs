use super::*;
use crate::{Store, StoreError};

fn new_task<'a>(id: u8, side: TaskSide, peer: u8, priority: u32) -> NewTaskRow<'a> {
    NewTaskRow {
        task_id: [id; 16],
        side,
        peer_uid: [peer; 32],
        context_id: "ctx",
        skill: Some("summarize"),
        priority,
        deadline: None,
        requirements: "[]",
        state: "submitted",
        reason: None,
        request: r#"{"message_id":"m","role":"user","parts":[{"text":"hi"}]}"#,
    }
}

#[test]
fn a_duplicate_task_inserts_nothing_and_client_ids_are_unique() {
    let mut store = Store::open_in_memory().expect("open");
    let first = store
        .write(|tx| tx.insert_task(&new_task(1, TaskSide::Worker, 9, 1), 10))
        .expect("insert");
    assert!(first.is_some());
    // The same envelope again (or a mailbox copy): nothing.
    let again = store
        .write(|tx| tx.insert_task(&new_task(1, TaskSide::Worker, 9, 1), 11))
        .expect("insert");
    assert_eq!(again, None);
    // Another client may pick the same id on the worker side.
    assert!(
        store
            .write(|tx| tx.insert_task(&new_task(1, TaskSide::Worker, 8, 1), 12))
            .expect("insert")
            .is_some()
    );
    // Our own ids are unique whoever they went to.
    assert!(
        store
            .write(|tx| tx.insert_task(&new_task(2, TaskSide::Client, 9, 1), 12))
            .expect("insert")
            .is_some()
    );
    assert_eq!(
        store
            .write(|tx| tx.insert_task(&new_task(2, TaskSide::Client, 8, 1), 12))
            .expect("insert"),
        None
    );
    let r = store.read();
    let row = r
        .task_with_peer(TaskSide::Worker, &[9; 32], &[1; 16])
        .expect("read")
        .expect("stored");
    assert_eq!(row.state, "submitted");
    assert_eq!(row.created_at, 10);
    assert_eq!(r.task_events(row.id).expect("events").len(), 1);
    assert_eq!(
        r.task_by_id(&[2; 16], TaskSide::Client)
            .expect("read")
            .map(|t| t.peer_uid),
        Some([9; 32])
    );
}

#[test]
fn the_queue_serves_priority_then_arrival_and_counts_for_the_bound() {
    let mut store = Store::open_in_memory().expect("open");
    for (id, priority) in [(1, 1), (2, 3), (3, 1), (4, 0), (5, 3)] {
        store
            .write(|tx| tx.insert_task(&new_task(id, TaskSide::Worker, 9, priority), 10))
            .expect("insert");
    }
    let order: Vec<u8> = store
        .read()
        .task_queue(&["submitted"], 10)
        .expect("queue")
        .iter()
        .map(|t| t.task_id[0])
        .collect();
    assert_eq!(order, [2, 5, 1, 3, 4]);
    assert_eq!(
        store
            .read()
            .count_tasks(TaskSide::Worker, "submitted")
            .expect("count"),
        5
    );
    let top = store
        .read()
        .task_with_peer(TaskSide::Worker, &[9; 32], &[2; 16])
        .expect("read")
        .expect("stored");
    store
        .write(|tx| {
            tx.change_task(
                top.id,
                &TaskChange {
                    state: "working",
                    seq: Some(1),
                    message: None,
                    reason: None,
                },
                20,
            )
        })
        .expect("change");
    assert_eq!(
        store
            .read()
            .count_tasks(TaskSide::Worker, "submitted")
            .expect("count"),
        4
    );
}

#[test]
fn changes_history_messages_and_artifacts_are_kept_in_order() {
    let mut store = Store::open_in_memory().expect("open");
    let id = store
        .write(|tx| tx.insert_task(&new_task(1, TaskSide::Client, 9, 1), 10))
        .expect("insert")
        .expect("new");
    store
        .write(|tx| {
            tx.change_task(
                id,
                &TaskChange {
                    state: "working",
                    seq: Some(1),
                    message: Some("{\"m\":1}"),
                    reason: None,
                },
                11,
            )?;
            tx.add_task_message(id, "{\"m\":2}", 12)?;
            tx.put_task_artifact(id, "a1", "{\"v\":1}", 13)?;
            tx.put_task_artifact(id, "a2", "{\"v\":2}", 13)?;
            tx.put_task_artifact(id, "a1", "{\"v\":3}", 14)?;
            tx.change_task(
                id,
                &TaskChange {
                    state: "failed",
                    seq: None,
                    message: None,
                    reason: Some("deadline passed"),
                },
                15,
            )
        })
        .expect("changes");
    let r = store.read();
    let row = r.task(id).expect("read").expect("there");
    assert_eq!(
        (row.state.as_str(), row.last_seq, row.updated_at),
        ("failed", 1, 15)
    );
    assert!(!row.is_live());
    let events = r.task_events(id).expect("events");
    let states: Vec<(&str, u64)> = events.iter().map(|e| (e.state.as_str(), e.seq)).collect();
    assert_eq!(states, [("submitted", 0), ("working", 1), ("failed", 1)]);
    assert_eq!(events[2].reason.as_deref(), Some("deadline passed"));
    assert_eq!(
        r.task_messages(id).expect("messages"),
        ["{\"m\":1}", "{\"m\":2}"]
    );
    assert_eq!(
        r.task_artifacts(id).expect("artifacts"),
        ["{\"v\":3}", "{\"v\":2}"]
    );
}

#[test]
fn deadlines_listing_filters_and_the_agent_outbox() {
    let mut store = Store::open_in_memory().expect("open");
    let mut t = new_task(1, TaskSide::Client, 9, 1);
    t.deadline = Some(500);
    store.write(|tx| tx.insert_task(&t, 10)).expect("insert");
    let mut t = new_task(2, TaskSide::Worker, 8, 1);
    t.deadline = Some(300);
    t.state = "rejected";
    t.context_id = "other";
    store.write(|tx| tx.insert_task(&t, 11)).expect("insert");
    let r = store.read();
    // The rejected one is over: its deadline does not count.
    assert_eq!(r.next_task_deadline().expect("deadline"), Some(500));
    assert!(r.tasks_past_deadline(499, 10).expect("past").is_empty());
    assert_eq!(r.tasks_past_deadline(500, 10).expect("past").len(), 1);
    let all = r
        .tasks(&TaskQuery {
            limit: 10,
            ..TaskQuery::default()
        })
        .expect("list");
    assert_eq!(all.iter().map(|t| t.task_id[0]).collect::<Vec<_>>(), [2, 1]);
    let some = r
        .tasks(&TaskQuery {
            side: Some(TaskSide::Worker),
            states: vec!["rejected".into(), "failed".into()],
            peer_uid: Some([8; 32]),
            context_id: Some("other".into()),
            limit: 10,
        })
        .expect("list");
    assert_eq!(some.len(), 1);
    assert!(
        r.tasks(&TaskQuery {
            side: Some(TaskSide::Client),
            states: vec!["rejected".into()],
            limit: 10,
            ..TaskQuery::default()
        })
        .expect("list")
        .is_empty()
    );

    assert!(
        store
            .write(|tx| tx.push_agent_outbox(&[9; 32], b"msg", "{}", 1))
            .expect("push")
    );
    let queued = store.read().agent_outbox(10).expect("outbox");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].message, b"msg");
    store
        .write(|tx| tx.remove_agent_outbox(queued[0].id))
        .expect("remove");
    assert_eq!(store.read().agent_outbox_len().expect("len"), 0);
}

#[test]
fn history_messages_artifacts_and_old_tasks_are_bounded() {
    let mut store = Store::open_in_memory().expect("open");
    let id = store
        .write(|tx| tx.insert_task(&new_task(1, TaskSide::Client, 9, 1), 10))
        .expect("insert")
        .expect("new");
    store
        .write(|tx| {
            for i in 0..(MAX_TASK_EVENTS + 10) {
                let message = format!("{{\"m\":{i}}}");
                tx.change_task(
                    id,
                    &TaskChange {
                        state: "working",
                        seq: Some(i as u64 + 1),
                        message: Some(&message),
                        reason: None,
                    },
                    11,
                )?;
                tx.put_task_artifact(id, &format!("a{i}"), "{}", 11)?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("changes");
    let r = store.read();
    let events = r.task_events(id).expect("events");
    assert_eq!(events.len(), MAX_TASK_EVENTS);
    assert_eq!(events[0].state, "submitted", "the first entry stays");
    assert_eq!(
        events.last().map(|e| e.seq),
        Some(MAX_TASK_EVENTS as u64 + 10)
    );
    let messages = r.task_messages(id).expect("messages");
    assert_eq!(messages.len(), MAX_TASK_MESSAGES);
    assert_eq!(
        messages.last().map(String::as_str),
        Some(format!("{{\"m\":{}}}", MAX_TASK_EVENTS + 9).as_str())
    );
    assert_eq!(
        r.task_artifacts(id).expect("artifacts").len(),
        MAX_TASK_ARTIFACTS
    );

    // Old tasks that are over go first; live ones stay.
    let mut store = Store::open_in_memory().expect("open");
    for i in 0..6u8 {
        let mut t = new_task(i, TaskSide::Worker, 9, 1);
        t.state = if i % 2 == 0 { "rejected" } else { "submitted" };
        store
            .write(|tx| tx.insert_task(&t, i64::from(i)))
            .expect("insert");
    }
    assert_eq!(store.write(|tx| tx.prune_tasks(4)).expect("prune"), 2);
    assert_eq!(store.write(|tx| tx.prune_tasks(4)).expect("prune"), 0);
    let left: Vec<u8> = store
        .read()
        .tasks(&TaskQuery {
            limit: 10,
            ..TaskQuery::default()
        })
        .expect("list")
        .iter()
        .map(|t| t.task_id[0])
        .collect();
    assert_eq!(left, [5, 4, 3, 1]);
    // Their history went with them.
    let orphans: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM task_events WHERE task NOT IN (SELECT id FROM tasks)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(orphans, 0);
}

#[test]
fn task_statements_are_not_prepared_again_on_each_run() {
    let mut store = Store::open_in_memory().expect("open");
    let id = store
        .write(|tx| tx.insert_task(&new_task(1, TaskSide::Client, 9, 1), 10))
        .expect("insert")
        .expect("new");
    for i in 1..=5u64 {
        let message = format!("{{\"m\":{i}}}");
        store
            .write(|tx| {
                tx.change_task(
                    id,
                    &TaskChange {
                        state: "working",
                        seq: Some(i),
                        message: Some(&message),
                        reason: None,
                    },
                    10 + i as i64,
                )?;
                tx.put_task_artifact(id, &format!("a{i}"), "{}", 10)?;
                tx.task_queue(&["submitted"], i as usize)
            })
            .expect("change");
    }
    // Statements with a bound `LIMIT`/`OFFSET` (the history bounds, the queue): SQLite would
    // mark them expired on every new binding without the query planner stability guarantee.
    let queue = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE side = 'worker' AND state IN ({})
             ORDER BY priority DESC, id LIMIT ?1",
        placeholders(2, 1)
    );
    let sqls = [
        queue.as_str(),
        "DELETE FROM task_events WHERE task = ?1
                   AND id > (SELECT min(id) FROM task_events WHERE task = ?1)
                   AND id < (SELECT id FROM task_events WHERE task = ?1
                             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        "DELETE FROM task_messages WHERE task = ?1
           AND id <= (SELECT id FROM task_messages WHERE task = ?1
                      ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    ];
    for sql in sqls {
        let stmt = store.conn.prepare_cached(sql).expect("cached");
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "{sql}"
        );
    }
    assert_eq!(store.read().task_events(id).expect("events").len(), 6);
}

#[test]
fn more_tasks_than_counts_only_past_the_span() {
    let mut store = Store::open_in_memory().expect("open");
    assert!(!store.read().more_tasks_than(0).expect("empty"));
    for i in 0..6u8 {
        store
            .write(|tx| tx.insert_task(&new_task(i, TaskSide::Worker, 9, 1), 10))
            .expect("insert");
    }
    let r = store.read();
    assert!(r.more_tasks_than(5).expect("count"));
    assert!(!r.more_tasks_than(6).expect("count"));
    // Gaps in the ids: the span (6) is over 4, the count (4) is not.
    store
        .conn
        .execute(
            "DELETE FROM tasks WHERE task_id IN (?1, ?2)",
            [[1u8; 16], [2u8; 16]],
        )
        .expect("delete");
    let r = store.read();
    assert!(!r.more_tasks_than(4).expect("count"));
    assert!(r.more_tasks_than(3).expect("count"));
}
