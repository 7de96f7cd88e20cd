//! Message requests with real processes: a first contact from someone the recipient has not
//! added is held (the sender sees `sent`, not `failed`), shown with the sender's UID and safety
//! number, and delivered in order once accepted, directly or from the mailbox.

use std::{path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for records to be published and messages to move (normally seconds).
const TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: usize = 64 * 1024;

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

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

/// Waits until the outgoing message `id` to `contact` is in `state`.
fn wait_state(node: &TestNode, contact: &str, id: i64, state: &str) -> anyhow::Result<()> {
    let mut last = String::new();
    wait_for(TIMEOUT, "an outgoing message to reach its state", || {
        let list = node.history(contact).ok()?;
        let m = list.iter().find(|m| m["id"] == id)?;
        last = m.to_string();
        (m["state"] == state).then_some(())
    })
    .map_err(|e| anyhow!("{e}: want {state}, last {last}"))
}

/// Waits until `node` received exactly `want` from `contact`, in order.
fn wait_received(node: &TestNode, contact: &str, want: &[&str]) -> anyhow::Result<()> {
    let mut last = Vec::new();
    wait_for(TIMEOUT, "messages to arrive", || {
        last = node
            .history(contact)
            .map(|l| {
                l.iter()
                    .filter(|m| m["direction"] == "in")
                    .filter_map(|m| m["text"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        (last == want).then_some(())
    })
    .map_err(|e| anyhow!("{e}: got {last:?}, want {want:?}"))
}

/// Waits until `node` lists a request from `uid` whose identity was found (safety number).
fn wait_request(node: &TestNode, uid: &str) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    wait_for(TIMEOUT, "the request, with the sender's identity", || {
        last = node.api_get("/v1/requests").ok()?;
        last.as_array()?
            .iter()
            .find(|r| r["uid"] == uid && r["safety_number"].is_string())
            .cloned()
    })
    .map_err(|e| anyhow!("{e}: requests {last}"))
}

fn id_of(message: &Value) -> anyhow::Result<i64> {
    message["id"].as_i64().context("message has no id")
}

/// The first-contact flow: alice adds bob's ticket and writes; bob has not added her.
/// Her first message is held (she sees `sent`), bob sees the request with her UID and safety
/// number, and adding her by ticket accepts it: the message appears, alice sees `delivered`,
/// and the conversation works both ways. Carol's request is accepted with `rhizo requests
/// accept`; dave's is blocked.
#[test]
fn a_stranger_writes_first_and_the_conversation_works_once_accepted() {
    let mut hub = TestNode::init(Path::new(BIN), "hub").expect("init hub");
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init alice");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init bob");
    let mut carol = TestNode::init(Path::new(BIN), "carol").expect("init carol");
    let mut dave = TestNode::init(Path::new(BIN), "dave").expect("init dave");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&args(None))?;
        let hub_addr = hub.listen_addr()?;
        alice.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        carol.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        dave.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        let bob_ticket = bob.ticket()?;

        // Alice adds bob and writes; bob does not know her.
        alice.api_post(
            "/v1/contacts",
            &json!({"ticket": bob_ticket, "name": "bob"}),
        )?;
        let hi = alice.send_when_ready("bob", "hi bob, it's alice", TIMEOUT)?;
        wait_state(&alice, "bob", id_of(&hi)?, "sent")?;
        let request = wait_request(&bob, alice.uid())?;
        ensure!(
            request["envelopes"].as_u64() >= Some(2),
            "a Welcome and a message held: {request}"
        );
        let listed = bob.cli(&["requests"])?;
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        ensure!(
            listed.contains(alice.uid()) && listed.contains("safety number:"),
            "rhizo requests: {listed}"
        );
        // Still held, not failed, while bob decides.
        ensure!(
            alice.history("bob")?.iter().all(|m| m["state"] != "failed"),
            "nothing failed"
        );

        // Bob adds alice by ticket: that accepts the request.
        let published_before = bob.logs().matches("published KeyPackages").count();
        let alice_ticket = alice.ticket()?;
        bob.api_post(
            "/v1/contacts",
            &json!({"ticket": alice_ticket, "name": "alice"}),
        )?;
        wait_received(&bob, "alice", &["hi bob, it's alice"])?;
        wait_state(&alice, "bob", id_of(&hi)?, "delivered")?;
        let requests = bob.api_get("/v1/requests")?;
        ensure!(
            requests.as_array().is_some_and(Vec::is_empty),
            "request gone: {requests}"
        );
        // Both ways from here.
        let second = alice.send_when_ready("bob", "second", TIMEOUT)?;
        wait_state(&alice, "bob", id_of(&second)?, "delivered")?;
        wait_received(&bob, "alice", &["hi bob, it's alice", "second"])?;
        let reply = bob.send_when_ready("alice", "welcome, alice", TIMEOUT)?;
        wait_state(&bob, "alice", id_of(&reply)?, "delivered")?;
        wait_received(&alice, "bob", &["welcome, alice"])?;

        // Carol writes; bob accepts her with the CLI. (She fetches bob's KeyPackages after he
        // republished them: alice's Welcome used one up, and a Welcome made with a used one is
        // refused, which closes that conversation on the sender's side.)
        wait_for(TIMEOUT, "bob's fresh KeyPackages", || {
            (bob.logs().matches("published KeyPackages").count() > published_before).then_some(())
        })?;
        carol.api_post(
            "/v1/contacts",
            &json!({"ticket": bob.ticket()?, "name": "bob"}),
        )?;
        let from_carol = carol.send_when_ready("bob", "hello from carol", TIMEOUT)?;
        wait_state(&carol, "bob", id_of(&from_carol)?, "sent")?;
        wait_request(&bob, carol.uid())?;
        let out = bob.cli(&["requests", "accept", carol.uid(), "--name", "carol"])?;
        ensure!(
            out.status.success(),
            "accept: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            said.contains("carol") && said.contains("Safety number"),
            "{said}"
        );
        wait_received(&bob, "carol", &["hello from carol"])?;
        wait_state(&carol, "bob", id_of(&from_carol)?, "delivered")?;

        // Dave writes; bob blocks him: what he sent is dropped, what he sends next fails.
        dave.api_post(
            "/v1/contacts",
            &json!({"ticket": bob.ticket()?, "name": "bob"}),
        )?;
        dave.send_when_ready("bob", "buy now", TIMEOUT)?;
        wait_request(&bob, dave.uid())?;
        let out = bob.cli(&["requests", "block", dave.uid()])?;
        ensure!(
            out.status.success(),
            "block: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let next = dave.send_when_ready("bob", "buy now!!", TIMEOUT)?;
        wait_state(&dave, "bob", id_of(&next)?, "failed")?;
        let blocked = bob.api_get("/v1/blocked")?;
        ensure!(
            blocked.to_string().contains(dave.uid()),
            "block list: {blocked}"
        );
        ensure!(
            bob.api_get("/v1/requests")?
                .as_array()
                .is_some_and(Vec::is_empty),
            "no requests left"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&hub, &alice, &bob, &carol, &dave]);
    }
}

/// Offline first contact through the mailbox: bob is offline and has not added alice. Her
/// Welcome and message wait on the replicas; bob's node fetches them as a request (and the
/// replicas drop them); accepting delivers them in order and alice sees `delivered`.
#[test]
fn an_offline_first_contact_from_a_stranger_arrives_through_the_mailbox() {
    let mut hub = TestNode::init(Path::new(BIN), "hub").expect("init hub");
    let mut relays: Vec<TestNode> = (1..3)
        .map(|i| TestNode::init(Path::new(BIN), &format!("r{i}")).expect("init replica"))
        .collect();
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init alice");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&args(None))?;
        let hub_addr = hub.listen_addr()?;
        for r in &mut relays {
            r.start(&args(Some(&hub_addr)))?;
        }
        bob.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        let bob_ticket = bob.ticket()?;
        bob.stop()?;

        alice.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        alice.api_post(
            "/v1/contacts",
            &json!({"ticket": bob_ticket, "name": "bob"}),
        )?;
        let first = alice.send_when_ready("bob", "are you there?", TIMEOUT)?;
        let second = alice.send_when_ready("bob", "write back when you can", TIMEOUT)?;
        wait_state(&alice, "bob", id_of(&second)?, "stored")?;

        bob.start(&args(Some(&hub_addr)))?;
        let request = wait_request(&bob, alice.uid())?;
        ensure!(
            request["envelopes"].as_u64() >= Some(3),
            "the Welcome and both messages: {request}"
        );
        let out = bob.cli(&["requests", "accept", alice.uid(), "--name", "alice"])?;
        ensure!(
            out.status.success(),
            "accept: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_received(
            &bob,
            "alice",
            &["are you there?", "write back when you can"],
        )?;
        wait_state(&alice, "bob", id_of(&first)?, "delivered")?;
        wait_state(&alice, "bob", id_of(&second)?, "delivered")?;
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = vec![&hub, &alice, &bob];
        all.extend(relays.iter());
        fail_with_logs(&e, &all);
    }
}
