// Package workload makes the synthetic jobs that miniray's benchmarks publish and
// replay. Every event is built with pkg/events, with the fields and sizes that the
// example jobs report, so that a benchmark moves the bytes a real job would.
package workload

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nuid"

	"github.com/miniray/miniray/pkg/events"
)

// EventsPerTask is the number of events [Generator.Task] returns: submitted,
// started, [ProgressSteps] progress events and the end (completed or failed).
const EventsPerTask = 3 + ProgressSteps

// ProgressSteps is the number of progress events of a generated task.
const ProgressSteps = 7

// Metrics returns the three metrics that the training example reports each epoch,
// for step of total. The values have full float64 precision, as computed ones do.
func Metrics(step, total int) map[string]float64 {
	m := make(map[string]float64, 3)
	SetMetrics(m, step, total)
	return m
}

// SetMetrics writes the metrics of [Metrics] into m, for a loop that reuses one map.
func SetMetrics(m map[string]float64, step, total int) {
	x := float64(step) / float64(max(total, 1))
	m["loss"] = 1.0986122886681098 * math.Exp(-3*x)
	m["accuracy"] = 0.3333333333333333 + 0.6233766233766234*x
	m["test_accuracy"] = 0.3 + 0.6366666666666667*x
}

// ProgressSize returns the encoded size in bytes of a typical progress event: a
// training task with a generated id, an attempt, a step, a total and three metrics.
func ProgressSize() (int, error) {
	id := events.NewTaskID(events.TypeTraining)
	step, total := int64(57), int64(100)
	e := events.New(events.TaskProgress, id, events.TypeTraining, "iris-train",
		events.Data{
			Attempt: nuid.Next(),
			Step:    &step,
			Total:   &total,
			Metrics: Metrics(57, 100),
		})
	b, err := e.Encode()
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// Generator makes the events of finished tasks, one task at a time. Task i is
// created Spacing after task i-1, starting at Base; its events are a second apart.
type Generator struct {
	Base    time.Time
	Spacing time.Duration

	lastTuning string
	host       string
}

// NewGenerator returns a generator for n tasks whose times all lie in the past, so
// that no event is stamped ahead of the moment the stream stores it.
func NewGenerator(n int) *Generator {
	spacing := 100 * time.Millisecond
	span := time.Duration(n)*spacing + time.Minute
	return &Generator{Base: time.Now().Add(-span), Spacing: spacing, host: "bench-host"}
}

// taskType spreads the tasks over the types the way a busy team's jobs might: most
// training, a quarter inference, a few tuning jobs and other tasks.
func taskType(i int) events.TaskType {
	switch r := i % 20; {
	case r == 0:
		return events.TypeTuning
	case r <= 2:
		return events.TypeTask
	case r <= 7:
		return events.TypeInference
	default:
		return events.TypeTraining
	}
}

var (
	params = json.RawMessage(`{"epochs":7,"lr":0.1,"model_out":"","seed":42,` +
		`"test_fraction":0.2}`)
	result = json.RawMessage(`{"epochs":7,"loss":0.0547,"train_accuracy":0.975,` +
		`"test_accuracy":0.9667,"train_rows":120,"test_rows":30}`)
)

// Task returns the events of task i, in the order a job publishes them. One task in
// ten fails; a training task whose number ends in 8 or 9 is a trial of the latest
// tuning task.
func (g *Generator) Task(i int) []events.Event {
	tt := taskType(i)
	id := events.NewTaskID(tt)
	name := fmt.Sprintf("iris-%s-%d", tt, i%50)
	attempt := nuid.Next()
	at := g.Base.Add(time.Duration(i) * g.Spacing)

	parent := ""
	if tt == events.TypeTraining && i%10 >= 8 {
		parent = g.lastTuning
	}
	if tt == events.TypeTuning {
		g.lastTuning = id
	}

	out := make([]events.Event, 0, EventsPerTask)
	add := func(et events.Type, offset time.Duration, d events.Data) {
		d.Attempt = attempt
		e := events.New(et, id, tt, name, d)
		ts := at.Add(offset)
		e.Timestamp, e.TimestampStr = events.UnixSeconds(ts), events.FormatTime(ts)
		out = append(out, e)
	}
	add(events.TaskSubmitted, 0, events.Data{
		Description: "softmax regression on Fisher's Iris data",
		ParentID:    parent,
	})
	add(events.TaskStarted, 500*time.Millisecond, events.Data{
		Params: params, Host: g.host, PID: 4000 + i%30000,
	})
	for s := 1; s <= ProgressSteps; s++ {
		step, total := int64(s), int64(ProgressSteps)
		add(events.TaskProgress, time.Duration(s)*time.Second, events.Data{
			Step: &step, Total: &total, Metrics: Metrics(s, ProgressSteps),
		})
	}
	end := time.Duration(ProgressSteps+1) * time.Second
	if i%10 == 9 {
		add(events.TaskFailed, end, events.Data{
			Error: "loss diverged at epoch 7: NaN after 3 steps of growth",
		})
	} else {
		add(events.TaskCompleted, end, events.Data{Result: result})
	}
	return out
}
