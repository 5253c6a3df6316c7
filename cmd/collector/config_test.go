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
		cfg.store.Replicas != 1 || cfg.store.Duplicates != 2*time.Minute ||
		cfg.server.SyncInterval != time.Second || cfg.lostAfter != 30*time.Second ||
		cfg.spoolDir == "" || cfg.spoolScan != 5*time.Second {
		t.Fatalf("got %+v", cfg)
	}
}

func TestSyncIntervalAlways(t *testing.T) {
	cfg, err := loadConfig([]string{"--sync-interval", "always"}, io.Discard)
	if err != nil || cfg.server.SyncInterval >= 0 {
		t.Fatalf("got %v %v, want a negative interval", cfg.server.SyncInterval, err)
	}
	if _, err := loadConfig([]string{"--sync-interval", "0s"}, io.Discard); err == nil {
		t.Fatal("sync interval 0s accepted")
	}
}
