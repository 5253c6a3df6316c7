// Command jobcost measures how long a Progress call holds a job, call by call, with a
// real client publishing to a real server in the background. It times each call with
// time.Now on both sides and subtracts the median cost of that pair measured alone.
// Calls are timed twice: back to back (the sender competes for the queue's lock) and
// paced, as in a job that does work between its reports. The loopback round trip to
// the server is measured too: a call that waited for the network could not be
// faster than it. It prints results.JobCost as JSON.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/bench/internal/results"
	"github.com/miniray/miniray/bench/internal/workload"
	"github.com/miniray/miniray/pkg/tracking"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobcost:", err)
		os.Exit(1)
	}
}

type options struct {
	url   string
	calls int
	paced int
	pace  time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("jobcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "nats-url", "nats://127.0.0.1:4222", "NATS server of a collector")
	fs.IntVar(&o.calls, "calls", 200_000, "Progress calls timed back to back")
	fs.IntVar(&o.paced, "paced", 20_000, "Progress calls timed with a pause between them")
	fs.DurationVar(&o.pace, "pace", 100*time.Microsecond, "time from one paced call to the next")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.calls < 1 || o.paced < 1 || o.pace <= 0 {
		return o, fmt.Errorf("--calls, --paced and --pace must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	spool, err := os.MkdirTemp("", "miniray-bench-spool-")
	if err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	defer os.RemoveAll(spool)
	nc, err := nats.Connect(o.url, nats.Name("miniray-bench-jobcost"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.url, err)
	}
	defer nc.Close()
	rtt, err := medianRTT(nc, 51)
	if err != nil {
		return err
	}

	// The client as a job has it: the default queue, whose excess goes through the
	// spool when the calls outrun NATS, as back to back they do.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := tracking.NewClient(nc,
		tracking.WithSpoolDir(spool),
		tracking.WithLogger(log))
	if err != nil {
		return err
	}
	var res results.JobCost
	job := tracking.Training(func(ctx context.Context, _ int) (int, error) {
		res = measure(tracking.FromContext(ctx), o)
		flushCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return 0, c.Flush(flushCtx)
	}, tracking.WithClient(c), tracking.WithName("bench-jobcost"))
	_, jobErr := job(ctx, 0)

	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.Close(closeCtx); err != nil && jobErr == nil {
		jobErr = err
	}
	if jobErr != nil {
		return jobErr
	}
	res.RTTNs = float64(rtt)
	res.Dropped = c.Dropped()
	if res.Dropped > 0 {
		return fmt.Errorf("%d progress events dropped: the spool could not be written",
			res.Dropped)
	}
	return results.Print(stdout, res)
}

// measure times every call. The samples are allocated before the loops, so that
// the loops allocate nothing but what Progress does.
func measure(task *tracking.Task, o options) results.JobCost {
	d := make([]time.Duration, max(o.calls, o.paced))

	for i := range d {
		t0 := time.Now()
		d[i] = time.Since(t0)
	}
	overhead := results.Summarise(d, 0)
	empty := time.Duration(overhead.MedianNs)

	metrics := workload.Metrics(0, o.calls)
	d = d[:o.calls]
	for i := range d {
		workload.SetMetrics(metrics, i, o.calls)
		t0 := time.Now()
		task.Progress(i, o.calls, metrics)
		d[i] = time.Since(t0)
	}
	back := results.Summarise(d, empty)

	d = d[:o.paced]
	next := time.Now()
	for i := range d {
		next = next.Add(o.pace)
		for time.Now().Before(next) {
			// A busy wait stands for the job's work, which keeps its core busy; a sleep
			// would park the goroutine and wake it late.
		}
		workload.SetMetrics(metrics, i, o.paced)
		t0 := time.Now()
		task.Progress(i, o.paced, metrics)
		d[i] = time.Since(t0)
	}
	return results.JobCost{
		OverheadNs: overhead.MedianNs,
		BackToBack: back,
		Paced:      results.Summarise(d, empty),
		PaceNs:     float64(o.pace),
	}
}

func medianRTT(nc *nats.Conn, n int) (time.Duration, error) {
	d := make([]time.Duration, n)
	for i := range d {
		rtt, err := nc.RTT()
		if err != nil {
			return 0, fmt.Errorf("round trip to nats: %w", err)
		}
		d[i] = rtt
	}
	return time.Duration(results.Summarise(d, 0).MedianNs), nil
}
