//! Where a lookup's time goes (issue 19's B7 breakdown of lookup time): the Kademlia requests
//! one lookup sends, the time the query runs inside the event loop, the time the caller
//! waits on top of that (command and reply channels, the record checks on the blocking pool,
//! a busy runtime), and the CPU cost of checking one record, set against the links' RTT.
//!
//! ```text
//!  lab lookup time ── client wait ──▶ │ command queue │ Kademlia query (rounds × RTT + dials) │
//!                                      │ record checks on the blocking pool │ reply │
//!  NetStats get_queries / get_requests / get_query_ms (summed over the live nodes, before and
//!  after the lookups) ─▶ per lookup
//! ```

use std::time::{Duration, Instant};

use rhizo_core::RootKey;
use rhizo_core::records::{IdentityRecord, identity_key, validate_record};
use rhizo_net::{NetStats, RecordValidator as _};
use rhizo_node::record_validator::CoreRecordValidator;
use serde::Serialize;

/// Kademlia's parallelism (α, libp2p's default): requests in flight per round.
const ALPHA: f64 = 3.0;
/// Records checked to time one check.
const CHECK_SAMPLES: u32 = 200;

/// The GET counters of one node, or a sum of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetCounters {
    queries: u64,
    requests: u64,
    query_ms: u64,
}

impl GetCounters {
    /// The GET counters of `stats`.
    pub fn of(stats: &NetStats) -> Self {
        Self {
            queries: stats.get_queries,
            requests: stats.get_requests,
            query_ms: stats.get_query_ms,
        }
    }

    /// `self` + `other`.
    pub fn plus(self, other: Self) -> Self {
        Self {
            queries: self.queries + other.queries,
            requests: self.requests + other.requests,
            query_ms: self.query_ms + other.query_ms,
        }
    }
}

/// Where the lookups' time went, per lookup.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Breakdown {
    /// Kademlia requests one lookup sent (mean).
    pub requests_per_lookup: f64,
    /// Rounds of α = 3 requests that makes (requests / 3).
    pub rounds: f64,
    /// Time the query ran in Kademlia, start to end (mean), ms.
    pub kad_query_ms: f64,
    /// The caller's wait beyond the Kademlia query (mean lookup time − `kad_query_ms`):
    /// channels, record checks, a busy runtime, ms.
    pub client_overhead_ms: f64,
    /// Kademlia time per round, ms.
    pub ms_per_round: f64,
    /// `ms_per_round` in mean link RTTs (1: every round a bare request/answer; more:
    /// connection set-up to peers not yet connected, or queueing in busy nodes).
    pub rtts_per_round: f64,
    /// CPU time of checking one found record (rhizo-node's validator and rhizo-core's
    /// `validate_record`, as a lookup does), µs.
    pub check_us: f64,
}

impl Breakdown {
    /// The breakdown from the counters `before` and `after` the lookups, their mean time as
    /// the lab saw it, and the mean link RTT (0: no added latency).
    pub fn new(before: GetCounters, after: GetCounters, lookup_mean_ms: f64, rtt_ms: f64) -> Self {
        let queries = after.queries.saturating_sub(before.queries).max(1) as f64;
        let requests = after.requests.saturating_sub(before.requests) as f64 / queries;
        let kad_query_ms = after.query_ms.saturating_sub(before.query_ms) as f64 / queries;
        let rounds = requests / ALPHA;
        let ms_per_round = if rounds > 0.0 {
            kad_query_ms / rounds
        } else {
            0.0
        };
        Self {
            requests_per_lookup: requests,
            rounds,
            kad_query_ms,
            client_overhead_ms: (lookup_mean_ms - kad_query_ms).max(0.0),
            ms_per_round,
            rtts_per_round: if rtt_ms > 0.0 {
                ms_per_round / rtt_ms
            } else {
                0.0
            },
            check_us: check_cost().as_secs_f64() * 1e6,
        }
    }
}

/// The CPU time of checking one identity record as a lookup does, averaged over
/// [`CHECK_SAMPLES`] checks.
fn check_cost() -> Duration {
    let root = RootKey::from_bytes(&[19; 32]);
    let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    let Ok(record) = IdentityRecord::new(&root, now, 3600) else {
        return Duration::ZERO;
    };
    let (key, value) = (identity_key(&root.public().uid()).to_vec(), record.encode());
    let validator = CoreRecordValidator;
    let started = Instant::now();
    for _ in 0..CHECK_SAMPLES {
        let _ = validator.validate(&key, &value, None);
        let _ = validate_record(&key, &value, now);
    }
    started.elapsed() / CHECK_SAMPLES
}
