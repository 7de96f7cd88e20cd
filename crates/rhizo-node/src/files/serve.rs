//! Answering `/rhizo/file/1`: the rate limit, at most [`MAX_SERVES_PER_PEER`] requests of one
//! peer at once (and [`MAX_SERVING_PEERS`] peers), only members of a conversation the file was
//! sent in, then the chunks with their proofs.

use std::sync::atomic::Ordering;

use libp2p::PeerId;
use rhizo_core::file::wire::{FileRequest, FileStatus};
use rhizo_net::ResponseChannel;
use rhizo_store::DbError;
use tracing::debug;

use super::Files;
use crate::peer_policy::Protocol;

/// Requests of one peer answered at once; more get `Busy` (ask again later).
pub(crate) const MAX_SERVES_PER_PEER: usize = 4;
/// Peers served at once; more get `Busy`.
pub(crate) const MAX_SERVING_PEERS: usize = 64;

/// A peer's slot, given back on drop.
struct Slot<'a> {
    files: &'a Files,
    peer: PeerId,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut serving) = self.files.inner.serving.lock()
            && let Some(n) = serving.get_mut(&self.peer)
        {
            *n -= 1;
            if *n == 0 {
                serving.remove(&self.peer);
            }
        }
    }
}

impl Files {
    fn take_slot(&self, peer: PeerId) -> Option<Slot<'_>> {
        let mut serving = self.inner.serving.lock().ok()?;
        if !serving.contains_key(&peer) && serving.len() >= MAX_SERVING_PEERS {
            return None;
        }
        let n = serving.entry(peer).or_insert(0);
        if *n >= MAX_SERVES_PER_PEER {
            return None;
        }
        *n += 1;
        Some(Slot { files: self, peer })
    }

    /// Answers one inbound `/rhizo/file/1` request.
    pub async fn serve(&self, peer: PeerId, payload: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        let response = self.answer(peer, &payload).await;
        if self
            .inner
            .client
            .respond_file(channel, response)
            .await
            .is_err()
        {
            debug!(%peer, "file response not sent");
        }
    }

    async fn answer(&self, peer: PeerId, payload: &[u8]) -> Vec<u8> {
        if !self.inner.guard.allow(peer, Protocol::File).await {
            return FileStatus::Busy.response();
        }
        let Ok(request) = FileRequest::decode(payload) else {
            return FileStatus::BadRequest.response();
        };
        let Some(_slot) = self.take_slot(peer) else {
            return FileStatus::Busy.response();
        };
        let hash = request.hash;
        let who = peer.to_string();
        let allowed = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.may_fetch(&hash, &who)?) })
            .await;
        if !matches!(allowed, Ok(true)) {
            return FileStatus::Forbidden.response();
        }
        let content = self.inner.content.clone();
        let range = (request.start, request.end);
        let encoded = tokio::task::spawn_blocking(move || {
            let mut out = FileStatus::Ok.response();
            content.encode_chunks(&hash, range, &mut out).map(|()| out)
        })
        .await;
        match encoded {
            Ok(Ok(out)) => {
                self.inner
                    .stats
                    .bytes_served
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                out
            }
            _ => FileStatus::NotFound.response(),
        }
    }
}
