//! The node's side of network hardening: per-peer rate limits on every request protocol and on
//! gossip, and a reputation per peer (rhizo-core's sans-IO [`Reputation`]) that bans a peer
//! for a while when it falls below the threshold. Reputations and bans are persisted in the
//! peer book and restored at start.
//!
//! ```text
//!  inbound request / gossip ─▶ PeerPolicy::allow(peer, protocol) ── over the rate ─▶ RATE_LIMITED,
//!                                   │                                          score −5
//!                                   └─ within ─▶ handler ─▶ PeerPolicy::record(peer, conduct)
//!  score ≤ −50 ─▶ Client::try_ban_peer(peer, 1 h) (disconnect, refuse) ─▶ peer book
//! ```
//!
//! [`PeerPolicy::allow`] and [`PeerPolicy::record`] are called from the node's event loop, so they never
//! wait on the network's event loop: a ban is handed over with `try_ban_peer`, and when the
//! command channel is full it waits in a bounded queue that [`PeerPolicy::run`] applies; reputations
//! are written to the peer book by [`PeerPolicy::run`] as well.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use libp2p::PeerId;
use rhizo_core::abuse::{Conduct, PeerRateLimiter, Reputation, ReputationConfig, Verdict};
use rhizo_net::Client;
use rhizo_store::{
    Db, DbError,
    bans::{BanKind, BanRow},
};
use tracing::{debug, info, warn};

/// How often reputations are written to the peer book.
const PERSIST_INTERVAL: Duration = Duration::from_secs(60);
/// Peers whose rate is tracked per protocol.
const TRACKED_PEERS: usize = 4096;
/// Bans waiting for room in the network's command channel; more are dropped (the peer's score
/// stays at the threshold, so its next offence bans it again).
const MAX_PENDING_BANS: usize = 1024;
/// How often [`PeerPolicy::run`] retries the bans that found the command channel full.
const BAN_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// What a peer is asking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `/rhizo/msg/1`.
    Msg,
    /// `/rhizo/mailbox/1`.
    Mailbox,
    /// `/rhizo/kad/1.0.0`.
    Kad,
    /// `/rhizo/pex/1`.
    Pex,
    /// Gossipsub messages on channel topics.
    Gossip,
    /// `/rhizo/file/1` (each request at most 1 MiB of content).
    File,
}

impl Protocol {
    /// Sustained requests per second and burst, per peer.
    fn rate(self) -> (u32, u32) {
        match self {
            // A contact sending a burst of messages, each with a receipt back.
            Self::Msg => (100, 500),
            Self::Mailbox => (50, 400),
            // Lookups fan out; a busy DHT neighbour asks often.
            Self::Kad => (100, 500),
            Self::Pex => (1, 5),
            Self::Gossip => (50, 200),
            // A member fetching a large file: 4 chunks a request, a window of 4 in flight.
            Self::File => (400, 800),
        }
    }
}

/// Rate limits and reputation (cheap to clone).
#[derive(Clone)]
pub struct PeerPolicy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPolicy").finish_non_exhaustive()
    }
}

struct Inner {
    client: Client,
    db: Db,
    msg: PeerRateLimiter<PeerId>,
    mailbox: PeerRateLimiter<PeerId>,
    kad: PeerRateLimiter<PeerId>,
    pex: PeerRateLimiter<PeerId>,
    gossip: PeerRateLimiter<PeerId>,
    file: PeerRateLimiter<PeerId>,
    reputation: Mutex<Reputation<PeerId>>,
    /// Trusted peers are never banned by reputation.
    trusted: HashSet<PeerId>,
    /// Bans (peer, end in unix ms) the network could not take yet; [`PeerPolicy::run`] applies them.
    pending_bans: Mutex<std::collections::VecDeque<(PeerId, u64)>>,
    /// Wakes [`PeerPolicy::run`] after a ban: apply what is pending, persist the reputations.
    banned: tokio::sync::Notify,
    started: Instant,
    epoch_ms: u64,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn limiter(protocol: Protocol) -> PeerRateLimiter<PeerId> {
    let (per_second, burst) = protocol.rate();
    PeerRateLimiter::new(per_second, burst, TRACKED_PEERS)
}

impl PeerPolicy {
    /// The guard; restores persisted reputations and re-applies bans that have not ended.
    pub async fn new(client: Client, db: Db, trusted: HashSet<PeerId>) -> Self {
        let guard = Self {
            inner: Arc::new(Inner {
                client,
                db,
                msg: limiter(Protocol::Msg),
                mailbox: limiter(Protocol::Mailbox),
                kad: limiter(Protocol::Kad),
                pex: limiter(Protocol::Pex),
                gossip: limiter(Protocol::Gossip),
                file: limiter(Protocol::File),
                reputation: Mutex::new(Reputation::new(ReputationConfig::default())),
                trusted,
                pending_bans: Mutex::new(std::collections::VecDeque::new()),
                banned: tokio::sync::Notify::new(),
                started: Instant::now(),
                epoch_ms: unix_ms(),
            }),
        };
        guard.restore().await;
        guard
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch_ms + u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(0)
    }

    async fn restore(&self) {
        let rows = self
            .inner
            .db
            .read(|r| -> Result<_, DbError> { Ok(r.peer_reputations()?) })
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot read persisted reputations");
                return;
            }
        };
        let now = self.now_ms();
        let mut banned = Vec::new();
        if let Ok(mut reputation) = self.inner.reputation.lock() {
            for (peer, score, until) in rows {
                let Ok(peer) = peer.parse::<PeerId>() else {
                    continue;
                };
                let until = until.and_then(|u| u64::try_from(u).ok());
                reputation.restore(peer, score, until);
                if let Some(until) = until.filter(|u| *u > now) {
                    banned.push((peer, until));
                }
            }
        }
        for (peer, until) in banned {
            self.apply_ban(peer, until);
        }
    }

    /// Whether `peer` may make one more `protocol` request now; an excess also lowers its
    /// reputation. Never waits on the network (see the [module docs](self)).
    pub async fn allow(&self, peer: PeerId, protocol: Protocol) -> bool {
        self.allow_n(peer, protocol, 1).await
    }

    /// Like [`allow`](Self::allow) for a request that carries `n` units of work (a batch of
    /// `n` envelopes costs `n` tokens, as `n` requests would).
    pub async fn allow_n(&self, peer: PeerId, protocol: Protocol, n: u32) -> bool {
        if self.inner.trusted.contains(&peer) {
            return true;
        }
        let limiter = match protocol {
            Protocol::Msg => &self.inner.msg,
            Protocol::Mailbox => &self.inner.mailbox,
            Protocol::Kad => &self.inner.kad,
            Protocol::Pex => &self.inner.pex,
            Protocol::Gossip => &self.inner.gossip,
            Protocol::File => &self.inner.file,
        };
        if limiter.check_n(&peer, n).is_ok() {
            return true;
        }
        debug!(%peer, ?protocol, "over the rate limit");
        self.record(peer, Conduct::OverRateLimit).await;
        false
    }

    /// Records how `peer` behaved; bans it when its score falls to the threshold. Never waits
    /// on the network: the ban is handed over without waiting, and persisted by
    /// [`run`](Self::run).
    pub async fn record(&self, peer: PeerId, conduct: Conduct) {
        if self.inner.trusted.contains(&peer) {
            return;
        }
        let now = self.now_ms();
        let verdict = match self.inner.reputation.lock() {
            Ok(mut reputation) => reputation.record(peer, conduct, now),
            Err(_) => return,
        };
        if let Verdict::Ban { until_ms } = verdict {
            info!(%peer, ?conduct, minutes = (until_ms.saturating_sub(now)) / 60_000,
                "peer banned for misbehaving");
            self.apply_ban(peer, until_ms);
            self.inner.banned.notify_one();
        }
    }

    /// Hands a ban to the network without waiting; when its command channel is full, the ban
    /// waits in the pending queue for [`run`](Self::run).
    fn apply_ban(&self, peer: PeerId, until_ms: u64) {
        let remaining = Duration::from_millis(until_ms.saturating_sub(self.now_ms()));
        match self
            .inner
            .client
            .try_ban_peer(peer, Some(Instant::now() + remaining))
        {
            Ok(()) => {}
            Err(rhizo_net::NetError::Busy) => self.queue_ban(peer, until_ms),
            Err(e) => warn!(%peer, error = %e, "cannot ban a peer"),
        }
    }

    fn queue_ban(&self, peer: PeerId, until_ms: u64) {
        let Ok(mut pending) = self.inner.pending_bans.lock() else {
            return;
        };
        if pending.len() >= MAX_PENDING_BANS {
            warn!(%peer, "ban dropped: too many bans waiting for the network");
            return;
        }
        pending.push_back((peer, until_ms));
        drop(pending);
        self.inner.banned.notify_one();
    }

    /// Applies the bans that found the network's command channel full, waiting for it.
    async fn apply_pending_bans(&self) {
        loop {
            let next = self
                .inner
                .pending_bans
                .lock()
                .ok()
                .and_then(|mut p| p.pop_front());
            let Some((peer, until_ms)) = next else {
                return;
            };
            let remaining = Duration::from_millis(until_ms.saturating_sub(self.now_ms()));
            if let Err(e) = self
                .inner
                .client
                .ban_peer(peer, Some(Instant::now() + remaining))
                .await
            {
                warn!(%peer, error = %e, "cannot ban a peer");
            }
        }
    }

    fn bans_pending(&self) -> bool {
        self.inner.pending_bans.lock().is_ok_and(|p| !p.is_empty())
    }

    /// A peer's current score and ban end (unix ms), for the API.
    pub fn reputation_of(&self, peer: &PeerId) -> (i32, Option<u64>) {
        let now = self.now_ms();
        self.inner
            .reputation
            .lock()
            .map(|r| (r.score(peer, now), r.is_banned(peer, now)))
            .unwrap_or((0, None))
    }

    /// Writes every non-neutral reputation to the peer book.
    pub async fn persist(&self) {
        let now = self.now_ms();
        let snapshot: Vec<(String, i32, Option<i64>)> = match self.inner.reputation.lock() {
            Ok(r) => r
                .snapshot_at(now)
                .map(|(peer, score, until)| {
                    (
                        peer.to_string(),
                        score,
                        until.and_then(|u| i64::try_from(u).ok()),
                    )
                })
                .collect(),
            Err(_) => return,
        };
        let result = self
            .inner
            .db
            .write(move |tx| -> Result<(), DbError> {
                for (peer, score, until) in snapshot {
                    tx.set_peer_reputation(&peer, score, until)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            warn!(error = %e, "cannot persist reputations");
        }
    }

    /// Persists reputations every minute and after each ban, and applies the bans the network
    /// could not take at once, until `shutdown` fires (and persists once more then).
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut persist_at = tokio::time::Instant::now() + PERSIST_INTERVAL;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(persist_at) => {
                    self.persist().await;
                    persist_at = tokio::time::Instant::now() + PERSIST_INTERVAL;
                }
                () = self.inner.banned.notified() => {
                    self.apply_pending_bans().await;
                    self.persist().await;
                }
                () = tokio::time::sleep(BAN_RETRY_INTERVAL), if self.bans_pending() => {
                    self.apply_pending_bans().await;
                }
                _ = shutdown.changed() => {
                    self.apply_pending_bans().await;
                    self.persist().await;
                    return;
                }
            }
        }
    }

    /// Bans a peer id or an IP range (CIDR or bare IP) given as text, for `duration` (None:
    /// until unbanned); persisted, applied at once (existing connections close).
    pub async fn ban(
        &self,
        target: &str,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<BanView, PeerPolicyError> {
        let target = Target::parse(target)?;
        let now = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        let until = duration.map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
        let row = BanRow {
            kind: target.kind(),
            value: target.to_string(),
            reason: if reason.trim().is_empty() {
                "banned by the user".into()
            } else {
                reason.trim().to_string()
            },
            until,
            created_at: now,
        };
        let stored = row.clone();
        self.inner
            .db
            .write(move |tx| -> Result<_, DbError> { Ok(tx.add_ban(&stored)?) })
            .await?;
        self.apply(&target, duration).await?;
        Ok(ban_view(&row))
    }

    async fn apply(
        &self,
        target: &Target,
        duration: Option<Duration>,
    ) -> Result<(), PeerPolicyError> {
        let until = duration.map(|d| Instant::now() + d);
        let result = match target {
            Target::Peer(peer) => self.inner.client.ban_peer(*peer, until).await,
            Target::Cidr(net) => self.inner.client.ban_cidr(*net).await,
        };
        result.map_err(|e| PeerPolicyError::Internal(e.to_string()))
    }

    /// Lifts a ban (also one a bad reputation caused: the peer starts again from 0).
    pub async fn unban(&self, target: &str) -> Result<bool, PeerPolicyError> {
        let target = Target::parse(target)?;
        let (kind, value) = (target.kind(), target.to_string());
        let removed = self
            .inner
            .db
            .write(move |tx| -> Result<_, DbError> { Ok(tx.remove_ban(kind, &value)?) })
            .await?;
        let result = match target {
            Target::Peer(peer) => {
                let was_banned = self.reputation_of(&peer).1.is_some();
                if let Ok(mut r) = self.inner.reputation.lock() {
                    r.restore(peer, 0, None);
                }
                self.inner
                    .client
                    .unban_peer(peer)
                    .await
                    .map(|()| removed || was_banned)
            }
            Target::Cidr(net) => self.inner.client.unban_cidr(net).await.map(|()| removed),
        };
        result.map_err(|e| PeerPolicyError::Internal(e.to_string()))
    }

    /// The bans in force: the user's (persisted, with reasons) and those bad reputations
    /// caused.
    pub async fn bans(&self) -> Result<Vec<BanView>, PeerPolicyError> {
        let now = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        let rows = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.bans(now)?) })
            .await?;
        let mut views: Vec<BanView> = rows.iter().map(ban_view).collect();
        if let Ok(r) = self.inner.reputation.lock() {
            for (peer, score, until) in r.snapshot() {
                let Some(until) = until.filter(|u| *u > self.now_ms()) else {
                    continue;
                };
                let target = peer.to_string();
                if views.iter().any(|v| v.target == target) {
                    continue;
                }
                views.push(BanView {
                    target,
                    kind: "peer".into(),
                    reason: format!("reputation {score}: misbehaved"),
                    until: i64::try_from(until).ok(),
                });
            }
        }
        Ok(views)
    }

    /// Re-applies the persisted user bans (at start).
    pub async fn apply_stored_bans(&self) {
        let now = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        let rows = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.bans(now)?) })
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the stored bans");
                Vec::new()
            });
        for row in rows {
            let Ok(target) = Target::parse(&row.value) else {
                continue;
            };
            let remaining = row
                .until
                .map(|u| Duration::from_millis(u64::try_from(u - now).unwrap_or(0)));
            if let Err(e) = self.apply(&target, remaining).await {
                warn!(target = %row.value, error = %e, "cannot re-apply a ban");
            }
        }
    }
}

/// What a ban names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Peer(PeerId),
    Cidr(ipnet::IpNet),
}

impl Target {
    fn parse(text: &str) -> Result<Self, PeerPolicyError> {
        let text = text.trim();
        if let Ok(peer) = text.parse::<PeerId>() {
            return Ok(Self::Peer(peer));
        }
        crate::config::parse_cidr(text)
            .map(Self::Cidr)
            .map_err(|_| PeerPolicyError::BadTarget(text.to_string()))
    }

    fn kind(&self) -> BanKind {
        match self {
            Self::Peer(_) => BanKind::Peer,
            Self::Cidr(_) => BanKind::Cidr,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Peer(p) => write!(f, "{p}"),
            Self::Cidr(n) => write!(f, "{n}"),
        }
    }
}

/// A ban as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BanView {
    /// The peer id or IP range.
    pub target: String,
    /// `peer` or `cidr`.
    pub kind: String,
    /// Why.
    pub reason: String,
    /// When it ends (unix ms); none: until unbanned.
    pub until: Option<i64>,
}

fn ban_view(row: &BanRow) -> BanView {
    BanView {
        target: row.value.clone(),
        kind: match row.kind {
            BanKind::Peer => "peer",
            BanKind::Cidr => "cidr",
        }
        .into(),
        reason: row.reason.clone(),
        until: row.until,
    }
}

/// Why a ban request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerPolicyError {
    /// Neither a peer id nor an IP range.
    #[error(
        "'{0}' is neither a peer id (12D3KooW…) nor an IP range (192.0.2.0/24, 2001:db8::/32, \
         192.0.2.7)"
    )]
    BadTarget(String),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Internal.
    #[error("internal error: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard whose network's event loop never runs: every call that waited for it would hang
    /// until the client timeout.
    async fn guard_without_event_loop() -> (PeerPolicy, rhizo_net::EventLoop) {
        let (client, _events, event_loop) = rhizo_net::start(rhizo_net::NetConfig::new(
            rhizo_net::Keypair::generate_ed25519(),
        ))
        .unwrap();
        let db = Db::start(
            rhizo_store::Store::open_in_memory().unwrap(),
            rhizo_store::DbConfig::default(),
        )
        .unwrap();
        let guard = PeerPolicy::new(client, db, HashSet::new()).await;
        (guard, event_loop)
    }

    #[tokio::test]
    async fn a_ban_never_waits_for_the_network_and_waits_in_the_queue_when_it_is_full() {
        let (guard, _event_loop) = guard_without_event_loop().await;
        // A call that waited for the (stopped) event loop would run into the deadline below
        // before its 10 s client timeout, as the old code's ban did.
        let deadline = Duration::from_secs(5);
        let peers: Vec<PeerId> = (0..70).map(|_| PeerId::random()).collect();
        for peer in &peers {
            let ban = async {
                for _ in 0..5 {
                    guard.record(*peer, Conduct::InvalidMessage).await;
                }
            };
            tokio::time::timeout(deadline, ban)
                .await
                .expect("recording a ban does not wait on the network");
            assert!(guard.reputation_of(peer).1.is_some(), "banned");
        }
        // The command channel holds 64: the rest wait for `run` to apply them.
        let pending = guard.inner.pending_bans.lock().unwrap().len();
        assert_eq!(pending, peers.len() - rhizo_net::COMMAND_CHANNEL_CAPACITY);
        assert!(guard.bans_pending());
    }

    #[tokio::test]
    async fn a_rate_check_never_waits_for_the_network() {
        let (guard, _event_loop) = guard_without_event_loop().await;
        let peer = PeerId::random();
        let (_, burst) = Protocol::Pex.rate();
        let flood = async {
            let mut refused = 0;
            for _ in 0..burst + 20 {
                if !guard.allow(peer, Protocol::Pex).await {
                    refused += 1;
                }
            }
            refused
        };
        let refused = tokio::time::timeout(Duration::from_secs(5), flood)
            .await
            .expect("over-rate requests (and the ban they cause) do not wait on the network");
        assert_eq!(refused, 20);
        assert!(
            guard.reputation_of(&peer).1.is_some(),
            "banned for the excess"
        );
    }
}
