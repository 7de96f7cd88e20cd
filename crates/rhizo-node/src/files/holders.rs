//! The holders one file is fetched from: every device that may hold it (the sender's, or in
//! a group every other member's), each with at most [`REQUESTS_PER_HOLDER`] requests in
//! flight, the least busy asked first. A holder that cannot be reached, does not have the
//! chunks, refuses us or sent chunks that did not verify is not asked again during this
//! fetch (the next round starts afresh).
//!
//! ```text
//!  range ─▶ pick (alive, not tried for this range, fewest in flight, under the cap)
//!        ─▶ all alive holders at the cap: wait for one request to end, pick again
//!        ─▶ no alive holder left (or all tried): the range is not fetched this round
//! ```

use std::sync::Mutex;

use libp2p::{Multiaddr, PeerId};

/// Requests in flight to one holder: its serving limit (`serve::MAX_SERVES_PER_PEER`), so a
/// holder is never asked more than it answers at once.
pub(crate) const REQUESTS_PER_HOLDER: usize = super::serve::MAX_SERVES_PER_PEER;
/// Holders whose capacity sizes the window of one file's fetch: more holders than this share
/// the same number of requests in flight (bounded memory and load whatever the group size).
pub(crate) const MAX_HOLDERS_AT_ONCE: usize = 3;

/// A holder: a peer and where to dial it.
pub(crate) type Holder = (PeerId, Vec<Multiaddr>);

#[derive(Debug, Default, Clone, Copy)]
struct HolderState {
    in_flight: usize,
    dead: bool,
}

/// What picking a holder for a range gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Ask this holder (its index); [`HolderPool::done`] when the request ends.
    Ask(usize),
    /// Every holder still worth asking is at its cap: wait for a request to end.
    Wait,
    /// No holder left to ask for this range.
    Exhausted,
}

/// The holders of one file's fetch and what each is doing.
#[derive(Debug)]
pub(crate) struct HolderPool {
    holders: Vec<Holder>,
    state: Mutex<Vec<HolderState>>,
    freed: tokio::sync::Notify,
}

impl HolderPool {
    pub(crate) fn new(holders: Vec<Holder>) -> Self {
        let state = Mutex::new(vec![HolderState::default(); holders.len()]);
        Self {
            holders,
            state,
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Requests in flight for the whole file: the capacity of up to
    /// [`MAX_HOLDERS_AT_ONCE`] holders (at least one holder's).
    pub(crate) fn window(&self) -> usize {
        REQUESTS_PER_HOLDER * self.holders.len().clamp(1, MAX_HOLDERS_AT_ONCE)
    }

    pub(crate) fn holder(&self, i: usize) -> &Holder {
        &self.holders[i]
    }

    /// The alive holder not in `tried` with the fewest requests in flight, under the cap.
    pub(crate) fn pick(&self, tried: &[usize]) -> Pick {
        let Ok(mut state) = self.state.lock() else {
            return Pick::Exhausted;
        };
        let candidates = state
            .iter()
            .enumerate()
            .filter(|(i, s)| !s.dead && !tried.contains(i));
        let mut any = false;
        let mut best: Option<(usize, usize)> = None;
        for (i, s) in candidates {
            any = true;
            if s.in_flight < REQUESTS_PER_HOLDER && best.is_none_or(|(_, n)| s.in_flight < n) {
                best = Some((i, s.in_flight));
            }
        }
        match best {
            Some((i, _)) => {
                state[i].in_flight += 1;
                Pick::Ask(i)
            }
            None if any => Pick::Wait,
            None => Pick::Exhausted,
        }
    }

    /// The request to holder `i` ended; `dead`: do not ask it again during this fetch.
    pub(crate) fn done(&self, i: usize, dead: bool) {
        if let Ok(mut state) = self.state.lock()
            && let Some(s) = state.get_mut(i)
        {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.dead |= dead;
        }
        self.freed.notify_waiters();
    }

    /// The `freed` future, created before a pick so a request ending in between is seen.
    pub(crate) fn freed_future(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> HolderPool {
        HolderPool::new(
            (0..n)
                .map(|_| (PeerId::random(), Vec::new()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn ranges_spread_over_the_holders_within_their_caps() {
        let p = pool(3);
        assert_eq!(p.window(), 3 * REQUESTS_PER_HOLDER);
        let picks: Vec<Pick> = (0..3 * REQUESTS_PER_HOLDER).map(|_| p.pick(&[])).collect();
        for i in 0..3 {
            let n = picks.iter().filter(|k| **k == Pick::Ask(i)).count();
            assert_eq!(n, REQUESTS_PER_HOLDER, "holder {i}");
        }
        assert_eq!(p.pick(&[]), Pick::Wait);
        p.done(1, false);
        assert_eq!(p.pick(&[]), Pick::Ask(1));
    }

    #[test]
    fn a_dead_or_tried_holder_is_not_asked_and_none_left_is_exhausted() {
        let p = pool(2);
        assert_eq!(p.pick(&[]), Pick::Ask(0));
        p.done(0, true);
        assert_eq!(p.pick(&[]), Pick::Ask(1));
        assert_eq!(p.pick(&[1]), Pick::Exhausted);
        p.done(1, true);
        assert_eq!(p.pick(&[]), Pick::Exhausted);
        // Many holders share the window of MAX_HOLDERS_AT_ONCE.
        assert_eq!(pool(10).window(), MAX_HOLDERS_AT_ONCE * REQUESTS_PER_HOLDER);
        assert_eq!(pool(0).window(), REQUESTS_PER_HOLDER);
    }
}
