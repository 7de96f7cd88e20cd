//! The node of a device waiting to be linked: `rhizo run` on a data dir made by
//! `rhizo init --link` and not linked yet. It starts the network with the
//! device key as its PeerId and serves only `/rhizo/link/1`, and a small local API:
//! `GET /v1/health`, `POST /v1/devices/link-ticket`, and `GET /v1/devices` (answered
//! `NO_ROOT_KEY`). Once linked, it stops and `node::run` starts the full node of a linked device.

use std::{future::Future, sync::Arc};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use rhizo_core::{
    DeviceKey,
    link::{LINK_TICKET_TTL_SECS, LinkSecret, LinkTicket},
};
use rhizo_net::NetEvent;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{
    DeviceError, LinkTicketView, device_error, device_fingerprint, responder::answer_link,
};
use crate::{
    Config,
    data_dir::{DataDir, DeviceIdentity},
    node::{NodeError, NodeReport, bind_api, start_network},
};

/// What the link node's API handlers share.
struct LinkState {
    dir: DataDir,
    device: DeviceKey,
    client: rhizo_net::Client,
    token_digest: [u8; 32],
}

/// How long the link node keeps running at most after it answered the link, when the network
/// does not report the answer written out ([`NetEvent::LinkAnswered`]) before.
const LINKED_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long the link node keeps running after its answer is written out, so the device that
/// linked it reads the answer before the connection goes (or until that device disconnects).
const ANSWER_LINGER: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs the node of a device waiting to be linked until `shutdown` (`Ok(false)`) or until it
/// is linked (`Ok(true)`, once the answer to the device that linked it is written out, so it
/// reaches that device before the network stops: the caller then starts the full node).
pub(crate) async fn run_link_node(
    config: Config,
    dir: DataDir,
    identity: DeviceIdentity,
    shutdown: impl Future<Output = ()> + Send,
    mut report: impl FnMut(NodeReport) + Send,
) -> Result<bool, NodeError> {
    let _lock = dir.lock()?;
    let peer_id = identity.peer_id();
    let (client, mut events, event_loop) =
        start_network(&config, identity.libp2p_keypair(), Vec::new())?;
    let net_task = tokio::spawn(event_loop.run());
    let (listener, api_addr) = bind_api(&config).await?;
    let token = dir.load_or_create_api_token()?;
    let state = Arc::new(LinkState {
        dir: dir.clone(),
        device: DeviceKey::from_bytes(&identity.device().to_bytes()),
        client: client.clone(),
        token_digest: Sha256::digest(token.as_bytes()).into(),
    });
    drop(token);
    let (api_stop, api_task) = spawn_api(listener, state.clone());
    dir.write_api_addr(api_addr)?;
    info!(%peer_id, %api_addr, "node without the root key: serving /rhizo/link/1 only");
    report(NodeReport::Ready {
        uid: identity.uid().map_or_else(
            || "(none yet: waiting to be linked)".into(),
            |u| u.to_string(),
        ),
        peer_id,
        api_addr,
    });
    tokio::pin!(shutdown);
    let linked_grace = tokio::time::sleep(std::time::Duration::MAX / 4);
    tokio::pin!(linked_grace);
    let mut linked = None;
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(false),
            () = &mut linked_grace, if linked.is_some() => break Ok(true),
            event = events.recv() => match event {
                None => break Err(NodeError::Net(rhizo_net::NetError::Stopped)),
                Some(NetEvent::InboundLink { peer, payload, channel }) => {
                    let now = u64::try_from(crate::unix_now()).unwrap_or(0);
                    let answer = answer_link(&state.dir, &state.device, peer, &payload, now);
                    let _ = client.respond_link(channel, answer.response).await;
                    if let Some(identity) = answer.linked {
                        report(NodeReport::Linked {
                            uid: identity.certificate.root().uid().to_string(),
                        });
                        linked = Some(peer);
                        linked_grace
                            .as_mut()
                            .reset(tokio::time::Instant::now() + LINKED_GRACE);
                    }
                }
                // The answer is written out: give the linking device a moment to read it
                // before the network stops (dropping a connection with unread data resets it,
                // which can discard the answer), or stop once it disconnects.
                Some(NetEvent::LinkAnswered { peer }) if linked == Some(peer) => {
                    linked_grace
                        .as_mut()
                        .reset(tokio::time::Instant::now() + ANSWER_LINGER);
                }
                Some(NetEvent::PeerDisconnected { peer }) if linked == Some(peer) => {
                    break Ok(true);
                }
                Some(NetEvent::Listening { addr }) => {
                    report(NodeReport::Listening(addr.with_p2p(peer_id).unwrap_or_else(|a| a)));
                }
                Some(_) => {}
            },
        }
    };
    dir.remove_api_addr();
    let _ = client.shutdown().await;
    let _ = api_stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = net_task.await;
        let _ = api_task.await;
    })
    .await;
    outcome
}

fn spawn_api(
    listener: tokio::net::TcpListener,
    state: Arc<LinkState>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let protected = Router::new()
        .route("/v1/devices/link-ticket", post(link_ticket))
        .route("/v1/devices", get(no_root_key).post(no_root_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let app = Router::new()
        .route("/v1/health", get(health))
        .merge(protected)
        .with_state(state);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "local API stopped with an error");
        }
    });
    (stop, task)
}

async fn require_token(
    State(state): State<Arc<LinkState>>,
    request: Request,
    next: Next,
) -> Response {
    if !crate::api::bearer_matches(&request, &state.token_digest) {
        return crate::api::unauthorized();
    }
    next.run(request).await
}

async fn health() -> Json<crate::api::HealthResponse> {
    Json(crate::api::HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn no_root_key() -> Response {
    device_error(&DeviceError::NoRootKey)
}

/// `POST /v1/devices/link-ticket`: a new one-time secret (replacing an open one) and the ticket.
async fn link_ticket(State(state): State<Arc<LinkState>>) -> Response {
    if !state.dir.is_pending_link() {
        return device_error(&DeviceError::AlreadyLinked);
    }
    let addrs = match state.client.info().await {
        Ok(info) => info
            .listen_addrs
            .iter()
            .chain(info.external_addrs.iter())
            .map(ToString::to_string)
            .filter(|a| !a.starts_with("/ip4/0.0.0.0/") && !a.starts_with("/ip6/::/"))
            .take(rhizo_core::ticket::MAX_TICKET_ADDRS)
            .collect::<Vec<_>>(),
        Err(e) => return crate::api::error(StatusCode::SERVICE_UNAVAILABLE, "BUSY", e.to_string()),
    };
    if addrs.is_empty() {
        let why = "the node is not listening yet (or only on 0.0.0.0 without a bound address)";
        return crate::api::error(StatusCode::SERVICE_UNAVAILABLE, "BUSY", why);
    }
    let now = u64::try_from(crate::unix_now()).unwrap_or(0);
    let made = LinkSecret::generate()
        .map_err(|e| e.to_string())
        .and_then(|secret| {
            state
                .dir
                .write_link_secret(&secret, now)
                .map_err(|e| e.to_string())?;
            LinkTicket::new(state.device.public(), secret, addrs, now).map_err(|e| e.to_string())
        });
    match made {
        Ok(ticket) => Json(LinkTicketView {
            ticket: ticket.to_string(),
            qr: ticket.to_qr_string(),
            expires_at: now + LINK_TICKET_TTL_SECS,
            fingerprint: device_fingerprint(&state.device.public()),
        })
        .into_response(),
        Err(e) => crate::api::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e),
    }
}
