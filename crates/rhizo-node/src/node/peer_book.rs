//! The peer book: the peers handed to the network at start, and the updates the network's
//! discovery and dial events write to it (through a bounded queue, off the event path).

use libp2p::{Multiaddr, PeerId};
use rhizo_net::{DiscoverySource, NetEvent};
use rhizo_store::{Db, DbError, PeerSource, Reader};
use tracing::{debug, warn};

use super::NodeError;
use crate::unix_now;

/// Peer-book entries handed to the network at start.
const PEER_BOOK_LOAD_LIMIT: usize = 256;

pub(super) fn load_known_peers(
    store: Reader<'_>,
) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NodeError> {
    let records = store.peers_for_dial(PEER_BOOK_LOAD_LIMIT)?;
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let peer: PeerId = r.peer_id.parse().ok()?;
            let addrs: Vec<Multiaddr> = r.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            (!addrs.is_empty()).then_some((peer, addrs))
        })
        .collect())
}

fn peer_source(source: DiscoverySource) -> PeerSource {
    match source {
        DiscoverySource::Bootstrap => PeerSource::Bootstrap,
        DiscoverySource::Identify => PeerSource::Identify,
        DiscoverySource::Kademlia => PeerSource::Kademlia,
        DiscoverySource::Mdns => PeerSource::Mdns,
    }
}

/// Writes the peer-book updates [`handle_net_event`] queues, until the queue closes.
pub(super) async fn write_peer_book(
    mut updates: tokio::sync::mpsc::Receiver<NetEvent>,
    db: Db,
    local: PeerId,
) {
    while let Some(event) = updates.recv().await {
        if let Err(e) = record_in_peer_book(event, &db, local).await {
            warn!(error = %e, "cannot update the peer book");
        }
    }
}

/// Keeps the peer book in step with the network.
async fn record_in_peer_book(event: NetEvent, db: &Db, local: PeerId) -> Result<(), NodeError> {
    let now = unix_now();
    match event {
        NetEvent::PeerDiscovered {
            peer,
            addrs,
            source,
        } => {
            if peer == local {
                return Ok(());
            }
            let addrs: Vec<String> = addrs
                .iter()
                .filter(|a| is_storable(a))
                .map(|a| strip_p2p(a).to_string())
                .collect();
            let peer_id = peer.to_string();
            db.write(move |tx| -> Result<(), DbError> {
                tx.upsert_peer(&peer_id, &addrs, peer_source(source), now)?;
                Ok(())
            })
            .await?;
        }
        NetEvent::PeerConnected { peer, .. } => {
            let peer_id = peer.to_string();
            db.write(move |tx| -> Result<(), DbError> {
                Ok(tx.record_dial_success(&peer_id, now)?)
            })
            .await?;
        }
        NetEvent::DialFailed { peer, error } => {
            debug!(%peer, %error, "dial failed");
            let peer_id = peer.to_string();
            db.write(move |tx| -> Result<(), DbError> {
                tx.record_dial_failure(&peer_id, now)?;
                Ok(())
            })
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Addresses worth remembering: not relayed-through-ourselves junk, not unspecified.
fn is_storable(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => !ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => !ip.is_unspecified(),
        _ => false,
    }
}

fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
        a.pop();
    }
    a
}
