//! `/rhizo/file/1`: one request asks a holder for a range of a file's encrypted chunks by the
//! file's hash; the response carries them with their bao proofs, or a status saying why not.
//!
//! ```text
//!  request:  version (1 byte, 1) ‖ hash (32) ‖ start chunk (u64 BE) ‖ end chunk (u64 BE, excl.)
//!  response: status (1 byte) ‖ [status OK: the bao encoding of the chunks start..end]
//! ```

use super::{ENCRYPTED_CHUNK_BYTES, FileError};

/// The protocol id.
pub const FILE_PROTOCOL: &str = "/rhizo/file/1";
/// The request format's version byte.
pub const REQUEST_VERSION: u8 = 1;
/// Bytes of a request.
pub const REQUEST_BYTES: usize = 1 + 32 + 8 + 8;
/// Most chunks one request may ask for (1 MiB of content): a response stays bounded.
pub const MAX_CHUNKS_PER_REQUEST: u64 = 16;
/// Largest response: the chunks, their proofs (at most 64 bytes per tree level and chunk) and
/// the status byte.
pub const MAX_RESPONSE_BYTES: usize =
    MAX_CHUNKS_PER_REQUEST as usize * (ENCRYPTED_CHUNK_BYTES + 64 * 64) + 1;

/// A request for chunks `start..end` of the file with content hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRequest {
    /// The file's hash.
    pub hash: [u8; 32],
    /// The first chunk.
    pub start: u64,
    /// One past the last chunk.
    pub end: u64,
}

impl FileRequest {
    /// The request's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REQUEST_BYTES);
        out.push(REQUEST_VERSION);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        out
    }

    /// Parses a request: its length, version and a non-empty range of at most
    /// [`MAX_CHUNKS_PER_REQUEST`] chunks.
    ///
    /// # Errors
    ///
    /// [`FileError::Wire`] saying what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, FileError> {
        if bytes.len() != REQUEST_BYTES {
            return Err(FileError::Wire("request has the wrong length"));
        }
        if bytes[0] != REQUEST_VERSION {
            return Err(FileError::Wire("unknown request version"));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[1..33]);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[33..41]);
        let start = u64::from_be_bytes(word);
        word.copy_from_slice(&bytes[41..49]);
        let end = u64::from_be_bytes(word);
        if end <= start || end - start > MAX_CHUNKS_PER_REQUEST {
            return Err(FileError::Wire("chunk range is empty or too long"));
        }
        Ok(Self { hash, start, end })
    }
}

/// The status byte of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FileStatus {
    /// The chunks follow.
    Ok = 0,
    /// This node holds no such file (or not those chunks yet).
    NotFound = 1,
    /// The requester is not a member of a conversation the file was sent in.
    Forbidden = 2,
    /// Too many requests from this peer: ask again later.
    Busy = 3,
    /// The request is malformed or asks past the end of the file.
    BadRequest = 4,
}

impl FileStatus {
    /// The status of a response's first byte.
    ///
    /// # Errors
    ///
    /// [`FileError::Wire`] for an empty response or an unknown status.
    pub fn of(response: &[u8]) -> Result<(Self, &[u8]), FileError> {
        let (&first, rest) = response
            .split_first()
            .ok_or(FileError::Wire("empty response"))?;
        let status = match first {
            0 => Self::Ok,
            1 => Self::NotFound,
            2 => Self::Forbidden,
            3 => Self::Busy,
            4 => Self::BadRequest,
            _ => return Err(FileError::Wire("unknown response status")),
        };
        Ok((status, rest))
    }

    /// A response carrying only this status.
    #[must_use]
    pub fn response(self) -> Vec<u8> {
        vec![self as u8]
    }
}
