package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// fakeReplay is a replay at a given stream position.
type fakeReplay struct {
	ready bool
	last  uint64
}

func (r fakeReplay) Ready() bool           { return r.ready }
func (r fakeReplay) StreamLastSeq() uint64 { return r.last }

// scrape serves reg once and returns the lines of the metrics named miniray_*.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200", rec.Code)
	}
	var lines []string
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "miniray_") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return strings.Join(lines, "\n")
}

func checkLines(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains("\n"+got+"\n", "\n"+w+"\n") {
			t.Errorf("got no line %q in:\n%s", w, got)
		}
	}
}

func TestProjectionMetrics(t *testing.T) {
	p := projection.New(nil)
	for i, et := range []events.Type{events.TaskSubmitted, events.TaskStarted} {
		e := events.New(et, "a", events.TypeTraining, "a", events.Data{})
		p.Apply(uint64(i+1), &e)
	}
	p.ApplyMsg(3, "miniray.tasks.training.x.task_progress", []byte("not JSON"), time.Now())

	var replay ReplayState // none yet
	reg := NewRegistry()
	RegisterProjection(reg, p, func() ReplayState { return replay })
	checkLines(t, scrape(t, reg),
		"miniray_events_applied_total 2",
		`miniray_events_skipped_total{kind="malformed"} 1`,
		`miniray_events_skipped_total{kind="duplicate"} 0`,
		`miniray_tasks{status="RUNNING"} 1`,
		`miniray_tasks{status="COMPLETED"} 0`,
		"miniray_replay_applied_seq 3",
		"miniray_replay_lag_events 0",
		"miniray_replay_ready 0",
	)

	replay = fakeReplay{last: 10}
	checkLines(t, scrape(t, reg), "miniray_replay_lag_events 7", "miniray_replay_ready 0")
	replay = fakeReplay{ready: true, last: 3}
	checkLines(t, scrape(t, reg), "miniray_replay_lag_events 0", "miniray_replay_ready 1")
	// A stream that lost messages (max_age) may end before what was applied.
	replay = fakeReplay{ready: true, last: 1}
	checkLines(t, scrape(t, reg), "miniray_replay_lag_events 0")
}

func TestPublishedStartsAtZero(t *testing.T) {
	reg := NewRegistry()
	c := RegisterPublished(reg)
	checkLines(t, scrape(t, reg),
		`miniray_events_published_total{source="http"} 0`,
		`miniray_events_published_total{source="lost"} 0`,
		`miniray_events_published_total{source="spool"} 0`,
	)
	c.WithLabelValues(SourceSpool).Add(8)
	checkLines(t, scrape(t, reg), `miniray_events_published_total{source="spool"} 8`)
}

func TestNATSConnected(t *testing.T) {
	reg := NewRegistry()
	RegisterNATS(reg, func() *nats.Conn { return nil })
	checkLines(t, scrape(t, reg), "miniray_nats_connected 0")
}

func TestHTTPDurationsByRoute(t *testing.T) {
	reg := NewRegistry()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(HTTP(reg))
	r.GET("/tasks/:id", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	for _, path := range []string{"/tasks/a", "/tasks/b", "/no/such/path"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Made-up methods are counted together, not as a series each.
	for _, m := range []string{"Q1", "Q2", "BREW"} {
		req, _ := http.NewRequest(m, srv.URL+"/tasks/a", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	out := scrape(t, reg)
	checkLines(t, out,
		`miniray_http_request_duration_seconds_count{code="200",method="GET",route="/tasks/:id"} 2`,
		`miniray_http_request_duration_seconds_count{code="404",method="GET",route="unmatched"} 1`,
		`miniray_http_request_duration_seconds_count{code="404",method="other",route="unmatched"} 3`,
	)
	if strings.Contains(out, `method="Q1"`) {
		t.Fatal("a made-up method has a series of its own")
	}
}
