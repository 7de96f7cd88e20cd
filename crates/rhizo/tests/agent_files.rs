//! A task whose input and artifact are files (issue 16), with real `rhizo` processes on
//! 127.0.0.1: alice sends a 20 MiB file to bob and delegates a task naming it; bob (the worker,
//! driven through his local API as an agent program would) fetches the input through the
//! normal file transfer, sends a 20 MiB result back and completes the task with an artifact
//! naming it; alice fetches the artifact's file the same way. Both files arrive byte for byte.
//!
//! ```text
//!  alice: POST /v1/files {to: bob} ─▶ id A; POST /v1/tasks {parts: [{file: {id: A}}]}
//!  bob:   claim ─▶ the part's file, his id B ─▶ files get B ─▶ result ─▶ POST /v1/files
//!         {to: alice} ─▶ id C ─▶ completed, artifact {file: {id: C}}
//!  alice: the artifact's file, her id D ─▶ files get D
//! ```

use std::{path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::{Value, json};

mod groups_common;
use groups_common::{bin, panic_with_logs};

/// Bound for delivery, task moves and a 20 MiB transfer on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Size of both files.
const SIZE: usize = 20 << 20;

/// `len` bytes that do not repeat in any chunk-sized pattern (xorshift from `seed`).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `POST /v1/files` of the file at `path` to `to` (importing 20 MiB takes a while in a
/// debug build: a client with the test's bound): the file's id here.
fn send_file(node: &TestNode, to: &str, path: &Path) -> anyhow::Result<i64> {
    let response = reqwest::blocking::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()?
        .post(format!(
            "http://{}/v1/files",
            node.api_addr().context("api")?
        ))
        .bearer_auth(node.api_token()?)
        .json(&json!({"to": to, "path": path.to_str().context("path")?}))
        .send()?;
    ensure!(
        response.status().is_success(),
        "POST /v1/files: {}",
        response.text()?
    );
    let sent: Value = response.json()?;
    sent["file"]["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no file id in {sent}"))
}

/// `rhizo files get ID --out PATH` (fetch over `/rhizo/file/1`, then decrypt); the bytes.
fn get_file(node: &TestNode, id: i64, out: &Path) -> anyhow::Result<Vec<u8>> {
    let done = node.cli(&[
        "files",
        "get",
        &id.to_string(),
        "--out",
        out.to_str().context("path")?,
    ])?;
    ensure!(
        done.status.success(),
        "files get {id}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    Ok(std::fs::read(out)?)
}

/// The file part of `parts[index]`, once its file message is here (it has an id).
fn file_of(parts: &Value, index: usize) -> Option<Value> {
    let file = &parts[index]["file"];
    file["id"].as_i64().map(|_| file.clone())
}

#[test]
fn a_task_takes_a_20_mib_input_file_and_returns_a_20_mib_artifact_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = TestNode::init(bin(), "alice").expect("alice");
    let mut bob = TestNode::init(bin(), "bob").expect("bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        befriend(&alice, "alice", &bob, "bob")?;
        alice.send_when_ready("bob", "hello", TIMEOUT)?;

        let input = content(SIZE, 1);
        let input_path = dir.path().join("input.bin");
        std::fs::write(&input_path, &input)?;
        let sent = send_file(&alice, "bob", &input_path)?;
        let task = alice.api_post(
            "/v1/tasks",
            &json!({"to": "bob", "text": "reverse this file",
                    "parts": [{"file": {"id": sent}}]}),
        )?;
        let task_id = task["id"].as_str().context("task id")?.to_string();
        ensure!(
            task["history"][0]["parts"][1]["file"]["name"] == "input.bin",
            "{task}"
        );

        // Bob claims it; the input part names his copy of the file message.
        let claimed = wait_for(TIMEOUT, "the task at bob", || {
            let (status, body) = bob.api_post_raw("/v1/agent/tasks/next", &json!({})).ok()?;
            (status == 200).then(|| serde_json::from_str::<Value>(&body).ok())?
        })?;
        ensure!(claimed["id"] == task_id.as_str(), "{claimed}");
        let part = wait_for(TIMEOUT, "the input file message at bob", || {
            let t = bob.api_get(&format!("/v1/tasks/{task_id}")).ok()?;
            file_of(&t["history"][0]["parts"], 1)
        })?;
        ensure!(
            part["size"] == SIZE && part["name"] == "input.bin",
            "{part}"
        );
        let bob_input = part["id"].as_i64().context("id")?;
        // Over the auto-download size: the worker fetches it itself.
        let got = get_file(&bob, bob_input, &dir.path().join("bob-input.bin"))?;
        ensure!(got == input, "bob's copy of the input differs");

        let output: Vec<u8> = got.iter().rev().copied().collect();
        let output_path = dir.path().join("output.bin");
        std::fs::write(&output_path, &output)?;
        let out_id = send_file(&bob, "alice", &output_path)?;
        bob.api_post(
            &format!("/v1/agent/tasks/{task_id}"),
            &json!({"state": "completed", "text": "reversed",
                    "artifacts": [{"artifact_id": "result", "name": "reversed",
                                   "parts": [{"file": {"id": out_id}}]}]}),
        )?;

        // Alice: completed, and the artifact names her copy of the result.
        let part = wait_for(TIMEOUT, "the artifact's file at alice", || {
            let t = alice.api_get(&format!("/v1/tasks/{task_id}")).ok()?;
            if t["status"]["state"] != "completed" {
                return None;
            }
            file_of(&t["artifacts"][0]["parts"], 0)
        })?;
        ensure!(
            part["name"] == "output.bin" && part["size"] == SIZE,
            "{part}"
        );
        let alice_output = part["id"].as_i64().context("id")?;
        let got = get_file(&alice, alice_output, &dir.path().join("alice-output.bin"))?;
        ensure!(got == output, "alice's copy of the artifact differs");
        let done = alice.api_get(&format!("/v1/tasks/{task_id}"))?;
        ensure!(
            done["artifacts"][0]["parts"][0]["file"]["state"] == "done",
            "{done}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &bob]);
    }
}
