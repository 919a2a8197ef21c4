// The browser softphone: one of the user's devices.  Signalling over the
// admin API's WebSocket (/api/softphone), audio over WebRTC to the PBX's
// gateway; the calls themselves are calls.js's.
import { Calls } from "./calls.js";
import { QueuesPanel } from "./queues.js";
import { Presence, ProfileSwitch } from "./presence.js";
import { CallHistory } from "./history.js";
import { Voicemail } from "./voicemail.js";

const $ = (selector) => document.querySelector(selector);
const KEYS = "123456789*0#";
// in order of preference; a page (or a test) may narrow it: softphone.codecs = ["audio/PCMU"]
const CODECS = ["audio/opus", "audio/PCMU", "audio/PCMA"];

let socket = null;
let iceServers = []; // STUN/TURN from the PBX's settings, for agents behind NAT
let iceTransportPolicy = "all"; // "relay": media only through the TURN server
const queues = new QueuesPanel();
const presence = new Presence();
const selfService = { profile: new ProfileSwitch(), history: new CallHistory(), voicemail: new Voicemail() };
const calls = new Calls((message) => send(message), () => ({
  iceServers, codecs: window.softphone.codecs, iceTransportPolicy,
}));

function status(text) { $("#status").textContent = text; }

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { username: form.get("username"), password: form.get("password") };
  if (form.get("otp")) body.otp = form.get("otp");
  const response = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) { $("#login-error").textContent = answer.detail || response.statusText; return; }
  sessionStorage.setItem("pbx-token", answer.token);
  if (window.Notification && Notification.permission === "default") Notification.requestPermission();
  connect(answer.token);
});

// The colleague directory: the organisation's extensions, searched by name
// or number in the page; a click dials (or, during a call, fills the transfer).
let colleagues = [];

async function loadDirectory(token) {
  const response = await fetch("/api/extensions?limit=500", { headers: { Authorization: `Bearer ${token}` } });
  if (response.ok) colleagues = (await response.json()).items;
  showDirectory();
}

function showDirectory() {
  const query = $("#search").value.trim().toLowerCase();
  const found = colleagues.filter((c) => !query || c.number.includes(query)
    || c.display_name.toLowerCase().includes(query)).slice(0, 20);
  $("#colleagues").replaceChildren(...found.map((colleague) => {
    const item = document.createElement("li");
    item.textContent = `${colleague.display_name || colleague.number} (${colleague.number})`;
    const button = document.createElement("button");
    button.textContent = "Call";
    button.addEventListener("click", () => {
      if (calls.talking) { $("#transfer-number").value = colleague.number; return; }
      $("#number").value = colleague.number;
      $("#dial").requestSubmit();
    });
    const pickUp = document.createElement("button");
    pickUp.textContent = "Pick up";
    pickUp.title = "Answer this colleague's ringing call (directed pickup, **number)";
    pickUp.addEventListener("click", () => {
      if (calls.talking) return;
      $("#number").value = `**${colleague.number}`;
      $("#dial").requestSubmit();
    });
    item.append(presence.badge(colleague.number), button, pickUp);
    return item;
  }));
}

$("#search").addEventListener("input", showDirectory);

// A WebSocket that drops (not closed by the gateway with a 44xx/45xx reason)
// is opened again with the same login, every second: the gateway keeps the
// calls (their media flows on) for reconnectGrace seconds, then ends them.
let reconnectGrace = 0;
let graceTimer = null;

function connect(token) {
  $("#login").hidden = true;
  $("#phone").hidden = false;
  loadDirectory(token);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/softphone?token=${encodeURIComponent(token)}`);
  socket.onmessage = (event) => received(JSON.parse(event.data));
  socket.onclose = (event) => {
    socket = null;
    if (event.code >= 4000) {
      $("#line").textContent = `Not connected: ${event.reason || "connection lost"}`;
      if (event.code === 4401) { sessionStorage.removeItem("pbx-token"); $("#login").hidden = false; queues.stop(); }
      calls.endAll(event.reason || "connection lost");
      return;
    }
    $("#line").textContent = "Connection lost: reconnecting…";
    if (!graceTimer) graceTimer = setTimeout(() => calls.endAll("connection lost"), reconnectGrace * 1000);
    setTimeout(() => connect(token), 1000);
  };
}

// Logging out ends the line: the gateway hangs up and unregisters it when
// the WebSocket closes, and the login token stops working.
$("#logout").addEventListener("click", async () => {
  const token = sessionStorage.getItem("pbx-token");
  sessionStorage.removeItem("pbx-token");
  if (socket) { socket.onclose = null; socket.close(1000, "logged out"); socket = null; }
  clearTimeout(graceTimer);
  graceTimer = null;
  calls.endAll("");
  queues.stop();
  await fetch("/api/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  $("#phone").hidden = true;
  $("#login").hidden = false;
  status("Idle");
});
window.addEventListener("pagehide", () => { if (socket) { socket.onclose = null; socket.close(1000, "page closed"); } });

// whether it went: not while the WebSocket is down (reconnecting)
function send(message) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

function received(message) {
  switch (message.type) {
    case "registered":
      $("#line").textContent = `Line ${message.extension} ready`;
      iceServers = message.ice_servers;
      iceTransportPolicy = message.ice_transport_policy;
      reconnectGrace = message.reconnect_grace;
      clearTimeout(graceTimer);
      graceTimer = null;
      calls.resync(message.calls);
      queues.start(sessionStorage.getItem("pbx-token"), message.extension);
      Object.values(selfService).forEach((panel) => panel.start(sessionStorage.getItem("pbx-token"), message.extension));
      break;
    case "presence": presence.update(message); break;
    case "voicemail": selfService.voicemail.refresh(); break;
    case "history": selfService.history.changed(); break;
    case "agent": queues.refresh(); break; // pushed: a queue call, wrap-up …
    default: calls.received(message);
  }
}

$("#dial").addEventListener("submit", (event) => {
  event.preventDefault();
  calls.dial($("#number").value.trim());
});

for (const key of KEYS) {
  const button = document.createElement("button");
  button.textContent = key;
  button.dataset.key = key;
  button.addEventListener("click", () => {
    if (calls.talking) send({ type: "dtmf", call: calls.talking.id, digit: key });
    else $("#number").value += key;
  });
  $("#keypad").append(button);
}

// The network changed (another Wi-Fi, a VPN, a cable): the calls' media paths
// are renewed at once rather than left to fail.  While the WebSocket is down
// this happens when it is back (resync).
window.addEventListener("online", () => calls.renewAll());
if (navigator.connection) navigator.connection.addEventListener("change", () => calls.renewAll());

// what tests and a future level display read: the far end's loudest frequency;
// a page (or a test) may narrow the codecs
window.softphone = { meter: calls.meter, micMeter: calls.micMeter, ringer: calls.ringer, calls, codecs: CODECS };

const saved = sessionStorage.getItem("pbx-token");
if (saved) connect(saved);
