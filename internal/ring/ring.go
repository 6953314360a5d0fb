// Package ring holds the bounded lock-free queue of preallocated values
// that carries events off the packet path: the verdict log's writer and
// the live analysis of --metrics each drain one. It needs no privileges.
package ring

import "sync/atomic"

// Ring is a bounded lock-free queue of preallocated slots after Dmitry
// Vyukov's bounded MPMC queue, used with one consumer. Producers reserve a
// position with a CAS, fill the slot's Value in place and publish it; the
// consumer reads published slots in position order and hands them back.
// Nothing is allocated after New.
//
// Each slot's seq says whose turn it is: seq == pos means the slot is free
// for the producer of position pos, seq == pos+1 means position pos is
// filled and waits for the consumer, who sets seq = pos+len(slots) when done.
type Ring[T any] struct {
	enq   atomic.Uint64 // next position a producer reserves
	_     [56]byte      // keep the producers' counter off the consumer's line
	deq   atomic.Uint64 // next position the consumer reads; only it stores
	slots []Slot[T]
}

// Slot is one cell of a Ring.
type Slot[T any] struct {
	seq atomic.Uint64
	// Value is what a producer fills between Reserve and Publish and the
	// consumer reads between Peek and Release.
	Value T
}

// New returns a ring of n slots.
func New[T any](n int) *Ring[T] {
	r := &Ring[T]{slots: make([]Slot[T], n)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Len returns the number of slots.
func (r *Ring[T]) Len() int { return len(r.slots) }

// At returns slot i's value, for setting up what the slots keep across
// uses (buffers) before the ring is in use.
func (r *Ring[T]) At(i int) *T { return &r.slots[i].Value }

// Reserve returns a free slot for the caller to fill and then publish, and
// its position; nil when every slot is in use.
func (r *Ring[T]) Reserve() (*Slot[T], uint64) {
	n := uint64(len(r.slots))
	pos := r.enq.Load()
	for {
		s := &r.slots[pos%n]
		switch d := int64(s.seq.Load() - pos); {
		case d == 0:
			if r.enq.CompareAndSwap(pos, pos+1) {
				return s, pos
			}
			pos = r.enq.Load()
		case d < 0:
			// The slot still holds position pos-n: the ring is full.
			return nil, 0
		default:
			// Another producer took pos; try the next one.
			pos = r.enq.Load()
		}
	}
}

// Publish hands a filled slot reserved at pos to the consumer.
func (s *Slot[T]) Publish(pos uint64) { s.seq.Store(pos + 1) }

// Peek returns the next filled slot for the consumer, nil when the next
// position is not published yet (or not reserved at all).
func (r *Ring[T]) Peek() *Slot[T] {
	deq := r.deq.Load()
	s := &r.slots[deq%uint64(len(r.slots))]
	if s.seq.Load() != deq+1 {
		return nil
	}
	return s
}

// Release gives the slot returned by Peek back to the producers.
func (r *Ring[T]) Release(s *Slot[T]) {
	deq := r.deq.Load()
	s.seq.Store(deq + uint64(len(r.slots)))
	r.deq.Store(deq + 1)
}

// Pending returns how many positions are reserved but not yet released.
func (r *Ring[T]) Pending() uint64 { return r.enq.Load() - r.deq.Load() }

// Reserved returns how many positions producers have reserved since New:
// the position the next Reserve takes.
func (r *Ring[T]) Reserved() uint64 { return r.enq.Load() }

// Released returns how many positions the consumer has handed back since
// New: the position the next Peek reads.
func (r *Ring[T]) Released() uint64 { return r.deq.Load() }
