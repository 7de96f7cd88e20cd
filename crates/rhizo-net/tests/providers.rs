//! Provider records as a hostile peer sees them: a plain libp2p Kademlia node (not rhizo-net)
//! announces itself for an oversized key and for more keys than a rhizo node keeps. The rhizo
//! node refuses the first, keeps exactly its bound of the others, and stays responsive.
//!
//! Everything on 127.0.0.1; every wait is bounded by [`WAIT`].

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    SwarmBuilder, kad,
    kad::store::{MemoryStore, MemoryStoreConfig},
    noise, tcp, yamux,
};
use rhizo_net::{
    KAD_PROTOCOL, Keypair, NetConfig, NetEvent,
    behaviour::{MAX_PROVIDER_KEY_BYTES, MAX_PROVIDER_KEYS},
};

/// Upper bound of every wait in this test.
const WAIT: Duration = Duration::from_secs(120);
/// Keys the hostile peer announces: more than the rhizo node keeps.
const FLOOD_KEYS: usize = MAX_PROVIDER_KEYS + 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_flood_is_bounded_and_an_oversized_key_refused() {
    // The rhizo node.
    let keypair = Keypair::generate_ed25519();
    let rhizo_peer = keypair.public().to_peer_id();
    let (client, mut events, event_loop) = rhizo_net::start(NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")],
        ..NetConfig::new(keypair)
    })
    .expect("network starts");
    let event_loop = tokio::spawn(event_loop.run());
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NetEvent::Listening { addr }) = events.recv().await {
                return addr;
            }
        }
    })
    .await
    .expect("listening");
    tokio::spawn(async move { while events.recv().await.is_some() {} });

    // The hostile peer: stock libp2p Kademlia on rhizo's protocol id, allowed to provide more
    // keys than the default.
    let mut swarm =
        SwarmBuilder::with_existing_identity(libp2p::identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|key| {
                let peer = key.public().to_peer_id();
                let store = MemoryStore::with_config(
                    peer,
                    MemoryStoreConfig {
                        max_provided_keys: FLOOD_KEYS + 10,
                        ..Default::default()
                    },
                );
                let mut kad =
                    kad::Behaviour::with_config(peer, store, kad::Config::new(KAD_PROTOCOL));
                kad.set_mode(Some(kad::Mode::Server));
                kad
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
    swarm.behaviour_mut().add_address(&rhizo_peer, addr);

    let oversized = vec![7u8; MAX_PROVIDER_KEY_BYTES + 20];
    let mut pending = 0usize;
    for key in std::iter::once(oversized).chain((0..FLOOD_KEYS).map(|i| {
        let mut key = vec![0x12, 0x20];
        key.extend((i as u64).to_be_bytes());
        key.extend([0u8; 24]);
        key
    })) {
        swarm
            .behaviour_mut()
            .start_providing(kad::RecordKey::new(&key))
            .expect("the hostile store has room");
        pending += 1;
    }
    // Drive the hostile swarm until every announcement query has finished.
    tokio::time::timeout(WAIT, async {
        while pending > 0 {
            if let Some(libp2p::swarm::SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::StartProviding(_),
                step,
                ..
            })) = swarm.next().await
                && step.last
            {
                pending -= 1;
            }
        }
    })
    .await
    .expect("announcements finish within the bounded wait");

    // ADD_PROVIDER has no answer: wait for the rhizo node to have handled all of them.
    let stats = tokio::time::timeout(WAIT, async {
        loop {
            // Keep the hostile swarm's connection serviced while polling.
            tokio::select! {
                _ = swarm.next() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    let stats = client.stats().await.expect("stats");
                    if stats.providers_stored + stats.records_rejected >= (FLOOD_KEYS + 1) as u64 {
                        return stats;
                    }
                }
            }
        }
    })
    .await
    .expect("every announcement handled within the bounded wait");
    assert_eq!(
        stats.providers_stored, MAX_PROVIDER_KEYS as u64,
        "exactly the bound is kept"
    );
    assert_eq!(
        stats.records_rejected,
        (FLOOD_KEYS + 1 - MAX_PROVIDER_KEYS) as u64,
        "the oversized key and the keys beyond the bound are refused"
    );
    // Still answering.
    assert!(client.info().await.is_ok());
    let _ = client.shutdown().await;
    let _ = tokio::time::timeout(WAIT, event_loop).await;
}
