package tracking_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

// TestRefusedCredentialsSaySo runs a job whose password the server refuses: the job
// still completes, its events are spooled, and the log says that the credentials
// were refused, since waiting for the server will not help.
func TestRefusedCredentialsSaySo(t *testing.T) {
	srv, err := events.StartServer(events.ServerConfig{
		Listen:       "127.0.0.1:0",
		DataDir:      t.TempDir(),
		ReadyTimeout: 30 * time.Second,
		Passwords:    events.Passwords{Admin: "admin-secret", Job: "job-secret"},
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(srv.Shutdown)

	logger, logged := recordLogs(t)
	c, err := tracking.Connect(srv.ClientURL(), tracking.WithLogger(logger),
		tracking.WithSpoolDir(t.TempDir()),
		tracking.WithNATSOptions(nats.UserInfo(events.UserJob, "wrong")))
	if err != nil {
		t.Fatal(err)
	}
	job := tracking.Training(func(ctx context.Context, n int) (int, error) {
		return n * 2, nil
	}, tracking.WithClient(c), tracking.WithName("refused"))
	if got, err := job(t.Context(), 21); got != 42 || err != nil {
		t.Fatalf("job returned %d, %v; want 42, nil", got, err)
	}

	// A job this short ends before any retry of the connection: by the time Close
	// returns, the log must still say why the events stayed in the spool.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c.Close(ctx)
	if !logged("nats refused the job's credentials") {
		t.Fatal("no log line says the credentials were refused")
	}
	if c.Spooled() == 0 {
		t.Error("nothing spooled, want the job's events kept for later")
	}
}
