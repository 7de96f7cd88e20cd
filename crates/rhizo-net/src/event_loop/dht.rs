//! The DHT side of the event loop: the [`DhtCommand`]s the [`Client`](crate::Client) sends,
//! started as Kademlia queries and tabled in [`DhtQueries`](super::queries::DhtQueries), and
//! Kademlia's events (query progress, routing updates, inbound requests).

use std::collections::HashSet;

use libp2p::{
    Multiaddr, PeerId,
    kad::{self, RecordKey, store::RecordStore},
    swarm::dial_opts::{DialOpts, PeerCondition},
};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::queries::{CountReply, Pending, Step};
use super::{DiscoverySource, EventLoop, MAX_ADDRS_PER_PEER, NetEvent};
use crate::behaviour::{MAX_OWN_PROVIDED_KEYS, MAX_PROVIDER_KEY_BYTES};
use crate::client::ClosestPeer;
use crate::{DhtError, NetError, describe_dial_error};

/// The DHT calls of the [`Client`](crate::Client); each carries the sender for its reply.
#[derive(Debug)]
pub(crate) enum DhtCommand {
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        reply: CountReply,
    },
    GetRecords {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
    },
    PutRecordTo {
        key: Vec<u8>,
        value: Vec<u8>,
        peers: Vec<PeerId>,
        reply: CountReply,
    },
    LocalRecord {
        key: Vec<u8>,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    ClosestPeers {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<ClosestPeer>, NetError>>,
    },
    LocalCloserPeers {
        key: Vec<u8>,
        limit: usize,
        reply: oneshot::Sender<usize>,
    },
    StartProviding {
        key: Vec<u8>,
        reply: CountReply,
    },
    StopProviding {
        key: Vec<u8>,
    },
    GetProviders {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<HashSet<PeerId>, NetError>>,
    },
}

impl EventLoop {
    /// Why a provider announcement or lookup for `key` cannot start now, if it cannot: a key
    /// of 0 or more than [`MAX_PROVIDER_KEY_BYTES`] bytes, or too many queries in flight.
    fn provider_query_refused(&self, key: &[u8]) -> Option<NetError> {
        if key.is_empty() || key.len() > MAX_PROVIDER_KEY_BYTES {
            let (len, max) = (key.len(), MAX_PROVIDER_KEY_BYTES);
            return Some(DhtError::BadProviderKey { len, max }.into());
        }
        (!self.queries.has_room()).then_some(NetError::Busy)
    }

    pub(super) fn on_dht_command(&mut self, command: DhtCommand) {
        match command {
            DhtCommand::PutRecord { key, value, reply } => self.put_record(key, value, reply),
            DhtCommand::GetRecords { key, reply } => {
                if !self.queries.has_room() {
                    let _ = reply.send(Err(NetError::Busy));
                    return;
                }
                let kad = &mut self.swarm.behaviour_mut().kad;
                let id = kad.get_record(RecordKey::new(&key));
                self.queries.insert(
                    id,
                    Pending::Get {
                        reply,
                        found: Vec::new(),
                        valid: 0,
                    },
                );
            }
            DhtCommand::PutRecordTo {
                key,
                value,
                peers,
                reply,
            } => self.put_record_to(key, value, peers, reply),
            DhtCommand::LocalRecord { key, reply } => {
                let now = std::time::Instant::now();
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let value = store
                    .get(&RecordKey::new(&key))
                    .filter(|r| !r.is_expired(now))
                    .map(|r| r.value.clone());
                let _ = reply.send(value);
            }
            DhtCommand::LocalCloserPeers { key, limit, reply } => {
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
            DhtCommand::ClosestPeers { key, reply } => self.closest_peers(key, reply),
            DhtCommand::StartProviding { key, reply } => self.start_providing(key, reply),
            DhtCommand::StopProviding { key } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                kad.stop_providing(&RecordKey::new(&key));
            }
            DhtCommand::GetProviders { key, reply } => {
                if let Some(refusal) = self.provider_query_refused(&key) {
                    let _ = reply.send(Err(refusal));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&key));
                let found = HashSet::new();
                self.queries.insert(id, Pending::Providers { reply, found });
            }
        }
    }

    fn put_record(&mut self, key: Vec<u8>, value: Vec<u8>, reply: CountReply) {
        if !self.queries.has_room() {
            let _ = reply.send(Err(NetError::Busy));
            return;
        }
        let record = kad::Record::new(RecordKey::new(&key), value);
        let kad = &mut self.swarm.behaviour_mut().kad;
        match kad.put_record(record, kad::Quorum::One) {
            Ok(id) => {
                let targets = None;
                self.queries.insert(id, Pending::Put { reply, targets });
            }
            Err(e) => {
                let _ = reply.send(Err(DhtError::LocalStore(format!("{e:?}")).into()));
            }
        }
    }

    fn put_record_to(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        peers: Vec<PeerId>,
        reply: CountReply,
    ) {
        if !self.queries.has_room() {
            let _ = reply.send(Err(NetError::Busy));
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
            let _ = reply.send(Err(DhtError::NoTarget.into()));
            return;
        }
        // As `put_record` does: this node is the publisher, and the expiry is left to
        // Kademlia, which applies the configured record TTL.
        let mut record = kad::Record::new(RecordKey::new(&key), value);
        record.publisher = Some(local);
        // Every target must answer (or fail) before the query ends, so none of the stores
        // still being dialled is dropped and the count is real.
        let count = targets.len();
        let id = self.swarm.behaviour_mut().kad.put_record_to(
            record,
            targets.into_iter(),
            kad::Quorum::All,
        );
        let targets = Some(count);
        self.queries.insert(id, Pending::Put { reply, targets });
    }

    fn closest_peers(
        &mut self,
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<ClosestPeer>, NetError>>,
    ) {
        if !self.queries.has_room() {
            let _ = reply.send(Err(NetError::Busy));
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
        let key = RecordKey::new(&key);
        self.queries.insert(id, Pending::Closest { key, reply });
    }

    fn start_providing(&mut self, key: Vec<u8>, reply: CountReply) {
        if let Some(refusal) = self.provider_query_refused(&key) {
            let _ = reply.send(Err(refusal));
            return;
        }
        let key = RecordKey::new(&key);
        let kad = &mut self.swarm.behaviour_mut().kad;
        let provided = kad.store_mut().provided().count();
        if provided >= MAX_OWN_PROVIDED_KEYS && !kad.store_mut().provided().any(|r| r.key == key) {
            let max = MAX_OWN_PROVIDED_KEYS;
            let _ = reply.send(Err(DhtError::TooManyProvidedKeys { max }.into()));
            return;
        }
        match kad.start_providing(key) {
            Ok(id) => self.queries.insert(id, Pending::Provide { reply }),
            Err(e) => {
                let _ = reply.send(Err(DhtError::LocalStore(format!("{e:?}")).into()));
            }
        }
    }

    /// A lookup of `peer`'s own id, for a dial that knew no address: `false` when the query
    /// table is full.
    pub(super) fn search_peer(&mut self, peer: PeerId) -> bool {
        if !self.queries.has_room() {
            return false;
        }
        let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.queries.insert(id, Pending::PeerSearch { peer });
        true
    }

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                if let Some(filter) = &self.routing_filter
                    && !filter.allows(&peer)
                {
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                    return;
                }
                self.stats.discoveries += 1;
                let addrs: Vec<Multiaddr> =
                    addresses.iter().take(MAX_ADDRS_PER_PEER).cloned().collect();
                self.sink.emit(NetEvent::PeerDiscovered {
                    peer,
                    addrs,
                    source: DiscoverySource::Kademlia,
                });
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => {
                if step.last {
                    self.stats.kad_queries += 1;
                    if matches!(result, kad::QueryResult::GetRecord(_)) {
                        self.stats.get_queries += 1;
                        self.stats.get_requests += u64::from(stats.num_requests());
                        let ran = stats.duration().unwrap_or_default().as_millis();
                        self.stats.get_query_ms += u64::try_from(ran).unwrap_or(u64::MAX);
                    }
                }
                let peers = &self.peers;
                let step = self.queries.on_progress(
                    id,
                    result,
                    stats.num_successes(),
                    step.last,
                    |peer| peers.addrs_of(peer),
                );
                self.on_query_step(id, step);
            }
            kad::Event::InboundRequest { request } => self.on_kad_inbound(request),
            _ => {}
        }
    }

    pub(super) fn on_query_step(&mut self, id: kad::QueryId, step: Step) {
        match step {
            Step::None => {}
            Step::Check { key, value } => self.get_checks.check(id, key, value),
            Step::FinishEarly => {
                if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                    query.finish();
                }
            }
            Step::Dial { peer, addrs } => {
                // Unless it is connected or being dialled (the lookup itself may have
                // reached it).
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .addresses(addrs)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, error = %describe_dial_error(&e), "cannot dial the peer found");
                }
            }
        }
    }

    fn on_kad_inbound(&mut self, request: kad::InboundRequest) {
        self.stats.kad_inbound_requests += 1;
        if let Some(peer) = self.swarm.behaviour_mut().kad.take_inbound_source() {
            // Best effort: a full channel drops the report, never stalls the swarm.
            self.sink.emit_lossy(NetEvent::InboundKadRequest { peer });
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

    /// Keeps a provider record a peer announced (Kademlia already checked that the peer
    /// announced itself) if the [ledger](super::provider_ledger) admits it, with at most
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
}
