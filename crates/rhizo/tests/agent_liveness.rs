//! Agent liveness and wake on task end to end, with real `rhizo` processes on 127.0.0.1: two
//! agent nodes (`[agent] enabled`, heartbeats every second) with a live task between them see
//! each other `alive` from heartbeats; when one stops, the other's `/v1/events` shows it `late`, then `unreachable`.
//! A worker with `agent.wake_command` and no agent program attached starts the command when a
//! task arrives, and the command finishes the task through the worker API.
//!
//! ```text
//!  alice (agent) ◀── heartbeat every 1 s (MLS, sent once, never stored) ──▶ bob (agent)
//!  bob stops ─▶ alice: agent_liveness late (1.5 intervals) ─▶ unreachable (3 intervals)
//!
//!  alice ── POST /v1/tasks ──▶ bob's node: task_received, nobody attached
//!     ─▶ wake.sh ─▶ POST /v1/agent/tasks/next, POST /v1/agent/tasks/{id} completed ─▶ alice
//! ```

mod agent_common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agent_common::{Events, befriend};
use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for KeyPackages, delivery and each liveness change (normally seconds).
const TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_BYTES: usize = 64 * 1024;

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// A config file making the node an agent that sends a heartbeat every second.
fn agent_config(node: &TestNode) -> anyhow::Result<PathBuf> {
    let path = node.data_dir().join("agent.toml");
    std::fs::write(&path, "[agent]\nenabled = true\nheartbeat_secs = 1\n")?;
    Ok(path)
}

/// The next `agent_liveness` event about `uid`; its liveness.
fn liveness_of(events: &mut Events, uid: &str) -> anyhow::Result<String> {
    let event = events.next(TIMEOUT, |e| {
        e["type"] == "agent_liveness" && e["uid"].as_str() == Some(uid)
    })?;
    event["liveness"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| anyhow!("no liveness in {event}"))
}

/// Waits for `uid` to become `state` on `events`; the liveness values seen on the way.
fn until(events: &mut Events, uid: &str, state: &str) -> anyhow::Result<Vec<String>> {
    let mut seen = Vec::new();
    loop {
        let l = liveness_of(events, uid)?;
        seen.push(l.clone());
        if l == state {
            return Ok(seen);
        }
    }
}

#[test]
fn heartbeats_move_an_agent_between_alive_late_and_unreachable() {
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init");
    let result = (|| -> anyhow::Result<()> {
        let a_config = agent_config(&alice)?.display().to_string();
        let b_config = agent_config(&bob)?.display().to_string();
        alice.start(&["--config".into(), a_config])?;
        bob.start(&[
            "--config".into(),
            b_config,
            "--bootstrap".into(),
            alice.listen_addr()?,
        ])?;
        // Subscribed before the two can hear each other, so no change is missed.
        let mut alice_events = Events::open(&alice)?;
        let mut bob_events = Events::open(&bob)?;
        befriend(&alice, "alice", &bob, "bob")?;
        // A task between them that stays open: they work together (heartbeats go to agents
        // with a live task, inside their conversation).
        delegate(&alice, "bob", "keep us talking")?;
        let seen = until(&mut alice_events, bob.uid(), "alive")?;
        ensure!(seen.last().map(String::as_str) == Some("alive"), "{seen:?}");
        until(&mut bob_events, alice.uid(), "alive")?;
        // Heartbeats (and task messages) are never chat.
        let history = bob.history("alice")?;
        ensure!(history.is_empty(), "{history:?}");

        // Bob stops: late after 1.5 intervals without a heartbeat, unreachable after 3.
        bob.stop()?;
        let seen = until(&mut alice_events, bob.uid(), "unreachable")?;
        ensure!(
            seen.iter().any(|l| l == "late"),
            "late must come before unreachable: {seen:?}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop");
}

/// The wake command: records its start, claims the next task and completes it with an
/// artifact, through bob's local API (curl).
const WAKE_SCRIPT: &str = r#"echo started >> "$DATA/wake-starts"
ADDR=$(cat "$DATA/api.addr")
TOKEN=$(cat "$DATA/api.token")
TASK=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" "http://$ADDR/v1/agent/tasks/next")
ID=$(printf '%s' "$TASK" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$ID" ] || exit 0
curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"state":"completed","artifacts":[{"artifact_id":"a1","parts":[{"text":"done by the wake command"}]}]}' \
  "http://$ADDR/v1/agent/tasks/$ID"
echo "completed $ID"
"#;

/// `POST /v1/tasks`, retried (bounded) while the agent's KeyPackages are not in the DHT yet.
fn delegate(node: &TestNode, to: &str, text: &str) -> anyhow::Result<Value> {
    let body = json!({"to": to, "text": text});
    wait_for(TIMEOUT, "the agent's KeyPackages", || {
        match node.api_post_raw("/v1/tasks", &body) {
            Ok((201, answer)) => {
                Some(serde_json::from_str::<Value>(&answer).map_err(anyhow::Error::from))
            }
            Ok((503, answer)) if answer.contains("NO_KEY_PACKAGES") => None,
            Ok((status, answer)) => Some(Err(anyhow!("POST /v1/tasks: {status} {answer}"))),
            Err(e) => Some(Err(e)),
        }
    })?
}

#[test]
fn a_task_starts_the_wake_command_which_completes_it() {
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init");
    let result = (|| -> anyhow::Result<()> {
        let data = bob.data_dir().display().to_string();
        let script = bob.data_dir().join("wake.sh");
        std::fs::write(&script, WAKE_SCRIPT.replace("$DATA", &data))?;
        let config = bob.data_dir().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[agent]\nwake_command = [\"sh\", {:?}]\n",
                script.display().to_string()
            ),
        )?;
        alice.start(&[])?;
        bob.start(&[
            "--config".into(),
            config.display().to_string(),
            "--bootstrap".into(),
            alice.listen_addr()?,
        ])?;
        befriend(&alice, "alice", &bob, "bob")?;
        let task = delegate(&alice, "bob", "wake up and do it")?;
        let id = task["id"].as_str().context("no task id")?.to_string();
        let done = wait_for(TIMEOUT, "the task to be completed", || {
            let task = alice.api_get(&format!("/v1/tasks/{id}")).ok()?;
            (task["status"]["state"] == "completed").then_some(task)
        })?;
        ensure!(
            done.to_string().contains("done by the wake command"),
            "no artifact: {done}"
        );
        let starts = std::fs::read_to_string(bob.data_dir().join("wake-starts"))?;
        ensure!(starts.lines().count() >= 1, "{starts:?}");
        // Its output goes to the bounded log in the data dir.
        wait_for(TIMEOUT, "the wake command's output in its log", || {
            std::fs::read_to_string(bob.data_dir().join("agent-wake.log"))
                .ok()?
                .contains("completed")
                .then_some(())
        })?;
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    bob.stop().expect("stop");
    alice.stop().expect("stop");
}
