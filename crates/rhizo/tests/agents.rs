//! Agent tasks end to end (issue 13), with real `rhizo` processes on 127.0.0.1: a client
//! delegates through `/v1/tasks`, a worker program (this test, through `/v1/agent/tasks`)
//! claims and completes; cancel; a full queue; a worker that is offline at delegation; a task
//! to a stranger's UID, held as a message request until the worker's user accepts it.
//!
//! ```text
//!  alice (client) ── task_delegate ──▶ bob (worker node) ◀── /v1/agent/tasks ── worker loop
//!        ◀── task_update{working, completed + artifact} ──
//!  test 2: hub, r1, r2 (mailbox replicas); bob offline ─▶ the task waits in his mailbox
//! ```
//!
//! The task logic (duplicates, deadlines, bad transitions, malformed messages) is covered by
//! the engine's two-engine tests; these check that the real processes carry it.

mod agent_common;

use std::{path::Path, time::Duration};

use agent_common::{delegate, states, wait_task};
use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for KeyPackages to be found, tasks and updates to arrive (normally seconds).
const TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: usize = 64 * 1024;
/// The worker's default queue bound (no card, no config).
const MAX_QUEUE: usize = 64;

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// Adds each node's ticket on the other (`a` as `a_name` on `b`, `b` as `b_name` on `a`).
fn befriend(a: &TestNode, a_name: &str, b: &TestNode, b_name: &str) -> anyhow::Result<()> {
    b.api_post(
        "/v1/contacts",
        &json!({"ticket": a.ticket()?, "name": a_name}),
    )?;
    a.api_post(
        "/v1/contacts",
        &json!({"ticket": b.ticket()?, "name": b_name}),
    )?;
    Ok(())
}

fn id_of(task: &Value) -> anyhow::Result<String> {
    Ok(task["id"].as_str().context("a task has no id")?.to_string())
}

/// The worker claims the next queued task, waiting (bounded) for one to arrive.
fn claim(worker: &TestNode) -> anyhow::Result<Value> {
    wait_for(TIMEOUT, "a task to claim", || {
        match worker.api_post_raw("/v1/agent/tasks/next", &json!({})) {
            Ok((200, answer)) => {
                Some(serde_json::from_str::<Value>(&answer).map_err(anyhow::Error::from))
            }
            Ok((204, _)) => None,
            Ok((status, answer)) => Some(Err(anyhow!("claim: {status} {answer}"))),
            Err(e) => Some(Err(e)),
        }
    })?
}

/// The worker completes task `id` with a text artifact.
fn complete(worker: &TestNode, id: &str, result: &str) -> anyhow::Result<Value> {
    worker.api_post(
        &format!("/v1/agent/tasks/{id}"),
        &json!({
            "state": "completed",
            "text": "done",
            "artifacts": [{"artifact_id": "result", "parts": [{"text": result}]}]
        }),
    )
}

#[test]
fn tasks_are_worked_to_completion_canceled_and_refused_when_the_queue_is_full() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        befriend(&alice, "alice", &bob, "bob")?;

        // Delegated, claimed, worked, completed with an artifact; the client sees every step.
        let task = delegate(
            &alice,
            &json!({"to": "bob", "text": "summarize this", "skill": "summarize"}),
        )?;
        ensure!(task["status"]["state"] == "submitted", "{task}");
        let id = id_of(&task)?;
        let claimed = claim(&bob)?;
        ensure!(claimed["id"] == id.as_str(), "claimed {claimed}");
        ensure!(claimed["side"] == "worker" && claimed["peer_name"] == "alice");
        ensure!(claimed["history"][0]["parts"][0]["text"] == "summarize this");
        wait_task(&alice, &id, "working")?;
        complete(&bob, &id, "a summary")?;
        let done = wait_task(&alice, &id, "completed")?;
        ensure!(
            states(&done) == ["submitted", "working", "completed"],
            "history {:?}",
            states(&done)
        );
        ensure!(
            done["artifacts"][0]["parts"][0]["text"] == "a summary",
            "{done}"
        );
        // A finished task moves nowhere: a clear error, nothing changes.
        let (status, answer) = bob.api_post_raw(
            &format!("/v1/agent/tasks/{id}"),
            &json!({"state": "working"}),
        )?;
        ensure!(
            status == 409 && answer.contains("BAD_TRANSITION"),
            "{status} {answer}"
        );
        // Task messages are not chat.
        ensure!(alice.history("bob")?.is_empty() && bob.history("alice")?.is_empty());

        // An instant worker claims and answers in one call: only `completed` reaches alice.
        // A bad body or update is refused first, and the task stays queued.
        let id = id_of(&delegate(&alice, &json!({"to": "bob", "text": "quick"}))?)?;
        wait_for(TIMEOUT, "the task to reach bob", || {
            let queue = bob.api_get("/v1/agent/tasks").ok()?;
            (queue.as_array()?.len() == 1).then_some(())
        })?;
        for (body, (code, text)) in [
            (json!({"bogus": 1}), (400, "BAD_INPUT")),
            (
                json!({"update": {"state": "submitted"}}),
                (409, "BAD_TRANSITION"),
            ),
        ] {
            let (status, answer) = bob.api_post_raw("/v1/agent/tasks/next", &body)?;
            ensure!(
                status == code && answer.contains(text),
                "{body}: {status} {answer}"
            );
        }
        let answered = bob.api_post(
            "/v1/agent/tasks/next",
            &json!({"update": {
                "state": "completed",
                "artifacts": [{"artifact_id": "result", "parts": [{"text": "at once"}]}]
            }}),
        )?;
        ensure!(
            answered["id"] == id.as_str() && answered["status"]["state"] == "completed",
            "{answered}"
        );
        let done = wait_task(&alice, &id, "completed")?;
        ensure!(
            states(&done) == ["submitted", "completed"],
            "history {:?}",
            states(&done)
        );
        ensure!(
            done["artifacts"][0]["parts"][0]["text"] == "at once",
            "{done}"
        );

        // Cancel reaches the worker; both ends see `canceled`.
        let id = id_of(&delegate(
            &alice,
            &json!({"to": "bob", "text": "long job"}),
        )?)?;
        claim(&bob)?;
        wait_task(&alice, &id, "working")?;
        alice.api_post(&format!("/v1/tasks/{id}/cancel"), &json!({}))?;
        let canceled = wait_task(&alice, &id, "canceled")?;
        ensure!(
            canceled["status"]["reason"] == "canceled by client",
            "{canceled}"
        );
        ensure!(bob.api_get(&format!("/v1/tasks/{id}"))?["status"]["state"] == "canceled");

        // A full queue: the one past the bound is rejected, clearly; the others wait.
        let ids: Vec<String> = (0..=MAX_QUEUE)
            .map(|i| delegate(&alice, &json!({"to": "bob", "text": format!("job {i}")})))
            .map(|t| t.and_then(|t| id_of(&t)))
            .collect::<anyhow::Result<_>>()?;
        let refused = wait_task(&alice, &ids[MAX_QUEUE], "rejected")?;
        ensure!(
            refused["status"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("RATE_LIMITED: queue full")),
            "{refused}"
        );
        let queued = bob.api_get("/v1/agent/tasks?state=submitted")?;
        ensure!(
            queued.as_array().map(Vec::len) == Some(MAX_QUEUE),
            "queued: {}",
            queued.as_array().map_or(0, Vec::len)
        );
        ensure!(alice.api_get(&format!("/v1/tasks/{}", ids[0]))?["status"]["state"] == "submitted");
        // An unknown task id is a clear error.
        let token = alice.api_token()?;
        let (status, answer) =
            alice.api_raw(&format!("/v1/tasks/{}", "0".repeat(32)), Some(&token))?;
        ensure!(
            status == 404 && answer.contains("UNKNOWN_TASK"),
            "{status} {answer}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

/// Run arguments with fast mailbox polling and replication.
fn mailbox_args(bootstrap: &str) -> Vec<String> {
    [
        "--mailbox-poll-secs",
        "1",
        "--mailbox-replicate-secs",
        "2",
        "--bootstrap",
        bootstrap,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_task_for_an_offline_worker_waits_in_its_mailbox_and_completes_when_it_returns() {
    let mut infra: Vec<TestNode> = Vec::new();
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        let mut hub = TestNode::init(bin(), "hub")?;
        hub.start(
            &["--mailbox-poll-secs", "1", "--mailbox-replicate-secs", "2"].map(String::from),
        )?;
        let hub_addr = hub.listen_addr()?;
        infra.push(hub);
        for i in 1..4 {
            let mut r = TestNode::init(bin(), &format!("r{i}"))?;
            r.start(&mailbox_args(&hub_addr))?;
            infra.push(r);
        }
        alice.start(&mailbox_args(&hub_addr))?;
        bob.start_and_publish(&mailbox_args(&hub_addr), TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        bob.stop()?;

        // Bob is offline: the task (the first message of the conversation) goes to his mailbox.
        let id = id_of(&delegate(
            &alice,
            &json!({"to": "bob", "text": "while you were away"}),
        )?)?;
        wait_for(
            TIMEOUT,
            "the task to be stored on bob's mailbox replicas",
            || {
                let s = alice.api_get("/v1/mailbox").ok()?;
                let queued = s["queued"].as_array()?;
                (!queued.is_empty() && queued.iter().all(|q| q["state"] == "stored")).then_some(())
            },
        )?;

        // Bob returns: fetches it, his worker completes it, alice sees it done.
        bob.start(&mailbox_args(&hub_addr))?;
        let claimed = claim(&bob)?;
        ensure!(claimed["id"] == id.as_str(), "claimed {claimed}");
        complete(&bob, &id, "welcome back")?;
        let done = wait_task(&alice, &id, "completed")?;
        // `working` is not sent when `completed` follows while it still waits in the outbox.
        let history = states(&done);
        ensure!(
            history == ["submitted", "working", "completed"]
                || history == ["submitted", "completed"],
            "history {:?}",
            history
        );
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob]);
        fail_with_logs(&e, &all);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

#[test]
fn a_task_to_a_strangers_uid_is_a_message_request_until_accepted() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start_and_publish(&["--bootstrap".to_string(), alice.listen_addr()?], TIMEOUT)?;
        wait_for(TIMEOUT, "alice's records published", || {
            alice.logs().contains("published KeyPackages").then_some(())
        })?;
        // No tickets exchanged: alice knows bob's UID only (as found by skill).
        let task = delegate(&alice, &json!({"to": bob.uid(), "text": "hello, stranger"}))?;
        let id = id_of(&task)?;
        ensure!(task["peer"] == bob.uid(), "{task}");
        // Held on bob's node as a message request (shown once alice's identity was found in
        // the DHT): not a task yet.
        wait_for(
            TIMEOUT,
            "alice's request on bob's node, with her identity",
            || {
                let requests = bob.api_get("/v1/requests").ok()?;
                requests
                    .as_array()?
                    .iter()
                    .any(|r| r["uid"] == alice.uid() && r["safety_number"].is_string())
                    .then_some(())
            },
        )?;
        let (status, _) = bob.api_post_raw("/v1/agent/tasks/next", &json!({}))?;
        ensure!(status == 204, "a held task is not queued: {status}");
        bob.api_post(
            &format!("/v1/requests/{}/accept", alice.uid()),
            &json!({"name": "alice"}),
        )?;
        let claimed = claim(&bob)?;
        ensure!(claimed["id"] == id.as_str(), "claimed {claimed}");
        complete(&bob, &id, "nice to meet you")?;
        let done = wait_task(&alice, &id, "completed")?;
        ensure!(done["artifacts"][0]["parts"][0]["text"] == "nice to meet you");
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}
