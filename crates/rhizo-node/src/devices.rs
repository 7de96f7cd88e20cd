//! Linking devices (issue 15, first slice): a device with the root key links a new one over
//! `/rhizo/link/1`, certifies it and publishes a new device-list version; it can list and
//! revoke them.
//!
//! ```text
//!  new device (pending-link)                        device with the root key
//!  link_node: network + small API                   API POST /v1/devices {ticket}
//!  POST /v1/devices/link-ticket ─▶ LinkTicket       ─▶ Messaging::add_device
//!  responder::answer_link ◀── hello ──────────────── requester::hello
//!                         ──▶ proof ─────────────▶  certificate + new DeviceList (engine)
//!  DataDir::complete_link ◀── certificate ────────── requester::send_certificate, DHT put
//! ```
//!
//! Files: `link_node` (the node of a device without the root key), `responder` (its side of
//! `/rhizo/link/1`), `requester` (the other side).
//!
//! A linked device runs the full node without the root key (`Me::companion`). After the link
//! the device with the root key puts it in our groups (`messaging::device_join`), our sync
//! group and our open 1:1 conversations, and sends it the history (`messaging::sync`).

use axum::http::StatusCode;
use rhizo_core::link::{LinkError, LinkRefusal};
use serde::{Deserialize, Serialize};

use crate::messaging::JobError;

mod link_node;
pub(crate) mod requester;
pub(crate) mod responder;

pub(crate) use link_node::run_link_node;

#[cfg(test)]
mod tests;

/// Why a device operation failed, each saying what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The ticket could not be read or has expired.
    #[error(transparent)]
    BadTicket(#[from] LinkError),
    /// The ticket is this device's own.
    #[error("this ticket is this device's own: run `rhizo device add` on another device")]
    Ourselves,
    /// The new device could not be reached.
    #[error(
        "cannot reach the new device at the ticket's addresses ({0}): is `rhizo run` running \
         there, on a network this device can reach?"
    )]
    Unreachable(String),
    /// The new device refused.
    #[error(transparent)]
    Refused(LinkRefusal),
    /// The new device's answer does not prove it holds the ticket's secret.
    #[error("the new device's answer does not prove the ticket's secret: nothing was linked")]
    WrongProof,
    /// The identity already has 16 devices.
    #[error(
        "this identity already has 16 devices, the most a device list holds: revoke one with \
         `rhizo device revoke DEVICE` first"
    )]
    TooManyDevices,
    /// No linked device matches.
    #[error("no linked device {0}: see `rhizo device list`")]
    UnknownDevice(String),
    /// The device asked to revoke is this one.
    #[error("this is the device you are running on; revoke it from another device")]
    ThisDevice,
    /// This device has no root key (a linked device).
    #[error(
        "this device does not hold the root key: add, list and revoke devices on the device \
         that does"
    )]
    NoRootKey,
    /// This device is already linked or holds the root key: it makes no link ticket.
    #[error(
        "this device already has an identity: run `rhizo device link` on the new device (made \
         with `rhizo init --link`)"
    )]
    AlreadyLinked,
    /// The database or the engine failed.
    #[error(transparent)]
    Job(#[from] JobError),
}

impl DeviceError {
    /// The HTTP status and the stable code of the local API (docs/local-api.md, "Errors").
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadTicket(LinkError::Expired) => (StatusCode::BAD_REQUEST, "TICKET_EXPIRED"),
            Self::BadTicket(_) => (StatusCode::BAD_REQUEST, "BAD_TICKET"),
            Self::Ourselves => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
            Self::Unreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNREACHABLE"),
            Self::Refused(_) | Self::WrongProof => (StatusCode::CONFLICT, "LINK_REFUSED"),
            Self::TooManyDevices => (StatusCode::CONFLICT, "TOO_MANY_DEVICES"),
            Self::UnknownDevice(_) => (StatusCode::NOT_FOUND, "UNKNOWN_DEVICE"),
            Self::ThisDevice => (StatusCode::BAD_REQUEST, "THIS_DEVICE"),
            Self::NoRootKey => (StatusCode::CONFLICT, "NO_ROOT_KEY"),
            Self::AlreadyLinked => (StatusCode::CONFLICT, "ALREADY_LINKED"),
            Self::Job(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

/// The local API's answer to a [`DeviceError`]: its status, stable code and message.
pub(crate) fn device_error(e: &DeviceError) -> axum::response::Response {
    let (status, code) = e.status();
    crate::api::error(status, code, e.to_string())
}

/// `POST /v1/devices` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddDeviceRequest {
    /// The new device's link ticket (`rhz1link…`).
    pub ticket: String,
    /// A name for the device (at most 64 characters), shown in the list.
    #[serde(default)]
    pub name: Option<String>,
    /// Days of history to send the new device (default: the config's `devices.history_days`,
    /// 30; issue 15).
    #[serde(default)]
    pub history_days: Option<u32>,
}

/// One device of this identity, as `GET /v1/devices` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceView {
    /// The device's id: its PeerId.
    pub id: String,
    /// Its name (this device: none).
    pub name: Option<String>,
    /// Its fingerprint: the device public key's hex, grouped (what `device add` showed).
    pub fingerprint: String,
    /// When it was added (this device: when its certificate was made), Unix seconds.
    pub added_at: u64,
    /// When this node last saw it connected (peer book), Unix seconds; `None` if never.
    pub last_seen: Option<i64>,
    /// Whether it is the device answering.
    pub this_device: bool,
}

/// `POST /v1/devices/link-ticket` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkTicketView {
    /// The ticket text (`rhz1link…`).
    pub ticket: String,
    /// The ticket as a terminal QR code.
    pub qr: String,
    /// Until when it is valid, Unix seconds.
    pub expires_at: u64,
    /// This device's fingerprint, to compare with what `device add` shows.
    pub fingerprint: String,
}

/// How a device key is shown for comparison: its 64 hex digits in groups of 4, the first 8
/// groups (128 bits), e.g. `1a2b 3c4d …`.
pub fn device_fingerprint(device: &rhizo_core::DevicePublicKey) -> String {
    let hex = hex::encode(device.as_bytes());
    hex.as_bytes()
        .chunks(4)
        .take(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
