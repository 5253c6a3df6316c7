// The task page of the dashboard (#/task/<id>): summary, outcome, a chart per
// metric (charts.js), the trials of a tuning task compared on one chart and in a
// ranked table, and the timeline of its events. It uses the helpers and the state
// of app.js, which loads first.
"use strict";

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
  ["host", "Host"],
  ["pid", "PID"],
  ["attempts", "Attempts"],
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
  for (const k of ["created", "started", "finished", "last_seen"]) {
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
    setText(f.time, stampTime(sec));
    const title = fullTime(sec);
    if (f.time.title !== title) {
      f.time.title = title;
    }
    if (iso && f.time.dateTime !== iso) {
      f.time.dateTime = iso;
    }
  }
}

// clearTaskView drops what the task page drew, charts first: they hold observers.
function clearTaskView() {
  for (const card of app.charts.values()) {
    card.chart.destroy();
  }
  app.charts.clear();
  byId("charts").replaceChildren();
  if (app.trialsChart) {
    app.trialsChart.destroy();
    app.trialsChart = null;
  }
  byId("trials-chart").replaceChildren();
  byId("trials-rows").replaceChildren();
  byId("trials-head").replaceChildren();
  byId("task-history").replaceChildren();
  app.task = null;
  app.seriesKey = "";
  app.historyKey = "";
  app.historyAll = false;
}

function resetTaskView(id) {
  clearTaskView();
  app.taskDone = false;
  document.title = `${id} · miniray`;
  setText(byId("task-name"), id);
  byId("task-badge").hidden = true;
  setText(byId("task-type"), "");
  byId("task-missing").hidden = true;
  byId("task-body").hidden = true;
  byId("charts-sec").hidden = true;
  byId("trials-sec").hidden = true;
  byId("back-link").setAttribute("href", app.lastListHash);
}

// loadTask loads the task and its trials, then, when the task changed since, its
// metric series. A part that fails to load does not hide the others: they are
// shown, and the error goes to the banner.
async function loadTask(route, signal, gen) {
  const id = route.id;
  const trialsURL = apiURL(`/api/tasks/${encodeURIComponent(id)}/trials`, {
    metric: route.metric,
    order: route.order,
  });
  const [task, trials] = await Promise.allSettled([
    getJSON(`/api/tasks/${encodeURIComponent(id)}`, signal),
    getJSON(trialsURL, signal),
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
  const t = task.value;
  renderTask(t);
  if (trials.status === "fulfilled") {
    renderTrials(trials.value, route);
  }

  // The series only change with the task's events.
  const key = `${t.event_count}:${t.updated_at}:${t.status}`;
  if (key !== app.seriesKey) {
    const series = await getJSON(`/api/tasks/${encodeURIComponent(id)}/metrics`, signal);
    if (gen !== app.gen) {
      return;
    }
    app.seriesKey = key;
    renderCharts(series);
  }
  if (trials.status === "rejected") {
    throw trials.reason;
  }
  const trialsRunning = trials.value.trials.some((c) => !FINISHED.has(c.status));
  app.taskDone = FINISHED.has(t.status) && !trialsRunning;
}

function renderTask(t) {
  app.task = t;
  rememberNames([t]);
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
  renderOutcome(t);
  renderHistory(t);
}

function renderSummary(t) {
  setField("task_id", t.task_id);
  summary.parent.div.hidden = !t.parent_id;
  if (t.parent_id) {
    setLink(summary.parentLink, taskHash(t.parent_id));
    setText(summary.parentLink, app.names.get(t.parent_id) || t.parent_id);
  }
  setProgress(summary.bar, summary.step, t);

  summary.duration.div.hidden = !durationOf(t).text;
  setDuration(summary.duration.dd, t, " so far");
  setTimeField("created", t.created_at, t.created_at_str);
  setTimeField("started", t.started_at, t.started_at_str);
  setTimeField("finished", t.finished_at, t.finished_at_str);
  setTimeField("last_seen", t.last_seen_at, t.last_seen_at_str);
  setField("host", t.host);
  setField("pid", t.pid ? String(t.pid) : "");
  const attempts = (Array.isArray(t.attempts) ? t.attempts.length : 0) +
    (Number(t.attempts_omitted) || 0);
  setField("attempts", attempts > 1 ? String(attempts) : "");
  setField("events", typeof t.event_count === "number" ? t.event_count.toLocaleString() : "");
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

// ---- task view: metric charts

// renderCharts draws one chart per metric, every point of it, losses first.
function renderCharts(s) {
  const series = s && s.series && typeof s.series === "object" ? s.series : {};
  const names = Object.keys(series).sort(byMetricRank);
  byId("charts-sec").hidden = names.length === 0;
  const total = Number(s.points) || 0;
  const plural = names.length === 1 ? "metric" : "metrics";
  setText(byId("charts-count"), `(${names.length} ${plural}, ${total.toLocaleString()} points)`);
  let note = "Every reported point is drawn. Drag across a chart to zoom, double-click to reset.";
  if (Number(s.attempts) > 1) {
    note += ` The task ran ${s.attempts} times; these are the points of its latest run.`;
  }
  setText(byId("charts-note"), note);

  for (const [name, card] of app.charts) {
    if (!(name in series)) {
      card.chart.destroy();
      card.fig.remove();
      app.charts.delete(name);
    }
  }
  names.forEach((name, i) => {
    let card = app.charts.get(name);
    if (!card) {
      card = newChartCard();
      app.charts.set(name, card);
    }
    byId("charts").append(card.fig); // in order
    fillChartCard(card, name, series[name], i);
  });
}

function newChartCard() {
  const fig = el("figure", "chart-card");
  const cap = el("figcaption");
  const title = el("span", "chart-title");
  const latest = el("span", "chart-latest");
  cap.append(title, latest);
  const box = el("div", "chart");
  box.setAttribute("role", "img");
  const note = el("p", "chart-note muted");
  fig.append(cap, box, note);
  return { fig, title, latest, box, note, chart: new Charts.Chart(box, { series: [] }) };
}

function fillChartCard(card, name, curve, i) {
  const { data, points, gaps } = Charts.curveData(curve || {});
  const values = curve && Array.isArray(curve.value) ? curve.value : [];
  const last = values.length > 0 ? formatValue(values[values.length - 1]) : "–";
  setText(card.title, name);
  setText(card.latest, last);
  card.latest.title = "latest value";
  card.box.dataset.metric = name;
  card.box.dataset.points = String(points);
  card.box.dataset.gaps = String(gaps);
  setAttr(card.box, "aria-label", `${name} against step: ${points} points, latest ${last}`);
  let note = `${points.toLocaleString()} points`;
  if (gaps > 0) {
    note += ` · ${gaps.toLocaleString()} not finite (NaN or ±Inf), shown as gaps`;
  }
  setText(card.note, note);
  card.chart.setData(data, {
    series: [{ label: name, color: Charts.color(i) }],
    sync: "task",
    legend: true,
  });
}

// ---- task view: trials

// renderTrials shows a task's child tasks ranked by a metric, with their curves
// of it on one chart, best first.
function renderTrials(tr, route) {
  const trials = Array.isArray(tr.trials) ? tr.trials : [];
  const total = Number(tr.total) || 0;
  byId("trials-sec").hidden = total === 0;
  if (total === 0) {
    return;
  }
  rememberNames(trials);
  const isTuning = app.task && app.task.type === "tuning";
  setText(byId("trials-title").firstChild, isTuning ? "Trials " : "Child tasks ");
  setText(byId("trials-count"), `(${total.toLocaleString()})`);
  fillTrialsForm(tr, route);
  renderTrialsChart(tr, trials);
  renderTrialsTable(tr, trials);

  const more = byId("trials-more");
  more.hidden = total <= trials.length;
  const all = byId("trials-all");
  setLink(all, listHash({ ...defaultQuery(), parent_id: tr.task_id }));
  setText(all, `All ${total.toLocaleString()} child tasks`);
}

function fillTrialsForm(tr, route) {
  const sel = byId("trials-metric");
  const names = Array.isArray(tr.metrics) ? tr.metrics : [];
  const key = JSON.stringify(names);
  if (sel.dataset.key !== key) {
    sel.dataset.key = key;
    sel.replaceChildren(...names.map((n) => {
      const o = el("option", "", n);
      o.value = n;
      return o;
    }));
  }
  byId("trials-form").hidden = names.length === 0;
  if (sel.value !== tr.metric) {
    sel.value = tr.metric;
  }
  const order = byId("trials-order");
  const auto = order.options[0];
  setText(auto, `automatic (${tr.order === "max" ? "highest" : "lowest"})`);
  const want = route.order || "";
  if (order.value !== want) {
    order.value = want;
  }
}

function trialLabel(t) {
  return t.name || t.task_id;
}

function renderTrialsChart(tr, trials) {
  const fig = byId("trials-fig");
  const drawn = trials.filter((t) => t.curve);
  const box = byId("trials-chart");
  fig.hidden = !tr.metric || drawn.length === 0;
  if (fig.hidden) {
    return;
  }
  const { data, points, gaps } = Charts.overlayData(drawn.map((t) => t.curve));
  box.dataset.series = String(drawn.length);
  box.dataset.points = String(points);
  box.dataset.metric = tr.metric;
  box.setAttribute("role", "img");
  const best = tr.order === "max" ? "highest" : "lowest";
  setAttr(box, "aria-label", `${tr.metric} against step for ${drawn.length} trials`);
  setText(byId("trials-chart-title"), `${tr.metric} of each trial`);
  let note = `best (${best} last value) drawn thickest · ${points.toLocaleString()} points`;
  if (drawn.length < trials.length || trials.length < (Number(tr.total) || 0)) {
    note += ` · the best ${drawn.length} of ${(Number(tr.total) || 0).toLocaleString()} trials`;
  }
  if (gaps > 0) {
    note += ` · ${gaps.toLocaleString()} not finite, shown as gaps`;
  }
  setText(byId("trials-chart-note"), note);

  const spec = {
    series: drawn.map((t, i) => ({
      label: trialLabel(t),
      color: Charts.color(i),
      width: i === 0 ? 3 : 1.5,
    })),
    legend: drawn.length <= 12,
    height: 300,
  };
  if (!app.trialsChart) {
    app.trialsChart = new Charts.Chart(box, spec);
  }
  app.trialsChart.setData(data, spec);
}

// paramColumns lists the params the trials have, those that differ first: they
// are what the search varied.
function paramColumns(trials) {
  const seen = new Map();
  for (const t of trials) {
    if (t.params && typeof t.params === "object" && !Array.isArray(t.params)) {
      for (const [k, v] of Object.entries(t.params)) {
        const s = JSON.stringify(v);
        if (!seen.has(k)) {
          seen.set(k, new Set());
        }
        seen.get(k).add(s);
      }
    }
  }
  const keys = Array.from(seen.keys());
  const varies = (k) => (seen.get(k).size > 1 ? 0 : 1);
  keys.sort((a, b) => varies(a) - varies(b) || (a < b ? -1 : a > b ? 1 : 0));
  return keys.slice(0, TRIAL_PARAMS);
}

function renderTrialsTable(tr, trials) {
  const params = paramColumns(trials);
  const metrics = (Array.isArray(tr.metrics) ? tr.metrics : []).slice()
    .sort((a, b) => (a === tr.metric ? -1 : b === tr.metric ? 1 : byMetricRank(a, b)));
  const head = ["#", "Status", "Name"];
  const headKey = JSON.stringify([head, metrics, params]);
  const thead = byId("trials-head");
  if (thead.dataset.key !== headKey) {
    thead.dataset.key = headKey;
    const cells = head.map((h) => th(h));
    for (const m of metrics) {
      cells.push(th(m, m === tr.metric ? "num key" : "num"));
    }
    for (const p of params) {
      cells.push(th(p, "param"));
    }
    cells.push(th("Duration", "num"));
    thead.replaceChildren(...cells);
  }

  // The trials with a curve are the best ones, drawn in the same order.
  const entries = trials.map((t, i) => ({
    key: t.task_id,
    kind: "trial",
    id: t.task_id,
    make: () => el("tr"),
    fill: (row) => {
      const color = t.curve ? Charts.color(i) : "";
      fillTrialRow(row, t, i + 1, color, metrics, params, tr.metric);
    },
  }));
  syncRows(byId("trials-rows"), entries);
}

function th(text, cls) {
  const e = el("th", cls || "", text);
  e.scope = "col";
  return e;
}

// fillTrialRow redraws one row of the trials table when what it shows changed.
function fillTrialRow(row, t, rank, color, metrics, params, key) {
  const { curve, ...shown } = t;
  const rowKey = JSON.stringify([shown, rank, color, metrics, params, key]);
  if (row.dataset.show === rowKey) {
    return;
  }
  row.dataset.show = rowKey;
  const rankCell = el("td", "num rank");
  if (color) {
    const sw = el("span", "swatch");
    sw.dataset.color = color;
    rankCell.append(sw);
  }
  rankCell.append(String(rank));
  const status = el("td");
  const badge = el("span");
  setBadge(badge, t.status);
  status.append(badge);
  const name = el("td", "name-cell");
  const a = el("a", "name", trialLabel(t));
  a.href = taskHash(t.task_id);
  name.append(a);
  const cells = [rankCell, status, name];
  for (const m of metrics) {
    const v = t.metrics ? t.metrics[m] : undefined;
    const text = v === undefined ? "–" : formatValue(v);
    cells.push(el("td", m === key ? "num mval key" : "num mval", text));
  }
  for (const p of params) {
    const v = t.params && typeof t.params === "object" ? t.params[p] : undefined;
    cells.push(el("td", "param mval", v === undefined ? "–" : compactJSON(v)));
  }
  const d = el("td", "num");
  setDuration(d, t);
  cells.push(d);
  row.replaceChildren(...cells);
  paintSwatches(row);
}

// paintSwatches colours the swatches of the trials table through the CSSOM:
// the page's CSP forbids style attributes in markup, not styles set from script.
function paintSwatches(root) {
  for (const sw of root.querySelectorAll(".swatch[data-color]")) {
    sw.style.backgroundColor = sw.dataset.color;
  }
}

function applyTrialsForm() {
  const route = app.route;
  if (!route || route.view !== "task") {
    return;
  }
  const metric = byId("trials-metric").value;
  const order = byId("trials-order").value;
  history.replaceState(null, "", taskHash(route.id, { metric, order }));
  navigate();
}

// ---- task view: timeline

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

// renderHistory shows the events newest first, the latest HISTORY_ROWS of them
// unless asked for all. It rebuilds the table only when something changed, which
// for a finished task is never.
function renderHistory(t) {
  const history = Array.isArray(t.history) ? t.history : [];
  const omitted = Number(t.history_omitted) || 0;
  const withProgress = byId("history-progress").checked;
  const last = history.length > 0 ? history[history.length - 1].event_id : "";
  const key = `${history.length}:${last}:${omitted}:${withProgress}:${app.historyAll}`;
  setText(byId("task-history-count"), `(${(history.length + omitted).toLocaleString()} events)`);
  const note = byId("task-history-omitted");
  note.hidden = omitted === 0;
  setText(note, `${omitted.toLocaleString()} earlier events are not shown.`);
  if (key === app.historyKey) {
    return;
  }
  app.historyKey = key;

  const shown = history.filter((h) => withProgress || h.event_type !== "task_progress").reverse();
  const rows = (app.historyAll ? shown : shown.slice(0, HISTORY_ROWS)).map(historyRow);
  byId("task-history").replaceChildren(...rows);
  const more = byId("history-more");
  more.hidden = app.historyAll || shown.length <= HISTORY_ROWS;
  setText(byId("history-all"), `Show all ${shown.length.toLocaleString()} events`);
}

function historyRow(h) {
  const tr = el("tr");
  const type = el("td", "event nowrap");
  type.append(el("span", "etype e-" + eventClass(h.event_type), h.event_type || "?"));
  const when = el("time", "", stampTime(h.timestamp) || h.timestamp_str || "");
  when.title = fullTime(h.timestamp);
  if (h.timestamp_str) {
    when.dateTime = h.timestamp_str;
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
}

// eventClass turns an event type into a safe class name suffix.
function eventClass(type) {
  return typeof type === "string" && /^[a-z_]+$/.test(type) ? type : "other";
}
