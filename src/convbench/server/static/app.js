// convbench serve: the pages (playground, runs, run, compare) drawn from the JSON API.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || sessionStorage.getItem("convbench-token") || "";
if (TOKEN) sessionStorage.setItem("convbench-token", TOKEN);
const $ = (sel, root) => (root || document).querySelector(sel);
const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
const app = $("#app");
const live = {handlers: [], current: null};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;  // only for HTML the server built (report blocks)
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

function link(path, extra) {
  const q = new URLSearchParams(extra || "");
  if (TOKEN) q.set("token", TOKEN);
  const s = q.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

async function api(path, body) {
  const opts = {headers: {"X-Convbench-Token": TOKEN}};
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({error: `HTTP ${res.status}`}));
  if (!res.ok && res.status !== 422) throw new Error(data.error || `HTTP ${res.status}`);
  return {status: res.status, data};
}

function setUrl(values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== "" && v != null) q.set(k, v);
  if (TOKEN) q.set("token", TOKEN);
  history.replaceState(null, "", `${location.pathname}?${q.toString()}`);
}

// ----- formatting ---------------------------------------------------------------------------
const pct = v => v == null ? "—" : (v * 100).toFixed(1) + " %";
function count(v) {
  if (v == null) return "—";
  for (const [d, s] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (Math.abs(v) >= d) return +(v / d).toPrecision(3) + " " + s;
  return String(v);
}
function secs(v) {
  if (v == null || !isFinite(v)) return "—";
  if (v >= 3600) return (v / 3600).toFixed(1) + " h";
  if (v >= 60) return (v / 60).toFixed(1) + " min";
  return v.toFixed(1) + " s";
}
const when = t => t ? t.replace("T", " ").slice(0, 19) : "—";
const statusBadge = s => h("span", {class: `status ${s}`, "data-status": s}, s);

async function copyText(text, note) {
  try { await navigator.clipboard.writeText(text); }
  catch (e) {
    const ta = h("textarea", {}, text); document.body.append(ta); ta.select();
    document.execCommand("copy"); ta.remove();
  }
  if (note) { note.textContent = "copied"; setTimeout(() => note.textContent = "", 1500); }
}

// ----- live updates (one EventSource per page) ----------------------------------------------
function connectLive() {
  const state = $("#live-state");
  const es = new EventSource(link("/api/events"));
  es.onopen = () => { state.textContent = "● live"; state.className = "live on"; };
  es.onerror = () => { state.textContent = "○ reconnecting"; state.className = "live"; };
  es.onmessage = ev => {
    const snap = JSON.parse(ev.data);
    const previous = live.current;
    live.current = snap;
    for (const fn of live.handlers) fn(snap, previous);
  };
}
const onLive = fn => live.handlers.push(fn);

// ================================ playground ==================================================
const SECTIONS = [
  ["Data", ["data.dataset", "data.data_dir", "data.train_limit", "data.test_limit",
            "data.val_fraction", "data.image_size", "data.channels"]],
  ["Model", ["model.name", "model.blocks", "model.base_filters", "model.convs_per_block",
             "model.kernel_size", "model.activation", "model.init", "model.batch_norm",
             "model.dropout", "model.dense_layers", "model.dense_units"]],
  ["Optimiser", ["optim.name", "optim.lr", "optim.momentum", "optim.weight_decay", "optim.grad_clip"]],
  ["Schedule", ["schedule.name", "schedule.max_lr", "schedule.min_lr", "schedule.cycle_epochs",
                "schedule.warmup_epochs", "schedule.milestones", "schedule.gamma", "schedule.bounds"]],
  ["Augmentation", ["data.augment.preset", "data.augment.crop_padding", "data.augment.hflip",
                    "data.augment.vflip", "data.augment.rotate_deg", "data.augment.erase_p"]],
  ["Training", ["train.epochs", "train.batch_size", "train.seed", "name"]],
];
const SLIDERS = {"model.blocks": [1, 6, 1], "model.base_filters": [4, 128, 4], "train.epochs": [1, 50, 1]};

function literals(type) {
  // '"a" | "b"', and 'bool | "auto"' (train.amp…): a choice among the names (and true/false).
  const parts = type.split(" | ").map(s => s.trim()).filter(p => p !== "None");
  const lits = parts.filter(p => p.startsWith('"')).map(p => p.slice(1, -1));
  const bools = parts.includes("bool") ? ["true", "false"] : [];
  return lits.length && lits.length + (bools.length ? 1 : 0) === parts.length ? [...lits, ...bools] : null;
}

function fieldInput(f, meta, value) {
  const id = "f-" + f.path.replace(/\./g, "-");
  const common = {id, "data-path": f.path, name: f.path};
  const dflt = f.default == null ? "" : (typeof f.default === "string" ? f.default : JSON.stringify(f.default));
  let choices = null;
  if (f.path === "data.dataset") choices = meta.datasets.map(d => [d.name, d.name + (d.found ? "" : " (not found)")]);
  else if (f.path === "optim.name") choices = meta.optimizers.map(n => [n, n]);
  else if (f.path === "schedule.name") choices = meta.schedules.map(n => [n, n]);
  else if (f.type === "bool" || f.type === "bool | None") choices = [["true", "true"], ["false", "false"]];
  else if (literals(f.type)) choices = literals(f.type).map(n => [n, n]);
  if (choices) {
    const sel = h("select", common, h("option", {value: ""}, `default (${dflt || "none"})`),
                  choices.map(([v, label]) => h("option", {value: v}, label)));
    if (value && !choices.some(c => c[0] === value)) sel.append(h("option", {value}, value));
    sel.value = value || "";
    return sel;
  }
  const input = h("input", {...common, type: "text", placeholder: dflt, value: value || "",
                            list: f.path === "model.name" ? "model-names" : null, autocomplete: "off"});
  if (SLIDERS[f.path]) {
    const [lo, hi, step] = SLIDERS[f.path];
    const range = h("input", {type: "range", min: lo, max: hi, step, "data-slider-for": f.path,
                              "aria-label": f.path + " slider", value: value || dflt || lo});
    range.addEventListener("input", () => { input.value = range.value; input.dispatchEvent(new Event("input", {bubbles: true})); });
    input.addEventListener("input", () => { if (input.value && isFinite(+input.value)) range.value = input.value; });
    return h("div", {class: "pair"}, range, input);
  }
  return input;
}

function fieldRow(f, meta, value) {
  return h("div", {class: "field", "data-field": f.path},
           h("label", {for: "f-" + f.path.replace(/\./g, "-"), title: f.path}, f.path.split(".").slice(-1)[0].replace(/_/g, " ")),
           fieldInput(f, meta, value),
           h("div", {class: "hint"}, f.help),
           h("div", {class: "msg", "data-for": f.path}));
}

async function playgroundPage() {
  const {data: meta} = await api("/api/meta");
  const fields = Object.fromEntries(meta.fields.map(f => [f.path, f]));
  const values = {};
  for (const [k, v] of params) if (fields[k]) values[k] = v;
  let watched = params.get("run") || null, job = null, lastCheck = null;

  const form = h("form", {class: "knobs", id: "knobs", onsubmit: e => e.preventDefault()});
  const placed = new Set();
  for (const [title, paths] of SECTIONS) {
    const fs = h("fieldset", {}, h("legend", {}, title));
    for (const p of paths) if (fields[p]) { fs.append(fieldRow(fields[p], meta, values[p])); placed.add(p); }
    if (title === "Data") fs.insertBefore(h("div", {class: "dataset-note", id: "dataset-note"}), fs.children[2]);
    if (title === "Model") fs.append(h("div", {class: "hint"}, "Any registered name (B2FL32 shorthand, resnet20, …) or timm/<name>."));
    form.append(fs);
  }
  const more = h("details", {}, h("summary", {}, "Every other setting"));
  for (const f of meta.fields) if (!placed.has(f.path) && f.type !== "section | None") more.append(fieldRow(f, meta, values[f.path]));
  form.append(more);
  form.append(h("datalist", {id: "model-names"}, meta.models.map(m => h("option", {value: m.name}, m.description || ""))));

  const note = h("span", {class: "copied"});
  const out = h("pre", {class: "yaml", id: "copy-out", hidden: true});
  const buttons = h("div", {class: "buttons"},
    h("button", {id: "train", class: "primary", type: "button", onclick: train}, "Train"),
    h("button", {id: "pause", type: "button", disabled: true, onclick: () => control("pause")}, "Pause"),
    h("button", {id: "resume", type: "button", disabled: true, onclick: () => control("resume")}, "Resume"),
    h("button", {id: "stop", type: "button", disabled: true, onclick: () => control("stop")}, "Stop"),
    h("button", {id: "copy-yaml", type: "button", onclick: () => show(lastCheck && lastCheck.yaml)}, "Copy as YAML"),
    h("button", {id: "copy-command", type: "button", onclick: () => show(lastCheck && lastCheck.command)}, "Copy command"),
    h("button", {id: "copy-link", type: "button", onclick: () => copyText(location.href, note)}, "Copy link"),
    note);
  function show(text) { if (!text) return; out.hidden = false; out.textContent = text; copyText(text, note); }

  const estimate = h("div", {class: "estimate", id: "estimate"});
  // The LR range test of the form's config, as `convbench lr-find` runs it.
  const lrf = h("details", {id: "lrf", class: "lrf"}, h("summary", {}, "LR range test"),
    h("p", {class: "note"}, "Trains the form's model while the learning rate sweeps from min to max; " +
      "the bounds are read off the smoothed accuracy (docs/lr-find.md)."),
    h("div", {class: "filters"},
      h("label", {}, "min LR", h("input", {id: "lrf-min", value: "1e-4", size: 8})),
      h("label", {}, "max LR", h("input", {id: "lrf-max", value: "1", size: 8})),
      h("label", {}, "epochs", h("input", {id: "lrf-epochs", value: "2", size: 4})),
      h("button", {id: "lr-find", type: "button", onclick: lrFind}, "Run the range test"),
      h("button", {id: "use-bounds", type: "button", disabled: true, onclick: useBounds}, "Use these bounds")),
    h("p", {class: "meta-line", id: "lrf-status"}),
    h("div", {id: "lrf-chart"}));
  let lrJob = null, bounds = null;
  const panel = h("div", {id: "live-panel"},
    h("h2", {}, "Run ", h("span", {id: "run-link"}), " ", h("span", {id: "run-status"})),
    h("p", {class: "meta-line", id: "run-progress"}, "Press Train to start a run with these settings."),
    h("div", {class: "error-box", id: "run-error", hidden: true}),
    h("div", {class: "charts", id: "live-charts"}),
    h("div", {id: "run-result"}));
  app.replaceChildren(h("h1", {}, "Playground"),
    h("div", {class: "playground"},
      h("div", {}, h("div", {class: "error-box", id: "form-error", hidden: true}), form),
      h("div", {}, h("h2", {}, "The model"), estimate, buttons, out, lrf, panel)));

  form.addEventListener("input", e => {
    const path = e.target.dataset.path;
    if (!path) return;
    values[path] = e.target.value;
    if (e.target.value === "") delete values[path];
    syncUrl();
    scheduleCheck();
  });
  form.addEventListener("change", e => { if (e.target.tagName === "SELECT") form.dispatchEvent(new Event("input")); });

  function syncUrl() { setUrl(watched ? {...values, run: watched} : values); }
  let timer = null;
  // data-state says whether the figures and messages shown belong to the current values.
  function scheduleCheck() { form.dataset.state = "checking"; clearTimeout(timer); timer = setTimeout(check, 250); }

  function datasetNote() {
    const name = values["data.dataset"] || fields["data.dataset"].default;
    const d = meta.datasets.find(x => x.name === name);
    const el = $("#dataset-note");
    if (!d) { el.textContent = ""; return; }
    el.className = "dataset-note" + (d.found ? "" : " missing");
    el.textContent = d.found ? `found${d.location ? ": " + d.location : ""}` : `not found. ${d.how_to_get || ""}`;
  }

  async function check() {
    datasetNote();
    const sent = {...values};
    const {data} = await api("/api/check", sent);
    if (JSON.stringify(sent) !== JSON.stringify(values)) return;  // the form moved on
    lastCheck = data;
    form.dataset.state = "idle";
    showErrors(data.errors);
    const e = data.estimate;
    estimate.replaceChildren(...(e && e.input_shape ? [
      h("div", {}, h("b", {id: "est-params"}, count(e.params_total)), h("span", {}, "parameters")),
      h("div", {}, h("b", {id: "est-flops"}, count(e.flops)), h("span", {}, "FLOPs / image")),
      h("div", {}, h("b", {id: "est-macs"}, count(e.macs)), h("span", {}, "MACs / image")),
      h("div", {}, h("b", {id: "est-shape"}, e.input_shape.join(" × ")), h("span", {}, "input (C × H × W)")),
      h("div", {}, h("b", {}, e.classes), h("span", {}, "classes")),
    ] : [h("span", {class: "note"}, data.errors.length ? "Fix the settings to see the model's size." : (e && e.note) || "")]));
    if (e && e.note && e.input_shape) estimate.append(h("p", {class: "note"}, e.note));
    if (e && e.input_shape) {
      const slot = h("div", {}, h("b", {id: "est-epoch"}, "…"), h("span", {}, "epoch time (measuring)"));
      estimate.insertBefore(slot, estimate.children[4] || null);
      epochTime(sent, slot);
    }
  }

  // A few timed steps on this machine, in a probe process; cached per config on the server.
  async function epochTime(sent, slot) {
    for (let tries = 0; tries < 60; tries++) {
      if (JSON.stringify(sent) !== JSON.stringify(values)) return;  // the form moved on
      const {data} = await api("/api/epoch-time", sent);
      if (!data.measuring) {
        const b = slot.querySelector("b"), label = slot.querySelector("span");
        if (data.epoch_s != null) {
          b.textContent = secs(data.epoch_s);
          b.dataset.seconds = data.epoch_s;
          label.textContent = `epoch time here (${data.steps_per_epoch} steps × ${(data.step_s * 1000).toFixed(0)} ms)`;
        } else { b.textContent = "—"; label.textContent = data.error || "epoch time unknown"; label.title = data.error || ""; }
        return;
      }
      await new Promise(r => setTimeout(r, 2000));
    }
  }

  function showErrors(errors) {
    $$(".field").forEach(el => el.classList.remove("invalid"));
    $$(".field .msg").forEach(el => el.textContent = "");
    const box = $("#form-error");
    box.hidden = true;
    for (const err of errors || []) {
      const msg = err.field && $(`.msg[data-for="${err.field}"]`);
      if (msg) { msg.textContent = err.message; msg.parentElement.classList.add("invalid"); }
      else { box.hidden = false; box.textContent = err.message; }
    }
  }

  async function train() {
    const {status, data} = await api("/api/train", {...values});
    if (status === 422) { showErrors(data.errors); return; }
    job = data.job.id;
    watched = null;
    $("#run-progress").textContent = "queued…";
    $("#run-status").replaceChildren(statusBadge("queued"));
    $("#live-charts").textContent = ""; $("#run-result").textContent = ""; $("#run-error").hidden = true;
  }

  async function lrFind() {
    const spec = {min_lr: $("#lrf-min").value, max_lr: $("#lrf-max").value, epochs: $("#lrf-epochs").value};
    try {
      const {status, data} = await api("/api/lr-find", {values: {...values}, spec});
      if (status === 422) { showErrors(data.errors); return; }
      lrJob = data.job.id; bounds = null; $("#use-bounds").disabled = true;
      $("#lrf-status").textContent = "range test queued…"; $("#lrf-chart").textContent = "";
    } catch (err) { $("#lrf-status").textContent = err.message; }
  }

  async function showCurve(runId) {
    const {data: c} = await api(`/api/runs/${runId}/lr-curve`);
    const C = window.convbenchChart;
    const logx = c.sweep === "exp";
    const marks = [];
    for (const [name, lr] of [["lower", c.lower], ["upper", c.upper]]) if (lr != null) marks.push({x: lr, label: name});
    C.drawChart($("#lrf-chart"), {title: "Smoothed accuracy and loss against the LR", xlabel: "learning rate",
      ylabel: "accuracy (%) / loss × 10", logx, width: 640, height: 300, vlines: marks, series: [
        {label: "accuracy (%)", colour: "#0072B2", points: c.lr.map((lr, i) => [lr, c.accuracy[i] == null ? null : c.accuracy[i] * 100])},
        {label: "loss × 10", colour: "#D55E00", points: c.lr.map((lr, i) => [lr, c.loss[i] == null ? null : c.loss[i] * 10])}]});
    bounds = c.lower != null && c.upper != null ? c : null;
    $("#use-bounds").disabled = !bounds;
    $("#lrf-status").replaceChildren("Range test ", h("a", {href: link(`/run/${runId}`)}, runId), bounds ?
      ` suggests lower ${+c.lower.toPrecision(3)}, upper ${+c.upper.toPrecision(3)}.` : ` found no bounds: ${c.reason || c.stop_reason}.`);
    $("#lrf-status").dataset.lower = c.lower; $("#lrf-status").dataset.upper = c.upper;
  }

  function useBounds() {
    if (!bounds) return;
    const set = {"optim.lr": String(bounds.lower), "schedule.max_lr": String(bounds.upper)};
    const schedule = values["schedule.name"] || fields["schedule.name"].default;
    if (!meta.two_bound_schedules.includes(schedule)) set["schedule.name"] = "triangular";
    for (const [path, v] of Object.entries(set)) {
      values[path] = v;
      const el = $(`[data-path="${path}"]`);
      if (el) el.value = v;
    }
    syncUrl(); scheduleCheck();
  }

  async function control(action) {
    if (!watched) return;
    try {
      const {data} = await api(`/api/runs/${watched}/${action}`, {});
      if (data.job) job = data.job.id;
      $("#run-progress").textContent = action === "resume" ? "resuming…" :
        action === "pause" ? "pausing after this epoch…" : "stopping…";
    } catch (err) { $("#run-error").hidden = false; $("#run-error").textContent = err.message; }
  }

  async function refreshRun() {
    if (!watched) return;
    const {data} = await api(`/api/runs/${watched}/live`);
    $("#run-link").replaceChildren(h("a", {href: link(`/run/${watched}`)}, watched));
    $("#run-status").replaceChildren(statusBadge(data.status));
    const running = data.status === "running";
    $("#pause").disabled = $("#stop").disabled = !(running && data.controllable);
    $("#resume").disabled = !["stopped", "failed"].includes(data.status);
    drawLive(data);
  }

  function drawLive(data) {
    const C = window.convbenchChart;
    const ep = data.epochs;
    const charts = $("#live-charts");
    charts.textContent = "";
    const boxes = [0, 1, 2, 3, 4].map(i => charts.appendChild(h("div", {id: `live-chart-${i}`})));
    const bp = data.batches;
    C.drawChart(boxes[0], {title: "Loss per batch (smoothed)", xlabel: "iteration", ylabel: "loss",
      series: [{label: "batch loss", colour: "#0072B2", points: bp.map(p => [p.it, p.loss])}]});
    C.drawChart(boxes[1], {title: "Accuracy per batch (smoothed)", xlabel: "iteration", ylabel: "accuracy (%)",
      series: [{label: "batch accuracy", colour: "#0072B2",
                points: bp.filter(p => p.acc != null).map(p => [p.it, p.acc * 100])}]});
    C.drawChart(boxes[2], {title: "Learning rate", xlabel: "iteration", ylabel: "LR",
      series: [{label: "lr", colour: "#009E73", points: bp.filter(p => p.lr != null).map(p => [p.it, p.lr])}]});
    C.drawChart(boxes[3], {title: "Loss per epoch", xlabel: "epoch", integerX: true, ylabel: "loss", series: [
      {label: "train", colour: "#0072B2", points: ep.map(r => [r.epoch, r.train_loss])},
      {label: "validation", colour: "#E69F00", points: ep.map(r => [r.epoch, r.val_loss])}]});
    C.drawChart(boxes[4], {title: "Accuracy per epoch", xlabel: "epoch", integerX: true, ylabel: "accuracy (%)", series: [
      {label: "train", colour: "#0072B2", points: ep.map(r => [r.epoch, r.train_accuracy == null ? null : r.train_accuracy * 100])},
      {label: "validation", colour: "#E69F00", points: ep.map(r => [r.epoch, r.val_accuracy == null ? null : r.val_accuracy * 100])}]});
    const done = ep.length, planned = data.epochs_planned;
    const meanTime = done ? ep.reduce((a, r) => a + (r.time_s || 0), 0) / done : null;
    const ips = done ? ep[done - 1].images_per_s : null;
    const parts = [`epoch ${done}${planned ? " of " + planned : ""}`];
    if (data.batches.length) parts.push(`iteration ${data.batches[data.batches.length - 1].it}`);
    if (ips) parts.push(`${Math.round(ips)} images/s`);
    if (data.status === "running" && meanTime && planned) parts.push(`ETA ${secs((planned - done) * meanTime)}`);
    $("#run-progress").textContent = parts.join(" · ");
    const err = $("#run-error");
    err.hidden = !data.error; err.textContent = data.error || "";
    $("#run-result").replaceChildren(...(data.test_accuracy != null ? [
      h("p", {}, "Test accuracy ", h("b", {id: "test-accuracy", "data-value": data.test_accuracy}, pct(data.test_accuracy)),
        " · ", h("a", {href: link(`/run/${watched}`)}, "confusion matrix, per-class accuracy and costs"))] : []));
  }

  function watch(runId) {
    if (watched === runId) return;
    watched = runId; syncUrl(); refreshRun();
  }

  onLive((snap, prev) => {
    const j = job && snap.jobs.find(x => x.id === job);
    if (j) {
      if (j.status === "queued") {
        const ahead = snap.jobs.filter(x => x.status === "queued" && x.id < j.id).length;
        $("#run-progress").textContent = `queued (${snap.jobs.filter(x => x.status === "running").length} running, waiting for a free slot)`;
      }
      if (j.status === "failed" && !j.run_id) { $("#run-error").hidden = false; $("#run-error").textContent = j.error; }
      if (j.run_id) watch(j.run_id);
    }
    const lj = lrJob && snap.jobs.find(x => x.id === lrJob);
    if (lj) {
      if (lj.status === "running") $("#lrf-status").textContent = "range test running…";
      if (lj.status === "failed") $("#lrf-status").textContent = lj.error || "the range test failed";
      if (lj.status === "done" && lj.run_id) { lrJob = null; showCurve(lj.run_id); }
    }
    if (!watched) return;
    const now = snap.running[watched], before = prev && prev.running[watched];
    if (JSON.stringify(now) !== JSON.stringify(before) || !now) refreshRun();
  });
  scheduleCheck();
  if (watched) refreshRun();
}

// ================================ runs ========================================================
const RUN_COLUMNS = [["id", "Run"], ["name", "Name"], ["kind", "Kind"], ["status", "Status"],
  ["dataset", "Data set"], ["model", "Model"], ["test_accuracy", "Test accuracy"],
  ["epochs_done", "Epochs", false], ["train_time_s", "Train time"], ["params_total", "Parameters"],
  ["started_at", "Started"]];
const FILTERS = ["kind", "status", "dataset", "model"];
const PAGE = 50;

async function runsPage() {
  const state = {sort: "started_at", desc: "true", offset: "0"};
  for (const [k, v] of params) if (k !== "token") state[k] = v;
  const picked = new Set();
  const {data: facets} = await api("/api/facets");
  const filters = h("div", {class: "filters"},
    FILTERS.map(k => h("label", {}, k, h("select", {id: `f-${k}`, "data-filter": k},
      h("option", {value: ""}, "all"), (facets[k] || []).map(v => h("option", {value: v}, v))))),
    h("label", {}, "group", h("input", {id: "f-group", "data-filter": "group", size: 10})),
    h("label", {}, "search", h("input", {id: "q", "data-filter": "q", placeholder: "id, name, model, data set"})));
  for (const el of $$("[data-filter]", filters)) el.value = state[el.dataset.filter] || "";
  const actions = h("div", {class: "buttons"},
    h("button", {id: "compare-btn", onclick: () => { if (picked.size) location.href = link("/compare", {ids: [...picked].join(",")}); }}, "Compare selected"),
    h("button", {id: "resume-btn", onclick: resumeSelected}, "Resume selected"),
    h("button", {id: "delete-btn", onclick: deleteSelected}, "Delete selected"),
    h("span", {id: "runs-message", class: "note"}));
  const table = h("div", {id: "runs-table"});
  const pager = h("div", {class: "pager"},
    h("button", {id: "prev", onclick: () => move(-1)}, "‹ Previous"),
    h("span", {id: "page-info"}),
    h("button", {id: "next", onclick: () => move(1)}, "Next ›"));
  app.replaceChildren(h("h1", {}, "Runs ", h("span", {class: "note", id: "runs-total"})), filters, actions, table, pager);

  let timer = null;
  filters.addEventListener("input", e => {
    state[e.target.dataset.filter] = e.target.value; state.offset = "0";
    clearTimeout(timer); timer = setTimeout(load, 200);
  });
  function move(step) { state.offset = String(Math.max(0, +state.offset + step * PAGE)); load(); }

  let seq = 0;
  async function load() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(state)) if (v !== "" && v != null) q.set(k, v);
    setUrl(Object.fromEntries(q));
    q.set("limit", PAGE);
    const mine = ++seq;
    const {data} = await api(`/api/runs?${q}`);
    if (mine !== seq) return;
    render(data);
  }

  function render(data) {
    const offset = +state.offset;
    $("#runs-total").textContent = `${data.total} run${data.total === 1 ? "" : "s"}`;
    $("#page-info").textContent = data.total ? `${offset + 1}–${offset + data.runs.length} of ${data.total}` : "no runs";
    $("#prev").disabled = offset === 0;
    $("#next").disabled = offset + data.runs.length >= data.total;
    const head = h("tr", {}, h("th", {}, ""), RUN_COLUMNS.map(([key, label, sortable]) => {
      const cls = state.sort === key ? (state.desc === "true" ? "sorted-desc" : "sorted-asc") : null;
      return h("th", {class: ["text", cls].filter(Boolean).join(" "), "data-sort": sortable === false ? null : key,
                      onclick: sortable === false ? null : () => {
                        state.desc = state.sort === key && state.desc === "true" ? "false" : "true";
                        state.sort = key; state.offset = "0"; load(); }}, label);
    }));
    const rows = data.runs.map(r => h("tr", {"data-id": r.id},
      h("td", {}, h("input", {type: "checkbox", class: "pick", value: r.id, checked: picked.has(r.id),
        onchange: e => e.target.checked ? picked.add(r.id) : picked.delete(r.id)})),
      h("td", {class: "text"}, h("a", {href: link(`/run/${r.id}`)}, r.id)),
      h("td", {class: "text"}, r.name || ""), h("td", {class: "text"}, r.kind),
      h("td", {class: "text"}, statusBadge(r.status)), h("td", {class: "text"}, r.dataset || "—"),
      h("td", {class: "text"}, r.model || "—"), h("td", {}, pct(r.test_accuracy)),
      h("td", {}, r.epochs_done), h("td", {}, secs(r.train_time_s)), h("td", {}, count(r.params_total)),
      h("td", {class: "text"}, when(r.started_at))));
    table.replaceChildren(h("div", {class: "table-wrap"}, h("table", {class: "data runs"}, h("thead", {}, head), h("tbody", {}, rows))));
  }

  async function deleteSelected() {
    if (!picked.size || !confirm(`Delete ${picked.size} run(s) and their files?`)) return;
    try { await api("/api/runs/delete", {ids: [...picked]}); picked.clear(); load(); }
    catch (err) { $("#runs-message").textContent = err.message; }
  }
  async function resumeSelected() {
    const out = [];
    for (const id of picked) {
      try { await api(`/api/runs/${id}/resume`, {}); out.push(`${id} queued`); }
      catch (err) { out.push(err.message); }
    }
    $("#runs-message").textContent = out.join(" · ");
  }

  let pending = null;
  onLive((snap, prev) => {
    if (!prev || JSON.stringify(snap.statuses) !== JSON.stringify(prev.statuses) ||
        JSON.stringify(snap.running) !== JSON.stringify(prev.running)) {
      clearTimeout(pending); pending = setTimeout(load, 300);
    }
  });
  load();
}

// ================================ one run =====================================================
function reproduceValues(config, meta) {
  const flat = {};
  (function walk(obj, prefix) {
    for (const [k, v] of Object.entries(obj || {})) {
      const path = prefix + k;
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length && !meta.some(f => f.path === path && f.type.startsWith("dict"))) walk(v, path + ".");
      else flat[path] = v;
    }
  })(config, "");
  const out = {};
  for (const f of meta) {
    if (!(f.path in flat)) continue;
    const v = flat[f.path];
    if (JSON.stringify(v) === JSON.stringify(f.default)) continue;
    out[f.path] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

async function runPage(runId) {
  async function load() {
    const {data: r} = await api(`/api/runs/${runId}`);
    const C = window.convbenchChart;
    const curves = h("div", {class: "charts"});
    const parts = [
      h("h1", {id: "run-title"}, `Run ${r.id} `, r.name ? h("span", {class: "note"}, r.name) : null),
      h("p", {class: "meta-line"}, statusBadge(r.status), ` ${r.kind} · seed ${r.seed} · ${r.device || ""} · started ${when(r.started_at)} · ended ${when(r.ended_at)}`,
        r.group_id ? [" · group ", h("a", {href: link("/runs", {group: r.group_id})}, r.group_id)] : null),
      h("div", {class: "buttons"},
        r.status === "running" && r.controllable ? [
          h("button", {id: "pause", onclick: () => act("pause")}, "Pause"),
          h("button", {id: "stop", onclick: () => act("stop")}, "Stop")] : null,
        ["stopped", "failed"].includes(r.status) && r.kind === "train" ? h("button", {id: "resume", onclick: () => act("resume")}, "Resume") : null,
        r.kind === "train" ? h("button", {id: "reproduce", onclick: reproduce}, "Reproduce in the playground") : null,
        h("a", {href: link("/compare", {ids: r.id})}, "Compare page")),
      r.error ? h("div", {class: "error-box", id: "run-error"}, r.error) : null,
      h("h2", {}, "Metrics and costs"),
      r.metrics.length ? h("div", {class: "table-wrap narrow"}, h("table", {class: "data", id: "metrics"}, h("tbody", {},
        r.metrics.map(m => h("tr", {}, h("td", {class: "text"}, m.label), h("td", {"data-key": m.key}, m.text)))))) : h("p", {class: "note"}, "No final metrics yet."),
      h("h2", {}, "Epochs"), curves,
      r.epochs.length ? h("div", {class: "table-wrap"}, h("table", {class: "data", id: "epochs"},
        h("thead", {}, h("tr", {}, Object.keys(r.epochs[0]).map(k => h("th", {}, k)))),
        h("tbody", {}, r.epochs.map(e => h("tr", {}, Object.values(e).map(v => h("td", {}, typeof v === "number" ? +v.toPrecision(4) : String(v)))))))) : h("p", {class: "note"}, "No finished epoch yet."),
      ...r.sections.map(([title, html]) => h("section", {"data-section": title}, h("h2", {}, title), h("div", {html}))),
      r.kind === "train" && r.status === "completed" ? h("section", {},
        h("h2", {}, "Misclassified test images"),
        h("button", {id: "show-mistakes", onclick: mistakes}, "Show misclassified test images"),
        h("p", {class: "note", id: "mistakes-note"}), h("div", {class: "mistakes", id: "mistakes"})) : null,
      h("h2", {}, "Artifacts"),
      r.artifacts.length ? h("ul", {id: "artifacts"}, r.artifacts.map(a => h("li", {}, h("a", {href: link(`/api/runs/${r.id}/artifacts/${a}`), download: true}, a)))) : h("p", {class: "note"}, "None."),
      h("h2", {}, "Config"), h("pre", {class: "yaml", id: "config-yaml"}, r.config_yaml),
      h("h2", {}, "Environment"),
      h("dl", {class: "kv"}, Object.entries(r.env).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))])),
    ];
    app.replaceChildren(...parts.filter(Boolean));
    const ep = r.epochs;
    if (ep.length && r.kind !== "detect") {  // a detection run's curves are its report's
      const a = curves.appendChild(h("div")), b = curves.appendChild(h("div"));
      C.drawChart(a, {title: "Loss", xlabel: "epoch", integerX: true, ylabel: "loss", series: [
        {label: "train", colour: "#0072B2", points: ep.map(e => [e.epoch, e.train_loss])},
        {label: "validation", colour: "#E69F00", points: ep.map(e => [e.epoch, e.val_loss])}]});
      C.drawChart(b, {title: "Accuracy", xlabel: "epoch", integerX: true, ylabel: "accuracy (%)", series: [
        {label: "train", colour: "#0072B2", points: ep.map(e => [e.epoch, e.train_accuracy == null ? null : e.train_accuracy * 100])},
        {label: "validation", colour: "#E69F00", points: ep.map(e => [e.epoch, e.val_accuracy == null ? null : e.val_accuracy * 100])}]});
    }
    // Computed by a probe process (the run's best weights on its test split), cached.
    async function mistakes() {
      $("#show-mistakes").disabled = true;
      $("#mistakes-note").textContent = "predicting the test split…";
      for (let tries = 0; tries < 150; tries++) {
        const {data} = await api(`/api/runs/${r.id}/mistakes`);
        if (data.measuring) { await new Promise(res => setTimeout(res, 2000)); continue; }
        if (data.error) { $("#mistakes-note").textContent = data.error; return; }
        $("#mistakes-note").textContent = `${data.total} of ${data.tested} test images misclassified` +
          (data.images.length < data.total ? `; the ${data.images.length} most confident mistakes:` : ":");
        $("#mistakes").replaceChildren(...data.images.map(m => h("figure", {class: "mistake"},
          h("img", {src: m.src, alt: `true ${m.true}, predicted ${m.pred}`}),
          h("figcaption", {}, h("span", {class: "true"}, m.true), " → ", h("b", {class: "pred"}, m.pred),
            ` ${(m.confidence * 100).toFixed(0)} %`))));
        return;
      }
    }
    async function act(action) {
      try { await api(`/api/runs/${r.id}/${action}`, {}); } catch (err) { alert(err.message); }
    }
    async function reproduce() {
      const {data: meta} = await api("/api/meta");
      location.href = link("/", reproduceValues(r.config, meta.fields));
    }
    return r;
  }
  let current = await load();
  onLive((snap, prev) => {
    const now = snap.running[current.id], before = prev && prev.running[current.id];
    if (JSON.stringify(now) !== JSON.stringify(before)) load().then(r => current = r);
  });
}

// ================================ compare =====================================================
const CURVES = [["train_loss", "Training loss", 1], ["val_loss", "Validation loss", 1],
                ["train_accuracy", "Training accuracy (%)", 100], ["val_accuracy", "Validation accuracy (%)", 100]];

async function comparePage() {
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  const {data: c} = await api(`/api/compare?ids=${encodeURIComponent(ids.join(","))}`);
  const C = window.convbenchChart;
  const axes = c.axes.filter(a => a.points.some(p => p.x != null && p.y != null));
  const curves = h("div", {class: "charts", id: "compare-curves"});
  const axisSel = h("select", {id: "cost-axis"}, axes.map(a => h("option", {value: a.key}, a.name)));
  if (params.get("axis")) axisSel.value = params.get("axis");
  const pareto = h("div", {id: "pareto"});
  app.replaceChildren(
    h("h1", {}, `Compare ${c.run_ids.length} run${c.run_ids.length === 1 ? "" : "s"}`),
    h("p", {class: "meta-line"}, c.subtitle),
    h("div", {id: "compare-sections"}, c.sections.map(([title, html]) => h("section", {"data-section": title}, h("h2", {}, title), h("div", {html})))),
    h("section", {}, h("h2", {}, "Learning curves"), h("p", {class: "note"}, "Mean over completed seeds; the band is ± one standard deviation."), curves),
    h("section", {}, h("h2", {}, "Accuracy against cost"),
      axes.length ? h("label", {}, "cost axis ", axisSel) : h("p", {class: "note"}, "No completed run has both an accuracy and a cost yet."),
      pareto));
  for (const [key, title, scale] of CURVES) {
    const series = c.curves.map(v => {
      const cv = v.curves[key];
      const pts = cv.epoch.map((e, i) => [e, cv.mean[i] == null ? null : cv.mean[i] * scale]);
      const band = cv.epoch.map((e, i) => cv.std[i] == null ? [e, null, null] : [e, (cv.mean[i] - cv.std[i]) * scale, (cv.mean[i] + cv.std[i]) * scale]);
      return {label: v.label, colour: v.colour, points: pts, band};
    });
    C.drawChart(curves.appendChild(h("div")), {title, xlabel: "epoch", integerX: true, ylabel: title, series});
  }
  function drawPareto() {
    const axis = axes.find(a => a.key === axisSel.value);
    if (!axis) return;
    const front = axis.front.map(i => axis.points[i]);
    const steps = [];
    front.forEach((p, i) => { steps.push([p.x, p.y * 100]); if (i + 1 < front.length) steps.push([front[i + 1].x, p.y * 100]); });
    const xs = axis.points.filter(p => p.x != null).map(p => p.x);
    C.drawChart(pareto, {title: `Test accuracy against ${axis.name}`, xlabel: axis.name + (axis.unit === "time" ? " (s)" : axis.unit ? ` (${axis.unit})` : ""),
      ylabel: "test accuracy (%)", width: 640, height: 380, logx: xs.length && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) > 20,
      scatter: axis.points.map((p, i) => ({label: p.label, colour: p.colour, x: p.x, y: p.y == null ? null : p.y * 100, ring: axis.front.includes(i)})),
      front: steps});
    pareto.dataset.front = front.map(p => p.label).join("|");
    const q = new URLSearchParams(location.search); q.set("axis", axis.key);
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }
  axisSel.addEventListener("change", drawPareto);
  drawPareto();
}

// ================================ groups ======================================================
async function groupsPage() {
  // Start a search: paste or upload its YAML (docs/search.md); it runs in a worker process.
  const yamlBox = h("textarea", {id: "search-yaml", rows: 10, cols: 80, spellcheck: "false",
                                 placeholder: "name: my-search\nbase: …\nparams: …\nsearch: …"});
  const file = h("input", {type: "file", id: "search-file", accept: ".yaml,.yml"});
  let fileName = null;
  file.addEventListener("change", async () => {
    if (file.files[0]) { yamlBox.value = await file.files[0].text(); fileName = file.files[0].name; }
  });
  yamlBox.addEventListener("input", () => { fileName = null; });
  const status = h("p", {class: "meta-line", id: "search-status"});
  let searchJob = null;
  const searchForm = h("details", {id: "search-form", class: "lrf"}, h("summary", {}, "Start a search"),
    h("p", {class: "note"}, "Paste a search YAML or upload one (examples/digits-screen-search.yaml is a small one). " +
      "It trains in a worker process; its group appears below and its page updates as it runs."),
    yamlBox, h("div", {class: "buttons"}, file,
      h("button", {id: "start-search", class: "primary", onclick: async () => {
        try {
          const {data} = await api("/api/search", {yaml: yamlBox.value, name: fileName});
          searchJob = data.job.id; status.textContent = "search queued…";
        } catch (err) { status.textContent = err.message; }
      }}, "Start search")), status);
  onLive(snap => {
    const j = searchJob && snap.jobs.find(x => x.id === searchJob);
    if (!j) return;
    status.textContent = j.status === "failed" ? (j.error || "the search failed") :
      j.status === "done" ? "search finished" : `search ${j.status}…`;
  });
  async function load() {
    const {data: groups} = await api("/api/groups");
    const rows = groups.map(g => h("tr", {"data-id": g.id},
      h("td", {class: "text"}, h("a", {href: link(`/group/${g.id}`)}, g.id)),
      h("td", {class: "text"}, g.kind), h("td", {class: "text"}, g.name || ""),
      h("td", {class: "text"}, statusBadge(g.status)), h("td", {}, g.runs),
      h("td", {class: "text"}, h("a", {href: link("/runs", {group: g.id})}, "runs")),
      h("td", {class: "text"}, when(g.created_at))));
    app.replaceChildren(h("h1", {}, "Comparisons & searches"), searchForm,
      groups.length ? h("div", {class: "table-wrap"}, h("table", {class: "data", id: "groups-table"},
        h("thead", {}, h("tr", {}, ["Group", "Kind", "Name", "Status", "Runs", "", "Created"].map(t => h("th", {class: "text"}, t)))),
        h("tbody", {}, rows))) : h("p", {class: "note"}, "No comparison, search or LR range test group yet."));
  }
  onLive((snap, prev) => { if (!prev || JSON.stringify(snap.statuses) !== JSON.stringify(prev.statuses)) load(); });
  await load();
}

async function groupPage(groupId) {
  const {data: g} = await api(`/api/groups/${groupId}`);
  const frame = h("iframe", {id: "group-report", title: "report", src: link(`/api/groups/${g.id}/report`),
                             style: "width: 100%; height: 80vh; border: 1px solid var(--line); border-radius: 6px;"});
  const parallel = h("div", {id: "parcoords", class: "table-wrap", style: "max-height: none; padding: 6px;"});
  async function drawTrials() {
    if (g.kind !== "search") return;
    const {data} = await api(`/api/groups/${g.id}/trials`);
    if (data.trials.length) window.convbenchChart.drawParallel(parallel, data);
    else parallel.textContent = "No trial has trained yet.";
  }
  // A search the page started can be stopped here (resumable with `convbench search --resume`).
  let stopping = false;
  const stop = h("button", {id: "stop-search", type: "button", onclick: async () => {
    stopping = true; drawHead();
    try { await api(`/api/groups/${g.id}/stop`, {}); } catch (err) { stopping = false; note.textContent = err.message; }
  }}, "Stop search");
  const note = h("span", {id: "search-note", class: "note"});
  const head = h("p", {class: "meta-line", id: "group-head"});
  function drawHead() {
    head.replaceChildren(statusBadge(g.status), ` ${g.run_ids.length} runs · `,
      h("a", {href: link("/runs", {group: g.id})}, "its runs"), " · ",
      h("a", {href: link("/compare", {ids: g.run_ids.join(",")})}, "compare them"),
      " · the report `convbench report " + g.id + "` writes, updated as the group runs");
    const running = g.status === "running";
    stop.hidden = !running;
    stop.disabled = !g.stoppable || stopping;
    note.textContent = g.status === "stopped" ? `stopped: continue it with convbench search --resume ${g.id}` :
      running && stopping ? "stopping…" :
      running && !g.stoppable ? "started outside this page: stop it where it runs (Ctrl-C)" : "";
  }
  drawHead();
  app.replaceChildren(...[h("h1", {}, `${g.kind} ${g.name || g.id}`), head,
    g.kind === "search" ? h("div", {class: "buttons"}, stop, " ", note) : null,
    g.kind === "search" ? parallel : null, frame].filter(Boolean));
  drawTrials();
  // The group's record changes while it runs, or (resumed elsewhere) when some run's status
  // does: not on every live tick of an unrelated training.
  onLive(async (snap, prev) => {
    if (g.status !== "running" && prev && JSON.stringify(snap.statuses) === JSON.stringify(prev.statuses)) return;
    Object.assign(g, (await api(`/api/groups/${g.id}`)).data); drawHead();
  });
  // Written again only when the group's runs changed (the server caches the page).
  let last = 0;
  onLive((snap, prev) => {
    const busy = g.run_ids.some(id => snap.running[id]) || Object.keys(snap.running).length > 0;
    if (prev && busy && Date.now() - last > 5000) { last = Date.now(); frame.src = frame.src; drawTrials(); }
  });
}

// ================================ router ======================================================
async function main() {
  connectLive();
  const path = location.pathname;
  for (const a of $$("a[data-nav]")) a.href = link(a.getAttribute("href"));
  try {
    if (path === "/runs") { $("#nav-runs").classList.add("current"); await runsPage(); }
    else if (path.startsWith("/run/")) await runPage(decodeURIComponent(path.slice(5)));
    else if (path === "/compare") await comparePage();
    else if (path === "/groups") { $("#nav-groups").classList.add("current"); await groupsPage(); }
    else if (path.startsWith("/group/")) await groupPage(decodeURIComponent(path.slice(7)));
    else { $("#nav-playground").classList.add("current"); await playgroundPage(); }
  } catch (err) {
    app.replaceChildren(h("div", {class: "error-box", id: "page-error"}, err.message));
  }
}
main();
