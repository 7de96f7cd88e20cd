//! Replay and duplicate protection for received envelopes: a timestamp window
//! plus a seen-set of envelope ids.
//!
//! ```text
//!  verified SecureMessage ──► check_timestamp(timestamp, now)   too old: SESSION_EXPIRED
//!                                   │                           too far ahead: MALFORMED
//!                                   ▼
//!                      SeenSet::check_and_insert(id, timestamp, now)
//!                         LRU cache hit? ──yes──► Replay
//!                                   │ no
//!                         SeenStore::contains? ──yes──► Replay
//!                                   │ no
//!                         SeenStore::insert, cache ──► New
//! ```
//!
//! # Key
//!
//! The key is the signed [`EnvelopeId`] `(sender_device, session_id,
//! sequence_num)`, not the envelope digest. Keyed by digest, a sender could
//! get two *different* envelopes accepted at the same sequence position (for
//! example re-signed with a new nonce or timestamp), and ordering, receipts and
//! the application's history all assume one message per position. The id is
//! also known before hashing the payload, and it is what receipts name. An
//! identical replay has the same id, so it is caught either way.
//!
//! # Window
//!
//! An envelope is refused if its timestamp is more than [`MAX_ENVELOPE_AGE`]
//! before `now` ([`ErrorCode::SessionExpired`]) or more than
//! [`MAX_CLOCK_SKEW`] after it ([`ErrorCode::Malformed`]). Anything the window
//! refuses never reaches the seen-set, so the persisted set only needs the
//! ids whose timestamps are still inside the window. It is kept by the
//! envelope's own (signed) timestamp, never by the time it was received: an
//! envelope stamped up to [`MAX_CLOCK_SKEW`] in the future stays acceptable
//! that much longer than one received "now". [`prune_cutoff`] is the one rule
//! for forgetting: ids with `timestamp < now - MAX_ENVELOPE_AGE -
//! MAX_CLOCK_SKEW` go. The extra skew is slack for this device's own clock
//! stepping back (an NTP correction, a restart that loses the in-memory
//! floor) between a prune and a later check: every envelope the window can
//! still accept is still in the set, so no replay slips in between the MLS
//! check and the seen-set. [`SeenSet::prune`] uses it, and after a prune the
//! set also refuses timestamps below the cutoff even if `now` later goes
//! further back, so a pruned id can never come back.
//!
//! # Sent time
//!
//! The sender's claimed send time inside the encrypted content is bounded by
//! the same window ([`bounded_sent_at`]), so no contact can pin a message to
//! the top or bottom of a history.
//!
//! [`ErrorCode::SessionExpired`]: crate::envelope::ErrorCode::SessionExpired
//! [`ErrorCode::Malformed`]: crate::envelope::ErrorCode::Malformed

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::convert::Infallible;
use std::num::NonZeroUsize;

use lru::LruCache;
use thiserror::Error;

use crate::envelope::{EnvelopeId, ErrorCode};

/// Oldest envelope accepted, in milliseconds: 14 days. Longer than the
/// mailbox TTL (7 days at most), so an envelope that waited its full time in
/// a mailbox, or was retried by its sender until then, is still accepted
/// after a week of the recipient's clock running ahead.
pub const MAX_ENVELOPE_AGE: u64 = 14 * 24 * 60 * 60 * 1000;
/// How far in the future an envelope's timestamp may be, in milliseconds:
/// 5 minutes of clock difference between devices.
pub const MAX_CLOCK_SKEW: u64 = 5 * 60 * 1000;
/// Default capacity of the in-memory cache in front of the store: covers the
/// recent ids that retransmitted duplicates hit, in under 1 MiB.
pub const DEFAULT_SEEN_CACHE_CAPACITY: NonZeroUsize = NonZeroUsize::new(8192).expect("non-zero");

/// Whether an envelope id was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// First time: process it.
    New,
    /// Seen before: do not deliver again (but acknowledge it again).
    Replay,
}

/// Error from [`check_timestamp`] or a [`SeenSet`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SeenError<E> {
    /// The envelope is older than the window (or than the last prune).
    #[error(
        "envelope expired: sent at {timestamp} ms, the oldest accepted is {oldest} ms; it was \
         held too long or the sender's clock is wrong"
    )]
    Expired {
        /// The envelope's timestamp.
        timestamp: u64,
        /// The oldest timestamp accepted now.
        oldest: u64,
    },
    /// The envelope's timestamp is too far in the future.
    #[error(
        "envelope timestamp {timestamp} ms is in the future (newest accepted {newest} ms); \
         the sender's or this device's clock is wrong"
    )]
    FromTheFuture {
        /// The envelope's timestamp.
        timestamp: u64,
        /// The newest timestamp accepted now.
        newest: u64,
    },
    /// The persistent store failed.
    #[error("seen-set storage failed: {0}")]
    Store(#[source] E),
}

impl<E> SeenError<E> {
    /// The stable wire code to report for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired { .. } => ErrorCode::SessionExpired,
            Self::FromTheFuture { .. } => ErrorCode::Malformed,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// Checks an envelope timestamp against the window around `now` (unix ms).
///
/// # Errors
///
/// [`SeenError::Expired`] if `timestamp < now - MAX_ENVELOPE_AGE`,
/// [`SeenError::FromTheFuture`] if `timestamp > now + MAX_CLOCK_SKEW`.
pub fn check_timestamp(timestamp: u64, now: u64) -> Result<(), SeenError<Infallible>> {
    check_window(timestamp, now, 0)
}

fn check_window<E>(timestamp: u64, now: u64, floor: u64) -> Result<(), SeenError<E>> {
    let oldest = now.saturating_sub(MAX_ENVELOPE_AGE).max(floor);
    let newest = now.saturating_add(MAX_CLOCK_SKEW);
    if timestamp < oldest {
        return Err(SeenError::Expired { timestamp, oldest });
    }
    if timestamp > newest {
        return Err(SeenError::FromTheFuture { timestamp, newest });
    }
    Ok(())
}

/// The oldest envelope timestamp the seen-set must still remember at `now`
/// (unix ms): `now - MAX_ENVELOPE_AGE - MAX_CLOCK_SKEW`. Ids whose envelope
/// timestamp is below it may be forgotten; every id the window can still
/// accept, even after this device's clock stepped back by up to
/// [`MAX_CLOCK_SKEW`], is at or above it. See the [module docs](self).
pub fn prune_cutoff(now: u64) -> u64 {
    now.saturating_sub(MAX_ENVELOPE_AGE)
        .saturating_sub(MAX_CLOCK_SKEW)
}

/// The time to show for a received message (unix ms): the sender's claimed
/// `sent_at_ms` if it is plausible, else the envelope's signed `timestamp`.
///
/// The claim is encrypted content the sender chose freely; the envelope
/// timestamp has already passed [`check_timestamp`] at `received_at`. A claim
/// is plausible if it is not later than `received_at + MAX_CLOCK_SKEW` (the
/// same future slack the window allows) and not earlier than
/// `envelope_timestamp - MAX_ENVELOPE_AGE` (a message is not older than the
/// window its envelope is judged by). A missing claim (0) or one outside
/// those bounds is replaced by the envelope timestamp.
pub fn bounded_sent_at(claimed: u64, envelope_timestamp: u64, received_at: u64) -> u64 {
    let newest = received_at.saturating_add(MAX_CLOCK_SKEW);
    let oldest = envelope_timestamp.saturating_sub(MAX_ENVELOPE_AGE);
    if claimed == 0 || claimed > newest || claimed < oldest {
        envelope_timestamp
    } else {
        claimed
    }
}

/// The persistent part of a [`SeenSet`] (the node implements it on SQLite).
pub trait SeenStore {
    /// Storage error.
    type Error;

    /// Whether `id` is stored.
    ///
    /// # Errors
    ///
    /// Storage failure.
    fn contains(&self, id: &EnvelopeId) -> Result<bool, Self::Error>;

    /// Stores `id` with the envelope's `timestamp` (unix ms, inside the
    /// window), which [`prune_before`](Self::prune_before) compares against.
    ///
    /// # Errors
    ///
    /// Storage failure.
    fn insert(&mut self, id: &EnvelopeId, timestamp: u64) -> Result<(), Self::Error>;

    /// Deletes every id stored with a timestamp below `cutoff`; returns how
    /// many were deleted.
    ///
    /// # Errors
    ///
    /// Storage failure.
    fn prune_before(&mut self, cutoff: u64) -> Result<usize, Self::Error>;
}

/// A [`SeenStore`] in memory, for tests and tools. It is bounded only by the
/// window: call [`SeenSet::prune`] regularly.
#[derive(Debug, Default, Clone)]
pub struct MemorySeenStore {
    ids: BTreeMap<EnvelopeId, u64>,
}

impl MemorySeenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl SeenStore for MemorySeenStore {
    type Error = Infallible;

    fn contains(&self, id: &EnvelopeId) -> Result<bool, Infallible> {
        Ok(self.ids.contains_key(id))
    }

    fn insert(&mut self, id: &EnvelopeId, timestamp: u64) -> Result<(), Infallible> {
        match self.ids.entry(*id) {
            Entry::Vacant(slot) => {
                slot.insert(timestamp);
            }
            Entry::Occupied(mut slot) => {
                let stored = slot.get_mut();
                *stored = (*stored).max(timestamp);
            }
        }
        Ok(())
    }

    fn prune_before(&mut self, cutoff: u64) -> Result<usize, Infallible> {
        let before = self.ids.len();
        self.ids.retain(|_, timestamp| *timestamp >= cutoff);
        Ok(before - self.ids.len())
    }
}

/// The seen-set: an LRU cache of recently seen ids in front of a
/// [`SeenStore`], plus the timestamp window (see the [module docs](self)).
///
/// The cache holds only ids known to be stored, so a cache hit is a replay
/// without touching the store; a miss asks the store.
#[derive(Debug)]
pub struct SeenSet<S> {
    cache: LruCache<EnvelopeId, ()>,
    store: S,
    /// Timestamps below this were pruned from the store: refuse them always.
    floor: u64,
}

impl<S: SeenStore> SeenSet<S> {
    /// A seen-set over `store` with [`DEFAULT_SEEN_CACHE_CAPACITY`].
    pub fn new(store: S) -> Self {
        Self::with_cache_capacity(store, DEFAULT_SEEN_CACHE_CAPACITY)
    }

    /// A seen-set over `store` caching up to `capacity` ids in memory.
    pub fn with_cache_capacity(store: S, capacity: NonZeroUsize) -> Self {
        Self {
            cache: LruCache::new(capacity),
            store,
            floor: 0,
        }
    }

    /// Checks the window, then whether `id` was seen; records it if not.
    ///
    /// Call it after the envelope's signature verified (so the id and
    /// timestamp are the sender's) and before delivering it.
    ///
    /// # Errors
    ///
    /// [`SeenError::Expired`] / [`SeenError::FromTheFuture`] outside the
    /// window (nothing is recorded); [`SeenError::Store`] if the store fails.
    pub fn check_and_insert(
        &mut self,
        id: &EnvelopeId,
        timestamp: u64,
        now: u64,
    ) -> Result<Freshness, SeenError<S::Error>> {
        check_window(timestamp, now, self.floor)?;
        if self.cache.get(id).is_some() {
            return Ok(Freshness::Replay);
        }
        if self.store.contains(id).map_err(SeenError::Store)? {
            self.cache.put(*id, ());
            return Ok(Freshness::Replay);
        }
        self.store.insert(id, timestamp).map_err(SeenError::Store)?;
        self.cache.put(*id, ());
        Ok(Freshness::New)
    }

    /// The first half of [`check_and_insert`](Self::check_and_insert) for callers whose store
    /// write happens inside their own transaction (which may still roll back): checks the window,
    /// the cache and the store, records nothing. After the caller committed the id to its store,
    /// it calls [`confirm`](Self::confirm).
    ///
    /// # Errors
    ///
    /// As [`check_and_insert`](Self::check_and_insert).
    pub fn check(
        &mut self,
        id: &EnvelopeId,
        timestamp: u64,
        now: u64,
    ) -> Result<Freshness, SeenError<S::Error>> {
        check_window(timestamp, now, self.floor)?;
        if self.cache.get(id).is_some() {
            return Ok(Freshness::Replay);
        }
        if self.store.contains(id).map_err(SeenError::Store)? {
            self.cache.put(*id, ());
            return Ok(Freshness::Replay);
        }
        Ok(Freshness::New)
    }

    /// The caller committed `id` to the store: cache it, so a replay is refused without a store
    /// lookup.
    pub fn confirm(&mut self, id: &EnvelopeId) {
        self.cache.put(*id, ());
    }

    /// Drops stored ids whose timestamps are below [`prune_cutoff`]`(now)`
    /// (out of the window, with the clock-skew slack); returns how many.
    /// Cached ids stay until evicted (harmless: they are refused by the
    /// window anyway).
    ///
    /// # Errors
    ///
    /// [`SeenError::Store`] if the store fails.
    pub fn prune(&mut self, now: u64) -> Result<usize, SeenError<S::Error>> {
        let cutoff = prune_cutoff(now).max(self.floor);
        let pruned = self.store.prune_before(cutoff).map_err(SeenError::Store)?;
        self.floor = cutoff;
        Ok(pruned)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }
}

#[cfg(test)]
mod two_phase_tests {
    use super::*;
    use crate::{DeviceKey, envelope::SessionId};

    #[test]
    fn check_records_nothing_until_confirmed() {
        let id = EnvelopeId {
            sender_device: DeviceKey::from_bytes(&[1; 32]).public(),
            session_id: SessionId::from_bytes([2; 16]),
            sequence_num: 3,
        };
        let now = 1_800_000_000_000; // unix milliseconds
        let mut seen = SeenSet::new(MemorySeenStore::new());
        assert_eq!(seen.check(&id, now, now).unwrap(), Freshness::New);
        // The caller's transaction rolled back: still new.
        assert_eq!(seen.check(&id, now, now).unwrap(), Freshness::New);
        seen.confirm(&id);
        assert_eq!(seen.check(&id, now, now).unwrap(), Freshness::Replay);
        // Outside the window: refused before any lookup.
        assert!(seen.check(&id, now - MAX_ENVELOPE_AGE - 1, now).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceKey;
    use crate::envelope::SessionId;

    const NOW: u64 = 1_700_000_000_000;

    fn id(seq: u64) -> EnvelopeId {
        EnvelopeId {
            sender_device: DeviceKey::from_bytes(&[3; 32]).public(),
            session_id: SessionId::from_bytes([4; 16]),
            sequence_num: seq,
        }
    }

    #[test]
    fn first_is_new_then_replay() {
        let mut seen = SeenSet::new(MemorySeenStore::new());
        assert_eq!(seen.check_and_insert(&id(1), NOW, NOW), Ok(Freshness::New));
        assert_eq!(
            seen.check_and_insert(&id(1), NOW, NOW),
            Ok(Freshness::Replay)
        );
        assert_eq!(seen.check_and_insert(&id(2), NOW, NOW), Ok(Freshness::New));
        assert_eq!(seen.store().len(), 2);
    }

    #[test]
    fn the_store_answers_after_cache_eviction() {
        let one = NonZeroUsize::new(1).expect("non-zero");
        let mut seen = SeenSet::with_cache_capacity(MemorySeenStore::new(), one);
        for seq in 1..=10 {
            assert_eq!(
                seen.check_and_insert(&id(seq), NOW, NOW),
                Ok(Freshness::New)
            );
        }
        for seq in 1..=10 {
            assert_eq!(
                seen.check_and_insert(&id(seq), NOW, NOW),
                Ok(Freshness::Replay)
            );
        }
        // A restart keeps the store, loses the cache.
        let mut restarted = SeenSet::new(seen.into_store());
        assert_eq!(
            restarted.check_and_insert(&id(3), NOW, NOW),
            Ok(Freshness::Replay)
        );
    }

    #[test]
    fn window_edges() {
        assert_eq!(check_timestamp(NOW - MAX_ENVELOPE_AGE, NOW), Ok(()));
        assert_eq!(check_timestamp(NOW + MAX_CLOCK_SKEW, NOW), Ok(()));
        let too_old = check_timestamp(NOW - MAX_ENVELOPE_AGE - 1, NOW);
        assert!(matches!(too_old, Err(SeenError::Expired { .. })));
        assert_eq!(
            too_old.map_err(|e| e.code()),
            Err(ErrorCode::SessionExpired)
        );
        let future = check_timestamp(NOW + MAX_CLOCK_SKEW + 1, NOW);
        assert_eq!(future.map_err(|e| e.code()), Err(ErrorCode::Malformed));
        // No overflow at the ends of the clock.
        assert_eq!(check_timestamp(0, 0), Ok(()));
        assert_eq!(check_timestamp(u64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn refused_envelopes_are_not_recorded() {
        let mut seen = SeenSet::new(MemorySeenStore::new());
        assert!(seen.check_and_insert(&id(1), 0, NOW).is_err());
        assert!(seen.store().is_empty());
    }

    #[test]
    fn prune_keeps_the_window_and_survives_clock_steps() {
        let mut seen = SeenSet::new(MemorySeenStore::new());
        let old = NOW - MAX_ENVELOPE_AGE + 10;
        assert_eq!(seen.check_and_insert(&id(1), old, NOW), Ok(Freshness::New));
        assert_eq!(seen.check_and_insert(&id(2), NOW, NOW), Ok(Freshness::New));

        let later = NOW + MAX_CLOCK_SKEW + 11;
        assert_eq!(seen.prune(later), Ok(1));
        assert_eq!(seen.store().len(), 1);
        // The pruned id is refused by the window, not accepted as new...
        assert!(matches!(
            seen.check_and_insert(&id(1), old, later),
            Err(SeenError::Expired { .. })
        ));
        // ...even when the clock steps back to where it would be in window.
        assert!(matches!(
            seen.check_and_insert(&id(1), old, NOW),
            Err(SeenError::Expired { .. })
        ));
        assert_eq!(
            seen.check_and_insert(&id(2), NOW, later),
            Ok(Freshness::Replay)
        );
    }

    #[test]
    fn an_id_the_window_still_accepts_is_never_pruned_even_across_a_restart_and_a_clock_step() {
        // Accepted at NOW with a timestamp near the old end of the window.
        let ts = NOW - MAX_ENVELOPE_AGE + 10;
        let mut seen = SeenSet::new(MemorySeenStore::new());
        assert_eq!(seen.check_and_insert(&id(1), ts, NOW), Ok(Freshness::New));
        // A prune a little later (under the skew), then a restart: the floor is gone.
        seen.prune(NOW + 20).unwrap();
        let mut restarted = SeenSet::new(seen.into_store());
        // The clock stepped back to NOW: the window accepts `ts` again, so the id must be there.
        assert_eq!(check_timestamp(ts, NOW), Ok(()));
        assert_eq!(
            restarted.check_and_insert(&id(1), ts, NOW),
            Ok(Freshness::Replay)
        );
        // Only once even a clock `MAX_CLOCK_SKEW` behind refuses it is the id forgotten.
        let late = ts + MAX_ENVELOPE_AGE + MAX_CLOCK_SKEW + 1;
        assert_eq!(restarted.prune(late), Ok(1));
        assert!(check_timestamp(ts, late - MAX_CLOCK_SKEW).is_err());
    }

    #[test]
    fn prune_cutoff_keeps_everything_the_window_accepts() {
        for now in [0, MAX_CLOCK_SKEW, NOW, u64::MAX] {
            let cutoff = prune_cutoff(now);
            // The oldest timestamp accepted at `now`, or at `now` stepped back by the skew.
            let oldest = now
                .saturating_sub(MAX_CLOCK_SKEW)
                .saturating_sub(MAX_ENVELOPE_AGE);
            assert!(cutoff <= oldest, "now {now}");
        }
        assert_eq!(prune_cutoff(NOW), NOW - MAX_ENVELOPE_AGE - MAX_CLOCK_SKEW);
    }

    #[test]
    fn the_claimed_sent_time_is_bounded_by_the_window() {
        let ts = NOW - 1000;
        // Plausible claims stand (a bit before the envelope, or a little ahead of our clock).
        assert_eq!(bounded_sent_at(ts - 5000, ts, NOW), ts - 5000);
        assert_eq!(
            bounded_sent_at(NOW + MAX_CLOCK_SKEW, ts, NOW),
            NOW + MAX_CLOCK_SKEW
        );
        assert_eq!(
            bounded_sent_at(ts - MAX_ENVELOPE_AGE, ts, NOW),
            ts - MAX_ENVELOPE_AGE
        );
        // From the future (a message pinned to the top of the history): the envelope's time.
        assert_eq!(bounded_sent_at(NOW + MAX_CLOCK_SKEW + 1, ts, NOW), ts);
        assert_eq!(bounded_sent_at(u64::MAX, ts, NOW), ts);
        assert_eq!(bounded_sent_at(i64::MAX as u64, ts, NOW), ts);
        // From too long ago, or missing: the envelope's time.
        assert_eq!(bounded_sent_at(ts - MAX_ENVELOPE_AGE - 1, ts, NOW), ts);
        assert_eq!(bounded_sent_at(1, ts, NOW), ts);
        assert_eq!(bounded_sent_at(0, ts, NOW), ts);
        // No overflow at the ends of the clock.
        assert_eq!(bounded_sent_at(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(bounded_sent_at(5, 0, 0), 5);
    }
}
