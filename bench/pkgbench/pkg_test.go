package pkgbench

import (
	"encoding/json"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miniray/miniray/bench/internal/workload"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// encoded returns the JSON of the events of n generated tasks, in stream order.
func encoded(tb testing.TB, n int) [][]byte {
	tb.Helper()
	g := workload.NewGenerator(n)
	var out [][]byte
	for i := range n {
		for _, e := range g.Task(i) {
			b, err := e.Encode()
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// progressJSON returns one typical progress event's JSON.
func progressJSON(tb testing.TB) []byte {
	tb.Helper()
	return encoded(tb, 1)[2]
}

func BenchmarkDecodeProgress(b *testing.B) {
	msg := progressJSON(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeProgressPlain is the floor of encoding/json: the same message into
// the same struct, with no second pass over the data and no custom metrics decoder.
func BenchmarkDecodeProgressPlain(b *testing.B) {
	msg := progressJSON(b)
	var plain struct {
		EventID      string  `json:"event_id"`
		TaskID       string  `json:"task_id"`
		TaskType     string  `json:"task_type"`
		Name         string  `json:"name"`
		EventType    string  `json:"event_type"`
		Timestamp    float64 `json:"timestamp"`
		TimestampStr string  `json:"timestamp_str"`
		Data         struct {
			Attempt string             `json:"attempt"`
			Step    *int64             `json:"step"`
			Total   *int64             `json:"total"`
			Metrics map[string]float64 `json:"metrics"`
		} `json:"data"`
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(msg, &plain); err != nil {
			b.Fatal(err)
		}
	}
}

var metricsJSON = []byte(`{"loss":0.34118592541416924,"accuracy":0.7785714285714286,` +
	`"test_accuracy":0.7366666666666667}`)

func BenchmarkMetricsUnmarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m events.Metrics
		if err := json.Unmarshal(metricsJSON, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMetricsAsFloats decodes the same metrics as plain numbers, the fast path
// a decoder could try before falling back to the strings "NaN" and "Inf".
func BenchmarkMetricsAsFloats(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]float64
		if err := json.Unmarshal(metricsJSON, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeProgress is what the job's sender spends on each event before it
// goes to the network.
func BenchmarkEncodeProgress(b *testing.B) {
	e, err := events.Decode(progressJSON(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Msg(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyMsg is the dashboard's replay without the network: each op decodes
// and folds one event of a stream of 10-event tasks.
func BenchmarkApplyMsg(b *testing.B) {
	msgs := encoded(b, 10_000)
	stored := time.Now()
	b.ReportAllocs()
	p := projection.New(nil)
	seq := uint64(0)
	for b.Loop() {
		if int(seq) == len(msgs) {
			b.StopTimer()
			p, seq = projection.New(nil), 0
			b.StartTimer()
		}
		m := msgs[seq]
		seq++
		if err := p.ApplyMsg(seq, "", m, stored); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFold100k decodes and folds the 1,000,000 events of 100,000 tasks, as a
// replay does without the network, and reports the heap the projection then holds
// per task: the figure behind the dashboard's memory. Run it with -benchtime 1x.
func BenchmarkFold100k(b *testing.B) {
	const tasks = 100_000
	msgs := encoded(b, tasks)
	stored := time.Now()
	var perTask float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p := projection.New(nil)
		for i, m := range msgs {
			if err := p.ApplyMsg(uint64(i+1), "", m, stored); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTask = float64(after.HeapAlloc-before.HeapAlloc) / tasks
		runtime.KeepAlive(p)
		b.StartTimer()
	}
	b.ReportMetric(perTask, "heap-B/task")
	b.ReportMetric(float64(len(msgs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFoldOutOfOrder40k folds one task's 40,000 progress events, the newer
// half first: what a replay meets where a job's failed batch was sent again after
// newer ones. Each late event goes into the middle of the task's history.
func BenchmarkFoldOutOfOrder40k(b *testing.B) {
	const n = 40_000
	evs := make([]events.Event, n)
	for i := range evs {
		step := int64(i)
		evs[i] = events.New(events.TaskProgress, "t", events.TypeTraining, "t",
			events.Data{Step: &step, Metrics: events.Metrics{"loss": 1 / float64(i+1)}})
		evs[i].Timestamp = 1_700_000_000 + float64(i)/100
	}
	for b.Loop() {
		p := projection.New(nil)
		for k := range n {
			e := evs[(k+n/2)%n]
			p.Apply(uint64(k+1), &e)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// loaded is a projection of 100,000 generated tasks, built once for the query
// benchmarks.
var loaded = sync.OnceValues(func() (*projection.Projection, []string) {
	const tasks = 100_000
	g := workload.NewGenerator(tasks)
	p := projection.New(nil)
	ids := make([]string, 0, tasks)
	seq := uint64(0)
	for i := range tasks {
		evs := g.Task(i)
		ids = append(ids, evs[0].TaskID)
		for j := range evs {
			seq++
			p.Apply(seq, &evs[j])
		}
	}
	return p, ids
})

func benchList(b *testing.B, q projection.Query) {
	p, _ := loaded()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, err := p.List(q)
		if err != nil {
			b.Fatal(err)
		}
		if len(page.Tasks) == 0 {
			b.Fatal("empty page")
		}
	}
}

func BenchmarkList100k(b *testing.B) {
	benchList(b, projection.Query{Limit: 100})
}

func BenchmarkListFiltered100k(b *testing.B) {
	benchList(b, projection.Query{Type: events.TypeTraining, Status: projection.Failed,
		Limit: 100})
}

func benchListJSON(b *testing.B, q projection.Query) {
	p, _ := loaded()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		body, err := p.ListJSON(q)
		if err != nil {
			b.Fatal(err)
		}
		if len(body) < 1000 {
			b.Fatal("empty page")
		}
	}
}

// BenchmarkListJSON100k is what the API does for a list that nothing changed since
// it was last asked for: a cached page.
func BenchmarkListJSON100k(b *testing.B) {
	benchListJSON(b, projection.Query{Limit: 100})
}

// changeSeq numbers the events that benchmarks add to the loaded projection, past
// those of its tasks: each must be new to be applied.
var changeSeq atomic.Uint64

func init() { changeSeq.Store(1 << 40) }

// BenchmarkListJSONChanging100k is a list while jobs report: one task changes between
// two requests, so each brings the sorted order up to date and encodes the page.
func BenchmarkListJSONChanging100k(b *testing.B) {
	for _, q := range []struct {
		name string
		q    projection.Query
	}{
		{"newest", projection.Query{Limit: 100}},
		{"filtered", projection.Query{Type: events.TypeTraining, Status: projection.Failed,
			Limit: 100}},
		{"by_name", projection.Query{Sort: "name", Limit: 100, Offset: 50_000}},
		{"search", projection.Query{Name: "tuning-4", Limit: 100}},
	} {
		b.Run(q.name, func(b *testing.B) {
			p, ids := loaded()
			// Task i of the generator is a training task when i%20 >= 8.
			g := workload.NewGenerator(1)
			ev := g.Task(8)[2]
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				seq := changeSeq.Add(1)
				ev.TaskID = ids[int(seq)%(len(ids)/20)*20+8+int(seq)%12]
				ev.EventID = strconv.FormatUint(seq, 10)
				p.Apply(seq, &ev)
				if _, err := p.ListJSON(q.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodePage100 is the encoding alone of a page of 100 tasks, as the API
// answers it: what a list costs at least unless its bytes are cached.
func BenchmarkEncodePage100(b *testing.B) {
	p, _ := loaded()
	page, err := p.List(projection.Query{Limit: 100})
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(page)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := json.Marshal(page); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetJSON100k(b *testing.B) {
	p, ids := loaded()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i = (i + 7919) % len(ids)
		if _, ok := p.GetJSON(ids[i]); !ok {
			b.Fatalf("task %s not found", ids[i])
		}
	}
}

func BenchmarkStats100kJSON(b *testing.B) {
	p, _ := loaded()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := json.Marshal(p.Stats()); err != nil {
			b.Fatal(err)
		}
	}
}
