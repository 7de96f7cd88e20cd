//! Gateway mode (`rhizo run --gateway IP:PORT`, issue 17): any rhizo node can serve light
//! clients that cannot reach their home node directly (a phone on mobile data, a home node
//! behind NAT).
//!
//! ```text
//!  light client ══ ws://GATEWAY/v1/gateway/{home peer id} ══▶ gateway node
//!        (the paired channel's bytes, unread)                      │ /rhizo/light/1 stream
//!                                                                  ▼ (libp2p; the home node keeps
//!                                                  home node: api::ws::run_session  a connection,
//!                                                                                   e.g. --trusted)
//! ```
//!
//! The gateway sees only the channel's ciphertext and who is connected to whom. It caps
//! clients ([`MAX_GATEWAY_CLIENTS`], [`MAX_CLIENTS_PER_HOME`]) and each client's message rate;
//! the home node runs the same session as for `/v1/ws`, with its own rate limit and slots.
//!
//! On the stream every message is `header (u32 BE) ‖ bytes`: a header below 2³¹ is the length of
//! one WebSocket message that follows (at most [`MAX_WS_MESSAGE_BYTES`]); a header with the top
//! bit set ends the session with the WebSocket close code in its low 16 bits (no bytes follow).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use futures::StreamExt;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use libp2p::{PeerId, Stream};
use rhizo_net::Client;
use tokio::sync::{Semaphore, mpsc};

use crate::api::ApiState;
use crate::api::ws::{
    Close, FrameLink, MAX_WS_MESSAGE_BYTES, NORMAL_CLOSE, RateLimit, run_session,
};

/// Most light clients a gateway splices at once.
pub const MAX_GATEWAY_CLIENTS: usize = 1024;
/// Most light clients spliced to one home node at once (a person's handful, with reconnects).
pub const MAX_CLIENTS_PER_HOME: usize = 16;
/// Messages per second one client may push through the gateway, on average.
pub const GATEWAY_MESSAGES_PER_SECOND: f64 = 50.0;
/// Messages one client may push in a burst.
pub const GATEWAY_MESSAGE_BURST: f64 = 100.0;
/// Read buffer of a client's WebSocket. tungstenite zero-fills its whole read buffer before
/// each read, so its default (128 KiB) is 128 KiB of memory per idle client (B17); a message
/// larger than this still fits, as the buffer grows to a frame's announced length.
pub const WS_READ_BUFFER_BYTES: usize = 8 * 1024;
/// Messages read ahead from a stream (bounded: the reader waits when the session is slow).
const STREAM_QUEUE: usize = 8;
/// The header bit that marks a close.
const CLOSE_BIT: u32 = 0x8000_0000;
/// Close code: the client sent faster than the gateway allows.
const RATE_LIMITED: Close = Close(4429, "rate limited by the gateway");
/// Close code: the home node is not connected to this gateway or does not answer.
const HOME_UNREACHABLE: Close = Close(4404, "home node not reachable through this gateway");

/// One message on a `/rhizo/light/1` stream.
#[derive(Debug, PartialEq, Eq)]
enum StreamMessage {
    Data(Vec<u8>),
    Close(u16),
}

async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<StreamMessage> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await?;
    let header = u32::from_be_bytes(header);
    if header & CLOSE_BIT != 0 {
        return Ok(StreamMessage::Close((header & 0xFFFF) as u16));
    }
    let len = header as usize;
    if len > MAX_WS_MESSAGE_BYTES {
        return Err(std::io::Error::other("light stream message too large"));
    }
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes).await?;
    Ok(StreamMessage::Data(bytes))
}

async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &StreamMessage,
) -> std::io::Result<()> {
    match message {
        StreamMessage::Data(bytes) => {
            let len = u32::try_from(bytes.len())
                .ok()
                .filter(|&l| l & CLOSE_BIT == 0)
                .ok_or_else(|| std::io::Error::other("light stream message too large"))?;
            writer.write_all(&len.to_be_bytes()).await?;
            writer.write_all(bytes).await?;
        }
        StreamMessage::Close(code) => {
            writer
                .write_all(&(CLOSE_BIT | u32::from(*code)).to_be_bytes())
                .await?
        }
    }
    writer.flush().await
}

/// Reads a stream's messages into a bounded queue (so receiving is cancel-safe).
fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(
    mut reader: R,
) -> mpsc::Receiver<StreamMessage> {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        while let Ok(message) = read_message(&mut reader).await {
            let end = matches!(message, StreamMessage::Close(_));
            if tx.send(message).await.is_err() || end {
                break;
            }
        }
    });
    rx
}

/// The home node's end of a splice: a session runs over it like over `/v1/ws`.
struct StreamLink {
    rx: mpsc::Receiver<StreamMessage>,
    writer: WriteHalf<Stream>,
}

impl FrameLink for StreamLink {
    async fn recv(&mut self) -> Option<Vec<u8>> {
        match self.rx.recv().await {
            Some(StreamMessage::Data(bytes)) => Some(bytes),
            Some(StreamMessage::Close(_)) | None => None,
        }
    }

    async fn send(&mut self, bytes: Vec<u8>) -> bool {
        write_message(&mut self.writer, &StreamMessage::Data(bytes))
            .await
            .is_ok()
    }

    async fn close(&mut self, close: Close) {
        let _ = write_message(&mut self.writer, &StreamMessage::Close(close.0)).await;
        let _ = self.writer.close().await;
    }
}

/// Serves light clients that reach this node through gateways: every inbound `/rhizo/light/1`
/// stream runs a session, within the same slots as `/v1/ws`.
pub(crate) fn serve_home(state: ApiState, client: &Client) {
    let mut incoming = match client.accept_light_streams() {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::warn!(error = %e, "light clients through gateways are not served");
            return;
        }
    };
    tokio::spawn(async move {
        while let Some((gateway, stream)) = incoming.next().await {
            let Ok(permit) = state.inner.light.slots.clone().try_acquire_owned() else {
                tracing::debug!(%gateway, "light session refused: all slots taken");
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let (reader, writer) = stream.split();
                let mut link = StreamLink {
                    rx: spawn_reader(reader),
                    writer,
                };
                let close = run_session(&state, &mut link).await;
                link.close(close).await;
                drop(permit);
            });
        }
    });
}

/// Serves light clients through gateways (always) and, with `--gateway ADDR`, is a gateway.
///
/// # Errors
///
/// [`NodeError::ApiBind`](crate::NodeError::ApiBind) if the gateway address cannot be bound.
pub(crate) async fn start(
    gateway: Option<SocketAddr>,
    state: ApiState,
    client: &Client,
) -> Result<(), crate::NodeError> {
    serve_home(state, client);
    if let Some(addr) = gateway {
        spawn(addr, client.clone())
            .await
            .map_err(|e| crate::NodeError::ApiBind {
                addr,
                reason: format!("the gateway cannot listen: {e}"),
            })?;
    }
    Ok(())
}

/// The gateway's state: the client caps.
#[derive(Debug, Clone)]
struct Gateway {
    client: Client,
    slots: Arc<Semaphore>,
    per_home: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// A client's place under [`MAX_CLIENTS_PER_HOME`], given back on drop.
struct HomeSlot {
    per_home: Arc<Mutex<HashMap<PeerId, usize>>>,
    home: PeerId,
}

impl Drop for HomeSlot {
    fn drop(&mut self) {
        let mut map = self
            .per_home
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.home) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.home);
            }
        }
    }
}

/// Takes a place for one more client of `home`, if it has fewer than [`MAX_CLIENTS_PER_HOME`].
fn take_home_slot(per_home: &Arc<Mutex<HashMap<PeerId, usize>>>, home: PeerId) -> Option<HomeSlot> {
    let mut map = per_home
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = map.entry(home).or_insert(0);
    if *n >= MAX_CLIENTS_PER_HOME {
        return None;
    }
    *n += 1;
    Some(HomeSlot {
        per_home: per_home.clone(),
        home,
    })
}

/// Binds the gateway's WebSocket listener on `addr` and serves it until the process ends.
///
/// # Errors
///
/// If `addr` cannot be bound.
pub(crate) async fn spawn(addr: SocketAddr, client: Client) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let gateway = Gateway {
        client,
        slots: Arc::new(Semaphore::new(MAX_GATEWAY_CLIENTS)),
        per_home: Arc::new(Mutex::new(HashMap::new())),
    };
    let router = Router::new()
        .route("/v1/gateway/{home}", get(upgrade))
        .with_state(gateway);
    // The light clients' frames are small: without TCP_NODELAY each would wait for a delayed
    // ACK under Nagle (~40 ms), as on the local API.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a gateway connection");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the gateway stopped");
        }
    });
    tracing::info!(%local, "gateway listening for light clients");
    Ok(local)
}

async fn upgrade(
    State(gateway): State<Gateway>,
    Path(home): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let refuse = |status, code, message: &str| crate::api::error(status, code, message.to_owned());
    let Ok(home) = home.parse::<PeerId>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_INPUT",
            "not a peer id: use /v1/gateway/<home node's peer id>",
        );
    };
    let Ok(permit) = gateway.slots.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_CLIENTS",
            "the gateway is full: try again later",
        );
    };
    let Some(home_slot) = take_home_slot(&gateway.per_home, home) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_CLIENTS",
            "too many clients for this home node",
        );
    };
    ws.max_message_size(MAX_WS_MESSAGE_BYTES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .on_upgrade(move |mut socket| async move {
            let close = splice(&gateway.client, home, &mut socket).await;
            FrameLink::close(&mut socket, close).await;
            drop((permit, home_slot));
        })
}

/// Copies messages both ways between the client's socket and a stream to its home node.
async fn splice(client: &Client, home: PeerId, socket: &mut WebSocket) -> Close {
    let Ok(stream) = client.open_light_stream(home).await else {
        return HOME_UNREACHABLE;
    };
    let (reader, mut writer) = stream.split();
    let mut from_home = spawn_reader(reader);
    let mut limit = RateLimit::with(GATEWAY_MESSAGES_PER_SECOND, GATEWAY_MESSAGE_BURST);
    loop {
        tokio::select! {
            message = socket.recv() => {
                let bytes = match message {
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        let _ = write_message(&mut writer, &StreamMessage::Close(NORMAL_CLOSE.0)).await;
                        return NORMAL_CLOSE;
                    }
                    Some(Ok(_)) => continue,
                };
                if !limit.allow() {
                    let _ = write_message(&mut writer, &StreamMessage::Close(RATE_LIMITED.0)).await;
                    return RATE_LIMITED;
                }
                if write_message(&mut writer, &StreamMessage::Data(bytes)).await.is_err() {
                    return HOME_UNREACHABLE;
                }
            }
            message = from_home.recv() => match message {
                Some(StreamMessage::Data(bytes)) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        return NORMAL_CLOSE;
                    }
                }
                // The home node's close code goes to the client as is.
                Some(StreamMessage::Close(code)) => return Close(code, "closed by the home node"),
                None => return HOME_UNREACHABLE,
            },
        }
    }
}

#[cfg(test)]
mod tests;
