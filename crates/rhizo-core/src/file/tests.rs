use proptest::prelude::*;

use super::verified::{
    compute_outboard, decode_chunks, encode_chunks, outboard_size, valid_chunks,
};
use super::wire::{FileRequest, FileStatus, MAX_CHUNKS_PER_REQUEST};
use super::*;

/// Encrypts `plain` whole (tests only; the node streams chunk by chunk).
fn encrypt_all(key: &FileKey, plain: &[u8]) -> Vec<u8> {
    let cipher = ChunkCipher::new(key, plain.len() as u64);
    let mut out = Vec::new();
    for i in 0..cipher.chunks() {
        let start = (i as usize) * PLAIN_CHUNK_BYTES;
        let len = cipher.plain_len(i);
        out.extend(
            cipher
                .encrypt(i, &plain[start..start + len])
                .expect("encrypt"),
        );
    }
    out
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Content, outboard and hash of `len` bytes of plaintext.
fn held(key: &FileKey, len: usize) -> (Vec<u8>, Vec<u8>, [u8; 32]) {
    let enc = encrypt_all(key, &content(len));
    assert_eq!(enc.len() as u64, encrypted_size(len as u64));
    let mut ob = vec![0u8; outboard_size(enc.len() as u64) as usize];
    let hash = compute_outboard(&enc[..], enc.len() as u64, &mut ob).expect("outboard");
    (enc, ob, hash)
}

#[test]
fn chunk_sizes_line_up_with_the_tree() {
    assert_eq!(ENCRYPTED_CHUNK_BYTES, 65_536);
    assert_eq!(chunk_count(0), 1);
    assert_eq!(encrypted_size(0), 16);
    assert_eq!(chunk_count(PLAIN_CHUNK_BYTES as u64), 1);
    assert_eq!(chunk_count(PLAIN_CHUNK_BYTES as u64 + 1), 2);
    assert_eq!(encrypted_size(PLAIN_CHUNK_BYTES as u64), 65_536);
    for size in [0, 1, 65_519, 65_520, 65_521, 1 << 20, 50 << 20] {
        assert_eq!(
            chunk_count_encrypted(encrypted_size(size)),
            chunk_count(size)
        );
    }
}

#[test]
fn a_wrong_key_or_a_moved_chunk_gives_a_clear_error() {
    let key = FileKey::from_bytes([1; 32]);
    let plain = content(3 * PLAIN_CHUNK_BYTES);
    let enc = encrypt_all(&key, &plain);
    let cipher = ChunkCipher::new(&key, plain.len() as u64);
    let chunk = |i: usize| &enc[i * ENCRYPTED_CHUNK_BYTES..(i + 1) * ENCRYPTED_CHUNK_BYTES];
    assert_eq!(
        cipher.decrypt(1, chunk(1)).expect("decrypts"),
        &plain[PLAIN_CHUNK_BYTES..2 * PLAIN_CHUNK_BYTES]
    );
    let wrong = ChunkCipher::new(&FileKey::from_bytes([2; 32]), plain.len() as u64);
    let err = wrong.decrypt(0, chunk(0)).expect_err("wrong key");
    assert!(matches!(err, FileError::Decrypt { index: 0 }));
    assert!(err.to_string().contains("key is wrong"), "{err}");
    // Swapped chunks, and a file truncated to its first two chunks (the last flag).
    assert!(cipher.decrypt(0, chunk(1)).is_err());
    let truncated = ChunkCipher::new(&key, 2 * PLAIN_CHUNK_BYTES as u64);
    assert!(truncated.decrypt(1, chunk(1)).is_err());
    assert!(matches!(
        cipher.decrypt(3, chunk(0)),
        Err(FileError::ChunkOutOfRange {
            index: 3,
            chunks: 3
        })
    ));
}

#[test]
fn chunks_round_trip_through_the_verified_tree_and_resume_from_what_is_valid() {
    let key = FileKey::from_bytes([9; 32]);
    let len = 5 * PLAIN_CHUNK_BYTES + 1000;
    let (enc, ob, hash) = held(&key, len);
    let size = enc.len() as u64;
    let mut got = vec![0u8; enc.len()];
    let mut got_ob = vec![0u8; ob.len()];
    // Chunks 2..4 first, then the rest: only verified chunks count as present.
    let mut wire = Vec::new();
    encode_chunks(&enc[..], &ob[..], &hash, size, (2, 4), &mut wire).expect("encode");
    decode_chunks(&wire, &hash, size, (2, 4), &mut got, &mut got_ob).expect("verified");
    let valid = valid_chunks(&got[..], &got_ob[..], &hash, size).expect("valid");
    assert_eq!(valid, [false, false, true, true, false, false]);
    for range in [(0, 2), (4, 6)] {
        let mut wire = Vec::new();
        encode_chunks(&enc[..], &ob[..], &hash, size, range, &mut wire).expect("encode");
        decode_chunks(&wire, &hash, size, range, &mut got, &mut got_ob).expect("verified");
    }
    assert_eq!(got, enc);
    assert!(
        valid_chunks(&got[..], &got_ob[..], &hash, size)
            .expect("valid")
            .iter()
            .all(|v| *v)
    );
    let cipher = ChunkCipher::new(&key, len as u64);
    let last = cipher
        .decrypt(5, &got[5 * ENCRYPTED_CHUNK_BYTES..])
        .expect("last chunk");
    assert_eq!(last, &content(len)[5 * PLAIN_CHUNK_BYTES..]);
}

#[test]
fn a_tampered_chunk_or_a_wrong_hash_is_refused_before_anything_is_written() {
    let key = FileKey::from_bytes([3; 32]);
    let (enc, ob, hash) = held(&key, 4 * PLAIN_CHUNK_BYTES);
    let size = enc.len() as u64;
    let mut wire = Vec::new();
    encode_chunks(&enc[..], &ob[..], &hash, size, (1, 3), &mut wire).expect("encode");
    let mut tampered = wire.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    let mut got = vec![0u8; enc.len()];
    let mut got_ob = vec![0u8; ob.len()];
    let err =
        decode_chunks(&tampered, &hash, size, (1, 3), &mut got, &mut got_ob).expect_err("tampered");
    assert!(matches!(err, FileError::HashMismatch(_)), "{err}");
    assert!(
        got[2 * ENCRYPTED_CHUNK_BYTES..].iter().all(|b| *b == 0),
        "bad chunk not written"
    );
    let mut other = hash;
    other[0] ^= 1;
    assert!(decode_chunks(&wire, &other, size, (1, 3), &mut got, &mut got_ob).is_err());
    // A holder whose copy is corrupt refuses to serve it.
    let mut bad = enc.clone();
    bad[ENCRYPTED_CHUNK_BYTES + 5] ^= 1;
    let mut out = Vec::new();
    assert!(encode_chunks(&bad[..], &ob[..], &hash, size, (1, 2), &mut out).is_err());
    // Extra bytes after the chunks are refused too.
    let mut longer = wire.clone();
    longer.push(0);
    assert!(decode_chunks(&longer, &hash, size, (1, 3), &mut got, &mut got_ob).is_err());
}

#[test]
fn file_refs_are_validated() {
    let good = FileRef {
        name: "cat.png".into(),
        size: 10,
        mime: "image/png".into(),
        hash: [1; 32],
        key: FileKey::from_bytes([2; 32]),
        inline: None,
    };
    assert_eq!(FileRef::from_proto(&good.to_proto()).expect("valid"), good);
    let bad = |f: &dyn Fn(&mut proto::FileRef)| {
        let mut p = good.to_proto();
        f(&mut p);
        FileRef::from_proto(&p).expect_err("invalid")
    };
    bad(&|p| p.name = "../etc/passwd".into());
    bad(&|p| p.name = String::new());
    bad(&|p| p.hash = vec![0; 31].into());
    bad(&|p| p.key = vec![0; 33].into());
    bad(&|p| p.chunk_log = 7);
    bad(&|p| p.size = MAX_FILE_BYTES + 1);
    bad(&|p| p.inline_content = vec![0; 3].into());
    assert!(
        format!("{:?}", good.key).contains(".."),
        "the key never shows"
    );
}

proptest! {
    #[test]
    fn any_file_round_trips(len in 0usize..200_000, key in any::<[u8; 32]>()) {
        let key = FileKey::from_bytes(key);
        let plain = content(len);
        let enc = encrypt_all(&key, &plain);
        let cipher = ChunkCipher::new(&key, len as u64);
        let mut back = Vec::new();
        for (i, chunk) in enc.chunks(ENCRYPTED_CHUNK_BYTES).enumerate() {
            back.extend(cipher.decrypt(i as u64, chunk).expect("decrypt"));
        }
        prop_assert_eq!(back, plain);
    }

    #[test]
    fn requests_round_trip(hash in any::<[u8; 32]>(), start in 0u64..u64::MAX - 20, n in 1..=MAX_CHUNKS_PER_REQUEST) {
        let req = FileRequest { hash, start, end: start + n };
        prop_assert_eq!(FileRequest::decode(&req.encode()).expect("valid"), req);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = FileRequest::decode(&bytes);
        let _ = FileStatus::of(&bytes);
        let _ = <proto::FileRef as prost::Message>::decode(&bytes[..])
            .map(|p| FileRef::from_proto(&p));
    }

    #[test]
    fn a_response_of_random_bytes_never_verifies(junk in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let key = FileKey::from_bytes([5; 32]);
        let (enc, ob, hash) = held(&key, 2 * PLAIN_CHUNK_BYTES);
        let mut got = vec![0u8; enc.len()];
        let mut got_ob = vec![0u8; ob.len()];
        prop_assert!(decode_chunks(&junk, &hash, enc.len() as u64, (0, 2), &mut got, &mut got_ob).is_err());
    }
}
