// src/app.ts
var STATE_MARK = {
  queued: "\u25F7 queued",
  sent: "\u2713 sent",
  stored: "\u2713 stored",
  delivered: "\u2713\u2713 delivered",
  read: "\u2713\u2713 read",
  failed: "\u2717 failed"
};
var app = {
  convs: [],
  current: null,
  messages: [],
  requests: [],
  groupRequests: [],
  me: null,
  live: "connecting",
  fileProgress: /* @__PURE__ */ new Map()
};
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k, v);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== void 0 && c !== false) el.append(c);
  return el;
}
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el;
}
function status(text) {
  $("status").textContent = text;
}
var ApiError = class extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
  code;
};
async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === void 0 ? {} : { "content-type": "application/json" },
    body: body === void 0 ? void 0 : JSON.stringify(body)
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
var enc = encodeURIComponent;
async function loadConversations() {
  const [contacts, groups] = await Promise.all([api("GET", "/v1/contacts"), api("GET", "/v1/groups")]);
  const convs = [];
  await Promise.all(
    contacts.map(async (c) => {
      const history = await api("GET", `/v1/conversations/${enc(c.name)}/messages?limit=200`);
      convs.push({
        kind: "contact",
        key: c.name,
        title: c.name,
        unread: history.filter((m) => m.direction === "in" && m.state === "received").length,
        last: Math.max(0, ...history.map((m) => m.sent_at))
      });
    })
  );
  for (const g of groups) {
    if (g.status !== "active") continue;
    convs.push({ kind: "group", key: g.id, title: `# ${g.name}`, unread: g.unread, last: g.last_activity });
  }
  convs.sort((a, b) => b.last - a.last || a.title.localeCompare(b.title));
  app.convs = convs;
  renderConversations();
}
function renderConversations() {
  const list = $("conversations");
  list.replaceChildren(
    ...app.convs.map((c) => {
      const active = app.current?.kind === c.kind && app.current.key === c.key;
      const label = c.unread ? `${c.title}, ${c.unread} unread` : c.title;
      return h(
        "li",
        {},
        h(
          "button",
          { class: active ? "conv active" : "conv", "aria-current": active ? "true" : false, "aria-label": label, "data-conv": c.key, click: () => openConversation(c) },
          h("span", { class: "title" }, c.title),
          c.unread ? h("span", { class: "unread", "aria-hidden": "true" }, String(c.unread)) : null
        )
      );
    })
  );
  if (!app.convs.length) list.append(h("li", { class: "empty" }, "No conversations yet: add a contact."));
}
function historyPath(c) {
  return c.kind === "contact" ? `/v1/conversations/${enc(c.key)}/messages` : `/v1/groups/${enc(c.key)}/messages`;
}
async function openConversation(c) {
  app.current = c;
  app.messages = await api("GET", `${historyPath(c)}?limit=200&mark_read=true`);
  c.unread = 0;
  renderConversations();
  renderConversation();
  const input = document.getElementById("compose-text");
  input?.focus();
}
async function refreshCurrent() {
  const c = app.current;
  if (!c) return;
  app.messages = await api("GET", `${historyPath(c)}?limit=200&mark_read=true`);
  if (app.current === c) renderMessages();
}
function stateText(m) {
  if (m.direction !== "out") return "";
  let text = STATE_MARK[m.state] ?? m.state;
  if (m.total) text += ` (${m.delivered ?? 0}/${m.total} delivered, ${m.read ?? 0} read)`;
  return text;
}
function fileLine(m) {
  const f = m.file;
  if (!f) return null;
  const p = app.fileProgress.get(m.id);
  const state = p?.state ?? f.state ?? "offered";
  const pct = state === "done" ? 100 : p && p.total ? Math.floor(100 * p.done / p.total) : f.percent ?? 0;
  const src = `/v1/files/${m.id}`;
  return h(
    "div",
    { class: "file", "data-file-state": state },
    `File: ${f.name} (${f.size} bytes) `,
    h("progress", { max: "100", value: String(pct), "aria-label": `${f.name}: ${pct}%` }),
    ` ${pct}% ${state} `,
    state === "offered" || state === "failed" ? h("button", { type: "button", click: () => void fetchFile(m.id) }, `Download ${f.name}`) : null,
    state === "done" ? h("a", { href: src, download: f.name }, `Save ${f.name}`) : null,
    state === "done" && f.mime?.startsWith("image/") ? h("img", { class: "preview", src, alt: `Preview of ${f.name}` }) : null
  );
}
async function fetchFile(id) {
  try {
    await api("POST", `/v1/files/${id}/fetch`, {});
  } catch (err) {
    status(`Cannot fetch the file: ${err.message}`);
  }
}
function messageItem(m) {
  const who = m.direction === "out" ? "you" : m.from_name ?? (m.from ? m.from.slice(0, 7) : app.current?.title ?? "");
  const time = new Date(m.sent_at).toLocaleTimeString();
  return h(
    "li",
    { class: `msg ${m.direction}`, "data-id": String(m.id) },
    h("div", { class: "meta" }, `${who} \xB7 ${time}`),
    h("div", { class: "text" }, m.text ?? ""),
    fileLine(m),
    m.direction === "out" ? h("div", { class: "state", "data-state": m.state }, stateText(m)) : null
  );
}
function renderMessages() {
  const list = document.getElementById("messages");
  if (!list) return;
  list.replaceChildren(...[...app.messages].sort((a, b) => a.id - b.id).map(messageItem));
  list.scrollTop = list.scrollHeight;
}
function renderConversation() {
  const c = app.current;
  if (!c) return;
  const form = h(
    "form",
    { id: "compose", class: "compose", submit: (e) => void send(e) },
    h("label", { for: "compose-text", class: "sr-only" }, `Message to ${c.title}`),
    h("input", { id: "compose-text", name: "text", autocomplete: "off", placeholder: `Message ${c.title}`, required: true }),
    h("button", { type: "submit" }, "Send")
  );
  show(
    h("h2", { id: "view-title" }, c.title),
    c.kind === "contact" ? h("p", { class: "hint" }, "A warning shows here if the node reports a change of this contact's keys (the API has no such event yet).") : null,
    h("ol", { id: "messages", class: "messages", "aria-live": "polite", "aria-label": "Messages" }),
    form
  );
  renderMessages();
}
async function send(e) {
  e.preventDefault();
  const c = app.current;
  const input = document.getElementById("compose-text");
  if (!c || !input || !input.value.trim()) return;
  const text = input.value;
  try {
    const sent = await api("POST", historyPath(c), { text });
    input.value = "";
    const m = c.kind === "contact" ? sent : { ...sent.message, direction: "out", total: sent.total, delivered: 0, read: 0 };
    if (!app.messages.some((x) => x.id === m.id)) app.messages.push(m);
    renderMessages();
    status("");
  } catch (err) {
    status(`Not sent (${err.code ?? "ERROR"}): ${err.message}`);
  }
}
function show(...children) {
  $("view").replaceChildren(...children.filter((c) => !!c));
}
function addContactView() {
  app.current = null;
  renderConversations();
  show(
    h("h2", { id: "view-title" }, "Add a contact"),
    h(
      "form",
      { id: "add-contact", class: "stacked", submit: (e) => void addContact(e) },
      h("label", { for: "ticket" }, "Their contact ticket (rhz1contact\u2026)"),
      h("textarea", { id: "ticket", name: "ticket", rows: "4", required: true }),
      h("label", { for: "contact-name" }, "Name (optional)"),
      h("input", { id: "contact-name", name: "name", autocomplete: "off" }),
      h("button", { type: "submit" }, "Add contact")
    )
  );
  $("ticket").focus();
}
async function addContact(e) {
  e.preventDefault();
  const ticket = $("ticket").value.trim();
  const name = $("contact-name").value.trim() || void 0;
  try {
    const added = await api("POST", "/v1/contacts", { ticket, name });
    status(`Added ${added.contact.name}. Safety number: ${added.contact.safety_number}`);
    await loadConversations();
    const conv = app.convs.find((c) => c.kind === "contact" && c.key === added.contact.name);
    if (conv) await openConversation(conv);
  } catch (err) {
    status(`Could not add the contact (${err.code ?? "ERROR"}): ${err.message}`);
  }
}
function newGroupView() {
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
      h("button", { type: "submit" }, "Create group")
    )
  );
  $("group-name").focus();
}
async function createGroup(e) {
  e.preventDefault();
  const name = $("group-name").value.trim();
  const members = $("group-members").value.split(",").map((m) => m.trim()).filter(Boolean);
  try {
    const group = await api("POST", "/v1/groups", { name, members });
    status(`Created ${group.name}.`);
    await loadConversations();
    const conv = app.convs.find((c) => c.kind === "group" && c.key === group.id);
    if (conv) await openConversation(conv);
  } catch (err) {
    status(`Could not create the group (${err.code ?? "ERROR"}): ${err.message}`);
  }
}
async function myTicketView() {
  app.current = null;
  renderConversations();
  const invite = await api("GET", "/v1/invite");
  show(
    h("h2", { id: "view-title" }, "My contact ticket"),
    h("p", {}, "Give this ticket (or let them scan the QR code) to someone who wants to message you."),
    h("pre", { class: "qr", role: "img", "aria-label": "QR code of the ticket" }, invite.qr),
    h("label", { for: "my-ticket" }, "Ticket"),
    h("textarea", { id: "my-ticket", rows: "4", readonly: true }, invite.ticket)
  );
}
async function requestsView() {
  app.current = null;
  renderConversations();
  const [requests, groupRequests] = await Promise.all([api("GET", "/v1/requests"), api("GET", "/v1/group-requests")]);
  app.requests = requests;
  app.groupRequests = groupRequests;
  renderRequestCount();
  const items = requests.map(
    (r, i) => h(
      "li",
      { class: "request" },
      h("div", {}, `${r.name ?? "Unknown sender"} (${r.uid.slice(0, 12)}\u2026), ${r.envelopes} held`),
      r.safety_number ? h("div", { class: "hint" }, `Safety number: ${r.safety_number}`) : null,
      h("label", { for: `request-name-${i}` }, "Name for this contact"),
      " ",
      h("input", { id: `request-name-${i}`, class: "request-name", autocomplete: "off", value: r.name ?? "" }),
      " ",
      h("button", { type: "button", click: () => void accept(r.uid, i) }, "Accept"),
      " ",
      h("button", { type: "button", click: () => void decide(`/v1/requests/${enc(r.uid)}/decline`, "Declined") }, "Decline"),
      " ",
      h("button", { type: "button", click: () => void decide(`/v1/requests/${enc(r.uid)}/block`, "Blocked") }, "Block")
    )
  );
  const groupItems = groupRequests.map(
    (r) => h(
      "li",
      { class: "request" },
      h("div", {}, `Invitation to a group: ${r.name ?? r.id}`),
      h("button", { click: () => void decide(`/v1/group-requests/${enc(r.id)}/accept`, "Joined") }, "Join"),
      " ",
      h("button", { click: () => void decide(`/v1/group-requests/${enc(r.id)}/decline`, "Declined") }, "Decline")
    )
  );
  show(
    h("h2", { id: "view-title" }, "Message requests"),
    items.length || groupItems.length ? h("ul", { class: "requests" }, ...items, ...groupItems) : h("p", {}, "No pending requests.")
  );
}
async function accept(uid, i) {
  const name = document.getElementById(`request-name-${i}`)?.value.trim();
  await decide(`/v1/requests/${enc(uid)}/accept`, "Accepted", name ? { name } : {});
}
async function decide(path, done, body = {}) {
  try {
    await api("POST", path, body);
    status(done);
    await loadConversations();
    await requestsView();
  } catch (err) {
    status(`Failed: ${err.message}`);
  }
}
function renderRequestCount() {
  const n = app.requests.length + app.groupRequests.length;
  $("nav-requests").textContent = n ? `Requests (${n})` : "Requests";
}
async function devicesView() {
  app.current = null;
  renderConversations();
  const devices = await api("GET", "/v1/devices");
  show(
    h("h2", { id: "view-title" }, "Devices"),
    h(
      "table",
      {},
      h("caption", { class: "sr-only" }, "This identity's devices"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Fingerprint"), h("th", { scope: "col" }, "This one"))),
      h(
        "tbody",
        {},
        ...devices.map((d) => h("tr", {}, h("td", {}, d.name ?? d.id.slice(0, 12)), h("td", { class: "mono" }, d.fingerprint), h("td", {}, d.this_device ? "yes" : "")))
      )
    )
  );
}
async function healthView() {
  app.current = null;
  renderConversations();
  const [stats, mailbox] = await Promise.all([api("GET", "/v1/stats"), api("GET", "/v1/mailbox").catch(() => null)]);
  const row = (k, v) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v)));
  show(
    h("h2", { id: "view-title" }, "Node health"),
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
        row("Routing table peers", stats.routing_table_peers),
        row("Peer book", stats.peer_book_peers),
        row("Reachability", JSON.stringify(stats.reachability ?? "unknown")),
        row("Uptime (s)", stats.uptime_secs),
        mailbox ? row("Mailbox", JSON.stringify(mailbox)) : null
      )
    )
  );
}
function notify(from) {
  if (typeof Notification === "undefined" || Notification.permission !== "granted" || !document.hidden) return;
  new Notification("rhizo", { body: `New message from ${from}` });
}
async function askNotifications() {
  if (typeof Notification === "undefined") {
    status("This browser has no desktop notifications.");
    return;
  }
  const answer = await Notification.requestPermission();
  status(answer === "granted" ? "Desktop notifications are on." : "Desktop notifications stay off.");
}
function onEvent(ev) {
  const c = app.current;
  if (ev.type === "message_received") notify(ev.contact);
  if (ev.type === "group_message_received") notify(app.convs.find((x) => x.key === ev.group)?.title ?? "a group");
  switch (ev.type) {
    case "message_received":
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
        if (ev.total !== void 0) Object.assign(m, { delivered: ev.delivered, read: ev.read, total: ev.total });
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
    case "contact_added":
    case "group_created":
      void loadConversations();
      break;
    default:
      break;
  }
}
function connectEvents() {
  const source = new EventSource("/v1/events");
  source.onopen = () => setLive("live");
  source.onerror = () => setLive("reconnecting");
  source.onmessage = (e) => {
    try {
      onEvent(JSON.parse(e.data));
    } catch {
    }
  };
  source.addEventListener("lagged", () => void loadConversations().then(refreshCurrent));
}
function setLive(state) {
  app.live = state;
  $("live").textContent = state === "live" ? "\u25CF live" : "\u25CB reconnecting";
}
function showLoggedOut() {
  document.body.replaceChildren(
    h(
      "main",
      { class: "logged-out" },
      h("h1", {}, "rhizo"),
      h("p", {}, "Not logged in. Run `rhizo ui` on this machine and open the link it prints.")
    )
  );
}
function nav(id, label, action) {
  return h("button", { id, type: "button", click: () => void Promise.resolve(action()).catch((e) => status(e.message)) }, label);
}
async function logout() {
  await api("POST", "/v1/ui/logout", {});
  showLoggedOut();
}
async function start() {
  let stats;
  try {
    stats = await api("GET", "/v1/stats");
  } catch {
    return;
  }
  app.me = stats;
  document.body.replaceChildren(
    h(
      "header",
      {},
      h("h1", {}, "rhizo"),
      h("span", { class: "me" }, stats.name ?? stats.uid.slice(0, 12)),
      h("span", { id: "live", class: "live", role: "status" }, "\u25CB connecting"),
      h(
        "nav",
        { "aria-label": "Main" },
        nav("nav-add", "Add contact", addContactView),
        nav("nav-group", "New group", newGroupView),
        nav("nav-ticket", "My ticket", myTicketView),
        nav("nav-requests", "Requests", requestsView),
        nav("nav-devices", "Devices", devicesView),
        nav("nav-health", "Health", healthView),
        nav("nav-notify", "Notify me", askNotifications),
        nav("nav-logout", "Log out", logout)
      )
    ),
    h(
      "div",
      { class: "layout" },
      h("nav", { class: "sidebar", "aria-label": "Conversations" }, h("h2", {}, "Conversations"), h("ul", { id: "conversations" })),
      h("main", { id: "view" }, h("h2", { id: "view-title" }, "Welcome"), h("p", {}, "Pick a conversation, or add a contact by ticket."))
    ),
    h("p", { id: "status", role: "status", "aria-live": "polite" })
  );
  connectEvents();
  await loadConversations();
  const requests = await api("GET", "/v1/requests");
  app.requests = requests;
  renderRequestCount();
}
void start();
