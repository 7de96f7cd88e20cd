//! The paired channel between a light client and its node, sans-IO: bytes in, bytes out, no
//! sockets and no clock. `docs/protocol.md` ("Light clients: pairing and the channel") is the
//! normative description; the frozen vectors are `clients/vectors/light-channel-v1.json`.
//!
//! ```text
//!  light client (static key C, ephemeral key E)                node (static key N, from the ticket)
//!  ClientHandshake::start ── Hello: v ‖ kind ‖ id ‖ C ‖ E ‖ enc1 ‖ tag1 ──▶ open_hello (psk, N)
//!                                                                         │ HpkeRespond::reply
//!  ClientHandshake::finish ◀── Reply: enc2 (to C) ‖ enc3 (to E) ‖ confirm_n ┘
//!        │ ── Finish: confirm_c ──────────────────────────────────────────▶ NodeHandshake::finish
//!        ▼                                                                         ▼
//!   Session (c2n / n2c ChaCha20-Poly1305, explicit sequence numbers, any gap, replay or edit closes)
//! ```
//!
//! Every KEM is HPKE (RFC 9180) with X-Wing, HKDF-SHA256 and ChaCha20-Poly1305. `enc1` is in PSK
//! mode to the node's static key: the PSK is the ticket's one-time secret when pairing and the
//! pair key (derived at pairing) afterwards, so `tag1` proves the client knows it. `enc2` and
//! `enc3` (base mode) reach the client's static key (so only the paired client can finish) and
//! its ephemeral key (forward secrecy). The session keys come from all three exporter secrets
//! and the whole transcript.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hpke_rs::{Hpke, HpkePrivateKey, HpkePublicKey, Mode};
use hpke_rs_crypto::types::{AeadAlgorithm, KdfAlgorithm, KemAlgorithm};
use hpke_rs_rust_crypto::HpkeRustCrypto;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// Version byte of every hello.
pub const CHANNEL_VERSION: u8 = 1;
/// X-Wing public (encapsulation) key length.
pub const KEM_PUBLIC_KEY_LEN: usize = 1216;
/// X-Wing secret key length (the 32-byte seed).
pub const KEM_SECRET_KEY_LEN: usize = 32;
/// X-Wing encapsulation length.
pub const KEM_ENC_LEN: usize = 1120;
/// AEAD tag length (ChaCha20-Poly1305).
pub const TAG_LEN: usize = 16;
/// Length of the id in a hello (ticket id or client id).
pub const ID_LEN: usize = 16;
/// Length of a key confirmation (HMAC-SHA256).
pub const CONFIRM_LEN: usize = 32;
/// Length of a one-time pairing secret and of a pair key (HPKE wants PSKs of ≥ 32 bytes).
pub const PSK_LEN: usize = 32;
/// Length of a hello: version, kind, id, two public keys, enc1, tag1.
pub const HELLO_LEN: usize = 2 + ID_LEN + 2 * KEM_PUBLIC_KEY_LEN + KEM_ENC_LEN + TAG_LEN;
/// Length of a reply: enc2, enc3, the node's confirmation.
pub const REPLY_LEN: usize = 2 * KEM_ENC_LEN + CONFIRM_LEN;
/// Length of a frame's explicit sequence number.
pub const SEQ_LEN: usize = 8;
/// Largest plaintext in one frame: a JSON message of the WebSocket API with room to spare.
pub const MAX_FRAME_PLAINTEXT: usize = 64 * 1024;

/// Domain tags (each `rhizo/light/<purpose>/v1`).
const HELLO_DOMAIN: &[u8] = b"rhizo/light/hello/v1";
const REPLY_DOMAIN: &[u8] = b"rhizo/light/reply/v1";
const KEYS_DOMAIN: &[u8] = b"rhizo/light/keys/v1";
const EXPORT_LABEL: &[u8] = b"rhizo/light/export/v1";
const TICKET_ID_DOMAIN: &[u8] = b"rhizo/light/ticket-id/v1";
const CLIENT_ID_DOMAIN: &[u8] = b"rhizo/light/client-id/v1";
const CONFIRM_NODE: &[u8] = b"rhizo/light/confirm/node/v1";
const CONFIRM_CLIENT: &[u8] = b"rhizo/light/confirm/client/v1";

/// Why a handshake or a frame was refused. Every handshake failure the peer could cause says
/// nothing about which check failed ([`ChannelError::HandshakeFailed`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A handshake message has the wrong length, version or kind.
    #[error("malformed handshake message ({0})")]
    Malformed(&'static str),
    /// A key, secret or confirmation did not match (wrong pairing secret, revoked pair key, a
    /// gateway that edited the handshake, a node without the ticket's key).
    #[error("the pairing handshake failed: pair again with a fresh `rhizo pair` ticket")]
    HandshakeFailed,
    /// A frame repeats a sequence number already seen (a replay).
    #[error("frame {got} replayed (expected {expected}): the channel is closed")]
    Replayed {
        /// The sequence number expected.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A frame skips ahead (a frame was dropped or reordered).
    #[error("frame {got} out of order (expected {expected}): the channel is closed")]
    OutOfOrder {
        /// The sequence number expected.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A frame does not authenticate (it was altered).
    #[error("a frame failed authentication: the channel is closed")]
    Tampered,
    /// A frame is shorter than its header and tag, or longer than [`MAX_FRAME_PLAINTEXT`].
    #[error("frame of {0} bytes refused (at most 64 KiB of plaintext)")]
    BadFrameSize(usize),
    /// An earlier error closed the session.
    #[error("the channel is closed")]
    Closed,
    /// The random number generator or a crypto primitive failed.
    #[error("crypto failure: {0}")]
    Crypto(String),
}

fn hpke(mode: Mode) -> Hpke<HpkeRustCrypto> {
    Hpke::new(
        mode,
        KemAlgorithm::XWingDraft06,
        KdfAlgorithm::HkdfSha256,
        AeadAlgorithm::ChaCha20Poly1305,
    )
}

fn crypto(e: impl std::fmt::Debug) -> ChannelError {
    ChannelError::Crypto(format!("{e:?}"))
}

/// An X-Wing key pair: the node's static key, a client's static key or an ephemeral key.
pub struct KemKeyPair {
    secret: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl std::fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KemKeyPair({})",
            hex::encode(&digest(&[&self.public])[..8])
        )
    }
}

impl KemKeyPair {
    /// A fresh key pair from the OS random number generator.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Crypto`] if key generation fails.
    pub fn generate() -> Result<Self, ChannelError> {
        let pair = hpke(Mode::Base).generate_key_pair().map_err(crypto)?;
        let (secret, public) = pair.into_keys();
        Ok(Self {
            secret: Zeroizing::new(secret.as_slice().to_vec()),
            public: public.as_slice().to_vec(),
        })
    }

    /// A key pair from its stored bytes (lengths checked).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Malformed`] if a length is wrong.
    pub fn from_bytes(secret: &[u8], public: &[u8]) -> Result<Self, ChannelError> {
        if secret.len() != KEM_SECRET_KEY_LEN || public.len() != KEM_PUBLIC_KEY_LEN {
            return Err(ChannelError::Malformed("X-Wing key of the wrong length"));
        }
        Ok(Self {
            secret: Zeroizing::new(secret.to_vec()),
            public: public.to_vec(),
        })
    }

    /// The public key (1216 bytes).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The secret key (32 bytes); handle with care.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    fn private(&self) -> HpkePrivateKey {
        HpkePrivateKey::new(self.secret.to_vec())
    }
}

/// SHA-256 over the concatenation of `parts`.
fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

fn truncate_id(full: [u8; 32]) -> [u8; ID_LEN] {
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&full[..ID_LEN]);
    id
}

/// The id a hello carries when pairing: `SHA-256("rhizo/light/ticket-id/v1" ‖ secret)[..16]`.
pub fn ticket_id(secret: &[u8; PSK_LEN]) -> [u8; ID_LEN] {
    truncate_id(digest(&[TICKET_ID_DOMAIN, secret]))
}

/// The id of a paired client: `SHA-256("rhizo/light/client-id/v1" ‖ client public key)[..16]`.
pub fn client_id(client_pk: &[u8]) -> [u8; ID_LEN] {
    truncate_id(digest(&[CLIENT_ID_DOMAIN, client_pk]))
}

/// What a hello is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HelloKind {
    /// First contact: the PSK is the ticket's one-time secret, the id the ticket id.
    Pair = 1,
    /// A paired client: the PSK is its pair key, the id its client id.
    Resume = 2,
}

/// A parsed hello (lengths checked, nothing verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Pair or resume.
    pub kind: HelloKind,
    /// Ticket id or client id.
    pub id: [u8; ID_LEN],
    /// The client's static public key.
    pub client_pk: Vec<u8>,
    /// The client's ephemeral public key.
    pub eph_pk: Vec<u8>,
    enc1: Vec<u8>,
    tag1: Vec<u8>,
}

impl Hello {
    /// Parses a hello, checking only its length, version and kind (no crypto).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ChannelError> {
        if bytes.len() != HELLO_LEN {
            return Err(ChannelError::Malformed("hello of the wrong length"));
        }
        if bytes[0] != CHANNEL_VERSION {
            return Err(ChannelError::Malformed("unknown channel version"));
        }
        let kind = match bytes[1] {
            1 => HelloKind::Pair,
            2 => HelloKind::Resume,
            _ => return Err(ChannelError::Malformed("unknown hello kind")),
        };
        let (id, rest) = bytes[2..].split_at(ID_LEN);
        let (client_pk, rest) = rest.split_at(KEM_PUBLIC_KEY_LEN);
        let (eph_pk, rest) = rest.split_at(KEM_PUBLIC_KEY_LEN);
        let (enc1, tag1) = rest.split_at(KEM_ENC_LEN);
        let mut id_bytes = [0u8; ID_LEN];
        id_bytes.copy_from_slice(id);
        let hello = Self {
            kind,
            id: id_bytes,
            client_pk: client_pk.to_vec(),
            eph_pk: eph_pk.to_vec(),
            enc1: enc1.to_vec(),
            tag1: tag1.to_vec(),
        };
        if hello.kind == HelloKind::Resume && client_id(&hello.client_pk) != hello.id {
            return Err(ChannelError::Malformed(
                "client id does not match the client key",
            ));
        }
        Ok(hello)
    }

    fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HELLO_LEN);
        out.extend_from_slice(&[CHANNEL_VERSION, self.kind as u8]);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.client_pk);
        out.extend_from_slice(&self.eph_pk);
        out
    }

    fn h1(&self, node_pk: &[u8]) -> [u8; 32] {
        digest(&[HELLO_DOMAIN, node_pk, &self.prefix()])
    }

    fn h2(&self, h1: &[u8; 32]) -> [u8; 32] {
        digest(&[REPLY_DOMAIN, h1, &self.enc1, &self.tag1])
    }

    /// The hello's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(&self.enc1);
        out.extend_from_slice(&self.tag1);
        out
    }
}

/// The keys both sides derive; see [`derive_keys`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Client-to-node frame key.
    pub c2n: Zeroizing<[u8; 32]>,
    /// Node-to-client frame key.
    pub n2c: Zeroizing<[u8; 32]>,
    node_confirm: Zeroizing<[u8; 32]>,
    client_confirm: Zeroizing<[u8; 32]>,
    /// The pair key a pairing hello establishes (the PSK of later resumes).
    pub pair_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(…)")
    }
}

/// `HKDF-SHA256(salt = SHA-256("rhizo/light/keys/v1" ‖ h2 ‖ enc2 ‖ enc3), ikm = x1 ‖ x2 ‖ x3)`,
/// expanded with the labels `c2n`, `n2c`, `node confirm`, `client confirm`, `pair key`.
pub fn derive_keys(h2: &[u8; 32], enc2: &[u8], enc3: &[u8], exports: [&[u8]; 3]) -> SessionKeys {
    let salt = digest(&[KEYS_DOMAIN, h2, enc2, enc3]);
    let ikm = Zeroizing::new([exports[0], exports[1], exports[2]].concat());
    let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let expand = |label: &str| {
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 8160.
        let _ = hk.expand(label.as_bytes(), out.as_mut());
        out
    };
    SessionKeys {
        c2n: expand("rhizo/light/v1 c2n"),
        n2c: expand("rhizo/light/v1 n2c"),
        node_confirm: expand("rhizo/light/v1 node confirm"),
        client_confirm: expand("rhizo/light/v1 client confirm"),
        pair_key: expand("rhizo/light/v1 pair key"),
    }
}

fn confirmation(key: &[u8; 32], label: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(label);
    mac
}

fn export(ctx: &hpke_rs::Context<HpkeRustCrypto>) -> Result<Zeroizing<Vec<u8>>, ChannelError> {
    ctx.export(EXPORT_LABEL, 32)
        .map(Zeroizing::new)
        .map_err(crypto)
}

/// The client's half of the handshake, between its hello and the node's reply.
pub struct ClientHandshake {
    hello: Hello,
    h1: [u8; 32],
    x1: Zeroizing<Vec<u8>>,
    client: KemKeyPair,
    eph: KemKeyPair,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("kind", &self.hello.kind)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts a handshake to `node_pk` with the client's static key `client`: returns the state
    /// and the hello to send. `psk` is the ticket secret ([`HelloKind::Pair`]) or the pair key.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Malformed`] for a node key of the wrong length, [`ChannelError::Crypto`].
    pub fn start(
        kind: HelloKind,
        node_pk: &[u8],
        client: KemKeyPair,
        psk: &[u8; PSK_LEN],
    ) -> Result<(Self, Vec<u8>), ChannelError> {
        if node_pk.len() != KEM_PUBLIC_KEY_LEN {
            return Err(ChannelError::Malformed("node key of the wrong length"));
        }
        let eph = KemKeyPair::generate()?;
        let id = match kind {
            HelloKind::Pair => ticket_id(psk),
            HelloKind::Resume => client_id(client.public()),
        };
        let mut hello = Hello {
            kind,
            id,
            client_pk: client.public().to_vec(),
            eph_pk: eph.public().to_vec(),
            enc1: Vec::new(),
            tag1: Vec::new(),
        };
        let h1 = hello.h1(node_pk);
        let (enc1, mut ctx1) = hpke(Mode::Psk)
            .setup_sender(
                &HpkePublicKey::new(node_pk.to_vec()),
                &h1,
                Some(psk),
                Some(&id),
                None,
            )
            .map_err(crypto)?;
        hello.tag1 = ctx1.seal(&enc1, &[]).map_err(crypto)?;
        hello.enc1 = enc1;
        let x1 = export(&ctx1)?;
        let bytes = hello.to_bytes();
        Ok((
            Self {
                hello,
                h1,
                x1,
                client,
                eph,
            },
            bytes,
        ))
    }

    /// Finishes with the node's reply: checks its confirmation and returns the session, the
    /// finish message to send, and the keys (whose `pair_key` a pairing client stores).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Malformed`] for a reply of the wrong length,
    /// [`ChannelError::HandshakeFailed`] if the node is not the ticket's or the reply was edited.
    pub fn finish(self, reply: &[u8]) -> Result<(Session, Vec<u8>, SessionKeys), ChannelError> {
        if reply.len() != REPLY_LEN {
            return Err(ChannelError::Malformed("reply of the wrong length"));
        }
        let (enc2, rest) = reply.split_at(KEM_ENC_LEN);
        let (enc3, confirm_n) = rest.split_at(KEM_ENC_LEN);
        let h2 = self.hello.h2(&self.h1);
        let base = hpke(Mode::Base);
        let open = |enc: &[u8], key: &KemKeyPair| {
            base.setup_receiver(enc, &key.private(), &h2, None, None, None)
                .map_err(|_| ChannelError::HandshakeFailed)
                .and_then(|ctx| export(&ctx))
        };
        let x2 = open(enc2, &self.client)?;
        let x3 = open(enc3, &self.eph)?;
        let keys = derive_keys(&h2, enc2, enc3, [&self.x1, &x2, &x3]);
        confirmation(&keys.node_confirm, CONFIRM_NODE)
            .verify_slice(confirm_n)
            .map_err(|_| ChannelError::HandshakeFailed)?;
        let finish = confirmation(&keys.client_confirm, CONFIRM_CLIENT)
            .finalize()
            .into_bytes()
            .to_vec();
        Ok((Session::new(&keys.c2n, &keys.n2c), finish, keys))
    }
}

/// Opens a hello on the node with its static key and the PSK the hello's id selects: checks
/// `tag1`, which proves the client knows the PSK. Check the id (a pending ticket, a paired and
/// unrevoked client) before calling this: it does KEM work.
///
/// # Errors
///
/// [`ChannelError::HandshakeFailed`] for a wrong PSK or an edited hello.
pub fn open_hello(
    node: &KemKeyPair,
    hello: &Hello,
    psk: &[u8; PSK_LEN],
) -> Result<OpenedHello, ChannelError> {
    let h1 = hello.h1(node.public());
    let mut ctx1 = hpke(Mode::Psk)
        .setup_receiver(
            &hello.enc1,
            &node.private(),
            &h1,
            Some(psk),
            Some(&hello.id),
            None,
        )
        .map_err(|_| ChannelError::HandshakeFailed)?;
    ctx1.open(&hello.enc1, &hello.tag1)
        .map_err(|_| ChannelError::HandshakeFailed)?;
    Ok(OpenedHello {
        hello: hello.clone(),
        h2: hello.h2(&h1),
        x1: export(&ctx1)?,
    })
}

/// A hello the node has verified, ready for [`OpenedHello::reply`].
#[derive(Debug)]
pub struct OpenedHello {
    hello: Hello,
    h2: [u8; 32],
    x1: Zeroizing<Vec<u8>>,
}

impl OpenedHello {
    /// Encapsulates to the client's static and ephemeral keys: the node's state and the reply.
    ///
    /// # Errors
    ///
    /// [`ChannelError::HandshakeFailed`] if a client key is not a valid X-Wing key.
    pub fn reply(self) -> Result<(NodeHandshake, Vec<u8>), ChannelError> {
        let mut base = hpke(Mode::Base);
        let mut seal = |pk: &[u8]| {
            base.setup_sender(&HpkePublicKey::new(pk.to_vec()), &self.h2, None, None, None)
                .map_err(|_| ChannelError::HandshakeFailed)
                .and_then(|(enc, ctx)| Ok((enc, export(&ctx)?)))
        };
        let (enc2, x2) = seal(&self.hello.client_pk)?;
        let (enc3, x3) = seal(&self.hello.eph_pk)?;
        let keys = derive_keys(&self.h2, &enc2, &enc3, [&self.x1, &x2, &x3]);
        let confirm = confirmation(&keys.node_confirm, CONFIRM_NODE)
            .finalize()
            .into_bytes();
        let reply = [enc2.as_slice(), enc3.as_slice(), confirm.as_slice()].concat();
        Ok((NodeHandshake { keys }, reply))
    }
}

/// The node's half of the handshake, waiting for the client's finish.
#[derive(Debug)]
pub struct NodeHandshake {
    keys: SessionKeys,
}

impl NodeHandshake {
    /// Checks the client's confirmation (proof it holds its static key) and returns the session
    /// and the keys (a pairing node stores `pair_key`).
    ///
    /// # Errors
    ///
    /// [`ChannelError::HandshakeFailed`].
    pub fn finish(self, finish: &[u8]) -> Result<(Session, SessionKeys), ChannelError> {
        confirmation(&self.keys.client_confirm, CONFIRM_CLIENT)
            .verify_slice(finish)
            .map_err(|_| ChannelError::HandshakeFailed)?;
        Ok((Session::new(&self.keys.n2c, &self.keys.c2n), self.keys))
    }
}

/// An established channel: seals outgoing and opens incoming frames, each
/// `seq (u64 big-endian) ‖ ChaCha20-Poly1305(key, nonce = 0⁴ ‖ seq, aad = seq, plaintext)`.
/// Sequence numbers start at 0 in each direction; anything but the next one closes the session.
pub struct Session {
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    send_seq: u64,
    recv_seq: u64,
    closed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("send_seq", &self.send_seq)
            .field("recv_seq", &self.recv_seq)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n.into()
}

impl Session {
    /// A session sending with `send_key` and receiving with `recv_key`.
    pub fn new(send_key: &[u8; 32], recv_key: &[u8; 32]) -> Self {
        Self {
            send: ChaCha20Poly1305::new(Key::from_slice(send_key)),
            recv: ChaCha20Poly1305::new(Key::from_slice(recv_key)),
            send_seq: 0,
            recv_seq: 0,
            closed: false,
        }
    }

    /// Seals the next outgoing frame.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadFrameSize`] above [`MAX_FRAME_PLAINTEXT`], [`ChannelError::Closed`].
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, ChannelError> {
        if self.closed || self.send_seq == u64::MAX {
            return Err(ChannelError::Closed);
        }
        if plaintext.len() > MAX_FRAME_PLAINTEXT {
            return Err(ChannelError::BadFrameSize(plaintext.len()));
        }
        let seq = self.send_seq.to_be_bytes();
        let ct = self
            .send
            .encrypt(
                &nonce(self.send_seq),
                Payload {
                    msg: plaintext,
                    aad: &seq,
                },
            )
            .map_err(crypto)?;
        self.send_seq += 1;
        Ok([seq.as_slice(), &ct].concat())
    }

    /// Opens the next incoming frame. Any error closes the session for good.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Replayed`], [`ChannelError::OutOfOrder`], [`ChannelError::Tampered`],
    /// [`ChannelError::BadFrameSize`], [`ChannelError::Closed`].
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let result = self.open_inner(frame);
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    fn open_inner(&mut self, frame: &[u8]) -> Result<Vec<u8>, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        if frame.len() < SEQ_LEN + TAG_LEN || frame.len() > SEQ_LEN + TAG_LEN + MAX_FRAME_PLAINTEXT
        {
            return Err(ChannelError::BadFrameSize(frame.len()));
        }
        let (seq_bytes, ct) = frame.split_at(SEQ_LEN);
        let mut seq = [0u8; SEQ_LEN];
        seq.copy_from_slice(seq_bytes);
        let seq = u64::from_be_bytes(seq);
        let expected = self.recv_seq;
        if seq < expected {
            return Err(ChannelError::Replayed { expected, got: seq });
        }
        if seq > expected {
            return Err(ChannelError::OutOfOrder { expected, got: seq });
        }
        let plaintext = self
            .recv
            .decrypt(
                &nonce(seq),
                Payload {
                    msg: ct,
                    aad: seq_bytes,
                },
            )
            .map_err(|_| ChannelError::Tampered)?;
        self.recv_seq += 1;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests;
