package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// system is a collector and, when started, a dashboard, as real processes.
type system struct {
	t         *testing.T
	dataDir   string
	spoolDir  string
	colHTTP   string // the collector's health and metrics listener
	natsAddr  string
	httpAddr  string
	collector *proc
	dashboard *proc
}

func newSystem(t *testing.T) *system {
	return &system{
		t:        t,
		dataDir:  filepath.Join(t.TempDir(), "data"),
		spoolDir: filepath.Join(t.TempDir(), "spool"),
		colHTTP:  freeAddr(t),
		natsAddr: freeAddr(t),
		httpAddr: freeAddr(t),
	}
}

func (s *system) natsURL() string { return "nats://" + s.natsAddr }

func (s *system) jobEnv() []string {
	return []string{"MINIRAY_NATS_URL=" + s.natsURL(), "MINIRAY_SPOOL_DIR=" + s.spoolDir}
}

func (s *system) startCollector() {
	s.t.Helper()
	s.startCollectorWith()
}

func (s *system) startDashboard() {
	s.t.Helper()
	s.dashboard = start(s.t, "dashboard", nil, "--nats-url", s.natsURL(), "--http", s.httpAddr,
		"--flush-interval", "50ms")
	eventually(s.t, "dashboard ready", 30*time.Second, func() error {
		code, err := getJSON(context.Background(), s.url("/readyz"), nil)
		if err == nil && code != 200 {
			err = fmt.Errorf("readyz: %d", code)
		}
		return err
	})
}

func (s *system) url(path string) string { return "http://" + s.httpAddr + path }

func (s *system) train(name string, epochs int) {
	s.t.Helper()
	run(s.t, "train", s.jobEnv(), "--name", name, "--epochs", fmt.Sprint(epochs))
}

func (s *system) tasks() projection.Page {
	s.t.Helper()
	var page projection.Page
	code, err := getJSON(context.Background(), s.url("/api/tasks?limit=1000"), &page)
	if err != nil || code != 200 {
		s.t.Fatalf("list tasks: %d %v", code, err)
	}
	return page
}

func (s *system) task(id string) projection.Task {
	s.t.Helper()
	var task projection.Task
	code, err := getJSON(context.Background(), s.url("/api/tasks/"+id), &task)
	if err != nil || code != 200 {
		s.t.Fatalf("get task %s: %d %v", id, code, err)
	}
	return task
}

func (s *system) stats() map[string]any {
	s.t.Helper()
	var st map[string]any
	if code, err := getJSON(context.Background(), s.url("/api/stats"), &st); err != nil || code != 200 {
		s.t.Fatalf("stats: %d %v", code, err)
	}
	// What a replay must reproduce exactly: everything but the replay's own position.
	delete(st, "replay")
	return st
}

// checkJobs checks that the dashboard shows exactly the named training jobs, each
// once, completed, with its complete history: submitted, started, one progress event
// per epoch, completed.
func (s *system) checkJobs(epochs int, names ...string) {
	s.t.Helper()
	page := s.tasks()
	if page.Total != len(names) || len(page.Tasks) != len(names) {
		s.t.Fatalf("got %d tasks (total %d), want %d", len(page.Tasks), page.Total, len(names))
	}
	byName := map[string]projection.Task{}
	for _, task := range page.Tasks {
		if _, dup := byName[task.Name]; dup {
			s.t.Fatalf("task %q listed twice", task.Name)
		}
		byName[task.Name] = task
	}
	for _, name := range names {
		sum, ok := byName[name]
		if !ok {
			s.t.Fatalf("task %q missing; have %v", name, byName)
		}
		task := s.task(sum.TaskID)
		if task.Status != projection.Completed || task.Type != events.TypeTraining {
			s.t.Fatalf("task %q: got %s %s, want a COMPLETED training task", name, task.Status, task.Type)
		}
		if task.EventCount != epochs+3 || len(task.History) != epochs+3 {
			s.t.Fatalf("task %q: got %d events (%d in history), want %d", name, task.EventCount,
				len(task.History), epochs+3)
		}
		seen := map[string]bool{}
		for _, h := range task.History {
			if seen[h.EventID] {
				s.t.Fatalf("task %q: event %s twice in history", name, h.EventID)
			}
			seen[h.EventID] = true
		}
		first, last := task.History[0].EventType, task.History[len(task.History)-1].EventType
		if first != events.TaskSubmitted || last != events.TaskCompleted {
			s.t.Fatalf("task %q: history from %s to %s", name, first, last)
		}
		if task.Progress.Step != int64(epochs) || task.Progress.Total != int64(epochs) ||
			task.Metrics["loss"] <= 0 || len(task.Result) == 0 {
			s.t.Fatalf("task %q: progress %+v metrics %v result %s", name, task.Progress,
				task.Metrics, task.Result)
		}
	}
}

// TestDashboardShowsCompleteHistoryWheneverItStarts is miniray's reason to exist: a
// dashboard that starts after, between or during jobs, or restarts, shows every job
// with its complete history, exactly once.
func TestDashboardShowsCompleteHistoryWheneverItStarts(t *testing.T) {
	const epochs = 30
	s := newSystem(t)
	s.startCollector()

	// A job runs before any dashboard exists.
	s.train("job-one", epochs)
	s.startDashboard()
	s.checkJobs(epochs, "job-one")

	// A job runs while the dashboard is up and appears without a restart.
	s.train("job-two", epochs)
	eventually(t, "job-two live", 20*time.Second, func() error {
		if n := s.tasks().Total; n != 2 {
			return fmt.Errorf("%d tasks", n)
		}
		return nil
	})
	s.checkJobs(epochs, "job-one", "job-two")

	// The dashboard dies hard; a job runs meanwhile; a new dashboard shows all three.
	s.dashboard.kill()
	s.train("job-three", epochs)
	s.startDashboard()
	s.checkJobs(epochs, "job-one", "job-two", "job-three")
	before := s.stats()
	if before["total"] != 3.0 || before["events_applied"] != float64(3*(epochs+3)) {
		t.Fatalf("stats: got %v", before)
	}

	// The collector restarts on the same data: the running dashboard reconnects, and
	// a dashboard started afterwards replays the same history.
	s.collector.stop(t)
	s.startCollector()
	s.checkJobs(epochs, "job-one", "job-two", "job-three")
	s.dashboard.stop(t)
	s.startDashboard()
	s.checkJobs(epochs, "job-one", "job-two", "job-three")
	if after := s.stats(); !reflect.DeepEqual(before, after) {
		t.Fatalf("stats changed across restarts:\nbefore %v\nafter  %v", before, after)
	}

	// The bucket holds each task's state, as `nats kv get` would show it.
	s.checkBucket(s.tasks())
}

func (s *system) checkBucket(page projection.Page) {
	s.t.Helper()
	nc, err := nats.Connect(s.natsURL())
	if err != nil {
		s.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), events.BucketName)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, want := range page.Tasks {
		eventually(s.t, "task "+want.TaskID+" in the bucket", 10*time.Second, func() error {
			e, err := kv.Get(context.Background(), want.TaskID)
			if err != nil {
				return err
			}
			var got projection.Task
			if err := json.Unmarshal(e.Value(), &got); err != nil {
				return err
			}
			if got.Status != want.Status || got.EventCount != want.EventCount {
				return fmt.Errorf("got %s with %d events, want %s with %d", got.Status,
					got.EventCount, want.Status, want.EventCount)
			}
			return nil
		})
	}
}
