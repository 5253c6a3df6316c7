package projection

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/miniray/miniray/pkg/events"
)

// Paging limits of [Query].
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Sort keys accepted by [Query]; a leading '-' sorts descending.
var SortKeys = []string{"created_at", "updated_at", "name", "status", "duration"}

// Query selects and orders tasks. Filters apply before paging, and the page always
// says how many tasks matched in all.
type Query struct {
	Type     events.TaskType
	Status   Status
	ParentID string
	// Name keeps tasks whose name contains it, case-insensitively.
	Name   string
	Sort   string
	Limit  int
	Offset int
}

// Page is one page of a query's result.
type Page struct {
	Total  int    `json:"total"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
	Tasks  []Task `json:"tasks"`
}

// Validate checks a query and fills in defaults. Its errors name the parameter.
func (q *Query) Validate() error {
	if q.Type != "" && !q.Type.Valid() {
		return fmt.Errorf("type: unknown task type %q", q.Type)
	}
	if q.Status != "" && !q.Status.Valid() {
		return fmt.Errorf("status: unknown status %q", q.Status)
	}
	if q.ParentID != "" {
		if err := events.ValidateTaskID(q.ParentID); err != nil {
			return fmt.Errorf("parent_id: %w", err)
		}
	}
	if q.Sort == "" {
		q.Sort = "-created_at"
	}
	if !slices.Contains(SortKeys, strings.TrimPrefix(q.Sort, "-")) {
		return fmt.Errorf("sort: unknown key %q, want one of %v (with '-' for descending)",
			q.Sort, SortKeys)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return fmt.Errorf("limit: %d is not between 1 and %d", q.Limit, MaxLimit)
	}
	if q.Offset < 0 {
		return fmt.Errorf("offset: %d is negative", q.Offset)
	}
	return nil
}

func (q *Query) match(t *Task, name string) bool {
	return (q.Type == "" || t.Type == q.Type) &&
		(q.Status == "" || t.Status == q.Status) &&
		(q.ParentID == "" || t.ParentID == q.ParentID) &&
		(name == "" || strings.Contains(strings.ToLower(t.Name), name))
}

// List returns the page of tasks that q selects, without their histories.
func (p *Projection) List(q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	name := strings.ToLower(q.Name)

	p.mu.RLock()
	defer p.mu.RUnlock()
	matched := make([]*Task, 0, 64)
	for _, t := range p.order {
		if q.match(t, name) {
			matched = append(matched, t)
		}
	}
	slices.SortStableFunc(matched, compareBy(q.Sort))

	page := Page{Total: len(matched), Offset: q.Offset, Limit: q.Limit, Tasks: []Task{}}
	if q.Offset < len(matched) {
		end := min(len(matched), q.Offset+q.Limit)
		page.Tasks = make([]Task, 0, end-q.Offset)
		for _, t := range matched[q.Offset:end] {
			page.Tasks = append(page.Tasks, t.summary())
		}
	}
	return page, nil
}

// compareBy returns the order of a sort key; ties fall back to the task id so that
// paging is stable.
func compareBy(key string) func(a, b *Task) int {
	desc := strings.HasPrefix(key, "-")
	var by func(a, b *Task) int
	switch strings.TrimPrefix(key, "-") {
	case "created_at":
		by = func(a, b *Task) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) }
	case "updated_at":
		by = func(a, b *Task) int { return cmp.Compare(a.UpdatedAt, b.UpdatedAt) }
	case "name":
		by = func(a, b *Task) int { return strings.Compare(a.Name, b.Name) }
	case "status":
		by = func(a, b *Task) int { return strings.Compare(string(a.Status), string(b.Status)) }
	case "duration":
		by = func(a, b *Task) int { return cmp.Compare(a.Duration, b.Duration) }
	}
	return func(a, b *Task) int {
		c := by(a, b)
		if c == 0 {
			c = strings.Compare(a.TaskID, b.TaskID)
		}
		if desc {
			return -c
		}
		return c
	}
}
