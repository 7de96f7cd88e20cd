//! The cloneable handle through which the rest of the node talks to the [`EventLoop`].
//!
//! [`EventLoop`]: crate::EventLoop

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::NetError;
use crate::event_loop::{DhtCommand, ReqProtocol};

/// What the node knows about the network right now.
#[derive(Debug, Clone, Serialize)]
pub struct NetInfo {
    /// This node's peer id (derived from the device key).
    pub peer_id: PeerId,
    /// Addresses the node listens on, as bound (ports resolved).
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses the node advertises in place of its listeners (`--announce`).
    pub external_addrs: Vec<Multiaddr>,
    /// Peers with at least one open connection.
    pub connected_peers: usize,
    /// Peers in the Kademlia routing table.
    pub routing_table_peers: usize,
}

/// One peer as the network layer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    /// The peer.
    pub peer_id: PeerId,
    /// Open connections to it.
    pub connections: u32,
    /// Whether it is in the Kademlia routing table.
    pub in_routing_table: bool,
    /// Addresses known for it (bounded).
    pub addrs: Vec<Multiaddr>,
    /// Its agent version, from identify.
    pub agent_version: Option<String>,
    /// The last ping round-trip time in milliseconds.
    pub rtt_ms: Option<f64>,
}

/// A peer found by [`Client::closest_peers`], with the addresses the lookup learnt for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosestPeer {
    /// The peer.
    pub peer: PeerId,
    /// Its addresses (bounded; may be empty when no peer reported one).
    pub addrs: Vec<Multiaddr>,
}

/// Counters since the node started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetStats {
    /// Connections established, both directions.
    pub connections_established: u64,
    /// Connections closed.
    pub connections_closed: u64,
    /// Inbound connections accepted.
    pub inbound_connections: u64,
    /// Outgoing dials that failed.
    pub dial_failures: u64,
    /// Peers discovered through identify, Kademlia or mDNS (events, not distinct peers).
    pub discoveries: u64,
    /// Kademlia queries finished.
    pub kad_queries: u64,
    /// Kademlia requests answered for others.
    pub kad_inbound_requests: u64,
    /// Record lookups (`get_records`) finished, and the Kademlia requests they sent in all.
    #[serde(default)]
    pub get_queries: u64,
    /// See [`get_queries`](Self::get_queries).
    #[serde(default)]
    pub get_requests: u64,
    /// Time the finished record lookups ran in Kademlia (start to end), summed, ms.
    #[serde(default)]
    pub get_query_ms: u64,
    /// DHT records stored for others after validation.
    pub records_stored: u64,
    /// DHT records refused by the validator, or by the bounds of what is kept (per peer, per
    /// owner, in all; see [`event_loop`](crate::event_loop)).
    pub records_rejected: u64,
    /// DHT records refused before validation because their sender went over its rate of
    /// `PUT_VALUE` requests.
    #[serde(default)]
    pub records_rate_limited: u64,
    /// DHT records refused before validation because the validations in flight were at their
    /// bound.
    #[serde(default)]
    pub records_shed: u64,
    /// DHT records kept for other peers now (a gauge).
    #[serde(default)]
    pub records_held: u64,
    /// Network events the node had no room for and the event loop's backlog neither: dropped.
    #[serde(default)]
    pub events_shed: u64,
    /// Of [`events_shed`](Self::events_shed), inbound requests (`/rhizo/msg/1`,
    /// `/rhizo/mailbox/1`, `/rhizo/pex/1`): dropped unanswered, the requester sees the stream
    /// close.
    #[serde(default)]
    pub inbound_requests_shed: u64,
    /// Best-effort reports (inbound Kademlia requests) dropped because the node was behind.
    #[serde(default)]
    pub events_dropped: u64,
    /// Events waiting in the event loop's backlog for room in the node's channel (a gauge).
    #[serde(default)]
    pub event_backlog: u64,
    /// Answers and bans the node handed over without waiting ([`Client::try_respond`] and
    /// the like) that found the command channel full: the request goes unanswered.
    #[serde(default)]
    pub commands_shed: u64,
    /// Inbound requests the node refused with `RATE_LIMITED` because its handlers were all busy
    /// (see [`Client::count_busy_refusal`]).
    #[serde(default)]
    pub inbound_refused_busy: u64,
    /// Provider records stored (or renewed) for other peers.
    #[serde(default)]
    pub providers_stored: u64,
    /// Provider records refused: a key of 0 or more than 80 bytes, or a bound reached (per
    /// key, per peer, in all).
    #[serde(default)]
    pub providers_refused: u64,
    /// Keys this node holds other peers' provider records for now (a gauge, at most
    /// [`MAX_PROVIDER_KEYS`](crate::behaviour::MAX_PROVIDER_KEYS)).
    #[serde(default)]
    pub provider_keys_held: u64,
    /// `/rhizo/msg/1` requests received.
    pub messages_received: u64,
    /// `/rhizo/msg/1` requests sent that got a response.
    pub messages_sent: u64,
    /// `/rhizo/msg/1` requests that failed (unreachable, timeout, protocol error).
    pub message_failures: u64,
    /// `/rhizo/mailbox/1` requests received.
    #[serde(default)]
    pub mailbox_requests_received: u64,
    /// `/rhizo/mailbox/1` requests sent that got a response.
    #[serde(default)]
    pub mailbox_requests_sent: u64,
    /// `/rhizo/mailbox/1` requests that failed (unreachable, timeout, too large, protocol error).
    #[serde(default)]
    pub mailbox_failures: u64,
    /// Connections the guard refused (limits, bans, the IP filter), both directions.
    #[serde(default)]
    pub connections_denied: u64,
    /// Inbound connections open now.
    #[serde(default)]
    pub open_inbound: u64,
    /// Outbound connections open now.
    #[serde(default)]
    pub open_outbound: u64,
    /// Bytes received over all connections since start (every protocol, relayed ones too).
    #[serde(default)]
    pub bytes_received: u64,
    /// Bytes sent over all connections since start.
    #[serde(default)]
    pub bytes_sent: u64,
}

/// Why a `/rhizo/msg/1` or `/rhizo/mailbox/1` request got no response.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer could not be reached.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The peer did not answer in time.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer does not speak the protocol, or the stream broke (this includes a response
    /// larger than the protocol allows).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The request is a batch frame and the peer takes none (it does not speak
    /// `/rhizo/msg/2`); nothing was sent: send the envelopes one by one.
    #[error("the peer takes no batch frames: send the envelopes one by one")]
    BatchUnsupported,
    /// The request is larger than the protocol allows; nothing was sent.
    #[error("request of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The request's size in bytes.
        len: usize,
        /// The protocol's limit in bytes.
        max: usize,
    },
    /// Too many requests of this node's own are in flight; nothing was sent (try again later).
    #[error("too many requests in flight: try again later")]
    Busy,
    /// The event loop is gone (the node is shutting down).
    #[error("the network event loop has stopped")]
    Stopped,
}

impl From<NetError> for SendError {
    /// How a failure to get the event loop's answer at all reads to a requester.
    fn from(e: NetError) -> Self {
        match e {
            NetError::Timeout => Self::Timeout,
            NetError::Busy => Self::Busy,
            _ => Self::Stopped,
        }
    }
}

/// A request to the event loop; each carries the sender for its reply.
#[derive(Debug)]
pub(crate) enum Command {
    Info(oneshot::Sender<NetInfo>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Stats(oneshot::Sender<NetStats>),
    Dial(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    DialPeer {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Bootstrap(oneshot::Sender<bool>),
    /// DHT calls ([`crate::event_loop`]'s `dht` module).
    Dht(DhtCommand),
    /// An outbound `/rhizo/msg/1`, `/rhizo/mailbox/1` or `/rhizo/pex/1` request.
    Request {
        protocol: ReqProtocol,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, SendError>>,
    },
    /// The answer to an inbound request of `protocol`.
    Respond {
        protocol: ReqProtocol,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    },
    Shutdown(oneshot::Sender<()>),
    /// Connection guard calls ([`crate::guard`]).
    Guard(crate::guard::GuardCommand),
    /// Gossipsub calls ([`crate::gossip`]).
    Gossip(crate::gossip::GossipCommand),
    /// NAT traversal and reachability calls ([`crate::nat`]).
    Nat(crate::nat::NatCommand),
}

/// Counters kept on the [`Client`]'s side and reported in [`NetStats`]: what never reached
/// the event loop.
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    commands_shed: AtomicU64,
    inbound_refused_busy: AtomicU64,
    /// Bytes over the connections, counted by the transport.
    pub(crate) bandwidth: crate::bandwidth::BandwidthMeter,
}

impl ClientCounters {
    pub(crate) fn fill_stats(&self, stats: &mut NetStats) {
        stats.commands_shed = self.commands_shed.load(Ordering::Relaxed);
        stats.inbound_refused_busy = self.inbound_refused_busy.load(Ordering::Relaxed);
        (stats.bytes_received, stats.bytes_sent) = self.bandwidth.totals();
    }
}

/// Cloneable handle to the network. Every `async` method waits for the event loop's reply,
/// bounded by [`CLIENT_TIMEOUT`]; the `try_` methods hand a command over without waiting, for
/// callers that must never wait on the event loop (the node's own event loop).
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    counters: Arc<ClientCounters>,
    pub(crate) streams: Option<crate::light::Streams>,
}

/// How long a client call waits for the event loop before giving up.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DHT put or get may take end to end (the Kademlia query timeout is 30 s).
pub const DHT_TIMEOUT: Duration = Duration::from_secs(40);
/// How long one message exchange may take end to end (dial + request + response).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(40);

impl Client {
    pub(crate) fn new(tx: mpsc::Sender<Command>, counters: Arc<ClientCounters>) -> Self {
        Self {
            tx,
            counters,
            streams: None,
        }
    }

    /// The client with the swarm's stream handle (for `/rhizo/light/1`).
    pub(crate) fn with_streams(mut self, control: libp2p_stream::Control) -> Self {
        self.streams = Some(crate::light::Streams(control));
        self
    }

    /// Queues `command` without waiting; a full channel sheds it (counted in
    /// [`NetStats::commands_shed`]).
    fn try_command(&self, command: Command) -> Result<(), NetError> {
        match self.tx.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.commands_shed.fetch_add(1, Ordering::Relaxed);
                Err(NetError::Busy)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NetError::Stopped),
        }
    }

    /// Counts an inbound request the node refused because its handlers were all busy (reported
    /// as [`NetStats::inbound_refused_busy`]).
    pub fn count_busy_refusal(&self) {
        self.counters
            .inbound_refused_busy
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        self.call_with(CLIENT_TIMEOUT, make).await
    }

    /// Sends the command `make` builds and waits for its reply, both within `timeout`:
    /// [`NetError::Timeout`] when the deadline passes, [`NetError::Stopped`] only when the
    /// event loop is gone.
    async fn call_with<T>(
        &self,
        timeout: Duration,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let fut = async {
            self.tx
                .send(make(reply_tx))
                .await
                .map_err(|_| NetError::Stopped)?;
            reply_rx.await.map_err(|_| NetError::Stopped)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| NetError::Timeout)?
    }

    /// Hands `command` over (waiting for room at most [`CLIENT_TIMEOUT`]) without a reply.
    async fn send(&self, command: Command) -> Result<(), NetError> {
        tokio::time::timeout(CLIENT_TIMEOUT, self.tx.send(command))
            .await
            .map_err(|_| NetError::Timeout)?
            .map_err(|_| NetError::Stopped)
    }

    /// A DHT call, bounded by [`DHT_TIMEOUT`].
    async fn dht<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> DhtCommand,
    ) -> Result<T, NetError> {
        self.call_with(DHT_TIMEOUT, |reply| Command::Dht(make(reply)))
            .await
    }

    /// One outbound request of `protocol` through the event loop's request table, bounded by
    /// [`MESSAGE_TIMEOUT`].
    async fn request(
        &self,
        protocol: ReqProtocol,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, SendError> {
        let call = self.call_with(MESSAGE_TIMEOUT, |reply| Command::Request {
            protocol,
            peer,
            addrs,
            payload,
            reply,
        });
        call.await?
    }

    /// Answers an inbound request of `protocol`.
    async fn respond_on(
        &self,
        protocol: ReqProtocol,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.send(Command::Respond {
            protocol,
            channel,
            payload,
        })
        .await
    }

    /// Answers an inbound request of `protocol` without waiting ([`NetError::Busy`] when the
    /// command channel is full).
    fn try_respond_on(
        &self,
        protocol: ReqProtocol,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.try_command(Command::Respond {
            protocol,
            channel,
            payload,
        })
    }

    /// This node's peer id, listen addresses and peer counts.
    pub async fn info(&self) -> Result<NetInfo, NetError> {
        self.call(Command::Info).await
    }

    /// Connected peers and routing-table peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.call(Command::Peers).await
    }

    /// Counters since start.
    pub async fn stats(&self) -> Result<NetStats, NetError> {
        self.call(Command::Stats).await
    }

    /// Starts a dial; returns once the dial is under way (not when it succeeds).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|tx| Command::Dial(addr, tx)).await?
    }

    /// Starts a Kademlia self-lookup; `false` when no peer is known yet.
    pub async fn bootstrap(&self) -> Result<bool, NetError> {
        self.call(Command::Bootstrap).await
    }

    /// Publishes a record in the DHT (stored locally and on the closest peers). Returns how many
    /// peers accepted it; an error when none did ([`DhtError::NoPeerAccepted`]), when the
    /// query timed out ([`NetError::Timeout`]) or when too many DHT operations are in flight
    /// ([`NetError::Busy`]).
    ///
    /// [`DhtError::NoPeerAccepted`]: crate::DhtError::NoPeerAccepted
    pub async fn put_record(&self, key: Vec<u8>, value: Vec<u8>) -> Result<usize, NetError> {
        self.dht(|reply| DhtCommand::PutRecord { key, value, reply })
            .await?
    }

    /// Looks a record up in the DHT; every distinct value found (the caller validates them and
    /// picks the newest); none when the lookup found none. [`NetError::Busy`] when too many DHT
    /// operations are in flight.
    pub async fn get_records(&self, key: Vec<u8>) -> Result<Vec<Vec<u8>>, NetError> {
        self.dht(|reply| DhtCommand::GetRecords { key, reply })
            .await?
    }

    /// Stores a record on exactly `peers` (not locally, and not on the peers closest to the
    /// key unless they are given), dialling them through Kademlia if needed. Like
    /// [`put_record`](Self::put_record), the record names this node as its publisher and
    /// expires after the DHT's record TTL. Returns how many peers acknowledged it before the
    /// query ended (Kademlia quorum one: the query ends at the first acknowledgement, so this is
    /// 1 on success); an error when none did, or when `peers` holds no peer but this node
    /// ([`DhtError::NoTarget`](crate::DhtError::NoTarget)).
    pub async fn put_record_to(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        peers: Vec<PeerId>,
    ) -> Result<usize, NetError> {
        self.dht(|reply| DhtCommand::PutRecordTo {
            key,
            value,
            peers,
            reply,
        })
        .await?
    }

    /// The value this node's own Kademlia store holds under `key`, if any and not expired (no
    /// network traffic; for diagnostics and tests).
    pub async fn local_record(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, NetError> {
        self.call(|reply| Command::Dht(DhtCommand::LocalRecord { key, reply }))
            .await
    }

    /// Looks up the peers closest to `key` in the DHT (the Kademlia distance to the record key
    /// `key`, as for [`put_record`](Self::put_record)), closest first, at most 20, never this
    /// node. If the lookup times out, the peers found so far; none when the routing table is
    /// empty.
    pub async fn closest_peers(&self, key: Vec<u8>) -> Result<Vec<ClosestPeer>, NetError> {
        self.dht(|reply| DhtCommand::ClosestPeers { key, reply })
            .await?
    }

    /// How many peers in the local Kademlia routing table are closer to `key` than this node
    /// (the distance records under `key` use, as for [`closest_peers`](Self::closest_peers)),
    /// counting at most `limit`. No network traffic: a mailbox replica asks it to decide
    /// whether a mailbox is its business.
    pub async fn local_closer_peers(&self, key: Vec<u8>, limit: usize) -> Result<usize, NetError> {
        self.call(|reply| Command::Dht(DhtCommand::LocalCloserPeers { key, limit, reply }))
            .await
    }

    /// Announces this node as a provider of `key` (1 to
    /// [`MAX_PROVIDER_KEY_BYTES`](crate::behaviour::MAX_PROVIDER_KEY_BYTES) bytes): the record is
    /// kept locally at once and handed to the peers closest to `key`, and Kademlia announces it
    /// again every [`PROVIDER_REPUBLISH_INTERVAL`](crate::behaviour::PROVIDER_REPUBLISH_INTERVAL)
    /// until [`stop_providing`](Self::stop_providing). Returns, once the announcement has
    /// finished, how many peers it was handed to (`ADD_PROVIDER` has no answer, so that is as
    /// far as "accepted" can be known); 0 when no peer is known yet, and then the local record
    /// stays and goes out at the next republication. An error for a bad key
    /// ([`DhtError::BadProviderKey`](crate::DhtError::BadProviderKey)), when this node
    /// provides [`MAX_OWN_PROVIDED_KEYS`](crate::behaviour::MAX_OWN_PROVIDED_KEYS) keys already
    /// ([`DhtError::TooManyProvidedKeys`](crate::DhtError::TooManyProvidedKeys)), or when the
    /// announcement timed out ([`NetError::Timeout`]).
    pub async fn start_providing(&self, key: Vec<u8>) -> Result<usize, NetError> {
        self.dht(|reply| DhtCommand::StartProviding { key, reply })
            .await?
    }

    /// Stops announcing `key`: the local record goes at once (records already on other peers
    /// expire with their TTL, [`PROVIDER_RECORD_TTL`](crate::behaviour::PROVIDER_RECORD_TTL)).
    pub async fn stop_providing(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.send(Command::Dht(DhtCommand::StopProviding { key }))
            .await
    }

    /// The providers of `key`: those in this node's own store (this node itself if it provides
    /// `key`) and those the DHT lookup finds, at most
    /// [`MAX_PROVIDERS_FOUND`](crate::event_loop::MAX_PROVIDERS_FOUND). If the lookup times
    /// out, the providers found so far. To connect to one, [`dial_peer`](Self::dial_peer).
    pub async fn get_providers(&self, key: Vec<u8>) -> Result<HashSet<PeerId>, NetError> {
        self.dht(|reply| DhtCommand::GetProviders { key, reply })
            .await?
    }

    /// Starts a dial to `peer` unless it is connected or being dialled, at `addrs` and at the
    /// addresses the behaviours know (Kademlia's routing table and running lookups, identify);
    /// when none knows one, a DHT lookup of `peer` finds its addresses and the dial follows.
    /// Returns once the dial (or the lookup) is under way; [`NetError::Dial`] when it cannot
    /// start.
    pub async fn dial_peer(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.call(|reply| Command::DialPeer { peer, addrs, reply })
            .await?
    }

    /// Sends one `/rhizo/msg/1` request to `peer` (dialling `addrs` if needed) and waits for
    /// its response: [`SendError::Timeout`] when none came in time, [`SendError::Busy`] when
    /// too many requests are in flight, [`SendError::Stopped`] only when the event loop is gone.
    pub async fn send_message(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, SendError> {
        self.request(ReqProtocol::Msg, peer, addrs, payload).await
    }

    /// Answers an inbound `/rhizo/msg/1` request.
    pub async fn respond(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.respond_on(ReqProtocol::Msg, channel, payload).await
    }

    /// Like [`respond`](Self::respond), without waiting: [`NetError::Busy`] when the command
    /// channel is full (the request then goes unanswered).
    pub fn try_respond(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.try_respond_on(ReqProtocol::Msg, channel, payload)
    }

    /// Sends one `/rhizo/mailbox/1` request to `peer` (dialling `addrs` if needed) and waits
    /// for its response (errors as for [`send_message`](Self::send_message)). A request larger
    /// than [`MAX_MAILBOX_REQUEST_BYTES`](crate::MAX_MAILBOX_REQUEST_BYTES) is refused with
    /// [`SendError::TooLarge`] before anything is sent.
    pub async fn mailbox_request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, SendError> {
        self.request(ReqProtocol::Mailbox, peer, addrs, payload)
            .await
    }

    /// Answers an inbound `/rhizo/mailbox/1` request
    /// ([`NetEvent::InboundMailbox`](crate::NetEvent::InboundMailbox)). A response larger than
    /// [`MAX_MAILBOX_RESPONSE_BYTES`](crate::MAX_MAILBOX_RESPONSE_BYTES) is not sent: the
    /// requester sees the stream fail.
    pub async fn respond_mailbox(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.respond_on(ReqProtocol::Mailbox, channel, payload)
            .await
    }

    /// Like [`respond_mailbox`](Self::respond_mailbox), without waiting: [`NetError::Busy`]
    /// when the command channel is full (the request then goes unanswered).
    pub fn try_respond_mailbox(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.try_respond_on(ReqProtocol::Mailbox, channel, payload)
    }

    /// Asks `peer` for a sample of the peers it knows over `/rhizo/pex/1` (an empty request; the
    /// peer must be connected or reachable at an address Kademlia or identify learnt) and waits
    /// for the answer, at most [`MAX_PEX_RESPONSE_BYTES`](crate::MAX_PEX_RESPONSE_BYTES) bytes
    /// (a larger one fails the request). The node decodes the sample.
    pub async fn pex_request(&self, peer: PeerId) -> Result<Vec<u8>, SendError> {
        self.request(ReqProtocol::Pex, peer, Vec::new(), Vec::new())
            .await
    }

    /// Answers an inbound `/rhizo/pex/1` request
    /// ([`NetEvent::InboundPex`](crate::NetEvent::InboundPex)) with `payload`. A payload larger
    /// than [`MAX_PEX_RESPONSE_BYTES`](crate::MAX_PEX_RESPONSE_BYTES) is not sent: the
    /// requester sees the stream fail.
    pub async fn respond_pex(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.respond_on(ReqProtocol::Pex, channel, payload).await
    }

    /// Like [`respond_pex`](Self::respond_pex), without waiting: [`NetError::Busy`] when the
    /// command channel is full (the request then goes unanswered).
    pub fn try_respond_pex(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.try_respond_on(ReqProtocol::Pex, channel, payload)
    }

    /// Sends one `/rhizo/link/1` request to `peer` (dialling `addrs` if needed) and waits for
    /// the answer (errors as for [`send_message`](Self::send_message)); a request larger than
    /// [`MAX_LINK_MESSAGE_BYTES`](crate::MAX_LINK_MESSAGE_BYTES) is refused before sending.
    pub async fn link_request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, SendError> {
        self.request(ReqProtocol::Link, peer, addrs, payload).await
    }

    /// Answers an inbound `/rhizo/link/1` request
    /// ([`NetEvent::InboundLink`](crate::NetEvent::InboundLink)).
    pub async fn respond_link(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.respond_on(ReqProtocol::Link, channel, payload).await
    }

    /// Sends one `/rhizo/file/1` request (chunks of a file) to `peer`, dialling `addrs` if
    /// needed, and waits for the answer (errors as for [`send_message`](Self::send_message)).
    pub async fn file_request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, SendError> {
        self.request(ReqProtocol::File, peer, addrs, payload).await
    }

    /// Answers an inbound `/rhizo/file/1` request
    /// ([`NetEvent::InboundFile`](crate::NetEvent::InboundFile)).
    pub async fn respond_file(
        &self,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        self.respond_on(ReqProtocol::File, channel, payload).await
    }

    /// Bans `peer` like [`ban_peer`](Self::ban_peer), without waiting for the event loop:
    /// [`NetError::Busy`] when the command channel is full (nothing happened; try again later).
    pub fn try_ban_peer(
        &self,
        peer: PeerId,
        until: Option<std::time::Instant>,
    ) -> Result<(), NetError> {
        let (reply, _) = oneshot::channel();
        self.try_command(Command::Guard(crate::guard::GuardCommand::BanPeer {
            peer,
            until,
            reply,
        }))
    }

    /// Asks the event loop to close its connections and stop.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.call(Command::Shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> (Client, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(4);
        (Client::new(tx, Arc::new(ClientCounters::default())), rx)
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_in_time_is_timeout_not_stopped() {
        let (client, _commands) = client();
        let peer = PeerId::random();
        assert!(matches!(
            client.send_message(peer, Vec::new(), Vec::new()).await,
            Err(SendError::Timeout)
        ));
        assert!(matches!(client.info().await, Err(NetError::Timeout)));
        assert!(matches!(
            client.get_records(b"k".to_vec()).await,
            Err(NetError::Timeout)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_gone_event_loop_is_stopped() {
        let (client, commands) = client();
        drop(commands);
        let peer = PeerId::random();
        assert!(matches!(
            client.pex_request(peer).await,
            Err(SendError::Stopped)
        ));
        assert!(matches!(client.stats().await, Err(NetError::Stopped)));
        assert!(matches!(
            client.stop_providing(b"k".to_vec()).await,
            Err(NetError::Stopped)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_event_loops_typed_answer_reaches_the_caller() {
        let (client, mut commands) = client();
        let answer = tokio::spawn(async move {
            match commands.recv().await {
                Some(Command::Request {
                    protocol: ReqProtocol::Mailbox,
                    reply,
                    ..
                }) => {
                    let _ = reply.send(Err(SendError::Busy));
                }
                other => panic!("unexpected {other:?}"),
            }
            match commands.recv().await {
                Some(Command::Dht(DhtCommand::PutRecord { reply, .. })) => {
                    let _ = reply.send(Err(crate::DhtError::NoPeerAccepted.into()));
                }
                other => panic!("unexpected {other:?}"),
            }
        });
        let peer = PeerId::random();
        assert!(matches!(
            client.mailbox_request(peer, Vec::new(), vec![1]).await,
            Err(SendError::Busy)
        ));
        assert!(matches!(
            client.put_record(b"k".to_vec(), b"v".to_vec()).await,
            Err(NetError::Dht(crate::DhtError::NoPeerAccepted))
        ));
        answer.await.expect("join");
    }

    #[test]
    fn try_calls_say_busy_when_the_channel_is_full() {
        let (tx, _rx) = mpsc::channel(1);
        let counters = Arc::new(ClientCounters::default());
        let client = Client::new(tx, counters.clone());
        let peer = PeerId::random();
        assert!(client.try_ban_peer(peer, None).is_ok());
        assert!(matches!(
            client.try_ban_peer(peer, None),
            Err(NetError::Busy)
        ));
        let mut stats = NetStats::default();
        counters.fill_stats(&mut stats);
        assert_eq!(stats.commands_shed, 1);
    }
}
