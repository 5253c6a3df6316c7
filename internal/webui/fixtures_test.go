package webui

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// specPath is the dashboard's OpenAPI description, which a test of the dashboard
// checks its real answers against.
var specPath = filepath.Join("..", "..", "cmd", "dashboard", "openapi.json")

// fixtures maps each canned answer of the fake dashboard to the request it answers,
// as in newFakeDashboard.
var fixtures = map[string]string{
	"stats.json":    "/api/stats",
	"tasks.json":    "/api/tasks",
	"children.json": "/api/tasks?parent_id=task_xss&sort=created_at&limit=100",
	"task.json":     "/api/tasks/task_xss",
	"trials.json":   "/api/tasks/task_xss/trials",
	"series.json":   "/api/tasks/task_xss/metrics",
}

// TestFixturesMatchOpenAPI checks every fixture against the schema the dashboard's
// OpenAPI description gives its endpoint, so that the page's tests run on answers
// the real API could give: a field renamed in the API fails here, not in production.
func TestFixturesMatchOpenAPI(t *testing.T) {
	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI: %v", err)
	}
	const base = "http://dashboard.test"
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}

	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			path, ok := fixtures[name]
			if !ok {
				t.Fatalf("got fixture %s, which no endpoint answers in this test", name)
			}
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("no route in the spec for %s: %v", path, err)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params,
				Route: route}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Fatalf("the request %s does not match the spec: %v", path, firstLine(err))
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in,
				Status:                 http.StatusOK,
				Header:                 http.Header{"Content-Type": {"application/json"}},
				Body:                   io.NopCloser(bytes.NewReader(body)),
				Options:                &openapi3filter.Options{IncludeResponseStatus: true},
			}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Fatalf("%s does not match the spec's answer to GET %s: %v", name, path,
					firstLine(err))
			}
		})
	}
	for name := range fixtures {
		if _, err := os.Stat(filepath.Join("testdata", name)); err != nil {
			t.Errorf("fixture %s: %v", name, err)
		}
	}
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}
