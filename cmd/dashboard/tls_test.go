package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/certtest"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

var tlsPasswords = events.Passwords{
	Admin:     "admin-password-0123",
	Dashboard: "dashboard-password-0123",
	Job:       "job-password-0123",
}

const tlsToken = "reader-token-0123456789"

// lockedBuffer is a buffer that the program under test writes to while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTLSServer starts an embedded NATS server that requires TLS and the roles'
// passwords, and provisions the store as the admin.
func startTLSServer(t *testing.T, certs certtest.Files) *events.Server {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := events.StartServer(events.ServerConfig{
		Listen:       "127.0.0.1:0",
		DataDir:      t.TempDir(),
		ReadyTimeout: 30 * time.Second,
		Passwords:    tlsPasswords,
		TLS:          &tls.Config{Certificates: []tls.Certificate{pair}},
	})
	if err != nil {
		t.Fatalf("start nats server: %v", err)
	}
	t.Cleanup(srv.Shutdown)

	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(events.UserAdmin, tlsPasswords.Admin),
		nats.RootCAs(certs.CA))
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Provision(t.Context(), js, events.DefaultStoreConfig()); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return srv
}

// runJob runs one training task that reports over TLS as user job, with the
// credentials a job takes from its environment.
func runJob(t *testing.T, url string, certs certtest.Files) {
	t.Helper()
	t.Setenv("MINIRAY_NATS_USER", events.UserJob)
	t.Setenv("MINIRAY_NATS_PASSWORD", tlsPasswords.Job)
	t.Setenv("MINIRAY_NATS_CA", certs.CA)
	opts, err := tracking.EnvNATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tracking.Connect(url, tracking.WithNATSOptions(opts...),
		tracking.WithSpoolDir(""), tracking.WithHeartbeat(0))
	if err != nil {
		t.Fatal(err)
	}
	train := tracking.Training(func(ctx context.Context, n int) (int, error) { return n, nil },
		tracking.WithClient(c), tracking.WithName("over-tls"))
	if _, err := train(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close job client: %v", err)
	}
}

func TestTLSEndToEnd(t *testing.T) {
	certs := certtest.New(t)
	srv := startTLSServer(t, certs)

	// Without the CA the server's certificate is not trusted.
	if nc, err := nats.Connect(srv.ClientURL(),
		nats.UserInfo(events.UserJob, tlsPasswords.Job)); err == nil {
		nc.Close()
		t.Fatal("connected without trusting the server's CA, want refused")
	}
	runJob(t, srv.ClientURL(), certs)

	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func() {}, []string{
			"--nats-url", srv.ClientURL(),
			"--nats-user", events.UserDashboard,
			"--nats-password", tlsPasswords.Dashboard,
			"--nats-ca", certs.CA,
			"--http", "127.0.0.1:0",
			"--http-tls-cert", certs.Cert,
			"--http-tls-key", certs.Key,
			"--http-token", tlsToken,
		}, stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dashboard: %v", err)
		}
		if t.Failed() {
			t.Logf("dashboard log:\n%s", stderr)
		}
	})
	base := dashboardURL(t, stdout, done)

	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}

	// /readyz is open, and turns 200 once the replay over TLS has caught up.
	deadline := time.Now().Add(30 * time.Second)
	for code, body := get("/readyz", ""); code != http.StatusOK; code, body = get("/readyz", "") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: got %d %s, want 200", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if code, body := get("/api/tasks", ""); code != http.StatusUnauthorized {
		t.Errorf("/api/tasks without the token: got %d %s, want 401", code, body)
	}
	if code, body := get("/", ""); code != http.StatusUnauthorized ||
		!bytes.Contains(body, []byte("<form")) {
		t.Errorf("/ without the token: got %d %s, want 401 and the login form", code, body)
	}
	code, body := get("/api/tasks", tlsToken)
	var page struct {
		Tasks []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(body, &page); code != http.StatusOK || err != nil {
		t.Fatalf("/api/tasks with the token: got %d %s (%v), want 200", code, body, err)
	}
	if len(page.Tasks) != 1 || page.Tasks[0].Name != "over-tls" ||
		page.Tasks[0].Status != "COMPLETED" {
		t.Fatalf("got tasks %+v, want the one job, COMPLETED", page.Tasks)
	}

	// Plain HTTP on the HTTPS port gets no page.
	plain := "http" + base[len("https"):]
	if resp, err := http.Get(plain + "/api/tasks"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP: got 200, want refused")
		}
	}
}

// dashboardURL waits for the line in which the dashboard prints its address.
func dashboardURL(t *testing.T, stdout *lockedBuffer, done chan error) string {
	t.Helper()
	re := regexp.MustCompile(`miniray dashboard: (https://\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("dashboard ended before listening: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("dashboard printed no https address: %q", stdout.String())
	return ""
}
