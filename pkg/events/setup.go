package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the stream that holds every event and of the bucket the projection writes.
const (
	StreamName = "MINIRAY_EVENTS"
	BucketName = "MINIRAY_TASKS"
)

// DefaultDuplicates is the stream's default duplicate window, JetStream's own default.
const DefaultDuplicates = 2 * time.Minute

// StoreConfig is what an operator may choose about the stream and the bucket.
type StoreConfig struct {
	// Replicas is the number of copies in a cluster; 1 on a single server.
	Replicas int
	// Duplicates is the window in which a second copy of an event id is dropped.
	Duplicates time.Duration
	// MaxAge drops events older than this; zero keeps the whole history.
	MaxAge time.Duration
}

// DefaultStoreConfig returns one replica, a two-minute duplicate window, no age limit.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{Replicas: 1, Duplicates: DefaultDuplicates}
}

// ErrInvalidStore is returned by [Provision] for a [StoreConfig] it cannot use.
var ErrInvalidStore = errors.New("invalid store configuration")

// ErrStreamConflict is returned by [Provision] when a stream named [StreamName]
// exists with a configuration that miniray cannot use and must not overwrite.
var ErrStreamConflict = errors.New("stream conflicts with miniray's configuration")

// StreamConfig returns the JetStream configuration of the event stream.
func (c StoreConfig) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamName,
		Description:       "miniray task events",
		Subjects:          []string{StreamSubjects},
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxAge:            c.MaxAge,
		Storage:           jetstream.FileStorage,
		Replicas:          c.Replicas,
		Duplicates:        c.Duplicates,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		DenyDelete:        true,
		DenyPurge:         true,
	}
}

// Provision creates the event stream and the task bucket, or checks and updates them
// when they exist. It is idempotent and safe to run from several processes at once.
// The changes it made, if any, are returned so that the caller can log them.
func Provision(ctx context.Context, js jetstream.JetStream, c StoreConfig) ([]string, error) {
	return provision(ctx, js, c, true)
}

// Ensure is [Provision] for a reader: it creates what is missing and reports a
// conflicting stream, but leaves the settings of an existing stream as they are, so
// that a dashboard started with defaults never undoes the collector's replicas.
func Ensure(ctx context.Context, js jetstream.JetStream, c StoreConfig) ([]string, error) {
	return provision(ctx, js, c, false)
}

func provision(ctx context.Context, js jetstream.JetStream, c StoreConfig, update bool) ([]string, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidStore, err)
	}

	changes, err := provisionStream(ctx, js, c, update)
	if err != nil {
		return changes, err
	}

	kvCfg := jetstream.KeyValueConfig{
		Bucket:      BucketName,
		Description: "miniray task states, written by the projection",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
	_, err = js.KeyValue(ctx, BucketName)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		changes = append(changes, "created bucket "+BucketName)
	case err != nil:
		return changes, fmt.Errorf("look up bucket %s: %w", BucketName, err)
	case !update:
		return changes, nil
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, kvCfg); err != nil {
		return changes, fmt.Errorf("provision bucket %s: %w", BucketName, err)
	}
	return changes, nil
}

func (c StoreConfig) validate() error {
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d is not between 1 and 5", c.Replicas)
	}
	if c.Duplicates <= 0 {
		return fmt.Errorf("duplicate window: %s is not positive", c.Duplicates)
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("max age: %s is negative", c.MaxAge)
	}
	if c.MaxAge > 0 && c.Duplicates > c.MaxAge {
		return fmt.Errorf("duplicate window %s is longer than max age %s", c.Duplicates, c.MaxAge)
	}
	return nil
}

func provisionStream(ctx context.Context, js jetstream.JetStream, c StoreConfig, update bool) ([]string, error) {
	want := c.StreamConfig()
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
		}
		return []string{"created stream " + StreamName}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}

	have := s.CachedInfo().Config
	if err := conflicts(have, want); err != nil {
		return nil, err
	}
	if !update {
		return nil, nil
	}
	var changes []string
	if have.Duplicates != want.Duplicates {
		changes = append(changes, fmt.Sprintf("duplicate window %s -> %s", have.Duplicates, want.Duplicates))
	}
	if have.Replicas != want.Replicas {
		changes = append(changes, fmt.Sprintf("replicas %d -> %d", have.Replicas, want.Replicas))
	}
	if have.MaxAge != want.MaxAge {
		changes = append(changes, fmt.Sprintf("max age %s -> %s", have.MaxAge, want.MaxAge))
	}
	if len(changes) == 0 {
		return nil, nil
	}

	// Only the settings above change; everything else stays as the operator left it.
	have.Duplicates, have.Replicas, have.MaxAge = want.Duplicates, want.Replicas, want.MaxAge
	if _, err := js.UpdateStream(ctx, have); err != nil {
		return nil, fmt.Errorf("update stream %s (%v): %w", StreamName, changes, err)
	}
	for i := range changes {
		changes[i] = "stream " + StreamName + ": " + changes[i]
	}
	return changes, nil
}

// conflicts reports the settings of an existing stream that would make miniray lose
// or miss events: other subjects, another retention, another storage, or limits that
// drop messages.
func conflicts(have, want jetstream.StreamConfig) error {
	var bad []string
	if !slices.Equal(have.Subjects, want.Subjects) {
		bad = append(bad, fmt.Sprintf("subjects %v, want %v", have.Subjects, want.Subjects))
	}
	if have.Retention != want.Retention {
		bad = append(bad, fmt.Sprintf("retention %s, want %s", have.Retention, want.Retention))
	}
	if have.Storage != want.Storage {
		bad = append(bad, fmt.Sprintf("storage %s, want %s", have.Storage, want.Storage))
	}
	if have.MaxMsgs > 0 || have.MaxBytes > 0 || have.MaxMsgsPerSubject > 0 {
		bad = append(bad, fmt.Sprintf("limits max_msgs=%d max_bytes=%d max_msgs_per_subject=%d"+
			" would drop history", have.MaxMsgs, have.MaxBytes, have.MaxMsgsPerSubject))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: stream %s has %v; fix or remove it by hand",
		ErrStreamConflict, StreamName, bad)
}
