/* Hyperion dashboard: plain JavaScript, no dependencies, no build step.
 *
 * Every figure comes from /v1/dashboard/* (aggregated and paginated on the server) with the
 * token the user typed, kept in this tab's sessionStorage and sent as "Authorization: Bearer".
 * The page refreshes the summary and the open view every REFRESH_MS. The DOM is built with
 * textContent only (never innerHTML with data), and charts are inline SVG drawn here.
 */
"use strict";

const TOKEN_KEY = "hyperion.token";
const REFRESH_MS = 5000;
const PAGE = 50;
const VIEWS = ["queues", "running", "nodes", "cost", "events"];
const PALETTE = ["#4f46e5", "#0ea5e9", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0d9488", "#dc2626", "#64748b", "#a16207"];
const SVG_NS = "http://www.w3.org/2000/svg";

const ui = {
  view: "queues",
  queue: "",
  offsets: { pending: 0, running: 0, nodes: 0 },
  nodeQuery: "",
  node: null,            // the node whose telemetry is open
  costRange: "24h",
  eventKind: "",
  eventsLimit: PAGE,     // grows by a page with "Older events"
  timer: null,
  busy: false,
  again: false,          // a refresh was asked for while one was running
  lastOk: 0,
  teamColors: new Map(),
};

class AuthError extends Error {}

// ---- small helpers -------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.setAttribute("style", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c) node.append(c);
  return node;
}

const nowS = () => Date.now() / 1000;
const pad = (n) => String(n).padStart(2, "0");

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function fmtTime(t, withDate) {
  const d = new Date(t * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (withDate === "seconds") return `${hm}:${pad(d.getSeconds())}`;
  if (!withDate) return hm;
  return `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${hm}`;
}

function fmtClock(t) {
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a === 0) return "0";
  if (a < 0.01) return v.toPrecision(2);  // small amounts keep two significant digits
  return v.toFixed(a < 1 ? Math.max(digits, 2) : digits);
}

/* An axis label: as many decimals as the step between ticks needs. */
function fmtTick(v, step) {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1e4) return fmtNum(v);
  let decimals = 0;
  while (decimals < 8 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-9) decimals++;
  return v.toFixed(decimals);
}

/* Epoch times inside server messages ("starts at t=1749992302") shown as local times. */
const readable = (text) => text.replace(/\bt=(\d{9,11})(\.\d+)?\b/g, (_, t) => fmtTime(Number(t), true));

const fmtUsd = (v) => (v === null || v === undefined ? "-" : "$" + fmtNum(v, 2));
const fmtMb = (mb) => (mb === null || mb === undefined ? "-" : mb >= 1024 ? `${(mb / 1024).toFixed(1)} GiB` : `${Math.round(mb)} MiB`);

function teamColor(team) {
  if (!ui.teamColors.has(team)) ui.teamColors.set(team, PALETTE[ui.teamColors.size % PALETTE.length]);
  return ui.teamColors.get(team);
}

// ---- API -----------------------------------------------------------------------------------
async function api(path, token) {
  token = token || sessionStorage.getItem(TOKEN_KEY) || "";
  let r;
  try {
    r = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch (e) {
    throw new Error(`cannot reach the control plane (${e.message})`);
  }
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  const message = (body && body.message) || r.statusText || `HTTP ${r.status}`;
  if (r.status === 401) throw new AuthError(message);
  if (!r.ok) throw new Error(`${r.status}: ${message}`);
  return body;
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

// ---- login / logout ------------------------------------------------------------------------
function showLogin(message) {
  clearInterval(ui.timer);
  ui.timer = null;
  $("#app").hidden = true;
  $("#login").hidden = false;
  const err = $("#login-error");
  err.textContent = message || "";
  err.hidden = !message;
  $("#token-input").value = "";
  $("#token-input").focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const token = $("#token-input").value.trim();
  const err = $("#login-error");
  if (!token) {
    err.textContent = "Enter a token.";
    err.hidden = false;
    return;
  }
  $("#login-button").disabled = true;
  try {
    await api("/v1/dashboard/summary", token);
  } catch (e) {
    err.textContent = e instanceof AuthError
      ? `Token refused: ${e.message}. Use the admin token (<data dir>/admin.token) or your team's token.`
      : `Could not sign in: ${e.message}`;
    err.hidden = false;
    $("#token-input").select();
    return;
  } finally {
    $("#login-button").disabled = false;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  err.hidden = true;
  startApp();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  ui.node = null;
  showLogin(message);
}

function startApp() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  const hashView = location.hash.replace("#", "");
  showView(VIEWS.includes(hashView) ? hashView : ui.view);
  clearInterval(ui.timer);
  ui.timer = setInterval(refresh, REFRESH_MS);
}

// ---- refresh loop --------------------------------------------------------------------------
async function refresh() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  if (ui.busy) { ui.again = true; return; }
  ui.busy = true;
  ui.again = false;
  try {
    const work = [loadSummary(), loadView(ui.view)];
    if (ui.view === "nodes" && ui.node) work.push(loadNodeDetail(ui.node));
    await Promise.all(work);
    ui.lastOk = nowS();
    $("#error-banner").hidden = true;
    const up = $("#updated");
    up.textContent = `updated ${fmtClock(ui.lastOk)}`;
    up.classList.remove("stale");
  } catch (e) {
    if (e instanceof AuthError) {
      logout(`Your token is no longer accepted (${e.message}); sign in again.`);
    } else {
      const banner = $("#error-banner");
      banner.textContent = `Could not refresh: ${e.message}. Retrying every ${REFRESH_MS / 1000} s.`;
      banner.hidden = false;
      $("#updated").classList.add("stale");
    }
  } finally {
    ui.busy = false;
  }
  if (ui.again) refresh();
}

function showView(view) {
  ui.view = view;
  for (const v of VIEWS) {
    $(`#view-${v}`).hidden = v !== view;
    const tab = $(`#tab-${v}`);
    tab.classList.toggle("active", v === view);
    tab.setAttribute("aria-selected", String(v === view));
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  refresh();
}

function loadView(view) {
  switch (view) {
    case "queues": return loadPending();
    case "running": return loadRunning();
    case "nodes": return loadNodes();
    case "cost": return loadCost();
    case "events": return loadEvents();
  }
  return Promise.resolve();
}

// ---- summary -------------------------------------------------------------------------------
async function loadSummary() {
  const s = await api("/v1/dashboard/summary");
  $("#who").textContent = s.team ? `team ${s.team}` : "admin";
  const g = s.gpus, n = s.nodes, j = s.jobs;
  const pct = (x) => (g.total ? (100 * x) / g.total : 0);
  const gpuCard = el("div", { class: "card stat", "data-testid": "stat-gpus" },
    el("div", { class: "label", text: "GPUs allocated" }),
    el("div", { class: "value" }, `${g.allocated}`, el("small", { text: ` / ${g.total}` })),
    el("div", { class: "stack", title: `${g.allocated} allocated, ${g.idle} idle, ${g.unavailable} unavailable` },
      el("span", { style: `width:${pct(g.allocated)}%;background:var(--accent)` }),
      el("span", { style: `width:${pct(g.idle)}%;background:#c7d2fe` }),
      el("span", { style: `width:${pct(g.unavailable)}%;background:var(--idle)` })),
    el("div", { class: "sub" },
      el("span", {}, el("span", { class: "dot", style: "background:#c7d2fe" }), `${g.idle} idle`),
      el("span", {}, el("span", { class: "dot", style: "background:var(--idle)" }), `${g.unavailable} unavailable`),
      el("span", { text: `utilisation ${g.utilization_percent === null ? "-" : g.utilization_percent + " %"}` })));
  const jobsCard = el("div", { class: "card stat", "data-testid": "stat-jobs" },
    el("div", { class: "label", text: s.team ? `Jobs of team ${s.team}` : "Jobs" }),
    el("div", { class: "value" }, `${j.running + j.scheduled}`, el("small", { text: " running" })),
    el("div", { class: "sub" },
      el("span", { text: `${j.pending} pending` }), el("span", { text: `${j.preempted} preempted` }),
      el("span", { text: `${j.succeeded} succeeded` }), el("span", { text: `${j.failed} failed` })));
  const pendingCard = el("div", { class: "card stat", "data-testid": "stat-pending" },
    el("div", { class: "label", text: "Waiting" }),
    el("div", { class: "value" }, `${s.pending.total}`, el("small", { text: " pending" })),
    el("div", { class: "sub" }, s.pending.queues.length
      ? s.pending.queues.slice(0, 4).map((q) => el("span", { text: `${q.queue}: ${q.pending}` }))
      : el("span", { text: "no queue has waiting jobs" })));
  const problems = [];
  if (n.not_ready) problems.push(el("span", { class: "badge warn", text: `${n.not_ready} not ready` }));
  if (n.cordoned) problems.push(el("span", { class: "badge warn", text: `${n.cordoned} cordoned` }));
  if (n.unhealthy) problems.push(el("span", { class: "badge bad", text: `${n.unhealthy} unhealthy` }));
  if (n.down) problems.push(el("span", { class: "badge", text: `${n.down} down` }));
  const nodesCard = el("div", { class: "card stat", "data-testid": "stat-nodes" },
    el("div", { class: "label", text: "Nodes ready" }),
    el("div", { class: "value" }, `${n.ready}`, el("small", { text: ` / ${n.total}` })),
    el("div", { class: "sub" }, problems.length ? problems : el("span", { class: "badge ok", text: "all healthy" }),
      el("span", { class: "muted", text: `${s.scheduler.cycles ?? 0} cycles, ${s.scheduler.evicted ?? 0} preemptions` })));
  $("#summary").replaceChildren(gpuCard, jobsCard, pendingCard, nodesCard);
  updateQueueFilter(s.pending.queues);
}

function updateQueueFilter(queues) {
  const select = $("#queue-filter");
  const names = queues.map((q) => q.queue);
  if (ui.queue && !names.includes(ui.queue)) names.push(ui.queue);
  const current = Array.from(select.options).slice(1).map((o) => o.value);
  if (current.join("\n") !== names.join("\n")) {
    select.replaceChildren(el("option", { value: "", text: "all queues" }), ...names.map((q) => el("option", { value: q, text: q })));
  }
  select.value = ui.queue;
  const chips = queues.map((q) => el("button", {
    class: `chip${ui.queue === q.queue ? " active" : ""}`, "data-testid": "queue-chip", "data-queue": q.queue,
    onclick: () => setQueue(ui.queue === q.queue ? "" : q.queue),
  }, `${q.queue} `, el("b", { text: String(q.pending) }), q.yours !== q.pending ? el("span", { class: "muted", text: ` (yours ${q.yours})` }) : null));
  $("#queue-chips").replaceChildren(...chips);
}

function setQueue(q) {
  ui.queue = q;
  ui.offsets.pending = 0;
  refresh();
}

// ---- pager ---------------------------------------------------------------------------------
function renderPager(name, page) {
  const box = document.querySelector(`[data-pager="${name}"]`);
  if (page.total <= page.limit && page.offset === 0) {
    box.replaceChildren();
    return;
  }
  const first = page.total ? page.offset + 1 : 0;
  const last = Math.min(page.offset + page.items.length, page.total);
  const go = (offset) => { ui.offsets[name] = Math.max(0, offset); refresh(); };
  box.replaceChildren(
    el("span", { text: `${first}-${last} of ${page.total}` }),
    el("button", { "data-testid": `${name}-prev`, disabled: page.offset === 0, onclick: () => go(page.offset - page.limit) }, "Previous"),
    el("button", { "data-testid": `${name}-next`, disabled: last >= page.total, onclick: () => go(page.offset + page.limit) }, "Next"));
}

function fillTable(table, rows, emptyTestId) {
  $(`#${table} tbody`).replaceChildren(...rows);
  document.querySelector(`[data-testid="${emptyTestId}"]`).hidden = rows.length > 0;
}

// ---- queues --------------------------------------------------------------------------------
async function loadPending() {
  const page = await api(`/v1/dashboard/pending${qs({ queue: ui.queue, offset: ui.offsets.pending, limit: PAGE })}`);
  const now = nowS();
  const rows = page.items.map((j) => {
    const reasons = j.reasons.length
      ? el("ul", { class: "reasons" }, j.reasons.map((r) => el("li", {}, el("span", { class: "plugin", text: r.plugin }), readable(r.reason))))
      : el("span", { class: "muted", text: j.verdict ? j.verdict : "not yet considered by the scheduler" });
    let estimate;
    if (j.estimated_start === null) estimate = el("span", { class: "estimate unknown", text: "unknown" });
    else if (j.estimated_start <= now + 1) estimate = el("span", { class: "estimate", text: "now" });
    else estimate = el("span", { class: "estimate", title: new Date(j.estimated_start * 1000).toLocaleString() },
      `in ${fmtDuration(j.estimated_start - now)}`);
    return el("tr", { "data-testid": "pending-row", "data-job-id": j.id },
      el("td", { class: "num" }, el("div", { class: "pos", "data-testid": "pending-position", text: String(j.position) }),
        el("div", { class: "pos-sub", text: `${j.queue_position} of ${j.queue_pending} in queue` })),
      el("td", {}, el("div", { class: "job-name", text: j.name }), el("div", { class: "job-id", text: j.id }),
        j.attempt > 0 ? el("span", { class: "badge warn", title: j.reason || "", text: `requeued after ${j.attempt} run(s)` }) : null,
        j.priority !== "batch" ? el("span", { class: "badge info", text: j.priority }) : null),
      el("td", { class: "nowrap" }, el("span", { class: "dot", style: `background:${teamColor(j.team)}` }), j.team,
        j.user ? el("div", { class: "muted small", text: j.user }) : null),
      el("td", { text: j.queue }),
      el("td", { class: "num", text: j.replicas > 1 ? `${j.gpus_per_replica} x ${j.replicas}` : String(j.gpus) },
        j.gpu_type ? el("div", { class: "muted small", text: j.gpu_type }) : null),
      el("td", { class: "nowrap", text: fmtDuration(j.waiting_s) }),
      el("td", { "data-testid": "pending-estimate" }, estimate, el("div", { class: "basis", text: j.estimate_basis })),
      el("td", { "data-testid": "pending-reasons" }, reasons,
        j.reason && j.attempt > 0 ? el("div", { class: "muted small", text: j.reason }) : null));
  });
  fillTable("pending-table", rows, "pending-empty");
  const note = $("#pending-note");
  note.hidden = !page.hidden;
  note.textContent = page.hidden ? `${page.hidden} job(s) of other teams also wait${ui.queue ? ` in ${ui.queue}` : ""}; positions count them.` : "";
  renderPager("pending", page);
}

// ---- running -------------------------------------------------------------------------------
function gpuMeter(g) {
  const u = g.utilization_percent;
  const mem = g.memory_total_mb ? `${fmtMb(g.memory_used_mb)} / ${fmtMb(g.memory_total_mb)}` : g.memory_used_mb !== null ? fmtMb(g.memory_used_mb) : "";
  return el("div", { class: "gpu", "data-testid": "gpu-meter", title: `GPU ${g.index}: ${u === null ? "no telemetry" : u + " %"} ${mem}` },
    el("div", {}, el("b", { text: `GPU ${g.index}` }), ` ${u === null ? "-" : Math.round(u) + " %"}`),
    el("div", { class: "meter" }, el("span", { style: `width:${u === null ? 0 : Math.min(100, u)}%` })),
    el("div", { class: "muted", text: mem || "no telemetry" }));
}

async function loadRunning() {
  const page = await api(`/v1/dashboard/running${qs({ offset: ui.offsets.running, limit: PAGE })}`);
  const rows = page.items.map((j) => {
    const phase = j.phase === "running" ? "ok" : j.phase === "preempted" ? "warn" : "info";
    return el("tr", { "data-testid": "running-row", "data-job-id": j.id },
      el("td", {}, el("div", { class: "job-name", text: j.name }), el("div", { class: "job-id", text: j.id }),
        j.priority !== "batch" ? el("span", { class: "badge info", text: j.priority }) : null),
      el("td", { class: "nowrap" }, el("span", { class: "dot", style: `background:${teamColor(j.team)}` }), j.team,
        el("div", { class: "muted small", text: j.queue })),
      el("td", {}, el("span", { class: `badge ${phase}`, text: j.phase }),
        j.phase !== "running" && j.reason ? el("div", { class: "muted small", text: j.reason }) : null),
      el("td", { class: "nowrap" }, fmtDuration(j.runtime_s),
        j.expected_end ? el("div", { class: "muted small", text: `expected end ${fmtTime(j.expected_end, j.expected_end - nowS() > 86400)}` }) : null),
      el("td", {}, j.placements.map((p) => el("div", { class: "placement" },
        el("div", { class: "node", text: `rank ${p.rank} on ${p.node}` }),
        el("div", { class: "gpus" }, p.gpus.map(gpuMeter))))));
  });
  fillTable("running-table", rows, "running-empty");
  renderPager("running", page);
}

// ---- nodes ---------------------------------------------------------------------------------
function stateBadges(n) {
  const out = [el("span", { class: `badge ${n.state === "ready" ? "ok" : n.state === "down" ? "" : "warn"}`, text: n.state })];
  if (n.cordoned) out.push(el("span", { class: "badge warn", text: "cordoned" }));
  if (n.condition) out.push(el("span", { class: "badge bad", title: n.condition, text: "unhealthy" }));
  if (n.condition) out.push(el("div", { class: "muted small", text: n.condition }));
  return out;
}

async function loadNodes() {
  const page = await api(`/v1/dashboard/nodes${qs({ q: ui.nodeQuery, offset: ui.offsets.nodes, limit: PAGE })}`);
  const now = nowS();
  const rows = page.items.map((n) => {
    const t = n.telemetry;
    const bars = t && t.gpu_utilization.length
      ? el("div", { class: "mini-bars", title: t.gpu_utilization.map((u, i) => `GPU ${i}: ${Math.round(u)} %`).join("\n") },
        t.gpu_utilization.map((u) => el("span", { class: u > 0 ? "" : "zero", style: `height:${Math.max(8, Math.min(100, u))}%` })))
      : el("span", { class: "muted small", text: n.gpus_logical ? "logical GPUs: no telemetry" : "no telemetry" });
    return el("tr", {
      class: `clickable${ui.node === n.id ? " selected" : ""}`, "data-testid": "node-row", "data-node-id": n.id,
      onclick: () => openNode(n.id), title: "show this node's GPU telemetry",
    },
      el("td", {}, el("div", { class: "job-name", text: n.id }), n.hostname && n.hostname !== n.id ? el("div", { class: "job-id", text: n.hostname }) : null),
      el("td", {}, stateBadges(n)),
      el("td", { text: n.gpu_type || "-" }),
      el("td", {}, `${n.gpus_free} / ${n.gpus}`,
        el("div", { class: "free-bar" }, el("span", { style: `width:${n.gpus ? (100 * n.gpus_free) / n.gpus : 0}%` }))),
      el("td", {}, bars, t && t.gpu_utilization_percent !== null ? el("div", { class: "muted small", text: `mean ${t.gpu_utilization_percent} %` }) : null),
      el("td", { class: "num", text: t && t.max_temperature_c !== null ? `${Math.round(t.max_temperature_c)} °C` : "-" }),
      el("td", { class: "num", text: t && t.power_w ? `${fmtNum(t.power_w, 0)} W` : "-" }),
      el("td", { class: "num", text: t ? `${Math.round(t.cpu_percent)} %` : "-" }),
      el("td", { class: "muted", text: n.last_seen ? `${fmtDuration(now - n.last_seen)} ago` : "-" }));
  });
  fillTable("nodes-table", rows, "nodes-empty");
  renderPager("nodes", page);
}

function openNode(id) {
  ui.node = id;
  $("#node-detail").hidden = false;
  $("#node-detail-title").textContent = id;
  $("#node-charts").replaceChildren(el("p", { class: "muted", text: "loading telemetry..." }));
  for (const tr of document.querySelectorAll('[data-testid="node-row"]')) tr.classList.toggle("selected", tr.dataset.nodeId === id);
  loadNodeDetail(id).catch((e) => { $("#node-charts").replaceChildren(el("p", { class: "login-error", text: e.message })); });
}

async function loadNodeDetail(id) {
  const m = await api(`/v1/dashboard/nodes/${encodeURIComponent(id)}/metrics?points=120`);
  if (ui.node !== id) return;
  $("#node-detail-sub").textContent = m.samples
    ? `${m.samples} samples from ${fmtTime(m.from)} to ${fmtTime(m.to)}, ${m.points} points; ${m.gpus.length} GPU(s)`
    : "no telemetry received from this node yet";
  const series = (field) => m.gpus.map((g, i) => ({ name: `GPU ${g.index}`, color: PALETTE[i % PALETTE.length], values: g[field] }));
  const memMax = Math.max(0, ...m.gpus.map((g) => g.memory_total_mb || 0));
  $("#node-charts").replaceChildren(
    lineChart({ title: "GPU utilisation", unit: "%", t: m.t, series: series("utilization_percent"), yMax: 100, testid: "chart-utilization" }),
    lineChart({ title: "GPU temperature", unit: "°C", t: m.t, series: series("temperature_c"), testid: "chart-temperature" }),
    lineChart({ title: "GPU power", unit: "W", t: m.t, series: series("power_w"), testid: "chart-power" }),
    lineChart({ title: "GPU memory used", unit: "MiB", t: m.t, series: series("memory_used_mb"), yMax: memMax || null, testid: "chart-memory" }));
}

// ---- cost ----------------------------------------------------------------------------------
async function loadCost() {
  for (const b of document.querySelectorAll("#cost-range button")) b.classList.toggle("primary", b.dataset.range === ui.costRange);
  const c = await api(`/v1/dashboard/cost${qs({ from: ui.costRange })}`);
  const tot = c.total;
  const tile = (label, value, testid) => el("div", { class: "card stat", "data-testid": testid },
    el("div", { class: "label", text: label }), el("div", { class: "value", text: value }));
  $("#cost-totals").replaceChildren(
    tile("Cost", fmtUsd(tot.cost_usd), "cost-total-usd"),
    tile("GPU-hours", fmtNum(tot.gpu_hours, 1), "cost-total-gpu-hours"),
    tile("Energy", `${fmtNum(tot.energy_kwh, 1)} kWh`, "cost-total-energy"),
    tile("Carbon", `${fmtNum(tot.carbon_kg, 1)} kg CO2e`, "cost-total-carbon"));
  const series = (field) => c.teams.map((t) => ({ name: t.team, color: teamColor(t.team), values: t[field] }));
  const step = `per ${fmtDuration(c.step)}`;
  $("#cost-charts").replaceChildren(
    lineChart({ title: `Cost (USD ${step})`, unit: "$", t: c.t, series: series("cost_usd"), stacked: true, card: true, testid: "chart-cost" }),
    lineChart({ title: `GPU-hours (${step})`, unit: "GPU-h", t: c.t, series: series("gpu_hours"), stacked: true, card: true, testid: "chart-gpu-hours" }),
    lineChart({ title: `Carbon (kg CO2e ${step})`, unit: "kg", t: c.t, series: series("carbon_kg"), stacked: true, card: true, testid: "chart-carbon" }),
    lineChart({ title: `Energy (kWh ${step})`, unit: "kWh", t: c.t, series: series("energy_kwh"), stacked: true, card: true, testid: "chart-energy" }));
  const rows = c.totals.map((t) => el("tr", { "data-testid": "cost-row", "data-team": t.team },
    el("td", {}, el("span", { class: "dot", style: `background:${teamColor(t.team)}` }), t.team),
    el("td", { class: "num", text: fmtUsd(t.cost_usd) }), el("td", { class: "num", text: fmtNum(t.gpu_hours, 2) }),
    el("td", { class: "num", text: `${fmtNum(t.energy_kwh, 2)} kWh` }), el("td", { class: "num", text: `${fmtNum(t.carbon_kg, 2)} kg` })));
  $("#cost-table tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted", text: "nothing accrued in this window" }))]));
  const budgets = c.budgets.map((b) => {
    const ratio = b.ratio === null ? 1 : b.ratio;
    const level = ratio >= 1 ? "bad" : ratio >= 0.8 ? "warn" : "";
    const unit = b.resource === "usd" ? fmtUsd : (v) => `${fmtNum(v, 1)} GPU-h`;
    return el("div", { class: "budget", "data-testid": "budget" },
      el("div", { class: "row" }, el("span", {}, el("b", { text: b.name }), el("span", { class: "muted", text: ` team ${b.team}, per ${b.period}` })),
        el("span", { text: `${unit(b.spent)} of ${unit(b.limit)} (${Math.round(ratio * 100)} %)` })),
      el("div", { class: "meter" }, el("span", { class: level, style: `width:${Math.min(100, ratio * 100)}%` })),
      el("div", { class: "muted small", text: `then: ${b.action} new jobs` }));
  });
  $("#budgets").replaceChildren(...(budgets.length ? budgets : [el("p", { class: "muted", text: "No budget applies (kind: Budget)." })]));
}

// ---- events --------------------------------------------------------------------------------
const EVENT_STYLE = { preempted: "warn", handover: "warn", "node-lost": "bad", "node-condition": "bad", "budget-warning": "warn",
  "budget-held": "info", "budget-rejected": "bad", "idle-reclaimed": "info" };

function eventItem(e) {
  const meta = [e.team && `team ${e.team}`, e.job && `job ${e.job}`, e.node && `node ${e.node}`].filter(Boolean).join(" · ");
  return el("li", { "data-testid": "event", "data-kind": e.kind },
    el("time", { datetime: new Date(e.at * 1000).toISOString(), text: fmtTime(e.at, true) }),
    el("div", {}, el("span", { class: `badge ${EVENT_STYLE[e.kind] || ""}`, text: e.kind })),
    el("div", {}, el("div", { text: e.message }), meta ? el("div", { class: "meta", text: meta }) : null));
}

async function loadEvents() {
  const page = await api(`/v1/dashboard/events${qs({ kind: ui.eventKind, limit: ui.eventsLimit })}`);
  const select = $("#event-kind");
  if (select.options.length === 1) select.append(...page.kinds.map((k) => el("option", { value: k, text: k })));
  select.value = ui.eventKind;
  $("#events-list").replaceChildren(...page.items.map(eventItem));
  $('[data-testid="events-empty"]').hidden = page.items.length > 0;
  $("#events-more").hidden = page.next_before === null || ui.eventsLimit >= 500;
}

// ---- charts --------------------------------------------------------------------------------
/* The y axis for values up to ``v``: about five ticks at a round step (1, 2, 2.5 or 5 x 10^k). */
function niceScale(v) {
  if (!(v > 0)) return { top: 1, step: 0.25 };
  const raw = v / 5;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw);
  return { top: Math.ceil(v / step - 1e-9) * step, step };
}

/* A line chart (``stacked``: stacked areas) of ``series`` [{name, color, values}] over times ``t``
 * (epoch seconds); null values leave gaps. Returns a <div class="chart"> holding the SVG and a legend. */
function lineChart({ title, unit, t, series, yMax, stacked, card, testid }) {
  const W = 640, H = 230, L = 48, R = 12, T = 10, B = 26;
  const w = W - L - R, h = H - T - B;
  const box = el("div", { class: `chart${card ? " card" : ""}`, "data-testid": testid });
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, "data-testid": `${testid}-svg` });
  const n = t.length;
  let values = series.map((s) => s.values);
  if (stacked) {
    const acc = new Array(n).fill(0);
    values = values.map((vs) => vs.map((v, i) => (acc[i] += v || 0)));
  }
  const dataMax = Math.max(0, ...values.flat().filter((v) => v !== null && isFinite(v)));
  const { top, step } = niceScale(Math.max(yMax || 0, dataMax));
  const x = (i) => L + (n > 1 ? (i * w) / (n - 1) : w / 2);
  const y = (v) => T + h - (v / top) * h;
  const grid = svg("g", { class: "grid" }), axis = svg("g", { class: "axis" });
  for (let v = 0; v <= top + step / 2; v += step) {
    grid.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    axis.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", text: fmtTick(v, step) }));
  }
  if (n > 1) {
    const span = t[n - 1] - t[0];
    const ticks = Math.min(6, n);
    for (let k = 0; k < ticks; k++) {
      const i = Math.round((k * (n - 1)) / (ticks - 1));
      axis.append(svg("text", { x: x(i), y: H - 6, "text-anchor": k === 0 ? "start" : k === ticks - 1 ? "end" : "middle",
        text: fmtTime(t[i], span > 2 * 86400 ? true : span < 900 ? "seconds" : false) }));
    }
  }
  root.append(grid, axis);
  if (!n || !series.length || dataMax === 0 && values.flat().every((v) => v === null)) {
    root.append(svg("text", { class: "nodata", x: L + w / 2, y: T + h / 2, "text-anchor": "middle", text: "no data yet" }));
  }
  const lines = svg("g", {});
  series.forEach((s, k) => {
    const vs = values[k];
    let d = "", pen = false;
    vs.forEach((v, i) => {
      if (v === null || v === undefined || !isFinite(v)) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = true;
    });
    if (!d) return;
    if (stacked) {
      const below = k > 0 ? values[k - 1] : new Array(n).fill(0);
      let area = `M${x(0).toFixed(1)} ${y(vs[0] || 0).toFixed(1)} `;
      for (let i = 1; i < n; i++) area += `L${x(i).toFixed(1)} ${y(vs[i] || 0).toFixed(1)} `;
      for (let i = n - 1; i >= 0; i--) area += `L${x(i).toFixed(1)} ${y(below[i] || 0).toFixed(1)} `;
      lines.append(svg("path", { class: "area", d: area + "Z", fill: s.color }));
    }
    lines.append(svg("path", { class: "series", d: d.trim(), stroke: s.color, "data-series": s.name }));
  });
  root.append(lines);
  // hover: a guide line and the values at the nearest point
  const guide = svg("line", { class: "hover-line", y1: T, y2: T + h, visibility: "hidden" });
  const hit = svg("rect", { x: L, y: T, width: w, height: h, fill: "transparent" });
  root.append(guide, hit);
  const tip = $("#tooltip");
  hit.addEventListener("mousemove", (ev) => {
    if (n === 0) return;
    const rect = root.getBoundingClientRect();
    const px = ((ev.clientX - rect.left) / rect.width) * W;
    const i = Math.max(0, Math.min(n - 1, Math.round(((px - L) / w) * (n - 1))));
    guide.setAttribute("x1", x(i));
    guide.setAttribute("x2", x(i));
    guide.setAttribute("visibility", "visible");
    tip.replaceChildren(el("div", { class: "t", text: fmtTime(t[i], true) }),
      ...series.map((s) => el("div", {}, el("span", { class: "dot", style: `background:${s.color}` }),
        `${s.name}: ${s.values[i] === null || s.values[i] === undefined ? "-" : fmtNum(s.values[i], 2)} ${unit}`)));
    tip.hidden = false;
    tip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - 220)}px`;
    tip.style.top = `${ev.clientY + 14}px`;
  });
  hit.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); tip.hidden = true; });
  box.append(el("h3", {}, el("span", { text: title }), el("span", { class: "muted small", text: unit })), root,
    el("div", { class: "legend" }, series.map((s) => el("span", {}, el("span", { class: "dot", style: `background:${s.color}` }), s.name))));
  return box;
}

// ---- wiring --------------------------------------------------------------------------------
function init() {
  $("#login-form").addEventListener("submit", onLogin);
  $("#logout").addEventListener("click", () => logout(""));
  for (const v of VIEWS) $(`#tab-${v}`).addEventListener("click", () => showView(v));
  $("#queue-filter").addEventListener("change", (ev) => setQueue(ev.target.value));
  let searchTimer = null;
  $("#node-search").addEventListener("input", (ev) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { ui.nodeQuery = ev.target.value.trim(); ui.offsets.nodes = 0; refresh(); }, 250);
  });
  $("#node-detail-close").addEventListener("click", () => {
    ui.node = null;
    $("#node-detail").hidden = true;
    for (const tr of document.querySelectorAll('[data-testid="node-row"]')) tr.classList.remove("selected");
  });
  for (const b of document.querySelectorAll("#cost-range button")) {
    b.addEventListener("click", () => { ui.costRange = b.dataset.range; refresh(); });
  }
  $("#event-kind").addEventListener("change", (ev) => { ui.eventKind = ev.target.value; ui.eventsLimit = PAGE; refresh(); });
  $("#events-more").addEventListener("click", () => { ui.eventsLimit = Math.min(500, ui.eventsLimit + PAGE); refresh(); });
  window.addEventListener("hashchange", () => {
    const v = location.hash.replace("#", "");
    if (VIEWS.includes(v) && v !== ui.view && !$("#app").hidden) showView(v);
  });
  if (sessionStorage.getItem(TOKEN_KEY)) startApp();
  else showLogin("");
}

init();
