package tests

import (
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniray/miniray/pkg/events"
)

// composeSecrets stand for the secrets that scripts/compose-secrets.sh writes into
// .env, for the variables that configs/nats/auth.conf and docker-compose.yml read.
var composeSecrets = map[string]string{
	"MINIRAY_NATS_ADMIN_PASSWORD":     "test-admin-password-0123",
	"MINIRAY_NATS_DASHBOARD_PASSWORD": "test-dashboard-password-0123",
	"MINIRAY_NATS_JOB_PASSWORD":       "test-job-password-0123",
	"MINIRAY_DASHBOARD_TOKEN":         "test-dashboard-token-0123",
	"MINIRAY_INGEST_TOKEN":            "test-ingest-token-0123",
}

// The tokens that compose gives each program's HTTP listener, by the variable the
// program reads.
var composeTokens = map[string]map[string]string{
	"collector": {"MINIRAY_INGEST_TOKEN": "MINIRAY_INGEST_TOKEN"},
	"dashboard": {"MINIRAY_HTTP_TOKEN": "MINIRAY_DASHBOARD_TOKEN"},
}

// Every request the tests make over http.DefaultClient carries the dashboard token
// of composeSecrets, so that the cluster tests can read a dashboard started with
// compose's settings. A server without a token ignores it.
func init() {
	http.DefaultClient = &http.Client{Transport: bearer{
		token: composeSecrets["MINIRAY_DASHBOARD_TOKEN"],
		next:  http.DefaultTransport,
	}}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") != "" {
		return b.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// natsRoles maps each NATS user of auth.conf to the variable of its password.
var natsRoles = map[string]string{
	events.UserAdmin:     "MINIRAY_NATS_ADMIN_PASSWORD",
	events.UserDashboard: "MINIRAY_NATS_DASHBOARD_PASSWORD",
	events.UserJob:       "MINIRAY_NATS_JOB_PASSWORD",
}

// natsPasswordEnv is the environment a nats-server process of the compose
// cluster needs.
func natsPasswordEnv() []string {
	var env []string
	for _, k := range natsRoles {
		env = append(env, k+"="+composeSecrets[k])
	}
	return env
}

// roleEnv is the environment of a miniray program that connects as role.
func roleEnv(role string) []string {
	return []string{"MINIRAY_NATS_USER=" + role,
		"MINIRAY_NATS_PASSWORD=" + composeSecrets[natsRoles[role]]}
}

// checkNATSUsers checks that each node mounts auth.conf where its config includes
// it, that its users have the permissions pkg/events grants on the embedded server,
// and that each miniray service connects as the user of its role.
func checkNATSUsers(t *testing.T, root string, cf composeFile, df *dockerfile) {
	for _, name := range natsServers {
		s := cf.Services[name]
		for _, k := range natsRoles {
			if v := composeSecrets[k]; s.Environment[k] != v {
				t.Errorf("%s: %s is %q, want it from .env", name, k, s.Environment[k])
			}
		}
		confTarget := s.Command[slices.Index(s.Command, "--config")+1]
		mounted := false
		for _, m := range s.mounts(t) {
			mounted = mounted || (m.bind && m.source == "./configs/nats/auth.conf" &&
				m.target == filepath.Join(filepath.Dir(confTarget), "auth.conf"))
		}
		if !mounted {
			t.Errorf("%s: configs/nats/auth.conf is not mounted beside %s, which includes it",
				name, confTarget)
		}

		conf := natsConfig(t, root, cf, name)
		users := map[string]*server.User{}
		for _, u := range conf.Users {
			users[u.Username] = u
		}
		if len(users) != len(natsRoles) {
			t.Errorf("%s: users %v, want %v", name, slices.Sorted(maps.Keys(users)),
				slices.Sorted(maps.Keys(natsRoles)))
		}
		for role, v := range natsRoles {
			u := users[role]
			if u == nil {
				t.Errorf("%s: no user %s", name, role)
				continue
			}
			if u.Password != composeSecrets[v] {
				t.Errorf("%s: user %s's password is not $%s", name, role, v)
			}
		}
		if u := users[events.UserAdmin]; u != nil && u.Permissions != nil {
			t.Errorf("%s: admin has permissions %+v, want none set: it provisions", name,
				u.Permissions)
		}
		samePermissions(t, name+": dashboard", users[events.UserDashboard],
			events.DashboardPermissions())
		samePermissions(t, name+": job", users[events.UserJob], events.JobPermissions())
	}

	want := map[string]string{"collector": events.UserAdmin, "dashboard": events.UserDashboard}
	for name, s := range cf.Services {
		if s.Build == nil {
			continue
		}
		role := want[df.program(s.Build.Target, s.Command)]
		if role == "" {
			role = events.UserJob
		}
		if got := s.Environment["MINIRAY_NATS_USER"]; got != role {
			t.Errorf("%s: connects as NATS user %q, want %q", name, got, role)
		}
		if got := s.Environment["MINIRAY_NATS_PASSWORD"]; got != composeSecrets[natsRoles[role]] {
			t.Errorf("%s: MINIRAY_NATS_PASSWORD is not $%s", name, natsRoles[role])
		}
	}
}

// checkTokens checks that the collector and the dashboard, which listen on all of
// their container's interfaces, get their tokens from .env.
func checkTokens(t *testing.T, cf composeFile) {
	for name, vars := range composeTokens {
		for v, secret := range vars {
			if got := cf.Services[name].Environment[v]; got != composeSecrets[secret] {
				t.Errorf("%s: %s is %q, want $%s", name, v, got, secret)
			}
		}
	}
}

// samePermissions compares a user's permissions from auth.conf with the ones
// pkg/events grants, allow lists in any order.
func samePermissions(t *testing.T, what string, u *server.User, want *server.Permissions) {
	t.Helper()
	if u == nil {
		return
	}
	got := u.Permissions
	if got == nil {
		t.Errorf("%s: no permissions, want %+v", what, want)
		return
	}
	sameList := func(kind, verb string, g, w []string) {
		for _, s := range g {
			if !slices.Contains(w, s) {
				t.Errorf("%s: %s %s %s, which pkg/events does not", what, kind, verb, s)
			}
		}
		for _, s := range w {
			if !slices.Contains(g, s) {
				t.Errorf("%s: %s does not %s %s, which pkg/events does", what, kind, verb, s)
			}
		}
	}
	same := func(kind string, g, w *server.SubjectPermission) {
		if g == nil {
			t.Errorf("%s: no %s permission, want %+v", what, kind, w)
			return
		}
		sameList(kind, "allow", g.Allow, w.Allow)
		sameList(kind, "deny", g.Deny, w.Deny)
	}
	same("publish", got.Publish, want.Publish)
	same("subscribe", got.Subscribe, want.Subscribe)
	if got.Response != nil {
		t.Errorf("%s: response permission %+v, want none", what, got.Response)
	}
}

// TestComposeSecrets runs scripts/compose-secrets.sh twice in a copy of the
// project's layout: the first run writes every secret compose needs into a private
// .env, the second keeps them.
func TestComposeSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "scripts", "compose-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "scripts", "compose-secrets.sh")
	if err := os.WriteFile(script, raw, 0o755); err != nil {
		t.Fatal(err)
	}

	runScript := func() map[string]string {
		t.Helper()
		if out, err := exec.Command(script).CombinedOutput(); err != nil {
			t.Fatalf("compose-secrets.sh: %v\n%s", err, out)
		}
		env := filepath.Join(dir, ".env")
		info, err := os.Stat(env)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf(".env has mode %o, want 600", mode)
		}
		raw, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		vals := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			if _, dup := vals[k]; dup {
				t.Errorf(".env sets %s twice", k)
			}
			vals[k] = v
		}
		return vals
	}

	first := runScript()
	safe := regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)
	for k := range composeSecrets {
		if !safe.MatchString(first[k]) {
			t.Errorf("%s=%q, want 32 URL-safe characters", k, first[k])
		}
	}
	if len(first) != len(composeSecrets) {
		t.Errorf(".env holds %v, want %v", slices.Sorted(maps.Keys(first)),
			slices.Sorted(maps.Keys(composeSecrets)))
	}
	if len(slices.Compact(slices.Sorted(maps.Values(first)))) != len(first) {
		t.Error("two secrets are the same")
	}
	second := runScript()
	for k, v := range first {
		if second[k] != v {
			t.Errorf("second run changed %s", k)
		}
	}
}
