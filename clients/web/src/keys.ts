// Key changes and verification: the banner, the confirmation before the first send after a
// change, and the safety number with its QR code and "mark verified".

import { $, api, app, Child, Conv, enc, Json, h, show, status } from "./core";
import { openConversation, renderConversations } from "./app";

/** The key-change banner of the open conversation: shown while the contact's `key_changed`. */
export function renderBanner(): void {
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
      h("strong", {}, `⚠ ${c.key}'s keys changed`),
      ` (a new device reads this conversation). Compare the safety number with ${c.key} in person or on a call, then mark it verified. Your next send asks for a confirmation. `,
      h("button", { type: "button", click: () => void safetyView(c.key) }, "Compare and verify"),
    ),
  );
}

/**
 * False (and a warning) the first time the user sends to a contact whose keys changed; the
 * next send goes (as the TUI's second Enter). Verifying the contact clears the warning.
 */
export function confirmKeyChange(c: Conv): boolean {
  if (c.kind !== "contact" || !app.contacts.get(c.key)?.key_changed || app.confirmed.has(c.key)) return true;
  if (app.confirmPending === c.key) {
    app.confirmed.add(c.key);
    app.confirmPending = null;
    const button = document.getElementById("compose-send");
    if (button) button.textContent = "Send";
    return true;
  }
  app.confirmPending = c.key;
  status(`⚠ ${c.key}'s keys changed: send again to send anyway, or verify the safety number first.`);
  const button = document.getElementById("compose-send");
  if (button) button.textContent = "Send anyway";
  return false;
}

// ---- verification --------------------------------------------------------------------------

/** A contact's safety number and QR code, and "mark verified" (which clears a key change). */
export async function safetyView(name: string): Promise<void> {
  const [safety, contacts] = await Promise.all([api("GET", `/v1/contacts/${enc(name)}/safety`), api("GET", "/v1/contacts")]);
  app.contacts = new Map(contacts.map((c: Json) => [c.name, c]));
  const contact = app.contacts.get(name);
  if (!contact) return;
  const conv = app.convs.find((c) => c.kind === "contact" && c.key === name);
  app.current = null;
  renderConversations();
  const row = (k: string, v: Child) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v));
  show(
    h("h2", { id: "view-title" }, `Safety number with ${name}`),
    contact.key_changed ? h("p", { class: "banner", role: "alert" }, `⚠ ${name}'s keys changed since you last verified them.`) : null,
    h("p", {}, `Compare this number with ${name} (in person or on a call), or let them scan the QR code. If it is the same on both sides, mark ${name} verified.`),
    h("p", { id: "safety-number", class: "safety mono" }, safety.safety_number),
    h("pre", { class: "qr", role: "img", "aria-label": `QR code of the safety number with ${name}` }, safety.qr),
    h(
      "table",
      {},
      h("caption", { class: "sr-only" }, `${name}'s identity`),
      h("tbody", {}, row("UID", h("span", { class: "mono" }, contact.uid)), row("Fingerprint", h("span", { class: "mono" }, contact.fingerprint)), row("Devices", String(contact.devices.length))),
    ),
    h("p", { id: "verified-state" }, contact.verified && !contact.key_changed ? "✓ verified" : "✗ not verified"),
    h(
      "div",
      { class: "actions" },
      contact.verified && !contact.key_changed ? null : h("button", { id: "mark-verified", type: "button", click: () => void markVerified(name) }, "They match: mark verified"),
      " ",
      conv ? h("button", { id: "back-to-conv", type: "button", click: () => void openConversation(conv) }, `Back to ${name}`) : null,
    ),
  );
}

export async function markVerified(name: string): Promise<void> {
  try {
    const c = await api("POST", `/v1/contacts/${enc(name)}/verify`, {});
    app.contacts.set(name, { ...app.contacts.get(name), ...c });
    app.confirmed.delete(name);
    status(`${name} is now verified.`);
    await safetyView(name);
  } catch (err) {
    status(`Could not verify ${name}: ${(err as Error).message}`);
  }
}
