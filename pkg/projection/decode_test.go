package projection

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

// checkFastDecode fails when decodeFast reads b and events.Decode does not, or reads
// another event, but for TimestampStr, which decodeFast leaves empty. decodeFast may
// refuse anything.
func checkFastDecode(t *testing.T, dec *decoder, b []byte) bool {
	t.Helper()
	var d decoded
	if !dec.decodeFast(b, &d) {
		return false
	}
	got, raw := d.e, d.raw
	want, err := events.Decode(b)
	if err != nil {
		t.Fatalf("decodeFast read what events.Decode refuses (%v):\n%s", err, b)
	}
	if got.TimestampStr != "" {
		t.Fatalf("TimestampStr set: %q", got.TimestampStr)
	}
	got.TimestampStr = want.TimestampStr
	wantRaw, _ := want.DataJSON()
	if len(raw) == 0 && string(wantRaw) == "{}" {
		wantRaw = nil
	}
	same := got.EventID == want.EventID && got.TaskID == want.TaskID &&
		got.TaskType == want.TaskType && got.Name == want.Name &&
		got.EventType == want.EventType &&
		math.Float64bits(got.Timestamp) == math.Float64bits(want.Timestamp) &&
		got.TimestampStr == want.TimestampStr && reflect.DeepEqual(got.Data, want.Data) &&
		bytes.Equal(raw, wantRaw)
	if !same {
		t.Fatalf("decodeFast differs from events.Decode on\n%s\ngot  %+v %s\nwant %+v %s", b, got,
			raw, want, wantRaw)
	}
	return true
}

func TestDecodeFastMatchesDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	var dec decoder
	fast := 0
	for i := range 20_000 {
		d := randomData(r)
		if i%2 == 0 {
			// As a job reports: plain text, finite numbers.
			step := int64(i)
			d = events.Data{Attempt: "a1", Step: &step, Host: "h", PID: i,
				Metrics: events.Metrics{"loss": r.Float64(), "acc": float64(i)}}
		}
		for k, v := range d.Metrics {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				delete(d.Metrics, k)
			}
		}
		if math.IsNaN(d.LastSeen) || math.IsInf(d.LastSeen, 0) {
			d.LastSeen = 0
		}
		if d.ParentID != "" {
			d.ParentID = "parent-1"
		}
		e := events.New(events.Types[r.IntN(len(events.Types))], fmt.Sprint("task", i),
			events.TaskTypes[r.IntN(len(events.TaskTypes))], []string{"n", "a b", "é"}[r.IntN(3)],
			d)
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if checkFastDecode(t, &dec, b) {
			fast++
		}
		for _, m := range mutations(b) {
			checkFastDecode(t, &dec, m)
		}
	}
	// Most events of a real producer take the fast path.
	if fast < 9_000 {
		t.Fatalf("only %d of 20,000 events read fast", fast)
	}
}

// mutations returns variants of an event's JSON that test the edges of the fast
// path: spaces, other orders, odd numbers, escapes, nulls, repeated and unknown keys.
func mutations(b []byte) [][]byte {
	s := string(b)
	return [][]byte{
		[]byte(" " + strings.ReplaceAll(strings.ReplaceAll(s, ",", " ,\n"), ":", ": ") + "\t"),
		[]byte(strings.Replace(s, `"data":`, `"extra":1,"data":`, 1)),
		[]byte(strings.Replace(s, `"data":{`, `"data":{"extra":1,`, 1)),
		[]byte(strings.Replace(s, `"name":`, `"Name":`, 1)),
		[]byte(strings.Replace(s, `"name":"`, `"name":"x","name":"`, 1)),
		[]byte(strings.Replace(s, `"data":{`, `"data":{"attempt":"z",`, 1)),
		[]byte(strings.Replace(s, `"timestamp":`, `"timestamp":-0.0e+00+`, 1)),
		[]byte(strings.Replace(s, `"timestamp":1`, `"timestamp":01`, 1)),
		[]byte(strings.Replace(s, `"timestamp":`, `"timestamp":1e400,"x":`, 1)),
		[]byte(strings.Replace(s, `"step":`, `"step":1.0,"s":`, 1)),
		[]byte(strings.Replace(s, `"step":`, `"step":1e2,"s":`, 1)),
		[]byte(strings.Replace(s, `"data":{`, `"data":null,"d":{`, 1)),
		[]byte(strings.Replace(s, `"name":"`, `"name":"\u00e9`, 1)),
		[]byte(strings.Replace(s, `"name":"`, `"name":"\\n`, 1)),
		[]byte(strings.Replace(s, `"name":"`, "\"name\":\"\xff\x7f", 1)),
		[]byte(strings.Replace(s, `"name":"`, "\"name\":\"é\x7f", 1)),
		[]byte(strings.Replace(s, `"metrics":{`, `"metrics":{"nan":"NaN",`, 1)),
		[]byte(strings.Replace(s, `"metrics":{`, `"metrics":{"big":1e999,`, 1)),
		[]byte(strings.Replace(s, `"params":`,
			`"params": [1, {"a":"\u00e9\"\\"}, true, null],"p":`, 1)),
		[]byte(strings.Replace(s, `"result":`,
			`"result":`+strings.Repeat("[", 34)+"1"+strings.Repeat("]", 34)+`,"r":`, 1)),
		[]byte(s + "x"),
		[]byte(s[:len(s)-1]),
		[]byte(strings.Replace(s, `"event_id":"`, `"event_id":"a.b`, 1)),
	}
}

func FuzzDecodeFast(f *testing.F) {
	step := int64(3)
	e := events.New(events.TaskProgress, "t1", events.TypeTraining, "n",
		events.Data{Attempt: "a", Step: &step, Metrics: events.Metrics{"loss": 0.5}})
	b, _ := e.Encode()
	f.Add(b)
	for _, m := range mutations(b) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var dec decoder
		checkFastDecode(t, &dec, b)
	})
}
