// The miniray dashboard page: a task list (#/) and a page per task (#/task/<id>),
// fed by the dashboard's REST API and refreshed by polling.
//
// Every string that comes from a job (names, params, errors, metric names...)
// reaches the DOM through textContent or a property set from here, never through
// HTML parsing: a task named "<img onerror=...>" must show those characters.
// The page also runs under "Content-Security-Policy: default-src 'self'", so all
// behaviour lives in this file and no style attribute is written in markup.
"use strict";

// Polling period, and how long one request may take before it counts as failed.
const POLL_MS = 2000;
const REQUEST_TIMEOUT_MS = 10000;

// Typing in the search box updates the list after this pause, not on every key.
const SEARCH_DELAY_MS = 300;

const DEFAULT_LIMIT = 50;
const DEFAULT_SORT = "-created_at";
const CHILD_LIMIT = 100;
const ROW_METRICS = 3;

const TYPES = ["training", "inference", "tuning", "task"];
const STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "LOST"];
const SORTS = [
  "created_at", "-created_at", "updated_at", "-updated_at", "name", "-name",
  "status", "-status", "duration", "-duration",
];

// LOST is not an end: a lost task that reports again is running again.
const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

const byId = (id) => document.getElementById(id);

// app is the page's whole mutable state.
const app = {
  route: null, // {view: "list", query} or {view: "task", id}
  gen: 0, // bumped on every navigation, so that late answers for the old view are dropped
  timer: 0,
  paused: false, // polling stopped while the tab is hidden
  inflight: null, // AbortController of the running refresh
  searchTimer: 0,
  lastListHash: "#/",
  taskDone: false,
  historyKey: "",
};

// ---- errors and fetching

// APIError is an answer of the API with an error status.
class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "APIError";
    this.status = status;
  }
}

// NetworkError is a request that got no answer: the dashboard is down or restarting.
class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = "NetworkError";
  }
}

async function getJSON(path, signal) {
  let res;
  try {
    res = await fetch(path, { signal, cache: "no-store", headers: { Accept: "application/json" } });
  } catch (err) {
    if (signal.aborted) {
      throw signal.reason ?? err;
    }
    throw new NetworkError(err.message || "no answer");
  }
  let body = null;
  try {
    body = await res.json();
  } catch (err) {
    if (signal.aborted) {
      throw signal.reason ?? err;
    }
    body = null;
  }
  if (!res.ok) {
    const msg = body && typeof body.error === "string" ? body.error : res.statusText;
    throw new APIError(res.status, msg || "request failed");
  }
  if (body === null || typeof body !== "object") {
    throw new APIError(res.status, "the answer is not a JSON object");
  }
  return body;
}

function apiURL(path, params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== "" && v !== undefined && v !== null) {
      p.set(k, String(v));
    }
  }
  const s = p.toString();
  return s ? path + "?" + s : path;
}

function showError(err) {
  let text;
  if (err instanceof NetworkError) {
    text = `Cannot reach the dashboard (${err.message}). Retrying every ${POLL_MS / 1000} s…`;
    setReady("offline", "offline, retrying");
  } else if (err instanceof APIError) {
    text = `Error ${err.status}: ${err.message}`;
  } else {
    text = `Error: ${err && err.message ? err.message : String(err)}`;
  }
  setText(byId("banner-text"), text);
  byId("banner").hidden = false;
}

function hideError() {
  byId("banner").hidden = true;
}

// ---- small DOM helpers

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) {
    e.className = className;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

// setText changes an element's text only when it differs, so that polling does not
// wipe a text selection or make screen readers announce unchanged content.
function setText(e, text) {
  const s = text === undefined || text === null ? "" : String(text);
  if (e.textContent !== s) {
    e.textContent = s;
  }
}

function setLink(a, href) {
  if (href) {
    if (a.getAttribute("href") !== href) {
      a.setAttribute("href", href);
    }
    a.removeAttribute("aria-disabled");
  } else {
    a.removeAttribute("href");
    a.setAttribute("aria-disabled", "true");
  }
}

function setBadge(e, status) {
  const known = STATUSES.includes(status);
  const cls = "badge " + (known ? "s-" + status.toLowerCase() : "s-unknown");
  if (e.className !== cls) {
    e.className = cls;
  }
  setText(e, status || "unknown");
}

// ---- formatting

function pad2(n) {
  return String(n).padStart(2, "0");
}

function formatDuration(s) {
  if (typeof s !== "number" || !Number.isFinite(s) || s < 0) {
    return "";
  }
  if (s < 1) {
    return Math.round(s * 1000) + " ms";
  }
  if (s < 60) {
    return (s < 10 ? s.toFixed(2) : s.toFixed(1)) + " s";
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m}m ${pad2(Math.floor(s % 60))}s`;
  }
  const h = Math.floor(m / 60);
  if (h < 24) {
    return `${h}h ${pad2(m % 60)}m`;
  }
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

// formatValue writes a metric value short: integers as they are, other numbers with
// five significant digits, very small or large ones in exponent form. The strings
// "NaN", "+Inf" and "-Inf" that stand for non-finite values are shown as sent.
function formatValue(v) {
  if (typeof v === "number") {
    const a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e9) {
      return String(v);
    }
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
      return v.toExponential(3).replace(/\.?0+e/, "e");
    }
    return String(Number(v.toPrecision(5)));
  }
  if (typeof v === "string") {
    return v;
  }
  return JSON.stringify(v);
}

// formatJSON shows any JSON value as indented text; a bare string is shown as is.
function formatJSON(v) {
  if (typeof v === "string") {
    return v;
  }
  return JSON.stringify(v, null, 2);
}

const clockFmt = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const dayFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
});
const fullFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3,
  timeZoneName: "short",
});

function toDate(sec) {
  return typeof sec === "number" && Number.isFinite(sec) && sec > 0 ? new Date(sec * 1000) : null;
}

// shortTime is the clock time for today and the date and minute for other days.
function shortTime(sec) {
  const d = toDate(sec);
  if (!d) {
    return "";
  }
  return d.toDateString() === new Date().toDateString() ? clockFmt.format(d) : dayFmt.format(d);
}

function fullTime(sec) {
  const d = toDate(sec);
  return d ? fullFmt.format(d) : "";
}

function setTime(e, sec, iso) {
  setText(e, shortTime(sec));
  const title = fullTime(sec);
  if (e.title !== title) {
    e.title = title;
  }
  if (iso && e.dateTime !== iso) {
    e.dateTime = iso;
  }
}

// durationOf is the task's duration, or for a running task the time since it
// started, marked as running. Client and server clocks may differ: never below 0.
function durationOf(t) {
  if (typeof t.duration === "number") {
    return { text: formatDuration(t.duration), running: false };
  }
  const started = toDate(t.started_at);
  if (started && t.status === "RUNNING") {
    const s = Math.max(0, (Date.now() - started.getTime()) / 1000);
    return { text: formatDuration(s), running: true };
  }
  return { text: "", running: false };
}

// ---- routes

function oneOf(v, allowed) {
  return allowed.includes(v) ? v : "";
}

function intIn(v, min, max, dflt) {
  const n = Number.parseInt(v ?? "", 10);
  return Number.isFinite(n) && n >= min && n <= max ? n : dflt;
}

function parseRoute(hash) {
  const h = hash.replace(/^#/, "");
  const m = /^\/task\/([^?]+)/.exec(h);
  if (m) {
    let id = m[1];
    try {
      id = decodeURIComponent(id);
    } catch {
      // a malformed escape: use the id as written, the API will answer 404
    }
    return { view: "task", id };
  }
  const qi = h.indexOf("?");
  const p = new URLSearchParams(qi >= 0 ? h.slice(qi + 1) : "");
  return {
    view: "list",
    query: {
      type: oneOf(p.get("type"), TYPES),
      status: oneOf(p.get("status"), STATUSES),
      q: p.get("q") ?? "",
      parent_id: p.get("parent_id") ?? "",
      sort: oneOf(p.get("sort"), SORTS) || DEFAULT_SORT,
      limit: intIn(p.get("limit"), 1, 1000, DEFAULT_LIMIT),
      offset: intIn(p.get("offset"), 0, Number.MAX_SAFE_INTEGER, 0),
    },
  };
}

// listHash is the route of a list query; defaults are left out to keep URLs short.
function listHash(q) {
  const p = new URLSearchParams();
  for (const k of ["type", "status", "q", "parent_id"]) {
    if (q[k]) {
      p.set(k, q[k]);
    }
  }
  if (q.sort && q.sort !== DEFAULT_SORT) {
    p.set("sort", q.sort);
  }
  if (q.limit && q.limit !== DEFAULT_LIMIT) {
    p.set("limit", String(q.limit));
  }
  if (q.offset > 0) {
    p.set("offset", String(q.offset));
  }
  const s = p.toString();
  return s ? "#/?" + s : "#/";
}

function taskHash(id) {
  return "#/task/" + encodeURIComponent(id);
}

function defaultQuery() {
  return parseRoute("#/").query;
}

// ---- polling

function navigate() {
  const prev = app.route;
  const route = parseRoute(location.hash);
  const sameTask = prev && prev.view === "task" && route.view === "task" && prev.id === route.id;
  app.route = route;
  app.gen++;
  stopRefresh();

  if (!prev || prev.view !== route.view || (route.view === "task" && !sameTask)) {
    showView(route.view);
    if (prev) {
      window.scrollTo(0, 0);
      byId("main").focus({ preventScroll: true });
    }
  }
  if (route.view === "list") {
    app.lastListHash = listHash(route.query);
    byId("back-link").setAttribute("href", app.lastListHash);
    syncFilters(route.query);
    if (prev && prev.view === "list" && prev.query.offset !== route.query.offset) {
      window.scrollTo(0, 0);
    }
    document.title = "miniray";
  } else if (!sameTask) {
    resetTaskView(route.id);
  }
  refresh();
}

function stopRefresh() {
  clearTimeout(app.timer);
  app.timer = 0;
  app.paused = false;
  if (app.inflight) {
    app.inflight.abort();
    app.inflight = null;
  }
}

function schedule() {
  clearTimeout(app.timer);
  app.timer = setTimeout(() => {
    app.timer = 0;
    if (document.hidden) {
      app.paused = true;
      return;
    }
    refresh();
  }, POLL_MS);
}

// refresh loads what the current view shows, renders it unless the user has moved
// on meanwhile, and schedules the next round whatever happened: the dashboard may be
// restarting, and the page should recover by itself when it is back.
async function refresh() {
  const gen = app.gen;
  const route = app.route;
  const ctl = new AbortController();
  app.inflight = ctl;
  const timeout = setTimeout(() => {
    ctl.abort(new NetworkError(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`));
  }, REQUEST_TIMEOUT_MS);

  const jobs = [loadStats(ctl.signal, gen)];
  if (route.view === "list") {
    jobs.push(loadList(route.query, ctl.signal, gen));
  } else if (!app.taskDone) {
    jobs.push(loadTask(route.id, ctl.signal, gen));
  }
  const results = await Promise.allSettled(jobs);
  clearTimeout(timeout);
  if (gen !== app.gen) {
    return;
  }

  app.inflight = null;
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    showError(failed.reason);
  } else {
    hideError();
  }
  schedule();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && app.paused) {
    app.paused = false;
    refresh();
  }
});

// ---- header statistics

const statsSlots = {};

function buildStats() {
  const dl = byId("stats");
  const group = (label, cls) => {
    const div = el("div", cls);
    div.append(el("dt", "", label));
    const dd = el("dd");
    div.append(dd);
    dl.append(div);
    return dd;
  };
  statsSlots.total = group("Tasks");

  const byStatus = group("By status", "chips");
  statsSlots.status = {};
  for (const s of STATUSES) {
    const a = el("a", "chip");
    a.href = listHash({ ...defaultQuery(), status: s });
    const badge = el("span");
    setBadge(badge, s);
    const n = el("span", "count", "0");
    a.append(badge, n);
    byStatus.append(a);
    statsSlots.status[s] = n;
  }

  const byType = group("By type", "chips");
  statsSlots.type = {};
  for (const t of TYPES) {
    const a = el("a", "chip");
    a.href = listHash({ ...defaultQuery(), type: t });
    const n = el("span", "count", "0");
    a.append(el("span", "type", t), n);
    byType.append(a);
    statsSlots.type[t] = n;
  }

  statsSlots.success = group("Success");
  statsSlots.duration = group("Duration");
  statsSlots.events = group("Events");
}

function setReady(state, text) {
  const r = byId("ready");
  const cls = "ready " + state;
  if (r.className !== cls) {
    r.className = cls;
  }
  setText(r, text);
}

async function loadStats(signal, gen) {
  const s = await getJSON("/api/stats", signal);
  if (gen === app.gen) {
    renderStats(s);
  }
}

function count(v) {
  return typeof v === "number" && Number.isFinite(v) ? v.toLocaleString() : "0";
}

function renderStats(s) {
  setText(statsSlots.total, count(s.total));
  for (const st of STATUSES) {
    setText(statsSlots.status[st], count(s.by_status && s.by_status[st]));
  }
  for (const t of TYPES) {
    setText(statsSlots.type[t], count(s.by_type && s.by_type[t]));
  }

  const finished = ["COMPLETED", "FAILED", "CANCELLED"]
    .reduce((n, st) => n + ((s.by_status && s.by_status[st]) || 0), 0);
  const rate = typeof s.success_rate === "number" && finished > 0
    ? (s.success_rate * 100).toFixed(1) + "%"
    : "–";
  setText(statsSlots.success, rate);

  const d = s.duration || {};
  const p50 = formatDuration(d.p50) || "–";
  const p95 = formatDuration(d.p95) || "–";
  setText(statsSlots.duration, `p50 ${p50} · p95 ${p95}`);
  const applied = count(s.events_applied);
  setText(statsSlots.events, `${applied} applied · ${count(s.events_skipped)} skipped`);

  if (s.ready) {
    setReady("live", "live");
  } else {
    const r = s.replay || {};
    const done = count(r.applied_seq);
    const target = count(r.target_seq);
    setReady("replaying", `replaying ${done} / ${target}`);
  }
}

// ---- task rows, shared by the list and the child tasks of a task

const rowParts = new WeakMap();

function newTaskRow() {
  const tr = el("tr");
  const p = {
    badge: el("span", "badge"),
    type: el("span", "type"),
    link: el("a", "name"),
    bar: el("progress"),
    step: el("span", "step"),
    metrics: el("td", "metrics opt"),
    metricsKey: null,
    duration: el("td", "num"),
    created: el("time"),
  };
  const cell = (cls, ...children) => {
    const td = el("td", cls);
    td.append(...children);
    return td;
  };
  tr.append(
    cell("", p.badge),
    cell("", p.type),
    cell("name-cell", p.link),
    cell("progress-cell", p.bar, p.step),
    p.metrics,
    p.duration,
    cell("opt nowrap", p.created),
  );
  rowParts.set(tr, p);
  return tr;
}

function setProgress(bar, label, t) {
  const step = Number(t.progress && t.progress.step) || 0;
  const total = Number(t.progress && t.progress.total) || 0;
  if (bar.dataset.status !== t.status) {
    bar.dataset.status = t.status || "";
  }
  if (total > 0) {
    bar.hidden = false;
    bar.max = total;
    bar.value = Math.min(Math.max(step, 0), total);
    setText(label, `${step} / ${total}`);
    const pct = `${Math.floor((100 * Math.min(step, total)) / total)}%`;
    if (bar.title !== pct) {
      bar.title = pct;
    }
    bar.setAttribute("aria-label", `step ${step} of ${total}`);
  } else {
    bar.hidden = true;
    setText(label, step > 0 ? `step ${step}` : "–");
  }
}

// metricRank puts losses, then accuracies, before other metrics: a row has room
// for a few, and those are the ones people look for first.
function metricRank(name) {
  const n = name.toLowerCase();
  if (n.includes("loss")) {
    return 0;
  }
  return n.includes("acc") ? 1 : 2;
}

// metricEntries lists a task's metrics, losses and accuracies first, then by name.
function metricEntries(metrics) {
  if (!metrics || typeof metrics !== "object") {
    return [];
  }
  return Object.entries(metrics).sort((a, b) => {
    const r = metricRank(a[0]) - metricRank(b[0]);
    if (r !== 0) {
      return r;
    }
    return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
  });
}

function fillMetricsCell(p, metrics) {
  const entries = metricEntries(metrics);
  const key = JSON.stringify(entries);
  if (key === p.metricsKey) {
    return;
  }
  p.metricsKey = key;
  const shown = entries.slice(0, ROW_METRICS).map(([k, v]) => {
    const span = el("span", "metric");
    span.append(el("span", "mname", k), el("span", "mval", formatValue(v)));
    return span;
  });
  if (entries.length > ROW_METRICS) {
    shown.push(el("span", "muted", `+${entries.length - ROW_METRICS}`));
  }
  p.metrics.replaceChildren(...shown);
  p.metrics.title = entries.map(([k, v]) => `${k} = ${formatValue(v)}`).join("\n");
}

function fillTaskRow(tr, t) {
  const p = rowParts.get(tr);
  setBadge(p.badge, t.status);
  setText(p.type, t.type);
  setLink(p.link, taskHash(t.task_id));
  setText(p.link, t.name || t.task_id);
  p.link.classList.toggle("unnamed", !t.name);
  const tip = t.description || t.task_id;
  if (p.link.title !== tip) {
    p.link.title = tip;
  }
  setProgress(p.bar, p.step, t);
  fillMetricsCell(p, t.metrics);
  const d = durationOf(t);
  setText(p.duration, d.text);
  p.duration.classList.toggle("running", d.running);
  setTime(p.created, t.created_at, t.created_at_str);
}

// syncRows makes tbody show one row per task in order, updating rows in place so
// that polling keeps the keyboard focus, a text selection and the scroll position.
function syncRows(tbody, tasks) {
  const old = new Map();
  for (const tr of Array.from(tbody.rows)) {
    old.set(tr.dataset.id, tr);
  }
  tasks.forEach((t, i) => {
    let tr = old.get(t.task_id);
    if (tr) {
      old.delete(t.task_id);
    } else {
      tr = newTaskRow();
      tr.dataset.id = t.task_id;
    }
    fillTaskRow(tr, t);
    const at = tbody.rows[i];
    if (at !== tr) {
      tbody.insertBefore(tr, at || null);
    }
  });
  for (const tr of old.values()) {
    tr.remove();
  }
}

// ---- list view

function syncFilters(q) {
  for (const [id, v] of [["f-type", q.type], ["f-status", q.status], ["f-sort", q.sort]]) {
    const s = byId(id);
    if (s.value !== v) {
      s.value = v;
    }
  }
  const input = byId("f-q");
  if (!app.searchTimer && input.value !== q.q) {
    input.value = q.q;
  }
  const parent = byId("f-parent");
  parent.hidden = !q.parent_id;
  if (q.parent_id) {
    const link = byId("f-parent-link");
    setLink(link, taskHash(q.parent_id));
    setText(link, q.parent_id);
    setLink(byId("f-parent-clear"), listHash({ ...q, parent_id: "", offset: 0 }));
  }
}

// filtersQuery is the list query the filter controls ask for, back on page one.
function filtersQuery() {
  const q = app.route && app.route.view === "list" ? app.route.query : defaultQuery();
  return {
    ...q,
    type: byId("f-type").value,
    status: byId("f-status").value,
    q: byId("f-q").value,
    sort: byId("f-sort").value || DEFAULT_SORT,
    offset: 0,
  };
}

// applyFilters replaces the current history entry rather than adding one, so that
// Back leaves the list instead of undoing keystrokes.
function applyFilters() {
  clearTimeout(app.searchTimer);
  app.searchTimer = 0;
  const h = listHash(filtersQuery());
  if (h !== (location.hash || "#/")) {
    history.replaceState(null, "", h);
    navigate();
  }
}

async function loadList(q, signal, gen) {
  const url = apiURL("/api/tasks", {
    type: q.type,
    status: q.status,
    parent_id: q.parent_id,
    q: q.q.trim(),
    sort: q.sort,
    limit: q.limit,
    offset: q.offset,
  });
  const page = await getJSON(url, signal);
  if (gen === app.gen) {
    renderList(q, page);
  }
}

function renderList(q, page) {
  const tasks = Array.isArray(page.tasks) ? page.tasks : [];
  syncRows(byId("task-rows"), tasks);

  const total = Number(page.total) || 0;
  const offset = Number.isFinite(page.offset) ? page.offset : q.offset;
  const limit = Number(page.limit) > 0 ? page.limit : q.limit;
  const empty = byId("list-empty");
  empty.hidden = tasks.length > 0;
  if (tasks.length === 0) {
    const filtered = q.type || q.status || q.q.trim() || q.parent_id;
    const why = filtered ? "No tasks match." : "No tasks yet.";
    setText(empty, total > 0 ? "Nothing on this page." : why);
  }

  let info = "No tasks";
  if (tasks.length > 0) {
    info = `Showing ${offset + 1}–${offset + tasks.length} of ${total.toLocaleString()}`;
  } else if (total > 0) {
    info = `${total.toLocaleString()} in all`;
  }
  setText(byId("page-info"), info);

  const lastPage = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const prevOffset = Math.max(0, Math.min(offset - limit, lastPage));
  const prev = offset > 0 ? listHash({ ...q, offset: prevOffset }) : "";
  const next = offset + tasks.length < total ? listHash({ ...q, offset: offset + limit }) : "";
  setLink(byId("page-prev"), prev);
  setLink(byId("page-next"), next);
}

// ---- task view

const SUMMARY = [
  ["task_id", "Task ID"],
  ["parent", "Parent"],
  ["progress", "Progress"],
  ["duration", "Duration"],
  ["created", "Created"],
  ["started", "Started"],
  ["finished", "Finished"],
  ["last_seen", "Last seen"],
  ["updated", "Updated"],
  ["host", "Host"],
  ["pid", "PID"],
  ["events", "Events"],
];

const summary = {};

function buildSummary() {
  const dl = byId("task-summary");
  for (const [key, label] of SUMMARY) {
    const div = el("div");
    const dd = el("dd");
    div.append(el("dt", "", label), dd);
    dl.append(div);
    summary[key] = { div, dd };
  }
  summary.parentLink = el("a");
  summary.parent.dd.append(summary.parentLink);
  summary.bar = el("progress");
  summary.step = el("span", "step");
  summary.progress.dd.classList.add("progress-cell");
  summary.progress.dd.append(summary.bar, summary.step);
  for (const k of ["created", "started", "finished", "last_seen", "updated"]) {
    summary[k].time = el("time");
    summary[k].dd.append(summary[k].time);
  }
}

function setField(key, text) {
  const f = summary[key];
  f.div.hidden = text === "" || text === undefined || text === null;
  if (!f.div.hidden) {
    setText(f.dd, text);
  }
}

function setTimeField(key, sec, iso) {
  const f = summary[key];
  f.div.hidden = !toDate(sec);
  if (!f.div.hidden) {
    setText(f.time, fullTime(sec));
    if (iso && f.time.dateTime !== iso) {
      f.time.dateTime = iso;
      f.time.title = iso;
    }
  }
}

function resetTaskView(id) {
  app.taskDone = false;
  app.historyKey = "";
  document.title = `${id} · miniray`;
  setText(byId("task-name"), id);
  byId("task-badge").hidden = true;
  setText(byId("task-type"), "");
  byId("task-missing").hidden = true;
  byId("task-body").hidden = true;
  byId("task-children").replaceChildren();
  byId("task-history").replaceChildren();
  byId("back-link").setAttribute("href", app.lastListHash);
}

// loadTask loads the task and its children. Children that fail to load do not
// hide the task: it is shown, and the error goes to the banner.
async function loadTask(id, signal, gen) {
  const childURL = apiURL("/api/tasks", {
    parent_id: id,
    sort: "created_at",
    limit: CHILD_LIMIT,
  });
  const [task, children] = await Promise.allSettled([
    getJSON(`/api/tasks/${encodeURIComponent(id)}`, signal),
    getJSON(childURL, signal),
  ]);
  if (gen !== app.gen) {
    return;
  }
  if (task.status === "rejected") {
    const err = task.reason;
    if (err instanceof APIError && err.status === 404) {
      byId("task-body").hidden = true;
      byId("task-missing").hidden = false;
      const msg = `No task with id “${id}”, or not yet: the page keeps looking.`;
      setText(byId("task-missing"), msg);
    }
    throw err;
  }
  renderTask(task.value, children.status === "fulfilled" ? children.value : null);
  if (children.status === "rejected") {
    throw children.reason;
  }
  app.taskDone = FINISHED.has(task.value.status);
}

function renderTask(t, children) {
  const title = t.name || t.task_id;
  document.title = `${title} · miniray`;
  setText(byId("task-name"), title);
  const badge = byId("task-badge");
  badge.hidden = false;
  setBadge(badge, t.status);
  setText(byId("task-type"), t.type);
  byId("task-missing").hidden = true;
  byId("task-body").hidden = false;

  const desc = byId("task-desc");
  desc.hidden = !t.description;
  setText(desc, t.description);

  renderSummary(t);
  renderMetrics(t.metrics);
  renderOutcome(t);
  if (children) {
    renderChildren(t.task_id, children);
  }
  renderHistory(t);
}

function renderSummary(t) {
  setField("task_id", t.task_id);
  summary.parent.div.hidden = !t.parent_id;
  if (t.parent_id) {
    setLink(summary.parentLink, taskHash(t.parent_id));
    setText(summary.parentLink, t.parent_id);
  }
  setProgress(summary.bar, summary.step, t);

  const d = durationOf(t);
  setField("duration", d.text && (d.running ? `${d.text} so far` : d.text));
  setTimeField("created", t.created_at, t.created_at_str);
  setTimeField("started", t.started_at, t.started_at_str);
  setTimeField("finished", t.finished_at, t.finished_at_str);
  setTimeField("last_seen", t.last_seen_at, t.last_seen_at_str);
  setTimeField("updated", t.updated_at, t.updated_at_str);
  setField("host", t.host);
  setField("pid", t.pid ? String(t.pid) : "");
  setField("events", typeof t.event_count === "number" ? String(t.event_count) : "");
}

function renderMetrics(metrics) {
  const entries = metricEntries(metrics);
  byId("task-metrics-sec").hidden = entries.length === 0;
  const body = byId("task-metrics");
  const key = JSON.stringify(entries);
  if (body.dataset.key === key) {
    return;
  }
  body.dataset.key = key;
  body.replaceChildren(...entries.map(([k, v]) => {
    const tr = el("tr");
    const th = el("th", "", k);
    th.scope = "row";
    tr.append(th, el("td", "num", formatValue(v)));
    return tr;
  }));
}

function renderOutcome(t) {
  const hasError = Boolean(t.error || t.stack);
  byId("task-error-sec").hidden = !hasError;
  setText(byId("task-error"), t.error || "(no message)");
  byId("task-stack-box").hidden = !t.stack;
  setText(byId("task-stack"), t.stack);

  const hasResult = t.result !== undefined;
  byId("task-result-sec").hidden = !hasResult;
  setText(byId("task-result"), hasResult ? formatJSON(t.result) : "");

  const params = byId("task-params");
  const hasParams = t.params !== undefined && t.params !== null;
  setText(params, hasParams ? formatJSON(t.params) : "none");
  params.classList.toggle("muted", !hasParams);
}

function renderChildren(id, page) {
  const tasks = Array.isArray(page.tasks) ? page.tasks : [];
  const total = Number(page.total) || 0;
  byId("task-children-sec").hidden = total === 0 && tasks.length === 0;
  syncRows(byId("task-children"), tasks);
  setText(byId("task-children-count"), `(${total.toLocaleString()})`);
  const more = byId("task-children-more");
  more.hidden = total <= tasks.length;
  const all = byId("task-children-all");
  setLink(all, listHash({ ...defaultQuery(), parent_id: id }));
  setText(all, `All ${total.toLocaleString()} child tasks`);
}

// historyData is an event's data without the step and total the Step column shows.
function historyData(data) {
  if (!data || typeof data !== "object") {
    return "";
  }
  const rest = { ...data };
  delete rest.step;
  delete rest.total;
  return Object.keys(rest).length > 0 ? compactJSON(rest) : "";
}

// compactJSON writes v as JSON on one line, with a space after each comma and
// colon so that the browser can wrap it.
function compactJSON(v) {
  if (Array.isArray(v)) {
    return "[" + v.map(compactJSON).join(", ") + "]";
  }
  if (v && typeof v === "object") {
    const parts = Object.entries(v).map(([k, x]) => JSON.stringify(k) + ": " + compactJSON(x));
    return "{" + parts.join(", ") + "}";
  }
  return JSON.stringify(v) ?? "null";
}

function historyStep(data) {
  if (!data || typeof data.step !== "number") {
    return "";
  }
  if (typeof data.total === "number" && data.total > 0) {
    return `${data.step} / ${data.total}`;
  }
  return String(data.step);
}

// renderHistory shows the events newest first. It rebuilds the table only when the
// history changed, which for a finished task is never.
function renderHistory(t) {
  const history = Array.isArray(t.history) ? t.history : [];
  const omitted = Number(t.history_omitted) || 0;
  const last = history.length > 0 ? history[history.length - 1].event_id : "";
  const key = `${history.length}:${last}:${omitted}`;
  setText(byId("task-history-count"), `(${history.length + omitted})`);
  const note = byId("task-history-omitted");
  note.hidden = omitted === 0;
  setText(note, `${omitted.toLocaleString()} earlier events are not shown.`);
  if (key === app.historyKey) {
    return;
  }
  app.historyKey = key;

  const rows = history
    .slice()
    .sort((a, b) => (b.timestamp || 0) - (a.timestamp || 0))
    .map((h) => {
      const tr = el("tr");
      const type = el("td", "event nowrap");
      type.append(el("span", "etype e-" + eventClass(h.event_type), h.event_type || "?"));
      const when = el("time", "", fullTime(h.timestamp) || h.timestamp_str || "");
      if (h.timestamp_str) {
        when.dateTime = h.timestamp_str;
        when.title = h.timestamp_str;
      }
      const time = el("td", "nowrap");
      time.append(when);
      const data = el("td", "data");
      const text = historyData(h.data);
      if (text) {
        data.append(el("pre", "", text));
      }
      tr.append(type, time, el("td", "num", historyStep(h.data)), data);
      return tr;
    });
  byId("task-history").replaceChildren(...rows);
}

// eventClass turns an event type into a safe class name suffix.
function eventClass(type) {
  return typeof type === "string" && /^[a-z_]+$/.test(type) ? type : "other";
}

// ---- start

function showView(view) {
  byId("list-view").hidden = view !== "list";
  byId("task-view").hidden = view !== "task";
}

function wireFilters() {
  const form = byId("filters");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  for (const id of ["f-type", "f-status", "f-sort"]) {
    byId(id).addEventListener("change", applyFilters);
  }
  byId("f-q").addEventListener("input", () => {
    clearTimeout(app.searchTimer);
    app.searchTimer = setTimeout(applyFilters, SEARCH_DELAY_MS);
  });
  byId("f-reset").addEventListener("click", () => {
    clearTimeout(app.searchTimer);
    app.searchTimer = 0;
    byId("f-q").value = "";
    const q = app.route && app.route.view === "list" ? app.route.query : defaultQuery();
    const h = listHash({ ...defaultQuery(), parent_id: q.parent_id });
    history.replaceState(null, "", h);
    navigate();
  });

  // "/" jumps to the search box, as on many sites.
  document.addEventListener("keydown", (ev) => {
    const tag = ev.target && ev.target.tagName;
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) {
      return;
    }
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
      return;
    }
    if (app.route && app.route.view === "list") {
      ev.preventDefault();
      byId("f-q").focus();
    }
  });
}

function start() {
  buildStats();
  buildSummary();
  wireFilters();
  window.addEventListener("hashchange", navigate);
  if (!location.hash) {
    history.replaceState(null, "", "#/");
  }
  navigate();
}

start();
