package main

import (
	"crypto/tls"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/miniray/miniray/internal/config"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

var settings = append([]config.Setting{
	{Key: "nats_url", Default: "nats://127.0.0.1:4222", Usage: "NATS server or cluster to read"},
	{Key: "http", Default: "127.0.0.1:8080", Usage: "listen address of the API and the page"},
	{Key: "flush_interval", Default: projection.DefaultFlushInterval,
		Usage: "how often changed task states are written to the KV bucket"},
	{Key: "http_token", Default: "",
		Usage: "bearer token needed to read the API, the event stream, the page and /metrics"},
}, slices.Concat(config.HTTPTLSSettings, config.NATSClientSettings, config.StoreSettings,
	config.LogSettings)...)

type settingsValues struct {
	natsURL string
	http    string
	flush   time.Duration
	token   string
	tls     *tls.Config // of the HTTP listener; nil serves plain HTTP
	open    bool        // the HTTP listener needs no token
	nats    config.NATSClient
	store   events.StoreConfig
	vals    *config.Values
	log     *slog.Logger // the base logger, without a component
}

func loadConfig(args []string, stderr io.Writer) (settingsValues, error) {
	vals, err := config.Load("dashboard", args, settings, stderr)
	if err != nil {
		return settingsValues{}, err
	}
	s := settingsValues{
		natsURL: vals.NATSURL("nats_url"),
		http:    vals.Address("http"),
		flush:   vals.Duration("flush_interval"),
		token:   vals.Token("http_token"),
		tls:     vals.TLS("http_tls_cert", "http_tls_key"),
		nats:    vals.NATSClient(),
		store:   vals.StoreConfig(),
		vals:    vals,
		log:     vals.Logger(stderr),
	}
	s.open = vals.CheckBind("http", s.http, s.token != "", "http_token")
	if s.natsURL == "" {
		vals.Fail("nats_url", "must not be empty")
	}
	if s.flush <= 0 {
		vals.Fail("flush_interval", "%s is not positive", s.flush)
	}
	return s, vals.Err()
}
