//! B17: gateway capacity, the memory a node in gateway mode (`rhizo run --gateway`) spends per
//! connected, idle light client, above what the WebSocket itself costs.
//!
//! ```text
//!  parent (this process)                                    child (`rhizo-bench --b17-server gateway`)
//!  light clients ══ ws://GW/v1/gateway/{home} ═══════════▶  rhizo node, gateway mode  ◀── VmRSS
//!  home nodes 1…H (in-process rhizo nodes) ══ libp2p, each keeps its connection (--trusted) ══╝
//!                               ◀── /rhizo/light/1, one stream per client ──
//!
//!  the same light-client sockets ═ ws://BARE/v1/gateway/… ═▶ child (`--b17-server bare`): axum, echo
//! ```
//!
//! # Method
//!
//! * **The gateway** runs in a child process (this binary, `rhizo-bench --b17-server gateway`),
//!   so its resident set holds nothing but the node: `rhizo_node::run`, what `rhizo run` runs,
//!   with `gateway = 127.0.0.1:PORT` and a fresh identity in a temporary data dir. Its
//!   connection limits are raised (`max_inbound`, `max_per_ip` = [`GATEWAY_PEER_LIMIT`]):
//!   every home node comes from 127.0.0.1, and a node's default of 16 connections per IP refuses
//!   the 17th home node. That was why a previous attempt's splices never reached their home
//!   nodes; a gateway's operator raises the same limits.
//! * **The home nodes** are in-process rhizo nodes that bootstrap from the gateway and list it
//!   as `trusted`, so each keeps its connection, as issue 17 says a home node does (and as the
//!   TypeScript gateway test does). A gateway splices at most
//!   [`MAX_CLIENTS_PER_HOME`] clients to one home node, so N clients need ⌈N / 16⌉ home nodes
//!   (63 for 1,000). Each connection to a home node is made before the baseline, so its cost is
//!   not counted: what is counted is what one more client costs on a gateway whose home nodes
//!   are already connected.
//! * **Each light client** is real: it gets a pairing ticket from its home node
//!   (`POST /v1/pairings`, at most [`MAX_PENDING_TICKETS`] pending at a time), opens a
//!   WebSocket to the gateway, pairs over the spliced stream (the X-Wing handshake of
//!   `rhizo_node::pairing::channel`, answered by the home node), sends `register` and waits for
//!   `registered`. Then it stays idle; a task reads (and drops) whatever arrives.
//! * **The reference**, measured the same way in the same run: a bare WebSocket server on the
//!   gateway's stack (axum's `WebSocketUpgrade`, the same message-size limits and read buffer,
//!   `TCP_NODELAY`) in
//!   a child process (`--b17-server bare`), which echoes binary messages. Its clients open the
//!   same URL and exchange messages of the handshake's sizes (hello, finish, a register frame),
//!   then stay idle the same way.
//! * Both children answer `stat` with the established TCP connections on their WebSocket port
//!   (from `/proc/net/tcp`) and their `VmRSS` (`/proc/self/status`). The baseline is read after
//!   the child has started (and the home nodes are connected), a point after each group of
//!   clients, the last after settling.
//!
//! Reported: `(VmRSS(N) − VmRSS(0)) / N` for both, and the target `gateway − bare ≤ 16 KiB`;
//! the least-squares slope over the groups (without the first) goes in the detail.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use axum::extract::ws::{self, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use rhizo_node::api::NewPairingResponse;
use rhizo_node::api::ws::MAX_WS_MESSAGE_BYTES;
use rhizo_node::config::ConfigLayer;
use rhizo_node::gateway::{MAX_CLIENTS_PER_HOME, WS_READ_BUFFER_BYTES};
use rhizo_node::pairing::PairTicket;
use rhizo_node::pairing::book::MAX_PENDING_TICKETS;
use rhizo_node::pairing::channel::{
    CONFIRM_LEN, ClientHandshake, HELLO_LEN, HelloKind, KemKeyPair, Session,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::{Disk, Node};
use crate::memory::{Point, Server, answer_stats, bench_exe, slope};
use crate::report::{Row, Target};
use crate::transport::Tasks;

/// The hidden command-line flag that runs a B17 server.
pub const SERVER_FLAG: &str = "--b17-server";
/// Light clients of a full run.
pub const CLIENTS: usize = 1000;
/// Light clients of a quick run.
pub const QUICK_CLIENTS: usize = 50;
/// The target: what a light client may cost a gateway above its WebSocket, KiB.
pub const TARGET_KIB: f64 = 16.0;
/// The gateway's `max_inbound` and `max_per_ip`: room for every home node (from 127.0.0.1).
pub const GATEWAY_PEER_LIMIT: u64 = 256;
/// Home nodes whose clients pair at the same time (a measurement point after each group).
const HOMES_AT_ONCE: usize = 2;
/// Handshakes in flight per home node: a home node closes a handshake that takes more than
/// 10 s, and the clients' X-Wing work shares this process's cores with the home nodes'.
const PAIRINGS_AT_ONCE: usize = 2;
/// Home nodes started at the same time.
const STARTS_AT_ONCE: usize = 8;
/// Attempts a light client makes while the gateway answers 4404 (no connection to its home).
const HOME_RETRIES: u32 = 8;
/// The wait between two such attempts.
const HOME_RETRY_DELAY: Duration = Duration::from_millis(250);
/// Bare clients connected between two measurements.
const BARE_BATCH: usize = 64;
/// How long a child may take to count a group of connections.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one client may take to connect, pair and register.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// A register request's sealed frame is about this long (the bare clients' third message).
const REGISTER_FRAME_LEN: usize = 64;

/// Which server a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// A rhizo node in gateway mode.
    Gateway,
    /// A bare axum WebSocket server that echoes.
    Bare,
}

impl ServerKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Bare => "bare",
        }
    }

    /// Parses the command-line name.
    ///
    /// # Errors
    ///
    /// For any other name.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "gateway" => Ok(Self::Gateway),
            "bare" => Ok(Self::Bare),
            other => bail!("unknown B17 server {other:?} (gateway or bare)"),
        }
    }
}

/// One server's curve.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Before any client, after each group, after settling (`connections`: established TCP
    /// connections on the WebSocket port).
    pub points: Vec<Point>,
    /// `(VmRSS(N) − VmRSS(0)) / N`, KiB.
    pub per_client_kib: f64,
    /// Least-squares slope of VmRSS over the clients (groups after the first), KiB.
    pub slope_kib: f64,
    /// Seconds to connect (and for the gateway, pair and register) all clients.
    pub connect_secs: f64,
}

impl Curve {
    fn new(points: Vec<Point>, n: usize, connect_secs: f64) -> Self {
        let base = points[0].rss_kib as f64;
        let last = points[points.len() - 1].rss_kib as f64;
        Self {
            per_client_kib: (last - base) / n as f64,
            slope_kib: slope(&points),
            points,
            connect_secs,
        }
    }
}

/// B17's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B17Result {
    /// Light clients on each server.
    pub clients: usize,
    /// Home nodes the gateway's clients are spliced to.
    pub home_nodes: usize,
    /// The gateway (paired, registered light clients).
    pub gateway: Curve,
    /// The bare WebSocket server (the reference).
    pub bare: Curve,
    /// `gateway.per_client_kib − bare.per_client_kib`.
    pub above_websocket_kib: f64,
}

impl B17Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let n = self.clients;
        vec![
            Row::new(
                "B17",
                format!("gateway RSS per idle light client at {n} (paired, spliced)"),
                self.gateway.per_client_kib,
                "KiB",
            )
            .reference(
                "bare axum WebSocket server, RSS per idle connection",
                self.bare.per_client_kib,
            )
            .target(Target::difference_at_most(TARGET_KIB))
            .note(format!(
                "B17: {:.1} KiB per client above the WebSocket's own cost (target ≤ {TARGET_KIB}); \
                 slopes {:.1} (gateway) and {:.1} (bare) KiB per client; {} home nodes of ≤ {} \
                 clients each, connected before the baseline",
                self.above_websocket_kib,
                self.gateway.slope_kib,
                self.bare.slope_kib,
                self.home_nodes,
                MAX_CLIENTS_PER_HOME,
            )),
        ]
    }
}

/// Runs B17 at `n` light clients ([`CLIENTS`] by default, [`QUICK_CLIENTS`] when quick). Spawns this
/// executable with [`SERVER_FLAG`], so it must be the `rhizo-bench` binary.
///
/// # Errors
///
/// If a server, a home node or a client fails, or a count is not reached in time.
pub async fn run_b17(quick: bool, n: usize) -> anyhow::Result<B17Result> {
    super::install_tracing();
    let exe = bench_exe("B17", SERVER_FLAG)?;
    let settle = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    let bare = measure_bare(&exe, n, settle).await?;
    let (gateway, home_nodes) = measure_gateway(&exe, n, settle).await?;
    Ok(B17Result {
        clients: n,
        home_nodes,
        above_websocket_kib: gateway.per_client_kib - bare.per_client_kib,
        gateway,
        bare,
    })
}

/// Polls `server` until it counts `want` connections (bounded by [`STEP_TIMEOUT`]).
async fn wait_count(server: &mut Server, want: usize) -> anyhow::Result<Point> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let point = server.stat().await?;
        if point.connections >= want {
            return Ok(point);
        }
        if Instant::now() > deadline {
            bail!(
                "the server counted {} of {want} connections",
                point.connections
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After the last group: settles, then the last point, which must still count `n`.
async fn last_point(server: &mut Server, n: usize, settle: Duration) -> anyhow::Result<Point> {
    tokio::time::sleep(settle).await;
    let last = server.stat().await?;
    if last.connections < n {
        bail!(
            "the server lost connections while settling: {} of {n}",
            last.connections
        );
    }
    Ok(last)
}

type Socket = WebSocketStream<TcpStream>;

/// Reads and drops whatever arrives until the socket closes (pings are answered by reading).
async fn drain(mut socket: Socket) {
    while let Some(Ok(_)) = socket.next().await {}
}

async fn open_socket(addr: SocketAddr, url: &str) -> anyhow::Result<Socket> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (socket, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .map_err(|e| anyhow!("WebSocket upgrade: {e}"))?;
    Ok(socket)
}

async fn next_binary(socket: &mut Socket) -> anyhow::Result<Vec<u8>> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
            Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("WebSocket: {e}"),
            None => bail!("the socket closed"),
        }
    }
}

// --- the bare WebSocket server ------------------------------------------------------------

async fn measure_bare(exe: &Path, n: usize, settle: Duration) -> anyhow::Result<Curve> {
    let (mut server, listen) = Server::spawn(exe, &[SERVER_FLAG, ServerKind::Bare.name()]).await?;
    let outcome = async {
        let addr: SocketAddr = listen.parse()?;
        let url = format!("ws://{addr}/v1/gateway/{}", PeerId::random());
        tokio::time::sleep(settle / 2).await;
        let mut points = vec![server.stat().await?];
        let mut tasks = Tasks::default();
        let started = Instant::now();
        let mut connected = 0;
        while connected < n {
            let batch = BARE_BATCH.min(n - connected);
            let sockets =
                futures::future::try_join_all((0..batch).map(|_| bare_client(addr, &url))).await?;
            for socket in sockets {
                tasks.push(tokio::spawn(drain(socket)));
            }
            connected += batch;
            points.push(wait_count(&mut server, connected).await?);
        }
        let connect_secs = started.elapsed().as_secs_f64();
        points.push(last_point(&mut server, n, settle).await?);
        drop(tasks);
        Ok::<_, anyhow::Error>(Curve::new(points, n, connect_secs))
    }
    .await;
    server.stop().await;
    outcome.context("B17's bare WebSocket server")
}

/// Connects and exchanges messages of the paired handshake's sizes, echoed.
async fn bare_client(addr: SocketAddr, url: &str) -> anyhow::Result<Socket> {
    tokio::time::timeout(CLIENT_TIMEOUT, async {
        let mut socket = open_socket(addr, url).await?;
        for len in [HELLO_LEN, CONFIRM_LEN, REGISTER_FRAME_LEN] {
            socket.send(Message::Binary(vec![7u8; len].into())).await?;
            let echo = next_binary(&mut socket).await?;
            if echo.len() != len {
                bail!("the bare server echoed {} bytes of {len}", echo.len());
            }
        }
        Ok(socket)
    })
    .await
    .context("a bare client did not connect in time")?
}

// --- the gateway ---------------------------------------------------------------------------

async fn measure_gateway(exe: &Path, n: usize, settle: Duration) -> anyhow::Result<(Curve, usize)> {
    let (mut server, listen) =
        Server::spawn(exe, &[SERVER_FLAG, ServerKind::Gateway.name()]).await?;
    let home_count = n.div_ceil(MAX_CLIENTS_PER_HOME);
    let mut homes: Vec<Node> = Vec::with_capacity(home_count);
    let mut tasks = Tasks::default();
    let outcome = async {
        let (p2p, ws) = listen
            .split_once(' ')
            .ok_or_else(|| anyhow!("unexpected gateway LISTEN line {listen:?}"))?;
        let p2p: Multiaddr = p2p.parse()?;
        let ws: SocketAddr = ws.parse()?;
        start_homes(&p2p, home_count, &mut homes).await?;
        tokio::time::sleep(settle).await;
        let mut points = vec![server.stat().await?];
        let started = Instant::now();
        let mut connected = 0;
        for (g, group) in homes.chunks(HOMES_AT_ONCE).enumerate() {
            let pairings = group.iter().enumerate().map(|(i, home)| {
                let first = (g * HOMES_AT_ONCE + i) * MAX_CLIENTS_PER_HOME;
                light_clients(home, ws, MAX_CLIENTS_PER_HOME.min(n - first))
            });
            for sockets in futures::future::try_join_all(pairings).await? {
                connected += sockets.len();
                for socket in sockets {
                    tasks.push(tokio::spawn(drain(socket)));
                }
            }
            let point = wait_count(&mut server, connected).await?;
            crate::progress(&format!(
                "B17: gateway at {} clients: {} KiB",
                point.connections, point.rss_kib
            ));
            points.push(point);
        }
        let connect_secs = started.elapsed().as_secs_f64();
        points.push(last_point(&mut server, n, settle).await?);
        Ok::<_, anyhow::Error>(Curve::new(points, n, connect_secs))
    }
    .await;
    drop(tasks);
    futures::future::join_all(homes.into_iter().map(Node::shutdown)).await;
    server.stop().await;
    Ok((outcome.context("B17's gateway")?, home_count))
}

/// Starts `count` home nodes that keep a connection to the gateway at `gateway`.
async fn start_homes(
    gateway: &Multiaddr,
    count: usize,
    homes: &mut Vec<Node>,
) -> anyhow::Result<()> {
    let mut next = 0;
    while next < count {
        let batch = STARTS_AT_ONCE.min(count - next);
        let starts = (next..next + batch).map(|i| async move {
            let extra = ConfigLayer {
                trusted: Some(vec![gateway.to_string()]),
                ..ConfigLayer::default()
            };
            Node::start_with(&format!("home-{i}"), Some(gateway), Disk::Tmp, extra).await
        });
        for result in futures::future::join_all(starts).await {
            homes.push(result?);
        }
        next += batch;
    }
    for (i, home) in homes.iter_mut().enumerate() {
        home.wait_connected()
            .await
            .with_context(|| format!("home node {i} did not connect to the gateway"))?;
    }
    Ok(())
}

/// `count` light clients of `home`, each paired through the gateway at `ws` and registered.
async fn light_clients(home: &Node, ws: SocketAddr, count: usize) -> anyhow::Result<Vec<Socket>> {
    let url = format!("ws://{ws}/v1/gateway/{}", home.peer_id);
    let mut sockets = Vec::with_capacity(count);
    while sockets.len() < count {
        let round = MAX_PENDING_TICKETS.min(count - sockets.len());
        let mut tickets = Vec::with_capacity(round);
        for k in 0..round {
            let ticket: NewPairingResponse = home
                .api
                .post(
                    "/v1/pairings",
                    &json!({ "name": format!("b17-{}", sockets.len() + k), "url": url }),
                )
                .await?;
            tickets.push(ticket.ticket);
        }
        let paired: Vec<anyhow::Result<Socket>> = futures::stream::iter(&tickets)
            .map(|t| light_client(ws, t))
            .buffer_unordered(PAIRINGS_AT_ONCE)
            .collect()
            .await;
        for socket in paired {
            sockets.push(socket?);
        }
    }
    Ok(sockets)
}

/// Pairs with `ticket` over a WebSocket to the gateway at `ws`, then registers.
async fn light_client(ws: SocketAddr, ticket: &str) -> anyhow::Result<Socket> {
    let ticket: PairTicket = ticket.parse()?;
    tokio::time::timeout(CLIENT_TIMEOUT, async {
        // The home node allows 10 s per handshake step from when the splice opens, and the
        // X-Wing work is slow in a debug build on a loaded machine: the hello is made before
        // connecting, and the client's steps run off the runtime's workers.
        let (node_pk, secret) = (ticket.node_pk.clone(), ticket.secret.clone());
        let (state, hello) = tokio::task::spawn_blocking(move || {
            ClientHandshake::start(HelloKind::Pair, &node_pk, KemKeyPair::generate()?, &secret)
                .map_err(anyhow::Error::from)
        })
        .await??;
        // A gateway that has no connection to the home node at that moment closes with 4404
        // before the home node sees the hello (the ticket stays unused); like MessagingPeer,
        // the client tries again, a bounded number of times.
        let mut attempt = 0;
        let (mut socket, reply) = loop {
            attempt += 1;
            let mut socket = open_socket(ws, &ticket.url).await?;
            socket.send(Message::Binary(hello.clone().into())).await?;
            match next_binary(&mut socket).await {
                Ok(reply) => break (socket, reply),
                Err(e) if attempt < HOME_RETRIES && e.to_string().contains("4404") => {
                    tokio::time::sleep(HOME_RETRY_DELAY).await;
                }
                Err(e) => return Err(e),
            }
        };
        let (mut session, finish, _) =
            tokio::task::spawn_blocking(move || state.finish(&reply)).await??;
        socket.send(Message::Binary(finish.into())).await?;
        let register = session.seal(&serde_json::to_vec(
            &json!({ "type": "register", "request_id": 0 }),
        )?)?;
        socket.send(Message::Binary(register.into())).await?;
        wait_registered(&mut socket, &mut session).await?;
        Ok(socket)
    })
    .await
    .context("a light client did not pair and register in time")?
}

async fn wait_registered(socket: &mut Socket, session: &mut Session) -> anyhow::Result<()> {
    loop {
        let frame = next_binary(socket).await?;
        let message: Value = serde_json::from_slice(&session.open(&frame)?)?;
        match message["type"].as_str() {
            Some("registered") => return Ok(()),
            Some("error") => bail!("the home node answered {message}"),
            _ => {}
        }
    }
}

// --- the children --------------------------------------------------------------------------

/// Runs a B17 server until stdin closes or says `quit` (the child side of [`run_b17`]): prints
/// `LISTEN …`, then answers each `stat` line with `STAT <established connections on the
/// WebSocket port> <VmRSS KiB>`.
///
/// # Errors
///
/// If the server cannot start.
pub fn serve(kind: ServerKind) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match kind {
            ServerKind::Gateway => serve_gateway().await,
            ServerKind::Bare => serve_bare().await,
        }
    })
}

async fn announce(line: &str) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("LISTEN {line}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    Ok(())
}

/// A free loopback port (bound and released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn serve_gateway() -> anyhow::Result<()> {
    let ws = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let extra = ConfigLayer {
        gateway: Some(ws.to_string()),
        max_inbound: Some(GATEWAY_PEER_LIMIT),
        max_per_ip: Some(GATEWAY_PEER_LIMIT),
        ..ConfigLayer::default()
    };
    let node = Node::start_with("gateway", None, Disk::Tmp, extra).await?;
    announce(&format!("{} {ws}", node.listen)).await?;
    let outcome = answer_stats(async || Ok(established_on(ws.port()))).await;
    node.shutdown().await;
    outcome
}

async fn serve_bare() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = axum::Router::new().route("/v1/gateway/{home}", axum::routing::get(echo));
    // As the gateway's listener does.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    }));
    announce(&addr.to_string()).await?;
    answer_stats(async || Ok(established_on(addr.port()))).await
}

/// The bare server's one route: upgrades with the gateway's limits and echoes binary messages.
async fn echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                if let ws::Message::Binary(bytes) = message
                    && socket.send(ws::Message::Binary(bytes)).await.is_err()
                {
                    break;
                }
            }
        })
}

/// Established IPv4 TCP connections whose local port is `port` (`/proc/net/tcp`: the server
/// side of its connections; the clients' sides have other local ports).
fn established_on(port: u16) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    count_established(&table, port)
}

fn count_established(table: &str, port: u16) -> usize {
    const ESTABLISHED: &str = "01";
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local_port = fields
                .next()
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let state = fields.nth(1);
            local_port == Some(port) && state == Some(ESTABLISHED)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_established_connections_on_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
           1: 0100007F:1F90 0100007F:C350 01 00000000:00000000\n\
           2: 0100007F:C350 0100007F:1F90 01 00000000:00000000\n\
           3: 0100007F:1F90 0100007F:C351 01 00000000:00000000\n\
           4: 0100007F:1F90 0100007F:C352 06 00000000:00000000\n";
        assert_eq!(count_established(table, 0x1F90), 2);
        assert_eq!(count_established(table, 0xC350), 1);
        assert_eq!(count_established(table, 1), 0);
        assert!(ServerKind::parse("nope").is_err());
        assert_eq!(ServerKind::parse("bare").unwrap(), ServerKind::Bare);
    }
}
