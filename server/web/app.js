/* sbida console: a single page over the daemon's public API (/v1). No build
 * step and no framework: hash routes (#/estimators, #/jobs, #/jobs/ID,
 * #/submit, #/streams, #/streams/ID), fetch with the tab's bearer token,
 * uPlot for line charts and a canvas for 2D fields. Everything shown comes
 * from the API; nothing is computed here that the daemon did not return,
 * except colour scales (a stream's spread and observation-space RMSE per
 * cycle come from GET /v1/streams/{id}/cycles). */
"use strict";

const TOKEN_KEY = "sbida.token";
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
let timer = null;          // the current view's refresh timer
let viewGen = 0;           // bumped on every route: a refresh of a view left meanwhile stops
let charts = [];           // uPlot instances of the current view

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(2);
  return Number(x.toFixed(digits)).toString();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/* ---- API ---------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || ("HTTP " + status));
    this.status = status;
    this.problem = problem;
  }
}

let tokenWaiters = null;

function askToken(reason) {
  const dlg = $("#token-dialog");
  $("#token-reason").textContent = reason ||
    "This daemon asks for a bearer token (a line of its tokens file).";
  $("#token-input").value = sessionStorage.getItem(TOKEN_KEY) || "";
  if (!tokenWaiters) {
    tokenWaiters = [];
    if (!dlg.open) dlg.showModal();
  }
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function tokenDone(saved) {
  const waiters = tokenWaiters || [];
  tokenWaiters = null;
  waiters.forEach((w) => w(saved));
}

async function api(path, opts = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(path, Object.assign({}, opts, { headers }));
    if (res.status === 401) {
      const saved = await askToken(token ? "The daemon refused this token; enter another." : null);
      if (!saved) throw new ApiError(401, { title: "Unauthorized", detail: "no token given" });
      continue;
    }
    if (opts.raw) {
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      return res;
    }
    const body = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }
  throw new ApiError(401, { title: "Unauthorized", detail: "token refused" });
}

function problemBox(err) {
  const p = err.problem || {};
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, p.title || "Error", err.status ? " (" + err.status + ")" : ""), " ",
    p.detail || err.message,
    p.errors ? h("ul", {}, p.errors.map((e) => h("li", {}, typeof e === "string" ? e : JSON.stringify(e)))) : null);
}

/* ---- .npy (the daemon's sample format, and uploads) -------------------- */

function parseNpy(buf) {
  const u8 = new Uint8Array(buf);
  if (u8[0] !== 0x93 || String.fromCharCode(...u8.slice(1, 6)) !== "NUMPY") throw new Error("not a .npy file");
  const major = u8[6];
  const dv = new DataView(buf);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(u8.slice(start, start + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error("unreadable .npy header");
  if (fortran[1] === "True") throw new Error(".npy in Fortran order is not supported; save with C order");
  const dims = shape[1].split(",").map((s) => s.trim()).filter((s) => s).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const off = start + hlen;
  let data;
  if (descr[1] === "<f4") data = new Float32Array(buf.slice(off, off + 4 * n));
  else if (descr[1] === "<f8") data = new Float64Array(buf.slice(off, off + 8 * n));
  else throw new Error("dtype " + descr[1] + " is not supported; use float32 or float64");
  if (data.length !== n) throw new Error(".npy data is shorter than its shape says");
  return { shape: dims, data };
}

/* ---- colour scale and 2D fields --------------------------------------- */

function colour(t, diverging) {
  t = Math.min(1, Math.max(0, t));
  if (diverging) {             // blue - white - red
    const a = Math.abs(t - 0.5) * 2;
    const r = t > 0.5 ? 255 : Math.round(255 * (1 - a));
    const b = t < 0.5 ? 255 : Math.round(255 * (1 - a));
    const g = Math.round(255 * (1 - a));
    return [r, g, b];
  }
  return [Math.round(255 * t), Math.round(255 * (0.15 + 0.7 * t * (1 - t) * 2)), Math.round(255 * (1 - t))];
}

function heatmap(values, H, W, caption, diverging) {
  const c = h("canvas", { width: W, height: H, "data-kind": "heatmap" });
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(W, H);
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (diverging) { const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1; lo = -m; hi = m; }
  const span = hi - lo || 1;
  for (let i = 0; i < H * W; i++) {
    const [r, g, b] = colour((values[i] - lo) / span, diverging);
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  return h("figure", {}, c, h("figcaption", {}, caption + " [" + fmt(lo) + ", " + fmt(hi) + "]"));
}

/* ---- line chart --------------------------------------------------------- */

function lineChart(target, title, xs, series, opt = {}) {
  // series: [{label, values, stroke, band: [loIdx, hiIdx]?, points?: true (points only) | "line" (both), dash?}]
  // opt: {width, xLabel, yLabel, xName}
  const data = [xs, ...series.map((s) => s.values)];
  const opts = {
    title, width: Math.min(opt.width || 900, window.innerWidth - 60), height: 320,
    scales: { x: { time: false } },
    axes: [{ label: opt.xLabel || "state component" }, { label: opt.yLabel || "value" }],
    series: [{ label: opt.xName || "component" }].concat(series.map((s) => ({
      label: s.label, stroke: s.stroke, width: s.points === true ? 0 : 1.5, dash: s.dash,
      points: s.points ? { show: true, size: 6, stroke: s.stroke, fill: s.stroke } : { show: false },
      spanGaps: false,
    }))),
    bands: series.flatMap((s, i) => (s.band ? [{ series: s.band, fill: "rgba(31,95,191,0.15)" }] : [])),
  };
  const wrap = h("div", { class: "chart", "data-kind": "chart" });
  target.append(wrap);
  const u = new uPlot(opts, data, wrap);
  charts.push(u);
  return u;
}

/* ---- views -------------------------------------------------------------- */

function setView(...kids) {
  const v = $("#view");
  v.replaceChildren(...kids);
  return v;
}

function leaveView() {
  viewGen++;
  if (timer) clearTimeout(timer);
  timer = null;
  charts.forEach((c) => c.destroy());
  charts = [];
}

function shapeText(e) {
  return e.state_shape ? e.state_shape.filter((d, i) => !(i < 2 && d === 1 && e.state_shape.length === 3 && e.state_shape[1] === 1)).join(" × ") : String(e.state_dim);
}

function evalSummary(e) {
  const ev = e.evaluation;
  if (!ev || !ev.setups) return h("span", { class: "muted" }, "none shipped");
  return h("span", {}, ev.setups.map((s) => {
    const mine = s.results && s.results[e.name];
    return mine ? s.setup + ": RMSE " + fmt(mine.rmse) + ", cov.err " + fmt(mine.coverage_max_abs_error) : s.setup;
  }).join("; "));
}

function settingsText(params, settings) {
  // the sampler settings in effect, as the evaluation recorded them; else the params it was given
  if (settings && Object.keys(settings).length) return JSON.stringify(settings);
  return params && Object.keys(params).length ? JSON.stringify(params) : "defaults";
}

function threadsText(threads) {
  // seconds_per_request is one request on one thread; the evaluation ran `threads` of them at once
  if (!threads) return "threads not recorded";
  return "one thread" + (threads > 1 ? ", " + threads + " requests at once" : "");
}

function costCell(e) {
  // the cost of one request of e in each setup of its shipped evaluation that measured it
  const ev = e.evaluation;
  const lines = [];
  let unmeasured = 0;
  for (const s of (ev && ev.setups) || []) {
    const r = s.results && s.results[e.name];
    if (!r) continue;
    if (typeof r.seconds_per_request !== "number") { unmeasured++; continue; }
    lines.push(h("div", { class: "cost", "data-setup": s.setup, "data-seconds": r.seconds_per_request },
      h("strong", {}, fmt(r.seconds_per_request) + " s"), " ",
      h("span", { class: "muted" }, s.setup + ": " + s.samples + " samples, " +
        threadsText(r.threads) + ", " + settingsText(r.params, r.settings))));
  }
  if (!lines.length) return h("td", { class: "muted" }, unmeasured ? "not measured (evaluation written before costs were recorded)" : "no evaluation");
  if (unmeasured) lines.push(h("div", { class: "muted" }, unmeasured + " more setup" + (unmeasured > 1 ? "s" : "") + " without a measured cost"));
  return h("td", { class: "cost-cell" }, lines);
}

function rangeText(r, fixed) {
  if (!r) return String(fixed);
  return r.min === r.max ? String(r.min) : r.min + "–" + r.max;
}

function stateCell(e) {
  // the state size a request may give: the shape, or the range of state_dim when it may vary
  const r = e.state_dim_range;
  if (r && r.min !== r.max) return "N = " + r.min + "–" + r.max + " (default " + e.state_dim + ")";
  return shapeText(e);
}

function windowCell(e) {
  // observation rows a request may have (window_range), with the estimator's own window
  const r = e.window_range;
  if (typeof e.window === "number" && (!r || (r.min === e.window && r.max === e.window))) return String(e.window);
  return r ? rangeText(r) + (e.window === "any" ? "" : " (trained " + e.window + ")") : String(e.window);
}

function reloadReport(rep) {
  // POST /v1/estimators:reload's answer: what changed, file by file
  const part = (title, items, text) => h("li", { "data-part": title }, h("strong", {}, title + ": " + items.length),
    items.length ? h("ul", {}, items.map((x) => h("li", {}, text(x)))) : "");
  return h("div", { id: "reload-report", class: "report" },
    h("p", {}, "Reloaded (generation " + rep.generation + "): " + rep.estimators + " estimators served. " +
      new Date().toLocaleTimeString()),
    h("ul", {},
      part("added", rep.added, (a) => a.name + " (" + a.kind + ", " + a.file + ", " + a.digest + ")"),
      part("replaced", rep.replaced, (a) => a.name + " (" + a.file + "): " + a.previous_digest + " → " + a.digest),
      part("removed", rep.removed, (a) => a.name + " (" + a.file + ", " + a.digest + ")"),
      part("failed", rep.failed, (a) => a.file + ": " + a.code + ", " + a.reason + (a.kept ? " (still serving the previous " + a.kept + ")" : "")),
      h("li", { "data-part": "unchanged" }, h("strong", {}, "unchanged: " + rep.unchanged.length),
        rep.unchanged.length ? " (" + rep.unchanged.join(", ") + ")" : "")));
}

function estimatorRows(items) {
  return [h("tr", {}, ["name", "kind", "system", "state", "window", "operator", "noise", "cost per request", "evaluation", ""].map((t) => h("th", {}, t))),
    ...items.map((e) => h("tr", { "data-name": e.name },
      h("td", {}, h("a", { href: "#/estimators/" + encodeURIComponent(e.name) }, e.name)),
      h("td", {}, e.kind), h("td", {}, e.system), h("td", { class: "nowrap" }, stateCell(e)),
      h("td", { class: "nowrap" }, windowCell(e)), h("td", { class: "code" }, typeof e.operator === "string" ? e.operator : JSON.stringify(e.operator)),
      h("td", {}, typeof e.noise_std === "string" ? e.noise_std : JSON.stringify(e.noise_std)),
      costCell(e), h("td", {}, evalSummary(e)),
      h("td", {}, h("a", { href: "#/submit/" + encodeURIComponent(e.name) }, "submit"))))];
}

function evidenceCells(ev) {
  if (!ev) return [h("td", { colspan: 7, class: "muted" }, "")];
  const num = (x) => h("td", { class: "num" }, x === null || x === undefined ? "–" : fmt(x));
  return [h("td", {}, ev.setup + " ", h("span", { class: "muted" }, "(" + ev.source + ", " + ev.cases + " cases)")),
    num(ev.crps), num(ev.rmse), num(ev.coverage_max_abs_error), num(ev.spread),
    h("td", { class: "num" }, typeof ev.seconds_per_request === "number" ? fmt(ev.seconds_per_request) + " s" : "not measured"),
    h("td", {}, threadsText(ev.threads) + ", " + settingsText(ev.params, ev.settings))];
}

function chooseForm(presets) {
  // GET /v1/estimators?preset&operator&noise_std&window: the estimators that can answer
  // such a request, ranked by their shipped evaluation, with its evidence
  const preset = h("select", { id: "c-preset" }, [h("option", { value: "" }, "any")].concat(presets.map((p) => h("option", { value: p }, p))));
  const op = h("textarea", { id: "c-operator", class: "small", spellcheck: "false", placeholder: '{"type":"subsample","stride":2}' });
  const noise = h("input", { id: "c-noise", type: "number", step: "any", min: "0", size: 6, placeholder: "e.g. 1.5" });
  const win = h("input", { id: "c-window", type: "number", step: "1", min: "1", size: 5, placeholder: "e.g. 10" });
  const out = h("div", { id: "choose-result" });
  const go = async (ev) => {
    if (ev) ev.preventDefault();
    out.replaceChildren(h("p", { class: "muted" }, "Ranking…"));
    const q = new URLSearchParams();
    if (preset.value) q.set("preset", preset.value);
    const opText = op.value.trim();
    if (opText) {
      try { q.set("operator", JSON.stringify(JSON.parse(opText))); } catch (err) {
        out.replaceChildren(problemBox(new Error("the operator is not JSON: " + err.message)));
        return;
      }
    }
    if (noise.value) q.set("noise_std", noise.value);
    if (win.value) q.set("window", win.value);
    if (![...q.keys()].length) { out.replaceChildren(problemBox(new Error("give at least one of preset, operator, noise_std, window"))); return; }
    try {
      const m = await api("/v1/estimators?" + q);
      out.replaceChildren(
        h("p", { class: "muted" }, "GET /v1/estimators?" + decodeURIComponent(q.toString().replaceAll("+", "%20")) + " — ranked by " + m.ranked_by + "."),
        h("table", { id: "ranking" },
          h("tr", {}, ["rank", "estimator", "kind", "evidence (setup)", "CRPS", "RMSE", "coverage error", "spread", "cost / request", "measured with"].map((t) => h("th", {}, t))),
          m.items.length ? m.items.map((i) => h("tr", { "data-name": i.name, class: i.rank ? "" : "unranked" },
            h("td", { class: "num" }, i.rank ? String(i.rank) : "–"),
            h("td", {}, h("a", { href: "#/estimators/" + encodeURIComponent(i.name) }, i.name)), h("td", {}, i.kind),
            ...(i.evidence ? evidenceCells(i.evidence) : [h("td", { colspan: 7, class: "muted" }, i.note || "no evidence")])))
            : h("tr", {}, h("td", { colspan: 10, class: "muted" }, "no served estimator can answer such a request"))),
        m.cannot_answer.length ? h("div", { id: "cannot-answer" }, h("h3", {}, "Cannot answer"),
          h("ul", {}, m.cannot_answer.map((c) => h("li", {}, h("a", { href: "#/estimators/" + encodeURIComponent(c.name) }, c.name), ": " + c.reason)))) : "");
    } catch (err) {
      out.replaceChildren(problemBox(err));
    }
  };
  return h("section", { id: "choose" }, h("h2", {}, "Which estimator for my request?"),
    h("p", { class: "muted" }, "Describe the request; the daemon lists the estimators that can take it, ranked by the CRPS of their " +
      "shipped evaluation on the same preset, operator, noise and window, with the evidence and the cost of one request as measured " +
      "then. Leave a field empty to leave it open."),
    h("form", { id: "choose-form", class: "filters", onsubmit: go },
      h("label", {}, "preset", preset), h("label", { class: "grow" }, "operator (JSON)", op),
      h("label", {}, "noise_std", noise), h("label", {}, "window", win),
      h("button", { type: "submit", id: "choose-go" }, "Rank estimators")),
    out);
}

async function viewEstimators() {
  const list = await api("/v1/estimators");
  const table = h("table", { id: "estimators" }, estimatorRows(list.items));
  const count = h("span", { id: "estimators-count" }, list.items.length + " served.");
  const report = h("div", { id: "reload-out" });
  const reload = async () => {
    report.replaceChildren(h("p", { class: "muted" }, "Reloading…"));
    try {
      const rep = await api("/v1/estimators:reload", { method: "POST" });
      const now = await api("/v1/estimators");
      table.replaceChildren(...estimatorRows(now.items));
      count.textContent = now.items.length + " served.";
      report.replaceChildren(reloadReport(rep));
      // a ranking on the page is of the previous registry: ask again
      if ($("#ranking")) $("#choose-form").requestSubmit();
    } catch (err) {
      report.replaceChildren(problemBox(err));
    }
  };
  const presets = [...new Set(list.items.map((e) => e.preset))].sort();
  setView(h("h1", {}, "Estimators"), chooseForm(presets),
    h("h2", {}, "Served estimators"),
    h("p", { class: "muted" }, count, " Accuracy is the shipped evaluation (RMSE and the largest coverage error over the credible levels; lower is better). " +
      "Cost: seconds for one request (one window, the evaluation's number of samples) as the evaluation measured it, on that machine, " +
      "on one thread (the evaluation ran as many requests at once as shown), with the params or sampler settings shown; " +
      "a daemon job may use more threads (--job-threads). State and window give what a request may ask for (state_dim_range, window_range)."),
    h("p", {}, h("button", { type: "button", id: "reload" }, "Reload models"), " ",
      h("span", { class: "muted" }, "Rescan the models directory (POST /v1/estimators:reload): new files load, removed ones retire, changed ones are replaced.")),
    report, table);
  $("#reload").addEventListener("click", reload);
}

const PALETTE = ["#1f5fbf", "#b3261e", "#1e7d32", "#8e44ad", "#d98c00", "#00838f", "#5d4037", "#c2185b"];

function metricChart(target, e, s) {
  // the setup's RMSE and CRPS per estimator, as bars side by side; this estimator marked ★
  const names = Object.keys(s.results);
  const xs = names.map((_, i) => i);
  const label = (n) => (n === e.name ? "★ " : "") + n.replace(/^(l96-sakov|l96-thesis|kolmogorov)-/, "");
  const bars = (align) => uPlot.paths.bars({ size: [0.38, 48], align, gap: 2 });
  const opts = {
    title: s.setup + ": RMSE and CRPS per estimator (lower is better)",
    width: Math.min(Math.max(360, 110 * names.length + 110), 560, window.innerWidth - 60), height: 300,
    scales: { x: { time: false, range: [-0.6, names.length - 0.4] }, y: { range: (u, lo, hi) => [0, hi * 1.1 || 1] } },
    axes: [{ splits: () => xs, values: (u, splits) => splits.map((i) => (Number.isInteger(i) && names[i] ? label(names[i]) : "")), size: 40, grid: { show: false } },
      { label: "state units" }],
    series: [{ label: "estimator", value: (u, v) => (v === null || v === undefined ? "–" : names[v]) },
      { label: "RMSE", stroke: "#1f5fbf", fill: "rgba(31,95,191,0.55)", paths: bars(-1), points: { show: false } },
      { label: "CRPS", stroke: "#d98c00", fill: "rgba(217,140,0,0.55)", paths: bars(1), points: { show: false } }],
    legend: { live: true },
  };
  const data = [xs, names.map((n) => s.results[n].rmse ?? null), names.map((n) => s.results[n].crps ?? null)];
  const wrap = h("div", { class: "chart", "data-kind": "metrics", "data-setup": s.setup });
  target.append(wrap);
  const u = new uPlot(opts, data, wrap);
  u.sbidaKind = "metrics";
  u.sbidaNames = names;
  charts.push(u);
  return u;
}

function calibrationChart(target, e, s, colours) {
  // observed vs nominal coverage of the central credible intervals, per estimator, with the diagonal
  const names = Object.keys(s.results).filter((n) => s.results[n].coverage);
  if (!names.length) return null;
  const levels = s.results[names.includes(e.name) ? e.name : names[0]].coverage.levels;
  const same = names.filter((n) => JSON.stringify(s.results[n].coverage.levels) === JSON.stringify(levels));
  // the diagonal last, drawn over the curves that lie on it
  const series = same.map((n) => ({ label: n, values: s.results[n].coverage.observed, stroke: colours.get(n), points: "line",
    width: n === e.name ? 3 : 1.5 })).concat([{ label: "ideal (observed = nominal)", values: levels, stroke: "#1b1f24", dash: [5, 5], width: 1 }]);
  const data = [levels, ...series.map((x) => x.values)];
  const opts = {
    title: s.setup + ": calibration (observed vs nominal coverage)",
    width: Math.min(560, window.innerWidth - 60), height: 300,
    scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
    axes: [{ label: "nominal level" }, { label: "observed coverage" }],
    series: [{ label: "level" }].concat(series.map((x) => ({ label: x.label, stroke: x.stroke, width: x.width || 1.5, dash: x.dash,
      points: x.points ? { show: true, size: 5, stroke: x.stroke, fill: x.stroke } : { show: false } }))),
  };
  const wrap = h("div", { class: "chart", "data-kind": "calibration", "data-setup": s.setup });
  target.append(wrap);
  const u = new uPlot(opts, data, wrap);
  u.sbidaKind = "calibration";
  charts.push(u);
  return u;
}

async function viewEstimator(name) {
  const e = await api("/v1/estimators/" + encodeURIComponent(name));
  const parts = [h("h1", {}, e.name), h("p", {}, (e.info && e.info.description) || e.kind + " on " + e.preset),
    h("table", { id: "estimator-facts" }, [["kind", e.kind], ["preset", e.preset], ["system", e.system], ["state", shapeText(e)],
      ["state_dim a request may give", rangeText(e.state_dim_range, e.state_dim)],
      ["window", e.window], ["observation rows a request may have", rangeText(e.window_range, e.window)],
      ["operator", JSON.stringify(e.operator)], ["noise_std", JSON.stringify(e.noise_std)],
      ["time index", e.time_index ? e.time_index.min + " … " + e.time_index.max : ""],
      ["cost per request", costCell(e)],
      ["training", e.training ? fmt(e.training.seconds, 0) + " s, " + e.training.steps + " steps" : "none (classical)"],
      ["model file", e.model_file ? e.model_file.file + " (" + e.model_file.digest + ", loaded " +
        new Date(e.model_file.loaded_at * 1000).toISOString() + ")" : "none (built in)"]]
      .map(([k, v]) => h("tr", {}, h("th", {}, k), v instanceof Node && v.tagName === "TD" ? v : h("td", {}, String(v)))))];
  const ev = e.evaluation;
  const plots = [];
  if (ev && ev.setups) {
    parts.push(h("h2", {}, "Shipped evaluation"),
      h("p", { class: "muted" }, "From " + ev.source + ": each setup ran every estimator listed on the same test cases. " +
        "Bars: RMSE of the posterior mean and CRPS (lower is better; ★ marks this estimator). Calibration: for each nominal " +
        "level of a central credible interval, the fraction of true state components inside it; a calibrated estimator follows " +
        "the diagonal, below it is overconfident, above it underconfident."));
    for (const s of ev.setups) {
      const box = h("div", { class: "setup-charts" });
      parts.push(h("h3", {}, s.setup + " — " + JSON.stringify(s.operator) + ", σ = " + s.noise_std +
        ", W = " + s.window + ", " + s.cases + " cases × " + s.samples + " samples"),
      box,
      h("table", {}, h("tr", {}, ["estimator", "RMSE", "spread", "CRPS", "coverage error", "s / request (one thread)", "requests at once", "settings"].map((t) => h("th", {}, t))),
        Object.entries(s.results).map(([n, r]) => h("tr", { class: n === e.name ? "this" : "" }, h("td", {}, n),
          ["rmse", "spread", "crps", "coverage_max_abs_error", "seconds_per_request", "threads"].map((k) => h("td", { class: "num" }, r[k] === null || r[k] === undefined ? "–" : fmt(r[k]))),
          h("td", {}, settingsText(r.params, r.settings))))));
      plots.push([box, s]);
    }
  }
  parts.push(h("h2", {}, "Everything the daemon says"), h("pre", {}, JSON.stringify(e, null, 2)),
    h("p", {}, h("a", { href: "#/submit/" + encodeURIComponent(e.name) }, "Submit a window to " + e.name)));
  setView(...parts);
  // one colour per estimator on the whole page, this estimator's first
  const colours = new Map([[e.name, PALETTE[0]]]);
  for (const [, s] of plots)
    for (const n of Object.keys(s.results)) if (!colours.has(n)) colours.set(n, PALETTE[colours.size % PALETTE.length]);
  for (const [box, s] of plots) {
    metricChart(box, e, s);
    if (!calibrationChart(box, e, s, colours)) box.append(h("p", { class: "muted" }, "No coverage curve in this evaluation."));
  }
}

function jobRow(j) {
  return h("tr", { "data-id": j.id },
    h("td", {}, h("a", { href: "#/jobs/" + j.id }, j.id.slice(0, 12))),
    h("td", {}, j.estimator), h("td", { class: "state-" + j.state }, j.state),
    h("td", { class: "num" }, j.state === "running" ? Math.round(100 * (j.progress || 0)) + "%" : ""),
    h("td", { class: "num" }, j.time_index), h("td", { class: "num" }, j.n_samples),
    h("td", {}, when(j.created_at)), h("td", { class: "num" }, j.attempts));
}

async function viewJobs(query) {
  const gen = viewGen;
  const state = query.get("state") || "";
  const estimator = query.get("estimator") || "";
  const page = query.get("page") || "";
  const ests = await api("/v1/estimators");
  const sel = (id, options, value) => h("select", { id, onchange: () => go() },
    options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));
  const go = (pageToken) => {
    const q = new URLSearchParams();
    const s = $("#f-state").value, e = $("#f-estimator").value;
    if (s) q.set("state", s);
    if (e) q.set("estimator", e);
    if (pageToken) q.set("page", pageToken);
    location.hash = "#/jobs" + (q.toString() ? "?" + q : "");
  };
  const table = h("table", { id: "jobs" });
  const pager = h("p", {});
  setView(h("h1", {}, "Jobs"),
    h("div", { class: "filters" },
      h("label", {}, "state", sel("f-state", [["", "any"], ["queued", "queued"], ["running", "running"],
        ["succeeded", "succeeded"], ["failed", "failed"], ["cancelled", "cancelled"]], state)),
      h("label", {}, "estimator", sel("f-estimator", [["", "any"]].concat(ests.items.map((e) => [e.name, e.name])), estimator)),
      h("span", { class: "muted", id: "jobs-updated" }, "")),
    table, pager);
  const refresh = async () => {
    const q = new URLSearchParams({ limit: "50" });
    if (state) q.set("state", state);
    if (estimator) q.set("estimator", estimator);
    if (page) q.set("page_token", page);
    try {
      const list = await api("/v1/assimilations?" + q);
      table.replaceChildren(
        h("tr", {}, ["job", "estimator", "state", "progress", "time", "samples", "created", "attempts"].map((t) => h("th", {}, t))),
        ...(list.items.length ? list.items.map(jobRow) : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no jobs"))]));
      pager.replaceChildren(page ? h("a", { href: "#/jobs" }, "first page") : "", " ",
        list.next_page_token ? h("button", { type: "button", onclick: () => go(list.next_page_token) }, "next page") : "");
      $("#jobs-updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      table.replaceChildren(h("tr", {}, h("td", {}, problemBox(err))));
    }
    if (gen === viewGen) timer = setTimeout(refresh, 2000);
  };
  await refresh();
}

function obsPositions(op, n) {
  // state components the observations of a 1D operator sit on, or null
  if (!op || op.type === "identity") return [...Array(n).keys()];
  if (op.type === "subsample") return [...Array(n).keys()].map((i) => (op.offset || 0) + i * (op.stride || 1));
  if (op.type === "stations" && Array.isArray(op.indices)) return op.indices;
  return null;
}

async function downloadSamples(id) {
  const res = await api("/v1/assimilations/" + id + "/samples", { raw: true, headers: { Accept: "application/x-npy" } });
  const blob = await res.blob();
  const a = h("a", { href: URL.createObjectURL(blob), download: id + ".npy" });
  document.body.append(a);
  a.click();
  a.remove();
}

async function renderResult(container, job, est) {
  let r = job.result;
  let req = job.request;
  if (r && Array.isArray(r.results)) {
    // a list of windows in one job: show the first window's result
    container.append(h("p", {}, r.windows + " windows in this job; window 0 shown (the samples download is [B, S, ...])"));
    r = r.results[0];
    if (req && Array.isArray(req.observations)) req = Object.assign({}, req, { observations: req.observations[0] });
  }
  const shape = est && est.state_shape ? est.state_shape : [1, 1, r.mean.length];
  const [C, H, W] = shape.length === 3 ? shape : [1, 1, r.mean.length];
  const qs = Object.keys(r.quantiles || {}).map(Number).sort((a, b) => a - b);
  if (H === 1) {
    const xs = [...Array(r.mean.length).keys()];
    const series = [];
    let band = "mean ± 2 std";
    if (qs.length >= 2) {
      const lo = qs[0], hi = qs[qs.length - 1];
      band = "quantiles " + lo + "–" + hi;
      series.push({ label: "q" + lo, values: r.quantiles[String(lo)] || r.quantiles[Object.keys(r.quantiles).find((k) => Number(k) === lo)], stroke: "rgba(31,95,191,0.45)" });
      series.push({ label: "q" + hi, values: r.quantiles[String(hi)] || r.quantiles[Object.keys(r.quantiles).find((k) => Number(k) === hi)], stroke: "rgba(31,95,191,0.45)" });
    } else {
      series.push({ label: "mean - 2 std", values: r.mean.map((m, i) => m - 2 * r.std[i]), stroke: "rgba(31,95,191,0.45)" });
      series.push({ label: "mean + 2 std", values: r.mean.map((m, i) => m + 2 * r.std[i]), stroke: "rgba(31,95,191,0.45)" });
    }
    series[1].band = [2, 1];
    series.push({ label: "posterior mean", values: r.mean, stroke: "#1f5fbf" });
    if (req && Array.isArray(req.observations)) {
      const last = req.observations[req.observations.length - 1];
      const pos = Array.isArray(last) ? obsPositions(req.operator, last.length) : null;
      if (pos) {
        const y = xs.map(() => null);
        pos.forEach((p, i) => { if (p >= 0 && p < y.length && last[i] !== null) y[p] = last[i]; });
        series.push({ label: "observations (last time)", values: y, stroke: "#b3261e", points: true });
      }
    }
    container.append(h("h2", {}, "Posterior at time " + job.time_index),
      h("p", { class: "muted" }, "Band: " + band + ". Observations are drawn when the operator maps them to components (identity, subsample, stations)."));
    lineChart(container, job.estimator + " — " + band, xs, series);
  } else {
    container.append(h("h2", {}, "Posterior fields at time " + job.time_index));
    let sample = null;
    try {
      const res = await api("/v1/assimilations/" + job.id + "/samples", { raw: true, headers: { Accept: "application/x-npy" } });
      sample = parseNpy(await res.arrayBuffer());
    } catch (err) {
      container.append(problemBox(err));
    }
    const HW = H * W;
    for (let c = 0; c < C; c++) {
      const figs = [heatmap(r.mean.slice(c * HW, (c + 1) * HW), H, W, "mean, channel " + c, true),
        heatmap(r.std.slice(c * HW, (c + 1) * HW), H, W, "std, channel " + c, false)];
      if (sample) figs.push(heatmap(Array.from(sample.data.slice(c * HW, (c + 1) * HW)), H, W, "sample 0, channel " + c, true));
      container.append(h("div", { class: "heatmaps" }, figs));
    }
  }
  const rest = Object.assign({}, r);
  delete rest.mean; delete rest.std; delete rest.quantiles;
  container.append(h("h2", {}, "Diagnostics"), h("pre", { id: "diagnostics" }, JSON.stringify(rest, null, 2)),
    h("button", { type: "button", id: "download", onclick: () => downloadSamples(job.id).catch((e) => container.append(problemBox(e))) },
      "Download samples (.npy)"));
}

async function viewJob(id) {
  const gen = viewGen;
  const head = h("div", {});
  const body = h("div", {});
  setView(h("h1", {}, "Job ", h("code", {}, id)), head, body);
  let est = null;
  const refresh = async () => {
    let job;
    try {
      job = await api("/v1/assimilations/" + encodeURIComponent(id) + "?include=request");
    } catch (err) {
      head.replaceChildren(problemBox(err));
      return;
    }
    head.replaceChildren(h("table", {}, [["state", h("span", { id: "job-state", class: "state-" + job.state }, job.state)],
      ["estimator", h("a", { href: "#/estimators/" + encodeURIComponent(job.estimator) }, job.estimator)],
      ["progress", Math.round(100 * (job.progress || 0)) + "%"], ["time index", job.time_index],
      ["samples", job.n_samples], ["created", when(job.created_at)], ["started", when(job.started_at)],
      ["finished", when(job.finished_at)], ["attempts", job.attempts]]
      .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))),
      FINAL.has(job.state) ? "" : h("button", { type: "button", onclick: () => api("/v1/assimilations/" + id + "/cancel", { method: "POST" }).then(refresh, (e) => head.append(problemBox(e))) }, "Cancel"));
    if (job.error) body.replaceChildren(problemBox(new ApiError(0, job.error)));
    if (!FINAL.has(job.state)) { if (gen === viewGen) timer = setTimeout(refresh, 1000); return; }
    if (job.state === "succeeded" && job.result) {
      if (!est) est = await api("/v1/estimators/" + encodeURIComponent(job.estimator)).catch(() => null);
      body.replaceChildren();
      await renderResult(body, job, est);
    }
  };
  await refresh();
}

function template(e) {
  const n = e.state_dim;
  const W = typeof e.window === "number" ? e.window : 5;
  const obs = [...Array(W)].map(() => [...Array(n)].map(() => 0.0));
  return {
    estimator: e.name, time_index: Math.max(W - 1, e.time_index ? e.time_index.min : 0),
    observations: obs, operator: e.operator && typeof e.operator === "object" ? e.operator : { type: "identity" },
    noise_std: typeof e.noise_std === "number" ? e.noise_std : 1.0, n_samples: 64, seed: 1,
  };
}

async function viewSubmit(name) {
  const ests = await api("/v1/estimators");
  const chosen = ests.items.find((e) => e.name === name) || ests.items[0];
  const ta = h("textarea", { id: "request", spellcheck: "false" });
  const out = h("div", { id: "submit-result" });
  const pick = h("select", { id: "s-estimator", onchange: () => { location.hash = "#/submit/" + encodeURIComponent(pick.value); } },
    ests.items.map((e) => h("option", { value: e.name, selected: e === chosen }, e.name)));
  const file = h("input", { type: "file", id: "npy-file", accept: ".npy" });
  file.addEventListener("change", async () => {
    out.replaceChildren();
    try {
      const arr = parseNpy(await file.files[0].arrayBuffer());
      if (arr.shape.length !== 2) throw new Error("expected a 2D array [window][observations], got shape (" + arr.shape + ")");
      const [Wn, m] = arr.shape;
      const req = JSON.parse(ta.value);
      req.observations = [...Array(Wn)].map((_, w) => Array.from(arr.data.slice(w * m, (w + 1) * m), (v) => (Number.isNaN(v) ? null : v)));
      ta.value = JSON.stringify(req, null, 1);
    } catch (err) {
      out.replaceChildren(problemBox(err));
    }
  });
  ta.value = JSON.stringify(template(chosen), null, 1);
  const send = async () => {
    out.replaceChildren();
    let body;
    try { body = JSON.parse(ta.value); } catch (err) { out.replaceChildren(problemBox(new Error("not JSON: " + err.message))); return; }
    try {
      const job = await api("/v1/assimilations", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      location.hash = "#/jobs/" + job.id;
    } catch (err) {
      out.replaceChildren(problemBox(err));
    }
  };
  setView(h("h1", {}, "Submit a window"),
    h("div", { class: "filters" }, h("label", {}, "estimator", pick), h("label", {}, "observations from .npy [W, n_obs] (NaN = missing)", file)),
    h("p", { class: "muted" }, "The request as JSON (see /openapi.json, AssimilationRequest). The template observes zeros; paste your window or load a .npy."),
    ta, h("p", {}, h("button", { type: "button", id: "submit", onclick: send }, "Submit")), out);
}

/* ---- streams ------------------------------------------------------------ */

const CHART_CYCLES = 2000;  // the stream chart reads at most this many newest cycles

function opText(op) {
  if (op === undefined) return "the estimator's";
  return typeof op === "string" ? op : JSON.stringify(op);
}

function cycleCell(c) {
  if (!c) return [h("td", { class: "muted" }, "none yet"), h("td", {}, "")];
  return [h("td", { class: "num nowrap" }, h("a", { href: "#/jobs/" + c.job }, "t = " + c.time_index)),
    h("td", { class: "state-" + c.state }, c.state)];
}

function streamRow(s) {
  const c = s.config || {};
  return h("tr", { "data-id": s.id },
    h("td", {}, h("a", { href: "#/streams/" + s.id }, s.id.slice(0, 12))),
    h("td", { class: "nowrap" }, c.estimator), h("td", { class: "code" }, opText(c.operator)),
    h("td", {}, typeof c.noise_std === "number" ? fmt(c.noise_std) : JSON.stringify(c.noise_std)),
    h("td", { class: "num" }, c.window), h("td", { class: "num" }, c.n_samples),
    ...cycleCell(s.last_cycle), h("td", { class: "nowrap" }, when(s.created_at)));
}

async function viewStreams(query) {
  const gen = viewGen;
  const page = query.get("page") || "";
  const table = h("table", { id: "streams" });
  const pager = h("p", {});
  setView(h("h1", {}, "Streams"),
    h("p", { class: "muted" }, "Analysis-forecast cycles kept by the daemon: a stream is a stored configuration, " +
      "each cycle one time's observations, assimilated with the forecast of the previous analysis as background " +
      "(POST /v1/streams, then POST /v1/streams/{id}/cycles per time). Newest first. ",
      h("span", { id: "streams-updated" }, "")),
    table, pager);
  const refresh = async () => {
    const q = new URLSearchParams({ page_size: "50" });
    if (page) q.set("page_token", page);
    try {
      const list = await api("/v1/streams?" + q);
      table.replaceChildren(
        h("tr", {}, ["stream", "estimator", "operator", "noise", "window", "samples", "last cycle", "state", "created"].map((t) => h("th", {}, t))),
        ...(list.items.length ? list.items.map(streamRow) : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "no streams"))]));
      pager.replaceChildren(page ? h("a", { href: "#/streams" }, "first page") : "", " ",
        list.next_page_token ? h("button", { type: "button", onclick: () => { location.hash = "#/streams?page=" + encodeURIComponent(list.next_page_token); } }, "next page") : "");
      $("#streams-updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    } catch (err) {
      table.replaceChildren(h("tr", {}, h("td", {}, problemBox(err))));
    }
    if (gen === viewGen) timer = setTimeout(refresh, 2000);
  };
  await refresh();
}

async function streamCycles(id, max) {
  // every cycle (newest first, without the arrays), up to max
  const out = [];
  let token = "";
  while (out.length < max) {
    const q = new URLSearchParams({ page_size: "100", arrays: "false" });
    if (token) q.set("page_token", token);
    const page = await api("/v1/streams/" + encodeURIComponent(id) + "/cycles?" + q);
    out.push(...page.items);
    token = page.next_page_token;
    if (!token) break;
  }
  return out.slice(0, max);
}

function cycleRow(c) {
  return h("tr", { "data-t": c.time_index },
    h("td", { class: "num" }, c.time_index), h("td", { class: "state-" + c.state }, c.state),
    h("td", {}, c.state === "deleted" ? h("span", { class: "muted" }, c.job.slice(0, 12)) : h("a", { href: "#/jobs/" + c.job }, c.job.slice(0, 12))),
    h("td", { class: "num" }, c.spread === undefined ? "" : fmt(c.spread)),
    h("td", { class: "num" }, c.obs_rmse === undefined ? "" : c.obs_rmse === null ? "–" : fmt(c.obs_rmse)),
    h("td", { class: "num" }, c.obs_count === undefined ? "" : c.obs_count));
}

async function viewStream(id, query) {
  const gen = viewGen;
  const page = query.get("page") || "";
  const path = "/v1/streams/" + encodeURIComponent(id);
  const s = await api(path);
  if (gen !== viewGen) return;
  const c = s.config || {};
  const sigma = typeof c.noise_std === "number" ? c.noise_std : null;
  const out = h("div", {});
  const del = async () => {
    if (!confirm("Delete stream " + id + "? Its cycle records go; its jobs stay (as jobs).")) return;
    try {
      await api(path, { method: "DELETE" });
      location.hash = "#/streams";
    } catch (err) {
      out.replaceChildren(problemBox(err));
    }
  };
  const chartBox = h("div", { id: "stream-chart" });
  const table = h("table", { id: "cycles" });
  const pager = h("p", {});
  const stamp = h("span", { class: "muted", id: "stream-updated" }, "");
  setView(h("h1", {}, "Stream ", h("code", {}, id)),
    h("table", { id: "stream-config" }, [
      ["estimator", h("a", { href: "#/estimators/" + encodeURIComponent(c.estimator) }, c.estimator)],
      ["operator", h("span", { class: "code" }, opText(c.operator))],
      ["noise_std (σ)", typeof c.noise_std === "number" ? fmt(c.noise_std) : JSON.stringify(c.noise_std)],
      ["window", c.window + (c.window === 1 ? " observation row" : " observation rows") + " per cycle"], ["samples", c.n_samples],
      ["seed", c.seed + " (cycle t uses seed + t)"],
      ["params", c.params ? JSON.stringify(c.params) : "defaults"],
      ["state_dim", c.state_dim === undefined ? "the estimator's" : c.state_dim],
      ["created", when(s.created_at)]]
      .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))),
    h("p", {}, h("button", { type: "button", id: "delete-stream", onclick: del }, "Delete stream"), " ",
      h("span", { class: "muted" }, "Deleting removes the stream and its cycle records; the cycles' jobs stay.")),
    out,
    h("h2", {}, "Cycles over time"),
    h("p", { class: "muted", id: "rmse-note" },
      h("strong", {}, "What the RMSE is measured against: "), "the observations each cycle assimilated (its own row y_t, " +
      "missing values left out), with the analysis mean mapped into observation space by the stream's operator: " +
      "sqrt(mean (H(mean) − y_t)²). The daemon has no truth, so this is not the error of the state: the observations " +
      "carry noise of std σ" + (sigma !== null ? " = " + fmt(sigma) + " (dashed line)" : "") + " and this analysis " +
      "already used them, so a good analysis sits near σ, not near 0, and a small RMSE here does not mean a small " +
      "error of the state; values well above σ mean the analysis is far from its own observations. Cycles without " +
      "observations have none. Spread: the mean over state components of the analysis std (state units)."),
    chartBox,
    h("h2", {}, "Cycles"), h("p", { class: "muted" }, "Newest first; each links to its job (the posterior, diagnostics, samples). ", stamp),
    table, pager);
  let chart = null, lastSig = null;
  const draw = (cycles) => {
    const asc = cycles.slice().reverse();
    if (chart) { chart.destroy(); charts = charts.filter((u) => u !== chart); chart = null; }
    chartBox.replaceChildren();
    const done = asc.filter((x) => x.spread !== undefined);
    if (!done.length) { chartBox.append(h("p", { class: "muted" }, "No finished cycle yet.")); return; }
    const xs = done.map((x) => x.time_index);
    const dots = xs.length <= 80 ? "line" : false;
    const series = [
      { label: "spread (mean analysis std)", values: done.map((x) => x.spread), stroke: "#1f5fbf", points: dots },
      { label: "RMSE vs. this cycle's observations", values: done.map((x) => (x.obs_rmse === null ? null : x.obs_rmse)), stroke: "#b3261e", points: dots }];
    if (sigma !== null) series.push({ label: "observation noise σ", values: xs.map(() => sigma), stroke: "#5c6670", dash: [6, 4] });
    chart = lineChart(chartBox, "Per cycle: analysis spread and observation-space RMSE" +
      (cycles.length >= CHART_CYCLES ? " (newest " + CHART_CYCLES + " cycles)" : ""), xs, series,
    { xLabel: "time index", yLabel: "state / observation units", xName: "time index" });
  };
  const refresh = async () => {
    try {
      const now = await api(path);
      const lc = now.last_cycle;
      const sig = lc ? lc.time_index + "/" + lc.state + "/" + lc.job : "";
      if (sig !== lastSig) {
        lastSig = sig;
        const cycles = await streamCycles(id, CHART_CYCLES);
        if (gen !== viewGen) return;
        draw(cycles);
        const q = new URLSearchParams({ page_size: "50", arrays: "false" });
        if (page) q.set("page_token", page);
        const list = await api(path + "/cycles?" + q);
        table.replaceChildren(
          h("tr", {}, ["time index", "state", "job", "spread", "RMSE vs. obs", "observed values"].map((t) => h("th", {}, t))),
          ...(list.items.length ? list.items.map(cycleRow) : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "no cycles yet"))]));
        pager.replaceChildren(page ? h("a", { href: "#/streams/" + id }, "newest cycles") : "", " ",
          list.next_page_token ? h("button", { type: "button", onclick: () => { location.hash = "#/streams/" + id + "?page=" + encodeURIComponent(list.next_page_token); } }, "older cycles") : "");
      }
      stamp.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    } catch (err) {
      out.replaceChildren(problemBox(err));
      if (err.status === 404) return;  // deleted meanwhile: stop polling
    }
    if (gen === viewGen) timer = setTimeout(refresh, 2000);
  };
  await refresh();
}

async function route() {
  leaveView();
  const [path, qs] = (location.hash.slice(1) || "/estimators").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(qs || "");
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  try {
    if (parts[0] === "jobs" && parts[1]) await viewJob(parts[1]);
    else if (parts[0] === "jobs") await viewJobs(query);
    else if (parts[0] === "submit") await viewSubmit(parts[1]);
    else if (parts[0] === "streams" && parts[1]) await viewStream(parts[1], query);
    else if (parts[0] === "streams") await viewStreams(query);
    else if (parts[0] === "estimators" && parts[1]) await viewEstimator(parts[1]);
    else await viewEstimators();
  } catch (err) {
    setView(problemBox(err));
  }
}

function init() {
  // the current view's charts, for tests and the curious (read-only use)
  window.sbida = { get charts() { return charts; } };
  $("#token-form").addEventListener("submit", () => {
    const t = $("#token-input").value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    tokenDone(!!t);
  });
  $("#token-dialog").addEventListener("cancel", () => tokenDone(false));
  $("#token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#token-dialog").close();
    tokenDone(false);
  });
  $("#token-button").addEventListener("click", () => askToken().then((ok) => ok && route()));
  fetch("/openapi.json").then((r) => r.json()).then((b) => {
    if (b && b.info && b.info.version) $("#version").textContent = "API " + b.info.version;
  }).catch(() => {});
  window.addEventListener("hashchange", route);
  route();
}

init();
