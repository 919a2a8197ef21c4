// Colleagues' presence, pushed by the gateway ("presence" messages): each
// colleague's line (available, ringing, on a call, offline) and presence
// profile (Lunch until 13:00 …) beside their name in the directory; and the
// user's own profile, switched here through the admin API.
const $ = (selector) => document.querySelector(selector);
const LINES = { available: "available", ringing: "ringing", on_call: "on a call", offline: "offline" };

export function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function describe(colleague) {
  const line = LINES[colleague.line] || colleague.line;
  if (!colleague.profile) return line;
  return `${line} · ${colleague.profile}${colleague.until ? ` until ${clock(colleague.until)}` : ""}`;
}

export class Presence {
  constructor() { this.colleagues = new Map(); }

  // A "presence" message: the whole list (full) or the colleagues that changed.
  update(message) {
    if (message.full) this.colleagues.clear();
    for (const colleague of message.colleagues) this.colleagues.set(colleague.extension, colleague);
    document.querySelectorAll("[data-presence]").forEach((badge) => this.show(badge));
  }

  // The badge beside a colleague's name; kept current by update().
  badge(number) {
    const badge = document.createElement("span");
    badge.className = "presence";
    badge.dataset.presence = number;
    this.show(badge);
    return badge;
  }

  show(badge) {
    const colleague = this.colleagues.get(badge.dataset.presence);
    badge.dataset.line = colleague ? colleague.line : "";
    badge.dataset.profile = colleague && colleague.profile ? colleague.profile : "";
    badge.textContent = colleague ? describe(colleague) : "";
  }
}

// The user's own profile: which is in force and why, and a switch to another
// (until a time today, or until switched back).
export class ProfileSwitch {
  constructor() {
    $("#profile-form").addEventListener("submit", (event) => { event.preventDefault(); this.switch(); });
  }

  async request(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(typeof answer.detail === "string" ? answer.detail : response.statusText);
    return answer;
  }

  async start(token, extension) {
    this.token = token;
    this.path = `/api/extensions/${encodeURIComponent(extension)}`;
    try {
      const profiles = (await this.request("GET", `${this.path}/profiles`)).items;
      $("#profile-choice").replaceChildren(new Option("None (every call)", ""),
        ...profiles.map((profile) => new Option(profile.name, profile.id)));
      this.show(await this.request("GET", `${this.path}/profile`));
      $("#my-profile").hidden = false;
    } catch (error) {
      $("#my-profile").hidden = true;
    }
  }

  show(active) {
    const name = active.profile ? active.profile.name : "none";
    $("#profile-now").textContent = active.until ? `${name} until ${clock(active.until)}` : name;
    $("#profile-choice").value = active.profile && active.reason === "manual" ? active.profile.id : "";
  }

  async switch() {
    const choice = $("#profile-choice").value;
    const body = { profile_id: choice ? Number(choice) : null };
    const until = $("#profile-until").value; // HH:MM today, the page's time zone
    if (choice && until) {
      const [hours, minutes] = until.split(":").map(Number);
      const end = new Date();
      end.setHours(hours, minutes, 0, 0);
      body.until = end.toISOString();
    }
    try {
      this.show(await this.request("POST", `${this.path}/profile`, body));
      $("#profile-error").textContent = "";
    } catch (error) {
      $("#profile-error").textContent = error.message;
    }
  }
}
