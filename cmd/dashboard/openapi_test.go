package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// TestAnswersMatchOpenAPI calls every endpoint, with good and bad input, and checks
// each real answer (status code, content type, JSON shape) against openapi.json;
// for /api/stream, the first change event's data against the spec's StreamChange.
func TestAnswersMatchOpenAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI: %v", err)
	}
	srv, p := newTestServer(t)
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	fillForSpec(p)

	paths := []string{
		"/healthz", "/readyz", "/readyz?x=1",
		"/api/tasks", "/api/tasks?status=completed&sort=-name&limit=2&offset=1",
		"/api/tasks?limit=abc", "/api/tasks?bogus=1",
		"/api/training-jobs", "/api/inference-jobs", "/api/tuning-jobs?limit=1",
		"/api/training-jobs?type=tuning",
		"/api/tasks/grid", "/api/tasks/trial-1", "/api/tasks/nope", "/api/tasks/a%2Eb",
		"/api/tasks/trial-1/metrics", "/api/tasks/nope/metrics",
		"/api/tasks/grid/trials", "/api/tasks/grid/trials?metric=loss&order=min&curves=1",
		"/api/tasks/grid/trials?order=sideways",
		"/api/stats", "/api/openapi.json",
		"/metrics", "/metrics?x=1", "/api/stream?x=1",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			checkAgainstSpec(t, router, srv.URL+path)
		})
	}
	t.Run("/api/stream", func(t *testing.T) {
		checkStreamAgainstSpec(t, doc, router, srv.URL+"/api/stream")
	})

	// Every path of the spec is among those checked.
	checked := map[string]bool{}
	for _, path := range append(paths, "/api/stream") {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if route, _, err := router.FindRoute(req); err == nil {
			checked[route.Path] = true
		}
	}
	for path := range doc.Paths.Map() {
		if !checked[path] {
			t.Errorf("got no check of %s, which the spec describes", path)
		}
	}
}

// The stream's body never ends: its check reads the first event and validates the
// answer with that much of the body. kin-openapi has no decoder for event streams;
// the spec gives their body as a string.
func init() {
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.FileBodyDecoder)
}

// checkStreamAgainstSpec checks a real answer of /api/stream: status and content
// type as the spec gives them, and the data of its first change event against the
// spec's StreamChange schema.
func checkStreamAgainstSpec(t *testing.T, doc *openapi3.T, router routers.Router, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first, data, err := firstEvent(resp.Body, "change")
	if err != nil {
		t.Fatalf("read the first change event: %v\n%s", err, first)
	}
	validateAnswer(t, router, req, resp, first)

	ref, ok := doc.Components.Schemas["StreamChange"]
	if !ok {
		t.Fatal("the spec has no StreamChange schema for the stream's events")
	}
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("change event data is not JSON: %v\n%s", err, data)
	}
	if err := ref.Value.VisitJSON(v); err != nil {
		t.Fatalf("change event data does not match StreamChange: %v\n%.600s",
			firstLine(err.Error()), data)
	}
}

// firstEvent reads Server-Sent Events from r up to the end of the first event of
// type name. It returns what it read and that event's data.
func firstEvent(r io.Reader, name string) (read []byte, data string, err error) {
	br := bufio.NewReader(r)
	var buf bytes.Buffer
	var event string
	var lines []string
	for {
		line, err := br.ReadString('\n')
		buf.WriteString(line)
		if err != nil {
			return buf.Bytes(), "", err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" && event == name:
			return buf.Bytes(), strings.Join(lines, "\n"), nil
		case line == "":
			event, lines = "", nil
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

func checkAgainstSpec(t *testing.T, router routers.Router, url string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	validateAnswer(t, router, req, resp, body)
}

// validateAnswer checks the status, content type and body of an answer to req
// against the spec.
func validateAnswer(t *testing.T, router routers.Router, req *http.Request, resp *http.Response,
	body []byte) {
	t.Helper()
	url := req.URL.String()
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("no route in the spec for %s: %v", url, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{ExcludeRequestBody: true}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Fatalf("%d %s does not match the spec: %v\n%.600s", resp.StatusCode, url,
			firstLine(err.Error()), body)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// fillForSpec adds a tuning task with two trials that report metrics (one of them
// not finite), a failed task and an unfinished one.
func fillForSpec(p *projection.Projection) {
	seq := uint64(0)
	add := func(id string, tt events.TaskType, et events.Type, d events.Data) {
		e := events.New(et, id, tt, "name of "+id, d)
		seq++
		p.Apply(seq, &e)
	}
	add("grid", events.TypeTuning, events.TaskSubmitted, events.Data{Description: "grid"})
	add("grid", events.TypeTuning, events.TaskStarted, events.Data{Params: []byte(`{"n":2}`)})
	for i, loss := range []float64{0.5, math.NaN()} {
		id := []string{"trial-1", "trial-2"}[i]
		add(id, events.TypeTraining, events.TaskSubmitted, events.Data{ParentID: "grid"})
		add(id, events.TypeTraining, events.TaskStarted, events.Data{Host: "h", PID: 1})
		for step := int64(1); step <= 3; step++ {
			s, n := step, int64(3)
			add(id, events.TypeTraining, events.TaskProgress, events.Data{Step: &s, Total: &n,
				Metrics: events.Metrics{"loss": loss / float64(step), "accuracy": 0.9}})
		}
		add(id, events.TypeTraining, events.TaskCompleted, events.Data{Result: []byte(`{"a":1}`)})
	}
	add("grid", events.TypeTuning, events.TaskCompleted, events.Data{})
	add("boom", events.TypeInference, events.TaskFailed, events.Data{Error: "e", Stack: "s"})
	add("slow", events.TypeTask, events.TaskStarted, events.Data{})
}

// TestSpecCheckCanFail makes sure the check above is not vacuous: a spec that wants
// a field the answer lacks must be caught.
func TestSpecCheckCanFail(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	task := doc.Components.Schemas["Task"].Value
	task.Required = append(task.Required, "no_such_field")
	srv, p := newTestServer(t)
	fillForSpec(p)
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/tasks/grid", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	route, params, _ := router.FindRoute(req)
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req,
			PathParams: params, Route: route},
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
	})
	if err == nil || !strings.Contains(err.Error(), "no_such_field") {
		t.Fatalf("a missing required field passed: %v", err)
	}
}
