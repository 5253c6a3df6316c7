package main

import "time"

// plan is how much each benchmark does. The full plan is sized to finish within
// budget on a 2-core machine; the smoke plan runs every step on about 20,000 events,
// enough to show that each works, not how fast.
type plan struct {
	smoke bool

	// pubEvents is the count of nats bench js pub async and of the ingest job.
	pubEvents int
	// reps repeats the cheap measurements (publishing, the ordered consumer); the
	// report keeps every run and compares medians.
	reps int

	jobCalls  int    // Progress calls timed back to back
	jobPaced  int    // Progress calls timed with a pause between them
	benchtime string // -benchtime of BenchmarkProgress

	replayTasks int   // tasks of the large replay; events are ten times as many
	coldStarts  int   // dashboard cold starts over the large replay
	scaleTasks  []int // smaller replays for the scaling row, besides replayTasks

	apiDuration time.Duration // wrk run per endpoint
	conns       int
	threads     int
	statsEvery  time.Duration // /api/stats sampling during a replay

	// quietWait is the longest wait for other work to calm down before one
	// measurement, quietBudget the longest in all; retryBudget is the time for
	// measuring again what other work disturbed. They keep a full run on a busy
	// machine near its budget.
	quietWait   time.Duration
	quietBudget time.Duration
	retryBudget time.Duration
	budget      time.Duration
}

func newPlan(smoke bool) plan {
	if smoke {
		return plan{
			smoke:       true,
			pubEvents:   20_000,
			reps:        1,
			jobCalls:    20_000,
			jobPaced:    2_000,
			benchtime:   "20000x",
			replayTasks: 2_000,
			coldStarts:  1,
			scaleTasks:  []int{500, 1_000},
			apiDuration: 2 * time.Second,
			conns:       64,
			threads:     2,
			statsEvery:  20 * time.Millisecond,
			budget:      2 * time.Minute,
		}
	}
	return plan{
		pubEvents:   500_000,
		reps:        3,
		jobCalls:    300_000,
		jobPaced:    20_000,
		benchtime:   "1s",
		replayTasks: 100_000,
		coldStarts:  2,
		scaleTasks:  []int{10_000, 30_000},
		apiDuration: 10 * time.Second,
		conns:       64,
		threads:     2,
		statsEvery:  250 * time.Millisecond,
		quietWait:   20 * time.Second,
		quietBudget: 60 * time.Second,
		retryBudget: 90 * time.Second,
		budget:      10 * time.Minute,
	}
}
