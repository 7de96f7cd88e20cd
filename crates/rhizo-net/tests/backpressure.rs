//! The event loop never waits for the node: with the node's event channel full (a node that
//! reads nothing for a while), the loop still answers its client, holds the surplus events in
//! its bounded backlog, and hands them all over once the node reads again. In-process
//! nodes on loopback (`127.0.0.1/tcp/0`, mDNS off).
//!
//! Every wait is bounded by [`WAIT`] and ends on an event or a reply; the one condition polled
//! (the counters) is polled with a deadline.

use std::time::Duration;

use rhizo_net::{
    EVENT_CHANNEL_CAPACITY, NetEvent, NetLimits, SendError, event_loop::EVENT_BACKLOG_CAPACITY,
};

mod support;
use support::{Node, Opts, WAIT};

/// Peers sending requests to the node that does not read (each connection allows 64 streams).
const SENDERS: usize = 6;
/// Requests each sender has in flight at once.
const REQUESTS_PER_SENDER: usize = 60;

/// A node that admits every sender (all share 127.0.0.1).
async fn spawn_roomy() -> Node {
    Node::spawn(Opts {
        limits: NetLimits {
            max_per_ip: 1000,
            max_inbound: 1000,
            ..NetLimits::default()
        },
        ..Opts::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_reads_no_events_does_not_stall_the_event_loop() {
    let mut target = spawn_roomy().await;
    let total = SENDERS * REQUESTS_PER_SENDER;
    assert!(
        total > EVENT_CHANNEL_CAPACITY + 64,
        "more than the channel holds"
    );

    // Every sender's requests carry its index and a sequence number: [sender, seq_hi, seq_lo].
    let mut senders = Vec::new();
    let mut requests = Vec::new();
    for s in 0..SENDERS {
        let sender = spawn_roomy().await;
        for seq in 0..REQUESTS_PER_SENDER {
            let client = sender.client.clone();
            let (peer, addr) = (target.peer, target.addr.clone());
            let payload = vec![
                u8::try_from(s).expect("small"),
                u8::try_from(seq >> 8).expect("small"),
                u8::try_from(seq & 0xff).expect("small"),
            ];
            requests.push(tokio::spawn(async move {
                client.send_message(peer, vec![addr], payload).await
            }));
        }
        senders.push(sender);
    }

    // The target reads nothing: its channel fills, and the loop still answers (on the old code
    // the loop waited for room in the channel, and these calls ran into the client timeout).
    let filled = async {
        loop {
            let stats = target.client.stats().await.expect("the event loop answers");
            if stats.messages_received >= total as u64 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let stats = tokio::time::timeout(WAIT, filled)
        .await
        .expect("all requests arrive within the bounded wait");
    assert!(
        stats.event_backlog > 0,
        "the surplus waits in the backlog: {stats:?}"
    );
    assert_eq!(stats.events_shed, 0, "the backlog had room for all");
    assert!(target.client.info().await.is_ok());

    // Now the node reads: every request arrives, once, and is answered.
    let mut seen = std::collections::HashSet::new();
    let mut received = 0;
    while received < total {
        let event = tokio::time::timeout(WAIT, target.events.recv())
            .await
            .expect("events within the bounded wait")
            .expect("event loop alive");
        if let NetEvent::InboundMessage {
            payload, channel, ..
        } = event
        {
            assert!(seen.insert(payload.clone()), "delivered once: {payload:?}");
            target
                .client
                .respond(channel, payload)
                .await
                .expect("respond");
            received += 1;
        }
    }
    for request in requests {
        let answer: Result<Vec<u8>, SendError> = request.await.expect("join");
        assert!(answer.is_ok(), "every request answered: {answer:?}");
    }
    let stats = target.client.stats().await.expect("stats");
    assert_eq!(stats.event_backlog, 0);
    for sender in senders {
        sender.stop().await;
    }
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_backlog_requests_are_shed_and_counted_and_the_rest_delivered() {
    let mut target = spawn_roomy().await;
    // More requests than the channel and the backlog hold together.
    let senders_needed =
        (EVENT_CHANNEL_CAPACITY + EVENT_BACKLOG_CAPACITY) / REQUESTS_PER_SENDER + 4;
    let total = senders_needed * REQUESTS_PER_SENDER;
    let mut senders = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..senders_needed {
        let sender = spawn_roomy().await;
        for seq in 0..REQUESTS_PER_SENDER {
            let client = sender.client.clone();
            let (peer, addr) = (target.peer, target.addr.clone());
            let payload = u32::try_from(requests.len() * 1000 + seq)
                .expect("small")
                .to_be_bytes()
                .to_vec();
            requests.push(tokio::spawn(async move {
                client.send_message(peer, vec![addr], payload).await
            }));
        }
        senders.push(sender);
    }
    let arrived = async {
        loop {
            let stats = target.client.stats().await.expect("the event loop answers");
            if stats.messages_received >= total as u64 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let stats = tokio::time::timeout(WAIT, arrived)
        .await
        .expect("all requests arrive within the bounded wait");
    assert!(
        stats.inbound_requests_shed > 0,
        "the surplus was shed: {stats:?}"
    );
    assert!(stats.events_shed >= stats.inbound_requests_shed);
    assert_eq!(stats.event_backlog as usize, EVENT_BACKLOG_CAPACITY);
    // Everything not shed reaches the node once it reads.
    let expected = total - stats.inbound_requests_shed as usize;
    let mut received = 0;
    while received < expected {
        let event = tokio::time::timeout(WAIT, target.events.recv())
            .await
            .expect("events within the bounded wait")
            .expect("event loop alive");
        if let NetEvent::InboundMessage {
            payload, channel, ..
        } = event
        {
            target
                .client
                .respond(channel, payload)
                .await
                .expect("respond");
            received += 1;
        }
    }
    let stats = target.client.stats().await.expect("stats");
    assert_eq!(stats.event_backlog, 0);
    for request in requests {
        request.abort();
    }
    for sender in senders {
        sender.stop().await;
    }
    target.stop().await;
}
