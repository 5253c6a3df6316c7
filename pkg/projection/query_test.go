package projection

import (
	"fmt"
	"testing"

	"github.com/miniray/miniray/pkg/events"
)

func TestListFiltersBeforePaging(t *testing.T) {
	p := New(nil)
	seq := uint64(0)
	for i := 0; i < 250; i++ {
		end := events.TaskCompleted
		if i%5 == 0 {
			end = events.TaskFailed
		}
		evs := lifecycle(fmt.Sprintf("t%03d", i), 1, end)
		for j := range evs {
			evs[j].Timestamp += float64(i) * 10
			if i%2 == 1 {
				evs[j].TaskType = events.TypeInference
			}
			seq++
			p.Apply(seq, &evs[j])
		}
	}

	page, err := p.List(Query{Status: Failed, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 50 || len(page.Tasks) != 20 {
		t.Fatalf("failed tasks: got total %d, page %d; want 50, 20", page.Total, len(page.Tasks))
	}
	if page.Tasks[0].TaskID != "t245" {
		t.Fatalf("default sort newest first: got %s first", page.Tasks[0].TaskID)
	}
	for _, task := range page.Tasks {
		if task.History != nil {
			t.Fatal("list carries history")
		}
	}

	seen := map[string]bool{}
	for off := 0; ; off += 40 {
		pg, err := p.List(Query{Type: events.TypeInference, Sort: "name", Limit: 40, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		if pg.Total != 125 {
			t.Fatalf("inference total: got %d, want 125", pg.Total)
		}
		if len(pg.Tasks) == 0 {
			break
		}
		for _, task := range pg.Tasks {
			if seen[task.TaskID] || task.Type != events.TypeInference {
				t.Fatalf("paging: %s seen twice or wrong type %s", task.TaskID, task.Type)
			}
			seen[task.TaskID] = true
		}
	}
	if len(seen) != 125 {
		t.Fatalf("paging visited %d tasks, want 125", len(seen))
	}

	pg, _ := p.List(Query{Name: "JOB T24", ParentID: "parent1"})
	if pg.Total != 10 {
		t.Fatalf("name search: got %d, want 10 (t240..t249)", pg.Total)
	}
}

func TestQueryValidate(t *testing.T) {
	bad := []Query{
		{Type: "robot"}, {Status: "DONE"}, {Sort: "size"}, {Limit: -1}, {Limit: MaxLimit + 1},
		{Offset: -5}, {ParentID: "a.b"},
	}
	for _, q := range bad {
		if err := q.Validate(); err == nil {
			t.Errorf("query %+v accepted", q)
		}
	}
	q := Query{}
	if err := q.Validate(); err != nil || q.Limit != DefaultLimit || q.Sort != "-created_at" {
		t.Fatalf("defaults: got %+v %v", q, err)
	}
}

func TestStats(t *testing.T) {
	p := New(nil)
	seq := uint64(0)
	ends := []events.Type{events.TaskCompleted, events.TaskCompleted, events.TaskCompleted,
		events.TaskFailed, ""}
	for i, end := range ends {
		evs := lifecycle(fmt.Sprintf("s%d", i), i, end)
		for j := range evs {
			seq++
			p.Apply(seq, &evs[j])
		}
	}
	s := p.Stats()
	if s.Total != 5 || s.ByStatus[Completed] != 3 || s.ByStatus[Failed] != 1 ||
		s.ByStatus[Running] != 1 || s.ByType[events.TypeTraining] != 5 {
		t.Fatalf("counts: got %+v", s)
	}
	if s.SuccessRate == nil || *s.SuccessRate != 0.75 {
		t.Fatalf("success rate: got %v, want 0.75", s.SuccessRate)
	}
	if empty := New(nil).Stats(); empty.SuccessRate != nil {
		t.Fatalf("success rate with nothing finished: got %v, want nil", *empty.SuccessRate)
	}
	// Durations are 1+i seconds for the finished tasks i = 0..3.
	if s.Duration.Count != 4 || s.Duration.Mean != 2.5 || s.Duration.P50 != 2 || s.Duration.P95 != 4 {
		t.Fatalf("durations: got %+v", s.Duration)
	}
	if s.EventsApplied != seq {
		t.Fatalf("events applied: got %d, want %d", s.EventsApplied, seq)
	}
}
