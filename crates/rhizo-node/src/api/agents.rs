//! The agent card routes: our card (`/v1/agent/card`) and the agents we know or find
//! (`/v1/agents*`).

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use rhizo_core::agent::AgentCard;
use serde::{Deserialize, Serialize};

use super::{ApiState, messaging_error};

/// `GET /v1/agents/find` query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindAgentsQuery {
    /// The skill id to look up.
    pub skill: String,
}

/// `GET /v1/agents/{who}` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentQuery {
    /// `1` or `true`: look the card up in the DHT (and ask a contact) even if one is cached.
    #[serde(default)]
    pub refresh: Option<String>,
    /// `1` or `true`: ask the contact for its card now (`capability_query` over MLS) and wait
    /// (at most 30 s) for its answer.
    #[serde(default)]
    pub live: Option<String>,
}

impl AgentQuery {
    fn refresh(&self) -> bool {
        is_yes(self.refresh.as_deref())
    }

    fn live(&self) -> bool {
        is_yes(self.live.as_deref())
    }
}

fn is_yes(flag: Option<&str>) -> bool {
    matches!(flag, Some("1" | "true" | "yes"))
}

pub(super) async fn own_agent_card(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.agent_card().await {
        Ok(card) => Json(card).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn set_agent_card(
    State(state): State<ApiState>,
    Json(card): Json<AgentCard>,
) -> Response {
    match state.inner.messaging.set_agent_card(card).await {
        Ok(card) => Json(card).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn delete_agent_card(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.clear_agent_card().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn list_agents(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.agents().await {
        Ok(agents) => Json(agents).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn find_agents(
    State(state): State<ApiState>,
    Query(q): Query<FindAgentsQuery>,
) -> Response {
    match state.inner.messaging.find_agents(q.skill.trim()).await {
        Ok(agents) => Json(agents).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn agent_of(
    State(state): State<ApiState>,
    Path(who): Path<String>,
    Query(q): Query<AgentQuery>,
) -> Response {
    let messaging = &state.inner.messaging;
    let agent = if q.live() {
        messaging.ask_agent(&who).await
    } else {
        messaging.agent(&who, q.refresh()).await
    };
    match agent {
        Ok(agent) => Json(agent).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn group_agents(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    match state.inner.messaging.group_agents(&id).await {
        Ok(agents) => Json(agents).into_response(),
        Err(e) => messaging_error(e),
    }
}
