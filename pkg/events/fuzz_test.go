package events_test

import (
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

func FuzzDecode(f *testing.F) {
	good := events.New(events.TaskProgress, "t1", events.TypeTraining, "n", events.Data{})
	b, _ := good.Encode()
	f.Add(b)
	f.Add([]byte(`{"event_id":"e","task_id":"t","task_type":"task","name":"","event_type":` +
		`"task_started","timestamp":1,"data":{"metrics":{"m":"NaN","k":"-Inf"},"step":3}}`))
	f.Add([]byte(`{"data":{"metrics":{"a":1e400}}}`))
	f.Add([]byte("\x00\xff"))
	f.Add([]byte(`[]`))

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := events.Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes is valid, and survives a round trip unchanged.
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		b, err := e.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := events.Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", b, err)
		}
		eb, _ := stripNaN(e).Encode()
		ab, _ := stripNaN(again).Encode()
		if string(eb) != string(ab) {
			t.Fatalf("round trip changed the event:\n%s\n%s", eb, ab)
		}
		if raw, err := e.DataJSON(); err != nil || (len(raw) > 0 && raw[0] != '{') {
			t.Fatalf("data JSON %q: %v", raw, err)
		}
		events.Bound(&e)
	})
}

// stripNaN drops NaN metrics, which never compare equal to themselves.
func stripNaN(e events.Event) *events.Event {
	if e.Data.Metrics == nil {
		return &e
	}
	m := events.Metrics{}
	for k, v := range e.Data.Metrics {
		if v == v {
			m[k] = v
		}
	}
	e.Data.Metrics = m
	return &e
}
