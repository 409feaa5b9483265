// The rolecall dashboard: plain JS, no build step, charts drawn as inline SVG.
// Data comes from the /api/ endpoints; an API key (when the server asks for one) is read
// from the page's #key=... fragment or typed once, and kept for this tab only.
"use strict";

const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, all: null };
const COLORS = ["#3559e0", "#e0592a", "#12805c", "#9e41c9", "#c9a100", "#0a8aa8", "#d6336c",
  "#5c6f82", "#7a5c00", "#2f9e44", "#862e9c", "#1c7ed6", "#e8590c", "#495057", "#a61e4d",
  "#087f5b"];
const state = { range: "24h", by: "provider,role", key: sessionStorage.getItem("rolecall-key") || "" };

const hashKey = new URLSearchParams(location.hash.slice(1)).get("key");
if (hashKey) {
  state.key = hashKey;
  sessionStorage.setItem("rolecall-key", hashKey);
  history.replaceState(null, "", location.pathname + location.search);
}

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function fmtMs(v) {
  if (v === null || v === undefined) return "-";
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(0) + " ms";
}
function fmtRate(v) { return v === null || v === undefined ? "-" : (v * 100).toFixed(1) + "%"; }
function fmtCost(v) { return v === null || v === undefined ? "-" : "$" + v.toFixed(6); }
function fmtTime(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "-"; }

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined) query.set(k, v);
  const url = "/api/" + path + (query.toString() ? "?" + query : "");
  for (let tries = 0; tries < 2; tries++) {
    const headers = state.key ? { Authorization: "Bearer " + state.key } : {};
    const response = await fetch(url, { headers });
    if (response.status === 401 && tries === 0) {
      const key = prompt("This gateway needs an API key (one of gateway.keys):");
      if (!key) break;
      state.key = key;
      sessionStorage.setItem("rolecall-key", key);
      continue;
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }
  throw new Error("no API key given");
}

// The window counts back from the server's now (since=86400s), not this browser's: a
// browser whose clock is off would ask for the wrong hours, or for hours not yet come.
function timeWindow() {
  const span = RANGES[state.range];
  const since = span === null ? null : span + "s";
  const bucket = span !== null && span <= 2 * 86400 ? "hour" : "day";
  return { since, bucket };
}

// ---- providers x role table ------------------------------------------------------------

function renderMatrix(rows, handovers) {
  const counts = new Map(handovers.map((h) => [h.provider + "\u0000" + h.role, h.handovers]));
  const body = document.querySelector("#matrix tbody");
  if (!rows.length) {
    body.innerHTML = '<tr><td colspan="10" class="empty">no calls in this range</td></tr>';
    return;
  }
  body.innerHTML = rows.map((r) => {
    const rate = r.success_rate;
    const tone = rate === null ? "" : rate >= 0.99 ? "good" : rate >= 0.9 ? "warn" : "bad";
    const failures = Object.entries(r.errors).map(([k, n]) => k + " " + n).join(", ");
    const ho = counts.get(r.provider + "\u0000" + r.role) || 0;
    return `<tr data-provider="${esc(r.provider)}" data-role="${esc(r.role)}">
      <td data-field="provider">${esc(r.provider)}</td><td data-field="role">${esc(r.role)}</td>
      <td class="num" data-field="requests">${r.requests}</td>
      <td class="num ${tone}" data-field="success_rate">${fmtRate(rate)}</td>
      <td class="num" data-field="failures" title="${esc(failures)}">${r.failures}</td>
      <td class="num" data-field="p50">${fmtMs(r.latency_ms.p50)}</td>
      <td class="num" data-field="p95">${fmtMs(r.latency_ms.p95)}</td>
      <td class="num" data-field="tokens">${r.tokens.input} / ${r.tokens.output}</td>
      <td class="num" data-field="cost">${fmtCost(r.cost_usd)}</td>
      <td class="num" data-field="handovers">${ho}</td></tr>`;
  }).join("");
}

// ---- charts ------------------------------------------------------------------------------

const CHARTS = [
  { title: "Latency p50", value: (m) => m.latency_ms.p50,
    fmt: (v) => (v < 10 && v > 0 ? v.toFixed(1) + " ms" : fmtMs(v)) },
  { title: "Success rate", value: (m) => m.success_rate, fmt: fmtRate, max: 1 },
  { title: "Requests", value: (m) => m.requests, fmt: (v) => String(+v.toFixed(2)) },
  { title: "Cost (USD)", value: (m) => m.cost_usd, fmt: (v) => "$" + v.toPrecision(2) },
];

function seriesName(row) {
  return state.by === "provider" ? row.provider : state.by === "role" ? row.role
    : row.provider + " / " + row.role;
}

function lineChart(chart, series, t0, t1) {
  const W = 600, H = 190, L = 66, R = 10, T = 8, B = 22;
  let top = chart.max || 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null && v > top) top = v;
  if (top <= 0) top = 1;
  const power = Math.pow(10, Math.floor(Math.log10(top)));
  const mantissa = [1, 2, 5, 10].find((m) => m * power >= top * 0.999);
  top = mantissa * power;
  const steps = mantissa === 5 ? 5 : 4;
  const x = (t) => L + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - L - R) : (W - L - R) / 2);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const parts = [];
  for (let i = 0; i <= steps; i++) {
    const v = (top * i) / steps, yy = y(v).toFixed(1);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}" stroke="#e4e7ec"/>`);
    parts.push(`<text x="${L - 4}" y="${yy}" text-anchor="end" dy="3">${esc(chart.fmt(v))}</text>`);
  }
  const ticks = t1 > t0 ? 4 : 0;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / (ticks || 1);
    const label = new Date(t * 1000).toISOString().slice(5, state.range === "1h" || state.range === "24h" ? 16 : 10).replace("T", " ");
    parts.push(`<text x="${x(t).toFixed(1)}" y="${H - 6}" text-anchor="middle">${esc(label)}</text>`);
  }
  for (const s of series) {
    const pts = s.points.filter(([, v]) => v !== null && v !== undefined);
    const coords = pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    if (coords.length > 1) {
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${coords.join(" ")}"><title>${esc(s.name)}</title></polyline>`);
    }
    for (const [t, v] of pts.length <= 48 ? pts : []) {
      parts.push(`<circle cx="${x(t).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${s.color}"><title>${esc(s.name)}: ${esc(chart.fmt(v))}</title></circle>`);
    }
  }
  return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(chart.title)}">${parts.join("")}</svg>`;
}

function renderCharts(trend) {
  const byName = new Map();
  let t0 = Infinity, t1 = -Infinity;
  for (const row of trend) {
    const t = Date.parse(row.bucket) / 1000;
    t0 = Math.min(t0, t); t1 = Math.max(t1, t);
    const name = seriesName(row);
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name).push([t, row]);
  }
  const names = [...byName.keys()].sort();
  const color = (i) => COLORS[i % COLORS.length];
  const box = document.getElementById("charts");
  if (!names.length) {
    box.innerHTML = '<p class="empty">no calls in this range</p>';
    document.getElementById("legend").innerHTML = "";
    return;
  }
  box.innerHTML = CHARTS.map((chart) => {
    const series = names.map((name, i) => ({
      name, color: color(i),
      points: byName.get(name).map(([t, row]) => [t, chart.value(row)]),
    }));
    return `<div class="chart"><h3>${esc(chart.title)}</h3>${lineChart(chart, series, t0, t1)}</div>`;
  }).join("");
  document.getElementById("legend").innerHTML = names
    .map((name, i) => `<span style="--c:${color(i)}">${esc(name)}</span>`).join("");
}

// ---- health, advice, runs ----------------------------------------------------------------

function renderHealth(health) {
  const section = document.getElementById("health-section");
  section.hidden = !health.live;
  if (!health.live) return;
  const rows = Object.entries(health.providers).sort();
  document.querySelector("#health tbody").innerHTML = rows.map(([id, h]) => {
    const tone = h.state === "ok" ? "good" : h.state === "half_open" ? "warn" : "bad";
    return `<tr><td>${esc(id)}</td><td class="${tone}">${esc(h.state)}</td>
      <td class="num">${h.consecutive_failures}</td>
      <td class="num">${h.cooldown_remaining_s ? h.cooldown_remaining_s.toFixed(1) + " s" : "-"}</td>
      <td class="num">${fmtMs(h.latency_ms)}</td><td>${esc(h.reason || "")}</td></tr>`;
  }).join("") || '<tr><td colspan="6" class="empty">no provider called yet</td></tr>';
}

function renderAdvice(findings) {
  const list = document.getElementById("advice");
  if (!findings.length) {
    list.innerHTML = '<li class="empty">no provider does clearly worse than another in the same role</li>';
    return;
  }
  list.innerHTML = findings.map((f) => {
    const evidence = f.metric && f.better
      ? `${esc(f.metric)}: ${esc(f.provider)} ${esc(f.value)} over ${f.requests} calls vs ${esc(f.better)} ${esc(f.better_value)} over ${f.better_requests} calls`
      : "";
    return `<li data-kind="${esc(f.kind)}">${esc(f.message)}
      ${evidence ? `<span class="evidence">${evidence}</span>` : ""}
      ${f.suggestion ? `<span class="suggest">suggest: ${esc(f.suggestion)}</span>` : ""}</li>`;
  }).join("");
}

function renderRuns(runs) {
  const body = document.querySelector("#runs tbody");
  if (!runs.length) {
    body.innerHTML = '<tr><td colspan="9" class="empty">no runs recorded yet</td></tr>';
    return;
  }
  body.innerHTML = runs.map((r) => `<tr data-run="${esc(r.run_id)}">
    <td>${esc(r.run_id)}</td><td>${esc(r.kind)}</td><td>${esc(r.status)}</td>
    <td>${esc(fmtTime(r.started_at))}</td><td class="num">${r.tasks}</td>
    <td class="num">${r.tasks_failed}</td><td class="num">${r.attempts}</td>
    <td class="num">${r.handovers}</td><td class="num">${fmtCost(r.cost_usd)}</td></tr>`).join("");
  for (const row of body.querySelectorAll("tr[data-run]")) {
    row.addEventListener("click", () => showRun(row.dataset.run));
  }
}

async function showRun(runId) {
  for (const row of document.querySelectorAll("#runs tr[data-run]")) {
    row.classList.toggle("on", row.dataset.run === runId);
  }
  const box = document.getElementById("run-detail");
  try {
    const run = await api("runs/" + encodeURIComponent(runId));
    const rows = run.tasks.map((t) => `<tr data-task="${esc(t.task_id)}">
      <td>${esc(t.task_id)}</td><td>${esc(t.stage || "-")}</td><td>${esc(t.role || "-")}</td>
      <td>${esc(t.status)}</td><td>${esc(t.provider || "-")}</td>
      <td>${t.attempts.map((a) => `<span class="attempt ${esc(a.outcome)}" title="${esc(fmtMs(a.latency_ms))}">${esc(a.provider)} ${a.error_kind ? esc(a.error_kind) : esc(a.outcome)}</span>`).join("")}</td>
      <td class="num">${fmtMs(t.latency_ms)}</td>
      <td class="num">${t.input_tokens} / ${t.output_tokens}</td></tr>`).join("");
    const shown = run.tasks_total === undefined ? ""
      : `<p class="empty">the newest ${run.tasks.length} of its ${run.tasks_total} tasks</p>`;
    box.innerHTML = `<h3>${esc(run.run_id)}: ${esc(run.status)}</h3>${shown}<table><thead><tr>
      <th>task</th><th>stage</th><th>role</th><th>status</th><th>provider</th><th>attempts</th>
      <th class="num">latency</th><th class="num">tokens in / out</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="8" class="empty">no tasks recorded</td></tr>'}</tbody></table>`;
  } catch (err) {
    box.innerHTML = `<p class="empty">${esc(err.message)}</p>`;
  }
}

// ---- loading -----------------------------------------------------------------------------

async function load() {
  const status = document.getElementById("status");
  status.textContent = "loading…";
  for (const b of document.querySelectorAll("#ranges button")) {
    b.classList.toggle("on", b.dataset.range === state.range);
  }
  const { since, bucket } = timeWindow();
  try {
    const [metrics, handovers, trend, advice, runs, health] = await Promise.all([
      api("metrics", { since }), api("handovers", { since }),
      api("trend", { since, bucket, by: state.by }), api("advise", { since }),
      api("runs", { limit: 20 }), api("health"),
    ]);
    renderMatrix(metrics, handovers);
    renderCharts(trend);
    renderAdvice(advice);
    renderRuns(runs);
    renderHealth(health);
    const shown = runs.find((r) => r.tasks > 0) || runs[0];
    if (shown) await showRun(shown.run_id);
    status.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.loaded = "true";
  } catch (err) {
    status.textContent = "error: " + err.message;
  }
}

for (const b of document.querySelectorAll("#ranges button")) {
  b.addEventListener("click", () => { state.range = b.dataset.range; load(); });
}
document.getElementById("by").addEventListener("change", (e) => { state.by = e.target.value; load(); });
document.getElementById("refresh").addEventListener("click", load);
setInterval(async () => {
  try { renderHealth(await api("health")); } catch (err) { /* shown on the next load */ }
}, 5000);
load();
