// Against real `rhizo` processes on 127.0.0.1 (RHIZO_BIN names the binary; .ci/run sets it):
// alice and bob run full nodes and are contacts; a MessagingPeer pairs with alice's node
// (`rhizo pair`), discovers bob, checks his key, messages him and sees `delivered`, gets his
// answer, uses a group, a file and their events, sees him go offline; then reconnects with its
// stored credentials.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { MessagingPeer } from "../src/node.js";
import { BIN, Node, befriend, freePort, waitFor, whenKeyPackages } from "./support.js";

test("a MessagingPeer paired to alice's node messages bob's full node both ways", { skip: BIN ? false : "RHIZO_BIN is not set", timeout: 240_000 }, async () => {
  const alice = new Node("alice");
  const bob = new Node("bob");
  let peer;
  try {
    await alice.start();
    await bob.start(["--bootstrap", await alice.listenAddr()]);
    await befriend(alice, bob);
    const ticket = alice.cli(["pair", "--no-qr", "--name", "ts"]).split("\n").find((l) => l.startsWith("rhz1pair"));
    let credentials;
    peer = new MessagingPeer({ ticket, onCredentials: (c) => (credentials = c) });
    const states = [];
    const received = [];
    const delivered = new Set();
    const offline = [];
    peer.onConnectionStateChange((s) => states.push(s));
    peer.onMessage((text, from) => received.push({ text, from }));
    peer.onMessageState((m) => m.state === "delivered" && delivered.add(m.id));
    peer.onPeerDisconnected((p) => offline.push(p));
    await peer.connect();
    assert.equal(peer.state, "connected");
    assert.ok(credentials?.pairKey, "no credentials reported after pairing");
    assert.deepEqual((await alice.api("GET", "/v1/pairings")).map((c) => c.id), [peer.clientId], "clientId is the pairing's id");

    const peers = await peer.discoverPeers();
    assert.equal(peers.find((p) => p.id === "bob")?.uid, bob.uid);
    const key = await peer.requestPublicKey("bob");
    assert.equal(key.uid, bob.uid);
    assert.deepEqual(key.devices, [bob.peerId]);

    const sent = await whenKeyPackages("bob's KeyPackages", () => peer.sendMessage("bob", "from the TypeScript client"));
    await waitFor("delivered", () => (delivered.has(sent.id) ? true : undefined));
    await waitFor("bob has the text", async () => {
      const history = await bob.api("GET", "/v1/conversations/alice/messages");
      return history.some((m) => m.text === "from the TypeScript client") ? true : undefined;
    });

    await whenKeyPackages("alice's KeyPackages", () => bob.api("POST", "/v1/message", { to: "alice", text: "to the TypeScript client" }));
    const got = await waitFor("bob's message", () => received.find((m) => m.text === "to the TypeScript client"));
    assert.equal(got.from, "bob");

    // Beyond seed 002: groups, files and tasks, with their events.
    const events = [];
    peer.onEvent((e) => events.push(e));
    assert.deepEqual(await peer.tasks(), []);
    const group = await alice.api("POST", "/v1/groups", { name: "pals", members: ["bob"] });
    assert.ok((await peer.groups()).some((g) => g.id === group.id && g.name === "pals"));
    const groupSent = await peer.sendGroupMessage(group.id, "to the group from the client");
    assert.equal(groupSent.total, 1);
    await waitFor("the group message delivered", () => events.find((e) => e.type === "group_message_state" && e.id === groupSent.id && e.delivered >= 1));
    const note = join(bob.dir, "note.txt");
    writeFileSync(note, "a file for the light client");
    await bob.api("POST", "/v1/files", { to: "alice", path: note });
    await waitFor("the file's progress", () => events.find((e) => e.type === "file_progress" && e.state === "done"));
    assert.ok((await peer.files()).some((f) => f.name === "note.txt" && f.state === "done"));

    await bob.stop();
    await waitFor("bob offline", () => (offline.includes("bob") ? true : undefined));

    // Stored credentials reconnect without a ticket.
    peer.disconnect();
    assert.equal(peer.state, "closed");
    peer = new MessagingPeer({ credentials });
    await peer.connect();
    assert.ok((await peer.discoverPeers()).some((p) => p.id === "bob"));
    assert.deepEqual(states, ["connecting", "connected", "closed"]);
  } catch (e) {
    e.message += `\n--- alice ---\n${alice.logs()}\n--- bob ---\n${bob.logs()}`;
    throw e;
  } finally {
    peer?.disconnect();
    alice.remove();
    bob.remove();
  }
});

test("through a gateway, across a gateway restart: the client reconnects and messages flow", { skip: BIN ? false : "RHIZO_BIN is not set", timeout: 300_000 }, async () => {
  const gateway = new Node("gateway");
  const alice = new Node("alice");
  const bob = new Node("bob");
  let peer;
  try {
    const [wsPort, p2pPort] = [await freePort(), await freePort()];
    await gateway.start(["--gateway", `127.0.0.1:${wsPort}`], `/ip4/127.0.0.1/tcp/${p2pPort}`);
    const g = `/ip4/127.0.0.1/tcp/${p2pPort}/p2p/${gateway.peerId}`;
    await alice.start(["--bootstrap", g, "--trusted", g]);
    await bob.start(["--bootstrap", g]);
    await befriend(alice, bob);
    const url = `ws://127.0.0.1:${wsPort}/v1/gateway/${alice.peerId}`;
    const ticket = alice.cli(["pair", "--no-qr", "--name", "phone", "--url", url]).split("\n").find((l) => l.startsWith("rhz1pair"));
    peer = new MessagingPeer({ ticket });
    const states = [];
    const received = [];
    const delivered = new Set();
    peer.onConnectionStateChange((s) => states.push(s));
    peer.onMessage((text, from) => received.push({ text, from }));
    peer.onMessageState((m) => m.state === "delivered" && delivered.add(m.id));
    await peer.connect();
    const first = await whenKeyPackages("bob's KeyPackages", () => peer.sendMessage("bob", "through the gateway"));
    await waitFor("delivered", () => (delivered.has(first.id) ? true : undefined));

    // Kill the gateway mid-session and bring it back on the same ports.
    await gateway.stop();
    await waitFor("reconnecting", () => (peer.state === "reconnecting" ? true : undefined));
    await gateway.restart();
    await waitFor("connected again", () => (peer.state === "connected" ? true : undefined), 150_000);
    const second = await peer.sendMessage("bob", "after the restart");
    await waitFor("delivered after the restart", () => (delivered.has(second.id) ? true : undefined));
    await whenKeyPackages("alice's KeyPackages", () => bob.api("POST", "/v1/message", { to: "alice", text: "back through the gateway" }));
    const got = await waitFor("bob's message", () => received.find((m) => m.text === "back through the gateway"));
    assert.equal(got.from, "bob");
    assert.deepEqual(states.slice(0, 2), ["connecting", "connected"]);
    assert.ok(states.includes("reconnecting") && states.at(-1) === "connected", states.join(","));
  } catch (e) {
    e.message += `\n--- gateway ---\n${gateway.logs()}\n--- alice ---\n${alice.logs()}`;
    throw e;
  } finally {
    peer?.disconnect();
    gateway.remove();
    alice.remove();
    bob.remove();
  }
});
