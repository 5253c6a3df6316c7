// Command ingest measures how many events a job publishes through pkg/tracking: one
// training task calls Progress as fast as it can for --events events, then Flush.
// The rate is the number of events over the time from the first call until Flush
// returned, that is until JetStream acknowledged the last of them. It prints the
// figures as JSON (see results.Ingest) and fails when an event went missing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/bench/internal/results"
	"github.com/miniray/miniray/bench/internal/workload"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

type options struct {
	url        string
	events     int
	spoolDir   string
	queueSize  int
	cpuProfile string
	memProfile string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "nats-url", "nats://127.0.0.1:4222", "NATS server of a collector")
	fs.IntVar(&o.events, "events", 100_000, "progress events to publish")
	fs.StringVar(&o.spoolDir, "spool-dir", "", "spool directory (default: a new temporary one)")
	fs.IntVar(&o.queueSize, "queue-size", tracking.DefaultQueueSize,
		"events the client's queue holds before the oldest go to the spool")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.events < 1 {
		return o, fmt.Errorf("--events %d: must be positive", o.events)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.spoolDir == "" {
		dir, err := os.MkdirTemp("", "miniray-bench-spool-")
		if err != nil {
			return fmt.Errorf("spool dir: %w", err)
		}
		defer os.RemoveAll(dir)
		o.spoolDir = dir
	}
	nc, err := nats.Connect(o.url, nats.Name("miniray-bench-ingest"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.url, err)
	}
	defer nc.Close()

	// By default the client as a job has it: the loop outruns NATS, so past the
	// queue's size the excess goes through the spool and back, and that is measured.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := tracking.NewClient(nc,
		tracking.WithQueueSize(o.queueSize),
		tracking.WithSpoolDir(o.spoolDir),
		tracking.WithLogger(log))
	if err != nil {
		return err
	}
	stopProfile, err := startProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	res, jobErr := measure(ctx, c, o.events)
	stopProfile()
	if err := writeHeapProfile(o.memProfile); err != nil {
		return err
	}

	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	closeErr := c.Close(closeCtx)
	if jobErr != nil {
		return jobErr
	}
	if closeErr != nil {
		return closeErr
	}
	res.Dropped = c.Dropped()
	if res.StreamMsgs, err = streamMsgs(ctx, nc); err != nil {
		return err
	}
	// submitted, started, the progress events and completed; heartbeats may add more.
	if want := uint64(o.events + 3); res.StreamMsgs < want || res.Dropped > 0 {
		return fmt.Errorf("stream holds %d messages, want at least %d; %d dropped",
			res.StreamMsgs, want, res.Dropped)
	}
	return results.Print(stdout, res)
}

// measure runs one tracked training job that reports n progress events and waits
// for their acknowledgement.
func measure(ctx context.Context, c *tracking.Client, n int) (results.Ingest, error) {
	job := tracking.Training(func(ctx context.Context, n int) (results.Ingest, error) {
		task := tracking.FromContext(ctx)
		metrics := workload.Metrics(0, n)
		start := time.Now()
		for i := 1; i <= n; i++ {
			workload.SetMetrics(metrics, i, n)
			task.Progress(i, n, metrics)
		}
		calls := time.Since(start)
		flushCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := c.Flush(flushCtx); err != nil {
			return results.Ingest{}, err
		}
		total := time.Since(start)
		return results.Ingest{
			Events:       n,
			CallSeconds:  calls.Seconds(),
			Seconds:      total.Seconds(),
			EventsPerSec: float64(n) / total.Seconds(),
		}, nil
	}, tracking.WithClient(c), tracking.WithName("bench-ingest"))
	return job(ctx, n)
}

func streamMsgs(ctx context.Context, nc *nats.Conn) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("jetstream context: %w", err)
	}
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, fmt.Errorf("open stream: %w", err)
	}
	return s.CachedInfo().State.Msgs, nil
}

func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	err = pprof.Lookup("allocs").WriteTo(f, 0)
	return errors.Join(err, f.Close())
}
