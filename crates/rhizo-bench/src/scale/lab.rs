//! The lab: N real rhizo-net nodes in one tokio runtime on libp2p's memory transport
//! (`rhizo_net::start_with_transport(…, Transport::MemoryDelayed)`: every link delayed by its
//! two ends' access delays, see [`Latency`]), each with the node's real
//! behaviours, limits and record validator (honest nodes: rhizo-node's `CoreRecordValidator`;
//! Sybil nodes: `RefuseAllRecords`, so they acknowledge every store and keep nothing).
//!
//! ```text
//!  Lab::start(n) ─▶ node i: keypair from (seed, i), /memory/0, bootstrap = 3 earlier nodes
//!               ─▶ every node: Kademlia bootstrap + a lookup of its own id (bounded)
//!               (colluding Sybils: + 3 earlier Sybils; they keep only Sybils in their
//!                routing tables, so they answer lookups with each other only)
//!  publish / lookup (real signed identity records)   churn: stop k, start k fresh
//!  gossip: every live node subscribed, one publish, arrivals counted per message tag
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use rhizo_core::RootKey;
use rhizo_core::records::{IdentityRecord, identity_key, validate_record};
use rhizo_net::{
    Client, GossipVerdict, Keypair, LinkDelay, Multiaddr, NetConfig, NetEvent, PeerId,
    RefuseAllRecords, Transport,
};
use rhizo_node::mailbox::Mailbox;
use rhizo_node::record_validator::CoreRecordValidator;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::sim::rng::Rng;

/// Bootstrap peers a joining node is given (earlier or live nodes, drawn from the seed).
pub const BOOTSTRAP_PEERS: usize = 3;
/// DHT operations (bootstraps, puts, lookups) in flight at once across the lab.
pub const CONCURRENCY: usize = 16;
/// How long a node may take to bind its listener.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the lab waits for one node's self-lookup after its Kademlia bootstrap started (the
/// lab goes on without it and reports the count).
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one lookup may take before it counts as failed (Kademlia's own query timeout is
/// 30 s).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long one gossip message may take to reach every live subscriber.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(10);
/// The gossip topic every node joins.
const TOPIC: &str = "rhizo-bench/scale";
/// Arrivals buffered between the nodes' event tasks and the lab.
const ARRIVALS_CAPACITY: usize = 8192;
/// Lifetime of the identity records published (well past any run).
const RECORD_TTL_SECS: u64 = 24 * 3600;

/// Keys a Sybil of an eclipse tries at most.
const MAX_GRIND: u64 = 1 << 22;

/// Leading bits an eclipsing Sybil's id shares with its target: 4 more than an honest node's
/// closest id is expected to share in a network of `n` (log₂ n), so the Sybils are the
/// closest with high probability.
pub fn eclipse_bits(n: usize) -> u32 {
    usize::BITS - n.max(1).leading_zeros() + 4
}

/// One running node.
struct LabNode {
    client: Client,
    addr: Multiaddr,
    sybil: bool,
    /// The mailbox service (replica and client) of an honest node; `None` on a Sybil.
    mailbox: Option<Mailbox>,
    peer: PeerId,
    events: tokio::task::JoinHandle<()>,
}

/// A record published in the lab: its key, value and the node that published it.
#[derive(Debug, Clone)]
pub struct Published {
    key: Vec<u8>,
    value: Vec<u8>,
    publisher: usize,
}

/// One lookup's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    /// The valid record was found.
    pub found: bool,
    /// How long the lookup took (to the end of the query).
    pub elapsed: Duration,
}

/// The latency of the lab's links: every link's round-trip time is uniform-ish in
/// `rtt_min..=rtt_max` (each node draws its access delay, a quarter of an RTT, from the seed;
/// a link's one-way delay is the sum of its two ends'), plus up to `jitter` per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Latency {
    /// The shortest link RTT.
    pub rtt_min: Duration,
    /// The longest link RTT.
    pub rtt_max: Duration,
    /// Jitter bound per chunk and direction.
    pub jitter: Duration,
}

impl Latency {
    /// The mean RTT of a link (jitter included, half its bound each way).
    pub fn mean_rtt(&self) -> Duration {
        (self.rtt_min + self.rtt_max) / 2 + self.jitter
    }

    /// Node `index`'s share of its links' delay, drawn from `seed`.
    fn node_delay(&self, seed: u64, index: usize) -> LinkDelay {
        let draw = derive(seed, "delay", index as u64);
        let mut word = [0u8; 8];
        word.copy_from_slice(&draw[..8]);
        let unit = (u64::from_be_bytes(word) >> 11) as f64 / (1u64 << 53) as f64;
        let span = self.rtt_max.saturating_sub(self.rtt_min);
        LinkDelay {
            one_way: (self.rtt_min + span.mul_f64(unit)) / 4,
            jitter: self.jitter,
            seed: u64::from_be_bytes(word),
        }
    }
}

/// The Sybils' peer ids, shared by every colluding Sybil's routing filter.
type SybilSet = Arc<std::sync::RwLock<std::collections::HashSet<PeerId>>>;

/// The nodes (`None`: left), the seeded randomness, and the gossip arrivals.
pub struct Lab {
    nodes: Vec<Option<LabNode>>,
    seed: u64,
    latency: Option<Latency>,
    /// Every node's lookups over disjoint paths (rhizo-net's default).
    disjoint: bool,
    /// The Sybils collude: each keeps only Sybils in its routing table (so it answers
    /// lookups with Sybils only) and bootstraps from earlier Sybils too.
    collude: bool,
    /// Every Sybil started so far.
    sybils: SybilSet,
    /// The key the Sybils aim at (an eclipse), if any: every Sybil's id is ground until it
    /// lies closer to it than any honest node is likely to.
    eclipse: Option<Vec<u8>>,
    rng: Rng,
    arrivals_tx: mpsc::Sender<(usize, u64)>,
    arrivals_rx: mpsc::Receiver<(usize, u64)>,
    gossip_tag: u64,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("live", &self.live().len())
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// 32 bytes derived from the seed, a purpose and an index.
pub(crate) fn derive(seed: u64, purpose: &str, index: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(purpose.as_bytes());
    h.update(index.to_be_bytes());
    h.finalize().into()
}

fn unix_now() -> u64 {
    u64::try_from(rhizo_node::unix_now()).unwrap_or(0)
}

impl Lab {
    /// An empty lab drawing everything from `seed`, its links delayed by `latency` (none:
    /// the bare memory transport), its nodes' lookups over disjoint paths when `disjoint`.
    pub fn new(seed: u64, latency: Option<Latency>, disjoint: bool) -> Self {
        let (arrivals_tx, arrivals_rx) = mpsc::channel(ARRIVALS_CAPACITY);
        Self {
            nodes: Vec::new(),
            seed,
            latency,
            disjoint,
            collude: false,
            sybils: SybilSet::default(),
            eclipse: None,
            rng: Rng::new(seed),
            arrivals_tx,
            arrivals_rx,
            gossip_tag: 0,
        }
    }

    /// Aims every Sybil started from now on at `key` (a DHT key, e.g. a mailbox key).
    pub fn eclipse(&mut self, key: Vec<u8>) {
        self.eclipse = Some(key);
    }

    /// Makes every Sybil started from now on collude (see [`Lab`]'s `collude`).
    pub fn collude(&mut self, collude: bool) {
        self.collude = collude;
    }

    /// The keypair of node `index`: drawn from the seed, or, for a Sybil of an eclipse, ground
    /// until its Kademlia key shares [`eclipse_bits`] leading bits with the target's.
    fn keypair(&self, index: usize, sybil: bool) -> anyhow::Result<Keypair> {
        let target = match (&self.eclipse, sybil) {
            (Some(key), true) => Some(libp2p::kad::KBucketKey::new(key.clone())),
            _ => None,
        };
        let bits = eclipse_bits(self.nodes.len().max(self.live().len()));
        for attempt in 0..MAX_GRIND {
            let mut secret = match target {
                None => derive(self.seed, "node", index as u64),
                Some(_) => derive(self.seed, "sybil", ((index as u64) << 32) | attempt),
            };
            let keypair = Keypair::ed25519_from_bytes(&mut secret)?;
            let Some(target) = &target else {
                return Ok(keypair);
            };
            let id = libp2p::kad::KBucketKey::from(keypair.public().to_peer_id());
            let shared = id.distance(target).ilog2().map_or(256, |l| 255 - l);
            if shared >= bits {
                return Ok(keypair);
            }
        }
        bail!("no Sybil key near the target in {MAX_GRIND} attempts")
    }

    /// Indices of the live nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// Indices of the live honest nodes.
    pub fn live_honest(&self) -> Vec<usize> {
        self.live()
            .into_iter()
            .filter(|&i| self.nodes[i].as_ref().is_some_and(|n| !n.sybil))
            .collect()
    }

    fn client(&self, index: usize) -> Option<Client> {
        self.nodes.get(index)?.as_ref().map(|n| n.client.clone())
    }

    /// A uniformly drawn live node, `None` when none is.
    pub fn pick_live(&mut self, honest_only: bool) -> Option<usize> {
        let live = if honest_only {
            self.live_honest()
        } else {
            self.live()
        };
        (!live.is_empty()).then(|| live[self.rng.below(live.len())])
    }

    /// Starts `count` nodes, a `sybil` fraction of them Sybils (drawn from the seed); each
    /// bootstraps from [`BOOTSTRAP_PEERS`] live nodes started before it.
    pub async fn grow(&mut self, count: usize, sybil: f64) -> anyhow::Result<Vec<usize>> {
        let mut started = Vec::with_capacity(count);
        for _ in 0..count {
            let live = self.live();
            let mut bootstrap = Vec::new();
            for _ in 0..BOOTSTRAP_PEERS.min(live.len()) {
                let i = live[self.rng.below(live.len())];
                if let Some(node) = &self.nodes[i] {
                    bootstrap.push(node.addr.clone());
                }
            }
            let is_sybil = self.rng.chance(sybil);
            if is_sybil && self.collude {
                // Colluding Sybils know each other: up to BOOTSTRAP_PEERS earlier live Sybils.
                let sybils: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&i| self.nodes[i].as_ref().is_some_and(|n| n.sybil))
                    .collect();
                for _ in 0..BOOTSTRAP_PEERS.min(sybils.len()) {
                    let i = sybils[self.rng.below(sybils.len())];
                    if let Some(node) = &self.nodes[i] {
                        bootstrap.push(node.addr.clone());
                    }
                }
            }
            let index = self.nodes.len();
            let node = self.start_node(index, is_sybil, bootstrap).await?;
            self.nodes.push(Some(node));
            started.push(index);
        }
        Ok(started)
    }

    async fn start_node(
        &self,
        index: usize,
        sybil: bool,
        bootstrap: Vec<Multiaddr>,
    ) -> anyhow::Result<LabNode> {
        let keypair = self.keypair(index, sybil)?;
        let peer: PeerId = keypair.public().to_peer_id();
        let routing_filter = (sybil && self.collude).then(|| {
            if let Ok(mut set) = self.sybils.write() {
                set.insert(peer);
            }
            let sybils = self.sybils.clone();
            rhizo_net::RoutingFilter::new(move |p| sybils.read().is_ok_and(|s| s.contains(p)))
        });
        let record_validator: Arc<dyn rhizo_net::RecordValidator> = if sybil {
            Arc::new(RefuseAllRecords)
        } else {
            Arc::new(CoreRecordValidator)
        };
        let config = NetConfig {
            listen: vec!["/memory/0".parse()?],
            bootstrap,
            agent_version: "rhizo-bench-scale".into(),
            record_validator,
            routing_filter,
            disjoint_paths: self.disjoint,
            ..NetConfig::new(keypair)
        };
        let transport = match self.latency {
            Some(latency) => Transport::MemoryDelayed(latency.node_delay(self.seed, index)),
            None => Transport::Memory,
        };
        let (client, mut events, event_loop) = rhizo_net::start_with_transport(config, transport)?;
        tokio::spawn(event_loop.run());
        let addr = tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                match events.recv().await {
                    Some(NetEvent::Listening { addr }) => return Ok(addr),
                    Some(_) => {}
                    None => bail!("node {index} stopped before listening"),
                }
            }
        })
        .await
        .context("a node did not start listening")??;
        let addr = addr.with(libp2p::multiaddr::Protocol::P2p(peer));
        let mailbox = if sybil {
            None
        } else {
            Some(super::mailbox::honest_mailbox(client.clone(), peer)?)
        };
        let events = tokio::spawn(drain_events(
            (index, mailbox.clone()),
            client.clone(),
            events,
            self.arrivals_tx.clone(),
        ));
        Ok(LabNode {
            client,
            addr,
            sybil,
            mailbox,
            peer,
            events,
        })
    }

    /// Has every node in `indices` start a Kademlia bootstrap and look its own id up (what the
    /// bootstrap's first query does), and waits for that lookup to end (bounded by
    /// [`BOOTSTRAP_TIMEOUT`] per node). Returns how many ended in time. (`NetEvent::
    /// BootstrapFinished` only reports the start's bootstrap dials, not Kademlia's bootstrap.)
    pub async fn bootstrap(&self, indices: &[usize]) -> usize {
        let nodes: Vec<(Client, PeerId)> = indices
            .iter()
            .filter_map(|&i| self.nodes.get(i)?.as_ref())
            .map(|n| (n.client.clone(), n.peer))
            .collect();
        futures::stream::iter(nodes)
            .map(|(client, peer)| async move {
                let _ = client.bootstrap().await;
                let lookup = client.closest_peers(peer.to_bytes());
                matches!(
                    tokio::time::timeout(BOOTSTRAP_TIMEOUT, lookup).await,
                    Ok(Ok(_))
                )
            })
            .buffer_unordered(CONCURRENCY)
            .filter(|done| futures::future::ready(*done))
            .count()
            .await
    }

    /// Stops node `index` (its connections close; the node is gone for good).
    pub async fn stop(&mut self, index: usize) {
        if let Some(node) = self.nodes.get_mut(index).and_then(Option::take) {
            let _ = node.client.shutdown().await;
            node.events.abort();
        }
    }

    /// Stops every node.
    pub async fn stop_all(&mut self) {
        for i in self.live() {
            self.stop(i).await;
        }
    }

    /// `count` honest nodes each publish one real signed identity record (of a root key drawn
    /// from the seed) with `put_record`. Returns the records at least one peer accepted.
    pub async fn publish(&mut self, count: usize) -> Vec<Published> {
        let mut jobs = Vec::with_capacity(count);
        for j in 0..count {
            let Some(publisher) = self.pick_live(true) else {
                break;
            };
            let root = RootKey::from_bytes(&derive(self.seed, "root", j as u64));
            let uid = root.public().uid();
            let Ok(record) = IdentityRecord::new(&root, unix_now(), RECORD_TTL_SECS) else {
                continue;
            };
            let (key, value) = (identity_key(&uid).to_vec(), record.encode());
            if let Some(client) = self.client(publisher) {
                jobs.push((client, key, value, publisher));
            }
        }
        futures::stream::iter(jobs)
            .map(|(client, key, value, publisher)| async move {
                let stored = client.put_record(key.clone(), value.clone()).await;
                stored.ok().map(|_| Published {
                    key,
                    value,
                    publisher,
                })
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|p| async move { p })
            .collect()
            .await
    }

    /// Looks every record up from a random live honest node other than its publisher, and
    /// checks what comes back with rhizo-core's `validate_record`.
    pub async fn lookups(&mut self, records: &[Published]) -> Vec<Lookup> {
        let mut jobs = Vec::with_capacity(records.len());
        for record in records {
            let honest = self.live_honest();
            let readers: Vec<usize> = honest
                .into_iter()
                .filter(|&i| i != record.publisher)
                .collect();
            if readers.is_empty() {
                continue;
            }
            let reader = readers[self.rng.below(readers.len())];
            if let Some(client) = self.client(reader) {
                jobs.push((client, record.clone()));
            }
        }
        futures::stream::iter(jobs)
            .map(|(client, record)| async move {
                let started = Instant::now();
                let answer =
                    tokio::time::timeout(LOOKUP_TIMEOUT, client.get_records(record.key.clone()))
                        .await;
                let elapsed = started.elapsed();
                let now = unix_now();
                let found = matches!(answer, Ok(Ok(values)) if values.iter().any(|v| {
                    *v == record.value && validate_record(&record.key, v, now).is_ok()
                }));
                Lookup { found, elapsed }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// The GET counters of the live nodes, summed (see [`super::breakdown`]).
    pub async fn get_counters(&self) -> super::breakdown::GetCounters {
        let mut sum = super::breakdown::GetCounters::default();
        for i in self.live() {
            if let Some(Ok(stats)) = match self.client(i) {
                Some(c) => Some(c.stats().await),
                None => None,
            } {
                sum = sum.plus(super::breakdown::GetCounters::of(&stats));
            }
        }
        sum
    }

    /// Subscribes every live node to the lab's topic.
    pub async fn subscribe_all(&self) {
        let clients: Vec<Client> = self
            .live()
            .into_iter()
            .filter_map(|i| self.client(i))
            .collect();
        futures::stream::iter(clients)
            .for_each_concurrent(CONCURRENCY, |client| async move {
                let _ = client.subscribe(TOPIC.into()).await;
            })
            .await;
    }

    /// One gossip message from a random live honest node: the fraction of the other live
    /// nodes it reached within [`GOSSIP_TIMEOUT`] (gossipsub hands each message to the node
    /// once, so duplicates are not visible here).
    pub async fn gossip_once(&mut self) -> anyhow::Result<f64> {
        let Some(sender) = self.pick_live(true) else {
            bail!("no live node to publish from");
        };
        let client = self.client(sender).context("the sender is gone")?;
        while self.arrivals_rx.try_recv().is_ok() {}
        self.gossip_tag += 1;
        let tag = self.gossip_tag;
        let mut data = tag.to_be_bytes().to_vec();
        data.extend_from_slice(&derive(self.seed, "gossip", tag));
        client.publish(TOPIC.into(), data).await?;
        let others = self.live().len().saturating_sub(1).max(1);
        let mut reached = std::collections::HashSet::new();
        let deadline = tokio::time::Instant::now() + GOSSIP_TIMEOUT;
        while reached.len() < others {
            match tokio::time::timeout_at(deadline, self.arrivals_rx.recv()).await {
                Ok(Some((index, t))) if t == tag && index != sender => {
                    reached.insert(index);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        Ok(reached.len() as f64 / others as f64)
    }

    /// Whether every node of `sample` still live has gossip mesh peers on the lab's topic.
    pub async fn all_meshed(&self, sample: &[usize]) -> bool {
        for &i in sample {
            let Some(client) = self.client(i) else {
                continue;
            };
            match client.gossip_peers(TOPIC.into()).await {
                Ok(peers) if !peers.is_empty() => {}
                _ => return false,
            }
        }
        true
    }

    /// Connected peers per live node, averaged over up to 32 of them.
    pub async fn mean_connections(&mut self) -> f64 {
        let mut sum = 0usize;
        let mut n = 0usize;
        for _ in 0..32 {
            let Some(i) = self.pick_live(false) else {
                break;
            };
            if let Some(Ok(info)) = match self.client(i) {
                Some(c) => Some(c.info().await),
                None => None,
            } {
                sum += info.connected_peers;
                n += 1;
            }
        }
        sum as f64 / n.max(1) as f64
    }

    /// The mailbox service of node `index` (`None`: gone, or a Sybil).
    pub fn mailbox(&self, index: usize) -> Option<Mailbox> {
        self.nodes.get(index)?.as_ref()?.mailbox.clone()
    }

    /// Every live honest node runs one pass of the mailbox re-replication (the node's timer,
    /// `mailbox_replicate_secs`, fires once per churn step in the lab).
    pub async fn replicate_mailboxes(&self) {
        let mailboxes: Vec<Mailbox> = self
            .live()
            .into_iter()
            .filter_map(|i| self.mailbox(i))
            .collect();
        futures::stream::iter(mailboxes)
            .for_each_concurrent(CONCURRENCY, |mailbox| async move {
                mailbox.replicate_pass().await;
            })
            .await;
    }

    /// Draws `k` distinct live nodes.
    pub fn draw_live(&mut self, k: usize) -> Vec<usize> {
        let mut live = self.live();
        let mut out = Vec::with_capacity(k);
        while out.len() < k && !live.is_empty() {
            out.push(live.swap_remove(self.rng.below(live.len())));
        }
        out
    }
}

/// A node's event task: accepts and counts gossip (tagged by the first 8 bytes), answers
/// mailbox requests (the real replica, or a Sybil's lie), ignores the rest (other inbound requests are dropped unanswered).
async fn drain_events(
    (index, mailbox): (usize, Option<Mailbox>),
    client: Client,
    mut events: mpsc::Receiver<NetEvent>,
    arrivals: mpsc::Sender<(usize, u64)>,
) {
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::GossipMessage {
                propagation_source,
                message_id,
                data,
                ..
            } => {
                let _ = client
                    .report_validation(message_id, propagation_source, GossipVerdict::Accept)
                    .await;
                if let Some(tag) = data.get(..8).and_then(|b| b.try_into().ok()) {
                    let _ = arrivals.try_send((index, u64::from_be_bytes(tag)));
                }
            }
            NetEvent::InboundMailbox {
                peer,
                payload,
                channel,
            } => super::mailbox::answer(mailbox.clone(), client.clone(), peer, payload, channel),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
