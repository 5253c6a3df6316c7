package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

// naiveList is the list as it was first written: filter every task, sort them all.
// The index must give the same pages.
func naiveList(p *Projection, q Query) (int, []string) {
	if err := q.Validate(); err != nil {
		panic(err)
	}
	name := strings.ToLower(q.Name)
	var matched []*task
	for _, t := range p.order {
		if q.match(t, name) {
			matched = append(matched, t)
		}
	}
	slices.SortStableFunc(matched, compareBy(q.Sort))
	var ids []string
	for i := q.Offset; i < len(matched) && i < q.Offset+q.Limit; i++ {
		ids = append(ids, matched[i].id)
	}
	return len(matched), ids
}

// sameAsNaive fails the test when List's page for q differs from naiveList's; what
// says when.
func sameAsNaive(t *testing.T, p *Projection, q Query, what string) Page {
	t.Helper()
	total, ids := naiveList(p, q)
	page, err := p.List(q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range page.Tasks {
		got = append(got, task.TaskID)
	}
	if page.Total != total || !slices.Equal(got, ids) {
		t.Fatalf("%s, %+v: got %d %v, want %d %v", what, q, page.Total, got, total, ids)
	}
	return page
}

// randomEvent makes an event of one of a few dozen tasks, with the odd field that
// the JSON encoders must escape or write in exponent form.
func randomEvent(r *rand.Rand, i int) events.Event {
	types := []events.Type{events.TaskSubmitted, events.TaskStarted, events.TaskProgress,
		events.TaskProgress, events.TaskCompleted, events.TaskFailed, events.TaskCancelled,
		events.TaskLost}
	tts := []events.TaskType{events.TypeTraining, events.TypeInference, events.TypeTuning}
	task := r.IntN(40)
	et := types[r.IntN(len(types))]
	d := events.Data{Attempt: fmt.Sprint("a", r.IntN(2))}
	names := []string{"Iris", "iris-<b>", "näme", "x\ty", "tune&go", "q\"uote", "\u2028"}
	switch et {
	case events.TaskSubmitted:
		d.Description = names[r.IntN(len(names))]
		// Submissions of one task can name different parents: the earliest counts.
		if parent := fmt.Sprint("t", (task%5+r.IntN(2))*5); task%5 != 0 &&
			parent != fmt.Sprint("t", task) {
			d.ParentID = parent
		}
	case events.TaskStarted:
		d.Params = json.RawMessage([]string{`{"lr":0.1}`, `{"a": "b <c>"}`, `[1, 2]`}[r.IntN(3)])
		d.Host, d.PID = "host", r.IntN(3)
	case events.TaskProgress:
		step := int64(r.IntN(10))
		d.Step = &step
		d.Metrics = events.Metrics{
			"loss": []float64{0.5, 1e-9, 3e21, math.NaN(), math.Inf(-1), 123456789}[r.IntN(6)],
			"acc":  r.Float64(),
		}
	case events.TaskCompleted:
		d.Result = json.RawMessage(`{"ok":true}`)
	case events.TaskFailed:
		d.Error, d.Stack = names[r.IntN(len(names))], "stack\n"
	case events.TaskLost:
		d.LastSeen = 1_700_000_000 + float64(r.IntN(100))
	}
	e := events.New(et, fmt.Sprint("t", task), tts[task%3], names[r.IntN(len(names))], d)
	e.EventID = fmt.Sprint("e", i)
	e.Timestamp = 1_700_000_000 + float64(r.IntN(100)) + []float64{0, 0.5, 1e-7}[r.IntN(3)]
	return e
}

func randomQuery(r *rand.Rand) Query {
	q := Query{Limit: 1 + r.IntN(15), Offset: r.IntN(3) * r.IntN(20)}
	q.Sort = SortKeys[r.IntN(len(SortKeys))]
	if r.IntN(2) == 0 {
		q.Sort = "-" + q.Sort
	}
	if r.IntN(3) == 0 {
		q.Type = []events.TaskType{events.TypeTraining, events.TypeInference,
			events.TypeTask}[r.IntN(3)]
	}
	if r.IntN(3) == 0 {
		q.Status = Statuses[r.IntN(len(Statuses))]
	}
	if r.IntN(4) == 0 {
		q.ParentID = fmt.Sprint("t", r.IntN(5)*5)
	}
	if r.IntN(4) == 0 {
		q.Name = []string{"IRIS", "<", "Ä", "tune"}[r.IntN(4)]
	}
	return q
}

func TestListMatchesNaiveList(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := New(nil)
	for i := range 3000 {
		e := randomEvent(r, i)
		p.Apply(uint64(i+1), &e)
		// After every event at first, so that a task changing twice in a row
		// between two lists is seen; then now and then.
		if i > 600 && i%7 != 0 {
			continue
		}
		for range 3 {
			q := randomQuery(r)
			page := sameAsNaive(t, p, q, fmt.Sprintf("after %d events", i+1))
			want, err := json.Marshal(page)
			if err != nil {
				t.Fatal(err)
			}
			body, err := p.ListJSON(q)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, want) {
				t.Fatalf("after %d events, %+v: ListJSON differs from json.Marshal:\n%s\n%s",
					i+1, q, body, want)
			}
		}
	}
}

func TestTaskJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := New(nil)
	for i := range 2000 {
		e := randomEvent(r, i)
		p.Apply(uint64(i+1), &e)
	}
	for _, task := range p.order {
		want, err := json.Marshal(task.view())
		if err != nil {
			t.Fatal(err)
		}
		if got := task.appendJSON(nil, 0); !bytes.Equal(got, want) {
			t.Fatalf("task %s:\ngot  %s\nwant %s", task.id, got, want)
		}
	}
}

func TestJSONEncodersMatchEncodingJSON(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21,
		-1e21, 123456789.123, 1.0986122886681098, 5e-324, math.MaxFloat64, 1700000000.123456}
	for _, f := range floats {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f); !bytes.Equal(got, want) {
			t.Errorf("float %v: got %s, want %s", f, got, want)
		}
	}
	strs := []string{"", "plain", "a\"b", "a\\b", "<>&", "\x00\x1f\x7f", "é", "\u2028\u2029",
		"\xff", "tab\there"}
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("string %q: got %s, want %s", s, got, want)
		}
	}
	raws := []string{`{"a":1}`, `{ "a" : [1, 2] }`, `{"h":"<b>&"}`, `"\u2028"`, `{"s":"a b"}`,
		"{\"u\":\"\u2028\"}"}
	for _, s := range raws {
		want, _ := json.Marshal(json.RawMessage(s))
		if got := appendRaw(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Errorf("raw %s: got %s, want %s", s, got, want)
		}
	}
}

func TestListIndexFollowsManyChanges(t *testing.T) {
	// Enough tasks and changes that the orders are repaired, rebuilt, and the change
	// log dropped and started again.
	p := New(nil)
	seq := uint64(0)
	apply := func(id string, et events.Type, ts float64) {
		e := events.New(et, id, events.TypeTraining, "n"+id, events.Data{})
		e.Timestamp = ts
		seq++
		p.Apply(seq, &e)
	}
	for i := range 6000 {
		apply(fmt.Sprint("t", i), events.TaskSubmitted, 1_700_000_000+float64(i))
	}
	for round := range 5 {
		for _, sort := range []string{"-updated_at", "status", "-created_at"} {
			sameAsNaive(t, p, Query{Sort: sort, Limit: 20, Offset: 10},
				fmt.Sprintf("round %d", round))
		}
		// A few changes, then very many.
		n := []int{3, 200, 5000, 1, 9000}[round]
		for i := range n {
			id := fmt.Sprint("t", (i*7919+round)%6000)
			apply(id, []events.Type{events.TaskStarted, events.TaskCompleted}[i%2],
				1_700_010_000+float64(round*10000+i))
		}
	}
}

func TestListSeesChangeAfterRead(t *testing.T) {
	// A task that changes, is listed, and changes again before any other task: the
	// second change must reach the order although the log's last entry is the same
	// task.
	p := New(nil)
	apply := func(i int, id string, ts float64) {
		e := events.New(events.TaskSubmitted, id, events.TypeTraining, "n", events.Data{})
		e.EventID, e.Timestamp = fmt.Sprint("e", i), ts
		p.Apply(uint64(i), &e)
	}
	second := func() string {
		page, _ := p.List(Query{Sort: "updated_at", Limit: 1, Offset: 1})
		return page.Tasks[0].TaskID
	}
	apply(1, "a", 1_700_000_000)
	apply(2, "b", 1_700_000_001)
	apply(3, "c", 1_700_000_002)
	if got := second(); got != "b" {
		t.Fatalf("got %s second, want b", got)
	}
	apply(4, "a", 1_700_000_001.5)
	if got := second(); got != "a" {
		t.Fatalf("got %s second, want a", got)
	}
	apply(5, "a", 1_700_000_005)
	if got := second(); got != "c" {
		t.Fatalf("got %s second, want c", got)
	}
}

func TestTimeStrMatchesFormatTime(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	stamps := []float64{events.MinTimestamp, events.MaxTimestamp, 951782400, 951868799.9999995,
		4107542400, 1_700_000_000.123456, 1_700_000_000.0000004, 1_709_164_800, 0, -1, 1e12}
	for range 100_000 {
		span := events.MaxTimestamp - events.MinTimestamp
		stamps = append(stamps, events.MinTimestamp+r.Float64()*span)
	}
	for _, ts := range stamps {
		want := events.FormatTime(events.FromUnixSeconds(ts))
		if got := string(appendTimeStr(nil, ts)); got != want {
			t.Fatalf("%v: got %s, want %s", ts, got, want)
		}
	}
}

func TestListIndexSplitsAndDropsBlocks(t *testing.T) {
	// Changes in batches small enough to be repaired, not sorted again: the oldest
	// tasks by update leave the first blocks empty, and the last block fills up
	// with them until it splits.
	p := New(nil)
	seq := uint64(0)
	apply := func(i int, ts float64) {
		e := events.New(events.TaskSubmitted, fmt.Sprint("t", i), events.TypeTraining, "n",
			events.Data{})
		e.Timestamp = ts
		seq++
		p.Apply(seq, &e)
	}
	const tasks = 3000
	for i := range tasks {
		apply(i, 1_700_000_000+float64(i))
	}
	check := func(step int) {
		t.Helper()
		for _, q := range []Query{{Sort: "updated_at", Limit: 30, Offset: 240},
			{Sort: "-updated_at", Limit: 30, Offset: 500}} {
			sameAsNaive(t, p, q, fmt.Sprintf("step %d", step))
		}
	}
	check(0)
	for step := range 12 {
		for i := step * 150; i < (step+1)*150; i++ {
			apply(i, 1_700_010_000+float64(i))
		}
		check(step + 1)
	}
	s := p.list.sorted["updated_at"]
	n := 0
	for _, b := range s.blocks {
		if len(b) == 0 || len(b) > maxBlock {
			t.Fatalf("block of %d rows", len(b))
		}
		n += len(b)
	}
	if n != tasks {
		t.Fatalf("got %d rows, want %d", n, tasks)
	}
}

func TestShortestMatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 15))
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 7.5, 1e-6, 123.000001, 1 << 33,
		1<<33 - 1e-6, 8589934591.999999, 999999.9999995, 1_700_000_000.123456, -2.25}
	for range 200_000 {
		micros := r.Int64N(int64(events.MaxTimestamp * 1e6))
		vals = append(vals, float64(micros)/1e6, r.Float64()*1e4, float64(r.IntN(1e6))/8,
			float64(micros%1e9)/1e6, -float64(micros)/1e6)
	}
	for _, f := range vals {
		want := strconv.AppendFloat(nil, f, 'f', -1, 64)
		if got := appendShortest(nil, f); !bytes.Equal(got, want) {
			t.Fatalf("%v: got %s, want %s", f, got, want)
		}
	}
}

func TestReadersDuringApply(t *testing.T) {
	// Readers that bring the sorted orders up to date and cache pages, while events
	// arrive: run with -race.
	p := New(nil)
	r := rand.New(rand.NewPCG(16, 17))
	evs := make([]events.Event, 3000)
	for i := range evs {
		evs[i] = randomEvent(r, i)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(g), 18))
			for {
				select {
				case <-done:
					return
				default:
				}
				q := randomQuery(rr)
				if _, err := p.ListJSON(q); err != nil {
					t.Error(err)
					return
				}
				p.GetJSON(fmt.Sprint("t", rr.IntN(40)))
				p.Stats()
			}
		})
	}
	for i := range evs {
		p.Apply(uint64(i+1), &evs[i])
	}
	close(done)
	wg.Wait()
	for _, q := range []Query{{Sort: "name", Limit: 50}, {Limit: 50}, {Sort: "-duration", Limit: 50}} {
		total, ids := naiveList(p, q)
		sameAsNaive(t, p, q, "after the readers")
		body, err := p.ListJSON(q)
		if err != nil {
			t.Fatal(err)
		}
		var decoded Page
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatal(err)
		}
		var fromJSON []string
		for _, task := range decoded.Tasks {
			fromJSON = append(fromJSON, task.TaskID)
		}
		if decoded.Total != total || !slices.Equal(fromJSON, ids) {
			t.Fatalf("%+v as JSON: got %d %v, want %d %v", q, decoded.Total, fromJSON, total,
				ids)
		}
	}
}

func TestInsertIntoEmptyOrder(t *testing.T) {
	// Every row may leave an order and come back; the first one back goes into an
	// order with no block.
	s := &sortedTasks{key: "name"}
	rows := []listRow{{id: "b", s: "b"}, {id: "a", s: "a"}, {id: "c", s: "c"}}
	for i := range rows {
		s.insert(&rows[i])
	}
	var got []string
	for _, b := range s.blocks {
		for _, r := range b {
			got = append(got, r.id)
		}
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("order %v, want [a b c]", got)
	}
}
