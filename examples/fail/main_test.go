package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	t.Setenv("MINIRAY_NATS_URL", srv.ClientURL())
	t.Setenv("MINIRAY_SPOOL_DIR", t.TempDir())
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), nil, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	t.Log(stdout.String())

	tasks := natstest.ByName(srv.Events(t))
	tests := []struct {
		name      string
		wantError string
		wantStack bool
	}{
		{"iris-missing-value", `parsing "NA"`, false},
		{"iris-confusion", "panic: runtime error: index out of range", true},
	}
	for _, tt := range tests {
		task := tasks[tt.name]
		if task == nil {
			t.Fatalf("no events of %s on the stream", tt.name)
		}
		failed, ok := task.Last(events.TaskFailed)
		if !ok {
			t.Fatalf("%s: no task_failed event", tt.name)
		}
		if !strings.Contains(failed.Data.Error, tt.wantError) {
			t.Errorf("%s: got error %q, want it to contain %q",
				tt.name, failed.Data.Error, tt.wantError)
		}
		// The stack must reach down to the function that panicked. Under go test
		// package main goes by its import path, so match the name alone.
		if got := strings.Contains(failed.Data.Stack, ".confusion("); got != tt.wantStack {
			t.Errorf("%s: got stack naming confusion %v, want %v", tt.name, got, tt.wantStack)
		}
	}
}
