// The user's voicemail (their own mailbox and the shared ones they are a
// member of): listen in the page, mark heard, delete.  Reloaded when the
// gateway says a message came, was marked or deleted ("voicemail").
import { clock } from "./presence.js";

const $ = (selector) => document.querySelector(selector);

export class Voicemail {
  async request(method, path, body) {
    return fetch(path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
  }

  async start(token) {
    this.token = token;
    await this.refresh();
  }

  async refresh() {
    const response = await this.request("GET", "/api/voicemail?own=true&limit=50");
    if (!response.ok) { $("#voicemail").hidden = true; return; }
    const messages = (await response.json()).items;
    $("#voicemail").hidden = false;
    $("#voicemail-count").textContent = `${messages.filter((m) => !m.heard).length} new, ${messages.length} in all`;
    $("#messages").replaceChildren(...messages.map((message) => this.row(message)));
  }

  row(message) {
    const item = document.createElement("li");
    item.dataset.message = message.id;
    item.dataset.heard = message.heard;
    const when = new Date(message.created_at);
    const from = message.callback_number ? `call back ${message.callback_number}` : message.caller;
    item.textContent = `${message.heard ? "" : "New: "}${from}, ${when.toLocaleDateString()} ${clock(when)}, ${Math.round(message.duration)} s `;
    const play = document.createElement("button");
    play.textContent = "Play";
    play.className = "play";
    play.addEventListener("click", () => this.play(message));
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.className = "delete";
    remove.addEventListener("click", () => this.remove(message));
    item.append(play, remove);
    return item;
  }

  // The WAV needs the bearer token, so it is fetched and played from memory
  // (in one player outside the list, which reloads when the message is marked).
  async play(message) {
    const response = await this.request("GET", `/api/voicemail/${message.id}/audio`);
    if (!response.ok) { $("#voicemail-count").textContent = `Cannot play: ${response.statusText}`; return; }
    const player = $("#voicemail-player");
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(await response.blob());
    player.dataset.message = message.id;
    player.hidden = false;
    await player.play();
    if (!message.heard) await this.request("PATCH", `/api/voicemail/${message.id}`, { heard: true });
  }

  async remove(message) {
    const response = await this.request("DELETE", `/api/voicemail/${message.id}`);
    if (!response.ok) $("#voicemail-count").textContent = `Cannot delete: ${response.statusText}`;
    await this.refresh();
  }
}
