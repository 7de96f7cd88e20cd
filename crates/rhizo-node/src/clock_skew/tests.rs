use rhizo_core::envelope::{EnvelopeId, ReceiptEntry, ReceiptStatus, SessionId};
use rhizo_core::{DeliveryReceipt, DeviceKey};

use super::*;

/// A receipt answer signed at `timestamp` (the peer's clock, unix ms).
fn answer(timestamp: u64) -> Vec<u8> {
    let device = DeviceKey::from_bytes(&[7; 32]);
    let mut receipt = DeliveryReceipt {
        recipient_device: device.public(),
        timestamp,
        entries: vec![ReceiptEntry {
            envelope: EnvelopeId {
                sender_device: DeviceKey::from_bytes(&[8; 32]).public(),
                session_id: SessionId::from_bytes([1; 16]),
                sequence_num: 1,
            },
            envelope_digest: [2; 32],
            status: ReceiptStatus::Delivered,
        }],
        signature: [0; 64],
    };
    receipt.sign(&device).expect("sign");
    let mut out = vec![RESPONSE_RECEIPT];
    out.extend(receipt.encode());
    out
}

#[test]
fn the_skew_is_the_peers_clock_minus_the_midpoint_of_the_round_trip() {
    // Sent at 1000, answered at 1200 (our clock): the peer stamped 61_100, 60 s ahead.
    assert_eq!(
        skew_of_answer(&answer(61_100), 1_000, 1_200),
        Some((60_000, 200))
    );
    // A peer behind us.
    assert_eq!(
        skew_of_answer(&answer(1_000), 100_000, 100_000),
        Some((-99_000, 0))
    );
}

#[test]
fn no_sample_from_errors_garbage_or_slow_round_trips() {
    assert_eq!(skew_of_answer(&[], 0, 10), None);
    assert_eq!(skew_of_answer(&[2, 1, 2, 3], 0, 10), None);
    assert_eq!(skew_of_answer(&[RESPONSE_RECEIPT, 0xff, 0xff], 0, 10), None);
    assert_eq!(
        skew_of_answer(&answer(5_000), 0, MAX_SAMPLE_RTT_MS + 1),
        None
    );
    // Our clock stepped back during the request.
    assert_eq!(skew_of_answer(&answer(5_000), 10, 5), None);
}

#[test]
fn the_summary_takes_the_median_and_names_the_widest_peer() {
    let skews = ClockSkews::default();
    assert_eq!(skews.summary(), ClockSkewSummary::default());
    skews.record("a", &answer(10_500), 10_000, 10_000); // +500
    skews.record("b", &answer(9_000), 10_000, 10_000); // -1000
    skews.record("c", &answer(400_000), 10_000, 10_400); // +389_800, rtt 400
    let s = skews.summary();
    assert_eq!(s.peers, 3);
    assert_eq!(s.median_ms, Some(500));
    assert_eq!(s.widest, Some(("c".to_owned(), 389_800)));
    assert_eq!(s.max_error_ms, 200);
    // A newer sample replaces the peer's older one.
    skews.record("c", &answer(20_000), 20_000, 20_000);
    let s = skews.summary();
    assert_eq!(s.peers, 3);
    assert_eq!(s.widest, Some(("b".to_owned(), -1_000)));
}

#[test]
fn at_most_max_skew_peers_are_kept_the_oldest_going_first() {
    let skews = ClockSkews::default();
    for i in 0..(MAX_SKEW_PEERS as i64 + 5) {
        skews.record(
            &format!("p{i}"),
            &answer(1_000 + i as u64),
            1_000 + i,
            1_000 + i,
        );
    }
    let samples = skews.samples.lock().expect("lock");
    assert_eq!(samples.len(), MAX_SKEW_PEERS);
    assert!(!samples.contains_key("p0") && !samples.contains_key("p4"));
    assert!(samples.contains_key("p5"));
}
