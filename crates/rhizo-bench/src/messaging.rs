//! B2, B3 and B4: real rhizo nodes (`rhizo_node::run`) in this process, driven through their
//! local API exactly as a client would drive them.
//!
//! ```text
//!  bench ──reqwest──▶ alice's API ──▶ alice (node::run) ══ TCP+Noise+Yamux, 127.0.0.1 ══ bob
//!    ▲                                                        /rhizo/msg/1
//!    └── SSE GET /v1/events: message_state {id, "delivered"} ◀── alice
//! ```
//!
//! Each node gets a fresh identity in a temporary data dir (`$TMPDIR`), listens on
//! `/ip4/127.0.0.1/tcp/0`, its API on `127.0.0.1:0`, mDNS off; bob bootstraps from alice. They
//! add each other from `GET /v1/invite` tickets (`POST /v1/contacts`). Everything else is the
//! node's default configuration (SQLite `synchronous = FULL`, rekey every 100 messages, the
//! per-peer rate limit of 100 msg/s with a burst of 500).
//!
//! * **B2**: after a warm-up, N sequential sends (`POST /v1/conversations/bob/messages`), each
//!   timed from the POST to the `delivered` state event on alice's event stream; the raw TCP and
//!   libp2p request-response ping-pongs ([`crate::transport`]) run in the same runtime. Each
//!   message is also split in three stages with bob's event stream: the POST; POST returned →
//!   bob's `message_received`; that → alice's `delivered`. Full runs repeat it with the data
//!   dirs on tmpfs (where `fsync` is free).
//! * **B3**: N messages of 64 B, then of 1 KiB, POSTed with 8 in flight, timed from the first
//!   POST to the last `delivered` event; the reference is the Ed25519 sign+verify rate of
//!   rhizo-core's `DeviceKey` on one core (every message costs at least one of each). Diagnostics
//!   break the cost down: MLS alone (rhizo-e2e, in-memory and on SQLite files), the SQLite
//!   commit rate of the disk, how many texts shared a commit and how many envelopes a batch frame
//!   (the nodes' `/stats` counters), and (full runs) the same pair with its data dirs on tmpfs.
//! * **B4**: fresh identities and nodes per setup; once both nodes have published their
//!   KeyPackages, the time from exchanging tickets to the first message delivered; reference:
//!   the same MLS work in-process (KeyPackage, group creation, Welcome, first message).
//!
//! Files: `messaging.rs` (B2, B3, B4 and their figures), `messaging/harness.rs` (in-process
//! nodes, API clients, event streams, the warm pair), `messaging/agents.rs` (B14, B15),
//! `messaging/push.rs` (PUSH: mailbox push latency), `messaging/encstore.rs` (ENCSTORE: B2
//! and B3 on an encrypted store against a plaintext one, interleaved), `messaging/files.rs` (B13),
//! `messaging/holders.rs` (B13's 3 holders vs 1), `messaging/light.rs` (B16),
//! `messaging/devices.rs` (B11, B12: linking a second device),
//! `messaging/capacity.rs` (B17: gateway memory per light client, child processes).

/// Whether the nodes of these benchmarks run on encrypted stores (`--encrypted-store`).
pub static ENCRYPTED_STORE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

pub mod agents;
pub mod capacity;
pub mod devices;
pub mod encstore;
pub mod files;
mod holders;
pub mod light;
pub mod push;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};
use rhizo_core::{DeviceKey, RootKey};
use rhizo_node::{
    Config, ConfigLayer, DataDir,
    api::{AddContactRequest, AddContactResponse, InviteResponse, TextBody},
    data_dir::InitOutcome,
    events::ApiEvent,
    messaging::MessageView,
    node::{META_DISPLAY_NAME, NodeReport},
};
use serde::Serialize;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::report::{Row, Target};
use crate::{Summary, ms, progress, transport};

/// How long a node may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first message may wait for the contact's KeyPackages in the DHT.
const KEY_PACKAGES_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one message may take to be delivered.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a batch of B3 may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(300);
/// POSTs in flight in B3.
pub const B3_CONCURRENCY: usize = 8;
/// The receiving node's sustained per-peer rate limit on `/rhizo/msg/1` (rhizo-node guard).
const MSG_RATE_PER_SEC: u64 = 100;

// --- the KeyPackage probe ------------------------------------------------------------------

/// How often any in-process node logged "published KeyPackages in the DHT".
static KEY_PACKAGES_PUBLISHED: AtomicU64 = AtomicU64::new(0);

/// A tracing layer that counts the nodes' "published KeyPackages" events (the only way to
/// know from outside that a node's KeyPackages are in the DHT). Install it with
/// [`install_tracing`].
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPackageProbe;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for KeyPackageProbe {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 |= format!("{value:?}").contains("published KeyPackages");
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            KEY_PACKAGES_PUBLISHED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether this crate's subscriber (with the probe) is the global one.
static PROBE_INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Installs (once) the global tracing subscriber: the [`KeyPackageProbe`] (filtered to
/// rhizo-node's INFO events, so no other callsite is enabled and nothing else pays for
/// tracing) and, when `RUST_LOG` is set, a stderr log. Returns whether the probe is installed
/// (`false` if another subscriber was installed first).
pub fn install_tracing() -> bool {
    *PROBE_INSTALLED.get_or_init(set_subscriber)
}

fn set_subscriber() -> bool {
    use tracing_subscriber::{Layer as _, filter::Targets, layer::SubscriberExt as _};
    let probe =
        KeyPackageProbe.with_filter(Targets::new().with_target("rhizo_node", tracing::Level::INFO));
    let log = std::env::var_os("RUST_LOG").is_some().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::EnvFilter::from_default_env())
    });
    let subscriber = tracing_subscriber::registry().with(probe).with(log);
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

fn published_count() -> u64 {
    KEY_PACKAGES_PUBLISHED.load(Ordering::Relaxed)
}

mod harness;

use harness::*;

// --- B2 and B3 -----------------------------------------------------------------------------

/// B2's figures (ms).
#[derive(Debug, Clone, Serialize)]
pub struct B2Result {
    /// Timed sends.
    pub n: usize,
    /// Untimed sends after the first.
    pub warmup: usize,
    /// The first message (waits for KeyPackages, creates the conversation), ms.
    pub first_message_ms: f64,
    /// Send (POST) → `delivered` event.
    pub latency: Summary,
    /// The POST alone (the message queued, MLS-encrypted and stored).
    pub post: Summary,
    /// POST returned → bob's `message_received` event.
    pub to_receiver: Summary,
    /// Bob's event → alice's `delivered` event.
    pub receipt_back: Summary,
    /// `GET /health` round trip on alice's API (the HTTP share of the POST).
    pub http_health: Summary,
    /// Raw TCP 64-byte ping-pong round trip.
    pub raw_tcp_ping_pong: Summary,
    /// libp2p request-response ping-pong (defaults).
    pub libp2p_ping_pong: Summary,
    /// Send → delivered with the data dirs on tmpfs (full runs only).
    pub tmpfs_latency: Option<Summary>,
    /// The POST alone on tmpfs (full runs only).
    pub tmpfs_post: Option<Summary>,
}

impl B2Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
            Row::new(
                "B2",
                "send → delivered p50, warm 1:1",
                self.latency.p50,
                "ms",
            )
            .reference("raw TCP ping-pong p50", self.raw_tcp_ping_pong.p50)
            .target(Target::ratio_at_most(2.0)),
            Row::new("B2", "send → delivered p50", self.latency.p50, "ms")
                .reference("libp2p req-resp ping-pong p50", self.libp2p_ping_pong.p50),
            Row::new("B2", "send → delivered p99", self.latency.p99, "ms")
                .reference("raw TCP ping-pong p99", self.raw_tcp_ping_pong.p99),
            Row::new(
                "B2",
                "libp2p req-resp ping-pong p50 (defaults)",
                self.libp2p_ping_pong.p50,
                "ms",
            )
            .reference("raw TCP ping-pong p50", self.raw_tcp_ping_pong.p50),
            Row::new(
                "B2",
                "diagnostic: stage 1, API POST p50 (MLS encrypt, durable queue)",
                self.post.p50,
                "ms",
            )
            .reference("send → delivered p50", self.latency.p50)
            .note(
                "diagnostic: each message timed in three stages from the two nodes' event \
                 streams: (1) the POST, (2) POST returned → bob's message_received event \
                 (outbox wake-up, /rhizo/msg/1 request, envelope verify, MLS decrypt, bob's \
                 durable store), (3) bob's event → alice's delivered event (the signed \
                 receipt back, alice's durable state update)",
            ),
            Row::new(
                "B2",
                "diagnostic: stage 2, POST → received at bob, p50",
                self.to_receiver.p50,
                "ms",
            )
            .reference("send → delivered p50", self.latency.p50),
            Row::new(
                "B2",
                "diagnostic: stage 3, received → delivered at alice, p50",
                self.receipt_back.p50,
                "ms",
            )
            .reference("send → delivered p50", self.latency.p50),
            Row::new(
                "B2",
                "diagnostic: local API GET /health round trip p50",
                self.http_health.p50,
                "ms",
            )
            .reference("stage 1, API POST p50", self.post.p50),
        ];
        if let Some(t) = &self.tmpfs_latency {
            rows.push(
                Row::new(
                    "B2",
                    "diagnostic: send → delivered p50, data dirs on tmpfs",
                    t.p50,
                    "ms",
                )
                .reference("data dirs on disk", self.latency.p50)
                .note(
                    "diagnostic: the same pair with its data dirs on /dev/shm, where fsync \
                     is free: the gap to the disk figure is the cost of SQLite's durable \
                     (synchronous = FULL) commits",
                ),
            );
        }
        if let Some(t) = &self.tmpfs_post {
            rows.push(
                Row::new(
                    "B2",
                    "diagnostic: stage 1, API POST p50, data dirs on tmpfs",
                    t.p50,
                    "ms",
                )
                .reference("data dirs on disk", self.post.p50),
            );
        }
        rows
    }
}

/// One payload size of B3.
#[derive(Debug, Clone, Serialize)]
pub struct B3Size {
    /// Text bytes per message.
    pub payload_bytes: usize,
    /// Messages.
    pub n: usize,
    /// First POST → last delivered.
    pub msgs_per_s: f64,
    /// The POSTs alone.
    pub posted_per_s: f64,
    /// Ed25519 sign+verify pairs per second over an envelope of this size, one core.
    pub sign_verify_per_s: f64,
    /// How the messages were grouped (the nodes' counters over the run).
    pub grouping: Grouping,
}

/// Group commit and batching during one B3 run, from the nodes' `/stats` counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Grouping {
    /// Alice's transactions committing POSTed texts.
    pub send_commits: u64,
    /// Texts they committed.
    pub grouped_sends: u64,
    /// Batch frames bob applied (one transaction and one receipt each).
    pub batches_received: u64,
    /// Envelopes in them (messages, and any self-update commits).
    pub batched_envelopes_received: u64,
}

/// Where B3's time goes, measured in-process.
#[derive(Debug, Clone, Serialize)]
pub struct B3Breakdown {
    /// MLS encrypt (alice) + process (bob) per second, in-memory SQLite (CPU only).
    pub mls_memory_msgs_per_s: f64,
    /// The same on two SQLite files with `synchronous = FULL` in `$TMPDIR` (one durable commit
    /// per call, as rhizo-e2e does).
    pub mls_file_msgs_per_s: f64,
    /// MLS encrypt + decrypt with in-memory storage, each conversation loaded from storage for
    /// every message (as the node does), msgs/s.
    pub mls_memory_reloading_msgs_per_s: f64,
    /// Durable single-row SQLite commits per second on `$TMPDIR`.
    pub sqlite_commits_per_s: f64,
    /// B3's 64 B figure with the data dirs on tmpfs (full runs only).
    pub tmpfs_64b_msgs_per_s: Option<f64>,
    /// p50 of one message's trip from alice's outbox to bob and the receipt back (stages 2+3
    /// of B2, measured on the same pair right before the batches), ms: one message alone; under
    /// load the outbox sends what is due as one batch frame per round trip.
    pub outbox_round_trip_ms: f64,
}

/// B3's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B3Result {
    /// POSTs in flight.
    pub concurrency: usize,
    /// Per payload size.
    pub sizes: Vec<B3Size>,
    /// The cost breakdown.
    pub breakdown: B3Breakdown,
}

impl B3Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .sizes
            .iter()
            .map(|s| {
                Row::new(
                    "B3",
                    format!(
                        "pipelined 1:1, {} B text, {} in flight",
                        s.payload_bytes, self.concurrency
                    ),
                    s.msgs_per_s,
                    "msg/s",
                )
                .reference("Ed25519 sign+verify/s (1 core)", s.sign_verify_per_s)
                .target(Target::ratio_at_least(0.5))
            })
            .collect();
        let bound = self.sizes.first().map_or(1.0, |s| s.sign_verify_per_s);
        let b = &self.breakdown;
        if let Some(first) = self.sizes.first() {
            let g = first.grouping;
            rows.push(
                Row::new(
                    "B3",
                    "diagnostic: texts per send commit at alice (group commit), 64 B",
                    g.grouped_sends as f64 / (g.send_commits.max(1)) as f64,
                    "msg/commit",
                )
                .note(
                    "diagnostic: from the nodes' /stats counters over the 64 B run: POSTed texts \
                     are encrypted and queued together in one transaction while the previous \
                     one waits for the disk; the outbox sends what is due to a contact as one \
                     batch frame, applied by bob in one transaction and answered by one signed \
                     receipt",
                ),
            );
            rows.push(Row::new(
                "B3",
                "diagnostic: envelopes per batch frame at bob, 64 B",
                g.batched_envelopes_received as f64 / (g.batches_received.max(1)) as f64,
                "env/frame",
            ));
            rows.push(
                Row::new(
                    "B3",
                    "diagnostic: POSTs alone, 64 B",
                    first.posted_per_s,
                    "msg/s",
                )
                .reference("pipelined 64 B (above)", first.msgs_per_s),
            );
            rows.push(
                Row::new(
                    "B3",
                    "diagnostic: one message's outbox → bob → receipt p50, as a rate",
                    1000.0 / b.outbox_round_trip_ms.max(1e-9),
                    "msg/s",
                )
                .reference("pipelined 64 B (above)", first.msgs_per_s),
            );
        }
        rows.push(
            Row::new(
                "B3",
                "diagnostic: MLS encrypt+decrypt only, in-memory",
                b.mls_memory_msgs_per_s,
                "msg/s",
            )
            .reference("Ed25519 sign+verify/s (1 core)", bound),
        );
        rows.push(
            Row::new(
                "B3",
                "diagnostic: MLS load+encrypt, load+decrypt per message, in-memory",
                b.mls_memory_reloading_msgs_per_s,
                "msg/s",
            )
            .reference(
                "MLS encrypt+decrypt only, in-memory",
                b.mls_memory_msgs_per_s,
            ),
        );
        rows.push(
            Row::new(
                "B3",
                "diagnostic: MLS encrypt+decrypt, SQLite FULL files",
                b.mls_file_msgs_per_s,
                "msg/s",
            )
            .reference("Ed25519 sign+verify/s (1 core)", bound),
        );
        rows.push(
            Row::new(
                "B3",
                "diagnostic: durable SQLite commits/s ($TMPDIR)",
                b.sqlite_commits_per_s,
                "commit/s",
            )
            .note(
                "diagnostic: the rate of single-row commits with WAL + synchronous = FULL on \
                 the disk the data dirs are on; each message costs several such commits on \
                 each node",
            ),
        );
        if let (Some(t), Some(first)) = (b.tmpfs_64b_msgs_per_s, self.sizes.first()) {
            rows.push(
                Row::new(
                    "B3",
                    "diagnostic: pipelined 64 B, data dirs on tmpfs",
                    t,
                    "msg/s",
                )
                .reference("data dirs on disk", first.msgs_per_s),
            );
        }
        rows
    }
}

/// What [`run_pair`] produced.
#[derive(Debug)]
pub struct PairResults {
    /// B2, when selected.
    pub b2: Option<anyhow::Result<B2Result>>,
    /// B3, when selected.
    pub b3: Option<anyhow::Result<B3Result>>,
}

/// B2 (with `b2` timed messages, when `Some`) and/or B3 on one warm pair of nodes.
pub async fn run_pair(quick: bool, b2: Option<usize>, b3: bool) -> anyhow::Result<PairResults> {
    install_tracing();
    let mut pair = Pair::start(Disk::Tmp).await?;
    let warmup = if quick { 3 } else { 10 };
    let first_ms = match pair.warm_up(warmup).await {
        Ok(ms) => ms,
        Err(e) => {
            pair.shutdown().await;
            return Err(e);
        }
    };
    let mut results = PairResults { b2: None, b3: None };
    if let Some(n) = b2 {
        results.b2 = Some(b2_on(&mut pair, n, warmup, first_ms).await);
    }
    if b3 {
        results.b3 = Some(b3_on(&mut pair, quick).await);
    }
    pair.shutdown().await;
    // Diagnostics on tmpfs (full runs only: two more nodes).
    if !quick && Path::new("/dev/shm").is_dir() {
        progress("B2/B3 diagnostic: the same pair with data dirs on tmpfs");
        match tmpfs_diagnostics(b2.is_some(), b3, warmup).await {
            Ok((latency, rate)) => {
                if let (Some(Ok(r)), Some((total, post))) = (&mut results.b2, latency) {
                    r.tmpfs_latency = Some(total);
                    r.tmpfs_post = Some(post);
                }
                if let Some(Ok(r)) = &mut results.b3 {
                    r.breakdown.tmpfs_64b_msgs_per_s = rate;
                }
            }
            Err(e) => progress(&format!("tmpfs diagnostic failed: {e:#}")),
        }
    }
    Ok(results)
}

async fn b2_on(
    pair: &mut Pair,
    n: usize,
    warmup: usize,
    first_ms: f64,
) -> anyhow::Result<B2Result> {
    let stages = pair.sequential(n, "b2").await?;
    let health = pair.alice.api.health_round_trips(n).await?;
    let refs = transport::ping_pong_references(n).await?;
    Ok(B2Result {
        n,
        warmup,
        first_message_ms: first_ms,
        latency: Summary::of(&stages.total),
        post: Summary::of(&stages.post),
        to_receiver: Summary::of(&stages.to_receiver),
        receipt_back: Summary::of(&stages.receipt_back),
        http_health: Summary::of(&health),
        raw_tcp_ping_pong: refs.raw_tcp,
        libp2p_ping_pong: refs.libp2p_request_response,
        tmpfs_latency: None,
        tmpfs_post: None,
    })
}

/// B3's batch size.
fn b3_n(quick: bool) -> usize {
    if quick { 20 } else { 400 }
}

/// Waits until the receiver's per-peer token bucket has refilled for `n` more messages (so B3
/// measures the pipeline, not the rate limiter; full runs only).
async fn let_rate_limit_refill(n: usize, quick: bool) {
    if !quick {
        let secs = (n as u64).div_ceil(MSG_RATE_PER_SEC) + 1;
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
}

async fn b3_on(pair: &mut Pair, quick: bool) -> anyhow::Result<B3Result> {
    let n = b3_n(quick);
    let measure = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    let mut sizes = Vec::new();
    for size in [64usize, 1024] {
        let bound =
            tokio::task::spawn_blocking(move || sign_verify_rate(envelope_len(size), measure))
                .await??;
        let_rate_limit_refill(n, quick).await;
        let (rate, posted, grouping) = pair.pipelined(n, size, &format!("b3-{size}")).await?;
        sizes.push(B3Size {
            payload_bytes: size,
            n,
            msgs_per_s: rate,
            posted_per_s: posted,
            sign_verify_per_s: bound,
            grouping,
        });
    }
    let stages = pair
        .sequential(if quick { 5 } else { 50 }, "b3-seq")
        .await?;
    let mut breakdown = tokio::task::spawn_blocking(move || breakdown(quick)).await??;
    breakdown.outbox_round_trip_ms =
        Summary::of(&stages.to_receiver).p50 + Summary::of(&stages.receipt_back).p50;
    Ok(B3Result {
        concurrency: B3_CONCURRENCY,
        sizes,
        breakdown,
    })
}

/// (send → delivered, POST) summaries and the 64 B pipelined rate, on tmpfs.
type TmpfsFigures = (Option<(Summary, Summary)>, Option<f64>);

async fn tmpfs_diagnostics(b2: bool, b3: bool, warmup: usize) -> anyhow::Result<TmpfsFigures> {
    let mut pair = Pair::start(Disk::Tmpfs).await?;
    let outcome = async {
        pair.warm_up(warmup).await?;
        let latency = if b2 {
            let stages = pair.sequential(100, "tmpfs").await?;
            Some((Summary::of(&stages.total), Summary::of(&stages.post)))
        } else {
            None
        };
        let rate = if b3 {
            let n = b3_n(false);
            let_rate_limit_refill(n, false).await;
            Some(pair.pipelined(n, 64, "tmpfs").await?.0)
        } else {
            None
        };
        Ok::<_, anyhow::Error>((latency, rate))
    }
    .await;
    pair.shutdown().await;
    outcome
}

/// Approximate bytes an envelope signs for `text` bytes: the MLS ciphertext (padded, with its
/// header and tag) plus the envelope's fixed fields.
fn envelope_len(text: usize) -> usize {
    text + 256
}

/// Ed25519 sign+verify pairs per second with rhizo-core's `DeviceKey` over `msg_len` bytes, on
/// this thread, for about `duration`.
pub fn sign_verify_rate(msg_len: usize, duration: Duration) -> anyhow::Result<f64> {
    let key = DeviceKey::generate()?;
    let public = key.public();
    let msg = vec![0x17u8; msg_len];
    let start = Instant::now();
    let mut n = 0u64;
    while n < 16 || start.elapsed() < duration {
        let sig = key.sign(&msg);
        public.verify(&msg, &sig)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

// --- MLS in-process (B3 breakdown, B4 reference) -------------------------------------------

fn mls_device() -> anyhow::Result<rhizo_e2e::Device> {
    let root = RootKey::generate()?;
    let device = DeviceKey::generate()?;
    let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    let cert = root.certify_device(&device.public(), now);
    Ok(rhizo_e2e::Device::new(&device.to_bytes(), &cert.encode())?)
}

/// One MLS conversation set up in-process: the time of KeyPackage → create → Welcome → join →
/// first message encrypted and processed.
struct MlsPair<'a> {
    a_store: rhizo_e2e::E2eStore<'a>,
    b_store: rhizo_e2e::E2eStore<'a>,
    a: rhizo_e2e::Device,
    b: rhizo_e2e::Device,
    a_conv: rhizo_e2e::Conversation,
    b_conv: rhizo_e2e::Conversation,
    setup: Duration,
}

impl MlsPair<'static> {
    fn new(
        a_store: rhizo_e2e::E2eStore<'static>,
        b_store: rhizo_e2e::E2eStore<'static>,
    ) -> anyhow::Result<Self> {
        let (a, b) = (mls_device()?, mls_device()?);
        let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
        let start = Instant::now();
        let kps = rhizo_e2e::create_key_packages(&b_store, &b, 1, false)?;
        let (mut a_conv, welcome) = rhizo_e2e::Conversation::create(&a_store, &a, &kps, now)?;
        let mut b_conv = rhizo_e2e::Conversation::join(&b_store, &b, &welcome, now)?;
        let ct = a_conv.encrypt(&a_store, &a, b"hello bob", now)?;
        let out = b_conv.process(&b_store, &b, &ct, now)?;
        let setup = start.elapsed();
        if !matches!(out.first(), Some(rhizo_e2e::Processed::Application { .. })) {
            bail!("the first MLS message did not decrypt");
        }
        Ok(Self {
            a_store,
            b_store,
            a,
            b,
            a_conv,
            b_conv,
            setup,
        })
    }

    /// Encrypt + process `n` messages of `size` bytes; messages per second.
    fn messages(&mut self, n: usize, size: usize) -> anyhow::Result<f64> {
        let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
        let text = vec![b'x'; size];
        let start = Instant::now();
        for _ in 0..n {
            let ct = self.a_conv.encrypt(&self.a_store, &self.a, &text, now)?;
            self.b_conv.process(&self.b_store, &self.b, &ct, now)?;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// The same, but each side loads its conversation from storage for every message, as the
    /// node does (it keeps no MLS state in memory between messages).
    fn messages_reloading(&mut self, n: usize, size: usize) -> anyhow::Result<f64> {
        let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
        let text = vec![b'x'; size];
        let (a_id, b_id) = (self.a_conv.id().to_vec(), self.b_conv.id().to_vec());
        let start = Instant::now();
        for _ in 0..n {
            let mut a_conv = rhizo_e2e::Conversation::load(&self.a_store, &a_id)?
                .ok_or_else(|| anyhow!("alice's conversation is gone"))?;
            let ct = a_conv.encrypt(&self.a_store, &self.a, &text, now)?;
            let mut b_conv = rhizo_e2e::Conversation::load(&self.b_store, &b_id)?
                .ok_or_else(|| anyhow!("bob's conversation is gone"))?;
            b_conv.process(&self.b_store, &self.b, &ct, now)?;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }
}

/// `n` in-process MLS setups on in-memory stores; their times (ms).
pub fn mls_setups(n: usize) -> anyhow::Result<Vec<f64>> {
    (0..n)
        .map(|_| {
            let pair = MlsPair::new(
                rhizo_e2e::E2eStore::open_in_memory()?,
                rhizo_e2e::E2eStore::open_in_memory()?,
            )?;
            Ok(ms(pair.setup))
        })
        .collect()
}

fn breakdown(quick: bool) -> anyhow::Result<B3Breakdown> {
    let n = if quick { 20 } else { 400 };
    let mut memory = MlsPair::new(
        rhizo_e2e::E2eStore::open_in_memory()?,
        rhizo_e2e::E2eStore::open_in_memory()?,
    )?;
    let mls_memory = memory.messages(n, 64)?;
    let mls_memory_reloading = memory.messages_reloading(n, 64)?;
    let dir = tempfile::Builder::new().prefix("rhizo-bench-").tempdir()?;
    let mut file = MlsPair::new(
        rhizo_e2e::E2eStore::open(&dir.path().join("a.db"))?,
        rhizo_e2e::E2eStore::open(&dir.path().join("b.db"))?,
    )?;
    let mls_file = file.messages(n / 4, 64)?;
    let commits = crate::store::raw_commit_rate(dir.path(), n / 2, 256)?;
    Ok(B3Breakdown {
        mls_memory_msgs_per_s: mls_memory,
        mls_memory_reloading_msgs_per_s: mls_memory_reloading,
        mls_file_msgs_per_s: mls_file,
        sqlite_commits_per_s: commits,
        tmpfs_64b_msgs_per_s: None,
        outbox_round_trip_ms: 0.0,
    })
}

// --- B4 ------------------------------------------------------------------------------------

/// B4's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B4Result {
    /// Setups measured (fresh identities and nodes each).
    pub setups: usize,
    /// Tickets exchanged → first message delivered, nodes already up with KeyPackages
    /// published (ms).
    pub ticket_to_delivered: Summary,
    /// `1000 / mean(ticket_to_delivered)`.
    pub setups_per_s: f64,
    /// Node start (fresh identities) → first message delivered (ms).
    pub cold_start_to_delivered: Summary,
    /// Node start → both nodes' KeyPackages published (ms).
    pub start_to_key_packages: Summary,
    /// Whether the KeyPackage probe saw every publication (else a fixed wait was used).
    pub probe_worked: bool,
    /// In-process MLS setup (KeyPackage, create, Welcome, join, first message) on in-memory
    /// stores (ms).
    pub mls_setup: Summary,
}

impl B4Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            Row::new(
                "B4",
                "ticket → first delivered (warm nodes), p50",
                self.ticket_to_delivered.p50,
                "ms",
            )
            .reference("in-process MLS setup p50", self.mls_setup.p50),
            Row::new("B4", "contact setups/s", self.setups_per_s, "setup/s").reference(
                "in-process MLS setups/s",
                1000.0 / self.mls_setup.mean.max(1e-9),
            ),
            Row::new(
                "B4",
                "node start (fresh identities) → first delivered, p50",
                self.cold_start_to_delivered.p50,
                "ms",
            )
            .reference("ticket → first delivered p50", self.ticket_to_delivered.p50)
            .note(
                "node start → both nodes' KeyPackages in the DHT → tickets exchanged → first \
                 message delivered; the wait is the KeyPackage publisher, which retries every \
                 2 s until the node has a peer",
            ),
        ]
    }
}

/// Runs B4: `5` setups (`1` when quick), each with fresh identities and nodes.
pub async fn run_b4(quick: bool) -> anyhow::Result<B4Result> {
    let mut probe_worked = install_tracing();
    let setups = if quick { 1 } else { 5 };
    let mut warm = Vec::with_capacity(setups);
    let mut cold = Vec::with_capacity(setups);
    let mut publish = Vec::with_capacity(setups);
    for _ in 0..setups {
        let before = published_count();
        let start = Instant::now();
        let alice = Node::start("alice", None, Disk::Tmp).await?;
        let mut bob = Node::start("bob", Some(&alice.listen), Disk::Tmp).await?;
        let outcome = async {
            bob.wait_connected().await?;
            // Both nodes' KeyPackages in the DHT (the probe counts publications).
            if probe_worked {
                let deadline = Instant::now() + Duration::from_secs(30);
                while published_count() < before + 2 {
                    if Instant::now() > deadline {
                        probe_worked = false;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } else {
                // No probe: the publisher retries every 2 s; give it two rounds.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let published = start.elapsed();
            let mut events = Events::open(&alice.api).await?;
            let t0 = Instant::now();
            befriend(&alice.api, "alice", &bob.api, "bob").await?;
            let id = alice
                .api
                .send_when_ready("bob", "hello, new contact")
                .await?;
            let at = events.wait_delivered(id).await?;
            Ok::<_, anyhow::Error>((ms(published), ms(at - t0), ms(at - start)))
        }
        .await;
        bob.shutdown().await;
        alice.shutdown().await;
        let (p, w, c) = outcome?;
        publish.push(p);
        warm.push(w);
        cold.push(c);
    }
    let mls = tokio::task::spawn_blocking(move || mls_setups(setups.max(3))).await??;
    let ticket_to_delivered = Summary::of(&warm);
    Ok(B4Result {
        setups,
        setups_per_s: 1000.0 / ticket_to_delivered.mean.max(1e-9),
        ticket_to_delivered,
        cold_start_to_delivered: Summary::of(&cold),
        start_to_key_packages: Summary::of(&publish),
        probe_worked,
        mls_setup: Summary::of(&mls),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_exact() {
        assert_eq!(padded("ab", 5), "abxxx");
        assert_eq!(padded("abcdef", 3), "abc");
    }

    #[test]
    fn sign_verify_rate_is_positive() {
        let r = sign_verify_rate(100, Duration::from_millis(1)).unwrap();
        assert!(r.is_finite() && r > 0.0);
    }
}
