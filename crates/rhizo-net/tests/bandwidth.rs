//! Bandwidth counters (`NetStats::bytes_received` / `bytes_sent`, shown on the web UI's health
//! page): two real nodes on 127.0.0.1 over TCP; a 16 KiB record one stores on the other shows
//! up in the writer's bytes sent and the holder's bytes received. Every wait is bounded by
//! [`WAIT`].

use std::sync::Arc;

mod support;
use support::{AcceptAll, Node, Opts, WAIT};

/// The record's value: large enough to stand out from identify and Kademlia chatter.
const VALUE_BYTES: u64 = 16 * 1024;

#[tokio::test]
async fn a_stored_record_counts_as_bytes_sent_and_received() {
    let opts = || Opts {
        validator: Arc::new(AcceptAll),
        ..Opts::default()
    };
    let holder = Node::spawn(opts()).await;
    let mut writer = Node::spawn(Opts {
        bootstrap: vec![holder.dialable()],
        ..opts()
    })
    .await;
    writer.connected(holder.peer).await;

    let before = writer.client.stats().await.expect("stats");
    let value = vec![7u8; usize::try_from(VALUE_BYTES).expect("fits")];
    let stored = tokio::time::timeout(WAIT, writer.client.put_record(b"bw-key".to_vec(), value))
        .await
        .expect("put in time")
        .expect("put");
    assert!(stored >= 1, "stored on {stored} peers");

    let sent = writer.client.stats().await.expect("stats");
    let received = holder.client.stats().await.expect("stats");
    assert!(
        sent.bytes_sent >= before.bytes_sent + VALUE_BYTES,
        "writer sent {} bytes, {} before the put",
        sent.bytes_sent,
        before.bytes_sent
    );
    assert!(
        received.bytes_received >= VALUE_BYTES,
        "holder received {} bytes",
        received.bytes_received
    );
    // The holder answered (identify, the put's acknowledgement): it sent something too.
    assert!(received.bytes_sent > 0 && sent.bytes_received > 0);
    writer.stop().await;
    holder.stop().await;
}
