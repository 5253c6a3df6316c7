package tests

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniray/miniray/pkg/events"
)

// What the cluster tests add to the harness: the three NATS nodes of
// docker-compose.yml as processes on loopback, and the collector, the dashboard
// and jobs pointed at them.

func init() {
	// The same server as the one the collector embeds, built from the module miniray
	// depends on; TestMain builds it with the programs.
	programs["nats-server"] = "github.com/nats-io/nats-server/v2"
}

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name   string // its server_name, as in docker-compose.yml
	client string // host:port of its client listener
	http   string // host:port of its monitoring listener
	route  string // host:port of its cluster listener
	conf   string
	proc   *proc
}

// natsCluster is three nats-server processes that form one JetStream cluster.
type natsCluster struct {
	t     *testing.T
	nodes []*natsNode
}

// newNATSCluster writes the config files of a three-node cluster on loopback and
// starts nothing. The files are configs/nats/nN.conf, the ones docker-compose.yml
// mounts, with their addresses and store dir changed for one machine, so that the
// tests run the cluster that compose runs.
func newNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	addrs := freeAddrs(t, 3*len(natsServers))
	c := &natsCluster{t: t}
	for i, name := range natsServers {
		c.nodes = append(c.nodes, &natsNode{
			name:   name,
			client: addrs[3*i],
			http:   addrs[3*i+1],
			route:  addrs[3*i+2],
		})
	}
	dir := t.TempDir()
	for _, n := range c.nodes {
		raw, err := os.ReadFile(filepath.Join("..", "configs", "nats", n.name+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		edits := [][2]string{
			{"listen: 0.0.0.0:4222", "listen: " + n.client},
			{"http: 0.0.0.0:8222", "http: " + n.http},
			{"listen: 0.0.0.0:6222", "listen: " + n.route},
			{"store_dir: /data", "store_dir: " + strconv.Quote(filepath.Join(dir, n.name))},
		}
		for _, peer := range c.nodes {
			edits = append(edits, [2]string{"nats-route://" + peer.name + ":6222",
				"nats-route://" + peer.route})
		}
		conf := string(raw)
		for _, e := range edits {
			if k := strings.Count(conf, e[0]); k != 1 {
				t.Fatalf("configs/nats/%s.conf has %q %d times, want once; the cluster tests"+
					" rewrite it for loopback", n.name, e[0], k)
			}
			conf = strings.Replace(conf, e[0], e[1], 1)
		}
		n.conf = filepath.Join(dir, n.name+".conf")
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// freeAddrs returns n distinct loopback addresses whose ports were free a moment
// ago. All are held open until all are chosen, so that none comes out twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// start starts the named nodes, or every node, without waiting for them.
func (c *natsCluster) start(names ...string) {
	c.t.Helper()
	for _, n := range c.nodes {
		if len(names) == 0 || slices.Contains(names, n.name) {
			n.proc = start(c.t, "nats-server", nil, "--config", n.conf)
		}
	}
}

// url is the client URL of the whole cluster, as MINIRAY_NATS_URL takes it.
func (c *natsCluster) url() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "nats://"+n.client)
	}
	return strings.Join(urls, ",")
}

func (c *natsCluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// live returns the nodes whose process runs.
func (c *natsCluster) live() []*natsNode {
	var out []*natsNode
	for _, n := range c.nodes {
		if n.proc != nil && !n.proc.exited() {
			out = append(out, n)
		}
	}
	return out
}

// waitHealthy waits until every running node says, on its monitoring port, that
// JetStream is healthy: a meta leader is known and its streams are current.
func (c *natsCluster) waitHealthy(timeout time.Duration) {
	c.t.Helper()
	for _, n := range c.live() {
		eventually(c.t, n.name+" healthy", timeout, func() error {
			code, err := getJSON(c.t.Context(), "http://"+n.http+"/healthz", nil)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("healthz: %d", code)
			}
			return err
		})
	}
}

// connect returns a JetStream context on the cluster, closed by the test's cleanup.
func (c *natsCluster) connect() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(c.url(), nats.Name("miniray-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("connect to the cluster: %v", err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return js
}

// streamInfo returns the event stream's info, or an error while the cluster cannot
// give it (no leader elected yet, for one).
func streamInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// connNames returns the names of the client connections a node holds, from its
// /connz.
func (n *natsNode) connNames(ctx context.Context) ([]string, error) {
	var connz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if _, err := getJSON(ctx, "http://"+n.http+"/connz?limit=1024", &connz); err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	var names []string
	for _, cn := range connz.Connections {
		names = append(names, cn.Name)
	}
	return names, nil
}

// connections returns how many client connections of each name the running nodes
// hold.
func (c *natsCluster) connections() (map[string]int, error) {
	counts := map[string]int{}
	for _, n := range c.live() {
		names, err := n.connNames(c.t.Context())
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			counts[name]++
		}
	}
	return counts, nil
}

// holding returns the running node that holds the client connection named name.
func (c *natsCluster) holding(name string) (*natsNode, error) {
	for _, n := range c.live() {
		names, err := n.connNames(c.t.Context())
		if err != nil {
			return nil, err
		}
		if slices.Contains(names, name) {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no running node holds a connection named %s", name)
}

// replicaState is one node's own copy of the event stream, from its /jsz.
type replicaState struct {
	Messages uint64 `json:"messages"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

func (n *natsNode) streamState(ctx context.Context) (replicaState, error) {
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string       `json:"name"`
				State replicaState `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	_, err := getJSON(ctx, "http://"+n.http+"/jsz?accounts=true&streams=true", &jsz)
	if err != nil {
		return replicaState{}, err
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == events.StreamName {
				return s.State, nil
			}
		}
	}
	return replicaState{}, fmt.Errorf("%s holds no copy of %s", n.name, events.StreamName)
}

// clusterSystem is miniray on a cluster: the collector, a dashboard and jobs, all
// given the URLs of the three nodes.
type clusterSystem struct {
	t         *testing.T
	c         *natsCluster
	spoolDir  string
	collector *proc
	collHTTP  string
	dash      *dash
}

func newClusterSystem(t *testing.T, c *natsCluster) *clusterSystem {
	return &clusterSystem{t: t, c: c, spoolDir: filepath.Join(t.TempDir(), "spool")}
}

func (s *clusterSystem) jobEnv() []string {
	return []string{"MINIRAY_NATS_URL=" + s.c.url(), "MINIRAY_SPOOL_DIR=" + s.spoolDir}
}

// launchCollector starts the collector on the cluster with three replicas and
// returns without waiting.
func (s *clusterSystem) launchCollector() {
	s.t.Helper()
	s.collHTTP = freeAddr(s.t)
	s.collector = start(s.t, "collector", nil, "--nats-url", s.c.url(), "--replicas", "3",
		"--spool-dir", s.spoolDir, "--spool-scan", "1s", "--http", s.collHTTP)
}

// waitCollectorReady waits until the collector's /readyz answers 200: the stream
// and the bucket exist.
func (s *clusterSystem) waitCollectorReady(timeout time.Duration) {
	s.t.Helper()
	eventually(s.t, "collector ready", timeout, func() error {
		if s.collector.exited() {
			s.t.Fatalf("collector exited: %v\n%s", s.collector.err, s.collector.out.String())
		}
		code, err := getJSON(s.t.Context(), "http://"+s.collHTTP+"/readyz", nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("readyz: %d", code)
		}
		return err
	})
}

// startDashboard starts a dashboard on the cluster and waits until it is ready.
func (s *clusterSystem) startDashboard() {
	s.t.Helper()
	addr := freeAddr(s.t)
	p := start(s.t, "dashboard", nil, "--nats-url", s.c.url(), "--http", addr,
		"--flush-interval", "50ms")
	s.dash = &dash{t: s.t, addr: addr, proc: p}
	s.dash.waitReady()
}

// checkStreamReplicas checks that the stream keeps three copies, on three nodes.
func (s *clusterSystem) checkStreamReplicas(js jetstream.JetStream) {
	s.t.Helper()
	info, err := streamInfo(s.t.Context(), js)
	if err != nil {
		s.t.Fatalf("stream info: %v", err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		s.t.Fatalf("stream has %d replicas, cluster %+v; want 3, a leader and two followers",
			info.Config.Replicas, info.Cluster)
	}
}

// servingWatch polls a dashboard's /readyz and /api/stats until stopped and keeps
// every answer that was not a 200.
type servingWatch struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	polls    int
	failures []string
}

func watchServing(d *dash) *servingWatch {
	w := &servingWatch{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(w.done)
		for {
			for _, path := range []string{"/readyz", "/api/stats"} {
				resp, err := client.Get(d.url(path))
				w.mu.Lock()
				w.polls++
				switch {
				case err != nil:
					w.failures = append(w.failures, fmt.Sprintf("%s %s: %v",
						time.Now().Format(time.TimeOnly), path, err))
				case resp.StatusCode != http.StatusOK:
					w.failures = append(w.failures, fmt.Sprintf("%s %s: %d",
						time.Now().Format(time.TimeOnly), path, resp.StatusCode))
				}
				w.mu.Unlock()
				if resp != nil {
					resp.Body.Close()
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// finish stops the watch and fails the test if the dashboard failed to answer.
func (w *servingWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.failures) > 0 {
		t.Fatalf("dashboard failed %d of %d requests during the run: %v", len(w.failures),
			w.polls, w.failures)
	}
	t.Logf("dashboard answered all %d requests during the run", w.polls)
}
