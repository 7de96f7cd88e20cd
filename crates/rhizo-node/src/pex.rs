//! Peer exchange (`/rhizo/pex/1`): nodes share bounded, rate-limited samples of their peer
//! books, so a node learns more of the network than its bootstrap peers and Kademlia show, and
//! the book survives churn. Entries that keep failing to dial are evicted.
//!
//! ```text
//!  every pex_interval_secs (60): 2 random connected peers ── request ──▶ their sample (≤ 16 peers)
//!     └─▶ peer book (source `exchange`) + Kademlia routing table
//!  inbound request ─▶ PeerPolicy (1/s, burst 5) ─▶ sample of our recently seen, healthy peers
//! ```

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use prost::Message as _;
use rhizo_core::proto::{PexPeer, PexSample};
use rhizo_net::Client;
use rhizo_store::{Db, DbError, PeerSource, Reader};
use tracing::{debug, warn};

use crate::clock::SharedClock;

/// Peers in one sample.
pub const MAX_SAMPLE_PEERS: usize = 16;
/// Addresses per peer in a sample.
pub const MAX_SAMPLE_ADDRS: usize = 4;
/// Longest address text accepted.
const MAX_ADDR_BYTES: usize = 128;
/// Largest sample accepted (the frame limit).
const MAX_SAMPLE_BYTES: usize = 16 * 1024;
/// Peers asked per round.
const PEERS_ASKED: usize = 2;
/// A peer-book entry that failed this many dials in a row is dropped.
const EVICT_AFTER_FAILURES: u32 = 8;

/// Our sample for a requester: recently seen peers with addresses, never the requester.
pub fn sample(store: Reader<'_>, requester: &PeerId) -> Vec<u8> {
    let peers = store
        .peers_for_dial(MAX_SAMPLE_PEERS * 2)
        .unwrap_or_default();
    let requester = requester.to_string();
    PexSample {
        peers: peers
            .into_iter()
            .filter(|p| p.peer_id != requester && p.failures == 0 && !p.addrs.is_empty())
            .filter_map(|p| {
                let id = p.peer_id.parse::<PeerId>().ok()?;
                Some(PexPeer {
                    peer_id: id.to_bytes().into(),
                    addrs: p
                        .addrs
                        .into_iter()
                        .filter(|a| a.len() <= MAX_ADDR_BYTES)
                        .take(MAX_SAMPLE_ADDRS)
                        .collect(),
                })
            })
            .take(MAX_SAMPLE_PEERS)
            .collect(),
    }
    .encode_to_vec()
}

/// Decodes a sample, keeping only well-formed entries within the limits.
pub fn parse_sample(bytes: &[u8], me: &PeerId) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, String> {
    if bytes.len() > MAX_SAMPLE_BYTES {
        return Err(format!("sample of {} bytes is over the limit", bytes.len()));
    }
    let sample = PexSample::decode(bytes).map_err(|e| format!("malformed sample: {e}"))?;
    if sample.peers.len() > MAX_SAMPLE_PEERS {
        return Err(format!(
            "sample of {} peers is over the limit",
            sample.peers.len()
        ));
    }
    Ok(sample
        .peers
        .into_iter()
        .filter_map(|p| {
            let id = PeerId::from_bytes(&p.peer_id).ok()?;
            if id == *me {
                return None;
            }
            let addrs: Vec<Multiaddr> = p
                .addrs
                .iter()
                .take(MAX_SAMPLE_ADDRS)
                .filter(|a| a.len() <= MAX_ADDR_BYTES)
                .filter_map(|a| a.parse().ok())
                .collect();
            (!addrs.is_empty()).then_some((id, addrs))
        })
        .collect())
}

/// Asks a couple of connected peers for samples every `interval`, adds what they know to the
/// peer book and the routing table, and evicts entries that keep failing.
pub async fn run(
    client: Client,
    db: Db,
    me: PeerId,
    interval: Duration,
    clock: SharedClock,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        round(&client, &db, &me, clock.now_secs()).await;
    }
}

/// One exchange round (also used by tests through the API-less path).
pub async fn round(client: &Client, db: &Db, me: &PeerId, now: i64) {
    let connected: Vec<PeerId> = match client.peers().await {
        Ok(peers) => peers
            .into_iter()
            .filter(|p| p.connections > 0)
            .map(|p| p.peer_id)
            .collect(),
        Err(_) => return,
    };
    let start = usize::try_from(now).unwrap_or(0) % connected.len().max(1);
    let mut learned = Vec::new();
    for peer in connected
        .iter()
        .cycle()
        .skip(start)
        .take(PEERS_ASKED.min(connected.len()))
    {
        match client.pex_request(*peer).await {
            Ok(bytes) => match parse_sample(&bytes, me) {
                Ok(sample) => learned.extend(sample),
                Err(e) => debug!(%peer, error = %e, "bad peer-exchange sample"),
            },
            Err(e) => debug!(%peer, error = %e, "peer exchange failed"),
        }
    }
    if !learned.is_empty() {
        debug!(count = learned.len(), "peer exchange: learned peers");
    }
    for (peer, addrs) in &learned {
        let _ = client.add_addresses(*peer, addrs.clone()).await;
    }
    let result = db
        .write(move |tx| -> Result<_, DbError> {
            for (peer, addrs) in learned {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                tx.upsert_peer(&peer.to_string(), &addrs, PeerSource::Exchange, now)?;
            }
            Ok(tx.evict_failing_peers(EVICT_AFTER_FAILURES)?)
        })
        .await;
    match result {
        Ok(evicted) if evicted > 0 => debug!(evicted, "failing peers evicted from the book"),
        Err(e) => warn!(error = %e, "peer exchange: peer book update failed"),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_bounded_and_bad_entries_dropped() {
        let me = PeerId::random();
        let other = PeerId::random();
        let good = PexPeer {
            peer_id: other.to_bytes().into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/1".into(), "junk".into()],
        };
        let own = PexPeer {
            peer_id: me.to_bytes().into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/2".into()],
        };
        let bad_id = PexPeer {
            peer_id: vec![1, 2, 3].into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/3".into()],
        };
        let bytes = PexSample {
            peers: vec![good, own, bad_id],
        }
        .encode_to_vec();
        let parsed = parse_sample(&bytes, &me).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, other);
        assert_eq!(parsed[0].1.len(), 1);
        // Too many peers, too many bytes, garbage: errors, no panic.
        let many = PexSample {
            peers: (0..17)
                .map(|_| PexPeer {
                    peer_id: PeerId::random().to_bytes().into(),
                    addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                })
                .collect(),
        }
        .encode_to_vec();
        assert!(parse_sample(&many, &me).is_err());
        assert!(parse_sample(&vec![0u8; MAX_SAMPLE_BYTES + 1], &me).is_err());
        assert!(parse_sample(&[0xFF; 10], &me).is_err());
    }
}
