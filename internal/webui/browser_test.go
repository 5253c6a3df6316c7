package webui

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDashboard serves the page and canned API answers from testdata, under the
// CSP the real dashboard sends, and records what the browser asked for.
type fakeDashboard struct {
	*httptest.Server

	mu         sync.Mutex
	failLists  int      // how many more /api/tasks requests to answer with 503
	apiCalls   []string // request URIs under /api/
	cspReports []string // bodies of CSP violation reports
	strays     []string // requests for anything the page should never load
	replaying  bool     // answer as a dashboard still replaying an empty projection
}

// newFakeDashboard starts the fake; its first failLists answers for tasks are 503s,
// as from a dashboard that is starting.
func newFakeDashboard(tb testing.TB, failLists int) *fakeDashboard {
	tb.Helper()
	canned := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			tb.Fatalf("read fixture: %v", err)
		}
		return b
	}
	stats, tasks, children, task := canned("stats.json"), canned("tasks.json"),
		canned("children.json"), canned("task.json")
	trials, series := canned("trials.json"), canned("series.json")

	d := &fakeDashboard{failLists: failLists}
	files := http.FileServer(http.FS(FS()))
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; report-uri /csp-report")
		api := func(status int, body []byte) {
			d.record(&d.apiCalls, r.URL.RequestURI())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(body)
		}
		switch p := r.URL.Path; {
		case p == "/csp-report":
			b, _ := io.ReadAll(r.Body)
			d.record(&d.cspReports, string(b))
		case p == "/api/stats" && d.isReplaying():
			api(http.StatusOK, bytes.Replace(stats, []byte(`"ready": true`),
				[]byte(`"ready": false`), 1))
		case p == "/api/stats":
			api(http.StatusOK, stats)
		case p == "/api/tasks" && d.isReplaying():
			api(http.StatusOK, []byte(`{"total":0,"offset":0,"limit":50,"tasks":[]}`))
		case p == "/api/tasks" && d.takeFailure():
			api(http.StatusServiceUnavailable, []byte(`{"error":"dashboard starting"}`))
		case p == "/api/tasks" && r.URL.Query().Get("parent_id") != "":
			api(http.StatusOK, children)
		case p == "/api/tasks":
			api(http.StatusOK, tasks)
		case p == "/api/tasks/task_xss":
			api(http.StatusOK, task)
		case p == "/api/tasks/task_xss/trials":
			api(http.StatusOK, trials)
		case p == "/api/tasks/task_xss/metrics":
			api(http.StatusOK, series)
		case p == "/api/stream":
			// No stream here: the page must fall back to polling.
			api(http.StatusNotFound, []byte(`{"error":"no such endpoint"}`))
		case strings.HasPrefix(p, "/api/"):
			api(http.StatusNotFound, []byte(`{"error":"task not found"}`))
		case pageFiles[p]:
			files.ServeHTTP(w, r)
		default:
			// An <img src=x> from a fixture that was parsed as HTML lands here.
			d.record(&d.strays, r.URL.RequestURI())
			http.NotFound(w, r)
		}
	}))
	tb.Cleanup(d.Close)
	return d
}

// pageFiles are the paths the page may load besides the API.
var pageFiles = map[string]bool{
	"/": true, "/app.js": true, "/charts.js": true, "/list.js": true, "/task.js": true,
	"/style.css": true, "/favicon.svg": true,
	"/vendor/uPlot.iife.min.js": true, "/vendor/uPlot.min.css": true,
}

func (d *fakeDashboard) record(list *[]string, s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	*list = append(*list, s)
}

func (d *fakeDashboard) isReplaying() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.replaying
}

func (d *fakeDashboard) takeFailure() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failLists == 0 {
		return false
	}
	d.failLists--
	return true
}

func (d *fakeDashboard) snapshot() (apiCalls, cspReports, strays []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.apiCalls...), append([]string(nil), d.cspReports...),
		append([]string(nil), d.strays...)
}

// findChromium returns a Chromium or Chrome binary, or skips the test.
func findChromium(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("browser test skipped in short mode")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("no chromium on PATH; scripts/test.sh installs it with apt-get")
	}
	tb.Skip("no chromium on PATH")
	return ""
}

// dumpDOM loads url in headless Chromium, lets the page run for a few seconds of
// virtual time (long enough for one poll after the first load) and returns the
// resulting DOM and the browser's log, which carries the console messages.
func dumpDOM(tb testing.TB, bin, url string) (dom, log string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 60*time.Second)
	defer cancel()
	// The flags of tests/browser_test.go: nothing but the page may reach the network,
	// and nothing of the machine's own set-up may change what the page shows.
	cmd := exec.CommandContext(ctx, bin,
		"--headless",
		"--no-sandbox", // the test may run as root, where the sandbox refuses to start
		"--disable-gpu",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-dev-shm-usage",
		"--disable-extensions",
		"--disable-sync",
		"--force-color-profile=srgb",
		"--hide-scrollbars",
		"--user-data-dir="+tb.TempDir(),
		"--enable-logging=stderr",
		"--v=0",
		"--virtual-time-budget=3000",
		"--dump-dom",
		url,
	)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("run chromium: %v\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

func TestPageInChromium(t *testing.T) {
	bin := findChromium(t)

	tests := []struct {
		name      string
		fragment  string
		failures  int      // first /api/tasks requests that fail with 503
		replaying bool     // the dashboard has not caught up with the stream
		want      []string // substrings of the serialized DOM
		wantAPI   []string // substrings of some API request URI
		wantCalls [2]int   // min and max number of requests for tasks, -1 for no max
	}{
		{
			name:     "list",
			fragment: "#/",
			want: []string{
				`>&lt;img src=x onerror=alert(1)&gt;</a>`,
				`>resnet50-imagenet</a>`,
				`href="#/task/task_xss"`,
				"Showing 1–8 of 123",
				`class="badge s-failed"`,
				`<span class="mval">NaN</span>`,
				`class="ready polling"`,
				`aria-label="Show the trials of iris-sweep"`,
			},
			wantAPI:   []string{"/api/stats", "/api/tasks?sort=-created_at&limit=50&offset=0"},
			wantCalls: [2]int{2, -1}, // polled
		},
		{
			name:     "list recovers from errors",
			fragment: "#/",
			failures: 1,
			want: []string{
				`id="banner" class="banner" role="alert" hidden=""`,
				`>resnet50-imagenet</a>`,
			},
			wantCalls: [2]int{2, -1},
		},
		{
			name:      "empty list while replaying",
			fragment:  "#/",
			replaying: true,
			want:      []string{"the dashboard is still reading the stream"},
			wantCalls: [2]int{1, -1},
		},
		{
			name:      "list filters from the fragment",
			fragment:  "#/?status=RUNNING&q=iris&type=tuning&sort=name&offset=50",
			want:      []string{`>iris-sweep</a>`},
			wantCalls: [2]int{1, -1},
			wantAPI: []string{
				"/api/tasks?type=tuning&status=RUNNING&q=iris&sort=name&limit=50&offset=50",
			},
		},
		{
			name:     "task",
			fragment: "#/task/task_xss",
			want: []string{
				`<h2 id="task-name">&lt;img src=x onerror=alert(1)&gt;</h2>`,
				`&lt;b&gt;not bold&lt;/b&gt;`,
				`&lt;script&gt;alert(2)&lt;/script&gt; diverged`,
				"main.train(&lt;0xc000&gt;)",
				`"html": "&lt;i&gt;x&lt;/i&gt;"`,
				`href="#/task/tuning_iris"`,
				`&lt;img src=x onerror=alert(1)&gt;-child</a>`,
				`<span class="chart-title">&lt;img src=x onerror=alert(1)&gt;</span>`,
				`data-points="2" data-gaps="1"`,
				`id="trials-chart" class="chart" data-series="2" data-points="5"`,
				`<option value="&lt;b&gt;m&lt;/b&gt;">&lt;b&gt;m&lt;/b&gt;</option>`,
				`&lt;i&gt;p&lt;/i&gt;</th>`,
				`"&lt;u&gt;v&lt;/u&gt;"</td>`,
				"task_failed",
				"Timeline <span",
			},
			wantAPI: []string{
				"/api/tasks/task_xss",
				"/api/tasks/task_xss/trials",
				"/api/tasks/task_xss/metrics",
			},
			wantCalls: [2]int{3, 3}, // finished: loaded once, with its trials and series
		},
		{
			name:      "missing task",
			fragment:  "#/task/nope",
			want:      []string{"Error 404: task not found", `No task with id “nope”`},
			wantAPI:   []string{"/api/tasks/nope"},
			wantCalls: [2]int{4, -1}, // still looking after the 404
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDashboard(t, tt.failures)
			d.replaying = tt.replaying
			dom, log := dumpDOM(t, bin, d.URL+"/"+tt.fragment)
			apiCalls, cspReports, strays := d.snapshot()

			for _, w := range tt.want {
				if !strings.Contains(dom, w) {
					t.Errorf("got a DOM without %q", w)
				}
			}
			for _, w := range tt.wantAPI {
				if !containsAny(apiCalls, w) {
					t.Errorf("got API calls %q, want one with %q", apiCalls, w)
				}
			}
			n := 0
			for _, c := range apiCalls {
				if strings.HasPrefix(c, "/api/tasks") {
					n++
				}
			}
			if lo, hi := tt.wantCalls[0], tt.wantCalls[1]; n < lo || hi >= 0 && n > hi {
				t.Errorf("got %d requests for tasks, want %d to %d", n, lo, hi)
			}
			if strings.Contains(dom, "<img") || strings.Contains(dom, "<script>alert") {
				t.Error("got job data parsed as HTML, want it as text")
			}
			if len(strays) > 0 {
				t.Errorf("got requests for %q, want none outside the page and the API", strays)
			}
			if len(cspReports) > 0 {
				t.Errorf("got CSP violations, want none:\n%s", strings.Join(cspReports, "\n"))
			}
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, ":CONSOLE") && strings.Contains(line, "Uncaught") {
					t.Errorf("got a script error: %s", line)
				}
			}
			if t.Failed() {
				t.Logf("DOM:\n%s", dom)
			}
		})
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
