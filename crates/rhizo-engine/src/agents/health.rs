//! [`AgentHealth`]: what the engine knows, in memory, of the remote agents' health — their
//! liveness from heartbeats ([`LivenessMap`]) and a circuit breaker each ([`Breakers`]) — and
//! the `Engine` methods the driver and the task paths use on them.

use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

use rhizo_core::{
    Uid,
    agent::{BreakerState, Liveness},
};

use super::{
    breaker::{Breakers, Open},
    heartbeat::{LivenessMap, Load},
};
use crate::{Engine, Event};

/// Liveness and breakers of remote agents, and our heartbeat counter. Shared by the engine's
/// paths (`&self`; each part locks inside).
#[derive(Debug, Default)]
pub struct AgentHealth {
    liveness: Mutex<LivenessMap>,
    breakers: Mutex<Breakers>,
    /// The seq of our last heartbeat.
    heartbeat_seq: AtomicU64,
}

/// Locks `m`, also after a panic elsewhere (the maps stay usable: each change is one step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AgentHealth {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the liveness map.
    pub fn with_liveness<T>(&self, f: impl FnOnce(&mut LivenessMap) -> T) -> T {
        f(&mut lock(&self.liveness))
    }

    /// Runs `f` on the breakers.
    pub fn with_breakers<T>(&self, f: impl FnOnce(&mut Breakers) -> T) -> T {
        f(&mut lock(&self.breakers))
    }

    pub(crate) fn take_ephemeral(&self, uid: Uid, now: i64) -> bool {
        self.with_liveness(|m| m.take_ephemeral(uid, now))
    }

    pub(crate) fn confirm(&self, uid: &Uid) {
        self.with_liveness(|m| m.confirm(uid));
    }

    /// The next heartbeat seq: one more than the last, and at least the clock in ms (so it
    /// keeps growing across restarts, where the counter starts again from zero).
    pub(crate) fn next_heartbeat_seq(&self, now: i64) -> u64 {
        let floor = crate::ms(now);
        let mut prev = self.heartbeat_seq.load(Ordering::Relaxed);
        loop {
            let next = prev.saturating_add(1).max(floor);
            match self.heartbeat_seq.compare_exchange_weak(
                prev,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// Whether `uid` is unreachable at `now` (its transmits go straight to its mailbox).
    pub fn is_unreachable(&self, uid: &Uid, now: i64) -> bool {
        self.with_liveness(|m| m.of(uid, now).0) == Liveness::Unreachable
    }
}

/// An agent as the views show it: liveness, when its last heartbeat came, its load and its
/// breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStatus {
    /// From heartbeats.
    pub liveness: Liveness,
    /// When the last heartbeat arrived (unix ms).
    pub last_heartbeat: Option<i64>,
    /// The load the last heartbeat said.
    pub load: Option<Load>,
    /// Our circuit breaker for it.
    pub breaker: BreakerState,
}

impl Engine {
    /// The remote agents' liveness and breakers.
    pub fn agent_health(&self) -> &AgentHealth {
        &self.agent_health
    }

    /// What we know of agent `uid` at `now`, for `/v1/agents` and the CLI.
    pub fn agent_status(&self, uid: &Uid, now: i64) -> AgentStatus {
        let (liveness, last_heartbeat, load) = self.agent_health.with_liveness(|m| m.of(uid, now));
        AgentStatus {
            liveness,
            last_heartbeat,
            load,
            breaker: self.agent_health.with_breakers(|b| b.state(uid, now)),
        }
    }

    /// Whether a task may be delegated to `uid` at `now` (its circuit breaker; call before
    /// queueing a `task_delegate`, and answer `AGENT_UNAVAILABLE` on [`Open`]).
    ///
    /// # Errors
    ///
    /// [`Open`] naming when a call will be let through again.
    pub fn check_agent(&self, uid: &Uid, now: i64) -> Result<(), Open> {
        self.agent_health.with_breakers(|b| b.check(uid, now))
    }

    /// The outcome of a call to agent `uid`: `ok` for a task that completed; not `ok` for a
    /// task that ended `failed` or `rejected`, or a delivery that failed for good. Feeds its
    /// circuit breaker.
    pub fn note_agent_outcome(&self, uid: &Uid, ok: bool, now: i64) {
        self.agent_health.with_breakers(|b| {
            if ok {
                b.on_success(uid);
            } else {
                b.on_failure(uid, now);
            }
        });
    }

    /// Liveness changes that time alone made by `now` (call at
    /// [`Engine::next_liveness_deadline`]).
    pub fn liveness_changes(&self, now: i64) -> Vec<Event> {
        self.agent_health.with_liveness(|m| m.changes(now))
    }

    /// When the next liveness change by time alone is due (unix ms), if any.
    pub fn next_liveness_deadline(&self, now: i64) -> Option<i64> {
        self.agent_health.with_liveness(|m| m.next_deadline(now))
    }
}
