package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// retryLog is the message the programs log each time NATS does not answer yet.
const retryLog = `msg="nats not reachable yet, retrying"`

// TestDashboardStartsBeforeNATS starts the dashboard while no NATS server exists.
// It serves at once: /healthz answers, /readyz says 503 and why, and it logs each
// try as a retry, never as an error. Once the collector starts, the dashboard
// connects by itself, becomes ready, and shows a job run afterwards.
func TestDashboardStartsBeforeNATS(t *testing.T) {
	const epochs = 5
	s := newSystem(t) // nothing listens on s.natsAddr yet
	d := s.launchDashboard(s.httpAddr)
	s.dashboard = d.proc

	eventually(t, "two retries logged", 60*time.Second, func() error {
		if n := strings.Count(d.proc.out.String(), retryLog); n < 2 {
			return fmt.Errorf("%d retries logged", n)
		}
		return nil
	})
	for line := range strings.Lines(d.proc.out.String()) {
		if strings.Contains(line, retryLog) && (!strings.Contains(line, "level=WARN") ||
			!strings.Contains(line, "component=dashboard") ||
			!strings.Contains(line, "url="+s.natsURL()) || !strings.Contains(line, "attempt=")) {
			t.Errorf("got retry line %q, want a warning of the dashboard with the url and "+
				"the attempt", line)
		}
	}

	var health map[string]any
	if code, err := getJSON(t.Context(), s.url("/healthz"), &health); code != 200 ||
		health["status"] != "ok" {
		t.Fatalf("healthz without NATS: got %d %v (%v), want 200 ok", code, health, err)
	}
	var ready map[string]any
	if code, err := getJSON(t.Context(), s.url("/readyz"), &ready); code != 503 ||
		ready["ready"] != false || ready["reason"] != "waiting for nats" {
		t.Fatalf("readyz without NATS: got %d %v (%v), want 503 waiting for nats", code,
			ready, err)
	}
	if d.proc.exited() {
		t.Fatalf("the dashboard exited without NATS: %v", d.proc.err)
	}

	s.startCollector()
	d.waitReady()
	s.train("after-nats", epochs)
	eventually(t, "the job on the dashboard", 30*time.Second, func() error {
		var stats map[string]any
		if _, err := getJSON(context.Background(), s.url("/api/stats"), &stats); err != nil {
			return err
		}
		if stats["total"] != 1.0 || stats["events_applied"] != float64(epochs+3) {
			return fmt.Errorf("stats %v", stats)
		}
		return nil
	})
	s.checkJobs(epochs, "after-nats")

	out := d.proc.out.String()
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("got errors logged while waiting for NATS, want retries only:\n%s", out)
	}
	connected := strings.Index(out, `msg="nats connected"`)
	if connected < 0 || connected < strings.LastIndex(out, retryLog) {
		t.Errorf("got no \"nats connected\" after the last retry:\n%s", out)
	}
}
