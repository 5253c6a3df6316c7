package main

import (
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/miniray/miniray/internal/config"
	"github.com/miniray/miniray/pkg/events"
)

var settings = append([]config.Setting{
	{Key: "nats_url", Default: "",
		Usage: "NATS server or cluster to use; empty starts the embedded server"},
	{Key: "nats_listen", Default: "127.0.0.1:4222",
		Usage: "client listen address of the embedded NATS server"},
	{Key: "data_dir", Default: "./data", Usage: "data directory of the embedded NATS server"},
	{Key: "sync_interval", Default: time.Duration(0),
		Usage: "fsync interval of the embedded server's store; 0 keeps NATS's 2m, " +
			"-1ns fsyncs every write"},
}, append(config.StoreSettings, config.LogSettings...)...)

type settingsValues struct {
	natsURL string
	server  events.ServerConfig
	store   events.StoreConfig
	vals    *config.Values
	log     *slog.Logger // the base logger, without a component
}

func loadConfig(args []string, stderr io.Writer) (settingsValues, error) {
	vals, err := config.Load("collector", args, settings, stderr)
	if err != nil {
		return settingsValues{}, err
	}
	s := settingsValues{
		natsURL: vals.String("nats_url"),
		server: events.ServerConfig{
			Listen:       vals.String("nats_listen"),
			DataDir:      vals.String("data_dir"),
			SyncInterval: vals.Duration("sync_interval"),
		},
		store: vals.StoreConfig(),
		vals:  vals,
		log:   vals.Logger(stderr),
	}
	if s.natsURL == "" {
		if _, _, err := net.SplitHostPort(s.server.Listen); err != nil {
			vals.Fail("nats_listen", "%v", err)
		}
		if s.server.DataDir == "" {
			vals.Fail("data_dir", "must not be empty")
		}
	}
	return s, vals.Err()
}
