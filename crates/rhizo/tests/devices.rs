//! Linking a second device with real processes: `init --link`, `run`, `device link` on the new
//! device, `device add --yes` on the one with the root key; both then have one UID; the list
//! shows both, and after `device revoke` one, and the revoked device's mailbox fetch is refused.
//! A recovered identity's new device key is a key change for its contacts (the event, the
//! flag, verify clearing it).

use std::{path::Path, time::Duration};

use rhizo_test_utils::{TestNode, wait_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
const TIMEOUT: Duration = Duration::from_secs(60);

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(node: &TestNode, args: &[&str]) -> Value {
    let out = node.cli(args).expect("the CLI runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout(&out)).expect("JSON output")
}

#[test]
fn a_second_device_is_linked_listed_and_revoked() {
    let mut a1 = TestNode::init(Path::new(BIN), "a1").unwrap();
    a1.start(&[]).unwrap();
    let mut a2 = TestNode::init_link(Path::new(BIN), "a2").unwrap();
    let id = json(&a2, &["id", "--json"]);
    assert_eq!(id["role"], "pending-link");
    assert!(id["uid"].is_null());
    let mut args = TestNode::default_run_args();
    args.extend(["--bootstrap".to_owned(), a1.listen_addr().unwrap()]);
    a2.spawn(&args).unwrap();

    // The ticket is ready once the new device's node listens.
    let ticket = wait_for(TIMEOUT, "a link ticket from a2", || {
        let out = a2.cli(&["device", "link", "--no-qr"]).ok()?;
        let text = stdout(&out);
        let line = text.lines().find(|l| l.starts_with("rhz1link"))?;
        out.status.success().then(|| line.to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a2.logs()));

    let out = a1
        .cli(&["device", "add", &ticket, "--yes", "--name", "laptop"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}{}",
        String::from_utf8_lossy(&out.stderr),
        a1.logs(),
        a2.logs()
    );
    assert!(
        stdout(&out).contains("New device fingerprint:"),
        "{}",
        stdout(&out)
    );

    // Same UID on both devices; a2 holds no root key.
    let id = json(&a2, &["whoami", "--json"]);
    assert_eq!(id["uid"].as_str(), Some(a1.uid()));
    assert_eq!(id["role"], "linked");
    assert!(!a2.data_dir().join("root.key").exists());
    // Once linked, a2 runs the full node of a linked device (not the link node any more): its
    // API serves messaging, e.g. the contact list.
    wait_for(TIMEOUT, "a2 runs the full node", || {
        let out = a2.cli(&["contacts", "list", "--json"]).ok()?;
        out.status.success().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a2.logs()));
    // The ticket was single use.
    let again = a1.cli(&["device", "add", &ticket, "--yes"]).unwrap();
    assert!(!again.status.success());

    let list = json(&a1, &["device", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let linked = list.iter().find(|d| d["this_device"] == false).unwrap();
    assert_eq!(linked["id"].as_str(), Some(a2.peer_id()));
    assert_eq!(linked["name"], "laptop");

    // Root-only operations on the linked device say where to run them.
    let out = a2.cli(&["device", "revoke", a1.peer_id()]).unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not hold the root key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The linked device adopts the device list a1 published: it lists both devices.
    wait_for(TIMEOUT, "a2 lists both devices", || {
        let list = json(&a2, &["device", "list", "--json"]);
        (list.as_array()?.len() == 2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a2.logs()));

    // A contact fetches the newest device list from the DHT and trusts the devices that proved
    // possession with a KeyPackage bundle of their own: the linked device publishes one, so bob
    // addresses both of alice's devices.
    let mut bob = TestNode::init(Path::new(BIN), "bob").unwrap();
    bob.start(&["--bootstrap".into(), a1.listen_addr().unwrap()])
        .unwrap();
    let contacts = wait_for(TIMEOUT, "bob adds alice with both devices", || {
        let out = bob
            .cli(&["contacts", "add", a1.uid(), "--name", "alice"])
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let contacts = json(&bob, &["contacts", "list", "--json"]);
        (contacts[0]["devices"].as_array()?.len() == 2).then_some(contacts)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", bob.logs()));
    let devices = contacts[0]["devices"].as_array().unwrap();
    assert!(devices.contains(&Value::from(a1.peer_id())), "{contacts}");
    assert!(devices.contains(&Value::from(a2.peer_id())), "{contacts}");
    bob.stop().unwrap();

    // a2 fetches alice's mailbox from a1 (a replica of it) like any listed device.
    let fetch = |node: &TestNode| json(node, &["mailbox", "--fetch", "--json"])["fetched"].clone();
    wait_for(TIMEOUT, "a1 answers a2's mailbox fetch", || {
        let report = fetch(&a2);
        (report["replicas"].as_u64()? >= 1 && report["refused"] == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", a1.logs(), a2.logs()));

    let out = a1.cli(&["device", "revoke", a2.peer_id()]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&a1, &["device", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:?}");
    // a1 fetched at once with the new list: a2, still running, is refused from then on (with
    // the older list that names it, and with the newest, which does not).
    let report = wait_for(TIMEOUT, "a1's replica refuses the revoked a2", || {
        let report = fetch(&a2);
        (report["refused"].as_u64()? >= 1).then_some(report)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", a1.logs(), a2.logs()));
    assert_eq!(report["replicas"], 0, "{report}");
    let out = a2.cli(&["mailbox", "--fetch"]).unwrap();
    assert!(stdout(&out).contains("refused by"), "{}", stdout(&out));
    let logs = a2.logs();
    assert!(
        logs.contains("stale device list") || logs.contains("not in the UID's device list"),
        "{logs}"
    );
    a2.stop().unwrap();
    a1.stop().unwrap();
}

/// Run arguments: the default ones, `bootstrap`, fast mailbox polling and replication.
fn run_args(bootstrap: &str) -> Vec<String> {
    let mut args = TestNode::default_run_args();
    args.extend(
        [
            "--bootstrap",
            bootstrap,
            "--mailbox-poll-secs",
            "1",
            "--mailbox-replicate-secs",
            "2",
        ]
        .map(String::from),
    );
    args
}

/// Links `a2` to `a1` (a2 started with `bootstrap`): the ticket, `device add --yes`, and
/// a2's full node running.
fn link(a1: &TestNode, a2: &mut TestNode, bootstrap: &str) {
    a2.spawn(&run_args(bootstrap)).expect("a2 starts");
    let ticket = wait_for(TIMEOUT, "a link ticket from a2", || {
        let out = a2.cli(&["device", "link", "--no-qr"]).ok()?;
        let text = stdout(&out);
        let line = text.lines().find(|l| l.starts_with("rhz1link"))?;
        out.status.success().then(|| line.to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a2.logs()));
    let out = a1
        .cli(&["device", "add", &ticket, "--yes"])
        .expect("the CLI runs");
    assert!(out.status.success(), "{}", a1.logs());
    wait_for(
        TIMEOUT,
        "a2 runs the full node and lists both devices",
        || {
            let out = a2.cli(&["device", "list", "--json"]).ok()?;
            let list: Value = serde_json::from_str(&stdout(&out)).ok()?;
            (out.status.success() && list.as_array()?.len() == 2).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", a2.logs()));
}

/// The texts of `node`'s history with `with` in one direction (`in` / `out`).
fn texts(node: &TestNode, with: &str, direction: &str) -> Vec<String> {
    let out = match node.cli(&["messages", with, "--json"]) {
        Ok(out) if out.status.success() => out,
        _ => return Vec::new(),
    };
    let history: Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    history
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|m| m["direction"] == direction)
                .filter_map(|m| m["text"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `node`'s history with `with` holds `text` in `direction`.
fn wait_text(node: &TestNode, with: &str, direction: &str, text: &str) {
    wait_for(TIMEOUT, text, || {
        texts(node, with, direction)
            .iter()
            .any(|t| t == text)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
}

/// `node`'s `/v1/events` stream, open (read it with [`read_events_until`]); the whole
/// response times out after three [`TIMEOUT`]s.
fn event_stream(node: &TestNode) -> reqwest::blocking::Response {
    let client = reqwest::blocking::Client::builder()
        .timeout(3 * TIMEOUT)
        .no_proxy()
        .build()
        .expect("client");
    let events = client
        .get(format!(
            "http://{}/v1/events",
            node.api_addr().expect("api")
        ))
        .bearer_auth(node.api_token().expect("token"))
        .send()
        .expect("subscribe");
    assert!(events.status().is_success());
    events
}

/// What `response` streams until `needle` shows (or the stream ends, or 1 MiB was read).
fn read_events_until(response: &mut impl std::io::Read, needle: &str) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 1 << 20 {
        let Ok(n) = response.read(&mut buf) else {
            break;
        };
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen.contains(needle) {
            break;
        }
    }
    seen
}

/// `node` sends `text` to `to` (queued: the CLI returns at once).
fn send(node: &TestNode, to: &str, text: &str) {
    let out = node.cli(&["send", to, text]).expect("the CLI runs");
    assert!(out.status.success(), "{}", node.logs());
}

/// How often `text` is in `node`'s history with `with`, received.
fn count_in(node: &TestNode, with: &str, text: &str) -> usize {
    texts(node, with, "in")
        .iter()
        .filter(|t| *t == text)
        .count()
}

/// Issue 15 with real processes (a hub holds the mailboxes while alice's devices are off):
/// - a1 and b1 talk first; a2 is linked while b1 is offline: a2 gets the contact, the existing
///   1:1 conversation and its history, and b1, back, catches up on the new leaf;
/// - what bob sends arrives on a1 and a2 once each; what a1 sends shows on a2 as sent by me;
/// - with a1 stopped, a2 sends and receives, also from the mailbox (a1, back later, still
///   gets that entry: it is deleted only once every addressed device has it);
/// - after `device revoke`, a2 (still running) cannot read what bob sends next.
#[test]
fn both_devices_are_in_the_conversation_until_one_is_revoked() {
    let mut hub = TestNode::init(Path::new(BIN), "hub").unwrap();
    hub.start(&["--mailbox-replicate-secs".into(), "2".into()])
        .unwrap();
    let hub_addr = hub.listen_addr().unwrap();
    let mut a1 = TestNode::init(Path::new(BIN), "a1").unwrap();
    a1.spawn(&run_args(&hub_addr)).unwrap();
    a1.wait_ready().unwrap();
    let mut b1 = TestNode::init(Path::new(BIN), "b1").unwrap();
    b1.spawn(&run_args(&hub_addr)).unwrap();
    b1.wait_ready().unwrap();
    let bob_uid = b1.uid().to_owned();
    wait_for(TIMEOUT, "bob adds alice", || {
        let out = b1
            .cli(&["contacts", "add", a1.uid(), "--name", "alice"])
            .ok()?;
        out.status.success().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", b1.logs()));
    wait_for(TIMEOUT, "alice adds bob", || {
        let out = a1
            .cli(&["contacts", "add", &bob_uid, "--name", "bob"])
            .ok()?;
        out.status.success().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a1.logs()));
    send(&b1, "alice", "before the link");
    wait_text(&a1, "bob", "in", "before the link");

    // b1 goes offline; a2 is linked: it gets bob, the conversation and its history.
    b1.stop().unwrap();
    let mut a2 = TestNode::init_link(Path::new(BIN), "a2").unwrap();
    link(&a1, &mut a2, &hub_addr);
    wait_for(TIMEOUT, "the history on a2", || {
        texts(&a2, "bob", "in")
            .iter()
            .any(|t| t == "before the link")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", a1.logs(), a2.logs()));
    // b1 comes back and catches up on the new leaf (a1's commit, from its mailbox): what a2
    // sends in the conversation's new epoch reaches him.
    b1.spawn(&run_args(&hub_addr)).unwrap();
    b1.wait_ready().unwrap();
    send(&a2, "bob", "from a2");
    wait_for(TIMEOUT, "from a2 on b1", || {
        (count_in(&b1, "alice", "from a2") == 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b1.logs(), a2.logs()));

    // b1 → alice: on a1 and on a2, once each.
    send(&b1, "alice", "hello alice");
    for a in [&a1, &a2] {
        wait_text(a, "bob", "in", "hello alice");
        assert_eq!(count_in(a, "bob", "hello alice"), 1, "{}", a.logs());
    }
    // a1 → bob: bob has it; a2 shows it as sent by me (out), not as received.
    send(&a1, "bob", "from a1");
    wait_text(&b1, "alice", "in", "from a1");
    wait_text(&a2, "bob", "out", "from a1");
    assert_eq!(count_in(&a2, "bob", "from a1"), 0);

    // a1 stopped: a2 still sends and receives.
    a1.stop().unwrap();
    send(&a2, "bob", "a1 is off");
    wait_text(&b1, "alice", "in", "a1 is off");
    send(&b1, "alice", "to a2 alone");
    wait_text(&a2, "bob", "in", "to a2 alone");
    // Both of alice's devices off: bob's text waits in alice's mailbox; a2 gets it from there,
    // and a1, back later, too (one entry for both devices, deleted once both have it).
    a2.stop().unwrap();
    send(&b1, "alice", "from the mailbox");
    wait_for(TIMEOUT, "bob's text stored for alice", || {
        let history = b1.history("alice").ok()?;
        let last = history
            .iter()
            .rev()
            .find(|m| m["text"] == "from the mailbox")?;
        (last["state"] == "stored").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", b1.logs()));
    a2.spawn(&run_args(&hub_addr)).unwrap();
    a2.wait_ready().unwrap();
    wait_text(&a2, "bob", "in", "from the mailbox");
    a1.spawn(&run_args(&hub_addr)).unwrap();
    a1.wait_ready().unwrap();
    wait_text(&a1, "bob", "in", "from the mailbox");
    for a in [&a1, &a2] {
        assert_eq!(count_in(a, "bob", "from the mailbox"), 1, "{}", a.logs());
    }

    // Revoke a2 from a1: a remove commit to bob, ahead of a1's next text (so once bob has that
    // text, he applied the commit).
    let out = a1.cli(&["device", "revoke", a2.peer_id()]).unwrap();
    assert!(out.status.success(), "{}", a1.logs());
    send(&a1, "bob", "after the revoke");
    wait_text(&b1, "alice", "in", "after the revoke");
    send(&b1, "alice", "secret");
    wait_text(&a1, "bob", "in", "secret");
    // Bob still addresses a2 (his copy of alice's device list is older): a2 cannot read it.
    // a1 has it, so bob sent it to both; give a2 the same chance once more, then check.
    send(&b1, "alice", "secret 2");
    wait_text(&a1, "bob", "in", "secret 2");
    let on_a2 = texts(&a2, "bob", "in");
    assert!(!on_a2.iter().any(|t| t.starts_with("secret")), "{on_a2:?}");
    for n in [&mut b1, &mut a2, &mut a1, &mut hub] {
        n.stop().unwrap();
    }
}

/// Recovery with real processes: the phrase exported on a1 recreates the identity on a fresh
/// data dir once a1 is gone (its data dir deleted): same UID, a new device; its device list
/// names only the new device (the old one is revoked: bob, fetching it again, lists only the new
/// one), and bob reaches the recovered identity in a new conversation.
#[test]
fn the_recovery_phrase_recreates_the_identity_on_a_new_data_dir() {
    let mut hub = TestNode::init(Path::new(BIN), "hub").unwrap();
    hub.start(&[]).unwrap();
    let hub_addr = hub.listen_addr().unwrap();
    let mut a1 = TestNode::init(Path::new(BIN), "a1").unwrap();
    let mut b1 = TestNode::init(Path::new(BIN), "b1").unwrap();
    for n in [&mut a1, &mut b1] {
        n.spawn(&run_args(&hub_addr)).unwrap();
        n.wait_ready().unwrap();
    }
    let (alice_uid, bob_uid) = (a1.uid().to_owned(), b1.uid().to_owned());
    for (node, uid, name) in [(&b1, &alice_uid, "alice"), (&a1, &bob_uid, "bob")] {
        wait_for(TIMEOUT, "contacts added", || {
            let out = node.cli(&["contacts", "add", uid, "--name", name]).ok()?;
            out.status.success().then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    }
    send(&b1, "alice", "before");
    wait_text(&a1, "bob", "in", "before");

    let out = a1.cli(&["identity", "export-phrase"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let phrase = stdout(&out);
    assert_eq!(phrase.split_whitespace().count(), 24);
    let old_device = a1.peer_id().to_owned();
    a1.stop().unwrap();
    drop(a1);

    let wrong = phrase.replacen(phrase.split_whitespace().next().unwrap(), "zzz", 1);
    assert!(TestNode::init_recover(Path::new(BIN), "wrong", &wrong).is_err());
    let mut r = TestNode::init_recover(Path::new(BIN), "recovered", &phrase).unwrap();
    assert_eq!(r.uid(), alice_uid);
    assert_ne!(r.peer_id(), old_device);
    r.spawn(&run_args(&hub_addr)).unwrap();
    r.wait_ready().unwrap();
    let list = json(&r, &["device", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // Bob's events, from before he learns alice's new device key.
    let mut events = event_stream(&b1);
    // Bob fetches alice's device list again: only the recovered device (the old one revoked).
    let new_device = r.peer_id().to_owned();
    wait_for(TIMEOUT, "bob sees only the recovered device", || {
        let out = b1
            .cli(&["contacts", "add", &alice_uid, "--name", "alice"])
            .ok()?;
        let contacts = json(&b1, &["contacts", "list", "--json"]);
        let devices = contacts[0]["devices"].as_array()?.clone();
        (out.status.success() && devices == [Value::from(new_device.clone())]).then_some(())
    })
    .unwrap_or_else(|e| {
        let contacts = json(&b1, &["contacts", "list", "--json"]);
        panic!("{e}\n{contacts}\n{}\n{}", r.logs(), b1.logs())
    });
    // A device key bob did not have: a key change, flagged until bob verifies alice again.
    let seen = read_events_until(&mut events, "\"key_change\"");
    assert!(
        seen.contains(r#""type":"key_change","contact":"alice""#),
        "{seen}"
    );
    let key_changed = |node: &TestNode| {
        let contacts = node.api_get("/v1/contacts").expect("contacts");
        contacts[0]["key_changed"].clone()
    };
    assert_eq!(key_changed(&b1), Value::Bool(true));
    let verified = b1
        .api_post("/v1/contacts/alice/verify", &Value::Null)
        .expect("verify");
    assert_eq!(verified["key_changed"], Value::Bool(false), "{verified}");
    assert_eq!(key_changed(&b1), Value::Bool(false));
    // Contacts can reach it: bob's next text arrives (in a new conversation: the recovered
    // device has none of the old ones).
    wait_for(TIMEOUT, "the recovered device adds bob", || {
        let out = r
            .cli(&["contacts", "add", &bob_uid, "--name", "bob"])
            .ok()?;
        out.status.success().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", r.logs()));
    send(&b1, "alice", "after the recovery");
    wait_for(TIMEOUT, "bob's text on the recovered device", || {
        (count_in(&r, "bob", "after the recovery") == 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", r.logs(), b1.logs()));
    for n in [&mut r, &mut b1, &mut hub] {
        n.stop().unwrap();
    }
}

/// After a link the new device joins our sync group (never listed as a group), the history
/// transfer runs to its end (`device add --wait`), and a profile set on a1 appears on a2, as
/// does a block made on a1.
#[test]
fn a_linked_device_joins_the_sync_group_and_gets_our_profile() {
    let mut a1 = TestNode::init(Path::new(BIN), "a1").unwrap();
    a1.start(&[]).unwrap();
    let mut a2 = TestNode::init_link(Path::new(BIN), "a2").unwrap();
    let mut args = TestNode::default_run_args();
    args.extend(["--bootstrap".to_owned(), a1.listen_addr().unwrap()]);
    a2.spawn(&args).unwrap();
    let ticket = wait_for(TIMEOUT, "a link ticket from a2", || {
        let out = a2.cli(&["device", "link", "--no-qr"]).ok()?;
        let text = stdout(&out);
        let line = text.lines().find(|l| l.starts_with("rhz1link"))?;
        out.status.success().then(|| line.to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a2.logs()));
    let out = a1
        .cli(&[
            "device",
            "add",
            &ticket,
            "--yes",
            "--wait",
            "--history-days",
            "7",
        ])
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", a1.logs(), a2.logs()));
    assert!(
        out.status.success() && stdout(&out).contains("History sent."),
        "{}\n{}\n{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr),
        a1.logs(),
        a2.logs()
    );
    // The sync group is no group the user sees, on either device.
    for node in [&a1, &a2] {
        let groups = json(node, &["group", "list", "--json"]);
        assert_eq!(groups.as_array().map(Vec::len), Some(0), "{groups}");
    }
    json(&a1, &["profile", "set", "--name", "Alice", "--json"]);
    wait_for(TIMEOUT, "a2 has our profile", || {
        // "No profile yet" until it arrives.
        let out = a2.cli(&["profile", "show", "--json"]).ok()?;
        let profile: Value = serde_json::from_str(&stdout(&out)).ok()?;
        (profile["name"] == "Alice").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", a1.logs(), a2.logs()));
    // A setting changed on a1 reaches a2 through the sync group (issue 20): a block.
    let stranger = TestNode::init(Path::new(BIN), "stranger").unwrap();
    let out = a1.cli(&["contacts", "block", stranger.uid()]).unwrap();
    assert!(out.status.success(), "{}", a1.logs());
    wait_for(TIMEOUT, "a2 blocks the UID a1 blocked", || {
        let blocked = a2.api_get("/v1/blocked").ok()?;
        blocked.to_string().contains(stranger.uid()).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", a1.logs(), a2.logs()));
    a2.stop().unwrap();
    a1.stop().unwrap();
}
