package main

import (
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/miniray/miniray/internal/config"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

var settings = append([]config.Setting{
	{Key: "nats_url", Default: "",
		Usage: "NATS server or cluster to use; empty starts the embedded server"},
	{Key: "http", Default: "127.0.0.1:8081",
		Usage: "listen address of the health checks and the Prometheus metrics"},
	{Key: "nats_listen", Default: "127.0.0.1:4222",
		Usage: "client listen address of the embedded NATS server"},
	{Key: "data_dir", Default: "./data", Usage: "data directory of the embedded NATS server"},
	{Key: "sync_interval", Default: "1s",
		Usage: "how often the embedded server fsyncs its store, or \"always\" " +
			"to fsync every write"},
	{Key: "lost_after", Default: 3 * tracking.DefaultHeartbeat,
		Usage: "declare a running task lost after this long without a sign of life"},
	{Key: "spool_dir", Default: tracking.SpoolDir(),
		Usage: "spool directory of the jobs on this machine, sent when NATS is up; " +
			"empty to not watch it"},
	{Key: "spool_scan", Default: 5 * time.Second, Usage: "how often the spool dir is checked"},
}, append(config.StoreSettings, config.LogSettings...)...)

type settingsValues struct {
	natsURL   string
	http      string
	lostAfter time.Duration
	spoolDir  string
	spoolScan time.Duration
	server    events.ServerConfig
	store     events.StoreConfig
	vals      *config.Values
	log       *slog.Logger // the base logger, without a component
}

func loadConfig(args []string, stderr io.Writer) (settingsValues, error) {
	vals, err := config.Load("collector", args, settings, stderr)
	if err != nil {
		return settingsValues{}, err
	}
	s := settingsValues{
		natsURL: vals.NATSURL("nats_url"),
		http:    vals.Address("http"),
		server: events.ServerConfig{
			Listen:       vals.Address("nats_listen"),
			DataDir:      vals.String("data_dir"),
			SyncInterval: syncInterval(vals),
		},
		lostAfter: vals.Duration("lost_after"),
		spoolDir:  vals.String("spool_dir"),
		spoolScan: vals.Duration("spool_scan"),
		store:     vals.StoreConfig(),
		vals:      vals,
		log:       vals.Logger(stderr),
	}
	if ownAddress(s.natsURL, s.server.Listen) {
		// The URL jobs use to reach this collector's own server (as in a shell where
		// MINIRAY_NATS_URL is exported for them) means the embedded server.
		s.natsURL = ""
	}
	if s.natsURL == "" {
		if s.server.DataDir == "" {
			vals.Fail("data_dir", "must not be empty")
		}
		if s.store.Replicas > 1 {
			vals.Fail("replicas", "%d needs a NATS cluster (nats_url); the embedded server"+
				" is a single node", s.store.Replicas)
		}
	}
	if s.lostAfter <= 0 {
		vals.Fail("lost_after", "%s is not positive", s.lostAfter)
	}
	if s.spoolScan <= 0 {
		vals.Fail("spool_scan", "%s is not positive", s.spoolScan)
	}
	return s, vals.Err()
}

// syncInterval reads sync_interval: a positive duration, or "always", which the
// server config takes as a negative interval.
func syncInterval(vals *config.Values) time.Duration {
	if vals.String("sync_interval") == "always" {
		return -1
	}
	d := vals.Duration("sync_interval")
	if d <= 0 {
		vals.Fail("sync_interval", "%s: want a positive duration or \"always\"", d)
	}
	return d
}

// ownAddress reports whether natsURL is a single URL naming the embedded server's
// listen address.
func ownAddress(natsURL, listen string) bool {
	if natsURL == "" || strings.Contains(natsURL, ",") {
		return false
	}
	u, err := url.Parse(natsURL)
	if err != nil || u.Scheme != "nats" {
		return false
	}
	norm := func(hostport string) string {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return hostport
		}
		if host == "localhost" {
			host = "127.0.0.1"
		}
		return net.JoinHostPort(host, port)
	}
	return norm(u.Host) == norm(listen)
}
