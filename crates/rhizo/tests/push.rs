//! Prompt delivery and presence, with real `rhizo` processes on 127.0.0.1 (issue 20): mailbox
//! push, presence events and typing indicators, and a pair of nodes of which one takes no
//! batch frames (1:1 and group fan-out).
//!
//! ```text
//!  hub, r1, r2 (mailbox replicas) ── alice ──✗ bob (bob bans alice: no direct connection)
//!  alice stores on the replicas ─▶ a replica pushes to bob ─▶ bob fetches from it at once
//!  (bob polls every 600 s: only the push can bring the message within the test's bound)
//!  every replica restarts (same address) ─▶ its saved subscriptions still make it push
//! ```

use std::{path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, befriend, free_loopback_port, wait_for};
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
    let mut a: Vec<String> = ["--mailbox-poll-secs", poll].map(String::from).to_vec();
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
        received(node, contact)
            .iter()
            .any(|t| t == text)
            .then_some(())
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
            // `stored` lasts only until bob's receipt comes back, itself through a replica's
            // push to alice: a slow poll here can see `delivered` (or `read`) first.
            wait_for(TIMEOUT, "the message to be stored on replicas", || {
                matches!(
                    out_state(&alice, "bob", text).as_deref(),
                    Some("stored" | "delivered" | "read")
                )
                .then_some(())
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

/// `rhizo run` arguments of a replica that keeps its address across restarts.
fn fixed_args(port: u16, bootstrap: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = [
        "--listen".to_string(),
        format!("/ip4/127.0.0.1/tcp/{port}"),
        "--api".into(),
        "127.0.0.1:0".into(),
        "--no-mdns".into(),
    ]
    .to_vec();
    a.extend(args(bootstrap, "1"));
    a
}

/// Starts (or restarts) the replicas on their fixed ports: all spawned, then each waited for.
fn start_replicas(replicas: &mut [TestNode], ports: &[u16]) -> anyhow::Result<()> {
    let hub = format!("/ip4/127.0.0.1/tcp/{}", ports[0]);
    // The hub listens before the others dial it: a node whose only bootstrap peer refuses the
    // connection exits.
    let (first, rest) = replicas.split_first_mut().expect("a hub");
    first.spawn(&fixed_args(ports[0], None))?;
    first.wait_ready()?;
    for (node, port) in rest.iter_mut().zip(&ports[1..]) {
        node.spawn(&fixed_args(*port, Some(hub.as_str())))?;
    }
    for node in rest.iter_mut() {
        node.wait_ready()?;
    }
    Ok(())
}

/// A replica's push subscriptions survive its restart. Bob fetched from the replicas (each
/// answered fetch subscribes him), then every replica stops and starts again on the same
/// address. Bob fetches only every 600 s or when pushed, so he has not fetched from any of
/// the restarted replicas: when a message alice then stores on them is shown at bob within
/// the bound, a restarted replica pushed from a subscription it took back from its store.
#[test]
fn push_subscriptions_survive_a_replica_restart() {
    let names = ["hub", "r1", "r2"];
    let mut replicas: Vec<TestNode> = names
        .iter()
        .map(|n| TestNode::init(bin(), n).expect("init replica"))
        .collect();
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        let ports = names
            .iter()
            .map(|_| free_loopback_port())
            .collect::<anyhow::Result<Vec<u16>>>()?;
        start_replicas(&mut replicas, &ports)?;
        let hub = format!("/ip4/127.0.0.1/tcp/{}", ports[0]);
        alice.start_and_publish(&args(Some(&hub), LONG_POLL), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub), LONG_POLL), TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        bob.api_post(
            "/v1/bans",
            &json!({"target": alice.peer_id(), "reason": "push restart test"}),
        )?;
        alice.send_when_ready("bob", "before the restart", TIMEOUT)?;
        wait_shown(&bob, "alice", "before the restart")?;

        for node in replicas.iter_mut() {
            node.stop()?;
        }
        start_replicas(&mut replicas, &ports)?;
        wait_for(
            TIMEOUT,
            "a restarted replica to take back subscriptions",
            || {
                replicas
                    .iter()
                    .any(|r| {
                        r.logs()
                            .contains("push subscriptions taken back from the store")
                    })
                    .then_some(())
            },
        )?;
        let pushed_before = bob
            .logs()
            .matches("fetched from the mailbox after a push")
            .count();
        alice.api_post(
            "/v1/message",
            &json!({"to": "bob", "text": "after the restart"}),
        )?;
        wait_shown(&bob, "alice", "after the restart")?;
        // The fetch logs its count once it has asked every replica that pushed, which can be
        // after the message shows: wait for the line rather than read the log once.
        wait_for(
            TIMEOUT,
            "bob's fetch because of a push after the replicas restarted",
            || {
                (bob.logs()
                    .matches("fetched from the mailbox after a push")
                    .count()
                    > pushed_before)
                    .then_some(())
            },
        )?;
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = replicas.iter().collect();
        all.extend([&alice, &bob]);
        fail_with_logs(&e, &all);
    }
}

/// Reads the event stream until `needle` shows up (or the client's timeout ends the read);
/// everything read.
fn read_events_until(response: &mut impl std::io::Read, needle: &str) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 1 << 20 && !seen.contains(needle) {
        match response.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    seen
}

fn presence_of(node: &TestNode, contact: &str) -> Option<String> {
    let list = node.api_get("/v1/contacts").ok()?;
    list.as_array()?
        .iter()
        .find(|c| c["name"] == contact)
        .and_then(|c| c["presence"]["state"].as_str().map(String::from))
}

/// Presence events come when a contact's node stops and starts; a contact that hides its
/// presence shows as hidden.
#[test]
fn presence_events_follow_a_contact_node_stopping_and_starting() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let boot = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start(&boot)?;
        befriend(&alice, "alice", &bob, "bob")?;
        bob.send_when_ready("alice", "hello", TIMEOUT)?;
        wait_shown(&alice, "bob", "hello")?;
        wait_for(TIMEOUT, "bob online", || {
            (presence_of(&alice, "bob").as_deref() == Some("online")).then_some(())
        })?;
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()?;
        let mut events = client
            .get(format!(
                "http://{}/v1/events",
                alice.api_addr().context("api")?
            ))
            .bearer_auth(alice.api_token()?)
            .send()?;
        ensure!(events.status().is_success(), "events: {}", events.status());

        // Bob types: alice gets a `typing` event (nothing stored); a second one at once is
        // rate-limited.
        let typing = bob.api_post("/v1/conversations/alice/typing", &json!({}))?;
        ensure!(typing["sent"].as_u64() >= Some(1), "typing: {typing}");
        let seen = read_events_until(&mut events, "\"type\":\"typing\"");
        ensure!(
            seen.contains("\"type\":\"typing\"") && seen.contains("\"conversation\":\"bob\""),
            "no typing event: {seen}"
        );
        let again = bob.api_post("/v1/conversations/alice/typing", &json!({}))?;
        ensure!(again["skipped"] == "rate_limited", "typing again: {again}");

        bob.stop()?;
        let seen = read_events_until(&mut events, "\"state\":\"offline\"");
        ensure!(
            seen.contains("\"type\":\"presence\"") && seen.contains("\"contact\":\"bob\""),
            "no offline presence event: {seen}"
        );
        let shown = alice.cli(&["contacts", "list"])?;
        let shown = String::from_utf8_lossy(&shown.stdout).to_string();
        ensure!(shown.contains("last seen"), "rhizo contacts: {shown}");

        bob.start(&boot)?;
        let seen = read_events_until(&mut events, "\"state\":\"online\"");
        ensure!(
            seen.contains("\"contact\":\"bob\"") && seen.contains("\"state\":\"online\""),
            "no online presence event: {seen}"
        );

        // Bob hides his presence: alice's node shows him as hidden, however connected.
        bob.stop()?;
        let mut hidden = boot.clone();
        hidden.push("--hide-presence".into());
        bob.start(&hidden)?;
        bob.send_when_ready("alice", "still here", TIMEOUT)?;
        wait_shown(&alice, "bob", "still here")?;
        wait_for(TIMEOUT, "bob hidden", || {
            (presence_of(&alice, "bob").as_deref() == Some("hidden")).then_some(())
        })?;
        // A node that hides its presence sends no typing indicators.
        let typing = bob.api_post("/v1/conversations/alice/typing", &json!({}))?;
        ensure!(
            typing["skipped"] == "hidden",
            "typing while hidden: {typing}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
}

/// A node that takes no batch frames (as one older than them) still gets everything from a
/// node that sends them, and neither counts the other as misbehaving.
#[test]
fn a_node_without_batch_frames_still_gets_everything_without_reputation_loss() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&[
            "--bootstrap".into(),
            alice.listen_addr()?,
            "--no-batch-frames".into(),
        ])?;
        befriend(&alice, "alice", &bob, "bob")?;
        // The conversation's Welcome and the first text go out together: a batch frame.
        let mut texts = vec!["first".to_string()];
        alice.send_when_ready("bob", "first", TIMEOUT)?;
        for i in 0..20 {
            let text = format!("burst #{i:02}");
            alice.api_post("/v1/message", &json!({"to": "bob", "text": text}))?;
            texts.push(text);
        }
        wait_for(TIMEOUT, "every message at bob", || {
            (received(&bob, "alice") == texts).then_some(())
        })
        .map_err(|e| anyhow!("{e}: bob has {:?}", received(&bob, "alice")))?;
        for (node, other) in [(&bob, &alice), (&alice, &bob)] {
            let peers = node.api_get("/v1/peers")?;
            let score = peers["peers"]
                .as_array()
                .and_then(|l| l.iter().find(|p| p["peer_id"] == other.peer_id()))
                .and_then(|p| p["reputation"].as_i64())
                .unwrap_or(0);
            ensure!(
                score >= 0,
                "reputation {score} of a peer that sent nothing wrong"
            );
        }
        ensure!(
            alice.logs().contains("sending the envelopes one by one"),
            "alice never fell back to single envelopes"
        );
        group_burst_to_a_node_without_batch_frames(&alice, &bob)?;
        last_seen_survives_a_restart(&mut alice, &mut bob)
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
}

/// A group's fan-out to `bob` (who takes no batch frames): the envelopes go one by one,
/// directly (there are no mailbox replicas here), all in order.
fn group_burst_to_a_node_without_batch_frames(
    alice: &TestNode,
    bob: &TestNode,
) -> anyhow::Result<()> {
    let info = wait_for(TIMEOUT, "bob's KeyPackages", || {
        match alice.api_post_raw("/v1/groups", &json!({"name": "old", "members": ["bob"]})) {
            Ok((200..=299, answer)) => Some(
                serde_json::from_str::<serde_json::Value>(&answer).map_err(anyhow::Error::from),
            ),
            Ok((503, answer)) if answer.contains("NO_KEY_PACKAGES") => None,
            Ok((status, answer)) => Some(Err(anyhow!("POST /v1/groups: {status} {answer}"))),
            Err(e) => Some(Err(e)),
        }
    })??;
    let id = info["id"].as_str().context("no group id")?.to_string();
    let group_texts = |node: &TestNode| -> Vec<String> {
        node.api_get(&format!("/v1/groups/{id}/messages?limit=1000"))
            .ok()
            .and_then(|l| l.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|m| m["direction"] == "in")
            .filter_map(|m| m["text"].as_str().map(String::from))
            .collect()
    };
    let mut texts = Vec::new();
    for i in 0..20 {
        let text = format!("group #{i:02}");
        alice.api_post(&format!("/v1/groups/{id}/messages"), &json!({"text": text}))?;
        texts.push(text);
    }
    wait_for(TIMEOUT, "every group text at bob", || {
        (group_texts(bob) == texts).then_some(())
    })
    .map_err(|e| anyhow!("{e}: bob has {:?}", group_texts(bob)))?;
    ensure!(
        alice
            .logs()
            .contains("group: a device takes no batch frames: sending the envelopes one by one"),
        "alice never fell back to single group envelopes"
    );
    Ok(())
}

fn last_seen_of(node: &TestNode, contact: &str) -> Option<i64> {
    let list = node.api_get("/v1/contacts").ok()?;
    list.as_array()?
        .iter()
        .find(|c| c["name"] == contact)
        .and_then(|c| c["presence"]["last_seen"].as_i64())
}

/// Bob goes offline, then alice's node restarts: she still knows when she last saw him.
fn last_seen_survives_a_restart(alice: &mut TestNode, bob: &mut TestNode) -> anyhow::Result<()> {
    wait_for(TIMEOUT, "bob online", || {
        (presence_of(alice, "bob").as_deref() == Some("online")).then_some(())
    })?;
    bob.stop()?;
    let seen = wait_for(TIMEOUT, "bob offline with a last-seen time", || {
        (presence_of(alice, "bob").as_deref() == Some("offline"))
            .then(|| last_seen_of(alice, "bob"))
            .flatten()
    })
    .map_err(|e| anyhow!("{e}: contacts {:?}", alice.api_get("/v1/contacts").ok()))?;
    alice.stop()?;
    alice.start(&[])?;
    wait_for(TIMEOUT, "the same last-seen time after the restart", || {
        (last_seen_of(alice, "bob") == Some(seen)).then_some(())
    })
    .map_err(|e| {
        anyhow!(
            "{e}: last_seen {:?}, saved {seen}",
            last_seen_of(alice, "bob")
        )
    })
}
