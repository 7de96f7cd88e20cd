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
  uploads: [],
  /** The live link: this page as a light client of its node (live.ts), once started. */
  peer: null
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
  const open2 = (num(net.open_inbound) ?? 0) + (num(net.open_outbound) ?? 0);
  samples.push({ at, peers: num(stats?.connected_peers) ?? 0, connections: open2, bytesIn: num(net.bytes_received), bytesOut: num(net.bytes_sent) });
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

// ../ts/node_modules/@hpke/common/esm/src/errors.js
var HpkeError = class extends Error {
  constructor(e) {
    let message;
    if (e instanceof Error) {
      message = e.message;
    } else if (typeof e === "string") {
      message = e;
    } else {
      message = "";
    }
    super(message);
    this.name = this.constructor.name;
  }
};
var InvalidParamError = class extends HpkeError {
};
var SerializeError = class extends HpkeError {
};
var DeserializeError = class extends HpkeError {
};
var EncapError = class extends HpkeError {
};
var DecapError = class extends HpkeError {
};
var ExportError = class extends HpkeError {
};
var SealError = class extends HpkeError {
};
var OpenError = class extends HpkeError {
};
var MessageLimitReachedError = class extends HpkeError {
};
var DeriveKeyPairError = class extends HpkeError {
};
var NotSupportedError = class extends HpkeError {
};

// ../ts/node_modules/@hpke/common/esm/_dnt.shims.js
var dntGlobals = {};
var dntGlobalThis = createMergeProxy(globalThis, dntGlobals);
function createMergeProxy(baseObj, extObj) {
  return new Proxy(baseObj, {
    get(_target, prop, _receiver) {
      if (prop in extObj) {
        return extObj[prop];
      } else {
        return baseObj[prop];
      }
    },
    set(_target, prop, value) {
      if (prop in extObj) {
        delete extObj[prop];
      }
      baseObj[prop] = value;
      return true;
    },
    deleteProperty(_target, prop) {
      let success = false;
      if (prop in extObj) {
        delete extObj[prop];
        success = true;
      }
      if (prop in baseObj) {
        delete baseObj[prop];
        success = true;
      }
      return success;
    },
    ownKeys(_target) {
      const baseKeys = Reflect.ownKeys(baseObj);
      const extKeys = Reflect.ownKeys(extObj);
      const extKeysSet = new Set(extKeys);
      return [...baseKeys.filter((k) => !extKeysSet.has(k)), ...extKeys];
    },
    defineProperty(_target, prop, desc) {
      if (prop in extObj) {
        delete extObj[prop];
      }
      Reflect.defineProperty(baseObj, prop, desc);
      return true;
    },
    getOwnPropertyDescriptor(_target, prop) {
      if (prop in extObj) {
        return Reflect.getOwnPropertyDescriptor(extObj, prop);
      } else {
        return Reflect.getOwnPropertyDescriptor(baseObj, prop);
      }
    },
    has(_target, prop) {
      return prop in extObj || prop in baseObj;
    }
  });
}

// ../ts/node_modules/@hpke/common/esm/src/algorithm.js
async function loadSubtleCrypto() {
  if (dntGlobalThis !== void 0 && globalThis.crypto !== void 0) {
    return globalThis.crypto.subtle;
  }
  try {
    const { webcrypto } = await import("crypto");
    return webcrypto.subtle;
  } catch (e) {
    throw new NotSupportedError(e);
  }
}
var NativeAlgorithm = class {
  constructor() {
    Object.defineProperty(this, "_api", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
  }
  async _setup() {
    if (this._api !== void 0) {
      return;
    }
    this._api = await loadSubtleCrypto();
  }
};

// ../ts/node_modules/@hpke/common/esm/src/identifiers.js
var Mode = {
  Base: 0,
  Psk: 1,
  Auth: 2,
  AuthPsk: 3
};
var KemId = {
  NotAssigned: 0,
  DhkemP256HkdfSha256: 16,
  DhkemP384HkdfSha384: 17,
  DhkemP521HkdfSha512: 18,
  DhkemSecp256k1HkdfSha256: 19,
  DhkemX25519HkdfSha256: 32,
  DhkemX448HkdfSha512: 33,
  HybridkemX25519Kyber768: 48,
  MlKem512: 64,
  MlKem768: 65,
  MlKem1024: 66,
  XWing: 25722
};
var KdfId = {
  HkdfSha256: 1,
  HkdfSha384: 2,
  HkdfSha512: 3,
  Sha3256: 4,
  Sha3384: 5,
  Sha3512: 6,
  Shake128: 16,
  Shake256: 17,
  TurboShake128: 18,
  TurboShake256: 19
};
var AeadId = {
  Aes128Gcm: 1,
  Aes256Gcm: 2,
  Chacha20Poly1305: 3,
  ExportOnly: 65535
};

// ../ts/node_modules/@hpke/common/esm/src/consts.js
var INPUT_LENGTH_LIMIT = 8192;
var INFO_LENGTH_LIMIT = 268435456;
var MINIMUM_PSK_LENGTH = 32;
var EMPTY = /* @__PURE__ */ new Uint8Array(0);
var N_0 = 0n;
var N_1 = 1n;
var N_2 = 2n;

// ../ts/node_modules/@hpke/common/esm/src/kdfs/hkdf.js
var HPKE_VERSION = /* @__PURE__ */ new Uint8Array([
  72,
  80,
  75,
  69,
  45,
  118,
  49
]);
function toUint8Array(input) {
  return new Uint8Array(toArrayBuffer(input));
}
function toArrayBuffer(input) {
  if (input instanceof ArrayBuffer) {
    return input;
  }
  if (ArrayBuffer.isView(input)) {
    return new Uint8Array(input.buffer, input.byteOffset, input.byteLength).slice().buffer;
  }
  return new Uint8Array(input).slice().buffer;
}
var HkdfNative = class extends NativeAlgorithm {
  constructor() {
    super();
    Object.defineProperty(this, "id", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: KdfId.HkdfSha256
    });
    Object.defineProperty(this, "hashSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_suiteId", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: EMPTY
    });
    Object.defineProperty(this, "algHash", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: {
        name: "HMAC",
        hash: "SHA-256",
        length: 256
      }
    });
  }
  init(suiteId) {
    this._suiteId = suiteId;
  }
  buildLabeledIkm(label, ikm) {
    this._checkInit();
    const ret = new Uint8Array(7 + this._suiteId.byteLength + label.byteLength + ikm.byteLength);
    ret.set(HPKE_VERSION, 0);
    ret.set(this._suiteId, 7);
    ret.set(label, 7 + this._suiteId.byteLength);
    ret.set(ikm, 7 + this._suiteId.byteLength + label.byteLength);
    return ret;
  }
  buildLabeledInfo(label, info, len) {
    this._checkInit();
    const ret = new Uint8Array(9 + this._suiteId.byteLength + label.byteLength + info.byteLength);
    ret.set(new Uint8Array([0, len]), 0);
    ret.set(HPKE_VERSION, 2);
    ret.set(this._suiteId, 9);
    ret.set(label, 9 + this._suiteId.byteLength);
    ret.set(info, 9 + this._suiteId.byteLength + label.byteLength);
    return ret;
  }
  async extract(salt, ikm) {
    await this._setup();
    const saltBuf = salt.byteLength === 0 ? new ArrayBuffer(this.hashSize) : toArrayBuffer(salt);
    if (saltBuf.byteLength !== this.hashSize) {
      throw new InvalidParamError("The salt length must be the same as the hashSize");
    }
    const ikmBuf = toArrayBuffer(ikm);
    const key = await this._api.importKey("raw", saltBuf, this.algHash, false, [
      "sign"
    ]);
    return await this._api.sign("HMAC", key, ikmBuf);
  }
  async expand(prk, info, len) {
    await this._setup();
    const prkBuf = toArrayBuffer(prk);
    const key = await this._api.importKey("raw", prkBuf, this.algHash, false, [
      "sign"
    ]);
    const okm = new ArrayBuffer(len);
    const okmBytes = new Uint8Array(okm);
    let prev = EMPTY;
    const mid = toUint8Array(info);
    const tail = new Uint8Array(1);
    if (len > 255 * this.hashSize) {
      throw new Error("Entropy limit reached");
    }
    const tmp = new Uint8Array(this.hashSize + mid.length + 1);
    for (let i = 1, cur = 0; cur < okmBytes.length; i++) {
      tail[0] = i;
      tmp.set(prev, 0);
      tmp.set(mid, prev.length);
      tmp.set(tail, prev.length + mid.length);
      prev = new Uint8Array(await this._api.sign("HMAC", key, tmp.slice(0, prev.length + mid.length + 1)));
      if (okmBytes.length - cur >= prev.length) {
        okmBytes.set(prev, cur);
        cur += prev.length;
      } else {
        okmBytes.set(prev.slice(0, okmBytes.length - cur), cur);
        cur += okmBytes.length - cur;
      }
    }
    return okm;
  }
  async extractAndExpand(salt, ikm, info, len) {
    await this._setup();
    const ikmBuf = toArrayBuffer(ikm);
    const baseKey = await this._api.importKey("raw", ikmBuf, "HKDF", false, ["deriveBits"]);
    return await this._api.deriveBits({
      name: "HKDF",
      hash: this.algHash.hash,
      salt: toArrayBuffer(salt),
      info: toArrayBuffer(info)
    }, baseKey, len * 8);
  }
  async labeledExtract(salt, label, ikm) {
    return await this.extract(salt, this.buildLabeledIkm(label, ikm));
  }
  async labeledExpand(prk, label, info, len) {
    return await this.expand(prk, this.buildLabeledInfo(label, info, len), len);
  }
  _checkInit() {
    if (this._suiteId === EMPTY) {
      throw new Error("Not initialized. Call init()");
    }
  }
};
var HkdfSha256Native = class extends HkdfNative {
  constructor() {
    super(...arguments);
    Object.defineProperty(this, "id", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: KdfId.HkdfSha256
    });
    Object.defineProperty(this, "hashSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 32
    });
    Object.defineProperty(this, "algHash", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: {
        name: "HMAC",
        hash: "SHA-256",
        length: 256
      }
    });
  }
};

// ../ts/node_modules/@hpke/common/esm/src/utils/misc.js
var isCryptoKeyPair = (x) => typeof x === "object" && x !== null && typeof x.privateKey === "object" && typeof x.publicKey === "object";
function i2Osp(n, w) {
  if (w <= 0) {
    throw new Error("i2Osp: too small size");
  }
  if (n >= 256 ** w) {
    throw new Error("i2Osp: too large integer");
  }
  const ret = new Uint8Array(w);
  for (let i = 0; i < w && n; i++) {
    ret[w - (i + 1)] = n % 256;
    n = Math.floor(n / 256);
  }
  return ret;
}
function concat(a, b) {
  const ret = new Uint8Array(a.length + b.length);
  ret.set(a, 0);
  ret.set(b, a.length);
  return ret;
}
function base64UrlToBytes(v) {
  const base64 = v.replace(/-/g, "+").replace(/_/g, "/");
  const byteString = atob(base64);
  const ret = new Uint8Array(byteString.length);
  for (let i = 0; i < byteString.length; i++) {
    ret[i] = byteString.charCodeAt(i);
  }
  return ret;
}
async function loadCrypto() {
  if (typeof dntGlobalThis !== "undefined" && globalThis.crypto !== void 0) {
    return globalThis.crypto;
  }
  try {
    const { webcrypto } = await import("crypto");
    return webcrypto;
  } catch (_e) {
    throw new Error("failed to load Crypto");
  }
}
function xor(a, b) {
  if (a.byteLength !== b.byteLength) {
    throw new Error("xor: different length inputs");
  }
  const buf = new Uint8Array(a.byteLength);
  for (let i = 0; i < a.byteLength; i++) {
    buf[i] = a[i] ^ b[i];
  }
  return buf;
}

// ../ts/node_modules/@hpke/common/esm/src/interfaces/dhkemPrimitives.js
var KEM_USAGES = ["deriveBits"];
var LABEL_DKP_PRK = /* @__PURE__ */ new Uint8Array([
  100,
  107,
  112,
  95,
  112,
  114,
  107
]);
var LABEL_SK = /* @__PURE__ */ new Uint8Array([115, 107]);

// ../ts/node_modules/@hpke/common/esm/src/kems/dhkemPrimitives/ec.js
var EC_P_521_PARAMS = {
  p: (1n << 521n) - 1n,
  b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
  gx: 0x00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66n,
  gy: 0x011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650n,
  coordinateSize: 66
};

// ../ts/node_modules/@hpke/common/esm/src/xCryptoKey.js
var XCryptoKey = class {
  constructor(name, key, type, usages = []) {
    Object.defineProperty(this, "key", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "type", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "extractable", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: true
    });
    Object.defineProperty(this, "algorithm", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "usages", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this.key = key;
    this.type = type;
    this.algorithm = { name };
    this.usages = usages;
    if (type === "public") {
      this.usages = [];
    }
  }
};

// ../ts/node_modules/@hpke/common/esm/src/kems/dhkemPrimitives/xCurve.js
var XCurveDhkemPrimitives = class {
  constructor(algName, keySize, curve, hkdf2) {
    Object.defineProperty(this, "_algName", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_curve", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_hkdf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_nPk", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_nSk", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this._algName = algName;
    this._nPk = keySize;
    this._nSk = keySize;
    this._curve = curve;
    this._hkdf = hkdf2;
  }
  serializePublicKey(key) {
    try {
      return Promise.resolve(key.key.buffer);
    } catch (e) {
      return Promise.reject(new SerializeError(e));
    }
  }
  async deserializePublicKey(key) {
    try {
      return await this._importRawKey(toArrayBuffer(key), true);
    } catch (e) {
      throw new DeserializeError(e);
    }
  }
  serializePrivateKey(key) {
    try {
      return Promise.resolve(key.key.buffer);
    } catch (e) {
      return Promise.reject(new SerializeError(e));
    }
  }
  async deserializePrivateKey(key) {
    try {
      return await this._importRawKey(toArrayBuffer(key), false);
    } catch (e) {
      throw new DeserializeError(e);
    }
  }
  async importKey(format, key, isPublic) {
    try {
      if (format === "raw") {
        return await this._importRawKey(key, isPublic);
      }
      if (key instanceof ArrayBuffer) {
        throw new Error("Invalid jwk key format");
      }
      return await this._importJWK(key, isPublic);
    } catch (e) {
      throw new DeserializeError(e);
    }
  }
  async generateKeyPair() {
    try {
      const rawSk = await this._curve.utils.randomSecretKey();
      const sk = new XCryptoKey(this._algName, rawSk, "private", KEM_USAGES);
      const pk = await this.derivePublicKey(sk);
      return { publicKey: pk, privateKey: sk };
    } catch (e) {
      throw new NotSupportedError(e);
    }
  }
  async deriveKeyPair(ikm) {
    try {
      const rawIkm = toArrayBuffer(ikm);
      const dkpPrk = await this._hkdf.labeledExtract(EMPTY.buffer, LABEL_DKP_PRK, new Uint8Array(rawIkm));
      const rawSk = await this._hkdf.labeledExpand(dkpPrk, LABEL_SK, EMPTY, this._nSk);
      const sk = new XCryptoKey(this._algName, new Uint8Array(rawSk), "private", KEM_USAGES);
      return {
        privateKey: sk,
        publicKey: await this.derivePublicKey(sk)
      };
    } catch (e) {
      throw new DeriveKeyPairError(e);
    }
  }
  derivePublicKey(key) {
    try {
      const pk = this._curve.getPublicKey(key.key);
      return Promise.resolve(new XCryptoKey(this._algName, pk, "public"));
    } catch (e) {
      return Promise.reject(new DeserializeError(e));
    }
  }
  dh(sk, pk) {
    try {
      return Promise.resolve(this._curve.getSharedSecret(sk.key, pk.key).buffer);
    } catch (e) {
      return Promise.reject(new SerializeError(e));
    }
  }
  _importRawKey(key, isPublic) {
    return new Promise((resolve, reject) => {
      if (isPublic && key.byteLength !== this._nPk) {
        reject(new Error("Invalid length of the key"));
      }
      if (!isPublic && key.byteLength !== this._nSk) {
        reject(new Error("Invalid length of the key"));
      }
      resolve(new XCryptoKey(this._algName, new Uint8Array(key), isPublic ? "public" : "private", isPublic ? [] : KEM_USAGES));
    });
  }
  _importJWK(key, isPublic) {
    return new Promise((resolve, reject) => {
      if (key.kty !== "OKP") {
        reject(new Error(`Invalid kty: ${key.kty}`));
      }
      if (key.crv !== this._algName) {
        reject(new Error(`Invalid crv: ${key.crv}`));
      }
      if (isPublic) {
        if (typeof key.d !== "undefined") {
          reject(new Error("Invalid key: `d` should not be set"));
        }
        if (typeof key.x !== "string") {
          reject(new Error("Invalid key: `x` not found"));
        }
        resolve(new XCryptoKey(this._algName, base64UrlToBytes(key.x), "public"));
      } else {
        if (typeof key.d !== "string") {
          reject(new Error("Invalid key: `d` not found"));
        }
        resolve(new XCryptoKey(this._algName, base64UrlToBytes(key.d), "private", KEM_USAGES));
      }
    });
  }
};

// ../ts/node_modules/@hpke/common/esm/src/utils/noble.js
function isBytes(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array";
}
function anumber(n, title = "") {
  if (!Number.isSafeInteger(n) || n < 0) {
    const prefix = title && `"${title}" `;
    throw new Error(`${prefix}expected integer >0, got ${n}`);
  }
}
function abytes(value, length, title = "") {
  const bytes2 = isBytes(value);
  const len = value?.length;
  const needsLen = length !== void 0;
  if (!bytes2 || needsLen && len !== length) {
    const prefix = title && `"${title}" `;
    const ofLen = needsLen ? ` of length ${length}` : "";
    const got = bytes2 ? `length=${len}` : `type=${typeof value}`;
    throw new Error(prefix + "expected Uint8Array" + ofLen + ", got " + got);
  }
  return value;
}
function aexists(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("Hash instance has been destroyed");
  if (checkFinished && instance.finished) {
    throw new Error("Hash#digest() has already been called");
  }
}
function aoutput(out, instance) {
  abytes(out, void 0, "digestInto() output");
  const min = instance.outputLen;
  if (out.length < min) {
    throw new Error('"digestInto() output" expected to be of length >=' + min);
  }
}
function abignumer(n) {
  if (typeof n === "bigint") {
    if (!isPosBig(n))
      throw new Error("positive bigint expected, got " + n);
  } else
    anumber(n);
  return n;
}
function u32(arr) {
  return new Uint32Array(arr.buffer, arr.byteOffset, Math.floor(arr.byteLength / 4));
}
function clean(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
var _endianTestBuffer = /* @__PURE__ */ new Uint32Array([287454020]);
var _endianTestBytes = /* @__PURE__ */ new Uint8Array(_endianTestBuffer.buffer);
var isLE = _endianTestBytes[0] === 68;
function createView(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
function rotr(word, shift) {
  return word << 32 - shift | word >>> shift;
}
var hasHexBuiltin = /* @__PURE__ */ (() => (
  // @ts-ignore: to use toHex
  typeof Uint8Array.from([]).toHex === "function" && // @ts-ignore: to use fromHex
  typeof Uint8Array.fromHex === "function"
))();
var hexes = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
var HEX_TO_BIGINT = [
  0n,
  1n,
  2n,
  3n,
  4n,
  5n,
  6n,
  7n,
  8n,
  9n,
  10n,
  11n,
  12n,
  13n,
  14n,
  15n
];
function bytesToHex(bytes2) {
  abytes(bytes2);
  if (hasHexBuiltin)
    return bytes2.toHex();
  let hex = "";
  for (let i = 0; i < bytes2.length; i++) {
    hex += hexes[bytes2[i]];
  }
  return hex;
}
var asciis = { _0: 48, _9: 57, A: 65, F: 70, a: 97, f: 102 };
function asciiToBase16(ch) {
  if (ch >= asciis._0 && ch <= asciis._9)
    return ch - asciis._0;
  if (ch >= asciis.A && ch <= asciis.F)
    return ch - (asciis.A - 10);
  if (ch >= asciis.a && ch <= asciis.f)
    return ch - (asciis.a - 10);
  return;
}
function hexToBytes(hex) {
  if (typeof hex !== "string") {
    throw new Error("hex string expected, got " + typeof hex);
  }
  if (hasHexBuiltin)
    return Uint8Array.fromHex(hex);
  const hl = hex.length;
  const al = hl / 2;
  if (hl % 2) {
    throw new Error("hex string expected, got unpadded hex of length " + hl);
  }
  const array = new Uint8Array(al);
  for (let ai = 0, hi = 0; ai < al; ai++, hi += 2) {
    const n1 = asciiToBase16(hex.charCodeAt(hi));
    const n2 = asciiToBase16(hex.charCodeAt(hi + 1));
    if (n1 === void 0 || n2 === void 0) {
      const char = hex[hi] + hex[hi + 1];
      throw new Error('hex string expected, got non-hex character "' + char + '" at index ' + hi);
    }
    array[ai] = n1 * 16 + n2;
  }
  return array;
}
function hexToNumber(hex) {
  if (typeof hex !== "string") {
    throw new Error("hex string expected, got " + typeof hex);
  }
  let out = N_0;
  for (let i = 0; i < hex.length; i++) {
    const n = asciiToBase16(hex.charCodeAt(i));
    if (n === void 0) {
      throw new Error('hex string expected, got non-hex character "' + hex[i] + '" at index ' + i);
    }
    out = out << 4n | HEX_TO_BIGINT[n];
  }
  return out;
}
function numberToBigint(num2) {
  anumber(num2, "numberToBigint");
  let n = num2;
  let out = N_0;
  let bit = 1n;
  while (n > 0) {
    if (n % 2 === 1)
      out += bit;
    n = Math.floor(n / 2);
    bit <<= 1n;
  }
  return out;
}
function bytesToNumberLE(bytes2) {
  return hexToNumber(bytesToHex(copyBytes(abytes(bytes2)).reverse()));
}
function numberToBytesBE(n, len) {
  anumber(len);
  n = abignumer(n);
  const res = hexToBytes(n.toString(16).padStart(len * 2, "0"));
  if (res.length !== len)
    throw new Error("number too large");
  return res;
}
function numberToBytesLE(n, len) {
  return numberToBytesBE(n, len).reverse();
}
function copyBytes(bytes2) {
  return Uint8Array.from(bytes2);
}
function isPosBig(n) {
  return typeof n === "bigint" && N_0 <= n;
}
function inRange(n, min, max) {
  return isPosBig(n) && isPosBig(min) && isPosBig(max) && min <= n && n < max;
}
function aInRange(title, n, min, max) {
  if (!inRange(n, min, max)) {
    throw new Error("expected valid " + title + ": " + min + " <= n < " + max + ", got " + n);
  }
}
function validateObject(object, fields = {}, optFields = {}) {
  if (!object || typeof object !== "object") {
    throw new Error("expected valid options object");
  }
  function checkField(fieldName, expectedType, isOpt) {
    const val = object[fieldName];
    if (isOpt && val === void 0)
      return;
    const current = typeof val;
    if (current !== expectedType || val === null) {
      throw new Error(`param "${fieldName}" is invalid: expected ${expectedType}, got ${current}`);
    }
  }
  const iter = (f, isOpt) => Object.entries(f).forEach(([k, v]) => checkField(k, v, isOpt));
  iter(fields, false);
  iter(optFields, true);
}
async function randomBytesAsync(bytesLength = 32) {
  const api2 = await loadCrypto();
  const rnd = new Uint8Array(bytesLength);
  api2.getRandomValues(rnd);
  return rnd;
}
function oidNist(suffix) {
  return {
    oid: Uint8Array.from([
      6,
      9,
      96,
      134,
      72,
      1,
      101,
      3,
      4,
      2,
      suffix
    ])
  };
}

// ../ts/node_modules/@hpke/common/esm/src/hash/hash.js
function ahash(h2) {
  if (typeof h2 !== "function" || typeof h2.create !== "function") {
    throw new Error("Hash must wrapped by utils.createHasher");
  }
  anumber(h2.outputLen);
  anumber(h2.blockLen);
}
function createHasher(hashCons, info = {}) {
  const hashFn = (msg, opts) => hashCons(opts).update(msg).digest();
  const tmp = hashCons(void 0);
  const hashC = Object.assign(hashFn, {
    outputLen: tmp.outputLen,
    blockLen: tmp.blockLen,
    create: (opts) => hashCons(opts),
    ...info
  });
  return Object.freeze(hashC);
}

// ../ts/node_modules/@hpke/common/esm/src/hash/hmac.js
var _HMAC = class {
  constructor(hash, key) {
    Object.defineProperty(this, "oHash", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "iHash", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "blockLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "outputLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "finished", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    Object.defineProperty(this, "destroyed", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    ahash(hash);
    abytes(key, void 0, "key");
    this.iHash = hash.create();
    if (typeof this.iHash.update !== "function") {
      throw new Error("Expected instance of class which extends utils.Hash");
    }
    this.blockLen = this.iHash.blockLen;
    this.outputLen = this.iHash.outputLen;
    const blockLen = this.blockLen;
    const pad = new Uint8Array(blockLen);
    pad.set(key.length > blockLen ? hash.create().update(key).digest() : key);
    for (let i = 0; i < pad.length; i++)
      pad[i] ^= 54;
    this.iHash.update(pad);
    this.oHash = hash.create();
    for (let i = 0; i < pad.length; i++)
      pad[i] ^= 54 ^ 92;
    this.oHash.update(pad);
    clean(pad);
  }
  update(buf) {
    aexists(this);
    this.iHash.update(buf);
    return this;
  }
  digestInto(out) {
    aexists(this);
    abytes(out, this.outputLen, "output");
    this.finished = true;
    this.iHash.digestInto(out);
    this.oHash.update(out);
    this.oHash.digestInto(out);
    this.destroy();
  }
  digest() {
    const out = new Uint8Array(this.oHash.outputLen);
    this.digestInto(out);
    return out;
  }
  _cloneInto(to) {
    to ||= Object.create(Object.getPrototypeOf(this), {});
    const { oHash, iHash, finished, destroyed, blockLen, outputLen } = this;
    to = to;
    to.finished = finished;
    to.destroyed = destroyed;
    to.blockLen = blockLen;
    to.outputLen = outputLen;
    to.oHash = oHash._cloneInto(to.oHash);
    to.iHash = iHash._cloneInto(to.iHash);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
  destroy() {
    this.destroyed = true;
    this.oHash.destroy();
    this.iHash.destroy();
  }
};
var hmac = (hash, key, message) => new _HMAC(hash, key).update(message).digest();
hmac.create = (hash, key) => new _HMAC(hash, key);

// ../ts/node_modules/@hpke/common/esm/src/hash/md.js
function Chi(a, b, c) {
  return a & b ^ ~a & c;
}
function Maj(a, b, c) {
  return a & b ^ a & c ^ b & c;
}
var HashMD = class {
  constructor(blockLen, outputLen, padOffset, isLE4) {
    Object.defineProperty(this, "blockLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "outputLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "padOffset", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "isLE", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "buffer", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "view", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "finished", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    Object.defineProperty(this, "length", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "pos", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "destroyed", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.padOffset = padOffset;
    this.isLE = isLE4;
    this.buffer = new Uint8Array(blockLen);
    this.view = createView(this.buffer);
  }
  update(data) {
    aexists(this);
    abytes(data);
    const { view, buffer, blockLen } = this;
    const len = data.length;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        const dataView = createView(data);
        for (; blockLen <= len - pos; pos += blockLen) {
          this.process(dataView, pos);
        }
        continue;
      }
      buffer.set(data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(view, 0);
        this.pos = 0;
      }
    }
    this.length += data.length;
    this.roundClean();
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const { buffer, view, blockLen, isLE: isLE4 } = this;
    let { pos } = this;
    buffer[pos++] = 128;
    clean(this.buffer.subarray(pos));
    if (this.padOffset > blockLen - pos) {
      this.process(view, 0);
      pos = 0;
    }
    for (let i = pos; i < blockLen; i++)
      buffer[i] = 0;
    view.setBigUint64(blockLen - 8, numberToBigint(this.length * 8), isLE4);
    this.process(view, 0);
    const oview = createView(out);
    const len = this.outputLen;
    if (len % 4)
      throw new Error("_sha2: outputLen must be aligned to 32bit");
    const outLen = len / 4;
    const state = this.get();
    if (outLen > state.length) {
      throw new Error("_sha2: outputLen bigger than state");
    }
    for (let i = 0; i < outLen; i++)
      oview.setUint32(4 * i, state[i], isLE4);
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneInto(to) {
    to ||= new this.constructor();
    to.set(...this.get());
    const { blockLen, buffer, length, finished, destroyed, pos } = this;
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    if (length % blockLen)
      to.buffer.set(buffer);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
var SHA256_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  3144134277,
  1013904242,
  2773480762,
  1359893119,
  2600822924,
  528734635,
  1541459225
]);

// ../ts/node_modules/@hpke/common/esm/src/hash/u64.js
var U32_MASK64 = 0xffffffffn;
var _32n = 32n;
function fromBig(n, le = false) {
  if (le) {
    return { h: Number(n & U32_MASK64), l: Number(n >> _32n & U32_MASK64) };
  }
  return {
    h: Number(n >> _32n & U32_MASK64) | 0,
    l: Number(n & U32_MASK64) | 0
  };
}
function split(lst, le = false) {
  const len = lst.length;
  const Ah = new Uint32Array(len);
  const Al = new Uint32Array(len);
  for (let i = 0; i < len; i++) {
    const { h: h2, l } = fromBig(lst[i], le);
    [Ah[i], Al[i]] = [h2, l];
  }
  return [Ah, Al];
}

// ../ts/node_modules/@hpke/common/esm/src/hash/sha2.js
var SHA256_K = /* @__PURE__ */ Uint32Array.from([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var SHA256_W = /* @__PURE__ */ new Uint32Array(64);
var SHA2_32B = class extends HashMD {
  constructor(outputLen) {
    super(64, outputLen, 8, false);
  }
  get() {
    const { A, B, C, D, E, F, G, H: H2 } = this;
    return [A, B, C, D, E, F, G, H2];
  }
  set(A, B, C, D, E, F, G, H2) {
    this.A = A | 0;
    this.B = B | 0;
    this.C = C | 0;
    this.D = D | 0;
    this.E = E | 0;
    this.F = F | 0;
    this.G = G | 0;
    this.H = H2 | 0;
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4) {
      SHA256_W[i] = view.getUint32(offset, false);
    }
    for (let i = 16; i < 64; i++) {
      const W15 = SHA256_W[i - 15];
      const W2 = SHA256_W[i - 2];
      const s0 = rotr(W15, 7) ^ rotr(W15, 18) ^ W15 >>> 3;
      const s1 = rotr(W2, 17) ^ rotr(W2, 19) ^ W2 >>> 10;
      SHA256_W[i] = s1 + SHA256_W[i - 7] + s0 + SHA256_W[i - 16] | 0;
    }
    let { A, B, C, D, E, F, G, H: H2 } = this;
    for (let i = 0; i < 64; i++) {
      const sigma1 = rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25);
      const T1 = H2 + sigma1 + Chi(E, F, G) + SHA256_K[i] + SHA256_W[i] | 0;
      const sigma0 = rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22);
      const T2 = sigma0 + Maj(A, B, C) | 0;
      H2 = G;
      G = F;
      F = E;
      E = D + T1 | 0;
      D = C;
      C = B;
      B = A;
      A = T1 + T2 | 0;
    }
    A = A + this.A | 0;
    B = B + this.B | 0;
    C = C + this.C | 0;
    D = D + this.D | 0;
    E = E + this.E | 0;
    F = F + this.F | 0;
    G = G + this.G | 0;
    H2 = H2 + this.H | 0;
    this.set(A, B, C, D, E, F, G, H2);
  }
  roundClean() {
    clean(SHA256_W);
  }
  destroy() {
    this.set(0, 0, 0, 0, 0, 0, 0, 0);
    clean(this.buffer);
  }
};
var _SHA256 = class extends SHA2_32B {
  constructor() {
    super(32);
    Object.defineProperty(this, "A", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[0] | 0
    });
    Object.defineProperty(this, "B", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[1] | 0
    });
    Object.defineProperty(this, "C", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[2] | 0
    });
    Object.defineProperty(this, "D", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[3] | 0
    });
    Object.defineProperty(this, "E", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[4] | 0
    });
    Object.defineProperty(this, "F", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[5] | 0
    });
    Object.defineProperty(this, "G", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[6] | 0
    });
    Object.defineProperty(this, "H", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: SHA256_IV[7] | 0
    });
  }
};
var sha256 = /* @__PURE__ */ createHasher(
  () => new _SHA256(),
  /* @__PURE__ */ oidNist(1)
);

// ../ts/node_modules/@hpke/common/esm/src/hash/sha3.js
var _0n = 0n;
var _1n = 1n;
var _2n = 2n;
var _7n = 7n;
var _256n = 256n;
var _0x71n = 0x71n;
var SHA3_PI = [];
var SHA3_ROTL = [];
var _SHA3_IOTA = [];
for (let round = 0, R = _1n, x = 1, y = 0; round < 24; round++) {
  [x, y] = [y, (2 * x + 3 * y) % 5];
  SHA3_PI.push(2 * (5 * y + x));
  SHA3_ROTL.push((round + 1) * (round + 2) / 2 % 64);
  let t = _0n;
  for (let j = 0; j < 7; j++) {
    R = (R << _1n ^ (R >> _7n) * _0x71n) % _256n;
    if (R & _2n)
      t ^= _1n << (_1n << BigInt(j)) - _1n;
  }
  _SHA3_IOTA.push(t);
}
var IOTAS = split(_SHA3_IOTA, true);
var SHA3_IOTA_H = IOTAS[0];
var SHA3_IOTA_L = IOTAS[1];

// ../ts/node_modules/@hpke/common/esm/src/curve/modular.js
function mod(a, b) {
  const result = a % b;
  return result >= N_0 ? result : b + result;
}
function pow2(x, power, modulo) {
  let res = x;
  while (power-- > N_0) {
    res *= res;
    res %= modulo;
  }
  return res;
}

// ../ts/node_modules/@hpke/common/esm/src/curve/curve.js
function createKeygen(randomSecretKey, getPublicKey) {
  return function keygen(seed) {
    const secretKey = randomSecretKey(seed);
    return { secretKey, publicKey: getPublicKey(secretKey) };
  };
}

// ../ts/node_modules/@hpke/common/esm/src/curve/montgomery.js
function validateOpts(curve) {
  validateObject(curve, {
    adjustScalarBytes: "function",
    powPminus2: "function"
  });
  return Object.freeze({ ...curve });
}
function montgomery(curveDef) {
  const CURVE = validateOpts(curveDef);
  const { P, type, adjustScalarBytes: adjustScalarBytes2, powPminus2, randomBytes: rand } = CURVE;
  const is25519 = type === "x25519";
  if (!is25519 && type !== "x448")
    throw new Error("invalid type");
  const randomBytes_ = rand || randomBytesAsync;
  const montgomeryBits = is25519 ? 255n : 448n;
  const fieldLen = is25519 ? 32 : 56;
  const Gu = is25519 ? 9n : 5n;
  const a24 = is25519 ? 121665n : 39081n;
  const minScalar = is25519 ? N_2 ** 254n : N_2 ** 447n;
  const maxAdded = is25519 ? 8n * N_2 ** 251n - N_1 : 4n * N_2 ** 445n - N_1;
  const maxScalar = minScalar + maxAdded + N_1;
  const modP = (n) => mod(n, P);
  const GuBytes = encodeU(Gu);
  function encodeU(u) {
    return numberToBytesLE(modP(u), fieldLen);
  }
  function decodeU(u) {
    const _u = copyBytes(abytes(u, fieldLen, "uCoordinate"));
    if (is25519)
      _u[31] &= 127;
    return modP(bytesToNumberLE(_u));
  }
  function decodeScalar(scalar) {
    return bytesToNumberLE(adjustScalarBytes2(copyBytes(abytes(scalar, fieldLen, "scalar"))));
  }
  function scalarMult(scalar, u) {
    const pu = montgomeryLadder(decodeU(u), decodeScalar(scalar));
    if (pu === N_0)
      throw new Error("invalid private or public key received");
    return encodeU(pu);
  }
  function scalarMultBase(scalar) {
    return scalarMult(scalar, GuBytes);
  }
  const getPublicKey = scalarMultBase;
  const getSharedSecret = scalarMult;
  function cswap(swap, x_2, x_3) {
    const dummy = modP(swap * (x_2 - x_3));
    x_2 = modP(x_2 - dummy);
    x_3 = modP(x_3 + dummy);
    return { x_2, x_3 };
  }
  function montgomeryLadder(u, scalar) {
    aInRange("u", u, N_0, P);
    aInRange("scalar", scalar, minScalar, maxScalar);
    const k = scalar;
    const x_1 = u;
    let x_2 = N_1;
    let z_2 = N_0;
    let x_3 = u;
    let z_3 = N_1;
    let swap = N_0;
    for (let t = montgomeryBits - 1n; t >= N_0; t--) {
      const k_t = k >> t & N_1;
      swap ^= k_t;
      ({ x_2, x_3 } = cswap(swap, x_2, x_3));
      ({ x_2: z_2, x_3: z_3 } = cswap(swap, z_2, z_3));
      swap = k_t;
      const A = x_2 + z_2;
      const AA = modP(A * A);
      const B = x_2 - z_2;
      const BB = modP(B * B);
      const E = AA - BB;
      const C = x_3 + z_3;
      const D = x_3 - z_3;
      const DA = modP(D * A);
      const CB = modP(C * B);
      const dacb = DA + CB;
      const da_cb = DA - CB;
      x_3 = modP(dacb * dacb);
      z_3 = modP(x_1 * modP(da_cb * da_cb));
      x_2 = modP(AA * BB);
      z_2 = modP(E * (AA + modP(a24 * E)));
    }
    ({ x_2, x_3 } = cswap(swap, x_2, x_3));
    ({ x_2: z_2, x_3: z_3 } = cswap(swap, z_2, z_3));
    const z2 = powPminus2(z_2);
    return modP(x_2 * z2);
  }
  const lengths = {
    secretKey: fieldLen,
    publicKey: fieldLen,
    seed: fieldLen
  };
  const randomSecretKey = async (seed) => {
    if (seed === void 0) {
      seed = await randomBytes_(fieldLen);
    }
    abytes(seed, lengths.seed, "seed");
    return seed;
  };
  const utils = { randomSecretKey };
  return Object.freeze({
    keygen: createKeygen(randomSecretKey, getPublicKey),
    getSharedSecret,
    getPublicKey,
    scalarMult,
    scalarMultBase,
    utils,
    GuBytes: GuBytes.slice(),
    lengths
  });
}

// ../ts/node_modules/@hpke/core/esm/src/utils/emitNotSupported.js
function emitNotSupported() {
  return new Promise((_resolve, reject) => {
    reject(new NotSupportedError("Not supported"));
  });
}

// ../ts/node_modules/@hpke/core/esm/src/exporterContext.js
var LABEL_SEC = new Uint8Array([115, 101, 99]);
var ExporterContextImpl = class {
  constructor(api2, kdf, exporterSecret) {
    Object.defineProperty(this, "_api", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "exporterSecret", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_kdf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this._api = api2;
    this._kdf = kdf;
    this.exporterSecret = exporterSecret;
  }
  async seal(_data, _aad) {
    return await emitNotSupported();
  }
  async open(_data, _aad) {
    return await emitNotSupported();
  }
  async export(exporterContext, len) {
    const rawExporterContext = toArrayBuffer(exporterContext);
    if (rawExporterContext.byteLength > INPUT_LENGTH_LIMIT) {
      throw new InvalidParamError("Too long exporter context");
    }
    try {
      return await this._kdf.labeledExpand(this.exporterSecret, LABEL_SEC, new Uint8Array(rawExporterContext), len);
    } catch (e) {
      throw new ExportError(e);
    }
  }
};
var RecipientExporterContextImpl = class extends ExporterContextImpl {
};
var SenderExporterContextImpl = class extends ExporterContextImpl {
  constructor(api2, kdf, exporterSecret, enc3) {
    super(api2, kdf, exporterSecret);
    Object.defineProperty(this, "enc", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this.enc = enc3;
    return;
  }
};

// ../ts/node_modules/@hpke/core/esm/src/encryptionContext.js
var EncryptionContextImpl = class extends ExporterContextImpl {
  constructor(api2, kdf, params) {
    super(api2, kdf, params.exporterSecret);
    Object.defineProperty(this, "_aead", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_nK", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_nN", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_nT", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_ctx", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    if (params.key === void 0 || params.baseNonce === void 0 || params.seq === void 0) {
      throw new Error("Required parameters are missing");
    }
    this._aead = params.aead;
    this._nK = this._aead.keySize;
    this._nN = this._aead.nonceSize;
    this._nT = this._aead.tagSize;
    const key = this._aead.createEncryptionContext(params.key);
    this._ctx = {
      key,
      baseNonce: params.baseNonce,
      seq: params.seq
    };
  }
  computeNonce(k) {
    const seqBytes = i2Osp(k.seq, k.baseNonce.byteLength);
    return xor(k.baseNonce, seqBytes).buffer;
  }
  incrementSeq(k) {
    if (k.seq > Number.MAX_SAFE_INTEGER) {
      throw new MessageLimitReachedError("Message limit reached");
    }
    k.seq += 1;
    return;
  }
};

// ../ts/node_modules/@hpke/core/esm/src/mutex.js
var __classPrivateFieldGet = function(receiver, state, kind, f) {
  if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
  if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
  return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
};
var __classPrivateFieldSet = function(receiver, state, value, kind, f) {
  if (kind === "m") throw new TypeError("Private method is not writable");
  if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a setter");
  if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
  return kind === "a" ? f.call(receiver, value) : f ? f.value = value : state.set(receiver, value), value;
};
var _Mutex_locked;
var Mutex = class {
  constructor() {
    _Mutex_locked.set(this, Promise.resolve());
  }
  async lock() {
    let releaseLock;
    const nextLock = new Promise((resolve) => {
      releaseLock = resolve;
    });
    const previousLock = __classPrivateFieldGet(this, _Mutex_locked, "f");
    __classPrivateFieldSet(this, _Mutex_locked, nextLock, "f");
    await previousLock;
    return releaseLock;
  }
};
_Mutex_locked = /* @__PURE__ */ new WeakMap();

// ../ts/node_modules/@hpke/core/esm/src/recipientContext.js
var __classPrivateFieldGet2 = function(receiver, state, kind, f) {
  if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
  if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
  return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
};
var __classPrivateFieldSet2 = function(receiver, state, value, kind, f) {
  if (kind === "m") throw new TypeError("Private method is not writable");
  if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a setter");
  if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
  return kind === "a" ? f.call(receiver, value) : f ? f.value = value : state.set(receiver, value), value;
};
var _RecipientContextImpl_mutex;
var RecipientContextImpl = class extends EncryptionContextImpl {
  constructor() {
    super(...arguments);
    _RecipientContextImpl_mutex.set(this, void 0);
  }
  async open(data, aad = EMPTY.buffer) {
    __classPrivateFieldSet2(this, _RecipientContextImpl_mutex, __classPrivateFieldGet2(this, _RecipientContextImpl_mutex, "f") ?? new Mutex(), "f");
    const release = await __classPrivateFieldGet2(this, _RecipientContextImpl_mutex, "f").lock();
    let pt;
    try {
      pt = await this._ctx.key.open(this.computeNonce(this._ctx), toArrayBuffer(data), toArrayBuffer(aad));
    } catch (e) {
      throw new OpenError(e);
    } finally {
      release();
    }
    this.incrementSeq(this._ctx);
    return pt;
  }
};
_RecipientContextImpl_mutex = /* @__PURE__ */ new WeakMap();

// ../ts/node_modules/@hpke/core/esm/src/senderContext.js
var __classPrivateFieldGet3 = function(receiver, state, kind, f) {
  if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a getter");
  if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot read private member from an object whose class did not declare it");
  return kind === "m" ? f : kind === "a" ? f.call(receiver) : f ? f.value : state.get(receiver);
};
var __classPrivateFieldSet3 = function(receiver, state, value, kind, f) {
  if (kind === "m") throw new TypeError("Private method is not writable");
  if (kind === "a" && !f) throw new TypeError("Private accessor was defined without a setter");
  if (typeof state === "function" ? receiver !== state || !f : !state.has(receiver)) throw new TypeError("Cannot write private member to an object whose class did not declare it");
  return kind === "a" ? f.call(receiver, value) : f ? f.value = value : state.set(receiver, value), value;
};
var _SenderContextImpl_mutex;
var SenderContextImpl = class extends EncryptionContextImpl {
  constructor(api2, kdf, params, enc3) {
    super(api2, kdf, params);
    Object.defineProperty(this, "enc", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    _SenderContextImpl_mutex.set(this, void 0);
    this.enc = enc3;
  }
  async seal(data, aad = EMPTY.buffer) {
    __classPrivateFieldSet3(this, _SenderContextImpl_mutex, __classPrivateFieldGet3(this, _SenderContextImpl_mutex, "f") ?? new Mutex(), "f");
    const release = await __classPrivateFieldGet3(this, _SenderContextImpl_mutex, "f").lock();
    let ct;
    try {
      ct = await this._ctx.key.seal(this.computeNonce(this._ctx), toArrayBuffer(data), toArrayBuffer(aad));
    } catch (e) {
      throw new SealError(e);
    } finally {
      release();
    }
    this.incrementSeq(this._ctx);
    return ct;
  }
};
_SenderContextImpl_mutex = /* @__PURE__ */ new WeakMap();

// ../ts/node_modules/@hpke/core/esm/src/cipherSuiteNative.js
var LABEL_BASE_NONCE = new Uint8Array([
  98,
  97,
  115,
  101,
  95,
  110,
  111,
  110,
  99,
  101
]);
var LABEL_EXP = new Uint8Array([101, 120, 112]);
var LABEL_INFO_HASH = new Uint8Array([
  105,
  110,
  102,
  111,
  95,
  104,
  97,
  115,
  104
]);
var LABEL_KEY = new Uint8Array([107, 101, 121]);
var LABEL_PSK_ID_HASH = new Uint8Array([
  112,
  115,
  107,
  95,
  105,
  100,
  95,
  104,
  97,
  115,
  104
]);
var LABEL_SECRET = new Uint8Array([115, 101, 99, 114, 101, 116]);
var SUITE_ID_HEADER_HPKE = new Uint8Array([
  72,
  80,
  75,
  69,
  0,
  0,
  0,
  0,
  0,
  0
]);
var CipherSuiteNative = class extends NativeAlgorithm {
  /**
   * @param params A set of parameters for building a cipher suite.
   *
   * If the error occurred, throws {@link InvalidParamError}.
   *
   * @throws {@link InvalidParamError}
   */
  constructor(params) {
    super();
    Object.defineProperty(this, "_kem", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_kdf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_aead", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_suiteId", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    if (typeof params.kem === "number") {
      throw new InvalidParamError("KemId cannot be used");
    }
    this._kem = params.kem;
    if (typeof params.kdf === "number") {
      throw new InvalidParamError("KdfId cannot be used");
    }
    this._kdf = params.kdf;
    if (typeof params.aead === "number") {
      throw new InvalidParamError("AeadId cannot be used");
    }
    this._aead = params.aead;
    this._suiteId = new Uint8Array(SUITE_ID_HEADER_HPKE);
    this._suiteId.set(i2Osp(this._kem.id, 2), 4);
    this._suiteId.set(i2Osp(this._kdf.id, 2), 6);
    this._suiteId.set(i2Osp(this._aead.id, 2), 8);
    this._kdf.init(this._suiteId);
  }
  /**
   * Gets the KEM context of the ciphersuite.
   */
  get kem() {
    return this._kem;
  }
  /**
   * Gets the KDF context of the ciphersuite.
   */
  get kdf() {
    return this._kdf;
  }
  /**
   * Gets the AEAD context of the ciphersuite.
   */
  get aead() {
    return this._aead;
  }
  /**
   * Creates an encryption context for a sender.
   *
   * If the error occurred, throws {@link DecapError} | {@link ValidationError}.
   *
   * @param params A set of parameters for the sender encryption context.
   * @returns A sender encryption context.
   * @throws {@link EncapError}, {@link ValidationError}
   */
  async createSenderContext(params) {
    this._validateInputLength(params);
    await this._setup();
    const dh = await this._kem.encap(params);
    let mode;
    if (params.psk !== void 0) {
      mode = params.senderKey !== void 0 ? Mode.AuthPsk : Mode.Psk;
    } else {
      mode = params.senderKey !== void 0 ? Mode.Auth : Mode.Base;
    }
    return await this._keyScheduleS(mode, dh.sharedSecret, dh.enc, params);
  }
  /**
   * Creates an encryption context for a recipient.
   *
   * If the error occurred, throws {@link DecapError}
   * | {@link DeserializeError} | {@link ValidationError}.
   *
   * @param params A set of parameters for the recipient encryption context.
   * @returns A recipient encryption context.
   * @throws {@link DecapError}, {@link DeserializeError}, {@link ValidationError}
   */
  async createRecipientContext(params) {
    this._validateInputLength(params);
    await this._setup();
    const sharedSecret = await this._kem.decap(params);
    let mode;
    if (params.psk !== void 0) {
      mode = params.senderPublicKey !== void 0 ? Mode.AuthPsk : Mode.Psk;
    } else {
      mode = params.senderPublicKey !== void 0 ? Mode.Auth : Mode.Base;
    }
    return await this._keyScheduleR(mode, sharedSecret, params);
  }
  /**
   * Encrypts a message to a recipient.
   *
   * If the error occurred, throws `EncapError` | `MessageLimitReachedError` | `SealError` | `ValidationError`.
   *
   * @param params A set of parameters for building a sender encryption context.
   * @param pt A plain text as bytes to be encrypted.
   * @param aad Additional authenticated data as bytes fed by an application.
   * @returns A cipher text and an encapsulated key as bytes.
   * @throws {@link EncapError}, {@link MessageLimitReachedError}, {@link SealError}, {@link ValidationError}
   */
  async seal(params, pt, aad = EMPTY.buffer) {
    const ctx = await this.createSenderContext(params);
    return {
      ct: await ctx.seal(pt, aad),
      enc: ctx.enc
    };
  }
  /**
   * Decrypts a message from a sender.
   *
   * If the error occurred, throws `DecapError` | `DeserializeError` | `OpenError` | `ValidationError`.
   *
   * @param params A set of parameters for building a recipient encryption context.
   * @param ct An encrypted text as bytes to be decrypted.
   * @param aad Additional authenticated data as bytes fed by an application.
   * @returns A decrypted plain text as bytes.
   * @throws {@link DecapError}, {@link DeserializeError}, {@link OpenError}, {@link ValidationError}
   */
  async open(params, ct, aad = EMPTY.buffer) {
    const ctx = await this.createRecipientContext(params);
    return await ctx.open(ct, aad);
  }
  // private verifyPskInputs(mode: Mode, params: KeyScheduleParams) {
  //   const gotPsk = (params.psk !== undefined);
  //   const gotPskId = (params.psk !== undefined && params.psk.id.byteLength > 0);
  //   if (gotPsk !== gotPskId) {
  //     throw new Error('Inconsistent PSK inputs');
  //   }
  //   if (gotPsk && (mode === Mode.Base || mode === Mode.Auth)) {
  //     throw new Error('PSK input provided when not needed');
  //   }
  //   if (!gotPsk && (mode === Mode.Psk || mode === Mode.AuthPsk)) {
  //     throw new Error('Missing required PSK input');
  //   }
  //   return;
  // }
  async _keySchedule(mode, sharedSecret, params) {
    const pskId = params.psk === void 0 ? EMPTY : toUint8Array(params.psk.id);
    const pskIdHash = await this._kdf.labeledExtract(EMPTY, LABEL_PSK_ID_HASH, pskId);
    const info = params.info === void 0 ? EMPTY : toUint8Array(params.info);
    const infoHash = await this._kdf.labeledExtract(EMPTY, LABEL_INFO_HASH, info);
    const keyScheduleContext = new Uint8Array(1 + pskIdHash.byteLength + infoHash.byteLength);
    keyScheduleContext.set(new Uint8Array([mode]), 0);
    keyScheduleContext.set(new Uint8Array(pskIdHash), 1);
    keyScheduleContext.set(new Uint8Array(infoHash), 1 + pskIdHash.byteLength);
    const psk = params.psk === void 0 ? EMPTY : toUint8Array(params.psk.key);
    const ikm = this._kdf.buildLabeledIkm(LABEL_SECRET, psk);
    const exporterSecretInfo = this._kdf.buildLabeledInfo(LABEL_EXP, keyScheduleContext, this._kdf.hashSize);
    const exporterSecret = await this._kdf.extractAndExpand(sharedSecret, ikm, exporterSecretInfo, this._kdf.hashSize);
    if (this._aead.id === AeadId.ExportOnly) {
      return { aead: this._aead, exporterSecret };
    }
    const keyInfo = this._kdf.buildLabeledInfo(LABEL_KEY, keyScheduleContext, this._aead.keySize);
    const key = await this._kdf.extractAndExpand(sharedSecret, ikm, keyInfo, this._aead.keySize);
    const baseNonceInfo = this._kdf.buildLabeledInfo(LABEL_BASE_NONCE, keyScheduleContext, this._aead.nonceSize);
    const baseNonce = await this._kdf.extractAndExpand(sharedSecret, ikm, baseNonceInfo, this._aead.nonceSize);
    return {
      aead: this._aead,
      exporterSecret,
      key,
      baseNonce: new Uint8Array(baseNonce),
      seq: 0
    };
  }
  async _keyScheduleS(mode, sharedSecret, enc3, params) {
    const res = await this._keySchedule(mode, sharedSecret, params);
    if (res.key === void 0) {
      return new SenderExporterContextImpl(this._api, this._kdf, res.exporterSecret, enc3);
    }
    return new SenderContextImpl(this._api, this._kdf, res, enc3);
  }
  async _keyScheduleR(mode, sharedSecret, params) {
    const res = await this._keySchedule(mode, sharedSecret, params);
    if (res.key === void 0) {
      return new RecipientExporterContextImpl(this._api, this._kdf, res.exporterSecret);
    }
    return new RecipientContextImpl(this._api, this._kdf, res);
  }
  _validateInputLength(params) {
    if (params.info !== void 0 && params.info.byteLength > INFO_LENGTH_LIMIT) {
      throw new InvalidParamError("Too long info");
    }
    if (params.psk !== void 0) {
      if (params.psk.key.byteLength < MINIMUM_PSK_LENGTH) {
        throw new InvalidParamError(`PSK must have at least ${MINIMUM_PSK_LENGTH} bytes`);
      }
      if (params.psk.key.byteLength > INPUT_LENGTH_LIMIT) {
        throw new InvalidParamError("Too long psk.key");
      }
      if (params.psk.id.byteLength > INPUT_LENGTH_LIMIT) {
        throw new InvalidParamError("Too long psk.id");
      }
    }
    return;
  }
};

// ../ts/node_modules/@hpke/core/esm/src/native.js
var CipherSuite = class extends CipherSuiteNative {
};
var HkdfSha256 = class extends HkdfSha256Native {
};

// ../ts/node_modules/@hpke/core/esm/src/kems/dhkemPrimitives/x25519.js
var PKCS8_ALG_ID_X25519 = new Uint8Array([
  48,
  46,
  2,
  1,
  0,
  48,
  5,
  6,
  3,
  43,
  101,
  110,
  4,
  34,
  4,
  32
]);

// ../ts/node_modules/@hpke/core/esm/src/kems/dhkemPrimitives/x448.js
var PKCS8_ALG_ID_X448 = new Uint8Array([
  48,
  70,
  2,
  1,
  0,
  48,
  5,
  6,
  3,
  43,
  101,
  111,
  4,
  58,
  4,
  56
]);

// ../ts/node_modules/@hpke/chacha20poly1305/esm/src/chacha/utils.js
function abool(b) {
  if (typeof b !== "boolean")
    throw new Error(`boolean expected, not ${b}`);
}
var wrapCipher = /* @__NO_SIDE_EFFECTS__ */ (params, constructor) => {
  function wrappedCipher(key, ...args) {
    abytes(key, void 0, "key");
    if (!isLE) {
      throw new Error("Non little-endian hardware is not yet supported");
    }
    if (params.nonceLength !== void 0) {
      const nonce2 = args[0];
      abytes(nonce2, params.varSizeNonce ? void 0 : params.nonceLength, "nonce");
    }
    const tagl = params.tagLength;
    if (tagl && args[1] !== void 0)
      abytes(args[1], void 0, "AAD");
    const cipher = constructor(key, ...args);
    const checkOutput = (fnLength, output) => {
      if (output !== void 0) {
        if (fnLength !== 2)
          throw new Error("cipher output not supported");
        abytes(output, void 0, "output");
      }
    };
    let called = false;
    const wrCipher = {
      encrypt(data, output) {
        if (called) {
          throw new Error("cannot encrypt() twice with same key + nonce");
        }
        called = true;
        abytes(data);
        checkOutput(cipher.encrypt.length, output);
        return cipher.encrypt(data, output);
      },
      decrypt(data, output) {
        abytes(data);
        if (tagl && data.length < tagl) {
          throw new Error('"ciphertext" expected length bigger than tagLength=' + tagl);
        }
        checkOutput(cipher.decrypt.length, output);
        return cipher.decrypt(data, output);
      }
    };
    return wrCipher;
  }
  Object.assign(wrappedCipher, params);
  return wrappedCipher;
};
function checkOpts(defaults, opts) {
  if (opts == null || typeof opts !== "object") {
    throw new Error("options must be defined");
  }
  const merged = Object.assign(defaults, opts);
  return merged;
}
function equalBytes(a, b) {
  if (a.length !== b.length)
    return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++)
    diff |= a[i] ^ b[i];
  return diff === 0;
}
function getOutput(expectedLength, out, onlyAligned = true) {
  if (out === void 0)
    return new Uint8Array(expectedLength);
  if (out.length !== expectedLength) {
    throw new Error('"output" expected Uint8Array of length ' + expectedLength + ", got: " + out.length);
  }
  if (onlyAligned && !isAligned32(out)) {
    throw new Error("invalid output, must be aligned");
  }
  return out;
}
function u64Lengths(dataLength, aadLength, isLE4) {
  abool(isLE4);
  const num2 = new Uint8Array(16);
  const view = createView(num2);
  view.setBigUint64(0, numberToBigint(aadLength), isLE4);
  view.setBigUint64(8, numberToBigint(dataLength), isLE4);
  return num2;
}
function isAligned32(bytes2) {
  return bytes2.byteOffset % 4 === 0;
}

// ../ts/node_modules/@hpke/chacha20poly1305/esm/src/chacha/_arx.js
var _utf8ToBytes = (str) => Uint8Array.from(str.split("").map((c) => c.charCodeAt(0)));
var sigma16 = _utf8ToBytes("expand 16-byte k");
var sigma32 = _utf8ToBytes("expand 32-byte k");
var sigma16_32 = u32(sigma16);
var sigma32_32 = u32(sigma32);
function rotl(a, b) {
  return a << b | a >>> 32 - b;
}
function isAligned322(b) {
  return b.byteOffset % 4 === 0;
}
var BLOCK_LEN = 64;
var BLOCK_LEN32 = 16;
var MAX_COUNTER = 2 ** 32 - 1;
var U32_EMPTY = Uint32Array.of();
function runCipher(core, sigma, key, nonce2, data, output, counter, rounds) {
  const len = data.length;
  const block = new Uint8Array(BLOCK_LEN);
  const b32 = u32(block);
  const isAligned = isAligned322(data) && isAligned322(output);
  const d32 = isAligned ? u32(data) : U32_EMPTY;
  const o32 = isAligned ? u32(output) : U32_EMPTY;
  for (let pos = 0; pos < len; counter++) {
    core(sigma, key, nonce2, b32, counter, rounds);
    if (counter >= MAX_COUNTER)
      throw new Error("arx: counter overflow");
    const take = Math.min(BLOCK_LEN, len - pos);
    if (isAligned && take === BLOCK_LEN) {
      const pos32 = pos / 4;
      if (pos % 4 !== 0)
        throw new Error("arx: invalid block position");
      for (let j = 0, posj; j < BLOCK_LEN32; j++) {
        posj = pos32 + j;
        o32[posj] = d32[posj] ^ b32[j];
      }
      pos += BLOCK_LEN;
      continue;
    }
    for (let j = 0, posj; j < take; j++) {
      posj = pos + j;
      output[posj] = data[posj] ^ block[j];
    }
    pos += take;
  }
}
function createCipher(core, opts) {
  const { allowShortKeys, extendNonceFn, counterLength, counterRight, rounds } = checkOpts({
    allowShortKeys: false,
    counterLength: 8,
    counterRight: false,
    rounds: 20
  }, opts);
  if (typeof core !== "function")
    throw new Error("core must be a function");
  anumber(counterLength);
  anumber(rounds);
  abool(counterRight);
  abool(allowShortKeys);
  return (key, nonce2, data, output, counter = 0) => {
    abytes(key, void 0, "key");
    abytes(nonce2, void 0, "nonce");
    abytes(data, void 0, "data");
    const len = data.length;
    if (output === void 0)
      output = new Uint8Array(len);
    abytes(output, void 0, "output");
    anumber(counter);
    if (counter < 0 || counter >= MAX_COUNTER) {
      throw new Error("arx: counter overflow");
    }
    if (output.length < len) {
      throw new Error(`arx: output (${output.length}) is shorter than data (${len})`);
    }
    const toClean = [];
    const l = key.length;
    let k;
    let sigma;
    if (l === 32) {
      toClean.push(k = copyBytes(key));
      sigma = sigma32_32;
    } else if (l === 16 && allowShortKeys) {
      k = new Uint8Array(32);
      k.set(key);
      k.set(key, 16);
      sigma = sigma16_32;
      toClean.push(k);
    } else {
      abytes(key, 32, "arx key");
      throw new Error("invalid key size");
    }
    if (!isAligned322(nonce2))
      toClean.push(nonce2 = copyBytes(nonce2));
    const k32 = u32(k);
    if (extendNonceFn) {
      if (nonce2.length !== 24) {
        throw new Error(`arx: extended nonce must be 24 bytes`);
      }
      extendNonceFn(sigma, k32, u32(nonce2.subarray(0, 16)), k32);
      nonce2 = nonce2.subarray(16);
    }
    const nonceNcLen = 16 - counterLength;
    if (nonceNcLen !== nonce2.length) {
      throw new Error(`arx: nonce must be ${nonceNcLen} or 16 bytes`);
    }
    if (nonceNcLen !== 12) {
      const nc = new Uint8Array(12);
      nc.set(nonce2, counterRight ? 0 : 12 - nonce2.length);
      nonce2 = nc;
      toClean.push(nonce2);
    }
    const n32 = u32(nonce2);
    runCipher(core, sigma, k32, n32, data, output, counter, rounds);
    clean(...toClean);
    return output;
  };
}

// ../ts/node_modules/@hpke/chacha20poly1305/esm/src/chacha/_poly1305.js
function u8to16(a, i) {
  return a[i++] & 255 | (a[i++] & 255) << 8;
}
var Poly1305 = class {
  // Can be speed-up using BigUint64Array, at the cost of complexity
  constructor(key) {
    Object.defineProperty(this, "blockLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 16
    });
    Object.defineProperty(this, "outputLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 16
    });
    Object.defineProperty(this, "buffer", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(16)
    });
    Object.defineProperty(this, "r", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint16Array(10)
    });
    Object.defineProperty(this, "h", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint16Array(10)
    });
    Object.defineProperty(this, "pad", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint16Array(8)
    });
    Object.defineProperty(this, "pos", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "finished", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    key = copyBytes(abytes(key, 32, "key"));
    const t0 = u8to16(key, 0);
    const t1 = u8to16(key, 2);
    const t2 = u8to16(key, 4);
    const t3 = u8to16(key, 6);
    const t4 = u8to16(key, 8);
    const t5 = u8to16(key, 10);
    const t6 = u8to16(key, 12);
    const t7 = u8to16(key, 14);
    this.r[0] = t0 & 8191;
    this.r[1] = (t0 >>> 13 | t1 << 3) & 8191;
    this.r[2] = (t1 >>> 10 | t2 << 6) & 7939;
    this.r[3] = (t2 >>> 7 | t3 << 9) & 8191;
    this.r[4] = (t3 >>> 4 | t4 << 12) & 255;
    this.r[5] = t4 >>> 1 & 8190;
    this.r[6] = (t4 >>> 14 | t5 << 2) & 8191;
    this.r[7] = (t5 >>> 11 | t6 << 5) & 8065;
    this.r[8] = (t6 >>> 8 | t7 << 8) & 8191;
    this.r[9] = t7 >>> 5 & 127;
    for (let i = 0; i < 8; i++)
      this.pad[i] = u8to16(key, 16 + 2 * i);
  }
  process(data, offset, isLast = false) {
    const hibit = isLast ? 0 : 1 << 11;
    const { h: h2, r } = this;
    const r0 = r[0];
    const r1 = r[1];
    const r2 = r[2];
    const r3 = r[3];
    const r4 = r[4];
    const r5 = r[5];
    const r6 = r[6];
    const r7 = r[7];
    const r8 = r[8];
    const r9 = r[9];
    const t0 = u8to16(data, offset + 0);
    const t1 = u8to16(data, offset + 2);
    const t2 = u8to16(data, offset + 4);
    const t3 = u8to16(data, offset + 6);
    const t4 = u8to16(data, offset + 8);
    const t5 = u8to16(data, offset + 10);
    const t6 = u8to16(data, offset + 12);
    const t7 = u8to16(data, offset + 14);
    const h0 = h2[0] + (t0 & 8191);
    const h1 = h2[1] + ((t0 >>> 13 | t1 << 3) & 8191);
    const h22 = h2[2] + ((t1 >>> 10 | t2 << 6) & 8191);
    const h3 = h2[3] + ((t2 >>> 7 | t3 << 9) & 8191);
    const h4 = h2[4] + ((t3 >>> 4 | t4 << 12) & 8191);
    const h5 = h2[5] + (t4 >>> 1 & 8191);
    const h6 = h2[6] + ((t4 >>> 14 | t5 << 2) & 8191);
    const h7 = h2[7] + ((t5 >>> 11 | t6 << 5) & 8191);
    const h8 = h2[8] + ((t6 >>> 8 | t7 << 8) & 8191);
    const h9 = h2[9] + (t7 >>> 5 | hibit);
    let c = 0;
    let d0 = c + h0 * r0 + h1 * (5 * r9) + h22 * (5 * r8) + h3 * (5 * r7) + h4 * (5 * r6);
    c = d0 >>> 13;
    d0 &= 8191;
    d0 += h5 * (5 * r5) + h6 * (5 * r4) + h7 * (5 * r3) + h8 * (5 * r2) + h9 * (5 * r1);
    c += d0 >>> 13;
    d0 &= 8191;
    let d1 = c + h0 * r1 + h1 * r0 + h22 * (5 * r9) + h3 * (5 * r8) + h4 * (5 * r7);
    c = d1 >>> 13;
    d1 &= 8191;
    d1 += h5 * (5 * r6) + h6 * (5 * r5) + h7 * (5 * r4) + h8 * (5 * r3) + h9 * (5 * r2);
    c += d1 >>> 13;
    d1 &= 8191;
    let d2 = c + h0 * r2 + h1 * r1 + h22 * r0 + h3 * (5 * r9) + h4 * (5 * r8);
    c = d2 >>> 13;
    d2 &= 8191;
    d2 += h5 * (5 * r7) + h6 * (5 * r6) + h7 * (5 * r5) + h8 * (5 * r4) + h9 * (5 * r3);
    c += d2 >>> 13;
    d2 &= 8191;
    let d3 = c + h0 * r3 + h1 * r2 + h22 * r1 + h3 * r0 + h4 * (5 * r9);
    c = d3 >>> 13;
    d3 &= 8191;
    d3 += h5 * (5 * r8) + h6 * (5 * r7) + h7 * (5 * r6) + h8 * (5 * r5) + h9 * (5 * r4);
    c += d3 >>> 13;
    d3 &= 8191;
    let d4 = c + h0 * r4 + h1 * r3 + h22 * r2 + h3 * r1 + h4 * r0;
    c = d4 >>> 13;
    d4 &= 8191;
    d4 += h5 * (5 * r9) + h6 * (5 * r8) + h7 * (5 * r7) + h8 * (5 * r6) + h9 * (5 * r5);
    c += d4 >>> 13;
    d4 &= 8191;
    let d5 = c + h0 * r5 + h1 * r4 + h22 * r3 + h3 * r2 + h4 * r1;
    c = d5 >>> 13;
    d5 &= 8191;
    d5 += h5 * r0 + h6 * (5 * r9) + h7 * (5 * r8) + h8 * (5 * r7) + h9 * (5 * r6);
    c += d5 >>> 13;
    d5 &= 8191;
    let d6 = c + h0 * r6 + h1 * r5 + h22 * r4 + h3 * r3 + h4 * r2;
    c = d6 >>> 13;
    d6 &= 8191;
    d6 += h5 * r1 + h6 * r0 + h7 * (5 * r9) + h8 * (5 * r8) + h9 * (5 * r7);
    c += d6 >>> 13;
    d6 &= 8191;
    let d7 = c + h0 * r7 + h1 * r6 + h22 * r5 + h3 * r4 + h4 * r3;
    c = d7 >>> 13;
    d7 &= 8191;
    d7 += h5 * r2 + h6 * r1 + h7 * r0 + h8 * (5 * r9) + h9 * (5 * r8);
    c += d7 >>> 13;
    d7 &= 8191;
    let d8 = c + h0 * r8 + h1 * r7 + h22 * r6 + h3 * r5 + h4 * r4;
    c = d8 >>> 13;
    d8 &= 8191;
    d8 += h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * (5 * r9);
    c += d8 >>> 13;
    d8 &= 8191;
    let d9 = c + h0 * r9 + h1 * r8 + h22 * r7 + h3 * r6 + h4 * r5;
    c = d9 >>> 13;
    d9 &= 8191;
    d9 += h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0;
    c += d9 >>> 13;
    d9 &= 8191;
    c = (c << 2) + c | 0;
    c = c + d0 | 0;
    d0 = c & 8191;
    c = c >>> 13;
    d1 += c;
    h2[0] = d0;
    h2[1] = d1;
    h2[2] = d2;
    h2[3] = d3;
    h2[4] = d4;
    h2[5] = d5;
    h2[6] = d6;
    h2[7] = d7;
    h2[8] = d8;
    h2[9] = d9;
  }
  finalize() {
    const { h: h2, pad } = this;
    const g = new Uint16Array(10);
    let c = h2[1] >>> 13;
    h2[1] &= 8191;
    for (let i = 2; i < 10; i++) {
      h2[i] += c;
      c = h2[i] >>> 13;
      h2[i] &= 8191;
    }
    h2[0] += c * 5;
    c = h2[0] >>> 13;
    h2[0] &= 8191;
    h2[1] += c;
    c = h2[1] >>> 13;
    h2[1] &= 8191;
    h2[2] += c;
    g[0] = h2[0] + 5;
    c = g[0] >>> 13;
    g[0] &= 8191;
    for (let i = 1; i < 10; i++) {
      g[i] = h2[i] + c;
      c = g[i] >>> 13;
      g[i] &= 8191;
    }
    g[9] -= 1 << 13;
    let mask = (c ^ 1) - 1;
    for (let i = 0; i < 10; i++)
      g[i] &= mask;
    mask = ~mask;
    for (let i = 0; i < 10; i++)
      h2[i] = h2[i] & mask | g[i];
    h2[0] = (h2[0] | h2[1] << 13) & 65535;
    h2[1] = (h2[1] >>> 3 | h2[2] << 10) & 65535;
    h2[2] = (h2[2] >>> 6 | h2[3] << 7) & 65535;
    h2[3] = (h2[3] >>> 9 | h2[4] << 4) & 65535;
    h2[4] = (h2[4] >>> 12 | h2[5] << 1 | h2[6] << 14) & 65535;
    h2[5] = (h2[6] >>> 2 | h2[7] << 11) & 65535;
    h2[6] = (h2[7] >>> 5 | h2[8] << 8) & 65535;
    h2[7] = (h2[8] >>> 8 | h2[9] << 5) & 65535;
    let f = h2[0] + pad[0];
    h2[0] = f & 65535;
    for (let i = 1; i < 8; i++) {
      f = (h2[i] + pad[i] | 0) + (f >>> 16) | 0;
      h2[i] = f & 65535;
    }
    clean(g);
  }
  update(data) {
    aexists(this);
    abytes(data);
    data = copyBytes(data);
    const { buffer, blockLen } = this;
    const len = data.length;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(data, pos);
        continue;
      }
      buffer.set(data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(buffer, 0, false);
        this.pos = 0;
      }
    }
    return this;
  }
  destroy() {
    clean(this.h, this.r, this.buffer, this.pad);
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const { buffer, h: h2 } = this;
    let { pos } = this;
    if (pos) {
      buffer[pos++] = 1;
      for (; pos < 16; pos++)
        buffer[pos] = 0;
      this.process(buffer, 0, true);
    }
    this.finalize();
    let opos = 0;
    for (let i = 0; i < 8; i++) {
      out[opos++] = h2[i] >>> 0;
      out[opos++] = h2[i] >>> 8;
    }
    return out;
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
};
function wrapConstructorWithKey(hashCons) {
  const hashC = (msg, key) => hashCons(key).update(msg).digest();
  const tmp = hashCons(new Uint8Array(32));
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.create = (key) => hashCons(key);
  return hashC;
}
var poly1305 = /* @__PURE__ */ (() => wrapConstructorWithKey((key) => new Poly1305(key)))();

// ../ts/node_modules/@hpke/chacha20poly1305/esm/src/chacha/chacha.js
function chachaCore(s2, k, n, out, cnt, rounds = 20) {
  const y00 = s2[0], y01 = s2[1], y02 = s2[2], y03 = s2[3], y04 = k[0], y05 = k[1], y06 = k[2], y07 = k[3], y08 = k[4], y09 = k[5], y10 = k[6], y11 = k[7], y12 = cnt, y13 = n[0], y14 = n[1], y15 = n[2];
  let x00 = y00, x01 = y01, x02 = y02, x03 = y03, x04 = y04, x05 = y05, x06 = y06, x07 = y07, x08 = y08, x09 = y09, x10 = y10, x11 = y11, x12 = y12, x13 = y13, x14 = y14, x15 = y15;
  for (let r = 0; r < rounds; r += 2) {
    x00 = x00 + x04 | 0;
    x12 = rotl(x12 ^ x00, 16);
    x08 = x08 + x12 | 0;
    x04 = rotl(x04 ^ x08, 12);
    x00 = x00 + x04 | 0;
    x12 = rotl(x12 ^ x00, 8);
    x08 = x08 + x12 | 0;
    x04 = rotl(x04 ^ x08, 7);
    x01 = x01 + x05 | 0;
    x13 = rotl(x13 ^ x01, 16);
    x09 = x09 + x13 | 0;
    x05 = rotl(x05 ^ x09, 12);
    x01 = x01 + x05 | 0;
    x13 = rotl(x13 ^ x01, 8);
    x09 = x09 + x13 | 0;
    x05 = rotl(x05 ^ x09, 7);
    x02 = x02 + x06 | 0;
    x14 = rotl(x14 ^ x02, 16);
    x10 = x10 + x14 | 0;
    x06 = rotl(x06 ^ x10, 12);
    x02 = x02 + x06 | 0;
    x14 = rotl(x14 ^ x02, 8);
    x10 = x10 + x14 | 0;
    x06 = rotl(x06 ^ x10, 7);
    x03 = x03 + x07 | 0;
    x15 = rotl(x15 ^ x03, 16);
    x11 = x11 + x15 | 0;
    x07 = rotl(x07 ^ x11, 12);
    x03 = x03 + x07 | 0;
    x15 = rotl(x15 ^ x03, 8);
    x11 = x11 + x15 | 0;
    x07 = rotl(x07 ^ x11, 7);
    x00 = x00 + x05 | 0;
    x15 = rotl(x15 ^ x00, 16);
    x10 = x10 + x15 | 0;
    x05 = rotl(x05 ^ x10, 12);
    x00 = x00 + x05 | 0;
    x15 = rotl(x15 ^ x00, 8);
    x10 = x10 + x15 | 0;
    x05 = rotl(x05 ^ x10, 7);
    x01 = x01 + x06 | 0;
    x12 = rotl(x12 ^ x01, 16);
    x11 = x11 + x12 | 0;
    x06 = rotl(x06 ^ x11, 12);
    x01 = x01 + x06 | 0;
    x12 = rotl(x12 ^ x01, 8);
    x11 = x11 + x12 | 0;
    x06 = rotl(x06 ^ x11, 7);
    x02 = x02 + x07 | 0;
    x13 = rotl(x13 ^ x02, 16);
    x08 = x08 + x13 | 0;
    x07 = rotl(x07 ^ x08, 12);
    x02 = x02 + x07 | 0;
    x13 = rotl(x13 ^ x02, 8);
    x08 = x08 + x13 | 0;
    x07 = rotl(x07 ^ x08, 7);
    x03 = x03 + x04 | 0;
    x14 = rotl(x14 ^ x03, 16);
    x09 = x09 + x14 | 0;
    x04 = rotl(x04 ^ x09, 12);
    x03 = x03 + x04 | 0;
    x14 = rotl(x14 ^ x03, 8);
    x09 = x09 + x14 | 0;
    x04 = rotl(x04 ^ x09, 7);
  }
  let oi = 0;
  out[oi++] = y00 + x00 | 0;
  out[oi++] = y01 + x01 | 0;
  out[oi++] = y02 + x02 | 0;
  out[oi++] = y03 + x03 | 0;
  out[oi++] = y04 + x04 | 0;
  out[oi++] = y05 + x05 | 0;
  out[oi++] = y06 + x06 | 0;
  out[oi++] = y07 + x07 | 0;
  out[oi++] = y08 + x08 | 0;
  out[oi++] = y09 + x09 | 0;
  out[oi++] = y10 + x10 | 0;
  out[oi++] = y11 + x11 | 0;
  out[oi++] = y12 + x12 | 0;
  out[oi++] = y13 + x13 | 0;
  out[oi++] = y14 + x14 | 0;
  out[oi++] = y15 + x15 | 0;
}
var chacha20 = /* @__PURE__ */ createCipher(chachaCore, {
  counterRight: false,
  counterLength: 4,
  allowShortKeys: false
});
var ZEROS16 = /* @__PURE__ */ new Uint8Array(16);
var updatePadded = (h2, msg) => {
  h2.update(msg);
  const leftover = msg.length % 16;
  if (leftover)
    h2.update(ZEROS16.subarray(leftover));
};
var ZEROS32 = /* @__PURE__ */ new Uint8Array(32);
function computeTag(fn, key, nonce2, ciphertext, AAD) {
  if (AAD !== void 0)
    abytes(AAD, void 0, "AAD");
  const authKey = fn(key, nonce2, ZEROS32);
  const lengths = u64Lengths(ciphertext.length, AAD ? AAD.length : 0, true);
  const h2 = poly1305.create(authKey);
  if (AAD)
    updatePadded(h2, AAD);
  updatePadded(h2, ciphertext);
  h2.update(lengths);
  const res = h2.digest();
  clean(authKey, lengths);
  return res;
}
var _poly1305_aead = (xorStream) => (key, nonce2, AAD) => {
  const tagLength = 16;
  return {
    encrypt(plaintext, output) {
      const plength = plaintext.length;
      output = getOutput(plength + tagLength, output, false);
      output.set(plaintext);
      const oPlain = output.subarray(0, -tagLength);
      xorStream(key, nonce2, oPlain, oPlain, 1);
      const tag = computeTag(xorStream, key, nonce2, oPlain, AAD);
      output.set(tag, plength);
      clean(tag);
      return output;
    },
    decrypt(ciphertext, output) {
      output = getOutput(ciphertext.length - tagLength, output, false);
      const data = ciphertext.subarray(0, -tagLength);
      const passedTag = ciphertext.subarray(-tagLength);
      const tag = computeTag(xorStream, key, nonce2, data, AAD);
      if (!equalBytes(passedTag, tag))
        throw new Error("invalid tag");
      output.set(ciphertext.subarray(0, -tagLength));
      xorStream(key, nonce2, output, output, 1);
      clean(tag);
      return output;
    }
  };
};
var chacha20poly1305 = /* @__PURE__ */ wrapCipher({ blockSize: 64, nonceLength: 12, tagLength: 16 }, _poly1305_aead(chacha20));

// ../ts/node_modules/@hpke/chacha20poly1305/esm/src/chacha20Poly1305.js
var Chacha20Poly1305Context = class {
  constructor(key) {
    Object.defineProperty(this, "_key", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this._key = new Uint8Array(toArrayBuffer(key));
  }
  async seal(iv, data, aad) {
    return await this._seal(toArrayBuffer(iv), toArrayBuffer(data), toArrayBuffer(aad));
  }
  async open(iv, data, aad) {
    return await this._open(toArrayBuffer(iv), toArrayBuffer(data), toArrayBuffer(aad));
  }
  _seal(iv, data, aad) {
    return new Promise((resolve) => {
      const ret = chacha20poly1305(this._key, new Uint8Array(iv), new Uint8Array(aad)).encrypt(new Uint8Array(data));
      resolve(ret.buffer);
    });
  }
  _open(iv, data, aad) {
    return new Promise((resolve) => {
      const ret = chacha20poly1305(this._key, new Uint8Array(iv), new Uint8Array(aad)).decrypt(new Uint8Array(data));
      resolve(ret.buffer);
    });
  }
};
var Chacha20Poly1305 = class {
  constructor() {
    Object.defineProperty(this, "id", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: AeadId.Chacha20Poly1305
    });
    Object.defineProperty(this, "keySize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 32
    });
    Object.defineProperty(this, "nonceSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 12
    });
    Object.defineProperty(this, "tagSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 16
    });
  }
  createEncryptionContext(key) {
    return new Chacha20Poly1305Context(key);
  }
};

// ../ts/node_modules/mlkem/esm/src/errors.js
var MlKemError = class extends Error {
  constructor(e) {
    let message;
    if (e instanceof Error) {
      message = e.message;
    } else if (typeof e === "string") {
      message = e;
    } else {
      message = "";
    }
    super(message);
    this.name = this.constructor.name;
  }
};

// ../ts/node_modules/mlkem/esm/src/consts.js
var N = 256;
var Q = 3329;
var Q_INV = 62209;
var NTT_ZETAS = [
  2285,
  2571,
  2970,
  1812,
  1493,
  1422,
  287,
  202,
  3158,
  622,
  1577,
  182,
  962,
  2127,
  1855,
  1468,
  573,
  2004,
  264,
  383,
  2500,
  1458,
  1727,
  3199,
  2648,
  1017,
  732,
  608,
  1787,
  411,
  3124,
  1758,
  1223,
  652,
  2777,
  1015,
  2036,
  1491,
  3047,
  1785,
  516,
  3321,
  3009,
  2663,
  1711,
  2167,
  126,
  1469,
  2476,
  3239,
  3058,
  830,
  107,
  1908,
  3082,
  2378,
  2931,
  961,
  1821,
  2604,
  448,
  2264,
  677,
  2054,
  2226,
  430,
  555,
  843,
  2078,
  871,
  1550,
  105,
  422,
  587,
  177,
  3094,
  3038,
  2869,
  1574,
  1653,
  3083,
  778,
  1159,
  3182,
  2552,
  1483,
  2727,
  1119,
  1739,
  644,
  2457,
  349,
  418,
  329,
  3173,
  3254,
  817,
  1097,
  603,
  610,
  1322,
  2044,
  1864,
  384,
  2114,
  3193,
  1218,
  1994,
  2455,
  220,
  2142,
  1670,
  2144,
  1799,
  2051,
  794,
  1819,
  2475,
  2459,
  478,
  3221,
  3021,
  996,
  991,
  958,
  1869,
  1522,
  1628
];
var NTT_ZETAS_INV = [
  1701,
  1807,
  1460,
  2371,
  2338,
  2333,
  308,
  108,
  2851,
  870,
  854,
  1510,
  2535,
  1278,
  1530,
  1185,
  1659,
  1187,
  3109,
  874,
  1335,
  2111,
  136,
  1215,
  2945,
  1465,
  1285,
  2007,
  2719,
  2726,
  2232,
  2512,
  75,
  156,
  3e3,
  2911,
  2980,
  872,
  2685,
  1590,
  2210,
  602,
  1846,
  777,
  147,
  2170,
  2551,
  246,
  1676,
  1755,
  460,
  291,
  235,
  3152,
  2742,
  2907,
  3224,
  1779,
  2458,
  1251,
  2486,
  2774,
  2899,
  1103,
  1275,
  2652,
  1065,
  2881,
  725,
  1508,
  2368,
  398,
  951,
  247,
  1421,
  3222,
  2499,
  271,
  90,
  853,
  1860,
  3203,
  1162,
  1618,
  666,
  320,
  8,
  2813,
  1544,
  282,
  1838,
  1293,
  2314,
  552,
  2677,
  2106,
  1571,
  205,
  2918,
  1542,
  2721,
  2597,
  2312,
  681,
  130,
  1602,
  1871,
  829,
  2946,
  3065,
  1325,
  2756,
  1861,
  1474,
  1202,
  2367,
  3147,
  1752,
  2707,
  171,
  3127,
  3042,
  1907,
  1836,
  1517,
  359,
  758,
  1441
];

// ../ts/node_modules/mlkem/esm/src/sha3/_u64.js
var U32_MASK642 = 0xffffffffn;
var _32n2 = 32n;
function fromBig2(n, le = false) {
  if (le) {
    return { h: Number(n & U32_MASK642), l: Number(n >> _32n2 & U32_MASK642) };
  }
  return {
    h: Number(n >> _32n2 & U32_MASK642) | 0,
    l: Number(n & U32_MASK642) | 0
  };
}
function split2(lst, le = false) {
  const len = lst.length;
  const Ah = new Uint32Array(len);
  const Al = new Uint32Array(len);
  for (let i = 0; i < len; i++) {
    const { h: h2, l } = fromBig2(lst[i], le);
    [Ah[i], Al[i]] = [h2, l];
  }
  return [Ah, Al];
}
var rotlSH2 = (h2, l, s2) => h2 << s2 | l >>> 32 - s2;
var rotlSL2 = (h2, l, s2) => l << s2 | h2 >>> 32 - s2;
var rotlBH2 = (h2, l, s2) => l << s2 - 32 | h2 >>> 64 - s2;
var rotlBL2 = (h2, l, s2) => h2 << s2 - 32 | l >>> 64 - s2;

// ../ts/node_modules/mlkem/esm/src/sha3/utils.js
function isBytes2(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array";
}
function anumber2(n, title = "") {
  if (!Number.isSafeInteger(n) || n < 0) {
    const prefix = title && `"${title}" `;
    throw new Error(`${prefix}expected integer >0, got ${n}`);
  }
}
function abytes2(value, length, title = "") {
  const bytes2 = isBytes2(value);
  const len = value?.length;
  const needsLen = length !== void 0;
  if (!bytes2 || needsLen && len !== length) {
    const prefix = title && `"${title}" `;
    const ofLen = needsLen ? ` of length ${length}` : "";
    const got = bytes2 ? `length=${len}` : `type=${typeof value}`;
    throw new Error(prefix + "expected Uint8Array" + ofLen + ", got " + got);
  }
  return value;
}
function aexists2(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("Hash instance has been destroyed");
  if (checkFinished && instance.finished) {
    throw new Error("Hash#digest() has already been called");
  }
}
function aoutput2(out, instance) {
  abytes2(out, void 0, "digestInto() output");
  const min = instance.outputLen;
  if (out.length < min) {
    throw new Error('"digestInto() output" expected to be of length >=' + min);
  }
}
function u322(arr) {
  return new Uint32Array(arr.buffer, arr.byteOffset, Math.floor(arr.byteLength / 4));
}
function clean2(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
var isLE2 = /* @__PURE__ */ (() => new Uint8Array(new Uint32Array([287454020]).buffer)[0] === 68)();
function byteSwap(word) {
  return word << 24 & 4278190080 | word << 8 & 16711680 | word >>> 8 & 65280 | word >>> 24 & 255;
}
function byteSwap32(arr) {
  for (let i = 0; i < arr.length; i++) {
    arr[i] = byteSwap(arr[i]);
  }
  return arr;
}
var swap32IfBE2 = isLE2 ? (u) => u : byteSwap32;
function createHasher2(hashCons, info = {}) {
  const hashC = (msg, opts) => hashCons(opts).update(msg).digest();
  const tmp = hashCons(void 0);
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.create = (opts) => hashCons(opts);
  Object.assign(hashC, info);
  return Object.freeze(hashC);
}
var oidNist2 = (suffix) => ({
  oid: Uint8Array.from([
    6,
    9,
    96,
    134,
    72,
    1,
    101,
    3,
    4,
    2,
    suffix
  ])
});

// ../ts/node_modules/mlkem/esm/src/sha3/sha3.js
var _0n2 = 0n;
var _1n2 = 1n;
var _2n2 = 2n;
var _7n2 = 7n;
var _256n2 = 256n;
var _0x71n2 = 0x71n;
var SHA3_PI2 = [];
var SHA3_ROTL2 = [];
var _SHA3_IOTA2 = [];
for (let round = 0, R = _1n2, x = 1, y = 0; round < 24; round++) {
  [x, y] = [y, (2 * x + 3 * y) % 5];
  SHA3_PI2.push(2 * (5 * y + x));
  SHA3_ROTL2.push((round + 1) * (round + 2) / 2 % 64);
  let t = _0n2;
  for (let j = 0; j < 7; j++) {
    R = (R << _1n2 ^ (R >> _7n2) * _0x71n2) % _256n2;
    if (R & _2n2)
      t ^= _1n2 << (_1n2 << BigInt(j)) - _1n2;
  }
  _SHA3_IOTA2.push(t);
}
var IOTAS2 = split2(_SHA3_IOTA2, true);
var SHA3_IOTA_H2 = IOTAS2[0];
var SHA3_IOTA_L2 = IOTAS2[1];
var rotlH = (h2, l, s2) => s2 > 32 ? rotlBH2(h2, l, s2) : rotlSH2(h2, l, s2);
var rotlL = (h2, l, s2) => s2 > 32 ? rotlBL2(h2, l, s2) : rotlSL2(h2, l, s2);
function keccakP(s2, rounds = 24, B) {
  if (!B)
    B = new Uint32Array(10);
  for (let round = 24 - rounds; round < 24; round++) {
    for (let x = 0; x < 10; x++) {
      B[x] = s2[x] ^ s2[x + 10] ^ s2[x + 20] ^ s2[x + 30] ^ s2[x + 40];
    }
    {
      const Th2 = rotlH(B[2], B[3], 1) ^ B[8];
      const Tl2 = rotlL(B[2], B[3], 1) ^ B[9];
      s2[0] ^= Th2;
      s2[1] ^= Tl2;
      s2[10] ^= Th2;
      s2[11] ^= Tl2;
      s2[20] ^= Th2;
      s2[21] ^= Tl2;
      s2[30] ^= Th2;
      s2[31] ^= Tl2;
      s2[40] ^= Th2;
      s2[41] ^= Tl2;
    }
    {
      const Th2 = rotlH(B[4], B[5], 1) ^ B[0];
      const Tl2 = rotlL(B[4], B[5], 1) ^ B[1];
      s2[2] ^= Th2;
      s2[3] ^= Tl2;
      s2[12] ^= Th2;
      s2[13] ^= Tl2;
      s2[22] ^= Th2;
      s2[23] ^= Tl2;
      s2[32] ^= Th2;
      s2[33] ^= Tl2;
      s2[42] ^= Th2;
      s2[43] ^= Tl2;
    }
    {
      const Th2 = rotlH(B[6], B[7], 1) ^ B[2];
      const Tl2 = rotlL(B[6], B[7], 1) ^ B[3];
      s2[4] ^= Th2;
      s2[5] ^= Tl2;
      s2[14] ^= Th2;
      s2[15] ^= Tl2;
      s2[24] ^= Th2;
      s2[25] ^= Tl2;
      s2[34] ^= Th2;
      s2[35] ^= Tl2;
      s2[44] ^= Th2;
      s2[45] ^= Tl2;
    }
    {
      const Th2 = rotlH(B[8], B[9], 1) ^ B[4];
      const Tl2 = rotlL(B[8], B[9], 1) ^ B[5];
      s2[6] ^= Th2;
      s2[7] ^= Tl2;
      s2[16] ^= Th2;
      s2[17] ^= Tl2;
      s2[26] ^= Th2;
      s2[27] ^= Tl2;
      s2[36] ^= Th2;
      s2[37] ^= Tl2;
      s2[46] ^= Th2;
      s2[47] ^= Tl2;
    }
    {
      const Th2 = rotlH(B[0], B[1], 1) ^ B[6];
      const Tl2 = rotlL(B[0], B[1], 1) ^ B[7];
      s2[8] ^= Th2;
      s2[9] ^= Tl2;
      s2[18] ^= Th2;
      s2[19] ^= Tl2;
      s2[28] ^= Th2;
      s2[29] ^= Tl2;
      s2[38] ^= Th2;
      s2[39] ^= Tl2;
      s2[48] ^= Th2;
      s2[49] ^= Tl2;
    }
    let curH = s2[2];
    let curL = s2[3];
    let Th, Tl;
    Th = rotlSH2(curH, curL, 1);
    Tl = rotlSL2(curH, curL, 1);
    curH = s2[20];
    curL = s2[21];
    s2[20] = Th;
    s2[21] = Tl;
    Th = rotlSH2(curH, curL, 3);
    Tl = rotlSL2(curH, curL, 3);
    curH = s2[14];
    curL = s2[15];
    s2[14] = Th;
    s2[15] = Tl;
    Th = rotlSH2(curH, curL, 6);
    Tl = rotlSL2(curH, curL, 6);
    curH = s2[22];
    curL = s2[23];
    s2[22] = Th;
    s2[23] = Tl;
    Th = rotlSH2(curH, curL, 10);
    Tl = rotlSL2(curH, curL, 10);
    curH = s2[34];
    curL = s2[35];
    s2[34] = Th;
    s2[35] = Tl;
    Th = rotlSH2(curH, curL, 15);
    Tl = rotlSL2(curH, curL, 15);
    curH = s2[36];
    curL = s2[37];
    s2[36] = Th;
    s2[37] = Tl;
    Th = rotlSH2(curH, curL, 21);
    Tl = rotlSL2(curH, curL, 21);
    curH = s2[6];
    curL = s2[7];
    s2[6] = Th;
    s2[7] = Tl;
    Th = rotlSH2(curH, curL, 28);
    Tl = rotlSL2(curH, curL, 28);
    curH = s2[10];
    curL = s2[11];
    s2[10] = Th;
    s2[11] = Tl;
    Th = rotlBH2(curH, curL, 36);
    Tl = rotlBL2(curH, curL, 36);
    curH = s2[32];
    curL = s2[33];
    s2[32] = Th;
    s2[33] = Tl;
    Th = rotlBH2(curH, curL, 45);
    Tl = rotlBL2(curH, curL, 45);
    curH = s2[16];
    curL = s2[17];
    s2[16] = Th;
    s2[17] = Tl;
    Th = rotlBH2(curH, curL, 55);
    Tl = rotlBL2(curH, curL, 55);
    curH = s2[42];
    curL = s2[43];
    s2[42] = Th;
    s2[43] = Tl;
    Th = rotlSH2(curH, curL, 2);
    Tl = rotlSL2(curH, curL, 2);
    curH = s2[48];
    curL = s2[49];
    s2[48] = Th;
    s2[49] = Tl;
    Th = rotlSH2(curH, curL, 14);
    Tl = rotlSL2(curH, curL, 14);
    curH = s2[8];
    curL = s2[9];
    s2[8] = Th;
    s2[9] = Tl;
    Th = rotlSH2(curH, curL, 27);
    Tl = rotlSL2(curH, curL, 27);
    curH = s2[30];
    curL = s2[31];
    s2[30] = Th;
    s2[31] = Tl;
    Th = rotlBH2(curH, curL, 41);
    Tl = rotlBL2(curH, curL, 41);
    curH = s2[46];
    curL = s2[47];
    s2[46] = Th;
    s2[47] = Tl;
    Th = rotlBH2(curH, curL, 56);
    Tl = rotlBL2(curH, curL, 56);
    curH = s2[38];
    curL = s2[39];
    s2[38] = Th;
    s2[39] = Tl;
    Th = rotlSH2(curH, curL, 8);
    Tl = rotlSL2(curH, curL, 8);
    curH = s2[26];
    curL = s2[27];
    s2[26] = Th;
    s2[27] = Tl;
    Th = rotlSH2(curH, curL, 25);
    Tl = rotlSL2(curH, curL, 25);
    curH = s2[24];
    curL = s2[25];
    s2[24] = Th;
    s2[25] = Tl;
    Th = rotlBH2(curH, curL, 43);
    Tl = rotlBL2(curH, curL, 43);
    curH = s2[4];
    curL = s2[5];
    s2[4] = Th;
    s2[5] = Tl;
    Th = rotlBH2(curH, curL, 62);
    Tl = rotlBL2(curH, curL, 62);
    curH = s2[40];
    curL = s2[41];
    s2[40] = Th;
    s2[41] = Tl;
    Th = rotlSH2(curH, curL, 18);
    Tl = rotlSL2(curH, curL, 18);
    curH = s2[28];
    curL = s2[29];
    s2[28] = Th;
    s2[29] = Tl;
    Th = rotlBH2(curH, curL, 39);
    Tl = rotlBL2(curH, curL, 39);
    curH = s2[44];
    curL = s2[45];
    s2[44] = Th;
    s2[45] = Tl;
    Th = rotlBH2(curH, curL, 61);
    Tl = rotlBL2(curH, curL, 61);
    curH = s2[18];
    curL = s2[19];
    s2[18] = Th;
    s2[19] = Tl;
    Th = rotlSH2(curH, curL, 20);
    Tl = rotlSL2(curH, curL, 20);
    curH = s2[12];
    curL = s2[13];
    s2[12] = Th;
    s2[13] = Tl;
    Th = rotlBH2(curH, curL, 44);
    Tl = rotlBL2(curH, curL, 44);
    s2[2] = Th;
    s2[3] = Tl;
    for (let y = 0; y < 50; y += 10) {
      B[0] = s2[y];
      B[1] = s2[y + 1];
      B[2] = s2[y + 2];
      B[3] = s2[y + 3];
      B[4] = s2[y + 4];
      B[5] = s2[y + 5];
      B[6] = s2[y + 6];
      B[7] = s2[y + 7];
      B[8] = s2[y + 8];
      B[9] = s2[y + 9];
      s2[y + 0] ^= ~B[2] & B[4];
      s2[y + 1] ^= ~B[3] & B[5];
      s2[y + 2] ^= ~B[4] & B[6];
      s2[y + 3] ^= ~B[5] & B[7];
      s2[y + 4] ^= ~B[6] & B[8];
      s2[y + 5] ^= ~B[7] & B[9];
      s2[y + 6] ^= ~B[8] & B[0];
      s2[y + 7] ^= ~B[9] & B[1];
      s2[y + 8] ^= ~B[0] & B[2];
      s2[y + 9] ^= ~B[1] & B[3];
    }
    s2[0] ^= SHA3_IOTA_H2[round];
    s2[1] ^= SHA3_IOTA_L2[round];
  }
}
var Keccak = class _Keccak {
  // NOTE: we accept arguments in bytes instead of bits here.
  constructor(blockLen, suffix, outputLen, enableXOF = false, rounds = 24) {
    Object.defineProperty(this, "state", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "pos", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "posOut", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "finished", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    Object.defineProperty(this, "state32", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "destroyed", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    Object.defineProperty(this, "_B", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint32Array(10)
    });
    Object.defineProperty(this, "blockLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "suffix", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "outputLen", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "enableXOF", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    Object.defineProperty(this, "rounds", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this.blockLen = blockLen;
    this.suffix = suffix;
    this.outputLen = outputLen;
    this.enableXOF = enableXOF;
    this.rounds = rounds;
    anumber2(outputLen, "outputLen");
    if (!(0 < blockLen && blockLen < 200)) {
      throw new Error("only keccak-f1600 function is supported");
    }
    this.state = new Uint8Array(200);
    this.state32 = u322(this.state);
  }
  clone() {
    return this._cloneInto();
  }
  /** Resets instance to initial (empty) state for reuse. */
  reset() {
    this.state.fill(0);
    this.pos = 0;
    this.posOut = 0;
    this.finished = false;
    this.destroyed = false;
  }
  keccak() {
    swap32IfBE2(this.state32);
    keccakP(this.state32, this.rounds, this._B);
    swap32IfBE2(this.state32);
    this.posOut = 0;
    this.pos = 0;
  }
  update(data) {
    aexists2(this);
    abytes2(data);
    return this.updateUnsafe(data);
  }
  /** Like update(), but skips validation. Caller must ensure valid state and input. */
  updateUnsafe(data) {
    const { blockLen, state } = this;
    const len = data.length;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      for (let i = 0; i < take; i++)
        state[this.pos++] ^= data[pos++];
      if (this.pos === blockLen)
        this.keccak();
    }
    return this;
  }
  finish() {
    if (this.finished)
      return;
    this.finished = true;
    const { state, suffix, pos, blockLen } = this;
    state[pos] ^= suffix;
    if ((suffix & 128) !== 0 && pos === blockLen - 1)
      this.keccak();
    state[blockLen - 1] ^= 128;
    this.keccak();
  }
  writeInto(out) {
    aexists2(this, false);
    abytes2(out);
    return this.writeIntoUnsafe(out);
  }
  /** Like writeInto(), but skips validation. Caller must ensure valid state and output. */
  writeIntoUnsafe(out) {
    this.finish();
    const bufferOut = this.state;
    const { blockLen } = this;
    for (let pos = 0, len = out.length; pos < len; ) {
      if (this.posOut >= blockLen)
        this.keccak();
      const take = Math.min(blockLen - this.posOut, len - pos);
      out.set(bufferOut.subarray(this.posOut, this.posOut + take), pos);
      this.posOut += take;
      pos += take;
    }
    return out;
  }
  xofInto(out) {
    if (!this.enableXOF) {
      throw new Error("XOF is not possible for this instance");
    }
    return this.writeInto(out);
  }
  xof(bytes2) {
    anumber2(bytes2);
    return this.xofInto(new Uint8Array(bytes2));
  }
  digestInto(out) {
    aoutput2(out, this);
    if (this.finished)
      throw new Error("digest() was already called");
    this.writeInto(out);
    this.destroy();
    return out;
  }
  digest() {
    return this.digestInto(new Uint8Array(this.outputLen));
  }
  destroy() {
    this.destroyed = true;
    clean2(this.state);
  }
  _cloneInto(to) {
    const { blockLen, suffix, outputLen, rounds, enableXOF } = this;
    to ||= new _Keccak(blockLen, suffix, outputLen, enableXOF, rounds);
    to.state32.set(this.state32);
    to.pos = this.pos;
    to.posOut = this.posOut;
    to.finished = this.finished;
    to.rounds = rounds;
    to.suffix = suffix;
    to.outputLen = outputLen;
    to.enableXOF = enableXOF;
    to.destroyed = this.destroyed;
    return to;
  }
};
var genKeccak = (suffix, blockLen, outputLen, info = {}) => createHasher2(() => new Keccak(blockLen, suffix, outputLen), info);
var sha3_2562 = /* @__PURE__ */ genKeccak(
  6,
  136,
  32,
  /* @__PURE__ */ oidNist2(8)
);
var genShake = (suffix, blockLen, outputLen, info = {}) => createHasher2((opts = {}) => new Keccak(blockLen, suffix, opts.dkLen === void 0 ? outputLen : opts.dkLen, true), info);
var shake2562 = /* @__PURE__ */ genShake(31, 136, 32, /* @__PURE__ */ oidNist2(12));

// ../ts/node_modules/mlkem/esm/_dnt.shims.js
var dntGlobals2 = {};
var dntGlobalThis2 = createMergeProxy2(globalThis, dntGlobals2);
function createMergeProxy2(baseObj, extObj) {
  return new Proxy(baseObj, {
    get(_target, prop, _receiver) {
      if (prop in extObj) {
        return extObj[prop];
      } else {
        return baseObj[prop];
      }
    },
    set(_target, prop, value) {
      if (prop in extObj) {
        delete extObj[prop];
      }
      baseObj[prop] = value;
      return true;
    },
    deleteProperty(_target, prop) {
      let success = false;
      if (prop in extObj) {
        delete extObj[prop];
        success = true;
      }
      if (prop in baseObj) {
        delete baseObj[prop];
        success = true;
      }
      return success;
    },
    ownKeys(_target) {
      const baseKeys = Reflect.ownKeys(baseObj);
      const extKeys = Reflect.ownKeys(extObj);
      const extKeysSet = new Set(extKeys);
      return [...baseKeys.filter((k) => !extKeysSet.has(k)), ...extKeys];
    },
    defineProperty(_target, prop, desc) {
      if (prop in extObj) {
        delete extObj[prop];
      }
      Reflect.defineProperty(baseObj, prop, desc);
      return true;
    },
    getOwnPropertyDescriptor(_target, prop) {
      if (prop in extObj) {
        return Reflect.getOwnPropertyDescriptor(extObj, prop);
      } else {
        return Reflect.getOwnPropertyDescriptor(baseObj, prop);
      }
    },
    has(_target, prop) {
      return prop in extObj || prop in baseObj;
    }
  });
}

// ../ts/node_modules/mlkem/esm/src/utils.js
function byte(n) {
  return n & 255;
}
function int16(n) {
  return n << 16 >> 16;
}
function uint16(n) {
  return n & 65535;
}
function constantTimeCompare(x, y) {
  if (x.length != y.length) {
    return 0;
  }
  let v = 0;
  for (let i = 0; i < x.length; i++) {
    v |= x[i] ^ y[i];
  }
  let z = ~v & 255;
  z &= z >> 4;
  z &= z >> 2;
  z &= z >> 1;
  return z & 1;
}
function equalUint8Array(x, y) {
  if (x.length != y.length) {
    return false;
  }
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      return false;
    }
  }
  return true;
}
async function loadCrypto2() {
  if (typeof dntGlobalThis2 !== "undefined" && globalThis.crypto !== void 0) {
    return globalThis.crypto;
  }
  try {
    const { webcrypto } = await import("crypto");
    return webcrypto;
  } catch (_e) {
    throw new Error("failed to load Crypto");
  }
}
function byteopsLoad32(x, o = 0) {
  return (x[o] | x[o + 1] << 8 | x[o + 2] << 16 | x[o + 3] << 24) >>> 0;
}

// ../ts/node_modules/mlkem/esm/src/mlKemBase.js
var MlKemBase = class {
  /**
   * Creates a new instance of the MlKemBase class.
   */
  constructor() {
    Object.defineProperty(this, "_api", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_k", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_du", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_dv", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_eta1", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_eta2", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_skSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_pkSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_compressedUSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_compressedVSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 0
    });
    Object.defineProperty(this, "_poolG", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_poolH", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_poolKdf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_poolXof", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_poolPrf1", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_poolPrf2", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_bufG", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(64)
    });
    Object.defineProperty(this, "_bufH", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(32)
    });
    Object.defineProperty(this, "_bufKdf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(32)
    });
    Object.defineProperty(this, "_bufXof", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(672)
    });
    Object.defineProperty(this, "_bufPrf1", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_bufPrf2", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_nonceBuf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(1)
    });
    Object.defineProperty(this, "_xofSeed", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: new Uint8Array(34)
    });
    Object.defineProperty(this, "_kBuf", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_matrixA", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_noiseVecs", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_polyVec", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_bufPkCheck", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_bufCt", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
  }
  _initPool() {
    this._poolG = new Keccak(72, 6, 64);
    this._poolH = new Keccak(136, 6, 32);
    this._poolKdf = new Keccak(136, 31, 32, true);
    this._poolXof = new Keccak(168, 31, 672, true);
    const prf1Len = this._eta1 * N / 4;
    this._poolPrf1 = new Keccak(136, 31, prf1Len, true);
    this._bufPrf1 = new Uint8Array(prf1Len);
    const prf2Len = this._eta2 * N / 4;
    this._poolPrf2 = new Keccak(136, 31, prf2Len, true);
    this._bufPrf2 = new Uint8Array(prf2Len);
    this._kBuf = new Uint8Array([this._k]);
    this._matrixA = new Array(this._k);
    for (let i = 0; i < this._k; i++) {
      this._matrixA[i] = new Array(this._k);
      for (let j = 0; j < this._k; j++) {
        this._matrixA[i][j] = new Int16Array(N);
      }
    }
    const maxNoise = 2 * this._k + 1;
    this._noiseVecs = new Array(maxNoise);
    for (let i = 0; i < maxNoise; i++) {
      this._noiseVecs[i] = new Int16Array(N);
    }
    this._polyVec = new Array(this._k);
    for (let i = 0; i < this._k; i++) {
      this._polyVec[i] = new Int16Array(N);
    }
    this._bufPkCheck = new Uint8Array(384 * this._k);
    this._bufCt = new Uint8Array(this._compressedUSize + this._compressedVSize);
  }
  _zeroPool() {
    this._bufG.fill(0);
    this._bufH.fill(0);
    this._bufKdf.fill(0);
    this._bufXof.fill(0);
    this._bufPrf1.fill(0);
    this._bufPrf2.fill(0);
    this._nonceBuf[0] = 0;
    this._xofSeed.fill(0);
    for (let i = 0; i < this._k; i++) {
      for (let j = 0; j < this._k; j++) {
        this._matrixA[i][j].fill(0);
      }
    }
    for (let i = 0; i < this._noiseVecs.length; i++) {
      this._noiseVecs[i].fill(0);
    }
    for (let i = 0; i < this._k; i++) {
      this._polyVec[i].fill(0);
    }
    this._bufPkCheck.fill(0);
    this._bufCt.fill(0);
    this._poolG.reset();
    this._poolH.reset();
    this._poolKdf.reset();
    this._poolXof.reset();
    this._poolPrf1.reset();
    this._poolPrf2.reset();
  }
  // Serialize polynomial into byte buffer at offset (eliminates intermediate Uint8Array(384))
  _polyToBytes(out, outOffset, a) {
    let t0, t1;
    for (let i = 0; i < N / 2; i++) {
      t0 = a[2 * i] - Q;
      t0 += t0 >> 31 & Q;
      t1 = a[2 * i + 1] - Q;
      t1 += t1 >> 31 & Q;
      out[outOffset + 3 * i + 0] = byte(t0);
      out[outOffset + 3 * i + 1] = byte(t0 >> 8) | byte(t1 << 4);
      out[outOffset + 3 * i + 2] = byte(t1 >> 4);
    }
  }
  // Deserialize bytes into polynomial (eliminates intermediate Int16Array(N))
  _polyFromBytes(out, a, aOffset) {
    for (let i = 0; i < N / 2; i++) {
      out[2 * i] = int16((uint16(a[aOffset + 3 * i + 0]) >> 0 | uint16(a[aOffset + 3 * i + 1]) << 8) & 4095);
      out[2 * i + 1] = int16((uint16(a[aOffset + 3 * i + 1]) >> 4 | uint16(a[aOffset + 3 * i + 2]) << 4) & 4095);
    }
  }
  // Hash G: SHA3-512
  _g(a, b) {
    this._poolG.reset();
    this._poolG.updateUnsafe(a);
    if (b !== void 0)
      this._poolG.updateUnsafe(b);
    this._poolG.writeIntoUnsafe(this._bufG);
    return [this._bufG.subarray(0, 32), this._bufG.subarray(32, 64)];
  }
  // Hash H: SHA3-256
  _h(msg) {
    this._poolH.reset();
    this._poolH.updateUnsafe(msg).writeIntoUnsafe(this._bufH);
    return this._bufH;
  }
  // KDF: SHAKE256(dkLen=32)
  _kdf(a, b) {
    this._poolKdf.reset();
    this._poolKdf.updateUnsafe(a);
    if (b !== void 0)
      this._poolKdf.updateUnsafe(b);
    this._poolKdf.writeIntoUnsafe(this._bufKdf);
    return this._bufKdf;
  }
  // XOF: SHAKE128(dkLen=672)
  _xof(seed) {
    this._poolXof.reset();
    this._poolXof.updateUnsafe(seed).writeIntoUnsafe(this._bufXof);
    return this._bufXof;
  }
  // PRF for eta1 noise sampling: SHAKE256(dkLen=eta1*N/4)
  _prf1(sigma, nonce2) {
    this._nonceBuf[0] = nonce2;
    this._poolPrf1.reset();
    this._poolPrf1.updateUnsafe(sigma).updateUnsafe(this._nonceBuf).writeIntoUnsafe(this._bufPrf1);
    return this._bufPrf1;
  }
  // PRF for eta2 noise sampling: SHAKE256(dkLen=eta2*N/4)
  _prf2(sigma, nonce2) {
    this._nonceBuf[0] = nonce2;
    this._poolPrf2.reset();
    this._poolPrf2.updateUnsafe(sigma).updateUnsafe(this._nonceBuf).writeIntoUnsafe(this._bufPrf2);
    return this._bufPrf2;
  }
  _generateKeyPairCore() {
    try {
      const rnd = new Uint8Array(64);
      this._api.getRandomValues(rnd);
      return this._deriveKeyPair(rnd);
    } finally {
      this._zeroPool();
    }
  }
  _deriveKeyPairCore(seed) {
    try {
      if (seed.byteLength !== 64) {
        throw new Error("seed must be 64 bytes in length");
      }
      return this._deriveKeyPair(seed);
    } finally {
      this._zeroPool();
    }
  }
  _encapCore(pk, seed) {
    try {
      if (pk.length !== 384 * this._k + 32) {
        throw new Error("invalid encapsulation key");
      }
      const m = this._getSeed(seed);
      const [k, r] = this._g(m, this._h(pk));
      this._encap(pk, m, r);
      return [this._bufCt.slice(), k.slice()];
    } finally {
      this._zeroPool();
    }
  }
  _decapCore(ct, sk) {
    try {
      if (ct.byteLength !== this._compressedUSize + this._compressedVSize) {
        throw new Error("Invalid ct size");
      }
      if (sk.length !== 768 * this._k + 96) {
        throw new Error("Invalid decapsulation key");
      }
      const sk2 = sk.subarray(0, this._skSize);
      const pk = sk.subarray(this._skSize, this._skSize + this._pkSize);
      const hpk = sk.subarray(this._skSize + this._pkSize, this._skSize + this._pkSize + 32);
      const z = sk.subarray(this._skSize + this._pkSize + 32, this._skSize + this._pkSize + 64);
      const m2 = this._decap(ct, sk2);
      const [k2, r2] = this._g(m2, hpk);
      const kBar = this._kdf(z, ct);
      this._encap(pk, m2, r2);
      return constantTimeCompare(ct, this._bufCt) === 1 ? k2.slice() : kBar.slice();
    } finally {
      this._zeroPool();
    }
  }
  /**
   * Sets up the MlKemBase instance by loading the necessary crypto library.
   * If the crypto library is already loaded, this method does nothing.
   * @returns {Promise<void>} A promise that resolves when the setup is complete.
   */
  async _setup() {
    if (this._api !== void 0) {
      return;
    }
    this._api = await loadCrypto2();
  }
  /**
   * Returns a Uint8Array seed for cryptographic operations.
   * If no seed is provided, a random seed of length 32 bytes is generated.
   * If a seed is provided, it must be exactly 32 bytes in length.
   *
   * @param seed - Optional seed for cryptographic operations.
   * @returns A Uint8Array seed.
   * @throws Error if the provided seed is not 32 bytes in length.
   */
  _getSeed(seed) {
    if (seed == void 0) {
      const s2 = new Uint8Array(32);
      this._api.getRandomValues(s2);
      return s2;
    }
    if (seed.byteLength !== 32) {
      throw new Error("seed must be 32 bytes in length");
    }
    return seed;
  }
  /**
   * Derives a key pair from a given seed.
   *
   * @param seed - The seed used for key derivation.
   * @returns An array containing the public key and secret key.
   */
  _deriveKeyPair(seed) {
    const cpaSeed = seed.subarray(0, 32);
    const z = seed.subarray(32, 64);
    const [pk, skBody] = this._deriveCpaKeyPair(cpaSeed);
    const pkh = this._h(pk);
    const sk = new Uint8Array(this._skSize + this._pkSize + 64);
    sk.set(skBody, 0);
    sk.set(pk, this._skSize);
    sk.set(pkh, this._skSize + this._pkSize);
    sk.set(z, this._skSize + this._pkSize + 32);
    return [pk, sk];
  }
  // indcpaKeyGen generates public and private keys for the CPA-secure
  // public-key encryption scheme underlying ML-KEM.
  /**
   * Derives a CPA key pair using the provided CPA seed.
   *
   * @param cpaSeed - The CPA seed used for key derivation.
   * @returns An array containing the public key and private key.
   */
  _deriveCpaKeyPair(cpaSeed) {
    const [publicSeed, noiseSeed] = this._g(cpaSeed, this._kBuf);
    const a = this._sampleMatrix(publicSeed, false);
    const s2 = this._sampleNoise1(noiseSeed, 0, this._k);
    const e = this._sampleNoise1(noiseSeed, this._k, this._k);
    for (let i = 0; i < this._k; i++) {
      s2[i] = ntt(s2[i]);
      s2[i] = reduce(s2[i]);
      e[i] = ntt(e[i]);
    }
    const pk = new Array(this._k);
    for (let i = 0; i < this._k; i++) {
      pk[i] = polyToMont(multiply(a[i], s2));
      pk[i] = add2(pk[i], e[i]);
      pk[i] = reduce(pk[i]);
    }
    const pubKey = new Uint8Array(this._pkSize);
    for (let i = 0; i < this._k; i++) {
      this._polyToBytes(pubKey, i * 384, pk[i]);
    }
    pubKey.set(publicSeed, this._skSize);
    const privKey = new Uint8Array(this._skSize);
    for (let i = 0; i < this._k; i++) {
      this._polyToBytes(privKey, i * 384, s2[i]);
    }
    return [pubKey, privKey];
  }
  // _encap is the encapsulation function of the CPA-secure
  // public-key encryption scheme underlying ML-KEM.
  /**
   * Encapsulates a message using the ML-KEM encryption scheme.
   *
   * @param pk - The public key.
   * @param msg - The message to be encapsulated.
   * @param seed - The seed used for generating random values.
   * @returns The encapsulated message as a Uint8Array.
   */
  _encap(pk, msg, seed) {
    const tHat = this._polyVec;
    const pkCheck = this._bufPkCheck;
    for (let i = 0; i < this._k; i++) {
      this._polyFromBytes(tHat[i], pk, i * 384);
      this._polyToBytes(pkCheck, i * 384, tHat[i]);
    }
    if (!equalUint8Array(pk.subarray(0, pkCheck.length), pkCheck)) {
      throw new Error("invalid encapsulation key");
    }
    const rho = pk.subarray(this._skSize);
    const a = this._sampleMatrix(rho, true);
    const r = this._sampleNoise1(seed, 0, this._k);
    const e1 = this._sampleNoise2(seed, this._k, this._k);
    const e2 = this._sampleNoise2(seed, this._k * 2, 1)[0];
    for (let i = 0; i < this._k; i++) {
      r[i] = ntt(r[i]);
      r[i] = reduce(r[i]);
    }
    const u = new Array(this._k);
    for (let i = 0; i < this._k; i++) {
      u[i] = multiply(a[i], r);
      u[i] = nttInverse(u[i]);
      u[i] = add2(u[i], e1[i]);
      u[i] = reduce(u[i]);
    }
    const m = polyFromMsg(msg);
    let v = multiply(tHat, r);
    v = nttInverse(v);
    v = add2(v, e2);
    v = add2(v, m);
    v = reduce(v);
    this._compressU(this._bufCt.subarray(0, this._compressedUSize), u);
    this._compressV(this._bufCt.subarray(this._compressedUSize), v);
    return this._bufCt;
  }
  // indcpaDecrypt is the decryption function of the CPA-secure
  // public-key encryption scheme underlying ML-KEM.
  /**
   * Decapsulates the ciphertext using the provided secret key.
   *
   * @param ct - The ciphertext to be decapsulated.
   * @param sk - The secret key used for decapsulation.
   * @returns The decapsulated message as a Uint8Array.
   */
  _decap(ct, sk) {
    const u = this._decompressU(ct.subarray(0, this._compressedUSize));
    const v = this._decompressV(ct.subarray(this._compressedUSize));
    const privateKeyPolyvec = this._polyvecFromBytes(sk);
    for (let i = 0; i < this._k; i++) {
      u[i] = ntt(u[i]);
    }
    let mp = multiply(privateKeyPolyvec, u);
    mp = nttInverse(mp);
    mp = subtract(v, mp);
    mp = reduce(mp);
    return polyToMsg(mp);
  }
  // generateMatrixA deterministically generates a matrix `A` (or the transpose of `A`)
  // from a seed. Entries of the matrix are polynomials that look uniformly random.
  // Performs rejection sampling on the output of an extendable-output function (XOF).
  /**
   * Generates a sample matrix based on the provided seed and transposition flag.
   *
   * @param seed - The seed used for generating the matrix.
   * @param transposed - A flag indicating whether the matrix should be transposed or not.
   * @returns The generated sample matrix.
   */
  _sampleMatrix(seed, transposed) {
    const a = this._matrixA;
    this._xofSeed.set(seed);
    for (let ctr = 0, i = 0; i < this._k; i++) {
      for (let j = 0; j < this._k; j++) {
        if (transposed) {
          this._xofSeed[seed.length] = i;
          this._xofSeed[seed.length + 1] = j;
        } else {
          this._xofSeed[seed.length] = j;
          this._xofSeed[seed.length + 1] = i;
        }
        const output = this._xof(this._xofSeed);
        ctr = indcpaRejUniform(a[i][j], 0, output.subarray(0, 504), 504, N);
        while (ctr < N) {
          const outputn = output.subarray(504, 672);
          ctr += indcpaRejUniform(a[i][j], ctr, outputn, 168, N - ctr);
        }
      }
    }
    return a;
  }
  /**
   * Generates a 2D array of noise samples.
   *
   * @param sigma - The noise parameter.
   * @param offset - The offset value.
   * @param size - The size of the array.
   * @returns The generated 2D array of noise samples.
   */
  _sampleNoise1(sigma, offset, size) {
    const r = new Array(size);
    for (let i = 0; i < size; i++) {
      r[i] = this._noiseVecs[offset + i];
      byteopsCbd(r[i], this._prf1(sigma, offset + i), this._eta1);
    }
    return r;
  }
  /**
   * Generates a 2-dimensional array of noise samples.
   *
   * @param sigma - The noise parameter.
   * @param offset - The offset value.
   * @param size - The size of the array.
   * @returns The generated 2-dimensional array of noise samples.
   */
  _sampleNoise2(sigma, offset, size) {
    const r = new Array(size);
    for (let i = 0; i < size; i++) {
      r[i] = this._noiseVecs[offset + i];
      byteopsCbd(r[i], this._prf2(sigma, offset + i), this._eta2);
    }
    return r;
  }
  // polyvecFromBytes deserializes a vector of polynomials.
  /**
   * Converts a Uint8Array to a 2D array of numbers representing a polynomial vector.
   * Each element in the resulting array represents a polynomial.
   * @param a The Uint8Array to convert.
   * @returns The 2D array of numbers representing the polynomial vector.
   */
  _polyvecFromBytes(a) {
    const r = this._polyVec;
    for (let i = 0; i < this._k; i++) {
      this._polyFromBytes(r[i], a, i * 384);
    }
    return r;
  }
  // compressU lossily compresses and serializes a vector of polynomials.
  /**
   * Compresses the given array of coefficients into a Uint8Array.
   *
   * @param r - The output Uint8Array.
   * @param u - The array of coefficients.
   * @returns The compressed Uint8Array.
   */
  _compressU(r, u) {
    const t = new Array(4);
    for (let rr = 0, i = 0; i < this._k; i++) {
      for (let j = 0; j < N / 4; j++) {
        for (let k = 0; k < 4; k++) {
          t[k] = ((u[i][4 * j + k] << 10) + Q / 2) / Q & 1023;
        }
        r[rr++] = byte(t[0] >> 0);
        r[rr++] = byte(t[0] >> 8 | t[1] << 2);
        r[rr++] = byte(t[1] >> 6 | t[2] << 4);
        r[rr++] = byte(t[2] >> 4 | t[3] << 6);
        r[rr++] = byte(t[3] >> 2);
      }
    }
    return r;
  }
  // compressV lossily compresses and subsequently serializes a polynomial.
  /**
   * Compresses the given array of numbers into a Uint8Array.
   *
   * @param r - The Uint8Array to store the compressed values.
   * @param v - The array of numbers to compress.
   * @returns The compressed Uint8Array.
   */
  _compressV(r, v) {
    const t = new Uint8Array(8);
    for (let rr = 0, i = 0; i < N / 8; i++) {
      for (let j = 0; j < 8; j++) {
        t[j] = byte(((v[8 * i + j] << 4) + Q / 2) / Q) & 15;
      }
      r[rr++] = t[0] | t[1] << 4;
      r[rr++] = t[2] | t[3] << 4;
      r[rr++] = t[4] | t[5] << 4;
      r[rr++] = t[6] | t[7] << 4;
    }
    return r;
  }
  // decompressU de-serializes and decompresses a vector of polynomials and
  // represents the approximate inverse of compress1. Since compression is lossy,
  // the results of decompression will may not match the original vector of polynomials.
  /**
   * Decompresses a Uint8Array into a two-dimensional array of numbers.
   *
   * @param a The Uint8Array to decompress.
   * @returns The decompressed two-dimensional array.
   */
  _decompressU(a) {
    const r = new Array(this._k);
    for (let i = 0; i < this._k; i++) {
      r[i] = new Int16Array(N);
    }
    const t = new Array(4);
    for (let aa = 0, i = 0; i < this._k; i++) {
      for (let j = 0; j < N / 4; j++) {
        t[0] = uint16(a[aa + 0]) >> 0 | uint16(a[aa + 1]) << 8;
        t[1] = uint16(a[aa + 1]) >> 2 | uint16(a[aa + 2]) << 6;
        t[2] = uint16(a[aa + 2]) >> 4 | uint16(a[aa + 3]) << 4;
        t[3] = uint16(a[aa + 3]) >> 6 | uint16(a[aa + 4]) << 2;
        aa = aa + 5;
        for (let k = 0; k < 4; k++) {
          r[i][4 * j + k] = int16((t[k] & 1023) * Q + 512 >> 10);
        }
      }
    }
    return r;
  }
  // decompressV de-serializes and subsequently decompresses a polynomial,
  // representing the approximate inverse of compress2.
  // Note that compression is lossy, and thus decompression will not match the
  // original input.
  /**
   * Decompresses a Uint8Array into an array of numbers.
   *
   * @param a - The Uint8Array to decompress.
   * @returns An array of numbers.
   */
  _decompressV(a) {
    const r = new Int16Array(N);
    for (let aa = 0, i = 0; i < N / 2; i++, aa++) {
      r[2 * i + 0] = int16((a[aa] & 15) * Q + 8 >> 4);
      r[2 * i + 1] = int16((a[aa] >> 4) * Q + 8 >> 4);
    }
    return r;
  }
};
function polyToMsg(a) {
  const msg = new Uint8Array(32);
  let t, v;
  for (let i = 0; i < N / 8; i++) {
    for (let j = 0; j < 8; j++) {
      v = a[8 * i + j] - Q;
      v += v >> 31 & Q;
      t = ((uint16(v) << 1) + uint16(Q / 2)) / uint16(Q) & 1;
      msg[i] |= byte(t << j);
    }
  }
  return msg;
}
function polyFromMsg(msg) {
  const r = new Int16Array(N);
  let mask;
  for (let i = 0; i < N / 8; i++) {
    for (let j = 0; j < 8; j++) {
      mask = -1 * int16(msg[i] >> j & 1);
      r[8 * i + j] = mask & int16((Q + 1) / 2);
    }
  }
  return r;
}
function indcpaRejUniform(out, outOffset, buf, bufl, len) {
  let ctr = 0;
  let val0, val1;
  for (let pos = 0; ctr < len && pos + 3 <= bufl; ) {
    val0 = (uint16(buf[pos] >> 0) | uint16(buf[pos + 1]) << 8) & 4095;
    val1 = (uint16(buf[pos + 1] >> 4) | uint16(buf[pos + 2]) << 4) & 4095;
    pos = pos + 3;
    if (val0 < Q) {
      out[outOffset + ctr] = val0;
      ctr = ctr + 1;
    }
    if (ctr < len && val1 < Q) {
      out[outOffset + ctr] = val1;
      ctr = ctr + 1;
    }
  }
  return ctr;
}
function byteopsCbd(out, buf, eta) {
  let t, d;
  let a, b;
  for (let i = 0; i < N / 8; i++) {
    t = byteopsLoad32(buf, 4 * i);
    d = t & 1431655765;
    d = d + (t >> 1 & 1431655765);
    for (let j = 0; j < 8; j++) {
      a = int16(d >> 4 * j + 0 & 3);
      b = int16(d >> 4 * j + eta & 3);
      out[8 * i + j] = a - b;
    }
  }
}
function ntt(r) {
  for (let j = 0, k = 1, l = 128; l >= 2; l >>= 1) {
    for (let start2 = 0; start2 < 256; start2 = j + l) {
      const zeta = NTT_ZETAS[k];
      k = k + 1;
      for (j = start2; j < start2 + l; j++) {
        const t = nttFqMul(zeta, r[j + l]);
        r[j + l] = r[j] - t;
        r[j] = r[j] + t;
      }
    }
  }
  return r;
}
function nttFqMul(a, b) {
  const ab = a * b;
  const u = Math.imul(ab, Q_INV) << 16 >> 16;
  return ab - u * Q >> 16;
}
function reduce(r) {
  for (let i = 0; i < N; i++) {
    r[i] = barrett(r[i]);
  }
  return r;
}
var BARRETT_V = ((1 << 24) + Q / 2) / Q;
function barrett(a) {
  let t = BARRETT_V * a >> 24;
  t = t * Q;
  return a - t;
}
function polyToMont(r) {
  const f = 1353;
  for (let i = 0; i < N; i++) {
    const a = r[i] * f;
    const u = Math.imul(a, Q_INV) << 16 >> 16;
    r[i] = a - u * Q >> 16;
  }
  return r;
}
function multiply(a, b) {
  let r = polyBaseMulMontgomery(a[0], b[0]);
  let t;
  for (let i = 1; i < a.length; i++) {
    t = polyBaseMulMontgomery(a[i], b[i]);
    r = add2(r, t);
  }
  return reduce(r);
}
function polyBaseMulMontgomery(a, b) {
  for (let i = 0; i < N / 4; i++) {
    const idx = 4 * i;
    const a0 = a[idx], a1 = a[idx + 1], a2 = a[idx + 2], a3 = a[idx + 3];
    const b0 = b[idx], b1 = b[idx + 1], b2 = b[idx + 2], b3 = b[idx + 3];
    const zeta = NTT_ZETAS[64 + i];
    a[idx] = nttFqMul(nttFqMul(a1, b1), zeta) + nttFqMul(a0, b0);
    a[idx + 1] = nttFqMul(a0, b1) + nttFqMul(a1, b0);
    a[idx + 2] = nttFqMul(nttFqMul(a3, b3), -zeta) + nttFqMul(a2, b2);
    a[idx + 3] = nttFqMul(a2, b3) + nttFqMul(a3, b2);
  }
  return a;
}
function add2(a, b) {
  for (let i = 0; i < N; i++) {
    a[i] += b[i];
  }
  return a;
}
function subtract(a, b) {
  for (let i = 0; i < N; i++) {
    a[i] -= b[i];
  }
  return a;
}
function nttInverse(r) {
  let j = 0;
  for (let k = 0, l = 2; l <= 128; l <<= 1) {
    for (let start2 = 0; start2 < 256; start2 = j + l) {
      const zeta = NTT_ZETAS_INV[k];
      k = k + 1;
      for (j = start2; j < start2 + l; j++) {
        const t = r[j];
        r[j] = barrett(t + r[j + l]);
        r[j + l] = t - r[j + l];
        r[j + l] = nttFqMul(zeta, r[j + l]);
      }
    }
  }
  for (j = 0; j < 256; j++) {
    r[j] = nttFqMul(r[j], NTT_ZETAS_INV[127]);
  }
  return r;
}

// ../ts/node_modules/mlkem/esm/src/mlKem768.js
var MlKem768 = class extends MlKemBase {
  constructor() {
    super();
    Object.defineProperty(this, "_k", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 3
    });
    Object.defineProperty(this, "_du", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 10
    });
    Object.defineProperty(this, "_dv", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 4
    });
    Object.defineProperty(this, "_eta1", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 2
    });
    Object.defineProperty(this, "_eta2", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 2
    });
    this._skSize = 12 * this._k * N / 8;
    this._pkSize = this._skSize + 32;
    this._compressedUSize = this._k * this._du * N / 8;
    this._compressedVSize = this._dv * N / 8;
    this._initPool();
  }
  /**
   * Generates a keypair [publicKey, privateKey].
   *
   * If an error occurred, throws {@link MlKemError}.
   *
   * @returns A kaypair [publicKey, privateKey].
   * @throws {@link MlKemError}
   */
  async generateKeyPair() {
    await this._setup();
    try {
      return this._generateKeyPairCore();
    } catch (e) {
      throw new MlKemError(e);
    }
  }
  /**
   * Derives a keypair [publicKey, privateKey] deterministically from a 64-octet seed.
   *
   * If an error occurred, throws {@link MlKemError}.
   *
   * @param seed A 64-octet seed for the deterministic key generation.
   * @returns A kaypair [publicKey, privateKey].
   * @throws {@link MlKemError}
   */
  async deriveKeyPair(seed) {
    await this._setup();
    try {
      return this._deriveKeyPairCore(seed);
    } catch (e) {
      throw new MlKemError(e);
    }
  }
  /**
   * Generates a shared secret from the encapsulated ciphertext and the private key.
   *
   * If an error occurred, throws {@link MlKemError}.
   *
   * @param pk A public key.
   * @param seed An optional 32-octet seed for the deterministic shared secret generation.
   * @returns A ciphertext (encapsulated public key) and a shared secret.
   * @throws {@link MlKemError}
   */
  async encap(pk, seed) {
    await this._setup();
    try {
      return this._encapCore(pk, seed);
    } catch (e) {
      throw new MlKemError(e);
    }
  }
  /**
   * Generates a ciphertext for the public key and a shared secret.
   *
   * If an error occurred, throws {@link MlKemError}.
   *
   * @param ct A ciphertext generated by {@link encap}.
   * @param sk A private key.
   * @returns A shared secret.
   * @throws {@link MlKemError}
   */
  async decap(ct, sk) {
    await this._setup();
    try {
      return this._decapCore(ct, sk);
    } catch (e) {
      throw new MlKemError(e);
    }
  }
};

// ../ts/node_modules/@hpke/dhkem-x25519/esm/src/primitives/x25519.js
var _1n3 = 1n;
var _2n3 = 2n;
var _3n = 3n;
var _5n = 5n;
var ed25519_CURVE_p = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffedn;
function ed25519_pow_2_252_3(x) {
  const _10n = 10n;
  const _20n = 20n;
  const _40n = 40n;
  const _80n = 80n;
  const P = ed25519_CURVE_p;
  const x2 = x * x % P;
  const b2 = x2 * x % P;
  const b4 = pow2(b2, _2n3, P) * b2 % P;
  const b5 = pow2(b4, _1n3, P) * x % P;
  const b10 = pow2(b5, _5n, P) * b5 % P;
  const b20 = pow2(b10, _10n, P) * b10 % P;
  const b40 = pow2(b20, _20n, P) * b20 % P;
  const b80 = pow2(b40, _40n, P) * b40 % P;
  const b160 = pow2(b80, _80n, P) * b80 % P;
  const b240 = pow2(b160, _80n, P) * b80 % P;
  const b250 = pow2(b240, _10n, P) * b10 % P;
  const pow_p_5_8 = pow2(b250, _2n3, P) * x % P;
  return { pow_p_5_8, b2 };
}
function adjustScalarBytes(bytes2) {
  bytes2[0] &= 248;
  bytes2[31] &= 127;
  bytes2[31] |= 64;
  return bytes2;
}
var x25519 = /* @__PURE__ */ (() => {
  const P = ed25519_CURVE_p;
  return montgomery({
    P,
    type: "x25519",
    powPminus2: (x) => {
      const { pow_p_5_8, b2 } = ed25519_pow_2_252_3(x);
      return mod(pow2(pow_p_5_8, _3n, P) * b2, P);
    },
    adjustScalarBytes
  });
})();

// ../ts/node_modules/@hpke/dhkem-x25519/esm/src/hkdfSha256.js
var HkdfSha2562 = class extends HkdfSha256Native {
  async extract(salt, ikm) {
    await this._setup();
    const saltBuf = salt.byteLength === 0 ? new ArrayBuffer(this.hashSize) : toArrayBuffer(salt);
    const ikmBuf = toArrayBuffer(ikm);
    if (saltBuf.byteLength !== this.hashSize) {
      return hmac(sha256, new Uint8Array(saltBuf), new Uint8Array(ikmBuf)).buffer;
    }
    const key = await this._api.importKey("raw", saltBuf, this.algHash, false, [
      "sign"
    ]);
    return await this._api.sign("HMAC", key, ikmBuf);
  }
};

// ../ts/node_modules/@hpke/dhkem-x25519/esm/src/dhkemX25519.js
var X255192 = class extends XCurveDhkemPrimitives {
  constructor(hkdf2) {
    super("X25519", 32, x25519, hkdf2);
  }
  derive(sk, pk) {
    try {
      return Promise.resolve(this._curve.getSharedSecret(sk, pk));
    } catch (e) {
      return Promise.reject(new SerializeError(e));
    }
  }
};

// ../ts/node_modules/@hpke/hybridkem-x-wing/esm/src/xWing.js
var ALG_NAME = "X-Wing";
var X25519_BASE = new Uint8Array([
  9,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0
]);
var XWING_LABEL = new Uint8Array([92, 46, 47, 47, 94, 92]);
function combiner(ssM, ssX, ctX, pkX) {
  const ret = new Uint8Array(ssM.length + ssX.length + ctX.length + pkX.length + XWING_LABEL.length);
  ret.set(ssM, 0);
  ret.set(ssX, ssM.length);
  ret.set(ctX, ssM.length + ssX.length);
  ret.set(pkX, ssM.length + ssX.length + ctX.length);
  ret.set(XWING_LABEL, ssM.length + ssX.length + ctX.length + pkX.length);
  return sha3_2562.create().update(ret).digest();
}
var XWing = class {
  constructor() {
    Object.defineProperty(this, "id", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: KemId.XWing
    });
    Object.defineProperty(this, "name", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: ALG_NAME
    });
    Object.defineProperty(this, "secretSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 32
    });
    Object.defineProperty(this, "encSize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 1120
    });
    Object.defineProperty(this, "publicKeySize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 1216
    });
    Object.defineProperty(this, "privateKeySize", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: 32
    });
    Object.defineProperty(this, "auth", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: false
    });
    Object.defineProperty(this, "_m", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_x25519", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    Object.defineProperty(this, "_api", {
      enumerable: true,
      configurable: true,
      writable: true,
      value: void 0
    });
    this._m = new MlKem768();
    this._x25519 = new X255192(new HkdfSha2562());
  }
  async serializePublicKey(key) {
    await this._setup();
    try {
      return await this._serializePublicKey(key);
    } catch (e) {
      throw new SerializeError(e);
    }
  }
  async deserializePublicKey(key) {
    await this._setup();
    try {
      return await this._deserializePublicKey(toArrayBuffer(key));
    } catch (e) {
      throw new DeserializeError(e);
    }
  }
  async serializePrivateKey(key) {
    await this._setup();
    try {
      return await this._serializePrivateKey(key);
    } catch (e) {
      throw new SerializeError(e);
    }
  }
  async deserializePrivateKey(key) {
    await this._setup();
    try {
      return await this._deserializePrivateKey(toArrayBuffer(key));
    } catch (e) {
      throw new DeserializeError(e);
    }
  }
  /**
   * Generates a new key pair.
   *
   * @returns {Promise<CryptoKeyPair>} A promise that resolves with a new key pair.
   */
  async generateKeyPair() {
    await this._setup();
    const sk = new Uint8Array(32);
    try {
      this._api.getRandomValues(sk);
    } catch (e) {
      throw new NotSupportedError(e);
    }
    try {
      const [_sk, pk] = await this._generateKeyPairDerand(sk);
      const dSk = await this.deserializePrivateKey(sk.buffer);
      const dPk = await this.deserializePublicKey(pk.buffer);
      return { privateKey: dSk, publicKey: dPk };
    } catch (e) {
      throw new DeriveKeyPairError(e);
    }
  }
  /**
   * Generates a key pair from the secret key.
   * @param sk The secret key.
   * @returns {Promise<CryptoKeyPair>} A promise that resolves with a new key pair.
   * @throws {InvalidParamError} Thrown if the length of the secret key is not 32 bytes.
   * @throws {DeriveKeyPairError} Thrown if the key pair cannot be derived.
   */
  async generateKeyPairDerand(sk) {
    if (sk.byteLength !== 32) {
      throw new InvalidParamError("Invalid length of sk");
    }
    try {
      const [_sk, pk] = await this._generateKeyPairDerand(sk);
      const dSk = await this.deserializePrivateKey(sk.buffer);
      const dPk = await this.deserializePublicKey(pk.buffer);
      return { privateKey: dSk, publicKey: dPk };
    } catch (e) {
      throw new DeriveKeyPairError(e);
    }
  }
  /**
   * Derives a key pair from the input keying material.
   *
   * @param {ArrayBuffer} ikm The input keying material.
   * @returns {Promise<CryptoKeyPair>} A promise that resolves with a new key pair.
   * @throws {DeriveKeyPairError} Thrown if the key pair cannot be derived.
   * @throws {InvalidParamError} Thrown if the length of the IKM is not 32 bytes.
   */
  async deriveKeyPair(ikm) {
    await this._setup();
    try {
      const rawIkm = toArrayBuffer(ikm);
      const sk = shake2562.create({ dkLen: 32 }).update(new Uint8Array(rawIkm)).digest();
      const [_sk, pk] = await this._generateKeyPairDerand(sk);
      const dSk = await this.deserializePrivateKey(sk.buffer);
      const dPk = await this.deserializePublicKey(pk.buffer);
      return { privateKey: dSk, publicKey: dPk };
    } catch (e) {
      throw new DeriveKeyPairError(e);
    }
  }
  /**
   * Imports a key from the input.
   * @param format The format of the key. "raw" or "jwk" can be specified.
   * @param key The key to import. If the format is "raw", the key must be an ArrayBuffer. If the format is "jwk", the key must be a JsonWebKey.
   * @param isPublic A boolean indicating whether the key is public or not. The default is true.
   * @returns {Promise<CryptoKey>} A promise that resolves with the imported key.
   * @throws {DeserializeError} Thrown if the key cannot be imported.
   */
  async importKey(format, key, isPublic = true) {
    await this._setup();
    try {
      let ret;
      if (format === "jwk") {
        if (key instanceof ArrayBuffer || key instanceof Uint8Array) {
          throw new Error("Invalid jwk key format");
        }
        ret = await this._importJWK(key, isPublic);
      } else {
        if (key instanceof ArrayBuffer) {
          ret = new Uint8Array(key);
        } else if (key instanceof Uint8Array) {
          ret = key;
        } else {
          throw new Error("Invalid key format");
        }
      }
      if (isPublic && ret.byteLength !== this.publicKeySize) {
        throw new Error("Invalid length of the key");
      }
      if (!isPublic && ret.byteLength !== this.privateKeySize) {
        throw new Error("Invalid length of the key");
      }
      return new XCryptoKey(ALG_NAME, ret, isPublic ? "public" : "private", isPublic ? [] : KEM_USAGES);
    } catch (e) {
      throw new DeserializeError(e);
    }
  }
  /**
   * Encapsulates the shared secret and the `ct` (ciphertext) as `enc`.
   * @param params The parameters for encapsulation.
   * @returns {Promise<{ sharedSecret: ArrayBuffer; enc: ArrayBuffer }>} A promise that resolves with the `ss` (shared secret) as `sharedSecret` and the `ct` (ciphertext) as `enc`.
   * @throws {InvalidParamError} Thrown if the length of the `ekm` is not 64 bytes.
   * @throws {EncapError} Thrown if the shared secret cannot be encapsulated.
   */
  async encap(params) {
    let ekm = void 0;
    if (params.ekm !== void 0 && !isCryptoKeyPair(params.ekm)) {
      ekm = toArrayBuffer(params.ekm);
      if (ekm.byteLength !== 64) {
        throw new InvalidParamError("ekm must be 64 bytes in length");
      }
    }
    await this._setup();
    let ekM = void 0;
    let ekX;
    if (ekm !== void 0) {
      const ek = new Uint8Array(ekm);
      ekM = ek.subarray(0, 32);
      ekX = ek.subarray(32, 64);
    } else {
      ekX = new Uint8Array(32);
      try {
        this._api.getRandomValues(ekX);
      } catch (e) {
        throw new NotSupportedError(e);
      }
    }
    const pk = new Uint8Array(await this.serializePublicKey(params.recipientPublicKey));
    if (pk.byteLength !== 1216) {
      throw new InvalidParamError("Invalid length of recipientPublicKey");
    }
    try {
      const pkM = pk.subarray(0, 1184);
      const pkX = pk.subarray(1184, 1216);
      const ctX = await this._x25519.derive(ekX, X25519_BASE);
      const ssX = await this._x25519.derive(ekX, pkX);
      const [ctM, ssM] = await this._m.encap(pkM, ekM);
      return {
        sharedSecret: combiner(ssM, ssX, ctX, pkX).buffer,
        enc: concat(ctM, ctX).buffer
      };
    } catch (e) {
      throw new EncapError(e);
    }
  }
  /**
   * Decapsulates the `ss` (shared secret) from the `enc` and the recipient's private key.
   * The `enc` is the same as the `ct` (ciphertext) resulting from `X-Wing::Encapsulate(),
   * which is executed under the `encap()`.
   * @param params The parameters for decapsulation.
   * @returns {Promise<ArrayBuffer>} A promise that resolves with the shared secret.
   * @throws {InvalidParamError} Thrown if the length of the `enc` is not 1120 bytes.
   * @throws {DecapError} Thrown if the shared secret cannot be decapsulated.
   */
  async decap(params) {
    const enc3 = toArrayBuffer(params.enc);
    const rSk = isCryptoKeyPair(params.recipientKey) ? params.recipientKey.privateKey : params.recipientKey;
    if (enc3.byteLength !== 1120) {
      throw new InvalidParamError("Invalid length of enc");
    }
    const sk = new Uint8Array(await this.serializePrivateKey(rSk));
    if (sk.byteLength !== 32) {
      throw new InvalidParamError("Invalid length of recipientKey");
    }
    await this._setup();
    try {
      const [skM, skX, _pkM, pkX] = await this._expandDecapsulationKey(sk);
      const ct = new Uint8Array(enc3);
      const ctM = ct.subarray(0, 1088);
      const ctX = ct.subarray(1088);
      const ssM = await this._m.decap(ctM, skM);
      const ssX = await this._x25519.derive(skX, ctX);
      return combiner(ssM, ssX, ctX, pkX).buffer;
    } catch (e) {
      throw new DecapError(e);
    }
  }
  /**
   * Sets up the MlKemBase instance by loading the necessary crypto library.
   * If the crypto library is already loaded, this method does nothing.
   * @returns {Promise<void>} A promise that resolves when the setup is complete.
   */
  async _setup() {
    if (this._api !== void 0) {
      return;
    }
    this._api = await loadCrypto();
  }
  /**
   * Generates a key pair from the secret key.
   * @param sk The secret key.
   * @returns {Promise<[Uint8Array, Uint8Array]>} A promise that resolves with the key pair derived from the secret key.
   */
  async _generateKeyPairDerand(sk) {
    const [_skM, _skX, pkM, pkX] = await this._expandDecapsulationKey(sk);
    return [sk, concat(pkM, pkX)];
  }
  /**
   * Expands the decapsulation key.
   * @param sk The secret key.
   * @returns {Promise<[Uint8Array, Uint8Array, Uint8Array, Uint8Array]>} A promise that resolves with the keys derived by expanding the secret key.
   */
  async _expandDecapsulationKey(sk) {
    const expanded = shake2562.create({ dkLen: 96 }).update(sk).digest();
    const [pkM, skM] = await this._m.deriveKeyPair(expanded.subarray(0, 64));
    const skX = expanded.subarray(64, 96);
    const pkX = await this._x25519.derive(skX, X25519_BASE);
    return [skM, skX, pkM, pkX];
  }
  _serializePublicKey(k) {
    return new Promise((resolve, reject) => {
      if (k.type !== "public") {
        reject(new Error("Not public key"));
      }
      if (k.algorithm.name !== this.name) {
        reject(new Error(`Invalid algorithm name: ${k.algorithm.name}`));
      }
      if (k.key.byteLength !== this.publicKeySize) {
        reject(new Error(`Invalid key length: ${k.key.byteLength}`));
      }
      resolve(k.key.buffer);
    });
  }
  _deserializePublicKey(k) {
    return new Promise((resolve, reject) => {
      if (k.byteLength !== this.publicKeySize) {
        reject(new Error(`Invalid key length: ${k.byteLength}`));
      }
      resolve(new XCryptoKey(this.name, new Uint8Array(k), "public"));
    });
  }
  _serializePrivateKey(k) {
    return new Promise((resolve, reject) => {
      if (k.type !== "private") {
        reject(new Error("Not private key"));
      }
      if (k.algorithm.name !== this.name) {
        reject(new Error(`Invalid algorithm name: ${k.algorithm.name}`));
      }
      if (k.key.byteLength !== this.privateKeySize) {
        reject(new Error(`Invalid key length: ${k.key.byteLength}`));
      }
      resolve(k.key.buffer);
    });
  }
  _deserializePrivateKey(k) {
    return new Promise((resolve, reject) => {
      if (k.byteLength !== this.privateKeySize) {
        reject(new Error(`Invalid key length: ${k.byteLength}`));
      }
      resolve(new XCryptoKey(this.name, new Uint8Array(k), "private", ["deriveBits"]));
    });
  }
  _importJWK(key, isPublic) {
    return new Promise((resolve, reject) => {
      if (typeof key.kty === "undefined" || key.kty !== "AKP") {
        reject(new Error(`Invalid kty: ${key.kty}`));
      }
      if (typeof key.alg === "undefined" || key.alg !== ALG_NAME) {
        reject(new Error(`Invalid alg: ${key.alg}`));
      }
      if (!isPublic) {
        if (typeof key.priv === "undefined") {
          reject(new Error("Invalid key: `priv` not found"));
        }
        if (typeof key.key_ops !== "undefined" && (key.key_ops.length !== 1 || key.key_ops[0] !== "deriveBits")) {
          reject(new Error("Invalid key: `key_ops` should be ['deriveBits']"));
        }
        resolve(base64UrlToBytes(key.priv));
      }
      if (typeof key.priv !== "undefined") {
        reject(new Error("Invalid key: `priv` should not be set"));
      }
      if (typeof key.pub === "undefined") {
        reject(new Error("Invalid key: `pub` not found"));
      }
      if (typeof key.key_ops !== "undefined" && key.key_ops.length > 0) {
        reject(new Error("Invalid key: `key_ops` should not be set"));
      }
      resolve(base64UrlToBytes(key.pub));
    });
  }
};

// ../ts/node_modules/@noble/ciphers/utils.js
function isBytes3(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array" && "BYTES_PER_ELEMENT" in a && a.BYTES_PER_ELEMENT === 1;
}
var atitle = (title) => title ? `"${title}" ` : "";
function abool2(value, title = "") {
  if (typeof value !== "boolean")
    throw new TypeError(atitle(title) + "expected boolean, got type=" + typeof value);
  return value;
}
function anumber3(n, title = "") {
  if (typeof n !== "number")
    throw new TypeError(atitle(title) + "expected number, got " + typeof n);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(atitle(title) + "expected integer >= 0, got " + n);
  return n;
}
function abytes3(value, length, title = "") {
  if (isBytes3(value) && (length === void 0 || value.length === length))
    return value;
  if (length !== void 0)
    anumber3(length, "length");
  const bytes2 = isBytes3(value);
  const ofLen = length !== void 0 ? ` of length ${length}` : "";
  const got = bytes2 ? `length=${value.length}` : `type=${typeof value}`;
  const message = atitle(title) + "expected Uint8Array" + ofLen + ", got " + got;
  if (!bytes2)
    throw new TypeError(message);
  throw new RangeError(message);
}
var aobject = (value, label) => {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError(label === "object" ? "expected valid options object" : `"${label}" expected object, got type=${typeof value}`);
};
function aexists3(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("hash was destroyed");
  if (checkFinished && instance.finished)
    throw new Error("digest() was already called");
}
function aoutput3(out, instance) {
  abytes3(out, void 0, "output");
  const min = instance.outputLen;
  if (!(out.length >= min)) {
    throw new RangeError('"output" expected length >= ' + min);
  }
}
function u323(arr) {
  return new Uint32Array(arr.buffer, arr.byteOffset, Math.floor(arr.byteLength / 4));
}
function clean3(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
function createView2(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
var isLE3 = /* @__PURE__ */ (() => new Uint8Array(new Uint32Array([287454020]).buffer)[0] === 68)();
function byteSwap2(word) {
  return word << 24 & 4278190080 | word << 8 & 16711680 | word >>> 8 & 65280 | word >>> 24 & 255;
}
function byteSwap322(arr) {
  for (let i = 0; i < arr.length; i++) {
    arr[i] = byteSwap2(arr[i]);
  }
  return arr;
}
var swap32IfBE3 = isLE3 ? (u) => u : byteSwap322;
function overlapBytes(a, b) {
  if (!a.byteLength || !b.byteLength)
    return false;
  return a.buffer === b.buffer && // best we can do, may fail with an obscure Proxy
  a.byteOffset < b.byteOffset + b.byteLength && // a starts before b end
  b.byteOffset < a.byteOffset + a.byteLength;
}
function complexOverlapBytes(input, output) {
  if (overlapBytes(input, output) && input.byteOffset < output.byteOffset)
    throw new Error("complex overlap of input and output is not supported");
}
function checkOpts2(defaults, opts) {
  aobject(defaults, "defaults");
  aobject(opts, "opts");
  const merged = Object.assign(defaults, opts);
  return merged;
}
function equalBytes2(a, b) {
  a = abytes3(a);
  b = abytes3(b);
  if (a.length !== b.length)
    return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++)
    diff |= a[i] ^ b[i];
  return diff === 0;
}
function wrapMacConstructor(keyLen, macCons, fromMsg) {
  const mac = macCons;
  const getArgs = fromMsg || (() => []);
  const macC = (msg, key) => mac(key, ...getArgs(msg)).update(msg).digest();
  const tmp = mac(new Uint8Array(keyLen), ...getArgs(new Uint8Array(0)));
  macC.outputLen = tmp.outputLen;
  macC.blockLen = tmp.blockLen;
  macC.create = (key, ...args) => mac(key, ...args);
  return macC;
}
var wrapCipher2 = /* @__NO_SIDE_EFFECTS__ */ (params, constructor) => {
  function wrappedCipher(key, ...args) {
    abytes3(key, void 0, "key");
    if (params.nonceLength !== void 0) {
      const nonce2 = args[0];
      abytes3(nonce2, params.varSizeNonce ? void 0 : params.nonceLength, "nonce");
    }
    const tagl = params.tagLength;
    const aadStart = params.nonceLength !== void 0 ? 1 : 0;
    if (!params.withAAD) {
      for (let i = aadStart; i < args.length; i++)
        if (isBytes3(args[i]))
          throw new Error("AAD not supported");
    }
    if (params.withAAD && args[aadStart] !== void 0)
      abytes3(args[aadStart], void 0, "AAD");
    const cipher = constructor(key, ...args);
    const checkOutput = (fnLength, output) => {
      if (output !== void 0) {
        if (fnLength !== 2)
          throw new Error("cipher output not supported");
        abytes3(output, void 0, "output");
      }
    };
    let called = false;
    const wrCipher = {
      encrypt(data, output) {
        if (called)
          throw new Error("cannot encrypt() twice with same key + nonce");
        called = true;
        abytes3(data, void 0, "data");
        checkOutput(cipher.encrypt.length, output);
        return cipher.encrypt(data, output);
      },
      decrypt(data, output) {
        abytes3(data, void 0, "data");
        if (tagl && data.length < tagl)
          throw new Error('"ciphertext" expected length >= tagLength=' + tagl);
        checkOutput(cipher.decrypt.length, output);
        return cipher.decrypt(data, output);
      }
    };
    return wrCipher;
  }
  Object.assign(wrappedCipher, params);
  return wrappedCipher;
};
function getOutput2(expectedLength, out, onlyAligned = true) {
  if (out === void 0)
    return new Uint8Array(expectedLength);
  abytes3(out, expectedLength, "output");
  if (onlyAligned && !isAligned323(out))
    throw new Error("invalid output, must be aligned");
  return out;
}
function u64Lengths2(dataLength, aadLength, isLE4) {
  anumber3(dataLength);
  anumber3(aadLength);
  abool2(isLE4);
  const num2 = new Uint8Array(16);
  const view = createView2(num2);
  view.setBigUint64(0, BigInt(aadLength), isLE4);
  view.setBigUint64(8, BigInt(dataLength), isLE4);
  return num2;
}
function isAligned323(bytes2) {
  return bytes2.byteOffset % 4 === 0;
}
function copyBytes2(bytes2) {
  return Uint8Array.from(abytes3(bytes2));
}

// ../ts/node_modules/@noble/ciphers/_arx.js
var encodeStr = (str) => Uint8Array.from(str.split(""), (c) => c.charCodeAt(0));
var sigma16_322 = /* @__PURE__ */ (() => swap32IfBE3(u323(encodeStr("expand 16-byte k"))))();
var sigma32_322 = /* @__PURE__ */ (() => swap32IfBE3(u323(encodeStr("expand 32-byte k"))))();
function rotl2(a, b) {
  return a << b | a >>> 32 - b;
}
var BLOCK_LEN2 = 64;
var BLOCK_LEN322 = 16;
var MAX_COUNTER2 = /* @__PURE__ */ (() => 2 ** 32 - 1)();
var U32_EMPTY2 = /* @__PURE__ */ Uint32Array.of();
function runCipher2(core, sigma, key, nonce2, data, output, counter, rounds) {
  const len = data.length;
  const block = new Uint8Array(BLOCK_LEN2);
  const b32 = u323(block);
  const isAligned = isLE3 && isAligned323(data) && isAligned323(output);
  const d32 = isAligned ? u323(data) : U32_EMPTY2;
  const o32 = isAligned ? u323(output) : U32_EMPTY2;
  if (!isLE3) {
    for (let pos = 0; pos < len; counter++) {
      core(sigma, key, nonce2, b32, counter, rounds);
      swap32IfBE3(b32);
      if (counter >= MAX_COUNTER2)
        throw new Error("arx: counter overflow");
      const take = Math.min(BLOCK_LEN2, len - pos);
      for (let j = 0, posj; j < take; j++) {
        posj = pos + j;
        output[posj] = data[posj] ^ block[j];
      }
      pos += take;
    }
    return;
  }
  for (let pos = 0; pos < len; counter++) {
    core(sigma, key, nonce2, b32, counter, rounds);
    if (counter >= MAX_COUNTER2)
      throw new Error("arx: counter overflow");
    const take = Math.min(BLOCK_LEN2, len - pos);
    if (isAligned && take === BLOCK_LEN2) {
      const pos32 = pos / 4;
      if (pos % 4 !== 0)
        throw new Error("arx: invalid block position");
      for (let j = 0, posj; j < BLOCK_LEN322; j++) {
        posj = pos32 + j;
        o32[posj] = d32[posj] ^ b32[j];
      }
      pos += BLOCK_LEN2;
      continue;
    }
    for (let j = 0, posj; j < take; j++) {
      posj = pos + j;
      output[posj] = data[posj] ^ block[j];
    }
    pos += take;
  }
}
function createCipher2(core, opts) {
  const { allowShortKeys, extendNonceFn, counterLength, counterRight, rounds } = checkOpts2({ allowShortKeys: false, counterLength: 8, counterRight: false, rounds: 20 }, opts);
  if (typeof core !== "function")
    throw new Error("core must be a function");
  anumber3(counterLength);
  anumber3(rounds);
  abool2(counterRight);
  abool2(allowShortKeys);
  return (key, nonce2, data, output, counter = 0) => {
    abytes3(key, void 0, "key");
    abytes3(nonce2, void 0, "nonce");
    abytes3(data, void 0, "data");
    const len = data.length;
    const hasOutput = output !== void 0;
    output = getOutput2(len, output, false);
    if (hasOutput)
      complexOverlapBytes(data, output);
    anumber3(counter);
    if (counter < 0 || counter >= MAX_COUNTER2)
      throw new Error("arx: counter overflow");
    const toClean = [];
    let l = key.length;
    let k;
    let sigma;
    if (l === 32) {
      toClean.push(k = copyBytes2(key));
      sigma = sigma32_322;
    } else if (l === 16 && allowShortKeys) {
      k = new Uint8Array(32);
      k.set(key);
      k.set(key, 16);
      sigma = sigma16_322;
      toClean.push(k);
    } else {
      abytes3(key, 32, "arx key");
      throw new Error("invalid key size");
    }
    if (!isLE3 || !isAligned323(nonce2))
      toClean.push(nonce2 = copyBytes2(nonce2));
    let k32 = u323(k);
    if (extendNonceFn) {
      if (nonce2.length !== 24)
        throw new Error("arx: extended nonce must be 24 bytes");
      const n16 = nonce2.subarray(0, 16);
      if (isLE3)
        extendNonceFn(sigma, k32, u323(n16), k32);
      else {
        const sigmaRaw = swap32IfBE3(Uint32Array.from(sigma));
        extendNonceFn(sigmaRaw, k32, u323(n16), k32);
        clean3(sigmaRaw);
        swap32IfBE3(k32);
      }
      nonce2 = nonce2.subarray(16);
    } else if (!isLE3)
      swap32IfBE3(k32);
    const nonceNcLen = 16 - counterLength;
    if (nonceNcLen !== nonce2.length)
      throw new Error(`arx: nonce must be ${nonceNcLen} or 16 bytes`);
    if (nonceNcLen !== 12) {
      const nc = new Uint8Array(12);
      nc.set(nonce2, counterRight ? 0 : 12 - nonce2.length);
      nonce2 = nc;
      toClean.push(nonce2);
    }
    const n32 = swap32IfBE3(u323(nonce2));
    try {
      runCipher2(core, sigma, k32, n32, data, output, counter, rounds);
      return output;
    } finally {
      clean3(...toClean);
    }
  };
}

// ../ts/node_modules/@noble/ciphers/_poly1305.js
function u8to162(a, i) {
  return a[i++] & 255 | (a[i++] & 255) << 8;
}
var Poly13052 = class {
  blockLen = 16;
  outputLen = 16;
  buffer = new Uint8Array(16);
  r = new Uint16Array(10);
  // Allocating 1 array with .subarray() here is slower than 3
  h = new Uint16Array(10);
  pad = new Uint16Array(8);
  pos = 0;
  finished = false;
  destroyed = false;
  // Can be speed-up using BigUint64Array, at the cost of complexity
  constructor(key) {
    key = copyBytes2(abytes3(key, 32, "key"));
    const t0 = u8to162(key, 0);
    const t1 = u8to162(key, 2);
    const t2 = u8to162(key, 4);
    const t3 = u8to162(key, 6);
    const t4 = u8to162(key, 8);
    const t5 = u8to162(key, 10);
    const t6 = u8to162(key, 12);
    const t7 = u8to162(key, 14);
    this.r[0] = t0 & 8191;
    this.r[1] = (t0 >>> 13 | t1 << 3) & 8191;
    this.r[2] = (t1 >>> 10 | t2 << 6) & 7939;
    this.r[3] = (t2 >>> 7 | t3 << 9) & 8191;
    this.r[4] = (t3 >>> 4 | t4 << 12) & 255;
    this.r[5] = t4 >>> 1 & 8190;
    this.r[6] = (t4 >>> 14 | t5 << 2) & 8191;
    this.r[7] = (t5 >>> 11 | t6 << 5) & 8065;
    this.r[8] = (t6 >>> 8 | t7 << 8) & 8191;
    this.r[9] = t7 >>> 5 & 127;
    for (let i = 0; i < 8; i++)
      this.pad[i] = u8to162(key, 16 + 2 * i);
  }
  process(data, offset, isLast = false) {
    const hibit = isLast ? 0 : 1 << 11;
    const { h: h2, r } = this;
    const r0 = r[0];
    const r1 = r[1];
    const r2 = r[2];
    const r3 = r[3];
    const r4 = r[4];
    const r5 = r[5];
    const r6 = r[6];
    const r7 = r[7];
    const r8 = r[8];
    const r9 = r[9];
    const t0 = u8to162(data, offset + 0);
    const t1 = u8to162(data, offset + 2);
    const t2 = u8to162(data, offset + 4);
    const t3 = u8to162(data, offset + 6);
    const t4 = u8to162(data, offset + 8);
    const t5 = u8to162(data, offset + 10);
    const t6 = u8to162(data, offset + 12);
    const t7 = u8to162(data, offset + 14);
    let h0 = h2[0] + (t0 & 8191);
    let h1 = h2[1] + ((t0 >>> 13 | t1 << 3) & 8191);
    let h22 = h2[2] + ((t1 >>> 10 | t2 << 6) & 8191);
    let h3 = h2[3] + ((t2 >>> 7 | t3 << 9) & 8191);
    let h4 = h2[4] + ((t3 >>> 4 | t4 << 12) & 8191);
    let h5 = h2[5] + (t4 >>> 1 & 8191);
    let h6 = h2[6] + ((t4 >>> 14 | t5 << 2) & 8191);
    let h7 = h2[7] + ((t5 >>> 11 | t6 << 5) & 8191);
    let h8 = h2[8] + ((t6 >>> 8 | t7 << 8) & 8191);
    let h9 = h2[9] + (t7 >>> 5 | hibit);
    let c = 0;
    let d0 = c + h0 * r0 + h1 * (5 * r9) + h22 * (5 * r8) + h3 * (5 * r7) + h4 * (5 * r6);
    c = d0 >>> 13;
    d0 &= 8191;
    d0 += h5 * (5 * r5) + h6 * (5 * r4) + h7 * (5 * r3) + h8 * (5 * r2) + h9 * (5 * r1);
    c += d0 >>> 13;
    d0 &= 8191;
    let d1 = c + h0 * r1 + h1 * r0 + h22 * (5 * r9) + h3 * (5 * r8) + h4 * (5 * r7);
    c = d1 >>> 13;
    d1 &= 8191;
    d1 += h5 * (5 * r6) + h6 * (5 * r5) + h7 * (5 * r4) + h8 * (5 * r3) + h9 * (5 * r2);
    c += d1 >>> 13;
    d1 &= 8191;
    let d2 = c + h0 * r2 + h1 * r1 + h22 * r0 + h3 * (5 * r9) + h4 * (5 * r8);
    c = d2 >>> 13;
    d2 &= 8191;
    d2 += h5 * (5 * r7) + h6 * (5 * r6) + h7 * (5 * r5) + h8 * (5 * r4) + h9 * (5 * r3);
    c += d2 >>> 13;
    d2 &= 8191;
    let d3 = c + h0 * r3 + h1 * r2 + h22 * r1 + h3 * r0 + h4 * (5 * r9);
    c = d3 >>> 13;
    d3 &= 8191;
    d3 += h5 * (5 * r8) + h6 * (5 * r7) + h7 * (5 * r6) + h8 * (5 * r5) + h9 * (5 * r4);
    c += d3 >>> 13;
    d3 &= 8191;
    let d4 = c + h0 * r4 + h1 * r3 + h22 * r2 + h3 * r1 + h4 * r0;
    c = d4 >>> 13;
    d4 &= 8191;
    d4 += h5 * (5 * r9) + h6 * (5 * r8) + h7 * (5 * r7) + h8 * (5 * r6) + h9 * (5 * r5);
    c += d4 >>> 13;
    d4 &= 8191;
    let d5 = c + h0 * r5 + h1 * r4 + h22 * r3 + h3 * r2 + h4 * r1;
    c = d5 >>> 13;
    d5 &= 8191;
    d5 += h5 * r0 + h6 * (5 * r9) + h7 * (5 * r8) + h8 * (5 * r7) + h9 * (5 * r6);
    c += d5 >>> 13;
    d5 &= 8191;
    let d6 = c + h0 * r6 + h1 * r5 + h22 * r4 + h3 * r3 + h4 * r2;
    c = d6 >>> 13;
    d6 &= 8191;
    d6 += h5 * r1 + h6 * r0 + h7 * (5 * r9) + h8 * (5 * r8) + h9 * (5 * r7);
    c += d6 >>> 13;
    d6 &= 8191;
    let d7 = c + h0 * r7 + h1 * r6 + h22 * r5 + h3 * r4 + h4 * r3;
    c = d7 >>> 13;
    d7 &= 8191;
    d7 += h5 * r2 + h6 * r1 + h7 * r0 + h8 * (5 * r9) + h9 * (5 * r8);
    c += d7 >>> 13;
    d7 &= 8191;
    let d8 = c + h0 * r8 + h1 * r7 + h22 * r6 + h3 * r5 + h4 * r4;
    c = d8 >>> 13;
    d8 &= 8191;
    d8 += h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * (5 * r9);
    c += d8 >>> 13;
    d8 &= 8191;
    let d9 = c + h0 * r9 + h1 * r8 + h22 * r7 + h3 * r6 + h4 * r5;
    c = d9 >>> 13;
    d9 &= 8191;
    d9 += h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0;
    c += d9 >>> 13;
    d9 &= 8191;
    c = (c << 2) + c | 0;
    c = c + d0 | 0;
    d0 = c & 8191;
    c = c >>> 13;
    d1 += c;
    h2[0] = d0;
    h2[1] = d1;
    h2[2] = d2;
    h2[3] = d3;
    h2[4] = d4;
    h2[5] = d5;
    h2[6] = d6;
    h2[7] = d7;
    h2[8] = d8;
    h2[9] = d9;
  }
  finalize() {
    const { h: h2, pad } = this;
    const g = new Uint16Array(10);
    let c = h2[1] >>> 13;
    h2[1] &= 8191;
    for (let i = 2; i < 10; i++) {
      h2[i] += c;
      c = h2[i] >>> 13;
      h2[i] &= 8191;
    }
    h2[0] += c * 5;
    c = h2[0] >>> 13;
    h2[0] &= 8191;
    h2[1] += c;
    c = h2[1] >>> 13;
    h2[1] &= 8191;
    h2[2] += c;
    g[0] = h2[0] + 5;
    c = g[0] >>> 13;
    g[0] &= 8191;
    for (let i = 1; i < 10; i++) {
      g[i] = h2[i] + c;
      c = g[i] >>> 13;
      g[i] &= 8191;
    }
    g[9] -= 1 << 13;
    let mask = (c ^ 1) - 1;
    for (let i = 0; i < 10; i++)
      g[i] &= mask;
    mask = ~mask;
    for (let i = 0; i < 10; i++)
      h2[i] = h2[i] & mask | g[i];
    h2[0] = (h2[0] | h2[1] << 13) & 65535;
    h2[1] = (h2[1] >>> 3 | h2[2] << 10) & 65535;
    h2[2] = (h2[2] >>> 6 | h2[3] << 7) & 65535;
    h2[3] = (h2[3] >>> 9 | h2[4] << 4) & 65535;
    h2[4] = (h2[4] >>> 12 | h2[5] << 1 | h2[6] << 14) & 65535;
    h2[5] = (h2[6] >>> 2 | h2[7] << 11) & 65535;
    h2[6] = (h2[7] >>> 5 | h2[8] << 8) & 65535;
    h2[7] = (h2[8] >>> 8 | h2[9] << 5) & 65535;
    let f = h2[0] + pad[0];
    h2[0] = f & 65535;
    for (let i = 1; i < 8; i++) {
      f = (h2[i] + pad[i] | 0) + (f >>> 16) | 0;
      h2[i] = f & 65535;
    }
    clean3(g);
  }
  update(data) {
    aexists3(this);
    abytes3(data);
    data = copyBytes2(data);
    const { buffer, blockLen } = this;
    const len = data.length;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(data, pos);
        continue;
      }
      buffer.set(data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(buffer, 0, false);
        this.pos = 0;
      }
    }
    return this;
  }
  destroy() {
    this.destroyed = true;
    clean3(this.h, this.r, this.buffer, this.pad);
  }
  digestInto(out) {
    aexists3(this);
    aoutput3(out, this);
    this.finished = true;
    const { buffer, h: h2 } = this;
    let { pos } = this;
    if (pos) {
      buffer[pos++] = 1;
      for (; pos < 16; pos++)
        buffer[pos] = 0;
      this.process(buffer, 0, true);
    }
    this.finalize();
    let opos = 0;
    for (let i = 0; i < 8; i++) {
      out[opos++] = h2[i] >>> 0;
      out[opos++] = h2[i] >>> 8;
    }
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
};
var poly13052 = /* @__PURE__ */ wrapMacConstructor(32, (key) => new Poly13052(key));

// ../ts/node_modules/@noble/ciphers/chacha.js
function chachaCore2(s2, k, n, out, cnt, rounds = 20) {
  let y00 = s2[0], y01 = s2[1], y02 = s2[2], y03 = s2[3], y04 = k[0], y05 = k[1], y06 = k[2], y07 = k[3], y08 = k[4], y09 = k[5], y10 = k[6], y11 = k[7], y12 = cnt, y13 = n[0], y14 = n[1], y15 = n[2];
  let x00 = y00, x01 = y01, x02 = y02, x03 = y03, x04 = y04, x05 = y05, x06 = y06, x07 = y07, x08 = y08, x09 = y09, x10 = y10, x11 = y11, x12 = y12, x13 = y13, x14 = y14, x15 = y15;
  for (let r = 0; r < rounds; r += 2) {
    x00 = x00 + x04 | 0;
    x12 = rotl2(x12 ^ x00, 16);
    x08 = x08 + x12 | 0;
    x04 = rotl2(x04 ^ x08, 12);
    x00 = x00 + x04 | 0;
    x12 = rotl2(x12 ^ x00, 8);
    x08 = x08 + x12 | 0;
    x04 = rotl2(x04 ^ x08, 7);
    x01 = x01 + x05 | 0;
    x13 = rotl2(x13 ^ x01, 16);
    x09 = x09 + x13 | 0;
    x05 = rotl2(x05 ^ x09, 12);
    x01 = x01 + x05 | 0;
    x13 = rotl2(x13 ^ x01, 8);
    x09 = x09 + x13 | 0;
    x05 = rotl2(x05 ^ x09, 7);
    x02 = x02 + x06 | 0;
    x14 = rotl2(x14 ^ x02, 16);
    x10 = x10 + x14 | 0;
    x06 = rotl2(x06 ^ x10, 12);
    x02 = x02 + x06 | 0;
    x14 = rotl2(x14 ^ x02, 8);
    x10 = x10 + x14 | 0;
    x06 = rotl2(x06 ^ x10, 7);
    x03 = x03 + x07 | 0;
    x15 = rotl2(x15 ^ x03, 16);
    x11 = x11 + x15 | 0;
    x07 = rotl2(x07 ^ x11, 12);
    x03 = x03 + x07 | 0;
    x15 = rotl2(x15 ^ x03, 8);
    x11 = x11 + x15 | 0;
    x07 = rotl2(x07 ^ x11, 7);
    x00 = x00 + x05 | 0;
    x15 = rotl2(x15 ^ x00, 16);
    x10 = x10 + x15 | 0;
    x05 = rotl2(x05 ^ x10, 12);
    x00 = x00 + x05 | 0;
    x15 = rotl2(x15 ^ x00, 8);
    x10 = x10 + x15 | 0;
    x05 = rotl2(x05 ^ x10, 7);
    x01 = x01 + x06 | 0;
    x12 = rotl2(x12 ^ x01, 16);
    x11 = x11 + x12 | 0;
    x06 = rotl2(x06 ^ x11, 12);
    x01 = x01 + x06 | 0;
    x12 = rotl2(x12 ^ x01, 8);
    x11 = x11 + x12 | 0;
    x06 = rotl2(x06 ^ x11, 7);
    x02 = x02 + x07 | 0;
    x13 = rotl2(x13 ^ x02, 16);
    x08 = x08 + x13 | 0;
    x07 = rotl2(x07 ^ x08, 12);
    x02 = x02 + x07 | 0;
    x13 = rotl2(x13 ^ x02, 8);
    x08 = x08 + x13 | 0;
    x07 = rotl2(x07 ^ x08, 7);
    x03 = x03 + x04 | 0;
    x14 = rotl2(x14 ^ x03, 16);
    x09 = x09 + x14 | 0;
    x04 = rotl2(x04 ^ x09, 12);
    x03 = x03 + x04 | 0;
    x14 = rotl2(x14 ^ x03, 8);
    x09 = x09 + x14 | 0;
    x04 = rotl2(x04 ^ x09, 7);
  }
  let oi = 0;
  out[oi++] = y00 + x00 | 0;
  out[oi++] = y01 + x01 | 0;
  out[oi++] = y02 + x02 | 0;
  out[oi++] = y03 + x03 | 0;
  out[oi++] = y04 + x04 | 0;
  out[oi++] = y05 + x05 | 0;
  out[oi++] = y06 + x06 | 0;
  out[oi++] = y07 + x07 | 0;
  out[oi++] = y08 + x08 | 0;
  out[oi++] = y09 + x09 | 0;
  out[oi++] = y10 + x10 | 0;
  out[oi++] = y11 + x11 | 0;
  out[oi++] = y12 + x12 | 0;
  out[oi++] = y13 + x13 | 0;
  out[oi++] = y14 + x14 | 0;
  out[oi++] = y15 + x15 | 0;
}
var chacha202 = /* @__PURE__ */ createCipher2(chachaCore2, {
  counterRight: false,
  counterLength: 4,
  allowShortKeys: false
});
var ZEROS162 = /* @__PURE__ */ new Uint8Array(16);
var updatePadded2 = (h2, msg) => {
  h2.update(msg);
  const leftover = msg.length % 16;
  if (leftover)
    h2.update(ZEROS162.subarray(leftover));
};
var ZEROS322 = /* @__PURE__ */ new Uint8Array(32);
function computeTag2(fn, key, nonce2, ciphertext, AAD) {
  if (AAD !== void 0)
    abytes3(AAD, void 0, "AAD");
  const authKey = fn(key, nonce2, ZEROS322);
  const lengths = u64Lengths2(ciphertext.length, AAD ? AAD.length : 0, true);
  const h2 = poly13052.create(authKey);
  if (AAD)
    updatePadded2(h2, AAD);
  updatePadded2(h2, ciphertext);
  h2.update(lengths);
  const res = h2.digest();
  clean3(authKey, lengths);
  return res;
}
var _poly1305_aead2 = (xorStream) => (key, nonce2, AAD) => {
  const tagLength = 16;
  return {
    encrypt(plaintext, output) {
      const plength = plaintext.length;
      output = getOutput2(plength + tagLength, output, false);
      output.set(plaintext);
      const oPlain = output.subarray(0, -tagLength);
      xorStream(key, nonce2, oPlain, oPlain, 1);
      const tag = computeTag2(xorStream, key, nonce2, oPlain, AAD);
      output.set(tag, plength);
      clean3(tag);
      return output;
    },
    decrypt(ciphertext, output) {
      output = getOutput2(ciphertext.length - tagLength, output, false);
      const data = ciphertext.subarray(0, -tagLength);
      const passedTag = ciphertext.subarray(-tagLength);
      const tag = computeTag2(xorStream, key, nonce2, data, AAD);
      if (!equalBytes2(passedTag, tag)) {
        clean3(tag);
        throw new Error("invalid tag");
      }
      output.set(ciphertext.subarray(0, -tagLength));
      xorStream(key, nonce2, output, output, 1);
      clean3(tag);
      return output;
    }
  };
};
var chacha20poly13052 = /* @__PURE__ */ wrapCipher2(
  { blockSize: 64, nonceLength: 12, tagLength: 16, withAAD: true },
  /* @__PURE__ */ _poly1305_aead2(chacha202)
);

// ../ts/node_modules/@noble/hashes/utils.js
function isBytes4(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array" && "BYTES_PER_ELEMENT" in a && a.BYTES_PER_ELEMENT === 1;
}
var atitle2 = (title) => title ? `"${title}" ` : "";
function anumber4(n, title = "") {
  if (typeof n !== "number")
    throw new TypeError(atitle2(title) + "expected number, got " + typeof n);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(atitle2(title) + "expected integer >= 0, got " + n);
  return n;
}
function abytes4(value, length, title = "") {
  if (isBytes4(value) && (length === void 0 || value.length === length))
    return value;
  if (length !== void 0)
    anumber4(length, "length");
  const bytes2 = isBytes4(value);
  const ofLen = length !== void 0 ? ` of length ${length}` : "";
  const got = bytes2 ? `length=${value.length}` : `type=${typeof value}`;
  const message = atitle2(title) + "expected Uint8Array" + ofLen + ", got " + got;
  if (!bytes2)
    throw new TypeError(message);
  throw new RangeError(message);
}
function ahash2(h2) {
  if (typeof h2 !== "function" || typeof h2.create !== "function")
    throw new TypeError("expected hash wrapped by utils.createHasher");
  anumber4(h2.outputLen);
  anumber4(h2.blockLen);
  if (h2.outputLen < 1 || h2.blockLen < 1)
    throw new Error("hash blockLen / outputLen must be >= 1");
}
var aobject2 = (value, label) => {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError((label === "object" ? "" : `"${label}" `) + "expected object, got type=" + typeof value);
};
var aopts = (value, label) => {
  aobject2(value, label);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null)
    throw new TypeError(`"${label}" expected plain object`);
  if (Object.hasOwn(value, "__proto__"))
    throw new TypeError(`"${label}.__proto__" is not allowed`);
};
function aexists4(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("hash was destroyed");
  if (checkFinished && instance.finished)
    throw new Error("digest() was already called");
}
function aoutput4(out, instance) {
  abytes4(out, void 0, "output");
  const min = instance.outputLen;
  if (!(out.length >= min)) {
    throw new RangeError('"output" expected length >= ' + min);
  }
}
function clean4(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
function createView3(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
function rotr2(word, shift) {
  return word << 32 - shift | word >>> shift;
}
function checkOpts3(defaults, opts, title = "opts") {
  aopts(defaults, "defaults");
  if (opts !== void 0)
    aopts(opts, title);
  const merged = Object.assign(/* @__PURE__ */ Object.create(null), defaults, opts);
  return merged;
}
function createHasher3(hashCons, info = {}) {
  if (typeof hashCons !== "function")
    throw new TypeError('"hashCons" expected function, got type=' + typeof hashCons);
  info = checkOpts3({}, info, "info");
  const hashC = (msg, opts) => hashCons(opts).update(msg).digest();
  const tmp = hashCons(void 0);
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.canXOF = tmp.canXOF;
  hashC.create = (opts) => hashCons(opts);
  Object.assign(hashC, info);
  return Object.freeze(hashC);
}
var oidNist3 = (suffix) => ({
  // Current NIST hashAlgs suffixes used here fit in one DER subidentifier octet.
  // Larger suffix values would need base-128 OID encoding and a different length byte.
  oid: Uint8Array.from([6, 9, 96, 134, 72, 1, 101, 3, 4, 2, suffix])
});

// ../ts/node_modules/@noble/hashes/hmac.js
var _HMAC2 = class {
  oHash;
  iHash;
  blockLen;
  outputLen;
  canXOF = false;
  finished = false;
  destroyed = false;
  constructor(hash, key) {
    ahash2(hash);
    abytes4(key, void 0, "key");
    this.iHash = hash.create();
    if (typeof this.iHash.update !== "function")
      throw new Error("expected Hash instance");
    this.blockLen = this.iHash.blockLen;
    this.outputLen = this.iHash.outputLen;
    const blockLen = this.blockLen;
    const pad = new Uint8Array(blockLen);
    pad.set(key.length > blockLen ? hash.create().update(key).digest() : key);
    for (let i = 0; i < pad.length; i++)
      pad[i] ^= 54;
    this.iHash.update(pad);
    this.oHash = hash.create();
    for (let i = 0; i < pad.length; i++)
      pad[i] ^= 54 ^ 92;
    this.oHash.update(pad);
    clean4(pad);
  }
  update(buf) {
    aexists4(this);
    this.iHash.update(buf);
    return this;
  }
  digestInto(out) {
    aexists4(this);
    aoutput4(out, this);
    this.finished = true;
    const buf = out.subarray(0, this.outputLen);
    this.iHash.digestInto(buf);
    this.oHash.update(buf);
    this.oHash.digestInto(buf);
    this.destroy();
  }
  digest() {
    const out = new Uint8Array(this.oHash.outputLen);
    this.digestInto(out);
    return out;
  }
  _cloneInto(to) {
    to ||= Object.create(Object.getPrototypeOf(this), {});
    const { oHash, iHash, finished, destroyed, blockLen, outputLen, canXOF } = this;
    to = to;
    to.finished = finished;
    to.destroyed = destroyed;
    to.blockLen = blockLen;
    to.outputLen = outputLen;
    to.canXOF = canXOF;
    to.oHash = oHash._cloneInto(to.oHash);
    to.iHash = iHash._cloneInto(to.iHash);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
  destroy() {
    this.destroyed = true;
    this.oHash.destroy();
    this.iHash.destroy();
  }
};
var hmac2 = /* @__PURE__ */ (() => {
  const hmac_ = ((hash, key, message) => new _HMAC2(hash, key).update(message).digest());
  hmac_.create = (hash, key) => new _HMAC2(hash, key);
  return hmac_;
})();

// ../ts/node_modules/@noble/hashes/hkdf.js
var HKDF_COUNTER = /* @__PURE__ */ Uint8Array.of(0);
var EMPTY_BUFFER = /* @__PURE__ */ Uint8Array.of();
function expand(hash, prk, info, length = 32, _recycled) {
  ahash2(hash);
  anumber4(length, "length");
  abytes4(prk, void 0, "prk");
  const olen = hash.outputLen;
  if (prk.length < olen)
    throw new Error('"prk" must be at least HashLen octets');
  if (length > 255 * olen)
    throw new Error("Length must be <= 255*HashLen");
  const blocks = Math.ceil(length / olen);
  if (info === void 0)
    info = EMPTY_BUFFER;
  else
    abytes4(info, void 0, "info");
  if (!blocks) {
    if (_recycled)
      clean4(prk);
    return new Uint8Array();
  }
  const okm = _recycled && blocks === 1 ? prk : new Uint8Array(blocks * olen);
  const { iHash, oHash } = hmac2.create(hash, prk);
  const T = _recycled ? prk : new Uint8Array(olen);
  const worker = blocks > 1 ? _recycled?.iHash || hash.create() : void 0;
  for (let counter = 0; counter < blocks - 1; counter++) {
    HKDF_COUNTER[0] = counter + 1;
    const iWork = iHash._cloneInto(worker);
    if (counter)
      iWork.update(T);
    iWork.update(info).update(HKDF_COUNTER).digestInto(T);
    oHash._cloneInto(worker).update(T).digestInto(T);
    okm.set(T, olen * counter);
  }
  HKDF_COUNTER[0] = blocks;
  if (blocks > 1)
    iHash.update(T);
  iHash.update(info).update(HKDF_COUNTER).digestInto(T);
  oHash.update(T).digestInto(T);
  okm.set(T, olen * (blocks - 1));
  iHash.destroy();
  oHash.destroy();
  worker?.destroy();
  if (T !== okm)
    clean4(T);
  clean4(HKDF_COUNTER);
  if (length === okm.length)
    return okm;
  const res = okm.slice(0, length);
  clean4(okm);
  return res;
}
var hkdf = (hash, ikm, salt, info, length) => {
  ahash2(hash);
  if (salt === void 0)
    salt = new Uint8Array(hash.outputLen);
  const HMAC = hmac2.create(hash, salt).update(ikm);
  return expand(hash, HMAC.digest(), info, length, HMAC);
};

// ../ts/node_modules/@noble/hashes/_u64.js
var fromNumH = (n) => n / 2 ** 32 | 0;
var fromNumL = (n) => n >>> 0;
function setU64FromNum(view, byteOffset, n, isLE4) {
  const h2 = fromNumH(n);
  const l = fromNumL(n);
  view.setUint32(byteOffset, isLE4 ? l : h2, isLE4);
  view.setUint32(byteOffset + 4, isLE4 ? h2 : l, isLE4);
}

// ../ts/node_modules/@noble/hashes/_md.js
function Chi2(a, b, c) {
  return a & b ^ ~a & c;
}
function Maj2(a, b, c) {
  return a & b ^ a & c ^ b & c;
}
var HashMD2 = class {
  blockLen;
  outputLen;
  canXOF = false;
  padOffset;
  isLE;
  // For partial updates less than block size
  buffer;
  view;
  finished = false;
  length = 0;
  pos = 0;
  destroyed = false;
  constructor(blockLen, outputLen, padOffset, isLE4) {
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.padOffset = padOffset;
    this.isLE = isLE4;
    this.buffer = new Uint8Array(blockLen);
    this.view = createView3(this.buffer);
  }
  update(data) {
    aexists4(this);
    abytes4(data);
    const { view, buffer, blockLen } = this;
    const len = data.length;
    let processed = false;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        const dataView = createView3(data);
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(dataView, pos);
        processed = true;
        continue;
      }
      buffer.set(pos === 0 && take === len ? data : data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(view, 0);
        this.pos = 0;
        processed = true;
      }
    }
    this.length += data.length;
    if (processed)
      this.roundClean();
    return this;
  }
  digestInto(out) {
    aexists4(this);
    aoutput4(out, this);
    this.finished = true;
    const { buffer, view, blockLen, isLE: isLE4 } = this;
    let { pos } = this;
    buffer[pos++] = 128;
    buffer.fill(0, pos);
    if (this.padOffset > blockLen - pos) {
      this.process(view, 0);
      buffer.fill(0);
    }
    setU64FromNum(view, blockLen - 8, this.length * 8, isLE4);
    this.process(view, 0);
    this.roundClean();
    const oview = out === buffer ? view : createView3(out);
    const len = this.outputLen;
    const outLen = len / 4;
    const state = this.get();
    if (len % 4 || outLen > state.length)
      throw new Error("invalid outputLen");
    for (let i = 0; i < outLen; i++)
      oview.setUint32(4 * i, state[i], isLE4);
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneIntoMeta(to) {
    const { buffer, length, finished, destroyed, pos } = this;
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    if (pos)
      to.buffer.set(buffer);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
var SHA256_IV2 = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  3144134277,
  1013904242,
  2773480762,
  1359893119,
  2600822924,
  528734635,
  1541459225
]);

// ../ts/node_modules/@noble/hashes/sha2.js
var SHA256_K2 = /* @__PURE__ */ Uint32Array.from([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var SHA256_W2 = /* @__PURE__ */ new Uint32Array(64);
var SHA2_32B2 = class extends HashMD2 {
  // We cannot use array here since array allows indexing by variable
  // which means optimizer/compiler cannot use registers.
  // Numeric initializers matter: starting the fields as `undefined` changes
  // V8's field representation and makes sha256 3x slower (measured).
  A = 0;
  B = 0;
  C = 0;
  D = 0;
  E = 0;
  F = 0;
  G = 0;
  H = 0;
  constructor(outputLen, IV) {
    super(64, outputLen, 8, false);
    this.A = IV[0] | 0;
    this.B = IV[1] | 0;
    this.C = IV[2] | 0;
    this.D = IV[3] | 0;
    this.E = IV[4] | 0;
    this.F = IV[5] | 0;
    this.G = IV[6] | 0;
    this.H = IV[7] | 0;
  }
  get() {
    const { A, B, C, D, E, F, G, H: H2 } = this;
    return [A, B, C, D, E, F, G, H2];
  }
  // prettier-ignore
  set(A, B, C, D, E, F, G, H2) {
    this.A = A | 0;
    this.B = B | 0;
    this.C = C | 0;
    this.D = D | 0;
    this.E = E | 0;
    this.F = F | 0;
    this.G = G | 0;
    this.H = H2 | 0;
  }
  _cloneInto(to) {
    (to ||= new this.constructor()).set(...this.get());
    return this._cloneIntoMeta(to);
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4)
      SHA256_W2[i] = view.getUint32(offset, false);
    for (let i = 16; i < 64; i++) {
      const W15 = SHA256_W2[i - 15];
      const W2 = SHA256_W2[i - 2];
      const s0 = rotr2(W15, 7) ^ rotr2(W15, 18) ^ W15 >>> 3;
      const s1 = rotr2(W2, 17) ^ rotr2(W2, 19) ^ W2 >>> 10;
      SHA256_W2[i] = s1 + SHA256_W2[i - 7] + s0 + SHA256_W2[i - 16] | 0;
    }
    let { A, B, C, D, E, F, G, H: H2 } = this;
    for (let i = 0; i < 64; i++) {
      const sigma1 = rotr2(E, 6) ^ rotr2(E, 11) ^ rotr2(E, 25);
      const T1 = H2 + sigma1 + Chi2(E, F, G) + SHA256_K2[i] + SHA256_W2[i] | 0;
      const sigma0 = rotr2(A, 2) ^ rotr2(A, 13) ^ rotr2(A, 22);
      const T2 = sigma0 + Maj2(A, B, C) | 0;
      H2 = G;
      G = F;
      F = E;
      E = D + T1 | 0;
      D = C;
      C = B;
      B = A;
      A = T1 + T2 | 0;
    }
    A = A + this.A | 0;
    B = B + this.B | 0;
    C = C + this.C | 0;
    D = D + this.D | 0;
    E = E + this.E | 0;
    F = F + this.F | 0;
    G = G + this.G | 0;
    H2 = H2 + this.H | 0;
    this.set(A, B, C, D, E, F, G, H2);
  }
  roundClean() {
    clean4(SHA256_W2);
  }
  destroy() {
    this.destroyed = true;
    this.set(0, 0, 0, 0, 0, 0, 0, 0);
    clean4(this.buffer);
  }
};
var _SHA2562 = class extends SHA2_32B2 {
  constructor() {
    super(32, SHA256_IV2);
  }
};
var sha2562 = /* @__PURE__ */ createHasher3(
  () => new _SHA2562(),
  /* @__PURE__ */ oidNist3(1)
);

// ../ts/src/channel.js
var CHANNEL_VERSION = 1;
var KEM_PUBLIC_KEY_LEN = 1216;
var KEM_ENC_LEN = 1120;
var TAG_LEN = 16;
var ID_LEN = 16;
var CONFIRM_LEN = 32;
var PSK_LEN = 32;
var HELLO_LEN = 2 + ID_LEN + 2 * KEM_PUBLIC_KEY_LEN + KEM_ENC_LEN + TAG_LEN;
var REPLY_LEN = 2 * KEM_ENC_LEN + CONFIRM_LEN;
var SEQ_LEN = 8;
var MAX_FRAME_PLAINTEXT = 64 * 1024;
var HELLO_PAIR = 1;
var HELLO_RESUME = 2;
var enc2 = new TextEncoder();
var HELLO_DOMAIN = enc2.encode("rhizo/light/hello/v1");
var REPLY_DOMAIN = enc2.encode("rhizo/light/reply/v1");
var KEYS_DOMAIN = enc2.encode("rhizo/light/keys/v1");
var EXPORT_LABEL = enc2.encode("rhizo/light/export/v1");
var TICKET_ID_DOMAIN = enc2.encode("rhizo/light/ticket-id/v1");
var CLIENT_ID_DOMAIN = enc2.encode("rhizo/light/client-id/v1");
var CONFIRM_NODE = enc2.encode("rhizo/light/confirm/node/v1");
var CONFIRM_CLIENT = enc2.encode("rhizo/light/confirm/client/v1");
var ChannelError = class extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ChannelError";
    this.code = code;
  }
};
function concat2(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
var digest = (...parts) => sha2562(concat2(...parts));
function suite() {
  return new CipherSuite({ kem: new XWing(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() });
}
var ticketId = (secret) => digest(TICKET_ID_DOMAIN, secret).slice(0, ID_LEN);
var clientId = (clientPk) => digest(CLIENT_ID_DOMAIN, clientPk).slice(0, ID_LEN);
async function generateKeyPair() {
  const s2 = suite();
  const pair = await s2.kem.generateKeyPair();
  return {
    secretKey: new Uint8Array(await s2.kem.serializePrivateKey(pair.privateKey)),
    publicKey: new Uint8Array(await s2.kem.serializePublicKey(pair.publicKey))
  };
}
async function exportSecret(ctx) {
  return new Uint8Array(await ctx.export(EXPORT_LABEL, 32));
}
function deriveKeys(h2, enc22, enc3, x1, x2, x3) {
  const salt = digest(KEYS_DOMAIN, h2, enc22, enc3);
  const ikm = concat2(x1, x2, x3);
  const expand2 = (label) => hkdf(sha2562, ikm, salt, enc2.encode(`rhizo/light/v1 ${label}`), 32);
  return {
    c2n: expand2("c2n"),
    n2c: expand2("n2c"),
    nodeConfirm: expand2("node confirm"),
    clientConfirm: expand2("client confirm"),
    pairKey: expand2("pair key")
  };
}
function splitHello(bytes2) {
  if (bytes2.length !== HELLO_LEN) throw new ChannelError("Malformed", "hello of the wrong length");
  let at = 0;
  const take = (n) => bytes2.subarray(at, at += n);
  const head = take(2);
  const id = take(ID_LEN);
  const clientPk = take(KEM_PUBLIC_KEY_LEN);
  const ephPk = take(KEM_PUBLIC_KEY_LEN);
  const enc1 = take(KEM_ENC_LEN);
  const tag1 = take(TAG_LEN);
  return { kind: head[1], prefix: bytes2.subarray(0, HELLO_LEN - KEM_ENC_LEN - TAG_LEN), id, clientPk, ephPk, enc1, tag1 };
}
async function clientStart(kind, nodePk, client, psk) {
  if (nodePk.length !== KEM_PUBLIC_KEY_LEN) throw new ChannelError("Malformed", "node key of the wrong length");
  const s2 = suite();
  const eph = await generateKeyPair();
  const id = kind === HELLO_PAIR ? ticketId(psk) : clientId(client.publicKey);
  const prefix = concat2(Uint8Array.of(CHANNEL_VERSION, kind), id, client.publicKey, eph.publicKey);
  const h1 = digest(HELLO_DOMAIN, nodePk, prefix);
  const ctx1 = await s2.createSenderContext({
    recipientPublicKey: await s2.kem.importKey("raw", nodePk, true),
    info: h1,
    psk: { id, key: psk }
  });
  const enc1 = new Uint8Array(ctx1.enc);
  const tag1 = new Uint8Array(await ctx1.seal(new Uint8Array(0), enc1));
  const x1 = await exportSecret(ctx1);
  const hello = concat2(prefix, enc1, tag1);
  return { state: { hello, h1, x1, client, eph }, hello };
}
async function openExport(s2, enc3, secretKey, info) {
  const ctx = await s2.createRecipientContext({
    recipientKey: await s2.kem.importKey("raw", secretKey, false),
    enc: enc3,
    info
  });
  return exportSecret(ctx);
}
async function clientFinish(state, reply) {
  if (reply.length !== REPLY_LEN) throw new ChannelError("Malformed", "reply of the wrong length");
  const enc22 = reply.subarray(0, KEM_ENC_LEN);
  const enc3 = reply.subarray(KEM_ENC_LEN, 2 * KEM_ENC_LEN);
  const confirmN = reply.subarray(2 * KEM_ENC_LEN);
  const parts = splitHello(state.hello);
  const h2 = digest(REPLY_DOMAIN, state.h1, parts.enc1, parts.tag1);
  const s2 = suite();
  let x2, x3;
  try {
    x2 = await openExport(s2, enc22, state.client.secretKey, h2);
    x3 = await openExport(s2, enc3, state.eph.secretKey, h2);
  } catch {
    throw new ChannelError("HandshakeFailed", "the pairing handshake failed");
  }
  const keys = deriveKeys(h2, enc22, enc3, state.x1, x2, x3);
  if (!equal(hmac2(sha2562, keys.nodeConfirm, CONFIRM_NODE), confirmN)) {
    throw new ChannelError("HandshakeFailed", "the pairing handshake failed");
  }
  const finish = hmac2(sha2562, keys.clientConfirm, CONFIRM_CLIENT);
  return { session: new Session(keys.c2n, keys.n2c), finish, keys };
}
function nonce(seq) {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, seq);
  return n;
}
var Session = class {
  constructor(sendKey, recvKey) {
    this.sendKey = sendKey;
    this.recvKey = recvKey;
    this.sendSeq = 0n;
    this.recvSeq = 0n;
    this.closed = false;
  }
  seal(plaintext) {
    if (this.closed) throw new ChannelError("Closed", "the channel is closed");
    if (plaintext.length > MAX_FRAME_PLAINTEXT) throw new ChannelError("BadFrameSize", "frame too large");
    const n = nonce(this.sendSeq);
    const seq = n.subarray(4);
    const ct = chacha20poly13052(this.sendKey, n, seq).encrypt(plaintext);
    this.sendSeq += 1n;
    return concat2(seq, ct);
  }
  open(frame) {
    try {
      return this.#open(frame);
    } catch (e) {
      this.closed = true;
      throw e;
    }
  }
  #open(frame) {
    if (this.closed) throw new ChannelError("Closed", "the channel is closed");
    if (frame.length < SEQ_LEN + TAG_LEN || frame.length > SEQ_LEN + TAG_LEN + MAX_FRAME_PLAINTEXT) {
      throw new ChannelError("BadFrameSize", `frame of ${frame.length} bytes refused`);
    }
    const seq = new DataView(frame.buffer, frame.byteOffset, SEQ_LEN).getBigUint64(0);
    if (seq < this.recvSeq) throw new ChannelError("Replayed", `frame ${seq} replayed`);
    if (seq > this.recvSeq) throw new ChannelError("OutOfOrder", `frame ${seq} out of order`);
    let plaintext;
    try {
      plaintext = chacha20poly13052(this.recvKey, nonce(seq), frame.subarray(0, SEQ_LEN)).decrypt(frame.subarray(SEQ_LEN));
    } catch {
      throw new ChannelError("Tampered", "a frame failed authentication");
    }
    this.recvSeq += 1n;
    return plaintext;
  }
};

// ../ts/src/ticket.js
var PAIR_TICKET_PREFIX = "rhz1pair";
var ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
var MAX_TICKET_CHARS = 2600;
function base32Decode(text) {
  const lower = text.toLowerCase();
  const out = new Uint8Array(Math.floor(lower.length * 5 / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const ch of lower) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) throw new Error(`damaged pairing ticket (invalid character ${JSON.stringify(ch)})`);
    value = value << 5 | v;
    bits += 5;
    if (bits >= 8) {
      out[at++] = value >>> bits - 8 & 255;
      bits -= 8;
    }
  }
  if (bits >= 5 || (value & (1 << bits) - 1) !== 0) throw new Error("damaged pairing ticket (length)");
  return out;
}
function parsePairTicket(text) {
  const t = text.trim();
  if (t.length > MAX_TICKET_CHARS) throw new Error("damaged pairing ticket (too long)");
  if (t.slice(0, PAIR_TICKET_PREFIX.length).toLowerCase() !== PAIR_TICKET_PREFIX) {
    throw new Error('not a pairing ticket: it must start with "rhz1pair"; run `rhizo pair` again');
  }
  const bytes2 = base32Decode(t.slice(PAIR_TICKET_PREFIX.length));
  const fixed = 1 + KEM_PUBLIC_KEY_LEN + PSK_LEN + 8 + 2;
  if (bytes2.length < fixed || bytes2[0] !== 1) throw new Error("damaged pairing ticket (version or length)");
  const view = new DataView(bytes2.buffer, bytes2.byteOffset, bytes2.byteLength);
  const nodePk = bytes2.slice(1, 1 + KEM_PUBLIC_KEY_LEN);
  const secret = bytes2.slice(1 + KEM_PUBLIC_KEY_LEN, 1 + KEM_PUBLIC_KEY_LEN + PSK_LEN);
  const createdAt = Number(view.getBigUint64(1 + KEM_PUBLIC_KEY_LEN + PSK_LEN));
  const urlLen = view.getUint16(fixed - 2);
  if (bytes2.length !== fixed + urlLen) throw new Error("damaged pairing ticket (URL length)");
  const url = new TextDecoder("utf-8", { fatal: true }).decode(bytes2.subarray(fixed));
  if (!/^wss?:\/\//.test(url)) throw new Error("damaged pairing ticket (URL)");
  return { nodePk, secret, createdAt, url };
}

// ../ts/src/peer.js
var RECONNECT = Object.freeze({ baseDelayMs: 1e3, maxDelayMs: 3e4, maxAttempts: 10, jitter: 0.2 });
var REQUEST_TIMEOUT_MS = 3e4;
var FATAL_CLOSE_CODES = /* @__PURE__ */ new Set([4400, 4401, 4403]);
var MAX_PENDING_REQUESTS = 256;
var hexOf = (bytes2) => Array.from(bytes2, (b) => b.toString(16).padStart(2, "0")).join("");
var bytesOf = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h2) => parseInt(h2, 16));
function reconnectDelay(attempt, random, policy = RECONNECT) {
  const base = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
  const spread = 1 - policy.jitter + 2 * policy.jitter * random();
  return Math.min(Math.round(base * spread), policy.maxDelayMs);
}
var PeerError = class extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PeerError";
    this.code = code;
  }
};
var Link = class {
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
    this.opened.catch(() => {
    });
    this.ws.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) return;
      const bytes2 = new Uint8Array(event.data);
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(bytes2);
      else if (this.onFrame) this.onFrame(bytes2);
      else this.queue.push(bytes2);
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
  send(bytes2) {
    this.ws.send(bytes2);
  }
  close() {
    try {
      this.ws.close(1e3, "bye");
    } catch {
    }
  }
};
var MessagingPeer = class {
  constructor(options = {}) {
    const { ticket, credentials, WebSocket: WebSocketClass, clock, onCredentials, reconnect } = options;
    if (!ticket && !credentials) throw new PeerError("BAD_OPTIONS", "give a pairing ticket or stored credentials");
    this.WebSocket = WebSocketClass ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new PeerError("BAD_OPTIONS", "no WebSocket class: pass one (in Node, use the package's node entry)");
    this.clock = clock ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t), random: Math.random };
    this.policy = { ...RECONNECT, ...reconnect };
    this.ticket = ticket ? parsePairTicket(ticket) : null;
    this.credentials = credentials ?? null;
    this.reportCredentials = onCredentials ?? (() => {
    });
    this.state = "closed";
    this.handlers = { message: [], error: [], peerDisconnected: [], peerConnected: [], state: [], messageState: [], event: [] };
    this.pending = /* @__PURE__ */ new Map();
    this.nextRequestId = 1;
    this.attempts = 0;
    this.timer = null;
    this.link = null;
    this.session = null;
    this.wanted = false;
    this.waiter = null;
    this.clientId = null;
  }
  onMessage(handler) {
    this.handlers.message.push(handler);
  }
  onError(handler) {
    this.handlers.error.push(handler);
  }
  onPeerDisconnected(handler) {
    this.handlers.peerDisconnected.push(handler);
  }
  onPeerConnected(handler) {
    this.handlers.peerConnected.push(handler);
  }
  onConnectionStateChange(handler) {
    this.handlers.state.push(handler);
  }
  onMessageState(handler) {
    this.handlers.messageState.push(handler);
  }
  /** Every other node event, as `GET /v1/events` carries it (`{ type, … }`). */
  onEvent(handler) {
    this.handlers.event.push(handler);
  }
  #emit(kind, ...args) {
    for (const h2 of this.handlers[kind]) {
      try {
        h2(...args);
      } catch {
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
    this.#open().then(() => {
      this.waiter?.resolve();
      this.waiter = null;
    }).catch((error) => {
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
        pairKey: hexOf(keys.pairKey)
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
      this.#emit("error", new PeerError("CHANNEL", `channel closed: ${error.message}`));
      this.link?.close();
      return;
    }
    const waiting = message.request_id != null ? this.pending.get(message.request_id) : void 0;
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
};

// src/live.ts
var STORE = "rhizo.web.light";
var PAIRING_NAME = "web UI";
var REPAIR_GAP_MS = 1e4;
var hooks = null;
var lastPairing = 0;
function stored() {
  try {
    const text = localStorage.getItem(STORE);
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}
function store(credentials) {
  try {
    localStorage.setItem(STORE, JSON.stringify(credentials));
  } catch {
  }
}
function forget() {
  try {
    localStorage.removeItem(STORE);
  } catch {
  }
}
function socketUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`;
}
function wire(peer2, h2) {
  peer2.onMessage(
    (text, from, meta) => h2.onEvent({ type: "message_received", id: meta.id, contact: from, text, sent_at: meta.sentAt })
  );
  peer2.onMessageState((s2) => h2.onEvent({ type: "message_state", id: s2.id, contact: s2.peer, state: s2.state }));
  peer2.onEvent((event) => h2.onEvent(event));
  peer2.onConnectionStateChange((state) => {
    if (app.peer !== peer2) return;
    h2.onState(state);
    if (state === "failed") void repair();
  });
  peer2.onError((e) => {
    if (app.peer !== peer2) return;
    if (e.code === "LAGGED") h2.onLagged();
  });
}
async function open(credentials) {
  const h2 = hooks;
  if (credentials) {
    const peer3 = new MessagingPeer({ credentials });
    app.peer = peer3;
    wire(peer3, h2);
    try {
      await peer3.connect();
      return peer3;
    } catch (e) {
      if (e.code !== "REFUSED") throw e;
      forget();
    }
  }
  lastPairing = Date.now();
  const pairing = await api("POST", "/v1/pairings", { name: PAIRING_NAME, url: socketUrl() });
  const peer2 = new MessagingPeer({ ticket: pairing.ticket, onCredentials: store });
  app.peer = peer2;
  wire(peer2, h2);
  await peer2.connect();
  return peer2;
}
async function startLive(h2) {
  hooks = h2;
  try {
    await open(stored());
  } catch (e) {
    h2.onProblem(`No live connection to the node: ${e.message}`);
  }
}
async function repair() {
  if (!hooks || Date.now() - lastPairing < REPAIR_GAP_MS) return;
  forget();
  try {
    await open(null);
  } catch (e) {
    hooks.onProblem(`No live connection to the node: ${e.message}`);
  }
}
function peer() {
  const p = app.peer;
  if (!p || p.state !== "connected") throw Object.assign(new Error("not connected to the node yet; try again in a moment"), { code: "NOT_CONNECTED" });
  return p;
}
async function stopLive() {
  const p = app.peer;
  app.peer = null;
  hooks = null;
  if (p) {
    const id = p.clientId;
    p.disconnect();
    if (id) await api("DELETE", `/v1/pairings/${encodeURIComponent(id)}`).catch(() => {
    });
  }
  forget();
}
function isOwnPairing(id) {
  return !!app.peer && app.peer.clientId === id;
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
      ...clients.map((c) => h("li", {}, `${c.name}${isOwnPairing(c.id) ? " (this page)" : ""} (paired ${when(c.paired_at)}) `, revokeButton(`client:${c.id}`, c.name, () => revokeClient(c.id, c.name))))
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
    const sent_at = Date.now();
    let m;
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
function connectLive() {
  void startLive({
    onEvent,
    onState: setLive,
    onLagged: () => void loadConversations().then(refreshCurrent),
    onProblem: status
  });
}
var LIVE_MARK = {
  connected: "\u25CF live",
  connecting: "\u25CB connecting",
  reconnecting: "\u25CB reconnecting",
  failed: "\u2717 offline (reload the page)",
  closed: "\u25CB closed"
};
function setLive(state) {
  const was = app.live;
  app.live = state;
  const el = document.getElementById("live");
  if (el) el.textContent = LIVE_MARK[state] ?? state;
  if (state === "connected" && was === "reconnecting") void loadConversations().then(refreshCurrent);
}
function nav(id, label, action) {
  return h("button", { id, type: "button", click: () => void Promise.resolve(action()).catch((e) => status(e.message)) }, label);
}
async function logout() {
  await stopLive();
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
  connectLive();
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
