package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// Skip kinds: why a message on the stream was not applied.
const (
	SkipMalformed = "malformed" // not JSON, or not an event's JSON
	SkipInvalid   = "invalid"   // an event with a missing or wrong field
	SkipSubject   = "subject"   // the subject does not match the event inside
	SkipTooLarge  = "too_large" // larger than MaxEventSize
	SkipDuplicate = "duplicate" // an event id the task has already applied
	SkipTaskType  = "task_type" // a task id already known with another task type
	skipKindCount = 6
)

// Adjustment kinds: why an applied event was changed on its way into the read model.
const (
	AdjustBounded    = "bounded"     // a field over its bound was cut (see events.Bound)
	AdjustClockAhead = "clock_ahead" // a timestamp far after the stream stored the event
)

// SkipKinds and AdjustKinds list the kinds above, for reports that show zeros too.
var (
	SkipKinds = []string{SkipMalformed, SkipInvalid, SkipSubject, SkipTooLarge,
		SkipDuplicate, SkipTaskType}
	AdjustKinds = []string{AdjustBounded, AdjustClockAhead}
)

// MaxEventSize bounds one event on the stream. NATS bounds messages by its max
// payload (1 MiB by default); a bigger server limit should not let one task's event
// blow up the read model.
const MaxEventSize = 1 << 20

// Projection is the in-memory read model: the state of every task. It is safe for
// concurrent use: one writer applies events while readers query.
type Projection struct {
	log *slog.Logger

	mu      sync.RWMutex
	tasks   map[string]*task
	order   []*task // in order of first sight, for stable listing
	applied uint64
	// heartbeats counts applied heartbeats, copies included.
	heartbeats uint64
	skipped    map[string]uint64
	adjust     map[string]uint64
	lastSeq    uint64
	version    uint64 // grows with every change, for caches
	dirty      map[string]struct{}
	stats      *Stats // cached for version statsVersion
	statsV     uint64

	// What keeps the lists cheap (see listindex.go): the tasks by parent and their
	// counts by type and status, kept by every change, the log of changed tasks,
	// and the sorted orders and pages built from them on request.
	children    map[string][]*task
	counts      [][]int // [typeIndex][statusIndex]
	changes     []change
	changesBase uint64 // position in the change log of changes[0]
	list        listIndex

	logged map[string]bool // skip kinds logged once already
	fold   scratch

	// ApplyMsg decodes outside mu, so that readers wait only for the fold; decMu
	// keeps its callers to one at a time on the decoder and the decoded message.
	decMu  sync.Mutex
	dec    decoder
	decOne decoded
}

// New returns an empty projection that logs skipped messages to log.
func New(log *slog.Logger) *Projection {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Projection{
		log:      log.With("component", "projection"),
		tasks:    make(map[string]*task),
		skipped:  make(map[string]uint64, skipKindCount),
		adjust:   make(map[string]uint64, 2),
		dirty:    make(map[string]struct{}),
		logged:   make(map[string]bool, skipKindCount),
		children: make(map[string][]*task),
		counts:   newCounts(),
	}
}

// ApplyMsg decodes one message of the stream and applies it. seq is its stream
// sequence, subject its subject and stored the time the stream stored it (zero when
// unknown). A message that is not a valid event, or that repeats an event already
// applied, is counted under its skip kind and returned as an error that wraps
// [ErrSkipped]; nothing else changes. An event with oversized fields is bounded, and
// one stamped more than a day after it was stored gets the stored time instead:
// both are applied and counted as adjusted.
func (p *Projection) ApplyMsg(seq uint64, subject string, data []byte, stored time.Time) error {
	p.decMu.Lock()
	defer p.decMu.Unlock()
	p.dec.decode(data, &p.decOne)
	return p.applyDecoded(seq, subject, stored, &p.decOne)
}

// applyDecoded is ApplyMsg after the decoding, which a replay does apart.
func (p *Projection) applyDecoded(seq uint64, subject string, stored time.Time, d *decoded) error {
	if d.err != nil {
		return p.skip(seq, d.kind, d.err)
	}
	e, raw := &d.e, d.raw
	if subject != "" && subject != e.Subject() {
		return p.skip(seq, SkipSubject, errors.New("subject "+subject+" does not match event"))
	}
	if cut := events.Bound(e); len(cut) > 0 {
		raw = nil // the data changed: its JSON is encoded again
		p.adjusted(AdjustBounded, seq, "fields "+strings.Join(cut, ", ")+" cut to their bounds")
	}
	if !stored.IsZero() && e.Timestamp > events.UnixSeconds(stored)+events.MaxClockAhead {
		e.Timestamp, e.TimestampStr = events.UnixSeconds(stored), events.FormatTime(stored)
		p.adjusted(AdjustClockAhead, seq, "timestamp more than a day ahead of the stream")
	}
	switch err := p.apply(seq, e, raw); {
	case errors.Is(err, errDuplicate):
		return p.skip(seq, SkipDuplicate, err)
	case err != nil:
		return p.skip(seq, SkipTaskType, err)
	}
	return nil
}

// ErrSkipped is wrapped by the errors of [Projection.ApplyMsg].
var ErrSkipped = errors.New("message skipped")

type skipError struct {
	kind string
	err  error
}

func (e *skipError) Error() string { return "skipped " + e.kind + " message: " + e.err.Error() }
func (e *skipError) Unwrap() []error {
	return []error{ErrSkipped, e.err}
}

func (p *Projection) skip(seq uint64, kind string, err error) error {
	p.mu.Lock()
	p.skipped[kind]++
	p.version++
	p.lastSeq = max(p.lastSeq, seq)
	first := !p.logged[kind]
	p.logged[kind] = true
	p.mu.Unlock()

	// Duplicates are expected (retries outside the dedup window); the rest means a
	// producer is broken. Either way one line per kind is enough: the counts are in
	// the stats.
	if first {
		lvl := slog.LevelWarn
		if kind == SkipDuplicate {
			lvl = slog.LevelInfo
		}
		p.log.Log(context.Background(), lvl, "message skipped, further ones are only counted",
			"kind", kind, "seq", seq, "error", err)
	}
	return &skipError{kind: kind, err: err}
}

func (p *Projection) adjusted(kind string, seq uint64, what string) {
	p.mu.Lock()
	p.adjust[kind]++
	first := !p.logged[kind]
	p.logged[kind] = true
	p.mu.Unlock()
	if first {
		p.log.Warn("event adjusted, further ones are only counted", "kind", kind, "seq", seq,
			"what", what)
	}
}

// Apply folds a decoded, valid event into its task. It reports false, changing
// nothing, when the task had already applied the event's id, or when the task id is
// known with another task type: an event cannot turn a training task into another.
func (p *Projection) Apply(seq uint64, e *events.Event) bool {
	return p.apply(seq, e, nil) == nil
}

var errDuplicate = errors.New("event already applied")

// apply folds an event; raw is the JSON of its data as it came, or nil for what
// e.DataJSON gives.
func (p *Projection) apply(seq uint64, e *events.Event, raw []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.lastSeq = max(p.lastSeq, seq)
	t, ok := p.tasks[e.TaskID]
	if ok && t.tt != e.TaskType {
		return fmt.Errorf("task %s is a %s task, not %s", e.TaskID, t.tt, e.TaskType)
	}
	if !ok {
		t = newTask(e, uint32(len(p.order)))
		p.tasks[t.id] = t
		p.order = append(p.order, t)
	}
	prevSeen, prevStatus, prevParent := t.lastSeen, t.status, t.parent
	listed := p.list.active.Load()
	var prevKeys listKeys
	if listed && ok {
		prevKeys = t.listKeys()
	}
	if !t.apply(e, raw, &p.fold) {
		return fmt.Errorf("%w: %s", errDuplicate, e.EventID)
	}
	if !ok {
		prevStatus = ""
	}
	if !ok || t.status != prevStatus {
		p.count(t, prevStatus)
	}
	if t.parent != prevParent {
		p.setParent(t, prevParent)
	}
	if listed {
		p.logChange(t, prevKeys, !ok)
	}
	// A copy of an old heartbeat, published again, is not news of the task.
	if e.EventType != events.TaskHeartbeat || e.Timestamp > prevSeen {
		t.heardAt = time.Since(monoEpoch)
	}
	if e.EventType == events.TaskHeartbeat {
		// Heartbeats are not deduplicated (they carry nothing a copy could double), so
		// they are counted apart from the events a job reported.
		p.heartbeats++
	} else {
		p.applied++
	}
	p.version++
	p.dirty[e.TaskID] = struct{}{}
	return nil
}

// Get returns a copy of one task's full state, history included.
func (p *Projection) Get(id string) (Task, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t, ok := p.tasks[id]
	if !ok {
		return Task{}, false
	}
	return t.clone(), true
}

// LastSeq returns the highest stream sequence applied or skipped.
func (p *Projection) LastSeq() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastSeq
}

// Version returns a number that grows with every change of the projection, an
// applied event or a skipped message. A reader that remembers it can tell, cheaply,
// whether anything changed since it last looked.
func (p *Projection) Version() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.version
}

// Counts returns how many events were applied and how many messages were skipped,
// by kind.
func (p *Projection) Counts() (applied uint64, skipped map[string]uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.applied, maps.Clone(p.skipped)
}

// Silent is a pending or running task that has not been heard from for a while.
type Silent struct {
	TaskID     string
	Type       events.TaskType
	Name       string
	Attempt    string
	LastSeenAt float64 // the timestamp of its latest sign of life, by its own clock
}

// Silent returns the pending and running tasks of which this process has applied no
// event since the given time. A replay counts as hearing from every task it replays,
// so a process that just started waits a full timeout before judging anyone. A
// pending task is judged too: a job that died between its submission and its start
// would otherwise stay pending for ever.
func (p *Projection) Silent(since time.Time) []Silent {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []Silent
	limit := since.Sub(monoEpoch)
	for _, t := range p.order {
		if t.status != Running && t.status != Pending || t.heardAt >= limit {
			continue
		}
		out = append(out, Silent{TaskID: t.id, Type: t.tt, Name: t.name,
			Attempt: t.latest().id, LastSeenAt: t.lastSeen})
	}
	return out
}

// dirtyCount returns the number of tasks changed since they were last taken.
func (p *Projection) dirtyCount() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.dirty)
}

// takeDirty returns snapshots of at most n of the tasks changed since they were
// last taken.
func (p *Projection) takeDirty(n int) []snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dirty) == 0 {
		return nil
	}
	out := make([]snapshot, 0, min(n, len(p.dirty)))
	for id := range p.dirty {
		if len(out) == n {
			break
		}
		out = append(out, p.tasks[id].snapshot())
		delete(p.dirty, id)
	}
	return out
}

// GetJSON returns one task's full state as JSON, history included, as [Projection.Get]
// would give it, without parsing every event's data on the way.
func (p *Projection) GetJSON(id string) ([]byte, bool) {
	return p.AppendJSON(nil, id)
}

// AppendJSON appends what [Projection.GetJSON] returns to b, so that a caller can
// reuse its buffers, and reports whether the task exists.
func (p *Projection) AppendJSON(b []byte, id string) ([]byte, bool) {
	p.mu.RLock()
	t, ok := p.tasks[id]
	if !ok {
		p.mu.RUnlock()
		return b, false
	}
	b = slices.Grow(b, 1500+4*len(t.hist.log))
	// A small task is encoded at once; a large one from a copy, so that the lock
	// is not held while its history is written out.
	if len(t.hist.log) <= inlineEncode {
		b = t.appendState(b, 0)
		p.mu.RUnlock()
		return b, true
	}
	s := t.snapshot()
	p.mu.RUnlock()
	return s.t.appendState(b, 0), true
}

// inlineEncode is the size of history up to which GetJSON encodes a task under
// the read lock: a few microseconds of writing.
const inlineEncode = 16 << 10

// markDirty puts tasks back for the next flush after a failed write.
func (p *Projection) markDirty(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		p.dirty[id] = struct{}{}
	}
}
