package workload

import (
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

func TestTaskIsValidAndComplete(t *testing.T) {
	g := NewGenerator(40)
	for i := range 40 {
		evs := g.Task(i)
		if len(evs) != EventsPerTask {
			t.Fatalf("task %d: got %d events, want %d", i, len(evs), EventsPerTask)
		}
		for _, e := range evs {
			b, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := events.Decode(b); err != nil {
				t.Fatalf("task %d, %s: %v", i, e.EventType, err)
			}
		}
		want := events.TaskCompleted
		if i%10 == 9 {
			want = events.TaskFailed
		}
		if end := evs[len(evs)-1].EventType; end != want {
			t.Errorf("task %d: got %s, want %s", i, end, want)
		}
	}
}

func TestProgressSize(t *testing.T) {
	n, err := ProgressSize()
	if err != nil {
		t.Fatal(err)
	}
	if n < 250 || n > 600 {
		t.Errorf("got %d bytes, want the size of a typical progress event", n)
	}
}
