//! The channel routes (`/v1/channels`): joined channels, their posts, posting.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ApiState, HistoryQuery, TextBody, messaging_error};

/// `POST /v1/channels` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateChannelRequest {
    /// The channel's name.
    pub name: String,
}

/// `POST /v1/channels/{id}/join` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JoinChannelRequest {
    /// A local label for it.
    #[serde(default)]
    pub name: Option<String>,
}

pub(super) async fn list_channels(State(state): State<ApiState>) -> Response {
    match state.inner.channels.list().await {
        Ok(c) => Json(c).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn create_channel(
    State(state): State<ApiState>,
    Json(body): Json<CreateChannelRequest>,
) -> Response {
    match state.inner.channels.create(&body.name).await {
        Ok(c) => (StatusCode::CREATED, Json(c)).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn join_channel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<JoinChannelRequest>,
) -> Response {
    match state.inner.channels.join(&id, body.name.as_deref()).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn leave_channel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    match state.inner.channels.leave(&id).await {
        Ok(left) => Json(serde_json::json!({"left": left})).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn read_channel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    match state
        .inner
        .channels
        .read(
            &id,
            q.limit.unwrap_or(100).min(crate::channels::MAX_HISTORY),
        )
        .await
    {
        Ok(p) => Json(p).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn post_channel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<TextBody>,
) -> Response {
    match state.inner.channels.post(&id, &body.text).await {
        Ok(p) => (StatusCode::CREATED, Json(p)).into_response(),
        Err(e) => messaging_error(e),
    }
}
