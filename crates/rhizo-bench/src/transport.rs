//! B1, encrypted link throughput, and the ping-pong references of B2.
//!
//! # B1
//!
//! One stream, 64 KiB writes, 256 MiB (8 MiB when quick) from one in-process swarm to another
//! over 127.0.0.1, on four stacks measured in the same run, interleaved, median of 3 runs each:
//!
//! | column           | stack                                                                |
//! |------------------|----------------------------------------------------------------------|
//! | raw TCP          | tokio `TcpStream`s (`TCP_NODELAY`), the same framing                 |
//! | rhizo-net        | the transport `rhizo_net::start` builds: TCP (`nodelay(true)`) + Noise + `yamux::Config::default()`, with QUIC and the relay client beside it, idle timeout 120 s |
//! | libp2p defaults  | `tcp::Config::default()` + `noise::Config::new` + `yamux::Config::default()` |
//! | plaintext+Yamux  | diagnostic: TCP + libp2p-plaintext + Yamux, i.e. without Noise       |
//!
//! A stream is a [`libp2p_stream`] stream (one Yamux substream). The sender writes an 8-byte
//! length, then the payload in 64 KiB `write_all`s; the receiver reads it all and answers with
//! an 8-byte acknowledgement; the time is from the first write to the acknowledgement. The
//! connection is set up (and warmed with one transfer of an eighth of the size) before timing.
//!
//! # B2 references
//!
//! [`tcp_ping_pong`]: 64-byte echo over one loopback TCP connection; [`libp2p_ping_pong`]: a
//! libp2p request-response (CBOR codec, `request_response::Config::default()`) echo over
//! TCP + Noise + Yamux defaults. Both sequential, one round trip at a time.

use std::{convert::Infallible, time::Duration, time::Instant};

use anyhow::{Context, bail};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, identity::Keypair, noise,
    request_response, swarm::NetworkBehaviour, swarm::SwarmEvent, tcp, yamux,
};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

use crate::report::{Row, Target};
use crate::{Summary, median, ms};

/// Bytes per write.
pub const WRITE_BYTES: usize = 64 * 1024;
/// Bytes per B1 run.
pub const FULL_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes per B1 run when quick.
pub const QUICK_BYTES: u64 = 8 * 1024 * 1024;
/// The stream protocol of the bulk transfer.
const BULK_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo-bench/bulk/1");
/// The request-response protocol of the ping-pong.
const PING_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo-bench/ping/1");
/// Bytes of one ping.
pub const PING_BYTES: usize = 64;
/// How long connection set-up may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// The transport set-up of `rhizo_net::start`, read from its source at build time, so the note in
/// the report says whether B1's "rhizo-net" stack still matches it.
const RHIZO_NET_SOURCE: &str = include_str!("../../rhizo-net/src/lib.rs");
/// What B1's rhizo-net stack builds (see [`rhizo_like_swarm`]).
const RHIZO_NET_EXPECTED: [&str; 4] = [
    "tcp::Config::default().nodelay(true)",
    "noise::Config::new",
    "yamux::Config::default",
    ".with_relay_client(noise::Config::new, yamux::Config::default)",
];

/// Whether rhizo-net's source still configures the transport the way B1 mirrors it.
pub fn rhizo_net_config_mirrored() -> bool {
    RHIZO_NET_EXPECTED
        .iter()
        .all(|needle| RHIZO_NET_SOURCE.contains(needle))
}

/// The stacks B1 compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stack {
    /// tokio TCP sockets.
    RawTcp,
    /// rhizo-net's transport configuration.
    RhizoNet,
    /// libp2p's defaults.
    Libp2pDefaults,
    /// TCP + plaintext + Yamux (no encryption).
    PlaintextYamux,
    /// rhizo-net's other transport: QUIC (quic-v1, TLS 1.3 inside), as rhizo-net builds it.
    RhizoNetQuic,
}

/// The measured figures of B1.
#[derive(Debug, Clone, Serialize)]
pub struct B1Result {
    /// Bytes per timed run.
    pub bytes_per_run: u64,
    /// Bytes per write.
    pub write_bytes: usize,
    /// Runs of each stack (the median is reported).
    pub runs: usize,
    /// MiB/s of every run, per stack.
    pub samples: Vec<(Stack, Vec<f64>)>,
    /// Median MiB/s, raw TCP.
    pub raw_tcp_mib_s: f64,
    /// Median MiB/s, rhizo-net's stack.
    pub rhizo_net_mib_s: f64,
    /// Median MiB/s, libp2p defaults.
    pub libp2p_defaults_mib_s: f64,
    /// Median MiB/s, plaintext + Yamux (diagnostic).
    pub plaintext_yamux_mib_s: f64,
    /// Median MiB/s, rhizo-net's QUIC transport (diagnostic).
    pub rhizo_net_quic_mib_s: f64,
    /// CPU time of the whole process (both ends, every thread) per MiB moved, median, ms.
    pub cpu_ms_per_mib: Vec<(Stack, f64)>,
    /// Whether rhizo-net's source still has the configuration B1 mirrors.
    pub rhizo_net_config_mirrored: bool,
}

impl B1Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let config_note = if self.rhizo_net_config_mirrored {
            "rhizo-net's transport (crates/rhizo-net/src/lib.rs `start`: tcp::Config::default()\
             .nodelay(true), noise::Config::new, yamux::Config::default()) equals libp2p's \
             defaults (TCP_NODELAY is already tcp's default), so rhizo-net ÷ libp2p defaults \
             is ~1.0 by construction; the difference is run-to-run noise"
        } else {
            "WARNING: crates/rhizo-net/src/lib.rs no longer builds the transport B1 mirrors \
             (tcp nodelay + noise + yamux defaults); update transport.rs"
        };
        let cpu = |stack: Stack| {
            self.cpu_ms_per_mib
                .iter()
                .find(|(s, _)| *s == stack)
                .map_or(0.0, |(_, c)| *c)
        };
        let mut rows = vec![
            Row::new(
                "B1",
                "rhizo-net TCP+Noise+Yamux, 1 stream, 64 KiB writes",
                self.rhizo_net_mib_s,
                "MiB/s",
            )
            .reference("raw loopback TCP", self.raw_tcp_mib_s)
            .target(Target::ratio_at_least(0.45))
            .note(config_note),
            Row::new(
                "B1",
                "libp2p defaults TCP+Noise+Yamux",
                self.libp2p_defaults_mib_s,
                "MiB/s",
            )
            .reference("raw loopback TCP", self.raw_tcp_mib_s),
            Row::new(
                "B1",
                "rhizo-net vs libp2p defaults",
                self.rhizo_net_mib_s,
                "MiB/s",
            )
            .reference("libp2p defaults", self.libp2p_defaults_mib_s)
            .note(config_note),
            Row::new(
                "B1",
                "diagnostic: TCP+plaintext+Yamux (no Noise)",
                self.plaintext_yamux_mib_s,
                "MiB/s",
            )
            .reference("raw loopback TCP", self.raw_tcp_mib_s)
            .note(
                "diagnostic: the same stream without encryption; the gap to the Noise \
                 columns is Noise's share of the cost, the gap to raw TCP Yamux's and the \
                 swarm's",
            ),
            Row::new(
                "B1",
                "diagnostic: rhizo-net over QUIC (quic-v1), 1 stream",
                self.rhizo_net_quic_mib_s,
                "MiB/s",
            )
            .reference("raw loopback TCP", self.raw_tcp_mib_s)
            .note(
                "diagnostic: the same stream over rhizo-net's other transport, QUIC \
                 (libp2p-quic, quinn, TLS 1.3 with ring), to 127.0.0.1/udp; a node dials \
                 whichever address a peer announces",
            ),
        ];
        for (stack, name) in [
            (Stack::RhizoNet, "rhizo-net"),
            (Stack::PlaintextYamux, "plaintext+Yamux"),
            (Stack::RhizoNetQuic, "rhizo-net over QUIC"),
        ] {
            rows.push(
                Row::new(
                    "B1",
                    format!("diagnostic: CPU per MiB moved, {name} (both ends)"),
                    cpu(stack),
                    "ms/MiB",
                )
                .reference("raw loopback TCP", cpu(Stack::RawTcp))
                .note(
                    "diagnostic: CPU time of every thread of the process (sender, receiver, \
                     kernel work done on their behalf) per MiB, from /proc/self/task/*/schedstat",
                ),
            );
        }
        rows
    }
}

/// CPU time consumed so far by every thread of this process (`/proc/self/task/*/schedstat`),
/// ns.
pub fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Runs B1.
pub async fn run_b1(quick: bool) -> anyhow::Result<B1Result> {
    let bytes = if quick { QUICK_BYTES } else { FULL_BYTES };
    let runs = if quick { 1 } else { 3 };
    let warm = (bytes / 8).max(1024 * 1024);

    let tcp = TcpBulk::start().await?;
    let rhizo = Libp2pBulk::start(Stack::RhizoNet).await?;
    let defaults = Libp2pBulk::start(Stack::Libp2pDefaults).await?;
    let plain = Libp2pBulk::start(Stack::PlaintextYamux).await?;
    let quic = Libp2pBulk::start(Stack::RhizoNetQuic).await?;

    // Warm every path once (TCP slow start, Yamux window auto-tuning, allocator).
    tcp.transfer(warm).await?;
    let mut rhizo = rhizo;
    let mut defaults = defaults;
    let mut plain = plain;
    let mut quic = quic;
    quic.transfer(warm).await?;
    rhizo.transfer(warm).await?;
    defaults.transfer(warm).await?;
    plain.transfer(warm).await?;

    let mut samples: Vec<(Stack, Vec<f64>)> = vec![
        (Stack::RawTcp, Vec::new()),
        (Stack::RhizoNet, Vec::new()),
        (Stack::Libp2pDefaults, Vec::new()),
        (Stack::PlaintextYamux, Vec::new()),
        (Stack::RhizoNetQuic, Vec::new()),
    ];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); 5];
    let mib = bytes as f64 / (1024.0 * 1024.0);
    for _ in 0..runs {
        for (i, sample) in samples.iter_mut().enumerate() {
            let before = process_cpu_ns();
            let t = match sample.0 {
                Stack::RawTcp => tcp.transfer(bytes).await?,
                Stack::RhizoNet => rhizo.transfer(bytes).await?,
                Stack::Libp2pDefaults => defaults.transfer(bytes).await?,
                Stack::PlaintextYamux => plain.transfer(bytes).await?,
                Stack::RhizoNetQuic => quic.transfer(bytes).await?,
            };
            let used = process_cpu_ns().saturating_sub(before) as f64 / 1e6;
            sample.1.push(mib / t.as_secs_f64());
            cpu[i].push(used / mib);
        }
    }
    Ok(B1Result {
        bytes_per_run: bytes,
        write_bytes: WRITE_BYTES,
        runs,
        raw_tcp_mib_s: median(&samples[0].1),
        rhizo_net_mib_s: median(&samples[1].1),
        libp2p_defaults_mib_s: median(&samples[2].1),
        plaintext_yamux_mib_s: median(&samples[3].1),
        rhizo_net_quic_mib_s: median(&samples[4].1),
        cpu_ms_per_mib: samples
            .iter()
            .zip(&cpu)
            .map(|((stack, _), c)| (*stack, median(c)))
            .collect(),
        samples,
        rhizo_net_config_mirrored: rhizo_net_config_mirrored(),
    })
}

// --- swarms --------------------------------------------------------------------------------

/// What rhizo-net's swarm carries besides its behaviours: the relay client transport.
#[derive(NetworkBehaviour)]
struct RhizoLike {
    stream: libp2p_stream::Behaviour,
    relay: libp2p::relay::client::Behaviour,
}

/// A swarm with rhizo-net's transport set-up (`rhizo_net::start`) and a stream behaviour.
fn rhizo_like_swarm() -> anyhow::Result<Swarm<RhizoLike>> {
    Ok(
        SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)?
            .with_behaviour(|_, relay| RhizoLike {
                stream: libp2p_stream::Behaviour::new(),
                relay,
            })?
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(rhizo_net::DEFAULT_IDLE_CONNECTION_TIMEOUT)
            })
            .build(),
    )
}

/// An idle timeout long enough that nothing closes between the benchmark's steps (not a
/// transport parameter).
const BENCH_IDLE: Duration = Duration::from_secs(120);

/// A swarm with libp2p's default TCP + Noise + Yamux.
fn defaults_swarm<B: NetworkBehaviour>(behaviour: impl FnOnce() -> B) -> anyhow::Result<Swarm<B>> {
    Ok(
        SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| behaviour())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(BENCH_IDLE))
            .build(),
    )
}

/// A swarm with TCP + plaintext + Yamux (diagnostic only).
fn plaintext_swarm() -> anyhow::Result<Swarm<libp2p_stream::Behaviour>> {
    Ok(
        SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                |k: &Keypair| Ok::<_, Infallible>(libp2p_plaintext::Config::new(k)),
                yamux::Config::default,
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(BENCH_IDLE))
            .build(),
    )
}

/// Tasks driving swarms; aborted on drop.
#[derive(Debug, Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Keeps `handle` until drop.
    pub fn push(&mut self, handle: JoinHandle<()>) {
        self.0.push(handle);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Binds `listener` to 127.0.0.1 over TCP, connects `dialer` to it, and spawns both swarms
/// (events are dropped). Returns the listener's PeerId.
async fn connect_and_spawn<B>(
    listener: Swarm<B>,
    dialer: Swarm<B>,
    tasks: &mut Tasks,
) -> anyhow::Result<PeerId>
where
    B: NetworkBehaviour + Send + 'static,
    B::ToSwarm: Send,
{
    connect_and_spawn_on(listener, dialer, "/ip4/127.0.0.1/tcp/0".parse()?, tasks).await
}

/// [`connect_and_spawn`] on a given listen address (`…/udp/0/quic-v1` for QUIC).
async fn connect_and_spawn_on<B>(
    mut listener: Swarm<B>,
    mut dialer: Swarm<B>,
    listen: Multiaddr,
    tasks: &mut Tasks,
) -> anyhow::Result<PeerId>
where
    B: NetworkBehaviour + Send + 'static,
    B::ToSwarm: Send,
{
    let addr = listen_on(&mut listener, listen).await?;
    let peer = *listener.local_peer_id();
    tasks.push(tokio::spawn(async move {
        loop {
            listener.select_next_some().await;
        }
    }));
    dial_and_wait(&mut dialer, addr, peer).await?;
    tasks.push(tokio::spawn(async move {
        loop {
            dialer.select_next_some().await;
        }
    }));
    Ok(peer)
}

/// Listens on 127.0.0.1 (a free port) and returns the bound address.
pub async fn listen_local<B: NetworkBehaviour>(swarm: &mut Swarm<B>) -> anyhow::Result<Multiaddr> {
    listen_on(swarm, "/ip4/127.0.0.1/tcp/0".parse()?).await
}

/// Listens on `addr` and returns the bound address.
async fn listen_on<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    addr: Multiaddr,
) -> anyhow::Result<Multiaddr> {
    swarm.listen_on(addr)?;
    tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .context("the swarm did not start listening")
}

/// Dials `addr` and polls `swarm` until the connection to `peer` is established.
async fn dial_and_wait<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    addr: Multiaddr,
    peer: PeerId,
) -> anyhow::Result<()> {
    swarm.dial(addr.with_p2p(peer).unwrap_or_else(|a| a))?;
    tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => {
                    return Ok(());
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    bail!("dial failed: {error}")
                }
                _ => {}
            }
        }
    })
    .await
    .context("the connection was not established in time")?
}

// --- the bulk transfer ---------------------------------------------------------------------

/// A connected libp2p pair ready for bulk transfers.
struct Libp2pBulk {
    control: libp2p_stream::Control,
    peer: PeerId,
    _tasks: Tasks,
}

impl Libp2pBulk {
    async fn start(stack: Stack) -> anyhow::Result<Self> {
        let mut tasks = Tasks::default();
        let (control, mut accept, peer) = match stack {
            Stack::RhizoNet => {
                let (a, b) = (rhizo_like_swarm()?, rhizo_like_swarm()?);
                let accept = a.behaviour().stream.new_control();
                let control = b.behaviour().stream.new_control();
                (control, accept, connect_and_spawn(a, b, &mut tasks).await?)
            }
            Stack::RhizoNetQuic => {
                let (a, b) = (rhizo_like_swarm()?, rhizo_like_swarm()?);
                let accept = a.behaviour().stream.new_control();
                let control = b.behaviour().stream.new_control();
                let listen = "/ip4/127.0.0.1/udp/0/quic-v1".parse()?;
                (
                    control,
                    accept,
                    connect_and_spawn_on(a, b, listen, &mut tasks).await?,
                )
            }
            Stack::Libp2pDefaults | Stack::PlaintextYamux => {
                let make = || {
                    if stack == Stack::Libp2pDefaults {
                        defaults_swarm(libp2p_stream::Behaviour::new)
                    } else {
                        plaintext_swarm()
                    }
                };
                let (a, b) = (make()?, make()?);
                let accept = a.behaviour().new_control();
                let control = b.behaviour().new_control();
                (control, accept, connect_and_spawn(a, b, &mut tasks).await?)
            }
            Stack::RawTcp => bail!("not a libp2p stack"),
        };
        let mut incoming = accept
            .accept(BULK_PROTOCOL)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tasks.push(tokio::spawn(async move {
            while let Some((_, stream)) = incoming.next().await {
                tokio::spawn(async move {
                    let _ = receive_futures(stream).await;
                });
            }
        }));
        Ok(Self {
            control,
            peer,
            _tasks: tasks,
        })
    }

    /// One timed transfer of `bytes` on a new stream.
    async fn transfer(&mut self, bytes: u64) -> anyhow::Result<Duration> {
        let stream = self
            .control
            .open_stream(self.peer, BULK_PROTOCOL)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a stream: {e}"))?;
        tokio::time::timeout(TRANSFER_TIMEOUT, send_futures(stream, bytes))
            .await
            .context("the transfer timed out")?
    }
}

async fn send_futures(
    mut stream: impl futures::AsyncRead + futures::AsyncWrite + Unpin,
    bytes: u64,
) -> anyhow::Result<Duration> {
    let chunk = vec![0x5a_u8; WRITE_BYTES];
    let start = Instant::now();
    stream.write_all(&bytes.to_le_bytes()).await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(WRITE_BYTES);
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.flush().await?;
    let mut ack = [0u8; 8];
    stream.read_exact(&mut ack).await?;
    let elapsed = start.elapsed();
    if u64::from_le_bytes(ack) != bytes {
        bail!(
            "the receiver acknowledged {} bytes",
            u64::from_le_bytes(ack)
        );
    }
    stream.close().await?;
    Ok(elapsed)
}

async fn receive_futures(
    mut stream: impl futures::AsyncRead + futures::AsyncWrite + Unpin,
) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    let want = u64::from_le_bytes(header);
    let mut buf = vec![0u8; WRITE_BYTES];
    let mut got = 0u64;
    while got < want {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("stream ended after {got} of {want} bytes");
        }
        got += n as u64;
    }
    stream.write_all(&got.to_le_bytes()).await?;
    stream.flush().await?;
    // Wait for the sender to close, so the stream ends cleanly.
    let _ = stream.read(&mut buf).await;
    Ok(())
}

/// A loopback TCP listener for bulk transfers.
struct TcpBulk {
    addr: std::net::SocketAddr,
    _tasks: Tasks,
}

impl TcpBulk {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut tasks = Tasks::default();
        tasks.push(tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = socket.set_nodelay(true);
                    let _ = receive_tokio(&mut socket).await;
                });
            }
        }));
        Ok(Self {
            addr,
            _tasks: tasks,
        })
    }

    async fn transfer(&self, bytes: u64) -> anyhow::Result<Duration> {
        let mut socket = tokio::net::TcpStream::connect(self.addr).await?;
        socket.set_nodelay(true)?;
        tokio::time::timeout(TRANSFER_TIMEOUT, send_tokio(&mut socket, bytes))
            .await
            .context("the transfer timed out")?
    }
}

async fn send_tokio(socket: &mut tokio::net::TcpStream, bytes: u64) -> anyhow::Result<Duration> {
    let chunk = vec![0x5a_u8; WRITE_BYTES];
    let start = Instant::now();
    socket.write_all(&bytes.to_le_bytes()).await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(WRITE_BYTES);
        socket.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    socket.flush().await?;
    let mut ack = [0u8; 8];
    socket.read_exact(&mut ack).await?;
    let elapsed = start.elapsed();
    if u64::from_le_bytes(ack) != bytes {
        bail!(
            "the receiver acknowledged {} bytes",
            u64::from_le_bytes(ack)
        );
    }
    Ok(elapsed)
}

async fn receive_tokio(socket: &mut tokio::net::TcpStream) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    socket.read_exact(&mut header).await?;
    let want = u64::from_le_bytes(header);
    let mut buf = vec![0u8; WRITE_BYTES];
    let mut got = 0u64;
    while got < want {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            bail!("connection ended after {got} of {want} bytes");
        }
        got += n as u64;
    }
    socket.write_all(&got.to_le_bytes()).await?;
    socket.flush().await?;
    Ok(())
}

// --- ping-pong references (B2) -------------------------------------------------------------

/// Round trips (ms) of `n` sequential 64-byte echoes over one loopback TCP connection
/// (`TCP_NODELAY`), after `warmup` untimed ones.
pub async fn tcp_ping_pong(n: usize, warmup: usize) -> anyhow::Result<Vec<f64>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            let mut buf = [0u8; PING_BYTES];
            while socket.read_exact(&mut buf).await.is_ok() {
                if socket.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
    }));
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let ping = [0x42u8; PING_BYTES];
    let mut pong = [0u8; PING_BYTES];
    let mut rtts = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let start = Instant::now();
        socket.write_all(&ping).await?;
        socket.read_exact(&mut pong).await?;
        if i >= warmup {
            rtts.push(ms(start.elapsed()));
        }
    }
    Ok(rtts)
}

type PingBehaviour = request_response::cbor::Behaviour<Vec<u8>, Vec<u8>>;

fn ping_behaviour() -> PingBehaviour {
    request_response::cbor::Behaviour::new(
        [(PING_PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default(),
    )
}

/// Round trips (ms) of `n` sequential 64-byte request-response echoes between two libp2p
/// swarms with default TCP + Noise + Yamux, after `warmup` untimed ones.
pub async fn libp2p_ping_pong(n: usize, warmup: usize) -> anyhow::Result<Vec<f64>> {
    let mut server = defaults_swarm(ping_behaviour)?;
    let mut client = defaults_swarm(ping_behaviour)?;
    let addr = listen_local(&mut server).await?;
    let server_peer = *server.local_peer_id();
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = server.select_next_some().await
            {
                let _ = server.behaviour_mut().send_response(channel, request);
            }
        }
    }));
    dial_and_wait(&mut client, addr, server_peer).await?;
    let mut rtts = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let start = Instant::now();
        let id = client
            .behaviour_mut()
            .send_request(&server_peer, vec![0x42u8; PING_BYTES]);
        tokio::time::timeout(SETUP_TIMEOUT, async {
            loop {
                match client.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, .. },
                        ..
                    }) if request_id == id => return Ok(()),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        error,
                        ..
                    }) => bail!("request failed: {error}"),
                    _ => {}
                }
            }
        })
        .await
        .context("no response in time")??;
        if i >= warmup {
            rtts.push(ms(start.elapsed()));
        }
    }
    drop(tasks);
    Ok(rtts)
}

/// The B2 references as summaries (ms).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PingPong {
    /// Raw TCP.
    pub raw_tcp: Summary,
    /// libp2p request-response, defaults.
    pub libp2p_request_response: Summary,
}

/// Measures both references with `n` round trips each.
pub async fn ping_pong_references(n: usize) -> anyhow::Result<PingPong> {
    let warmup = 20;
    let tcp = tcp_ping_pong(n, warmup).await?;
    let libp2p = libp2p_ping_pong(n, warmup).await?;
    Ok(PingPong {
        raw_tcp: Summary::of(&tcp),
        libp2p_request_response: Summary::of(&libp2p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhizo_net_still_builds_the_mirrored_transport() {
        assert!(
            rhizo_net_config_mirrored(),
            "crates/rhizo-net/src/lib.rs changed its transport set-up: update rhizo_like_swarm"
        );
    }
}
