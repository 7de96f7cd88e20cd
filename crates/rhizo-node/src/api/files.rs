//! The file routes (`/v1/files`): send a file (from a path on this machine), list files, fetch
//! one, save it to a path, and download its plaintext (with `Range`).

use std::path::PathBuf;

use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rhizo_core::file::FileRef;
use serde::{Deserialize, Serialize};

use super::{ApiState, error, errors::messaging_error};
use crate::files::{FilesError, content::ContentError, file_name, guess_mime};
use crate::messaging::{GroupError, MessageView, MessagingError, SendError};

/// Chunks of plaintext buffered between the reader thread and the HTTP body.
const DOWNLOAD_BUFFER_CHUNKS: usize = 4;

/// `POST /v1/files` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendFileRequest {
    /// A contact's name or UID, or a group's id or name.
    pub to: String,
    /// `to` is a group (else a group is tried when no contact has that name).
    #[serde(default)]
    pub group: bool,
    /// The file's absolute path on this machine.
    pub path: String,
    /// A caption, if any.
    #[serde(default)]
    pub caption: Option<String>,
    /// The MIME type, if known (else guessed from the name's extension).
    #[serde(default)]
    pub mime: Option<String>,
    /// An id (1 to 64 characters) for `file_import` events on `/v1/events` while the file is
    /// encrypted (a progress bar); none without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// Longest `progress` id of `POST /v1/files`.
const MAX_PROGRESS_ID_CHARS: usize = 64;

/// `POST /v1/files/{id}/save` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveFileRequest {
    /// Where to write the plaintext (an absolute path on this machine).
    pub path: String,
}

/// `POST /v1/files` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentFile {
    /// The message carrying the file.
    pub message: MessageView,
    /// The file.
    pub file: crate::files::FileView,
}

pub(super) fn files_error(e: FilesError) -> Response {
    let (status, code) = match &e {
        FilesError::UnknownFile(_) => (StatusCode::NOT_FOUND, "UNKNOWN_FILE"),
        FilesError::NotReady(_) => (StatusCode::CONFLICT, "FILE_NOT_READY"),
        FilesError::Content(ContentError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "FILE_TOO_LARGE")
        }
        FilesError::Content(ContentError::CapReached { .. }) => {
            (StatusCode::INSUFFICIENT_STORAGE, "STORAGE_FULL")
        }
        FilesError::Content(ContentError::Io { .. }) => (StatusCode::BAD_REQUEST, "FILE_IO"),
        FilesError::Content(ContentError::File(_)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "BAD_FILE")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    };
    // The whole chain, so the user sees why (e.g. which path could not be read).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    error(status, code, message)
}

/// Largest JSON body of `POST /v1/files` (a path and a caption).
const MAX_SEND_JSON_BYTES: usize = 64 * 1024;

/// `POST /v1/files` query, when the body is the file's content (any type but JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UploadQuery {
    /// A contact's name or UID, or a group's id or name.
    #[serde(default)]
    pub to: Option<String>,
    /// The file's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `to` is a group.
    #[serde(default)]
    pub group: bool,
    /// A caption, if any.
    #[serde(default)]
    pub caption: Option<String>,
    /// The MIME type, if known.
    #[serde(default)]
    pub mime: Option<String>,
}

/// `POST /v1/files`: a JSON body names a file on this machine; any other body is the file's
/// content, streamed to disk (bounded memory, at most `files_max_mib`), named by the query.
pub(super) async fn send_file(
    State(state): State<ApiState>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let bytes = match axum::body::to_bytes(body, MAX_SEND_JSON_BYTES).await {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_INPUT", e.to_string()),
        };
        let request: SendFileRequest = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_INPUT", e.to_string()),
        };
        let name = PathBuf::from(&request.path)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(file_name);
        let Some(name) = name else {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_PATH",
                format!(
                    "{}: give the path of a file (its name at most 255 bytes)",
                    request.path
                ),
            );
        };
        let path = PathBuf::from(&request.path);
        return send_from(&state, request, name, path).await;
    }
    let (Some(to), Some(name)) = (query.to.clone(), query.name.as_deref().and_then(file_name))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_INPUT",
            "give ?to=CONTACT_OR_GROUP&name=FILE_NAME (a name of 1 to 255 bytes, no '/') with the \
             content as the body, or a JSON body with a path",
        );
    };
    let files = &state.inner.files;
    let upload = match files.receive_upload(body.into_data_stream()).await {
        Ok(path) => path,
        Err(e) => return files_error(e),
    };
    let request = SendFileRequest {
        to,
        group: query.group,
        path: upload.display().to_string(),
        caption: query.caption,
        mime: query.mime,
        progress: None,
    };
    let response = send_from(&state, request, name, upload.clone()).await;
    let _ = tokio::fs::remove_file(&upload).await;
    response
}

/// Imports the file at `path` (named `name`) and sends it as `request` says.
async fn send_from(
    state: &ApiState,
    body: SendFileRequest,
    name: String,
    path: PathBuf,
) -> Response {
    let files = &state.inner.files;
    let progress = body
        .progress
        .clone()
        .filter(|p| !p.is_empty() && p.chars().count() <= MAX_PROGRESS_ID_CHARS);
    let imported = match progress {
        Some(id) => {
            let total = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
            let events = files.import_events(id, name.clone(), total);
            files.import(path, events).await
        }
        None => files.import(path, |_| {}).await,
    };
    let imported = match imported {
        Ok(i) => i,
        Err(e) => return files_error(e),
    };
    let inline = files.inline_content(imported.hash, imported.size).await;
    let mime = body
        .mime
        .filter(|m| !m.is_empty() && m.len() <= rhizo_core::file::MAX_MIME_BYTES && m.is_ascii())
        .unwrap_or_else(|| guess_mime(&name).to_string());
    let file = FileRef {
        name,
        size: imported.size,
        mime,
        hash: imported.hash,
        key: imported.key,
        inline,
    };
    let caption = body.caption.unwrap_or_default();
    let messaging = &state.inner.messaging;
    // A group when asked for, or when no contact has the name.
    let sent = if body.group {
        messaging
            .send_group_file(&body.to, file, &caption)
            .await
            .map(|(m, _)| m)
            .map_err(MessagingError::from)
    } else {
        match messaging.send_file(&body.to, file.clone(), &caption).await {
            Err(SendError::UnknownContact(name)) => messaging
                .send_group_file(&body.to, file, &caption)
                .await
                .map(|(m, _)| m)
                .map_err(|e| match e {
                    GroupError::UnknownGroup(_) => SendError::UnknownContact(name).into(),
                    e => MessagingError::from(e),
                }),
            sent => sent.map_err(MessagingError::from),
        }
    };
    let message = match sent {
        Ok(m) => m,
        Err(e) => return messaging_error(e),
    };
    match files.get(message.id).await {
        Ok(file) => (StatusCode::CREATED, Json(SentFile { message, file })).into_response(),
        Err(e) => files_error(e),
    }
}

pub(super) async fn file_stats(State(state): State<ApiState>) -> Response {
    Json(state.inner.files.stats_view()).into_response()
}

pub(super) async fn list_files(State(state): State<ApiState>) -> Response {
    match state.inner.files.list().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => files_error(e),
    }
}

pub(super) async fn file_info(State(state): State<ApiState>, Path(id): Path<i64>) -> Response {
    match state.inner.files.get(id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => files_error(e),
    }
}

pub(super) async fn fetch_file(State(state): State<ApiState>, Path(id): Path<i64>) -> Response {
    match state.inner.files.request(id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => files_error(e),
    }
}

pub(super) async fn save_file(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    Json(body): Json<SaveFileRequest>,
) -> Response {
    match state.inner.files.save(id, PathBuf::from(body.path)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => files_error(e),
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `size`-byte file, as `a..b+1`; `None` when
/// malformed or unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (from, to) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.saturating_add(1).min(size),
        ),
    };
    (from < to && to <= size).then_some((from, to))
}

pub(super) async fn download_file(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let (view, reader) = match state.inner.files.read(id).await {
        Ok(r) => r,
        Err(e) => return files_error(e),
    };
    let size = view.size;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size));
    let (status, (from, to)) = match range {
        None => (StatusCode::OK, (0, size)),
        Some(Some(r)) => (StatusCode::PARTIAL_CONTENT, r),
        Some(None) => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BAD_RANGE",
                format!("the file has {size} bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(DOWNLOAD_BUFFER_CHUNKS);
    reader((from, to), tx);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&view.mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(to - from));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {from}-{}/{size}", to - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
