//! What the agent end-to-end tests share (agents, agent_liveness, agent_edges, mcp_interop,
//! a2a_interop, agent_examples, agent_groups): a hub, a client node and worker nodes on
//! 127.0.0.1, making two nodes contacts, a `rhizo agent serve` worker process, the skip rule
//! for missing interpreters (a loud `SKIPPED`, and a failure under `CI=1`), a node's event
//! stream, delegating a task and waiting for its state.

#![allow(dead_code, unreachable_pub)]

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail, ensure};
#[allow(unused_imports)] // not every test crate that includes this module befriends
pub use rhizo_test_utils::befriend;
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for records to be published, tasks to move and programs to finish (normally seconds).
pub const TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_BYTES: usize = 32 * 1024;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`).
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Says loudly why a test cannot run here; under `CI=1` that is a failure, not a skip.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    assert!(
        !under_ci(),
        "{line} (CI=1: the tools this test needs must be installed; .ci/run does it)"
    );
}

/// The Python of a virtualenv `.ci/run` creates under `$HOME/.cache/rhizo-py/<name>`
/// (`RHIZO_PY_<NAME>` overrides), if it is there and imports `module`.
pub fn venv_python(name: &str, module: &str) -> Result<PathBuf, String> {
    let python = std::env::var_os(format!("RHIZO_PY_{}", name.to_uppercase()))
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h)
                    .join(".cache/rhizo-py")
                    .join(name)
                    .join("bin/python")
            })
        })
        .ok_or("HOME is not set")?;
    if !python.exists() {
        return Err(format!(
            "{} is missing; create it with `python3 -m venv` and install interop/{name}/requirements.txt (.ci/run does)",
            python.display()
        ));
    }
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("{} cannot import {module}", python.display()));
    }
    Ok(python)
}

/// A child process killed when dropped (a worker, an example program).
pub struct Program {
    pub name: String,
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Program {
    /// Starts `command` with its output in `dir`.
    pub fn start(name: &str, command: &mut Command, dir: &Path) -> anyhow::Result<Self> {
        let out = dir.join(format!("{name}.out.log"));
        let err = dir.join(format!("{name}.err.log"));
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(File::create(&err)?)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            out,
            err,
        })
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            self.name,
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits (bounded) for it to end; its exit status.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        wait_for(timeout, &format!("{} to finish", self.name), || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rhizo agent serve` on `node` with `args`, and waits until its card is set.
pub fn serve(node: &TestNode, name: &str, args: &[&str]) -> anyhow::Result<Program> {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(node.data_dir())
        .args(["agent", "serve"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("RHIZO_MDNS", "false")
        .env("XDG_CONFIG_HOME", node.data_dir().join("no-config"));
    let mut program = Program::start(name, &mut command, node.data_dir())?;
    wait_for(TIMEOUT, "the worker's card", || {
        if let Ok(Some(status)) = program.child.try_wait() {
            return Some(Err(anyhow!("agent serve exited with {status}")));
        }
        node.api_get("/v1/agent/card").ok().map(|_| Ok(()))
    })?
    .map_err(|e| anyhow!("{e}\n{}", program.output()))?;
    Ok(program)
}

/// The nodes of an agent test: a hub (bootstrap, DHT), a client and workers that published
/// their records.
pub struct Net {
    pub hub: TestNode,
    pub client: TestNode,
    pub workers: Vec<TestNode>,
}

impl Net {
    /// Starts the hub, the client and `workers` worker nodes.
    pub fn start(label: &str, workers: usize) -> anyhow::Result<Self> {
        Self::start_with(label, workers, &[])
    }

    /// [`Net::start`], the workers run with `worker_args` too (e.g. `--config FILE`).
    pub fn start_with(label: &str, workers: usize, worker_args: &[String]) -> anyhow::Result<Self> {
        let bin = Path::new(BIN);
        let mut net = Self {
            hub: TestNode::init(bin, &format!("{label}-hub"))?,
            client: TestNode::init(bin, &format!("{label}-client"))?,
            workers: (0..workers)
                .map(|i| TestNode::init(bin, &format!("{label}-worker{i}")))
                .collect::<anyhow::Result<_>>()?,
        };
        let args: Vec<String> = ["--mailbox-poll-secs", "1"].map(String::from).to_vec();
        net.hub.start(&args)?;
        let mut with_hub = args.clone();
        with_hub.extend(["--bootstrap".to_string(), net.hub.listen_addr()?]);
        net.client.start_and_publish(&with_hub, TIMEOUT)?;
        with_hub.extend_from_slice(worker_args);
        for worker in &mut net.workers {
            worker.start_and_publish(&with_hub, TIMEOUT)?;
        }
        Ok(net)
    }

    /// The first worker node.
    pub fn worker(&self) -> &TestNode {
        &self.workers[0]
    }

    /// Makes client and worker contacts of each other (`worker` and `client`), with a
    /// conversation that carried a message.
    pub fn befriend(&self) -> anyhow::Result<()> {
        let client_ticket = self.client.ticket()?;
        let worker_ticket = self.worker().ticket()?;
        let added = self.worker().api_post(
            "/v1/contacts",
            &json!({"ticket": client_ticket, "name": "client"}),
        )?;
        ensure!(added["added"] == true, "client not added: {added}");
        let added = self.client.api_post(
            "/v1/contacts",
            &json!({"ticket": worker_ticket, "name": "worker"}),
        )?;
        ensure!(added["added"] == true, "worker not added: {added}");
        let hi = self.client.send_when_ready("worker", "hello", TIMEOUT)?;
        let id = hi["id"].as_i64().context("message has no id")?;
        wait_for(TIMEOUT, "the first message to be delivered", || {
            let list = self.client.history("worker").ok()?;
            list.iter()
                .any(|m: &Value| m["id"] == id && m["state"] == "delivered")
                .then_some(())
        })
    }

    /// Every node's log tail, for a failure message.
    pub fn logs(&self) -> String {
        [&self.hub, &self.client]
            .into_iter()
            .chain(&self.workers)
            .map(|n| n.logs_tail(LOG_TAIL_BYTES))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A node's `/v1/events` stream, read as JSON events.
pub struct Events {
    response: reqwest::blocking::Response,
    buffer: String,
}

impl Events {
    pub fn open(node: &TestNode) -> anyhow::Result<Self> {
        // Keep-alive comments come every 15 s, so a read never blocks longer than that.
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .no_proxy()
            .build()?;
        let addr = node.api_addr().context("no API address")?;
        let response = client
            .get(format!("http://{addr}/v1/events"))
            .bearer_auth(node.api_token()?)
            .send()?;
        ensure!(response.status().is_success(), "{}", response.status());
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next event satisfying `want`, within `timeout`.
    pub fn next(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let mut seen = self.collect_until(timeout, want)?;
        seen.pop().context("no event")
    }

    /// Every event up to and including the first one satisfying `last`, within `timeout`.
    pub fn collect_until(
        &mut self,
        timeout: Duration,
        last: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:")
                    && let Ok(event) = serde_json::from_str::<Value>(data.trim())
                {
                    let done = last(&event);
                    seen.push(event);
                    if done {
                        return Ok(seen);
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for an event; seen: {seen:?}");
            }
            let n = self.response.read(&mut chunk)?;
            if n == 0 {
                bail!("the event stream ended; seen: {seen:?}");
            }
            self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }
}

/// `POST /v1/tasks`, retrying (bounded) while the agent's identity or KeyPackages are not in
/// the DHT yet; the task.
pub fn delegate(node: &TestNode, body: &Value) -> anyhow::Result<Value> {
    wait_for(
        TIMEOUT,
        "the agent's identity and KeyPackages",
        || match node.api_post_raw("/v1/tasks", body) {
            Ok((201, answer)) => {
                Some(serde_json::from_str::<Value>(&answer).map_err(anyhow::Error::from))
            }
            Ok((503, answer)) if answer.contains("NO_KEY_PACKAGES") => None,
            Ok((404, answer)) if answer.contains("NOT_IN_DHT") => None,
            Ok((400, answer)) if answer.contains("UNPROVEN_DEVICES") => None,
            Ok((status, answer)) => Some(Err(anyhow!("POST /v1/tasks: {status} {answer}"))),
            Err(e) => Some(Err(e)),
        },
    )?
}

/// Waits until `node`'s task `id` is in `state`; the task.
pub fn wait_task(node: &TestNode, id: &str, state: &str) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    wait_for(TIMEOUT, &format!("task {id} to be {state}"), || {
        last = node.api_get(&format!("/v1/tasks/{id}")).ok()?;
        (last["status"]["state"] == state).then(|| last.clone())
    })
    .map_err(|e| anyhow!("{e}; last seen: {last}"))
}

/// The states of a task's status history, oldest first.
pub fn states(task: &Value) -> Vec<String> {
    task["status_history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|s| s["state"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
