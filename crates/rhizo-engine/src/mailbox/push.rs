//! Mailbox push, the replica's side: which peers to tell at once that this replica now holds
//! something for a mailbox they fetch, with no I/O (the caller passes `now` and sends).
//!
//! ```text
//!  a fetch answered here (signed by a listed device) ─▶ subscribe(mailbox, peer, now)
//!  a store committed here ─▶ on_stored(mailbox, now): each subscriber due at once, or at the
//!       end of its PUSH_MIN_INTERVAL_MS window (several stores: one push)
//!  poll_due(now) ─▶ (mailbox, peer) to send a Notify to ─▶ on_sent(…, delivered)
//!       not delivered (peer offline) ─▶ kept until on_connected(peer): due again at once
//! ```
//!
//! Everything is bounded: [`MAX_PUSH_MAILBOXES`] mailboxes, [`MAX_PUSH_PEERS_PER_MAILBOX`]
//! peers each, subscriptions forgotten after [`PUSH_SUBSCRIPTION_TTL_MS`] without a fetch.

use std::collections::HashMap;

/// Mailboxes a replica keeps push subscribers for (the least recently fetched one goes).
pub const MAX_PUSH_MAILBOXES: usize = 2048;
/// Peers per mailbox (a user has at most 16 devices; the least recently fetching one goes).
pub const MAX_PUSH_PEERS_PER_MAILBOX: usize = 16;
/// A subscription lasts this long after the peer's last fetch here (a node fetches at least
/// every poll interval while it runs; one gone for a day is told again once it fetches).
pub const PUSH_SUBSCRIPTION_TTL_MS: i64 = 24 * 3600 * 1000;
/// At most one push per mailbox and peer in this window: a burst of stores is one push.
pub const PUSH_MIN_INTERVAL_MS: i64 = 500;
/// Pushes handed out per [`PushBook::poll_due`] call (the rest stay due).
pub const MAX_PUSHES_PER_POLL: usize = 64;

/// Where one subscriber's push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushState {
    /// Nothing new since the last push.
    Idle,
    /// A push is due at this time (unix ms).
    Due(i64),
    /// A push is on its way; `again`: something new was stored meanwhile.
    InFlight { again: bool },
    /// The last push did not reach the peer: sent again when it connects.
    Undelivered,
}

#[derive(Debug, Clone)]
struct Subscriber<P> {
    peer: P,
    /// Its last fetch here (unix ms).
    fetched_at: i64,
    /// When the last push to it went out (unix ms).
    sent_at: Option<i64>,
    state: PushState,
}

/// The peers a replica pushes to, per mailbox key (the recipient's UID bytes), and the state
/// of each push. `P` is the peer's identity (a libp2p `PeerId` in the node).
#[derive(Debug, Clone)]
pub struct PushBook<P> {
    mailboxes: HashMap<[u8; 32], Vec<Subscriber<P>>>,
}

impl<P> Default for PushBook<P> {
    fn default() -> Self {
        Self {
            mailboxes: HashMap::new(),
        }
    }
}

impl<P: Clone + Eq> PushBook<P> {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mailboxes with subscribers.
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// Whether no mailbox has a subscriber.
    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// `peer` fetched `mailbox` here at `now` (with a valid signature): it is told of what is
    /// stored for that mailbox from now on.
    pub fn subscribe(&mut self, mailbox: [u8; 32], peer: P, now: i64) {
        if !self.mailboxes.contains_key(&mailbox) && self.mailboxes.len() >= MAX_PUSH_MAILBOXES {
            self.evict_stalest_mailbox(now);
        }
        let subs = self.mailboxes.entry(mailbox).or_default();
        if let Some(sub) = subs.iter_mut().find(|s| s.peer == peer) {
            sub.fetched_at = sub.fetched_at.max(now);
            return;
        }
        if subs.len() >= MAX_PUSH_PEERS_PER_MAILBOX
            && let Some(oldest) = (0..subs.len()).min_by_key(|&i| subs[i].fetched_at)
        {
            subs.swap_remove(oldest);
        }
        subs.push(Subscriber {
            peer,
            fetched_at: now,
            sent_at: None,
            state: PushState::Idle,
        });
    }

    /// Drops expired subscriptions; if still full, the mailbox fetched least recently.
    fn evict_stalest_mailbox(&mut self, now: i64) {
        self.mailboxes.retain(|_, subs| {
            subs.retain(|s| now.saturating_sub(s.fetched_at) < PUSH_SUBSCRIPTION_TTL_MS);
            !subs.is_empty()
        });
        if self.mailboxes.len() < MAX_PUSH_MAILBOXES {
            return;
        }
        let stalest = self
            .mailboxes
            .iter()
            .min_by_key(|(_, subs)| subs.iter().map(|s| s.fetched_at).max())
            .map(|(k, _)| *k);
        if let Some(key) = stalest {
            self.mailboxes.remove(&key);
        }
    }

    /// An entry for `mailbox` was committed here at `now`: every live subscriber gets a push,
    /// at once or at the end of its rate window; one already on its way is sent again after.
    pub fn on_stored(&mut self, mailbox: &[u8; 32], now: i64) {
        let Some(subs) = self.mailboxes.get_mut(mailbox) else {
            return;
        };
        subs.retain(|s| now.saturating_sub(s.fetched_at) < PUSH_SUBSCRIPTION_TTL_MS);
        for sub in subs.iter_mut() {
            sub.state = match sub.state {
                PushState::Idle => PushState::Due(
                    sub.sent_at
                        .map_or(now, |t| now.max(t.saturating_add(PUSH_MIN_INTERVAL_MS))),
                ),
                PushState::InFlight { .. } => PushState::InFlight { again: true },
                due @ (PushState::Due(_) | PushState::Undelivered) => due,
            };
        }
        if subs.is_empty() {
            self.mailboxes.remove(mailbox);
        }
    }

    /// The pushes due at `now` (at most `max`, and at most [`MAX_PUSHES_PER_POLL`]), each now
    /// on its way: report each with [`on_sent`](Self::on_sent).
    pub fn poll_due(&mut self, now: i64, max: usize) -> Vec<([u8; 32], P)> {
        let max = max.min(MAX_PUSHES_PER_POLL);
        let mut out = Vec::new();
        for (mailbox, subs) in &mut self.mailboxes {
            for sub in subs.iter_mut() {
                if out.len() >= max {
                    return out;
                }
                if matches!(sub.state, PushState::Due(at) if at <= now) {
                    sub.state = PushState::InFlight { again: false };
                    sub.sent_at = Some(now);
                    out.push((*mailbox, sub.peer.clone()));
                }
            }
        }
        out
    }

    /// What became of a push from [`poll_due`](Self::poll_due): `delivered` when the peer
    /// answered it. Not delivered: kept for the peer's next connection.
    pub fn on_sent(&mut self, mailbox: &[u8; 32], peer: &P, delivered: bool, now: i64) {
        let Some(sub) = self
            .mailboxes
            .get_mut(mailbox)
            .and_then(|subs| subs.iter_mut().find(|s| s.peer == *peer))
        else {
            return;
        };
        if let PushState::InFlight { again } = sub.state {
            sub.state = match (delivered, again) {
                (false, _) => PushState::Undelivered,
                (true, true) => PushState::Due(now.saturating_add(PUSH_MIN_INTERVAL_MS)),
                (true, false) => PushState::Idle,
            };
        }
    }

    /// `peer` connected at `now`: the pushes it missed are due at once.
    pub fn on_connected(&mut self, peer: &P, now: i64) {
        for subs in self.mailboxes.values_mut() {
            for sub in subs.iter_mut().filter(|s| s.peer == *peer) {
                if sub.state == PushState::Undelivered {
                    sub.state = PushState::Due(now);
                }
            }
        }
    }

    /// When the next push is due (unix ms), if any is waiting for a time rather than a
    /// connection.
    pub fn next_deadline(&self) -> Option<i64> {
        self.mailboxes
            .values()
            .flatten()
            .filter_map(|s| match s.state {
                PushState::Due(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Every subscription as (mailbox, peer, last fetch, a push is owed), to keep across a
    /// restart ([`restore`](Self::restore)).
    pub fn snapshot(&self) -> Vec<Saved<P>> {
        self.mailboxes
            .iter()
            .flat_map(|(mailbox, subs)| {
                subs.iter().map(|s| Saved {
                    mailbox: *mailbox,
                    peer: s.peer.clone(),
                    fetched_at: s.fetched_at,
                    pending: s.state != PushState::Idle,
                })
            })
            .collect()
    }

    /// Takes back subscriptions saved by [`snapshot`](Self::snapshot) at `now` (within the
    /// usual bounds; expired ones are dropped). A push that was owed waits for the peer's next
    /// connection, as one that did not reach it.
    pub fn restore(&mut self, saved: impl IntoIterator<Item = Saved<P>>, now: i64) {
        for s in saved {
            if now.saturating_sub(s.fetched_at) >= PUSH_SUBSCRIPTION_TTL_MS {
                continue;
            }
            self.subscribe(s.mailbox, s.peer.clone(), s.fetched_at);
            if s.pending
                && let Some(sub) = self
                    .mailboxes
                    .get_mut(&s.mailbox)
                    .and_then(|subs| subs.iter_mut().find(|x| x.peer == s.peer))
            {
                sub.state = PushState::Undelivered;
            }
        }
    }
}

/// One subscription as [`PushBook::snapshot`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved<P> {
    /// The mailbox key.
    pub mailbox: [u8; 32],
    /// The subscriber.
    pub peer: P,
    /// Its last fetch here (unix ms).
    pub fetched_at: i64,
    /// A push to it was owed.
    pub pending: bool,
}

#[cfg(test)]
mod tests;
