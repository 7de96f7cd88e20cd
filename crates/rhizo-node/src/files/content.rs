//! The content store: files' encrypted content under `<data dir>/files/`, addressed by hash
//! (so one content is kept once, however many messages carry it), each beside its outboard
//! (the bao tree's hash pairs).
//!
//! ```text
//!  files/<hash hex>         complete, verified content      ─▶ served, decrypted on read
//!  files/<hash hex>.obao    its outboard
//!  files/partial/<hex>(.obao)   a fetch under way: only verified chunks are ever written, so
//!                               what is valid there after a crash (kill -9) is what a restart
//!                               need not fetch again
//!  files/tmp/               a file being imported (encrypted), renamed when whole
//! ```
//!
//! Synchronous (callers use `spawn_blocking`); memory stays bounded whatever the size: content
//! moves chunk by chunk.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rhizo_core::file::{
    self, ChunkCipher, ENCRYPTED_CHUNK_BYTES, FileError, FileKey, PLAIN_CHUNK_BYTES, verified,
};

#[cfg(test)]
mod tests;

/// The directory under the data dir.
pub const FILES_DIR: &str = "files";

/// Why the content store refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The file is larger than the configured limit.
    #[error("the file has {size} bytes, more than the limit of {max} (files_max_mib)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Storing it would pass the storage cap.
    #[error(
        "storing {size} more bytes would pass the file storage cap of {cap} bytes \
         (files_max_storage_mib): remove files or raise the cap"
    )]
    CapReached {
        /// The bytes to store.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// No content with that hash is held.
    #[error("the file's content is not here (yet)")]
    NotFound,
    /// The content or a chunk did not verify, or did not decrypt.
    #[error(transparent)]
    File(#[from] FileError),
    /// Reading or writing a file failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContentError {
    let what = what.into();
    move |source| ContentError::Io { what, source }
}

/// What importing a plaintext file produced.
#[derive(Debug)]
pub struct Imported {
    /// The content hash.
    pub hash: [u8; 32],
    /// The new random key it is encrypted under.
    pub key: FileKey,
    /// The plaintext size.
    pub size: u64,
}

/// The content store (see the module docs).
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    /// Most bytes of content (and outboards) kept, complete and partial together.
    cap: u64,
}

impl ContentStore {
    /// The store under `root` (created if missing, 0700), keeping at most `cap` bytes.
    ///
    /// # Errors
    ///
    /// If the directories cannot be created.
    pub fn open(root: PathBuf, cap: u64) -> Result<Self, ContentError> {
        for dir in [root.clone(), root.join("partial"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
            }
        }
        // Imports that never finished (a crash mid-way) are garbage.
        if let Ok(entries) = fs::read_dir(root.join("tmp")) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(Self { root, cap })
    }

    /// A fresh path under `tmp/` for an uploaded file's plaintext (cleared at start).
    #[must_use]
    pub fn upload_path(&self) -> PathBuf {
        let tag = FileKey::generate()
            .map(|k| hex::encode(&k.as_bytes()[..8]))
            .unwrap_or_default();
        self.root.join("tmp").join(format!("upload-{tag}"))
    }

    fn complete(&self, hash: &[u8; 32]) -> (PathBuf, PathBuf) {
        let name = hex::encode(hash);
        (
            self.root.join(&name),
            self.root.join(format!("{name}.obao")),
        )
    }

    fn partial(&self, hash: &[u8; 32]) -> (PathBuf, PathBuf) {
        let name = hex::encode(hash);
        let dir = self.root.join("partial");
        (dir.join(&name), dir.join(format!("{name}.obao")))
    }

    /// Whether the whole content of `hash` is here.
    #[must_use]
    pub fn has(&self, hash: &[u8; 32]) -> bool {
        self.complete(hash).0.is_file()
    }

    /// Bytes held, complete and partial.
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        let mut used = 0;
        for dir in [self.root.clone(), self.root.join("partial")] {
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    if let Ok(m) = e.metadata()
                        && m.is_file()
                    {
                        used += m.len();
                    }
                }
            }
        }
        used
    }

    fn check_room(&self, encrypted_size: u64) -> Result<(), ContentError> {
        let size = encrypted_size + verified::outboard_size(encrypted_size);
        if self.used_bytes().saturating_add(size) > self.cap {
            return Err(ContentError::CapReached {
                size,
                cap: self.cap,
            });
        }
        Ok(())
    }

    /// Encrypts the plaintext file at `path` under a fresh key into the store, chunk by chunk,
    /// and computes its tree; renamed into place only when whole. `progress` hears the
    /// plaintext bytes done.
    ///
    /// # Errors
    ///
    /// Over `max_size` or the cap, or I/O.
    pub fn import(
        &self,
        path: &Path,
        max_size: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Imported, ContentError> {
        let source = File::open(path).map_err(io(format!("opening {}", path.display())))?;
        let size = source
            .metadata()
            .map_err(io(format!("reading {}", path.display())))?
            .len();
        if size > max_size {
            return Err(ContentError::TooLarge {
                size,
                max: max_size,
            });
        }
        let encrypted_size = file::encrypted_size(size);
        self.check_room(encrypted_size)?;
        let key = FileKey::generate().map_err(|e| ContentError::Io {
            what: "drawing a file key".into(),
            source: std::io::Error::other(e),
        })?;
        let tmp = self.root.join("tmp").join(hex::encode(
            FileKey::generate()
                .map(|k| k.as_bytes()[..8].to_vec())
                .unwrap_or_default(),
        ));
        let result = self.encrypt_into(source, &tmp, &key, size, &mut progress);
        let hash = match result {
            Ok(hash) => hash,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(tmp.with_extension("obao"));
                return Err(e);
            }
        };
        self.place(&tmp, &tmp.with_extension("obao"), &hash)?;
        Ok(Imported { hash, key, size })
    }

    /// Encrypts `source` (`size` bytes) into `tmp`, its outboard into `tmp.obao`; the hash.
    fn encrypt_into(
        &self,
        mut source: File,
        tmp: &Path,
        key: &FileKey,
        size: u64,
        progress: &mut impl FnMut(u64),
    ) -> Result<[u8; 32], ContentError> {
        let cipher = ChunkCipher::new(key, size);
        let out = File::create(tmp).map_err(io("creating a temporary file"))?;
        let mut out = BufWriter::new(out);
        let mut buf = vec![0u8; PLAIN_CHUNK_BYTES];
        let mut done = 0u64;
        for index in 0..cipher.chunks() {
            let len = cipher.plain_len(index);
            source
                .read_exact(&mut buf[..len])
                .map_err(io("reading the file (did it change while being sent?)"))?;
            out.write_all(&cipher.encrypt(index, &buf[..len])?)
                .map_err(io("writing encrypted content"))?;
            done += len as u64;
            progress(done);
        }
        let out = out
            .into_inner()
            .map_err(|e| io("writing encrypted content")(e.into_error()))?;
        out.sync_all().map_err(io("syncing encrypted content"))?;
        let encrypted_size = file::encrypted_size(size);
        let mut ob =
            File::create(tmp.with_extension("obao")).map_err(io("creating an outboard"))?;
        let data = BufReader::new(File::open(tmp).map_err(io("reading encrypted content"))?);
        let hash = verified::compute_outboard(data, encrypted_size, &mut ob)?;
        ob.sync_all().map_err(io("syncing an outboard"))?;
        Ok(hash)
    }

    /// Moves verified content and its outboard into place (content first is kept if present:
    /// the same hash is the same content).
    fn place(&self, data: &Path, ob: &Path, hash: &[u8; 32]) -> Result<(), ContentError> {
        let (final_data, final_ob) = self.complete(hash);
        if final_data.is_file() && final_ob.is_file() {
            let _ = fs::remove_file(data);
            let _ = fs::remove_file(ob);
            return Ok(());
        }
        fs::rename(ob, &final_ob).map_err(io("placing an outboard"))?;
        fs::rename(data, &final_data).map_err(io("placing content"))?;
        Ok(())
    }

    /// Stores content that came whole (inline in a message), after checking its hash.
    ///
    /// # Errors
    ///
    /// [`FileError::HashMismatch`] if it is not the content of `hash`; the cap; I/O.
    pub fn insert_whole(&self, hash: &[u8; 32], content: &[u8]) -> Result<(), ContentError> {
        if self.has(hash) {
            return Ok(());
        }
        let size = content.len() as u64;
        self.check_room(size)?;
        let mut ob = vec![0u8; usize::try_from(verified::outboard_size(size)).unwrap_or(0)];
        let actual = verified::compute_outboard(content, size, &mut ob)?;
        if &actual != hash {
            return Err(FileError::HashMismatch("inline content".into()).into());
        }
        let tmp = self.root.join("tmp").join(hex::encode(&hash[..8]));
        fs::write(&tmp, content).map_err(io("writing inline content"))?;
        fs::write(tmp.with_extension("obao"), &ob).map_err(io("writing an outboard"))?;
        self.place(&tmp, &tmp.with_extension("obao"), hash)
    }

    /// The whole encrypted content of `hash`, if it is here and at most `max` bytes (for
    /// content that travels inline).
    ///
    /// # Errors
    ///
    /// [`ContentError::NotFound`] if absent or larger; I/O.
    pub fn encrypted_content(&self, hash: &[u8; 32], max: u64) -> Result<Vec<u8>, ContentError> {
        let (data, _) = self.complete(hash);
        let len = fs::metadata(&data)
            .map_err(|_| ContentError::NotFound)?
            .len();
        if len > max {
            return Err(ContentError::NotFound);
        }
        fs::read(&data).map_err(io("reading content"))
    }

    /// Opens (creating) the partial files of a fetch of `hash` and returns which of its chunks
    /// are already verified there.
    ///
    /// # Errors
    ///
    /// The cap (for a new fetch), or I/O.
    pub fn begin_fetch(
        &self,
        hash: &[u8; 32],
        encrypted_size: u64,
    ) -> Result<Vec<bool>, ContentError> {
        let (data, ob) = self.partial(hash);
        if !data.is_file() {
            self.check_room(encrypted_size)?;
        }
        let data = open_rw(&data)?;
        let ob = open_rw(&ob)?;
        data.set_len(encrypted_size)
            .map_err(io("sizing a partial file"))?;
        ob.set_len(verified::outboard_size(encrypted_size))
            .map_err(io("sizing a partial outboard"))?;
        Ok(verified::valid_chunks(&data, &ob, hash, encrypted_size)?)
    }

    /// Verifies a `/rhizo/file/1` response carrying chunks `range` of `hash` and writes them
    /// into the partial files (nothing unverified is written).
    ///
    /// # Errors
    ///
    /// [`FileError::HashMismatch`] for content that is not the file's; I/O.
    pub fn write_chunks(
        &self,
        hash: &[u8; 32],
        encrypted_size: u64,
        range: (u64, u64),
        encoded: &[u8],
    ) -> Result<(), ContentError> {
        let (data, ob) = self.partial(hash);
        let mut data = open_rw(&data)?;
        let mut ob = open_rw(&ob)?;
        verified::decode_chunks(encoded, hash, encrypted_size, range, &mut data, &mut ob)?;
        Ok(())
    }

    /// Checks that every chunk of a fetch is verified, then moves it into place.
    ///
    /// # Errors
    ///
    /// [`ContentError::NotFound`] if some chunk is still missing; I/O.
    pub fn finish_fetch(&self, hash: &[u8; 32], encrypted_size: u64) -> Result<(), ContentError> {
        let (data, ob) = self.partial(hash);
        let valid = {
            let d = File::open(&data).map_err(io("reading a partial file"))?;
            let o = File::open(&ob).map_err(io("reading a partial outboard"))?;
            d.sync_all().map_err(io("syncing a partial file"))?;
            verified::valid_chunks(&d, &o, hash, encrypted_size)?
        };
        if !valid.iter().all(|v| *v) {
            return Err(ContentError::NotFound);
        }
        self.place(&data, &ob, hash)
    }

    /// The response to a request for chunks `range` of `hash`: from the complete content, or
    /// from a fetch under way if those chunks are there (a member still downloading serves
    /// what it has).
    ///
    /// # Errors
    ///
    /// [`ContentError::NotFound`] if the chunks are not here; a corrupt copy; I/O.
    pub fn encode_chunks(
        &self,
        hash: &[u8; 32],
        range: (u64, u64),
        out: &mut Vec<u8>,
    ) -> Result<(), ContentError> {
        let (data, ob) = if self.has(hash) {
            self.complete(hash)
        } else {
            self.partial(hash)
        };
        let (Ok(data), Ok(ob)) = (File::open(&data), File::open(&ob)) else {
            return Err(ContentError::NotFound);
        };
        let size = data.metadata().map_err(io("reading content"))?.len();
        let chunks = file::chunk_count_encrypted(size);
        if range.1 > chunks {
            return Err(ContentError::NotFound);
        }
        verified::encode_chunks(&data, &ob, hash, size, range, out).map_err(|e| match e {
            FileError::Io(_) => ContentError::NotFound,
            other => other.into(),
        })
    }

    /// Decrypts plaintext bytes `from..to` of a complete file into `out`, chunk by chunk
    /// (`write` is called once per chunk's part).
    ///
    /// # Errors
    ///
    /// [`ContentError::NotFound`]; a chunk that does not decrypt (wrong key); I/O; or the
    /// error `write` returned.
    pub fn read_plain(
        &self,
        hash: &[u8; 32],
        key: &FileKey,
        size: u64,
        (from, to): (u64, u64),
        mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), ContentError> {
        use std::os::unix::fs::FileExt;
        let (data, _) = self.complete(hash);
        let data = File::open(&data).map_err(|_| ContentError::NotFound)?;
        let cipher = ChunkCipher::new(key, size);
        let plain = PLAIN_CHUNK_BYTES as u64;
        let mut buf = vec![0u8; ENCRYPTED_CHUNK_BYTES];
        let mut at = from;
        while at < to.min(size) {
            let index = at / plain;
            let len = cipher.plain_len(index) + file::TAG_BYTES;
            data.read_exact_at(&mut buf[..len], index * ENCRYPTED_CHUNK_BYTES as u64)
                .map_err(io("reading content"))?;
            let chunk = cipher.decrypt(index, &buf[..len])?;
            let start = usize::try_from(at - index * plain).unwrap_or(0);
            let end = usize::try_from(to.min(size) - index * plain)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            write(&chunk[start..end]).map_err(io("writing the file"))?;
            at = index * plain + end as u64;
        }
        Ok(())
    }

    /// Decrypts a complete file into a new file at `out` (written beside it, then renamed).
    ///
    /// # Errors
    ///
    /// As [`read_plain`](Self::read_plain).
    pub fn export(
        &self,
        hash: &[u8; 32],
        key: &FileKey,
        size: u64,
        out: &Path,
    ) -> Result<(), ContentError> {
        let tmp = out.with_extension("rhizo-part");
        let file = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let mut w = BufWriter::new(file);
        let result = self.read_plain(hash, key, size, (0, size), |b| w.write_all(b));
        let result = result.and_then(|()| {
            let f = w
                .into_inner()
                .map_err(|e| io("writing the file")(e.into_error()))?;
            f.sync_all().map_err(io("syncing the file"))
        });
        match result {
            Ok(()) => fs::rename(&tmp, out).map_err(io(format!("writing {}", out.display()))),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Removes content (complete or partial) whose hash is not in `keep`; how many removed.
    pub fn remove_unreferenced(&self, keep: &HashSet<[u8; 32]>) -> usize {
        let mut removed = 0;
        for dir in [self.root.clone(), self.root.join("partial")] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(stem) = name.to_str().map(|n| n.trim_end_matches(".obao")) else {
                    continue;
                };
                let Ok(bytes) = hex::decode(stem) else {
                    continue;
                };
                let Ok(hash) = <[u8; 32]>::try_from(bytes) else {
                    continue;
                };
                if !keep.contains(&hash) && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

fn open_rw(path: &Path) -> Result<File, ContentError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}
