//! `GET /v1/ws`: the WebSocket API for light clients (issue 17).
//!
//! ```text
//!  binary message 1 (client): Hello ──▶ PairingBook::psk_for ──▶ open_hello ──▶ Reply (node)
//!  binary message 2 (client): Finish ──▶ NodeHandshake::finish (a pairing is stored here)
//!  then every binary message is one channel frame holding one JSON message (protocol.rs):
//!     client frame ──open──▶ rate limit ──▶ ClientMessage ──▶ messaging ──▶ ServerMessage ──seal──▶
//!     ApiEvent broadcast (bounded, lag reported) ──▶ ServerMessage ──seal──▶
//!     presence tick ──▶ peer_connected / peer_disconnected, and the revocation check
//! ```
//!
//! The HTTP upgrade needs no bearer token (browsers cannot send one on a WebSocket, and the API
//! token must not leave the node): the channel authenticates the client with its pairing, and
//! `rhizo pair revoke` ends it. A failed handshake closes the socket with a close code (4400
//! malformed, 4401 unknown or revoked client, 4403 handshake failed, 4408 too slow); a frame
//! that is replayed, reordered or altered closes it with 4409.

mod more;
pub mod protocol;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::{ApiState, error, errors::error_status};
use crate::messaging::MessagingError;
use crate::pairing::channel::{self, Hello, MAX_FRAME_PLAINTEXT, SEQ_LEN, TAG_LEN, open_hello};
use crate::pairing::{PairingBook, Session};
use protocol::{ClientMessage, ServerMessage, WsPeer, codes};

/// Most light-client sessions at once: a person's handful of clients, with room for reconnects.
pub const MAX_LIGHT_SESSIONS: usize = 64;
/// How long the client has for each handshake message.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest WebSocket message: a hello, or a frame of the largest plaintext.
pub const MAX_WS_MESSAGE_BYTES: usize = MAX_FRAME_PLAINTEXT + SEQ_LEN + TAG_LEN;
/// How often presence is compared and the client's pairing re-checked.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a closing socket reads (and drops) what the client still sends, waiting for its
/// Close.
pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Requests per second a client may send on average.
pub const REQUESTS_PER_SECOND: f64 = 20.0;
/// Requests a client may send in a burst.
pub const REQUEST_BURST: f64 = 40.0;

/// What `/v1/ws` and `/v1/pairings` share: the pairing book, the URL tickets carry and the
/// session slots.
#[derive(Debug)]
pub struct LightApi {
    pub(crate) book: PairingBook,
    pub(crate) url: String,
    pub(crate) slots: Arc<Semaphore>,
}

impl LightApi {
    /// The light-client API of the node with `data_dir`, whose `/v1/ws` is at `api_addr`.
    ///
    /// # Errors
    ///
    /// The pairing files under `<data_dir>/light/` cannot be read, written or are damaged.
    pub fn open(
        data_dir: &std::path::Path,
        api_addr: std::net::SocketAddr,
    ) -> Result<Self, crate::data_dir::DataDirError> {
        use crate::{data_dir::DataDirError, pairing::PairingError};
        let book = PairingBook::open(data_dir).map_err(|e| match e {
            PairingError::Io { path, source } => DataDirError::Io {
                action: "cannot use the light-client pairing file",
                path,
                source,
            },
            PairingError::Damaged(path) => DataDirError::Damaged {
                path,
                reason: "not a light-client pairing file of this version \
                         (move it away: paired clients must pair again)"
                    .into(),
            },
            other => DataDirError::Keygen(other.to_string()),
        })?;
        Ok(Self::new(book, format!("ws://{api_addr}/v1/ws")))
    }

    /// The light-client API over `book`, announcing `url` in tickets.
    pub fn new(book: PairingBook, url: String) -> Self {
        Self {
            book,
            url,
            slots: Arc::new(Semaphore::new(MAX_LIGHT_SESSIONS)),
        }
    }
}

/// Why a session ended, as a WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Close(pub(crate) u16, pub(crate) &'static str);

/// The close of a session that ended normally.
pub(crate) const NORMAL_CLOSE: Close = NORMAL;

const MALFORMED: Close = Close(4400, "malformed handshake");
const UNKNOWN_CLIENT: Close = Close(4401, "unknown or revoked client: pair again");
const HANDSHAKE_FAILED: Close = Close(4403, "handshake failed");
const TOO_SLOW: Close = Close(4408, "handshake timed out");
const FRAME_ERROR: Close = Close(4409, "frame replayed, reordered or altered");
const SERVER_ERROR: Close = Close(1011, "node error");
const NORMAL: Close = Close(1000, "bye");

pub(super) async fn ws_upgrade(State(state): State<ApiState>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = state.inner.light.slots.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_CLIENTS",
            format!("{MAX_LIGHT_SESSIONS} light clients are connected already: try again later"),
        );
    };
    ws.max_message_size(MAX_WS_MESSAGE_BYTES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        .on_upgrade(move |mut socket| async move {
            let close = run_session(&state, &mut socket).await;
            socket.close(close).await;
            drop(permit);
        })
}

/// A message transport a session runs over: the WebSocket of `/v1/ws`, or a gateway's
/// `/rhizo/light/1` stream ([`crate::gateway`]). `recv` must be cancel-safe.
pub(crate) trait FrameLink: Send {
    /// The next binary message; `None` once the other end is gone.
    fn recv(&mut self) -> impl Future<Output = Option<Vec<u8>>> + Send;
    /// Sends one binary message; `false` if the other end is gone.
    fn send(&mut self, bytes: Vec<u8>) -> impl Future<Output = bool> + Send;
    /// Ends the session with `close`.
    fn close(&mut self, close: Close) -> impl Future<Output = ()> + Send;
}

impl FrameLink for WebSocket {
    async fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            match Self::recv(self).await {
                None | Some(Err(_) | Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Binary(bytes))) => return Some(bytes.to_vec()),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn send(&mut self, bytes: Vec<u8>) -> bool {
        Self::send(self, Message::Binary(bytes.into()))
            .await
            .is_ok()
    }

    async fn close(&mut self, close: Close) {
        let frame = CloseFrame {
            code: close.0,
            reason: close.1.into(),
        };
        if Self::send(self, Message::Close(Some(frame))).await.is_err() {
            return;
        }
        // The closing handshake: read (and drop) what the client still sends until its Close.
        // Dropping the socket with unread data makes the kernel reset the connection, which
        // can discard our Close frame before the client reads it (a flooding client would see
        // a reset instead of its close code). Bounded in time; nothing is kept.
        let _ = tokio::time::timeout(CLOSE_DRAIN, async {
            while let Some(Ok(message)) = Self::recv(self).await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// The next binary message within `limit`.
async fn recv_binary(link: &mut impl FrameLink, limit: Duration) -> Result<Vec<u8>, Close> {
    match tokio::time::timeout(limit, link.recv()).await {
        Err(_) => Err(TOO_SLOW),
        Ok(None) => Err(NORMAL),
        Ok(Some(bytes)) => Ok(bytes),
    }
}

/// Runs the handshake: the session and the client id (hex).
pub(crate) async fn handshake(
    book: &PairingBook,
    socket: &mut impl FrameLink,
) -> Result<(Session, String), Close> {
    let bytes = recv_binary(socket, HANDSHAKE_TIMEOUT).await?;
    let hello = Hello::parse(&bytes).map_err(|_| MALFORMED)?;
    let now = u64::try_from(crate::unix_now()).unwrap_or(0);
    let choice = book.psk_for(&hello, now).map_err(|_| UNKNOWN_CLIENT)?;
    let opened = open_hello(book.key(), &hello, &choice.psk).map_err(|_| HANDSHAKE_FAILED)?;
    let (node, reply) = opened.reply().map_err(|_| HANDSHAKE_FAILED)?;
    if !socket.send(reply).await {
        return Err(NORMAL);
    }
    let finish = recv_binary(socket, HANDSHAKE_TIMEOUT).await?;
    let (session, keys) = node.finish(&finish).map_err(|_| HANDSHAKE_FAILED)?;
    if choice.pairing_name.is_some() {
        // Persisted before the session is used.
        book.complete_pairing(&hello, &keys.pair_key, now)
            .map_err(|e| {
                tracing::warn!(error = %e, "light client pairing not stored");
                SERVER_ERROR
            })?;
    }
    Ok((session, hex::encode(channel::client_id(&hello.client_pk))))
}

/// A token bucket on the monotonic clock (tokio's, so tests can pause it).
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f64,
    at: Instant,
    per_second: f64,
    burst: f64,
}

impl RateLimit {
    /// The per-client request limit of `/v1/ws`.
    pub(crate) fn new() -> Self {
        Self::with(REQUESTS_PER_SECOND, REQUEST_BURST)
    }

    /// `per_second` on average, bursts of `burst`.
    pub(crate) fn with(per_second: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            at: Instant::now(),
            per_second,
            burst,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Seals `message` and sends it.
async fn send(
    socket: &mut impl FrameLink,
    session: &mut Session,
    message: &ServerMessage,
) -> Result<(), Close> {
    let json = serde_json::to_vec(message).map_err(|_| SERVER_ERROR)?;
    let frame = session.seal(&json).map_err(|_| SERVER_ERROR)?;
    if socket.send(frame).await {
        Ok(())
    } else {
        Err(NORMAL)
    }
}

/// Runs one light client's session over `socket` until it ends; how it ended.
pub(crate) async fn run_session(state: &ApiState, socket: &mut impl FrameLink) -> Close {
    let light = &state.inner.light;
    let (mut session, client_id) = match handshake(&light.book, socket).await {
        Ok(s) => s,
        Err(close) => return close,
    };
    tracing::info!(client = %&client_id[..8], "light client connected");
    let mut events = state.inner.messaging.subscribe();
    let mut tick = tokio::time::interval(PRESENCE_INTERVAL);
    let mut limit = RateLimit::new();
    let mut online: Option<HashSet<String>> = None;
    loop {
        let outcome = tokio::select! {
            biased;
            message = socket.recv() => {
                let Some(frame) = message else { return NORMAL };
                let Ok(plaintext) = session.open(&frame) else { return FRAME_ERROR };
                if !light.book.is_paired(&client_id) {
                    return UNKNOWN_CLIENT;
                }
                let answer = if limit.allow() {
                    answer(state, &client_id, &plaintext).await
                } else {
                    ServerMessage::error(None, codes::RATE_LIMITED, "too many requests: slow down")
                };
                send(socket, &mut session, &answer).await
            }
            event = events.recv() => match event {
                Ok(event) => send(socket, &mut session, &ServerMessage::from_event(event)).await,
                Err(RecvError::Lagged(n)) => {
                    let text = format!("{n} events were dropped: re-read the history");
                    send(socket, &mut session, &ServerMessage::error(None, codes::LAGGED, text)).await
                }
                Err(RecvError::Closed) => return NORMAL,
            },
            _ = tick.tick() => {
                if !light.book.is_paired(&client_id) {
                    return UNKNOWN_CLIENT;
                }
                presence(state, socket, &mut session, &mut online).await
            }
        };
        if let Err(close) = outcome {
            return close;
        }
    }
}

/// Sends `peer_connected` / `peer_disconnected` for every contact whose presence changed since
/// the last tick (the first tick only records it: `discover` reports the starting state).
async fn presence(
    state: &ApiState,
    socket: &mut impl FrameLink,
    session: &mut Session,
    online: &mut Option<HashSet<String>>,
) -> Result<(), Close> {
    let Ok(peers) = peers(state).await else {
        return Ok(());
    };
    let now: HashSet<String> = peers
        .into_iter()
        .filter(|p| p.online)
        .map(|p| p.id)
        .collect();
    if let Some(before) = online.as_ref() {
        for peer in now.difference(before) {
            let message = ServerMessage::PeerConnected { peer: peer.clone() };
            send(socket, session, &message).await?;
        }
        for peer in before.difference(&now) {
            let message = ServerMessage::PeerDisconnected { peer: peer.clone() };
            send(socket, session, &message).await?;
        }
    }
    *online = Some(now);
    Ok(())
}

/// The contacts with their presence.
async fn peers(state: &ApiState) -> Result<Vec<WsPeer>, ServerMessage> {
    let contacts = state
        .inner
        .messaging
        .contacts()
        .await
        .map_err(|e| messaging_failure(None, &MessagingError::from(e)))?;
    let connected: HashSet<String> = state
        .inner
        .client
        .peers()
        .await
        .map_err(|_| ServerMessage::error(None, codes::UNAVAILABLE, "the node is shutting down"))?
        .into_iter()
        // A contact that hides its presence shows offline (`crate::presence`).
        .filter(|p| p.connections > 0 && !crate::presence::hides(p.agent_version.as_deref()))
        .map(|p| p.peer_id.to_string())
        .collect();
    Ok(contacts
        .into_iter()
        .map(|c| WsPeer {
            online: c.devices.iter().any(|d| connected.contains(d)),
            id: c.name,
            uid: c.uid,
            verified: c.verified,
        })
        .collect())
}

fn messaging_failure(request_id: Option<u64>, e: &MessagingError) -> ServerMessage {
    let (_, code) = error_status(e);
    ServerMessage::error(request_id, code, e.to_string())
}

/// Answers one client message.
async fn answer(state: &ApiState, client_id: &str, plaintext: &[u8]) -> ServerMessage {
    let request: ClientMessage = match serde_json::from_slice(plaintext) {
        Ok(r) => r,
        Err(e) => {
            return ServerMessage::error(
                None,
                codes::BAD_REQUEST,
                format!("not a message of the /v1/ws schema: {e}"),
            );
        }
    };
    let messaging = &state.inner.messaging;
    match request {
        ClientMessage::Register { request_id } => ServerMessage::Registered {
            request_id,
            uid: state.inner.public_key.uid.clone(),
            client_id: client_id.to_owned(),
        },
        ClientMessage::Discover { request_id } => match peers(state).await {
            Ok(peers) => ServerMessage::Peers { request_id, peers },
            Err(ServerMessage::Error { code, message, .. }) => {
                ServerMessage::error(request_id, &code, message)
            }
            Err(other) => other,
        },
        ClientMessage::RequestPublicKey { request_id, peer } => match messaging.contacts().await {
            Ok(list) => match list.into_iter().find(|c| c.name == peer || c.uid == peer) {
                Some(contact) => ServerMessage::public_key(request_id, contact),
                None => ServerMessage::error(
                    request_id,
                    "UNKNOWN_CONTACT",
                    format!("no contact named {peer:?}: add it on the node first"),
                ),
            },
            Err(e) => messaging_failure(request_id, &MessagingError::from(e)),
        },
        ClientMessage::Message {
            request_id,
            to,
            text,
        } => match messaging.send_text(&to, &text).await {
            Ok(m) => ServerMessage::MessageState {
                request_id,
                id: m.id,
                peer: to,
                state: m.state,
            },
            Err(e) => messaging_failure(request_id, &MessagingError::from(e)),
        },
        ClientMessage::Ping { request_id } => ServerMessage::Pong { request_id },
        other => more::answer(state, other).await,
    }
}

#[cfg(test)]
mod tests;
