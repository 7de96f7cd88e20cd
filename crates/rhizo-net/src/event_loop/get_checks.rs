//! [`GetChecks`]: the records a `get_records` lookup found, checked with the node's
//! [`RecordValidator`] on the blocking pool, so that the lookup ends once enough peers answered
//! with a valid record instead of after the whole Kademlia query.
//!
//! ```text
//!  GetRecord progress (a peer's record) ─▶ DhtQueries: Step::Check ─▶ check (blocking pool)
//!    ─▶ (query id, valid?) ─▶ DhtQueries::on_checked ─▶ enough valid answers: FinishEarly
//! ```
//!
//! A check that cannot start (too many running) is skipped: the lookup then runs to its end,
//! as it did before, and the caller validates what it gets either way.

use std::sync::Arc;

use libp2p::kad;
use tokio::task::{JoinError, JoinSet};

use crate::RecordValidator;

/// Record checks of lookups running at once; past this an answer is not checked (its lookup
/// cannot end early on it).
pub(crate) const MAX_GET_CHECKS_IN_FLIGHT: usize = 32;

/// The checks running, and the validator they use.
#[derive(Debug)]
pub(crate) struct GetChecks {
    validator: Arc<dyn RecordValidator>,
    running: JoinSet<(kad::QueryId, bool)>,
}

impl GetChecks {
    pub(crate) fn new(validator: Arc<dyn RecordValidator>) -> Self {
        Self {
            validator,
            running: JoinSet::new(),
        }
    }

    /// Whether checks are running (whose results [`next_checked`](Self::next_checked) yields).
    pub(crate) fn checking(&self) -> bool {
        !self.running.is_empty()
    }

    /// The next check to finish: the query it belongs to and whether the record is valid.
    pub(crate) async fn next_checked(&mut self) -> Option<Result<(kad::QueryId, bool), JoinError>> {
        self.running.join_next().await
    }

    /// Checks `value` under `key` for query `id` (skipped when too many checks run).
    pub(crate) fn check(&mut self, id: kad::QueryId, key: Vec<u8>, value: Vec<u8>) {
        if self.running.len() >= MAX_GET_CHECKS_IN_FLIGHT {
            tracing::debug!("a found record is not checked: too many checks running");
            return;
        }
        let validator = self.validator.clone();
        self.running.spawn_blocking(move || {
            let valid = validator.validate(&key, &value, None).is_ok();
            (id, valid)
        });
    }
}
