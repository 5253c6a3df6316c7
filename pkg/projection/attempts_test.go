package projection

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
)

// withAttempt stamps evs as attempt id, shifted by offset seconds.
func withAttempt(evs []events.Event, id string, offset float64) []events.Event {
	out := make([]events.Event, len(evs))
	for i, e := range evs {
		e.Data.Attempt = id
		e.Timestamp += offset
		e.EventID = id + "-" + e.EventID
		out[i] = e
	}
	return out
}

func TestRetryIsANewAttempt(t *testing.T) {
	first := withAttempt(lifecycle("t1", 2, events.TaskFailed), "a1", 0)
	second := withAttempt(lifecycle("t1", 3, events.TaskCompleted), "a2", 100)
	all := append(append([]events.Event(nil), first...), second...)

	want := New(nil)
	applyAll(want, all)
	got, _ := want.Get("t1")
	if got.Status != Completed || len(got.Attempts) != 2 || got.EventCount != len(all) {
		t.Fatalf("got %s with %d attempts, %d events", got.Status, len(got.Attempts), got.EventCount)
	}
	if a := got.Attempts[0]; a.Attempt != "a1" || a.Number != 1 || a.Status != Failed || a.Error != "boom" {
		t.Fatalf("first attempt: got %+v", a)
	}
	if got.Error != "" || got.Duration != 4 {
		t.Fatalf("the task shows the latest attempt: error %q duration %v", got.Error, got.Duration)
	}

	// Whatever order the two attempts' events arrive in, the end state is the same
	// and, once the second attempt has begun, its status is the task's.
	rng := rand.New(rand.NewPCG(7, 7))
	for round := 0; round < 30; round++ {
		shuffled := append([]events.Event(nil), all...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		p := New(nil)
		applyAll(p, shuffled)
		assertSameTasks(t, want, p)
	}

	// In stream order the status never goes back to the first attempt's FAILED once
	// the second attempt has started.
	p := New(nil)
	for i := range all {
		p.Apply(uint64(i+1), &all[i])
		task, _ := p.Get("t1")
		if i >= len(first)+1 && task.Status == Failed {
			t.Fatalf("after event %d the status flipped back to FAILED", i)
		}
	}
}

func TestHeartbeatsMoveLastSeenOnly(t *testing.T) {
	evs := lifecycle("t1", 1, "")
	p := New(nil)
	applyAll(p, evs)
	before, _ := p.Get("t1")

	hb := events.New(events.TaskHeartbeat, "t1", events.TypeTraining, "job t1", events.Data{})
	hb.Timestamp = evs[len(evs)-1].Timestamp + 10
	p.Apply(10, &hb)
	p.Apply(11, &hb)
	after, _ := p.Get("t1")
	if after.LastSeenAt != hb.Timestamp || after.EventCount != before.EventCount ||
		len(after.History) != len(before.History) || after.Status != Running {
		t.Fatalf("after heartbeats: %+v", after)
	}

	// A lost task that sends a heartbeat is running again.
	lost := events.New(events.TaskLost, "t1", events.TypeTraining, "job t1",
		events.Data{LastSeen: hb.Timestamp})
	lost.Timestamp = hb.Timestamp + 30
	p.Apply(12, &lost)
	if task, _ := p.Get("t1"); task.Status != Lost {
		t.Fatalf("got %s, want LOST", task.Status)
	}
	hb2 := hb
	hb2.EventID, hb2.Timestamp = "hb2", hb.Timestamp+40
	p.Apply(13, &hb2)
	if task, _ := p.Get("t1"); task.Status != Running {
		t.Fatalf("got %s, want RUNNING after a later heartbeat", task.Status)
	}
}

func TestOversizedAndFutureEventsAreAdjusted(t *testing.T) {
	p := New(nil)
	evs := lifecycle("t1", 0, events.TaskFailed)
	stored := time.Unix(1_700_000_100, 0)
	evs[0].Data.Description = strings.Repeat("x", 5<<20)
	evs[2].Timestamp = events.UnixSeconds(stored) + 10*365*24*3600
	evs[2].Data.Stack = strings.Repeat("y", events.MaxTextLen+10)
	for i := range evs {
		b, _ := json.Marshal(evs[i])
		if err := p.ApplyMsg(uint64(i+1), evs[i].Subject(), b, stored); err != nil && i != 0 {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	task, _ := p.Get("t1")
	st := p.Stats()
	// The 5 MiB event is larger than a message may be: skipped. The others apply.
	if st.SkippedByKind[SkipTooLarge] != 1 || st.AdjustedByKind[AdjustBounded] != 1 ||
		st.AdjustedByKind[AdjustClockAhead] != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if task.Status != Failed || task.FinishedAt != events.UnixSeconds(stored) ||
		len(task.Stack) > events.MaxTextLen+64 || !strings.Contains(task.Stack, "bytes cut") {
		t.Fatalf("task: status %s finished %v stack %d bytes", task.Status, task.FinishedAt, len(task.Stack))
	}
}

func TestSilentTasks(t *testing.T) {
	p := New(nil)
	applyAll(p, withAttempt(lifecycle("run", 1, ""), "a1", 0))
	applyAll(p, lifecycle("done", 1, events.TaskCompleted))
	applyAll(p, withAttempt(lifecycle("queued", 0, "")[:1], "q1", 0)) // submitted only
	if s := p.Silent(time.Now().Add(-time.Hour)); len(s) != 0 {
		t.Fatalf("heard from just now: got %v", s)
	}
	s := p.Silent(time.Now().Add(time.Second))
	slices.SortFunc(s, func(a, b Silent) int { return strings.Compare(a.TaskID, b.TaskID) })
	if len(s) != 2 || s[0].TaskID != "queued" || s[1].TaskID != "run" ||
		s[1].Attempt != "a1" || s[1].LastSeenAt == 0 {
		t.Fatalf("got %+v, want the pending and the running task", s)
	}

	// Once lost, neither is silent any more.
	for i, silent := range s {
		e := events.New(events.TaskLost, silent.TaskID, silent.Type, silent.Name,
			events.Data{Attempt: silent.Attempt, LastSeen: silent.LastSeenAt})
		p.Apply(uint64(100+i), &e)
		if task, _ := p.Get(silent.TaskID); task.Status != Lost {
			t.Fatalf("%s: %s after task_lost, want LOST", silent.TaskID, task.Status)
		}
	}
	if s := p.Silent(time.Now().Add(time.Second)); len(s) != 0 {
		t.Fatalf("got %+v after task_lost, want none", s)
	}
}

func TestStateWithoutRoomKeepsNoHistory(t *testing.T) {
	p := New(nil)
	for i := 0; i < 20; i++ {
		evs := withAttempt(lifecycle("big", 0, events.TaskFailed), fmt.Sprint("a", i), float64(i*10))
		evs[len(evs)-1].Data.Error = strings.Repeat("e", events.MaxTextLen)
		applyAll(p, evs)
	}
	snap := p.tasks["big"].snapshot()
	b, err := encodeForKV(&snap)
	if err != nil {
		t.Fatal(err)
	}
	var stored Task
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if len(b) > maxKVValue || stored.History != nil || stored.HistoryOmitted != 60 ||
		stored.Status != Failed || len(stored.Attempts) != 20 {
		t.Fatalf("got %d bytes, %d history, %d omitted, %s, %d attempts", len(b),
			len(stored.History), stored.HistoryOmitted, stored.Status, len(stored.Attempts))
	}
}

func TestManyAttemptsShowTheLatest(t *testing.T) {
	p := New(nil)
	const runs = MaxShownAttempts + 70
	var evs []events.Event
	for i := range runs {
		evs = append(evs, withAttempt(lifecycle("t1", 1, events.TaskFailed),
			fmt.Sprint("a", i), float64(10*i))...)
	}
	evs = append(evs, withAttempt(lifecycle("t1", 1, events.TaskCompleted), "last",
		float64(10*runs))...)
	for i := range evs {
		b, _ := evs[i].Encode()
		if err := p.ApplyMsg(uint64(i+1), evs[i].Subject(), b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}

	task, _ := p.Get("t1")
	n := len(task.Attempts)
	if n != MaxShownAttempts || task.AttemptsOmitted != runs+1-MaxShownAttempts {
		t.Fatalf("%d attempts shown, %d omitted; want %d and %d", n, task.AttemptsOmitted,
			MaxShownAttempts, runs+1-MaxShownAttempts)
	}
	if last := task.Attempts[n-1]; last.Attempt != "last" || last.Number != runs+1 ||
		task.Status != Completed {
		t.Fatalf("latest attempt %+v, task %s; want attempt last, number %d, completed",
			last, task.Status, runs+1)
	}
	if first := task.Attempts[0]; first.Number != runs+2-MaxShownAttempts {
		t.Fatalf("first shown attempt is number %d, want %d", first.Number,
			runs+2-MaxShownAttempts)
	}

	// The list row and the bucket's value say the same.
	page, _ := p.ListJSON(Query{Limit: 10})
	viaList, _ := p.List(Query{Limit: 10})
	if want, _ := json.Marshal(viaList); string(want) != string(page) {
		t.Fatalf("ListJSON differs from List:\n%s\n%s", page, want)
	}
	var list Page
	if err := json.Unmarshal(page, &list); err != nil || len(list.Tasks) != 1 {
		t.Fatalf("list: %v, %s", err, page)
	}
	if got := list.Tasks[0]; len(got.Attempts) != n || got.AttemptsOmitted != task.AttemptsOmitted {
		t.Fatalf("list row: %d attempts, %d omitted", len(got.Attempts), got.AttemptsOmitted)
	}
	var kv Task
	if err := json.Unmarshal(encodedForKV(t, p, "t1"), &kv); err != nil {
		t.Fatal(err)
	}
	if len(kv.Attempts) != n || kv.AttemptsOmitted != task.AttemptsOmitted {
		t.Fatalf("bucket: %d attempts, %d omitted", len(kv.Attempts), kv.AttemptsOmitted)
	}
}

// encodedForKV returns the bucket's value for a task.
func encodedForKV(t *testing.T, p *Projection, id string) []byte {
	t.Helper()
	snap := p.tasks[id].snapshot()
	b, err := encodeForKV(&snap)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
