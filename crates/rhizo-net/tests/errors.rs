//! The typed errors of [`Client`](rhizo_net::Client) calls between in-process nodes on
//! loopback: a peer that is gone is `Unreachable`, a refused DHT store is a [`DhtError`], and
//! `Stopped` means only that this node's own event loop is gone.
//!
//! Every wait is bounded by [`WAIT`] and ends on a reply.

use rhizo_net::{DhtError, NetError, SendError};

mod support;
use support::{Node, WAIT};

#[tokio::test]
async fn a_peer_that_is_gone_is_unreachable_and_a_stopped_loop_is_stopped() {
    let a = Node::spawn_default().await;
    let b = Node::spawn_default().await;
    let (b_peer, b_addr) = (b.peer, b.addr.clone());
    b.stop().await;

    let call = a
        .client
        .send_message(b_peer, vec![b_addr], b"hello".to_vec());
    let answer = tokio::time::timeout(WAIT, call).await.expect("bounded");
    assert!(
        matches!(answer, Err(SendError::Unreachable(_))),
        "{answer:?}"
    );

    let refused = a
        .client
        .put_record_to(b"k".to_vec(), b"v".to_vec(), vec![a.peer]);
    let refused = tokio::time::timeout(WAIT, refused).await.expect("bounded");
    assert!(
        matches!(refused, Err(NetError::Dht(DhtError::NoTarget))),
        "{refused:?}"
    );
    let bad_key = tokio::time::timeout(WAIT, a.client.start_providing(Vec::new()))
        .await
        .expect("bounded");
    assert!(
        matches!(
            bad_key,
            Err(NetError::Dht(DhtError::BadProviderKey { len: 0, .. }))
        ),
        "{bad_key:?}"
    );

    let client = a.client.clone();
    a.stop().await;
    let after = tokio::time::timeout(WAIT, client.pex_request(b_peer))
        .await
        .expect("bounded");
    assert!(matches!(after, Err(SendError::Stopped)), "{after:?}");
    let info = tokio::time::timeout(WAIT, client.info())
        .await
        .expect("bounded");
    assert!(matches!(info, Err(NetError::Stopped)), "{info:?}");
}
