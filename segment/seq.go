package segment

// Seq is a TCP sequence number: 32-bit arithmetic that wraps around, so
// comparisons must use the methods below, never < on the raw values.
type Seq uint32

// Add returns s advanced by n octets.
func (s Seq) Add(n uint32) Seq { return s + Seq(n) }

// Diff returns the signed distance from o to s (s - o), valid while the two
// are less than 2^31 apart.
func (s Seq) Diff(o Seq) int32 { return int32(s - o) }

// LessThan reports whether s comes before o.
func (s Seq) LessThan(o Seq) bool { return int32(s-o) < 0 }

// LessThanEq reports whether s comes before o or equals it.
func (s Seq) LessThanEq(o Seq) bool { return int32(s-o) <= 0 }

// InWindow reports whether s lies in [start, start+size).
func (s Seq) InWindow(start Seq, size uint32) bool {
	return uint32(s-start) < size
}
