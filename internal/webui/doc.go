// Package webui holds the dashboard's web page: static files embedded in the
// binary and served as they are. Building the dashboard needs no npm.
//
// The page is one HTML document, one style sheet and four scripts of its own:
// app.js (fetching, routing, the event stream, the statistics), list.js (the task
// list), task.js (a task's page) and charts.js (the charts). The charts are drawn
// by uPlot, whose built files are vendored under static/vendor with their license:
// web/package.json and web/package-lock.json pin the version, scripts/web.sh
// installs it from the npm registry and copies it there, and a test checks that
// the copy is the pinned version (and, when web/node_modules exists, that it is
// byte for byte the installed one).
//
// The page reads the dashboard's REST API from the same origin and listens to
// its event stream, /api/stream: every "change" event carries the statistics,
// and a new version of the projection makes the page refetch what it shows.
// While the stream is down, for example while the dashboard restarts, the page
// polls every two seconds and reconnects by itself. It routes on the URL
// fragment: "#/" is the task list, whose filters live in the fragment's query
// ("#/?status=RUNNING&q=iris&offset=50", with type, status, q, parent_id, sort,
// limit and offset) so that a reload or a shared link keeps them, and
// "#/task/<id>" is one task ("#/task/<id>?metric=loss&order=min" compares its
// trials by loss, lowest first).
//
// A task's charts get every point the task reported, one chart per metric
// against step: nothing is sampled. NaN and the infinities, which the API sends
// as the strings "NaN", "+Inf" and "-Inf", are drawn as gaps in the line, and the
// chart's note counts them. Each chart element carries data-points, the number of
// points it was given.
//
// Guarantees the page keeps, so that the server can be strict:
//
//   - It loads nothing from another origin: no CDN, no web fonts.
//   - It runs under "Content-Security-Policy: default-src 'self'": no inline
//     script, no inline event handler, no style attribute in markup. Colours
//     that depend on data (a trial's swatch) are set from script through the
//     CSSOM, which that policy allows, as uPlot does for its own elements.
//   - Text that comes from a job (names, params, errors, stacks, metric names,
//     results) is put in the page as text, never parsed as HTML; uPlot too sets
//     series labels with textContent.
//   - Its controls are native links, buttons and form fields, so that Tab
//     reaches each and the keyboard works it, with a visible focus. The skip
//     link moves the focus itself: its fragment, #main, would otherwise be taken
//     for a route.
//
// The tests check the first two on the files and, where Chromium is installed,
// the third in a real browser against a fake API whose canned answers, in
// testdata, are checked against the dashboard's OpenAPI description;
// tests/browser_test.go drives the page against the real programs, from the
// keyboard too.
package webui
