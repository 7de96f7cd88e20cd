//! The Kademlia routing table's admission filter (`NetConfig::routing_filter`): a peer the
//! filter refuses does not stay in the table (so the node never names it in a lookup answer),
//! one it allows does. Nodes on loopback (`127.0.0.1/tcp/0`); every wait bounded by `support::WAIT`.

use libp2p::kad::KBucketKey;
use rhizo_net::{PeerId, RoutingFilter};

mod support;
use support::{Node, Opts, eventually};

/// Peers of `node`'s routing table closer to `peer`'s own Kademlia key than `node` is.
async fn closer_to(node: &Node, peer: PeerId) -> usize {
    node.client
        .local_closer_peers(peer.to_bytes(), 20)
        .await
        .expect("the event loop answers")
}

#[tokio::test]
async fn a_refused_peer_does_not_stay_in_the_routing_table() {
    let allowed = Node::spawn_default().await;
    let refused = Node::spawn_default().await;
    let only = allowed.peer;
    let mut filtered = Node::spawn(Opts {
        routing_filter: Some(RoutingFilter::new(move |p| *p == only)),
        ..Opts::default()
    })
    .await;
    refused.dial(&filtered).await;
    allowed.dial(&filtered).await;
    filtered
        .await_identified(&[refused.peer, allowed.peer])
        .await;
    // The allowed peer is in the table: at distance 0 from its own key, it is closer to it
    // than the filtered node.
    eventually("the allowed peer enters the routing table", || async {
        closer_to(&filtered, allowed.peer).await >= 1
    })
    .await;
    // The refused one is not (Kademlia adds it on identify; the filter takes it out when the
    // event loop sees the insertion). Without it, only the allowed peer can be closer to its
    // key than the filtered node.
    let key = |p: PeerId| KBucketKey::from(p);
    let allowed_is_closer = key(allowed.peer).distance(&key(refused.peer))
        < key(filtered.peer).distance(&key(refused.peer));
    let expected = usize::from(allowed_is_closer);
    let check = || async { closer_to(&filtered, refused.peer).await == expected };
    eventually("the refused peer leaves the routing table", check).await;
    // The refused peer's own table still holds the filtered node: the filter is local.
    eventually("the refused peer keeps the filtered node", || async {
        closer_to(&refused, filtered.peer).await >= 1
    })
    .await;
    for node in [allowed, refused, filtered] {
        node.stop().await;
    }
}
