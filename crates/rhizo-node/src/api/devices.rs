//! The device routes (`/v1/devices`) of a node with the root key: list, link (add) and revoke
//! this identity's devices. A node without the root key answers them itself (see
//! [`crate::devices`]).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::ApiState;
use crate::devices::{AddDeviceRequest, DeviceError, device_error};

pub(super) async fn list_devices(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.devices().await {
        Ok(devices) => Json(devices).into_response(),
        Err(e) => device_error(&e),
    }
}

pub(super) async fn add_device(
    State(state): State<ApiState>,
    Json(body): Json<AddDeviceRequest>,
) -> Response {
    match state
        .inner
        .messaging
        .add_device(&body.ticket, body.name, body.history_days)
        .await
    {
        Ok(device) => (StatusCode::CREATED, Json(device)).into_response(),
        Err(e) => device_error(&e),
    }
}

pub(super) async fn revoke_device(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    match state.inner.messaging.revoke_device(&id).await {
        Ok(device) => Json(device).into_response(),
        Err(e) => device_error(&e),
    }
}

/// A device with the root key makes no link ticket: the new device does.
pub(super) async fn link_ticket() -> Response {
    device_error(&DeviceError::AlreadyLinked)
}
