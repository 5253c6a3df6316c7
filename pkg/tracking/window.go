package tracking

import (
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxInFlight bounds the window: how many publishes the sender keeps waiting for
// JetStream's answer. Publishing batch by batch, waiting for every answer of one
// before sending the next, left the server idle between batches and the job at
// half the rate of nats bench. The rate grows with the window: on a 2-core
// machine where nats bench published about 105k messages a second, 500,000 events
// went at 72k/s with 1,024, 89k with 4,096, 95k with 8,192, 101k with 16,384 and
// 104k with 32,768. A larger window means more events to send again after a
// failure, and more that only memory holds (half a kilobyte each, as in the
// queue).
const maxInFlight = 16384

// The states of a flight: waiting for JetStream's answer, acknowledged, or failed
// and waiting to be sent again.
const (
	flightPending uint32 = iota
	flightOK
	flightFailed
)

// flightKind says where a flight's event came from, which says what its
// acknowledgement lets go of.
type flightKind uint8

const (
	// fromQueue is an event taken off the queue: in memory only, unless NATS went
	// away while it flew and it was copied to the spool.
	fromQueue flightKind = iota
	// fromSpool is an event read back from the spool.
	fromSpool
	// extentEnd follows the events of one write to the spool: once it is let go,
	// so is every event of that write, and the write is done with. It is never
	// published.
	extentEnd
)

// flight is one entry of the window. The entries are made once and reused, with
// their message and its header: a publish allocates nothing of its own.
type flight struct {
	msg   nats.Msg
	id    [1]string // the value of the message id header
	state atomic.Uint32
	kind  flightKind
	// rec is the event as it was reported, kept to be copied to the spool.
	rec record
	// events is how many events the flight's acknowledgement lets go: 1, 0 for an
	// event that was already counted, or for extentEnd the events of its write that
	// were damaged on disk and will never be sent.
	events int
	// copied marks an event from the queue that was also written to the spool.
	copied bool
}

func newFlight() *flight {
	f := &flight{}
	f.msg.Header = nats.Header{jetstream.MsgIDHeader: f.id[:]}
	return f
}

// window holds the sender's flights, oldest first, in a ring that grows up to
// maxInFlight. It belongs to the sender goroutine; only the flights' states are
// shared, with the callbacks of nats.go.
type window struct {
	ring    []*flight
	head, n int
}

// push returns the next free flight, which now counts as the newest.
func (w *window) push(c *Client) *flight {
	if w.n == len(w.ring) {
		w.grow(c)
	}
	f := w.ring[(w.head+w.n)%len(w.ring)]
	w.n++
	return f
}

// grow doubles the ring, and tells the callbacks of the new flights' messages.
func (w *window) grow(c *Client) {
	ring := make([]*flight, max(64, 2*len(w.ring)))
	for i := range w.n {
		ring[i] = w.ring[(w.head+i)%len(w.ring)]
	}
	for i := w.n; i < len(ring); i++ {
		ring[i] = newFlight()
	}
	byMsg := make(map[*nats.Msg]*flight, len(ring))
	for _, f := range ring {
		byMsg[&f.msg] = f
	}
	c.flights.Store(&byMsg)
	w.ring, w.head = ring, 0
}

// at returns the i-th flight from the oldest.
func (w *window) at(i int) *flight {
	return w.ring[(w.head+i)%len(w.ring)]
}

// pop lets go of the oldest flight.
func (w *window) pop() {
	f := w.ring[w.head]
	f.rec = record{}
	f.msg.Data = nil
	w.head = (w.head + 1) % len(w.ring)
	w.n--
}

// onAck and onAckError are called by nats.go for every answer to the window's
// publishes, on its own goroutine; they must not block. A publish that timed out
// or was cut off by a reconnect is an error too.
func (c *Client) onAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	c.answered(m, flightOK)
}

func (c *Client) onAckError(_ jetstream.JetStream, m *nats.Msg, _ error) {
	c.answered(m, flightFailed)
}

// answered records the answer to a flight and wakes the sender. The failure is
// counted before the flight stops counting as in flight, so that the sender, which
// sends failed flights again once none is in flight, sees every failure then.
func (c *Client) answered(m *nats.Msg, state uint32) {
	byMsg := c.flights.Load()
	if byMsg == nil {
		return
	}
	f := (*byMsg)[m]
	if f == nil {
		return
	}
	if state == flightFailed {
		c.failed.Add(1)
	}
	f.state.Store(state)
	c.inflight.Add(-1)
	select {
	case c.resolved <- struct{}{}:
	default:
	}
}
