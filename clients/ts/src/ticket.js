// The pairing ticket `rhizo pair` prints: "rhz1pair" ‖ base32 (RFC 4648, no padding, any case)
// of version (1) ‖ node key (1216) ‖ secret (32) ‖ created_at (u64 BE) ‖ url length (u16 BE) ‖
// url. See crates/rhizo-node/src/pairing/ticket.rs.

import { KEM_PUBLIC_KEY_LEN, PSK_LEN } from "./channel.js";

export const PAIR_TICKET_PREFIX = "rhz1pair";
const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
const MAX_TICKET_CHARS = 2600;

/** Decodes unpadded RFC 4648 base32 in any case; throws on a bad character or length. */
export function base32Decode(text) {
  const lower = text.toLowerCase();
  const out = new Uint8Array(Math.floor((lower.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const ch of lower) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) throw new Error(`damaged pairing ticket (invalid character ${JSON.stringify(ch)})`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out[at++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if (bits >= 5 || (value & ((1 << bits) - 1)) !== 0) throw new Error("damaged pairing ticket (length)");
  return out;
}

/** Parses a pairing ticket: `{ nodePk, secret, createdAt, url }`. */
export function parsePairTicket(text) {
  const t = text.trim();
  if (t.length > MAX_TICKET_CHARS) throw new Error("damaged pairing ticket (too long)");
  if (t.slice(0, PAIR_TICKET_PREFIX.length).toLowerCase() !== PAIR_TICKET_PREFIX) {
    throw new Error('not a pairing ticket: it must start with "rhz1pair"; run `rhizo pair` again');
  }
  const bytes = base32Decode(t.slice(PAIR_TICKET_PREFIX.length));
  const fixed = 1 + KEM_PUBLIC_KEY_LEN + PSK_LEN + 8 + 2;
  if (bytes.length < fixed || bytes[0] !== 1) throw new Error("damaged pairing ticket (version or length)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nodePk = bytes.slice(1, 1 + KEM_PUBLIC_KEY_LEN);
  const secret = bytes.slice(1 + KEM_PUBLIC_KEY_LEN, 1 + KEM_PUBLIC_KEY_LEN + PSK_LEN);
  const createdAt = Number(view.getBigUint64(1 + KEM_PUBLIC_KEY_LEN + PSK_LEN));
  const urlLen = view.getUint16(fixed - 2);
  if (bytes.length !== fixed + urlLen) throw new Error("damaged pairing ticket (URL length)");
  const url = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(fixed));
  if (!/^wss?:\/\//.test(url)) throw new Error("damaged pairing ticket (URL)");
  return { nodePk, secret, createdAt, url };
}
