package projection_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

func publishTask(t *testing.T, s *natstest.Server, id string, steps int) {
	t.Helper()
	ctx := t.Context()
	pub := func(et events.Type, d events.Data) {
		e := events.New(et, id, events.TypeTraining, "job "+id, d)
		if _, err := events.Publish(ctx, s.JS, e); err != nil {
			t.Fatal(err)
		}
	}
	pub(events.TaskSubmitted, events.Data{})
	pub(events.TaskStarted, events.Data{})
	for i := 1; i <= steps; i++ {
		step := int64(i)
		pub(events.TaskProgress, events.Data{Step: &step, Metrics: events.Metrics{"loss": 1}})
	}
	pub(events.TaskCompleted, events.Data{Result: json.RawMessage(`42`)})
}

func startReplay(t *testing.T, s *natstest.Server) (*projection.Projection, *projection.Replayer) {
	t.Helper()
	return replayWith(t, s.JS, slog.New(slog.NewTextHandler(t.Output(), nil)))
}

// replayWith replays the stream of js into a new projection that logs to log, and
// waits until it has caught up.
func replayWith(t *testing.T, js jetstream.JetStream,
	log *slog.Logger) (*projection.Projection, *projection.Replayer) {
	t.Helper()
	p := projection.New(log)
	r := projection.NewReplayer(js, p, nil)
	r.FlushInterval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replay: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	if err := r.WaitReady(wctx); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	return p, r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReplayFromStartThenLive(t *testing.T) {
	s := natstest.Start(t)
	publishTask(t, s, "a", 5)
	publishTask(t, s, "b", 3)
	if err := s.NC.Publish("miniray.tasks.junk", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	s.NC.Flush()

	p, r := startReplay(t, s)
	if p.LastSeq() < r.Target() {
		t.Fatalf("ready at seq %d before target %d", p.LastSeq(), r.Target())
	}
	a, ok := p.Get("a")
	if !ok || a.Status != projection.Completed || a.EventCount != 8 {
		t.Fatalf("task a: got %+v", a)
	}
	if st := p.Stats(); st.EventsSkipped != 1 || st.Total != 2 {
		t.Fatalf("stats: got %+v", st)
	}

	publishTask(t, s, "c", 1)
	waitFor(t, "live task c", func() bool {
		c, ok := p.Get("c")
		return ok && c.Status == projection.Completed
	})

	kv, err := s.JS.KeyValue(t.Context(), events.BucketName)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "task c in the bucket", func() bool {
		e, err := kv.Get(t.Context(), "c")
		if err != nil {
			return false
		}
		var got projection.Task
		return json.Unmarshal(e.Value(), &got) == nil && got.Status == projection.Completed &&
			got.EventCount == 4 && len(got.History) == 4
	})
}

func TestReplayAgainGivesSameState(t *testing.T) {
	s := natstest.Start(t)
	for _, id := range []string{"x", "y", "z"} {
		publishTask(t, s, id, 20)
	}
	first, _ := startReplay(t, s)
	second, _ := startReplay(t, s)
	for _, id := range []string{"x", "y", "z"} {
		a, _ := first.Get(id)
		b, _ := second.Get(id)
		ab, _ := json.Marshal(a)
		bb, _ := json.Marshal(b)
		if string(ab) != string(bb) {
			t.Fatalf("task %s differs between replays:\n%s\n%s", id, ab, bb)
		}
	}
}

func TestEmptyStreamIsReady(t *testing.T) {
	s := natstest.Start(t)
	_, r := startReplay(t, s)
	if !r.Ready() || r.Target() != 0 {
		t.Fatalf("got ready=%v target=%d", r.Ready(), r.Target())
	}
}

func TestLargeTaskFitsBucket(t *testing.T) {
	s := natstest.Start(t)
	publishTask(t, s, "big", 6000)
	p, r := startReplay(t, s)
	got, _ := p.Get("big")
	if len(got.History) != 6003 {
		t.Fatalf("in memory: got %d entries, want 6003", len(got.History))
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	kv, _ := s.JS.KeyValue(t.Context(), events.BucketName)
	waitFor(t, "big in the bucket", func() bool {
		e, err := kv.Get(t.Context(), "big")
		if err != nil {
			return false
		}
		var stored projection.Task
		if err := json.Unmarshal(e.Value(), &stored); err != nil {
			t.Fatal(err)
		}
		return stored.EventCount == 6003 && stored.HistoryOmitted > 0 &&
			len(stored.History)+stored.HistoryOmitted == 6003
	})
}
