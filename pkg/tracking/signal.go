package tracking

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext returns a context that is cancelled by SIGINT or SIGTERM, for a job's
// main to pass to its wrapped functions: a job stopped that way then ends as
// CANCELLED instead of vanishing. The handler lives only until stop is called, after
// which the signals act as before. Tracking installs no signal handler otherwise.
//
// Close the tracking client with a context that is not this one (for example
// context.WithoutCancel(ctx) with a timeout), or the cancellation event may not be
// sent.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
