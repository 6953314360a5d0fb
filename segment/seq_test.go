package segment

import (
	"math"
	"testing"
)

func TestSeqCompare(t *testing.T) {
	for _, c := range []struct {
		name      string
		a, b      Seq
		less, leq bool
		diff      int32
	}{
		{"equal", 5, 5, false, true, 0},
		{"plain", 1, 2, true, true, -1},
		{"plain reversed", 2, 1, false, false, 1},
		{"across wrap", math.MaxUint32, 0, true, true, -1},
		{"across wrap reversed", 0, math.MaxUint32, false, false, 1},
		{"across wrap by 100", math.MaxUint32 - 49, 50, true, true, -100},
		{"zero and max are close", 0, math.MaxUint32 - 9, false, false, 10},
		{"just under half the space", 0, 1<<31 - 1, true, true, -(1<<31 - 1)},
		{"just under half the space reversed", 1<<31 - 1, 0, false, false, 1<<31 - 1},
		{"half the space from 10", 10, 10 + 1<<31 - 1, true, true, -(1<<31 - 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.LessThan(c.b); got != c.less {
				t.Errorf("%d.LessThan(%d) = %v, want %v", c.a, c.b, got, c.less)
			}
			if got := c.a.LessThanEq(c.b); got != c.leq {
				t.Errorf("%d.LessThanEq(%d) = %v, want %v", c.a, c.b, got, c.leq)
			}
			if got := c.a.Diff(c.b); got != c.diff {
				t.Errorf("%d.Diff(%d) = %d, want %d", c.a, c.b, got, c.diff)
			}
			if got := c.b.Add(uint32(c.diff)); got != c.a {
				t.Errorf("%d.Add(%d) = %d, want %d", c.b, uint32(c.diff), got, c.a)
			}
		})
	}
}

func TestSeqInWindow(t *testing.T) {
	const top = math.MaxUint32
	for _, c := range []struct {
		name  string
		s     Seq
		start Seq
		size  uint32
		want  bool
	}{
		{"start", 100, 100, 10, true},
		{"last", 109, 100, 10, true},
		{"end is outside", 110, 100, 10, false},
		{"before start", 99, 100, 10, false},
		{"empty window holds nothing", 100, 100, 0, false},
		{"size 1", 100, 100, 1, true},
		{"wrapping window, start", top - 4, top - 4, 10, true},
		{"wrapping window, max", top, top - 4, 10, true},
		{"wrapping window, zero", 0, top - 4, 10, true},
		{"wrapping window, last", 4, top - 4, 10, true},
		{"wrapping window, end", 5, top - 4, 10, false},
		{"wrapping window, before", top - 5, top - 4, 10, false},
		{"whole space but one", top - 1, 0, top, true},
		{"whole space but one, the one", top, 0, top, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.s.InWindow(c.start, c.size); got != c.want {
				t.Errorf("%d.InWindow(%d, %d) = %v, want %v", c.s, c.start, c.size, got, c.want)
			}
		})
	}
}

func TestSegmentSeqLenEnd(t *testing.T) {
	for _, c := range []struct {
		flags   Flags
		payload int
		seq     Seq
		len     uint32
		end     Seq
	}{
		{SYN, 0, math.MaxUint32, 1, 0},
		{SYN | ACK, 0, 5, 1, 6},
		{ACK, 0, 5, 0, 5},
		{FIN | ACK, 0, math.MaxUint32, 1, 0},
		{PSH | ACK, 35, math.MaxUint32 - 10, 35, 24},
		{SYN | FIN, 3, 0, 5, 5},
		{RST, 0, 9, 0, 9},
	} {
		s := Segment{Flags: c.flags, PayloadLen: c.payload, Seq: c.seq}
		if got := s.SeqLen(); got != c.len {
			t.Errorf("%v with %d octets: SeqLen = %d, want %d", c.flags, c.payload, got, c.len)
		}
		if got := s.End(); got != c.end {
			t.Errorf("%v with %d octets from %d: End = %d, want %d", c.flags, c.payload, c.seq, got, c.end)
		}
	}
}
