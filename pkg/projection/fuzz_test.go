package projection

import (
	"fmt"
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

// fuzzEvents turns bytes into a sequence of events over a few tasks and attempts,
// with repeats: each 4 bytes choose a type, a task, an attempt, a time and whether
// to repeat an earlier event.
func fuzzEvents(data []byte) []events.Event {
	types := append([]events.Type(nil), events.Types...)
	var out []events.Event
	for i := 0; i+4 <= len(data); i += 4 {
		b := data[i : i+4]
		if b[3]&0x80 != 0 && len(out) > 0 {
			out = append(out, out[int(b[3]&0x7f)%len(out)])
			continue
		}
		et := types[int(b[0])%len(types)]
		task := fmt.Sprintf("t%d", b[1]%3)
		d := events.Data{Attempt: fmt.Sprintf("a%d", b[1]/3%2)}
		switch et {
		case events.TaskProgress:
			step := int64(b[2])
			d.Step, d.Metrics = &step, events.Metrics{"loss": float64(b[3])}
		case events.TaskLost:
			d.LastSeen = 1_700_000_000 + float64(b[3]&0x3f)
		case events.TaskFailed:
			d.Error = "e"
		}
		e := events.New(et, task, events.TypeTask, "n", d)
		e.EventID = fmt.Sprintf("e%d", i)
		e.Timestamp = 1_700_000_000 + float64(b[2]&0x3f)
		out = append(out, e)
	}
	return out
}

func FuzzFold(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 1, 0, 2, 0, 2, 0, 3, 0, 3, 0, 4, 0})
	f.Add([]byte{3, 1, 9, 0, 2, 1, 5, 0, 6, 1, 20, 63, 2, 1, 30, 0, 1, 1, 1, 0x81})
	f.Add([]byte{1, 4, 1, 0, 4, 4, 50, 0, 1, 1, 60, 0, 5, 1, 70, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		evs := fuzzEvents(data)
		forward := New(nil)
		for i := range evs {
			forward.Apply(uint64(i+1), &evs[i])
		}
		backward := New(nil)
		for i := len(evs) - 1; i >= 0; i-- {
			backward.Apply(uint64(i+1), &evs[i])
		}
		assertSameTasks(t, forward, backward)

		// Applying everything again changes nothing.
		before := dump(forward)
		for i := range evs {
			forward.Apply(uint64(len(evs)+i+1), &evs[i])
		}
		if after := dump(forward); after != before {
			t.Fatalf("a second pass changed the state:\n%s\n%s", before, after)
		}

		// A task whose latest attempt has ended shows that end, whatever came after.
		for id, task := range forward.tasks {
			latest := task.latest()
			if latest.terminal != noRef && !task.status.Finished() {
				t.Fatalf("task %s: attempt ended with %s but status is %s", id,
					task.hist.at(latest.terminal).et, task.status)
			}
		}
	})
}

func dump(p *Projection) string {
	var out []byte
	for _, t := range p.order {
		s := t.snapshot()
		b := s.marshal(0)
		out = append(out, b...)
	}
	return string(out)
}
