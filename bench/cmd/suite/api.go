package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

// The endpoints the API benchmark loads, in the order it loads them. /healthz comes
// first and last: the two runs show how much the machine drifted in between.
var endpoints = []struct {
	name string
	path string
}{
	{"healthz", "/healthz"},
	{"list", "/api/tasks?limit=100"},
	{"filtered", "/api/tasks?status=FAILED&type=training&limit=100"},
	{"task", "/api/tasks/{id}"},
	{"stats", "/api/stats"},
	{"healthz_again", "/healthz"},
}

// api checks that each endpoint answers as it should, then loads each with wrk.
func (s *suite) api(ctx context.Context, c *collector, d *dashboard, r Replay) error {
	ids := r.Fill.IDsFile
	if err := checkAPI(ctx, d.url, ids, r.Tasks); err != nil {
		return d.failure(err)
	}
	for _, ep := range endpoints {
		idsFile := ""
		if ep.name == "task" {
			idsFile = ids
		}
		run, err := retried(s, "API "+ep.name, func() (*APIRun, error) {
			l, err := s.waitQuiet(ctx, ep.name)
			if err != nil {
				return nil, err
			}
			m := newMeter(c.pid(), d.pid())
			run, err := s.wrkRun(ctx, m, ep.name, d.url, ep.path, idsFile, s.plan.apiDuration)
			l.OtherDuring = m.others()
			run.Load = l
			return &run, err
		})
		if err != nil {
			return d.failure(err)
		}
		s.report.API.Runs = append(s.report.API.Runs, *run)
		s.logf("   %-13s %8s req/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms"+
			"  (%.2f cores of other work)", ep.name, count(run.RPS), run.P50Ms, run.P99Ms,
			run.MaxMs, run.Load.OtherDuring)
	}
	s.report.API.Tasks = r.Tasks
	return nil
}

// checkAPI asks each endpoint once and checks its answer: a benchmark of an
// endpoint that answers 400 or an empty page would measure nothing useful.
func checkAPI(ctx context.Context, base, idsFile string, tasks int) error {
	var page struct {
		Total int `json:"total"`
		Tasks []struct {
			TaskID string `json:"task_id"`
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"tasks"`
	}
	if err := getJSON(ctx, base+"/api/tasks?limit=100", &page); err != nil {
		return err
	}
	if page.Total < tasks || len(page.Tasks) != 100 {
		return fmt.Errorf("/api/tasks?limit=100: total %d and %d tasks, want %d and 100",
			page.Total, len(page.Tasks), tasks)
	}
	if err := getJSON(ctx, base+"/api/tasks?status=FAILED&type=training&limit=100", &page); err != nil {
		return err
	}
	if page.Total == 0 || len(page.Tasks) == 0 {
		return fmt.Errorf("the filtered list is empty")
	}
	for _, t := range page.Tasks {
		if t.Status != "FAILED" || t.Type != "training" {
			return fmt.Errorf("the filtered list holds a %s %s task", t.Status, t.Type)
		}
	}

	id, err := firstLineOf(idsFile)
	if err != nil {
		return err
	}
	var task struct {
		TaskID  string            `json:"task_id"`
		History []json.RawMessage `json:"history"`
	}
	if err := getJSON(ctx, base+"/api/tasks/"+id, &task); err != nil {
		return err
	}
	if task.TaskID != id || len(task.History) == 0 {
		return fmt.Errorf("/api/tasks/%s: got task %q with %d history entries", id,
			task.TaskID, len(task.History))
	}
	var stats statsBody
	if err := getJSON(ctx, base+"/api/stats", &stats); err != nil {
		return err
	}
	if stats.Total < tasks || !stats.Ready {
		return fmt.Errorf("/api/stats: total %d, ready %v; want %d, true", stats.Total,
			stats.Ready, tasks)
	}
	return getJSON(ctx, base+"/healthz", &struct{}{})
}

func getJSON(ctx context.Context, url string, v any) error {
	code, body, err := get(ctx, url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: status %d: %.200s", url, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

func firstLineOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return "", fmt.Errorf("%s is empty", path)
	}
	return sc.Text(), nil
}
