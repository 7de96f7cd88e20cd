//! `/rhizo/msg/1` and `/rhizo/mailbox/1`: one request, one response, each a length-prefixed
//! byte frame.
//!
//! ```text
//! frame = length (u32, big-endian) ‖ bytes[length]      length ≤ the direction's limit
//! ```
//!
//! The protocols share the [`FrameCodec`]; each has its own limits, checked on the length
//! prefix before any byte of the body is read (a peer claiming 4 GiB costs nothing) and before
//! anything is written (an oversized frame never leaves this node).
//!
//! - `/rhizo/msg/1` ([`FrameCodec::msg`]): the request carries an encoded envelope, the response
//!   a signed delivery receipt or an error; both ≤ [`MAX_FRAME_BYTES`].
//! - `/rhizo/mailbox/1` ([`FrameCodec::mailbox`]): store, fetch and delete requests to another
//!   node's mailbox replica (≤ [`MAX_MAILBOX_REQUEST_BYTES`]) and their answers, which may carry
//!   many envelopes (≤ [`MAX_MAILBOX_RESPONSE_BYTES`]).
//! - `/rhizo/pex/1` ([`FrameCodec::pex`]): peer exchange; an empty request
//!   (≤ [`MAX_PEX_REQUEST_BYTES`], body ignored) and a sample of known peers in answer
//!   (≤ [`MAX_PEX_RESPONSE_BYTES`]), encoded by the node.
//!
//! This module is the wire format only; what the bytes mean is rhizo-core's business.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// The message protocol id.
pub const MSG_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo/msg/1");
/// Largest `/rhizo/msg/1` frame, either direction: an envelope is at most 256 KiB; a little
/// headroom, no more.
pub const MAX_FRAME_BYTES: usize = 512 * 1024;

/// The mailbox protocol id.
pub const MAILBOX_PROTOCOL: &str = "/rhizo/mailbox/1";
/// Largest `/rhizo/mailbox/1` request: one envelope (≤ 256 KiB) plus the request around it.
pub const MAX_MAILBOX_REQUEST_BYTES: usize = 320 * 1024;
/// Largest `/rhizo/mailbox/1` response: a page of fetched envelopes.
pub const MAX_MAILBOX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The peer-exchange protocol id: one peer asks another for a sample of the peers it knows.
pub const PEX_PROTOCOL: &str = "/rhizo/pex/1";
/// Largest `/rhizo/pex/1` request: the request carries nothing (its body is ignored).
pub const MAX_PEX_REQUEST_BYTES: usize = 64;
/// Largest `/rhizo/pex/1` response: a sample of peers with a few addresses each.
pub const MAX_PEX_RESPONSE_BYTES: usize = 16 * 1024;

/// The codec: raw byte frames both ways, each direction bounded by its own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    /// Largest request frame read or written, in bytes.
    pub max_request: usize,
    /// Largest response frame read or written, in bytes.
    pub max_response: usize,
}

impl FrameCodec {
    /// The `/rhizo/msg/1` limits: [`MAX_FRAME_BYTES`] both ways.
    pub const fn msg() -> Self {
        Self {
            max_request: MAX_FRAME_BYTES,
            max_response: MAX_FRAME_BYTES,
        }
    }

    /// The `/rhizo/pex/1` limits: [`MAX_PEX_REQUEST_BYTES`] for requests,
    /// [`MAX_PEX_RESPONSE_BYTES`] for responses.
    pub const fn pex() -> Self {
        Self {
            max_request: MAX_PEX_REQUEST_BYTES,
            max_response: MAX_PEX_RESPONSE_BYTES,
        }
    }

    /// The `/rhizo/mailbox/1` limits: [`MAX_MAILBOX_REQUEST_BYTES`] for requests,
    /// [`MAX_MAILBOX_RESPONSE_BYTES`] for responses.
    pub const fn mailbox() -> Self {
        Self {
            max_request: MAX_MAILBOX_REQUEST_BYTES,
            max_response: MAX_MAILBOX_RESPONSE_BYTES,
        }
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
    max: usize,
) -> io::Result<()> {
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds the limit of {max}", bytes.len()),
        ));
    }
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max_request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.max_response).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use request_response::Codec;

    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_claims_are_refused_before_reading() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            write_frame(&mut buf, b"hello", MAX_FRAME_BYTES)
                .await
                .unwrap();
            let bytes = buf.into_inner();
            assert_eq!(&bytes[..4], &5u32.to_be_bytes());
            let mut rd = Cursor::new(bytes);
            assert_eq!(
                read_frame(&mut rd, MAX_FRAME_BYTES).await.unwrap(),
                b"hello"
            );

            // A 4 GiB claim with no body: refused on the length alone.
            let mut rd = Cursor::new(u32::MAX.to_be_bytes().to_vec());
            let err = read_frame(&mut rd, MAX_FRAME_BYTES).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            // A truncated body is an error, not a hang or a panic.
            let mut rd = Cursor::new([0, 0, 0, 9, 1, 2].to_vec());
            assert!(read_frame(&mut rd, MAX_FRAME_BYTES).await.is_err());
        });
    }

    /// A length prefix alone (no body) claiming `len` bytes.
    fn claim(len: usize) -> Cursor<Vec<u8>> {
        Cursor::new(u32::try_from(len).unwrap().to_be_bytes().to_vec())
    }

    #[test]
    fn msg_codec_limits_are_unchanged() {
        assert_eq!(FrameCodec::msg().max_request, 512 * 1024);
        assert_eq!(FrameCodec::msg().max_response, 512 * 1024);
        futures::executor::block_on(async {
            let mut codec = FrameCodec::msg();
            let err = codec
                .read_request(&MSG_PROTOCOL, &mut claim(MAX_FRAME_BYTES + 1))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let err = codec
                .read_response(&MSG_PROTOCOL, &mut claim(MAX_FRAME_BYTES + 1))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            // At the limit, the claim passes the check and only the missing body fails.
            let err = codec
                .read_request(&MSG_PROTOCOL, &mut claim(MAX_FRAME_BYTES))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn mailbox_codec_has_its_own_limit_per_direction() {
        let proto = StreamProtocol::new(MAILBOX_PROTOCOL);
        futures::executor::block_on(async {
            let mut codec = FrameCodec::mailbox();
            // Requests: refused above 320 KiB, on the prefix alone.
            let err = codec
                .read_request(&proto, &mut claim(MAX_MAILBOX_REQUEST_BYTES + 1))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let err = codec
                .read_request(&proto, &mut claim(MAX_MAILBOX_REQUEST_BYTES))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            // Responses: a claim above the request limit but within 1 MiB passes the check.
            let err = codec
                .read_response(&proto, &mut claim(MAX_MAILBOX_RESPONSE_BYTES))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            let err = codec
                .read_response(&proto, &mut claim(MAX_MAILBOX_RESPONSE_BYTES + 1))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let err = codec
                .read_response(&proto, &mut claim(u32::MAX as usize))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);

            // Writing: an oversized request never reaches the wire.
            let mut out = Cursor::new(Vec::new());
            let err = codec
                .write_request(&proto, &mut out, vec![0; MAX_MAILBOX_REQUEST_BYTES + 1])
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(out.into_inner().is_empty());
            // A full-size response round-trips.
            let mut out = Cursor::new(Vec::new());
            let big = vec![7u8; MAX_MAILBOX_RESPONSE_BYTES];
            codec
                .write_response(&proto, &mut out, big.clone())
                .await
                .unwrap();
            let mut rd = Cursor::new(out.into_inner());
            assert_eq!(codec.read_response(&proto, &mut rd).await.unwrap(), big);
        });
    }
}
