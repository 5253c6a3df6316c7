// Package webui holds the dashboard's web page: static files embedded in the
// binary and served as they are, with no build step.
//
// The page is one HTML document, one script and one style sheet. It reads the
// dashboard's REST API (/api/stats, /api/tasks, /api/tasks/<id>) from the same
// origin and refreshes by polling every two seconds. It routes on the URL
// fragment: "#/" is the task list, whose filters live in the fragment's query
// ("#/?status=RUNNING&q=iris&offset=50", with type, status, q, parent_id, sort,
// limit and offset) so that a reload or a shared link keeps them, and
// "#/task/<id>" is one task.
//
// Guarantees the page keeps, so that the server can be strict:
//
//   - It loads nothing from another origin: no CDN, no web fonts.
//   - It runs under "Content-Security-Policy: default-src 'self'": no inline
//     script, no inline event handler, no style attribute in markup.
//   - Text that comes from a job (names, params, errors, stacks, metric names,
//     results) is put in the page as text, never parsed as HTML.
//
// The tests check the first two on the files and, where Chromium is installed,
// the third in a real browser against a fake API.
package webui
