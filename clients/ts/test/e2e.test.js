// Against real `rhizo` processes on 127.0.0.1 (RHIZO_BIN names the binary; .ci/run sets it):
// alice and bob run full nodes and are contacts; a MessagingPeer pairs with alice's node
// (`rhizo pair`), discovers bob, checks his key, messages him and sees `delivered`, gets his
// answer, sees him go offline; then reconnects with its stored credentials.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { MessagingPeer } from "../src/node.js";

const BIN = process.env.RHIZO_BIN;
const TIMEOUT_MS = 90_000;
const POLL_MS = 100;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `f` until it returns a value other than undefined, failing after `ms` naming `what`. */
async function waitFor(what, f, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await f();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** One rhizo node: its own data dir, loopback only, ephemeral ports, mDNS off. */
class Node {
  constructor(name) {
    this.name = name;
    this.dir = mkdtempSync(join(tmpdir(), `rhizo-ts-${name}-`));
    this.cli(["init", "--name", name]);
    const id = JSON.parse(this.cli(["id", "--json"]));
    this.uid = id.uid;
    this.peerId = id.peer_id;
  }

  cli(args) {
    const out = spawnSync(BIN, ["--data-dir", this.dir, ...args], { encoding: "utf8", timeout: 60_000, env: this.env() });
    if (out.status !== 0) throw new Error(`rhizo ${args.join(" ")}: ${out.stderr}`);
    return out.stdout;
  }

  env() {
    return { ...process.env, RHIZO_MDNS: "false", XDG_CONFIG_HOME: join(this.dir, "no-config"), RUST_LOG: "info" };
  }

  async start(extra = [], listen = "/ip4/127.0.0.1/tcp/0") {
    this.startArgs = [extra, listen];
    const log = openSync(join(this.dir, "run.log"), "a");
    const args = ["--data-dir", this.dir, "run", "--listen", listen, "--api", "127.0.0.1:0", "--no-mdns", ...extra];
    this.child = spawn(BIN, args, { env: this.env(), stdio: ["ignore", log, log] });
    await waitFor(`${this.name} to listen`, async () => {
      if (!existsSync(join(this.dir, "api.addr"))) return undefined;
      const stats = await this.api("GET", "/v1/stats").catch(() => undefined);
      return stats?.listen_addrs?.length ? true : undefined;
    });
  }

  async api(method, path, body) {
    const addr = readFileSync(join(this.dir, "api.addr"), "utf8").trim();
    const token = readFileSync(join(this.dir, "api.token"), "utf8").trim();
    const response = await fetch(`http://${addr}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  }

  async listenAddr() {
    const stats = await this.api("GET", "/v1/stats");
    return `${stats.listen_addrs.find((a) => a.includes("/tcp/"))}/p2p/${this.peerId}`;
  }

  /** Stops the node and waits for the process to end (so its ports are free again). */
  async stop() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }

  restart() {
    return this.start(...this.startArgs);
  }

  logs() {
    try {
      return readFileSync(join(this.dir, "run.log"), "utf8").slice(-16_000);
    } catch {
      return "";
    }
  }

  remove() {
    this.child?.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function befriend(a, b) {
  await b.api("POST", "/v1/contacts", { ticket: (await a.api("GET", "/v1/invite")).ticket, name: a.name });
  await a.api("POST", "/v1/contacts", { ticket: (await b.api("GET", "/v1/invite")).ticket, name: b.name });
}

/** Retries `f` while the contact's KeyPackages are not found yet. */
function whenKeyPackages(what, f) {
  return waitFor(what, () => f().catch((e) => {
    if (/NO_KEY_PACKAGES/.test(`${e.code ?? ""} ${e.message}`)) return undefined;
    throw e;
  }));
}

test("a MessagingPeer paired to alice's node messages bob's full node both ways", { skip: BIN ? false : "RHIZO_BIN is not set", timeout: 240_000 }, async () => {
  const alice = new Node("alice");
  const bob = new Node("bob");
  let peer;
  try {
    await alice.start();
    await bob.start(["--bootstrap", await alice.listenAddr()]);
    await befriend(alice, bob);
    const ticket = alice.cli(["pair", "--no-qr", "--name", "ts"]).split("\n").find((l) => l.startsWith("rhz1pair"));
    let credentials;
    peer = new MessagingPeer({ ticket, onCredentials: (c) => (credentials = c) });
    const states = [];
    const received = [];
    const delivered = new Set();
    const offline = [];
    peer.onConnectionStateChange((s) => states.push(s));
    peer.onMessage((text, from) => received.push({ text, from }));
    peer.onMessageState((m) => m.state === "delivered" && delivered.add(m.id));
    peer.onPeerDisconnected((p) => offline.push(p));
    await peer.connect();
    assert.equal(peer.state, "connected");
    assert.ok(credentials?.pairKey, "no credentials reported after pairing");

    const peers = await peer.discoverPeers();
    assert.equal(peers.find((p) => p.id === "bob")?.uid, bob.uid);
    const key = await peer.requestPublicKey("bob");
    assert.equal(key.uid, bob.uid);
    assert.deepEqual(key.devices, [bob.peerId]);

    const sent = await whenKeyPackages("bob's KeyPackages", () => peer.sendMessage("bob", "from the TypeScript client"));
    await waitFor("delivered", () => (delivered.has(sent.id) ? true : undefined));
    await waitFor("bob has the text", async () => {
      const history = await bob.api("GET", "/v1/conversations/alice/messages");
      return history.some((m) => m.text === "from the TypeScript client") ? true : undefined;
    });

    await whenKeyPackages("alice's KeyPackages", () => bob.api("POST", "/v1/message", { to: "alice", text: "to the TypeScript client" }));
    const got = await waitFor("bob's message", () => received.find((m) => m.text === "to the TypeScript client"));
    assert.equal(got.from, "bob");

    await bob.stop();
    await waitFor("bob offline", () => (offline.includes("bob") ? true : undefined));

    // Stored credentials reconnect without a ticket.
    peer.disconnect();
    assert.equal(peer.state, "closed");
    peer = new MessagingPeer({ credentials });
    await peer.connect();
    assert.ok((await peer.discoverPeers()).some((p) => p.id === "bob"));
    assert.deepEqual(states, ["connecting", "connected", "closed"]);
  } catch (e) {
    e.message += `\n--- alice ---\n${alice.logs()}\n--- bob ---\n${bob.logs()}`;
    throw e;
  } finally {
    peer?.disconnect();
    alice.remove();
    bob.remove();
  }
});

test("through a gateway, across a gateway restart: the client reconnects and messages flow", { skip: BIN ? false : "RHIZO_BIN is not set", timeout: 300_000 }, async () => {
  const gateway = new Node("gateway");
  const alice = new Node("alice");
  const bob = new Node("bob");
  let peer;
  try {
    const [wsPort, p2pPort] = [await freePort(), await freePort()];
    await gateway.start(["--gateway", `127.0.0.1:${wsPort}`], `/ip4/127.0.0.1/tcp/${p2pPort}`);
    const g = `/ip4/127.0.0.1/tcp/${p2pPort}/p2p/${gateway.peerId}`;
    await alice.start(["--bootstrap", g, "--trusted", g]);
    await bob.start(["--bootstrap", g]);
    await befriend(alice, bob);
    const url = `ws://127.0.0.1:${wsPort}/v1/gateway/${alice.peerId}`;
    const ticket = alice.cli(["pair", "--no-qr", "--name", "phone", "--url", url]).split("\n").find((l) => l.startsWith("rhz1pair"));
    peer = new MessagingPeer({ ticket });
    const states = [];
    const received = [];
    const delivered = new Set();
    peer.onConnectionStateChange((s) => states.push(s));
    peer.onMessage((text, from) => received.push({ text, from }));
    peer.onMessageState((m) => m.state === "delivered" && delivered.add(m.id));
    await peer.connect();
    const first = await whenKeyPackages("bob's KeyPackages", () => peer.sendMessage("bob", "through the gateway"));
    await waitFor("delivered", () => (delivered.has(first.id) ? true : undefined));

    // Kill the gateway mid-session and bring it back on the same ports.
    await gateway.stop();
    await waitFor("reconnecting", () => (peer.state === "reconnecting" ? true : undefined));
    await gateway.restart();
    await waitFor("connected again", () => (peer.state === "connected" ? true : undefined), 150_000);
    const second = await peer.sendMessage("bob", "after the restart");
    await waitFor("delivered after the restart", () => (delivered.has(second.id) ? true : undefined));
    await whenKeyPackages("alice's KeyPackages", () => bob.api("POST", "/v1/message", { to: "alice", text: "back through the gateway" }));
    const got = await waitFor("bob's message", () => received.find((m) => m.text === "back through the gateway"));
    assert.equal(got.from, "bob");
    assert.deepEqual(states.slice(0, 2), ["connecting", "connected"]);
    assert.ok(states.includes("reconnecting") && states.at(-1) === "connected", states.join(","));
  } catch (e) {
    e.message += `\n--- gateway ---\n${gateway.logs()}\n--- alice ---\n${alice.logs()}`;
    throw e;
  } finally {
    peer?.disconnect();
    gateway.remove();
    alice.remove();
    bob.remove();
  }
});
