// pipit dashboard: a page of plain script over the control API. The
// session cookie is HttpOnly; the CSRF token the login returns is kept in
// memory and sent with every action. Everything the server sends is put
// into the page as text, never as HTML.
"use strict";

const state = { me: null, csrf: "", stream: null, listTimer: null, charts: {}, view: null, name: "", looksDrawn: "" };

const ACTIONS = [
  { kind: "promote", label: "Promote", text: "Skip to the next step of the plan." },
  { kind: "promote-full", label: "Promote fully", text: "Send all traffic to the canary now and finish the rollout." },
  { kind: "pause", label: "Pause", text: "Hold the rollout at its current step and weight." },
  { kind: "resume", label: "Resume", text: "Resume the paused rollout." },
  { kind: "set-weight", label: "Set weight", text: "Set the canary's share of traffic.", weight: true },
  { kind: "approve", label: "Approve", text: "Approve the decision the rollout waits for." },
  { kind: "reject", label: "Reject", text: "Reject the decision the rollout waits for; the canary is rolled back." },
  { kind: "abort", label: "Abort", text: "Abort the rollout and send all traffic back to stable." },
  { kind: "retry", label: "Retry", text: "Start the rolled-back or aborted canary again." },
  { kind: "undo", label: "Undo", text: "Go back to the previous version." },
];

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = resp.status === 204 ? {} : await resp.json().catch(() => ({}));
  if (resp.status === 401 && path !== "/ui/login") { showLogin(data.error); throw new Error(data.error || "not logged in"); }
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function show(id) {
  for (const s of ["login", "list", "detail"]) $(s).hidden = s !== id;
}

function stopLive() {
  if (state.stream) { state.stream.close(); state.stream = null; }
  if (state.listTimer) { clearInterval(state.listTimer); state.listTimer = null; }
}

function showLogin(msg) {
  stopLive();
  state.me = null;
  $("who").textContent = "";
  $("logout").hidden = true;
  $("login-error").textContent = msg && msg !== "not logged in" ? msg : "";
  show("login");
}

function loggedIn(info) {
  state.me = { name: info.name, role: info.role };
  state.csrf = info.csrf;
  $("who").textContent = info.name + " (" + info.role + ")";
  // A session given without a login (pipit dashboard) has no logout.
  $("logout").hidden = Boolean(info.automatic);
  route();
}

const absent = (v) => v === undefined || v === null;
const pct = (w) => (absent(w) ? "0" : w) + "%";
const num = (v, unit) => (absent(v) ? "–" : (Math.round(v * 100) / 100) + (unit || ""));
// withUnit writes a value as the CLI does (spec.WithUnit): percent and
// time units stick to the number, the others follow a space.
const STUCK = new Set(["%", "ns", "us", "µs", "ms", "s", "m", "h"]);
const withUnit = (v, unit) => (absent(v) ? "–" : !unit ? num(v) : num(v, (STUCK.has(unit) ? "" : " ") + unit));
const unitOf = (metric) => ((state.view && state.view.units) || {})[metric] || "";
const version = (ref) => (ref ? ref.version : "–");
const when = (t) => (t ? new Date(t).toLocaleString() : "");
// rate is a conversion rate in percent with two decimals; signed a
// difference in percentage points with its sign, as pipit status writes
// them; pValue has three significant digits.
const rate = (v) => (absent(v) ? "–" : Number(v).toFixed(2) + "%");
const signed = (v) => (v >= 0 ? "+" : "") + Number(v).toFixed(2);
const pValue = (p) => (absent(p) ? "–" : Number(p).toPrecision(3));

function lastVerdict(st) {
  const rs = (st.analysis && st.analysis.lastResults) || [];
  if (rs.length === 0) return "–";
  const bad = rs.find((r) => r.verdict !== "Successful");
  return bad ? bad.verdict + " (" + bad.name + ")" : "Successful";
}

// ---- list ----

async function loadList() {
  const data = await api("GET", "/v1/rollouts");
  const body = $("rollouts");
  body.replaceChildren();
  for (const v of data.rollouts) {
    const st = v.status, tr = el("tr");
    const a = el("a", v.name);
    a.href = "#/rollouts/" + encodeURIComponent(v.name);
    const name = el("td"); name.append(a);
    tr.append(name, el("td", st.phase || "Idle", "phase phase-" + st.phase), el("td", st.stepLabel || "–"),
      el("td", pct(st.canaryWeight)), el("td", version(st.stable)), el("td", version(st.canary)), el("td", lastVerdict(st)));
    body.append(tr);
  }
}

function showList() {
  show("list");
  const tick = () => loadList().catch((e) => console.warn(e));
  tick();
  state.listTimer = setInterval(tick, 3000);
}

// ---- detail ----

function showDetail(name) {
  show("detail");
  state.name = name;
  state.view = null;
  state.looksDrawn = "";
  $("d-name").textContent = name;
  $("d-action-result").textContent = "";
  renderActions();
  const es = new EventSource("/v1/rollouts/" + encodeURIComponent(name) + "/stream");
  state.stream = es;
  es.addEventListener("rollout", (e) => renderView(JSON.parse(e.data)));
  es.addEventListener("history", (e) => {
    renderHistory(JSON.parse(e.data).events || []);
    loadSamples(name).catch((err) => console.warn(err));
  });
  es.addEventListener("gone", () => { es.close(); $("d-message").textContent = "This rollout is no longer served."; });
  es.onerror = () => {
    // A closed stream (lifetime, restart) reconnects by itself; a lost
    // session shows the login.
    if (es.readyState === EventSource.CLOSED) api("GET", "/ui/session").catch(() => {});
  };
}

function fact(dl, term, value, cls) {
  const d = el("div");
  d.append(el("dt", term), el("dd", value, cls));
  dl.append(d);
}

function renderView(v) {
  const before = state.view;
  state.view = v;
  const st = v.status, dl = $("d-facts");
  // A new run charts its own checks from its start.
  if (before && before.status.startedAt !== st.startedAt) loadSamples(state.name).catch((err) => console.warn(err));
  dl.replaceChildren();
  fact(dl, "Phase", st.phase || "Idle", "phase phase-" + st.phase);
  fact(dl, "Step", st.stepLabel || "–");
  fact(dl, "Canary weight", pct(st.canaryWeight));
  fact(dl, "Stable", version(st.stable));
  fact(dl, "Canary", version(st.canary));
  fact(dl, "Decision", v.decision || "auto");
  if (st.gate) fact(dl, "Waiting for", st.gate.kind + (st.gate.reason ? ": " + st.gate.reason : ""));
  fact(dl, "Checks passed / failed", (st.analysis.passedChecks || 0) + " / " + (st.analysis.failedChecks || 0));
  fact(dl, "Last verdict", lastVerdict(st));
  $("d-message").textContent = st.message || "";
  renderLive(v.live);
  renderExperiment(st.experiment);
}

function renderLive(live) {
  const body = $("d-live");
  body.replaceChildren();
  if (!live) return;
  const row = (role, m) => {
    if (!m) return;
    const tr = el("tr");
    tr.append(el("td", role + " " + m.version), el("td", m.requests), el("td", num(m.successRate, "%")),
      el("td", num(m.latencyP50Ms, " ms")), el("td", num(m.latencyP99Ms, " ms")),
      el("td", m.healthy === undefined ? "–" : m.healthy ? "healthy" : "unhealthy" + (m.healthReason ? ": " + m.healthReason : "")));
    body.append(tr);
  };
  row("stable", live.stable);
  row("canary", live.canary);
}

function renderHistory(events) {
  const ol = $("d-history");
  ol.replaceChildren();
  for (const e of events.slice().reverse()) {
    const li = el("li", null, e.type);
    const t = el("time", when(e.time));
    t.dateTime = e.time;
    const meta = el("div", null, "meta");
    meta.append(t, " · step " + (e.step + 1) + " · " + pct(e.weight) + " · " + e.phase + " · ");
    meta.append(el("span", e.actor || "pipit", "actor"));
    li.append(meta, el("div", e.reason + ": " + e.message));
    ol.append(li);
  }
  drawWeight(events);
}

// ---- experiment ----

// renderExperiment shows an experiment's numbers and winner, and hides
// the panel of a rollout that runs none.
function renderExperiment(x) {
  $("d-experiment").hidden = !x;
  if (!x) {
    clearCharts("experiment");
    state.looksDrawn = "";
    return;
  }
  renderExperimentFacts(x);
  renderVariants(x);
  $("d-x-reason").textContent = x.reason || "";
  drawConversion(x.looks || []);
}

function renderExperimentFacts(x) {
  const dl = $("d-x-facts");
  dl.replaceChildren();
  fact(dl, "Winner", winnerText(x), "winner winner-" + (x.winner || "running"));
  fact(dl, "Goal", x.goal);
  fact(dl, "Rule", ruleText(x.promoteIf));
  fact(dl, "Started", when(x.startedAt) || "–");
  fact(dl, "Difference", absent(x.difference) ? "–" : signed(x.difference) + " points");
  if (x.interval && x.interval.length === 2) {
    fact(dl, "Interval (" + Math.round(x.confidence * 1000) / 10 + "%)", signed(x.interval[0]) + " to " + signed(x.interval[1]) + " points");
  }
  fact(dl, "p-value", pValue(x.pValue));
  fact(dl, "Sample ratio p-value", pValue(x.sampleRatioPValue));
}

// winnerText names the winner with its version ("treatment (v2)"), or
// says the experiment runs while it has none.
function winnerText(x) {
  if (!x.winner) return "running";
  const variant = x[x.winner]; // control or treatment; none has no variant
  return variant && variant.version ? x.winner + " (" + variant.version + ")" : x.winner;
}

// ruleText is the promotion rule with its margin, which only notWorse has.
function ruleText(rule) {
  const margin = state.view && state.view.experimentMargin;
  return absent(margin) ? rule : rule + ", margin " + Number(margin).toFixed(2) + " points";
}

function renderVariants(x) {
  const body = $("d-x-variants");
  body.replaceChildren();
  for (const role of ["control", "treatment"]) {
    const v = x[role] || {}, tr = el("tr");
    tr.append(el("td", v.version ? role + " " + v.version : role), el("td", v.visitors || 0), el("td", v.converted || 0), el("td", rate(v.rate)));
    body.append(tr);
  }
}

// lookRate is one side's cumulative conversion rate at a look, in percent;
// null (a gap) without visitors.
const lookRate = (converted, visitors) => (visitors > 0 ? (100 * converted) / visitors : null);
const rateSeries = (label, stroke) => ({ label, stroke, width: 2, value: (u, v) => rate(v) });

// drawConversion charts both variants' conversion rate at each look; the
// looks change once a check, so the same looks are not drawn again.
function drawConversion(looks) {
  const key = JSON.stringify(looks);
  if (key === state.looksDrawn) return;
  state.looksDrawn = key;
  const target = $("d-x-chart");
  clearCharts("experiment");
  target.replaceChildren();
  if (looks.length === 0) {
    target.textContent = "No look yet: the goal is looked at once both variants have their minimum sample.";
    return;
  }
  const xs = looks.map((l, i) => i + 1);
  const control = looks.map((l) => lookRate(l.controlConverted, l.controlVisitors));
  const treatment = looks.map((l) => lookRate(l.treatmentConverted, l.treatmentVisitors));
  chart("experiment", target, "", [rateSeries("control", "#1a7f37"), rateSeries("treatment", "#d9822b")], [xs, control, treatment], "look");
}

// ---- charts ----

// clearCharts destroys the charts of one group ("weight", "metrics",
// "experiment"), or of all groups.
function clearCharts(group) {
  for (const g of Object.keys(state.charts)) {
    if (group && g !== group) continue;
    for (const c of state.charts[g]) c.destroy();
    state.charts[g] = [];
  }
}

// chart draws series over data[0], times in seconds; with countLabel, over
// whole numbers (looks) labelled so instead.
function chart(group, target, title, series, data, countLabel) {
  const width = Math.max(280, target.clientWidth || 600);
  const opts = { title, width, height: 200, series: [{}].concat(series), scales: { x: { time: !countLabel } } };
  if (countLabel) {
    opts.series[0] = { label: countLabel };
    opts.axes = [{ label: countLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] }, {}];
  }
  const u = new uPlot(opts, data, target);
  (state.charts[group] = state.charts[group] || []).push(u);
  return u;
}

function drawWeight(events) {
  const target = $("d-weight");
  clearCharts("weight");
  target.replaceChildren();
  const xs = [], ys = [];
  for (const e of events) { xs.push(Date.parse(e.time) / 1000); ys.push(Number(e.weight)); }
  if (state.view) { xs.push(Date.now() / 1000); ys.push(Number(state.view.status.canaryWeight)); }
  if (xs.length === 0) return;
  chart("weight", target, "", [{ label: "canary %", stroke: "#2456c8", width: 2, paths: uPlot.paths.stepped({ align: 1 }) }], [xs, ys]);
}

// loadSamples charts the checks of the rollout's latest run: those since
// it started, not an earlier canary's.
async function loadSamples(name) {
  const target = $("d-metrics");
  const started = state.view && state.view.status.startedAt;
  const since = started ? "?since=" + encodeURIComponent(started) : "";
  let data;
  try {
    data = await api("GET", "/v1/rollouts/" + encodeURIComponent(name) + "/samples" + since);
  } catch (e) {
    target.textContent = "No samples: " + e.message;
    return;
  }
  clearCharts("metrics");
  target.replaceChildren();
  const byMetric = new Map();
  for (const s of data.samples) {
    if (!byMetric.has(s.name)) byMetric.set(s.name, []);
    byMetric.get(s.name).push(s);
  }
  for (const [metric, samples] of byMetric) drawMetric(target, metric, samples);
  renderVerdicts(data.samples);
}

function bounds(metric) {
  const spec = ((state.view && state.view.metrics) || []).find((m) => m.name === metric);
  return (spec && spec.thresholdRange) || {};
}

function drawMetric(target, metric, samples) {
  const box = el("div", null, "chart");
  target.append(box);
  const xs = samples.map((s) => Date.parse(s.at) / 1000);
  const val = (v) => (v === undefined ? null : v);
  const series = [{ label: "canary", stroke: "#d9822b", width: 2 }, { label: "stable", stroke: "#1a7f37", width: 2 }];
  const data = [xs, samples.map((s) => val(s.canary)), samples.map((s) => val(s.stable))];
  const b = bounds(metric);
  if (b.min !== undefined) { series.push({ label: "min", stroke: "#c62828", dash: [6, 4] }); data.push(xs.map(() => b.min)); }
  if (b.max !== undefined) { series.push({ label: "max", stroke: "#c62828", dash: [6, 4] }); data.push(xs.map(() => b.max)); }
  const unit = unitOf(metric);
  chart("metrics", box, unit ? metric + " (" + unit + ")" : metric, series, data);
}

function renderVerdicts(samples) {
  const body = $("d-verdicts");
  body.replaceChildren();
  for (const s of samples.slice(-20).reverse()) {
    const tr = el("tr");
    tr.append(el("td", when(s.at)), el("td", s.name), el("td", withUnit(s.canary, unitOf(s.name))), el("td", withUnit(s.stable, unitOf(s.name))),
      el("td", s.verdict + (s.message ? ": " + s.message : ""), "verdict-" + s.verdict));
    body.append(tr);
  }
}

// ---- actions ----

function renderActions() {
  const box = $("d-actions");
  box.replaceChildren();
  const viewer = !state.me || state.me.role === "viewer";
  for (const a of ACTIONS) {
    const b = el("button", a.label);
    b.type = "button";
    b.dataset.kind = a.kind;
    if (viewer) { b.disabled = true; b.title = "your token's role, viewer, may only read"; }
    b.addEventListener("click", () => confirmAction(a));
    box.append(b);
  }
}

function confirmAction(a) {
  const dlg = $("confirm");
  $("confirm-title").textContent = a.label + " " + state.name + "?";
  $("confirm-text").textContent = a.text;
  $("confirm-weight").hidden = $("confirm-weight-label").hidden = !a.weight;
  $("confirm-weight").required = !!a.weight;
  $("confirm-weight").value = state.view ? state.view.status.canaryWeight : "";
  $("confirm-reason").value = "";
  dlg.returnValue = "";
  dlg.onclose = () => { if (dlg.returnValue === "ok") runAction(a); };
  dlg.showModal();
}

async function runAction(a) {
  const out = $("d-action-result");
  const body = { kind: a.kind };
  const reason = $("confirm-reason").value.trim();
  if (reason) body.reason = reason;
  if (a.weight) body.weight = Number($("confirm-weight").value);
  out.className = "";
  out.textContent = a.label + "…";
  try {
    const v = await api("POST", "/v1/rollouts/" + encodeURIComponent(state.name) + "/commands", body);
    renderView(v);
    out.textContent = a.label + ": done.";
  } catch (e) {
    out.className = "error";
    out.textContent = a.label + " refused: " + e.message;
  }
}

// ---- routing ----

function route() {
  stopLive();
  clearCharts();
  if (!state.me) return;
  const m = location.hash.match(/^#\/rollouts\/(.+)$/);
  if (m) showDetail(decodeURIComponent(m[1]));
  else showList();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const info = await api("POST", "/ui/login", { token: $("token").value });
    $("token").value = "";
    loggedIn(info);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/ui/logout"); } catch (e) { console.warn(e); }
  showLogin();
});

// Charts follow the width of their box: a phone turned, a window resized.
window.addEventListener("resize", () => {
  for (const g of Object.keys(state.charts)) {
    for (const u of state.charts[g]) u.setSize({ width: Math.max(280, u.root.parentElement.clientWidth), height: 200 });
  }
});

window.addEventListener("hashchange", route);
api("GET", "/ui/session").then(loggedIn).catch(() => {});
