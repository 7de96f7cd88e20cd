//! The local API: JSON over HTTP on 127.0.0.1, guarded by a bearer token.
//!
//! Every route is under `/v1/` (the A2A binding's under `/a2a/{agent}/`, see [`crate::a2a`]);
//! the seed-004 paths (`/health`, `/peers`, `/stats`, `/public-key`,
//! `/message`) and `/metrics` are aliases. The routes are one table, [`ROUTES`], from which
//! [`router`] is built; `docs/local-api.md` documents each one (a drift test keeps the two equal).
//!
//! The web UI's pages are under `/ui/` ([`web`]); its session cookie stands in for the token.
//!
//! Errors are `{"error": "...", "code": "..."}` with a fitting status.

mod errors;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{Path, Query},
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::sse::{Event, KeepAlive, Sse},
    response::{IntoResponse, Response},
};
use rhizo_net::{Client, NetStats};

use crate::messaging::{ContactView, MessageView, Messaging, MessagingError};
use errors::messaging_error;
use rhizo_store::{Db, DbError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod a2a;
mod agents;
mod bans;
mod channels;
mod devices;
mod files;
mod groups;
mod manage;
mod pairing;
mod tasks;
pub mod web;
pub mod ws;

use a2a::{a2a_card, a2a_rpc};
pub use agents::{AgentQuery, FindAgentsQuery};
use agents::{
    agent_of, delete_agent_card, find_agents, group_agents, list_agents, own_agent_card,
    set_agent_card,
};
pub use bans::BanRequest;
use bans::{add_ban, list_bans, remove_ban};
pub use channels::{CreateChannelRequest, JoinChannelRequest};
use channels::{
    create_channel, join_channel, leave_channel, list_channels, post_channel, read_channel,
};
pub use files::{SaveFileRequest, SendFileRequest, SentFile, UploadQuery};
pub use groups::{AddMembersRequest, AdminRequest, CreateGroupRequest, UpdateGroupRequest};
use groups::{
    accept_group_request, add_group_admin, add_group_members, create_group, decline_group_request,
    leave_group, list_group_admins, list_group_messages, list_group_requests, list_groups,
    post_group_message, remove_group_admin, remove_group_member, show_group, update_group,
};
pub use manage::{
    ConversationSettingsRequest, ConversationsQuery, DeleteMessageQuery, RenameContactRequest,
};
pub use pairing::{NewPairingRequest, NewPairingResponse};
pub use tasks::WorkerTasksQuery;
use tasks::{
    cancel_task, claim_next_task, create_task, list_tasks, show_task, task_input, update_task,
    worker_tasks,
};

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthResponse {
    /// Always `"ok"` when the node answers.
    pub status: String,
    /// The rhizo version.
    pub version: String,
}

/// One peer in `GET /peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiPeer {
    /// Its PeerId.
    pub peer_id: String,
    /// Open connections.
    pub connections: u32,
    /// In the Kademlia routing table.
    pub in_routing_table: bool,
    /// Known addresses.
    pub addrs: Vec<String>,
    /// Agent version from identify.
    pub agent_version: Option<String>,
    /// Last ping round-trip time.
    pub rtt_ms: Option<f64>,
    /// Its reputation score here (0: neutral; lower after misbehaviour).
    #[serde(default)]
    pub reputation: i32,
}

/// `GET /peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeersResponse {
    /// Connected and routing-table peers.
    pub peers: Vec<ApiPeer>,
    /// Peers remembered in the peer book (also those not currently known to the network layer).
    pub peer_book_peers: u64,
}

/// `GET /stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsResponse {
    /// The user id.
    pub uid: String,
    /// The display name set with `rhizo init --name`, if any.
    pub name: Option<String>,
    /// This device's PeerId.
    pub peer_id: String,
    /// Bound listen addresses.
    pub listen_addrs: Vec<String>,
    /// Peers with open connections.
    pub connected_peers: usize,
    /// Peers in the routing table.
    pub routing_table_peers: usize,
    /// Peers in the peer book.
    pub peer_book_peers: u64,
    /// Whether mDNS is on.
    pub mdns: bool,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// API requests served.
    pub api_requests: u64,
    /// Network counters.
    pub net: NetStats,
    /// How others can reach this node (AutoNAT, relays, UPnP).
    #[serde(default)]
    pub reachability: Option<rhizo_net::Reachability>,
    /// Group commit and batching counters.
    #[serde(default)]
    pub messaging: crate::messaging::MessagingStats,
    /// Clock skew against peers, from their receipts' timestamps (`rhizo doctor`).
    #[serde(default)]
    pub clock_skew: crate::clock_skew::ClockSkewSummary,
    /// The rhizo version.
    pub version: String,
}

/// `GET /public-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    /// The user id.
    pub uid: String,
    /// The root key fingerprint.
    pub fingerprint: String,
    /// The root public key, hex.
    pub root_public_key: String,
    /// This device's public key, hex.
    pub device_public_key: String,
    /// This device's PeerId.
    pub peer_id: String,
    /// The device certificate, hex.
    pub device_certificate: String,
}

/// An API error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for a person.
    pub error: String,
    /// A stable code, for a program.
    pub code: String,
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub(crate) inner: Arc<ApiInner>,
}

#[derive(Debug)]
pub(crate) struct ApiInner {
    pub(crate) client: Client,
    pub(crate) db: Db,
    pub(crate) messaging: Messaging,
    pub(crate) channels: crate::channels::Channels,
    pub(crate) guard: crate::peer_policy::PeerPolicy,
    pub(crate) files: crate::files::Files,
    pub(crate) token_digest: [u8; 32],
    pub(crate) public_key: PublicKeyResponse,
    pub(crate) name: Option<String>,
    pub(crate) mdns: bool,
    pub(crate) started: Instant,
    pub(crate) requests: AtomicU64,
    pub(crate) light: ws::LightApi,
    pub(crate) web: web::WebSessions,
}

impl ApiState {
    /// State for [`router`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: Client,
        db: Db,
        messaging: Messaging,
        channels: crate::channels::Channels,
        guard: crate::peer_policy::PeerPolicy,
        files: crate::files::Files,
        token: &str,
        public_key: PublicKeyResponse,
        name: Option<String>,
        mdns: bool,
        light: ws::LightApi,
    ) -> Self {
        Self {
            inner: Arc::new(ApiInner {
                client,
                db,
                messaging,
                channels,
                guard,
                files,
                token_digest: Sha256::digest(token.as_bytes()).into(),
                public_key,
                name,
                mdns,
                started: Instant::now(),
                requests: AtomicU64::new(0),
                light,
                web: web::WebSessions::default(),
            }),
        }
    }
}

mod routes;
pub use routes::{Auth, Method, ROUTES, Route};

/// Builds the router from [`ROUTES`]: `/v1/health` (and its alias) is open, everything else needs
/// the token.
pub(crate) fn router(state: ApiState) -> Router {
    let (open, protected) = routes::open_and_protected();
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    open.merge(protected).fallback(not_found).with_state(state)
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorResponse {
            error: message.into(),
            code: code.into(),
        }),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

/// Whether `request` carries the bearer token whose SHA-256 is `token_digest`. Comparing digests
/// keeps the comparison's timing independent of the token's bytes.
pub(crate) fn bearer_matches(request: &Request, token_digest: &[u8; 32]) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|t| {
            let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            digest == *token_digest
        })
}

/// The answer to a request without the right token.
pub(crate) fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "missing or wrong API token: send 'Authorization: Bearer <token>' with the token \
         from <data_dir>/api.token",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Lets through requests with the bearer token, or with the web UI's session cookie from the
/// UI's own origin ([`web`]).
async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if !bearer_matches(&request, &state.inner.token_digest)
        && !web::cookie_matches(&request, &state.inner.web)
    {
        return unauthorized();
    }
    state.inner.requests.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        format!("the node is shutting down: {e}"),
    )
}

async fn peer_book_size(state: &ApiState) -> u64 {
    state
        .inner
        .db
        .read(|r| -> Result<_, DbError> { Ok(r.peer_count()?) })
        .await
        .unwrap_or(0)
}

async fn peers(State(state): State<ApiState>) -> Response {
    let list = match state.inner.client.peers().await {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let peers = list
        .into_iter()
        .map(|p| ApiPeer {
            peer_id: p.peer_id.to_string(),
            connections: p.connections,
            in_routing_table: p.in_routing_table,
            addrs: p.addrs.iter().map(ToString::to_string).collect(),
            agent_version: p.agent_version,
            rtt_ms: p.rtt_ms,
            reputation: state.inner.guard.reputation_of(&p.peer_id).0,
        })
        .collect();
    Json(PeersResponse {
        peers,
        peer_book_peers: peer_book_size(&state).await,
    })
    .into_response()
}

pub(crate) async fn collect_stats(state: &ApiState) -> Result<StatsResponse, rhizo_net::NetError> {
    let info = state.inner.client.info().await?;
    let net = state.inner.client.stats().await?;
    Ok(StatsResponse {
        uid: state.inner.public_key.uid.clone(),
        name: state.inner.name.clone(),
        peer_id: info.peer_id.to_string(),
        listen_addrs: info.listen_addrs.iter().map(ToString::to_string).collect(),
        connected_peers: info.connected_peers,
        routing_table_peers: info.routing_table_peers,
        peer_book_peers: peer_book_size(state).await,
        mdns: state.inner.mdns,
        uptime_secs: state.inner.started.elapsed().as_secs(),
        api_requests: state.inner.requests.load(Ordering::Relaxed),
        net,
        reachability: state.inner.client.reachability().await.ok(),
        messaging: state.inner.messaging.stats(),
        clock_skew: state.inner.messaging.clock_skew(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn stats(State(state): State<ApiState>) -> Response {
    match collect_stats(&state).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn public_key(State(state): State<ApiState>) -> Json<PublicKeyResponse> {
    Json(state.inner.public_key.clone())
}

async fn metrics(State(state): State<ApiState>) -> Response {
    match collect_stats(&state).await {
        Ok(s) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            crate::metrics::render(&s),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

/// `GET /v1/invite`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteResponse {
    /// The ticket text (`rhz1contact…`).
    pub ticket: String,
    /// The ticket as a terminal QR code.
    pub qr: String,
}

/// `POST /v1/contacts` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddContactRequest {
    /// A contact ticket…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// …or a UID, looked up in the DHT (then `name` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The local name (default: the name in the ticket).
    pub name: Option<String>,
}

/// `POST /v1/requests/{who}/accept` body (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AcceptRequestBody {
    /// The local name for the new contact (default: the name on their public profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /v1/requests/{who}/accept` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcceptRequestResponse {
    /// The new contact.
    pub contact: ContactView,
    /// How many held envelopes were applied (a Welcome and messages).
    pub applied: usize,
}

/// `POST /v1/requests/{who}/decline` and `/block` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DroppedResponse {
    /// How many held envelopes were dropped.
    pub dropped: u64,
}

/// `POST /v1/contacts` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddContactResponse {
    /// The contact.
    pub contact: ContactView,
    /// `true` if new, `false` if an existing contact was updated.
    pub added: bool,
}

/// `POST /message` body (seed 004's path).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostMessageRequest {
    /// Contact name or UID.
    pub to: String,
    /// The text.
    pub text: String,
}

/// `POST /v1/conversations/{contact}/messages` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextBody {
    /// The text.
    pub text: String,
}

/// `POST /v1/profile` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetProfileRequest {
    /// Display name (1 to 64 characters).
    pub name: String,
    /// Avatar image, base64 (at most 32 KiB decoded).
    #[serde(default)]
    pub avatar_base64: Option<String>,
    /// Its type, e.g. image/png.
    #[serde(default)]
    pub avatar_mime: Option<String>,
    /// Also publish it in the DHT for anyone holding the UID (opt-in).
    #[serde(default)]
    pub public: bool,
}

/// `POST /v1/profile` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetProfileResponse {
    /// The new profile.
    pub profile: crate::messaging::ProfileView,
    /// DHT nodes that stored it (0 when not public).
    pub stored_on: usize,
}

/// `?limit=` for history.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryQuery {
    /// Most messages returned.
    pub limit: Option<usize>,
    /// The user is shown these: mark received ones read and tell the sender.
    #[serde(default)]
    pub mark_read: bool,
}

async fn invite(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.invite().await {
        Ok(ticket) => Json(InviteResponse {
            qr: ticket.to_qr_string(),
            ticket: ticket.to_string(),
        })
        .into_response(),
        Err(e) => messaging_error(e),
    }
}

/// A contact as `GET /v1/contacts` lists it: with its presence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactWithPresence {
    /// The contact.
    #[serde(flatten)]
    pub contact: crate::messaging::ContactView,
    /// Online, offline or hidden, and when it was last seen.
    pub presence: crate::presence::ContactPresence,
}

async fn list_contacts(State(state): State<ApiState>) -> Response {
    let presence = state.inner.messaging.presence();
    match state.inner.messaging.contacts().await {
        Ok(list) => Json(
            list.into_iter()
                .map(|contact| ContactWithPresence {
                    presence: presence.of(&contact.uid),
                    contact,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn add_contact(
    State(state): State<ApiState>,
    Json(body): Json<AddContactRequest>,
) -> Response {
    let result = match (&body.ticket, &body.uid, body.name) {
        (Some(ticket), None, name) => state
            .inner
            .messaging
            .add_contact(ticket, name)
            .await
            .map_err(MessagingError::from),
        (None, Some(uid), Some(name)) => state
            .inner
            .messaging
            .add_contact_by_uid(uid, &name)
            .await
            .map_err(MessagingError::from),
        (None, Some(_), None) => Err(MessagingError::BadInput(
            "adding by UID needs a name: pass --name NAME".into(),
        )),
        _ => Err(MessagingError::BadInput(
            "give either a ticket or a uid".into(),
        )),
    };
    match result {
        Ok((contact, added)) => (
            if added {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(AddContactResponse { contact, added }),
        )
            .into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn verify_contact(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.inner.messaging.verify_contact(&name).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn list_requests(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.requests(false).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn list_blocked(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.requests(true).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn accept_request(
    State(state): State<ApiState>,
    Path(who): Path<String>,
    body: Option<Json<AcceptRequestBody>>,
) -> Response {
    let name = body.and_then(|Json(b)| b.name);
    match state.inner.messaging.accept_request(&who, name).await {
        Ok((contact, applied)) => Json(AcceptRequestResponse { contact, applied }).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn decline_request(State(state): State<ApiState>, Path(who): Path<String>) -> Response {
    match state.inner.messaging.decline_request(&who).await {
        Ok(dropped) => Json(DroppedResponse { dropped }).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn block_sender(State(state): State<ApiState>, Path(who): Path<String>) -> Response {
    match state.inner.messaging.block_sender(&who).await {
        Ok(dropped) => Json(DroppedResponse { dropped }).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn unblock_sender(State(state): State<ApiState>, Path(uid): Path<String>) -> Response {
    match state.inner.messaging.unblock_sender(&uid).await {
        Ok(()) => Json(serde_json::json!({ "unblocked": uid })).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn send(state: &ApiState, to: &str, text: &str) -> Response {
    match state.inner.messaging.send_text(to, text).await {
        Ok(m) => (StatusCode::CREATED, Json::<MessageView>(m)).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn post_message(
    State(state): State<ApiState>,
    Json(body): Json<PostMessageRequest>,
) -> Response {
    send(&state, &body.to, &body.text).await
}

async fn post_conversation_message(
    State(state): State<ApiState>,
    Path(contact): Path<String>,
    Json(body): Json<TextBody>,
) -> Response {
    send(&state, &contact, &body.text).await
}

async fn set_profile(
    State(state): State<ApiState>,
    Json(body): Json<SetProfileRequest>,
) -> Response {
    let avatar = match body
        .avatar_base64
        .as_deref()
        .map(|a| data_encoding::BASE64.decode(a.trim().as_bytes()))
    {
        None => Vec::new(),
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
                format!("avatar_base64 is not base64: {e}"),
            );
        }
    };
    match state
        .inner
        .messaging
        .set_profile(
            &body.name,
            avatar,
            body.avatar_mime.as_deref().unwrap_or(""),
            body.public,
        )
        .await
    {
        Ok((profile, stored_on)) => Json(SetProfileResponse { profile, stored_on }).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn own_profile(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.profile(None).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn profile_of(State(state): State<ApiState>, Path(who): Path<String>) -> Response {
    match state.inner.messaging.profile(Some(&who)).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn mailbox_status(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.mailbox_status().await {
        Ok(status) => Json(status).into_response(),
        Err(e) => messaging_error(e),
    }
}

/// Fetches our mailbox now (the node also does this at start and periodically).
async fn mailbox_fetch(State(state): State<ApiState>) -> Response {
    match state.inner.messaging.fetch_mailbox().await {
        Ok(report) => Json(report).into_response(),
        Err(e) => messaging_error(e),
    }
}

async fn list_messages(
    State(state): State<ApiState>,
    Path(contact): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(1000);
    match state
        .inner
        .messaging
        .history(&contact, limit, q.mark_read)
        .await
    {
        Ok(list) => Json(list).into_response(),
        Err(e) => messaging_error(e),
    }
}

/// `?agent=1` on `/v1/events`: the stream is an agent program's (it is attached while the
/// stream is open, so the wake command is not started).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventsQuery {
    /// `1` or `true`.
    #[serde(default)]
    pub agent: Option<String>,
}

async fn events(
    State(state): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = state.inner.messaging.subscribe();
    let agent = q
        .agent
        .is_some_and(|a| matches!(a.as_str(), "1" | "true" | "yes"))
        .then(|| state.inner.messaging.agent_presence().stream_opened());
    // The guard lives in the stream's state: dropped when the client goes away.
    let stream = futures::stream::unfold((rx, agent), |(mut rx, agent)| async move {
        let event = match rx.recv().await {
            Ok(event) => Event::default().json_data(&event).unwrap_or_default(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(format!("{n} events were dropped; re-read the history")),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, agent)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `POST /v1/agent/heartbeat`: an agent program says it is attached (for the next 15 s).
async fn agent_heartbeat(State(state): State<ApiState>) -> StatusCode {
    state.inner.messaging.agent_presence().touch();
    StatusCode::NO_CONTENT
}
