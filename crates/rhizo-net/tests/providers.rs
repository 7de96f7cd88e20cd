//! Kademlia provider records between in-process nodes on loopback (`127.0.0.1/tcp/0`, mDNS
//! off): an announcement is kept by the peer it reached and found through that peer by a node
//! that came later, also after the provider stopped; bad keys are refused with an error; and a
//! stock libp2p Kademlia peer (not rhizo-net) that floods provider records gets no further than
//! the bounds (oversized key, keys per peer, keys in all).
//!
//! Every wait is bounded by [`WAIT`] and ends on an event or a reply; nothing sleeps to let
//! time pass. `ADD_PROVIDER` has no answer, so "the record is kept" is read from the keeping
//! node's counters each time it reports an inbound Kademlia request from the announcer.

use std::collections::HashSet;

use futures::StreamExt;
use libp2p::{Swarm, kad, kad::store::MemoryStore};
use rhizo_net::{
    Multiaddr, NetEvent, NetStats, PeerId,
    behaviour::{
        MAX_OWN_PROVIDED_KEYS, MAX_PROVIDER_KEY_BYTES, MAX_PROVIDER_KEYS,
        MAX_PROVIDER_KEYS_PER_PEER,
    },
};

mod support;
use support::{Node, Opts, WAIT, stock_kad_peer};

/// Announcements a flooding peer sends before it waits for the rhizo node to have handled
/// them: two inbound requests each (the lookup, then `ADD_PROVIDER`), well inside the node's
/// event channel, so that no report of one is dropped.
const FLOOD_BATCH: usize = 64;

/// A node with the default (refuse-all) record validator, bootstrapping from `bootstrap`.
async fn spawn_node(bootstrap: Vec<Multiaddr>) -> Node {
    Node::spawn(Opts {
        bootstrap,
        ..Opts::default()
    })
    .await
}

impl Node {
    /// Waits, on each inbound Kademlia request from `from`, until this node's counters satisfy
    /// `done`; returns them.
    async fn await_stats(&mut self, from: PeerId, done: impl Fn(&NetStats) -> bool) -> NetStats {
        loop {
            let stats = self.client.stats().await.expect("stats");
            if done(&stats) {
                return stats;
            }
            self.next(|e| match e {
                NetEvent::InboundKadRequest { peer } if peer == from => Some(()),
                _ => None,
            })
            .await;
        }
    }
}

/// A multihash-shaped key (0x12 0x20 ‖ 32 bytes), as rhizo's channel provider keys are.
fn provider_key(tag: u8, index: u32) -> Vec<u8> {
    let mut key = vec![0x12, 0x20, tag];
    key.extend(index.to_be_bytes());
    key.extend([0u8; 27]);
    key
}

#[tokio::test]
async fn a_record_is_found_through_the_peer_that_keeps_it_also_after_its_provider_stopped() {
    let mut a = spawn_node(Vec::new()).await;
    let key = provider_key(1, 0);
    // Alone, an announcement reaches nobody (the local record stays).
    assert_eq!(
        a.client
            .start_providing(provider_key(1, 1))
            .await
            .expect("announced"),
        0
    );

    let mut b = spawn_node(vec![a.dialable()]).await;
    a.await_identified(&[b.peer]).await;
    b.await_identified(&[a.peer]).await;
    assert_eq!(
        a.client
            .start_providing(key.clone())
            .await
            .expect("announced"),
        1,
        "handed to b, the one peer a knows"
    );
    let stored = b.await_stats(a.peer, |s| s.providers_stored >= 1).await;
    assert_eq!(stored.providers_stored, 1);
    assert_eq!(stored.provider_keys_held, 1);

    // C comes later and knows only B: the record is on B alone, and C finds A through it.
    let mut c = spawn_node(vec![b.dialable()]).await;
    c.await_identified(&[b.peer]).await;
    let found = c.client.get_providers(key.clone()).await.expect("lookup");
    assert_eq!(found, HashSet::from([a.peer]), "c finds a");
    assert_eq!(c.client.stats().await.expect("stats").providers_stored, 0);
    // A provider finds itself (its own store), and nobody provides another key.
    assert_eq!(
        a.client.get_providers(key.clone()).await.expect("lookup"),
        HashSet::from([a.peer])
    );
    assert!(
        c.client
            .get_providers(provider_key(1, 2))
            .await
            .expect("lookup")
            .is_empty()
    );

    // Stopping drops the local record at once (B does not tell A about A's own record).
    a.client.stop_providing(key.clone()).await.expect("stop");
    assert!(
        a.client
            .get_providers(key.clone())
            .await
            .expect("lookup")
            .is_empty()
    );

    // A gone, B still serves its record until it expires.
    let a_peer = a.peer;
    a.stop().await;
    let found = c.client.get_providers(key).await.expect("lookup");
    assert_eq!(found, HashSet::from([a_peer]), "the record outlives a");
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn bad_provider_keys_and_too_many_own_keys_are_refused_with_an_error() {
    let a = spawn_node(Vec::new()).await;
    for bad in [Vec::new(), vec![1; MAX_PROVIDER_KEY_BYTES + 1]] {
        let e = a
            .client
            .start_providing(bad.clone())
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("provider key"), "{e}");
        let e = a.client.get_providers(bad).await.expect_err("refused");
        assert!(e.to_string().contains("provider key"), "{e}");
    }
    let longest = vec![1; MAX_PROVIDER_KEY_BYTES];
    assert_eq!(a.client.start_providing(longest).await.expect("ok"), 0);
    for i in 1..MAX_OWN_PROVIDED_KEYS {
        a.client
            .start_providing(provider_key(2, i as u32))
            .await
            .expect("within the bound");
    }
    let e = a
        .client
        .start_providing(provider_key(3, 0))
        .await
        .expect_err("one key too many");
    assert!(e.to_string().contains("stop providing one first"), "{e}");
    // Announcing a key again is not a new key.
    assert_eq!(
        a.client
            .start_providing(provider_key(2, 1))
            .await
            .expect("again"),
        0
    );
    a.client
        .stop_providing(provider_key(2, 1))
        .await
        .expect("stop");
    assert_eq!(
        a.client
            .start_providing(provider_key(3, 0))
            .await
            .expect("room again"),
        0
    );
    a.stop().await;
}

/// Has `swarm` announce `keys` in batches of [`FLOOD_BATCH`]; after each batch, waits until
/// the rhizo node has handled every announcement sent so far (kept or refused, on top of
/// `handled_before`). Returns the rhizo node's counters at the end.
async fn flood(
    rhizo: &mut Node,
    swarm: &mut Swarm<kad::Behaviour<MemoryStore>>,
    keys: &[Vec<u8>],
    handled_before: u64,
) -> NetStats {
    let from = *swarm.local_peer_id();
    let mut stats = NetStats::default();
    let mut sent = 0u64;
    for batch in keys.chunks(FLOOD_BATCH) {
        let mut pending = 0usize;
        for key in batch {
            swarm
                .behaviour_mut()
                .start_providing(kad::RecordKey::new(key))
                .expect("the flooder's store has room");
            pending += 1;
        }
        sent += batch.len() as u64;
        let target = handled_before + sent;
        let handled = |s: &NetStats| s.providers_stored + s.providers_refused >= target;
        // Drive both sides until the flooder's queries have finished and the rhizo node has
        // handled them all.
        let wait = async {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => {
                        if let libp2p::swarm::SwarmEvent::Behaviour(
                            kad::Event::OutboundQueryProgressed {
                                result: kad::QueryResult::StartProviding(_),
                                step,
                                ..
                            },
                        ) = event
                            && step.last
                        {
                            pending -= 1;
                        }
                    }
                    event = rhizo.events.recv() => {
                        if let Some(NetEvent::InboundKadRequest { peer }) = event
                            && peer == from
                        {
                            stats = rhizo.client.stats().await.expect("stats");
                        }
                    }
                }
                if pending == 0 && handled(&stats) {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the batch is handled within the bounded wait");
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_flood_is_bounded_per_peer_and_in_all() {
    let mut rhizo = spawn_node(Vec::new()).await;
    let (peer, addr) = (rhizo.peer, rhizo.addr.clone());

    // One flooder: an oversized key, then more keys than one peer may hold.
    let mut first = stock_kad_peer(peer, addr.clone());
    let mut keys = vec![vec![7u8; MAX_PROVIDER_KEY_BYTES + 20]];
    keys.extend((0..MAX_PROVIDER_KEYS_PER_PEER + 40).map(|i| provider_key(0, i as u32)));
    let stats = flood(&mut rhizo, &mut first, &keys, 0).await;
    assert_eq!(
        stats.providers_stored, MAX_PROVIDER_KEYS_PER_PEER as u64,
        "one peer holds its share"
    );
    assert_eq!(
        stats.providers_refused, 41,
        "the oversized key and the keys beyond the share"
    );
    drop(first);

    // More flooders, each within its share, until the store is full.
    let flooders = MAX_PROVIDER_KEYS / MAX_PROVIDER_KEYS_PER_PEER;
    let mut handled = stats.providers_stored + stats.providers_refused;
    for tag in 1..flooders {
        let mut swarm = stock_kad_peer(peer, addr.clone());
        let keys: Vec<Vec<u8>> = (0..MAX_PROVIDER_KEYS_PER_PEER)
            .map(|i| provider_key(tag as u8, i as u32))
            .collect();
        let stats = flood(&mut rhizo, &mut swarm, &keys, handled).await;
        handled = stats.providers_stored + stats.providers_refused;
    }
    // The store is full: new keys are refused, a provider for a key held already is kept.
    let mut last = stock_kad_peer(peer, addr);
    let mut keys: Vec<Vec<u8>> = (0..10).map(|i| provider_key(200, i)).collect();
    keys.push(provider_key(1, 0));
    let stats = flood(&mut rhizo, &mut last, &keys, handled).await;
    assert_eq!(stats.provider_keys_held, MAX_PROVIDER_KEYS as u64);
    assert_eq!(stats.providers_stored, MAX_PROVIDER_KEYS as u64 + 1);
    assert_eq!(stats.providers_refused, 41 + 10);

    // Still answering, and its own announcements are not crowded out.
    assert!(rhizo.client.info().await.is_ok());
    rhizo
        .client
        .start_providing(provider_key(201, 0))
        .await
        .expect("own keys have their own room");
    rhizo.stop().await;
}
