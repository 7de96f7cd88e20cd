//! Two in-process nodes on loopback (`127.0.0.1/tcp/0`, mDNS off): a replica, and alice's
//! devices fetching from it over `/rhizo/mailbox/1` through the node's mailbox client. Several
//! devices share the mailbox; a revoked one is refused.

use std::time::Duration;

use rhizo_core::{
    envelope::{DeliveryReceipt, ReceiptEntry, ReceiptStatus, SecureMessage},
    mailbox::{MailboxRequest, MailboxResponse},
};
use rhizo_engine::mailbox::test_support::TestUser as User;
use rhizo_net::{ClosestPeer, Keypair, Multiaddr, NetConfig, NetEvent};
use rhizo_store::{Db, DbConfig, Store, mailbox::MailboxQuota};

use super::*;
use crate::clock::{Clock, SystemClock};

/// Upper bound of every wait here.
const WAIT: Duration = Duration::from_secs(60);

fn settings() -> MailboxSettings {
    MailboxSettings {
        ttl_secs: 3600,
        poll: Duration::from_secs(3600),
        replicate: Duration::from_secs(3600),
        quota: MailboxQuota::default(),
    }
}

/// A node with its own in-memory database; listening on loopback, it answers mailbox requests
/// as a replica. Returns its mailbox service and, when listening, where to reach it.
async fn node(listen: bool) -> (Mailbox, Option<ClosestPeer>) {
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let config = NetConfig {
        listen: if listen {
            vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
        } else {
            Vec::new()
        },
        mdns: false,
        ..NetConfig::new(keypair)
    };
    let (client, mut events, event_loop) = rhizo_net::start(config).unwrap();
    tokio::spawn(event_loop.run());
    let db = Db::start(Store::open_in_memory().unwrap(), DbConfig::default()).unwrap();
    let mailbox = Mailbox::new(db, client.clone(), peer, settings(), Arc::new(SystemClock));
    if !listen {
        return (mailbox, None);
    }
    let addr: Multiaddr = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NetEvent::Listening { addr }) = events.recv().await {
                return addr;
            }
        }
    })
    .await
    .expect("the listener is bound");
    let replica = mailbox.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetEvent::InboundMailbox {
                peer,
                payload,
                channel,
            } = event
            {
                let answer = match replica.try_admit() {
                    Ok(permit) => replica.handle_inbound(permit, peer, payload).await,
                    Err(busy) => busy,
                };
                let _ = client.respond_mailbox(channel, answer).await;
            }
        }
    });
    let at = ClosestPeer {
        peer,
        addrs: vec![addr],
    };
    (mailbox, Some(at))
}

/// Bob's envelope for alice, stored on the replica at `at` through `via`'s network client.
async fn store_for_alice(via: &Mailbox, at: &ClosestPeer, alice: &User, now: i64) -> Vec<u8> {
    let bob = User::new(2);
    let envelope = bob.envelope(alice, 1, now);
    let store = MailboxRequest::Store {
        recipient: alice.uid(),
        envelope: envelope.clone().into(),
        ttl_secs: 0,
        sender_cert: bob.cert(),
    };
    let stored = via
        .inner
        .client
        .mailbox_request(at.peer, at.addrs.clone(), store.encode())
        .await
        .unwrap();
    assert!(matches!(
        MailboxResponse::decode(&stored).unwrap(),
        MailboxResponse::Stored { .. }
    ));
    envelope
}

/// `device`'s signed receipt: it has `envelope`.
fn receipt_by(device: &rhizo_core::DeviceKey, envelope: &[u8], now: i64) -> DeliveryReceipt {
    let message = SecureMessage::decode(envelope).unwrap();
    let mut receipt = DeliveryReceipt {
        recipient_device: device.public(),
        timestamp: u64::try_from(now).unwrap(),
        entries: vec![ReceiptEntry::for_envelope(
            &message,
            ReceiptStatus::Delivered,
        )],
        signature: [0; 64],
    };
    receipt.sign(device).unwrap();
    receipt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_by_a_replica_over_the_network() {
    let alice = User::new(1);
    let (a1, a2) = (&alice.device, &alice.linked(1));
    let (_replica, at) = node(true).await;
    let at = at.unwrap();
    let replica = Source::Remote(at.clone());
    let (devices, _) = node(false).await;
    let now = SystemClock.now_ms();
    let v1 = alice.device_list_of(1, &[a1, a2], now);
    let v2 = alice.device_list_of(2, &[a1], now);
    let uid = alice.uid();
    let fetch = |device, list| devices.fetch_page(&replica, device, &uid, list, 0);

    // a2 polls first (the replica learns both devices), then bob stores for alice.
    assert!(fetch(a2, &v1).await.unwrap().entries.is_empty());
    let envelope = store_for_alice(&devices, &at, &alice, now).await;
    assert_eq!(fetch(a2, &v1).await.unwrap().entries.len(), 1);

    // a1 revokes a2 and fetches with the new list: the replica notes version 2.
    assert_eq!(fetch(a1, &v2).await.unwrap().entries.len(), 1);
    // a2, still running, with the list that named it: refused.
    let refused = fetch(a2, &v1).await.unwrap_err();
    assert!(refused.contains("stale device list"), "{refused}");
    let refused = fetch(a2, &v2).await.unwrap_err();
    assert!(
        refused.contains("not in the UID's device list"),
        "{refused}"
    );

    // a1's receipt is the last one the entry waits for (a2 is revoked): deleted.
    let receipt = receipt_by(a1, &envelope, now);
    assert_eq!(devices.delete(&replica, &uid, &v2, &receipt).await, Ok(1));
    assert!(fetch(a1, &v2).await.unwrap().entries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_table_keeps_an_entry_for_our_other_device() {
    // a1's node is one of its own mailbox's replicas: it fetches from its own table (`Local`)
    // by the same per-device rule, and a2 still gets the entry from it over the network.
    let alice = User::new(1);
    let (a1, a2) = (&alice.device, &alice.linked(1));
    let (own, at) = node(true).await;
    let at = at.unwrap();
    let (other, _) = node(false).await;
    let now = SystemClock.now_ms();
    let list = alice.device_list_of(1, &[a1, a2], now);
    let uid = alice.uid();
    let local = |device| own.fetch_page(&Source::Local, device, &uid, &list, 0);
    // The list is noted (a first poll), then bob's envelope is stored.
    assert!(local(a1).await.unwrap().entries.is_empty());
    let envelope = store_for_alice(&other, &at, &alice, now).await;
    assert_eq!(local(a1).await.unwrap().entries.len(), 1);
    let receipt = receipt_by(a1, &envelope, now);
    assert_eq!(
        own.delete(&Source::Local, &uid, &list, &receipt).await,
        Ok(1)
    );
    assert!(local(a1).await.unwrap().entries.is_empty());
    // Kept for a2, which fetches it from a1's node.
    let page = other
        .fetch_page(&Source::Remote(at), a2, &uid, &list, 0)
        .await;
    assert_eq!(page.unwrap().entries.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_device_is_refused_by_a_replica_over_the_network() {
    // Issue 15: the replica's fetch check (rhizo-engine `mailbox::authorize`, rhizo-core's
    // `FetchRequest::verify`) refuses a device certified by another root, under either list.
    let (alice, mallory) = (User::new(1), User::new(3));
    let intruder = mallory.linked(1);
    let (_replica, at) = node(true).await;
    let at = at.unwrap();
    let replica = Source::Remote(at.clone());
    let (devices, _) = node(false).await;
    let now = SystemClock.now_ms();
    let uid = alice.uid();
    let genuine = alice.device_list_of(1, &[&alice.device], now);
    assert!(
        devices
            .fetch_page(&replica, &alice.device, &uid, &genuine, 0)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    store_for_alice(&devices, &at, &alice, now).await;
    // Mallory's own list (her root) for alice's mailbox.
    let hers = mallory.device_list_of(2, &[&intruder], now);
    let refused = devices
        .fetch_page(&replica, &intruder, &uid, &hers, 0)
        .await
        .unwrap_err();
    assert!(refused.contains("another UID"), "{refused}");
    // Alice's root naming a device mallory's root certified.
    let forged = alice.forged_device_list(&mallory, &intruder, now);
    let refused = devices
        .fetch_page(&replica, &intruder, &uid, &forged, 0)
        .await
        .unwrap_err();
    assert!(refused.contains("invalid device list"), "{refused}");
    // Nothing was handed out: the entry is still there for alice.
    let page = devices
        .fetch_page(&replica, &alice.device, &uid, &genuine, 0)
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
}
