//! Network hardening end to end, with real `rhizo` processes and raw sockets on 127.0.0.1:
//! garbage, oversized length claims, half-finished handshakes, a slowloris, a burst of 1000
//! connections and a request flood, while two honest users keep chatting; a flood from a dozen
//! peers during which an honest message is still delivered in bounded time; bans and unbans;
//! peer exchange; and a broadcast channel across 20 nodes.
//!
//! Every attack loop is bounded in count and time and stops by itself.

use std::{
    collections::{BTreeSet, HashMap},
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{RawNode, TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
const TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: usize = 48 * 1024;

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The TCP socket address a node listens on.
fn socket_of(node: &TestNode) -> anyhow::Result<SocketAddr> {
    let addr = node.listen_addr()?;
    let mut parts = addr.split('/');
    let (ip, port) = (parts.nth(2), parts.nth(1));
    Ok(format!("{}:{}", ip.context("no ip")?, port.context("no port")?).parse()?)
}

fn ticket(node: &TestNode) -> anyhow::Result<String> {
    Ok(node.api_get("/v1/invite")?["ticket"]
        .as_str()
        .context("no ticket")?
        .to_string())
}

fn send(node: &TestNode, to: &str, text: &str) -> anyhow::Result<()> {
    let body = json!({"to": to, "text": text});
    wait_for(TIMEOUT, "the contact's KeyPackages", || {
        match node.api_post_raw("/message", &body) {
            Ok((200..=299, _)) => Some(Ok(())),
            Ok((503, a)) if a.contains("NO_KEY_PACKAGES") => None,
            Ok((s, a)) => Some(Err(anyhow!("POST /message: {s} {a}"))),
            Err(e) => Some(Err(e)),
        }
    })?
}

fn delivered(node: &TestNode, contact: &str) -> anyhow::Result<usize> {
    let list = node.api_get(&format!("/v1/conversations/{contact}/messages?limit=1000"))?;
    Ok(list
        .as_array()
        .context("history")?
        .iter()
        .filter(|m| m["direction"] == "out" && (m["state"] == "delivered" || m["state"] == "read"))
        .count())
}

/// Runs `f` on `n` threads at once and waits for all of them (each is bounded by its own
/// deadline).
fn swarm_of(n: usize, f: impl Fn(usize) + Send + Sync + Copy + 'static) {
    let handles: Vec<_> = (0..n).map(|i| thread::spawn(move || f(i))).collect();
    for h in handles {
        let _ = h.join();
    }
}

/// The raw-socket attacks, all against `target`, each bounded.
fn attack(target: SocketAddr) {
    let connect = move || TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok();
    // 1. Garbage: 50 connections, 16 KiB of junk each.
    swarm_of(50, move |i| {
        if let Some(mut s) = connect() {
            let junk: Vec<u8> = (0..16 * 1024).map(|j| (i * 31 + j * 7) as u8).collect();
            let _ = s.write_all(&junk);
        }
    });
    // 2. Oversized length claims: multistream-select frames claiming up to 4 GiB (unsigned
    //    varints), then nothing.
    swarm_of(20, move |i| {
        if let Some(mut s) = connect() {
            let claim: u64 = 1 << (12 + i % 21); // 4 KiB .. 4 GiB
            let mut varint = Vec::new();
            let mut v = claim;
            loop {
                let byte = (v & 0x7F) as u8;
                v >>= 7;
                if v == 0 {
                    varint.push(byte);
                    break;
                }
                varint.push(byte | 0x80);
            }
            let _ = s.write_all(&varint);
            let _ = s.write_all(b"/multistream/1.0.0\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut [0u8; 64]);
        }
    });
    // 3. Half-finished handshakes: the multistream header and Noise, then silence for 3 s.
    swarm_of(30, move |_| {
        if let Some(mut s) = connect() {
            let _ = s.write_all(b"\x13/multistream/1.0.0\n\x07/noise\n");
            thread::sleep(Duration::from_secs(3));
        }
    });
    // 4. Slowloris: 10 connections, one byte per second for 6 s.
    swarm_of(10, move |_| {
        if let Some(mut s) = connect() {
            for b in b"\x13/multis" {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_secs(1));
            }
        }
    });
    // 5. A burst of 1000 connection attempts (20 threads × 50), closed at once.
    swarm_of(20, move |_| {
        for _ in 0..50 {
            drop(connect());
        }
    });
}

/// The request flooder of [`a_node_under_attack_stays_up_bounded_and_serves_honest_peers`]:
/// an in-process libp2p node that sends well-formed envelopes (from a stranger) to its target.
struct Flooder {
    rt: tokio::runtime::Runtime,
    raw: RawNode,
    target: rhizo_net::PeerId,
    addr: rhizo_net::Multiaddr,
    seq: u64,
}

impl Flooder {
    /// Starts the flooder and connects it to `target_peer` with one answered request, before
    /// the attacks begin. It must be connected first: during the connection flood every
    /// handshake slot of the target (32) is taken, so a flooder that only dialled then would be
    /// refused before its handshake, as a peer the target cannot name, rate limit or ban.
    fn connect(target_peer: &str, target_addr: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Runtime::new()?;
        let raw = rt.block_on(async { RawNode::start("rhizo-test-flooder", Vec::new()) })?;
        let mut flooder = Self {
            rt,
            raw,
            target: target_peer.parse()?,
            addr: target_addr.parse()?,
            seq: 0,
        };
        let first = flooder.envelope();
        let (client, target, addr) = (&flooder.raw.client, flooder.target, flooder.addr.clone());
        flooder
            .rt
            .block_on(client.send_message(target, vec![addr], first))
            .map_err(|e| anyhow!("the flooder's first request before the attacks: {e}"))?;
        Ok(flooder)
    }

    /// The next signed envelope from the stranger.
    fn envelope(&mut self) -> Vec<u8> {
        use rhizo_core::{
            DeviceKey,
            envelope::{MessageType, SecureMessage, SessionId},
        };
        let device = DeviceKey::from_bytes(&[77; 32]);
        let stranger = rhizo_core::RootKey::from_bytes(&[78; 32]).public().uid();
        self.seq += 1;
        let mut m = SecureMessage {
            msg_type: MessageType::Application,
            sender_id: stranger,
            sender_device: device.public(),
            recipient_id: stranger,
            session_id: SessionId::from_bytes([9; 16]),
            sequence_num: self.seq,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            nonce: [self.seq as u8; 32],
            payload: vec![0u8; 64].into(),
            signature: [0; 64],
        };
        let _ = m.sign(&device);
        m.encode()
    }

    /// Floods the target as fast as it can, 3000 requests at most or 30 s, then stops. Returns
    /// its PeerId and how many requests got an answer before it was cut off.
    fn flood(mut self) -> (String, usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut answered = 0;
        for _ in 0..60 {
            let batch: Vec<Vec<u8>> = (0..50).map(|_| self.envelope()).collect();
            let (client, target) = (&self.raw.client, self.target);
            let sends = batch
                .into_iter()
                .map(|m| client.send_message(target, vec![self.addr.clone()], m));
            let results = self.rt.block_on(futures::future::join_all(sends));
            answered += results.iter().filter(|r| r.is_ok()).count();
            if Instant::now() > deadline {
                break;
            }
        }
        let me = self.raw.peer_id.to_string();
        self.rt.block_on(self.raw.stop());
        (me, answered)
    }
}

#[test]
fn a_node_under_attack_stays_up_bounded_and_serves_honest_peers() {
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let result = (|| -> anyhow::Result<()> {
        bob.start(&[])?;
        alice.start(&strings(&["--bootstrap", &bob.listen_addr()?]))?;
        bob.api_post(
            "/v1/contacts",
            &json!({"ticket": ticket(&alice)?, "name": "alice"}),
        )?;
        alice.api_post(
            "/v1/contacts",
            &json!({"ticket": ticket(&bob)?, "name": "bob"}),
        )?;
        send(&alice, "bob", "before the attack")?;
        let target = socket_of(&bob)?;
        let rss_before = bob.peak_rss_kib().unwrap_or(0);

        // The flooder connects first; then the attacks run while alice and bob keep chatting.
        let flooder = Flooder::connect(bob.peer_id(), &bob.listen_addr()?)?;
        let attacker = thread::spawn(move || attack(target));
        let (flooder, answered) = flooder.flood();
        for i in 0..10 {
            send(&alice, "bob", &format!("during the attack {i}"))?;
            send(&bob, "alice", &format!("reply {i}"))?;
        }
        attacker
            .join()
            .map_err(|_| anyhow!("attack thread panicked"))?;

        wait_for(TIMEOUT, "honest messages delivered", || {
            (delivered(&alice, "bob").ok()? == 11 && delivered(&bob, "alice").ok()? == 10)
                .then_some(())
        })?;
        ensure!(bob.is_running(), "bob died");
        let stats = bob.api_get("/stats")?;
        let peak = bob.peak_rss_kib().unwrap_or(0);
        eprintln!(
            "bob's peak RSS: {} KiB before, {peak} KiB after the attacks; flood: {answered} \
             requests answered before the cut-off; connections refused: {}",
            rss_before, stats["net"]["connections_denied"]
        );
        ensure!(peak < 400 * 1024, "bob's memory grew to {peak} KiB");
        // The flooder was rate limited, then banned.
        ensure!(
            answered < 3000,
            "the flood was never cut off ({answered} answered)"
        );
        let bans = bob.api_get("/v1/bans")?;
        ensure!(
            bans.as_array()
                .is_some_and(|b| b.iter().any(|x| x["target"] == flooder)),
            "the flooder {flooder} is not banned: {bans}"
        );
        // Reputation and the ban are kept in the peer book: still banned after a restart.
        bob.stop()?;
        bob.start(&[])?;
        let bans = bob.api_get("/v1/bans")?;
        ensure!(
            bans.as_array()
                .is_some_and(|b| b.iter().any(|x| x["target"] == flooder)),
            "after a restart the flooder is no longer banned: {bans}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&bob, &alice]);
    }
}

/// Flooding peers in [`a_flooded_node_keeps_answering_and_delivers_honest_messages`].
const FLOODERS: usize = 12;
/// `/rhizo/msg/1` requests each flooder keeps in flight (its connection allows 64 streams).
const FLOOD_MSG_IN_FLIGHT: usize = 48;
/// How long the flooders keep going at most (each stops by itself once it is cut off).
const FLOOD_TIME: Duration = Duration::from_secs(40);
/// The bound on an honest message's delivery while the node is flooded. Before the node's and
/// the network's event loops stopped waiting on each other, every ban the node made while its
/// event channel was full cost 10 s of standstill (the client timeout), so a dozen flooders
/// pushed delivery far past this.
const DELIVERY_UNDER_FLOOD: Duration = Duration::from_secs(60);

/// One flooding peer: an in-process libp2p node that keeps [`FLOOD_MSG_IN_FLIGHT`] signed
/// envelopes from a stranger (real work for the target: a signature and a lookup each) and
/// peer-exchange requests (over their rate after five, so the target bans it from its own
/// event loop) in flight at `target`, until [`FLOOD_TIME`] has passed or it is cut off.
/// Returns how many requests got an answer.
async fn flood_as_one_peer(
    target: rhizo_net::PeerId,
    addr: rhizo_net::Multiaddr,
    tag: u8,
) -> anyhow::Result<usize> {
    use futures::{FutureExt, StreamExt};
    use rhizo_core::{
        DeviceKey,
        envelope::{MessageType, SecureMessage, SessionId},
    };
    let raw = RawNode::start("rhizo-test-flooder", Vec::new())?;
    let client = &raw.client;
    let device = DeviceKey::from_bytes(&[tag; 32]);
    let stranger = rhizo_core::RootKey::from_bytes(&[tag.wrapping_add(100); 32])
        .public()
        .uid();
    let deadline = tokio::time::Instant::now() + FLOOD_TIME;
    let envelope = |seq: u64| {
        let mut m = SecureMessage {
            msg_type: MessageType::Application,
            sender_id: stranger,
            sender_device: device.public(),
            recipient_id: stranger,
            session_id: SessionId::from_bytes([tag; 16]),
            sequence_num: seq,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            nonce: [(seq % 251) as u8; 32],
            payload: vec![0u8; 64].into(),
            signature: [0; 64],
        };
        let _ = m.sign(&device);
        m.encode()
    };
    let mut answered = 0usize;
    let mut failed_in_a_row = 0usize;
    let mut seq = 0u64;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let msg = |seq: u64| {
        let (client, addr) = (client.clone(), addr.clone());
        let payload = envelope(seq);
        async move {
            client
                .send_message(target, vec![addr], payload)
                .await
                .is_ok()
        }
        .boxed()
    };
    let pex = || {
        let client = client.clone();
        async move { client.pex_request(target).await.is_ok() }.boxed()
    };
    for _ in 0..FLOOD_MSG_IN_FLIGHT {
        seq += 1;
        in_flight.push(msg(seq));
    }
    for _ in 0..4 {
        in_flight.push(pex());
    }
    let mut pex_sent = 4;
    while let Some(ok) = in_flight.next().await {
        if ok {
            answered += 1;
            failed_in_a_row = 0;
        } else {
            failed_in_a_row += 1;
        }
        // Cut off (banned): every request in flight failed.
        if failed_in_a_row > FLOOD_MSG_IN_FLIGHT + 4 || tokio::time::Instant::now() > deadline {
            break;
        }
        if pex_sent < 40 && seq.is_multiple_of(8) {
            pex_sent += 1;
            in_flight.push(pex());
        }
        seq += 1;
        in_flight.push(msg(seq));
    }
    drop(in_flight);
    raw.stop().await;
    Ok(answered)
}

#[test]
fn a_flooded_node_keeps_answering_and_delivers_honest_messages() {
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let result = (|| -> anyhow::Result<()> {
        bob.start(&[])?;
        alice.start(&strings(&["--bootstrap", &bob.listen_addr()?]))?;
        bob.api_post(
            "/v1/contacts",
            &json!({"ticket": ticket(&alice)?, "name": "alice"}),
        )?;
        alice.api_post(
            "/v1/contacts",
            &json!({"ticket": ticket(&bob)?, "name": "bob"}),
        )?;
        send(&alice, "bob", "before the flood")?;
        wait_for(TIMEOUT, "the first message delivered", || {
            (delivered(&alice, "bob").ok()? == 1).then_some(())
        })?;

        let target: rhizo_net::PeerId = bob.peer_id().parse()?;
        let addr: rhizo_net::Multiaddr = bob.listen_addr()?.parse()?;
        let flood = thread::spawn(move || -> anyhow::Result<usize> {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let floods = (0..FLOODERS).map(|i| {
                    let tag = u8::try_from(i + 1).unwrap_or(1);
                    flood_as_one_peer(target, addr.clone(), tag)
                });
                let mut answered = 0;
                for n in futures::future::join_all(floods).await {
                    answered += n?;
                }
                Ok(answered)
            })
        });
        // Bob is being flooded: wait until his node has taken some of it.
        wait_for(TIMEOUT, "the flood to reach bob", || {
            let stats = bob.api_get("/stats").ok()?;
            (stats["net"]["messages_received"].as_u64()? > 200).then_some(())
        })?;

        // While the flood goes on, an honest message gets through and /health answers.
        send(&alice, "bob", "during the flood")?;
        let mut health_checks = 0;
        wait_for(
            DELIVERY_UNDER_FLOOD,
            "alice's message delivered during the flood",
            || {
                match bob.api_raw("/health", None) {
                    Ok((200, _)) => health_checks += 1,
                    other => return Some(Err(anyhow!("/health did not answer: {other:?}"))),
                }
                (delivered(&alice, "bob").ok()? == 2).then_some(Ok(()))
            },
        )??;
        ensure!(health_checks > 0);
        let answered = flood
            .join()
            .map_err(|_| anyhow!("flood thread panicked"))??;
        ensure!(bob.is_running(), "bob died");
        let stats = bob.api_get("/stats")?;
        eprintln!(
            "flood: {answered} requests answered; bob: {} received, {} refused busy, {} events \
             shed, {} commands shed",
            stats["net"]["messages_received"],
            stats["net"]["inbound_refused_busy"],
            stats["net"]["events_shed"],
            stats["net"]["commands_shed"],
        );
        // Bob still answers his local API's network calls.
        ensure!(bob.api_get("/v1/bans")?.is_array());
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&bob, &alice]);
    }
}

#[test]
fn ban_and_unban_from_the_cli_apply_to_live_connections() {
    let mut a = TestNode::init(bin(), "a").expect("init");
    let mut b = TestNode::init(bin(), "b").expect("init");
    let result = (|| -> anyhow::Result<()> {
        a.start(&[])?;
        b.start(&strings(&["--bootstrap", &a.listen_addr()?]))?;
        wait_for(TIMEOUT, "b connected to a", || {
            a.connected_peers()
                .contains(&b.peer_id().to_string())
                .then_some(())
        })?;
        let out = a.cli(&["ban", b.peer_id(), "--reason", "testing"])?;
        ensure!(
            out.status.success(),
            "ban: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(TIMEOUT, "b disconnected", || {
            (!a.connected_peers().contains(&b.peer_id().to_string())).then_some(())
        })?;
        let list = String::from_utf8_lossy(&a.cli(&["bans"])?.stdout).to_string();
        ensure!(
            list.contains(b.peer_id()) && list.contains("testing"),
            "{list}"
        );
        // Bad input: a clear error.
        let out = a.cli(&["ban", "not-a-peer"])?;
        ensure!(!out.status.success(), "a bad target was accepted");
        ensure!(
            String::from_utf8_lossy(&out.stderr).contains("neither a peer id"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A range ban too, then both lifted.
        let out = a.cli(&["ban", "127.0.0.0/8", "--for", "600"])?;
        ensure!(
            out.status.success(),
            "cidr ban: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for t in [b.peer_id(), "127.0.0.0/8"] {
            let out = a.cli(&["unban", t])?;
            ensure!(
                out.status.success(),
                "unban {t}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // b dials again and gets in.
        b.stop()?;
        b.start(&strings(&["--bootstrap", &a.listen_addr()?]))?;
        wait_for(TIMEOUT, "b reconnected after the unban", || {
            a.connected_peers()
                .contains(&b.peer_id().to_string())
                .then_some(())
        })?;
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&a, &b]);
    }
}

/// 20 nodes join one channel; every post reaches every node exactly once.
#[test]
fn a_channel_post_reaches_all_20_nodes_exactly_once() {
    const N: usize = 20;
    let wide = strings(&["--max-per-ip", "256", "--max-inbound", "256"]);
    let mut nodes: Vec<TestNode> = (0..N)
        .map(|i| TestNode::init(bin(), &format!("n{i}")).expect("init"))
        .collect();
    let result = (|| -> anyhow::Result<()> {
        nodes[0].start(&wide)?;
        let hub = nodes[0].listen_addr()?;
        let mut args = wide.clone();
        args.extend(strings(&["--bootstrap", &hub]));
        TestNode::start_all(&mut nodes[1..], &args)?;
        let created = nodes[0].api_post("/v1/channels", &json!({"name": "town square"}))?;
        let id = created["id"].as_str().context("no id")?.to_string();
        for node in nodes.iter().skip(1) {
            node.api_post(&format!("/v1/channels/{id}/join"), &json!({}))?;
        }
        // Wait for the gossip mesh: every node knows channel peers.
        wait_for(TIMEOUT, "channel peers everywhere", || {
            nodes
                .iter()
                .all(|n| {
                    n.api_get("/v1/channels")
                        .ok()
                        .and_then(|l| l.as_array()?.first()?["peers"].as_u64())
                        .is_some_and(|p| p >= 1)
                })
                .then_some(())
        })?;
        let authors = [0, 5, 11, 19];
        let mut texts = BTreeSet::new();
        for (k, a) in authors.iter().enumerate() {
            for j in 0..2 {
                let text = format!("post {k}.{j} from n{a}");
                nodes[*a].api_post(&format!("/v1/channels/{id}/posts"), &json!({"text": text}))?;
                texts.insert(text);
            }
        }
        let mut last = HashMap::new();
        let all_there = wait_for(TIMEOUT, "every post on every node", || {
            for (i, n) in nodes.iter().enumerate() {
                let posts = n
                    .api_get(&format!("/v1/channels/{id}/posts?limit=1000"))
                    .ok()?;
                let got: Vec<String> = posts
                    .as_array()?
                    .iter()
                    .filter_map(|p| p["text"].as_str().map(String::from))
                    .collect();
                last.insert(i, got.len());
                if got.len() < texts.len() {
                    return None;
                }
            }
            Some(())
        });
        all_there.map_err(|e| anyhow!("{e}: posts per node {last:?}"))?;
        thread::sleep(Duration::from_secs(2));
        for (i, n) in nodes.iter().enumerate() {
            let posts: Vec<Value> = n
                .api_get(&format!("/v1/channels/{id}/posts?limit=1000"))?
                .as_array()
                .cloned()
                .unwrap_or_default();
            let got: Vec<String> = posts
                .iter()
                .filter_map(|p| p["text"].as_str().map(String::from))
                .collect();
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            ensure!(
                got.len() == texts.len() && unique == texts,
                "node {i}: {} posts, want each of {} once: {got:?}",
                got.len(),
                texts.len()
            );
        }
        Ok(())
    })();
    if let Err(e) = result {
        let refs: Vec<&TestNode> = nodes.iter().take(4).collect();
        fail_with_logs(&e, &refs);
    }
}

/// A node that knows nobody in a channel meets its members through the DHT: members announce
/// themselves as providers of the channel's key, the hub (no member) keeps the records, and a
/// newcomer's join looks them up, dials them and then receives a member's post.
#[test]
fn a_newcomer_finds_channel_members_through_provider_records() {
    let mut hub = TestNode::init(bin(), "hub").expect("init");
    let mut member = TestNode::init(bin(), "member").expect("init");
    let mut newcomer = TestNode::init(bin(), "newcomer").expect("init");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&[])?;
        let addr = hub.listen_addr()?;
        member.start(&strings(&["--bootstrap", &addr]))?;
        newcomer.start(&strings(&["--bootstrap", &addr]))?;
        let created = member.api_post("/v1/channels", &json!({"name": "lobby"}))?;
        let id = created["id"].as_str().context("no id")?.to_string();
        let channel = |node: &TestNode| -> Option<Value> {
            node.api_get("/v1/channels")
                .ok()?
                .as_array()?
                .iter()
                .find(|c| c["id"] == id.as_str())
                .cloned()
        };
        // The member's announcement is stored on the hub.
        wait_for(
            TIMEOUT,
            "the hub to keep the member's provider record",
            || {
                hub.api_get("/stats").ok()?["net"]["providers_stored"]
                    .as_u64()
                    .is_some_and(|n| n >= 1)
                    .then_some(())
            },
        )?;
        newcomer.api_post(&format!("/v1/channels/{id}/join"), &json!({}))?;
        let joined = wait_for(
            TIMEOUT,
            "the newcomer to find and mesh with the member",
            || {
                let c = channel(&newcomer)?;
                (c["members_found"].as_u64()? >= 1 && c["peers"].as_u64()? >= 1).then_some(c)
            },
        )?;
        println!("newcomer's channel after join: {joined}");
        let text = "hello from a member the newcomer never knew";
        member.api_post(&format!("/v1/channels/{id}/posts"), &json!({"text": text}))?;
        wait_for(TIMEOUT, "the newcomer to receive the member's post", || {
            newcomer
                .api_get(&format!("/v1/channels/{id}/posts"))
                .ok()?
                .as_array()?
                .iter()
                .any(|p| p["text"] == text)
                .then_some(())
        })?;
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&hub, &member, &newcomer]);
    }
}

/// Peer exchange: c, which only ever talked to the hub, learns of a peer through the hub's
/// sample and keeps it in its peer book (source `exchange`) across a restart.
#[test]
fn peer_exchange_fills_the_peer_book() {
    let fast = strings(&["--pex-interval-secs", "1"]);
    let mut hub = TestNode::init(bin(), "hub").expect("init");
    let mut b = TestNode::init(bin(), "b").expect("init");
    let mut c = TestNode::init(bin(), "c").expect("init");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&fast)?;
        let hub_addr = hub.listen_addr()?;
        let mut args = fast.clone();
        args.extend(strings(&["--bootstrap", &hub_addr]));
        b.start(&args)?;
        c.start(&args)?;
        let db = c.data_dir().join("rhizo.db");
        let b_id = b.peer_id().to_string();
        // c asks its only connection (the hub) every second; the hub's sample names b.
        wait_for(TIMEOUT, "c to learn peers by peer exchange", || {
            c.logs()
                .contains("peer exchange: learned peers")
                .then_some(())
        })?;
        // The hub answers from its peer book, which holds b (and c, which it leaves out).
        c.stop()?;
        let store = rhizo_store::Store::open(&db)?;
        let peers = store.read().list_peers()?;
        ensure!(
            peers.iter().any(|p| p.peer_id == b_id),
            "c's persisted peer book lacks b: {:?}",
            peers
                .iter()
                .map(|p| (&p.peer_id, p.source))
                .collect::<Vec<_>>()
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&hub, &b, &c]);
    }
}

/// The newest valid device list of `uid` that a lookup through `client` finds, if any.
async fn newest_device_list(
    client: &rhizo_net::Client,
    uid: &rhizo_core::Uid,
) -> Option<rhizo_core::records::DeviceList> {
    use rhizo_core::records::{ValidRecord, device_list_key, validate_record};
    let key = device_list_key(uid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    client
        .get_records(key.to_vec())
        .await
        .ok()?
        .iter()
        .filter_map(|v| match validate_record(&key, v, now) {
            Ok(ValidRecord::DeviceList(list)) => Some(list),
            _ => None,
        })
        .max_by_key(|l| l.version())
}

/// A node never signs a record version at or below one of its own it finds in the DHT: a
/// device list of alice's far ahead of her version counter (as a device that ran ahead of the
/// clock, or the device before a restore, leaves behind) is outranked by her next publication,
/// which the DHT holders would otherwise refuse as not newer.
#[test]
fn a_record_version_found_in_the_dht_is_outranked_by_the_next_publication() {
    use rhizo_core::records::DeviceList;
    let mut hub = TestNode::init(bin(), "hub").expect("init hub");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&[])?;
        let out = alice.cli(&["identity", "export-phrase"])?;
        ensure!(out.status.success(), "export-phrase failed");
        let root = rhizo_core::RootKey::from_phrase(&String::from_utf8(out.stdout)?)?;
        let uid = root.public().uid();
        let bootstrap = strings(&["--bootstrap", &hub.listen_addr()?]);
        alice.start_and_publish(&bootstrap, TIMEOUT)?;
        let hub_peer: rhizo_net::PeerId = hub.peer_id().parse()?;
        let rt = tokio::runtime::Runtime::new()?;
        let hub_addr: rhizo_net::Multiaddr = hub.listen_addr()?.parse()?;
        let raw = rt.block_on(async { RawNode::start("rhizo-test-publisher", vec![hub_addr]) })?;
        let published = wait_for(TIMEOUT, "alice's device list in the DHT", || {
            rt.block_on(newest_device_list(&raw.client, &uid))
        })?;
        // Her own list, signed a million versions ahead, stored at the hub.
        let ahead = published.version() + 1_000_000;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let planted = DeviceList::new(&root, ahead, published.devices().to_vec(), now, 3600)?;
        let key = rhizo_core::records::device_list_key(&uid).to_vec();
        rt.block_on(
            raw.client
                .put_record_to(key, planted.encode(), vec![hub_peer]),
        )?;
        wait_for(TIMEOUT, "the planted list at the hub", || {
            let found = rt.block_on(newest_device_list(&raw.client, &uid))?;
            (found.version() == ahead).then_some(())
        })?;

        // Her next publication (at her restart) finds it and signs above it.
        alice.stop()?;
        alice.start_and_publish(&bootstrap, TIMEOUT)?;
        let newest = wait_for(TIMEOUT, "alice's list above the planted one", || {
            let found = rt.block_on(newest_device_list(&raw.client, &uid))?;
            (found.version() > ahead).then_some(found)
        })?;
        ensure!(
            newest.devices() == published.devices(),
            "her devices changed"
        );
        rt.block_on(raw.stop());
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&hub, &alice]);
    }
}
