package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the programs built once by TestMain.
var binDir string

var programs = map[string]string{
	"collector": "./cmd/collector",
	"dashboard": "./cmd/dashboard",
	"train":     "./examples/train",
	"infer":     "./examples/infer",
	"tune":      "./examples/tune",
	"fail":      "./examples/fail",
	"jobber":    "./tests/jobber",
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "miniray-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, pkg := range programs {
		args = append(args, pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build programs:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a program started by a test. Its output goes to the test log when the
// test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a built program with args and extra environment variables.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, name, cmd)
}

// startCmd starts cmd, named name in the test's log, and stops it when the test
// ends. Its output goes to the log when the test fails.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s %v:\n%s", name, cmd.Args[1:], out.String())
		}
	})
	return p
}

// run runs a program to its end and fails the test if it does not exit 0 in time.
func run(t *testing.T, name string, env []string, args ...string) string {
	t.Helper()
	p := start(t, name, env, args...)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s %v did not exit", name, args)
	}
	if p.err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, p.err, p.out.String())
	}
	return p.out.String()
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v", p.name, p.err)
	}
}

// ports hands out the ports of the programs the tests start. A port the kernel
// picks for a listener of its own (port 0) comes from the ephemeral range, which
// every outgoing connection also draws from: between the moment a test learns it
// and the moment the program binds it, a client could take it. So ports are drawn
// below that range, where no connection goes, and none is given out twice.
var ports struct {
	sync.Mutex
	given map[int]bool
	low   int // the lowest ephemeral port
}

// freeAddr returns a loopback address with a port that was free a moment ago, that
// no other test of this run got, and that no outgoing connection will take.
func freeAddr(t *testing.T) string {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
		ports.low = ephemeralLow()
	}
	const floor = 10000 // above the ports of well-known services
	for range 1000 {
		if ports.low-floor < 1000 {
			break
		}
		p := floor + rand.IntN(ports.low-floor)
		if ports.given[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports.given[p] = true
		return l.Addr().String()
	}

	// No room below the ephemeral range: let the kernel choose.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow returns the start of the kernel's ephemeral port range, or 32768,
// Linux's default, when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return low
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getJSON fetches url into v and returns the status code.
func getJSON(ctx context.Context, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w: %s", url, err, body)
		}
	}
	return resp.StatusCode, nil
}
