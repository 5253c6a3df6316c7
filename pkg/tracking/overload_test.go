package tracking_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

// TestTightLoopLosesNothing reports 200,000 progress steps as fast as a loop can,
// several times faster than JetStream acknowledges, against a real server and with
// the default queue. The excess goes through the spool: after Close every event is on
// the stream exactly once and in the order it was reported, and none was dropped.
func TestTightLoopLosesNothing(t *testing.T) {
	const steps, id = 200_000, "tight-loop"
	s := natstest.Start(t)
	logger, logged := recordLogs(t)
	c, err := tracking.NewClient(s.NC, tracking.WithLogger(logger),
		tracking.WithSpoolDir(t.TempDir()), tracking.WithHeartbeat(0))
	if err != nil {
		t.Fatal(err)
	}
	var loop time.Duration
	job := tracking.Training(func(ctx context.Context, n int) (int, error) {
		task := tracking.FromContext(ctx)
		metrics := map[string]float64{"loss": 0.5}
		start := time.Now()
		for i := 1; i <= n; i++ {
			metrics["loss"] = 1 / float64(i)
			task.Progress(i, n, metrics)
		}
		loop = time.Since(start)
		return n, nil
	}, tracking.WithClient(c), tracking.WithTaskID(id))
	if _, err := job(t.Context(), steps); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("%d reports in %s (%.0f a second)", steps, loop, steps/loop.Seconds())
	if c.Dropped() != 0 || c.Spooled() != 0 {
		t.Fatalf("dropped %d, left in the spool %d; want 0 and 0", c.Dropped(), c.Spooled())
	}
	if !logged("the job reports faster than nats takes events") {
		t.Fatal("the queue never overflowed to the spool; the test proves nothing")
	}

	evs := s.Events(t)
	checkExactlyOnce(t, evs, id, steps)
	step := int64(0)
	for _, e := range evs {
		if e.EventType != events.TaskProgress {
			continue
		}
		if *e.Data.Step != step+1 {
			t.Fatalf("progress step %d follows step %d on the stream, want %d", *e.Data.Step,
				step, step+1)
		}
		step = *e.Data.Step
	}
}

// TestReportWaitIsBounded reports progress in a tight loop, with a small queue, to a
// server that is up but does not answer (a proxy that stopped forwarding) and to one
// that cannot be reached. No report takes much longer than the publish wait. With a
// spool nothing is dropped, and once the server answers again every event arrives
// exactly once; without one, the reports that find the queue full wait out the bound
// and are then dropped and counted.
func TestReportWaitIsBounded(t *testing.T) {
	const (
		bound = 200 * time.Millisecond
		// A loaded machine can stall any goroutine for a while; a report that waited
		// on the network would take until the end of the run.
		slack = 2 * time.Second
		run   = 1500 * time.Millisecond
	)
	for _, tc := range []struct {
		name   string
		frozen bool // else nothing listens
		spool  bool
	}{
		{"frozen server with spool", true, true},
		{"frozen server without spool", true, false},
		{"unreachable server with spool", false, true},
		{"unreachable server without spool", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := natstest.Start(t)
			logger, _ := recordLogs(t)
			opts := []tracking.ClientOption{tracking.WithLogger(logger),
				tracking.WithQueueSize(512), tracking.WithPublishWait(bound),
				tracking.WithSpoolDir(""), tracking.WithHeartbeat(0)}
			if tc.spool {
				opts = append(opts, tracking.WithSpoolDir(t.TempDir()))
			}
			var (
				c     *tracking.Client
				proxy *natstest.Proxy
				err   error
			)
			if tc.frozen {
				proxy = natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
				// As tracking.Connect does: nats.go's default of a minute would hold the
				// end of the test that long on a window that the frozen proxy does not
				// take in.
				nc, err := nats.Connect(proxy.URL(), nats.MaxReconnects(-1),
					nats.FlusherTimeout(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(nc.Close)
				if c, err = tracking.NewClient(nc, opts...); err != nil {
					t.Fatal(err)
				}
				proxy.Freeze()
			} else if c, err = tracking.Connect("nats://"+freeAddr(t), opts...); err != nil {
				t.Fatal(err)
			}
			// A client left running would log after the test ended.
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				c.Close(ctx)
			})

			var took []time.Duration
			id := "bounded-" + strings.ReplaceAll(tc.name, " ", "-")
			job := tracking.Training(func(ctx context.Context, _ int) (int, error) {
				task := tracking.FromContext(ctx)
				metrics := map[string]float64{"loss": 0.5}
				end := time.Now().Add(run)
				for i := 1; time.Now().Before(end); i++ {
					start := time.Now()
					task.Progress(i, 0, metrics)
					took = append(took, time.Since(start))
				}
				return len(took), nil
			}, tracking.WithClient(c), tracking.WithTaskID(id))
			if _, err := job(t.Context(), 0); err != nil {
				t.Fatal(err)
			}
			slices.Sort(took)
			slowest := took[len(took)-1]
			waited := len(took) - sortIndex(took, bound*9/10)
			t.Logf("%d reports; median %s, slowest %s; %d waited about the bound; dropped %d",
				len(took), took[len(took)/2], slowest, waited, c.Dropped())
			if slowest > bound+slack {
				t.Fatalf("a report took %s, want at most the publish wait %s (and %s of slack)",
					slowest, bound, slack)
			}
			if !tc.spool {
				if c.Dropped() == 0 || waited == 0 {
					t.Fatalf("dropped %d and %d reports waited, want some of each: the queue"+
						" was full and there is no spool", c.Dropped(), waited)
				}
				return
			}
			if c.Dropped() != 0 {
				t.Fatalf("dropped %d with a spool, want 0", c.Dropped())
			}

			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			if !tc.frozen {
				if err := c.Close(ctx); err != nil {
					t.Fatalf("close: %v", err)
				}
				if want := uint64(len(took) + 3); c.Spooled() != want {
					t.Fatalf("spooled %d, want every event: %d", c.Spooled(), want)
				}
				return
			}
			proxy.Thaw()
			if err := c.Close(ctx); err != nil {
				t.Fatalf("close: %v", err)
			}
			if c.Spooled() != 0 {
				t.Fatalf("%d events left in the spool with the server back", c.Spooled())
			}
			checkExactlyOnce(t, s.Events(t), id, len(took))
		})
	}
}

// sortIndex returns the index of the first duration in sorted d that is at least min.
func sortIndex(d []time.Duration, min time.Duration) int {
	i, _ := slices.BinarySearch(d, min)
	return i
}

// checkExactlyOnce checks that the stream holds only the events of one task that
// reported steps progress steps: each event id once, each step once, and its four
// lifecycle events.
func checkExactlyOnce(t *testing.T, evs []events.Event, id string, steps int) {
	t.Helper()
	if len(evs) != steps+3 {
		t.Fatalf("stream holds %d events, want %d", len(evs), steps+3)
	}
	ids := make(map[string]bool, len(evs))
	seen := make([]bool, steps+1)
	byType := map[events.Type]int{}
	for _, e := range evs {
		if e.TaskID != id {
			t.Fatalf("event of task %s on the stream, want only %s", e.TaskID, id)
		}
		if ids[e.EventID] {
			t.Fatalf("event %s twice on the stream", e.EventID)
		}
		ids[e.EventID] = true
		byType[e.EventType]++
		if e.EventType == events.TaskProgress {
			step := *e.Data.Step
			if step < 1 || step > int64(steps) || seen[step] {
				t.Fatalf("progress step %d unexpected or twice", step)
			}
			seen[step] = true
		}
	}
	want := map[events.Type]int{events.TaskSubmitted: 1, events.TaskStarted: 1,
		events.TaskProgress: steps, events.TaskCompleted: 1}
	if fmt.Sprint(byType) != fmt.Sprint(want) {
		t.Fatalf("events by type %v, want %v", byType, want)
	}
}

// recordLogs returns a logger that writes to the test's output and a function that
// reports whether a message starting with a prefix was logged.
func recordLogs(tb testing.TB) (*slog.Logger, func(prefix string) bool) {
	tb.Helper()
	h := &recorder{Handler: slog.NewTextHandler(tb.Output(), nil), seen: &seenMessages{}}
	return slog.New(h), h.seen.has
}

type seenMessages struct {
	mu   sync.Mutex
	msgs []string
}

func (s *seenMessages) has(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.msgs, func(m string) bool { return strings.HasPrefix(m, prefix) })
}

type recorder struct {
	slog.Handler
	seen *seenMessages
}

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.seen.mu.Lock()
	r.seen.msgs = append(r.seen.msgs, rec.Message)
	r.seen.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{Handler: r.Handler.WithAttrs(as), seen: r.seen}
}

func (r *recorder) WithGroup(name string) slog.Handler {
	return &recorder{Handler: r.Handler.WithGroup(name), seen: r.seen}
}

// freeAddr returns a loopback address that nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
