package tracking

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestSpoolSurvivesATornWrite(t *testing.T) {
	s, err := createSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var evs []events.Event
	for range 3 {
		evs = append(evs, events.New(events.TaskProgress, "t", events.TypeTask, "n", events.Data{}))
	}
	if err := s.append(evs[:2]); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write: half a record, then a later client appends.
	if _, err := s.f.WriteString(`0badc0de {"event_id":"x","task_`); err != nil {
		t.Fatal(err)
	}
	if err := s.append(evs[2:]); err != nil {
		t.Fatal(err)
	}
	got, bad, err := s.read()
	if err != nil {
		t.Fatal(err)
	}
	if bad != 1 || len(got) != 2 || got[0].EventID != evs[0].EventID || got[1].EventID != evs[1].EventID {
		t.Fatalf("got %d events, %d bad; want the first 2 and 1 bad", len(got), bad)
	}
}

func TestDrainSkipsSpoolsOfLiveProcesses(t *testing.T) {
	dir := t.TempDir()
	live, err := createSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := events.New(events.TaskSubmitted, "t", events.TypeTask, "n", events.Data{})
	if err := live.append([]events.Event{e}); err != nil {
		t.Fatal(err)
	}

	srv := natstest.Start(t)
	log := slog.New(slog.DiscardHandler)
	n, err := DrainSpool(context.Background(), srv.JS, dir, log)
	if err != nil || n != 0 {
		t.Fatalf("drained %d %v while the owner holds the file", n, err)
	}

	live.f.Close() // the owner dies: its lock goes with it
	n, err = DrainSpool(context.Background(), srv.JS, dir, log)
	if err != nil || n != 1 {
		t.Fatalf("drained %d %v, want 1", n, err)
	}
	if _, err := os.Stat(live.path); !os.IsNotExist(err) {
		t.Fatalf("sent spool file still there: %v", err)
	}
}
