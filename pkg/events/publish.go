package events

import (
	"context"
	"fmt"

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
