package config

import (
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// StoreSettings configure the stream and the bucket.
var StoreSettings = []Setting{
	{Key: "replicas", Default: 1, Usage: "copies of the stream and bucket in a NATS cluster"},
	{Key: "duplicate_window", Default: events.DefaultDuplicates,
		Usage: "window in which JetStream drops a repeated event id"},
	{Key: "max_age", Default: time.Duration(0),
		Usage: "drop events older than this; 0 keeps the whole history"},
}

// StoreConfig reads the store settings.
func (vals *Values) StoreConfig() events.StoreConfig {
	c := events.StoreConfig{
		Replicas:   vals.Int("replicas"),
		Duplicates: vals.Duration("duplicate_window"),
		MaxAge:     vals.Duration("max_age"),
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		vals.Fail("replicas", "%d is not between 1 and 5", c.Replicas)
	}
	if c.Duplicates <= 0 {
		vals.Fail("duplicate_window", "%s is not positive", c.Duplicates)
	}
	if c.MaxAge < 0 {
		vals.Fail("max_age", "%s is negative", c.MaxAge)
	}
	if c.MaxAge > 0 && c.Duplicates > c.MaxAge {
		vals.Fail("duplicate_window", "%s is longer than max_age %s", c.Duplicates, c.MaxAge)
	}
	return c
}
