//! The agent CLI with real processes: `rhizo agent serve` makes a shell script an agent,
//! `rhizo agents find` discovers it through the DHT with no prior contact, and
//! `rhizo task send … --wait` delegates by UID and prints the result; a failing command fails
//! its task with its last stderr line; `rhizo task cancel` reaches the worker, whose command
//! is killed, and comes back as `canceled`; SIGTERM stops `agent serve` cleanly, failing the
//! task it was running; bad arguments are refused before anything is sent.
//!
//! ```text
//!  client: rhizo agents find upper ──DHT──▶ UID ── rhizo task send UID … --wait ──▶ worker node
//!                                                                 rhizo agent serve ◀─┘ sh script
//! ```

mod agent_common;

use agent_common::{Net, TIMEOUT, serve};
use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::Value;

/// The worker's command: upper-cases its input; `slow` sleeps (to be canceled), `fail` fails.
const SCRIPT: &str = r#"read -r line
case "$line" in
  slow) sleep 60 ;;
  fail) echo "some detail" >&2; echo "bad input: $RHIZO_TASK_SKILL" >&2; exit 2 ;;
esac
echo "$line" | tr a-z A-Z
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// The worker-side state of task `id`.
fn worker_state(worker: &TestNode, id: &str) -> Option<String> {
    let task = worker.api_get(&format!("/v1/tasks/{id}")).ok()?;
    task["status"]["state"].as_str().map(String::from)
}

#[test]
fn a_script_becomes_an_agent_found_by_skill_and_tasks_complete_fail_and_cancel() {
    let net = Net::start("cli", 1).expect("start the nodes");
    if let Err(e) = scenario(&net) {
        panic!("{e:#}\n{}", net.logs());
    }
}

fn scenario(net: &Net) -> anyhow::Result<()> {
    let (client, worker) = (&net.client, net.worker());
    let script = worker.data_dir().join("upper.sh");
    std::fs::write(&script, SCRIPT)?;
    let exec = format!("sh {}", script.display());
    let mut serving = serve(
        worker,
        "serve",
        &[
            "--skill",
            "upper:Upper case",
            "--exec",
            &exec,
            "--concurrency",
            "2",
        ],
    )?;
    let mut result = || -> anyhow::Result<()> {
        // Bad arguments: refused by the CLI itself.
        for (args, want) in [
            (&["--priority", "asap"][..], "low, normal, high or urgent"),
            (&["--deadline", "soon"][..], "RFC 3339"),
            (&["--data", "{"][..], "not valid JSON"),
        ] {
            let mut all = vec!["task", "send", "nobody", "x"];
            all.extend_from_slice(args);
            let out = client.cli(&all)?;
            ensure!(out.status.code() == Some(2), "{all:?}: {}", stderr(&out));
            ensure!(stderr(&out).contains(want), "{all:?}: {}", stderr(&out));
        }

        // The card agent serve set, and a card file that is not one.
        let shown = stdout(&worker.cli(&["agent", "card", "show"])?);
        ensure!(
            shown.contains("skill upper: Upper case"),
            "card show: {shown}"
        );
        let bad = client.data_dir().join("bad-card.json");
        std::fs::write(
            &bad,
            r#"{"name": "x", "skills": [{"id": "Not An Id", "name": "x"}]}"#,
        )?;
        let out = client.cli(&["agent", "card", "set", &bad.display().to_string()])?;
        ensure!(
            !out.status.success() && stderr(&out).contains("skill id"),
            "a bad card file: {}",
            stderr(&out)
        );

        // Discovery through the DHT, no contact.
        let uid = wait_for(TIMEOUT, "rhizo agents find upper", || {
            let out = client.cli(&["agents", "find", "upper", "--json"]).ok()?;
            let list: Value = serde_json::from_slice(&out.stdout).ok()?;
            list.as_array()?.first()?["uid"].as_str().map(String::from)
        })?;
        ensure!(uid == worker.uid(), "found {uid}, not the worker");

        let out = client.cli(&[
            "task",
            "send",
            &uid,
            "hello cli",
            "--skill",
            "upper",
            "--wait",
        ])?;
        ensure!(out.status.success(), "task send --wait: {}", stderr(&out));
        ensure!(stdout(&out) == "HELLO CLI", "printed {:?}", stdout(&out));
        let out = client.cli(&["task", "list", "--side", "client", "--peer", &uid, "--json"])?;
        let tasks: Value = serde_json::from_slice(&out.stdout).context("task list --json")?;
        ensure!(
            tasks
                .as_array()
                .is_some_and(|t| t.len() == 1 && t[0]["status"]["state"] == "completed"),
            "task list: {tasks}"
        );
        let listed = stdout(&client.cli(&["agents"])?);
        ensure!(
            listed.contains(&uid) && listed.contains("upper"),
            "rhizo agents: {listed}"
        );

        let out = client.cli(&["task", "send", &uid, "fail", "--skill", "upper", "--wait"])?;
        ensure!(!out.status.success(), "a failing command's task succeeded");
        ensure!(
            stderr(&out).contains("failed: bad input: upper"),
            "the reason is the last stderr line: {}",
            stderr(&out)
        );

        // Cancel: the worker's command is killed.
        let out = client.cli(&["task", "send", &uid, "slow", "--skill", "upper"])?;
        ensure!(out.status.success(), "task send: {}", stderr(&out));
        let id = stdout(&out);
        wait_for(TIMEOUT, "the slow task to run", || {
            (worker_state(worker, &id).as_deref() == Some("working")).then_some(())
        })?;
        let out = client.cli(&["task", "cancel", &id])?;
        ensure!(out.status.success(), "task cancel: {}", stderr(&out));
        wait_for(TIMEOUT, "the worker to cancel the task", || {
            (worker_state(worker, &id).as_deref() == Some("canceled")).then_some(())
        })?;
        wait_for(TIMEOUT, "agent serve to kill the command", || {
            serving
                .output()
                .contains(&format!("task {id}: canceled"))
                .then_some(())
        })
        .context("agent serve did not see the cancel")?;
        // The client marks its copy canceled once the worker's update says so.
        wait_for(TIMEOUT, "the client to see the task canceled", || {
            let out = client.cli(&["task", "show", &id, "--json"]).ok()?;
            let task: Value = serde_json::from_slice(&out.stdout).ok()?;
            (task["status"]["state"] == "canceled").then_some(())
        })?;

        // SIGTERM: agent serve kills the running command, fails its task and exits cleanly.
        let out = client.cli(&["task", "send", &uid, "slow", "--skill", "upper"])?;
        let id = stdout(&out);
        wait_for(TIMEOUT, "the second slow task to run", || {
            (worker_state(worker, &id).as_deref() == Some("working")).then_some(())
        })?;
        let term = std::process::Command::new("kill")
            .args(["-TERM", &serving.child.id().to_string()])
            .status()?;
        ensure!(term.success(), "kill -TERM failed");
        let status = serving.wait(TIMEOUT)?;
        ensure!(status.success(), "agent serve ended with {status}");
        let task = worker.api_get(&format!("/v1/tasks/{id}"))?;
        ensure!(
            task["status"]["state"] == "failed"
                && task["status"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("worker stopped")),
            "the interrupted task: {}",
            task["status"]
        );
        Ok(())
    };
    let result = result();
    result.map_err(|e| anyhow!("{e:#}\n{}", serving.output()))
}
