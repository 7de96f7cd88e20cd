//! End to end: two `rhizo` nodes find each other by mDNS alone and connect.
//!
//! # Why network namespaces
//!
//! mDNS works by multicasting queries and answers (224.0.0.251:5353) on every network
//! interface the node sees. Run on the host, the test's nodes would announce themselves on
//! this machine's real LAN (and answer whatever else is out there), could discover and dial
//! unrelated rhizo nodes nearby, and would make the result depend on the network the machine
//! happens to be on. So a node with mDNS on must NEVER run outside a sandbox here.
//!
//! The test therefore builds its own tiny, private network: two fresh network namespaces,
//! each containing only a loopback and one end of a veth pair (a virtual cable) that joins
//! them. The veth is created directly inside the namespaces, so it never even appears in the
//! host's namespace. Each node is started with `ip netns exec`, which enters the namespace
//! before it execs the binary (if it cannot, the node is not started at all), so the only
//! interfaces a node can multicast on are its namespace's `lo` and veth end. Deleting the
//! namespaces at the end destroys the veth with them.
//!
//! The nodes get no `--bootstrap` peer and fresh data directories (empty peer books), so the
//! only way they can learn of each other is mDNS over the veth.
//!
//! # Requirements
//!
//! Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip`.
//! Without them (or where `ip netns` / veth is not permitted, e.g. in some containers) the
//! test prints why on stderr and passes without testing anything.
//!
//! The node's local API listens on 127.0.0.1 of its own namespace, so `rhizo peers` is also
//! run through `ip netns exec` in that same namespace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rhizo_test_utils::netns::{
    COMMAND_TIMEOUT, ip, ip_ok, is_root, run_bounded, sigterm, wait_bounded,
};

/// How long the two nodes get to discover and connect to each other.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the nodes' peer lists are polled meanwhile.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a node gets to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Makes namespace names unique within this process (the pid makes them unique across runs).
static NS_COUNTER: AtomicU32 = AtomicU32::new(0);

fn rhizo_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rhizo")
}

/// Owns everything the test creates outside its temp dir: on drop (also when the test panics)
/// it kills the nodes, then deletes the namespaces, which also destroys the veth pair.
struct Lab {
    namespaces: Vec<String>,
    nodes: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            // Already exited (and reaped) children are not signalled again by std.
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "delete", ns]) {
                eprintln!("mdns_netns: could not delete network namespace {ns}: {e}");
            }
        }
    }
}

/// A `rhizo` command with our own (empty) config file and no inherited `RHIZO_*` settings, so
/// nothing from the environment or the user's config (e.g. bootstrap peers) leaks in.
/// With `netns`, the command runs inside that network namespace via `ip netns exec`.
fn rhizo_cmd(netns: Option<&str>, config: &Path, data_dir: &Path) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, rhizo_bin()]);
            c
        }
        None => Command::new(rhizo_bin()),
    };
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RHIZO_") {
            cmd.env_remove(&key);
        }
    }
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir);
    cmd
}

/// Creates an identity in `data_dir` (no namespace needed: `init` does no networking) and
/// returns its device peer id.
fn init_node(config: &Path, data_dir: &Path) -> String {
    let out = run_bounded(
        rhizo_cmd(None, config, data_dir).arg("init"),
        COMMAND_TIMEOUT,
    )
    .expect("run rhizo init");
    assert!(out.success(), "rhizo init failed: {}", out.describe());
    let out = run_bounded(
        rhizo_cmd(None, config, data_dir).args(["id", "--json"]),
        COMMAND_TIMEOUT,
    )
    .expect("run rhizo id");
    assert!(out.success(), "rhizo id failed: {}", out.describe());
    let id: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("rhizo id --json is not JSON ({e}): {}", out.stdout));
    id["peer_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no peer_id in rhizo id --json: {}", out.stdout))
        .to_owned()
}

/// One node: where it runs and where its output goes.
struct Node {
    name: &'static str,
    netns: String,
    data_dir: PathBuf,
    peer_id: String,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

impl Node {
    /// Starts `rhizo run` inside the node's namespace, with mDNS explicitly on and no
    /// bootstrap peers, listening only on its veth address.
    fn spawn(&self, config: &Path, ip_addr: &str) -> Child {
        rhizo_cmd(Some(&self.netns), config, &self.data_dir)
            .args(["run", "--mdns", "--api", "127.0.0.1:0", "--listen"])
            .arg(format!("/ip4/{ip_addr}/tcp/0"))
            .stdin(Stdio::null())
            .stdout(File::create(&self.stdout_log).expect("create stdout log"))
            .stderr(File::create(&self.stderr_log).expect("create stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node {}: {e}", self.name))
    }

    /// Whether this node's `peers --json` lists `other` with at least one connection.
    /// `Err` describes what was seen instead (for the failure message).
    fn connected_to(&self, config: &Path, other: &str) -> Result<(), String> {
        let out = run_bounded(
            rhizo_cmd(Some(&self.netns), config, &self.data_dir).args(["peers", "--json"]),
            COMMAND_TIMEOUT,
        )
        .map_err(|e| format!("could not run rhizo peers: {e}"))?;
        if !out.success() {
            // E.g. the node's API is not up yet.
            return Err(format!("rhizo peers failed: {}", out.describe()));
        }
        let json: serde_json::Value = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("rhizo peers --json is not JSON ({e}): {}", out.stdout))?;
        let peers = json["peers"]
            .as_array()
            .ok_or_else(|| format!("no peers array: {}", out.stdout))?;
        let connected = peers.iter().any(|p| {
            p["peer_id"].as_str() == Some(other) && p["connections"].as_u64().unwrap_or(0) >= 1
        });
        if connected {
            Ok(())
        } else {
            Err(format!("peers --json: {}", out.stdout.trim()))
        }
    }

    fn logs(&self) -> String {
        let read = |p: &Path| {
            std::fs::read_to_string(p).unwrap_or_else(|e| format!("<cannot read {p:?}: {e}>"))
        };
        format!(
            "----- node {} ({}, netns {}) stdout -----\n{}\n----- node {} stderr -----\n{}",
            self.name,
            self.peer_id,
            self.netns,
            read(&self.stdout_log),
            self.name,
            read(&self.stderr_log),
        )
    }
}

#[test]
fn mdns_discovery_between_two_network_namespaces() {
    let started = Instant::now();

    if !is_root() {
        eprintln!(
            "SKIPPED mdns_netns: not running as root, so cannot create network namespaces \
             (mDNS must never run on this machine's real interfaces)"
        );
        return;
    }
    if let Err(e) = Command::new("ip").arg("-V").output() {
        eprintln!("SKIPPED mdns_netns: `ip` (iproute2) is not available: {e}");
        return;
    }

    let pid = std::process::id();
    let n = NS_COUNTER.fetch_add(1, Ordering::Relaxed);
    let ns_a = format!("rhizo-mdns-{pid}-{n}-a");
    let ns_b = format!("rhizo-mdns-{pid}-{n}-b");
    // The subnet lives only inside the two private namespaces, so it cannot clash with the
    // host's; deriving it from the pid just keeps parallel runs visibly apart.
    let subnet = format!("10.{}.{}", (pid >> 8) & 0xff, pid & 0xff);
    let addr_a = format!("{subnet}.1");
    let addr_b = format!("{subnet}.2");

    let tmp = tempfile::tempdir().expect("tempdir");
    // Declared after `tmp` so it is dropped first: nodes are killed before their dirs go.
    let mut lab = Lab {
        namespaces: Vec::new(),
        nodes: Vec::new(),
    };

    for ns in [&ns_a, &ns_b] {
        if let Err(e) = ip(&["netns", "add", ns]) {
            eprintln!("SKIPPED mdns_netns: cannot create a network namespace: {e}");
            return;
        }
        lab.namespaces.push(ns.clone());
    }
    // Both ends are created directly inside their namespaces: the veth never exists in the
    // host's namespace, not even briefly.
    if let Err(e) = ip(&[
        "-n", &ns_a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns",
        &ns_b,
    ]) {
        eprintln!("SKIPPED mdns_netns: cannot create a veth pair: {e}");
        return;
    }
    for (ns, dev, addr) in [(&ns_a, "veth-a", &addr_a), (&ns_b, "veth-b", &addr_b)] {
        ip_ok(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
        ip_ok(&["-n", ns, "link", "set", "lo", "up"]);
        // veth supports multicast (and has it on by default); make sure regardless.
        ip_ok(&["-n", ns, "link", "set", "dev", dev, "multicast", "on"]);
        ip_ok(&["-n", ns, "link", "set", "dev", dev, "up"]);
    }
    // `ip netns exec` also needs to set up a mount namespace; some sandboxes forbid that.
    let probe = run_bounded(
        Command::new("ip").args(["netns", "exec", &ns_a, "true"]),
        COMMAND_TIMEOUT,
    )
    .expect("run ip netns exec");
    if !probe.success() {
        eprintln!(
            "SKIPPED mdns_netns: `ip netns exec` does not work here: {}",
            probe.describe()
        );
        return;
    }

    // An empty config file of our own, so the user's ~/.config/rhizo is not read.
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "").expect("write config");

    let mut nodes = Vec::new();
    for (name, ns) in [("a", &ns_a), ("b", &ns_b)] {
        let data_dir = tmp.path().join(name);
        let peer_id = init_node(&config, &data_dir);
        nodes.push(Node {
            name,
            netns: ns.clone(),
            data_dir,
            peer_id,
            stdout_log: tmp.path().join(format!("{name}.stdout.log")),
            stderr_log: tmp.path().join(format!("{name}.stderr.log")),
        });
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_ne!(a.peer_id, b.peer_id, "two inits made the same peer id");

    // Only ever started inside the namespaces (see the top of this file).
    lab.nodes.push(a.spawn(&config, &addr_a));
    lab.nodes.push(b.spawn(&config, &addr_b));
    let logs = || format!("{}\n{}", a.logs(), b.logs());

    // Poll until, at the same moment, each node lists the other as connected.
    let deadline = Instant::now() + DISCOVERY_TIMEOUT;
    loop {
        let a_sees_b = a.connected_to(&config, &b.peer_id);
        let b_sees_a = b.connected_to(&config, &a.peer_id);
        if a_sees_b.is_ok() && b_sees_a.is_ok() {
            break;
        }
        for (node, child) in nodes.iter().zip(&mut lab.nodes) {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "node {} exited early ({status}) before discovery\n{}",
                    node.name,
                    logs()
                );
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "nodes did not discover each other by mDNS within {DISCOVERY_TIMEOUT:?}\n\
                 a -> b: {a_sees_b:?}\nb -> a: {b_sees_a:?}\n{}",
                logs()
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
    let discovered_after = started.elapsed();

    // Graceful shutdown: SIGTERM both, then each must exit cleanly within the bound.
    for child in &lab.nodes {
        sigterm(child);
    }
    for (node, child) in nodes.iter().zip(&mut lab.nodes) {
        match wait_bounded(child, EXIT_TIMEOUT).expect("wait for node") {
            Some(status) => assert!(
                status.success(),
                "node {} exited with {status} after SIGTERM\n{}",
                node.name,
                logs()
            ),
            None => panic!(
                "node {} did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                node.name,
                logs()
            ),
        }
    }

    eprintln!(
        "mdns_netns: nodes connected via mDNS after {discovered_after:?} (total {:?})",
        started.elapsed()
    );
}
