// What the tests against real `rhizo` processes share (clients/ts and clients/web): a node in
// its own data dir on 127.0.0.1 with ephemeral ports, bounded polling, a free port, contacts.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BIN = process.env.RHIZO_BIN;
export const TIMEOUT_MS = 90_000;
const POLL_MS = 100;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `f` until it returns a value other than undefined, failing after `ms` naming `what`. */
export async function waitFor(what, f, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await f();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** One rhizo node: its own data dir, loopback only, ephemeral ports, mDNS off. */
export class Node {
  /** `init` is how the data dir is made (e.g. `["init", "--link"]` for a device to link). */
  constructor(name, init = ["init", "--name", name]) {
    this.name = name;
    this.dir = mkdtempSync(join(tmpdir(), `rhizo-ts-${name}-`));
    this.cli(init);
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

  /** Runs the node; waits until it listens (a device waiting to be linked: until its API answers). */
  async start(extra = [], listen = "/ip4/127.0.0.1/tcp/0") {
    this.startArgs = [extra, listen];
    const pendingLink = JSON.parse(this.cli(["id", "--json"])).role === "pending-link";
    const log = openSync(join(this.dir, "run.log"), "a");
    const args = ["--data-dir", this.dir, "run", "--listen", listen, "--api", "127.0.0.1:0", "--no-mdns", ...extra];
    this.child = spawn(BIN, args, { env: this.env(), stdio: ["ignore", log, log] });
    await waitFor(`${this.name} to listen`, async () => {
      if (!existsSync(join(this.dir, "api.addr"))) return undefined;
      if (pendingLink) return (await this.api("GET", "/v1/health").catch(() => undefined)) ? true : undefined;
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
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function befriend(a, b) {
  await b.api("POST", "/v1/contacts", { ticket: (await a.api("GET", "/v1/invite")).ticket, name: a.name });
  await a.api("POST", "/v1/contacts", { ticket: (await b.api("GET", "/v1/invite")).ticket, name: b.name });
}

/** Retries `f` while the contact's KeyPackages are not found yet. */
export function whenKeyPackages(what, f) {
  return waitFor(what, () => f().catch((e) => {
    if (/NO_KEY_PACKAGES/.test(`${e.code ?? ""} ${e.message}`)) return undefined;
    throw e;
  }));
}
