package main

import (
	"io"
	"testing"
	"time"
)

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../../configs/collector.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.natsURL != "" || cfg.server.Listen != "127.0.0.1:4222" || cfg.server.DataDir != "./data" ||
		cfg.store.Replicas != 1 || cfg.store.Duplicates != 2*time.Minute {
		t.Fatalf("got %+v", cfg)
	}
}
