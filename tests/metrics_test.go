package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
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

// samples are the values of one scrape, by series: the metric name and its labels
// sorted by name, as in miniray_tasks{status="LOST"}.
type samples map[string]float64

// seriesKey names one series of a metric; labels are name/value pairs.
func seriesKey(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	pairs := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// parseSamples reads the Prometheus text format: comment lines, and lines of a
// name, optional {labels} and a value.
func parseSamples(text string) (samples, error) {
	out := samples{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		name, rest := line[:i], line[i:]
		var labels []string
		if strings.HasPrefix(rest, "{") {
			var err error
			labels, rest, err = parseLabels(rest[1:])
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, line)
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", line, err)
		}
		out[seriesKey(name, labels...)] = v
	}
	return out, nil
}

// parseLabels reads name="value" pairs up to the closing brace and returns them and
// what follows the brace.
func parseLabels(s string) (pairs []string, rest string, err error) {
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return pairs, s[1:], nil
		}
		eq := strings.Index(s, `="`)
		if eq < 0 {
			return nil, "", fmt.Errorf("bad label at %q", s)
		}
		name := s[:eq]
		s = s[eq+1:]
		quoted, err := strconv.QuotedPrefix(s)
		if err != nil {
			return nil, "", fmt.Errorf("label %s: %w", name, err)
		}
		value, _ := strconv.Unquote(quoted)
		pairs = append(pairs, name, value)
		s = s[len(quoted):]
	}
}

// scrapeSamples scrapes url and parses what it serves.
func scrapeSamples(t *testing.T, url string) samples {
	t.Helper()
	body, err := scrape(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	m, err := parseSamples(body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return m
}

// get returns a series' value, or fails the test if the scrape lacks it.
func (m samples) get(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := m[seriesKey(name, labels...)]
	if !ok {
		t.Fatalf("no series %s in the scrape", seriesKey(name, labels...))
	}
	return v
}

// want fails the test unless a series has the value want.
func (m samples) want(t *testing.T, where string, want float64, name string, labels ...string) {
	t.Helper()
	if got := m.get(t, name, labels...); got != want {
		t.Errorf("%s: got %s %v, want %v", where, seriesKey(name, labels...), got, want)
	}
}

// checkRequests checks the histogram of the HTTP requests of one route, method and
// code: n requests (at least n when atLeast), every one in the +Inf bucket, the
// buckets cumulative and a positive total time.
func (m samples) checkRequests(t *testing.T, where string, n float64, atLeast bool,
	route, method, code string) {
	t.Helper()
	const h = "miniray_http_request_duration_seconds"
	labels := []string{"route", route, "method", method, "code", code}
	count := m.get(t, h+"_count", labels...)
	if count != n && !(atLeast && count > n) {
		t.Errorf("%s: got %v %s %s requests answered %s, want %v", where, count, method,
			route, code, n)
	}
	if inf := m.get(t, h+"_bucket", append(labels, "le", "+Inf")...); inf != count {
		t.Errorf("%s: %s %s: +Inf bucket %v, count %v, want them equal", where, method, route,
			inf, count)
	}
	if sum := m.get(t, h+"_sum", labels...); sum <= 0 {
		t.Errorf("%s: %s %s: total time %v, want above 0", where, method, route, sum)
	}
	prev := 0.0
	for _, le := range []string{"0.0005", "0.005", "0.05", "1", "5", "+Inf"} {
		b := m.get(t, h+"_bucket", append(labels, "le", le)...)
		if b < prev {
			t.Errorf("%s: %s %s: bucket le=%s holds %v, below the %v of a smaller one",
				where, method, route, le, b, prev)
		}
		prev = b
	}
}

// streamCounts is what a projection must make of the stream: its last sequence,
// the events (task_lost among them), the heartbeats, and the messages on a subject
// that only garbage goes to.
type streamCounts struct {
	last                     uint64
	events, heartbeats, sunk int
	lostEvents               int
}

// TestMetricsScraped runs real jobs that reach the stream by each of the collector's
// paths (a job's own connection, the spool of a job that ran without NATS, the HTTP
// ingest, the watchdog's task_lost for a killed job), puts a message that is not an
// event on the stream, and scrapes both programs: every metric holds the value the
// stream and the requests made call for.
func TestMetricsScraped(t *testing.T) {
	const epochs = 5
	s := newSystem(t)

	// A job that runs while no NATS server exists leaves its events in the spool;
	// the collector sends them.
	spooled := parseSummary(t, run(t, "jobber", s.jobEnv(), "--steps", "5",
		"--name", "spooled-job"))
	if spooled.Spooled == 0 {
		t.Fatalf("jobber summary %+v, want its events spooled", spooled)
	}
	s.startCollectorWith("--lost-after", "1s", "--spool-scan", "200ms")
	col := "http://" + s.colHTTP
	eventually(t, "spooled events sent", 30*time.Second, func() error {
		body, err := scrape(col + "/metrics")
		want := fmt.Sprintf(`miniray_events_published_total{source="spool"} %d`, spooled.Spooled)
		if err == nil && !strings.Contains(body, want+"\n") {
			err = fmt.Errorf("no %q", want)
		}
		return err
	})
	s.startDashboard()
	d := s.dash()

	// A job through its own connection, and one killed, which the watchdog declares
	// lost.
	s.train("metrics-job", epochs)
	env := append(s.jobEnv(), "MINIRAY_HEARTBEAT_INTERVAL=200ms")
	lost := start(t, "jobber", env, "--steps", "100000", "--every", "10ms",
		"--name", "lost-job", "--task-id", "lost-job")
	d.waitTask("lost-job", "running", 30*time.Second, runningPast(10))
	eventually(t, "heartbeats of lost-job", 30*time.Second, func() error {
		if n, _ := d.fullStats()["heartbeats"].(float64); n < 2 {
			return fmt.Errorf("%v heartbeats applied", n)
		}
		return nil
	})
	lost.kill()
	d.waitTask("lost-job", "lost", 30*time.Second, hasStatus(projection.Lost))

	// A job's events over HTTP, and one refused request.
	httpEvents := postEvents(t, col)
	resp, err := http.Post(col+"/api/v1/events", "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("POST as text/plain: got %d, want 415", resp.StatusCode)
	}

	// A message that is not an event.
	const sink = "miniray.tasks.training.x.task_progress"
	nc, js := s.connect()
	if err := nc.Publish(sink, []byte("\x00 not JSON {")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d.waitTask("http-job", "completed", 30*time.Second, hasStatus(projection.Completed))
	var want streamCounts
	eventually(t, "the stream stored the garbage", 30*time.Second, func() error {
		want = countStream(t, js, sink)
		if want.sunk != 1 {
			return fmt.Errorf("%d messages on %s", want.sunk, sink)
		}
		return nil
	})
	d.waitCaughtUp(want.last)
	t.Logf("stream: %d messages, %d events (%d task_lost), %d heartbeats, %d garbage",
		want.last, want.events, want.lostEvents, want.heartbeats, want.sunk)
	if want.heartbeats == 0 || want.lostEvents != 1 {
		t.Fatalf("stream: %d heartbeats and %d task_lost, want some and one", want.heartbeats,
			want.lostEvents)
	}

	// Requests whose durations the dashboard must record.
	const lists = 7
	for range lists {
		if code, err := getJSON(t.Context(), s.url("/api/tasks?limit=1"), nil); code != 200 {
			t.Fatalf("list tasks: %d %v", code, err)
		}
	}
	if code, _ := getJSON(t.Context(), s.url("/api/tasks?bogus=1"), nil); code != 400 {
		t.Fatalf("list tasks with a bad parameter: got %d, want 400", code)
	}

	wantStatus := map[projection.Status]float64{projection.Completed: 3, projection.Lost: 1}
	for _, where := range []string{"collector", "dashboard"} {
		url := col + "/metrics"
		if where == "dashboard" {
			url = s.url("/metrics")
		}
		// The watchdog of the collector may still be reading the last message.
		var m samples
		eventually(t, where+" caught up", 30*time.Second, func() error {
			m = scrapeSamples(t, url)
			if got := m.get(t, "miniray_replay_applied_seq"); got != float64(want.last) {
				return fmt.Errorf("applied up to %v, want %d", got, want.last)
			}
			return nil
		})
		m.want(t, where, 1, "miniray_nats_connected")
		m.want(t, where, 1, "miniray_replay_ready")
		m.want(t, where, 0, "miniray_replay_lag_events")
		m.want(t, where, float64(want.events), "miniray_events_applied_total")
		m.want(t, where, float64(want.heartbeats), "miniray_heartbeats_applied_total")
		for _, kind := range projection.SkipKinds {
			n := 0.0
			if kind == projection.SkipMalformed {
				n = 1
			}
			m.want(t, where, n, "miniray_events_skipped_total", "kind", kind)
		}
		for _, kind := range projection.AdjustKinds {
			m.want(t, where, 0, "miniray_events_adjusted_total", "kind", kind)
		}
		for _, st := range projection.Statuses {
			m.want(t, where, wantStatus[st], "miniray_tasks", "status", string(st))
		}
		if where == "collector" {
			m.want(t, where, float64(spooled.Spooled), "miniray_events_published_total",
				"source", "spool")
			m.want(t, where, float64(httpEvents), "miniray_events_published_total",
				"source", "http")
			// A check that runs again before the watchdog read its own task_lost
			// publishes a copy, which JetStream drops but acknowledges.
			if n := m.get(t, "miniray_events_published_total", "source", "lost"); n < 1 || n > 5 {
				t.Errorf("collector: got %v task_lost published, want 1 (a few copies at most)", n)
			}
			m.checkRequests(t, where, 1, false, "/api/v1/events", "POST", "200")
			m.checkRequests(t, where, 1, false, "/api/v1/events", "POST", "415")
			m.checkRequests(t, where, 1, true, "/metrics", "GET", "200")
		} else {
			if _, ok := m[seriesKey("miniray_events_published_total", "source", "http")]; ok {
				t.Errorf("dashboard: got miniray_events_published_total, want it on the " +
					"collector only: the dashboard publishes no events")
			}
			m.checkRequests(t, where, lists, false, "/api/tasks", "GET", "200")
			m.checkRequests(t, where, 1, false, "/api/tasks", "GET", "400")
			m.checkRequests(t, where, 1, true, "/api/tasks/:id", "GET", "200")
		}
	}

	code, err := getJSON(context.Background(), col+"/readyz", nil)
	if err != nil || code != 200 {
		t.Fatalf("collector readyz: %d %v", code, err)
	}
}

// postEvents sends a short task's events to the collector's HTTP ingest and returns
// how many it sent.
func postEvents(t *testing.T, col string) int {
	t.Helper()
	var batch []json.RawMessage
	for _, et := range []events.Type{events.TaskSubmitted, events.TaskStarted,
		events.TaskCompleted} {
		e := events.New(et, "http-job", events.TypeTask, "http-job", events.Data{})
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, b)
	}
	body, _ := json.Marshal(batch)
	resp, err := http.Post(col+"/api/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ack map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil || resp.StatusCode != 200 ||
		ack["accepted"] != len(batch) {
		t.Fatalf("POST events: got %d %v (%v), want 200 with %d accepted", resp.StatusCode,
			ack, err, len(batch))
	}
	return len(batch)
}

// countStream reads every message of the stream and counts events, heartbeats and
// task_lost events by their subject, and the messages on sink apart.
func countStream(t *testing.T, js jetstream.JetStream, sink string) streamCounts {
	t.Helper()
	st := streamState(t, js)
	c := streamCounts{last: st.LastSeq}
	for _, m := range readStream(t, js, st.Msgs) {
		switch {
		case m.Subject == sink:
			c.sunk++
		case strings.HasSuffix(m.Subject, "."+string(events.TaskHeartbeat)):
			c.heartbeats++
		case strings.HasSuffix(m.Subject, "."+string(events.TaskLost)):
			c.lostEvents++
			c.events++
		default:
			c.events++
		}
	}
	return c
}
