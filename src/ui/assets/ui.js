// gridflow web UI: polls the JSON API once a second and draws the job page and the control
// room. Charts are plain SVG drawn here; nothing is loaded from anywhere but this server.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#8a8f98", "#3fb6ff", "#4cd08a", "#ffb648", "#ff5d6c", "#b48cff",
  "#2ed3c6", "#ff8fc7", "#c8d64a", "#ff8a3d", "#6c8cff", "#9be07b", "#e0a3ff"];

function el(name, attrs, parent, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function int(n) {
  return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
}

function fixed(n, digits) {
  return n === null || n === undefined ? "–" : Number(n).toFixed(digits);
}

function bytes(n) {
  if (!n) return "–";
  return (n / 1048576).toFixed(0) + " MiB";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
}

function isoTime(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function colorOf(region) {
  return COLORS[((region % COLORS.length) + COLORS.length) % COLORS.length];
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

// A line chart of series [{name, color, points: [[x, y]...]}] into container.
function lineChart(container, series, opts) {
  const width = opts.width || 560, height = opts.height || 180, pad = 36;
  container.textContent = "";
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}` }, container);
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    el("text", { x: width / 2 - 30, y: height / 2 }, svg, "no data yet");
    return svg;
  }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const y1 = Math.max(opts.yMax || 0, ...ys) || 1;
  const sx = (x) => pad + ((x - x0) / (x1 - x0)) * (width - pad - 8);
  const sy = (y) => height - 18 - (y / y1) * (height - 30);
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    el("line", { x1: pad, x2: width - 8, y1: sy(y), y2: sy(y), class: "grid" }, svg);
    el("text", { x: 2, y: sy(y) + 4 }, svg, opts.format ? opts.format(y) : fixed(y, 0));
  }
  el("text", { x: pad, y: height - 4 }, svg, opts.xLabel ? opts.xLabel(x0) : "");
  el("text", { x: width - 60, y: height - 4 }, svg, opts.xLabel ? opts.xLabel(x1) : "");
  for (const s of series) {
    if (s.points.length === 0) continue;
    const d = s.points.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
    el("path", { d, fill: "none", stroke: s.color, "stroke-width": 2 }, svg);
  }
  if (series.length > 1) {
    series.forEach((s, i) => {
      el("rect", { x: pad + 8 + i * 70, y: 4, width: 10, height: 10, fill: s.color }, svg);
      el("text", { x: pad + 22 + i * 70, y: 13 }, svg, s.name);
    });
  }
  return svg;
}

// ---- the job page ----

function metricValue(metrics, key) {
  if (key === "lag") return metrics.caught_up_lag_ms === null ? null : metrics.caught_up_lag_ms;
  if (key === "sink_busy_seconds") return metrics.sink_busy_micros / 1e6;
  return key.split(".").reduce((value, part) => (value === null || value === undefined ? value : value[part]), metrics);
}

function renderMetric(node, key, value) {
  if (key === "peak_memory_bytes") node.textContent = bytes(value);
  else if (key === "caught_up_time") node.textContent = value ? isoTime(value) : "–";
  else if (key === "lag") node.textContent = value === null ? "–" : duration(value / 1000);
  else if (key.startsWith("latency.") || key === "sink_busy_seconds") node.textContent = fixed(value, key === "sink_busy_seconds" ? 3 : 1);
  else node.textContent = int(value);
  node.dataset.value = value === null || value === undefined ? "" : String(value);
}

function layers(operators, edges) {
  const index = new Map(operators.map((op, i) => [op.addr.join("."), i]));
  const incoming = operators.map(() => 0);
  const out = operators.map(() => []);
  for (const e of edges) {
    const a = index.get(e.from.join(".")), b = index.get(e.to.join("."));
    if (a === undefined || b === undefined || a === b) continue;
    out[a].push(b);
    incoming[b] += 1;
  }
  const layer = operators.map(() => 0);
  const queue = [];
  incoming.forEach((n, i) => { if (n === 0) queue.push(i); });
  const seen = new Set();
  while (queue.length) {
    const i = queue.shift();
    seen.add(i);
    for (const j of out[i]) {
      layer[j] = Math.max(layer[j], layer[i] + 1);
      incoming[j] -= 1;
      if (incoming[j] === 0) queue.push(j);
    }
  }
  const deepest = Math.max(0, ...layer);
  operators.forEach((_, i) => { if (!seen.has(i)) layer[i] = deepest + 1; });
  return { index, layer };
}

function drawGraph(container, dataflow) {
  container.textContent = "";
  const ops = dataflow.operators;
  if (!ops.length) { container.textContent = "no operators logged yet"; return; }
  const { index, layer } = layers(ops, dataflow.edges);
  const rows = [];
  ops.forEach((op, i) => { (rows[layer[i]] = rows[layer[i]] || []).push(i); });
  const boxW = 168, boxH = 44, gapX = 12, gapY = 26;
  const perRow = Math.max(...rows.map((r) => (r ? r.length : 0)));
  const width = Math.max(900, perRow * (boxW + gapX) + 20);
  const height = rows.length * (boxH + gapY) + 20;
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}` }, container);
  const pos = new Map();
  rows.forEach((row, r) => {
    if (!row) return;
    const offset = (width - row.length * (boxW + gapX)) / 2;
    row.forEach((i, k) => pos.set(i, [offset + k * (boxW + gapX), 10 + r * (boxH + gapY)]));
  });
  const busiest = Math.max(1e-9, ...ops.map((op) => op.scheduled_ms));
  for (const e of dataflow.edges) {
    const a = index.get(e.from.join(".")), b = index.get(e.to.join("."));
    if (a === undefined || b === undefined) continue;
    const [ax, ay] = pos.get(a), [bx, by] = pos.get(b);
    const x1 = ax + boxW / 2, y1 = ay + boxH, x2 = bx + boxW / 2, y2 = by;
    el("path", { d: `M${x1} ${y1} C${x1} ${y1 + 16} ${x2} ${y2 - 16} ${x2} ${y2}`, fill: "none", stroke: "#3a5068", "stroke-width": 1.2 }, svg);
  }
  ops.forEach((op, i) => {
    const [x, y] = pos.get(i);
    const heat = op.scheduled_ms / busiest;
    const g = el("g", { "data-operator": op.name }, svg);
    if (op.arrangements && op.arrangements.length) el("title", {}, g, `arrangements: ${op.arrangements.join(", ")}`);
    el("rect", { x, y, width: boxW, height: boxH, rx: 4, fill: `rgba(63,182,255,${0.08 + 0.5 * heat})`, stroke: op.arrangement ? "#ffb648" : "#3a5068" }, g);
    el("text", { x: x + 6, y: y + 14 }, g, op.name.length > 26 ? op.name.slice(0, 25) + "…" : op.name);
    el("text", { x: x + 6, y: y + 27, class: "muted" }, g, `${fixed(op.scheduled_ms, 1)} ms · in ${int(op.records_in)}`);
    if (op.arrangement) el("text", { x: x + 6, y: y + 39 }, g, `arranged ${int(op.arrangement.records)} (peak ${int(op.arrangement.peak_records)})`);
    else el("text", { x: x + 6, y: y + 39 }, g, `out ${int(op.records_out)}`);
  });
}

function operatorsTable(table, dataflow) {
  table.textContent = "";
  const head = html("tr");
  ["operator 算子", "scheduled ms", "activations", "records in", "records out", "arranged records", "batches", "peak arranged", "arrangements"].forEach((h, i) =>
    head.appendChild(html("th", h, i && i < 8 ? { class: "num" } : {})));
  table.appendChild(head);
  const ops = [...dataflow.operators].sort((a, b) => b.scheduled_ms - a.scheduled_ms);
  for (const op of ops) {
    const tr = html("tr");
    tr.appendChild(html("td", op.name));
    [fixed(op.scheduled_ms, 1), int(op.activations), int(op.records_in), int(op.records_out),
      op.arrangement ? int(op.arrangement.records) : "", op.arrangement ? int(op.arrangement.batches) : "",
      op.arrangement ? int(op.arrangement.peak_records) : ""]
      .forEach((v) => tr.appendChild(html("td", v, { class: "num" })));
    tr.appendChild(html("td", (op.arrangements || []).join(", "), { class: "muted" }));
    table.appendChild(tr);
  }
}

async function refreshJob() {
  const [job, metrics, dataflow] = await Promise.all([
    getJson("/api/job"), getJson("/api/metrics"), getJson("/api/dataflow")]);
  const status = document.getElementById("status");
  status.textContent = job.status;
  status.className = "badge " + job.status;
  document.getElementById("failure").textContent = job.error ? "error: " + job.error : "";
  document.getElementById("uptime").textContent = duration(job.uptime_seconds);
  document.getElementById("sink").textContent = job.sink;
  document.getElementById("state-dir").textContent = job.state_dir || "ephemeral";
  document.getElementById("checkpoint-interval").textContent = (job.checkpoint_interval_ms / 1000) + " s";
  const jobTable = document.getElementById("job");
  jobTable.textContent = "";
  const facts = [["id", job.id], ["created", job.created], ["workers 线程", job.workers], ["processes 进程", job.processes]]
    .concat(Object.entries(job.options));
  for (const [k, v] of facts) {
    const tr = html("tr");
    tr.appendChild(html("th", k));
    tr.appendChild(html("td", String(v)));
    jobTable.appendChild(tr);
  }
  const simulated = job.options["--clock"] === "simulated";
  document.querySelectorAll("[data-metric]").forEach((node) => {
    const key = node.dataset.metric;
    if (key === "lag" && simulated) node.textContent = "simulated clock";
    else renderMetric(node, key, metricValue(metrics, key));
  });
  const history = metrics.history || [];
  lineChart(document.getElementById("throughput-chart"),
    [{ name: "rows/s", color: "#3fb6ff", points: history.map((h) => [h.uptime_seconds, h.rows_per_second]) }],
    { xLabel: (x) => duration(x), format: (y) => int(y) });
  lineChart(document.getElementById("latency-chart"), [
    { name: "p50", color: "#4cd08a", points: history.map((h) => [h.uptime_seconds, h.p50_ms]) },
    { name: "p99", color: "#ffb648", points: history.map((h) => [h.uptime_seconds, h.p99_ms]) },
  ], { xLabel: (x) => duration(x), format: (y) => fixed(y, 1) });
  const main = [...dataflow.dataflows].sort((a, b) => b.operators.length - a.operators.length)[0];
  if (main) {
    drawGraph(document.getElementById("graph"), main);
    operatorsTable(document.getElementById("operators"), main);
  }
}

// ---- the control room ----

function regionChart(container, legend, view) {
  const windows = [...view.windows].reverse(); // oldest first
  const regions = [...new Set(view.rows.map((r) => r.region_id))].sort((a, b) => a - b);
  const width = 760, height = 240, pad = 50;
  container.textContent = "";
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}` }, container);
  const value = new Map(view.rows.map((r) => [r.stat_date + "|" + r.region_id, Number(r.total_consumption)]));
  const max = Math.max(1, ...value.values());
  const groupW = (width - pad - 10) / Math.max(1, windows.length);
  const barW = Math.max(2, (groupW - 6) / Math.max(1, regions.length));
  for (let i = 0; i <= 4; i++) {
    const y = height - 24 - (i / 4) * (height - 40);
    el("line", { x1: pad, x2: width - 10, y1: y, y2: y, class: "grid" }, svg);
    el("text", { x: 2, y: y + 4 }, svg, fixed((max * i) / 4, 0));
  }
  windows.forEach((w, wi) => {
    regions.forEach((region, ri) => {
      const v = value.get(w + "|" + region) || 0;
      const h = (v / max) * (height - 40);
      el("rect", { x: pad + wi * groupW + ri * barW, y: height - 24 - h, width: barW - 1, height: h, fill: colorOf(region) }, svg)
        .appendChild(el("title", {}, null, `region ${region} ${w}: ${v} kWh`));
    });
    el("text", { x: pad + wi * groupW, y: height - 8 }, svg, w.slice(11, 19));
  });
  legend.textContent = "";
  const names = new Map(view.rows.map((r) => [r.region_id, r.region_name]));
  for (const region of regions) {
    const span = html("span");
    const swatch = html("i");
    swatch.style.background = colorOf(region);
    span.appendChild(swatch);
    span.appendChild(document.createTextNode(`${region} ${names.get(region)}`));
    legend.appendChild(span);
  }
}

function latestRows(table, label, view) {
  table.textContent = "";
  label.textContent = view.windows.length ? `${view.windows[view.windows.length - 1]} … ${view.windows[0]}` : "";
  const head = html("tr");
  const columns = [["stat_date", "窗口 window"], ["region_id", "区域 region"], ["region_name", "名称 name"], ["total_consumption", "用电量 kWh"],
    ["total_cost", "电费 cost"], ["user_count", "用户数 users"], ["avg_consumption", "平均 avg"],
    ["peak_hour", "高峰 peak hour"], ["peak_consumption", "峰值 peak"], ["top_user_id", "第一 top user"],
    ["top_user_name", "姓名 name"], ["top_user_consumption", "用电 kWh"]];
  columns.forEach(([, h]) => head.appendChild(html("th", h)));
  table.appendChild(head);
  for (const row of view.rows) {
    const tr = html("tr", null, { "data-row": row.dashboard_id });
    for (const [key] of columns) tr.appendChild(html("td", key === "stat_date" ? row[key].slice(11, 19) : String(row[key]), { "data-field": key }));
    table.appendChild(tr);
  }
}

function topUsers(container, view) {
  container.textContent = "";
  const table = html("table");
  const head = html("tr");
  ["区域 region", "窗口 window", "#", "用户 user", "姓名 name", "用电 kWh"].forEach((h) => head.appendChild(html("th", h)));
  table.appendChild(head);
  for (const region of view.top_users) {
    region.users.forEach((user, i) => {
      const tr = html("tr", null, { "data-top-region": region.region_id, "data-rank": user.ranking });
      tr.appendChild(html("td", i ? "" : `${region.region_id} ${region.region_name}`));
      tr.appendChild(html("td", i ? "" : region.stat_date.slice(11, 19)));
      tr.appendChild(html("td", String(user.ranking)));
      tr.appendChild(html("td", String(user.user_id), { "data-field": "user_id" }));
      tr.appendChild(html("td", user.user_name));
      tr.appendChild(html("td", user.total_consumption, { "data-field": "total_consumption" }));
      table.appendChild(tr);
    });
  }
  container.appendChild(table);
}

function heatMap(container, view) {
  container.textContent = "";
  const regions = view.regions;
  const cell = 22, left = 90, top = 18;
  const width = left + 24 * cell + 10, height = top + regions.length * cell + 26;
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}` }, container);
  const max = Math.max(1, ...regions.flatMap((r) => r.peak_hours));
  for (let h = 0; h < 24; h++) el("text", { x: left + h * cell + 4, y: 12 }, svg, String(h));
  regions.forEach((region, r) => {
    el("text", { x: 2, y: top + r * cell + 15 }, svg, `${region.region_id} ${region.region_name}`.slice(0, 12));
    region.peak_hours.forEach((windows, h) => {
      const alpha = windows ? 0.15 + 0.85 * (windows / max) : 0.03;
      el("rect", { x: left + h * cell, y: top + r * cell, width: cell - 2, height: cell - 2, fill: `rgba(255,182,72,${alpha})`,
        "data-heat": `${region.region_id}:${h}`, "data-windows": windows }, svg)
        .appendChild(el("title", {}, null, `region ${region.region_id}, ${h}:00 — ${windows} windows`));
    });
  });
  const totals = view.peak_hours.map((p) => p.windows);
  el("text", { x: 2, y: height - 8 }, svg, "all 合计");
  const tmax = Math.max(1, ...totals);
  totals.forEach((windows, h) => {
    el("rect", { x: left + h * cell, y: height - 20, width: cell - 2, height: 14 * (windows / tmax) + 1, fill: "#3fb6ff" }, svg);
  });
}

function correctionsTable(table, feed) {
  document.getElementById("corrections-total").textContent = int(feed.total);
  table.textContent = "";
  const head = html("tr");
  ["逻辑时间 time", "用户 user", "类型 kind", "区域 region", "DWD 行 rows", "窗口 windows", "排名行 ranking rows",
    "大屏行 dashboard rows", "一致耗时 consistent after (ms)"].forEach((h) => head.appendChild(html("th", h)));
  table.appendChild(head);
  for (const c of feed.corrections) {
    const tr = html("tr", null, { "data-correction": c.user_id });
    tr.appendChild(html("td", c.time_text));
    tr.appendChild(html("td", `${c.user_id} ${c.user_name || ""}`));
    tr.appendChild(html("td", c.kind, { class: "kind-" + c.kind }));
    tr.appendChild(html("td", `${c.region_before} → ${c.region_after}`));
    for (const key of ["dwd_rows", "windows", "ranking_rows", "dashboard_rows"]) tr.appendChild(html("td", String(c[key]), { class: "num", "data-field": key }));
    tr.appendChild(html("td", fixed(c.consistent_after_ms, 1), { class: "num" }));
    table.appendChild(tr);
  }
}

async function refreshDashboard() {
  const [view, feed] = await Promise.all([getJson("/api/dashboard"), getJson("/api/corrections?limit=50")]);
  if (!view) {
    document.getElementById("logical-time").textContent = "no dashboard (the job runs without its UI exits)";
    return;
  }
  document.getElementById("logical-time").textContent = view.time_text || "–";
  regionChart(document.getElementById("region-chart"), document.getElementById("region-legend"), view);
  latestRows(document.getElementById("latest-rows"), document.getElementById("latest-window"), view);
  topUsers(document.getElementById("top-users"), view);
  heatMap(document.getElementById("heat-map"), view);
  const share = document.getElementById("unknown-share");
  share.textContent = (view.unknown_share * 100).toFixed(2) + " %";
  share.dataset.value = String(view.unknown_share);
  lineChart(document.getElementById("share-chart"),
    [{ name: "share", color: "#ffb648", points: view.unknown_share_history.map((p) => [p.time, p.share * 100]) }],
    { width: 380, height: 160, xLabel: (x) => isoTime(x).slice(11, 19), format: (y) => fixed(y, 1) + "%" });
  correctionsTable(document.getElementById("corrections"), feed);
}

async function loop(refresh) {
  try {
    await refresh();
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  } catch (error) {
    document.body.dataset.error = String(error);
  }
  setTimeout(() => loop(refresh), 1000);
}

loop(document.body.dataset.page === "job" ? refreshJob : refreshDashboard);
