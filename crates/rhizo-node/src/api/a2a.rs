//! The A2A binding's routes (`/a2a/{agent}/…`): thin handlers over [`crate::a2a`] with the
//! node's messaging and file services as its [`AgentBackend`](crate::a2a::AgentBackend).

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use super::{ApiState, messaging_error};
use crate::a2a::{NodeAgents, VERSION_HEADER, card, rpc};

/// Largest A2A JSON-RPC request: a client's file bytes travel in it as base64 and are held
/// whole while it is parsed. Larger files go with `POST /v1/files` (streamed) and are named
/// `urn:rhizo:file:HASH`.
pub(super) const MAX_A2A_REQUEST_BYTES: usize = 16 << 20;

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
    body: Body,
) -> Response {
    let version = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok());
    let Ok(body) = axum::body::to_bytes(body, MAX_A2A_REQUEST_BYTES).await else {
        return rpc::too_large(MAX_A2A_REQUEST_BYTES);
    };
    let backend = NodeAgents::new(state.inner.messaging.clone(), state.inner.files.clone());
    rpc::handle(&backend, &agent, version, &body).await
}
