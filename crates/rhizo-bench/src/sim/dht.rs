//! B6: Kademlia lookups, as a discrete simulation of libp2p-kad 0.49 with rhizo's configuration.
//!
//! # What is simulated
//!
//! - **Keys and distance** as libp2p: a peer's key is the SHA-256 of its `PeerId` bytes
//!   (synthesised ed25519 `PeerId`s: identity multihash of the protobuf-encoded public key), a
//!   record's key the SHA-256 of the record key; distance is XOR, bucket `i` holds distances in
//!   `[2^i, 2^(i+1))`.
//! - **Routing tables** of 256 buckets of k = 20 entries. A peer enters a table when a
//!   connection to it is established, which is when either side sends the other a Kademlia
//!   request (rhizo adds every peer that identify reports as speaking `/rhizo/kad/1.0.0`). A full
//!   bucket keeps its entries (libp2p only replaces an entry that is disconnected, after a
//!   pending-entry timeout; nobody is disconnected while the network is built).
//! - **Lookups**: libp2p's `ClosestPeersIter`, reimplemented step for step (α = 3 requests in
//!   flight, 20 while stalled — no progress in α consecutive answers; a peer silent for 10 s is
//!   "unresponsive" and no longer counted; the lookup ends when the 20 closest peers it knows,
//!   unresponsive and failed ones skipped, have all answered, or when no peer is left to ask, or
//!   at rhizo's 30 s query timeout). No disjoint paths (libp2p's default). The answer of a
//!   peer is the 20 entries of its table closest to the target, without the asker. A GET_VALUE
//!   walk is the same walk (the answer carries closer peers and, at a holder, the record);
//!   libp2p runs it to the end and rhizo collects every value.
//! - **Timing**: a request to a live peer is answered after a round trip drawn uniformly from
//!   [`RPC_MIN_MS`]..=[`RPC_MAX_MS`] (connection set-up included); a request to a node that is
//!   gone never gets an answer and is written off after libp2p's 10 s peer timeout.
//! - **Building the network**: nodes join one at a time; each knows one random earlier node
//!   (its bootstrap peer) and runs libp2p's `bootstrap()`: a lookup for its own key, then one
//!   lookup for a random key in every bucket farther than its closest neighbour's (the same
//!   ≤ 16-tries key generation as libp2p). Then every node runs one more `bootstrap()`: rhizo's
//!   periodic bootstrap (every 60 s) has fired at least once on a network that has been up for
//!   a minute.
//! - **Records**: one per measured lookup, stored as rhizo stores them: a closest-peers lookup
//!   from a random publisher, then `put_record_to` those 20 peers.
//! - **Churn**: a fraction of the nodes is gone at once, and no routing table is repaired: a
//!   snapshot right after the departures, the worst case. Lookups start from surviving nodes;
//!   the same lookups (origins, keys) are run without and with churn.
//!
//! # Measurement
//!
//! Per lookup: rounds (the longest chain of answers that led to a request: the peers from the
//! local table are round 1, peers learnt from a round-r answer round r + 1), requests sent
//! (failed ones included), failed requests, time; whether the result (the 20 closest peers that
//! answered) is exactly the 20 closest live nodes to the key, its recall, and whether the
//! record was found.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BinaryHeap},
};

use anyhow::{bail, ensure};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::rng::Rng;
use crate::report::Row;

/// k: bucket size, results per lookup, peers per answer (`K_VALUE`).
pub const K_VALUE: usize = 20;
/// α: requests in flight per lookup (`ALPHA_VALUE`).
pub const ALPHA_VALUE: usize = 3;
/// libp2p's `ClosestPeersIterConfig::peer_timeout`.
const PEER_TIMEOUT_MS: u64 = 10_000;
/// rhizo's `KAD_QUERY_TIMEOUT`.
const QUERY_TIMEOUT_MS: u64 = 30_000;
/// Shortest request round trip to a live peer (connection set-up included).
pub const RPC_MIN_MS: u64 = 50;
/// Longest request round trip to a live peer.
pub const RPC_MAX_MS: u64 = 250;
/// libp2p's tries at a random key that falls into the bucket being refreshed.
const BUCKET_REFRESH_TRIES: usize = 16;
/// Bound on the events (answers, timeouts) of one lookup; one lookup needs a few hundred.
const MAX_LOOKUP_EVENTS: usize = 100_000;
/// Lookups measured per setting.
const LOOKUPS_FULL: usize = 500;
/// Lookups measured per setting in quick mode.
const LOOKUPS_QUICK: usize = 50;
/// Largest network accepted (the build is O(N² log N) worst case in memory traffic).
const MAX_NODES: usize = 20_000;
/// Seed of the B6 runs.
pub const B6_SEED: u64 = 0x5EED_0B06;

/// What B6 ran, for the report.
const B6_METHOD: &str = "discrete simulation of libp2p-kad 0.49's ClosestPeersIter (k=20, \
    alpha=3, no disjoint paths, 10 s peer timeout, rhizo's 30 s query timeout) over routing \
    tables built by sequential joins + bootstrap(); SHA-256 keys, XOR metric; RPC round trip \
    50-250 ms; churned nodes never answer and stay in every table";

/// A 256-bit Kademlia key or distance, most significant word first (so `Ord` is numeric).
type Key = [u64; 4];

fn key_of(preimage: &[u8]) -> Key {
    let digest = Sha256::digest(preimage);
    let mut key = [0u64; 4];
    for (word, chunk) in key.iter_mut().zip(digest.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *word = u64::from_be_bytes(bytes);
    }
    key
}

fn distance(a: &Key, b: &Key) -> Key {
    [a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]]
}

/// The bucket of a distance: `floor(log2(d))`, `None` for 0.
fn bucket_of(d: &Key) -> Option<usize> {
    d.iter().enumerate().find(|(_, w)| **w != 0).map(|(i, w)| {
        let leading = i as u32 * 64 + w.leading_zeros();
        255 - leading as usize
    })
}

/// A random ed25519 `PeerId`'s bytes: identity multihash (0x00, length 36) of the protobuf
/// `PublicKey { type: Ed25519, data: 32 bytes }`.
fn random_peer_id_bytes(rng: &mut Rng) -> [u8; 38] {
    let mut bytes = [0u8; 38];
    bytes[..6].copy_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    rng.fill_bytes(&mut bytes[6..]);
    bytes
}

/// Figures of one B6 setting (with or without churn), over its lookups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct B6Scenario {
    /// Setting name.
    pub name: String,
    /// Fraction of nodes gone (still in others' routing tables).
    pub dead_fraction: f64,
    /// Lookups measured.
    pub lookups: usize,
    /// Mean lookup rounds (iterations).
    pub rounds_mean: f64,
    /// Most rounds of a lookup.
    pub rounds_max: u32,
    /// Mean requests sent per lookup (failed ones included).
    pub rpcs_mean: f64,
    /// 95th percentile of requests per lookup.
    pub rpcs_p95: u32,
    /// Most requests of a lookup.
    pub rpcs_max: u32,
    /// Mean requests per lookup that got no answer (to nodes that are gone).
    pub failed_rpcs_mean: f64,
    /// Mean lookup time.
    pub latency_ms_mean: f64,
    /// 95th percentile of the lookup time.
    pub latency_ms_p95: u64,
    /// Fraction of lookups ended by the 30 s query timeout.
    pub timeout_rate: f64,
    /// Fraction of lookups whose result is exactly the k closest live nodes.
    pub closest_exact_rate: f64,
    /// Mean fraction of the k closest live nodes in the result.
    pub closest_recall_mean: f64,
    /// Fraction of lookups that found the record.
    pub record_found_rate: f64,
    /// Mean live holders of the looked-up record (of the k it was stored on).
    pub live_holders_mean: f64,
}

/// B6 result: Kademlia lookups at one network size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct B6Result {
    /// Nodes.
    pub n: usize,
    /// Fraction of nodes gone in the churn setting.
    pub churn: f64,
    /// Whether fewer lookups were measured.
    pub quick: bool,
    /// PRNG seed.
    pub seed: u64,
    /// How the figures were obtained.
    pub method: &'static str,
    /// k.
    pub k: usize,
    /// α.
    pub alpha: usize,
    /// Mean routing-table size after the build.
    pub table_size_mean: f64,
    /// Smallest routing table.
    pub table_size_min: usize,
    /// Largest routing table.
    pub table_size_max: usize,
    /// Requests per node spent building the network (joins and one periodic bootstrap).
    pub build_rpcs_per_node: f64,
    /// Mean requests to store one record (lookup + k stores).
    pub put_rpcs_mean: f64,
    /// The settings: without churn, then (when `churn` > 0) with churn.
    pub scenarios: Vec<B6Scenario>,
}

impl B6Result {
    /// The report rows, per setting: lookups that found exactly the k closest live nodes, that
    /// found the record, rounds, requests (and, with churn, failed requests) and time per
    /// lookup.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for s in &self.scenarios {
            let label = |what: &str| format!("N={}, {}: {what}", self.n, s.name);
            let note = format!("{} ({} lookups)", self.method, s.lookups);
            let row = |what: &str, value: f64, unit: &str| {
                Row::new("B6", label(what), value, unit).note(note.clone())
            };
            rows.push(row(
                "lookups finding the k closest live nodes",
                100.0 * s.closest_exact_rate,
                "%",
            ));
            rows.push(row(
                "lookups finding the record",
                100.0 * s.record_found_rate,
                "%",
            ));
            rows.push(row("rounds per lookup, mean", s.rounds_mean, "rounds"));
            rows.push(row("RPCs per lookup, mean", s.rpcs_mean, "RPCs"));
            if s.dead_fraction > 0.0 {
                rows.push(row(
                    "failed RPCs per lookup, mean",
                    s.failed_rpcs_mean,
                    "RPCs",
                ));
            }
            rows.push(row("lookup time, mean", s.latency_ms_mean, "ms"));
        }
        rows
    }
}

/// Runs B6 on `n` nodes: builds the DHT, stores one record per lookup, then measures 500
/// lookups (50 when `quick`) without churn and, when `churn` > 0, the same lookups with that
/// fraction of the nodes gone. The caller picks `n` (1000; 50 in quick mode).
pub fn run_b6(n: usize, churn: f64, quick: bool) -> anyhow::Result<B6Result> {
    ensure!(
        (2..=MAX_NODES).contains(&n),
        "B6 needs between 2 and {MAX_NODES} nodes, got {n}"
    );
    ensure!(
        (0.0..1.0).contains(&churn),
        "the churn fraction must be in [0, 1), got {churn}"
    );
    let lookups = if quick { LOOKUPS_QUICK } else { LOOKUPS_FULL };
    let mut rng = Rng::new(B6_SEED);
    let mut dht = Dht::build(n, &mut rng)?;
    let table_sizes: Vec<usize> = (0..n).map(|i| dht.table_len(i as u32)).collect();

    // Who leaves (decided now so that the same origins serve both settings).
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let gone = ((churn * n as f64).round() as usize).min(n - 1);
    let survivors: Vec<u32> = order[gone..].to_vec();
    ensure!(
        !survivors.is_empty(),
        "no node would survive a churn of {churn}"
    );

    // One record per lookup, stored before anyone leaves.
    let mut records = Vec::with_capacity(lookups);
    let mut put_rpcs = 0u64;
    for r in 0..lookups {
        let key = key_of(format!("rhizo/bench/record/{r}").as_bytes());
        let publisher = rng.below(n) as u32;
        let put = dht.lookup(publisher, key, false, &mut rng)?;
        put_rpcs += u64::from(put.rpcs) + put.result.len() as u64;
        let origin = survivors[rng.below(survivors.len())];
        records.push(Record {
            key,
            holders: put.result,
            origin,
        });
    }

    let mut scenarios = vec![measure(&mut dht, &records, "no churn", 0.0, &mut rng)?];
    if gone > 0 {
        for &node in &order[..gone] {
            dht.alive[node as usize] = false;
        }
        let name = format!("{:.0} % churn", churn * 100.0);
        scenarios.push(measure(
            &mut dht,
            &records,
            &name,
            gone as f64 / n as f64,
            &mut rng,
        )?);
    }
    Ok(B6Result {
        n,
        churn,
        quick,
        seed: B6_SEED,
        method: B6_METHOD,
        k: K_VALUE,
        alpha: ALPHA_VALUE,
        table_size_mean: table_sizes.iter().sum::<usize>() as f64 / n as f64,
        table_size_min: table_sizes.iter().copied().min().unwrap_or(0),
        table_size_max: table_sizes.iter().copied().max().unwrap_or(0),
        build_rpcs_per_node: dht.build_rpcs as f64 / n as f64,
        put_rpcs_mean: put_rpcs as f64 / lookups.max(1) as f64,
        scenarios,
    })
}

/// A stored record and the lookup that will look for it.
#[derive(Debug, Clone)]
struct Record {
    key: Key,
    holders: Vec<u32>,
    origin: u32,
}

fn measure(
    dht: &mut Dht,
    records: &[Record],
    name: &str,
    dead_fraction: f64,
    rng: &mut Rng,
) -> anyhow::Result<B6Scenario> {
    let mut rounds = Vec::with_capacity(records.len());
    let mut rpcs = Vec::with_capacity(records.len());
    let mut latencies = Vec::with_capacity(records.len());
    let (mut failed, mut timeouts, mut exact, mut found) = (0u64, 0usize, 0usize, 0usize);
    let (mut recall_sum, mut live_holders) = (0.0, 0usize);
    for record in records {
        let outcome = dht.lookup(record.origin, record.key, false, rng)?;
        rounds.push(outcome.rounds);
        rpcs.push(outcome.rpcs);
        latencies.push(outcome.elapsed_ms);
        failed += u64::from(outcome.failed_rpcs);
        timeouts += usize::from(outcome.timed_out);
        let truth = dht.true_closest(&record.key, record.origin);
        let mut result = outcome.result.clone();
        result.sort_unstable();
        let hits = result.iter().filter(|p| truth.contains(p)).count();
        exact += usize::from(hits == truth.len() && result.len() == truth.len());
        recall_sum += if truth.is_empty() {
            1.0
        } else {
            hits as f64 / truth.len() as f64
        };
        let is_holder = |p: &u32| record.holders.contains(p);
        found += usize::from(is_holder(&record.origin) || outcome.answered.iter().any(is_holder));
        live_holders += record
            .holders
            .iter()
            .filter(|&&p| dht.alive[p as usize])
            .count();
    }
    let count = records.len().max(1);
    let m = count as f64;
    let p95 = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
        v.get(rank - 1).copied().unwrap_or(0)
    };
    let mut rpcs64: Vec<u64> = rpcs.iter().map(|&r| u64::from(r)).collect();
    Ok(B6Scenario {
        name: name.to_string(),
        dead_fraction,
        lookups: records.len(),
        rounds_mean: rounds.iter().map(|&r| f64::from(r)).sum::<f64>() / m,
        rounds_max: rounds.iter().copied().max().unwrap_or(0),
        rpcs_mean: rpcs64.iter().sum::<u64>() as f64 / m,
        rpcs_p95: p95(&mut rpcs64) as u32,
        rpcs_max: rpcs.iter().copied().max().unwrap_or(0),
        failed_rpcs_mean: failed as f64 / m,
        latency_ms_mean: latencies.iter().sum::<u64>() as f64 / m,
        latency_ms_p95: p95(&mut latencies),
        timeout_rate: timeouts as f64 / m,
        closest_exact_rate: exact as f64 / m,
        closest_recall_mean: recall_sum / m,
        record_found_rate: found as f64 / m,
        live_holders_mean: live_holders as f64 / m,
    })
}

// --- the network ---------------------------------------------------------------------------

/// Every node's key, routing table and liveness.
#[derive(Debug, Clone)]
struct Dht {
    keys: Vec<Key>,
    /// `tables[node][bucket]`: peers, oldest first.
    tables: Vec<Vec<Vec<u32>>>,
    alive: Vec<bool>,
    build_rpcs: u64,
}

impl Dht {
    /// Sequential joins, each with a bootstrap, then one periodic bootstrap per node.
    fn build(n: usize, rng: &mut Rng) -> anyhow::Result<Self> {
        let keys: Vec<Key> = (0..n).map(|_| key_of(&random_peer_id_bytes(rng))).collect();
        let mut dht = Self {
            keys,
            tables: vec![vec![Vec::new(); 256]; n],
            alive: vec![true; n],
            build_rpcs: 0,
        };
        for node in 1..n as u32 {
            let bootstrap_peer = rng.below(node as usize) as u32;
            dht.connect(node, bootstrap_peer);
            dht.bootstrap(node, rng)?;
        }
        for node in 0..n as u32 {
            dht.bootstrap(node, rng)?;
        }
        Ok(dht)
    }

    /// Both sides of a new connection put each other in their tables.
    fn connect(&mut self, a: u32, b: u32) {
        self.insert(a, b);
        self.insert(b, a);
    }

    fn insert(&mut self, owner: u32, peer: u32) {
        if owner == peer {
            return;
        }
        let d = distance(&self.keys[owner as usize], &self.keys[peer as usize]);
        let Some(bucket) = bucket_of(&d) else {
            return;
        };
        let entries = &mut self.tables[owner as usize][bucket];
        if !entries.contains(&peer) && entries.len() < K_VALUE {
            entries.push(peer);
        }
    }

    fn table_len(&self, node: u32) -> usize {
        self.tables[node as usize].iter().map(Vec::len).sum()
    }

    /// The (at most k) entries of `owner`'s table closest to `target`, without `exclude`,
    /// closest first: what `owner` answers to a FIND_NODE / GET_VALUE from `exclude`.
    fn closest_in_table(&self, owner: u32, target: &Key, exclude: u32) -> Vec<u32> {
        let mut all: Vec<(Key, u32)> = self.tables[owner as usize]
            .iter()
            .flatten()
            .filter(|&&p| p != exclude)
            .map(|&p| (distance(&self.keys[p as usize], target), p))
            .collect();
        if all.len() > K_VALUE {
            all.select_nth_unstable(K_VALUE - 1);
            all.truncate(K_VALUE);
        }
        all.sort_unstable();
        all.into_iter().map(|(_, p)| p).collect()
    }

    /// The k closest live nodes to `target` other than `origin`, sorted by index.
    fn true_closest(&self, target: &Key, origin: u32) -> Vec<u32> {
        let mut all: Vec<(Key, u32)> = (0..self.keys.len() as u32)
            .filter(|&p| p != origin && self.alive[p as usize])
            .map(|p| (distance(&self.keys[p as usize], target), p))
            .collect();
        if all.len() > K_VALUE {
            all.select_nth_unstable(K_VALUE - 1);
            all.truncate(K_VALUE);
        }
        let mut out: Vec<u32> = all.into_iter().map(|(_, p)| p).collect();
        out.sort_unstable();
        out
    }

    /// libp2p's `bootstrap()`: a self-lookup, then a lookup for a random key in every bucket
    /// farther than the first non-empty one.
    fn bootstrap(&mut self, node: u32, rng: &mut Rng) -> anyhow::Result<()> {
        if self.table_len(node) == 0 {
            return Ok(());
        }
        let own = self.keys[node as usize];
        let outcome = self.lookup(node, own, true, rng)?;
        self.build_rpcs += u64::from(outcome.rpcs);
        let Some(first) = self.tables[node as usize]
            .iter()
            .position(|b| !b.is_empty())
        else {
            return Ok(());
        };
        for bucket in first + 1..256 {
            let mut target = key_of(&random_peer_id_bytes(rng));
            for _ in 1..BUCKET_REFRESH_TRIES {
                if bucket_of(&distance(&own, &target)) == Some(bucket) {
                    break;
                }
                target = key_of(&random_peer_id_bytes(rng));
            }
            let outcome = self.lookup(node, target, true, rng)?;
            self.build_rpcs += u64::from(outcome.rpcs);
        }
        Ok(())
    }

    /// One iterative lookup from `origin` for `target`. With `learn`, every answered request
    /// connects the two nodes (both tables updated), as while the network is being built.
    fn lookup(
        &mut self,
        origin: u32,
        target: Key,
        learn: bool,
        rng: &mut Rng,
    ) -> anyhow::Result<LookupOutcome> {
        let initial = self.closest_in_table(origin, &target, origin);
        let mut iter = ClosestPeersIter::new(target, initial.iter().map(|&p| (self.key(p), p)));
        let mut queue: BinaryHeap<Pending> = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        let (mut rpcs, mut failed_rpcs) = (0u32, 0u32);
        let mut timed_out = false;
        let mut events = 0usize;
        'run: loop {
            loop {
                match iter.next(now) {
                    Next::Contact(peer) => {
                        rpcs += 1;
                        seq += 1;
                        if self.alive[peer as usize] {
                            let rtt = rng.range_u64(RPC_MIN_MS, RPC_MAX_MS);
                            queue.push(Pending {
                                time: now + rtt,
                                seq,
                                answer_from: Some(peer),
                            });
                        } else {
                            failed_rpcs += 1;
                        }
                        // Wake up at the peer timeout, as libp2p's polling would.
                        seq += 1;
                        queue.push(Pending {
                            time: now + PEER_TIMEOUT_MS,
                            seq,
                            answer_from: None,
                        });
                    }
                    Next::Finished => break 'run,
                    Next::WaitingAtCapacity | Next::Waiting => break,
                }
            }
            let Some(event) = queue.pop() else {
                // Nothing in flight and not finished cannot happen; stop rather than spin.
                break;
            };
            events += 1;
            if events > MAX_LOOKUP_EVENTS {
                bail!("a lookup exceeded {MAX_LOOKUP_EVENTS} events");
            }
            if event.time >= QUERY_TIMEOUT_MS {
                now = QUERY_TIMEOUT_MS;
                timed_out = true;
                break;
            }
            now = event.time;
            if let Some(peer) = event.answer_from {
                if learn {
                    self.connect(origin, peer);
                }
                let closer = self.closest_in_table(peer, &target, origin);
                iter.on_success(&self.key(peer), closer.iter().map(|&p| (self.key(p), p)));
            }
        }
        Ok(LookupOutcome {
            result: iter.result(),
            answered: iter.answered(),
            rounds: iter.rounds(),
            rpcs,
            failed_rpcs,
            elapsed_ms: now,
            timed_out,
        })
    }

    fn key(&self, node: u32) -> Key {
        self.keys[node as usize]
    }
}

/// An answer or a timer of a lookup in progress; the heap pops the earliest first.
#[derive(Debug, Clone, Copy)]
struct Pending {
    time: u64,
    seq: u64,
    /// `Some(peer)`: the peer's answer; `None`: a timer (peer timeout).
    answer_from: Option<u32>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// What one lookup did.
#[derive(Debug, Clone)]
struct LookupOutcome {
    /// The k closest peers that answered (libp2p's `into_result`).
    result: Vec<u32>,
    /// Every peer that answered.
    answered: Vec<u32>,
    rounds: u32,
    rpcs: u32,
    failed_rpcs: u32,
    elapsed_ms: u64,
    timed_out: bool,
}

// --- libp2p-kad's ClosestPeersIter ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    NotContacted,
    /// Waiting for an answer until the given time.
    Waiting(u64),
    Unresponsive,
    Succeeded,
}

#[derive(Debug, Clone)]
struct IterPeer {
    node: u32,
    state: PeerState,
    /// Round in which the peer was learnt (1 = from the local table).
    round: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IterState {
    Iterating { no_progress: usize },
    Stalled,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Contact(u32),
    WaitingAtCapacity,
    Waiting,
    Finished,
}

/// `libp2p_kad::query::peers::closest::ClosestPeersIter` with the default configuration
/// (parallelism α, k results, 10 s peer timeout), keyed by distance to the target.
#[derive(Debug, Clone)]
struct ClosestPeersIter {
    target: Key,
    state: IterState,
    closest: BTreeMap<Key, IterPeer>,
    num_waiting: usize,
}

impl ClosestPeersIter {
    fn new(target: Key, known: impl IntoIterator<Item = (Key, u32)>) -> Self {
        let closest = known
            .into_iter()
            .take(K_VALUE)
            .map(|(key, node)| {
                (
                    distance(&key, &target),
                    IterPeer {
                        node,
                        state: PeerState::NotContacted,
                        round: 1,
                    },
                )
            })
            .collect();
        Self {
            target,
            state: IterState::Iterating { no_progress: 0 },
            closest,
            num_waiting: 0,
        }
    }

    fn on_success(&mut self, peer_key: &Key, closer: impl IntoIterator<Item = (Key, u32)>) {
        if self.state == IterState::Finished {
            return;
        }
        let peer_distance = distance(peer_key, &self.target);
        let Some(peer) = self.closest.get_mut(&peer_distance) else {
            return;
        };
        let round = peer.round;
        match peer.state {
            PeerState::Waiting(_) => {
                self.num_waiting -= 1;
                peer.state = PeerState::Succeeded;
            }
            PeerState::Unresponsive => peer.state = PeerState::Succeeded,
            PeerState::NotContacted | PeerState::Succeeded => return,
        }
        // The farthest of the first k known peers (or the last one) bounds "progress".
        let cur_range = self
            .closest
            .keys()
            .nth(K_VALUE - 1)
            .or_else(|| self.closest.keys().last())
            .copied()
            .unwrap_or(peer_distance);
        let mut progress = self.closest.len() < K_VALUE;
        for (key, node) in closer {
            let d = distance(&key, &self.target);
            let first_insert = match self.closest.entry(d) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(IterPeer {
                        node,
                        state: PeerState::NotContacted,
                        round: round + 1,
                    });
                    true
                }
            };
            progress = (first_insert && d < cur_range) || progress;
        }
        self.state = match self.state {
            IterState::Iterating { no_progress } => {
                let no_progress = if progress { 0 } else { no_progress + 1 };
                if no_progress >= ALPHA_VALUE {
                    IterState::Stalled
                } else {
                    IterState::Iterating { no_progress }
                }
            }
            IterState::Stalled if progress => IterState::Iterating { no_progress: 0 },
            other => other,
        };
    }

    fn at_capacity(&self) -> bool {
        match self.state {
            IterState::Stalled => self.num_waiting >= K_VALUE.max(ALPHA_VALUE),
            IterState::Iterating { .. } => self.num_waiting >= ALPHA_VALUE,
            IterState::Finished => true,
        }
    }

    fn next(&mut self, now: u64) -> Next {
        if self.state == IterState::Finished {
            return Next::Finished;
        }
        let mut result_counter = Some(0usize);
        let at_capacity = self.at_capacity();
        for peer in self.closest.values_mut() {
            match peer.state {
                PeerState::Waiting(timeout) => {
                    if now >= timeout {
                        self.num_waiting -= 1;
                        peer.state = PeerState::Unresponsive;
                    } else if at_capacity {
                        return Next::WaitingAtCapacity;
                    } else {
                        result_counter = None;
                    }
                }
                PeerState::Succeeded => {
                    if let Some(count) = result_counter.as_mut() {
                        *count += 1;
                        if *count >= K_VALUE {
                            self.state = IterState::Finished;
                            return Next::Finished;
                        }
                    }
                }
                PeerState::NotContacted => {
                    if at_capacity {
                        return Next::WaitingAtCapacity;
                    }
                    peer.state = PeerState::Waiting(now + PEER_TIMEOUT_MS);
                    self.num_waiting += 1;
                    return Next::Contact(peer.node);
                }
                PeerState::Unresponsive => {}
            }
        }
        if self.num_waiting > 0 {
            Next::Waiting
        } else {
            self.state = IterState::Finished;
            Next::Finished
        }
    }

    /// The first k peers that answered, closest first.
    fn result(&self) -> Vec<u32> {
        self.closest
            .values()
            .filter(|p| p.state == PeerState::Succeeded)
            .map(|p| p.node)
            .take(K_VALUE)
            .collect()
    }

    fn answered(&self) -> Vec<u32> {
        self.closest
            .values()
            .filter(|p| p.state == PeerState::Succeeded)
            .map(|p| p.node)
            .collect()
    }

    /// The latest round in which a request was sent.
    fn rounds(&self) -> u32 {
        self.closest
            .values()
            .filter(|p| p.state != PeerState::NotContacted)
            .map(|p| p.round)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_highest_set_bit() {
        assert_eq!(bucket_of(&[0, 0, 0, 0]), None);
        assert_eq!(bucket_of(&[0, 0, 0, 1]), Some(0));
        assert_eq!(bucket_of(&[0, 0, 1, 0]), Some(64));
        assert_eq!(bucket_of(&[1 << 63, 0, 0, 0]), Some(255));
        // SHA-256 of "abc" starts 0xba7816bf.
        assert_eq!(key_of(b"abc")[0] >> 32, 0xba78_16bf);
    }

    #[test]
    fn tables_respect_k_and_hold_no_self() {
        let mut rng = Rng::new(1);
        let dht = Dht::build(60, &mut rng).expect("build");
        for (node, table) in dht.tables.iter().enumerate() {
            for (b, bucket) in table.iter().enumerate() {
                assert!(bucket.len() <= K_VALUE);
                for &p in bucket {
                    assert_ne!(p as usize, node);
                    let d = distance(&dht.keys[node], &dht.keys[p as usize]);
                    assert_eq!(bucket_of(&d), Some(b));
                }
            }
            assert!(dht.table_len(node as u32) > 0);
        }
    }

    #[test]
    fn without_churn_every_lookup_succeeds() {
        let result = run_b6(50, 0.2, true).expect("b6");
        let calm = &result.scenarios[0];
        assert_eq!(calm.closest_exact_rate, 1.0, "{calm:?}");
        assert_eq!(calm.record_found_rate, 1.0, "{calm:?}");
        assert_eq!(calm.failed_rpcs_mean, 0.0);
        assert_eq!(calm.timeout_rate, 0.0);
        assert!(calm.rounds_mean >= 1.0);
    }

    #[test]
    fn churn_costs_success_or_requests() {
        let result = run_b6(80, 0.2, true).expect("b6");
        let [calm, churned] = &result.scenarios[..] else {
            panic!("two settings expected: {result:?}");
        };
        assert!(churned.failed_rpcs_mean > 0.0, "{churned:?}");
        assert!(
            churned.closest_exact_rate < calm.closest_exact_rate
                || churned.record_found_rate < calm.record_found_rate
                || churned.rpcs_mean > calm.rpcs_mean
                || churned.latency_ms_mean > calm.latency_ms_mean,
            "{calm:?} {churned:?}"
        );
        assert!(churned.live_holders_mean < calm.live_holders_mean);
    }

    #[test]
    fn rows_are_usable_figures() {
        let rows = run_b6(50, 0.2, true).expect("b6").rows();
        assert_eq!(rows.len(), 5 + 6);
        for row in &rows {
            assert_eq!(row.bench, "B6");
            assert!(row.value.is_finite() && row.value >= 0.0, "{row:?}");
        }
        assert_eq!(rows[0].value, 100.0);
    }

    #[test]
    fn no_churn_gives_one_setting() {
        let result = run_b6(30, 0.0, true).expect("b6");
        assert_eq!(result.scenarios.len(), 1);
    }

    #[test]
    fn runs_are_deterministic() {
        assert_eq!(
            run_b6(40, 0.2, true).expect("a"),
            run_b6(40, 0.2, true).expect("b")
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(run_b6(1, 0.0, true).is_err());
        assert!(run_b6(10, 1.0, true).is_err());
        assert!(run_b6(10, -0.1, true).is_err());
    }

    #[test]
    fn iterator_finishes_when_the_k_closest_answered() {
        // Two peers known, both answer with nothing new: finished after two requests.
        let target = [0, 0, 0, 0];
        let mut iter = ClosestPeersIter::new(target, [([0, 0, 0, 1], 1), ([0, 0, 0, 2], 2)]);
        assert_eq!(iter.next(0), Next::Contact(1));
        assert_eq!(iter.next(0), Next::Contact(2));
        assert_eq!(iter.next(0), Next::Waiting);
        iter.on_success(&[0, 0, 0, 1], []);
        iter.on_success(&[0, 0, 0, 2], []);
        assert_eq!(iter.next(1), Next::Finished);
        assert_eq!(iter.result(), vec![1, 2]);
        assert_eq!(iter.rounds(), 1);
    }
}
