package projection

import (
	"maps"
	"math"
	"slices"

	"github.com/miniray/miniray/pkg/events"
)

// Stats summarises every task and the work of the projection.
type Stats struct {
	Total    int                     `json:"total"`
	ByStatus map[Status]int          `json:"by_status"`
	ByType   map[events.TaskType]int `json:"by_type"`
	// SuccessRate is completed over finished tasks; null while none has finished.
	SuccessRate   *float64      `json:"success_rate"`
	Duration      DurationStats `json:"duration"`
	EventsApplied uint64        `json:"events_applied"`
	// Heartbeats counts applied heartbeats; they are not events_applied.
	Heartbeats    uint64            `json:"heartbeats"`
	EventsSkipped uint64            `json:"events_skipped"`
	SkippedByKind map[string]uint64 `json:"skipped_by_kind"`
	// EventsAdjusted counts applied events whose oversized fields were cut or whose
	// timestamp was far ahead of the stream's clock.
	EventsAdjusted uint64            `json:"events_adjusted"`
	AdjustedByKind map[string]uint64 `json:"adjusted_by_kind"`
}

// DurationStats describes the durations, in seconds, of finished tasks.
type DurationStats struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
}

// Stats returns the current statistics. They are computed once per change of the
// projection, so that a dashboard polled by many pages does not redo the work.
func (p *Projection) Stats() Stats {
	p.mu.RLock()
	if p.stats != nil && p.statsV == p.version {
		s := *p.stats
		p.mu.RUnlock()
		return s
	}
	p.mu.RUnlock()

	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.computeStats()
	p.stats, p.statsV = &s, p.version
	return s
}

func (p *Projection) computeStats() Stats {
	s := Stats{
		Total:         len(p.order),
		ByStatus:      make(map[Status]int, len(Statuses)),
		ByType:        make(map[events.TaskType]int, len(events.TaskTypes)),
		EventsApplied: p.applied,
		Heartbeats:    p.heartbeats,
		SkippedByKind: make(map[string]uint64, len(p.skipped)),
	}
	for _, st := range Statuses {
		s.ByStatus[st] = 0
	}
	for _, tt := range events.TaskTypes {
		s.ByType[tt] = 0
	}
	for k, v := range p.skipped {
		s.SkippedByKind[k] = v
		s.EventsSkipped += v
	}
	s.AdjustedByKind = maps.Clone(p.adjust)
	for _, v := range p.adjust {
		s.EventsAdjusted += v
	}

	durations := make([]float64, 0, len(p.order))
	for _, t := range p.order {
		s.ByStatus[t.status]++
		s.ByType[t.tt]++
		if t.status.Finished() {
			durations = append(durations, t.duration())
		}
	}
	if n := s.ByStatus[Completed] + s.ByStatus[Failed] + s.ByStatus[Cancelled]; n > 0 {
		rate := float64(s.ByStatus[Completed]) / float64(n)
		s.SuccessRate = &rate
	}
	s.Duration = durationStats(durations)
	return s
}

func durationStats(d []float64) DurationStats {
	if len(d) == 0 {
		return DurationStats{}
	}
	slices.Sort(d)
	var sum float64
	for _, v := range d {
		sum += v
	}
	return DurationStats{
		Count: len(d),
		Mean:  sum / float64(len(d)),
		P50:   percentile(d, 0.50),
		P95:   percentile(d, 0.95),
	}
}

// percentile returns the nearest-rank percentile of sorted values.
func percentile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
