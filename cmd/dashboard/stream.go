package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Pacing of /api/stream.
const (
	// streamInterval is how often a stream looks for a change. Changes within one
	// interval become one event, so that a job reporting a thousand steps a second
	// does not make every page refetch a thousand times.
	streamInterval = 250 * time.Millisecond
	// streamKeepAlive is the longest silence on a stream. A comment line then keeps
	// proxies from closing it and lets both ends notice a dead connection.
	streamKeepAlive = 15 * time.Second
	// streamRetry is how long, in milliseconds, a browser waits before it connects
	// again after the stream broke, for example because the dashboard restarted.
	streamRetry = 1000
)

// changeEvent is the data of the "change" events of /api/stream: the projection's
// version, which grows with every change, and the statistics as /api/stats gives
// them, so that a page can show them without asking.
type changeEvent struct {
	Version uint64        `json:"version"`
	Stats   statsResponse `json:"stats"`
}

// streams ends open event streams when the server shuts down. http.Server.Shutdown
// waits for every handler to return, and a stream's handler would otherwise return
// only when its client leaves: one open page would hold a shutdown for its whole
// timeout.
type streams struct {
	interval  time.Duration
	keepAlive time.Duration

	mu   sync.Mutex
	done map[*http.Server]chan struct{}
}

func newStreams() *streams {
	return &streams{
		interval:  streamInterval,
		keepAlive: streamKeepAlive,
		done:      make(map[*http.Server]chan struct{}),
	}
}

// shutdown returns a channel closed when the server that serves r begins to shut
// down, or nil when r came from no http.Server (a test calling the handler).
func (s *streams) shutdown(r *http.Request) <-chan struct{} {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.done[srv]
	if !ok {
		ch = make(chan struct{})
		s.done[srv] = ch
		srv.RegisterOnShutdown(func() { close(ch) })
	}
	return ch
}

// streamChanges serves Server-Sent Events: a "change" event at once, then one
// whenever the projection or the replay's state changed, at most one per
// streamInterval, and a keep-alive comment in silences. It ends when the client
// leaves or the server shuts down; the browser's EventSource then reconnects by
// itself.
func streamChanges(st *state, ss *streams) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(c.Request.URL.RawQuery) > 0 {
			apiError(c, http.StatusBadRequest, "the stream takes no query parameters")
			return
		}
		done := ss.shutdown(c.Request)
		w := c.Writer
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // tells a proxy in front not to buffer
		// A write timeout set on the server, now or later, must not cut a stream
		// that is meant to stay open for hours.
		err := http.NewResponseController(w).SetWriteDeadline(time.Time{})
		if err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		w.WriteHeader(http.StatusOK)
		if _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetry); err != nil {
			return
		}

		tick := time.NewTicker(ss.interval)
		defer tick.Stop()
		quiet := time.NewTimer(ss.keepAlive)
		defer quiet.Stop()
		var last streamMark
		for first := true; ; first = false {
			if m := mark(st); first || m != last {
				if err := writeChange(w, st, m); err != nil {
					return
				}
				last = m
				quiet.Reset(ss.keepAlive)
			}
			select {
			case <-c.Request.Context().Done():
				return
			case <-done:
				return
			case <-tick.C:
			case <-quiet.C:
				if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
					return
				}
				w.Flush()
				quiet.Reset(ss.keepAlive)
			}
		}
	}
}

// streamMark is what a stream compares to tell that something changed.
type streamMark struct {
	version uint64
	replay  replayState
}

func mark(st *state) streamMark {
	return streamMark{version: st.proj.Version(), replay: st.replay()}
}

func writeChange(w gin.ResponseWriter, st *state, m streamMark) error {
	ev := changeEvent{
		Version: m.version,
		Stats:   statsResponse{Stats: st.proj.Stats(), Ready: m.replay.Ready, Replay: m.replay},
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	// json.Marshal writes no newline, so the data fits the one "data:" line that
	// the event format allows per line.
	_, err = fmt.Fprintf(w, "event: change\nid: %d\ndata: %s\n\n", m.version, data)
	if err != nil {
		return err
	}
	w.Flush()
	return nil
}
