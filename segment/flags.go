package segment

import "strings"

// Flags is the TCP flags byte (FIN is bit 0, CWR bit 7).
type Flags uint8

// TCP flag bits.
const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// Has reports whether every flag in want is set in f.
func (f Flags) Has(want Flags) bool { return f&want == want }

// Any reports whether at least one flag of want is set in f.
func (f Flags) Any(want Flags) bool { return f&want != 0 }

// String renders the flags joined by "+" in wire order, e.g. "SYN+ACK";
// no flags at all render as "none".
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('+')
		}
		b.WriteString(name)
	}
	return b.String()
}

// AppendTo appends the String form of f to dst without allocating.
func (f Flags) AppendTo(dst []byte) []byte {
	if f == 0 {
		return append(dst, "none"...)
	}
	first := true
	for i, name := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			dst = append(dst, '+')
		}
		dst = append(dst, name...)
		first = false
	}
	return dst
}

// ParseFlags parses a "+"- or ","-separated list of flag names such as
// "RST+ACK" (case-insensitive). It returns ok=false on an unknown name.
func ParseFlags(s string) (f Flags, ok bool) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "none") || s == "" {
		return 0, s != ""
	}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '+' || r == ',' || r == '|' || r == ' ' }) {
		found := false
		for i, name := range flagNames {
			if strings.EqualFold(part, name) {
				f |= 1 << i
				found = true
				break
			}
		}
		if !found {
			return 0, false
		}
	}
	return f, true
}
