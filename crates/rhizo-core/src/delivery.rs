//! The retry schedule of outgoing envelopes: bounded exponential backoff with jitter
//! ([`RetryPolicy`]). The node's persisted outbox (rhizo-engine) retries an unacknowledged
//! envelope on this schedule, forever, while it is queued.
//!
//! (The in-memory delivery and reordering models that used to live here, `DeliveryTracker` and
//! `ReceiveOrdering`, drove nothing in the node: they are rhizo-engine's test oracle now, in
//! `crates/rhizo-engine/tests/oracle/`.)

/// First retry delay, in milliseconds: a lost packet is retried quickly.
pub const INITIAL_BACKOFF: u64 = 1_000;
/// Longest retry delay, in milliseconds: an unreachable peer is tried at
/// least every 5 minutes, forever, while the envelope is queued.
pub const MAX_BACKOFF: u64 = 5 * 60 * 1_000;

/// Retry timing. [`Default`] uses [`INITIAL_BACKOFF`] and [`MAX_BACKOFF`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first attempt, in milliseconds (at least 1 is used).
    pub initial_backoff: u64,
    /// Cap on the doubling delay, in milliseconds.
    pub max_backoff: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` attempts (1-based): `initial · 2^(attempts-1)`
    /// capped at `max_backoff`, minus a deterministic jitter of up to a quarter
    /// drawn from `noise`.
    pub fn backoff(&self, attempts: u32, noise: u64) -> u64 {
        let initial = self.initial_backoff.max(1);
        let cap = self.max_backoff.max(initial);
        let doublings = attempts.saturating_sub(1).min(63);
        let base = initial.saturating_mul(1u64 << doublings).min(cap);
        let spread = base / 4;
        base - noise % (spread + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_down() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1, 0), 1_000);
        assert_eq!(policy.backoff(2, 0), 2_000);
        assert_eq!(policy.backoff(9, 0), 256_000);
        assert_eq!(policy.backoff(10, 0), MAX_BACKOFF);
        assert_eq!(policy.backoff(u32::MAX, 0), MAX_BACKOFF);
        for noise in [1, 77, u64::MAX] {
            let delay = policy.backoff(3, noise);
            assert!((3_000..=4_000).contains(&delay), "{delay}");
        }
        let tiny = RetryPolicy {
            initial_backoff: 0,
            max_backoff: 0,
        };
        assert_eq!(tiny.backoff(5, 12345), 1);
    }
}
