package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profileRun writes the profiles that explain the figures, instead of measuring
// them: the dashboard's CPU over its cold start and its heap after it, its CPU
// under load on each API endpoint, and the CPU and allocations of the ingest job.
// The dashboard is the bench-only build that scripts/bench.sh --profile makes, with
// net/http/pprof on a loopback port. Profiling slows what it watches: these runs
// say where the time goes, not how much there is.
func (s *suite) profileRun(ctx context.Context) error {
	dir := s.opts.profile
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := s.profileDashboard(ctx, dir); err != nil {
		return err
	}
	if err := s.profileIngest(ctx, dir); err != nil {
		return err
	}
	s.logf("profiles and their top functions (*.txt) are in %s", dir)
	return nil
}

func (s *suite) profileDashboard(ctx context.Context, dir string) error {
	tasks := s.plan.replayTasks
	r := Replay{Tasks: tasks}
	c, err := s.startCollector(ctx, "profile")
	if err != nil {
		return err
	}
	defer c.stop()
	if err := s.fill(ctx, c, &r); err != nil {
		return err
	}
	ids := r.Fill.IDsFile

	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bin := s.benchBin("dashboard-pprof")
	d, err := s.startDashboard(c, "dashboard-pprof", bin, []string{
		"BENCH_PPROF_ADDR=" + pprofAddr,
		"BENCH_CPUPROFILE=" + filepath.Join(dir, "replay.cpu.pprof"),
	})
	if err != nil {
		return err
	}
	defer d.stop()
	elapsed, err := waitOK(ctx, d.proc, d.url+"/readyz", 10*time.Millisecond, 10*time.Minute)
	if err != nil {
		return d.failure(err)
	}
	pprofURL := "http://" + pprofAddr + "/debug"
	if code, body, err := get(ctx, pprofURL+"/bench/cpu/stop"); err != nil ||
		code != http.StatusNoContent {
		return d.failure(fmt.Errorf("stop the cpu profile: %d %s %v", code, body, err))
	}
	rss, _ := d.peakRSS()
	s.logf("   profiled cold start over %d events: %.2fs, peak RSS %s MiB", r.Events,
		elapsed.Seconds(), mib(rss))
	if err := download(ctx, pprofURL+"/pprof/heap", filepath.Join(dir, "replay.heap.pprof")); err != nil {
		return err
	}

	for _, ep := range endpoints[1:5] {
		idsFile := ""
		if ep.name == "task" {
			idsFile = ids
		}
		secs := int(s.plan.apiDuration.Seconds())
		out := filepath.Join(dir, "api-"+ep.name+".cpu.pprof")
		var wg sync.WaitGroup
		var profErr error
		wg.Go(func() {
			profErr = download(ctx, fmt.Sprintf("%s/pprof/profile?seconds=%d", pprofURL, secs), out)
		})
		run, err := s.wrkRun(ctx, nil, ep.name, d.url, ep.path, idsFile,
			s.plan.apiDuration+time.Second)
		wg.Wait()
		if err != nil {
			return err
		}
		if profErr != nil {
			return profErr
		}
		s.logf("   profiled %s: %s req/s", ep.name, count(run.RPS))
	}

	tops := []struct{ profile, index string }{
		{"replay.cpu.pprof", ""},
		{"replay.heap.pprof", "inuse_space"},
		{"replay.heap.pprof", "alloc_space"},
		{"api-list.cpu.pprof", ""},
		{"api-filtered.cpu.pprof", ""},
		{"api-task.cpu.pprof", ""},
		{"api-stats.cpu.pprof", ""},
	}
	for _, t := range tops {
		if err := s.pprofTop(ctx, bin, dir, t.profile, t.index); err != nil {
			return err
		}
	}
	return nil
}

func (s *suite) profileIngest(ctx context.Context, dir string) error {
	c, err := s.startCollector(ctx, "profile-ingest")
	if err != nil {
		return err
	}
	defer c.stop()
	var res struct {
		EventsPerSec float64 `json:"events_per_sec"`
	}
	cpu := filepath.Join(dir, "ingest.cpu.pprof")
	allocs := filepath.Join(dir, "ingest.allocs.pprof")
	if err := s.runJSON(ctx, nil, 5*time.Minute, &res, "ingest", "--nats-url", c.natsURL,
		"--events", strconv.Itoa(s.plan.pubEvents), "--cpuprofile", cpu,
		"--memprofile", allocs); err != nil {
		return err
	}
	s.logf("   profiled ingest: %s events/s", count(res.EventsPerSec))
	bin := s.benchBin("ingest")
	if err := s.pprofTop(ctx, bin, dir, "ingest.cpu.pprof", ""); err != nil {
		return err
	}
	return s.pprofTop(ctx, bin, dir, "ingest.allocs.pprof", "alloc_space")
}

// pprofTop writes `go tool pprof -top` of a profile next to it, cumulative and flat.
func (s *suite) pprofTop(ctx context.Context, bin, dir, profile, index string) error {
	name := profile
	args := []string{"tool", "pprof", "-top", "-nodecount", "45"}
	if index != "" {
		args = append(args, "-sample_index", index)
		name += "." + index
	}
	for _, order := range []string{"flat", "cum"} {
		a := append(args, "-"+order, bin, filepath.Join(dir, profile))
		out, err := exec.CommandContext(ctx, "go", a...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %w\n%s", profile, err, out)
		}
		path := filepath.Join(dir, name+"."+order+".txt")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func download(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
