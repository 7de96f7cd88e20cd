//! Managing contacts and conversations end to end (issue 20), with real `rhizo` processes on
//! 127.0.0.1: a block holds against direct sends and mailboxes, and "delete for everyone"
//! reaches the peer. The rules themselves are tested in rhizo-engine (`manage/tests.rs`).
//!
//! ```text
//!  hub, r1, r2 (mailbox replicas) ── alice ──▶ bob: "hello"; bob blocks alice
//!  alice ──▶ bob (online): refused, `failed` at alice; bob offline: alice's text stored on the
//!  replicas ─▶ bob fetches: acknowledged and dropped, never shown; the refusal goes back and
//!  alice's node marks it `failed` ─▶ unblock ─▶ delivered again
//!  alice ──▶ bob "oops"; `rhizo messages delete ID --for-everyone` ─▶ gone on bob's node
//! ```

use std::{path::Path, time::Duration};

use anyhow::{anyhow, ensure};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for records to be published, messages to be stored or delivered (normally seconds).
const TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: usize = 64 * 1024;

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    // Without the DEBUG lines (dial failures of stopped nodes drown the rest).
    let logs: Vec<String> = nodes
        .iter()
        .map(|n| {
            let tail = n.logs_tail(LOG_TAIL_BYTES * 8);
            tail.lines()
                .filter(|l| !l.contains(" DEBUG "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// Run arguments: bootstrap from `bootstrap` (if any), fast mailbox polling and replication.
fn args(bootstrap: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = ["--mailbox-poll-secs", "1", "--mailbox-replicate-secs", "2"]
        .map(String::from)
        .to_vec();
    if let Some(b) = bootstrap {
        a.push("--bootstrap".into());
        a.push(b.into());
    }
    a
}

/// `rhizo ARGS` on `node`, which must succeed; its stdout.
fn cli(node: &TestNode, args: &[&str]) -> anyhow::Result<String> {
    let out = node.cli(args)?;
    ensure!(
        out.status.success(),
        "`rhizo {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn texts(node: &TestNode, contact: &str, direction: &str) -> anyhow::Result<Vec<String>> {
    Ok(node
        .history(contact)?
        .iter()
        .filter(|m| m["direction"] == direction)
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect())
}

/// Waits until `node`'s outgoing message `id` to `contact` is in `state`.
fn wait_state(node: &TestNode, contact: &str, id: i64, state: &str) -> anyhow::Result<()> {
    let mut last = String::new();
    wait_for(TIMEOUT, "the message's state", || {
        let list = node.history(contact).ok()?;
        let m = list.iter().find(|m| m["id"] == id)?;
        last = m["state"].as_str().unwrap_or("?").to_string();
        (last == state).then_some(())
    })
    .map_err(|e| anyhow!("{e}: message {id} is {last}, want {state}"))
}

fn held(node: &TestNode) -> u64 {
    node.api_get("/v1/mailbox")
        .ok()
        .and_then(|s| s["held"]["count"].as_u64())
        .unwrap_or(u64::MAX)
}

/// When the oldest entry a replica holds was stored (unix ms), if it holds any.
fn oldest_held(node: &TestNode) -> Option<i64> {
    node.api_get("/v1/mailbox").ok()?["held"]["oldest"].as_i64()
}

fn id_of(message: &Value) -> anyhow::Result<i64> {
    message["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no id: {message}"))
}

#[test]
fn block_nothing_from_the_blocked_contact_is_shown_or_stored_including_from_mailboxes() {
    let mut infra: Vec<TestNode> = ["hub", "r1", "r2"]
        .iter()
        .map(|n| TestNode::init(bin(), n).expect("init infrastructure"))
        .collect();
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        infra[0].start(&args(None))?;
        let hub = infra[0].listen_addr()?;
        TestNode::start_all(&mut infra[1..], &args(Some(&hub)))?;
        alice.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        alice.send_when_ready("bob", "hello", TIMEOUT)?;
        wait_for(TIMEOUT, "hello at bob", || {
            (texts(&bob, "alice", "in").ok()? == ["hello"]).then_some(())
        })?;

        let said = cli(&bob, &["contacts", "block", "alice"])?;
        ensure!(said.contains("Blocked alice"), "{said}");
        let listed = cli(&bob, &["conversations"])?;
        ensure!(
            listed.contains("alice") && listed.contains("blocked"),
            "{listed}"
        );

        // Directly: refused for good (the sender's node marks it failed).
        let direct = alice.send_when_ready("bob", "direct while blocked", TIMEOUT)?;
        wait_state(&alice, "bob", id_of(&direct)?, "failed")?;

        // Through the mailbox: stored on the replicas while bob is offline…
        bob.stop()?;
        let stored = alice.send_when_ready("bob", "mailbox while blocked", TIMEOUT)?;
        wait_state(&alice, "bob", id_of(&stored)?, "stored")?;
        alice.stop()?;
        ensure!(
            infra.iter().map(held).sum::<u64>() > 0,
            "no replica holds the envelope"
        );
        // …fetched by bob: acknowledged, so every replica drops it (what a replica holds
        // afterwards, if anything, is bob's signed refusal for alice, stored later), and
        // never shown.
        let before: Vec<Option<i64>> = infra.iter().map(oldest_held).collect();
        bob.start(&args(Some(&hub)))?;
        wait_for(
            TIMEOUT,
            "the replicas to drop what they held for bob",
            || {
                infra
                    .iter()
                    .zip(&before)
                    .all(|(n, b)| match (b, oldest_held(n)) {
                        (Some(b), Some(now)) => now > *b,
                        (Some(_), None) | (None, _) => true,
                    })
                    .then_some(())
            },
        )?;
        ensure!(
            texts(&bob, "alice", "in")? == ["hello"],
            "a blocked text was shown"
        );
        let requests = bob.api_get("/v1/requests")?;
        ensure!(requests == Value::Array(vec![]), "requests: {requests}");
        let events = bob.logs();
        ensure!(
            !events.contains("while blocked"),
            "a blocked text reached the logs"
        );

        // The refusal reaches alice through her mailbox: failed, never sent again. Both
        // fetches were acknowledged: the replicas hold nothing any more.
        alice.start(&args(Some(&hub)))?;
        wait_state(&alice, "bob", id_of(&stored)?, "failed")?;
        wait_for(TIMEOUT, "the replicas to drop what they held", || {
            infra.iter().all(|n| held(n) == 0).then_some(())
        })?;

        // Every block can be undone.
        cli(&bob, &["contacts", "unblock", "alice"])?;
        alice.send_when_ready("bob", "after unblock", TIMEOUT)?;
        wait_for(TIMEOUT, "the text after the unblock at bob", || {
            texts(&bob, "alice", "in")
                .ok()?
                .contains(&"after unblock".to_string())
                .then_some(())
        })?;
        ensure!(
            texts(&bob, "alice", "in")? == ["hello", "after unblock"],
            "bob shows {:?}",
            texts(&bob, "alice", "in")?
        );
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob]);
        fail_with_logs(&e, &all);
    }
}

#[test]
fn delete_for_everyone_reaches_a_peer_and_removes_the_message_there() {
    let mut hub = TestNode::init(bin(), "hub").expect("init hub");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&args(None))?;
        let hub_addr = hub.listen_addr()?;
        alice.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        alice.send_when_ready("bob", "keep this", TIMEOUT)?;
        let oops = alice.send_when_ready("bob", "oops, wrong chat", TIMEOUT)?;
        wait_for(TIMEOUT, "both texts at bob", || {
            (texts(&bob, "alice", "in").ok()?.len() == 2).then_some(())
        })?;

        // Bob cannot delete alice's message for everyone: one clear line.
        let bobs_copy = bob
            .history("alice")?
            .iter()
            .find(|m| m["text"] == "oops, wrong chat")
            .map(id_of)
            .ok_or_else(|| anyhow!("bob has no copy"))??;
        let refused = bob.cli(&[
            "messages",
            "delete",
            &bobs_copy.to_string(),
            "--for-everyone",
        ])?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        ensure!(
            !refused.status.success() && stderr.contains("only messages you sent"),
            "{stderr}"
        );

        let said = cli(
            &alice,
            &[
                "messages",
                "delete",
                &id_of(&oops)?.to_string(),
                "--for-everyone",
            ],
        )?;
        ensure!(said.contains("best effort"), "{said}");
        ensure!(texts(&alice, "bob", "out")? == ["keep this"]);
        wait_for(TIMEOUT, "the message to go on bob's node", || {
            (texts(&bob, "alice", "in").ok()? == ["keep this"]).then_some(())
        })?;

        // The rest of the management commands, once each on a real node.
        cli(&bob, &["conversations", "mute", "alice"])?;
        cli(&bob, &["conversations", "archive", "alice"])?;
        ensure!(!cli(&bob, &["conversations"])?.contains("alice"));
        let archived = cli(&bob, &["conversations", "--archived"])?;
        ensure!(archived.contains("muted, archived"), "{archived}");
        cli(&bob, &["contacts", "rename", "alice", "ally"])?;
        cli(&bob, &["conversations", "delete", "ally"])?;
        ensure!(texts(&bob, "ally", "in")?.is_empty());
        cli(&bob, &["contacts", "remove", "ally"])?;
        ensure!(!cli(&bob, &["contacts", "list"])?.contains("ally"));
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&hub, &alice, &bob]);
    }
}
