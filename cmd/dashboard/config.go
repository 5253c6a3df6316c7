package main

import (
	"io"
	"log/slog"
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
}, append(config.StoreSettings, config.LogSettings...)...)

type settingsValues struct {
	natsURL string
	http    string
	flush   time.Duration
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
		store:   vals.StoreConfig(),
		vals:    vals,
		log:     vals.Logger(stderr),
	}
	if s.natsURL == "" {
		vals.Fail("nats_url", "must not be empty")
	}
	if s.flush <= 0 {
		vals.Fail("flush_interval", "%s is not positive", s.flush)
	}
	return s, vals.Err()
}
