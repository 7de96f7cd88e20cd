// The node health page: identity and peers, connections over time as a small inline SVG chart,
// the mailbox held for others, and bandwidth. The node keeps no history of its counters, so
// this page keeps its own: a bounded ring of `GET /v1/stats` samples, one every SAMPLE_MS from
// the moment the UI starts (the chart covers at most the last MAX_SAMPLES of them).

import { api, ApiError, app, h, Json, show } from "./core";
import { renderConversations } from "./app";

/** How often the UI samples `/v1/stats` for the chart (and refreshes the open health page). */
export const SAMPLE_MS = 5000;
/** Samples kept: 10 minutes at SAMPLE_MS. */
export const MAX_SAMPLES = 120;

/** One `/v1/stats` reading. Bytes are null when the node does not report them. */
interface Sample {
  at: number;
  peers: number;
  connections: number;
  bytesIn: number | null;
  bytesOut: number | null;
}

const samples: Sample[] = [];
let sampling = false;

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Adds a sample from a `/v1/stats` answer, dropping the oldest beyond MAX_SAMPLES. */
export function recordSample(stats: Json, at = Date.now()): void {
  const net = stats?.net ?? {};
  const open = (num(net.open_inbound) ?? 0) + (num(net.open_outbound) ?? 0);
  samples.push({ at, peers: num(stats?.connected_peers) ?? 0, connections: open, bytesIn: num(net.bytes_received), bytesOut: num(net.bytes_sent) });
  if (samples.length > MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
}

/** Samples `/v1/stats` every SAMPLE_MS until the session ends (a 401 logs out and stops it). */
export function startSampling(first: Json): void {
  if (sampling) return;
  sampling = true;
  recordSample(first);
  const tick = async (): Promise<void> => {
    try {
      const stats = await api("GET", "/v1/stats");
      recordSample(stats);
      if (document.getElementById("health")) await renderHealth(stats);
    } catch (err) {
      if ((err as ApiError).code === "UNAUTHORIZED") {
        sampling = false;
        return;
      }
    }
    setTimeout(() => void tick(), SAMPLE_MS);
  };
  setTimeout(() => void tick(), SAMPLE_MS);
}

// ---- formatting ------------------------------------------------------------------------------

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

function span(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}

function range(values: number[]): string {
  return `now ${values[values.length - 1]}, lowest ${Math.min(...values)}, highest ${Math.max(...values)}`;
}

/** The chart's text alternative: what it shows, in words. */
export function chartSummary(): string {
  if (!samples.length) return "No samples yet.";
  const over = samples.length > 1 ? `over the last ${span(samples[samples.length - 1].at - samples[0].at)}` : "in the first sample";
  return `Connected peers ${over}: ${range(samples.map((s) => s.peers))}. Open connections: ${range(samples.map((s) => s.connections))}. ${samples.length} samples, one every ${SAMPLE_MS / 1000} s.`;
}

/** Received and sent, in all and per second between the last two samples that report bytes. */
function bandwidthText(): string {
  const known = samples.filter((s) => s.bytesIn !== null && s.bytesOut !== null);
  const last = known[known.length - 1];
  if (!last) return "not reported by this node";
  const total = `received ${bytes(last.bytesIn ?? 0)}, sent ${bytes(last.bytesOut ?? 0)} since the node started`;
  const prev = known[known.length - 2];
  if (!prev || last.at <= prev.at) return total;
  const secs = (last.at - prev.at) / 1000;
  const rate = (a: number | null, b: number | null) => bytes(Math.max(0, Math.round(((a ?? 0) - (b ?? 0)) / secs)));
  return `${total}; now ↓ ${rate(last.bytesIn, prev.bytesIn)}/s, ↑ ${rate(last.bytesOut, prev.bytesOut)}/s`;
}

/** One word, as `rhizo status` and the TUI say it (rhizo-net's `Reachability::describe`). */
function reachability(r: Json): string {
  if (!r) return "unknown";
  if (r.nat_status === "public" || r.public_addrs?.length) return "public";
  if (r.relayed_addrs?.length) return "via relay";
  return r.nat_status === "private" ? "LAN only" : "unknown";
}

function mailboxText(mailbox: Json): string {
  const held = mailbox?.held;
  if (!held) return "unknown";
  if (!held.count) return "nothing held for others";
  const oldest = typeof held.oldest === "number" ? `, the oldest since ${new Date(held.oldest).toLocaleString()}` : "";
  return `${held.count} envelopes (${bytes(held.bytes ?? 0)}) for ${held.recipients} recipients${oldest}`;
}

function outboxText(mailbox: Json): string {
  const queued: Json[] = Array.isArray(mailbox?.queued) ? mailbox.queued : [];
  const n = queued.reduce((sum, q) => sum + (num(q.count) ?? 0), 0);
  return n ? `${n} of our messages not yet delivered` : "everything we sent was delivered";
}

// ---- the chart ---------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const W = 360;
const H = 120;
const PAD = 24;

function s(tag: string, attrs: Record<string, string>, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** Peers (solid) and open connections (dashed) over the samples kept, as inline SVG. */
export function connectionsChart(): SVGElement {
  const top = Math.max(1, ...samples.map((x) => Math.max(x.peers, x.connections)));
  const t0 = samples[0]?.at ?? 0;
  const width = Math.max(1, (samples[samples.length - 1]?.at ?? 0) - t0);
  const x = (v: Sample) => (samples.length > 1 ? PAD + ((W - 2 * PAD) * (v.at - t0)) / width : W - PAD);
  const y = (v: number) => H - PAD + 4 - ((H - PAD) * v) / top;
  const line = (pick: (v: Sample) => number, cls: string, dash: string) =>
    s("polyline", { class: cls, points: samples.map((v) => `${x(v).toFixed(1)},${y(pick(v)).toFixed(1)}`).join(" "), fill: "none", "stroke-width": "2", "stroke-dasharray": dash });
  const dot = (pick: (v: Sample) => number, cls: string) => {
    const last = samples[samples.length - 1];
    return last ? s("circle", { class: cls, cx: x(last).toFixed(1), cy: y(pick(last)).toFixed(1), r: "3" }) : s("g", {});
  };
  return s(
    "svg",
    { id: "connections-chart", role: "img", "aria-labelledby": "chart-title chart-desc", viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H), "data-samples": String(samples.length) },
    s("title", { id: "chart-title" }, "Connections over time"),
    s("desc", { id: "chart-desc" }, chartSummary()),
    s("line", { class: "axis", x1: String(PAD), y1: String(H - PAD + 4), x2: String(W - PAD), y2: String(H - PAD + 4) }),
    s("text", { x: "2", y: "12", class: "tick" }, String(top)),
    s("text", { x: "2", y: String(H - PAD + 8), class: "tick" }, "0"),
    s("text", { x: String(PAD), y: String(H - 4), class: "tick" }, samples.length > 1 ? `−${span(width)}` : ""),
    s("text", { x: String(W - PAD), y: String(H - 4), class: "tick", "text-anchor": "end" }, "now"),
    line((v) => v.connections, "series connections", "5 3"),
    line((v) => v.peers, "series peers", ""),
    dot((v) => v.connections, "series-dot connections"),
    dot((v) => v.peers, "series-dot peers"),
  );
}

// ---- the page ----------------------------------------------------------------------------------

export async function healthView(): Promise<void> {
  app.current = null;
  renderConversations();
  const stats = await api("GET", "/v1/stats");
  recordSample(stats);
  show(h("h2", { id: "view-title" }, "Node health"), h("div", { id: "health-body" }));
  await renderHealth(stats);
}

/** Fills the open health page from `stats` (and a fresh `/v1/mailbox`). */
async function renderHealth(stats: Json): Promise<void> {
  const mailbox = await api("GET", "/v1/mailbox").catch(() => null);
  const body = document.getElementById("health-body");
  if (!body) return;
  const row = (k: string, v: unknown) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v)));
  body.replaceChildren(
    h(
      "figure",
      { class: "chart" },
      connectionsChart(),
      h(
        "figcaption",
        {},
        h("span", { class: "legend peers" }, "━ connected peers"),
        " ",
        h("span", { class: "legend connections" }, "╌ open connections"),
        h("span", { id: "chart-summary", class: "summary" }, chartSummary()),
      ),
    ),
    h(
      "table",
      { id: "health" },
      h("caption", { class: "sr-only" }, "Node health"),
      h(
        "tbody",
        {},
        row("Name", stats.name ?? ""),
        row("UID", stats.uid),
        row("Version", stats.version),
        row("Connected peers", stats.connected_peers),
        row("Open connections", `${stats.net?.open_inbound ?? 0} inbound, ${stats.net?.open_outbound ?? 0} outbound`),
        row("Routing table peers", stats.routing_table_peers),
        row("Peer book", stats.peer_book_peers),
        row("Reachability", reachability(stats.reachability)),
        row("Mailbox held for others", mailboxText(mailbox)),
        row("Our outbox", outboxText(mailbox)),
        row("Bandwidth", bandwidthText()),
        row("Uptime", span(1000 * (stats.uptime_secs ?? 0))),
      ),
    ),
  );
}
