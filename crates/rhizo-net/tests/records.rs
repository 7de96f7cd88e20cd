//! DHT records that a stock libp2p Kademlia peer (not rhizo-net) asks a rhizo node to keep, on
//! loopback (`127.0.0.1/tcp/0`, mDNS off): the node's validator runs off the event loop (a
//! validation that blocks does not stop the node from answering), and a `PUT_VALUE` flood is
//! rate-limited per peer before any validation.
//!
//! Every wait is bounded by [`WAIT`] and ends on an event or a condition polled with a
//! deadline; nothing sleeps to let time pass.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc as std_mpsc,
    },
    time::Duration,
};

use futures::StreamExt;
use libp2p::{Swarm, kad, kad::store::MemoryStore};
use rhizo_net::{
    AcceptedRecord, NetEvent, NetStats, RecordValidator,
    behaviour::{RECORD_PUT_BURST, RECORD_PUTS_PER_SECOND},
};

mod support;
use support::{Node, Opts, WAIT, stock_kad_peer};

/// Accepts every record (each its own owner) and counts the calls.
#[derive(Debug, Default)]
struct Counting {
    calls: AtomicUsize,
}

impl RecordValidator for Counting {
    fn validate(&self, key: &[u8], _: &[u8], _: Option<&[u8]>) -> Result<AcceptedRecord, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AcceptedRecord {
            owner: key.to_vec(),
            expires_at_unix: None,
        })
    }
}

/// Blocks in every validation until the test lets it go, telling the test when it is inside.
#[derive(Debug)]
struct Gate {
    entered: Mutex<std_mpsc::SyncSender<()>>,
    release: Mutex<std_mpsc::Receiver<()>>,
}

impl RecordValidator for Gate {
    fn validate(&self, _: &[u8], _: &[u8], _: Option<&[u8]>) -> Result<AcceptedRecord, String> {
        if let Ok(entered) = self.entered.lock() {
            let _ = entered.try_send(());
        }
        if let Ok(release) = self.release.lock() {
            let _ = release.recv_timeout(WAIT);
        }
        Ok(AcceptedRecord::default())
    }
}

/// A node with `validator` as its record validator.
async fn spawn_node(validator: Arc<dyn RecordValidator>) -> Node {
    Node::spawn(Opts {
        validator,
        ..Opts::default()
    })
    .await
}

/// Has `swarm` publish one record per key in `keys` (all at once), then drives it until the
/// rhizo node has handled every record (kept, refused or rate-limited). Returns its counters.
async fn put_all(
    rhizo: &mut Node,
    swarm: &mut Swarm<kad::Behaviour<MemoryStore>>,
    keys: usize,
) -> NetStats {
    for i in 0..keys {
        let key = kad::RecordKey::new(&format!("record-{i}"));
        swarm
            .behaviour_mut()
            .put_record(kad::Record::new(key, vec![1u8; 100]), kad::Quorum::One)
            .expect("the flooder's store has room");
    }
    let handled = |s: &NetStats| {
        s.records_stored + s.records_rejected + s.records_rate_limited + s.records_shed
            >= keys as u64
    };
    let wait = async {
        loop {
            let stats = rhizo.client.stats().await.expect("stats");
            if handled(&stats) {
                return stats;
            }
            // Drive the flooder until the rhizo node reports one more Kademlia request, or a
            // short while passes (validations finish without an event).
            let tick = tokio::time::sleep(Duration::from_millis(50));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    _ = swarm.select_next_some() => {}
                    event = rhizo.events.recv() => {
                        if matches!(event, Some(NetEvent::InboundKadRequest { .. })) {
                            break;
                        }
                    }
                    () = &mut tick => break,
                }
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("every record is handled within the bounded wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_value_flood_is_rate_limited_before_any_validation() {
    let validator = Arc::new(Counting::default());
    let mut rhizo = spawn_node(validator.clone()).await;
    let mut flooder = stock_kad_peer(rhizo.peer, rhizo.addr.clone());
    // Far more than one burst plus what the rate refills while the flood is under way.
    let keys = 4 * RECORD_PUT_BURST as usize + 10 * RECORD_PUTS_PER_SECOND as usize;
    let stats = put_all(&mut rhizo, &mut flooder, keys).await;
    let calls = validator.calls.load(Ordering::SeqCst) as u64;
    assert!(
        stats.records_rate_limited > 0,
        "the flood was rate limited: {stats:?}"
    );
    assert_eq!(
        calls + stats.records_rate_limited + stats.records_shed,
        keys as u64,
        "a record over the rate never reached the validator"
    );
    assert!(calls < keys as u64);
    assert_eq!(
        stats.records_stored, calls,
        "the validated records are kept"
    );
    assert_eq!(stats.records_held, calls);
    rhizo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_in_progress_does_not_hold_up_the_event_loop() {
    let (entered_tx, entered_rx) = std_mpsc::sync_channel(16);
    let (release_tx, release_rx) = std_mpsc::sync_channel(16);
    let gate = Arc::new(Gate {
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let mut rhizo = spawn_node(gate).await;
    let mut flooder = stock_kad_peer(rhizo.peer, rhizo.addr.clone());
    flooder
        .behaviour_mut()
        .put_record(
            kad::Record::new(kad::RecordKey::new(b"gated"), vec![1u8; 10]),
            kad::Quorum::One,
        )
        .expect("room");
    let driver = tokio::spawn(async move {
        loop {
            flooder.select_next_some().await;
        }
    });
    // The validator is entered, and stays blocked...
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(WAIT))
        .await
        .expect("join")
        .expect("the record reaches the validator");
    // ... while the event loop keeps answering (on the old code the loop itself was blocked,
    // and this call ran into the client timeout).
    let info = tokio::time::timeout(WAIT, rhizo.client.info())
        .await
        .expect("bounded");
    assert!(info.is_ok(), "the event loop answers: {info:?}");
    release_tx.send(()).expect("release");
    let stored = async {
        loop {
            let stats = rhizo.client.stats().await.expect("stats");
            if stats.records_stored == 1 {
                return;
            }
            tokio::select! {
                _ = rhizo.events.recv() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, stored)
        .await
        .expect("the record is kept once validated");
    let local = rhizo
        .client
        .local_record(b"gated".to_vec())
        .await
        .expect("local record");
    assert_eq!(local, Some(vec![1u8; 10]));
    driver.abort();
    rhizo.stop().await;
}
