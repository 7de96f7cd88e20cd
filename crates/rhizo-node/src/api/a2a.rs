//! The A2A binding's routes (`/a2a/{agent}/…`): thin handlers over [`crate::a2a`] with the
//! node's messaging service as its [`AgentBackend`](crate::a2a::AgentBackend).

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use super::{ApiState, messaging_error};
use crate::a2a::{VERSION_HEADER, card, rpc};

/// The host the client reached us at (the card's interface URL points back at it).
fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1")
}

/// `GET /a2a/{agent}/.well-known/agent-card.json`.
pub(super) async fn a2a_card(
    State(state): State<ApiState>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.inner.messaging.agent(&agent, false).await {
        Ok(view) => {
            let remote = crate::a2a::RemoteAgent {
                uid: view.uid,
                name: view.name,
                card: view.card,
            };
            Json(card::agent_card(&remote, host(&headers))).into_response()
        }
        Err(e) => messaging_error(e),
    }
}

/// `POST /a2a/{agent}/`: A2A's JSON-RPC methods.
pub(super) async fn a2a_rpc(
    State(state): State<ApiState>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let version = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok());
    rpc::handle(&state.inner.messaging, &agent, version, &body).await
}
