//! Clock skew against peers, from the timestamps of their delivery receipts.
//!
//! A `/rhizo/msg/1` answer is a [`DeliveryReceipt`] signed by the recipient's device, and it
//! carries the recipient's clock (`timestamp`, unix ms). The request went out at `sent_ms` and the
//! answer came back at `answered_ms` on our clock, so the peer's clock minus ours is about
//! `timestamp − (sent_ms + answered_ms) / 2`, within half the round trip (the NTP estimate,
//! without any new field on the wire). `rhizo doctor` reads the summary from `GET /v1/stats`.
//!
//! ```text
//!  send_frame ── t0 ──▶ peer ── receipt{timestamp} ──▶ t1 ──▶ ClockSkews::record
//!                                                              │ latest sample per peer (bounded)
//!                                              GET /v1/stats ◀─┘ ClockSkewSummary
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use rhizo_core::envelope::DeliveryReceipt;
use serde::{Deserialize, Serialize};

/// Peers whose latest sample is kept: the oldest sample goes first (a diagnostic, not a log).
pub const MAX_SKEW_PEERS: usize = 64;

/// Round trips longer than this give no sample: half of it is the estimate's error bound, and a
/// slow dial or a busy peer would make the figure meaningless.
pub const MAX_SAMPLE_RTT_MS: i64 = 10_000;

/// The tag of a receipt answer on `/rhizo/msg/1` (rhizo-engine's `wire::RESPONSE_RECEIPT`).
const RESPONSE_RECEIPT: u8 = 1;

/// One peer's latest estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// The peer's clock minus ours, in milliseconds.
    skew_ms: i64,
    /// The round trip it was measured over.
    rtt_ms: i64,
    /// When (our clock, unix ms).
    at_ms: i64,
}

/// The latest clock-skew sample of each peer that answered with a receipt (bounded by
/// [`MAX_SKEW_PEERS`]).
#[derive(Debug, Default)]
pub struct ClockSkews {
    samples: Mutex<HashMap<String, Sample>>,
}

/// What `GET /v1/stats` reports of the samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSkewSummary {
    /// Peers with a sample.
    pub peers: usize,
    /// The median over peers of (their clock − ours), in milliseconds; `None` without samples.
    pub median_ms: Option<i64>,
    /// The peer whose clock differs most from ours, and by how much (their clock − ours, ms).
    pub widest: Option<(String, i64)>,
    /// The largest error bound of the samples (half their round trip), in milliseconds.
    pub max_error_ms: i64,
}

/// The peer's clock minus ours from one `/rhizo/msg/1` answer, if it is a receipt and the round
/// trip was short enough to say anything.
pub fn skew_of_answer(answer: &[u8], sent_ms: i64, answered_ms: i64) -> Option<(i64, i64)> {
    let rtt = answered_ms.checked_sub(sent_ms)?;
    if !(0..=MAX_SAMPLE_RTT_MS).contains(&rtt) {
        return None;
    }
    let (&RESPONSE_RECEIPT, body) = answer.split_first()? else {
        return None;
    };
    let receipt = DeliveryReceipt::decode(body).ok()?;
    let theirs = i64::try_from(receipt.timestamp).ok()?;
    let midpoint = sent_ms + rtt / 2;
    Some((theirs.checked_sub(midpoint)?, rtt))
}

impl ClockSkews {
    /// Records what `peer`'s answer says of its clock (nothing if it says nothing).
    pub fn record(&self, peer: &str, answer: &[u8], sent_ms: i64, answered_ms: i64) {
        let Some((skew_ms, rtt_ms)) = skew_of_answer(answer, sent_ms, answered_ms) else {
            return;
        };
        let Ok(mut samples) = self.samples.lock() else {
            return;
        };
        if !samples.contains_key(peer) && samples.len() >= MAX_SKEW_PEERS {
            let oldest = samples
                .iter()
                .min_by_key(|(_, s)| s.at_ms)
                .map(|(p, _)| p.clone());
            if let Some(oldest) = oldest {
                samples.remove(&oldest);
            }
        }
        samples.insert(
            peer.to_owned(),
            Sample {
                skew_ms,
                rtt_ms,
                at_ms: answered_ms,
            },
        );
    }

    /// The summary over the peers' latest samples.
    pub fn summary(&self) -> ClockSkewSummary {
        let Ok(samples) = self.samples.lock() else {
            return ClockSkewSummary::default();
        };
        let mut skews: Vec<i64> = samples.values().map(|s| s.skew_ms).collect();
        skews.sort_unstable();
        let median_ms = match skews.len() {
            0 => None,
            n if n % 2 == 1 => Some(skews[n / 2]),
            n => Some(skews[n / 2 - 1] / 2 + skews[n / 2] / 2),
        };
        let widest = samples
            .iter()
            .max_by_key(|(_, s)| s.skew_ms.unsigned_abs())
            .map(|(p, s)| (p.clone(), s.skew_ms));
        ClockSkewSummary {
            peers: samples.len(),
            median_ms,
            widest,
            max_error_ms: samples.values().map(|s| s.rtt_ms / 2).max().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests;
