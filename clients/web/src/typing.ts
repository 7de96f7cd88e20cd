// Typing indicators: `POST /v1/conversations/{id}/typing` while the user types (throttled), and
// "bob is typing…" under the open conversation from the `typing` event, cleared after a few
// seconds without another one (or when their message arrives).

import { api, app, Conv, enc, Json } from "./core";

/** At most one indicator sent per conversation in this long (the node takes one per 3 s). */
export const TYPING_EVERY_MS = 3000;
/** How long "… is typing" stays without another indicator (docs/local-api.md: about 5 s). */
export const TYPING_SHOWN_MS = 5000;
/** Typists remembered at once (conversations × members); the oldest go first. */
const MAX_TYPISTS = 64;

let lastSent: { key: string; at: number } = { key: "", at: 0 };

/** Who types where: `${conversation}\n${from}` → when the indicator expires (ms). */
const typists = new Map<string, number>();
let expiry: ReturnType<typeof setTimeout> | null = null;

/** The user typed in `c`'s compose box: tell the conversation, at most once per TYPING_EVERY_MS. */
export function noteTyping(c: Conv, now = Date.now()): void {
  if (lastSent.key === c.key && now - lastSent.at < TYPING_EVERY_MS) return;
  lastSent = { key: c.key, at: now };
  // Best effort: an indicator that did not go (offline, hidden, rate limited) is not worth a notice.
  void api("POST", `/v1/conversations/${enc(c.key)}/typing`, {}).catch(() => {});
}

/** A `typing` event: `from` (a UID) types in `conversation` (a contact's name or a group's id). */
export function onTyping(ev: Json, now = Date.now()): void {
  if (typeof ev.conversation !== "string" || typeof ev.from !== "string") return;
  const key = `${ev.conversation}\n${ev.from}`;
  typists.delete(key);
  typists.set(key, now + TYPING_SHOWN_MS);
  while (typists.size > MAX_TYPISTS) typists.delete(typists.keys().next().value as string);
  renderTyping(now);
}

/** `contact`'s message arrived: they are no longer typing in their conversation. */
export function stopTyping(conversation: string): void {
  for (const key of [...typists.keys()]) if (key.startsWith(`${conversation}\n`)) typists.delete(key);
  renderTyping();
}

/** A typist's name: the contact of a 1:1 conversation, else the contact with that UID. */
function typistName(conversation: string, from: string): string {
  if (app.contacts.has(conversation)) return conversation;
  for (const [name, c] of app.contacts) if (c.uid === from) return name;
  return `${from.slice(0, 7)}…`;
}

/** "bob is typing…" / "bob and carol are typing…" for `c`, or "". */
export function typingText(c: Conv | null, now = Date.now()): string {
  if (!c) return "";
  const names: string[] = [];
  for (const [key, until] of typists) {
    const [conversation, from] = key.split("\n");
    if (conversation === c.key && until > now) names.push(typistName(conversation, from));
  }
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
}

/** Shows the open conversation's typists and drops the expired ones when they expire. */
export function renderTyping(now = Date.now()): void {
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
