package projection

import (
	"cmp"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miniray/miniray/pkg/events"
)

// The list index keeps, for each sort key asked for, the tasks in order with their
// key copied beside them, and brings that order up to date on the next request from
// a log of the tasks changed since. Sorting every task for every request instead
// took half a second a page at 100,000 tasks, most of it in comparisons that chased
// a pointer to each task. Counts by type and
// status give the total of a list filtered by those without a scan, and the trials
// of a task are kept by parent.

// listIndex holds the sorted orders and the pages already encoded. Its mutex guards
// both against concurrent readers: they hold the projection's read lock, under which
// the tasks do not change, but the first of them to find an order out of date
// updates it.
type listIndex struct {
	mu     sync.Mutex
	sorted map[string]*sortedTasks // by sort key without the '-'
	// active is set once an order exists; until then changes need no log. read is
	// the furthest position in the change log that any order has read up to.
	active atomic.Bool
	read   atomic.Uint64

	// pages caches encoded pages of the version pagesV: many pages polling the
	// same list, or many users opening the dashboard, get the same bytes.
	pages     map[Query][]byte
	pagesV    uint64
	pageBytes int
}

// Bounds of the page cache: enough for every page that the dashboards in use show,
// and a small part of the memory of 100,000 tasks.
const (
	maxCachedPages     = 256
	maxCachedPageBytes = 16 << 20
)

// sortedTasks is every task in the ascending order of one sort key; the descending
// order is its reverse, since ties are broken by task id and the order is total.
// The rows are cut into blocks of at most maxBlock, so that moving a changed task
// shifts a block, not the whole order.
type sortedTasks struct {
	key    string
	blocks [][]listRow
	upTo   uint64 // position in the change log up to which the rows are current
	// moved marks, by task number, the tasks already moved by one repair.
	moved []uint64
}

const maxBlock = 512

// listRow is a task with what a list compares and filters it by, copied so that a
// walk through the order reads one array instead of a task per row.
type listRow struct {
	t     *task
	id    string
	lower string  // the name in lower case, for searches
	s     string  // the key of a string sort (name, status)
	f     float64 // the key of a number sort
	tt    int8    // typeIndex
	st    int8    // statusIndex
}

func compareRows(a, b *listRow) int {
	if c := cmp.Compare(a.f, b.f); c != 0 {
		return c
	}
	if c := strings.Compare(a.s, b.s); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// listKeys are the values of a task that its rows are sorted and filtered by.
type listKeys struct {
	created, updated, duration float64
	name                       string
	status                     Status
}

func (t *task) listKeys() listKeys {
	return listKeys{t.created, t.updated, t.duration(), t.name, t.status}
}

// change is an entry of the change log: a task and its keys before the change, by
// which an order finds its row.
type change struct {
	t   *task
	old listKeys
	new bool // the task did not exist before: it has no row
}

func (s *sortedTasks) row(t *task, k *listKeys) listRow {
	r := listRow{t: t, id: t.id, lower: strings.ToLower(k.name), tt: typeIndex(t.tt),
		st: statusIndex(k.status)}
	switch s.key {
	case "created_at":
		r.f = k.created
	case "updated_at":
		r.f = k.updated
	case "duration":
		r.f = k.duration
	case "name":
		r.s = k.name
	case "status":
		r.s = string(k.status)
	}
	return r
}

// typeIndex and statusIndex number the task types and statuses for the counts and
// the rows, in the order of events.TaskTypes and Statuses; one the fold never makes
// (Apply is given an event nobody validated) gets the number after the known ones.
func typeIndex(tt events.TaskType) int8 {
	if i := slices.Index(events.TaskTypes, tt); i >= 0 {
		return int8(i)
	}
	return int8(len(events.TaskTypes))
}

func statusIndex(s Status) int8 {
	if i := slices.Index(Statuses, s); i >= 0 {
		return int8(i)
	}
	return int8(len(Statuses))
}

func newCounts() [][]int {
	c := make([][]int, len(events.TaskTypes)+1)
	for i := range c {
		c[i] = make([]int, len(Statuses)+1)
	}
	return c
}

// logChange notes that a task changed, for the sorted orders; old holds its keys
// from before. The caller holds the write lock. The log is dropped when it grows
// past an eighth of the tasks: an order that far behind is sorted again from
// scratch, which is then about as cheap.
func (p *Projection) logChange(t *task, old listKeys, isNew bool) {
	// A task changing again before any order read its last change needs no new
	// entry: its row is where the keys of that change say.
	if n := len(p.changes); n > 0 && p.changes[n-1].t == t &&
		p.list.read.Load() < p.changesBase+uint64(n) {
		return
	}
	if len(p.changes) >= max(4096, len(p.order)/8) {
		p.changesBase += uint64(len(p.changes))
		p.changes = p.changes[:0]
	}
	p.changes = append(p.changes, change{t: t, old: old, new: isNew})
}

// sortedBy returns the tasks in the ascending order of key, brought up to date. The
// caller holds the read lock and must not keep the rows past it.
func (p *Projection) sortedBy(key string) *sortedTasks {
	l := &p.list
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sorted == nil {
		l.sorted = make(map[string]*sortedTasks, len(SortKeys))
	}
	s := l.sorted[key]
	if s == nil {
		s = &sortedTasks{key: key}
		l.sorted[key] = s
		s.rebuild(p)
		l.active.Store(true)
		l.read.Store(max(l.read.Load(), s.upTo))
		return s
	}

	end := p.changesBase + uint64(len(p.changes))
	l.read.Store(max(l.read.Load(), end))
	switch {
	case s.upTo == end:
	case s.upTo < p.changesBase || int(end-s.upTo) > len(p.order)/16:
		s.rebuild(p)
	default:
		s.repair(p.changes[s.upTo-p.changesBase:], len(p.order))
		s.upTo = end
	}
	return s
}

func (s *sortedTasks) rebuild(p *Projection) {
	rows := make([]listRow, len(p.order))
	for i, t := range p.order {
		k := t.listKeys()
		rows[i] = s.row(t, &k)
	}
	slices.SortFunc(rows, func(a, b listRow) int { return compareRows(&a, &b) })
	// Blocks start half full and share the sorted array; their capacity ends where
	// they do, so the first insert into one copies it out before it grows.
	s.blocks = s.blocks[:0]
	for len(rows) > 0 {
		n := min(len(rows), maxBlock/2)
		s.blocks = append(s.blocks, rows[:n:n])
		rows = rows[n:]
	}
	s.upTo = p.changesBase + uint64(len(p.changes))
}

// repair moves each changed task from the row of its keys before the first change
// to the row of its keys now.
func (s *sortedTasks) repair(changes []change, tasks int) {
	if n := (tasks + 63) / 64; len(s.moved) < n {
		s.moved = make([]uint64, n)
	}
	for i := range changes {
		c := &changes[i]
		w, bit := c.t.num/64, uint64(1)<<(c.t.num%64)
		if s.moved[w]&bit != 0 {
			continue
		}
		s.moved[w] |= bit
		if !c.new {
			old := s.row(c.t, &c.old)
			s.remove(&old)
		}
		k := c.t.listKeys()
		r := s.row(c.t, &k)
		s.insert(&r)
	}
	for i := range changes {
		s.moved[changes[i].t.num/64] = 0
	}
}

// block returns the first block whose last row is not before r, or the last block.
func (s *sortedTasks) block(r *listRow) int {
	i, _ := slices.BinarySearchFunc(s.blocks, r, func(b []listRow, r *listRow) int {
		return compareRows(&b[len(b)-1], r)
	})
	return min(i, len(s.blocks)-1)
}

func (s *sortedTasks) remove(r *listRow) {
	if len(s.blocks) == 0 {
		return
	}
	bi := s.block(r)
	b := s.blocks[bi]
	i, found := slices.BinarySearchFunc(b, r, func(a listRow, r *listRow) int {
		return compareRows(&a, r)
	})
	if !found {
		return // cannot happen: the log holds the keys the row was made with
	}
	b = slices.Delete(b, i, i+1)
	if len(b) == 0 {
		s.blocks = slices.Delete(s.blocks, bi, bi+1)
		return
	}
	s.blocks[bi] = b
}

func (s *sortedTasks) insert(r *listRow) {
	if len(s.blocks) == 0 {
		s.blocks = append(s.blocks, append(make([]listRow, 0, maxBlock), *r))
		return
	}
	bi := s.block(r)
	b := s.blocks[bi]
	i, _ := slices.BinarySearchFunc(b, r, func(a listRow, r *listRow) int {
		return compareRows(&a, r)
	})
	b = slices.Insert(b, i, *r)
	if len(b) > maxBlock {
		// Split in two; the halves get arrays of their own, so that the first can
		// grow without writing over the second.
		half := len(b) / 2
		second := append(make([]listRow, 0, maxBlock), b[half:]...)
		b = b[:half]
		s.blocks = slices.Insert(s.blocks, bi+1, second)
	}
	s.blocks[bi] = b
}

// from returns the rows in order, ascending or descending, from the row at place
// skip on: an unfiltered page far down the list skips whole blocks to it.
func (s *sortedTasks) from(desc bool, skip int) iter.Seq[*listRow] {
	return func(yield func(*listRow) bool) {
		for n := range s.blocks {
			bi := n
			if desc {
				bi = len(s.blocks) - 1 - n
			}
			b := s.blocks[bi]
			if skip >= len(b) {
				skip -= len(b)
				continue
			}
			for i := skip; i < len(b); i++ {
				r := &b[i]
				if desc {
					r = &b[len(b)-1-i]
				}
				if !yield(r) {
					return
				}
			}
			skip = 0
		}
	}
}

// cachedPage returns the encoded page of q at the current version, or nil. The
// caller holds the read lock.
func (p *Projection) cachedPage(q Query) []byte {
	l := &p.list
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pagesV != p.version {
		return nil
	}
	return l.pages[q]
}

// cachePage keeps the encoded page of q for the current version. The caller holds
// the read lock.
func (p *Projection) cachePage(q Query, b []byte) {
	l := &p.list
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pagesV != p.version || len(l.pages) >= maxCachedPages ||
		l.pageBytes+len(b) > maxCachedPageBytes {
		clear(l.pages)
		l.pagesV, l.pageBytes = p.version, 0
	}
	if len(b) > maxCachedPageBytes/4 {
		return
	}
	if l.pages == nil {
		l.pages = make(map[Query][]byte)
	}
	l.pages[q] = b
	l.pageBytes += len(b)
}

// setParent moves a task from the children of its previous parent to those of its
// current one. The caller holds the write lock.
func (p *Projection) setParent(t *task, prev string) {
	if prev != "" {
		kids := p.children[prev]
		if i := slices.Index(kids, t); i >= 0 {
			kids[i] = kids[len(kids)-1]
			kids = kids[:len(kids)-1]
		}
		if len(kids) == 0 {
			delete(p.children, prev)
		} else {
			p.children[prev] = kids
		}
	}
	if t.parent != "" {
		p.children[t.parent] = append(p.children[t.parent], t)
	}
}

// count moves a task from the count of its previous status to its current one; an
// empty previous status counts a new task. The caller holds the write lock.
func (p *Projection) count(t *task, prev Status) {
	ti := typeIndex(t.tt)
	if prev != "" {
		p.counts[ti][statusIndex(prev)]--
	}
	p.counts[ti][statusIndex(t.status)]++
}

// countOf returns how many tasks have the type and the status, -1 for any.
func (p *Projection) countOf(tt, st int8) int {
	n := 0
	for ti := range p.counts {
		for si, c := range p.counts[ti] {
			if (tt < 0 || int(tt) == ti) && (st < 0 || int(st) == si) {
				n += c
			}
		}
	}
	return n
}
