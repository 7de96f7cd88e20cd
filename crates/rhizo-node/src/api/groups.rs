//! The group routes (`/v1/groups`, `/v1/group-requests`): private MLS groups — create, list,
//! info, members, admins, rename, leave, messages — and held invitations.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ApiState, HistoryQuery, TextBody, messaging_error};
use crate::messaging::{GroupError, GroupMemberView};

/// `POST /v1/groups` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateGroupRequest {
    /// The group's name.
    pub name: String,
    /// Contact names or UIDs.
    #[serde(default)]
    pub members: Vec<String>,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /v1/groups/{id}/members` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMembersRequest {
    /// Contact names or UIDs.
    pub members: Vec<String>,
}

/// `POST /v1/groups/{id}/admins` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminRequest {
    /// The member to make admin: a contact name or UID.
    pub member: String,
}

/// `PATCH /v1/groups/{id}` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateGroupRequest {
    /// The new name.
    #[serde(default)]
    pub name: Option<String>,
    /// The new description.
    #[serde(default)]
    pub description: Option<String>,
}

pub(super) async fn list_groups(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.groups().await {
        Ok(g) => Json(g).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn create_group(
    State(state): State<ApiState>,
    Json(body): Json<CreateGroupRequest>,
) -> Response {
    let messaging = &state.inner.messaging;
    let group = match messaging.create_group(&body.name, body.members).await {
        Ok(group) => group,
        Err(e) => return messaging_error(e),
    };
    let id = rhizo_engine::groups::group_id_hex(&group.session_id);
    if let Some(description) = body.description
        && let Err(e) = messaging
            .update_group_profile(&id, None, Some(description))
            .await
    {
        return messaging_error(e);
    }
    match messaging.group_info(&id).await {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn show_group(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.inner.messaging.group_info(&id).await {
        Ok(info) => Json(info).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn update_group(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateGroupRequest>,
) -> Response {
    let messaging = &state.inner.messaging;
    if let Err(e) = messaging
        .update_group_profile(&id, body.name, body.description)
        .await
    {
        return messaging_error(e);
    }
    match messaging.group_info(&id).await {
        Ok(info) => Json(info).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn add_group_members(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<AddMembersRequest>,
) -> Response {
    match state
        .inner
        .messaging
        .add_group_members(&id, body.members)
        .await
    {
        Ok(added) => Json(serde_json::json!({ "added": added })).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn remove_group_member(
    State(state): State<ApiState>,
    Path((id, member)): Path<(String, String)>,
) -> Response {
    match state
        .inner
        .messaging
        .remove_group_member(&id, &member)
        .await
    {
        Ok(removed) => Json(serde_json::json!({ "removed": removed })).into_response(),
        Err(e) => messaging_error(e),
    }
}

/// The admins among a group's members, as `GET /v1/groups/{id}` shows them.
async fn admins_of(state: &ApiState, id: &str) -> Result<Vec<GroupMemberView>, GroupError> {
    let info = state.inner.messaging.group_info(id).await?;
    Ok(info
        .members
        .into_iter()
        .filter(|m| m.role == "admin")
        .collect())
}

pub(super) async fn list_group_admins(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    match admins_of(&state, &id).await {
        Ok(admins) => Json(admins).into_response(),
        Err(e) => messaging_error(e),
    }
}

/// Promotes (`admin`) or demotes `member`; `{"changed", "admins"}`.
async fn set_admin(state: &ApiState, id: &str, member: &str, admin: bool) -> Response {
    let changed = match state
        .inner
        .messaging
        .set_group_admin(id, member, admin)
        .await
    {
        Ok(changed) => changed,
        Err(e) => return messaging_error(e),
    };
    match admins_of(state, id).await {
        Ok(admins) => {
            Json(serde_json::json!({ "changed": changed, "admins": admins })).into_response()
        }
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn add_group_admin(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<AdminRequest>,
) -> Response {
    set_admin(&state, &id, &body.member, true).await
}

pub(super) async fn remove_group_admin(
    State(state): State<ApiState>,
    Path((id, member)): Path<(String, String)>,
) -> Response {
    set_admin(&state, &id, &member, false).await
}

pub(super) async fn leave_group(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.inner.messaging.leave_group(&id).await {
        Ok(()) => Json(serde_json::json!({ "left": true })).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn list_group_messages(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(1000).min(10_000);
    match state
        .inner
        .messaging
        .group_history(&id, limit, q.mark_read)
        .await
    {
        Ok(m) => Json(m).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn post_group_message(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<TextBody>,
) -> Response {
    match state.inner.messaging.send_group_text(&id, &body.text).await {
        Ok((message, total)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "message": message, "total": total })),
        )
            .into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn list_group_requests(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.group_requests().await {
        Ok(r) => Json(r).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn accept_group_request(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
) -> Response {
    match state.inner.messaging.accept_group_request(id).await {
        Ok(group) => Json(group).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn decline_group_request(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
) -> Response {
    match state.inner.messaging.decline_group_request(id).await {
        Ok(()) => Json(serde_json::json!({ "declined": true })).into_response(),
        Err(e) => messaging_error(e),
    }
}
