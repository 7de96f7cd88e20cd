//! Gossipsub broadcast: the protocol's configuration and peer scoring, and the event-loop side
//! of the [`Client`]'s gossip calls.
//!
//! - **Signed, strictly checked.** Every message is signed with its author's node key
//!   (`MessageAuthenticity::Signed`) and checked with `ValidationMode::Strict` (author, sequence
//!   number and signature required and verified).
//! - **Validated by the node before it travels on.** Each inbound message is held until the node
//!   has checked rhizo's own signed post inside it and reported a [`GossipVerdict`] with
//!   [`Client::report_validation`]: `Accept` forwards it, `Reject` drops it and penalises the peer
//!   that sent it, `Ignore` drops it without penalty. Held messages expire after
//!   [`VALIDATION_WINDOW`].
//! - **Content-addressed.** A message's id is the SHA-256 of its data: the same post arriving
//!   along two paths (or published twice) is one message, delivered once.
//! - **Bounded.** RPC frames ≤ [`MAX_GOSSIP_TRANSMIT_BYTES`] (so a message's data is at most
//!   [`MAX_GOSSIP_DATA_BYTES`]); message ids remembered for [`DUPLICATE_CACHE_TIME`]; per-peer
//!   send queues of [`HANDLER_QUEUE_LEN`] messages; at most [`MAX_PEER_TOPICS`] topics tracked
//!   per remote peer; topic names ≤ [`MAX_TOPIC_BYTES`].
//! - **Scored.** Peer scoring is on (see [`peer_score_params`] and [`peer_score_thresholds`]);
//!   topics named `rhizo/channel/*` get [`channel_topic_params`] when subscribed, which is what
//!   makes a rejected message cost its sender.
//!
//! Inbound messages reach the node as [`NetEvent::GossipMessage`] through `try_send`: when the
//! node's event channel is full the message is reported `Ignore` (dropped without penalising
//! anyone) instead of stalling the swarm. A gossip flood must not delay direct `/rhizo/msg/1`
//! deliveries, and a post missed this way is still fetched by rhizo's own sync.
//!
//! [`Client`]: crate::Client
//! [`Client::report_validation`]: crate::Client::report_validation
//! [`NetEvent::GossipMessage`]: crate::NetEvent::GossipMessage

use std::{collections::HashSet, net::IpAddr, time::Duration};

use libp2p::{
    Multiaddr, PeerId, Stream, Swarm,
    core::{Endpoint, UpgradeInfo, transport::PortUse, upgrade},
    gossipsub::{
        self, AllowAllSubscriptionFilter, IdentTopic, IdentityTransform,
        MaxCountSubscriptionFilter, MessageAcceptance, MessageAuthenticity, MessageId,
        PeerScoreParams, PeerScoreThresholds, PublishError, TopicHash, TopicScoreParams,
        ValidationMode, score_parameter_decay,
    },
    identity::Keypair,
    swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
        handler::{
            ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
            InboundUpgradeSend, ListenUpgradeError, OutboundUpgradeSend, UpgradeInfoSend,
        },
    },
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::{Client, NetError, behaviour::Behaviour, client::Command, event_loop::NetEvent};

/// Largest gossipsub RPC frame sent or accepted, in bytes.
pub const MAX_GOSSIP_TRANSMIT_BYTES: usize = 16 * 1024;
/// Largest data [`Client::publish`] accepts: the frame limit minus headroom for the signed
/// envelope around it (author, sequence number, topic, signature, framing).
pub const MAX_GOSSIP_DATA_BYTES: usize = MAX_GOSSIP_TRANSMIT_BYTES - 1024;
/// Longest topic name accepted by [`Client::subscribe`] and [`Client::publish`], in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;
/// How long a message id is remembered to drop duplicates (the duplicate cache is bounded by
/// time: ids older than this are forgotten).
pub const DUPLICATE_CACHE_TIME: Duration = Duration::from_secs(120);
/// The gossipsub heartbeat (mesh maintenance, gossip emission, score decay).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Heartbeats a message stays in the message cache; also the time the node has to report its
/// verdict on an inbound message (`HISTORY_LENGTH` × [`HEARTBEAT_INTERVAL`]).
const HISTORY_LENGTH: usize = 10;
/// How long an inbound message waits for the node's verdict before it is dropped.
pub const VALIDATION_WINDOW: Duration = Duration::from_secs(HISTORY_LENGTH as u64);
/// Messages queued per peer connection before gossipsub drops new ones for that peer
/// (16 KiB × 512 = 8 MiB worst case per peer).
pub const HANDLER_QUEUE_LEN: usize = 512;
/// Topics one remote peer may be subscribed to in our view; a subscription beyond this is
/// refused (bounds the memory a peer can make us spend on its subscriptions).
pub const MAX_PEER_TOPICS: usize = 1024;
/// Subscription changes accepted in one RPC from a peer.
const MAX_SUBSCRIPTIONS_PER_RPC: usize = 256;
/// Message ids advertised or requested per IHAVE/IWANT (keeps control frames under the limit).
const MAX_CONTROL_IDS: usize = 256;
/// The prefix of rhizo's channel topics, which get [`channel_topic_params`].
pub const CHANNEL_TOPIC_PREFIX: &str = "rhizo/channel/";

/// The gossipsub behaviour rhizo runs: no data transform, a per-peer cap on subscriptions, and
/// streams that do not hold connections open (see [`StreamsIdle`]).
pub type GossipBehaviour = StreamsIdle<
    gossipsub::Behaviour<IdentityTransform, MaxCountSubscriptionFilter<AllowAllSubscriptionFilter>>,
>;

/// The node's verdict on an inbound gossip message, after checking rhizo's signed post in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipVerdict {
    /// Valid: deliver it and forward it to the mesh.
    Accept,
    /// Invalid: drop it and penalise the peer that sent it (and any other peer that sent the
    /// same message while it was held), through the topic's `invalid_message_deliveries_weight`.
    Reject,
    /// Not wanted (already known, out of date, the node is busy): drop it without penalty.
    Ignore,
}

impl From<GossipVerdict> for MessageAcceptance {
    fn from(verdict: GossipVerdict) -> Self {
        match verdict {
            GossipVerdict::Accept => Self::Accept,
            GossipVerdict::Reject => Self::Reject,
            GossipVerdict::Ignore => Self::Ignore,
        }
    }
}

/// The id of a message with `data`: its SHA-256 (content addressing).
pub fn message_id(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Builds the gossipsub behaviour: signed with `key`, strict validation, node-side validation,
/// content-addressed ids, the size and cache bounds above, and peer scoring.
pub(crate) fn new_behaviour(
    key: &Keypair,
) -> Result<GossipBehaviour, Box<dyn std::error::Error + Send + Sync>> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|message: &gossipsub::Message| MessageId::new(&message_id(&message.data)))
        .max_transmit_size(MAX_GOSSIP_TRANSMIT_BYTES)
        .duplicate_cache_time(DUPLICATE_CACHE_TIME)
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .history_length(HISTORY_LENGTH)
        .connection_handler_queue_len(HANDLER_QUEUE_LEN)
        .max_control_messages_sent(MAX_CONTROL_IDS)
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let filter = MaxCountSubscriptionFilter {
        filter: AllowAllSubscriptionFilter {},
        max_subscribed_topics: MAX_PEER_TOPICS,
        max_subscriptions_per_request: MAX_SUBSCRIPTIONS_PER_RPC,
    };
    let mut behaviour = gossipsub::Behaviour::new_with_subscription_filter(
        MessageAuthenticity::Signed(key.clone()),
        config,
        filter,
    )?;
    behaviour.with_peer_score(peer_score_params(), peer_score_thresholds())?;
    Ok(StreamsIdle(behaviour))
}

/// Peer-wide score parameters.
///
/// - Positive topic contributions are capped at 20 in total (`topic_score_cap`), so a peer that
///   has been around for long cannot bank enough credit to get away with invalid messages.
/// - IP colocation (P6): more than 10 peers from one IP cost `-5 × excess²`; loopback is
///   exempt (local processes).
/// - Behaviour penalties (P7: GRAFT during backoff, IHAVE promises not kept) and slow-peer
///   penalties keep libp2p's defaults.
/// - Counters decay every second; a disconnected peer's score is kept for an hour, so leaving
///   and coming back does not reset a penalty.
pub fn peer_score_params() -> PeerScoreParams {
    let mut whitelist: HashSet<IpAddr> = HashSet::new();
    whitelist.insert(IpAddr::from([127, 0, 0, 1]));
    whitelist.insert(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]));
    PeerScoreParams {
        topic_score_cap: 20.0,
        // No application-specific score is set today; the weight is there for the node.
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: -5.0,
        ip_colocation_factor_threshold: 10.0,
        ip_colocation_factor_whitelist: whitelist,
        retain_score: Duration::from_secs(3600),
        ..PeerScoreParams::default()
    }
}

/// Score thresholds. A peer's score starts at 0; each invalid message on a channel topic costs
/// `-10 × n²` (n = its invalid messages, decaying over about an hour), against at most +20 of
/// credit:
///
/// | threshold | value | below it … |
/// |---|---|---|
/// | `gossip_threshold` | -10 | no IHAVE/IWANT gossip is exchanged with the peer (2 invalid messages) |
/// | `publish_threshold` | -40 | our own messages are not flood-published to it (3 invalid) |
/// | `graylist_threshold` | -80 | everything it sends is ignored (3–4 invalid) |
/// | `accept_px_threshold` | 20 | (peer exchange is off; kept high so it stays off in effect) |
/// | `opportunistic_graft_threshold` | 5 | a mesh whose median score is lower grafts better peers |
pub fn peer_score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -40.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 20.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Score parameters for a `rhizo/channel/*` topic, set when the node subscribes to one.
///
/// - P1 (time in mesh): up to +10 after an hour in the mesh.
/// - P2 (first deliveries): +1 per first delivery of a valid message, capped at 10, decaying
///   over about ten minutes.
/// - P3/P3b (mesh delivery rate): off. Channels are quiet most of the time; demanding a
///   delivery rate would punish honest peers of idle channels.
/// - P4 (invalid messages): `-10 × n²`, n decaying to a tenth over an hour. Applied when the
///   node reports [`GossipVerdict::Reject`].
pub fn channel_topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 10.0 / 3600.0,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: score_parameter_decay(Duration::from_secs(3600)),
        ..TopicScoreParams::default()
    }
}

/// Whether `topic` is one of rhizo's channel topics (`rhizo/channel/…`).
pub fn is_channel_topic(topic: &str) -> bool {
    topic.len() > CHANNEL_TOPIC_PREFIX.len() && topic.starts_with(CHANNEL_TOPIC_PREFIX)
}

/// Gossip requests from the [`Client`] to the event loop.
#[derive(Debug)]
pub(crate) enum GossipCommand {
    Subscribe {
        topic: String,
        reply: oneshot::Sender<Result<bool, NetError>>,
    },
    Unsubscribe {
        topic: String,
        reply: oneshot::Sender<Result<bool, NetError>>,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    Report {
        message_id: Vec<u8>,
        propagation_source: PeerId,
        verdict: GossipVerdict,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Peers {
        topic: String,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
}

fn check_topic(topic: &str) -> Result<(), NetError> {
    if topic.is_empty() {
        return Err(NetError::Gossip("the topic name is empty".into()));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(NetError::Gossip(format!(
            "the topic name is {} bytes long; at most {MAX_TOPIC_BYTES} are allowed",
            topic.len()
        )));
    }
    Ok(())
}

fn publish_error(e: &PublishError) -> NetError {
    NetError::Gossip(match e {
        PublishError::NoPeersSubscribedToTopic => {
            "insufficient peers: no connected peer is subscribed to the topic".into()
        }
        PublishError::Duplicate => "this content was already published (same message id)".into(),
        PublishError::MessageTooLarge => {
            format!("the message exceeds {MAX_GOSSIP_TRANSMIT_BYTES} bytes")
        }
        PublishError::AllQueuesFull(n) => {
            format!("the send queues of all {n} peers are full; try again later")
        }
        PublishError::SigningError(e) => format!("cannot sign the message: {e}"),
        other => other.to_string(),
    })
}

/// Runs one gossip command against the swarm.
pub(crate) fn handle_command(swarm: &mut Swarm<Behaviour>, command: GossipCommand) {
    let gossipsub = &mut swarm.behaviour_mut().gossipsub;
    match command {
        GossipCommand::Subscribe { topic, reply } => {
            let result = check_topic(&topic).and_then(|()| {
                let ident = IdentTopic::new(topic.clone());
                if is_channel_topic(&topic) {
                    // Scoring is always on, so this cannot fail; log it if it ever does.
                    if let Err(e) =
                        gossipsub.set_topic_params(ident.clone(), channel_topic_params())
                    {
                        warn!(%topic, error = e, "no score parameters for the channel topic");
                    }
                }
                gossipsub
                    .subscribe(&ident)
                    .map_err(|e| NetError::Gossip(format!("cannot subscribe: {e}")))
            });
            let _ = reply.send(result);
        }
        GossipCommand::Unsubscribe { topic, reply } => {
            let result =
                check_topic(&topic).map(|()| gossipsub.unsubscribe(&IdentTopic::new(topic)));
            let _ = reply.send(result);
        }
        GossipCommand::Publish { topic, data, reply } => {
            let result = check_topic(&topic).and_then(|()| {
                if data.len() > MAX_GOSSIP_DATA_BYTES {
                    return Err(NetError::Gossip(format!(
                        "the message is {} bytes; at most {MAX_GOSSIP_DATA_BYTES} can be \
                         published",
                        data.len()
                    )));
                }
                gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map(|id| id.0)
                    .map_err(|e| publish_error(&e))
            });
            let _ = reply.send(result);
        }
        GossipCommand::Report {
            message_id,
            propagation_source,
            verdict,
            reply,
        } => {
            let held = gossipsub.report_message_validation_result(
                &MessageId(message_id),
                &propagation_source,
                verdict.into(),
            );
            let _ = reply.send(if held {
                Ok(())
            } else {
                Err(NetError::Gossip(
                    "the message is no longer held for validation (expired, or already \
                     rejected or ignored)"
                        .into(),
                ))
            });
        }
        GossipCommand::Peers { topic, reply } => {
            let hash = TopicHash::from_raw(topic);
            let mut peers: Vec<PeerId> = if gossipsub.topics().any(|t| *t == hash) {
                gossipsub.mesh_peers(&hash).copied().collect()
            } else {
                gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(peer, _)| *peer)
                    .collect()
            };
            peers.sort();
            let _ = reply.send(Ok(peers));
        }
    }
}

/// Handles one gossipsub event: hands inbound messages to the node (or ignores them when the
/// node's event channel is full), logs the rest.
pub(crate) fn on_event(
    swarm: &mut Swarm<Behaviour>,
    events: &mpsc::Sender<NetEvent>,
    event: gossipsub::Event,
) {
    match event {
        gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } => {
            let event = NetEvent::GossipMessage {
                propagation_source,
                message_id: message_id.0.clone(),
                topic: message.topic.into_string(),
                data: message.data,
            };
            match events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(
                        %propagation_source,
                        "gossip message dropped: the node is not keeping up with network events"
                    );
                    swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    debug!("node stopped listening to network events");
                }
            }
        }
        gossipsub::Event::Subscribed { peer_id, topic } => {
            debug!(%peer_id, %topic, "peer subscribed");
        }
        gossipsub::Event::Unsubscribed { peer_id, topic } => {
            debug!(%peer_id, %topic, "peer unsubscribed");
        }
        gossipsub::Event::GossipsubNotSupported { peer_id } => {
            debug!(%peer_id, "peer does not speak gossipsub");
        }
        gossipsub::Event::SlowPeer {
            peer_id,
            failed_messages,
        } => {
            debug!(%peer_id, ?failed_messages, "gossip peer is slow");
        }
    }
}

impl Client {
    async fn gossip<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, NetError>>) -> GossipCommand,
    ) -> Result<T, NetError> {
        self.call(|reply| Command::Gossip(make(reply))).await?
    }

    /// Subscribes to `topic` (at most [`MAX_TOPIC_BYTES`] bytes). `Ok(true)` when subscribed
    /// now, `Ok(false)` when already subscribed. Topics named `rhizo/channel/…` get
    /// [`channel_topic_params`] for peer scoring. Messages on the topic arrive as
    /// [`NetEvent::GossipMessage`] and each needs a [`report_validation`](Self::report_validation).
    pub async fn subscribe(&self, topic: String) -> Result<bool, NetError> {
        self.gossip(|reply| GossipCommand::Subscribe { topic, reply })
            .await
    }

    /// Unsubscribes from `topic`. `Ok(true)` when this node was subscribed.
    pub async fn unsubscribe(&self, topic: String) -> Result<bool, NetError> {
        self.gossip(|reply| GossipCommand::Unsubscribe { topic, reply })
            .await
    }

    /// Publishes `data` (at most [`MAX_GOSSIP_DATA_BYTES`]) on `topic`, signed with the node
    /// key, and returns its message id (the SHA-256 of `data`, see [`message_id`]). The node
    /// need not be subscribed. [`NetError::Gossip`] when no connected peer is subscribed to the
    /// topic ("insufficient peers"), when the same data was published recently (duplicate), or
    /// when it is too large.
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.gossip(|reply| GossipCommand::Publish { topic, data, reply })
            .await
    }

    /// Reports the node's verdict on an inbound message ([`NetEvent::GossipMessage`]'s
    /// `message_id` and `propagation_source`). Call it exactly once per message (a second
    /// `Accept` would forward it again), within [`VALIDATION_WINDOW`]. [`NetError::Gossip`] when
    /// the message is no longer held (expired, or already rejected or ignored): harmless, there
    /// is nothing left to forward or drop.
    pub async fn report_validation(
        &self,
        message_id: Vec<u8>,
        propagation_source: PeerId,
        verdict: GossipVerdict,
    ) -> Result<(), NetError> {
        self.gossip(|reply| GossipCommand::Report {
            message_id,
            propagation_source,
            verdict,
            reply,
        })
        .await
    }

    /// The gossip peers of `topic`, sorted: when this node is subscribed, its mesh for the
    /// topic (the peers it forwards the topic's messages to, grafted on the heartbeat after
    /// subscribing); otherwise the connected peers known to be subscribed (those a
    /// [`publish`](Self::publish) reaches).
    pub async fn gossip_peers(&self, topic: String) -> Result<Vec<PeerId>, NetError> {
        self.gossip(|reply| GossipCommand::Peers { topic, reply })
            .await
    }
}

/// Wraps a behaviour so that its streams do not keep connections alive.
///
/// gossipsub 0.50 opens a stream to every peer on connect and never closes it, and libp2p keeps
/// a connection alive while any stream is open: with gossipsub in the behaviour, no connection
/// would ever close for idleness. Behind this wrapper gossipsub's streams are ignored by the
/// keep-alive algorithm (as ping's are); gossipsub still keeps its **mesh** connections alive
/// through its handler's own keep-alive, and every other connection idles out as before.
#[derive(Debug)]
pub struct StreamsIdle<B>(B);

impl<B> std::ops::Deref for StreamsIdle<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.0
    }
}

impl<B> std::ops::DerefMut for StreamsIdle<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.0
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for StreamsIdle<B> {
    type ConnectionHandler = IdleHandler<THandler<B>>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.0
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
            .map(IdleHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.0.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
            .map(IdleHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.0.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

/// The connection handler of [`StreamsIdle`]: the inner handler, with its streams marked
/// [`Stream::ignore_for_keep_alive`] as they are negotiated.
#[derive(Debug)]
pub struct IdleHandler<H>(H);

/// A stream upgrade that marks the stream [`Stream::ignore_for_keep_alive`] before running the
/// inner upgrade.
#[derive(Debug, Clone)]
pub struct IdleUpgrade<U>(U);

impl<U: UpgradeInfoSend> UpgradeInfo for IdleUpgrade<U> {
    type Info = U::Info;
    type InfoIter = U::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        UpgradeInfoSend::protocol_info(&self.0)
    }
}

impl<U: InboundUpgradeSend> upgrade::InboundUpgrade<Stream> for IdleUpgrade<U> {
    type Output = U::Output;
    type Error = U::Error;
    type Future = U::Future;

    fn upgrade_inbound(self, mut socket: Stream, info: Self::Info) -> Self::Future {
        socket.ignore_for_keep_alive();
        InboundUpgradeSend::upgrade_inbound(self.0, socket, info)
    }
}

impl<U: OutboundUpgradeSend> upgrade::OutboundUpgrade<Stream> for IdleUpgrade<U> {
    type Output = U::Output;
    type Error = U::Error;
    type Future = U::Future;

    fn upgrade_outbound(self, mut socket: Stream, info: Self::Info) -> Self::Future {
        socket.ignore_for_keep_alive();
        OutboundUpgradeSend::upgrade_outbound(self.0, socket, info)
    }
}

impl<H: ConnectionHandler> ConnectionHandler for IdleHandler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = IdleUpgrade<H::InboundProtocol>;
    type OutboundProtocol = IdleUpgrade<H::OutboundProtocol>;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.0.listen_protocol().map_upgrade(IdleUpgrade)
    }

    fn connection_keep_alive(&self) -> bool {
        self.0.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        self.0.poll(cx).map(|event| event.map_protocol(IdleUpgrade))
    }

    fn poll_close(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::ToBehaviour>> {
        self.0.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.0.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let inner = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info }) => {
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol,
                info,
            }) => {
                ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol, info })
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error }) => {
                ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error })
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error }) => {
                ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error })
            }
            ConnectionEvent::AddressChange(change) => ConnectionEvent::AddressChange(change),
            ConnectionEvent::LocalProtocolsChange(change) => {
                ConnectionEvent::LocalProtocolsChange(change)
            }
            ConnectionEvent::RemoteProtocolsChange(change) => {
                ConnectionEvent::RemoteProtocolsChange(change)
            }
            // A kind of event added in a later libp2p; nothing to pass on that this handler
            // knows how to translate.
            _ => return,
        };
        self.0.on_connection_event(inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_parameters_are_valid() {
        let mut params = peer_score_params();
        params.topics.insert(
            TopicHash::from_raw("rhizo/channel/x"),
            channel_topic_params(),
        );
        params.validate().expect("peer score params");
        peer_score_thresholds().validate().expect("thresholds");
        channel_topic_params().validate().expect("topic params");
    }

    #[test]
    fn message_id_is_the_sha256_of_the_data() {
        let id = message_id(b"abc");
        assert_eq!(id.len(), 32);
        assert_eq!(id[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(id, message_id(b"abc"));
    }

    #[test]
    fn channel_topics_are_recognised() {
        assert!(is_channel_topic("rhizo/channel/abc"));
        assert!(!is_channel_topic("rhizo/channel/"));
        assert!(!is_channel_topic("other/topic"));
    }

    #[test]
    fn behaviour_builds() {
        new_behaviour(&Keypair::generate_ed25519()).expect("gossipsub behaviour");
    }
}
