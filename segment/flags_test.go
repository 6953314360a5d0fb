package segment

import (
	"strings"
	"testing"
)

// TestFlagsRoundTrip renders every flags byte, checks the text against
// names listed here, and parses it back.
func TestFlagsRoundTrip(t *testing.T) {
	names := []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
	for v := range 256 {
		f := Flags(v)
		var parts []string
		for i, n := range names {
			if v&(1<<i) != 0 {
				parts = append(parts, n)
			}
		}
		want := strings.Join(parts, "+")
		if v == 0 {
			want = "none"
		}
		if got := f.String(); got != want {
			t.Errorf("Flags(%#02x).String() = %q, want %q", v, got, want)
		}
		if got := string(f.AppendTo([]byte("x="))); got != "x="+want {
			t.Errorf("Flags(%#02x).AppendTo = %q, want %q", v, got, "x="+want)
		}
		for _, text := range []string{want, strings.ToLower(want), strings.ReplaceAll(want, "+", ","), " " + want + " "} {
			got, ok := ParseFlags(text)
			if !ok || got != f {
				t.Errorf("ParseFlags(%q) = %v, %v; want %v, true", text, got, ok, f)
			}
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Flags
		ok   bool
	}{
		{"RST+ACK", RST | ACK, true},
		{"ack+rst", RST | ACK, true},
		{"SYN,ACK", SYN | ACK, true},
		{"SYN|ACK", SYN | ACK, true},
		{"SYN ACK", SYN | ACK, true},
		{"FIN+FIN", FIN, true},
		{"none", 0, true},
		{"NONE", 0, true},
		{"", 0, false},
		{"   ", 0, false},
		{"SYN+DORP", 0, false},
		{"none+SYN", 0, false},
		{"NS", 0, false},
		{"S", 0, false},
	} {
		got, ok := ParseFlags(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseFlags(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFlagsHasAny(t *testing.T) {
	f := RST | ACK
	for _, c := range []struct {
		q        Flags
		has, any bool
	}{
		{RST, true, true},
		{RST | ACK, true, true},
		{RST | SYN, false, true},
		{SYN | FIN, false, false},
		{0, true, false},
	} {
		if got := f.Has(c.q); got != c.has {
			t.Errorf("%v.Has(%v) = %v, want %v", f, c.q, got, c.has)
		}
		if got := f.Any(c.q); got != c.any {
			t.Errorf("%v.Any(%v) = %v, want %v", f, c.q, got, c.any)
		}
	}
}
