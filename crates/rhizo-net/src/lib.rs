//! rhizo's libp2p layer.
//!
//! One [`EventLoop`] owns the libp2p `Swarm`; everything else talks to it through a cloneable
//! [`Client`] that sends commands over a bounded channel, each carrying a oneshot for its
//! typed reply. What the network learns (peers discovered, connections, dial failures, inbound
//! requests) goes up to the node as [`NetEvent`]s over another bounded channel, never awaited.
//!
//! ```text
//!   node services ──Client──▶ [bounded mpsc] ──▶ EventLoop ──▶ Swarm (tcp+noise+yamux, quic)
//!         ▲                   DHT queries table ◀──┤            identify, ping, kad, mdns,
//!         │                   request table     ◀──┤            /rhizo/msg/2, /1 (≤ 512 KiB),
//!         │                   (msg, mailbox, pex)  │            /rhizo/mailbox/1
//!         │                   peers, guard, nat    │              (req ≤ 320 KiB, resp ≤ 1 MiB),
//!         │                                        │            /rhizo/pex/1, /rhizo/link/1,
//!         │                                        │            /rhizo/file/1 (resp ≤ 1.1 MiB),
//!         │                                        │            gossipsub, NAT
//!         └──── [bounded mpsc] ◀─ backlog ◀─ NetEvent
//! ```
//!
//! # Layout
//! - `bandwidth`: bytes received and sent over all connections (libp2p-metrics' transport
//!   counters), for [`NetStats`](client::NetStats).
//! - [`behaviour`]: the composed `NetworkBehaviour` and its protocol configuration.
//! - [`client`]: the [`Client`] handle and the commands it sends.
//! - [`event_loop`]: the [`EventLoop`] that owns the Swarm, as small state machines: the DHT
//!   queries in flight, one request table for `/rhizo/msg/1`, `/rhizo/mailbox/1`,
//!   `/rhizo/pex/1` and `/rhizo/link/1`, the peers, and the event sink that never waits for the node.
//! - [`guard`]: connection hardening: limits, bans, the IP filter, trusted and protected peers,
//!   misbehaviour reports.
//! - [`kad_tap`]: Kademlia with the source of inbound requests recorded.
//! - [`light`]: `/rhizo/light/1` streams splicing light clients to their home nodes (gateway).
//! - [`gossip`]: gossipsub broadcast (signed, node-validated, content-addressed, scored).
//! - [`nat`]: NAT traversal (AutoNAT, relay server and client, DCUtR, UPnP) and reachability.
//! - [`msg_protocol`]: the length-prefixed frame codec of `/rhizo/msg/1`, `/rhizo/mailbox/1`
//!   and the other request-response protocols (`/rhizo/file/1` among them).
//! - [`start()`](start) (a function of this file, not a module): builds the Swarm, binds the
//!   listeners, returns the three parts; [`start_with_transport`] does the same on libp2p's
//!   in-process memory transport ([`Transport::Memory`], for the scale lab).
//! - [`link_delay`]: added per-link latency on the memory transport
//!   ([`Transport::MemoryDelayed`], the scale lab's links).
//!
//! # Errors
//! Every [`Client`] call returns a typed error: [`NetError`] (with [`DhtError`] for what a DHT
//! operation refused), or [`SendError`] for a request to a peer. [`NetError::Timeout`] and
//! [`SendError::Timeout`] mean no answer came in time; `Stopped` only that the event loop is
//! gone; `Busy` that it had no room (try again later).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bandwidth;
pub mod behaviour;
pub mod client;
pub mod event_loop;
pub mod gossip;
pub mod guard;
pub mod kad_tap;
pub mod light;
pub mod link_delay;
pub mod msg_protocol;
pub mod nat;

use std::time::Duration;

pub use behaviour::{KAD_PROTOCOL, PROTOCOL_VERSION};
pub use client::{Client, ClosestPeer, NetInfo, NetStats, PeerInfo, SendError};
pub use event_loop::{DiscoverySource, EventLoop, NetEvent};
pub use gossip::{GossipVerdict, MAX_GOSSIP_DATA_BYTES, MAX_GOSSIP_TRANSMIT_BYTES};
pub use guard::{BanInfo, IpFilter, Misbehaviour, NetLimits, RoutingFilter};
pub use libp2p::request_response::ResponseChannel;
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
pub use light::{IncomingLightStreams, LIGHT_PROTOCOL};
pub use link_delay::LinkDelay;
pub use msg_protocol::{
    BATCH_FRAME_MARKER, FrameCodec, MAILBOX_PROTOCOL, MAX_FRAME_BYTES, MAX_MAILBOX_REQUEST_BYTES,
    MAX_MAILBOX_RESPONSE_BYTES, MSG_BATCH_PROTOCOL, MSG_PROTOCOL,
};
pub use msg_protocol::{FILE_PROTOCOL, MAX_FILE_REQUEST_BYTES, MAX_FILE_RESPONSE_BYTES};
pub use msg_protocol::{LINK_PROTOCOL, MAX_LINK_MESSAGE_BYTES};
pub use msg_protocol::{MAX_PEX_REQUEST_BYTES, MAX_PEX_RESPONSE_BYTES, PEX_PROTOCOL};
pub use nat::Reachability;

use libp2p::{multiaddr::Protocol, noise, swarm::DialError, tcp, yamux};

/// Capacity of the command channel from [`Client`]s to the [`EventLoop`]: bounded, so a flood of
/// API calls waits instead of growing memory.
pub const COMMAND_CHANNEL_CAPACITY: usize = 64;
/// Capacity of the event channel from the [`EventLoop`] to the node.
pub const EVENT_CHANNEL_CAPACITY: usize = 256;
/// How long a connection without open streams is kept before it is closed.
pub const DEFAULT_IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything the network layer needs to start.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The device key: the libp2p identity of this node.
    pub keypair: Keypair,
    /// Addresses to listen on (`/ip4/…/tcp/…`, `/ip4/…/udp/…/quic-v1`).
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers to dial at start (with or without a `/p2p/<peer id>` suffix).
    pub bootstrap: Vec<Multiaddr>,
    /// Peers remembered from earlier runs (the peer book), best first.
    pub known_peers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Discover peers on the local network with mDNS (multicast!).
    pub mdns: bool,
    /// Addresses advertised instead of the listen addresses (empty: advertise the listeners).
    pub announce: Vec<Multiaddr>,
    /// The agent version announced through identify.
    pub agent_version: String,
    /// Speak `/rhizo/msg/2` (batch frames) besides `/rhizo/msg/1`. Off: the node announces
    /// and offers `/rhizo/msg/1` only, as nodes older than batch frames do.
    pub batch_frames: bool,
    /// Idle connection timeout.
    pub idle_connection_timeout: Duration,
    /// Decides which DHT records this node stores for others.
    pub record_validator: std::sync::Arc<dyn RecordValidator>,
    /// Connection limits (see [`NetLimits`]; trusted and protected peers bypass them).
    pub limits: NetLimits,
    /// Must-connect peers, each ending in `/p2p/<peer id>`: dialled at start, redialled with
    /// backoff (5 s doubling to 60 s) whenever the connection is lost or a dial fails, never
    /// limited, never closed for idleness (at most [`guard::MAX_TRUSTED_PEERS`]).
    pub trusted: Vec<Multiaddr>,
    /// Peers refused in both directions (at most [`guard::MAX_PEER_BANS`]).
    pub banned_peers: Vec<PeerId>,
    /// IP ranges refused in both directions (at most [`guard::MAX_CIDR_BANS`]).
    pub banned_cidrs: Vec<ipnet::IpNet>,
    /// Refuses inbound connections from the IPs it returns `false` for, before their handshake
    /// (e.g. a country filter over a MaxMind database the user supplies). `None`: no filter.
    pub ip_filter: Option<IpFilter>,
    /// Which peers may stay in the Kademlia routing table (`None`: every peer Kademlia adds).
    pub routing_filter: Option<RoutingFilter>,
    /// Kademlia lookups over disjoint paths (S/Kademlia; libp2p's `disjoint_query_paths`):
    /// the α = 3 parallel requests of a lookup follow 3 paths that never share a peer, and
    /// the lookup ends when each path has reached the closest peers it can, so peers that
    /// answer only with each other capture one path, not the lookup. On by default.
    pub disjoint_paths: bool,
    /// Serve as a circuit relay for other nodes (see [`nat`]; needs a public address).
    pub relay_server: bool,
    /// Ask the LAN's gateway to map the listen ports with UPnP (multicast on the local network;
    /// off by default).
    pub upnp: bool,
    /// Relay nodes to reserve a slot on, each ending in `/p2p/<peer id>`: the node dials them at
    /// start and listens on `<relay>/p2p-circuit` once connected (at most [`nat::MAX_RELAYS`]).
    pub relays: Vec<Multiaddr>,
}

/// The node's rules for DHT records others ask it to store (signature, size, version, expiry).
///
/// Called on the blocking thread pool, never on the event loop's task, and only for records
/// whose sender is within its rate (see [`event_loop`]).
pub trait RecordValidator: Send + Sync + std::fmt::Debug + 'static {
    /// `Ok` to store `value` under `key`, replacing `existing` (the value held now), if any;
    /// the answer names the record's owner and its own expiry, which the store's bounds use.
    fn validate(
        &self,
        key: &[u8],
        value: &[u8],
        existing: Option<&[u8]>,
    ) -> Result<AcceptedRecord, String>;
}

/// What a [`RecordValidator`] tells about a record it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptedRecord {
    /// Whom the record belongs to (rhizo: the UID); the records kept per owner are bounded
    /// ([`behaviour::MAX_RECORDS_PER_OWNER`]). At most [`MAX_RECORD_OWNER_BYTES`] count.
    pub owner: Vec<u8>,
    /// When the record's own (signed) lifetime ends, in Unix seconds; the record is dropped
    /// then, or at the DHT's record TTL if that comes first. `None`: the TTL only.
    pub expires_at_unix: Option<u64>,
}

/// Bytes of [`AcceptedRecord::owner`] that count (a longer owner is cut).
pub const MAX_RECORD_OWNER_BYTES: usize = 64;

/// A validator that refuses every record (for nodes that store nothing for others).
#[derive(Debug, Clone, Copy, Default)]
pub struct RefuseAllRecords;

impl RecordValidator for RefuseAllRecords {
    fn validate(&self, _: &[u8], _: &[u8], _: Option<&[u8]>) -> Result<AcceptedRecord, String> {
        Err("this node stores no records".into())
    }
}

/// How many remembered peers are dialled directly at start; the rest are only handed to
/// Kademlia, which dials them on demand.
pub const MAX_INITIAL_PEER_BOOK_DIALS: usize = 16;

/// Errors from starting the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A listen address is already taken by another process.
    #[error(
        "cannot listen on {addr}: the port is already in use (is another rhizo node running? \
         choose another port with --listen, e.g. --listen /ip4/0.0.0.0/tcp/0)"
    )]
    AddrInUse {
        /// The address.
        addr: Multiaddr,
    },
    /// A listen address could not be bound for another reason.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Building the transport or behaviour failed.
    #[error("cannot start the network: {0}")]
    Build(String),
    /// A gossipsub operation failed (no subscribed peers, duplicate, too large, bad topic).
    #[error("gossip: {0}")]
    Gossip(String),
    /// A ban list is full (see [`guard::MAX_PEER_BANS`], [`guard::MAX_CIDR_BANS`]).
    #[error("cannot ban more: at most {max} bans of this kind")]
    TooManyBans {
        /// The list's capacity.
        max: usize,
    },
    /// A trusted peer's address lacks its `/p2p/<peer id>` suffix.
    #[error("trusted peer {addr} must end in /p2p/<peer id>")]
    TrustedWithoutPeerId {
        /// The address.
        addr: Multiaddr,
    },
    /// A `/rhizo/light/1` stream could not be opened or accepted (the home node is not
    /// connected, does not serve light clients, or something accepts them already).
    #[error("light-client stream: {0}")]
    LightStream(String),
    /// The event loop is gone (the node is shutting down).
    #[error("the network event loop has stopped")]
    Stopped,
    /// The event loop had no room: its command channel was full (a `try_` call handed nothing
    /// over), or too many DHT operations of this node's own are in flight. Try again later.
    #[error("the network event loop is busy: try again later")]
    Busy,
    /// The operation did not finish in time: the event loop did not answer within
    /// [`client::CLIENT_TIMEOUT`] (or the operation's own bound), or a DHT query timed out.
    #[error("timed out: the network did not answer in time (try again later)")]
    Timeout,
    /// A DHT operation failed.
    #[error("DHT: {0}")]
    Dht(#[from] DhtError),
    /// A dial could not be started.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
}

/// Why a DHT operation failed (besides [`NetError::Busy`] and [`NetError::Timeout`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// No peer stored the record (are any peers connected?).
    #[error("no peer accepted the record (are any peers connected?)")]
    NoPeerAccepted,
    /// `put_record_to` was given no peer but this node.
    #[error("no peer to store the record on")]
    NoTarget,
    /// This node's own record store refused the record.
    #[error("this node's own store refused the record: {0}")]
    LocalStore(String),
    /// A provider key must have 1 to `max` bytes.
    #[error("a provider key has 1 to {max} bytes, not {len}")]
    BadProviderKey {
        /// The key's length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// This node announces at most `max` keys.
    #[error(
        "this node provides {max} keys already, the most it announces; stop providing one first"
    )]
    TooManyProvidedKeys {
        /// The most allowed.
        max: usize,
    },
}

/// Which transport the Swarm runs on. Every node uses [`Transport::Tcp`]; the memory transport
/// exists for the scale lab (rhizo-bench `--only scale`), which runs many nodes in one process
/// with no sockets at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// TCP + Noise + Yamux, QUIC, and the relay client: what a node runs.
    #[default]
    Tcp,
    /// libp2p's in-process memory transport (`/memory/<port>` addresses, `/memory/0` for any
    /// free port) + Noise + Yamux, and the relay client. Sends no packets; only nodes of the
    /// same process can reach each other.
    Memory,
    /// [`Transport::Memory`] with added link latency: both ends of a connection exchange their
    /// [`link_delay::LinkDelay`] first, and every read is held for the link's one-way delay
    /// (the scale lab's links; see [`link_delay`]).
    MemoryDelayed(LinkDelay),
}

/// The parts [`start`] returns: the client, the event receiver and the event loop.
pub type Started = (Client, tokio::sync::mpsc::Receiver<NetEvent>, EventLoop);

/// Builds the Swarm, binds every listen address, seeds Kademlia with the peer book, starts
/// dialling the bootstrap peers, and returns the client, the event receiver and the event loop
/// (which the caller spawns). Must be called inside a tokio runtime. Runs on TCP and QUIC; see
/// [`start_with_transport`] for the memory transport.
pub fn start(config: NetConfig) -> Result<Started, NetError> {
    start_with_transport(config, Transport::Tcp)
}

/// [`start`] on the given [`Transport`]: the behaviours, limits and rules are the same, only
/// the transport under Noise and Yamux differs.
pub fn start_with_transport(config: NetConfig, transport: Transport) -> Result<Started, NetError> {
    let mut trusted: Vec<(PeerId, Multiaddr)> = Vec::with_capacity(config.trusted.len());
    for addr in &config.trusted {
        let Some(peer) = peer_id_of(addr) else {
            return Err(NetError::TrustedWithoutPeerId { addr: addr.clone() });
        };
        trusted.push((peer, addr.clone()));
    }
    let guard_config = guard::GuardConfig {
        limits: config.limits,
        trusted: trusted.clone(),
        banned_peers: config.banned_peers.clone(),
        banned_cidrs: config.banned_cidrs.clone(),
        ip_filter: config.ip_filter.clone(),
    };
    let behaviour_config = behaviour::BehaviourConfig {
        agent_version: config.agent_version.clone(),
        batch_frames: config.batch_frames,
        mdns: config.mdns,
        hide_listen_addrs: !config.announce.is_empty(),
        relay_server: config.relay_server,
        upnp: config.upnp,
        disjoint_paths: config.disjoint_paths,
        guard: guard_config,
    };
    let mut registry = libp2p::metrics::Registry::default();
    let mut swarm = build_swarm(&config, &behaviour_config, transport, &mut registry)?;

    for addr in &config.listen {
        ensure_port_free(addr)?;
        if let Err(e) = swarm.listen_on(addr.clone()) {
            return Err(listen_error(addr, e));
        }
    }

    for addr in &config.announce {
        swarm.add_external_address(addr.clone());
    }

    let (command_tx, command_rx) = tokio::sync::mpsc::channel(COMMAND_CHANNEL_CAPACITY);
    let (event_tx, event_rx) = tokio::sync::mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let counters = std::sync::Arc::new(client::ClientCounters::default());
    counters.bandwidth.set(registry);
    let streams = swarm.behaviour().light.new_control();
    let mut event_loop = EventLoop::new(
        swarm,
        command_rx,
        event_tx,
        counters.clone(),
        config.record_validator,
    );
    event_loop.set_routing_filter(config.routing_filter.clone());
    event_loop.seed_known_peers(&config.known_peers);
    event_loop.dial_bootstrap(&config.bootstrap);
    event_loop.start_trusted(&trusted);
    event_loop.start_relays(&config.relays);
    Ok((
        Client::new(command_tx, counters).with_streams(streams),
        event_rx,
        event_loop,
    ))
}

/// The Swarm with rhizo's behaviour on `transport`.
fn build_swarm(
    config: &NetConfig,
    behaviour_config: &behaviour::BehaviourConfig,
    transport: Transport,
    registry: &mut libp2p::metrics::Registry,
) -> Result<libp2p::Swarm<behaviour::Behaviour>, NetError> {
    let idle = config.idle_connection_timeout;
    let build = |e: &dyn std::fmt::Display| NetError::Build(e.to_string());
    let builder = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone()).with_tokio();
    let swarm = match transport {
        Transport::Tcp => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| build(&e))?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| build(&e))?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay_client| {
                behaviour::Behaviour::new(key, behaviour_config, relay_client)
            })
            .map_err(|e| build(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
        Transport::Memory => {
            memory_swarm(config, behaviour_config, LinkDelay::default(), registry)?
        }
        Transport::MemoryDelayed(delay) => memory_swarm(config, behaviour_config, delay, registry)?,
    };
    Ok(swarm)
}

/// The Swarm on libp2p's memory transport, each connection delayed by `delay` (none when it is
/// zero; the two ends still exchange their 16-byte [`LinkDelay`] first).
fn memory_swarm(
    config: &NetConfig,
    behaviour_config: &behaviour::BehaviourConfig,
    delay: LinkDelay,
    registry: &mut libp2p::metrics::Registry,
) -> Result<libp2p::Swarm<behaviour::Behaviour>, NetError> {
    use libp2p::core::Transport as _;
    let idle = config.idle_connection_timeout;
    let build = |e: &dyn std::fmt::Display| NetError::Build(e.to_string());
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_other_transport(|key| {
                let noise = noise::Config::new(key)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
                Ok(libp2p::core::transport::MemoryTransport::default()
                    .and_then(move |conn, _| link_delay::handshake(conn, delay))
                    .upgrade(libp2p::core::upgrade::Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()))
            })
            .map_err(|e| build(&e))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| build(&e))?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay_client| {
                behaviour::Behaviour::new(key, behaviour_config, relay_client)
            })
            .map_err(|e| build(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
    )
}

fn listen_error(addr: &Multiaddr, e: libp2p::TransportError<std::io::Error>) -> NetError {
    match e {
        libp2p::TransportError::MultiaddrNotSupported(_) => NetError::Listen {
            addr: addr.clone(),
            reason: "this address is not supported; use /ip4/<ip>/tcp/<port> or \
                     /ip4/<ip>/udp/<port>/quic-v1"
                .into(),
        },
        libp2p::TransportError::Other(io) => {
            if is_addr_in_use(&io) {
                NetError::AddrInUse { addr: addr.clone() }
            } else {
                NetError::Listen {
                    addr: addr.clone(),
                    reason: io.to_string(),
                }
            }
        }
    }
}

/// libp2p's TCP transport binds listeners with `SO_REUSEPORT` (for hole punching), so a port
/// already taken by another node would be silently shared. A plain bind first tells the user.
fn ensure_port_free(addr: &Multiaddr) -> Result<(), NetError> {
    let mut iter = addr.iter();
    let ip: std::net::IpAddr = match iter.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    let result = match iter.next() {
        Some(Protocol::Tcp(port)) if port != 0 => std::net::TcpListener::bind((ip, port)).map(drop),
        Some(Protocol::Udp(port)) if port != 0 => std::net::UdpSocket::bind((ip, port)).map(drop),
        _ => return Ok(()),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(NetError::AddrInUse { addr: addr.clone() })
        }
        Err(e) => Err(NetError::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Walks an error chain looking for `AddrInUse`: the boxed transport wraps the socket error.
fn is_addr_in_use(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::AddrInUse {
                return true;
            }
            if let Some(inner) = io.get_ref()
                && is_addr_in_use(inner)
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The peer id at the end of a multiaddr (`…/p2p/<peer id>`), if any.
pub fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// A one-line, user-facing description of a dial error.
pub(crate) fn describe_dial_error(e: &DialError) -> String {
    match e {
        DialError::Transport(errors) => {
            let mut parts: Vec<String> = errors
                .iter()
                .map(|(addr, err)| format!("{addr}: {}", root_cause(err)))
                .collect();
            parts.truncate(3);
            if parts.is_empty() {
                "no address could be dialled".into()
            } else {
                parts.join("; ")
            }
        }
        DialError::WrongPeerId { obtained, .. } => {
            format!("the node there has peer id {obtained}, not the one in the address")
        }
        DialError::NoAddresses => "no known address".into(),
        other => other.to_string(),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl NetConfig {
    /// A configuration with `keypair` and everything else at its default: no listeners, no
    /// bootstrap or known peers, mDNS off, default limits, no bans or filters, no relaying, no
    /// UPnP, and a validator that stores no records. Set what differs with struct update syntax.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            known_peers: Vec::new(),
            mdns: false,
            announce: Vec::new(),
            agent_version: format!("rhizo/{}", env!("CARGO_PKG_VERSION")),
            batch_frames: true,
            idle_connection_timeout: DEFAULT_IDLE_CONNECTION_TIMEOUT,
            record_validator: std::sync::Arc::new(RefuseAllRecords),
            limits: NetLimits::default(),
            trusted: Vec::new(),
            banned_peers: Vec::new(),
            banned_cidrs: Vec::new(),
            ip_filter: None,
            routing_filter: None,
            disjoint_paths: true,
            relay_server: false,
            upnp: false,
            relays: Vec::new(),
        }
    }
}
