package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// APIRun is what wrk measured on one endpoint.
type APIRun struct {
	Name        string  `json:"name"`
	Path        string  `json:"path"`
	Requests    int     `json:"requests"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	Errors      int     `json:"errors"` // non-2xx answers, socket errors and timeouts
	Connections int     `json:"connections"`
	Load        Load    `json:"load"`
}

func (r *APIRun) load() *Load { return &r.Load }
func (r *APIRun) discard()    {}

// wrkReport is the Lua that makes wrk print its figures as one JSON line: the
// summary it prints by default has rounded, unit-suffixed numbers.
const wrkReport = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
`

// wrkRandomIDs makes each request ask for a task picked at random from the file of
// ids given after "--".
const wrkRandomIDs = `
local ids = {}
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  math.randomseed(os.time() + #ids)
end
request = function()
  return wrk.format(nil, "/api/tasks/" .. ids[math.random(#ids)])
end
`

// wrkRun loads base+path with wrk for d over the plan's connections and threads;
// m counts wrk's CPU as the suite's. With idsFile set, path is ignored and each
// request asks for a random task of the file.
func (s *suite) wrkRun(ctx context.Context, m *meter, name, base, path, idsFile string,
	d time.Duration) (APIRun, error) {
	script := wrkReport
	if idsFile != "" {
		script += wrkRandomIDs
	}
	scriptPath := filepath.Join(s.work, "wrk-"+name+".lua")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return APIRun{}, err
	}
	args := []string{
		"-t", strconv.Itoa(s.plan.threads),
		"-c", strconv.Itoa(s.plan.conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "30s",
		"-s", scriptPath,
		base + path,
	}
	if idsFile != "" {
		args = append(args, "--", idsFile)
	}
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.opts.wrk, args...)
	out, err := cmd.CombinedOutput()
	m.child(cmd.ProcessState)
	if err != nil {
		return APIRun{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err,
			lastLines(string(out), 10))
	}
	var raw struct {
		Requests   int   `json:"requests"`
		DurationUs int64 `json:"duration_us"`
		Errors     int   `json:"errors"`
		P50Us      int64 `json:"p50_us"`
		P90Us      int64 `json:"p90_us"`
		P99Us      int64 `json:"p99_us"`
		MaxUs      int64 `json:"max_us"`
	}
	_, line, ok := strings.Cut(string(out), "WRKJSON ")
	if !ok {
		return APIRun{}, fmt.Errorf("wrk %s printed no figures:\n%s", path, lastLines(string(out), 10))
	}
	line, _, _ = strings.Cut(line, "\n")
	if err := json.Unmarshal([]byte(line), &raw); err != nil {
		return APIRun{}, fmt.Errorf("wrk figures %q: %w", line, err)
	}
	secs := float64(raw.DurationUs) / 1e6
	r := APIRun{
		Name:        name,
		Path:        path,
		Requests:    raw.Requests,
		Seconds:     secs,
		P50Ms:       float64(raw.P50Us) / 1e3,
		P90Ms:       float64(raw.P90Us) / 1e3,
		P99Ms:       float64(raw.P99Us) / 1e3,
		MaxMs:       float64(raw.MaxUs) / 1e3,
		Errors:      raw.Errors,
		Connections: s.plan.conns,
	}
	if secs > 0 {
		r.RPS = float64(raw.Requests) / secs
	}
	if r.Requests == 0 || r.Errors > 0 {
		return r, fmt.Errorf("wrk %s: %d requests, %d errors", path, r.Requests, r.Errors)
	}
	return r, nil
}
