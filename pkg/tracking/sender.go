package tracking

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// minBackoff and maxBackoff bound the pause between two failed attempts to
	// publish.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	// offlinePoll is how often the sender looks whether NATS is back: the
	// connection's state has no signal of its own.
	offlinePoll = 250 * time.Millisecond
	// spoolRetry is how long the spool rests after a failed write or read before
	// the next try.
	spoolRetry = time.Second
	// takeBatch bounds how many events the sender takes off the queue at once, and
	// so how long it holds the queue's lock.
	takeBatch = 1024
)

// sendState is what the sender goroutine keeps between two steps.
type sendState struct {
	win     window
	batch   []record // reused for every batch taken off the queue
	copies  []record // reused to copy the window to the spool
	rd      extentReader
	retryAt time.Time // no publish before this, after a failure; zero: none due
	backoff time.Duration
	readErr time.Time // when reading the spool last failed
}

// extentReader reads back one write to the spool, a record at a time, as the window
// has room for them.
type extentReader struct {
	open bool
	buf  []byte // the records of the write, from the file
	// left is how many events of the write no flight has counted yet.
	left int
	bad  int
	last lastHead // of the last record read, which the next one mostly shares
}

// run is the sender. It keeps a window of publishes in flight, filled with the
// oldest events first: the spool, then the queue. It lets go of an event only when
// JetStream acknowledged it and every event before it; a failed publish is sent
// again, with the failures after it, once the rest of the window is answered.
// While NATS is down, the queue goes to the spool at once, and so do the window's
// events that exist only in memory, so that a crash or the end of the job loses
// nothing and Close need not wait. A second goroutine, the spiller, moves the head
// of a queue that fills up to the spool while the sender waits on the network.
func (c *Client) run() {
	defer close(c.done)
	spiller := make(chan struct{})
	go func() {
		defer close(spiller)
		c.spillLoop()
	}()
	go c.drainOrphans()

	s := sendState{backoff: minBackoff}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			<-spiller
			c.stopSpooling(&s)
			return
		default:
		}
		progressed, wait := c.step(&s)
		if progressed {
			continue
		}
		// One timer for every wait: while publishes fail, every report wakes the
		// sender, which waits again.
		if wait <= 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-c.wake:
		case <-c.resolved:
		case <-timer.C:
		case <-c.stop:
		}
	}
}

// step does one piece of the sender's work. It reports whether it got anywhere and,
// if not, how long to wait before the next step unless new events or answers come:
// zero waits for them alone.
func (c *Client) step(s *sendState) (progressed bool, wait time.Duration) {
	if c.commit(s) {
		progressed = true
		s.backoff = minBackoff
		c.setOffline(false)
	}
	if !connected(c.nc) {
		if c.copyWindow(s) > 0 || c.spill(0) > 0 {
			return true, 0
		}
		if s.win.n == 0 && c.spooled.Load() == 0 && c.queueLen() == 0 {
			return progressed, 0
		}
		c.setOffline(true)
		return progressed, offlinePoll
	}
	if c.failed.Load() > 0 {
		return c.retry(s, progressed)
	}
	if c.fill(s) {
		progressed = true
	}
	if !progressed && !s.readErr.IsZero() {
		return false, spoolRetry
	}
	return progressed, 0
}

// retry sends the window's failed flights again, oldest first, once no other flight
// waits for an answer and the pause after the last failure is over.
func (c *Client) retry(s *sendState, progressed bool) (bool, time.Duration) {
	if c.inflight.Load() > 0 {
		return progressed, 0
	}
	if s.retryAt.IsZero() {
		c.setOffline(true)
		s.retryAt = time.Now().Add(s.backoff)
		s.backoff = min(2*s.backoff, maxBackoff)
	}
	if wait := time.Until(s.retryAt); wait > 0 {
		return progressed, wait
	}
	s.retryAt = time.Time{}
	n := 0
	for i := range s.win.n {
		if f := s.win.at(i); f.state.Load() == flightFailed {
			c.failed.Add(-1)
			c.publish(f)
			n++
		}
	}
	c.log.Warn("publishes failed, sending them again", "events", n, "in_window", s.win.n)
	return true, 0
}

// commit lets go of the oldest flights as long as they are acknowledged, and
// reports whether it let go of any. The events leave the spool's count before they
// join the acknowledged ones, so that a Close that adds both never counts one twice.
func (c *Client) commit(s *sendState) bool {
	var acked, unspooled int
	popped := false
	for s.win.n > 0 {
		f := s.win.at(0)
		if f.state.Load() != flightOK {
			break
		}
		acked += f.events
		switch {
		case f.kind == extentEnd:
			unspooled += f.events
			c.extentDone()
		case f.kind == fromSpool || f.copied:
			unspooled += f.events
		}
		s.win.pop()
		popped = true
	}
	if unspooled > 0 {
		c.unspool(uint64(unspooled))
	}
	if acked > 0 {
		c.ack(acked)
	}
	return popped
}

// fill publishes events until the window is full, oldest first: what the spool
// holds, then the queue. It reports whether it published any.
func (c *Client) fill(s *sendState) bool {
	maxPayload := c.nc.MaxPayload()
	published := false
	for s.win.n < maxInFlight && c.failed.Load() == 0 {
		if s.rd.open {
			if !c.readRecords(s, maxPayload) {
				break
			}
			published = true
			continue
		}
		if !s.readErr.IsZero() && time.Since(s.readErr) < spoolRetry {
			break
		}
		e, fromDisk, batch := c.next(s, min(maxInFlight-s.win.n, takeBatch))
		if fromDisk {
			c.openExtent(s, e)
			continue
		}
		if len(batch) == 0 {
			break
		}
		for _, r := range batch {
			c.launch(s, r, fromQueue, 1, maxPayload)
		}
		clear(batch)
		published = true
	}
	return published
}

// next returns the next write to the spool that the sender has not read or, when
// it has read them all, takes up to n events off the queue. It holds smu so that
// the spiller cannot move events to the spool between the look and the take.
func (c *Client) next(s *sendState, n int) (extent, bool, []record) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.spool != nil {
		if e, ok := c.spool.nextExtent(); ok {
			return e, true, nil
		}
	}
	s.batch = c.take(s.batch, n)
	return extent{}, false, s.batch
}

// openExtent starts reading back a write to the spool. A write of copies is not
// read: its events are in the window.
func (c *Client) openExtent(s *sendState, e extent) {
	if e.copies {
		c.endExtent(s, 0)
		return
	}
	buf, err := c.spool.readExtent(e)
	if err != nil {
		c.log.Warn("read spool", "file", c.spool.path, "error", err)
		c.smu.Lock()
		c.spool.nread-- // read it again after a while
		c.smu.Unlock()
		s.readErr = time.Now()
		return
	}
	s.readErr = time.Time{}
	s.rd = extentReader{open: true, buf: buf, left: e.n, last: s.rd.last}
}

// readRecords publishes the records of the write being read back while the window
// has room, and ends the write when it has read all of them. It reports false when
// the window had no room.
func (c *Client) readRecords(s *sendState, maxPayload int64) bool {
	rd := &s.rd
	if s.win.n >= maxInFlight-1 { // room for the write's end
		return false
	}
	for len(rd.buf) > 0 && s.win.n < maxInFlight-1 {
		line, rest, _ := bytes.Cut(rd.buf, []byte{'\n'})
		rd.buf = rest
		body, ok, skip := parseRecord(line)
		if skip {
			continue
		}
		var r record
		var err error
		if ok {
			r, err = spooledRecord(body, &rd.last)
		}
		if !ok || err != nil {
			rd.bad++
			continue
		}
		n := min(rd.left, 1) // a damaged write may read as more records than it had
		rd.left -= n
		c.launch(s, r, fromSpool, n, maxPayload)
	}
	if len(rd.buf) == 0 {
		if rd.bad > 0 {
			c.log.Warn("spool has damaged records, skipped", "file", c.spool.path,
				"records", rd.bad)
		}
		c.endExtent(s, rd.left)
		s.rd = extentReader{last: rd.last}
	}
	return true
}

// endExtent puts the end of a write to the spool in the window, behind its events:
// left of them were damaged and will never be sent.
func (c *Client) endExtent(s *sendState, left int) {
	f := s.win.push(c)
	f.kind, f.events, f.copied, f.rec = extentEnd, left, false, record{}
	f.state.Store(flightOK)
}

// extentDone empties the spool file once every write to it was acknowledged.
func (c *Client) extentDone() {
	c.smu.Lock()
	defer c.smu.Unlock()
	if _, err := c.spool.done(); err != nil {
		c.log.Warn("empty spool", "file", c.spool.path, "error", err)
	}
}

// launch puts an event in the window and publishes it. An event too large for the
// server sheds its largest fields; one that cannot be sent even so counts as sent
// rather than hold back every event behind it.
func (c *Client) launch(s *sendState, r record, kind flightKind, events int, maxPayload int64) {
	f := s.win.push(c)
	f.kind, f.events, f.copied, f.rec = kind, events, false, r
	fit, err := fitRecord(r, maxPayload)
	if err != nil {
		c.log.Error("event cannot be sent", "event_id", r.id, "error", err)
		f.state.Store(flightOK)
		return
	}
	f.msg.Subject = fit.subject
	f.msg.Data = fit.data
	f.id[0] = fit.id // the header holds f.id[:]
	if c.failed.Load() > 0 {
		// The publish before failed: this one would too, and must wait its turn.
		f.state.Store(flightFailed)
		c.failed.Add(1)
		return
	}
	c.publish(f)
}

// publish sends a flight's message; its answer comes to onAck or onAckError. A
// resend carries the same message id, so the server drops copies it already has.
func (c *Client) publish(f *flight) {
	f.state.Store(flightPending)
	c.inflight.Add(1)
	if _, err := c.js.PublishMsgAsync(&f.msg); err != nil {
		c.failed.Add(1)
		f.state.Store(flightFailed)
		c.inflight.Add(-1)
	}
}

// copyWindow writes the window's events that exist only in memory to the spool, as
// copies: the window still sends them when NATS is back, and the spool keeps them
// if the job ends first. It returns how many it wrote.
func (c *Client) copyWindow(s *sendState) int {
	s.copies = s.copies[:0]
	for i := range s.win.n {
		if f := s.win.at(i); f.kind == fromQueue && !f.copied {
			s.copies = append(s.copies, f.rec)
		}
	}
	if len(s.copies) == 0 {
		return 0
	}
	c.smu.Lock()
	ok := c.toSpool(s.copies, true)
	if ok {
		if err := c.spool.sync(); err != nil {
			c.log.Warn("sync spool", "file", c.spool.path, "error", err)
		}
	}
	c.smu.Unlock()
	clear(s.copies)
	if !ok {
		return 0
	}
	for i := range s.win.n {
		if f := s.win.at(i); f.kind == fromQueue {
			f.copied = true
		}
	}
	return len(s.copies)
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
	if !c.toSpool(head, false) {
		return 0, false
	}
	c.qmu.Lock()
	c.removeHead(n)
	c.qmu.Unlock()
	return n, true
}

// toSpool appends events to this client's spool file, creating it on first use, and
// counts them as spooled. It reports false when there is no usable spool; after a
// failed write the spool rests for spoolRetry. The caller holds smu.
func (c *Client) toSpool(recs []record, copies bool) bool {
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
	if err := c.spool.append(recs, copies); err != nil {
		c.spoolFailed("spool write failed, events wait in memory", err)
		return false
	}
	if c.spoolDown.Swap(false) {
		c.log.Info("spool writable again", "file", c.spool.path)
	}
	c.spooled.Add(uint64(len(recs)))
	c.notify()
	return true
}

func (c *Client) spoolFailed(msg string, err error) {
	c.spoolErr = time.Now()
	if !c.spoolDown.Swap(true) {
		c.log.Warn(msg, "dir", c.cfg.spoolDir, "error", err)
	}
}

// stopSpooling runs when the client stops: what only memory holds, in the window
// or the queue, goes to the spool, and the spool file is closed, or removed when
// nothing in it waits to be sent.
func (c *Client) stopSpooling(s *sendState) {
	c.smu.Lock()
	c.spoolErr = time.Time{} // one last try, whatever failed before
	c.smu.Unlock()
	c.copyWindow(s)
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
	// A jetstream context of its own: the window's callbacks are for the window.
	js, err := jetstream.New(c.nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		c.log.Warn("send spool files left by other jobs", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n, err := DrainSpool(ctx, js, c.cfg.spoolDir, c.log); err != nil {
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
	if err == nil {
		err = c.connErrs.get() // a connection that retries forgets its first error
	}
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
