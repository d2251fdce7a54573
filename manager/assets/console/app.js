// RedPepper web console: plain JS over the admin API (docs/CONSOLE.md). No inline
// script or style (the page's CSP forbids them), nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
};
const stats = { fleetRenderedAt: 0, renders: 0, renderMs: 0, eventsSeen: 0, kinds: {}, maxLagMs: 0, lagged: 0, lastEventTime: "" };
window.rpConsole = stats; // read by the tests and the measurements

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401 && !path.startsWith("/console/")) { showLogin(); throw new Error("logged out"); }
  return r;
}

// ---------- login ----------
function showLogin() {
  stopLive();
  $("nav").hidden = true; $("who").hidden = true;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("login").hidden = false;
  $("token").focus();
}

async function login(body) {
  $("login-error").textContent = "";
  const r = await fetch("/console/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({}));
  if (r.ok) { start(j.user); return; }
  if (j.code === "totp_required") {
    $("code-row").hidden = false; $("code").focus();
    $("login-error").textContent = "Enter the code of your authenticator.";
    return;
  }
  $("login-error").textContent = j.code === "too_many_attempts" ? "Too many failed attempts: wait a minute." : "Login refused.";
}

$("token-form").addEventListener("submit", (e) => { e.preventDefault(); login({ token: $("token").value }); $("token").value = ""; });
$("account-form").addEventListener("submit", (e) => {
  e.preventDefault();
  login({ username: $("username").value, password: $("password").value, code: $("code").value || null });
  $("code").value = "";
});
$("logout").addEventListener("click", async () => {
  await fetch("/console/logout", { method: "POST" });
  showLogin();
});

// ---------- navigation ----------
function route() {
  const view = (location.hash || "#fleet").slice(1);
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (view === "charts") drawCharts();
  if (view === "events") renderEvents();
}
window.addEventListener("hashchange", () => { if (!$("nav").hidden) route(); });

async function start(user) {
  $("login").hidden = true;
  $("nav").hidden = false; $("who").hidden = false;
  $("user").textContent = user ? "Logged in as " + user : "";
  route();
  $("main").focus();
  await loadAgents();
  startLive();
}

// ---------- fleet ----------
// The table is drawn once, then kept: an event redraws only the cells of its agent's
// row, at most every FLEET_EVERY_MS, and rows lay out on their own (app.css), so a
// thousand agents coming and going cost a few cell updates per draw, not a thousand
// new rows and a table layout per event.
const agents = new Map(); // id -> {info, state}
const rows = new Map(); // id -> its <tr>, for the agents the filters show
const fleetChanged = new Set(); // ids to draw again
const FLEET_EVERY_MS = 200;
let fleetDirty = false, fleetRebuild = true, fleetDrawnAt = -Infinity;
// Draw again the row of `id`, or every row (a filter changed).
function markFleet(id) {
  if (id === undefined) fleetRebuild = true; else fleetChanged.add(id);
  if (fleetDirty) return;
  fleetDirty = true;
  const wait = fleetDrawnAt + FLEET_EVERY_MS - performance.now();
  if (wait > 0) setTimeout(() => requestAnimationFrame(renderFleet), wait); else requestAnimationFrame(renderFleet);
}

// Connected agents and, with `down=true`, the agents of agents.yml connected nowhere
// (`state: down`, `last_seen`). An agent left since, not in agents.yml: `disconnected`.
async function loadAgents() {
  const r = await api("GET", "/v1/agents?down=true");
  const j = await r.json();
  const seen = new Set();
  for (const a of j.agents) { agents.set(a.id, { info: a, state: a.state === "down" ? "down" : "connected" }); seen.add(a.id); markFleet(a.id); }
  for (const [id, a] of agents) if (!seen.has(id) && a.state === "connected") { a.state = "disconnected"; markFleet(id); }
}

const fmtTime = (t) => (t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
const since = (state, a) => (state === "connected" ? fmtTime(a.connected_since)
  : a.last_seen ? "last seen " + fmtTime(a.last_seen) : state === "down" ? "never seen" : "");
const cellsOf = (a, state) => [a.id, state, a.node, a.transport, a.remote_addr, a.version, since(state, a),
  a.last_ping_rtt_ms == null ? "-" : a.last_ping_rtt_ms.toFixed(2) + " ms"].map((v) => (v == null ? "" : String(v)));
function shown(a, state) {
  const text = $("fleet-filter").value.trim().toLowerCase(), want = $("fleet-state").value;
  if (want && state !== want) return false;
  return !text || [a.id, a.node, a.transport, a.remote_addr, a.version].some((v) => v && String(v).toLowerCase().includes(text));
}
// Make, update or remove the row of `id`; `place` puts a new row in the table.
function drawRow(id, place) {
  const { info, state } = agents.get(id);
  let tr = rows.get(id);
  if (!shown(info, state)) { if (tr) { tr.remove(); rows.delete(id); } return; }
  const cells = cellsOf(info, state);
  if (!tr) {
    tr = el("tr");
    tr.dataset.agent = id;
    tr.setAttribute("role", "row"); // the table is laid out as a grid (app.css): say what it is
    tr.append(...cells.map(() => { const td = el("td"); td.setAttribute("role", "cell"); return td; }));
    place(tr);
    rows.set(id, tr);
  }
  cells.forEach((text, i) => { if (tr.cells[i].textContent !== text) tr.cells[i].textContent = text; });
  if (tr.cells[1].className !== "state-" + state) tr.cells[1].className = "state-" + state;
}
// Put `tr` (agent `id`) before the first row of a greater id: the rows stay sorted.
function insertSorted(body, tr, id) {
  let lo = 0, hi = body.rows.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (body.rows[mid].dataset.agent < id) lo = mid + 1; else hi = mid; }
  body.insertBefore(tr, body.rows[lo] || null);
}
function renderFleet() {
  const t0 = performance.now();
  fleetDirty = false;
  const body = $("fleet-table").tBodies[0];
  if (fleetRebuild) {
    fleetRebuild = false;
    rows.clear();
    const frag = document.createDocumentFragment();
    for (const id of [...agents.keys()].sort()) drawRow(id, (tr) => frag.append(tr));
    body.replaceChildren(frag);
  } else for (const id of fleetChanged) drawRow(id, (tr) => insertSorted(body, tr, id));
  fleetChanged.clear();
  const byTransport = {}, byNode = {};
  let up = 0, down = 0;
  for (const { info: a, state } of agents.values()) {
    if (state === "connected") {
      up++;
      byTransport[a.transport] = (byTransport[a.transport] || 0) + 1;
      byNode[a.node] = (byNode[a.node] || 0) + 1;
    } else if (state === "down") down++;
  }
  const fmt = (o) => Object.entries(o).sort().map(([k, v]) => k + " " + v).join(", ") || "none";
  const counts = `${up} connected, ${down} down, ${agents.size} in all. By transport: ${fmt(byTransport)}. By node: ${fmt(byNode)}.`;
  if ($("fleet-counts").textContent !== counts) $("fleet-counts").textContent = counts;
  stats.renders++;
  fleetDrawnAt = performance.now();
  stats.renderMs += fleetDrawnAt - t0;
  if (!stats.fleetRenderedAt) stats.fleetRenderedAt = fleetDrawnAt;
}
$("fleet-filter").addEventListener("input", () => markFleet());
$("fleet-state").addEventListener("change", () => markFleet());

// ---------- live events ----------
let source = null, refreshTimer = null, pollTimer = null, reloadSoon = null;
const KINDS = ["connected", "authenticated", "auth_failed", "disconnected", "notification", "command_progress", "command_result", "lagged"];
function startLive() {
  stopLive();
  source = new EventSource("/v1/events");
  source.onopen = () => { $("fleet-live").textContent = "live"; };
  source.onerror = () => { $("fleet-live").textContent = "reconnecting…"; };
  for (const k of KINDS) source.addEventListener(k, (m) => onEvent(m.data));
  refreshTimer = setInterval(() => loadAgents().catch(() => {}), 15000);
  pollTimer = setInterval(pollMetrics, 2000);
  pollMetrics();
}
function stopLive() {
  if (source) source.close();
  source = null;
  clearInterval(refreshTimer); clearInterval(pollTimer);
}

function onEvent(data) {
  let ev;
  try { ev = JSON.parse(data); } catch { return; }
  stats.eventsSeen++;
  stats.kinds[ev.type] = (stats.kinds[ev.type] || 0) + 1;
  stats.maxLagMs = Math.max(stats.maxLagMs, Date.now() - Date.parse(ev.time)); // since the manager sent it
  stats.lastEventTime = ev.time;
  if (ev.type === "authenticated") {
    const known = agents.get(ev.agent);
    const peer = (ev.peer || "").split("://");
    const info = Object.assign({}, known ? known.info : {}, { id: ev.agent, node: ev.node, transport: peer[0], remote_addr: peer[1], connected_since: ev.time });
    if (ev.version) info.version = ev.version;
    agents.set(ev.agent, { info, state: "connected" });
    // The details (version on another node, ping) come with the next list.
    if (!reloadSoon) reloadSoon = setTimeout(() => { reloadSoon = null; loadAgents().catch(() => {}); }, 1000);
    markFleet(ev.agent);
  } else if (ev.type === "disconnected") {
    const a = agents.get(ev.agent);
    if (a) { a.state = "disconnected"; a.info.last_seen = ev.time; markFleet(ev.agent); }
  } else if (ev.type === "lagged") {
    stats.lagged++;
    loadAgents().catch(() => {});
  }
  pushEvent(ev);
}

// ---------- events view ----------
const EVENTS_KEPT = 1000;
const events = [];
let eventsDirty = false, paused = false;
function pushEvent(ev) {
  events.push(ev);
  if (events.length > EVENTS_KEPT) events.splice(0, events.length - EVENTS_KEPT);
  if (!paused && !eventsDirty && !$("events").hidden) { eventsDirty = true; requestAnimationFrame(renderEvents); }
}
function eventLine(ev) {
  const rest = Object.assign({}, ev);
  for (const k of ["time", "type", "node", "agent"]) delete rest[k];
  return `${ev.time} ${ev.type.padEnd(16)} ${ev.node || ""} ${ev.agent || ""} ${JSON.stringify(rest)}`;
}
function renderEvents() {
  eventsDirty = false;
  if (paused) return;
  const agent = $("ev-agent").value.trim(), kind = $("ev-kind").value;
  const frag = document.createDocumentFragment();
  let n = 0;
  for (let i = events.length - 1; i >= 0 && n < 300; i--) {
    const ev = events[i];
    if (kind && ev.type !== kind) continue;
    if (agent && !(ev.agent || "").includes(agent)) continue;
    const li = el("li", eventLine(ev));
    li.dataset.type = ev.type;
    frag.append(li); n++;
  }
  $("events-list").replaceChildren(frag);
}
$("events-list").addEventListener("scroll", () => {
  const p = $("events-list").scrollTop > 4;
  if (p !== paused) { paused = p; $("events-paused").hidden = !p; if (!p) renderEvents(); }
});
$("ev-agent").addEventListener("input", renderEvents);
$("ev-kind").addEventListener("change", renderEvents);

// ---------- run ----------
let runId = null, runAbort = null;
const results = new Map();
function renderRun() {
  const rank = (r) => (r.status === "failed" || r.status === "cancelled" ? 0 : r.status === "running" ? 1 : 2);
  const rows = [...results.values()].sort((a, b) => rank(a) - rank(b) || a.agent.localeCompare(b.agent));
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = el("tr");
    tr.dataset.agent = r.agent;
    const prog = el("td");
    if (r.total) { const p = el("progress"); p.max = r.total; p.value = r.current; p.setAttribute("aria-label", `${r.agent} ${r.current} of ${r.total}`); prog.append(p, " " + (r.message || "")); }
    tr.append(el("td", r.agent), el("td", r.status, r.status === "succeeded" ? "ok" : r.status === "running" ? "" : "bad"), prog, el("td", r.output || "", "out"));
    frag.append(tr);
  }
  $("run-table").tBodies[0].replaceChildren(frag);
}
function onRunLine(line) {
  const r = results.get(line.agent) || { agent: line.agent, status: "running" };
  if (line.event === "started") { runId = line.run_id; $("run-cancel").disabled = false; }
  else if (line.event === "progress") { r.current = line.current; r.total = line.total; r.message = line.message; }
  else if (line.event === "result") {
    r.status = line.success ? "succeeded" : line.code === "cancelled" ? "cancelled" : "failed";
    r.output = line.success ? line.output : `${line.code || "failed"}: ${line.error || line.output || ""}`;
  } else if (line.event === "summary") {
    const cancelled = [...results.values()].filter((r) => r.status === "cancelled").length;
    $("run-summary").textContent = `${line.total} agent(s): ${line.succeeded} succeeded, ${line.failed} failed` +
      (cancelled ? ` (${cancelled} cancelled)` : "") + `, ${line.changed} changed`;
    return;
  }
  if (line.agent) results.set(line.agent, r);
  renderRun();
}
$("run-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  let kwargs = {};
  const kw = $("run-kwargs").value.trim();
  if (kw) { try { kwargs = JSON.parse(kw); } catch (err) { $("run-summary").textContent = "Keyword arguments: not JSON (" + err.message + ")"; return; } }
  const args = $("run-args").value.split("\n").map((s) => s.trim()).filter(Boolean);
  results.clear(); renderRun(); runId = null;
  $("run-summary").textContent = "Running…";
  $("run-start").disabled = true;
  runAbort = new AbortController();
  try {
    const r = await fetch("/v1/runs?stream=true", { method: "POST", signal: runAbort.signal, headers: { "content-type": "application/json" },
      body: JSON.stringify({ target: $("run-target").value.trim(), operation: $("run-op").value.trim(), args, kwargs }) });
    if (!r.ok) { const j = await r.json().catch(() => ({})); $("run-summary").textContent = `Refused: ${j.error || r.status}`; return; }
    runId = r.headers.get("x-redpepper-run-id");
    $("run-cancel").disabled = false;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        if (line.trim()) { try { onRunLine(JSON.parse(line)); } catch { /* a partial line: wait */ } }
      }
    }
  } catch (err) {
    $("run-summary").textContent = "Run ended: " + err.message;
  } finally {
    $("run-start").disabled = false; $("run-cancel").disabled = true;
  }
});
$("run-cancel").addEventListener("click", async () => {
  if (!runId) return;
  $("run-cancel").disabled = true;
  // The run's summary line replaces this when the run ends.
  const summary = $("run-summary");
  if (summary.textContent === "Running…") summary.textContent = "Cancelling…";
  const r = await api("DELETE", "/v1/runs/" + encodeURIComponent(runId)).catch(() => null);
  // 404: the run had ended already.
  if (r && r.status !== 202 && r.status !== 404 && summary.textContent === "Cancelling…") {
    summary.textContent = `Running… (cancel refused: ${r.status})`;
    $("run-cancel").disabled = false;
  }
});

// ---------- charts ----------
const HISTORY = 300; // samples of 2 s: 10 minutes
const series = { t: [], calls: [], p50: [], p90: [], p99: [], transports: {} };
let lastSample = null;
function parseMetrics(text) {
  const m = { calls: 0, buckets: [], agents: {} };
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const sp = line.lastIndexOf(" ");
    const name = line.slice(0, sp), v = Number(line.slice(sp + 1));
    if (name.startsWith("redpepper_calls_sent_total")) m.calls += v;
    else if (name.startsWith("redpepper_ping_rtt_seconds_bucket")) {
      const le = /le="([^"]+)"/.exec(name);
      if (le) m.buckets.push([le[1] === "+Inf" ? Infinity : Number(le[1]), v]);
    } else if (name.startsWith("redpepper_connected_agents{")) {
      const t = /transport="([^"]+)"/.exec(name);
      if (t) m.agents[t[1]] = v;
    }
  }
  return m;
}
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  for (const [le, c] of buckets) if (c >= q * total) return le === Infinity ? null : le * 1000;
  return null;
}
async function pollMetrics() {
  let text;
  try { const r = await api("GET", "/metrics"); text = await r.text(); } catch { return; }
  const m = parseMetrics(text), now = Date.now();
  let buckets = m.buckets;
  if (lastSample) {
    const prev = new Map(lastSample.buckets);
    const diff = m.buckets.map(([le, c]) => [le, c - (prev.get(le) || 0)]);
    if (diff.length && diff[diff.length - 1][1] > 0) buckets = diff;
    series.t.push(now);
    series.calls.push(Math.max(0, (m.calls - lastSample.calls) / ((now - lastSample.at) / 1000)));
    series.p50.push(quantile(buckets, 0.5)); series.p90.push(quantile(buckets, 0.9)); series.p99.push(quantile(buckets, 0.99));
    for (const k of new Set([...Object.keys(series.transports), ...Object.keys(m.agents)])) {
      (series.transports[k] = series.transports[k] || new Array(series.t.length - 1).fill(null)).push(m.agents[k] || 0);
    }
    if (series.t.length > HISTORY) {
      for (const a of [series.t, series.calls, series.p50, series.p90, series.p99, ...Object.values(series.transports)]) a.shift();
    }
  }
  lastSample = { calls: m.calls, buckets: m.buckets, at: now };
  if (!$("charts").hidden) drawCharts();
}
const COLORS = ["#c62828", "#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00"];
function drawLines(canvas, lines) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 30;
  const style = getComputedStyle(document.body);
  ctx.clearRect(0, 0, W, H);
  let max = 0;
  for (const l of lines) for (const v of l.values) if (v != null && v > max) max = v;
  max = max > 0 ? max * 1.1 : 1;
  ctx.fillStyle = style.color; ctx.font = "11px sans-serif";
  ctx.fillText(max.toPrecision(3), 2, 12); ctx.fillText("0", 2, H - 4);
  ctx.strokeStyle = "#888"; ctx.beginPath(); ctx.moveTo(pad, 0); ctx.lineTo(pad, H - pad / 2); ctx.lineTo(W, H - pad / 2); ctx.stroke();
  const n = Math.max(2, series.t.length);
  lines.forEach((l, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
    let on = false;
    l.values.forEach((v, x) => {
      if (v == null) { on = false; return; }
      const px = pad + (x / (n - 1)) * (W - pad - 4), py = H - pad / 2 - (v / max) * (H - pad);
      if (on) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      on = true;
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[i % COLORS.length];
    ctx.fillText(l.name, pad + 8 + i * 90, H - 2);
  });
}
function drawCharts() {
  drawLines($("c-calls"), [{ name: "calls/s", values: series.calls }]);
  drawLines($("c-ping"), [{ name: "p50", values: series.p50 }, { name: "p90", values: series.p90 }, { name: "p99", values: series.p99 }]);
  drawLines($("c-agents"), Object.entries(series.transports).map(([k, v]) => ({ name: k, values: v })));
  const last = (a) => (a.length ? a[a.length - 1] : null);
  const f = (v) => (v == null ? "-" : v.toFixed(2));
  $("charts-legend").textContent = `Now: ${f(last(series.calls))} calls/s; ping p50 ${f(last(series.p50))} ms, p99 ${f(last(series.p99))} ms; ` +
    Object.entries(series.transports).map(([k, v]) => `${k} ${last(v)}`).join(", ");
}

// ---------- boot ----------
(async () => {
  const r = await fetch("/v1/status");
  if (r.ok) start(""); else showLogin();
})();
