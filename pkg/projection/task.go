package projection

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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

// Task is the state of one task. Times are Unix seconds; a zero time is unknown and
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

	Attempts []Attempt      `json:"attempts,omitempty"`
	History  []HistoryEntry `json:"history,omitempty"`

	// HistoryOmitted counts history entries left out of this copy of the state; it
	// is only set on the copy written to the KV bucket when the whole would not fit.
	HistoryOmitted int `json:"history_omitted,omitempty"`

	fold foldState
}

// Attempt is one run of a task id, numbered from 1 in order of first sight.
type Attempt struct {
	Attempt    string  `json:"attempt"`
	Number     int     `json:"number"`
	Status     Status  `json:"status"`
	StartedAt  float64 `json:"started_at,omitempty"`
	FinishedAt float64 `json:"finished_at,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// foldState holds what the fold needs beyond the visible state. Every field is a
// minimum, a maximum or a choice by a total order, so that the result does not depend
// on the order events arrive in.
type foldState struct {
	entries    []entry             // the history, in (timestamp, event id) order
	seen       map[string]struct{} // event ids, once the history is too long to scan
	minTS      float64
	progressTS float64
	progressID string
	metrics    []metricMark    // the latest value of each metric, by name
	attempts   []*attemptState // by (first timestamp, attempt id)
	lastSeq    uint64
	heardAt    time.Time // when this process last applied an event of the task
}

// entry is one event of the history as the projection keeps it: its data stays the
// JSON it arrived as, since most entries are progress events that are read far less
// often than they are written, and parsed data (a map per event) would cost several
// times the memory.
type entry struct {
	id   string
	et   events.Type
	ts   float64
	data []byte
}

// metricMark is the latest value of one metric and the event it came from.
type metricMark struct {
	name string
	v    float64
	at   mark
}

// lifeEvent is what an attempt keeps of a lifecycle event, parsed.
type lifeEvent struct {
	mark
	et events.Type
	d  events.Data
}

// mark names an event by its place in the order (timestamp, event id).
type mark struct {
	ts float64
	id string
}

// attemptState is the fold of one attempt's events.
type attemptState struct {
	id        string
	firstTS   float64
	submitted *lifeEvent // the earliest
	started   *lifeEvent // the earliest
	running   bool       // started, progress or heartbeat seen
	terminal  *lifeEvent // the latest
	lastSeen  float64    // latest event other than task_lost
	lostSeen  float64    // the latest last_seen of a task_lost event
}

func (a *attemptState) status() Status {
	switch {
	case a.terminal != nil:
		return terminalStatus(a.terminal.et)
	case a.lostSeen > 0 && a.lostSeen >= a.lastSeen:
		return Lost
	case a.running:
		return Running
	default:
		return Pending
	}
}

// attemptErrorLen bounds the error text of each attempt in the attempts list.
const attemptErrorLen = 512

// seenLimit is the history length past which duplicate checks use a set instead of a
// scan; most tasks have a handful of events and should not pay for a map.
const seenLimit = 32

func newTask(e *events.Event) *Task {
	return &Task{TaskID: e.TaskID, Type: e.TaskType, Name: e.Name, Status: Pending}
}

// has reports whether the task has already applied the event id.
func (t *Task) has(id string) bool {
	if t.fold.seen != nil {
		_, ok := t.fold.seen[id]
		return ok
	}
	for i := range t.fold.entries {
		if t.fold.entries[i].id == id {
			return true
		}
	}
	return false
}

func (t *Task) remember(id string) {
	if t.fold.seen == nil && len(t.fold.entries) >= seenLimit {
		t.fold.seen = make(map[string]struct{}, 2*len(t.fold.entries))
		for i := range t.fold.entries {
			t.fold.seen[t.fold.entries[i].id] = struct{}{}
		}
	}
	if t.fold.seen != nil {
		t.fold.seen[id] = struct{}{}
	}
}

// apply folds one event into the task. It returns false, changing nothing, when the
// task has seen the event id before. Heartbeats only move the last-seen time: they
// are neither kept in the history nor counted as events, and applying one twice is
// harmless.
func (t *Task) apply(e *events.Event, seq uint64) bool {
	if e.EventType != events.TaskHeartbeat {
		if t.has(e.EventID) {
			return false
		}
		data, err := e.DataJSON()
		if err != nil {
			data = []byte("{}") // only non-finite metrics fail, and Metrics encodes those
		}
		t.remember(e.EventID)
		t.insert(entry{id: e.EventID, et: internType(e.EventType), ts: e.Timestamp, data: data})
		t.EventCount++
		if e.EventType.Terminal() && cap(t.fold.entries) > len(t.fold.entries)+4 {
			// Most tasks get few events after their end: give back what append
			// reserved for more.
			t.fold.entries = slices.Clone(t.fold.entries)
		}
	}
	t.fold.lastSeq = max(t.fold.lastSeq, seq)
	if e.Name != "" && (t.Name == "" || e.EventType == events.TaskSubmitted) {
		t.Name = e.Name
	}
	t.UpdatedAt = max(t.UpdatedAt, e.Timestamp)
	if t.fold.minTS == 0 || e.Timestamp < t.fold.minTS {
		t.fold.minTS = e.Timestamp
	}
	if e.EventType != events.TaskLost {
		t.LastSeenAt = max(t.LastSeenAt, e.Timestamp)
	}

	t.applyAttempt(e)
	if e.EventType == events.TaskProgress {
		t.applyProgress(e)
	}
	t.derive()
	return true
}

// attempt returns the state of the attempt an event belongs to, creating it.
func (t *Task) attempt(e *events.Event) *attemptState {
	id := e.Data.Attempt
	for _, a := range t.fold.attempts {
		if a.id == id {
			if e.Timestamp < a.firstTS {
				a.firstTS = e.Timestamp
				t.sortAttempts()
			}
			return a
		}
	}
	a := &attemptState{id: id, firstTS: e.Timestamp}
	t.fold.attempts = append(t.fold.attempts, a)
	t.sortAttempts()
	return a
}

func (t *Task) sortAttempts() {
	slices.SortFunc(t.fold.attempts, func(a, b *attemptState) int {
		if later2(a.firstTS, a.id, b.firstTS, b.id) {
			return 1
		}
		return -1
	})
}

// applyAttempt takes from one event what its type carries into its attempt.
func (t *Task) applyAttempt(e *events.Event) {
	a := t.attempt(e)
	if e.EventType == events.TaskLost {
		a.lostSeen = max(a.lostSeen, e.Data.LastSeen)
		return
	}
	a.lastSeen = max(a.lastSeen, e.Timestamp)
	m := mark{e.Timestamp, e.EventID}
	life := func() *lifeEvent { return &lifeEvent{mark: m, et: internType(e.EventType), d: e.Data} }
	switch e.EventType {
	case events.TaskSubmitted:
		if a.submitted == nil || a.submitted.after(m) {
			a.submitted = life()
		}
	case events.TaskStarted:
		a.running = true
		if a.started == nil || a.started.after(m) {
			a.started = life()
		}
	case events.TaskProgress, events.TaskHeartbeat:
		a.running = true
	case events.TaskCompleted, events.TaskFailed, events.TaskCancelled:
		if a.terminal == nil || m.after(a.terminal.mark) {
			a.terminal = life()
		}
	}
}

// after reports whether m comes after o in the order (timestamp, event id).
func (m mark) after(o mark) bool {
	return later2(m.ts, m.id, o.ts, o.id)
}

// internType returns the package's constant for a known event type, so that a
// million history entries share a handful of strings instead of holding a copy each.
func internType(et events.Type) events.Type {
	for _, k := range events.Types {
		if et == k {
			return k
		}
	}
	return et
}

func (t *Task) applyProgress(e *events.Event) {
	d := &e.Data
	if d.Step != nil && later2(e.Timestamp, e.EventID, t.fold.progressTS, t.fold.progressID) {
		t.fold.progressTS, t.fold.progressID = e.Timestamp, e.EventID
		t.Progress.Step = *d.Step
		if d.Total != nil {
			t.Progress.Total = *d.Total
		}
	}
	at := mark{e.Timestamp, e.EventID}
	for k, v := range d.Metrics {
		i := slices.IndexFunc(t.fold.metrics, func(m metricMark) bool { return m.name == k })
		switch {
		case i < 0:
			t.fold.metrics = append(t.fold.metrics, metricMark{name: k, v: v, at: at})
		case at.after(t.fold.metrics[i].at):
			t.fold.metrics[i].v, t.fold.metrics[i].at = v, at
		}
	}
}

// metric returns the latest value of one metric.
func (t *Task) metric(name string) (float64, bool) {
	for _, m := range t.fold.metrics {
		if m.name == name {
			return m.v, true
		}
	}
	return 0, false
}

// latestMetrics returns the latest value of each metric as a map.
func (t *Task) latestMetrics() events.Metrics {
	if len(t.fold.metrics) == 0 {
		return nil
	}
	m := make(events.Metrics, len(t.fold.metrics))
	for _, mm := range t.fold.metrics {
		m[mm.name] = mm.v
	}
	return m
}

// derive recomputes the fields that follow from the attempts: the first submission
// describes the task, the latest attempt gives its status and run.
func (t *Task) derive() {
	var first *lifeEvent
	for _, a := range t.fold.attempts {
		if s := a.submitted; s != nil && (first == nil || first.after(s.mark)) {
			first = s
		}
	}
	t.CreatedAt, t.Description, t.ParentID = t.fold.minTS, "", ""
	if first != nil {
		t.CreatedAt, t.Description, t.ParentID = first.ts, first.d.Description, first.d.ParentID
	}

	t.Attempts = t.Attempts[:0]
	for i, a := range t.fold.attempts {
		at := Attempt{Attempt: a.id, Number: i + 1, Status: a.status()}
		if a.started != nil {
			at.StartedAt = a.started.ts
		}
		if a.terminal != nil {
			// The list is a summary: the whole error is in the history and, for the
			// latest attempt, in the task.
			at.FinishedAt = a.terminal.ts
			at.Error = events.Truncate(a.terminal.d.Error, attemptErrorLen)
		}
		t.Attempts = append(t.Attempts, at)
	}

	latest := t.fold.attempts[len(t.fold.attempts)-1]
	t.Status = latest.status()
	t.StartedAt, t.Params, t.Host, t.PID = 0, nil, "", 0
	if s := latest.started; s != nil {
		t.StartedAt = s.ts
		t.Params, t.Host, t.PID = s.d.Params, s.d.Host, s.d.PID
	}
	t.FinishedAt, t.Duration = 0, 0
	t.Result, t.Error, t.Stack = nil, "", ""
	if end := latest.terminal; end != nil {
		t.FinishedAt = end.ts
		t.Result, t.Error, t.Stack = end.d.Result, end.d.Error, end.d.Stack
		begin := t.StartedAt
		if begin == 0 {
			begin = latest.firstTS
		}
		t.Duration = max(0, t.FinishedAt-begin)
	}
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

// later reports whether h comes after cur in the order (timestamp, event id).
func later(h, cur *entry) bool {
	return cur == nil || later2(h.ts, h.id, cur.ts, cur.id)
}

func later2(ts float64, id string, curTS float64, curID string) bool {
	return ts > curTS || ts == curTS && id > curID
}

// insert puts h into the history in (timestamp, event id) order. Events nearly always
// arrive in order, so the common case is an append.
func (t *Task) insert(h entry) {
	hist := t.fold.entries
	n := len(hist)
	if n == 0 || !later(&hist[n-1], &h) {
		t.fold.entries = append(hist, h)
		return
	}
	i, _ := slices.BinarySearchFunc(hist, h, func(a, b entry) int {
		if later(&b, &a) {
			return -1
		}
		return 1
	})
	t.fold.entries = slices.Insert(hist, i, h)
}

// summary returns a copy of the task without its history, safe to use after the
// projection's lock is released. The _str times are written here, from the numbers,
// rather than kept by the fold: copies are far rarer than events.
func (t *Task) summary() Task {
	c := *t
	c.History = nil
	c.Metrics = t.latestMetrics()
	c.Attempts = slices.Clone(t.Attempts)
	c.fold = foldState{}
	c.CreatedAtStr = timeStr(c.CreatedAt)
	c.StartedAtStr = timeStr(c.StartedAt)
	c.FinishedAtStr = timeStr(c.FinishedAt)
	c.LastSeenAtStr = timeStr(c.LastSeenAt)
	c.UpdatedAtStr = timeStr(c.UpdatedAt)
	return c
}

func timeStr(ts float64) string {
	if ts == 0 {
		return ""
	}
	return events.FormatTime(events.FromUnixSeconds(ts))
}

// clone returns a full copy, history included.
func (t *Task) clone() Task {
	c := t.summary()
	c.History = make([]HistoryEntry, len(t.fold.entries))
	for i, e := range t.fold.entries {
		c.History[i] = e.entry()
	}
	return c
}

// entry returns the history entry a compact entry stands for.
func (e *entry) entry() HistoryEntry {
	h := HistoryEntry{EventID: e.id, EventType: e.et, Timestamp: e.ts, TimestampStr: timeStr(e.ts)}
	// The data was valid JSON of an event's data when it was stored.
	_ = json.Unmarshal(e.data, &h.Data)
	return h
}

// snapshot is a task's state at one moment with its compact history, safe to encode
// after the projection's lock is released: entries are never changed in place, and
// the slice is a copy.
type snapshot struct {
	task    Task
	entries []entry
}

func (t *Task) snapshot() snapshot {
	return snapshot{task: t.summary(), entries: slices.Clone(t.fold.entries)}
}

// marshal encodes the task with its history, leaving out its first omit progress
// entries (and saying so in history_omitted); omit < 0 leaves out the whole history.
func (s *snapshot) marshal(omit int) ([]byte, error) {
	t := s.task
	switch {
	case omit < 0:
		t.HistoryOmitted = len(s.entries)
	case omit > 0:
		t.HistoryOmitted = omit
	}
	head, err := json.Marshal(&t)
	if err != nil {
		return nil, fmt.Errorf("encode task %s: %w", t.TaskID, err)
	}
	if omit < 0 || len(s.entries) == 0 {
		return head, nil
	}

	// The summary has no history; the history goes in before its closing brace.
	size := len(head) + 16
	for i := range s.entries {
		size += len(s.entries[i].data) + 128
	}
	b := make([]byte, 0, size)
	b = append(b, head[:len(head)-1]...)
	b = append(b, `,"history":[`...)
	first := true
	for i := range s.entries {
		e := &s.entries[i]
		if omit > 0 && e.et == events.TaskProgress {
			omit--
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = e.appendJSON(b)
	}
	return append(b, "]}"...), nil
}

// appendJSON appends the entry as a history entry's JSON. Ids and event types are
// validated tokens of letters, digits, '_' and '-', which need no escaping.
func (e *entry) appendJSON(b []byte) []byte {
	b = append(b, `{"event_id":"`...)
	b = append(b, e.id...)
	b = append(b, `","event_type":"`...)
	b = append(b, e.et...)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendFloat(b, e.ts, 'f', -1, 64)
	b = append(b, `,"timestamp_str":"`...)
	b = events.FromUnixSeconds(e.ts).AppendFormat(b, events.TimeLayout)
	b = append(b, `","data":`...)
	b = append(b, e.data...)
	return append(b, '}')
}
