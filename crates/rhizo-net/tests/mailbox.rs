//! `/rhizo/mailbox/1`, closest-peers lookups and targeted DHT stores between three in-process
//! nodes on loopback (`127.0.0.1/tcp/0`, mDNS off).
//!
//! Every wait is bounded by [`WAIT`] and driven by events or replies, never by sleeping.

use std::{sync::Arc, time::Duration};

use libp2p::kad;
use rhizo_net::{
    MAX_MAILBOX_REQUEST_BYTES, MAX_MAILBOX_RESPONSE_BYTES, Multiaddr, NetEvent, PeerId,
    ResponseChannel, SendError,
};

mod support;
use support::{AcceptAll, Node, Opts, WAIT};

/// A node that stores every record, bootstrapping from `bootstrap`.
async fn spawn_node(bootstrap: Vec<Multiaddr>) -> Node {
    Node::spawn(Opts {
        bootstrap,
        validator: Arc::new(AcceptAll),
        ..Opts::default()
    })
    .await
}

impl Node {
    /// Waits for the next inbound mailbox request.
    async fn next_mailbox(&mut self) -> (PeerId, Vec<u8>, ResponseChannel<Vec<u8>>) {
        self.next(|e| match e {
            NetEvent::InboundMailbox {
                peer,
                payload,
                channel,
            } => Some((peer, payload, channel)),
            _ => None,
        })
        .await
    }
}

/// Three nodes, each connected to the other two (B bootstraps from A, C from A and B), each
/// with the other two in its routing table.
async fn three_nodes() -> (Node, Node, Node) {
    let mut a = spawn_node(Vec::new()).await;
    let mut b = spawn_node(vec![a.dialable()]).await;
    let mut c = spawn_node(vec![a.dialable(), b.dialable()]).await;
    let (pa, pb, pc) = (a.peer, b.peer, c.peer);
    a.await_identified(&[pb, pc]).await;
    b.await_identified(&[pa, pc]).await;
    c.await_identified(&[pa, pb]).await;
    for node in [&a, &b, &c] {
        let info = node.client.info().await.expect("info");
        assert_eq!(
            info.routing_table_peers, 2,
            "routing table of {}",
            node.peer
        );
    }
    (a, b, c)
}

async fn stop_all(nodes: [Node; 3]) {
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn mailbox_request_round_trips_and_does_not_mix_with_msg() {
    let (a, b, mut c) = three_nodes().await;

    let client = a.client.clone();
    let (to, addrs) = (c.peer, vec![c.addr.clone()]);
    let request = tokio::spawn(async move {
        client
            .mailbox_request(to, addrs, b"store this".to_vec())
            .await
    });
    let (from, payload, channel) = c.next_mailbox().await;
    assert_eq!(from, a.peer);
    assert_eq!(payload, b"store this");
    c.client
        .respond_mailbox(channel, b"stored".to_vec())
        .await
        .expect("respond");
    let answer = tokio::time::timeout(WAIT, request)
        .await
        .expect("bounded")
        .expect("task");
    assert_eq!(answer.expect("mailbox response"), b"stored");

    // A message and a mailbox request in flight at once: request ids are counted per protocol
    // (both may be equal), and each answer must reach its own caller.
    let (ca, cm) = (a.client.clone(), a.client.clone());
    let (to, addrs) = (c.peer, vec![c.addr.clone()]);
    let addrs2 = addrs.clone();
    let mailbox =
        tokio::spawn(async move { ca.mailbox_request(to, addrs, b"mbox".to_vec()).await });
    let message = tokio::spawn(async move { cm.send_message(to, addrs2, b"msg".to_vec()).await });
    let mut answered = 0;
    while answered < 2 {
        let (kind, payload, channel) = c
            .next(|e| match e {
                NetEvent::InboundMailbox {
                    payload, channel, ..
                } => Some(("mailbox", payload, channel)),
                NetEvent::InboundMessage {
                    payload, channel, ..
                } => Some(("msg", payload, channel)),
                _ => None,
            })
            .await;
        let mut response = kind.as_bytes().to_vec();
        response.extend_from_slice(b" answers ");
        response.extend_from_slice(&payload);
        if kind == "mailbox" {
            c.client.respond_mailbox(channel, response).await
        } else {
            c.client.respond(channel, response).await
        }
        .expect("respond");
        answered += 1;
    }
    let mailbox = tokio::time::timeout(WAIT, mailbox).await.expect("bounded");
    let message = tokio::time::timeout(WAIT, message).await.expect("bounded");
    assert_eq!(mailbox.expect("task").expect("ok"), b"mailbox answers mbox");
    assert_eq!(message.expect("task").expect("ok"), b"msg answers msg");

    let stats = a.client.stats().await.expect("stats");
    assert_eq!(stats.mailbox_requests_sent, 2);
    assert_eq!(stats.messages_sent, 1);
    let stats = c.client.stats().await.expect("stats");
    assert_eq!(stats.mailbox_requests_received, 2);
    assert_eq!(stats.messages_received, 1);
    stop_all([a, b, c]).await;
}

#[tokio::test]
async fn mailbox_size_limits_are_enforced_without_panics() {
    let (a, b, mut c) = three_nodes().await;
    let addrs = vec![c.addr.clone()];

    // One byte over the request limit: refused before anything is sent.
    let err = a
        .client
        .mailbox_request(
            c.peer,
            addrs.clone(),
            vec![1; MAX_MAILBOX_REQUEST_BYTES + 1],
        )
        .await
        .expect_err("oversized request refused");
    assert!(
        matches!(err, SendError::TooLarge { len, max }
            if len == MAX_MAILBOX_REQUEST_BYTES + 1 && max == MAX_MAILBOX_REQUEST_BYTES),
        "{err:?}"
    );

    // Exactly at both limits: a full-size request and a full-size response go through. The
    // oversized request above never reached C: this is the first request it sees.
    let client = a.client.clone();
    let (to, addrs2) = (c.peer, addrs.clone());
    let request = tokio::spawn(async move {
        client
            .mailbox_request(to, addrs2, vec![2; MAX_MAILBOX_REQUEST_BYTES])
            .await
    });
    let (_, payload, channel) = c.next_mailbox().await;
    assert_eq!(payload, vec![2; MAX_MAILBOX_REQUEST_BYTES]);
    c.client
        .respond_mailbox(channel, vec![3; MAX_MAILBOX_RESPONSE_BYTES])
        .await
        .expect("respond");
    let answer = tokio::time::timeout(WAIT, request).await.expect("bounded");
    assert_eq!(
        answer.expect("task").expect("full-size response"),
        vec![3; MAX_MAILBOX_RESPONSE_BYTES]
    );

    // A response over the limit is never written: the requester gets an error, not a hang.
    let client = a.client.clone();
    let (to, addrs2) = (c.peer, addrs.clone());
    let request =
        tokio::spawn(async move { client.mailbox_request(to, addrs2, b"fetch".to_vec()).await });
    let (_, _, channel) = c.next_mailbox().await;
    c.client
        .respond_mailbox(channel, vec![4; MAX_MAILBOX_RESPONSE_BYTES + 1])
        .await
        .expect("respond");
    let answer = tokio::time::timeout(WAIT, request).await.expect("bounded");
    let err = answer
        .expect("task")
        .expect_err("oversized response refused");
    // The responder's codec refuses to write it and drops the stream.
    assert!(matches!(err, SendError::Protocol(_)), "{err:?}");

    // Both event loops are still alive and serving.
    let client = a.client.clone();
    let request =
        tokio::spawn(async move { client.mailbox_request(to, addrs, b"again".to_vec()).await });
    let (_, payload, channel) = c.next_mailbox().await;
    assert_eq!(payload, b"again");
    c.client
        .respond_mailbox(channel, b"fine".to_vec())
        .await
        .expect("respond");
    let answer = tokio::time::timeout(WAIT, request).await.expect("bounded");
    assert_eq!(answer.expect("task").expect("ok"), b"fine");
    assert!(a.client.stats().await.expect("stats").mailbox_failures >= 2);
    stop_all([a, b, c]).await;
}

#[tokio::test]
async fn closest_peers_are_the_others_sorted_by_xor_distance() {
    let (a, b, c) = three_nodes().await;
    for (i, key) in [
        b"rhizo/mailbox/v1 alice".to_vec(),
        b"rhizo/mailbox/v1 bob".to_vec(),
        vec![0u8; 32],
        vec![0xff; 32],
        vec![0x7f; 5],
    ]
    .into_iter()
    .enumerate()
    {
        let target = kad::KBucketKey::new(kad::RecordKey::new(&key));
        for (node, others) in [(&a, [b.peer, c.peer]), (&b, [a.peer, c.peer])] {
            let mut expected = others.to_vec();
            expected.sort_by_key(|p| target.distance(&kad::KBucketKey::from(*p)));
            let found = node
                .client
                .closest_peers(key.clone())
                .await
                .expect("closest peers");
            let peers: Vec<PeerId> = found.iter().map(|p| p.peer).collect();
            assert_eq!(peers, expected, "key #{i} from {}", node.peer);
            assert!(!peers.contains(&node.peer), "never the local peer");
            for p in &found {
                assert!(!p.addrs.is_empty(), "addresses for {}", p.peer);
            }
        }
    }
    stop_all([a, b, c]).await;
}

#[tokio::test]
async fn closest_peers_with_an_empty_routing_table_is_empty() {
    let lonely = spawn_node(Vec::new()).await;
    let found = lonely
        .client
        .closest_peers(b"anything".to_vec())
        .await
        .expect("closest peers");
    assert!(found.is_empty());
    lonely.stop().await;
}

#[tokio::test]
async fn put_record_to_stores_on_the_given_peer_only() {
    let (a, b, c) = three_nodes().await;
    let key = b"rhizo/test/record".to_vec();
    let value = b"signed record bytes".to_vec();

    let stored = a
        .client
        .put_record_to(key.clone(), value.clone(), vec![c.peer])
        .await
        .expect("stored on C");
    assert_eq!(stored, 1);
    // C validates inbound records off its swarm task, so the record lands shortly after the
    // PUT_VALUE was answered: wait for it, within a bound.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = c.client.local_record(key.clone()).await.expect("local");
        if held.as_deref() == Some(value.as_slice()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "C never stored the record: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not stored locally, nor anywhere it was not sent.
    assert_eq!(
        a.client.local_record(key.clone()).await.expect("local"),
        None
    );
    assert_eq!(
        b.client.local_record(key.clone()).await.expect("local"),
        None
    );

    // Nobody to store on: an error, promptly.
    assert!(
        a.client
            .put_record_to(key.clone(), b"v".to_vec(), Vec::new())
            .await
            .is_err()
    );
    assert!(
        a.client
            .put_record_to(key, b"v".to_vec(), vec![a.peer])
            .await
            .is_err()
    );
    stop_all([a, b, c]).await;
}
