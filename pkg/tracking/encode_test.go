package tracking

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// progressEvent is the event that [Task.Progress] reported before it encoded
// without reflection: built by events.New, bounded, encoded by encoding/json.
func progressEvent(r record, taskID string, tt events.TaskType, name, attempt string,
	now time.Time, step, total int, metrics map[string]float64) events.Event {
	s := int64(step)
	d := events.Data{Attempt: attempt, Step: &s}
	if total > 0 {
		n := int64(total)
		d.Total = &n
	}
	if len(metrics) > 0 {
		d.Metrics = make(events.Metrics, len(metrics))
		for k, v := range metrics {
			d.Metrics[k] = v
		}
	}
	e := events.Event{
		EventID:      r.id,
		TaskID:       taskID,
		TaskType:     tt,
		Name:         name,
		EventType:    events.TaskProgress,
		Timestamp:    events.UnixSeconds(now),
		TimestampStr: events.FormatTime(now),
		Data:         d,
	}
	events.Bound(&e)
	return e
}

// checkProgressEncoding checks that the progress encoder writes what encoding/json
// writes for the same event, and the record's subject and id.
func checkProgressEncoding(t *testing.T, name string, now time.Time, step, total int,
	metrics map[string]float64) {
	t.Helper()
	const id, attempt = "task-1", "attempt_1"
	p := newProgressEncoder(id, events.TypeTraining, name, attempt)
	r := p.encode(now, step, total, metrics)
	e := progressEvent(r, id, events.TypeTraining, name, attempt, now, step, total, metrics)
	want, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.data, want) {
		t.Fatalf("encoded\n%s\nwant\n%s", r.data, want)
	}
	if r.subject != e.Subject() || !r.progress {
		t.Fatalf("subject %q progress %v, want %q true", r.subject, r.progress, e.Subject())
	}
	h, err := parseHead(r.data, recordHead{})
	if err != nil || h.EventID != r.id || h.TaskID != id || h.EventType != events.TaskProgress {
		t.Fatalf("head %+v %v, want the event's", h, err)
	}
}

func TestProgressEncodingIsEncodingJSONs(t *testing.T) {
	now := time.Date(2026, 12, 4, 8, 19, 37, 123456789, time.UTC)
	many := map[string]float64{}
	for i := range events.MaxMetrics + 10 {
		many[fmt.Sprintf("m%03d", i)] = float64(i) / 7
	}
	for _, tc := range []struct {
		name        string
		task        string
		step, total int
		metrics     map[string]float64
	}{
		{"typical", "iris", 57, 100, map[string]float64{"loss": 0.31, "accuracy": 0.9}},
		{"no total, no metrics", "iris", 3, 0, nil},
		{"negative step and total", "iris", -5, -1, map[string]float64{}},
		{"awkward floats", "iris", 1, 2, map[string]float64{
			"tiny": 1e-7, "tiny-neg": -3.5e-9, "huge": 1e21, "big": 1e20, "zero": 0,
			"neg-zero": math.Copysign(0, -1), "max": math.MaxFloat64,
			"min": math.SmallestNonzeroFloat64, "third": 1.0 / 3,
			"nan": math.NaN(), "inf": math.Inf(1), "-inf": math.Inf(-1),
		}},
		{"names to escape", `say "<hi>" & \ bye`, 1, 0, map[string]float64{
			"a\tb": 1, "\x00\x1f": 2, "é ü 🙂": 3, "\u2028\u2029": 4, "bad\xffutf8": 5,
			"<&>": 6,
		}},
		{"a long name", strings.Repeat("n", events.MaxTextLen+100), 1, 1, nil},
		{"too many metrics", "iris", 9, 10, many},
		{"long metric names", "iris", 1, 1, map[string]float64{
			strings.Repeat("z", events.MaxLabelLen+1): 1, "a": 2,
			strings.Repeat("é", events.MaxLabelLen): 3,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProgressEncoding(t, tc.task, now, tc.step, tc.total, tc.metrics)
		})
	}
	t.Run("times", func(t *testing.T) {
		for _, ns := range []int64{0, 1_000, 999_999_999, 1_796_371_200_000_000_000,
			1_796_371_200_123_456_789, 4_102_444_799_999_999_999} {
			checkProgressEncoding(t, "iris", time.Unix(0, ns), 1, 1, nil)
		}
		checkProgressEncoding(t, "iris", time.Now(), 1, 1, nil) // with a monotonic clock
	})
}

// FuzzProgressEncoding checks the progress encoder against encoding/json on
// arbitrary names, metric names and values.
func FuzzProgressEncoding(f *testing.F) {
	f.Add("iris", "loss", 0.5, "acc", 0.9, 7, 10, int64(1_796_371_200_123_456_789))
	f.Add("<&>", "\u2028", math.Inf(1), "\xff", 1e-300, -1, 0, int64(0))
	f.Fuzz(func(t *testing.T, name, k1 string, v1 float64, k2 string, v2 float64,
		step, total int, ns int64) {
		now := time.Unix(0, ns)
		if y := now.Year(); y < 2000 || y > 9999 {
			now = time.Unix(0, ns%(1<<62)).AddDate(2000-1970, 0, 0)
			if y := now.Year(); y < 2000 || y > 9999 {
				t.Skip()
			}
		}
		checkProgressEncoding(t, name, now, step, total, map[string]float64{k1: v1, k2: v2})
	})
}

func TestScanHeadReadsEventsOfEncodingJSON(t *testing.T) {
	for _, d := range []events.Data{{}, {Description: `a "b" \ c`}, {Error: "x"}} {
		e := events.New(events.TaskSubmitted, "t-1", events.TypeTuning, `n "\" <>`, d)
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h, ok := scanHead(b, recordHead{})
		want := recordHead{EventID: e.EventID, TaskID: e.TaskID, TaskType: e.TaskType,
			EventType: e.EventType}
		if !ok || h != want {
			t.Fatalf("scanHead(%s) = %+v %v, want %+v", b, h, ok, want)
		}
	}
	// Other orders and escapes are left to encoding/json.
	for _, s := range []string{
		`{"task_id":"t","event_id":"e","task_type":"task","name":"n","event_type":"task_started"}`,
		`{"event_id":"e\u0041","task_id":"t","task_type":"task","name":"n","event_type":"x"}`,
		`{"event_id":"e","task_id":"t"`,
	} {
		if h, ok := scanHead([]byte(s), recordHead{}); ok {
			t.Fatalf("scanHead(%s) = %+v, want it refused", s, h)
		}
	}
	h, err := parseHead([]byte(`{"task_id":"t","event_id":"e","task_type":"task",`+
		`"event_type":"task_started"}`), recordHead{})
	if err != nil || h.EventID != "e" || h.EventType != events.TaskStarted {
		t.Fatalf("parseHead of another order: %+v %v", h, err)
	}
}

// TestEventThatDoesNotEncodeIsSentWithANote checks that a lifecycle event whose data
// JSON cannot hold still reaches the stream, with a reason instead of the data.
func TestEventThatDoesNotEncodeIsSentWithANote(t *testing.T) {
	e := events.New(events.TaskCompleted, "t-1", events.TypeTask, "n",
		events.Data{Attempt: "a", Result: []byte(`{"half":`)})
	r, err := encodeEvent(&e)
	if err == nil {
		t.Fatal("got no error for a result that is not JSON")
	}
	got, derr := events.Decode(r.data)
	if derr != nil || got.EventID != e.EventID || got.EventType != events.TaskCompleted ||
		got.Data.Attempt != "a" || !strings.HasPrefix(got.Data.Reason, "event data not recorded") {
		t.Fatalf("decoded %+v %v, want the event with a reason", got, derr)
	}
}

func BenchmarkProgressEncode(b *testing.B) {
	p := newProgressEncoder("training_abcdefghijklmnopqrstuv", events.TypeTraining,
		"iris-train", "ABCDEFGHIJKLMNOPQRSTUV")
	metrics := map[string]float64{"loss": 0.31, "accuracy": 0.9, "test_accuracy": 0.87}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		metrics["loss"] = 1 / float64(i+1)
		p.encode(time.Now(), i, 1000, metrics)
	}
}
