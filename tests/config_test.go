package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfigExitsTwo runs the real programs with bad settings: each must exit
// with code 2 and name the setting and where it came from.
func TestBadConfigExitsTwo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte("nats_url: \"\"\ndata_dri: /tmp/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		program string
		args    []string
		env     []string
		want    []string
	}{
		{"collector", []string{"--config", file}, nil, []string{"data_dri", "bad.yaml"}},
		{"collector", []string{"--nats-listen", "nowhere"}, nil, []string{"--nats-listen"}},
		{"collector", nil, []string{"MINIRAY_DUPLICATE_WINDOW=forever"},
			[]string{"MINIRAY_DUPLICATE_WINDOW", "forever"}},
		{"dashboard", []string{"--http", "127.0.0.1"}, nil, []string{"--http"}},
		{"dashboard", []string{"--limit", "5"}, nil, []string{"limit"}},
		{"dashboard", nil, []string{"MINIRAY_LOG_LEVEL=loud"}, []string{"MINIRAY_LOG_LEVEL"}},
	}
	for _, c := range cases {
		t.Run(c.program+" "+strings.Join(append(c.args, c.env...), " "), func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, c.program), c.args...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("got %v, want exit code 2\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
		})
	}
}
