package events

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/internal/certtest"
)

// TestInProcessTrustsOnlyItsOwnCertificate checks the TLS of in-process
// connections: the server's own certificate is accepted although no CA the system
// knows signed it, and another certificate is refused.
func TestInProcessTrustsOnlyItsOwnCertificate(t *testing.T) {
	own, other := loadPair(t, certtest.New(t)), loadPair(t, certtest.New(t))
	srv, err := StartServer(ServerConfig{
		Listen:       "127.0.0.1:0",
		DataDir:      t.TempDir(),
		ReadyTimeout: 30 * time.Second,
		TLS:          &tls.Config{Certificates: []tls.Certificate{own}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	nc, err := nats.Connect(srv.ClientURL(), srv.InProcess()...)
	if err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	// Over the network, pinned to another certificate, the server is refused.
	nc, err = nats.Connect(srv.ClientURL(), nats.Secure(pinned([]tls.Certificate{other})),
		nats.Timeout(5*time.Second))
	if err == nil {
		nc.Close()
		t.Fatal("connected to a server whose certificate is not the pinned one")
	}
}

func loadPair(t *testing.T, f certtest.Files) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
