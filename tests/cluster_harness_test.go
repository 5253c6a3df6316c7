package tests

import (
	"context"
	"fmt"
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
	// Every node includes the users of auth.conf from beside its own config.
	auth, err := os.ReadFile(filepath.Join("..", "configs", "nats", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
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
// ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, freeAddr(t))
	}
	return out
}

// start starts the named nodes, or every node, without waiting for them.
func (c *natsCluster) start(names ...string) {
	c.t.Helper()
	for _, n := range c.nodes {
		if len(names) == 0 || slices.Contains(names, n.name) {
			n.start(c.t)
		}
	}
}

// start starts the node's process with the users' passwords in its environment,
// as compose does.
func (n *natsNode) start(t *testing.T) {
	t.Helper()
	n.proc = start(t, "nats-server", natsPasswordEnv(), "--config", n.conf)
}

// url is the client URL of the whole cluster, as MINIRAY_NATS_URL takes it.
func (c *natsCluster) url() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "nats://"+n.client)
	}
	return strings.Join(urls, ",")
}

// adminURL is [natsCluster.url] with the admin's user and password in every URL,
// for the tools that take no other credentials here (the nats CLI).
func (c *natsCluster) adminURL() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "nats://"+events.UserAdmin+":"+
			composeSecrets[natsRoles[events.UserAdmin]]+"@"+n.client)
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
// JetStream is healthy, and then until the cluster's JetStream API answers.
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

	// A node can say it is healthy while the API has no responder yet: a restore
	// right then failed with "no responders available for request".
	js := c.connect()
	eventually(c.t, "the cluster's JetStream API", timeout, func() error {
		ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// connect returns a JetStream context on the cluster as the admin, closed by the
// test's cleanup.
func (c *natsCluster) connect() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(c.url(), nats.Name("miniray-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.UserInfo(events.UserAdmin, composeSecrets[natsRoles[events.UserAdmin]]))
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

// clusterSystem is miniray on a cluster: the collector, a dashboard and jobs, each
// started with the environment docker-compose.yml gives its service.
type clusterSystem struct {
	t         *testing.T
	c         *natsCluster
	spoolDir  string
	dataDir   string
	collector *proc
	collHTTP  string
	dash      *dash
	compose   composeFile
	docker    *dockerfile
}

func newClusterSystem(t *testing.T, c *natsCluster) *clusterSystem {
	return &clusterSystem{
		t:        t,
		c:        c,
		spoolDir: filepath.Join(t.TempDir(), "spool"),
		dataDir:  t.TempDir(),
		compose:  readCompose(t, filepath.Join("..", "docker-compose.yml")),
		docker:   readDockerfile(t, filepath.Join("..", "Dockerfile")),
	}
}

// serviceEnv returns the environment of a compose service: its image's ENV, then
// the compose file's, with the test's stand-ins for .env's secrets. What only
// holds inside a container is changed for loopback: the cluster's URLs, the
// directories, and the port of MINIRAY_HTTP, whose 0.0.0.0 stays. It returns the
// loopback address of MINIRAY_HTTP, if the service has one.
func (s *clusterSystem) serviceEnv(service string) (env []string, httpAddr string) {
	s.t.Helper()
	svc, ok := s.compose.Services[service]
	if !ok || svc.Build == nil {
		s.t.Fatalf("docker-compose.yml has no service %s built from the Dockerfile", service)
	}
	vars := s.docker.env(svc.Build.Target)
	for k, v := range svc.Environment {
		vars[k] = v
	}
	for k := range vars {
		switch k {
		case "MINIRAY_NATS_URL":
			vars[k] = s.c.url()
		case "MINIRAY_SPOOL_DIR":
			vars[k] = s.spoolDir
		case "MINIRAY_DATA_DIR":
			vars[k] = s.dataDir
		case "MINIRAY_NATS_LISTEN":
			vars[k] = "0.0.0.0:" + portOf(s.t, freeAddr(s.t))
		case "MINIRAY_HTTP":
			port := portOf(s.t, freeAddr(s.t))
			vars[k] = "0.0.0.0:" + port
			httpAddr = "127.0.0.1:" + port
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env, httpAddr
}

func (s *clusterSystem) jobEnv() []string {
	env, _ := s.serviceEnv("train")
	return env
}

// launchCollector starts the collector on the cluster as compose does, and returns
// without waiting.
func (s *clusterSystem) launchCollector() {
	s.t.Helper()
	env, addr := s.serviceEnv("collector")
	s.collHTTP = addr
	s.collector = start(s.t, "collector", env, "--spool-scan", "1s")
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

// startDashboard starts a dashboard on the cluster as compose does, and waits until
// it is ready.
func (s *clusterSystem) startDashboard() {
	s.t.Helper()
	env, addr := s.serviceEnv("dashboard")
	p := start(s.t, "dashboard", env, "--flush-interval", "50ms")
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
	client := &http.Client{Timeout: 5 * time.Second, Transport: http.DefaultClient.Transport}
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

// checkRoles checks, on the cluster, what the users of auth.conf must not do: a
// job cannot delete or purge the stream nor read the bucket, and the dashboard
// cannot delete or purge the stream. The stream is the same afterwards.
func (s *clusterSystem) checkRoles(admin jetstream.JetStream) {
	s.t.Helper()
	before, err := streamInfo(s.t.Context(), admin)
	if err != nil {
		s.t.Fatalf("stream info: %v", err)
	}
	as := func(role string) jetstream.JetStream {
		nc, err := nats.Connect(s.c.url(), nats.Name("miniray-test-"+role),
			nats.UserInfo(role, composeSecrets[natsRoles[role]]))
		if err != nil {
			s.t.Fatalf("connect as %s: %v", role, err)
		}
		s.t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			s.t.Fatal(err)
		}
		return js
	}
	refused := func(role, what string, try func(context.Context) error) {
		ctx, cancel := context.WithTimeout(s.t.Context(), 3*time.Second)
		defer cancel()
		if err := try(ctx); err == nil {
			s.t.Errorf("%s could %s", role, what)
		}
	}

	for _, role := range []string{events.UserJob, events.UserDashboard} {
		js := as(role)
		refused(role, "delete the stream", func(ctx context.Context) error {
			return js.DeleteStream(ctx, events.StreamName)
		})
		refused(role, "purge the stream", func(ctx context.Context) error {
			st, err := js.Stream(ctx, events.StreamName)
			if err != nil {
				return err
			}
			return st.Purge(ctx)
		})
	}
	job := as(events.UserJob)
	refused(events.UserJob, "read the bucket", func(ctx context.Context) error {
		kv, err := job.KeyValue(ctx, events.BucketName)
		if err != nil {
			return err
		}
		_, err = kv.ListKeys(ctx)
		return err
	})
	refused(events.UserJob, "read the stream", func(ctx context.Context) error {
		_, err := job.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{})
		return err
	})

	after, err := streamInfo(s.t.Context(), admin)
	if err != nil {
		s.t.Fatalf("stream info: %v", err)
	}
	if after.State.Msgs != before.State.Msgs || after.Created != before.Created {
		s.t.Fatalf("stream changed: %d messages created %v, was %d created %v",
			after.State.Msgs, after.Created, before.State.Msgs, before.Created)
	}
	s.t.Logf("job and dashboard users refused: stream delete, purge; job: bucket, replay")
}
