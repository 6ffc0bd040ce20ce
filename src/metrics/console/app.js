// Sluice console: polls /api/all and draws the pages. No framework, no build step.
"use strict";

const POLL_MS = 2000;
let data = null;        // the last /api/all
let prev = null;        // the one before (for per-shard request rates)
let failures = 0;

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const num = (n) => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US");

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + u[i];
}
function rate(n, unit) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  if (unit === "B") return bytes(n) + "/s";
  if (n >= 100) return num(Math.round(n)) + " /s";
  return n.toFixed(1) + " /s";
}
function us(n) {
  if (n === null || n === undefined) return "–";
  return n >= 1000 ? (n / 1000).toFixed(2) + " ms" : n + " µs";
}
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

// --- series from the broker's history --------------------------------------------------

function history() { return (data && data.overview.history) || []; }

/** Per-second rate of `get(sample)` between successive samples: [{t, v}]. */
function rateSeries(get) {
  const h = history(), out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000, a = get(h[i - 1]), b = get(h[i]);
    if (dt <= 0 || a === undefined || b === undefined) continue;
    out.push({ t: h[i].t, v: Math.max(0, (b - a) / dt) });
  }
  return out;
}
function gaugeSeries(get) {
  return history().filter((s) => get(s) !== undefined).map((s) => ({ t: s.t, v: get(s) }));
}
/** The rate over the last ~10 s of samples (smoother than the last step). */
function recentRate(get) {
  const h = history();
  if (h.length < 2) return null;
  const last = h[h.length - 1];
  let first = h[h.length - 2];
  for (let i = h.length - 2; i >= 0 && last.t - h[i].t <= 10000; i--) first = h[i];
  const a = get(first), b = get(last), dt = (last.t - first.t) / 1000;
  if (a === undefined || b === undefined || dt <= 0) return null;
  return Math.max(0, (b - a) / dt);
}

// --- charts ---------------------------------------------------------------------------

function drawChart(canvas, series, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const small = opts.spark;
  const padL = small ? 1 : 56, padB = small ? 1 : 16, padT = small ? 2 : 6;
  const pw = w - padL - 2, ph = h - padB - padT;
  // The x axis covers the history kept, at least a minute (so it does not jump while
  // the first samples arrive), ending at the newest sample: the samples carry the
  // broker's clock, and a browser whose clock is off would misplace them on its own.
  const span = opts.spanMs || 60 * 1000;
  const now = series.length ? series[series.length - 1].t : Date.now();
  const t0 = series.length && !small ? Math.min(series[0].t, now - span) : (series.length ? series[0].t : now - span);
  const t1 = series.length ? Math.max(series[series.length - 1].t, t0 + 1) : now;
  let max = 0;
  for (const p of series) max = Math.max(max, p.v);
  if (max === 0) max = 1;
  const x = (t) => padL + (t - t0) / (t1 - t0) * pw;
  const y = (v) => padT + ph - v / max * ph;
  if (!small) {
    g.strokeStyle = "#e3e6eb"; g.fillStyle = "#6b7383"; g.font = "11px system-ui"; g.lineWidth = 1;
    for (let i = 0; i <= 2; i++) {
      const v = max * i / 2, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(padL, yy); g.lineTo(w - 2, yy); g.stroke();
      const label = opts.format ? opts.format(v) : num(Math.round(v));
      g.fillText(label, 2, yy + 4);
    }
    const mins = Math.round((t1 - t0) / 60000);
    g.fillText(mins >= 1 ? `last ${mins} min` : `last ${Math.round((t1 - t0) / 1000)} s`, padL, h - 3);
  }
  if (series.length < 2) {
    if (!small) { g.fillStyle = "#6b7383"; g.fillText("collecting samples…", padL + 8, padT + ph / 2); }
    return;
  }
  g.beginPath();
  series.forEach((p, i) => i ? g.lineTo(x(p.t), y(p.v)) : g.moveTo(x(p.t), y(p.v)));
  g.strokeStyle = opts.color || "#1f6feb"; g.lineWidth = small ? 1.2 : 1.6; g.stroke();
  g.lineTo(x(series[series.length - 1].t), padT + ph); g.lineTo(x(series[0].t), padT + ph); g.closePath();
  g.fillStyle = (opts.color || "#1f6feb") + "22"; g.fill();
}

const charts = [];  // [{id, series, opts}] drawn after each render
function chart(id, title, series, opts = {}) {
  charts.push({ id, series, opts });
  const last = series.length ? series[series.length - 1].v : null;
  const now = last === null ? "–" : (opts.format ? opts.format(last) : num(Math.round(last)));
  return `<div class="chart"><div class="title"><span>${esc(title)}</span><span class="now" data-now="${esc(id)}">${now}</span></div><canvas id="${esc(id)}"></canvas></div>`;
}
function spark(id, series, color) {
  charts.push({ id, series, opts: { spark: true, color } });
  return `<canvas class="spark" id="${esc(id)}"></canvas>`;
}
function card(label, value, id) {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value" id="${esc(id)}">${value}</div></div>`;
}
function table(id, headers, rows, empty) {
  if (!rows.length) return `<div class="empty" id="${esc(id)}-empty">${esc(empty)}</div>`;
  const th = headers.map((h) => `<th class="${h.num ? "num" : ""}">${esc(h.label)}</th>`).join("");
  return `<table id="${esc(id)}"><thead><tr>${th}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}
const H = (label, isNum) => ({ label, num: !!isNum });
const td = (v, cls = "", key = "") => `<td class="${cls}"${key ? ` data-key="${key}"` : ""}>${v}</td>`;
const tdn = (v, key) => td(v, "num", key);
const lagCell = (lag) => tdn(`<span class="${lag > 0 ? "lag-some" : "lag-0"}">${num(lag)}</span>`, "lag");

// --- pages ------------------------------------------------------------------------------

function overviewPage() {
  const o = data.overview;
  const prodRate = recentRate((s) => s.produced_records);
  const lagTotal = (s) => Object.values(s.groups || {}).reduce((a, b) => a + b, 0);
  return `<h1>Overview</h1>
  <div class="cards">
    ${card("Topics", num(o.topics), "card-topics")}
    ${card("Partitions", num(o.partitions), "card-partitions")}
    ${card("Consumer groups", num(o.groups), "card-groups")}
    ${card("Share groups", num(o.share_groups), "card-share-groups")}
    ${card("Connections", num(o.connections), "card-connections")}
    ${card("Produce", rate(prodRate), "card-produce-rate")}
    ${card("Records produced", num(o.produced_records), "card-produced")}
    ${card("Data on disk", bytes(o.size_bytes), "card-size")}
    ${card("fsync p99", us(o.fsync_us.p99), "card-fsync")}
    ${card("Shards", num(o.shards), "card-shards")}
  </div>
  <div class="charts">
    ${chart("c-prod-rec", "Produced records/s", rateSeries((s) => s.produced_records), { color: "#1f6feb", format: (v) => rate(v) })}
    ${chart("c-prod-bytes", "Produced bytes/s", rateSeries((s) => s.produced_bytes), { color: "#8250df", format: (v) => rate(v, "B") })}
    ${chart("c-fetch-bytes", "Fetched bytes/s", rateSeries((s) => s.fetched_bytes), { color: "#2da44e", format: (v) => rate(v, "B") })}
    ${chart("c-requests", "Requests/s", rateSeries((s) => s.requests), { color: "#bf8700", format: (v) => rate(v) })}
    ${chart("c-conns", "Connections", gaugeSeries((s) => s.connections), { color: "#0969da" })}
    ${chart("c-lag", "Consumer lag (all groups)", gaugeSeries(lagTotal), { color: "#cf222e" })}
  </div>
  <h2>Broker</h2>
  ${table("broker-info", [H("Setting"), H("Value")], [
    ["Version", esc(o.version)], ["Listener", esc(o.listen)], ["Admin endpoint", esc(o.admin_addr)],
    ["Data directory", esc(o.data_dir)], ["Flush", esc(o.flush)], ["Uptime", duration(o.uptime_s)],
    ["Max connections per shard", num(o.max_connections)],
    ["Journal fsync p99", us(o.journal_fsync_us.p99)],
    ["DLQ writes (failed)", `${num(o.dlq_writes)} (${num(o.dlq_failures)})`],
  ].map(([k, v]) => `<tr>${td(esc(k))}${td(v)}</tr>`), "")}`;
}

function topicRate(name) { return recentRate((s) => (s.topics || {})[name]); }
function fetchedOf(name) { return (s) => (s.topics_fetched || {})[name]; }
function topicFetchRate(name) { return recentRate(fetchedOf(name)); }

function topicsPage() {
  const rows = data.topics.map((t) => `<tr data-topic="${esc(t.topic)}">
    ${td(`<a href="#/topics/${encodeURIComponent(t.topic)}">${esc(t.topic)}</a>`, "", "topic")}
    ${tdn(num(t.partition_count), "partitions")}${tdn(num(t.records), "records")}
    ${tdn(num(t.high_watermark_sum), "end")}${tdn(bytes(t.size_bytes), "size")}
    ${tdn(rate(topicRate(t.topic)), "rate")}${tdn(rate(topicFetchRate(t.topic), "B"), "fetch-rate")}
    ${td(spark("sp-t-" + t.topic, rateSeries((s) => (s.topics || {})[t.topic]), "#1f6feb"))}
  </tr>`);
  return `<h1>Topics</h1>${table("topics-table", [H("Topic"), H("Partitions", 1), H("Records", 1), H("Produced (sum of ends)", 1), H("Size", 1), H("Produce rate", 1), H("Fetch rate", 1), H("Trend")], rows, "No topics yet: create one with `sluice topic create NAME`.")}`;
}

function topicPage(name) {
  const t = data.topics.find((x) => x.topic === name);
  if (!t) return `<div class="crumbs"><a href="#/topics">Topics</a> /</div><div class="empty">Topic ${esc(name)} does not exist (any more).</div>`;
  const groups = data.groups.filter((g) => g.topics.includes(name));
  const rows = t.partitions.map((p) => `<tr data-partition="${p.partition}">${tdn(p.partition, "partition")}${tdn(p.shard, "shard")}
    ${tdn(num(p.log_start_offset), "start")}${tdn(num(p.high_watermark), "end")}${tdn(num(p.records), "records")}${tdn(bytes(p.size_bytes), "size")}${tdn(bytes(p.fetched_bytes), "fetched")}</tr>`);
  const grows = groups.map((g) => {
    const lag = g.partitions.filter((p) => p.topic === name).reduce((a, p) => a + (p.lag || 0), 0);
    return `<tr data-group="${esc(g.group)}">${td(`<a href="#/groups/${encodeURIComponent(g.group)}">${esc(g.group)}</a>`)}${lagCell(lag)}</tr>`;
  });
  return `<div class="crumbs"><a href="#/topics">Topics</a> / ${esc(name)}</div>
  <h1 id="topic-title">${esc(name)}</h1>
  <div class="cards">${card("Partitions", num(t.partition_count), "card-t-partitions")}${card("Records", num(t.records), "card-t-records")}
    ${card("Size", bytes(t.size_bytes), "card-t-size")}${card("Produce rate", rate(topicRate(name)), "card-t-rate")}
    ${card("Fetch rate", rate(topicFetchRate(name), "B"), "card-t-fetch-rate")}${card("Fetched", bytes(t.fetched_bytes), "card-t-fetched")}</div>
  <div class="charts">${chart("c-topic-rate", "Produced records/s", rateSeries((s) => (s.topics || {})[name]), { format: (v) => rate(v) })}
    ${chart("c-topic-fetch", "Fetched bytes/s", rateSeries(fetchedOf(name)), { color: "#2da44e", format: (v) => rate(v, "B") })}</div>
  <h2>Partitions</h2>${table("partitions-table", [H("Partition", 1), H("Shard", 1), H("Log start", 1), H("High watermark", 1), H("Records", 1), H("Size", 1), H("Fetched", 1)], rows, "")}
  <h2>Consumer groups on this topic</h2>${table("topic-groups-table", [H("Group"), H("Lag", 1)], grows, "No group has committed offsets on this topic.")}`;
}

function groupsPage() {
  const rows = data.groups.map((g) => `<tr data-group="${esc(g.group)}">
    ${td(`<a href="#/groups/${encodeURIComponent(g.group)}">${esc(g.group)}</a>`, "", "group")}
    ${td(esc(g.topics.join(", ")), "", "topics")}${tdn(num(g.partitions.length), "partitions")}${lagCell(g.total_lag)}
    ${td(spark("sp-g-" + g.group, gaugeSeries((s) => (s.groups || {})[g.group]), "#cf222e"))}</tr>`);
  return `<h1>Consumer groups</h1>${table("groups-table", [H("Group"), H("Topics"), H("Partitions", 1), H("Lag", 1), H("Lag trend")], rows, "No consumer group has committed offsets yet.")}
  <p class="muted">Groups with committed offsets; members and states: <code>sluice group describe GROUP</code>.</p>`;
}

function groupPage(name) {
  const g = data.groups.find((x) => x.group === name);
  if (!g) return `<div class="crumbs"><a href="#/groups">Consumer groups</a> /</div><div class="empty">Group ${esc(name)} has no committed offsets.</div>`;
  const rows = g.partitions.map((p) => `<tr data-tp="${esc(p.topic)}-${p.partition}">${td(esc(p.topic), "", "topic")}${tdn(p.partition, "partition")}
    ${tdn(num(p.committed), "committed")}${tdn(num(p.end), "end")}${lagCell(p.lag)}</tr>`);
  return `<div class="crumbs"><a href="#/groups">Consumer groups</a> / ${esc(name)}</div><h1 id="group-title">${esc(name)}</h1>
  <div class="cards">${card("Total lag", num(g.total_lag), "card-g-lag")}${card("Partitions", num(g.partitions.length), "card-g-partitions")}
   ${card("Consumed", rate(recentRate((s) => { const e = (s.topics || {}), l = (s.groups || {})[name]; return l === undefined ? undefined : g.topics.reduce((a, t) => a + (e[t] || 0), 0) - l; })), "card-g-rate")}</div>
  <div class="charts">${chart("c-group-lag", "Lag", gaugeSeries((s) => (s.groups || {})[name]), { color: "#cf222e" })}</div>
  <h2>Partitions</h2>${table("group-partitions-table", [H("Topic"), H("Partition", 1), H("Committed", 1), H("End", 1), H("Lag", 1)], rows, "")}`;
}

function sharesPage() {
  const rows = data.shares.map((s) => `<tr data-share="${esc(s.group)}/${esc(s.topic)}-${s.partition}">
    ${td(esc(s.group), "", "group")}${td(esc(s.topic), "", "topic")}${tdn(s.partition, "partition")}${tdn(s.shard, "shard")}
    ${tdn(num(s.start_offset), "start")}${tdn(num(s.end), "end")}${tdn(num(s.available), "available")}${tdn(num(s.acquired), "acquired")}
    ${tdn(num(s.archived_total), "archived")}${tdn(num(s.delivery_limit_hits), "limit")}${tdn(num(s.lock_expiries), "expiries")}
    ${td(s.dlq_topic ? `<a href="#/topics/${encodeURIComponent(s.dlq_topic)}">${esc(s.dlq_topic)}</a>` : "–", "", "dlq-topic")}${tdn(s.dlq_topic ? num(s.dlq_depth || 0) : "–", "dlq-depth")}</tr>`);
  const o = data.overview;
  return `<h1>Share groups</h1>
  <div class="cards">${card("Share groups", num(o.share_groups), "card-s-groups")}${card("DLQ writes", num(o.dlq_writes), "card-s-dlq")}${card("DLQ write failures", num(o.dlq_failures), "card-s-dlq-fail")}</div>
  <h2>Share partitions</h2>
  ${table("shares-table", [H("Group"), H("Topic"), H("Partition", 1), H("Shard", 1), H("Start offset", 1), H("End", 1), H("Available", 1), H("Acquired", 1), H("Archived", 1), H("Delivery limit hits", 1), H("Lock expiries", 1), H("DLQ topic"), H("DLQ depth", 1)], rows, "No share groups (KIP-932) have consumed yet.")}
  <p class="muted">Available: records in the in-flight window waiting for a consumer; acquired: delivered and not yet acknowledged; archived: accepted, rejected or past the delivery limit. DLQ depth: records in the group's dead-letter topic (<code>errors.deadletterqueue.topic.name</code>), end minus log start; <code>sluice dlq redrive</code> moves them back.</p>`;
}

function shardsPage() {
  const prevBy = {};
  if (prev) for (const s of prev.shards) prevBy[s.shard] = s;
  const dt = prev ? (data._at - prev._at) / 1000 : 0;
  const rows = data.shards.map((s) => {
    const p = prevBy[s.shard];
    const rr = p && dt > 0 ? (s.requests - p.requests) / dt : null;
    const pr = p && dt > 0 ? (s.produced_bytes - p.produced_bytes) / dt : null;
    return `<tr data-shard="${s.shard}">${tdn(s.shard, "shard")}${tdn(num(s.partitions), "partitions")}${tdn(num(s.connections), "connections")}
      ${tdn(rate(rr), "request-rate")}${tdn(rate(pr, "B"), "produce-rate")}${tdn(num(s.produced_records), "produced")}${tdn(bytes(s.fetched_bytes), "fetched")}
      ${tdn(bytes(s.size_bytes), "size")}${tdn(us(s.fsync_us.p50), "fsync-p50")}${tdn(us(s.fsync_us.p99), "fsync-p99")}${tdn(us(s.journal_fsync_us.p99), "journal-p99")}
      ${tdn(us(s.queued_us.p99), "queued-p99")}${tdn(num(s.cross_shard_calls), "hops")}</tr>`;
  });
  const reqs = data.requests.map((r) => `<tr data-api="${esc(r.api)}">${td(esc(r.api))}${tdn(num(r.latency_us.count))}${tdn(us(r.latency_us.p50))}${tdn(us(r.latency_us.p99))}${tdn(us(r.latency_us.p999))}${tdn(us(r.latency_us.max))}</tr>`);
  return `<h1>Shards</h1>
  ${table("shards-table", [H("Shard", 1), H("Partitions", 1), H("Connections", 1), H("Requests/s", 1), H("Produce", 1), H("Records", 1), H("Fetched", 1), H("Size", 1), H("fsync p50", 1), H("fsync p99", 1), H("Journal p99", 1), H("Queued p99", 1), H("Hops out", 1)], rows, "")}
  <h2>Request latency by API</h2>${table("requests-table", [H("API"), H("Count", 1), H("p50", 1), H("p99", 1), H("p99.9", 1), H("Max", 1)], reqs, "No requests yet.")}`;
}

// --- routing and polling ----------------------------------------------------------------

function route() {
  const parts = (location.hash.replace(/^#\/?/, "") || "").split("/").map(decodeURIComponent);
  return { page: parts[0] || "overview", arg: parts.slice(1).join("/") };
}

function render() {
  if (!data) return;
  const { page, arg } = route();
  charts.length = 0;
  let html;
  switch (page) {
    case "topics": html = arg ? topicPage(arg) : topicsPage(); break;
    case "groups": html = arg ? groupPage(arg) : groupsPage(); break;
    case "shares": html = sharesPage(); break;
    case "shards": html = shardsPage(); break;
    default: html = overviewPage();
  }
  $("#page").innerHTML = html;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === (page === "overview" || !page ? "overview" : page));
  }
  for (const c of charts) {
    const el = document.getElementById(c.id);
    if (el) drawChart(el, c.series, c.opts);
  }
  $("#version").textContent = `${data.overview.version} · ${data.overview.shards} shards · up ${duration(data.overview.uptime_s)}`;
}

async function poll() {
  try {
    const r = await fetch("/api/all", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const next = await r.json();
    next._at = Date.now();
    prev = data; data = next; failures = 0;
    const st = $("#status");
    st.textContent = "live · updated " + new Date().toLocaleTimeString();
    st.classList.remove("bad");
    render();
  } catch (e) {
    failures++;
    const st = $("#status");
    st.textContent = `broker not answering (${failures}×): ${e.message}`;
    st.classList.add("bad");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

window.addEventListener("hashchange", render);
window.addEventListener("resize", render);
poll();
