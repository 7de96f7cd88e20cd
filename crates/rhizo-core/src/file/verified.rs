//! The verified tree over a file's encrypted content, with `bao-tree` (BLAKE3 verified
//! streaming; the tree is the crate's, not written here): the outboard (the tree's hash pairs,
//! pre-order, beside the content), encoding chunk ranges with their proofs for a requester, and
//! decoding a response so that only verified chunks are ever written.
//!
//! Everything here is generic over positioned reads and writes (`ReadAt`, `WriteAt`): the
//! caller passes files, or byte vectors in tests. Chunk numbers are the file's 64 KiB encrypted
//! chunks (one bao chunk group each).

use std::io::Read;

use bao_tree::{
    BaoTree, BlockSize, ChunkNum, ChunkRanges, blake3,
    io::{
        DecodeError, EncodeError,
        outboard::PreOrderOutboard,
        sync::{ReadAt, WriteAt, decode_ranges, encode_ranges_validated, outboard, valid_ranges},
    },
};

use super::{CHUNK_LOG, FileError};

/// BLAKE3 chunks (1 KiB) per encrypted chunk.
const BLAKE3_CHUNKS_PER_CHUNK: u64 = 1 << CHUNK_LOG;

/// The tree of `encrypted_size` bytes of encrypted content.
#[must_use]
pub fn tree(encrypted_size: u64) -> BaoTree {
    BaoTree::new(encrypted_size, BlockSize::from_chunk_log(CHUNK_LOG))
}

/// The size of the outboard of `encrypted_size` bytes of encrypted content.
#[must_use]
pub fn outboard_size(encrypted_size: u64) -> u64 {
    tree(encrypted_size).outboard_size()
}

/// Encrypted chunks `start..end`, as the tree's ranges.
#[must_use]
pub fn chunk_ranges(start: u64, end: u64) -> ChunkRanges {
    ChunkRanges::from(
        ChunkNum(start.saturating_mul(BLAKE3_CHUNKS_PER_CHUNK))
            ..ChunkNum(end.saturating_mul(BLAKE3_CHUNKS_PER_CHUNK)),
    )
}

fn pre_order<D>(hash: &[u8; 32], encrypted_size: u64, data: D) -> PreOrderOutboard<D> {
    PreOrderOutboard {
        root: blake3::Hash::from_bytes(*hash),
        tree: tree(encrypted_size),
        data,
    }
}

fn encode_error(e: EncodeError) -> FileError {
    match e {
        EncodeError::Io(e) => FileError::Io(e),
        other => FileError::HashMismatch(other.to_string()),
    }
}

fn decode_error(e: DecodeError) -> FileError {
    match e {
        DecodeError::Io(e) => FileError::Io(e),
        other => FileError::HashMismatch(other.to_string()),
    }
}

/// Reads `encrypted_size` bytes of encrypted content from `data`, writes its outboard into
/// `target` ([`outboard_size`] bytes) and returns the root hash (the file's hash).
///
/// # Errors
///
/// If reading or writing fails (content shorter than `encrypted_size` included).
pub fn compute_outboard(
    data: impl Read,
    encrypted_size: u64,
    target: impl WriteAt,
) -> Result<[u8; 32], FileError> {
    let tree = tree(encrypted_size);
    let mut ob = PreOrderOutboard {
        root: blake3::Hash::from_bytes([0; 32]),
        tree,
        data: target,
    };
    let root = outboard(data, tree, &mut ob).map_err(FileError::Io)?;
    Ok(*root.as_bytes())
}

/// Appends encrypted chunks `start..end` of a file (its content `data` and outboard
/// `outboard_data`) with the proofs a requester needs, checking them against `hash` on the way
/// (a holder never serves content that is not what it claims).
///
/// # Errors
///
/// [`FileError::HashMismatch`] if the held content or outboard is not the file's, or I/O.
pub fn encode_chunks(
    data: impl ReadAt,
    outboard_data: impl ReadAt,
    hash: &[u8; 32],
    encrypted_size: u64,
    (start, end): (u64, u64),
    out: &mut Vec<u8>,
) -> Result<(), FileError> {
    let ob = pre_order(hash, encrypted_size, outboard_data);
    encode_ranges_validated(data, ob, &chunk_ranges(start, end), out).map_err(encode_error)
}

/// Verifies a response carrying encrypted chunks `start..end` against `hash` and writes each
/// chunk into `data` (and the proof's hash pairs into `outboard_data`) only once it is verified.
///
/// # Errors
///
/// [`FileError::HashMismatch`] for content that is not the file's (a missing, changed or
/// extra byte), or I/O.
pub fn decode_chunks<O: ReadAt + WriteAt>(
    encoded: &[u8],
    hash: &[u8; 32],
    encrypted_size: u64,
    (start, end): (u64, u64),
    data: impl WriteAt,
    outboard_data: O,
) -> Result<(), FileError> {
    let ob = pre_order(hash, encrypted_size, outboard_data);
    let mut reader = std::io::Cursor::new(encoded);
    decode_ranges(&mut reader, &chunk_ranges(start, end), data, ob).map_err(decode_error)?;
    if reader.position() != encoded.len() as u64 {
        return Err(FileError::HashMismatch(
            "bytes left over after the requested chunks".into(),
        ));
    }
    Ok(())
}

/// Which chunks of a partly fetched file (`data` and `outboard_data` as written by
/// [`decode_chunks`]) are present and verified: what a restarted fetch need not ask for again.
///
/// # Errors
///
/// I/O errors reading the files.
pub fn valid_chunks(
    data: impl ReadAt,
    outboard_data: impl ReadAt,
    hash: &[u8; 32],
    encrypted_size: u64,
) -> Result<Vec<bool>, FileError> {
    let chunks = super::chunk_count_encrypted(encrypted_size);
    let mut valid = vec![false; usize::try_from(chunks).unwrap_or(usize::MAX)];
    let ob = pre_order(hash, encrypted_size, outboard_data);
    let all = ChunkRanges::all();
    for range in valid_ranges(ob, data, &all) {
        let range = range.map_err(FileError::Io)?;
        let first = range.start.0 / BLAKE3_CHUNKS_PER_CHUNK;
        let last = range.end.0.div_ceil(BLAKE3_CHUNKS_PER_CHUNK);
        for i in first..last.min(chunks) {
            if let Some(v) = valid.get_mut(usize::try_from(i).unwrap_or(usize::MAX)) {
                *v = true;
            }
        }
    }
    Ok(valid)
}
