// A rhizo client agent in TypeScript for Node 20+ (fetch and streams, no dependencies): it
// finds an agent by skill through the DHT, delegates a task, follows the server-sent events
// of /v1/events until the task ends and prints the result.
//
// Run (with a node running for the data dir):
//
//   node --experimental-strip-types examples/agents/client.ts --skill upper --text "hi"   # Node 22.6+
//   npx tsx examples/agents/client.ts --skill upper --text "hi"                          # Node 20
//
// Options: --data-dir DIR (default $RHIZO_DATA_DIR, else ~/.local/share/rhizo), --timeout SECS.

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

interface Part {
  text?: string;
  data?: unknown;
}
interface Task {
  id: string;
  status: { state: string; reason?: string };
  artifacts: { artifact_id: string; parts: Part[] }[];
}
interface AgentView {
  uid: string;
}

const TERMINAL = new Set(["completed", "failed", "canceled", "rejected"]);

function option(name: string, fallback?: string): string {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? process.argv[at + 1] : fallback;
  if (value === undefined) {
    throw new Error(`--${name} is required`);
  }
  return value;
}

function dataDir(): string {
  const explicit = option("data-dir", process.env.RHIZO_DATA_DIR ?? "");
  if (explicit) return explicit;
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), ".local/share"), "rhizo");
}

const dir = dataDir();
const base = `http://${readFileSync(join(dir, "api.addr"), "utf8").trim()}`;
const auth = { Authorization: `Bearer ${readFileSync(join(dir, "api.token"), "utf8").trim()}` };

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? auth : { ...auth, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${text}`);
  }
  return JSON.parse(text) as T;
}

type Event = Record<string, unknown>;

// Subscribes to /v1/events (the node subscribes before it answers the headers, so open it
// before acting and no event is missed); the events, one JSON object at a time.
async function openEvents(signal: AbortSignal): Promise<AsyncGenerator<Event>> {
  const response = await fetch(`${base}/v1/events`, { headers: auth, signal });
  if (!response.ok || !response.body) {
    throw new Error(`cannot open the event stream: ${response.status}`);
  }
  return parseEvents(response.body);
}

async function* parseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<Event> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .join("\n");
      if (!data) continue;
      try {
        yield JSON.parse(data) as Event;
      } catch {
        // not JSON (a `lagged` notice): the loop below re-reads the task anyway
      }
    }
  }
}

async function findAgent(skill: string, deadline: number): Promise<string> {
  for (;;) {
    const found = await api<AgentView[]>("GET", `/v1/agents/find?skill=${encodeURIComponent(skill)}`);
    if (found.length > 0) return found[0].uid;
    if (Date.now() >= deadline) throw new Error(`no agent offering ${skill} found`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main(): Promise<number> {
  const skill = option("skill");
  const text = option("text");
  const deadline = Date.now() + Number(option("timeout", "120")) * 1000;
  const uid = await findAgent(skill, deadline);
  console.error(`found ${uid} offering ${skill}`);

  const abort = new AbortController();
  const stream = await openEvents(abort.signal);
  let task = await api<Task>("POST", "/v1/tasks", { to: uid, text, skill });
  console.error(`task ${task.id}: ${task.status.state}`);
  let next = stream.next();
  while (!TERMINAL.has(task.status.state)) {
    if (Date.now() >= deadline) throw new Error(`task ${task.id} still ${task.status.state}`);
    // An event, or a 5 s tick (an event may have been missed): then re-read the task.
    const tick = new Promise<"tick">((r) => setTimeout(() => r("tick"), 5000));
    const got = await Promise.race([next, tick]);
    if (got !== "tick") {
      if (got.done) throw new Error("the event stream ended");
      next = stream.next();
      if (got.value.type !== "task_updated" || got.value.task_id !== task.id) continue;
    }
    task = await api<Task>("GET", `/v1/tasks/${task.id}`);
    console.error(`task ${task.id}: ${task.status.state}`);
  }
  next.catch(() => {}); // the stream ends with the abort below
  abort.abort();
  if (task.status.state !== "completed") {
    console.error(`task ${task.id} ended ${task.status.state}: ${task.status.reason ?? ""}`);
    return 1;
  }
  for (const artifact of task.artifacts) {
    for (const part of artifact.parts) {
      console.log(part.text ?? JSON.stringify(part.data));
    }
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
