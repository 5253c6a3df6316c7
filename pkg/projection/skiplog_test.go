package projection_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// TestBadMessagesAreLoggedOncePerKind replays a real stream that holds, next to a
// good task, three messages of every kind the projection skips or adjusts, then
// receives one more of each while it runs live. Each kind is logged once, on its
// first message, and counted every time; the replay goes on past all of them.
func TestBadMessagesAreLoggedOncePerKind(t *testing.T) {
	nc, js := skiplogServer(t)
	const copies = 3
	good := skiplogTask("good")
	for i := range good {
		skiplogPublish(t, nc, good[i].Subject(), skiplogEncode(t, good[i]))
	}
	publishGarbage := func(round int) {
		for i := range copies {
			for _, g := range skiplogGarbage(t, good, fmt.Sprintf("%d-%d", round, i)) {
				skiplogPublish(t, nc, g.subject, g.data)
			}
		}
	}
	publishGarbage(0)
	// A task after the garbage: the replay must reach it.
	after := skiplogTask("after")
	for i := range after {
		skiplogPublish(t, nc, after[i].Subject(), skiplogEncode(t, after[i]))
	}
	kinds := len(projection.SkipKinds) + len(projection.AdjustKinds)
	last := skiplogWaitStored(t, js, uint64(len(good)+len(after)+copies*kinds))

	logs := newSkiplogRecorder(t)
	p, _ := replayWith(t, js, slog.New(logs))
	skiplogWaitSeq(t, p, last)
	for _, id := range []string{"good", "after"} {
		if task, ok := p.Get(id); !ok || task.Status != projection.Completed ||
			task.EventCount != len(good) {
			t.Fatalf("task %s after the garbage: got %+v, want COMPLETED with %d events", id,
				task, len(good))
		}
	}
	skiplogCheck(t, p, logs, copies)

	// Live: one more of each kind is counted, not logged again.
	for _, g := range skiplogGarbage(t, good, "live") {
		skiplogPublish(t, nc, g.subject, g.data)
	}
	skiplogWaitSeq(t, p, skiplogWaitStored(t, js, last+uint64(kinds)))
	skiplogCheck(t, p, logs, copies+1)
}

// skiplogCheck checks that every kind was logged exactly once and counted n times.
func skiplogCheck(t *testing.T, p *projection.Projection, logs *skiplogRecorder, n uint64) {
	t.Helper()
	got := logs.byKind()
	for _, kind := range append(append([]string(nil), projection.SkipKinds...),
		projection.AdjustKinds...) {
		if len(got[kind]) != 1 {
			t.Errorf("kind %s logged %d times, want once: %q", kind, len(got[kind]), got[kind])
		}
	}
	if len(got) != len(projection.SkipKinds)+len(projection.AdjustKinds) {
		t.Errorf("log lines by kind %v, want one for each skip and adjust kind", got)
	}

	st := p.Stats()
	wantSkipped := map[string]uint64{}
	for _, kind := range projection.SkipKinds {
		wantSkipped[kind] = n
	}
	wantAdjusted := map[string]uint64{}
	for _, kind := range projection.AdjustKinds {
		wantAdjusted[kind] = n
	}
	if !maps.Equal(st.SkippedByKind, wantSkipped) ||
		st.EventsSkipped != n*uint64(len(wantSkipped)) {
		t.Errorf("skipped %v (%d in all), want %v", st.SkippedByKind, st.EventsSkipped, wantSkipped)
	}
	if !maps.Equal(st.AdjustedByKind, wantAdjusted) ||
		st.EventsAdjusted != n*uint64(len(wantAdjusted)) {
		t.Errorf("adjusted %v (%d in all), want %v", st.AdjustedByKind, st.EventsAdjusted,
			wantAdjusted)
	}
	if t.Failed() {
		t.FailNow()
	}
}

type skiplogMsg struct {
	subject string
	data    []byte
}

// skiplogGarbage returns one message of every skip and adjust kind; tag keeps the
// ids of one call apart from those of another.
func skiplogGarbage(t *testing.T, good []events.Event, tag string) []skiplogMsg {
	t.Helper()
	const sink = "miniray.tasks.training.x.task_progress"
	valid := func(et events.Type, taskID string) events.Event {
		return events.New(et, taskID, events.TypeTraining, "garbage", events.Data{Attempt: "g"})
	}
	unknown := valid(events.Type("task_exploded"), "unknown-"+tag)
	elsewhere := valid(events.TaskSubmitted, "elsewhere-"+tag)
	retyped := events.New(events.TaskProgress, good[0].TaskID, events.TypeInference, "garbage",
		events.Data{Attempt: "g"})
	big := valid(events.TaskSubmitted, "big-"+tag)
	big.Data.Description = strings.Repeat("x", 2*events.MaxTextLen)
	future := valid(events.TaskSubmitted, "future-"+tag)
	ahead := time.Now().AddDate(10, 0, 0)
	future.Timestamp, future.TimestampStr = events.UnixSeconds(ahead), events.FormatTime(ahead)

	msgs := map[string]skiplogMsg{
		projection.SkipMalformed: {sink, []byte("\x00\x01 not JSON {" + tag)},
		projection.SkipInvalid:   {unknown.Subject(), skiplogEncode(t, unknown)},
		projection.SkipSubject:   {sink, skiplogEncode(t, elsewhere)},
		projection.SkipTooLarge:  {sink, []byte(strings.Repeat("x", projection.MaxEventSize+1))},
		// A copy of an applied event, stored again since it carries no message id.
		projection.SkipDuplicate:    {good[1].Subject(), skiplogEncode(t, good[1])},
		projection.SkipTaskType:     {retyped.Subject(), skiplogEncode(t, retyped)},
		projection.AdjustBounded:    {big.Subject(), skiplogEncode(t, big)},
		projection.AdjustClockAhead: {future.Subject(), skiplogEncode(t, future)},
	}
	out := make([]skiplogMsg, 0, len(msgs))
	for _, kind := range append(append([]string(nil), projection.SkipKinds...),
		projection.AdjustKinds...) {
		m, ok := msgs[kind]
		if !ok {
			t.Fatalf("no garbage message of kind %s: the test needs one", kind)
		}
		out = append(out, m)
	}
	return out
}

// skiplogTask returns the events of a completed training task.
func skiplogTask(id string) []events.Event {
	ev := func(et events.Type, d events.Data) events.Event {
		d.Attempt = "a"
		return events.New(et, id, events.TypeTraining, "job "+id, d)
	}
	step := int64(1)
	return []events.Event{
		ev(events.TaskSubmitted, events.Data{}),
		ev(events.TaskStarted, events.Data{}),
		ev(events.TaskProgress, events.Data{Step: &step, Metrics: events.Metrics{"loss": 1}}),
		ev(events.TaskCompleted, events.Data{}),
	}
}

func skiplogEncode(t *testing.T, e events.Event) []byte {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// skiplogPublish stores a message on the stream as it is, without a message id.
func skiplogPublish(t *testing.T, nc *nats.Conn, subject string, data []byte) {
	t.Helper()
	if err := nc.Publish(subject, data); err != nil {
		t.Fatalf("publish to %s: %v", subject, err)
	}
}

// skiplogWaitStored waits until the stream holds n messages and returns its last
// sequence.
func skiplogWaitStored(t *testing.T, js jetstream.JetStream, n uint64) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		st, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == n {
			return info.State.LastSeq
		}
		if info.State.Msgs > n {
			t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, n)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// skiplogWaitSeq waits until the projection has applied or skipped every message up
// to seq.
func skiplogWaitSeq(t *testing.T, p *projection.Projection, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.LastSeq() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("projection at sequence %d, want %d", p.LastSeq(), seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// skiplogServer starts an embedded NATS server with JetStream whose max payload is
// twice the projection's MaxEventSize, so that a message the projection must skip
// as too large can be stored at all, and provisions miniray's stream and bucket.
func skiplogServer(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		MaxPayload: 2 * projection.MaxEventSize,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := events.Provision(ctx, js, events.DefaultStoreConfig()); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return nc, js
}

// skiplogRecorder is a slog handler that writes to the test's output and keeps, by
// kind, the level and message of the records that carry a "kind" attribute.
type skiplogRecorder struct {
	slog.Handler
	seen *skiplogSeen
}

type skiplogSeen struct {
	mu    sync.Mutex
	kinds map[string][]string
}

func newSkiplogRecorder(tb testing.TB) *skiplogRecorder {
	tb.Helper()
	return &skiplogRecorder{Handler: slog.NewTextHandler(tb.Output(), nil),
		seen: &skiplogSeen{kinds: map[string][]string{}}}
}

func (h *skiplogRecorder) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "kind" {
			return true
		}
		h.seen.mu.Lock()
		k := a.Value.String()
		h.seen.kinds[k] = append(h.seen.kinds[k], r.Level.String()+" "+r.Message)
		h.seen.mu.Unlock()
		return false
	})
	return h.Handler.Handle(ctx, r)
}

func (h *skiplogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &skiplogRecorder{Handler: h.Handler.WithAttrs(as), seen: h.seen}
}

func (h *skiplogRecorder) WithGroup(name string) slog.Handler {
	return &skiplogRecorder{Handler: h.Handler.WithGroup(name), seen: h.seen}
}

func (h *skiplogRecorder) byKind() map[string][]string {
	h.seen.mu.Lock()
	defer h.seen.mu.Unlock()
	out := make(map[string][]string, len(h.seen.kinds))
	for k, v := range h.seen.kinds {
		out[k] = append([]string(nil), v...)
	}
	return out
}
