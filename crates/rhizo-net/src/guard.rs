//! Connection hardening: the [`Guard`] behaviour that decides which connections are allowed.
//!
//! The guard denies, as early as libp2p lets it:
//!
//! | what                                        | where                                   |
//! |---------------------------------------------|-----------------------------------------|
//! | inbound from a banned IP range (CIDR)       | pending (before the Noise handshake)    |
//! | inbound from an IP the [`IpFilter`] refuses | pending                                 |
//! | inbound beyond [`NetLimits::max_pending_inbound`] handshakes | pending                |
//! | inbound beyond [`NetLimits::max_per_ip`] from one IP | pending, and again once the peer is known |
//! | inbound beyond [`NetLimits::max_inbound`]   | established (the peer is known)         |
//! | inbound or outbound with a banned peer      | established (pending too for dials)     |
//! | outbound to an address in a banned range    | pending (explicit addresses), established |
//! | outbound beyond [`NetLimits::max_outbound`] | pending and established                 |
//!
//! **Trusted** peers (from the config) and **protected** peers (those the node has an open
//! conversation with, set through [`Client::set_protected`](crate::Client::set_protected))
//! bypass the count limits, and their connections neither count against the limits nor close
//! for idleness: the guard's [`GuardHandler`] reports keep-alive for them. Bans apply to every
//! peer, trusted or not. Before the handshake the peer is unknown, so the pending-stage per-IP
//! check spares the IPs trusted and protected peers are known to use, and the global
//! [`NetLimits::max_pending_inbound`] applies to everyone (trusted peers are dialled by this node
//! anyway, which no inbound limit touches).
//!
//! Relayed connections (`…/p2p-circuit…`) carry the relay's IP, not the peer's: they are
//! exempt from the IP checks (peer bans still apply).
//!
//! This file holds the behaviour (it decides); `state` holds `GuardState`, the event loop's
//! side (commands, trusted-peer redials, misbehaviour bookkeeping); `redial` the redial
//! schedule itself, sans-IO (every call takes `now`, tokio's clock in the event loop).

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    fmt,
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Instant,
};

use ipnet::IpNet;
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse, upgrade::DeniedUpgrade},
    multiaddr::Protocol,
    swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
        behaviour::{ConnectionClosed, ConnectionEstablished, ListenFailure},
        handler::ConnectionEvent,
    },
};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::client::NetStats;

mod redial;
mod state;

pub(crate) use state::{GuardCommand, GuardState, identify_misbehaviour, outbound_misbehaviour};
pub use state::{MAX_ADDRS_PER_CALL, TRUSTED_REDIAL_MAX, TRUSTED_REDIAL_MIN};

/// Protected peers kept at most; more are ignored (a node has far fewer open conversations).
pub const MAX_PROTECTED_PEERS: usize = 4096;
/// Peer bans kept at most (configured and run-time together).
pub const MAX_PEER_BANS: usize = 4096;
/// IP-range bans kept at most (configured and run-time together).
pub const MAX_CIDR_BANS: usize = 1024;
/// Trusted peers kept at most; more are ignored.
pub const MAX_TRUSTED_PEERS: usize = 64;

/// How many connections the node accepts and makes.
///
/// The defaults (64 inbound, 32 outbound, 16 per IP, 32 pending inbound handshakes) suit a
/// messenger's node, not a gossip node. Canopy keeps 21 inbound and 7 outbound connections: a
/// few long-lived peers exchanging one stream. A rhizo node's outbound connections are many and
/// short-lived instead: every Kademlia lookup contacts up to 3 peers at a time among ~20
/// candidates, publishing a record or storing at mailbox replicas dials the closest peers to a
/// key, and fetching from replicas dials them again; 7 outbound connections would stall lookups
/// behind idle ones. Inbound, a node that serves the DHT and mailbox replicas is the target of
/// everyone else's lookups. 16 per IP lets a household's or an office's devices behind one NAT
/// in while no single host takes all the slots; 32 pending handshakes bound the CPU a flood of
/// connection attempts can cost. Trusted and protected peers (open conversations) come on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLimits {
    /// Established inbound connections, not counting trusted and protected peers.
    pub max_inbound: u32,
    /// Established outbound connections, not counting trusted and protected peers.
    pub max_outbound: u32,
    /// Inbound connections from one IP address, established and pending.
    pub max_per_ip: u32,
    /// Inbound connections still in their handshake.
    pub max_pending_inbound: u32,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            max_inbound: 64,
            max_outbound: 32,
            max_per_ip: 16,
            max_pending_inbound: 32,
        }
    }
}

/// A user-supplied decision on remote IP addresses: `true` allows the address. Used for a
/// country filter backed by an MMDB file the user supplies. Called for every inbound connection
/// attempt, before its handshake; it must be quick.
#[derive(Clone)]
pub struct IpFilter(pub Arc<dyn Fn(IpAddr) -> bool + Send + Sync>);

impl IpFilter {
    /// Wraps a filter function (`true` = allowed).
    pub fn new(allow: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(allow))
    }

    /// Whether `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

impl From<Arc<dyn Fn(IpAddr) -> bool + Send + Sync>> for IpFilter {
    fn from(allow: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>) -> Self {
        Self(allow)
    }
}

impl fmt::Debug for IpFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IpFilter(..)")
    }
}

/// Which peers may stay in this node's Kademlia routing table (`true` = may): a peer it
/// refuses is removed as soon as Kademlia adds it, so this node never names it in answers to
/// `FIND_NODE` / `GET_VALUE` nor asks it in its own lookups. Called on the event loop for
/// every routing-table insertion; it must be quick. (The scale lab's colluding Sybils keep
/// only each other with it.)
#[derive(Clone)]
pub struct RoutingFilter(pub Arc<dyn Fn(&libp2p::PeerId) -> bool + Send + Sync>);

impl RoutingFilter {
    /// Wraps a filter function (`true` = may stay).
    pub fn new(allow: impl Fn(&libp2p::PeerId) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(allow))
    }

    /// Whether `peer` may stay in the routing table.
    pub fn allows(&self, peer: &libp2p::PeerId) -> bool {
        (self.0)(peer)
    }
}

impl fmt::Debug for RoutingFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoutingFilter(..)")
    }
}

/// One ban in force, as [`Client::bans`](crate::Client::bans) lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    /// The banned peer id (base58) or IP range (CIDR notation, e.g. `192.0.2.0/24`; a CIDR
    /// always contains a `/`, a peer id never does).
    pub target: String,
    /// Seconds until the ban lapses (rounded up); `None` for a ban without end (until unbanned
    /// or the node restarts, or for ever when it comes from the config).
    pub until: Option<u64>,
}

/// Something a peer did that an honest peer does not. Reported through
/// [`NetEvent::Misbehaved`](crate::NetEvent::Misbehaved); what to do about it (count, ban) is
/// the node's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Misbehaviour {
    /// A request or response frame whose length prefix exceeds the protocol's limit (refused
    /// before its body was read). This node never writes such a frame.
    OversizedFrame,
    /// A message whose content cannot be decoded: an identify message carrying an undecodable
    /// public key.
    MalformedFrame,
    /// The peer opened a request stream and did not deliver its request before the protocol's
    /// timeout (a slow-loris stream). Timeouts while this node prepares its response are not
    /// reported; a peer on a very slow link can still cause one now and then, so count these
    /// rather than ban on the first.
    Timeout,
}

/// The remote IP of a connection address, if the address names the peer's own host: `None`
/// for relayed addresses (whose IP is the relay's) and addresses without an IP.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    let mut ip = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2pCircuit => return None,
            Protocol::Ip4(a) if ip.is_none() => ip = Some(IpAddr::V4(a)),
            Protocol::Ip6(a) if ip.is_none() => ip = Some(IpAddr::V6(a).to_canonical()),
            _ => {}
        }
    }
    ip
}

/// What [`Guard::new`] needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct GuardConfig {
    pub(crate) limits: NetLimits,
    /// Trusted peers and the addresses given for them.
    pub(crate) trusted: Vec<(PeerId, Multiaddr)>,
    pub(crate) banned_peers: Vec<PeerId>,
    pub(crate) banned_cidrs: Vec<IpNet>,
    pub(crate) ip_filter: Option<IpFilter>,
}

/// Why a run-time ban was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BanListFull {
    pub(crate) max: usize,
}

/// Why the guard denied a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    BannedPeer,
    BannedRange,
    Filtered,
    PendingInbound(u32),
    Inbound(u32),
    Outbound(u32),
    PerIp(u32),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BannedPeer => f.write_str("the peer is banned"),
            Self::BannedRange => f.write_str("the address is in a banned IP range"),
            Self::Filtered => f.write_str("the address is refused by the IP filter"),
            Self::PendingInbound(n) => write!(f, "at most {n} inbound handshakes at a time"),
            Self::Inbound(n) => write!(f, "at most {n} inbound connections"),
            Self::Outbound(n) => write!(f, "at most {n} outbound connections"),
            Self::PerIp(n) => write!(f, "at most {n} connections from one IP address"),
        }
    }
}

impl std::error::Error for Denied {}

/// One established connection as the guard sees it.
#[derive(Debug, Clone, Copy)]
struct Conn {
    peer: PeerId,
    inbound: bool,
    ip: Option<IpAddr>,
}

/// The connection gatekeeper: limits, bans, the IP filter, and keep-alive for trusted and
/// protected peers. A field of [`Behaviour`](crate::behaviour::Behaviour); driven by the
/// [`EventLoop`](crate::EventLoop).
pub struct Guard {
    limits: NetLimits,
    trusted: HashSet<PeerId>,
    /// IPs of the trusted peers' configured addresses.
    trusted_ips: HashSet<IpAddr>,
    protected: HashSet<PeerId>,
    /// The last IP each trusted or protected peer connected from.
    exempt_ips: HashMap<PeerId, IpAddr>,
    banned_peers: HashMap<PeerId, Option<Instant>>,
    banned_cidrs: Vec<IpNet>,
    ip_filter: Option<IpFilter>,
    pending_inbound: HashMap<ConnectionId, Option<IpAddr>>,
    connections: HashMap<ConnectionId, Conn>,
    denied: u64,
    /// Keep-alive changes owed to connection handlers, the latest per connection.
    notify: HashMap<ConnectionId, (PeerId, bool)>,
    waker: Option<Waker>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("limits", &self.limits)
            .field("trusted", &self.trusted.len())
            .field("protected", &self.protected.len())
            .field("banned_peers", &self.banned_peers.len())
            .field("banned_cidrs", &self.banned_cidrs.len())
            .field("connections", &self.connections.len())
            .field("denied", &self.denied)
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub(crate) fn new(config: GuardConfig) -> Self {
        let mut trusted = HashSet::new();
        let mut trusted_ips = HashSet::new();
        for (peer, addr) in config.trusted {
            if trusted.len() >= MAX_TRUSTED_PEERS && !trusted.contains(&peer) {
                continue;
            }
            trusted.insert(peer);
            if let Some(ip) = ip_of(&addr) {
                trusted_ips.insert(ip);
            }
        }
        let banned_peers = config
            .banned_peers
            .into_iter()
            .take(MAX_PEER_BANS)
            .map(|p| (p, None))
            .collect();
        let mut banned_cidrs: Vec<IpNet> = Vec::new();
        for net in config.banned_cidrs {
            let net = net.trunc();
            if banned_cidrs.len() < MAX_CIDR_BANS && !banned_cidrs.contains(&net) {
                banned_cidrs.push(net);
            }
        }
        Self {
            limits: config.limits,
            trusted,
            trusted_ips,
            protected: HashSet::new(),
            exempt_ips: HashMap::new(),
            banned_peers,
            banned_cidrs,
            ip_filter: config.ip_filter,
            pending_inbound: HashMap::new(),
            connections: HashMap::new(),
            denied: 0,
            notify: HashMap::new(),
            waker: None,
        }
    }

    /// Whether `peer` bypasses the count limits and is kept alive.
    pub(crate) fn is_exempt(&self, peer: &PeerId) -> bool {
        self.trusted.contains(peer) || self.protected.contains(peer)
    }

    /// Whether `peer` is banned now.
    pub(crate) fn is_peer_banned(&self, peer: &PeerId) -> bool {
        match self.banned_peers.get(peer) {
            Some(None) => true,
            Some(Some(until)) => *until > Instant::now(),
            None => false,
        }
    }

    /// Whether `ip` lies in a banned range.
    pub(crate) fn is_ip_banned(&self, ip: IpAddr) -> bool {
        self.banned_cidrs.iter().any(|net| net.contains(&ip))
    }

    /// Whether the node may dial `addr` (not in a banned range; relayed addresses pass).
    pub(crate) fn is_addr_allowed(&self, addr: &Multiaddr) -> bool {
        ip_of(addr).is_none_or(|ip| !self.is_ip_banned(ip))
    }

    fn deny(
        &mut self,
        why: Denied,
        addr: Option<&Multiaddr>,
        peer: Option<PeerId>,
    ) -> ConnectionDenied {
        self.denied += 1;
        debug!(?peer, ?addr, reason = %why, "connection denied");
        ConnectionDenied::new(why)
    }

    /// Established connections of peers that are not exempt, in one direction.
    fn counted(&self, inbound: bool) -> usize {
        self.connections
            .values()
            .filter(|c| c.inbound == inbound && !self.is_exempt(&c.peer))
            .count()
    }

    /// Established inbound connections from `ip` of peers that are not exempt.
    fn counted_from(&self, ip: IpAddr) -> usize {
        self.connections
            .values()
            .filter(|c| c.inbound && c.ip == Some(ip) && !self.is_exempt(&c.peer))
            .count()
    }

    /// Whether `ip` is one a trusted or protected peer is known to use.
    fn is_exempt_ip(&self, ip: IpAddr) -> bool {
        self.trusted_ips.contains(&ip) || self.exempt_ips.values().any(|e| *e == ip)
    }

    /// Replaces the protected set (at most [`MAX_PROTECTED_PEERS`]) and tells the connection
    /// handlers whose keep-alive changes.
    pub(crate) fn set_protected(&mut self, peers: Vec<PeerId>) {
        let before: HashMap<ConnectionId, bool> = self
            .connections
            .iter()
            .map(|(id, c)| (*id, self.is_exempt(&c.peer)))
            .collect();
        self.protected = peers.into_iter().take(MAX_PROTECTED_PEERS).collect();
        let exempt: HashSet<PeerId> = self.trusted.union(&self.protected).copied().collect();
        self.exempt_ips.retain(|peer, _| exempt.contains(peer));
        for (id, conn) in &self.connections {
            let now = exempt.contains(&conn.peer);
            if before.get(id) != Some(&now) {
                self.notify.insert(*id, (conn.peer, now));
            }
            if now && let Some(ip) = conn.ip {
                self.exempt_ips.insert(conn.peer, ip);
            }
        }
        if !self.notify.is_empty()
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
    }

    /// Bans `peer` until `until` (`None`: until unbanned). The caller closes its connections.
    pub(crate) fn ban_peer(
        &mut self,
        peer: PeerId,
        until: Option<Instant>,
    ) -> Result<(), BanListFull> {
        if !self.banned_peers.contains_key(&peer) && self.banned_peers.len() >= MAX_PEER_BANS {
            self.prune_expired();
            if self.banned_peers.len() >= MAX_PEER_BANS {
                return Err(BanListFull { max: MAX_PEER_BANS });
            }
        }
        self.banned_peers.insert(peer, until);
        Ok(())
    }

    /// Lifts a ban on `peer`; whether there was one in force.
    pub(crate) fn unban_peer(&mut self, peer: &PeerId) -> bool {
        let was = self.is_peer_banned(peer);
        self.banned_peers.remove(peer);
        was
    }

    /// Bans an IP range and returns the established connections inside it (the caller closes
    /// them).
    pub(crate) fn ban_cidr(&mut self, net: IpNet) -> Result<Vec<ConnectionId>, BanListFull> {
        let net = net.trunc();
        if !self.banned_cidrs.contains(&net) {
            if self.banned_cidrs.len() >= MAX_CIDR_BANS {
                return Err(BanListFull { max: MAX_CIDR_BANS });
            }
            self.banned_cidrs.push(net);
        }
        Ok(self
            .connections
            .iter()
            .filter(|(_, c)| c.ip.is_some_and(|ip| net.contains(&ip)))
            .map(|(id, _)| *id)
            .collect())
    }

    /// Lifts a ban on an IP range (exactly this range); whether there was one.
    pub(crate) fn unban_cidr(&mut self, net: IpNet) -> bool {
        let net = net.trunc();
        let before = self.banned_cidrs.len();
        self.banned_cidrs.retain(|n| *n != net);
        self.banned_cidrs.len() != before
    }

    fn prune_expired(&mut self) {
        let now = Instant::now();
        self.banned_peers
            .retain(|_, until| until.is_none_or(|until| until > now));
    }

    /// The bans in force: peers first, then IP ranges.
    pub(crate) fn bans(&mut self) -> Vec<BanInfo> {
        self.prune_expired();
        let now = Instant::now();
        let mut peers: Vec<BanInfo> = self
            .banned_peers
            .iter()
            .map(|(peer, until)| BanInfo {
                target: peer.to_base58(),
                until: until.map(|t| {
                    let left = t.saturating_duration_since(now);
                    left.as_secs() + u64::from(left.subsec_nanos() > 0)
                }),
            })
            .collect();
        peers.sort_by(|a, b| a.target.cmp(&b.target));
        peers.extend(self.banned_cidrs.iter().map(|net| BanInfo {
            target: net.to_string(),
            until: None,
        }));
        peers
    }

    /// Copies the guard's counters into `stats`.
    pub(crate) fn fill_stats(&self, stats: &mut NetStats) {
        stats.connections_denied = self.denied;
        stats.open_inbound = self.connections.values().filter(|c| c.inbound).count() as u64;
        stats.open_outbound = self.connections.values().filter(|c| !c.inbound).count() as u64;
    }

    fn handler_for(&self, peer: &PeerId) -> GuardHandler {
        GuardHandler {
            keep_alive: self.is_exempt(peer),
        }
    }
}

impl NetworkBehaviour for Guard {
    type ConnectionHandler = GuardHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let ip = ip_of(remote_addr);
        if let Some(ip) = ip {
            if self.is_ip_banned(ip) {
                return Err(self.deny(Denied::BannedRange, Some(remote_addr), None));
            }
            if let Some(filter) = &self.ip_filter
                && !filter.allows(ip)
            {
                return Err(self.deny(Denied::Filtered, Some(remote_addr), None));
            }
        }
        let max_pending = self.limits.max_pending_inbound;
        if self.pending_inbound.len() >= max_pending as usize {
            return Err(self.deny(Denied::PendingInbound(max_pending), Some(remote_addr), None));
        }
        if let Some(ip) = ip
            && !self.is_exempt_ip(ip)
        {
            let pending = self
                .pending_inbound
                .values()
                .filter(|p| **p == Some(ip))
                .count();
            let max = self.limits.max_per_ip;
            if self.counted_from(ip) + pending >= max as usize {
                return Err(self.deny(Denied::PerIp(max), Some(remote_addr), None));
            }
        }
        self.pending_inbound.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_inbound.remove(&connection_id);
        if self.is_peer_banned(&peer) {
            return Err(self.deny(Denied::BannedPeer, Some(remote_addr), Some(peer)));
        }
        let ip = ip_of(remote_addr);
        // A range banned while the handshake ran.
        if ip.is_some_and(|ip| self.is_ip_banned(ip)) {
            return Err(self.deny(Denied::BannedRange, Some(remote_addr), Some(peer)));
        }
        if self.is_exempt(&peer) {
            return Ok(self.handler_for(&peer));
        }
        let max = self.limits.max_inbound;
        if self.counted(true) >= max as usize {
            return Err(self.deny(Denied::Inbound(max), Some(remote_addr), Some(peer)));
        }
        let max = self.limits.max_per_ip;
        if let Some(ip) = ip
            && self.counted_from(ip) >= max as usize
        {
            return Err(self.deny(Denied::PerIp(max), Some(remote_addr), Some(peer)));
        }
        Ok(self.handler_for(&peer))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = maybe_peer
            && self.is_peer_banned(&peer)
        {
            return Err(self.deny(Denied::BannedPeer, addresses.first(), Some(peer)));
        }
        // Explicit addresses all in banned ranges: nothing may be dialled. (Addresses other
        // behaviours add are checked once the connection is up.)
        if !addresses.is_empty() && addresses.iter().all(|a| !self.is_addr_allowed(a)) {
            return Err(self.deny(Denied::BannedRange, addresses.first(), maybe_peer));
        }
        if maybe_peer.is_some_and(|p| self.is_exempt(&p)) {
            return Ok(Vec::new());
        }
        let max = self.limits.max_outbound;
        if self.counted(false) >= max as usize {
            return Err(self.deny(Denied::Outbound(max), addresses.first(), maybe_peer));
        }
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.is_peer_banned(&peer) {
            return Err(self.deny(Denied::BannedPeer, Some(addr), Some(peer)));
        }
        if !self.is_addr_allowed(addr) {
            return Err(self.deny(Denied::BannedRange, Some(addr), Some(peer)));
        }
        if self.is_exempt(&peer) {
            return Ok(self.handler_for(&peer));
        }
        let max = self.limits.max_outbound;
        if self.counted(false) >= max as usize {
            return Err(self.deny(Denied::Outbound(max), Some(addr), Some(peer)));
        }
        Ok(self.handler_for(&peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                let ip = ip_of(endpoint.get_remote_address());
                self.pending_inbound.remove(&connection_id);
                self.connections.insert(
                    connection_id,
                    Conn {
                        peer: peer_id,
                        inbound: endpoint.is_listener(),
                        ip,
                    },
                );
                if let Some(ip) = ip
                    && self.is_exempt(&peer_id)
                {
                    self.exempt_ips.insert(peer_id, ip);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.connections.remove(&connection_id);
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending_inbound.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        while let Some(connection) = self.notify.keys().next().copied() {
            let Some((peer_id, keep_alive)) = self.notify.remove(&connection) else {
                break;
            };
            if self.connections.contains_key(&connection) {
                return Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::One(connection),
                    event: keep_alive,
                });
            }
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The guard's per-connection handler: speaks no protocol; keeps the connection alive while its
/// peer is trusted or protected, and otherwise lets the idle timeout apply.
#[derive(Debug, Clone)]
pub struct GuardHandler {
    keep_alive: bool,
}

impl ConnectionHandler for GuardHandler {
    /// The new keep-alive decision.
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep_alive
    }

    fn on_behaviour_event(&mut self, keep_alive: bool) {
        self.keep_alive = keep_alive;
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        _event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        // DeniedUpgrade negotiates nothing: no stream ever reaches this handler.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn ip_of_skips_relayed_and_canonicalises_mapped_v4() {
        assert_eq!(
            ip_of(&addr("/ip4/192.0.2.7/tcp/4001")),
            Some("192.0.2.7".parse().expect("ip"))
        );
        assert_eq!(
            ip_of(&addr("/ip6/::ffff:192.0.2.7/tcp/4001")),
            Some("192.0.2.7".parse().expect("ip"))
        );
        let relay = PeerId::random();
        assert_eq!(
            ip_of(&addr(&format!(
                "/ip4/192.0.2.7/tcp/4001/p2p/{relay}/p2p-circuit"
            ))),
            None
        );
        assert_eq!(ip_of(&addr("/dns4/example.org/tcp/4001")), None);
    }

    /// Reports an inbound connection from `peer` at `remote` as established.
    fn establish(guard: &mut Guard, id: usize, peer: PeerId, remote: &Multiaddr) -> GuardHandler {
        let id = ConnectionId::new_unchecked(id);
        let local = addr("/ip4/127.0.0.1/tcp/4001");
        guard
            .handle_pending_inbound_connection(id, &local, remote)
            .expect("admitted before the handshake");
        let handler = guard
            .handle_established_inbound_connection(id, peer, &local, remote)
            .expect("admitted");
        let endpoint = libp2p::core::ConnectedPoint::Listener {
            local_addr: local,
            send_back_addr: remote.clone(),
        };
        guard.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        handler
    }

    #[test]
    fn pending_limits_the_ip_filter_and_keep_alive() {
        let blocked: IpAddr = "198.51.100.9".parse().expect("ip");
        let mut guard = Guard::new(GuardConfig {
            limits: NetLimits {
                max_inbound: 10,
                max_outbound: 10,
                max_per_ip: 1,
                max_pending_inbound: 2,
            },
            ip_filter: Some(IpFilter::new(move |ip| ip != blocked)),
            ..GuardConfig::default()
        });
        let local = addr("/ip4/127.0.0.1/tcp/4001");
        let from = |ip: &str| addr(&format!("/ip4/{ip}/tcp/5000"));

        // The filter refuses before anything else.
        let id = ConnectionId::new_unchecked(1);
        assert!(
            guard
                .handle_pending_inbound_connection(id, &local, &from("198.51.100.9"))
                .is_err()
        );
        // Two handshakes at a time, whatever their IPs.
        for (n, ip) in [(2, "192.0.2.1"), (3, "192.0.2.2")] {
            guard
                .handle_pending_inbound_connection(
                    ConnectionId::new_unchecked(n),
                    &local,
                    &from(ip),
                )
                .expect("room for a handshake");
        }
        assert!(
            guard
                .handle_pending_inbound_connection(
                    ConnectionId::new_unchecked(4),
                    &local,
                    &from("192.0.2.3")
                )
                .is_err()
        );
        // One pending from 192.0.2.1 already: a second one from there is over the per-IP limit.
        guard.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: &from("192.0.2.2"),
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: ConnectionId::new_unchecked(3),
            peer_id: None,
        }));
        assert!(
            guard
                .handle_pending_inbound_connection(
                    ConnectionId::new_unchecked(5),
                    &local,
                    &from("192.0.2.1")
                )
                .is_err()
        );
        assert_eq!(guard.denied, 3);

        // A protected peer is kept alive, and its IP is spared the per-IP check.
        let friend = PeerId::random();
        let stranger = PeerId::random();
        let handler = establish(&mut guard, 10, stranger, &from("203.0.113.5"));
        assert!(!handler.connection_keep_alive());
        guard.set_protected(vec![friend]);
        assert!(guard.notify.is_empty(), "no connection of the friend yet");
        let handler = establish(&mut guard, 11, friend, &from("203.0.113.7"));
        assert!(handler.connection_keep_alive());
        guard
            .handle_pending_inbound_connection(
                ConnectionId::new_unchecked(12),
                &local,
                &from("203.0.113.7"),
            )
            .expect("the protected peer's IP is spared");
        // Protection moves to the stranger: both handlers hear of it.
        guard.set_protected(vec![stranger]);
        let mut changes: Vec<(PeerId, bool)> =
            guard.notify.drain().map(|(_, change)| change).collect();
        changes.sort_by_key(|(_, keep)| *keep);
        assert_eq!(changes, vec![(friend, false), (stranger, true)]);
    }

    #[test]
    fn bans_lapse_and_list_in_a_serializable_form() {
        let mut guard = Guard::new(GuardConfig::default());
        let forever = PeerId::random();
        let soon = PeerId::random();
        let past = PeerId::random();
        let now = Instant::now();
        guard.ban_peer(forever, None).expect("room");
        guard
            .ban_peer(soon, Some(now + std::time::Duration::from_secs(90)))
            .expect("room");
        guard
            .ban_peer(
                past,
                Some(
                    now.checked_sub(std::time::Duration::from_secs(1))
                        .unwrap_or(now),
                ),
            )
            .expect("room");
        assert!(guard.is_peer_banned(&forever));
        assert!(guard.is_peer_banned(&soon));
        assert!(!guard.is_peer_banned(&past));
        let net: IpNet = "10.1.2.3/8".parse().expect("cidr");
        assert!(guard.ban_cidr(net).expect("room").is_empty());
        assert!(guard.is_ip_banned("10.200.0.1".parse().expect("ip")));
        assert!(!guard.is_addr_allowed(&addr("/ip4/10.9.9.9/tcp/1")));
        let bans = guard.bans();
        assert_eq!(bans.len(), 3);
        assert!(
            bans.iter()
                .any(|b| b.target == forever.to_base58() && b.until.is_none())
        );
        assert!(
            bans.iter()
                .any(|b| b.target == soon.to_base58() && matches!(b.until, Some(89 | 90)))
        );
        assert!(
            bans.iter()
                .any(|b| b.target == "10.0.0.0/8" && b.until.is_none())
        );
        assert!(guard.unban_cidr("10.0.0.0/8".parse().expect("cidr")));
        assert!(guard.unban_peer(&forever));
        assert!(!guard.unban_peer(&forever));
        assert_eq!(guard.bans().len(), 1);
    }
}
