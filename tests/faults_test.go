package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// The fault tests: the real programs, with the collector, the dashboard, the job or
// the network between them killed or cut while a job runs. Every test checks the
// same promise from another side: each event a job reported reaches every dashboard
// exactly once, and the task ends in the status that describes what happened to it.

// TestCollectorKilledDuringJob kills the collector (and its NATS server) with SIGKILL
// in the middle of a fast job and restarts it on the same data. The job finishes, and
// the dashboard, which reconnects by itself, shows every event exactly once, as does
// a dashboard started afterwards.
func TestCollectorKilledDuringJob(t *testing.T) {
	const steps, id = 10000, "collector-killed"
	s := newSystem(t)
	s.startCollector()
	s.startDashboard()
	d := s.dash()

	job := start(t, "jobber", s.jobEnv(), "--steps", fmt.Sprint(steps), "--every", "200us",
		"--name", id, "--task-id", id)
	d.waitTask(id, "running", 30*time.Second, runningPast(500))
	s.collector.kill()
	if job.exited() {
		t.Fatal("the job ended before the collector was killed; the test proves nothing")
	}
	time.Sleep(time.Second) // the outage itself
	s.startCollector()

	sum := parseSummary(t, waitExit(t, job, 2*time.Minute))
	if sum.Steps != steps || sum.Dropped != 0 {
		t.Fatalf("job summary %+v, want %d steps and nothing dropped", sum, steps)
	}
	d.waitTask(id, "completed with every event", 60*time.Second, func(task projection.Task) error {
		if task.Status != projection.Completed || task.EventCount < steps+3 {
			return fmt.Errorf("status %s with %d events", task.Status, task.EventCount)
		}
		return nil
	})
	_, js := s.connect()
	d.waitCaughtUp(streamState(t, js).LastSeq)
	checkCompleteRun(t, d.task(id), steps, 0)

	st := d.stats()
	if st["total"] != 1.0 || st["events_applied"] != float64(steps+3) {
		t.Fatalf("stats: total %v, events_applied %v, want 1 and %d", st["total"],
			st["events_applied"], steps+3)
	}
	t.Logf("skipped on the stream: %v", st["skipped_by_kind"])

	// The bucket holds the final state too, its history trimmed to fit one value.
	kv, err := js.KeyValue(t.Context(), events.BucketName)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "bucket holds the completed task", 30*time.Second, func() error {
		e, err := kv.Get(t.Context(), id)
		if err != nil {
			return err
		}
		var got projection.Task
		if err := json.Unmarshal(e.Value(), &got); err != nil {
			return err
		}
		if got.Status != projection.Completed || got.EventCount != steps+3 ||
			len(got.History)+got.HistoryOmitted != steps+3 {
			return fmt.Errorf("bucket: %s with %d events, %d in history and %d omitted",
				got.Status, got.EventCount, len(got.History), got.HistoryOmitted)
		}
		return nil
	})

	// A dashboard that never saw the outage replays the same state.
	fresh := s.startExtraDashboard()
	if a, b := d.taskJSON(id), fresh.taskJSON(id); !sameJSON(a, b) {
		t.Fatalf("the task differs between the dashboard that lived through the outage and a"+
			" fresh one:\n%.2000s\n%.2000s", a, b)
	}
	if a, b := d.stats(), fresh.stats(); !reflect.DeepEqual(a, b) {
		t.Fatalf("stats differ:\nlived through %v\nfresh         %v", a, b)
	}
}

// TestJobWithoutNATSArrivesLater runs jobs while no NATS server exists at all. They
// end promptly with their events in the spool; the collector started afterwards sends
// the spool files, the dashboard shows both jobs complete, and the spool dir ends
// empty.
func TestJobWithoutNATSArrivesLater(t *testing.T) {
	const epochs, steps = 20, 100
	// The examples give up waiting for NATS after closeTimeout (10 s): a job that
	// spools instead of waiting ends well before that.
	const closeTimeout = 10 * time.Second
	s := newSystem(t) // nothing listens on s.natsAddr yet

	began := time.Now()
	s.train("offline-train", epochs)
	if took := time.Since(began); took >= closeTimeout {
		t.Fatalf("train without NATS took %s, want less than its close timeout %s", took,
			closeTimeout)
	}
	began = time.Now()
	sum := parseSummary(t, run(t, "jobber", s.jobEnv(), "--steps", fmt.Sprint(steps),
		"--name", "offline-jobber", "--task-id", "offline-jobber"))
	if took := time.Since(began); took >= closeTimeout {
		t.Fatalf("jobber without NATS took %s, want less than %s", took, closeTimeout)
	}
	if sum.Spooled != steps+3 || sum.Dropped != 0 {
		t.Fatalf("jobber summary %+v, want %d events spooled and none dropped", sum, steps+3)
	}
	if files := spoolFiles(t, s.spoolDir); len(files) != 2 {
		t.Fatalf("spool dir holds %v, want one file per job", files)
	}

	s.startCollector()
	s.startDashboard()
	d := s.dash()
	want := map[string]int{"offline-train": epochs, "offline-jobber": steps}
	byName := map[string]projection.Task{}
	eventually(t, "both jobs arrived", 60*time.Second, func() error {
		clear(byName)
		for _, task := range s.tasks().Tasks {
			byName[task.Name] = task
		}
		for name, n := range want {
			task, ok := byName[name]
			if !ok || task.Status != projection.Completed || task.EventCount != n+3 {
				return fmt.Errorf("%s not complete yet: %+v", name, task)
			}
		}
		return nil
	})
	if len(byName) != len(want) {
		t.Fatalf("got tasks %v, want only %v", byName, want)
	}
	for name, n := range want {
		checkCompleteRun(t, d.task(byName[name].TaskID), n, 0)
	}
	eventually(t, "spool dir empty", 30*time.Second, func() error {
		entries, err := os.ReadDir(s.spoolDir)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("%d entries left, first %s", len(entries), entries[0].Name())
		}
		return nil
	})
}

// TestSpoolSentByTheNextJob runs job A to its end while no NATS runs, so that its
// whole history lands in a spool file. The collector then starts with its watch of
// the spool directory turned off, so that only a job can send the file, and a
// dashboard starts. Job B, short and on the same spool directory, sends A's file
// when it connects and waits for that before it exits: both jobs arrive complete,
// every event exactly once, and the spool directory ends empty.
func TestSpoolSentByTheNextJob(t *testing.T) {
	const stepsA, stepsB = 300, 20
	s := newSystem(t) // nothing listens on s.natsAddr yet

	sum := parseSummary(t, run(t, "jobber", s.jobEnv(), "--steps", fmt.Sprint(stepsA),
		"--name", "job-a", "--task-id", "job-a"))
	if sum.Spooled != stepsA+3 || sum.Dropped != 0 {
		t.Fatalf("job A summary %+v, want %d events spooled and none dropped", sum, stepsA+3)
	}
	files := spoolFiles(t, s.spoolDir)
	if len(files) != 1 {
		t.Fatalf("spool dir holds %v, want job A's file", files)
	}

	// The flag given last wins: an empty spool dir turns the collector's watch off.
	// A short scan interval would send the file at once if it did not.
	s.startCollectorWith("--spool-dir", "", "--spool-scan", "100ms")
	s.startDashboard()
	d := s.dash()
	time.Sleep(time.Second)
	if left := spoolFiles(t, s.spoolDir); !slices.Equal(left, files) {
		t.Fatalf("spool dir holds %v with only the collector up, want job A's file %v", left,
			files)
	}
	if _, err := d.fetchTask("job-a"); err == nil {
		t.Fatal("job A arrived before job B ran: something else sent the spool")
	}

	out := run(t, "jobber", s.jobEnv(), "--steps", fmt.Sprint(stepsB), "--name", "job-b",
		"--task-id", "job-b")
	if sum := parseSummary(t, out); sum.Spooled != 0 || sum.Dropped != 0 {
		t.Fatalf("job B summary %+v, want nothing spooled or dropped", sum)
	}
	if !strings.Contains(out, "spool file sent") {
		t.Fatalf("job B did not log sending job A's spool file:\n%s", out)
	}
	if left := spoolFiles(t, s.spoolDir); len(left) != 0 {
		t.Fatalf("spool dir holds %v after job B ended, want it empty", left)
	}

	_, js := s.connect()
	st := streamState(t, js)
	if want := uint64(stepsA + 3 + stepsB + 3); st.Msgs != want {
		t.Fatalf("stream holds %d messages, want %d: each event of both jobs once", st.Msgs, want)
	}
	d.waitCaughtUp(st.LastSeq)
	checkCompleteRun(t, d.task("job-a"), stepsA, 0)
	checkCompleteRun(t, d.task("job-b"), stepsB, 0)
	stats := d.stats()
	if stats["total"] != 2.0 || stats["events_applied"] != float64(stepsA+3+stepsB+3) ||
		stats["events_skipped"] != 0.0 {
		t.Fatalf("stats: total %v, events_applied %v, events_skipped %v; want 2, %d and 0",
			stats["total"], stats["events_applied"], stats["events_skipped"], stepsA+3+stepsB+3)
	}
}

// spoolFiles returns the spool files in dir.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.spool"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNATSDownForTenSeconds stops the collector (SIGTERM) for ten seconds while a job
// reports every 5 ms. The job never waits on the network: its slowest progress report
// stays under the bound, it takes about as long as it would have without the outage,
// and all of its events arrive exactly once.
func TestNATSDownForTenSeconds(t *testing.T) {
	const (
		steps  = 3000
		every  = 5 * time.Millisecond
		id     = "nats-down"
		outage = 10 * time.Second
		// The bound on one progress report, MINIRAY_PUBLISH_WAIT's default: at this
		// pace the queue never fills, so a report only appends to it in memory and
		// even a loaded machine stays far below the bound.
		reportBound = 100 * time.Millisecond
		// What the job may take beyond its own pace: start, connect, the final flush.
		slack = 5 * time.Second
	)
	s := newSystem(t)
	s.startCollector()
	s.startDashboard()
	d := s.dash()

	began := time.Now()
	job := start(t, "jobber", s.jobEnv(), "--steps", fmt.Sprint(steps), "--every", every.String(),
		"--name", id, "--task-id", id)
	// About two seconds in: 400 steps at 5 ms.
	pace := jobPace(t, d.waitTask(id, "running", 30*time.Second, runningPast(400)))
	s.collector.stop(t)
	if job.exited() {
		t.Fatal("the job ended before NATS went down; the test proves nothing")
	}
	time.Sleep(outage) // the outage itself
	s.startCollector()

	sum := parseSummary(t, waitExit(t, job, 2*time.Minute))
	took := time.Since(began)
	t.Logf("job took %s for %d steps every %s (%s a step before the outage); slowest report"+
		" %.0f µs", took, steps, every, pace, sum.MaxReportUS)
	if sum.Steps != steps || sum.Dropped != 0 {
		t.Fatalf("job summary %+v, want %d steps and nothing dropped", sum, steps)
	}
	if slowest := time.Duration(sum.MaxReportUS) * time.Microsecond; slowest >= reportBound {
		t.Fatalf("slowest progress report took %s, want under %s", slowest, reportBound)
	}
	// The pace the job kept before the outage is every plus the machine's own delay
	// on each pause; a loaded machine slows both runs alike.
	if limit := steps*max(every, pace) + slack; took > limit {
		t.Fatalf("job took %s, want at most %s (its pace plus %s): the outage held it up",
			took, limit, slack)
	}

	d.waitTask(id, "completed with every event", 60*time.Second, func(task projection.Task) error {
		if task.Status != projection.Completed || task.EventCount < steps+3 {
			return fmt.Errorf("status %s with %d events", task.Status, task.EventCount)
		}
		return nil
	})
	_, js := s.connect()
	d.waitCaughtUp(streamState(t, js).LastSeq)
	checkCompleteRun(t, d.task(id), steps, 0)
	st := d.stats()
	if st["events_applied"] != float64(steps+3) {
		t.Fatalf("stats: events_applied %v, want %d", st["events_applied"], steps+3)
	}
	t.Logf("skipped on the stream: %v", st["skipped_by_kind"])
}

// jobPace returns the mean time between a task's progress events, by the job's own
// timestamps.
func jobPace(t *testing.T, task projection.Task) time.Duration {
	t.Helper()
	var first, last *projection.HistoryEntry
	n := 0
	for i := range task.History {
		if h := &task.History[i]; h.EventType == events.TaskProgress {
			if first == nil {
				first = h
			}
			last, n = h, n+1
		}
	}
	if n < 2 {
		t.Fatalf("task %s: %d progress events, too few to measure a pace", task.TaskID, n)
	}
	return time.Duration((last.Timestamp - first.Timestamp) / float64(n-1) * float64(time.Second))
}

// TestRepublishAfterDedupWindow publishes every message of the stream a second time,
// with its own message id, after JetStream's duplicate window has passed, so that
// the stream stores each one twice. The projection drops the copies of events by
// event id: the task's state and the stats stay as they were, except for the count
// of skipped duplicates, which grows by exactly the number of events republished,
// and a fresh replay agrees. Heartbeats are not deduplicated (docs/reliability.md):
// their copies change nothing but the heartbeats count, which grows by exactly the
// number republished.
func TestRepublishAfterDedupWindow(t *testing.T) {
	const window, id = time.Second, "republished"
	s := newSystem(t)
	s.startCollectorWith("--duplicate-window", window.String())
	s.startDashboard()
	d := s.dash()
	_, js := s.connect()
	stream, err := js.Stream(t.Context(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().Config.Duplicates; got != window {
		t.Fatalf("stream duplicate window %s, want %s", got, window)
	}

	// About a second of work with a heartbeat every 100 ms: the stream holds
	// lifecycle, progress and heartbeat messages.
	run(t, "jobber", append(s.jobEnv(), "MINIRAY_HEARTBEAT_INTERVAL=100ms"),
		"--steps", "50", "--every", "20ms", "--name", id, "--task-id", id)
	finished := time.Now() // every event was acknowledged before the job exited
	d.waitTask(id, "completed", 30*time.Second, hasStatus(projection.Completed))
	first := streamState(t, js)
	d.waitCaughtUp(first.LastSeq)
	before, beforeTask := d.stats(), d.taskJSON(id)

	// The window counts from each id's first sighting. Wait it out; the server then
	// forgets the ids on a timer, so a copy it still drops as a duplicate (nothing
	// stored) is published again until it is stored.
	time.Sleep(time.Until(finished.Add(window + window/4)))
	msgs := readStream(t, js, first.Msgs)
	beats := 0
	for _, m := range msgs {
		if strings.HasSuffix(m.Subject, "."+string(events.TaskHeartbeat)) {
			beats++
		}
	}
	if beats == 0 {
		t.Fatal("the job sent no heartbeat; the test would not cover them")
	}
	for _, m := range msgs {
		msgID := m.Header.Get(jetstream.MsgIDHeader)
		if msgID == "" {
			t.Fatalf("message on %s has no %s", m.Subject, jetstream.MsgIDHeader)
		}
		eventually(t, "republish "+msgID+" after the window", 30*time.Second, func() error {
			ack, err := js.PublishMsg(t.Context(), m)
			if err != nil {
				return err
			}
			if ack.Duplicate {
				return fmt.Errorf("dropped as a duplicate of sequence %d", ack.Sequence)
			}
			return nil
		})
	}
	second := streamState(t, js)
	if second.Msgs != 2*first.Msgs {
		t.Fatalf("stream holds %d messages after republishing %d, want %d", second.Msgs,
			len(msgs), 2*first.Msgs)
	}

	d.waitCaughtUp(second.LastSeq)
	after := d.stats()
	checkOnlyCopiesCounted(t, before, after, len(msgs)-beats, beats)
	if a := d.taskJSON(id); !sameJSON(beforeTask, a) {
		t.Fatalf("task changed by the copies:\nbefore %.2000s\nafter  %.2000s", beforeTask, a)
	}

	fresh := s.startExtraDashboard()
	if a := fresh.stats(); !reflect.DeepEqual(after, a) {
		t.Fatalf("a fresh replay's stats differ:\nlive  %v\nfresh %v", after, a)
	}
	if a := fresh.taskJSON(id); !sameJSON(beforeTask, a) {
		t.Fatalf("a fresh replay's task differs:\nbefore %.2000s\nfresh  %.2000s", beforeTask, a)
	}
}

// checkOnlyCopiesCounted checks that two stats differ only in the skipped
// duplicates, grown by dupes, and the heartbeats, grown by beats.
func checkOnlyCopiesCounted(t *testing.T, before, after map[string]any, dupes, beats int) {
	t.Helper()
	num := func(st map[string]any, keys ...string) float64 {
		var v any = st
		for _, k := range keys {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		f, _ := v.(float64)
		return f
	}
	for _, c := range []struct {
		keys []string
		grow int
	}{
		{[]string{"skipped_by_kind", projection.SkipDuplicate}, dupes},
		{[]string{"events_skipped"}, dupes},
		{[]string{"heartbeats"}, beats},
	} {
		if got := num(after, c.keys...) - num(before, c.keys...); got != float64(c.grow) {
			t.Fatalf("%v grew by %v, want %d (events_applied went from %v to %v)", c.keys, got,
				c.grow, before["events_applied"], after["events_applied"])
		}
	}

	// Everything else is as it was.
	norm := func(st map[string]any) map[string]any {
		c := maps.Clone(st)
		delete(c, "events_skipped")
		delete(c, "heartbeats")
		byKind, _ := st["skipped_by_kind"].(map[string]any)
		byKind = maps.Clone(byKind)
		delete(byKind, projection.SkipDuplicate)
		c["skipped_by_kind"] = byKind
		return c
	}
	if a, b := norm(before), norm(after); !reflect.DeepEqual(a, b) {
		t.Fatalf("stats changed beyond the copies:\nbefore %v\nafter  %v", a, b)
	}
}

// readStream reads the first n messages of the event stream with an ordered
// consumer and returns them as messages ready to publish again, headers included.
func readStream(t *testing.T, js jetstream.JetStream, n uint64) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	out := make([]*nats.Msg, 0, n)
	for uint64(len(out)) < n {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("read message %d of %d: %v", len(out)+1, n, err)
		}
		msg := nats.NewMsg(m.Subject())
		msg.Data = append([]byte(nil), m.Data()...)
		for k, v := range m.Headers() {
			msg.Header[k] = append([]string(nil), v...)
		}
		out = append(out, msg)
	}
	return out
}

// TestKilledJobTurnsLost kills a running job with SIGKILL, so that it sends nothing
// more, not even a failure. The collector's watchdog declares it LOST within its
// lost-after setting and a margin, and the task keeps the time it was last seen.
func TestKilledJobTurnsLost(t *testing.T) {
	const (
		lostAfter = time.Second
		// The watchdog checks every lostAfter/4 and the dashboard applies its event
		// at once; the margin is for a loaded machine.
		margin = 5 * time.Second
		id     = "killed-job"
	)
	s := newSystem(t)
	s.startCollectorWith("--lost-after", lostAfter.String())
	s.startDashboard()
	d := s.dash()

	env := append(s.jobEnv(), "MINIRAY_HEARTBEAT_INTERVAL=200ms")
	job := start(t, "jobber", env, "--steps", "100000", "--every", "10ms", "--name", id,
		"--task-id", id)
	d.waitTask(id, "running", 30*time.Second, runningPast(10))
	killing := time.Now()
	job.kill() // returns once the process is gone
	killed := time.Now()

	task := d.waitTask(id, "lost", lostAfter+margin, hasStatus(projection.Lost))
	t.Logf("LOST %s after the kill", time.Since(killing).Round(time.Millisecond))
	if task.LastSeenAt == 0 || task.LastSeenAtStr == "" {
		t.Fatalf("last_seen_at not set: %v %q", task.LastSeenAt, task.LastSeenAtStr)
	}
	if task.LastSeenAt > events.UnixSeconds(killed) || task.LastSeenAt < task.StartedAt {
		t.Fatalf("last_seen_at %s, want between the start %s and the kill %s",
			task.LastSeenAtStr, task.StartedAtStr, events.FormatTime(killed))
	}
	counts := countHistory(t, task)
	if counts[events.TaskLost] != 1 || counts[events.TaskFailed]+counts[events.TaskCompleted]+
		counts[events.TaskCancelled] != 0 {
		t.Fatalf("events by type %v, want one task_lost and no end", counts)
	}
	for _, h := range task.History {
		if h.EventType == events.TaskLost && h.Data.LastSeen != task.LastSeenAt {
			t.Fatalf("task_lost says last seen %v, the task %v", h.Data.LastSeen, task.LastSeenAt)
		}
	}
}

// TestCutOffJobComesBack cuts a running job off from NATS through a proxy, as a
// network partition would, while the dashboard stays connected. The watchdog
// declares the task LOST; once the network is back the job's spooled events arrive,
// the task is RUNNING again and then COMPLETED, with no event missing.
func TestCutOffJobComesBack(t *testing.T) {
	const (
		steps     = 2000
		lostAfter = time.Second
		cutFor    = 4 * time.Second
		id        = "cut-off"
	)
	s := newSystem(t)
	s.startCollectorWith("--lost-after", lostAfter.String())
	s.startDashboard()
	d := s.dash()

	px := natstest.StartProxy(t, s.natsAddr)
	env := []string{"MINIRAY_NATS_URL=nats://" + px.Addr(), "MINIRAY_SPOOL_DIR=" + s.spoolDir,
		"MINIRAY_HEARTBEAT_INTERVAL=200ms"}
	job := start(t, "jobber", env, "--steps", fmt.Sprint(steps), "--every", "5ms", "--name", id,
		"--task-id", id)
	d.waitTask(id, "running", 30*time.Second, runningPast(100))

	px.Cut()
	cutAt := time.Now()
	lost := d.waitTask(id, "lost while cut off", 30*time.Second, hasStatus(projection.Lost))
	time.Sleep(time.Until(cutAt.Add(cutFor))) // keep the partition up for its full length
	if job.exited() {
		t.Fatal("the job ended while cut off; the test cannot see it come back")
	}
	px.Restore()

	d.waitTask(id, "running again", 30*time.Second, func(task projection.Task) error {
		if task.Status != projection.Running || task.Progress.Step <= lost.Progress.Step {
			return fmt.Errorf("status %s at step %d, want RUNNING past step %d", task.Status,
				task.Progress.Step, lost.Progress.Step)
		}
		return nil
	})
	sum := parseSummary(t, waitExit(t, job, 2*time.Minute))
	if sum.Steps != steps || sum.Dropped != 0 {
		t.Fatalf("job summary %+v, want %d steps and nothing dropped", sum, steps)
	}
	d.waitTask(id, "completed", 60*time.Second, hasStatus(projection.Completed))
	_, js := s.connect()
	d.waitCaughtUp(streamState(t, js).LastSeq)
	task := d.task(id)
	checkCompleteRun(t, task, steps, -1)
	n := countHistory(t, task)[events.TaskLost]
	if n < 1 {
		t.Fatalf("history has %d task_lost events, want at least one", n)
	}
	t.Logf("lost at step %d; %d task_lost event(s) in the history", lost.Progress.Step, n)
}

// TestSignalEndsCancelled stops running jobs with SIGTERM and SIGINT: each exits and
// its task ends CANCELLED, never FAILED or COMPLETED. For contrast, a job that
// returns is COMPLETED, and jobs that return an error or panic are FAILED.
func TestSignalEndsCancelled(t *testing.T) {
	s := newSystem(t)
	s.startCollector()
	s.startDashboard()
	d := s.dash()

	for _, c := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}} {
		t.Run(c.name, func(t *testing.T) {
			d := d.on(t)
			id := "signalled-" + strings.ToLower(c.name)
			job := start(t, "jobber", s.jobEnv(), "--steps", "100000", "--every", "10ms",
				"--name", id, "--task-id", id)
			d.waitTask(id, "running", 30*time.Second, runningPast(1))
			if err := job.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			sum := parseSummary(t, waitExit(t, job, 30*time.Second))
			if sum.Steps >= 100000 {
				t.Fatalf("job ran all its steps despite the signal: %+v", sum)
			}
			task := d.waitTask(id, "cancelled", 30*time.Second, func(task projection.Task) error {
				if task.Status == projection.Failed || task.Status == projection.Completed {
					t.Fatalf("task ended %s, want CANCELLED", task.Status)
				}
				return hasStatus(projection.Cancelled)(task)
			})
			counts := countHistory(t, task)
			if counts[events.TaskCancelled] != 1 ||
				counts[events.TaskFailed]+counts[events.TaskCompleted] != 0 {
				t.Fatalf("events by type %v, want one task_cancelled and no other end", counts)
			}
			if task.FinishedAt == 0 || task.Error == "" {
				t.Fatalf("cancelled task without finished_at or error: %+v", task)
			}
			end := task.History[len(task.History)-1]
			t.Logf("cancelled at step %d: error %q, reason %q", task.Progress.Step, task.Error,
				end.Data.Reason)
		})
	}

	t.Run("returned is COMPLETED", func(t *testing.T) {
		d := d.on(t)
		const id = "returned"
		run(t, "jobber", s.jobEnv(), "--steps", "20", "--name", id, "--task-id", id)
		task := d.waitTask(id, "completed", 30*time.Second, hasStatus(projection.Completed))
		checkCompleteRun(t, task, 20, 0)
	})

	t.Run("error and panic are FAILED", func(t *testing.T) {
		d := d.on(t)
		out := run(t, "fail", s.jobEnv())
		ids := regexp.MustCompile(`\(task (\S+)\) (failed|panicked) as expected`).
			FindAllStringSubmatch(out, -1)
		if len(ids) != 2 {
			t.Fatalf("fail did not report two task ids:\n%s", out)
		}
		for _, m := range ids {
			task := d.waitTask(m[1], "failed", 30*time.Second, func(task projection.Task) error {
				if task.Status.Finished() && task.Status != projection.Failed {
					t.Fatalf("task %s ended %s, want FAILED", task.Name, task.Status)
				}
				return hasStatus(projection.Failed)(task)
			})
			if task.Error == "" {
				t.Fatalf("failed task %s has no error", task.Name)
			}
			panicked := m[2] == "panicked"
			if hasStack := strings.Contains(task.Stack, "goroutine"); hasStack != panicked {
				t.Fatalf("task %s (%s): stack %q", task.Name, m[2], task.Stack)
			}
			if panicked && !strings.HasPrefix(task.Error, "panic: ") {
				t.Fatalf("task %s: error %q, want the panic value", task.Name, task.Error)
			}
		}
	})
}

// TestDashboardKilledDuringReplay kills a dashboard with SIGKILL while it replays a
// stream of 100,000 events (2,000 tasks of 50 events) and starts it again. The
// restarted dashboard holds exactly the state that an in-process projection fed the
// same events holds, task by task and in its stats, and the bucket agrees with it.
func TestDashboardKilledDuringReplay(t *testing.T) {
	const tasks, perTask = 2000, 50
	s := newSystem(t)
	// A third of the tasks stay running and none sends heartbeats: a long lost-after
	// keeps the watchdog from declaring them lost while the test compares states.
	s.startCollectorWith("--lost-after", "1h")
	_, js := s.connect()
	want, ids := publishFleet(t, js, tasks, perTask)
	if st := streamState(t, js); st.Msgs != tasks*perTask {
		t.Fatalf("stream holds %d messages, want %d", st.Msgs, tasks*perTask)
	}

	addr := freeAddr(t)
	rs := killDuringReplay(t, s, addr)
	t.Logf("killed mid-replay at applied_seq %d of %d", rs.AppliedSeq, rs.TargetSeq)
	again := s.launchDashboard(addr)
	again.waitReady()
	if !strings.Contains(again.proc.out.String(), caughtUpLog) {
		t.Fatalf("the restarted dashboard did not log %q, which the check that the kill"+
			" landed mid-replay relies on:\n%s", caughtUpLog, again.proc.out.String())
	}

	for _, id := range ids {
		got, err := again.fetchTask(id)
		if err != nil {
			t.Fatal(err)
		}
		exp, ok := want.Get(id)
		if !ok {
			t.Fatalf("task %s missing from the in-process projection", id)
		}
		var norm projection.Task
		roundTrip(t, exp, &norm)
		if !reflect.DeepEqual(got, norm) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(norm)
			t.Fatalf("task %s after the restart:\ngot  %.1500s\nwant %.1500s", id, g, w)
		}
	}

	gotStats := again.stats()
	delete(gotStats, "ready")
	var wantStats map[string]any
	roundTrip(t, want.Stats(), &wantStats)
	if !reflect.DeepEqual(gotStats, wantStats) {
		t.Fatalf("stats after the restart:\ngot  %v\nwant %v", gotStats, wantStats)
	}
	byStatus, _ := gotStats["by_status"].(map[string]any)
	if gotStats["events_applied"] != float64(tasks*perTask) || byStatus["RUNNING"] != 666.0 ||
		byStatus["COMPLETED"] != 667.0 || byStatus["FAILED"] != 667.0 {
		t.Fatalf("stats %v, want %d events applied and 667/667/666 completed/failed/running",
			gotStats, tasks*perTask)
	}

	checkBucketAgrees(t, js, want, ids)
}

// caughtUpLog is what the dashboard logs when its replay has caught up.
const caughtUpLog = "projection caught up"

// killDuringReplay starts a dashboard on addr and kills it with SIGKILL while it
// replays the stream, and returns the last replay state it answered. It polls
// /readyz, and once the replay has applied part of the stream it stops the process
// (SIGSTOP, so that nothing more happens in it) and kills it. The log the process
// wrote proves when the kill landed: a replay that caught up before the stop says so
// there. When the kill came too late it tries again with a fresh dashboard and an
// earlier kill, and fails the test after a few attempts.
func killDuringReplay(t *testing.T, s *system, addr string) readyState {
	t.Helper()
	const attempts = 5
	for attempt := 1; attempt <= attempts; attempt++ {
		d := s.launchDashboard(addr)
		// The first attempt waits for a quarter of the stream, the next ones kill at
		// the first event applied.
		quarter := attempt == 1
		rs, ok := stopMidReplay(t, d, quarter)
		// Killed, it has written all it will: the log is complete once it has exited.
		d.proc.kill()
		caughtUp := strings.Contains(d.proc.out.String(), caughtUpLog)
		if ok && !caughtUp {
			return rs
		}
		t.Logf("attempt %d: the replay had caught up before the kill (applied_seq %d of %d,"+
			" ready %v); trying again with an earlier kill", attempt, rs.AppliedSeq, rs.TargetSeq,
			rs.Ready || caughtUp)
	}
	t.Fatalf("the kill never landed during the replay in %d attempts", attempts)
	return readyState{}
}

// stopMidReplay polls a starting dashboard's /readyz as fast as it answers and stops
// the process with SIGSTOP as soon as its replay has applied some of the stream (a
// quarter of it, with quarter) without having caught up. It reports false when the
// replay was found caught up first.
func stopMidReplay(t *testing.T, d *dash, quarter bool) (readyState, bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var rs readyState
		code, err := getJSON(t.Context(), d.url("/readyz"), &rs)
		switch {
		case err != nil:
		case code == http.StatusOK || rs.Ready:
			return rs, false
		case rs.TargetSeq > 0 && rs.AppliedSeq > 0 && (!quarter || rs.AppliedSeq >= rs.TargetSeq/4):
			if err := d.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatalf("stop the dashboard: %v", err)
			}
			return rs, true
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard never started its replay: %d %v", code, err)
		}
	}
}

// readyState is the body of /readyz.
type readyState struct {
	Ready      bool   `json:"ready"`
	AppliedSeq uint64 `json:"applied_seq"`
	TargetSeq  uint64 `json:"target_seq"`
	Reason     string `json:"reason"`
}

// publishFleet publishes tasks*perTask valid events: a third of the tasks end
// completed, a third failed, a third keep running. It returns an in-process
// projection fed the same messages with their stream sequences, and the task ids.
func publishFleet(t *testing.T, js jetstream.JetStream, tasks, perTask int) (
	*projection.Projection, []string) {
	t.Helper()
	p := projection.New(nil)
	ids := make([]string, 0, tasks)
	var batch []events.Event
	flush := func() {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		futures := make([]jetstream.PubAckFuture, len(batch))
		msgs := make([]*nats.Msg, len(batch))
		for i := range batch {
			m, err := batch[i].Msg()
			if err != nil {
				t.Fatal(err)
			}
			if futures[i], err = js.PublishMsgAsync(m); err != nil {
				t.Fatalf("publish: %v", err)
			}
			msgs[i] = m
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				if ack.Duplicate {
					t.Fatalf("event %s stored as a duplicate", batch[i].EventID)
				}
				err := p.ApplyMsg(ack.Sequence, msgs[i].Subject, msgs[i].Data, time.Time{})
				if err != nil {
					t.Fatalf("in-process projection: %v", err)
				}
			case err := <-f.Err():
				t.Fatalf("publish %s: %v", batch[i].EventID, err)
			case <-ctx.Done():
				t.Fatalf("no ack for %s: %v", batch[i].EventID, ctx.Err())
			}
		}
		batch = batch[:0]
	}
	for i := range tasks {
		id := fmt.Sprintf("fleet-%04d", i)
		ids = append(ids, id)
		batch = append(batch, fleetTask(id, i, perTask)...)
		if len(batch) >= 2000 {
			flush()
		}
	}
	flush()
	return p, ids
}

// fleetTask returns the perTask events of one task: submitted, started, progress,
// and completed (i%3 == 0), failed (i%3 == 1) or nothing more (still running).
func fleetTask(id string, i, perTask int) []events.Event {
	tt := events.TypeTraining
	if i%2 == 1 {
		tt = events.TypeInference
	}
	attempt := events.NewEventID()
	ev := func(et events.Type, d events.Data) events.Event {
		d.Attempt = attempt
		return events.New(et, id, tt, fmt.Sprintf("fleet job %d", i), d)
	}
	out := []events.Event{
		ev(events.TaskSubmitted, events.Data{Description: fmt.Sprintf("task %d of the fleet", i)}),
		ev(events.TaskStarted, events.Data{
			Params: json.RawMessage(fmt.Sprintf(`{"lr":0.1,"seed":%d}`, i)),
			Host:   "fleet-host",
			PID:    1000 + i,
		}),
	}
	steps := int64(perTask - 3)
	if i%3 == 2 {
		steps++
	}
	for step := int64(1); step <= steps; step++ {
		out = append(out, ev(events.TaskProgress, events.Data{
			Step:  &step,
			Total: &steps,
			Metrics: events.Metrics{
				"loss":     1 / float64(step),
				"accuracy": float64(step) / float64(steps),
			},
		}))
	}
	switch i % 3 {
	case 0:
		out = append(out, ev(events.TaskCompleted,
			events.Data{Result: json.RawMessage(`{"accuracy":0.97}`)}))
	case 1:
		out = append(out, ev(events.TaskFailed,
			events.Data{Error: fmt.Sprintf("loss diverged in task %d", i)}))
	}
	return out
}

// roundTrip encodes v to JSON and decodes it into out, so that a value built in
// process compares with one read from the API.
func roundTrip(t *testing.T, v, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// checkBucketAgrees waits until the bucket holds, for every task, the status and
// event count of the in-process projection.
func checkBucketAgrees(t *testing.T, js jetstream.JetStream, want *projection.Projection,
	ids []string) {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), events.BucketName)
	if err != nil {
		t.Fatal(err)
	}
	pending := ids
	eventually(t, "bucket agrees with the projection", 60*time.Second, func() error {
		var left []string
		var why error
		for _, id := range pending {
			exp, _ := want.Get(id)
			e, err := kv.Get(t.Context(), id)
			if err != nil {
				left, why = append(left, id), fmt.Errorf("%s: %w", id, err)
				continue
			}
			var got projection.Task
			if err := json.Unmarshal(e.Value(), &got); err != nil {
				t.Fatalf("bucket value of %s: %v", id, err)
			}
			if got.Status != exp.Status || got.EventCount != exp.EventCount {
				left = append(left, id)
				why = fmt.Errorf("%s: %s with %d events, want %s with %d", id, got.Status,
					got.EventCount, exp.Status, exp.EventCount)
			}
		}
		pending = left
		if len(left) > 0 {
			return fmt.Errorf("%d tasks differ, e.g. %w", len(left), why)
		}
		return nil
	})
}

// TestGarbageOnTheStream publishes, next to a finished job, messages that no tracked
// job would send: bytes that are not JSON, JSON of another shape, an event on another
// task's subject, an unknown event type, an event without a task id, a description
// of 900 KB and a timestamp ten years ahead. The dashboard keeps serving and counts
// each by kind, the good job is unchanged, and the oversized and future events are
// bounded; a fresh replay agrees.
func TestGarbageOnTheStream(t *testing.T) {
	const id = "good-job"
	s := newSystem(t)
	s.startCollector()
	s.startDashboard()
	d := s.dash()
	run(t, "jobber", s.jobEnv(), "--steps", "20", "--name", id, "--task-id", id)
	d.waitTask(id, "completed", 30*time.Second, hasStatus(projection.Completed))
	nc, js := s.connect()
	first := streamState(t, js)
	d.waitCaughtUp(first.LastSeq)
	before, good := d.stats(), d.taskJSON(id)

	// The stream captures every subject under miniray.tasks, so a plain publish to a
	// made-up task's subject is stored like an event.
	const sink = "miniray.tasks.training.x.task_progress"
	valid := func(et events.Type, taskID string) events.Event {
		return events.New(et, taskID, events.TypeTraining, "garbage",
			events.Data{Attempt: "garbage"})
	}
	encode := func(e events.Event) []byte {
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	elsewhere := valid(events.TaskSubmitted, "garbage-elsewhere")
	unknown := valid(events.Type("task_exploded"), "garbage-unknown")
	noTask := valid(events.TaskProgress, "")
	big := valid(events.TaskSubmitted, "garbage-big")
	big.Data.Description = strings.Repeat("x", 900<<10)
	future := valid(events.TaskSubmitted, "garbage-future")
	ahead := time.Now().AddDate(10, 0, 0)
	future.Timestamp, future.TimestampStr = events.UnixSeconds(ahead), events.FormatTime(ahead)

	garbage := []struct {
		subject string
		data    []byte
	}{
		{sink, []byte("\x00\x01 not JSON {")},        // malformed
		{sink, []byte(`[1, 2, 3]`)},                  // malformed
		{sink, []byte(`{"hello": "world", "n": 1}`)}, // invalid: no event id
		{sink, encode(elsewhere)},                    // subject
		{unknown.Subject(), encode(unknown)},         // invalid: event type
		{sink, encode(noTask)},                       // invalid: task id
		{big.Subject(), encode(big)},                 // applied, bounded
		{future.Subject(), encode(future)},           // applied, clock_ahead
	}
	sent := time.Now()
	for _, g := range garbage {
		if err := nc.Publish(g.subject, g.data); err != nil {
			t.Fatalf("publish to %s: %v", g.subject, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	eventually(t, "the stream stored the garbage", 30*time.Second, func() error {
		st := streamState(t, js)
		if st.Msgs != first.Msgs+uint64(len(garbage)) {
			return fmt.Errorf("stream holds %d messages, want %d", st.Msgs,
				first.Msgs+uint64(len(garbage)))
		}
		last = st.LastSeq
		return nil
	})
	d.waitCaughtUp(last)

	// The dashboard still serves, and has counted each message by kind.
	if code, err := getJSON(t.Context(), d.url("/healthz"), nil); err != nil || code != 200 {
		t.Fatalf("healthz: %d %v", code, err)
	}
	after := d.stats()
	wantSkipped := map[string]any{
		projection.SkipMalformed: 2.0, projection.SkipInvalid: 3.0, projection.SkipSubject: 1.0,
	}
	wantAdjusted := map[string]any{projection.AdjustBounded: 1.0, projection.AdjustClockAhead: 1.0}
	if fmt.Sprint(before["skipped_by_kind"]) != "map[]" || before["events_adjusted"] != 0.0 {
		t.Fatalf("stats before the garbage: %v", before)
	}
	if !reflect.DeepEqual(after["skipped_by_kind"], wantSkipped) || after["events_skipped"] != 6.0 {
		t.Fatalf("skipped: %v (%v in all), want %v", after["skipped_by_kind"],
			after["events_skipped"], wantSkipped)
	}
	if !reflect.DeepEqual(after["adjusted_by_kind"], wantAdjusted) ||
		after["events_adjusted"] != 2.0 {
		t.Fatalf("adjusted: %v (%v in all), want %v", after["adjusted_by_kind"],
			after["events_adjusted"], wantAdjusted)
	}
	if after["events_applied"] != before["events_applied"].(float64)+2 ||
		after["total"] != before["total"].(float64)+2 {
		t.Fatalf("applied %v of %v tasks, want 2 more events and tasks than %v of %v",
			after["events_applied"], after["total"], before["events_applied"], before["total"])
	}
	if g := d.taskJSON(id); !sameJSON(good, g) {
		t.Fatalf("the good job changed:\nbefore %.2000s\nafter  %.2000s", good, g)
	}

	// The oversized description was cut to its bound, the future timestamp replaced
	// by the time the stream stored the event.
	bigTask := d.task("garbage-big")
	if n := len(bigTask.Description); n > events.MaxTextLen+64 ||
		!strings.HasPrefix(bigTask.Description, "xxxx") ||
		!strings.Contains(bigTask.Description, "bytes cut]") {
		t.Fatalf("oversized description kept %d bytes, ending %q", n,
			bigTask.Description[max(0, n-40):])
	}
	futureTask := d.task("garbage-future")
	if ts := futureTask.CreatedAt; ts < events.UnixSeconds(sent)-1 ||
		ts > events.UnixSeconds(time.Now())+1 {
		t.Fatalf("future event: created_at %s, want the time it was stored (about %s)",
			futureTask.CreatedAtStr, events.FormatTime(sent))
	}
	for _, p := range []*proc{s.collector, d.proc} {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
	}

	// A fresh replay reads the same stream to the same state.
	fresh := s.startExtraDashboard()
	if a := fresh.stats(); !reflect.DeepEqual(after, a) {
		t.Fatalf("a fresh replay's stats differ:\nlive  %v\nfresh %v", after, a)
	}
	for _, tid := range []string{id, "garbage-big", "garbage-future"} {
		if a, b := d.taskJSON(tid), fresh.taskJSON(tid); !sameJSON(a, b) {
			t.Fatalf("task %s differs in a fresh replay:\n%.1000s\n%.1000s", tid, a, b)
		}
	}
}
