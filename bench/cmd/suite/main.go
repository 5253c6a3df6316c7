// Command suite runs miniray's benchmarks in one run on one machine and sets each
// figure beside the limit that NATS itself reaches there: ingest through
// pkg/tracking against `nats bench js pub async`, a dashboard's cold replay against
// `nats bench js ordered` over the same stream, the API under load against its own
// /healthz, the cost of a progress call to the job, memory and scaling. Every
// measurement gets a fresh collector (the embedded NATS server miniray runs on) on
// a fresh data directory. It prints a table, writes the figures as JSON and, in a
// full run, the table into docs/benchmarks.md between its markers. It exits
// non-zero when a step fails; missed targets are reported, not failures.
//
// scripts/bench.sh builds the programs and tools and runs it; see
// docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "suite:", err, "(see --help)")
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

type options struct {
	smoke    bool
	repo     string
	bin      string
	benchBin string
	nats     string
	wrk      string
	out      string
	docs     string
	keep     bool
	profile  string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.smoke, "smoke", false,
		"small run (about 20,000 events) that checks every step; no targets, no docs")
	fs.StringVar(&o.repo, "repo", ".", "root of the miniray repository")
	fs.StringVar(&o.bin, "bin", "bin", "directory of the built collector and dashboard")
	fs.StringVar(&o.benchBin, "bench-bin", "bin/bench", "directory of the built bench programs")
	fs.StringVar(&o.nats, "nats", "bin/tools/nats", "the nats CLI")
	fs.StringVar(&o.wrk, "wrk", "wrk", "the wrk load generator")
	fs.StringVar(&o.out, "out", "",
		"JSON file of the figures (default bench/results/latest.json, smoke.json with --smoke)")
	fs.StringVar(&o.docs, "docs", "",
		"markdown file whose generated section gets the table (default docs/benchmarks.md in"+
			" a full run; none with --smoke or --profile)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, data) after the run")
	fs.StringVar(&o.profile, "profile", "",
		"instead of the benchmarks, write CPU and heap profiles of the dashboard and of"+
			" ingest to this directory (needs bench-bin/dashboard-pprof)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if o.out == "" && o.profile == "" {
		o.out = filepath.Join(o.repo, "bench", "results", "latest.json")
		if o.smoke {
			o.out = filepath.Join(o.repo, "bench", "results", "smoke.json")
		}
	}
	if o.docs == "" && !o.smoke && o.profile == "" {
		o.docs = filepath.Join(o.repo, "docs", "benchmarks.md")
	}
	return o, nil
}

// suite is one run of the benchmarks.
type suite struct {
	opts   options
	plan   plan
	work   string // logs, data directories and scratch files of this run
	dirs   int    // directories made in work, for their numbers
	procs  *procs
	log    io.Writer
	report Report
	// retryBudget is the time left for measuring again what other work disturbed,
	// quietBudget the time left for waiting for other work to calm down.
	retryBudget time.Duration
	quietBudget time.Duration
}

func (s *suite) bin(name string) string      { return filepath.Join(s.opts.bin, name) }
func (s *suite) benchBin(name string) string { return filepath.Join(s.opts.benchBin, name) }

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.log, format+"\n", args...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "miniray-bench-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	s := &suite{opts: o, plan: newPlan(o.smoke), work: work, procs: newProcs(), log: stdout}
	s.retryBudget, s.quietBudget = s.plan.retryBudget, s.plan.quietBudget
	defer func() {
		s.procs.stopAll()
		if err != nil || o.keep {
			fmt.Fprintf(stderr, "logs and data of this run kept in %s\n", work)
			return
		}
		os.RemoveAll(work)
	}()

	if o.profile != "" {
		return s.profileRun(ctx)
	}
	start := time.Now()
	if err := s.all(ctx); err != nil {
		return err
	}
	s.report.Seconds = time.Since(start).Seconds()
	s.report.evaluate(s.plan)

	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, s.report.table())
	if err := writeJSON(o.out, &s.report); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nfigures written to %s\n", o.out)
	if o.docs != "" {
		if err := updateDocs(o.docs, s.report.markdown()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "table written to %s\n", o.docs)
	}
	if !o.smoke && s.report.Seconds > s.plan.budget.Seconds() {
		fmt.Fprintf(stdout, "warning: the run took %.0fs, over its budget of %s\n",
			s.report.Seconds, s.plan.budget)
	}
	return nil
}

// all runs every benchmark in order: the cheap ones first, then the large replay,
// whose dashboard then serves the API benchmark.
func (s *suite) all(ctx context.Context) error {
	s.report.Mode = "full"
	if s.plan.smoke {
		s.report.Mode = "smoke"
	}
	s.report.Machine = s.machine(ctx)
	m := s.report.Machine
	s.logf("miniray benchmarks (%s run): %s, %d cores, %.1f GiB, %s, commit %s",
		s.report.Mode, m.CPU, m.NProc, float64(m.MemoryBytes)/(1<<30), m.GoVersion, m.Commit)
	s.logf("load average at start: %.2f %.2f %.2f", m.LoadAvg[0], m.LoadAvg[1], m.LoadAvg[2])

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"message size", s.messageSize},
		{"ingest", s.ingest},
		{"cost to the job", s.jobCost},
		{"scaling", s.scaling},
		{"replay, memory and API", s.replayAndAPI},
	}
	for _, st := range steps {
		s.logf("== %s", st.name)
		t0 := time.Now()
		if err := st.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		s.logf("   (%s took %.0fs)", st.name, time.Since(t0).Seconds())
	}
	return nil
}
