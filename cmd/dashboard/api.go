package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/internal/metrics"
	"github.com/miniray/miniray/internal/webui"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// state is what the handlers read: the projection from the start, the replayer once
// NATS has been reached.
type state struct {
	proj *projection.Projection

	mu       sync.RWMutex
	replayer *projection.Replayer
	nc       *nats.Conn
	err      error

	stats atomic.Pointer[statsBody] // the last /api/stats answer
}

// statsBody is an encoded /api/stats answer and what it depends on: every page
// polls it, and it changes only with the projection's version and the replay.
type statsBody struct {
	version uint64
	replay  replayState
	body    []byte
}

func (s *state) setConn(nc *nats.Conn) {
	s.mu.Lock()
	s.nc = nc
	s.mu.Unlock()
}

func (s *state) conn() *nats.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nc
}

// replayState returns the replayer for the metrics, or nil before there is one.
func (s *state) replayState() metrics.ReplayState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.replayer == nil {
		return nil
	}
	return s.replayer
}

func (s *state) setReplayer(r *projection.Replayer) {
	s.mu.Lock()
	s.replayer = r
	s.mu.Unlock()
}

func (s *state) setError(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// replay describes the replay for /readyz and /api/stats.
type replayState struct {
	Ready      bool   `json:"ready"`
	AppliedSeq uint64 `json:"applied_seq"`
	TargetSeq  uint64 `json:"target_seq"`
	Reason     string `json:"reason,omitempty"`
}

func (s *state) replay() replayState {
	s.mu.RLock()
	r, err := s.replayer, s.err
	s.mu.RUnlock()
	rs := replayState{AppliedSeq: s.proj.LastSeq()}
	switch {
	case err != nil:
		rs.Reason = err.Error()
	case r == nil:
		rs.Reason = "waiting for nats"
	default:
		rs.Ready, rs.TargetSeq = r.Ready(), r.Target()
		if !rs.Ready {
			rs.Reason = "replaying"
		}
	}
	return rs
}

func newRouter(st *state, log *slog.Logger) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// A trailing slash or a wrong method gets a JSON answer, not a redirect or an
	// HTML page.
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		apiError(c, http.StatusMethodNotAllowed, c.Request.Method+" is not allowed on "+
			c.Request.URL.Path)
	})
	reg := metrics.NewRegistry()
	metrics.RegisterProjection(reg, st.proj, st.replayState)
	metrics.RegisterNATS(reg, st.conn)
	r.Use(recovery(log), requestLog(log), securityHeaders, metrics.HTTP(reg))
	r.GET("/metrics", noParams, gin.WrapH(metrics.Handler(reg)))

	r.GET("/healthz", noParams, func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET("/readyz", noParams, func(c *gin.Context) {
		rs := st.replay()
		code := http.StatusOK
		if !rs.Ready {
			code = http.StatusServiceUnavailable
		}
		c.JSON(code, rs)
	})

	api := r.Group("/api")
	api.GET("/tasks", listTasks(st, ""))
	api.GET("/tasks/:id", noParams, getTask(st))
	api.GET("/training-jobs", listTasks(st, events.TypeTraining))
	api.GET("/inference-jobs", listTasks(st, events.TypeInference))
	api.GET("/tuning-jobs", listTasks(st, events.TypeTuning))
	api.GET("/stats", noParams, getStats(st))
	api.GET("/openapi.json", noParams, serveOpenAPI)
	api.GET("/tasks/:id/metrics", getSeries(st))
	api.GET("/tasks/:id/trials", getTrials(st))
	api.GET("/stream", streamChanges(st, newStreams()))

	r.NoRoute(staticFiles(webui.FS()))
	return headAsGet(r)
}

// jsonType is the content type of JSON answers, as gin's c.JSON sets it.
const jsonType = "application/json; charset=utf-8"

func apiError(c *gin.Context, code int, msg string) {
	c.AbortWithStatusJSON(code, gin.H{"error": msg})
}

// listParams are the query parameters of the task lists; any other is refused, so
// that a misspelled filter does not silently list everything.
var listParams = map[string]bool{
	"type": true, "status": true, "parent_id": true, "q": true, "sort": true,
	"limit": true, "offset": true,
}

func listTasks(st *state, fixed events.TaskType) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := parseQuery(c, fixed)
		if err != nil {
			apiError(c, http.StatusBadRequest, err.Error())
			return
		}
		body, err := st.proj.ListJSON(q)
		if err != nil {
			apiError(c, http.StatusBadRequest, err.Error())
			return
		}
		// While the replay catches up a list is partial; say so.
		c.Header("X-Miniray-Ready", strconv.FormatBool(st.replay().Ready))
		c.Data(http.StatusOK, jsonType, body)
	}
}

func parseQuery(c *gin.Context, fixed events.TaskType) (projection.Query, error) {
	values, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return projection.Query{}, errors.New("query string: " + err.Error())
	}
	for k, v := range values {
		if !listParams[k] {
			return projection.Query{}, errors.New("unknown query parameter " + strconv.Quote(k))
		}
		if len(v) > 1 {
			return projection.Query{}, errors.New("query parameter " + k + " given more than once")
		}
	}
	q := projection.Query{
		Type:     events.TaskType(strings.ToLower(values.Get("type"))),
		Status:   projection.Status(strings.ToUpper(values.Get("status"))),
		ParentID: values.Get("parent_id"),
		Name:     values.Get("q"),
		Sort:     values.Get("sort"),
	}
	if fixed != "" {
		if q.Type != "" && q.Type != fixed {
			return q, errors.New("type: this list only holds " + string(fixed) + " tasks")
		}
		q.Type = fixed
	}
	if q.Limit, err = intParam(values.Get("limit"), "limit"); err != nil {
		return q, err
	}
	if values.Get("limit") != "" && q.Limit == 0 {
		return q, errors.New("limit: 0 is not between 1 and " + strconv.Itoa(projection.MaxLimit))
	}
	if q.Offset, err = intParam(values.Get("offset"), "offset"); err != nil {
		return q, err
	}
	return q, q.Validate()
}

func intParam(s, name string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) {
		return 0, errors.New(name + ": out of range: " + strconv.Quote(s))
	}
	if err != nil {
		return 0, errors.New(name + ": not an integer: " + strconv.Quote(s))
	}
	return n, nil
}

func getTask(st *state) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("id")
		if err := events.ValidateTaskID(id); err != nil {
			apiError(c, http.StatusBadRequest, err.Error())
			return
		}
		buf := taskBuffers.Get().(*[]byte)
		defer taskBuffers.Put(buf)
		body, ok := st.proj.AppendJSON((*buf)[:0], id)
		if cap(body) <= maxPooledBuffer {
			*buf = body
		}
		if !ok {
			msg := "task " + id + " not found"
			if rs := st.replay(); !rs.Ready {
				msg += " (not ready: " + rs.Reason + "; it may still appear)"
			}
			apiError(c, http.StatusNotFound, msg)
			return
		}
		c.Data(http.StatusOK, jsonType, body)
	}
}

// taskBuffers holds the buffers that task states are encoded into: a task page is
// asked for often, and a fresh buffer each time made most of the garbage that Go's
// garbage collector then had to chase under load.
var taskBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer bounds the buffers kept for reuse: one of a task with a long
// history is left to the garbage collector.
const maxPooledBuffer = 256 << 10

type statsResponse struct {
	projection.Stats
	Ready  bool        `json:"ready"`
	Replay replayState `json:"replay"`
}

func getStats(st *state) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := st.statsJSON()
		if err != nil {
			apiError(c, http.StatusInternalServerError, err.Error())
			return
		}
		c.Data(http.StatusOK, jsonType, body)
	}
}

// statsJSON returns the /api/stats answer, encoded again only when the projection
// or the replay changed. The version is read before the statistics, so an answer
// kept for a version is never older than it.
func (st *state) statsJSON() ([]byte, error) {
	rs := st.replay()
	v := st.proj.Version()
	if s := st.stats.Load(); s != nil && s.version == v && s.replay == rs {
		return s.body, nil
	}
	body, err := json.Marshal(statsResponse{Stats: st.proj.Stats(), Ready: rs.Ready, Replay: rs})
	if err != nil {
		return nil, fmt.Errorf("encode stats: %w", err)
	}
	st.stats.Store(&statsBody{version: v, replay: rs, body: body})
	return body, nil
}

// staticFiles serves the page for GET and HEAD, and a JSON 404 for everything else,
// including unknown API paths.
func staticFiles(files fs.FS) gin.HandlerFunc {
	fileServer := http.FileServer(http.FS(files))
	return func(c *gin.Context) {
		p := c.Request.URL.Path
		if strings.HasPrefix(p, "/api/") {
			apiError(c, http.StatusNotFound, "no such endpoint: "+c.Request.Method+" "+p)
			return
		}
		name := strings.TrimPrefix(path.Clean(p), "/")
		if name == "" {
			name = "index.html"
		}
		if _, err := fs.Stat(files, name); err != nil {
			apiError(c, http.StatusNotFound, "not found: "+p)
			return
		}
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead {
			c.Header("Allow", "GET, HEAD")
			apiError(c, http.StatusMethodNotAllowed, m+" "+p+": the page is read only")
			return
		}
		fileServer.ServeHTTP(c.Writer, c.Request)
	}
}

// noParams refuses any query parameter on endpoints that take none.
func noParams(c *gin.Context) {
	if c.Request.URL.RawQuery != "" {
		apiError(c, http.StatusBadRequest, c.Request.URL.Path+" takes no query parameters")
	}
}

// headAsGet answers HEAD like GET for every route. The server still knows the
// request was HEAD and sends no body.
func headAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		h.ServeHTTP(w, r)
	})
}

// securityHeaders forbid inline scripts, framing and content sniffing: every string
// the page shows came from a job and is treated as text.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	c.Next()
}

// requestLog logs each request at debug level. Its arguments are only built when
// that level is on: boxing them cost every request a few allocations, and garbage
// is what lengthens the slowest answers under load.
func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !log.Enabled(c.Request.Context(), slog.LevelDebug) {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		log.Debug("http request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration", time.Since(start))
	}
}

func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				log.Error("http handler panicked", "path", c.Request.URL.Path, "panic", v)
				apiError(c, http.StatusInternalServerError, "internal error")
			}
		}()
		c.Next()
	}
}
