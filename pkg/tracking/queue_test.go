package tracking

import (
	"log/slog"
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

func TestFullQueueDropsOnlyProgress(t *testing.T) {
	c := &Client{
		cfg:  clientConfig{queueSize: 2},
		log:  slog.New(slog.DiscardHandler),
		wake: make(chan struct{}, 1),
	}
	for _, et := range []events.Type{events.TaskStarted, events.TaskProgress, events.TaskProgress,
		events.TaskProgress, events.TaskCompleted} {
		c.enqueue(events.New(et, "t", events.TypeTask, "n", events.Data{}))
	}
	var got []events.Type
	for _, e := range c.queue {
		got = append(got, e.EventType)
	}
	want := []events.Type{events.TaskStarted, events.TaskProgress, events.TaskCompleted}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("queue: got %v, want %v", got, want)
	}
	if c.Dropped() != 2 || c.queued.Load() != 3 {
		t.Fatalf("dropped %d queued %d, want 2 and 3", c.Dropped(), c.queued.Load())
	}
}
