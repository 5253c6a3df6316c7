package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

func newTestServer(t *testing.T) (*httptest.Server, *projection.Projection) {
	t.Helper()
	p := projection.New(nil)
	srv := httptest.NewServer(newRouter(&state{proj: p}, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, p
}

func addTask(p *projection.Projection, id string, tt events.TaskType, end events.Type) {
	for _, et := range []events.Type{events.TaskSubmitted, events.TaskStarted, end} {
		if et == "" {
			continue
		}
		e := events.New(et, id, tt, "name of "+id, events.Data{})
		p.Apply(p.LastSeq()+1, &e)
	}
}

func get(t *testing.T, url string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: body is not JSON: %s", url, body)
		}
	}
	return resp.StatusCode, resp.Header, v
}

func TestAPIAnswers(t *testing.T) {
	srv, p := newTestServer(t)
	addTask(p, "a", events.TypeTraining, events.TaskCompleted)
	addTask(p, "b", events.TypeTraining, events.TaskFailed)
	addTask(p, "c", events.TypeInference, "")

	cases := []struct {
		path  string
		code  int
		total float64
	}{
		{"/api/tasks", 200, 3},
		{"/api/tasks?status=failed", 200, 1},
		{"/api/tasks?type=training&sort=-name&limit=1", 200, 2},
		{"/api/training-jobs", 200, 2},
		{"/api/inference-jobs", 200, 1},
		{"/api/tuning-jobs", 200, 0},
		{"/api/tasks?q=OF%20C", 200, 1},
		{"/api/tasks?type=TRAINING", 200, 2},
		// An empty value is no value, for limit as for the others.
		{"/api/tasks?limit=&offset=&sort=&q=", 200, 3},
	}
	for _, c := range cases {
		code, _, body := get(t, srv.URL+c.path)
		if code != c.code || body["total"] != c.total {
			t.Errorf("%s: got %d total %v, want %d total %v", c.path, code, body["total"], c.code, c.total)
		}
	}

	code, _, body := get(t, srv.URL+"/api/tasks/a")
	if code != 200 || body["status"] != "COMPLETED" || len(body["history"].([]any)) != 3 {
		t.Fatalf("task a: got %d %v", code, body)
	}
	code, _, body = get(t, srv.URL+"/api/stats")
	if code != 200 || body["total"] != 3.0 || body["success_rate"] != 0.5 || body["ready"] != false {
		t.Fatalf("stats: got %d %v", code, body)
	}
}

func TestAPIRefusesBadInput(t *testing.T) {
	srv, _ := newTestServer(t)
	cases := []struct {
		path string
		code int
		says string
	}{
		{"/api/tasks?limit=ten", 400, "limit"},
		{"/api/tasks?limit=0x10", 400, "limit"},
		{"/api/tasks?limit=100000", 400, "limit"},
		{"/api/tasks?offset=-1", 400, "offset"},
		{"/api/tasks?offset=99999999999999999999999", 400, "offset: out of range"},
		{"/api/tasks?status=DONE", 400, "status"},
		{"/api/tasks?type=robot", 400, "type"},
		{"/api/tasks?sort=size", 400, "sort"},
		{"/api/tasks?stauts=RUNNING", 400, "stauts"},
		{"/api/tasks?limit=1&limit=2", 400, "limit"},
		{"/api/tasks?parent_id=a.*", 400, "parent_id"},
		{"/api/training-jobs?type=tuning", 400, "type"},
		{"/api/tasks/nope", 404, "nope"},
		{"/api/tasks/a%2Eb", 400, "task_id"},
		{"/api/nothing", 404, "/api/nothing"},
		{"/no-such-file.js", 404, "not found"},
		{"/api/tasks?q=%zz", 400, "query string"},
		{"/api/tasks?q=%", 400, "query string"},
		{"/api/tasks?limit=0", 400, "limit"},
		{"/api/tasks?limit=-1", 400, "limit"},
		{"/api/stats?x=1", 400, "no query parameters"},
		{"/readyz?verbose=1", 400, "no query parameters"},
		{"/api/tasks/a?x=1", 400, "no query parameters"},
		{"/api/tasks/", 404, "/api/tasks/"},
		{"/api/tasks/%E2%9C%93", 400, "'✓'"},
	}
	for _, c := range cases {
		code, h, body := get(t, srv.URL+c.path)
		msg, _ := body["error"].(string)
		if code != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: got %d %q, want %d naming %q", c.path, code, msg, c.code, c.says)
		}
		if h.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no Content-Security-Policy", c.path)
		}
	}

	for path, want := range map[string]int{"/api/tasks": 405, "/": 405, "/app.js": 405,
		"/nothing.js": 404} {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: got %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Head(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || len(body) != 0 {
		t.Errorf("HEAD /readyz: got %d with %d bytes, want 503 and no body", resp.StatusCode, len(body))
	}
}

func TestReadyzAndPage(t *testing.T) {
	srv, _ := newTestServer(t)
	code, _, body := get(t, srv.URL+"/readyz")
	if code != 503 || body["reason"] != "waiting for nats" {
		t.Fatalf("readyz before nats: got %d %v", code, body)
	}
	if code, _, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz: got %d", code)
	}
	code, h, _ := get(t, srv.URL+"/")
	csp := h.Get("Content-Security-Policy")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("page: got %d %q csp %q", code, h.Get("Content-Type"), csp)
	}
}

func TestMetrics(t *testing.T) {
	srv, p := newTestServer(t)
	addTask(p, "a", events.TypeTraining, events.TaskCompleted)
	get(t, srv.URL+"/api/tasks")
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"miniray_events_applied_total 3",
		`miniray_tasks{status="COMPLETED"} 1`,
		`miniray_events_skipped_total{kind="malformed"} 0`,
		"miniray_replay_ready 0",
		"miniray_nats_connected 0",
		`miniray_http_request_duration_seconds_count{code="200",method="GET",route="/api/tasks"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
