package projection

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/miniray/miniray/pkg/events"
)

// The compact form of an event's data holds the fields of events.Data that are set,
// each once, without names, quotes or digits: a bit mask of the fields, then each
// field in the order of the struct. Strings and JSON values are a uvarint length and
// their bytes, integers zig-zag varints, floats their 8 bytes, the attempt and the
// names of metrics a uvarint index into the task's table of names (see
// task.names). A progress event of three metrics takes 33 bytes instead of about
// 160. It is kept only when rendering it gives back the JSON the event arrived with,
// byte for byte; renderData writes what json.Marshal writes for events.Data.

// Bits of the mask, one per field of events.Data, in the order of the struct.
const (
	fAttempt = 1 << iota
	fDescription
	fParentID
	fParams
	fHost
	fPID
	fStep
	fTotal
	fMetrics
	fResult
	fError
	fStack
	fReason
	fLastSeen
)

// compactView is a compact form read back. Its slices point into the form.
type compactView struct {
	mask        uint64
	attempt     uint64 // index into the names
	description []byte
	parentID    []byte
	params      []byte
	host        []byte
	pid         int64
	step, total int64
	nMetrics    int
	metrics     []byte // nMetrics times: uvarint name index, 8 bytes of value
	result      []byte
	errText     []byte
	stack       []byte
	reason      []byte
	lastSeen    float64
}

// dataMask returns the fields of d that JSON writes: those that omitempty keeps.
func dataMask(d *events.Data) uint64 {
	var m uint64
	for _, f := range [...]struct {
		bit uint64
		set bool
	}{
		{fAttempt, d.Attempt != ""}, {fDescription, d.Description != ""},
		{fParentID, d.ParentID != ""}, {fParams, len(d.Params) > 0}, {fHost, d.Host != ""},
		{fPID, d.PID != 0}, {fStep, d.Step != nil}, {fTotal, d.Total != nil},
		{fMetrics, len(d.Metrics) > 0}, {fResult, len(d.Result) > 0},
		{fError, d.Error != ""}, {fStack, d.Stack != ""}, {fReason, d.Reason != ""},
		{fLastSeen, d.LastSeen != 0},
	} {
		if f.set {
			m |= f.bit
		}
	}
	return m
}

// renderData appends d as json.Marshal writes it; keys holds the names of its
// metrics, sorted.
func renderData(b []byte, d *events.Data, keys []string) []byte {
	mask := dataMask(d)
	b = append(b, '{')
	b = appendStrMember(b, mask&fAttempt != 0, "attempt", d.Attempt)
	b = appendStrMember(b, mask&fDescription != 0, "description", d.Description)
	b = appendStrMember(b, mask&fParentID != 0, "parent_id", d.ParentID)
	if mask&fParams != 0 {
		b = appendRaw(appendMember(b, "params"), d.Params)
	}
	b = appendStrMember(b, mask&fHost != 0, "host", d.Host)
	if mask&fPID != 0 {
		b = strconv.AppendInt(appendMember(b, "pid"), int64(d.PID), 10)
	}
	if mask&fStep != 0 {
		b = strconv.AppendInt(appendMember(b, "step"), *d.Step, 10)
	}
	if mask&fTotal != 0 {
		b = strconv.AppendInt(appendMember(b, "total"), *d.Total, 10)
	}
	if mask&fMetrics != 0 {
		b = append(appendMember(b, "metrics"), '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, k), ':')
			b = appendMetric(b, d.Metrics[k])
		}
		b = append(b, '}')
	}
	if mask&fResult != 0 {
		b = appendRaw(appendMember(b, "result"), d.Result)
	}
	b = appendStrMember(b, mask&fError != 0, "error", d.Error)
	b = appendStrMember(b, mask&fStack != 0, "stack", d.Stack)
	b = appendStrMember(b, mask&fReason != 0, "reason", d.Reason)
	if mask&fLastSeen != 0 {
		b = appendFloat(appendMember(b, "last_seen"), d.LastSeen)
	}
	return append(b, '}')
}

// appendMember appends the name of an object's member, after a comma unless it is
// the first: the object's opening brace is then the last byte, which no value ends
// with.
func appendMember(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendStrMember appends a member whose value is a string, if set.
func appendStrMember[S ~string | ~[]byte](b []byte, set bool, name string, v S) []byte {
	if !set {
		return b
	}
	return appendString(appendMember(b, name), v)
}

// appendCompact appends the compact form of d; ref returns the index of a name in
// the task's table, and keys holds the names of d's metrics, sorted.
func appendCompact(b []byte, d *events.Data, keys []string, ref func(string) uint32) []byte {
	mask := dataMask(d)
	b = binary.AppendUvarint(b, mask)
	bytesOf := func(bit uint64, v []byte) {
		if mask&bit != 0 {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	str := func(bit uint64, v string) {
		if mask&bit != 0 {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	if mask&fAttempt != 0 {
		b = binary.AppendUvarint(b, uint64(ref(d.Attempt)))
	}
	str(fDescription, d.Description)
	str(fParentID, d.ParentID)
	bytesOf(fParams, d.Params)
	str(fHost, d.Host)
	if mask&fPID != 0 {
		b = binary.AppendVarint(b, int64(d.PID))
	}
	if mask&fStep != 0 {
		b = binary.AppendVarint(b, *d.Step)
	}
	if mask&fTotal != 0 {
		b = binary.AppendVarint(b, *d.Total)
	}
	if mask&fMetrics != 0 {
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(ref(k)))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.Metrics[k]))
		}
	}
	bytesOf(fResult, d.Result)
	str(fError, d.Error)
	str(fStack, d.Stack)
	str(fReason, d.Reason)
	if mask&fLastSeen != 0 {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.LastSeen))
	}
	return b
}

// decodeCompact reads a compact form that appendCompact wrote.
func decodeCompact(c []byte) compactView {
	var v compactView
	i := 0
	uvarint := func() uint64 {
		x, n := binary.Uvarint(c[i:])
		i += n
		return x
	}
	varint := func() int64 {
		x, n := binary.Varint(c[i:])
		i += n
		return x
	}
	bytesOf := func(bit uint64) []byte {
		if v.mask&bit == 0 {
			return nil
		}
		n := int(uvarint())
		i += n
		return c[i-n : i : i]
	}
	float := func() float64 {
		i += 8
		return math.Float64frombits(binary.LittleEndian.Uint64(c[i-8:]))
	}
	v.mask = uvarint()
	if v.mask&fAttempt != 0 {
		v.attempt = uvarint()
	}
	v.description = bytesOf(fDescription)
	v.parentID = bytesOf(fParentID)
	v.params = bytesOf(fParams)
	v.host = bytesOf(fHost)
	if v.mask&fPID != 0 {
		v.pid = varint()
	}
	if v.mask&fStep != 0 {
		v.step = varint()
	}
	if v.mask&fTotal != 0 {
		v.total = varint()
	}
	if v.mask&fMetrics != 0 {
		v.nMetrics = int(uvarint())
		start := i
		for range v.nMetrics {
			uvarint()
			i += 8
		}
		v.metrics = c[start:i:i]
	}
	v.result = bytesOf(fResult)
	v.errText = bytesOf(fError)
	v.stack = bytesOf(fStack)
	v.reason = bytesOf(fReason)
	if v.mask&fLastSeen != 0 {
		v.lastSeen = float()
	}
	return v
}

// eachMetric calls f with the index of the name and the value of every metric, in
// the order of their names.
func (v *compactView) eachMetric(f func(ref uint64, value float64)) {
	m := v.metrics
	for range v.nMetrics {
		ref, n := binary.Uvarint(m)
		f(ref, math.Float64frombits(binary.LittleEndian.Uint64(m[n:])))
		m = m[n+8:]
	}
}

// render appends the JSON that the compact form stands for.
func (v *compactView) render(b []byte, names []string) []byte {
	b = append(b, '{')
	if v.mask&fAttempt != 0 {
		b = appendString(appendMember(b, "attempt"), names[v.attempt])
	}
	b = appendStrMember(b, v.mask&fDescription != 0, "description", v.description)
	b = appendStrMember(b, v.mask&fParentID != 0, "parent_id", v.parentID)
	if v.mask&fParams != 0 {
		b = appendRaw(appendMember(b, "params"), v.params)
	}
	b = appendStrMember(b, v.mask&fHost != 0, "host", v.host)
	if v.mask&fPID != 0 {
		b = strconv.AppendInt(appendMember(b, "pid"), v.pid, 10)
	}
	if v.mask&fStep != 0 {
		b = strconv.AppendInt(appendMember(b, "step"), v.step, 10)
	}
	if v.mask&fTotal != 0 {
		b = strconv.AppendInt(appendMember(b, "total"), v.total, 10)
	}
	if v.mask&fMetrics != 0 {
		b = append(appendMember(b, "metrics"), '{')
		m := v.metrics
		for i := range v.nMetrics {
			if i > 0 {
				b = append(b, ',')
			}
			ref, n := binary.Uvarint(m)
			b = append(appendString(b, names[ref]), ':')
			b = appendMetric(b, math.Float64frombits(binary.LittleEndian.Uint64(m[n:])))
			m = m[n+8:]
		}
		b = append(b, '}')
	}
	if v.mask&fResult != 0 {
		b = appendRaw(appendMember(b, "result"), v.result)
	}
	b = appendStrMember(b, v.mask&fError != 0, "error", v.errText)
	b = appendStrMember(b, v.mask&fStack != 0, "stack", v.stack)
	b = appendStrMember(b, v.mask&fReason != 0, "reason", v.reason)
	if v.mask&fLastSeen != 0 {
		b = appendFloat(appendMember(b, "last_seen"), v.lastSeen)
	}
	return append(b, '}')
}

// data returns the events.Data that the compact form stands for, as json.Unmarshal
// would read it from the rendered JSON.
func (v *compactView) data(names []string) events.Data {
	d := events.Data{
		Description: string(v.description),
		ParentID:    string(v.parentID),
		Host:        string(v.host),
		PID:         int(v.pid),
		Error:       string(v.errText),
		Stack:       string(v.stack),
		Reason:      string(v.reason),
		LastSeen:    v.lastSeen,
	}
	if v.mask&fAttempt != 0 {
		d.Attempt = names[v.attempt]
	}
	if v.mask&fParams != 0 {
		d.Params = json.RawMessage(slices.Clone(v.params))
	}
	if v.mask&fResult != 0 {
		d.Result = json.RawMessage(slices.Clone(v.result))
	}
	if v.mask&fStep != 0 {
		step := v.step
		d.Step = &step
	}
	if v.mask&fTotal != 0 {
		total := v.total
		d.Total = &total
	}
	if v.mask&fMetrics != 0 {
		d.Metrics = make(events.Metrics, v.nMetrics)
		v.eachMetric(func(ref uint64, value float64) { d.Metrics[names[ref]] = value })
	}
	return d
}
