//! Contacts with real processes: add by UID through the DHT's signed records, key-change
//! warnings, safety numbers.

use std::{path::Path, time::Duration};

use rhizo_test_utils::{TestNode, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
const TIMEOUT: Duration = Duration::from_secs(60);

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn add_by_uid_from_the_dht_then_chat_and_verify() {
    let mut alice = TestNode::init(Path::new(BIN), "alice").unwrap();
    let mut bob = TestNode::init(Path::new(BIN), "bob").unwrap();
    alice.start(&[]).unwrap();
    bob.start(&["--bootstrap".into(), alice.listen_addr().unwrap()])
        .unwrap();

    // Bob knows only alice's UID: the signed identity record and device list come from the DHT
    // (published shortly after start; retried within a bound).
    let added = wait_for(TIMEOUT, "alice's identity records in the DHT", || {
        let out = bob
            .cli(&["contacts", "add", alice.uid(), "--name", "alice"])
            .ok()?;
        out.status.success().then(|| stdout(&out))
    });
    let added = added.unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    assert!(added.contains("Added contact alice"), "{added}");
    assert!(added.contains("Safety number:"), "{added}");

    // Alice adds bob by ticket; both compute the same safety number.
    let ticket = stdout(&bob.cli(&["invite"]).unwrap()).trim().to_string();
    let out = alice.cli(&["contacts", "add", &ticket]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let number = |node: &TestNode, name: &str| -> String {
        let list: serde_json::Value =
            serde_json::from_str(&stdout(&node.cli(&["contacts", "list", "--json"]).unwrap()))
                .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["safety_number"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(number(&alice, "bob"), number(&bob, "alice"));

    // Bob (who added by UID) writes first: KeyPackages from the DHT, Welcome, message.
    let sent = wait_for(TIMEOUT, "bob's first message to be accepted", || {
        let out = bob
            .cli(&["send", "alice", "hello via UID", "--json"])
            .ok()?;
        out.status.success().then(|| stdout(&out))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    assert!(sent.contains("\"state\""), "{sent}");
    wait_for(TIMEOUT, "alice to receive it", || {
        stdout(&alice.cli(&["messages", "bob"]).ok()?)
            .contains("hello via UID")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    // Alice's `rhizo messages` showed it to her: a signed READ receipt takes bob's copy from
    // delivered to read.
    wait_for(TIMEOUT, "bob to see read", || {
        stdout(&bob.cli(&["messages", "alice"]).ok()?)
            .contains("[read]")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    // `--json` does not mark read by itself.
    let out = bob.cli(&["send", "alice", "second", "--json"]).unwrap();
    assert!(out.status.success());
    let delivered = wait_for(TIMEOUT, "the second message delivered", || {
        let list: serde_json::Value =
            serde_json::from_str(&stdout(&bob.cli(&["messages", "alice", "--json"]).ok()?)).ok()?;
        let state = list.as_array()?.iter().find(|m| m["text"] == "second")?["state"].clone();
        (state == "delivered").then_some(state)
    });
    delivered.unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&alice.cli(&["messages", "bob", "--json"]).unwrap())).unwrap();
    let second = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "second")
        .unwrap();
    assert_eq!(second["state"], "received", "not marked read by --json");

    // Verify marks the contact verified.
    let out = alice.cli(&["contacts", "verify", "bob", "--yes"]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&alice.cli(&["contacts", "list"]).unwrap()).contains("(verified)"));

    // A different identity under a known name is refused loudly, never accepted silently.
    let mut mallory = TestNode::init(Path::new(BIN), "mallory").unwrap();
    mallory.start(&[]).unwrap();
    let fake = stdout(&mallory.cli(&["invite"]).unwrap())
        .trim()
        .to_string();
    let out = alice
        .cli(&["contacts", "add", &fake, "--name", "bob"])
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("DIFFERENT key"), "{}", stderr(&out));

    // Unknown UID and bad tickets: clear errors.
    let out = alice
        .cli(&["contacts", "add", "rhz1contactnotaticket"])
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid ticket"), "{}", stderr(&out));
    let out = alice.cli(&["send", "nobody", "hi"]).unwrap();
    assert!(
        stderr(&out).contains("no contact 'nobody'"),
        "{}",
        stderr(&out)
    );
    for node in [&mut alice, &mut bob, &mut mallory] {
        node.stop().unwrap();
    }
}
