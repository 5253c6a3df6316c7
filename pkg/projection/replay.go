package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
)

// DefaultFlushInterval is how often changed task states are written to the bucket.
// Writes are coalesced: a task that changed a thousand times in one interval is
// written once.
const DefaultFlushInterval = 250 * time.Millisecond

// maxKVValue keeps a task's state under the server's max payload (1 MiB by default)
// with room for headers.
const maxKVValue = 1<<20 - 8<<10

// Replayer reads the event stream from its first message into a [Projection], goes
// on live after catching up, and mirrors changed task states into the bucket.
type Replayer struct {
	js            jetstream.JetStream
	p             *Projection
	log           *slog.Logger
	FlushInterval time.Duration
	// NoBucket keeps the task states in memory only, for readers such as the
	// collector's watchdog that must not write the bucket the dashboard owns.
	NoBucket bool

	dec     decoder       // used by the goroutine that reads the stream
	target  atomic.Uint64 // the stream's last sequence when the replay began
	last    atomic.Uint64 // the stream's last sequence, refreshed while running
	ready   atomic.Bool
	readyCh chan struct{}
	once    sync.Once
}

// NewReplayer returns a replayer of the stream into p. It starts nothing.
func NewReplayer(js jetstream.JetStream, p *Projection, log *slog.Logger) *Replayer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replayer{
		js:            js,
		p:             p,
		log:           log.With("component", "replay"),
		FlushInterval: DefaultFlushInterval,
		readyCh:       make(chan struct{}),
	}
}

// Ready reports whether the replay has caught up with the stream as it was at start.
func (r *Replayer) Ready() bool { return r.ready.Load() }

// Target returns the stream sequence the replay must reach to be ready.
func (r *Replayer) Target() uint64 { return r.target.Load() }

// StreamLastSeq returns the stream's last sequence as last seen: at start, then
// refreshed every few seconds. With the projection's LastSeq it gives the lag.
func (r *Replayer) StreamLastSeq() uint64 {
	return max(r.last.Load(), r.p.LastSeq())
}

// WaitReady blocks until the replay has caught up or ctx is done.
func (r *Replayer) WaitReady(ctx context.Context) error {
	select {
	case <-r.readyCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Replayer) markReady() {
	r.once.Do(func() {
		r.ready.Store(true)
		close(r.readyCh)
		r.log.Info("projection caught up", "seq", r.p.LastSeq(), "target", r.target.Load())
	})
}

// Run replays until ctx is done, then writes the last changes to the bucket. It
// returns an error only when the stream or the bucket cannot be found at start.
func (r *Replayer) Run(ctx context.Context) error {
	stream, err := r.js.Stream(ctx, events.StreamName)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", events.StreamName, err)
	}
	if _, err := r.js.KeyValue(ctx, events.BucketName); err != nil {
		return fmt.Errorf("open bucket %s: %w", events.BucketName, err)
	}
	last := stream.CachedInfo().State.LastSeq
	r.target.Store(last)
	r.last.Store(last)
	r.log.Info("replay started", "stream_last_seq", last)
	if last == 0 || r.p.LastSeq() >= last {
		r.markReady()
	}

	var wg sync.WaitGroup
	if !r.NoBucket {
		wg.Go(func() { r.flushLoop(ctx) })
	}
	wg.Go(func() { r.watchStream(ctx, stream) })

	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.consume(ctx, r.p.LastSeq()+1)
		if ctx.Err() != nil {
			break
		}
		r.log.Warn("stream consumer stopped, resuming", "seq", r.p.LastSeq()+1, "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	wg.Wait()
	return nil
}

// watchStream refreshes the stream's last sequence every few seconds, for the lag.
func (r *Replayer) watchStream(ctx context.Context, stream jetstream.Stream) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			info, err := stream.Info(ctx)
			if err == nil {
				r.last.Store(info.State.LastSeq)
			}
		case <-ctx.Done():
			return
		}
	}
}

// consume reads the stream from sequence start with an ordered consumer, which keeps
// no state on the server: the projection's last sequence is the checkpoint.
//
// Reading and decoding the messages took half of a replay's time, folding them the
// rest, one after the other. Here one goroutine reads and decodes messages into
// batches while another folds the batches before, so that the two halves share the
// machine's cores. A batch is handed over when full or when the stream has nothing
// more for now, so that a live event is folded at once.
func (r *Replayer) consume(ctx context.Context, start uint64) error {
	cons, err := r.js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return fmt.Errorf("create ordered consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("consume stream: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()

	full := make(chan *batch, replayBatches-1)
	free := make(chan *batch, replayBatches)
	for range replayBatches {
		free <- new(batch)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for b := range full {
			r.fold(b)
			free <- b
		}
	})
	err = r.read(it, full, free)
	close(full)
	wg.Wait() // the checkpoint is what has been folded
	return err
}

// Batches of a replay: enough messages to make handing one over cheap, few enough
// that a batch is in the cache while it is folded.
const (
	replayBatch   = 256
	replayBatches = 3
)

// batch is messages read and decoded, waiting to be folded.
type batch struct {
	n    int
	msgs [replayBatch]struct {
		seq     uint64
		subject string
		stored  time.Time
		pending uint64
		d       decoded
	}
}

// read reads messages into batches until the iterator fails.
func (r *Replayer) read(it jetstream.MessagesContext, full chan<- *batch,
	free <-chan *batch) error {
	b := <-free
	b.n = 0
	for {
		msg, err := it.Next()
		if err != nil {
			if b.n > 0 {
				full <- b
			}
			return fmt.Errorf("next message: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			r.log.Warn("message without metadata", "subject", msg.Subject(), "error", err)
			continue
		}
		m := &b.msgs[b.n]
		m.seq, m.subject, m.stored, m.pending = meta.Sequence.Stream, msg.Subject(),
			meta.Timestamp, meta.NumPending
		r.dec.decode(msg.Data(), &m.d)
		b.n++
		if b.n == replayBatch || meta.NumPending == 0 {
			full <- b
			b = <-free
			b.n = 0
		}
	}
}

// fold applies a batch of decoded messages to the projection.
func (r *Replayer) fold(b *batch) {
	for i := range b.n {
		m := &b.msgs[i]
		_ = r.p.applyDecoded(m.seq, m.subject, m.stored, &m.d)
		if !r.ready.Load() && (m.seq >= r.target.Load() || m.pending == 0) {
			r.markReady()
		}
	}
}

// flushLoop writes changed task states to the bucket every interval once the replay
// has caught up, and once more when ctx ends.
//
// A cold start rewrites the whole bucket, one value per task however many events it
// has. Written while the replay runs, those values (about 400 MB at 100,000 tasks
// of ten events) take 13 to 20% of the dashboard's CPU and a share of the server's
// from the replay itself; written after it, they cost the same but do not delay
// the API. The bucket is derived and rebuilt at every start, so until then it
// shows what the previous run wrote. A dashboard stopped before it caught up
// writes nothing: the next one rewrites the bucket anyway.
func (r *Replayer) flushLoop(ctx context.Context) {
	t := time.NewTicker(r.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !r.ready.Load() {
				continue
			}
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("write task states", "error", err)
			}
		case <-ctx.Done():
			if !r.ready.Load() {
				return
			}
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := r.Flush(fctx); err != nil {
				r.log.Warn("write task states at shutdown", "error", err)
			}
			cancel()
			return
		}
	}
}

// flushBatch bounds the task states that a flush holds at once: a replay changes
// tens of thousands of tasks between two flushes, and their encoded states all at
// once took a quarter of a dashboard's peak memory.
const flushBatch = 1024

// Flush writes every task changed since the last flush to the bucket, a batch at a
// time. Tasks whose write failed are written again by the next flush.
func (r *Replayer) Flush(ctx context.Context) error {
	// Tasks whose write fails are dirty again at once: counting what was dirty at
	// the start keeps this flush from taking them again.
	var errs []error
	for todo := r.p.dirtyCount(); todo > 0 && ctx.Err() == nil; {
		tasks := r.p.takeDirty(min(todo, flushBatch))
		if len(tasks) == 0 {
			break
		}
		todo -= len(tasks)
		if err := r.flush(ctx, tasks); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flush writes one batch of task states to the bucket.
func (r *Replayer) flush(ctx context.Context, tasks []snapshot) error {
	type pending struct {
		id string
		f  jetstream.PubAckFuture
	}
	sent := make([]pending, 0, len(tasks))
	var failed []string
	var errs []error
	for i := range tasks {
		id := tasks[i].t.id
		value, err := encodeForKV(&tasks[i])
		if err != nil {
			// Not retried: the same state would not fit the next time either.
			failed = append(failed, "")
			errs = append(errs, err)
			continue
		}
		f, err := r.js.PublishAsync("$KV."+events.BucketName+"."+id, value)
		if err != nil {
			failed = append(failed, id)
			errs = append(errs, fmt.Errorf("write %s: %w", id, err))
			continue
		}
		sent = append(sent, pending{id, f})
	}
	for _, s := range sent {
		select {
		case <-s.f.Ok():
		case err := <-s.f.Err():
			failed = append(failed, s.id)
			errs = append(errs, fmt.Errorf("write %s: %w", s.id, err))
		case <-ctx.Done():
			failed = append(failed, s.id)
			errs = append(errs, ctx.Err())
		}
	}
	if len(failed) > 0 {
		r.p.markDirty(slices.DeleteFunc(slices.Clone(failed), func(id string) bool { return id == "" }))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d task states not written: %w", len(failed), len(tasks),
			errors.Join(errs[:min(len(errs), 3)]...))
	}
	return nil
}

// encodeForKV encodes a task's state for the bucket. A state too large for one value
// keeps every lifecycle event and the latest progress events that fit, or else no
// history at all; the number left out is written in history_omitted. The stream and
// the API keep them all.
func encodeForKV(s *snapshot) ([]byte, error) {
	b := s.marshal(0)
	if len(b) <= maxKVValue {
		return b, nil
	}

	progress := s.progressCount()
	for keep := progress / 2; ; keep /= 2 {
		if b = s.marshal(progress - keep); len(b) <= maxKVValue {
			return b, nil
		}
		if keep == 0 {
			break
		}
	}

	// Even the lifecycle events do not fit: the state goes without its history.
	if b = s.marshal(-1); len(b) > maxKVValue {
		return nil, fmt.Errorf("task %s: state of %d bytes does not fit the bucket even"+
			" without its history", s.t.id, len(b))
	}
	return b, nil
}
