//! Prompt delivery and presence, with real `rhizo` processes on 127.0.0.1 (issue 20): mailbox
//! push, presence events, and a pair of nodes of which one takes no batch frames.
//!
//! ```text
//!  hub, r1, r2 (mailbox replicas) ── alice ──✗ bob (bob bans alice: no direct connection)
//!  alice stores on the replicas ─▶ a replica pushes to bob ─▶ bob fetches from it at once
//!  (bob polls every 600 s: only the push can bring the message within the test's bound)
//! ```

use std::{path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for records to be published and messages to arrive (normally seconds); far below
/// the 600 s mailbox poll interval the recipients use here.
const TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: usize = 64 * 1024;
/// The recipients' mailbox poll interval: longer than any bound of this test.
const LONG_POLL: &str = "600";

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

fn args(bootstrap: Option<&str>, poll: &str) -> Vec<String> {
    let mut a: Vec<String> = ["--mailbox-poll-secs", poll]
        .map(String::from)
        .to_vec();
    if let Some(b) = bootstrap {
        a.push("--bootstrap".into());
        a.push(b.into());
    }
    a
}

fn start_infra(n: usize) -> anyhow::Result<(Vec<TestNode>, String)> {
    let mut nodes = Vec::new();
    let mut hub = TestNode::init(bin(), "hub")?;
    hub.start(&args(None, "1"))?;
    let hub_addr = hub.listen_addr()?;
    nodes.push(hub);
    for i in 1..n {
        nodes.push(TestNode::init(bin(), &format!("r{i}"))?);
    }
    TestNode::start_all(&mut nodes[1..], &args(Some(&hub_addr), "1"))?;
    Ok((nodes, hub_addr))
}

fn received(node: &TestNode, contact: &str) -> Vec<String> {
    node.history(contact)
        .unwrap_or_default()
        .iter()
        .filter(|m| m["direction"] == "in")
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

fn wait_shown(node: &TestNode, contact: &str, text: &str) -> anyhow::Result<()> {
    wait_for(TIMEOUT, "the message to be shown", || {
        received(node, contact).iter().any(|t| t == text).then_some(())
    })
    .map_err(|e| anyhow!("{e}: {contact}'s messages: {:?}", received(node, contact)))
}

fn out_state(node: &TestNode, contact: &str, text: &str) -> Option<String> {
    node.history(contact)
        .ok()?
        .iter()
        .find(|m| m["direction"] == "out" && m["text"] == text)
        .and_then(|m| m["state"].as_str().map(String::from))
}

/// A recipient that is online but not reachable from the sender gets a message the sender
/// stored on the replicas within the bound, though it polls its mailbox only every 600 s: a
/// replica pushed.
#[test]
fn a_replica_pushes_to_an_online_recipient_the_sender_cannot_reach() {
    let (mut infra, hub) = start_infra(3).expect("infrastructure nodes");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start_and_publish(&args(Some(&hub), LONG_POLL), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub), LONG_POLL), TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        // Bob refuses every connection with alice: she reaches him only through the replicas.
        bob.api_post(
            "/v1/bans",
            &json!({"target": alice.peer_id(), "reason": "push test"}),
        )?;
        for (i, text) in ["first, through the replicas", "second, pushed"]
            .into_iter()
            .enumerate()
        {
            alice.send_when_ready("bob", text, TIMEOUT)?;
            wait_for(TIMEOUT, "the message to be stored on replicas", || {
                (out_state(&alice, "bob", text).as_deref() == Some("stored")).then_some(())
            })
            .with_context(|| format!("message {i}"))?;
            // The first may come with bob's first fetches; by the second, bob has fetched
            // from a replica and polls again only in 600 s.
            wait_shown(&bob, "alice", text)?;
        }
        ensure!(
            bob.logs().contains("fetched from the mailbox after a push"),
            "bob never fetched because of a push"
        );
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob]);
        fail_with_logs(&e, &all);
    }
    for n in &mut infra {
        n.kill();
    }
}
