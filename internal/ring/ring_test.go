package ring

import (
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRingSequential walks a 3-slot ring round several times, checking
// full and empty at each step against a slice model.
func TestRingSequential(t *testing.T) {
	r := New[item](3)
	var model []uint32
	next := uint32(0)
	ops := "PPPPxCPCCCCPPPCCxPPPPCCCCC" // P produce, C consume, x check only
	for i, op := range ops {
		switch op {
		case 'P':
			s, pos := r.Reserve()
			if full := len(model) == 3; full != (s == nil) {
				t.Fatalf("step %d: reserve gave slot=%v with %d queued", i, s != nil, len(model))
			}
			if s != nil {
				s.Value.id = next
				s.Publish(pos)
				model = append(model, next)
				next++
			}
		case 'C':
			s := r.Peek()
			if empty := len(model) == 0; empty != (s == nil) {
				t.Fatalf("step %d: peek gave slot=%v with %d queued", i, s != nil, len(model))
			}
			if s != nil {
				if s.Value.id != model[0] {
					t.Fatalf("step %d: got id %d, want %d", i, s.Value.id, model[0])
				}
				r.Release(s)
				model = model[1:]
			}
		}
		if got := r.Pending(); got != uint64(len(model)) {
			t.Fatalf("step %d: pending %d, want %d", i, got, len(model))
		}
	}
}

// TestRingConcurrent has several producers race for a small ring while one
// consumer drains it: every value that was queued must come out exactly
// once, in each producer's order; every other one was reported full.
func TestRingConcurrent(t *testing.T) {
	const (
		producers = 4
		perProd   = 20000
	)
	r := New[item](7)
	var wg sync.WaitGroup
	queued := make([][]uint32, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProd {
				v := uint32(p<<24 | i)
				s, pos := r.Reserve()
				if s == nil {
					continue
				}
				s.Value.id = v
				s.Publish(pos)
				queued[p] = append(queued[p], v)
			}
		}()
	}
	allQueued := finished(&wg)
	done := make(chan struct{})
	got := make([][]uint32, producers)
	go func() {
		defer close(done)
		for {
			s := r.Peek()
			if s == nil {
				select {
				case <-allQueued:
					if r.Peek() == nil && r.Pending() == 0 {
						return
					}
				default:
					runtime.Gosched()
				}
				continue
			}
			got[s.Value.id>>24] = append(got[s.Value.id>>24], s.Value.id)
			r.Release(s)
		}
	}()
	<-done
	total := 0
	for p := range producers {
		if diff := cmp.Diff(queued[p], got[p]); diff != "" {
			t.Errorf("producer %d (-queued +consumed):\n%s", p, diff)
		}
		total += len(got[p])
	}
	if total == 0 {
		t.Error("nothing got through the ring")
	}
	t.Logf("%d of %d values queued", total, producers*perProd)
}

// finished returns a channel closed once wg is done.
func finished(wg *sync.WaitGroup) <-chan struct{} {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	return c
}

// item is what the tests queue.
type item struct{ id uint32 }
