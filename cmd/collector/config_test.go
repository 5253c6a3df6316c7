package main

import (
	"io"
	"strings"
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
	if _, err := loadConfig([]string{"--sync-interval", "soon"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), `"always"`) {
		t.Errorf("sync_interval soon: got %v, want an error that offers always", err)
	}
	if _, err := loadConfig([]string{"--sync-interval", "0s"}, io.Discard); err == nil {
		t.Fatal("sync interval 0s accepted")
	}
}

func TestOwnAddressMeansEmbedded(t *testing.T) {
	cases := []struct {
		url, listen string
		want        bool
	}{
		{"nats://127.0.0.1:4222", "127.0.0.1:4222", true},
		{"nats://localhost:4222", "127.0.0.1:4222", true},
		{"nats://127.0.0.1:4223", "127.0.0.1:4222", false},
		{"nats://a:4222,nats://b:4222", "127.0.0.1:4222", false},
		{"", "127.0.0.1:4222", false},
	}
	for _, c := range cases {
		if got := ownAddress(c.url, c.listen); got != c.want {
			t.Errorf("ownAddress(%q, %q): got %v, want %v", c.url, c.listen, got, c.want)
		}
	}
	t.Setenv("MINIRAY_NATS_URL", "nats://127.0.0.1:4222")
	cfg, err := loadConfig(nil, io.Discard)
	if err != nil || cfg.natsURL != "" {
		t.Fatalf("got %q %v, want the embedded server", cfg.natsURL, err)
	}
}

func TestBadValuesRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--nats-url", "   x"}, {"--nats-url", "http://a:1"}, {"--replicas", "3"},
		{"--nats-listen", "127.0.0.1:99999"}, {"--lost-after", "0s"},
	} {
		if _, err := loadConfig(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestCertificateWithoutKey(t *testing.T) {
	_, err := loadConfig([]string{"--http-tls-cert", "c.pem"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "flag --http-tls-cert: set without http_tls_key") {
		t.Fatalf("got %v, want the certificate's flag named, and the key it lacks", err)
	}
}
