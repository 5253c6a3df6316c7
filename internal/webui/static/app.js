// The miniray dashboard page: a task list (#/) and a page per task (#/task/<id>),
// fed by the dashboard's REST API and kept current by its event stream.
//
// The page listens to /api/stream (Server-Sent Events): each "change" event carries
// the statistics and the projection's version, and a new version makes the page
// refetch what it shows. When the stream breaks, for example while the dashboard
// restarts, the page polls every two seconds until the stream is back; it keeps its
// state meanwhile, and the state worth keeping across a reload (the list's filters,
// the open task, the metric its trials are compared by) lives in the URL fragment.
//
// Every string that comes from a job (names, params, errors, metric names...)
// reaches the DOM through textContent or a property set from here, never through
// HTML parsing: a task named "<img onerror=...>" must show those characters.
// The page also runs under "Content-Security-Policy: default-src 'self'", so all
// behaviour lives in scripts and no style attribute is written in markup.
"use strict";

// Polling period while the stream is down, and how long one request may take
// before it counts as failed.
const POLL_MS = 2000;
const REQUEST_TIMEOUT_MS = 10000;

// The stream reconnects by itself after a network error; after a refusal (an
// error status) the page tries again, waiting longer each time up to the maximum.
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15000;

// Refreshes that the stream asks for are at least this far apart, and twice as
// far as the last one took, so that a page showing a huge task does not spend all
// its time reloading it.
const MIN_REFRESH_GAP_MS = 250;

// Typing in the search box updates the list after this pause, not on every key.
const SEARCH_DELAY_MS = 300;

const DEFAULT_LIMIT = 50;
const DEFAULT_SORT = "-created_at";
const CHILD_LIMIT = 100;
const ROW_METRICS = 3;
const HISTORY_ROWS = 200;
// Columns of params in the trials table; a sweep rarely varies more.
const TRIAL_PARAMS = 12;

const TYPES = ["training", "inference", "tuning", "task"];
const STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "LOST"];
const SORTS = [
  "created_at", "-created_at", "updated_at", "-updated_at", "name", "-name",
  "status", "-status", "duration", "-duration",
];
const ORDERS = ["min", "max"];

// LOST is not an end: a lost task that reports again is running again.
const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

const byId = (id) => document.getElementById(id);

// app is the page's mutable state.
const app = {
  route: null, // {view: "list", query} or {view: "task", id, metric, order}
  gen: 0, // bumped on every navigation, so that late answers for the old view are dropped
  timer: 0, // the next poll, while the stream is down
  paused: false, // polling stopped while the tab is hidden
  stale: false, // a change came while the tab was hidden
  inflight: null, // AbortController of the running refresh
  pending: false, // a change came during the running refresh
  paceTimer: 0, // a refresh held back to keep refreshes apart
  lastStart: 0, // when the last refresh started, and how long it took (ms)
  lastTook: 0,
  searchTimer: 0,
  lastListHash: "#/",
  list: null, // {query, page, children}: the list as last shown
  expanded: new Set(), // tasks whose child tasks are shown under them in the list
  kids: new Map(), // task id -> how many child tasks it had when last expanded
  names: new Map(), // task id -> name, for links to parents
  taskDone: false,
  task: null, // the task as last shown
  seriesKey: "",
  historyKey: "",
  historyAll: false,
  charts: new Map(), // metric name -> its card on the task page
  trialsChart: null,
};

// live is the state of the event stream.
const live = {
  es: null,
  connected: false,
  version: null,
  retryMs: RECONNECT_MIN_MS,
  retryTimer: 0,
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
    body = JSON.parse(await res.text(), withoutBidiControls);
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

// bidiControls are the characters that override or embed a direction of writing.
// In a job's name they could make "invoice<U+202E>fdp.exe" read as "invoiceexe.pdf";
// the page shows each as U+FFFD instead, so what is shown is what the job sent.
// Every answer of the API is cleaned as it is parsed (withoutBidiControls), strings
// and object keys (metric names) alike, so that labels, tooltips and charts get
// clean text; el and setText clean again whatever else they are given.
const bidiControl = /[\u202A-\u202E\u2066-\u2069]/;
const bidiControls = new RegExp(bidiControl.source, "g");

function displayed(text) {
  return String(text).replace(bidiControls, "\uFFFD");
}

// withoutBidiControls is a JSON.parse reviver that applies displayed to every
// string and every object key.
function withoutBidiControls(key, value) {
  if (typeof value === "string") {
    return displayed(value);
  }
  if (value && typeof value === "object" && !Array.isArray(value) &&
      Object.keys(value).some((k) => bidiControl.test(k))) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [displayed(k), v]));
  }
  return value;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) {
    e.className = className;
  }
  if (text !== undefined) {
    e.textContent = displayed(text);
  }
  return e;
}

// setText changes an element's text only when it differs, so that updates do not
// wipe a text selection or make screen readers announce unchanged content.
function setText(e, text) {
  const s = text === undefined || text === null ? "" : displayed(text);
  if (e.textContent !== s) {
    e.textContent = s;
  }
}

function setAttr(e, name, value) {
  if (e.getAttribute(name) !== value) {
    e.setAttribute(name, value);
  }
}

function setLink(a, href) {
  if (href) {
    setAttr(a, "href", href);
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
    return Charts.formatNumber(v);
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

// stampTime is a local time to the millisecond, year first: short enough for the
// task summary and unambiguous in any locale.
function stampTime(sec) {
  const d = toDate(sec);
  if (!d) {
    return "";
  }
  const ms = String(d.getMilliseconds()).padStart(3, "0");
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${ms}`;
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

// setDuration writes a duration into e; a running one is kept ticking by
// tickDurations.
function setDuration(e, t, suffix) {
  const d = durationOf(t);
  setText(e, d.text && d.running && suffix ? d.text + suffix : d.text);
  e.classList.toggle("running", d.running);
  if (d.running) {
    e.dataset.started = String(t.started_at);
    e.dataset.suffix = suffix || "";
  } else {
    delete e.dataset.started;
  }
}

function tickDurations() {
  for (const e of document.querySelectorAll("[data-started]")) {
    const t = { started_at: Number(e.dataset.started), status: "RUNNING" };
    const d = durationOf(t);
    setText(e, d.text + (e.dataset.suffix || ""));
  }
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
  const qi = h.indexOf("?");
  const p = new URLSearchParams(qi >= 0 ? h.slice(qi + 1) : "");
  const m = /^\/task\/([^?]+)/.exec(h);
  if (m) {
    let id = m[1];
    try {
      id = decodeURIComponent(id);
    } catch {
      // a malformed escape: use the id as written, the API will answer 404
    }
    const metric = p.get("metric") ?? "";
    return { view: "task", id, metric, order: oneOf(p.get("order"), ORDERS) };
  }
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

function taskHash(id, opts) {
  const p = new URLSearchParams();
  if (opts && opts.metric) {
    p.set("metric", opts.metric);
  }
  if (opts && opts.order) {
    p.set("order", opts.order);
  }
  const s = p.toString();
  return "#/task/" + encodeURIComponent(id) + (s ? "?" + s : "");
}

function defaultQuery() {
  return parseRoute("#/").query;
}

// ---- navigation and refreshing

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
    clearTaskView();
    app.lastListHash = listHash(route.query);
    byId("back-link").setAttribute("href", app.lastListHash);
    syncFilters(route.query);
    if (prev && prev.view === "list" && prev.query.offset !== route.query.offset) {
      window.scrollTo(0, 0);
    }
    document.title = "miniray";
  } else if (!sameTask) {
    resetTaskView(route.id);
  } else {
    // Another metric or order for the trials: a finished task loads once more.
    app.taskDone = false;
  }
  refresh();
}

function stopRefresh() {
  clearTimeout(app.timer);
  app.timer = 0;
  clearTimeout(app.paceTimer);
  app.paceTimer = 0;
  app.paused = false;
  app.pending = false;
  if (app.inflight) {
    app.inflight.abort();
    app.inflight = null;
  }
}

// requestRefresh reloads the view after a change. Changes that come while a
// refresh runs are folded into one more refresh after it.
function requestRefresh() {
  if (document.hidden) {
    app.stale = true;
    return;
  }
  if (app.inflight) {
    app.pending = true;
    return;
  }
  const gap = Math.max(MIN_REFRESH_GAP_MS, 2 * app.lastTook);
  const wait = gap - (performance.now() - app.lastStart);
  if (wait > 0) {
    if (!app.paceTimer) {
      app.paceTimer = setTimeout(() => {
        app.paceTimer = 0;
        requestRefresh();
      }, wait);
    }
    return;
  }
  clearTimeout(app.timer);
  app.timer = 0;
  refresh();
}

// schedulePoll plans the next refresh while the stream is down.
function schedulePoll() {
  clearTimeout(app.timer);
  app.timer = setTimeout(() => {
    app.timer = 0;
    if (live.connected) {
      return;
    }
    if (document.hidden) {
      app.paused = true;
      return;
    }
    refresh();
  }, POLL_MS);
}

// refresh loads what the current view shows and renders it unless the user has
// moved on meanwhile. Without the stream it schedules the next round whatever
// happened: the dashboard may be restarting, and the page should recover by itself
// when it is back.
async function refresh() {
  const gen = app.gen;
  const route = app.route;
  const ctl = new AbortController();
  app.inflight = ctl;
  app.pending = false;
  app.stale = false;
  app.lastStart = performance.now();
  const timeout = setTimeout(() => {
    ctl.abort(new NetworkError(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`));
  }, REQUEST_TIMEOUT_MS);

  const jobs = [];
  if (!live.connected) {
    jobs.push(loadStats(ctl.signal, gen));
  }
  if (route.view === "list") {
    jobs.push(loadList(route.query, ctl.signal, gen));
  } else if (!app.taskDone) {
    jobs.push(loadTask(route, ctl.signal, gen));
  }
  const results = await Promise.allSettled(jobs);
  clearTimeout(timeout);
  if (gen !== app.gen) {
    return;
  }
  app.lastTook = performance.now() - app.lastStart;

  app.inflight = null;
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    showError(failed.reason);
  } else {
    hideError();
  }
  if (app.pending) {
    requestRefresh();
  } else if (!live.connected) {
    schedulePoll();
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && (app.paused || app.stale)) {
    app.paused = false;
    requestRefresh();
  }
});

// ---- the event stream

// connectStream opens /api/stream. While it is open the page refreshes on its
// events and does not poll; when it breaks the page polls until it is back.
function connectStream() {
  clearTimeout(live.retryTimer);
  if (typeof EventSource !== "function") {
    return; // polling only
  }
  const es = new EventSource("/api/stream");
  live.es = es;
  es.addEventListener("open", () => {
    live.connected = true;
    live.version = null; // a restarted dashboard counts its versions anew
    live.retryMs = RECONNECT_MIN_MS;
    clearTimeout(app.timer);
    app.timer = 0;
  });
  es.addEventListener("change", (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg && msg.stats && typeof msg.stats === "object") {
      renderStats(msg.stats);
    }
    if (msg && msg.version !== live.version) {
      live.version = msg.version;
      requestRefresh();
    }
  });
  es.addEventListener("error", () => {
    const wasConnected = live.connected;
    live.connected = false;
    if (wasConnected) {
      setReady("offline", "reconnecting…");
      requestRefresh(); // shows whether the API answers, and polls from then on
    }
    if (es.readyState === EventSource.CLOSED) {
      // Refused, not merely broken: the browser gives up, the page does not.
      es.close();
      live.es = null;
      live.retryTimer = setTimeout(connectStream, live.retryMs);
      live.retryMs = Math.min(2 * live.retryMs, RECONNECT_MAX_MS);
      if (!app.timer && !app.inflight) {
        schedulePoll();
      }
    }
  });
}

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
  statsSlots.replay = group("Replay");
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
  const wasReady = live.stats ? live.stats.ready : undefined;
  live.stats = s;
  if (wasReady !== s.ready && app.list) {
    renderList(); // its empty-list note depends on whether the replay is done
  }
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
  statsSlots.success.title = `${count(s.by_status && s.by_status.COMPLETED)} completed ` +
    `of ${count(finished)} finished`;

  const d = s.duration || {};
  const p50 = formatDuration(d.p50) || "–";
  const p95 = formatDuration(d.p95) || "–";
  setText(statsSlots.duration, `p50 ${p50} · p95 ${p95}`);
  statsSlots.duration.title = `mean ${formatDuration(d.mean) || "–"} over ` +
    `${count(d.count)} finished tasks`;
  const applied = count(s.events_applied);
  setText(statsSlots.events, `${applied} applied · ${count(s.events_skipped)} skipped`);

  const r = s.replay || {};
  const appliedSeq = Number(r.applied_seq) || 0;
  const target = Number(r.target_seq) || 0;
  const lag = Math.max(0, target - appliedSeq);
  if (s.ready) {
    setText(statsSlots.replay, `ready · lag ${lag.toLocaleString()}`);
    setReady(live.connected ? "live" : "polling", live.connected ? "live" : "polling");
  } else if (target > 0) {
    const pct = Math.min(100, Math.floor((100 * appliedSeq) / target));
    const text = `replaying ${pct}% · lag ${lag.toLocaleString()}`;
    setText(statsSlots.replay, text);
    setReady("replaying", `replaying ${count(appliedSeq)} / ${count(target)}`);
  } else {
    setText(statsSlots.replay, r.reason || "starting");
    setReady("replaying", r.reason || "starting");
  }
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
  for (const b of document.querySelectorAll("button.sort")) {
    b.addEventListener("click", () => sortBy(b.dataset.sort));
  }

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

// wireSkipLink makes the skip link move the focus to the content. Its fragment,
// #main, would otherwise be taken for a route and drop the list's filters or the
// open task.
function wireSkipLink() {
  document.querySelector("a.skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    byId("main").focus();
  });
}

function wireTaskView() {
  byId("trials-form").addEventListener("submit", (ev) => ev.preventDefault());
  byId("trials-metric").addEventListener("change", applyTrialsForm);
  byId("trials-order").addEventListener("change", applyTrialsForm);
  byId("history-progress").addEventListener("change", () => {
    if (app.task) {
      renderHistory(app.task);
    }
  });
  byId("history-all").addEventListener("click", () => {
    app.historyAll = true;
    if (app.task) {
      renderHistory(app.task);
    }
  });
}

function start() {
  buildStats();
  buildSummary();
  wireSkipLink();
  wireFilters();
  wireTaskView();
  window.addEventListener("hashchange", navigate);
  if (!location.hash) {
    history.replaceState(null, "", "#/");
  }
  setInterval(tickDurations, 1000);
  connectStream();
  navigate();
}

// The other scripts of the page (list.js, task.js) load after this one, deferred
// as well; they have all run by the time the document is ready.
document.addEventListener("DOMContentLoaded", start);
