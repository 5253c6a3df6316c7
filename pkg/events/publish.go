package events

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg returns the event as a NATS message on its subject, with its event id as the
// Nats-Msg-Id header so that JetStream drops a duplicate.
func (e *Event) Msg() (*nats.Msg, error) {
	data, err := e.Encode()
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(e.Subject())
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, e.EventID)
	return m, nil
}

// headerRoom is what a message's subject and headers may take beside its data.
const headerRoom = 1 << 10

// MsgWithin is [Event.Msg] for a server whose max payload is maxPayload bytes. An
// event too large for it sheds, in this order, its params, result, stack, description
// and metrics, each replaced by a note, until it fits; the reason field says what
// went. An event that still does not fit is an error. Without this, the server would
// refuse the event for ever and a sender that retries would never get past it.
func (e *Event) MsgWithin(maxPayload int64) (*nats.Msg, error) {
	m, err := e.Msg()
	if err != nil || maxPayload <= 0 || int64(len(m.Data))+headerRoom <= maxPayload {
		return m, err
	}
	size := len(m.Data)
	c := *e
	shed := []func(d *Data) string{
		func(d *Data) string { d.Params = nil; return "params" },
		func(d *Data) string { d.Result = nil; return "result" },
		func(d *Data) string { d.Stack = ""; return "stack" },
		func(d *Data) string { d.Description = ""; return "description" },
		func(d *Data) string { d.Metrics = nil; return "metrics" },
		func(d *Data) string { d.Error = Truncate(d.Error, 1<<10); return "most of the error" },
	}
	var gone []string
	for _, f := range shed {
		gone = append(gone, f(&c.Data))
		c.Data.Reason = fmt.Sprintf("event of %d bytes over the server's limit of %d: %s left out",
			size, maxPayload, strings.Join(gone, ", "))
		if m, err = c.Msg(); err != nil {
			return nil, err
		}
		if int64(len(m.Data))+headerRoom <= maxPayload {
			return m, nil
		}
	}
	return nil, fmt.Errorf("event %s: %d bytes do not fit the server's limit of %d",
		e.EventID, len(m.Data), maxPayload)
}

// Publish validates an event and publishes it, waiting for JetStream's
// acknowledgement. A duplicate is not an error: the ack says so.
func Publish(ctx context.Context, js jetstream.JetStream, e Event) (*jetstream.PubAck, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("publish event: %w", err)
	}
	m, err := e.Msg()
	if err != nil {
		return nil, err
	}
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("publish event %s: %w", e.EventID, err)
	}
	return ack, nil
}
