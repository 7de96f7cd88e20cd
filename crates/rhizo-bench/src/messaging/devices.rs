//! B11 and B12 (issue 15): linking a second device, with real in-process rhizo nodes driven
//! through their local API.
//!
//! ```text
//!  alice (a1, root key) ══ contacts c0…cN (1:1 conversations), groups g0…gG
//!  a2: init --link, run ─▶ POST /v1/devices/link-ticket ─▶ a1: POST /v1/devices {ticket}
//!      ─▶ /rhizo/link/1 ─▶ a2's full node ─▶ KeyPackages in the DHT ─▶ a1: sync group,
//!         1:1 adds (ConversationJoin over the sync group), group adds (Welcomes), history
//! ```
//!
//! * **B11**: the time from `POST /v1/devices` on a1 until a2's `GET /v1/conversations` lists
//!   every 1:1 conversation and every group (a2 holds each conversation's MLS state: it can
//!   send there), with [`B11_CONTACTS`] contacts and [`B11_GROUPS`] groups. Reference: the same
//!   number of MLS add commits in process (rhizo-e2e, in memory): per conversation, the add of
//!   the new device's KeyPackage, the other member processing the commit, and the new device
//!   joining from the Welcome. Target ≤ 2 ×.
//! * **B12**: a1 and bob with [`B12_MESSAGES`] texts of [`B12_TEXT_BYTES`] bytes; the history
//!   transfer over the sync group, from a1's first `device_sync_progress` event (the transfer
//!   starts) to its `finished` one (a2 acknowledged the last page: it holds every text), as
//!   MiB/s of text, against B1's rhizo-net link measured in the same run. Target ≥ 0.5. The
//!   time from `POST /v1/devices` until a2's API lists every text (the link included) is
//!   reported next to it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rhizo_core::{DeviceKey, RootKey};
use rhizo_e2e::{Conversation, Device, E2eStore, Processed};
use rhizo_node::{devices::LinkTicketView, events::ApiEvent, messaging::ConversationView};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Api, Disk, Node, Pair, befriend};
use crate::report::{Row, Target};
use crate::{ms, transport};

/// Contacts (1:1 conversations) of B11, and with `--quick`.
pub const B11_CONTACTS: [usize; 2] = [50, 3];
/// Groups of B11 (two contacts each), and with `--quick`.
pub const B11_GROUPS: [usize; 2] = [10, 2];
/// Texts in B12's history, and with `--quick`.
pub const B12_MESSAGES: [usize; 2] = [10_000, 300];
/// Bytes per text of B12.
pub const B12_TEXT_BYTES: usize = 256;
/// How long a link may take until the new device holds everything.
const LINK_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a2's API is polled.
const POLL: Duration = Duration::from_millis(100);

/// B11's and B12's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DevicesResult {
    /// 1:1 conversations and groups of B11.
    pub contacts: usize,
    /// See `contacts`.
    pub groups: usize,
    /// `POST /v1/devices` → a2 lists every conversation (ms).
    pub link_ms: f64,
    /// `POST /v1/devices` → a2's full node is up (ms; part of `link_ms`).
    pub full_node_ms: f64,
    /// The same number of add commits in process, summed (ms).
    pub mls_adds_ms: f64,
    /// B12's texts.
    pub messages: usize,
    /// `POST /v1/devices` → a2 holds every text (ms).
    pub history_ms: f64,
    /// The transfer alone: a1's first `device_sync_progress` → its `finished` one (ms).
    pub transfer_ms: f64,
    /// History throughput, MiB/s of text.
    pub history_mib_s: f64,
    /// B1's rhizo-net link in the same run, MiB/s.
    pub rhizo_net_mib_s: f64,
}

impl DevicesResult {
    /// The report rows of `bench` (`B11` or `B12`).
    pub fn rows(&self, bench: &str) -> Vec<Row> {
        if bench == "B11" {
            let what = format!(
                "link a device: {} contacts + {} groups, until it holds every conversation",
                self.contacts, self.groups
            );
            return vec![
                Row::new("B11", what, self.link_ms, "ms")
                    .reference("the same MLS add commits in process", self.mls_adds_ms)
                    .target(Target::ratio_at_most(2.0))
                    .note(format!(
                        "a2's full node up after {:.0} ms",
                        self.full_node_ms
                    )),
            ];
        }
        vec![
            Row::new(
                "B12",
                format!(
                    "history transfer: {} texts of {B12_TEXT_BYTES} B (vs B1 rhizo-net link)",
                    self.messages
                ),
                self.history_mib_s,
                "MiB/s",
            )
            .reference("B1 rhizo-net link, same run", self.rhizo_net_mib_s)
            .target(Target::ratio_at_least(0.5))
            .note(format!(
                "transfer {:.0} ms, {:.0} texts/s; link + transfer until a2 lists them {:.0} ms",
                self.transfer_ms,
                self.messages as f64 / (self.transfer_ms / 1e3),
                self.history_ms,
            )),
        ]
    }
}

/// Runs B11 and B12 (B1 first, for B12's same-run reference).
pub async fn run_devices(quick: bool) -> anyhow::Result<DevicesResult> {
    let size = usize::from(quick);
    let (contacts, groups, messages) = (B11_CONTACTS[size], B11_GROUPS[size], B12_MESSAGES[size]);
    let b1 = transport::run_b1(true).await?;
    super::install_tracing();
    let (link_ms, full_node_ms) = b11(contacts, groups).await?;
    let mls_adds_ms = mls_adds(contacts + groups)?;
    let (history_ms, transfer_ms) = b12(messages).await?;
    let mib = (messages * B12_TEXT_BYTES) as f64 / f64::from(1u32 << 20);
    Ok(DevicesResult {
        contacts,
        groups,
        link_ms,
        full_node_ms,
        mls_adds_ms,
        messages,
        history_ms,
        transfer_ms,
        history_mib_s: mib / (transfer_ms / 1e3),
        rhizo_net_mib_s: b1.rhizo_net_mib_s,
    })
}

/// B11 on fresh nodes: (link ms, full node up ms).
async fn b11(contacts: usize, groups: usize) -> anyhow::Result<(f64, f64)> {
    let a1 = Node::start("alice", None, Disk::Tmp).await?;
    let mut others = Vec::new();
    for i in 0..contacts {
        let mut c = Node::start(&format!("c{i}"), Some(&a1.listen), Disk::Tmp).await?;
        c.wait_connected().await?;
        befriend(&a1.api, "alice", &c.api, &format!("c{i}")).await?;
        c.api.send_when_ready("alice", "hello alice").await?;
        others.push(c);
    }
    let names: Vec<String> = (0..contacts).map(|i| format!("c{i}")).collect();
    wait_conversations(&a1.api, &names, 0).await?;
    for g in 0..groups {
        let members = [&names[g % contacts], &names[(g + 1) % contacts]];
        let _: Value = a1
            .api
            .post(
                "/v1/groups",
                &json!({"name": format!("g{g}"), "members": members}),
            )
            .await?;
    }
    let mut a2 = Node::start_link(&a1.listen, Disk::Tmp).await?;
    let started = Instant::now();
    link(&a1.api, &mut a2, Some(1)).await?;
    let full_node_ms = ms(started.elapsed());
    wait_conversations(&a2.api, &names, groups).await?;
    let link_ms = ms(started.elapsed());
    a2.shutdown().await;
    for c in others {
        c.shutdown().await;
    }
    a1.shutdown().await;
    Ok((link_ms, full_node_ms))
}

/// Links `a2` (a link node) from `a1`, and waits until a2's full node answers.
async fn link(a1: &Api, a2: &mut Node, history_days: Option<u32>) -> anyhow::Result<()> {
    let ticket: LinkTicketView = a2.api.post("/v1/devices/link-ticket", &Value::Null).await?;
    let _: Value = a1
        .post(
            "/v1/devices",
            &json!({"ticket": ticket.ticket, "history_days": history_days}),
        )
        .await?;
    a2.wait_full_node().await
}

/// Waits until `api` lists a 1:1 conversation with each of `names` and `groups` groups.
async fn wait_conversations(api: &Api, names: &[String], groups: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + LINK_TIMEOUT;
    loop {
        let list: Vec<ConversationView> = api.get("/v1/conversations").await.unwrap_or_default();
        let direct = names
            .iter()
            .filter(|n| list.iter().any(|c| c.kind == "direct" && c.name == **n))
            .count();
        let held = list.iter().filter(|c| c.kind == "group").count();
        if direct == names.len() && held >= groups {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {direct} of {} 1:1 conversations and {held} of {groups} groups in time",
                names.len()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// B12 on fresh nodes: (ms from the link until a2 lists all `messages` texts, ms of the
/// transfer alone on a1's `device_sync_progress` events).
async fn b12(messages: usize) -> anyhow::Result<(f64, f64)> {
    let mut pair = Pair::start(Disk::Tmp).await?;
    pair.warm_up(0).await?;
    pair.pipelined(messages, B12_TEXT_BYTES, "history").await?;
    let mut progress = SyncProgress::open(&pair.alice.api).await?;
    let mut a2 = Node::start_link(&pair.alice.listen, Disk::Tmp).await?;
    let started = Instant::now();
    link(&pair.alice.api, &mut a2, None).await?;
    let deadline = Instant::now() + LINK_TIMEOUT;
    loop {
        let history: Vec<Value> = a2
            .api
            .get("/v1/conversations/bob/messages?limit=100000")
            .await
            .unwrap_or_default();
        let held = history
            .iter()
            .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("history")))
            .count();
        if held >= messages {
            break;
        }
        if Instant::now() > deadline {
            bail!("a2 holds {held} of {messages} texts in time");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let history_ms = ms(started.elapsed());
    let transfer_ms = progress.transfer_ms().await?;
    a2.shutdown().await;
    pair.shutdown().await;
    Ok((history_ms, transfer_ms))
}

/// The sending side's `device_sync_progress` events on a node's `GET /v1/events` stream, with
/// the time each arrived: (when, finished).
struct SyncProgress {
    rx: tokio::sync::mpsc::Receiver<(Instant, bool)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyncProgress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SyncProgress {
    /// Subscribes (the subscription exists once this returns).
    async fn open(api: &Api) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut response = http
            .get(format!("{}/v1/events", api.base))
            .bearer_auth(&api.token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET /v1/events: {}", response.status());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let at = Instant::now();
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let Some(data) = line.trim_end().strip_prefix("data:") else {
                        continue;
                    };
                    if let Ok(ApiEvent::DeviceSyncProgress {
                        sending: true,
                        finished,
                        ..
                    }) = serde_json::from_str::<ApiEvent>(data.trim_start())
                        && tx.send((at, finished)).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Self { rx, task })
    }

    /// The time from the first event to the `finished` one (waits for it, bounded).
    async fn transfer_ms(&mut self) -> anyhow::Result<f64> {
        let deadline = tokio::time::Instant::now() + LINK_TIMEOUT;
        let mut first = None;
        loop {
            let (at, finished) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow::anyhow!("the history transfer did not finish in time"))?
                .context("the event stream ended")?;
            let first = *first.get_or_insert(at);
            if finished {
                return Ok(ms(at.duration_since(first)));
            }
        }
    }
}

/// A fresh MLS device under `root`.
fn device(root: &RootKey) -> anyhow::Result<Device> {
    let key = DeviceKey::generate()?;
    let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    let cert = root.certify_device(&key.public(), now);
    Ok(Device::new(&key.to_bytes(), &cert.encode())?)
}

/// `n` add commits in process (ms, summed): per conversation of two devices, the new
/// device's add, the other member processing it, the adder confirming it (a 1:1 commit
/// waits for the other side), and the new device joining.
fn mls_adds(n: usize) -> anyhow::Result<f64> {
    let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    let (alice, bob) = (RootKey::generate()?, RootKey::generate()?);
    let (a1, other, a2) = (device(&alice)?, device(&bob)?, device(&alice)?);
    let stores = [
        E2eStore::open_in_memory()?,
        E2eStore::open_in_memory()?,
        E2eStore::open_in_memory()?,
    ];
    let mut total = 0.0;
    for _ in 0..n {
        let kp = rhizo_e2e::create_key_packages(&stores[1], &other, 1, false)?
            .pop()
            .context("no KeyPackage")?;
        let (mut ours, welcome) = Conversation::create(&stores[0], &a1, &[kp], now)?;
        let mut theirs = Conversation::join(&stores[1], &other, &welcome, now)?;
        let kp = rhizo_e2e::create_key_packages(&stores[2], &a2, 1, false)?
            .pop()
            .context("no KeyPackage")?;
        let start = Instant::now();
        let (commit, welcome) = ours.add_devices(&stores[0], &a1, &[kp], now)?;
        let processed = theirs.process(&stores[1], &other, &commit, now)?;
        if !matches!(processed.first(), Some(Processed::CommitApplied { .. })) {
            bail!("the other member did not apply the add: {processed:?}");
        }
        ours.confirm_commit(&stores[0])?;
        Conversation::join(&stores[2], &a2, &welcome, now)?;
        total += ms(start.elapsed());
    }
    Ok(total)
}
