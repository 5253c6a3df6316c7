package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/miniray/miniray/pkg/projection"
)

// xssName is a task name that would run a script if the page parsed it as HTML.
const xssName = "<img src=x onerror=alert(1)>"

// bidiName would read "invoice-exe.pdf" if the page let its right-to-left override
// act; the page shows the override as U+FFFD, in shownBidiName.
const (
	bidiName      = "invoice-\u202Efdp.exe"
	shownBidiName = "invoice-\uFFFDfdp.exe"
)

// shotDir is where the tests write the screenshots the README shows.
var shotDir = filepath.Join("..", "docs", "screenshots")

// findChromium returns a Chromium or Chrome binary. Without one the test fails in
// CI, which installs it, and is skipped elsewhere.
func findChromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("no chromium on PATH; scripts/test.sh installs it with apt-get")
	}
	tb.Skip("no chromium on PATH")
	return ""
}

// browser is one tab of a headless Chromium. It records what must never happen on
// the page: a dialog (a script ran), an uncaught exception, an error logged by the
// page or a Content-Security-Policy violation.
type browser struct {
	t *testing.T // the test or subtest that uses it: see on
	*tab
}

// tab is the state a browser's copies share.
type tab struct {
	ctx context.Context

	mu       sync.Mutex
	dialogs  []string
	problems []string
}

// on returns the browser for use in test t, which its failures then fail.
func (b *browser) on(t *testing.T) *browser {
	return &browser{t: t, tab: b.tab}
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(findChromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, tab: &tab{ctx: ctx}}
	if err := chromedp.Listen(ctx, b.watch); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// The page's own listener would be subject to its CSP; this one is installed
	// by the test and reports every violation.
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			window.__csp = [];
			document.addEventListener("securitypolicyviolation",
				(e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
	if err != nil {
		t.Fatalf("install CSP listener: %v", err)
	}
	b.viewport(1280, 800)
	return b
}

// watch runs on chromedp's reading goroutine: it records and returns at once.
func (b *tab) watch(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *page.EventJavascriptDialogOpening:
		b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
		go chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, "exception: "+msg)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			b.problems = append(b.problems, "console.error")
		}
	case *cdplog.EventEntryAdded:
		// Failed requests while the dashboard restarts are expected; the rest
		// (security, javascript...) is not.
		e := ev.Entry
		if e.Level == cdplog.EntryLevelError && e.Source != cdplog.EntrySourceNetwork {
			b.problems = append(b.problems, string(e.Source)+": "+e.Text)
		}
	}
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) viewport(w, h int64) {
	b.t.Helper()
	b.do("set viewport", chromedp.EmulateViewport(w, h))
}

// eval evaluates a JavaScript expression and decodes its JSON value into v.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor evaluates cond, a JavaScript expression, until it is true.
func (b *browser) waitFor(what string, timeout time.Duration, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for !eval[bool](b, "Boolean("+cond+")") {
		if time.Now().After(deadline) {
			text := eval[string](b, `document.body.innerText.slice(0, 3000)`)
			b.t.Fatalf("%s: not within %s; the page shows:\n%s", what, timeout, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// route changes the page's fragment, as a click on a link does: no reload.
func (b *browser) route(fragment string) {
	b.t.Helper()
	eval[bool](b, "(location.hash = "+jsString(fragment)+", true)")
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	// Let the charts and the fonts settle after the last update.
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(shotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shotDir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// extraShot writes a screenshot, of the viewport or the whole page, to the
// directory MINIRAY_SCREENSHOTS names, when it does: views worth a look that the
// README does not show.
func (b *browser) extraShot(name string, full bool) {
	b.t.Helper()
	dir := os.Getenv("MINIRAY_SCREENSHOTS")
	if dir == "" {
		return
	}
	time.Sleep(300 * time.Millisecond)
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(b.ctx, shot)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), png, 0o644)
	}
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// noReload fails the test when the page was loaded again since the test marked
// its window.
func (b *browser) noReload() {
	b.t.Helper()
	if !eval[bool](b, "window.__sameDocument === true") {
		b.t.Fatal("the page reloaded, want it to update in place")
	}
}

// checkClean fails the test for any dialog, script error or CSP violation so far.
func (b *browser) checkClean() {
	b.t.Helper()
	b.mu.Lock()
	dialogs, problems := append([]string(nil), b.dialogs...), append([]string(nil), b.problems...)
	b.mu.Unlock()
	if len(dialogs) > 0 {
		b.t.Errorf("got dialogs %q, want none: job data ran as script", dialogs)
	}
	if len(problems) > 0 {
		b.t.Errorf("got page problems, want none:\n%s", strings.Join(problems, "\n"))
	}
	if csp := eval[[]string](b, "window.__csp || []"); len(csp) > 0 {
		b.t.Errorf("got CSP violations %q, want none", csp)
	}
	if n := eval[int](b, `document.querySelectorAll("img").length`); n != 0 {
		b.t.Errorf("got %d img elements, want none: job data parsed as HTML", n)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rowJS is an expression for the list row of the task named name, as an object
// {id, status, value, max}, or null.
func rowJS(name string) string {
	return `(() => {
		const rows = Array.from(document.querySelectorAll("#task-rows tr"));
		const tr = rows.find((r) => {
			const a = r.querySelector("a.name");
			return a && a.textContent === ` + jsString(name) + `;
		});
		if (!tr) return null;
		const bar = tr.querySelector("progress");
		return {id: tr.dataset.id, status: tr.querySelector(".badge").textContent,
			value: bar.value, max: bar.max};
	})()`
}

type row struct {
	ID     string  `json:"id"`
	Status string  `json:"status"`
	Value  float64 `json:"value"`
	Max    float64 `json:"max"`
}

func (b *browser) row(name string) *row {
	b.t.Helper()
	return eval[*row](b, rowJS(name))
}

// runJobs runs programs side by side, each {name, args...}, and waits for all.
func (s *system) runJobs(jobs ...[]string) {
	s.t.Helper()
	var procs []*proc
	for _, j := range jobs {
		procs = append(procs, start(s.t, j[0], s.jobEnv(), j[1:]...))
	}
	for i, p := range procs {
		select {
		case <-p.done:
		case <-time.After(2 * time.Minute):
			s.t.Fatalf("%v did not exit", jobs[i])
		}
		if p.err != nil {
			s.t.Fatalf("%v: %v\n%s", jobs[i], p.err, p.out.String())
		}
	}
}

// jobberSummary reads the line jobber prints when it ends.
func jobberSummary(t *testing.T, p *proc) (id string, steps int) {
	t.Helper()
	var sum struct {
		TaskID  string `json:"task_id"`
		Steps   int    `json:"steps"`
		Dropped uint64 `json:"dropped"`
	}
	for line := range strings.SplitSeq(p.out.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &sum); err != nil {
				t.Fatalf("jobber summary %q: %v", line, err)
			}
		}
	}
	if sum.TaskID == "" || sum.Dropped != 0 {
		t.Fatalf("jobber: got summary %+v, want a task id and nothing dropped", sum)
	}
	return sum.TaskID, sum.Steps
}

func (s *system) series(id string) projection.TaskSeries {
	s.t.Helper()
	var ts projection.TaskSeries
	code, err := getJSON(context.Background(), s.url("/api/tasks/"+id+"/metrics"), &ts)
	if err != nil || code != 200 {
		s.t.Fatalf("series of %s: %d %v", id, code, err)
	}
	return ts
}

func (s *system) taskNamed(name string) projection.Task {
	s.t.Helper()
	for _, t := range s.tasks().Tasks {
		if t.Name == name {
			return t
		}
	}
	s.t.Fatalf("no task named %q", name)
	return projection.Task{}
}

// chartPoints returns data-points of each metric chart on the task page.
func (b *browser) chartPoints() map[string]int {
	b.t.Helper()
	return eval[map[string]int](b, `Object.fromEntries(
		Array.from(document.querySelectorAll("#charts .chart[data-metric]"))
			.filter((c) => c.querySelector("canvas"))
			.map((c) => [c.dataset.metric, Number(c.dataset.points)]))`)
}

// focusJS describes the element that has the keyboard focus, for messages.
const focusJS = `(() => {
	const e = document.activeElement;
	if (!e) return "nothing";
	const text = (e.getAttribute("aria-label") || e.textContent || "").trim().slice(0, 40);
	return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
		(e.className ? "." + e.className.split(" ").join(".") : "") + " " + JSON.stringify(text);
})()`

// press sends keys as a user's keyboard does: the browser's own handling of the
// keys (moving the focus, following a link, clicking a button) takes place.
func (b *browser) press(keys string, opts ...chromedp.KeyOption) {
	b.t.Helper()
	b.do(fmt.Sprintf("press %q", keys), chromedp.KeyEvent(keys, opts...))
}

// tabTo presses Tab until the focus is on an element for which match, a JavaScript
// expression of the element e, is true, and checks that the focus is visible there.
// It fails after the given number of presses, listing where the focus went.
func (b *browser) tabTo(what, match string, presses int) {
	b.t.Helper()
	var visited []string
	for range presses {
		b.press(kb.Tab)
		if eval[bool](b, "((e) => Boolean(e && ("+match+")))(document.activeElement)") {
			visible := eval[bool](b, `(() => {
				const e = document.activeElement, r = e.getBoundingClientRect();
				return e.matches(":focus-visible") && getComputedStyle(e).outlineStyle !== "none" &&
					r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0;
			})()`)
			if !visible {
				b.t.Errorf("%s: got the focus there without a visible outline", what)
			}
			return
		}
		visited = append(visited, eval[string](b, focusJS))
	}
	b.t.Fatalf("%s: not reached with %d presses of Tab; the focus went to:\n%s\n"+
		"at %s the page shows:\n%s", what, presses, strings.Join(visited, "\n"),
		eval[string](b, "location.hash"), eval[string](b, `document.body.innerText.slice(0, 2000)`))
}

// TestBrowserDashboard drives the real page in Chromium against the real programs:
// the list, live updates, the task page with its charts, a tuning task's trials,
// job data that looks like markup, the list from the keyboard alone, and dashboard
// restarts under an open task page and under a filtered list.
func TestBrowserDashboard(t *testing.T) {
	s := newSystem(t)
	s.startCollector()
	s.startDashboard()
	const epochs = 60
	s.runJobs(
		[]string{"train", "--name", "iris-softmax", "--epochs", fmt.Sprint(epochs)},
		[]string{"infer"},
		[]string{"tune"},
		[]string{"fail"},
		[]string{"jobber", "--name", xssName, "--steps", "5"},
		[]string{"jobber", "--name", bidiName, "--steps", "2"},
	)

	b := newBrowser(t)
	b.do("open the dashboard", chromedp.Navigate(s.url("/")))
	// A mark on the window: it survives everything but a reload.
	eval[bool](b, "(window.__sameDocument = true)")

	t.Run("list shows the example jobs", func(t *testing.T) {
		b := b.on(t)
		for _, name := range []string{"iris-softmax", "iris-infer", "iris-grid",
			"iris-missing-value", "iris-confusion", xssName} {
			b.waitFor("row "+name, 20*time.Second, rowJS(name))
		}
		b.waitFor("live status", 10*time.Second, `document.querySelector("#ready.live")`)
		b.checkClean()
	})

	t.Run("a tuning task's trials open under it", func(t *testing.T) {
		b := b.on(t)
		tune := s.taskNamed("iris-grid")
		eval[bool](b, `(document.querySelector("#task-rows tr[data-key='`+tune.TaskID+
			`'] button.toggle").click(), true)`)
		b.waitFor("trials under iris-grid", 10*time.Second,
			`document.querySelectorAll("#task-rows tr.child[data-kind=task]").length === 8`)
	})

	t.Run("a new job appears and moves without reload", func(t *testing.T) {
		b := b.on(t)
		job := start(t, "jobber", s.jobEnv(), "--steps", "200", "--every", "20ms",
			"--name", "live-job")
		seen := map[float64]bool{}
		shot := false
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := b.row("live-job")
			if r != nil {
				seen[r.Value] = true
				if r.Status == "COMPLETED" && r.Value == 200 {
					break
				}
				if !shot && r.Value >= 60 && r.Value <= 150 {
					b.screenshot("list.png") // while it runs
					shot = true
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("live-job: got row %+v, seen progress %v", r, seen)
			}
			time.Sleep(40 * time.Millisecond)
		}
		moving := 0
		for v := range seen {
			if v > 0 && v < 200 {
				moving++
			}
		}
		if moving < 2 {
			t.Errorf("got progress values %v while running, want the bar to move", seen)
		}
		<-job.done
		b.noReload()
		if !shot {
			b.screenshot("list.png")
		}
	})

	t.Run("the focus stays on a row that moves", func(t *testing.T) {
		b := b.on(t)
		// Sorted by status, then by id: while the three run, focus-b is in the middle;
		// when it completes, COMPLETED sorts before RUNNING and its row moves to the
		// top, under the keyboard focus.
		for _, j := range []struct {
			id    string
			steps int
		}{{"focus-a", 400}, {"focus-b", 100}, {"focus-c", 400}} {
			start(t, "jobber", s.jobEnv(), "--steps", fmt.Sprint(j.steps), "--every", "20ms",
				"--name", j.id, "--task-id", j.id)
		}
		b.route("#/?q=focus-&sort=status")
		names := `Array.from(document.querySelectorAll("#task-rows a.name"),` +
			` (a) => a.textContent).join(",")`
		b.waitFor("three running rows", 20*time.Second, `(() => {
			const rows = document.querySelectorAll("#task-rows tr .badge");
			return rows.length === 3 &&
				Array.from(rows).every((r) => r.textContent === "RUNNING");
		})()`)
		if got := eval[string](b, names); got != "focus-a,focus-b,focus-c" {
			t.Fatalf("rows %s while running, want focus-a,focus-b,focus-c", got)
		}
		link := `document.querySelector("#task-rows tr[data-key='focus-b'] a.name")`
		eval[bool](b, "("+link+".focus(), true)")

		b.waitFor("focus-b completed, on top", 20*time.Second,
			names+` === "focus-b,focus-a,focus-c"`)
		if !eval[bool](b, "document.activeElement === "+link) {
			t.Fatalf("focus on %s after the row moved, want focus-b's link",
				eval[string](b, focusJS))
		}
		b.route("#/")
	})

	t.Run("task page charts every point", func(t *testing.T) {
		b := b.on(t)
		live := s.taskNamed("live-job")
		api := s.series(live.TaskID)
		b.route("#/task/" + live.TaskID)
		b.waitFor("charts of live-job", 20*time.Second,
			`document.querySelectorAll("#charts .chart canvas").length === 2`)
		got := b.chartPoints()
		for _, m := range []string{"loss", "step"} {
			if got[m] != 200 || len(api.Series[m].Step) != 200 {
				t.Errorf("chart %s: got %d points on the page, %d from the API, want 200 as "+
					"the job reported", m, got[m], len(api.Series[m].Step))
			}
		}

		train := s.taskNamed("iris-softmax")
		b.route("#/task/" + train.TaskID)
		b.waitFor("charts of iris-softmax", 20*time.Second,
			`document.querySelectorAll("#charts .chart canvas").length === 3`)
		for m, n := range b.chartPoints() {
			if n != epochs {
				t.Errorf("chart %s of iris-softmax: got %d points, want %d", m, n, epochs)
			}
		}
		b.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		b.screenshot("task.png")
		b.noReload()
	})

	t.Run("tuning task overlays its trials", func(t *testing.T) {
		b := b.on(t)
		tune := s.taskNamed("iris-grid")
		var trials projection.Trials
		if code, err := getJSON(context.Background(), s.url("/api/tasks/"+tune.TaskID+"/trials"),
			&trials); err != nil || code != 200 {
			t.Fatalf("trials: %d %v", code, err)
		}
		if trials.Total != 8 {
			t.Fatalf("got %d trials from the API, want the 8 of the grid", trials.Total)
		}
		want := 0
		for _, tr := range trials.Trials {
			want += len(tr.Curve.Step)
		}
		b.route("#/task/" + tune.TaskID)
		b.waitFor("trials chart", 20*time.Second,
			`document.querySelector("#trials-chart[data-series='8'] canvas")`)
		series := eval[int](b, `app.trialsChart.u.series.length - 1`)
		points := eval[int](b, `Number(byId("trials-chart").dataset.points)`)
		rows := eval[int](b, `byId("trials-rows").rows.length`)
		if series != 8 || points != want || rows != 8 {
			t.Errorf("got %d series with %d points and %d table rows, want 8 with %d and 8",
				series, points, rows, want)
		}
		b.extraShot("tune.png", true)

		// Another metric and order, kept in the fragment.
		b.route("#/task/" + tune.TaskID + "?metric=loss&order=min")
		b.waitFor("trials by loss", 10*time.Second,
			`byId("trials-chart").dataset.metric === "loss" &&
				byId("trials-metric").value === "loss"`)
		b.noReload()
	})

	t.Run("markup in job data is text", func(t *testing.T) {
		b := b.on(t)
		x := s.taskNamed(xssName)
		b.route("#/task/" + x.TaskID)
		b.waitFor("xss task page", 20*time.Second,
			`byId("task-name").textContent === `+jsString(xssName))
		b.route("#/?q=" + "%3Cimg")
		b.waitFor("xss row", 10*time.Second, rowJS(xssName))
		b.checkClean()

		bidi := s.taskNamed(bidiName)
		b.route("#/task/" + bidi.TaskID)
		b.waitFor("direction override shown as U+FFFD", 20*time.Second,
			`byId("task-name").textContent === `+jsString(shownBidiName))
	})

	t.Run("a panic shows its error and stack", func(t *testing.T) {
		b := b.on(t)
		crash := s.taskNamed("iris-confusion")
		b.route("#/task/" + crash.TaskID)
		b.waitFor("error and stack", 10*time.Second,
			`!byId("task-error-sec").hidden &&
				byId("task-error").textContent.includes("index out of range") &&
				!byId("task-stack-box").hidden &&
				byId("task-stack").textContent.includes("goroutine")`)
	})

	t.Run("phone width and dark mode", func(t *testing.T) {
		b := b.on(t)
		b.viewport(390, 844)
		b.route("#/")
		b.waitFor("list", 10*time.Second, rowJS("live-job"))
		overflow := `document.documentElement.scrollWidth > window.innerWidth + 1`
		if eval[bool](b, overflow) {
			t.Errorf("list at 390px: the page scrolls sideways, want it to fit")
		}
		b.extraShot("list-phone.png", false)
		train := s.taskNamed("iris-softmax")
		b.route("#/task/" + train.TaskID)
		b.waitFor("charts", 10*time.Second,
			`document.querySelectorAll("#charts canvas").length === 3`)
		if eval[bool](b, overflow) {
			t.Errorf("task page at 390px: the page scrolls sideways, want it to fit")
		}
		b.extraShot("task-phone.png", false)
		eval[bool](b, `(byId("charts-sec").scrollIntoView(), true)`)
		b.extraShot("task-phone-charts.png", false)

		b.viewport(1280, 800)
		dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{
			{Name: "prefers-color-scheme", Value: "dark"}}}
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, dark); err != nil {
			t.Fatal(err)
		}
		bg := eval[string](b, `getComputedStyle(document.body).backgroundColor`)
		if bg != "rgb(20, 23, 28)" {
			t.Errorf("dark mode: got background %s, want the dark theme's", bg)
		}
		b.extraShot("task-dark.png", true)
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia,
			emulation.SetEmulatedMediaParams{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the list works from the keyboard", func(t *testing.T) {
		b := b.on(t)
		tune := s.taskNamed("iris-grid")
		b.route("#/?q=iris")
		hash := func() string { return eval[string](b, "location.hash") }
		waitHash := func(what, want string) {
			b.t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for h := hash(); h != want; h = hash() {
				if time.Now().After(deadline) {
					t.Fatalf("%s: got fragment %q, want %q; focus on %s", what, h, want,
						eval[string](b, focusJS))
				}
				time.Sleep(50 * time.Millisecond)
			}
			// A row the focus is on would vanish under it if the answer for an older
			// query came in later: the list must show what the fragment asks for.
			if strings.HasPrefix(want, "#/?") {
				b.waitFor(what+", rendered", 10*time.Second,
					`app.list && listHash(app.list.query) === location.hash && !app.inflight`)
			}
		}

		waitHash("list of iris tasks", "#/?q=iris")
		b.waitFor("rows of iris tasks", 10*time.Second, rowJS("iris-grid"))

		// The skip link comes first and moves the focus to the content, keeping the
		// route.
		eval[bool](b, `(document.querySelector("h1 a").focus(), true)`)
		b.press(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift))
		if got := eval[string](b, focusJS); !strings.HasPrefix(got, "a.skip") {
			t.Fatalf("got the focus on %s before the page's first link, want the skip link", got)
		}
		b.press(kb.Enter)
		b.waitFor("focus on the content", 10*time.Second, `document.activeElement === byId("main")`)
		if h := hash(); h != "#/?q=iris" {
			t.Fatalf("got fragment %q after the skip link, want the route kept", h)
		}

		// Filters: a select changes with the arrow keys, the search box applies on
		// Enter.
		b.tabTo("type filter", `e.id === "f-type"`, 5)
		b.press(kb.ArrowDown)
		waitHash("type filter applied", "#/?type=training&q=iris")
		b.press(kb.ArrowUp)
		waitHash("type filter cleared", "#/?q=iris")
		b.tabTo("search box", `e.id === "f-q"`, 5)
		b.press("iris-grid" + kb.Enter) // Tab selected the box's text: this replaces it
		waitHash("search applied", "#/?q=iris-grid")

		// A sort header sorts on Enter, and turns the order around on a second one.
		nameSort := `document.querySelector("button.sort[data-sort=name]").parentElement` +
			`.getAttribute("aria-sort")`
		b.tabTo("name header", `e.matches("button.sort[data-sort=name]")`, 10)
		b.press(kb.Enter)
		waitHash("sorted by name", "#/?q=iris-grid&sort=name")
		b.waitFor("aria-sort ascending", 10*time.Second, nameSort+` === "ascending"`)
		b.press(kb.Enter)
		waitHash("sorted by name, descending", "#/?q=iris-grid&sort=-name")
		b.waitFor("aria-sort descending", 10*time.Second, nameSort+` === "descending"`)

		// The expander of the tuning task hides and shows its trials.
		row := `#task-rows tr[data-key='` + tune.TaskID + `']`
		toggle := `document.querySelector("` + row + ` button.toggle")`
		trials := `document.querySelectorAll("#task-rows tr.child[data-kind=task]").length`
		b.tabTo("trials expander", `e.matches("`+row+` button.toggle")`, 20)
		open := eval[string](b, toggle+`.getAttribute("aria-expanded")`) == "true"
		for range 2 {
			b.press(kb.Enter)
			open = !open
			want := "0"
			if open {
				want = "8"
			}
			b.waitFor(fmt.Sprintf("trials shown: %v", open), 10*time.Second,
				toggle+`.getAttribute("aria-expanded") === "`+fmt.Sprint(open)+`" && `+
					trials+` === `+want)
		}

		// A row's link opens its task; the back link returns to the list as it was.
		b.tabTo("row link of iris-grid", `e.matches("`+row+` a.name")`, 20)
		b.press(kb.Enter)
		waitHash("task page of iris-grid", "#/task/"+tune.TaskID)
		b.waitFor("iris-grid shown", 10*time.Second,
			`byId("task-name").textContent === "iris-grid"`)
		b.tabTo("back link", `e.id === "back-link"`, 5)
		b.press(kb.Enter)
		waitHash("back on the list", "#/?q=iris-grid&sort=-name")
		b.waitFor("the list again", 10*time.Second, rowJS("iris-grid"))
		b.noReload()
		b.checkClean()
	})

	t.Run("the open task comes back live after a dashboard restart", func(t *testing.T) {
		b := b.on(t)
		const id = "restart-job"
		job := start(t, "jobber", s.jobEnv(), "--steps", "3000", "--every", "20ms",
			"--name", id, "--task-id", id)
		b.route("#/task/" + id)
		points := `Number(document.querySelector("#charts .chart[data-metric=loss]")` +
			`?.dataset.points || 0)`
		step := `Number(document.querySelector("#task-summary .step").textContent` +
			`.split(" / ")[0]) || 0`
		b.waitFor("the running job's chart", 30*time.Second, points+" >= 20")

		s.dashboard.stop(t)
		b.waitFor("offline status", 10*time.Second, `!document.querySelector("#ready.live")`)
		s.startDashboard()
		b.waitFor("live again", 30*time.Second,
			`document.querySelector("#ready.live") && live.connected`)
		if job.exited() {
			t.Fatal("the job ended before the page was back; the test proves nothing")
		}

		// Still the same task, and it moves on: new points and steps arrive live.
		back, backStep := eval[int](b, points), eval[int](b, step)
		b.waitFor("the chart grows after the restart", 30*time.Second,
			fmt.Sprintf("%s > %d + 20 && %s > %d", points, back, step, backStep))
		if h := eval[string](b, "location.hash"); h != "#/task/"+id {
			t.Errorf("got fragment %q after the restart, want the open task kept", h)
		}
		if name := eval[string](b, `byId("task-name").textContent`); name != id {
			t.Errorf("got task %q on the page, want %s", name, id)
		}
		job.stop(t)
		b.waitFor("cancelled live", 30*time.Second,
			`byId("task-badge").textContent === "CANCELLED"`)
		b.noReload()
		b.checkClean()
	})

	t.Run("the list comes back live with its filter after a dashboard restart", func(t *testing.T) {
		b := b.on(t)
		b.route("#/?type=training")
		b.waitFor("filtered list", 10*time.Second, rowJS("live-job"))

		begin := time.Now()
		s.dashboard.stop(t)
		if d := time.Since(begin); d > 3*time.Second {
			t.Errorf("dashboard took %s to stop with a page open, want it prompt", d)
		}
		b.waitFor("offline status", 10*time.Second, `!document.querySelector("#ready.live")`)
		s.startDashboard()
		s.runJobs([]string{"jobber", "--name", "after-restart", "--steps", "20"})
		b.waitFor("job run after the restart", 30*time.Second, rowJS("after-restart"))
		b.waitFor("live again", 10*time.Second,
			`document.querySelector("#ready.live") && live.connected`)
		if h := eval[string](b, "location.hash"); h != "#/?type=training" {
			t.Errorf("got fragment %q after the restart, want the filter kept", h)
		}
		b.noReload()
		b.checkClean()
	})
}
