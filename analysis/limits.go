package analysis

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Limits on what one input may hold, so that a hostile or broken file
// cannot make the analysis take memory out of proportion to real captures.
// DEFINITIONS.md ("Limits") says what happens at each.
const (
	// MaxRecordSize is the largest pcap record or pcapng block read (4 MiB:
	// above the largest TSO or BIG TCP frames and Wireshark's 256 KiB snap
	// length). A larger one ends the input with a warning; what came
	// before it is analysed.
	MaxRecordSize = 4 << 20
	// MaxInterfaces is the largest number of interfaces a pcapng section
	// may describe. A file with more is refused.
	MaxInterfaces = 4096
	// MaxLineSize is the longest JSON Lines line read (1 MiB; a verdict
	// record is a few hundred octets). A longer line is skipped, with a
	// warning, without being held in memory.
	MaxLineSize = 1 << 20
)

// limitError is a file that broke one of the limits above.
type limitError struct {
	what  string // "record", "block", "interfaces"
	size  int64
	limit int64
}

func (e *limitError) Error() string {
	if e.what == "interfaces" {
		return fmt.Sprintf("more than %d interfaces in one pcapng section (the limit)", e.limit)
	}
	return fmt.Sprintf("a %s of %d octets, beyond the %d-octet limit for one %s", e.what, e.size, e.limit, e.what)
}

// recordGuard passes a pcap or pcapng file through while reading its
// framing: before the reader behind it sees a record or block, the guard
// checks its length against MaxRecordSize and counts pcapng interfaces
// against MaxInterfaces, and fails the read instead. It copies nothing.
type recordGuard struct {
	r       *bufio.Reader
	ng      bool
	order   binary.ByteOrder
	started bool  // pcap: the file header has gone by
	left    int64 // octets of the current record or block still to pass
	ifaces  int
	err     error
}

func newRecordGuard(r *bufio.Reader, format Format) *recordGuard {
	return &recordGuard{r: r, ng: format == FormatPcapng, order: binary.LittleEndian}
}

func (g *recordGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.left == 0 {
		if err := g.next(); err != nil {
			g.err = err
			return 0, err
		}
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.r.Read(p)
	g.left -= int64(n)
	return n, err
}

// next reads the framing of the next record or block without consuming
// it. A tail too short for a header passes through for the reader to call
// truncated.
func (g *recordGuard) next() error {
	if !g.ng {
		if !g.started {
			g.started = true
			h, _ := g.r.Peek(24)
			if len(h) >= 4 {
				switch binary.LittleEndian.Uint32(h) {
				case 0xd4c3b2a1, 0x4d3cb2a1:
					g.order = binary.BigEndian
				}
			}
			return g.pass(int64(max(len(h), 1)))
		}
		h, _ := g.r.Peek(16)
		if len(h) < 16 {
			return g.pass(int64(len(h)))
		}
		n := int64(g.order.Uint32(h[8:12]))
		if n > MaxRecordSize {
			return &limitError{what: "record", size: n, limit: MaxRecordSize}
		}
		return g.pass(16 + n)
	}
	h, _ := g.r.Peek(12)
	if len(h) < 12 {
		return g.pass(int64(len(h)))
	}
	typ := binary.LittleEndian.Uint32(h) // the section header's type reads the same either way
	if typ == 0x0a0d0d0a {
		switch binary.LittleEndian.Uint32(h[8:]) {
		case 0x1a2b3c4d:
			g.order = binary.LittleEndian
		case 0x4d3c2b1a:
			g.order = binary.BigEndian
		}
		g.ifaces = 0 // a new section starts its interfaces afresh
	} else {
		typ = g.order.Uint32(h)
	}
	n := int64(g.order.Uint32(h[4:8]))
	if n > MaxRecordSize {
		return &limitError{what: "block", size: n, limit: MaxRecordSize}
	}
	if typ == 1 { // interface description block
		if g.ifaces++; g.ifaces > MaxInterfaces {
			return &limitError{what: "interfaces", size: int64(g.ifaces), limit: MaxInterfaces}
		}
	}
	return g.pass(max(n, 12))
}

// pass lets n octets through; none left means the end of the file.
func (g *recordGuard) pass(n int64) error {
	if n == 0 {
		return io.EOF
	}
	g.left = n
	return nil
}
