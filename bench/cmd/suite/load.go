package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Load is how busy the machine was with work other than the suite's around one
// measurement. On two cores that other engineers' tests share, this is what says
// whether a figure can be trusted.
type Load struct {
	Load1       float64 `json:"load1"`
	OtherBefore float64 `json:"other_cores_before"` // over one second, all idle
	OtherDuring float64 `json:"other_cores_during"` // busy time less the suite's own
	WaitedSec   float64 `json:"waited_s,omitempty"`
	Note        string  `json:"note,omitempty"`
}

// Thresholds of other work, in cores. Before a measurement the machine should be
// nearly idle; a measurement during which others took more than noisyCores is run
// again once, when the retry budget allows, and the quieter run is kept.
const (
	quietCores = 0.25
	noisyCores = 0.35
)

// userHZ is the unit of the CPU times in /proc: Linux reports them in 1/100 s on
// every architecture Go runs on.
const userHZ = 100

// cpuTimes returns the busy and total jiffies of all cores from /proc/stat.
func cpuTimes() (busy, total uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat is empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", sc.Text())
	}
	for i, s := range fields[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total, nil
}

// procJiffies returns the user and system time of a process, 0 if it is gone.
func procJiffies(pid string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return utime + stime
}

// meter measures the CPU that other programs took during a measurement: the
// machine's busy time less the suite's own and that of the programs it runs.
type meter struct {
	start    time.Time
	busy0    uint64
	procs    map[string]uint64 // pid: jiffies at start
	children float64           // jiffies of programs that ran and ended meanwhile
}

// newMeter starts a meter; pids are the suite's programs already running.
func newMeter(pids ...int) *meter {
	busy, _, _ := cpuTimes()
	m := &meter{start: time.Now(), busy0: busy, procs: map[string]uint64{"self": 0}}
	m.procs["self"] = procJiffies("self")
	for _, pid := range pids {
		m.track(pid)
	}
	return m
}

// track adds a program of the suite's that is running now.
func (m *meter) track(pid int) {
	if m == nil {
		return
	}
	id := strconv.Itoa(pid)
	m.procs[id] = procJiffies(id)
}

// child adds the CPU time of a program of the suite's that has ended.
func (m *meter) child(ps *os.ProcessState) {
	if m == nil || ps == nil {
		return
	}
	m.children += (ps.UserTime() + ps.SystemTime()).Seconds() * userHZ
}

// others returns the cores' worth of CPU that other programs took since the start.
// Call it before the suite's programs of the measurement end.
func (m *meter) others() float64 {
	busy, _, err := cpuTimes()
	secs := time.Since(m.start).Seconds()
	if err != nil || secs <= 0 {
		return 0
	}
	ours := m.children
	for id, j0 := range m.procs {
		if j := procJiffies(id); j >= j0 {
			ours += float64(j - j0)
		}
	}
	return max(0, (float64(busy-m.busy0)-ours)/userHZ/secs)
}

// busyCores measures, over d, how many cores' worth of CPU the machine spent. Taken
// while the suite's own programs are idle, it is the load of everything else.
func busyCores(ctx context.Context, d time.Duration) (float64, error) {
	b0, t0, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	if err := sleep(ctx, d); err != nil {
		return 0, err
	}
	b1, t1, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	if t1 == t0 {
		return 0, nil
	}
	return float64(b1-b0) / float64(t1-t0) * float64(runtime.NumCPU()), nil
}

// waitQuiet measures the machine's other work before a measurement and, in a full
// run, waits for it to fall under quietCores, up to the plan's quietWait for one
// measurement and its quietBudget for the whole run. The measurement goes ahead
// either way; its Load says how busy the machine was.
func (s *suite) waitQuiet(ctx context.Context, what string) (Load, error) {
	start := time.Now()
	for {
		busy, err := busyCores(ctx, time.Second)
		if err != nil {
			return Load{}, err
		}
		waited := time.Since(start) - time.Second
		l := Load{Load1: loadAvg()[0], OtherBefore: busy, WaitedSec: waited.Seconds()}
		if busy <= quietCores || s.plan.smoke {
			s.quietBudget -= waited
			return l, nil
		}
		if waited >= s.plan.quietWait || waited >= s.quietBudget {
			s.quietBudget -= waited
			s.logf("   machine busy before %s: %.2f cores of other work, measuring anyway",
				what, busy)
			return l, nil
		}
	}
}

// measured is one measurement that carries its Load; discard releases what a run
// that is not kept holds.
type measured interface {
	load() *Load
	discard()
}

// retried runs a measurement and, in a full run, runs it once more when other
// work took more than noisyCores during it, keeping the quieter of the two. Retries
// share a time budget, so that a busy machine cannot stretch the run much.
func retried[T measured](s *suite, what string, fn func() (T, error)) (T, error) {
	t0 := time.Now()
	first, err := fn()
	if err != nil {
		return first, err
	}
	took := time.Since(t0)
	other := first.load().OtherDuring
	if s.plan.smoke || other <= noisyCores || took > s.retryBudget {
		return first, nil
	}
	s.retryBudget -= took
	s.logf("   %s: %.2f cores of other work during it, measuring again", what, other)
	second, err := fn()
	if err != nil {
		first.discard()
		return second, err
	}
	keep, drop := second, first
	if first.load().OtherDuring < second.load().OtherDuring {
		keep, drop = first, second
	}
	drop.discard()
	keep.load().Note = fmt.Sprintf("measured twice; the other run had %.2f cores of other"+
		" work", drop.load().OtherDuring)
	return keep, nil
}
