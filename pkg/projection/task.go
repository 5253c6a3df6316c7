package projection

import (
	"encoding/json"
	"slices"
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

// HistoryEntry is one event of a task as it appears in the task's history.
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
	seen       map[string]struct{} // event ids, once the history is too long to scan
	minTS      float64
	progressTS float64
	progressID string
	metricAt   map[string]mark // which event each latest metric value came from
	attempts   []*attemptState // by (first timestamp, attempt id)
	lastSeq    uint64
	heardAt    time.Time // when this process last applied an event of the task
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
	submitted *HistoryEntry // the earliest
	started   *HistoryEntry // the earliest
	running   bool          // started, progress or heartbeat seen
	terminal  *HistoryEntry // the latest
	lastSeen  float64       // latest event other than task_lost
	lostSeen  float64       // the latest last_seen of a task_lost event
}

func (a *attemptState) status() Status {
	switch {
	case a.terminal != nil:
		return terminalStatus(a.terminal.EventType)
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
	for i := range t.History {
		if t.History[i].EventID == id {
			return true
		}
	}
	return false
}

func (t *Task) remember(id string) {
	if t.fold.seen == nil && len(t.History) >= seenLimit {
		t.fold.seen = make(map[string]struct{}, 2*len(t.History))
		for i := range t.History {
			t.fold.seen[t.History[i].EventID] = struct{}{}
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
		t.remember(e.EventID)
		t.insert(HistoryEntry{
			EventID:      e.EventID,
			EventType:    e.EventType,
			Timestamp:    e.Timestamp,
			TimestampStr: e.TimestampStr,
			Data:         e.Data,
		})
		t.EventCount++
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
	h := &HistoryEntry{
		EventID:      e.EventID,
		EventType:    e.EventType,
		Timestamp:    e.Timestamp,
		TimestampStr: e.TimestampStr,
		Data:         e.Data,
	}
	if e.EventType == events.TaskLost {
		a.lostSeen = max(a.lostSeen, e.Data.LastSeen)
		return
	}
	a.lastSeen = max(a.lastSeen, e.Timestamp)
	switch e.EventType {
	case events.TaskSubmitted:
		if a.submitted == nil || later(a.submitted, h) {
			a.submitted = h
		}
	case events.TaskStarted:
		a.running = true
		if a.started == nil || later(a.started, h) {
			a.started = h
		}
	case events.TaskProgress, events.TaskHeartbeat:
		a.running = true
	case events.TaskCompleted, events.TaskFailed, events.TaskCancelled:
		if later(h, a.terminal) {
			a.terminal = h
		}
	}
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
	if len(d.Metrics) == 0 {
		return
	}
	// The map is replaced, never changed in place, so that copies handed to readers
	// stay valid without a lock.
	m := make(events.Metrics, len(t.Metrics)+len(d.Metrics))
	for k, v := range t.Metrics {
		m[k] = v
	}
	if t.fold.metricAt == nil {
		t.fold.metricAt = make(map[string]mark, len(d.Metrics))
	}
	for k, v := range d.Metrics {
		cur, ok := t.fold.metricAt[k]
		if !ok || later2(e.Timestamp, e.EventID, cur.ts, cur.id) {
			m[k] = v
			t.fold.metricAt[k] = mark{e.Timestamp, e.EventID}
		}
	}
	t.Metrics = m
}

// derive recomputes the fields that follow from the attempts: the first submission
// describes the task, the latest attempt gives its status and run.
func (t *Task) derive() {
	var first *HistoryEntry
	for _, a := range t.fold.attempts {
		if s := a.submitted; s != nil && (first == nil || later(first, s)) {
			first = s
		}
	}
	t.CreatedAt, t.Description, t.ParentID = t.fold.minTS, "", ""
	if first != nil {
		t.CreatedAt, t.Description, t.ParentID = first.Timestamp, first.Data.Description,
			first.Data.ParentID
	}

	t.Attempts = t.Attempts[:0]
	for i, a := range t.fold.attempts {
		at := Attempt{Attempt: a.id, Number: i + 1, Status: a.status()}
		if a.started != nil {
			at.StartedAt = a.started.Timestamp
		}
		if a.terminal != nil {
			// The list is a summary: the whole error is in the history and, for the
			// latest attempt, in the task.
			at.FinishedAt = a.terminal.Timestamp
			at.Error = events.Truncate(a.terminal.Data.Error, attemptErrorLen)
		}
		t.Attempts = append(t.Attempts, at)
	}

	latest := t.fold.attempts[len(t.fold.attempts)-1]
	t.Status = latest.status()
	t.StartedAt, t.Params, t.Host, t.PID = 0, nil, "", 0
	if s := latest.started; s != nil {
		t.StartedAt = s.Timestamp
		t.Params, t.Host, t.PID = s.Data.Params, s.Data.Host, s.Data.PID
	}
	t.FinishedAt, t.Duration = 0, 0
	t.Result, t.Error, t.Stack = nil, "", ""
	if end := latest.terminal; end != nil {
		t.FinishedAt = end.Timestamp
		t.Result, t.Error, t.Stack = end.Data.Result, end.Data.Error, end.Data.Stack
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
func later(h, cur *HistoryEntry) bool {
	return cur == nil || later2(h.Timestamp, h.EventID, cur.Timestamp, cur.EventID)
}

func later2(ts float64, id string, curTS float64, curID string) bool {
	return ts > curTS || ts == curTS && id > curID
}

// insert puts h into the history in (timestamp, event id) order. Events nearly always
// arrive in order, so the common case is an append.
func (t *Task) insert(h HistoryEntry) {
	n := len(t.History)
	if n == 0 || !later(&t.History[n-1], &h) {
		t.History = append(t.History, h)
		return
	}
	i, _ := slices.BinarySearchFunc(t.History, h, func(a, b HistoryEntry) int {
		if later(&b, &a) {
			return -1
		}
		return 1
	})
	t.History = slices.Insert(t.History, i, h)
}

// summary returns a copy of the task without its history, safe to use after the
// projection's lock is released. The _str times are written here, from the numbers,
// rather than kept by the fold: copies are far rarer than events.
func (t *Task) summary() Task {
	c := *t
	c.History = nil
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
	c.History = slices.Clone(t.History)
	return c
}
