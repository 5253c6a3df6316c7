package projection

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/miniray/miniray/pkg/events"
)

// Value is one reported metric value. It encodes as [events.Metrics] does: a number,
// or one of the strings "NaN", "+Inf" and "-Inf" for the values JSON cannot hold.
type Value float64

// MarshalJSON writes a finite value as a number and the others as strings.
func (v Value) MarshalJSON() ([]byte, error) {
	return appendValue(nil, float64(v)), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (v *Value) UnmarshalJSON(b []byte) error {
	var m events.Metrics
	if err := json.Unmarshal([]byte(`{"v":`+string(b)+`}`), &m); err != nil {
		return err
	}
	*v = Value(m["v"])
	return nil
}

func appendValue(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// Curve is every value one metric took, against the step it was reported at. Points
// are in the order (step, timestamp, event id); none is left out, and a step reported
// twice gives two points.
type Curve struct {
	Step  []int64 `json:"step"`
	Value []Value `json:"value"`
}

// MarshalJSON writes the curve in one pass: a curve can hold a million points, and
// a Marshaler per value would make the encoder re-check each one.
func (c *Curve) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24+16*len(c.Step))
	b = append(b, `{"step":[`...)
	for i, s := range c.Step {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, s, 10)
	}
	b = append(b, `],"value":[`...)
	for i, v := range c.Value {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendValue(b, float64(v))
	}
	return append(b, "]}"...), nil
}

func (c *Curve) add(step int64, v float64) {
	c.Step = append(c.Step, step)
	c.Value = append(c.Value, Value(v))
}

// TaskSeries is every metric a task reported, point by point. When the task id ran
// more than once, the points are those of its latest attempt: each run starts again
// from its first step, and two runs on one curve would zigzag.
type TaskSeries struct {
	TaskID string `json:"task_id"`
	// Attempt is the attempt the points come from, Attempts how many the task has.
	Attempt  string `json:"attempt,omitempty"`
	Attempts int    `json:"attempts"`
	// Points counts the points of all series together.
	Points int               `json:"points"`
	Series map[string]*Curve `json:"series"`
}

// Series returns every point of every metric that the latest attempt of a task
// reported in its progress events. A progress event without a step takes the step
// of the one before it, or 0. It reports false when the task is unknown.
func (p *Projection) Series(id string) (TaskSeries, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t, ok := p.tasks[id]
	if !ok {
		return TaskSeries{}, false
	}
	ts := TaskSeries{
		TaskID:   id,
		Attempt:  t.latest().id,
		Attempts: len(t.attempts),
		Series:   t.curves(""),
	}
	for _, c := range ts.Series {
		ts.Points += len(c.Step)
	}
	return ts, true
}

// curves builds the curves of the latest attempt: of every metric when metric is
// empty, of that one only otherwise.
func (t *task) curves(metric string) map[string]*Curve {
	// A point is the step and the metrics of one progress event: its compact form,
	// or its JSON parsed.
	type point struct {
		step    int64
		compact []byte
		parsed  events.Metrics
	}
	attempt := t.latest().id
	var pts []point
	var step int64
	t.hist.each(func(_ uint32, e *entryView) {
		if e.et != events.TaskProgress {
			return
		}
		if e.form == formCompact {
			v := decodeCompact(e.data)
			a := ""
			if v.mask&fAttempt != 0 {
				a = t.names[v.attempt]
			}
			if a != attempt {
				return
			}
			if v.mask&fStep != 0 {
				step = v.step
			}
			if v.nMetrics > 0 {
				pts = append(pts, point{step: step, compact: e.data})
			}
			return
		}
		d := new(progressData)
		if err := json.Unmarshal(e.data, d); err != nil || d.Attempt != attempt {
			return
		}
		if d.Step != nil {
			step = *d.Step
		}
		if len(d.Metrics) > 0 {
			pts = append(pts, point{step: step, parsed: d.Metrics})
		}
	})
	// The history is in (timestamp, event id) order; a stable sort by step keeps it
	// as the tie-break.
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.step, b.step) })

	out := make(map[string]*Curve)
	add := func(step int64, k string, v float64) {
		if metric != "" && k != metric {
			return
		}
		c := out[k]
		if c == nil {
			c = &Curve{}
			out[k] = c
		}
		c.add(step, v)
	}
	for _, pt := range pts {
		if pt.compact != nil {
			v := decodeCompact(pt.compact)
			v.eachMetric(func(ref uint64, x float64) { add(pt.step, t.names[ref], x) })
			continue
		}
		for k, x := range pt.parsed {
			add(pt.step, k, x)
		}
	}
	return out
}

// progressData is the part of a progress event's data that a curve needs.
type progressData struct {
	Attempt string         `json:"attempt"`
	Step    *int64         `json:"step"`
	Metrics events.Metrics `json:"metrics"`
}

// Limits of [TrialsQuery].
const (
	DefaultTrialCurves = 50
	MaxTrialCurves     = 200
	// MaxTrials bounds the trials listed; Trials.Total still counts them all.
	MaxTrials = 1000
)

// maxMetricName bounds the metric name a query gives, far above any real one.
const maxMetricName = 1024

// Orders of [TrialsQuery]: which end of a metric is better.
const (
	OrderMin = "min"
	OrderMax = "max"
)

// TrialsQuery says how the trials of a task (its child tasks) are ranked.
type TrialsQuery struct {
	// Metric ranks the trials by its latest value; empty picks one, see
	// [Projection.Trials].
	Metric string
	// Order is OrderMin or OrderMax; empty follows [HigherIsBetter].
	Order string
	// Curves is how many of the best trials come with the curve of the metric.
	Curves int
}

// Validate checks a query and fills in defaults. Its errors name the parameter.
func (q *TrialsQuery) Validate() error {
	if len(q.Metric) > maxMetricName {
		return fmt.Errorf("metric: longer than %d bytes", maxMetricName)
	}
	if q.Order != "" && q.Order != OrderMin && q.Order != OrderMax {
		return fmt.Errorf("order: %q is neither %q nor %q", q.Order, OrderMin, OrderMax)
	}
	if q.Curves == 0 {
		q.Curves = DefaultTrialCurves
	}
	if q.Curves < 1 || q.Curves > MaxTrialCurves {
		return fmt.Errorf("curves: %d is not between 1 and %d", q.Curves, MaxTrialCurves)
	}
	return nil
}

// Trials ranks the trials of a tuning task: its child tasks, best first.
type Trials struct {
	TaskID string `json:"task_id"`
	// Metric and Order are those of the ranking, chosen when the query left them out.
	Metric string `json:"metric"`
	Order  string `json:"order"`
	// Metrics lists every metric a trial reported, sorted, to choose from.
	Metrics []string `json:"metrics"`
	// Total counts every trial; at most MaxTrials are listed.
	Total  int     `json:"total"`
	Trials []Trial `json:"trials"`
}

// Trial is one trial as the ranking shows it. Curve is set on the best trials only,
// as many as the query asked for.
type Trial struct {
	TaskID    string          `json:"task_id"`
	Name      string          `json:"name"`
	Status    Status          `json:"status"`
	Params    json.RawMessage `json:"params,omitempty"`
	Metrics   events.Metrics  `json:"metrics,omitempty"`
	Progress  Progress        `json:"progress"`
	Duration  float64         `json:"duration,omitempty"`
	CreatedAt float64         `json:"created_at,omitempty"`
	Curve     *Curve          `json:"curve,omitempty"`
}

// ErrNoSuchTask is returned by [Projection.Trials] for a task id the projection
// does not know.
var ErrNoSuchTask = errors.New("no such task")

// Trials ranks the child tasks of task id by the latest value of one metric, best
// first; trials without a finite value of it come last, oldest first. Without a
// metric in q it ranks by X when the parent reports a "best_X" that the trials
// report, else by a metric whose name tells its direction, preferring validation
// and test metrics. Its error wraps [ErrNoSuchTask] or names a bad field of q.
func (p *Projection) Trials(id string, q TrialsQuery) (Trials, error) {
	if err := q.Validate(); err != nil {
		return Trials{}, err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	parent, ok := p.tasks[id]
	if !ok {
		return Trials{}, fmt.Errorf("%w: %s", ErrNoSuchTask, id)
	}
	var kids []*task
	names := map[string]bool{}
	for _, t := range p.children[id] {
		if t.id != id {
			kids = append(kids, t)
			for _, m := range t.metrics {
				names[m.name] = true
			}
		}
	}
	out := Trials{TaskID: id, Metric: q.Metric, Order: q.Order, Total: len(kids),
		Metrics: slices.Sorted(maps.Keys(names))}
	if out.Metrics == nil {
		out.Metrics = []string{} // JSON [] rather than null for a task without trials
	}
	if out.Metric == "" {
		out.Metric = defaultTrialMetric(parent.latestMetrics(), out.Metrics)
	}
	if out.Order == "" {
		out.Order = OrderMin
		if HigherIsBetter(out.Metric) {
			out.Order = OrderMax
		}
	}

	slices.SortStableFunc(kids, rankBy(out.Metric, out.Order == OrderMax))
	kids = kids[:min(len(kids), MaxTrials)]
	out.Trials = make([]Trial, len(kids))
	for i, t := range kids {
		out.Trials[i] = Trial{TaskID: t.id, Name: t.name, Status: t.status,
			Params: t.params(), Metrics: t.latestMetrics(), Progress: t.progress,
			Duration: t.duration(), CreatedAt: t.created}
		if i < q.Curves && out.Metric != "" {
			c := t.curves(out.Metric)[out.Metric]
			if c == nil {
				c = &Curve{Step: []int64{}, Value: []Value{}}
			}
			out.Trials[i].Curve = c
		}
	}
	return out, nil
}

// rankBy orders trials best first by the metric; a trial without a finite value
// ranks after every one with, and those keep the order of creation.
func rankBy(metric string, higher bool) func(a, b *task) int {
	value := func(t *task) (float64, bool) {
		v, ok := t.metric(metric)
		return v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	return func(a, b *task) int {
		va, oka := value(a)
		vb, okb := value(b)
		switch {
		case oka && okb && va != vb:
			if higher {
				return cmp.Compare(vb, va)
			}
			return cmp.Compare(va, vb)
		case oka != okb:
			if oka {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.created, b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	}
}

// Words of metric names that tell a metric's direction, or that it was measured on
// held-out data. A name is split into words at anything but letters and digits, and
// a word matches when it starts with one of these: "acc" covers "accuracy".
var (
	lowerWords = []string{"loss", "err", "mse", "mae", "rmse", "perplexity", "ppl", "wer",
		"cer", "latency", "regret", "nll", "cost", "fail"}
	higherWords = []string{"acc", "precision", "recall", "f1", "auc", "score", "reward",
		"return", "iou", "bleu", "rouge", "map", "r2", "dice", "top1", "top5", "throughput",
		"success"}
	evalWords = []string{"val", "test", "eval", "holdout"}
)

func words(name string) []string {
	return strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func hasWord(ws []string, prefixes []string) bool {
	for _, w := range ws {
		for _, p := range prefixes {
			if strings.HasPrefix(w, p) {
				return true
			}
		}
	}
	return false
}

// HigherIsBetter guesses from a metric's name whether a larger value is better:
// accuracies, scores and rewards are, losses, errors and anything unknown are not.
// A name with words of both kinds ("accuracy_loss") counts as a loss.
func HigherIsBetter(name string) bool {
	ws := words(name)
	return !hasWord(ws, lowerWords) && hasWord(ws, higherWords)
}

func defaultTrialMetric(parent events.Metrics, names []string) string {
	for _, k := range slices.Sorted(maps.Keys(parent)) {
		if m, ok := strings.CutPrefix(k, "best_"); ok && slices.Contains(names, m) {
			return m
		}
	}
	rank := func(name string) int {
		ws := words(name)
		r := 0
		if !hasWord(ws, evalWords) {
			r += 2
		}
		if !hasWord(ws, lowerWords) && !hasWord(ws, higherWords) {
			r += 4
		}
		return r
	}
	best := ""
	for _, n := range names {
		if best == "" || rank(n) < rank(best) {
			best = n
		}
	}
	return best
}
