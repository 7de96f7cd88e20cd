//! The connection guard between in-process nodes on loopback (`127.0.0.1/tcp/0`, mDNS, UPnP
//! and relays off): connection limits with their trusted and protected exemptions, bans, the
//! trusted-peer redial, peer exchange, and keep-alive of protected connections.
//!
//! All the nodes share 127.0.0.1, so the per-IP limit is set high except where it is tested.
//! Every wait is bounded by [`WAIT`] and ends on an event or a reply; nothing sleeps to let time
//! pass.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use rhizo_net::{
    Keypair, MAX_PEX_RESPONSE_BYTES, Multiaddr, NetEvent, NetLimits, PeerId, ResponseChannel,
};

mod support;
use support::{Node, Opts, WAIT, roomy};

/// A loopback address nothing listens on any more (a node bound it and stopped).
async fn vacated_addr() -> Multiaddr {
    let node = Node::spawn_default().await;
    let addr = node.addr.clone();
    node.stop().await;
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inbound_turns_away_the_third_peer_but_admits_protected_and_trusted_ones() {
    // `t2` is trusted by `a`, at an address where it is not (yet) found: `a`'s own dial fails,
    // so `t2` arrives as an inbound connection.
    let t2_key = Keypair::generate_ed25519();
    let t2_peer = t2_key.public().to_peer_id();
    let stale = vacated_addr().await.with(Protocol::P2p(t2_peer));
    let mut a = Node::spawn(Opts {
        limits: NetLimits {
            max_inbound: 2,
            ..roomy()
        },
        trusted: vec![stale],
        ..Opts::default()
    })
    .await;
    let b = Node::spawn_default().await;
    let c = Node::spawn_default().await;
    let mut d = Node::spawn_default().await;
    let t = Node::spawn_default().await;
    let t2 = Node::spawn(Opts {
        keypair: t2_key,
        ..Opts::default()
    })
    .await;

    b.dial(&a).await;
    a.connected(b.peer).await;
    c.dial(&a).await;
    a.connected(c.peer).await;

    // The third inbound peer is turned away once its handshake shows who it is.
    let denied_before = a.denied().await;
    d.dial(&a).await;
    d.turned_away(a.peer).await;
    assert_eq!(a.denied().await, denied_before + 1);
    assert_eq!(a.connections_to(d.peer).await, 0);
    // The first two stay.
    assert!(a.connections_to(b.peer).await >= 1);
    assert!(a.connections_to(c.peer).await >= 1);

    // A protected peer (an open conversation) is admitted beyond the limit.
    a.client.set_protected(vec![t.peer]).await.expect("protect");
    t.dial(&a).await;
    a.connected(t.peer).await;
    // So is a trusted one.
    t2.dial(&a).await;
    a.connected(t2.peer).await;
    assert!(a.connections_to(t.peer).await >= 1);
    assert!(a.connections_to(t2.peer).await >= 1);
    let stats = a.client.stats().await.expect("stats");
    assert_eq!(stats.connections_denied, denied_before + 1);
    assert!(stats.open_inbound >= 4, "{stats:?}");

    for node in [a, b, c, d, t, t2] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_outbound_zero_still_dials_trusted_peers() {
    let mut trusted = Node::spawn_default().await;
    let other = Node::spawn_default().await;
    let a = Node::spawn(Opts {
        limits: NetLimits {
            max_outbound: 0,
            ..roomy()
        },
        trusted: vec![trusted.dialable()],
        ..Opts::default()
    })
    .await;
    // The trusted peer is dialled at start, limit or not.
    trusted.connected(a.peer).await;
    assert!(a.connections_to(trusted.peer).await >= 1);
    // Any other dial is refused before it starts.
    assert!(a.client.dial(other.dialable()).await.is_err());
    assert_eq!(a.connections_to(other.peer).await, 0);
    assert!(a.denied().await >= 1);
    let stats = a.client.stats().await.expect("stats");
    assert!(stats.open_outbound >= 1, "{stats:?}");

    for node in [a, trusted, other] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_per_ip_counts_every_peer_on_one_address() {
    let mut a = Node::spawn(Opts {
        limits: NetLimits {
            max_per_ip: 2,
            ..NetLimits::default()
        },
        ..Opts::default()
    })
    .await;
    let b = Node::spawn_default().await;
    let c = Node::spawn_default().await;
    let mut d = Node::spawn_default().await;

    b.dial(&a).await;
    a.connected(b.peer).await;
    c.dial(&a).await;
    a.connected(c.peer).await;

    // A third connection from 127.0.0.1 is refused before its handshake.
    let denied_before = a.denied().await;
    d.dial(&a).await;
    d.turned_away(a.peer).await;
    assert_eq!(a.denied().await, denied_before + 1);
    assert_eq!(a.connections_to(d.peer).await, 0);
    assert!(a.connections_to(b.peer).await >= 1);
    assert!(a.connections_to(c.peer).await >= 1);

    for node in [a, b, c, d] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_peer_disconnects_and_refuses_until_unbanned() {
    let mut a = Node::spawn_default().await;
    let mut b = Node::spawn_default().await;
    b.dial(&a).await;
    a.connected(b.peer).await;

    let denied_before = a.denied().await;
    a.client.ban_peer(b.peer, None).await.expect("ban");
    a.disconnected(b.peer).await;
    b.disconnected(a.peer).await;
    let bans = a.client.bans().await.expect("bans");
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].target, b.peer.to_base58());
    assert_eq!(bans[0].until, None);

    // It cannot come back (its Kademlia may try as well: every attempt is refused), and this
    // node does not dial it either.
    b.dial(&a).await;
    b.turned_away(a.peer).await;
    assert!(a.denied().await > denied_before);
    assert_eq!(a.connections_to(b.peer).await, 0);
    assert!(a.client.dial(b.dialable()).await.is_err());

    // Unbanned, it connects again.
    a.client.unban_peer(b.peer).await.expect("unban");
    assert!(a.client.bans().await.expect("bans").is_empty());
    b.dial(&a).await;
    a.connected(b.peer).await;

    // A ban that ends: listed with the seconds left.
    let until = std::time::Instant::now() + Duration::from_secs(3600);
    a.client.ban_peer(b.peer, Some(until)).await.expect("ban");
    a.disconnected(b.peer).await;
    let bans = a.client.bans().await.expect("bans");
    assert!(matches!(bans[0].until, Some(3599 | 3600)), "{bans:?}");
    // `disconnect` of a peer that is not connected says so.
    assert!(!a.client.disconnect(b.peer).await.expect("disconnect"));

    for node in [a, b] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_cidr_closes_and_refuses_the_range() {
    let mut a = Node::spawn_default().await;
    let b = Node::spawn_default().await;
    let mut c = Node::spawn_default().await;
    b.dial(&a).await;
    a.connected(b.peer).await;

    let loopback: ipnet::IpNet = "127.0.0.0/8".parse().expect("cidr");
    a.client.ban_cidr(loopback).await.expect("ban");
    // The existing connection from the range closes.
    a.disconnected(b.peer).await;
    let bans = a.client.bans().await.expect("bans");
    assert!(
        bans.iter()
            .any(|b| b.target == "127.0.0.0/8" && b.until.is_none())
    );

    // New inbound connections from it are refused before their handshake.
    let denied_before = a.denied().await;
    c.dial(&a).await;
    c.turned_away(a.peer).await;
    assert!(a.denied().await > denied_before);
    assert_eq!(a.connections_to(c.peer).await, 0);
    // And this node does not dial into it.
    assert!(a.client.dial(c.dialable()).await.is_err());

    a.client.unban_cidr(loopback).await.expect("unban");
    c.dial(&a).await;
    a.connected(c.peer).await;

    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_peer_is_redialled_after_it_restarts() {
    let b_key = Keypair::generate_ed25519();
    let b = Node::spawn(Opts {
        keypair: b_key.clone(),
        ..Opts::default()
    })
    .await;
    let b_peer = b.peer;
    let b_addr = b.addr.clone();
    let mut a = Node::spawn(Opts {
        trusted: vec![b.dialable()],
        ..Opts::default()
    })
    .await;
    a.connected(b_peer).await;

    // The remote goes away and comes back on the same port.
    b.stop().await;
    a.disconnected(b_peer).await;
    let restarted_at = tokio::time::Instant::now();
    let b = Node::spawn(Opts {
        keypair: b_key,
        listen: Some(b_addr),
        ..Opts::default()
    })
    .await;
    // Redialled within the first backoff steps (5 s, then 10 s), by `a` on its own.
    a.connected(b_peer).await;
    assert!(restarted_at.elapsed() < WAIT);

    // Disconnected by hand, it is redialled too.
    assert!(a.client.disconnect(b_peer).await.expect("disconnect"));
    a.disconnected(b_peer).await;
    a.connected(b_peer).await;

    for node in [a, b] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pex_round_trip_and_kad_requests_are_attributed() {
    let mut a = Node::spawn_default().await;
    let b = Node::spawn_default().await;
    b.dial(&a).await;
    a.connected(b.peer).await;

    // `b` looks itself up through `a` on first contact: `a` learns who asked.
    let asker = a
        .next(|e| match e {
            NetEvent::InboundKadRequest { peer } => Some(peer),
            _ => None,
        })
        .await;
    assert_eq!(asker, b.peer);

    let client = b.client.clone();
    let a_peer = a.peer;
    let request = tokio::spawn(async move { client.pex_request(a_peer).await });
    let (from, channel): (PeerId, ResponseChannel<Vec<u8>>) = a
        .next(|e| match e {
            NetEvent::InboundPex { peer, channel } => Some((peer, channel)),
            _ => None,
        })
        .await;
    assert_eq!(from, b.peer);
    a.client
        .respond_pex(channel, b"a sample of peers".to_vec())
        .await
        .expect("respond");
    let answer = tokio::time::timeout(WAIT, request)
        .await
        .expect("bounded")
        .expect("task")
        .expect("pex answer");
    assert_eq!(answer, b"a sample of peers");

    // An answer over the limit is not sent: the requester sees the request fail.
    let client = b.client.clone();
    let request = tokio::spawn(async move { client.pex_request(a_peer).await });
    let channel = a
        .next(|e| match e {
            NetEvent::InboundPex { channel, .. } => Some(channel),
            _ => None,
        })
        .await;
    a.client
        .respond_pex(channel, vec![0; MAX_PEX_RESPONSE_BYTES + 1])
        .await
        .expect("respond");
    let failed = tokio::time::timeout(WAIT, request)
        .await
        .expect("bounded")
        .expect("task");
    assert!(failed.is_err(), "{failed:?}");

    // Addresses learnt by peer exchange go to Kademlia, at most 8 per call.
    let learnt = PeerId::random();
    let addrs: Vec<Multiaddr> = (1..=10u16)
        .map(|i| {
            format!("/ip4/127.0.0.1/tcp/{i}")
                .parse()
                .expect("multiaddr")
        })
        .collect();
    assert_eq!(
        b.client
            .add_addresses(learnt, addrs)
            .await
            .expect("add addresses"),
        8
    );
    let in_table = b
        .client
        .peers()
        .await
        .expect("peers")
        .into_iter()
        .find(|p| p.peer_id == learnt)
        .expect("in the routing table");
    assert!(in_table.in_routing_table);
    assert!(in_table.addrs.len() <= 8);

    for node in [a, b] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_connections_outlive_the_idle_timeout() {
    let mut a = Node::spawn(Opts {
        idle: Duration::from_secs(1),
        ..Opts::default()
    })
    .await;
    let b = Node::spawn_default().await;
    let mut c = Node::spawn_default().await;

    b.dial(&a).await;
    a.connected(b.peer).await;
    // Protected once connected: the open connection's handler learns it.
    a.client.set_protected(vec![b.peer]).await.expect("protect");
    c.dial(&a).await;
    a.connected(c.peer).await;

    // The unprotected connection, opened after the protected one, closes for idleness...
    a.disconnected(c.peer).await;
    c.disconnected(a.peer).await;
    // ...and again, for a full second idle period the protected one has outlived.
    c.dial(&a).await;
    a.connected(c.peer).await;
    a.disconnected(c.peer).await;
    assert!(a.connections_to(b.peer).await >= 1);

    // Unprotected, it closes like any other.
    a.client.set_protected(Vec::new()).await.expect("unprotect");
    a.disconnected(b.peer).await;

    for node in [a, b, c] {
        node.stop().await;
    }
}
