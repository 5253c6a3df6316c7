package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where and when the figures were taken.
type Machine struct {
	Date        string     `json:"date"`
	Commit      string     `json:"commit"`
	GoVersion   string     `json:"go_version"`
	OS          string     `json:"os"`
	Kernel      string     `json:"kernel"`
	CPU         string     `json:"cpu"`
	NProc       int        `json:"nproc"`
	MemoryBytes uint64     `json:"memory_bytes"`
	LoadAvg     [3]float64 `json:"load_avg_at_start"`
	NATSCLI     string     `json:"natscli"`
	WRK         string     `json:"wrk"`
}

func (s *suite) machine(ctx context.Context) Machine {
	m := Machine{
		Date:      time.Now().UTC().Format(time.RFC3339),
		Commit:    gitCommit(ctx, s.opts.repo),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		NProc:     runtime.NumCPU(),
		LoadAvg:   loadAvg(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseUint(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"),
		" kB"), 10, 64); err == nil {
		m.MemoryBytes = kb << 10
	}
	m.NATSCLI = firstLine(ctx, s.opts.nats, "--version")
	m.WRK = firstLine(ctx, s.opts.wrk, "--version")
	return m
}

// gitCommit returns the commit of the work tree, with "+dirty" when tracked files
// have changes: the figures are then of code that no commit holds.
func gitCommit(ctx context.Context, repo string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short=12",
		"HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", repo, "status", "--porcelain",
		"--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(status))) > 0 {
		commit += "+dirty"
	}
	return commit
}

func firstLine(ctx context.Context, bin string, args ...string) string {
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}
