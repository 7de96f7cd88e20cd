//! `/rhizo/msg/1`: one request, one response, each a length-prefixed byte frame.
//!
//! ```text
//! frame = length (u32, big-endian) ‖ bytes[length]      length ≤ MAX_FRAME_BYTES
//! ```
//!
//! The request carries an encoded envelope; the response a signed delivery receipt or an error.
//! This module is the wire format only; what the bytes mean is rhizo-core's business.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// The protocol id.
pub const MSG_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo/msg/1");
/// Largest frame accepted: an envelope is at most 256 KiB; a little headroom, no more. Checked
/// before any byte of the body is read, so a peer claiming 4 GiB costs nothing.
pub const MAX_FRAME_BYTES: usize = 512 * 1024;

/// The codec: raw byte frames both ways.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES}",
                bytes.len()
            ),
        ));
    }
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await?;
    io.close().await
}

impl request_response::Codec for MsgCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
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
        write_frame(io, &req).await
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
        write_frame(io, &res).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_claims_are_refused_before_reading() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            write_frame(&mut buf, b"hello").await.unwrap();
            let bytes = buf.into_inner();
            assert_eq!(&bytes[..4], &5u32.to_be_bytes());
            let mut rd = Cursor::new(bytes);
            assert_eq!(read_frame(&mut rd).await.unwrap(), b"hello");

            // A 4 GiB claim with no body: refused on the length alone.
            let mut rd = Cursor::new(u32::MAX.to_be_bytes().to_vec());
            let err = read_frame(&mut rd).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            // A truncated body is an error, not a hang or a panic.
            let mut rd = Cursor::new([0, 0, 0, 9, 1, 2].to_vec());
            assert!(read_frame(&mut rd).await.is_err());
        });
    }
}
