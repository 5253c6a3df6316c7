package projection

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"sort"

	"github.com/miniray/miniray/pkg/events"
)

// history keeps every event of a task in one byte slice, in the order (timestamp,
// event id), rather than as entries with allocations of their own, which cost about
// 250 bytes an event and made most of a dashboard's memory. Each entry is laid out as
//
//	timestamp  8 bytes, the float64's bits, little-endian
//	type       1 byte, its place in events.Types (typeOther: its name follows,
//	           uvarint length and bytes)
//	event id   uvarint length and bytes
//	form       1 byte: formRaw or formCompact
//	data       uvarint length and bytes
//
// The data is kept in its compact form (see compact.go) when that gives back the
// exact JSON it arrived as, which is what every producer built on pkg/events sends,
// and as that JSON otherwise. Nothing is dropped: every event can be read back, with
// its data byte for byte. The rest of the fold refers to entries by their offset in
// the slice.
type history struct {
	log  []byte
	last uint32 // offset of the last entry
	n    uint32 // number of entries
	// index holds the offsets, plus one, of the entries by a hash of their event
	// id, once there are more than seenLimit of them: an exact set of the ids seen,
	// checked against the ids in the log, at a few bytes an entry.
	index []uint32
	// marks are the offsets of some entries, in log order: where the search for the
	// place of an event that arrived out of order starts, so that it reads a few
	// dozen entries rather than the whole log. Appends mark every markEvery-th
	// entry; an insertion that had to read many entries marks the new one.
	marks []uint32
}

// markEvery is how many entries an append goes between two marks.
const markEvery = 64

// noRef is the offset of no entry.
const noRef = ^uint32(0)

// Forms of an entry's data.
const (
	formRaw     = 0
	formCompact = 1
)

// typeOther marks an event type that is not in events.Types.
const typeOther = 0xff

// seenLimit is the history length past which duplicate checks use the index instead
// of a scan; most tasks have a handful of events and should not pay for an index.
const seenLimit = 32

// idSeed hashes event ids for the index; any seed will do within one process.
var idSeed = maphash.MakeSeed()

// entryView is one entry read from the log. Its slices point into the log and are
// valid until the log changes.
type entryView struct {
	ts   float64
	et   events.Type
	id   []byte
	form byte
	data []byte
	next uint32 // offset of the entry after it
}

// at reads the entry at off.
func (h *history) at(off uint32) entryView {
	b := h.log[off:]
	v := entryView{ts: math.Float64frombits(binary.LittleEndian.Uint64(b))}
	i := 8
	if t := b[i]; t != typeOther {
		v.et = events.Types[t]
		i++
	} else {
		n, w := binary.Uvarint(b[i+1:])
		i += 1 + w
		v.et = events.Type(b[i : i+int(n)])
		i += int(n)
	}
	n, w := binary.Uvarint(b[i:])
	i += w
	v.id = b[i : i+int(n) : i+int(n)]
	i += int(n)
	v.form = b[i]
	i++
	n, w = binary.Uvarint(b[i:])
	i += w
	v.data = b[i : i+int(n) : i+int(n)]
	v.next = off + uint32(i) + uint32(n)
	return v
}

// tsAt and idAt read one field of the entry at off.
func (h *history) tsAt(off uint32) float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(h.log[off:]))
}

func (h *history) idAt(off uint32) []byte {
	return h.at(off).id
}

// each calls f with the offset and the contents of every entry, in order.
func (h *history) each(f func(off uint32, e *entryView)) {
	var e entryView // one for all: passed to f, it lives on the heap
	for off := uint32(0); off < uint32(len(h.log)); {
		e = h.at(off)
		f(off, &e)
		off = e.next
	}
}

// after reports whether the event (ts, id) comes after the entry at off in the order
// (timestamp, event id).
func (h *history) after(ts float64, id string, off uint32) bool {
	if off == noRef {
		return true
	}
	ets := h.tsAt(off)
	return ts > ets || ts == ets && id > string(h.idAt(off))
}

// before reports whether the entry at a comes before the entry at b.
func (h *history) before(a, b uint32) bool {
	ta, tb := h.tsAt(a), h.tsAt(b)
	return ta < tb || ta == tb && bytes.Compare(h.idAt(a), h.idAt(b)) < 0
}

// has reports whether an entry has the event id.
func (h *history) has(id string) bool {
	if h.index == nil {
		for off := uint32(0); off < uint32(len(h.log)); {
			e := h.at(off)
			if string(e.id) == id {
				return true
			}
			off = e.next
		}
		return false
	}
	mask := uint64(len(h.index) - 1)
	for i := maphash.String(idSeed, id) & mask; ; i = (i + 1) & mask {
		ref := h.index[i]
		if ref == 0 {
			return false
		}
		if string(h.idAt(ref-1)) == id {
			return true
		}
	}
}

// add puts an event into the log in its place and returns its offset and the
// number of bytes inserted before the end, which moved every entry at or after the
// offset by that much. Events nearly always arrive in order, so the common case is
// an append.
func (h *history) add(ts float64, et events.Type, id string, form byte,
	data []byte) (uint32, uint32) {
	size := 8 + 1 + binary.MaxVarintLen64 + len(id) + 1 + binary.MaxVarintLen64 + len(data)
	if i := slices.Index(events.Types, et); i < 0 {
		size += binary.MaxVarintLen64 + len(et)
	}
	at, read := uint32(len(h.log)), 0
	if h.n > 0 && !h.after(ts, id, h.last) {
		at, read = h.position(ts, id)
	}

	h.grow(size)
	end := len(h.log)
	h.log = appendEntry(h.log, ts, et, id, form, data)
	h.n++
	n := uint32(len(h.log) - end)
	if at == uint32(end) {
		h.last = at
		if h.n%markEvery == 0 {
			h.marks = append(h.marks, at)
		}
		h.indexAdd(at)
		return at, 0
	}

	// Out of order: move the new entry from the end to its place, and every entry,
	// mark and index slot at or after it by its size.
	entry := bytes.Clone(h.log[end:])
	copy(h.log[at+n:], h.log[at:end])
	copy(h.log[at:], entry)
	h.last += n
	for i, m := range h.marks {
		if m >= at {
			h.marks[i] = m + n
		}
	}
	if read > markEvery {
		i, _ := slices.BinarySearch(h.marks, at)
		h.marks = slices.Insert(h.marks, i, at)
	}
	for i, ref := range h.index {
		if ref != 0 && ref-1 >= at {
			h.index[i] = ref + n
		}
	}
	h.indexAdd(at)
	return at, n
}

// position returns the offset of the first entry that comes after (ts, id), and how
// many entries it read to find it. It starts from the last mark before the place.
func (h *history) position(ts float64, id string) (uint32, int) {
	i := sort.Search(len(h.marks), func(i int) bool { return !h.after(ts, id, h.marks[i]) })
	off := uint32(0)
	if i > 0 {
		off = h.marks[i-1]
	}
	read := 0
	for off < uint32(len(h.log)) {
		e := h.at(off)
		read++
		if e.ts > ts || e.ts == ts && string(e.id) > id {
			return off, read
		}
		off = e.next
	}
	return uint32(len(h.log)), read
}

// grow makes room for n more bytes. Past a few kilobytes the log grows by a quarter
// at a time rather than doubling: a long training run's history is most of its
// task's memory, and half of it empty would be a waste.
func (h *history) grow(n int) {
	if cap(h.log)-len(h.log) >= n {
		return
	}
	if cap(h.log) == 0 {
		// Room for the ten or so events of a typical task at once, rather than
		// growing through every size below it; a finished task gives back what it
		// did not use (see trim).
		h.log = make([]byte, 0, max(n, 640))
		return
	}
	if len(h.log) < 4<<10 {
		h.log = slices.Grow(h.log, n)
		return
	}
	grown := make([]byte, len(h.log), len(h.log)+max(n, len(h.log)/4))
	copy(grown, h.log)
	h.log = grown
}

// trim gives back the room reserved for more entries: most tasks get few events
// after their end.
func (h *history) trim() {
	if cap(h.log)-len(h.log) > 64 {
		h.log = slices.Clip(bytes.Clone(h.log))
	}
}

func appendEntry(b []byte, ts float64, et events.Type, id string, form byte,
	data []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ts))
	if i := slices.Index(events.Types, et); i >= 0 {
		b = append(b, byte(i))
	} else {
		b = append(b, typeOther)
		b = binary.AppendUvarint(b, uint64(len(et)))
		b = append(b, et...)
	}
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = append(b, form)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// indexAdd puts the entry at off into the index, building the index when the log
// has just passed seenLimit entries and growing it at three quarters full.
func (h *history) indexAdd(off uint32) {
	switch {
	case h.index == nil && h.n > seenLimit, h.index != nil && 4*h.n > 3*uint32(len(h.index)):
		h.reindex()
	case h.index != nil:
		h.indexPut(off)
	}
}

// reindex builds the index again from the log, after entries moved.
func (h *history) reindex() {
	if h.n <= seenLimit {
		h.index = nil
		return
	}
	size := 64
	for 3*size < 4*int(h.n+1) {
		size *= 2
	}
	h.index = make([]uint32, size)
	h.each(func(off uint32, _ *entryView) { h.indexPut(off) })
}

func (h *history) indexPut(off uint32) {
	mask := uint64(len(h.index) - 1)
	i := maphash.Bytes(idSeed, h.idAt(off)) & mask
	for h.index[i] != 0 {
		i = (i + 1) & mask
	}
	h.index[i] = off + 1
}
