package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// natsCLI runs the nats CLI against the system's server and returns what it printed.
// scripts/test.sh installs it; a missing CLI fails the test rather than skipping it.
func natsCLI(t *testing.T, s *system, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("nats")
	if err != nil {
		t.Fatalf("the nats CLI is not on PATH (scripts/test.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args = append([]string{"--server", s.natsURL()}, args...)
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nats %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestNatsCLIReadsOurData checks what the README promises: the raw events are
// readable JSON with their message ids, and a task's state is one KV get away.
func TestNatsCLIReadsOurData(t *testing.T) {
	s := newSystem(t)
	s.startCollector()
	s.train("cli-job", 5)
	s.startDashboard()
	page := s.tasks()
	if page.Total != 1 {
		t.Fatalf("got %d tasks, want 1", page.Total)
	}
	id := page.Tasks[0].TaskID

	info := natsCLI(t, s, "stream", "info", events.StreamName)
	for _, want := range []string{"miniray.tasks.>", "File", "Messages: 8"} {
		if !strings.Contains(info, want) {
			t.Errorf("stream info lacks %q:\n%s", want, info)
		}
	}

	first := natsCLI(t, s, "stream", "get", events.StreamName, "1")
	subject := events.Subject(events.TypeTraining, id, events.TaskSubmitted)
	if !strings.Contains(first, subject) || !strings.Contains(first, "Nats-Msg-Id") {
		t.Fatalf("stream get 1 lacks the subject %s or the message id:\n%s", subject, first)
	}
	body := first[strings.Index(first, "{"):]
	if _, err := events.Decode([]byte(strings.TrimSpace(body))); err != nil {
		t.Fatalf("the stored event is not an event: %v\n%s", err, body)
	}

	// stream view pages through the events; it needs a terminal, which script
	// (util-linux) gives it. Without script the check is skipped, except in CI.
	t.Run("stream view", func(t *testing.T) {
		if _, err := exec.LookPath("script"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no script on PATH (util-linux) to give nats stream view a terminal")
			}
			t.Skip("no script on PATH (util-linux) to give nats stream view a terminal")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		view, _ := exec.CommandContext(ctx, "script", "-qec",
			"nats --server "+s.natsURL()+" stream view "+events.StreamName+" 10",
			"/dev/null").CombinedOutput()
		if n := strings.Count(string(view), `"event_type":"task_progress"`); n != 5 {
			t.Errorf("stream view shows %d progress events, want 5:\n%s", n, view)
		}
	})

	eventually(t, "kv get", 10*time.Second, func() error {
		raw := natsCLI(t, s, "kv", "get", events.BucketName, id, "--raw")
		var task projection.Task
		if err := json.Unmarshal([]byte(raw), &task); err != nil {
			return err
		}
		if task.TaskID != id || task.Status != projection.Completed || task.EventCount != 8 {
			t.Fatalf("kv get: got %+v", task)
		}
		return nil
	})
	if ls := natsCLI(t, s, "kv", "ls", events.BucketName); !strings.Contains(ls, id) {
		t.Fatalf("kv ls lacks %s:\n%s", id, ls)
	}
}
