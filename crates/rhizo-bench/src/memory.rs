//! B7: memory per idle connection.
//!
//! # Method
//!
//! The server runs in a **child process** (this binary, `rhizo-bench --b7-server rhizo`), so
//! its resident set contains nothing but the server: `rhizo_net::start` with
//! `NetConfig::new(keypair)`, one listener on `/ip4/127.0.0.1/tcp/0` and the limits raised
//! (`max_inbound`, `max_per_ip`, `max_pending_inbound` = 2000); everything else at rhizo-net's
//! defaults (all behaviours: identify, ping, Kademlia, gossipsub, AutoNAT, relay client, DCUtR,
//! peer exchange; 120 s idle timeout). It answers `stat` on stdin with its connected-peer count
//! and its `VmRSS` from `/proc/self/status`.
//!
//! The clients are real rhizo-net nodes (`rhizo_net::start`, one connection each; a pair of
//! peers has one connection) created in this process in batches of 50 and bootstrapping from
//! the server, so the server sees what a real idle peer costs: the Noise/Yamux connection, the
//! identify exchange, Kademlia's bootstrap lookup, gossipsub's and ping's per-peer state. After
//! each batch the parent waits for the server to count the connections, and after the last for
//! the exchanges to settle (2 s), then reads `VmRSS`.
//!
//! Reported: `(VmRSS(N) − VmRSS(0)) / N`, with VmRSS(0) read after the server has listened
//! for 1 s (0.25 s when quick). Reference, measured the same way in the same run: a bare libp2p
//! server (TCP + Noise + Yamux defaults, identify + ping) in the same kind of child process with
//! the same clients. The slope of VmRSS over the batches (least squares) is reported too: it
//! excludes one-time costs that `/ N` spreads over the connections.
//!
//! Two diagnostics split the bare connection's cost: the bare server with bare clients
//! (identify + ping on both ends), and the same with libp2p-plaintext instead of Noise.

use std::{
    convert::Infallible,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use libp2p::{Multiaddr, Swarm, identify, identity::Keypair, ping, swarm::NetworkBehaviour};
use rhizo_net::{NetConfig, NetEvent, NetLimits};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::report::{Row, Target};
use crate::transport::Tasks;

/// The hidden command-line flag that runs a B7 server.
pub const SERVER_FLAG: &str = "--b7-server";
/// Clients created between two measurements.
const BATCH: usize = 50;
/// How long the server may take to count a batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Which server a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// `rhizo_net::start`.
    Rhizo,
    /// A bare libp2p swarm (defaults, identify + ping).
    Libp2p,
    /// The same with plaintext instead of Noise (diagnostic).
    Libp2pPlaintext,
}

impl ServerKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rhizo => "rhizo",
            Self::Libp2p => "libp2p",
            Self::Libp2pPlaintext => "libp2p-plaintext",
        }
    }

    /// Parses the command-line name.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "rhizo" => Ok(Self::Rhizo),
            "libp2p" => Ok(Self::Libp2p),
            "libp2p-plaintext" => Ok(Self::Libp2pPlaintext),
            other => bail!("unknown B7 server {other:?} (rhizo, libp2p or libp2p-plaintext)"),
        }
    }
}

/// Which clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Real rhizo-net nodes (`rhizo_net::start`).
    RhizoNet,
    /// Bare libp2p swarms (identify + ping), Noise or plaintext.
    Bare {
        /// Plaintext instead of Noise.
        plaintext: bool,
    },
}

/// One measurement point.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Connections the server counted.
    pub connections: usize,
    /// Its VmRSS, KiB.
    pub rss_kib: u64,
}

/// One server's curve.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// The server.
    pub kind: ServerKind,
    /// The clients.
    pub clients: ClientKind,
    /// Before any client, then after each batch, then after settling.
    pub points: Vec<Point>,
    /// `(VmRSS(N) − VmRSS(0)) / N`, KiB.
    pub per_connection_kib: f64,
    /// Least-squares slope of VmRSS over the connection count (batches), KiB.
    pub slope_kib: f64,
    /// Seconds to connect all clients.
    pub connect_secs: f64,
}

/// B7's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B7Result {
    /// Connections.
    pub connections: usize,
    /// rhizo-net's server, rhizo-net clients.
    pub rhizo: Curve,
    /// The bare libp2p server, rhizo-net clients (the reference).
    pub libp2p: Curve,
    /// Diagnostic: the bare libp2p server with bare clients (identify + ping).
    pub bare: Curve,
    /// Diagnostic: the same without Noise (plaintext).
    pub bare_plaintext: Curve,
}

impl B7Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let n = self.connections;
        vec![
            Row::new(
                "B7",
                format!("rhizo-net server, RSS per idle connection at {n}"),
                self.rhizo.per_connection_kib,
                "KiB",
            )
            .reference(
                "bare libp2p server (identify+ping)",
                self.libp2p.per_connection_kib,
            )
            .target(Target::value_at_most(32.0))
            .note(
                "server in a child process (rhizo-net defaults, limits raised to 2000), \
                 clients are rhizo-net nodes in the parent; (VmRSS after N − before) / N",
            ),
            Row::new(
                "B7",
                "rhizo-net server, marginal RSS slope",
                self.rhizo.slope_kib,
                "KiB",
            )
            .reference("bare libp2p slope", self.libp2p.slope_kib),
            Row::new(
                "B7",
                "diagnostic: bare libp2p server and clients (identify+ping)",
                self.bare.per_connection_kib,
                "KiB",
            )
            .reference("rhizo-net server", self.rhizo.per_connection_kib)
            .note(
                "diagnostic: a libp2p TCP+Noise+Yamux connection with only identify and ping \
                 on both ends, i.e. what any libp2p connection costs before rhizo's behaviours",
            ),
            Row::new(
                "B7",
                "diagnostic: the same with plaintext instead of Noise",
                self.bare_plaintext.per_connection_kib,
                "KiB",
            )
            .reference("with Noise", self.bare.per_connection_kib),
        ]
    }
}

/// Runs B7 at 1000 connections (50 when quick). Spawns this executable with
/// [`SERVER_FLAG`], so it must be the `rhizo-bench` binary.
pub async fn run_b7(quick: bool) -> anyhow::Result<B7Result> {
    let n = if quick { 50 } else { 1000 };
    let exe = bench_exe("B7", SERVER_FLAG)?;
    let settle = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    let rhizo = measure(&exe, ServerKind::Rhizo, ClientKind::RhizoNet, n, settle).await?;
    let libp2p = measure(&exe, ServerKind::Libp2p, ClientKind::RhizoNet, n, settle).await?;
    let bare = measure(
        &exe,
        ServerKind::Libp2p,
        ClientKind::Bare { plaintext: false },
        n,
        settle,
    )
    .await?;
    let bare_plaintext = measure(
        &exe,
        ServerKind::Libp2pPlaintext,
        ClientKind::Bare { plaintext: true },
        n,
        settle,
    )
    .await?;
    Ok(B7Result {
        connections: n,
        rhizo,
        libp2p,
        bare,
        bare_plaintext,
    })
}

/// This executable, which must be `rhizo-bench`: `bench` runs its servers as
/// `rhizo-bench FLAG KIND`.
///
/// # Errors
///
/// If this process is another program (a test harness).
pub(crate) fn bench_exe(bench: &str, flag: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let is_bench = exe
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f.starts_with("rhizo-bench"));
    if !is_bench {
        bail!(
            "{bench} runs its server as `rhizo-bench {flag} KIND` and this process is {}; run \
             it from the rhizo-bench binary",
            exe.display()
        );
    }
    Ok(exe)
}

/// The parent's handle on a server child (B7's, and B17's in [`crate::messaging::capacity`]):
/// it prints `LISTEN …` once, then answers `stat` with `STAT <count> <VmRSS KiB>`.
pub(crate) struct Server {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Server {
    /// Starts `exe ARGS…`; the server and what follows `LISTEN ` on its first line.
    pub(crate) async fn spawn(
        exe: &std::path::Path,
        args: &[&str],
    ) -> anyhow::Result<(Self, String)> {
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the server process")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut server = Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let line = server.line().await?;
        let listen = line
            .strip_prefix("LISTEN ")
            .ok_or_else(|| anyhow!("unexpected server output {line:?}"))?
            .to_owned();
        Ok((server, listen))
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .context("the server process did not answer")??
            .ok_or_else(|| anyhow!("the server process exited"))
    }

    /// Its count and `VmRSS`.
    pub(crate) async fn stat(&mut self) -> anyhow::Result<Point> {
        self.stdin.write_all(b"stat\n").await?;
        self.stdin.flush().await?;
        let line = self.line().await?;
        let mut parts = line
            .strip_prefix("STAT ")
            .ok_or_else(|| anyhow!("unexpected server output {line:?}"))?
            .split_whitespace();
        let connections = parts.next().unwrap_or_default().parse()?;
        let rss_kib = parts.next().unwrap_or_default().parse()?;
        Ok(Point {
            connections,
            rss_kib,
        })
    }

    /// Asks it to quit; kills it after 5 s.
    pub(crate) async fn stop(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

async fn measure(
    exe: &std::path::Path,
    kind: ServerKind,
    client_kind: ClientKind,
    n: usize,
    settle: Duration,
) -> anyhow::Result<Curve> {
    let (mut server, listen) = Server::spawn(exe, &[SERVER_FLAG, kind.name()]).await?;
    let addr: Multiaddr = listen.parse()?;
    // Let the server finish starting (threads, first allocations) before the baseline.
    tokio::time::sleep(settle / 2).await;
    let mut points = vec![server.stat().await?];
    let mut clients: Vec<rhizo_net::Client> = Vec::with_capacity(n);
    let mut started_clients = 0usize;
    let mut tasks = Tasks::default();
    let started = Instant::now();
    let outcome = async {
        while started_clients < n {
            let batch = BATCH.min(n - started_clients);
            for _ in 0..batch {
                match client_kind {
                    ClientKind::RhizoNet => {
                        let (client, mut events, event_loop) = rhizo_net::start(NetConfig {
                            bootstrap: vec![addr.clone()],
                            idle_connection_timeout: Duration::from_secs(600),
                            ..NetConfig::new(Keypair::generate_ed25519())
                        })?;
                        tasks.push(tokio::spawn(event_loop.run()));
                        tasks.push(tokio::spawn(async move {
                            while events.recv().await.is_some() {}
                        }));
                        clients.push(client);
                    }
                    ClientKind::Bare { plaintext } => {
                        let mut swarm = bare_swarm(plaintext, Duration::from_secs(600))?;
                        swarm.dial(addr.clone())?;
                        tasks.push(tokio::spawn(async move {
                            loop {
                                swarm.select_next_some().await;
                            }
                        }));
                    }
                }
                started_clients += 1;
            }
            let want = started_clients;
            let deadline = Instant::now() + BATCH_TIMEOUT;
            loop {
                let p = server.stat().await?;
                if p.connections >= want {
                    points.push(p);
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the {} server counted {} of {want} connections",
                        kind.name(),
                        p.connections
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let connect_secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(settle).await;
        let last = server.stat().await?;
        if last.connections < n {
            bail!(
                "the {} server lost connections while settling: {} of {n}",
                kind.name(),
                last.connections
            );
        }
        points.push(last);
        Ok::<_, anyhow::Error>(connect_secs)
    }
    .await;
    for c in &clients {
        let _ = tokio::time::timeout(Duration::from_secs(1), c.shutdown()).await;
    }
    drop(tasks);
    server.stop().await;
    let connect_secs = outcome?;
    let base = points[0].rss_kib as f64;
    let last = points[points.len() - 1];
    Ok(Curve {
        kind,
        clients: client_kind,
        per_connection_kib: (last.rss_kib as f64 - base) / n as f64,
        slope_kib: slope(&points),
        points,
        connect_secs,
    })
}

/// Least-squares slope of RSS over connections, from the points after the first batch (so the
/// first batch's one-time costs do not count); the plain delta when too few points.
pub(crate) fn slope(points: &[Point]) -> f64 {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .skip(2)
        .map(|p| (p.connections as f64, p.rss_kib as f64))
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 3 {
        let (a, b) = (points[0], points[points.len() - 1]);
        let dx = b.connections.saturating_sub(a.connections).max(1) as f64;
        return (b.rss_kib as f64 - a.rss_kib as f64) / dx;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// This process's `VmRSS`, KiB.
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// --- the child -----------------------------------------------------------------------------

/// The bare libp2p server's behaviours.
#[derive(NetworkBehaviour)]
struct Bare {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Runs a B7 server until stdin closes or says `quit` (the child side of [`run_b7`]): prints
/// `LISTEN <addr>`, then answers each `stat` line with `STAT <connected peers> <VmRSS KiB>`.
pub fn serve(kind: ServerKind) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match kind {
            ServerKind::Rhizo => serve_rhizo().await,
            ServerKind::Libp2p => serve_libp2p(false).await,
            ServerKind::Libp2pPlaintext => serve_libp2p(true).await,
        }
    })
}

/// Answers each `stat` line on stdin with `STAT <connected()> <VmRSS KiB>` until stdin closes
/// or says `quit`.
pub(crate) async fn answer_stats(
    mut connected: impl AsyncFnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = stdin.next_line().await? {
        match line.trim() {
            "stat" => {
                let n = connected().await?;
                stdout
                    .write_all(format!("STAT {n} {}\n", vm_rss_kib()).as_bytes())
                    .await?;
                stdout.flush().await?;
            }
            "quit" => break,
            _ => {}
        }
    }
    Ok(())
}

async fn announce(addr: &Multiaddr) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("LISTEN {addr}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    Ok(())
}

async fn serve_rhizo() -> anyhow::Result<()> {
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let (client, mut events, event_loop) = rhizo_net::start(NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        limits: NetLimits {
            max_inbound: 2000,
            max_per_ip: 2000,
            max_pending_inbound: 2000,
            ..NetLimits::default()
        },
        ..NetConfig::new(keypair)
    })?;
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(event_loop.run()));
    let addr = loop {
        match events.recv().await {
            Some(NetEvent::Listening { addr }) => break addr,
            Some(_) => {}
            None => bail!("the network stopped"),
        }
    };
    tasks.push(tokio::spawn(async move {
        while events.recv().await.is_some() {}
    }));
    announce(&addr.with_p2p(peer).unwrap_or_else(|a| a)).await?;
    let info_client = client.clone();
    answer_stats(async || Ok(info_client.info().await?.connected_peers)).await?;
    let _ = client.shutdown().await;
    Ok(())
}

/// A bare libp2p swarm: TCP + Noise (or plaintext) + Yamux defaults, identify + ping.
fn bare_swarm(plaintext: bool, idle: Duration) -> anyhow::Result<Swarm<Bare>> {
    let behaviour = |key: &Keypair| Bare {
        identify: identify::Behaviour::new(identify::Config::new(
            rhizo_net::PROTOCOL_VERSION.to_string(),
            key.public(),
        )),
        ping: ping::Behaviour::default(),
    };
    let builder = libp2p::SwarmBuilder::with_new_identity().with_tokio();
    let swarm = if plaintext {
        builder
            .with_tcp(
                libp2p::tcp::Config::default(),
                |k: &Keypair| Ok::<_, Infallible>(libp2p_plaintext::Config::new(k)),
                libp2p::yamux::Config::default,
            )?
            .with_behaviour(behaviour)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    } else {
        builder
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )?
            .with_behaviour(behaviour)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    };
    Ok(swarm)
}

async fn serve_libp2p(plaintext: bool) -> anyhow::Result<()> {
    let mut swarm = bare_swarm(plaintext, rhizo_net::DEFAULT_IDLE_CONNECTION_TIMEOUT)?;
    let addr = crate::transport::listen_local(&mut swarm).await?;
    let peer = *swarm.local_peer_id();
    let (ask, mut asks) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<usize>>(4);
    let mut tasks = Tasks::default();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                Some(reply) = asks.recv() => {
                    let _ = reply.send(swarm.connected_peers().count());
                }
            }
        }
    }));
    announce(&addr.with_p2p(peer).unwrap_or_else(|a| a)).await?;
    answer_stats(async || {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ask.send(tx)
            .await
            .map_err(|_| anyhow!("the swarm stopped"))?;
        Ok(rx.await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<Point> = (0..6)
            .map(|i| Point {
                connections: i * 10,
                rss_kib: 1000 + 20 * (i as u64 * 10),
            })
            .collect();
        assert!((slope(&pts) - 20.0).abs() < 1e-9);
        assert!(vm_rss_kib() > 0);
    }
}
