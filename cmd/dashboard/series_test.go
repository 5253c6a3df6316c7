package main

import (
	"math"
	"strings"
	"testing"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// addProgress applies a progress event of task id with the given metrics.
func addProgress(p *projection.Projection, id, name, parent string, step int64, m events.Metrics) {
	if _, ok := p.Get(id); !ok {
		e := events.New(events.TaskSubmitted, id, events.TypeTraining, name,
			events.Data{ParentID: parent})
		p.Apply(p.LastSeq()+1, &e)
	}
	total := int64(3)
	e := events.New(events.TaskProgress, id, events.TypeTraining, name,
		events.Data{Step: &step, Total: &total, Metrics: m})
	p.Apply(p.LastSeq()+1, &e)
}

func TestSeriesEndpoint(t *testing.T) {
	srv, p := newTestServer(t)
	for s := int64(1); s <= 3; s++ {
		loss := 1 / float64(s)
		if s == 2 {
			loss = math.NaN()
		}
		addProgress(p, "a", "a", "", s, events.Metrics{"loss": loss, "acc": float64(s) / 4})
	}

	code, _, body := get(t, srv.URL+"/api/tasks/a/metrics")
	if code != 200 || body["points"] != 6.0 {
		t.Fatalf("metrics of a: got %d %v, want 200 with 6 points", code, body)
	}
	loss := body["series"].(map[string]any)["loss"].(map[string]any)
	values := loss["value"].([]any)
	if len(values) != 3 || values[1] != "NaN" || values[2] != 1/3.0 {
		t.Errorf("loss values: got %v, want [1 NaN 0.333...]", values)
	}

	cases := []struct {
		path string
		code int
		says string
	}{
		{"/api/tasks/nope/metrics", 404, "nope"},
		{"/api/tasks/a%2Eb/metrics", 400, "task_id"},
		{"/api/tasks/a/metrics?every=10", 400, "every"},
	}
	for _, c := range cases {
		code, _, body := get(t, srv.URL+c.path)
		msg, _ := body["error"].(string)
		if code != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: got %d %q, want %d naming %q", c.path, code, msg, c.code, c.says)
		}
	}
}

func TestTrialsEndpoint(t *testing.T) {
	srv, p := newTestServer(t)
	addProgress(p, "tune", "tune", "", 1, events.Metrics{"best_acc": 0.9})
	for i, acc := range []float64{0.5, 0.9, 0.7} {
		id := "trial" + string(rune('a'+i))
		for s := int64(1); s <= 3; s++ {
			addProgress(p, id, id, "tune", s, events.Metrics{"acc": acc, "loss": 1 - acc})
		}
	}

	cases := []struct {
		query       string
		metric, ord string
		first       string
	}{
		{"", "acc", "max", "trialb"},
		{"?metric=loss", "loss", "min", "trialb"},
		{"?metric=acc&order=min", "acc", "min", "triala"},
	}
	for _, c := range cases {
		code, _, body := get(t, srv.URL+"/api/tasks/tune/trials"+c.query)
		if code != 200 {
			t.Fatalf("trials%s: got %d %v", c.query, code, body)
		}
		trials := body["trials"].([]any)
		first := trials[0].(map[string]any)
		curve := first["curve"].(map[string]any)
		if body["metric"] != c.metric || body["order"] != c.ord || first["task_id"] != c.first ||
			len(trials) != 3 || len(curve["step"].([]any)) != 3 {
			t.Errorf("trials%s: got %v %v first %v (%d trials), want %s %s first %s",
				c.query, body["metric"], body["order"], first["task_id"], len(trials),
				c.metric, c.ord, c.first)
		}
	}

	bad := []struct {
		path string
		code int
		says string
	}{
		{"/api/tasks/nope/trials", 404, "nope"},
		{"/api/tasks/tune/trials?order=best", 400, "order"},
		{"/api/tasks/tune/trials?curves=lots", 400, "curves"},
		{"/api/tasks/tune/trials?curves=0", 400, "curves"},
		{"/api/tasks/tune/trials?metric=a&metric=b", 400, "metric"},
		{"/api/tasks/tune/trials?sort=name", 400, "sort"},
	}
	for _, c := range bad {
		code, _, body := get(t, srv.URL+c.path)
		msg, _ := body["error"].(string)
		if code != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: got %d %q, want %d naming %q", c.path, code, msg, c.code, c.says)
		}
	}

	// A task without trials has an empty list of them and of their metrics, not null.
	code, _, body := get(t, srv.URL+"/api/tasks/triala/trials")
	metrics, ok := body["metrics"].([]any)
	trials, tok := body["trials"].([]any)
	if code != 200 || !ok || len(metrics) != 0 || !tok || len(trials) != 0 {
		t.Errorf("trials of a task without any: got %d %v, want empty lists", code, body)
	}
}
