//! The [`EventLoop`]: the one owner of the Swarm, split into small state machines.
//!
//! ```text
//!  Client ──Command──▶ run() ─┬─ Command::Dht ──────▶ dht      ─▶ queries (DhtQueries)
//!                             ├─ Command::Request ──▶ requests (RequestTable: msg, mailbox, pex)
//!                             ├─ Dial / DialPeer ───▶ peers
//!                             └─ Guard / Nat / Gossip ▶ guard, nat, gossip
//!  Swarm ──SwarmEvent──▶ on_swarm_event (dispatch only) ─▶ the same modules
//!  every module ──NetEvent──▶ sink (EventSink: channel, bounded backlog, shed counters) ─▶ node
//! ```
//!
//! # Layout
//! - `dht`: DHT commands and Kademlia events.
//! - `queries`: `DhtQueries`, the caller's Kademlia queries in flight (sans-IO).
//! - `requests`: `RequestTable`, the outbound requests of the three request-response
//!   protocols, and their one send path.
//! - `peers`: `Peers`, dials, bootstrap, connections, identify, ping, mDNS.
//! - `sink`: `EventSink`, events up to the node without waiting.
//! - `provider_ledger`: the provider records kept for others, within bounds.
//! - `record_intake`: the DHT records others ask this node to keep.
//! - `get_checks`: the records our own lookups found, checked off this task so that a lookup
//!   ends once enough peers answered with a valid one.

mod dht;
mod get_checks;
mod peers;
mod provider_ledger;
mod queries;
mod record_intake;
mod requests;
mod sink;

use std::sync::Arc;

use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, Swarm, kad, request_response::ResponseChannel, swarm::SwarmEvent};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub(crate) use dht::DhtCommand;
pub use queries::MAX_PROVIDERS_FOUND;
pub(crate) use requests::ReqProtocol;

use crate::{
    Misbehaviour, RecordValidator,
    behaviour::{Behaviour, BehaviourEvent},
    client::{Command, NetInfo, NetStats},
};

/// Addresses remembered per peer in memory; the rest are dropped (oldest first).
const MAX_ADDRS_PER_PEER: usize = 8;
/// Events held by the loop itself while the node's event channel is full, oldest first. Past
/// this, new events are shed (counted in [`NetStats`]): the loop never waits for the node, so
/// the node can always get its commands answered (see the `sink` module).
pub const EVENT_BACKLOG_CAPACITY: usize = 1024;

/// How a peer was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverySource {
    /// From a bootstrap address.
    Bootstrap,
    /// From identify (the peer's own listen addresses).
    Identify,
    /// From a Kademlia routing-table update.
    Kademlia,
    /// From mDNS on the local network.
    Mdns,
}

/// What the network layer tells the node.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A peer sent a `/rhizo/msg/1` request; answer it with
    /// [`Client::respond`](crate::Client::respond) on `channel`.
    InboundMessage {
        /// The sending peer (authenticated by Noise/TLS).
        peer: PeerId,
        /// The request bytes.
        payload: Vec<u8>,
        /// Where the response goes.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A peer sent a `/rhizo/mailbox/1` request; answer it with
    /// [`Client::respond_mailbox`](crate::Client::respond_mailbox) on `channel`.
    InboundMailbox {
        /// The requesting peer (authenticated by Noise/TLS).
        peer: PeerId,
        /// The request bytes (at most [`MAX_MAILBOX_REQUEST_BYTES`](crate::MAX_MAILBOX_REQUEST_BYTES)).
        payload: Vec<u8>,
        /// Where the response goes.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A listener is bound to an address.
    Listening {
        /// The bound address.
        addr: Multiaddr,
    },
    /// A peer and its addresses were learnt.
    PeerDiscovered {
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
        /// How.
        source: DiscoverySource,
    },
    /// The first connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of the connection.
        addr: Multiaddr,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// An outgoing dial to a known peer failed.
    DialFailed {
        /// The peer.
        peer: PeerId,
        /// Why, in one line.
        error: String,
    },
    /// Every bootstrap dial given at start has finished.
    BootstrapFinished {
        /// Bootstrap addresses that connected.
        reached: usize,
        /// Those that did not, with the reason.
        failed: Vec<(Multiaddr, String)>,
    },
    /// A peer did something an honest peer does not (see [`Misbehaviour`]); the node decides
    /// whether to count it against the peer or ban it. Ordinary failures (timeouts of our own
    /// making, closed connections, unsupported protocols) are not reported.
    Misbehaved {
        /// The peer (authenticated by Noise/TLS).
        peer: PeerId,
        /// What it did.
        what: Misbehaviour,
    },
    /// A peer sent a Kademlia request (every `FIND_NODE`, `GET_VALUE`, `PUT_VALUE`, …), already
    /// answered by Kademlia; for the node's per-peer rate limit. Delivered with `try_send`:
    /// when the event channel is full the report is dropped rather than slowing the swarm.
    InboundKadRequest {
        /// The requesting peer.
        peer: PeerId,
    },
    /// A peer asked for a sample of known peers over `/rhizo/pex/1` (the request carries
    /// nothing); answer with [`Client::respond_pex`](crate::Client::respond_pex) on `channel`.
    InboundPex {
        /// The requesting peer (authenticated by Noise/TLS).
        peer: PeerId,
        /// Where the response goes.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A peer sent a `/rhizo/link/1` request (a device with the root key linking this one);
    /// answer with [`Client::respond_link`](crate::Client::respond_link) on `channel`.
    InboundLink {
        /// The requesting peer (authenticated by Noise/TLS).
        peer: PeerId,
        /// The request, at most [`MAX_LINK_MESSAGE_BYTES`](crate::MAX_LINK_MESSAGE_BYTES).
        payload: Vec<u8>,
        /// Where the response goes.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// Our answer to a `/rhizo/link/1` request of `peer` was written out in full (flushed to
    /// the connection): the device waiting to be linked may stop its link node now.
    LinkAnswered {
        /// The requesting peer.
        peer: PeerId,
    },
    /// A peer asked for chunks of a file over `/rhizo/file/1`; answer with
    /// [`Client::respond_file`](crate::Client::respond_file) on `channel`.
    InboundFile {
        /// The requesting peer (authenticated by Noise/TLS).
        peer: PeerId,
        /// The request, at most [`MAX_FILE_REQUEST_BYTES`](crate::MAX_FILE_REQUEST_BYTES).
        payload: Vec<u8>,
        /// Where the response goes.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A gossipsub message arrived on a subscribed topic. Check it and report a verdict with
    /// [`Client::report_validation`](crate::Client::report_validation); until then it is not
    /// forwarded. Delivered with `try_send`: when the event channel is full the message is
    /// ignored instead (see [`gossip`](crate::gossip)).
    GossipMessage {
        /// The peer that forwarded it to us (not necessarily its author).
        propagation_source: PeerId,
        /// Its id: the SHA-256 of `data`.
        message_id: Vec<u8>,
        /// The topic.
        topic: String,
        /// The data (at most [`MAX_GOSSIP_TRANSMIT_BYTES`](crate::MAX_GOSSIP_TRANSMIT_BYTES)).
        data: Vec<u8>,
    },
    /// AutoNAT changed its verdict on this node's reachability.
    ReachabilityChanged {
        /// `"public"`, `"private"` or `"unknown"`.
        nat_status: String,
    },
    /// A relay accepted our reservation (`accepted`), or the reservation was refused or lost
    /// (`!accepted`; the node tries again after a backoff).
    RelayReservation {
        /// The relay.
        relay: PeerId,
        /// Whether a reservation now holds.
        accepted: bool,
    },
}

/// Owns the Swarm and all pending state; driven by [`EventLoop::run`].
#[allow(missing_debug_implementations)] // Swarm has no Debug
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// Events up to the node, never awaited.
    sink: sink::EventSink,
    /// Counters the [`Client`](crate::Client) keeps on its side (commands it could not queue).
    client_counters: Arc<crate::client::ClientCounters>,
    /// Peers: addresses, connections, bootstrap dials.
    peers: peers::Peers,
    stats: NetStats,
    /// DHT records others ask this node to keep: rate limit, validation off this task, bounds.
    records: record_intake::RecordIntake,
    /// The DHT queries this node's callers started.
    queries: queries::DhtQueries<kad::QueryId>,
    /// The records our lookups found, being checked (a lookup ends on enough valid answers).
    get_checks: get_checks::GetChecks,
    /// The outbound msg / mailbox / pex requests (request ids are per protocol).
    requests: requests::RequestTable<(ReqProtocol, libp2p::request_response::OutboundRequestId)>,
    /// The provider records kept for other peers, and their bounds.
    provider_ledger: provider_ledger::ProviderLedger,
    /// NAT traversal: relay reservations, AutoNAT status, hole punches.
    nat: crate::nat::NatState,
    /// Connection guard: trusted-peer redials, misbehaviour bookkeeping.
    guard: crate::guard::GuardState,
    /// Which peers may stay in the Kademlia routing table (`None`: all).
    routing_filter: Option<crate::guard::RoutingFilter>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        client_counters: Arc<crate::client::ClientCounters>,
        validator: Arc<dyn RecordValidator>,
    ) -> Self {
        let local = *swarm.local_peer_id();
        Self {
            swarm,
            commands,
            sink: sink::EventSink::new(events),
            client_counters,
            peers: peers::Peers::default(),
            stats: NetStats::default(),
            get_checks: get_checks::GetChecks::new(validator.clone()),
            records: record_intake::RecordIntake::new(validator),
            queries: queries::DhtQueries::new(local, queries::MAX_PENDING_QUERIES),
            requests: requests::RequestTable::new(requests::MAX_PENDING_REQUESTS),
            provider_ledger: provider_ledger::ProviderLedger::new(
                provider_ledger::LedgerLimits::default(),
            ),
            nat: crate::nat::NatState::default(),
            guard: crate::guard::GuardState::default(),
            routing_filter: None,
        }
    }

    /// Keeps only the peers `filter` allows in the Kademlia routing table from now on.
    pub(crate) fn set_routing_filter(&mut self, filter: Option<crate::guard::RoutingFilter>) {
        self.routing_filter = filter;
    }

    /// Dials the trusted peers; they are redialled with backoff (see [`crate::guard`]).
    pub(crate) fn start_trusted(&mut self, trusted: &[(PeerId, Multiaddr)]) {
        self.guard.start_trusted(&mut self.swarm, trusted);
    }

    /// Reserves slots on the configured relays (see [`crate::nat`]).
    pub(crate) fn start_relays(&mut self, relays: &[Multiaddr]) {
        self.nat.start_relays(&mut self.swarm, relays);
    }

    /// Runs until [`Client::shutdown`](crate::Client::shutdown) is called or every
    /// [`Client`](crate::Client) is dropped.
    ///
    /// The loop never waits for the node: events the node has no room for yet wait in a bounded
    /// backlog the loop drains itself, so commands (the node's answers to inbound requests, bans)
    /// are always served, whatever the node is doing.
    pub async fn run(mut self) {
        self.maybe_report_bootstrap();
        loop {
            tokio::select! {
                // Local work first: answering the node beats taking new remote work.
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.close_all();
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                () = self.sink.drain_one(), if self.sink.has_backlog() => {}
                Some(done) = self.records.next_validated(), if self.records.validating() => {
                    self.records.finish(&mut self.swarm, &mut self.stats, done);
                }
                Some(done) = self.get_checks.next_checked(), if self.get_checks.checking() => {
                    if let Ok((id, valid)) = done {
                        let step = self.queries.on_checked(id, valid);
                        self.on_query_step(id, step);
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                () = self.requests.deadline_due() => self.expire_requests(),
                () = self.nat.retry_due() => self.nat.on_retry(&mut self.swarm),
                () = self.guard.redial_due() => self.guard.on_redial(&mut self.swarm),
            }
        }
        info!("network event loop stopped");
    }

    fn close_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Info(reply) => {
                let _ = reply.send(self.info());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_list());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.net_stats());
            }
            Command::Dial(addr, reply) => {
                let _ = reply.send(self.dial(addr));
            }
            Command::DialPeer { peer, addrs, reply } => {
                let _ = reply.send(self.dial_peer(peer, addrs));
            }
            Command::Bootstrap(reply) => {
                let _ = reply.send(self.swarm.behaviour_mut().kad.bootstrap().is_ok());
            }
            Command::Dht(command) => self.on_dht_command(command),
            Command::Request {
                protocol,
                peer,
                addrs,
                payload,
                reply,
            } => self.send_request(protocol, peer, addrs, payload, reply),
            Command::Respond {
                protocol,
                channel,
                payload,
            } => self.send_response(protocol, channel, payload),
            Command::Shutdown(reply) => {
                // Normally handled in `run`; answering here keeps the match total.
                self.close_all();
                let _ = reply.send(());
            }
            Command::Gossip(command) => crate::gossip::handle_command(&mut self.swarm, command),
            Command::Nat(command) => self.nat.handle_command(&mut self.swarm, command),
            Command::Guard(command) => self.guard.handle_command(&mut self.swarm, command),
        }
    }

    fn info(&mut self) -> NetInfo {
        let routing_table_peers = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum();
        NetInfo {
            peer_id: *self.swarm.local_peer_id(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            connected_peers: self.swarm.connected_peers().count(),
            routing_table_peers,
        }
    }

    fn net_stats(&self) -> NetStats {
        let mut stats = self.stats.clone();
        self.swarm.behaviour().guard.fill_stats(&mut stats);
        stats.provider_keys_held = self.provider_ledger.keys() as u64;
        stats.records_held = self.records.held() as u64;
        self.sink.fill_stats(&mut stats);
        self.client_counters.fill_stats(&mut stats);
        stats
    }

    /// The swarm-event dispatch: each event goes to the module that owns it.
    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(nat_event) = self.nat.on_swarm_event(&mut self.swarm, &event) {
            self.sink.emit(nat_event);
        }
        self.guard.on_swarm_event(&self.swarm, &event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.sink.emit(NetEvent::Listening { addr: address });
            }
            event @ (SwarmEvent::ConnectionEstablished { .. }
            | SwarmEvent::ConnectionClosed { .. }
            | SwarmEvent::OutgoingConnectionError { .. }) => self.on_connection_event(event),
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!(%error, "incoming connection failed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!(%error, "listener error");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(event) => self.on_identify(event),
            BehaviourEvent::Ping(event) => self.on_ping(event),
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Mdns(event) => self.on_mdns(event),
            BehaviourEvent::Msg(event) => self.on_request_event(ReqProtocol::Msg, event),
            BehaviourEvent::Mailbox(event) => self.on_request_event(ReqProtocol::Mailbox, event),
            BehaviourEvent::Pex(event) => self.on_request_event(ReqProtocol::Pex, event),
            BehaviourEvent::Link(event) => self.on_request_event(ReqProtocol::Link, event),
            BehaviourEvent::File(event) => self.on_request_event(ReqProtocol::File, event),
            BehaviourEvent::Guard(never) => match never {},
            BehaviourEvent::Light(()) => {}
            BehaviourEvent::Gossipsub(event) => {
                crate::gossip::on_event(&mut self.swarm, self.sink.sender(), event);
            }
            event @ (BehaviourEvent::Autonat(_)
            | BehaviourEvent::Relay(_)
            | BehaviourEvent::RelayClient(_)
            | BehaviourEvent::Dcutr(_)
            | BehaviourEvent::Upnp(_)) => {
                if let Some(nat_event) = self.nat.on_event(event) {
                    self.sink.emit(nat_event);
                }
            }
        }
    }
}
