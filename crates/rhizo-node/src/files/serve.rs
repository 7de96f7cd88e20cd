//! Answering `/rhizo/file/1`: the rate limit, at most [`MAX_SERVES_PER_PEER`] requests of one
//! peer at once (and [`MAX_SERVING_PEERS`] peers), only members of a conversation the file was
//! sent in, then the chunks with their proofs.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
/// Longest a served request is held under `HOLD_ENV` (tests only).
const HOLD_FOR_TESTS: Duration = Duration::from_secs(60);

/// The requests being answered, by peer: at most [`MAX_SERVES_PER_PEER`] of one peer and
/// [`MAX_SERVING_PEERS`] peers at once.
#[derive(Debug, Default)]
pub(crate) struct ServingSlots(HashMap<PeerId, usize>);

impl ServingSlots {
    /// Takes a slot for `peer`; `false` when it or the node is at its limit.
    fn take(&mut self, peer: PeerId) -> bool {
        if !self.0.contains_key(&peer) && self.0.len() >= MAX_SERVING_PEERS {
            return false;
        }
        let n = self.0.entry(peer).or_insert(0);
        if *n >= MAX_SERVES_PER_PEER {
            return false;
        }
        *n += 1;
        true
    }

    /// Slots taken now, over all peers.
    pub(crate) fn in_use(&self) -> usize {
        self.0.values().sum()
    }

    fn give_back(&mut self, peer: &PeerId) {
        if let Some(n) = self.0.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(peer);
            }
        }
    }
}

/// A peer's slot, given back on drop.
struct Slot<'a> {
    files: &'a Files,
    peer: PeerId,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut serving) = self.files.inner.serving.lock() {
            serving.give_back(&self.peer);
        }
    }
}

/// Peers allowed to fetch a group's file, remembered so a fetch's many range requests do
/// not each read the group's MLS roster.
const MAX_GRANTS: usize = 1024;
/// How long a grant stands (a member removed meanwhile is refused after at most this).
const GRANT_TTL: Duration = Duration::from_secs(60);

/// (peer, content hash) → when the grant was made.
#[derive(Debug, Default)]
pub(crate) struct Grants(HashMap<(PeerId, [u8; 32]), Instant>);

impl Grants {
    fn granted(&self, peer: PeerId, hash: [u8; 32]) -> bool {
        self.0
            .get(&(peer, hash))
            .is_some_and(|at| at.elapsed() < GRANT_TTL)
    }

    fn grant(&mut self, peer: PeerId, hash: [u8; 32]) {
        if self.0.len() >= MAX_GRANTS {
            self.0.retain(|_, at| at.elapsed() < GRANT_TTL);
            if self.0.len() >= MAX_GRANTS {
                self.0.clear();
            }
        }
        self.0.insert((peer, hash), Instant::now());
    }
}

/// The device key behind a peer id (rhizo peers are ed25519 device keys, inlined in the id).
fn device_of(peer: &PeerId) -> Option<[u8; 32]> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

impl Files {
    /// Whether `peer` may fetch the file `hash`: the device of a contact in a 1:1
    /// conversation, or of a member of an active group, that a message carrying it was sent
    /// in.
    async fn may_fetch(&self, peer: PeerId, hash: [u8; 32]) -> bool {
        if self
            .inner
            .grants
            .lock()
            .is_ok_and(|g| g.granted(peer, hash))
        {
            return true;
        }
        let who = peer.to_string();
        let direct = self
            .inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.may_fetch(&hash, &who)?) })
            .await;
        let allowed = match (direct, device_of(&peer)) {
            (Ok(true), _) => true,
            (_, Some(device)) => matches!(
                self.inner
                    .messaging
                    .may_serve_group_file(hash, device)
                    .await,
                Ok(true)
            ),
            _ => false,
        };
        if allowed && let Ok(mut g) = self.inner.grants.lock() {
            g.grant(peer, hash);
        }
        allowed
    }

    fn take_slot(&self, peer: PeerId) -> Option<Slot<'_>> {
        // The lock is released before a slot exists: a `Slot` dropped while it is held (as
        // `then_some` would build and drop one on a refusal) would lock it again and deadlock.
        let taken = self.inner.serving.lock().ok()?.take(peer);
        taken.then(|| Slot { files: self, peer })
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
            self.inner
                .stats
                .refused_busy
                .fetch_add(1, Ordering::Relaxed);
            self.inner.busy_seen.send_modify(|n| *n += 1);
            debug!(%peer, "file request over the peer's concurrent cap: busy");
            return FileStatus::Busy.response();
        };
        if self.inner.settings.hold_for_tests {
            // Test only (HOLD_ENV): keep the slot until a peer went over its cap.
            let mut seen = self.inner.busy_seen.subscribe();
            let _ = tokio::time::timeout(HOLD_FOR_TESTS, seen.wait_for(|n| *n > 0)).await;
        }
        let hash = request.hash;
        if !self.may_fetch(peer, hash).await {
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
            Ok(Ok(mut out)) => {
                if self.inner.settings.tamper_for_tests
                    && let Some(last) = out.last_mut()
                {
                    // Test only (TAMPER_ENV): a malicious holder's range.
                    *last ^= 0x01;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_gets_at_most_its_slots_and_the_node_serves_a_bounded_number_of_peers() {
        let mut slots = ServingSlots::default();
        let greedy = PeerId::random();
        for _ in 0..MAX_SERVES_PER_PEER {
            assert!(slots.take(greedy));
        }
        assert!(
            !slots.take(greedy),
            "one request too many of one peer: BUSY"
        );
        let other = PeerId::random();
        assert!(slots.take(other), "another peer is still served");
        slots.give_back(&greedy);
        assert!(slots.take(greedy), "a slot given back is taken again");
        for _ in 2..MAX_SERVING_PEERS {
            assert!(slots.take(PeerId::random()));
        }
        assert!(!slots.take(PeerId::random()), "too many peers at once");
        slots.give_back(&other);
        assert!(slots.take(PeerId::random()));
        assert_eq!(slots.in_use(), MAX_SERVES_PER_PEER + MAX_SERVING_PEERS - 1);
    }
}
