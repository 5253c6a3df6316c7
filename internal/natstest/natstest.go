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
