//! [`KadTap`]: Kademlia, plus who sent each inbound request.
//!
//! libp2p's `kad::Event::InboundRequest` does not name the requesting peer (except for
//! `PutRecord`), yet the node needs it to rate-limit peers that flood the DHT. Kademlia queues
//! the answer to a `FIND_NODE`, `GET_PROVIDERS` or `GET_VALUE` request right behind the event
//! that reports it, addressed to the requester; the tap reads the peer off that answer (and
//! forwards the answer unchanged). Everything else passes straight through, and the tap
//! dereferences to the wrapped `kad::Behaviour`, so `behaviour.kad.add_address(…)` and the
//! like work as before.

use std::{
    ops::{Deref, DerefMut},
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    kad,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
};

type Inner = kad::Behaviour<kad::store::MemoryStore>;

/// Kademlia with the source of inbound requests recorded; see the [module docs](self).
pub struct KadTap {
    inner: Inner,
    /// An event read ahead of its turn, returned by the next `poll`.
    stashed: Option<ToSwarm<kad::Event, THandlerInEvent<Inner>>>,
    /// The requester of the `InboundRequest` event returned last, until taken.
    inbound_source: Option<PeerId>,
}

impl std::fmt::Debug for KadTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KadTap").finish_non_exhaustive()
    }
}

impl KadTap {
    /// Wraps a Kademlia behaviour.
    pub fn new(inner: Inner) -> Self {
        Self {
            inner,
            stashed: None,
            inbound_source: None,
        }
    }

    /// The peer that sent the inbound request of the `kad::Event::InboundRequest` the swarm
    /// yielded last (call it while handling that event); `None` when unknown.
    pub fn take_inbound_source(&mut self) -> Option<PeerId> {
        self.inbound_source.take()
    }
}

impl Deref for KadTap {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for KadTap {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl NetworkBehaviour for KadTap {
    type ConnectionHandler = THandler<Inner>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(event) = self.stashed.take() {
            return Poll::Ready(event);
        }
        let event = match self.inner.poll(cx) {
            Poll::Ready(event) => event,
            Poll::Pending => return Poll::Pending,
        };
        if let ToSwarm::GenerateEvent(kad::Event::InboundRequest { request }) = &event {
            self.inbound_source = match request {
                kad::InboundRequest::PutRecord { source, .. } => Some(*source),
                kad::InboundRequest::AddProvider {
                    record: Some(record),
                } => Some(record.provider),
                kad::InboundRequest::FindNode { .. }
                | kad::InboundRequest::GetProvider { .. }
                | kad::InboundRequest::GetRecord { .. } => {
                    // The answer to the requester is queued right behind this event.
                    match self.inner.poll(cx) {
                        Poll::Ready(next) => {
                            let source = match &next {
                                ToSwarm::NotifyHandler { peer_id, .. } => Some(*peer_id),
                                _ => None,
                            };
                            self.stashed = Some(next);
                            cx.waker().wake_by_ref();
                            source
                        }
                        Poll::Pending => None,
                    }
                }
                _ => None,
            };
        }
        Poll::Ready(event)
    }
}
