//! Added link latency for the scale lab's memory transport ([`crate::Transport::MemoryDelayed`]):
//! netem does not work in the lab's sandbox, so the delay is put on the raw in-process
//! connection, under Noise and Yamux, where a network would put it.
//!
//! ```text
//!  memory connection ─▶ handshake: each side sends its LinkDelay (16 bytes), reads the other's
//!                   ─▶ Delayed: every chunk read is held until arrival + one-way delay (+ jitter)
//!                      in a queue of at most MAX_QUEUED_BYTES (full: the inner channel is not
//!                      read, so the writer waits, as on a full link)
//! ```
//!
//! A link's one-way delay is the sum of the two ends' [`LinkDelay::one_way`] (each node's access
//! link), so its round-trip time is `2 × (a + b)`. Jitter is drawn per chunk, uniform in
//! `[0, max(jitter_a, jitter_b)]`, and never reorders bytes (a chunk is released no earlier than
//! the one before it). Delay is applied on the reading side only, so the writer's buffers stay
//! those of the memory transport.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

/// Bytes one connection may hold back at most before it stops reading the inner channel.
pub const MAX_QUEUED_BYTES: usize = 1024 * 1024;
/// Bytes read from the inner connection at a time (on the stack, not per connection).
const READ_CHUNK: usize = 16 * 1024;
/// Bytes of the handshake each side sends.
const HANDSHAKE_LEN: usize = 16;

/// One node's share of the latency of every link it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkDelay {
    /// This node's one-way access delay; a link's one-way delay is the sum of both ends'.
    pub one_way: Duration,
    /// Jitter bound: each chunk waits an extra uniform `[0, jitter]` (the larger end's).
    pub jitter: Duration,
    /// Seed of the jitter draws (mixed with the other end's).
    pub seed: u64,
}

impl LinkDelay {
    fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[..4].copy_from_slice(&micros(self.one_way).to_be_bytes());
        out[4..8].copy_from_slice(&micros(self.jitter).to_be_bytes());
        out[8..].copy_from_slice(&self.seed.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8; HANDSHAKE_LEN]) -> Self {
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i..i + 4]);
            u32::from_be_bytes(b)
        };
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&bytes[8..]);
        Self {
            one_way: Duration::from_micros(u64::from(u32_at(0))),
            jitter: Duration::from_micros(u64::from(u32_at(4))),
            seed: u64::from_be_bytes(seed),
        }
    }

    /// The link both ends see: summed one-way delay, the larger jitter, a mixed seed.
    fn link(&self, other: &Self) -> Self {
        Self {
            one_way: self.one_way + other.one_way,
            jitter: self.jitter.max(other.jitter),
            seed: (self.seed ^ other.seed.rotate_left(32)) | 1,
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Exchanges [`LinkDelay`]s over a fresh connection and wraps it in [`Delayed`].
pub(crate) async fn handshake<C>(mut conn: C, own: LinkDelay) -> io::Result<Delayed<C>>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_all(&own.encode()).await?;
    conn.flush().await?;
    let mut theirs = [0u8; HANDSHAKE_LEN];
    conn.read_exact(&mut theirs).await?;
    Ok(Delayed::new(conn, own.link(&LinkDelay::decode(&theirs))))
}

/// A connection whose reads come out `link.one_way` (+ jitter) after they arrived.
#[derive(Debug)]
pub struct Delayed<C> {
    inner: C,
    link: LinkDelay,
    rng: u64,
    queue: VecDeque<(Instant, Vec<u8>)>,
    queued_bytes: usize,
    /// Bytes of the queue's front chunk already handed out.
    front_offset: usize,
    last_release: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    inner_done: bool,
}

impl<C> Delayed<C> {
    /// Wraps `inner`: every chunk read from it is held for `link.one_way` plus jitter.
    pub fn new(inner: C, link: LinkDelay) -> Self {
        Self {
            inner,
            link,
            rng: link.seed | 1,
            queue: VecDeque::new(),
            queued_bytes: 0,
            front_offset: 0,
            last_release: None,
            timer: None,
            inner_done: false,
        }
    }

    /// The link this connection simulates.
    pub fn link(&self) -> LinkDelay {
        self.link
    }

    /// xorshift64: cheap, and good enough for jitter.
    fn next_jitter(&mut self) -> Duration {
        let jitter = micros(self.link.jitter);
        if jitter == 0 {
            return Duration::ZERO;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Duration::from_micros(self.rng % (u64::from(jitter) + 1))
    }

    fn enqueue(&mut self, chunk: &[u8]) {
        let mut release = Instant::now() + self.link.one_way + self.next_jitter();
        if let Some(last) = self.last_release {
            release = release.max(last);
        }
        self.last_release = Some(release);
        self.queued_bytes += chunk.len();
        self.queue.push_back((release, chunk.to_vec()));
    }

    /// Copies from the front chunk into `buf` (the front is due).
    fn take_front(&mut self, buf: &mut [u8]) -> usize {
        let Some((_, chunk)) = self.queue.front() else {
            return 0;
        };
        let rest = &chunk[self.front_offset..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.front_offset += n;
        if self.front_offset == chunk.len() {
            self.queued_bytes -= chunk.len();
            self.queue.pop_front();
            self.front_offset = 0;
        }
        n
    }
}

impl<C: AsyncRead + Unpin> Delayed<C> {
    /// Reads what the inner connection has (while the queue has room) into the queue.
    fn fill(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let mut chunk = [0u8; READ_CHUNK];
        while !self.inner_done && self.queued_bytes < MAX_QUEUED_BYTES {
            match Pin::new(&mut self.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => self.inner_done = true,
                Poll::Ready(Ok(n)) => self.enqueue(&chunk[..n]),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        Ok(())
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Delayed<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.link.one_way.is_zero() && this.link.jitter.is_zero() && this.queue.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.fill(cx)?;
        loop {
            let Some(&(release, _)) = this.queue.front() else {
                // Nothing held: end of stream once the inner one ended, else wait for it.
                return if this.inner_done {
                    Poll::Ready(Ok(0))
                } else {
                    Poll::Pending
                };
            };
            if release <= Instant::now() {
                return Poll::Ready(Ok(this.take_front(buf)));
            }
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(release)));
            timer.as_mut().reset(release);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Delayed<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests;
