package tracking

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// TestFailedPublishesInAWindowAreSentAgain cuts the connection to a real server
// while thousands of publishes are in flight, five times over. The publishes that
// the cut failed, stored or not, are sent again: after each Flush the stream holds
// every event reported before it, and in the end the projection applied every
// event exactly once.
func TestFailedPublishesInAWindowAreSentAgain(t *testing.T) {
	const rounds, perRound, id = 5, 20_000, "cut-mid-window"
	s := natstest.Start(t)
	proxy := natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	logger, resends := countLogs(t, "publishes failed, sending them again")
	nc := connectVia(t, proxy)
	c, err := NewClient(nc, WithLogger(logger), WithSpoolDir(t.TempDir()), WithHeartbeat(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })

	cutsInFlight := 0
	job := Training(func(ctx context.Context, _ int) (int, error) {
		task := FromContext(ctx)
		metrics := map[string]float64{"loss": 1}
		step := 0
		for range rounds {
			for i := range perRound {
				step++
				metrics["loss"] = 1 / float64(step)
				task.Progress(step, rounds*perRound, metrics)
				if i == perRound/2 && cutInFlight(c, proxy) {
					cutsInFlight++
				}
			}
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := c.Flush(fctx)
			cancel()
			if err != nil {
				t.Fatalf("flush after %d steps: %v", step, err)
			}
			// What Flush waited for is on the stream: no failed publish was taken
			// for acknowledged because newer ones were.
			checkSteps(t, s.Events(t), id, step, false)
		}
		return step, nil
	}, WithClient(c), WithTaskID(id))
	if _, err := job(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("%d of %d cuts with publishes in flight; %d resends logged", cutsInFlight, rounds,
		resends())
	if cutsInFlight == 0 || resends() == 0 {
		t.Fatal("no cut failed a publish in flight; the test proves nothing")
	}
	if c.Spooled() != 0 || c.Dropped() != 0 || c.Pending() != 0 {
		t.Fatalf("spooled %d dropped %d pending %d, want 0", c.Spooled(), c.Dropped(),
			c.Pending())
	}
	evs := s.Events(t)
	checkSteps(t, evs, id, rounds*perRound, true)
	checkProjection(t, evs, id, rounds*perRound)
}

// TestWindowGoesToTheSpoolWhileNATSIsAway takes the server away while publishes are
// in flight and the job goes on reporting. What the window held only in memory is
// written to the spool, so Close returns at once with every event acknowledged or on
// disk; the next job that drains the spool delivers the rest, and the projection
// applies every event exactly once, the ones both acknowledged and spooled too.
func TestWindowGoesToTheSpoolWhileNATSIsAway(t *testing.T) {
	const before, after, id = 40_000, 10_000, "away-mid-window"
	s := natstest.Start(t)
	proxy := natstest.StartProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	logger, _ := countLogs(t, "")
	nc := connectVia(t, proxy)
	dir := t.TempDir()
	c, err := NewClient(nc, WithLogger(logger), WithSpoolDir(dir), WithHeartbeat(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })

	var inFlight int64
	job := Training(func(ctx context.Context, _ int) (int, error) {
		task := FromContext(ctx)
		metrics := map[string]float64{"loss": 1}
		for step := 1; step <= before+after; step++ {
			task.Progress(step, before+after, metrics)
			if step == before/4 {
				// Some acknowledged before, which the spool must not hold again.
				if err := c.Flush(ctx); err != nil {
					return 0, err
				}
			}
			if step == before {
				inFlight = waitInFlight(c)
				proxy.Cut()
			}
		}
		return 0, nil
	}, WithClient(c), WithTaskID(id))
	if _, err := job(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if inFlight == 0 || c.acked.Load() < before/4 {
		t.Fatalf("%d in flight when the server went away, %d acknowledged; the test"+
			" proves nothing", inFlight, c.acked.Load())
	}

	// Wait for the sender to see that NATS is gone and write what it holds.
	deadline := time.Now().Add(30 * time.Second)
	for c.acked.Load()+c.spooled.Load() < c.queued.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("acked %d + spooled %d < queued %d after 30s with nats away",
				c.acked.Load(), c.spooled.Load(), c.queued.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.smu.Lock()
	copies := 0
	for _, e := range c.spool.extents {
		if e.copies {
			copies += e.n
		}
	}
	c.smu.Unlock()
	if copies == 0 {
		t.Fatal("no event of the window was copied to the spool; the test proves nothing")
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("%d in flight when the server went away, %d of them copied to the spool;"+
		" %d acknowledged, %d spooled; close took %s", inFlight, copies, c.acked.Load(),
		c.Spooled(), time.Since(start))
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("close took %s with everything on disk", d)
	}

	// The next job on the machine, with NATS back.
	proxy.Restore()
	if _, err := DrainSpool(ctx, s.JS, dir, logger); err != nil {
		t.Fatal(err)
	}
	evs := s.Events(t)
	checkProjection(t, evs, id, before+after)
}

// cutInFlight cuts the proxy's connections once publishes are in flight, and reports
// whether some still were when it did.
func cutInFlight(c *Client, p *natstest.Proxy) bool {
	waitInFlight(c)
	n := c.inflight.Load()
	p.Drop()
	return n > 0
}

// waitInFlight waits, for a few seconds at most, until the window has publishes in
// flight, and returns how many.
func waitInFlight(c *Client) int64 {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if n := c.inflight.Load(); n > 0 {
			return n
		}
		time.Sleep(50 * time.Microsecond)
	}
	return 0
}

// checkSteps checks that the stream holds the task's progress steps 1 to steps,
// each exactly once when exact is set (the stream drops repeated ids), and no
// event twice.
func checkSteps(t *testing.T, evs []events.Event, id string, steps int, exact bool) {
	t.Helper()
	seen := make([]int, steps+1)
	ids := make(map[string]bool, len(evs))
	for _, e := range evs {
		if ids[e.EventID] {
			t.Fatalf("event %s twice on the stream", e.EventID)
		}
		ids[e.EventID] = true
		if e.TaskID == id && e.EventType == events.TaskProgress && int(*e.Data.Step) <= steps {
			seen[*e.Data.Step]++
		}
	}
	for step := 1; step <= steps; step++ {
		if seen[step] == 0 || exact && seen[step] > 1 {
			t.Fatalf("step %d is %d times on the stream, want once", step, seen[step])
		}
	}
}

// checkProjection folds evs and checks that the task completed with all its steps
// and every event applied once.
func checkProjection(t *testing.T, evs []events.Event, id string, steps int) {
	t.Helper()
	p := projection.New(slog.New(slog.DiscardHandler))
	for i := range evs {
		p.Apply(uint64(i+1), &evs[i])
	}
	task, ok := p.Get(id)
	if !ok {
		t.Fatalf("task %s not in the projection", id)
	}
	if task.Status != projection.Completed || task.EventCount != steps+3 ||
		task.Progress.Step != int64(steps) {
		t.Fatalf("task: status %s, %d events, step %d; want COMPLETED, %d, %d", task.Status,
			task.EventCount, task.Progress.Step, steps+3, steps)
	}
}

// connectVia connects to NATS through the proxy, reconnecting quickly after a cut.
func connectVia(t *testing.T, p *natstest.Proxy) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(p.URL(), nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond), nats.FlusherTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// countLogs returns a logger that writes to the test's output, and a function that
// counts the messages that start with prefix.
func countLogs(t *testing.T, prefix string) (*slog.Logger, func() int64) {
	t.Helper()
	h := &counter{Handler: slog.NewTextHandler(t.Output(), nil), prefix: prefix,
		n: new(atomic.Int64)}
	return slog.New(h), h.n.Load
}

type counter struct {
	slog.Handler
	prefix string
	n      *atomic.Int64
}

func (c *counter) Handle(ctx context.Context, r slog.Record) error {
	if c.prefix != "" && strings.HasPrefix(r.Message, c.prefix) {
		c.n.Add(1)
	}
	return c.Handler.Handle(ctx, r)
}

func (c *counter) WithAttrs(as []slog.Attr) slog.Handler {
	return &counter{Handler: c.Handler.WithAttrs(as), prefix: c.prefix, n: c.n}
}

func (c *counter) WithGroup(name string) slog.Handler {
	return &counter{Handler: c.Handler.WithGroup(name), prefix: c.prefix, n: c.n}
}
