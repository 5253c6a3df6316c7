package events_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

func TestProvisionIdempotent(t *testing.T) {
	s := natstest.Start(t)
	ctx := t.Context()

	changes, err := events.Provision(ctx, s.JS, events.DefaultStoreConfig())
	if err != nil || len(changes) != 0 {
		t.Fatalf("second provision: got %v %v, want no change", changes, err)
	}
	c := events.DefaultStoreConfig()
	c.Duplicates = 30 * time.Second
	changes, err = events.Provision(ctx, s.JS, c)
	if err != nil || len(changes) != 1 {
		t.Fatalf("new duplicate window: got %v %v, want one change", changes, err)
	}
	// Ensure creates nothing and changes nothing on an existing store.
	changes, err = events.Ensure(ctx, s.JS, events.DefaultStoreConfig())
	if err != nil || len(changes) != 0 {
		t.Fatalf("ensure: got %v %v, want no change", changes, err)
	}
	st, err := s.JS.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Duplicates != 30*time.Second || cfg.Storage != jetstream.FileStorage || cfg.MaxAge != 0 {
		t.Fatalf("stream config: got %+v", cfg)
	}
	if _, err := s.JS.KeyValue(ctx, events.BucketName); err != nil {
		t.Fatalf("bucket: %v", err)
	}
}

func TestProvisionRefusesConflictingStream(t *testing.T) {
	s := natstest.Start(t)
	ctx := t.Context()
	if err := s.JS.DeleteStream(ctx, events.StreamName); err != nil {
		t.Fatal(err)
	}
	_, err := s.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name:     events.StreamName,
		Subjects: []string{events.StreamSubjects},
		Storage:  jetstream.MemoryStorage,
		MaxMsgs:  100,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = events.Provision(ctx, s.JS, events.DefaultStoreConfig())
	if !errors.Is(err, events.ErrStreamConflict) {
		t.Fatalf("got %v, want ErrStreamConflict", err)
	}
	st, _ := s.JS.Stream(ctx, events.StreamName)
	if st.CachedInfo().Config.Storage != jetstream.MemoryStorage {
		t.Fatal("conflicting stream was replaced")
	}
}

func TestPublishDeduplicates(t *testing.T) {
	s := natstest.Start(t)
	ctx := t.Context()
	e := events.New(events.TaskSubmitted, "t1", events.TypeTraining, "n", events.Data{})
	first, err := events.Publish(ctx, s.JS, e)
	if err != nil {
		t.Fatal(err)
	}
	again, err := events.Publish(ctx, s.JS, e)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("second publish: got %+v, want a duplicate of seq %d", again, first.Sequence)
	}
	bad := e
	bad.TaskID = "a.b"
	if _, err := events.Publish(ctx, s.JS, bad); err == nil {
		t.Fatal("invalid event published")
	}
	msg, err := s.JS.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.GetLastMsgForSubject(ctx, e.Subject())
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get(jetstream.MsgIDHeader) != e.EventID {
		t.Fatalf("msg id header: got %q, want %q", raw.Header.Get(jetstream.MsgIDHeader), e.EventID)
	}
}

func TestServerLocksDataDir(t *testing.T) {
	s := natstest.Start(t)
	_, err := events.StartServer(events.ServerConfig{Listen: "127.0.0.1:-1", DataDir: s.Dir})
	if !errors.Is(err, events.ErrDataDirLocked) {
		t.Fatalf("second server on the same dir: got %v, want ErrDataDirLocked", err)
	}
}

func TestServerRestartKeepsEvents(t *testing.T) {
	s := natstest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		e := events.New(events.TaskProgress, "t1", events.TypeTask, "n", events.Data{})
		if _, err := events.Publish(ctx, s.JS, e); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop()
	s2 := natstest.StartIn(t, s.Dir)
	st, err := s2.JS.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 10 {
		t.Fatalf("after restart: got %d messages, want 10", n)
	}
}

func TestServerFailsFastOnABusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	start := time.Now()
	_, err = events.StartServer(events.ServerConfig{Listen: busy.Addr().String(),
		DataDir: t.TempDir(), ReadyTimeout: time.Minute})
	if err == nil {
		t.Fatal("started on a busy port")
	}
	// The failure is reported as soon as the listener fails, not at the timeout.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %s to fail", d)
	}
}
