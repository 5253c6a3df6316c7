package tracking

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestSpoolSurvivesATornWrite(t *testing.T) {
	s, err := createSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var evs []record
	for range 3 {
		evs = append(evs, newRecord(events.TaskProgress))
	}
	log := slog.New(slog.DiscardHandler)
	if err := s.append(evs[:2], false); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write: half a record, then a later client appends.
	if _, err := s.f.WriteString(`0badc0de {"event_id":"x","task_`); err != nil {
		t.Fatal(err)
	}
	if err := s.append(evs[2:], false); err != nil {
		t.Fatal(err)
	}
	got, err := s.readAll(0, log)
	if err != nil {
		t.Fatal(err)
	}
	id := func(i int) string { return got.msgs[i].Header.Get(jetstream.MsgIDHeader) }
	if got.bad != 1 || len(got.msgs) != 2 || id(0) != evs[0].id || id(1) != evs[1].id {
		t.Fatalf("got %d events, %d bad; want the first 2 and 1 bad", len(got.msgs), got.bad)
	}
}

func TestDrainSkipsSpoolsOfLiveProcesses(t *testing.T) {
	dir := t.TempDir()
	live, err := createSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.append([]record{newRecord(events.TaskSubmitted)}, false); err != nil {
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

// TestCloseWaitsForOrphanSpools closes a client at once, as a short job would: the
// spool file another process left behind is sent all the same before Close returns.
func TestCloseWaitsForOrphanSpools(t *testing.T) {
	dir := t.TempDir()
	orphan, err := createSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	var evs []record
	for range 2000 {
		evs = append(evs, newRecord(events.TaskProgress))
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	if err := orphan.append(evs, false); err != nil {
		t.Fatal(err)
	}
	orphan.f.Close() // its process is gone

	srv := natstest.Start(t)
	c, err := NewClient(srv.NC, WithSpoolDir(dir), WithLogger(log), WithHeartbeat(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(orphan.path); !os.IsNotExist(err) {
		t.Fatalf("orphan spool file still there after Close: %v", err)
	}
	if got := len(srv.Events(t)); got != len(evs) {
		t.Fatalf("stream holds %d events, want the orphan's %d", got, len(evs))
	}
}

// TestSpooledRecordChecksEveryNewTask reads records of one task, then of another
// whose id is not subject-safe: the subject of the first is shared, the second is
// refused as damaged rather than published on a subject of the wrong shape.
func TestSpooledRecordChecksEveryNewTask(t *testing.T) {
	var last lastHead
	var subjects []string
	for range 2 {
		r, err := spooledRecord(newRecord(events.TaskProgress).data, &last)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, r.subject)
	}
	if want := events.Subject(events.TypeTask, "t", events.TaskProgress); subjects[0] != want ||
		subjects[1] != want {
		t.Fatalf("subjects %q, want %q twice", subjects, want)
	}
	e := events.New(events.TaskProgress, "t", events.TypeTask, "n", events.Data{})
	e.TaskID = "t.other"
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := spooledRecord(b, &last); !errors.Is(err, errDamaged) {
		t.Fatalf("record of task %q: got %q %v, want errDamaged", e.TaskID, r.subject, err)
	}
}
