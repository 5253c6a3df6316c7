package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// NATSRun is one run of nats bench, as its CSV reports it.
type NATSRun struct {
	Msgs       int     `json:"msgs"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	Seconds    float64 `json:"seconds"`
	Load       Load    `json:"load"`
}

func (r *NATSRun) load() *Load { return &r.Load }
func (r *NATSRun) discard()    {}

// natsBench runs `nats bench js <args>` against url and reads its CSV; m counts its
// CPU as the suite's. The run is bounded by timeout: an ordered consumer that
// expects more messages than the stream holds would otherwise wait for ever.
func (s *suite) natsBench(ctx context.Context, m *meter, url string, timeout time.Duration,
	args ...string) (NATSRun, error) {
	csvPath := filepath.Join(s.work, fmt.Sprintf("nats-bench-%d.csv", time.Now().UnixNano()))
	full := append([]string{"--no-context", "-s", url, "bench", "js"}, args...)
	full = append(full, "--no-progress", "--csv", csvPath)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.opts.nats, full...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	m.child(cmd.ProcessState)
	if err != nil {
		return NATSRun{}, fmt.Errorf("nats %s: %w\n%s", strings.Join(full, " "), err,
			lastLines(string(out), 10))
	}
	run, err := readBenchCSV(csvPath)
	if err != nil {
		return NATSRun{}, fmt.Errorf("nats %s: %w\n%s", strings.Join(full, " "), err,
			lastLines(string(out), 10))
	}
	return run, nil
}

// readBenchCSV reads the first client's row of a nats bench CSV file. Its header
// starts with '#'; MsgCount counts acknowledgements too, so the message count is
// taken from rate and duration.
func readBenchCSV(path string) (NATSRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return NATSRun{}, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return NATSRun{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(rows) < 2 {
		return NATSRun{}, fmt.Errorf("%s: no figures", path)
	}
	col := make(map[string]int)
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "#")] = i
	}
	num := func(name string) (float64, error) {
		i, ok := col[name]
		if !ok || i >= len(rows[1]) {
			return 0, fmt.Errorf("%s: no column %s", path, name)
		}
		return strconv.ParseFloat(rows[1][i], 64)
	}
	rate, err := num("MsgsPerSec")
	if err != nil {
		return NATSRun{}, err
	}
	secs, err := num("DurationSecs")
	if err != nil {
		return NATSRun{}, err
	}
	if rate <= 0 || secs <= 0 {
		return NATSRun{}, fmt.Errorf("%s: rate %.0f over %.3fs", path, rate, secs)
	}
	return NATSRun{Msgs: int(rate*secs + 0.5), MsgsPerSec: rate, Seconds: secs}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
