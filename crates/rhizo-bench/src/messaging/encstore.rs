//! ENCSTORE (issue 20): what an encrypted store (SQLCipher database, sealed key files) costs
//! B2 and B3, measured so that the machine's background load cancels out.
//!
//! ```text
//!  plain pair   alice ══ bob  (SQLite)     ─┐ round r: B2 on one pair, B2 on the other,
//!  sealed pair  alice ══ bob  (SQLCipher)  ─┘          B3 on one pair, B3 on the other
//!  each round: encrypted ÷ plain  ──▶  median and quartiles over the rounds
//! ```
//!
//! Both pairs run at once in this process, warm, with their data dirs in `$TMPDIR` and the
//! nodes' default configuration; they differ only in the store. Each round measures B2
//! (sequential sends, the p50 of send → delivered) and B3 (64 B texts, 8 in flight, first POST
//! → last delivered) on the two pairs back to back, the order alternating from round to round
//! (plain first, then encrypted first), so load that comes and goes hits both measurements of
//! a round alike. The figure is the median over the rounds of the per-round ratio, with its
//! quartiles as the spread. Rounds are spaced so the receivers' per-peer rate limit (100 msg/s,
//! burst 500) has refilled what the previous round took: the limiter is never what is
//! measured. The encrypted nodes unlock with the passphrase in `RHIZO_PASSPHRASE_FILE`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Disk, MSG_RATE_PER_SEC, Pair, StoreKind};
use crate::report::{Row, Target};
use crate::{Summary, median, percentile};

/// The issue's bound on the change: at most 10 %.
const MAX_CHANGE: f64 = 0.10;

/// How many rounds and messages.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    /// Interleaved rounds.
    pub rounds: usize,
    /// Sequential messages per B2 measurement.
    pub b2_messages: usize,
    /// Pipelined 64 B messages per B3 measurement.
    pub b3_messages: usize,
    /// Messages each pair sends before the first round.
    pub warmup: usize,
}

impl Sizes {
    /// The full run's sizes, or tiny ones for `--quick`.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 2,
                b2_messages: 3,
                b3_messages: 10,
                warmup: 2,
            }
        } else {
            Self {
                rounds: 20,
                b2_messages: 20,
                b3_messages: 160,
                warmup: 10,
            }
        }
    }

    /// The pause between round starts that lets a receiver's token bucket refill.
    fn spacing(self) -> Duration {
        let tokens = (self.b2_messages + self.b3_messages) as f64;
        Duration::from_secs_f64(tokens / MSG_RATE_PER_SEC as f64 + 0.5)
    }
}

/// The median and quartiles of per-round ratios.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// First quartile (nearest rank).
    pub p25: f64,
    /// Third quartile (nearest rank).
    pub p75: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (any order).
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        Self {
            median: median(&sorted),
            p25: percentile(&sorted, 25.0),
            p75: percentile(&sorted, 75.0),
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// What ENCSTORE measured; per-round figures are in round order.
#[derive(Debug, Clone, Serialize)]
pub struct EncStoreFigures {
    /// The sizes used.
    pub sizes: Sizes,
    /// B2 p50 per round, plaintext store (ms).
    pub b2_plain_ms: Vec<f64>,
    /// B2 p50 per round, encrypted store (ms).
    pub b2_encrypted_ms: Vec<f64>,
    /// B3 64 B per round, plaintext store (msg/s).
    pub b3_plain_msgs_per_s: Vec<f64>,
    /// B3 64 B per round, encrypted store (msg/s).
    pub b3_encrypted_msgs_per_s: Vec<f64>,
    /// Encrypted ÷ plain B2 p50, over the rounds (above 1: slower).
    pub b2_ratio: Spread,
    /// Encrypted ÷ plain B3 rate, over the rounds (below 1: slower).
    pub b3_ratio: Spread,
}

impl EncStoreFigures {
    fn new(sizes: Sizes, b2: [Vec<f64>; 2], b3: [Vec<f64>; 2]) -> Self {
        let ratios = |m: &[Vec<f64>; 2]| -> Vec<f64> {
            m[0].iter().zip(&m[1]).map(|(p, e)| e / p).collect()
        };
        let (b2_ratio, b3_ratio) = (Spread::of(&ratios(&b2)), Spread::of(&ratios(&b3)));
        let [b2_plain_ms, b2_encrypted_ms] = b2;
        let [b3_plain_msgs_per_s, b3_encrypted_msgs_per_s] = b3;
        Self {
            sizes,
            b2_plain_ms,
            b2_encrypted_ms,
            b3_plain_msgs_per_s,
            b3_encrypted_msgs_per_s,
            b2_ratio,
            b3_ratio,
        }
    }

    /// The report's rows.
    pub fn rows(&self) -> Vec<Row> {
        let n = self.sizes.rounds;
        let (b2, b3) = (self.b2_ratio, self.b3_ratio);
        let spread = |s: Spread| {
            format!(
                "quartiles {:.3}–{:.3}, range {:.3}–{:.3}",
                s.p25, s.p75, s.min, s.max
            )
        };
        vec![
            Row::new(
                "ENCSTORE",
                format!("B2 p50, encrypted ÷ plaintext store, median of {n} rounds"),
                b2.median,
                "×",
            )
            .target(Target::value_at_most(1.0 + MAX_CHANGE))
            .note(format!(
                "B2 ratio {}; B3 ratio {}. Two warm pairs in one process, one on plain SQLite \
                 and one on SQLCipher; each round measures B2 ({} sequential sends) and B3 ({} \
                 texts of 64 B, 8 in flight) on both pairs back to back, alternating which goes \
                 first; the figure is the median of the per-round ratios",
                spread(b2),
                spread(b3),
                self.sizes.b2_messages,
                self.sizes.b3_messages
            )),
            Row::new(
                "ENCSTORE",
                format!("B3 64 B, encrypted ÷ plaintext store, median of {n} rounds"),
                b3.median,
                "×",
            )
            .target(Target::value_at_least(1.0 - MAX_CHANGE)),
            Row::new(
                "ENCSTORE",
                "B2 p50, encrypted store, median over rounds",
                median(&self.b2_encrypted_ms),
                "ms",
            )
            .reference("plaintext store", median(&self.b2_plain_ms)),
            Row::new(
                "ENCSTORE",
                "B3 64 B, encrypted store, median over rounds",
                median(&self.b3_encrypted_msgs_per_s),
                "msg/s",
            )
            .reference("plaintext store", median(&self.b3_plain_msgs_per_s)),
        ]
    }
}

/// Runs ENCSTORE: a plaintext and an encrypted pair, measured in interleaved rounds.
pub async fn run_encstore(quick: bool) -> anyhow::Result<EncStoreFigures> {
    super::install_tracing();
    let sizes = Sizes::new(quick);
    let plain = Pair::start_on(Disk::Tmp, StoreKind::Plain).await?;
    let sealed = match Pair::start_on(Disk::Tmp, StoreKind::Encrypted).await {
        Ok(pair) => pair,
        Err(e) => {
            plain.shutdown().await;
            return Err(e);
        }
    };
    let mut pairs = [plain, sealed];
    let outcome = rounds(&mut pairs, sizes).await;
    for pair in pairs {
        pair.shutdown().await;
    }
    outcome
}

/// Warms both pairs up, then runs the rounds (index 0: plain, 1: encrypted).
async fn rounds(pairs: &mut [Pair; 2], sizes: Sizes) -> anyhow::Result<EncStoreFigures> {
    for pair in pairs.iter_mut() {
        pair.warm_up(sizes.warmup).await?;
    }
    let mut b2: [Vec<f64>; 2] = Default::default();
    let mut b3: [Vec<f64>; 2] = Default::default();
    let mut last_start: Option<Instant> = None;
    for round in 0..sizes.rounds {
        if let Some(t) = last_start {
            tokio::time::sleep_until((t + sizes.spacing()).into()).await;
        }
        last_start = Some(Instant::now());
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let tag = format!("enc-{round}-b2-{i}");
            let stages = pairs[i].sequential(sizes.b2_messages, &tag).await?;
            b2[i].push(Summary::of(&stages.total).p50);
        }
        for i in order {
            let tag = format!("enc-{round}-b3-{i}");
            let (rate, _, _) = pairs[i].pipelined(sizes.b3_messages, 64, &tag).await?;
            b3[i].push(rate);
        }
        crate::progress(&format!(
            "ENCSTORE round {}/{}: B2 p50 {:.2} / {:.2} ms, B3 {:.0} / {:.0} msg/s (plain / encrypted)",
            round + 1,
            sizes.rounds,
            b2[0][round],
            b2[1][round],
            b3[0][round],
            b3[1][round]
        ));
    }
    Ok(EncStoreFigures::new(sizes, b2, b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_median_and_quartiles() {
        let s = Spread::of(&[1.0, 5.0, 2.0, 4.0, 3.0, f64::NAN]);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.p25, 2.0);
        assert_eq!(s.p75, 4.0);
        assert_eq!((s.min, s.max), (1.0, 5.0));
    }

    #[test]
    fn ratios_are_encrypted_over_plain_per_round() {
        let f = EncStoreFigures::new(
            Sizes::new(true),
            [vec![2.0, 4.0], vec![3.0, 4.0]],
            [vec![100.0, 200.0], vec![50.0, 200.0]],
        );
        assert_eq!(f.b2_ratio.median, 1.25);
        assert_eq!(f.b3_ratio.median, 0.75);
        assert_eq!(f.rows()[0].pass, Some(false));
    }
}
