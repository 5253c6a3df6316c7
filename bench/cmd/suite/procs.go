package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a program the suite started. Its output goes to a log file in the work
// directory, whose tail is shown when a step fails.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error
}

// procs tracks every program still running, so that a failing or interrupted run
// leaves none behind.
type procs struct {
	mu   sync.Mutex
	live map[*proc]bool
}

func newProcs() *procs { return &procs{live: make(map[*proc]bool)} }

// childEnv is the suite's environment without MINIRAY_* variables: a developer's
// MINIRAY_NATS_URL or spool dir must not send a benchmark elsewhere.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIRAY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// start runs bin with args, its output into logPath.
func (ps *procs) start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.live[p] = true
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		ps.mu.Lock()
		delete(ps.live, p)
		ps.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// stopAll stops every program still running.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	var all []*proc
	for p := range ps.live {
		all = append(all, p)
	}
	ps.mu.Unlock()
	for _, p := range all {
		p.stop()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the program has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the program to end with SIGTERM and kills it if it has not within 15s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// failure wraps err with the program's state and the tail of its log.
func (p *proc) failure(err error) error {
	state := "running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	return fmt.Errorf("%s (%s): %w\n--- last lines of %s:\n%s", p.name, state, err,
		p.logPath, tail(p.logPath, 15))
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// peakRSS returns VmHWM, the program's peak resident set, in bytes.
func (p *proc) peakRSS() (uint64, error) {
	return statusBytes(p.cmd.Process.Pid, "VmHWM:")
}

func statusBytes(pid int, key string) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s in /proc/%d/status: %w", key, pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// newDir makes a new directory in the work directory, named after name and
// numbered, so that a measurement run again gets a fresh one.
func (s *suite) newDir(name string) (string, error) {
	s.dirs++
	dir := filepath.Join(s.work, fmt.Sprintf("%02d-%s", s.dirs, name))
	return dir, os.MkdirAll(dir, 0o755)
}

// collector is a running collector with its embedded NATS server.
type collector struct {
	*proc
	dir     string
	natsURL string
	httpURL string
}

// startCollector starts a collector on a fresh data directory and waits until it
// is ready. It watches no spool directory: the jobs of this machine are not part
// of a benchmark.
func (s *suite) startCollector(ctx context.Context, name string) (*collector, error) {
	dir, err := s.newDir(name)
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := s.procs.start(name+" collector", filepath.Join(dir, "collector.log"), childEnv(),
		s.bin("collector"),
		"--data-dir", filepath.Join(dir, "data"),
		"--nats-listen", natsAddr,
		"--http", httpAddr,
		"--spool-dir", "",
		"--log-level", "warn")
	if err != nil {
		return nil, err
	}
	c := &collector{proc: p, dir: dir, natsURL: "nats://" + natsAddr,
		httpURL: "http://" + httpAddr}
	if _, err := waitOK(ctx, p, c.httpURL+"/readyz", 10*time.Millisecond, time.Minute); err != nil {
		p.stop()
		return nil, p.failure(err)
	}
	return c, nil
}

// waitWatchdog waits until the collector's watchdog, which folds every event as a
// dashboard does, has applied the stream up to seq: until then it takes CPU from
// whatever is measured next.
func (c *collector) waitWatchdog(ctx context.Context, seq uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		applied, err := metricValue(ctx, c.httpURL+"/metrics", "miniray_replay_applied_seq")
		if err == nil && uint64(applied) >= seq {
			return nil
		}
		if time.Now().After(deadline) {
			return c.failure(fmt.Errorf("watchdog at seq %.0f after %s, want %d (%v)",
				applied, timeout, seq, err))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// dashboard is a running dashboard.
type dashboard struct {
	*proc
	url string
}

// startDashboard starts a dashboard that replays the collector's stream. It does
// not wait: the caller times the cold start from p.started.
func (s *suite) startDashboard(c *collector, name string, bin string, env []string) (*dashboard, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := s.newDir(name)
	if err != nil {
		return nil, err
	}
	p, err := s.procs.start(name+" dashboard", filepath.Join(dir, "dashboard.log"),
		childEnv(env...), bin,
		"--nats-url", c.natsURL,
		"--http", addr,
		"--log-level", "warn")
	if err != nil {
		return nil, err
	}
	return &dashboard{proc: p, url: "http://" + addr}, nil
}

// client is the suite's own HTTP client, for readiness checks and samples.
var client = &http.Client{Timeout: 5 * time.Second}

// waitOK polls url every interval until it answers 200, and returns the time from
// the program's start until then. It fails when the program exits or after timeout.
func waitOK(ctx context.Context, p *proc, url string, every, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		if code, _, err := get(ctx, url); err == nil && code == http.StatusOK {
			return time.Since(p.started), nil
		}
		if p.exited() {
			return 0, errors.New("exited before " + url + " answered 200")
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not 200 after %s", url, timeout)
		}
		if err := sleep(ctx, every); err != nil {
			return 0, err
		}
	}
}

// get fetches url and returns the status and the body.
func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// metricValue reads one unlabelled sample from a Prometheus text page.
func metricValue(ctx context.Context, url, name string) (float64, error) {
	code, body, err := get(ctx, url)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("%s: status %d", url, code)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s: no sample %s", url, name)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
