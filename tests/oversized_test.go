package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/projection"
	"github.com/miniray/miniray/pkg/tracking"
)

// TestOversizedEventDoesNotBlockTheSpool runs a job whose result encodes to more
// than the server's max payload (1 MiB), as a job returning its model's weights
// might. The server would refuse that event for ever; the job must send it with a
// note in place of its result and end COMPLETED, and nothing may queue behind it: a job that
// runs offline later on the same machine must still arrive through the spool.
func TestOversizedEventDoesNotBlockTheSpool(t *testing.T) {
	const id, later = "oversized-result", "after-oversized"
	s := newSystem(t)
	s.startCollectorWith("--spool-scan", "500ms")
	s.startDashboard()
	d := s.dash()

	// The job runs in this process through the public API, against the real collector:
	// it returns a result of 2 MiB, as a job returning its model's weights might.
	c, err := tracking.Connect(s.natsURL(), tracking.WithSpoolDir(s.spoolDir),
		tracking.WithHeartbeat(0))
	if err != nil {
		t.Fatal(err)
	}
	job := tracking.Training(func(ctx context.Context, n int) (string, error) {
		for i := 1; i <= n; i++ {
			tracking.FromContext(ctx).Progress(i, n, nil)
		}
		return strings.Repeat("w", 2<<20), nil
	}, tracking.WithClient(c), tracking.WithTaskID(id), tracking.WithName(id))
	if _, err := job(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Logf("close: %v", err)
	}

	// Another job runs later on the same machine while NATS is unreachable; its spool
	// file sorts after the first one.
	run(t, "jobber", []string{"MINIRAY_NATS_URL=nats://" + freeAddr(t),
		"MINIRAY_SPOOL_DIR=" + s.spoolDir}, "--steps", "5", "--name", later, "--task-id", later)

	// Both should arrive within a few scans of the spool dir.
	deadline := time.Now().Add(10 * time.Second)
	for _, tid := range []string{id, later} {
		if err := pollTask(d, tid, time.Until(deadline), projection.Completed); err != nil {
			t.Errorf("task %s: %v (spool files left: %d)", tid, err,
				len(spoolFiles(t, s.spoolDir)))
		}
	}
	task, err := d.fetchTask(id)
	if err != nil {
		t.Fatal(err)
	}
	// The job bounds its events before they leave (events.Bound): the result is
	// replaced by a note of its size.
	if !strings.Contains(string(task.Result), "not kept") {
		t.Fatalf("the oversized result: got %.100s", task.Result)
	}
}

// pollTask waits until a task has status want, and returns an error describing the
// last state seen if it does not within timeout.
func pollTask(d *dash, id string, timeout time.Duration, want projection.Status) error {
	deadline := time.Now().Add(timeout)
	for {
		task, err := d.fetchTask(id)
		if err == nil && task.Status == want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("status %s with %d events, want %s", task.Status,
				task.EventCount, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
