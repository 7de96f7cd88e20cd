//! The new device's side of `/rhizo/link/1`: check the requester's proof against the open
//! ticket's secret, answer with ours, and on the certificate become a linked device.

use libp2p::PeerId;
use rhizo_core::{
    DeviceKey,
    link::{LINK_TICKET_TTL_SECS, LinkRefusal, LinkRequest, LinkResponse, LinkRole},
};
use rhizo_engine::contacts::peer_id_of_device;
use tracing::{info, warn};

use crate::data_dir::{CompanionIdentity, DataDir};

/// What answering one request did.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The response frame.
    pub(crate) response: Vec<u8>,
    /// Set when this request linked the device.
    pub(crate) linked: Option<CompanionIdentity>,
}

fn refused(why: LinkRefusal) -> Answer {
    Answer {
        response: LinkResponse::Refused(why).encode(),
        linked: None,
    }
}

/// Answers one `/rhizo/link/1` request from `peer` (authenticated by Noise) at `now` (Unix
/// seconds) on the pending device `device` of `dir`. File work only (small files).
pub(crate) fn answer_link(
    dir: &DataDir,
    device: &DeviceKey,
    peer: PeerId,
    payload: &[u8],
    now: u64,
) -> Answer {
    let Ok(request) = LinkRequest::decode(payload) else {
        return refused(LinkRefusal::Malformed);
    };
    // The key the proof names must be the one the connection authenticated.
    if peer_id_of_device(&request.primary_pk) != Some(peer) {
        return refused(LinkRefusal::WrongProof);
    }
    let Some((secret, created_at)) = dir.read_link_secret() else {
        return refused(LinkRefusal::NoTicket);
    };
    if !dir.is_pending_link() || now > created_at.saturating_add(LINK_TICKET_TTL_SECS) {
        return refused(LinkRefusal::NoTicket);
    }
    let ours = device.public();
    if secret
        .verify(
            LinkRole::Primary,
            &request.primary_pk,
            &ours,
            &request.proof,
        )
        .is_err()
    {
        warn!(%peer, "link request with a wrong proof refused");
        return refused(LinkRefusal::WrongProof);
    }
    let proof = secret.proof(LinkRole::Device, &request.primary_pk, &ours);
    let Some(certificate) = request.certificate else {
        return Answer {
            response: LinkResponse::Accepted(proof).encode(),
            linked: None,
        };
    };
    if certificate.device() != ours || certificate.verify().is_err() {
        return refused(LinkRefusal::WrongDevice);
    }
    match dir.complete_link(device, &certificate) {
        Ok(companion) => {
            info!(uid = %certificate.root().uid(), "this device is now linked");
            Answer {
                response: LinkResponse::Accepted(proof).encode(),
                linked: Some(companion),
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot write the linked identity");
            refused(LinkRefusal::NoTicket)
        }
    }
}
