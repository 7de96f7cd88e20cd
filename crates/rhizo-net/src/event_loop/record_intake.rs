//! [`RecordIntake`]: the DHT records other peers ask this node to keep.
//!
//! Kademlia acknowledges an inbound `PUT_VALUE` at once and, with record filtering on, hands
//! the record to the event loop instead of storing it. Checking a record means signature work
//! (the node's [`RecordValidator`]), so it must neither run on the swarm's task nor be free for
//! a flooding peer; and what is kept must be bounded so that no peer and no identity fills the
//! store:
//!
//! ```text
//!  PUT_VALUE (source, key, value)
//!    ─▶ source over RECORD_PUTS_PER_SECOND / RECORD_PUT_BURST      refused: records_rate_limited
//!    ─▶ MAX_RECORD_VALIDATIONS_IN_FLIGHT running already           refused: records_shed
//!    ─▶ validator, on the blocking pool (size, signature, version) refused: records_rejected
//!         (the stored value changed meanwhile: validated again, against it)
//!    ─▶ ledger: MAX_RECORDS_PER_PEER, MAX_RECORDS_PER_OWNER,       refused: records_rejected
//!       MAX_STORED_RECORDS (expired records are forgotten first)
//!    ─▶ stored, until the record's own signed expiry or the TTL:   records_stored
//! ```
//!
//! The per-peer rate is checked before anything else, so a refused record costs a hash-map
//! lookup. The [`RecordLedger`] mirrors the key, sender, owner and expiry of every record kept
//! for another peer; records it forgets are removed from Kademlia's store too. Sans-IO parts
//! ([`PutRate`], [`RecordLedger`]) take `now`.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use libp2p::{
    PeerId, Swarm,
    kad::{self, RecordKey, store::RecordStore},
};
use tokio::task::{JoinError, JoinSet};
use tracing::{debug, warn};

use crate::{
    AcceptedRecord, MAX_RECORD_OWNER_BYTES, NetStats, RecordValidator,
    behaviour::{
        Behaviour, MAX_RECORD_VALIDATIONS_IN_FLIGHT, MAX_RECORDS_PER_OWNER, MAX_RECORDS_PER_PEER,
        MAX_STORED_RECORDS, RECORD_PUT_BURST, RECORD_PUTS_PER_SECOND,
    },
};

/// Peers whose `PUT_VALUE` rate is tracked; past this the table starts afresh (every peer
/// gets a full burst again, which bounds memory and costs at most one burst per peer).
const MAX_RATE_TRACKED_PEERS: usize = 4096;
/// Times a record is validated again because the stored value changed while it was checked.
const MAX_VALIDATION_ATTEMPTS: u8 = 3;
/// Least time between two full passes over the expired records.
const SWEEP_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A per-peer token bucket for `PUT_VALUE` requests. Sans-IO.
#[derive(Debug)]
pub(crate) struct PutRate {
    per_second: f64,
    burst: f64,
    buckets: HashMap<PeerId, (f64, Instant)>,
}

impl PutRate {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token from `peer`'s bucket; `false` when it is empty.
    pub(crate) fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= MAX_RATE_TRACKED_PEERS {
            self.buckets.clear();
        }
        let (tokens, last) = self.buckets.entry(peer).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a valid record was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordRefusal {
    /// Its sender has [`MAX_RECORDS_PER_PEER`] records kept here, none expired.
    PeerShareUsed,
    /// Its owner has [`MAX_RECORDS_PER_OWNER`] records kept here, none expired.
    OwnerShareUsed,
    /// [`MAX_STORED_RECORDS`] records are kept, none expired, and this key is new.
    StoreFull,
}

/// The bounds a ledger enforces (the crate's constants; smaller in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordLimits {
    pub(crate) records: usize,
    pub(crate) per_peer: usize,
    pub(crate) per_owner: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            records: MAX_STORED_RECORDS,
            per_peer: MAX_RECORDS_PER_PEER,
            per_owner: MAX_RECORDS_PER_OWNER,
        }
    }
}

/// One record kept for another peer.
#[derive(Debug)]
struct Kept {
    source: PeerId,
    owner: Vec<u8>,
    expires: Instant,
}

/// The records kept for other peers, per sender and per owner. Sans-IO.
#[derive(Debug, Default)]
pub(crate) struct RecordLedger {
    limits: RecordLimits,
    kept: HashMap<RecordKey, Kept>,
    /// Records kept per sender (no zero entries).
    per_peer: HashMap<PeerId, usize>,
    /// Records kept per owner (no zero entries).
    per_owner: HashMap<Vec<u8>, usize>,
    last_sweep: Option<Instant>,
}

impl RecordLedger {
    pub(crate) fn new(limits: RecordLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Records kept now.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }

    /// Decides whether to keep `source`'s record under `key`, belonging to `owner` and expiring
    /// at `expires`, and notes it if so (replacing what was kept under `key`). Records forgotten
    /// on the way (expired) are appended to `forgotten`; the caller removes them from the store
    /// whatever the answer.
    pub(crate) fn admit(
        &mut self,
        key: &RecordKey,
        source: PeerId,
        owner: Vec<u8>,
        expires: Instant,
        now: Instant,
        forgotten: &mut Vec<RecordKey>,
    ) -> Result<(), RecordRefusal> {
        if self.refusal(key, &source, &owner).is_some() {
            self.sweep(now, forgotten);
            if let Some(refusal) = self.refusal(key, &source, &owner) {
                return Err(refusal);
            }
        }
        self.forget(key);
        *self.per_peer.entry(source).or_default() += 1;
        *self.per_owner.entry(owner.clone()).or_default() += 1;
        self.kept.insert(
            key.clone(),
            Kept {
                source,
                owner,
                expires,
            },
        );
        Ok(())
    }

    fn refusal(&self, key: &RecordKey, source: &PeerId, owner: &[u8]) -> Option<RecordRefusal> {
        let old = self.kept.get(key);
        let count = |n: Option<&usize>| n.copied().unwrap_or(0);
        if old.is_none_or(|o| o.source != *source)
            && count(self.per_peer.get(source)) >= self.limits.per_peer
        {
            return Some(RecordRefusal::PeerShareUsed);
        }
        if old.is_none_or(|o| o.owner != owner)
            && count(self.per_owner.get(owner)) >= self.limits.per_owner
        {
            return Some(RecordRefusal::OwnerShareUsed);
        }
        (old.is_none() && self.kept.len() >= self.limits.records)
            .then_some(RecordRefusal::StoreFull)
    }

    /// Forgets the record kept under `key`, if any.
    pub(crate) fn forget(&mut self, key: &RecordKey) {
        let Some(old) = self.kept.remove(key) else {
            return;
        };
        decrement(&mut self.per_peer, &old.source);
        decrement(&mut self.per_owner, &old.owner);
    }

    /// Forgets every expired record, at most once per [`SWEEP_MIN_INTERVAL`].
    fn sweep(&mut self, now: Instant, forgotten: &mut Vec<RecordKey>) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_MIN_INTERVAL)
        {
            return;
        }
        self.last_sweep = Some(now);
        let expired: Vec<RecordKey> = self
            .kept
            .iter()
            .filter(|(_, kept)| kept.expires <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.forget(&key);
            forgotten.push(key);
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// A validation that ran on the blocking pool.
#[derive(Debug)]
pub(crate) struct Validated {
    source: PeerId,
    record: kad::Record,
    /// The value stored under the key when the validation started.
    existing: Option<Vec<u8>>,
    verdict: Result<AcceptedRecord, String>,
    attempt: u8,
}

/// The event loop's intake of others' records; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct RecordIntake {
    validator: Arc<dyn RecordValidator>,
    rate: PutRate,
    running: JoinSet<Validated>,
    ledger: RecordLedger,
}

impl RecordIntake {
    pub(crate) fn new(validator: Arc<dyn RecordValidator>) -> Self {
        Self {
            validator,
            rate: PutRate::new(RECORD_PUTS_PER_SECOND, RECORD_PUT_BURST),
            running: JoinSet::new(),
            ledger: RecordLedger::new(RecordLimits::default()),
        }
    }

    /// Records kept for other peers now.
    pub(crate) fn held(&self) -> usize {
        self.ledger.len()
    }

    /// Whether validations are running (whose results [`next_validated`](Self::next_validated)
    /// yields).
    pub(crate) fn validating(&self) -> bool {
        !self.running.is_empty()
    }

    /// The next validation to finish; `None` when none runs.
    pub(crate) async fn next_validated(&mut self) -> Option<Result<Validated, JoinError>> {
        self.running.join_next().await
    }

    /// Takes a record `source` asked this node to keep: refused at once over the sender's rate
    /// or when too many validations run; otherwise validated on the blocking pool.
    pub(crate) fn offer(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        stats: &mut NetStats,
        source: PeerId,
        record: kad::Record,
    ) {
        if !self.rate.allow(source, Instant::now()) {
            stats.records_rate_limited += 1;
            debug!(%source, "record refused: the peer is over its PUT_VALUE rate");
            return;
        }
        let existing = swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .get(&record.key)
            .map(|r| r.value.clone());
        self.validate(stats, source, record, existing, 0);
    }

    fn validate(
        &mut self,
        stats: &mut NetStats,
        source: PeerId,
        record: kad::Record,
        existing: Option<Vec<u8>>,
        attempt: u8,
    ) {
        if self.running.len() >= MAX_RECORD_VALIDATIONS_IN_FLIGHT {
            stats.records_shed += 1;
            debug!(%source, "record refused: too many validations running");
            return;
        }
        let validator = self.validator.clone();
        self.running.spawn_blocking(move || {
            let verdict =
                validator.validate(record.key.as_ref(), &record.value, existing.as_deref());
            Validated {
                source,
                record,
                existing,
                verdict,
                attempt,
            }
        });
    }

    /// Applies a finished validation: keeps the record if the validator and the ledger admit
    /// it, and the stored value is still the one it was checked against (else checks again).
    pub(crate) fn finish(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        stats: &mut NetStats,
        done: Result<Validated, JoinError>,
    ) {
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                stats.records_rejected += 1;
                warn!(error = %e, "a record validation did not finish");
                return;
            }
        };
        let local = *swarm.local_peer_id();
        let store = swarm.behaviour_mut().kad.store_mut();
        let current = store.get(&done.record.key).map(|r| r.value.clone());
        if current != done.existing {
            if done.attempt + 1 < MAX_VALIDATION_ATTEMPTS {
                self.validate(stats, done.source, done.record, current, done.attempt + 1);
            } else {
                stats.records_rejected += 1;
            }
            return;
        }
        let accepted = match done.verdict {
            Ok(accepted) => accepted,
            Err(reason) => {
                stats.records_rejected += 1;
                debug!(source = %done.source, %reason, "record refused");
                return;
            }
        };
        let now = Instant::now();
        let mut record = done.record;
        let expires = expiry(record.expires, accepted.expires_at_unix, now);
        record.expires = Some(expires);
        let mut owner = accepted.owner;
        owner.truncate(MAX_RECORD_OWNER_BYTES);
        let mut forgotten = Vec::new();
        let admitted = self.ledger.admit(
            &record.key,
            done.source,
            owner,
            expires,
            now,
            &mut forgotten,
        );
        for key in &forgotten {
            // Not this node's own record, published under a key kept for another peer once.
            if store.get(key).is_some_and(|r| r.publisher != Some(local)) {
                store.remove(key);
            }
        }
        if let Err(refusal) = admitted {
            stats.records_rejected += 1;
            debug!(source = %done.source, ?refusal, "record refused: bound reached");
            return;
        }
        let key = record.key.clone();
        match store.put(record) {
            Ok(()) => stats.records_stored += 1,
            Err(e) => {
                self.ledger.forget(&key);
                stats.records_rejected += 1;
                debug!(source = %done.source, error = ?e, "record not stored: store full");
            }
        }
    }
}

/// When a kept record expires: at Kademlia's expiry (`kad_expires`, the TTL) or at its own
/// signed expiry (`signed_unix`, Unix seconds), whichever comes first.
fn expiry(kad_expires: Option<Instant>, signed_unix: Option<u64>, now: Instant) -> Instant {
    let ttl = kad_expires.unwrap_or(now + crate::behaviour::RECORD_TTL);
    let Some(signed_unix) = signed_unix else {
        return ttl;
    };
    let unix_now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signed = now + Duration::from_secs(signed_unix.saturating_sub(unix_now));
    ttl.min(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> RecordKey {
        RecordKey::new(&i.to_be_bytes())
    }

    fn limits() -> RecordLimits {
        RecordLimits {
            records: 10,
            per_peer: 4,
            per_owner: 3,
        }
    }

    #[test]
    fn put_rate_refuses_past_the_burst_and_refills_with_time() {
        let mut rate = PutRate::new(10, 50);
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!((0..60).filter(|_| rate.allow(peer, t0)).count(), 50);
        assert!(!rate.allow(peer, t0), "empty bucket");
        assert!(rate.allow(other, t0), "another peer has its own bucket");
        let later = t0 + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| rate.allow(peer, later)).count(), 5);
    }

    #[test]
    fn one_peer_gets_its_share_and_no_more() {
        let mut ledger = RecordLedger::new(limits());
        let (peer, other) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let mut forgotten = Vec::new();
        for i in 0..4 {
            let owner = vec![u8::try_from(i).unwrap()];
            ledger
                .admit(&key(i), peer, owner, later, now, &mut forgotten)
                .unwrap();
        }
        assert_eq!(
            ledger.admit(&key(4), peer, vec![9], later, now, &mut forgotten),
            Err(RecordRefusal::PeerShareUsed)
        );
        // Replacing one of its own records is not one more.
        ledger
            .admit(&key(0), peer, vec![0], later, now, &mut forgotten)
            .unwrap();
        // Another peer may replace it: the record now counts against that peer.
        ledger
            .admit(&key(0), other, vec![0], later, now, &mut forgotten)
            .unwrap();
        ledger
            .admit(&key(4), peer, vec![4], later, now, &mut forgotten)
            .unwrap();
        assert_eq!(ledger.len(), 5);
        assert!(forgotten.is_empty());
    }

    #[test]
    fn one_owner_gets_its_share_whoever_sends_its_records() {
        let mut ledger = RecordLedger::new(limits());
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let mut forgotten = Vec::new();
        for i in 0..3 {
            ledger
                .admit(
                    &key(i),
                    PeerId::random(),
                    vec![7],
                    later,
                    now,
                    &mut forgotten,
                )
                .unwrap();
        }
        assert_eq!(
            ledger.admit(
                &key(3),
                PeerId::random(),
                vec![7],
                later,
                now,
                &mut forgotten
            ),
            Err(RecordRefusal::OwnerShareUsed)
        );
        // A newer version of a record it has is fine.
        ledger
            .admit(
                &key(1),
                PeerId::random(),
                vec![7],
                later,
                now,
                &mut forgotten,
            )
            .unwrap();
        assert_eq!(ledger.len(), 3);
    }

    #[test]
    fn a_full_store_forgets_expired_records_first_and_refuses_only_when_none_is() {
        let mut ledger = RecordLedger::new(limits());
        let now = Instant::now();
        let soon = now + Duration::from_secs(10);
        let later = now + Duration::from_secs(3600);
        let mut forgotten = Vec::new();
        for i in 0..10 {
            let expires = if i < 2 { soon } else { later };
            ledger
                .admit(
                    &key(i),
                    PeerId::random(),
                    i.to_be_bytes().to_vec(),
                    expires,
                    now,
                    &mut forgotten,
                )
                .unwrap();
        }
        // Full, nothing expired yet: refused.
        assert_eq!(
            ledger.admit(
                &key(10),
                PeerId::random(),
                vec![1],
                later,
                now,
                &mut forgotten
            ),
            Err(RecordRefusal::StoreFull)
        );
        assert!(forgotten.is_empty());
        // Past the expiry (and the sweep interval): the two expired records make room.
        let after = now + SWEEP_MIN_INTERVAL + Duration::from_secs(11);
        for i in 10..12 {
            ledger
                .admit(
                    &key(i),
                    PeerId::random(),
                    vec![1, 0],
                    later,
                    after,
                    &mut forgotten,
                )
                .unwrap();
        }
        forgotten.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        assert_eq!(forgotten, vec![key(0), key(1)]);
        assert_eq!(
            ledger.admit(
                &key(12),
                PeerId::random(),
                vec![2],
                later,
                after,
                &mut forgotten
            ),
            Err(RecordRefusal::StoreFull)
        );
        assert_eq!(ledger.len(), 10);
    }

    #[test]
    fn a_peer_full_of_expired_records_gets_room_again() {
        let mut ledger = RecordLedger::new(limits());
        let peer = PeerId::random();
        let now = Instant::now();
        let soon = now + Duration::from_secs(10);
        let mut forgotten = Vec::new();
        for i in 0..4 {
            ledger
                .admit(
                    &key(i),
                    peer,
                    vec![u8::try_from(i).unwrap()],
                    soon,
                    now,
                    &mut forgotten,
                )
                .unwrap();
        }
        let after = now + SWEEP_MIN_INTERVAL + Duration::from_secs(11);
        ledger
            .admit(
                &key(4),
                peer,
                vec![4],
                after + SWEEP_MIN_INTERVAL,
                after,
                &mut forgotten,
            )
            .unwrap();
        assert_eq!(forgotten.len(), 4);
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn a_record_expires_at_its_signed_expiry_when_that_is_before_the_ttl() {
        let now = Instant::now();
        let ttl = now + Duration::from_secs(7 * 24 * 3600);
        let unix_now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signed = expiry(Some(ttl), Some(unix_now + 3600), now);
        assert!(signed < now + Duration::from_secs(3601));
        assert!(signed > now + Duration::from_secs(3500));
        assert_eq!(expiry(Some(ttl), None, now), ttl);
        assert_eq!(expiry(Some(ttl), Some(unix_now + 30 * 24 * 3600), now), ttl);
    }
}
