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

const (
	defaultBatch = 1024
	ackTimeout   = 5 * time.Second
)

// ClientOption configures a [Client].
type ClientOption func(*clientConfig)

type clientConfig struct {
	queueSize int
	logger    *slog.Logger
}

// WithQueueSize sets how many events may wait in memory for NATS before progress
// events are dropped. Lifecycle events (submitted, started and the end) are never
// dropped: there are a few per task.
func WithQueueSize(n int) ClientOption {
	return func(c *clientConfig) { c.queueSize = n }
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
	queued  atomic.Uint64
	acked   atomic.Uint64
	dropped atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever acked grows
	closed  bool
	offline bool
}

// Connect returns a client for the NATS server at url. It does not wait for the
// server: when it cannot be reached, events wait in the queue and the connection is
// retried in the background.
func Connect(url string, opts ...ClientOption) (*Client, error) {
	nc, err := nats.Connect(url,
		nats.Name("miniray-job"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.Timeout(2*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
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
	cfg := clientConfig{queueSize: DefaultQueueSize}
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
	target := c.queued.Load()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.acked.Load() >= target {
			return nil
		}
		select {
		case <-ch:
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

// Close flushes within ctx, stops the sender and, when the client made the
// connection, closes it. Events still unacknowledged when ctx ends are reported in
// the error.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	err := c.Flush(ctx)
	close(c.stop)
	<-c.done
	if c.ownsConn {
		c.nc.Close()
	}
	if n := c.dropped.Load(); n > 0 {
		err = errors.Join(err, fmt.Errorf("close: %d events were dropped on a full queue", n))
	}
	return err
}

// run is the sender: it takes batches off the queue and publishes each until
// JetStream has acknowledged all of it, in queue order.
func (c *Client) run() {
	defer close(c.done)
	batch := make([]events.Event, 0, defaultBatch)
	for {
		batch = c.take(batch, defaultBatch)
		if len(batch) == 0 {
			select {
			case <-c.wake:
				continue
			case <-c.stop:
				return
			}
		}
		if !c.send(batch) {
			return
		}
		c.acked.Add(uint64(len(batch)))
		c.notify()
	}
}

func (c *Client) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// send publishes a batch and retries what failed, with backoff, until every event is
// acknowledged. It returns false when the client is stopped first.
func (c *Client) send(batch []events.Event) bool {
	msgs := make([]*nats.Msg, 0, len(batch))
	for i := range batch {
		m, err := batch[i].Msg()
		if err != nil {
			// An event the tracking package built always encodes; count it as sent
			// rather than retrying it forever.
			c.log.Error("encode event", "event_id", batch[i].EventID, "error", err)
			continue
		}
		msgs = append(msgs, m)
	}

	backoff := 50 * time.Millisecond
	for len(msgs) > 0 {
		if c.nc.Status() == nats.CONNECTED {
			msgs = c.publish(msgs)
		}
		if len(msgs) == 0 {
			break
		}
		c.setOffline(true, len(msgs))
		select {
		case <-time.After(backoff):
		case <-c.stop:
			return false
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	c.setOffline(false, 0)
	return true
}

// publish sends msgs asynchronously and returns the ones that were not acknowledged.
// A resend carries the same message id, so the server drops copies it already has.
func (c *Client) publish(msgs []*nats.Msg) []*nats.Msg {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	var failed []*nats.Msg
	for i, m := range msgs {
		f, err := c.js.PublishMsgAsync(m)
		if err != nil {
			failed = append(failed, msgs[i:]...)
			futures = futures[:i]
			break
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case <-f.Err():
			failed = append(failed, msgs[i])
		case <-c.stop:
			failed = append(failed, msgs[i])
		}
	}
	return failed
}

func (c *Client) setOffline(off bool, pending int) {
	if c.offline == off {
		return
	}
	c.offline = off
	if off {
		c.log.Warn("nats unreachable, events wait in memory",
			"servers", c.nc.Servers(), "pending", pending)
		return
	}
	c.log.Info("nats reachable again, events sent")
}

var (
	defaultMu     sync.Mutex
	defaultClient *Client
)

// Default returns the client that wrapped functions use when no [WithClient] option
// is given, connecting on first use to MINIRAY_NATS_URL or [DefaultURL]. It returns
// nil, after logging why, when the URL is unusable; tasks then report nothing.
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
	c, err := Connect(url)
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
