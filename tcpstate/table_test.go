package tcpstate

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
)

// refTable is the slow obvious model of the tracker's table for
// connections that never close (picked up midstream, so both ends are
// ESTABLISHED and hold them open): a recency-ordered list, bounded, where
// up to two entries per segment that have been quiet for idle move from
// the cold end to the warm end instead of being forgotten (the stacks
// still hold them); only the bound forgets.
type refTable struct {
	max   int
	idle  time.Duration
	order []segment.Tuple // most recent last
	last  map[segment.Tuple]time.Time
	seen  map[segment.Tuple]bool
}

func (r *refTable) sent(k segment.Tuple, now time.Time) {
	for range 2 {
		if len(r.order) == 0 || now.Sub(r.last[r.order[0]]) < r.idle {
			break
		}
		r.order = append(r.order[1:], r.order[0])
	}
	if i := slices.Index(r.order, k); i >= 0 {
		r.order = slices.Delete(r.order, i, i+1)
	} else if len(r.order) == r.max {
		delete(r.last, r.order[0])
		r.order = r.order[1:]
	}
	r.order = append(r.order, k)
	r.last[k] = now
	if r.seen == nil {
		r.seen = map[segment.Tuple]bool{}
	}
	r.seen[k] = true
}

func TestTableMatchesReferenceOnRandomTraffic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		// Half the rounds grow the table as the analysis does, from 64
		// slots up to MaxConns.
		grow := round%2 == 1
		maxConns := 1 + rng.IntN(40)
		if grow {
			maxConns = 1 + rng.IntN(300)
		}
		forgotten := map[segment.Tuple]bool{}
		tr := New(Config{MaxConns: maxConns, Idle: 10 * time.Second, Grow: grow,
			OnForget: func(c *Conn, _ int, _ Forget) { forgotten[c.Tuple] = true }})
		ref := &refTable{max: maxConns, idle: 10 * time.Second, last: map[segment.Tuple]time.Time{}}
		now := t0
		pool := 1 + rng.IntN(120)
		if grow {
			pool = 1 + rng.IntN(400)
		}
		for step := range 3000 {
			now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
			a, b := tupleN(rng.IntN(pool))
			if rng.IntN(2) == 0 {
				a, b = b, a
			}
			s := segment.Segment{Src: a, Dst: b, Flags: segment.ACK, Seq: segment.Seq(rng.Uint32()), Ack: segment.Seq(rng.Uint32())}
			r := tr.Sent(&s, now)
			k, _ := s.Tuple().Canonical()
			ref.sent(k, now)
			if r.Conn.Tuple != k {
				t.Fatalf("round %d step %d: Sent returned connection %v, want %v", round, step, r.Conn.Tuple, k)
			}
			if tr.Len() != len(ref.order) {
				t.Fatalf("round %d step %d: tracker holds %d connections, reference %d", round, step, tr.Len(), len(ref.order))
			}
			if grow && tr.Room() > maxConns {
				t.Fatalf("round %d step %d: table grew to %d, over MaxConns %d", round, step, tr.Room(), maxConns)
			}
			for i := range pool {
				a, b := tupleN(i)
				k, _ := segment.Tuple{Src: a, Dst: b}.Canonical()
				c, _ := tr.Lookup(k)
				_, want := ref.last[k]
				if (c != nil) != want {
					t.Fatalf("round %d step %d: connection %d tracked = %v, reference says %v", round, step, i, c != nil, want)
				}
				if c == nil && ref.seen[k] && !forgotten[k] {
					t.Fatalf("round %d step %d: connection %d forgotten without OnForget", round, step, i)
				}
			}
		}
	}
}

func TestSentAndDeliverAllocateNothing(t *testing.T) {
	tr := New(Config{MaxConns: 64})
	segs := make([]segment.Segment, 0, 300)
	for i := range 100 {
		a, b := tupleN(i)
		segs = append(segs,
			segment.Segment{Src: a, Dst: b, Flags: segment.SYN, Seq: 1000, WindowScale: 7},
			segment.Segment{Src: b, Dst: a, Flags: segment.SYN | segment.ACK, Seq: 5000, Ack: 1001, WindowScale: 7},
			segment.Segment{Src: b, Dst: a, Flags: segment.FIN | segment.ACK, Seq: 5001, Ack: 1001})
	}
	now := t0
	allocs := testing.AllocsPerRun(20, func() {
		for i := range segs {
			now = now.Add(time.Millisecond)
			r := tr.Sent(&segs[i], now)
			tr.Deliver(&segs[i], r.Conn.ID, now)
		}
	})
	if allocs != 0 {
		t.Errorf("Sent+Deliver allocate %v times per run, want 0", allocs)
	}
}

func BenchmarkSentDeliver(b *testing.B) {
	tr := New(Config{})
	var segs []segment.Segment
	for i := range 1000 {
		a, c := tupleN(i)
		segs = append(segs,
			segment.Segment{Src: a, Dst: c, Flags: segment.ACK | segment.PSH, Seq: 1000, Ack: 5000, PayloadLen: 100},
			segment.Segment{Src: c, Dst: a, Flags: segment.ACK, Seq: 5000, Ack: 1100})
	}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := &segs[i%len(segs)]
		now = now.Add(time.Microsecond)
		r := tr.Sent(s, now)
		tr.Deliver(s, r.Conn.ID, now)
	}
}

// TestQuietConnectionsTheStacksStillHold: an established connection quiet
// for far longer than Idle is the same connection when it speaks again (as
// both stacks and tshark keep it), while a SYN nobody answered and a
// finished close are forgotten.
func TestQuietConnectionsTheStacksStillHold(t *testing.T) {
	tr := New(Config{MaxConns: 16, Idle: 5 * time.Minute})
	step := func(s segment.Segment, at time.Time) Result {
		r := tr.Sent(&s, at)
		tr.Deliver(&s, r.Conn.ID, at)
		return r
	}
	est, srv := tupleN(1)
	first := step(segment.Segment{Src: est, Dst: srv, Flags: segment.SYN, Seq: 100}, t0).Conn.ID
	step(segment.Segment{Src: srv, Dst: est, Flags: segment.SYN | segment.ACK, Seq: 900, Ack: 101}, t0)
	step(segment.Segment{Src: est, Dst: srv, Flags: segment.ACK, Seq: 101, Ack: 901}, t0)
	half, _ := tupleN(2)
	step(segment.Segment{Src: half, Dst: srv, Flags: segment.SYN, Seq: 7}, t0)

	later := t0.Add(21 * 365 * 24 * time.Hour)
	r := step(segment.Segment{Src: est, Dst: srv, Flags: segment.ACK | segment.PSH, Seq: 101, Ack: 901, PayloadLen: 10}, later)
	if r.Events&NewIncarnation != 0 || r.Conn.ID != first || r.Before[0] != Established || r.Before[1] != Established {
		t.Errorf("established connection after 21 years: events %v, connection %d (was %d), states before %v; want the same ESTABLISHED connection", r.Events, r.Conn.ID, first, r.Before)
	}
	if c, _ := tr.Lookup(segment.Tuple{Src: half, Dst: srv}); c != nil {
		t.Errorf("the unanswered SYN's tuple is still tracked (%v, %v) after 21 years", c.Ends[0].State, c.Ends[1].State)
	}
	if got := tr.Stats().Expired.Load(); got != 1 {
		t.Errorf("expired %d connections, want 1 (the unanswered SYN)", got)
	}
}
