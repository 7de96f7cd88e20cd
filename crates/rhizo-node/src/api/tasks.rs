//! The task routes: `/v1/tasks` (the client side: delegate, list, show, cancel, input) and
//! `/v1/agent/tasks` (the worker side: the queue, claiming, updates).

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use rhizo_core::agent::{NewTask, TaskUpdateInput};
use serde::{Deserialize, Serialize};

use super::{ApiState, messaging_error};
use crate::messaging::{MessagingError, TaskInputBody, TaskListQuery, parse_states};

/// `GET /v1/agent/tasks` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerTasksQuery {
    /// States, comma-separated (default: submitted, working, input-required).
    #[serde(default)]
    pub state: Option<String>,
}

pub(super) async fn create_task(
    State(state): State<ApiState>,
    Json(body): Json<NewTask>,
) -> Response {
    match state.inner.messaging.delegate(body).await {
        Ok(task) => (StatusCode::CREATED, Json(task)).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn list_tasks(
    State(state): State<ApiState>,
    Query(query): Query<TaskListQuery>,
) -> Response {
    match state.inner.messaging.tasks(query).await {
        Ok(tasks) => Json(tasks).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn show_task(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.inner.messaging.task(&id).await {
        Ok(task) => Json(task).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn cancel_task(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.inner.messaging.cancel_task(&id).await {
        Ok(task) => Json(task).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn task_input(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<TaskInputBody>,
) -> Response {
    match state.inner.messaging.task_input(&id, body).await {
        Ok(task) => Json(task).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn worker_tasks(
    State(state): State<ApiState>,
    Query(query): Query<WorkerTasksQuery>,
) -> Response {
    let states = match query.state.as_deref().map(parse_states).transpose() {
        Ok(states) => states,
        Err(e) => return messaging_error(e),
    };
    match state.inner.messaging.worker_tasks(states).await {
        Ok(tasks) => Json(tasks).into_response(),
        Err(e) => messaging_error(e),
    }
}

pub(super) async fn update_task(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<TaskUpdateInput>,
) -> Response {
    match state.inner.messaging.update_task(&id, body).await {
        Ok(task) => Json(task).into_response(),
        Err(e) => messaging_error(e),
    }
}

/// `POST /v1/agent/tasks/next` body (optional: no body, or `{}`, claims only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    /// The update to apply in the same call (an instant worker's answer, e.g. `completed`
    /// with its artifacts).
    #[serde(default)]
    update: Option<TaskUpdateInput>,
}

pub(super) async fn claim_next_task(State(state): State<ApiState>, body: Bytes) -> Response {
    let body: ClaimBody = if body.iter().all(u8::is_ascii_whitespace) {
        ClaimBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                return messaging_error(MessagingError::BadInput(format!(
                    "the body of POST /v1/agent/tasks/next must be {{}} or \
                     {{\"update\": {{\"state\": …}}}}: {e}"
                )));
            }
        }
    };
    match state.inner.messaging.claim_next_task(body.update).await {
        Ok(Some(task)) => Json(task).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => messaging_error(e),
    }
}
