//! Driver tests on tokio's paused clock: the node's timers move through simulated hours in
//! milliseconds, with a network whose event loop never runs (every call times out).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhizo_core::{DeviceKey, RootKey};
use rhizo_engine::{Me, contacts::peer_id_of_device};
use rhizo_store::{
    Store,
    messaging::{Contact, ContactDevice, ConversationRow, MessageRow, NewOutgoing},
};

use super::Messaging;
use crate::clock::{Clock, PausedClock};
use crate::mailbox::{Mailbox, MailboxSettings};

const START_MS: i64 = 1_800_000_000_000;

fn me(seed: u8) -> Me {
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed + 100; 32]);
    let certificate = root.certify_device(&device.public(), 1);
    Me {
        uid: root.public().uid(),
        root,
        device,
        certificate,
        name: Some("alice".into()),
    }
}

/// Alice's messaging service on an in-memory store and a paused clock, with bob as a contact
/// and one message to him queued; the network's event loop is returned, never run.
fn alice_with_a_queued_message(
    clock: Arc<PausedClock>,
) -> (Messaging, Arc<Mutex<Store>>, i64, rhizo_net::EventLoop) {
    let (client, _events, event_loop) = rhizo_net::start(rhizo_net::NetConfig::new(
        rhizo_net::Keypair::generate_ed25519(),
    ))
    .unwrap();
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let mailbox = Mailbox::new(
        store.clone(),
        client.clone(),
        libp2p::PeerId::random(),
        MailboxSettings {
            ttl_secs: 3600,
            poll: Duration::from_secs(60),
            replicate: Duration::from_secs(60),
            quota: rhizo_store::mailbox::MailboxQuota::default(),
        },
    );
    let bob = me(2);
    let id = {
        let mut s = store.lock().unwrap();
        let contact = Contact {
            uid: *bob.uid.as_bytes(),
            root_pk: *bob.root.public().as_bytes(),
            name: "bob".into(),
            verified: false,
            added_at: START_MS,
            devices: vec![ContactDevice {
                device_pk: *bob.device.public().as_bytes(),
                peer_id: peer_id_of_device(&bob.device.public()).unwrap().to_string(),
                addrs: vec!["/ip4/127.0.0.1/tcp/9".into()],
                certificate: None,
            }],
        };
        s.add_contact(&contact, START_MS).unwrap();
        let session_id = [9u8; 16];
        s.insert_conversation(&ConversationRow {
            session_id,
            group_id: vec![1; 16],
            contact_uid: contact.uid,
            created_at: START_MS,
        })
        .unwrap();
        s.insert_outgoing(
            &NewOutgoing {
                session_id,
                sender_device: *me(1).device.public().as_bytes(),
                seq: 1,
                kind: "text",
                body: Some("hello"),
                sent_at: START_MS,
                envelope: b"an envelope bob never gets",
            },
            START_MS,
        )
        .unwrap()
    };
    let messaging = Messaging::new(
        store.clone(),
        client,
        me(1),
        rhizo_e2e::RekeyPolicy {
            max_messages: 100,
            max_age_secs: 86_400,
        },
        mailbox,
        clock,
    )
    .unwrap();
    (messaging, store, id, event_loop)
}

fn row(store: &Mutex<Store>, id: i64) -> MessageRow {
    store.lock().unwrap().message(id).unwrap().unwrap()
}

/// Bob is unreachable (no device answers, no mailbox replica takes it): the outbox retries on
/// the node's clock with a doubling backoff capped at five minutes, never in a hot loop and
/// never giving up, and every time it stores comes from the injected clock.
#[tokio::test(start_paused = true)]
async fn an_unreachable_contact_is_retried_with_a_capped_backoff_on_the_node_clock() {
    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, store, id, _event_loop) = alice_with_a_queued_message(clock.clone());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(messaging.run_outbox(shutdown));

    // Simulated hours, observed once a simulated minute.
    let mut attempts = Vec::new();
    let mut last = 0;
    for _ in 0..180 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let r = row(&store, id);
        if r.attempts != last {
            last = r.attempts;
            attempts.push((clock.now_ms(), r.attempts));
        }
        assert_eq!(
            r.state.to_string(),
            "queued",
            "never delivered, never given up"
        );
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(60), outbox)
        .await
        .expect("the outbox stops on shutdown")
        .unwrap();

    let r = row(&store, id);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("no device of bob is reachable"), "{error}");
    // Each pass waits for the stopped network's timeouts (about a simulated minute), then
    // backs off: 1 s, 2 s, 4 s … up to the cap of five minutes (less up to a quarter of
    // jitter). So neither a hot loop (hundreds) nor a stuck outbox (a handful).
    let n = r.attempts as usize;
    assert!(
        (30..=70).contains(&n),
        "{n} attempts in three simulated hours"
    );
    // After the first doublings the gaps reach the cap: the last hour saw at most 16 passes.
    let last_hour = attempts
        .iter()
        .filter(|(at, _)| *at > START_MS + 2 * 3_600_000)
        .count();
    assert!(
        last_hour <= 16,
        "{last_hour} attempts in the last simulated hour"
    );
}
