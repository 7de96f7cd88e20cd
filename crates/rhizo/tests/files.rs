//! Files end to end (issue 16), with real `rhizo` processes on 127.0.0.1: a 50 MiB file 1:1
//! (`rhizo send --file`, `rhizo files get`) arrives with the same bytes and progress events on
//! `/v1/events`; a receiver, or a sender, killed (SIGKILL) half-way and restarted: the fetch
//! resumes and no chunk is fetched twice (at most one). In a group of four whose sender went
//! offline, the members fetch the file from a member who has it; a malicious holder's chunks
//! are refused, fetched from another holder, and the holder penalised.
//!
//! ```text
//!  alice: send --file ─▶ content store (encrypted) ─▶ FileRef inside MLS ─▶ bob
//!  bob:   files get ─▶ /rhizo/file/1 ranges from alice, verified ─▶ save (decrypted)
//!  group: carol ─▶ ranges spread over {alice (down), bob, dave (tampers)} ─▶ dave's refused,
//!         asked of bob ─▶ whole
//! ```

use std::{io::Read, path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::{Value, json};

mod groups_common;
use groups_common::{bin, boot_args, panic_with_logs, post_when_ready, wait_group};

/// Bound for KeyPackages, delivery and a 50 MiB transfer on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes of one encrypted chunk.
const CHUNK: u64 = 65_536;

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
    pair_with(&[])
}

/// [`pair`], bob's node run with the environment `bob_env` (file settings).
fn pair_with(bob_env: &[(&str, &str)]) -> anyhow::Result<(TestNode, TestNode)> {
    let mut alice = TestNode::init(bin(), "alice")?;
    let mut bob = TestNode::init(bin(), "bob")?;
    for (k, v) in bob_env {
        bob.set_run_env(k, v);
    }
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

/// Alice sends the file at `path` with the CLI; bob's id of the file message (the newest).
fn send_file(alice: &TestNode, bob: &TestNode, path: &Path) -> anyhow::Result<i64> {
    let before = bob
        .api_get("/v1/files")?
        .as_array()
        .and_then(|a| a.first())
        .and_then(|f| f["id"].as_i64());
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
        let id = files.as_array()?.first()?["id"].as_i64()?;
        (Some(id) != before).then_some(id)
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
            let mut response = http()?
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
        panic_with_logs(&e, &[&alice, &bob]);
    }
}

/// Which side a kill test stops half-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    Receiver,
    Sender,
}

/// Alice sends a 40 MiB file; bob fetches it; `killed` is SIGKILLed once about half is
/// fetched and restarted. The file is correct, and at most one chunk is fetched twice.
fn kill_half_way(killed: Killed) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut alice, mut bob) = pair().unwrap_or_else(|e| panic!("{e:#}"));
    let result = (|| -> anyhow::Result<()> {
        let data = content(40 << 20);
        let input = dir.path().join("resume.bin");
        std::fs::write(&input, &data)?;
        let id = send_file(&alice, &bob, &input)?;
        let total = info(&bob, id)?["total_bytes"].as_u64().context("total")?;
        bob.api_post(&format!("/v1/files/{id}/fetch"), &Value::Null)?;
        let fetched_before = wait_for(TIMEOUT, "half of the file", || {
            let v = info(&bob, id).ok()?;
            let fetched = v["fetched_chunks"].as_u64()?;
            (fetched * CHUNK >= total / 2).then_some(fetched)
        })?;
        match killed {
            Killed::Receiver => {
                bob.kill();
                bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
            }
            Killed::Sender => {
                alice.kill();
                alice.start(&["--bootstrap".to_string(), bob.listen_addr()?])?;
            }
        }
        let done = wait_for(TIMEOUT, "the resumed fetch", || {
            let v = info(&bob, id).ok()?;
            (v["state"] == "done").then_some(v)
        })?;
        let resumed = done["resumed_chunks"].as_u64().context("resumed")?;
        let fetched = done["fetched_chunks"].as_u64().context("fetched")?;
        let chunks = total.div_ceil(CHUNK);
        eprintln!(
            "{killed:?} killed: {fetched_before} chunks fetched before the kill (at least), \
             {resumed} verified on disk at the (re)start of bob's fetch, {fetched} fetched by \
             bob's current process, of {chunks}"
        );
        match killed {
            // Bob's new process starts from what is on disk.
            Killed::Receiver => {
                ensure!(
                    resumed + 1 >= fetched_before,
                    "only {resumed} of the {fetched_before} chunks fetched before the kill \
                     were kept"
                );
                ensure!(
                    resumed + fetched == chunks,
                    "{resumed} + {fetched} != {chunks}"
                );
            }
            // Bob's process counts every chunk it fetched: none twice, at most one more.
            Killed::Sender => ensure!(
                resumed == 0 && fetched <= chunks + 1 && fetched >= chunks,
                "bob fetched {fetched} chunks of {chunks} (resumed {resumed})"
            ),
        }
        let output = dir.path().join("resumed.bin");
        save(&bob, id, &output)?;
        ensure!(std::fs::read(&output)? == data, "the resumed file differs");
        Ok(())
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &bob]);
    }
}

/// `rhizo files get ID --out PATH` on `node`.
fn save(node: &TestNode, id: i64, out: &Path) -> anyhow::Result<()> {
    let got = node.cli(&[
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
    Ok(())
}

#[test]
fn a_receiver_killed_half_way_resumes_from_the_chunks_it_verified() {
    kill_half_way(Killed::Receiver);
}

#[test]
fn a_sender_killed_half_way_and_restarted_serves_the_rest() {
    kill_half_way(Killed::Sender);
}

/// The first file at `node` once it is in `state`: its view.
fn wait_file_state(node: &TestNode, state: &str) -> anyhow::Result<Value> {
    wait_for(TIMEOUT, &format!("a file {state}"), || {
        let files = node.api_get("/v1/files").ok()?;
        let f = files.as_array()?.first()?.clone();
        (f["state"] == state).then_some(f)
    })
    .with_context(|| format!("{}: a file {state}", node.uid()))
}

/// A group of four. Alice sends a 3 MiB file to the group; bob (alice is his contact, so it
/// downloads by itself; carol and dave auto-download only up to 1 MiB) fetches it from her;
/// then alice's node is killed. Dave fetches it from
/// bob. Dave is a malicious holder (the test-only tamper switch): when carol then fetches
/// from {alice (down), bob, dave}, dave's ranges do not verify, are fetched from bob instead,
/// and dave is penalised. Both files are whole.
#[test]
fn a_group_of_four_fetches_a_file_from_a_member_once_the_sender_is_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<TestNode> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|n| TestNode::init(bin(), n).expect("init"))
        .collect();
    for node in &mut nodes[2..] {
        node.set_run_env("RHIZO_FILES_AUTO_DOWNLOAD_MIB", "1");
    }
    nodes[3].set_run_env(rhizo_node::files::TAMPER_ENV, "1");
    let result = group_of_four(&mut nodes, dir.path());
    if let Err(e) = result {
        panic_with_logs(&e, &nodes.iter().collect::<Vec<_>>());
    }
}

fn group_of_four(nodes: &mut [TestNode], dir: &Path) -> anyhow::Result<()> {
    nodes[0].start(&[])?;
    let boot = boot_args(&nodes[0].listen_addr()?);
    for node in &mut nodes[1..] {
        node.start_and_publish(&boot, groups_common::KEY_PACKAGES_TIMEOUT)?;
    }
    let [alice, bob, carol, dave] = nodes else {
        return Err(anyhow!("four nodes"));
    };
    for (node, name) in [(&*bob, "bob"), (&*carol, "carol"), (&*dave, "dave")] {
        befriend(alice, "alice", node, name)?;
    }
    let group = post_when_ready(
        alice,
        "/v1/groups",
        &json!({"name": "team", "members": ["bob", "carol", "dave"]}),
    )?;
    let id = group["id"].as_str().context("group id")?.to_string();
    for node in [&*bob, &*carol, &*dave] {
        wait_group(node, &id, "all four in the group", |g| g["members"] == 4)?;
    }
    let data = content(3 << 20);
    let input = dir.join("plan.bin");
    std::fs::write(&input, &data)?;
    let sent = alice.cli(&["send", "team", "--file", input.to_str().context("path")?])?;
    ensure!(
        sent.status.success(),
        "send team --file: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    wait_file_state(bob, "done")?;
    let carol_file = wait_file_state(carol, "offered")?;
    let dave_file = wait_file_state(dave, "offered")?;
    alice.kill();
    // Dave fetches from bob (alice is down).
    let dave_id = dave_file["id"].as_i64().context("id")?;
    dave.api_post(&format!("/v1/files/{dave_id}/fetch"), &Value::Null)?;
    wait_file_state(dave, "done")?;
    // Carol: dave's ranges are tampered with, bob's are not.
    let carol_id = carol_file["id"].as_i64().context("id")?;
    carol.api_post(&format!("/v1/files/{carol_id}/fetch"), &Value::Null)?;
    wait_file_state(carol, "done")?;
    for (node, file_id, name) in [(&*carol, carol_id, "carol"), (&*dave, dave_id, "dave")] {
        let out = dir.join(format!("{name}.bin"));
        save(node, file_id, &out)?;
        ensure!(std::fs::read(&out)? == data, "{name}'s file differs");
    }
    let stats = carol.api_get("/v1/files/stats")?;
    let refused = stats["refused_holders"].as_array().context("holders")?;
    ensure!(
        stats["chunks_refused"].as_u64() > Some(0)
            && refused.len() == 1
            && refused[0]["peer_id"] == dave.peer_id()
            && refused[0]["score"].as_i64() < Some(0),
        "carol did not refuse and penalise dave: {stats}"
    );
    let served = bob.api_get("/v1/files/stats")?["bytes_served"].as_u64();
    ensure!(served >= Some(2 * (3 << 20)), "bob served {served:?} bytes");
    Ok(())
}

/// A file of the largest inline size (192 KiB: `MAX_INLINE_FILE_BYTES`, below the issue's
/// 256 KiB because an envelope is capped at 256 KiB; see protocol.md §32) sent to an offline
/// recipient arrives with its message through the DHT mailbox, while its sender is down too.
#[test]
fn an_inline_file_reaches_an_offline_recipient_through_the_mailbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<TestNode> = ["hub", "alice", "bob"]
        .iter()
        .map(|n| TestNode::init(bin(), n).expect("init"))
        .collect();
    let result = (|| -> anyhow::Result<()> {
        let [hub, alice, bob] = &mut nodes[..] else {
            return Err(anyhow!("three nodes"));
        };
        hub.start(&[])?;
        let boot = boot_args(&hub.listen_addr()?);
        alice.start_and_publish(&boot, groups_common::KEY_PACKAGES_TIMEOUT)?;
        bob.start_and_publish(&boot, groups_common::KEY_PACKAGES_TIMEOUT)?;
        befriend(alice, "alice", bob, "bob")?;
        alice.send_when_ready("bob", "hello", TIMEOUT)?;
        wait_for(TIMEOUT, "the first text at bob", || {
            bob.history("alice")
                .ok()
                .filter(|h| !h.is_empty())
                .map(|_| ())
        })?;
        bob.stop()?;
        let data = content(rhizo_core::file::MAX_INLINE_FILE_BYTES as usize);
        let input = dir.path().join("note.bin");
        std::fs::write(&input, &data)?;
        let sent = alice.cli(&["send", "bob", "--file", input.to_str().context("path")?])?;
        ensure!(
            sent.status.success(),
            "send --file: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        wait_for(TIMEOUT, "the file message stored on bob's mailbox", || {
            let list = alice.history("bob").ok()?;
            list.iter()
                .any(|m| m["file"].is_object() && m["state"] == "stored")
                .then_some(())
        })?;
        // The sender is gone too: the content can only come with the message.
        alice.kill();
        bob.start(&boot)?;
        let file = wait_file_state(bob, "done")?;
        ensure!(file["size"] == data.len(), "{file}");
        let out = dir.path().join("got.bin");
        save(bob, file["id"].as_i64().context("id")?, &out)?;
        ensure!(std::fs::read(&out)? == data, "the file differs");
        Ok(())
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &nodes.iter().collect::<Vec<_>>());
    }
}

/// Bob's node has `files_max_mib` 2 and a 3 MiB storage cap: a 3 MiB file is refused as over
/// the limit, a 2 MiB one arrives, and a second 2 MiB one would pass the cap: refused. Each
/// refusal is the file's state `failed` with a message that says why. Bob then sends files
/// with their content in the request body (`POST /v1/files?to=…&name=…`): 3 MiB is refused
/// (413), 512 KiB reaches alice whole.
#[test]
fn the_size_limit_and_the_storage_cap_hold_over_the_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, bob) = pair_with(&[
        ("RHIZO_FILES_MAX_MIB", "2"),
        ("RHIZO_FILES_MAX_STORAGE_MIB", "3"),
        ("RHIZO_FILES_AUTO_DOWNLOAD_MIB", "1"),
    ])
    .unwrap_or_else(|e| panic!("{e:#}"));
    let result = (|| -> anyhow::Result<()> {
        let fetch = |name: &str, len: usize, want: &str| -> anyhow::Result<Value> {
            let input = dir.path().join(name);
            std::fs::write(&input, content(len))?;
            let id = send_file(&alice, &bob, &input)?;
            bob.api_post(&format!("/v1/files/{id}/fetch"), &Value::Null)?;
            wait_for(TIMEOUT, &format!("{name} {want}"), || {
                let v = info(&bob, id).ok()?;
                (v["state"] == want).then_some(v)
            })
        };
        let big = fetch("big.bin", 3 << 20, "failed")?;
        ensure!(
            big["error"]
                .as_str()
                .is_some_and(|e| e.contains("files_max_mib")),
            "{big}"
        );
        fetch("a.bin", 2 << 20, "done")?;
        let b = fetch("b.bin", 2 << 20, "failed")?;
        ensure!(
            b["error"]
                .as_str()
                .is_some_and(|e| e.contains("storage cap")),
            "{b}"
        );
        // The content in the request body: over bob's limit refused, under it sent.
        let (status, said) = upload(&bob, "to=alice&name=up.bin", content(3 << 20))?;
        ensure!(
            status == 413 && said.contains("FILE_TOO_LARGE"),
            "{status} {said}"
        );
        // 512 KiB: bob's store holds a.bin's 2 MiB under its 3 MiB cap.
        let data = content(512 << 10);
        let (status, said) = upload(&bob, "to=alice&name=up.bin&caption=hi", data.clone())?;
        ensure!(status == 201, "{status} {said}");
        let id = wait_for(TIMEOUT, "the uploaded file done at alice", || {
            let files = alice.api_get("/v1/files").ok()?;
            let f = files.as_array()?.first()?.clone();
            (f["name"] == "up.bin" && f["state"] == "done").then_some(f["id"].as_i64()?)
        })?;
        let got = http()?
            .get(format!(
                "http://{}/v1/files/{id}",
                alice.api_addr().context("api")?
            ))
            .bearer_auth(alice.api_token()?)
            .send()?
            .bytes()?;
        ensure!(got.as_ref() == data.as_slice(), "the uploaded file differs");
        Ok(())
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &bob]);
    }
}

fn http() -> anyhow::Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()?)
}

/// `POST /v1/files?{query}` on `node` with `body` as the file's content: status and answer.
fn upload(node: &TestNode, query: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
    let response = http()?
        .post(format!(
            "http://{}/v1/files?{query}",
            node.api_addr().context("api")?
        ))
        .bearer_auth(node.api_token()?)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()?;
    Ok((response.status().as_u16(), response.text()?))
}
