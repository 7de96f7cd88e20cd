//! The checks that ask the running node (clock skew, reachability) or the network (bootstrap
//! peers).

use std::time::Duration;

use rhizo_node::api::{PeersResponse, StatsResponse};
use rhizo_node::clock_skew::ClockSkewSummary;
use rhizo_node::{Config, DataDir};

use super::Verdict;
use crate::api_client::ApiClient;

/// Beyond this skew, peers refuse our envelopes (too far ahead) or we theirs: the replay
/// window's future bound (rhizo-core `seen::MAX_CLOCK_SKEW`).
pub(super) const MAX_SKEW_MS: i64 = rhizo_core::seen::MAX_CLOCK_SKEW as i64;
/// Beyond this skew, the clock is off enough to fix before it reaches [`MAX_SKEW_MS`].
pub(super) const WARN_SKEW_MS: i64 = 30_000;
/// How long one bootstrap probe (a TCP connect) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bootstrap peers probed at most (the rest are only counted).
const MAX_PROBES: usize = 16;

/// What the running node said about itself.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) stats: StatsResponse,
    pub(super) peers: PeersResponse,
}

impl Node {
    /// The running node of `config`'s data dir, if one answers.
    pub(super) async fn find(config: &Config) -> Option<Self> {
        let api = ApiClient::connect(config).ok()?;
        let stats = api.get("/v1/stats").await.ok()?;
        let peers = api.get("/v1/peers").await.ok()?;
        Some(Self { stats, peers })
    }

    fn connected_to(&self, peer_id: &str) -> bool {
        self.peers
            .peers
            .iter()
            .any(|p| p.peer_id == peer_id && p.connections > 0)
    }
}

pub(super) fn running(node: Option<&Node>, dir: &DataDir) -> Verdict {
    match node {
        Some(n) => Verdict::ok(
            "node",
            format!(
                "running (v{}, up {} s), {} peer(s) connected",
                n.stats.version, n.stats.uptime_secs, n.stats.connected_peers
            ),
        ),
        None => Verdict::unknown(
            "node",
            format!(
                "not running for {} (start it with `rhizo run`; the clock and reachability checks \
                 need it)",
                dir.path().display()
            ),
        ),
    }
}

pub(super) fn clock_skew(node: Option<&Node>) -> Verdict {
    match node {
        Some(n) => skew_verdict(&n.stats.clock_skew),
        None => Verdict::unknown("clock skew", "the node is not running"),
    }
}

/// The clock verdict from the node's receipts-based estimate.
pub(super) fn skew_verdict(s: &ClockSkewSummary) -> Verdict {
    const CHECK: &str = "clock skew";
    let Some(median) = s.median_ms else {
        return Verdict::unknown(
            CHECK,
            "no peer has answered a message since the node started (the skew is measured from \
             delivery receipts)",
        );
    };
    let side = if median > 0 { "behind" } else { "ahead of" };
    let off = format!(
        "this clock is {} {side} {} peer(s) (median, ±{} s)",
        seconds(median),
        s.peers,
        (s.max_error_ms + 999) / 1000
    );
    let fix = "turn on time synchronisation (`timedatectl set-ntp true`, or chrony/ntpd)";
    if median.abs() > MAX_SKEW_MS {
        return Verdict::problem(
            CHECK,
            format!("{off}: peers refuse envelopes more than 5 min ahead"),
            fix,
        );
    }
    if median.abs() > WARN_SKEW_MS {
        return Verdict::warn(CHECK, off, fix);
    }
    let mut detail = format!("within {} of {} peer(s) (median)", seconds(median), s.peers);
    if let Some((peer, skew)) = &s.widest
        && skew.abs() > MAX_SKEW_MS
    {
        detail.push_str(&format!(
            "; peer {peer}'s clock is {} off (theirs to fix)",
            seconds(*skew)
        ));
    }
    Verdict::ok(CHECK, detail)
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms.unsigned_abs() as f64 / 1000.0)
}

pub(super) fn reachability(node: Option<&Node>, config: &Config) -> Verdict {
    let Some(node) = node else {
        return Verdict::unknown("reachability", "the node is not running");
    };
    match &node.stats.reachability {
        Some(r) => reachability_verdict(r, config.relays.len()),
        None => Verdict::unknown("reachability", "the node did not report it"),
    }
}

/// The reachability verdict from the node's AutoNAT and relay state, with `relays` configured.
pub(super) fn reachability_verdict(r: &rhizo_net::Reachability, relays: usize) -> Verdict {
    const CHECK: &str = "reachability";
    if relays > 0 && r.relayed_addrs.is_empty() {
        return Verdict::problem(
            CHECK,
            format!("none of the {relays} configured relay(s) holds a reservation for this node"),
            "check that the relays run with --relay and are reachable (`rhizo peers`), or \
             configure another one with --relay-via",
        );
    }
    match r.describe() {
        "public" => Verdict::ok(CHECK, "public: others can dial this node directly"),
        "via relay" => Verdict::ok(
            CHECK,
            format!(
                "behind NAT, reachable through {} relay address(es)",
                r.relayed_addrs.len()
            ),
        ),
        "LAN only" => Verdict::warn(
            CHECK,
            "AutoNAT says private and no relay holds a slot: only mailboxes reach this node \
             from outside",
            "reserve a slot on a relay (--relay-via MULTIADDR), or forward port 4747 and \
             --announce the public address",
        ),
        _ => Verdict::unknown(
            CHECK,
            format!(
                "AutoNAT has not decided yet (status {}; it needs public peers to probe)",
                r.nat_status
            ),
        ),
    }
}

/// One bootstrap address, as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BootstrapAddr {
    pub(super) text: String,
    pub(super) peer_id: Option<String>,
    /// `host:port` for a TCP connect, when the address is TCP.
    pub(super) tcp: Option<String>,
}

/// Splits a multiaddr's text (`/ip4/192.0.2.1/tcp/4747/p2p/12D…`) into what the probe needs.
pub(super) fn parse_bootstrap(text: &str) -> BootstrapAddr {
    let parts: Vec<&str> = text.split('/').skip(1).collect();
    let value = |key: &str| {
        parts
            .windows(2)
            .find(|w| w[0] == key)
            .map(|w| w[1].to_owned())
    };
    let host = value("ip4")
        .or_else(|| value("ip6").map(|h| format!("[{h}]")))
        .or_else(|| value("dns"))
        .or_else(|| value("dns4"))
        .or_else(|| value("dns6"));
    BootstrapAddr {
        text: text.to_owned(),
        peer_id: value("p2p"),
        tcp: host.zip(value("tcp")).map(|(h, p)| format!("{h}:{p}")),
    }
}

pub(super) async fn bootstrap(node: Option<&Node>, config: &Config, offline: bool) -> Verdict {
    let addrs: Vec<BootstrapAddr> = config
        .bootstrap
        .iter()
        .map(|a| parse_bootstrap(&a.to_string()))
        .collect();
    let mut reached = Vec::new();
    let mut probes = Vec::new();
    for addr in &addrs {
        let connected = node
            .zip(addr.peer_id.as_deref())
            .is_some_and(|(n, id)| n.connected_to(id));
        if connected {
            reached.push(true);
        } else if let (false, Some(tcp)) = (offline, &addr.tcp)
            && probes.len() < MAX_PROBES
        {
            probes.push(probe(tcp.clone()));
        }
    }
    reached.extend(futures::future::join_all(probes).await);
    let peer_book = node.map(|n| n.peers.peer_book_peers);
    bootstrap_verdict(
        addrs.len(),
        reached.iter().filter(|r| **r).count(),
        reached.len(),
        peer_book,
    )
}

/// Whether a TCP connection to `host:port` opens within [`PROBE_TIMEOUT`].
async fn probe(target: String) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(target)).await,
        Ok(Ok(_))
    )
}

/// The bootstrap verdict: `configured` peers, of which `checked` were checked (connected or
/// probed) and `reached` answered; `peer_book` is the running node's peer book size.
pub(super) fn bootstrap_verdict(
    configured: usize,
    reached: usize,
    checked: usize,
    peer_book: Option<u64>,
) -> Verdict {
    const CHECK: &str = "bootstrap peers";
    let add = "add a node you know with --bootstrap MULTIADDR (as `rhizo id` prints it on that \
               node), or bootstrap = [...] in the config file";
    if configured == 0 {
        return match peer_book {
            Some(n) if n > 0 => Verdict::ok(
                CHECK,
                format!("none configured; the peer book knows {n} peer(s)"),
            ),
            Some(_) => Verdict::warn(
                CHECK,
                "none configured and the peer book is empty: only mDNS finds peers",
                add,
            ),
            None => Verdict::warn(
                CHECK,
                "none configured: only mDNS and the peer book (asked when the node runs) find \
                 peers",
                add,
            ),
        };
    }
    if checked == 0 {
        return Verdict::unknown(
            CHECK,
            format!("{configured} configured, none checked (offline, or no TCP address)"),
        );
    }
    if reached == 0 {
        return Verdict::problem(
            CHECK,
            format!("{configured} configured, none of the {checked} checked answers"),
            format!("check the addresses and that those nodes run; {add}"),
        );
    }
    if reached < checked {
        return Verdict::warn(
            CHECK,
            format!("{reached} of the {checked} checked answer ({configured} configured)"),
            "remove or correct the addresses that do not answer",
        );
    }
    Verdict::ok(
        CHECK,
        format!("{reached} of {configured} configured answer"),
    )
}
