package nfq

import "time"

// timedKind says what a timed item does when it falls due.
type timedKind uint8

const (
	timedRelease   timedKind = iota // give a held packet its verdict
	timedDuplicate                  // send a copy of a packet
	timedInject                     // send a crafted segment
)

// timedItem is one action scheduled for a moment. slot indexes the engine's
// slot table; gen must match the slot's generation or the item is stale
// (its packet was released early by key).
type timedItem struct {
	due  time.Time
	seq  uint64 // tie-break: equal due times fire in scheduling order
	kind timedKind
	slot int32
	gen  uint32
}

// timedQueue is a binary min-heap of timed items ordered by (due, seq). It
// is typed (no interface boxing), so pushing and popping allocate nothing
// once its backing array has grown.
type timedQueue struct {
	items []timedItem
	seq   uint64
}

func (q *timedQueue) Len() int { return len(q.items) }

func (q *timedQueue) less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.seq < b.seq
}

// Push schedules it; its seq is assigned here.
func (q *timedQueue) Push(it timedItem) {
	q.seq++
	it.seq = q.seq
	q.items = append(q.items, it)
	i := len(q.items) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			break
		}
		q.items[i], q.items[parent] = q.items[parent], q.items[i]
		i = parent
	}
}

// Peek returns the earliest item; ok is false when the queue is empty.
func (q *timedQueue) Peek() (it timedItem, ok bool) {
	if len(q.items) == 0 {
		return timedItem{}, false
	}
	return q.items[0], true
}

// Pop removes and returns the earliest item.
func (q *timedQueue) Pop() timedItem {
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items = q.items[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && q.less(l, m) {
			m = l
		}
		if r < last && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.items[i], q.items[m] = q.items[m], q.items[i]
		i = m
	}
	return top
}
