package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
)

// ingestServer is the ingest handler on a real HTTP server, publishing to a real
// embedded NATS server.
type ingestServer struct {
	url  string
	nats *natstest.Server
	ing  *ingest
	h    http.Handler
}

func newIngestServer(tb testing.TB, maxBytes int64) *ingestServer {
	tb.Helper()
	srv := natstest.Start(tb)
	ing := newIngest(maxBytes, slog.New(slog.DiscardHandler))
	if err := ing.attach(srv.NC); err != nil {
		tb.Fatal(err)
	}
	h := ingestHandler(ing)
	hs := httptest.NewServer(h)
	tb.Cleanup(hs.Close)
	return &ingestServer{url: hs.URL + IngestPath, nats: srv, ing: ing, h: h}
}

func ingestHandler(ing *ingest) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.POST(IngestPath, ing.handle)
	return r
}

// ingestReply is a decoded answer of the ingest.
type ingestReply struct {
	code       int
	Events     int    `json:"events"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Error      string `json:"error"`
	Index      *int   `json:"index"`
	Field      string `json:"field"`
}

func (s *ingestServer) post(t *testing.T, contentType string, body []byte) ingestReply {
	t.Helper()
	resp, err := http.Post(s.url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decodeReply(t, resp.StatusCode, resp.Body)
}

func decodeReply(t *testing.T, code int, r io.Reader) ingestReply {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	rep := ingestReply{code: code}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %q", code, err, raw)
	}
	if code >= 400 && rep.Error == "" {
		t.Fatalf("answer %d without an error message: %s", code, raw)
	}
	return rep
}

// stored returns how many messages the stream holds.
func (s *ingestServer) stored(tb testing.TB) uint64 {
	tb.Helper()
	st, err := s.nats.JS.Stream(tb.Context(), events.StreamName)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Msgs
}

// lifecycle returns the events of one completed training task.
func lifecycle(taskID string) []events.Event {
	step, total := int64(1), int64(1)
	return []events.Event{
		events.New(events.TaskSubmitted, taskID, events.TypeTraining, "ingest test",
			events.Data{Description: "from HTTP"}),
		events.New(events.TaskStarted, taskID, events.TypeTraining, "ingest test", events.Data{}),
		events.New(events.TaskProgress, taskID, events.TypeTraining, "ingest test",
			events.Data{Step: &step, Total: &total, Metrics: events.Metrics{"loss": 0.5}}),
		events.New(events.TaskCompleted, taskID, events.TypeTraining, "ingest test",
			events.Data{Result: json.RawMessage(`{"accuracy":0.95}`)}),
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func ndjson(tb testing.TB, evs []events.Event) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, e := range evs {
		b.Write(mustJSON(tb, e))
		b.WriteString("\r\n\n")
	}
	return b.Bytes()
}

func TestIngestAcceptsEveryShape(t *testing.T) {
	s := newIngestServer(t, defaultIngestMaxBytes)
	one := lifecycle("training_one")[0]
	cases := []struct {
		name, ct string
		body     []byte
		want     int
	}{
		{"object", "application/json", mustJSON(t, one), 1},
		{"array", "application/json; charset=utf-8", mustJSON(t, lifecycle("training_arr")), 4},
		{"charset in any case", "application/json; charset=Utf-8",
			mustJSON(t, lifecycle("training_cs")), 4},
		{"ndjson", "application/x-ndjson", ndjson(t, lifecycle("training_nd")), 4},
	}
	var total uint64
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := s.post(t, c.ct, c.body)
			if rep.code != http.StatusOK || rep.Accepted != c.want || rep.Duplicates != 0 ||
				rep.Events != c.want {
				t.Fatalf("got %+v, want 200 with %d accepted", rep, c.want)
			}
			total += uint64(c.want)
			if got := s.stored(t); got != total {
				t.Fatalf("got %d messages in the stream, want %d", got, total)
			}
		})
	}

	evs := s.nats.Events(t)
	if evs[0].EventID != one.EventID || evs[0].Subject() != one.Subject() {
		t.Fatalf("got %+v, want %+v", evs[0], one)
	}
}

func TestIngestRetryDoublesNothing(t *testing.T) {
	s := newIngestServer(t, defaultIngestMaxBytes)
	body := mustJSON(t, lifecycle("training_retry"))
	first := s.post(t, "application/json", body)
	if first.code != http.StatusOK || first.Accepted != 4 {
		t.Fatalf("got %+v, want 4 accepted", first)
	}

	again := s.post(t, "application/json", body)
	if again.code != http.StatusOK || again.Accepted != 0 || again.Duplicates != 4 {
		t.Fatalf("retry: got %+v, want 4 duplicates", again)
	}
	if got := s.stored(t); got != 4 {
		t.Fatalf("got %d messages in the stream, want 4", got)
	}
}

func TestIngestBadEventPublishesNothing(t *testing.T) {
	s := newIngestServer(t, defaultIngestMaxBytes)
	for _, id := range []string{"a.b", "a*", "a>", "a b", "", "ä", strings.Repeat("x", 129)} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			evs := lifecycle("training_good")
			evs[2].TaskID = id
			rep := s.post(t, "application/json", mustJSON(t, evs))
			if rep.code != http.StatusBadRequest || rep.Index == nil || *rep.Index != 2 ||
				rep.Field != "task_id" {
				t.Fatalf("got %+v, want 400 naming task_id of event 2", rep)
			}
			if got := s.stored(t); got != 0 {
				t.Fatalf("got %d messages in the stream, want none", got)
			}
		})
	}
}

func TestIngestNamesTheBadField(t *testing.T) {
	s := newIngestServer(t, defaultIngestMaxBytes)
	good := string(mustJSON(t, lifecycle("training_x")[0]))
	cases := []struct {
		name, body, field string
		index             int
	}{
		{"event type", `[` + good + `,` + strings.Replace(good, "task_submitted", "task_boom", 1) +
			`]`, "event_type", 1},
		{"timestamp", strings.Replace(good, `"timestamp":`, `"timestamp":1,"x":`, 1), "timestamp", 0},
		{"type of a field", strings.Replace(good, `"name":"ingest test"`, `"name":7`, 1), "name", 0},
		{"metric", strings.Replace(good, `"data":{`, `"data":{"metrics":{"m":"x"},`, 1),
			"data", 0},
		{"step", strings.Replace(good, `"data":{`, `"data":{"step":"x",`, 1), "data.step", 0},
		{"data not an object", strings.Replace(good, `"data":{`, `"data":[1],"x":{`, 1),
			"data", 0},
		{"parent", strings.Replace(good, `"data":{`, `"data":{"parent_id":"p.*",`, 1),
			"data.parent_id", 0},
		{"lost", strings.Replace(good, "task_submitted", "task_lost", 1), "event_type", 0},
		{"negative step", strings.Replace(good, `"data":{`, `"data":{"step":-1,`, 1),
			"data.step", 0},
		{"negative total", strings.Replace(good, `"data":{`, `"data":{"total":-5,`, 1),
			"data.total", 0},
		{"metric name", strings.Replace(good, `"data":{`, `"data":{"metrics":{"":1},`, 1),
			"data.metrics", 0},
		{"long host", strings.Replace(good, `"data":{`, `"data":{"host":"`+
			strings.Repeat("h", 2000)+`",`, 1), "data.host", 0},
		{"long attempt", strings.Replace(good, `"data":{`, `"data":{"attempt":"`+
			strings.Repeat("a", 2000)+`",`, 1), "data.attempt", 0},
		{"long metric name", strings.Replace(good, `"data":{`, `"data":{"metrics":{"`+
			strings.Repeat("m", 2000)+`":1},`, 1), "data.metrics", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := s.post(t, "application/json", []byte(c.body))
			if rep.code != http.StatusBadRequest || rep.Index == nil || *rep.Index != c.index ||
				rep.Field != c.field {
				t.Fatalf("got %+v, want 400 naming %s of event %d", rep, c.field, c.index)
			}
		})
	}
	if got := s.stored(t); got != 0 {
		t.Fatalf("got %d messages in the stream, want none", got)
	}
}

func TestIngestRefusesBadBodies(t *testing.T) {
	s := newIngestServer(t, defaultIngestMaxBytes)
	good := mustJSON(t, lifecycle("training_x")[0])
	deep := strings.Replace(string(good), `"data":{`,
		`"data":{"params":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+",", 1)
	cases := []struct {
		name, ct string
		body     []byte
		want     int
		encoding string
	}{
		{"text", "text/plain", good, http.StatusUnsupportedMediaType, ""},
		{"form", "application/x-www-form-urlencoded", good, http.StatusUnsupportedMediaType, ""},
		{"no content type", "", good, http.StatusUnsupportedMediaType, ""},
		{"latin-1", "application/json; charset=iso-8859-1", good, http.StatusUnsupportedMediaType, ""},
		{"invalid utf-8", "application/json",
			bytes.Replace(good, []byte("ingest test"), []byte("ingest \xff\xfe"), 1),
			http.StatusBadRequest, ""},
		{"deep nesting", "application/json", []byte(deep), http.StatusBadRequest, ""},
		{"deep garbage", "application/x-ndjson", []byte(strings.Repeat("{[", 1e5)),
			http.StatusBadRequest, ""},
		{"empty", "application/json", nil, http.StatusBadRequest, ""},
		{"empty array", "application/json", []byte(" [] "), http.StatusBadRequest, ""},
		{"blank lines", "application/x-ndjson", []byte("\n \n"), http.StatusBadRequest, ""},
		{"not json", "application/json", []byte("{nope"), http.StatusBadRequest, ""},
		{"trailing data", "application/json", append(good, " {}"...), http.StatusBadRequest, ""},
		{"number", "application/json", []byte("42"), http.StatusBadRequest, ""},
		{"array in ndjson", "application/x-ndjson", append([]byte("["), append(good, ']')...),
			http.StatusBadRequest, ""},
		{"array of numbers", "application/json", []byte("[1]"), http.StatusBadRequest, ""},
		{"gzip", "application/json", good, http.StatusUnsupportedMediaType, "gzip"},
		{"byte order mark", "application/json", append([]byte("\xef\xbb\xbf"), good...),
			http.StatusBadRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			if c.encoding != "" {
				req.Header.Set("Content-Encoding", c.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if rep := decodeReply(t, resp.StatusCode, resp.Body); rep.code != c.want {
				t.Fatalf("got %d %q, want %d", rep.code, rep.Error, c.want)
			}
		})
	}
	if got := s.stored(t); got != 0 {
		t.Fatalf("got %d messages in the stream, want none", got)
	}

	// Nesting within the limit is an event like any other.
	ok := strings.Replace(string(good), `"data":{`,
		`"data":{"params":{"a":`+strings.Repeat("[", 50)+strings.Repeat("]", 50)+"},", 1)
	if rep := s.post(t, "application/json", []byte(ok)); rep.code != http.StatusOK {
		t.Fatalf("nesting of 53 levels: got %+v, want 200", rep)
	}
}

func TestIngestBodyLimit(t *testing.T) {
	s := newIngestServer(t, 4<<10)
	var evs []events.Event
	for i := range 40 {
		evs = append(evs, lifecycle(fmt.Sprintf("training_%d", i))...)
	}
	body := mustJSON(t, evs)
	if rep := s.post(t, "application/json", body); rep.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %+v, want 413", rep)
	}

	// Without a Content-Length the limit holds while reading.
	resp, err := http.Post(s.url, "application/x-ndjson", io.MultiReader(bytes.NewReader(
		ndjson(t, evs))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if rep := decodeReply(t, resp.StatusCode, resp.Body); rep.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: got %+v, want 413", rep)
	}
	if got := s.stored(t); got != 0 {
		t.Fatalf("got %d messages in the stream, want none", got)
	}
	if rep := s.post(t, "application/json", mustJSON(t, evs[:4])); rep.code != http.StatusOK {
		t.Fatalf("small batch: got %+v, want 200", rep)
	}
}

func TestIngestWithoutNATS(t *testing.T) {
	body := mustJSON(t, lifecycle("training_down"))

	// Before the store is provisioned, nothing is published.
	early := newIngest(defaultIngestMaxBytes, slog.New(slog.DiscardHandler))
	hs := httptest.NewServer(ingestHandler(early))
	t.Cleanup(hs.Close)
	resp, err := http.Post(hs.URL+IngestPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if rep := decodeReply(t, resp.StatusCode, resp.Body); rep.code != http.StatusServiceUnavailable {
		t.Fatalf("before attach: got %+v, want 503", rep)
	}

	s := newIngestServer(t, defaultIngestMaxBytes)
	s.nats.Shutdown()
	if rep := s.post(t, "application/json", body); rep.code != http.StatusServiceUnavailable {
		t.Fatalf("server down: got %+v, want 503", rep)
	}
	// Bad input is still bad input.
	if rep := s.post(t, "text/plain", body); rep.code != http.StatusUnsupportedMediaType {
		t.Fatalf("server down, bad content type: got %+v, want 415", rep)
	}
}

func TestIngestMaxBytesSetting(t *testing.T) {
	cfg, err := loadConfig(nil, io.Discard)
	if err != nil || cfg.ingestMaxBytes != 4<<20 {
		t.Fatalf("got %d %v, want 4 MiB", cfg.ingestMaxBytes, err)
	}
	t.Setenv("MINIRAY_INGEST_MAX_BYTES", "65536")
	if cfg, err = loadConfig(nil, io.Discard); err != nil || cfg.ingestMaxBytes != 65536 {
		t.Fatalf("env: got %d %v, want 65536", cfg.ingestMaxBytes, err)
	}
	for _, v := range []string{"0", "-1", "1.5", "big", "1073741824"} {
		if _, err := loadConfig([]string{"--ingest-max-bytes", v}, io.Discard); err == nil {
			t.Errorf("ingest_max_bytes %s accepted", v)
		}
	}
}

// FuzzIngest posts any body with any content type to the ingest on a real server:
// it never panics, never answers 5xx while NATS is up, publishes nothing when it
// refuses, and publishes exactly what it counts when it accepts. The server's own
// goroutines make coverage noisy, so that nearly every input looks new: fuzz with
// -fuzzminimizetime 0, or the worker spends its time minimizing.
func FuzzIngest(f *testing.F) {
	good := lifecycle("training_fuzz")
	f.Add("application/json", mustJSON(f, good[0]))
	f.Add("application/json", mustJSON(f, good))
	f.Add("application/x-ndjson", ndjson(f, good))
	f.Add("application/json", []byte(`[{"event_id":"e","task_id":"t.*"}]`))
	f.Add("application/json", []byte(`{"data":{"metrics":{"m":"NaN"}}}`))
	f.Add("application/json", []byte(strings.Repeat("[", 70)))
	f.Add("text/plain", []byte("hello"))
	f.Add("application/json; charset=\"utf-8\"", []byte("\xff"))
	f.Add("application/x-ndjson", []byte("{}\n{\"event_id\":1}\n"))

	s := newIngestServer(f, 64<<10)
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		before := s.stored(t)
		req := httptest.NewRequest(http.MethodPost, IngestPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)

		rep := decodeReply(t, rec.Code, rec.Body)
		after := s.stored(t)
		switch {
		case rep.code >= 500:
			t.Fatalf("got %d %q with NATS up", rep.code, rep.Error)
		case rep.code >= 400 && after != before:
			t.Fatalf("answered %d but the stream grew from %d to %d", rep.code, before, after)
		case rep.code == http.StatusOK:
			if rep.Accepted+rep.Duplicates != rep.Events || rep.Events == 0 {
				t.Fatalf("counts do not add up: %+v", rep)
			}
			if after-before != uint64(rep.Accepted) {
				t.Fatalf("accepted %d, but the stream grew by %d", rep.Accepted, after-before)
			}
		case rep.code != http.StatusOK && rep.code < 400:
			t.Fatalf("got %d, want 200 or an error", rep.code)
		}
	})
}
