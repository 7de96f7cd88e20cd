//! Public broadcast channels over gossipsub: [`ChannelId`], signed [`ChannelPost`]s and the
//! [`PostDedupe`] cache in front of them.
//!
//! ```text
//!  ChannelId = SHA-256("rhizo/channel/v1" ‖ creator root key ‖ name)
//!     └─ topic() = "rhizo/channel/" ‖ lowercase base32 (52 characters)
//!
//!  author device ── ChannelPost::new(device, cert, channel, text, sent_at_ms, nonce)
//!                        └─ encode() ──► gossipsub publish (message id = post_id = SHA-256(bytes))
//!
//!  gossipsub message on a channel topic
//!     └─ PostDedupe::first_time(post_id_of(bytes))? ── no ──► drop (already seen)
//!           └─ yes: ChannelPost::decode_verified(bytes, &channel, now_ms)
//!                 size ≤ 8 KiB → canonical protobuf → field lengths → text 1..=4096 bytes
//!                 → channel matches the topic → sent_at within [now − 7 d, now + 5 min]
//!                 → certificate signed by its root → post signed by the certified device
//! ```
//!
//! Posts are public: signed (so the author's UID is known and nobody can post in their name) but
//! not encrypted. Anyone who knows a channel's id can read and post; a channel's name and creator
//! only serve to derive its id (see [`ChannelDescriptor`]).

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use bytes::Bytes;
use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE};
use lru::LruCache;
use prost::Message as _;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::error::CertError;
use crate::identity::{
    self, DEVICE_CERT_LEN, DeviceCertificate, DeviceKey, DevicePublicKey, RootPublicKey,
    SIGNATURE_LEN, Uid,
};
use crate::proto;

/// Domain tag hashed before the creator's root key and the name to derive a [`ChannelId`].
pub const CHANNEL_ID_DOMAIN: &[u8] = b"rhizo/channel/v1";
/// Domain tag of a channel's provider key ([`ChannelId::provider_key`]).
pub const CHANNEL_PROVIDER_DOMAIN: &[u8] = b"rhizo/channel-providers/v1";
/// Domain tag in front of the signed encoding of a [`ChannelPost`].
pub const CHANNEL_POST_DOMAIN: &[u8] = b"rhizo/channel-post/v1";
/// Prefix of a channel's gossipsub topic; the id's text form follows.
pub const CHANNEL_TOPIC_PREFIX: &str = "rhizo/channel/";
/// Length of a [`ChannelId`].
pub const CHANNEL_ID_LEN: usize = 32;
/// Length of a [`ChannelId`]'s text form: 256 bits in base32 without padding.
pub const CHANNEL_ID_TEXT_LEN: usize = 52;
/// Longest channel name, in characters (see [`ChannelDescriptor::new`]).
pub const MAX_CHANNEL_NAME_CHARS: usize = 64;
/// Longest post text, in bytes of UTF-8.
pub const MAX_POST_TEXT_BYTES: usize = 4096;
/// Length of a post's random nonce.
pub const POST_NONCE_LEN: usize = 16;
/// Largest encoded post accepted, checked before parsing.
pub const MAX_POST_BYTES: usize = 8 * 1024;
/// How far in the future a post's `sent_at_ms` may be: 5 minutes of clock difference.
pub const MAX_POST_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Oldest post accepted: 7 days (gossipsub does not replay history, so older posts are replays).
pub const MAX_POST_AGE_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Default capacity of a [`PostDedupe`].
pub const DEFAULT_DEDUPE_CAPACITY: usize = 8192;

/// Most bytes a post `ChannelPost::new` accepts can encode to: tags, lengths and fields at their
/// limits, the varint at 10 bytes.
const MAX_VALID_POST_BYTES: usize = (2 + CHANNEL_ID_LEN)
    + (3 + DEVICE_CERT_LEN)
    + (3 + MAX_POST_TEXT_BYTES)
    + (1 + 10)
    + (2 + POST_NONCE_LEN)
    + (2 + SIGNATURE_LEN);
const _: () = assert!(MAX_VALID_POST_BYTES <= MAX_POST_BYTES);

/// A channel's id: SHA-256(`"rhizo/channel/v1"` ‖ creator root public key ‖ name as UTF-8).
///
/// `Display` prints 52 lowercase base32 characters (no padding); `FromStr` reads that form (and
/// the same in upper case). `Debug` shows `ChannelId(<text>)`.
///
/// ```
/// use rhizo_core::RootKey;
/// use rhizo_core::channel::ChannelId;
///
/// let creator = RootKey::from_bytes(&[7u8; 32]).public();
/// let id = ChannelId::new(&creator, "rust");
/// let text = id.to_string();
/// assert_eq!(text.len(), 52);
/// assert_eq!(text.parse::<ChannelId>(), Ok(id));
/// assert_eq!(id.topic(), format!("rhizo/channel/{text}"));
/// assert_eq!(ChannelId::from_topic(&id.topic()), Some(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId([u8; CHANNEL_ID_LEN]);

impl ChannelId {
    /// Derives the id of the channel `name` created by `creator`. Any name gives an id; use
    /// [`ChannelDescriptor::new`] to also check the name.
    pub fn new(creator: &RootPublicKey, name: &str) -> Self {
        Self(
            Sha256::new()
                .chain_update(CHANNEL_ID_DOMAIN)
                .chain_update(creator.as_bytes())
                .chain_update(name.as_bytes())
                .finalize()
                .into(),
        )
    }

    /// Wraps 32 raw bytes (for example read back from storage or from a post).
    pub fn from_bytes(bytes: [u8; CHANNEL_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; CHANNEL_ID_LEN] {
        &self.0
    }

    /// The channel's gossipsub topic: `"rhizo/channel/"` ‖ the text form.
    pub fn topic(&self) -> String {
        format!("{CHANNEL_TOPIC_PREFIX}{self}")
    }

    /// The DHT key under which the channel's members announce themselves as providers: a
    /// sha2-256 multihash (`0x12 0x20` ‖ SHA-256([`CHANNEL_PROVIDER_DOMAIN`] ‖ id)), so that any
    /// libp2p Kademlia implementation can look it up as the CIDv1 (raw codec) of that multihash.
    pub fn provider_key(&self) -> Vec<u8> {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(CHANNEL_PROVIDER_DOMAIN)
            .chain_update(self.0)
            .finalize()
            .into();
        let mut key = Vec::with_capacity(2 + digest.len());
        key.extend([0x12, 0x20]);
        key.extend(digest);
        key
    }

    /// The channel whose [`topic`](Self::topic) is `topic`, or `None` if `topic` is not a
    /// channel topic (only the canonical lowercase form is accepted).
    pub fn from_topic(topic: &str) -> Option<Self> {
        let text = topic.strip_prefix(CHANNEL_TOPIC_PREFIX)?;
        let id: Self = text.parse().ok()?;
        (id.to_string() == text).then_some(id)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({self})")
    }
}

/// Error from parsing a [`ChannelId`]'s text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChannelIdError {
    /// Not 52 characters long.
    #[error("a channel id has {CHANNEL_ID_TEXT_LEN} characters, got {actual}; copy the whole id")]
    WrongLength {
        /// The number of characters given.
        actual: usize,
    },
    /// A character outside base32 (a–z, 2–7).
    #[error(
        "invalid character {character:?} at position {position} of the channel id: ids use only \
         the letters a-z and the digits 2-7"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its 1-based position.
        position: usize,
    },
    /// The last character has unused bits set, so the text is not the encoding of any id.
    #[error(
        "not a valid channel id: its last character cannot end a 32-byte id; copy it again from \
         its source"
    )]
    NonCanonical,
}

/// Parses 52 base32 characters, either case.
impl FromStr for ChannelId {
    type Err = ChannelIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let actual = s.chars().count();
        if actual != CHANNEL_ID_TEXT_LEN {
            return Err(ChannelIdError::WrongLength { actual });
        }
        if let Some((index, character)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c.to_ascii_lowercase(), 'a'..='z' | '2'..='7'))
        {
            return Err(ChannelIdError::InvalidCharacter {
                character,
                position: index + 1,
            });
        }
        let bytes = BASE32_NOPAD_NOCASE
            .decode(s.as_bytes())
            .map_err(|_| ChannelIdError::NonCanonical)?;
        let bytes = <[u8; CHANNEL_ID_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| ChannelIdError::NonCanonical)?;
        Ok(Self(bytes))
    }
}

/// What a channel invite carries: the id and the name (the name is for people; the id is what
/// subscribes and checks posts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelDescriptor {
    /// The channel's id.
    pub id: ChannelId,
    /// Its name as the creator chose it.
    pub name: String,
}

impl ChannelDescriptor {
    /// Describes the channel `name` created by `creator`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::InvalidName`] unless the name has 1 to [`MAX_CHANNEL_NAME_CHARS`]
    /// characters and no control characters.
    pub fn new(creator: &RootPublicKey, name: &str) -> Result<Self, ChannelError> {
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_CHANNEL_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(ChannelError::InvalidName);
        }
        Ok(Self {
            id: ChannelId::new(creator, name),
            name: name.to_owned(),
        })
    }

    /// Whether `creator` created this channel under this name (the id matches).
    pub fn is_created_by(&self, creator: &RootPublicKey) -> bool {
        ChannelId::new(creator, &self.name) == self.id
    }
}

/// Error from building or receiving a [`ChannelPost`] or a [`ChannelDescriptor`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The encoded post is larger than [`MAX_POST_BYTES`] (checked before parsing).
    #[error("channel post too large: {len} bytes, the limit is {max}; it was dropped unread")]
    TooLarge {
        /// The size received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid protobuf for a channel post (includes text that is not UTF-8).
    #[error("malformed channel post: not valid protobuf ({0}); it is corrupted or not a post")]
    Decode(#[source] prost::DecodeError),
    /// Valid protobuf, but not the one canonical encoding.
    #[error(
        "malformed channel post: valid protobuf but not in canonical form (field order, \
         duplicate or unknown fields); the author's encoder is broken or the post was altered"
    )]
    NonCanonical,
    /// A fixed-length field has the wrong length.
    #[error("malformed channel post: {field} must be {expected} bytes, got {actual}")]
    FieldLength {
        /// The field's name in the proto.
        field: &'static str,
        /// The only accepted length.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The text is empty or longer than [`MAX_POST_TEXT_BYTES`].
    #[error(
        "channel post text must be 1 to {MAX_POST_TEXT_BYTES} bytes of UTF-8, got {len}; \
         shorten it or split it into several posts"
    )]
    TextLength {
        /// The text's length in bytes.
        len: usize,
    },
    /// The post names another channel than the topic it arrived on.
    #[error(
        "channel post for channel {actual} arrived on the topic of channel {expected}; it was \
         replayed onto the wrong topic"
    )]
    WrongChannel {
        /// The channel of the topic.
        expected: ChannelId,
        /// The channel the post names.
        actual: ChannelId,
    },
    /// The author certificate does not decode or is not signed by its root key.
    #[error("channel post author certificate rejected: {0}")]
    Certificate(#[source] CertError),
    /// The device key signing a new post is not the one its certificate certifies.
    #[error(
        "this device key is not the one the author certificate certifies; post with the \
         device the certificate belongs to"
    )]
    SignerMismatch,
    /// The post's signature does not verify under the certified device key.
    #[error(
        "channel post signature is invalid: the post was altered or not signed by the \
         certified device"
    )]
    InvalidSignature,
    /// `sent_at_ms` is more than [`MAX_POST_CLOCK_SKEW_MS`] ahead of the receiver's clock.
    #[error(
        "channel post from the future: sent at {sent_at_ms} ms, newest accepted {newest_ms} ms; \
         the author's or this device's clock is wrong"
    )]
    FromTheFuture {
        /// The post's time.
        sent_at_ms: u64,
        /// The newest time accepted now.
        newest_ms: u64,
    },
    /// `sent_at_ms` is more than [`MAX_POST_AGE_MS`] behind the receiver's clock.
    #[error(
        "channel post too old: sent at {sent_at_ms} ms, oldest accepted {oldest_ms} ms; it is \
         a replay or the author's clock is wrong"
    )]
    TooOld {
        /// The post's time.
        sent_at_ms: u64,
        /// The oldest time accepted now.
        oldest_ms: u64,
    },
    /// A channel name is empty, too long or contains control characters.
    #[error(
        "a channel name must have 1 to {MAX_CHANNEL_NAME_CHARS} characters and no control \
         characters"
    )]
    InvalidName,
}

impl From<prost::DecodeError> for ChannelError {
    fn from(error: prost::DecodeError) -> Self {
        Self::Decode(error)
    }
}

/// SHA-256 of an encoded post: its id, the gossipsub message id and the dedupe key. Since only
/// the canonical encoding decodes, this equals [`ChannelPost::post_id`] of the decoded post.
pub fn post_id_of(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// One signed post to a channel (wire format: `ChannelPost` in `proto/channel.proto`).
///
/// Build one with [`new`](Self::new) and publish [`encode`](Self::encode); on receipt use
/// [`decode_verified`](Self::decode_verified), which returns only posts that passed every check.
///
/// ```
/// use rhizo_core::channel::{ChannelId, ChannelPost};
/// use rhizo_core::{DeviceKey, RootKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = RootKey::from_bytes(&[1; 32]);
/// let device = DeviceKey::from_bytes(&[2; 32]);
/// let cert = root.certify_device(&device.public(), 1_700_000_000);
/// let channel = ChannelId::new(&root.public(), "news");
/// let now = 1_700_000_000_000;
/// let post = ChannelPost::new(&device, &cert, channel, "hello", now, [3; 16])?;
///
/// let received = ChannelPost::decode_verified(&post.encode(), &channel, now + 1000)?;
/// assert_eq!(received, post);
/// assert_eq!(received.author_uid(), root.public().uid());
/// assert_eq!(received.text(), "hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPost {
    channel: ChannelId,
    cert: DeviceCertificate,
    text: String,
    sent_at_ms: u64,
    nonce: [u8; POST_NONCE_LEN],
    signature: [u8; SIGNATURE_LEN],
}

impl ChannelPost {
    /// Signs a post by `device` (certified by `cert`) to `channel`. `sent_at_ms` (unix ms) and
    /// the random `nonce` come from the caller (this crate reads no clock and draws no randomness
    /// here).
    ///
    /// # Errors
    ///
    /// [`ChannelError::TextLength`] for empty text or more than [`MAX_POST_TEXT_BYTES`];
    /// [`ChannelError::SignerMismatch`] if `cert` does not certify `device`;
    /// [`ChannelError::Certificate`] if `cert` is not validly signed by its root.
    pub fn new(
        device: &DeviceKey,
        cert: &DeviceCertificate,
        channel: ChannelId,
        text: &str,
        sent_at_ms: u64,
        nonce: [u8; POST_NONCE_LEN],
    ) -> Result<Self, ChannelError> {
        check_text(text)?;
        if device.public() != cert.device() {
            return Err(ChannelError::SignerMismatch);
        }
        cert.verify().map_err(ChannelError::Certificate)?;
        let mut post = Self {
            channel,
            cert: *cert,
            text: text.to_owned(),
            sent_at_ms,
            nonce,
            signature: [0; SIGNATURE_LEN],
        };
        post.signature = device.sign(&post.signed_bytes());
        Ok(post)
    }

    /// The canonical protobuf encoding (at most [`MAX_POST_BYTES`]).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto(true).encode_to_vec()
    }

    /// Decodes and checks a received post; see the [module docs](self) for the order of the
    /// checks (cheap ones first, signatures last).
    ///
    /// # Errors
    ///
    /// The first check that fails: [`ChannelError::TooLarge`], [`ChannelError::Decode`],
    /// [`ChannelError::NonCanonical`], [`ChannelError::FieldLength`],
    /// [`ChannelError::Certificate`] (undecodable or badly signed certificate),
    /// [`ChannelError::TextLength`], [`ChannelError::WrongChannel`],
    /// [`ChannelError::FromTheFuture`] / [`ChannelError::TooOld`],
    /// [`ChannelError::InvalidSignature`].
    pub fn decode_verified(
        bytes: &[u8],
        expected_channel: &ChannelId,
        now_ms: u64,
    ) -> Result<Self, ChannelError> {
        if bytes.len() > MAX_POST_BYTES {
            return Err(ChannelError::TooLarge {
                len: bytes.len(),
                max: MAX_POST_BYTES,
            });
        }
        let wire = proto::ChannelPost::decode(bytes)?;
        if wire.encoded_len() != bytes.len() || wire.encode_to_vec() != bytes {
            return Err(ChannelError::NonCanonical);
        }
        let channel = ChannelId(fixed("channel_id", &wire.channel_id)?);
        let cert_bytes: [u8; DEVICE_CERT_LEN] = fixed("author_cert", &wire.author_cert)?;
        let cert = DeviceCertificate::decode(&cert_bytes).map_err(ChannelError::Certificate)?;
        let post = Self {
            channel,
            cert,
            text: wire.text,
            sent_at_ms: wire.sent_at_ms,
            nonce: fixed("nonce", &wire.nonce)?,
            signature: fixed("signature", &wire.signature)?,
        };
        check_text(&post.text)?;
        if post.channel != *expected_channel {
            return Err(ChannelError::WrongChannel {
                expected: *expected_channel,
                actual: post.channel,
            });
        }
        let newest_ms = now_ms.saturating_add(MAX_POST_CLOCK_SKEW_MS);
        if post.sent_at_ms > newest_ms {
            return Err(ChannelError::FromTheFuture {
                sent_at_ms: post.sent_at_ms,
                newest_ms,
            });
        }
        let oldest_ms = now_ms.saturating_sub(MAX_POST_AGE_MS);
        if post.sent_at_ms < oldest_ms {
            return Err(ChannelError::TooOld {
                sent_at_ms: post.sent_at_ms,
                oldest_ms,
            });
        }
        post.cert.verify().map_err(ChannelError::Certificate)?;
        post.cert
            .device()
            .verify(&post.signed_bytes(), &post.signature)
            .map_err(|_| ChannelError::InvalidSignature)?;
        Ok(post)
    }

    /// [`post_id_of`] the encoding: the gossipsub message id and dedupe key.
    pub fn post_id(&self) -> [u8; 32] {
        post_id_of(&self.encode())
    }

    /// The exact bytes the signature covers: [`CHANNEL_POST_DOMAIN`] followed by the canonical
    /// encoding with `signature` empty.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = self.to_proto(false).encode_to_vec();
        identity::signed_message(CHANNEL_POST_DOMAIN, &[&body])
    }

    /// The channel posted to.
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// The author's UID (of the certificate's root key).
    pub fn author_uid(&self) -> Uid {
        self.cert.root().uid()
    }

    /// The author's root public key.
    pub fn author_root(&self) -> RootPublicKey {
        self.cert.root()
    }

    /// The device that signed the post.
    pub fn author_device(&self) -> DevicePublicKey {
        self.cert.device()
    }

    /// The author device's certificate.
    pub fn author_cert(&self) -> &DeviceCertificate {
        &self.cert
    }

    /// The text (1 to [`MAX_POST_TEXT_BYTES`] bytes). Untrusted user content: display it as
    /// plain text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The author's claimed time, unix milliseconds.
    pub fn sent_at_ms(&self) -> u64 {
        self.sent_at_ms
    }

    /// The author's random nonce.
    pub fn nonce(&self) -> &[u8; POST_NONCE_LEN] {
        &self.nonce
    }

    /// The protobuf form, with or without the signature.
    fn to_proto(&self, with_signature: bool) -> proto::ChannelPost {
        proto::ChannelPost {
            channel_id: Bytes::copy_from_slice(&self.channel.0),
            author_cert: Bytes::copy_from_slice(&self.cert.to_bytes()),
            text: self.text.clone(),
            sent_at_ms: self.sent_at_ms,
            nonce: Bytes::copy_from_slice(&self.nonce),
            signature: if with_signature {
                Bytes::copy_from_slice(&self.signature)
            } else {
                Bytes::new()
            },
        }
    }
}

/// The text length limits.
fn check_text(text: &str) -> Result<(), ChannelError> {
    if text.is_empty() || text.len() > MAX_POST_TEXT_BYTES {
        return Err(ChannelError::TextLength { len: text.len() });
    }
    Ok(())
}

/// Copies a fixed-length field, or names it in the error.
fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], ChannelError> {
    bytes.try_into().map_err(|_| ChannelError::FieldLength {
        field,
        expected: N,
        actual: bytes.len(),
    })
}

/// The posts seen recently, by [`post_id`](ChannelPost::post_id): a bounded LRU, so a post
/// relayed to us several times (gossipsub's own cache forgets after a few minutes) is processed
/// once. Memory: about 40 bytes per entry plus the LRU's overhead.
#[derive(Debug)]
pub struct PostDedupe {
    seen: LruCache<[u8; 32], ()>,
}

impl PostDedupe {
    /// A cache of at most `capacity` post ids (0 is treated as 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// True the first time `id` is offered (it is remembered, forgetting the least recently seen
    /// id when full); false while it is remembered (and it becomes the most recently seen).
    pub fn first_time(&mut self, id: [u8; 32]) -> bool {
        if self.seen.get(&id).is_some() {
            return false;
        }
        self.seen.put(id, ());
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The most ids remembered.
    pub fn capacity(&self) -> usize {
        self.seen.cap().get()
    }
}

impl Default for PostDedupe {
    fn default() -> Self {
        Self::new(DEFAULT_DEDUPE_CAPACITY)
    }
}

#[cfg(test)]
mod tests;
