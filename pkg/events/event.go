package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Type is the kind of lifecycle step an [Event] records.
type Type string

// The event types. TaskLost is published by the collector, never by a job.
// TaskHeartbeat is a running task's periodic sign of life: it moves the task's
// last-seen time and nothing else.
const (
	TaskSubmitted Type = "task_submitted"
	TaskStarted   Type = "task_started"
	TaskProgress  Type = "task_progress"
	TaskCompleted Type = "task_completed"
	TaskFailed    Type = "task_failed"
	TaskCancelled Type = "task_cancelled"
	TaskLost      Type = "task_lost"
	TaskHeartbeat Type = "task_heartbeat"
)

// Types lists every known event type in lifecycle order.
var Types = []Type{
	TaskSubmitted, TaskStarted, TaskProgress, TaskCompleted, TaskFailed, TaskCancelled,
	TaskLost, TaskHeartbeat,
}

// Valid reports whether t is one of the known event types.
func (t Type) Valid() bool {
	for _, k := range Types {
		if t == k {
			return true
		}
	}
	return false
}

// Terminal reports whether t ends a task's attempt: completed, failed or cancelled.
// TaskLost is not terminal: a lost task that reports again is running again.
func (t Type) Terminal() bool {
	return t == TaskCompleted || t == TaskFailed || t == TaskCancelled
}

// TaskType is the kind of job a task is.
type TaskType string

// The task types. TypeTask is for anything that is not training, inference or tuning.
const (
	TypeTraining  TaskType = "training"
	TypeInference TaskType = "inference"
	TypeTuning    TaskType = "tuning"
	TypeTask      TaskType = "task"
)

// TaskTypes lists every known task type.
var TaskTypes = []TaskType{TypeTraining, TypeInference, TypeTuning, TypeTask}

// Valid reports whether t is one of the known task types.
func (t TaskType) Valid() bool {
	return t == TypeTraining || t == TypeInference || t == TypeTuning || t == TypeTask
}

// Event is one lifecycle step of one task, as stored on the stream.
type Event struct {
	EventID      string   `json:"event_id"`
	TaskID       string   `json:"task_id"`
	TaskType     TaskType `json:"task_type"`
	Name         string   `json:"name"`
	EventType    Type     `json:"event_type"`
	Timestamp    float64  `json:"timestamp"`
	TimestampStr string   `json:"timestamp_str"`
	Data         Data     `json:"data"`

	// rawData is Data's JSON as it came off the stream, kept by Decode so that a
	// reader can store the data without encoding it again; nil once Data changed.
	rawData []byte
}

// DataJSON returns the event's data as JSON: the bytes it was decoded from when the
// data has not changed since (see [Bound]), a fresh encoding otherwise.
func (e *Event) DataJSON() ([]byte, error) {
	if e.rawData != nil {
		return e.rawData, nil
	}
	b, err := json.Marshal(&e.Data)
	if err != nil {
		return nil, fmt.Errorf("encode data of event %s: %w", e.EventID, err)
	}
	return b, nil
}

// Data is the payload of an [Event]. Which fields are set depends on the event type:
// Description and ParentID on submission, Params, Host and PID on start, Step, Total
// and Metrics on progress, Result on completion, Error and Stack on failure, LastSeen
// on a task_lost event. Attempt names the run of the task an event belongs to: a
// task id that runs again gets a new attempt.
type Data struct {
	Attempt     string          `json:"attempt,omitempty"`
	Description string          `json:"description,omitempty"`
	ParentID    string          `json:"parent_id,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	Host        string          `json:"host,omitempty"`
	PID         int             `json:"pid,omitempty"`
	Step        *int64          `json:"step,omitempty"`
	Total       *int64          `json:"total,omitempty"`
	Metrics     Metrics         `json:"metrics,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	Stack       string          `json:"stack,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	LastSeen    float64         `json:"last_seen,omitempty"`
}

// The range of valid timestamps: 2000-01-01 to 9999-12-31 UTC. Outside it a time is
// a bug in its producer, and past year 9999 it no longer formats as RFC 3339.
const (
	MinTimestamp = 946684800.0
	MaxTimestamp = 253402300799.0
)

// TimeLayout is the layout of TimestampStr: RFC 3339 in UTC with microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// New returns an event of type et for a task, stamped with the current time and a
// fresh event id.
func New(et Type, taskID string, tt TaskType, name string, data Data) Event {
	now := time.Now()
	return Event{
		EventID:      NewEventID(),
		TaskID:       taskID,
		TaskType:     tt,
		Name:         name,
		EventType:    et,
		Timestamp:    UnixSeconds(now),
		TimestampStr: FormatTime(now),
		Data:         data,
	}
}

// UnixSeconds returns t as Unix seconds with microsecond precision.
func UnixSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

// FormatTime formats t the way TimestampStr is written.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}

// FromUnixSeconds is the inverse of [UnixSeconds].
func FromUnixSeconds(s float64) time.Time {
	return time.UnixMicro(int64(math.Round(s * 1e6))).UTC()
}

// Subject returns the subject the event is published to.
func (e *Event) Subject() string {
	return Subject(e.TaskType, e.TaskID, e.EventType)
}

// Validate checks that the event can be published and folded: known types, a
// subject-safe task id, an event id, a finite timestamp.
func (e *Event) Validate() error {
	if err := ValidateEventID(e.EventID); err != nil {
		return err
	}
	if err := ValidateTaskID(e.TaskID); err != nil {
		return err
	}
	if !e.TaskType.Valid() {
		return &FieldError{Field: "task_type", Msg: fmt.Sprintf("unknown task type %q", e.TaskType)}
	}
	if !e.EventType.Valid() {
		return &FieldError{Field: "event_type", Msg: fmt.Sprintf("unknown event type %q", e.EventType)}
	}
	if math.IsNaN(e.Timestamp) || e.Timestamp < MinTimestamp || e.Timestamp > MaxTimestamp {
		return &FieldError{Field: "timestamp", Msg: fmt.Sprintf(
			"%v is not Unix seconds between the years 2000 and 9999", e.Timestamp)}
	}
	if e.Data.ParentID != "" {
		if err := ValidateTaskID(e.Data.ParentID); err != nil {
			return &FieldError{Field: "data.parent_id", Msg: err.Error()}
		}
		if e.Data.ParentID == e.TaskID {
			return &FieldError{Field: "data.parent_id", Msg: "a task cannot be its own parent"}
		}
	}
	return nil
}

// Encode returns the event's JSON.
func (e *Event) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.EventID, err)
	}
	return b, nil
}

// Decode parses and validates one event. A missing timestamp_str is filled in from
// the timestamp; everything else that is missing or wrong is an error.
func Decode(b []byte) (Event, error) {
	var w struct {
		Event
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	e := w.Event
	if len(w.Data) > 0 && string(w.Data) != "null" {
		if err := json.Unmarshal(w.Data, &e.Data); err != nil {
			return Event{}, fmt.Errorf("%w: data: %w", ErrMalformed, err)
		}
		if w.Data[0] != '{' {
			return Event{}, fmt.Errorf("%w: data: not an object", ErrMalformed)
		}
		e.rawData = w.Data // encoding/json copies a RawMessage out of the input
	}
	if err := e.Validate(); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.TimestampStr == "" {
		e.TimestampStr = FormatTime(FromUnixSeconds(e.Timestamp))
	}
	return e, nil
}

// Errors returned by [Decode] and the validators.
var (
	// ErrMalformed is returned by Decode when the bytes are not an event's JSON.
	ErrMalformed = errors.New("malformed event")
	// ErrInvalid is returned by Decode when the JSON is an event with a wrong field.
	ErrInvalid = errors.New("invalid event")
)

// FieldError names the field of an event that is wrong and why.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	return e.Field + ": " + e.Msg
}

// Metrics maps a metric name to its value. Values that JSON cannot hold (NaN and the
// infinities, which a diverging loss does produce) are written as the strings "NaN",
// "+Inf" and "-Inf" and read back as the same floats, so that no reported value is
// dropped.
type Metrics map[string]float64

// MarshalJSON writes finite values as numbers and the others as strings.
func (m Metrics) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	raw := make(map[string]any, len(m))
	for k, v := range m {
		switch {
		case math.IsNaN(v):
			raw[k] = "NaN"
		case math.IsInf(v, 1):
			raw[k] = "+Inf"
		case math.IsInf(v, -1):
			raw[k] = "-Inf"
		default:
			raw[k] = v
		}
	}
	return json.Marshal(raw)
}

// UnmarshalJSON reads what MarshalJSON writes. A null value is left out: read as
// 0, it would draw a point that was never reported.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	out := make(Metrics, len(raw))
	for k, v := range raw {
		if string(v) == "null" {
			continue // no value: a null is not read as 0
		}
		f, err := parseMetric(v)
		if err != nil {
			return fmt.Errorf("metric %q: %w", k, err)
		}
		out[k] = f
	}
	*m = out
	return nil
}

func parseMetric(v json.RawMessage) (float64, error) {
	var f float64
	if err := json.Unmarshal(v, &f); err == nil {
		return f, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return 0, errors.New("not a number")
	}
	switch strings.ToLower(s) {
	case "nan":
		return math.NaN(), nil
	case "+inf", "inf", "infinity":
		return math.Inf(1), nil
	case "-inf", "-infinity":
		return math.Inf(-1), nil
	}
	return 0, fmt.Errorf("not a number: %q", s)
}
