package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// What the fault tests add to the harness: a collector started with extra flags, a
// dashboard handle that works for a second dashboard on its own port, and the
// checks the fault tests share.

// startCollectorWith starts the collector like startCollector, with extra flags. A
// restart must pass the same flags again.
func (s *system) startCollectorWith(extra ...string) {
	s.t.Helper()
	args := append([]string{"--data-dir", s.dataDir, "--nats-listen", s.natsAddr,
		"--spool-dir", s.spoolDir, "--http", s.colHTTP}, extra...)
	s.collector = start(s.t, "collector", nil, args...)
	eventually(s.t, "collector ready", 30*time.Second, func() error {
		nc, err := nats.Connect(s.natsURL())
		if err != nil {
			return err
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		_, err = js.KeyValue(context.Background(), events.BucketName)
		return err
	})
}

// connect returns a connection to the collector's NATS server, closed by the test's
// cleanup.
func (s *system) connect() (*nats.Conn, jetstream.JetStream) {
	s.t.Helper()
	nc, err := nats.Connect(s.natsURL(), nats.MaxReconnects(-1))
	if err != nil {
		s.t.Fatalf("connect to nats: %v", err)
	}
	s.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		s.t.Fatal(err)
	}
	return nc, js
}

// streamState returns the event stream's state as the server reports it now.
func streamState(t *testing.T, js jetstream.JetStream) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State
}

// dash is one dashboard process. The system's own dashboard is s.dash(); others run
// on their own address, so that two can be compared side by side.
type dash struct {
	t    *testing.T
	addr string
	proc *proc
}

// dash returns the system's dashboard, the one startDashboard started.
func (s *system) dash() *dash {
	return &dash{t: s.t, addr: s.httpAddr, proc: s.dashboard}
}

// launchDashboard starts a dashboard on addr, or on a fresh address when addr is
// empty, and returns without waiting for it to be ready.
func (s *system) launchDashboard(addr string) *dash {
	s.t.Helper()
	if addr == "" {
		addr = freeAddr(s.t)
	}
	p := start(s.t, "dashboard", nil, "--nats-url", s.natsURL(), "--http", addr,
		"--flush-interval", "50ms")
	return &dash{t: s.t, addr: addr, proc: p}
}

// startExtraDashboard starts a dashboard on a fresh address and waits until its
// replay has caught up.
func (s *system) startExtraDashboard() *dash {
	s.t.Helper()
	d := s.launchDashboard("")
	d.waitReady()
	return d
}

// on returns the same dashboard for use by a subtest t.
func (d *dash) on(t *testing.T) *dash {
	return &dash{t: t, addr: d.addr, proc: d.proc}
}

func (d *dash) url(path string) string { return "http://" + d.addr + path }

func (d *dash) waitReady() {
	d.t.Helper()
	eventually(d.t, "dashboard "+d.addr+" ready", 60*time.Second, func() error {
		code, err := getJSON(d.t.Context(), d.url("/readyz"), nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("readyz: %d", code)
		}
		return err
	})
}

// fetchTask returns a task's state, or an error while the dashboard does not know it.
func (d *dash) fetchTask(id string) (projection.Task, error) {
	var task projection.Task
	code, err := getJSON(d.t.Context(), d.url("/api/tasks/"+id), &task)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("get task %s: status %d", id, code)
	}
	return task, err
}

func (d *dash) task(id string) projection.Task {
	d.t.Helper()
	task, err := d.fetchTask(id)
	if err != nil {
		d.t.Fatal(err)
	}
	return task
}

// taskJSON returns the body of GET /api/tasks/{id} as the dashboard wrote it.
func (d *dash) taskJSON(id string) []byte {
	d.t.Helper()
	resp, err := http.Get(d.url("/api/tasks/" + id))
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		d.t.Fatalf("get task %s: %d %v %s", id, resp.StatusCode, err, body)
	}
	return body
}

// fullStats returns /api/stats as a map, replay position included.
func (d *dash) fullStats() map[string]any {
	d.t.Helper()
	var st map[string]any
	code, err := getJSON(d.t.Context(), d.url("/api/stats"), &st)
	if err != nil || code != http.StatusOK {
		d.t.Fatalf("stats: %d %v", code, err)
	}
	return st
}

// stats returns /api/stats without the replay's own position, which is what two
// replays of the same stream must agree on.
func (d *dash) stats() map[string]any {
	st := d.fullStats()
	delete(st, "replay")
	return st
}

// waitCaughtUp waits until the dashboard has applied or skipped every message up to
// the stream's last sequence seq.
func (d *dash) waitCaughtUp(seq uint64) {
	d.t.Helper()
	eventually(d.t, "dashboard at stream sequence "+fmt.Sprint(seq), 60*time.Second, func() error {
		var st struct {
			Replay struct {
				AppliedSeq uint64 `json:"applied_seq"`
			} `json:"replay"`
		}
		if _, err := getJSON(d.t.Context(), d.url("/api/stats"), &st); err != nil {
			return err
		}
		if st.Replay.AppliedSeq < seq {
			return fmt.Errorf("applied_seq %d", st.Replay.AppliedSeq)
		}
		return nil
	})
}

// waitTask polls a task until cond accepts it and returns that state.
func (d *dash) waitTask(id, what string, timeout time.Duration,
	cond func(projection.Task) error) projection.Task {
	d.t.Helper()
	var last projection.Task
	eventually(d.t, "task "+id+": "+what, timeout, func() error {
		task, err := d.fetchTask(id)
		if err != nil {
			return err
		}
		last = task
		return cond(task)
	})
	return last
}

// hasStatus accepts a task in status want.
func hasStatus(want projection.Status) func(projection.Task) error {
	return func(task projection.Task) error {
		if task.Status != want {
			return fmt.Errorf("status %s at step %d with %d events, want %s", task.Status,
				task.Progress.Step, task.EventCount, want)
		}
		return nil
	}
}

// runningPast accepts a running task that has reported at least step steps.
func runningPast(step int64) func(projection.Task) error {
	return func(task projection.Task) error {
		if task.Status != projection.Running || task.Progress.Step < step {
			return fmt.Errorf("status %s at step %d, want RUNNING past step %d", task.Status,
				task.Progress.Step, step)
		}
		return nil
	}
}

// countHistory checks that every event id appears once in a task's history and that
// event_count agrees with it, and returns the number of events of each type.
func countHistory(t *testing.T, task projection.Task) map[events.Type]int {
	t.Helper()
	if task.EventCount != len(task.History) {
		t.Fatalf("task %s: event_count %d, history of %d", task.TaskID, task.EventCount,
			len(task.History))
	}
	seen := make(map[string]bool, len(task.History))
	counts := map[events.Type]int{}
	for _, h := range task.History {
		if seen[h.EventID] {
			t.Fatalf("task %s: event %s twice in history", task.TaskID, h.EventID)
		}
		seen[h.EventID] = true
		counts[h.EventType]++
	}
	return counts
}

// checkCompleteRun checks that a task is a COMPLETED run with all its events, each
// once: submitted, started, steps progress events, completed, and lost events only
// where allowed (lost >= 0 is an exact count, -1 allows any number).
func checkCompleteRun(t *testing.T, task projection.Task, steps, lost int) {
	t.Helper()
	if task.Status != projection.Completed {
		t.Fatalf("task %s: status %s, want COMPLETED", task.TaskID, task.Status)
	}
	counts := countHistory(t, task)
	if lost < 0 {
		lost = counts[events.TaskLost]
	}
	want := map[events.Type]int{
		events.TaskSubmitted: 1,
		events.TaskStarted:   1,
		events.TaskProgress:  steps,
		events.TaskCompleted: 1,
	}
	if lost > 0 {
		want[events.TaskLost] = lost
	}
	if !maps.Equal(counts, want) {
		t.Fatalf("task %s: events by type %v, want %v", task.TaskID, counts, want)
	}
	if task.EventCount != steps+3+lost {
		t.Fatalf("task %s: event_count %d, want %d", task.TaskID, task.EventCount, steps+3+lost)
	}
	if task.Progress.Step != int64(steps) || task.Progress.Total != int64(steps) {
		t.Fatalf("task %s: progress %+v, want %d of %d", task.TaskID, task.Progress, steps, steps)
	}
}

// jobSummary is the JSON line tests/jobber prints when it ends.
type jobSummary struct {
	TaskID      string  `json:"task_id"`
	Steps       int     `json:"steps"`
	MaxReportUS float64 `json:"max_report_us"`
	Spooled     uint64  `json:"spooled"`
	Dropped     uint64  `json:"dropped"`
}

// parseSummary finds jobber's summary line in its output, which also holds its log.
func parseSummary(t *testing.T, out string) jobSummary {
	t.Helper()
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, `{"task_id"`) {
			continue
		}
		var s jobSummary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("jobber summary %q: %v", line, err)
		}
		return s
	}
	t.Fatalf("jobber printed no summary:\n%s", out)
	return jobSummary{}
}

// waitExit waits for a started program to end and fails the test unless it exited 0.
func waitExit(t *testing.T, p *proc, timeout time.Duration) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	if p.err != nil {
		t.Fatalf("%s: %v\n%s", p.name, p.err, p.out.String())
	}
	return p.out.String()
}

// exited reports whether a started program has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// sameJSON reports whether two JSON documents hold the same values.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}
