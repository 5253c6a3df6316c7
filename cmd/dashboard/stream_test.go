package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// sseMsg is one event or comment read from a stream.
type sseMsg struct {
	event, data, comment, retry string
}

// openStream connects to an event stream and returns its messages as they come;
// the channel closes when the stream ends. The connection closes with the test.
func openStream(tb testing.TB, url string) (<-chan sseMsg, *http.Response) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan sseMsg, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				ch <- m
				m = sseMsg{}
			case strings.HasPrefix(line, ":"):
				m.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "event":
					m.event = v
				case "data":
					m.data = v
				case "retry":
					m.retry = v
				}
			}
		}
	}()
	return ch, resp
}

// nextChange returns the next change event of a stream, skipping other messages.
func nextChange(tb testing.TB, ch <-chan sseMsg, within time.Duration) changeEvent {
	tb.Helper()
	timeout := time.After(within)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				tb.Fatal("stream ended, want a change event")
			}
			if m.event != "change" {
				continue
			}
			var ev changeEvent
			if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
				tb.Fatalf("change event data %q: %v", m.data, err)
			}
			return ev
		case <-timeout:
			tb.Fatalf("no change event within %s", within)
		}
	}
}

func TestStreamSendsChanges(t *testing.T) {
	srv, p := newTestServer(t)
	ch, resp := openStream(t, srv.URL+"/api/stream")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("got Content-Type %q, want text/event-stream", ct)
	}
	if m := <-ch; m.retry == "" {
		t.Fatalf("got first message %+v, want a retry delay", m)
	}

	first := nextChange(t, ch, 2*time.Second)
	if first.Stats.Total != 0 || first.Stats.Replay.Reason != "waiting for nats" {
		t.Fatalf("got first event %+v, want the stats of an empty projection", first)
	}
	addTask(p, "a", events.TypeTraining, events.TaskCompleted)
	ev := nextChange(t, ch, 2*time.Second)
	if ev.Version <= first.Version || ev.Stats.Total != 1 || ev.Stats.ByStatus["COMPLETED"] != 1 {
		t.Fatalf("got %+v after a task completed, want version > %d and the task counted",
			ev, first.Version)
	}
}

func TestStreamCoalescesChanges(t *testing.T) {
	srv, p := newTestServer(t)
	ch, _ := openStream(t, srv.URL+"/api/stream")
	nextChange(t, ch, 2*time.Second)

	// 200 changes within about a second make a handful of events, not 200.
	for i := range 200 {
		addTask(p, "t"+string(rune('a'+i%26))+strings.Repeat("x", i/26), events.TypeTraining, "")
		time.Sleep(5 * time.Millisecond)
	}
	n := 0
	var last changeEvent
	deadline := time.After(time.Second)
	for done := false; !done; {
		select {
		case m := <-ch:
			if m.event == "change" {
				n++
				json.Unmarshal([]byte(m.data), &last)
			}
		case <-deadline:
			done = true
		}
	}
	if max := int(2*time.Second/streamInterval) + 2; n == 0 || n > max {
		t.Errorf("got %d events for 200 changes, want 1 to %d", n, max)
	}
	if last.Stats.Total != 200 {
		t.Errorf("got a last event with %d tasks, want 200", last.Stats.Total)
	}
}

func TestStreamKeepsAliveAndRefusesQueries(t *testing.T) {
	p := projection.New(nil)
	r := gin.New()
	ss := newStreams()
	ss.keepAlive = 50 * time.Millisecond
	r.GET("/api/stream", streamChanges(&state{proj: p}, ss))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	ch, _ := openStream(t, srv.URL+"/api/stream")
	timeout := time.After(2 * time.Second)
	for got := false; !got; {
		select {
		case m := <-ch:
			got = m.comment == "keep-alive"
		case <-timeout:
			t.Fatal("no keep-alive comment within 2s")
		}
	}

	code, _, body := get(t, srv.URL+"/api/stream?since=3")
	if code != http.StatusBadRequest || body["error"] == nil {
		t.Errorf("stream with a query: got %d %v, want 400", code, body)
	}
}

// TestStreamSurvivesWriteTimeoutAndEndsOnShutdown runs the router in a real
// http.Server with a short write timeout: the stream outlives it, and Shutdown
// returns at once instead of waiting for the open stream.
func TestStreamSurvivesWriteTimeoutAndEndsOnShutdown(t *testing.T) {
	p := projection.New(nil)
	srv := &http.Server{
		Handler:      newRouter(&state{proj: p}, slog.New(slog.DiscardHandler)),
		WriteTimeout: 300 * time.Millisecond,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	ch, _ := openStream(t, "http://"+ln.Addr().String()+"/api/stream")
	nextChange(t, ch, 2*time.Second)
	time.Sleep(600 * time.Millisecond) // twice the write timeout
	addTask(p, "late", events.TypeTraining, "")
	if ev := nextChange(t, ch, 2*time.Second); ev.Stats.Total != 1 {
		t.Fatalf("got %+v after the write timeout, want the new task", ev)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s with a stream open, want it prompt", d)
	}
	for range ch { // the stream ends
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("serve: got %v, want ErrServerClosed", err)
	}
}
