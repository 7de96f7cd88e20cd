//! The `/v1/ws` requests beyond seed 002's: groups, a group message, files and tasks (what the
//! rest of rhizo has; their events come through [`ServerMessage::from_event`]).

use serde::Serialize;

use super::protocol::{ClientMessage, MAX_LIST, ServerMessage, codes};
use super::{ApiState, messaging_failure};
use crate::messaging::MessagingError;

/// At most [`MAX_LIST`] items of `items`, as JSON, wrapped in their answer.
fn list<T: Serialize>(
    request_id: Option<u64>,
    items: &[T],
    wrap: impl FnOnce(serde_json::Value) -> ServerMessage,
) -> ServerMessage {
    match serde_json::to_value(&items[..items.len().min(MAX_LIST)]) {
        Ok(value) => wrap(value),
        Err(e) => ServerMessage::error(request_id, codes::UNAVAILABLE, e.to_string()),
    }
}

/// Answers the requests [`super::answer`] leaves to this module.
pub(super) async fn answer(state: &ApiState, request: ClientMessage) -> ServerMessage {
    let messaging = &state.inner.messaging;
    match request {
        ClientMessage::Groups { request_id } => match messaging.groups().await {
            Ok(groups) => list(request_id, &groups, |groups| ServerMessage::Groups {
                request_id,
                groups,
            }),
            Err(e) => messaging_failure(request_id, &MessagingError::from(e)),
        },
        ClientMessage::GroupMessage {
            request_id,
            group,
            text,
        } => match messaging.send_group_text(&group, &text).await {
            Ok((m, total)) => ServerMessage::GroupMessageState {
                request_id,
                id: m.id,
                group,
                state: m.state,
                total,
            },
            Err(e) => messaging_failure(request_id, &MessagingError::from(e)),
        },
        ClientMessage::Files { request_id } => match state.inner.files.list().await {
            Ok(files) => list(request_id, &files, |files| ServerMessage::Files {
                request_id,
                files,
            }),
            Err(e) => ServerMessage::error(request_id, codes::UNAVAILABLE, e.to_string()),
        },
        ClientMessage::Tasks { request_id } => match messaging.tasks(Default::default()).await {
            Ok(tasks) => list(request_id, &tasks, |tasks| ServerMessage::Tasks {
                request_id,
                tasks,
            }),
            Err(e) => messaging_failure(request_id, &MessagingError::from(e)),
        },
        ClientMessage::Register { request_id }
        | ClientMessage::Discover { request_id }
        | ClientMessage::RequestPublicKey { request_id, .. }
        | ClientMessage::Message { request_id, .. }
        | ClientMessage::Ping { request_id } => {
            ServerMessage::error(request_id, codes::BAD_REQUEST, "answered elsewhere")
        }
    }
}
