package projection

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// Status is where a task stands.
type Status string

// The statuses. LOST means the collector saw no sign of life for too long; a task
// that reports again is RUNNING again.
const (
	Pending   Status = "PENDING"
	Running   Status = "RUNNING"
	Completed Status = "COMPLETED"
	Failed    Status = "FAILED"
	Cancelled Status = "CANCELLED"
	Lost      Status = "LOST"
)

// Statuses lists every status.
var Statuses = []Status{Pending, Running, Completed, Failed, Cancelled, Lost}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	return slices.Contains(Statuses, s)
}

// Finished reports whether s is an end: completed, failed or cancelled.
func (s Status) Finished() bool {
	return s == Completed || s == Failed || s == Cancelled
}

// Progress is how far a task got: step of total, total 0 when unknown.
type Progress struct {
	Step  int64 `json:"step"`
	Total int64 `json:"total"`
}

// HistoryEntry is one event of a task as it appears in the task's history. The
// projection keeps history entries compact (see entry) and builds these for readers.
type HistoryEntry struct {
	EventID      string      `json:"event_id"`
	EventType    events.Type `json:"event_type"`
	Timestamp    float64     `json:"timestamp"`
	TimestampStr string      `json:"timestamp_str"`
	Data         events.Data `json:"data"`
}

// Task is the state of one task as readers get it: a copy, made from the fold's
// state (see task) when asked for. Times are Unix seconds; a zero time is unknown and
// left out of the JSON, with its _str twin. When a task id ran more than once, the
// fields that describe a run (status, start, end, params, result, error) are those of
// its latest attempt, and Attempts lists them all.
type Task struct {
	TaskID      string          `json:"task_id"`
	Name        string          `json:"name"`
	Type        events.TaskType `json:"type"`
	Status      Status          `json:"status"`
	Description string          `json:"description,omitempty"`
	ParentID    string          `json:"parent_id,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	Progress    Progress        `json:"progress"`
	Metrics     events.Metrics  `json:"metrics,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	Stack       string          `json:"stack,omitempty"`
	Host        string          `json:"host,omitempty"`
	PID         int             `json:"pid,omitempty"`

	CreatedAt     float64 `json:"created_at,omitempty"`
	CreatedAtStr  string  `json:"created_at_str,omitempty"`
	StartedAt     float64 `json:"started_at,omitempty"`
	StartedAtStr  string  `json:"started_at_str,omitempty"`
	FinishedAt    float64 `json:"finished_at,omitempty"`
	FinishedAtStr string  `json:"finished_at_str,omitempty"`
	Duration      float64 `json:"duration,omitempty"`
	LastSeenAt    float64 `json:"last_seen_at,omitempty"`
	LastSeenAtStr string  `json:"last_seen_at_str,omitempty"`
	EventCount    int     `json:"event_count"`
	UpdatedAt     float64 `json:"updated_at"`
	UpdatedAtStr  string  `json:"updated_at_str"`

	// Attempts are the latest runs, at most MaxShownAttempts of them, oldest first;
	// AttemptsOmitted counts the earlier ones left out. A task id run thousands of
	// times would otherwise make every list row and bucket value that holds it huge.
	Attempts        []Attempt      `json:"attempts,omitempty"`
	AttemptsOmitted int            `json:"attempts_omitted,omitempty"`
	History         []HistoryEntry `json:"history,omitempty"`

	// HistoryOmitted counts history entries left out of this copy of the state; it
	// is only set on the copy written to the KV bucket when the whole would not fit.
	HistoryOmitted int `json:"history_omitted,omitempty"`
}

// MaxShownAttempts bounds the attempts a task's state lists.
const MaxShownAttempts = 50

// Attempt is one run of a task id, numbered from 1 in order of first sight.
type Attempt struct {
	Attempt    string  `json:"attempt"`
	Number     int     `json:"number"`
	Status     Status  `json:"status"`
	StartedAt  float64 `json:"started_at,omitempty"`
	FinishedAt float64 `json:"finished_at,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// task is the fold of one task's events: what the projection keeps of it. Every
// field is a minimum, a maximum or a choice by a total order, so that the result
// does not depend on the order events arrive in. The events themselves are in hist;
// the rest of the state refers to them by their offset there, and the fields that
// come from one event (a description, params, a result) are read from it when a
// reader asks, rather than copied out of every event as it arrives.
type task struct {
	id     string
	name   string
	tt     events.TaskType
	status Status // of the latest attempt
	parent string // of the first submission
	num    uint32 // place in the projection's order of first sight

	progress    Progress
	progressOff uint32 // the latest progress event with a step
	totalOff    uint32 // the latest progress event with a total
	firstSub    uint32 // the first submission, of any attempt
	created     float64
	updated     float64
	lastSeen    float64
	minTS       float64
	heardAt     time.Duration // when this process last applied an event of it, since monoEpoch

	metrics  []metricMark    // the latest value of each metric, sorted by name
	attempts []*attemptState // by (first timestamp, attempt id)
	// names holds the attempt ids and metric names that compact forms refer to by
	// index. It only grows, so a copy of the slice stays valid.
	names []string
	hist  history
}

// metricMark is the latest value of one metric and the entry it came from.
type metricMark struct {
	name string
	ref  uint32 // index of the name in task.names
	off  uint32
	v    float64
}

// attemptState is the fold of one attempt's events.
type attemptState struct {
	id        string
	ref       uint32 // index of the id in task.names
	firstTS   float64
	submitted uint32 // the earliest submission's entry, or noRef
	started   uint32 // the earliest start
	terminal  uint32 // the latest end
	running   bool   // started, progress or heartbeat seen
	lastSeen  float64
	lostSeen  float64 // the latest last_seen of a task_lost event
}

func (a *attemptState) status(h *history) Status {
	switch {
	case a.terminal != noRef:
		return terminalStatus(h.at(a.terminal).et)
	case a.lostSeen > 0 && a.lostSeen >= a.lastSeen:
		return Lost
	case a.running:
		return Running
	default:
		return Pending
	}
}

// monoEpoch is when the process started, as the clock that only moves forward
// sees it: task.heardAt counts from it, which takes a third of the memory of a
// time.Time and, like time.Time's comparisons, ignores changes of the wall clock.
var monoEpoch = time.Now()

// attemptErrorLen bounds the error text of each attempt in the attempts list.
const attemptErrorLen = 512

func newTask(e *events.Event, num uint32) *task {
	return &task{id: e.TaskID, tt: e.TaskType, name: e.Name, status: Pending, num: num,
		progressOff: noRef, totalOff: noRef, firstSub: noRef}
}

// scratch is memory that the fold reuses from one event to the next; the
// projection's write lock guards it.
type scratch struct {
	keys    []string
	json    []byte
	compact []byte
}

// apply folds one event into the task. It returns false, changing nothing, when the
// task has seen the event id before. Heartbeats only move the last-seen time: they
// are neither kept in the history nor counted as events, and applying one twice is
// harmless.
func (t *task) apply(e *events.Event, raw []byte, sc *scratch) bool {
	heartbeat := e.EventType == events.TaskHeartbeat
	if !heartbeat && t.hist.has(e.EventID) {
		return false
	}
	a := t.attempt(e)
	off := noRef
	if !heartbeat {
		off = t.record(e, raw, a, sc)
	}
	if e.Name != "" && (t.name == "" || e.EventType == events.TaskSubmitted) {
		t.name = e.Name
	}
	t.updated = max(t.updated, e.Timestamp)
	if t.minTS == 0 || e.Timestamp < t.minTS {
		t.minTS = e.Timestamp
	}
	if e.EventType != events.TaskLost {
		t.lastSeen = max(t.lastSeen, e.Timestamp)
	}

	t.applyAttempt(e, a, off)
	if e.EventType == events.TaskProgress {
		t.applyProgress(e, off)
	}
	t.derive()
	return true
}

// record puts the event into the history, its data in compact form when that
// renders back to the very JSON it came with (raw, or what e.DataJSON gives when
// raw is nil), and returns its offset.
func (t *task) record(e *events.Event, raw []byte, a *attemptState, sc *scratch) uint32 {
	d := &e.Data
	if raw == nil {
		var err error
		if raw, err = e.DataJSON(); err != nil {
			raw = []byte("{}") // only non-finite metrics fail, and Metrics encodes those
		}
	}
	sc.keys = sc.keys[:0]
	for k := range d.Metrics {
		sc.keys = append(sc.keys, k)
	}
	slices.Sort(sc.keys)
	form, data := byte(formRaw), raw
	sc.json = renderData(sc.json[:0], d, sc.keys)
	if bytes.Equal(sc.json, raw) {
		sc.compact = appendCompact(sc.compact[:0], d, sc.keys, func(name string) uint32 {
			if name == a.id {
				return a.ref
			}
			return t.nameRef(name)
		})
		form, data = formCompact, sc.compact
	}

	off, moved := t.hist.add(e.Timestamp, e.EventType, e.EventID, form, data)
	if moved > 0 {
		t.shift(off, moved)
	}
	if e.EventType.Terminal() {
		t.hist.trim()
	}
	return off
}

// shift moves the references to entries at or after off by n bytes, after an entry
// was inserted there.
func (t *task) shift(off, n uint32) {
	move := func(ref *uint32) {
		if *ref != noRef && *ref >= off {
			*ref += n
		}
	}
	move(&t.progressOff)
	move(&t.totalOff)
	move(&t.firstSub)
	for i := range t.metrics {
		move(&t.metrics[i].off)
	}
	for _, a := range t.attempts {
		move(&a.submitted)
		move(&a.started)
		move(&a.terminal)
	}
}

// nameRef returns the index of a name in the table of names, adding it.
func (t *task) nameRef(name string) uint32 {
	if i, ok := t.findMetric(name); ok {
		return t.metrics[i].ref
	}
	if i := slices.Index(t.names, name); i >= 0 {
		return uint32(i)
	}
	t.names = append(t.names, name)
	return uint32(len(t.names) - 1)
}

// attempt returns the state of the attempt an event belongs to, creating it.
func (t *task) attempt(e *events.Event) *attemptState {
	id := e.Data.Attempt
	for _, a := range t.attempts {
		if a.id == id {
			if e.Timestamp < a.firstTS {
				a.firstTS = e.Timestamp
				t.sortAttempts()
			}
			return a
		}
	}
	a := &attemptState{id: id, ref: t.nameRef(id), firstTS: e.Timestamp, submitted: noRef,
		started: noRef, terminal: noRef}
	a.id = t.names[a.ref] // one copy of the id for both
	t.attempts = append(t.attempts, a)
	t.sortAttempts()
	return a
}

func (t *task) sortAttempts() {
	slices.SortFunc(t.attempts, func(a, b *attemptState) int {
		if later2(a.firstTS, a.id, b.firstTS, b.id) {
			return 1
		}
		return -1
	})
}

// applyAttempt takes from one event, recorded at off, what its type carries into
// its attempt.
func (t *task) applyAttempt(e *events.Event, a *attemptState, off uint32) {
	if e.EventType == events.TaskLost {
		a.lostSeen = max(a.lostSeen, e.Data.LastSeen)
		return
	}
	a.lastSeen = max(a.lastSeen, e.Timestamp)
	earlier := func(cur uint32) bool {
		return cur == noRef || !t.hist.after(e.Timestamp, e.EventID, cur)
	}
	switch e.EventType {
	case events.TaskSubmitted:
		if earlier(a.submitted) {
			a.submitted = off
		}
	case events.TaskStarted:
		a.running = true
		if earlier(a.started) {
			a.started = off
		}
	case events.TaskProgress, events.TaskHeartbeat:
		a.running = true
	case events.TaskCompleted, events.TaskFailed, events.TaskCancelled:
		if t.hist.after(e.Timestamp, e.EventID, a.terminal) {
			a.terminal = off
		}
	}
}

func (t *task) applyProgress(e *events.Event, off uint32) {
	d := &e.Data
	// The step and the total are folded apart: a report without a total keeps the
	// latest one reported, whichever arrived first.
	if d.Step != nil && t.hist.after(e.Timestamp, e.EventID, t.progressOff) {
		t.progressOff = off
		t.progress.Step = *d.Step
	}
	if d.Total != nil && t.hist.after(e.Timestamp, e.EventID, t.totalOff) {
		t.totalOff = off
		t.progress.Total = *d.Total
	}
	for k, v := range d.Metrics {
		i, found := t.findMetric(k)
		if !found {
			ref := t.nameRef(k)
			t.metrics = slices.Insert(t.metrics, i, metricMark{name: t.names[ref], ref: ref,
				off: noRef})
		}
		if m := &t.metrics[i]; t.hist.after(e.Timestamp, e.EventID, m.off) {
			m.v, m.off = v, off
		}
	}
}

// findMetric returns where the metric is, or would be, in the metrics kept sorted by
// name: the order in which JSON writes them.
func (t *task) findMetric(name string) (int, bool) {
	return slices.BinarySearchFunc(t.metrics, name, func(m metricMark, name string) int {
		return strings.Compare(m.name, name)
	})
}

// metric returns the latest value of one metric.
func (t *task) metric(name string) (float64, bool) {
	if i, ok := t.findMetric(name); ok {
		return t.metrics[i].v, true
	}
	return 0, false
}

// latestMetrics returns the latest value of each metric as a map.
func (t *task) latestMetrics() events.Metrics {
	if len(t.metrics) == 0 {
		return nil
	}
	m := make(events.Metrics, len(t.metrics))
	for _, mm := range t.metrics {
		m[mm.name] = mm.v
	}
	return m
}

// derive recomputes what follows from the attempts: the first submission describes
// the task, the latest attempt gives its status.
func (t *task) derive() {
	first := noRef
	for _, a := range t.attempts {
		if s := a.submitted; s != noRef && (first == noRef || t.hist.before(s, first)) {
			first = s
		}
	}
	t.created = t.minTS
	if first != noRef {
		t.created = t.hist.tsAt(first)
	}
	if first != t.firstSub {
		t.firstSub, t.parent = first, ""
		if first != noRef {
			if f := t.fieldsAt(first); len(f.parentID) > 0 {
				t.parent = string(f.parentID)
			}
		}
	}
	t.status = t.latest().status(&t.hist)
}

func (t *task) latest() *attemptState {
	return t.attempts[len(t.attempts)-1]
}

// run returns the start, the end and the duration of the latest attempt, zero when
// unknown.
func (t *task) run() (started, finished, duration float64) {
	if len(t.attempts) == 0 {
		return 0, 0, 0 // only before its first event
	}
	a := t.latest()
	if a.started != noRef {
		started = t.hist.tsAt(a.started)
	}
	if a.terminal != noRef {
		finished = t.hist.tsAt(a.terminal)
		begin := started
		if begin == 0 {
			begin = a.firstTS
		}
		duration = max(0, finished-begin)
	}
	return started, finished, duration
}

func (t *task) duration() float64 {
	_, _, d := t.run()
	return d
}

// fieldsAt reads the data of the entry at off. Its slices point into the history
// for a compact entry; for one kept as JSON, which only a producer that does not
// write JSON as encoding/json does can cause, it parses the JSON, and leaves out the
// attempt and the metrics, which no caller of it reads.
func (t *task) fieldsAt(off uint32) compactView {
	e := t.hist.at(off)
	if e.form == formCompact {
		return decodeCompact(e.data)
	}
	var d events.Data
	_ = json.Unmarshal(e.data, &d) // it was valid JSON of an event's data
	d.Attempt, d.Metrics = "", nil
	v := compactView{mask: dataMask(&d), description: []byte(d.Description),
		parentID: []byte(d.ParentID), params: d.Params, host: []byte(d.Host), pid: int64(d.PID),
		result: d.Result, errText: []byte(d.Error), stack: []byte(d.Stack),
		reason: []byte(d.Reason), lastSeen: d.LastSeen}
	return v
}

func terminalStatus(et events.Type) Status {
	switch et {
	case events.TaskCompleted:
		return Completed
	case events.TaskFailed:
		return Failed
	default:
		return Cancelled
	}
}

func later2(ts float64, id string, curTS float64, curID string) bool {
	return ts > curTS || ts == curTS && id > curID
}
