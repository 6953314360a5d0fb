package segment

import (
	"net/netip"
	"testing"
)

func TestTuple(t *testing.T) {
	a, b := cli4, dev4 // 192.168.7.10 < 192.168.7.77
	tu := Tuple{Src: b, Dst: a}
	if got, want := tu.Reverse(), (Tuple{Src: a, Dst: b}); got != want {
		t.Errorf("Reverse = %v, want %v", got, want)
	}
	if got, want := tu.String(), "192.168.7.77:80 -> 192.168.7.10:43512"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for _, c := range []struct {
		in       Tuple
		want     Tuple
		reversed bool
	}{
		{Tuple{Src: a, Dst: b}, Tuple{Src: a, Dst: b}, false},
		{Tuple{Src: b, Dst: a}, Tuple{Src: a, Dst: b}, true},
		// Same address: the lower port is Src.
		{Tuple{Src: netip.MustParseAddrPort("10.0.0.1:80"), Dst: netip.MustParseAddrPort("10.0.0.1:79")},
			Tuple{Src: netip.MustParseAddrPort("10.0.0.1:79"), Dst: netip.MustParseAddrPort("10.0.0.1:80")}, true},
		{Tuple{Src: dev6, Dst: cli6}, Tuple{Src: cli6, Dst: dev6}, true},
		{Tuple{Src: a, Dst: a}, Tuple{Src: a, Dst: a}, false},
	} {
		got, rev := c.in.Canonical()
		if got != c.want || rev != c.reversed {
			t.Errorf("%v.Canonical() = %v, %v; want %v, %v", c.in, got, rev, c.want, c.reversed)
		}
		// Both directions share the canonical tuple.
		if back, _ := c.in.Reverse().Canonical(); back != got {
			t.Errorf("%v: reverse canonicalises to %v, want %v", c.in, back, got)
		}
	}
}

func TestIsIPv6(t *testing.T) {
	for _, c := range []struct {
		src  netip.AddrPort
		want bool
	}{
		{cli4, false},
		{cli6, true},
		{mapped(cli4), true}, // as Decode reports an IPv6 header carrying ::ffff:a.b.c.d
	} {
		s := Segment{Src: c.src}
		if got := s.IsIPv6(); got != c.want {
			t.Errorf("Segment{Src: %v}.IsIPv6() = %v, want %v", c.src, got, c.want)
		}
	}
}
