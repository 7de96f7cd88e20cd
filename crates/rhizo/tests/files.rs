//! Files end to end (issue 16), with real `rhizo` processes on 127.0.0.1: a 50 MiB file 1:1
//! (`rhizo send --file`, `rhizo files get`) arrives with the same bytes and progress events on
//! `/v1/events`; a receiver killed (SIGKILL) half-way resumes from the chunks it had verified.
//!
//! ```text
//!  alice: send --file ─▶ content store (encrypted) ─▶ FileRef inside MLS ─▶ bob
//!  bob:   files get ─▶ /rhizo/file/1 ranges from alice, verified ─▶ save (decrypted)
//! ```

use std::{io::Read, path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for KeyPackages, delivery and a 50 MiB transfer on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(300);
const LOG_TAIL_BYTES: usize = 64 * 1024;
/// Bytes of one encrypted chunk.
const CHUNK: u64 = 65_536;

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// `len` bytes that do not repeat in any chunk-sized pattern (xorshift).
fn content(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Alice and bob running, contacts, with a conversation (a first text delivered).
fn pair() -> anyhow::Result<(TestNode, TestNode)> {
    let mut alice = TestNode::init(bin(), "alice")?;
    let mut bob = TestNode::init(bin(), "bob")?;
    alice.start(&[])?;
    bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
    befriend(&alice, "alice", &bob, "bob")?;
    alice.send_when_ready("bob", "hello", TIMEOUT)?;
    wait_for(TIMEOUT, "the first text at bob", || {
        bob.history("alice")
            .ok()
            .filter(|h| !h.is_empty())
            .map(|_| ())
    })?;
    Ok((alice, bob))
}

/// Alice sends the file at `path` with the CLI; bob's id of the file message.
fn send_file(alice: &TestNode, bob: &TestNode, path: &Path) -> anyhow::Result<i64> {
    let path = path.to_str().context("path")?;
    let out = alice.cli(&["send", "bob", "--file", path, "--caption", "the data"])?;
    ensure!(
        out.status.success(),
        "send --file failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(said.contains("sent to bob"), "{said}");
    wait_for(TIMEOUT, "the file message at bob", || {
        let files = bob.api_get("/v1/files").ok()?;
        files.as_array()?.first()?["id"].as_i64()
    })
}

fn info(node: &TestNode, id: i64) -> anyhow::Result<Value> {
    node.api_get(&format!("/v1/files/{id}/info"))
}

#[test]
fn a_50_mib_file_arrives_whole_with_progress_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, bob) = pair().unwrap_or_else(|e| panic!("{e:#}"));
    let result = (|| -> anyhow::Result<()> {
        let data = content(50 << 20);
        let input = dir.path().join("big.bin");
        std::fs::write(&input, &data)?;
        // Bob's event stream, read on a thread until the file is done.
        let addr = bob.api_addr().context("bob's api")?;
        let token = bob.api_token()?;
        let events = std::thread::spawn(move || -> anyhow::Result<String> {
            let client = reqwest::blocking::Client::builder()
                .timeout(TIMEOUT)
                .no_proxy()
                .build()?;
            let mut response = client
                .get(format!("http://{addr}/v1/events"))
                .bearer_auth(token)
                .send()?;
            let mut seen = String::new();
            let mut buf = [0u8; 8192];
            while !seen.contains("\"state\":\"done\"") && seen.len() < 8 << 20 {
                let n = response.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            Ok(seen)
        });
        let id = send_file(&alice, &bob, &input)?;
        let offered = info(&bob, id)?;
        ensure!(
            offered["name"] == "big.bin" && offered["size"] == 50 << 20,
            "{offered}"
        );
        // Over the 10 MiB auto-download size: it waits for `files get`.
        let output = dir.path().join("got.bin");
        let out = bob.cli(&[
            "files",
            "get",
            &id.to_string(),
            "--out",
            output.to_str().context("path")?,
        ])?;
        ensure!(
            out.status.success(),
            "files get: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = std::fs::read(&output)?;
        ensure!(
            got.len() == data.len() && got == data,
            "the saved file differs"
        );
        let seen = events
            .join()
            .map_err(|_| anyhow!("event reader panicked"))??;
        let progress = seen.matches("\"type\":\"file_progress\"").count();
        ensure!(
            seen.matches("\"state\":\"downloading\"").count() >= 10,
            "{progress} progress events: {seen:.2000}"
        );
        ensure!(seen.contains("\"state\":\"done\""), "no done event");
        let listed = String::from_utf8_lossy(&bob.cli(&["files"])?.stdout).into_owned();
        ensure!(
            listed.contains("big.bin") && listed.contains("done"),
            "{listed}"
        );
        let history =
            String::from_utf8_lossy(&bob.cli(&["messages", "alice"])?.stdout).into_owned();
        ensure!(
            history.contains("file big.bin (50.0 MiB, application/octet-stream), done"),
            "{history}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
}

#[test]
fn a_receiver_killed_half_way_resumes_from_the_chunks_it_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, mut bob) = pair().unwrap_or_else(|e| panic!("{e:#}"));
    let result = (|| -> anyhow::Result<()> {
        let data = content(40 << 20);
        let input = dir.path().join("resume.bin");
        std::fs::write(&input, &data)?;
        let id = send_file(&alice, &bob, &input)?;
        let total = info(&bob, id)?["total_bytes"].as_u64().context("total")?;
        bob.api_post(&format!("/v1/files/{id}/fetch"), &Value::Null)?;
        // Kill bob (SIGKILL) once about half is fetched.
        let fetched_before = wait_for(TIMEOUT, "half of the file", || {
            let v = info(&bob, id).ok()?;
            let fetched = v["fetched_chunks"].as_u64()?;
            (fetched * CHUNK >= total / 2).then_some(fetched)
        })?;
        bob.kill();
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        let done = wait_for(TIMEOUT, "the resumed fetch", || {
            let v = info(&bob, id).ok()?;
            (v["state"] == "done").then_some(v)
        })?;
        let resumed = done["resumed_chunks"].as_u64().context("resumed")?;
        let fetched_after = done["fetched_chunks"].as_u64().context("fetched")?;
        let chunks = total.div_ceil(CHUNK);
        eprintln!(
            "fetched {fetched_before} chunks before the kill (at least), {resumed} verified on \
             disk after the restart, {fetched_after} fetched after it, of {chunks}"
        );
        ensure!(
            resumed + 1 >= fetched_before,
            "only {resumed} of the {fetched_before} chunks fetched before the kill were kept"
        );
        ensure!(
            resumed + fetched_after == chunks,
            "{resumed} + {fetched_after} != {chunks}"
        );
        let output = dir.path().join("resumed.bin");
        let out = bob.cli(&[
            "files",
            "get",
            &id.to_string(),
            "--out",
            output.to_str().context("path")?,
        ])?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(std::fs::read(&output)? == data, "the resumed file differs");
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
}
