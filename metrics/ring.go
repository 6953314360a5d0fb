package metrics

import (
	"sync/atomic"

	"github.com/closeduel/closeduel/analysis"
)

// ring is a bounded lock-free queue of preallocated analysis events after
// Dmitry Vyukov's bounded MPMC queue, used with one consumer. Producers
// reserve a position with a CAS, fill the slot in place and publish it;
// nothing is allocated after newRing. A slot's seq says whose turn it is:
// seq == pos is free for the producer of pos, seq == pos+1 waits for the
// consumer, who sets seq = pos+len(slots) when done.
type ring struct {
	enq   atomic.Uint64
	_     [56]byte
	deq   atomic.Uint64
	slots []ringSlot
}

type ringSlot struct {
	seq atomic.Uint64
	ev  analysis.Event
}

func newRing(n int) *ring {
	r := &ring{slots: make([]ringSlot, n)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// reserve returns a free slot and its position; nil when the ring is full.
func (r *ring) reserve() (*ringSlot, uint64) {
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
			return nil, 0
		default:
			pos = r.enq.Load()
		}
	}
}

// publish hands a filled slot to the consumer.
func (s *ringSlot) publish(pos uint64) { s.seq.Store(pos + 1) }

// next returns the next filled slot for the (single) consumer, or nil.
func (r *ring) next() *ringSlot {
	deq := r.deq.Load()
	s := &r.slots[deq%uint64(len(r.slots))]
	if s.seq.Load() != deq+1 {
		return nil
	}
	return s
}

// done gives the slot returned by next back to the producers.
func (r *ring) done(s *ringSlot) {
	deq := r.deq.Load()
	s.seq.Store(deq + uint64(len(r.slots)))
	r.deq.Store(deq + 1)
}
