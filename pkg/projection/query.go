package projection

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
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

func (q *Query) match(t *task, name string) bool {
	return (q.Type == "" || t.tt == q.Type) &&
		(q.Status == "" || t.status == q.Status) &&
		(q.ParentID == "" || t.parent == q.ParentID) &&
		(name == "" || strings.Contains(strings.ToLower(t.name), name))
}

// List returns the page of tasks that q selects, without their histories.
func (p *Projection) List(q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	total, tasks := p.selectPage(&q)
	page := Page{Total: total, Offset: q.Offset, Limit: q.Limit, Tasks: make([]Task, len(tasks))}
	for i, t := range tasks {
		page.Tasks[i] = t.view()
	}
	return page, nil
}

// ListJSON returns the page of tasks that q selects as JSON, the same bytes that
// encoding/json makes of the [Page] that [Projection.List] returns. The bytes may be
// shared with other callers and must not be changed.
func (p *Projection) ListJSON(q Query) ([]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	q.Name = strings.ToLower(q.Name)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if b := p.cachedPage(q); b != nil {
		return b, nil
	}
	total, tasks := p.selectPage(&q)
	b := make([]byte, 0, 64+1200*len(tasks))
	b = append(b, `{"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, int64(q.Offset), 10)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, int64(q.Limit), 10)
	b = append(b, `,"tasks":[`...)
	for i, t := range tasks {
		if i > 0 {
			b = append(b, ',')
		}
		b = t.appendJSON(b, 0)
	}
	b = append(b, "]}"...)
	p.cachePage(q, b)
	return b, nil
}

// selectPage returns how many tasks q selects and the page of them it asks for. The
// caller holds the read lock.
func (p *Projection) selectPage(q *Query) (int, []*task) {
	name := strings.ToLower(q.Name)
	if q.ParentID != "" {
		// The trials of one task: few enough to sort for each request.
		var matched []*task
		for _, t := range p.children[q.ParentID] {
			if q.match(t, name) {
				matched = append(matched, t)
			}
		}
		slices.SortFunc(matched, compareBy(q.Sort))
		if q.Offset >= len(matched) {
			return len(matched), nil
		}
		return len(matched), matched[q.Offset:min(len(matched), q.Offset+q.Limit)]
	}

	sorted := p.sortedBy(strings.TrimPrefix(q.Sort, "-"))
	tt, st := int8(-1), int8(-1)
	if q.Type != "" {
		tt = typeIndex(q.Type)
	}
	if q.Status != "" {
		st = statusIndex(q.Status)
	}
	// Without a name to look for, the counts give the total and the walk stops at
	// the end of the page.
	total, counted := 0, name == ""
	if counted {
		total = p.countOf(tt, st)
	}
	var page []*task
	seen, skip := 0, 0
	if tt < 0 && st < 0 && name == "" {
		seen, skip = q.Offset, q.Offset // every row matches: go straight to the page
	}
	for r := range sorted.from(strings.HasPrefix(q.Sort, "-"), skip) {
		if tt >= 0 && r.tt != tt || st >= 0 && r.st != st ||
			name != "" && !strings.Contains(r.lower, name) {
			continue
		}
		if seen >= q.Offset && len(page) < q.Limit {
			page = append(page, r.t)
		}
		seen++
		if counted && len(page) == q.Limit {
			break
		}
	}
	if !counted {
		total = seen
	}
	return total, page
}

// compareBy returns the order of a sort key; ties fall back to the task id so that
// paging is stable.
func compareBy(key string) func(a, b *task) int {
	desc := strings.HasPrefix(key, "-")
	var by func(a, b *task) int
	switch strings.TrimPrefix(key, "-") {
	case "created_at":
		by = func(a, b *task) int { return cmp.Compare(a.created, b.created) }
	case "updated_at":
		by = func(a, b *task) int { return cmp.Compare(a.updated, b.updated) }
	case "name":
		by = func(a, b *task) int { return strings.Compare(a.name, b.name) }
	case "status":
		by = func(a, b *task) int { return strings.Compare(string(a.status), string(b.status)) }
	case "duration":
		by = func(a, b *task) int { return cmp.Compare(a.duration(), b.duration()) }
	}
	return func(a, b *task) int {
		c := by(a, b)
		if c == 0 {
			c = strings.Compare(a.id, b.id)
		}
		if desc {
			return -c
		}
		return c
	}
}
