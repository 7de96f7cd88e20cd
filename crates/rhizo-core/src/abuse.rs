//! Abuse resistance: per-peer rate limits and a reputation score per peer.
//!
//! ```text
//!  inbound request from peer P
//!     │
//!     ├─► PeerRateLimiter::check(&P) ── Err(RateLimited { retry_after }) ──► refuse (RATE_LIMITED)
//!     │                                                                      └─► record(P, OverRateLimit)
//!     ▼ Ok
//!  handle it ──► Reputation::record(P, conduct, now_ms)
//!                   │ score ≤ ban_threshold
//!                   └──► Verdict::Ban { until_ms } ──► disconnect, refuse P until then
//!
//!  persistence: Reputation::snapshot_at(now_ms) ──► store ──► Reputation::restore(…) on start
//! ```
//!
//! * [`PeerRateLimiter`] is a token bucket per key (a GCRA from the `governor` crate). It reads
//!   time from a [`governor::clock::Clock`]: in production the monotonic clock
//!   ([`MonotonicClock`]), in tests a [`FakeRelativeClock`](governor::clock::FakeRelativeClock)
//!   the test advances. This is the one place in this crate where time is read rather than
//!   passed in, and only through the clock the caller picks.
//! * [`Reputation`] is sans-IO: every call that depends on time takes `now_ms` (unix
//!   milliseconds, or any monotonic millisecond count — it only compares and subtracts times).
//!
//! Both are bounded: the limiter tracks at most `max_keys` keys, the reputation table at most
//! [`ReputationConfig::max_peers`] peers.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use thiserror::Error;

/// A peer's request was refused by its token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "rate limited: too many requests from this peer; retry in {} ms",
    retry_after.as_millis()
)]
pub struct RateLimited {
    /// How long until the bucket holds a token again (zero if that moment has already passed).
    pub retry_after: Duration,
}

/// The `governor` limiter inside a [`PeerRateLimiter`].
type KeyedLimiter<K, C> =
    RateLimiter<K, HashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A token bucket per key (for example per libp2p `PeerId`), refilled at `per_second` tokens a
/// second up to `burst` tokens. Each [`check`](Self::check) takes one token.
///
/// # Memory bound
///
/// At most `max_keys` keys are tracked. When a check adds a key beyond that, the limiter first
/// drops the keys whose buckets are full again (`governor`'s `retain_recent`: they behave like
/// keys never seen). If the table is *still* too big, every key was active within about the
/// last refill period; the limiter then forgets all state and starts over (keeping only the
/// token the new key just used), so every other key gets a full burst again. Memory stays
/// bounded at the price of that forgiveness: only checks of *new* keys can trigger it, so an
/// attacker needs more than `max_keys` distinct, active keys, and each reset gains any one key
/// at most one extra burst. Size `max_keys` well above the number of peers expected at once,
/// and call [`retain_recent`](Self::retain_recent) periodically to keep the table small.
///
/// ```
/// use std::time::Duration;
/// use governor::clock::FakeRelativeClock;
/// use rhizo_core::abuse::PeerRateLimiter;
///
/// let clock = FakeRelativeClock::default();
/// let limiter = PeerRateLimiter::with_clock(1, 2, 100, clock.clone());
/// assert!(limiter.check(&"peer").is_ok());
/// assert!(limiter.check(&"peer").is_ok());
/// let refused = limiter.check(&"peer").unwrap_err();
/// assert_eq!(refused.retry_after, Duration::from_secs(1));
/// clock.advance(Duration::from_secs(1));
/// assert!(limiter.check(&"peer").is_ok());
/// ```
pub struct PeerRateLimiter<K: Hash + Eq + Clone, C: Clock + Clone = MonotonicClock> {
    /// Replaced wholesale when the table overflows (see the type docs); checks take the read
    /// lock, the reset the write lock.
    limiter: RwLock<KeyedLimiter<K, C>>,
    quota: Quota,
    clock: C,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> PeerRateLimiter<K> {
    /// A limiter on the monotonic clock: `per_second` tokens a second, at most `burst` saved up,
    /// at most `max_keys` keys tracked. Zero for `per_second` or `burst` is treated as 1, zero
    /// for `max_keys` as 1.
    pub fn new(per_second: u32, burst: u32, max_keys: usize) -> Self {
        Self::with_clock(per_second, burst, max_keys, MonotonicClock)
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> PeerRateLimiter<K, C> {
    /// Like [`new`](PeerRateLimiter::new) but reading time from `clock` (tests pass a
    /// [`FakeRelativeClock`](governor::clock::FakeRelativeClock) and advance it).
    pub fn with_clock(per_second: u32, burst: u32, max_keys: usize, clock: C) -> Self {
        let quota = Quota::per_second(at_least_one(per_second)).allow_burst(at_least_one(burst));
        Self {
            limiter: RwLock::new(RateLimiter::hashmap_with_clock(quota, clock.clone())),
            quota,
            clock,
            max_keys: max_keys.max(1),
        }
    }

    /// Takes one token from `key`'s bucket.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] (with the time until the next token) if the bucket is empty.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        let (outcome, len) = {
            let limiter = self.limiter.read().unwrap_or_else(PoisonError::into_inner);
            (limiter.check_key(key), limiter.len())
        };
        // Only a new key grows the table, so known keys never trigger the clean-up below.
        if len > self.max_keys {
            self.make_room(key);
        }
        outcome.map_err(|not_until| RateLimited {
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Takes `n` tokens at once from `key`'s bucket (a request that carries `n` units of work,
    /// such as a batch of envelopes); `n` of 0 takes nothing. All or none: when the bucket holds
    /// fewer, nothing is taken. More than the burst can never be granted and is refused with a
    /// `retry_after` of one full refill.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] if the bucket holds fewer than `n` tokens.
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), RateLimited> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        let (outcome, len) = {
            let limiter = self.limiter.read().unwrap_or_else(PoisonError::into_inner);
            (limiter.check_key_n(key, n), limiter.len())
        };
        if len > self.max_keys {
            self.make_room(key);
        }
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            Err(_) => Err(RateLimited {
                retry_after: self.quota.burst_size_replenished_in(),
            }),
        }
    }

    /// How many keys are tracked now (at most `max_keys`).
    pub fn len(&self) -> usize {
        self.limiter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the keys whose buckets have refilled completely (they behave exactly like keys
    /// never seen). Cheap enough to call every few seconds.
    pub fn retain_recent(&self) {
        let limiter = self.limiter.read().unwrap_or_else(PoisonError::into_inner);
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }

    /// Brings the table back to `max_keys` after `just_checked` was added (see the type docs).
    fn make_room(&self, just_checked: &K) {
        self.retain_recent();
        if self.len() <= self.max_keys {
            return;
        }
        let mut limiter = self.limiter.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have reset it while we waited for the lock.
        if limiter.len() > self.max_keys {
            *limiter = RateLimiter::hashmap_with_clock(self.quota, self.clock.clone());
            // The key just checked keeps the token it used: its outcome was already decided.
            let _ = limiter.check_key(just_checked);
        }
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> fmt::Debug for PeerRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerRateLimiter")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// `n`, or 1 for 0.
fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Lowest reputation score.
pub const MIN_SCORE: i32 = -100;
/// Highest reputation score.
pub const MAX_SCORE: i32 = 100;
/// Default [`ReputationConfig::ban_threshold`].
pub const DEFAULT_BAN_THRESHOLD: i32 = -50;
/// Default [`ReputationConfig::ban_duration_ms`]: one hour.
pub const DEFAULT_BAN_DURATION_MS: u64 = 60 * 60 * 1000;
/// Default [`ReputationConfig::decay_interval_ms`]: one point a minute.
pub const DEFAULT_DECAY_INTERVAL_MS: u64 = 60 * 1000;
/// Default [`ReputationConfig::max_peers`].
pub const DEFAULT_MAX_REPUTATION_PEERS: usize = 10_000;

/// Something a peer did that changes its reputation (named so as not to clash with libp2p's
/// `NetworkBehaviour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conduct {
    /// Answered a request with a well-formed, valid reply: +1.
    ValidReply,
    /// Sent a message that failed validation (bad signature, bad field): −10.
    InvalidMessage,
    /// Sent a message over the size limit: −20.
    Oversized,
    /// Kept sending after being rate limited: −5.
    OverRateLimit,
    /// Broke the protocol (wrong framing, unexpected message, forged data): −25.
    ProtocolViolation,
}

impl Conduct {
    /// Every kind of conduct.
    pub const ALL: [Self; 5] = [
        Self::ValidReply,
        Self::InvalidMessage,
        Self::Oversized,
        Self::OverRateLimit,
        Self::ProtocolViolation,
    ];

    /// The change to the score.
    pub fn delta(self) -> i32 {
        match self {
            Self::ValidReply => 1,
            Self::InvalidMessage => -10,
            Self::Oversized => -20,
            Self::OverRateLimit => -5,
            Self::ProtocolViolation => -25,
        }
    }
}

/// What to do with a peer after [`Reputation::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Keep talking to it.
    Fine,
    /// Disconnect it and refuse it until `until_ms` (an existing ban is reported as is).
    Ban {
        /// When the ban ends, in the same milliseconds as `now_ms`.
        until_ms: u64,
    },
}

/// How a [`Reputation`] scores and bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReputationConfig {
    /// A score at or below this bans the peer (default −50). Below [`MIN_SCORE`] nobody is
    /// ever banned.
    pub ban_threshold: i32,
    /// How long a ban lasts (default 1 h). When it ends the score restarts at
    /// `ban_threshold / 2`: the peer is on probation.
    pub ban_duration_ms: u64,
    /// Scores move one point toward 0 per interval (default 60 s); 0 disables decay.
    pub decay_interval_ms: u64,
    /// Most peers remembered (default 10 000); at least 1.
    pub max_peers: usize,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        Self {
            ban_threshold: DEFAULT_BAN_THRESHOLD,
            ban_duration_ms: DEFAULT_BAN_DURATION_MS,
            decay_interval_ms: DEFAULT_DECAY_INTERVAL_MS,
            max_peers: DEFAULT_MAX_REPUTATION_PEERS,
        }
    }
}

/// One peer's stored state; [`Entry::settled`] brings it up to a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// In [`MIN_SCORE`]..=[`MAX_SCORE`].
    score: i32,
    /// Decay is counted from here: whole intervals are applied and the remainder carried, so the
    /// rate is exact however often the peer is updated. `None` after a
    /// [`restore`](Reputation::restore) until the first update with a time: decay starts then.
    decayed_at_ms: Option<u64>,
    /// Set while banned (and until the next settle after the ban ended).
    banned_until_ms: Option<u64>,
}

impl Entry {
    /// The state at `now_ms`: an ended ban is lifted (score to probation, decay from the end of
    /// the ban), then whole decay intervals are applied. A clock going backwards changes
    /// nothing.
    fn settled(mut self, config: &ReputationConfig, now_ms: u64) -> Self {
        if let Some(until) = self.banned_until_ms {
            if now_ms < until {
                // The score is frozen during a ban.
                return self;
            }
            self.banned_until_ms = None;
            self.score = clamp_score(config.ban_threshold / 2);
            self.decayed_at_ms = Some(until);
        }
        let start = self.decayed_at_ms.unwrap_or(now_ms);
        if self.score == 0 || config.decay_interval_ms == 0 {
            self.decayed_at_ms = Some(start.max(now_ms));
            return self;
        }
        let elapsed = now_ms.saturating_sub(start);
        let steps = elapsed / config.decay_interval_ms;
        let distance = u64::from(self.score.unsigned_abs());
        if steps >= distance {
            self.score = 0;
            self.decayed_at_ms = Some(start.max(now_ms));
        } else {
            // steps < distance ≤ 100, so these conversions are exact.
            let steps_i32 = i32::try_from(steps).unwrap_or(i32::MAX);
            self.score -= self.score.signum() * steps_i32;
            self.decayed_at_ms = Some(start + steps * config.decay_interval_ms);
        }
        self
    }

    /// Whether banned at `now_ms`.
    fn banned_at(&self, now_ms: u64) -> Option<u64> {
        self.banned_until_ms.filter(|&until| now_ms < until)
    }
}

/// `score` clamped to [`MIN_SCORE`]..=[`MAX_SCORE`].
fn clamp_score(score: i32) -> i32 {
    score.clamp(MIN_SCORE, MAX_SCORE)
}

/// A reputation score per peer, sans-IO (calls that depend on time take `now_ms`).
///
/// * Scores start at 0 and stay within [`MIN_SCORE`]..=[`MAX_SCORE`]; each [`Conduct`] adds its
///   [`delta`](Conduct::delta).
/// * A score at or below [`ban_threshold`](ReputationConfig::ban_threshold) bans the peer for
///   [`ban_duration_ms`](ReputationConfig::ban_duration_ms); during the ban the score is frozen
///   and further conduct is ignored. When the ban ends the score restarts at
///   `ban_threshold / 2`, so a returning peer that misbehaves again is banned sooner.
/// * Outside bans scores decay toward 0 by one point per
///   [`decay_interval_ms`](ReputationConfig::decay_interval_ms), computed lazily.
/// * At most [`max_peers`](ReputationConfig::max_peers) peers are remembered. Adding one more
///   forgets the peer whose score is closest to 0 (neutral peers cost nothing to forget; ties:
///   the least recently updated). Banned peers are forgotten only if every peer is banned, the
///   one whose ban ends first.
///
/// ```
/// use rhizo_core::abuse::{Conduct, Reputation, ReputationConfig, Verdict};
///
/// let mut reputation = Reputation::new(ReputationConfig::default());
/// let now = 1_000;
/// for _ in 0..4 {
///     assert_eq!(reputation.record("mallory", Conduct::InvalidMessage, now), Verdict::Fine);
/// }
/// // −50 reaches the default threshold: banned for an hour.
/// let until = now + 3_600_000;
/// assert_eq!(
///     reputation.record("mallory", Conduct::InvalidMessage, now),
///     Verdict::Ban { until_ms: until }
/// );
/// assert_eq!(reputation.is_banned(&"mallory", now), Some(until));
/// assert_eq!(reputation.is_banned(&"mallory", until), None);
/// assert_eq!(reputation.score(&"mallory", until), -25); // on probation
/// ```
#[derive(Debug, Clone)]
pub struct Reputation<K> {
    config: ReputationConfig,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Reputation<K> {
    /// An empty table with `config` (a `max_peers` of 0 is treated as 1).
    pub fn new(mut config: ReputationConfig) -> Self {
        config.max_peers = config.max_peers.max(1);
        Self {
            config,
            entries: HashMap::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ReputationConfig {
        &self.config
    }

    /// Applies `conduct` by `peer` at `now_ms` and says whether to ban it.
    ///
    /// A peer that is already banned keeps its ban unchanged (its score is frozen) and gets
    /// [`Verdict::Ban`] with the existing end.
    pub fn record(&mut self, peer: K, conduct: Conduct, now_ms: u64) -> Verdict {
        let config = self.config;
        let current = match self.entries.get(&peer) {
            Some(entry) => entry.settled(&config, now_ms),
            None => {
                self.make_room(Some(now_ms));
                Entry {
                    score: 0,
                    decayed_at_ms: Some(now_ms),
                    banned_until_ms: None,
                }
            }
        };
        let (entry, verdict) = match current.banned_at(now_ms) {
            Some(until_ms) => (current, Verdict::Ban { until_ms }),
            None => {
                let mut entry = current;
                let was_zero = entry.score == 0;
                entry.score = clamp_score(entry.score.saturating_add(conduct.delta()));
                if was_zero {
                    // Decay of the new score starts now, not at some earlier idle time.
                    entry.decayed_at_ms = Some(now_ms);
                }
                if entry.score <= config.ban_threshold {
                    let until_ms = now_ms.saturating_add(config.ban_duration_ms);
                    entry.banned_until_ms = Some(until_ms);
                    (entry, Verdict::Ban { until_ms })
                } else {
                    (entry, Verdict::Fine)
                }
            }
        };
        self.entries.insert(peer, entry);
        verdict
    }

    /// `peer`'s score at `now_ms` (0 for a peer not remembered). During a ban, the score that
    /// caused it.
    pub fn score(&self, peer: &K, now_ms: u64) -> i32 {
        self.entries
            .get(peer)
            .map_or(0, |entry| entry.settled(&self.config, now_ms).score)
    }

    /// When `peer`'s ban ends, if it is banned at `now_ms`.
    pub fn is_banned(&self, peer: &K, now_ms: u64) -> Option<u64> {
        self.entries.get(peer)?.banned_at(now_ms)
    }

    /// Loads a persisted state (from [`snapshot`](Self::snapshot)), replacing what is known
    /// about `peer`; `score` is clamped. Respects the `max_peers` bound like
    /// [`record`](Self::record) (judging bans by their stored end alone).
    ///
    /// No time is given, so the decay of a restored score starts at the next call that settles
    /// the peer with a time ([`record`](Self::record), [`prune`](Self::prune)); time spent
    /// offline never decays a score. Until then [`score`](Self::score) reports the restored
    /// value. A `banned_until_ms` in the past is lifted as any ended ban is: the score becomes
    /// the probation score `ban_threshold / 2`, decaying from the end of the ban.
    pub fn restore(&mut self, peer: K, score: i32, banned_until_ms: Option<u64>) {
        if !self.entries.contains_key(&peer) {
            self.make_room(None);
        }
        let entry = Entry {
            score: clamp_score(score),
            decayed_at_ms: None,
            banned_until_ms,
        };
        self.entries.insert(peer, entry);
    }

    /// Every remembered peer with its score and ban end as last updated (decay since the last
    /// update not applied, an ended ban still listed with its end), in no particular order: the
    /// raw state to persist and [`restore`](Self::restore) later. Includes peers whose score is 0
    /// (so a stored score can be reset). [`snapshot_at`](Self::snapshot_at) gives the state at
    /// a given time instead.
    pub fn snapshot(&self) -> impl Iterator<Item = (&K, i32, Option<u64>)> + '_ {
        self.entries
            .iter()
            .map(|(peer, entry)| (peer, entry.score, entry.banned_until_ms))
    }

    /// Every remembered peer with its score and ban end at `now_ms` (decayed; ended bans
    /// lifted and reported as `None`), in no particular order.
    pub fn snapshot_at(&self, now_ms: u64) -> impl Iterator<Item = (&K, i32, Option<u64>)> + '_ {
        self.entries.iter().map(move |(peer, entry)| {
            let entry = entry.settled(&self.config, now_ms);
            (peer, entry.score, entry.banned_at(now_ms))
        })
    }

    /// Forgets `peer` (for example when the user pardons it). Returns whether it was known.
    pub fn forget(&mut self, peer: &K) -> bool {
        self.entries.remove(peer).is_some()
    }

    /// Brings every peer up to `now_ms` (applies decay, lifts ended bans, starts the decay of
    /// restored scores) and forgets the neutral ones (score 0, not banned), which behave exactly
    /// like peers never seen; returns how many were forgotten. Call it now and then, for example
    /// before persisting a [`snapshot`](Self::snapshot).
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let config = self.config;
        let before = self.entries.len();
        self.entries.retain(|_, entry| {
            *entry = entry.settled(&config, now_ms);
            entry.score != 0 || entry.banned_at(now_ms).is_some()
        });
        before - self.entries.len()
    }

    /// How many peers are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets one peer if the table is full (see the type docs for which). Without a time
    /// (restoring), entries are judged as stored.
    fn make_room(&mut self, now_ms: Option<u64>) {
        if self.entries.len() < self.config.max_peers {
            return;
        }
        let config = self.config;
        // Rank: unbanned before banned; then closest to 0; then least recently updated
        // (restored, never updated: first). For banned peers: the ban ending first.
        let victim = self
            .entries
            .iter()
            .map(|(peer, entry)| {
                let (entry, banned) = match now_ms {
                    Some(now) => {
                        let entry = entry.settled(&config, now);
                        (entry, entry.banned_at(now))
                    }
                    None => (*entry, entry.banned_until_ms),
                };
                let rank = match banned {
                    None => (
                        0,
                        u64::from(entry.score.unsigned_abs()),
                        entry.decayed_at_ms.unwrap_or(0),
                    ),
                    Some(until) => (1, 0, until),
                };
                (rank, peer)
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, peer)| peer.clone());
        if let Some(peer) = victim {
            self.entries.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;

    fn limiter(
        per_second: u32,
        burst: u32,
        max_keys: usize,
    ) -> (PeerRateLimiter<u32, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            PeerRateLimiter::with_clock(per_second, burst, max_keys, clock.clone()),
            clock,
        )
    }

    fn allowed_now(
        limiter: &PeerRateLimiter<u32, FakeRelativeClock>,
        key: u32,
        tries: usize,
    ) -> usize {
        (0..tries).filter(|_| limiter.check(&key).is_ok()).count()
    }

    #[test]
    fn bucket_allows_the_burst_then_refills_at_the_rate() {
        let (limiter, clock) = limiter(2, 5, 100);
        assert_eq!(allowed_now(&limiter, 1, 20), 5, "exactly the burst");
        // 2 per second: one token every 500 ms.
        assert_eq!(
            limiter.check(&1),
            Err(RateLimited {
                retry_after: Duration::from_millis(500)
            })
        );
        clock.advance(Duration::from_millis(499));
        assert_eq!(
            limiter.check(&1),
            Err(RateLimited {
                retry_after: Duration::from_millis(1)
            })
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(limiter.check(&1), Ok(()));
        assert!(limiter.check(&1).is_err());
        // 1.5 s later: three tokens.
        clock.advance(Duration::from_millis(1500));
        assert_eq!(allowed_now(&limiter, 1, 10), 3);
        // A long pause refills to the burst, never beyond.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(allowed_now(&limiter, 1, 20), 5);
    }

    #[test]
    fn several_tokens_at_once_all_or_none() {
        let (limiter, clock) = limiter(2, 10, 100);
        assert_eq!(
            limiter.check_n(&1, 0),
            Ok(()),
            "nothing asked, nothing taken"
        );
        assert_eq!(limiter.check_n(&1, 7), Ok(()));
        // 3 left: 4 is refused and takes nothing, so 3 still pass.
        assert!(limiter.check_n(&1, 4).is_err());
        assert_eq!(limiter.check_n(&1, 3), Ok(()));
        assert!(limiter.check(&1).is_err());
        // More than the burst can never pass; it says one full refill.
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            limiter.check_n(&1, 11),
            Err(RateLimited {
                retry_after: Duration::from_secs(5)
            })
        );
        assert_eq!(
            allowed_now(&limiter, 1, 20),
            10,
            "the refused request took nothing"
        );
    }

    #[test]
    fn keys_have_independent_buckets() {
        let (limiter, _clock) = limiter(1, 3, 100);
        assert_eq!(allowed_now(&limiter, 1, 10), 3);
        assert_eq!(allowed_now(&limiter, 2, 10), 3);
        assert!(limiter.check(&1).is_err());
        assert_eq!(limiter.len(), 2);
        assert!(!limiter.is_empty());
    }

    #[test]
    fn zero_settings_are_treated_as_one() {
        let (limiter, clock) = limiter(0, 0, 0);
        assert_eq!(allowed_now(&limiter, 1, 5), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            allowed_now(&limiter, 1, 5),
            1,
            "a known key never resets the table"
        );
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn key_table_stays_bounded_and_drops_idle_keys_first() {
        let (limiter, clock) = limiter(1, 3, 3);
        // Key 1 drains its bucket; keys 2 and 3 take one token each.
        assert_eq!(allowed_now(&limiter, 1, 3), 3);
        assert_eq!(allowed_now(&limiter, 2, 1), 1);
        assert_eq!(allowed_now(&limiter, 3, 1), 1);
        assert_eq!(limiter.len(), 3);
        // Known keys at a full table change nothing.
        assert_eq!(allowed_now(&limiter, 1, 1), 0);
        assert_eq!(limiter.len(), 3);
        // 2 s later keys 2 and 3 are idle (governor keeps a key one refill period past full);
        // key 1 is still refilling.
        clock.advance(Duration::from_secs(2));
        assert_eq!(allowed_now(&limiter, 4, 1), 1);
        assert_eq!(
            limiter.len(),
            2,
            "keys 2 and 3 dropped, key 1 kept, key 4 added"
        );
        // Key 1's state survived: two of its three tokens are back, not a fresh burst.
        assert_eq!(allowed_now(&limiter, 1, 5), 2);
    }

    #[test]
    fn a_table_full_of_active_keys_is_reset() {
        let (limiter, _clock) = limiter(1, 2, 3);
        for key in 1..=3 {
            assert_eq!(allowed_now(&limiter, key, 5), 2);
        }
        assert_eq!(limiter.len(), 3);
        // All three are active: the fourth key forces a reset.
        assert_eq!(allowed_now(&limiter, 4, 1), 1);
        assert_eq!(limiter.len(), 1);
        // Key 4 kept the token it used…
        assert_eq!(allowed_now(&limiter, 4, 5), 1);
        // …and key 1 got the forgiveness documented on the type: a full burst again.
        assert_eq!(allowed_now(&limiter, 1, 5), 2);
        // The bound holds over many keys.
        for key in 10..1000 {
            let _ = limiter.check(&key);
            assert!(limiter.len() <= 3);
        }
    }

    #[test]
    fn retain_recent_forgets_refilled_keys() {
        let (limiter, clock) = limiter(10, 10, 100);
        for key in 0..50 {
            assert!(limiter.check(&key).is_ok());
        }
        assert_eq!(limiter.len(), 50);
        limiter.retain_recent();
        assert_eq!(limiter.len(), 50, "still refilling");
        clock.advance(Duration::from_millis(200));
        limiter.retain_recent();
        assert!(limiter.is_empty());
        let text = format!("{limiter:?}");
        assert!(text.contains("max_keys: 100"), "{text}");
    }

    #[test]
    fn rate_limited_message_says_when_to_retry() {
        let message = RateLimited {
            retry_after: Duration::from_millis(250),
        }
        .to_string();
        assert!(message.contains("retry in 250 ms"), "{message}");
    }

    #[test]
    fn production_constructor_uses_the_monotonic_clock() {
        let limiter: PeerRateLimiter<&str> = PeerRateLimiter::new(1, 1, 10);
        assert!(limiter.check(&"a").is_ok());
        let refused = limiter.check(&"a").expect_err("bucket empty");
        assert!(refused.retry_after <= Duration::from_secs(1));
    }

    #[test]
    fn both_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PeerRateLimiter<String>>();
        assert_send_sync::<PeerRateLimiter<String, FakeRelativeClock>>();
        assert_send_sync::<Reputation<String>>();
    }

    fn reputation() -> Reputation<&'static str> {
        Reputation::new(ReputationConfig::default())
    }

    #[test]
    fn conduct_deltas_are_as_documented() {
        let deltas: Vec<i32> = Conduct::ALL.iter().map(|c| c.delta()).collect();
        assert_eq!(deltas, [1, -10, -20, -5, -25]);
    }

    #[test]
    fn misconduct_reaches_the_threshold_and_bans_for_the_duration() {
        let mut rep = reputation();
        assert_eq!(
            rep.record("m", Conduct::ProtocolViolation, T0),
            Verdict::Fine
        );
        assert_eq!(rep.score(&"m", T0), -25);
        assert_eq!(
            rep.record("m", Conduct::InvalidMessage, T0 + 1),
            Verdict::Fine
        );
        assert_eq!(
            rep.record("m", Conduct::InvalidMessage, T0 + 2),
            Verdict::Fine
        );
        assert_eq!(rep.score(&"m", T0 + 2), -45);
        assert_eq!(rep.is_banned(&"m", T0 + 2), None);
        // −45 − 5 = −50: at the threshold counts.
        let until = T0 + 3 + HOUR;
        assert_eq!(
            rep.record("m", Conduct::OverRateLimit, T0 + 3),
            Verdict::Ban { until_ms: until }
        );
        assert_eq!(rep.is_banned(&"m", T0 + 3), Some(until));
        assert_eq!(rep.is_banned(&"m", until - 1), Some(until));
        assert_eq!(rep.is_banned(&"m", until), None);
        // Conduct during the ban changes nothing and reports the same ban.
        assert_eq!(
            rep.record("m", Conduct::ValidReply, T0 + 10),
            Verdict::Ban { until_ms: until }
        );
        assert_eq!(
            rep.record("m", Conduct::ProtocolViolation, T0 + 20),
            Verdict::Ban { until_ms: until }
        );
        assert_eq!(rep.score(&"m", until - 1), -50, "frozen while banned");
        // Others are unaffected.
        assert_eq!(rep.score(&"other", T0), 0);
        assert_eq!(rep.is_banned(&"other", T0), None);
    }

    #[test]
    fn one_big_step_past_the_threshold_bans_at_once() {
        let mut rep = reputation();
        rep.restore("m", -40, None);
        assert_eq!(
            rep.record("m", Conduct::ProtocolViolation, T0),
            Verdict::Ban {
                until_ms: T0 + HOUR
            }
        );
        assert_eq!(rep.score(&"m", T0), -65);
    }

    #[test]
    fn scores_decay_toward_zero_one_point_per_interval() {
        let mut rep = reputation();
        rep.record("m", Conduct::Oversized, T0); // −20
        assert_eq!(rep.score(&"m", T0 + MINUTE - 1), -20);
        assert_eq!(rep.score(&"m", T0 + MINUTE), -19);
        assert_eq!(rep.score(&"m", T0 + 10 * MINUTE + 59_999), -10);
        assert_eq!(rep.score(&"m", T0 + 20 * MINUTE), 0);
        assert_eq!(rep.score(&"m", T0 + 100 * MINUTE), 0, "stops at 0");

        // Positive scores decay down.
        for i in 0..5 {
            rep.record("good", Conduct::ValidReply, T0 + i);
        }
        assert_eq!(rep.score(&"good", T0 + 4), 5);
        assert_eq!(rep.score(&"good", T0 + 2 * MINUTE), 3);

        // Updates carry the partial interval: decay stays exact however often the peer acts.
        let mut rep = reputation();
        rep.record("p", Conduct::InvalidMessage, T0); // −10
        rep.record("p", Conduct::ValidReply, T0 + 30_000); // −9
        rep.record("p", Conduct::ValidReply, T0 + 59_000); // −8
        assert_eq!(rep.score(&"p", T0 + MINUTE), -7, "one interval since T0");
        // The clock going backwards is harmless.
        assert_eq!(rep.score(&"p", T0 - 5 * MINUTE), -8);
    }

    #[test]
    fn decay_can_be_disabled() {
        let mut rep = Reputation::new(ReputationConfig {
            decay_interval_ms: 0,
            ..ReputationConfig::default()
        });
        rep.record("m", Conduct::InvalidMessage, T0);
        assert_eq!(rep.score(&"m", T0 + 1000 * HOUR), -10);
    }

    #[test]
    fn scores_are_clamped() {
        let mut rep = reputation();
        for i in 0..150 {
            rep.record("good", Conduct::ValidReply, T0 + i);
        }
        assert_eq!(rep.score(&"good", T0 + 150), MAX_SCORE);
        // A very good peer still gets banned by enough violations: 100 − 6 × 25 < −50.
        let verdicts: Vec<Verdict> = (0..6)
            .map(|i| rep.record("good", Conduct::ProtocolViolation, T0 + 200 + i))
            .collect();
        assert_eq!(verdicts[..5], [Verdict::Fine; 5]);
        assert_eq!(
            verdicts[5],
            Verdict::Ban {
                until_ms: T0 + 205 + HOUR
            }
        );

        // With a threshold below MIN_SCORE nobody is banned, and scores bottom out.
        let mut lenient = Reputation::new(ReputationConfig {
            ban_threshold: MIN_SCORE - 1,
            ..ReputationConfig::default()
        });
        for i in 0..10 {
            assert_eq!(
                lenient.record("m", Conduct::ProtocolViolation, T0 + i),
                Verdict::Fine
            );
        }
        assert_eq!(lenient.score(&"m", T0 + 10), MIN_SCORE);
        rep.restore("x", i32::MIN, None);
        assert_eq!(rep.score(&"x", T0), MIN_SCORE);
        rep.restore("y", i32::MAX, None);
        assert_eq!(rep.score(&"y", T0), MAX_SCORE);
    }

    #[test]
    fn a_returning_peer_is_on_probation() {
        let mut rep = reputation();
        rep.restore("m", -45, None);
        let until = T0 + HOUR;
        assert_eq!(
            rep.record("m", Conduct::InvalidMessage, T0),
            Verdict::Ban { until_ms: until }
        );
        // The ban ends: score −25, decaying from the end of the ban.
        assert_eq!(rep.score(&"m", until), -25);
        assert_eq!(rep.score(&"m", until + 5 * MINUTE), -20);
        // Misbehaving again right away bans sooner: −25 − 25 = −50.
        assert_eq!(
            rep.record("m", Conduct::ProtocolViolation, until + 1),
            Verdict::Ban {
                until_ms: until + 1 + HOUR
            }
        );
        // Left alone, probation decays away.
        let mut rep = reputation();
        rep.restore("n", -60, Some(until));
        assert_eq!(rep.score(&"n", until + 25 * MINUTE), 0);
        assert_eq!(
            rep.record("n", Conduct::ValidReply, until + 30 * MINUTE),
            Verdict::Fine
        );
        assert_eq!(rep.score(&"n", until + 30 * MINUTE), 1);
    }

    #[test]
    fn eviction_forgets_the_most_neutral_peer_and_keeps_bans() {
        let mut rep = Reputation::new(ReputationConfig {
            max_peers: 3,
            ..ReputationConfig::default()
        });
        rep.restore("bad", -30, None);
        rep.restore("good", 20, None);
        rep.restore("meh", -3, None);
        assert_eq!(rep.len(), 3);
        // A fourth peer: "meh" (closest to 0) goes.
        rep.record("new", Conduct::InvalidMessage, T0 + 1);
        assert_eq!(rep.len(), 3);
        assert_eq!(rep.score(&"meh", T0 + 1), 0);
        assert_eq!(rep.score(&"bad", T0 + 1), -30);
        assert_eq!(rep.score(&"good", T0 + 1), 20);
        assert_eq!(rep.score(&"new", T0 + 1), -10);

        // Ties on |score| go to the least recently updated.
        let mut rep = Reputation::new(ReputationConfig {
            max_peers: 2,
            ..ReputationConfig::default()
        });
        rep.record("older", Conduct::ValidReply, T0);
        rep.record("newer", Conduct::ValidReply, T0 + 1);
        rep.record("third", Conduct::ValidReply, T0 + 2);
        let mut kept: Vec<&str> = rep.snapshot().map(|(p, _, _)| *p).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["newer", "third"]);

        // Banned peers go last: an unbanned peer goes first however bad its score; with only
        // banned peers left, the ban ending first goes.
        let mut rep = Reputation::new(ReputationConfig {
            max_peers: 2,
            ..ReputationConfig::default()
        });
        rep.restore("banned-long", -60, Some(T0 + 2 * HOUR));
        rep.restore("unbanned", -99, None);
        rep.record("newcomer", Conduct::ValidReply, T0);
        assert_eq!(rep.is_banned(&"banned-long", T0), Some(T0 + 2 * HOUR));
        assert_eq!(rep.score(&"unbanned", T0), 0, "evicted: not banned");
        rep.restore("banned-short", -60, Some(T0 + HOUR));
        // Now both are banned; "newcomer" (unbanned) went instead.
        assert_eq!(rep.score(&"newcomer", T0), 0);
        rep.record("another", Conduct::ValidReply, T0);
        assert_eq!(
            rep.is_banned(&"banned-short", T0),
            None,
            "ends first, so it goes"
        );
        assert_eq!(rep.is_banned(&"banned-long", T0), Some(T0 + 2 * HOUR));
        assert_eq!(rep.len(), 2);
    }

    #[test]
    fn the_table_never_exceeds_max_peers() {
        let mut rep: Reputation<u32> = Reputation::new(ReputationConfig {
            max_peers: 50,
            ..ReputationConfig::default()
        });
        for peer in 0..1000u32 {
            rep.record(
                peer,
                Conduct::ALL[(peer % 5) as usize],
                T0 + u64::from(peer),
            );
            assert!(rep.len() <= 50);
        }
        assert_eq!(rep.len(), 50);
        let zero_max = Reputation::<u32>::new(ReputationConfig {
            max_peers: 0,
            ..ReputationConfig::default()
        });
        assert_eq!(zero_max.config().max_peers, 1);
    }

    #[test]
    fn snapshot_and_restore_round_trip() {
        let mut rep = reputation();
        rep.record("banned", Conduct::ProtocolViolation, T0);
        rep.record("banned", Conduct::ProtocolViolation, T0);
        rep.record("bad", Conduct::Oversized, T0);
        rep.record("good", Conduct::ValidReply, T0);
        let now = T0 + 2 * MINUTE;

        // Raw: as last updated.
        let mut raw: Vec<(&str, i32, Option<u64>)> =
            rep.snapshot().map(|(p, s, b)| (*p, s, b)).collect();
        raw.sort_unstable();
        assert_eq!(
            raw,
            [
                ("bad", -20, None),
                ("banned", -50, Some(T0 + HOUR)),
                ("good", 1, None),
            ]
        );

        // At a time: decayed.
        let mut saved: Vec<(&str, i32, Option<u64>)> =
            rep.snapshot_at(now).map(|(p, s, b)| (*p, s, b)).collect();
        saved.sort_unstable();
        assert_eq!(
            saved,
            [
                ("bad", -18, None),
                ("banned", -50, Some(T0 + HOUR)),
                ("good", 0, None),
            ]
        );

        let mut restored = reputation();
        for (peer, score, banned_until) in &saved {
            restored.restore(*peer, *score, *banned_until);
        }
        assert_eq!(restored.len(), 3);
        for peer in ["bad", "banned", "good", "unknown"] {
            assert_eq!(restored.score(&peer, now), rep.score(&peer, now), "{peer}");
            assert_eq!(
                restored.is_banned(&peer, now),
                rep.is_banned(&peer, now),
                "{peer}"
            );
        }
        // The ban still ends when it did, then probation.
        assert_eq!(restored.is_banned(&"banned", T0 + HOUR), None);
        assert_eq!(restored.score(&"banned", T0 + HOUR), -25);

        // Restoring a ban that already ended lifts it; probation decays from its end.
        restored.restore("banned", -50, Some(T0 + HOUR));
        assert_eq!(restored.is_banned(&"banned", T0 + 2 * HOUR), None);
        assert_eq!(restored.score(&"banned", T0 + HOUR + 5 * MINUTE), -20);
    }

    #[test]
    fn restored_scores_start_decaying_when_first_settled() {
        let mut rep = reputation();
        rep.restore("r", -10, None);
        // No time was given: offline time never decays, and neither does time before the first
        // settle.
        assert_eq!(rep.score(&"r", T0 + 10 * MINUTE), -10);
        assert_eq!(rep.prune(T0), 0);
        assert_eq!(rep.score(&"r", T0 + 3 * MINUTE), -7);
        // A record settles too.
        rep.restore("s", -10, None);
        rep.record("s", Conduct::ValidReply, T0);
        assert_eq!(rep.score(&"s", T0 + 3 * MINUTE), -6);
    }

    #[test]
    fn prune_and_forget() {
        let mut rep = reputation();
        rep.record("a", Conduct::ValidReply, T0);
        rep.record("b", Conduct::InvalidMessage, T0);
        rep.restore("c", -80, Some(T0 + HOUR));
        assert_eq!(rep.prune(T0 + MINUTE), 1, "a decayed to 0");
        assert_eq!(rep.len(), 2);
        assert!(rep.forget(&"c"));
        assert!(!rep.forget(&"c"));
        assert_eq!(rep.is_banned(&"c", T0), None);
        assert!(!rep.is_empty());
    }
}
