package events_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

func TestEventJSONRoundTrip(t *testing.T) {
	step, total := int64(0), int64(10)
	e := events.New(events.TaskProgress, "training_abc", events.TypeTraining, "iris",
		events.Data{
			Step:    &step,
			Total:   &total,
			Metrics: events.Metrics{"loss": 0.25, "nan": math.NaN(), "inf": math.Inf(1)},
			Params:  json.RawMessage(`{"lr":0.1}`),
		})
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !math.IsNaN(got.Data.Metrics["nan"]) || !math.IsInf(got.Data.Metrics["inf"], 1) {
		t.Fatalf("non-finite metrics: got %v", got.Data.Metrics)
	}
	delete(got.Data.Metrics, "nan")
	delete(e.Data.Metrics, "nan")
	gb, _ := got.Encode()
	wb, _ := e.Encode()
	if string(gb) != string(wb) {
		t.Fatalf("round trip:\ngot  %s\nwant %s", gb, wb)
	}
	if raw, _ := got.DataJSON(); !strings.Contains(string(raw), `"params":{"lr":0.1}`) {
		t.Fatalf("data JSON: got %s", raw)
	}
	if *got.Data.Step != 0 {
		t.Fatalf("step 0 lost: got %v", got.Data.Step)
	}

	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event_id", "task_id", "task_type", "name", "event_type",
		"timestamp", "timestamp_str", "data"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("field %s missing from %s", k, b)
		}
	}
}

func TestTimestampFormat(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 4, 5, 123456789, time.FixedZone("X", 3600))
	if got, want := events.FormatTime(at), "2026-12-03T09:04:05.123456Z"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	s := events.UnixSeconds(at)
	if back := events.FromUnixSeconds(s); !back.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("got %v, want %v", back, at.Truncate(time.Microsecond))
	}
}

func TestSubject(t *testing.T) {
	subj := events.Subject(events.TypeTuning, "tuning_x1", events.TaskCompleted)
	if want := "miniray.tasks.tuning.tuning_x1.task_completed"; subj != want {
		t.Fatalf("got %s, want %s", subj, want)
	}
	tt, id, et, err := events.ParseSubject(subj)
	if err != nil || tt != events.TypeTuning || id != "tuning_x1" || et != events.TaskCompleted {
		t.Fatalf("parse: got %s %s %s %v", tt, id, et, err)
	}
	if _, _, _, err := events.ParseSubject("miniray.tasks.a.b"); err == nil {
		t.Fatal("short subject parsed")
	}
}

func TestTaskIDs(t *testing.T) {
	for _, tt := range events.TaskTypes {
		id := events.NewTaskID(tt)
		if err := events.ValidateTaskID(id); err != nil {
			t.Errorf("generated id %q refused: %v", id, err)
		}
		if !strings.HasPrefix(id, string(tt)+"_") {
			t.Errorf("got %q, want prefix %s_", id, tt)
		}
	}
	if events.NewTaskID(events.TypeTask) == events.NewTaskID(events.TypeTask) {
		t.Fatal("two generated ids are equal")
	}

	bad := []string{"", "a.b", "a b", "a*", "a>", "ä", "✓", "a/b", "a\nb", strings.Repeat("x", 129)}
	for _, id := range bad {
		err := events.ValidateTaskID(id)
		var fe *events.FieldError
		if !errors.As(err, &fe) || fe.Field != "task_id" {
			t.Errorf("id %q: got %v, want a task_id field error", id, err)
		}
	}
	if err := events.ValidateTaskID("✓"); !strings.Contains(err.Error(), "'✓'") {
		t.Errorf("error names a byte, not the character: %v", err)
	}
	for _, id := range []string{"a", "run-7", "Training_ABC_09", strings.Repeat("x", 128)} {
		if err := events.ValidateTaskID(id); err != nil {
			t.Errorf("id %q refused: %v", id, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := events.New(events.TaskStarted, "t1", events.TypeTask, "n", events.Data{})
	mutate := func(f func(*events.Event)) []byte {
		e := good
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	cases := []struct {
		name  string
		input []byte
		want  error
		field string
	}{
		{"garbage", []byte("\x00\xffnot json"), events.ErrMalformed, ""},
		{"array", []byte(`[1,2]`), events.ErrMalformed, ""},
		{"metric string", []byte(strings.Replace(string(mutate(func(e *events.Event) {
			e.Data.Metrics = events.Metrics{"m": 1}
		})), `"m":1`, `"m":"x"`, 1)), events.ErrMalformed, ""},
		{"no task id", mutate(func(e *events.Event) { e.TaskID = "" }), events.ErrInvalid, "task_id"},
		{"dotted id", mutate(func(e *events.Event) { e.TaskID = "a.b" }), events.ErrInvalid, "task_id"},
		{"event type", mutate(func(e *events.Event) { e.EventType = "task_exploded" }),
			events.ErrInvalid, "event_type"},
		{"task type", mutate(func(e *events.Event) { e.TaskType = "x" }), events.ErrInvalid, "task_type"},
		{"no event id", mutate(func(e *events.Event) { e.EventID = "" }), events.ErrInvalid, "event_id"},
		{"no timestamp", mutate(func(e *events.Event) { e.Timestamp = 0 }), events.ErrInvalid, "timestamp"},
		{"year 33658", mutate(func(e *events.Event) { e.Timestamp = 1e12 }), events.ErrInvalid, "timestamp"},
		{"1970", mutate(func(e *events.Event) { e.Timestamp = 5 }), events.ErrInvalid, "timestamp"},
		{"own parent", mutate(func(e *events.Event) { e.Data.ParentID = e.TaskID }), events.ErrInvalid,
			"data.parent_id"},
		{"parent", mutate(func(e *events.Event) { e.Data.ParentID = "x>" }), events.ErrInvalid,
			"data.parent_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := events.Decode(c.input)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var fe *events.FieldError
			if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
				t.Fatalf("got %v, want field %s", err, c.field)
			}
		})
	}
}

func TestDecodeFillsTimestampStr(t *testing.T) {
	b := []byte(`{"event_id":"e1","task_id":"t1","task_type":"task","name":"n",` +
		`"event_type":"task_started","timestamp":1764756245.5,"data":{}}`)
	e, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := "2025-12-03T10:04:05.500000Z"; e.TimestampStr != want {
		t.Fatalf("got %s, want %s", e.TimestampStr, want)
	}
}

func TestMsgWithinShedsWhatDoesNotFit(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("r", 600<<10) + `"`)
	e := events.New(events.TaskCompleted, "t1", events.TypeTask, "n", events.Data{
		Result: big, Params: json.RawMessage(`{"lr":0.1}`), Error: "",
	})
	m, err := e.MsgWithin(512 << 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data.Result != nil || got.Data.Params != nil ||
		!strings.Contains(got.Data.Reason, "params, result left out") || got.EventID != e.EventID {
		t.Fatalf("got reason %q result %d bytes", got.Data.Reason, len(got.Data.Result))
	}
	small := events.New(events.TaskStarted, "t1", events.TypeTask, "n", events.Data{})
	if m, err := small.MsgWithin(512 << 10); err != nil || strings.Contains(string(m.Data), "reason") {
		t.Fatalf("a small event changed: %v %s", err, m.Data)
	}
}

func TestNullMetricIsLeftOut(t *testing.T) {
	e, err := events.Decode([]byte(`{"event_id":"e1","task_id":"t1","task_type":"task",` +
		`"name":"n","event_type":"task_progress","timestamp":1700000000,` +
		`"data":{"step":5,"metrics":{"loss":null,"acc":0.5}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Data.Metrics["loss"]; ok || e.Data.Metrics["acc"] != 0.5 {
		t.Fatalf("metrics %v, want acc alone", e.Data.Metrics)
	}
}

func TestBoundCutsLabels(t *testing.T) {
	long := strings.Repeat("h", 200<<10)
	e := events.New(events.TaskProgress, "t1", events.TypeTraining, "n", events.Data{
		Host:    long,
		Attempt: long,
		Metrics: events.Metrics{long: 1, "loss": 2},
	})
	cut := events.Bound(&e)
	if strings.Join(cut, ",") != "host,attempt,metric names" {
		t.Fatalf("cut %v", cut)
	}
	if len(e.Data.Host) > events.MaxLabelLen || len(e.Data.Attempt) > events.MaxLabelLen {
		t.Fatalf("host %d bytes, attempt %d, want at most %d", len(e.Data.Host),
			len(e.Data.Attempt), events.MaxLabelLen)
	}
	if len(e.Data.Metrics) != 2 || e.Data.Metrics["loss"] != 2 {
		t.Fatalf("metrics %v, want two", e.Data.Metrics)
	}
	for k, v := range e.Data.Metrics {
		if len(k) > events.MaxLabelLen || k != "loss" && v != 1 {
			t.Fatalf("metric %d bytes = %v", len(k), v)
		}
	}
	if again := events.Bound(&e); len(again) != 0 {
		t.Fatalf("bounded again: %v cut", again)
	}
}
