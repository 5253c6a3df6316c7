package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// watchdog declares pending and running tasks lost when nothing has been heard from
// them for lostAfter. It reads the stream like a dashboard does, and publishes
// task_lost on the stream, so that every reader agrees.
type watchdog struct {
	js        jetstream.JetStream
	proj      *projection.Projection
	replay    *projection.Replayer
	lostAfter time.Duration
	log       *slog.Logger
	published prometheus.Counter // nil counts nothing
}

func newWatchdog(js jetstream.JetStream, lostAfter time.Duration, log *slog.Logger) *watchdog {
	p := projection.New(log)
	r := projection.NewReplayer(js, p, log)
	r.NoBucket = true
	return &watchdog{js: js, proj: p, replay: r, lostAfter: lostAfter,
		log: log.With("component", "watchdog")}
}

// run replays and checks until ctx ends.
func (w *watchdog) run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- w.replay.Run(ctx) }()

	every := min(max(w.lostAfter/4, 100*time.Millisecond), 5*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if w.replay.Ready() {
				w.check(ctx)
			}
		case err := <-done:
			return err
		}
	}
}

// check publishes task_lost for each silent task. A task's replay counts as hearing
// from it, so after a restart every task gets a full lostAfter to speak up.
func (w *watchdog) check(ctx context.Context) {
	for _, s := range w.proj.Silent(time.Now().Add(-w.lostAfter)) {
		e := lostEvent(s, w.lostAfter)
		if _, err := events.Publish(ctx, w.js, e); err != nil {
			w.log.Warn("publish task_lost", "task_id", s.TaskID, "error", err)
			continue
		}
		if w.published != nil {
			w.published.Inc()
		}
		w.log.Info("task lost", "task_id", s.TaskID, "name", events.Truncate(s.Name, 200),
			"last_seen", events.FormatTime(events.FromUnixSeconds(s.LastSeenAt)))
	}
}

// lostEvent builds the task_lost event for a silent task. Its id is derived from the
// task, the attempt and the last sign of life, so that a watchdog that checks again
// before it has read its own event, or a second collector, publishes a copy that the
// stream and the projection both drop.
func lostEvent(s projection.Silent, after time.Duration) events.Event {
	e := events.New(events.TaskLost, s.TaskID, s.Type, s.Name, events.Data{
		Attempt:  s.Attempt,
		LastSeen: s.LastSeenAt,
		Reason:   fmt.Sprintf("no sign of life for %s", after),
	})
	sum := sha256.Sum256([]byte(s.TaskID + "\x00" + s.Attempt + "\x00" +
		strconv.FormatFloat(s.LastSeenAt, 'f', -1, 64)))
	e.EventID = "lost-" + hex.EncodeToString(sum[:12])
	return e
}
