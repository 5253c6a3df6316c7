package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/miniray/miniray/internal/metrics"
)

// status is what the collector's health checks and metrics read. It is filled in as
// the collector comes up.
type status struct {
	mu       sync.RWMutex
	nc       *nats.Conn
	ready    bool // the store is provisioned
	watchdog *watchdog

	// The events the collector published, by source: the watchdog's task_lost
	// events, the spool files of jobs, the HTTP ingest.
	lostPublished  prometheus.Counter
	spoolPublished prometheus.Counter
	httpPublished  prometheus.Counter
}

func newStatus(reg *prometheus.Registry) *status {
	published := metrics.RegisterPublished(reg)
	st := &status{
		lostPublished:  published.WithLabelValues(metrics.SourceLost),
		spoolPublished: published.WithLabelValues(metrics.SourceSpool),
		httpPublished:  published.WithLabelValues(metrics.SourceHTTP),
	}
	metrics.RegisterNATS(reg, st.conn)
	return st
}

func (st *status) conn() *nats.Conn {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.nc
}

func (st *status) set(f func(st *status)) {
	st.mu.Lock()
	f(st)
	st.mu.Unlock()
}

// readiness says whether the collector does its work, and if not, why.
func (st *status) readiness() (bool, string) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	switch {
	case st.nc == nil:
		return false, "connecting to nats"
	case !st.nc.IsConnected():
		return false, "nats disconnected"
	case !st.ready:
		return false, "provisioning the stream and the bucket"
	case st.watchdog != nil && !st.watchdog.replay.Ready():
		return false, "watchdog replaying the stream"
	}
	return true, ""
}

// readTimeout bounds the reading of a whole request, body included, so that a client
// that sends a body slowly, or not at all, cannot hold a connection for ever. It
// leaves time for the largest body on a slow link, and for the ingest's wait for
// JetStream's acknowledgements after the body is read.
var readTimeout = time.Minute

// serveHTTP starts the collector's HTTP listener: health checks, metrics and the
// ingest of events. It listens before anything else starts, so that a busy port
// fails at once.
func serveHTTP(addr string, sec httpSecurity, st *status, reg *prometheus.Registry,
	ing *ingest, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if sec.tls != nil {
		ln = tls.NewListener(ln, sec.tls)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), metrics.HTTP(reg))
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		ok, reason := st.readiness()
		if !ok {
			c.JSON(http.StatusServiceUnavailable, gin.H{"ready": false, "reason": reason})
			return
		}
		c.JSON(http.StatusOK, gin.H{"ready": true})
	})
	r.GET("/metrics", gin.WrapH(metrics.Handler(reg)))
	r.POST(IngestPath, ing.handle)
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": "no such endpoint: " + c.Request.URL.Path})
	})

	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": c.Request.Method + " " +
			c.Request.URL.Path + " is not allowed"})
	})

	srv := &http.Server{
		Handler:           sec.wrap(r),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve http", "error", err)
		}
	}()
	log.Info("collector http listening", "url", sec.scheme()+"://"+ln.Addr().String(),
		"token", sec.token != "")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
