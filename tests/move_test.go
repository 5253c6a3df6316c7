package tests

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// TestMoveEmbeddedToClusterKeepsHistory follows docs/deployment.md from a single
// machine to a three-node cluster, with a job running across the move: the
// collector stops, the store is backed up through a collector on a port no job
// knows, restored into the cluster with three replicas, and the collector and a
// dashboard start on the cluster. Every event moves with its sequence and time, the
// finished tasks look the same as before, and the running job's later events,
// spooled meanwhile, arrive.
func TestMoveEmbeddedToClusterKeepsHistory(t *testing.T) {
	const acrossSteps = 3000
	s := newSystem(t)
	s.startCollector()
	s.startDashboard()
	s.train("before-the-move", 20)
	before := parseSummary(t, run(t, "jobber", s.jobEnv(), "--name", "jobber-before",
		"--steps", "50"))
	across := start(t, "jobber", s.jobEnv(), "--name", "across-the-move",
		"--steps", fmt.Sprint(acrossSteps), "--every", "2ms")

	// What a dashboard shows of the finished tasks before the move.
	d := s.dash()
	trainID := ""
	for _, task := range s.tasks().Tasks {
		if task.Name == "before-the-move" {
			trainID = task.TaskID
		}
	}
	finished := map[string][]byte{}
	for _, id := range []string{trainID, before.TaskID} {
		d.waitTask(id, "completed", 20*time.Second, hasStatus(projection.Completed))
		finished[id] = d.taskJSON(id)
	}
	var acrossID string
	eventually(t, "job across the move running", 30*time.Second, func() error {
		for _, task := range s.tasks().Tasks {
			if task.Name == "across-the-move" && runningPast(100)(task) == nil {
				acrossID = task.TaskID
				return nil
			}
		}
		return fmt.Errorf("not running past step 100 yet")
	})

	// 1. Stop the collector and the dashboard. The job cannot reach NATS any more
	// and spools what it reports from now on.
	s.dashboard.stop(t)
	s.collector.stop(t)

	// 2. Back the stream up through a collector on a port no job uses, that does
	// not send spool files into the old store and judges no task lost meanwhile.
	backupAddr := freeAddr(t)
	old := start(t, "collector", nil, "--data-dir", s.dataDir, "--nats-listen", backupAddr,
		"--spool-dir", "", "--lost-after", "24h", "--http", freeAddr(t))
	oldURL := "nats://" + backupAddr
	waitStore(t, oldURL)
	moved := storedMessages(t, oldURL)
	backup := filepath.Join(t.TempDir(), "backup")
	natsTool(t, oldURL, "backup", "stream", events.StreamName, backup, "--no-consumers",
		"--no-progress")
	old.stop(t)

	// 3. Restore it into the cluster with three replicas; start the collector and a
	// dashboard there, with the spool dir of the jobs on this machine.
	c := newNATSCluster(t)
	c.start()
	c.waitHealthy(60 * time.Second)
	natsTool(t, c.adminURL(), "backup", "restore", "stream", backup, "--replicas", "3", "--no-progress")
	cs := newClusterSystem(t, c)
	cs.spoolDir = s.spoolDir
	cs.launchCollector()
	cs.waitCollectorReady(60 * time.Second)
	cs.startDashboard()
	js := c.connect()
	cs.checkStreamReplicas(js)

	// The history is the same, message by message, sequence and time included.
	got := storedMessages(t, c.adminURL())
	if len(got) < len(moved) {
		t.Fatalf("cluster holds %d messages, the single machine held %d", len(got), len(moved))
	}
	for i := range moved {
		if !reflect.DeepEqual(got[i], moved[i]) {
			t.Fatalf("message %d: cluster has %+v, single machine had %+v", i+1, got[i], moved[i])
		}
	}
	for id, want := range finished {
		if body := cs.dash.taskJSON(id); !sameJSON(body, want) {
			t.Fatalf("task %s after the move:\n%s\nbefore:\n%s", id, body, want)
		}
	}

	// The job that ran across the move ends; its spooled events reach the cluster.
	sum := parseSummary(t, waitExit(t, across, 90*time.Second))
	if sum.Steps != acrossSteps || sum.Dropped != 0 || sum.Spooled == 0 {
		t.Fatalf("job across the move: %+v, want %d steps, some spooled, none dropped", sum,
			acrossSteps)
	}
	task := cs.dash.waitTask(acrossID, "complete", 60*time.Second, hasStatus(projection.Completed))
	checkCompleteRun(t, task, acrossSteps, -1)
	cs.checkCopiesAgree(js)
}

// waitStore waits until a server has miniray's stream.
func waitStore(t *testing.T, url string) {
	t.Helper()
	eventually(t, "stream on "+url, 30*time.Second, func() error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		_, err = streamInfo(t.Context(), js)
		return err
	})
}

// storedMsg is a message as the stream keeps it.
type storedMsg struct {
	Seq     uint64
	Subject string
	MsgID   string
	Time    time.Time
	Data    string
}

// storedMessages returns every message of the event stream on url, in order.
func storedMessages(t *testing.T, url string) []storedMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	info, err := streamInfo(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Messages, not Next: Next fetches one message at a time, and an ordered
	// consumer is recreated on every fetch.
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	out := make([]storedMsg, 0, info.State.Msgs)
	for range info.State.Msgs {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("read message %d of %d: %v", len(out)+1, info.State.Msgs, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storedMsg{
			Seq:     meta.Sequence.Stream,
			Subject: m.Subject(),
			MsgID:   m.Headers().Get(jetstream.MsgIDHeader),
			Time:    meta.Timestamp.UTC(),
			Data:    string(m.Data()),
		})
	}
	return out
}

// natsTool runs the nats CLI against url. scripts/test.sh installs it; a missing
// CLI fails the test rather than skipping it.
func natsTool(t *testing.T, url string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("nats")
	if err != nil {
		t.Fatalf("the nats CLI is not on PATH (scripts/test.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args = append([]string{"--server", url}, args...)
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
