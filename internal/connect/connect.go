// Package connect opens the NATS connections of miniray's long-running programs.
package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/config"
	"github.com/miniray/miniray/pkg/events"
)

// NATS connects to url, retrying until the server answers or ctx ends, and logging
// each failed try, so that a program started before its server waits for it. Once
// connected, the connection reconnects by itself for ever.
func NATS(ctx context.Context, url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.Timeout(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil when we close the connection ourselves
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}, opts...)

	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			log.Info("nats connected", "url", nc.ConnectedUrlRedacted())
			return nc, nil
		}
		if permanent(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to nats %s: %w", config.Redact(url), err)
		}
		log.Warn("nats not reachable yet, retrying", "url", config.Redact(url),
			"attempt", attempt, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to nats %s: %w", config.Redact(url), ctx.Err())
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// permanent reports whether a connection error will not go away by retrying: a bad
// URL, or credentials the server refuses.
func permanent(err error) bool {
	return errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

// Store provisions (update true) or ensures (update false) the stream and the bucket,
// retrying while JetStream is not available yet, as in a cluster still electing its
// leader. A conflicting stream is returned at once: retrying cannot fix it.
func Store(ctx context.Context, js jetstream.JetStream, c events.StoreConfig, update bool,
	log *slog.Logger) error {
	wait := 250 * time.Millisecond
	for {
		var changes []string
		var err error
		if update {
			changes, err = events.Provision(ctx, js, c)
		} else {
			changes, err = events.Ensure(ctx, js, c)
		}
		for _, ch := range changes {
			log.Info("store provisioned", "change", ch)
		}
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("jetstream not ready, retrying", "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// retryable reports whether a provisioning error may go away by itself: JetStream
// not enabled or not ready yet, a timeout, no responders while a cluster forms. An
// error the server gives for the request itself (replicas it cannot place, a
// conflicting stream) will not.
func retryable(err error) bool {
	if errors.Is(err, events.ErrStreamConflict) || errors.Is(err, events.ErrInvalidStore) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408 ||
			apiErr.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled ||
			apiErr.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabledForAccount
	}
	return true
}
