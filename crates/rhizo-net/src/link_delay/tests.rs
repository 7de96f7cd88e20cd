//! The delayed reader on tokio's paused clock: what is read comes out whole, in order, and not
//! before the link's one-way delay has passed (virtual time, so no wall-clock assertion).

use std::time::Duration;

use futures::AsyncReadExt;
use futures::io::Cursor;
use tokio::time::Instant;

use super::{Delayed, LinkDelay, MAX_QUEUED_BYTES};

fn link(one_way_ms: u64, jitter_ms: u64) -> LinkDelay {
    LinkDelay {
        one_way: Duration::from_millis(one_way_ms),
        jitter: Duration::from_millis(jitter_ms),
        seed: 7,
    }
}

#[tokio::test(start_paused = true)]
async fn reads_come_out_whole_in_order_and_after_the_one_way_delay() {
    let data: Vec<u8> = (0..3 * MAX_QUEUED_BYTES).map(|i| (i % 251) as u8).collect();
    let mut conn = Delayed::new(Cursor::new(data.clone()), link(40, 10));
    let started = Instant::now();
    let mut first = [0u8; 1];
    conn.read_exact(&mut first).await.expect("first byte");
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "the first byte came out after {:?}, before the one-way delay",
        started.elapsed()
    );
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.expect("the rest");
    assert_eq!(first[0], data[0]);
    assert_eq!(
        rest,
        data[1..],
        "bytes whole and in order despite the jitter"
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_delay_link_reads_through() {
    let mut conn = Delayed::new(Cursor::new(b"now".to_vec()), LinkDelay::default());
    let started = Instant::now();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.expect("read");
    assert_eq!(out, b"now");
    assert_eq!(started.elapsed(), Duration::ZERO, "no delay on a zero link");
}

#[test]
fn both_ends_see_the_same_link() {
    let (a, b) = (link(10, 2), link(15, 5));
    let decoded = LinkDelay::decode(&a.encode());
    assert_eq!(decoded, a, "the handshake round-trips");
    let (ab, ba) = (a.link(&b), b.link(&a));
    assert_eq!(ab.one_way, Duration::from_millis(25));
    assert_eq!(ab.one_way, ba.one_way);
    assert_eq!(ab.jitter, Duration::from_millis(5));
    assert_eq!(ab.jitter, ba.jitter);
}
