package projection

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// lifecycle returns the events of one task that ran n progress steps and ended with
// end, one second apart.
func lifecycle(id string, n int, end events.Type) []events.Event {
	var out []events.Event
	ts := 1_700_000_000.0
	add := func(et events.Type, d events.Data) {
		e := events.New(et, id, events.TypeTraining, "job "+id, d)
		e.Timestamp = ts
		e.TimestampStr = events.FormatTime(events.FromUnixSeconds(ts))
		ts++
		out = append(out, e)
	}
	add(events.TaskSubmitted, events.Data{Description: "d", ParentID: "parent1"})
	add(events.TaskStarted, events.Data{Params: json.RawMessage(`{"lr":0.1}`), Host: "h", PID: 7})
	for i := 1; i <= n; i++ {
		s, total := int64(i), int64(n)
		add(events.TaskProgress, events.Data{Step: &s, Total: &total,
			Metrics: events.Metrics{"loss": 1 / float64(i)}})
	}
	switch end {
	case events.TaskCompleted:
		add(end, events.Data{Result: json.RawMessage(`{"accuracy":0.95}`)})
	case events.TaskFailed:
		add(end, events.Data{Error: "boom", Stack: "stack"})
	case events.TaskCancelled:
		add(end, events.Data{Error: "context canceled"})
	}
	return out
}

func applyAll(p *Projection, evs []events.Event) {
	for i := range evs {
		p.Apply(uint64(i+1), &evs[i])
	}
}

func TestFoldLifecycle(t *testing.T) {
	cases := []struct {
		end  events.Type
		want Status
	}{
		{events.TaskCompleted, Completed},
		{events.TaskFailed, Failed},
		{events.TaskCancelled, Cancelled},
		{"", Running},
	}
	for _, c := range cases {
		t.Run(string(c.want), func(t *testing.T) {
			p := New(nil)
			evs := lifecycle("t1", 3, c.end)
			applyAll(p, evs)
			got, ok := p.Get("t1")
			if !ok {
				t.Fatal("task missing")
			}
			if got.Status != c.want {
				t.Fatalf("status: got %s, want %s", got.Status, c.want)
			}
			if got.EventCount != len(evs) || len(got.History) != len(evs) {
				t.Fatalf("events: got %d/%d, want %d", got.EventCount, len(got.History), len(evs))
			}
			if got.Progress != (Progress{Step: 3, Total: 3}) {
				t.Fatalf("progress: got %+v", got.Progress)
			}
			if got.Metrics["loss"] != 1.0/3 {
				t.Fatalf("metrics: got %v", got.Metrics)
			}
			if got.Name != "job t1" || got.Description != "d" || got.ParentID != "parent1" ||
				string(got.Params) != `{"lr":0.1}` || got.PID != 7 {
				t.Fatalf("fields: got %+v", got)
			}
			if c.want.Finished() && (got.Duration != float64(len(evs)-2) || got.FinishedAtStr == "") {
				t.Fatalf("duration: got %v finished %q", got.Duration, got.FinishedAtStr)
			}
			if c.want == Failed && (got.Error != "boom" || got.Stack != "stack") {
				t.Fatalf("error: got %q %q", got.Error, got.Stack)
			}
			if c.want == Completed && string(got.Result) != `{"accuracy":0.95}` {
				t.Fatalf("result: got %s", got.Result)
			}
		})
	}
}

func TestFoldIdempotent(t *testing.T) {
	evs := lifecycle("t1", 50, events.TaskCompleted)
	once := New(nil)
	applyAll(once, evs)

	twice := New(nil)
	applyAll(twice, evs)
	for i := range evs {
		if twice.Apply(uint64(100+i), &evs[i]) {
			t.Fatalf("event %d applied twice", i)
		}
	}
	assertSameTasks(t, once, twice)
	applied, _ := twice.Counts()
	if applied != uint64(len(evs)) {
		t.Fatalf("applied: got %d, want %d", applied, len(evs))
	}
}

func TestFoldOrderIndependent(t *testing.T) {
	for _, end := range []events.Type{events.TaskCompleted, events.TaskFailed, ""} {
		evs := lifecycle("t1", 40, end)
		want := New(nil)
		applyAll(want, evs)
		rng := rand.New(rand.NewPCG(1, uint64(len(end))))
		for round := 0; round < 20; round++ {
			shuffled := append([]events.Event(nil), evs...)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got := New(nil)
			applyAll(got, shuffled)
			assertSameTasks(t, want, got)
		}
	}
}

func TestLateProgressKeepsTerminal(t *testing.T) {
	evs := lifecycle("t1", 2, events.TaskCompleted)
	p := New(nil)
	applyAll(p, evs)
	late := events.New(events.TaskProgress, "t1", events.TypeTraining, "job t1", events.Data{})
	p.Apply(99, &late)
	if got, _ := p.Get("t1"); got.Status != Completed {
		t.Fatalf("got %s, want COMPLETED", got.Status)
	}
}

func TestLostAndBack(t *testing.T) {
	evs := lifecycle("t1", 2, "")
	p := New(nil)
	applyAll(p, evs)
	last := evs[len(evs)-1].Timestamp

	lost := events.New(events.TaskLost, "t1", events.TypeTraining, "job t1",
		events.Data{LastSeen: last})
	lost.Timestamp = last + 30
	p.Apply(50, &lost)
	got, _ := p.Get("t1")
	if got.Status != Lost || got.LastSeenAt != last {
		t.Fatalf("got %s last seen %v, want LOST at %v", got.Status, got.LastSeenAt, last)
	}

	s := int64(3)
	back := events.New(events.TaskProgress, "t1", events.TypeTraining, "job t1", events.Data{Step: &s})
	back.Timestamp = last + 40
	p.Apply(51, &back)
	if got, _ := p.Get("t1"); got.Status != Running {
		t.Fatalf("after a late report: got %s, want RUNNING", got.Status)
	}
	done := events.New(events.TaskCompleted, "t1", events.TypeTraining, "job t1", events.Data{})
	done.Timestamp = last + 50
	p.Apply(52, &done)
	if got, _ := p.Get("t1"); got.Status != Completed {
		t.Fatalf("at the end: got %s, want COMPLETED", got.Status)
	}
}

func TestApplyMsgSkipsBadMessages(t *testing.T) {
	p := New(nil)
	good := lifecycle("t1", 1, events.TaskCompleted)
	for i := range good {
		b, _ := good[i].Encode()
		if err := p.ApplyMsg(uint64(i+1), good[i].Subject(), b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := p.Get("t1")

	otherEv := events.New(events.TaskFailed, "t1", events.TypeTraining, "x", events.Data{})
	other, _ := otherEv.Encode()
	huge := make([]byte, MaxEventSize+1)
	bad := []struct {
		subject string
		data    []byte
		kind    string
	}{
		{"miniray.tasks.x", []byte("garbage \x00"), SkipMalformed},
		{"miniray.tasks.x", []byte(`{"event_id":"e","task_id":"t1"}`), SkipInvalid},
		{"miniray.tasks.training.t2.task_failed", other, SkipSubject},
		{"miniray.tasks.x", huge, SkipTooLarge},
	}
	for i, b := range bad {
		err := p.ApplyMsg(uint64(100+i), b.subject, b.data, time.Time{})
		var se *skipError
		if !errors.Is(err, ErrSkipped) || !errors.As(err, &se) || se.kind != b.kind {
			t.Fatalf("message %d: got %v, want a %s skip", i, err, b.kind)
		}
	}
	b, _ := good[0].Encode()
	if err := p.ApplyMsg(200, good[0].Subject(), b, time.Time{}); !errors.Is(err, ErrSkipped) {
		t.Fatalf("duplicate: got %v", err)
	}
	retyped := events.New(events.TaskFailed, "t1", events.TypeInference, "x", events.Data{})
	b, _ = retyped.Encode()
	if err := p.ApplyMsg(201, retyped.Subject(), b, time.Time{}); !errors.Is(err, ErrSkipped) {
		t.Fatalf("another task type under the same id: got %v", err)
	}

	after, _ := p.Get("t1")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("bad messages changed the task:\n%+v\n%+v", before, after)
	}
	st := p.Stats()
	if st.EventsSkipped != 6 || st.SkippedByKind[SkipDuplicate] != 1 ||
		st.SkippedByKind[SkipTaskType] != 1 || st.Total != 1 {
		t.Fatalf("stats: got %+v", st)
	}
	if p.LastSeq() != 201 {
		t.Fatalf("last seq: got %d, want 201", p.LastSeq())
	}
}

func assertSameTasks(t *testing.T, want, got *Projection) {
	t.Helper()
	if len(want.tasks) != len(got.tasks) {
		t.Fatalf("tasks: got %d, want %d", len(got.tasks), len(want.tasks))
	}
	for id := range want.tasks {
		w, _ := want.Get(id)
		g, _ := got.Get(id)
		wb, _ := json.Marshal(w)
		gb, _ := json.Marshal(g)
		if string(wb) != string(gb) {
			t.Fatalf("task %s differs:\ngot  %s\nwant %s", id, gb, wb)
		}
	}
}

func TestGetJSONMatchesGet(t *testing.T) {
	p := New(nil)
	evs := withAttempt(lifecycle("t1", 5, events.TaskFailed), "a1", 0)
	evs[3].Data.Metrics["nan"] = math.NaN()
	for i := range evs {
		b, _ := evs[i].Encode()
		if err := p.ApplyMsg(uint64(i+1), evs[i].Subject(), b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	task, _ := p.Get("t1")
	viaGet, _ := json.Marshal(task)
	viaJSON, ok := p.GetJSON("t1")
	if !ok {
		t.Fatal("GetJSON: no task t1")
	}
	var a, b map[string]any
	if err := json.Unmarshal(viaGet, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(viaJSON, &b); err != nil {
		t.Fatalf("GetJSON is not JSON: %v\n%s", err, viaJSON)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("GetJSON differs from Get:\n%s\n%s", viaGet, viaJSON)
	}
}

func TestTotalKeptByAReportWithout(t *testing.T) {
	step := func(n int64) *int64 { return &n }
	withTotal := events.New(events.TaskProgress, "t1", events.TypeTraining, "n",
		events.Data{Step: step(1), Total: step(10)})
	withTotal.Timestamp = 1_700_000_001
	without := events.New(events.TaskProgress, "t1", events.TypeTraining, "n",
		events.Data{Step: step(2)})
	without.Timestamp = 1_700_000_002

	for _, order := range [][]events.Event{{withTotal, without}, {without, withTotal}} {
		p := New(nil)
		applyAll(p, order)
		task, _ := p.Get("t1")
		if task.Progress != (Progress{Step: 2, Total: 10}) {
			t.Fatalf("applied %s then %s: progress %+v, want step 2 of 10",
				order[0].EventID, order[1].EventID, task.Progress)
		}
	}
}
