//! Heartbeats and wake-up (the liveness part of issue 13).
//!
//! Placeholder until the liveness work lands: a heartbeat is ignored; a wake-up is shown as an
//! event.

use rhizo_core::{
    Uid,
    proto::{Heartbeat, WakeUp},
};
use rhizo_store::Tx;

use super::AgentCtx;
use crate::{Event, inbound::Reject};

/// A contact's heartbeat.
pub(crate) fn on_heartbeat(
    _tx: &mut Tx<'_>,
    _ctx: &AgentCtx<'_>,
    _heartbeat: &Heartbeat,
    _now: i64,
) -> Result<Vec<Event>, Reject> {
    Ok(Vec::new())
}

/// A contact asks us to wake our agent program.
pub(crate) fn on_wake_up(
    _tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    wake_up: &WakeUp,
    _now: i64,
) -> Result<Vec<Event>, Reject> {
    Ok(vec![Event::WakeUp {
        from: Uid::from_bytes(&ctx.contact.uid).to_string(),
        reason: wake_up.reason.chars().take(256).collect(),
    }])
}
