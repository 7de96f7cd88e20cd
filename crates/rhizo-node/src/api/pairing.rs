//! The pairing routes (`/v1/pairings`): a ticket for a new light client, the paired clients,
//! revoking one. The light clients themselves speak `/v1/ws` ([`super::ws`]).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ApiState, error};
use crate::pairing::PairingError;
use crate::pairing::ticket::PAIR_TICKET_TTL_SECS;

/// `POST /v1/pairings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewPairingRequest {
    /// A name for the client (`rhizo pair --name`); `light client` if absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the client reaches the node, if not the local API's `/v1/ws`: a gateway's
    /// `ws://HOST:PORT/v1/gateway/<this node's peer id>` (`rhizo pair --url`).
    #[serde(default)]
    pub url: Option<String>,
}

/// The answer to `POST /v1/pairings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewPairingResponse {
    /// The ticket (`rhz1pair…`): give it to the light client, once.
    pub ticket: String,
    /// The ticket as a terminal QR code.
    pub qr: String,
    /// Where the ticket says the node is reached.
    pub url: String,
    /// Unix seconds after which the ticket no longer pairs.
    pub expires_at: u64,
}

fn pairing_error(e: &PairingError) -> Response {
    let (status, code) = match e {
        PairingError::TooManyPending | PairingError::TooManyClients => {
            (StatusCode::CONFLICT, "TOO_MANY")
        }
        PairingError::NoSuchClient(_) | PairingError::UnknownClient => {
            (StatusCode::NOT_FOUND, "UNKNOWN_CLIENT")
        }
        PairingError::BadInput(_) => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    };
    error(status, code, e.to_string())
}

pub(super) async fn new_pairing(
    State(state): State<ApiState>,
    body: Option<Json<NewPairingRequest>>,
) -> Response {
    let light = &state.inner.light;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let name = body.name.unwrap_or_else(|| "light client".to_owned());
    let url = body.url.unwrap_or_else(|| light.url.clone());
    let now = u64::try_from(crate::unix_now()).unwrap_or(0);
    match light.book.new_ticket(&url, &name, now) {
        Ok(ticket) => (
            StatusCode::CREATED,
            Json(NewPairingResponse {
                qr: ticket.to_qr_string(),
                ticket: ticket.to_string(),
                url: ticket.url.clone(),
                expires_at: now + PAIR_TICKET_TTL_SECS,
            }),
        )
            .into_response(),
        Err(e) => pairing_error(&e),
    }
}

pub(super) async fn list_pairings(State(state): State<ApiState>) -> Response {
    Json(state.inner.light.book.list()).into_response()
}

pub(super) async fn revoke_pairing(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    match state.inner.light.book.revoke(&id) {
        Ok(client) => Json(client).into_response(),
        Err(e) => pairing_error(&e),
    }
}
