package tracking

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
)

const (
	// minBackoff and maxBackoff bound the pause between two failed attempts to
	// publish.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	// offlinePoll is how often the sender looks whether NATS is back: the
	// connection's state has no signal of its own.
	offlinePoll = 250 * time.Millisecond
	// spoolRetry is how long the spool rests after a failed write before the next try.
	spoolRetry = time.Second
)

// sendState is what the sender goroutine keeps between two steps.
type sendState struct {
	batch []events.Event // reused for every batch taken off the queue
	// held is a batch taken off the queue whose publication failed while newer
	// events had already gone to the spool: it is older than the whole spool, so it
	// is published first. first and end number its events in the queue.
	held      []events.Event
	heldFirst uint64
	heldEnd   uint64
	retryAt   time.Time // no publish before this, after a failure
	backoff   time.Duration
}

// run is the sender. It publishes the oldest events first: a held batch, then the
// spool, then the queue. While NATS is down, the queue goes to the spool at once, so
// that a crash or the end of the job loses nothing and Close need not wait. A second
// goroutine, the spiller, moves the head of a queue that fills up to the spool while
// the sender waits on the network.
func (c *Client) run() {
	defer close(c.done)
	spiller := make(chan struct{})
	go func() {
		defer close(spiller)
		c.spillLoop()
	}()
	go c.drainOrphans()

	s := sendState{batch: make([]events.Event, 0, defaultBatch), backoff: minBackoff}
	for {
		progressed, wait := c.step(&s)
		if progressed {
			continue
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = time.After(wait)
		}
		select {
		case <-c.wake:
		case <-timer:
		case <-c.stop:
			<-spiller
			c.stopSpooling(&s)
			return
		}
	}
}

// step does one piece of the sender's work. It reports whether it got anywhere and,
// if not, how long to wait before the next step unless new events come: zero waits
// for them alone.
func (c *Client) step(s *sendState) (progressed bool, wait time.Duration) {
	if !connected(c.nc) {
		// Everything goes to disk. A held batch goes behind the spool even where
		// newer events are already there: the projection does not depend on the order,
		// and on disk it survives the job.
		if len(s.held) > 0 && c.spoolHeld(s, true) {
			return true, 0
		}
		if c.spill(0) > 0 {
			return true, 0
		}
		if len(s.held) == 0 && c.spooled.Load() == 0 && c.queueLen() == 0 {
			return false, 0
		}
		c.setOffline(true)
		return false, offlinePoll
	}
	if wait := time.Until(s.retryAt); wait > 0 {
		return false, wait
	}

	switch {
	case len(s.held) > 0:
		failed := c.publish(s.held)
		c.ack(len(s.held) - len(failed))
		s.held = append(s.held[:0], failed...)
		if len(failed) > 0 {
			return false, c.failed(s)
		}
	case c.spooled.Load() > 0:
		if !c.sendSpool() {
			return false, c.failed(s)
		}
	default:
		batch, first, ok := c.takeBatch(s)
		if !ok {
			return true, 0 // the spool took events meanwhile: send it first
		}
		if len(batch) == 0 {
			return false, 0
		}
		failed := c.publish(batch)
		c.ack(len(batch) - len(failed))
		if len(failed) > 0 {
			s.held = append(s.held[:0], failed...)
			s.heldFirst, s.heldEnd = first, first+uint64(len(batch))
			if !c.spoolHeld(s, false) {
				return false, c.failed(s)
			}
			c.setOffline(true)
			return true, 0
		}
	}
	s.backoff = minBackoff
	c.setOffline(false)
	return true, 0
}

// failed notes a failed attempt to publish and returns the pause before the next.
func (c *Client) failed(s *sendState) time.Duration {
	c.setOffline(true)
	wait := s.backoff
	s.retryAt = time.Now().Add(wait)
	s.backoff = min(2*s.backoff, maxBackoff)
	return wait
}

// takeBatch takes the next batch off the queue, unless the spool holds events: they
// are older and go first. It holds smu so that the spiller cannot move events to the
// spool between the check and the take.
func (c *Client) takeBatch(s *sendState) ([]events.Event, uint64, bool) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.spooled.Load() > 0 {
		return nil, 0, false
	}
	batch, first := c.take(s.batch, defaultBatch)
	s.batch = batch
	return batch, first, true
}

// publish sends events asynchronously and returns the ones that were not
// acknowledged. A resend carries the same message id, so the server drops copies it
// already has.
func (c *Client) publish(batch []events.Event) []events.Event {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var failed []events.Event
	for i := range batch {
		m, err := batch[i].MsgWithin(c.nc.MaxPayload())
		if err != nil {
			// Retrying cannot help an event that does not encode or fit: count it as
			// sent rather than let it block every event behind it.
			c.log.Error("event cannot be sent", "event_id", batch[i].EventID, "error", err)
			futures = append(futures, nil)
			continue
		}
		f, err := c.js.PublishMsgAsync(m)
		if err != nil {
			failed = append(failed, batch[i:]...)
			batch = batch[:i]
			break
		}
		futures = append(futures, f)
	}
	var lost []events.Event
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case <-f.Err():
			lost = append(lost, batch[i])
		}
	}
	return append(lost, failed...)
}

func (c *Client) ack(n int) {
	if n > 0 {
		c.acked.Add(uint64(n))
		c.notify()
	}
}

func (c *Client) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// unspool takes n events off the count of spooled ones, never below zero.
func (c *Client) unspool(n uint64) {
	for {
		old := c.spooled.Load()
		if c.spooled.CompareAndSwap(old, old-min(n, old)) {
			return
		}
	}
}

// spillLoop is the spiller: when the queue is three quarters full, it moves its
// oldest events to the spool until half of it is left. It works while the sender
// waits on the network, which is what keeps a job that reports faster than JetStream
// acknowledges from finding the queue full.
func (c *Client) spillLoop() {
	for {
		select {
		case <-c.spillc:
		case <-c.stop:
			return
		}
		if c.queueLen() < c.highWater() {
			continue
		}
		if n := c.spill(c.cfg.queueSize / 2); n > 0 && !c.warned.overflow.Swap(true) {
			c.log.Info("the job reports faster than nats takes events; the excess waits"+
				" in the spool", "queue_size", c.cfg.queueSize, "spool", c.cfg.spoolDir)
		}
	}
}

// spill moves events from the head of the queue to the end of the spool, a chunk at
// a time, until at most keep are left in the queue, and returns how many it moved.
// It stops at a failed write; after one it does nothing for spoolRetry.
//
// Each chunk leaves the queue as soon as it is written, and one sync at the end
// covers them all: written, an event already outlives the job's process, which the
// queue does not, and a sync, which under load can take longer than writing tens of
// thousands of events, costs the same for one chunk as for many.
func (c *Client) spill(keep int) int {
	moved := 0
	for {
		n, ok := c.spillChunk(keep)
		moved += n
		if !ok || n == 0 {
			break
		}
	}
	if moved > 0 {
		c.syncSpool()
	}
	return moved
}

// syncSpool flushes the spool file to the disk. It does not hold smu meanwhile, so
// that a long sync does not hold up the sender: the file stays open until the sender
// closes it, after the spiller has stopped.
func (c *Client) syncSpool() {
	c.smu.Lock()
	sp := c.spool
	c.smu.Unlock()
	if sp == nil {
		return
	}
	if err := sp.sync(); err != nil {
		c.log.Warn("sync spool", "file", sp.path, "error", err)
	}
}

func (c *Client) spillChunk(keep int) (int, bool) {
	c.smu.Lock()
	defer c.smu.Unlock()
	c.qmu.Lock()
	n := min(spillChunk, len(c.queue)-keep)
	// Only a holder of smu takes events off the head, and reports only append behind
	// it, so these events stay as they are while they are written without qmu.
	head := c.queue[:max(n, 0):max(n, 0)]
	c.qmu.Unlock()
	if n <= 0 {
		return 0, true
	}
	if !c.toSpool(head) {
		return 0, false
	}
	c.qmu.Lock()
	first := c.removeHead(n)
	c.qmu.Unlock()
	c.spoolNext = first + uint64(n)
	return n, true
}

// spoolHeld moves the held batch to the end of the spool: when nothing newer is
// there, which keeps the order, or, with anyOrder, in any case.
func (c *Client) spoolHeld(s *sendState, anyOrder bool) bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	if !anyOrder && c.spoolNext > s.heldFirst {
		return false
	}
	if !c.toSpool(s.held) {
		return false
	}
	if err := c.spool.sync(); err != nil {
		c.log.Warn("sync spool", "file", c.spool.path, "error", err)
	}
	c.spoolNext = max(c.spoolNext, s.heldEnd)
	s.held = s.held[:0]
	return true
}

// toSpool appends events to this client's spool file, creating it on first use, and
// counts them as spooled. It reports false when there is no usable spool; after a
// failed write the spool rests for spoolRetry. The caller holds smu.
func (c *Client) toSpool(evs []events.Event) bool {
	if c.cfg.spoolDir == "" || time.Since(c.spoolErr) < spoolRetry {
		return false
	}
	if c.spool == nil {
		s, err := createSpool(c.cfg.spoolDir)
		if err != nil {
			c.spoolFailed("no spool, events wait in memory", err)
			return false
		}
		c.spool = s
	}
	skipped, err := c.spool.append(evs, c.log)
	if err != nil {
		c.spoolFailed("spool write failed, events wait in memory", err)
		return false
	}
	if c.spoolDown.Swap(false) {
		c.log.Info("spool writable again", "file", c.spool.path)
	}
	c.spooled.Add(uint64(len(evs) - skipped))
	c.ack(skipped) // they can never be sent: count them as done, as publish does
	c.notify()
	return true
}

func (c *Client) spoolFailed(msg string, err error) {
	c.spoolErr = time.Now()
	if !c.spoolDown.Swap(true) {
		c.log.Warn(msg, "dir", c.cfg.spoolDir, "error", err)
	}
}

// sendSpool publishes the next chunk of the spool file, and empties the file once
// all of it is acknowledged. The chunk lies before what the spiller appends at the
// same time, and only this goroutine empties the file, so it is read without smu.
func (c *Client) sendSpool() bool {
	c.smu.Lock()
	sp := c.spool
	from, to := sp.sent, sp.size
	c.smu.Unlock()

	b, next, err := sp.readRange(from, to, defaultBatch, c.nc.MaxPayload(), c.log)
	if err != nil {
		c.log.Warn("read spool", "file", sp.path, "error", err)
		return false
	}
	if b.bad > 0 {
		c.log.Warn("spool has damaged records, skipped", "file", sp.path, "records", b.bad)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*ackTimeout)
	defer cancel()
	if err := publishMsgs(ctx, c.js, b.msgs); err != nil {
		return false
	}

	c.smu.Lock()
	c.unspool(uint64(b.intact))
	n := b.intact
	emptied, err := sp.advance(next)
	if emptied {
		// Whatever the count still holds was damaged on disk and is gone: count it
		// as done so that Flush does not wait for it.
		n += int(c.spooled.Swap(0))
	}
	c.smu.Unlock()
	if err != nil {
		c.log.Warn("empty spool", "file", sp.path, "error", err)
	}
	c.ack(n)
	return true
}

// stopSpooling runs when the client stops: what is held or still queued goes to the
// spool, and the spool file is closed, or removed when it is empty.
func (c *Client) stopSpooling(s *sendState) {
	c.smu.Lock()
	c.spoolErr = time.Time{} // one last try, whatever failed before
	c.smu.Unlock()
	if len(s.held) > 0 {
		c.spoolHeld(s, true)
	}
	c.spill(0)
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.spool != nil {
		c.spool.close(c.spooled.Load() > 0)
	}
}

// drainOrphans sends, once the connection is up, the spool files that other
// processes on this machine left behind.
func (c *Client) drainOrphans() {
	defer close(c.orphans)
	if c.cfg.spoolDir == "" {
		return
	}
	for !connected(c.nc) {
		select {
		case <-c.stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n, err := DrainSpool(ctx, c.js, c.cfg.spoolDir, c.log); err != nil {
		c.log.Warn("send spool files left by other jobs", "error", err)
	} else if n > 0 {
		c.log.Info("sent events spooled by other jobs", "events", n)
	}
}

func (c *Client) setOffline(off bool) {
	if off {
		c.noteRefused()
	}
	if c.offline == off {
		return
	}
	c.offline = off
	if off {
		c.log.Warn("nats unreachable, events are spooled until it is back",
			"servers", c.nc.Servers(), "spool", c.cfg.spoolDir)
		return
	}
	c.log.Info("nats reachable again")
}

// noteRefused logs, once, that the server refused the connection's credentials. From
// the sender a refused login looks like an unreachable server, but it does not go
// away by waiting: the job's owner has to fix the credentials.
func (c *Client) noteRefused() {
	err := c.nc.LastError()
	if err == nil || !isAuthError(err) || c.warned.refused.Swap(true) {
		return
	}
	c.log.Error("nats refused the job's credentials, events are spooled until it"+
		" accepts them", "servers", c.nc.Servers(), "spool", c.cfg.spoolDir, "error", err)
}

// isAuthError reports whether err is the server refusing the connection's
// credentials.
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked)
}
