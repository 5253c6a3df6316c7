package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// randomData makes event data with any of the fields set, including values that
// JSON writes in unusual ways.
func randomData(r *rand.Rand) events.Data {
	strs := []string{"", "x", "a b", "<tag>&", "é", "\u2028", "q\"", "\n\t", "\xff"}
	raws := []string{"", `{"lr":0.1}`, `[1,2]`, `"s"`, `{"h":"<b>"}`, `{"a": 1}`, `null`}
	floats := []float64{0, 1, -2.5, 1e-7, 1e21, 123456789.5, math.NaN(), math.Inf(1),
		math.Inf(-1), 1.0986122886681098}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	d := events.Data{Attempt: pick(strs), Description: pick(strs), ParentID: pick(strs),
		Host: pick(strs), Error: pick(strs), Stack: pick(strs), Reason: pick(strs),
		PID: r.IntN(3) - 1}
	if p := pick(raws); p != "" {
		d.Params = json.RawMessage(p)
	}
	if p := pick(raws); p != "" {
		d.Result = json.RawMessage(p)
	}
	if r.IntN(2) == 0 {
		s := r.Int64N(1<<40) - 1<<39
		d.Step = &s
	}
	if r.IntN(2) == 0 {
		s := r.Int64N(100)
		d.Total = &s
	}
	if n := r.IntN(4); n > 0 {
		d.Metrics = events.Metrics{}
		for range n {
			d.Metrics[pick(strs)+fmt.Sprint(r.IntN(3))] = floats[r.IntN(len(floats))]
		}
	}
	if r.IntN(3) == 0 {
		d.LastSeen = floats[r.IntN(6)]
	}
	return d
}

func TestCompactFormMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for i := range 20_000 {
		d := randomData(r)
		want, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(maps.Keys(d.Metrics))
		if got := renderData(nil, &d, keys); !bytes.Equal(got, want) {
			t.Fatalf("%d: renderData\ngot  %s\nwant %s", i, got, want)
		}

		var names []string
		ref := func(s string) uint32 {
			if j := slices.Index(names, s); j >= 0 {
				return uint32(j)
			}
			names = append(names, s)
			return uint32(len(names) - 1)
		}
		v := decodeCompact(appendCompact(nil, &d, keys, ref))
		if got := v.render(nil, names); !bytes.Equal(got, want) {
			t.Fatalf("%d: compact form\ngot  %s\nwant %s", i, got, want)
		}
		var parsed events.Data
		if err := json.Unmarshal(want, &parsed); err != nil {
			t.Fatal(err)
		}
		back := v.data(names)
		gb, _ := json.Marshal(&back)
		if !bytes.Equal(gb, want) || len(parsed.Metrics) != len(back.Metrics) {
			t.Fatalf("%d: data read back\ngot  %s\nwant %s", i, gb, want)
		}
	}
}

func TestHistoryKeepsEveryEventExactly(t *testing.T) {
	// Events whose data JSON is not what encoding/json writes keep it byte for byte;
	// the others are read back as the same JSON. Either way Get and GetJSON show
	// every event.
	p := New(nil)
	odd := []string{
		`{"attempt":"a1","step":1,"metrics":{"loss":1.0}}`,       // 1.0, not 1
		`{"step":2,"attempt":"a1","metrics":{"loss":0.5}}`,       // another order
		`{"attempt":"a1", "step":3}`,                             // a space
		`{"attempt":"a1","step":4,"extra":{"k":[1,2]}}`,          // an unknown field
		`{"attempt":"a\u0031","step":5,"metrics":{"loss":0.25}}`, // an escape
	}
	var stream [][]byte
	for i, data := range odd {
		stream = append(stream, []byte(fmt.Sprintf(`{"event_id":"odd%d","task_id":"t1",`+
			`"task_type":"training","name":"n","event_type":"task_progress",`+
			`"timestamp":%d,"data":%s}`, i, 1_700_000_000+i, data)))
	}
	for i := range 40 {
		step := int64(i)
		e := events.New(events.TaskProgress, "t1", events.TypeTraining, "n",
			events.Data{Attempt: "a1", Step: &step,
				Metrics: events.Metrics{"loss": 1 / float64(i+1)}})
		e.Timestamp = 1_700_000_100 + float64(i)
		b, _ := e.Encode()
		stream = append(stream, b)
	}
	for i, b := range stream {
		if err := p.ApplyMsg(uint64(i+1), "", b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	body, ok := p.GetJSON("t1")
	if !ok {
		t.Fatal("no task t1")
	}
	for _, data := range odd {
		if !bytes.Contains(body, []byte(`"data":`+data+`}`)) {
			t.Errorf("data %s not kept as it came", data)
		}
	}
	task, _ := p.Get("t1")
	if len(task.History) != len(stream) || task.EventCount != len(stream) {
		t.Fatalf("history: got %d entries, count %d; want %d", len(task.History),
			task.EventCount, len(stream))
	}
	s, _ := p.Series("t1")
	if s.Points != 3+40 {
		t.Fatalf("points: got %d, want 43", s.Points)
	}
}

func TestHistoryIndexIsExact(t *testing.T) {
	// Past seenLimit events the duplicate check uses the index; out-of-order events
	// move entries, the index and the marks where searches start. Every id must still
	// be found, and no other, and the history must be in order, whatever the order
	// of arrival: random, newest first, or the newest half before the oldest (a
	// batch that failed and was sent again after newer ones).
	const n = 3000
	halves, reversed := make([]int, 0, n), make([]int, 0, n)
	for i := range n {
		halves = append(halves, (i+n/2)%n)
		reversed = append(reversed, n-1-i)
	}
	orders := map[string][]int{
		"random":            rand.New(rand.NewPCG(10, 11)).Perm(n),
		"newest first":      reversed,
		"newest half first": halves,
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) { checkHistoryIndex(t, order) })
	}
}

func checkHistoryIndex(t *testing.T, order []int) {
	n := len(order)
	p := New(nil)
	for k, i := range order {
		e := events.New(events.TaskProgress, "t1", events.TypeTraining, "n", events.Data{})
		e.EventID, e.Timestamp = fmt.Sprint("ev", i), 1_700_000_000+float64(i)
		if !p.Apply(uint64(k+1), &e) {
			t.Fatalf("event %d refused", i)
		}
		if k%97 == 0 && p.Apply(uint64(k+1), &e) {
			t.Fatalf("event %d applied twice", i)
		}
	}
	task := p.tasks["t1"]
	if task.hist.index == nil || int(task.hist.n) != n {
		t.Fatalf("index %v, %d entries", task.hist.index == nil, task.hist.n)
	}
	for i := range n {
		if !task.hist.has(fmt.Sprint("ev", i)) || task.hist.has(fmt.Sprint("ev", i+n)) {
			t.Fatalf("id ev%d: wrong answer", i)
		}
	}
	got, _ := p.Get("t1")
	for i, h := range got.History {
		if h.EventID != fmt.Sprint("ev", i) {
			t.Fatalf("entry %d: got %s", i, h.EventID)
		}
	}
}

func TestUnknownEventTypeKept(t *testing.T) {
	p := New(nil)
	e := events.New("task_custom", "t1", events.TypeTask, "n", events.Data{Attempt: "a"})
	p.Apply(1, &e)
	got, _ := p.Get("t1")
	if len(got.History) != 1 || got.History[0].EventType != "task_custom" ||
		!reflect.DeepEqual(got.History[0].Data, e.Data) {
		t.Fatalf("got %+v", got.History)
	}
	body, _ := p.GetJSON("t1")
	if !strings.Contains(string(body), `"event_type":"task_custom"`) {
		t.Fatalf("GetJSON: %s", body)
	}
}
