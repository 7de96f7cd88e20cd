// The web UI's live link to its node: the page is a light client of the node that serves it.
// It pairs itself once (`POST /v1/pairings`, with the session cookie), then speaks the clients/ts
// `MessagingPeer` over `/v1/ws`: messages go out through it and every event comes in through
// it. The pairing's credentials stay in this origin's localStorage, so a reload resumes the same
// pairing; "Log out" revokes it. Reads and management (history, contacts, devices, stats) stay on
// the `/v1/…` routes, which the socket does not carry.

import { MessagingPeer } from "../../ts/src/index.js";
import { api, app, Json } from "./core";

/** Where this origin keeps its pairing's credentials. */
const STORE = "rhizo.web.light";
/** The name the page's pairing gets (`GET /v1/pairings`, the devices page). */
export const PAIRING_NAME = "web UI";
/** Fewest milliseconds between two attempts to pair anew after the node refused the page. */
const REPAIR_GAP_MS = 10_000;

export interface LiveHooks {
  /** An event as `GET /v1/events` carries it. */
  onEvent(event: Json): void;
  /** The connection's state: `connecting`, `connected`, `reconnecting`, `failed`, `closed`. */
  onState(state: string): void;
  /** The node dropped events for this page: re-read what is shown. */
  onLagged(): void;
  /** Something went wrong that the user should see. */
  onProblem(text: string): void;
}

let hooks: LiveHooks | null = null;
let lastPairing = 0;

function stored(): Json | null {
  try {
    const text = localStorage.getItem(STORE);
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function store(credentials: Json): void {
  try {
    localStorage.setItem(STORE, JSON.stringify(credentials));
  } catch {
    // No storage (private mode): the next load pairs again.
  }
}

function forget(): void {
  try {
    localStorage.removeItem(STORE);
  } catch {
    // Nothing stored.
  }
}

/** This page's own `/v1/ws`, on the origin it was loaded from. */
function socketUrl(): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`;
}

function wire(peer: MessagingPeer, h: LiveHooks): void {
  peer.onMessage((text: string, from: string, meta: { id: number; sentAt: number }) =>
    h.onEvent({ type: "message_received", id: meta.id, contact: from, text, sent_at: meta.sentAt }),
  );
  peer.onMessageState((s: Json) => h.onEvent({ type: "message_state", id: s.id, contact: s.peer, state: s.state }));
  peer.onEvent((event: Json) => h.onEvent(event));
  peer.onConnectionStateChange((state: string) => {
    if (app.peer !== peer) return;
    h.onState(state);
    if (state === "failed") void repair();
  });
  peer.onError((e: Json) => {
    if (app.peer !== peer) return;
    if (e.code === "LAGGED") h.onLagged();
  });
}

/** Connects with stored credentials, or pairs anew; resolves once the node registered the page. */
async function open(credentials: Json | null): Promise<MessagingPeer> {
  const h = hooks!;
  if (credentials) {
    const peer = new MessagingPeer({ credentials });
    app.peer = peer;
    wire(peer, h);
    try {
      await peer.connect();
      return peer;
    } catch (e) {
      // Revoked, or a node with other keys behind this origin now: pair again below.
      if ((e as Json).code !== "REFUSED") throw e;
      forget();
    }
  }
  lastPairing = Date.now();
  const pairing = await api("POST", "/v1/pairings", { name: PAIRING_NAME, url: socketUrl() });
  const peer = new MessagingPeer({ ticket: pairing.ticket, onCredentials: store });
  app.peer = peer;
  wire(peer, h);
  await peer.connect();
  return peer;
}

/** Starts the live link (once, after login). */
export async function startLive(h: LiveHooks): Promise<void> {
  hooks = h;
  try {
    await open(stored());
  } catch (e) {
    h.onProblem(`No live connection to the node: ${(e as Error).message}`);
  }
}

/** The node refused the page (its pairing was revoked) or stopped answering: pair again, rarely. */
async function repair(): Promise<void> {
  if (!hooks || Date.now() - lastPairing < REPAIR_GAP_MS) return;
  forget();
  try {
    await open(null);
  } catch (e) {
    hooks.onProblem(`No live connection to the node: ${(e as Error).message}`);
  }
}

/** The live link, once connected; sends fail with a clear error before that. */
export function peer(): MessagingPeer {
  const p = app.peer as MessagingPeer | null;
  if (!p || p.state !== "connected") throw Object.assign(new Error("not connected to the node yet; try again in a moment"), { code: "NOT_CONNECTED" });
  return p;
}

/** Logging out: the page's pairing is revoked and forgotten. */
export async function stopLive(): Promise<void> {
  const p = app.peer as MessagingPeer | null;
  app.peer = null;
  hooks = null;
  if (p) {
    const id = p.clientId;
    p.disconnect();
    if (id) await api("DELETE", `/v1/pairings/${encodeURIComponent(id)}`).catch(() => {});
  }
  forget();
}

/** Whether pairing `id` is this page's own. */
export function isOwnPairing(id: string): boolean {
  return !!app.peer && (app.peer as MessagingPeer).clientId === id;
}
