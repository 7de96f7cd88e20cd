//! The side of `/rhizo/link/1` that holds the root key: the hello (both sides prove the ticket's
//! secret), then the certificate.

use libp2p::{Multiaddr, PeerId};
use rhizo_core::{
    DeviceCertificate, DevicePublicKey,
    link::{LinkRequest, LinkResponse, LinkRole, LinkTicket},
};
use rhizo_engine::contacts::peer_id_of_device;

use super::DeviceError;

/// The new device's PeerId and the ticket's addresses that parse (`/p2p/` added).
fn target(ticket: &LinkTicket) -> Result<(PeerId, Vec<Multiaddr>), DeviceError> {
    let peer = peer_id_of_device(&ticket.device_pk()).ok_or(DeviceError::BadTicket(
        rhizo_core::link::LinkError::Malformed("device key"),
    ))?;
    let addrs: Vec<Multiaddr> = ticket
        .addrs()
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .map(|a| a.with_p2p(peer).unwrap_or_else(|a| a))
        .collect();
    if addrs.is_empty() {
        return Err(DeviceError::Unreachable(
            "the ticket lists no usable address".into(),
        ));
    }
    Ok((peer, addrs))
}

/// Sends one request and checks the answer's proof.
async fn exchange(
    client: &rhizo_net::Client,
    me: &DevicePublicKey,
    ticket: &LinkTicket,
    certificate: Option<DeviceCertificate>,
) -> Result<(), DeviceError> {
    let (peer, addrs) = target(ticket)?;
    let device = ticket.device_pk();
    let request = LinkRequest {
        primary_pk: *me,
        proof: ticket.secret().proof(LinkRole::Primary, me, &device),
        certificate,
    };
    // The dial authenticates the peer as the ticket's key (Noise); another key fails it.
    let answer = client
        .link_request(peer, addrs, request.encode())
        .await
        .map_err(|e| DeviceError::Unreachable(e.to_string()))?;
    match LinkResponse::decode(&answer).map_err(|_| DeviceError::WrongProof)? {
        LinkResponse::Refused(why) => Err(DeviceError::Refused(why)),
        LinkResponse::Accepted(proof) => ticket
            .secret()
            .verify(LinkRole::Device, me, &device, &proof)
            .map_err(|_| DeviceError::WrongProof),
    }
}

/// The hello: both sides prove they hold the ticket's secret; nothing is issued yet.
pub(crate) async fn hello(
    client: &rhizo_net::Client,
    me: &DevicePublicKey,
    ticket: &LinkTicket,
) -> Result<(), DeviceError> {
    exchange(client, me, ticket, None).await
}

/// Sends the new device its certificate; `Ok` once it has stored it.
pub(crate) async fn send_certificate(
    client: &rhizo_net::Client,
    me: &DevicePublicKey,
    ticket: &LinkTicket,
    certificate: DeviceCertificate,
) -> Result<(), DeviceError> {
    exchange(client, me, ticket, Some(certificate)).await
}
