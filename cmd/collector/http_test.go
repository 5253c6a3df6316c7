package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startHTTP serves the collector's HTTP listener on a free loopback port, with the
// ingest detached from NATS, and returns its address.
func startHTTP(t *testing.T, sec httpSecurity) string {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := serveHTTP(addr, sec, newStatus(reg), reg, newIngest(1<<20, log), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// TestSlowBodyIsCut sends a request whose body never comes, with and without the
// token the listener wants: the collector closes the connection once the read
// timeout is over, instead of holding it for as long as the client likes.
func TestSlowBodyIsCut(t *testing.T) {
	old := readTimeout
	readTimeout = time.Second
	t.Cleanup(func() { readTimeout = old })

	for _, c := range []struct {
		name  string
		token string
	}{
		{"open", ""},
		{"token, none sent", "a-token-of-twenty-chars"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := startHTTP(t, httpSecurity{token: c.token})
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
				"Content-Length: 100000\r\n\r\n{", IngestPath)

			// Whatever the collector answers, the connection must end: a read that
			// waits far past the timeout means the connection is held.
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(conn)
			for {
				if _, err := r.ReadByte(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("connection still open 30s after a read timeout of 1s")
					}
					return
				}
			}
		})
	}
}

// TestWrongMethod answers a GET of the ingest with 405 and a JSON error.
func TestWrongMethod(t *testing.T) {
	addr := startHTTP(t, httpSecurity{})
	resp, err := http.Get("http://" + addr + IngestPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusMethodNotAllowed ||
		!strings.Contains(string(body), "not allowed") {
		t.Fatalf("GET %s: %d %s, want 405 with an error", IngestPath, resp.StatusCode, body)
	}
}
