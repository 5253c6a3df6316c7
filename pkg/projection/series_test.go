package projection

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

// progressEvent returns a progress event of task id at timestamp ts; a negative
// step leaves the step out.
func progressEvent(id, attempt string, ts float64, step int64, m events.Metrics) events.Event {
	d := events.Data{Attempt: attempt, Metrics: m}
	if step >= 0 {
		d.Step = &step
	}
	e := events.New(events.TaskProgress, id, events.TypeTraining, "job "+id, d)
	e.Timestamp = ts
	return e
}

func curveOf(steps []int64, values ...float64) *Curve {
	c := &Curve{Step: steps}
	for _, v := range values {
		c.Value = append(c.Value, Value(v))
	}
	return c
}

func TestSeriesKeepsEveryPointInStepOrder(t *testing.T) {
	p := New(nil)
	evs := []events.Event{
		// Arrival order is not step order, step 2 is reported twice, one event has no
		// step and "acc" is not in every event.
		progressEvent("t", "a1", 10, 3, events.Metrics{"loss": 0.3}),
		progressEvent("t", "a1", 11, 1, events.Metrics{"loss": 1, "acc": 0.5}),
		progressEvent("t", "a1", 12, 2, events.Metrics{"loss": math.NaN()}),
		progressEvent("t", "a1", 13, 2, events.Metrics{"loss": math.Inf(1), "acc": 0.7}),
		progressEvent("t", "a1", 14, -1, events.Metrics{"loss": 0.25}),
		progressEvent("t", "a1", 15, 4, nil),
	}
	applyAll(p, evs)

	got, ok := p.Series("t")
	if !ok {
		t.Fatal("got no series for a known task")
	}
	want := map[string]*Curve{
		"loss": curveOf([]int64{1, 2, 2, 2, 3}, 1, math.NaN(), math.Inf(1), 0.25, 0.3),
		"acc":  curveOf([]int64{1, 2}, 0.5, 0.7),
	}
	if got.Points != 7 || got.Attempts != 1 || got.Attempt != "a1" {
		t.Errorf("got %d points of attempt %q (%d), want 7 of a1 (1)", got.Points, got.Attempt,
			got.Attempts)
	}
	for name, w := range want {
		g := got.Series[name]
		if g == nil || !reflect.DeepEqual(g.Step, w.Step) || !sameValues(g.Value, w.Value) {
			t.Errorf("series %s: got %+v, want %+v", name, g, w)
		}
	}
	if _, ok := p.Series("nope"); ok {
		t.Error("got series for an unknown task, want none")
	}
}

func sameValues(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return false
		}
	}
	return true
}

func TestSeriesShowsTheLatestAttempt(t *testing.T) {
	p := New(nil)
	applyAll(p, []events.Event{
		progressEvent("t", "first", 10, 1, events.Metrics{"loss": 9}),
		progressEvent("t", "first", 11, 2, events.Metrics{"loss": 8}),
		progressEvent("t", "second", 20, 1, events.Metrics{"loss": 1}),
	})
	got, _ := p.Series("t")
	if got.Attempt != "second" || got.Attempts != 2 || got.Points != 1 {
		t.Fatalf("got attempt %q of %d with %d points, want second of 2 with 1", got.Attempt,
			got.Attempts, got.Points)
	}
}

func TestCurveJSON(t *testing.T) {
	c := curveOf([]int64{1, 2, 3, 4, 5}, 0.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e-7)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"step":[1,2,3,4,5],"value":[0.5,"NaN","+Inf","-Inf",1e-07]}`
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back Curve
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Step, c.Step) || !sameValues(back.Value, c.Value) {
		t.Fatalf("got %+v back, want %+v", back, c)
	}
	if b, _ := json.Marshal(&Curve{}); string(b) != `{"step":[],"value":[]}` {
		t.Fatalf("got %s for an empty curve, want empty arrays", b)
	}
}

func TestHigherIsBetter(t *testing.T) {
	cases := map[string]bool{
		"accuracy": true, "test_accuracy": true, "val/acc": true, "f1": true, "mAP": true,
		"reward": true, "top1": true, "loss": false, "val_loss": false, "error_rate": false,
		"perplexity": false, "accuracy_loss": false, "lr": false, "failed_trials": false,
		"": false,
	}
	for name, want := range cases {
		if got := HigherIsBetter(name); got != want {
			t.Errorf("HigherIsBetter(%q): got %v, want %v", name, got, want)
		}
	}
}

// sweep applies a tuning task and its trials, each given by its final metrics.
func sweep(p *Projection, parentMetrics events.Metrics, trials ...events.Metrics) {
	var seq uint64
	apply := func(e events.Event) {
		seq++
		p.Apply(seq, &e)
	}
	ts := 100.0
	sub := events.New(events.TaskSubmitted, "tune", events.TypeTuning, "tune", events.Data{})
	sub.Timestamp = ts
	apply(sub)
	apply(progressEvent("tune", "", ts, 1, parentMetrics))
	for i, m := range trials {
		id := "trial" + string(rune('a'+i))
		ts++
		e := events.New(events.TaskSubmitted, id, events.TypeTraining, "trial "+id,
			events.Data{ParentID: "tune"})
		e.Timestamp = ts
		apply(e)
		for s := int64(1); s <= 3; s++ {
			apply(progressEvent(id, "", ts+float64(s)/10, s, m))
		}
	}
}

func trialIDs(tr Trials) string {
	var ids []string
	for _, t := range tr.Trials {
		ids = append(ids, t.TaskID)
	}
	return strings.Join(ids, ",")
}

func TestTrialsRanksBestFirst(t *testing.T) {
	p := New(nil)
	sweep(p, events.Metrics{"best_test_acc": 0.9},
		events.Metrics{"loss": 0.5, "test_acc": 0.8},
		events.Metrics{"loss": 0.2, "test_acc": 0.9},
		events.Metrics{"loss": math.NaN(), "test_acc": 0.1},
		events.Metrics{"loss": 0.9},
	)
	cases := []struct {
		name        string
		q           TrialsQuery
		metric, ord string
		want        string
		curves      int
	}{
		{"parent names the metric", TrialsQuery{}, "test_acc", OrderMax,
			"trialb,triala,trialc,triald", 4},
		{"loss lowest first, NaN last", TrialsQuery{Metric: "loss"}, "loss", OrderMin,
			"trialb,triala,triald,trialc", 4},
		{"order given", TrialsQuery{Metric: "loss", Order: OrderMax}, "loss", OrderMax,
			"triald,triala,trialb,trialc", 4},
		{"unknown metric keeps creation order", TrialsQuery{Metric: "nope"}, "nope", OrderMin,
			"triala,trialb,trialc,triald", 4},
		{"curves of the best only", TrialsQuery{Metric: "loss", Curves: 2}, "loss", OrderMin,
			"trialb,triala,triald,trialc", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := p.Trials("tune", c.q)
			if err != nil {
				t.Fatal(err)
			}
			if got.Metric != c.metric || got.Order != c.ord || trialIDs(got) != c.want {
				t.Errorf("got %s %s %s, want %s %s %s", got.Metric, got.Order, trialIDs(got),
					c.metric, c.ord, c.want)
			}
			n := 0
			for i, tr := range got.Trials {
				if tr.Curve == nil {
					continue
				}
				n++
				want := 0
				if _, ok := tr.Metrics[c.metric]; ok {
					want = 3
				}
				if i >= c.curves || len(tr.Curve.Step) != want {
					t.Errorf("trial %d: got a curve of %d points", i, len(tr.Curve.Step))
				}
			}
			if n != c.curves || got.Total != 4 {
				t.Errorf("got %d curves of %d trials, want %d of 4", n, got.Total, c.curves)
			}
			if !reflect.DeepEqual(got.Metrics, []string{"loss", "test_acc"}) {
				t.Errorf("got metrics %v, want [loss test_acc]", got.Metrics)
			}
		})
	}
}

func TestTrialsDefaultMetric(t *testing.T) {
	cases := []struct {
		parent events.Metrics
		names  []string
		want   string
	}{
		{events.Metrics{"best_acc": 1}, []string{"acc", "loss"}, "acc"},
		{nil, []string{"acc", "loss", "val_loss"}, "val_loss"},
		{nil, []string{"lr", "loss"}, "loss"},
		{nil, []string{"b", "a"}, "b"},
		{nil, nil, ""},
	}
	for _, c := range cases {
		if got := defaultTrialMetric(c.parent, c.names); got != c.want {
			t.Errorf("defaultTrialMetric(%v, %v): got %q, want %q", c.parent, c.names, got, c.want)
		}
	}
}

func TestTrialsRefusesBadQueries(t *testing.T) {
	p := New(nil)
	sweep(p, nil, events.Metrics{"loss": 1})
	cases := []struct {
		id   string
		q    TrialsQuery
		says string
	}{
		{"tune", TrialsQuery{Order: "up"}, "order"},
		{"tune", TrialsQuery{Curves: -1}, "curves"},
		{"tune", TrialsQuery{Curves: MaxTrialCurves + 1}, "curves"},
		{"tune", TrialsQuery{Metric: strings.Repeat("m", 2000)}, "metric"},
		{"nope", TrialsQuery{}, "no such task"},
	}
	for _, c := range cases {
		_, err := p.Trials(c.id, c.q)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Trials(%s, %+v): got %v, want an error naming %q", c.id, c.q, err, c.says)
		}
	}
	if _, err := p.Trials("nope", TrialsQuery{}); !errors.Is(err, ErrNoSuchTask) {
		t.Errorf("got %v, want ErrNoSuchTask", err)
	}
}
