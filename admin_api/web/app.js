// The admin pages: plain JS over the admin API (no build step).  The bearer
// token lives in sessionStorage only; every view is a list with actions and
// an "Add" form, described by the VIEWS table below.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("pbx-token");

// ``type``: send ``body`` as it is with that content type (a YAML file), else as JSON.
// Answers come back as JSON, or as text when they are something else (YAML).
async function api(method, path, body, type) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": `Bearer ${token}`, "Content-Type": type || "application/json" },
    body: body === undefined || type ? body : JSON.stringify(body),
  });
  if (response.status === 401 && path !== "/api/login") { logout(); throw new Error("logged out"); }
  const json = (response.headers.get("Content-Type") || "").includes("json");
  const data = response.status === 204 ? null
    : json ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) throw new Error(reason(data) || `${response.status} ${response.statusText}`);
  return data;
}

function reason(data) {
  if (!data || data.detail === undefined) return "";
  if (typeof data.detail === "string") return data.detail;
  return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
}

const post = (path) => (row) => api("POST", path.replace(/{(\w+)}/g, (_, k) => row[k]));
const remove = (path) => (row) => api("DELETE", path.replace(/{(\w+)}/g, (_, k) => row[k]));

// Each view: what to list, which columns, what can be added, what each row can do.
const VIEWS = {
  users: {
    title: "Users", list: "/api/users", columns: ["id", "username", "role", "extension"],
    create: { path: "/api/users", fields: ["username", "password:password", "role:admin|supervisor|agent|user", "extension"] },
    actions: { Delete: remove("/api/users/{id}") },
  },
  extensions: {
    title: "Extensions", list: "/api/extensions",
    columns: ["number", "display_name", "dnd", "forward_always", "ring_timeout", "record"],
    create: { path: "/api/extensions", fields: ["number", "display_name"], shows: "secret" },
    actions: {
      "DND on/off": (row) => api("PATCH", `/api/extensions/${row.number}`, { dnd: !row.dnd }),
      Delete: remove("/api/extensions/{number}"),
    },
  },
  devices: {
    title: "Devices", list: "/api/devices",
    columns: ["id", "extension", "kind", "vendor", "model", "mac", "label"],
    create: { path: "/api/devices", fields: ["extension", "kind:desk|dect|softphone", "vendor:yealink|snom|grandstream|polycom|", "model", "mac", "label"], shows: "sip_username,secret,provisioning_url,provisioning_file" },
    actions: {
      "New secret": async (row) => showOnce(await api("POST", `/api/devices/${row.id}/rotate-secret`), "sip_username,secret"),
      Delete: remove("/api/devices/{id}"),
    },
  },
  licenses: {
    title: "Licenses", list: "/api/licenses", columns: ["id", "kind", "state", "user_id"],
    create: { path: "/api/licenses", fields: ["kind:fixed|mobile|free"] },
    actions: {
      Assign: (row) => {
        const user = prompt("Assign to user id");
        return user && api("POST", `/api/licenses/${row.id}/assign`, { user_id: Number(user) });
      },
      Freeze: post("/api/licenses/{id}/freeze"),
      Unfreeze: post("/api/licenses/{id}/unfreeze"),
      Upgrade: post("/api/licenses/{id}/upgrade"),
      Terminate: post("/api/licenses/{id}/terminate"),
    },
  },
  numbers: {
    title: "Numbers", list: "/api/numbers", columns: ["number", "target"],
    create: { path: "/api/numbers", fields: ["number", "target"] },
    actions: { Delete: remove("/api/numbers/{number}") },
  },
  services: {
    title: "Switchboard services", list: "/api/services", columns: ["kind", "number", "name"],
  },
  ringgroups: {
    title: "Ring groups", list: "/api/ringgroups", columns: ["number", "name", "strategy", "members"],
    create: { path: "/api/ringgroups", fields: ["number", "name", "strategy:ringall|linear|roundrobin|leastrecent|fewestcalls|random", "members:list"] },
    actions: { Delete: remove("/api/ringgroups/{number}") },
  },
  switchboard: {
    title: "Switchboard", list: "/api/switchboard",
    columns: ["schedule", "open", "reason", "label", "next_change"],
    cells: {
      open: (open) => (open ? "open" : "closed"),
      next_change: (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "—"),
    },
    actions: {
      "Close now": (row) => api("POST", `/api/schedules/${row.schedule}/override`, { action: "close" }),
      "Open now": (row) => api("POST", `/api/schedules/${row.schedule}/override`, { action: "open" }),
      "Back to schedule": (row) => api("POST", `/api/schedules/${row.schedule}/override`, { action: "schedule" }),
    },
    // one button a row: switch by hand, or back to the opening hours once switched
    when: {
      "Close now": (row) => row.open && row.reason !== "override",
      "Open now": (row) => !row.open && row.reason !== "override",
      "Back to schedule": (row) => row.reason === "override",
    },
  },
  timeconditions: {
    title: "Time conditions", list: "/api/timeconditions",
    columns: ["number", "name", "schedule", "open_target", "closed_target", "routes_to"],
    create: { path: "/api/timeconditions", fields: ["number", "name", "schedule", "open_target", "closed_target"] },
    actions: { Delete: remove("/api/timeconditions/{number}") },
  },
  trunks: {
    title: "Trunks", list: "/api/trunks",
    rows: (trunks) => trunks.map((t) => ({ ...t.settings, password_set: t.password_set })),
    columns: ["name", "host", "transport", "auth", "username", "did_from", "caller_id", "shared", "enabled"],
    create: { path: "/api/trunks", fields: ["name", "host", "transport:udp|tcp|tls", "auth:register|ip", "username", "password:password", "addresses:list", "dids:list"] },
    actions: {
      State: async (row) => {
        const state = await api("GET", `/api/trunks/${row.name}/state`);
        detail(`${row.name}: ${state.state} (${state.code} ${state.reason})`);
      },
      "Enable/disable": (row) => api("PATCH", `/api/trunks/${row.name}`, { enabled: !row.enabled }),
      Delete: remove("/api/trunks/{name}"),
    },
  },
  outbound: {
    title: "Outbound routes", list: "/api/outbound-routes",
    columns: ["position", "name", "patterns", "trunks", "strip", "prepend", "caller_id"],
    create: { path: "/api/outbound-routes", fields: ["name", "patterns:list", "trunks:list", "strip", "prepend", "caller_id:user|trunk|anonymous"] },
    actions: {
      Up: (row) => api("PATCH", `/api/outbound-routes/${row.name}`, { position: Math.max(0, row.position - 1) }),
      Down: (row) => api("PATCH", `/api/outbound-routes/${row.name}`, { position: row.position + 1 }),
      Delete: remove("/api/outbound-routes/{name}"),
    },
  },
  callpolicy: {
    title: "Call policy", list: "/api/call-policy", rows: (policy) => [policy],
    columns: ["country", "outside_prefix", "international", "international_prefixes", "max_outbound_calls",
      "max_outbound_per_extension", "max_calls_per_hour", "max_org_calls_per_hour", "max_call_duration"],
    cells: { international: (allowed) => (allowed ? "allowed" : "blocked") },
    actions: {
      "International on/off": (row) => api("PATCH", "/api/call-policy", { international: !row.international }),
    },
  },
  profiles: {
    title: "Profiles", needs: "extension",
    list: "/api/extensions/{extension}/profiles", columns: ["id", "name", "accept", "divert", "caller_id"],
    create: { path: "/api/extensions/{extension}/profiles", fields: ["name", "accept:both|direct|queue|none", "divert", "caller_id"] },
    actions: {
      "Switch to": (row, ctx) => api("POST", `/api/extensions/${ctx.extension}/profile`, { profile_id: row.id }),
      Delete: remove("/api/profiles/{id}"),
    },
  },
  ivrs: {
    title: "IVRs", list: "/api/ivrs", columns: ["name", "number", "language", "schedule", "menus"],
    tools: ivrTools,
    actions: {
      View: async (row) => detail(await api("GET", `/api/ivrs/${row.name}/yaml`)),
      Simulate: async (row) => {
        const digits = $("#ivr-digits").value.split(",").map((s) => s.trim()).filter(Boolean);
        const at = $("#ivr-at").value;
        const walk = await api("POST", `/api/ivrs/${row.name}/simulate`, at ? { digits, at } : { digits });
        detail(walk.text);
      },
      Delete: remove("/api/ivrs/{name}"),
    },
  },
  calls: {
    title: "Calls", list: "/api/cdrs",
    columns: ["started_at", "caller", "callee", "answered_by", "disposition", "billsec"],
  },
  audit: { title: "Audit log", list: "/api/audit", columns: ["at", "actor", "action", "target"] },
};

let current = "extensions";
const context = {};

// Text shown under a view's table (an IVR's tree, a simulated call).
function detail(text) { $("#view-detail").textContent = text; }

// IVRs: import a YAML file; the keys and time a simulated call uses.
function ivrTools(tools) {
  const file = Object.assign(document.createElement("input"), { type: "file", id: "ivr-file", accept: ".yaml,.yml" });
  const load = Object.assign(document.createElement("button"), { type: "button", textContent: "Import YAML" });
  load.addEventListener("click", async () => {
    try {
      if (!file.files.length) throw new Error("choose a YAML file first");
      const tree = await api("POST", "/api/ivrs/import", await file.files[0].text(), "application/yaml");
      detail(`Imported ${tree.name} (${tree.number}).`);
      show(current);
    } catch (error) { $("#view-error").textContent = error.message; }
  });
  const digits = Object.assign(document.createElement("input"), { id: "ivr-digits", placeholder: "1,timeout,2" });
  const at = Object.assign(document.createElement("input"), { id: "ivr-at", type: "datetime-local" });
  const label = (text, input) => { const l = Object.assign(document.createElement("label"), { textContent: text }); l.append(input); return l; };
  tools.append(label("YAML file", file), load, label("Keys to simulate", digits), label("At (default now)", at));
}

function fill(path) { return path.replace(/{(\w+)}/g, (_, k) => encodeURIComponent(context[k] || "")); }

function cell(name, value) {
  if (value === null || value === undefined) return "";
  if (name.endsWith("_at") || name === "at") return new Date(value * 1000).toLocaleString();
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

// Each show() call is numbered: an answer that arrives after a newer view was
// asked for is dropped, so a slow list never draws over the page one is on.
let shown = 0;

async function show(name) {
  if (name !== current) detail("");
  current = name;
  const ticket = ++shown;
  const view = VIEWS[name];
  document.querySelectorAll("#tabs button").forEach((b) => b.setAttribute("aria-selected", b.dataset.view === name));
  $("#view-title").textContent = view.title;
  $("#view-error").textContent = "";
  const tools = $("#view-tools");
  tools.replaceChildren();
  if (view.needs) {
    const input = Object.assign(document.createElement("input"), { placeholder: view.needs, value: context[view.needs] || "" });
    input.addEventListener("change", () => { context[view.needs] = input.value; show(name); });
    tools.append(Object.assign(document.createElement("label"), { textContent: `${view.needs} ` }), input);
    if (!context[view.needs]) { render(view, []); return; }
  }
  if (view.tools) view.tools(tools);
  try {
    const data = await api("GET", fill(view.list));
    if (ticket !== shown) return;
    const rows = view.rows ? view.rows(data) : Array.isArray(data) ? data : (data.items || data.services || []);
    render(view, rows);
    $("#view-more").textContent = data && data.total !== undefined ? `${rows.length} of ${data.total}` : "";
  } catch (error) {
    if (ticket !== shown) return;
    render(view, []);
    $("#view-error").textContent = error.message;
  }
}

function render(view, rows) {
  const head = $("#view-table thead");
  const body = $("#view-table tbody");
  const actions = Object.entries(view.actions || {});
  head.replaceChildren(row(view.columns.concat(actions.length ? [""] : []), "th"));
  body.replaceChildren(...rows.map((item) => {
    const shows = view.cells || {};
    const tr = row(view.columns.map((c) => (shows[c] ? shows[c](item[c]) : cell(c, item[c]))), "td");
    if (actions.length) {
      const td = document.createElement("td");
      for (const [label, act] of actions) {
        if (view.when && view.when[label] && !view.when[label](item)) continue;
        const button = Object.assign(document.createElement("button"), { textContent: label, type: "button" });
        button.addEventListener("click", async () => {
          try { await act(item, context); show(current); } catch (e) { $("#view-error").textContent = e.message; }
        });
        td.append(button);
      }
      tr.append(td);
    }
    return tr;
  }));
  const form = $("#create");
  form.hidden = !view.create;
  if (view.create) {
    $("#create-fields").replaceChildren(...view.create.fields.map(field));
  }
}

function row(values, tag) {
  const tr = document.createElement("tr");
  for (const value of values) tr.append(Object.assign(document.createElement(tag), { textContent: value }));
  return tr;
}

function field(spec) {
  const [name, kind] = spec.split(":");
  const label = Object.assign(document.createElement("label"), { textContent: name });
  let input;
  if (kind && kind.includes("|")) {
    input = document.createElement("select");
    for (const option of kind.split("|")) input.append(new Option(option || "—", option));
  } else {
    input = Object.assign(document.createElement("input"), { type: kind === "password" ? "password" : "text" });
  }
  input.name = name;
  input.dataset.kind = kind || "";
  label.append(input);
  return label;
}

// Secrets the API answers with once (comma-separated field names).
function showOnce(data, fields) {
  const lines = fields.split(",").filter((name) => data && data[name])
    .map((name) => `${name} (shown once): ${data[name]}`);
  if (lines.length) alert(lines.join("\n"));
}

$("#create").addEventListener("submit", async (event) => {
  event.preventDefault();
  const view = VIEWS[current];
  const body = {};
  for (const input of event.target.querySelectorAll("input, select")) {
    if (input.value === "" && input.tagName === "INPUT") continue;
    body[input.name] = input.dataset.kind === "list" ? input.value.split(",").map((s) => s.trim()) : input.value;
  }
  try {
    const created = await api("POST", fill(view.create.path), body);
    if (view.create.shows) showOnce(created, view.create.shows);
    event.target.reset();
    show(current);
  } catch (error) {
    $("#view-error").textContent = error.message;
  }
});

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { username: form.get("username"), password: form.get("password") };
  if (form.get("otp")) body.otp = form.get("otp");
  try {
    const answer = await api("POST", "/api/login", body);
    token = answer.token;
    sessionStorage.setItem("pbx-token", token);
    start();
  } catch (error) {
    $("#login-error").textContent = error.message;
  }
});

function logout() {
  token = null;
  sessionStorage.removeItem("pbx-token");
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#who").textContent = "";
}
$("#logout").addEventListener("click", logout);

async function start() {
  const me = await api("GET", "/api/me");
  $("#who").textContent = `${me.username} (${me.role})`;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  context.extension = me.extension || "";
  $("#tabs").replaceChildren(...Object.entries(VIEWS).map(([name, view]) => {
    const button = Object.assign(document.createElement("button"), { textContent: view.title, type: "button" });
    button.dataset.view = name;
    button.addEventListener("click", () => show(name));
    return button;
  }));
  show(current);
}

if (token) start().catch(logout);
