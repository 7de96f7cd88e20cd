//! The agent examples of `examples/agents/` run against real nodes on 127.0.0.1, as a reader
//! would run them: a worker (`worker.py`, skill `upper`) and a client (`client.py`) that finds
//! it by skill through the DHT, with no prior contact, delegates and prints the result; the
//! two-hop delegation (`two_hop.py`: A delegates to B, whose work delegates part to C); and the
//! TypeScript client (`client.ts`, on Node 22.6+ natively or on Node 20 with the `tsx` pinned
//! in examples/agents/package-lock.json).
//!
//! ```text
//!  client.py / client.ts (A) ──find "upper"──▶ DHT ──task──▶ worker.py (C)
//!  client.py (A) ──task "pipeline"──▶ two_hop.py (B) ──task "upper"──▶ worker.py (C)
//! ```
//!
//! The Python examples need only `python3`; without it the test prints `SKIPPED …` (a failure
//! under `CI=1`). The TypeScript client is skipped the same way without Node or `tsx`.

mod agent_common;

use std::{path::PathBuf, process::Command};

use agent_common::{Net, Program, TIMEOUT, repo_root, skip};
use anyhow::{Context, ensure};
use rhizo_test_utils::{TestNode, wait_for};

fn examples() -> PathBuf {
    repo_root().join("examples/agents")
}

fn python() -> Result<PathBuf, String> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(PathBuf::from("python3"))
    } else {
        Err("python3 is not available".into())
    }
}

/// How to run client.ts here: `node --experimental-strip-types` (22.6+), or the pinned tsx.
fn typescript() -> Result<Vec<String>, String> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is not available ({e})"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut numbers = version.trim_start_matches('v').split('.');
    let major: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let minor: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    if major > 22 || (major == 22 && minor >= 6) {
        return Ok(vec!["node".into(), "--experimental-strip-types".into()]);
    }
    let tsx = examples().join("node_modules/.bin/tsx");
    if tsx.exists() {
        return Ok(vec![tsx.display().to_string()]);
    }
    Err(format!(
        "Node.js {version} cannot strip types and {} is missing; run `npm ci` in examples/agents (.ci/run does)",
        tsx.display()
    ))
}

/// Starts an example program against `node`.
fn example(
    node: &TestNode,
    name: &str,
    program: &[String],
    args: &[&str],
) -> anyhow::Result<Program> {
    let mut command = Command::new(&program[0]);
    command
        .args(&program[1..])
        .args(args)
        .arg("--data-dir")
        .arg(node.data_dir())
        .current_dir(examples());
    Program::start(name, &mut command, node.data_dir())
}

/// Runs a client example to its end; its stdout.
fn run_client(
    node: &TestNode,
    name: &str,
    program: &[String],
    args: &[&str],
) -> anyhow::Result<String> {
    let mut client = example(node, name, program, args)?;
    let status = client.wait(TIMEOUT)?;
    ensure!(
        status.success(),
        "{name} failed ({status}):\n{}",
        client.output()
    );
    std::fs::read_to_string(&client.out).context("client output")
}

/// Waits until `node` has an agent card (the worker example set it).
fn wait_card(node: &TestNode, worker: &mut Program) -> anyhow::Result<()> {
    wait_for(TIMEOUT, "the example worker's card", || {
        if let Ok(Some(status)) = worker.child.try_wait() {
            return Some(Err(anyhow::anyhow!("{} exited with {status}", worker.name)));
        }
        node.api_get("/v1/agent/card").ok().map(|_| Ok(()))
    })?
    .with_context(|| worker.output())
}

#[test]
fn the_agent_examples_work_against_real_nodes() {
    let python = match python() {
        Ok(p) => vec![p.display().to_string()],
        Err(why) => return skip("agent_examples", &why),
    };
    // workers[0] = C (upper), workers[1] = B (pipeline, delegates to C).
    let net = Net::start("examples", 2).expect("start the nodes");
    if let Err(e) = scenario(&net, &python) {
        panic!("{e:#}\n{}", net.logs());
    }
}

fn scenario(net: &Net, python: &[String]) -> anyhow::Result<()> {
    let script = |name: &str| -> Vec<String> {
        let mut p = python.to_vec();
        p.push(examples().join(name).display().to_string());
        p
    };
    let (c, b) = (&net.workers[0], &net.workers[1]);
    let mut worker = example(c, "worker.py", &script("worker.py"), &["--skill", "upper"])?;
    wait_card(c, &mut worker)?;

    // A finds C by skill (no contact) and delegates.
    let bundles = c.logs().matches("published KeyPackages").count();
    let out = run_client(
        &net.client,
        "client.py",
        &script("client.py"),
        &["--skill", "upper", "--text", "hello agents"],
    )
    .with_context(|| worker.output())?;
    ensure!(out.trim() == "HELLO AGENTS", "client.py printed {out:?}");
    // A's Welcome used one of C's one-time KeyPackages; C republishes its bundle within
    // seconds. B's first contact with C comes next: built from the old bundle it may pick the
    // same KeyPackage, which C then refuses for good (its task fails "not delivered"). Both
    // first contacts racing is a known limit (docs/architecture.md "Left open"); this test is
    // about the examples, so B starts once C's new bundle is out.
    wait_for(TIMEOUT, "C's KeyPackages republished", || {
        (c.logs().matches("published KeyPackages").count() > bundles).then_some(())
    })?;

    // Two hops: A → B (pipeline) → C (upper); B reverses what C answers.
    let mut two_hop = example(
        b,
        "two_hop.py",
        &script("two_hop.py"),
        &["--skill", "pipeline", "--via", "upper"],
    )?;
    wait_card(b, &mut two_hop)?;
    let out = run_client(
        &net.client,
        "client.py-two-hop",
        &script("client.py"),
        &["--skill", "pipeline", "--text", "abc"],
    )
    .with_context(|| format!("{}\n{}", two_hop.output(), worker.output()))?;
    ensure!(out.trim() == "CBA", "the two-hop client printed {out:?}");

    // The TypeScript client, like the Python one.
    match typescript() {
        Ok(node) => {
            let mut program = node.clone();
            program.push(examples().join("client.ts").display().to_string());
            let out = run_client(
                &net.client,
                "client.ts",
                &program,
                &["--skill", "upper", "--text", "typed"],
            )?;
            ensure!(out.trim() == "TYPED", "client.ts printed {out:?}");
        }
        Err(why) => skip("agent_examples (client.ts)", &why),
    }
    Ok(())
}
