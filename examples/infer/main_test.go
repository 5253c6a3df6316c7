package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	t.Setenv("MINIRAY_NATS_URL", srv.ClientURL())
	t.Setenv("MINIRAY_SPOOL_DIR", t.TempDir())
	modelPath := writeModel(t)
	tests := []struct {
		name string
		args []string
	}{
		{"infer-with-model", []string{"--model", modelPath, "--batch", "10"}},
		{"infer-fallback", []string{"--batch", "10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--name", tt.name}, tt.args...)
			if err := run(t.Context(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			t.Log(stdout.String())
		})
	}

	tasks := natstest.ByName(srv.Events(t))
	for _, tt := range tests {
		task := tasks[tt.name]
		if task == nil {
			t.Fatalf("no events of task %s on the stream", tt.name)
		}
		// 45 held-out rows in batches of 10.
		if got := task.Count(events.TaskProgress); got != 5 {
			t.Errorf("%s: got %d progress events, want 5", tt.name, got)
		}
		done, ok := task.Last(events.TaskCompleted)
		if !ok {
			t.Fatalf("%s: no task_completed event", tt.name)
		}
		var sum summary
		if err := json.Unmarshal(done.Data.Result, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Count != 45 || sum.Accuracy < 0.9 {
			t.Errorf("%s: got %d rows at accuracy %.3f, want 45 at >= 0.9",
				tt.name, sum.Count, sum.Accuracy)
		}
	}
}

func writeModel(t *testing.T) string {
	t.Helper()
	data, err := iris.Load()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := data.Split(iris.DefaultSplit())
	if err != nil {
		t.Fatal(err)
	}
	m, err := iris.Train(t.Context(), train, test, iris.Config{Epochs: 200, LearningRate: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.json")
	ck := iris.Checkpoint{Split: iris.DefaultSplit(), Model: m}
	if err := iris.SaveCheckpoint(path, ck); err != nil {
		t.Fatal(err)
	}
	return path
}
