//! Light clients (issue 17) with real `rhizo` processes on 127.0.0.1: `rhizo pair` prints a
//! ticket, a light client (the channel code of `rhizo_node::pairing`, over a real WebSocket)
//! pairs with alice's node, registers, discovers bob, checks his key, messages him and gets his
//! answer with delivery states; it reconnects with its pair key; a frame that is altered or
//! replayed closes the session; a wrong secret and a revoked client are refused. Through a
//! gateway node the same works, a flood is cut off by the gateway, and the home node's close
//! codes pass through.
//!
//! ```text
//!  light client ══ /v1/ws (paired channel) ══▶ alice (rhizo run) ◀── /rhizo/msg/1 ──▶ bob
//! ```

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use rhizo_node::pairing::PairTicket;
use rhizo_node::pairing::channel::{ClientHandshake, HelloKind, KemKeyPair, PSK_LEN, Session};
use rhizo_test_utils::{TestNode, befriend, free_loopback_port, wait_for};
use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
const TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on one read from the socket, so a test never hangs on a silent node.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A light client's connection: the socket and the channel.
struct Light {
    ws: WebSocket<TcpStream>,
    session: Session,
    pair_key: [u8; PSK_LEN],
}

fn connect_socket(url: &str) -> anyhow::Result<WebSocket<TcpStream>> {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .context("not a ws:// URL")?;
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let (ws, _) = tungstenite::client(url, stream).map_err(|e| anyhow!("upgrade: {e}"))?;
    Ok(ws)
}

/// The next binary message, or the close frame's code as an error.
fn read_binary(ws: &mut WebSocket<TcpStream>) -> anyhow::Result<Vec<u8>> {
    loop {
        match ws.read()? {
            Message::Binary(b) => return Ok(b.to_vec()),
            Message::Close(frame) => {
                let code = frame.map(|CloseFrame { code, .. }| u16::from(code));
                bail!("closed with {code:?}");
            }
            _ => {}
        }
    }
}

/// Runs the handshake over a fresh socket.
fn handshake(
    url: &str,
    kind: HelloKind,
    node_pk: &[u8],
    client: &KemKeyPair,
    psk: &[u8; PSK_LEN],
) -> anyhow::Result<Light> {
    let mut ws = connect_socket(url)?;
    let key = KemKeyPair::from_bytes(client.secret(), client.public())?;
    let (state, hello) = ClientHandshake::start(kind, node_pk, key, psk)?;
    ws.send(Message::Binary(hello.into()))?;
    let reply = read_binary(&mut ws)?;
    let (session, finish, keys) = state.finish(&reply)?;
    ws.send(Message::Binary(finish.into()))?;
    Ok(Light {
        ws,
        session,
        pair_key: *keys.pair_key,
    })
}

impl Light {
    fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let frame = self.session.seal(&serde_json::to_vec(message)?)?;
        self.ws.send(Message::Binary(frame.into()))?;
        Ok(())
    }

    fn recv(&mut self) -> anyhow::Result<Value> {
        let frame = read_binary(&mut self.ws)?;
        Ok(serde_json::from_slice(&self.session.open(&frame)?)?)
    }

    /// Reads until a message satisfies `pick` (others are skipped), within `timeout`.
    fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        pick: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let message = self.recv()?;
            if pick(&message) {
                return Ok(message);
            }
        }
        bail!("timed out waiting for {what}")
    }

    /// Sends `request` with `request_id` and returns the answer carrying that id.
    fn ask(&mut self, id: u64, mut request: Value) -> anyhow::Result<Value> {
        request["request_id"] = json!(id);
        self.send(&request)?;
        self.wait(READ_TIMEOUT, "an answer", |m| m["request_id"] == json!(id))
    }
}

/// The close code the node ends the session with.
fn close_code(ws: &mut WebSocket<TcpStream>) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn pair_ticket(node: &TestNode, url: Option<&str>) -> anyhow::Result<PairTicket> {
    let mut args = vec!["pair", "--no-qr", "--name", "phone"];
    if let Some(url) = url {
        args.extend(["--url", url]);
    }
    let out = node.cli(&args)?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("rhz1pair"))
        .context("no ticket printed")?;
    Ok(line.parse()?)
}

#[test]
fn a_paired_light_client_messages_a_full_node_contact_both_ways() {
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init alice");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let boot = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start_and_publish(&boot, TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        scenario(&alice, &bob)
    })();
    if let Err(e) = result {
        panic!(
            "{e:#}\n{}\n{}",
            alice.logs_tail(64 * 1024),
            bob.logs_tail(64 * 1024)
        );
    }
}

fn scenario(alice: &TestNode, bob: &TestNode) -> anyhow::Result<()> {
    let ticket = pair_ticket(alice, None)?;
    let client = KemKeyPair::generate()?;
    let mut light = handshake(
        &ticket.url,
        HelloKind::Pair,
        &ticket.node_pk,
        &client,
        &ticket.secret,
    )?;
    exchange(&mut light, alice, bob)?;
    security(alice, &ticket, &client, light)
}

/// Register, discover, check bob's key, message him and get his answer.
fn exchange(light: &mut Light, alice: &TestNode, bob: &TestNode) -> anyhow::Result<()> {
    let registered = light.ask(1, json!({"type": "register"}))?;
    ensure!(
        registered["type"] == "registered" && registered["uid"] == alice.uid(),
        "{registered}"
    );

    let peers = light.ask(2, json!({"type": "discover"}))?;
    let bob_entry = peers["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == "bob"))
        .cloned();
    ensure!(bob_entry.is_some_and(|b| b["uid"] == bob.uid()), "{peers}");
    let key = light.ask(3, json!({"type": "request_public_key", "peer": "bob"}))?;
    let contact = alice.api_get("/v1/contacts")?;
    let view = contact
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "bob"))
        .cloned()
        .context("bob")?;
    ensure!(
        key["uid"] == bob.uid() && key["safety_number"] == view["safety_number"],
        "{key}"
    );
    ensure!(key["devices"] == json!([bob.peer_id()]), "{key}");

    // Light client → bob, with delivery states (retried while bob's KeyPackages are not found).
    let mut id = 10;
    let first = wait_for(TIMEOUT, "the light client's message accepted", || {
        id += 1;
        let answer = light
            .ask(
                id,
                json!({"type": "message", "to": "bob", "text": "from the light client"}),
            )
            .ok()?;
        (answer["type"] == "message_state").then_some(answer)
    })?;
    let message_id = first["id"].clone();
    light.wait(TIMEOUT, "delivered", |m| {
        m["type"] == "message_state" && m["id"] == message_id && m["state"] == "delivered"
    })?;
    wait_for(TIMEOUT, "bob has the text", || {
        let history = bob.history("alice").ok()?;
        history
            .iter()
            .any(|m| m["text"] == "from the light client")
            .then_some(())
    })?;

    // Bob → the light client.
    bob.send_when_ready("alice", "to the light client", TIMEOUT)?;
    let got = light.wait(TIMEOUT, "bob's message", |m| m["type"] == "message")?;
    ensure!(
        got["from"] == "bob" && got["text"] == "to the light client",
        "{got}"
    );

    Ok(())
}

/// Reconnects with the pair key; a replayed frame and an altered frame close sessions; a wrong
/// secret and, after `rhizo pair revoke`, the client are refused.
fn security(
    alice: &TestNode,
    ticket: &PairTicket,
    client: &KemKeyPair,
    light: Light,
) -> anyhow::Result<()> {
    let pair_key = light.pair_key;
    drop(light);
    let mut again = handshake(
        &ticket.url,
        HelloKind::Resume,
        &ticket.node_pk,
        client,
        &pair_key,
    )?;
    let pong = again.ask(1, json!({"type": "ping"}))?;
    ensure!(pong["type"] == "pong", "{pong}");
    // A replayed frame (a gateway resending what it saw).
    let frame = again
        .session
        .seal(&serde_json::to_vec(&json!({"type": "ping"}))?)?;
    again.ws.send(Message::Binary(frame.clone().into()))?;
    read_binary(&mut again.ws)?;
    again.ws.send(Message::Binary(frame.into()))?;
    ensure!(
        close_code(&mut again.ws) == Some(4409),
        "a replay did not close the session"
    );
    // An altered frame.
    let mut third = handshake(
        &ticket.url,
        HelloKind::Resume,
        &ticket.node_pk,
        client,
        &pair_key,
    )?;
    let mut frame = third.session.seal(b"{\"type\":\"ping\"}")?;
    let last = frame.len() - 1;
    frame[last] ^= 1;
    third.ws.send(Message::Binary(frame.into()))?;
    ensure!(
        close_code(&mut third.ws) == Some(4409),
        "an altered frame did not close the session"
    );
    // The used ticket, and a wrong secret, are refused alike.
    let other = KemKeyPair::generate()?;
    let reused = handshake(
        &ticket.url,
        HelloKind::Pair,
        &ticket.node_pk,
        &other,
        &ticket.secret,
    );
    ensure!(
        reused.is_err_and(|e| e.to_string().contains("4401")),
        "a used ticket paired again"
    );
    let wrong = handshake(
        &ticket.url,
        HelloKind::Pair,
        &ticket.node_pk,
        &other,
        &[9u8; PSK_LEN],
    );
    ensure!(
        wrong.is_err_and(|e| e.to_string().contains("4401")),
        "a wrong secret paired"
    );
    // Revoke: the live session ends, and the client is refused.
    let mut live = handshake(
        &ticket.url,
        HelloKind::Resume,
        &ticket.node_pk,
        client,
        &pair_key,
    )?;
    let list = alice.cli(&["pair", "list", "--json"])?;
    let list: Value = serde_json::from_slice(&list.stdout)?;
    let id = list[0]["id"]
        .as_str()
        .context("no paired client listed")?
        .to_owned();
    ensure!(
        alice.cli(&["pair", "revoke", &id[..8]])?.status.success(),
        "revoke failed"
    );
    ensure!(
        close_code(&mut live.ws) == Some(4401),
        "a revoked client's session went on"
    );
    let refused = handshake(
        &ticket.url,
        HelloKind::Resume,
        &ticket.node_pk,
        client,
        &pair_key,
    );
    ensure!(
        refused.is_err_and(|e| e.to_string().contains("4401")),
        "a revoked client connected"
    );
    Ok(())
}

/// Alice's node is reached through a third node in gateway mode (she keeps a connection to it
/// with --trusted); the gateway splices the channel's bytes, refuses an unknown home node, and
/// a session through it works like a direct one.
#[test]
fn a_light_client_reaches_its_home_node_through_a_gateway() {
    let mut gateway = TestNode::init(Path::new(BIN), "gateway").expect("init gateway");
    let mut alice = TestNode::init(Path::new(BIN), "alice").expect("init alice");
    let mut bob = TestNode::init(Path::new(BIN), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        let port = free_loopback_port()?;
        gateway.start(&["--gateway".to_string(), format!("127.0.0.1:{port}")])?;
        let g = gateway.listen_addr()?;
        alice.start(&[
            "--bootstrap".to_string(),
            g.clone(),
            "--trusted".to_string(),
            g.clone(),
        ])?;
        bob.start_and_publish(&["--bootstrap".to_string(), g], TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        let url = format!("ws://127.0.0.1:{port}/v1/gateway/{}", alice.peer_id());
        let ticket = pair_ticket(&alice, Some(&url))?;
        ensure!(ticket.url == url, "{}", ticket.url);
        let client = KemKeyPair::generate()?;
        let mut light = handshake(
            &url,
            HelloKind::Pair,
            &ticket.node_pk,
            &client,
            &ticket.secret,
        )?;
        exchange(&mut light, &alice, &bob)?;
        // A client (or anyone) flooding through the gateway is cut off there.
        let mut flood = handshake(
            &url,
            HelloKind::Resume,
            &ticket.node_pk,
            &client,
            &light.pair_key,
        )?;
        for _ in 0..400 {
            let frame = flood.session.seal(b"{\"type\":\"ping\"}")?;
            if flood.ws.send(Message::Binary(frame.into())).is_err() {
                break;
            }
        }
        ensure!(
            close_code(&mut flood.ws) == Some(4429),
            "a flood was not rate-limited by the gateway"
        );
        let nowhere = format!("ws://127.0.0.1:{port}/v1/gateway/{}", bob.peer_id());
        let other = KemKeyPair::generate()?;
        let refused = handshake(
            &nowhere,
            HelloKind::Resume,
            &ticket.node_pk,
            &other,
            &[1u8; PSK_LEN],
        );
        // Bob's node pairs no such client: its close code passes through the gateway.
        ensure!(
            refused.is_err_and(|e| e.to_string().contains("4401")),
            "a session to bob's node (no light clients paired) worked"
        );
        Ok(())
    })();
    if let Err(e) = result {
        panic!(
            "{e:#}\n{}\n{}\n{}",
            gateway.logs_tail(32 * 1024),
            alice.logs_tail(64 * 1024),
            bob.logs_tail(32 * 1024)
        );
    }
}
