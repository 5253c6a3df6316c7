package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	t.Setenv("MINIRAY_NATS_URL", srv.ClientURL())
	t.Setenv("MINIRAY_SPOOL_DIR", t.TempDir())
	var stdout, stderr bytes.Buffer
	args := []string{"--name", "grid", "--lrs", "0.05,0.5", "--epochs", "10,40"}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	t.Log(stdout.String())

	tasks := natstest.ByName(srv.Events(t))
	search := tasks["grid"]
	if search == nil {
		t.Fatal("no events of the tuning task on the stream")
	}
	if got := search.Count(events.TaskProgress); got != 4 {
		t.Errorf("got %d tuning progress events, want 4", got)
	}
	for i := 1; i <= 4; i++ {
		name := "grid-trial-" + strconv.Itoa(i)
		trial := tasks[name]
		if trial == nil {
			t.Fatalf("no events of %s on the stream", name)
		}
		sub, _ := trial.Last(events.TaskSubmitted)
		if sub.TaskType != events.TypeTraining || sub.Data.ParentID != search.ID {
			t.Errorf("%s: got type %s, parent %q; want training, parent %q",
				name, sub.TaskType, sub.Data.ParentID, search.ID)
		}
	}

	done, ok := search.Last(events.TaskCompleted)
	if !ok {
		t.Fatal("tuning task did not complete")
	}
	var out outcome
	if err := json.Unmarshal(done.Data.Result, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Trials) != 4 {
		t.Fatalf("got %d trials in the result, want 4", len(out.Trials))
	}
	for _, tr := range out.Trials {
		if tr.better(out.Best) {
			t.Errorf("trial %d beats the chosen best, trial %d", tr.Trial, out.Best.Trial)
		}
	}
}
