//! B13 "several holders": the fetch time of one file from 1, 2 and 3 holders, in the same run.
//!
//! Four in-process nodes (alice, bob, carol, dave; nothing downloads by itself) form a group;
//! alice sends a file of B13's size to it. Bob fetches it while only alice holds it (1
//! holder), then carol (alice and bob hold it: 2), then dave (alice, bob, carol: 3). The
//! fetcher spreads ranges over every member that holds the file (4 requests per holder, 12 per
//! file; a member without the file answers `NOT_FOUND` and is skipped). Target: 3 holders
//! ≤ 0.6 × the time of 1.
//!
//! ```text
//!  alice ─ POST /v1/files {to: team} ─▶ bob fetch  ◀── alice                (1 holder)
//!                                       carol fetch ◀── alice, bob           (2)
//!                                       dave fetch  ◀── alice, bob, carol    (3)
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rhizo_node::ConfigLayer;
use serde_json::{Value, json};

use super::{Disk, Node, befriend};

/// How long group setup, a KeyPackage lookup or one fetch may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a state is polled.
const POLL: Duration = Duration::from_millis(20);

/// Fetch seconds from 1, 2 and 3 holders.
#[derive(Debug, Clone, Copy)]
pub(super) struct HolderTimes {
    /// Bob's fetch: alice only.
    pub(super) one: f64,
    /// Carol's: alice and bob.
    pub(super) two: f64,
    /// Dave's: alice, bob and carol.
    pub(super) three: f64,
}

/// Polls `f` every [`POLL`] until it gives a value (bounded by [`STEP_TIMEOUT`]).
async fn poll<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs the four nodes, the group, the file and the three fetches.
pub(super) async fn run_holders(input: &Path) -> anyhow::Result<HolderTimes> {
    let no_auto = || ConfigLayer {
        files_auto_download_mib: Some(0),
        ..ConfigLayer::default()
    };
    let alice = Node::start_with("alice", None, Disk::Tmp, no_auto()).await?;
    let mut members = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let mut node = Node::start_with(name, Some(&alice.listen), Disk::Tmp, no_auto()).await?;
        node.wait_connected().await?;
        befriend(&alice.api, "alice", &node.api, name).await?;
        members.push(node);
    }
    let out = fetches(&alice, &members, input).await;
    for node in members {
        node.shutdown().await;
    }
    alice.shutdown().await;
    out
}

async fn fetches(alice: &Node, members: &[Node], input: &Path) -> anyhow::Result<HolderTimes> {
    let body = json!({"name": "team", "members": ["bob", "carol", "dave"]});
    let group: Value = poll("the members' KeyPackages", || async {
        let (status, text) = alice.api.post_raw("/v1/groups", &body).await?;
        Ok(status
            .is_success()
            .then(|| serde_json::from_str(&text))
            .transpose()?)
    })
    .await?;
    let id = group["id"].as_str().context("group id")?.to_string();
    for node in members {
        poll("every member in the group", || async {
            let list: Vec<Value> = node.api.get("/v1/groups").await?;
            Ok(list
                .iter()
                .any(|g| g["id"] == id.as_str() && g["members"] == 4)
                .then_some(()))
        })
        .await?;
    }
    let sent: Value = alice
        .api
        .post(
            "/v1/files",
            &json!({"to": id, "group": true, "path": input.display().to_string()}),
        )
        .await?;
    let hash = sent["file"]["hash"]
        .as_str()
        .context("no hash")?
        .to_string();
    let mut times = Vec::new();
    for node in members {
        times.push(fetch(node, &hash).await?);
    }
    Ok(HolderTimes {
        one: times[0],
        two: times[1],
        three: times[2],
    })
}

/// `node` fetches the file with content hash `hash` once its message is there: seconds.
async fn fetch(node: &Node, hash: &str) -> anyhow::Result<f64> {
    let id = poll("the file message", || async {
        let files: Vec<Value> = node.api.get("/v1/files").await?;
        Ok(files
            .iter()
            .find(|f| f["hash"] == hash)
            .and_then(|f| f["id"].as_i64()))
    })
    .await?;
    let started = Instant::now();
    let _: Value = node
        .api
        .post(&format!("/v1/files/{id}/fetch"), &Value::Null)
        .await?;
    poll("the fetch", || async {
        let info: Value = node.api.get(&format!("/v1/files/{id}/info")).await?;
        match info["state"].as_str() {
            Some("done") => Ok(Some(())),
            Some("failed") => bail!("the fetch failed: {info}"),
            _ => Ok(None),
        }
    })
    .await?;
    Ok(started.elapsed().as_secs_f64())
}
