package tracking_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
	"github.com/miniray/miniray/pkg/tracking"
)

// setup returns a client on a real embedded server and a function that replays the
// stream into a fresh projection.
func setup(t *testing.T) (*tracking.Client, func() *projection.Projection) {
	t.Helper()
	s := natstest.Start(t)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := tracking.NewClient(s.NC, tracking.WithLogger(logger),
		tracking.WithSpoolDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })

	replay := func() *projection.Projection {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := c.Flush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		p := projection.New(logger)
		r := projection.NewReplayer(s.JS, p, nil)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		if err := r.WaitReady(ctx); err != nil {
			t.Fatalf("replay: %v", err)
		}
		stop()
		<-done
		return p
	}
	return c, replay
}

type params struct {
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
}

func trainModel(ctx context.Context, epochs int) (map[string]float64, error) {
	task := tracking.FromContext(ctx)
	for i := 1; i <= epochs; i++ {
		task.Progress(i, epochs, map[string]float64{"loss": 1 / float64(i)})
	}
	return map[string]float64{"accuracy": 0.95}, nil
}

func TestTrainingCompletes(t *testing.T) {
	c, replay := setup(t)
	var id string
	train := tracking.Training(func(ctx context.Context, n int) (map[string]float64, error) {
		id = tracking.FromContext(ctx).ID()
		return trainModel(ctx, n)
	}, tracking.WithClient(c), tracking.WithDescription("iris"),
		tracking.WithParams(params{Epochs: 5, LR: 0.1}))

	out, err := train(t.Context(), 5)
	if err != nil || out["accuracy"] != 0.95 {
		t.Fatalf("job result: got %v %v", out, err)
	}
	if !strings.HasPrefix(id, "training_") {
		t.Fatalf("task id: got %q", id)
	}
	task, ok := replay().Get(id)
	if !ok {
		t.Fatal("task not in projection")
	}
	if task.Status != projection.Completed || task.EventCount != 8 ||
		task.Progress != (projection.Progress{Step: 5, Total: 5}) {
		t.Fatalf("task: got %+v", task)
	}
	if task.Name != "TestTrainingCompletes.func1" || task.Description != "iris" ||
		string(task.Params) != `{"epochs":5,"lr":0.1}` || string(task.Result) != `{"accuracy":0.95}` {
		t.Fatalf("fields: name %q desc %q params %s result %s", task.Name, task.Description,
			task.Params, task.Result)
	}
	if task.Host == "" || task.PID == 0 {
		t.Fatalf("host and pid missing: %+v", task)
	}
	wantOrder := []events.Type{events.TaskSubmitted, events.TaskStarted, events.TaskProgress}
	for i, et := range wantOrder {
		if task.History[i].EventType != et {
			t.Fatalf("history[%d]: got %s, want %s", i, task.History[i].EventType, et)
		}
	}
}

func TestErrorEndsFailed(t *testing.T) {
	c, replay := setup(t)
	boom := errors.New("data set has 3 columns, want 5")
	job := tracking.Inference(func(ctx context.Context, _ string) (int, error) {
		return 0, boom
	}, tracking.WithClient(c), tracking.WithName("infer"), tracking.WithTaskID("infer-1"))
	if _, err := job(t.Context(), "x"); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the job's own error", err)
	}
	task, _ := replay().Get("infer-1")
	if task.Status != projection.Failed || task.Error != boom.Error() || task.Type != "inference" {
		t.Fatalf("task: got %s %q %s", task.Status, task.Error, task.Type)
	}
}

func TestPanicEndsFailedAndPanicsOn(t *testing.T) {
	c, replay := setup(t)
	job := tracking.Func(func(ctx context.Context, xs []int) (int, error) {
		return xs[3], nil
	}, tracking.WithClient(c), tracking.WithTaskID("panicky"))

	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic did not go on")
			}
		}()
		job(t.Context(), []int{1})
	}()
	task, _ := replay().Get("panicky")
	if task.Status != projection.Failed || !strings.Contains(task.Error, "index out of range") ||
		!strings.Contains(task.Stack, "goroutine") {
		t.Fatalf("task: got %s %q stack %d bytes", task.Status, task.Error, len(task.Stack))
	}
}

func TestCancelledContextEndsCancelled(t *testing.T) {
	c, replay := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	job := tracking.Training(func(ctx context.Context, _ int) (int, error) {
		cancel()
		<-ctx.Done()
		return 0, ctx.Err()
	}, tracking.WithClient(c), tracking.WithTaskID("stopped"))
	if _, err := job(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if task, _ := replay().Get("stopped"); task.Status != projection.Cancelled {
		t.Fatalf("got %s, want CANCELLED", task.Status)
	}
}

func TestTrialsAreChildren(t *testing.T) {
	c, replay := setup(t)
	trial := tracking.Training(trainModel, tracking.WithClient(c))
	var parent string
	tune := tracking.Tuning(func(ctx context.Context, grid []int) (int, error) {
		parent = tracking.FromContext(ctx).ID()
		for _, n := range grid {
			if _, err := trial(ctx, n); err != nil {
				return 0, err
			}
		}
		return len(grid), nil
	}, tracking.WithClient(c))
	if _, err := tune(t.Context(), []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	p := replay()
	page, err := p.List(projection.Query{ParentID: parent})
	if err != nil || page.Total != 3 {
		t.Fatalf("children of %s: got %d %v, want 3", parent, page.Total, err)
	}
	if tt, _ := p.Get(parent); tt.Type != events.TypeTuning || tt.Status != projection.Completed {
		t.Fatalf("tuning task: got %+v", tt)
	}
}

func TestInvalidTaskIDRefused(t *testing.T) {
	c, _ := setup(t)
	ran := false
	job := tracking.Training(func(ctx context.Context, _ int) (int, error) {
		ran = true
		return 0, nil
	}, tracking.WithClient(c), tracking.WithTaskID("my.task"))
	_, err := job(t.Context(), 1)
	if !errors.Is(err, tracking.ErrInvalidTaskID) || ran {
		t.Fatalf("got %v (ran %v), want ErrInvalidTaskID without running", err, ran)
	}
}

func TestJobWithoutNATSIsSpooledAndSentLater(t *testing.T) {
	spool := t.TempDir()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := tracking.Connect("nats://127.0.0.1:1", tracking.WithLogger(logger),
		tracking.WithSpoolDir(spool))
	if err != nil {
		t.Fatal(err)
	}
	job := tracking.Training(trainModel, tracking.WithClient(c), tracking.WithTaskID("offline"))
	out, err := job(t.Context(), 1000)
	if err != nil || out["accuracy"] != 0.95 {
		t.Fatalf("job: got %v %v", out, err)
	}

	// Close does not wait for a server that is not there: the events are on disk.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("close waited %s with nats down", d)
	}
	if c.Spooled() != 1003 || c.Dropped() != 0 {
		t.Fatalf("spooled %d dropped %d, want 1003 and 0", c.Spooled(), c.Dropped())
	}

	// A server appears; whoever drains the spool (the collector, the next job) sends
	// the whole history, once.
	s := natstest.Start(t)
	for range 2 {
		if _, err := tracking.DrainSpool(ctx, s.JS, spool, logger); err != nil {
			t.Fatal(err)
		}
	}
	p := projection.New(logger)
	for _, e := range s.Events(t) {
		p.Apply(0, &e)
	}
	task, ok := p.Get("offline")
	if !ok || task.Status != projection.Completed || task.EventCount != 1003 {
		t.Fatalf("got %+v", task)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("spool files left after sending: %v", left)
	}
}
