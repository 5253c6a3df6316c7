// Package metrics exposes the Prometheus metrics of miniray's programs: the events
// published, what the projection applied and skipped, how far it lags the stream,
// tasks by status, the NATS connection, and HTTP request durations.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/miniray/miniray/pkg/projection"
)

const namespace = "miniray"

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the registry in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Sources of the events a program publishes, the values of the source label of
// miniray_events_published_total.
const (
	SourceLost  = "lost"  // task_lost events of the collector's watchdog
	SourceSpool = "spool" // events the collector sent from jobs' spool files
	SourceHTTP  = "http"  // events posted to the collector's HTTP ingest
)

// Sources lists the sources above, so that each is exported from the start, at 0.
var Sources = []string{SourceLost, SourceSpool, SourceHTTP}

// RegisterPublished registers the counter of events published to the stream, by
// source. An event counts once JetStream acknowledged it, also when JetStream
// dropped it as a copy of one it already holds: a publisher cannot tell the
// difference for every source, and the projection skips such copies anyway.
func RegisterPublished(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "events_published_total",
		Help:      "Events published to the stream and acknowledged by JetStream, by source.",
	}, []string{"source"})
	for _, s := range Sources {
		c.WithLabelValues(s)
	}
	reg.MustRegister(c)
	return c
}

// ReplayState is what the projection's reader knows of its position.
type ReplayState interface {
	Ready() bool
	StreamLastSeq() uint64
}

// projectionCollector reads the projection's counters at scrape time, so that the
// hot path of the fold pays nothing for metrics.
type projectionCollector struct {
	proj   *projection.Projection
	replay func() ReplayState // nil until the replay has started

	applied, heartbeats, skipped, adjusted *prometheus.Desc
	tasks, lag, ready, lastSeq             *prometheus.Desc
}

// RegisterProjection registers the metrics of a projection and its replay; replay
// may return nil while there is none yet.
func RegisterProjection(reg *prometheus.Registry, p *projection.Projection,
	replay func() ReplayState) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	reg.MustRegister(&projectionCollector{
		proj:       p,
		replay:     replay,
		applied:    d("events_applied_total", "Events applied to the projection."),
		heartbeats: d("heartbeats_applied_total", "Heartbeats applied to the projection."),
		skipped: d("events_skipped_total",
			"Messages on the stream not applied, by reason.", "kind"),
		adjusted: d("events_adjusted_total",
			"Events applied after cutting oversized fields or clamping a future time.", "kind"),
		tasks:   d("tasks", "Tasks by status.", "status"),
		lag:     d("replay_lag_events", "Stream last sequence minus the last one applied."),
		ready:   d("replay_ready", "1 once the replay has caught up with the stream."),
		lastSeq: d("replay_applied_seq", "Last stream sequence applied or skipped."),
	})
}

func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applied, c.heartbeats, c.skipped, c.adjusted,
		c.tasks, c.lag, c.ready, c.lastSeq} {
		ch <- d
	}
}

func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.proj.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.applied, st.EventsApplied)
	counter(c.heartbeats, st.Heartbeats)
	for _, kind := range projection.SkipKinds {
		counter(c.skipped, st.SkippedByKind[kind], kind)
	}
	for _, kind := range projection.AdjustKinds {
		counter(c.adjusted, st.AdjustedByKind[kind], kind)
	}
	for _, s := range projection.Statuses {
		gauge(c.tasks, float64(st.ByStatus[s]), string(s))
	}
	applied := c.proj.LastSeq()
	gauge(c.lastSeq, float64(applied))
	var lag, ready float64
	if c.replay != nil {
		if r := c.replay(); r != nil {
			lag = float64(r.StreamLastSeq() - min(applied, r.StreamLastSeq()))
			if r.Ready() {
				ready = 1
			}
		}
	}
	gauge(c.lag, lag)
	gauge(c.ready, ready)
}

// RegisterNATS registers a gauge that is 1 while conn returns a connected client.
func RegisterNATS(reg *prometheus.Registry, conn func() *nats.Conn) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "nats_connected",
		Help:      "1 while the connection to NATS is up.",
	}, func() float64 {
		if nc := conn(); nc != nil && nc.IsConnected() {
			return 1
		}
		return 0
	}))
}

// HTTP returns a Gin middleware that records request durations by route.
func HTTP(reg *prometheus.Registry) gin.HandlerFunc {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "http_request_duration_seconds",
		Help:      "HTTP requests by route, method and status code.",
		Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
	}, []string{"route", "method", "code"})
	reg.MustRegister(h)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched" // keeps arbitrary paths out of the label values
		}
		h.WithLabelValues(route, methodLabel(c.Request.Method),
			strconv.Itoa(c.Writer.Status())).Observe(time.Since(start).Seconds())
	}
}

// methodLabel returns the method as a label value: a client may send any token as
// its method, and each new one would be a new series, so the ones HTTP does not
// define are counted together.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodConnect, http.MethodOptions,
		http.MethodTrace:
		return m
	}
	return "other"
}
