package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	t.Setenv("MINIRAY_NATS_URL", srv.ClientURL())
	modelPath := filepath.Join(t.TempDir(), "model.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--epochs", "30", "--name", "train-test", "--model-out", modelPath}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	t.Log(stdout.String())
	if !strings.Contains(stdout.String(), "test accuracy") {
		t.Errorf("got stdout %q, want a summary with the test accuracy", stdout.String())
	}
	if _, err := iris.LoadCheckpoint(modelPath); err != nil {
		t.Errorf("load written model: %v", err)
	}

	task := natstest.ByName(srv.Events(t))["train-test"]
	if task == nil {
		t.Fatal("no events of task train-test on the stream")
	}
	for et, want := range map[events.Type]int{
		events.TaskSubmitted: 1,
		events.TaskStarted:   1,
		events.TaskProgress:  30,
		events.TaskCompleted: 1,
	} {
		if got := task.Count(et); got != want {
			t.Errorf("got %d %s events, want %d", got, et, want)
		}
	}
	last, _ := task.Last(events.TaskProgress)
	if *last.Data.Step != 30 || *last.Data.Total != 30 {
		t.Errorf("got last progress %d/%d, want 30/30", *last.Data.Step, *last.Data.Total)
	}
	for _, k := range []string{"loss", "accuracy", "test_accuracy"} {
		if _, ok := last.Data.Metrics[k]; !ok {
			t.Errorf("last progress has metrics %v, want %q", last.Data.Metrics, k)
		}
	}
}

func TestRunUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{{"--epochs", "0"}, {"--lr", "x"}, {"extra"}} {
		if err := run(t.Context(), args, &stdout, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("%q: got error %v, want a usage error", args, err)
		}
	}
}

// TestRunWithoutNATS checks that a job whose NATS cannot be reached still runs,
// prints its result and returns once the wait for NATS runs out.
func TestRunWithoutNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("waits closeTimeout for an unreachable server")
	}
	t.Setenv("MINIRAY_NATS_URL", "nats://127.0.0.1:1")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if err := run(t.Context(), []string{"--epochs", "10"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "test accuracy") {
		t.Errorf("got stdout %q, want a summary with the test accuracy", stdout.String())
	}
	if d := time.Since(start); d > closeTimeout+5*time.Second {
		t.Errorf("run took %s, want at most %s", d, closeTimeout+5*time.Second)
	}
	if !strings.Contains(stderr.String(), "tracking events not all delivered") {
		t.Errorf("got log %q, want a warning about undelivered events", stderr.String())
	}
}
