package events

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded NATS server.
type ServerConfig struct {
	// Listen is host:port of the client listener; loopback by default.
	Listen string
	// DataDir holds the JetStream store (under DataDir/jetstream) and the lock file.
	DataDir string
	// SyncInterval is how often the store is fsynced. Zero keeps the server's
	// default; a negative value fsyncs after every write.
	SyncInterval time.Duration
	// ReadyTimeout bounds the wait for the server to recover its store and listen.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
	// Passwords turn on authentication with miniray's roles when any is set; see
	// [Passwords]. None keeps the server open to every client, as by default.
	Passwords Passwords
	// TLS, when set, makes clients connect over TLS, in-process ones too: see
	// [Server.InProcess].
	TLS *tls.Config
}

// ErrDataDirLocked is returned by [StartServer] when another process already serves
// the same data directory. Two servers on one store would corrupt it.
var ErrDataDirLocked = errors.New("data directory is in use by another process")

// Server is a NATS server with JetStream running inside this process.
type Server struct {
	ns   *server.Server
	lock *os.File
	tls  *tls.Config
}

// StartServer starts an embedded NATS server with JetStream and waits until it
// accepts connections. It takes an exclusive lock on the data directory first.
func StartServer(c ServerConfig) (*Server, error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return nil, fmt.Errorf("nats listen address %q: bad port", c.Listen)
	}
	if port == 0 {
		port = -1 // the server reads 0 as its default port; -1 is "any free port"
	}
	if c.DataDir == "" {
		return nil, errors.New("data directory: must be set")
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", c.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}

	opts := &server.Options{
		ServerName: "miniray",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		// The default of 1 MB also bounds a task's state in the KV bucket.
		MaxPayload: 1 << 20,
	}
	if c.Passwords.Enabled() {
		opts.Users = c.Passwords.users()
	}
	if c.TLS != nil {
		opts.TLSConfig = c.TLS
		opts.TLS = true
		opts.TLSTimeout = 5 // seconds, for slow handshakes on a busy machine
	}
	switch {
	case c.SyncInterval < 0:
		opts.SyncAlways = true
	case c.SyncInterval > 0:
		opts.SyncInterval = c.SyncInterval
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("configure nats server: %w", err)
	}
	logger := &serverLogger{log: c.Logger}
	if logger.log == nil {
		logger.log = slog.New(slog.DiscardHandler)
	}
	ns.SetLoggerV2(logger, false, false, false)

	go ns.Start()
	timeout := c.ReadyTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	// Wait in short steps: a failure to listen is reported at once through the
	// logger, and recovering a large store can take long.
	deadline := time.Now().Add(timeout)
	for !ns.ReadyForConnections(250 * time.Millisecond) {
		msg := logger.failure()
		if msg == "" && time.Now().Before(deadline) {
			continue
		}
		ns.Shutdown()
		lock.Close()
		if msg != "" {
			return nil, fmt.Errorf("start nats server: %s", msg)
		}
		return nil, fmt.Errorf("start nats server: not ready after %s", timeout)
	}
	if msg := logger.failure(); msg != "" || !ns.JetStreamEnabled() {
		ns.Shutdown()
		lock.Close()
		return nil, fmt.Errorf("start jetstream: %s", msg)
	}
	return &Server{ns: ns, lock: lock, tls: c.TLS}, nil
}

// InProcess returns the options of a connection to the server from this process,
// which takes no network path. With TLS the server still asks for a handshake; the
// connection then trusts exactly the server's own certificate, whatever signed it
// and whatever names it holds, as a connection to itself can.
func (s *Server) InProcess() []nats.Option {
	opts := []nats.Option{nats.InProcessServer(s.ns)}
	if s.tls != nil {
		opts = append(opts, nats.Secure(pinned(s.tls.Certificates)))
	}
	return opts
}

// pinned returns a client TLS configuration that accepts only a server presenting
// one of certs.
func pinned(certs []tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain and the name are not what is checked: the certificate itself is,
		// by VerifyPeerCertificate.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, c := range certs {
				if len(raw) > 0 && len(c.Certificate) > 0 && bytes.Equal(raw[0], c.Certificate[0]) {
					return nil
				}
			}
			return errors.New("the server's certificate is not the one it was given")
		},
	}
}

// ClientURL returns the URL that clients in other processes connect to.
func (s *Server) ClientURL() string {
	return s.ns.ClientURL()
}

// NATS returns the underlying server, for in-process connections.
func (s *Server) NATS() *server.Server {
	return s.ns
}

// Shutdown stops the server, waits until it has stopped, and releases the lock.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.lock.Close()
}

func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "miniray.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrDataDirLocked, dir, err)
	}
	return f, nil
}

// serverLogger turns the server's log calls into slog records. Fatalf must not exit
// the process (a JetStream start failure is reported through it), so it is recorded
// and turned into an error by StartServer, as is an error logged before the server
// is ready, such as a listen address in use.
type serverLogger struct {
	log   *slog.Logger
	mu    sync.Mutex
	fatal string
}

func (l *serverLogger) failure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *serverLogger) record(msg string) {
	l.mu.Lock()
	if l.fatal == "" {
		l.fatal = msg
	}
	l.mu.Unlock()
}

// Noticef logs at debug level: the server's notices (its banner, its listeners) are
// start-up detail that miniray's own log lines already summarise.
func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "listen") {
		l.record(msg)
	}
	l.log.Error(msg)
}
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any) {}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.record(msg)
	l.log.Error(msg)
}
