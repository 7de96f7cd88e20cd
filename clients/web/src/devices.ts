// Devices and light clients: this identity's devices (link one from its ticket, revoke one),
// and light clients (a one-time pairing ticket with its QR code, the paired ones, revoke).
// Revoking asks twice (the button turns into "Confirm"), without a modal dialog.

import { $, api, ApiError, app, enc, h, Json, show, status } from "./core";
import { isOwnPairing } from "./live";
import { renderConversations } from "./app";

/** The device or client a first "Revoke" click armed: the second click revokes it. */
let armed: string | null = null;

function when(secs: unknown): string {
  return typeof secs === "number" ? new Date(secs * 1000).toLocaleString() : "never";
}

function failed(what: string, err: unknown): void {
  status(`${what} (${(err as ApiError).code ?? "ERROR"}): ${(err as Error).message}`);
}

/** A button that revokes on its second press (the first arms it and says so). */
function revokeButton(key: string, label: string, revoke: () => Promise<void>): HTMLElement {
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
      },
    },
    isArmed ? `Confirm: revoke ${label}` : `Revoke ${label}`,
  );
}

/** The devices page (a fresh visit disarms any "Revoke"). */
export function devicesView(): Promise<void> {
  armed = null;
  return renderDevices();
}

async function renderDevices(): Promise<void> {
  app.current = null;
  renderConversations();
  const [devices, clients]: Json[][] = await Promise.all([api("GET", "/v1/devices"), api("GET", "/v1/pairings").catch(() => [])]);
  const deviceName = (d: Json) => d.name ?? d.id.slice(0, 12);
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
        ...devices.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, deviceName(d)),
            h("td", { class: "mono" }, d.fingerprint),
            h("td", {}, d.this_device ? "now" : when(d.last_seen)),
            h("td", {}, d.this_device ? "yes" : ""),
            h("td", {}, d.this_device ? "" : revokeButton(`device:${d.id}`, deviceName(d), () => revokeDevice(d.id, deviceName(d)))),
          ),
        ),
      ),
    ),
    h(
      "form",
      { id: "link-device", class: "stacked", submit: (e) => void linkDevice(e) },
      h("h3", {}, "Link a new device"),
      h("p", { class: "hint" }, "On the new device run `rhizo init --link`, `rhizo run` and `rhizo device link`; paste its ticket here and compare the fingerprint it shows."),
      h("label", { for: "link-ticket" }, "The new device's link ticket (rhz1link…)"),
      h("textarea", { id: "link-ticket", rows: "3", required: true }),
      h("label", { for: "link-name" }, "Its name (optional)"),
      h("input", { id: "link-name", autocomplete: "off" }),
      h("button", { type: "submit" }, "Link device"),
    ),
    h("h3", {}, "Light clients"),
    clients.length
      ? h(
          "ul",
          { id: "pairings" },
          ...clients.map((c) => h("li", {}, `${c.name}${isOwnPairing(c.id) ? " (this page)" : ""} (paired ${when(c.paired_at)}) `, revokeButton(`client:${c.id}`, c.name, () => revokeClient(c.id, c.name)))),
        )
      : h("p", { id: "pairings" }, "No light clients paired."),
    h(
      "form",
      { id: "new-pairing", class: "stacked", submit: (e) => void newPairing(e) },
      h("label", { for: "pairing-name" }, "Pair a light client (a browser page, a phone, a script): its name"),
      h("input", { id: "pairing-name", autocomplete: "off", placeholder: "light client" }),
      h("button", { type: "submit" }, "Make a pairing ticket"),
    ),
    h("div", { id: "pairing-ticket" }),
  );
}

async function linkDevice(e: Event): Promise<void> {
  e.preventDefault();
  const ticket = ($("link-ticket") as HTMLTextAreaElement).value.trim();
  const name = ($("link-name") as HTMLInputElement).value.trim() || undefined;
  try {
    const device = await api("POST", "/v1/devices", { ticket, name });
    await devicesView();
    status(`Linked ${device.name ?? device.id.slice(0, 12)} (fingerprint ${device.fingerprint}).`);
  } catch (err) {
    failed("Could not link the device", err);
  }
}

async function revokeDevice(id: string, label: string): Promise<void> {
  try {
    await api("DELETE", `/v1/devices/${enc(id)}`);
    await devicesView();
    status(`Revoked ${label}.`);
  } catch (err) {
    failed(`Could not revoke ${label}`, err);
  }
}

async function revokeClient(id: string, label: string): Promise<void> {
  try {
    await api("DELETE", `/v1/pairings/${enc(id)}`);
    await devicesView();
    status(`Revoked ${label}.`);
  } catch (err) {
    failed(`Could not revoke ${label}`, err);
  }
}

async function newPairing(e: Event): Promise<void> {
  e.preventDefault();
  const name = ($("pairing-name") as HTMLInputElement).value.trim() || undefined;
  try {
    const p = await api("POST", "/v1/pairings", { name });
    $("pairing-ticket").replaceChildren(
      h("p", {}, `Open the light client and give it this ticket, or let it scan the QR code. It pairs one client, once, until ${when(p.expires_at)}.`),
      h("pre", { class: "qr", role: "img", "aria-label": "QR code of the pairing ticket" }, p.qr),
      h("label", { for: "pair-ticket" }, "Pairing ticket"),
      h("textarea", { id: "pair-ticket", rows: "3", readonly: true }, p.ticket),
    );
    status("A pairing ticket is ready.");
  } catch (err) {
    failed("Could not make a pairing ticket", err);
  }
}

// ---- agents and tasks --------------------------------------------------------------------------

/** Known agents (liveness, skills, load) and tasks on either side, newest first. */
export async function agentsView(): Promise<void> {
  app.current = null;
  renderConversations();
  const [agents, tasks]: Json[][] = await Promise.all([api("GET", "/v1/agents"), api("GET", "/v1/tasks?limit=50")]);
  const cols = (...names: string[]) => h("thead", {}, h("tr", {}, ...names.map((n) => h("th", { scope: "col" }, n))));
  const cell = (v: unknown) => h("td", {}, v === null || v === undefined ? "–" : String(v));
  show(
    h("h2", { id: "view-title" }, "Agents and tasks"),
    agents.length
      ? h(
          "table",
          { id: "agents" },
          h("caption", {}, "Known agents"),
          cols("Agent", "Liveness", "Skills", "Load"),
          h(
            "tbody",
            {},
            ...agents.map((a) =>
              h(
                "tr",
                {},
                cell(a.name ?? `${String(a.uid).slice(0, 7)}…`),
                cell(a.liveness),
                cell((a.card?.skills ?? []).map((s: Json) => s.id).join(", ")),
                cell(a.load ? `${a.load.working} working, ${a.load.queued} queued of ${a.load.capacity}` : null),
              ),
            ),
          ),
        )
      : h("p", { id: "agents" }, "No agents known yet (`rhizo agents find SKILL` looks them up)."),
    tasks.length
      ? h(
          "table",
          { id: "tasks" },
          h("caption", {}, "Tasks, newest first"),
          cols("Task", "Side", "State", "Peer", "Skill", "Updated"),
          h(
            "tbody",
            {},
            ...tasks.map((t) =>
              h(
                "tr",
                {},
                h("td", { class: "mono" }, String(t.id).slice(0, 8)),
                cell(t.side),
                cell(t.status?.state),
                cell(t.peer_name ?? `${String(t.peer).slice(0, 7)}…`),
                cell(t.skill),
                cell(typeof t.updated_at === "number" ? new Date(t.updated_at).toLocaleString() : null),
              ),
            ),
          ),
        )
      : h("p", { id: "tasks" }, "No tasks."),
  );
}
