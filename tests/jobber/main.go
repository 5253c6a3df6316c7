// Command jobber is a job for the fault tests: a tracked training task that reports
// a given number of progress steps at a given pace, so that tests can kill things
// around it while it runs. It prints one JSON line with its task id and the longest
// time one progress report took, which the tests compare with the tracking bound.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/miniray/miniray/pkg/tracking"
)

type summary struct {
	TaskID      string  `json:"task_id"`
	Steps       int     `json:"steps"`
	MaxReportUS float64 `json:"max_report_us"`
	Spooled     uint64  `json:"spooled"`
	Dropped     uint64  `json:"dropped"`
}

func main() {
	ctx, stop := tracking.SignalContext(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "jobber:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("jobber", flag.ContinueOnError)
	name := fs.String("name", "jobber", "task name")
	id := fs.String("task-id", "", "task id; generated when empty")
	steps := fs.Int("steps", 100, "progress reports to send")
	every := fs.Duration("every", 0, "pause between reports")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Credentials and TLS trust from the environment, as a job run by compose has.
	natsOpts, err := tracking.EnvNATSOptions()
	if err != nil {
		return err
	}
	client, err := tracking.Connect(os.Getenv("MINIRAY_NATS_URL"),
		tracking.WithNATSOptions(natsOpts...))
	if err != nil {
		return err
	}
	opts := []tracking.Option{tracking.WithName(*name), tracking.WithClient(client)}
	if *id != "" {
		opts = append(opts, tracking.WithTaskID(*id))
	}
	var sum summary
	job := tracking.Training(func(ctx context.Context, n int) (int, error) {
		task := tracking.FromContext(ctx)
		sum.TaskID = task.ID()
		for i := 1; i <= n; i++ {
			start := time.Now()
			task.Progress(i, n, map[string]float64{"loss": 1 / float64(i), "step": float64(i)})
			sum.MaxReportUS = max(sum.MaxReportUS, float64(time.Since(start).Microseconds()))
			sum.Steps = i
			if *every > 0 {
				select {
				case <-time.After(*every):
				case <-ctx.Done():
					return i, ctx.Err()
				}
			}
		}
		return n, nil
	}, opts...)
	_, jobErr := job(ctx, *steps)

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	closeErr := client.Close(cctx)
	sum.Spooled, sum.Dropped = client.Spooled(), client.Dropped()
	if err := json.NewEncoder(stdout).Encode(sum); err != nil {
		return err
	}
	return errors.Join(jobErr, closeErr)
}
