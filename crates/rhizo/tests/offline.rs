//! Offline delivery end to end, with real `rhizo` processes on 127.0.0.1: DHT mailboxes,
//! first contact with someone never online at the same time, replica loss and churn, and
//! signed profiles.
//!
//! ```text
//!  hub, r1..r4 (mailbox replicas) ── alice ──▶ bob (offline), carol (offline, never met alice)
//!  alice offline ─▶ 2 replicas killed ─▶ bob, carol online: fetch, decrypt, receipts ─▶
//!  alice back: every message `delivered`
//! ```
//!
//! Nodes run with `--mailbox-poll-secs 1 --mailbox-replicate-secs 2` so the periodic work
//! happens within the test's bounded waits.

use std::{collections::HashSet, path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for records to be published, messages to be stored or delivered (normally seconds).
const TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: usize = 64 * 1024;

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
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

fn add(node: &TestNode, ticket: &str, name: &str) -> anyhow::Result<()> {
    node.api_post("/v1/contacts", &json!({"ticket": ticket, "name": name}))?;
    Ok(())
}

fn texts(list: &[Value], direction: &str) -> Vec<String> {
    list.iter()
        .filter(|m| m["direction"] == direction)
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} #{i:02}")).collect()
}

/// Waits until every outgoing message to `contact` is in one of `states`; returns the history.
fn wait_states(
    node: &TestNode,
    contact: &str,
    count: usize,
    states: &[&str],
) -> anyhow::Result<Vec<Value>> {
    let mut last = String::new();
    wait_for(TIMEOUT, "outgoing messages to reach their state", || {
        let list = match node.history(contact) {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        let out: Vec<&Value> = list.iter().filter(|m| m["direction"] == "out").collect();
        last = out
            .iter()
            .map(|m| m["state"].as_str().unwrap_or("?").to_string())
            .collect::<Vec<_>>()
            .join(",");
        (out.len() == count
            && out
                .iter()
                .all(|m| states.contains(&m["state"].as_str().unwrap_or(""))))
        .then(|| Ok(list.clone()))
    })
    .map_err(|e| anyhow!("{e}; states to {contact}: [{last}]"))?
}

/// Waits until `node` has received exactly `want` from `contact`, in order.
fn wait_received(node: &TestNode, contact: &str, want: &[String]) -> anyhow::Result<()> {
    let mut last = Vec::new();
    wait_for(TIMEOUT, "messages to arrive", || {
        last = node
            .history(contact)
            .map(|l| texts(&l, "in"))
            .unwrap_or_default();
        (last.len() >= want.len()).then_some(())
    })
    .map_err(|e| anyhow!("{e}: got {} of {}: {last:?}", last.len(), want.len()))?;
    // Settle: a duplicate would show up as an extra entry.
    std::thread::sleep(Duration::from_millis(1500));
    let got = texts(&node.history(contact)?, "in");
    let unique: HashSet<&String> = got.iter().collect();
    ensure!(
        got == want,
        "{contact}'s messages: got {} ({} distinct), want {} in order:\n got {got:?}",
        got.len(),
        unique.len(),
        want.len()
    );
    Ok(())
}

fn held(node: &TestNode) -> anyhow::Result<u64> {
    let status = node.api_get("/v1/mailbox")?;
    status["held"]["count"]
        .as_u64()
        .ok_or_else(|| anyhow!("no held count: {status}"))
}

fn start_infra(n: usize) -> anyhow::Result<(Vec<TestNode>, String)> {
    let mut nodes = Vec::new();
    let mut hub = TestNode::init(bin(), "hub")?;
    hub.start(&args(None))?;
    let hub_addr = hub.listen_addr()?;
    nodes.push(hub);
    for i in 1..n {
        nodes.push(TestNode::init(bin(), &format!("r{i}"))?);
    }
    TestNode::start_all(&mut nodes[1..], &args(Some(&hub_addr)))?;
    Ok((nodes, hub_addr))
}

/// The issue's scenario: 8 nodes; bob offline gets 20 messages; carol, never online together
/// with alice, gets a new conversation (its Welcome through the mailbox); 2 of the 5 replicas
/// are killed before they come back; alice comes back to `delivered` everywhere.
#[test]
fn offline_users_get_everything_once_in_order_and_the_sender_sees_delivered() {
    let (mut infra, hub) = start_infra(5).expect("infrastructure nodes");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let mut carol = TestNode::init(bin(), "carol").expect("init carol");
    let result = (|| -> anyhow::Result<()> {
        // Each user comes online alone once: publishes records, exchanges tickets.
        alice.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        let alice_ticket = alice.ticket()?;
        alice.stop()?;
        bob.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        add(&bob, &alice_ticket, "alice")?;
        let bob_ticket = bob.ticket()?;
        bob.stop()?;
        carol.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        add(&carol, &alice_ticket, "alice")?;
        let carol_ticket = carol.ticket()?;
        carol.stop()?;

        // Alice, alone with the infrastructure: 20 to bob, a new conversation with carol.
        alice.start(&args(Some(&hub)))?;
        add(&alice, &bob_ticket, "bob")?;
        add(&alice, &carol_ticket, "carol")?;
        let to_bob = numbered("alice->bob", 20);
        let to_carol = numbered("alice->carol", 3);
        for t in &to_bob {
            alice.send_when_ready("bob", t, TIMEOUT)?;
        }
        for t in &to_carol {
            alice.send_when_ready("carol", t, TIMEOUT)?;
        }
        let list = wait_states(&alice, "bob", 20, &["stored"])?;
        let replicas: Vec<u64> = list.iter().filter_map(|m| m["replicas"].as_u64()).collect();
        ensure!(
            replicas.len() == 20 && replicas.iter().all(|r| *r >= 3),
            "replicas per message: {replicas:?}"
        );
        wait_states(&alice, "carol", 3, &["stored"])?;
        let shown = alice.cli(&["messages", "bob"])?;
        let shown = String::from_utf8_lossy(&shown.stdout);
        ensure!(shown.contains("stored on"), "rhizo messages: {shown}");
        let mailbox = alice.cli(&["mailbox"])?;
        let mailbox = String::from_utf8_lossy(&mailbox.stdout);
        ensure!(
            mailbox.contains("bob") && mailbox.contains("stored on"),
            "rhizo mailbox: {mailbox}"
        );
        alice.stop()?;

        // Two of the five replicas die (kill -9).
        infra[3].kill();
        infra[4].kill();

        // Bob and carol come online (alice is not): everything arrives once, in order.
        bob.start(&args(Some(&hub)))?;
        carol.start(&args(Some(&hub)))?;
        wait_received(&bob, "alice", &to_bob)?;
        wait_received(&carol, "alice", &to_carol)?;
        // Their delivery receipts wait in alice's mailbox.
        wait_for(TIMEOUT, "receipts stored for alice", || {
            let s = bob.api_get("/v1/mailbox").ok()?;
            let pending = s["queued"]
                .as_array()?
                .iter()
                .any(|q| q["state"] == "queued" || q["state"] == "sent");
            (!pending).then_some(())
        })?;
        bob.stop()?;
        carol.stop()?;

        // Alice comes back: every message is delivered.
        alice.start(&args(Some(&hub)))?;
        wait_states(&alice, "bob", 20, &["delivered", "read"])?;
        wait_states(&alice, "carol", 3, &["delivered", "read"])?;
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob, &carol]);
        fail_with_logs(&e, &all);
    }
}

/// A replica killed right after acknowledging still has the envelope after a restart; when
/// replicas leave, the others copy what they hold to the new closest nodes, so the mailbox
/// survives the loss of 4 of the original 5.
#[test]
fn mailbox_entries_survive_kill_9_and_churn() {
    let (mut infra, hub) = start_infra(5).expect("infrastructure nodes");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let mut spares = vec![
        TestNode::init(bin(), "s1").expect("init s1"),
        TestNode::init(bin(), "s2").expect("init s2"),
    ];
    let result = (|| -> anyhow::Result<()> {
        alice.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        add(&bob, &alice.ticket()?, "alice")?;
        add(&alice, &bob.ticket()?, "bob")?;
        bob.stop()?;

        let texts_sent = numbered("while bob was away", 5);
        for t in &texts_sent {
            alice.send_when_ready("bob", t, TIMEOUT)?;
        }
        wait_states(&alice, "bob", 5, &["stored"])?;
        // Every replica acknowledged after committing: kill -9 one at once, restart it.
        // infra[2] stays up throughout: the others (re)join through it.
        let anchor = infra[2].listen_addr()?;
        let victim = [0, 1, 3, 4]
            .into_iter()
            .find(|i| held(&infra[*i]).is_ok_and(|h| h >= 5))
            .context("no replica holds the 5 envelopes")?;
        // It committed them through its group-commit writer, and says so in /stats.
        let stats = infra[victim].api_get("/stats")?;
        let (commits, stores) = (
            stats["messaging"]["mailbox_commits"].as_u64().unwrap_or(0),
            stats["messaging"]["mailbox_stores"].as_u64().unwrap_or(0),
        );
        ensure!(
            stores >= 5 && (1..=stores).contains(&commits),
            "replica counters: {commits} commits for {stores} stores"
        );
        infra[victim].kill();
        infra[victim].start(&args(Some(&anchor)))?;
        ensure!(
            held(&infra[victim])? >= 5,
            "after kill -9 and restart the replica holds {}",
            held(&infra[victim])?
        );

        // Churn: two replicas leave, two new nodes join; the others copy to them.
        infra[3].kill();
        infra[4].kill();
        TestNode::start_all(&mut spares, &args(Some(&anchor)))?;
        for s in &spares {
            wait_for(TIMEOUT, "re-replication to a new node", || {
                held(s).is_ok_and(|h| h >= 5).then_some(())
            })?;
        }
        // Two more of the originals go: of the first five only one remains.
        infra[0].kill();
        infra[1].kill();
        bob.start(&args(Some(&anchor)))?;
        wait_received(&bob, "alice", &texts_sent)?;
        // Alice is online: bob's receipts reach her directly.
        wait_states(&alice, "bob", 5, &["delivered", "read"])?;
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob]);
        all.extend(spares.iter());
        fail_with_logs(&e, &all);
    }
}

/// Profiles: set (with an avatar, public), read from a node that is not a contact (DHT,
/// verified against the UID), update (the version grows), and received end-to-end by a contact.
#[test]
fn profiles_are_signed_versioned_and_readable_by_others() {
    let (infra, hub) = start_infra(3).expect("infrastructure nodes");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let mut dave = TestNode::init(bin(), "dave").expect("init dave");
    let result = (|| -> anyhow::Result<()> {
        alice.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub)), TIMEOUT)?;
        dave.start(&args(Some(&hub)))?;
        add(&bob, &alice.ticket()?, "alice")?;
        add(&alice, &bob.ticket()?, "bob")?;
        alice.send_when_ready("bob", "hello", TIMEOUT)?;
        wait_received(&bob, "alice", &["hello".to_string()])?;

        // A tiny PNG (the header is what the CLI checks).
        let avatar = alice.data_dir().join("avatar.png");
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        png.extend_from_slice(&[7u8; 200]);
        std::fs::write(&avatar, &png)?;
        let avatar_arg = avatar.to_string_lossy().to_string();
        let out = alice.cli(&[
            "profile",
            "set",
            "--name",
            "Alice A.",
            "--avatar",
            &avatar_arg,
            "--public",
            "--json",
        ])?;
        ensure!(
            out.status.success(),
            "profile set: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let set: Value = serde_json::from_slice(&out.stdout)?;
        let v1 = set["profile"]["version"].as_u64().context("version")?;
        ensure!(
            set["stored_on"].as_u64().unwrap_or(0) >= 1,
            "not stored: {set}"
        );

        // Dave is no contact of alice: he reads the public profile from the DHT.
        let read = |who: &TestNode, min_version: u64| -> anyhow::Result<Value> {
            let uid = alice.uid().to_string();
            wait_for(TIMEOUT, "alice's profile", || {
                let out = who.cli(&["profile", "show", &uid, "--json"]).ok()?;
                let p: Value = serde_json::from_slice(&out.stdout).ok()?;
                (p["version"].as_u64()? >= min_version).then_some(p)
            })
        };
        let p = read(&dave, v1)?;
        ensure!(p["name"] == "Alice A." && p["source"] == "dht", "{p}");
        ensure!(p["avatar_mime"] == "image/png", "{p}");

        // Update: the version grows; readers see the new one.
        let out = alice.cli(&["profile", "set", "--name", "Alice B.", "--public", "--json"])?;
        ensure!(
            out.status.success(),
            "profile set: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v2 = serde_json::from_slice::<Value>(&out.stdout)?["profile"]["version"]
            .as_u64()
            .context("version")?;
        ensure!(v2 > v1, "version did not grow: {v1} -> {v2}");
        let p = read(&dave, v2)?;
        ensure!(p["name"] == "Alice B.", "{p}");

        // Bob, a contact, got it end-to-end.
        wait_for(TIMEOUT, "bob to receive alice's profile", || {
            let out = bob.cli(&["profile", "show", "alice", "--json"]).ok()?;
            let p: Value = serde_json::from_slice(&out.stdout).ok()?;
            (p["name"] == "Alice B." && p["source"] == "contact").then_some(())
        })?;
        // The profile message is no chat message.
        let in_texts = texts(&bob.history("alice")?, "in");
        ensure!(in_texts == ["hello"], "bob's history: {in_texts:?}");

        // Bad input: a name too long is refused with a clear error.
        let long = "x".repeat(65);
        let out = alice.cli(&["profile", "set", "--name", &long])?;
        ensure!(!out.status.success(), "a 65-character name was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(err.contains("64 characters"), "unclear error: {err}");
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob, &dave]);
        fail_with_logs(&e, &all);
    }
}

/// Replicas whose per-sender quota is full refuse with QUOTA_EXCEEDED: the sender keeps the
/// message queued and shows why; what the replicas already hold stays.
#[test]
fn a_full_mailbox_quota_is_reported_to_the_sender() {
    let quota = ["--mailbox-max-per-sender", "3"].map(String::from);
    let mut infra = Vec::new();
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        let mut hub = TestNode::init(bin(), "hub")?;
        let mut hub_args = args(None);
        hub_args.extend_from_slice(&quota);
        hub.start(&hub_args)?;
        let hub_addr = hub.listen_addr()?;
        infra.push(hub);
        for i in 1..3 {
            let mut r = TestNode::init(bin(), &format!("r{i}"))?;
            let mut r_args = args(Some(&hub_addr));
            r_args.extend_from_slice(&quota);
            r.start(&r_args)?;
            infra.push(r);
        }
        alice.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        bob.start_and_publish(&args(Some(&hub_addr)), TIMEOUT)?;
        add(&bob, &alice.ticket()?, "alice")?;
        add(&alice, &bob.ticket()?, "bob")?;
        bob.stop()?;
        // The Welcome and 2 texts fill the quota of 3; the last 2 texts do not fit.
        for t in numbered("quota", 4) {
            alice.send_when_ready("bob", &t, TIMEOUT)?;
        }
        let mut last = Vec::new();
        wait_for(TIMEOUT, "the quota error to be reported", || {
            last = alice.history("bob").ok()?;
            let stored = last.iter().filter(|m| m["state"] == "stored").count();
            let refused = last
                .iter()
                .filter(|m| {
                    m["state"] == "queued"
                        && m["error"].as_str().is_some_and(|e| e.contains("quota"))
                })
                .count();
            (stored == 2 && refused == 2).then_some(())
        })
        .map_err(|e| anyhow!("{e}: {last:?}"))?;
        for node in &infra {
            ensure!(held(node)? <= 3, "a replica holds more than its quota");
        }
        Ok(())
    })();
    if let Err(e) = result {
        let mut all: Vec<&TestNode> = infra.iter().collect();
        all.extend([&alice, &bob]);
        fail_with_logs(&e, &all);
    }
}

/// A rhizo node storing profiles for others refuses, over the network, a forged profile and
/// one older than what it holds; readers then still get the newest genuine one.
#[test]
fn storing_nodes_refuse_forged_and_older_profiles_over_the_network() {
    use rhizo_core::{
        RootKey,
        records::{Profile, profile_key},
    };
    let mut hub = TestNode::init(bin(), "hub").expect("init hub");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&args(None))?;
        let hub_peer: rhizo_net::PeerId = hub.peer_id().parse()?;
        let hub_addr: rhizo_net::Multiaddr = hub.listen_addr()?.parse()?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(async {
            // A raw libp2p node in this process (no rhizo validation of its own).
            let raw = rhizo_test_utils::RawNode::start("rhizo-test-publisher", vec![hub_addr])?;
            let client = &raw.client;

            let root = RootKey::from_bytes(&[42; 32]);
            let uid = root.public().uid();
            let key = profile_key(&uid).to_vec();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let ttl = 3 * 24 * 3600;
            let v1 = Profile::new(&root, 1, "Erin", Vec::new(), "", now, ttl)?.encode();
            let v2 = Profile::new(&root, 2, "Erin 2", Vec::new(), "", now, ttl)?.encode();
            // The genuine v2 is stored (retried while the connection comes up).
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            loop {
                match client
                    .put_record_to(key.clone(), v2.clone(), vec![hub_peer])
                    .await
                {
                    Ok(n) if n >= 1 => break,
                    _ if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => anyhow::bail!("the hub did not store a valid profile: {other:?}"),
                }
            }
            // Kademlia acknowledges a PUT before the storing node validates it, so the
            // refusals are read from the hub's counters and its store below.
            let mallory = RootKey::from_bytes(&[43; 32]);
            let forged = Profile::new(&mallory, 9, "Erin", Vec::new(), "", now, ttl)?.encode();
            let mut flipped = Profile::new(&root, 3, "Erin 3", Vec::new(), "", now, ttl)?.encode();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            // Older, forged (another root claiming erin's key), a bad signature byte.
            for bad in [v1, forged, flipped] {
                let _ = client.put_record_to(key.clone(), bad, vec![hub_peer]).await;
            }
            raw.stop().await;
            anyhow::Ok(uid)
        })
        .and_then(|uid| {
            wait_for(TIMEOUT, "the hub to refuse the three bad profiles", || {
                let stats = hub.api_get("/stats").ok()?;
                (stats["net"]["records_rejected"].as_u64()? >= 3).then_some(())
            })?;
            // The hub still serves the newest genuine version.
            let out = hub.cli(&["profile", "show", &uid.to_string(), "--json"])?;
            let p: Value = serde_json::from_slice(&out.stdout)
                .with_context(|| String::from_utf8_lossy(&out.stderr).to_string())?;
            ensure!(p["version"] == 2 && p["name"] == "Erin 2", "{p}");
            Ok(())
        })
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&hub]);
    }
}
