package tests

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfile is what the compose checks need to know of the Dockerfile: its
// global build args and, per stage, the base, the environment, the files copied
// in, the entrypoint and the commands run.
type dockerfile struct {
	args   map[string]string
	stages map[string]*dockerStage
	order  []string
}

type dockerStage struct {
	name, base string
	env        map[string]string
	files      []string // paths that COPY creates
	copyFrom   []string // sources copied from the build stage, such as /out/bin/train
	entrypoint []string
	cmd        []string
	runs       []string
}

// readDockerfile parses the instructions this project's Dockerfile uses. It is no
// general parser: BuildKit's own is a large dependency for a few checks.
func readDockerfile(t *testing.T, file string) *dockerfile {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df := &dockerfile{args: map[string]string{}, stages: map[string]*dockerStage{}}
	var cur *dockerStage
	for _, ins := range dockerInstructions(t, f) {
		word, rest, _ := strings.Cut(ins, " ")
		fields := strings.Fields(rest)
		switch strings.ToUpper(word) {
		case "ARG":
			if cur == nil {
				k, v, _ := strings.Cut(rest, "=")
				df.args[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		case "FROM":
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--") })
			if len(fields) != 3 || !strings.EqualFold(fields[1], "AS") {
				t.Fatalf("Dockerfile: %q: want FROM image AS name", ins)
			}
			cur = &dockerStage{name: fields[2], base: fields[0], env: map[string]string{}}
			df.stages[cur.name] = cur
			df.order = append(df.order, cur.name)
		case "ENV":
			for _, kv := range fields {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: %q: want ENV KEY=value ...", ins)
				}
				cur.env[k] = v
			}
		case "COPY":
			from := ""
			var args []string
			for _, f := range fields {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(f, "--") {
					args = append(args, f)
				}
			}
			dest, srcs := args[len(args)-1], args[:len(args)-1]
			for _, src := range srcs {
				if strings.HasSuffix(dest, "/") {
					cur.files = append(cur.files, dest+path.Base(src))
				} else {
					cur.files = append(cur.files, dest)
				}
				if from == "build" {
					cur.copyFrom = append(cur.copyFrom, src)
				}
			}
		case "ENTRYPOINT":
			cur.entrypoint = jsonArray(t, ins, rest)
		case "CMD":
			cur.cmd = jsonArray(t, ins, rest)
		case "RUN":
			cur.runs = append(cur.runs, rest)
		}
	}
	return df
}

// dockerInstructions returns the instructions of a Dockerfile, continuation lines
// joined and comments left out.
func dockerInstructions(t *testing.T, f *os.File) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		body, more := strings.CutSuffix(line, "\\")
		cur.WriteString(body)
		cur.WriteString(" ")
		if !more {
			out = append(out, strings.Join(strings.Fields(cur.String()), " "))
			cur.Reset()
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonArray(t *testing.T, ins, s string) []string {
	t.Helper()
	var a []string
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatalf("Dockerfile: %q: want the exec form, a JSON array: %v", ins, err)
	}
	return a
}

func (df *dockerfile) names() []string { return df.order }

// lineage returns a stage and the stages it is built on, nearest first.
func (df *dockerfile) lineage(stage string) []*dockerStage {
	var out []*dockerStage
	for s := df.stages[stage]; s != nil; s = df.stages[s.base] {
		out = append(out, s)
	}
	return out
}

// env returns the environment a stage's image starts its program with.
func (df *dockerfile) env(stage string) map[string]string {
	env := map[string]string{}
	l := df.lineage(stage)
	for i := len(l) - 1; i >= 0; i-- {
		maps.Copy(env, l[i].env)
	}
	return env
}

// has reports whether a stage's image holds a file copied in by the Dockerfile.
func (df *dockerfile) has(stage, file string) bool {
	for _, s := range df.lineage(stage) {
		if slices.Contains(s.files, file) {
			return true
		}
	}
	return false
}

// program returns the name of the program a service of a stage runs: the command
// given, else the stage's entrypoint, else its CMD.
func (df *dockerfile) program(stage string, command []string) string {
	run := command
	for _, s := range df.lineage(stage) {
		if len(run) == 0 {
			run = s.entrypoint
		}
		if len(run) == 0 {
			run = s.cmd
		}
	}
	if len(run) == 0 {
		return ""
	}
	return path.Base(run[0])
}

// checkDockerfile checks the build stage against the module: the Go version, the
// packages built and the binaries the images copy.
func checkDockerfile(t *testing.T, root string, df *dockerfile) {
	t.Helper()
	goMinor := goModMatch(t, root, `^go (\d+\.\d+)(\.\d+)?$`)
	if v := df.args["GO_VERSION"]; v != goMinor {
		t.Errorf("Dockerfile: GO_VERSION %q, want %s as in go.mod", v, goMinor)
	}
	build := df.stages["build"]
	if build == nil || !strings.HasPrefix(build.base, "golang:") {
		t.Fatalf("Dockerfile: no build stage on a golang image (stages %v)", df.names())
	}

	var built []string
	var outDir string
	for _, r := range build.runs {
		if !strings.Contains(r, "go build") {
			continue
		}
		if !strings.Contains(r, "CGO_ENABLED=0") {
			t.Errorf("Dockerfile: %q does not build static binaries (CGO_ENABLED=0)", r)
		}
		if m := regexp.MustCompile(`-o (\S+/)`).FindStringSubmatch(r); m != nil {
			outDir = m[1]
		}
		for _, f := range strings.Fields(r) {
			if pkg, ok := strings.CutPrefix(f, "./"); ok {
				checkMainPackage(t, root, pkg)
				built = append(built, path.Base(pkg))
			}
		}
	}
	if outDir == "" || len(built) == 0 {
		t.Fatal("Dockerfile: the build stage has no go build -o DIR/ ./pkg...")
	}
	for _, name := range df.order {
		for _, src := range df.stages[name].copyFrom {
			bin, ok := strings.CutPrefix(src, outDir)
			if ok && !slices.Contains(built, bin) {
				t.Errorf("Dockerfile: stage %s copies %s, which go build does not make (%v)",
					name, src, built)
			}
		}
	}
	for _, target := range []string{"collector", "dashboard", "jobs"} {
		if df.stages[target] == nil {
			t.Errorf("Dockerfile: no target %s", target)
		}
	}
}

// checkMainPackage checks that a directory of the module holds a main package.
func checkMainPackage(t *testing.T, root, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err == nil && regexp.MustCompile(`(?m)^package main$`).Match(raw) {
			return
		}
	}
	t.Errorf("Dockerfile builds ./%s, which is not a main package", dir)
}
