package verdictlog

import "sync/atomic"

// ring is a bounded lock-free queue of preallocated slots after Dmitry
// Vyukov's bounded MPMC queue, used with one consumer (the writer
// goroutine). Producers reserve a position with a CAS, fill the slot in
// place and publish it; the consumer reads published slots in position
// order and hands them back. Nothing is allocated after newRing.
//
// Each slot's seq says whose turn it is: seq == pos means the slot is free
// for the producer of position pos, seq == pos+1 means position pos is
// filled and waits for the consumer, who sets seq = pos+len(slots) when done.
type ring struct {
	enq   atomic.Uint64 // next position a producer reserves
	_     [56]byte      // keep the producers' counter off the consumer's line
	deq   atomic.Uint64 // next position the consumer reads; only it stores
	slots []slot
}

// slot is one cell of the ring.
type slot struct {
	seq atomic.Uint64
	rec record
}

func newRing(n int) *ring {
	r := &ring{slots: make([]slot, n)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// reserve returns a free slot for the caller to fill and then publish, and
// its position; nil when every slot is in use.
func (r *ring) reserve() (*slot, uint64) {
	n := uint64(len(r.slots))
	pos := r.enq.Load()
	for {
		s := &r.slots[pos%n]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
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

// publish hands a filled slot reserved at pos to the consumer.
func (s *slot) publish(pos uint64) { s.seq.Store(pos + 1) }

// peek returns the next filled slot for the consumer, nil when the next
// position is not published yet (or not reserved at all).
func (r *ring) peek() *slot {
	deq := r.deq.Load()
	s := &r.slots[deq%uint64(len(r.slots))]
	if s.seq.Load() != deq+1 {
		return nil
	}
	return s
}

// release gives the slot returned by peek back to the producers.
func (r *ring) release(s *slot) {
	deq := r.deq.Load()
	s.seq.Store(deq + uint64(len(r.slots)))
	r.deq.Store(deq + 1)
}

// pending returns how many positions are reserved but not yet released.
func (r *ring) pending() uint64 { return r.enq.Load() - r.deq.Load() }
