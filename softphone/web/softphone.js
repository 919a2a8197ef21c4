// The browser softphone: one of the user's devices.  Signalling over the
// admin API's WebSocket (/api/softphone), audio over WebRTC to the PBX's
// gateway.  The page always makes the offer, with all its ICE candidates in
// it (no trickle): the gateway answers it.
import { Meter } from "./meter.js";
import { Ringer } from "./ringer.js";
import { QueuesPanel } from "./queues.js";
import { Presence, ProfileSwitch } from "./presence.js";
import { CallHistory } from "./history.js";
import { Voicemail } from "./voicemail.js";

const $ = (selector) => document.querySelector(selector);
const KEYS = "123456789*0#";
// in order of preference; a page (or a test) may narrow it: softphone.codecs = ["audio/PCMU"]
const CODECS = ["audio/opus", "audio/PCMU", "audio/PCMA"];

let socket = null;
let pc = null;
let microphone = null;
const meter = new Meter(); // the far end
const micMeter = new Meter(); // the user's microphone
const ringer = new Ringer();
const queues = new QueuesPanel();
const presence = new Presence();
const selfService = { profile: new ProfileSwitch(), history: new CallHistory(), voicemail: new Voicemail() };
const SILENT = 0.001; // RMS below this is no sound
const SILENCE_WARNING_MS = 3000;
let micTimer = null;
let iceServers = []; // STUN/TURN from the PBX's settings, for agents behind NAT

function status(text) { $("#status").textContent = text; }

function inCall(active) {
  $("#in-call").hidden = !active;
  $("#dial").hidden = active;
}

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
      if (pc) { $("#transfer-number").value = colleague.number; return; }
      $("#number").value = colleague.number;
      $("#dial").requestSubmit();
    });
    const pickUp = document.createElement("button");
    pickUp.textContent = "Pick up";
    pickUp.title = "Answer this colleague's ringing call (directed pickup, **number)";
    pickUp.addEventListener("click", () => {
      if (pc) return;
      $("#number").value = `**${colleague.number}`;
      $("#dial").requestSubmit();
    });
    item.append(presence.badge(colleague.number), button, pickUp);
    return item;
  }));
}

$("#search").addEventListener("input", showDirectory);

function connect(token) {
  $("#login").hidden = true;
  $("#phone").hidden = false;
  loadDirectory(token);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/softphone?token=${encodeURIComponent(token)}`);
  socket.onmessage = (event) => received(JSON.parse(event.data));
  socket.onclose = (event) => {
    $("#line").textContent = `Not connected: ${event.reason || "connection lost"}`;
    if (event.code === 4401) { sessionStorage.removeItem("pbx-token"); $("#login").hidden = false; }
    hangUpLocally("connection lost");
  };
}

// Logging out ends the line: the gateway hangs up and unregisters it when
// the WebSocket closes, and the login token stops working.
$("#logout").addEventListener("click", async () => {
  const token = sessionStorage.getItem("pbx-token");
  sessionStorage.removeItem("pbx-token");
  if (socket) { socket.onclose = null; socket.close(1000, "logged out"); socket = null; }
  hangUpLocally("");
  queues.stop();
  await fetch("/api/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  $("#phone").hidden = true;
  $("#login").hidden = false;
  status("Idle");
});
window.addEventListener("pagehide", () => { if (socket) socket.close(1000, "page closed"); });

function send(message) { socket.send(JSON.stringify(message)); }

async function received(message) {
  switch (message.type) {
    case "registered":
      $("#line").textContent = `Line ${message.extension} ready`;
      iceServers = message.ice_servers;
      queues.start(sessionStorage.getItem("pbx-token"), message.extension);
      Object.values(selfService).forEach((panel) => panel.start(sessionStorage.getItem("pbx-token"), message.extension));
      break;
    case "presence": presence.update(message); break;
    case "voicemail": selfService.voicemail.refresh(); break;
    case "history": selfService.history.changed(); break;
    case "incoming":
      $("#caller").textContent = message.name ? `${message.name} (${message.number})` : message.number;
      $("#ringing").hidden = false;
      $("#dial").hidden = true;
      status("Incoming call");
      ringer.start();
      if (window.Notification && Notification.permission === "granted") {
        new Notification("Incoming call", { body: $("#caller").textContent, tag: "softphone" });
      }
      break;
    case "sdp": await pc.setRemoteDescription({ type: "answer", sdp: message.sdp }); break;
    case "ringing": status("Ringing…"); break;
    case "connected":
      status(`In call (${message.codec})`);
      $("#hold").setAttribute("aria-pressed", "false");
      if (!micTimer) watchMicrophone();
      break;
    case "held": status("On hold"); $("#hold").setAttribute("aria-pressed", "true"); break;
    case "transferring": status(`Transferring to ${message.number}…`); break;
    case "ended": hangUpLocally(message.reason); break;
    case "error": status(message.reason); break;
  }
}

// A peer connection with the microphone on it; its offer once ICE gathering is done.
async function offer() {
  microphone = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  pc = new RTCPeerConnection({ iceServers });
  const transceiver = pc.addTransceiver(microphone.getAudioTracks()[0], { direction: "sendrecv" });
  const codecs = RTCRtpReceiver.getCapabilities("audio").codecs;
  const preferred = window.softphone.codecs.flatMap((name) => codecs.filter((c) => c.mimeType.toLowerCase() === name.toLowerCase()));
  if (preferred.length) transceiver.setCodecPreferences(preferred);
  pc.ontrack = (event) => {
    const stream = event.streams[0] || new MediaStream([event.track]);
    $("#remote").srcObject = stream;
    meter.listen(stream);
  };
  pc.oniceconnectionstatechange = () => {
    if (pc && pc.iceConnectionState === "failed") { send({ type: "hangup" }); hangUpLocally("media path failed (ICE)"); }
  };
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((done) => {
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") done(); });
    });
  }
  return pc.localDescription.sdp;
}

// The microphone's level on the meter, and a warning when the page has sent
// silence for a while although not muted (a dead or blocked microphone).
function watchMicrophone() {
  micMeter.listen(microphone);
  let lastSound = Date.now();
  micTimer = setInterval(() => {
    const level = micMeter.rms();
    const muted = !microphone || !microphone.getAudioTracks()[0].enabled;
    $("#mic-level").value = level;
    if (level > SILENT || muted) lastSound = Date.now();
    $("#no-audio").hidden = Date.now() - lastSound < SILENCE_WARNING_MS;
  }, 200);
}

function hangUpLocally(reason) {
  ringer.stop();
  clearInterval(micTimer);
  micTimer = null;
  $("#hold").setAttribute("aria-pressed", "false");
  micMeter.stop();
  $("#mic-level").value = 0;
  $("#no-audio").hidden = true;
  if (pc) { pc.close(); pc = null; }
  if (microphone) { microphone.getTracks().forEach((track) => track.stop()); microphone = null; }
  meter.stop();
  $("#ringing").hidden = true;
  $("#mute").setAttribute("aria-pressed", "false");
  inCall(false);
  if (reason) status(`Call ended: ${reason}`);
}

$("#answer").addEventListener("click", async () => {
  ringer.stop();
  $("#ringing").hidden = true;
  inCall(true);
  status("Answering…");
  send({ type: "answer", sdp: await offer() });
});

$("#reject").addEventListener("click", () => { send({ type: "reject" }); hangUpLocally("rejected"); });

$("#dial").addEventListener("submit", async (event) => {
  event.preventDefault();
  const number = $("#number").value.trim();
  inCall(true);
  status(`Calling ${number}…`);
  send({ type: "call", number, sdp: await offer() });
});

$("#hangup").addEventListener("click", () => send({ type: "hangup" }));

// hold: the far end hears the PBX's music until resumed
$("#hold").addEventListener("click", () => {
  send({ type: $("#hold").getAttribute("aria-pressed") === "true" ? "resume" : "hold" });
});

// blind transfer: the far end is connected to the number, the page's call ends
$("#transfer").addEventListener("submit", (event) => {
  event.preventDefault();
  send({ type: "transfer", number: $("#transfer-number").value.trim() });
});

$("#mute").addEventListener("click", () => {
  if (!microphone) return;
  const track = microphone.getAudioTracks()[0];
  track.enabled = !track.enabled;
  $("#mute").setAttribute("aria-pressed", String(!track.enabled));
});

for (const key of KEYS) {
  const button = document.createElement("button");
  button.textContent = key;
  button.dataset.key = key;
  button.addEventListener("click", () => {
    if (pc) send({ type: "dtmf", digit: key });
    else $("#number").value += key;
  });
  $("#keypad").append(button);
}

// what tests and a future level display read: the far end's loudest frequency
window.softphone = { meter, micMeter, ringer, codecs: CODECS };

const saved = sessionStorage.getItem("pbx-token");
if (saved) connect(saved);
