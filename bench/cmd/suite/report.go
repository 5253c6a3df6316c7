package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/miniray/miniray/bench/internal/results"
)

// Report is everything one run measured; it is written as JSON as it stands.
type Report struct {
	Mode        string  `json:"mode"`
	Machine     Machine `json:"machine"`
	Seconds     float64 `json:"seconds"`
	MessageSize int     `json:"message_size_bytes"`

	Ingest  IngestReport  `json:"ingest"`
	JobCost JobCostReport `json:"job_cost"`
	Replay  Replay        `json:"replay"`
	API     APIReport     `json:"api"`
	Memory  MemoryReport  `json:"memory"`
	Scaling []ScalePoint  `json:"scaling"`

	Summary Summary  `json:"summary"`
	Targets []Target `json:"targets"`
}

// IngestReport holds every run of both sides of the ingest benchmark.
type IngestReport struct {
	Events int         `json:"events"`
	NATS   []NATSRun   `json:"nats_pub_async"`
	Ours   []IngestRun `json:"ours"`
}

// JobCostReport is the call-by-call timing and the go test benchmark.
type JobCostReport struct {
	results.JobCost
	GoBench GoBench `json:"go_bench"`
	Load    Load    `json:"load"`
}

// APIReport holds a wrk run per endpoint.
type APIReport struct {
	Tasks int      `json:"tasks"`
	Runs  []APIRun `json:"runs"`
}

func (a APIReport) run(name string) APIRun {
	for _, r := range a.Runs {
		if r.Name == name {
			return r
		}
	}
	return APIRun{}
}

// MemoryReport is the dashboard's memory after the large replay.
type MemoryReport struct {
	PeakRSS         uint64  `json:"peak_rss_bytes"`
	PeakRSSAfterAPI uint64  `json:"peak_rss_after_api_bytes"`
	HeapInuse       uint64  `json:"heap_inuse_bytes"`
	BytesPerTask    float64 `json:"rss_bytes_per_task"`
	// MarginalPerTask is the growth of peak RSS per task from the smallest replay
	// to the largest: what one more task costs, without the fixed part.
	MarginalPerTask float64 `json:"marginal_rss_bytes_per_task"`
}

// Summary holds the figures the targets judge, each a median over its runs.
type Summary struct {
	IngestOurs       float64 `json:"ingest_events_per_sec"`
	IngestNATS       float64 `json:"nats_pub_async_msgs_per_sec"`
	IngestRatio      float64 `json:"ingest_ratio"`
	ReplaySeconds    float64 `json:"replay_seconds"`
	ReplayNATS       float64 `json:"nats_ordered_seconds"`
	ReplayRatio      float64 `json:"replay_ratio"`
	HealthzRPS       float64 `json:"healthz_rps"`
	ScaleTimeGrowth  float64 `json:"scale_time_per_event_growth"`
	ScaleRSSGrowth   float64 `json:"scale_rss_per_task_growth"`
	ReplayStatsSeen  int     `json:"replay_stats_answers"`
	ReplayStatsProgr int     `json:"replay_stats_with_progress"`
}

// Target is one row of the verdict.
type Target struct {
	Key    string `json:"key"`
	What   string `json:"what"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Met    bool   `json:"met"`
}

// The targets of issue 5.
const (
	targetIngest     = 0.8
	targetJobMedian  = 2000 // ns
	targetReplay     = 0.7
	targetList       = 0.5
	targetStats      = 0.8
	targetP99Ms      = 10
	targetRSS        = 400 << 20
	targetLinearness = 1.2 // growth of cost per unit allowed from the smallest size
)

// evaluate computes the summary, the memory figures and the verdict on each target.
func (r *Report) evaluate(p plan) {
	sm := &r.Summary
	var ours, nats []float64
	for _, o := range r.Ingest.Ours {
		ours = append(ours, o.EventsPerSec)
	}
	for _, n := range r.Ingest.NATS {
		nats = append(nats, n.MsgsPerSec)
	}
	sm.IngestOurs, sm.IngestNATS = median(ours), median(nats)
	sm.IngestRatio = safeDiv(sm.IngestOurs, sm.IngestNATS)

	main := scalePoint(r.Replay)
	sm.ReplaySeconds, sm.ReplayNATS = main.Seconds, main.NATSSeconds
	sm.ReplayRatio = safeDiv(sm.ReplayNATS, sm.ReplaySeconds)
	for _, cs := range r.Replay.ColdStarts {
		sm.ReplayStatsSeen += cs.Stats.Answers
		sm.ReplayStatsProgr += cs.Stats.Progress
		r.Memory.HeapInuse = max(r.Memory.HeapInuse, cs.HeapInuse)
	}
	sm.HealthzRPS = (r.API.run("healthz").RPS + r.API.run("healthz_again").RPS) / 2

	r.Memory.PeakRSS = main.PeakRSS
	r.Memory.BytesPerTask = main.RSSBytesByTask
	slices.SortFunc(r.Scaling, func(a, b ScalePoint) int { return a.Tasks - b.Tasks })
	if n := len(r.Scaling); n >= 2 {
		small, large := r.Scaling[0], r.Scaling[n-1]
		sm.ScaleTimeGrowth = safeDiv(large.Seconds/float64(large.Events),
			small.Seconds/float64(small.Events))
		sm.ScaleRSSGrowth = safeDiv(large.RSSBytesByTask, small.RSSBytesByTask)
		r.Memory.MarginalPerTask = safeDiv(float64(large.PeakRSS)-float64(small.PeakRSS),
			float64(large.Tasks-small.Tasks))
	}
	r.Targets = r.targets()
}

func (r *Report) targets() []Target {
	sm := r.Summary
	jc := r.JobCost
	t := []Target{
		{"ingest", "ingest: pkg/tracking over nats bench js pub async", ratio(sm.IngestRatio),
			fmt.Sprintf(">= %.1f", targetIngest), sm.IngestRatio >= targetIngest},
		{"job_median", "cost to the job: median Progress call, back to back",
			ns(jc.BackToBack.MedianNs), "<= 2 µs", jc.BackToBack.MedianNs <= targetJobMedian},
		{"job_no_rtt", "cost to the job: no network round trip (p50 under the loopback RTT)",
			ns(jc.BackToBack.MedianNs) + " vs " + ns(jc.RTTNs), "p50 < RTT",
			jc.BackToBack.MedianNs < jc.RTTNs},
		{"replay", "replay: nats bench js ordered time over dashboard cold start",
			ratio(sm.ReplayRatio), fmt.Sprintf(">= %.1f", targetReplay),
			sm.ReplayRatio >= targetReplay},
		{"replay_api", "replay: /api/stats answers during the replay with its progress",
			fmt.Sprintf("%d answers, %d with progress", sm.ReplayStatsSeen, sm.ReplayStatsProgr),
			"answers with progress", sm.ReplayStatsProgr > 0},
	}
	for _, ep := range []struct {
		name, label string
		min         float64
	}{
		{"list", "API: /api/tasks?limit=100 over /healthz", targetList},
		{"filtered", "API: filtered list over /healthz", targetList},
		{"stats", "API: /api/stats over /healthz", targetStats},
	} {
		q := safeDiv(r.API.run(ep.name).RPS, sm.HealthzRPS)
		t = append(t, Target{ep.name + "_ratio", ep.label, ratio(q),
			fmt.Sprintf(">= %.1f", ep.min), q >= ep.min})
	}
	for _, name := range []string{"list", "filtered", "task", "stats"} {
		a := r.API.run(name)
		t = append(t, Target{name + "_p99", "API: p99 of " + a.Path,
			fmt.Sprintf("%.2f ms", a.P99Ms), fmt.Sprintf("<= %d ms", targetP99Ms),
			a.Requests > 0 && a.P99Ms <= targetP99Ms})
	}
	return append(t,
		Target{"memory", "memory: dashboard peak RSS after the large replay",
			mib(r.Memory.PeakRSS) + " MiB", "<= 400 MiB",
			r.Memory.PeakRSS > 0 && r.Memory.PeakRSS <= targetRSS},
		Target{"scale_time", "scaling: replay time per event, largest over smallest size",
			ratio(sm.ScaleTimeGrowth), fmt.Sprintf("<= %.1f", targetLinearness),
			sm.ScaleTimeGrowth > 0 && sm.ScaleTimeGrowth <= targetLinearness},
		Target{"scale_rss", "scaling: peak RSS per task, largest over smallest size",
			ratio(sm.ScaleRSSGrowth), fmt.Sprintf("<= %.1f", targetLinearness),
			sm.ScaleRSSGrowth > 0 && sm.ScaleRSSGrowth <= targetLinearness},
	)
}

// table is the main table, in markdown, for the terminal and the docs.
func (r *Report) table() string {
	sm := r.Summary
	jc := r.JobCost
	var b strings.Builder
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	row("what", "ours", "against", "ratio", "target", "result")
	row("---", "---:", "---:", "---:", "---", "---")

	row(fmt.Sprintf("ingest, %s progress events", count(float64(r.Ingest.Events))),
		count(sm.IngestOurs)+" events/s",
		fmt.Sprintf("%s msgs/s (js pub async, %d B, dedup)", count(sm.IngestNATS), r.MessageSize),
		ratio(sm.IngestRatio), ">= 0.8", r.verdict("ingest"))
	row("cost to the job: Progress back to back",
		fmt.Sprintf("median %s, p99 %s, mean %s", ns(jc.BackToBack.MedianNs),
			ns(jc.BackToBack.P99Ns), ns(jc.BackToBack.MeanNs)),
		"loopback RTT "+ns(jc.RTTNs), "", "median <= 2 µs, no round trip",
		r.verdict("job_median", "job_no_rtt"))
	row(fmt.Sprintf("cost to the job: one call per %s", ns(jc.PaceNs)),
		fmt.Sprintf("median %s, p99 %s, mean %s", ns(jc.Paced.MedianNs), ns(jc.Paced.P99Ns),
			ns(jc.Paced.MeanNs)),
		"", "", "", "")
	g := jc.GoBench
	row("BenchmarkProgress (go test -benchmem)",
		fmt.Sprintf("%.0f ns/op, %.0f B/op, %.0f allocs/op", g.NsPerOp, g.BytesPerOp, g.AllocsPerOp),
		"", "", "", "")
	row(fmt.Sprintf("replay, %s events of %s tasks, cold start to /readyz",
		count(float64(r.Replay.Events)), count(float64(r.Replay.Tasks))),
		fmt.Sprintf("%.2f s (%s events/s)", sm.ReplaySeconds,
			count(safeDiv(float64(r.Replay.Events), sm.ReplaySeconds))),
		fmt.Sprintf("%.2f s (%s msgs/s, js ordered)", sm.ReplayNATS,
			count(safeDiv(float64(r.Replay.Events), sm.ReplayNATS))),
		ratio(sm.ReplayRatio), ">= 0.7", r.verdict("replay"))
	row("API during the replay (/api/stats)",
		fmt.Sprintf("%d answers, %d with progress", sm.ReplayStatsSeen, sm.ReplayStatsProgr),
		"", "", "answers with progress", r.verdict("replay_api"))

	judged := map[string][]string{
		"list":     {"list_ratio", "list_p99"},
		"filtered": {"filtered_ratio", "filtered_p99"},
		"task":     {"task_p99"},
		"stats":    {"stats_ratio", "stats_p99"},
	}
	for _, a := range r.API.Runs {
		against, q, target := "", "", "p99 <= 10 ms"
		switch a.Name {
		case "healthz", "healthz_again":
			target = ""
		case "list", "filtered":
			q = ratio(safeDiv(a.RPS, sm.HealthzRPS))
			against = "/healthz " + count(sm.HealthzRPS) + " req/s"
			target = ">= 0.5, p99 <= 10 ms"
		case "stats":
			q = ratio(safeDiv(a.RPS, sm.HealthzRPS))
			against = "/healthz " + count(sm.HealthzRPS) + " req/s"
			target = ">= 0.8, p99 <= 10 ms"
		case "task":
			q = ratio(safeDiv(a.RPS, sm.HealthzRPS))
			against = "/healthz " + count(sm.HealthzRPS) + " req/s"
		}
		path := a.Path
		if a.Name == "task" {
			path = "/api/tasks/{random id}"
		}
		row(fmt.Sprintf("API `GET %s`, %d connections", path, a.Connections),
			fmt.Sprintf("%s req/s, p50 %.2f ms, p99 %.2f ms", count(a.RPS), a.P50Ms, a.P99Ms),
			against, q, target, r.verdict(judged[a.Name]...))
	}
	m := r.Memory
	row("memory: dashboard peak RSS after the replay",
		fmt.Sprintf("%s MiB (%s B/task; %s B/task marginal)", mib(m.PeakRSS),
			count(m.BytesPerTask), count(m.MarginalPerTask)),
		fmt.Sprintf("after the API load: %s MiB", mib(m.PeakRSSAfterAPI)), "", "<= 400 MiB",
		r.verdict("memory"))
	var pts []string
	for _, p := range r.Scaling {
		pts = append(pts, fmt.Sprintf("%s ev: %.2f s, %s MiB", short(p.Events), p.Seconds,
			mib(p.PeakRSS)))
	}
	row("scaling: replay time and peak RSS", strings.Join(pts, "; "), "",
		fmt.Sprintf("time/event x%s, RSS/task x%s", ratio(sm.ScaleTimeGrowth),
			ratio(sm.ScaleRSSGrowth)), "linear or better", r.verdict("scale_time", "scale_rss"))
	return b.String()
}

// verdict says whether the targets with these keys were met; a smoke run judges
// nothing.
func (r *Report) verdict(keys ...string) string {
	if r.Mode == "smoke" || len(keys) == 0 {
		return ""
	}
	for _, k := range keys {
		i := slices.IndexFunc(r.Targets, func(t Target) bool { return t.Key == k })
		if i < 0 || !r.Targets[i].Met {
			return "**missed**"
		}
	}
	return "met"
}

// markdown is the generated section of docs/benchmarks.md.
func (r *Report) markdown() string {
	m := r.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "Last full run: %s, commit `%s`, %s, %d cores (%s), %.1f GiB, %s, %s;"+
		" natscli %s, %s. Load average at start %.2f / %.2f / %.2f; the run took %.0f s.\n\n",
		m.Date, m.Commit, m.OS, m.NProc, m.CPU, float64(m.MemoryBytes)/(1<<30), m.Kernel,
		m.GoVersion, m.NATSCLI, m.WRK, m.LoadAvg[0], m.LoadAvg[1], m.LoadAvg[2], r.Seconds)
	b.WriteString(r.table())
	b.WriteString("\nEvery run behind the medians above:\n\n")
	b.WriteString(r.runs())
	return b.String()
}

// runs lists every measurement with the other work on the machine during it.
func (r *Report) runs() string {
	var b strings.Builder
	line := func(l Load, format string, args ...any) {
		fmt.Fprintf(&b, "- "+format, args...)
		fmt.Fprintf(&b, "; other work %.2f cores during it, %.2f before", l.OtherDuring,
			l.OtherBefore)
		if l.Note != "" {
			b.WriteString("; " + l.Note)
		}
		b.WriteString("\n")
	}
	for i, n := range r.Ingest.NATS {
		line(n.Load, "ingest run %d: nats bench js pub async %s msgs/s", i+1, count(n.MsgsPerSec))
	}
	for i, o := range r.Ingest.Ours {
		line(o.Load, "ingest run %d: pkg/tracking %s events/s, the Progress loop alone %s"+
			" calls/s", i+1, count(o.EventsPerSec), count(float64(o.Events)/o.CallSeconds))
	}
	jc := r.JobCost
	line(jc.Load, "cost to the job: %s calls back to back, p90 %s, p99.9 %s, max %s;"+
		" paced p99.9 %s, max %s; the time.Now pair's %s subtracted",
		count(float64(jc.BackToBack.Count)), ns(jc.BackToBack.P90Ns), ns(jc.BackToBack.P999Ns),
		ns(jc.BackToBack.MaxNs), ns(jc.Paced.P999Ns), ns(jc.Paced.MaxNs), ns(jc.OverheadNs))
	for _, n := range r.Replay.NATS {
		line(n.Load, "replay: nats bench js ordered %.2f s (%s msgs/s)", n.Seconds,
			count(n.MsgsPerSec))
	}
	for i, cs := range r.Replay.ColdStarts {
		line(cs.Load, "replay: dashboard cold start %d: %.2f s, peak RSS %s MiB, heap in use"+
			" %s MiB; /api/stats during it: %d answers, slowest %.0f ms (%s)", i+1, cs.Seconds,
			mib(cs.PeakRSS), mib(cs.HeapInuse), cs.Stats.Answers, cs.Stats.MaxMs, cs.Stats.Example)
	}
	for _, a := range r.API.Runs {
		line(a.Load, "API %s: %s requests in %.1f s, p90 %.2f ms, max %.2f ms", a.Name,
			count(float64(a.Requests)), a.Seconds, a.P90Ms, a.MaxMs)
	}
	for _, p := range r.Scaling {
		fmt.Fprintf(&b, "- scaling %s events / %s tasks: dashboard %.2f s, nats ordered %.2f s,"+
			" peak RSS %s MiB (%s B/task)\n", count(float64(p.Events)), count(float64(p.Tasks)),
			p.Seconds, p.NATSSeconds, mib(p.PeakRSS), count(p.RSSBytesByTask))
	}
	return b.String()
}

// writeJSON writes the report through a temporary file, so that a failed write
// leaves the last good one in place.
func writeJSON(path string, r *Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode figures: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write figures: %w", err)
	}
	return os.Rename(tmp, path)
}

// The markers around the generated section of docs/benchmarks.md. Everything
// outside them is prose that the suite leaves alone.
const (
	beginMarker = "<!-- BEGIN GENERATED by scripts/bench.sh: do not edit by hand -->"
	endMarker   = "<!-- END GENERATED -->"
)

// updateDocs replaces the generated section of the markdown file at path.
func updateDocs(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	text := string(b)
	head, rest, ok := strings.Cut(text, beginMarker)
	if !ok {
		return fmt.Errorf("docs: %s has no line %q", path, beginMarker)
	}
	_, foot, ok := strings.Cut(rest, endMarker)
	if !ok {
		return fmt.Errorf("docs: %s has no line %q", path, endMarker)
	}
	out := head + beginMarker + "\n" + section + endMarker + foot
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	return os.Rename(tmp, path)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func safeDiv(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// count formats a number rounded to an integer, with thousands separators.
func count(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// short formats a count of events as 100k or 1M.
func short(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 < 1000:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func mib(b uint64) string { return count(float64(b) / (1 << 20)) }

// ns formats nanoseconds in the unit that suits them, to three figures.
func ns(v float64) string {
	unit := "ns"
	switch {
	case v >= 1e6:
		v, unit = v/1e6, "ms"
	case v >= 1e3:
		v, unit = v/1e3, "µs"
	}
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// ratio prints two significant digits below 0.1, two decimals above.
func ratio(v float64) string {
	if v != 0 && math.Abs(v) < 0.1 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return fmt.Sprintf("%.2f", v)
}
