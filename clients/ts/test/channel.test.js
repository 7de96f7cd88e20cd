// The shared vectors (clients/vectors/light-channel-v1.json, written by the Rust side) and the
// channel's own properties.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  HELLO_PAIR, HELLO_RESUME, Session, clientFinish, clientStart, generateKeyPair, openHello,
} from "../src/channel.js";
import { base32Decode, parsePairTicket } from "../src/ticket.js";

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b) => Buffer.from(b).toString("hex");
const vectors = JSON.parse(readFileSync(new URL("../../vectors/light-channel-v1.json", import.meta.url)));

test("the Rust vectors hold: handshake, keys, finish and first frames", async () => {
  assert.equal(vectors.cases.length, 2);
  for (const c of vectors.cases) {
    const hello = hex(c.hello);
    assert.equal(hello[1], c.kind === "pair" ? HELLO_PAIR : HELLO_RESUME);
    const opened = await openHello(hex(c.node_sk), hex(c.node_pk), hello, hex(c.psk));
    const ephPk = hello.subarray(2 + 16 + 1216, 2 + 16 + 2 * 1216);
    const state = {
      hello, h1: opened.h1, x1: opened.x1,
      client: { secretKey: hex(c.client_sk), publicKey: hex(c.client_pk) },
      eph: { secretKey: hex(c.eph_sk), publicKey: ephPk },
    };
    const { finish, keys } = await clientFinish(state, hex(c.reply));
    assert.equal(toHex(finish), c.finish);
    assert.equal(toHex(keys.c2n), c.c2n);
    assert.equal(toHex(keys.n2c), c.n2c);
    assert.equal(toHex(keys.pairKey), c.pair_key);
    const client = new Session(keys.c2n, keys.n2c);
    const node = new Session(keys.n2c, keys.c2n);
    for (const f of c.frames) {
      const sender = f.direction === "c2n" ? client : node;
      const receiver = f.direction === "c2n" ? node : client;
      const frame = sender.seal(new TextEncoder().encode(f.plaintext));
      assert.equal(toHex(frame), f.frame);
      assert.equal(new TextDecoder().decode(receiver.open(hex(f.frame))), f.plaintext);
    }
  }
});

test("a hello made here opens with the node's key; a wrong secret does not", async () => {
  const node = await generateKeyPair();
  const client = await generateKeyPair();
  const secret = new Uint8Array(32).fill(7);
  const { hello } = await clientStart(HELLO_PAIR, node.publicKey, client, secret);
  await openHello(node.secretKey, node.publicKey, hello, secret);
  await assert.rejects(openHello(node.secretKey, node.publicKey, hello, new Uint8Array(32).fill(8)), { code: "HandshakeFailed" });
});

test("replayed, reordered and altered frames close the session", () => {
  const a = new Uint8Array(32).fill(1);
  const b = new Uint8Array(32).fill(2);
  let [tx, rx] = [new Session(a, b), new Session(b, a)];
  const f0 = tx.seal(Uint8Array.of(1));
  rx.open(f0);
  assert.throws(() => rx.open(f0), { code: "Replayed" });
  assert.throws(() => rx.open(tx.seal(Uint8Array.of(2))), { code: "Closed" });
  [tx, rx] = [new Session(a, b), new Session(b, a)];
  tx.seal(Uint8Array.of(1));
  assert.throws(() => rx.open(tx.seal(Uint8Array.of(2))), { code: "OutOfOrder" });
  [tx, rx] = [new Session(a, b), new Session(b, a)];
  const f = tx.seal(Uint8Array.of(1, 2, 3));
  f[f.length - 1] ^= 1;
  assert.throws(() => rx.open(f), { code: "Tampered" });
});

test("tickets: base32 and refusals", () => {
  assert.deepEqual(base32Decode("mzxw6ytboi"), new TextEncoder().encode("foobar"));
  assert.throws(() => parsePairTicket("rhz1contactabc"), /not a pairing ticket/);
  assert.throws(() => parsePairTicket("rhz1pair!!"), /damaged/);
});
