//! The fetcher: received files move to the content store (inline content at once; others
//! from their holders, chunk ranges verified as they arrive), resumable after a crash.

use std::sync::atomic::Ordering;

use futures::StreamExt;
use libp2p::PeerId;
use rhizo_core::abuse::Conduct;
use rhizo_core::file::{
    self, ENCRYPTED_CHUNK_BYTES, FileError,
    wire::{FileRequest, FileStatus},
};
use rhizo_store::{DbError, files::FileRow};
use tracing::{debug, warn};

use super::content::ContentError;
use super::holders::{Holder, HolderPool, Pick};
use super::{FETCH_RETRY, FETCHES_PER_ROUND, Files, FilesError};
use crate::events::ApiEvent;

/// Why a fetch is not done yet when no holder gave some chunks (the fetch is retried).
const NO_HOLDER: &str = "no holder gave the missing chunks yet (the holders are offline, or \
                         none has content with this file's hash); retrying every 10 s";
/// Chunks asked for in one request (256 KiB): small, so a crash loses little in flight.
const CHUNKS_PER_REQUEST: u64 = 4;

impl Files {
    /// Runs the fetcher until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut events = self.inner.events.subscribe();
        self.remove_unreferenced().await;
        loop {
            if let Err(e) = self.round().await {
                debug!(error = %e, "file fetch round");
            }
            let sleep = tokio::time::sleep(FETCH_RETRY);
            tokio::pin!(sleep);
            // A received message may carry a file: a round then.
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    () = self.inner.wake.notified() => break,
                    () = &mut sleep => break,
                    event = events.recv() => match event {
                        Ok(ApiEvent::MessageReceived { .. })
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Removes content no file message references any more (at start, before any import is
    /// under way: an import's content is referenced only once its message is queued).
    async fn remove_unreferenced(&self) {
        let hashes = self
            .inner
            .db
            .read(|r| -> Result<_, DbError> { Ok(r.file_hashes()?) })
            .await;
        let Ok(hashes) = hashes else {
            return;
        };
        let keep: std::collections::HashSet<[u8; 32]> = hashes.into_iter().collect();
        let store = self.inner.content.clone();
        let removed = tokio::task::spawn_blocking(move || store.remove_unreferenced(&keep)).await;
        if let Ok(n) = removed
            && n > 0
        {
            debug!(removed = n, "unreferenced file content removed");
        }
    }

    /// One round: inline content stored, small offered files accepted, files fetched.
    async fn round(&self) -> Result<(), FilesError> {
        let inline = self
            .inner
            .db
            .read(|r| -> Result<_, DbError> { Ok(r.files_inline(FETCHES_PER_ROUND)?) })
            .await?;
        for (id, hash, content) in inline {
            self.store_inline(id, hash, content).await?;
        }
        let rows = self
            .inner
            .db
            .read(|r| -> Result<_, DbError> { Ok(r.files()?) })
            .await?;
        let auto = self.inner.settings.auto_download_bytes;
        let mut todo = Vec::new();
        for row in rows.into_iter().filter(|r| !r.outgoing) {
            // Only contacts' files download by themselves (in a group: a member who is one).
            let auto_ok = row.state == "offered" && row.size <= auto && row.from_contact;
            if (row.state == "downloading" || auto_ok) && todo.len() < FETCHES_PER_ROUND {
                todo.push(row);
            }
        }
        for row in todo {
            if let Err(e) = self.fetch_file(&row).await {
                debug!(id = row.message_id, error = %e, "file not fetched yet");
            }
        }
        Ok(())
    }

    async fn store_inline(
        &self,
        id: i64,
        hash: [u8; 32],
        content: Vec<u8>,
    ) -> Result<(), FilesError> {
        let store = self.inner.content.clone();
        let len = content.len() as u64;
        let stored = tokio::task::spawn_blocking(move || store.insert_whole(&hash, &content))
            .await
            .map_err(|e| FilesError::Task(e.to_string()))?;
        let now = self.inner.clock.now_ms();
        let (state, error) = match &stored {
            Ok(()) => ("done", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        self.inner
            .db
            .write(move |tx| -> Result<_, DbError> {
                tx.set_file_state(
                    &hash,
                    state,
                    if error.is_none() { len } else { 0 },
                    error.as_deref(),
                    now,
                )?;
                Ok(tx.clear_file_inline(id)?)
            })
            .await?;
        self.progress_event(id, state, len, len);
        Ok(())
    }

    fn progress_event(&self, id: i64, state: &str, done: u64, total: u64) {
        self.emit(ApiEvent::FileProgress {
            id,
            state: state.to_string(),
            done_bytes: done,
            total_bytes: total,
        });
    }

    async fn set_state(
        &self,
        hash: [u8; 32],
        state: &'static str,
        done: u64,
        error: Option<String>,
    ) {
        let now = self.inner.clock.now_ms();
        let written = self
            .inner
            .db
            .write(move |tx| -> Result<_, DbError> {
                Ok(tx.set_file_state(&hash, state, done, error.as_deref(), now)?)
            })
            .await;
        if let Err(e) = written {
            warn!(error = %e, "cannot record a file's state");
        }
    }

    /// The devices that may hold the file: in a group every other member device; else the
    /// contact's (the sender's) devices.
    async fn holders(&self, row: &FileRow) -> Result<Vec<Holder>, FilesError> {
        let targets: Vec<(String, Vec<String>)> = if let Some(session) = row.group {
            self.inner
                .messaging
                .group_file_holders(session)
                .await
                .map_err(|e| FilesError::Task(e.to_string()))?
                .into_iter()
                .map(|t| (t.peer_id, t.addrs))
                .collect()
        } else if let Some(uid) = row.contact_uid {
            let contact = self
                .inner
                .db
                .read(move |r| -> Result<_, DbError> { Ok(r.contact_by_uid(&uid)?) })
                .await?;
            contact
                .map(|c| {
                    c.devices
                        .into_iter()
                        .map(|d| (d.peer_id, d.addrs))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(targets
            .iter()
            .filter_map(|(peer, addrs)| {
                let peer = peer.parse::<PeerId>().ok()?;
                let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                Some((peer, addrs))
            })
            .collect())
    }

    /// Fetches what is missing of one file, then verifies it whole and puts it in place.
    async fn fetch_file(&self, row: &FileRow) -> Result<(), FilesError> {
        let hash = row.hash;
        let id = row.message_id;
        let total = file::encrypted_size(row.size);
        if row.size > self.inner.settings.max_bytes {
            let error = format!(
                "the file is larger than files_max_mib ({})",
                self.inner.settings.max_bytes
            );
            self.set_state(hash, "failed", 0, Some(error)).await;
            self.progress_event(id, "failed", 0, total);
            return Ok(());
        }
        let store = self.inner.content.clone();
        let valid = tokio::task::spawn_blocking(move || store.begin_fetch(&hash, total))
            .await
            .map_err(|e| FilesError::Task(e.to_string()))?;
        let valid = match valid {
            Ok(v) => v,
            Err(e @ ContentError::CapReached { .. }) => {
                self.set_state(hash, "failed", 0, Some(e.to_string())).await;
                self.progress_event(id, "failed", 0, total);
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let have = valid.iter().filter(|v| **v).count() as u64;
        self.update_transfer(&hash, |t| {
            if t.resumed == 0 && t.fetched == 0 {
                t.resumed = have;
            }
        });
        let mut done = (have * ENCRYPTED_CHUNK_BYTES as u64).min(total);
        self.set_state(hash, "downloading", done, None).await;
        self.progress_event(id, "downloading", done, total);
        let pool = HolderPool::new(self.holders(row).await?);
        let ranges = missing_ranges(&valid);
        let mut results = futures::stream::iter(ranges)
            .map(|range| self.fetch_range(hash, total, range, &pool))
            .buffer_unordered(pool.window());
        let mut failed = false;
        let mut last_percent = done * 100 / total.max(1);
        while let Some(result) = results.next().await {
            match result {
                Some(bytes) => {
                    done = (done + bytes).min(total);
                    let percent = done * 100 / total.max(1);
                    if percent != last_percent {
                        last_percent = percent;
                        self.set_state(hash, "downloading", done, None).await;
                        self.progress_event(id, "downloading", done, total);
                    }
                }
                None => failed = true,
            }
        }
        drop(results);
        if failed {
            // Still `downloading` (retried), with why it is not done yet.
            self.set_state(hash, "downloading", done, Some(NO_HOLDER.to_string()))
                .await;
            return Err(FilesError::Content(ContentError::NotFound));
        }
        let store = self.inner.content.clone();
        tokio::task::spawn_blocking(move || store.finish_fetch(&hash, total))
            .await
            .map_err(|e| FilesError::Task(e.to_string()))??;
        self.set_state(hash, "done", total, None).await;
        self.progress_event(id, "done", total, total);
        Ok(())
    }

    /// Fetches chunks `range` from the least busy holder that has them (the pool spreads
    /// the ranges over the holders); the bytes written, or `None` if no holder gave them.
    async fn fetch_range(
        &self,
        hash: [u8; 32],
        total: u64,
        range: (u64, u64),
        pool: &HolderPool,
    ) -> Option<u64> {
        let request = FileRequest {
            hash,
            start: range.0,
            end: range.1,
        }
        .encode();
        let mut tried = Vec::new();
        loop {
            let freed = pool.freed_future();
            let i = match pool.pick(&tried) {
                Pick::Ask(i) => i,
                Pick::Wait => {
                    freed.await;
                    continue;
                }
                Pick::Exhausted => return None,
            };
            tried.push(i);
            let answer = self
                .ask_holder(hash, total, range, pool.holder(i), &request)
                .await;
            pool.done(i, answer != Answer::Busy && answer != Answer::Written);
            if answer == Answer::Written {
                let chunks = range.1 - range.0;
                self.inner
                    .stats
                    .chunks_fetched
                    .fetch_add(chunks, Ordering::Relaxed);
                self.update_transfer(&hash, |t| t.fetched += chunks);
                let end = (range.1 * ENCRYPTED_CHUNK_BYTES as u64).min(total);
                return Some(end - range.0 * ENCRYPTED_CHUNK_BYTES as u64);
            }
        }
    }

    /// Asks one holder for chunks `range` and writes them if they verify; a holder whose
    /// chunks do not is penalised.
    async fn ask_holder(
        &self,
        hash: [u8; 32],
        total: u64,
        range: (u64, u64),
        (peer, addrs): &Holder,
        request: &[u8],
    ) -> Answer {
        let Ok(response) = self
            .inner
            .client
            .file_request(*peer, addrs.clone(), request.to_vec())
            .await
        else {
            return Answer::Failed;
        };
        let body = match FileStatus::of(&response) {
            Ok((FileStatus::Ok, body)) => body.to_vec(),
            Ok((FileStatus::Busy, _)) => return Answer::Busy,
            _ => return Answer::Failed,
        };
        let store = self.inner.content.clone();
        let written =
            tokio::task::spawn_blocking(move || store.write_chunks(&hash, total, range, &body))
                .await;
        match written {
            Ok(Ok(())) => Answer::Written,
            Ok(Err(ContentError::File(FileError::HashMismatch(_)))) => {
                warn!(%peer, "a holder sent chunks that do not match the file's hash");
                self.inner.stats.refused(*peer, range.1 - range.0);
                self.inner
                    .guard
                    .record(*peer, Conduct::InvalidMessage)
                    .await;
                Answer::Failed
            }
            _ => Answer::Failed,
        }
    }
}

/// What one holder gave for a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The chunks verified and are on disk.
    Written,
    /// Its serving slots are full: ask another, or it again later.
    Busy,
    /// Unreachable, refused, not there, or chunks that did not verify.
    Failed,
}

/// The chunks not yet valid, in ranges of at most [`CHUNKS_PER_REQUEST`].
fn missing_ranges(valid: &[bool]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut i = 0u64;
    let n = valid.len() as u64;
    while i < n {
        if valid[i as usize] {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && !valid[i as usize] && i - start < CHUNKS_PER_REQUEST {
            i += 1;
        }
        out.push((start, i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::missing_ranges;

    #[test]
    fn missing_chunks_group_into_bounded_ranges() {
        let valid = [
            true, false, false, true, false, false, false, false, false, true,
        ];
        assert_eq!(missing_ranges(&valid), [(1, 3), (4, 8), (8, 9)]);
        assert!(missing_ranges(&[true; 3]).is_empty());
    }
}
