// The supervisors' wallboard: live queue and agent figures pushed over the
// WebSocket /api/queue-stats/feed (never polled), charts of today and the last
// weeks from the history API (uPlot, vendored), and the supervisor's buttons.
// Plain JS, no build step; the token is the admin pages' (sessionStorage).
"use strict";

const $ = (sel) => document.querySelector(sel);
const token = sessionStorage.getItem("pbx-token");
const queues = new Map();  // queue number → its latest snapshot
const agents = new Map();  // agent → its latest snapshot (with the local time it came)
const charts = {};

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && data.detail;
    throw new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
  }
  return data;
}

function fail(error) {
  $("#error").hidden = false;
  $("#error").textContent = error.message || String(error);
}

const clock = (seconds) => seconds === null || seconds === undefined ? "–"
  : `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
const percent = (value) => value === null ? "–" : `${value} %`;
const since = (snapshot) => (Date.now() / 1000 - snapshot.received);

function figure(label, value, id, alert) {
  return `<div class="figure${alert ? " alert" : ""}"><b${id ? ` id="${id}"` : ""}>${value}</b><small>${label}</small></div>`;
}

function drawQueue(q) {
  let card = document.getElementById(`queue-${q.queue}`);
  if (!card) {
    card = document.createElement("article");
    card.id = `queue-${q.queue}`;
    card.className = "card queue";
    $("#queues").append(card);
    $("#chart-queue").add(new Option(q.queue, q.queue));
    if ($("#chart-queue").options.length === 1) drawCharts(q.queue).catch(fail);
  }
  const waited = q.waiting ? q.longest_wait + since(q) : 0;
  const needed = q.staffing ? q.staffing.agents_needed : "–";
  card.innerHTML = `<h2><span>Queue ${q.queue}</span>${q.open ? "" : '<span class="closed">closed</span>'}</h2>
    <div class="figures">
      ${figure("waiting", q.waiting, `waiting-${q.queue}`, q.waiting > 0)}
      ${figure("longest wait", clock(waited), `longest-${q.queue}`)}
      ${figure("est. wait, new caller", clock(q.estimated_wait))}
      ${figure("answered today", q.answered)}
      ${figure("abandoned", q.abandoned, "", q.abandoned > 0)}
      ${figure(`service level (${q.threshold} s)`, percent(q.service_level))}
      ${figure("average wait", clock(q.average_wait))}
      ${figure("average talk", clock(q.average_talk))}
      ${figure("overflowed / callbacks", `${q.overflowed} / ${q.callbacks}`)}
      ${figure("agents in / needed (Erlang C)", `${q.logged_in} / ${needed}`)}
      ${figure("available · on call · paused", `${q.agents.available} · ${q.agents.on_queue_call + q.agents.on_direct_call} · ${q.agents.paused}`)}
      ${figure("survey", q.survey.average === null ? "–" : `${q.survey.average} (${q.survey.answers})`)}
    </div>`;
}

const ACTIONS = {
  Pause: (a) => call("POST", `/api/agents/${a}/pause`, { reason: $("#pause-reason").value }),
  Unpause: (a) => call("POST", `/api/agents/${a}/unpause`),
  "Log in": (a) => call("POST", `/api/agents/${a}/login`),
  "Log out": (a) => call("POST", `/api/agents/${a}/logout`),
  Listen: (a) => call("POST", `/api/agents/${a}/monitor`, { mode: "listen" }),
  Whisper: (a) => call("POST", `/api/agents/${a}/monitor`, { mode: "whisper" }),
  Barge: (a) => call("POST", `/api/agents/${a}/monitor`, { mode: "barge" }),
};

function drawAgent(a) {
  let row = document.getElementById(`agent-${a.agent}`);
  if (!row) {
    row = document.createElement("tr");
    row.id = `agent-${a.agent}`;
    $("#agents tbody").append(row);
  }
  const state = a.state.replaceAll("_", " ") + (a.reason ? ` (${a.reason})` : "");
  row.innerHTML = `<td>${a.agent}</td><td class="state-${a.state}" data-state="${a.state}">${state}</td>
    <td class="in-state">${clock(a.in_state + since(a))}</td><td>${a.calls}</td><td>${clock(a.talk_time)}</td>
    <td>${clock(a.pause_time + (a.state === "paused" ? since(a) : 0))}</td>
    <td>${a.survey.average === null ? "–" : a.survey.average}</td><td></td>`;
  for (const [label, act] of Object.entries(ACTIONS)) {
    const button = document.createElement("button");
    button.textContent = label;
    button.dataset.action = label;
    button.onclick = () => act(a.agent).then(() => { $("#error").hidden = true; }).catch(fail);
    row.lastElementChild.append(button);
  }
}

function take(list, into, draw) {
  const received = Date.now() / 1000;
  for (const item of list) {
    const shown = { ...item, received };
    into.set(item.queue || item.agent, shown);
    draw(shown);
  }
}

function listen() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const feed = new WebSocket(`${scheme}://${location.host}/api/queue-stats/feed?token=${encodeURIComponent(token)}`);
  feed.onopen = () => { $("#feed-state").textContent = "live"; };
  feed.onmessage = (message) => {
    const data = JSON.parse(message.data);
    take(data.queues, queues, drawQueue);
    take(data.agents, agents, drawAgent);
    $("#board").hidden = false;
  };
  feed.onclose = (closing) => {
    $("#feed-state").textContent = "reconnecting…";
    if (closing.code === 4401 || closing.code === 4403) {
      $("#feed-state").textContent = closing.reason;
      return;
    }
    setTimeout(listen, 2000);  // the PBX restarted, or the network went away
  };
}

// ------------------------------------------------------------------ charts

function chart(id, rows, series) {
  const times = rows.map((row) => Date.parse(row.start) / 1000);
  const value = (row, key) => key.split(".").reduce((v, k) => (v === null || v === undefined ? null : v[k]), row);
  const data = [times, ...series.map(([, key]) => rows.map((row) => value(row, key)))];
  const options = {
    width: 460, height: 220,
    series: [{}, ...series.map(([label, , stroke, scale]) => ({ label, stroke, scale: scale || "n" }))],
    axes: [{}, { scale: "n" }, { scale: "%", side: 1, grid: { show: false } }],
    scales: { "%": { range: [0, 100] } },
  };
  if (charts[id]) charts[id].destroy();
  $(`#${id}`).textContent = "";
  charts[id] = new uPlot(options, data, $(`#${id}`));
}

async function drawCharts(queue) {
  const midnight = new Date(); midnight.setHours(0, 0, 0, 0);
  const today = await call("GET", `/api/queue-stats/${queue}/history?period=hour&since=${midnight / 1000}`);
  const weeks = await call("GET", `/api/queue-stats/${queue}/history?period=day&since=${midnight / 1000 - 27 * 86400}`);
  const series = [["answered", "answered", "#1a7f37"], ["abandoned", "abandoned", "#b00020"],
                  ["service level %", "service_level", "#2d6cdf", "%"]];
  chart("chart-today", today, [...series, ["agents on duty", "agents_on_duty", "#5a6b87"],
                               ["agents needed (Erlang C)", "staffing.agents_needed", "#b26b00"]]);
  chart("chart-weeks", weeks, series);
}

$("#chart-queue").onchange = () => drawCharts($("#chart-queue").value).catch(fail);

setInterval(() => {  // the clocks tick between events
  for (const q of queues.values()) {
    const longest = document.getElementById(`longest-${q.queue}`);
    if (longest && q.waiting) longest.textContent = clock(q.longest_wait + since(q));
  }
  for (const a of agents.values()) {
    const cell = document.querySelector(`#agent-${a.agent} .in-state`);
    if (cell) cell.textContent = clock(a.in_state + since(a));
  }
}, 1000);

if (!token) {
  $("#need-login").hidden = false;
  $("#feed-state").textContent = "";
} else {
  listen();
}
