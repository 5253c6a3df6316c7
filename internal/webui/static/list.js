// The task list of the dashboard page (#/): filters, sorting, paging, and the
// child tasks of a tuning task grouped under it. It uses the helpers and the
// state of app.js, which loads first.
"use strict";

// ---- task rows, shared by the list and the child tasks under a task

const rowParts = new WeakMap();

function newTaskRow() {
  const tr = el("tr");
  const p = {
    badge: el("span", "badge"),
    type: el("span", "type"),
    name: el("td", "name-cell"),
    toggle: null,
    link: el("a", "name"),
    count: el("span", "kids"),
    hint: el("span", "hint"),
    hintLink: el("a"),
    bar: el("progress"),
    step: el("span", "step"),
    metrics: el("td", "metrics opt"),
    metricsKey: null,
    duration: el("td", "num duration"),
    started: el("time"),
  };
  p.hint.append("↳ in ", p.hintLink);
  p.hint.hidden = true;
  p.count.hidden = true;
  p.name.append(p.link, p.count, p.hint);
  const cell = (cls, ...children) => {
    const td = el("td", cls);
    td.append(...children);
    return td;
  };
  tr.append(
    cell("status-cell", p.badge),
    cell("type-cell", p.type),
    p.name,
    cell("progress-cell", p.bar, p.step),
    p.metrics,
    p.duration,
    cell("opt nowrap started-cell", p.started),
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
    setAttr(bar, "aria-label", `step ${step} of ${total}`);
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

function byMetricRank(a, b) {
  const r = metricRank(a) - metricRank(b);
  if (r !== 0) {
    return r;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

// metricEntries lists a task's metrics, losses and accuracies first, then by name.
function metricEntries(metrics) {
  if (!metrics || typeof metrics !== "object") {
    return [];
  }
  return Object.entries(metrics).sort((a, b) => byMetricRank(a[0], b[0]));
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

// fillTaskRow shows task t in a row. opts.child marks a row shown under its parent;
// opts.expandable gives the row a button that shows its child tasks under it, and
// opts.kids says how many it has, when known.
function fillTaskRow(tr, t, opts) {
  const p = rowParts.get(tr);
  tr.classList.toggle("child", Boolean(opts.child));
  setBadge(p.badge, t.status);
  setText(p.type, t.type);
  setLink(p.link, taskHash(t.task_id));
  setText(p.link, t.name || t.task_id);
  p.link.classList.toggle("unnamed", !t.name);
  const tip = t.description || t.task_id;
  if (p.link.title !== tip) {
    p.link.title = tip;
  }
  fillToggle(p, t, opts.expandable);
  p.count.hidden = !opts.kids;
  if (opts.kids) {
    const noun = t.type === "tuning" ? "trial" : "child task";
    setText(p.count, `${opts.kids.toLocaleString()} ${noun}${opts.kids === 1 ? "" : "s"}`);
  }

  const hint = Boolean(t.parent_id) && !opts.child;
  p.hint.hidden = !hint;
  if (hint) {
    setLink(p.hintLink, taskHash(t.parent_id));
    setText(p.hintLink, app.names.get(t.parent_id) || t.parent_id);
  }
  setProgress(p.bar, p.step, t);
  fillMetricsCell(p, t.metrics);
  setDuration(p.duration, t);
  setTime(p.started, t.started_at || t.created_at, t.started_at_str || t.created_at_str);
}

function fillToggle(p, t, expandable) {
  if (!expandable) {
    if (p.toggle) {
      p.toggle.remove();
      p.toggle = null;
    }
    return;
  }
  if (!p.toggle) {
    p.toggle = el("button", "toggle");
    p.toggle.type = "button";
    p.toggle.addEventListener("click", () => toggleChildren(p.toggle.dataset.id));
    p.name.prepend(p.toggle);
  }
  const open = app.expanded.has(t.task_id);
  p.toggle.dataset.id = t.task_id;
  setAttr(p.toggle, "aria-expanded", String(open));
  setAttr(p.toggle, "aria-label", `${open ? "Hide" : "Show"} the trials of ${t.name || t.task_id}`);
  setText(p.toggle, open ? "▾" : "▸");
}

// syncRows makes tbody show one row per entry in order, updating rows in place so
// that refreshes keep the keyboard focus, a text selection and the scroll position.
// An entry has a key, a make() for a new row and a fill(tr).
function syncRows(tbody, entries) {
  // Moving a row that holds the focus drops it (a row moves when its task changes
  // place in the order); it is given back once the rows are in place.
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  const old = new Map();
  for (const tr of Array.from(tbody.rows)) {
    old.set(tr.dataset.key, tr);
  }
  entries.forEach((e, i) => {
    let tr = old.get(e.key);
    if (tr && tr.dataset.kind === e.kind) {
      old.delete(e.key);
    } else {
      tr = e.make();
      tr.dataset.key = e.key;
      tr.dataset.kind = e.kind;
    }
    tr.dataset.id = e.id || "";
    e.fill(tr);
    const at = tbody.rows[i];
    if (at !== tr) {
      tbody.insertBefore(tr, at || null);
    }
  });
  for (const tr of old.values()) {
    tr.remove();
  }
  if (focused && focused.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
  }
}

function taskEntry(key, t, opts) {
  return {
    key,
    kind: "task",
    id: t.task_id,
    make: newTaskRow,
    fill: (tr) => fillTaskRow(tr, t, opts),
  };
}

// noteEntry is a row of one cell under a group of child rows.
function noteEntry(key, fill) {
  return {
    key,
    kind: "note",
    make: () => {
      const tr = el("tr", "child note-row");
      const td = el("td");
      td.colSpan = 7;
      tr.append(td);
      return tr;
    },
    fill: (tr) => fill(tr.cells[0]),
  };
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
    setText(link, app.names.get(q.parent_id) || q.parent_id);
    setLink(byId("f-parent-clear"), listHash({ ...q, parent_id: "", offset: 0 }));
  }
  const key = q.sort.replace(/^-/, "");
  const desc = q.sort.startsWith("-");
  for (const b of document.querySelectorAll("button.sort")) {
    const th = b.parentElement;
    if (b.dataset.sort === key) {
      setAttr(th, "aria-sort", desc ? "descending" : "ascending");
    } else {
      th.removeAttribute("aria-sort");
    }
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

// sortBy sorts the list by a column: a second click on the same column turns the
// order around. Names sort A to Z first, the rest largest or newest first.
function sortBy(key) {
  const cur = byId("f-sort").value || DEFAULT_SORT;
  let next = key === "name" ? key : "-" + key;
  if (cur.replace(/^-/, "") === key) {
    next = cur.startsWith("-") ? key : "-" + key;
  }
  byId("f-sort").value = next;
  applyFilters();
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
  if (gen !== app.gen) {
    return;
  }
  const tasks = Array.isArray(page.tasks) ? page.tasks : [];
  const open = tasks.filter((t) => app.expanded.has(t.task_id));
  const loaded = await Promise.all(open.map((t) => getJSON(childrenURL(t.task_id), signal)));
  if (gen !== app.gen) {
    return;
  }
  const children = new Map(open.map((t, i) => [t.task_id, loaded[i]]));
  for (const [id, kids] of children) {
    app.kids.set(id, Number(kids.total) || 0);
  }
  app.list = { query: q, page, children };
  renderList();
}

function childrenURL(id) {
  return apiURL("/api/tasks", { parent_id: id, sort: "created_at", limit: CHILD_LIMIT });
}

function toggleChildren(id) {
  if (app.expanded.has(id)) {
    app.expanded.delete(id);
  } else {
    app.expanded.add(id);
  }
  renderList();
  requestRefresh();
}

function rememberNames(tasks) {
  for (const t of tasks) {
    if (t && t.task_id && t.name) {
      app.names.set(t.task_id, t.name);
    }
  }
}

function renderList() {
  if (!app.list) {
    return;
  }
  const { query: q, page, children } = app.list;
  const tasks = Array.isArray(page.tasks) ? page.tasks : [];
  rememberNames(tasks);

  // A child task whose parent is on the same page is folded under it, as the
  // parent's group, rather than listed on its own.
  const onPage = new Set(tasks.map((t) => t.task_id));
  const isTop = (t) => !t.parent_id || t.parent_id === t.task_id || !onPage.has(t.parent_id);
  const top = new Set(tasks.filter(isTop).map((t) => t.task_id));
  const folded = new Map();
  for (const t of tasks) {
    if (!isTop(t) && top.has(t.parent_id)) {
      folded.set(t.parent_id, (folded.get(t.parent_id) || 0) + 1);
    }
  }

  const entries = [];
  for (const t of tasks) {
    if (!isTop(t) && top.has(t.parent_id)) {
      continue;
    }
    const kids = children.get(t.task_id);
    const known = kids ? Number(kids.total) || 0 : app.kids.get(t.task_id) || 0;
    const count = Math.max(known, folded.get(t.task_id) || 0);
    const open = app.expanded.has(t.task_id);
    const expandable = t.type === "tuning" || count > 0 || open;
    entries.push(taskEntry(t.task_id, t, { expandable, kids: count }));
    if (!open) {
      continue;
    }
    const list = kids && Array.isArray(kids.tasks) ? kids.tasks : null;
    for (const c of list || []) {
      entries.push(taskEntry(t.task_id + "/" + c.task_id, c, { child: true }));
    }
    const total = kids ? Number(kids.total) || 0 : 0;
    if (!list || list.length === 0 || total > list.length) {
      entries.push(noteEntry(t.task_id + "/note", (td) => {
        if (!list) {
          setText(td, "loading…");
          return;
        }
        if (total === 0) {
          setText(td, "no child tasks");
          return;
        }
        const a = el("a", "", `all ${total.toLocaleString()} child tasks`);
        a.href = listHash({ ...defaultQuery(), parent_id: t.task_id });
        td.replaceChildren(a);
      }));
    }
  }
  syncRows(byId("task-rows"), entries);

  const total = Number(page.total) || 0;
  const offset = Number.isFinite(page.offset) ? page.offset : q.offset;
  const limit = Number(page.limit) > 0 ? page.limit : q.limit;
  const empty = byId("list-empty");
  empty.hidden = tasks.length > 0;
  if (tasks.length === 0) {
    const filtered = q.type || q.status || q.q.trim() || q.parent_id;
    // Before the replay has caught up, an empty page says nothing about the stream.
    const loading = live.stats && live.stats.ready === false;
    let why = filtered ? "No tasks match." : "No tasks yet.";
    if (loading) {
      why = "No tasks loaded yet: the dashboard is still reading the stream.";
    }
    setText(empty, total > 0 ? "Nothing on this page." : why);
  }

  let info = "No tasks";
  if (tasks.length > 0) {
    const first = (offset + 1).toLocaleString();
    const last = (offset + tasks.length).toLocaleString();
    info = `Showing ${first}–${last} of ${total.toLocaleString()}`;
  } else if (total > 0) {
    info = `${total.toLocaleString()} in all`;
  }
  setText(byId("page-info"), info);

  const lastPage = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const prevOffset = Math.max(0, Math.min(offset - limit, lastPage));
  const hasPrev = offset > 0;
  const hasNext = offset + tasks.length < total;
  setLink(byId("page-first"), hasPrev ? listHash({ ...q, offset: 0 }) : "");
  setLink(byId("page-prev"), hasPrev ? listHash({ ...q, offset: prevOffset }) : "");
  setLink(byId("page-next"), hasNext ? listHash({ ...q, offset: offset + limit }) : "");
  setLink(byId("page-last"), hasNext ? listHash({ ...q, offset: lastPage }) : "");
}
