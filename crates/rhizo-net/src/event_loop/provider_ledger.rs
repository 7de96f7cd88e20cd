//! [`ProviderLedger`]: which provider records this node keeps for other peers, within bounds,
//! and when they expire.
//!
//! Kademlia's `MemoryStore` holds the records, but it drops another peer's expired record only
//! when its key is looked up again, and it lets a single peer take every key, so a flood (or
//! just a long uptime) could fill it for good. The event loop therefore asks the ledger before
//! it stores an inbound `ADD_PROVIDER`; the ledger mirrors the key, provider and expiry of every
//! record kept for another peer (not this node's own, which Kademlia republishes):
//!
//! ```text
//!  ADD_PROVIDER (key, provider, expires)
//!    ─▶ key of 1..=MAX_PROVIDER_KEY_BYTES bytes          else KeySize
//!    ─▶ (key, provider) kept already: new expiry          ─▶ keep
//!    ─▶ key has MAX_PROVIDERS_PER_KEY: drop its expired   else KeyFull
//!    ─▶ provider at MAX_PROVIDER_KEYS_PER_PEER keys       PeerFull   ┐ first forget every
//!    ─▶ a new key, and MAX_PROVIDER_KEYS keys held        StoreFull  ┘ expired record, then
//!    ─▶ keep                                                          check again
//! ```
//!
//! Records the ledger forgets are handed back to the caller, which removes them from the store
//! too. A full pass over the expired records runs at most once per [`SWEEP_MIN_INTERVAL`], so
//! that a flood does not make every refusal cost one. Sans-IO: every call takes `now`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{PeerId, kad::RecordKey};

use crate::behaviour::{
    MAX_PROVIDER_KEY_BYTES, MAX_PROVIDER_KEYS, MAX_PROVIDER_KEYS_PER_PEER, MAX_PROVIDERS_PER_KEY,
};

/// Least time between two full passes over the expired records.
pub(crate) const SWEEP_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Why a provider record was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderRefusal {
    /// The key is empty or longer than [`MAX_PROVIDER_KEY_BYTES`].
    KeySize,
    /// The key has its [`MAX_PROVIDERS_PER_KEY`] providers, none expired.
    KeyFull,
    /// The provider holds records for [`MAX_PROVIDER_KEYS_PER_PEER`] keys here already.
    PeerFull,
    /// [`MAX_PROVIDER_KEYS`] keys are held, and this one is new.
    StoreFull,
}

/// The bounds a ledger enforces (the crate's constants; smaller in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LedgerLimits {
    pub(crate) keys: usize,
    pub(crate) providers_per_key: usize,
    pub(crate) keys_per_peer: usize,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        Self {
            keys: MAX_PROVIDER_KEYS,
            providers_per_key: MAX_PROVIDERS_PER_KEY,
            keys_per_peer: MAX_PROVIDER_KEYS_PER_PEER,
        }
    }
}

/// The provider records kept for other peers; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct ProviderLedger {
    limits: LedgerLimits,
    /// Per key, its providers and when each record expires (≤ `providers_per_key` each).
    keys: HashMap<RecordKey, Vec<(PeerId, Instant)>>,
    /// Per provider, how many keys it holds records for (no zero entries).
    keys_per_peer: HashMap<PeerId, usize>,
    /// When the last full pass over the expired records ran.
    last_sweep: Option<Instant>,
}

impl ProviderLedger {
    /// A ledger enforcing `limits`.
    pub(crate) fn new(limits: LedgerLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Keys with at least one record kept for another peer.
    pub(crate) fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Decides whether to keep `provider`'s record for `key`, expiring at `expires`, and notes
    /// it if so. Records forgotten on the way (expired) are appended to `forgotten`; the caller
    /// removes them from the store whatever the answer.
    pub(crate) fn admit(
        &mut self,
        key: &RecordKey,
        provider: PeerId,
        expires: Instant,
        now: Instant,
        forgotten: &mut Vec<(RecordKey, PeerId)>,
    ) -> Result<(), ProviderRefusal> {
        let len = key.as_ref().len();
        if len == 0 || len > MAX_PROVIDER_KEY_BYTES {
            return Err(ProviderRefusal::KeySize);
        }
        if let Some(kept) = self
            .keys
            .get_mut(key)
            .and_then(|providers| providers.iter_mut().find(|(p, _)| *p == provider))
        {
            kept.1 = expires;
            return Ok(());
        }
        if self.key_full(key) {
            self.forget_expired_of(key, now, forgotten);
            if self.key_full(key) {
                return Err(ProviderRefusal::KeyFull);
            }
        }
        if self.peer_full(&provider) || self.store_full(key) {
            self.sweep(now, forgotten);
            if self.peer_full(&provider) {
                return Err(ProviderRefusal::PeerFull);
            }
            if self.store_full(key) {
                return Err(ProviderRefusal::StoreFull);
            }
        }
        self.keys
            .entry(key.clone())
            .or_default()
            .push((provider, expires));
        *self.keys_per_peer.entry(provider).or_default() += 1;
        Ok(())
    }

    /// Forgets `provider`'s record for `key` (the store refused it after all).
    pub(crate) fn forget(&mut self, key: &RecordKey, provider: &PeerId) {
        let Some(providers) = self.keys.get_mut(key) else {
            return;
        };
        let before = providers.len();
        providers.retain(|(p, _)| p != provider);
        let removed = providers.len() < before;
        if providers.is_empty() {
            self.keys.remove(key);
        }
        if removed {
            self.peer_lost_key(provider);
        }
    }

    fn key_full(&self, key: &RecordKey) -> bool {
        self.keys
            .get(key)
            .is_some_and(|providers| providers.len() >= self.limits.providers_per_key)
    }

    fn peer_full(&self, provider: &PeerId) -> bool {
        self.keys_per_peer
            .get(provider)
            .is_some_and(|n| *n >= self.limits.keys_per_peer)
    }

    fn store_full(&self, key: &RecordKey) -> bool {
        !self.keys.contains_key(key) && self.keys.len() >= self.limits.keys
    }

    fn peer_lost_key(&mut self, provider: &PeerId) {
        if let Some(n) = self.keys_per_peer.get_mut(provider) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.keys_per_peer.remove(provider);
            }
        }
    }

    /// Forgets the expired records of one key.
    fn forget_expired_of(
        &mut self,
        key: &RecordKey,
        now: Instant,
        forgotten: &mut Vec<(RecordKey, PeerId)>,
    ) {
        let Some(providers) = self.keys.get_mut(key) else {
            return;
        };
        let mut lost = Vec::new();
        providers.retain(|(p, expires)| {
            let live = *expires > now;
            if !live {
                lost.push(*p);
            }
            live
        });
        if providers.is_empty() {
            self.keys.remove(key);
        }
        for provider in lost {
            self.peer_lost_key(&provider);
            forgotten.push((key.clone(), provider));
        }
    }

    /// Forgets every expired record, unless a pass ran less than [`SWEEP_MIN_INTERVAL`] ago.
    fn sweep(&mut self, now: Instant, forgotten: &mut Vec<(RecordKey, PeerId)>) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_MIN_INTERVAL)
        {
            return;
        }
        self.last_sweep = Some(now);
        let expired: Vec<RecordKey> = self
            .keys
            .iter()
            .filter(|(_, providers)| providers.iter().any(|(_, expires)| *expires <= now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.forget_expired_of(&key, now, forgotten);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3600);

    fn key(i: u32) -> RecordKey {
        let mut bytes = vec![0x12, 0x20];
        bytes.extend(i.to_be_bytes());
        bytes.extend([0; 28]);
        RecordKey::new(&bytes)
    }

    fn small() -> ProviderLedger {
        ProviderLedger::new(LedgerLimits {
            keys: 4,
            providers_per_key: 2,
            keys_per_peer: 3,
        })
    }

    #[test]
    fn refuses_empty_and_oversized_keys() {
        let mut ledger = small();
        let now = Instant::now();
        let mut forgotten = Vec::new();
        for bad in [Vec::new(), vec![1; MAX_PROVIDER_KEY_BYTES + 1]] {
            assert_eq!(
                ledger.admit(
                    &RecordKey::new(&bad),
                    PeerId::random(),
                    now + TTL,
                    now,
                    &mut forgotten
                ),
                Err(ProviderRefusal::KeySize)
            );
        }
        let longest = RecordKey::new(&vec![1; MAX_PROVIDER_KEY_BYTES]);
        assert_eq!(
            ledger.admit(&longest, PeerId::random(), now + TTL, now, &mut forgotten),
            Ok(())
        );
        assert_eq!(ledger.keys(), 1);
    }

    #[test]
    fn a_re_announcement_refreshes_instead_of_counting_twice() {
        let mut ledger = small();
        let now = Instant::now();
        let peer = PeerId::random();
        let mut forgotten = Vec::new();
        for i in 0..5 {
            let at = now + Duration::from_secs(i);
            assert_eq!(
                ledger.admit(&key(0), peer, at + TTL, at, &mut forgotten),
                Ok(())
            );
        }
        assert_eq!(ledger.keys(), 1);
        assert_eq!(ledger.keys_per_peer.get(&peer), Some(&1));
        // The refreshed expiry counts: just after the first one would have ended, the record
        // is still live and keeps its place in the (now full) key.
        let later = now + TTL + Duration::from_secs(1);
        assert_eq!(
            ledger.admit(
                &key(0),
                PeerId::random(),
                later + TTL,
                later,
                &mut forgotten
            ),
            Ok(())
        );
        assert_eq!(
            ledger.admit(
                &key(0),
                PeerId::random(),
                later + TTL,
                later,
                &mut forgotten
            ),
            Err(ProviderRefusal::KeyFull)
        );
        assert!(forgotten.is_empty());
    }

    #[test]
    fn a_full_key_takes_a_newcomer_only_once_a_record_expired() {
        let mut ledger = small();
        let now = Instant::now();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut forgotten = Vec::new();
        assert_eq!(
            ledger.admit(&key(1), a, now + TTL, now, &mut forgotten),
            Ok(())
        );
        let soon = now + Duration::from_secs(10);
        assert_eq!(
            ledger.admit(&key(1), b, soon + TTL, soon, &mut forgotten),
            Ok(())
        );
        assert_eq!(
            ledger.admit(&key(1), c, now + TTL, now, &mut forgotten),
            Err(ProviderRefusal::KeyFull)
        );
        // Once a's record expired, c takes its place and a is handed back for the store.
        let after = now + TTL;
        assert_eq!(
            ledger.admit(&key(1), c, after + TTL, after, &mut forgotten),
            Ok(())
        );
        assert_eq!(forgotten, vec![(key(1), a)]);
        assert_eq!(ledger.keys_per_peer.get(&a), None);
    }

    #[test]
    fn one_peer_cannot_take_more_than_its_share() {
        let mut ledger = small();
        let now = Instant::now();
        let flooder = PeerId::random();
        let mut forgotten = Vec::new();
        let refused = (0..10)
            .filter(|i| {
                ledger
                    .admit(&key(*i), flooder, now + TTL, now, &mut forgotten)
                    .is_err()
            })
            .count();
        assert_eq!(refused, 7, "3 keys per peer");
        assert_eq!(
            ledger.admit(&key(20), flooder, now + TTL, now, &mut forgotten),
            Err(ProviderRefusal::PeerFull)
        );
        // Others still get the rest of the store.
        assert_eq!(
            ledger.admit(&key(21), PeerId::random(), now + TTL, now, &mut forgotten),
            Ok(())
        );
        assert_eq!(
            ledger.admit(&key(22), PeerId::random(), now + TTL, now, &mut forgotten),
            Err(ProviderRefusal::StoreFull)
        );
        assert_eq!(ledger.keys(), 4);
    }

    #[test]
    fn a_full_store_frees_expired_keys_at_most_once_a_minute() {
        let mut ledger = small();
        let now = Instant::now();
        let mut forgotten = Vec::new();
        let short = now + Duration::from_secs(30);
        for i in 0..4 {
            assert_eq!(
                ledger.admit(&key(i), PeerId::random(), short, now, &mut forgotten),
                Ok(())
            );
        }
        // Full, nothing expired yet: refused, and the pass that found nothing counts.
        assert_eq!(
            ledger.admit(&key(9), PeerId::random(), now + TTL, now, &mut forgotten),
            Err(ProviderRefusal::StoreFull)
        );
        // Expired now, but the last pass was under a minute ago.
        let expired = now + Duration::from_secs(40);
        assert_eq!(
            ledger.admit(
                &key(9),
                PeerId::random(),
                expired + TTL,
                expired,
                &mut forgotten
            ),
            Err(ProviderRefusal::StoreFull)
        );
        assert!(forgotten.is_empty());
        let next = now + SWEEP_MIN_INTERVAL;
        assert_eq!(
            ledger.admit(&key(9), PeerId::random(), next + TTL, next, &mut forgotten),
            Ok(())
        );
        assert_eq!(forgotten.len(), 4, "every expired record is handed back");
        assert_eq!(ledger.keys(), 1);
        assert!(ledger.keys_per_peer.len() == 1);
    }

    #[test]
    fn forget_undoes_an_admission() {
        let mut ledger = small();
        let now = Instant::now();
        let peer = PeerId::random();
        let mut forgotten = Vec::new();
        assert_eq!(
            ledger.admit(&key(3), peer, now + TTL, now, &mut forgotten),
            Ok(())
        );
        ledger.forget(&key(3), &peer);
        assert_eq!(ledger.keys(), 0);
        assert!(ledger.keys_per_peer.is_empty());
        // Forgetting what is not there is harmless.
        ledger.forget(&key(3), &peer);
        ledger.forget(&key(4), &PeerId::random());
    }
}
