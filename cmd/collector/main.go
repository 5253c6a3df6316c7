// Command collector is miniray's always-on backbone. By default it runs an embedded
// NATS server with JetStream and provisions the event stream and the task bucket;
// given a NATS URL it provisions them on that server or cluster instead.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/miniray/miniray/internal/config"
	"github.com/miniray/miniray/internal/connect"
	"github.com/miniray/miniray/internal/metrics"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, stop, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(config.ExitCode(err, "collector", os.Stderr))
}

// run serves until ctx ends. It calls stopSignals once shutdown begins, so that a
// second signal kills the process.
func run(ctx context.Context, stopSignals func(), args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	base := cfg.log
	log := base.With("component", "collector")

	reg := metrics.NewRegistry()
	st := newStatus(reg)
	ing := newIngest(cfg.ingestMaxBytes, base)
	ing.published = st.httpPublished
	stopHTTP, err := serveHTTP(cfg.http, cfg.web, st, reg, ing, log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	logOpen(log, "http", cfg.http, cfg.web.open, "the ingest of events")

	url := cfg.natsURL
	opts := connect.Options(cfg.nats)
	if url == "" {
		cfg.server.Logger = base.With("component", "nats-server")
		log.Info("starting embedded nats server", "listen", cfg.server.Listen,
			"data_dir", cfg.server.DataDir, "auth", cfg.server.Passwords.Enabled(),
			"tls", cfg.server.TLS != nil)
		srv, err := events.StartServer(cfg.server)
		if err != nil {
			return err
		}
		logOpen(log, "nats_listen", cfg.server.Listen, !cfg.server.Passwords.Enabled(),
			"every event")
		defer srv.Shutdown()
		url = srv.ClientURL()
		opts = srv.InProcess()
		if p := cfg.server.Passwords; p.Enabled() {
			opts = append(opts, nats.UserInfo(events.UserAdmin, p.Admin))
		}
	}

	nc, err := connect.NATS(ctx, url, "miniray-collector", log, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	st.set(func(st *status) { st.nc = nc })
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream context: %w", err)
	}
	if err := connect.Store(ctx, js, cfg.store, true, log); err != nil {
		return fmt.Errorf("provision store: %w", err)
	}
	st.set(func(st *status) { st.ready = true })
	if err := ing.attach(nc); err != nil {
		return err
	}
	log.Info("collector ready", "nats_url", config.Redact(url), "stream", events.StreamName,
		"bucket", events.BucketName, "lost_after", cfg.lostAfter, "spool_dir", cfg.spoolDir)
	fmt.Fprintf(stdout, "miniray collector: NATS at %s\n", config.Redact(url))

	var wg sync.WaitGroup
	wd := newWatchdog(js, cfg.lostAfter, base)
	wd.published = st.lostPublished
	metrics.RegisterProjection(reg, wd.proj, func() metrics.ReplayState { return wd.replay })
	st.set(func(st *status) { st.watchdog = wd })
	wg.Go(func() {
		if err := wd.run(ctx); err != nil {
			log.Error("watchdog stopped", "error", err)
		}
	})
	if cfg.spoolDir != "" {
		wg.Go(func() { drainSpools(ctx, js, cfg.spoolDir, cfg.spoolScan, st.spoolPublished, log) })
	}

	<-ctx.Done()
	stopSignals()
	log.Info("shutting down")
	wg.Wait()
	if err := nc.Drain(); err != nil {
		log.Warn("drain nats connection", "error", err)
	}
	return nil
}

// logOpen says, for a listener without authentication, who can reach what.
func logOpen(log *slog.Logger, key, addr string, open bool, what string) {
	switch {
	case !open:
	case config.Loopback(addr):
		log.Info("listening without authentication on loopback: anyone on this machine"+
			" can reach "+what, key, addr)
	default:
		log.Warn("listening beyond loopback without authentication (allow_insecure_bind):"+
			" anyone who reaches it can reach "+what, key, addr)
	}
}

// drainSpools sends, every interval, the spool files that jobs on this machine left
// behind while NATS could not be reached.
func drainSpools(ctx context.Context, js jetstream.JetStream, dir string, every time.Duration,
	sent prometheus.Counter, log *slog.Logger) {
	for {
		n, err := tracking.DrainSpool(ctx, js, dir, log)
		sent.Add(float64(n))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("send spool files", "dir", dir, "error", err)
		case n > 0:
			log.Info("sent spooled events", "dir", dir, "events", n)
		}
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return
		}
	}
}
