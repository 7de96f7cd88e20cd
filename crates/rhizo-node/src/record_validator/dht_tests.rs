//! Issue 15: forged device lists offered over the DHT. Two in-process nodes on loopback
//! (`127.0.0.1/tcp/0`, mDNS off), both with the node's [`CoreRecordValidator`]: mallory's node
//! asks the holder to keep, under alice's device-list key, her own list, a list signed by
//! alice's root naming a device mallory's root certified, and alice's older version that still
//! names a revoked device. The holder refuses all three (its validator, on the blocking pool)
//! and keeps alice's newest list, which is all a lookup finds.

use std::{sync::Arc, time::Duration};

use rhizo_core::records::{ValidRecord, device_list_key, validate_record};
use rhizo_engine::mailbox::test_support::TestUser;
use rhizo_net::{Client, Keypair, Multiaddr, NetConfig, NetEvent, PeerId};

use super::CoreRecordValidator;

/// Upper bound of every wait here.
const WAIT: Duration = Duration::from_secs(60);

/// A node with the node's record validator, listening on loopback, knowing `known`.
async fn node(known: Vec<(PeerId, Vec<Multiaddr>)>) -> (Client, PeerId, Multiaddr) {
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let config = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        known_peers: known,
        mdns: false,
        record_validator: Arc::new(CoreRecordValidator),
        ..NetConfig::new(keypair)
    };
    let (client, mut events, event_loop) = rhizo_net::start(config).unwrap();
    tokio::spawn(event_loop.run());
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NetEvent::Listening { addr }) = events.recv().await {
                return addr;
            }
        }
    })
    .await
    .expect("the listener is bound");
    // The rest of the events are not needed; keep the channel drained.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (client, peer, addr)
}

/// Waits (bounded) until `holder` has refused `count` records in all.
async fn refused(holder: &Client, count: u64) {
    tokio::time::timeout(WAIT, async {
        loop {
            if holder.stats().await.unwrap().records_rejected >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the holder handled the record within the bounded wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_older_device_lists_are_refused_by_the_dht_nodes_that_hold_them() {
    let (alice, mallory) = (TestUser::new(1), TestUser::new(3));
    let (a1, a2) = (&alice.device, &alice.linked(1));
    let now_ms = crate::unix_now() * 1000;
    let key = device_list_key(&alice.uid()).to_vec();
    let v1 = alice.device_list_of(1, &[a1, a2], now_ms).to_vec();
    let v2 = alice.device_list_of(2, &[a1], now_ms).to_vec();

    let (holder, holder_peer, holder_addr) = node(Vec::new()).await;
    let (mallory_node, _, _) = node(vec![(holder_peer, vec![holder_addr])]).await;
    let put = |value: Vec<u8>| {
        let (client, key) = (mallory_node.clone(), key.clone());
        async move { client.put_record_to(key, value, vec![holder_peer]).await }
    };
    // Alice's newest list (a2 revoked), as her publisher put it.
    put(v2.clone()).await.expect("the genuine list is kept");
    let kept = || async { holder.local_record(key.clone()).await.unwrap() };
    // A put is answered before the holder has validated and stored it: wait (bounded).
    tokio::time::timeout(WAIT, async {
        while kept().await.as_deref() != Some(&v2[..]) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the holder stores the genuine list within the bounded wait");

    // Mallory's own list under alice's key; alice's root naming mallory's device; alice's
    // older version that names a2: each refused, whatever the put answers.
    let hers = mallory
        .device_list_of(9, &[&mallory.device], now_ms)
        .to_vec();
    let forged = alice
        .forged_device_list(&mallory, &mallory.linked(1), now_ms)
        .to_vec();
    let before = holder.stats().await.unwrap().records_rejected;
    for (i, value) in [hers, forged, v1].into_iter().enumerate() {
        let _ = put(value).await;
        refused(&holder, before + i as u64 + 1).await;
    }
    assert_eq!(
        kept().await.as_deref(),
        Some(&v2[..]),
        "still the genuine v2"
    );

    // A lookup finds alice's newest list only: version 2, a1 alone.
    let found = mallory_node.get_records(key.clone()).await.unwrap();
    let now = u64::try_from(crate::unix_now()).unwrap();
    let lists: Vec<(u64, usize)> = found
        .iter()
        .filter_map(|v| match validate_record(&key, v, now) {
            Ok(ValidRecord::DeviceList(list)) => Some((list.version(), list.devices().len())),
            _ => None,
        })
        .collect();
    assert_eq!(lists, vec![(2, 1)], "{} records found", found.len());
}
