package projection

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/miniray/miniray/pkg/events"
)

// view returns a copy of the task without its history, safe to use after the
// projection's lock is released. The fields that come from one event are read from
// it here, and the _str times written from the numbers: copies are far rarer than
// events.
func (t *task) view() Task {
	c := Task{
		TaskID:     t.id,
		Name:       t.name,
		Type:       t.tt,
		Status:     t.status,
		ParentID:   t.parent,
		Progress:   t.progress,
		Metrics:    t.latestMetrics(),
		CreatedAt:  t.created,
		LastSeenAt: t.lastSeen,
		EventCount: int(t.hist.n),
		UpdatedAt:  t.updated,
		Attempts:   t.attemptList(),
	}
	c.AttemptsOmitted = len(t.attempts) - len(c.Attempts)
	if t.firstSub != noRef {
		c.Description = string(t.fieldsAt(t.firstSub).description)
	}
	c.StartedAt, c.FinishedAt, c.Duration = t.run()
	if a := t.latest(); a.started != noRef {
		f := t.fieldsAt(a.started)
		c.Params, c.Host, c.PID = cloneRaw(f.params), string(f.host), int(f.pid)
	}
	if a := t.latest(); a.terminal != noRef {
		f := t.fieldsAt(a.terminal)
		c.Result, c.Error, c.Stack = cloneRaw(f.result), string(f.errText), string(f.stack)
	}
	c.CreatedAtStr = timeStr(c.CreatedAt)
	c.StartedAtStr = timeStr(c.StartedAt)
	c.FinishedAtStr = timeStr(c.FinishedAt)
	c.LastSeenAtStr = timeStr(c.LastSeenAt)
	c.UpdatedAtStr = timeStr(c.UpdatedAt)
	return c
}

// params returns the params of the latest attempt's start.
func (t *task) params() json.RawMessage {
	if a := t.latest(); a.started != noRef {
		return cloneRaw(t.fieldsAt(a.started).params)
	}
	return nil
}

func cloneRaw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(bytes.Clone(b))
}

func timeStr(ts float64) string {
	if ts == 0 {
		return ""
	}
	return string(appendTimeStr(make([]byte, 0, len(events.TimeLayout)), ts))
}

// attemptList returns the attempts as the task shows them: the latest
// MaxShownAttempts.
func (t *task) attemptList() []Attempt {
	first := t.firstShownAttempt()
	out := make([]Attempt, 0, len(t.attempts)-first)
	for i := first; i < len(t.attempts); i++ {
		out = append(out, t.attemptOf(i, t.attempts[i], nil))
	}
	return out
}

// firstShownAttempt returns the index of the first attempt the task shows.
func (t *task) firstShownAttempt() int {
	return max(0, len(t.attempts)-MaxShownAttempts)
}

// attemptOf returns one attempt as the task shows it. With buf, the error text is
// not copied out of the history: the caller encodes it at once.
func (t *task) attemptOf(i int, a *attemptState, buf *[]byte) Attempt {
	at := Attempt{Attempt: a.id, Number: i + 1, Status: a.status(&t.hist)}
	if a.started != noRef {
		at.StartedAt = t.hist.tsAt(a.started)
	}
	if a.terminal != noRef {
		// The list is a summary: the whole error is in the history and, for the
		// latest attempt, in the task.
		at.FinishedAt = t.hist.tsAt(a.terminal)
		if msg := t.fieldsAt(a.terminal).errText; len(msg) > 0 {
			if buf != nil && len(msg) <= attemptErrorLen {
				*buf = msg
			} else {
				at.Error = events.Truncate(string(msg), attemptErrorLen)
			}
		}
	}
	return at
}

// clone returns a full copy, history included.
func (t *task) clone() Task {
	c := t.view()
	c.History = make([]HistoryEntry, 0, t.hist.n)
	t.hist.each(func(_ uint32, e *entryView) {
		c.History = append(c.History, t.historyEntry(e))
	})
	return c
}

// historyEntry returns the history entry that a log entry stands for.
func (t *task) historyEntry(e *entryView) HistoryEntry {
	h := HistoryEntry{EventID: string(e.id), EventType: e.et, Timestamp: e.ts,
		TimestampStr: timeStr(e.ts)}
	if e.form == formCompact {
		v := decodeCompact(e.data)
		h.Data = v.data(t.names)
	} else {
		// The data was valid JSON of an event's data when it was stored.
		_ = json.Unmarshal(e.data, &h.Data)
	}
	return h
}

// appendJSON appends the task's state without its history, as json.Marshal
// encodes the copy that [task.view] makes, with history_omitted set to omitted. It
// copies nothing out of the history on the way. The caller holds the projection's
// lock.
func (t *task) appendJSON(b []byte, omitted int) []byte {
	b = append(b, `{"task_id":`...)
	b = appendString(b, t.id)
	b = appendKey(b, "name")
	b = appendString(b, t.name)
	b = appendKey(b, "type")
	b = appendString(b, t.tt)
	b = appendKey(b, "status")
	b = appendString(b, t.status)
	var first, start, end compactView
	if t.firstSub != noRef {
		first = t.fieldsAt(t.firstSub)
	}
	latest := t.latest()
	if latest.started != noRef {
		start = t.fieldsAt(latest.started)
	}
	if latest.terminal != noRef {
		end = t.fieldsAt(latest.terminal)
	}
	if len(first.description) > 0 {
		b = appendKey(b, "description")
		b = appendString(b, first.description)
	}
	if t.parent != "" {
		b = appendKey(b, "parent_id")
		b = appendString(b, t.parent)
	}
	if len(start.params) > 0 {
		b = appendKey(b, "params")
		b = appendRaw(b, start.params)
	}
	b = append(b, `,"progress":{"step":`...)
	b = strconv.AppendInt(b, t.progress.Step, 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, t.progress.Total, 10)
	b = append(b, '}')
	if len(t.metrics) > 0 {
		b = appendKey(b, "metrics")
		b = t.appendMetrics(b)
	}
	if len(end.result) > 0 {
		b = appendKey(b, "result")
		b = appendRaw(b, end.result)
	}
	for _, f := range [...]struct {
		key string
		v   []byte
	}{{"error", end.errText}, {"stack", end.stack}, {"host", start.host}} {
		if len(f.v) > 0 {
			b = appendKey(b, f.key)
			b = appendString(b, f.v)
		}
	}
	if start.pid != 0 {
		b = appendKey(b, "pid")
		b = strconv.AppendInt(b, start.pid, 10)
	}
	started, finished, duration := t.run()
	b = appendTime(b, "created_at", "created_at_str", t.created)
	b = appendTime(b, "started_at", "started_at_str", started)
	b = appendTime(b, "finished_at", "finished_at_str", finished)
	if duration != 0 {
		b = appendKey(b, "duration")
		b = appendFloat(b, duration)
	}
	b = appendTime(b, "last_seen_at", "last_seen_at_str", t.lastSeen)
	b = append(b, `,"event_count":`...)
	b = strconv.AppendInt(b, int64(t.hist.n), 10)
	if t.updated != 0 {
		b = appendTime(b, "updated_at", "updated_at_str", t.updated)
	} else {
		b = append(b, `,"updated_at":0,"updated_at_str":""`...)
	}
	if len(t.attempts) > 0 {
		first := t.firstShownAttempt()
		b = append(b, `,"attempts":[`...)
		for i := first; i < len(t.attempts); i++ {
			if i > first {
				b = append(b, ',')
			}
			var msg []byte
			at := t.attemptOf(i, t.attempts[i], &msg)
			b = at.appendJSON(b, msg)
		}
		b = append(b, ']')
		if first > 0 {
			b = append(b, `,"attempts_omitted":`...)
			b = strconv.AppendInt(b, int64(first), 10)
		}
	}
	if omitted != 0 {
		b = append(b, `,"history_omitted":`...)
		b = strconv.AppendInt(b, int64(omitted), 10)
	}
	return append(b, '}')
}

// appendMetrics appends the latest value of each metric as events.Metrics encodes
// its map: sorted by name, with NaN and the infinities as strings.
func (t *task) appendMetrics(b []byte) []byte {
	b = append(b, '{')
	for i := range t.metrics {
		m := &t.metrics[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, m.name)
		b = append(b, ':')
		b = appendMetric(b, m.v)
	}
	return append(b, '}')
}

// snapshot is a task's state at one moment, safe to encode after the projection's
// lock is released: a copy of the task with copies of everything the fold changes in
// place, sharing the table of names, which only grows.
type snapshot struct {
	t task
}

func (t *task) snapshot() snapshot {
	c := *t
	c.metrics = slices.Clone(t.metrics)
	c.attempts = make([]*attemptState, len(t.attempts))
	states := make([]attemptState, len(t.attempts))
	for i, a := range t.attempts {
		states[i] = *a
		c.attempts[i] = &states[i]
	}
	c.names = t.names[:len(t.names):len(t.names)]
	c.hist = history{log: bytes.Clone(t.hist.log), n: t.hist.n, last: t.hist.last}
	return snapshot{t: c}
}

// marshal encodes the task with its history, leaving out its first omit progress
// entries (and saying so in history_omitted); omit < 0 leaves out the whole history.
func (s *snapshot) marshal(omit int) []byte {
	return s.t.marshal(omit)
}

// marshal is snapshot.marshal on the task itself, for a caller that holds the
// projection's lock.
func (t *task) marshal(omit int) []byte {
	size := 1500
	if omit >= 0 {
		size += 4 * len(t.hist.log)
	}
	return t.appendState(make([]byte, 0, size), omit)
}

// appendState appends what marshal returns.
func (t *task) appendState(b []byte, omit int) []byte {
	omitted := omit
	if omit < 0 {
		omitted = int(t.hist.n)
	}
	b = t.appendJSON(b, omitted)
	if omit < 0 || t.hist.n == 0 {
		return b
	}

	// The history goes in before the closing brace.
	b = append(b[:len(b)-1], `,"history":[`...)
	first := true
	t.hist.each(func(_ uint32, e *entryView) {
		if omit > 0 && e.et == events.TaskProgress {
			omit--
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendEntryJSON(b, e, t.names)
	})
	return append(b, "]}"...)
}

// progressCount returns the number of progress entries.
func (s *snapshot) progressCount() int {
	n := 0
	s.t.hist.each(func(_ uint32, e *entryView) {
		if e.et == events.TaskProgress {
			n++
		}
	})
	return n
}

// appendEntryJSON appends the entry as a history entry's JSON. Ids and event types
// are validated tokens of letters, digits, '_' and '-', which need no escaping;
// appendString checks all the same.
func appendEntryJSON(b []byte, e *entryView, names []string) []byte {
	b = append(b, `{"event_id":`...)
	b = appendString(b, e.id)
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.et)
	b = append(b, `,"timestamp":`...)
	b = appendShortest(b, e.ts)
	b = append(b, `,"timestamp_str":"`...)
	b = appendTimeStr(b, e.ts)
	b = append(b, `","data":`...)
	if e.form == formCompact {
		v := decodeCompact(e.data)
		b = v.render(b, names)
	} else {
		b = append(b, e.data...)
	}
	return append(b, '}')
}
