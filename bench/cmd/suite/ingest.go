package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/miniray/miniray/bench/internal/results"
	"github.com/miniray/miniray/bench/internal/workload"
)

// messageSize measures the encoded size of a typical progress event, the message
// size every nats bench run uses.
func (s *suite) messageSize(context.Context) error {
	n, err := workload.ProgressSize()
	if err != nil {
		return err
	}
	s.report.MessageSize = n
	s.logf("   a progress event with a step, a total and 3 metrics encodes to %d bytes", n)
	return nil
}

// runJSON runs one of the bench programs and decodes the JSON it prints into v;
// m counts its CPU as the suite's. Its standard error goes to a log file.
func (s *suite) runJSON(ctx context.Context, m *meter, timeout time.Duration, v any,
	name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dir, err := s.newDir(name)
	if err != nil {
		return err
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, s.benchBin(name), args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = &out, logFile
	err = cmd.Run()
	m.child(cmd.ProcessState)
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(logPath, 10))
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return fmt.Errorf("%s printed %q: %w", name, out.String(), err)
	}
	return nil
}

// IngestRun is one run of the ingest job.
type IngestRun struct {
	results.Ingest
	Load Load `json:"load"`
}

func (r *IngestRun) load() *Load { return &r.Load }
func (r *IngestRun) discard()    {}

// ingest compares a job publishing progress events through pkg/tracking with nats
// bench publishing messages of the same size, each run on a fresh collector. The
// two alternate, so that a change in the machine's load touches both.
func (s *suite) ingest(ctx context.Context) error {
	r := &s.report.Ingest
	r.Events = s.plan.pubEvents
	for range s.plan.reps {
		nr, err := retried(s, "nats bench js pub async", func() (*NATSRun, error) {
			return s.natsPub(ctx, r.Events)
		})
		if err != nil {
			return err
		}
		r.NATS = append(r.NATS, *nr)
		s.logf("   nats bench js pub async: %s msgs/s (%.2f cores of other work)",
			count(nr.MsgsPerSec), nr.Load.OtherDuring)

		ours, err := retried(s, "ingest", func() (*IngestRun, error) {
			return s.ingestOnce(ctx, r.Events)
		})
		if err != nil {
			return err
		}
		r.Ours = append(r.Ours, *ours)
		s.logf("   pkg/tracking: %s events/s, the Progress loop alone %s calls/s"+
			" (%.2f cores of other work)", count(ours.EventsPerSec),
			count(float64(ours.Events)/ours.CallSeconds), ours.Load.OtherDuring)
	}
	return nil
}

func (s *suite) natsPub(ctx context.Context, n int) (*NATSRun, error) {
	c, err := s.startCollector(ctx, "pub")
	if err != nil {
		return nil, err
	}
	defer c.stop()
	l, err := s.waitQuiet(ctx, "nats bench js pub async")
	if err != nil {
		return nil, err
	}
	m := newMeter(c.pid())
	nr, err := s.natsBench(ctx, m, c.natsURL, 5*time.Minute,
		"pub", "async", "bench.progress",
		"--create", "--storage", "file", "--dedup",
		"--size", strconv.Itoa(s.report.MessageSize),
		"--msgs", strconv.Itoa(n))
	l.OtherDuring = m.others()
	nr.Load = l
	return &nr, err
}

func (s *suite) ingestOnce(ctx context.Context, n int) (*IngestRun, error) {
	c, err := s.startCollector(ctx, "ingest")
	if err != nil {
		return nil, err
	}
	defer c.stop()
	l, err := s.waitQuiet(ctx, "ingest")
	if err != nil {
		return nil, err
	}
	m := newMeter(c.pid())
	var run IngestRun
	err = s.runJSON(ctx, m, 5*time.Minute, &run.Ingest, "ingest",
		"--nats-url", c.natsURL, "--events", strconv.Itoa(n))
	l.OtherDuring = m.others()
	run.Load = l
	if err == nil && run.EventsPerSec <= 0 {
		err = fmt.Errorf("ingest measured %v events/s", run.EventsPerSec)
	}
	return &run, err
}

func (r *JobCostReport) load() *Load { return &r.Load }
func (r *JobCostReport) discard()    {}

// jobCost times Progress call by call against a fresh collector, then runs the
// package's own benchmark for its allocations.
func (s *suite) jobCost(ctx context.Context) error {
	r, err := retried(s, "jobcost", func() (*JobCostReport, error) {
		return s.jobCostOnce(ctx)
	})
	if err != nil {
		return err
	}
	s.logf("   Progress back to back: median %s, p99 %s; paced: median %s, p99 %s;"+
		" loopback round trip %s (%.2f cores of other work)", ns(r.BackToBack.MedianNs),
		ns(r.BackToBack.P99Ns), ns(r.Paced.MedianNs), ns(r.Paced.P99Ns), ns(r.RTTNs),
		r.Load.OtherDuring)
	if r.GoBench, err = s.goBench(ctx); err != nil {
		return err
	}
	s.logf("   %s", r.GoBench.Line)
	s.report.JobCost = *r
	return nil
}

func (s *suite) jobCostOnce(ctx context.Context) (*JobCostReport, error) {
	c, err := s.startCollector(ctx, "jobcost")
	if err != nil {
		return nil, err
	}
	defer c.stop()
	l, err := s.waitQuiet(ctx, "jobcost")
	if err != nil {
		return nil, err
	}
	m := newMeter(c.pid())
	var r JobCostReport
	err = s.runJSON(ctx, m, 5*time.Minute, &r.JobCost, "jobcost",
		"--nats-url", c.natsURL,
		"--calls", strconv.Itoa(s.plan.jobCalls),
		"--paced", strconv.Itoa(s.plan.jobPaced))
	l.OtherDuring = m.others()
	r.Load = l
	if err == nil && (r.BackToBack.Count == 0 || r.BackToBack.MedianNs <= 0 || r.RTTNs <= 0) {
		err = fmt.Errorf("jobcost measured nothing: %+v", r.JobCost)
	}
	return &r, err
}

// GoBench is one line of `go test -bench` output.
type GoBench struct {
	Line        string  `json:"line"`
	N           int     `json:"n"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

var benchLine = regexp.MustCompile(
	`(?m)^(BenchmarkProgress\S*)\s+(\d+)\s+([\d.]+) ns/op\s+([\d.]+) B/op\s+([\d.]+) allocs/op`)

func (s *suite) goBench(ctx context.Context) (GoBench, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkProgress$", "-benchmem",
		"-benchtime", s.plan.benchtime, "-count", "1", "./pkg/tracking"}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = s.opts.repo
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return GoBench{}, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err,
			lastLines(string(out), 15))
	}
	m := benchLine.FindStringSubmatch(string(out))
	if m == nil {
		return GoBench{}, fmt.Errorf("go test printed no BenchmarkProgress line:\n%s",
			lastLines(string(out), 15))
	}
	g := GoBench{Line: strings.Join(strings.Fields(m[0]), " ")}
	g.N, _ = strconv.Atoi(m[2])
	g.NsPerOp, _ = strconv.ParseFloat(m[3], 64)
	g.BytesPerOp, _ = strconv.ParseFloat(m[4], 64)
	g.AllocsPerOp, _ = strconv.ParseFloat(m[5], 64)
	if g.NsPerOp <= 0 {
		return g, fmt.Errorf("BenchmarkProgress: %s", g.Line)
	}
	return g, nil
}
