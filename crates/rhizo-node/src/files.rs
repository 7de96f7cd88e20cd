//! Files and attachments (issue 16): the content store, serving `/rhizo/file/1` to the members
//! of the conversations a file was sent in, and fetching received files from their holders.
//!
//! ```text
//!  send:    POST /v1/files ─▶ ContentStore::import (encrypt + tree, chunk by chunk) ─▶
//!           Messaging::send_file (the FileRef inside MLS, like a text)
//!  serve:   NetEvent::InboundFile ─▶ rate limit, ≤ 4 at once per peer ─▶ may_fetch (a member
//!           of a conversation with the file?) ─▶ encode_chunks (bao proofs) ─▶ respond
//!  start:   content no file message references is removed
//!  fetch:   run(): inline content ─▶ store; offered ≤ auto-download size (from a contact) ─▶
//!           downloading ─▶ begin_fetch (what is already verified) ─▶ missing chunks in ranges
//!           of 4, 4 in flight, across the holders ─▶ write_chunks (verified) ─▶ progress
//!           events ─▶ finish_fetch (whole hash verified, then renamed) ─▶ done
//! ```
//!
//! # Layout
//! - `attach`: files for a task that came as bytes or by hash (the A2A binding's file parts).
//! - [`content`]: the content store under the data dir.
//! - `fetch`: fetching one file's missing chunks from its holders.
//! - `holders`: the holders of one fetch, the ranges spread over them within their caps.
//! - `serve`: answering `/rhizo/file/1` requests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhizo_core::file::FileKey;
use rhizo_store::{Db, DbError, files::FileRow};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::clock::SharedClock;
use crate::events::ApiEvent;
use crate::messaging::Messaging;
use crate::peer_policy::PeerPolicy;
pub use attach::AttachError;
use content::{ContentError, ContentStore};

mod attach;
pub mod content;
mod fetch;
mod holders;
#[cfg(test)]
mod json_vectors;
mod serve;

/// Default largest file sent or fetched (`files_max_mib`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;
/// Default largest file fetched without being asked, from a contact.
pub const DEFAULT_AUTO_DOWNLOAD_BYTES: u64 = 10 << 20;
/// Default cap on the content store (complete and partial content).
pub const DEFAULT_MAX_STORAGE_BYTES: u64 = 32 << 30;
/// How often the fetcher tries the files it could not finish again (a holder may come online).
const FETCH_RETRY: Duration = Duration::from_secs(10);
/// Files fetched per round of the fetcher (one after the other; each with its own window).
const FETCHES_PER_ROUND: usize = 8;
/// Peers whose per-file progress counters are kept (bounded; the oldest is forgotten).
const MAX_TRACKED_TRANSFERS: usize = 256;
/// The environment variable that makes this node a malicious holder, for tests only: every
/// range it serves has one byte flipped (documented as test-only in docs/protocol.md §32).
pub const TAMPER_ENV: &str = "RHIZO_TEST_TAMPER_FILE_CHUNKS";
/// The environment variable that makes this node hold every request it serves (with its
/// slot) until it first refused a peer over its concurrent cap (at most 60 s), for tests
/// only: a burst of one peer then certainly goes over the cap (docs/protocol.md §32).
pub const HOLD_ENV: &str = "RHIZO_TEST_HOLD_FILE_SERVES";

/// A MIME type from a file name's extension (the common ones; else octet-stream).
pub fn guess_mime(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        Some("txt" | "md") => "text/plain",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        Some("csv") => "text/csv",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        _ => rhizo_core::file::DEFAULT_MIME,
    }
}

/// A name a file may carry: 1 to 255 bytes, no `/`, `\` or NUL, not `.` or `..`.
pub fn file_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= rhizo_core::file::MAX_NAME_BYTES
        && !name.contains(['/', '\\', '\0'])
        && name != "."
        && name != "..";
    ok.then(|| name.to_string())
}

/// The files settings.
#[derive(Debug, Clone, Copy)]
pub struct FileSettings {
    /// Largest file sent or fetched.
    pub max_bytes: u64,
    /// Largest file fetched automatically (from contacts only).
    pub auto_download_bytes: u64,
    /// Cap on the content store.
    pub max_storage_bytes: u64,
    /// Test only ([`TAMPER_ENV`]): serve ranges with one byte flipped.
    pub tamper_for_tests: bool,
    /// Test only ([`HOLD_ENV`]): hold served requests until a peer went over its cap.
    pub hold_for_tests: bool,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_FILE_BYTES,
            auto_download_bytes: DEFAULT_AUTO_DOWNLOAD_BYTES,
            max_storage_bytes: DEFAULT_MAX_STORAGE_BYTES,
            tamper_for_tests: false,
            hold_for_tests: false,
        }
    }
}

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// No file message with that id.
    #[error("no file message {0}: see `rhizo files`")]
    UnknownFile(i64),
    /// The file is not complete here yet.
    #[error("file {0} is not downloaded yet: `rhizo files get {0}` fetches it")]
    NotReady(i64),
    /// The content store refused or failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A blocking task failed.
    #[error("a file task failed: {0}")]
    Task(String),
}

/// A file as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileView {
    /// The message that carries it.
    pub id: i64,
    /// `in` or `out`.
    pub direction: String,
    /// The contact the message is with (their UID, hex), if a 1:1 conversation.
    pub contact: Option<String>,
    /// The group the message was sent in (its id, as `rhizo group list` shows it), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The file's name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type.
    pub mime: String,
    /// `offered`, `downloading`, `done` or `failed`.
    pub state: String,
    /// Bytes of encrypted content held.
    pub done_bytes: u64,
    /// The encrypted size (what `done_bytes` counts towards).
    pub total_bytes: u64,
    /// The content hash (hex).
    pub hash: String,
    /// Where it was last saved, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Chunks already verified on disk when this node (re)started the fetch.
    pub resumed_chunks: u64,
    /// Chunks this node fetched since it started (a resumed fetch counts only the rest).
    pub fetched_chunks: u64,
}

/// Counters of one file's fetch in this process.
#[derive(Debug, Default, Clone, Copy)]
struct Transfer {
    resumed: u64,
    fetched: u64,
}

/// Holders whose refused chunks are counted by peer (bounded; more are counted only in the
/// total).
const MAX_REFUSED_HOLDERS: usize = 64;

/// Node-wide file counters.
#[derive(Debug, Default)]
pub struct FileStats {
    /// Chunks fetched and verified.
    pub chunks_fetched: AtomicU64,
    /// Chunks refused because they did not verify (the holder is penalised).
    pub chunks_refused: AtomicU64,
    /// Bytes served to other members.
    pub bytes_served: AtomicU64,
    /// Requests refused `Busy` because their peer had its concurrent requests answered.
    pub refused_busy: AtomicU64,
    /// Refused chunks by holder.
    refused_by: Mutex<HashMap<libp2p::PeerId, u64>>,
}

impl FileStats {
    fn refused(&self, peer: libp2p::PeerId, chunks: u64) {
        self.chunks_refused.fetch_add(chunks, Ordering::Relaxed);
        if let Ok(mut by) = self.refused_by.lock()
            && (by.len() < MAX_REFUSED_HOLDERS || by.contains_key(&peer))
        {
            *by.entry(peer).or_default() += chunks;
        }
    }
}

/// `GET /v1/files/stats`: the counters, and the holders whose chunks were refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileStatsView {
    /// Chunks fetched and verified.
    pub chunks_fetched: u64,
    /// Chunks refused because they did not verify.
    pub chunks_refused: u64,
    /// Bytes served to other members.
    pub bytes_served: u64,
    /// Requests refused `Busy` because their peer already had its concurrent requests
    /// answered (at most 4 at once per peer).
    #[serde(default)]
    pub refused_busy: u64,
    /// Requests being answered now (their serving slots).
    #[serde(default)]
    pub serving: u64,
    /// The holders that sent chunks that did not verify.
    pub refused_holders: Vec<RefusedHolder>,
}

/// A holder that sent chunks that did not verify.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusedHolder {
    /// Its PeerId.
    pub peer_id: String,
    /// Chunks of it refused.
    pub chunks: u64,
    /// Its reputation score now (the refusal lowered it; see peer_policy).
    pub score: i32,
}

/// The files service (cheap to clone).
#[derive(Clone, Debug)]
pub struct Files {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    client: rhizo_net::Client,
    guard: PeerPolicy,
    messaging: Messaging,
    content: ContentStore,
    settings: FileSettings,
    events: broadcast::Sender<ApiEvent>,
    clock: SharedClock,
    wake: tokio::sync::Notify,
    transfers: Mutex<HashMap<[u8; 32], Transfer>>,
    serving: Mutex<serve::ServingSlots>,
    /// Over-the-cap refusals so far (what [`HOLD_ENV`] waits for).
    busy_seen: tokio::sync::watch::Sender<u64>,
    grants: Mutex<serve::Grants>,
    stats: FileStats,
}

impl Files {
    /// The service over the content store under `data_dir` (`messaging` answers the group
    /// questions: who may hold a group's file, who may fetch it).
    ///
    /// # Errors
    ///
    /// If the content store's directories cannot be created.
    pub fn new(
        data_dir: &Path,
        settings: FileSettings,
        db: Db,
        client: rhizo_net::Client,
        guard: PeerPolicy,
        messaging: Messaging,
        clock: SharedClock,
    ) -> Result<Self, ContentError> {
        let events = messaging.event_sender();
        let content = ContentStore::open(
            data_dir.join(content::FILES_DIR),
            settings.max_storage_bytes,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                client,
                guard,
                messaging,
                content,
                settings,
                events,
                clock,
                wake: tokio::sync::Notify::new(),
                transfers: Mutex::new(HashMap::new()),
                serving: Mutex::new(serve::ServingSlots::default()),
                busy_seen: tokio::sync::watch::Sender::new(0),
                grants: Mutex::new(serve::Grants::default()),
                stats: FileStats::default(),
            }),
        })
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> FileSettings {
        self.inner.settings
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &FileStats {
        &self.inner.stats
    }

    /// The counters as the API shows them.
    #[must_use]
    pub fn stats_view(&self) -> FileStatsView {
        let stats = &self.inner.stats;
        let mut refused_holders: Vec<RefusedHolder> = stats
            .refused_by
            .lock()
            .map(|by| {
                by.iter()
                    .map(|(peer, chunks)| RefusedHolder {
                        peer_id: peer.to_string(),
                        chunks: *chunks,
                        score: self.inner.guard.reputation_of(peer).0,
                    })
                    .collect()
            })
            .unwrap_or_default();
        refused_holders.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        FileStatsView {
            chunks_fetched: stats.chunks_fetched.load(Ordering::Relaxed),
            chunks_refused: stats.chunks_refused.load(Ordering::Relaxed),
            bytes_served: stats.bytes_served.load(Ordering::Relaxed),
            refused_busy: stats.refused_busy.load(Ordering::Relaxed),
            serving: self.inner.serving.lock().map_or(0, |s| s.in_use() as u64),
            refused_holders,
        }
    }

    /// Wakes the fetcher (a file message arrived, or the user asked for a file).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    fn emit(&self, event: ApiEvent) {
        let _ = self.inner.events.send(event);
    }

    fn transfer(&self, hash: &[u8; 32]) -> Transfer {
        self.inner
            .transfers
            .lock()
            .ok()
            .and_then(|t| t.get(hash).copied())
            .unwrap_or_default()
    }

    fn update_transfer(&self, hash: &[u8; 32], f: impl FnOnce(&mut Transfer)) {
        if let Ok(mut t) = self.inner.transfers.lock() {
            if t.len() >= MAX_TRACKED_TRANSFERS && !t.contains_key(hash) {
                t.clear();
            }
            f(t.entry(*hash).or_default());
        }
    }

    /// Encrypts the file at `path` into the content store (a fresh key), reporting plaintext
    /// bytes done to `progress`.
    ///
    /// # Errors
    ///
    /// Over the size limit or the storage cap; I/O.
    pub async fn import(
        &self,
        path: PathBuf,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<content::Imported, FilesError> {
        let content = self.inner.content.clone();
        let max = self.inner.settings.max_bytes;
        tokio::task::spawn_blocking(move || content.import(&path, max, progress))
            .await
            .map_err(|e| FilesError::Task(e.to_string()))?
            .map_err(FilesError::from)
    }

    /// A progress callback for [`import`](Self::import) that emits [`ApiEvent::FileImport`]
    /// with `progress` (the request's id) at most once per percent of `total` bytes.
    pub fn import_events(
        &self,
        progress: String,
        name: String,
        total: u64,
    ) -> impl FnMut(u64) + Send + 'static {
        let events = self.inner.events.clone();
        let mut last = None;
        move |done| {
            let percent = done.saturating_mul(100) / total.max(1);
            if last != Some(percent) {
                last = Some(percent);
                let _ = events.send(ApiEvent::FileImport {
                    progress: progress.clone(),
                    name: name.clone(),
                    done_bytes: done,
                    total_bytes: total,
                });
            }
        }
    }

    /// Writes an uploaded file's content (a stream of body frames) to a new file under the
    /// content store's `tmp/` (cleared at start), a frame at a time; its path. The caller
    /// imports it, then removes it.
    ///
    /// # Errors
    ///
    /// Over the size limit (what was written is removed); the body broke off; I/O.
    pub async fn receive_upload<S, E>(&self, mut body: S) -> Result<PathBuf, FilesError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures::StreamExt as _;
        use tokio::io::AsyncWriteExt as _;
        let path = self.inner.content.upload_path();
        let max = self.inner.settings.max_bytes;
        let written = async {
            let mut file = tokio::fs::File::create(&path)
                .await
                .map_err(content::io("creating an upload file"))?;
            let mut size = 0u64;
            while let Some(frame) = body.next().await {
                let frame = frame.map_err(|e| ContentError::Io {
                    what: "receiving the upload".into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                size += frame.len() as u64;
                if size > max {
                    return Err(ContentError::TooLarge { size, max });
                }
                file.write_all(&frame)
                    .await
                    .map_err(content::io("writing an upload file"))?;
            }
            file.flush()
                .await
                .map_err(content::io("writing an upload file"))
        }
        .await;
        match written {
            Ok(()) => Ok(path),
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(e.into())
            }
        }
    }

    /// The encrypted content of `hash`, if whole here and small enough to travel inline.
    pub(crate) async fn inline_content(&self, hash: [u8; 32], size: u64) -> Option<Vec<u8>> {
        if size > rhizo_core::file::MAX_INLINE_FILE_BYTES {
            return None;
        }
        let content = self.inner.content.clone();
        let max = rhizo_core::file::encrypted_size(size);
        tokio::task::spawn_blocking(move || content.encrypted_content(&hash, max).ok())
            .await
            .ok()
            .flatten()
    }

    fn view(&self, row: &FileRow) -> FileView {
        let t = self.transfer(&row.hash);
        FileView {
            id: row.message_id,
            direction: if row.outgoing { "out" } else { "in" }.into(),
            contact: row.contact_uid.map(hex::encode),
            group: row.group.map(hex::encode),
            name: row.name.clone(),
            size: row.size,
            mime: row.mime.clone(),
            state: row.state.clone(),
            done_bytes: row.done_bytes,
            total_bytes: rhizo_core::file::encrypted_size(row.size),
            hash: hex::encode(row.hash),
            path: row.path.clone(),
            error: row.error.clone(),
            resumed_chunks: t.resumed,
            fetched_chunks: t.fetched,
        }
    }

    /// Every file, newest first.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub async fn list(&self) -> Result<Vec<FileView>, FilesError> {
        let rows = self
            .inner
            .db
            .read(|r| -> Result<_, DbError> { Ok(r.files()?) })
            .await?;
        Ok(rows.iter().map(|r| self.view(r)).collect())
    }

    async fn row(&self, id: i64) -> Result<FileRow, FilesError> {
        self.inner
            .db
            .read(move |r| -> Result<_, DbError> { Ok(r.file(id)?) })
            .await?
            .ok_or(FilesError::UnknownFile(id))
    }

    /// File `id`.
    ///
    /// # Errors
    ///
    /// An unknown id, or the database.
    pub async fn get(&self, id: i64) -> Result<FileView, FilesError> {
        Ok(self.view(&self.row(id).await?))
    }

    /// Asks for file `id` to be fetched (it is offered, or failed before); its view.
    ///
    /// # Errors
    ///
    /// An unknown id, or the database.
    pub async fn request(&self, id: i64) -> Result<FileView, FilesError> {
        let row = self.row(id).await?;
        if !row.outgoing && (row.state == "offered" || row.state == "failed") {
            let now = self.inner.clock.now_ms();
            let hash = row.hash;
            let done = row.done_bytes;
            self.inner
                .db
                .write(move |tx| -> Result<_, DbError> {
                    Ok(tx.set_file_state(&hash, "downloading", done, None, now)?)
                })
                .await?;
            self.wake();
        }
        self.get(id).await
    }

    /// Decrypts complete file `id` to `out`, and remembers the path.
    ///
    /// # Errors
    ///
    /// An unknown or incomplete file; a wrong key; I/O.
    pub async fn save(&self, id: i64, out: PathBuf) -> Result<FileView, FilesError> {
        let row = self.row(id).await?;
        if row.state != "done" || !self.inner.content.has(&row.hash) {
            return Err(FilesError::NotReady(id));
        }
        let content = self.inner.content.clone();
        let target = out.clone();
        tokio::task::spawn_blocking(move || {
            content.export(&row.hash, &FileKey::from_bytes(row.key), row.size, &target)
        })
        .await
        .map_err(|e| FilesError::Task(e.to_string()))??;
        let path = out.display().to_string();
        self.inner
            .db
            .write(move |tx| -> Result<_, DbError> { Ok(tx.set_file_path(id, &path)?) })
            .await?;
        self.get(id).await
    }

    /// Streams plaintext bytes `range` of complete file `id` into `tx`, a chunk at a time (the
    /// bounded channel is the backpressure); the file's size and MIME type first.
    ///
    /// # Errors
    ///
    /// An unknown or incomplete file.
    pub async fn read(
        &self,
        id: i64,
    ) -> Result<
        (
            FileView,
            impl FnOnce((u64, u64), tokio::sync::mpsc::Sender<Vec<u8>>),
        ),
        FilesError,
    > {
        let row = self.row(id).await?;
        if row.state != "done" || !self.inner.content.has(&row.hash) {
            return Err(FilesError::NotReady(id));
        }
        let view = self.view(&row);
        let content = self.inner.content.clone();
        let reader = move |range: (u64, u64), tx: tokio::sync::mpsc::Sender<Vec<u8>>| {
            tokio::task::spawn_blocking(move || {
                let key = FileKey::from_bytes(row.key);
                let _ = content.read_plain(&row.hash, &key, row.size, range, |bytes| {
                    tx.blocking_send(bytes.to_vec())
                        .map_err(|_| std::io::Error::other("reader went away"))
                });
            });
        };
        Ok((view, reader))
    }
}
