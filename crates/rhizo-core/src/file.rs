//! Files and attachments (issue 16): the [`FileRef`] a chat message carries inside MLS, the
//! per-chunk encryption ([`ChunkCipher`]), the verified tree over the encrypted content
//! ([`verified`], built on `bao-tree`), and the `/rhizo/file/1` request and response codecs
//! ([`wire`]).
//!
//! ```text
//!  sender:  plaintext ─▶ ChunkCipher::encrypt(i) per 65,520-byte chunk ─▶ encrypted content
//!           (64 KiB chunks) ─▶ verified::outboard ─▶ root hash ─▶ FileRef{hash, key, …} in MLS
//!  holder:  FileRequest{hash, chunks a..b} ─▶ verified::encode_chunks (bao proofs + chunks)
//!  fetcher: response ─▶ verified::decode_chunks (every chunk checked against the root hash
//!           before it is written) ─▶ whole? ─▶ ChunkCipher::decrypt(i) when read
//! ```
//!
//! Chunk `i` of the encrypted content is exactly bao chunk group `i` (chunk groups of 64 KiB,
//! `chunk_log` 6), so any chunk can be fetched, verified and decrypted alone.
//!
//! The nonce of chunk `i` is `i` (8 bytes, big endian) ‖ three zero bytes ‖ a last-chunk flag
//! (1 for the final chunk, else 0): the STREAM construction with a random per-file key, so
//! chunks cannot be reordered, swapped or truncated away without a decryption error. The
//! associated data binds every chunk to its file: `"rhizo/file/v1"` ‖ plaintext size (8 bytes,
//! big endian).

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use zeroize::Zeroizing;

use crate::proto;

pub mod verified;
pub mod wire;

#[cfg(test)]
mod tests;

/// log2 of the encrypted chunk size in BLAKE3 chunks (1 KiB): 64 KiB, one bao chunk group.
pub const CHUNK_LOG: u8 = 6;
/// Bytes of one encrypted chunk (the last one may be shorter).
pub const ENCRYPTED_CHUNK_BYTES: usize = 1024 << CHUNK_LOG;
/// Bytes of the Poly1305 tag on every chunk.
pub const TAG_BYTES: usize = 16;
/// Plaintext bytes of one chunk (the last one may be shorter, even empty).
pub const PLAIN_CHUNK_BYTES: usize = ENCRYPTED_CHUNK_BYTES - TAG_BYTES;
/// Largest file the protocol describes (a node's own limit is lower: `files_max_mib`):
/// 64 GiB keeps chunk indices and outboards small.
pub const MAX_FILE_BYTES: u64 = 64 << 30;
/// Longest file name, in bytes of UTF-8 (a common file-system limit).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest MIME type (RFC 6838 allows 127 characters per part; one part plus a slash fits).
pub const MAX_MIME_BYTES: usize = 127;
/// Largest plaintext that travels inline in the message (so it also goes through mailboxes):
/// its encrypted content plus the rest of the message fit in one envelope
/// (`MAX_ENVELOPE_BYTES`, 256 KiB, with room for MLS, the caption and the envelope).
pub const MAX_INLINE_FILE_BYTES: u64 = 192 * 1024;
/// The MIME type of content whose type is not known.
pub const DEFAULT_MIME: &str = "application/octet-stream";

/// Domain separation of the chunks' associated data.
const AAD_DOMAIN: &[u8] = b"rhizo/file/v1";

/// Why a file reference, a chunk or a transfer was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file reference is malformed (a field's length or range is wrong).
    #[error("invalid file reference: {0}")]
    InvalidRef(&'static str),
    /// A chunk index past the end of the file.
    #[error("chunk {index} is past the end of the file ({chunks} chunks)")]
    ChunkOutOfRange {
        /// The index asked for.
        index: u64,
        /// How many chunks the file has.
        chunks: u64,
    },
    /// A chunk's length does not match its place in the file.
    #[error("chunk {index} has {len} bytes, expected {expected}")]
    ChunkLength {
        /// The chunk.
        index: u64,
        /// Its length.
        len: usize,
        /// The length its place in the file requires.
        expected: usize,
    },
    /// A chunk did not decrypt: the file reference's key is wrong, or the content was changed.
    #[error("chunk {index} does not decrypt: the file's key is wrong or its content was changed")]
    Decrypt {
        /// The chunk.
        index: u64,
    },
    /// The content does not match the file reference's hash.
    #[error("the content does not match the file's hash: {0}")]
    HashMismatch(String),
    /// A `/rhizo/file/1` message is malformed.
    #[error("malformed /rhizo/file/1 message: {0}")]
    Wire(&'static str),
    /// Reading or writing the content failed.
    #[error("file content I/O failed")]
    Io(#[source] std::io::Error),
}

/// A file's random content key (ChaCha20-Poly1305, 32 bytes). Zeroized on drop; its `Debug`
/// shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey(Zeroizing<[u8; 32]>);

impl FileKey {
    /// A fresh random key from the OS.
    ///
    /// # Errors
    ///
    /// If the OS random generator fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())?;
        Ok(Self(key))
    }

    /// The key from its 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// What a chat message says about its attached file (validated [`proto::FileRef`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The file's name (no directories).
    pub name: String,
    /// The plaintext size.
    pub size: u64,
    /// The MIME type.
    pub mime: String,
    /// The bao root hash of the encrypted content.
    pub hash: [u8; 32],
    /// The content key.
    pub key: FileKey,
    /// The encrypted content, for files of at most [`MAX_INLINE_FILE_BYTES`].
    pub inline: Option<Vec<u8>>,
}

impl FileRef {
    /// Checks a received reference: lengths, ranges, a name without directories, and inline
    /// content of exactly the encrypted size (its hash is checked by whoever stores it).
    ///
    /// # Errors
    ///
    /// [`FileError::InvalidRef`] naming the field.
    pub fn from_proto(p: &proto::FileRef) -> Result<Self, FileError> {
        if p.name.is_empty() || p.name.len() > MAX_NAME_BYTES {
            return Err(FileError::InvalidRef("name is empty or too long"));
        }
        if p.name.contains(['/', '\\', '\0']) || p.name == "." || p.name == ".." {
            return Err(FileError::InvalidRef("name has a path in it"));
        }
        if p.mime.len() > MAX_MIME_BYTES || !p.mime.is_ascii() {
            return Err(FileError::InvalidRef("mime type is too long or not ASCII"));
        }
        if p.size > MAX_FILE_BYTES {
            return Err(FileError::InvalidRef("size is over the protocol's limit"));
        }
        if p.chunk_log != u32::from(CHUNK_LOG) {
            return Err(FileError::InvalidRef("unknown chunk size"));
        }
        let hash: [u8; 32] = p.hash[..]
            .try_into()
            .map_err(|_| FileError::InvalidRef("hash is not 32 bytes"))?;
        let key: [u8; 32] = p.key[..]
            .try_into()
            .map_err(|_| FileError::InvalidRef("key is not 32 bytes"))?;
        let inline = if p.inline_content.is_empty() {
            None
        } else {
            if p.size > MAX_INLINE_FILE_BYTES
                || p.inline_content.len() as u64 != encrypted_size(p.size)
            {
                return Err(FileError::InvalidRef("inline content has the wrong size"));
            }
            Some(p.inline_content.to_vec())
        };
        Ok(Self {
            name: p.name.clone(),
            size: p.size,
            mime: if p.mime.is_empty() {
                DEFAULT_MIME.to_string()
            } else {
                p.mime.clone()
            },
            hash,
            key: FileKey::from_bytes(key),
            inline,
        })
    }

    /// The wire form.
    #[must_use]
    pub fn to_proto(&self) -> proto::FileRef {
        proto::FileRef {
            name: self.name.clone(),
            size: self.size,
            mime: self.mime.clone(),
            hash: self.hash.to_vec().into(),
            key: self.key.as_bytes().to_vec().into(),
            chunk_log: u32::from(CHUNK_LOG),
            inline_content: self.inline.clone().unwrap_or_default().into(),
        }
    }

    /// The size of the encrypted content.
    #[must_use]
    pub fn encrypted_size(&self) -> u64 {
        encrypted_size(self.size)
    }

    /// How many chunks the content has.
    #[must_use]
    pub fn chunks(&self) -> u64 {
        chunk_count(self.size)
    }
}

/// How many chunks a plaintext of `size` bytes has (an empty file has one, empty, chunk).
#[must_use]
pub const fn chunk_count(size: u64) -> u64 {
    if size == 0 {
        1
    } else {
        size.div_ceil(PLAIN_CHUNK_BYTES as u64)
    }
}

/// The size of the encrypted content of a plaintext of `size` bytes.
#[must_use]
pub const fn encrypted_size(size: u64) -> u64 {
    size + chunk_count(size) * TAG_BYTES as u64
}

/// How many chunks `encrypted_size` bytes of encrypted content have.
#[must_use]
pub const fn chunk_count_encrypted(encrypted_size: u64) -> u64 {
    if encrypted_size <= ENCRYPTED_CHUNK_BYTES as u64 {
        1
    } else {
        encrypted_size.div_ceil(ENCRYPTED_CHUNK_BYTES as u64)
    }
}

/// The plaintext length of chunk `index` of a `size`-byte file.
fn plain_len(size: u64, index: u64) -> usize {
    let start = index * PLAIN_CHUNK_BYTES as u64;
    // Bounded by PLAIN_CHUNK_BYTES, so the cast cannot truncate.
    size.saturating_sub(start).min(PLAIN_CHUNK_BYTES as u64) as usize
}

/// Encrypts and decrypts the chunks of one file (its key and plaintext size).
pub struct ChunkCipher {
    cipher: ChaCha20Poly1305,
    size: u64,
    chunks: u64,
}

impl std::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCipher")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ChunkCipher {
    /// The cipher of a `size`-byte file under `key`.
    #[must_use]
    pub fn new(key: &FileKey, size: u64) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(key.as_bytes().into()),
            size,
            chunks: chunk_count(size),
        }
    }

    /// How many chunks the file has.
    #[must_use]
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// How many chunks `encrypted_size` bytes of encrypted content have.
    #[must_use]
    pub const fn chunk_count_encrypted(encrypted_size: u64) -> u64 {
        if encrypted_size <= ENCRYPTED_CHUNK_BYTES as u64 {
            1
        } else {
            encrypted_size.div_ceil(ENCRYPTED_CHUNK_BYTES as u64)
        }
    }

    /// The plaintext length of chunk `index`.
    #[must_use]
    pub fn plain_len(&self, index: u64) -> usize {
        plain_len(self.size, index)
    }

    fn nonce(&self, index: u64) -> Result<Nonce, FileError> {
        if index >= self.chunks {
            return Err(FileError::ChunkOutOfRange {
                index,
                chunks: self.chunks,
            });
        }
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(index + 1 == self.chunks);
        Ok(nonce.into())
    }

    fn aad(&self) -> [u8; AAD_DOMAIN.len() + 8] {
        let mut aad = [0u8; AAD_DOMAIN.len() + 8];
        aad[..AAD_DOMAIN.len()].copy_from_slice(AAD_DOMAIN);
        aad[AAD_DOMAIN.len()..].copy_from_slice(&self.size.to_be_bytes());
        aad
    }

    /// Encrypts chunk `index` (exactly its plaintext length).
    ///
    /// # Errors
    ///
    /// An index past the end, or a plaintext of the wrong length.
    pub fn encrypt(&self, index: u64, plain: &[u8]) -> Result<Vec<u8>, FileError> {
        let nonce = self.nonce(index)?;
        let expected = self.plain_len(index);
        if plain.len() != expected {
            return Err(FileError::ChunkLength {
                index,
                len: plain.len(),
                expected,
            });
        }
        let aad = self.aad();
        self.cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| FileError::Decrypt { index })
    }

    /// Decrypts chunk `index`.
    ///
    /// # Errors
    ///
    /// An index past the end, a chunk of the wrong length, or [`FileError::Decrypt`] (wrong
    /// key, or changed content).
    pub fn decrypt(&self, index: u64, encrypted: &[u8]) -> Result<Vec<u8>, FileError> {
        let nonce = self.nonce(index)?;
        let expected = self.plain_len(index) + TAG_BYTES;
        if encrypted.len() != expected {
            return Err(FileError::ChunkLength {
                index,
                len: encrypted.len(),
                expected,
            });
        }
        let aad = self.aad();
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: encrypted,
                    aad: &aad,
                },
            )
            .map_err(|_| FileError::Decrypt { index })
    }
}
