//! The [`EventSink`]: how [`NetEvent`]s go up to the node without the event loop ever waiting
//! for it.
//!
//! ```text
//!  emit(event) ─▶ backlog empty and channel has room? ─▶ channel
//!              ─▶ backlog below EVENT_BACKLOG_CAPACITY ─▶ backlog (drained in order by `run`)
//!              ─▶ shed (counted; an inbound request is dropped with its response channel)
//!  emit_lossy(report) ─▶ channel at once, or dropped (counted)
//! ```

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tracing::debug;

use super::{EVENT_BACKLOG_CAPACITY, NetEvent};
use crate::client::NetStats;

/// The node's event channel, the backlog in front of it, and what was lost on the way.
#[derive(Debug)]
pub(crate) struct EventSink {
    events: mpsc::Sender<NetEvent>,
    /// Events waiting for room in `events`, oldest first (at most `capacity`).
    backlog: VecDeque<NetEvent>,
    capacity: usize,
    shed: u64,
    inbound_requests_shed: u64,
    dropped: u64,
}

impl EventSink {
    pub(crate) fn new(events: mpsc::Sender<NetEvent>) -> Self {
        Self::with_capacity(events, EVENT_BACKLOG_CAPACITY)
    }

    fn with_capacity(events: mpsc::Sender<NetEvent>, capacity: usize) -> Self {
        Self {
            events,
            backlog: VecDeque::new(),
            capacity,
            shed: 0,
            inbound_requests_shed: 0,
            dropped: 0,
        }
    }

    /// The node's event channel (for the gossip handler, which uses `try_send` itself).
    pub(crate) fn sender(&self) -> &mpsc::Sender<NetEvent> {
        &self.events
    }

    /// Whether events wait in the backlog.
    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Hands `event` to the node without waiting: straight into the event channel when it has
    /// room and nothing is queued before it, else at the back of the backlog, which
    /// [`EventLoop::run`](super::EventLoop::run) drains in order. A full backlog sheds the
    /// event and counts it; a shed inbound request is dropped with its response channel, so the
    /// requester sees the stream close (and tries again later) rather than the whole node
    /// stalling.
    ///
    /// Waiting here instead (as the loop once did) closes a cycle: the node's loop waits on
    /// the event loop for a command (an answer, a ban) while the event loop waits on the node
    /// for room.
    pub(crate) fn emit(&mut self, event: NetEvent) {
        let event = if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    debug!("node stopped listening to network events");
                    return;
                }
                Err(mpsc::error::TrySendError::Full(event)) => event,
            }
        } else {
            event
        };
        if self.backlog.len() < self.capacity {
            self.backlog.push_back(event);
            return;
        }
        self.shed += 1;
        if matches!(
            event,
            NetEvent::InboundMessage { .. }
                | NetEvent::InboundMailbox { .. }
                | NetEvent::InboundPex { .. }
                | NetEvent::InboundLink { .. }
        ) {
            self.inbound_requests_shed += 1;
        }
        debug!(
            backlog = self.backlog.len(),
            "network event shed: the node is not keeping up"
        );
    }

    /// Hands `event` to the node only if it can be delivered at once, in order; drops it
    /// otherwise (counted). For reports that are useless late or cheap to lose.
    pub(crate) fn emit_lossy(&mut self, event: NetEvent) {
        if !self.backlog.is_empty() {
            self.dropped += 1;
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.dropped += 1;
        }
    }

    /// Waits for room in the channel and moves the oldest backlogged event into it; clears
    /// the backlog when the node stopped listening. Cancel-safe: the event leaves the backlog
    /// only once a permit is held.
    pub(crate) async fn drain_one(&mut self) {
        // An owned permit: the sender is cloned so the backlog can be touched afterwards.
        match self.events.clone().reserve_owned().await {
            Ok(permit) => {
                if let Some(event) = self.backlog.pop_front() {
                    permit.send(event);
                }
            }
            Err(_) => self.backlog.clear(),
        }
    }

    /// Writes the sink's counters and gauge into `stats`.
    pub(crate) fn fill_stats(&self, stats: &mut NetStats) {
        stats.events_shed = self.shed;
        stats.inbound_requests_shed = self.inbound_requests_shed;
        stats.events_dropped = self.dropped;
        stats.event_backlog = self.backlog.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::{Multiaddr, PeerId};

    fn listening(port: u16) -> NetEvent {
        NetEvent::Listening {
            addr: format!("/ip4/127.0.0.1/tcp/{port}")
                .parse::<Multiaddr>()
                .expect("multiaddr"),
        }
    }

    fn port_of(event: NetEvent) -> u16 {
        match event {
            NetEvent::Listening { addr } => match addr.iter().nth(1) {
                Some(libp2p::multiaddr::Protocol::Tcp(port)) => port,
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn events_wait_in_order_in_a_bounded_backlog_and_the_surplus_is_counted() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = EventSink::with_capacity(tx, 2);
        for port in 1..=4 {
            sink.emit(listening(port));
        }
        sink.emit_lossy(NetEvent::InboundKadRequest {
            peer: PeerId::random(),
        });
        let mut stats = NetStats::default();
        sink.fill_stats(&mut stats);
        assert_eq!(stats.event_backlog, 2);
        assert_eq!(stats.events_shed, 1);
        assert_eq!(stats.events_dropped, 1);
        for expected in 1..=2 {
            assert_eq!(port_of(rx.recv().await.expect("event")), expected);
            sink.drain_one().await;
        }
        assert!(!sink.has_backlog());
        assert_eq!(port_of(rx.recv().await.expect("event")), 3);
    }
}
