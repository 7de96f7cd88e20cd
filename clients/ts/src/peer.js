// MessagingPeer: seed 002's API for a light client of the user's own rhizo node. The node does
// MLS with the world; this class talks to the node over the paired channel (channel.js) on the
// node's `/v1/ws` (docs/local-api.md, "Light clients"). No Node-only APIs: the WebSocket class
// is the global one unless one is passed in (node.js passes `ws`).

import {
  ChannelError, HELLO_PAIR, HELLO_RESUME, clientFinish, clientStart, generateKeyPair,
} from "./channel.js";
import { parsePairTicket } from "./ticket.js";

/** Reconnection as seed 002 says: 1 s, doubling, capped at 30 s, at most 10 attempts. */
export const RECONNECT = Object.freeze({ baseDelayMs: 1000, maxDelayMs: 30000, maxAttempts: 10, jitter: 0.2 });
/** How long a request waits for its answer. */
export const REQUEST_TIMEOUT_MS = 30000;
/** Close codes after which reconnecting cannot help (the client must pair again). */
const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403]);
/** Most requests waiting for answers at once. */
const MAX_PENDING_REQUESTS = 256;

const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const bytesOf = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));

/** The delay before reconnection attempt `attempt` (1-based), with `random()` in [0, 1). */
export function reconnectDelay(attempt, random, policy = RECONNECT) {
  const base = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
  const spread = 1 - policy.jitter + 2 * policy.jitter * random();
  return Math.min(Math.round(base * spread), policy.maxDelayMs);
}

/** A failure reported to `onError` or thrown by a request; `code` is stable. */
export class PeerError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PeerError";
    this.code = code;
  }
}

/** One socket: binary messages in order, or its close as an error. */
class Link {
  constructor(WebSocketClass, url) {
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    this.ws = new WebSocketClass(url);
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.onopen = () => resolve();
      this.ws.onerror = () => reject(new PeerError("CONNECT_FAILED", `cannot reach ${url}`));
    });
    this.opened.catch(() => {});
    this.ws.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) return;
      const bytes = new Uint8Array(event.data);
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(bytes);
      else if (this.onFrame) this.onFrame(bytes);
      else this.queue.push(bytes);
    };
    this.ws.onclose = (event) => {
      this.closed = { code: event.code, reason: event.reason };
      const error = new PeerError("CLOSED", `closed by the node (${event.code} ${event.reason})`);
      error.closeCode = event.code;
      for (const w of this.waiters.splice(0)) w.reject(error);
      if (this.onClose) this.onClose(this.closed);
    };
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closed) {
      const error = new PeerError("CLOSED", `closed by the node (${this.closed.code})`);
      error.closeCode = this.closed.code;
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  send(bytes) {
    this.ws.send(bytes);
  }

  close() {
    try {
      this.ws.close(1000, "bye");
    } catch {
      // Already closing.
    }
  }
}

/**
 * A light client of a rhizo node. Give it a pairing `ticket` (`rhizo pair`) the first time, and
 * the `credentials` it reports through `onCredentials` afterwards.
 */
export class MessagingPeer {
  constructor(options = {}) {
    const { ticket, credentials, WebSocket: WebSocketClass, clock, onCredentials, reconnect } = options;
    if (!ticket && !credentials) throw new PeerError("BAD_OPTIONS", "give a pairing ticket or stored credentials");
    this.WebSocket = WebSocketClass ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new PeerError("BAD_OPTIONS", "no WebSocket class: pass one (in Node, use the package's node entry)");
    this.clock = clock ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t), random: Math.random };
    this.policy = { ...RECONNECT, ...reconnect };
    this.ticket = ticket ? parsePairTicket(ticket) : null;
    this.credentials = credentials ?? null;
    this.reportCredentials = onCredentials ?? (() => {});
    this.state = "closed";
    this.handlers = { message: [], error: [], peerDisconnected: [], peerConnected: [], state: [], messageState: [], event: [] };
    this.pending = new Map();
    this.nextRequestId = 1;
    this.attempts = 0;
    this.timer = null;
    this.link = null;
    this.session = null;
    this.wanted = false;
    this.waiter = null;
    this.clientId = null;
  }

  onMessage(handler) { this.handlers.message.push(handler); }
  onError(handler) { this.handlers.error.push(handler); }
  onPeerDisconnected(handler) { this.handlers.peerDisconnected.push(handler); }
  onPeerConnected(handler) { this.handlers.peerConnected.push(handler); }
  onConnectionStateChange(handler) { this.handlers.state.push(handler); }
  onMessageState(handler) { this.handlers.messageState.push(handler); }
  /** Every other node event, as `GET /v1/events` carries it (`{ type, … }`). */
  onEvent(handler) { this.handlers.event.push(handler); }

  #emit(kind, ...args) {
    for (const h of this.handlers[kind]) {
      try {
        h(...args);
      } catch {
        // A handler's failure is its own.
      }
    }
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#emit("state", state);
  }

  /**
   * Connects (pairing first if given a ticket); resolves once registered with the node. A
   * connection that cannot be made is retried on the reconnection schedule; rejects in `failed`.
   */
  connect() {
    this.wanted = true;
    this.attempts = 0;
    this.#setState("connecting");
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.#attempt();
    });
  }

  #attempt() {
    this.#open()
      .then(() => {
        this.waiter?.resolve();
        this.waiter = null;
      })
      .catch((error) => {
        if (!this.wanted) return;
        if (error instanceof ChannelError || FATAL_CLOSE_CODES.has(error.closeCode)) {
          this.#failed(new PeerError("REFUSED", `the node refused this client: ${error.message}; pair again`));
          return;
        }
        this.link?.close();
        this.link = null;
        this.session = null;
        this.#scheduleReconnect();
      });
  }

  /** Closes the connection for good (no reconnection). */
  disconnect() {
    this.wanted = false;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    const link = this.link;
    this.link = null;
    this.session = null;
    if (link) link.close();
    this.#rejectPending(new PeerError("CLOSED", "disconnected"));
    this.waiter?.reject(new PeerError("CLOSED", "disconnected"));
    this.waiter = null;
    this.#setState("closed");
  }

  async #open() {
    const url = this.credentials?.url ?? this.ticket.url;
    const link = new Link(this.WebSocket, url);
    this.link = link;
    await link.opened;
    let handshake;
    if (this.credentials) {
      const c = this.credentials;
      const client = { secretKey: bytesOf(c.clientSecretKey), publicKey: bytesOf(c.clientPublicKey) };
      handshake = await clientStart(HELLO_RESUME, bytesOf(c.nodePublicKey), client, bytesOf(c.pairKey));
    } else {
      const client = await generateKeyPair();
      handshake = await clientStart(HELLO_PAIR, this.ticket.nodePk, client, this.ticket.secret);
    }
    link.send(handshake.hello);
    const reply = await link.next();
    const { session, finish, keys } = await clientFinish(handshake.state, reply);
    link.send(finish);
    if (!this.credentials) {
      this.credentials = {
        url: this.ticket.url,
        nodePublicKey: hexOf(this.ticket.nodePk),
        clientSecretKey: hexOf(handshake.state.client.secretKey),
        clientPublicKey: hexOf(handshake.state.client.publicKey),
        pairKey: hexOf(keys.pairKey),
      };
      this.ticket = null;
      this.reportCredentials(this.credentials);
    }
    this.session = session;
    link.onClose = (closed) => this.#lost(link, closed);
    link.onFrame = (frame) => this.#frame(frame);
    for (const queued of link.queue.splice(0)) this.#frame(queued);
    const registered = await this.#request({ type: "register" });
    this.clientId = registered.client_id ?? null;
    this.attempts = 0;
    this.#setState("connected");
  }

  #frame(frame) {
    let message;
    try {
      message = JSON.parse(new TextDecoder().decode(this.session.open(frame)));
    } catch (error) {
      // A replayed, reordered or altered frame: the channel is done.
      this.#emit("error", new PeerError("CHANNEL", `channel closed: ${error.message}`));
      this.link?.close();
      return;
    }
    const waiting = message.request_id != null ? this.pending.get(message.request_id) : undefined;
    if (waiting) {
      this.pending.delete(message.request_id);
      this.clock.clearTimeout(waiting.timer);
      if (message.type === "error") waiting.reject(new PeerError(message.code, message.message));
      else waiting.resolve(message);
      if (message.type !== "message_state") return;
    }
    switch (message.type) {
      case "message":
        this.#emit("message", message.text, message.from, { id: message.id, sentAt: message.sent_at });
        break;
      case "message_state":
        this.#emit("messageState", { id: message.id, peer: message.peer, state: message.state });
        break;
      case "event":
        this.#emit("event", message.event);
        break;
      case "peer_disconnected":
        this.#emit("peerDisconnected", message.peer);
        break;
      case "peer_connected":
        this.#emit("peerConnected", message.peer);
        break;
      case "error":
        this.#emit("error", new PeerError(message.code, message.message));
        break;
      default:
        break;
    }
  }

  #request(body) {
    if (!this.session || !this.link) return Promise.reject(new PeerError("NOT_CONNECTED", "not connected"));
    if (this.pending.size >= MAX_PENDING_REQUESTS) {
      return Promise.reject(new PeerError("TOO_MANY_REQUESTS", "too many requests waiting"));
    }
    const requestId = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(requestId);
        reject(new PeerError("TIMEOUT", `no answer to ${body.type}`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(requestId, { resolve, reject, timer });
      const frame = this.session.seal(new TextEncoder().encode(JSON.stringify({ ...body, request_id: requestId })));
      this.link.send(frame);
    });
  }

  #rejectPending(error) {
    for (const [, p] of this.pending) {
      this.clock.clearTimeout(p.timer);
      p.reject(error);
    }
    this.pending.clear();
  }

  #lost(link, closed) {
    if (link !== this.link) return;
    this.link = null;
    this.session = null;
    this.#rejectPending(new PeerError("CLOSED", `connection lost (${closed.code})`));
    if (!this.wanted) return;
    if (FATAL_CLOSE_CODES.has(closed.code)) {
      this.#failed(new PeerError("REFUSED", `the node refused this client (${closed.code} ${closed.reason}): pair again`));
      return;
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    if (this.attempts >= this.policy.maxAttempts) {
      this.#failed(new PeerError("RECONNECT_FAILED", `gave up after ${this.policy.maxAttempts} attempts`));
      return;
    }
    this.attempts += 1;
    this.#setState("reconnecting");
    const delay = reconnectDelay(this.attempts, this.clock.random, this.policy);
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.wanted) this.#attempt();
    }, delay);
  }

  #failed(error) {
    this.wanted = false;
    this.link?.close();
    this.link = null;
    this.session = null;
    this.#emit("error", error);
    this.#setState("failed");
    this.waiter?.reject(error);
    this.waiter = null;
  }

  /** Sends `text` to the contact `to`; resolves with `{ id, state }` (then see `onMessageState`). */
  async sendMessage(to, text) {
    const answer = await this.#request({ type: "message", to, text });
    return { id: answer.id, state: answer.state };
  }

  /** The contacts: `[{ id, uid, online, verified }]`. */
  async discoverPeers() {
    return (await this.#request({ type: "discover" })).peers;
  }

  /** A contact's identity as the node verified it: `{ uid, fingerprint, safetyNumber, verified, devices }`. */
  async requestPublicKey(id) {
    const a = await this.#request({ type: "request_public_key", peer: id });
    return { id: a.peer, uid: a.uid, fingerprint: a.fingerprint, safetyNumber: a.safety_number, verified: a.verified, devices: a.devices };
  }

  /** Our private groups (as `GET /v1/groups`, at most 100). */
  async groups() {
    return (await this.#request({ type: "groups" })).groups;
  }

  /** Sends `text` to the group `group` (its id); resolves with `{ id, state, total }`. */
  async sendGroupMessage(group, text) {
    const a = await this.#request({ type: "group_message", group, text });
    return { id: a.id, state: a.state, total: a.total };
  }

  /** Files sent and received, newest first (as `GET /v1/files`, at most 100). */
  async files() {
    return (await this.#request({ type: "files" })).files;
  }

  /** Tasks on either side, newest first (as `GET /v1/tasks`, at most 100). */
  async tasks() {
    return (await this.#request({ type: "tasks" })).tasks;
  }
}
