package tests

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

// No Docker engine runs where the tests run, so docker-compose.yml and the
// Dockerfile are checked by reading them. The checks go after what compose would
// run wrongly without a word: a config file that is not there (compose mounts an
// empty directory in its place), a health check on a port nothing listens on, a
// misspelled MINIRAY_ variable, jobs spooling where the collector does not look.

// composeFile is the part of a compose file that the checks read.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       *composeBuild                `yaml:"build"`
	Command     []string                     `yaml:"command"`
	Environment map[string]string            `yaml:"environment"`
	Ports       []string                     `yaml:"ports"`
	Volumes     []string                     `yaml:"volumes"`
	Healthcheck *composeHealthcheck          `yaml:"healthcheck"`
	DependsOn   map[string]composeDependency `yaml:"depends_on"`
	Restart     string                       `yaml:"restart"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

type composeHealthcheck struct {
	Test    []string `yaml:"test"`
	Retries int      `yaml:"retries"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

// mount is one entry of a service's volumes, short syntax.
type mount struct {
	source, target string
	bind           bool // source is a path on the host, not a named volume
}

func (s composeService) mounts(t *testing.T) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			t.Fatalf("volume %q: want source:target[:mode]", v)
		}
		bind := strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/")
		out = append(out, mount{source: parts[0], target: parts[1], bind: bind})
	}
	return out
}

// natsServers are the compose services that run the official nats image.
var natsServers = []string{"n1", "n2", "n3"}

const composeReplicas = "3"

func TestComposeFile(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cf := readCompose(t, filepath.Join(root, "docker-compose.yml"))
	df := readDockerfile(t, filepath.Join(root, "Dockerfile"))

	t.Run("services", func(t *testing.T) {
		want := append(slices.Clone(natsServers), "collector", "dashboard", "train", "tune")
		got := slices.Sorted(maps.Keys(cf.Services))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("services %v, want %v", got, want)
		}
		for name, s := range cf.Services {
			if (s.Image == "") == (s.Build == nil) {
				t.Errorf("%s: want either an image or a build, got image %q build %v", name,
					s.Image, s.Build)
			}
			switch s.Restart {
			case "no", "always", "on-failure", "unless-stopped":
			default:
				t.Errorf("%s: restart %q", name, s.Restart)
			}
		}
		for _, job := range []string{"train", "tune"} {
			if r := cf.Services[job].Restart; r != "no" {
				t.Errorf("%s: restart %q, want \"no\": an example job runs once", job, r)
			}
		}
	})

	t.Run("nats nodes", func(t *testing.T) {
		checkNATSNodes(t, root, cf)
	})

	t.Run("images", func(t *testing.T) {
		checkDockerfile(t, root, df)
		for name, s := range cf.Services {
			if s.Build == nil {
				continue
			}
			if s.Build.Context != "." || (s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile") {
				t.Errorf("%s: builds %+v, want the Dockerfile at the root", name, *s.Build)
			}
			if df.stages[s.Build.Target] == nil {
				t.Errorf("%s: target %q is not a stage of the Dockerfile (stages %v)", name,
					s.Build.Target, df.names())
			}
		}
	})

	t.Run("health checks", func(t *testing.T) {
		for _, name := range []string{"n1", "n2", "n3", "collector", "dashboard"} {
			checkHealthcheck(t, root, cf, df, name)
		}
	})

	t.Run("dependencies", func(t *testing.T) {
		want := map[string]map[string]string{
			"collector": {"n1": "service_healthy", "n2": "service_healthy", "n3": "service_healthy"},
			"dashboard": {"collector": "service_healthy"},
			"train":     {"dashboard": "service_healthy"},
			"tune":      {"train": "service_completed_successfully"},
		}
		for name, s := range cf.Services {
			got := map[string]string{}
			for dep, d := range s.DependsOn {
				got[dep] = d.Condition
				if d.Condition == "service_healthy" && cf.Services[dep].Healthcheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			}
			if w := want[name]; !maps.Equal(got, w) {
				t.Errorf("%s: depends on %v, want %v", name, got, w)
			}
		}
	})

	t.Run("ports", func(t *testing.T) {
		for name, s := range cf.Services {
			if name != "dashboard" && len(s.Ports) > 0 {
				t.Errorf("%s publishes %v; only the dashboard should", name, s.Ports)
			}
		}
		ports := cf.Services["dashboard"].Ports
		if len(ports) != 1 {
			t.Fatalf("dashboard publishes %v, want one port", ports)
		}
		// HOST_IP:HOST_PORT:CONTAINER_PORT
		i := strings.LastIndex(ports[0], ":")
		published, container := ports[0][:max(i, 0)], ports[0][i+1:]
		ip, port, err := net.SplitHostPort(published)
		if err != nil || ip != "127.0.0.1" || port != "8080" {
			t.Errorf("dashboard published on %q by default, want 127.0.0.1:8080", published)
		}
		if listen := df.env("dashboard")["MINIRAY_HTTP"]; portOf(t, listen) != container {
			t.Errorf("dashboard: publishes container port %s, listens on %s", container, listen)
		}
	})

	t.Run("cluster settings", func(t *testing.T) {
		var want []string
		for _, n := range natsServers {
			conf := natsConfig(t, root, cf, n)
			want = append(want, fmt.Sprintf("nats://%s:%d", n, conf.Port))
		}
		for name, s := range cf.Services {
			if s.Build == nil {
				continue
			}
			if got := s.Environment["MINIRAY_NATS_URL"]; got != strings.Join(want, ",") {
				t.Errorf("%s: MINIRAY_NATS_URL %q, want %q", name, got, strings.Join(want, ","))
			}
		}
		for _, name := range []string{"collector", "dashboard"} {
			if got := cf.Services[name].Environment["MINIRAY_REPLICAS"]; got != composeReplicas {
				t.Errorf("%s: MINIRAY_REPLICAS %q, want %s, one copy per node", name, got,
					composeReplicas)
			}
		}
		if strconv.Itoa(len(natsServers)) != composeReplicas {
			t.Errorf("%d nodes for %s replicas", len(natsServers), composeReplicas)
		}
	})

	t.Run("environment", func(t *testing.T) {
		checkEnvironment(t, root, cf, df)
	})

	t.Run("nats users", func(t *testing.T) {
		checkNATSUsers(t, root, cf, df)
	})

	t.Run("tokens", func(t *testing.T) {
		checkTokens(t, cf)
	})

	t.Run("volumes", func(t *testing.T) {
		used := map[string]bool{}
		for name, s := range cf.Services {
			for _, m := range s.mounts(t) {
				if m.bind {
					if _, err := os.Stat(filepath.Join(root, m.source)); err != nil {
						t.Errorf("%s mounts %s, which does not exist: %v", name, m.source, err)
					}
					continue
				}
				used[m.source] = true
				if _, ok := cf.Volumes[m.source]; !ok {
					t.Errorf("%s mounts volume %s, which is not declared", name, m.source)
				}
			}
		}
		for v := range cf.Volumes {
			if !used[v] {
				t.Errorf("volume %s is declared but not mounted", v)
			}
		}

		// Jobs spool where the collector looks, on a volume they share.
		spool := func(name string) mount {
			dir := cf.Services[name].Environment["MINIRAY_SPOOL_DIR"]
			if dir == "" {
				dir = df.env(cf.Services[name].Build.Target)["MINIRAY_SPOOL_DIR"]
			}
			for _, m := range cf.Services[name].mounts(t) {
				if m.target == dir && !m.bind {
					return m
				}
			}
			t.Errorf("%s: spool dir %q is not on a volume", name, dir)
			return mount{}
		}
		want := spool("collector")
		for _, job := range []string{"train", "tune"} {
			if got := spool(job); got != want {
				t.Errorf("%s spools to %+v, the collector reads %+v", job, got, want)
			}
		}
	})
}

// readCompose reads a compose file with the defaults of its ${VAR:-default}
// variables filled in, as compose does when they are not set, and its required
// ${VAR:?message} variables set to the test's NATS passwords. Any other required
// variable fails the test: compose would refuse to start without it.
func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	required := regexp.MustCompile(`\$\{([A-Z0-9_]+):\?[^}]*\}`)
	text := required.ReplaceAllStringFunc(string(raw), func(ref string) string {
		name := required.FindStringSubmatch(ref)[1]
		v, ok := composeSecrets[name]
		if !ok {
			t.Errorf("%s requires %s, which scripts/compose-secrets.sh does not write", path,
				name)
		}
		return v
	})
	vars := regexp.MustCompile(`\$\{[A-Z0-9_]+(:-([^}]*))?\}`)
	text = vars.ReplaceAllString(text, "$2")
	var cf composeFile
	if err := yaml.Unmarshal([]byte(text), &cf); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return cf
}

// checkNATSNodes checks each node's image, its config file and its store.
func checkNATSNodes(t *testing.T, root string, cf composeFile) {
	minor := natsServerMinor(t, root)
	var clusterName string
	for _, name := range natsServers {
		s := cf.Services[name]
		if want := "nats:" + minor + "-alpine"; s.Image != want {
			t.Errorf("%s: image %q, want %q, the server version miniray is built with", name,
				s.Image, want)
		}
		conf := natsConfig(t, root, cf, name)
		if conf.ServerName != name {
			t.Errorf("%s: server_name %q, want the service's name", name, conf.ServerName)
		}
		if !conf.JetStream {
			t.Errorf("%s: JetStream is off", name)
		}
		if clusterName == "" {
			clusterName = conf.Cluster.Name
		}
		if conf.Cluster.Name == "" || conf.Cluster.Name != clusterName {
			t.Errorf("%s: cluster name %q, want one name on every node", name, conf.Cluster.Name)
		}
		var routes []string
		for _, r := range conf.Routes {
			routes = append(routes, r.Host)
		}
		var want []string
		for _, n := range natsServers {
			want = append(want, fmt.Sprintf("%s:%d", n, natsConfig(t, root, cf, n).Cluster.Port))
		}
		if !slices.Equal(routes, want) {
			t.Errorf("%s: routes %v, want %v", name, routes, want)
		}
		store := false
		for _, m := range s.mounts(t) {
			store = store || (!m.bind && m.target == conf.StoreDir)
		}
		if !store {
			t.Errorf("%s: no volume on its store dir %s", name, conf.StoreDir)
		}
	}
}

// natsConfig returns the parsed config file of a nats service: the file its
// --config names, found through the service's mounts. nats-server -t must accept it.
func natsConfig(t *testing.T, root string, cf composeFile, name string) *server.Options {
	t.Helper()
	s := cf.Services[name]
	i := slices.Index(s.Command, "--config")
	if i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("%s: command %v names no --config", name, s.Command)
	}
	var file string
	for _, m := range s.mounts(t) {
		if m.bind && m.target == s.Command[i+1] {
			file = filepath.Join(root, m.source)
		}
	}
	if file == "" {
		t.Fatalf("%s: --config %s is not mounted from the host", name, s.Command[i+1])
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("%s: config file: %v", name, err)
	}
	check := exec.Command(filepath.Join(binDir, "nats-server"), "--config", file, "-t")
	check.Env = append(os.Environ(), natsPasswordEnv()...)
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: nats-server -t rejects %s: %v\n%s", name, file, err, out)
	}
	for _, k := range natsRoles {
		t.Setenv(k, composeSecrets[k]) // the parser reads auth.conf's variables from here
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return opts
}

// natsServerMinor returns "2.N", the minor version of the nats-server module that
// go.mod requires.
func natsServerMinor(t *testing.T, root string) string {
	t.Helper()
	m := goModMatch(t, root, `github.com/nats-io/nats-server/v2 v(\d+\.\d+)\.\d+`)
	return m
}

func goModMatch(t *testing.T, root, pattern string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)` + pattern).FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatalf("go.mod has no match for %s", pattern)
	}
	return m[1]
}

// checkHealthcheck checks that a service's health check probes a port the service
// listens on, with a program its image has.
func checkHealthcheck(t *testing.T, root string, cf composeFile, df *dockerfile, name string) {
	t.Helper()
	s := cf.Services[name]
	if s.Healthcheck == nil {
		t.Errorf("%s has no health check", name)
		return
	}
	test := s.Healthcheck.Test
	if len(test) < 3 || test[0] != "CMD" {
		t.Errorf("%s: health check %v, want [CMD program args...]", name, test)
		return
	}
	probe, err := url.Parse(test[len(test)-1])
	if err != nil || probe.Hostname() != "127.0.0.1" {
		t.Errorf("%s: health check %v does not end with a URL on 127.0.0.1", name, test)
		return
	}
	var listen, path string
	if s.Build == nil {
		conf := natsConfig(t, root, cf, name)
		listen, path = fmt.Sprintf(":%d", conf.HTTPPort), "/healthz"
		if probe.RawQuery != "js-enabled-only=true" {
			t.Errorf("%s: health check %s, want ?js-enabled-only=true: a node must not wait"+
				" for the others to become healthy", name, probe)
		}
	} else {
		stage := s.Build.Target
		listen, path = df.env(stage)["MINIRAY_HTTP"], "/readyz"
		if !df.has(stage, test[1]) {
			t.Errorf("%s: health check runs %s, which target %s does not copy in", name,
				test[1], stage)
		}
	}
	if probe.Port() != portOf(t, listen) || probe.Path != path {
		t.Errorf("%s: health check probes %s, the service listens on %s and answers %s",
			name, probe, listen, path)
	}
}

// checkEnvironment checks that every MINIRAY_ variable a service or its image sets
// is one its program reads: a misspelled one would be ignored in silence.
func checkEnvironment(t *testing.T, root string, cf composeFile, df *dockerfile) {
	jobVars := jobEnvVars(t, root)
	for name, s := range cf.Services {
		if s.Build == nil {
			continue
		}
		stage := s.Build.Target
		prog := df.program(stage, s.Command)
		known := jobVars
		if prog == "collector" || prog == "dashboard" {
			known = programEnvVars(t, prog)
		}
		env := df.env(stage)
		for k, v := range s.Environment {
			env[k] = v
		}
		for k := range env {
			if strings.HasPrefix(k, "MINIRAY_") && !known[k] {
				t.Errorf("%s (%s): %s is not a setting of %s", name, stage, k, prog)
			}
		}
		if prog != "collector" && prog != "dashboard" {
			continue
		}
		for _, k := range []string{"MINIRAY_HTTP", "MINIRAY_NATS_LISTEN"} {
			if v, ok := env[k]; ok && !strings.HasPrefix(v, "0.0.0.0:") {
				t.Errorf("%s: %s=%s; inside a container it must listen on 0.0.0.0", name, k, v)
			}
		}
	}
}

// programEnvVars returns the variables a built program reads, from its --help.
func programEnvVars(t *testing.T, prog string) map[string]bool {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, prog), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", prog, err, out)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (MINIRAY_[A-Z_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		vars[m[1]] = true
	}
	if len(vars) == 0 {
		t.Fatalf("%s --help names no variable:\n%s", prog, out)
	}
	return vars
}

// jobEnvVars returns the variables a job reads, from the jobs table of
// docs/configuration.md.
func jobEnvVars(t *testing.T, root string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## jobs\n")
	if !ok {
		t.Fatal("docs/configuration.md has no jobs section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile("`(MINIRAY_[A-Z_]+)`").FindAllStringSubmatch(section, -1) {
		vars[m[1]] = true
	}
	if !vars["MINIRAY_NATS_URL"] || !vars["MINIRAY_SPOOL_DIR"] {
		t.Fatalf("jobs section of docs/configuration.md lists %v", vars)
	}
	return vars
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
	}
	return port
}
