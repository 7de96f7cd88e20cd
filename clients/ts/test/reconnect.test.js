// Reconnection on seed 002's schedule, on a fake clock: no real time passes.
import { test } from "node:test";
import assert from "node:assert/strict";

import { MessagingPeer, RECONNECT, reconnectDelay } from "../src/index.js";

/** Timers that run only when the test advances time. */
class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = [];
    this.random = () => 0.5;
  }
  setTimeout(f, ms) {
    const t = { at: this.now + ms, f };
    this.timers.push(t);
    return t;
  }
  clearTimeout(t) {
    this.timers = this.timers.filter((x) => x !== t);
  }
  /** Runs the next timer (moving time to it); false if none is pending. */
  async runNext() {
    await flush();
    this.timers.sort((a, b) => a.at - b.at);
    const t = this.timers.shift();
    if (!t) return false;
    this.now = t.at;
    t.f();
    await flush();
    return true;
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A WebSocket whose every connection fails; records when each was tried. */
function failingSocket(clock, tries) {
  return class {
    constructor(url) {
      tries.push(clock.now);
      this.url = url;
      queueMicrotask(() => {
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: "" });
      });
    }
    send() {}
    close() {}
  };
}

const CREDENTIALS = {
  url: "ws://127.0.0.1:9/v1/ws",
  nodePublicKey: "00".repeat(1216),
  clientSecretKey: "00".repeat(32),
  clientPublicKey: "00".repeat(1216),
  pairKey: "00".repeat(32),
};

test("the delays double from 1 s to a 30 s cap, with bounded jitter", () => {
  const mid = () => 0.5;
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => reconnectDelay(i + 1, mid)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000],
  );
  for (let attempt = 1; attempt <= 10; attempt++) {
    const base = Math.min(1000 * 2 ** (attempt - 1), 30000);
    const low = reconnectDelay(attempt, () => 0);
    const high = reconnectDelay(attempt, () => 0.999999);
    assert.ok(low >= base * (1 - RECONNECT.jitter) - 1 && low <= base, `${attempt}: ${low}`);
    assert.ok(high <= 30000 && high >= base, `${attempt}: ${high}`);
  }
});

test("an unreachable node: 10 attempts on the schedule, then failed", async () => {
  const clock = new FakeClock();
  const tries = [];
  const peer = new MessagingPeer({ credentials: CREDENTIALS, WebSocket: failingSocket(clock, tries), clock });
  const states = [];
  const errors = [];
  peer.onConnectionStateChange((s) => states.push(s));
  peer.onError((e) => errors.push(e.code));
  const connecting = peer.connect();
  let outcome;
  connecting.then(() => (outcome = "connected"), (e) => (outcome = e.code));
  while (await clock.runNext()) {
    // Each timer is one reconnection attempt.
  }
  await flush();
  assert.equal(outcome, "RECONNECT_FAILED");
  assert.equal(peer.state, "failed");
  assert.deepEqual(states, ["connecting", "reconnecting", "failed"]);
  assert.deepEqual(errors, ["RECONNECT_FAILED"]);
  // The first try, then 10 reconnections 1, 2, 4, 8, 16, 30, 30, 30, 30, 30 s apart.
  const gaps = tries.slice(1).map((t, i) => t - tries[i]);
  assert.deepEqual(gaps, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000]);
});

test("disconnect stops reconnecting and ends closed", async () => {
  const clock = new FakeClock();
  const tries = [];
  const peer = new MessagingPeer({ credentials: CREDENTIALS, WebSocket: failingSocket(clock, tries), clock });
  const connecting = peer.connect().catch((e) => e.code);
  await flush();
  await clock.runNext();
  peer.disconnect();
  assert.equal(await connecting, "CLOSED");
  assert.equal(await clock.runNext(), false);
  assert.equal(peer.state, "closed");
  assert.equal(tries.length, 2);
});
