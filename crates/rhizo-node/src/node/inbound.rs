//! The network's inbound requests, each checked against the peer policy and the bound on
//! requests in flight, then handled on its own task by the service it is for.

use libp2p::PeerId;
use rhizo_core::abuse::Conduct;
use rhizo_net::NetEvent;
use rhizo_store::DbError;
use tracing::debug;

use super::Services;
use crate::peer_policy::Protocol;

/// Handles `event` if it is a request (or misbehaviour) for a service; hands anything else
/// back to the caller.
pub(super) async fn dispatch(services: &Services, event: NetEvent) -> Option<NetEvent> {
    match &event {
        NetEvent::PeerConnected { peer, .. } => {
            // Mailbox pushes that did not reach it go out on this connection.
            services.mailbox.on_peer_connected(peer);
            services.messaging.presence().wake();
            services.messaging.on_peer_active(peer, true);
        }
        NetEvent::PeerDisconnected { .. } => services.messaging.presence().wake(),
        _ => {}
    }
    match event {
        NetEvent::InboundMessage {
            peer,
            payload,
            channel,
        } => on_message(services, peer, payload, channel).await,
        NetEvent::InboundMailbox {
            peer,
            payload,
            channel,
        } => on_mailbox(services, peer, payload, channel).await,
        NetEvent::InboundPex { peer, channel } => on_pex(services, peer, channel).await,
        NetEvent::InboundLink { channel, .. } => {
            // A device with the root key has no link ticket open: it links others, not itself.
            let client = services.client.clone();
            let refused =
                rhizo_core::link::LinkResponse::Refused(rhizo_core::link::LinkRefusal::NoTicket);
            tokio::spawn(async move {
                let _ = client.respond_link(channel, refused.encode()).await;
            });
        }
        NetEvent::InboundFile {
            peer,
            payload,
            channel,
        } => {
            let files = services.files.clone();
            tokio::spawn(async move { files.serve(peer, payload, channel).await });
        }
        NetEvent::GossipMessage {
            propagation_source,
            message_id,
            topic,
            data,
        } => {
            let channels = services.channels.clone();
            tokio::spawn(async move {
                channels
                    .handle_gossip(propagation_source, message_id, topic, data)
                    .await;
            });
        }
        NetEvent::Misbehaved { peer, what } => {
            debug!(%peer, ?what, "peer misbehaved");
            let conduct = match what {
                rhizo_net::Misbehaviour::OversizedFrame => Conduct::Oversized,
                rhizo_net::Misbehaviour::Timeout => Conduct::ProtocolViolation,
                _ => Conduct::InvalidMessage,
            };
            services.guard.record(peer, conduct).await;
        }
        NetEvent::InboundKadRequest { peer } => {
            services.messaging.on_peer_active(&peer, false);
            if !services.guard.allow(peer, Protocol::Kad).await {
                debug!(%peer, "Kademlia requests over the rate limit");
            }
        }
        other => return Some(other),
    }
    None
}

/// An inbound `/rhizo/msg/1` request.
async fn on_message(
    services: &Services,
    peer: PeerId,
    payload: Vec<u8>,
    channel: rhizo_net::ResponseChannel<Vec<u8>>,
) {
    let client = &services.client;
    if !services.guard.allow(peer, Protocol::Msg).await {
        let _ = client.try_respond(channel, crate::messaging::rate_limited_response());
        return;
    }
    let Some(permit) = inbound_permit(services) else {
        let _ = client.try_respond(channel, crate::messaging::rate_limited_response());
        return;
    };
    let (messaging, client, guard) = (
        services.messaging.clone(),
        client.clone(),
        services.guard.clone(),
    );
    tokio::spawn(async move {
        // A batch frame costs one token per envelope (the first was taken).
        let extra = crate::messaging::batch_len(&payload).saturating_sub(1);
        let extra = u32::try_from(extra).unwrap_or(u32::MAX);
        if extra > 0 && !guard.allow_n(peer, Protocol::Msg, extra).await {
            let _ = client
                .respond(channel, crate::messaging::rate_limited_response())
                .await;
            drop(permit);
            return;
        }
        let response = messaging.handle_inbound(peer, payload).await;
        if let Some(conduct) = crate::messaging::conduct_of(&response) {
            guard.record(peer, conduct).await;
        }
        let _ = client.respond(channel, response).await;
        drop(permit);
    });
}

/// An inbound `/rhizo/mailbox/1` request.
async fn on_mailbox(
    services: &Services,
    peer: PeerId,
    payload: Vec<u8>,
    channel: rhizo_net::ResponseChannel<Vec<u8>>,
) {
    let client = &services.client;
    if !services.guard.allow(peer, Protocol::Mailbox).await {
        let _ = client.try_respond_mailbox(channel, crate::mailbox::rate_limited_response());
        return;
    }
    let Some(permit) = inbound_permit(services) else {
        let _ = client.try_respond_mailbox(channel, crate::mailbox::rate_limited_response());
        return;
    };
    // The replica's own bound: when full it answers RATE_LIMITED at once.
    let admitted = match services.mailbox.try_admit() {
        Ok(admitted) => admitted,
        Err(busy) => {
            let _ = client.try_respond_mailbox(channel, busy);
            return;
        }
    };
    let (mailbox, client) = (services.mailbox.clone(), client.clone());
    tokio::spawn(async move {
        let response = mailbox.handle_inbound(admitted, peer, payload).await;
        let _ = client.respond_mailbox(channel, response).await;
        drop(permit);
    });
}

/// An inbound `/rhizo/pex/1` request: a sample of our peer book, read on a database reader.
async fn on_pex(services: &Services, peer: PeerId, channel: rhizo_net::ResponseChannel<Vec<u8>>) {
    let client = &services.client;
    if !services.guard.allow(peer, Protocol::Pex).await {
        let _ = client.try_respond_pex(channel, Vec::new());
        return;
    }
    let Some(permit) = inbound_permit(services) else {
        let _ = client.try_respond_pex(channel, Vec::new());
        return;
    };
    let (db, client) = (services.db.clone(), client.clone());
    tokio::spawn(async move {
        let answer = db
            .read(move |r| Ok::<_, DbError>(crate::pex::sample(r, &peer)))
            .await
            .unwrap_or_default();
        let _ = client.respond_pex(channel, answer).await;
        drop(permit);
    });
}

/// A permit to handle one more inbound request now, if a handler is free; when none is, the
/// refusal is counted (the caller answers at once rather than waiting for one).
fn inbound_permit(services: &Services) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match services.inbound_limit.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => {
            services.client.count_busy_refusal();
            None
        }
    }
}
