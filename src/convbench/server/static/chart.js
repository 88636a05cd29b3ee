// Small SVG charts for convbench serve (no library): line charts with optional ± bands and
// scatter plots with a Pareto front. Written for this app; MIT like the rest of convbench.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

// About `count` round tick values covering [lo, hi].
function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) ticks.push(Math.pow(10, e));
  return ticks.filter(t => t >= lo / 1.0001 && t <= hi * 1.0001);
}

function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toPrecision(3) + "G";
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  if (a !== 0 && a < 1e-3) return v.toExponential(0);
  return String(+v.toPrecision(4));
}

// opts: {title, xlabel, ylabel, width, height, logx, series: [{label, colour, points: [[x, y]],
// band: [[x, lo, hi]], dashed, dots}], scatter: [{label, colour, x, y, ring}], front: [[x, y]]}
function drawChart(container, opts) {
  // The legend gets rows of its own below the x-axis label (3 entries a row), so a long
  // legend makes the chart taller instead of running into the label.
  const legend = (opts.series || []).filter(s => s.label && !s.noLegend);
  const legendRows = Math.ceil(legend.length / 3);
  const W = opts.width || 460, H = (opts.height || 280) + 16 * Math.max(0, legendRows - 1);
  const M = {l: 58, r: 14, t: opts.title ? 26 : 12, b: 46 + 16 * legendRows};
  container.textContent = "";
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                            "aria-label": opts.title || "chart", class: "chart"}, container);
  const xs = [], ys = [];
  for (const s of opts.series || []) {
    for (const p of s.points) if (p[1] != null && isFinite(p[1])) { xs.push(p[0]); ys.push(p[1]); }
    for (const b of s.band || []) if (b[1] != null && b[2] != null) { ys.push(b[1], b[2]); }
  }
  for (const p of opts.scatter || []) if (p.x != null && p.y != null) { xs.push(p.x); ys.push(p.y); }
  if (opts.title) svgEl("text", {x: M.l, y: 16, class: "chart-title"}, svg).textContent = opts.title;
  if (!xs.length) {
    svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty"}, svg)
      .textContent = opts.empty || "no data yet";
    return svg;
  }
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const logx = opts.logx && x0 > 0;
  if (x0 === x1) { x0 -= logx ? x0 / 2 : 1; x1 += logx ? x1 : 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const padY = (y1 - y0) * 0.06; y0 -= padY; y1 += padY;
  if (opts.scatter && !logx) { const padX = (x1 - x0) * 0.08; x0 -= padX; x1 += padX; }
  if (opts.scatter && logx) { x0 /= 1.3; x1 *= 1.3; }
  const fx = logx ? (v => Math.log10(v)) : (v => v);
  const X = v => M.l + (fx(v) - fx(x0)) / (fx(x1) - fx(x0)) * (W - M.l - M.r);
  const Y = v => H - M.b - (v - y0) / (y1 - y0) * (H - M.t - M.b);
  const grid = svgEl("g", {class: "chart-grid"}, svg);
  for (const t of niceTicks(y0, y1, 5)) {
    svgEl("line", {x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t)}, grid);
    svgEl("text", {x: M.l - 6, y: Y(t) + 4, "text-anchor": "end"}, grid).textContent = fmtTick(t);
  }
  let xticks = logx ? logTicks(x0, x1) : niceTicks(x0, x1, 6);
  if (opts.integerX) xticks = xticks.filter(t => Number.isInteger(t));  // epochs
  for (const t of xticks) {
    svgEl("line", {x1: X(t), x2: X(t), y1: M.t, y2: H - M.b, class: "v"}, grid);
    svgEl("text", {x: X(t), y: H - M.b + 16, "text-anchor": "middle"}, grid).textContent = fmtTick(t);
  }
  svgEl("text", {x: (M.l + W - M.r) / 2, y: H - M.b + 32, "text-anchor": "middle", class: "chart-label"}, svg)
    .textContent = opts.xlabel || "";
  svgEl("text", {x: 14, y: (M.t + H - M.b) / 2, "text-anchor": "middle", class: "chart-label",
                 transform: `rotate(-90 14 ${(M.t + H - M.b) / 2})`}, svg).textContent = opts.ylabel || "";
  for (const s of opts.series || []) {
    if (s.band && s.band.length) {
      const ok = s.band.filter(b => b[1] != null && b[2] != null);
      if (ok.length > 1) {
        const d = ok.map((b, i) => `${i ? "L" : "M"}${X(b[0])},${Y(b[2])}`).join("") +
          ok.slice().reverse().map(b => `L${X(b[0])},${Y(b[1])}`).join("") + "Z";
        svgEl("path", {d, fill: s.colour, opacity: 0.15, stroke: "none"}, svg);
      }
    }
    const pts = s.points.filter(p => p[1] != null && isFinite(p[1]));
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    svgEl("path", {d, fill: "none", stroke: s.colour, "stroke-width": s.width || 1.8,
                   "stroke-dasharray": s.dashed ? "5 4" : "none", class: "series",
                   "data-label": s.label, "data-points": pts.length}, svg);
    if (s.dots || pts.length < 40) {
      for (const p of pts) svgEl("circle", {cx: X(p[0]), cy: Y(p[1]), r: 2.6, fill: s.colour, class: "point"}, svg);
    }
  }
  for (const v of opts.vlines || []) {
    if (v.x == null || v.x < x0 || v.x > x1) continue;
    svgEl("line", {x1: X(v.x), x2: X(v.x), y1: M.t, y2: H - M.b, stroke: "#1f2328", "stroke-dasharray": "3 3", class: "vline"}, svg);
    svgEl("text", {x: X(v.x) + 4, y: M.t + 12, class: "dot-label"}, svg).textContent = v.label;
  }
  if (opts.front && opts.front.length) {
    const d = opts.front.map((p, i) => `${i ? "L" : "M"}${X(p[0])},${Y(p[1])}`).join("");
    svgEl("path", {d, fill: "none", stroke: "#59636e", "stroke-dasharray": "5 4", class: "front"}, svg);
  }
  for (const p of opts.scatter || []) {
    if (p.x == null || p.y == null) continue;
    svgEl("circle", {cx: X(p.x), cy: Y(p.y), r: 5, fill: p.colour, class: "dot", "data-label": p.label}, svg);
    if (p.ring) svgEl("circle", {cx: X(p.x), cy: Y(p.y), r: 9, fill: "none", stroke: "#1f2328", class: "ring"}, svg);
    svgEl("text", {x: X(p.x) + 8, y: Y(p.y) - 8, class: "dot-label"}, svg).textContent = p.label;
  }
  legend.forEach((s, i) => {
    const col = i % 3, row = Math.floor(i / 3);
    const lx = M.l + col * ((W - M.l) / 3), ly = H - M.b + 52 + row * 16;
    svgEl("line", {x1: lx, x2: lx + 16, y1: ly - 4, y2: ly - 4, stroke: s.colour, "stroke-width": 2.5,
                   "stroke-dasharray": s.dashed ? "4 3" : "none"}, svg);
    svgEl("text", {x: lx + 20, y: ly, class: "legend"}, svg).textContent = s.label;
  });
  return svg;
}

// Parallel coordinates of a search: one axis per parameter (choices evenly spaced, ranges
// linear or log) and one for the score; a line per trial, coloured by its score.
// data: {params: [{name, choices, low, high, log}], trials: [{id, status, score, values}]}
function drawParallel(container, data) {
  const key = v => Array.isArray(v) ? v.map(x => +(+x).toPrecision(3)).join("–") : String(v);
  const axes = data.params.map(p => ({name: p.name, choices: p.choices ? p.choices.map(key) : null,
                                      low: p.low, high: p.high, log: p.log}));
  const scores = data.trials.map(t => t.score).filter(v => v != null);
  axes.push({name: "score", low: scores.length ? Math.min(...scores) : 0, high: scores.length ? Math.max(...scores) : 1});
  const W = Math.max(680, 160 * axes.length), H = 320, M = {l: 60, r: 60, t: 34, b: 40};
  container.textContent = "";
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart parallel",
                            role: "img", "aria-label": "parallel coordinates"}, container);
  svgEl("text", {x: M.l, y: 16, class: "chart-title"}, svg).textContent =
    "One line per configuration: parameters → score (colour: score)";
  const X = i => M.l + i * (W - M.l - M.r) / Math.max(1, axes.length - 1);
  const span = H - M.t - M.b;
  function Y(axis, value) {
    if (value == null) return null;
    if (axis.choices) {
      const i = axis.choices.indexOf(key(value));
      return i < 0 ? null : M.t + (axis.choices.length === 1 ? span / 2 : span - i * span / (axis.choices.length - 1));
    }
    let lo = axis.low, hi = axis.high, v = +value;
    if (axis.log && lo > 0 && v > 0) { lo = Math.log10(lo); hi = Math.log10(hi); v = Math.log10(v); }
    return hi === lo ? M.t + span / 2 : M.t + span - (v - lo) / (hi - lo) * span;
  }
  const s0 = axes[axes.length - 1].low, s1 = axes[axes.length - 1].high;
  const colour = v => {
    if (v == null) return "#afb8c1";
    const f = s1 === s0 ? 1 : (v - s0) / (s1 - s0);
    return `hsl(${Math.round(10 + 120 * f)}, 70%, 42%)`;
  };
  for (const t of data.trials) {
    const pts = axes.map((a, i) => [X(i), Y(a, a.name === "score" ? t.score : t.values[a.name])]);
    const d = pts.filter(p => p[1] != null).map((p, i) => `${i ? "L" : "M"}${p[0]},${p[1]}`).join("");
    svgEl("path", {d, fill: "none", stroke: colour(t.score), "stroke-width": 1.8, opacity: 0.85,
                   class: "trial", "data-id": t.id, "data-status": t.status}, svg);
  }
  axes.forEach((a, i) => {
    svgEl("line", {x1: X(i), x2: X(i), y1: M.t, y2: H - M.b, stroke: "#57606a"}, svg);
    svgEl("text", {x: X(i), y: H - M.b + 18, "text-anchor": "middle", class: "chart-label"}, svg).textContent = a.name;
    const ticks = a.choices ? a.choices : [a.low, a.high];
    for (const t of ticks) {
      const y = Y(a, t);
      if (y == null) continue;
      svgEl("text", {x: X(i) + 5, y: y + 4, class: "dot-label"}, svg).textContent =
        a.choices ? t : (a.name === "score" ? (t * 100).toFixed(1) + " %" : fmtTick(+t));
    }
  });
  return svg;
}

window.convbenchChart = {drawChart, drawParallel, niceTicks};
