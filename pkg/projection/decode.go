package projection

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/miniray/miniray/pkg/events"
)

// events.Decode, built on encoding/json, took four fifths of a replay's time: it
// checks the whole message, then the data again, then each metric, reflecting on
// every field. decodeFast reads the events that producers actually write (compact
// or spaced JSON with the known fields, strings without escapes or non-ASCII
// characters) in one pass, and refuses everything else: duplicate or unknown keys,
// nulls, escapes, numbers that do not fit their field, a message past maxFastEvent.
// The caller then uses events.Decode, which gives the same event or the error that
// says what is wrong. So the result never depends on which of the two read an
// event; the tests check it against events.Decode on generated and fuzzed input.

// maxFastEvent bounds the events decodeFast reads, far above a typical one. Either
// decoder's event goes through events.Bound after.
const maxFastEvent = 32 << 10

// maxRawDepth bounds the nesting of params and results that decodeFast reads.
const maxRawDepth = 32

// decoder holds what decodeFast reuses from one event to the next: the strings that
// repeat (task ids and attempts from one event to the next of the same task, names,
// hosts and metric names across tasks), shared instead of copied out of every
// message. It is not safe for concurrent use: a replay's reader has one, and the
// projection one for ApplyMsg.
type decoder struct {
	lastTask    string
	lastAttempt string
	shared      map[string]string
}

// decoded is one message decoded, and the memory its event's metrics and step
// numbers point into, reused from one message to the next: the event is valid
// until the next message is decoded into it.
type decoded struct {
	e       events.Event
	raw     []byte // the JSON of the data as it came; nil: e.DataJSON gives it
	kind    string // the skip kind of a message that is not an event
	err     error  // why it is not
	metrics events.Metrics
	ints    [2]int64
}

// maxShared bounds the strings a decoder shares; past it, it starts again.
const maxShared = 4096

// decode decodes one message of the stream into d.
func (dec *decoder) decode(b []byte, d *decoded) {
	d.kind, d.err, d.raw = "", nil, nil
	if len(b) > MaxEventSize {
		d.kind, d.err = SkipTooLarge, errors.New("event larger than the limit")
		return
	}
	if dec.decodeFast(b, d) {
		return
	}
	e, err := events.Decode(b)
	if err != nil {
		d.kind, d.err = SkipInvalid, err
		if errors.Is(err, events.ErrMalformed) {
			d.kind = SkipMalformed
		}
		return
	}
	d.e = e
}

// decodeFast decodes the event in b into d as events.Decode would, with the JSON of
// its data as it is in b, or reports false. It leaves TimestampStr empty, which the
// fold does not read: it writes times from the timestamp.
func (dec *decoder) decodeFast(b []byte, d *decoded) bool {
	if len(b) > maxFastEvent {
		return false
	}
	s := scanner{b: b, dec: dec, out: d}
	d.e = events.Event{}
	e := &d.e
	var seen uint8
	ok := s.object(func(key []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case "event_id":
			bit, ok = 1, s.text(&e.EventID)
		case "task_id":
			bit, ok = 2, s.last(&e.TaskID, &dec.lastTask)
		case "task_type":
			var v []byte
			v, ok = s.plain()
			e.TaskType, bit = events.TaskType(knownType(v, events.TaskTypes)), 4
		case "name":
			bit, ok = 8, s.shared(&e.Name)
		case "event_type":
			var v []byte
			v, ok = s.plain()
			e.EventType, bit = events.Type(knownType(v, events.Types)), 16
		case "timestamp":
			bit, ok = 32, s.float(&e.Timestamp)
		case "timestamp_str":
			_, ok = s.plain()
			bit = 64
		case "data":
			s.space()
			start := s.i
			bit, ok = 128, s.data(&e.Data)
			d.raw = b[start:s.i]
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	s.space()
	if !ok || s.i != len(b) || seen&128 == 0 || e.Validate() != nil {
		d.raw = nil
		return false
	}
	return true
}

// knownType returns the constant among known that v spells, or v as a new string.
func knownType[T ~string](v []byte, known []T) string {
	for _, k := range known {
		if string(k) == string(v) {
			return string(k)
		}
	}
	return string(v)
}

// scanner reads JSON from b at i. Its methods skip the space before what they read
// and report false, leaving i anywhere, when they find something else.
type scanner struct {
	b   []byte
	i   int
	dec *decoder
	out *decoded
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling member with each key to read its value.
func (s *scanner) object(member func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		key, ok := s.plain()
		if !ok || !s.eat(':') || !member(key) {
			return false
		}
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// plain reads a string without escapes, in valid UTF-8: one that encoding/json
// would read as the very same bytes.
func (s *scanner) plain() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			str := s.b[start : s.i-1]
			return str, ascii || utf8.Valid(str)
		case c < 0x20 || c == '\\':
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (s *scanner) text(v *string) bool {
	b, ok := s.plain()
	if ok {
		*v = string(b)
	}
	return ok
}

// last reads a string that is often the same as the one read last into cur.
func (s *scanner) last(v, cur *string) bool {
	b, ok := s.plain()
	if ok {
		if string(b) != *cur {
			*cur = string(b)
		}
		*v = *cur
	}
	return ok
}

// shared reads a string that many events hold, such as a name.
func (s *scanner) shared(v *string) bool {
	b, ok := s.plain()
	if ok {
		*v = s.dec.share(b)
	}
	return ok
}

// share returns b as a string, the same one as for every b alike since the table
// last started again.
func (d *decoder) share(b []byte) string {
	if str, found := d.shared[string(b)]; found {
		return str
	}
	if d.shared == nil || len(d.shared) >= maxShared {
		d.shared = make(map[string]string, 64)
	}
	str := string(b)
	d.shared[str] = str
	return str
}

// number reads a number as JSON writes it.
func (s *scanner) number() ([]byte, bool) {
	s.space()
	start := s.i
	digits := func() bool {
		n := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		return s.i > n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case !digits():
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !digits() {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) float(v *float64) bool {
	n, ok := s.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	*v = f
	return err == nil
}

func (s *scanner) integer(v *int64) bool {
	n, ok := s.number()
	if !ok {
		return false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	*v = i
	return err == nil
}

// raw reads any JSON value and returns a copy of it, as a json.RawMessage field
// gets it. Strings in it may hold escapes and any byte that JSON allows.
func (s *scanner) raw(v *[]byte) bool {
	s.space()
	start := s.i
	if !s.value(0) {
		return false
	}
	*v = append([]byte(nil), s.b[start:s.i]...)
	return true
}

func (s *scanner) value(depth int) bool {
	s.space()
	if s.i >= len(s.b) || depth > maxRawDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(func([]byte) bool { return s.value(depth + 1) })
	case c == '[':
		s.i++
		if s.eat(']') {
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			if s.eat(']') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case c == '"':
		return s.quoted()
	case c == '-' || c >= '0' && c <= '9':
		_, ok := s.number()
		return ok
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return true
		}
	}
	return false
}

// quoted reads a string with any escapes that JSON allows.
func (s *scanner) quoted() bool {
	s.i++ // the opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		}
	}
	return false
}

// data reads an event's data object into d.
func (s *scanner) data(d *events.Data) bool {
	var seen uint32
	return s.object(func(key []byte) bool {
		var bit uint32
		var ok bool
		switch string(key) {
		case "attempt":
			bit, ok = fAttempt, s.last(&d.Attempt, &s.dec.lastAttempt)
		case "description":
			bit, ok = fDescription, s.text(&d.Description)
		case "parent_id":
			bit, ok = fParentID, s.text(&d.ParentID)
		case "params":
			bit, ok = fParams, s.raw((*[]byte)(&d.Params))
		case "host":
			bit, ok = fHost, s.shared(&d.Host)
		case "pid":
			var v int64
			bit, ok = fPID, s.integer(&v)
			d.PID = int(v)
		case "step":
			d.Step = &s.out.ints[0]
			bit, ok = fStep, s.integer(d.Step)
		case "total":
			d.Total = &s.out.ints[1]
			bit, ok = fTotal, s.integer(d.Total)
		case "metrics":
			bit, ok = fMetrics, s.metrics(&d.Metrics)
		case "result":
			bit, ok = fResult, s.raw((*[]byte)(&d.Result))
		case "error":
			bit, ok = fError, s.text(&d.Error)
		case "stack":
			bit, ok = fStack, s.text(&d.Stack)
		case "reason":
			bit, ok = fReason, s.text(&d.Reason)
		case "last_seen":
			bit, ok = fLastSeen, s.float(&d.LastSeen)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// metrics reads an object of metric values that are numbers; the strings that
// stand for NaN and the infinities are left to events.Decode.
func (s *scanner) metrics(m *events.Metrics) bool {
	if s.out.metrics == nil {
		s.out.metrics = make(events.Metrics, 8)
	}
	out := s.out.metrics
	clear(out)
	ok := s.object(func(b []byte) bool {
		var v float64
		if _, dup := out[string(b)]; dup || !s.float(&v) {
			return false
		}
		out[s.dec.share(b)] = v
		return true
	})
	*m = out
	return ok
}
