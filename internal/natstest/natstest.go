// Package natstest starts real NATS servers for tests: miniray's embedded server on a
// random loopback port and a temporary store, with the stream and bucket provisioned.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
)

// Server is a running test server and a client connected to it.
type Server struct {
	*events.Server
	Dir string
	NC  *nats.Conn
	JS  jetstream.JetStream
}

// Start starts a server with the default store configuration, or c if given, and
// stops it when the test ends.
func Start(tb testing.TB, c ...events.StoreConfig) *Server {
	tb.Helper()
	dir := tb.TempDir()
	return StartIn(tb, dir, c...)
}

// StartIn starts a server on the store in dir, for tests that restart one.
func StartIn(tb testing.TB, dir string, c ...events.StoreConfig) *Server {
	tb.Helper()
	srv, err := events.StartServer(events.ServerConfig{
		Listen:       "127.0.0.1:-1",
		DataDir:      dir,
		ReadyTimeout: 30 * time.Second,
	})
	if err != nil {
		tb.Fatalf("start nats server: %v", err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		tb.Fatalf("connect: %v", err)
	}
	s := &Server{Server: srv, Dir: dir, NC: nc}
	tb.Cleanup(s.Stop)

	s.JS, err = jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	cfg := events.DefaultStoreConfig()
	if len(c) > 0 {
		cfg = c[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := events.Provision(ctx, s.JS, cfg); err != nil {
		tb.Fatalf("provision: %v", err)
	}
	return s
}

// Stop closes the client and shuts the server down; calling it twice is harmless.
func (s *Server) Stop() {
	if s.NC.IsClosed() {
		return
	}
	s.NC.Close()
	s.Shutdown()
}

// Events returns every event on the server's stream, in stream order. It gives a
// stream of a few hundred thousand events the time it takes on a slow machine.
func (s *Server) Events(t testing.TB) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := s.JS.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// One iterator for the whole read: Next on the consumer would fetch one message
	// per request.
	it, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	out := make([]events.Event, 0, info.State.Msgs)
	for range info.State.Msgs {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("read event %d of %d: %v", len(out)+1, info.State.Msgs, err)
		}
		e, err := events.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TaskEvents is the events of one task, in stream order.
type TaskEvents struct {
	ID     string
	Events []events.Event
}

// Count returns how many of the task's events have type et.
func (k *TaskEvents) Count(et events.Type) int {
	n := 0
	for _, e := range k.Events {
		if e.EventType == et {
			n++
		}
	}
	return n
}

// Last returns the task's last event of type et, or false.
func (k *TaskEvents) Last(et events.Type) (events.Event, bool) {
	for i := len(k.Events) - 1; i >= 0; i-- {
		if k.Events[i].EventType == et {
			return k.Events[i], true
		}
	}
	return events.Event{}, false
}

// ByName groups events by task, keyed by task name, for tests that give every
// task a name of its own.
func ByName(evs []events.Event) map[string]*TaskEvents {
	out := make(map[string]*TaskEvents)
	for _, e := range evs {
		k := out[e.Name]
		if k == nil {
			k = &TaskEvents{ID: e.TaskID}
			out[e.Name] = k
		}
		k.Events = append(k.Events, e)
	}
	return out
}
