//! The local API: JSON over HTTP on 127.0.0.1, guarded by a bearer token.
//!
//! | method | path          | token | answer                                   |
//! |--------|---------------|-------|------------------------------------------|
//! | GET    | `/health`     | no    | [`HealthResponse`]                       |
//! | GET    | `/peers`      | yes   | [`PeersResponse`]                        |
//! | GET    | `/stats`      | yes   | [`StatsResponse`]                        |
//! | GET    | `/public-key` | yes   | [`PublicKeyResponse`]                    |
//! | GET    | `/metrics`    | yes   | Prometheus text format                   |
//!
//! Errors are `{"error": "...", "code": "..."}` with a fitting status.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rhizo_net::{Client, NetStats};
use rhizo_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) token_digest: [u8; 32],
    pub(crate) public_key: PublicKeyResponse,
    pub(crate) name: Option<String>,
    pub(crate) mdns: bool,
    pub(crate) started: Instant,
    pub(crate) requests: AtomicU64,
}

impl ApiState {
    /// State for [`router`].
    pub(crate) fn new(
        client: Client,
        store: Arc<Mutex<Store>>,
        token: &str,
        public_key: PublicKeyResponse,
        name: Option<String>,
        mdns: bool,
    ) -> Self {
        Self {
            inner: Arc::new(ApiInner {
                client,
                store,
                token_digest: Sha256::digest(token.as_bytes()).into(),
                public_key,
                name,
                mdns,
                started: Instant::now(),
                requests: AtomicU64::new(0),
            }),
        }
    }
}

/// Builds the router: `/health` is open, everything else needs the token.
pub(crate) fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/peers", get(peers))
        .route("/stats", get(stats))
        .route("/public-key", get(public_key))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
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

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Comparing digests keeps the comparison's timing independent of the token's bytes.
    let ok = presented.is_some_and(|t| {
        let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
        digest == state.inner.token_digest
    });
    if !ok {
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
        return response;
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
    let store = state.inner.store.clone();
    tokio::task::spawn_blocking(move || {
        store
            .lock()
            .map_err(|_| ())
            .and_then(|s| s.peer_count().map_err(|_| ()))
            .unwrap_or(0)
    })
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
