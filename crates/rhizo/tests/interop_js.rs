//! Interoperability with js-libp2p: real `rhizo` processes on 127.0.0.1 and a js-libp2p node
//! (`interop/js/node.mjs`, driven over stdin/stdout with JSON lines) talking to them.
//!
//! ```text
//!  r2 ──bootstrap──▶ r1 ◀──bootstrap── r3          (one Kademlia DHT, /rhizo/kad/1.0.0)
//!                    ▲ TCP + Noise + Yamux
//!                    │ identify both ways, ping, getClosestPeers, gossipsub both ways
//!                 js-A ── provide(cid) ──▶ …        js-B ──dial──▶ r2: findProviders(cid) → js-A
//!       r1: channel created ⇒ provider of its key ──▶ r2, r3   js-B: findProviders(channel cid) → r1
//! ```
//!
//! The test skips itself (and passes, printing why) when `node` (≥ 20) is missing or
//! `interop/js/node_modules` is absent; `.ci/run` installs the packages with `npm ci` first.
//!
//! Provider records both ways: a rhizo node (r1) that creates a channel announces itself as a
//! provider of the channel's key (a sha2-256 multihash, `ChannelId::provider_key`), and a JS
//! node connected only to r2 finds r1 with `findProviders` on the CIDv1 (raw) of that
//! multihash, also once r1 has stopped (r2 and r3 keep the record); a provider record a JS node
//! announced is kept by the rhizo nodes (bounded, see docs/protocol.md §9) and still found after
//! that JS node has stopped.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, sync_channel},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow, bail, ensure};
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use rhizo_core::{
    DeviceKey, RootKey,
    channel::{ChannelId, ChannelPost, post_id_of},
};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for every wait: connections, lookups, gossip delivery (normally a few seconds).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one command to the JS node.
const JS_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The agent version the JS node announces through identify.
const JS_AGENT: &str = "rhizo-interop-js/1.0.0";
/// The oldest Node.js the JS node runs on (with its `Promise.withResolvers` polyfill).
const MIN_NODE_MAJOR: u32 = 20;
const LOG_TAIL_BYTES: usize = 32 * 1024;

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// `interop/js` in this repository.
fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/js");
    dir.canonicalize().unwrap_or(dir)
}

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    let version = match Command::new("node").arg("--version").output() {
        Err(e) => return Some(format!("`node` is not available ({e}); install Node.js")),
        Ok(out) if !out.status.success() => {
            return Some(format!("`node --version` failed with {}", out.status));
        }
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
    };
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_NODE_MAJOR => {}
        _ => return Some(format!("Node.js {version} is older than v{MIN_NODE_MAJOR}")),
    }
    let modules = js_dir().join("node_modules");
    if !modules.is_dir() {
        return Some(format!(
            "{} is missing; run `npm ci` in interop/js (.ci/run does)",
            modules.display()
        ));
    }
    None
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The strings in the JSON array `v[key]`.
fn string_list(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The last `max` bytes (about) of `text`.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// One js-libp2p node (`node interop/js/node.mjs`) as a child process.
#[derive(Debug)]
struct JsNode {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Parsed stdout lines, from a reader thread.
    lines: Receiver<Value>,
    /// Events read while waiting for something else, not yet consumed.
    events: Vec<Value>,
    next_id: u64,
    peer_id: String,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl JsNode {
    /// Starts the node and waits (bounded) for its `ready` event.
    fn start(name: &'static str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rhizo-interop-{name}-"))
            .tempdir()?;
        let stderr_path = dir.path().join("stderr.log");
        let mut child = Command::new("node")
            .arg("node.mjs")
            .current_dir(js_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path)?)
            .spawn()
            .context("cannot start `node node.mjs`")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stdin = child.stdin.take();
        let (tx, lines) = sync_channel(1024);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| json!({"event": "stdout", "line": line}));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut node = Self {
            name,
            child,
            stdin,
            lines,
            events: Vec::new(),
            next_id: 1,
            peer_id: String::new(),
            stderr_path,
            _dir: dir,
        };
        let ready = node.wait_event("the JS node to be ready", TIMEOUT, |e| {
            e["event"] == "ready"
        })?;
        node.peer_id = ready["peer_id"]
            .as_str()
            .context("ready event without peer_id")?
            .to_string();
        Ok(node)
    }

    /// The next line from the node, or an error at `deadline` or when it exited.
    fn next_line(&mut self, deadline: Instant, what: &str) -> anyhow::Result<Value> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(remaining) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                bail!("{}: timed out waiting for {what}", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                bail!(
                    "{}: the JS node exited ({status:?}) while waiting for {what}",
                    self.name
                )
            }
        }
    }

    /// Sends command `cmd` with `args` and waits for its answer (at most `timeout`, which the JS
    /// side also applies to everything it waits for). Events read meanwhile are kept.
    fn request(&mut self, cmd: &str, args: Value, timeout: Duration) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = match args {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => bail!("command arguments must be an object, got {other}"),
        };
        request.insert("id".into(), json!(id));
        request.insert("cmd".into(), json!(cmd));
        request.insert(
            "timeout_ms".into(),
            json!(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        );
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        writeln!(stdin, "{}", Value::Object(request))?;
        stdin.flush()?;
        // The JS side gives up after `timeout` (plus 2 s of grace); allow a little more.
        let deadline = Instant::now() + timeout + Duration::from_secs(5);
        let what = format!("the answer to `{cmd}`");
        loop {
            let line = self.next_line(deadline, &what)?;
            if line["id"] == json!(id) {
                if line["ok"] == json!(true) {
                    return Ok(line);
                }
                bail!(
                    "{}: `{cmd}` failed: {}",
                    self.name,
                    line["error"].as_str().unwrap_or("(no error text)")
                );
            }
            if line.get("event").is_some() {
                self.events.push(line);
            }
        }
    }

    /// Waits (at most `timeout`) for an event matching `matches`, and consumes it.
    fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        if let Some(i) = self.events.iter().position(&matches) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let line = self.next_line(deadline, what)?;
            if matches(&line) {
                return Ok(line);
            }
            if line.get("event").is_some() {
                self.events.push(line);
            }
        }
    }

    /// Stops the node: `stop`, then stdin closed; killed if it has not exited after 10 s.
    fn stop(&mut self) -> anyhow::Result<()> {
        let _ = self.request("stop", json!({}), Duration::from_secs(5));
        self.stdin = None;
        let exited = wait_for(Duration::from_secs(10), "the JS node to exit", || {
            self.child.try_wait().ok().flatten()
        });
        if exited.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        exited.map(|_| ())
    }

    fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!(
            "--- {} (js-libp2p) stderr ---\n{}\n",
            self.name,
            tail(&text, LOG_TAIL_BYTES)
        )
    }
}

impl Drop for JsNode {
    fn drop(&mut self) {
        // Closing stdin makes the node stop; kill it if it does not within 5 s.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process of the test, so a failure can show all their logs.
#[derive(Debug, Default)]
struct Harness {
    rhizo: Vec<TestNode>,
    js: Vec<JsNode>,
}

impl Harness {
    fn logs(&self) -> String {
        let mut out: Vec<String> = self
            .rhizo
            .iter()
            .map(|n| n.logs_tail(LOG_TAIL_BYTES))
            .collect();
        out.extend(self.js.iter().map(JsNode::logs));
        out.join("\n")
    }
}

/// The `GET /peers` entry of `peer` on `node`.
fn peer_entry(node: &TestNode, peer: &str) -> Option<Value> {
    let peers = node.api_get("/peers").ok()?;
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer_id"] == peer)
        .cloned()
}

/// The number of gossip mesh peers `node` has on channel `id`.
fn channel_peers(node: &TestNode, id: &str) -> u64 {
    node.api_get("/v1/channels")
        .ok()
        .and_then(|list| {
            list.as_array()?
                .iter()
                .find(|c| c["id"] == id)
                .and_then(|c| c["peers"].as_u64())
        })
        .unwrap_or(0)
}

/// The posts `node` holds in channel `id`.
fn channel_posts(node: &TestNode, id: &str) -> Vec<Value> {
    node.api_get(&format!("/v1/channels/{id}/posts"))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Asks `js` for the providers of `cid`, once a second up to [`TIMEOUT`], until `provider` is
/// among them; returns that answer.
fn await_provider(js: &mut JsNode, cid: &str, provider: &str, what: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answer = js.request("find_providers", json!({"cid": cid}), JS_COMMAND_TIMEOUT)?;
        if string_list(&answer, "providers")
            .iter()
            .any(|p| p == provider)
        {
            return Ok(answer);
        }
        ensure!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}: {answer}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A CIDv1 (raw, sha2-256) in base32 text form, for a provider record.
fn cid_for(label: &str) -> String {
    // post_id_of is SHA-256 of its input.
    let digest = post_id_of(label.as_bytes());
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(&digest);
    cid_of_multihash(&multihash)
}

/// The CIDv1 (raw codec 0x55) of a multihash, in base32 text form: how js-libp2p names the
/// Kademlia key that is the multihash's bytes.
fn cid_of_multihash(multihash: &[u8]) -> String {
    let mut bytes = vec![0x01, 0x55];
    bytes.extend_from_slice(multihash);
    format!("b{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

#[test]
fn js_libp2p_interoperates_with_rhizo() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED interop_js: {reason}");
        return;
    }
    let mut harness = Harness::default();
    if let Err(e) = scenario(&mut harness) {
        panic!("{e:#}\n{}", harness.logs());
    }
}

fn scenario(h: &mut Harness) -> anyhow::Result<()> {
    // --- three rhizo nodes in one DHT ---
    for name in ["r1", "r2", "r3"] {
        h.rhizo.push(TestNode::init(bin(), name)?);
    }
    h.rhizo[0].start(&[])?;
    let r1_addr = h.rhizo[0].listen_addr()?;
    for node in &mut h.rhizo[1..] {
        node.start(&["--bootstrap".to_string(), r1_addr.clone()])?;
    }
    let rhizo_ids: Vec<String> = h.rhizo.iter().map(|n| n.peer_id().to_string()).collect();
    for node in &h.rhizo {
        let others: Vec<&String> = rhizo_ids.iter().filter(|p| *p != node.peer_id()).collect();
        wait_for(TIMEOUT, "the rhizo nodes to know each other", || {
            let table = node.routing_table_peers();
            others.iter().all(|p| table.contains(p)).then_some(())
        })?;
    }
    println!("ok: 3 rhizo nodes share one DHT");

    // --- connection: TCP + Noise + Yamux ---
    h.js.push(JsNode::start("js-a")?);
    let js_id = h.js[0].peer_id.clone();
    let (r1, js) = (&h.rhizo[0], &mut h.js[0]);
    let dialled = js.request("dial", json!({"addr": r1_addr}), JS_COMMAND_TIMEOUT)?;
    ensure!(
        dialled["peer"] == r1.peer_id(),
        "the JS node reached {} instead of r1",
        dialled["peer"]
    );
    wait_for(TIMEOUT, "r1 to see the JS node connected", || {
        r1.connected_peers().contains(&js_id).then_some(())
    })?;
    println!("ok: js-libp2p dialled rhizo over TCP + Noise + Yamux (peer ids match both ways)");

    // --- identify, both ways ---
    let info = js.request(
        "identify",
        json!({"peer": r1.peer_id()}),
        JS_COMMAND_TIMEOUT,
    )?;
    let agent = info["agent_version"].as_str().unwrap_or_default();
    ensure!(
        agent.starts_with("rhizo/"),
        "rhizo's agent version: {agent}"
    );
    ensure!(
        info["protocol_version"] == "/rhizo/1.0.0",
        "rhizo's protocol version: {}",
        info["protocol_version"]
    );
    let protocols = string_list(&info, "protocols");
    for wanted in ["/rhizo/kad/1.0.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"] {
        ensure!(
            protocols.iter().any(|p| p == wanted),
            "rhizo does not announce {wanted}: {protocols:?}"
        );
    }
    ensure!(
        protocols.iter().any(|p| p.starts_with("/meshsub/")),
        "rhizo does not announce gossipsub: {protocols:?}"
    );
    wait_for(TIMEOUT, "r1's identify of the JS node", || {
        peer_entry(r1, &js_id).filter(|p| p["agent_version"] == JS_AGENT)
    })?;
    println!(
        "ok: identify both ways: JS sees agent {agent:?}, protocol /rhizo/1.0.0 and {} \
         protocols incl. /rhizo/kad/1.0.0; rhizo's /peers shows the JS agent {JS_AGENT:?}",
        protocols.len()
    );

    // --- ping, both ways ---
    let pong = js.request("ping", json!({"peer": r1.peer_id()}), JS_COMMAND_TIMEOUT)?;
    let rtt_hr = pong["rtt_hr_ms"].as_f64().unwrap_or(0.0);
    let rtt_js = pong["rtt_ms"].as_f64().unwrap_or(-1.0);
    ensure!(rtt_hr > 0.0 && rtt_js >= 0.0, "ping from JS: {pong}");
    let rhizo_rtt = wait_for(TIMEOUT, "r1 to ping the JS node", || {
        peer_entry(r1, &js_id)
            .and_then(|p| p["rtt_ms"].as_f64())
            .filter(|rtt| *rtt > 0.0)
    })?;
    println!(
        "ok: ping both ways: JS → rhizo {rtt_hr:.3} ms (js-libp2p reports {rtt_js} whole ms), \
         rhizo → JS {rhizo_rtt:.3} ms"
    );

    // --- Kademlia: JS's getClosestPeers through rhizo finds the other rhizo nodes ---
    js.request("routing_table", json!({"min": 1}), JS_COMMAND_TIMEOUT)?;
    let key_hex = HEXLOWER.encode(format!("rhizo interop closest {}", now_nanos()).as_bytes());
    let deadline = Instant::now() + TIMEOUT;
    let closest = loop {
        let answer = js.request("closest", json!({"key_hex": key_hex}), JS_COMMAND_TIMEOUT)?;
        let peers = string_list(&answer, "peers");
        if rhizo_ids[1..].iter().all(|p| peers.contains(p)) {
            break answer;
        }
        ensure!(
            Instant::now() < deadline,
            "getClosestPeers never found r2 and r3: {answer}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    println!(
        "ok: Kademlia /rhizo/kad/1.0.0: JS getClosestPeers found {} peers incl. r2 and r3 \
         (known to JS only through r1), queried {:?}",
        string_list(&closest, "peers").len(),
        string_list(&closest, "queried")
    );

    // --- gossipsub, rhizo → JS ---
    let created = r1.api_post("/v1/channels", &json!({"name": "interop"}))?;
    let channel_text = created["id"].as_str().context("no channel id")?.to_string();
    let topic = created["topic"].as_str().context("no topic")?.to_string();
    let channel: ChannelId = channel_text
        .parse()
        .map_err(|e| anyhow!("channel id {channel_text}: {e}"))?;
    ensure!(topic == channel.topic(), "topic {topic}");
    js.request("subscribe", json!({"topic": topic}), JS_COMMAND_TIMEOUT)?;
    let subscribers = js.request("topic_peers", json!({"topic": topic, "min": 1}), TIMEOUT)?;
    ensure!(
        string_list(&subscribers, "peers").contains(&rhizo_ids[0]),
        "the JS node does not see r1 on the topic: {subscribers}"
    );
    wait_for(TIMEOUT, "r1's gossip mesh to include the JS node", || {
        (channel_peers(r1, &channel_text) >= 1).then_some(())
    })?;
    let rhizo_text = format!("hello from rhizo {}", now_nanos());
    let posted = r1.api_post(
        &format!("/v1/channels/{channel_text}/posts"),
        &json!({"text": rhizo_text}),
    )?;
    let received = js.wait_event("rhizo's post over gossipsub", TIMEOUT, |e| {
        e["event"] == "gossip" && e["topic"] == topic.as_str()
    })?;
    let data = HEXLOWER
        .decode(received["data_hex"].as_str().unwrap_or_default().as_bytes())
        .context("gossip data is not hex")?;
    let post = ChannelPost::decode_verified(&data, &channel, now_ms())
        .map_err(|e| anyhow!("the post JS received does not verify: {e}"))?;
    ensure!(post.text() == rhizo_text, "text {:?}", post.text());
    ensure!(
        post.author_uid().to_string() == r1.uid(),
        "author {}",
        post.author_uid()
    );
    ensure!(
        posted["id"] == HEXLOWER.encode(&post_id_of(&data)),
        "post id {} vs {}",
        posted["id"],
        HEXLOWER.encode(&post_id_of(&data))
    );
    ensure!(
        received["from"] == r1.peer_id(),
        "gossip author {}",
        received["from"]
    );
    println!(
        "ok: gossipsub rhizo → JS: the JS node received r1's signed gossip message on {topic}; \
         its data is a ChannelPost that verifies, with r1's text, author UID and post id"
    );

    // --- gossipsub, JS → rhizo (r1 directly; r2 too, once it joined) ---
    let r2 = &h.rhizo[1];
    r2.api_post(&format!("/v1/channels/{channel_text}/join"), &json!({}))?;
    wait_for(TIMEOUT, "r2 in the channel's gossip mesh", || {
        (channel_peers(r2, &channel_text) >= 1).then_some(())
    })?;
    let root = RootKey::generate()?;
    let device = DeviceKey::generate()?;
    let cert = root.certify_device(&device.public(), now_ms() / 1000);
    let js_text = format!("hello from js-libp2p {}", now_nanos());
    let js_post = ChannelPost::new(
        &device,
        &cert,
        channel,
        &js_text,
        now_ms(),
        now_nanos().to_le_bytes(),
    )?;
    let published = js.request(
        "publish",
        json!({"topic": topic, "data_hex": HEXLOWER.encode(&js_post.encode())}),
        JS_COMMAND_TIMEOUT,
    )?;
    ensure!(
        string_list(&published, "recipients").contains(&rhizo_ids[0]),
        "the JS node did not send the post to r1: {published}"
    );
    let author = root.public().uid().to_string();
    for (name, node) in [("r1", &h.rhizo[0]), ("r2", &h.rhizo[1])] {
        wait_for(
            TIMEOUT,
            &format!("{name} to store the JS node's post"),
            || {
                channel_posts(node, &channel_text)
                    .iter()
                    .any(|p| p["text"] == js_text.as_str() && p["author"] == author.as_str())
                    .then_some(())
            },
        )?;
    }
    println!(
        "ok: gossipsub JS → rhizo: a signed ChannelPost published by the JS node passed r1's \
         validation and is stored (GET /v1/channels/{{id}}/posts) on r1 and on r2"
    );

    // --- provider records: announced by js-A, found by js-B through the rhizo nodes ---
    let cid = cid_for(&format!("rhizo interop provider {}", now_nanos()));
    let provided = h.js[0].request("provide", json!({"cid": cid}), TIMEOUT)?;
    let sent_to = string_list(&provided, "sent_to");
    let rhizo_told: Vec<&String> = rhizo_ids.iter().filter(|p| sent_to.contains(p)).collect();
    ensure!(
        !rhizo_told.is_empty(),
        "ADD_PROVIDER reached no rhizo node: {provided}"
    );
    h.js.push(JsNode::start("js-b")?);
    let r2_addr = h.rhizo[1].listen_addr()?;
    let js_b = &mut h.js[1];
    js_b.request("dial", json!({"addr": r2_addr}), JS_COMMAND_TIMEOUT)?;
    js_b.request("routing_table", json!({"min": 1}), JS_COMMAND_TIMEOUT)?;
    let found = await_provider(js_b, &cid, &js_id, "js-B to find js-A as provider")?;
    let queried = string_list(&found, "queried");
    ensure!(
        rhizo_ids.iter().any(|p| queried.contains(p)),
        "js-B found the provider without asking a rhizo node: {found}"
    );
    println!(
        "ok: provider records: js-A's ADD_PROVIDER went to {} rhizo node(s); js-B, connected \
         only to r2, found js-A as provider of {cid} through GET_PROVIDERS answered by rhizo \
         (queried {queried:?})",
        rhizo_told.len()
    );

    // --- provider records announced by rhizo: r1 created the channel, so it announced itself
    // as a provider of the channel's key (a sha2-256 multihash); js-B, connected only to r2,
    // looks the key up as a CID ---
    let channel_cid = cid_of_multihash(&channel.provider_key());
    let found = await_provider(
        &mut h.js[1],
        &channel_cid,
        &rhizo_ids[0],
        "js-B to find r1 as provider of the channel",
    )?;
    let queried = string_list(&found, "queried");
    ensure!(
        rhizo_ids.iter().any(|p| queried.contains(p)),
        "js-B found r1 without asking a rhizo node: {found}"
    );
    println!(
        "ok: provider records rhizo → JS: r1 announced the channel it created under {channel_cid}; \
         js-B found r1 among its providers {:?} (queried {queried:?})",
        string_list(&found, "providers")
    );
    // Not only r1 answering for itself: with r1 stopped, the other rhizo nodes serve its record.
    h.rhizo[0].stop()?;
    let after = h.js[1].request(
        "find_providers",
        json!({"cid": channel_cid}),
        JS_COMMAND_TIMEOUT,
    )?;
    ensure!(
        string_list(&after, "providers").contains(&rhizo_ids[0]),
        "with r1 stopped, r2 and r3 no longer serve r1's provider record: {after}"
    );
    println!("ok: with r1 stopped, js-B still finds it as provider: r2/r3 kept r1's record");

    // The rhizo nodes keep provider records: js-A's outlives js-A.
    h.js[0].stop()?;
    let after = h.js[1].request("find_providers", json!({"cid": cid}), JS_COMMAND_TIMEOUT)?;
    ensure!(
        string_list(&after, "providers").contains(&js_id),
        "with js-A stopped, the rhizo nodes no longer serve its provider record: {after}"
    );
    println!(
        "ok: with js-A stopped, js-B still finds it as provider: the rhizo nodes kept the record"
    );
    Ok(())
}
