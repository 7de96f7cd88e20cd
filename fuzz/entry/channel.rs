// Entry of the `channel` fuzz target, shared with the stable smoke test in
// crates/rhizo-core/tests/decoder_smoke.rs (both `include!` this file).
//
// `ChannelPost::decode_verified` is what every subscriber runs on every
// gossipsub message of a channel; `ChannelId::from_str` / `from_topic` parse
// what a user pastes and what gossipsub hands over. None may panic; an
// accepted post must re-encode to exactly its bytes, and an accepted id must
// print back to a string that parses to the same id.

use std::str::FromStr as _;

use rhizo_core::RootKey;
use rhizo_core::channel::{ChannelId, ChannelPost};

/// Unix milliseconds: the post time window is checked against it.
const CHANNEL_NOW_MS: u64 = 1_700_000_000_000;

/// The channel posts are checked against: the one of the frozen
/// `channel_post` vector (creator seed `[1; 32]`, "news"), so seeds made from
/// it reach the signature check.
fn entry_channel() -> ChannelId {
    ChannelId::new(&RootKey::from_bytes(&[1; 32]).public(), "news")
}

/// Runs the channel decoders on `data`.
fn channel_entry(data: &[u8]) {
    let channel = entry_channel();
    for now_ms in [CHANNEL_NOW_MS, CHANNEL_NOW_MS + 1_000, 0, u64::MAX] {
        if let Ok(post) = ChannelPost::decode_verified(data, &channel, now_ms) {
            assert_eq!(
                post.encode(),
                data,
                "an accepted post re-encodes to its bytes"
            );
            assert_eq!(post.channel(), channel);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = ChannelId::from_str(text) {
            assert_eq!(ChannelId::from_str(&id.to_string()), Ok(id));
        }
        if let Some(id) = ChannelId::from_topic(text) {
            assert_eq!(id.topic(), text, "a parsed topic prints back unchanged");
        }
    }
}
