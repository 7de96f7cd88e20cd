//! The JSON messages of `/v1/ws`, carried one per frame inside the paired channel: seed 002's
//! messages mapped onto rhizo. docs/local-api.md ("WebSocket API") is the schema.

use serde::{Deserialize, Serialize};

use crate::events::ApiEvent;
use crate::messaging::ContactView;

/// A message from the light client. `request_id` (any number the client picks) is echoed in
/// the answer, so answers can be matched to requests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Says who we are: answered with `registered`.
    Register {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
    },
    /// Lists the contacts with their presence: answered with `peers`.
    Discover {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
    },
    /// A contact's identity as the node verified it: answered with `public_key_response`.
    RequestPublicKey {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
        /// The contact's name (or UID).
        peer: String,
    },
    /// Sends a text to a contact: answered with `message_state`, then more as it changes.
    Message {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
        /// The contact's name.
        to: String,
        /// The text.
        text: String,
    },
    /// Lists our private groups: answered with `groups`.
    Groups {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
    },
    /// Sends a text to a group: answered with `group_message_state`, then `event`s
    /// (`group_message_state`) as receipts come in.
    GroupMessage {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
        /// The group's id.
        group: String,
        /// The text.
        text: String,
    },
    /// Lists files sent and received: answered with `files`.
    Files {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
    },
    /// Lists tasks on either side, newest first: answered with `tasks`.
    Tasks {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
    },
    /// Keep-alive: answered with `pong`.
    Ping {
        /// Echoed.
        #[serde(default)]
        request_id: Option<u64>,
    },
}

/// A contact as `peers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsPeer {
    /// The contact's name (what `to` and `peer` take).
    pub id: String,
    /// Its UID.
    pub uid: String,
    /// Whether one of its devices is connected to the node now.
    pub online: bool,
    /// Whether the safety number was compared and marked verified.
    pub verified: bool,
}

/// A message from the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `register`: the node's identity and this client's id.
    Registered {
        /// Echoed.
        request_id: Option<u64>,
        /// The user's UID.
        uid: String,
        /// This light client's id (as `rhizo pair list` shows it).
        client_id: String,
    },
    /// The answer to `discover`.
    Peers {
        /// Echoed.
        request_id: Option<u64>,
        /// The contacts.
        peers: Vec<WsPeer>,
    },
    /// The answer to `request_public_key`: checked by the node against the UID, never taken
    /// from a server.
    PublicKeyResponse {
        /// Echoed.
        request_id: Option<u64>,
        /// The contact's name.
        peer: String,
        /// Its UID.
        uid: String,
        /// Its root key's fingerprint.
        fingerprint: String,
        /// The safety number between the user and the contact.
        safety_number: String,
        /// Whether it was compared and marked verified.
        verified: bool,
        /// Its devices (libp2p peer ids), each certified by its root key.
        devices: Vec<String>,
    },
    /// A message arrived from a contact.
    Message {
        /// Message id (as in the history).
        id: i64,
        /// The contact's name.
        from: String,
        /// The text.
        text: String,
        /// The sender's clock, Unix milliseconds.
        sent_at: i64,
    },
    /// An outgoing message's delivery state: `queued`, `sent`, `stored`, `delivered`, `read`
    /// or `failed`.
    MessageState {
        /// Echoed for the first state of a `message`; absent afterwards.
        request_id: Option<u64>,
        /// Message id.
        id: i64,
        /// The contact's name.
        peer: String,
        /// The state.
        state: String,
    },
    /// A contact came online (one of its devices connected).
    PeerConnected {
        /// The contact's name.
        peer: String,
    },
    /// A contact went offline (none of its devices is connected).
    PeerDisconnected {
        /// The contact's name.
        peer: String,
    },
    /// The answer to `groups`: `GET /v1/groups`'s items (at most [`MAX_LIST`]).
    Groups {
        /// Echoed.
        request_id: Option<u64>,
        /// The groups.
        groups: serde_json::Value,
    },
    /// The answer to `group_message`: its id, state and how many member devices it went to.
    GroupMessageState {
        /// Echoed.
        request_id: Option<u64>,
        /// Message id.
        id: i64,
        /// The group's id.
        group: String,
        /// The state.
        state: String,
        /// Member devices it went to.
        total: u32,
    },
    /// The answer to `files`: `GET /v1/files`'s items (at most [`MAX_LIST`]).
    Files {
        /// Echoed.
        request_id: Option<u64>,
        /// The files, newest first.
        files: serde_json::Value,
    },
    /// The answer to `tasks`: `GET /v1/tasks`'s items (at most [`MAX_LIST`]).
    Tasks {
        /// Echoed.
        request_id: Option<u64>,
        /// The tasks, newest first.
        tasks: serde_json::Value,
    },
    /// Any other event, exactly as `GET /v1/events` carries it.
    Event {
        /// The event (`group_message_received`, `file_progress`, `typing`, `presence`, …).
        event: ApiEvent,
    },
    /// The answer to `ping`.
    Pong {
        /// Echoed.
        request_id: Option<u64>,
    },
    /// A request failed, or the node dropped events for this client.
    Error {
        /// The request's id, if the error answers one.
        request_id: Option<u64>,
        /// A stable code (see docs/local-api.md).
        code: String,
        /// What happened and what to do, for people.
        message: String,
    },
}

/// Most items a list answer (`groups`, `files`, `tasks`) carries, so it fits one frame.
pub const MAX_LIST: usize = 100;

/// The WebSocket-only error codes (the others are the HTTP API's).
pub mod codes {
    /// The frame is not a JSON message of this schema.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// More requests than the per-client rate allows.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The client fell behind and events were dropped: re-read the history.
    pub const LAGGED: &str = "LAGGED";
    /// The node cannot answer now.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
}

impl ServerMessage {
    /// An error answer.
    pub fn error(request_id: Option<u64>, code: &str, message: impl Into<String>) -> Self {
        Self::Error {
            request_id,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The message an API event becomes for a light client.
    pub fn from_event(event: ApiEvent) -> Self {
        match event {
            ApiEvent::MessageReceived {
                id,
                contact,
                text,
                sent_at,
                ..
            } => Self::Message {
                id,
                from: contact,
                text,
                sent_at,
            },
            ApiEvent::MessageState { id, contact, state } => Self::MessageState {
                request_id: None,
                id,
                peer: contact,
                state,
            },
            // Every other event as `GET /v1/events` carries it: groups, files, tasks, presence
            // (with `last_seen`), typing, key changes, requests, contacts, devices. A light
            // client is the user's own, so it sees what the user's API sees.
            event => Self::Event { event },
        }
    }

    /// The `public_key_response` for a contact.
    pub fn public_key(request_id: Option<u64>, contact: ContactView) -> Self {
        Self::PublicKeyResponse {
            request_id,
            peer: contact.name,
            uid: contact.uid,
            fingerprint: contact.fingerprint,
            safety_number: contact.safety_number,
            verified: contact.verified,
            devices: contact.devices,
        }
    }
}
