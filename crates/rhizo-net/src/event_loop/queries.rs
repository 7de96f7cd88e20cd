//! [`DhtQueries`]: the Kademlia queries this node's own callers started, in one bounded table,
//! and what each query's progress means for its caller.
//!
//! ```text
//!  Client::put_record / get_records / closest_peers / start_providing / get_providers,
//!  dial_peer without an address
//!    ─▶ kad query started ─▶ table[id] = Pending::{Put, Get, Closest, Provide, Providers,
//!                                                  PeerSearch}
//!  OutboundQueryProgressed (id, result, successes, last)
//!    ─▶ on_progress ─▶ the caller answered (typed error on failure), and
//!                      Step::FinishEarly (enough providers) or Step::Dial (a peer found)
//! ```
//!
//! Sans-IO: ids are any key, the input is Kademlia's result value and the query's success
//! count, and the output is a [`Step`] the event loop carries out on the swarm.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use libp2p::{
    Multiaddr, PeerId,
    kad::{self, RecordKey},
};
use tokio::sync::oneshot;

use crate::client::ClosestPeer;
use crate::{DhtError, NetError};

/// DHT queries in flight from this node's own callers; past this a new one is refused with
/// [`NetError::Busy`] (each holds a reply channel and Kademlia's query state).
pub(crate) const MAX_PENDING_QUERIES: usize = 1024;
/// Distinct values collected for one DHT get; more are ignored.
pub(crate) const MAX_RECORDS_PER_GET: usize = 16;
/// A DHT get ends once this many answers (peers, or our own store) held a record the node's
/// validator accepts, instead of after asking the k closest peers: more than one, so that a
/// single stale replica does not decide which version of a mutable record the caller sees.
pub(crate) const GET_ENOUGH_VALID_ANSWERS: usize = 3;
/// Peers returned by one closest-peers lookup (Kademlia's own cap, `K_VALUE`).
pub(crate) const MAX_CLOSEST_PEERS: usize = 20;
/// Addresses kept per peer in an answer.
pub(crate) const MAX_ADDRS_PER_PEER: usize = super::MAX_ADDRS_PER_PEER;
/// Providers one provider lookup returns at most (the nodes it asks keep up to 20 each, not
/// necessarily the same ones); the lookup ends early once it has found this many.
pub const MAX_PROVIDERS_FOUND: usize = 64;

/// Where a count of peers goes (a put, a provider announcement).
pub(crate) type CountReply = oneshot::Sender<Result<usize, NetError>>;

/// One query in flight: whom to answer, and what was found so far.
#[derive(Debug)]
pub(crate) enum Pending {
    /// `put_record` (`targets: None`) or `put_record_to` (how many peers it targets).
    Put {
        reply: CountReply,
        targets: Option<usize>,
    },
    /// `get_records`: the distinct values found so far, and how many answers were valid.
    Get {
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
        found: Vec<Vec<u8>>,
        valid: usize,
    },
    /// `closest_peers`: the record key whose distance orders the answer.
    Closest {
        key: RecordKey,
        reply: oneshot::Sender<Result<Vec<ClosestPeer>, NetError>>,
    },
    /// `start_providing`.
    Provide { reply: CountReply },
    /// `get_providers`: the providers found so far.
    Providers {
        reply: oneshot::Sender<Result<HashSet<PeerId>, NetError>>,
        found: HashSet<PeerId>,
    },
    /// A lookup of `peer`'s own id, started by a dial that knew no address for it.
    PeerSearch { peer: PeerId },
}

/// What the event loop does on the swarm after a query progressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing.
    None,
    /// Finish the query now (its final event follows, and answers).
    FinishEarly,
    /// Dial `peer` at `addrs`, which a lookup of its id found.
    Dial { peer: PeerId, addrs: Vec<Multiaddr> },
    /// Check a record a get found (off the event loop's task); the verdict goes to
    /// [`DhtQueries::on_checked`].
    Check { key: Vec<u8>, value: Vec<u8> },
}

/// The queries in flight, keyed by `Q` (the event loop: Kademlia's query id).
#[derive(Debug)]
pub(crate) struct DhtQueries<Q> {
    pending: HashMap<Q, Pending>,
    capacity: usize,
    /// This node: never part of a closest-peers answer.
    local: PeerId,
}

impl<Q: Eq + Hash + Copy> DhtQueries<Q> {
    pub(crate) fn new(local: PeerId, capacity: usize) -> Self {
        Self {
            pending: HashMap::new(),
            capacity,
            local,
        }
    }

    /// Whether another query fits.
    pub(crate) fn has_room(&self) -> bool {
        self.pending.len() < self.capacity
    }

    /// Queries in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Records a started query (the caller checked [`has_room`](Self::has_room) first).
    pub(crate) fn insert(&mut self, id: Q, pending: Pending) {
        self.pending.insert(id, pending);
    }

    /// Takes in one progress event of query `id`: answers its caller when the query is done
    /// (`last`, or a query with a single result), and says what else to do. `successes` is the
    /// query's success count so far; `known_addrs` gives the addresses identify told for a
    /// peer, used when a lookup learnt none.
    pub(crate) fn on_progress(
        &mut self,
        id: Q,
        result: kad::QueryResult,
        successes: u32,
        last: bool,
        known_addrs: impl Fn(&PeerId) -> Vec<Multiaddr>,
    ) -> Step {
        let Some(pending) = self.pending.remove(&id) else {
            return Step::None;
        };
        match (pending, result) {
            (Pending::Put { reply, targets }, kad::QueryResult::PutRecord(outcome)) => {
                let _ = reply.send(put_outcome(outcome, targets));
                Step::None
            }
            (Pending::Provide { reply }, kad::QueryResult::StartProviding(outcome)) => {
                let _ = reply.send(match outcome {
                    Ok(_) => Ok(announced_to(successes)),
                    Err(kad::AddProviderError::Timeout { .. }) => Err(NetError::Timeout),
                });
                Step::None
            }
            (
                Pending::Get {
                    reply,
                    mut found,
                    valid,
                },
                kad::QueryResult::GetRecord(outcome),
            ) => {
                let mut step = Step::None;
                if let Ok(kad::GetRecordOk::FoundRecord(record)) = outcome {
                    let kad::Record { key, value, .. } = record.record;
                    if found.len() < MAX_RECORDS_PER_GET && !found.contains(&value) {
                        found.push(value.clone());
                    }
                    step = Step::Check {
                        key: key.to_vec(),
                        value,
                    };
                }
                if last {
                    let _ = reply.send(Ok(found));
                    return Step::None;
                }
                self.pending.insert(
                    id,
                    Pending::Get {
                        reply,
                        found,
                        valid,
                    },
                );
                step
            }
            (Pending::Providers { reply, found }, kad::QueryResult::GetProviders(outcome)) => {
                self.on_providers(id, reply, found, outcome, last)
            }
            (pending, kad::QueryResult::GetClosestPeers(outcome)) => {
                // A timeout still carries the peers found so far; they are the answer.
                let peers = match outcome {
                    Ok(kad::GetClosestPeersOk { peers, .. })
                    | Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                match pending {
                    Pending::PeerSearch { peer } => dial_found(peer, &peers),
                    Pending::Closest { key, reply } => {
                        let _ = reply.send(Ok(closest_peers(self.local, &key, peers, known_addrs)));
                        Step::None
                    }
                    _ => mismatched(),
                }
            }
            _ => mismatched(),
        }
    }

    /// Takes in the check of one record a get of query `id` found: once
    /// [`GET_ENOUGH_VALID_ANSWERS`] were valid, the query is finished early (its final
    /// progress event answers the caller with every value found so far).
    pub(crate) fn on_checked(&mut self, id: Q, is_valid: bool) -> Step {
        match self.pending.get_mut(&id) {
            Some(Pending::Get { valid, .. }) if is_valid => {
                *valid += 1;
                if *valid == GET_ENOUGH_VALID_ANSWERS {
                    Step::FinishEarly
                } else {
                    Step::None
                }
            }
            _ => Step::None,
        }
    }

    fn on_providers(
        &mut self,
        id: Q,
        reply: oneshot::Sender<Result<HashSet<PeerId>, NetError>>,
        mut found: HashSet<PeerId>,
        outcome: kad::GetProvidersResult,
        last: bool,
    ) -> Step {
        if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = outcome {
            let room = MAX_PROVIDERS_FOUND.saturating_sub(found.len());
            found.extend(providers.into_iter().take(room));
        }
        if last {
            let _ = reply.send(Ok(found));
            return Step::None;
        }
        let enough = found.len() >= MAX_PROVIDERS_FOUND;
        self.pending.insert(id, Pending::Providers { reply, found });
        if enough {
            Step::FinishEarly
        } else {
            Step::None
        }
    }
}

/// A result of another kind than the query started: Kademlia's query ids are unique, so this
/// does not happen; if it did, the caller's reply is dropped (it sees the call fail).
fn mismatched() -> Step {
    tracing::warn!("a DHT query reported a result of another kind than it was started for");
    Step::None
}

fn put_outcome(outcome: kad::PutRecordResult, targets: Option<usize>) -> Result<usize, NetError> {
    match outcome {
        Ok(_) => Ok(targets.unwrap_or(1)),
        Err(kad::PutRecordError::QuorumFailed { success, .. }) if !success.is_empty() => {
            Ok(success.len())
        }
        Err(kad::PutRecordError::QuorumFailed { .. }) => Err(DhtError::NoPeerAccepted.into()),
        Err(kad::PutRecordError::Timeout { .. }) => Err(NetError::Timeout),
    }
}

/// The peers an announcement (`start_providing`) handed its record to, from the query's final
/// success count. `ADD_PROVIDER` has no answer: Kademlia runs a lookup of the key, then hands
/// the record to the closest peers that answered it (at most k) and counts each as a success.
/// The two phases' counts are added up, and the second is min(first, k), so it is half the
/// total, at most k.
fn announced_to(successes: u32) -> usize {
    (successes as usize / 2).min(MAX_CLOSEST_PEERS)
}

/// Where to dial `peer`, from what a lookup of its id found (nothing if it found no address).
fn dial_found(peer: PeerId, found: &[kad::PeerInfo]) -> Step {
    match found.iter().find(|info| info.peer_id == peer) {
        Some(info) => Step::Dial {
            peer,
            addrs: info
                .addrs
                .iter()
                .take(MAX_ADDRS_PER_PEER)
                .cloned()
                .collect(),
        },
        None => {
            tracing::debug!(%peer, "no address found for the peer");
            Step::None
        }
    }
}

/// Orders a closest-peers answer by XOR distance to `key`, closest first, without `local` or
/// duplicates, each with at most [`MAX_ADDRS_PER_PEER`] addresses (those the lookup learnt,
/// else `known_addrs`), at most [`MAX_CLOSEST_PEERS`].
fn closest_peers(
    local: PeerId,
    key: &RecordKey,
    found: Vec<kad::PeerInfo>,
    known_addrs: impl Fn(&PeerId) -> Vec<Multiaddr>,
) -> Vec<ClosestPeer> {
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
        if addrs.is_empty() {
            addrs = known_addrs(&info.peer_id);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queries() -> DhtQueries<u32> {
        DhtQueries::new(PeerId::random(), 4)
    }

    fn no_addrs(_: &PeerId) -> Vec<Multiaddr> {
        Vec::new()
    }

    fn found_record(value: &[u8]) -> kad::QueryResult {
        kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(kad::PeerRecord {
            peer: None,
            record: kad::Record::new(RecordKey::new(b"k"), value.to_vec()),
        })))
    }

    #[test]
    fn a_get_collects_distinct_values_and_answers_on_the_last_step() {
        let mut q = queries();
        let (tx, mut rx) = oneshot::channel();
        q.insert(
            1,
            Pending::Get {
                reply: tx,
                found: Vec::new(),
                valid: 0,
            },
        );
        for value in [b"a", b"b", b"a"] {
            assert_eq!(
                q.on_progress(1, found_record(value), 1, false, no_addrs),
                Step::Check {
                    key: b"k".to_vec(),
                    value: value.to_vec()
                },
                "every answer is checked"
            );
        }
        assert!(rx.try_recv().is_err(), "not answered before the last step");
        let done = kad::QueryResult::GetRecord(Err(kad::GetRecordError::NotFound {
            key: RecordKey::new(b"k"),
            closest_peers: Vec::new(),
        }));
        q.on_progress(1, done, 1, true, no_addrs);
        assert_eq!(
            rx.try_recv().expect("answered").expect("ok"),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(q.len(), 0);
    }

    /// Regression (issue 19): a get waited for the whole Kademlia query (the k closest peers
    /// asked) even when the first answers held the record; it now ends once
    /// `GET_ENOUGH_VALID_ANSWERS` answers were valid, and invalid ones (a Sybil's junk) do not
    /// count.
    #[test]
    fn a_get_finishes_early_once_enough_answers_are_valid() {
        let mut q = queries();
        let (tx, mut rx) = oneshot::channel();
        q.insert(
            1,
            Pending::Get {
                reply: tx,
                found: Vec::new(),
                valid: 0,
            },
        );
        let mut finish = 0;
        for (value, valid) in [
            (b"junk", false),
            (b"good", true),
            (b"junk", false),
            (b"good", true),
            (b"bad!", false),
        ] {
            q.on_progress(1, found_record(value), 1, false, no_addrs);
            if q.on_checked(1, valid) == Step::FinishEarly {
                finish += 1;
            }
        }
        assert_eq!(finish, 0, "two valid answers of {GET_ENOUGH_VALID_ANSWERS}");
        q.on_progress(1, found_record(b"good"), 1, false, no_addrs);
        assert_eq!(q.on_checked(1, true), Step::FinishEarly);
        assert_eq!(q.on_checked(1, true), Step::None, "finished once");
        assert!(rx.try_recv().is_err(), "answered by the query's final step");
        let done =
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord {
                cache_candidates: Default::default(),
            }));
        q.on_progress(1, done, 1, true, no_addrs);
        let values = rx.try_recv().expect("answered").expect("ok");
        assert_eq!(
            values.len(),
            3,
            "every distinct value found goes to the caller"
        );
        assert_eq!(q.on_checked(1, true), Step::None, "a late check is ignored");
    }

    #[test]
    fn a_put_timeout_is_timeout_and_a_quorum_failure_is_no_peer_accepted() {
        let mut q = queries();
        let key = RecordKey::new(b"k");
        let (tx, mut rx) = oneshot::channel();
        q.insert(
            1,
            Pending::Put {
                reply: tx,
                targets: None,
            },
        );
        let timeout = kad::QueryResult::PutRecord(Err(kad::PutRecordError::Timeout {
            key: key.clone(),
            success: Vec::new(),
            quorum: std::num::NonZeroUsize::MIN,
        }));
        q.on_progress(1, timeout, 0, true, no_addrs);
        assert!(matches!(
            rx.try_recv().expect("answered"),
            Err(NetError::Timeout)
        ));

        let (tx, mut rx) = oneshot::channel();
        q.insert(
            2,
            Pending::Put {
                reply: tx,
                targets: Some(3),
            },
        );
        let failed = kad::QueryResult::PutRecord(Err(kad::PutRecordError::QuorumFailed {
            key: key.clone(),
            success: Vec::new(),
            quorum: std::num::NonZeroUsize::MIN,
        }));
        q.on_progress(2, failed, 0, true, no_addrs);
        assert!(matches!(
            rx.try_recv().expect("answered"),
            Err(NetError::Dht(DhtError::NoPeerAccepted))
        ));

        let (tx, mut rx) = oneshot::channel();
        q.insert(
            3,
            Pending::Put {
                reply: tx,
                targets: Some(3),
            },
        );
        let ok = kad::QueryResult::PutRecord(Ok(kad::PutRecordOk { key }));
        q.on_progress(3, ok, 3, true, no_addrs);
        assert_eq!(rx.try_recv().expect("answered").expect("ok"), 3);
    }

    #[test]
    fn a_provider_lookup_finishes_early_once_it_has_enough() {
        let mut q = queries();
        let (tx, mut rx) = oneshot::channel();
        q.insert(
            1,
            Pending::Providers {
                reply: tx,
                found: HashSet::new(),
            },
        );
        let batch = |n: usize| {
            kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                key: RecordKey::new(b"k"),
                providers: (0..n).map(|_| PeerId::random()).collect(),
            }))
        };
        assert_eq!(
            q.on_progress(1, batch(MAX_PROVIDERS_FOUND - 1), 1, false, no_addrs),
            Step::None
        );
        assert_eq!(
            q.on_progress(1, batch(5), 2, false, no_addrs),
            Step::FinishEarly
        );
        q.on_progress(1, batch(5), 3, true, no_addrs);
        let found = rx.try_recv().expect("answered").expect("ok");
        assert_eq!(found.len(), MAX_PROVIDERS_FOUND);
    }

    #[test]
    fn closest_peers_are_sorted_by_distance_without_this_node_or_duplicates() {
        let local = PeerId::random();
        let mut q: DhtQueries<u32> = DhtQueries::new(local, 4);
        let key = RecordKey::new(b"mailbox");
        let (tx, mut rx) = oneshot::channel();
        q.insert(
            1,
            Pending::Closest {
                key: key.clone(),
                reply: tx,
            },
        );
        let others: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let known: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("multiaddr");
        let mut infos: Vec<kad::PeerInfo> = others
            .iter()
            .map(|p| kad::PeerInfo {
                peer_id: *p,
                addrs: Vec::new(),
            })
            .collect();
        infos.push(kad::PeerInfo {
            peer_id: local,
            addrs: Vec::new(),
        });
        infos.push(infos[0].clone());
        let result = kad::QueryResult::GetClosestPeers(Ok(kad::GetClosestPeersOk {
            key: b"mailbox".to_vec(),
            peers: infos,
        }));
        q.on_progress(1, result, 5, true, |_| vec![known.clone()]);
        let answer = rx.try_recv().expect("answered").expect("ok");
        let target = kad::KBucketKey::new(key);
        let mut expected = others.clone();
        expected.sort_by_key(|p| target.distance(&kad::KBucketKey::from(*p)));
        assert_eq!(answer.iter().map(|p| p.peer).collect::<Vec<_>>(), expected);
        assert!(answer.iter().all(|p| p.addrs == vec![known.clone()]));
    }

    #[test]
    fn a_peer_search_dials_the_addresses_found_for_that_peer_only() {
        let mut q = queries();
        let wanted = PeerId::random();
        q.insert(7, Pending::PeerSearch { peer: wanted });
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().expect("multiaddr");
        let result = kad::QueryResult::GetClosestPeers(Ok(kad::GetClosestPeersOk {
            key: wanted.to_bytes(),
            peers: vec![
                kad::PeerInfo {
                    peer_id: PeerId::random(),
                    addrs: vec!["/ip4/127.0.0.1/tcp/8".parse().expect("multiaddr")],
                },
                kad::PeerInfo {
                    peer_id: wanted,
                    addrs: vec![addr.clone()],
                },
            ],
        }));
        assert_eq!(
            q.on_progress(7, result, 2, true, no_addrs),
            Step::Dial {
                peer: wanted,
                addrs: vec![addr]
            }
        );
        assert_eq!(
            q.on_progress(7, found_record(b"x"), 1, true, no_addrs),
            Step::None,
            "an unknown id is ignored"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut q = queries();
        for id in 0..4 {
            assert!(q.has_room());
            q.insert(
                id,
                Pending::PeerSearch {
                    peer: PeerId::random(),
                },
            );
        }
        assert!(!q.has_room());
    }
}
