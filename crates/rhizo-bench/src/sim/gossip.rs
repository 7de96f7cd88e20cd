//! B5: gossipsub propagation of one post, as a discrete-event simulation.
//!
//! # What is simulated
//!
//! Not real swarms: a discrete-event model of the gossipsub v1.1/v1.2 router of
//! `libp2p-gossipsub` 0.50.1 (the version in rhizo's lock file), run with rhizo's configuration
//! (`crates/rhizo-net/src/gossip.rs`: 1 s heartbeat, `history_length` 10, node-side validation,
//! content-addressed ids; everything else libp2p's defaults). Every node is subscribed to the
//! one topic. The model follows the library's code paths:
//!
//! - **Mesh building**: a peer's subscription arriving while the mesh has fewer than `D_lo`
//!   peers grafts it at once; every heartbeat tops the mesh up to `D` when below `D_lo`, trims
//!   it to `D` at `D_hi` (keeping `mesh_outbound_min` outbound peers), and grafts outbound peers
//!   when fewer than `mesh_outbound_min`; GRAFT is refused with a PRUNE when the receiver's mesh
//!   is full and the grafting peer is not one it dialled, or during a backoff; PRUNE starts a
//!   60 s backoff on both sides. First heartbeat after 5 s, each node with its own phase.
//! - **Publishing**: `flood_publish` (the default): the author sends to every connected peer.
//! - **Forwarding**: a first copy is validated (the node's verdict, 2 ms), then
//!   forwarded to the mesh except the peer it came from, the author, peers that sent a duplicate
//!   while it was being validated, and peers that sent IDONTWANT for it.
//! - **Gossip**: every heartbeat, ids of validated messages from the last `history_gossip` (3)
//!   heartbeats go as IHAVE to `max(D_lazy, 0.25 × non-mesh peers)` random non-mesh peers;
//!   IHAVE handling (10 per peer per heartbeat, one outstanding promise per id, 3 s follow-up)
//!   and IWANT answers (from the 10-heartbeat message cache, ≤ 3 per peer and id) as in the
//!   library.
//! - **IDONTWANT** (gossipsub v1.2): sent to mesh peers (and peers we asked with IWANT) on the
//!   first copy of a message whose encoded size exceeds 1000 bytes.
//!
//! Not modelled: peer scoring (all peers are honest, so every score stays ≥ 0 and no rule
//! that depends on a negative or low score ever fires; opportunistic grafting only starts at
//! heartbeat 60 and needs a mesh whose median score is below 5 — skipped), bandwidth and queue
//! limits (except through the optional drop rate), IDONTWANT expiry, connection churn.
//!
//! # Network model
//!
//! Node ids are random 256-bit keys; each node dials the 3 peers closest to it by XOR distance
//! it is not yet connected to (what Kademlia's self-lookup finds) and 3 uniformly random peers
//! (bucket refreshes), so a node has ~12 connections (6 outbound, the rest inbound; between
//! 8 and 20 for most nodes). Components, if any, are joined. Each connection has a fixed one-way
//! latency drawn uniformly from 10..=100 ms; every node uploads message copies one after the
//! other at 10 Mbit/s (0.5 ms for a 512 B post, 3.4 ms for a 4 KiB one), control messages go
//! first. Message copies on a connection arrive in order.
//!
//! # Measurement
//!
//! After a 30 s warm-up (subscriptions, GRAFTs, a few heartbeats) one post is published every
//! 10 s by a different random node; each is measured on its own: coverage, latency to reach
//! 50 % / 99 % of the other nodes, hops of the copy each node received first, duplicate copies
//! received per node.

use std::{
    cmp::Ordering,
    collections::{BTreeSet, BinaryHeap, HashMap, VecDeque},
};

use anyhow::{Context, bail, ensure};
use serde::Serialize;

use super::rng::Rng;
use crate::report::Row;

// --- rhizo's gossipsub configuration -------------------------------------------------------
// `crates/rhizo-net/src/gossip.rs` sets the heartbeat (1 s) and history length (10); the mesh
// and gossip parameters are libp2p-gossipsub 0.50.1's defaults, which rhizo keeps.

/// `mesh_n` (D): the mesh size the heartbeat aims for.
const MESH_N: usize = 6;
/// `mesh_n_low` (D_lo): below this the heartbeat grafts up to D.
const MESH_N_LOW: usize = 5;
/// `mesh_n_high` (D_hi): at or above this the heartbeat prunes down to D.
const MESH_N_HIGH: usize = 12;
/// `mesh_outbound_min`: outbound peers kept in (or grafted into) the mesh.
const MESH_OUTBOUND_MIN: usize = 2;
/// `gossip_lazy` (D_lazy): minimum number of peers sent IHAVE per heartbeat.
const GOSSIP_LAZY: usize = 6;
/// `gossip_factor`: fraction of the non-mesh peers sent IHAVE, when more than D_lazy.
const GOSSIP_FACTOR: f64 = 0.25;
/// `history_gossip`: heartbeats a message is advertised in IHAVE.
const HISTORY_GOSSIP: u64 = 3;
/// `history_length` (rhizo: 10): heartbeats a message stays in the cache for IWANT.
const HISTORY_LENGTH: u64 = 10;
/// `heartbeat_interval` (rhizo: 1 s).
const HEARTBEAT_US: u64 = 1_000_000;
/// `heartbeat_initial_delay`.
const HEARTBEAT_INITIAL_DELAY_US: u64 = 5_000_000;
/// `prune_backoff`.
const PRUNE_BACKOFF_US: u64 = 60_000_000;
/// `backoff_slack` (heartbeats) added when the heartbeat checks a backoff.
const BACKOFF_SLACK_US: u64 = HEARTBEAT_US;
/// `gossip_retransimission`: IWANT answers per peer and message.
const GOSSIP_RETRANSMISSION: u32 = 3;
/// `max_ihave_messages`: IHAVE accepted from one peer per heartbeat.
const MAX_IHAVE_PER_HEARTBEAT: u32 = 10;
/// `max_control_messages_sent` (rhizo: 256): ids per IHAVE / asked per peer and heartbeat.
const MAX_CONTROL_IDS: usize = 256;
/// `iwant_followup_time`: how long an IWANT promise blocks asking someone else.
const IWANT_FOLLOWUP_US: u64 = 3_000_000;
/// `idontwant_message_size_threshold`: encoded size above which IDONTWANT is sent.
const IDONTWANT_THRESHOLD_BYTES: usize = 1_000;
/// Encoded size of a signed message around its data: author (38 B), sequence number, topic,
/// signature (64 B), protobuf framing.
const ENVELOPE_BYTES: usize = 150;

// --- network and run model -----------------------------------------------------------------

/// Peers each node dials among its XOR-closest (Kademlia self-lookup).
const DIAL_CLOSEST: usize = 3;
/// Peers each node dials uniformly at random (Kademlia bucket refreshes).
const DIAL_RANDOM: usize = 3;
/// Shortest one-way latency of a connection.
const LINK_LATENCY_MIN_US: u64 = 10_000;
/// Longest one-way latency of a connection.
const LINK_LATENCY_MAX_US: u64 = 100_000;
/// Upload rate of every node, in bits per microsecond (10 Mbit/s, a home uplink). Message
/// copies leave a node one after the other at this rate; control messages (a few dozen bytes,
/// sent ahead of data by gossipsub's priority queues) are not delayed.
const UPLINK_BITS_PER_US: u64 = 10;
/// Time the node takes to check a post and report its verdict (`Accept`).
const VALIDATION_US: u64 = 2_000;
/// Time from start (all connections open, subscriptions in flight) to the first post.
const WARMUP_US: u64 = 30_000_000;
/// Time between two measured posts (far more than the 3 heartbeats of gossip).
const MESSAGE_SPACING_US: u64 = 10_000_000;
/// Time simulated after the last post.
const DRAIN_US: u64 = 15_000_000;
/// Posts measured per scenario.
const MESSAGES_FULL: usize = 20;
/// Posts measured per scenario in quick mode.
const MESSAGES_QUICK: usize = 5;
/// Bound on the events of one run (a run at N = 500 takes about a million).
const MAX_EVENTS: u64 = 200_000_000;
/// Largest network accepted (memory and time stay reasonable on 2 cores).
const MAX_NODES: usize = 20_000;
/// Seed of the B5 runs.
pub const B5_SEED: u64 = 0x5EED_0B05;

/// What B5 ran, for the report.
const B5_METHOD: &str = "discrete-event simulation of libp2p-gossipsub 0.50.1's router (mesh \
    maintenance, flood publish, validation, IHAVE/IWANT, IDONTWANT) with rhizo's config; \
    Kademlia-like random topology (3 XOR-closest + 3 random dials per node); one-way link \
    latency 10-100 ms, 10 Mbit/s uplink per node; no peer scoring";

/// One message-size / loss setting B5 measures.
#[derive(Debug, Clone, Copy)]
struct ScenarioSpec {
    name: &'static str,
    data_bytes: usize,
    /// Fraction of message copies (forward, publish, IWANT answer) dropped, as by full
    /// per-peer send queues; control messages are never dropped.
    drop_rate: f64,
}

/// The settings B5 runs for each N.
const SCENARIOS: [ScenarioSpec; 3] = [
    ScenarioSpec {
        name: "post 512 B",
        data_bytes: 512,
        drop_rate: 0.0,
    },
    ScenarioSpec {
        name: "post 4 KiB (IDONTWANT)",
        data_bytes: 4096,
        drop_rate: 0.0,
    },
    ScenarioSpec {
        name: "post 512 B, 10 % copies dropped",
        data_bytes: 512,
        drop_rate: 0.10,
    },
];

/// The connection graph of a B5 run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct B5Topology {
    /// Connections (undirected).
    pub connections: usize,
    /// Mean connections per node.
    pub degree_mean: f64,
    /// Fewest connections of a node.
    pub degree_min: usize,
    /// Most connections of a node.
    pub degree_max: usize,
    /// Whether the graph was connected before any bridging connection was added.
    pub connected_as_drawn: bool,
}

/// The figures of one B5 setting (message size / drop rate), over its measured posts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct B5Scenario {
    /// Setting name.
    pub name: String,
    /// Size of the post's data.
    pub data_bytes: usize,
    /// Whether the encoded message exceeds the IDONTWANT threshold (1000 B).
    pub idontwant: bool,
    /// Fraction of message copies dropped.
    pub drop_rate: f64,
    /// Posts measured.
    pub messages: usize,
    /// Mean mesh size when the first post was published.
    pub mesh_size_mean: f64,
    /// Smallest mesh when the first post was published.
    pub mesh_size_min: usize,
    /// Largest mesh when the first post was published.
    pub mesh_size_max: usize,
    /// Mean over posts of the fraction of the other nodes that received the post.
    pub coverage_mean: f64,
    /// Lowest coverage of a post.
    pub coverage_min: f64,
    /// Mean over posts of the time until half of the other nodes had it (`None` when a post
    /// never reached half of them).
    pub latency_p50_ms_mean: Option<f64>,
    /// Mean over posts of the time until 99 % of the other nodes had it (`None` when a post
    /// never reached 99 %).
    pub latency_p99_ms_mean: Option<f64>,
    /// Worst time until 99 % of the other nodes had a post.
    pub latency_p99_ms_max: Option<f64>,
    /// The worst time until 99 %, in heartbeats (1 s).
    pub heartbeats_to_p99_max: Option<f64>,
    /// Latest first arrival of a post at any node.
    pub latency_max_ms: f64,
    /// Mean over posts of the median hop count of the first copies (`None` when a post never
    /// reached half of the other nodes).
    pub hops_p50_mean: Option<f64>,
    /// Largest hop count within which 99 % of the other nodes got their first copy, over
    /// posts (`None` when a post never reached 99 %).
    pub hops_p99_max: Option<u32>,
    /// Largest hop count of a first copy.
    pub hops_max: u32,
    /// Duplicate copies received per node (copies beyond the first), mean over nodes and posts.
    pub duplicates_mean: f64,
    /// Most duplicate copies one node received of one post.
    pub duplicates_max: u32,
    /// Fraction of first copies that came as an IWANT answer (gossip repair).
    pub via_gossip_fraction: f64,
    /// Message copies sent per node and post (including dropped ones).
    pub copies_sent_per_node: f64,
    /// IHAVE messages per node and post (all heartbeats of the measurement window).
    pub ihave_per_node: f64,
    /// IWANT messages per node and post.
    pub iwant_per_node: f64,
    /// IDONTWANT messages per node and post.
    pub idontwant_per_node: f64,
}

/// B5 result: gossip propagation at one network size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct B5Result {
    /// Nodes.
    pub n: usize,
    /// Whether fewer posts were measured.
    pub quick: bool,
    /// PRNG seed.
    pub seed: u64,
    /// How the figures were obtained.
    pub method: &'static str,
    /// The connection graph (the same for every setting).
    pub topology: B5Topology,
    /// One entry per setting.
    pub scenarios: Vec<B5Scenario>,
}

impl B5Result {
    /// The report rows: for the 512 B post, coverage, time and hops to 99 % of the nodes and
    /// duplicates (mean, max); for the other settings, coverage, time to 99 % and mean
    /// duplicates. A figure a post never reached (99 % of the nodes) is left out and said in
    /// the coverage row's note.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (i, s) in self.scenarios.iter().enumerate() {
            let label = |what: &str| format!("N={}, {}: {what}", self.n, s.name);
            let mut note = format!("{} ({} posts)", self.method, s.messages);
            if s.latency_p99_ms_mean.is_none() {
                note.push_str("; a post never reached 99 % of the nodes");
            }
            rows.push(
                Row::new(
                    "B5",
                    label("coverage, worst post"),
                    100.0 * s.coverage_min,
                    "%",
                )
                .note(note.clone()),
            );
            if let Some(p99) = s.latency_p99_ms_mean {
                rows.push(
                    Row::new("B5", label("time to 99 % of nodes, mean"), p99, "ms")
                        .note(note.clone()),
                );
            }
            if i == 0
                && let Some(hops) = s.hops_p99_max
            {
                rows.push(
                    Row::new(
                        "B5",
                        label("hops to 99 % of nodes, worst post"),
                        f64::from(hops),
                        "hops",
                    )
                    .note(note.clone()),
                );
            }
            rows.push(
                Row::new(
                    "B5",
                    label("duplicates per node, mean"),
                    s.duplicates_mean,
                    "copies",
                )
                .note(note.clone()),
            );
            if i == 0 {
                rows.push(
                    Row::new(
                        "B5",
                        label("duplicates per node, max"),
                        f64::from(s.duplicates_max),
                        "copies",
                    )
                    .note(note),
                );
            }
        }
        rows
    }
}

/// Runs B5 on `n` nodes: one topology, three settings (512 B post; 4 KiB post, which triggers
/// IDONTWANT; 512 B post with 10 % of copies dropped), each measured over 20 posts (5 when
/// `quick`). The caller picks `n` (100 and 500; 20 in quick mode).
pub fn run_b5(n: usize, quick: bool) -> anyhow::Result<B5Result> {
    ensure!(
        (2..=MAX_NODES).contains(&n),
        "B5 needs between 2 and {MAX_NODES} nodes, got {n}"
    );
    let messages = if quick { MESSAGES_QUICK } else { MESSAGES_FULL };
    let (topology, topo_stats) = Topology::kademlia_like(n, B5_SEED);
    let mut scenarios = Vec::with_capacity(SCENARIOS.len());
    for spec in SCENARIOS {
        let sim = GossipSim::new(&topology, spec, B5_SEED ^ 0xA5A5, messages);
        let outcome = sim
            .run()
            .with_context(|| format!("B5 setting {:?} at N = {n}", spec.name))?;
        scenarios.push(outcome);
    }
    Ok(B5Result {
        n,
        quick,
        seed: B5_SEED,
        method: B5_METHOD,
        topology: topo_stats,
        scenarios,
    })
}

// --- topology ------------------------------------------------------------------------------

/// One end of a connection, seen from a node.
#[derive(Debug, Clone, Copy)]
struct Link {
    peer: u32,
    /// Whether this node dialled the peer (gossipsub's "outbound" peer).
    outbound: bool,
    latency_us: u64,
}

/// The connections of every node.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    links: Vec<Vec<Link>>,
}

impl Topology {
    /// Kademlia-like random graph on `n` nodes (see the module docs).
    pub(crate) fn kademlia_like(n: usize, seed: u64) -> (Self, B5Topology) {
        let mut rng = Rng::new(seed);
        let ids: Vec<[u64; 4]> = (0..n)
            .map(|_| {
                [
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                ]
            })
            .collect();
        let mut links: Vec<Vec<Link>> = vec![Vec::new(); n];
        let connected =
            |links: &[Vec<Link>], a: usize, b: usize| links[a].iter().any(|l| l.peer as usize == b);
        let connect = |links: &mut Vec<Vec<Link>>, rng: &mut Rng, a: usize, b: usize| {
            let latency_us = rng.range_u64(LINK_LATENCY_MIN_US, LINK_LATENCY_MAX_US);
            links[a].push(Link {
                peer: b as u32,
                outbound: true,
                latency_us,
            });
            links[b].push(Link {
                peer: a as u32,
                outbound: false,
                latency_us,
            });
        };
        for a in 0..n {
            // The closest peers by XOR distance.
            let mut by_distance: Vec<usize> = (0..n).filter(|&b| b != a).collect();
            by_distance.sort_by_key(|&b| xor(&ids[a], &ids[b]));
            let mut dialled = 0;
            for &b in &by_distance {
                if dialled == DIAL_CLOSEST {
                    break;
                }
                if !connected(&links, a, b) {
                    connect(&mut links, &mut rng, a, b);
                    dialled += 1;
                }
            }
            // Random peers: bounded tries, then give up (tiny networks are nearly complete).
            let mut dialled = 0;
            for _ in 0..DIAL_RANDOM * 20 {
                if dialled == DIAL_RANDOM {
                    break;
                }
                let b = rng.below(n);
                if b != a && !connected(&links, a, b) {
                    connect(&mut links, &mut rng, a, b);
                    dialled += 1;
                }
            }
        }
        // Join components, if any: dial from each other component's first node to node 0's.
        let components = components(&links);
        let connected_as_drawn = components.len() == 1;
        for component in components.iter().skip(1) {
            connect(&mut links, &mut rng, component[0], components[0][0]);
        }
        let degrees: Vec<usize> = links.iter().map(Vec::len).collect();
        let total: usize = degrees.iter().sum();
        let stats = B5Topology {
            connections: total / 2,
            degree_mean: total as f64 / n as f64,
            degree_min: degrees.iter().copied().min().unwrap_or(0),
            degree_max: degrees.iter().copied().max().unwrap_or(0),
            connected_as_drawn,
        };
        (Self { links }, stats)
    }

    fn len(&self) -> usize {
        self.links.len()
    }

    fn link(&self, a: u32, b: u32) -> Option<&Link> {
        self.links[a as usize].iter().find(|l| l.peer == b)
    }
}

fn xor(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    [a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]]
}

/// Connected components, each as its node list (first element = smallest index).
fn components(links: &[Vec<Link>]) -> Vec<Vec<usize>> {
    let n = links.len();
    let mut seen = vec![false; n];
    let mut out = Vec::new();
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut members = vec![start];
        let mut queue = VecDeque::from([start]);
        while let Some(a) = queue.pop_front() {
            for l in &links[a] {
                let b = l.peer as usize;
                if !seen[b] {
                    seen[b] = true;
                    members.push(b);
                    queue.push_back(b);
                }
            }
        }
        out.push(members);
    }
    out
}

// --- the simulation ------------------------------------------------------------------------

/// A gossipsub RPC in flight.
#[derive(Debug, Clone)]
enum Rpc {
    Subscribe,
    Graft,
    Prune,
    Message {
        msg: u32,
        hops: u32,
        via_gossip: bool,
    },
    IHave(Vec<u32>),
    IWant(Vec<u32>),
    IDontWant(u32),
}

#[derive(Debug, Clone)]
enum Event {
    Heartbeat(u32),
    Publish(u32),
    Validated { node: u32, msg: u32 },
    Deliver { from: u32, to: u32, rpc: Rpc },
}

/// A scheduled event; the heap pops the earliest (`time`, then `seq`) first.
#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// One node's state for one message.
#[derive(Debug, Clone, Default)]
struct MsgState {
    /// When the node first had it (publish or first copy): the duplicate cache.
    first_us: Option<u64>,
    hops: u32,
    via_gossip: bool,
    /// Copies received (the publisher receives none).
    copies: u32,
    /// Peer the first copy came from.
    first_source: u32,
    validated: bool,
    /// In the message cache, put there at heartbeat shift `cache_shift`.
    in_cache: bool,
    cache_shift: u64,
    /// Peers that sent a copy while it was being validated (not forwarded to).
    originating: Vec<u32>,
    /// IWANT answers given, per peer.
    iwant_counts: Vec<(u32, u32)>,
    /// Outstanding IWANT promises: (peer asked, expiry).
    promises: Vec<(u32, u64)>,
    /// Peers that sent IDONTWANT for it.
    dont_send: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    mesh: BTreeSet<u32>,
    /// Backoff expiry per peer.
    backoff: HashMap<u32, u64>,
    /// When the node's uplink has sent everything queued so far.
    uplink_free_us: u64,
    /// Heartbeats run (= message-cache shifts).
    shifts: u64,
    ihave_received: HashMap<u32, u32>,
    iwant_sent: HashMap<u32, usize>,
    msgs: Vec<MsgState>,
}

impl Node {
    fn in_backoff_with_slack(&self, peer: u32, now: u64) -> bool {
        self.backoff
            .get(&peer)
            .is_some_and(|&until| now < until + BACKOFF_SLACK_US)
    }

    fn set_backoff(&mut self, peer: u32, until: u64) {
        let entry = self.backoff.entry(peer).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// Counters of one message over the whole run.
#[derive(Debug, Clone, Default)]
struct MsgCounters {
    copies_sent: u64,
}

struct GossipSim<'a> {
    topo: &'a Topology,
    spec: ScenarioSpec,
    idontwant: bool,
    nodes: Vec<Node>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    now: u64,
    rng: Rng,
    publishers: Vec<u32>,
    published_at: Vec<u64>,
    counters: Vec<MsgCounters>,
    ihave_sent: u64,
    iwant_sent: u64,
    idontwant_sent: u64,
    mesh_at_first_publish: Option<(f64, usize, usize)>,
}

impl<'a> GossipSim<'a> {
    fn new(topo: &'a Topology, spec: ScenarioSpec, seed: u64, messages: usize) -> Self {
        let n = topo.len();
        let mut rng = Rng::new(seed);
        // Distinct publishers (repeating only if there are more posts than nodes).
        let mut order: Vec<u32> = (0..n as u32).collect();
        rng.shuffle(&mut order);
        let publishers: Vec<u32> = (0..messages).map(|i| order[i % n]).collect();
        let published_at: Vec<u64> = (0..messages)
            .map(|i| WARMUP_US + i as u64 * MESSAGE_SPACING_US)
            .collect();
        let node = Node {
            msgs: vec![MsgState::default(); messages],
            ..Node::default()
        };
        Self {
            topo,
            spec,
            idontwant: spec.data_bytes + ENVELOPE_BYTES > IDONTWANT_THRESHOLD_BYTES,
            nodes: vec![node; n],
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            rng,
            publishers,
            published_at,
            counters: vec![MsgCounters::default(); messages],
            ihave_sent: 0,
            iwant_sent: 0,
            idontwant_sent: 0,
            mesh_at_first_publish: None,
        }
    }

    fn schedule(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            time,
            seq: self.seq,
            event,
        });
    }

    fn send(&mut self, from: u32, to: u32, rpc: Rpc) -> anyhow::Result<()> {
        let latency = self
            .topo
            .link(from, to)
            .with_context(|| format!("node {from} sent to {to}, which it is not connected to"))?
            .latency_us;
        let mut departure = self.now;
        match &rpc {
            Rpc::Message { msg, .. } => {
                self.counters[*msg as usize].copies_sent += 1;
                if self.rng.chance(self.spec.drop_rate) {
                    return Ok(());
                }
                let bits = 8 * (self.spec.data_bytes + ENVELOPE_BYTES) as u64;
                let node = &mut self.nodes[from as usize];
                departure = node.uplink_free_us.max(self.now) + bits.div_ceil(UPLINK_BITS_PER_US);
                node.uplink_free_us = departure;
            }
            Rpc::IHave(_) => self.ihave_sent += 1,
            Rpc::IWant(_) => self.iwant_sent += 1,
            Rpc::IDontWant(_) => self.idontwant_sent += 1,
            Rpc::Subscribe | Rpc::Graft | Rpc::Prune => {}
        }
        self.schedule(departure + latency, Event::Deliver { from, to, rpc });
        Ok(())
    }

    fn run(mut self) -> anyhow::Result<B5Scenario> {
        self.simulate()?;
        Ok(self.measure())
    }

    /// Runs every event up to the end of the measurement window.
    fn simulate(&mut self) -> anyhow::Result<()> {
        let n = self.topo.len();
        // Connections open at t = 0: each side learns the other's subscription one latency later.
        for a in 0..n as u32 {
            for i in 0..self.topo.links[a as usize].len() {
                let l = self.topo.links[a as usize][i];
                self.schedule(
                    l.latency_us,
                    Event::Deliver {
                        from: a,
                        to: l.peer,
                        rpc: Rpc::Subscribe,
                    },
                );
            }
            let phase = self.rng.range_u64(0, HEARTBEAT_US - 1);
            self.schedule(HEARTBEAT_INITIAL_DELAY_US + phase, Event::Heartbeat(a));
        }
        for (msg, &at) in self.published_at.clone().iter().enumerate() {
            self.schedule(at, Event::Publish(msg as u32));
        }
        let end = self.published_at.last().copied().unwrap_or(WARMUP_US) + DRAIN_US;
        let mut events: u64 = 0;
        while let Some(Scheduled { time, event, .. }) = self.queue.pop() {
            if time > end {
                break;
            }
            events += 1;
            if events > MAX_EVENTS {
                bail!("the simulation exceeded {MAX_EVENTS} events");
            }
            self.now = time;
            match event {
                Event::Heartbeat(node) => {
                    self.heartbeat(node)?;
                    self.schedule(time + HEARTBEAT_US, Event::Heartbeat(node));
                }
                Event::Publish(msg) => self.publish(msg)?,
                Event::Validated { node, msg } => self.forward(node, msg)?,
                Event::Deliver { from, to, rpc } => self.deliver(from, to, rpc)?,
            }
        }
        Ok(())
    }

    fn heartbeat(&mut self, x: u32) -> anyhow::Result<()> {
        let now = self.now;
        let topo = self.topo;
        let links = &topo.links[x as usize];
        let node = &mut self.nodes[x as usize];
        node.ihave_received.clear();
        node.iwant_sent.clear();
        // Broken promises are forgotten (the peer would be penalised).
        for state in &mut node.msgs {
            state.promises.retain(|&(_, expiry)| expiry > now);
        }
        node.backoff
            .retain(|_, until| now < *until + BACKOFF_SLACK_US);

        let mut to_graft: Vec<u32> = Vec::new();
        let mut to_prune: Vec<u32> = Vec::new();
        // Too few peers: graft up to D.
        if node.mesh.len() < MESH_N_LOW {
            let mut candidates: Vec<u32> = links
                .iter()
                .map(|l| l.peer)
                .filter(|p| !node.mesh.contains(p) && !node.in_backoff_with_slack(*p, now))
                .collect();
            self.rng.shuffle(&mut candidates);
            candidates.truncate(MESH_N - node.mesh.len());
            node.mesh.extend(candidates.iter().copied());
            to_graft.extend(candidates);
        }
        // Too many: prune down to D, keeping `mesh_outbound_min` outbound peers.
        if node.mesh.len() >= MESH_N_HIGH {
            let excess = node.mesh.len() - MESH_N;
            let mut shuffled: Vec<u32> = node.mesh.iter().copied().collect();
            self.rng.shuffle(&mut shuffled);
            let is_outbound = |p: u32| links.iter().any(|l| l.peer == p && l.outbound);
            let mut outbound = shuffled.iter().filter(|&&p| is_outbound(p)).count();
            let mut removed = 0;
            for p in shuffled {
                if removed == excess {
                    break;
                }
                if is_outbound(p) {
                    if outbound <= MESH_OUTBOUND_MIN {
                        continue;
                    }
                    outbound -= 1;
                }
                node.mesh.remove(&p);
                to_prune.push(p);
                removed += 1;
            }
        }
        // Enough peers but too few outbound ones: graft outbound peers.
        if node.mesh.len() >= MESH_N_LOW {
            let outbound = links
                .iter()
                .filter(|l| l.outbound && node.mesh.contains(&l.peer))
                .count();
            if outbound < MESH_OUTBOUND_MIN {
                let mut candidates: Vec<u32> = links
                    .iter()
                    .filter(|l| {
                        l.outbound
                            && !node.mesh.contains(&l.peer)
                            && !node.in_backoff_with_slack(l.peer, now)
                    })
                    .map(|l| l.peer)
                    .collect();
                self.rng.shuffle(&mut candidates);
                candidates.truncate(MESH_OUTBOUND_MIN - outbound);
                node.mesh.extend(candidates.iter().copied());
                to_graft.extend(candidates);
            }
        }

        // Emit gossip: validated messages of the last `history_gossip` heartbeats.
        let shifts = node.shifts;
        let mut ids: Vec<u32> = node
            .msgs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_cache && s.validated && shifts - s.cache_shift < HISTORY_GOSSIP)
            .map(|(i, _)| i as u32)
            .collect();
        let mut gossip_to: Vec<u32> = Vec::new();
        if !ids.is_empty() {
            self.rng.shuffle(&mut ids);
            ids.truncate(MAX_CONTROL_IDS);
            gossip_to = links
                .iter()
                .map(|l| l.peer)
                .filter(|p| !node.mesh.contains(p))
                .collect();
            let wanted = GOSSIP_LAZY.max((GOSSIP_FACTOR * gossip_to.len() as f64) as usize);
            if gossip_to.len() > wanted {
                self.rng.shuffle(&mut gossip_to);
                gossip_to.truncate(wanted);
            }
        }
        for &p in &to_prune {
            node.set_backoff(p, now + PRUNE_BACKOFF_US);
        }
        // Shift the message cache.
        node.shifts += 1;
        let shifts = node.shifts;
        for state in &mut node.msgs {
            if state.in_cache && shifts - state.cache_shift >= HISTORY_LENGTH {
                state.in_cache = false;
            }
        }

        for p in gossip_to {
            self.send(x, p, Rpc::IHave(ids.clone()))?;
        }
        for p in to_graft {
            self.send(x, p, Rpc::Graft)?;
        }
        for p in to_prune {
            self.send(x, p, Rpc::Prune)?;
        }
        Ok(())
    }

    fn publish(&mut self, msg: u32) -> anyhow::Result<()> {
        if self.mesh_at_first_publish.is_none() {
            let sizes: Vec<usize> = self.nodes.iter().map(|node| node.mesh.len()).collect();
            let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
            let min = sizes.iter().copied().min().unwrap_or(0);
            let max = sizes.iter().copied().max().unwrap_or(0);
            self.mesh_at_first_publish = Some((mean, min, max));
        }
        let x = self.publishers[msg as usize];
        let now = self.now;
        let node = &mut self.nodes[x as usize];
        let shifts = node.shifts;
        let state = &mut node.msgs[msg as usize];
        state.first_us = Some(now);
        state.hops = 0;
        state.validated = true;
        state.in_cache = true;
        state.cache_shift = shifts;
        // flood_publish: to every connected peer subscribed to the topic (all of them here).
        let peers: Vec<u32> = self.topo.links[x as usize].iter().map(|l| l.peer).collect();
        for p in peers {
            self.send(
                x,
                p,
                Rpc::Message {
                    msg,
                    hops: 1,
                    via_gossip: false,
                },
            )?;
        }
        Ok(())
    }

    /// The node's verdict came back `Accept`: forward to the mesh.
    fn forward(&mut self, x: u32, msg: u32) -> anyhow::Result<()> {
        let author = self.publishers[msg as usize];
        let node = &mut self.nodes[x as usize];
        let state = &mut node.msgs[msg as usize];
        state.validated = true;
        let originating = std::mem::take(&mut state.originating);
        let source = state.first_source;
        let hops = state.hops + 1;
        let recipients: Vec<u32> = node
            .mesh
            .iter()
            .copied()
            .filter(|&p| {
                p != source
                    && p != author
                    && !originating.contains(&p)
                    && !state.dont_send.contains(&p)
            })
            .collect();
        for p in recipients {
            self.send(
                x,
                p,
                Rpc::Message {
                    msg,
                    hops,
                    via_gossip: false,
                },
            )?;
        }
        Ok(())
    }

    fn deliver(&mut self, from: u32, to: u32, rpc: Rpc) -> anyhow::Result<()> {
        let now = self.now;
        match rpc {
            Rpc::Subscribe => {
                let node = &mut self.nodes[to as usize];
                if node.mesh.len() < MESH_N_LOW
                    && !node.in_backoff_with_slack(from, now)
                    && node.mesh.insert(from)
                {
                    self.send(to, from, Rpc::Graft)?;
                }
            }
            Rpc::Graft => {
                let outbound = self.topo.link(to, from).is_some_and(|l| l.outbound);
                let node = &mut self.nodes[to as usize];
                if node.mesh.contains(&from) {
                    return Ok(());
                }
                let in_backoff = node.backoff.get(&from).is_some_and(|&until| until > now);
                if in_backoff || (node.mesh.len() >= MESH_N_HIGH && !outbound) {
                    node.set_backoff(from, now + PRUNE_BACKOFF_US);
                    self.send(to, from, Rpc::Prune)?;
                } else {
                    node.mesh.insert(from);
                }
            }
            Rpc::Prune => {
                let node = &mut self.nodes[to as usize];
                node.mesh.remove(&from);
                node.set_backoff(from, now + PRUNE_BACKOFF_US);
            }
            Rpc::Message {
                msg,
                hops,
                via_gossip,
            } => self.receive_message(from, to, msg, hops, via_gossip)?,
            Rpc::IHave(ids) => {
                let node = &mut self.nodes[to as usize];
                let received = node.ihave_received.entry(from).or_insert(0);
                *received += 1;
                if *received > MAX_IHAVE_PER_HEARTBEAT {
                    return Ok(());
                }
                let asked = node.iwant_sent.get(&from).copied().unwrap_or(0);
                if asked >= MAX_CONTROL_IDS {
                    return Ok(());
                }
                let mut want: Vec<u32> = ids
                    .into_iter()
                    .filter(|&id| {
                        let s = &node.msgs[id as usize];
                        s.first_us.is_none() && s.promises.is_empty()
                    })
                    .collect();
                if want.is_empty() {
                    return Ok(());
                }
                self.rng.shuffle(&mut want);
                want.truncate(MAX_CONTROL_IDS - asked);
                *node.iwant_sent.entry(from).or_insert(0) += want.len();
                for &id in &want {
                    node.msgs[id as usize]
                        .promises
                        .push((from, now + IWANT_FOLLOWUP_US));
                }
                self.send(to, from, Rpc::IWant(want))?;
            }
            Rpc::IWant(ids) => {
                let node = &mut self.nodes[to as usize];
                let mut answers = Vec::new();
                for id in ids {
                    let s = &mut node.msgs[id as usize];
                    if !(s.in_cache && s.validated) {
                        continue;
                    }
                    let count = match s.iwant_counts.iter_mut().find(|(p, _)| *p == from) {
                        Some((_, c)) => {
                            *c += 1;
                            *c
                        }
                        None => {
                            s.iwant_counts.push((from, 1));
                            1
                        }
                    };
                    if count > GOSSIP_RETRANSMISSION || s.dont_send.contains(&from) {
                        continue;
                    }
                    answers.push((id, s.hops + 1));
                }
                for (msg, hops) in answers {
                    self.send(
                        to,
                        from,
                        Rpc::Message {
                            msg,
                            hops,
                            via_gossip: true,
                        },
                    )?;
                }
            }
            Rpc::IDontWant(msg) => {
                let s = &mut self.nodes[to as usize].msgs[msg as usize];
                if !s.dont_send.contains(&from) {
                    s.dont_send.push(from);
                }
            }
        }
        Ok(())
    }

    fn receive_message(
        &mut self,
        from: u32,
        x: u32,
        msg: u32,
        hops: u32,
        via_gossip: bool,
    ) -> anyhow::Result<()> {
        let now = self.now;
        let author = self.publishers[msg as usize];
        let node = &mut self.nodes[x as usize];
        let shifts = node.shifts;
        let seen = node.msgs[msg as usize].first_us.is_some();
        // gossipsub v1.2: tell the mesh (and peers we asked) not to send it, on first sight.
        let mut dont_want_to: Vec<u32> = Vec::new();
        if self.idontwant && !seen {
            let s = &node.msgs[msg as usize];
            let mut set: BTreeSet<u32> = node.mesh.iter().copied().collect();
            set.extend(s.promises.iter().map(|&(p, _)| p));
            dont_want_to = set
                .into_iter()
                .filter(|&p| p != from && p != author)
                .collect();
        }
        let s = &mut node.msgs[msg as usize];
        if seen {
            s.copies += 1;
            if s.in_cache && !s.validated && !s.originating.contains(&from) {
                s.originating.push(from);
            }
        } else {
            s.first_us = Some(now);
            s.hops = hops;
            s.via_gossip = via_gossip;
            s.copies = 1;
            s.first_source = from;
            s.validated = false;
            s.in_cache = true;
            s.cache_shift = shifts;
            s.promises.clear();
            self.schedule(now + VALIDATION_US, Event::Validated { node: x, msg });
        }
        for p in dont_want_to {
            self.send(x, p, Rpc::IDontWant(msg))?;
        }
        Ok(())
    }

    fn measure(&self) -> B5Scenario {
        let n = self.nodes.len();
        let others = (n - 1).max(1);
        let messages = self.publishers.len();
        let rank = |q: f64| ((q * others as f64).ceil() as usize).clamp(1, others);
        let (mut coverage_sum, mut coverage_min) = (0.0, f64::INFINITY);
        let mut p50: Vec<Option<u64>> = Vec::new();
        let mut p99: Vec<Option<u64>> = Vec::new();
        let mut hops_p50: Vec<Option<u64>> = Vec::new();
        let mut hops_p99: Vec<Option<u64>> = Vec::new();
        let (mut latency_max, mut hops_max) = (0u64, 0u32);
        let (mut dup_sum, mut dup_max) = (0u64, 0u32);
        let (mut first_copies, mut via_gossip) = (0u64, 0u64);
        let mut copies_sent = 0u64;
        for msg in 0..messages {
            let author = self.publishers[msg] as usize;
            let t0 = self.published_at[msg];
            let mut latencies = Vec::with_capacity(n);
            let mut hops = Vec::with_capacity(n);
            for (i, node) in self.nodes.iter().enumerate() {
                if i == author {
                    continue;
                }
                let s = &node.msgs[msg];
                if let Some(t) = s.first_us {
                    latencies.push(t - t0);
                    hops.push(s.hops);
                    first_copies += 1;
                    via_gossip += u64::from(s.via_gossip);
                    let dups = s.copies.saturating_sub(1);
                    dup_sum += u64::from(dups);
                    dup_max = dup_max.max(dups);
                }
            }
            latencies.sort_unstable();
            hops.sort_unstable();
            let coverage = latencies.len() as f64 / others as f64;
            coverage_sum += coverage;
            coverage_min = coverage_min.min(coverage);
            p50.push(latencies.get(rank(0.5) - 1).copied());
            p99.push(latencies.get(rank(0.99) - 1).copied());
            latency_max = latency_max.max(latencies.last().copied().unwrap_or(0));
            hops_p50.push(hops.get(rank(0.5) - 1).map(|&h| u64::from(h)));
            hops_p99.push(hops.get(rank(0.99) - 1).map(|&h| u64::from(h)));
            hops_max = hops_max.max(hops.last().copied().unwrap_or(0));
            copies_sent += self.counters[msg].copies_sent;
        }
        let m = messages.max(1) as f64;
        // Mean and max over posts, `None` when some post never got there.
        let mean = |v: &[Option<u64>]| -> Option<f64> {
            let all: Option<Vec<u64>> = v.iter().copied().collect();
            all.map(|all| all.iter().sum::<u64>() as f64 / m)
        };
        let max = |v: &[Option<u64>]| -> Option<u64> {
            let all: Option<Vec<u64>> = v.iter().copied().collect();
            all.and_then(|all| all.into_iter().max())
        };
        let ms = |us: f64| us / 1_000.0;
        let p99_max = max(&p99);
        let (mesh_mean, mesh_min, mesh_max) = self.mesh_at_first_publish.unwrap_or((0.0, 0, 0));
        let per_node_post = |count: u64| count as f64 / (n as f64 * m);
        B5Scenario {
            name: self.spec.name.to_string(),
            data_bytes: self.spec.data_bytes,
            idontwant: self.idontwant,
            drop_rate: self.spec.drop_rate,
            messages,
            mesh_size_mean: mesh_mean,
            mesh_size_min: mesh_min,
            mesh_size_max: mesh_max,
            coverage_mean: coverage_sum / m,
            coverage_min: if messages == 0 { 0.0 } else { coverage_min },
            latency_p50_ms_mean: mean(&p50).map(ms),
            latency_p99_ms_mean: mean(&p99).map(ms),
            latency_p99_ms_max: p99_max.map(|v| ms(v as f64)),
            heartbeats_to_p99_max: p99_max.map(|v| v as f64 / HEARTBEAT_US as f64),
            latency_max_ms: ms(latency_max as f64),
            hops_p50_mean: mean(&hops_p50),
            hops_p99_max: max(&hops_p99).map(|h| h as u32),
            hops_max,
            duplicates_mean: dup_sum as f64 / (others as f64 * m),
            duplicates_max: dup_max,
            via_gossip_fraction: if first_copies == 0 {
                0.0
            } else {
                via_gossip as f64 / first_copies as f64
            },
            copies_sent_per_node: per_node_post(copies_sent),
            ihave_per_node: per_node_post(self.ihave_sent),
            iwant_per_node: per_node_post(self.iwant_sent),
            idontwant_per_node: per_node_post(self.idontwant_sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_is_connected_with_kademlia_like_degrees() {
        for n in [20, 100] {
            let (topo, stats) = Topology::kademlia_like(n, 1);
            assert_eq!(components(&topo.links).len(), 1, "n = {n}");
            assert!(
                stats.degree_min >= DIAL_CLOSEST + DIAL_RANDOM - 1,
                "{stats:?}"
            );
            assert!((8.0..=20.0).contains(&stats.degree_mean), "{stats:?}");
            // Links are symmetric, one side outbound.
            for (a, links) in topo.links.iter().enumerate() {
                for l in links {
                    let back = topo.link(l.peer, a as u32).expect("symmetric");
                    assert_ne!(back.outbound, l.outbound);
                    assert_eq!(back.latency_us, l.latency_us);
                }
            }
        }
    }

    #[test]
    fn lossless_gossip_reaches_every_node() {
        let result = run_b5(20, true).expect("b5");
        assert_eq!(result.scenarios.len(), SCENARIOS.len());
        for s in result.scenarios.iter().filter(|s| s.drop_rate == 0.0) {
            assert_eq!(s.coverage_min, 1.0, "{s:?}");
            assert!(s.latency_p99_ms_max.is_some(), "{s:?}");
            assert!(s.hops_max >= 1, "{s:?}");
            assert!(s.mesh_size_min >= 1, "{s:?}");
        }
        assert!(!result.scenarios[0].idontwant);
        assert!(result.scenarios[1].idontwant);
    }

    #[test]
    fn meshes_settle_between_d_lo_and_d_hi() {
        let (topo, _) = Topology::kademlia_like(100, 5);
        let spec = SCENARIOS[0];
        let result = GossipSim::new(&topo, spec, 9, 2).run().expect("run");
        assert!(result.mesh_size_min >= MESH_N_LOW - 1, "{result:?}");
        assert!(result.mesh_size_max < MESH_N_HIGH + 2, "{result:?}");
        assert_eq!(result.coverage_min, 1.0);
        // A mesh push reaches everyone well within one heartbeat, with some duplicates.
        assert!(
            result.latency_p99_ms_max.expect("p99") < 1_000.0,
            "{result:?}"
        );
        assert!(result.duplicates_mean > 0.0);
    }

    #[test]
    fn mesh_links_end_up_symmetric() {
        // GRAFT and PRUNE keep both sides' views in step, up to messages still in flight.
        let (topo, _) = Topology::kademlia_like(100, 8);
        let mut sim = GossipSim::new(&topo, SCENARIOS[0], 2, 1);
        sim.simulate().expect("simulate");
        let (mut links, mut one_sided) = (0, 0);
        for (a, node) in sim.nodes.iter().enumerate() {
            for &b in &node.mesh {
                links += 1;
                if !sim.nodes[b as usize].mesh.contains(&(a as u32)) {
                    one_sided += 1;
                }
            }
        }
        assert!(
            one_sided * 20 <= links,
            "{one_sided} of {links} mesh links one-sided"
        );
    }

    #[test]
    fn idontwant_cuts_duplicates_and_gossip_repairs_drops() {
        let (topo, _) = Topology::kademlia_like(60, 3);
        let small = GossipSim::new(&topo, SCENARIOS[0], 4, 3)
            .run()
            .expect("small");
        let large = GossipSim::new(&topo, SCENARIOS[1], 4, 3)
            .run()
            .expect("large");
        assert!(
            large.duplicates_mean < small.duplicates_mean,
            "{small:?} {large:?}"
        );
        let lossy = GossipSim::new(&topo, SCENARIOS[2], 4, 3)
            .run()
            .expect("lossy");
        assert!(lossy.coverage_min > 0.95, "{lossy:?}");
    }

    #[test]
    fn runs_are_deterministic() {
        assert_eq!(run_b5(20, true).expect("a"), run_b5(20, true).expect("b"));
    }

    #[test]
    fn rows_are_usable_figures() {
        let rows = run_b5(20, true).expect("b5").rows();
        assert_eq!(rows.len(), 5 + 3 + 3);
        for row in &rows {
            assert_eq!(row.bench, "B5");
            assert!(row.value.is_finite() && row.value >= 0.0, "{row:?}");
            assert!(row.name.starts_with("N=20, "), "{row:?}");
        }
        assert_eq!(rows[0].value, 100.0);
    }

    #[test]
    fn rejects_degenerate_sizes() {
        assert!(run_b5(1, true).is_err());
    }
}
