//! The [`EventLoop`]: the one owner of the Swarm.

mod provider_ledger;
mod record_intake;

use std::collections::{HashMap, HashSet, VecDeque};

use std::sync::Arc;

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, identify,
    kad::{self, RecordKey, store::RecordStore},
    mdns, ping,
    request_response::{self, OutboundRequestId, ResponseChannel},
    swarm::{ConnectionId, SwarmEvent, dial_opts::DialOpts},
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::{
    KAD_PROTOCOL, MAX_INITIAL_PEER_BOOK_DIALS, MAX_MAILBOX_REQUEST_BYTES, Misbehaviour, NetError,
    RecordValidator,
    behaviour::{Behaviour, BehaviourEvent, MAX_OWN_PROVIDED_KEYS, MAX_PROVIDER_KEY_BYTES},
    client::{ClosestPeer, Command, NetInfo, NetStats, PeerInfo, SendError},
    describe_dial_error,
    msg_protocol::FrameCodec,
    peer_id_of,
};

/// Addresses remembered per peer in memory; the rest are dropped (oldest first).
const MAX_ADDRS_PER_PEER: usize = 8;
/// Peers tracked in memory besides the routing table (identify/ping data of connected peers).
const MAX_TRACKED_PEERS: usize = 4096;

/// Self-lookups started on first contact with a DHT peer; later ones come from Kademlia's own
/// periodic bootstrap.
const SELF_LOOKUPS_ON_FIRST_CONTACT: usize = 3;
/// Distinct values collected for one DHT get; more are ignored.
const MAX_RECORDS_PER_GET: usize = 16;
/// DHT queries and message requests in flight from this node's own callers.
const MAX_PENDING_REQUESTS: usize = 1024;
/// Events held by the loop itself while the node's event channel is full, oldest first. Past
/// this, new events are shed (counted in [`NetStats`]): the loop never waits for the node, so
/// the node can always get its commands answered (see [`EventLoop::emit`]).
pub const EVENT_BACKLOG_CAPACITY: usize = 1024;
/// Peers returned by one closest-peers lookup (Kademlia's own cap, `K_VALUE`).
const MAX_CLOSEST_PEERS: usize = 20;
/// Providers one provider lookup returns at most (the nodes it asks keep up to 20 each, not
/// necessarily the same ones); the lookup ends early once it has found this many.
pub const MAX_PROVIDERS_FOUND: usize = 64;

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
        /// The request bytes (at most [`MAX_MAILBOX_REQUEST_BYTES`]).
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

/// A DHT get in flight: where the answer goes, and the distinct values found so far.
type PendingGet = (oneshot::Sender<Vec<Vec<u8>>>, Vec<Vec<u8>>);
/// A closest-peers lookup in flight: the record key it targets, and where the answer goes.
type PendingClosest = (RecordKey, oneshot::Sender<Result<Vec<ClosestPeer>, String>>);
/// A provider lookup in flight: where the answer goes, and the providers found so far.
type PendingProviders = (
    oneshot::Sender<Result<HashSet<PeerId>, String>>,
    HashSet<PeerId>,
);
/// Where the response to an outbound request goes.
type PendingResponse = oneshot::Sender<Result<Vec<u8>, SendError>>;

/// The request-response protocols, which share their handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqProtocol {
    /// `/rhizo/msg/1`.
    Msg,
    /// `/rhizo/mailbox/1`.
    Mailbox,
    /// `/rhizo/pex/1`.
    Pex,
}

impl ReqProtocol {
    /// The protocol id, as the guard's bookkeeping keys it.
    const fn name(self) -> &'static str {
        match self {
            Self::Msg => "/rhizo/msg/1",
            Self::Mailbox => crate::MAILBOX_PROTOCOL,
            Self::Pex => crate::PEX_PROTOCOL,
        }
    }
}

#[derive(Debug, Default)]
struct PeerState {
    connections: u32,
    addrs: Vec<Multiaddr>,
    agent_version: Option<String>,
    rtt_ms: Option<f64>,
}

/// Owns the Swarm and all pending state; driven by [`EventLoop::run`].
#[allow(missing_debug_implementations)] // Swarm has no Debug
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    /// Events waiting for room in `events`, oldest first (at most [`EVENT_BACKLOG_CAPACITY`]).
    backlog: VecDeque<NetEvent>,
    /// Counters the [`Client`](crate::Client) keeps on its side (commands it could not queue).
    client_counters: Arc<crate::client::ClientCounters>,
    peers: HashMap<PeerId, PeerState>,
    /// Bootstrap dials still under way, by connection id.
    bootstrap_pending: HashMap<ConnectionId, Multiaddr>,
    bootstrap_reached: usize,
    bootstrap_failed: Vec<(Multiaddr, String)>,
    /// Whether a bootstrap report is still owed to the node.
    bootstrap_report_owed: bool,
    /// Peers for which a self-lookup was already started on first contact.
    bootstrapped_via: HashSet<PeerId>,
    /// Peers handed to Kademlia from the peer book: their routing-table entries are not news
    /// (reporting them would refresh `last_seen` of peers that may be long gone).
    seeded: HashSet<PeerId>,
    stats: NetStats,
    /// DHT records others ask this node to keep: rate limit, validation off this task, bounds.
    records: record_intake::RecordIntake,
    pending_puts: HashMap<kad::QueryId, oneshot::Sender<Result<usize, String>>>,
    /// How many peers a `put_record_to` query targets (its success count when all stored it).
    put_targets: HashMap<kad::QueryId, usize>,
    pending_gets: HashMap<kad::QueryId, PendingGet>,
    pending_closest: HashMap<kad::QueryId, PendingClosest>,
    /// Provider announcements in flight.
    pending_provides: HashMap<kad::QueryId, oneshot::Sender<Result<usize, String>>>,
    /// Provider lookups in flight.
    pending_providers: HashMap<kad::QueryId, PendingProviders>,
    /// Lookups of a peer's addresses started by a dial that had none, and the peer to dial.
    pending_peer_searches: HashMap<kad::QueryId, PeerId>,
    /// The provider records kept for other peers, and their bounds.
    provider_ledger: provider_ledger::ProviderLedger,
    /// Outbound `/rhizo/msg/1` requests. Request ids are per protocol, hence one map each.
    pending_messages: HashMap<OutboundRequestId, PendingResponse>,
    /// Outbound `/rhizo/mailbox/1` requests.
    pending_mailbox: HashMap<OutboundRequestId, PendingResponse>,
    /// NAT traversal: relay reservations, AutoNAT status, hole punches.
    nat: crate::nat::NatState,
    /// Connection guard: trusted-peer redials, misbehaviour bookkeeping.
    guard: crate::guard::GuardState,
    /// Outbound `/rhizo/pex/1` requests.
    pending_pex: HashMap<OutboundRequestId, PendingResponse>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        client_counters: Arc<crate::client::ClientCounters>,
        validator: Arc<dyn RecordValidator>,
    ) -> Self {
        Self {
            swarm,
            commands,
            events,
            backlog: VecDeque::new(),
            client_counters,
            peers: HashMap::new(),
            bootstrap_pending: HashMap::new(),
            bootstrap_reached: 0,
            bootstrap_failed: Vec::new(),
            bootstrap_report_owed: false,
            bootstrapped_via: HashSet::new(),
            seeded: HashSet::new(),
            stats: NetStats::default(),
            records: record_intake::RecordIntake::new(validator),
            pending_puts: HashMap::new(),
            put_targets: HashMap::new(),
            pending_gets: HashMap::new(),
            pending_closest: HashMap::new(),
            pending_provides: HashMap::new(),
            pending_providers: HashMap::new(),
            pending_peer_searches: HashMap::new(),
            provider_ledger: provider_ledger::ProviderLedger::new(
                provider_ledger::LedgerLimits::default(),
            ),
            pending_messages: HashMap::new(),
            pending_mailbox: HashMap::new(),
            nat: crate::nat::NatState::default(),
            guard: crate::guard::GuardState::default(),
            pending_pex: HashMap::new(),
        }
    }

    /// Dials the trusted peers; they are redialled with backoff (see [`crate::guard`]).
    pub(crate) fn start_trusted(&mut self, trusted: &[(PeerId, Multiaddr)]) {
        self.guard.start_trusted(&mut self.swarm, trusted);
    }

    /// Reserves slots on the configured relays (see [`crate::nat`]).
    pub(crate) fn start_relays(&mut self, relays: &[Multiaddr]) {
        self.nat.start_relays(&mut self.swarm, relays);
    }

    /// Why a provider announcement or lookup for `key` cannot start now, if it cannot: a key
    /// of 0 or more than [`MAX_PROVIDER_KEY_BYTES`] bytes, or too many DHT operations in flight.
    fn provider_request_refused(&self, key: &[u8]) -> Option<String> {
        if key.is_empty() || key.len() > MAX_PROVIDER_KEY_BYTES {
            return Some(format!(
                "a provider key has 1 to {MAX_PROVIDER_KEY_BYTES} bytes, not {}",
                key.len()
            ));
        }
        (self.pending_requests() >= MAX_PENDING_REQUESTS)
            .then(|| "too many DHT operations in flight".to_string())
    }

    fn pending_requests(&self) -> usize {
        self.pending_puts.len()
            + self.pending_gets.len()
            + self.pending_closest.len()
            + self.pending_provides.len()
            + self.pending_providers.len()
            + self.pending_peer_searches.len()
            + self.pending_messages.len()
            + self.pending_mailbox.len()
            + self.pending_pex.len()
    }

    /// Hands the peer book to Kademlia and dials the best few entries.
    pub(crate) fn seed_known_peers(&mut self, known: &[(PeerId, Vec<Multiaddr>)]) {
        let local = *self.swarm.local_peer_id();
        for (i, (peer, addrs)) in known.iter().enumerate() {
            if *peer == local || addrs.is_empty() {
                continue;
            }
            for addr in addrs.iter().take(MAX_ADDRS_PER_PEER) {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(peer, addr.clone());
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
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
            let opts = match peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .build(),
                None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            };
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.bootstrap_pending.insert(id, addr.clone());
                }
                Err(e) => self
                    .bootstrap_failed
                    .push((addr.clone(), describe_dial_error(&e))),
            }
            self.bootstrap_report_owed = true;
        }
    }

    /// Runs until a [`Command::Shutdown`] arrives or every [`Client`](crate::Client) is dropped.
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
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                // An owned permit: a borrowed one would hold `self.events` across every arm.
                permit = self.events.clone().reserve_owned(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => self.backlog.clear(), // the node stopped listening
                },
                Some(done) = self.records.next_validated(), if self.records.validating() => {
                    self.records.finish(&mut self.swarm, &mut self.stats, done);
                }
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
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

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Info(reply) => {
                let _ = reply.send(self.info());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_list());
            }
            Command::Stats(reply) => {
                let mut stats = self.stats.clone();
                self.swarm.behaviour().guard.fill_stats(&mut stats);
                stats.provider_keys_held = self.provider_ledger.keys() as u64;
                stats.records_held = self.records.held() as u64;
                stats.event_backlog = self.backlog.len() as u64;
                self.client_counters.fill_stats(&mut stats);
                let _ = reply.send(stats);
            }
            Command::Dial(addr, reply) => {
                let opts = match peer_id_of(&addr) {
                    Some(peer) => DialOpts::peer_id(peer)
                        .addresses(vec![addr.clone()])
                        .build(),
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let result = self.swarm.dial(opts).map_err(|e| NetError::Dial {
                    addr,
                    reason: describe_dial_error(&e),
                });
                let _ = reply.send(result);
            }
            Command::Bootstrap(reply) => {
                let _ = reply.send(self.swarm.behaviour_mut().kad.bootstrap().is_ok());
            }
            Command::PutRecord { key, value, reply } => {
                if self.pending_requests() >= MAX_PENDING_REQUESTS {
                    let _ = reply.send(Err("too many DHT operations in flight".into()));
                    return;
                }
                let record = kad::Record::new(RecordKey::new(&key), value);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, kad::Quorum::One)
                {
                    Ok(id) => {
                        self.pending_puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(format!("cannot store locally: {e:?}")));
                    }
                }
            }
            Command::GetRecords { key, reply } => {
                if self.pending_requests() >= MAX_PENDING_REQUESTS {
                    let _ = reply.send(Vec::new());
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(RecordKey::new(&key));
                self.pending_gets.insert(id, (reply, Vec::new()));
            }
            Command::PutRecordTo {
                key,
                value,
                peers,
                reply,
            } => {
                if self.pending_requests() >= MAX_PENDING_REQUESTS {
                    let _ = reply.send(Err("too many DHT operations in flight".into()));
                    return;
                }
                let local = *self.swarm.local_peer_id();
                let mut targets: Vec<PeerId> = Vec::with_capacity(peers.len());
                for peer in peers {
                    if peer != local && !targets.contains(&peer) {
                        targets.push(peer);
                    }
                }
                if targets.is_empty() {
                    let _ = reply.send(Err("no peer to store the record on".into()));
                    return;
                }
                // As `put_record` does: this node is the publisher, and the expiry is left to
                // Kademlia, which applies the configured record TTL.
                let mut record = kad::Record::new(RecordKey::new(&key), value);
                record.publisher = Some(local);
                // Every target must answer (or fail) before the query ends, so none of the
                // stores still being dialled is dropped and the count is real.
                let count = targets.len();
                let id = self.swarm.behaviour_mut().kad.put_record_to(
                    record,
                    targets.into_iter(),
                    kad::Quorum::All,
                );
                self.pending_puts.insert(id, reply);
                self.put_targets.insert(id, count);
            }
            Command::LocalRecord { key, reply } => {
                let now = std::time::Instant::now();
                let value = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .get(&RecordKey::new(&key))
                    .filter(|r| !r.is_expired(now))
                    .map(|r| r.value.clone());
                let _ = reply.send(value);
            }
            Command::LocalCloserPeers { key, limit, reply } => {
                let target = kad::KBucketKey::new(RecordKey::new(&key));
                let ours = kad::KBucketKey::from(*self.swarm.local_peer_id()).distance(&target);
                let closer = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_closest_local_peers(&target)
                    .take(limit)
                    .take_while(|peer| peer.distance(&target) < ours)
                    .count();
                let _ = reply.send(closer);
            }
            Command::ClosestPeers { key, reply } => {
                if self.pending_requests() >= MAX_PENDING_REQUESTS {
                    let _ = reply.send(Err("too many DHT operations in flight".into()));
                    return;
                }
                let kad = &mut self.swarm.behaviour_mut().kad;
                if kad.kbuckets().all(|b| b.num_entries() == 0) {
                    let _ = reply.send(Ok(Vec::new()));
                    return;
                }
                // The raw key bytes as the target: Kademlia hashes them exactly as it hashes
                // `RecordKey::new(&key)`, so the distance is the one records under `key` use.
                let id = kad.get_closest_peers(key.clone());
                self.pending_closest
                    .insert(id, (RecordKey::new(&key), reply));
            }
            Command::StartProviding { key, reply } => {
                if let Some(refusal) = self.provider_request_refused(&key) {
                    let _ = reply.send(Err(refusal));
                    return;
                }
                let key = RecordKey::new(&key);
                let kad = &mut self.swarm.behaviour_mut().kad;
                let provided = kad.store_mut().provided().count();
                if provided >= MAX_OWN_PROVIDED_KEYS
                    && !kad.store_mut().provided().any(|r| r.key == key)
                {
                    let _ = reply.send(Err(format!(
                        "this node provides {MAX_OWN_PROVIDED_KEYS} keys already, the most it \
                         announces; stop providing one first"
                    )));
                    return;
                }
                match kad.start_providing(key) {
                    Ok(id) => {
                        self.pending_provides.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(format!("cannot keep the provider record: {e:?}")));
                    }
                }
            }
            Command::StopProviding { key } => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&RecordKey::new(&key));
            }
            Command::GetProviders { key, reply } => {
                if let Some(refusal) = self.provider_request_refused(&key) {
                    let _ = reply.send(Err(refusal));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&key));
                self.pending_providers.insert(id, (reply, HashSet::new()));
            }
            Command::DialPeer { peer, addrs, reply } => {
                let opts = DialOpts::peer_id(peer)
                    .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                    .addresses(addrs.into_iter().take(MAX_ADDRS_PER_PEER).collect())
                    .build();
                let result = match self.swarm.dial(opts) {
                    Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => Ok(()),
                    // No behaviour knows an address: ask the DHT for the peer (a lookup of its
                    // own id reaches it if anyone knows where it is), and dial it from there.
                    Err(libp2p::swarm::DialError::NoAddresses)
                        if self.pending_requests() < MAX_PENDING_REQUESTS =>
                    {
                        let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                        self.pending_peer_searches.insert(id, peer);
                        Ok(())
                    }
                    Err(e) => Err(describe_dial_error(&e)),
                };
                let _ = reply.send(result);
            }
            Command::SendMessage {
                peer,
                addrs,
                payload,
                reply,
            } => self.send_request(ReqProtocol::Msg, peer, addrs, payload, reply),
            Command::MailboxRequest {
                peer,
                addrs,
                payload,
                reply,
            } => self.send_request(ReqProtocol::Mailbox, peer, addrs, payload, reply),
            Command::Respond { channel, payload } => {
                self.send_response(ReqProtocol::Msg, channel, payload);
            }
            Command::RespondMailbox { channel, payload } => {
                self.send_response(ReqProtocol::Mailbox, channel, payload);
            }
            Command::Shutdown(reply) => {
                // Normally handled in `run`; answering here keeps the match total.
                self.close_all();
                let _ = reply.send(());
            }
            Command::Gossip(command) => crate::gossip::handle_command(&mut self.swarm, command),
            Command::Nat(command) => self.nat.handle_command(&mut self.swarm, command),
            Command::Guard(command) => self.guard.handle_command(&mut self.swarm, command),
            Command::PexRequest { peer, reply } => {
                self.send_request(ReqProtocol::Pex, peer, Vec::new(), Vec::new(), reply);
            }
            Command::RespondPex { channel, payload } => {
                self.send_response(ReqProtocol::Pex, channel, payload);
            }
        }
    }

    fn request_behaviour(
        &mut self,
        protocol: ReqProtocol,
    ) -> &mut request_response::Behaviour<FrameCodec> {
        match protocol {
            ReqProtocol::Msg => &mut self.swarm.behaviour_mut().msg,
            ReqProtocol::Mailbox => &mut self.swarm.behaviour_mut().mailbox,
            ReqProtocol::Pex => &mut self.swarm.behaviour_mut().pex,
        }
    }

    fn pending_responses(
        &mut self,
        protocol: ReqProtocol,
    ) -> &mut HashMap<OutboundRequestId, PendingResponse> {
        match protocol {
            ReqProtocol::Msg => &mut self.pending_messages,
            ReqProtocol::Mailbox => &mut self.pending_mailbox,
            ReqProtocol::Pex => &mut self.pending_pex,
        }
    }

    fn send_request(
        &mut self,
        protocol: ReqProtocol,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
        reply: PendingResponse,
    ) {
        if self.pending_requests() >= MAX_PENDING_REQUESTS {
            let _ = reply.send(Err(SendError::Protocol(
                "too many requests in flight".into(),
            )));
            return;
        }
        if protocol == ReqProtocol::Mailbox && payload.len() > MAX_MAILBOX_REQUEST_BYTES {
            self.stats.mailbox_failures += 1;
            let _ = reply.send(Err(SendError::TooLarge {
                len: payload.len(),
                max: MAX_MAILBOX_REQUEST_BYTES,
            }));
            return;
        }
        let id = self
            .request_behaviour(protocol)
            .send_request_with_addresses(&peer, payload, addrs);
        self.pending_responses(protocol).insert(id, reply);
    }

    fn send_response(
        &mut self,
        protocol: ReqProtocol,
        channel: ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) {
        if self
            .request_behaviour(protocol)
            .send_response(channel, payload)
            .is_err()
        {
            debug!(?protocol, "response not sent: the requester went away");
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

    fn peer_list(&mut self) -> Vec<PeerInfo> {
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
        for (peer, state) in &self.peers {
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
        let mut list: Vec<PeerInfo> = out.into_values().collect();
        list.sort_by_key(|p| p.peer_id.to_base58());
        list
    }

    fn remember_addrs(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_TRACKED_PEERS {
            // Forget a peer with no open connection to make room; connected peers stay.
            let victim = self
                .peers
                .iter()
                .find(|(_, s)| s.connections == 0)
                .map(|(p, _)| *p);
            match victim {
                Some(v) => {
                    self.peers.remove(&v);
                }
                None => return,
            }
        }
        let state = self.peers.entry(peer).or_default();
        for addr in addrs {
            if let Some(pos) = state.addrs.iter().position(|a| a == addr) {
                state.addrs.remove(pos);
            }
            state.addrs.insert(0, addr.clone());
        }
        state.addrs.truncate(MAX_ADDRS_PER_PEER);
    }

    /// Hands `event` to the node without waiting: straight into the event channel when it has
    /// room and nothing is queued before it, else at the back of the backlog, which
    /// [`run`](Self::run) drains in order. A full backlog sheds the event and counts it; a shed
    /// inbound request is dropped with its response channel, so the requester sees the stream
    /// close (and tries again later) rather than the whole node stalling.
    ///
    /// Waiting here instead (as the loop once did) closes a cycle: the node's loop waits on
    /// this loop for a command (an answer, a ban) while this loop waits on the node for room.
    fn emit(&mut self, event: NetEvent) {
        let event = if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    debug!("node stopped listening to network events");
                    return;
                }
                Err(mpsc::error::TrySendError::Full(event)) => event,
            }
        } else {
            event
        };
        if self.backlog.len() < EVENT_BACKLOG_CAPACITY {
            self.backlog.push_back(event);
            return;
        }
        self.stats.events_shed += 1;
        if matches!(
            event,
            NetEvent::InboundMessage { .. }
                | NetEvent::InboundMailbox { .. }
                | NetEvent::InboundPex { .. }
        ) {
            self.stats.inbound_requests_shed += 1;
        }
        debug!(
            backlog = self.backlog.len(),
            "network event shed: the node is not keeping up"
        );
    }

    /// Hands `event` to the node only if it can be delivered at once, in order; drops it
    /// otherwise (counted). For reports that are useless late or cheap to lose.
    fn emit_lossy(&mut self, event: NetEvent) {
        if !self.backlog.is_empty() {
            self.stats.events_dropped += 1;
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.stats.events_dropped += 1;
        }
    }

    fn maybe_report_bootstrap(&mut self) {
        if self.bootstrap_report_owed && self.bootstrap_pending.is_empty() {
            self.bootstrap_report_owed = false;
            let event = NetEvent::BootstrapFinished {
                reached: self.bootstrap_reached,
                failed: std::mem::take(&mut self.bootstrap_failed),
            };
            self.emit(event);
        }
    }

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(nat_event) = self.nat.on_swarm_event(&mut self.swarm, &event) {
            self.emit(nat_event);
        }
        self.guard.on_swarm_event(&self.swarm, &event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.emit(NetEvent::Listening { addr: address });
            }
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
                let addr = endpoint.get_remote_address().clone();
                if !self.peers.contains_key(&peer_id) {
                    self.remember_addrs(peer_id, &[]);
                }
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.connections = num_established.get();
                }
                if let Some(bootstrap_addr) = self.bootstrap_pending.remove(&connection_id) {
                    info!(%peer_id, %bootstrap_addr, "connected to bootstrap peer");
                    self.bootstrap_reached += 1;
                    if endpoint.is_dialer() {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, bootstrap_addr.clone());
                    }
                    self.emit(NetEvent::PeerDiscovered {
                        peer: peer_id,
                        addrs: vec![bootstrap_addr],
                        source: DiscoverySource::Bootstrap,
                    });
                }
                self.seeded.remove(&peer_id);
                if num_established.get() == 1 {
                    debug!(%peer_id, %addr, "peer connected");
                    self.emit(NetEvent::PeerConnected {
                        peer: peer_id,
                        addr,
                    });
                }
                self.maybe_report_bootstrap();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.stats.connections_closed += 1;
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.connections = num_established;
                }
                if num_established == 0 {
                    debug!(%peer_id, "peer disconnected");
                    self.emit(NetEvent::PeerDisconnected { peer: peer_id });
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.stats.dial_failures += 1;
                let reason = describe_dial_error(&error);
                if let Some(addr) = self.bootstrap_pending.remove(&connection_id) {
                    warn!(%addr, %reason, "bootstrap peer unreachable");
                    self.bootstrap_failed.push((addr, reason.clone()));
                    self.maybe_report_bootstrap();
                }
                if let Some(peer) = peer_id
                    && !matches!(error, libp2p::swarm::DialError::DialPeerConditionFalse(_))
                {
                    debug!(%peer, %reason, "dial failed");
                    self.emit(NetEvent::DialFailed {
                        peer,
                        error: reason,
                    });
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!(%error, "incoming connection failed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!(%error, "listener error");
            }
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event),
            _ => {}
        }
    }

    fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .cloned()
                    .collect();
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for addr in &addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                    // First contact with a DHT peer: look ourselves up through it, which is how
                    // a new node learns the rest of the network and the network learns it.
                    if self.bootstrapped_via.len() < SELF_LOOKUPS_ON_FIRST_CONTACT
                        && self.bootstrapped_via.insert(peer_id)
                    {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
                self.remember_addrs(peer_id, &addrs);
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.agent_version = Some(truncate(&info.agent_version, 64));
                }
                self.stats.discoveries += 1;
                self.emit(NetEvent::PeerDiscovered {
                    peer: peer_id,
                    addrs,
                    source: DiscoverySource::Identify,
                });
            }
            BehaviourEvent::Identify(identify::Event::Error { peer_id, error, .. }) => {
                if let Some(what) = crate::guard::identify_misbehaviour(&error) {
                    self.emit(NetEvent::Misbehaved {
                        peer: peer_id,
                        what,
                    });
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
            }
            BehaviourEvent::Ping(_) => {}
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                if self.seeded.contains(&peer) {
                    return; // our own peer book, not a new sighting
                }
                self.stats.discoveries += 1;
                let addrs: Vec<Multiaddr> =
                    addresses.iter().take(MAX_ADDRS_PER_PEER).cloned().collect();
                self.emit(NetEvent::PeerDiscovered {
                    peer,
                    addrs,
                    source: DiscoverySource::Kademlia,
                });
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            }) => {
                if step.last {
                    self.stats.kad_queries += 1;
                }
                self.handle_query_progress(id, result, &stats, step.last);
            }
            BehaviourEvent::Kad(kad::Event::InboundRequest { request }) => {
                self.stats.kad_inbound_requests += 1;
                if let Some(peer) = self.swarm.behaviour_mut().kad.take_inbound_source() {
                    // Best effort: a full channel drops the report, never stalls the swarm.
                    self.emit_lossy(NetEvent::InboundKadRequest { peer });
                }
                match request {
                    kad::InboundRequest::PutRecord {
                        record: Some(record),
                        source,
                        ..
                    } => self
                        .records
                        .offer(&mut self.swarm, &mut self.stats, source, record),
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                    } => self.store_provider(record),
                    _ => {}
                }
            }
            BehaviourEvent::Kad(_) => {}
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
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
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                    }
                    if !self.swarm.is_connected(&peer) {
                        let opts = DialOpts::peer_id(peer).addresses(addrs.clone()).build();
                        if let Err(e) = self.swarm.dial(opts) {
                            debug!(%peer, error = %e, "mDNS dial not started");
                        }
                    }
                    self.stats.discoveries += 1;
                    self.emit(NetEvent::PeerDiscovered {
                        peer,
                        addrs,
                        source: DiscoverySource::Mdns,
                    });
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(_)) => {}
            BehaviourEvent::Msg(event) => {
                self.handle_request_event(ReqProtocol::Msg, event);
            }
            BehaviourEvent::Mailbox(event) => {
                self.handle_request_event(ReqProtocol::Mailbox, event);
            }
            BehaviourEvent::Pex(event) => {
                self.handle_request_event(ReqProtocol::Pex, event);
            }
            BehaviourEvent::Guard(never) => match never {},
            BehaviourEvent::Gossipsub(event) => {
                crate::gossip::on_event(&mut self.swarm, &self.events, event);
            }
            event @ (BehaviourEvent::Autonat(_)
            | BehaviourEvent::Relay(_)
            | BehaviourEvent::RelayClient(_)
            | BehaviourEvent::Dcutr(_)
            | BehaviourEvent::Upnp(_)) => {
                if let Some(nat_event) = self.nat.on_event(event) {
                    self.emit(nat_event);
                }
            }
        }
    }

    /// Keeps a provider record a peer announced (Kademlia already checked that the peer
    /// announced itself) if the [ledger](provider_ledger) admits it, with at most
    /// [`MAX_ADDRS_PER_PEER`] addresses; removes the records the ledger forgot on the way.
    fn store_provider(&mut self, mut record: kad::ProviderRecord) {
        let now = std::time::Instant::now();
        let expires = record
            .expires
            .unwrap_or(now + crate::behaviour::PROVIDER_RECORD_TTL);
        let mut forgotten = Vec::new();
        let admitted =
            self.provider_ledger
                .admit(&record.key, record.provider, expires, now, &mut forgotten);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        for (key, provider) in &forgotten {
            store.remove_provider(key, provider);
        }
        if let Err(refusal) = admitted {
            self.stats.providers_refused += 1;
            debug!(provider = %record.provider, len = record.key.as_ref().len(), ?refusal, "provider record refused");
            return;
        }
        record.addresses.truncate(MAX_ADDRS_PER_PEER);
        let (key, provider) = (record.key.clone(), record.provider);
        match store.add_provider(record) {
            Ok(()) => self.stats.providers_stored += 1,
            Err(e) => {
                // Not expected: the store's bounds leave room for everything the ledger admits.
                self.provider_ledger.forget(&key, &provider);
                self.stats.providers_refused += 1;
                warn!(%provider, error = ?e, "provider record not stored");
            }
        }
    }

    fn handle_query_progress(
        &mut self,
        id: kad::QueryId,
        result: kad::QueryResult,
        stats: &kad::QueryStats,
        last: bool,
    ) {
        match result {
            kad::QueryResult::StartProviding(outcome) => {
                if let Some(reply) = self.pending_provides.remove(&id) {
                    let _ = reply.send(match outcome {
                        Ok(_) => Ok(announced_to(stats)),
                        Err(kad::AddProviderError::Timeout { .. }) => {
                            Err("timed out announcing the provider record".to_string())
                        }
                    });
                }
            }
            kad::QueryResult::GetProviders(outcome) => {
                let mut enough = false;
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = outcome
                    && let Some((_, found)) = self.pending_providers.get_mut(&id)
                {
                    found.extend(
                        providers
                            .into_iter()
                            .take(MAX_PROVIDERS_FOUND.saturating_sub(found.len())),
                    );
                    enough = found.len() >= MAX_PROVIDERS_FOUND;
                }
                if last {
                    if let Some((reply, found)) = self.pending_providers.remove(&id) {
                        let _ = reply.send(Ok(found));
                    }
                } else if enough
                    && let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id)
                {
                    // The final event follows, and answers.
                    query.finish();
                }
            }
            kad::QueryResult::PutRecord(outcome) => {
                let targets = self.put_targets.remove(&id);
                if let Some(reply) = self.pending_puts.remove(&id) {
                    let _ = reply.send(match outcome {
                        Ok(_) => Ok(targets.unwrap_or(1)),
                        Err(kad::PutRecordError::QuorumFailed { success, .. })
                            if !success.is_empty() =>
                        {
                            Ok(success.len())
                        }
                        Err(e) => Err(put_error(&e)),
                    });
                }
            }
            kad::QueryResult::GetRecord(outcome) => {
                if let Ok(kad::GetRecordOk::FoundRecord(found)) = outcome
                    && let Some((_, values)) = self.pending_gets.get_mut(&id)
                    && values.len() < MAX_RECORDS_PER_GET
                    && !values.contains(&found.record.value)
                {
                    values.push(found.record.value);
                }
                if last && let Some((reply, values)) = self.pending_gets.remove(&id) {
                    let _ = reply.send(values);
                }
            }
            kad::QueryResult::GetClosestPeers(outcome) => {
                // A timeout still carries the peers found so far; they are the answer.
                let peers = match outcome {
                    Ok(kad::GetClosestPeersOk { peers, .. })
                    | Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                if let Some(peer) = self.pending_peer_searches.remove(&id) {
                    self.dial_found(peer, &peers);
                }
                if let Some((key, reply)) = self.pending_closest.remove(&id) {
                    let _ = reply.send(Ok(self.closest_peers(&key, peers)));
                }
            }
            _ => {}
        }
    }

    /// Dials `peer` at the addresses a lookup of its id found for it, unless it is connected
    /// or being dialled (the lookup itself may have reached it).
    fn dial_found(&mut self, peer: PeerId, found: &[kad::PeerInfo]) {
        let Some(info) = found.iter().find(|info| info.peer_id == peer) else {
            debug!(%peer, "no address found for the peer");
            return;
        };
        let opts = DialOpts::peer_id(peer)
            .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
            .addresses(
                info.addrs
                    .iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .cloned()
                    .collect(),
            )
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            debug!(%peer, error = %describe_dial_error(&e), "cannot dial the peer found");
        }
    }

    /// Orders a closest-peers answer by XOR distance to `key`, closest first, without this
    /// node or duplicates, each with at most [`MAX_ADDRS_PER_PEER`] addresses (those the lookup
    /// learnt, else those identify told us).
    fn closest_peers(&self, key: &RecordKey, found: Vec<kad::PeerInfo>) -> Vec<ClosestPeer> {
        let local = *self.swarm.local_peer_id();
        let target = kad::KBucketKey::new(key.clone());
        let mut out: Vec<ClosestPeer> = Vec::with_capacity(found.len());
        for info in found {
            if info.peer_id == local || out.iter().any(|p| p.peer == info.peer_id) {
                continue;
            }
            let mut addrs: Vec<Multiaddr> = Vec::new();
            for addr in info.addrs {
                if addrs.len() < MAX_ADDRS_PER_PEER && !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
            if addrs.is_empty()
                && let Some(state) = self.peers.get(&info.peer_id)
            {
                addrs.clone_from(&state.addrs);
            }
            out.push(ClosestPeer {
                peer: info.peer_id,
                addrs,
            });
        }
        out.sort_by_key(|p| target.distance(&kad::KBucketKey::from(p.peer)));
        out.truncate(MAX_CLOSEST_PEERS);
        out
    }

    fn handle_request_event(
        &mut self,
        protocol: ReqProtocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                self.guard.request_delivered(protocol.name(), request_id);
                // Never awaited (see `emit`): past the backlog, a request is shed and counted.
                let event = match protocol {
                    ReqProtocol::Msg => {
                        self.stats.messages_received += 1;
                        NetEvent::InboundMessage {
                            peer,
                            payload: request,
                            channel,
                        }
                    }
                    ReqProtocol::Mailbox => {
                        self.stats.mailbox_requests_received += 1;
                        NetEvent::InboundMailbox {
                            peer,
                            payload: request,
                            channel,
                        }
                    }
                    // The request body means nothing (at most 64 bytes, ignored).
                    ReqProtocol::Pex => NetEvent::InboundPex { peer, channel },
                };
                self.emit(event);
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                match protocol {
                    ReqProtocol::Msg => self.stats.messages_sent += 1,
                    ReqProtocol::Mailbox => self.stats.mailbox_requests_sent += 1,
                    ReqProtocol::Pex => {}
                }
                if let Some(reply) = self.pending_responses(protocol).remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                match protocol {
                    ReqProtocol::Msg => self.stats.message_failures += 1,
                    ReqProtocol::Mailbox => self.stats.mailbox_failures += 1,
                    ReqProtocol::Pex => {}
                }
                if let Some(what) = crate::guard::outbound_misbehaviour(&error) {
                    debug!(%peer, ?what, ?protocol, "peer misbehaved");
                    self.emit(NetEvent::Misbehaved { peer, what });
                }
                if let Some(reply) = self.pending_responses(protocol).remove(&request_id) {
                    let _ = reply.send(Err(match error {
                        request_response::OutboundFailure::DialFailure => {
                            SendError::Unreachable("could not connect".into())
                        }
                        request_response::OutboundFailure::Timeout => SendError::Timeout,
                        request_response::OutboundFailure::ConnectionClosed => {
                            SendError::Unreachable("connection closed".into())
                        }
                        other => SendError::Protocol(other.to_string()),
                    }));
                }
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, ?protocol, "inbound request failed");
                if let Some(what) =
                    self.guard
                        .inbound_misbehaviour(protocol.name(), request_id, &error)
                {
                    self.emit(NetEvent::Misbehaved { peer, what });
                }
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.guard.request_answered(protocol.name(), request_id);
            }
        }
    }
}

/// The peers an announcement (`start_providing`) handed its record to, from the query's final
/// statistics. `ADD_PROVIDER` has no answer: Kademlia runs a lookup of the key, then hands the
/// record to the closest peers that answered it (at most k) and counts each as a success. The
/// two phases' counts are added up, and the second is min(first, k), so it is half the total,
/// at most k.
fn announced_to(stats: &kad::QueryStats) -> usize {
    (stats.num_successes() as usize / 2).min(MAX_CLOSEST_PEERS)
}

fn put_error(e: &kad::PutRecordError) -> String {
    match e {
        kad::PutRecordError::QuorumFailed { .. } => {
            "no peer accepted the record (are any peers connected?)".into()
        }
        kad::PutRecordError::Timeout { .. } => "timed out storing the record".into(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
