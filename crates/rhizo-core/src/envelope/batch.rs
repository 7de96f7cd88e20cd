//! [`EnvelopeBatch`]: several envelopes in one `/rhizo/msg/1` request.
//!
//! ```text
//! frame = 0xB1 ‖ protobuf EnvelopeBatch { version = 1, envelopes = [2..=32 encoded SecureMessage] }
//! ```
//!
//! A bare envelope always starts with `0x08` (the tag of its version field, which canonical
//! encoding puts first), so [`is_batch_frame`] tells the two request forms apart by the first
//! byte. The codec checks the total size before parsing, then the version, the count and each
//! envelope's size; the envelopes themselves are decoded (and their signatures verified) by the
//! receiver one by one.

use bytes::Bytes;
use prost::Message as _;

use super::{EnvelopeError, MAX_ENVELOPE_BYTES, check_size};
use crate::proto;

/// The first byte of a batch frame.
pub const BATCH_FRAME_MARKER: u8 = 0xB1;
/// The only batch version this build reads and writes.
pub const BATCH_VERSION: u32 = 1;
/// Most envelopes in one batch (a receipt answers each with one entry).
pub const MAX_BATCH_ENVELOPES: usize = 32;
/// Largest batch frame, marker included. Below the 512 KiB request limit of `/rhizo/msg/1`.
pub const MAX_BATCH_FRAME_BYTES: usize = 480 * 1024;

/// Whether a `/rhizo/msg/1` request is a batch frame (else it is one bare envelope).
pub fn is_batch_frame(request: &[u8]) -> bool {
    request.first() == Some(&BATCH_FRAME_MARKER)
}

/// An ordered batch of encoded envelopes to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeBatch {
    /// The encoded envelopes, in the order the recipient applies them.
    pub envelopes: Vec<Bytes>,
}

impl EnvelopeBatch {
    /// The frame bytes (marker and protobuf). Refuses fewer than 2 or more than
    /// [`MAX_BATCH_ENVELOPES`] envelopes, an envelope over [`MAX_ENVELOPE_BYTES`] and a frame
    /// over [`MAX_BATCH_FRAME_BYTES`], so whatever it returns decodes.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        check_count(self.envelopes.len())?;
        for e in &self.envelopes {
            check_size(e.len(), MAX_ENVELOPE_BYTES)?;
        }
        let wire = proto::EnvelopeBatch {
            version: BATCH_VERSION,
            envelopes: self.envelopes.clone(),
        };
        let mut out = Vec::with_capacity(1 + wire.encoded_len());
        out.push(BATCH_FRAME_MARKER);
        wire.encode(&mut out).map_err(|_| EnvelopeError::TooLarge {
            len: usize::MAX,
            max: MAX_BATCH_FRAME_BYTES,
        })?;
        check_size(out.len(), MAX_BATCH_FRAME_BYTES)?;
        Ok(out)
    }

    /// Parses a batch frame: size first, then marker, protobuf, version, count and each
    /// envelope's size.
    pub fn decode(frame: &[u8]) -> Result<Self, EnvelopeError> {
        check_size(frame.len(), MAX_BATCH_FRAME_BYTES)?;
        let Some((&BATCH_FRAME_MARKER, body)) = frame.split_first() else {
            return Err(EnvelopeError::NotABatch);
        };
        let wire = proto::EnvelopeBatch::decode(body)?;
        if wire.version != BATCH_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(wire.version));
        }
        check_count(wire.envelopes.len())?;
        for e in &wire.envelopes {
            check_size(e.len(), MAX_ENVELOPE_BYTES)?;
        }
        Ok(Self {
            envelopes: wire.envelopes,
        })
    }
}

fn check_count(count: usize) -> Result<(), EnvelopeError> {
    if !(2..=MAX_BATCH_ENVELOPES).contains(&count) {
        return Err(EnvelopeError::BatchCount {
            count,
            max: MAX_BATCH_ENVELOPES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::envelope::ErrorCode;

    fn batch(n: usize, len: usize) -> EnvelopeBatch {
        EnvelopeBatch {
            envelopes: (0..n)
                .map(|i| Bytes::from(vec![u8::try_from(i % 251).unwrap_or(0); len]))
                .collect(),
        }
    }

    #[test]
    fn round_trip_and_marker() {
        let b = batch(3, 100);
        let frame = b.encode().expect("encode");
        assert!(is_batch_frame(&frame));
        assert_eq!(EnvelopeBatch::decode(&frame).expect("decode"), b);
        // A bare envelope starts with its version tag, never with the marker.
        assert!(!is_batch_frame(&[0x08, 0x01]));
        assert!(!is_batch_frame(&[]));
    }

    #[test]
    fn counts_sizes_and_versions_are_checked() {
        for n in [0, 1, MAX_BATCH_ENVELOPES + 1] {
            let e = batch(n, 10).encode().expect_err("count");
            assert!(matches!(e, EnvelopeError::BatchCount { count, .. } if count == n));
            assert_eq!(e.code(), ErrorCode::Malformed);
        }
        // Each envelope within its own limit, the frame over its limit.
        let e = batch(2, MAX_ENVELOPE_BYTES + 1)
            .encode()
            .expect_err("envelope size");
        assert_eq!(e.code(), ErrorCode::TooLarge);
        let e = batch(2, MAX_BATCH_FRAME_BYTES / 2)
            .encode()
            .expect_err("frame size");
        assert_eq!(e.code(), ErrorCode::TooLarge);
        // Decoding checks the same, plus the marker and the version.
        let big = vec![BATCH_FRAME_MARKER; MAX_BATCH_FRAME_BYTES + 1];
        assert!(matches!(
            EnvelopeBatch::decode(&big),
            Err(EnvelopeError::TooLarge { .. })
        ));
        assert!(matches!(
            EnvelopeBatch::decode(&[0x08, 0x01]),
            Err(EnvelopeError::NotABatch)
        ));
        let mut v2 = vec![BATCH_FRAME_MARKER];
        proto::EnvelopeBatch {
            version: 2,
            envelopes: batch(2, 4).envelopes,
        }
        .encode(&mut v2)
        .expect("encode");
        assert!(matches!(
            EnvelopeBatch::decode(&v2),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        let mut one = vec![BATCH_FRAME_MARKER];
        proto::EnvelopeBatch {
            version: BATCH_VERSION,
            envelopes: batch(1, 4).envelopes,
        }
        .encode(&mut one)
        .expect("encode");
        assert!(matches!(
            EnvelopeBatch::decode(&one),
            Err(EnvelopeError::BatchCount { count: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut frame = vec![BATCH_FRAME_MARKER];
            frame.extend(&bytes);
            if let Ok(b) = EnvelopeBatch::decode(&frame) {
                prop_assert!((2..=MAX_BATCH_ENVELOPES).contains(&b.envelopes.len()));
            }
            let _ = EnvelopeBatch::decode(&bytes);
        }
    }
}
