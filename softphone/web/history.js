// The user's call history: their own call records (the admin API shows
// agents and users only their own calls), newest first; reloaded when the
// gateway says one of their calls ended ("history": changed()).
import { clock } from "./presence.js";

const $ = (selector) => document.querySelector(selector);
const SHOWN = 20;

export class CallHistory {
  async start(token, extension) {
    this.token = token;
    this.extension = extension;
    await this.refresh();
  }

  async refresh() {
    const query = new URLSearchParams({ extension: this.extension, limit: SHOWN });
    const response = await fetch(`/api/cdrs?${query}`, { headers: { Authorization: `Bearer ${this.token}` } });
    if (!response.ok) { $("#history").hidden = true; return; }
    $("#history").hidden = false;
    $("#calls").replaceChildren(...(await response.json()).items.map((call) => this.row(call)));
  }

  // The record is written in a worker thread as the call ends: look again a little later too.
  changed() {
    this.refresh();
    setTimeout(() => this.refresh(), 1000);
  }

  row(call) {
    const outgoing = call.caller === this.extension;
    const other = outgoing ? call.callee : call.caller;
    const item = document.createElement("li");
    item.dataset.call = call.call_id;
    const when = new Date(call.started_at * 1000);
    const answered = call.disposition === "answered" ? `${Math.round(call.billsec)} s` : call.disposition;
    item.textContent = `${when.toLocaleDateString()} ${clock(when)} ${outgoing ? "→" : "←"} ${other} (${answered}) `;
    const back = document.createElement("button");
    back.textContent = "Call";
    back.addEventListener("click", () => {
      $("#number").value = other;
      if (!$("#dial").hidden) $("#dial").requestSubmit();
    });
    item.append(back);
    return item;
  }
}
