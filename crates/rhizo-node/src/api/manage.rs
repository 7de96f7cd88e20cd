//! The routes that manage contacts and conversations (issue 20): rename, remove, block and
//! unblock a contact; list, delete, mute and archive conversations; delete a message here or
//! for everyone (see [`crate::messaging`]'s `manage`).

use axum::{
    Json,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ApiState, DroppedResponse, messaging_error};

/// `PATCH /v1/contacts/{name}` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameContactRequest {
    /// The new local name.
    pub name: String,
}

/// `PATCH /v1/conversations/{id}` body: what to change (absent: unchanged).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConversationSettingsRequest {
    /// Mute (true) or unmute (false).
    #[serde(default)]
    pub muted: Option<bool>,
    /// Archive (true) or unarchive (false).
    #[serde(default)]
    pub archived: Option<bool>,
}

/// `?archived=true` on `GET /v1/conversations`: list archived conversations too.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConversationsQuery {
    /// Also the archived ones.
    #[serde(default)]
    pub archived: bool,
}

/// `?for_everyone=true` on `DELETE /v1/messages/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeleteMessageQuery {
    /// Also ask the other members' nodes to delete it (our own messages only; best effort).
    #[serde(default)]
    pub for_everyone: bool,
}

pub(super) async fn rename_contact(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Json(body): Json<RenameContactRequest>,
) -> Response {
    match state
        .inner
        .messaging
        .rename_contact(&name, &body.name)
        .await
    {
        Ok(contact) => Json(contact).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn remove_contact(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    match state.inner.messaging.remove_contact(&name).await {
        Ok(()) => Json(serde_json::json!({ "removed": name })).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn block_contact(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    match state.inner.messaging.block(&name).await {
        Ok(dropped) => Json(DroppedResponse { dropped }).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn unblock_contact(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    match state.inner.messaging.unblock(&name).await {
        Ok(()) => Json(serde_json::json!({ "unblocked": name })).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn list_conversations(
    State(state): State<ApiState>,
    Query(q): Query<ConversationsQuery>,
) -> Response {
    match state.inner.messaging.conversations(q.archived).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn update_conversation(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<ConversationSettingsRequest>,
) -> Response {
    match state
        .inner
        .messaging
        .set_conversation(&id, body.muted, body.archived)
        .await
    {
        Ok(view) => Json(view).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn delete_conversation(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    match state.inner.messaging.delete_conversation(&id).await {
        Ok(deleted) => Json(serde_json::json!({ "deleted": deleted })).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn typing(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.inner.messaging.send_typing(&id).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn delete_message(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    Query(q): Query<DeleteMessageQuery>,
) -> Response {
    match state
        .inner
        .messaging
        .delete_message(id, q.for_everyone)
        .await
    {
        Ok(view) => Json(view).into_response(),
        Err(e) => messaging_error(e),
    }
}
