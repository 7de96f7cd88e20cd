//! The ban routes (`/v1/bans`): the peer policy's bans, read, added and lifted.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ApiState, error};

/// `POST /v1/bans` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BanRequest {
    /// A peer id, or an IP range (CIDR) or address.
    pub target: String,
    /// How long; none: until unbanned.
    #[serde(default)]
    pub seconds: Option<u64>,
    /// Why (shown in `rhizo bans`).
    #[serde(default)]
    pub reason: Option<String>,
}

fn peer_policy_error(e: crate::peer_policy::PeerPolicyError) -> Response {
    match e {
        crate::peer_policy::PeerPolicyError::BadTarget(_) => {
            error(StatusCode::BAD_REQUEST, "BAD_TARGET", e.to_string())
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()),
    }
}

pub(super) async fn list_bans(State(state): State<ApiState>) -> Response {
    match state.inner.guard.bans().await {
        Ok(b) => Json(b).into_response(),
        Err(e) => peer_policy_error(e),
    }
}

pub(super) async fn add_ban(
    State(state): State<ApiState>,
    Json(body): Json<BanRequest>,
) -> Response {
    let duration = body.seconds.map(std::time::Duration::from_secs);
    match state
        .inner
        .guard
        .ban(&body.target, duration, body.reason.as_deref().unwrap_or(""))
        .await
    {
        Ok(b) => (StatusCode::CREATED, Json(b)).into_response(),
        Err(e) => peer_policy_error(e),
    }
}

pub(super) async fn remove_ban(
    State(state): State<ApiState>,
    Path(target): Path<String>,
) -> Response {
    match state.inner.guard.unban(&target).await {
        Ok(true) => Json(serde_json::json!({"removed": true})).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "NOT_BANNED",
            format!("{target} is not banned"),
        ),
        Err(e) => peer_policy_error(e),
    }
}
