//! B16: a light client's round trip. A client paired with alice's node (`/v1/ws`, the paired
//! channel: HPKE with X-Wing, then sealed, numbered frames; the channel code of
//! `rhizo_node::pairing`, over a real WebSocket) sends to bob's full node and waits for the
//! `delivered` state, against B2's send → delivered p50 on the same warm pair: directly, then
//! through a third in-process node in gateway mode (`--gateway`), which splices the client's
//! WebSocket to alice over a libp2p stream.
//!
//! ```text
//!  direct:  light client ══ /v1/ws ══▶ alice (in-process node) ── /rhizo/msg/1 ──▶ bob ── receipt ──▶ alice ══▶ client
//!  gateway: light client ══ /v1/gateway/{alice} ══▶ gateway ── /rhizo/light/1 ──▶ alice ── … the same
//! ```
//!
//! A paired session may send 20 requests a second on average
//! ([`rhizo_node::api::ws::REQUESTS_PER_SECOND`], after a burst of 40), and the gateway allows
//! a client 50, so both cases pace their round trips to stay under it (the pause is outside
//! the timed part).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rhizo_node::api::NewPairingResponse;
use rhizo_node::pairing::PairTicket;
use rhizo_node::pairing::channel::{ClientHandshake, HelloKind, KemKeyPair, Session};
use serde::Serialize;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use rhizo_node::config::ConfigLayer;

use super::{Disk, Node, Pair};
use crate::report::{Row, Target};
use crate::{Summary, ms};

/// Bound on one read from the socket, so the benchmark never hangs on a silent node.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Round trips before the timed ones (the first builds nothing new, but warms the session).
const WARMUP: usize = 3;

/// B16's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LightResult {
    /// Timed round trips on each side.
    pub n: usize,
    /// Light client send → delivered (ms).
    pub light: Summary,
    /// The same through a gateway node (ms).
    pub gateway: Summary,
    /// The full node's send → delivered on the same pair (B2's measure, ms).
    pub message: Summary,
}

impl LightResult {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let reference = "message send → delivered p50 (B2, same pair)";
        vec![
            Row::new(
                "B16",
                "light client send → delivered p50, direct (/v1/ws)",
                self.light.p50,
                "ms",
            )
            .reference(reference, self.message.p50)
            .target(Target::ratio_at_most(1.5)),
            Row::new(
                "B16",
                "light client send → delivered p99, direct (/v1/ws)",
                self.light.p99,
                "ms",
            )
            .reference(
                "message send → delivered p99 (B2, same pair)",
                self.message.p99,
            ),
            Row::new(
                "B16",
                "light client send → delivered p50, through a gateway",
                self.gateway.p50,
                "ms",
            )
            .reference(reference, self.message.p50)
            .target(Target::ratio_at_most(2.0)),
            Row::new(
                "B16",
                "light client send → delivered p99, through a gateway",
                self.gateway.p99,
                "ms",
            )
            .reference(
                "message send → delivered p99 (B2, same pair)",
                self.message.p99,
            ),
        ]
    }
}

/// B16 on one warm pair of nodes.
pub async fn run_light(quick: bool) -> anyhow::Result<LightResult> {
    super::install_tracing();
    let mut pair = Pair::start(Disk::Tmp).await?;
    let outcome = measure(&mut pair, quick).await;
    pair.shutdown().await;
    outcome
}

async fn measure(pair: &mut Pair, quick: bool) -> anyhow::Result<LightResult> {
    let n = if quick { 5 } else { 200 };
    pair.warm_up(if quick { 3 } else { 10 }).await?;
    let message = Summary::of(&pair.sequential(n, "b16-ref").await?.total);
    let ticket: NewPairingResponse = pair
        .alice
        .api
        .post("/v1/pairings", &json!({ "name": "bench" }))
        .await?;
    let samples = tokio::task::spawn_blocking(move || round_trips(&ticket.ticket, n))
        .await
        .map_err(|e| anyhow!("light client thread: {e}"))??;
    let gateway = through_gateway(pair, n).await?;
    Ok(LightResult {
        n,
        light: Summary::of(&samples),
        gateway: Summary::of(&gateway),
        message,
    })
}

/// A third node serving light clients (`--gateway` on a free loopback port), connected to
/// alice; a client paired for `ws://GATEWAY/v1/gateway/{alice}` makes `n` paced round trips.
async fn through_gateway(pair: &mut Pair, n: usize) -> anyhow::Result<Vec<f64>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let extra = ConfigLayer {
        gateway: Some(addr.clone()),
        ..ConfigLayer::default()
    };
    let mut gateway =
        Node::start_with("gateway", Some(&pair.alice.listen), Disk::Tmp, extra).await?;
    let outcome = async {
        gateway.wait_connected().await?;
        let url = format!("ws://{addr}/v1/gateway/{}", pair.alice.peer_id);
        let ticket: NewPairingResponse = pair
            .alice
            .api
            .post(
                "/v1/pairings",
                &json!({ "name": "bench-gateway", "url": url }),
            )
            .await?;
        tokio::task::spawn_blocking(move || round_trips(&ticket.ticket, n))
            .await
            .map_err(|e| anyhow!("light client thread: {e}"))?
    }
    .await;
    gateway.shutdown().await;
    outcome
}

/// Each round trip takes at least this long (a pause after it, untimed): under the paired
/// session's rate limit.
const PACE: Duration =
    Duration::from_millis((1000.0 / rhizo_node::api::ws::REQUESTS_PER_SECOND) as u64 + 10);

/// A paired light client's socket and channel.
struct Light {
    ws: WebSocket<TcpStream>,
    session: Session,
}

impl Light {
    fn pair(ticket: &str) -> anyhow::Result<Self> {
        let ticket: PairTicket = ticket.parse()?;
        let addr = ticket
            .url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .context("the ticket's URL is not ws://")?;
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        // Small frames both ways: without this, Nagle and delayed ACKs add ~40 ms per message.
        stream.set_nodelay(true)?;
        let (mut ws, _) = tungstenite::client(ticket.url.as_str(), stream)
            .map_err(|e| anyhow!("upgrade: {e}"))?;
        let (state, hello) = ClientHandshake::start(
            HelloKind::Pair,
            &ticket.node_pk,
            KemKeyPair::generate()?,
            &ticket.secret,
        )?;
        ws.send(Message::Binary(hello.into()))?;
        let reply = read_binary(&mut ws)?;
        let (session, finish, _) = state.finish(&reply)?;
        ws.send(Message::Binary(finish.into()))?;
        Ok(Self { ws, session })
    }

    fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let frame = self.session.seal(&serde_json::to_vec(message)?)?;
        self.ws.send(Message::Binary(frame.into()))?;
        Ok(())
    }

    /// Reads until a message satisfies `pick` (others are skipped).
    fn wait(&mut self, pick: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        loop {
            let frame = read_binary(&mut self.ws)?;
            let message: Value = serde_json::from_slice(&self.session.open(&frame)?)?;
            if message["type"] == "error" {
                bail!("the node answered {message}");
            }
            if pick(&message) {
                return Ok(message);
            }
        }
    }
}

fn read_binary(ws: &mut WebSocket<TcpStream>) -> anyhow::Result<Vec<u8>> {
    loop {
        match ws.read()? {
            Message::Binary(b) => return Ok(b.to_vec()),
            Message::Close(frame) => bail!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Pairs, then `WARMUP` + `n` sequential messages to bob, each awaited to `delivered` and paced
/// to [`PACE`]; the timed ones in ms.
fn round_trips(ticket: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut light = Light::pair(ticket)?;
    light.send(&json!({"type": "register", "request_id": 0}))?;
    light.wait(|m| m["type"] == "registered")?;
    let mut out = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let start = Instant::now();
        let request_id = i + 1;
        let text = format!("b16 #{i}");
        light.send(
            &json!({"type": "message", "request_id": request_id, "to": "bob", "text": text}),
        )?;
        let first =
            light.wait(|m| m["type"] == "message_state" && m["request_id"] == request_id)?;
        let id = first["id"].clone();
        if first["state"] != "delivered" && first["state"] != "read" {
            light.wait(|m| {
                m["type"] == "message_state"
                    && m["id"] == id
                    && (m["state"] == "delivered" || m["state"] == "read")
            })?;
        }
        let took = start.elapsed();
        if i >= WARMUP {
            out.push(ms(took));
        }
        std::thread::sleep(PACE.saturating_sub(took));
    }
    Ok(out)
}
