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
)

// DefaultURL is the NATS server jobs report to when MINIRAY_NATS_URL is not set.
const DefaultURL = "nats://127.0.0.1:4222"

// DefaultQueueSize is how many events may wait in memory for NATS. When more wait,
// the oldest go to the spool.
const DefaultQueueSize = 1 << 16

// DefaultPublishWait is how long a progress report may wait for room in a full queue,
// when MINIRAY_PUBLISH_WAIT does not say otherwise.
const DefaultPublishWait = 100 * time.Millisecond

// DefaultHeartbeat is how often a running task says it is alive, when
// MINIRAY_HEARTBEAT_INTERVAL does not say otherwise.
const DefaultHeartbeat = 10 * time.Second

const (
	ackTimeout = 5 * time.Second
	// spillChunk is how many events one spool write takes off the queue: about a
	// megabyte, a millisecond or two to write, so that a report waiting for room gets
	// some well within the publish wait.
	spillChunk = 4096
)

// ClientOption configures a [Client].
type ClientOption func(*clientConfig)

type clientConfig struct {
	queueSize   int
	publishWait time.Duration
	logger      *slog.Logger
	spoolDir    string
	heartbeat   time.Duration
	natsOpts    []nats.Option
}

// WithQueueSize sets how many events may wait in memory for NATS; the default is
// [DefaultQueueSize]. When the job reports faster than JetStream acknowledges, the
// oldest events of a queue three quarters full go to the spool, and are sent from
// there once NATS has caught up.
func WithQueueSize(n int) ClientOption {
	return func(c *clientConfig) { c.queueSize = n }
}

// WithPublishWait bounds how long a progress report may wait for room in a full
// queue, while the spool makes some; the default is MINIRAY_PUBLISH_WAIT, or
// [DefaultPublishWait]. Zero never waits. Past the bound the event is queued anyway,
// unless the spool cannot be written: then it is dropped and counted (see
// [Client.Dropped]). Lifecycle events and heartbeats never wait and are never
// dropped: there are a few per task.
func WithPublishWait(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.publishWait = d }
}

// WithSpoolDir sets the directory of the spool that keeps events while NATS cannot
// be reached, or cannot keep up; the default is [SpoolDir]. An empty string keeps
// them in memory only, and a queue that stays full then drops progress events.
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
//
// Events flow through three stages, in the order they were reported: the window of
// publishes in flight, the spool on disk, the queue in memory. The sender publishes
// the spool first, then the queue, without waiting for one acknowledgement before
// the next publish: up to 16,384 are in flight at a time. A queue that fills up
// because NATS is slower than the job, or unreachable, has its oldest events moved
// to the end of the spool; the sender takes from the queue only when it has read
// the whole spool, so an event never overtakes an older one on its way to the
// stream. An event is forgotten, by the window and the spool, only once JetStream
// acknowledged it and every older one; a failed publish is sent again before
// anything newer counts as acknowledged.
type Client struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	ownsConn bool
	// connErrs holds the errors of failed attempts to connect, which a connection
	// that is retrying does not keep: a refused login is told apart by them.
	connErrs *connErrors
	cfg      clientConfig
	log      *slog.Logger

	// The queue is a slice rather than a channel so that a full queue can make
	// progress events wait a bounded time while still taking lifecycle events, and
	// so that the spiller can write its head to disk before taking it off.
	qmu     sync.Mutex
	queue   []record
	waiters int           // reports waiting for room in a full queue
	room    chan struct{} // closed and replaced when events leave the queue while some wait
	wake    chan struct{} // a token whenever the queue gains events
	spillc  chan struct{} // a token when the queue is three quarters full
	stop    chan struct{}
	done    chan struct{}
	orphans chan struct{} // closed when the spool files of other jobs were sent

	// queued and acked count events; Flush waits for acked to reach queued. They only
	// grow, and acked counts the events that the window let go, which it does in the
	// order they were queued: the first acked events are the acknowledged ones.
	// spooled counts the events safe in this client's spool file and not yet
	// acknowledged, each once even when the window holds it too.
	queued  atomic.Uint64
	acked   atomic.Uint64
	dropped atomic.Uint64
	spooled atomic.Uint64
	// spoolDown is set while the spool cannot take events: none is configured, or
	// its last write failed. Only then may a full queue drop progress events.
	spoolDown atomic.Bool

	// smu guards the spool and every removal from the queue's head, so that events
	// leave the queue in order whether to the network or to the spool.
	smu      sync.Mutex
	spool    *spoolFile
	spoolErr time.Time // when a spool write last failed; the next try waits a while
	warned   warnings

	// flights finds the window's entry of a message that JetStream acknowledged or
	// refused, for the callbacks that nats.go calls. The sender replaces the map when
	// the window grows; it never changes once stored.
	flights atomic.Pointer[map[*nats.Msg]*flight]
	// inflight counts the window's publishes waiting for an answer, failed those that
	// failed and are not yet sent again; the callbacks change them as well as the
	// sender. resolved has a token when a publish was answered.
	inflight atomic.Int64
	failed   atomic.Int64
	resolved chan struct{}

	// Owned by the sender goroutine.
	offline bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever acked or spooled grows
	closed  bool
}

// warnings remembers which of the warnings logged once per client were logged.
type warnings struct {
	overflow, overCapacity, refused atomic.Bool
}

// Connect returns a client for the NATS server at url. It does not wait for the
// server: when it cannot be reached, events wait in the queue and the connection is
// retried in the background.
func Connect(url string, opts ...ClientOption) (*Client, error) {
	var cfg clientConfig
	for _, o := range opts {
		o(&cfg)
	}
	connErrs := &connErrors{}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name("miniray-job"),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { connErrs.set(err) }),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(2 * time.Second),
		// A server that reads nothing for this long is gone. nats.go writes while
		// it holds the connection's lock, and waits a minute by default: with a
		// window of publishes in flight, more than the socket buffers hold, a server
		// that stops reading would hold the sender, and Close, that long.
		nats.FlusherTimeout(ackTimeout),
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
	c.connErrs = connErrs
	return c, nil
}

// connErrors keeps the latest error of a failed attempt to connect.
type connErrors struct {
	mu   sync.Mutex
	last error
}

func (e *connErrors) set(err error) {
	e.mu.Lock()
	e.last = err
	e.mu.Unlock()
}

func (e *connErrors) get() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

// NewClient returns a client that publishes over a connection the caller built and
// keeps owning: Close does not close it. nats.go writes to a server while it holds
// the connection's lock for up to the connection's FlusherTimeout, a minute by
// default: when a server stops reading, the client's sender, and with it Close,
// can wait that long. [Connect] sets it to 5 seconds.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{
		queueSize:   DefaultQueueSize,
		publishWait: publishWaitFromEnv(),
		spoolDir:    SpoolDir(),
		heartbeat:   durationFromEnv("MINIRAY_HEARTBEAT_INTERVAL", DefaultHeartbeat),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.queueSize < 1 {
		return nil, fmt.Errorf("queue size %d: must be positive", cfg.queueSize)
	}
	if cfg.publishWait < 0 {
		return nil, fmt.Errorf("publish wait %s: must not be negative", cfg.publishWait)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	c := &Client{
		nc:       nc,
		cfg:      cfg,
		log:      cfg.logger.With("component", "tracking"),
		room:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		spillc:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		orphans:  make(chan struct{}),
		changed:  make(chan struct{}),
		resolved: make(chan struct{}, 1),
	}
	// The window's publishes are followed through callbacks rather than futures:
	// a future costs two channels, and the sender would wait on each in turn. The
	// limit of nats.go's own stays above the window's, which never waits on it.
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncMaxPending(2*maxInFlight),
		jetstream.WithPublishAsyncAckHandler(c.onAck),
		jetstream.WithPublishAsyncErrHandler(c.onAckError))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	c.js = js
	c.spoolDown.Store(cfg.spoolDir == "")
	go c.run()
	return c, nil
}

// durationFromEnv reads a duration from the environment variable name, or returns
// def when it is not set or, after a warning, when it is not a duration.
func durationFromEnv(name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		slog.Default().Warn(name+" is not a duration, using the default",
			"component", "tracking", "value", s, "default", def)
		return def
	}
	return d
}

// publishWaitFromEnv reads MINIRAY_PUBLISH_WAIT. A negative value is a mistake that
// must not turn tracking off: it gets the default, with a warning.
func publishWaitFromEnv() time.Duration {
	d := durationFromEnv("MINIRAY_PUBLISH_WAIT", DefaultPublishWait)
	if d < 0 {
		slog.Default().Warn("MINIRAY_PUBLISH_WAIT is negative, using the default",
			"component", "tracking", "value", d, "default", DefaultPublishWait)
		return DefaultPublishWait
	}
	return d
}

// Spooled returns how many events wait in this client's spool file.
func (c *Client) Spooled() uint64 {
	return c.spooled.Load()
}

// Dropped returns how many progress events were dropped. That happens only when
// the queue stayed full for longer than the publish wait while the spool could not
// be written: no spool directory, or a disk that fails. It stays 0 otherwise.
func (c *Client) Dropped() uint64 {
	return c.dropped.Load()
}

// Pending returns how many queued events JetStream has not acknowledged yet.
func (c *Client) Pending() uint64 {
	return c.queued.Load() - c.acked.Load()
}

// enqueue hands an event to the sender. It does not wait unless the queue is full:
// then a progress event waits up to the publish wait for the spool to make room,
// and is queued anyway after it, or dropped and counted if the spool is down.
func (c *Client) enqueue(r record) {
	c.qmu.Lock()
	if r.progress && len(c.queue) >= c.cfg.queueSize &&
		!c.waitRoom() && c.spoolDown.Load() {
		c.qmu.Unlock()
		if c.dropped.Add(1) == 1 {
			c.log.Warn("event queue full and no spool, dropping progress events",
				"queue_size", c.cfg.queueSize, "publish_wait", c.cfg.publishWait)
		}
		return
	}
	c.queue = append(c.queue, r)
	c.queued.Add(1)
	spill := len(c.queue) >= c.highWater()
	c.qmu.Unlock()

	select {
	case c.wake <- struct{}{}:
	default:
	}
	if spill {
		select {
		case c.spillc <- struct{}{}:
		default:
		}
	}
}

// highWater is the queue length from which the spiller moves the oldest events to
// the spool, down to half the queue, so that reports rarely find it full.
func (c *Client) highWater() int {
	return max(1, c.cfg.queueSize/4*3)
}

// waitRoom waits, with qmu held on entry and on return, until the queue has room or
// the publish wait has passed, and reports whether there is room. It returns at once
// when the client has stopped: nothing makes room then.
func (c *Client) waitRoom() bool {
	if c.cfg.publishWait <= 0 {
		return false
	}
	select {
	case c.spillc <- struct{}{}:
	default:
	}
	deadline := time.Now().Add(c.cfg.publishWait)
	for len(c.queue) >= c.cfg.queueSize {
		left := time.Until(deadline)
		if left <= 0 {
			c.overCapacity()
			return false
		}
		room := c.room
		c.waiters++
		c.qmu.Unlock()
		t := time.NewTimer(left)
		stopped := false
		select {
		case <-room:
		case <-t.C:
		case <-c.stop:
			stopped = true
		}
		t.Stop()
		c.qmu.Lock()
		c.waiters--
		if stopped {
			return false
		}
	}
	return true
}

// overCapacity logs, once, that a report found no room within the publish wait.
func (c *Client) overCapacity() {
	if c.spoolDown.Load() || c.warned.overCapacity.Swap(true) {
		return
	}
	c.log.Warn("event queue stayed full for the publish wait; queueing beyond its size",
		"queue_size", c.cfg.queueSize, "publish_wait", c.cfg.publishWait)
}

// removeHead takes the first n events off the queue. The caller holds smu and qmu.
func (c *Client) removeHead(n int) {
	clear(c.queue[:n]) // the queue's array must not keep their JSON alive
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil // let the old backing array go
	}
	if c.waiters > 0 && n > 0 {
		close(c.room)
		c.room = make(chan struct{})
	}
}

// take moves up to n queued events into batch. The caller holds smu.
func (c *Client) take(batch []record, n int) []record {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	n = min(n, len(c.queue))
	batch = append(batch[:0], c.queue[:n]...)
	c.removeHead(n)
	return batch
}

// queueLen returns how many events wait in the queue.
func (c *Client) queueLen() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue)
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
// cannot be reached, safe in the spool, and, while NATS is up, until the spool files
// that other jobs left behind, which every client sends once it is connected, are
// sent; then it stops the sender, which spools whatever is still unsent, and closes
// the connection if the client made it. Spooled events are sent by the next client
// or collector that runs on this machine. The error reports events that were dropped
// or could not be spooled.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	err := c.wait(ctx, true)
	if connected(c.nc) {
		// A short job must not cut off the sending of other jobs' spool files halfway:
		// the next one would start them over.
		select {
		case <-c.orphans:
		case <-ctx.Done():
		}
	}
	close(c.stop)
	<-c.done
	if c.ownsConn {
		c.nc.Close()
	}
	if kept := c.acked.Load() + c.spooled.Load(); kept >= c.queued.Load() {
		err = nil
	} else {
		err = fmt.Errorf("close: %d events neither acknowledged nor spooled: %w",
			c.queued.Load()-kept, err)
	}
	if n := c.dropped.Load(); n > 0 {
		err = errors.Join(err, fmt.Errorf("close: %d progress events were dropped: the queue"+
			" was full and the spool could not be written", n))
	}
	if n := c.spooled.Load(); n > 0 {
		c.noteRefused()
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
