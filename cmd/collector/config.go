package main

import (
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
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
		Usage: "listen address of the event ingest, the health checks and the metrics"},
	{Key: "nats_listen", Default: "127.0.0.1:4222",
		Usage: "client listen address of the embedded NATS server"},
	{Key: "data_dir", Default: "./data", Usage: "data directory of the embedded NATS server"},
	{Key: "sync_interval", Default: "1s",
		Usage: "how often the embedded server fsyncs its store, or \"always\" " +
			"to fsync every write"},
	{Key: "lost_after", Default: 3 * tracking.DefaultHeartbeat,
		Usage: "declare a pending or running task lost after this long without a sign of life"},
	{Key: "spool_dir", Default: tracking.SpoolDir(),
		Usage: "spool directory of the jobs on this machine, sent when NATS is up; " +
			"empty to not watch it"},
	{Key: "spool_scan", Default: 5 * time.Second, Usage: "how often the spool dir is checked"},
	{Key: "ingest_max_bytes", Default: defaultIngestMaxBytes,
		Usage: "largest body, in bytes, of a request to the HTTP ingest of events"},
	{Key: "ingest_token", Default: "",
		Usage: "bearer token needed on the HTTP listener's /api/ endpoints (event ingest)"},
	{Key: "nats_admin_password", Default: "",
		Usage: "embedded server: password of user admin, which the collector itself uses;" +
			" setting any nats_*_password turns on authentication"},
	{Key: "nats_dashboard_password", Default: "",
		Usage: "embedded server: password (or bcrypt hash) of user dashboard"},
	{Key: "nats_job_password", Default: "",
		Usage: "embedded server: password (or bcrypt hash) of user job"},
	{Key: "nats_tls_cert", Default: "",
		Usage: "embedded server: PEM certificate; with nats_tls_key clients must use TLS"},
	{Key: "nats_tls_key", Default: "", Usage: "embedded server: PEM private key of nats_tls_cert"},
}, slices.Concat(config.HTTPTLSSettings, config.NATSClientSettings, config.StoreSettings,
	config.LogSettings)...)

// The HTTP ingest holds a request's body in memory: 4 MiB is thousands of events,
// and 256 MiB is more than one request should ever cost the collector.
const (
	defaultIngestMaxBytes = 4 << 20
	maxIngestMaxBytes     = 256 << 20
)

type settingsValues struct {
	natsURL   string
	http      string
	lostAfter time.Duration
	spoolDir  string
	spoolScan time.Duration
	// ingestMaxBytes bounds a request to the HTTP ingest, which holds it in memory.
	ingestMaxBytes int64
	web            httpSecurity
	nats           config.NATSClient // for an external server
	server         events.ServerConfig
	store          events.StoreConfig
	vals           *config.Values
	log            *slog.Logger // the base logger, without a component
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
			Passwords: events.Passwords{
				Admin:     vals.String("nats_admin_password"),
				Dashboard: vals.String("nats_dashboard_password"),
				Job:       vals.String("nats_job_password"),
			},
			TLS: vals.TLS("nats_tls_cert", "nats_tls_key"),
		},
		lostAfter:      vals.Duration("lost_after"),
		spoolDir:       vals.String("spool_dir"),
		spoolScan:      vals.Duration("spool_scan"),
		ingestMaxBytes: int64(vals.Int("ingest_max_bytes")),
		web: httpSecurity{
			token: vals.Token("ingest_token"),
			tls:   vals.TLS("http_tls_cert", "http_tls_key"),
		},
		nats:  vals.NATSClient(),
		store: vals.StoreConfig(),
		vals:  vals,
		log:   vals.Logger(stderr),
	}
	if ownAddress(s.natsURL, s.server.Listen) {
		// The URL jobs use to reach this collector's own server (as in a shell where
		// MINIRAY_NATS_URL is exported for them) means the embedded server.
		s.natsURL = ""
	}
	s.web.open = vals.CheckBind("http", s.http, s.web.token != "", "ingest_token")
	if s.natsURL != "" {
		checkExternal(vals, s.server)
	}
	if s.natsURL == "" {
		checkEmbedded(vals, s.server)
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
	if s.ingestMaxBytes < 1<<10 || s.ingestMaxBytes > maxIngestMaxBytes {
		vals.Fail("ingest_max_bytes", "%d is not between 1024 and %d", s.ingestMaxBytes,
			maxIngestMaxBytes)
	}
	return s, vals.Err()
}

// checkEmbedded checks the security settings of the embedded server: the collector
// needs the admin's password once any is set, and a server reachable beyond
// loopback needs authentication unless allow_insecure_bind says otherwise.
func checkEmbedded(vals *config.Values, c events.ServerConfig) {
	if c.Passwords.Enabled() && c.Passwords.Admin == "" {
		vals.Fail("nats_admin_password", "empty, but another nats_*_password is set: the"+
			" collector connects as admin")
	}
	if strings.HasPrefix(c.Passwords.Admin, "$2") {
		vals.Fail("nats_admin_password", "looks like a bcrypt hash; the collector needs the"+
			" password itself to connect")
	}
	vals.CheckBind("nats_listen", c.Listen, c.Passwords.Enabled(),
		"the nats_*_password settings")
}

// checkExternal refuses the embedded server's security settings when nats_url
// names another server: they would be ignored in silence.
func checkExternal(vals *config.Values, c events.ServerConfig) {
	for key, set := range map[string]bool{
		"nats_admin_password":     c.Passwords.Admin != "",
		"nats_dashboard_password": c.Passwords.Dashboard != "",
		"nats_job_password":       c.Passwords.Job != "",
		"nats_tls_cert":           c.TLS != nil,
	} {
		if set {
			vals.Fail(key, "configures the embedded server, which does not run when"+
				" nats_url is set; configure users and TLS on that server")
		}
	}
}

// syncInterval reads sync_interval: a positive duration, or "always", which the
// server config takes as a negative interval.
func syncInterval(vals *config.Values) time.Duration {
	s := vals.String("sync_interval")
	if s == "always" {
		return -1
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		vals.Fail("sync_interval", "%q: want a positive duration such as 1s, or \"always\"", s)
		return 0
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
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") {
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
