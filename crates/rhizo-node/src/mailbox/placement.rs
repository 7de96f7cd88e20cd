//! Where a mailbox's copies go: the replica set, chosen from a closest-peers answer so that
//! ids ground next to the mailbox key (an eclipse) cannot fill it.
//!
//! ```text
//!  closest peers to mailbox_key(uid) (≤ 20, closest first)
//!    ─▶ network size estimate from the farthest of them (rank / distance)
//!    ─▶ a peer is "deep" when it shares more bits with the key than that size explains
//!       (+ DEEP_SLACK_BITS): an honest network has 0–1 such peers per key, a ground
//!       eclipse has one per Sybil
//!    ─▶ at most MAX_DEEP_REPLICAS deep peers count towards the REPLICAS a store needs;
//!       the others still get the envelope (and are asked on fetch) but count for nothing,
//!       so the counted set reaches peers at an ordinary distance
//! ```
//!
//! Senders ([`Mailbox::store_for`](super::Mailbox::store_for)), re-replication and the
//! recipient's fetch ([`Mailbox::fetch_sources`](super::Mailbox::fetch_sources)) all walk the
//! same [`ReplicaPlan`], so the recipient looks where senders store.

use libp2p::kad::KBucketKey;
use rhizo_net::ClosestPeer;

/// Deep peers (ids suspiciously close to the key) that count towards a store's replicas;
/// an honest network has more than two with probability ≈ 1.4 % per key (Poisson, mean ½).
pub const MAX_DEEP_REPLICAS: usize = 2;
/// Bits a peer may share with the key beyond log₂ of the estimated network size before it is
/// deep: with 1, an honest network has on average ½ deep peer per key.
pub const DEEP_SLACK_BITS: f64 = 1.0;
/// Fewest peers in an answer for a size estimate; with fewer, no peer is deep (every peer of
/// a tiny network is close to every key).
pub const MIN_PEERS_FOR_ESTIMATE: usize = 4;

/// One candidate of a [`ReplicaPlan`].
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The peer.
    pub peer: ClosestPeer,
    /// Shares more bits with the key than the network size explains.
    pub deep: bool,
    /// Counts towards the replicas a store needs (false only for a deep peer past the first
    /// [`MAX_DEEP_REPLICAS`]).
    pub counts: bool,
}

/// The candidates for one mailbox, closest first, each marked deep and counting or not.
#[derive(Debug, Clone, Default)]
pub struct ReplicaPlan {
    /// Closest first.
    pub candidates: Vec<Candidate>,
    /// The network size the plan estimated (0: too few peers to tell).
    pub estimated_peers: f64,
}

/// XOR distance of `peer` to `key` (Kademlia's, on the SHA-256 of both) as a fraction of the
/// key space, from its top 64 bits (never 0).
pub fn distance_fraction(key: &[u8], peer: &libp2p::PeerId) -> f64 {
    let target = KBucketKey::new(key.to_vec());
    let id = KBucketKey::from(*peer);
    let mut top = 0u64;
    for (a, b) in target.hashed_bytes().iter().zip(id.hashed_bytes()).take(8) {
        top = (top << 8) | u64::from(a ^ b);
    }
    (top.max(1) as f64) / 2f64.powi(64)
}

impl ReplicaPlan {
    /// The plan for `key` over `closest` (a closest-peers answer; sorted here again).
    pub fn new(key: &[u8], closest: Vec<ClosestPeer>) -> Self {
        let mut ranked: Vec<(f64, ClosestPeer)> = closest
            .into_iter()
            .map(|p| (distance_fraction(key, &p.peer), p))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The farthest peer of the answer lies at rank k: the network holds about k / d peers.
        let estimated_peers = match ranked.last() {
            Some((d, _)) if ranked.len() >= MIN_PEERS_FOR_ESTIMATE => ranked.len() as f64 / d,
            _ => 0.0,
        };
        let deep_below = if estimated_peers > 0.0 {
            1.0 / (estimated_peers * 2f64.powf(DEEP_SLACK_BITS))
        } else {
            0.0
        };
        let mut deep_counted = 0;
        let candidates = ranked
            .into_iter()
            .map(|(d, peer)| {
                let deep = d < deep_below;
                let counts = !deep || deep_counted < MAX_DEEP_REPLICAS;
                deep_counted += usize::from(deep && counts);
                Candidate { peer, deep, counts }
            })
            .collect();
        Self {
            candidates,
            estimated_peers,
        }
    }

    /// The candidates in order up to and including the `wanted`-th that counts: the peers
    /// a store tries first and a fetch asks (`wanted` counting ones, plus every deep peer
    /// before them).
    pub fn prefix(&self, wanted: usize) -> &[Candidate] {
        let mut counted = 0;
        for (i, c) in self.candidates.iter().enumerate() {
            counted += usize::from(c.counts);
            if counted >= wanted {
                return &self.candidates[..=i];
            }
        }
        &self.candidates
    }

    /// Deep peers in the plan.
    pub fn deep(&self) -> usize {
        self.candidates.iter().filter(|c| c.deep).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    const KEY: &[u8] = b"a mailbox key for the placement tests";

    fn peer(p: PeerId) -> ClosestPeer {
        ClosestPeer {
            peer: p,
            addrs: Vec::new(),
        }
    }

    /// A peer whose id shares at least `bits` leading bits with `KEY` (bounded grinding).
    fn ground(bits: u32) -> PeerId {
        let target = KBucketKey::new(KEY.to_vec());
        for _ in 0..(1u32 << 22) {
            let p = PeerId::random();
            let d = target.distance(&KBucketKey::from(p));
            if d.ilog2().map_or(256, |l| 255 - l) >= bits {
                return p;
            }
        }
        panic!("no peer with {bits} shared bits found");
    }

    #[test]
    fn an_honest_answer_counts_its_closest_peers() {
        // 30 random peers: the estimate lands near the network's size, and the first
        // REPLICAS that count are (nearly always) the first REPLICAS.
        let peers: Vec<ClosestPeer> = (0..30).map(|_| peer(PeerId::random())).collect();
        let plan = ReplicaPlan::new(KEY, peers);
        assert_eq!(plan.candidates.len(), 30);
        assert!(
            plan.estimated_peers > 5.0 && plan.estimated_peers < 200.0,
            "{}",
            plan.estimated_peers
        );
        let d: Vec<f64> = plan
            .candidates
            .iter()
            .map(|c| distance_fraction(KEY, &c.peer.peer))
            .collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "not closest first");
        assert!(plan.prefix(5).len() >= 5);
    }

    #[test]
    fn ground_ids_next_to_the_key_count_at_most_twice() {
        // The lab's eclipse: 6 ids sharing ≥ 10 bits with the key among 24 honest ones.
        let mut peers: Vec<ClosestPeer> = (0..24).map(|_| peer(PeerId::random())).collect();
        let sybils: Vec<PeerId> = (0..6).map(|_| ground(10)).collect();
        peers.extend(sybils.iter().copied().map(peer));
        let plan = ReplicaPlan::new(KEY, peers);
        assert!(plan.deep() >= 6, "deep {}", plan.deep());
        let first = plan.prefix(5);
        let honest_counted = first
            .iter()
            .filter(|c| c.counts && !sybils.contains(&c.peer.peer))
            .count();
        assert!(honest_counted >= 3, "{honest_counted} honest of {first:?}");
        // Every Sybil is still in the prefix (they are the closest): stored on, asked on
        // fetch, counted at most twice.
        let counted_sybils = first
            .iter()
            .filter(|c| c.counts && sybils.contains(&c.peer.peer))
            .count();
        assert!(counted_sybils <= MAX_DEEP_REPLICAS);
        assert!(
            sybils
                .iter()
                .all(|s| first.iter().any(|c| c.peer.peer == *s))
        );
    }

    #[test]
    fn a_tiny_network_has_no_deep_peers() {
        let peers: Vec<ClosestPeer> = (0..3).map(|_| peer(ground(12))).collect();
        let plan = ReplicaPlan::new(KEY, peers);
        assert_eq!(plan.estimated_peers, 0.0);
        assert_eq!(plan.deep(), 0);
        assert_eq!(plan.prefix(5).len(), 3);
        assert!(ReplicaPlan::new(KEY, Vec::new()).prefix(5).is_empty());
    }
}
