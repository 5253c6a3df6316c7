package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/internal/certtest"
	"github.com/miniray/miniray/pkg/projection"
)

// TestCollectorServesTLS runs the collector's embedded server with a certificate of
// a CA that the system does not trust: the collector still reaches its own server
// (its watchdog and ingest work), a job and a dashboard that trust the CA connect
// over TLS, and a client without TLS is refused.
func TestCollectorServesTLS(t *testing.T) {
	certs := certtest.New(t)
	s := newSystem(t)
	start(t, "collector", nil, "--data-dir", s.dataDir, "--nats-listen", s.natsAddr,
		"--spool-dir", s.spoolDir, "--http", s.colHTTP,
		"--nats-tls-cert", certs.Cert, "--nats-tls-key", certs.Key)
	eventually(t, "collector ready", 30*time.Second, func() error {
		code, err := getJSON(t.Context(), "http://"+s.colHTTP+"/readyz", nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("readyz: %d", code)
		}
		return err
	})

	if nc, err := nats.Connect(s.natsURL(), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without TLS connected")
	}

	url := "tls://" + s.natsAddr
	run(t, "jobber", []string{"MINIRAY_NATS_URL=" + url, "MINIRAY_NATS_CA=" + certs.CA,
		"MINIRAY_SPOOL_DIR=" + s.spoolDir}, "--name", "over-tls", "--task-id", "over-tls",
		"--steps", "20")
	s.dashboard = start(t, "dashboard", nil, "--nats-url", url, "--nats-ca", certs.CA,
		"--http", s.httpAddr, "--flush-interval", "50ms")
	task := s.dash().waitTask("over-tls", "completed", 30*time.Second,
		hasStatus(projection.Completed))
	if task.Progress.Step != 20 {
		t.Fatalf("step %d, want 20", task.Progress.Step)
	}
}
