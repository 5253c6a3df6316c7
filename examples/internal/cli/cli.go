// Package cli is the frame the example programs share: a context that SIGINT and
// SIGTERM cancel, exit codes, and closing tracking so that no event is lost at exit.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/miniray/miniray/pkg/tracking"
)

// ErrUsage marks a bad command line; Main exits with status 2 for it.
var ErrUsage = errors.New("usage")

// closeTimeout bounds the wait for NATS to acknowledge the last events. When NATS is
// down, Close returns at once anyway: the events are in the spool.
const closeTimeout = 10 * time.Second

// Main runs a program's run function and exits: 0 on success or -h, 2 for ErrUsage,
// 1 for any other error. After the first signal a second one kills the program at
// once, even while it waits for NATS.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := tracking.SignalContext(context.Background())
	go func() { <-ctx.Done(); stop() }()

	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(os.Stderr, "%s: %v\nrun '%s -h' for the flags\n", name, err, name)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// CloseTracking waits, for at most closeTimeout, until every event is acknowledged
// or spooled. It does not use ctx's cancellation: after a signal, the events still
// queued include the one that says the task was cancelled.
func CloseTracking(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := tracking.Close(ctx); err != nil {
		slog.Warn("tracking events not all delivered", "error", err)
	}
}
