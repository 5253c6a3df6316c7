package tests

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/projection"
)

// The Python client (clients/python) against the real collector and dashboard: its
// own test suite with the integration tests on, the decorator exactly as users
// write it, failures, progress, a job killed hard, a collector that is not there,
// and the ingest token.

// originalUsage is the Python client's documented example, unchanged but for the
// call at the end.
const originalUsage = `from miniray import track_training_job
@track_training_job(name="My Training Job", description="Trains a model")
def train_model(epochs):
    ...
    return {"accuracy": 0.95}

train_model(10)
`

// pythonClientDir is the Python client's directory, absolute.
func pythonClientDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "clients", "python"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// python returns the path of a python3 of version 3.9 or later. Without one the
// test is skipped, but fails on CI, where the Python client must be tested.
func python(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("python3")
	if err == nil {
		out, verr := exec.Command(path, "-c",
			"import sys; assert sys.version_info >= (3, 9), sys.version").CombinedOutput()
		if verr != nil {
			err = fmt.Errorf("%s is older than 3.9: %v: %s", path, verr, out)
		}
	}
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the Python client's tests need python3 (3.9 or later) on CI: %v", err)
	}
	t.Skipf("python3 (3.9 or later) not found, the Python client is not tested: %v", err)
	return ""
}

// pyEnv is the environment of the Python programs a test runs against s: the
// collector's ingest, its spool dir, short heartbeats, and none of the caller's
// MINIRAY_ settings.
func pyEnv(t *testing.T, s *system, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIRAY_") && !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PYTHONPATH="+pythonClientDir(t),
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		"MINIRAY_URL=http://"+s.colHTTP,
		"MINIRAY_SPOOL_DIR="+s.spoolDir,
		"MINIRAY_HEARTBEAT_INTERVAL=500ms",
		"MINIRAY_FLUSH_TIMEOUT=30s",
		"MINIRAY_TEST_DASHBOARD_URL="+s.url(""),
	)
	return append(env, extra...)
}

// startPython starts python3 with args and the environment env (the whole of it),
// like start does for the built programs.
func startPython(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(python(t), args...)
	cmd.Env = env
	return startCmd(t, "python3", cmd)
}

// runPython runs a Python program to its end and checks its exit status.
func runPython(t *testing.T, env []string, wantStatus int, args ...string) (*proc, string) {
	t.Helper()
	p := startPython(t, env, args...)
	select {
	case <-p.done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("python3 %v did not exit", args)
	}
	if got := p.cmd.ProcessState.ExitCode(); got != wantStatus {
		t.Fatalf("python3 %v: exit status %d, want %d:\n%s", args, got, wantStatus,
			p.out.String())
	}
	return p, p.out.String()
}

// runScript writes a Python script and runs it.
func runScript(t *testing.T, env []string, wantStatus int, script string) (*proc, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	return runPython(t, env, wantStatus, path)
}

// taskIDNamed waits until the dashboard lists exactly one task of that name.
func taskIDNamed(t *testing.T, s *system, name string) string {
	t.Helper()
	var id string
	eventually(t, "task "+name+" listed", time.Minute, func() error {
		ids, err := taskIDs(t, s, "q="+url.QueryEscape(name))
		if err != nil {
			return err
		}
		var named []string
		for id, n := range ids {
			if n == name {
				named = append(named, id)
			}
		}
		if len(named) != 1 {
			return fmt.Errorf("%d tasks named %q", len(named), name)
		}
		id = named[0]
		return nil
	})
	return id
}

// taskIDs returns the ids and names of the tasks a query of /api/tasks lists.
func taskIDs(t *testing.T, s *system, query string) (map[string]string, error) {
	var page projection.Page
	code, err := getJSON(t.Context(), s.url("/api/tasks?limit=1000&"+query), &page)
	if err == nil && code != 200 {
		err = fmt.Errorf("list tasks: status %d", code)
	}
	ids := map[string]string{}
	for _, task := range page.Tasks {
		ids[task.TaskID] = task.Name
	}
	return ids, err
}

// historyTypes returns the event types of a task's history, in order.
func historyTypes(task projection.Task) []events.Type {
	var out []events.Type
	for _, h := range task.History {
		out = append(out, h.EventType)
	}
	return out
}

func newPythonSystem(t *testing.T, collectorFlags ...string) *system {
	t.Helper()
	python(t)
	s := newSystem(t)
	s.startCollectorWith(collectorFlags...)
	s.startDashboard()
	return s
}

// lostAfter is the collector's lost_after in TestPythonClient: twelve of the
// Python jobs' heartbeats, so that only a job that is gone turns LOST.
const lostAfter = 6 * time.Second

func TestPythonClient(t *testing.T) {
	s := newPythonSystem(t, "--lost-after", lostAfter.String(), "--spool-scan", "500ms")

	t.Run("unittest", func(t *testing.T) { testPythonSuite(t, s) })
	t.Run("original usage", func(t *testing.T) { testPythonOriginalUsage(t, s) })
	t.Run("failure", func(t *testing.T) { testPythonFailure(t, s) })
	t.Run("progress of trials", func(t *testing.T) { testPythonTrials(t, s) })
	t.Run("killed job turns lost", func(t *testing.T) { testPythonKilled(t, s) })
	t.Run("collector unreachable", func(t *testing.T) { testPythonUnreachable(t, s) })
}

// integrationOK matches the verbose unittest line of a passed integration test:
// "test_x (test_integration.CollectorTest.test_x) ... ok", or without the last
// part before Python 3.11.
var integrationOK = regexp.MustCompile(
	`(?m)^test_\w+ \(test_integration\.CollectorTest[\w.]*\) \.\.\. ok$`)

// testPythonSuite runs the Python client's unit tests and, since MINIRAY_URL is set,
// its integration tests against this collector and dashboard.
func testPythonSuite(t *testing.T, s *system) {
	dir := filepath.Join(pythonClientDir(t), "tests")
	_, out := runPython(t, pyEnv(t, s), 0, "-m", "unittest", "discover", "-s", dir, "-v")
	checkIntegrationRan(t, out)
}

func checkIntegrationRan(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "MINIRAY_URL not set") {
		t.Fatalf("integration tests skipped:\n%s", out)
	}
	if n := len(integrationOK.FindAllString(out, -1)); n < 5 {
		t.Fatalf("got %d integration tests passed, want at least 5:\n%s", n, out)
	}
}

// testPythonOriginalUsage runs the decorator as users write it, in a script that
// ends right after the job: the exit handler must deliver everything.
func testPythonOriginalUsage(t *testing.T, s *system) {
	p, _ := runScript(t, pyEnv(t, s), 0, originalUsage)

	d := s.dash().on(t)
	id := taskIDNamed(t, s, "My Training Job")
	task := d.waitTask(id, "completed", time.Minute, hasStatus(projection.Completed))
	if !strings.HasPrefix(id, "training_") || task.Type != events.TypeTraining {
		t.Fatalf("task %s: got type %s, want a training task", id, task.Type)
	}
	if task.Description != "Trains a model" {
		t.Fatalf("description: got %q, want %q", task.Description, "Trains a model")
	}
	if !sameJSON(task.Result, []byte(`{"accuracy": 0.95}`)) {
		t.Fatalf("result: got %s, want {\"accuracy\": 0.95}", task.Result)
	}
	want := []events.Type{events.TaskSubmitted, events.TaskStarted, events.TaskCompleted}
	if got := historyTypes(task); !slices.Equal(got, want) || task.EventCount != 3 {
		t.Fatalf("history: got %v (%d events), want %v", got, task.EventCount, want)
	}
	countHistory(t, task)
	if task.PID != p.cmd.Process.Pid || task.Host == "" || task.ParentID != "" {
		t.Fatalf("got pid %d on host %q, parent %q; want pid %d on a host, no parent",
			task.PID, task.Host, task.ParentID, p.cmd.Process.Pid)
	}
	if len(task.Attempts) != 1 || task.StartedAt == 0 || task.FinishedAt < task.StartedAt {
		t.Fatalf("attempts %+v, started %v, finished %v", task.Attempts, task.StartedAt,
			task.FinishedAt)
	}
}

// testPythonFailure runs a job that raises: the program fails as it would without
// tracking, and the task shows the exception and its traceback.
func testPythonFailure(t *testing.T, s *system) {
	_, out := runScript(t, pyEnv(t, s), 1, `from miniray import track_training_job
@track_training_job(name="Failing Job", description="Raises")
def train_model(epochs):
    raise ValueError("diverged at epoch %d" % epochs)

train_model(3)
`)
	if !strings.Contains(out, "ValueError: diverged at epoch 3") {
		t.Fatalf("the job's traceback is missing from its output:\n%s", out)
	}

	id := taskIDNamed(t, s, "Failing Job")
	task := s.dash().on(t).waitTask(id, "failed", time.Minute, hasStatus(projection.Failed))
	if task.Error != "ValueError: diverged at epoch 3" {
		t.Fatalf("error: got %q, want %q", task.Error, "ValueError: diverged at epoch 3")
	}
	if !strings.Contains(task.Stack, "Traceback") || !strings.Contains(task.Stack, "train_model") {
		t.Fatalf("stack: got %q, want a traceback through train_model", task.Stack)
	}
	want := []events.Type{events.TaskSubmitted, events.TaskStarted, events.TaskFailed}
	if got := historyTypes(task); !slices.Equal(got, want) {
		t.Fatalf("history: got %v, want %v", got, want)
	}
}

// testPythonTrials runs a tuning job whose trials report progress: the trials are
// the tuning task's children, and each trial's metrics are on the dashboard.
func testPythonTrials(t *testing.T, s *system) {
	const steps = 6
	runScript(t, pyEnv(t, s), 0, fmt.Sprintf(`import miniray

@miniray.track_training_job(name="Python Trial")
def trial(lr):
    for step in range(1, %[1]d + 1):
        miniray.current_task().progress(step, %[1]d, {"loss": lr / step, "lr": lr})
    return {"lr": lr}

@miniray.track_tuning_job(name="Python Search", description="two trials")
def search():
    return [trial(lr) for lr in (0.5, 1.0)]

search()
`, steps))

	d := s.dash().on(t)
	parent := taskIDNamed(t, s, "Python Search")
	d.waitTask(parent, "completed", time.Minute, hasStatus(projection.Completed))
	var children map[string]string
	eventually(t, "two trials", time.Minute, func() error {
		var err error
		children, err = taskIDs(t, s, "parent_id="+parent)
		if err == nil && len(children) != 2 {
			err = fmt.Errorf("%d children", len(children))
		}
		return err
	})
	for id, name := range children {
		task := d.waitTask(id, "completed", time.Minute, hasStatus(projection.Completed))
		if name != "Python Trial" || task.ParentID != parent {
			t.Fatalf("child %s: got %q with parent %q, want a trial of %s", id, name,
				task.ParentID, parent)
		}
		checkCompleteRun(t, task, steps, 0)
		var ts projection.TaskSeries
		code, err := getJSON(t.Context(), s.url("/api/tasks/"+id+"/metrics"), &ts)
		if err != nil || code != 200 {
			t.Fatalf("metrics of %s: %d %v", id, code, err)
		}
		loss := ts.Series["loss"]
		if loss == nil || len(loss.Step) != steps || loss.Step[steps-1] != steps {
			t.Fatalf("trial %s: loss series %+v, want steps 1 to %d", id, loss, steps)
		}
		lr := task.Metrics["lr"]
		if got, want := task.Metrics["loss"], lr/steps; lr == 0 || got != want {
			t.Fatalf("trial %s: last loss %v with lr %v, want %v", id, got, lr, want)
		}
	}
}

// testPythonKilled kills a running Python job with SIGKILL: its heartbeats kept it
// RUNNING past lost_after, and once they stop the collector declares it LOST.
func testPythonKilled(t *testing.T, s *system) {
	path := filepath.Join(t.TempDir(), "job.py")
	script := `import time, miniray

@miniray.track_training_job(name="Killed Job")
def train():
    miniray.progress(1, 100, {"loss": 1.0})
    print("task", miniray.current_task().id, flush=True)
    time.sleep(600)

train()
`
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPython(t, pyEnv(t, s), path)
	id := taskIDNamed(t, s, "Killed Job")

	// Alive for longer than lost_after, on heartbeats alone.
	d := s.dash().on(t)
	d.waitTask(id, "running on heartbeats past lost_after", time.Minute,
		func(task projection.Task) error {
			if err := runningPast(1)(task); err != nil {
				return err
			}
			alive := task.LastSeenAt - task.StartedAt
			if alive < (lostAfter + time.Second).Seconds() {
				return fmt.Errorf("heard from %.1fs after its start", alive)
			}
			return nil
		})
	if p.exited() {
		t.Fatalf("the job exited early:\n%s", p.out.String())
	}

	p.kill()
	task := d.waitTask(id, "lost", time.Minute, hasStatus(projection.Lost))
	if counts := countHistory(t, task); counts[events.TaskLost] != 1 {
		t.Fatalf("history by type %v, want one task_lost", counts)
	}
}

// testPythonUnreachable runs a job while nothing listens at MINIRAY_URL: the job
// completes, says once that it could not report, and leaves its events in the spool,
// from which the collector sends them.
func testPythonUnreachable(t *testing.T, s *system) {
	env := pyEnv(t, s, "MINIRAY_URL=http://"+freeAddr(t))
	_, out := runScript(t, env, 0, `from miniray import track_training_job
@track_training_job(name="Offline Job", description="no collector")
def train_model(epochs):
    return {"accuracy": 0.5}

print(train_model(2))
`)
	if !strings.Contains(out, "{'accuracy': 0.5}") || strings.Count(out, "unreachable") != 1 {
		t.Fatalf("want the job's result and one warning, got:\n%s", out)
	}

	id := taskIDNamed(t, s, "Offline Job")
	task := s.dash().on(t).waitTask(id, "completed", time.Minute, hasStatus(projection.Completed))
	want := []events.Type{events.TaskSubmitted, events.TaskStarted, events.TaskCompleted}
	if got := historyTypes(task); !slices.Equal(got, want) || !sameJSON(task.Result,
		[]byte(`{"accuracy": 0.5}`)) {
		t.Fatalf("got history %v and result %s, want %v and the job's result", got,
			task.Result, want)
	}
	eventually(t, "spool file removed", 30*time.Second, func() error {
		names, _ := filepath.Glob(filepath.Join(s.spoolDir, "*.spool"))
		if len(names) > 0 {
			return fmt.Errorf("left: %v", names)
		}
		return nil
	})
}

// TestPythonClientIngestToken runs Python jobs against a collector whose ingest
// needs a token: without the right one the job still completes, with a warning,
// and its events are refused, not spooled; with it everything arrives.
func TestPythonClientIngestToken(t *testing.T) {
	const token = "python-ingest-token-0123456789"
	s := newPythonSystem(t, "--ingest-token", token)

	script := func(name string) string {
		return fmt.Sprintf(`from miniray import track_training_job
@track_training_job(name=%q, description="token check")
def train_model(epochs):
    return {"epochs": epochs}

print("result", train_model(4))
`, name)
	}
	for _, c := range []struct{ name, token string }{
		{"No Token Job", ""},
		{"Wrong Token Job", "wrong-token-wrong-token-0123"},
	} {
		_, out := runScript(t, pyEnv(t, s, "MINIRAY_INGEST_TOKEN="+c.token), 0, script(c.name))
		if !strings.Contains(out, "result {'epochs': 4}") ||
			strings.Count(out, "refused the token") != 1 {
			t.Fatalf("%s: want the result and one warning about the token, got:\n%s", c.name, out)
		}
	}

	right := pyEnv(t, s, "MINIRAY_INGEST_TOKEN="+token)
	runScript(t, right, 0, script("Right Token Job"))
	id := taskIDNamed(t, s, "Right Token Job")
	s.dash().on(t).waitTask(id, "completed", time.Minute, hasStatus(projection.Completed))

	// The refused jobs ran first: had any of their events been stored, they would be
	// listed by now.
	ids, err := taskIDs(t, s, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("got tasks %v, want only Right Token Job", ids)
	}
	if names, _ := filepath.Glob(filepath.Join(s.spoolDir, "*.spool")); len(names) > 0 {
		t.Fatalf("refused events were spooled: %v", names)
	}

	// The integration tests pass the token too.
	dir := filepath.Join(pythonClientDir(t), "tests")
	_, out := runPython(t, right, 0, "-m", "unittest", "discover", "-s", dir,
		"-p", "test_integration.py", "-v")
	checkIntegrationRan(t, out)
}
