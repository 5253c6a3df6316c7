package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/miniray/miniray/pkg/events"
)

// IngestPath is where programs that do not link pkg/tracking (a Python job, a shell
// script with curl) post their events.
const IngestPath = "/api/v1/events"

// The content types the ingest accepts: one event or an array of events as JSON, or
// one event per line.
const (
	contentJSON   = "application/json"
	contentNDJSON = "application/x-ndjson"
)

const (
	// maxIngestDepth bounds the nesting of a request's JSON. An event needs four levels
	// (array, event, data, params); the rest is room for nested params and results. A
	// deeper document is an attack or a bug, and refusing it before decoding keeps
	// the decoder's recursion small.
	maxIngestDepth = 64

	// ingestAckWait is how long a request waits for JetStream to acknowledge its
	// events before it answers 503.
	ingestAckWait = 30 * time.Second

	// ingestWindow is how many events of one request are in flight at once, so that
	// a large batch cannot take every slot of the connection's async publisher.
	ingestWindow = 512
)

// ingest is the HTTP ingest of events. It decodes and validates every event of a
// request before it publishes any, so that a request with one bad event changes
// nothing, and it answers only once JetStream acknowledged every event, so that a
// client that got a 2xx can forget its events. Each event carries its id as the
// Nats-Msg-Id header: a retried request is dropped by JetStream's duplicate window
// and, after it, by the projection, which is idempotent by event id.
type ingest struct {
	maxBytes  int64
	log       *slog.Logger
	published prometheus.Counter // if set, counts the events of requests stored in full

	// mu guards js, which is nil until the store is provisioned: before that, an
	// event could be published to a subject no stream captures.
	mu sync.RWMutex
	js jetstream.JetStream
}

func newIngest(maxBytes int64, log *slog.Logger) *ingest {
	return &ingest{maxBytes: maxBytes, log: log.With("component", "ingest")}
}

// attach starts publishing on nc, once the stream exists. It keeps a JetStream
// context of its own, so that an ack timeout bounds every async publish.
func (in *ingest) attach(nc *nats.Conn) error {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ingestAckWait))
	if err != nil {
		return fmt.Errorf("jetstream context for ingest: %w", err)
	}
	in.mu.Lock()
	in.js = js
	in.mu.Unlock()
	return nil
}

func (in *ingest) jetStream() jetstream.JetStream {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.js
}

// ingestError is a refused request: its status, and for a bad event, which one and
// which of its fields.
type ingestError struct {
	status int
	msg    string
	index  int // -1 when the request as a whole is wrong
	field  string
}

func (e *ingestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *ingestError {
	return &ingestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...), index: -1}
}

// handle serves POST [IngestPath].
func (in *ingest) handle(c *gin.Context) {
	evs, ierr := in.read(c.Writer, c.Request)
	if ierr != nil {
		in.refuse(c, ierr)
		return
	}

	js := in.jetStream()
	if js == nil || !js.Conn().IsConnected() {
		in.unavailable(c, errors.New("nats is not reachable"))
		return
	}
	msgs, ierr := messages(evs, js.Conn().MaxPayload())
	if ierr != nil {
		in.refuse(c, ierr)
		return
	}

	ctx, cancel := context.WithTimeout(c.Request.Context(), ingestAckWait)
	defer cancel()
	dups, err := publishAll(ctx, js, msgs)
	if err != nil {
		in.unavailable(c, err)
		return
	}
	if in.published != nil {
		in.published.Add(float64(len(msgs)))
	}
	c.JSON(http.StatusOK, gin.H{
		"events":     len(msgs),
		"accepted":   len(msgs) - dups,
		"duplicates": dups,
	})
}

func (in *ingest) refuse(c *gin.Context, e *ingestError) {
	body := gin.H{"error": e.msg}
	if e.index >= 0 {
		body["index"] = e.index
		if e.field != "" {
			body["field"] = e.field
		}
	}
	in.log.Debug("ingest refused", "status", e.status, "error", e.msg)
	c.JSON(e.status, body)
}

// unavailable answers 503: the events may be in part stored, and a retry of the same
// request is safe, since every event keeps its id.
func (in *ingest) unavailable(c *gin.Context, err error) {
	in.log.Warn("ingest could not publish", "error", err)
	c.Header("Retry-After", "1")
	c.JSON(http.StatusServiceUnavailable, gin.H{
		"error": "events not stored, retry the request: " + err.Error(),
	})
}

// read checks the request's content type and size and decodes its events.
func (in *ingest) read(w http.ResponseWriter, r *http.Request) ([]events.Event, *ingestError) {
	ndjson, ierr := contentType(r.Header.Get("Content-Type"))
	if ierr != nil {
		return nil, ierr
	}
	// The body is read as it comes: a compressed one would read as garbage.
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, &ingestError{status: http.StatusUnsupportedMediaType, index: -1,
			msg: fmt.Sprintf("content encoding %q: send the body uncompressed", ce)}
	}
	body, ierr := in.body(w, r)
	if ierr != nil {
		return nil, ierr
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return nil, badRequest("body starts with a byte order mark, which JSON has not")
	}
	if !utf8.Valid(body) {
		return nil, badRequest("body is not valid UTF-8")
	}
	if depth := nesting(body); depth > maxIngestDepth {
		return nil, badRequest("JSON nested deeper than %d levels", maxIngestDepth)
	}
	if ndjson {
		return decodeLines(body)
	}
	return decodeJSON(body)
}

// contentType reports whether ct is NDJSON, or refuses it with 415.
func contentType(ct string) (bool, *ingestError) {
	refuse := &ingestError{
		status: http.StatusUnsupportedMediaType, index: -1,
		msg: fmt.Sprintf("content type %q: want %s or %s", ct, contentJSON, contentNDJSON),
	}
	if ct == "" {
		return false, refuse
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, refuse
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		refuse.msg = fmt.Sprintf("charset %q: events are UTF-8", cs)
		return false, refuse
	}
	switch mt {
	case contentJSON:
		return false, nil
	case contentNDJSON:
		return true, nil
	}
	return false, refuse
}

// body reads the request body, refusing with 413 one over the limit before reading
// more of it than the limit.
func (in *ingest) body(w http.ResponseWriter, r *http.Request) ([]byte, *ingestError) {
	tooLarge := &ingestError{
		status: http.StatusRequestEntityTooLarge, index: -1,
		msg: fmt.Sprintf("body over the limit of %d bytes (ingest_max_bytes): "+
			"send fewer events per request", in.maxBytes),
	}
	if r.ContentLength > in.maxBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.maxBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge
	}
	if err != nil {
		return nil, badRequest("read body: %v", err)
	}
	return body, nil
}

// nesting returns the deepest nesting of arrays and objects in a JSON text, counting
// only brackets outside strings. It stops counting once past the limit.
func nesting(b []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > maxIngestDepth {
					return deepest
				}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// decodeJSON decodes one event object or an array of them.
func decodeJSON(body []byte) ([]events.Event, *ingestError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, badRequest("empty body: want an event or an array of events")
	}
	if trimmed[0] == '{' {
		e, ierr := decodeEvent(trimmed, 0)
		if ierr != nil {
			return nil, ierr
		}
		return []events.Event{e}, nil
	}
	if trimmed[0] != '[' {
		return nil, badRequest("body is not a JSON object or array of events")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(trimmed, &raws); err != nil {
		return nil, badRequest("body is not a JSON array of events: %v", err)
	}
	if len(raws) == 0 {
		return nil, badRequest("empty array: no events")
	}
	out := make([]events.Event, 0, len(raws))
	for i, raw := range raws {
		e, ierr := decodeEvent(raw, i)
		if ierr != nil {
			return nil, ierr
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeLines decodes one event per line; blank lines are skipped and do not count
// as events.
func decodeLines(body []byte) ([]events.Event, *ingestError) {
	var out []events.Event
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		e, ierr := decodeEvent(line, len(out))
		if ierr != nil {
			return nil, ierr
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, badRequest("empty body: no events")
	}
	return out, nil
}

// decodeEvent decodes and validates the event at index i of the request.
func decodeEvent(raw []byte, i int) (events.Event, *ingestError) {
	if len(raw) == 0 || raw[0] != '{' {
		return events.Event{}, &ingestError{status: http.StatusBadRequest, index: i,
			msg: "event " + strconv.Itoa(i) + ": not a JSON object"}
	}
	e, err := events.Decode(raw)
	if err == nil {
		err = jobEvent(&e)
	}
	if err == nil {
		return e, nil
	}
	ierr := &ingestError{status: http.StatusBadRequest, index: i,
		msg: "event " + strconv.Itoa(i) + ": " + err.Error()}
	ierr.field = badField(err)
	return e, ierr
}

// jobEvent refuses what a job has no reason to send, beyond what [events.Decode]
// refuses everywhere: task_lost, which is the collector's verdict on a silent job
// and would let one client mark any task as dead; a negative step or total; and a
// metric without a name, which no chart can label; and labels (host, attempt, metric
// names) longer than events.Bound keeps.
func jobEvent(e *events.Event) error {
	if e.EventType == events.TaskLost {
		return &events.FieldError{Field: "event_type",
			Msg: "task_lost is published by the collector only"}
	}
	d := &e.Data
	if d.Step != nil && *d.Step < 0 {
		return &events.FieldError{Field: "data.step", Msg: "a step cannot be negative"}
	}
	if d.Total != nil && *d.Total < 0 {
		return &events.FieldError{Field: "data.total", Msg: "a total cannot be negative"}
	}
	for _, f := range []struct{ name, s string }{
		{"data.host", d.Host}, {"data.attempt", d.Attempt},
	} {
		if len(f.s) > events.MaxLabelLen {
			return &events.FieldError{Field: f.name, Msg: fmt.Sprintf(
				"%d bytes, more than %d", len(f.s), events.MaxLabelLen)}
		}
	}
	for k := range d.Metrics {
		if k == "" {
			return &events.FieldError{Field: "data.metrics", Msg: "a metric needs a name"}
		}
		if len(k) > events.MaxLabelLen {
			return &events.FieldError{Field: "data.metrics", Msg: fmt.Sprintf(
				"a metric name of %d bytes, more than %d", len(k), events.MaxLabelLen)}
		}
	}
	return nil
}

// badField names the field of an event that [events.Decode] refused, or returns ""
// when the JSON is broken as a whole.
func badField(err error) string {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	inData := strings.HasPrefix(err.Error(), events.ErrMalformed.Error()+": data:")
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && inData:
		if te.Field == "" { // data itself is of the wrong type
			return "data"
		}
		return "data." + te.Field
	case errors.As(err, &te):
		// The decoder names a field by its path through Decode's wrapper struct.
		return strings.TrimPrefix(te.Field, "Event.")
	case inData:
		return "data"
	}
	return ""
}

// messages encodes every event for a server whose max payload is maxPayload, so
// that an event that cannot fit is refused before anything is published.
func messages(evs []events.Event, maxPayload int64) ([]*nats.Msg, *ingestError) {
	msgs := make([]*nats.Msg, 0, len(evs))
	for i := range evs {
		m, err := evs[i].MsgWithin(maxPayload)
		if err != nil {
			return nil, &ingestError{status: http.StatusBadRequest, index: i,
				msg: "event " + strconv.Itoa(i) + ": " + err.Error()}
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// publishAll publishes msgs in windows of [ingestWindow] and waits for every
// acknowledgement. It returns how many JetStream dropped as duplicates.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (int, error) {
	dups := 0
	for start := 0; start < len(msgs); start += ingestWindow {
		window := msgs[start:min(start+ingestWindow, len(msgs))]
		futures := make([]jetstream.PubAckFuture, 0, len(window))
		for _, m := range window {
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return 0, fmt.Errorf("publish event %d: %w", start+len(futures), err)
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				if ack.Duplicate {
					dups++
				}
			case err := <-f.Err():
				return 0, fmt.Errorf("publish event %d: %w", start+i, err)
			case <-ctx.Done():
				return 0, fmt.Errorf("wait for acknowledgements: %w", ctx.Err())
			}
		}
	}
	return dups, nil
}
