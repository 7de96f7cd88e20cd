// src/core.ts
var app = {
  convs: [],
  current: null,
  messages: [],
  requests: [],
  groupRequests: [],
  me: null,
  live: "connecting",
  fileProgress: /* @__PURE__ */ new Map(),
  /** Contacts by name, from /v1/contacts, kept live by presence and key_change events. */
  contacts: /* @__PURE__ */ new Map(),
  /** Contacts whose changed keys the user chose to send to anyway (until the next change). */
  confirmed: /* @__PURE__ */ new Set(),
  /** The contact whose key-change warning was shown for the send the user just tried. */
  confirmPending: null,
  uploads: []
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
function show(...children) {
  $("view").replaceChildren(...children.filter((c) => !!c));
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

// src/keys.ts
function renderBanner() {
  const slot = document.getElementById("key-banner-slot");
  const c = app.current;
  if (!slot || c?.kind !== "contact") return;
  if (!app.contacts.get(c.key)?.key_changed) {
    slot.replaceChildren();
    return;
  }
  slot.replaceChildren(
    h(
      "div",
      { id: "key-banner", class: "banner", role: "alert" },
      h("strong", {}, `\u26A0 ${c.key}'s keys changed`),
      ` (a new device reads this conversation). Compare the safety number with ${c.key} in person or on a call, then mark it verified. Your next send asks for a confirmation. `,
      h("button", { type: "button", click: () => void safetyView(c.key) }, "Compare and verify")
    )
  );
}
function confirmKeyChange(c) {
  if (c.kind !== "contact" || !app.contacts.get(c.key)?.key_changed || app.confirmed.has(c.key)) return true;
  if (app.confirmPending === c.key) {
    app.confirmed.add(c.key);
    app.confirmPending = null;
    const button2 = document.getElementById("compose-send");
    if (button2) button2.textContent = "Send";
    return true;
  }
  app.confirmPending = c.key;
  status(`\u26A0 ${c.key}'s keys changed: send again to send anyway, or verify the safety number first.`);
  const button = document.getElementById("compose-send");
  if (button) button.textContent = "Send anyway";
  return false;
}
async function safetyView(name) {
  const [safety, contacts] = await Promise.all([api("GET", `/v1/contacts/${enc(name)}/safety`), api("GET", "/v1/contacts")]);
  app.contacts = new Map(contacts.map((c) => [c.name, c]));
  const contact = app.contacts.get(name);
  if (!contact) return;
  const conv = app.convs.find((c) => c.kind === "contact" && c.key === name);
  app.current = null;
  renderConversations();
  const row = (k, v) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v));
  show(
    h("h2", { id: "view-title" }, `Safety number with ${name}`),
    contact.key_changed ? h("p", { class: "banner", role: "alert" }, `\u26A0 ${name}'s keys changed since you last verified them.`) : null,
    h("p", {}, `Compare this number with ${name} (in person or on a call), or let them scan the QR code. If it is the same on both sides, mark ${name} verified.`),
    h("p", { id: "safety-number", class: "safety mono" }, safety.safety_number),
    h("pre", { class: "qr", role: "img", "aria-label": `QR code of the safety number with ${name}` }, safety.qr),
    h(
      "table",
      {},
      h("caption", { class: "sr-only" }, `${name}'s identity`),
      h("tbody", {}, row("UID", h("span", { class: "mono" }, contact.uid)), row("Fingerprint", h("span", { class: "mono" }, contact.fingerprint)), row("Devices", String(contact.devices.length)))
    ),
    h("p", { id: "verified-state" }, contact.verified && !contact.key_changed ? "\u2713 verified" : "\u2717 not verified"),
    h(
      "div",
      { class: "actions" },
      contact.verified && !contact.key_changed ? null : h("button", { id: "mark-verified", type: "button", click: () => void markVerified(name) }, "They match: mark verified"),
      " ",
      conv ? h("button", { id: "back-to-conv", type: "button", click: () => void openConversation(conv) }, `Back to ${name}`) : null
    )
  );
}
async function markVerified(name) {
  try {
    const c = await api("POST", `/v1/contacts/${enc(name)}/verify`, {});
    app.contacts.set(name, { ...app.contacts.get(name), ...c });
    app.confirmed.delete(name);
    status(`${name} is now verified.`);
    await safetyView(name);
  } catch (err) {
    status(`Could not verify ${name}: ${err.message}`);
  }
}

// src/upload.ts
var uploadSeq = 0;
function pickFiles(e) {
  const input = e.target;
  const files = [...input.files ?? []];
  input.value = "";
  void sendFiles(files);
}
async function sendFiles(files) {
  const c = app.current;
  if (!c || !files.length || !confirmKeyChange(c)) return;
  for (const file of files) await uploadFile(c, file);
}
function uploadFile(c, file) {
  const up = { seq: ++uploadSeq, conv: c, name: file.name, loaded: 0, total: file.size, state: "uploading" };
  app.uploads.push(up);
  if (app.uploads.length > 20) app.uploads.splice(0, app.uploads.length - 20);
  renderUploads();
  const query = new URLSearchParams({ to: c.key, name: file.name });
  if (c.kind === "group") query.set("group", "true");
  if (file.type) query.set("mime", file.type);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/files?${query}`);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) Object.assign(up, { loaded: e.loaded, total: e.total });
      renderUploads();
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        Object.assign(up, { state: "sent", loaded: up.total });
        status(`Sent ${file.name}.`);
        void refreshCurrent();
      } else {
        up.state = "failed";
        if (xhr.status === 401) showLoggedOut();
        let why = xhr.responseText;
        try {
          const data = JSON.parse(xhr.responseText);
          why = `${data.code}: ${data.error}`;
        } catch {
        }
        status(`Could not send ${file.name} (${why})`);
      }
      renderUploads();
      resolve();
    };
    xhr.onerror = () => {
      up.state = "failed";
      status(`Could not send ${file.name}: the connection to the node failed.`);
      renderUploads();
      resolve();
    };
    xhr.send(file);
  });
}
function renderUploads() {
  const list = document.getElementById("uploads");
  const c = app.current;
  if (!list || !c) return;
  const mine = app.uploads.filter((u) => u.conv.kind === c.kind && u.conv.key === c.key);
  list.replaceChildren(
    ...mine.map((u) => {
      const pct = u.state === "sent" ? 100 : u.total ? Math.floor(100 * u.loaded / u.total) : 0;
      const label = u.state === "failed" ? "failed" : u.state === "sent" ? "sent" : "uploading";
      return h(
        "li",
        { class: "upload", "data-upload-state": u.state },
        `Sending ${u.name}: `,
        h("progress", { max: "100", value: String(pct), "aria-label": `Sending ${u.name}: ${pct}%` }),
        ` ${pct}% ${label}`
      );
    })
  );
}
function setUpDrop(view) {
  const hasFiles = (e) => !!app.current && [...e.dataTransfer?.types ?? []].includes("Files");
  view.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    view.classList.add("dropping");
  });
  view.addEventListener("dragleave", () => view.classList.remove("dropping"));
  view.addEventListener("drop", (e) => {
    view.classList.remove("dropping");
    if (!hasFiles(e)) return;
    e.preventDefault();
    void sendFiles([...e.dataTransfer?.files ?? []]);
  });
}

// src/health.ts
var SAMPLE_MS = 5e3;
var MAX_SAMPLES = 120;
var samples = [];
var sampling = false;
function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
function recordSample(stats, at = Date.now()) {
  const net = stats?.net ?? {};
  const open = (num(net.open_inbound) ?? 0) + (num(net.open_outbound) ?? 0);
  samples.push({ at, peers: num(stats?.connected_peers) ?? 0, connections: open, bytesIn: num(net.bytes_received), bytesOut: num(net.bytes_sent) });
  if (samples.length > MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
}
function startSampling(first) {
  if (sampling) return;
  sampling = true;
  recordSample(first);
  const tick = async () => {
    try {
      const stats = await api("GET", "/v1/stats");
      recordSample(stats);
      if (document.getElementById("health")) await renderHealth(stats);
    } catch (err) {
      if (err.code === "UNAUTHORIZED") {
        sampling = false;
        return;
      }
    }
    setTimeout(() => void tick(), SAMPLE_MS);
  };
  setTimeout(() => void tick(), SAMPLE_MS);
}
function bytes(n) {
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
function span(ms) {
  const s2 = Math.round(ms / 1e3);
  return s2 < 120 ? `${s2} s` : `${Math.round(s2 / 60)} min`;
}
function range(values) {
  return `now ${values[values.length - 1]}, lowest ${Math.min(...values)}, highest ${Math.max(...values)}`;
}
function chartSummary() {
  if (!samples.length) return "No samples yet.";
  const over = samples.length > 1 ? `over the last ${span(samples[samples.length - 1].at - samples[0].at)}` : "in the first sample";
  return `Connected peers ${over}: ${range(samples.map((s2) => s2.peers))}. Open connections: ${range(samples.map((s2) => s2.connections))}. ${samples.length} samples, one every ${SAMPLE_MS / 1e3} s.`;
}
function bandwidthText() {
  const known = samples.filter((s2) => s2.bytesIn !== null && s2.bytesOut !== null);
  const last = known[known.length - 1];
  if (!last) return "not reported by this node";
  const total = `received ${bytes(last.bytesIn ?? 0)}, sent ${bytes(last.bytesOut ?? 0)} since the node started`;
  const prev = known[known.length - 2];
  if (!prev || last.at <= prev.at) return total;
  const secs = (last.at - prev.at) / 1e3;
  const rate = (a, b) => bytes(Math.max(0, Math.round(((a ?? 0) - (b ?? 0)) / secs)));
  return `${total}; now \u2193 ${rate(last.bytesIn, prev.bytesIn)}/s, \u2191 ${rate(last.bytesOut, prev.bytesOut)}/s`;
}
function reachability(r) {
  if (!r) return "unknown";
  if (r.nat_status === "public" || r.public_addrs?.length) return "public";
  if (r.relayed_addrs?.length) return "via relay";
  return r.nat_status === "private" ? "LAN only" : "unknown";
}
function mailboxText(mailbox) {
  const held = mailbox?.held;
  if (!held) return "unknown";
  if (!held.count) return "nothing held for others";
  const oldest = typeof held.oldest === "number" ? `, the oldest since ${new Date(held.oldest).toLocaleString()}` : "";
  return `${held.count} envelopes (${bytes(held.bytes ?? 0)}) for ${held.recipients} recipients${oldest}`;
}
function outboxText(mailbox) {
  const queued = Array.isArray(mailbox?.queued) ? mailbox.queued : [];
  const n = queued.reduce((sum, q) => sum + (num(q.count) ?? 0), 0);
  return n ? `${n} of our messages not yet delivered` : "everything we sent was delivered";
}
var SVG = "http://www.w3.org/2000/svg";
var W = 360;
var H = 120;
var PAD = 24;
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}
function connectionsChart() {
  const top = Math.max(1, ...samples.map((x2) => Math.max(x2.peers, x2.connections)));
  const t0 = samples[0]?.at ?? 0;
  const width = Math.max(1, (samples[samples.length - 1]?.at ?? 0) - t0);
  const x = (v) => samples.length > 1 ? PAD + (W - 2 * PAD) * (v.at - t0) / width : W - PAD;
  const y = (v) => H - PAD + 4 - (H - PAD) * v / top;
  const line = (pick, cls, dash) => s("polyline", { class: cls, points: samples.map((v) => `${x(v).toFixed(1)},${y(pick(v)).toFixed(1)}`).join(" "), fill: "none", "stroke-width": "2", "stroke-dasharray": dash });
  const dot = (pick, cls) => {
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
    s("text", { x: String(PAD), y: String(H - 4), class: "tick" }, samples.length > 1 ? `\u2212${span(width)}` : ""),
    s("text", { x: String(W - PAD), y: String(H - 4), class: "tick", "text-anchor": "end" }, "now"),
    line((v) => v.connections, "series connections", "5 3"),
    line((v) => v.peers, "series peers", ""),
    dot((v) => v.connections, "series-dot connections"),
    dot((v) => v.peers, "series-dot peers")
  );
}
async function healthView() {
  app.current = null;
  renderConversations();
  const stats = await api("GET", "/v1/stats");
  recordSample(stats);
  show(h("h2", { id: "view-title" }, "Node health"), h("div", { id: "health-body" }));
  await renderHealth(stats);
}
async function renderHealth(stats) {
  const mailbox = await api("GET", "/v1/mailbox").catch(() => null);
  const body = document.getElementById("health-body");
  if (!body) return;
  const row = (k, v) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v)));
  body.replaceChildren(
    h(
      "figure",
      { class: "chart" },
      connectionsChart(),
      h(
        "figcaption",
        {},
        h("span", { class: "legend peers" }, "\u2501 connected peers"),
        " ",
        h("span", { class: "legend connections" }, "\u254C open connections"),
        h("span", { id: "chart-summary", class: "summary" }, chartSummary())
      )
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
        row("Uptime", span(1e3 * (stats.uptime_secs ?? 0)))
      )
    )
  );
}

// src/devices.ts
var armed = null;
function when(secs) {
  return typeof secs === "number" ? new Date(secs * 1e3).toLocaleString() : "never";
}
function failed(what, err) {
  status(`${what} (${err.code ?? "ERROR"}): ${err.message}`);
}
function revokeButton(key, label, revoke) {
  const isArmed = armed === key;
  return h(
    "button",
    {
      type: "button",
      class: isArmed ? "danger" : "",
      "data-revoke": key,
      click: () => {
        if (armed !== key) {
          armed = key;
          status(`Press "Confirm" to revoke ${label}; anything else cancels.`);
          void renderDevices();
          return;
        }
        armed = null;
        void revoke();
      }
    },
    isArmed ? `Confirm: revoke ${label}` : `Revoke ${label}`
  );
}
function devicesView() {
  armed = null;
  return renderDevices();
}
async function renderDevices() {
  app.current = null;
  renderConversations();
  const [devices, clients] = await Promise.all([api("GET", "/v1/devices"), api("GET", "/v1/pairings").catch(() => [])]);
  const deviceName = (d) => d.name ?? d.id.slice(0, 12);
  show(
    h("h2", { id: "view-title" }, "Devices"),
    h(
      "table",
      { id: "devices" },
      h("caption", { class: "sr-only" }, "This identity's devices"),
      h("thead", {}, h("tr", {}, ...["Name", "Fingerprint", "Last seen", "This one", "Action"].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        ...devices.map(
          (d) => h(
            "tr",
            {},
            h("td", {}, deviceName(d)),
            h("td", { class: "mono" }, d.fingerprint),
            h("td", {}, d.this_device ? "now" : when(d.last_seen)),
            h("td", {}, d.this_device ? "yes" : ""),
            h("td", {}, d.this_device ? "" : revokeButton(`device:${d.id}`, deviceName(d), () => revokeDevice(d.id, deviceName(d))))
          )
        )
      )
    ),
    h(
      "form",
      { id: "link-device", class: "stacked", submit: (e) => void linkDevice(e) },
      h("h3", {}, "Link a new device"),
      h("p", { class: "hint" }, "On the new device run `rhizo init --link`, `rhizo run` and `rhizo device link`; paste its ticket here and compare the fingerprint it shows."),
      h("label", { for: "link-ticket" }, "The new device's link ticket (rhz1link\u2026)"),
      h("textarea", { id: "link-ticket", rows: "3", required: true }),
      h("label", { for: "link-name" }, "Its name (optional)"),
      h("input", { id: "link-name", autocomplete: "off" }),
      h("button", { type: "submit" }, "Link device")
    ),
    h("h3", {}, "Light clients"),
    clients.length ? h(
      "ul",
      { id: "pairings" },
      ...clients.map((c) => h("li", {}, `${c.name} (paired ${when(c.paired_at)}) `, revokeButton(`client:${c.id}`, c.name, () => revokeClient(c.id, c.name))))
    ) : h("p", { id: "pairings" }, "No light clients paired."),
    h(
      "form",
      { id: "new-pairing", class: "stacked", submit: (e) => void newPairing(e) },
      h("label", { for: "pairing-name" }, "Pair a light client (a browser page, a phone, a script): its name"),
      h("input", { id: "pairing-name", autocomplete: "off", placeholder: "light client" }),
      h("button", { type: "submit" }, "Make a pairing ticket")
    ),
    h("div", { id: "pairing-ticket" })
  );
}
async function linkDevice(e) {
  e.preventDefault();
  const ticket = $("link-ticket").value.trim();
  const name = $("link-name").value.trim() || void 0;
  try {
    const device = await api("POST", "/v1/devices", { ticket, name });
    await devicesView();
    status(`Linked ${device.name ?? device.id.slice(0, 12)} (fingerprint ${device.fingerprint}).`);
  } catch (err) {
    failed("Could not link the device", err);
  }
}
async function revokeDevice(id, label) {
  try {
    await api("DELETE", `/v1/devices/${enc(id)}`);
    await devicesView();
    status(`Revoked ${label}.`);
  } catch (err) {
    failed(`Could not revoke ${label}`, err);
  }
}
async function revokeClient(id, label) {
  try {
    await api("DELETE", `/v1/pairings/${enc(id)}`);
    await devicesView();
    status(`Revoked ${label}.`);
  } catch (err) {
    failed(`Could not revoke ${label}`, err);
  }
}
async function newPairing(e) {
  e.preventDefault();
  const name = $("pairing-name").value.trim() || void 0;
  try {
    const p = await api("POST", "/v1/pairings", { name });
    $("pairing-ticket").replaceChildren(
      h("p", {}, `Open the light client and give it this ticket, or let it scan the QR code. It pairs one client, once, until ${when(p.expires_at)}.`),
      h("pre", { class: "qr", role: "img", "aria-label": "QR code of the pairing ticket" }, p.qr),
      h("label", { for: "pair-ticket" }, "Pairing ticket"),
      h("textarea", { id: "pair-ticket", rows: "3", readonly: true }, p.ticket)
    );
    status("A pairing ticket is ready.");
  } catch (err) {
    failed("Could not make a pairing ticket", err);
  }
}
async function agentsView() {
  app.current = null;
  renderConversations();
  const [agents, tasks] = await Promise.all([api("GET", "/v1/agents"), api("GET", "/v1/tasks?limit=50")]);
  const cols = (...names) => h("thead", {}, h("tr", {}, ...names.map((n) => h("th", { scope: "col" }, n))));
  const cell = (v) => h("td", {}, v === null || v === void 0 ? "\u2013" : String(v));
  show(
    h("h2", { id: "view-title" }, "Agents and tasks"),
    agents.length ? h(
      "table",
      { id: "agents" },
      h("caption", {}, "Known agents"),
      cols("Agent", "Liveness", "Skills", "Load"),
      h(
        "tbody",
        {},
        ...agents.map(
          (a) => h(
            "tr",
            {},
            cell(a.name ?? `${String(a.uid).slice(0, 7)}\u2026`),
            cell(a.liveness),
            cell((a.card?.skills ?? []).map((s2) => s2.id).join(", ")),
            cell(a.load ? `${a.load.working} working, ${a.load.queued} queued of ${a.load.capacity}` : null)
          )
        )
      )
    ) : h("p", { id: "agents" }, "No agents known yet (`rhizo agents find SKILL` looks them up)."),
    tasks.length ? h(
      "table",
      { id: "tasks" },
      h("caption", {}, "Tasks, newest first"),
      cols("Task", "Side", "State", "Peer", "Skill", "Updated"),
      h(
        "tbody",
        {},
        ...tasks.map(
          (t) => h(
            "tr",
            {},
            h("td", { class: "mono" }, String(t.id).slice(0, 8)),
            cell(t.side),
            cell(t.status?.state),
            cell(t.peer_name ?? `${String(t.peer).slice(0, 7)}\u2026`),
            cell(t.skill),
            cell(typeof t.updated_at === "number" ? new Date(t.updated_at).toLocaleString() : null)
          )
        )
      )
    ) : h("p", { id: "tasks" }, "No tasks.")
  );
}

// src/typing.ts
var TYPING_EVERY_MS = 3e3;
var TYPING_SHOWN_MS = 5e3;
var MAX_TYPISTS = 64;
var lastSent = { key: "", at: 0 };
var typists = /* @__PURE__ */ new Map();
var expiry = null;
function noteTyping(c, now = Date.now()) {
  if (lastSent.key === c.key && now - lastSent.at < TYPING_EVERY_MS) return;
  lastSent = { key: c.key, at: now };
  void api("POST", `/v1/conversations/${enc(c.key)}/typing`, {}).catch(() => {
  });
}
function onTyping(ev, now = Date.now()) {
  if (typeof ev.conversation !== "string" || typeof ev.from !== "string") return;
  const key = `${ev.conversation}
${ev.from}`;
  typists.delete(key);
  typists.set(key, now + TYPING_SHOWN_MS);
  while (typists.size > MAX_TYPISTS) typists.delete(typists.keys().next().value);
  renderTyping(now);
}
function stopTyping(conversation) {
  for (const key of [...typists.keys()]) if (key.startsWith(`${conversation}
`)) typists.delete(key);
  renderTyping();
}
function typistName(conversation, from) {
  if (app.contacts.has(conversation)) return conversation;
  for (const [name, c] of app.contacts) if (c.uid === from) return name;
  return `${from.slice(0, 7)}\u2026`;
}
function typingText(c, now = Date.now()) {
  if (!c) return "";
  const names = [];
  for (const [key, until] of typists) {
    const [conversation, from] = key.split("\n");
    if (conversation === c.key && until > now) names.push(typistName(conversation, from));
  }
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing\u2026`;
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing\u2026`;
}
function renderTyping(now = Date.now()) {
  for (const [key, until] of typists) if (until <= now) typists.delete(key);
  const el = document.getElementById("typing");
  if (el) el.textContent = typingText(app.current, now);
  if (expiry) clearTimeout(expiry);
  expiry = null;
  if (typists.size) {
    const next = Math.min(...typists.values());
    expiry = setTimeout(() => renderTyping(), Math.max(50, next - Date.now()));
  }
}

// src/app.ts
var STATE_MARK = {
  queued: "\u25F7 queued",
  sent: "\u2713 sent",
  stored: "\u2713 stored",
  delivered: "\u2713\u2713 delivered",
  read: "\u2713\u2713 read",
  failed: "\u2717 failed"
};
async function loadConversations() {
  const [contacts, groups] = await Promise.all([api("GET", "/v1/contacts"), api("GET", "/v1/groups")]);
  app.contacts = new Map(contacts.map((c) => [c.name, c]));
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
  renderPresence();
  renderBanner();
}
function presenceText(p) {
  if (!p) return "";
  if (p.state === "online") return "\u25CF online";
  if (p.state === "hidden") return "presence hidden";
  if (typeof p.last_seen !== "number") return "\u25CB offline";
  const ago = Math.max(0, Math.floor(Date.now() / 1e3) - p.last_seen);
  if (ago < 60) return "\u25CB last seen just now";
  if (ago < 3600) return `\u25CB last seen ${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `\u25CB last seen ${Math.floor(ago / 3600)} h ago`;
  return `\u25CB last seen ${new Date(p.last_seen * 1e3).toLocaleDateString()}`;
}
function renderConversations() {
  const list = $("conversations");
  list.replaceChildren(
    ...app.convs.map((c) => {
      const active = app.current?.kind === c.kind && app.current.key === c.key;
      const contact = c.kind === "contact" ? app.contacts.get(c.key) : null;
      const presence = presenceText(contact?.presence);
      const changed = !!contact?.key_changed;
      const sr = (text) => h("span", { class: "sr-only" }, text);
      return h(
        "li",
        {},
        h(
          "button",
          { class: active ? "conv active" : "conv", "aria-current": active ? "true" : false, "data-conv": c.key, "data-unread": String(c.unread), click: () => openConversation(c) },
          h("span", { class: "title" }, changed ? `\u26A0 ${c.title}` : c.title),
          changed ? sr(", keys changed") : null,
          presence ? sr(", ") : null,
          presence ? h("span", { class: "presence" }, presence) : null,
          c.unread ? sr(", ") : null,
          c.unread ? h("span", { class: "unread" }, String(c.unread)) : null,
          c.unread ? sr(" unread") : null
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
  app.confirmPending = null;
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
    h("input", { id: "compose-text", name: "text", autocomplete: "off", placeholder: `Message ${c.title}`, required: true, input: (e) => e.target.value && noteTyping(c) }),
    h("button", { id: "compose-send", type: "submit" }, "Send")
  );
  const attach = h(
    "div",
    { class: "attach" },
    h("label", { for: "file-input" }, "Send a file (or drop files on the conversation)"),
    " ",
    h("input", { id: "file-input", type: "file", multiple: true, change: (e) => void pickFiles(e) })
  );
  show(
    h(
      "div",
      { class: "conv-head" },
      h("h2", { id: "view-title" }, c.title),
      c.kind === "contact" ? h("span", { id: "presence", class: "presence-line", role: "status" }) : null,
      c.kind === "contact" ? h("button", { id: "open-safety", type: "button", click: () => void safetyView(c.key) }, "Safety number") : null
    ),
    h("div", { id: "key-banner-slot" }),
    h("ol", { id: "messages", class: "messages", "aria-live": "polite", "aria-label": "Messages" }),
    h("p", { id: "typing", class: "typing", role: "status", "aria-live": "polite" }),
    h("ul", { id: "uploads", class: "uploads", "aria-label": "Files being sent" }),
    attach,
    form
  );
  renderPresence();
  renderBanner();
  renderMessages();
  renderUploads();
  renderTyping();
}
function renderPresence() {
  const el = document.getElementById("presence");
  const c = app.current;
  if (!el || c?.kind !== "contact") return;
  el.textContent = presenceText(app.contacts.get(c.key)?.presence);
}
async function send(e) {
  e.preventDefault();
  const c = app.current;
  const input = document.getElementById("compose-text");
  if (!c || !input || !input.value.trim()) return;
  const text = input.value;
  if (!confirmKeyChange(c)) return;
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
  startSampling(stats);
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
        nav("nav-agents", "Agents", agentsView),
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
  setUpDrop($("view"));
  connectEvents();
  await loadConversations();
  const requests = await api("GET", "/v1/requests");
  app.requests = requests;
  renderRequestCount();
}
void start();
export {
  loadConversations,
  openConversation,
  refreshCurrent,
  renderConversations
};
