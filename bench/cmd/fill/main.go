// Command fill publishes --tasks generated tasks of workload.EventsPerTask events
// each into miniray's stream, as fast as asynchronous publishing allows, so that a
// replay has a realistic history to read. Each event is published as pkg/events
// makes it (its subject, its id as Nats-Msg-Id), so the stream holds what real jobs
// would leave. It writes the task ids to --ids, one a line, prints results.Fill as
// JSON, and fails unless the stream grew by exactly the number of events.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/bench/internal/results"
	"github.com/miniray/miniray/bench/internal/workload"
	"github.com/miniray/miniray/pkg/events"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fill:", err)
		os.Exit(1)
	}
}

type options struct {
	url   string
	tasks int
	ids   string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "nats-url", "nats://127.0.0.1:4222", "NATS server of a collector")
	fs.IntVar(&o.tasks, "tasks", 10_000, "tasks to generate")
	fs.StringVar(&o.ids, "ids", "", "file to write the task ids to (required)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.tasks < 1 || o.ids == "" {
		return o, errors.New("--tasks must be positive and --ids given")
	}
	return o, nil
}

// publishWait bounds the wait for the last acknowledgements, and stallWait the
// wait for room in the window of unacknowledged messages: the server may pause
// while the collector's watchdog folds the same events.
const (
	publishWait = 2 * time.Minute
	stallWait   = 10 * time.Second
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(o.url, nats.Name("miniray-bench-fill"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.url, err)
	}
	defer nc.Close()
	var failed atomic.Uint64
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(publishWait),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {
			failed.Add(1)
		}))
	if err != nil {
		return fmt.Errorf("jetstream context: %w", err)
	}
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	before := stream.CachedInfo().State

	ids, err := os.Create(o.ids)
	if err != nil {
		return fmt.Errorf("ids file: %w", err)
	}
	defer ids.Close()
	w := bufio.NewWriter(ids)

	start := time.Now()
	n, err := publish(ctx, js, o.tasks, w)
	if err != nil {
		return err
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(publishWait):
		return fmt.Errorf("%d publishes unacknowledged after %s", js.PublishAsyncPending(),
			publishWait)
	case <-ctx.Done():
		return ctx.Err()
	}
	elapsed := time.Since(start)
	if err := errors.Join(w.Flush(), ids.Close()); err != nil {
		return fmt.Errorf("ids file: %w", err)
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d publishes failed", f, n)
	}

	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	if grew := info.State.Msgs - before.Msgs; grew != uint64(n) {
		return fmt.Errorf("stream grew by %d messages, want %d", grew, n)
	}
	return results.Print(stdout, results.Fill{
		Tasks:        o.tasks,
		Events:       n,
		Seconds:      elapsed.Seconds(),
		EventsPerSec: float64(n) / elapsed.Seconds(),
		StreamMsgs:   info.State.Msgs,
		StreamBytes:  info.State.Bytes,
		IDsFile:      o.ids,
	})
}

// publish generates and publishes the tasks' events, and writes each task id to ids.
// PublishMsgAsync blocks while the client's window of unacknowledged messages is
// full (4,000 by default), which paces the loop to the server.
func publish(ctx context.Context, js jetstream.JetStream, tasks int, ids io.Writer) (int, error) {
	g := workload.NewGenerator(tasks)
	n := 0
	for i := range tasks {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		evs := g.Task(i)
		fmt.Fprintln(ids, evs[0].TaskID)
		for j := range evs {
			m, err := evs[j].Msg()
			if err != nil {
				return n, err
			}
			if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(stallWait)); err != nil {
				return n, fmt.Errorf("publish event %d: %w", n, err)
			}
			n++
		}
	}
	return n, nil
}
