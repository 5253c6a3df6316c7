package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func scrape(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return string(b), err
}

// TestMetricsScraped scrapes both programs after a job and checks what they report.
func TestMetricsScraped(t *testing.T) {
	s := newSystem(t)
	s.startCollector()
	s.train("metrics-job", 5)
	s.startDashboard()

	want := map[string][]string{
		"http://" + s.colHTTP + "/metrics": {
			"miniray_nats_connected 1",
			"miniray_replay_ready 1",
			`miniray_tasks{status="COMPLETED"} 1`,
			"miniray_events_applied_total 8",
			"miniray_replay_lag_events 0",
			"miniray_lost_published_total 0",
			"miniray_spool_events_sent_total 0",
		},
		s.url("/metrics"): {
			"miniray_nats_connected 1",
			"miniray_replay_ready 1",
			`miniray_tasks{status="COMPLETED"} 1`,
			"miniray_events_applied_total 8",
			"miniray_replay_lag_events 0",
			`route="/api/tasks"`,
		},
	}
	s.tasks() // one request, for the HTTP histogram
	for url, lines := range want {
		eventually(t, "metrics at "+url, 20*time.Second, func() error {
			body, err := scrape(url)
			if err != nil {
				return err
			}
			for _, l := range lines {
				if !strings.Contains(body, l) {
					return fmt.Errorf("no %q", l)
				}
			}
			return nil
		})
	}

	code, err := getJSON(context.Background(), "http://"+s.colHTTP+"/readyz", nil)
	if err != nil || code != 200 {
		t.Fatalf("collector readyz: %d %v", code, err)
	}
}
