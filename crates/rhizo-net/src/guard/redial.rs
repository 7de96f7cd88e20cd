//! [`RedialSchedule`]: when each trusted peer is dialled again. A lost connection or a failed
//! dial schedules a redial after the peer's backoff, which starts at [`TRUSTED_REDIAL_MIN`] and
//! doubles up to [`TRUSTED_REDIAL_MAX`]; a connection resets it.
//!
//! Sans-IO: every call takes `now`. The event loop passes tokio's clock, the one the node's
//! `Clock` sleeps on, so a test on tokio's paused time (or one passing instants by hand, as the
//! tests below do) moves through minutes of redials at once.

use std::{collections::HashMap, time::Duration};

use libp2p::PeerId;
use tokio::time::Instant;

use super::state::{TRUSTED_REDIAL_MAX, TRUSTED_REDIAL_MIN};

/// One trusted peer's backoff and next redial.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The delay the next failure schedules.
    backoff: Duration,
    /// When the next redial is due, if one is scheduled.
    next: Option<Instant>,
}

impl Default for Entry {
    fn default() -> Self {
        Self {
            backoff: TRUSTED_REDIAL_MIN,
            next: None,
        }
    }
}

/// The redial times of the trusted peers (bounded by the caller: at most `MAX_TRUSTED_PEERS`
/// are tracked).
#[derive(Debug, Default)]
pub(crate) struct RedialSchedule {
    peers: HashMap<PeerId, Entry>,
}

impl RedialSchedule {
    /// Follows `peer` (nothing scheduled yet).
    pub(crate) fn track(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// `peer` is not connected (a lost connection, a failed dial): a redial after its backoff,
    /// unless one is scheduled already; the backoff doubles. The delay, if it scheduled one.
    pub(crate) fn failed(&mut self, peer: &PeerId, now: Instant) -> Option<Duration> {
        let entry = self.peers.get_mut(peer)?;
        if entry.next.is_some() {
            return None;
        }
        let delay = entry.backoff;
        entry.next = Some(now + delay);
        entry.backoff = (delay * 2).min(TRUSTED_REDIAL_MAX);
        Some(delay)
    }

    /// `peer` connected: its backoff starts over, nothing is scheduled.
    pub(crate) fn connected(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            *entry = Entry::default();
        }
    }

    /// The earliest scheduled redial.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.peers.values().filter_map(|e| e.next).min()
    }

    /// The peers whose redial is due at `now` (each unscheduled: the dial's outcome schedules
    /// the next).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<PeerId> {
        self.peers
            .iter_mut()
            .filter(|(_, e)| e.next.is_some_and(|at| at <= now))
            .map(|(peer, e)| {
                e.next = None;
                *peer
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_back_off_from_five_seconds_to_a_minute_and_a_connection_resets_them() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        let peer = PeerId::random();
        let mut schedule = RedialSchedule::default();
        // An untracked peer is never scheduled.
        assert_eq!(schedule.failed(&PeerId::random(), start), None);
        schedule.track(peer);
        assert_eq!(schedule.next_due(), None);
        // Each failure, once the previous redial ran: 5, 10, 20, 40, 60, 60 s.
        let mut now = start;
        for expected in [5, 10, 20, 40, 60, 60] {
            assert_eq!(schedule.failed(&peer, now), Some(secs(expected)));
            // A second report before the redial ran changes nothing.
            assert_eq!(schedule.failed(&peer, now), None);
            let due = now + secs(expected);
            assert_eq!(schedule.next_due(), Some(due));
            assert!(schedule.take_due(due - Duration::from_millis(1)).is_empty());
            assert_eq!(schedule.take_due(due), vec![peer]);
            assert_eq!(schedule.next_due(), None);
            now = due;
        }
        // Connected: the next loss waits the shortest delay again.
        schedule.connected(&peer);
        assert_eq!(schedule.failed(&peer, now), Some(secs(5)));
        // A connection also cancels a scheduled redial.
        schedule.connected(&peer);
        assert_eq!(schedule.next_due(), None);
    }

    #[test]
    fn the_earliest_of_several_peers_is_due_first() {
        let start = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut schedule = RedialSchedule::default();
        schedule.track(a);
        schedule.track(b);
        schedule.failed(&a, start);
        schedule.failed(&a, start); // ignored
        schedule.failed(&b, start + Duration::from_secs(1));
        assert_eq!(schedule.next_due(), Some(start + TRUSTED_REDIAL_MIN));
        let mut due = schedule.take_due(start + Duration::from_secs(6));
        due.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(due, both);
    }

    /// On tokio's paused clock (the one the node's `PausedClock` follows), the event loop's
    /// wait for the next redial ends exactly when the schedule says, with no real waiting.
    #[tokio::test(start_paused = true)]
    async fn the_wait_for_a_redial_runs_on_tokios_paused_clock() {
        let peer = PeerId::random();
        let mut schedule = RedialSchedule::default();
        schedule.track(peer);
        let mut delays = Vec::new();
        for _ in 0..4 {
            let start = Instant::now();
            schedule.failed(&peer, start);
            let at = schedule.next_due().expect("scheduled");
            tokio::time::sleep_until(at).await;
            assert_eq!(schedule.take_due(Instant::now()), vec![peer]);
            delays.push(Instant::now() - start);
        }
        let secs = Duration::from_secs;
        assert_eq!(delays, vec![secs(5), secs(10), secs(20), secs(40)]);
    }
}
