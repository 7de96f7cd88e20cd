//! The composed `NetworkBehaviour`: identify, ping, Kademlia, (optionally) mDNS, and the two
//! request-response protocols `/rhizo/msg/1`, `/rhizo/mailbox/1`, `/rhizo/pex/1` and
//! `/rhizo/link/1`; gossipsub (see
//! [`gossip`](crate::gossip)); AutoNAT, the relay server and client, DCUtR and UPnP (see
//! [`nat`](crate::nat)).

// The derive generates `BehaviourEvent` without docs; its variants mirror the fields below.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::{
    StreamProtocol, autonat, dcutr, identify, identity::Keypair, kad, mdns, ping, relay,
    request_response, swarm::NetworkBehaviour, swarm::behaviour::toggle::Toggle, upnp,
};

use crate::msg_protocol::{
    FILE_PROTOCOL, FrameCodec, LINK_PROTOCOL, MAILBOX_PROTOCOL, MSG_BATCH_PROTOCOL, MSG_PROTOCOL,
};
use crate::{guard::Guard, kad_tap::KadTap, msg_protocol::PEX_PROTOCOL};

/// rhizo's own Kademlia protocol name: a separate DHT from IPFS's.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo/kad/1.0.0");
/// The protocol version announced through identify.
pub const PROTOCOL_VERSION: &str = "/rhizo/1.0.0";
/// How long one Kademlia query may run.
const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often Kademlia refreshes its routing table by a self-lookup.
const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);
/// Largest Kademlia message accepted: records are small; bounds per-stream memory.
const KAD_MAX_PACKET_BYTES: usize = 64 * 1024;
/// Largest record value stored for others (records are validated again by the node).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Records this node keeps for others; bounds memory (64 KiB × 4096 = 256 MiB worst case).
pub const MAX_STORED_RECORDS: usize = 4096;
/// Records one peer may have this node keep for others (an honest node publishes a few per
/// user it hosts, and replicas forward what they hold): no single peer fills the store.
pub const MAX_RECORDS_PER_PEER: usize = 256;
/// Records kept per owner (a rhizo UID has an identity record, a device list, a profile, one
/// KeyPackage bundle per device, at most 16, and an agent card under its UID key and up to 4
/// device keys): no single identity fills the store.
pub const MAX_RECORDS_PER_OWNER: usize = 24;
/// This node's own records, on top of [`MAX_STORED_RECORDS`] (a handful per identity).
const MAX_OWN_RECORDS: usize = 64;
/// `PUT_VALUE` requests one peer may have validated per second, sustained, and in a burst;
/// more are refused before any signature work (owners republish a few records an hour).
pub const RECORD_PUTS_PER_SECOND: u32 = 10;
/// See [`RECORD_PUTS_PER_SECOND`].
pub const RECORD_PUT_BURST: u32 = 50;
/// Record validations running at once on the blocking pool; past this, records are refused
/// (counted) until one finishes.
pub const MAX_RECORD_VALIDATIONS_IN_FLIGHT: usize = 32;
/// How long a stored record lives unless its owner republishes it (records carry their own,
/// shorter expiry, checked by the validator).
pub(crate) const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a provider record lives unless its provider announces it again.
pub const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 3600);
/// How often this node announces again the keys it provides (well inside the TTL, so a record
/// survives a few missed rounds and the churn of the closest peers).
pub const PROVIDER_REPUBLISH_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// Keys this node keeps other peers' provider records for (20 × 8 addresses each at most:
/// some 30 MiB worst case).
pub const MAX_PROVIDER_KEYS: usize = 2048;
/// Other peers' provider records kept per key (Kademlia's k); a full key takes no newcomer
/// until one of its records expires.
pub const MAX_PROVIDERS_PER_KEY: usize = 20;
/// Keys one other peer may hold provider records for here, so that no single peer fills the
/// store.
pub const MAX_PROVIDER_KEYS_PER_PEER: usize = 512;
/// Keys this node itself provides (a node is in at most 1000 channels); kept apart from
/// [`MAX_PROVIDER_KEYS`], so others' records never crowd out our own announcements.
pub const MAX_OWN_PROVIDED_KEYS: usize = 1024;
/// Largest provider key accepted (a multihash of a 256-bit digest is 34 bytes).
pub const MAX_PROVIDER_KEY_BYTES: usize = 80;
/// How long one `/rhizo/msg/1` exchange (request + receipt) may take.
const MSG_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent `/rhizo/msg/1` streams per connection.
const MSG_MAX_CONCURRENT_STREAMS: usize = 64;
/// How long one `/rhizo/mailbox/1` exchange (request + answer) may take.
const MAILBOX_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent `/rhizo/mailbox/1` streams per connection, inbound + outbound (an inbound one
/// buffers at most one 320 KiB request: 10 MiB per connection worst case).
const MAILBOX_MAX_CONCURRENT_STREAMS: usize = 32;
/// How long one `/rhizo/pex/1` exchange may take.
const PEX_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent `/rhizo/pex/1` streams per connection (answers are small and rare).
const PEX_MAX_CONCURRENT_STREAMS: usize = 4;
/// How long one `/rhizo/link/1` exchange may take.
const LINK_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent `/rhizo/link/1` streams per connection (a link is two requests in a row).
const LINK_MAX_CONCURRENT_STREAMS: usize = 2;
/// How long one `/rhizo/file/1` exchange (a range of up to 1 MiB) may take.
const FILE_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent `/rhizo/file/1` streams per connection, inbound + outbound (a response buffers
/// at most 1.1 MiB: 18 MiB per connection worst case; the node's per-peer limit is lower).
const FILE_MAX_CONCURRENT_STREAMS: usize = 16;
/// How often identify re-announces itself on an open connection.
const IDENTIFY_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How often mDNS asks the LAN for peers.
const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(5);

/// Options for [`Behaviour::new`].
#[derive(Debug, Clone)]
pub(crate) struct BehaviourConfig {
    pub(crate) agent_version: String,
    /// Speak `/rhizo/msg/2` (batch frames) besides `/rhizo/msg/1`.
    pub(crate) batch_frames: bool,
    pub(crate) mdns: bool,
    /// Announce only external addresses (`--announce`), not the bound listeners.
    pub(crate) hide_listen_addrs: bool,
    /// Serve as a circuit relay for others.
    pub(crate) relay_server: bool,
    /// Map ports with UPnP.
    pub(crate) upnp: bool,
    /// Kademlia lookups over disjoint paths.
    pub(crate) disjoint_paths: bool,
    /// Connection limits, bans and the trusted peers ([`crate::guard`]).
    pub(crate) guard: crate::guard::GuardConfig,
}

/// The protocols every rhizo node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection limits, bans, the IP filter, keep-alive of trusted and protected peers. First,
    /// so a denied connection costs the other behaviours nothing.
    pub guard: Guard,
    /// `/ipfs/id/1.0.0`: exchange of listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// `/ipfs/ping/1.0.0`: liveness and round-trip time.
    pub ping: ping::Behaviour,
    /// `/rhizo/kad/1.0.0`: the DHT (tapped for the source of inbound requests).
    pub kad: KadTap,
    /// mDNS on the local network, when enabled.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// `/rhizo/msg/2` (batch frames too) and `/rhizo/msg/1`: envelopes and their receipts.
    pub msg: request_response::Behaviour<FrameCodec>,
    /// `/rhizo/mailbox/1`: store, fetch and delete at other nodes' mailbox replicas.
    pub mailbox: request_response::Behaviour<FrameCodec>,
    /// `/rhizo/pex/1`: peer exchange (the node encodes the samples).
    pub pex: request_response::Behaviour<FrameCodec>,
    /// `/rhizo/link/1`: linking a new device to an identity.
    pub link: request_response::Behaviour<FrameCodec>,
    /// `/rhizo/file/1`: chunk ranges of files (issue 16).
    pub file: request_response::Behaviour<FrameCodec>,
    /// `/meshsub/1.x`: gossipsub broadcast.
    pub gossipsub: crate::gossip::GossipBehaviour,
    /// `/libp2p/autonat/1.0.0`: are we publicly reachable? (and answering others' probes).
    pub autonat: autonat::Behaviour,
    /// `/libp2p/circuit/relay/0.2.0/hop`: relaying for others, when enabled.
    pub relay: Toggle<relay::Behaviour>,
    /// The relay client: reservations on relays, dialling through `/p2p-circuit`.
    pub relay_client: relay::client::Behaviour,
    /// `/libp2p/dcutr`: hole punching to upgrade relayed connections.
    pub dcutr: dcutr::Behaviour,
    /// UPnP port mapping, when enabled.
    pub upnp: Toggle<upnp::tokio::Behaviour>,
    /// `/rhizo/light/1`: raw streams splicing light clients to their home nodes.
    pub light: libp2p_stream::Behaviour,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("mdns", &self.mdns.is_enabled())
            .field("relay_server", &self.relay.is_enabled())
            .field("upnp", &self.upnp.is_enabled())
            .finish_non_exhaustive()
    }
}

impl Behaviour {
    pub(crate) fn new(
        key: &Keypair,
        config: &BehaviourConfig,
        relay_client: relay::client::Behaviour,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let peer_id = key.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.to_string(), key.public())
                .with_agent_version(config.agent_version.clone())
                .with_interval(IDENTIFY_INTERVAL)
                .with_push_listen_addr_updates(true)
                .with_hide_listen_addrs(config.hide_listen_addrs),
        );
        let kad = new_kad(peer_id, config.disjoint_paths);
        let mdns = if config.mdns {
            let mdns_config = mdns::Config {
                query_interval: MDNS_QUERY_INTERVAL,
                ..Default::default()
            };
            Some(mdns::tokio::Behaviour::new(mdns_config, peer_id)?)
        } else {
            None
        };
        Ok(Self {
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            kad: KadTap::new(kad),
            mdns: mdns.into(),
            msg: msg_behaviour(config.batch_frames),
            guard: Guard::new(config.guard.clone()),
            pex: request_response(
                FrameCodec::pex(),
                StreamProtocol::new(PEX_PROTOCOL),
                PEX_REQUEST_TIMEOUT,
                PEX_MAX_CONCURRENT_STREAMS,
            ),
            mailbox: request_response(
                FrameCodec::mailbox(),
                StreamProtocol::new(MAILBOX_PROTOCOL),
                MAILBOX_REQUEST_TIMEOUT,
                MAILBOX_MAX_CONCURRENT_STREAMS,
            ),
            link: request_response(
                FrameCodec::link(),
                StreamProtocol::new(LINK_PROTOCOL),
                LINK_REQUEST_TIMEOUT,
                LINK_MAX_CONCURRENT_STREAMS,
            ),
            file: request_response(
                FrameCodec::file(),
                StreamProtocol::new(FILE_PROTOCOL),
                FILE_REQUEST_TIMEOUT,
                FILE_MAX_CONCURRENT_STREAMS,
            ),
            gossipsub: crate::gossip::new_behaviour(key)?,
            autonat: crate::nat::new_autonat(peer_id),
            relay: config
                .relay_server
                .then(|| crate::nat::new_relay_server(peer_id))
                .into(),
            relay_client,
            dcutr: crate::nat::new_dcutr(peer_id),
            // Never constructed unless enabled: it multicasts on the LAN as soon as it exists.
            upnp: config.upnp.then(crate::nat::new_upnp).into(),
            light: libp2p_stream::Behaviour::new(),
        })
    }
}

/// Kademlia on rhizo's protocol id, with rhizo's timeouts, TTLs and store bounds, serving the
/// DHT; lookups over disjoint paths when `disjoint_paths`.
fn new_kad(
    peer_id: libp2p::PeerId,
    disjoint_paths: bool,
) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .disjoint_query_paths(disjoint_paths)
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_periodic_bootstrap_interval(Some(KAD_BOOTSTRAP_INTERVAL))
        .set_max_packet_size(KAD_MAX_PACKET_BYTES)
        .set_record_ttl(Some(RECORD_TTL))
        .set_provider_record_ttl(Some(PROVIDER_RECORD_TTL))
        .set_provider_publication_interval(Some(PROVIDER_REPUBLISH_INTERVAL))
        // Owners republish their own records; stored copies are not re-published blindly.
        .set_publication_interval(None)
        // Inbound records reach the node's validator before anything is stored.
        .set_record_filtering(kad::StoreInserts::FilterBoth);
    let store_config = kad::store::MemoryStoreConfig {
        // Others' records are bounded by the event loop (per peer, per owner, in all).
        max_records: MAX_STORED_RECORDS + MAX_OWN_RECORDS,
        max_value_bytes: MAX_RECORD_BYTES,
        // Others' keys are bounded by the event loop's ledger (per key, per peer, in all);
        // the store's own bounds leave room for ours on top.
        max_provided_keys: MAX_PROVIDER_KEYS + MAX_OWN_PROVIDED_KEYS,
        max_providers_per_key: MAX_PROVIDERS_PER_KEY + 1,
    };
    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::with_config(peer_id, store_config),
        kad_config,
    );
    // Every rhizo node serves the DHT. Without this, libp2p waits for a confirmed external
    // address (AutoNAT) before answering, and nodes on one LAN or loopback never would.
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// The message protocols: `/rhizo/msg/2` first (a peer that speaks it takes batch frames),
/// then `/rhizo/msg/1`; only `/rhizo/msg/1` without `batch_frames`. Multistream-select
/// settles on the first the peer speaks, and the codec sends no batch frame on `/rhizo/msg/1`
/// (the caller sends the envelopes one by one instead).
fn msg_behaviour(batch_frames: bool) -> request_response::Behaviour<FrameCodec> {
    let protocols = if batch_frames {
        vec![MSG_BATCH_PROTOCOL, MSG_PROTOCOL]
    } else {
        vec![MSG_PROTOCOL]
    };
    request_response::Behaviour::with_codec(
        FrameCodec::msg(),
        protocols
            .into_iter()
            .map(|p| (p, request_response::ProtocolSupport::Full)),
        request_response::Config::default()
            .with_request_timeout(MSG_REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MSG_MAX_CONCURRENT_STREAMS),
    )
}

/// One of rhizo's request-response protocols, with its frame limits, request timeout and
/// bound on concurrent streams.
fn request_response(
    codec: FrameCodec,
    protocol: StreamProtocol,
    timeout: Duration,
    max_streams: usize,
) -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::with_codec(
        codec,
        [(protocol, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(max_streams),
    )
}
