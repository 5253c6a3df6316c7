package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miniray/miniray/examples/internal/cli"
	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	t.Setenv("MINIRAY_NATS_URL", srv.ClientURL())
	t.Setenv("MINIRAY_SPOOL_DIR", t.TempDir())
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
		if err := run(t.Context(), args, &stdout, &stderr); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%q: got error %v, want a usage error", args, err)
		}
	}
}

// TestRunWithoutNATS checks that a job whose NATS cannot be reached still runs,
// prints its result, and leaves its events in the spool for later delivery.
func TestRunWithoutNATS(t *testing.T) {
	spool := t.TempDir()
	t.Setenv("MINIRAY_NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("MINIRAY_SPOOL_DIR", spool)
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"--epochs", "10"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "test accuracy") {
		t.Errorf("got stdout %q, want a summary with the test accuracy", stdout.String())
	}
	files, err := os.ReadDir(spool)
	if err != nil || len(files) != 1 {
		t.Fatalf("spool dir holds %v (%v), want one file", files, err)
	}
}
