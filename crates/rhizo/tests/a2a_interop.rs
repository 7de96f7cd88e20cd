//! The official A2A Python SDK (`a2a-sdk`, pinned in interop/a2a/requirements.txt) on both ends
//! of a task that crosses two real rhizo nodes: an ordinary A2A client talks to the client
//! node's A2A binding, and the worker node forwards the task to an ordinary A2A server.
//!
//! ```text
//!  interop/a2a/client.py ──A2A JSON-RPC/SSE──▶ client node /a2a/<worker UID>/
//!        (a2a-sdk client)                           ║ rhizo task (MLS)
//!                                               worker node ──agent.a2a_url──▶ interop/a2a/worker.py
//!                                                                                  (a2a-sdk server)
//! ```
//!
//! client.py resolves the card, streams `hello rhizo` to completion (the task, then updates in
//! order, the upper-cased artifact), reads it back with GetTask and ListTasks, cancels a
//! slow task while it works, and sends a task with a 100,000-byte file (a raw part): the task
//! names it `urn:rhizo:file:HASH`, and the worker node gets the same bytes as a file. Needs the virtualenv `.ci/run` creates
//! (`$HOME/.cache/rhizo-py/a2a`, or `RHIZO_PY_A2A` naming its python); without it the test prints
//! `SKIPPED …` and passes, except under `CI=1`, where it fails.

mod agent_common;

use std::{path::Path, process::Command};

use agent_common::{Net, Program, TIMEOUT, repo_root, skip, venv_python};
use anyhow::{Context, ensure};
use rhizo_test_utils::wait_for;
use serde_json::{Value, json};

#[test]
fn the_official_a2a_sdk_delegates_to_an_a2a_agent_on_another_node() {
    let python = match venv_python("a2a", "a2a") {
        Ok(p) => p,
        Err(why) => return skip("a2a_interop", &why),
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let worker = start_worker(&python, dir.path()).expect("start interop/a2a/worker.py");
    let result = scenario(&python, &worker, dir.path());
    if let Err((e, logs)) = result {
        panic!("{e:#}\n{}\n{logs}", worker.program.output());
    }
}

/// The a2a-sdk agent and the port it listens on.
struct Worker {
    program: Program,
    port: u16,
}

fn start_worker(python: &Path, dir: &Path) -> anyhow::Result<Worker> {
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("interop/a2a/worker.py"))
        .args(["--port", "0"]);
    let mut program = Program::start("a2a-worker", &mut command, dir)?;
    let port = wait_for(TIMEOUT, "worker.py to listen", || {
        if let Ok(Some(status)) = program.child.try_wait() {
            return Some(Err(anyhow::anyhow!("worker.py exited with {status}")));
        }
        let out = std::fs::read_to_string(&program.out).ok()?;
        let port = out.lines().find_map(|l| l.strip_prefix("READY "))?;
        Some(port.trim().parse::<u16>().context("READY line"))
    })??;
    Ok(Worker { program, port })
}

fn scenario(python: &Path, worker: &Worker, dir: &Path) -> Result<(), (anyhow::Error, String)> {
    let config = dir.join("worker.toml");
    let toml = format!("[agent]\na2a_url = \"http://127.0.0.1:{}/\"\n", worker.port);
    std::fs::write(&config, toml).map_err(|e| (e.into(), String::new()))?;
    let net = Net::start_with("a2a", 1, &["--config".into(), config.display().to_string()])
        .map_err(|e| (e, String::new()))?;
    run(python, &net).map_err(|e| (e, net.logs()))
}

fn run(python: &Path, net: &Net) -> anyhow::Result<()> {
    net.befriend()?;
    let card = json!({
        "name": "Upper",
        "description": "upper-cases text (an a2a-sdk agent behind rhizo)",
        "version": "1.0.0",
        "skills": [{"id": "upper", "name": "Upper-case", "tags": ["text"]}],
    });
    net.worker().api_post("/v1/agent/card", &card)?;
    let uid = net.worker().uid().to_string();
    // The client node knows the card (capability answer or the DHT) before the A2A client asks.
    wait_for(TIMEOUT, "the worker's card at the client node", || {
        net.client
            .api_get(&format!("/v1/agents/{uid}?refresh=1"))
            .ok()
            .filter(|v| v["card"]["name"] == "Upper")
    })?;
    let url = format!(
        "http://{}/a2a/{uid}",
        net.client.api_addr().context("client API address")?
    );
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("interop/a2a/client.py"))
        .args(["--url", &url, "--token", &net.client.api_token()?]);
    let mut client = Program::start("a2a-client", &mut command, net.client.data_dir())?;
    let status = client.wait(TIMEOUT * 2)?;
    let output = client.output();
    ensure!(status.success(), "client.py failed ({status}):\n{output}");
    ensure!(
        output.contains("\nOK"),
        "client.py did not finish:\n{output}"
    );
    file_arrived(net, &output)?;
    // Both ends kept the tasks: completed and canceled.
    for node in [&net.client, net.worker()] {
        let tasks: Vec<Value> = node
            .api_get("/v1/tasks")?
            .as_array()
            .cloned()
            .unwrap_or_default();
        let states: Vec<&str> = tasks
            .iter()
            .filter_map(|t| t["status"]["state"].as_str())
            .collect();
        ensure!(
            states.contains(&"completed") && states.contains(&"canceled"),
            "tasks at a node: {states:?}"
        );
    }
    Ok(())
}

/// The file client.py sent in a task (its `FILE <HASH>` line) reached the worker node as a file
/// message (downloaded by itself: it is small and from a contact) with client.py's bytes.
fn file_arrived(net: &Net, output: &str) -> anyhow::Result<()> {
    let hash = output
        .lines()
        .find_map(|l| l.strip_prefix("FILE "))
        .context("client.py printed no FILE line")?
        .trim()
        .to_string();
    let worker = net.worker();
    let id = wait_for(TIMEOUT, "the file done at the worker", || {
        let files = worker.api_get("/v1/files").ok()?;
        files.as_array()?.iter().find_map(|f| {
            (f["hash"] == hash.as_str() && f["state"] == "done").then(|| f["id"].as_i64())?
        })
    })?;
    let out = worker.data_dir().join("a2a-file.bin");
    let got = worker.cli(&[
        "files",
        "get",
        &id.to_string(),
        "--out",
        out.to_str().context("path")?,
    ])?;
    ensure!(
        got.status.success(),
        "files get: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    let expected: Vec<u8> = (0..100_000u32).map(|i| ((i * 7 + 3) % 251) as u8).collect();
    ensure!(
        std::fs::read(&out)? == expected,
        "the worker's copy differs from client.py's bytes"
    );
    Ok(())
}
