package nfq

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestTimedQueuePopsInDueThenSchedulingOrder(t *testing.T) {
	base := time.Unix(1000, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	var q timedQueue
	type ref struct {
		due  time.Time
		slot int32
	}
	var want []ref
	for i := 0; i < 500; i++ {
		due := base.Add(time.Duration(rng.IntN(50)) * time.Millisecond) // many ties
		q.Push(timedItem{due: due, slot: int32(i)})
		want = append(want, ref{due, int32(i)})
	}
	sort.SliceStable(want, func(i, j int) bool { return want[i].due.Before(want[j].due) })
	for i, w := range want {
		if q.Len() == 0 {
			t.Fatalf("queue empty after %d pops, want %d", i, len(want))
		}
		got := q.Pop()
		if !got.due.Equal(w.due) || got.slot != w.slot {
			t.Fatalf("pop %d: got (due %v, slot %d), want (due %v, slot %d)", i, got.due.Sub(base), got.slot, w.due.Sub(base), w.slot)
		}
	}
	if q.Len() != 0 {
		t.Fatalf("queue holds %d items after popping all", q.Len())
	}
}

func TestTimedQueuePushPopAllocatesNothingOnceGrown(t *testing.T) {
	var q timedQueue
	now := time.Now()
	for i := 0; i < 64; i++ {
		q.Push(timedItem{due: now})
	}
	for q.Len() > 0 {
		q.Pop()
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 64; i++ {
			q.Push(timedItem{due: now.Add(time.Duration(64-i) * time.Microsecond)})
		}
		for q.Len() > 0 {
			q.Pop()
		}
	})
	if allocs != 0 {
		t.Fatalf("push/pop allocated %.1f times per run, want 0", allocs)
	}
}
