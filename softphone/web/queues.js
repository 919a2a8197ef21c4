// The queues panel: the agent's state in their queues (log in/out, pause
// with a reason) and the callers waiting in each, over the admin API.
const $ = (selector) => document.querySelector(selector);
const STATES = {
  logged_out: "logged out", available: "available", ringing: "ringing",
  on_queue_call: "on a queue call", on_direct_call: "on a call", wrap_up: "in wrap-up",
  paused: "paused",
};

export class QueuesPanel {
  constructor() {
    this.token = null;
    this.extension = null;
    this.agent = null;
    this.timer = null;
    this.countdown = null; // the wrap-up's, once a second
    $("#queue-login").addEventListener("click", () =>
      this.change(this.agent.state === "logged_out" ? "login" : "logout"));
    $("#pause").addEventListener("click", () => {
      if (this.agent.state === "paused") this.change("unpause");
      else this.change("pause", { reason: $("#pause-reason").value });
    });
  }

  async request(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    return response.ok ? response.json() : null;
  }

  // Show the panel if the user's extension is a member of any queue.
  async start(token, extension) {
    this.token = token;
    this.extension = extension;
    await this.refresh();
    clearInterval(this.timer);
    if (this.agent) this.timer = setInterval(() => this.refresh(), 5000);
  }

  stop() { clearInterval(this.timer); clearInterval(this.countdown); $("#queues").hidden = true; }

  // After a queue call: the seconds of wrap-up left, counted down in the page;
  // at the end the agent's state is asked again (available, or paused).
  wrapUp(agent) {
    clearInterval(this.countdown);
    this.countdown = null;
    if (agent.state !== "wrap_up" || agent.wrap_up_left == null) return;
    const ends = Date.now() + agent.wrap_up_left * 1000;
    const tick = () => {
      const left = Math.max(0, Math.ceil((ends - Date.now()) / 1000));
      $("#agent-state").textContent = `in wrap-up (${left} s left)`;
      if (left === 0) { clearInterval(this.countdown); this.countdown = null; this.refresh(); }
    };
    tick();
    this.countdown = setInterval(tick, 1000);
  }

  async change(action, body) {
    const agent = await this.request("POST", `/api/agents/${this.extension}/${action}`, body);
    if (agent) this.show(agent);
    await this.refresh();
  }

  async refresh() {
    const agent = await this.request("GET", `/api/agents/${this.extension}`);
    if (!agent || agent.queues.length === 0) { $("#queues").hidden = true; return; }
    this.show(agent);
    const queues = (await this.request("GET", "/api/queues")) || [];
    $("#waiting").replaceChildren(...queues.filter((q) => agent.queues.includes(q.number)).map((q) => {
      const item = document.createElement("li");
      item.dataset.queue = q.number;
      item.textContent = `${q.name || q.number} (${q.number}): ${q.waiting} waiting, ${q.agents} agents`;
      return item;
    }));
  }

  show(agent) {
    this.agent = agent;
    $("#queues").hidden = false;
    const reason = agent.state === "paused" && agent.pause_reason ? ` (${agent.pause_reason})` : "";
    $("#agent-state").textContent = (STATES[agent.state] || agent.state) + reason;
    this.wrapUp(agent);
    $("#agent-queues").textContent = `in ${agent.queues.join(", ")}`;
    $("#queue-login").textContent = agent.state === "logged_out" ? "Log in to my queues" : "Log out of my queues";
    $("#pause").textContent = agent.state === "paused" ? "Resume work" : "Pause";
    $("#pause").disabled = agent.state === "logged_out";
  }
}
