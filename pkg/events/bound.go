package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Bounds on what one event may bring into the read model. A job can report anything,
// and one oversized field must not cost every dashboard its memory; the stream keeps
// the event whole.
const (
	MaxTextLen    = 64 << 10  // description, error, stack, reason
	MaxJSONLen    = 256 << 10 // params, result
	MaxMetrics    = 256       // metrics in one event
	MaxLabelLen   = 1024      // host, attempt, a metric's name: labels, not texts
	MaxClockAhead = 24 * 60 * 60.0
)

// Bound cuts the fields of e that exceed the bounds above and reports which it cut.
// A text or a label keeps its head and says how much was cut; a JSON value too large
// is replaced by a string saying so; metrics beyond the limit are dropped by name
// order.
func Bound(e *Event) []string {
	var cut []string
	d := &e.Data
	for _, f := range []struct {
		name string
		s    *string
	}{
		{"description", &d.Description}, {"error", &d.Error}, {"stack", &d.Stack},
		{"reason", &d.Reason}, {"name", &e.Name},
	} {
		if len(*f.s) > MaxTextLen {
			*f.s = Truncate(*f.s, MaxTextLen)
			cut = append(cut, f.name)
		}
	}
	for _, f := range []struct {
		name string
		raw  *json.RawMessage
	}{{"params", &d.Params}, {"result", &d.Result}} {
		if len(*f.raw) > MaxJSONLen {
			note, _ := json.Marshal(fmt.Sprintf("[%s of %d bytes not kept]", f.name, len(*f.raw)))
			*f.raw = note
			cut = append(cut, f.name)
		}
	}
	for _, f := range []struct {
		name string
		s    *string
	}{{"host", &d.Host}, {"attempt", &d.Attempt}} {
		if len(*f.s) > MaxLabelLen {
			*f.s = TruncateLabel(*f.s)
			cut = append(cut, f.name)
		}
	}
	var long []string
	for k := range d.Metrics {
		if len(k) > MaxLabelLen {
			long = append(long, k)
		}
	}
	for _, k := range long {
		v := d.Metrics[k]
		delete(d.Metrics, k)
		d.Metrics[TruncateLabel(k)] = v
	}
	if len(long) > 0 {
		cut = append(cut, "metric names")
	}
	if len(d.Metrics) > MaxMetrics {
		names := make([]string, 0, len(d.Metrics))
		for k := range d.Metrics {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names[MaxMetrics:] {
			delete(d.Metrics, k)
		}
		cut = append(cut, "metrics")
	}
	// Fields the model does not know travel in the data's JSON as it came; past the
	// bounds above, only the known fields are kept.
	if len(e.rawData) > MaxJSONLen {
		cut = append(cut, "unknown data fields")
	}
	if len(cut) > 0 {
		e.rawData = nil
	}
	return cut
}

// TruncateLabel cuts a label so that, with the note of the cut, it is at most
// MaxLabelLen bytes long: cut again, it stays the same. A label of MaxLabelLen bytes
// or fewer is returned as it is.
func TruncateLabel(s string) string {
	if len(s) <= MaxLabelLen {
		return s
	}
	return Truncate(s, MaxLabelLen-32)
}

// Truncate keeps at most n bytes of s, cut at a rune boundary, and notes the cut.
// A string of n bytes or fewer is returned as it is.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… [%d bytes cut]", len(s)-cut)
}
