//! Stable smoke test of the `mailbox`, `channel` and `batch` fuzz targets:
//! runs the very entry functions cargo-fuzz runs (`fuzz/entry/*.rs`,
//! included below) on seeded pseudo-random bytes and on every truncation and
//! single-byte mutation of valid frames (the frozen wire vectors of
//! crates/rhizo-vectors among them), so CI exercises them without a nightly
//! toolchain. A panic or a failed assertion in an entry fails it.

use bytes::Bytes;
use rhizo_core::channel::ChannelPost;
use rhizo_core::envelope::{ErrorCode, SecureMessage};
use rhizo_core::mailbox::{FetchedEntry, MailboxRequest};

include!("../../../fuzz/entry/smoke.rs");

mod mailbox {
    include!("../../../fuzz/entry/mailbox.rs");
    /// The replica the entry verifies fetches against.
    pub(super) fn replica() -> Vec<u8> {
        MAILBOX_REPLICA.clone()
    }
    pub(super) fn run(data: &[u8]) {
        mailbox_entry(data);
    }
}

mod channel {
    include!("../../../fuzz/entry/channel.rs");
    /// The channel the entry checks posts against.
    pub(super) fn channel() -> ChannelId {
        entry_channel()
    }
    pub(super) fn run(data: &[u8]) {
        channel_entry(data);
    }
}

mod batch {
    include!("../../../fuzz/entry/batch.rs");
    pub(super) fn run(data: &[u8]) {
        batch_entry(data);
    }
}

/// Random inputs per decoder.
const RANDOM_INPUTS: usize = 2_000;
/// Longest random input: past the protobuf field headers, short of the limits.
const RANDOM_MAX_LEN: usize = 512;
/// Unix seconds of the frozen vectors.
const NOW: u64 = 1_700_000_000;

/// One frozen wire vector (crates/rhizo-vectors/tests/rhizo/wire_vectors.json,
/// quoted in docs/protocol.md §7), decoded from hex.
fn vector(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rhizo-vectors/tests/rhizo/wire_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("read wire_vectors.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parse wire_vectors.json");
    let hex = json[name]["hex"].as_str().expect("a hex vector");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Valid request and response frames of every kind: the frozen fetch and
/// delete, and the other requests and responses built around the frozen
/// envelope and certificate.
fn mailbox_frames() -> Vec<Vec<u8>> {
    use rhizo_core::mailbox::MailboxResponse as Resp;
    type Req = MailboxRequest;
    let envelope = Bytes::from(vector("secure_message"));
    let recipient = SecureMessage::decode(&envelope)
        .expect("envelope")
        .recipient_id;
    let requests = [
        Req::Store {
            recipient,
            envelope: envelope.clone(),
            ttl_secs: 3600,
            sender_cert: vector("device_certificate").into(),
        },
        Req::Challenge { recipient },
    ];
    let responses = [
        Resp::Stored {
            expires_at_ms: 5,
            duplicate: true,
        },
        Resp::Challenge {
            nonce: [8; 32],
            expires_at_ms: 6,
        },
        Resp::Fetched {
            entries: vec![FetchedEntry {
                envelope,
                expires_at_ms: 7,
            }],
            more: true,
            next_cursor: 9,
        },
        Resp::Deleted { count: 2 },
        Resp::Error {
            code: ErrorCode::RateLimited,
            detail: "slow down".to_owned(),
        },
    ];
    let mut frames = vec![
        vector("mailbox_fetch_request"),
        vector("mailbox_delete_request"),
    ];
    frames.extend(requests.iter().map(Req::encode));
    frames.extend(responses.iter().map(Resp::encode));
    frames
}

/// Runs `entry` on seeded random inputs and on the truncations and mutations
/// of every valid frame.
fn smoke(seed: u64, valid: &[Vec<u8>], entry: fn(&[u8])) {
    let mut rng = SmokeRng(seed);
    for input in rng.inputs(RANDOM_INPUTS, RANDOM_MAX_LEN) {
        entry(&input);
    }
    for frame in valid {
        entry(frame);
        for input in truncations_and_mutations(frame, &mut rng) {
            entry(&input);
        }
    }
}

#[test]
fn mailbox_entry_survives_random_and_damaged_frames() {
    let frames = mailbox_frames();
    // The frozen fetch reaches the entry's signature check and passes it.
    let Ok(MailboxRequest::Fetch(fetch)) = MailboxRequest::decode(&frames[0]) else {
        panic!("the first frame is the frozen fetch");
    };
    assert!(fetch.verify(&mailbox::replica(), NOW, 0).is_ok());
    smoke(1, &frames, mailbox::run);
}

#[test]
fn channel_entry_survives_random_and_damaged_posts() {
    let post = vector("channel_post");
    // The frozen post passes every check of the entry's channel and clock.
    let verified = ChannelPost::decode_verified(&post, &channel::channel(), NOW * 1000);
    let channel = verified.expect("the frozen post verifies").channel();
    let texts = [
        channel.to_string().into_bytes(),
        channel.topic().into_bytes(),
    ];
    let mut valid = vec![post];
    valid.extend(texts);
    smoke(2, &valid, channel::run);
}

#[test]
fn batch_entry_survives_random_and_damaged_frames() {
    smoke(3, &[vector("envelope_batch")], batch::run);
}
