package tracking

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
)

// run is the sender. It takes batches off the queue and publishes them; what cannot
// be published goes to the spool, and while the spool holds anything, new batches go
// there too, behind it, so that events reach the stream in the order they were
// reported. The spool is sent whenever the connection is up.
func (c *Client) run() {
	defer close(c.done)
	go c.drainOrphans()

	batch := make([]events.Event, 0, defaultBatch)
	backoff := 50 * time.Millisecond
	for {
		batch = c.take(batch, defaultBatch)
		if len(batch) > 0 {
			if !c.deliver(batch) {
				return
			}
			continue
		}
		if c.spooled.Load() > 0 && connected(c.nc) {
			if c.sendSpool() {
				backoff = 50 * time.Millisecond
				continue
			}
			backoff = min(2*backoff, 2*time.Second)
		}

		var retry <-chan time.Time
		if c.spooled.Load() > 0 {
			retry = time.After(backoff)
		}
		select {
		case <-c.wake:
		case <-retry:
		case <-c.stop:
			c.stopSpooling()
			return
		}
	}
}

// deliver publishes a batch, or spools it when NATS is down or the spool is not
// empty. Without a spool it retries in memory until the batch is acknowledged, and
// returns false if the client stops first.
func (c *Client) deliver(batch []events.Event) bool {
	if c.spooled.Load() == 0 && connected(c.nc) {
		failed := c.publish(batch)
		c.ack(len(batch) - len(failed))
		if len(failed) == 0 {
			c.setOffline(false)
			return true
		}
		batch = failed
	}
	c.setOffline(true)
	if c.toSpool(batch) {
		return true
	}

	// No spool: hold the batch and retry it, while the queue fills up behind.
	backoff := 50 * time.Millisecond
	for len(batch) > 0 {
		select {
		case <-time.After(backoff):
		case <-c.stop:
			return false
		}
		backoff = min(2*backoff, 2*time.Second)
		if connected(c.nc) {
			failed := c.publish(batch)
			c.ack(len(batch) - len(failed))
			batch = failed
		}
	}
	c.setOffline(false)
	return true
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

// toSpool appends events to this client's spool file, creating it on first use.
// It reports false when there is no usable spool.
func (c *Client) toSpool(evs []events.Event) bool {
	if c.cfg.spoolDir == "" {
		return false
	}
	if c.spool == nil {
		s, err := createSpool(c.cfg.spoolDir)
		if err != nil {
			c.log.Warn("no spool, events wait in memory", "error", err)
			c.cfg.spoolDir = ""
			return false
		}
		c.spool = s
	}
	if err := c.spool.append(evs); err != nil {
		c.log.Warn("spool write failed, events wait in memory", "file", c.spool.path,
			"error", err)
		return false
	}
	c.spooled.Add(uint64(len(evs)))
	c.notify()
	return true
}

// sendSpool publishes the whole spool file and empties it once all of it is
// acknowledged. A partial send is repeated whole: the copies are dropped by id.
func (c *Client) sendSpool() bool {
	evs, bad, err := c.spool.read()
	if err != nil {
		c.log.Warn("read spool", "file", c.spool.path, "error", err)
		return false
	}
	if bad > 0 {
		c.log.Warn("spool has damaged records, skipped", "file", c.spool.path, "records", bad)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*ackTimeout)
	defer cancel()
	if err := publishAll(ctx, c.js, evs, c.log); err != nil {
		return false
	}
	if err := c.spool.empty(); err != nil {
		c.log.Warn("empty spool", "file", c.spool.path, "error", err)
		return false
	}
	n := c.spooled.Swap(0)
	c.ack(int(n))
	c.setOffline(false)
	return true
}

// stopSpooling runs when the client stops: what is still queued goes to the spool,
// and the spool file is closed, or removed when it is empty.
func (c *Client) stopSpooling() {
	if rest := c.take(nil, int(^uint(0)>>1)); len(rest) > 0 {
		c.toSpool(rest)
	}
	if c.spool != nil {
		c.spool.close(c.spooled.Load() > 0)
	}
}

// drainOrphans sends, once the connection is up, the spool files that other
// processes on this machine left behind.
func (c *Client) drainOrphans() {
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
