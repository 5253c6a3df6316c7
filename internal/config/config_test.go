package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testSettings = append([]Setting{
	{Key: "nats_url", Default: "nats://127.0.0.1:4222", Usage: "url"},
	{Key: "http", Default: "127.0.0.1:8080", Usage: "listen"},
	{Key: "flush_interval", Default: 250 * time.Millisecond, Usage: "flush"},
}, append(StoreSettings, LogSettings...)...)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "nats_url: nats://file:1\nhttp: file:2\nreplicas: 3\n")
	t.Setenv("MINIRAY_HTTP", "env:3")
	t.Setenv("MINIRAY_REPLICAS", "2")
	vals, err := Load("test", []string{"--config", file, "--replicas", "5"}, testSettings, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := vals.String("nats_url"); got != "nats://file:1" {
		t.Errorf("file over default: got %s", got)
	}
	if got := vals.String("http"); got != "env:3" {
		t.Errorf("env over file: got %s", got)
	}
	if got := vals.Int("replicas"); got != 5 {
		t.Errorf("flag over env: got %d", got)
	}
	if got := vals.Duration("flush_interval"); got != 250*time.Millisecond {
		t.Errorf("default: got %s", got)
	}
	if vals.Err() != nil {
		t.Fatal(vals.Err())
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  [2]string
		args []string
		want []string
	}{
		{name: "unknown key", file: "nats_ulr: x\n", want: []string{"nats_ulr", "c.yaml"}},
		{name: "bad duration in file", file: "flush_interval: soon\n",
			want: []string{"flush_interval", "c.yaml", "soon"}},
		{name: "bad int in env", env: [2]string{"MINIRAY_REPLICAS", "three"},
			want: []string{"MINIRAY_REPLICAS", "three"}},
		{name: "bad level flag", args: []string{"--log-level", "loud"},
			want: []string{"--log-level", "loud"}},
		{name: "replicas out of range", args: []string{"--replicas", "9"},
			want: []string{"--replicas", "9"}},
		{name: "unknown flag", args: []string{"--nats-ulr", "x"}, want: []string{"nats-ulr"}},
		{name: "not yaml", file: "::: [", want: []string{"c.yaml"}},
		{name: "two documents", file: "---\n---\nhttp: x:1\n", want: []string{"c.yaml", "documents"}},
		{name: "fraction", file: "replicas: 1.5\n", want: []string{"replicas", "1.5"}},
		{name: "window over age", args: []string{"--duplicate-window", "2h", "--max-age", "1h"},
			want: []string{"duplicate-window"}},
		{name: "a list", file: "- nats_url: x\n", want: []string{"c.yaml", "a YAML list"}},
		{name: "url without scheme", args: []string{"--nats-url", "127.0.0.1:4222"},
			want: []string{"--nats-url", "nats://"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append(args, "--config", writeFile(t, c.file))
			}
			if c.env[0] != "" {
				t.Setenv(c.env[0], c.env[1])
			}
			vals, err := Load("test", args, testSettings, io.Discard)
			if err == nil {
				vals.Duration("flush_interval")
				vals.NATSURL("nats_url")
				vals.StoreConfig()
				vals.Logger(io.Discard)
				err = vals.Err()
			}
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("got %v, want a usage error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if code := ExitCode(err, "test", io.Discard); code != 2 {
				t.Errorf("exit code: got %d, want 2", code)
			}
		})
	}
}

func TestJSONLogsWriteDurationsAsText(t *testing.T) {
	vals, err := Load("test", []string{"--log-format", "json"}, testSettings, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	vals.Logger(&out).Info("waiting", "after", 30*time.Second)
	if !strings.Contains(out.String(), `"after":"30s"`) {
		t.Fatalf("got %s, want the duration as 30s", out.String())
	}
}
