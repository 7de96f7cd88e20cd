//! Capability query and answer (the cards part of issue 13).
//!
//! Placeholder until the cards work lands: a query is not answered and an answer is ignored.

use rhizo_core::proto::{CapabilityAnswer, CapabilityQuery};
use rhizo_store::Tx;

use super::AgentCtx;
use crate::{Event, inbound::Reject};

/// A contact asked for our card (answered with `capability_answer` through
/// [`super::queue_reply`]).
pub(crate) fn on_capability_query(
    _tx: &mut Tx<'_>,
    _ctx: &AgentCtx<'_>,
    _query: &CapabilityQuery,
    _now: i64,
) -> Result<Vec<Event>, Reject> {
    Ok(Vec::new())
}

/// A contact's card arrived.
pub(crate) fn on_capability_answer(
    _tx: &mut Tx<'_>,
    _ctx: &AgentCtx<'_>,
    _answer: &CapabilityAnswer,
    _now: i64,
) -> Result<Vec<Event>, Reject> {
    Ok(Vec::new())
}
