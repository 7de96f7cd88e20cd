//! The circuit breaker per remote agent (seed 004): [`BREAKER_FAILURES`] consecutive failures
//! (a task that ended `failed`/`rejected`, or a delivery that failed for good) open it; while
//! open, delegating to that agent fails fast; after the backoff one trial call goes through
//! (half-open); its success closes the breaker, its failure re-opens it with the backoff doubled
//! (from [`BREAKER_BASE_BACKOFF_MS`] up to [`BREAKER_MAX_BACKOFF_MS`]).
//!
//! Sans-IO: every call takes `now` (unix ms). In memory only: a restart closes every breaker.
//!
//! ```text
//!   closed ──5 failures──▶ open{retry_at} ──now ≥ retry_at, check()──▶ half-open (one trial)
//!     ▲                      ▲                                            │
//!     └──── on_success ──────┼──────────── on_success ◀───────────────────┤
//!                            └──── on_failure (backoff × 2) ◀─────────────┘
//! ```

use std::collections::HashMap;

use rhizo_core::{Uid, agent::BreakerState};

/// Consecutive failures that open a breaker.
pub const BREAKER_FAILURES: u32 = 5;
/// The first open period: long enough for a restart, short enough to notice a recovery.
pub const BREAKER_BASE_BACKOFF_MS: i64 = 30_000;
/// The longest open period: a broken agent is still tried every ten minutes.
pub const BREAKER_MAX_BACKOFF_MS: i64 = 10 * 60_000;
/// Breakers kept at most (one per remote agent; closed ones are evicted first, least recently
/// used first).
pub const MAX_BREAKERS: usize = 4096;

/// Why [`Breakers::check`] refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the agent failed {BREAKER_FAILURES} times in a row; calls resume at {retry_at} (unix ms)")]
pub struct Open {
    /// When a trial call will be let through (unix ms).
    pub retry_at: i64,
}

/// One remote agent's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Breaker {
    /// Consecutive failures while closed.
    failures: u32,
    /// The current (or next) open period.
    backoff_ms: i64,
    phase: Phase,
    /// Recency, for eviction.
    used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Calls fail fast until `retry_at`.
    Open {
        retry_at: i64,
    },
    /// A trial call went through; others fail fast until it resolves, or until `until` (a
    /// backoff after the trial) passed without an answer (then another trial goes through).
    HalfOpen {
        until: i64,
    },
}

/// The breakers of every remote agent, bounded by [`MAX_BREAKERS`].
#[derive(Debug, Default)]
pub struct Breakers {
    map: HashMap<Uid, Breaker>,
    clock: u64,
}

impl Breakers {
    /// No breakers (all closed).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a call to `uid` may go at `now`. Closed: yes. Open before its backoff ended:
    /// [`Open`]. Open after it (or half-open whose trial got no answer for a backoff): yes, as
    /// the one trial call, and the breaker is half-open until that call's outcome.
    ///
    /// # Errors
    ///
    /// [`Open`] naming when a call will be let through.
    pub fn check(&mut self, uid: &Uid, now: i64) -> Result<(), Open> {
        let used = self.tick();
        let Some(b) = self.map.get_mut(uid) else {
            return Ok(());
        };
        b.used = used;
        match b.phase {
            Phase::Closed => Ok(()),
            Phase::Open { retry_at } | Phase::HalfOpen { until: retry_at } if now < retry_at => {
                Err(Open { retry_at })
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                b.phase = Phase::HalfOpen {
                    until: now.saturating_add(b.backoff_ms),
                };
                Ok(())
            }
        }
    }

    /// A call to `uid` succeeded: the breaker closes and forgets its failures.
    pub fn on_success(&mut self, uid: &Uid) {
        self.map.remove(uid);
    }

    /// A call to `uid` failed at `now`. Closed: one more consecutive failure, and the breaker
    /// opens at [`BREAKER_FAILURES`]. Half-open (the trial failed): open again with the backoff
    /// doubled. Open: nothing changes (a late outcome of an earlier call).
    pub fn on_failure(&mut self, uid: &Uid, now: i64) {
        let used = self.tick();
        if !self.map.contains_key(uid) {
            self.make_room();
        }
        let b = self.map.entry(*uid).or_insert(Breaker {
            failures: 0,
            backoff_ms: BREAKER_BASE_BACKOFF_MS,
            phase: Phase::Closed,
            used,
        });
        b.used = used;
        match b.phase {
            Phase::Closed => {
                b.failures = b.failures.saturating_add(1);
                if b.failures >= BREAKER_FAILURES {
                    b.phase = Phase::Open {
                        retry_at: now.saturating_add(b.backoff_ms),
                    };
                }
            }
            Phase::HalfOpen { .. } => {
                b.backoff_ms = b.backoff_ms.saturating_mul(2).min(BREAKER_MAX_BACKOFF_MS);
                b.phase = Phase::Open {
                    retry_at: now.saturating_add(b.backoff_ms),
                };
            }
            Phase::Open { .. } => {}
        }
    }

    /// The state `uid`'s breaker shows at `now` (an open breaker whose backoff ended shows
    /// half-open: the next call goes through).
    pub fn state(&self, uid: &Uid, now: i64) -> BreakerState {
        match self.map.get(uid).map(|b| b.phase) {
            None | Some(Phase::Closed) => BreakerState::Closed,
            Some(Phase::Open { retry_at }) if now < retry_at => BreakerState::Open,
            Some(Phase::Open { .. } | Phase::HalfOpen { .. }) => BreakerState::HalfOpen,
        }
    }

    /// When `uid`'s open breaker lets a call through, if it is open at `now`.
    pub fn retry_at(&self, uid: &Uid, now: i64) -> Option<i64> {
        match self.map.get(uid)?.phase {
            Phase::Open { retry_at } if now < retry_at => Some(retry_at),
            _ => None,
        }
    }

    /// Breakers tracked (closed ones with failures count too).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no breaker is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn tick(&mut self) -> u64 {
        self.clock = self.clock.wrapping_add(1);
        self.clock
    }

    /// At [`MAX_BREAKERS`], evicts the least recently used closed breaker, or, when all are
    /// open, the least recently used of all (memory stays bounded; that agent's calls go
    /// through again).
    fn make_room(&mut self) {
        if self.map.len() < MAX_BREAKERS {
            return;
        }
        let victim = self
            .map
            .iter()
            .min_by_key(|(_, b)| (b.phase != Phase::Closed, b.used))
            .map(|(uid, _)| *uid);
        if let Some(uid) = victim {
            self.map.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests;
