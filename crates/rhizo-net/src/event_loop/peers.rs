//! The peers side of the event loop: [`Peers`] (what identify and ping told about each peer,
//! open connection counts, the bootstrap dials and their report), the dials the node asks for,
//! and the swarm's connection, identify, ping and mDNS events.
//!
//! ```text
//!  start: seed_known_peers, dial_bootstrap ─▶ Peers.bootstrap (pending dials by connection)
//!  ConnectionEstablished / OutgoingConnectionError ─▶ bootstrap outcome ─▶ BootstrapFinished
//!  ConnectionEstablished / Closed ─▶ connection counts ─▶ PeerConnected / PeerDisconnected
//!  identify Received ─▶ addresses, agent (bounded) ─▶ Kademlia, PeerDiscovered
//! ```
//!
//! Bans, limits and trusted-peer redials are the [guard](crate::guard)'s.

use std::collections::{HashMap, HashSet};

use libp2p::{
    Multiaddr, PeerId, identify, mdns, ping,
    swarm::{
        ConnectionId, DialError, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tracing::{debug, info, warn};

use super::{DiscoverySource, EventLoop, MAX_ADDRS_PER_PEER, NetEvent};
use crate::behaviour::BehaviourEvent;
use crate::client::PeerInfo;
use crate::{KAD_PROTOCOL, MAX_INITIAL_PEER_BOOK_DIALS, NetError, describe_dial_error, peer_id_of};

/// Peers tracked in memory besides the routing table (identify/ping data of connected peers).
pub(crate) const MAX_TRACKED_PEERS: usize = 4096;
/// Self-lookups started on first contact with a DHT peer; later ones come from Kademlia's own
/// periodic bootstrap.
const SELF_LOOKUPS_ON_FIRST_CONTACT: usize = 3;
/// Characters of a peer's agent version kept.
const MAX_AGENT_VERSION_CHARS: usize = 64;

#[derive(Debug, Default)]
struct PeerState {
    connections: u32,
    addrs: Vec<Multiaddr>,
    agent_version: Option<String>,
    rtt_ms: Option<f64>,
}

/// The bootstrap dials given at start, until their one report.
#[derive(Debug, Default)]
struct BootstrapDials {
    /// Dials still under way, by connection id.
    pending: HashMap<ConnectionId, Multiaddr>,
    reached: usize,
    failed: Vec<(Multiaddr, String)>,
    /// Whether a report is still owed to the node.
    report_owed: bool,
}

/// What the event loop knows about peers, bounded ([`MAX_TRACKED_PEERS`] peers,
/// [`MAX_ADDRS_PER_PEER`] addresses each).
#[derive(Debug, Default)]
pub(crate) struct Peers {
    tracked: HashMap<PeerId, PeerState>,
    bootstrap: BootstrapDials,
    /// Peers for which a self-lookup was already started on first contact.
    bootstrapped_via: HashSet<PeerId>,
}

impl Peers {
    /// Remembers `addrs` for `peer`, newest first; makes room by forgetting a peer with no
    /// open connection (connected peers stay; with no room, nothing is remembered).
    pub(crate) fn remember_addrs(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if !self.tracked.contains_key(&peer) && self.tracked.len() >= MAX_TRACKED_PEERS {
            let victim = self
                .tracked
                .iter()
                .find(|(_, s)| s.connections == 0)
                .map(|(p, _)| *p);
            match victim {
                Some(v) => {
                    self.tracked.remove(&v);
                }
                None => return,
            }
        }
        let state = self.tracked.entry(peer).or_default();
        for addr in addrs {
            if let Some(pos) = state.addrs.iter().position(|a| a == addr) {
                state.addrs.remove(pos);
            }
            state.addrs.insert(0, addr.clone());
        }
        state.addrs.truncate(MAX_ADDRS_PER_PEER);
    }

    /// The addresses identify told for `peer` (none if untracked).
    pub(crate) fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.tracked
            .get(peer)
            .map(|s| s.addrs.clone())
            .unwrap_or_default()
    }

    fn set_connections(&mut self, peer: PeerId, connections: u32) {
        if let Some(state) = self.tracked.get_mut(&peer) {
            state.connections = connections;
        }
    }

    /// Whether a self-lookup through `peer` is due: its first contact, for the first
    /// [`SELF_LOOKUPS_ON_FIRST_CONTACT`] DHT peers.
    fn first_contact(&mut self, peer: PeerId) -> bool {
        self.bootstrapped_via.len() < SELF_LOOKUPS_ON_FIRST_CONTACT
            && self.bootstrapped_via.insert(peer)
    }

    /// The bootstrap report, once every bootstrap dial has finished (only once).
    fn bootstrap_report(&mut self) -> Option<NetEvent> {
        let dials = &mut self.bootstrap;
        if !dials.report_owed || !dials.pending.is_empty() {
            return None;
        }
        dials.report_owed = false;
        Some(NetEvent::BootstrapFinished {
            reached: dials.reached,
            failed: std::mem::take(&mut dials.failed),
        })
    }

    /// Merges what is tracked into `out` (the routing table's peers), skipping peers neither
    /// connected nor in the table.
    fn fill_peer_list(&self, out: &mut HashMap<PeerId, PeerInfo>) {
        for (peer, state) in &self.tracked {
            if state.connections == 0 && !out.contains_key(peer) {
                continue;
            }
            let info = out.entry(*peer).or_insert_with(|| PeerInfo {
                peer_id: *peer,
                connections: 0,
                in_routing_table: false,
                addrs: Vec::new(),
                agent_version: None,
                rtt_ms: None,
            });
            info.connections = state.connections;
            info.agent_version.clone_from(&state.agent_version);
            info.rtt_ms = state.rtt_ms;
            for addr in &state.addrs {
                if !info.addrs.contains(addr) {
                    info.addrs.push(addr.clone());
                }
            }
        }
    }
}

impl EventLoop {
    /// Hands the peer book to Kademlia and dials the best few entries.
    pub(crate) fn seed_known_peers(&mut self, known: &[(PeerId, Vec<Multiaddr>)]) {
        let local = *self.swarm.local_peer_id();
        for (i, (peer, addrs)) in known.iter().enumerate() {
            if *peer == local || addrs.is_empty() {
                continue;
            }
            for addr in addrs.iter().take(MAX_ADDRS_PER_PEER) {
                let kad = &mut self.swarm.behaviour_mut().kad;
                kad.add_address(peer, addr.clone());
            }
            if i < MAX_INITIAL_PEER_BOOK_DIALS {
                let opts = DialOpts::peer_id(*peer).addresses(addrs.clone()).build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, error = %e, "could not start dial to peer-book entry");
                }
            }
        }
    }

    /// Starts dialling every bootstrap address; [`NetEvent::BootstrapFinished`] reports the
    /// outcome once all of them have connected or failed.
    pub(crate) fn dial_bootstrap(&mut self, addrs: &[Multiaddr]) {
        let local = *self.swarm.local_peer_id();
        for addr in addrs {
            let peer = peer_id_of(addr);
            if peer == Some(local) {
                continue; // our own address in a shared config file
            }
            if let Some(peer) = peer {
                let kad = &mut self.swarm.behaviour_mut().kad;
                kad.add_address(&peer, addr.clone());
            }
            let opts = dial_opts(addr);
            let id = opts.connection_id();
            let dials = &mut self.peers.bootstrap;
            match self.swarm.dial(opts) {
                Ok(()) => {
                    dials.pending.insert(id, addr.clone());
                }
                Err(e) => dials.failed.push((addr.clone(), describe_dial_error(&e))),
            }
            dials.report_owed = true;
        }
    }

    /// Emits the bootstrap report if it is due.
    pub(super) fn maybe_report_bootstrap(&mut self) {
        if let Some(report) = self.peers.bootstrap_report() {
            self.sink.emit(report);
        }
    }

    /// Starts a dial to `addr`; returns once it is under way.
    pub(super) fn dial(&mut self, addr: Multiaddr) -> Result<(), NetError> {
        self.swarm
            .dial(dial_opts(&addr))
            .map_err(|e| NetError::Dial {
                reason: describe_dial_error(&e),
                addr,
            })
    }

    /// Starts a dial to `peer` unless it is connected or being dialled; with no address known
    /// anywhere, a DHT lookup of the peer finds one (see [`Client::dial_peer`]).
    ///
    /// [`Client::dial_peer`]: crate::Client::dial_peer
    pub(super) fn dial_peer(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), NetError> {
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .addresses(addrs.into_iter().take(MAX_ADDRS_PER_PEER).collect())
            .build();
        let error = match self.swarm.dial(opts) {
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => return Ok(()),
            // No behaviour knows an address: ask the DHT for the peer (a lookup of its own id
            // reaches it if anyone knows where it is), and dial it from there.
            Err(DialError::NoAddresses) if self.search_peer(peer) => return Ok(()),
            Err(e) => e,
        };
        Err(NetError::Dial {
            addr: Multiaddr::empty().with(libp2p::multiaddr::Protocol::P2p(peer)),
            reason: describe_dial_error(&error),
        })
    }

    /// Connected peers and routing-table peers, sorted by peer id.
    pub(super) fn peer_list(&mut self) -> Vec<PeerInfo> {
        let mut out: HashMap<PeerId, PeerInfo> = HashMap::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                out.insert(
                    peer,
                    PeerInfo {
                        peer_id: peer,
                        connections: 0,
                        in_routing_table: true,
                        addrs: entry.node.value.iter().cloned().collect(),
                        agent_version: None,
                        rtt_ms: None,
                    },
                );
            }
        }
        self.peers.fill_peer_list(&mut out);
        let mut list: Vec<PeerInfo> = out.into_values().collect();
        list.sort_by_key(|p| p.peer_id.to_base58());
        list
    }

    /// The connection events of the swarm.
    pub(super) fn on_connection_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.stats.connections_established += 1;
                if endpoint.is_listener() {
                    self.stats.inbound_connections += 1;
                }
                self.peers.remember_addrs(peer_id, &[]);
                self.peers.set_connections(peer_id, num_established.get());
                self.on_bootstrap_connected(peer_id, connection_id, endpoint.is_dialer());
                if num_established.get() == 1 {
                    let addr = endpoint.get_remote_address().clone();
                    debug!(%peer_id, %addr, "peer connected");
                    let peer = peer_id;
                    self.sink.emit(NetEvent::PeerConnected { peer, addr });
                }
                self.maybe_report_bootstrap();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.stats.connections_closed += 1;
                self.peers.set_connections(peer_id, num_established);
                if num_established == 0 {
                    debug!(%peer_id, "peer disconnected");
                    self.sink.emit(NetEvent::PeerDisconnected { peer: peer_id });
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => self.on_dial_failed(connection_id, peer_id, &error),
            _ => {}
        }
    }

    fn on_bootstrap_connected(&mut self, peer: PeerId, connection: ConnectionId, dialer: bool) {
        let Some(addr) = self.peers.bootstrap.pending.remove(&connection) else {
            return;
        };
        info!(%peer, bootstrap_addr = %addr, "connected to bootstrap peer");
        self.peers.bootstrap.reached += 1;
        if dialer {
            let kad = &mut self.swarm.behaviour_mut().kad;
            kad.add_address(&peer, addr.clone());
        }
        self.sink.emit(NetEvent::PeerDiscovered {
            peer,
            addrs: vec![addr],
            source: DiscoverySource::Bootstrap,
        });
    }

    fn on_dial_failed(
        &mut self,
        connection: ConnectionId,
        peer: Option<PeerId>,
        error: &DialError,
    ) {
        self.stats.dial_failures += 1;
        let reason = describe_dial_error(error);
        if let Some(addr) = self.peers.bootstrap.pending.remove(&connection) {
            warn!(%addr, %reason, "bootstrap peer unreachable");
            self.peers.bootstrap.failed.push((addr, reason.clone()));
            self.maybe_report_bootstrap();
        }
        if let Some(peer) = peer
            && !matches!(error, DialError::DialPeerConditionFalse(_))
        {
            debug!(%peer, %reason, "dial failed");
            let error = reason;
            self.sink.emit(NetEvent::DialFailed { peer, error });
        }
    }

    pub(super) fn on_identify(&mut self, event: identify::Event) {
        match event {
            identify::Event::Received { peer_id, info, .. } => {
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .cloned()
                    .collect();
                if info.protocols.contains(&KAD_PROTOCOL) {
                    let kad = &mut self.swarm.behaviour_mut().kad;
                    for addr in &addrs {
                        kad.add_address(&peer_id, addr.clone());
                    }
                    // First contact with a DHT peer: look ourselves up through it, which is
                    // how a new node learns the rest of the network and the network learns it.
                    if self.peers.first_contact(peer_id) {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
                self.peers.remember_addrs(peer_id, &addrs);
                if let Some(state) = self.peers.tracked.get_mut(&peer_id) {
                    let agent = info.agent_version.chars().take(MAX_AGENT_VERSION_CHARS);
                    state.agent_version = Some(agent.collect());
                }
                self.stats.discoveries += 1;
                self.sink.emit(NetEvent::PeerDiscovered {
                    peer: peer_id,
                    addrs,
                    source: DiscoverySource::Identify,
                });
            }
            identify::Event::Error { peer_id, error, .. } => {
                if let Some(what) = crate::guard::identify_misbehaviour(&error) {
                    let peer = peer_id;
                    self.sink.emit(NetEvent::Misbehaved { peer, what });
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_ping(&mut self, event: ping::Event) {
        if let Ok(rtt) = event.result
            && let Some(state) = self.peers.tracked.get_mut(&event.peer)
        {
            state.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
        }
    }

    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(list) = event else {
            return;
        };
        let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, addr) in list {
            let addrs = by_peer.entry(peer).or_default();
            if addrs.len() < MAX_ADDRS_PER_PEER {
                addrs.push(addr);
            }
        }
        for (peer, addrs) in by_peer {
            info!(%peer, "discovered on the local network (mDNS)");
            for addr in &addrs {
                let kad = &mut self.swarm.behaviour_mut().kad;
                kad.add_address(&peer, addr.clone());
            }
            if !self.swarm.is_connected(&peer) {
                let opts = DialOpts::peer_id(peer).addresses(addrs.clone()).build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, error = %e, "mDNS dial not started");
                }
            }
            self.stats.discoveries += 1;
            let source = DiscoverySource::Mdns;
            self.sink.emit(NetEvent::PeerDiscovered {
                peer,
                addrs,
                source,
            });
        }
    }
}

/// How to dial `addr`: to the peer it names, or to whoever answers there.
fn dial_opts(addr: &Multiaddr) -> DialOpts {
    match peer_id_of(addr) {
        Some(peer) => DialOpts::peer_id(peer)
            .addresses(vec![addr.clone()])
            .build(),
        None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}")
            .parse()
            .expect("multiaddr")
    }

    #[test]
    fn addresses_are_newest_first_and_bounded_per_peer() {
        let mut peers = Peers::default();
        let peer = PeerId::random();
        let many: Vec<Multiaddr> = (1..=20).map(addr).collect();
        peers.remember_addrs(peer, &many);
        peers.remember_addrs(peer, &[addr(3)]);
        let kept = peers.addrs_of(&peer);
        assert_eq!(kept.len(), MAX_ADDRS_PER_PEER);
        assert_eq!(kept[0], addr(3));
        assert_eq!(kept[1], addr(20));
    }

    #[test]
    fn a_full_table_forgets_a_disconnected_peer_and_keeps_connected_ones() {
        let mut peers = Peers::default();
        let connected: Vec<PeerId> = (0..MAX_TRACKED_PEERS).map(|_| PeerId::random()).collect();
        for peer in &connected {
            peers.remember_addrs(*peer, &[]);
            peers.set_connections(*peer, 1);
        }
        let newcomer = PeerId::random();
        peers.remember_addrs(newcomer, &[addr(1)]);
        assert!(peers.addrs_of(&newcomer).is_empty(), "no room: not tracked");
        peers.set_connections(connected[0], 0);
        peers.remember_addrs(newcomer, &[addr(1)]);
        assert_eq!(peers.addrs_of(&newcomer), vec![addr(1)]);
        assert_eq!(peers.tracked.len(), MAX_TRACKED_PEERS);
        assert!(!peers.tracked.contains_key(&connected[0]));
    }

    #[test]
    fn the_bootstrap_report_comes_once_after_the_last_dial() {
        let mut peers = Peers::default();
        assert!(peers.bootstrap_report().is_none(), "nothing owed");
        let id = ConnectionId::new_unchecked(1);
        peers.bootstrap.pending.insert(id, addr(1));
        peers.bootstrap.report_owed = true;
        assert!(peers.bootstrap_report().is_none(), "a dial is under way");
        peers.bootstrap.pending.remove(&id);
        peers.bootstrap.reached += 1;
        match peers.bootstrap_report() {
            Some(NetEvent::BootstrapFinished { reached, failed }) => {
                assert_eq!(reached, 1);
                assert!(failed.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(peers.bootstrap_report().is_none(), "reported once");
    }

    #[test]
    fn self_lookups_run_on_the_first_contacts_only() {
        let mut peers = Peers::default();
        let first = PeerId::random();
        assert!(peers.first_contact(first));
        assert!(!peers.first_contact(first));
        for _ in 1..SELF_LOOKUPS_ON_FIRST_CONTACT {
            assert!(peers.first_contact(PeerId::random()));
        }
        assert!(!peers.first_contact(PeerId::random()));
    }
}
