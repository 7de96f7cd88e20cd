//! NAT traversal: AutoNAT, the circuit relay (server and client), DCUtR hole punching and
//! (optionally) UPnP port mapping, plus the event-loop side of [`Client::reachability`].
//!
//! - **AutoNAT (v1)** asks connected peers (and the configured relays) to dial this node back
//!   and so learns whether it is publicly reachable; confirmed addresses become external
//!   addresses. It also answers other nodes' probes, rate-limited, and only for peers seen at a
//!   global IP address (a node on a LAN or on loopback neither probes nor is probed: its status
//!   stays "unknown").
//! - **Relay server** (`NetConfig::relay_server`, off by default): other nodes may reserve a
//!   slot here and be reached through `<this node>/p2p-circuit/p2p/<them>`. libp2p's limits
//!   apply ([`relay_server_config`]). A reservation tells the client this node's external
//!   addresses, so a relay needs one (`--announce`, an AutoNAT-confirmed address, or
//!   [`Client::add_external_address`]); without it, reservations fail at the client.
//! - **Relay client** (always on): this node can dial `…/p2p-circuit/p2p/<peer>` addresses, and
//!   reserves a slot on every relay in `NetConfig::relays`: it dials them at start, listens on
//!   `<relay>/p2p-circuit` once connected, and listens again when the reservation is lost or
//!   refused, after a backoff ([`RELAY_RETRY_BASE`] doubling up to [`RELAY_RETRY_MAX`]), for at
//!   most [`MAX_RELAY_RETRIES`] attempts in a row (a later connection to the relay starts over).
//! - **DCUtR** upgrades a relayed connection to a direct one by hole punching; successes are
//!   counted in [`Reachability::hole_punches`].
//! - **UPnP** (`NetConfig::upnp`, off by default) asks the LAN's gateway to map the listen
//!   ports. It multicasts on the local network, so it is only ever constructed when enabled.
//!
//! [`Client::reachability`]: crate::Client::reachability
//! [`Client::add_external_address`]: crate::Client::add_external_address

use std::time::Duration;

use libp2p::{
    Multiaddr, PeerId, Swarm, autonat,
    core::transport::ListenerId,
    dcutr,
    multiaddr::Protocol,
    relay,
    swarm::{DialError, SwarmEvent, dial_opts::DialOpts},
    upnp,
};
use serde::{Deserialize, Serialize};
use tokio::{sync::oneshot, time::Instant};
use tracing::{debug, info, warn};

use crate::{
    Client, NetError,
    behaviour::{Behaviour, BehaviourEvent},
    client::Command,
    event_loop::NetEvent,
    peer_id_of,
};

/// Relays a node reserves slots on; further entries of `NetConfig::relays` are ignored.
pub const MAX_RELAYS: usize = 8;
/// The first wait before listening on a relay again after a lost or refused reservation.
pub const RELAY_RETRY_BASE: Duration = Duration::from_secs(2);
/// The longest wait between two attempts on one relay.
pub const RELAY_RETRY_MAX: Duration = Duration::from_secs(5 * 60);
/// Attempts in a row on one relay before the node stops trying (until it connects to the
/// relay again for another reason).
pub const MAX_RELAY_RETRIES: u32 = 8;

/// How reachable this node is, for `rhizo status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// AutoNAT's verdict: `"public"`, `"private"` or `"unknown"`.
    pub nat_status: String,
    /// Confirmed external addresses (announced, confirmed by AutoNAT, or mapped by UPnP), not
    /// counting relayed ones.
    pub public_addrs: Vec<Multiaddr>,
    /// Our `/p2p-circuit` listen addresses: where others reach us through a relay.
    pub relayed_addrs: Vec<Multiaddr>,
    /// Whether this node serves as a relay for others.
    pub relay_server: bool,
    /// Whether UPnP port mapping is on.
    pub upnp: bool,
    /// Relayed connections upgraded to direct ones by DCUtR hole punching since start.
    pub hole_punches: u64,
}

impl Reachability {
    /// One word for `rhizo status`: `"public"` (AutoNAT says so, or there is a confirmed
    /// external address), `"via relay"` (reachable through a relay reservation), `"LAN only"`
    /// (AutoNAT says private and no relay holds a slot) or `"unknown"` (nothing confirmed yet,
    /// e.g. no public peer to probe with).
    pub fn describe(&self) -> &'static str {
        if self.nat_status == "public" || !self.public_addrs.is_empty() {
            "public"
        } else if !self.relayed_addrs.is_empty() {
            "via relay"
        } else if self.nat_status == "private" {
            "LAN only"
        } else {
            "unknown"
        }
    }
}

/// AutoNAT settings for a small network: few peers can serve as probe servers, so the same one
/// may be asked again sooner, and two agreeing answers settle the status.
pub fn autonat_config() -> autonat::Config {
    autonat::Config {
        timeout: Duration::from_secs(30),
        boot_delay: Duration::from_secs(10),
        retry_interval: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(10 * 60),
        throttle_server_period: Duration::from_secs(30),
        use_connected: true,
        confidence_max: 2,
        max_peer_addresses: 8,
        throttle_clients_global_max: 16,
        throttle_clients_peer_max: 2,
        throttle_clients_period: Duration::from_secs(1),
        only_global_ips: true,
    }
}

/// The relay server's limits: libp2p's defaults — at most 128 reservations (4 per peer) of an
/// hour each, 16 circuits (4 per peer) of at most 2 minutes and 128 KiB each, and rate limits
/// of 30 reservations and circuits per peer per 2 minutes and 60 per IP per minute. Relayed
/// connections are meant for coordination and small messages; DCUtR moves the rest onto a
/// direct connection.
pub fn relay_server_config() -> relay::Config {
    relay::Config::default()
}

/// The relay server behaviour, advertising the hop protocol regardless of AutoNAT (the
/// operator asked for it).
pub(crate) fn new_relay_server(peer: PeerId) -> relay::Behaviour {
    let mut server = relay::Behaviour::new(peer, relay_server_config());
    server.set_status(Some(relay::Status::Enable));
    server
}

/// The UPnP behaviour (starts searching for a gateway as soon as it is built).
pub(crate) fn new_upnp() -> upnp::tokio::Behaviour {
    upnp::tokio::Behaviour::default()
}

/// The AutoNAT behaviour.
pub(crate) fn new_autonat(peer: PeerId) -> autonat::Behaviour {
    autonat::Behaviour::new(peer, autonat_config())
}

/// The DCUtR behaviour.
pub(crate) fn new_dcutr(peer: PeerId) -> dcutr::Behaviour {
    dcutr::Behaviour::new(peer)
}

/// NAT requests from the [`Client`] to the event loop.
#[derive(Debug)]
pub(crate) enum NatCommand {
    Reachability(oneshot::Sender<Reachability>),
    AddExternalAddress(Multiaddr, oneshot::Sender<()>),
}

/// One relay this node keeps a reservation on.
#[derive(Debug)]
struct RelaySlot {
    peer: PeerId,
    /// The relay's address as configured, ending in `/p2p/<peer>`.
    addr: Multiaddr,
    /// The `/p2p-circuit` listener, while one is open or being set up.
    listener: Option<ListenerId>,
    /// Failed attempts in a row.
    failures: u32,
    /// When to try again, if a retry is scheduled.
    retry_at: Option<Instant>,
}

/// NAT traversal state kept by the event loop.
#[derive(Debug)]
pub(crate) struct NatState {
    nat_status: &'static str,
    hole_punches: u64,
    relays: Vec<RelaySlot>,
}

impl Default for NatState {
    fn default() -> Self {
        Self {
            nat_status: "unknown",
            hole_punches: 0,
            relays: Vec::new(),
        }
    }
}

fn status_name(status: &autonat::NatStatus) -> &'static str {
    match status {
        autonat::NatStatus::Public(_) => "public",
        autonat::NatStatus::Private => "private",
        autonat::NatStatus::Unknown => "unknown",
    }
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

impl NatState {
    /// Registers the configured relays, offers them to AutoNAT as probe servers, and dials them.
    pub(crate) fn start_relays(&mut self, swarm: &mut Swarm<Behaviour>, relays: &[Multiaddr]) {
        let local = *swarm.local_peer_id();
        for addr in relays {
            if self.relays.len() >= MAX_RELAYS {
                warn!(
                    max = MAX_RELAYS,
                    "too many relays configured; ignoring the rest"
                );
                break;
            }
            let Some(peer) = peer_id_of(addr) else {
                warn!(%addr, "relay address without /p2p/<peer id>; ignored");
                continue;
            };
            if peer == local || is_relayed(addr) || self.relays.iter().any(|s| s.peer == peer) {
                warn!(%addr, "relay address is ours, relayed, or a duplicate; ignored");
                continue;
            }
            swarm
                .behaviour_mut()
                .autonat
                .add_server(peer, Some(addr.clone()));
            self.relays.push(RelaySlot {
                peer,
                addr: addr.clone(),
                listener: None,
                failures: 0,
                retry_at: None,
            });
            let index = self.relays.len() - 1;
            self.dial_relay(swarm, index);
        }
    }

    /// Connects to a relay; the listen follows the connection (see [`Self::on_swarm_event`]).
    fn dial_relay(&mut self, swarm: &mut Swarm<Behaviour>, index: usize) {
        let slot = &self.relays[index];
        if swarm.is_connected(&slot.peer) {
            self.listen_on_relay(swarm, index);
            return;
        }
        let opts = DialOpts::peer_id(slot.peer)
            .addresses(vec![slot.addr.clone()])
            .build();
        match swarm.dial(opts) {
            Ok(()) => {}
            // Already being dialled (a bootstrap entry, say): its outcome arrives all the same.
            Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => {
                debug!(relay = %slot.peer, error = %e, "relay dial not started");
                self.schedule_retry(index);
            }
        }
    }

    fn listen_on_relay(&mut self, swarm: &mut Swarm<Behaviour>, index: usize) {
        let slot = &mut self.relays[index];
        let circuit = slot.addr.clone().with(Protocol::P2pCircuit);
        match swarm.listen_on(circuit.clone()) {
            Ok(id) => {
                debug!(%circuit, "asking the relay for a reservation");
                slot.listener = Some(id);
            }
            Err(e) => {
                warn!(%circuit, error = %e, "cannot listen through the relay");
                self.schedule_retry(index);
            }
        }
    }

    /// Schedules the next attempt on a relay, unless the attempts are used up.
    fn schedule_retry(&mut self, index: usize) {
        let slot = &mut self.relays[index];
        if slot.retry_at.is_some() {
            return;
        }
        if slot.failures >= MAX_RELAY_RETRIES {
            warn!(
                relay = %slot.peer,
                attempts = slot.failures,
                "giving up on the relay until it connects again"
            );
            return;
        }
        let delay = RELAY_RETRY_BASE
            .saturating_mul(1u32 << slot.failures.min(16))
            .min(RELAY_RETRY_MAX);
        slot.failures += 1;
        slot.retry_at = Some(Instant::now() + delay);
        debug!(relay = %slot.peer, ?delay, "relay reservation retry scheduled");
    }

    /// Resolves when a relay retry is due; never while none is scheduled.
    pub(crate) async fn retry_due(&self) {
        match self.relays.iter().filter_map(|s| s.retry_at).min() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Runs the relay retries that are due: listen again if still connected to the relay,
    /// dial it otherwise (the listen follows the connection).
    pub(crate) fn on_retry(&mut self, swarm: &mut Swarm<Behaviour>) {
        let now = Instant::now();
        for index in 0..self.relays.len() {
            let slot = &mut self.relays[index];
            if slot.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            slot.retry_at = None;
            if slot.listener.is_some() {
                continue;
            }
            self.dial_relay(swarm, index);
        }
    }

    /// Follows the swarm events that concern the relays: a connection to a relay opens the
    /// reservation, a closed relay listener (reservation lost or refused) or a failed dial
    /// schedules a retry.
    pub(crate) fn on_swarm_event<E>(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        event: &SwarmEvent<E>,
    ) -> Option<NetEvent> {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if !endpoint.is_relayed() => {
                let index = self.relays.iter().position(|s| s.peer == *peer_id)?;
                let slot = &mut self.relays[index];
                if slot.listener.is_none() && slot.retry_at.is_none() {
                    if slot.failures >= MAX_RELAY_RETRIES {
                        slot.failures = 0; // connected again: start over
                    }
                    self.listen_on_relay(swarm, index);
                }
                None
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let index = self
                    .relays
                    .iter()
                    .position(|s| s.listener == Some(*listener_id))?;
                let slot = &mut self.relays[index];
                slot.listener = None;
                let relay = slot.peer;
                match reason {
                    Ok(()) => info!(%relay, "relay reservation ended"),
                    Err(e) => warn!(%relay, error = %e, "relay reservation failed"),
                }
                self.schedule_retry(index);
                Some(NetEvent::RelayReservation {
                    relay,
                    accepted: false,
                })
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                ..
            } => {
                let index = self.relays.iter().position(|s| s.peer == *peer)?;
                if self.relays[index].listener.is_none() && !swarm.is_connected(peer) {
                    self.schedule_retry(index);
                }
                None
            }
            _ => None,
        }
    }

    /// Handles an event of the NAT behaviours (AutoNAT, relay server and client, DCUtR, UPnP);
    /// other events are ignored.
    pub(crate) fn on_event(&mut self, event: BehaviourEvent) -> Option<NetEvent> {
        match event {
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                info!(?old, ?new, "NAT status changed");
                self.nat_status = status_name(&new);
                Some(NetEvent::ReachabilityChanged {
                    nat_status: self.nat_status.to_string(),
                })
            }
            BehaviourEvent::Autonat(event) => {
                debug!(?event, "AutoNAT");
                None
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                if let Some(slot) = self.relays.iter_mut().find(|s| s.peer == relay_peer_id) {
                    slot.failures = 0;
                }
                if renewal {
                    debug!(relay = %relay_peer_id, "relay reservation renewed");
                    return None;
                }
                info!(relay = %relay_peer_id, "relay reservation accepted");
                Some(NetEvent::RelayReservation {
                    relay: relay_peer_id,
                    accepted: true,
                })
            }
            BehaviourEvent::RelayClient(event) => {
                debug!(?event, "relay client");
                None
            }
            BehaviourEvent::Relay(event) => {
                debug!(?event, "relay server");
                None
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                match result {
                    Ok(_) => {
                        self.hole_punches += 1;
                        info!(peer = %remote_peer_id, "hole punch succeeded: direct connection");
                    }
                    Err(e) => debug!(peer = %remote_peer_id, error = %e, "hole punch failed"),
                }
                None
            }
            BehaviourEvent::Upnp(event) => {
                match event {
                    upnp::Event::NewExternalAddr { external_addr, .. } => {
                        info!(%external_addr, "UPnP: port mapped");
                    }
                    upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                        info!(%external_addr, "UPnP: port mapping expired");
                    }
                    upnp::Event::GatewayNotFound => info!("UPnP: no gateway found"),
                    upnp::Event::NonRoutableGateway => {
                        info!("UPnP: the gateway is itself behind a NAT; no mapping");
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Runs one NAT command.
    pub(crate) fn handle_command(&mut self, swarm: &mut Swarm<Behaviour>, command: NatCommand) {
        match command {
            NatCommand::Reachability(reply) => {
                let _ = reply.send(self.reachability(swarm));
            }
            NatCommand::AddExternalAddress(addr, reply) => {
                info!(%addr, "external address added");
                swarm.add_external_address(addr);
                let _ = reply.send(());
            }
        }
    }

    fn reachability(&self, swarm: &Swarm<Behaviour>) -> Reachability {
        let behaviour = swarm.behaviour();
        Reachability {
            nat_status: self.nat_status.to_string(),
            public_addrs: swarm
                .external_addresses()
                .filter(|a| !is_relayed(a))
                .cloned()
                .collect(),
            relayed_addrs: swarm
                .listeners()
                .filter(|a| is_relayed(a))
                .cloned()
                .collect(),
            relay_server: behaviour.relay.is_enabled(),
            upnp: behaviour.upnp.is_enabled(),
            hole_punches: self.hole_punches,
        }
    }
}

impl Client {
    /// How reachable this node is: AutoNAT's verdict, confirmed external and relayed addresses,
    /// whether it relays for others and maps ports with UPnP, and how many hole punches
    /// succeeded. [`Reachability::describe`] sums it up in one word.
    pub async fn reachability(&self) -> Result<Reachability, NetError> {
        self.call(|reply| Command::Nat(NatCommand::Reachability(reply)))
            .await
    }

    /// Declares an address at which this node is reachable (e.g. a port forwarded by hand,
    /// once the bound port is known). It counts as confirmed: it is announced through identify,
    /// listed in [`Reachability::public_addrs`], and handed to relay clients in reservations
    /// when this node is a relay server.
    pub async fn add_external_address(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::Nat(NatCommand::AddExternalAddress(addr, reply)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(nat: &str, public: bool, relayed: bool) -> Reachability {
        let addr: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().expect("addr");
        Reachability {
            nat_status: nat.into(),
            public_addrs: if public { vec![addr.clone()] } else { vec![] },
            relayed_addrs: if relayed {
                vec![addr.with(Protocol::P2pCircuit)]
            } else {
                vec![]
            },
            relay_server: false,
            upnp: false,
            hole_punches: 0,
        }
    }

    #[test]
    fn describe_sums_up_reachability() {
        assert_eq!(reach("public", false, false).describe(), "public");
        assert_eq!(reach("unknown", true, true).describe(), "public");
        assert_eq!(reach("private", false, true).describe(), "via relay");
        assert_eq!(reach("private", false, false).describe(), "LAN only");
        assert_eq!(reach("unknown", false, false).describe(), "unknown");
    }

    #[test]
    fn retries_back_off_and_stop() {
        let mut state = NatState::default();
        let peer = PeerId::random();
        state.relays.push(RelaySlot {
            peer,
            addr: Multiaddr::empty().with(Protocol::P2p(peer)),
            listener: None,
            failures: 0,
            retry_at: None,
        });
        let mut delays = Vec::new();
        for _ in 0..MAX_RELAY_RETRIES + 2 {
            let before = Instant::now();
            state.schedule_retry(0);
            match state.relays[0].retry_at.take() {
                Some(at) => delays.push(at - before),
                None => break,
            }
        }
        assert_eq!(delays.len(), MAX_RELAY_RETRIES as usize);
        assert!(delays[0] >= RELAY_RETRY_BASE && delays[0] < RELAY_RETRY_BASE * 2);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert!(
            delays
                .iter()
                .all(|d| *d <= RELAY_RETRY_MAX + Duration::from_secs(1))
        );
    }
}
