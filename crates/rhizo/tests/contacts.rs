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

    // Bob's ticket proves his device (certificate + the device's own signature). A ticket that
    // lists bob's device key under another identity has no such proof and is refused: the
    // device never agreed to speak for that root.
    let bob_ticket: rhizo_core::ContactTicket = ticket.parse().unwrap();
    assert!(bob_ticket.devices()[0].proven_certificate().is_some());
    let forged = rhizo_core::ContactTicket::new(
        &rhizo_core::RootKey::from_bytes(&[9u8; 32]),
        vec![rhizo_core::TicketDevice::new(
            bob_ticket.devices()[0].device_pk,
            Vec::new(),
        )],
        Some("not-bob".into()),
        1_700_000_000,
    )
    .unwrap()
    .to_string();
    let out = alice.cli(&["contacts", "add", &forged]).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("proves that it belongs to them"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&alice.cli(&["contacts", "list"]).unwrap()).contains("not-bob"));

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

/// Reads the server-sent event stream until a line contains `needle` (bounded by the client's
/// read timeout and a byte budget).
fn read_events_until(response: &mut impl std::io::Read, needle: &str) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 1 << 20 {
        let n = response.read(&mut buf).expect("event stream read");
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

#[test]
fn events_stream_and_interactive_chat() {
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init");
    alice.start(&[]).expect("start");
    bob.start(&["--bootstrap".into(), alice.listen_addr().expect("addr")])
        .expect("start");
    for (a, b) in [(&alice, &bob), (&bob, &alice)] {
        let ticket = stdout(&b.cli(&["invite"]).expect("invite"))
            .trim()
            .to_string();
        let out = a.cli(&["contacts", "add", &ticket]).expect("add");
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Alice subscribes to her events; a message from bob shows up as `message_received`.
    let client = reqwest::blocking::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .expect("client");
    let mut events = client
        .get(format!(
            "http://{}/v1/events",
            alice.api_addr().expect("api")
        ))
        .bearer_auth(alice.api_token().expect("token"))
        .send()
        .expect("subscribe");
    assert!(events.status().is_success());
    let sent = wait_for(TIMEOUT, "bob's message to be accepted", || {
        let out = bob.cli(&["send", "alice", "event-marker-1"]).ok()?;
        out.status.success().then_some(())
    });
    sent.unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    let seen = read_events_until(&mut events, "event-marker-1");
    assert!(seen.contains("\"type\":\"message_received\""), "{seen}");
    assert!(seen.contains("\"contact\":\"bob\""), "{seen}");

    // `rhizo chat` in line mode: each stdin line is sent; EOF leaves.
    let mut chat = std::process::Command::new(BIN)
        .args(["--data-dir", alice.data_dir().to_str().expect("utf-8")])
        .args(["chat", "bob"])
        .env("RHIZO_MDNS", "false")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chat");
    {
        use std::io::Write;
        let mut stdin = chat.stdin.take().expect("stdin");
        stdin.write_all(b"typed in chat\n").expect("write");
    } // dropped: EOF
    let out = chat.wait_with_output().expect("chat output");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("event-marker-1"),
        "history shown: {}",
        stdout(&out)
    );
    wait_for(TIMEOUT, "bob to receive the chat line", || {
        stdout(&bob.cli(&["messages", "alice"]).ok()?)
            .contains("typed in chat")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}{}", alice.logs(), bob.logs()));
    alice.stop().expect("stop");
    bob.stop().expect("stop");
}
