// The page's calls: one talks, the others wait on hold (call waiting, a
// consultation before an attended transfer).  Each call has its own WebRTC
// peer connection to the gateway, all fed by the one microphone; the page
// always makes the offer, with all its ICE candidates in it (no trickle).
//
// A call's media path is renewed (a new peer connection, a new offer sent as
// "renew"; the gateway swaps its side, the SIP call is untouched) when its
// ICE goes disconnected or failed after it had connected, when the network
// changes, and when the WebSocket comes back after a drop.  A path that never
// connected, or whose renewal fails too, ends the call with ICE_FAILED.
import { Meter } from "./meter.js";
import { Ringer } from "./ringer.js";

const $ = (selector) => document.querySelector(selector);
const SILENT = 0.001; // RMS below this is no sound
const SILENCE_WARNING_MS = 3000;
const DISCONNECTED_MS = 2000; // ICE "disconnected" this long (it may recover by itself): renew
export const ICE_FAILED = "media path failed (ICE): no audio path between your browser and the PBX; "
  + "check your network, firewall or TURN settings";

export class Calls {
  // send(message) goes to the gateway (false while it cannot); options() gives {iceServers, codecs, iceTransportPolicy}
  // (the PBX's STUN/TURN settings, the codecs in order of preference)
  constructor(send, options) {
    this.send = send;
    this.options = options;
    this.calls = new Map(); // id → {id, pc, state, label, incoming, held, stream, codec, retired}
    this.active = null; // the call the user talks in (or last talked in)
    this.microphone = null;
    this.meter = new Meter(); // the far end of the active call
    this.micMeter = new Meter(); // the user's microphone
    this.ringer = new Ringer();
    this.micTimer = null;
    this.ids = 0;
    this.wire();
  }

  get talking() { return this.active && this.active.state !== "ringing" ? this.active : null; }

  // ------------------------------------------------------------------ gateway → page

  received(message) {
    const call = this.calls.get(message.call);
    switch (message.type) {
      case "incoming": this.incoming(message); break;
      case "sdp":
        if (!call || !call.pc) break;
        call.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        if (call.retired) { call.retired.close(); call.retired = null; } // the gateway took the new one
        break;
      case "ringing": if (call) this.update(call, "ringing out", "Ringing…"); break;
      case "connected":
        if (!call) break;
        call.held = false;
        call.codec = message.codec;
        this.update(call, "talking", message.far_end_holds
          ? `Held by the far end (${message.codec})` : `In call (${message.codec})`);
        if (!this.micTimer) this.watchMicrophone();
        break;
      case "held": if (call) { call.held = true; this.update(call, "on hold", "On hold"); } break;
      case "transferring": if (call) this.update(call, "transferring", `Transferring to ${message.number}…`); break;
      case "ended": if (call) this.end(call, message.reason); break;
      case "error":
        if (call && call.retired && message.renew) { call.pc.close(); call.pc = call.retired; call.retired = null; }
        this.status(message.reason);
        break;
    }
  }

  incoming(message) {
    // a queue call says which queue (or a forwarded call whose it was): History-Info
    const via = message.via_name || message.via;
    const label = (message.name ? `${message.name} (${message.number})` : message.number)
      + (via ? ` via ${via}` : "");
    const call = { id: message.call, pc: null, state: "ringing", label, incoming: true, held: false };
    this.calls.set(call.id, call);
    $("#caller").textContent = label;
    $("#ringing").hidden = false;
    if (!this.talking) { $("#dial").hidden = true; this.status("Incoming call"); }
    this.ringer.start();
    if (window.Notification && Notification.permission === "granted") {
      new Notification("Incoming call", { body: label, tag: "softphone" });
    }
    this.show();
  }

  // ------------------------------------------------------------------ page → gateway

  async dial(number) {
    const call = { id: `out-${++this.ids}`, pc: null, state: "calling", label: number, incoming: false, held: false };
    this.calls.set(call.id, call);
    this.activate(call);
    this.update(call, "calling", `Calling ${number}…`);
    const sdp = await this.offer(call);
    this.send({ type: "call", id: call.id, number, sdp });
  }

  ringingCall() { return [...this.calls.values()].find((c) => c.state === "ringing"); }

  async answer() {
    const call = this.ringingCall();
    if (!call) return;
    this.ringer.stop();
    $("#ringing").hidden = true;
    this.holdLocally(call);
    this.activate(call);
    this.update(call, "answering", "Answering…");
    this.send({ type: "answer", call: call.id, sdp: await this.offer(call) });
  }

  reject() {
    const call = this.ringingCall();
    if (!call) return;
    this.send({ type: "reject", call: call.id });
    this.end(call, "rejected");
  }

  // talk in ``call`` again: the gateway holds the one we were in
  resume(call) {
    this.holdLocally(call);
    this.activate(call);
    this.send({ type: "resume", call: call.id });
  }

  // the other calls stop hearing the microphone while ``call`` talks
  holdLocally(call) {
    for (const other of this.calls.values()) {
      if (other !== call && other.state === "talking") this.update(other, "holding", null);
    }
  }

  // A peer connection with the microphone on it; its offer once ICE gathering is done.
  async offer(call) {
    if (!this.microphone) {
      this.microphone = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    }
    const { iceServers, codecs: wanted, iceTransportPolicy } = this.options();
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    call.pc = pc;
    const transceiver = pc.addTransceiver(this.microphone.getAudioTracks()[0], { direction: "sendrecv" });
    const codecs = RTCRtpReceiver.getCapabilities("audio").codecs;
    const preferred = wanted.flatMap((name) => codecs.filter((c) => c.mimeType.toLowerCase() === name.toLowerCase()));
    if (preferred.length) transceiver.setCodecPreferences(preferred);
    pc.ontrack = (event) => {
      call.stream = event.streams[0] || new MediaStream([event.track]);
      if (call === this.active) this.listen(call);
    };
    pc.oniceconnectionstatechange = () => this.iceChanged(call, pc);
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise((done) => {
        pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") done(); });
      });
    }
    return pc.localDescription.sdp;
  }

  // ------------------------------------------------------------------ media path renewal

  iceChanged(call, pc) {
    if (this.calls.get(call.id) !== call || call.pc !== pc) return; // a retired one
    const state = pc.iceConnectionState;
    if (state === "connected" || state === "completed") {
      if (call.renewed && call.state === "talking") this.update(call, "talking", `In call (${call.codec})`);
      pc.wasConnected = true;
    } else if (state === "failed" && !pc.wasConnected) {
      this.send({ type: "hangup", call: call.id }); // never had a path (or its renewal found none)
      this.end(call, ICE_FAILED);
    } else if (state === "failed") {
      this.renew(call);
    } else if (state === "disconnected") {
      setTimeout(() => { if (call.pc === pc && pc.iceConnectionState === "disconnected") this.renew(call); },
        DISCONNECTED_MS);
    }
  }

  // A fresh peer connection for ``call`` and its offer to the gateway; the
  // old one is closed once the gateway answered (until then it may still carry
  // audio).  Nothing happens while the WebSocket is down: resync renews.
  async renew(call) {
    if (call.retired || !call.pc || ["ringing", "calling", "ringing out", "answering"].includes(call.state)) return;
    const old = call.pc;
    call.retired = old;
    call.renewed = true;
    if (call === this.active) this.status("Audio path lost: reconnecting…");
    const sdp = await this.offer(call);
    if (this.calls.get(call.id) !== call) { call.pc.close(); return; } // ended meanwhile
    if (!this.send({ type: "renew", call: call.id, sdp })) {
      call.pc.close();
      call.pc = old;
      call.retired = null;
    }
  }

  renewAll() {
    for (const call of this.calls.values()) this.renew(call);
  }

  // ------------------------------------------------------------------ what the page shows

  status(text) { $("#status").textContent = text; }

  activate(call) {
    this.active = call;
    if (call.stream) this.listen(call);
    $("#in-call").hidden = false;
    $("#dial").hidden = true;
  }

  listen(call) {
    $("#remote").srcObject = call.stream;
    this.meter.listen(call.stream);
  }

  update(call, state, text) {
    call.state = state;
    if (text && (call === this.active || !this.active)) this.status(text);
    if (call === this.active) $("#hold").setAttribute("aria-pressed", String(state === "on hold"));
    this.show();
  }

  end(call, reason) {
    if (this.calls.get(call.id) !== call) return;
    this.calls.delete(call.id);
    if (call.pc) call.pc.close();
    if (call.state === "ringing" && !this.ringingCall()) { this.ringer.stop(); $("#ringing").hidden = true; }
    const left = [...this.calls.values()].filter((c) => c.state !== "ringing");
    if (call === this.active) {
      // a call left waiting becomes the one the buttons act on (Hold resumes it)
      this.active = left[0] || null;
      this.meter.stop();
      $("#remote").srcObject = null;
      $("#hold").setAttribute("aria-pressed", String(Boolean(this.active && this.active.state === "on hold")));
    }
    if (!left.length) this.idle();
    if (reason) this.status(`Call ended: ${reason}`);
    this.show();
  }

  // no call left (but perhaps one ringing): the microphone is released
  idle() {
    clearInterval(this.micTimer);
    this.micTimer = null;
    this.micMeter.stop();
    $("#mic-level").value = 0;
    $("#no-audio").hidden = true;
    if (this.microphone) { this.microphone.getTracks().forEach((track) => track.stop()); this.microphone = null; }
    $("#mute").setAttribute("aria-pressed", "false");
    $("#in-call").hidden = true;
    $("#dial").hidden = Boolean(this.ringingCall());
  }

  // every call but the ringing one, each with a button to talk in it
  show() {
    const calls = [...this.calls.values()].filter((c) => c.state !== "ringing");
    $("#call-list").replaceChildren(...calls.map((call) => {
      const item = document.createElement("li");
      item.dataset.call = call.id;
      item.textContent = `${call.label}: ${call.state}`;
      if (call !== this.active && (call.state === "on hold" || call.state === "talking")) {
        const talk = document.createElement("button");
        talk.textContent = "Talk";
        talk.addEventListener("click", () => this.resume(call));
        item.append(talk);
      }
      return item;
    }));
    $("#call-list").hidden = calls.length < 2;
    const consulting = calls.length === 2 && calls.every((c) => ["talking", "on hold", "holding"].includes(c.state));
    $("#complete-transfer").hidden = !consulting;
  }

  // The microphone's level on the meter, and a warning when the page has sent
  // silence for a while although not muted (a dead or blocked microphone).
  watchMicrophone() {
    this.micMeter.listen(this.microphone);
    let lastSound = Date.now();
    this.micTimer = setInterval(() => {
      const level = this.micMeter.rms();
      const muted = !this.microphone || !this.microphone.getAudioTracks()[0].enabled;
      $("#mic-level").value = level;
      if (level > SILENT || muted) lastSound = Date.now();
      $("#no-audio").hidden = Date.now() - lastSound < SILENCE_WARNING_MS;
    }, 200);
  }

  // The line is back after a dropped WebSocket: ``list`` is what the gateway
  // still has.  Calls it no longer has ended meanwhile; one that rang meanwhile rings.
  resync(list) {
    const live = new Map(list.map((c) => [c.call, c]));
    for (const call of [...this.calls.values()]) if (!live.has(call.id)) this.end(call, "connection lost");
    for (const c of list) {
      const call = this.calls.get(c.call);
      if (!call && c.state === "ringing") this.incoming({ call: c.call, number: c.number, name: c.name });
      else if (call && call.state !== c.state && ["talking", "on hold"].includes(c.state)) {
        this.update(call, c.state, c.state === "talking" ? `In call (${c.codec})` : "On hold");
      }
      // a path that went while the WebSocket was down (the network changed under both)
      if (call && call.pc && !["connected", "completed"].includes(call.pc.iceConnectionState)) this.renew(call);
    }
  }

  // every call is gone (the line closed)
  endAll(reason) {
    for (const call of [...this.calls.values()]) this.end(call, reason);
  }

  // ------------------------------------------------------------------ the buttons

  wire() {
    $("#answer").addEventListener("click", () => this.answer());
    $("#reject").addEventListener("click", () => this.reject());
    $("#hangup").addEventListener("click", () => {
      if (this.active) this.send({ type: "hangup", call: this.active.id });
    });
    // hold: the far end hears the PBX's music until resumed
    $("#hold").addEventListener("click", () => {
      const call = this.active;
      if (!call) return;
      if (call.state === "on hold") this.resume(call);
      else this.send({ type: "hold", call: call.id });
    });
    // blind transfer: the far end is connected to the number, the page's call ends
    $("#transfer").addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.active) this.send({ type: "transfer", call: this.active.id, number: $("#transfer-number").value.trim() });
    });
    // attended transfer: first a consultation call to the number (the call waits on hold) …
    $("#consult").addEventListener("click", () => {
      const number = $("#transfer-number").value.trim();
      if (this.active && number) this.dial(number);
    });
    // … then the waiting call's far end is joined to the consulted party
    $("#complete-transfer").addEventListener("click", () => {
      const consult = this.active;
      const waiting = [...this.calls.values()].find((c) => c !== consult && c.state !== "ringing");
      if (consult && waiting) this.send({ type: "transfer", call: waiting.id, consult: consult.id });
    });
    $("#mute").addEventListener("click", () => {
      if (!this.microphone) return;
      const track = this.microphone.getAudioTracks()[0];
      track.enabled = !track.enabled;
      $("#mute").setAttribute("aria-pressed", String(!track.enabled));
    });
  }
}
