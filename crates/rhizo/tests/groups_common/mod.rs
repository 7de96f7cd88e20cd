//! What the group end-to-end tests share (groups, groups_six): real `rhizo` processes on
//! 127.0.0.1, befriending, posting while the members' KeyPackages are not found yet, and
//! bounded waits on a group's state and history.

#![allow(dead_code, unreachable_pub)]

use std::{path::Path, time::Duration};

use anyhow::{Context, anyhow, ensure};
#[allow(unused_imports)] // not every test crate that includes this module befriends
pub use rhizo_test_utils::befriend;
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Creating or adding waits for the members' KeyPackages in the DHT.
pub const KEY_PACKAGES_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for a group change or text to reach every member (normally a few seconds).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);
/// How much of each node's log a failure prints.
pub const LOG_TAIL_BYTES: usize = 64 * 1024;

pub fn bin() -> &'static Path {
    Path::new(BIN)
}

/// Run arguments: bootstrap from `addr`, fast mailbox polling (so the mailbox test's periodic
/// work happens within its bounded waits).
pub fn boot_args(addr: &str) -> Vec<String> {
    ["--bootstrap", addr, "--mailbox-poll-secs", "1"]
        .map(String::from)
        .to_vec()
}

/// `POST path` with `body`, retried (bounded) while a member's KeyPackages are not found.
pub fn post_when_ready(node: &TestNode, path: &str, body: &Value) -> anyhow::Result<Value> {
    wait_for(
        KEY_PACKAGES_TIMEOUT,
        "the members' KeyPackages",
        || match node.api_post_raw(path, body) {
            Ok((200..=299, answer)) => {
                Some(serde_json::from_str::<Value>(&answer).map_err(anyhow::Error::from))
            }
            Ok((503, answer)) if answer.contains("NO_KEY_PACKAGES") => None,
            Ok((status, answer)) => Some(Err(anyhow!("POST {path}: {status} {answer}"))),
            Err(e) => Some(Err(e)),
        },
    )?
}

/// The node's view of the group `id`, once `ready` says it is as expected.
pub fn wait_group(
    node: &TestNode,
    id: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    wait_for(DELIVERY_TIMEOUT, what, || {
        let list = node.api_get("/v1/groups").ok()?;
        list.as_array()?
            .iter()
            .find(|g| g["id"] == id && ready(g))
            .cloned()
    })
    .with_context(|| format!("{}: {what}", node.uid()))
}

/// A group's history on `node`.
pub fn history(node: &TestNode, id: &str) -> anyhow::Result<Vec<Value>> {
    let list = node.api_get(&format!("/v1/groups/{id}/messages?limit=1000"))?;
    list.as_array()
        .cloned()
        .ok_or_else(|| anyhow!("history is not a list: {list}"))
}

/// The received texts of a history.
pub fn received(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter(|m| m["direction"] == "in")
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

/// Waits until `node` received every one of `want` in group `id`, then checks each came once.
pub fn wait_received(node: &TestNode, id: &str, want: &[&str]) -> anyhow::Result<()> {
    let got = wait_for(DELIVERY_TIMEOUT, "the group's texts", || {
        let got = received(&history(node, id).ok()?);
        want.iter()
            .all(|w| got.iter().any(|g| g == w))
            .then_some(got)
    })
    .with_context(|| {
        let got = history(node, id).map(|h| received(&h)).unwrap_or_default();
        let missing: Vec<&&str> = want
            .iter()
            .filter(|w| !got.iter().any(|g| g == *w))
            .collect();
        format!(
            "{} waiting for {missing:?} (has {} texts)",
            node.uid(),
            got.len()
        )
    })?;
    for w in want {
        let n = got.iter().filter(|g| g == w).count();
        ensure!(n == 1, "{}: {w:?} arrived {n} times: {got:?}", node.uid());
    }
    Ok(())
}

/// Runs a CLI command; its stdout, or an error with its stderr.
pub fn cli(node: &TestNode, args: &[&str]) -> anyhow::Result<String> {
    let out = node.cli(args)?;
    ensure!(
        out.status.success(),
        "`rhizo {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails the test with `e` and the tail of every node's log.
pub fn panic_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}
