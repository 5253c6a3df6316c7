package main

import (
	"io"
	"testing"
	"time"
)

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../../configs/dashboard.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.natsURL != "nats://127.0.0.1:4222" || cfg.http != "127.0.0.1:8080" ||
		cfg.flush != 250*time.Millisecond || cfg.store.Replicas != 1 {
		t.Fatalf("got %+v", cfg)
	}
}
