package tracking

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/miniray/miniray/pkg/events"
)

// record is one event as it waits in the queue and flies to the stream: its JSON,
// encoded once when it was reported, with what the message needs beside it. The
// spiller writes the JSON to the spool as it is and the sender publishes it as it
// is, so that no stage encodes the event again.
type record struct {
	subject string
	id      string // the event id, sent as Nats-Msg-Id
	data    []byte
	// progress marks an event that a full queue may drop when there is no spool;
	// lifecycle events and heartbeats are never dropped.
	progress bool
}

// encodeEvent returns the record of an event built by [events.New]. An event whose
// data does not encode (a value that JSON cannot hold, which the wrappers do not
// produce) is sent with its data replaced by a note, rather than not at all: the
// lifecycle of the task stays whole. The error is that of the data.
func encodeEvent(e *events.Event) (record, error) {
	b, err := e.Encode()
	if err != nil {
		e.Data = events.Data{
			Attempt: e.Data.Attempt,
			Reason:  events.Truncate("event data not recorded: "+err.Error(), events.MaxTextLen),
		}
		var err2 error
		if b, err2 = e.Encode(); err2 != nil {
			return record{}, err2 // ids, types and text only: it does not happen
		}
	}
	r := record{subject: e.Subject(), id: e.EventID, data: b,
		progress: e.EventType == events.TaskProgress}
	return r, err
}

// progressEncoder writes the JSON of one task's progress events without reflection,
// byte for byte as [events.Event.Encode] writes them, which the tests check: a
// progress report is what a job sends thousands of times a second, and encoding/json
// took a third of the sender's time. What does not change from one report to the
// next is encoded once, when the task starts.
type progressEncoder struct {
	subject string
	// head is everything between the event id and the timestamp:
	// `","task_id":...,"event_type":"task_progress","timestamp":`.
	head []byte
	// attempt is `,"data":{"attempt":"..."`, the start of the data.
	attempt []byte
	// size is a guess at an event's length, so that most need one allocation.
	size int
	// second is the timestamp string of the last event to the second, which
	// the next ones mostly share: formatting a time is a tenth of the encoding.
	second atomic.Pointer[formattedSecond]
}

// formattedSecond is the start of timestamp_str for the second unix:
// "2006-01-02T15:04:05".
type formattedSecond struct {
	unix int64
	text []byte
}

func newProgressEncoder(taskID string, tt events.TaskType, name, attempt string) *progressEncoder {
	// The name as events.Bound leaves it.
	name = events.Truncate(name, events.MaxTextLen)
	var head []byte
	head = append(head, `","task_id":`...)
	head = appendJSONString(head, taskID)
	head = append(head, `,"task_type":`...)
	head = appendJSONString(head, string(tt))
	head = append(head, `,"name":`...)
	head = appendJSONString(head, name)
	head = append(head, `,"event_type":"`+string(events.TaskProgress)+`","timestamp":`...)
	att := append([]byte(`,"data":{"attempt":`), appendJSONString(nil, attempt)...)
	return &progressEncoder{
		subject: events.Subject(tt, taskID, events.TaskProgress),
		head:    head,
		attempt: att,
		size:    len(head) + len(att) + 160,
	}
}

// encode returns the record of a progress event with a fresh id, stamped now. It
// reads metrics and keeps nothing of them, so the caller may change its map as soon
// as it returns.
func (p *progressEncoder) encode(now time.Time, step, total int,
	metrics map[string]float64) record {
	id := events.NewEventID()
	size := p.size + 24*len(metrics)
	b := make([]byte, 0, size)
	b = append(b, `{"event_id":"`...)
	b = append(b, id...) // an id is letters and digits only: nothing to escape
	b = append(b, p.head...)
	b = appendJSONFloat(b, events.UnixSeconds(now))
	b = append(b, `,"timestamp_str":"`...)
	b = p.appendTime(b, now)
	b = append(b, '"')
	b = append(b, p.attempt...)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, int64(step), 10)
	if total > 0 {
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, int64(total), 10)
	}
	if len(metrics) > 0 {
		b = append(b, `,"metrics":`...)
		b = appendMetrics(b, metrics)
	}
	b = append(b, "}}"...)
	return record{subject: p.subject, id: id, data: b, progress: true}
}

// appendTime writes now as [events.FormatTime] does.
func (p *progressEncoder) appendTime(b []byte, now time.Time) []byte {
	now = now.UTC()
	sec := p.second.Load()
	if sec == nil || sec.unix != now.Unix() {
		text := now.AppendFormat(nil, "2006-01-02T15:04:05")
		sec = &formattedSecond{unix: now.Unix(), text: text}
		p.second.Store(sec) // Progress may be called by several goroutines
	}
	b = append(b, sec.text...)
	micro := now.Nanosecond() / 1000
	b = append(b, '.')
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+micro/div%10))
	}
	return append(b, 'Z')
}

// metricName is a metric's name as it is sent, cut as [events.Bound] cuts it, and
// its key in the job's map.
type metricName struct{ name, key string }

// appendMetrics writes metrics as [events.Metrics] encodes them after [events.Bound]:
// names over [events.MaxLabelLen] cut, in order, values that JSON cannot hold as
// strings. Past [events.MaxMetrics] names, the last ones in that order are left out.
func appendMetrics(b []byte, metrics map[string]float64) []byte {
	var small [8]metricName
	names := small[:0]
	for k := range metrics {
		names = append(names, metricName{events.TruncateLabel(k), k})
	}
	slices.SortFunc(names, func(a, b metricName) int { return strings.Compare(a.name, b.name) })
	names = names[:min(len(names), events.MaxMetrics)]
	b = append(b, '{')
	for i, m := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, m.name)
		b = append(b, ':')
		switch v := metrics[m.key]; {
		case math.IsNaN(v):
			b = append(b, `"NaN"`...)
		case math.IsInf(v, 1):
			b = append(b, `"+Inf"`...)
		case math.IsInf(v, -1):
			b = append(b, `"-Inf"`...)
		default:
			b = appendJSONFloat(b, v)
		}
	}
	return append(b, '}')
}

// appendJSONFloat writes a finite float as encoding/json does: the shortest decimal
// that reads back the same, in exponent form only below 1e-6 and from 1e21 on, with
// an exponent of at least one digit and no padding.
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs == 0 || abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// strconv pads a negative exponent to two digits: e-07 becomes e-7.
	if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// appendJSONString writes s as a JSON string with the escapes encoding/json uses
// by default: quotes, backslashes and control characters, '<', '>' and '&' (for
// pages that embed the JSON), U+2028 and U+2029, and U+FFFD for each byte that is
// not UTF-8. The encoding must be the same as encoding/json's, byte for byte: the
// same event spooled by this encoder and another is the same message.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// recordHead is what the sender needs of a spooled event to publish it: its id and
// its subject.
type recordHead struct {
	EventID   string          `json:"event_id"`
	TaskID    string          `json:"task_id"`
	TaskType  events.TaskType `json:"task_type"`
	EventType events.Type     `json:"event_type"`
}

// parseHead reads the id, task and types of a spooled event. Events that this
// package encoded start with those fields in a known order, and are read without
// encoding/json, which would go through the whole event; anything else, such as the
// records of other clients, is decoded. The strings of last, the head of the record
// before, are shared where they are the same, as they mostly are.
func parseHead(body []byte, last recordHead) (recordHead, error) {
	if h, ok := scanHead(body, last); ok {
		return h, nil
	}
	var h recordHead
	err := json.Unmarshal(body, &h)
	return h, err
}

// scanHead reads the head of an event as encoding/json writes it:
// {"event_id":"…","task_id":"…","task_type":"…","name":"…","event_type":"…",
// with ids and types that need no escapes. It reports false for anything else.
func scanHead(b []byte, last recordHead) (recordHead, bool) {
	id, rest, ok := scanField(b, `{"event_id":"`)
	if !ok {
		return recordHead{}, false
	}
	var tid, tt, et []byte
	if tid, rest, ok = scanField(rest, `,"task_id":"`); !ok {
		return recordHead{}, false
	}
	if tt, rest, ok = scanField(rest, `,"task_type":"`); !ok {
		return recordHead{}, false
	}
	if rest, ok = skipString(rest, `,"name":"`); !ok {
		return recordHead{}, false
	}
	if et, _, ok = scanField(rest, `,"event_type":"`); !ok {
		return recordHead{}, false
	}
	return recordHead{
		EventID:   string(id),
		TaskID:    shared(tid, last.TaskID),
		TaskType:  events.TaskType(shared(tt, string(last.TaskType))),
		EventType: events.Type(shared(et, string(last.EventType))),
	}, true
}

// shared returns s when b holds the same bytes, else a copy of b.
func shared(b []byte, s string) string {
	if string(b) == s {
		return s
	}
	return string(b)
}

// scanField reads a string value after key (which ends with its opening quote) up
// to its closing quote, refusing escapes, and returns the rest after the quote.
func scanField(b []byte, key string) ([]byte, []byte, bool) {
	if len(b) < len(key) || string(b[:len(key)]) != key {
		return nil, nil, false
	}
	b = b[len(key):]
	for i, c := range b {
		switch c {
		case '"':
			return b[:i], b[i+1:], true
		case '\\':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// skipString skips key and the string after it, escapes included.
func skipString(b []byte, key string) ([]byte, bool) {
	if len(b) < len(key) || string(b[:len(key)]) != key {
		return nil, false
	}
	b = b[len(key):]
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			return b[i+1:], true
		case '\\':
			i++
		}
	}
	return nil, false
}
