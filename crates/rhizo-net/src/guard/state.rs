//! [`GuardState`]: the event loop's side of the [guard](super): the guard commands of the
//! [`Client`], trusted-peer redials with backoff, and the bookkeeping that tells a misbehaving
//! peer from an honest one (an inbound request that timed out while the node held it is the
//! node's slowness, not the peer's fault).

use std::{
    collections::{HashMap, HashSet},
    io,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use libp2p::{
    Multiaddr, PeerId, Swarm, identify, kad,
    request_response::{self, InboundRequestId},
    swarm::{
        DialError, StreamUpgradeError, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::sync::oneshot;
use tracing::debug;

use super::{BanInfo, MAX_TRUSTED_PEERS, Misbehaviour, redial::RedialSchedule};
use crate::{
    NetError,
    behaviour::Behaviour,
    client::{Client, Command},
};

/// First delay before a trusted peer is redialled; doubles after each failure.
pub const TRUSTED_REDIAL_MIN: Duration = Duration::from_secs(5);
/// Longest delay between redials of a trusted peer.
pub const TRUSTED_REDIAL_MAX: Duration = Duration::from_secs(60);
/// Addresses kept per trusted peer, and added per [`Client::add_addresses`] call.
///
/// [`Client::add_addresses`]: crate::Client::add_addresses
pub const MAX_ADDRS_PER_CALL: usize = 8;
/// Inbound requests remembered as delivered to the node (to tell its slowness from a peer's).
const MAX_TRACKED_INBOUND: usize = 8192;

/// Guard calls from the [`Client`], each with its reply.
#[derive(Debug)]
pub(crate) enum GuardCommand {
    SetProtected(Vec<PeerId>, oneshot::Sender<()>),
    BanPeer {
        peer: PeerId,
        until: Option<Instant>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    UnbanPeer(PeerId, oneshot::Sender<()>),
    BanCidr(IpNet, oneshot::Sender<Result<(), NetError>>),
    UnbanCidr(IpNet, oneshot::Sender<()>),
    Bans(oneshot::Sender<Vec<BanInfo>>),
    Disconnect(PeerId, oneshot::Sender<bool>),
    AddAddresses {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<usize>,
    },
}

/// The event loop's side of the guard: trusted-peer redials, the guard commands, and the
/// bookkeeping that tells a misbehaving peer from an honest one.
#[derive(Debug, Default)]
pub(crate) struct GuardState {
    /// The trusted peers' addresses.
    trusted: HashMap<PeerId, Vec<Multiaddr>>,
    /// When each is redialled ([`RedialSchedule`], on tokio's clock).
    redials: RedialSchedule,
    /// Inbound requests delivered to the node and not yet answered, by protocol.
    inbound_delivered: HashSet<(&'static str, InboundRequestId)>,
    /// Set when `inbound_delivered` was full: timeouts are not blamed on peers until it empties.
    inbound_overflow: bool,
}

impl GuardState {
    /// Dials the trusted peers (grouped by peer id, at most [`MAX_TRUSTED_PEERS`] with
    /// [`MAX_ADDRS_PER_CALL`] addresses each).
    pub(crate) fn start_trusted(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        trusted: &[(PeerId, Multiaddr)],
    ) {
        let local = *swarm.local_peer_id();
        for (peer, addr) in trusted {
            if *peer == local {
                continue;
            }
            if !self.trusted.contains_key(peer) && self.trusted.len() >= MAX_TRUSTED_PEERS {
                continue;
            }
            let addrs = self.trusted.entry(*peer).or_default();
            self.redials.track(*peer);
            if addrs.len() < MAX_ADDRS_PER_CALL && !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        let peers: Vec<PeerId> = self.trusted.keys().copied().collect();
        for peer in peers {
            self.dial_trusted(swarm, peer);
        }
    }

    fn dial_trusted(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId) {
        let Some(addrs) = self.trusted.get(&peer) else {
            return;
        };
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs.clone())
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match swarm.dial(opts) {
            Ok(()) => debug!(%peer, "dialling trusted peer"),
            // Connected or a dial under way: its outcome is followed like any other.
            Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => {
                debug!(%peer, error = %e, "trusted peer dial not started");
                self.schedule_redial(peer);
            }
        }
    }

    /// Schedules a redial after the current backoff (unless one is scheduled).
    fn schedule_redial(&mut self, peer: PeerId) {
        if let Some(delay) = self.redials.failed(&peer, tokio::time::Instant::now()) {
            debug!(%peer, ?delay, "trusted peer redial scheduled");
        }
    }

    /// Resolves when a trusted-peer redial is due; never while none is scheduled.
    pub(crate) async fn redial_due(&self) {
        match self.redials.next_due() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Redials the trusted peers whose time has come.
    pub(crate) fn on_redial(&mut self, swarm: &mut Swarm<Behaviour>) {
        for peer in self.redials.take_due(tokio::time::Instant::now()) {
            if !swarm.is_connected(&peer) {
                self.dial_trusted(swarm, peer);
            }
        }
    }

    /// Follows connections to trusted peers: a connection resets the backoff; losing the last
    /// one, or a failed dial, schedules a redial.
    pub(crate) fn on_swarm_event<E>(&mut self, swarm: &Swarm<Behaviour>, event: &SwarmEvent<E>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => self.redials.connected(peer_id),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.schedule_redial(*peer_id),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } if !matches!(error, DialError::DialPeerConditionFalse(_))
                && !swarm.is_connected(peer_id) =>
            {
                self.schedule_redial(*peer_id);
            }
            _ => {}
        }
    }

    /// Runs one guard call.
    pub(crate) fn handle_command(&mut self, swarm: &mut Swarm<Behaviour>, command: GuardCommand) {
        match command {
            GuardCommand::SetProtected(peers, reply) => {
                swarm.behaviour_mut().guard.set_protected(peers);
                let _ = reply.send(());
            }
            GuardCommand::BanPeer { peer, until, reply } => {
                let result = swarm.behaviour_mut().guard.ban_peer(peer, until);
                if result.is_ok() && swarm.behaviour().guard.is_peer_banned(&peer) {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                let _ = reply.send(result.map_err(|e| NetError::TooManyBans { max: e.max }));
            }
            GuardCommand::UnbanPeer(peer, reply) => {
                swarm.behaviour_mut().guard.unban_peer(&peer);
                let _ = reply.send(());
            }
            GuardCommand::BanCidr(net, reply) => {
                let result = match swarm.behaviour_mut().guard.ban_cidr(net) {
                    Ok(inside) => {
                        for id in inside {
                            swarm.close_connection(id);
                        }
                        Ok(())
                    }
                    Err(e) => Err(NetError::TooManyBans { max: e.max }),
                };
                let _ = reply.send(result);
            }
            GuardCommand::UnbanCidr(net, reply) => {
                swarm.behaviour_mut().guard.unban_cidr(net);
                let _ = reply.send(());
            }
            GuardCommand::Bans(reply) => {
                let _ = reply.send(swarm.behaviour_mut().guard.bans());
            }
            GuardCommand::Disconnect(peer, reply) => {
                let _ = reply.send(swarm.disconnect_peer_id(peer).is_ok());
            }
            GuardCommand::AddAddresses { peer, addrs, reply } => {
                let mut added = 0;
                let guard = &swarm.behaviour().guard;
                let usable = *swarm.local_peer_id() != peer && !guard.is_peer_banned(&peer);
                let addrs: Vec<Multiaddr> = if usable {
                    addrs
                        .into_iter()
                        .filter(|a| {
                            guard.is_addr_allowed(a)
                                && crate::peer_id_of(a).is_none_or(|p| p == peer)
                        })
                        .take(MAX_ADDRS_PER_CALL)
                        .collect()
                } else {
                    Vec::new()
                };
                for addr in addrs {
                    if !matches!(
                        swarm.behaviour_mut().kad.add_address(&peer, addr),
                        kad::RoutingUpdate::Failed
                    ) {
                        added += 1;
                    }
                }
                let _ = reply.send(added);
            }
        }
    }

    /// Notes an inbound request that reached the node (`protocol` names its protocol).
    pub(crate) fn request_delivered(&mut self, protocol: &'static str, id: InboundRequestId) {
        if self.inbound_delivered.len() >= MAX_TRACKED_INBOUND {
            self.inbound_overflow = true;
        } else {
            self.inbound_delivered.insert((protocol, id));
        }
    }

    /// Notes that an inbound request was answered.
    pub(crate) fn request_answered(&mut self, protocol: &'static str, id: InboundRequestId) {
        self.inbound_delivered.remove(&(protocol, id));
        if self.inbound_delivered.is_empty() {
            self.inbound_overflow = false;
        }
    }

    /// Whether an inbound failure is the requester's fault, and how. A timeout counts only when
    /// the request itself never arrived (the node's own slowness is not the peer's fault);
    /// closed connections, unsupported protocols and truncated streams happen to honest peers.
    pub(crate) fn inbound_misbehaviour(
        &mut self,
        protocol: &'static str,
        id: InboundRequestId,
        error: &request_response::InboundFailure,
    ) -> Option<Misbehaviour> {
        // A timeout is the peer's only if the request never reached the node, and the
        // bookkeeping is complete (not overflowed).
        let never_arrived =
            !self.inbound_delivered.contains(&(protocol, id)) && !self.inbound_overflow;
        self.request_answered(protocol, id);
        classify_inbound(error, never_arrived)
    }
}

/// [`GuardState::inbound_misbehaviour`] once it is known whether the request never arrived.
fn classify_inbound(
    error: &request_response::InboundFailure,
    never_arrived: bool,
) -> Option<Misbehaviour> {
    match error {
        request_response::InboundFailure::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            Some(Misbehaviour::OversizedFrame)
        }
        request_response::InboundFailure::Timeout if never_arrived => Some(Misbehaviour::Timeout),
        _ => None,
    }
}

/// Whether an outbound failure is the responder's fault: a response whose length prefix
/// exceeds the limit ([`FrameCodec`](crate::FrameCodec) refuses it with `InvalidData`; an
/// oversized request of ours fails with `InvalidInput` instead). Timeouts are not blamed: a
/// slow network looks the same.
pub(crate) fn outbound_misbehaviour(
    error: &request_response::OutboundFailure,
) -> Option<Misbehaviour> {
    match error {
        request_response::OutboundFailure::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            Some(Misbehaviour::OversizedFrame)
        }
        _ => None,
    }
}

/// Whether an identify failure is the peer's fault: a public key that does not decode.
pub(crate) fn identify_misbehaviour(
    error: &StreamUpgradeError<identify::UpgradeError>,
) -> Option<Misbehaviour> {
    match error {
        StreamUpgradeError::Apply(identify::UpgradeError::PublicKey(_)) => {
            Some(Misbehaviour::MalformedFrame)
        }
        _ => None,
    }
}

impl Client {
    /// Replaces the set of protected peers (those the node has an open conversation with; at
    /// most [`MAX_PROTECTED_PEERS`](super::MAX_PROTECTED_PEERS)): their connections bypass the count limits and are never
    /// closed for idleness. Others' connections close after the idle timeout as usual.
    pub async fn set_protected(&self, peers: Vec<PeerId>) -> Result<(), NetError> {
        self.call(|reply| Command::Guard(GuardCommand::SetProtected(peers, reply)))
            .await
    }

    /// Bans `peer` until `until` (`None`: until [`unban_peer`](Self::unban_peer) or a
    /// restart): its connections close now and it is refused in both directions, trusted or
    /// not. An expired ban lapses by itself. Fails when [`MAX_PEER_BANS`](super::MAX_PEER_BANS) bans are in force.
    pub async fn ban_peer(&self, peer: PeerId, until: Option<Instant>) -> Result<(), NetError> {
        self.call(|reply| Command::Guard(GuardCommand::BanPeer { peer, until, reply }))
            .await?
    }

    /// Lifts a ban on `peer` (nothing happens if there is none).
    pub async fn unban_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::Guard(GuardCommand::UnbanPeer(peer, reply)))
            .await
    }

    /// Bans an IP range until [`unban_cidr`](Self::unban_cidr) or a restart: connections from or
    /// to it close now, and new ones are refused in both directions (inbound before the
    /// handshake). Fails when [`MAX_CIDR_BANS`](super::MAX_CIDR_BANS) ranges are banned.
    pub async fn ban_cidr(&self, net: IpNet) -> Result<(), NetError> {
        self.call(|reply| Command::Guard(GuardCommand::BanCidr(net, reply)))
            .await?
    }

    /// Lifts a ban on exactly this IP range (host bits ignored; nothing happens if there is
    /// none). A configured range can be lifted too, until the next start.
    pub async fn unban_cidr(&self, net: IpNet) -> Result<(), NetError> {
        self.call(|reply| Command::Guard(GuardCommand::UnbanCidr(net, reply)))
            .await
    }

    /// The bans in force (configured and run-time): peers, then IP ranges.
    pub async fn bans(&self) -> Result<Vec<BanInfo>, NetError> {
        self.call(|reply| Command::Guard(GuardCommand::Bans(reply)))
            .await
    }

    /// Closes every connection to `peer` now; `true` if it was connected. Nothing stops it from
    /// connecting again (see [`ban_peer`](Self::ban_peer)); a trusted peer is redialled after
    /// the backoff.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.call(|reply| Command::Guard(GuardCommand::Disconnect(peer, reply)))
            .await
    }

    /// Adds addresses of `peer` (learnt by peer exchange) to Kademlia's routing table: at most
    /// [`MAX_ADDRS_PER_CALL`], skipping addresses in banned ranges or naming another peer, and
    /// nothing for a banned peer or this node. Returns how many Kademlia took.
    pub async fn add_addresses(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    ) -> Result<usize, NetError> {
        self.call(|reply| Command::Guard(GuardCommand::AddAddresses { peer, addrs, reply }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_faults_of_the_peer_are_misbehaviour() {
        use request_response::{InboundFailure, OutboundFailure};
        let invalid = || io::Error::new(io::ErrorKind::InvalidData, "frame too large");
        assert_eq!(
            classify_inbound(&InboundFailure::Io(invalid()), false),
            Some(Misbehaviour::OversizedFrame)
        );
        assert_eq!(
            classify_inbound(&InboundFailure::Timeout, true),
            Some(Misbehaviour::Timeout)
        );
        // The node was slow to answer a request that did arrive: not the peer's fault.
        assert_eq!(classify_inbound(&InboundFailure::Timeout, false), None);
        for honest in [
            InboundFailure::ConnectionClosed,
            InboundFailure::UnsupportedProtocols,
            InboundFailure::ResponseOmission,
            InboundFailure::Io(io::ErrorKind::UnexpectedEof.into()),
            InboundFailure::Io(io::ErrorKind::ConnectionReset.into()),
        ] {
            assert_eq!(classify_inbound(&honest, true), None, "{honest:?}");
        }
        assert_eq!(
            outbound_misbehaviour(&OutboundFailure::Io(invalid())),
            Some(Misbehaviour::OversizedFrame)
        );
        for honest in [
            OutboundFailure::Timeout,
            OutboundFailure::DialFailure,
            OutboundFailure::ConnectionClosed,
            OutboundFailure::UnsupportedProtocols,
            // Our own oversized request, refused before it was sent.
            OutboundFailure::Io(io::ErrorKind::InvalidInput.into()),
        ] {
            assert_eq!(outbound_misbehaviour(&honest), None, "{honest:?}");
        }
    }
}
