package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"

	"github.com/miniray/miniray/pkg/events"
)

// panicFlushTimeout bounds the wait for the failure event of a panicking job before
// the panic goes on and, most likely, ends the process.
const panicFlushTimeout = 2 * time.Second

// Option configures a wrapped job.
type Option func(*options)

type options struct {
	name        string
	description string
	taskID      string
	parentID    string
	params      any
	client      *Client
}

// WithName sets the task's name; the default is the wrapped function's name.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithDescription sets the task's description.
func WithDescription(d string) Option { return func(o *options) { o.description = d } }

// WithTaskID gives the task a fixed id instead of a generated one. The id must be
// subject-safe (see [events.ValidateTaskID]); calling the job with one that is not
// returns an error without running the job. Calling the job again with the same id
// records another attempt of the same task.
func WithTaskID(id string) Option { return func(o *options) { o.taskID = id } }

// WithParent makes the task a child of another one, such as a trial of a tuning job.
// Without it, a job called with a context that carries a task becomes its child.
func WithParent(id string) Option { return func(o *options) { o.parentID = id } }

// WithParams records the job's parameters in its task_started event. They must
// encode to a JSON object or value; if they do not, their error text is recorded.
func WithParams(p any) Option { return func(o *options) { o.params = p } }

// WithClient publishes through c instead of [Default].
func WithClient(c *Client) Option { return func(o *options) { o.client = c } }

// ErrInvalidTaskID is returned by a wrapped job called with an id that [WithTaskID]
// cannot use.
var ErrInvalidTaskID = errors.New("invalid task id")

// Training wraps a training job. See [Func].
func Training[In, Out any](fn func(context.Context, In) (Out, error), opts ...Option) func(context.Context, In) (Out, error) {
	return wrap(events.TypeTraining, fn, opts)
}

// Inference wraps an inference job. See [Func].
func Inference[In, Out any](fn func(context.Context, In) (Out, error), opts ...Option) func(context.Context, In) (Out, error) {
	return wrap(events.TypeInference, fn, opts)
}

// Tuning wraps a tuning job. Jobs it calls with its context become its trials.
// See [Func].
func Tuning[In, Out any](fn func(context.Context, In) (Out, error), opts ...Option) func(context.Context, In) (Out, error) {
	return wrap(events.TypeTuning, fn, opts)
}

// Func wraps any other job, recorded with task type "task". Each call of the
// returned function is one task: it publishes task_submitted and task_started, runs
// fn with a context that carries the [Task], and ends it as completed (with fn's
// result when it encodes to JSON), failed (with the error's text, or a panic's value
// and stack, after which the panic goes on) or cancelled (fn returned an error after
// ctx was cancelled).
func Func[In, Out any](fn func(context.Context, In) (Out, error), opts ...Option) func(context.Context, In) (Out, error) {
	return wrap(events.TypeTask, fn, opts)
}

func wrap[In, Out any](tt events.TaskType, fn func(context.Context, In) (Out, error), opts []Option) func(context.Context, In) (Out, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.name == "" {
		o.name = funcName(fn)
	}
	return func(ctx context.Context, in In) (out Out, err error) {
		t, err := start(ctx, tt, o)
		if err != nil {
			return out, err
		}
		stopBeat := t.beat()
		defer func() {
			if v := recover(); v != nil {
				stopBeat()
				t.panicked(v, debug.Stack())
				panic(v)
			}
		}()
		out, err = fn(withTask(ctx, t), in)
		stopBeat()
		t.finish(ctx, out, err)
		return out, err
	}
}

// start publishes task_submitted and task_started for a new call of a job.
func start(ctx context.Context, tt events.TaskType, o options) (*Task, error) {
	id := o.taskID
	if id == "" {
		id = events.NewTaskID(tt)
	} else if err := events.ValidateTaskID(id); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTaskID, err)
	}
	parent := o.parentID
	if p := FromContext(ctx); parent == "" && p != nil {
		parent = p.id
	}
	c := o.client
	if c == nil {
		c = Default()
	}
	t := &Task{client: c, id: id, typ: tt, name: o.name, attempt: nuid.Next()}
	t.progress = newProgressEncoder(id, tt, t.name, t.attempt)

	t.emit(events.TaskSubmitted, events.Data{Description: o.description, ParentID: parent})
	host, _ := os.Hostname()
	t.emit(events.TaskStarted, events.Data{
		Params: encodeParams(o.params),
		Host:   host,
		PID:    os.Getpid(),
	})
	return t, nil
}

func (t *Task) finish(ctx context.Context, out any, err error) {
	switch {
	case err == nil:
		res, err := json.Marshal(out)
		d := events.Data{Result: res}
		if err != nil {
			d = events.Data{Reason: "result not recorded: " + err.Error()}
		}
		t.emit(events.TaskCompleted, d)
	case ctx.Err() != nil:
		t.emit(events.TaskCancelled, events.Data{
			Error:  err.Error(),
			Reason: context.Cause(ctx).Error(),
		})
	default:
		t.emit(events.TaskFailed, events.Data{Error: err.Error()})
	}
}

func (t *Task) panicked(v any, stack []byte) {
	t.emit(events.TaskFailed, events.Data{
		Error: fmt.Sprintf("panic: %v", v),
		Stack: string(stack),
	})
	if t.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), panicFlushTimeout)
		defer cancel()
		_ = t.client.Flush(ctx)
	}
}

// Task is one running call of a wrapped job. A nil *Task is valid and reports nothing,
// so that code which reads it from a context needs no checks.
type Task struct {
	client   *Client
	id       string
	typ      events.TaskType
	name     string
	attempt  string // one per call, so that a task id run again is a new attempt
	progress *progressEncoder
}

type ctxKey struct{}

func withTask(ctx context.Context, t *Task) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the task that ctx was given by a wrapped job, or nil.
func FromContext(ctx context.Context) *Task {
	t, _ := ctx.Value(ctxKey{}).(*Task)
	return t
}

// ID returns the task's id, or "" for a nil task.
func (t *Task) ID() string {
	if t == nil {
		return ""
	}
	return t.id
}

// Progress reports that the job reached step of total (total <= 0 when unknown) with
// the given metrics. It never waits on the network: the event is encoded and queued
// for the [Client]'s sender, and metrics may be changed as soon as it returns.
func (t *Task) Progress(step, total int, metrics map[string]float64) {
	if t == nil || t.client == nil {
		return
	}
	t.client.enqueue(t.progress.encode(time.Now(), step, total, metrics))
}

func (t *Task) emit(et events.Type, d events.Data) {
	if t.client == nil {
		return
	}
	d.Attempt = t.attempt
	e := events.New(et, t.id, t.typ, t.name, d)
	events.Bound(&e)
	r, err := encodeEvent(&e)
	if err != nil {
		t.client.log.Error("event data not recorded", "event_id", e.EventID,
			"event_type", e.EventType, "error", err)
	}
	if r.data != nil {
		t.client.enqueue(r)
	}
}

// beat sends heartbeats until the returned function is called.
func (t *Task) beat() (stop func()) {
	if t.client == nil || t.client.cfg.heartbeat <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(t.client.cfg.heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				t.emit(events.TaskHeartbeat, events.Data{})
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-stopped
		})
	}
}

func encodeParams(p any) json.RawMessage {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": "params do not encode: " + err.Error()})
	}
	return b
}

// funcName returns the short name of fn, "trainModel" for main.trainModel.
func funcName(fn any) string {
	f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	if f == nil {
		return "job"
	}
	name := f.Name()
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.Index(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return name
}
