//! `/rhizo/light/1`: raw streams that splice a light client's WebSocket, held by a gateway node,
//! to the client's home node (issue 17). The bytes are the paired channel's (length-prefixed by
//! the node, see `rhizo_node::gateway`): this layer only opens and accepts the streams.

use libp2p::{PeerId, Stream, StreamProtocol};

use crate::{Client, NetError};

/// The protocol of light-client splices.
pub const LIGHT_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo/light/1");

/// The handle on the swarm's stream behaviour a [`Client`] carries.
#[derive(Clone)]
pub(crate) struct Streams(pub(crate) libp2p_stream::Control);

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streams")
    }
}

/// Inbound `/rhizo/light/1` streams: `(gateway, stream)` pairs.
pub type IncomingLightStreams = libp2p_stream::IncomingStreams;

impl Client {
    /// Opens a `/rhizo/light/1` stream to `peer` (dialling it if it is not connected): the
    /// gateway's side of a splice.
    ///
    /// # Errors
    ///
    /// [`NetError::LightStream`] if the peer cannot be reached or does not speak the protocol,
    /// [`NetError::Stopped`] without a stream behaviour.
    pub async fn open_light_stream(&self, peer: PeerId) -> Result<Stream, NetError> {
        let mut control = self.streams.clone().ok_or(NetError::Stopped)?.0;
        control
            .open_stream(peer, LIGHT_PROTOCOL)
            .await
            .map_err(|e| NetError::LightStream(e.to_string()))
    }

    /// Starts accepting `/rhizo/light/1` streams (once per node): the home node's side.
    ///
    /// # Errors
    ///
    /// [`NetError::LightStream`] if something accepts them already, [`NetError::Stopped`] without
    /// a stream behaviour.
    pub fn accept_light_streams(&self) -> Result<IncomingLightStreams, NetError> {
        let mut control = self.streams.clone().ok_or(NetError::Stopped)?.0;
        control
            .accept(LIGHT_PROTOCOL)
            .map_err(|e| NetError::LightStream(e.to_string()))
    }
}
