package tracking

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// queueOnly returns a client without a sender, for tests of the queue alone.
func queueOnly(size int, wait time.Duration, spool bool) *Client {
	c := &Client{
		cfg:    clientConfig{queueSize: size, publishWait: wait},
		log:    slog.New(slog.DiscardHandler),
		room:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		spillc: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	c.spoolDown.Store(!spool)
	return c
}

func queuedTypes(c *Client) []events.Type {
	var got []events.Type
	for _, r := range c.queue {
		h, err := parseHead(r.data, recordHead{})
		if err != nil {
			panic(err)
		}
		got = append(got, h.EventType)
	}
	return got
}

// newRecord returns the record of a new event of type et.
func newRecord(et events.Type) record {
	e := events.New(et, "t", events.TypeTask, "n", events.Data{})
	r, err := encodeEvent(&e)
	if err != nil {
		panic(err)
	}
	return r
}

func TestFullQueue(t *testing.T) {
	reported := []events.Type{events.TaskStarted, events.TaskProgress, events.TaskProgress,
		events.TaskProgress, events.TaskCompleted}
	for _, tc := range []struct {
		name    string
		spool   bool
		want    []events.Type
		dropped uint64
	}{
		{"without a spool, progress is dropped", false,
			[]events.Type{events.TaskStarted, events.TaskProgress, events.TaskCompleted}, 2},
		{"with a spool, nothing is dropped", true, reported, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := queueOnly(2, 0, tc.spool)
			for _, et := range reported {
				c.enqueue(newRecord(et))
			}
			if got := queuedTypes(c); !slices.Equal(got, tc.want) {
				t.Fatalf("queue: got %v, want %v", got, tc.want)
			}
			if c.Dropped() != tc.dropped || c.queued.Load() != uint64(len(tc.want)) {
				t.Fatalf("dropped %d queued %d, want %d and %d", c.Dropped(), c.queued.Load(),
					tc.dropped, len(tc.want))
			}
		})
	}
}

func TestFullQueueWaitsForRoom(t *testing.T) {
	progress := func() record { return newRecord(events.TaskProgress) }

	t.Run("no longer than the publish wait", func(t *testing.T) {
		const wait = 50 * time.Millisecond
		c := queueOnly(1, wait, false)
		c.enqueue(progress())
		start := time.Now()
		c.enqueue(progress())
		took := time.Since(start)
		if took < wait || took > wait+5*time.Second {
			t.Fatalf("a report on a full queue took %s, want the publish wait %s", took, wait)
		}
		if c.Dropped() != 1 {
			t.Fatalf("dropped %d, want 1", c.Dropped())
		}
	})

	t.Run("until the spool makes room", func(t *testing.T) {
		c := queueOnly(1, time.Hour, false)
		c.enqueue(progress())
		done := make(chan struct{})
		go func() {
			c.enqueue(progress())
			close(done)
		}()
		// Take the first event off once the report waits, as the spiller would.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c.qmu.Lock()
			waiting := c.waiters > 0
			if waiting {
				c.removeHead(1)
			}
			c.qmu.Unlock()
			if waiting {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the report never waited")
			}
			time.Sleep(time.Millisecond)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the report still waits after room was made")
		}
		if c.Dropped() != 0 || c.queued.Load() != 2 || len(c.queue) != 1 {
			t.Fatalf("dropped %d queued %d, %d in the queue; want 0, 2 and 1", c.Dropped(),
				c.queued.Load(), len(c.queue))
		}
	})
}

func TestPublishWaitFromEnv(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", DefaultPublishWait},
		{"250ms", 250 * time.Millisecond},
		{"0s", 0},
		{"soon", DefaultPublishWait},
		{"-1s", DefaultPublishWait},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("MINIRAY_PUBLISH_WAIT", tc.value)
			if got := publishWaitFromEnv(); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
