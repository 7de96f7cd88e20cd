use std::time::Duration;

use rhizo_core::agent::{Priority, TaskMessage, TaskStatus};
use serde_json::json;

use super::*;

/// Bound on each command run in these tests (they end in milliseconds).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

async fn run(command: &str, input: &str) -> Outcome {
    let (_cancel_tx, cancel) = oneshot::channel();
    let (_stop_tx, stop) = watch::channel(false);
    tokio::time::timeout(
        RUN_TIMEOUT,
        run_command(
            command,
            &[("RHIZO_TASK_ID", "t1"), ("RHIZO_TASK_SKILL", "upper")],
            input.as_bytes().to_vec(),
            cancel,
            stop,
        ),
    )
    .await
    .expect("the command ended")
}

#[tokio::test]
async fn stdout_is_the_result_and_the_environment_names_the_task() {
    assert_eq!(
        run("tr a-z A-Z", "hello\n").await,
        Outcome::Completed(b"HELLO\n".to_vec())
    );
    assert_eq!(
        run("echo \"$RHIZO_TASK_ID $RHIZO_TASK_SKILL\"", "").await,
        Outcome::Completed(b"t1 upper\n".to_vec())
    );
}

#[tokio::test]
async fn a_failing_command_fails_with_its_last_stderr_line() {
    assert_eq!(
        run("echo first >&2; echo 'no such file' >&2; exit 3", "x").await,
        Outcome::Failed("no such file".into())
    );
    let Outcome::Failed(reason) = run("exit 4", "x").await else {
        panic!("not failed");
    };
    assert!(reason.contains("exit status: 4"), "{reason}");
}

#[tokio::test]
async fn output_over_the_limit_fails_clearly() {
    let Outcome::Failed(reason) = run("head -c 60000 /dev/zero; sleep 30", "").await else {
        panic!("not failed");
    };
    assert!(reason.contains("larger than 48 KiB"), "{reason}");
}

#[tokio::test]
async fn cancel_and_stop_kill_the_command() {
    let (cancel_tx, cancel) = oneshot::channel();
    let (_stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(run_command("sleep 30", &[], Vec::new(), cancel, stop));
    cancel_tx.send(()).unwrap();
    let outcome = tokio::time::timeout(RUN_TIMEOUT, running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Abandoned);

    let (_cancel_tx, cancel) = oneshot::channel();
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(run_command("sleep 30", &[], Vec::new(), cancel, stop));
    stop_tx.send(true).unwrap();
    let outcome = tokio::time::timeout(RUN_TIMEOUT, running)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Outcome::Failed(r) if r.contains("worker stopped")));
}

fn task_with(parts: Vec<Part>) -> Task {
    let status = TaskStatus {
        state: TaskState::Working,
        message: None,
        reason: None,
        timestamp: 1,
    };
    Task {
        id: "ab".repeat(16),
        context_id: "c".into(),
        side: Side::Worker,
        peer: "u".into(),
        peer_name: None,
        skill: Some("upper".into()),
        priority: Priority::Normal,
        deadline: None,
        requirements: Vec::new(),
        status: status.clone(),
        status_history: vec![status],
        history: vec![
            TaskMessage {
                message_id: "m1".into(),
                role: Role::User,
                parts,
            },
            TaskMessage::text("m2", Role::Agent, "not input"),
        ],
        artifacts: Vec::new(),
        created_at: 1,
        updated_at: 1,
        group: None,
        worker: None,
        mode: rhizo_core::agent::TaskMode::Any,
        workers: Vec::new(),
    }
}

#[test]
fn stdin_holds_text_parts_and_data_as_json_lines() {
    let task = task_with(vec![Part::text("hello"), Part::data(json!({"n": 1}))]);
    assert_eq!(task_input(&task), "hello\n{\"n\":1}\n");
}

#[test]
fn outcomes_become_updates() {
    let done = update_of(Outcome::Completed(b"HELLO\n".to_vec())).unwrap();
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(done.artifacts[0].parts[0].text.as_deref(), Some("HELLO"));
    assert!(done.validate().is_ok());
    let bytes = update_of(Outcome::Completed(vec![0xff, 0xfe])).unwrap();
    assert_eq!(bytes.artifacts[0].parts[0].raw.as_deref(), Some("//4="));
    let failed = update_of(Outcome::Failed("é".repeat(MAX_REASON_BYTES))).unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert!(failed.validate().is_ok());
    assert!(update_of(Outcome::Abandoned).is_none());
}

#[test]
fn serve_extends_the_present_card_or_makes_one() {
    let fresh = merged_card(None, None, &["upper:Upper".into()]).unwrap();
    assert_eq!(fresh.name, DEFAULT_NAME);
    assert_eq!(fresh.skills.len(), 1);
    let mut present = fresh.clone();
    present.description = "kept".into();
    let merged = merged_card(
        Some(present.clone()),
        Some("renamed"),
        &["upper".into(), "lower".into()],
    )
    .unwrap();
    assert_eq!(merged.name, "renamed");
    assert_eq!(merged.description, "kept");
    let ids: Vec<&str> = merged.skills.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["upper", "lower"]);
    // Nothing new: the same card (so nothing is posted).
    assert_eq!(
        merged_card(Some(present.clone()), None, &["upper".into()]).unwrap(),
        present
    );
    assert!(merged_card(None, None, &["Not An Id".into()]).is_err());
}
