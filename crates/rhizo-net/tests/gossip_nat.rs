//! Gossipsub broadcast with node-side validation, and reachability through a circuit relay,
//! between in-process nodes on loopback (`127.0.0.1/tcp/0`, mDNS and UPnP off).
//!
//! Every wait is bounded by [`WAIT`] and ends on an event, a reply, or a condition polled on the
//! node's own state (the gossip mesh, which has no event); nothing sleeps to let time pass.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use rhizo_net::{
    GossipVerdict, MAX_GOSSIP_DATA_BYTES, Multiaddr, NetError, NetEvent, PeerId, gossip::message_id,
};
use tokio::sync::mpsc;

mod support;
use support::{Node, Opts, WAIT, eventually};

/// The gossip topic of the tests (a channel topic, so it gets channel score parameters).
const TOPIC: &str = "rhizo/channel/test";
/// Announced instead of the listeners by the gossip nodes: a DNS address, which this transport
/// cannot dial (no DNS resolver), so no node learns another's real address through identify or
/// Kademlia and the topology stays exactly the one the test builds. Nothing is sent anywhere.
const UNDIALLABLE: &str = "/dns4/unreachable.invalid/tcp/1";

/// One gossip message as a node saw it.
#[derive(Debug)]
struct Seen {
    node: usize,
    data: Vec<u8>,
    source: PeerId,
}

/// Hands a node's events to a task that reports a verdict on every gossip message (`Reject`
/// for data starting with `bad` when `rejects`, `Accept` otherwise) and then tells the test.
fn drain(node: &mut Node, index: usize, rejects: bool, seen: mpsc::Sender<Seen>) {
    // Events before the listener (connections) mean nothing here.
    let (_, mut events) = node.take_events();
    let client = node.client.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetEvent::GossipMessage {
                propagation_source,
                message_id: id,
                topic,
                data,
            } = event
            {
                assert_eq!(topic, TOPIC);
                assert_eq!(id, message_id(&data), "content-addressed id");
                let verdict = if rejects && data.starts_with(b"bad") {
                    GossipVerdict::Reject
                } else {
                    GossipVerdict::Accept
                };
                client
                    .report_validation(id, propagation_source, verdict)
                    .await
                    .expect("message held for validation");
                let seen_by = Seen {
                    node: index,
                    data,
                    source: propagation_source,
                };
                if seen.send(seen_by).await.is_err() {
                    return;
                }
            }
        }
    });
}

/// Collects what the nodes saw until `done` holds for the counts (per node and data).
async fn collect_until(
    seen: &mut mpsc::Receiver<Seen>,
    counts: &mut HashMap<(usize, Vec<u8>), Vec<PeerId>>,
    done: impl Fn(&HashMap<(usize, Vec<u8>), Vec<PeerId>>) -> bool,
) {
    let wait = async {
        while !done(counts) {
            let s = seen.recv().await.expect("drain tasks alive");
            counts.entry((s.node, s.data)).or_default().push(s.source);
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("gossip delivered within the bounded wait");
}

/// Six nodes in a star (hub 0, leaves 1–5, each leaf connected to the hub only). Leaf 1
/// publishes; the hub forwards only what it accepts; every other node gets each accepted
/// message exactly once, and nothing the hub rejected.
#[tokio::test]
async fn gossip_reaches_every_node_once_and_rejected_messages_stop() {
    let undiallable: Multiaddr = UNDIALLABLE.parse().expect("multiaddr");
    let mut nodes = vec![
        Node::spawn(Opts {
            announce: vec![undiallable.clone()],
            ..Opts::default()
        })
        .await,
    ];
    let hub_addr = nodes[0].dialable();
    for _ in 1..6 {
        nodes.push(
            Node::spawn(Opts {
                bootstrap: vec![hub_addr.clone()],
                announce: vec![undiallable.clone()],
                ..Opts::default()
            })
            .await,
        );
    }
    let hub = nodes[0].peer;
    let mut leaves: Vec<PeerId> = nodes[1..].iter().map(|n| n.peer).collect();
    leaves.sort();

    // Nobody subscribed yet: publishing has no one to go to.
    match nodes[1]
        .client
        .publish(TOPIC.into(), b"early".to_vec())
        .await
    {
        Err(NetError::Gossip(reason)) => assert!(reason.contains("insufficient peers"), "{reason}"),
        other => panic!("publish without subscribers: {other:?}"),
    }

    for node in &nodes {
        assert!(
            node.client
                .subscribe(TOPIC.into())
                .await
                .expect("subscribe")
        );
        assert!(!node.client.subscribe(TOPIC.into()).await.expect("again"));
    }
    assert!(
        nodes[0]
            .client
            .subscribe(String::from_utf8(vec![b'x'; 300]).expect("utf-8"))
            .await
            .is_err(),
        "over-long topic refused"
    );

    // The mesh forms on the gossipsub heartbeat: the hub grafts every leaf, each leaf the hub.
    let hub_client = nodes[0].client.clone();
    eventually("hub mesh holds every leaf", || {
        let (client, leaves) = (hub_client.clone(), leaves.clone());
        async move { client.gossip_peers(TOPIC.into()).await.expect("peers") == leaves }
    })
    .await;
    for node in &nodes[1..] {
        let client = node.client.clone();
        eventually("leaf mesh holds the hub", || {
            let client = client.clone();
            async move { client.gossip_peers(TOPIC.into()).await.expect("peers") == vec![hub] }
        })
        .await;
        // The star is exact: a leaf is connected to the hub only.
        let connected: Vec<PeerId> = node
            .client
            .peers()
            .await
            .expect("peers")
            .into_iter()
            .filter(|p| p.connections > 0)
            .map(|p| p.peer_id)
            .collect();
        assert_eq!(connected, vec![hub], "leaf {} connections", node.peer);
    }

    let (seen_tx, mut seen) = mpsc::channel(256);
    for (index, node) in nodes.iter_mut().enumerate() {
        drain(node, index, index == 0, seen_tx.clone());
    }
    drop(seen_tx);
    let mut counts: HashMap<(usize, Vec<u8>), Vec<PeerId>> = HashMap::new();
    let receivers = [0, 2, 3, 4, 5];

    // 1. A valid post from leaf 1 reaches the hub and, after the hub accepts it, leaves 2–5.
    let first = b"post one".to_vec();
    let id = nodes[1]
        .client
        .publish(TOPIC.into(), first.clone())
        .await
        .expect("publish");
    assert_eq!(id, message_id(&first));
    collect_until(&mut seen, &mut counts, |c| {
        receivers
            .iter()
            .all(|n| c.contains_key(&(*n, first.clone())))
    })
    .await;
    // The same content again is the same message: refused as a duplicate.
    assert!(matches!(
        nodes[1].client.publish(TOPIC.into(), first.clone()).await,
        Err(NetError::Gossip(_))
    ));
    assert!(matches!(
        nodes[1]
            .client
            .publish(TOPIC.into(), vec![0; MAX_GOSSIP_DATA_BYTES + 1])
            .await,
        Err(NetError::Gossip(_))
    ));

    // 2. A post the hub rejects, then a valid one behind it on the same path: once the valid
    //    one has reached every leaf, the rejected one would have been ahead of it.
    let bad = b"bad post".to_vec();
    let second = b"post two".to_vec();
    nodes[1]
        .client
        .publish(TOPIC.into(), bad.clone())
        .await
        .expect("publish bad");
    nodes[1]
        .client
        .publish(TOPIC.into(), second.clone())
        .await
        .expect("publish second");
    collect_until(&mut seen, &mut counts, |c| {
        receivers
            .iter()
            .all(|n| c.contains_key(&(*n, second.clone())))
    })
    .await;

    for node in 0..6 {
        let got = |data: &[u8]| counts.get(&(node, data.to_vec())).map_or(0, Vec::len);
        let expected = usize::from(node != 1); // the publisher does not receive its own posts
        assert_eq!(got(&first), expected, "node {node}: first post");
        assert_eq!(got(&second), expected, "node {node}: second post");
        let expected_bad = usize::from(node == 0); // only the hub, which rejected it
        assert_eq!(got(&bad), expected_bad, "node {node}: rejected post");
    }
    for node in 2..6 {
        assert_eq!(
            counts[&(node, first.clone())],
            vec![hub],
            "forwarded by the hub"
        );
    }
    assert_eq!(counts[&(0, bad.clone())], vec![nodes[1].peer]);

    assert!(
        nodes[3]
            .client
            .unsubscribe(TOPIC.into())
            .await
            .expect("unsubscribe")
    );
    assert!(
        !nodes[3]
            .client
            .unsubscribe(TOPIC.into())
            .await
            .expect("again")
    );

    for node in nodes {
        node.stop().await;
    }
}

/// R relays; B, which has no listener of its own, reserves a slot on R and listens on a
/// `/p2p-circuit` address; A (no listener either), which knows only that address, reaches B
/// through R with a `/rhizo/msg/1` request.
#[tokio::test]
async fn a_node_is_reachable_through_a_relay_reservation() {
    let relay = Node::spawn(Opts {
        relay_server: true,
        ..Opts::default()
    })
    .await;
    // A reservation hands out the relay's external addresses; on loopback nothing confirms
    // one, so declare the bound address.
    relay
        .client
        .add_external_address(relay.addr.clone())
        .await
        .expect("external address");
    let relay_reach = relay.client.reachability().await.expect("reachability");
    assert!(relay_reach.relay_server);
    assert!(!relay_reach.upnp);
    assert_eq!(relay_reach.public_addrs, vec![relay.addr.clone()]);
    assert_eq!(relay_reach.describe(), "public");

    // B listens nowhere itself: the relay is its only way in, and nobody (R included) learns a
    // direct address of it.
    let mut b = Node::spawn(Opts {
        relays: vec![relay.dialable()],
        listen: None,
        ..Opts::default()
    })
    .await;
    // The reservation and the circuit listen address arrive in either order.
    let relay_peer = relay.peer;
    let (mut reserved, mut circuit) = (false, None);
    while !reserved || circuit.is_none() {
        match b
            .next(|e| match e {
                NetEvent::RelayReservation { relay, accepted } if relay == relay_peer => {
                    Some(Ok(accepted))
                }
                NetEvent::Listening { addr } if addr.iter().any(|p| p == Protocol::P2pCircuit) => {
                    Some(Err(addr))
                }
                _ => None,
            })
            .await
        {
            Ok(accepted) => {
                assert!(accepted, "reservation refused");
                reserved = true;
            }
            Err(addr) => circuit = Some(addr),
        }
    }
    let expected = relay
        .dialable()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b.peer));
    assert_eq!(circuit, Some(expected.clone()));

    let reach = b.client.reachability().await.expect("reachability");
    assert_eq!(reach.relayed_addrs, vec![expected.clone()]);
    assert!(reach.public_addrs.is_empty(), "{:?}", reach.public_addrs);
    assert!(!reach.relay_server);
    assert_eq!(reach.nat_status, "unknown");
    assert_eq!(reach.describe(), "via relay");

    // A listens nowhere either, so B cannot dial it back directly (through Kademlia or a hole
    // punch): the two can only meet through R.
    let mut a = Node::spawn(Opts {
        listen: None,
        ..Opts::default()
    })
    .await;
    let (client, to, via) = (a.client.clone(), b.peer, expected.clone());
    let request = tokio::spawn(async move {
        client
            .send_message(to, vec![via], b"hi via R".to_vec())
            .await
    });
    let (from, payload, channel) = b
        .next(|e| match e {
            NetEvent::InboundMessage {
                peer,
                payload,
                channel,
            } => Some((peer, payload, channel)),
            _ => None,
        })
        .await;
    assert_eq!(from, a.peer);
    assert_eq!(payload, b"hi via R");
    b.client
        .respond(channel, b"hello back".to_vec())
        .await
        .expect("respond");
    let answer = tokio::time::timeout(WAIT, request)
        .await
        .expect("bounded")
        .expect("task")
        .expect("response through the relay");
    assert_eq!(answer, b"hello back");
    // A's connection to B is the circuit through R.
    let b_peer = b.peer;
    let via = a
        .next(|e| match e {
            NetEvent::PeerConnected { peer, addr } if peer == b_peer => Some(addr),
            _ => None,
        })
        .await;
    assert!(via.iter().any(|p| p == Protocol::P2pCircuit), "{via}");

    // The relay goes away: B reports the reservation lost, and its circuit address is gone
    // (it retries in the background, with backoff).
    relay.stop().await;
    b.next(|e| match e {
        NetEvent::RelayReservation {
            relay,
            accepted: false,
        } if relay == relay_peer => Some(()),
        _ => None,
    })
    .await;
    let reach = b.client.reachability().await.expect("reachability");
    assert!(reach.relayed_addrs.is_empty(), "{:?}", reach.relayed_addrs);
    assert_eq!(reach.describe(), "unknown");

    a.stop().await;
    b.stop().await;
}
