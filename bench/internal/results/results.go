// Package results holds the figures that the benchmark programs print, one JSON
// object on standard output each, and helpers to summarise samples. The suite reads
// them back with the same types.
package results

import (
	"encoding/json"
	"io"
	"math"
	"slices"
	"time"
)

// Ingest is what bench/cmd/ingest measured: a job reporting progress as fast as it
// can through pkg/tracking, until Flush returned.
type Ingest struct {
	Events       int     `json:"events"`
	CallSeconds  float64 `json:"call_seconds"` // in the Progress loop alone
	Seconds      float64 `json:"seconds"`      // first call until Flush returned
	EventsPerSec float64 `json:"events_per_sec"`
	Dropped      uint64  `json:"dropped"`
	StreamMsgs   uint64  `json:"stream_msgs"`
}

// Dist summarises durations in nanoseconds.
type Dist struct {
	Count    int     `json:"count"`
	MeanNs   float64 `json:"mean_ns"`
	MedianNs float64 `json:"median_ns"`
	P90Ns    float64 `json:"p90_ns"`
	P99Ns    float64 `json:"p99_ns"`
	P999Ns   float64 `json:"p999_ns"`
	MaxNs    float64 `json:"max_ns"`
}

// JobCost is what bench/cmd/jobcost measured: how long a Progress call holds the
// job, back to back and paced like a job with real work between its reports.
type JobCost struct {
	// OverheadNs is the median of two time.Now calls with nothing between them; it
	// has been subtracted from every figure below.
	OverheadNs float64 `json:"overhead_ns"`
	BackToBack Dist    `json:"back_to_back"`
	Paced      Dist    `json:"paced"`
	PaceNs     float64 `json:"pace_ns"`
	// RTTNs is the median round trip to the NATS server on loopback: a call that
	// waited for the network could not be faster.
	RTTNs   float64 `json:"rtt_ns"`
	Dropped uint64  `json:"dropped"`
}

// Fill is what bench/cmd/fill did: tasks generated and published to the stream.
type Fill struct {
	Tasks        int     `json:"tasks"`
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	StreamMsgs   uint64  `json:"stream_msgs"`
	StreamBytes  uint64  `json:"stream_bytes"`
	IDsFile      string  `json:"ids_file"`
}

// Summarise sorts d in place and returns its distribution, each figure less
// overhead and never below zero.
func Summarise(d []time.Duration, overhead time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		v := d[max(0, min(i, len(d)-1))] - overhead
		return float64(max(v, 0))
	}
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	mean := sum/time.Duration(len(d)) - overhead
	return Dist{
		Count:    len(d),
		MeanNs:   float64(max(mean, 0)),
		MedianNs: at(0.50),
		P90Ns:    at(0.90),
		P99Ns:    at(0.99),
		P999Ns:   at(0.999),
		MaxNs:    at(1),
	}
}

// Print writes v as indented JSON.
func Print(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
