// The issue-17 browser test's page: the clients/ts browser build (bundled by the test as
// light.js) pairs with a node, sends, and renders what it receives. Text only via textContent.
import { MessagingPeer } from "./light.js";

const $ = (id) => document.getElementById(id);
let peer = null;

function line(className, text, id) {
  const li = document.createElement("li");
  li.className = className;
  if (id !== undefined) li.dataset.id = String(id);
  li.textContent = text;
  $("log").append(li);
  return li;
}

$("pair").addEventListener("submit", async (e) => {
  e.preventDefault();
  peer = new MessagingPeer({ ticket: $("ticket").value.trim() });
  peer.onConnectionStateChange((s) => ($("state").textContent = s));
  peer.onMessage((text, from) => line("received", `${from}: ${text}`));
  peer.onMessageState((m) => {
    const li = document.querySelector(`li.sent[data-id="${m.id}"]`);
    if (li) li.dataset.state = m.state;
  });
  peer.onError((err) => ($("error").textContent = `${err.code}: ${err.message}`));
  try {
    await peer.connect();
  } catch (err) {
    $("error").textContent = `${err.code}: ${err.message}`;
  }
});

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const sent = await peer.sendMessage($("to").value, $("text").value);
    const li = line("sent", `me: ${$("text").value}`, sent.id);
    li.dataset.state = sent.state;
    $("error").textContent = "";
  } catch (err) {
    $("error").textContent = `${err.code}: ${err.message}`;
  }
});
