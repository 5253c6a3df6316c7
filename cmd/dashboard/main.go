// Command dashboard replays miniray's event stream into the projection and serves
// the task states over a REST API and a web page.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/config"
	"github.com/miniray/miniray/internal/connect"
	"github.com/miniray/miniray/pkg/projection"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, stop, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(config.ExitCode(err, "dashboard", os.Stderr))
}

// run serves until ctx ends. It calls stopSignals once shutdown begins, so that a
// second signal kills the process.
func run(ctx context.Context, stopSignals func(), args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	base := cfg.log
	log := base.With("component", "dashboard")

	// The API listens before NATS is reached, so that /healthz answers and /readyz
	// says why the dashboard is not ready yet.
	proj := projection.New(base)
	st := &state{proj: proj}
	ln, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.http, err)
	}
	if cfg.tls != nil {
		ln = tls.NewListener(ln, cfg.tls)
	}
	srv := &http.Server{Handler: handler(st, cfg, log), ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	url := cfg.scheme() + "://" + ln.Addr().String()
	log.Info("dashboard listening", "url", url, "token", cfg.token != "")
	switch {
	case cfg.open && config.Loopback(cfg.http):
		log.Info("listening without authentication on loopback: anyone on this machine"+
			" can read every task", "http", cfg.http)
	case cfg.open:
		log.Warn("listening beyond loopback without authentication (allow_insecure_bind):"+
			" anyone who reaches this address can read every task", "http", cfg.http)
	}
	fmt.Fprintf(stdout, "miniray dashboard: %s\n", url)

	replayCtx, stopReplay := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { replay(ctx, replayCtx, cfg, st, base) })

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		stopReplay()
		wg.Wait()
		return fmt.Errorf("serve http: %w", err)
	}
	stopSignals()
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("http shutdown", "error", err)
	}
	stopReplay()
	wg.Wait()
	return nil
}

// replay connects to NATS, makes sure the store exists and runs the replayer until
// replayCtx ends. ctx ends the connection attempts.
func replay(ctx, replayCtx context.Context, cfg settingsValues, st *state, base *slog.Logger) {
	log := base.With("component", "dashboard")
	nc, err := connect.NATS(ctx, cfg.natsURL, "miniray-dashboard", log,
		connect.Options(cfg.nats)...)
	if err != nil {
		if ctx.Err() == nil {
			st.setError(err)
			log.Error("connect to nats", "error", err)
		}
		return
	}
	defer nc.Close()
	st.setConn(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		log.Error("jetstream context", "error", err)
		return
	}
	if err := connect.Store(ctx, js, cfg.store, false, log); err != nil {
		st.setError(err)
		if !errors.Is(err, context.Canceled) {
			log.Error("stream and bucket unusable", "error", err)
		}
		return
	}
	r := projection.NewReplayer(js, st.proj, base)
	r.FlushInterval = cfg.flush
	st.setReplayer(r)
	if err := r.Run(replayCtx); err != nil {
		st.setError(err)
		log.Error("replay", "error", err)
	}
}
