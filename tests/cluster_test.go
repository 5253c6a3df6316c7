package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/projection"
)

// The cluster tests run docker-compose.yml's topology as processes on loopback:
// three nats-server nodes from configs/nats, the collector keeping three copies
// of the stream, a dashboard and jobs, all given the three nodes' URLs. A node is
// killed with SIGKILL while the jobs run and restarted later; nothing may be lost.

// The jobs run for clusterSteps times clusterEvery, 8 seconds: long enough that the
// dashboard sees them running past a tenth of their steps on a loaded machine,
// before a node is killed.
const (
	clusterJobs  = 3
	clusterSteps = 2000
	clusterEvery = "4ms"
)

// TestClusterFollowerKilled kills a node that does not lead the event stream,
// preferring the one that serves the dashboard's connection, so that clients have
// to fail over while the stream keeps its quorum. It also starts the collector
// before the cluster has formed, as docker compose may.
func TestClusterFollowerKilled(t *testing.T) {
	c := newNATSCluster(t)
	s := newClusterSystem(t, c)

	// One node alone has no meta leader: the collector must wait, not give up.
	c.start("n1")
	s.launchCollector()
	eventually(t, "collector waiting for the cluster", 30*time.Second, func() error {
		if s.collector.exited() {
			t.Fatalf("collector exited before the cluster formed: %v\n%s", s.collector.err,
				s.collector.out.String())
		}
		if !strings.Contains(s.collector.out.String(), "jetstream not ready, retrying") {
			return errors.New("no retry logged yet")
		}
		return nil
	})
	c.start("n2", "n3")
	s.waitCollectorReady(60 * time.Second)

	failover(t, s, "a follower", func(js jetstream.JetStream) (*natsNode, error) {
		info, err := streamInfo(t.Context(), js)
		if err != nil {
			return nil, err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return nil, errors.New("the stream has no leader")
		}
		// The follower with the dashboard, else the one with the most clients.
		var victim *natsNode
		most := -1
		for _, n := range c.live() {
			names, err := n.connNames(t.Context())
			if err != nil || n.name == info.Cluster.Leader {
				continue
			}
			score := len(names)
			if slices.Contains(names, "miniray-dashboard") {
				score += 100
			}
			if score > most {
				victim, most = n, score
			}
		}
		if victim == nil {
			return nil, errors.New("no follower answers")
		}
		return victim, nil
	})
}

// TestClusterStreamLeaderKilled kills the node that leads the event stream, so that
// the two others have to elect a new leader while jobs publish.
func TestClusterStreamLeaderKilled(t *testing.T) {
	c := newNATSCluster(t)
	s := newClusterSystem(t, c)
	c.start()
	c.waitHealthy(60 * time.Second)
	s.launchCollector()
	s.waitCollectorReady(60 * time.Second)

	failover(t, s, "the stream leader", func(js jetstream.JetStream) (*natsNode, error) {
		info, err := streamInfo(t.Context(), js)
		if err != nil {
			return nil, err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return nil, errors.New("the stream has no leader")
		}
		return c.node(info.Cluster.Leader), nil
	})
}

// failover runs jobs on a ready collector, kills the node pick chooses in the
// middle of them, restarts it later, and checks that every event arrived once, that
// the dashboard answered throughout and that every node holds the same stream.
func failover(t *testing.T, s *clusterSystem, what string,
	pick func(jetstream.JetStream) (*natsNode, error)) {
	began := time.Now()
	js := s.c.connect()
	s.checkStreamReplicas(js)
	s.startDashboard()
	watch := watchServing(s.dash)

	jobs := make([]*proc, clusterJobs)
	names := make([]string, clusterJobs)
	for i := range jobs {
		names[i] = fmt.Sprintf("cluster-job-%d", i+1)
		jobs[i] = start(t, "jobber", s.jobEnv(), "--name", names[i],
			"--steps", fmt.Sprint(clusterSteps), "--every", clusterEvery)
	}
	ids := s.waitJobsPast(names, clusterSteps/10)

	var victim *natsNode
	eventually(t, "find "+what, 20*time.Second, func() (err error) {
		victim, err = pick(js)
		return err
	})
	atKill := s.steps(ids)
	seqAtKill := uint64(0)
	if info, err := streamInfo(t.Context(), js); err == nil {
		seqAtKill = info.State.LastSeq
	}
	held, err := victim.connNames(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killing %s, %s, holding %v, at steps %v (%s in)", what, victim.name, held,
		atKill, time.Since(began).Round(time.Millisecond))
	victim.proc.kill()
	killed := time.Now()

	resumed := s.timeResumption(js, killed, seqAtKill, ids, atKill)

	// The clients reconnect to the nodes left, and the jobs' events go on landing on
	// them: a quarter of all the events before the node comes back.
	eventually(t, "clients on the nodes left", 30*time.Second, func() error {
		return s.clientsConnected(jobs)
	})
	t.Logf("clients on the nodes left after %s", time.Since(killed).Round(10*time.Millisecond))
	eventually(t, "events stored without the node", 60*time.Second, func() error {
		info, err := streamInfo(t.Context(), js)
		if err != nil {
			return err
		}
		if want := seqAtKill + clusterJobs*clusterSteps/4; info.State.LastSeq < want {
			exited := 0
			for _, p := range jobs {
				if p.exited() {
					exited++
				}
			}
			if exited < len(jobs) {
				return fmt.Errorf("last seq %d, want %d", info.State.LastSeq, want)
			}
		}
		return nil
	})

	t.Logf("restarting %s (%s in)", victim.name, time.Since(began).Round(time.Millisecond))
	victim.start(t)

	for i, p := range jobs {
		sum := parseSummary(t, waitExit(t, p, 90*time.Second))
		if sum.Steps != clusterSteps || sum.Dropped != 0 {
			t.Fatalf("%s: %+v, want %d steps and nothing dropped", names[i], sum, clusterSteps)
		}
		if sum.Spooled > 0 {
			t.Logf("%s left %d events in the spool for the collector", names[i], sum.Spooled)
		}
	}
	for i, id := range ids {
		task := s.dash.waitTask(id, "complete", 60*time.Second, func(task projection.Task) error {
			if task.Status != projection.Completed || task.EventCount < clusterSteps+3 {
				return fmt.Errorf("%s with %d events", task.Status, task.EventCount)
			}
			return nil
		})
		if task.Name != names[i] {
			t.Fatalf("task %s: name %q, want %q", id, task.Name, names[i])
		}
		checkCompleteRun(t, s.dash.task(id), clusterSteps, 0)
	}
	t.Log(<-resumed)
	s.checkStats()
	s.checkCopiesAgree(js)
	s.checkRoles(js)
	watch.finish(t)
	for _, p := range []*proc{s.collector, s.dash.proc} {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
	}
	t.Logf("%s: every event of %d jobs arrived once (%s)", what, clusterJobs,
		time.Since(began).Round(time.Millisecond))
}

// timeResumption measures, in the background, how long after the kill the stream
// grows again (the cluster's failover) and the dashboard shows the jobs
// progressing again (the dashboard's failover on top). It sends what it saw, within
// 30 seconds, for the log: it does not judge, the jobs' completeness does.
func (s *clusterSystem) timeResumption(js jetstream.JetStream, killed time.Time, seq uint64,
	ids []string, steps map[string]int64) <-chan string {
	out := make(chan string, 1)
	go func() {
		var stream, dash time.Duration
		for time.Since(killed) < 30*time.Second && (stream == 0 || dash == 0) {
			if info, err := streamInfo(s.t.Context(), js); stream == 0 && err == nil &&
				info.State.LastSeq > seq+100 {
				stream = time.Since(killed)
			}
			for _, id := range ids {
				if task, err := s.dash.fetchTask(id); dash == 0 && err == nil &&
					task.Progress.Step > steps[id]+100 {
					dash = time.Since(killed)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		show := func(d time.Duration) string {
			if d == 0 {
				return "not within 30s"
			}
			return "after " + d.Round(10*time.Millisecond).String()
		}
		out <- fmt.Sprintf("after the kill, the stream grew again %s, the dashboard showed"+
			" progress again %s", show(stream), show(dash))
	}()
	return out
}

// waitJobsPast waits until the dashboard shows every named job running past step,
// and returns their task ids in the order of names.
func (s *clusterSystem) waitJobsPast(names []string, step int64) []string {
	s.t.Helper()
	ids := make([]string, len(names))
	eventually(s.t, fmt.Sprintf("jobs past step %d", step), 60*time.Second, func() error {
		var page projection.Page
		if _, err := getJSON(s.t.Context(), s.dash.url("/api/tasks?limit=1000"), &page); err != nil {
			return err
		}
		byName := map[string]projection.Task{}
		for _, task := range page.Tasks {
			byName[task.Name] = task
		}
		for i, name := range names {
			task, ok := byName[name]
			if !ok {
				return fmt.Errorf("%s not listed", name)
			}
			if err := runningPast(step)(task); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ids[i] = task.TaskID
		}
		return nil
	})
	return ids
}

// steps returns the progress step the dashboard shows for each task.
func (s *clusterSystem) steps(ids []string) map[string]int64 {
	s.t.Helper()
	out := make(map[string]int64, len(ids))
	for _, id := range ids {
		task, err := s.dash.fetchTask(id)
		if err != nil {
			s.t.Fatal(err)
		}
		out[id] = task.Progress.Step
	}
	return out
}

// clientsConnected reports whether the nodes still running hold the collector's and
// the dashboard's connections, and one for each job still running.
func (s *clusterSystem) clientsConnected(jobs []*proc) error {
	running := 0
	for _, p := range jobs {
		if !p.exited() {
			running++
		}
	}
	conns, err := s.c.connections()
	if err != nil {
		return err
	}
	if conns["miniray-collector"] != 1 || conns["miniray-dashboard"] != 1 ||
		conns["miniray-job"] < running {
		return fmt.Errorf("connections %v, want a collector, a dashboard and %d jobs", conns,
			running)
	}
	return nil
}

// checkStats checks that the dashboard applied every event once and skipped none.
func (s *clusterSystem) checkStats() {
	s.t.Helper()
	var st projection.Stats
	if code, err := getJSON(s.t.Context(), s.dash.url("/api/stats"), &st); err != nil ||
		code != http.StatusOK {
		s.t.Fatalf("stats: %d %v", code, err)
	}
	want := uint64(clusterJobs * (clusterSteps + 3))
	if st.EventsApplied != want || st.EventsSkipped != 0 || st.Total != clusterJobs ||
		st.ByStatus[projection.Completed] != clusterJobs {
		s.t.Fatalf("stats: %d applied, %d skipped %v, %d tasks %v; want %d applied, none"+
			" skipped, %d completed", st.EventsApplied, st.EventsSkipped, st.SkippedByKind,
			st.Total, st.ByStatus, want, clusterJobs)
	}
}

// checkCopiesAgree waits until every node's own copy of the stream holds what the
// leader reports: the restarted node has caught up.
func (s *clusterSystem) checkCopiesAgree(js jetstream.JetStream) {
	s.t.Helper()
	eventually(s.t, "three equal copies of the stream", 60*time.Second, func() error {
		info, err := streamInfo(s.t.Context(), js)
		if err != nil {
			return err
		}
		want := replicaState{Messages: info.State.Msgs, FirstSeq: info.State.FirstSeq,
			LastSeq: info.State.LastSeq}
		for _, n := range s.c.nodes {
			ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
			got, err := n.streamState(ctx)
			cancel()
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s holds %+v, the leader %+v", n.name, got, want)
			}
		}
		return nil
	})
}
