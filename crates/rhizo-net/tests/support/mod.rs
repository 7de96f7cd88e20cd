//! The one harness of rhizo-net's integration tests: in-process nodes on loopback
//! (`127.0.0.1/tcp/0`, mDNS, UPnP and relays off unless asked for), waits on their events
//! bounded by [`WAIT`], and a stock libp2p Kademlia peer to attack them with.
//!
//! Each test file uses a part of it (`mod support;`), hence the `dead_code` allowance.
#![allow(dead_code)]

use std::{collections::VecDeque, future::Future, sync::Arc, time::Duration};

use libp2p::{
    Swarm, SwarmBuilder, kad,
    kad::store::{MemoryStore, MemoryStoreConfig},
    multiaddr::Protocol,
    noise, tcp, yamux,
};
use rhizo_net::{
    AcceptedRecord, Client, DiscoverySource, KAD_PROTOCOL, Keypair, Multiaddr, NetConfig, NetEvent,
    NetLimits, PeerId, RecordValidator, RefuseAllRecords,
};
use tokio::{sync::mpsc, task::JoinHandle};

/// Upper bound of every wait in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Limits that never get in the way on loopback, where every node shares one IP.
pub(crate) fn roomy() -> NetLimits {
    NetLimits {
        max_per_ip: 1000,
        ..NetLimits::default()
    }
}

/// Stores every record (the node's real validator is rhizo-core's business).
#[derive(Debug)]
pub(crate) struct AcceptAll;

impl RecordValidator for AcceptAll {
    fn validate(&self, _: &[u8], _: &[u8], _: Option<&[u8]>) -> Result<AcceptedRecord, String> {
        Ok(AcceptedRecord::default())
    }
}

/// How to start a test node; `..Opts::default()` for the rest.
pub(crate) struct Opts {
    pub(crate) keypair: Keypair,
    /// The listen address; `None`: no listener (like a node behind a NAT: it only dials out).
    pub(crate) listen: Option<Multiaddr>,
    pub(crate) bootstrap: Vec<Multiaddr>,
    pub(crate) announce: Vec<Multiaddr>,
    pub(crate) relay_server: bool,
    pub(crate) relays: Vec<Multiaddr>,
    pub(crate) limits: NetLimits,
    pub(crate) trusted: Vec<Multiaddr>,
    pub(crate) idle: Duration,
    pub(crate) validator: Arc<dyn RecordValidator>,
    /// TCP (the default), or the in-process memory transport (listen on `/memory/0`).
    pub(crate) transport: rhizo_net::Transport,
    /// Which peers may stay in the Kademlia routing table (`None`: all).
    pub(crate) routing_filter: Option<rhizo_net::RoutingFilter>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            keypair: Keypair::generate_ed25519(),
            listen: Some("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")),
            bootstrap: Vec::new(),
            announce: Vec::new(),
            relay_server: false,
            relays: Vec::new(),
            limits: roomy(),
            trusted: Vec::new(),
            idle: Duration::from_secs(60),
            validator: Arc::new(RefuseAllRecords),
            transport: rhizo_net::Transport::Tcp,
            routing_filter: None,
        }
    }
}

/// A running rhizo-net node.
pub(crate) struct Node {
    pub(crate) client: Client,
    pub(crate) events: mpsc::Receiver<NetEvent>,
    /// Events received while waiting for another (e.g. a trusted peer connecting before the
    /// listener is reported), in order; [`next`](Self::next) looks here first.
    pub(crate) backlog: VecDeque<NetEvent>,
    pub(crate) peer: PeerId,
    /// The bound listen address (empty without a listener).
    pub(crate) addr: Multiaddr,
    pub(crate) event_loop: JoinHandle<()>,
}

impl Node {
    /// Starts a node and, if it listens, waits until its listener is bound.
    pub(crate) async fn spawn(opts: Opts) -> Self {
        let peer = opts.keypair.public().to_peer_id();
        let listens = opts.listen.is_some();
        let config = NetConfig {
            listen: opts.listen.into_iter().collect(),
            bootstrap: opts.bootstrap,
            announce: opts.announce,
            agent_version: "rhizo-net-test".into(),
            idle_connection_timeout: opts.idle,
            record_validator: opts.validator,
            relay_server: opts.relay_server,
            relays: opts.relays,
            limits: opts.limits,
            trusted: opts.trusted,
            routing_filter: opts.routing_filter,
            ..NetConfig::new(opts.keypair)
        };
        let (client, events, event_loop) =
            rhizo_net::start_with_transport(config, opts.transport).expect("network starts");
        let mut node = Self {
            client,
            events,
            backlog: VecDeque::new(),
            peer,
            addr: Multiaddr::empty(),
            event_loop: tokio::spawn(event_loop.run()),
        };
        if !listens {
            return node;
        }
        let mut early = Vec::new();
        node.addr = node
            .next(|e| match e {
                NetEvent::Listening { addr } => Some(addr),
                other => {
                    early.push(other);
                    None
                }
            })
            .await;
        node.backlog.extend(early);
        node
    }

    /// A node with [`Opts::default`].
    pub(crate) async fn spawn_default() -> Self {
        Self::spawn(Opts::default()).await
    }

    /// Waits for the first event `pick` maps to `Some` (the backlog first), skipping the
    /// others.
    pub(crate) async fn next<T>(&mut self, mut pick: impl FnMut(NetEvent) -> Option<T>) -> T {
        while let Some(event) = self.backlog.pop_front() {
            if let Some(found) = pick(event) {
                return found;
            }
        }
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("event loop alive");
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("event within the bounded wait")
    }

    /// Hands the node's events (backlog first) to the caller, e.g. a task that drains them;
    /// [`next`](Self::next) sees none afterwards.
    pub(crate) fn take_events(&mut self) -> (VecDeque<NetEvent>, mpsc::Receiver<NetEvent>) {
        let (_, closed) = mpsc::channel(1);
        (
            std::mem::take(&mut self.backlog),
            std::mem::replace(&mut self.events, closed),
        )
    }

    /// `addr/p2p/peer`: a bootstrap or dial address.
    pub(crate) fn dialable(&self) -> Multiaddr {
        self.addr.clone().with(Protocol::P2p(self.peer))
    }

    /// Dials `other`; the outcome arrives as events. A dial Kademlia already has under way to
    /// the same peer makes this one a no-op, which is fine: that one's outcome is awaited.
    pub(crate) async fn dial(&self, other: &Self) {
        let _ = self.client.dial(other.dialable()).await;
    }

    /// Waits until `peer` connects.
    pub(crate) async fn connected(&mut self, peer: PeerId) {
        self.next(|e| match e {
            NetEvent::PeerConnected { peer: p, .. } if p == peer => Some(()),
            _ => None,
        })
        .await;
    }

    /// Waits until the last connection to `peer` closes.
    pub(crate) async fn disconnected(&mut self, peer: PeerId) {
        self.next(|e| match e {
            NetEvent::PeerDisconnected { peer: p } if p == peer => Some(()),
            _ => None,
        })
        .await;
    }

    /// Waits until a connection attempt to `peer` ends without a lasting connection: the dial
    /// failed (refused before the handshake), or the connection closed (refused after it).
    pub(crate) async fn turned_away(&mut self, peer: PeerId) {
        self.next(|e| match e {
            NetEvent::DialFailed { peer: p, .. } | NetEvent::PeerDisconnected { peer: p }
                if p == peer =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }

    /// Waits until identify has told this node about every peer in `peers` (identify is what
    /// puts a DHT peer into the routing table, just before the event is emitted).
    pub(crate) async fn await_identified(&mut self, peers: &[PeerId]) {
        let mut missing: Vec<PeerId> = peers.to_vec();
        while !missing.is_empty() {
            let peer = self
                .next(|e| match e {
                    NetEvent::PeerDiscovered {
                        peer,
                        source: DiscoverySource::Identify,
                        ..
                    } => Some(peer),
                    _ => None,
                })
                .await;
            missing.retain(|p| *p != peer);
        }
    }

    /// Open connections to `peer`, as the event loop counts them.
    pub(crate) async fn connections_to(&self, peer: PeerId) -> u32 {
        self.client
            .peers()
            .await
            .expect("peers")
            .iter()
            .find(|p| p.peer_id == peer)
            .map_or(0, |p| p.connections)
    }

    /// Connections the guard refused so far.
    pub(crate) async fn denied(&self) -> u64 {
        self.client.stats().await.expect("stats").connections_denied
    }

    /// Shuts the node down and waits (bounded) for its event loop to end.
    pub(crate) async fn stop(self) {
        let _ = self.client.shutdown().await;
        let _ = tokio::time::timeout(WAIT, self.event_loop).await;
    }
}

/// Polls `check` until it holds, bounded by [`WAIT`] (for state that has no event).
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let poll = async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if check().await {
                return;
            }
        }
    };
    if tokio::time::timeout(WAIT, poll).await.is_err() {
        panic!("{what}: not within the bounded wait");
    }
}

/// A stock libp2p Kademlia peer (not rhizo-net) on rhizo's protocol id, in client mode, that
/// knows the rhizo node and keeps whatever it is asked to (records and provided keys
/// unbounded).
pub(crate) fn stock_kad_peer(rhizo: PeerId, addr: Multiaddr) -> Swarm<kad::Behaviour<MemoryStore>> {
    let mut swarm =
        SwarmBuilder::with_existing_identity(libp2p::identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|key| {
                let peer = key.public().to_peer_id();
                let store = MemoryStore::with_config(
                    peer,
                    MemoryStoreConfig {
                        max_records: usize::MAX,
                        max_provided_keys: usize::MAX,
                        ..Default::default()
                    },
                );
                let mut kad =
                    kad::Behaviour::with_config(peer, store, kad::Config::new(KAD_PROTOCOL));
                kad.set_mode(Some(kad::Mode::Client));
                kad
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
    swarm.behaviour_mut().add_address(&rhizo, addr);
    swarm
}
