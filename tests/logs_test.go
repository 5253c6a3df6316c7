package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// logLine is one line of a program's JSON log.
type logLine struct {
	Time      string `json:"time"`
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Component string `json:"component"`
	raw       map[string]any
}

// jsonLog parses what a program wrote as a JSON log: every line but the one the
// program prints on stdout (which starts with prefix) must be a JSON object with a
// time, a level, a message and the component that logged it.
func jsonLog(t *testing.T, p *proc, prefix string) []logLine {
	t.Helper()
	var lines []logLine
	for line := range strings.Lines(p.out.String()) {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, prefix) {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%s: got a log line that is not JSON: %v\n%s", p.name, err, line)
		}
		json.Unmarshal([]byte(line), &l.raw)
		// The embedded server's banner has empty lines: msg may be empty, not missing.
		if _, ok := l.raw["msg"]; !ok || l.Time == "" || l.Level == "" || l.Component == "" {
			t.Fatalf("%s: got a log line without time, level, msg or component:\n%s", p.name,
				line)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
			t.Fatalf("%s: log time %q: %v", p.name, l.Time, err)
		}
		lines = append(lines, l)
	}
	return lines
}

// logsWith returns the lines with message msg.
func logsWith(lines []logLine, msg string) []logLine {
	var out []logLine
	for _, l := range lines {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// logLevels returns the levels that occur in lines, sorted.
func logLevels(lines []logLine) []string {
	var out []string
	for _, l := range lines {
		if !slices.Contains(out, l.Level) {
			out = append(out, l.Level)
		}
	}
	slices.Sort(out)
	return out
}

// TestJSONLogs runs the collector and two dashboards with log_format json, set by
// flag and by environment variable: every line they log is a JSON object with time,
// level, msg and component. log_level filters: the dashboard at warn logs its retries
// while NATS is not up and nothing at info, the programs at debug log the embedded
// server's notices, each HTTP request and a refused ingest.
func TestJSONLogs(t *testing.T) {
	s := newSystem(t)

	// Before NATS is up, a dashboard at warn logs its retries, nothing else.
	warnAddr := freeAddr(t)
	warn := start(t, "dashboard", []string{"MINIRAY_LOG_FORMAT=json", "MINIRAY_LOG_LEVEL=warn"},
		"--nats-url", s.natsURL(), "--http", warnAddr)
	eventually(t, "retries logged", 60*time.Second, func() error {
		if n := strings.Count(warn.out.String(), "nats not reachable yet"); n < 2 {
			return fmt.Errorf("%d retries logged", n)
		}
		return nil
	})

	s.startCollectorWith("--log-format", "json", "--log-level", "debug")
	(&dash{t: t, addr: warnAddr, proc: warn}).waitReady()
	resp, err := http.Post("http://"+s.colHTTP+"/api/v1/events", "application/json",
		strings.NewReader("[]"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST of no events: got %d, want 400", resp.StatusCode)
	}

	debugAddr := freeAddr(t)
	debug := start(t, "dashboard", nil, "--nats-url", s.natsURL(), "--http", debugAddr,
		"--log-format", "json", "--log-level", "debug")
	dd := &dash{t: t, addr: debugAddr, proc: debug}
	dd.waitReady()
	if code, err := getJSON(t.Context(), dd.url("/api/tasks?limit=3"), nil); code != 200 {
		t.Fatalf("list tasks: %d %v", code, err)
	}
	eventually(t, "the request logged", 10*time.Second, func() error {
		if !strings.Contains(debug.out.String(), `"msg":"http request"`) {
			return fmt.Errorf("no request logged")
		}
		return nil
	})
	for _, p := range []*proc{debug, warn, s.collector} {
		p.stop(t) // so that the shutdown is logged too
	}

	t.Run("dashboard at warn", func(t *testing.T) {
		lines := jsonLog(t, warn, "miniray dashboard:")
		if got := logLevels(lines); !slices.Equal(got, []string{"WARN"}) {
			t.Errorf("got levels %v, want WARN only", got)
		}
		retries := logsWith(lines, "nats not reachable yet, retrying")
		if len(retries) < 2 {
			t.Fatalf("got %d retries logged, want at least 2", len(retries))
		}
		for _, l := range retries {
			if l.Component != "dashboard" || l.raw["attempt"] == nil ||
				l.raw["url"] != s.natsURL() {
				t.Errorf("got retry %v, want the dashboard's, with the attempt and the url", l.raw)
			}
		}
		for _, msg := range []string{"dashboard listening", "nats connected", "shutting down"} {
			if n := len(logsWith(lines, msg)); n > 0 {
				t.Errorf("got %q (info) logged at level warn", msg)
			}
		}
	})

	t.Run("dashboard at debug", func(t *testing.T) {
		lines := jsonLog(t, debug, "miniray dashboard:")
		if got := logLevels(lines); !slices.Contains(got, "DEBUG") || !slices.Contains(got, "INFO") {
			t.Errorf("got levels %v, want DEBUG and INFO", got)
		}
		var listed bool
		for _, l := range logsWith(lines, "http request") {
			listed = listed || l.Level == "DEBUG" && l.Component == "dashboard" &&
				l.raw["path"] == "/api/tasks" && l.raw["status"] == 200.0
		}
		if !listed {
			t.Errorf("got no debug line for GET /api/tasks")
		}
		for msg, component := range map[string]string{
			"dashboard listening":  "dashboard",
			"nats connected":       "dashboard",
			"projection caught up": "replay",
			"shutting down":        "dashboard",
		} {
			if got := logsWith(lines, msg); len(got) != 1 || got[0].Level != "INFO" ||
				got[0].Component != component {
				t.Errorf("got %q logged as %v, want once at INFO by %s", msg, got, component)
			}
		}
	})

	t.Run("collector at debug", func(t *testing.T) {
		lines := jsonLog(t, s.collector, "miniray collector:")
		components := map[string]bool{}
		for _, l := range lines {
			components[l.Component] = true
		}
		for _, c := range []string{"collector", "nats-server", "replay"} {
			if !components[c] {
				t.Errorf("got no line of component %s, want one; have %v", c, components)
			}
		}
		if got := logLevels(lines); !slices.Contains(got, "DEBUG") || !slices.Contains(got, "INFO") {
			t.Errorf("got levels %v, want DEBUG and INFO", got)
		}
		refused := logsWith(lines, "ingest refused")
		if len(refused) != 1 || refused[0].Level != "DEBUG" || refused[0].Component != "ingest" ||
			refused[0].raw["status"] != 400.0 {
			t.Errorf("got %v, want the refused ingest once at DEBUG by ingest", refused)
		}
		if got := logsWith(lines, "collector ready"); len(got) != 1 || got[0].Level != "INFO" {
			t.Errorf("got %v, want \"collector ready\" once at INFO", got)
		}
	})
}
