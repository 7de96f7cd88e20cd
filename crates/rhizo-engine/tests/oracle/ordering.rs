//! [`ReceiveOrdering`]: the receiver's per-(sender device, conversation)
//! reorder buffer.

use std::collections::{BTreeMap, BTreeSet};

use rhizo_core::envelope::ErrorCode;

/// How far ahead of the next expected sequence number an envelope may be
/// (and so how many can wait in the buffer): far more than a sender's
/// [`MAX_IN_FLIGHT`](super::MAX_IN_FLIGHT), while bounding memory.
pub const MAX_REORDER_WINDOW: u64 = 1024;
/// Default wait before a gap is given up on, in milliseconds: long enough for
/// the sender's first retries (1 s, 2 s, 4 s, … 32 s) to fill it, short
/// enough that one lost envelope does not hold a chat up for long.
pub const DEFAULT_GAP_TIMEOUT: u64 = 60_000;
/// Most released-gap sequence numbers remembered for late arrivals: one full
/// reorder window.
pub const MAX_TRACKED_HOLES: usize = 1024;

/// What [`ReceiveOrdering::release_gap`] hands to the application, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released<T> {
    /// Sequence numbers `first..=last` are missing: show a hole here.
    Gap {
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number.
        last: u64,
    },
    /// The next message in order.
    Message(T),
}

/// Puts one sender device's envelopes of one conversation back in sequence
/// order, sans-IO.
///
/// * [`push`](Self::push) accepts sequence numbers in any order and returns
///   the run that has just become contiguous (often just the pushed item,
///   or nothing while a gap is open). Duplicates are refused with
///   [`ErrorCode::ReplayDetected`]; sequence numbers [`MAX_REORDER_WINDOW`] or
///   more ahead of the next expected one with [`ErrorCode::SequenceError`].
/// * **Gaps.** An envelope that never arrives must not block the conversation
///   forever. Once the first buffered item has waited the gap timeout
///   ([`poll_timeout`](Self::poll_timeout) says when),
///   [`release_gap`](Self::release_gap) gives up on the gap before it: it
///   returns a [`Released::Gap`] marker followed by the buffered run, and the
///   history shows the messages in order with a hole. If a missing envelope
///   arrives later after all, `push` returns it alone (a *late* item, whose
///   sequence number is below [`next_expected`](Self::next_expected)): the
///   application fills the hole with it. The last [`MAX_TRACKED_HOLES`]
///   missing numbers are remembered for that; older ones are refused as
///   duplicates.
///
/// `T` is what the application wants back: the decoded message, or just a
/// handle to it in storage (the buffer holds up to [`MAX_REORDER_WINDOW`]
/// items). Duplicates across restarts are the seen-set's job
/// ([`seen`](rhizo_core::seen)); this buffer is in memory, so the driver persists
/// [`next_expected`](Self::next_expected) and restores it with
/// [`starting_at`](Self::starting_at).
#[derive(Debug, Clone)]
pub struct ReceiveOrdering<T> {
    next: u64,
    /// Waiting items with their arrival time.
    buffer: BTreeMap<u64, (T, u64)>,
    /// Sequence numbers skipped by a released gap, for late arrivals.
    holes: BTreeSet<u64>,
    gap_timeout: u64,
}

impl<T> Default for ReceiveOrdering<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ReceiveOrdering<T> {
    /// A new stream expecting sequence number 1, with
    /// [`DEFAULT_GAP_TIMEOUT`].
    pub fn new() -> Self {
        Self::starting_at(1)
    }

    /// A stream expecting `next` first (at least 1), for example restored
    /// after a restart.
    pub fn starting_at(next: u64) -> Self {
        Self {
            next: next.max(1),
            buffer: BTreeMap::new(),
            holes: BTreeSet::new(),
            gap_timeout: DEFAULT_GAP_TIMEOUT,
        }
    }

    /// Sets the gap timeout in milliseconds (`u64::MAX`: never give up).
    pub fn with_gap_timeout(mut self, gap_timeout: u64) -> Self {
        self.gap_timeout = gap_timeout;
        self
    }

    /// Accepts item `seq` at `now` (unix ms); returns the items that became
    /// deliverable, in order (see the [type docs](Self)).
    ///
    /// # Errors
    ///
    /// * [`ErrorCode::ReplayDetected`] for a sequence number already
    ///   delivered, buffered or given up on long ago.
    /// * [`ErrorCode::SequenceError`] for 0, `u64::MAX`, or a number at least
    ///   [`MAX_REORDER_WINDOW`] ahead of [`next_expected`](Self::next_expected).
    pub fn push(&mut self, seq: u64, item: T, now: u64) -> Result<Vec<T>, ErrorCode> {
        if seq == 0 || seq == u64::MAX {
            return Err(ErrorCode::SequenceError);
        }
        if seq < self.next {
            return if self.holes.remove(&seq) {
                Ok(vec![item])
            } else {
                Err(ErrorCode::ReplayDetected)
            };
        }
        if seq - self.next >= MAX_REORDER_WINDOW {
            return Err(ErrorCode::SequenceError);
        }
        if self.buffer.contains_key(&seq) {
            return Err(ErrorCode::ReplayDetected);
        }
        if seq != self.next {
            self.buffer.insert(seq, (item, now));
            return Ok(Vec::new());
        }
        let mut run = vec![item];
        self.next += 1;
        self.drain_run(|item| run.push(item));
        Ok(run)
    }

    /// Gives up on gaps whose following item has waited the gap timeout by
    /// `now`; returns, in order, a [`Released::Gap`] for each and the
    /// messages after it. Empty if nothing is due.
    pub fn release_gap(&mut self, now: u64) -> Vec<Released<T>> {
        let mut out = Vec::new();
        while let Some((&first_buffered, &(_, arrived))) = self.buffer.first_key_value() {
            if arrived.saturating_add(self.gap_timeout) > now {
                break;
            }
            let (first, last) = (self.next, first_buffered - 1);
            for seq in first..=last {
                self.holes.insert(seq);
                if self.holes.len() > MAX_TRACKED_HOLES {
                    self.holes.pop_first();
                }
            }
            out.push(Released::Gap { first, last });
            self.next = first_buffered;
            self.drain_run(|item| out.push(Released::Message(item)));
        }
        out
    }

    /// When [`release_gap`](Self::release_gap) will have something to do
    /// (unix ms), or `None` if nothing is buffered.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.buffer
            .first_key_value()
            .map(|(_, (_, arrived))| arrived.saturating_add(self.gap_timeout))
    }

    /// The next sequence number to be delivered in order.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// Number of items waiting for a gap to fill.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Moves the contiguous run starting at `next` out of the buffer.
    fn drain_run(&mut self, mut emit: impl FnMut(T)) {
        while let Some((item, _)) = self.buffer.remove(&self.next) {
            emit(item);
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_passes_straight_through() {
        let mut o = ReceiveOrdering::new();
        for seq in 1..=5 {
            assert_eq!(o.push(seq, seq, 0), Ok(vec![seq]));
        }
        assert_eq!(o.next_expected(), 6);
        assert_eq!(o.poll_timeout(), None);
    }

    #[test]
    fn out_of_order_is_buffered_and_released_in_order() {
        let mut o = ReceiveOrdering::new();
        assert_eq!(o.push(3, 'c', 0), Ok(vec![]));
        assert_eq!(o.push(2, 'b', 0), Ok(vec![]));
        assert_eq!(o.buffered(), 2);
        assert_eq!(o.push(1, 'a', 0), Ok(vec!['a', 'b', 'c']));
        assert_eq!(o.buffered(), 0);
    }

    #[test]
    fn duplicates_and_bounds() {
        let mut o = ReceiveOrdering::new();
        assert_eq!(o.push(1, (), 0), Ok(vec![()]));
        assert_eq!(o.push(1, (), 0), Err(ErrorCode::ReplayDetected));
        assert_eq!(o.push(3, (), 0), Ok(vec![]));
        assert_eq!(o.push(3, (), 0), Err(ErrorCode::ReplayDetected));
        assert_eq!(o.push(0, (), 0), Err(ErrorCode::SequenceError));
        assert_eq!(o.push(u64::MAX, (), 0), Err(ErrorCode::SequenceError));
        // next = 2: 2 + 1023 is the last accepted.
        assert_eq!(
            o.push(2 + MAX_REORDER_WINDOW, (), 0),
            Err(ErrorCode::SequenceError)
        );
        assert_eq!(o.push(1 + MAX_REORDER_WINDOW, (), 0), Ok(vec![]));
    }

    #[test]
    fn a_gap_is_released_after_the_timeout_and_late_fill_is_delivered() {
        let mut o = ReceiveOrdering::new().with_gap_timeout(100);
        assert_eq!(o.push(1, 1, 0), Ok(vec![1]));
        assert_eq!(o.push(4, 4, 10), Ok(vec![]));
        assert_eq!(o.push(5, 5, 20), Ok(vec![]));
        assert_eq!(o.push(8, 8, 200), Ok(vec![]));
        assert_eq!(o.poll_timeout(), Some(110));
        assert!(o.release_gap(109).is_empty());
        assert_eq!(
            o.release_gap(110),
            vec![
                Released::Gap { first: 2, last: 3 },
                Released::Message(4),
                Released::Message(5),
            ]
        );
        assert_eq!(o.next_expected(), 6);
        assert_eq!(o.poll_timeout(), Some(300));
        // Late arrivals fill the hole once; then they are duplicates.
        assert_eq!(o.push(3, 3, 120), Ok(vec![3]));
        assert_eq!(o.push(3, 3, 121), Err(ErrorCode::ReplayDetected));
        assert_eq!(o.push(6, 6, 130), Ok(vec![6]));
        assert_eq!(
            o.release_gap(300),
            vec![Released::Gap { first: 7, last: 7 }, Released::Message(8)]
        );
        assert_eq!(o.push(2, 2, 301), Ok(vec![2]));
        assert_eq!(o.push(7, 7, 301), Ok(vec![7]));
        assert_eq!(o.buffered(), 0);
    }

    #[test]
    fn several_expired_gaps_release_at_once() {
        let mut o = ReceiveOrdering::new().with_gap_timeout(10);
        o.push(3, 3, 0).expect("push");
        o.push(6, 6, 0).expect("push");
        assert_eq!(
            o.release_gap(10),
            vec![
                Released::Gap { first: 1, last: 2 },
                Released::Message(3),
                Released::Gap { first: 4, last: 5 },
                Released::Message(6),
            ]
        );
    }

    #[test]
    fn holes_are_bounded() {
        let mut o = ReceiveOrdering::new().with_gap_timeout(0);
        let mut seq = 1;
        for _ in 0..3 {
            seq += MAX_REORDER_WINDOW - 1;
            o.push(seq, seq, 0).expect("push");
            o.release_gap(0);
        }
        assert_eq!(o.holes.len(), MAX_TRACKED_HOLES);
        assert_eq!(o.push(1, 0, 0), Err(ErrorCode::ReplayDetected));
        assert_eq!(o.push(seq - 1, 0, 0), Ok(vec![0]));
    }

    #[test]
    fn never_give_up_means_never() {
        let mut o = ReceiveOrdering::new().with_gap_timeout(u64::MAX);
        o.push(2, 2, 5).expect("push");
        assert_eq!(o.poll_timeout(), Some(u64::MAX));
        assert!(o.release_gap(u64::MAX - 1).is_empty());
        assert_eq!(ReceiveOrdering::<u8>::starting_at(0).next_expected(), 1);
    }
}
