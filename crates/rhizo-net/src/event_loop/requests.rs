//! The [`RequestTable`]: every outbound request of the three request-response protocols
//! (`/rhizo/msg/1`, `/rhizo/mailbox/1`, `/rhizo/pex/1`, `/rhizo/link/1`) in one bounded table, and the one path
//! that sends them, routes their replies and maps their failures to [`SendError`].
//!
//! ```text
//!  Client::send_message / mailbox_request / pex_request
//!    ─▶ Command::Request { protocol, .. } ─▶ table full?        ─▶ SendError::Busy
//!                                           request too large? ─▶ SendError::TooLarge
//!    ─▶ behaviour.send_request ─▶ table[(protocol, id)] = (reply, deadline)
//!  Response (protocol, id)          ─▶ reply Ok(bytes)
//!  OutboundFailure (protocol, id)   ─▶ reply Err(failure_error(..))
//!  deadline passed (expire(now))    ─▶ reply Err(SendError::Timeout)
//! ```
//!
//! The table itself is sans-IO (every call takes `now`, ids are any key), so its tests need no
//! swarm; the glue at the bottom is the only part that touches the behaviours.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use libp2p::{
    Multiaddr, PeerId,
    request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel},
};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};
use tracing::debug;

use super::{EventLoop, NetEvent};
use crate::client::{MESSAGE_TIMEOUT, SendError};
use crate::msg_protocol::FrameCodec;

/// Outbound requests in flight from this node's own callers, all protocols together; past
/// this a request is refused with [`SendError::Busy`] (each holds a reply channel and an entry).
pub(crate) const MAX_PENDING_REQUESTS: usize = 1024;
/// How long an entry waits for its answer before the table answers [`SendError::Timeout`]
/// itself: the caller's own bound, a backstop behind the protocols' request timeouts.
pub(crate) const REQUEST_DEADLINE: Duration = MESSAGE_TIMEOUT;

/// Where the answer to one outbound request goes.
pub(crate) type ReplyTo = oneshot::Sender<Result<Vec<u8>, SendError>>;

/// The request-response protocols, which share one table and one handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ReqProtocol {
    /// `/rhizo/msg/1`.
    Msg,
    /// `/rhizo/mailbox/1`.
    Mailbox,
    /// `/rhizo/pex/1`.
    Pex,
    /// `/rhizo/link/1`.
    Link,
    /// `/rhizo/file/1`.
    File,
}

impl ReqProtocol {
    /// The protocol id, as the guard's bookkeeping keys it.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Msg => "/rhizo/msg/1",
            Self::Mailbox => crate::MAILBOX_PROTOCOL,
            Self::Pex => crate::PEX_PROTOCOL,
            Self::Link => crate::LINK_PROTOCOL,
            Self::File => crate::FILE_PROTOCOL,
        }
    }

    /// The largest request this node sends on the protocol (larger: [`SendError::TooLarge`]
    /// before anything is sent), if it checks one itself.
    const fn max_request(self) -> Option<usize> {
        match self {
            Self::Mailbox => Some(crate::MAX_MAILBOX_REQUEST_BYTES),
            Self::Link => Some(crate::MAX_LINK_MESSAGE_BYTES),
            Self::File => Some(crate::MAX_FILE_REQUEST_BYTES),
            Self::Msg | Self::Pex => None,
        }
    }
}

/// Outbound requests in flight, keyed by `K` (the event loop: protocol and request id, since
/// request ids are per protocol), at most `capacity`.
///
/// Every deadline is the insertion time plus [`REQUEST_DEADLINE`], so deadlines come in
/// insertion order: `order` holds them oldest first, and the earliest is always at its front
/// (an answered request's entry stays until it reaches the front or a compaction drops it).
pub(crate) struct RequestTable<K> {
    pending: HashMap<K, ReplyTo>,
    order: VecDeque<(K, Instant)>,
    capacity: usize,
}

impl<K> std::fmt::Debug for RequestTable<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTable")
            .field("pending", &self.pending.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<K: Eq + Hash + Copy> RequestTable<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Requests in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether another request fits.
    pub(crate) fn has_room(&self) -> bool {
        self.pending.len() < self.capacity
    }

    /// Records a request sent at `now` (which never goes back between calls); when the table
    /// is full, `reply` is answered [`SendError::Busy`] at once (the caller checks
    /// [`has_room`](Self::has_room) before it sends anything, so this is a backstop).
    pub(crate) fn insert(&mut self, id: K, reply: ReplyTo, now: Instant) {
        if !self.has_room() {
            let _ = reply.send(Err(SendError::Busy));
            return;
        }
        self.pending.insert(id, reply);
        self.order.push_back((id, now + REQUEST_DEADLINE));
        if self.order.len() > 2 * self.capacity {
            // Bounded: drop the entries of answered requests.
            self.order.retain(|(id, _)| self.pending.contains_key(id));
        }
    }

    /// Hands `outcome` to the caller of request `id`; `false` if the table holds no such
    /// request (already answered, or expired).
    pub(crate) fn complete(&mut self, id: K, outcome: Result<Vec<u8>, SendError>) -> bool {
        match self.pending.remove(&id) {
            Some(reply) => {
                let _ = reply.send(outcome);
                true
            }
            None => false,
        }
    }

    /// When [`expire`](Self::expire) has work next, if ever: no later than the earliest
    /// deadline of a request in flight (earlier if an answered request's entry is first).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(_, deadline)| *deadline)
    }

    /// Answers [`SendError::Timeout`] to every request whose deadline is `now` or earlier, and
    /// forgets it; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some(&(id, deadline)) = self.order.front() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            if self.complete(id, Err(SendError::Timeout)) {
                expired += 1;
            }
        }
        expired
    }

    /// Waits until the earliest deadline (forever when the table is empty).
    pub(crate) async fn deadline_due(&self) {
        match self.next_deadline() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// What the caller of a failed outbound request is told.
pub(crate) fn failure_error(failure: OutboundFailure) -> SendError {
    match failure {
        OutboundFailure::DialFailure => SendError::Unreachable("could not connect".into()),
        OutboundFailure::Timeout => SendError::Timeout,
        OutboundFailure::ConnectionClosed => SendError::Unreachable("connection closed".into()),
        OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            SendError::BatchUnsupported
        }
        other => SendError::Protocol(other.to_string()),
    }
}

impl EventLoop {
    fn request_behaviour(
        &mut self,
        protocol: ReqProtocol,
    ) -> &mut request_response::Behaviour<FrameCodec> {
        match protocol {
            ReqProtocol::Msg => &mut self.swarm.behaviour_mut().msg,
            ReqProtocol::Mailbox => &mut self.swarm.behaviour_mut().mailbox,
            ReqProtocol::Pex => &mut self.swarm.behaviour_mut().pex,
            ReqProtocol::Link => &mut self.swarm.behaviour_mut().link,
            ReqProtocol::File => &mut self.swarm.behaviour_mut().file,
        }
    }

    /// The one outbound path of the three protocols: bounded, size-checked, then tabled.
    pub(super) fn send_request(
        &mut self,
        protocol: ReqProtocol,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        payload: Vec<u8>,
        reply: ReplyTo,
    ) {
        if !self.requests.has_room() {
            let _ = reply.send(Err(SendError::Busy));
            return;
        }
        if let Some(max) = protocol.max_request()
            && payload.len() > max
        {
            self.count_failure(protocol);
            let _ = reply.send(Err(SendError::TooLarge {
                len: payload.len(),
                max,
            }));
            return;
        }
        let id = self
            .request_behaviour(protocol)
            .send_request_with_addresses(&peer, payload, addrs);
        self.requests.insert((protocol, id), reply, Instant::now());
    }

    pub(super) fn send_response(
        &mut self,
        protocol: ReqProtocol,
        channel: ResponseChannel<Vec<u8>>,
        payload: Vec<u8>,
    ) {
        if self
            .request_behaviour(protocol)
            .send_response(channel, payload)
            .is_err()
        {
            debug!(?protocol, "response not sent: the requester went away");
        }
    }

    /// Answers, with [`SendError::Timeout`], the requests past their deadline.
    pub(super) fn expire_requests(&mut self) {
        let expired = self.requests.expire(Instant::now());
        if expired > 0 {
            debug!(expired, "outbound requests timed out");
        }
    }

    fn count_failure(&mut self, protocol: ReqProtocol) {
        match protocol {
            ReqProtocol::Msg => self.stats.message_failures += 1,
            ReqProtocol::Mailbox => self.stats.mailbox_failures += 1,
            ReqProtocol::Pex | ReqProtocol::Link | ReqProtocol::File => {}
        }
    }

    pub(super) fn on_request_event(
        &mut self,
        protocol: ReqProtocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                self.guard.request_delivered(protocol.name(), request_id);
                self.on_inbound_request(protocol, peer, request, channel);
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                match protocol {
                    ReqProtocol::Msg => self.stats.messages_sent += 1,
                    ReqProtocol::Mailbox => self.stats.mailbox_requests_sent += 1,
                    ReqProtocol::Pex | ReqProtocol::Link | ReqProtocol::File => {}
                }
                self.requests.complete((protocol, request_id), Ok(response));
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => self.on_outbound_failure(protocol, peer, request_id, error),
            Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, ?protocol, "inbound request failed");
                if let Some(what) =
                    self.guard
                        .inbound_misbehaviour(protocol.name(), request_id, &error)
                {
                    self.sink.emit(NetEvent::Misbehaved { peer, what });
                }
            }
            Event::ResponseSent {
                peer, request_id, ..
            } => {
                self.guard.request_answered(protocol.name(), request_id);
                if protocol == ReqProtocol::Link {
                    self.sink.emit(NetEvent::LinkAnswered { peer });
                }
            }
        }
    }

    /// Hands an inbound request to the node. Never awaited (see
    /// [`EventSink::emit`](super::sink::EventSink::emit)): past the backlog, a request is shed
    /// and counted.
    fn on_inbound_request(
        &mut self,
        protocol: ReqProtocol,
        peer: PeerId,
        payload: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let event = match protocol {
            ReqProtocol::Msg => {
                self.stats.messages_received += 1;
                NetEvent::InboundMessage {
                    peer,
                    payload,
                    channel,
                }
            }
            ReqProtocol::Mailbox => {
                self.stats.mailbox_requests_received += 1;
                NetEvent::InboundMailbox {
                    peer,
                    payload,
                    channel,
                }
            }
            // The request body means nothing (at most 64 bytes, ignored).
            ReqProtocol::Pex => NetEvent::InboundPex { peer, channel },
            ReqProtocol::Link => NetEvent::InboundLink {
                peer,
                payload,
                channel,
            },
            ReqProtocol::File => NetEvent::InboundFile {
                peer,
                payload,
                channel,
            },
        };
        self.sink.emit(event);
    }

    fn on_outbound_failure(
        &mut self,
        protocol: ReqProtocol,
        peer: PeerId,
        request_id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        self.count_failure(protocol);
        if let Some(what) = crate::guard::outbound_misbehaviour(&error) {
            debug!(%peer, ?what, ?protocol, "peer misbehaved");
            self.sink.emit(NetEvent::Misbehaved { peer, what });
        }
        self.requests
            .complete((protocol, request_id), Err(failure_error(error)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(capacity: usize) -> RequestTable<(ReqProtocol, u64)> {
        RequestTable::new(capacity)
    }

    #[test]
    fn replies_route_to_their_own_caller_by_protocol_and_id() {
        let now = Instant::now();
        let mut t = table(8);
        let (msg_tx, mut msg_rx) = oneshot::channel();
        let (mbox_tx, mut mbox_rx) = oneshot::channel();
        // The same id on two protocols: two different requests.
        t.insert((ReqProtocol::Msg, 1), msg_tx, now);
        t.insert((ReqProtocol::Mailbox, 1), mbox_tx, now);
        assert!(t.complete((ReqProtocol::Mailbox, 1), Ok(b"mailbox".to_vec())));
        assert!(msg_rx.try_recv().is_err(), "msg caller not answered yet");
        assert_eq!(
            mbox_rx.try_recv().expect("answered").expect("ok"),
            b"mailbox"
        );
        assert!(t.complete((ReqProtocol::Msg, 1), Ok(b"msg".to_vec())));
        assert_eq!(msg_rx.try_recv().expect("answered").expect("ok"), b"msg");
        assert_eq!(t.len(), 0);
        assert!(
            !t.complete((ReqProtocol::Msg, 1), Ok(Vec::new())),
            "an answered request is gone"
        );
    }

    #[test]
    fn a_request_past_its_deadline_is_answered_timeout_and_others_wait() {
        let start = Instant::now();
        let mut t = table(8);
        let (early_tx, mut early_rx) = oneshot::channel();
        let (late_tx, mut late_rx) = oneshot::channel();
        t.insert((ReqProtocol::Pex, 1), early_tx, start);
        t.insert(
            (ReqProtocol::Pex, 2),
            late_tx,
            start + Duration::from_secs(5),
        );
        assert_eq!(t.next_deadline(), Some(start + REQUEST_DEADLINE));
        assert_eq!(
            t.expire(start + REQUEST_DEADLINE - Duration::from_millis(1)),
            0
        );
        assert_eq!(t.expire(start + REQUEST_DEADLINE), 1);
        assert!(matches!(
            early_rx.try_recv().expect("answered"),
            Err(SendError::Timeout)
        ));
        assert!(late_rx.try_recv().is_err(), "not due yet");
        assert_eq!(
            t.next_deadline(),
            Some(start + Duration::from_secs(5) + REQUEST_DEADLINE)
        );
        // A late response to the expired request finds nothing.
        assert!(!t.complete((ReqProtocol::Pex, 1), Ok(Vec::new())));
    }

    #[test]
    fn the_table_is_bounded_and_a_full_table_answers_busy() {
        let now = Instant::now();
        let mut t = table(2);
        let mut receivers = Vec::new();
        for id in 0..2 {
            let (tx, rx) = oneshot::channel();
            t.insert((ReqProtocol::Msg, id), tx, now);
            receivers.push(rx);
        }
        assert!(!t.has_room());
        let (tx, mut rx) = oneshot::channel();
        t.insert((ReqProtocol::Msg, 2), tx, now);
        assert_eq!(t.len(), 2);
        assert!(matches!(
            rx.try_recv().expect("answered"),
            Err(SendError::Busy)
        ));
        assert!(t.complete((ReqProtocol::Msg, 0), Ok(Vec::new())));
        assert!(t.has_room());
    }

    #[test]
    fn answered_requests_never_time_out_and_their_entries_stay_bounded() {
        let start = Instant::now();
        let mut t = table(2);
        for id in 0..100 {
            let (tx, _rx) = oneshot::channel();
            t.insert(
                (ReqProtocol::Msg, id),
                tx,
                start + Duration::from_millis(id),
            );
            assert!(t.complete((ReqProtocol::Msg, id), Ok(Vec::new())));
            assert!(t.order.len() <= 2 * 2 + 1, "{} entries", t.order.len());
        }
        let (tx, mut rx) = oneshot::channel();
        let last = start + Duration::from_secs(1);
        t.insert((ReqProtocol::Msg, 100), tx, last);
        // Stale entries may wake the loop early; they expire nothing.
        assert!(
            t.next_deadline()
                .is_some_and(|d| d <= last + REQUEST_DEADLINE)
        );
        assert_eq!(
            t.expire(last + REQUEST_DEADLINE - Duration::from_millis(1)),
            0
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(t.expire(last + REQUEST_DEADLINE), 1);
        assert!(t.next_deadline().is_none());
    }

    #[test]
    fn outbound_failures_map_to_precise_errors() {
        assert!(matches!(
            failure_error(OutboundFailure::Timeout),
            SendError::Timeout
        ));
        assert!(matches!(
            failure_error(OutboundFailure::DialFailure),
            SendError::Unreachable(_)
        ));
        assert!(matches!(
            failure_error(OutboundFailure::ConnectionClosed),
            SendError::Unreachable(_)
        ));
        assert!(matches!(
            failure_error(OutboundFailure::UnsupportedProtocols),
            SendError::Protocol(_)
        ));
        assert!(matches!(
            failure_error(OutboundFailure::Io(std::io::ErrorKind::InvalidData.into())),
            SendError::Protocol(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_due_wakes_at_the_earliest_deadline() {
        let mut t = table(4);
        let (tx, mut rx) = oneshot::channel();
        t.insert((ReqProtocol::Msg, 7), tx, Instant::now());
        t.deadline_due().await;
        assert_eq!(t.expire(Instant::now()), 1);
        assert!(matches!(
            rx.try_recv().expect("answered"),
            Err(SendError::Timeout)
        ));
    }
}
