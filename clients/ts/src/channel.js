// The paired channel between a light client and its rhizo node: the client's half of the
// handshake (HPKE with X-Wing, HKDF-SHA256, ChaCha20-Poly1305) and the AEAD frames. The byte
// layouts are docs/protocol.md's ("Light clients"); the Rust side is
// crates/rhizo-node/src/pairing/channel.rs, and clients/vectors/light-channel-v1.json holds the
// vectors both check. No Node-only APIs: this runs in browsers too.

import { CipherSuite, HkdfSha256 } from "@hpke/core";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { XWing } from "@hpke/hybridkem-x-wing";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

export const CHANNEL_VERSION = 1;
export const KEM_PUBLIC_KEY_LEN = 1216;
export const KEM_SECRET_KEY_LEN = 32;
export const KEM_ENC_LEN = 1120;
export const TAG_LEN = 16;
export const ID_LEN = 16;
export const CONFIRM_LEN = 32;
export const PSK_LEN = 32;
export const HELLO_LEN = 2 + ID_LEN + 2 * KEM_PUBLIC_KEY_LEN + KEM_ENC_LEN + TAG_LEN;
export const REPLY_LEN = 2 * KEM_ENC_LEN + CONFIRM_LEN;
export const SEQ_LEN = 8;
export const MAX_FRAME_PLAINTEXT = 64 * 1024;
export const HELLO_PAIR = 1;
export const HELLO_RESUME = 2;

const enc = new TextEncoder();
const HELLO_DOMAIN = enc.encode("rhizo/light/hello/v1");
const REPLY_DOMAIN = enc.encode("rhizo/light/reply/v1");
const KEYS_DOMAIN = enc.encode("rhizo/light/keys/v1");
const EXPORT_LABEL = enc.encode("rhizo/light/export/v1");
const TICKET_ID_DOMAIN = enc.encode("rhizo/light/ticket-id/v1");
const CLIENT_ID_DOMAIN = enc.encode("rhizo/light/client-id/v1");
const CONFIRM_NODE = enc.encode("rhizo/light/confirm/node/v1");
const CONFIRM_CLIENT = enc.encode("rhizo/light/confirm/client/v1");

/** A channel failure; `code` is one of the Rust side's error names. */
export class ChannelError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ChannelError";
    this.code = code;
  }
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

const digest = (...parts) => sha256(concat(...parts));

function suite() {
  return new CipherSuite({ kem: new XWing(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() });
}

/** The id a pairing hello carries: SHA-256("rhizo/light/ticket-id/v1" ‖ secret)[..16]. */
export const ticketId = (secret) => digest(TICKET_ID_DOMAIN, secret).slice(0, ID_LEN);
/** A paired client's id: SHA-256("rhizo/light/client-id/v1" ‖ client public key)[..16]. */
export const clientId = (clientPk) => digest(CLIENT_ID_DOMAIN, clientPk).slice(0, ID_LEN);

/** A fresh X-Wing key pair `{ secretKey (32 bytes), publicKey (1216 bytes) }`. */
export async function generateKeyPair() {
  const s = suite();
  const pair = await s.kem.generateKeyPair();
  return {
    secretKey: new Uint8Array(await s.kem.serializePrivateKey(pair.privateKey)),
    publicKey: new Uint8Array(await s.kem.serializePublicKey(pair.publicKey)),
  };
}

async function exportSecret(ctx) {
  return new Uint8Array(await ctx.export(EXPORT_LABEL, 32));
}

/** The session keys both sides derive (docs/protocol.md). */
export function deriveKeys(h2, enc2, enc3, x1, x2, x3) {
  const salt = digest(KEYS_DOMAIN, h2, enc2, enc3);
  const ikm = concat(x1, x2, x3);
  const expand = (label) => hkdf(sha256, ikm, salt, enc.encode(`rhizo/light/v1 ${label}`), 32);
  return {
    c2n: expand("c2n"),
    n2c: expand("n2c"),
    nodeConfirm: expand("node confirm"),
    clientConfirm: expand("client confirm"),
    pairKey: expand("pair key"),
  };
}

function splitHello(bytes) {
  if (bytes.length !== HELLO_LEN) throw new ChannelError("Malformed", "hello of the wrong length");
  let at = 0;
  const take = (n) => bytes.subarray(at, (at += n));
  const head = take(2);
  const id = take(ID_LEN);
  const clientPk = take(KEM_PUBLIC_KEY_LEN);
  const ephPk = take(KEM_PUBLIC_KEY_LEN);
  const enc1 = take(KEM_ENC_LEN);
  const tag1 = take(TAG_LEN);
  return { kind: head[1], prefix: bytes.subarray(0, HELLO_LEN - KEM_ENC_LEN - TAG_LEN), id, clientPk, ephPk, enc1, tag1 };
}

/**
 * Starts a handshake to the node's key `nodePk` with the client's static key pair `client`
 * (`{ secretKey, publicKey }`) and `psk` (the ticket's secret when pairing, the pair key after).
 * Returns `{ state, hello }`: send `hello`, then call {@link clientFinish} with the reply.
 */
export async function clientStart(kind, nodePk, client, psk) {
  if (nodePk.length !== KEM_PUBLIC_KEY_LEN) throw new ChannelError("Malformed", "node key of the wrong length");
  const s = suite();
  const eph = await generateKeyPair();
  const id = kind === HELLO_PAIR ? ticketId(psk) : clientId(client.publicKey);
  const prefix = concat(Uint8Array.of(CHANNEL_VERSION, kind), id, client.publicKey, eph.publicKey);
  const h1 = digest(HELLO_DOMAIN, nodePk, prefix);
  const ctx1 = await s.createSenderContext({
    recipientPublicKey: await s.kem.importKey("raw", nodePk, true),
    info: h1,
    psk: { id, key: psk },
  });
  const enc1 = new Uint8Array(ctx1.enc);
  const tag1 = new Uint8Array(await ctx1.seal(new Uint8Array(0), enc1));
  const x1 = await exportSecret(ctx1);
  const hello = concat(prefix, enc1, tag1);
  return { state: { hello, h1, x1, client, eph }, hello };
}

async function openExport(s, enc, secretKey, info) {
  const ctx = await s.createRecipientContext({
    recipientKey: await s.kem.importKey("raw", secretKey, false),
    enc,
    info,
  });
  return exportSecret(ctx);
}

/**
 * Finishes with the node's reply: checks the node's confirmation, returns
 * `{ session, finish, keys }`; send `finish`, and store `keys.pairKey` after a pairing.
 */
export async function clientFinish(state, reply) {
  if (reply.length !== REPLY_LEN) throw new ChannelError("Malformed", "reply of the wrong length");
  const enc2 = reply.subarray(0, KEM_ENC_LEN);
  const enc3 = reply.subarray(KEM_ENC_LEN, 2 * KEM_ENC_LEN);
  const confirmN = reply.subarray(2 * KEM_ENC_LEN);
  const parts = splitHello(state.hello);
  const h2 = digest(REPLY_DOMAIN, state.h1, parts.enc1, parts.tag1);
  const s = suite();
  let x2, x3;
  try {
    x2 = await openExport(s, enc2, state.client.secretKey, h2);
    x3 = await openExport(s, enc3, state.eph.secretKey, h2);
  } catch {
    throw new ChannelError("HandshakeFailed", "the pairing handshake failed");
  }
  const keys = deriveKeys(h2, enc2, enc3, state.x1, x2, x3);
  if (!equal(hmac(sha256, keys.nodeConfirm, CONFIRM_NODE), confirmN)) {
    throw new ChannelError("HandshakeFailed", "the pairing handshake failed");
  }
  const finish = hmac(sha256, keys.clientConfirm, CONFIRM_CLIENT);
  return { session: new Session(keys.c2n, keys.n2c), finish, keys };
}

/**
 * The node's check of a hello (used by the vector test): opens `tag1` with the node's secret key
 * and `psk`, returns `{ h1, h2, x1 }`.
 */
export async function openHello(nodeSecretKey, nodePk, helloBytes, psk) {
  const p = splitHello(helloBytes);
  const h1 = digest(HELLO_DOMAIN, nodePk, p.prefix);
  const s = suite();
  const ctx = await s.createRecipientContext({
    recipientKey: await s.kem.importKey("raw", nodeSecretKey, false),
    enc: p.enc1,
    info: h1,
    psk: { id: p.id, key: psk },
  });
  try {
    await ctx.open(p.tag1, p.enc1);
  } catch {
    throw new ChannelError("HandshakeFailed", "the pairing handshake failed");
  }
  return { h1, h2: digest(REPLY_DOMAIN, h1, p.enc1, p.tag1), x1: await exportSecret(ctx) };
}

function nonce(seq) {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, seq);
  return n;
}

/**
 * An established channel: frames are `seq (u64 big-endian) ‖ ChaCha20-Poly1305(key,
 * nonce = 0⁴ ‖ seq, aad = seq, plaintext)`; anything but the next sequence number, or a frame
 * that does not authenticate, closes it for good.
 */
export class Session {
  constructor(sendKey, recvKey) {
    this.sendKey = sendKey;
    this.recvKey = recvKey;
    this.sendSeq = 0n;
    this.recvSeq = 0n;
    this.closed = false;
  }

  seal(plaintext) {
    if (this.closed) throw new ChannelError("Closed", "the channel is closed");
    if (plaintext.length > MAX_FRAME_PLAINTEXT) throw new ChannelError("BadFrameSize", "frame too large");
    const n = nonce(this.sendSeq);
    const seq = n.subarray(4);
    const ct = chacha20poly1305(this.sendKey, n, seq).encrypt(plaintext);
    this.sendSeq += 1n;
    return concat(seq, ct);
  }

  open(frame) {
    try {
      return this.#open(frame);
    } catch (e) {
      this.closed = true;
      throw e;
    }
  }

  #open(frame) {
    if (this.closed) throw new ChannelError("Closed", "the channel is closed");
    if (frame.length < SEQ_LEN + TAG_LEN || frame.length > SEQ_LEN + TAG_LEN + MAX_FRAME_PLAINTEXT) {
      throw new ChannelError("BadFrameSize", `frame of ${frame.length} bytes refused`);
    }
    const seq = new DataView(frame.buffer, frame.byteOffset, SEQ_LEN).getBigUint64(0);
    if (seq < this.recvSeq) throw new ChannelError("Replayed", `frame ${seq} replayed`);
    if (seq > this.recvSeq) throw new ChannelError("OutOfOrder", `frame ${seq} out of order`);
    let plaintext;
    try {
      plaintext = chacha20poly1305(this.recvKey, nonce(seq), frame.subarray(0, SEQ_LEN)).decrypt(frame.subarray(SEQ_LEN));
    } catch {
      throw new ChannelError("Tampered", "a frame failed authentication");
    }
    this.recvSeq += 1n;
    return plaintext;
  }
}
