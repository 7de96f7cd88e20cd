//! rhizo-net on libp2p's in-process memory transport (`start_with_transport`, the scale lab's
//! transport): nodes listen on `/memory/0`, find each other through a bootstrap node, and a
//! record one stores is found by another, with Noise, Yamux and every behaviour of a real node.
//! No socket is opened. Every wait is bounded by [`WAIT`].

use std::sync::Arc;

use libp2p::multiaddr::Protocol;
use rhizo_net::Transport;

mod support;
use support::{AcceptAll, Node, Opts, WAIT, eventually};

fn memory_opts(bootstrap: Vec<libp2p::Multiaddr>) -> Opts {
    Opts {
        listen: Some("/memory/0".parse().expect("multiaddr")),
        bootstrap,
        validator: Arc::new(AcceptAll),
        transport: Transport::Memory,
        ..Opts::default()
    }
}

#[tokio::test]
async fn nodes_on_the_memory_transport_store_and_find_a_record() {
    let hub = Node::spawn(memory_opts(Vec::new())).await;
    assert!(
        matches!(hub.addr.iter().next(), Some(Protocol::Memory(_))),
        "listens on a memory address, not {}",
        hub.addr
    );
    let mut writer = Node::spawn(memory_opts(vec![hub.dialable()])).await;
    let mut reader = Node::spawn(memory_opts(vec![hub.dialable()])).await;
    writer.connected(hub.peer).await;
    reader.connected(hub.peer).await;

    let stored = tokio::time::timeout(
        WAIT,
        writer
            .client
            .put_record(b"memory-key".to_vec(), b"memory-value".to_vec()),
    )
    .await
    .expect("put in time")
    .expect("put");
    assert!(stored >= 1, "stored on {stored} peers");

    eventually("the reader finds the record", || {
        let client = reader.client.clone();
        async move {
            client
                .get_records(b"memory-key".to_vec())
                .await
                .is_ok_and(|values| values.contains(&b"memory-value".to_vec()))
        }
    })
    .await;
}

#[tokio::test]
async fn tcp_stays_the_default_transport() {
    assert_eq!(Transport::default(), Transport::Tcp);
}
