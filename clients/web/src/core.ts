// The web UI's shared pieces: its state, the DOM helpers and the API call (cookie-authenticated).

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Conv {
  kind: "contact" | "group";
  key: string;
  title: string;
  unread: number;
  last: number;
}

export interface Msg {
  id: number;
  direction: string;
  text: string | null;
  sent_at: number;
  state: string;
  from_name?: string | null;
  from?: string | null;
  delivered?: number;
  read?: number;
  total?: number;
  file?: { name: string; size: number; mime?: string; state?: string; percent?: number } | null;
}

export const app = {
  convs: [] as Conv[],
  current: null as Conv | null,
  messages: [] as Msg[],
  requests: [] as Json[],
  groupRequests: [] as Json[],
  me: null as Json,
  live: "connecting",
  fileProgress: new Map<number, { state: string; done: number; total: number }>(),
  /** Contacts by name, from /v1/contacts, kept live by presence and key_change events. */
  contacts: new Map<string, Json>(),
  /** Contacts whose changed keys the user chose to send to anyway (until the next change). */
  confirmed: new Set<string>(),
  /** The contact whose key-change warning was shown for the send the user just tried. */
  confirmPending: null as string | null,
  uploads: [] as Upload[],
  /** The live link: this page as a light client of its node (live.ts), once started. */
  peer: null as Json,
};

/** A file being sent from this browser: `POST /v1/files` with the content as the body. */
export interface Upload {
  seq: number;
  conv: Conv;
  name: string;
  loaded: number;
  total: number;
  state: "uploading" | "sent" | "failed";
}


// ---- DOM helpers -------------------------------------------------------------------------

export type Child = Node | string | null | undefined | false;

export function h(tag: string, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k, v as EventListener);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el;
}

export function status(text: string): void {
  $("status").textContent = text;
}

// ---- the API ---------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(public code: string, message: string) {
    super(message);
  }
}

export async function api(method: string, path: string, body?: unknown): Promise<Json> {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    showLoggedOut();
    throw new ApiError("UNAUTHORIZED", "not logged in");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(data?.code ?? String(response.status), data?.error ?? text);
  return data;
}

export const enc = encodeURIComponent;

export function show(...children: Child[]): void {
  $("view").replaceChildren(...children.filter((c): c is Node | string => !!c));
}


export function showLoggedOut(): void {
  document.body.replaceChildren(
    h(
      "main",
      { class: "logged-out" },
      h("h1", {}, "rhizo"),
      h("p", {}, "Not logged in. Run `rhizo ui` on this machine and open the link it prints."),
    ),
  );
}

