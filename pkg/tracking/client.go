package tracking

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
)

// DefaultURL is the NATS server jobs report to when MINIRAY_NATS_URL is not set.
const DefaultURL = "nats://127.0.0.1:4222"

// DefaultQueueSize is how many progress events may wait in memory for NATS.
const DefaultQueueSize = 1 << 16

// DefaultHeartbeat is how often a running task says it is alive, when
// MINIRAY_HEARTBEAT_INTERVAL does not say otherwise.
const DefaultHeartbeat = 10 * time.Second

const (
	defaultBatch = 1024
	ackTimeout   = 5 * time.Second
)

// ClientOption configures a [Client].
type ClientOption func(*clientConfig)

type clientConfig struct {
	queueSize int
	logger    *slog.Logger
	spoolDir  string
	heartbeat time.Duration
	natsOpts  []nats.Option
}

// WithQueueSize sets how many events may wait in memory for NATS before progress
// events are dropped. Lifecycle events (submitted, started and the end) are never
// dropped: there are a few per task.
func WithQueueSize(n int) ClientOption {
	return func(c *clientConfig) { c.queueSize = n }
}

// WithSpoolDir sets the directory of the spool that keeps events while NATS cannot
// be reached; the default is [SpoolDir]. An empty string keeps them in memory only.
func WithSpoolDir(dir string) ClientOption {
	return func(c *clientConfig) { c.spoolDir = dir }
}

// WithHeartbeat sets how often a running task sends a heartbeat, by which the
// collector tells a live task from a dead one; zero or less sends none. The default
// is MINIRAY_HEARTBEAT_INTERVAL, or [DefaultHeartbeat].
func WithHeartbeat(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.heartbeat = d }
}

// WithLogger sets the logger for warnings about the connection and dropped events.
func WithLogger(l *slog.Logger) ClientOption {
	return func(c *clientConfig) { c.logger = l }
}

// Client publishes a job's events to JetStream from a background goroutine.
// It is safe for concurrent use.
type Client struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	ownsConn bool
	cfg      clientConfig
	log      *slog.Logger

	// The queue is a slice rather than a channel so that a full queue can refuse
	// progress events at once while still taking lifecycle events.
	qmu   sync.Mutex
	queue []events.Event
	wake  chan struct{} // a token whenever the queue gains events
	stop  chan struct{}
	done  chan struct{}

	// queued and acked count events; Flush waits for acked to reach queued. They only
	// grow, and the sender acknowledges in queue order, so acked <= queued always.
	// spooled counts the events in this client's spool file, not yet acknowledged.
	queued  atomic.Uint64
	acked   atomic.Uint64
	dropped atomic.Uint64
	spooled atomic.Uint64

	// Owned by the sender goroutine.
	spool   *spoolFile
	offline bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever acked or spooled grows
	closed  bool
}

// Connect returns a client for the NATS server at url. It does not wait for the
// server: when it cannot be reached, events wait in the queue and the connection is
// retried in the background.
func Connect(url string, opts ...ClientOption) (*Client, error) {
	var cfg clientConfig
	for _, o := range opts {
		o(&cfg)
	}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name("miniray-job"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(2 * time.Second),
	}, cfg.natsOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redact(url), err)
	}
	c, err := NewClient(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.ownsConn = true
	return c, nil
}

// NewClient returns a client that publishes over a connection the caller built and
// keeps owning: Close does not close it.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{
		queueSize: DefaultQueueSize,
		spoolDir:  SpoolDir(),
		heartbeat: heartbeatFromEnv(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.queueSize < 1 {
		return nil, fmt.Errorf("queue size %d: must be positive", cfg.queueSize)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	c := &Client{
		nc:      nc,
		js:      js,
		cfg:     cfg,
		log:     cfg.logger.With("component", "tracking"),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	go c.run()
	return c, nil
}

func heartbeatFromEnv() time.Duration {
	s := os.Getenv("MINIRAY_HEARTBEAT_INTERVAL")
	if s == "" {
		return DefaultHeartbeat
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		slog.Default().Warn("MINIRAY_HEARTBEAT_INTERVAL is not a duration, using the default",
			"component", "tracking", "value", s, "default", DefaultHeartbeat)
		return DefaultHeartbeat
	}
	return d
}

// Spooled returns how many events wait in this client's spool file.
func (c *Client) Spooled() uint64 {
	return c.spooled.Load()
}

// Dropped returns how many events were dropped because the queue stayed full.
func (c *Client) Dropped() uint64 {
	return c.dropped.Load()
}

// Pending returns how many queued events JetStream has not acknowledged yet.
func (c *Client) Pending() uint64 {
	return c.queued.Load() - c.acked.Load()
}

// enqueue hands an event to the sender without waiting. A progress event that finds
// the queue full is dropped and counted.
func (c *Client) enqueue(e events.Event) {
	c.qmu.Lock()
	if e.EventType == events.TaskProgress && len(c.queue) >= c.cfg.queueSize {
		c.qmu.Unlock()
		if c.dropped.Add(1) == 1 {
			c.log.Warn("event queue full, dropping progress events",
				"queue_size", c.cfg.queueSize)
		}
		return
	}
	c.queue = append(c.queue, e)
	c.queued.Add(1)
	c.qmu.Unlock()

	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take moves up to n queued events into batch.
func (c *Client) take(batch []events.Event, n int) []events.Event {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	n = min(n, len(c.queue))
	batch = append(batch[:0], c.queue[:n]...)
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil // let the old backing array go
	}
	return batch
}

// Flush waits until JetStream has acknowledged every event queued before the call,
// or until ctx is done.
func (c *Client) Flush(ctx context.Context) error {
	return c.wait(ctx, false)
}

// wait waits for the events queued before the call to be acknowledged or, when
// spoolOK is set, to be either acknowledged or safe in the spool while NATS is down.
func (c *Client) wait(ctx context.Context, spoolOK bool) error {
	target := c.queued.Load()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		acked := c.acked.Load()
		if acked >= target {
			return nil
		}
		if spoolOK && acked+c.spooled.Load() >= target && !connected(c.nc) {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond): // the connection state has no signal
		case <-c.done:
			if c.acked.Load() >= target {
				return nil
			}
			return fmt.Errorf("flush: client closed with %d events unacknowledged",
				target-c.acked.Load())
		case <-ctx.Done():
			return fmt.Errorf("flush: %d events unacknowledged: %w",
				target-c.acked.Load(), ctx.Err())
		}
	}
}

// Close waits within ctx until every queued event is acknowledged or, while NATS
// cannot be reached, safe in the spool; then it stops the sender, which spools
// whatever is still unsent, and closes the connection if the client made it. Spooled
// events are sent by the next client or collector that runs on this machine. The
// error reports events that were dropped or could not be spooled.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	err := c.wait(ctx, true)
	close(c.stop)
	<-c.done
	if c.ownsConn {
		c.nc.Close()
	}
	lost := c.queued.Load() - c.acked.Load() - c.spooled.Load()
	if lost == 0 {
		err = nil
	} else {
		err = fmt.Errorf("close: %d events neither acknowledged nor spooled: %w", lost, err)
	}
	if n := c.dropped.Load(); n > 0 {
		err = errors.Join(err, fmt.Errorf("close: %d progress events were dropped on a full queue", n))
	}
	if n := c.spooled.Load(); n > 0 {
		c.log.Warn("events left in the spool, to be sent by the next job or the collector",
			"events", n, "file", c.spool.path)
	}
	return err
}

var (
	defaultMu     sync.Mutex
	defaultClient *Client
)

// Default returns the client that wrapped functions use when no [WithClient] option
// is given, connecting on first use to MINIRAY_NATS_URL or [DefaultURL] with the
// credentials and trust of [EnvNATSOptions]. It returns nil, after logging why,
// when the URL or those settings are unusable; tasks then report nothing.
func Default() *Client {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultClient != nil {
		return defaultClient
	}
	url := os.Getenv("MINIRAY_NATS_URL")
	if url == "" {
		url = DefaultURL
	}
	opts, err := EnvNATSOptions()
	if err != nil {
		slog.Default().Warn("tracking disabled", "component", "tracking", "error", err)
		return nil
	}
	c, err := Connect(url, WithNATSOptions(opts...))
	if err != nil {
		slog.Default().Warn("tracking disabled", "component", "tracking", "error", err)
		return nil
	}
	defaultClient = c
	return c
}

// SetDefault replaces the default client, for programs that build their own.
func SetDefault(c *Client) {
	defaultMu.Lock()
	defaultClient = c
	defaultMu.Unlock()
}

// Flush flushes the default client, if one was made.
func Flush(ctx context.Context) error {
	defaultMu.Lock()
	c := defaultClient
	defaultMu.Unlock()
	if c == nil {
		return nil
	}
	return c.Flush(ctx)
}

// Close closes the default client, if one was made. The next use makes a new one.
func Close(ctx context.Context) error {
	defaultMu.Lock()
	c := defaultClient
	defaultClient = nil
	defaultMu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close(ctx)
}
