//! B10: how a group message should reach its members — the sender sending one copy to every
//! member, a gossipsub topic per group that the members relay, or member-relayed fan-out
//! (rhizo-engine's `groups::relay`: the sender sends to at most K relays, each with a
//! forwarding list).
//!
//! A group of 50 members on in-process rhizo-net nodes (`rhizo_net::start`: the node's real
//! transport and gossipsub configuration) on 127.0.0.1; 8 with `--quick`. The 49 receivers are
//! connected among themselves (each dials [`EXTRA_DIALS`] random others). Two sender nodes
//! stand for the sending member, one per design, so each has the connections its design needs:
//!
//! - the **direct** sender is connected to all 49 receivers;
//! - the **gossip** sender accepts at most [`GOSSIP_SENDER_PEERS`] connections (its
//!   `NetLimits`): a member of a gossip group keeps a few mesh peers, not a connection to every
//!   member. rhizo-net's gossipsub publishes to every connected subscriber (`flood_publish`),
//!   which with this limit is its mesh.
//!
//! Every connection to a sender is inbound (the receivers dial it), so its kernel sockets are
//! exactly the TCP sockets whose local port is its listen port, and its upload is their
//! `bytes_sent` (`ss -tin`: TCP payload, Noise and Yamux framing included, TCP/IP headers not;
//! a round fails if the sender has a peer without such a socket, i.e. it dialled out).
//!
//! Per round, a fresh ~1 KiB opaque payload (the size of a small MLS application message):
//!
//! - **1:1 reference**: one `/rhizo/msg/1` request to one member;
//! - **direct**: one `/rhizo/msg/1` request to each of the other N − 1 nodes, all in flight at
//!   once (what the engine's Transmit/Target machinery does with one target per device);
//! - **gossipsub**: every node subscribed to one topic, the gossip sender publishes once, every
//!   node accepts (validates) it so it is forwarded;
//! - **relay**: the direct sender (connected to every member, as a sender may be) sends one
//!   relay frame (`RelayFrame`: the payload and a forwarding list of 32-byte device ids) to
//!   each of at most K relays of the engine's tree (`sender_branches`, rotated
//!   per round); a relay answers at once, then sends to its children (`relay_branches`) the
//!   same way, dialling a child it is not connected to. Relays here neither verify nor persist
//!   (the product's relay checks the envelope and commits the job before it answers: one
//!   signature check and one group commit per hop more than measured here).
//!
//! The time of a round is from the send to the moment the last node has the payload (each
//! node's event task stamps its arrival); the sender's bytes are the upload over all rounds of
//! a variant ÷ rounds, so heartbeats and gossip control traffic in that time count too.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use std::sync::{Arc, OnceLock};

use rhizo_engine::groups::relay::{
    DeviceId, RELAY_FANOUT, RelayBranch, RelayFrame, is_relay_frame, relay_branches,
    sender_branches,
};
use rhizo_net::{
    Client, GossipVerdict, Keypair, Multiaddr, NetConfig, NetEvent, NetLimits, PeerId,
};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::report::{Row, Target};
use crate::{Summary, ms};

/// Group members of a full run (the sender included).
pub const NODES: usize = 50;
/// Group members of a quick run.
pub const QUICK_NODES: usize = 8;
/// The gossip sender's node index.
const GOSSIP_SENDER: usize = 0;
/// The direct sender's node index.
const DIRECT_SENDER: usize = 1;
/// The first receiver's node index.
const FIRST_RECEIVER: usize = 2;
/// Payload bytes (a small MLS application message).
pub const PAYLOAD_BYTES: usize = 1024;
/// Connections the gossip sender accepts.
pub const GOSSIP_SENDER_PEERS: usize = 6;
/// Random extra connections each non-sender node dials among the others.
pub const EXTRA_DIALS: usize = 4;
/// The topic.
const TOPIC: &str = "rhizo-bench/group-fanout";
/// How long one round may take.
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the network may take to connect and form the mesh.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The sender fan-outs of the relay rows: the product's constant, and 8 (the first
/// guess, which cannot meet the upload target: 8 frames each a full copy plus its list).
pub const RELAY_KS: [usize; 2] = [RELAY_FANOUT, 8];
/// Target (issue 14, B10): p99 ≤ 4 × the 1:1 p99.
pub const TARGET_P99_RATIO: f64 = 4.0;
/// Target (issue 14, B10): sender upload ≤ 8 × one copy.
pub const TARGET_UPLOAD_RATIO: f64 = 8.0;

/// One variant's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// Time until the last receiver has it, ms.
    pub latency_ms: Summary,
    /// The sender's TCP upload per message, bytes.
    pub upload_bytes: f64,
    /// Receivers per message.
    pub receivers: usize,
}

/// B10 groundwork's result.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// Group members, the sender included.
    pub nodes: usize,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// One request to one member.
    pub one_to_one: Variant,
    /// One request to each member.
    pub direct: Variant,
    /// One publish on a topic all members joined.
    pub gossip: Variant,
    /// Member-relayed: at most K relay frames from the sender (K = [`RELAY_KS`]), relays
    /// forward with the product's [`RELAY_FANOUT`].
    pub relays: Vec<(usize, Variant)>,
    /// Peers connected to the gossip sender.
    pub gossip_sender_peers: usize,
}

/// What a node's event task saw: (node index, round tag, arrival).
type Arrival = (usize, u64, Instant);

/// Every node's peer id and address, by index (set once all have started): where a relay
/// sends its children's frames.
type Directory = Arc<OnceLock<Vec<(PeerId, Multiaddr)>>>;

/// The device id standing for node `index` in forwarding lists (32 bytes, as on the wire).
fn device_of(index: usize) -> DeviceId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(index as u64).to_be_bytes());
    id
}

/// The node index of a device id made by [`device_of`].
fn index_of(device: &DeviceId) -> Option<usize> {
    usize::try_from(u64::from_be_bytes(device[..8].try_into().ok()?)).ok()
}

/// The request for one branch: a bare payload to a head with nothing to forward, else a relay
/// frame.
fn branch_frame(branch: &RelayBranch, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    if branch.subtree.is_empty() {
        return Ok(payload.to_vec());
    }
    Ok(RelayFrame {
        from_relay: false,
        forward_to: branch.subtree.clone(),
        envelope: payload.to_vec(),
    }
    .encode()?)
}

/// One running node.
struct Net {
    client: Client,
    addr: Multiaddr,
    peer: PeerId,
}

/// Starts a node on 127.0.0.1 whose event task answers requests, accepts gossip and reports
/// each payload's arrival on `arrivals`.
async fn start_node(
    index: usize,
    directory: Directory,
    arrivals: mpsc::Sender<Arrival>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Net> {
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let limits = if index == GOSSIP_SENDER {
        NetLimits {
            max_inbound: u32::try_from(GOSSIP_SENDER_PEERS)?,
            max_outbound: 0,
            ..NetLimits::default()
        }
    } else {
        NetLimits {
            max_inbound: 256,
            max_outbound: 256,
            max_per_ip: 256,
            max_pending_inbound: 256,
        }
    };
    let (client, mut events, event_loop) = rhizo_net::start(NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        limits,
        ..NetConfig::new(keypair)
    })?;
    tasks.push(tokio::spawn(async move {
        let _ = event_loop.run().await;
    }));
    let addr = tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            match events.recv().await {
                Some(NetEvent::Listening { addr }) => return Ok(addr),
                Some(_) => {}
                None => bail!("node {index} stopped"),
            }
        }
    })
    .await
    .context("a node did not start listening")??;
    let handler = client.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            handle(index, &handler, &directory, &arrivals, event).await;
        }
    }));
    Ok(Net { client, addr, peer })
}

/// One node's reaction to one event.
async fn handle(
    index: usize,
    client: &Client,
    directory: &Directory,
    arrivals: &mpsc::Sender<Arrival>,
    event: NetEvent,
) {
    match event {
        NetEvent::InboundMessage {
            payload, channel, ..
        } => {
            let at = Instant::now();
            let _ = client.try_respond(channel, Vec::new());
            let payload = if is_relay_frame(&payload) {
                match RelayFrame::decode(&payload) {
                    Ok(frame) => {
                        forward(client, directory, &frame);
                        frame.envelope
                    }
                    Err(e) => {
                        tracing::warn!(index, error = %e, "a relay frame does not decode");
                        return;
                    }
                }
            } else {
                payload
            };
            if let Some(tag) = tag_of(&payload) {
                let _ = arrivals.send((index, tag, at)).await;
            }
        }
        NetEvent::GossipMessage {
            propagation_source,
            message_id,
            data,
            ..
        } => {
            let at = Instant::now();
            let _ = client
                .report_validation(message_id, propagation_source, GossipVerdict::Accept)
                .await;
            if let Some(tag) = tag_of(&data) {
                let _ = arrivals.send((index, tag, at)).await;
            }
        }
        _ => {}
    }
}

/// A relay's forwarding: its children's frames, sent from a task each (the event task goes
/// on reading).
fn forward(client: &Client, directory: &Directory, frame: &RelayFrame) {
    let Some(nodes) = directory.get() else {
        return;
    };
    for branch in relay_branches(&frame.forward_to, RELAY_FANOUT) {
        let Some((peer, addr)) = index_of(&branch.relay).and_then(|i| nodes.get(i)).cloned() else {
            continue;
        };
        let Ok(request) = branch_frame(&branch, &frame.envelope) else {
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.send_message(peer, vec![addr], request).await {
                tracing::warn!(error = %e, "a relay's forward failed");
            }
        });
    }
}

/// The round tag in a payload's first 8 bytes.
fn tag_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

/// A fresh payload for round `tag`: the tag, then bytes that differ per round (gossipsub ids
/// are content hashes).
fn payload(tag: u64) -> Vec<u8> {
    let mut out = tag.to_be_bytes().to_vec();
    let mut x = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < PAYLOAD_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// The sender's upload so far: `bytes_sent` of every established TCP socket on `port`, and how
/// many sockets that is.
fn upload_bytes(port: u16) -> anyhow::Result<(u64, usize)> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established", &format!("sport = :{port}")])
        .output()
        .context("run ss (iproute2) for the sender's TCP counters")?;
    if !out.status.success() {
        bail!("ss failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let counters: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|field| field.strip_prefix("bytes_sent:"))
        .filter_map(|n| n.parse::<u64>().ok())
        .collect();
    Ok((counters.iter().sum(), counters.len()))
}

/// The TCP port of a `/ip4/…/tcp/PORT` address.
fn port_of(addr: &Multiaddr) -> anyhow::Result<u16> {
    addr.iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .ok_or_else(|| anyhow!("{addr} has no TCP port"))
}

/// The network: nodes, their arrivals, their tasks.
struct Bench {
    nodes: Vec<Net>,
    arrivals: mpsc::Receiver<Arrival>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    next_tag: u64,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Bench {
    /// Starts the two senders and `members − 1` receivers, connects them (see the module docs)
    /// and subscribes all but the direct sender.
    async fn start(members: usize) -> anyhow::Result<Self> {
        let n = FIRST_RECEIVER + members - 1;
        let (tx, arrivals) = mpsc::channel(4 * n.max(8));
        let mut tasks = Vec::new();
        let mut nodes = Vec::with_capacity(n);
        let directory: Directory = Arc::new(OnceLock::new());
        for i in 0..n {
            nodes.push(start_node(i, Arc::clone(&directory), tx.clone(), &mut tasks).await?);
        }
        let _ = directory.set(nodes.iter().map(|n| (n.peer, n.addr.clone())).collect());
        let mut bench = Self {
            nodes,
            arrivals,
            tasks,
            next_tag: 1,
        };
        bench.connect_members().await?;
        // The direct sender stays off the topic: its upload is direct sends only.
        for (i, node) in bench.nodes.iter().enumerate() {
            if i != DIRECT_SENDER {
                node.client.subscribe(TOPIC.into()).await?;
            }
        }
        Ok(bench)
    }

    /// Node `i` dials node `j`. A dial to a peer already connected (or being dialled) is
    /// refused by libp2p; that is fine, the connection is what counts (checked later).
    async fn dial(&self, i: usize, j: usize) -> anyhow::Result<()> {
        let addr = self.nodes[j]
            .addr
            .clone()
            .with_p2p(self.nodes[j].peer)
            .map_err(|a| anyhow!("{a} has a peer id"))?;
        if let Err(e) = self.nodes[i].client.dial(addr).await {
            tracing::debug!(i, j, error = %e, "dial not started");
        }
        Ok(())
    }

    /// The receivers dial each other (a seeded random graph), the first
    /// [`GOSSIP_SENDER_PEERS`] of them the gossip sender, all of them the direct sender.
    async fn connect_members(&mut self) -> anyhow::Result<()> {
        let n = self.nodes.len();
        let receivers = n - FIRST_RECEIVER;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in FIRST_RECEIVER..n {
            for _ in 0..EXTRA_DIALS.min(receivers.saturating_sub(1)) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let j = FIRST_RECEIVER + usize::try_from(x % receivers as u64)?;
                if j != i {
                    self.dial(i, j).await?;
                }
            }
        }
        for i in FIRST_RECEIVER..n {
            if i < FIRST_RECEIVER + GOSSIP_SENDER_PEERS {
                self.dial(i, GOSSIP_SENDER).await?;
            }
            self.dial(i, DIRECT_SENDER).await?;
        }
        Ok(())
    }

    /// The receivers' node indexes.
    fn receivers(&self) -> HashSet<usize> {
        (FIRST_RECEIVER..self.nodes.len()).collect()
    }

    /// Waits until every node has a gossip mesh peer on the topic.
    async fn wait_for_mesh(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let mut ready = true;
            for (i, node) in self.nodes.iter().enumerate() {
                if i != DIRECT_SENDER && node.client.gossip_peers(TOPIC.into()).await?.is_empty() {
                    ready = false;
                    break;
                }
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the gossip mesh did not form in {SETUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the direct sender is connected to every receiver and the gossip sender to
    /// some; the gossip sender's peer count.
    async fn wait_for_senders(&self) -> anyhow::Result<usize> {
        let want = self.nodes.len() - FIRST_RECEIVER;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let direct = self.nodes[DIRECT_SENDER]
                .client
                .info()
                .await?
                .connected_peers;
            let gossip = self.nodes[GOSSIP_SENDER]
                .client
                .info()
                .await?
                .connected_peers;
            if direct >= want && gossip > 0 {
                return Ok(gossip);
            }
            if Instant::now() > deadline {
                bail!("the senders have {direct} and {gossip} peers after {SETUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for `tag` to arrive at every node in `receivers`; the time from `sent`, ms.
    async fn await_round(
        &mut self,
        tag: u64,
        receivers: &HashSet<usize>,
        sent: Instant,
    ) -> anyhow::Result<f64> {
        let mut got: HashMap<usize, Instant> = HashMap::new();
        let deadline = tokio::time::Instant::now() + ROUND_TIMEOUT;
        while got.len() < receivers.len() {
            let (node, t, at) = tokio::time::timeout_at(deadline, self.arrivals.recv())
                .await
                .map_err(|_| {
                    anyhow!(
                        "round {tag}: {} of {} receivers got it in {ROUND_TIMEOUT:?}",
                        got.len(),
                        receivers.len()
                    )
                })?
                .ok_or_else(|| anyhow!("the nodes stopped"))?;
            if t == tag && receivers.contains(&node) {
                got.entry(node).or_insert(at);
            }
        }
        let last = got.values().max().copied().unwrap_or(sent);
        Ok(ms(last.saturating_duration_since(sent)))
    }

    /// `rounds` rounds of `send`, each to `receivers`.
    async fn rounds(
        &mut self,
        rounds: usize,
        receivers: &HashSet<usize>,
        how: How,
    ) -> anyhow::Result<Variant> {
        let sender = how.sender();
        let port = port_of(&self.nodes[sender].addr)?;
        let (before, sockets) = upload_bytes(port)?;
        let peers = self.nodes[sender].client.info().await?.connected_peers;
        if sockets < peers {
            // The sender also dialled out (a connection from an ephemeral port, which `ss` cannot
            // tell from the other nodes' own): what goes over it is not counted, so the upload
            // figure is a lower bound. Said loudly rather than failing the whole run.
            eprintln!(
                "B10 note: the sender has {peers} peers but {sockets} sockets on its listening \
                 port (it dialled out); its upload figure is a lower bound"
            );
        }
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let tag = self.next_tag;
            self.next_tag += 1;
            let data = payload(tag);
            let sent = Instant::now();
            self.send(how, receivers, data).await?;
            samples.push(self.await_round(tag, receivers, sent).await?);
        }
        let (after, _) = upload_bytes(port)?;
        Ok(Variant {
            latency_ms: Summary::of(&samples),
            upload_bytes: after.saturating_sub(before) as f64 / rounds.max(1) as f64,
            receivers: receivers.len(),
        })
    }

    /// Sends one payload the way `how` says.
    async fn send(
        &self,
        how: How,
        receivers: &HashSet<usize>,
        data: Vec<u8>,
    ) -> anyhow::Result<()> {
        let sender = &self.nodes[how.sender()].client;
        match how {
            How::Gossip => {
                sender.publish(TOPIC.into(), data).await?;
            }
            How::Direct => {
                let sends = receivers
                    .iter()
                    .map(|&i| sender.send_message(self.nodes[i].peer, Vec::new(), data.clone()));
                for outcome in futures::future::join_all(sends).await {
                    outcome.map_err(|e| anyhow!("direct send: {e}"))?;
                }
            }
            How::Relay(k) => {
                let devices: Vec<DeviceId> = receivers.iter().map(|&i| device_of(i)).collect();
                let rotation = tag_of(&data).unwrap_or(0);
                let mut sends = Vec::new();
                for branch in sender_branches(&devices, rotation, k) {
                    let i = index_of(&branch.relay).ok_or_else(|| anyhow!("a relay's index"))?;
                    let request = branch_frame(&branch, &data)?;
                    sends.push(sender.send_message(self.nodes[i].peer, Vec::new(), request));
                }
                for outcome in futures::future::join_all(sends).await {
                    outcome.map_err(|e| anyhow!("relay send: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

/// How a round sends.
#[derive(Debug, Clone, Copy)]
enum How {
    Direct,
    Gossip,
    /// Member relays, the sender sending to at most this many.
    Relay(usize),
}

impl How {
    /// The sending node.
    fn sender(self) -> usize {
        match self {
            Self::Direct | Self::Relay(_) => DIRECT_SENDER,
            Self::Gossip => GOSSIP_SENDER,
        }
    }
}

/// Runs the measurement (on the caller's runtime).
pub async fn run_fanout(quick: bool) -> anyhow::Result<FanoutResult> {
    let (n, rounds) = if quick {
        (QUICK_NODES, 5)
    } else {
        (NODES, 100)
    };
    let mut bench = Bench::start(n).await?;
    let gossip_sender_peers = bench.wait_for_senders().await?;
    bench.wait_for_mesh().await?;
    let everyone = bench.receivers();
    let one: HashSet<usize> = [FIRST_RECEIVER].into_iter().collect();
    // A warm-up round of each, then the measured rounds.
    bench.rounds(1, &everyone, How::Gossip).await?;
    bench.rounds(1, &everyone, How::Direct).await?;
    bench.rounds(1, &everyone, How::Relay(RELAY_FANOUT)).await?;
    let gossip = bench.rounds(rounds, &everyone, How::Gossip).await?;
    let one_to_one = bench.rounds(rounds, &one, How::Direct).await?;
    let direct = bench.rounds(rounds, &everyone, How::Direct).await?;
    let mut relays = Vec::new();
    for k in RELAY_KS {
        relays.push((k, bench.rounds(rounds, &everyone, How::Relay(k)).await?));
    }
    Ok(FanoutResult {
        nodes: n,
        payload_bytes: PAYLOAD_BYTES,
        one_to_one,
        direct,
        gossip,
        relays,
        gossip_sender_peers,
    })
}

impl FanoutResult {
    /// The table rows.
    pub fn rows(&self) -> Vec<Row> {
        let n = self.nodes;
        let one = &self.one_to_one;
        let mut rows = vec![
            Row::new("B10", "1:1 send → received p50", one.latency_ms.p50, "ms"),
            Row::new("B10", "1:1 send → received p99", one.latency_ms.p99, "ms"),
            Row::new("B10", "1:1 sender upload per message", one.upload_bytes, "B").note(
                "sender upload: bytes_sent of the sender's TCP sockets (ss -tin) over all rounds ÷ rounds; \
                 Noise+Yamux framing and gossip control traffic included, TCP/IP headers not",
            ),
        ];
        let mut variants = vec![
            ("direct".to_string(), &self.direct),
            ("gossipsub".to_string(), &self.gossip),
        ];
        for (k, v) in &self.relays {
            variants.push((format!("relay (K = {k})"), v));
        }
        for (label, v) in variants {
            rows.push(Row::new(
                "B10",
                format!("{label} to {} members: last received p50", v.receivers),
                v.latency_ms.p50,
                "ms",
            ));
            rows.push(
                Row::new(
                    "B10",
                    format!("{label} to {} members: last received p99", v.receivers),
                    v.latency_ms.p99,
                    "ms",
                )
                .reference("1:1 p99", one.latency_ms.p99)
                .target(Target::ratio_at_most(TARGET_P99_RATIO)),
            );
            rows.push(
                Row::new(
                    "B10",
                    format!("{label} to {} members: sender upload", v.receivers),
                    v.upload_bytes,
                    "B",
                )
                .reference("one 1:1 copy", one.upload_bytes)
                .target(Target::ratio_at_most(TARGET_UPLOAD_RATIO))
                .note(format!(
                    "a group of {n} on rhizo-net nodes on 127.0.0.1, {} B opaque payload; gossipsub as \
                     rhizo-net configures it, the gossip sender connected to {} members",
                    self.payload_bytes, self.gossip_sender_peers
                )),
            );
        }
        rows
    }
}
