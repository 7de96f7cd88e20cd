//! End to end with real `rhizo` processes on 127.0.0.1: discovery through Kademlia, the peer
//! book across a restart, the local API's token, and the errors a user meets.

use std::{collections::BTreeSet, path::Path, time::Duration};

use rhizo_test_utils::{TestNode, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Generous bound for discovery: a few Kademlia round trips on loopback take well under a second.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn others(nodes: &[TestNode], me: usize) -> BTreeSet<String> {
    nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, n)| n.peer_id().to_string())
        .collect()
}

fn all_logs(nodes: &[TestNode]) -> String {
    nodes
        .iter()
        .map(TestNode::logs)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn five_nodes_find_each_other_through_kademlia_and_a_restart_uses_the_peer_book() {
    let mut nodes: Vec<TestNode> = (1..=5)
        .map(|i| TestNode::init(bin(), &format!("n{i}")).unwrap())
        .collect();
    nodes[0].start(&[]).unwrap();
    let boot = nodes[0].listen_addr().unwrap();
    for node in nodes.iter_mut().skip(1) {
        node.start(&["--bootstrap".to_string(), boot.clone()])
            .unwrap();
    }

    // Every node learns the other four through Kademlia, though each was only told of node 1.
    for i in 0..nodes.len() {
        let want = others(&nodes, i);
        let result = wait_for(DISCOVERY_TIMEOUT, "all peers in the routing table", || {
            let have: BTreeSet<String> = nodes[i].routing_table_peers().into_iter().collect();
            want.is_subset(&have).then_some(())
        });
        if let Err(e) = result {
            panic!(
                "node {} knows {:?}, wants {want:?}: {e}\n{}",
                i + 1,
                nodes[i].routing_table_peers(),
                all_logs(&nodes)
            );
        }
    }

    // Node 3 has them in its persisted peer book too.
    let book = wait_for(
        DISCOVERY_TIMEOUT,
        "node 3's peer book to hold 4 peers",
        || {
            let n = nodes[2].api_get("/peers").ok()?["peer_book_peers"].as_u64()?;
            (n >= 4).then_some(n)
        },
    )
    .unwrap();
    assert!(book >= 4);

    // Restart node 3 without --bootstrap (and on a new port): it reconnects from its peer book.
    let status = nodes[2].stop().unwrap();
    assert!(status.success(), "graceful stop must exit 0: {status}");
    assert!(
        nodes[2].api_addr().is_none(),
        "api.addr is removed at shutdown"
    );
    nodes[2].start(&[]).unwrap();
    let want = others(&nodes, 2);
    let result = wait_for(
        DISCOVERY_TIMEOUT,
        "node 3 to reconnect from its peer book",
        || {
            let connected: BTreeSet<String> = nodes[2].connected_peers().into_iter().collect();
            let known: BTreeSet<String> = nodes[2].routing_table_peers().into_iter().collect();
            (!connected.is_empty() && want.is_subset(&known)).then_some(())
        },
    );
    if let Err(e) = result {
        panic!("{e}\n{}", all_logs(&nodes));
    }
    let stats = nodes[2].api_get("/stats").unwrap();
    assert_eq!(stats["peer_id"].as_str(), Some(nodes[2].peer_id()));
    for node in &mut nodes {
        node.stop().unwrap();
    }
}

#[test]
fn the_api_needs_the_token_except_for_health() {
    let mut node = TestNode::init(bin(), "api").unwrap();
    node.start(&[]).unwrap();
    let token = node.api_token().unwrap();

    let (status, body) = node.api_raw("/health", None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    for path in ["/peers", "/stats", "/public-key", "/metrics"] {
        let (status, body) = node.api_raw(path, None).unwrap();
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert!(body.contains("UNAUTHORIZED"), "{body}");
        let (status, _) = node.api_raw(path, Some("not-the-token")).unwrap();
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, body) = node.api_raw(path, Some(&token)).unwrap();
        assert_eq!(status, 200, "{path} with the token: {body}");
    }
    let (status, _) = node.api_raw("/no-such-thing", Some(&token)).unwrap();
    assert_eq!(status, 404);

    let key = node.api_get("/public-key").unwrap();
    assert_eq!(key["uid"].as_str(), Some(node.uid()));
    assert_eq!(key["peer_id"].as_str(), Some(node.peer_id()));
    let (_, metrics) = node.api_raw("/metrics", Some(&token)).unwrap();
    assert!(metrics.contains("rhizo_connected_peers"), "{metrics}");
    assert!(metrics.contains("rhizo_uptime_seconds"), "{metrics}");

    // The CLI faces of the API.
    let out = node.cli(&["status", "--json"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["uid"].as_str(), Some(node.uid()));
    let out = node.cli(&["peers"]).unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("No peers yet"));
    let out = node.cli(&["id", "--json"]).unwrap();
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["running"], true);
    assert!(
        id["listen_addrs"][0]
            .as_str()
            .unwrap()
            .starts_with("/ip4/127.0.0.1/tcp/"),
        "{id}"
    );

    // A wrong token file: the CLI says what to do.
    std::fs::write(node.data_dir().join("api.token"), "stale").unwrap();
    assert_one_line_error(&node.cli(&["status"]).unwrap(), "refused the API token");
    std::fs::write(node.data_dir().join("api.token"), &token).unwrap();
    node.stop().unwrap();
}

/// Asserts a failed command printed exactly one `error:` line containing `needle`, and no panic.
fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "no panics: {stderr}");
    assert!(!stderr.contains("backtrace"), "no backtraces: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains(needle),
        "error should mention '{needle}': {stderr}"
    );
}

#[test]
fn run_on_a_port_in_use_fails_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut node = TestNode::init(bin(), "busy").unwrap();

    node.spawn(&[
        "--listen".into(),
        format!("/ip4/127.0.0.1/tcp/{port}"),
        "--api".into(),
        "127.0.0.1:0".into(),
        "--no-mdns".into(),
    ])
    .unwrap();
    let status = node.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(!status.success());
    let logs = node.logs();
    assert!(logs.contains("already in use"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");

    // The API port taken: the same kind of message.
    node.spawn(&[
        "--listen".into(),
        "/ip4/127.0.0.1/tcp/0".into(),
        "--api".into(),
        format!("127.0.0.1:{port}"),
        "--no-mdns".into(),
    ])
    .unwrap();
    let status = node.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(!status.success());
    let logs = node.logs();
    assert!(logs.contains("cannot start the local API"), "{logs}");
    drop(taken);
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let mut node = TestNode::init(bin(), "twice").unwrap();
    node.start(&[]).unwrap();
    let out = node
        .cli(&[
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
        ])
        .unwrap();
    assert_one_line_error(&out, "already running");
    assert!(node.is_running(), "the first node keeps running");
    node.stop().unwrap();
}

#[test]
fn user_errors_are_one_actionable_line() {
    let empty = tempfile::tempdir().unwrap();
    let run_in = |dir: &Path, args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("RHIZO_MDNS", "false")
            .env("XDG_CONFIG_HOME", dir.join("no-config"))
            .output()
            .unwrap()
    };
    // Not initialised.
    for args in [&["run"][..], &["status"], &["id"], &["peers"]] {
        assert_one_line_error(&run_in(empty.path(), args), "rhizo init");
    }

    let node = TestNode::init(bin(), "errors").unwrap();
    // A bad multiaddr.
    assert_one_line_error(
        &node.cli(&["run", "--listen", "tcp:1234"]).unwrap(),
        "invalid listen address 'tcp:1234'",
    );
    assert_one_line_error(
        &node.cli(&["run", "--bootstrap", "127.0.0.1:4747"]).unwrap(),
        "invalid bootstrap address",
    );
    // An API address that is not loopback.
    assert_one_line_error(
        &node.cli(&["run", "--api", "0.0.0.0:1"]).unwrap(),
        "loopback",
    );
    // An unreachable bootstrap peer (a port nothing listens on any more).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = node
        .cli(&[
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
            "--bootstrap",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        ])
        .unwrap();
    assert_one_line_error(&out, "could not reach any bootstrap peer");
    // The unreachable address was not remembered: the next run fails the same way instead of
    // carrying on with a peer book full of a mistake.
    let again = node
        .cli(&[
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
            "--bootstrap",
            // Someone else's peer id (our own address would be skipped, leaving the node alone).
            &format!(
                "/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWBnwprSqG6qQ5hmgs5F3JE3gFN4Az2Xu2u325MFq6jzUW"
            ),
        ])
        .unwrap();
    assert_one_line_error(&again, "could not reach any bootstrap peer");
    // The node is not running.
    assert_one_line_error(&node.cli(&["status"]).unwrap(), "not running");
    // A second init keeps the keys.
    let out = node.cli(&["init"]).unwrap();
    assert!(out.status.success());
    let id: serde_json::Value =
        serde_json::from_slice(&node.cli(&["id", "--json"]).unwrap().stdout).unwrap();
    assert_eq!(id["uid"].as_str(), Some(node.uid()));
    // A bad config file.
    let bad = node.data_dir().join("bad.toml");
    std::fs::write(&bad, "listen = 5\n").unwrap();
    assert_one_line_error(
        &node
            .cli(&["--config", bad.to_str().unwrap(), "config", "show"])
            .unwrap(),
        "bad.toml",
    );
}

#[test]
fn config_show_reflects_file_env_and_flags() {
    let node = TestNode::init(bin(), "config").unwrap();
    let file = node.data_dir().join("config.toml");
    std::fs::write(&file, "api = \"127.0.0.1:1111\"\nmdns = false\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--data-dir", node.data_dir().to_str().unwrap()])
        .args(["--config", file.to_str().unwrap(), "config", "show"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/9"])
        .env("RHIZO_API", "127.0.0.1:2222")
        .env("RHIZO_BOOTSTRAP", "/ip4/127.0.0.1/tcp/7")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("api = \"127.0.0.1:2222\""),
        "env beats file: {text}"
    );
    assert!(text.contains("mdns = false"), "file beats default: {text}");
    assert!(
        text.contains("listen = [\"/ip4/127.0.0.1/tcp/9\"]"),
        "flag: {text}"
    );
    assert!(text.contains("/ip4/127.0.0.1/tcp/7"), "env: {text}");
}
