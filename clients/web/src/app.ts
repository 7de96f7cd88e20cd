// rhizo's web UI (issue 18). Served by the node under /ui/ and built only on its public APIs:
// the page pairs itself as a light client and sends messages and receives every event through
// the clients/ts `MessagingPeer` over `/v1/ws` (live.ts); it reads history and manages contacts,
// devices and files on the /v1/… routes (the session cookie set by `rhizo ui`'s login link
// stands in for the token). No framework: a few DOM helpers, text only through textContent
// (never innerHTML), so nothing a peer sends can become markup.

import { $, api, ApiError, app, Child, Conv, enc, h, Json, Msg, show, showLoggedOut, status } from "./core";
import { confirmKeyChange, renderBanner, safetyView } from "./keys";
import { pickFiles, renderUploads, setUpDrop } from "./upload";
import { healthView, startSampling } from "./health";
import { agentsView, devicesView } from "./devices";
import { noteTyping, onTyping, renderTyping, stopTyping } from "./typing";
import { peer, startLive, stopLive } from "./live";

const STATE_MARK: Record<string, string> = {
  queued: "◷ queued",
  sent: "✓ sent",
  stored: "✓ stored",
  delivered: "✓✓ delivered",
  read: "✓✓ read",
  failed: "✗ failed",
};


// ---- conversations -------------------------------------------------------------------------

export async function loadConversations(): Promise<void> {
  const [contacts, groups] = await Promise.all([api("GET", "/v1/contacts"), api("GET", "/v1/groups")]);
  app.contacts = new Map(contacts.map((c: Json) => [c.name, c]));
  const convs: Conv[] = [];
  await Promise.all(
    contacts.map(async (c: Json) => {
      const history: Msg[] = await api("GET", `/v1/conversations/${enc(c.name)}/messages?limit=200`);
      convs.push({
        kind: "contact",
        key: c.name,
        title: c.name,
        unread: history.filter((m) => m.direction === "in" && m.state === "received").length,
        last: Math.max(0, ...history.map((m) => m.sent_at)),
      });
    }),
  );
  for (const g of groups) {
    if (g.status !== "active") continue;
    convs.push({ kind: "group", key: g.id, title: `# ${g.name}`, unread: g.unread, last: g.last_activity });
  }
  convs.sort((a, b) => b.last - a.last || a.title.localeCompare(b.title));
  app.convs = convs;
  renderConversations();
  renderPresence();
  renderBanner();
}

/** "online", "last seen 5 min ago", "offline" or "presence hidden": never colour alone. */
function presenceText(p: Json): string {
  if (!p) return "";
  if (p.state === "online") return "● online";
  if (p.state === "hidden") return "presence hidden";
  if (typeof p.last_seen !== "number") return "○ offline";
  const ago = Math.max(0, Math.floor(Date.now() / 1000) - p.last_seen);
  if (ago < 60) return "○ last seen just now";
  if (ago < 3600) return `○ last seen ${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `○ last seen ${Math.floor(ago / 3600)} h ago`;
  return `○ last seen ${new Date(p.last_seen * 1000).toLocaleDateString()}`;
}

export function renderConversations(): void {
  const list = $("conversations");
  list.replaceChildren(
    ...app.convs.map((c) => {
      const active = app.current?.kind === c.kind && app.current.key === c.key;
      const contact = c.kind === "contact" ? app.contacts.get(c.key) : null;
      const presence = presenceText(contact?.presence);
      const changed = !!contact?.key_changed;
      // The accessible name is the visible text, with the words a sighted user infers from
      // the layout in screen-reader-only spans.
      const sr = (text: string) => h("span", { class: "sr-only" }, text);
      return h(
        "li",
        {},
        h(
          "button",
          { class: active ? "conv active" : "conv", "aria-current": active ? "true" : false, "data-conv": c.key, "data-unread": String(c.unread), click: () => openConversation(c) },
          h("span", { class: "title" }, changed ? `⚠ ${c.title}` : c.title),
          changed ? sr(", keys changed") : null,
          presence ? sr(", ") : null,
          presence ? h("span", { class: "presence" }, presence) : null,
          c.unread ? sr(", ") : null,
          c.unread ? h("span", { class: "unread" }, String(c.unread)) : null,
          c.unread ? sr(" unread") : null,
        ),
      );
    }),
  );
  if (!app.convs.length) list.append(h("li", { class: "empty" }, "No conversations yet: add a contact."));
}

function historyPath(c: Conv): string {
  return c.kind === "contact" ? `/v1/conversations/${enc(c.key)}/messages` : `/v1/groups/${enc(c.key)}/messages`;
}

export async function openConversation(c: Conv): Promise<void> {
  app.current = c;
  app.confirmPending = null;
  app.messages = await api("GET", `${historyPath(c)}?limit=200&mark_read=true`);
  c.unread = 0;
  renderConversations();
  renderConversation();
  const input = document.getElementById("compose-text");
  input?.focus();
}

export async function refreshCurrent(): Promise<void> {
  const c = app.current;
  if (!c) return;
  app.messages = await api("GET", `${historyPath(c)}?limit=200&mark_read=true`);
  if (app.current === c) renderMessages();
}

function stateText(m: Msg): string {
  if (m.direction !== "out") return "";
  let text = STATE_MARK[m.state] ?? m.state;
  if (m.total) text += ` (${m.delivered ?? 0}/${m.total} delivered, ${m.read ?? 0} read)`;
  return text;
}

function fileLine(m: Msg): Child {
  const f = m.file;
  if (!f) return null;
  const p = app.fileProgress.get(m.id);
  const state = p?.state ?? f.state ?? "offered";
  const pct = state === "done" ? 100 : p && p.total ? Math.floor((100 * p.done) / p.total) : f.percent ?? 0;
  const src = `/v1/files/${m.id}`;
  return h(
    "div",
    { class: "file", "data-file-state": state },
    `File: ${f.name} (${f.size} bytes) `,
    h("progress", { max: "100", value: String(pct), "aria-label": `${f.name}: ${pct}%` }),
    ` ${pct}% ${state} `,
    state === "offered" || state === "failed" ? h("button", { type: "button", click: () => void fetchFile(m.id) }, `Download ${f.name}`) : null,
    state === "done" ? h("a", { href: src, download: f.name }, `Save ${f.name}`) : null,
    state === "done" && f.mime?.startsWith("image/") ? h("img", { class: "preview", src, alt: `Preview of ${f.name}` }) : null,
  );
}

async function fetchFile(id: number): Promise<void> {
  try {
    await api("POST", `/v1/files/${id}/fetch`, {});
  } catch (err) {
    status(`Cannot fetch the file: ${(err as Error).message}`);
  }
}

function messageItem(m: Msg): HTMLElement {
  const who = m.direction === "out" ? "you" : m.from_name ?? (m.from ? m.from.slice(0, 7) : app.current?.title ?? "");
  const time = new Date(m.sent_at).toLocaleTimeString();
  return h(
    "li",
    { class: `msg ${m.direction}`, "data-id": String(m.id) },
    h("div", { class: "meta" }, `${who} · ${time}`),
    h("div", { class: "text" }, m.text ?? ""),
    fileLine(m),
    m.direction === "out" ? h("div", { class: "state", "data-state": m.state }, stateText(m)) : null,
  );
}

function renderMessages(): void {
  const list = document.getElementById("messages");
  if (!list) return;
  list.replaceChildren(...[...app.messages].sort((a, b) => a.id - b.id).map(messageItem));
  list.scrollTop = list.scrollHeight;
}

function renderConversation(): void {
  const c = app.current;
  if (!c) return;
  const form = h(
    "form",
    { id: "compose", class: "compose", submit: (e) => void send(e) },
    h("label", { for: "compose-text", class: "sr-only" }, `Message to ${c.title}`),
    h("input", { id: "compose-text", name: "text", autocomplete: "off", placeholder: `Message ${c.title}`, required: true, input: (e) => (e.target as HTMLInputElement).value && noteTyping(c) }),
    h("button", { id: "compose-send", type: "submit" }, "Send"),
  );
  const attach = h(
    "div",
    { class: "attach" },
    h("label", { for: "file-input" }, "Send a file (or drop files on the conversation)"),
    " ",
    h("input", { id: "file-input", type: "file", multiple: true, change: (e) => void pickFiles(e) }),
  );
  show(
    h(
      "div",
      { class: "conv-head" },
      h("h2", { id: "view-title" }, c.title),
      c.kind === "contact" ? h("span", { id: "presence", class: "presence-line", role: "status" }) : null,
      c.kind === "contact" ? h("button", { id: "open-safety", type: "button", click: () => void safetyView(c.key) }, "Safety number") : null,
    ),
    h("div", { id: "key-banner-slot" }),
    h("ol", { id: "messages", class: "messages", "aria-live": "polite", "aria-label": "Messages" }),
    h("p", { id: "typing", class: "typing", role: "status", "aria-live": "polite" }),
    h("ul", { id: "uploads", class: "uploads", "aria-label": "Files being sent" }),
    attach,
    form,
  );
  renderPresence();
  renderBanner();
  renderMessages();
  renderUploads();
  renderTyping();
}

/** The open contact conversation's presence line, from the contact's last known presence. */
function renderPresence(): void {
  const el = document.getElementById("presence");
  const c = app.current;
  if (!el || c?.kind !== "contact") return;
  el.textContent = presenceText(app.contacts.get(c.key)?.presence);
}

async function send(e: Event): Promise<void> {
  e.preventDefault();
  const c = app.current;
  const input = document.getElementById("compose-text") as HTMLInputElement | null;
  if (!c || !input || !input.value.trim()) return;
  const text = input.value;
  if (!confirmKeyChange(c)) return;
  try {
    const sent_at = Date.now();
    let m: Msg;
    if (c.kind === "contact") {
      const sent = await peer().sendMessage(c.key, text);
      m = { id: sent.id, direction: "out", text, sent_at, state: sent.state };
    } else {
      const sent = await peer().sendGroupMessage(c.key, text);
      m = { id: sent.id, direction: "out", text, sent_at, state: sent.state, total: sent.total, delivered: 0, read: 0 };
    }
    input.value = "";
    if (!app.messages.some((x) => x.id === m.id)) app.messages.push(m);
    renderMessages();
    status("");
  } catch (err) {
    status(`Not sent (${(err as ApiError).code ?? "ERROR"}): ${(err as Error).message}`);
  }
}

// ---- other views ---------------------------------------------------------------------------

function addContactView(): void {
  app.current = null;
  renderConversations();
  show(
    h("h2", { id: "view-title" }, "Add a contact"),
    h(
      "form",
      { id: "add-contact", class: "stacked", submit: (e) => void addContact(e) },
      h("label", { for: "ticket" }, "Their contact ticket (rhz1contact…)"),
      h("textarea", { id: "ticket", name: "ticket", rows: "4", required: true }),
      h("label", { for: "contact-name" }, "Name (optional)"),
      h("input", { id: "contact-name", name: "name", autocomplete: "off" }),
      h("button", { type: "submit" }, "Add contact"),
    ),
  );
  $("ticket").focus();
}

async function addContact(e: Event): Promise<void> {
  e.preventDefault();
  const ticket = ($("ticket") as HTMLTextAreaElement).value.trim();
  const name = ($("contact-name") as HTMLInputElement).value.trim() || undefined;
  try {
    const added = await api("POST", "/v1/contacts", { ticket, name });
    status(`Added ${added.contact.name}. Safety number: ${added.contact.safety_number}`);
    await loadConversations();
    const conv = app.convs.find((c) => c.kind === "contact" && c.key === added.contact.name);
    if (conv) await openConversation(conv);
  } catch (err) {
    status(`Could not add the contact (${(err as ApiError).code ?? "ERROR"}): ${(err as Error).message}`);
  }
}

function newGroupView(): void {
  app.current = null;
  renderConversations();
  show(
    h("h2", { id: "view-title" }, "New group"),
    h(
      "form",
      { id: "new-group", class: "stacked", submit: (e) => void createGroup(e) },
      h("label", { for: "group-name" }, "Group name"),
      h("input", { id: "group-name", autocomplete: "off", required: true }),
      h("label", { for: "group-members" }, "Members (contact names, separated by commas)"),
      h("input", { id: "group-members", autocomplete: "off", required: true }),
      h("button", { type: "submit" }, "Create group"),
    ),
  );
  $("group-name").focus();
}

async function createGroup(e: Event): Promise<void> {
  e.preventDefault();
  const name = ($("group-name") as HTMLInputElement).value.trim();
  const members = ($("group-members") as HTMLInputElement).value.split(",").map((m) => m.trim()).filter(Boolean);
  try {
    const group = await api("POST", "/v1/groups", { name, members });
    status(`Created ${group.name}.`);
    await loadConversations();
    const conv = app.convs.find((c) => c.kind === "group" && c.key === group.id);
    if (conv) await openConversation(conv);
  } catch (err) {
    status(`Could not create the group (${(err as ApiError).code ?? "ERROR"}): ${(err as Error).message}`);
  }
}

async function myTicketView(): Promise<void> {
  app.current = null;
  renderConversations();
  const invite = await api("GET", "/v1/invite");
  show(
    h("h2", { id: "view-title" }, "My contact ticket"),
    h("p", {}, "Give this ticket (or let them scan the QR code) to someone who wants to message you."),
    h("pre", { class: "qr", role: "img", "aria-label": "QR code of the ticket" }, invite.qr),
    h("label", { for: "my-ticket" }, "Ticket"),
    h("textarea", { id: "my-ticket", rows: "4", readonly: true }, invite.ticket),
  );
}

async function requestsView(): Promise<void> {
  app.current = null;
  renderConversations();
  const [requests, groupRequests] = await Promise.all([api("GET", "/v1/requests"), api("GET", "/v1/group-requests")]);
  app.requests = requests;
  app.groupRequests = groupRequests;
  renderRequestCount();
  const items = requests.map((r: Json, i: number) =>
    h(
      "li",
      { class: "request" },
      h("div", {}, `${r.name ?? "Unknown sender"} (${r.uid.slice(0, 12)}…), ${r.envelopes} held`),
      r.safety_number ? h("div", { class: "hint" }, `Safety number: ${r.safety_number}`) : null,
      h("label", { for: `request-name-${i}` }, "Name for this contact"),
      " ",
      h("input", { id: `request-name-${i}`, class: "request-name", autocomplete: "off", value: r.name ?? "" }),
      " ",
      h("button", { type: "button", click: () => void accept(r.uid, i) }, "Accept"),
      " ",
      h("button", { type: "button", click: () => void decide(`/v1/requests/${enc(r.uid)}/decline`, "Declined") }, "Decline"),
      " ",
      h("button", { type: "button", click: () => void decide(`/v1/requests/${enc(r.uid)}/block`, "Blocked") }, "Block"),
    ),
  );
  const groupItems = groupRequests.map((r: Json) =>
    h(
      "li",
      { class: "request" },
      h("div", {}, `Invitation to a group: ${r.name ?? r.id}`),
      h("button", { click: () => void decide(`/v1/group-requests/${enc(r.id)}/accept`, "Joined") }, "Join"),
      " ",
      h("button", { click: () => void decide(`/v1/group-requests/${enc(r.id)}/decline`, "Declined") }, "Decline"),
    ),
  );
  show(
    h("h2", { id: "view-title" }, "Message requests"),
    items.length || groupItems.length ? h("ul", { class: "requests" }, ...items, ...groupItems) : h("p", {}, "No pending requests."),
  );
}

async function accept(uid: string, i: number): Promise<void> {
  const name = (document.getElementById(`request-name-${i}`) as HTMLInputElement | null)?.value.trim();
  await decide(`/v1/requests/${enc(uid)}/accept`, "Accepted", name ? { name } : {});
}

async function decide(path: string, done: string, body: unknown = {}): Promise<void> {
  try {
    await api("POST", path, body);
    status(done);
    await loadConversations();
    await requestsView();
  } catch (err) {
    status(`Failed: ${(err as Error).message}`);
  }
}

function renderRequestCount(): void {
  const n = app.requests.length + app.groupRequests.length;
  $("nav-requests").textContent = n ? `Requests (${n})` : "Requests";
}

// ---- live events -------------------------------------------------------------------------

/** A desktop notification (no text, only who), if the user allowed them and is looking away. */
function notify(from: string): void {
  if (typeof Notification === "undefined" || Notification.permission !== "granted" || !document.hidden) return;
  new Notification("rhizo", { body: `New message from ${from}` });
}

async function askNotifications(): Promise<void> {
  if (typeof Notification === "undefined") {
    status("This browser has no desktop notifications.");
    return;
  }
  const answer = await Notification.requestPermission();
  status(answer === "granted" ? "Desktop notifications are on." : "Desktop notifications stay off.");
}

function onEvent(ev: Json): void {
  const c = app.current;
  if (ev.type === "message_received") notify(ev.contact);
  if (ev.type === "group_message_received") notify(app.convs.find((x) => x.key === ev.group)?.title ?? "a group");
  switch (ev.type) {
    case "message_received":
      stopTyping(ev.contact);
      if (c?.kind === "contact" && c.key === ev.contact) void refreshCurrent();
      else void loadConversations();
      break;
    case "group_message_received":
      if (c?.kind === "group" && c.key === ev.group) void refreshCurrent();
      else void loadConversations();
      break;
    case "message_state":
    case "group_message_state": {
      const m = app.messages.find((x) => x.id === ev.id);
      if (m) {
        m.state = ev.state;
        if (ev.total !== undefined) Object.assign(m, { delivered: ev.delivered, read: ev.read, total: ev.total });
        renderMessages();
      }
      break;
    }
    case "file_progress":
      app.fileProgress.set(ev.id, { state: ev.state, done: ev.done_bytes, total: ev.total_bytes });
      renderMessages();
      break;
    case "message_request":
    case "group_request":
      void api("GET", "/v1/requests").then((r) => {
        app.requests = r;
        renderRequestCount();
      });
      break;
    case "presence": {
      const contact = app.contacts.get(ev.contact);
      if (contact) {
        contact.presence = { state: ev.state, last_seen: ev.last_seen };
        renderConversations();
        renderPresence();
      }
      break;
    }
    case "key_change": {
      const contact = app.contacts.get(ev.contact);
      if (contact) contact.key_changed = true;
      app.confirmed.delete(ev.contact);
      renderConversations();
      renderBanner();
      void loadConversations();
      break;
    }
    case "typing":
      onTyping(ev);
      break;
    case "contact_added":
    case "group_created":
      void loadConversations();
      break;
    default:
      break;
  }
}

function connectLive(): void {
  void startLive({
    onEvent,
    onState: setLive,
    onLagged: () => void loadConversations().then(refreshCurrent),
    onProblem: status,
  });
}

const LIVE_MARK: Record<string, string> = {
  connected: "● live",
  connecting: "○ connecting",
  reconnecting: "○ reconnecting",
  failed: "✗ offline (reload the page)",
  closed: "○ closed",
};

function setLive(state: string): void {
  const was = app.live;
  app.live = state;
  const el = document.getElementById("live");
  if (el) el.textContent = LIVE_MARK[state] ?? state;
  // Back after a gap: what happened meanwhile came as no event.
  if (state === "connected" && was === "reconnecting") void loadConversations().then(refreshCurrent);
}

// ---- start -------------------------------------------------------------------------------

function nav(id: string, label: string, action: () => unknown): HTMLElement {
  return h("button", { id, type: "button", click: () => void Promise.resolve(action()).catch((e) => status((e as Error).message)) }, label);
}

async function logout(): Promise<void> {
  await stopLive();
  await api("POST", "/v1/ui/logout", {});
  showLoggedOut();
}

async function start(): Promise<void> {
  let stats: Json;
  try {
    stats = await api("GET", "/v1/stats");
  } catch {
    return;
  }
  app.me = stats;
  startSampling(stats);
  document.body.replaceChildren(
    h(
      "header",
      {},
      h("h1", {}, "rhizo"),
      h("span", { class: "me" }, stats.name ?? stats.uid.slice(0, 12)),
      h("span", { id: "live", class: "live", role: "status" }, "○ connecting"),
      h(
        "nav",
        { "aria-label": "Main" },
        nav("nav-add", "Add contact", addContactView),
        nav("nav-group", "New group", newGroupView),
        nav("nav-ticket", "My ticket", myTicketView),
        nav("nav-requests", "Requests", requestsView),
        nav("nav-devices", "Devices", devicesView),
        nav("nav-agents", "Agents", agentsView),
        nav("nav-health", "Health", healthView),
        nav("nav-notify", "Notify me", askNotifications),
        nav("nav-logout", "Log out", logout),
      ),
    ),
    h(
      "div",
      { class: "layout" },
      h("nav", { class: "sidebar", "aria-label": "Conversations" }, h("h2", {}, "Conversations"), h("ul", { id: "conversations" })),
      h("main", { id: "view" }, h("h2", { id: "view-title" }, "Welcome"), h("p", {}, "Pick a conversation, or add a contact by ticket.")),
    ),
    h("p", { id: "status", role: "status", "aria-live": "polite" }),
  );
  setUpDrop($("view"));
  connectLive();
  await loadConversations();
  const requests = await api("GET", "/v1/requests");
  app.requests = requests;
  renderRequestCount();
}

void start();
