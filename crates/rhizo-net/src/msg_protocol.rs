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
//! A frame's body is read as its bytes arrive, into a buffer that grows with them (never
//! allocated at its declared length up front), and the bodies being read on one connection
//! share a budget of [`MAX_INBOUND_FRAME_BYTES_PER_CONNECTION`] (per protocol): a peer that
//! declares 64 × 512 KiB and trickles a few bytes costs a few bytes.
//!
//! This module is the wire format only; what the bytes mean is rhizo-core's business.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// The message protocol id: one bare envelope per request.
pub const MSG_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo/msg/1");
/// The message protocol with batch frames: a request is a bare envelope or a batch frame. A
/// node that takes batch frames speaks it (and announces it through identify); a batch frame
/// is never sent on [`MSG_PROTOCOL`].
pub const MSG_BATCH_PROTOCOL: StreamProtocol = StreamProtocol::new("/rhizo/msg/2");
/// The first byte of a batch frame (rhizo-core's `envelope::BATCH_FRAME_MARKER`; a bare
/// envelope starts with `0x08`).
pub const BATCH_FRAME_MARKER: u8 = 0xB1;
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

/// The device-linking protocol id: a device with the root key links a new one (one hello and
/// one certificate request, each answered once; see rhizo-core `link`).
pub const LINK_PROTOCOL: &str = "/rhizo/link/1";
/// Largest `/rhizo/link/1` request or response (a key, a proof, a 137-byte certificate).
pub const MAX_LINK_MESSAGE_BYTES: usize = 4096;
/// Protocol id of file content transfer (chunk ranges of a file by its hash; issue 16).
pub const FILE_PROTOCOL: &str = "/rhizo/file/1";
/// Largest `/rhizo/file/1` request (rhizo-core's is 49 bytes).
pub const MAX_FILE_REQUEST_BYTES: usize = 64;
/// Largest `/rhizo/file/1` response: 16 chunks of 64 KiB with their proofs (rhizo-core's
/// `file::wire::MAX_RESPONSE_BYTES`, 1,114,129 bytes), rounded up.
pub const MAX_FILE_RESPONSE_BYTES: usize = 1088 * 1024 + 1024;

/// Most frame-body bytes one connection may have in flight (read but not yet handed up) at once,
/// per protocol: 16 full `/rhizo/msg/1` frames. Without it, 64 concurrent streams (the
/// request-response limit) could hold 64 × 512 KiB = 32 MiB per connection.
pub const MAX_INBOUND_FRAME_BYTES_PER_CONNECTION: usize = 16 * MAX_FRAME_BYTES;
/// A frame body is read in steps of at most this many bytes; its buffer starts at most this
/// big and grows (doubling, capped at the declared length) only as bytes arrive.
const FRAME_READ_STEP: usize = 16 * 1024;

/// The codec: raw byte frames both ways, each direction bounded by its own limit.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    /// Largest request frame read or written, in bytes.
    pub max_request: usize,
    /// Largest response frame read or written, in bytes.
    pub max_response: usize,
    /// The frame bytes being read on this codec's connection.
    in_flight: ConnectionBudget,
}

impl FrameCodec {
    /// The `/rhizo/msg/1` limits: [`MAX_FRAME_BYTES`] both ways.
    pub const fn msg() -> Self {
        Self::with_limits(MAX_FRAME_BYTES, MAX_FRAME_BYTES)
    }

    /// The `/rhizo/pex/1` limits: [`MAX_PEX_REQUEST_BYTES`] for requests,
    /// [`MAX_PEX_RESPONSE_BYTES`] for responses.
    pub const fn pex() -> Self {
        Self::with_limits(MAX_PEX_REQUEST_BYTES, MAX_PEX_RESPONSE_BYTES)
    }

    /// The `/rhizo/link/1` limits: [`MAX_LINK_MESSAGE_BYTES`] both ways.
    pub const fn link() -> Self {
        Self::with_limits(MAX_LINK_MESSAGE_BYTES, MAX_LINK_MESSAGE_BYTES)
    }

    /// The `/rhizo/file/1` limits: [`MAX_FILE_REQUEST_BYTES`] for requests,
    /// [`MAX_FILE_RESPONSE_BYTES`] for responses.
    pub const fn file() -> Self {
        Self::with_limits(MAX_FILE_REQUEST_BYTES, MAX_FILE_RESPONSE_BYTES)
    }

    /// The `/rhizo/mailbox/1` limits: [`MAX_MAILBOX_REQUEST_BYTES`] for requests,
    /// [`MAX_MAILBOX_RESPONSE_BYTES`] for responses.
    pub const fn mailbox() -> Self {
        Self::with_limits(MAX_MAILBOX_REQUEST_BYTES, MAX_MAILBOX_RESPONSE_BYTES)
    }

    const fn with_limits(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
            in_flight: ConnectionBudget {
                shared: None,
                limit: MAX_INBOUND_FRAME_BYTES_PER_CONNECTION,
            },
        }
    }
}

/// The budget of frame bytes in flight on one connection.
///
/// libp2p's request-response behaviour clones its codec once per connection (for the
/// connection's handler) and the handler clones that once per stream. So a clone of the
/// behaviour's codec (no counter yet) starts a fresh counter, and a clone of a handler's codec
/// shares the handler's: one counter per connection, shared by its streams.
#[derive(Debug)]
struct ConnectionBudget {
    shared: Option<Arc<AtomicUsize>>,
    limit: usize,
}

impl Clone for ConnectionBudget {
    fn clone(&self) -> Self {
        Self {
            shared: Some(self.shared.clone().unwrap_or_default()),
            limit: self.limit,
        }
    }
}

impl ConnectionBudget {
    /// A claim on the budget, returned when dropped (the frame was handed up or failed).
    fn claim(&self) -> BudgetClaim {
        BudgetClaim {
            counter: self.shared.clone().unwrap_or_default(),
            limit: self.limit,
            held: 0,
        }
    }
}

/// Bytes of a [`ConnectionBudget`] held by one frame being read.
struct BudgetClaim {
    counter: Arc<AtomicUsize>,
    limit: usize,
    held: usize,
}

impl BudgetClaim {
    /// Takes `n` more bytes, or fails if the connection would go over its budget.
    fn take(&mut self, n: usize) -> io::Result<()> {
        let before = self.counter.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > self.limit {
            self.counter.fetch_sub(n, Ordering::AcqRel);
            return Err(io::Error::new(
                io::ErrorKind::QuotaExceeded,
                format!(
                    "the connection's inbound frames exceed {} bytes in flight",
                    self.limit
                ),
            ));
        }
        self.held += n;
        Ok(())
    }

    /// Returns `n` bytes taken but not received.
    fn give_back(&mut self, n: usize) {
        let n = n.min(self.held);
        self.counter.fetch_sub(n, Ordering::AcqRel);
        self.held -= n;
    }
}

impl Drop for BudgetClaim {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.held, Ordering::AcqRel);
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
    budget: &ConnectionBudget,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    read_frame_into(io, max, budget, &mut buf).await?;
    Ok(buf)
}

/// Reads one frame into `buf` (cleared first). The body is read in steps of at most
/// [`FRAME_READ_STEP`] into the buffer's spare capacity; each step is claimed from `budget`
/// before it is read (what did not arrive is given back), and `buf` grows (doubling) only when
/// it is full, so its capacity stays within one step or twice the bytes received.
async fn read_frame_into<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
    budget: &ConnectionBudget,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    buf.clear();
    buf.reserve_exact(len.min(FRAME_READ_STEP));
    let mut claim = budget.claim();
    while buf.len() < len {
        let start = buf.len();
        if start == buf.capacity() {
            // Full: double (at least one step), never beyond the declared length.
            let grown = start.saturating_mul(2).max(FRAME_READ_STEP).min(len);
            buf.reserve_exact(grown - start);
        }
        let step = (buf.capacity() - start)
            .min(len - start)
            .min(FRAME_READ_STEP);
        claim.take(step)?;
        buf.resize(start + step, 0);
        let n = io.read(&mut buf[start..]).await?;
        buf.truncate(start + n);
        claim.give_back(step - n);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
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
        read_frame(io, self.max_request, &self.in_flight).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response, &self.in_flight).await
    }

    async fn write_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if *protocol == MSG_PROTOCOL && req.first() == Some(&BATCH_FRAME_MARKER) {
            // The peer does not speak `/rhizo/msg/2`: it would refuse the frame as malformed.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the peer takes no batch frames (it does not speak /rhizo/msg/2)",
            ));
        }
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

    #[tokio::test]
    async fn no_batch_frame_is_written_on_msg_1() {
        let mut codec = FrameCodec::msg();
        let batch = vec![BATCH_FRAME_MARKER, 1, 2, 3];
        let mut out = Vec::new();
        let refused = request_response::Codec::write_request(
            &mut codec,
            &MSG_PROTOCOL,
            &mut futures::io::Cursor::new(&mut out),
            batch.clone(),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::Unsupported);
        assert!(out.is_empty(), "nothing was written");
        for (protocol, frame) in [(MSG_BATCH_PROTOCOL, batch), (MSG_PROTOCOL, vec![0x08, 1])] {
            let mut out = Vec::new();
            request_response::Codec::write_request(
                &mut codec,
                &protocol,
                &mut futures::io::Cursor::new(&mut out),
                frame.clone(),
            )
            .await
            .unwrap();
            assert_eq!(&out[4..], &frame[..]);
        }
    }

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
                read_frame(&mut rd, MAX_FRAME_BYTES, &FrameCodec::msg().in_flight)
                    .await
                    .unwrap(),
                b"hello"
            );

            // A 4 GiB claim with no body: refused on the length alone.
            let mut rd = Cursor::new(u32::MAX.to_be_bytes().to_vec());
            let err = read_frame(&mut rd, MAX_FRAME_BYTES, &FrameCodec::msg().in_flight)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            // A truncated body is an error, not a hang or a panic.
            let mut rd = Cursor::new([0, 0, 0, 9, 1, 2].to_vec());
            assert!(
                read_frame(&mut rd, MAX_FRAME_BYTES, &FrameCodec::msg().in_flight)
                    .await
                    .is_err()
            );
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

    /// An in-memory stream that hands out at most `step` bytes per read.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            out: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = out.len().min(self.step).min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn a_huge_declared_length_with_few_bytes_allocates_only_what_arrived() {
        futures::executor::block_on(async {
            let codec = FrameCodec::msg().clone();
            // Claims the largest frame, sends 100 bytes one at a time, then stops.
            let mut bytes = u32::try_from(MAX_FRAME_BYTES)
                .unwrap()
                .to_be_bytes()
                .to_vec();
            bytes.extend_from_slice(&[7; 100]);
            let mut peer = Trickle {
                bytes,
                at: 0,
                step: 1,
            };
            let mut buf = Vec::new();
            let err = read_frame_into(&mut peer, MAX_FRAME_BYTES, &codec.in_flight, &mut buf)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(buf.len(), 100);
            // Not the declared 512 KiB: one read step at most.
            assert!(buf.capacity() <= FRAME_READ_STEP, "{}", buf.capacity());
            // Nothing stays claimed on the connection after the failure.
            assert_eq!(budget_used(&codec), 0);

            // A frame that does arrive in full grows to exactly its size.
            let body = vec![9u8; 3 * FRAME_READ_STEP + 5];
            let mut bytes = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let mut peer = Trickle {
                bytes,
                at: 0,
                step: 1000,
            };
            read_frame_into(&mut peer, MAX_FRAME_BYTES, &codec.in_flight, &mut buf)
                .await
                .unwrap();
            assert_eq!(buf, body);
            assert!(buf.capacity() <= body.len(), "{}", buf.capacity());
            assert_eq!(budget_used(&codec), 0);
        });
    }

    fn budget_used(codec: &FrameCodec) -> usize {
        codec
            .in_flight
            .shared
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Acquire))
    }

    #[test]
    fn the_streams_of_one_connection_share_a_budget_of_bytes_in_flight() {
        futures::executor::block_on(async {
            // The behaviour's codec, cloned for a connection's handler, cloned per stream.
            let behaviour = FrameCodec::msg();
            let connection = behaviour.clone();
            let (stream_a, mut stream_b) = (connection.clone(), connection.clone());
            let other_connection = behaviour.clone();
            let frame = |len: usize| {
                let mut bytes = u32::try_from(len).unwrap().to_be_bytes().to_vec();
                bytes.extend(std::iter::repeat_n(1u8, len));
                Cursor::new(bytes)
            };
            // Stream A has nearly the whole budget in flight (a frame still arriving).
            let mut held = stream_a.in_flight.claim();
            held.take(MAX_INBOUND_FRAME_BYTES_PER_CONNECTION - 10)
                .unwrap();
            assert_eq!(
                budget_used(&connection),
                MAX_INBOUND_FRAME_BYTES_PER_CONNECTION - 10
            );
            // Stream B on the same connection cannot read another 100 bytes...
            let err = stream_b
                .read_request(&MSG_PROTOCOL, &mut frame(100))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::QuotaExceeded);
            // ...while another connection can.
            let mut other = other_connection.clone();
            assert_eq!(
                other
                    .read_request(&MSG_PROTOCOL, &mut frame(100))
                    .await
                    .unwrap()
                    .len(),
                100
            );
            // Once A's frame is handed up (or fails), B reads again.
            drop(held);
            assert_eq!(budget_used(&connection), 0);
            assert_eq!(
                stream_b
                    .read_request(&MSG_PROTOCOL, &mut frame(100))
                    .await
                    .unwrap()
                    .len(),
                100
            );
        });
    }
}
