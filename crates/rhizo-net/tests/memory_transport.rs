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

/// A hub, a writer and a reader (both bootstrapped from the hub) made with `opts`: the writer
/// stores `key`, the reader finds it. Returns the hub's listen address.
async fn store_and_find(
    opts: impl Fn(Vec<libp2p::Multiaddr>) -> Opts,
    key: &[u8],
    value: &[u8],
) -> libp2p::Multiaddr {
    let hub = Node::spawn(opts(Vec::new())).await;
    let mut writer = Node::spawn(opts(vec![hub.dialable()])).await;
    let mut reader = Node::spawn(opts(vec![hub.dialable()])).await;
    writer.connected(hub.peer).await;
    reader.connected(hub.peer).await;

    let stored = tokio::time::timeout(WAIT, writer.client.put_record(key.to_vec(), value.to_vec()))
        .await
        .expect("put in time")
        .expect("put");
    assert!(stored >= 1, "stored on {stored} peers");

    eventually("the reader finds the record", || {
        let client = reader.client.clone();
        async move {
            client
                .get_records(key.to_vec())
                .await
                .is_ok_and(|values| values.contains(&value.to_vec()))
        }
    })
    .await;
    hub.addr.clone()
}

#[tokio::test]
async fn nodes_on_the_memory_transport_store_and_find_a_record() {
    let hub = store_and_find(memory_opts, b"memory-key", b"memory-value").await;
    assert!(
        matches!(hub.iter().next(), Some(Protocol::Memory(_))),
        "listens on a memory address, not {hub}"
    );
}

#[tokio::test]
async fn tcp_stays_the_default_transport() {
    assert_eq!(Transport::default(), Transport::Tcp);
}

/// Nodes on the memory transport with 20–30 ms of added one-way delay per link (the scale
/// lab's `Transport::MemoryDelayed`): the delay handshake, Noise and Yamux run over the delayed
/// links, and a record one stores is found by another.
#[tokio::test]
async fn nodes_on_delayed_memory_links_store_and_find_a_record() {
    let seeds = std::sync::atomic::AtomicU64::new(10);
    let delayed = |bootstrap| {
        let ms = seeds.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        Opts {
            transport: Transport::MemoryDelayed(rhizo_net::LinkDelay {
                one_way: std::time::Duration::from_millis(ms),
                jitter: std::time::Duration::from_millis(2),
                seed: ms,
            }),
            ..memory_opts(bootstrap)
        }
    };
    store_and_find(delayed, b"delayed-key", b"delayed-value").await;
}
