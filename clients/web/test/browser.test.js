// rhizo in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core with
// `executablePath`; Playwright's own browsers are never downloaded) against two real `rhizo`
// nodes on 127.0.0.1 (RHIZO_BIN names the binary; .ci/run sets it).
//
// - The web UI (issue 18): log in through `rhizo ui`'s link; the page pairs itself as a light
//   client and sends and receives through the clients/ts MessagingPeer over /v1/ws (never
//   /v1/events, never the HTTP send routes), resuming the same pairing after a reload; add a
//   contact by ticket on both sides, exchange messages both ways, see delivered and read change live, axe-core finds no
//   serious violations; the cookie is HttpOnly and SameSite=Strict, a foreign Host or Origin is
//   refused.
// - The light client (issue 17): a page served by this test uses the clients/ts browser build:
//   it pairs with alice's node, messages bob's full node and renders bob's answer.
//
// - Also: a file's progress bar reaching 100 % with an image preview, a group created and used,
//   and a message request from a third node (carol, driven by the API only) accepted in the UI.
// - Files sent from the browser (the file input, and drag and drop) with upload progress;
//   presence (online, then "last seen" when carol stops); a key change (bob links a second
//   device, bob2): the banner, the confirmation before the first send, the safety number and
//   its QR code, and "mark verified" clearing the banner.
// - Typing indicators (bob types: alice's open conversation shows "bob is typing…", which
//   clears by itself) and the health page's connections chart (inline SVG with its samples and
//   a text alternative), mailbox and bandwidth. bob links bob2 in his web UI and later revokes
//   it there (with a confirmation); alice makes a pairing ticket with its QR code and revokes
//   the light client; the agents and tasks page, reached with the keyboard only; a desktop
//   notification (who, never the text) while the tab is hidden.
//
// Screenshots go to $RHIZO_ARTIFACTS (default clients/web/test-artifacts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { BIN, Node, waitFor, whenKeyPackages } from "../../ts/test/support.js";

const here = dirname(fileURLToPath(import.meta.url));
const WEB = join(here, "..");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.RHIZO_ARTIFACTS ?? join(WEB, "test-artifacts");
const STEP_MS = 60_000;

/** Why the browser tests cannot run here, or null. */
async function missing() {
  if (!BIN) return "RHIZO_BIN is not set";
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
  try {
    await import("playwright-core");
  } catch {
    return "playwright-core is not installed (npm ci in clients/web)";
  }
  return null;
}

const skipWhy = await missing();
if (skipWhy) {
  console.log("************************************************************************");
  console.log(`SKIPPED: the browser tests (clients/web/test/browser.test.js): ${skipWhy}`);
  console.log("************************************************************************");
}

test("dist/ is what src/ builds to (the node embeds dist/)", async () => {
  const { execFileSync } = await import("node:child_process");
  const out = mkdtempSync(join(tmpdir(), "rhizo-web-dist-"));
  try {
    execFileSync(process.execPath, [join(WEB, "build.mjs"), out]);
    for (const file of ["index.html", "app.js", "app.css"]) {
      assert.equal(readFileSync(join(out, file), "utf8"), readFileSync(join(WEB, "dist", file), "utf8"), `dist/${file} is stale: run npm run build in clients/web`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

/** GET `path` on `addr` with the given headers; resolves with the status. */
function rawGet(addr, path, headers) {
  const [host, port] = addr.split(":");
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: "GET", headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Logs `page` in to `node`'s web UI with a fresh `rhizo ui` link. */
async function logIn(page, node) {
  const link = node.cli(["ui"]).split("\n")[0].trim();
  assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/ui\/login\?code=[0-9a-f]{64}$/);
  await page.goto(link);
  await page.waitForSelector("#nav-add", { timeout: STEP_MS });
  await page.waitForSelector("#live:text('● live')", { timeout: STEP_MS });
  return link;
}

/**
 * What `page` asks of its node: HTTP requests ("METHOD /path") and WebSockets opened (paths).
 * The web UI must send messages and take events over its MessagingPeer's `/v1/ws` only.
 */
function watchTraffic(page) {
  const seen = { requests: [], sockets: [] };
  page.on("request", (r) => seen.requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  page.on("websocket", (ws) => seen.sockets.push(new URL(ws.url()).pathname));
  return seen;
}

function assertLiveOverSocket(seen, who) {
  assert.ok(seen.sockets.includes("/v1/ws"), `${who}'s page opened /v1/ws`);
  const eventStream = seen.requests.filter((r) => r.endsWith("/v1/events"));
  assert.deepEqual(eventStream, [], `${who}'s page never reads /v1/events`);
  const httpSends = seen.requests.filter((r) => /^POST \/v1\/(conversations|groups)\/[^/]+\/messages$/.test(r) || r === "POST /v1/message");
  assert.deepEqual(httpSends, [], `${who}'s page sends only through MessagingPeer`);
}

/** Sends `text` in the open conversation, retrying while the contact's KeyPackages are not found. */
async function sendInUi(page, text) {
  await waitFor(`"${text}" sent`, async () => {
    await page.evaluate(() => (document.getElementById("status").textContent = ""));
    await page.fill("#compose-text", text);
    await page.press("#compose-text", "Enter");
    await page.waitForFunction(
      (t) => [...document.querySelectorAll("li.msg.out .text")].some((e) => e.textContent === t) || document.getElementById("status").textContent.startsWith("Not sent"),
      text,
      { timeout: STEP_MS },
    );
    const status = await page.textContent("#status");
    if (!status.startsWith("Not sent")) return true;
    if (status.includes("NO_KEY_PACKAGES")) return undefined;
    throw new Error(status);
  });
}

/** Waits until our message `text` on `page` shows one of `states`. */
function outState(page, text, states) {
  return page.waitForFunction(
    ([t, s]) => [...document.querySelectorAll("li.msg.out")].some((li) => li.querySelector(".text")?.textContent === t && s.includes(li.querySelector(".state")?.dataset.state)),
    [text, states],
    { timeout: STEP_MS },
  );
}

/** Runs axe-core on `page`; fails on serious or critical violations. */
async function axeCheck(page, what) {
  const source = readFileSync(join(WEB, "node_modules/axe-core/axe.min.js"), "utf8");
  await page.evaluate(source);
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`), [], `axe-core on ${what}`);
}

/**
 * The health page's connections chart: inline SVG with at least `min` samples (the page samples
 * /v1/stats every 5 s), a line per series, and its text alternative.
 */
async function chartCheck(page, min) {
  await page.waitForFunction((n) => Number(document.querySelector("#connections-chart")?.dataset.samples) >= n, min, { timeout: STEP_MS });
  const chart = await page.$eval("#connections-chart", (svg) => ({
    role: svg.getAttribute("role"),
    title: svg.querySelector("title")?.textContent,
    desc: svg.querySelector("desc")?.textContent,
    lines: [...svg.querySelectorAll("polyline")].map((l) => l.getAttribute("points").trim().split(" ").length),
  }));
  assert.equal(chart.role, "img");
  assert.equal(chart.title, "Connections over time");
  assert.match(chart.desc, /^Connected peers .*Open connections/);
  assert.equal(chart.lines.length, 2, "peers and connections");
  for (const points of chart.lines) assert.ok(points >= min, `a point per sample (${points})`);
}

/**
 * `typist` types in its open conversation; `watcher`'s open conversation with them shows
 * "NAME is typing…", which clears by itself a few seconds later. The node takes one indicator
 * per 3 s per conversation, so a keystroke right after an earlier one may send none: type again
 * (bounded) until one arrives.
 */
async function typingShows(typist, watcher, name) {
  let shown = false;
  for (let i = 0; i < 10 && !shown; i++) {
    await typist.fill("#compose-text", `still typing ${i}`);
    shown = await watcher
      .waitForSelector(`#typing:text("${name} is typing…")`, { timeout: 4_000 })
      .then(() => true)
      .catch(() => false);
  }
  assert.ok(shown, `"${name} is typing…" shown`);
  await shot(watcher, "typing");
  await watcher.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: 15_000 });
  await typist.fill("#compose-text", "");
}

async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

async function webUi(browser, alice, bob, carol) {
  const aliceAddr = readFileSync(join(alice.dir, "api.addr"), "utf8").trim();
  const a = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  const b = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  a.traffic = watchTraffic(a);
  b.traffic = watchTraffic(b);

  // Without logging in: the page says how; a used or unknown code is refused.
  await a.goto(`http://${aliceAddr}/ui/`);
  await a.waitForSelector("text=Not logged in");
  const link = await logIn(a, alice);
  assert.equal((await a.goto(link)).status(), 401, "a login code works once");
  await a.goto(`http://${aliceAddr}/ui/`);
  await a.waitForSelector("#nav-add");
  const [cookie] = await a.context().cookies();
  assert.equal(cookie.name, "rhizo_ui");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  const page = await a.request.get(`http://${aliceAddr}/ui/`);
  assert.match(page.headers()["content-security-policy"], /default-src 'none'; script-src 'self'/);
  // DNS rebinding and cross-site: a foreign Host, or the cookie from another origin, is refused.
  assert.equal(await rawGet(aliceAddr, "/ui/", { host: "rebound.example" }), 403);
  const session = `rhizo_ui=${cookie.value}`;
  assert.equal(await rawGet(aliceAddr, "/v1/contacts", { cookie: session }), 200);
  assert.equal(await rawGet(aliceAddr, "/v1/contacts", { cookie: session, host: "rebound.example" }), 401);
  assert.equal(await rawGet(aliceAddr, "/v1/contacts", { cookie: session, origin: "http://127.0.0.1:1" }), 401);
  assert.equal(await rawGet(aliceAddr, "/v1/contacts", { cookie: session, "sec-fetch-site": "cross-site" }), 401);
  await logIn(b, bob);
  // Each page paired itself with its node, as a light client named "web UI".
  for (const node of [alice, bob]) {
    assert.deepEqual((await node.api("GET", "/v1/pairings")).map((c) => c.name), ["web UI"], `${node.name}'s web UI is paired`);
  }

  // Each adds the other by ticket, in the UI.
  for (const [page, other] of [[a, b], [b, a]]) {
    await other.click("#nav-ticket");
    const ticket = await other.inputValue("#my-ticket");
    await page.click("#nav-add");
    await page.fill("#ticket", ticket);
    if (page === a) await shot(page, "add-contact");
    await page.click("form#add-contact button[type=submit]");
    await page.waitForSelector("#compose-text", { timeout: STEP_MS });
  }
  await b.click("#nav-health");
  await b.waitForSelector("#health");
  await chartCheck(b, 1);

  // alice → bob: delivered while bob looks elsewhere, read once he opens it, all live.
  await a.click('button[data-conv="bob"]');
  await a.waitForSelector("#compose-text");
  await sendInUi(a, "hello bob, from the web");
  await outState(a, "hello bob, from the web", ["delivered"]);
  await b.waitForSelector('button[data-conv="alice"][data-unread="1"]', { timeout: STEP_MS });
  await shot(b, "conversations");
  await b.click('button[data-conv="alice"]');
  await b.waitForSelector('li.msg.in:has-text("hello bob, from the web")');
  await outState(a, "hello bob, from the web", ["read"]);

  // bob → alice: it shows in alice's open conversation, and bob sees it read.
  await sendInUi(b, "hi alice, web to web");
  await a.waitForSelector('li.msg.in:has-text("hi alice, web to web")', { timeout: STEP_MS });
  await outState(b, "hi alice, web to web", ["read"]);
  await axeCheck(a, "the conversation");
  await typingShows(b, a, "bob");
  // Presence: bob is online, in the conversation's header and in the list.
  await a.waitForSelector("#presence:text('● online')", { timeout: STEP_MS });
  await a.waitForSelector('button[data-conv="bob"] .presence:text("● online")');
  await shot(a, "conversation");

  // Files from the browser: one picked with the file input, one dropped on the conversation.
  // Each upload's bar reaches 100 %, and bob's open conversation shows the file received.
  await a.setInputFiles("#file-input", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.alloc(3 << 20, "rhizo notes ") });
  await a.waitForSelector('li.upload[data-upload-state="sent"]:has-text("notes.txt") progress[value="100"]', { timeout: STEP_MS });
  await b.waitForSelector('li.msg.in:has-text("notes.txt") .file[data-file-state="done"] progress[value="100"]', { timeout: STEP_MS });
  const dropped = await a.evaluateHandle(() => {
    const data = new DataTransfer();
    data.items.add(new File(["dropped on the conversation"], "dropped.txt", { type: "text/plain" }));
    return data;
  });
  await a.dispatchEvent("#view", "dragover", { dataTransfer: dropped });
  await a.dispatchEvent("#view", "drop", { dataTransfer: dropped });
  await a.waitForSelector('li.upload[data-upload-state="sent"]:has-text("dropped.txt")', { timeout: STEP_MS });
  await a.waitForSelector('li.msg.out:has-text("dropped.txt")', { timeout: STEP_MS });
  await b.waitForSelector('li.msg.in:has-text("dropped.txt") .file[data-file-state="done"]', { timeout: STEP_MS });
  await shot(a, "upload");

  // A file: bob sends a picture; alice's open conversation shows its progress reach 100 % and a
  // preview.
  const picture = join(bob.dir, "picture.png");
  writeFileSync(picture, await b.screenshot());
  await bob.api("POST", "/v1/files", { to: "alice", path: picture, caption: "a picture" });
  await a.waitForSelector('li.msg.in .file[data-file-state="done"] progress[value="100"]', { timeout: STEP_MS });
  await a.waitForFunction(() => document.querySelector("img.preview")?.naturalWidth > 0, null, { timeout: STEP_MS });
  await shot(a, "file");

  // A group: alice creates one with bob and writes to it; bob's UI lists it and shows the text,
  // and alice sees it delivered to bob's device.
  await a.click("#nav-group");
  await a.fill("#group-name", "friends");
  await a.fill("#group-members", "bob");
  await a.click("form#new-group button[type=submit]");
  await a.waitForSelector("#view-title:text('# friends')", { timeout: STEP_MS });
  await sendInUi(a, "hello friends");
  await b.waitForSelector('button.conv:has-text("# friends")', { timeout: STEP_MS });
  await b.click('button.conv:has-text("# friends")');
  await b.waitForSelector('li.msg.in:has-text("hello friends")', { timeout: STEP_MS });
  await a.waitForFunction(() => /1\/1 delivered/.test(document.querySelector("li.msg.out .state")?.textContent ?? ""), null, { timeout: STEP_MS });
  await shot(a, "group");

  // A message request: carol (not a contact) writes to alice, who accepts in the UI.
  await carol.api("POST", "/v1/contacts", { ticket: (await alice.api("GET", "/v1/invite")).ticket, name: "alice" });
  await whenKeyPackages("alice's KeyPackages (for carol)", () => carol.api("POST", "/v1/message", { to: "alice", text: "hello from a stranger" }));
  await a.waitForSelector("#nav-requests:text('Requests (1)')", { timeout: STEP_MS });
  await a.click("#nav-requests");
  await a.waitForSelector("#request-name-0");
  await axeCheck(a, "the requests");
  await shot(a, "requests");
  await waitFor("the request accepted", async () => {
    await a.fill("#request-name-0", "carol");
    await a.click("li.request button:text('Accept')");
    await a.waitForFunction(() => /^(Accepted|Failed)/.test(document.getElementById("status").textContent), null, { timeout: STEP_MS });
    const status = await a.textContent("#status");
    if (status === "Accepted") return true;
    if (/NOT_IN_DHT|not found/i.test(status)) return undefined;
    throw new Error(status);
  });
  await a.click('button[data-conv="carol"]');
  await a.waitForSelector('li.msg.in:has-text("hello from a stranger")', { timeout: STEP_MS });
  await a.click("#nav-health");
  await a.waitForSelector("#health");
  // By now the page has sampled /v1/stats for a while: a line, not a dot; alice has peers.
  await chartCheck(a, 2);
  assert.match(await a.textContent("#chart-summary"), /Connected peers over the last .*: now [1-9]/);
  assert.match(await a.textContent("#health"), /Mailbox held for others/);
  // The node counts the bytes over its connections (alice has talked to bob and carol).
  assert.match(await a.textContent("#health"), /Bandwidthreceived [1-9][\d.]* (B|KiB|MiB), sent [1-9]/);
  await axeCheck(a, "the health page");
  await shot(a, "health");
  return { a, b };
}

/**
 * bob links a second device (bob2); alice learns its key from the DHT: her open conversation
 * with bob shows the key-change banner live, her first send asks for a confirmation, and
 * comparing the safety number (the same bob sees) and marking bob verified clears it.
 */
async function keyChange(a, b, alice, bob) {
  // alice has bob's conversation open before bob links the device (the link and alice learning
  // of it can be quick: the banner must come live, and not be there before).
  await a.click('button[data-conv="bob"]');
  await a.waitForSelector("#compose-text");
  assert.equal(await a.$("#key-banner"), null, "no banner before the change");
  const bob2 = new Node("bob2", ["init", "--link"]);
  try {
    await bob2.start(["--bootstrap", await alice.listenAddr()]);
    const ticket = await waitFor("a link ticket from bob2", () => {
      try {
        return bob2.cli(["device", "link", "--no-qr"]).split("\n").find((l) => l.startsWith("rhz1link"));
      } catch {
        return undefined;
      }
    });
    // bob links it in his web UI.
    await b.click("#nav-devices");
    await b.fill("#link-ticket", ticket);
    await b.fill("#link-name", "bob2");
    await b.click("form#link-device button[type=submit]");
    await b.waitForSelector("#status:has-text('Linked bob2')", { timeout: STEP_MS });
    await b.waitForSelector('#devices td:text("bob2")');
    await waitFor("bob2 linked", () => {
      try {
        return JSON.parse(bob2.cli(["device", "list", "--json"])).length === 2 ? true : undefined;
      } catch {
        return undefined;
      }
    });
    // alice's node fetches bob's device list from the DHT (re-adding him by UID) until it has
    // the new device.
    await waitFor("alice sees bob's new device", async () => {
      await alice.api("POST", "/v1/contacts", { uid: bob.uid, name: "bob" });
      const contacts = await alice.api("GET", "/v1/contacts");
      return contacts.find((c) => c.name === "bob")?.key_changed ? true : undefined;
    });
    await a.waitForSelector("#key-banner:has-text(\"bob's keys changed\")", { timeout: STEP_MS });
    await a.waitForSelector('button[data-conv="bob"]:has-text("⚠ bob")');
    await axeCheck(a, "the key-change banner");
    await shot(a, "key-change");

    // The first send asks; the second goes.
    await a.fill("#compose-text", "after the key change");
    await a.press("#compose-text", "Enter");
    await a.waitForSelector("#status:has-text('send again to send anyway')");
    assert.equal(await a.textContent("#compose-send"), "Send anyway");
    assert.equal(await a.$('li.msg.out:has-text("after the key change")'), null, "not sent before the confirmation");
    await sendInUi(a, "after the key change");
    await waitFor("bob has the text", async () => {
      const history = await bob.api("GET", "/v1/conversations/alice/messages");
      return history.some((m) => m.text === "after the key change") ? true : undefined;
    });

    // Verify: the safety number alice sees is the one bob sees; marking it clears the banner.
    await a.click("#key-banner button");
    await a.waitForSelector("#safety-number");
    const bobSees = (await bob.api("GET", "/v1/contacts")).find((c) => c.name === "alice").safety_number;
    assert.equal(await a.textContent("#safety-number"), bobSees);
    assert.ok((await a.textContent("pre.qr")).split("\n").length > 10, "a QR code of the safety number");
    await assert.rejects(alice.api("GET", "/v1/contacts/nobody/safety"), /404.*UNKNOWN_CONTACT/);
    await axeCheck(a, "the safety number");
    await shot(a, "safety-number");
    await a.click("#mark-verified");
    await a.waitForSelector("#verified-state:text('✓ verified')", { timeout: STEP_MS });
    await a.click("#back-to-conv");
    await a.waitForSelector("#compose-text");
    assert.equal(await a.$("#key-banner"), null, "verifying clears the banner");
    assert.equal((await alice.api("GET", "/v1/contacts")).find((c) => c.name === "bob").key_changed, false);
  } catch (e) {
    e.message += `\n--- bob2 ---\n${bob2.logs()}`;
    throw e;
  } finally {
    await bob2.stop();
    bob2.remove();
  }
}

/** carol goes away: alice's open conversation with her turns from online to last seen, live. */
async function presenceGoesOffline(a, carol) {
  await a.click('button[data-conv="carol"]');
  await a.waitForSelector("#presence:text('● online')", { timeout: STEP_MS });
  await carol.stop();
  await a.waitForSelector("#presence:has-text('last seen')", { timeout: STEP_MS });
  await a.waitForSelector('button[data-conv="carol"] .presence:has-text("last seen")');
}

/**
 * A desktop notification while the tab is hidden and notifications are allowed: it says who
 * wrote, never the text. (Headless Chromium shows none, so the page's Notification is a
 * recorder, and the tab is made to look hidden.)
 */
async function notifies(a, bob) {
  await a.evaluate(() => {
    globalThis.shown = [];
    globalThis.Notification = Object.assign(
      function (title, options) {
        globalThis.shown.push(`${title}: ${options?.body}`);
      },
      { permission: "granted", requestPermission: async () => "granted" },
    );
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  });
  await whenKeyPackages("bob's text to alice", () => bob.api("POST", "/v1/message", { to: "alice", text: "a private text" }));
  await a.waitForFunction(() => globalThis.shown.length > 0, null, { timeout: STEP_MS });
  const shown = await a.evaluate(() => globalThis.shown);
  assert.ok(shown.includes("rhizo: New message from bob"), shown.join("; "));
  assert.ok(!shown.some((n) => n.includes("private")), "never the text");
  await a.evaluate(() => delete document.hidden);
}

/**
 * Managing devices and light clients in the web UI: bob revokes bob2 (the button asks for a
 * confirmation first), alice makes a pairing ticket (with its QR code) and revokes the light
 * client paired earlier; the agents and tasks page.
 */
async function devicesAndAgents(a, b, alice, bob) {
  await b.click("#nav-devices");
  await b.waitForSelector('#devices td:text("bob2")');
  await b.click('button[data-revoke^="device:"]');
  await b.waitForSelector('button[data-revoke^="device:"]:has-text("Confirm: revoke bob2")');
  assert.equal(JSON.parse(bob.cli(["device", "list", "--json"])).length, 2, "not revoked before the confirmation");
  await b.click('button[data-revoke^="device:"]');
  await b.waitForSelector("#status:text('Revoked bob2.')", { timeout: STEP_MS });
  assert.equal(await b.$('#devices td:text("bob2")'), null);
  assert.equal(JSON.parse(bob.cli(["device", "list", "--json"])).length, 1);

  // A reload resumes the page's pairing (its credentials are in localStorage): no new one.
  await a.reload();
  await a.waitForSelector("#live:text('● live')", { timeout: STEP_MS });
  assert.deepEqual((await alice.api("GET", "/v1/pairings")).map((c) => c.name).sort(), ["browser", "web UI"]);
  await a.click("#nav-devices");
  await a.waitForSelector('#pairings li:has-text("browser")');
  await a.waitForSelector('#pairings li:has-text("web UI (this page)")');
  await a.fill("#pairing-name", "tablet");
  await a.click("form#new-pairing button[type=submit]");
  await a.waitForSelector("#pair-ticket");
  assert.match(await a.inputValue("#pair-ticket"), /^rhz1pair/);
  assert.ok((await a.textContent("#pairing-ticket pre.qr")).split("\n").length > 10, "a QR code of the pairing ticket");
  await axeCheck(a, "the devices page");
  await shot(a, "devices");
  await a.click('#pairings li:has-text("browser") button[data-revoke^="client:"]');
  await a.click('#pairings li:has-text("browser") button[data-revoke^="client:"]:has-text("Confirm")');
  await a.waitForSelector("#status:text('Revoked browser.')", { timeout: STEP_MS });
  assert.deepEqual((await alice.api("GET", "/v1/pairings")).map((c) => c.name), ["web UI"]);
  assert.equal(await a.textContent("#live"), "● live", "the page's own pairing is untouched");
  assertLiveOverSocket(a.traffic, "alice");
  assertLiveOverSocket(b.traffic, "bob");

  // Keyboard only: Tab to "Agents" from the top of the page, Enter opens it.
  await a.evaluate(() => document.activeElement?.blur());
  let focused = "";
  for (let i = 0; i < 40 && focused !== "nav-agents"; i++) {
    await a.keyboard.press("Tab");
    focused = await a.evaluate(() => document.activeElement?.id ?? "");
  }
  assert.equal(focused, "nav-agents", "Tab reaches the Agents button");
  await a.keyboard.press("Enter");
  await a.waitForSelector("#view-title:text('Agents and tasks')");
  await a.waitForSelector("#agents");
  await a.waitForSelector("#tasks");
  await axeCheck(a, "the agents page");

  // Logging out ends the session and revokes the page's pairing.
  await a.click("#nav-logout");
  await a.waitForSelector("text=Not logged in");
  assert.deepEqual(await alice.api("GET", "/v1/pairings"), []);
}

/** Serves the light-client page and the clients/ts browser build from a temp dir. */
async function servePage() {
  const { build } = await import("esbuild");
  const dir = mkdtempSync(join(tmpdir(), "rhizo-light-page-"));
  await build({ entryPoints: [join(WEB, "../ts/src/index.js")], outfile: join(dir, "light.js"), bundle: true, format: "esm", platform: "browser", logLevel: "warning" });
  const types = { ".html": "text/html", ".js": "text/javascript" };
  const server = createServer((req, res) => {
    const name = req.url === "/" ? "index.html" : req.url.slice(1);
    const path = name === "light.js" ? join(dir, name) : join(here, "light-page", name);
    if (!/^[a-z.]+$/.test(name) || !existsSync(path)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(readFileSync(path));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => (server.close(), rmSync(dir, { recursive: true, force: true })) };
}

async function lightClient(browser, alice, bob) {
  const served = await servePage();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(served.url);
    const ticket = alice.cli(["pair", "--no-qr", "--name", "browser"]).split("\n").find((l) => l.startsWith("rhz1pair"));
    await page.fill("#ticket", ticket);
    await page.click("#pair button");
    await page.waitForSelector("#state:text('connected')", { timeout: STEP_MS });
    await page.fill("#to", "bob");
    await page.fill("#text", "from a browser light client");
    await page.click("#send button");
    await page.waitForSelector('li.sent[data-state="delivered"], li.sent[data-state="read"]', { timeout: STEP_MS });
    await waitFor("bob has the text", async () => {
      const history = await bob.api("GET", "/v1/conversations/alice/messages");
      return history.some((m) => m.text === "from a browser light client") ? true : undefined;
    });
    await bob.api("POST", "/v1/message", { to: "alice", text: "to the browser" });
    await page.waitForSelector('li.received:text("bob: to the browser")', { timeout: STEP_MS });
    await shot(page, "light-client");
  } finally {
    served.close();
  }
}

test("in headless Chromium against real nodes: the web UI, then a light client", { skip: skipWhy ?? false, timeout: 300_000 }, async () => {
  const { chromium } = await import("playwright-core");
  const alice = new Node("alice");
  const bob = new Node("bob");
  const carol = new Node("carol");
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-proxy-server"] });
  try {
    await alice.start();
    await bob.start(["--bootstrap", await alice.listenAddr()]);
    await carol.start(["--bootstrap", await alice.listenAddr()]);
    // The web UI first: it makes alice and bob contacts, whom the light client then uses.
    const { a, b } = await webUi(browser, alice, bob, carol);
    await keyChange(a, b, alice, bob);
    await presenceGoesOffline(a, carol);
    await lightClient(browser, alice, bob);
    await notifies(a, bob);
    await devicesAndAgents(a, b, alice, bob);
  } catch (e) {
    e.message += `\n--- alice ---\n${alice.logs()}\n--- bob ---\n${bob.logs()}`;
    throw e;
  } finally {
    await browser.close();
    alice.remove();
    bob.remove();
    carol.remove();
  }
});
