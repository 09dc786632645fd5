// Draws grafana/tribune-cluster.json's panels (stat and time series, in
// their grid positions) from a Prometheus HTTP API, refreshing every 10 s.
// Only what that dashboard uses is drawn: rows, stat panels with
// threshold colours, time series with legends, its units.

const params = new URLSearchParams(location.search);
const PROM = (params.get("prometheus") || "http://127.0.0.1:9090").replace(/\/$/, "");
const MINUTES = Number(params.get("minutes") || 15);
const COLS = 24, ROW_PX = 30;
const PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a",
                 "#96d98d", "#ffb357", "#ca95e5", "#ff7383"];

async function query(path, args) {
  const url = `${PROM}/api/v1/${path}?${new URLSearchParams(args)}`;
  const r = await fetch(url);
  const body = await r.json();
  if (body.status !== "success") throw new Error(body.error || `HTTP ${r.status}`);
  return body.data.result;
}

// Grafana's $__rate_interval: four scrape intervals at least; a minute here.
const expr = (t) => t.expr.replaceAll("$__rate_interval", "1m");
const legend = (fmt, metric) =>
  (fmt || JSON.stringify(metric)).replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? "");

function format(v, unit) {
  if (v === null || Number.isNaN(v)) return "–";
  const scaled = (x, units, base) => {
    let i = 0;
    while (Math.abs(x) >= base && i < units.length - 1) { x /= base; i++; }
    return `${+x.toFixed(x >= 100 || i === 0 && Number.isInteger(x) ? 0 : 2)} ${units[i]}`.trim();
  };
  switch (unit) {
    case "bytes": return scaled(v, ["B", "KiB", "MiB", "GiB", "TiB"], 1024);
    case "Bps": return scaled(v, ["B/s", "KiB/s", "MiB/s", "GiB/s"], 1024);
    case "percentunit": return `${(v * 100).toFixed(1)}%`;
    case "s": return v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`;
    case "ops": return `${scaled(v, ["", "K", "M"], 1000)} ops/s`;
    case "reqps": return `${scaled(v, ["", "K", "M"], 1000)} req/s`;
    default: return scaled(v, ["", "K", "M", "G"], 1000);
  }
}

function colour(value, steps) {
  let c = steps[0]?.color || "green";
  for (const s of steps) if (s.value !== null && value >= s.value) c = s.color;
  return { green: "#37872d", red: "#c4162a", orange: "#fa6400", yellow: "#e0b400" }[c] || c;
}

function place(el, g, width) {
  const colPx = width / COLS;
  el.style.left = `${g.x * colPx}px`;
  el.style.top = `${g.y * ROW_PX}px`;
  el.style.width = `${g.w * colPx - 6}px`;
  el.style.height = `${g.h * ROW_PX - 6}px`;
}

async function drawStat(el, p) {
  const rows = await query("query", { query: expr(p.targets[0]) });
  const v = rows.length ? Number(rows[0].value[1]) : null;
  const steps = p.fieldConfig?.defaults?.thresholds?.steps || [];
  const box = document.createElement("div");
  box.className = "stat";
  box.textContent = format(v, p.fieldConfig?.defaults?.unit);
  if (v !== null) box.style.background = colour(v, steps);
  el.append(box);
}

async function drawSeries(el, p, range) {
  const series = [];
  for (const t of p.targets) {
    const rows = await query("query_range", { query: expr(t), start: range.start, end: range.end, step: range.step });
    for (const r of rows) series.push({ name: legend(t.legendFormat, r.metric), points: r.values.map(([ts, v]) => [ts, Number(v)]) });
  }
  const unit = p.fieldConfig?.defaults?.unit;
  const w = el.clientWidth - 16, h = el.clientHeight - 44, left = 58;
  const all = series.flatMap((s) => s.points.map(([, v]) => v)).filter(Number.isFinite);
  let lo = Math.min(0, ...all), hi = Math.max(...all, 0);
  if (hi === lo) hi = lo + 1;
  const x = (ts) => left + ((ts - range.start) / (range.end - range.start)) * (w - left);
  const y = (v) => 4 + (1 - (v - lo) / (hi - lo)) * (h - 18);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  for (const frac of [0, 0.5, 1]) {
    const v = lo + (hi - lo) * frac;
    const line = document.createElementNS(ns, "line");
    Object.entries({ x1: left, x2: w, y1: y(v), y2: y(v), stroke: "#2c3235" }).forEach(([k, a]) => line.setAttribute(k, a));
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 0);
    label.setAttribute("y", y(v) + 3);
    label.textContent = format(v, unit);
    svg.append(line, label);
  }
  for (const [i, when] of [[0, range.start], [1, range.end]].entries()) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", i ? w - 34 : left);
    label.setAttribute("y", h - 2);
    label.textContent = new Date(when[1] * 1000).toTimeString().slice(0, 5);
    svg.append(label);
  }
  series.forEach((s, i) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("points", s.points.filter(([, v]) => Number.isFinite(v)).map(([ts, v]) => `${x(ts)},${y(v)}`).join(" "));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", PALETTE[i % PALETTE.length]);
    path.setAttribute("stroke-width", "1.5");
    svg.append(path);
  });
  el.append(svg);
  const keys = document.createElement("div");
  keys.className = "legend";
  series.slice(0, 12).forEach((s, i) => {
    const k = document.createElement("span");
    k.innerHTML = `<i style="background:${PALETTE[i % PALETTE.length]}"></i>`;
    k.append(s.name);
    keys.append(k);
  });
  el.append(keys);
}

async function draw(dash) {
  const grid = document.getElementById("grid");
  const width = grid.clientWidth;
  const end = Math.floor(Date.now() / 1000), start = end - MINUTES * 60;
  const range = { start, end, step: Math.max(5, Math.floor((end - start) / 240)) };
  const panels = dash.panels;
  const bottom = Math.max(...panels.map((p) => p.gridPos.y + p.gridPos.h));
  grid.style.height = `${bottom * ROW_PX}px`;
  const fresh = document.createDocumentFragment();
  const jobs = [];
  for (const p of panels) {
    const el = document.createElement("div");
    if (p.type === "row") {
      el.className = "row";
      el.textContent = p.title;
      place(el, p.gridPos, width);
      fresh.append(el);
      continue;
    }
    el.className = "panel";
    el.dataset.type = p.type;
    const title = document.createElement("h2");
    title.textContent = p.title;
    title.title = p.description || "";
    el.append(title);
    place(el, p.gridPos, width);
    fresh.append(el);
    const job = p.type === "stat" ? drawStat(el, p) : drawSeries(el, p, range);
    jobs.push(job.then(() => { el.dataset.drawn = "1"; }).catch((e) => {
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = String(e.message || e);
      el.append(err);
      el.dataset.error = "1";
    }));
  }
  // Draw off-screen, then swap: no flicker on refresh.
  const scratch = document.createElement("div");
  scratch.style.cssText = `position:absolute;visibility:hidden;width:${width}px`;
  document.body.append(scratch);
  scratch.append(fresh);
  await Promise.all(jobs);
  grid.replaceChildren(...scratch.childNodes);
  scratch.remove();
  document.getElementById("updated").textContent = `updated ${new Date().toTimeString().slice(0, 8)}`;
  document.body.dataset.ready = "1";
}

const dash = await (await fetch("tribune-cluster.json")).json();
document.getElementById("title").textContent = `${dash.title} (dashboard preview)`;
document.getElementById("source").textContent = `Prometheus ${PROM}, last ${MINUTES} min`;
await draw(dash);
setInterval(() => draw(dash), 10_000);
