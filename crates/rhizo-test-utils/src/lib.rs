//! Helpers for rhizo's end-to-end tests: real `rhizo` processes on 127.0.0.1, each with its own
//! temporary data dir, ephemeral ports (`/tcp/0`, API on `127.0.0.1:0`) and mDNS off.
//!
//! ```text
//!  test ──TestNode::init──▶ `rhizo init` ──start──▶ `rhizo run` (child process)
//!    │                                                 │ writes <dir>/api.addr, api.token
//!    └──── api_get("/v1/peers") (bearer token) ◀───────┘
//! ```
//!
//! Waiting is always [`wait_for`] on a condition with a deadline, never a fixed sleep.
//!
//! # Layout
//! - this file: [`TestNode`], [`wait_for`] and friends.
//! - [`netns`]: commands run with a bound, and the `ip netns` plumbing of the tests that build
//!   their own network namespaces (mDNS, relays, hole punching).
//! - [`raw_node`]: [`RawNode`], a bare rhizo-net node in the test process, for tests that play
//!   a flooding or forging peer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod netns;
pub mod raw_node;

pub use raw_node::RawNode;

use std::{
    collections::BTreeSet,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// How often conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a node may take to come up (binary start, key load, bind, API).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a one-shot CLI command may take before the test kills it.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `f` until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// One rhizo node run as a real process.
#[derive(Debug)]
pub struct TestNode {
    name: String,
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    runs: u32,
    peer_id: String,
    uid: String,
    http: reqwest::blocking::Client,
    run_env: Vec<(String, String)>,
    /// Environment variables given to every `rhizo` this node runs (e.g. the passphrase file
    /// of an encrypted data dir).
    env: Vec<(String, String)>,
}

impl TestNode {
    /// Creates a data dir and an identity (`rhizo init`). `name` labels logs.
    pub fn init(bin: &Path, name: &str) -> anyhow::Result<Self> {
        Self::init_with(bin, name, &["init", "--name", name])
    }

    /// Creates a data dir with only a device key, waiting to be linked (`rhizo init --link`);
    /// its [`uid`](Self::uid) is empty.
    pub fn init_link(bin: &Path, name: &str) -> anyhow::Result<Self> {
        Self::init_with(bin, name, &["init", "--link"])
    }

    /// Creates a data dir with the identity of a recovery phrase (`rhizo init --recover`, the
    /// phrase on stdin) and a new device.
    pub fn init_recover(bin: &Path, name: &str, phrase: &str) -> anyhow::Result<Self> {
        Self::init_input(bin, name, &["init", "--recover"], Some(phrase), &[])
    }

    fn init_with(bin: &Path, name: &str, init: &[&str]) -> anyhow::Result<Self> {
        Self::init_input(bin, name, init, None, &[])
    }

    /// Creates a data dir with `rhizo <init…>` (e.g. `init --passphrase`), with `env` given
    /// to every `rhizo` this node runs from then on.
    pub fn init_with_env(
        bin: &Path,
        name: &str,
        init: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::init_input(bin, name, init, None, env)
    }

    fn init_input(
        bin: &Path,
        name: &str,
        init: &[&str],
        input: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rhizo-test-{name}-"))
            .tempdir()?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        let mut node = Self {
            name: name.to_string(),
            bin: bin.to_path_buf(),
            dir,
            child: None,
            runs: 0,
            peer_id: String::new(),
            uid: String::new(),
            http,
            run_env: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        };
        let out = node.cli_input(init, input)?;
        if !out.status.success() {
            bail!(
                "rhizo init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let id: Value = serde_json::from_slice(&node.cli(&["id", "--json"])?.stdout)
            .context("rhizo id --json")?;
        node.peer_id = id["peer_id"].as_str().unwrap_or_default().to_string();
        node.uid = id["uid"].as_str().unwrap_or_default().to_string();
        Ok(node)
    }

    /// Sets an environment variable for this node's `rhizo run` processes (from the next
    /// start on), e.g. a test-only switch; never for the test process itself, which runs
    /// other nodes in parallel.
    pub fn set_run_env(&mut self, key: &str, value: &str) {
        self.run_env.push((key.to_string(), value.to_string()));
    }

    /// Sets (or replaces) an environment variable for every `rhizo` this node runs from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The device PeerId.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The UID.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Runs `rhizo --data-dir <dir> <args>` to completion, killed after [`CLI_TIMEOUT`] (a
    /// command that should end but does not fails the test instead of hanging it).
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.cli_input(args, None)
    }

    /// [`cli`](Self::cli) with `input` written to its stdin (else stdin is empty).
    pub fn cli_input(&self, args: &[&str], input: Option<&str>) -> anyhow::Result<Output> {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out_path = self.dir.path().join(format!("cli-{call}.out"));
        let err_path = self.dir.path().join(format!("cli-{call}.err"));
        let mut child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env_remove("RUST_LOG")
            .env("RHIZO_MDNS", "false")
            .env("XDG_CONFIG_HOME", self.dir.path().join("no-config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(File::create(&out_path)?)
            .stderr(File::create(&err_path)?)
            .spawn()
            .context("cannot run rhizo")?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write as _;
            stdin.write_all(input.as_bytes())?;
        }
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`rhizo {}` did not finish within {CLI_TIMEOUT:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = Output {
            status,
            stdout: std::fs::read(&out_path)?,
            stderr: std::fs::read(&err_path)?,
        };
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        Ok(output)
    }

    /// The default `run` arguments of a test node: loopback, ephemeral ports, mDNS off.
    pub fn default_run_args() -> Vec<String> {
        [
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Starts `rhizo run` with the default args plus `extra`, and waits until its API answers
    /// and it listens.
    pub fn start(&mut self, extra: &[String]) -> anyhow::Result<()> {
        let mut args = Self::default_run_args();
        args.extend_from_slice(extra);
        self.spawn(&args)?;
        self.wait_ready()
    }

    /// [`start`](Self::start) for every node of `nodes` at once, each with the default args
    /// plus `extra`: all processes are spawned first, then each is waited for, so their
    /// start-ups overlap instead of queueing.
    pub fn start_all(nodes: &mut [Self], extra: &[String]) -> anyhow::Result<()> {
        let mut args = Self::default_run_args();
        args.extend_from_slice(extra);
        for node in nodes.iter_mut() {
            node.spawn(&args)?;
        }
        for node in nodes.iter_mut() {
            node.wait_ready()?;
        }
        Ok(())
    }

    /// Starts `rhizo run` with exactly `args` (after `--data-dir`), without waiting.
    pub fn spawn(&mut self, args: &[String]) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("node {} is already running", self.name);
        }
        let _ = std::fs::remove_file(self.dir.path().join("api.addr"));
        self.runs += 1;
        let stdout = File::create(self.log_path("out"))?;
        let stderr = File::create(self.log_path("err"))?;
        let child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("run")
            .args(args)
            .env(
                "RUST_LOG",
                "info,rhizo_net=debug,rhizo_node=debug,rhizo_engine=debug",
            )
            .envs(self.run_env.iter().map(|(k, v)| (k, v)))
            .env("RHIZO_MDNS", "false")
            .env("XDG_CONFIG_HOME", self.dir.path().join("no-config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("cannot start rhizo run")?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self, kind: &str) -> PathBuf {
        self.dir.path().join(format!("run{}.{kind}.log", self.runs))
    }

    /// The running node's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The running node's peak resident memory so far (`VmHWM`, KiB), on Linux.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Stdout and stderr of every run so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.runs {
            for kind in ["out", "err"] {
                let path = self.dir.path().join(format!("run{run}.{kind}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push_str(&format!(
                    "--- {} run {run} std{kind} ---\n{text}\n",
                    self.name
                ));
            }
        }
        out
    }

    /// Waits until the API answers `/v1/health` and the node reports a listen address.
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        let result = wait_for(START_TIMEOUT, "the node to come up", || {
            if let Some(status) = self.try_exit_status() {
                return Some(Err(anyhow!("rhizo run exited early with {status}")));
            }
            let addr = self.api_addr()?;
            let ok = self
                .http
                .get(format!("http://{addr}/v1/health"))
                .send()
                .ok()?
                .status()
                .is_success();
            let stats = if ok {
                self.api_get("/v1/stats").ok()?
            } else {
                return None;
            };
            let listening = stats["listen_addrs"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            listening.then_some(Ok(()))
        });
        result
            .and_then(|r| r)
            .map_err(|e| anyhow!("{e}\n{}", self.logs()))
    }

    fn try_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The API address the running node wrote.
    pub fn api_addr(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("api.addr"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The API token.
    pub fn api_token(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.dir.path().join("api.token"))?
            .trim()
            .to_string())
    }

    /// `GET path` on the local API with the token; the JSON body.
    pub fn api_get(&self, path: &str) -> anyhow::Result<Value> {
        let addr = self
            .api_addr()
            .ok_or_else(|| anyhow!("node is not running"))?;
        let response = self
            .http
            .get(format!("http://{addr}{path}"))
            .bearer_auth(self.api_token()?)
            .send()?;
        if !response.status().is_success() {
            bail!("GET {path}: {}", response.status());
        }
        Ok(response.json()?)
    }

    /// `GET path` with an optional bearer token; the status code and body text.
    pub fn api_raw(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        let addr = self
            .api_addr()
            .ok_or_else(|| anyhow!("node is not running"))?;
        let mut request = self.http.get(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send()?;
        Ok((response.status().as_u16(), response.text()?))
    }

    /// A multiaddr to reach this node (`/ip4/127.0.0.1/tcp/PORT/p2p/PEER`).
    pub fn listen_addr(&self) -> anyhow::Result<String> {
        let stats = self.api_get("/v1/stats")?;
        let addr = stats["listen_addrs"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find_map(|v| v.as_str().filter(|s| s.contains("/tcp/")))
            })
            .ok_or_else(|| anyhow!("node has no TCP listen address"))?;
        Ok(format!("{addr}/p2p/{}", self.peer_id))
    }

    /// Peer ids this node knows through Kademlia (in its routing table).
    pub fn routing_table_peers(&self) -> Vec<String> {
        self.peers_where(|p| p["in_routing_table"].as_bool() == Some(true))
    }

    /// Peer ids this node has an open connection to.
    pub fn connected_peers(&self) -> Vec<String> {
        self.peers_where(|p| p["connections"].as_u64().unwrap_or(0) > 0)
    }

    fn peers_where(&self, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        let Ok(peers) = self.api_get("/v1/peers") else {
            return Vec::new();
        };
        peers["peers"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|p| keep(p))
                    .filter_map(|p| p["peer_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_exit_status().is_none()
    }

    /// Stops the node with SIGTERM and waits (bounded) for it to exit; kills it otherwise.
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("node {} is not running", self.name);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {} did not stop within {STOP_TIMEOUT:?}", self.name);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (bounded) for a node started with [`spawn`](Self::spawn) to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let status = wait_for(timeout, "rhizo run to exit", || self.try_exit_status());
        if status.is_err()
            && let Some(mut child) = self.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
        status
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

impl TestNode {
    /// `POST path` with a JSON body and the token; the status code and the body text.
    pub fn api_post_raw(&self, path: &str, body: &Value) -> anyhow::Result<(u16, String)> {
        let addr = self
            .api_addr()
            .ok_or_else(|| anyhow!("node is not running"))?;
        let response = self
            .http
            .post(format!("http://{addr}{path}"))
            .bearer_auth(self.api_token()?)
            .json(body)
            .send()?;
        Ok((response.status().as_u16(), response.text()?))
    }

    /// `POST path` with a JSON body and the token; the JSON answer, or an error naming the
    /// status and body.
    pub fn api_post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, text) = self.api_post_raw(path, body)?;
        if !(200..300).contains(&status) {
            bail!("POST {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path}: not JSON: {text}"))
    }

    /// Starts the node with `args` and waits (up to `timeout`) until it published its
    /// KeyPackages in the DHT during this run.
    pub fn start_and_publish(&mut self, args: &[String], timeout: Duration) -> anyhow::Result<()> {
        let before = self.logs().matches("published KeyPackages").count();
        self.start(args)?;
        wait_for(timeout, "KeyPackages published", || {
            (self.logs().matches("published KeyPackages").count() > before).then_some(())
        })
    }

    /// The running node's contact ticket.
    pub fn ticket(&self) -> anyhow::Result<String> {
        Ok(self.api_get("/v1/invite")?["ticket"]
            .as_str()
            .context("invite has no ticket")?
            .to_string())
    }

    /// Sends `text` to `to` (`POST /message`), retrying while the contact's KeyPackages are
    /// not found yet (up to `timeout`); the message as the API returned it.
    pub fn send_when_ready(
        &self,
        to: &str,
        text: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let body = serde_json::json!({"to": to, "text": text});
        wait_for(timeout, "the contact's KeyPackages", || {
            match self.api_post_raw("/v1/message", &body) {
                Ok((200..=299, answer)) => {
                    Some(serde_json::from_str::<Value>(&answer).map_err(anyhow::Error::from))
                }
                Ok((503, answer)) if answer.contains("NO_KEY_PACKAGES") => None,
                Ok((status, answer)) => Some(Err(anyhow!("POST /message: {status} {answer}"))),
                Err(e) => Some(Err(e)),
            }
        })?
    }

    /// The history with `contact` (up to 1000 messages), as the API returns it.
    pub fn history(&self, contact: &str) -> anyhow::Result<Vec<Value>> {
        let list = self.api_get(&format!("/v1/conversations/{contact}/messages?limit=1000"))?;
        list.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("history is not a list: {list}"))
    }

    /// Waits (at most `timeout`) until every one of `texts` this node sent to `to` is
    /// delivered (`read` is a later state of delivered); fails at once when one of them failed.
    ///
    /// # Errors
    ///
    /// On the deadline (saying how many were delivered), a failed message, or an API error.
    pub fn wait_delivered(
        &self,
        to: &str,
        texts: &[impl AsRef<str>],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let want: BTreeSet<&str> = texts.iter().map(AsRef::as_ref).collect();
        let mut last = 0;
        let result = wait_for(timeout, "all messages to be delivered", || {
            let list = match self.history(to) {
                Ok(list) => list,
                Err(e) => return Some(Err(e)),
            };
            let sent = || list.iter().filter(|m| m["direction"] == "out");
            let wanted = |m: &&Value| m["text"].as_str().is_some_and(|t| want.contains(t));
            if let Some(failed) = sent().filter(wanted).find(|m| m["state"] == "failed") {
                return Some(Err(anyhow!("a message failed: {failed}")));
            }
            let done: BTreeSet<&str> = sent()
                .filter(|m| m["state"] == "delivered" || m["state"] == "read")
                .filter_map(|m| m["text"].as_str())
                .collect();
            last = want.intersection(&done).count();
            (last == want.len()).then_some(Ok(()))
        });
        result
            .map_err(|e| anyhow!("{e}: {last} of {} delivered", want.len()))
            .and_then(|r| r)
            .with_context(|| format!("{}'s messages to {to}", self.name))
    }

    /// Waits (at most `timeout`) until this node has received every one of `texts` from
    /// `from`; the history with `from` then.
    ///
    /// # Errors
    ///
    /// On the deadline, naming the texts.
    pub fn wait_received(
        &self,
        from: &str,
        texts: &[impl AsRef<str>],
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        wait_for(timeout, "messages to arrive", || {
            let list = self.history(from).ok()?;
            let got: BTreeSet<&str> = list
                .iter()
                .filter(|m| m["direction"] == "in")
                .filter_map(|m| m["text"].as_str())
                .collect();
            let all = texts.iter().all(|t| got.contains(t.as_ref()));
            all.then(|| list.clone())
        })
        .with_context(|| {
            let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
            format!("{}: texts from {from}: {texts:?}", self.name)
        })
    }

    /// The last `max_bytes` (about) of every run's logs, for failure messages of chatty tests.
    pub fn logs_tail(&self, max_bytes: usize) -> String {
        let all = self.logs();
        if all.len() <= max_bytes {
            return all;
        }
        let mut start = all.len() - max_bytes;
        while !all.is_char_boundary(start) {
            start += 1;
        }
        format!(
            "[… {start} bytes of {} logs cut …]\n{}",
            self.name,
            &all[start..]
        )
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a
/// node that must keep its address across restarts.
pub fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Like [`wait_for`], polling every `interval` (for conditions that must be caught quickly,
/// such as "some but not all messages delivered").
pub fn wait_for_every<T>(
    timeout: Duration,
    interval: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval);
    }
}

/// Adds each node's ticket on the other as contacts `a_name` (on `b`) and `b_name` (on `a`).
///
/// # Errors
///
/// If a ticket cannot be read or a node does not add the other.
pub fn befriend(a: &TestNode, a_name: &str, b: &TestNode, b_name: &str) -> anyhow::Result<()> {
    let added = b.api_post(
        "/v1/contacts",
        &serde_json::json!({"ticket": a.ticket()?, "name": a_name}),
    )?;
    anyhow::ensure!(added["added"] == true, "{a_name} not added: {added}");
    let added = a.api_post(
        "/v1/contacts",
        &serde_json::json!({"ticket": b.ticket()?, "name": b_name}),
    )?;
    anyhow::ensure!(added["added"] == true, "{b_name} not added: {added}");
    Ok(())
}
