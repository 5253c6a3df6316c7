package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/miniray/miniray/bench/internal/results"
	"github.com/miniray/miniray/bench/internal/workload"
)

// ColdStart is one dashboard started on a filled stream and timed until /readyz
// answered 200.
type ColdStart struct {
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	PeakRSS      uint64  `json:"peak_rss_bytes"`
	HeapInuse    uint64  `json:"heap_inuse_bytes"`
	Stats        Sampled `json:"stats_during_replay"`
	Load         Load    `json:"load"`

	d *dashboard // left running for the caller
}

func (cs *ColdStart) load() *Load { return &cs.Load }
func (cs *ColdStart) discard()    { cs.d.stop() }

// Sampled is what /api/stats answered while the replay ran.
type Sampled struct {
	Answers  int     `json:"answers"`  // 200s before the dashboard was ready
	Progress int     `json:"progress"` // of those, with 0 < applied_seq < target_seq
	MaxMs    float64 `json:"max_ms"`
	Example  string  `json:"example,omitempty"`
}

// Replay is one size of replay: a stream filled with generated tasks, read by nats
// bench's ordered consumer and by dashboards from a cold start.
type Replay struct {
	Tasks       int          `json:"tasks"`
	Events      int          `json:"events"`
	StreamBytes uint64       `json:"stream_bytes"`
	Fill        results.Fill `json:"fill"`
	NATS        []NATSRun    `json:"nats_ordered"`
	ColdStarts  []ColdStart  `json:"cold_starts"`
}

// replay fills a fresh collector's stream with tasks and measures its replay. With
// keep set, the last dashboard and the collector are left running for the caller,
// who must stop them; otherwise both are stopped.
func (s *suite) replay(ctx context.Context, name string, tasks, coldStarts, ordered int,
	keep bool) (r Replay, c *collector, d *dashboard, err error) {
	r.Tasks = tasks
	if c, err = s.startCollector(ctx, name); err != nil {
		return r, nil, nil, err
	}
	defer func() {
		if !keep || err != nil {
			if d != nil {
				d.stop()
			}
			c.stop()
			c, d = nil, nil
		}
	}()
	if err = s.fill(ctx, c, &r); err != nil {
		return r, c, d, err
	}

	for range ordered {
		var nr *NATSRun
		nr, err = retried(s, "nats bench js ordered", func() (*NATSRun, error) {
			return s.natsOrdered(ctx, c, r.Events)
		})
		if err != nil {
			return r, c, d, err
		}
		r.NATS = append(r.NATS, *nr)
		s.logf("   nats bench js ordered: %s msgs/s, %.2fs (%.2f cores of other work)",
			count(nr.MsgsPerSec), nr.Seconds, nr.Load.OtherDuring)
	}

	for i := range coldStarts {
		var cs *ColdStart
		cs, err = retried(s, "dashboard cold start", func() (*ColdStart, error) {
			return s.coldStart(ctx, c, r)
		})
		if err != nil {
			return r, c, d, err
		}
		d = cs.d
		r.ColdStarts = append(r.ColdStarts, *cs)
		s.logf("   dashboard cold start: ready in %.2fs (%s events/s), peak RSS %s MiB,"+
			" /api/stats answered %d times during the replay, %d with progress"+
			" (%.2f cores of other work)", cs.Seconds, count(cs.EventsPerSec), mib(cs.PeakRSS),
			cs.Stats.Answers, cs.Stats.Progress, cs.Load.OtherDuring)
		if i < coldStarts-1 || !keep {
			d.stop()
			d = nil
		}
	}
	return r, c, d, nil
}

// fill publishes the tasks into the collector's stream and waits until the
// collector's watchdog, which folds every event as a dashboard does, has caught up:
// until then it would take CPU from whatever is measured next.
func (s *suite) fill(ctx context.Context, c *collector, r *Replay) error {
	err := s.runJSON(ctx, nil, 10*time.Minute, &r.Fill, "fill", "--nats-url", c.natsURL,
		"--tasks", strconv.Itoa(r.Tasks), "--ids", filepath.Join(c.dir, "ids.txt"))
	if err != nil {
		return err
	}
	r.Events = int(r.Fill.StreamMsgs)
	r.StreamBytes = r.Fill.StreamBytes
	s.logf("   filled %s tasks, %s events (%s MiB stored) at %s events/s",
		count(float64(r.Tasks)), count(float64(r.Events)), mib(r.StreamBytes),
		count(r.Fill.EventsPerSec))
	return c.waitWatchdog(ctx, r.Fill.StreamMsgs, 10*time.Minute)
}

func (s *suite) natsOrdered(ctx context.Context, c *collector, n int) (*NATSRun, error) {
	l, err := s.waitQuiet(ctx, "nats bench js ordered")
	if err != nil {
		return nil, err
	}
	m := newMeter(c.pid())
	nr, err := s.natsBench(ctx, m, c.natsURL, 5*time.Minute, "ordered",
		"--stream", "MINIRAY_EVENTS", "--msgs", strconv.Itoa(n))
	l.OtherDuring = m.others()
	nr.Load = l
	return &nr, err
}

// coldStart starts a dashboard on c's stream, samples /api/stats while it replays,
// and times it until /readyz answers 200. The dashboard is left running.
func (s *suite) coldStart(ctx context.Context, c *collector, r Replay) (*ColdStart, error) {
	l, err := s.waitQuiet(ctx, "dashboard cold start")
	if err != nil {
		return nil, err
	}
	m := newMeter(c.pid())
	d, err := s.startDashboard(c, "dashboard", s.bin("dashboard"), nil)
	if err != nil {
		return nil, err
	}
	m.track(d.pid())
	stop := make(chan struct{})
	var sampled Sampled
	var wg sync.WaitGroup
	wg.Go(func() { sampled = s.sampleStats(ctx, d.url, stop) })
	elapsed, err := waitOK(ctx, d.proc, d.url+"/readyz", 10*time.Millisecond, 10*time.Minute)
	l.OtherDuring = m.others()
	close(stop)
	wg.Wait()
	if err != nil {
		d.stop()
		return nil, d.failure(err)
	}

	cs := &ColdStart{Seconds: elapsed.Seconds(), Stats: sampled, Load: l, d: d}
	cs.EventsPerSec = float64(r.Events) / cs.Seconds
	if cs.PeakRSS, err = d.peakRSS(); err != nil {
		d.stop()
		return nil, err
	}
	heap, err := metricValue(ctx, d.url+"/metrics", "go_memstats_heap_inuse_bytes")
	if err != nil {
		d.stop()
		return nil, d.failure(err)
	}
	cs.HeapInuse = uint64(heap)
	if err := s.checkStats(ctx, d, r, cs); err != nil {
		d.stop()
		return nil, d.failure(err)
	}
	return cs, nil
}

// statsBody is the part of /api/stats the suite reads.
type statsBody struct {
	Total         int    `json:"total"`
	EventsApplied uint64 `json:"events_applied"`
	Ready         bool   `json:"ready"`
	Replay        struct {
		AppliedSeq uint64 `json:"applied_seq"`
		TargetSeq  uint64 `json:"target_seq"`
		Reason     string `json:"reason"`
	} `json:"replay"`
}

// sampleStats asks /api/stats every statsEvery until stop is closed, and counts the
// answers given before the replay caught up.
func (s *suite) sampleStats(ctx context.Context, base string, stop <-chan struct{}) Sampled {
	var out Sampled
	t := time.NewTicker(s.plan.statsEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return out
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		t0 := time.Now()
		code, body, err := get(ctx, base+"/api/stats")
		took := time.Since(t0)
		var st statsBody
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Ready {
			continue
		}
		out.Answers++
		out.MaxMs = max(out.MaxMs, float64(took)/1e6)
		rp := st.Replay
		if rp.AppliedSeq > 0 && rp.AppliedSeq < rp.TargetSeq {
			out.Progress++
			if out.Example == "" || out.Progress == 3 {
				out.Example = fmt.Sprintf("replay: applied_seq %d of target_seq %d, %d tasks so far",
					rp.AppliedSeq, rp.TargetSeq, st.Total)
			}
		}
	}
}

// checkStats checks that a ready dashboard holds every task and event. In a full
// run it also checks that /api/stats answered during the replay with its progress:
// a smoke run's replay may be over before the first sample.
func (s *suite) checkStats(ctx context.Context, d *dashboard, r Replay, cs *ColdStart) error {
	code, body, err := get(ctx, d.url+"/api/stats")
	if err != nil {
		return err
	}
	var st statsBody
	if code != http.StatusOK {
		return fmt.Errorf("/api/stats: status %d: %s", code, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("/api/stats: %w", err)
	}
	if st.Total < r.Tasks || st.EventsApplied < uint64(r.Tasks*workload.EventsPerTask) {
		return fmt.Errorf("/api/stats after the replay: %d tasks and %d events, want %d and %d",
			st.Total, st.EventsApplied, r.Tasks, r.Tasks*workload.EventsPerTask)
	}
	if !s.plan.smoke && cs.Stats.Progress == 0 {
		return fmt.Errorf("/api/stats answered %d times during a replay of %.1fs, never"+
			" with the replay's progress", cs.Stats.Answers, cs.Seconds)
	}
	return nil
}

// ScalePoint is one size of the scaling row.
type ScalePoint struct {
	Tasks          int     `json:"tasks"`
	Events         int     `json:"events"`
	Seconds        float64 `json:"seconds"`
	EventsPerSec   float64 `json:"events_per_sec"`
	NATSSeconds    float64 `json:"nats_ordered_seconds"`
	PeakRSS        uint64  `json:"peak_rss_bytes"`
	RSSBytesByTask float64 `json:"rss_bytes_per_task"`
}

func scalePoint(r Replay) ScalePoint {
	p := ScalePoint{Tasks: r.Tasks, Events: r.Events}
	var secs, nats []float64
	for _, cs := range r.ColdStarts {
		secs = append(secs, cs.Seconds)
		p.PeakRSS = max(p.PeakRSS, cs.PeakRSS)
	}
	for _, n := range r.NATS {
		nats = append(nats, n.Seconds)
	}
	p.Seconds, p.NATSSeconds = median(secs), median(nats)
	if p.Seconds > 0 {
		p.EventsPerSec = float64(r.Events) / p.Seconds
	}
	p.RSSBytesByTask = float64(p.PeakRSS) / float64(r.Tasks)
	return p
}

// scaling replays the smaller sizes, one cold start each; the large replay adds its
// own point.
func (s *suite) scaling(ctx context.Context) error {
	for _, tasks := range s.plan.scaleTasks {
		r, _, _, err := s.replay(ctx, fmt.Sprintf("scale-%d", tasks), tasks, 1, 1, false)
		if err != nil {
			return err
		}
		s.report.Scaling = append(s.report.Scaling, scalePoint(r))
	}
	return nil
}

// replayAndAPI runs the large replay, then loads the API of its last dashboard.
func (s *suite) replayAndAPI(ctx context.Context) error {
	r, c, d, err := s.replay(ctx, "replay", s.plan.replayTasks, s.plan.coldStarts, s.plan.reps,
		true)
	if err != nil {
		return err
	}
	defer c.stop()
	defer d.stop()
	s.report.Replay = r
	s.report.Scaling = append(s.report.Scaling, scalePoint(r))

	s.logf("== API, %s tasks loaded, %d connections", count(float64(r.Tasks)), s.plan.conns)
	if err := s.api(ctx, c, d, r); err != nil {
		return err
	}
	after, err := d.peakRSS()
	if err != nil {
		return err
	}
	s.report.Memory.PeakRSSAfterAPI = after
	return nil
}
