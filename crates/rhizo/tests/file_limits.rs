//! The per-peer cap on `/rhizo/file/1` over the network (issue 16): a holder answers at most 4
//! requests of one peer at once. A peer in the test process (a bare rhizo-net node) sends 16
//! file requests to alice at once while bob fetches a file from her: the requests over the
//! cap are refused `Busy` (ask again later), the others are answered (`Forbidden`: it is not a
//! member), bob's file arrives whole, and afterwards alice holds no serving slot.
//!
//! Alice runs with `RHIZO_TEST_HOLD_FILE_SERVES` (test only): each request she serves keeps its
//! slot until she first refused one over the cap, so the burst goes over the cap whatever the
//! scheduling (a bounded wait on that event, 60 s at most, not a sleep).
//!
//! ```text
//!  greedy peer ══ 16 FileRequests at once ══▶ alice: 4 slots taken (held) ─▶ 5th: Busy
//!                                             ─▶ held ones answered (Forbidden)
//!  bob ── files get ──▶ alice: his own 4 slots ─▶ whole file
//! ```

use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use rhizo_core::file::wire::{FileRequest, FileStatus};
use rhizo_test_utils::{RawNode, TestNode, befriend, wait_for};
use serde_json::json;

mod groups_common;
use groups_common::{bin, panic_with_logs};

/// Bound for delivery and a small transfer on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(180);
/// Requests the greedy peer sends at once (the cap is 4).
const BURST: usize = 16;

/// The greedy peer: `BURST` requests for chunks of `hash` at once to `target`; the status of
/// each answer (an error when one got none).
fn burst(target: &str, addr: &str, hash: [u8; 32]) -> anyhow::Result<Vec<FileStatus>> {
    let rt = tokio::runtime::Runtime::new()?;
    let target: rhizo_net::PeerId = target.parse()?;
    let addr: rhizo_net::Multiaddr = addr.parse()?;
    rt.block_on(async move {
        let raw = RawNode::start("rhizo-test-greedy", Vec::new())?;
        // Connected first: a malformed request is answered at once (before any slot).
        let warm = raw
            .client
            .file_request(target, vec![addr.clone()], vec![0])
            .await
            .map_err(|e| anyhow!("no answer to the first request: {e}"))?;
        ensure!(
            FileStatus::of(&warm)?.0 == FileStatus::BadRequest,
            "a malformed request is refused"
        );
        let requests = (0..BURST as u64).map(|i| {
            let payload = FileRequest {
                hash,
                start: i % 4,
                end: i % 4 + 1,
            }
            .encode();
            raw.client.file_request(target, vec![addr.clone()], payload)
        });
        let answers = tokio::time::timeout(TIMEOUT, futures::future::join_all(requests))
            .await
            .map_err(|_| anyhow!("the burst was not answered in time"))?;
        raw.stop().await;
        answers
            .into_iter()
            .map(|a| {
                let bytes = a.map_err(|e| anyhow!("a request got no answer: {e}"))?;
                Ok(FileStatus::of(&bytes)?.0)
            })
            .collect()
    })
}

#[test]
fn one_peer_over_the_transfer_cap_is_told_busy_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = TestNode::init(bin(), "alice").expect("alice");
    let mut bob = TestNode::init(bin(), "bob").expect("bob");
    alice.set_run_env(rhizo_node::files::HOLD_ENV, "1");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        befriend(&alice, "alice", &bob, "bob")?;
        alice.send_when_ready("bob", "hello", TIMEOUT)?;
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("shared.bin");
        std::fs::write(&path, &data)?;
        let sent = alice.api_post(
            "/v1/files",
            &json!({"to": "bob", "path": path.to_str().context("path")?}),
        )?;
        let hash_hex = sent["file"]["hash"].as_str().context("hash")?.to_string();
        let hash: [u8; 32] = data_encoding::HEXLOWER
            .decode(hash_hex.as_bytes())?
            .try_into()
            .map_err(|_| anyhow!("a hash of 32 bytes"))?;
        let bob_id = wait_for(TIMEOUT, "the file message at bob", || {
            let files = bob.api_get("/v1/files").ok()?;
            files
                .as_array()?
                .iter()
                .find(|f| f["hash"] == hash_hex.as_str())
                .and_then(|f| f["id"].as_i64())
        })?;

        // Bob fetches while the greedy peer bursts.
        let out = dir.path().join("got.bin");
        let (target, addr) = (alice.peer_id().to_string(), alice.listen_addr()?);
        let greedy = std::thread::spawn(move || burst(&target, &addr, hash));
        let statuses = greedy
            .join()
            .map_err(|_| anyhow!("the greedy peer panicked"))??;
        let got = bob.cli(&[
            "files",
            "get",
            &bob_id.to_string(),
            "--out",
            out.to_str().context("path")?,
        ])?;
        ensure!(
            got.status.success(),
            "bob's fetch: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        ensure!(std::fs::read(&out)? == data, "bob's copy differs");

        let busy = statuses.iter().filter(|s| **s == FileStatus::Busy).count();
        let forbidden = statuses
            .iter()
            .filter(|s| **s == FileStatus::Forbidden)
            .count();
        ensure!(
            busy >= 1,
            "no request over the cap was refused: {statuses:?}"
        );
        ensure!(
            busy + forbidden == BURST,
            "every request is either refused busy or answered: {statuses:?}"
        );
        // Nothing leaks: every slot was given back, and alice counted the refusals.
        let stats = wait_for(TIMEOUT, "alice's serving slots given back", || {
            let s = alice.api_get("/v1/files/stats").ok()?;
            (s["serving"] == 0).then_some(s)
        })?;
        ensure!(
            stats["refused_busy"].as_u64() == Some(busy as u64),
            "{stats} vs {busy} busy"
        );
        Ok(())
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &bob]);
    }
}
