package segment

import "net/netip"

// Segment is the decoded view of one TCP segment and the IP header that
// carried it. It holds no pointers into the packet: it can be copied and
// kept after the packet buffer is reused.
type Segment struct {
	Src, Dst   netip.AddrPort // addresses and ports as on the wire
	Flags      Flags
	Seq, Ack   Seq
	Window     uint16 // raw window field, not scaled
	PayloadLen int    // TCP payload octets
	// WindowScale is the shift from a window-scale option, or -1 when the
	// segment carries none (only SYNs may carry one). Shifts above 14 read
	// as 14, as RFC 7323 section 2.3 has the receiver do.
	WindowScale int8
	// MSS is the value of an MSS option, 0 when absent.
	MSS uint16
	// TTL is the IPv4 TTL or IPv6 hop limit.
	TTL uint8
	// IPHeaderLen is the length of the IP header (with IPv6 extension
	// headers) in the packet, i.e. the offset of the TCP header.
	IPHeaderLen int
	// TCPHeaderLen is the TCP header length with options.
	TCPHeaderLen int
	// Via says what the packet came through to reach its TCP header:
	// VLAN tags, tunnels, extension headers, a first fragment, a length
	// taken from the frame. When Via.Tunnelled, IPHeaderLen is the inner
	// IP header's and the rewrite functions refuse the packet.
	Via Via
	// VLAN and InnerVLAN are the VLAN IDs of the first (outer) and second
	// tags when Via has ViaVLAN or ViaQinQ, else 0.
	VLAN, InnerVLAN uint16
}

// SeqLen returns the sequence space the segment occupies: its payload plus
// one for SYN and one for FIN.
func (s *Segment) SeqLen() uint32 {
	n := uint32(s.PayloadLen)
	if s.Flags&SYN != 0 {
		n++
	}
	if s.Flags&FIN != 0 {
		n++
	}
	return n
}

// End returns the sequence number just after the segment (Seq + SeqLen).
func (s *Segment) End() Seq { return s.Seq.Add(s.SeqLen()) }

// IsIPv6 reports whether the segment travelled over IPv6. Decode keeps
// IPv4-mapped addresses seen in an IPv6 header as IPv6 addresses (Is4In6),
// so they count as IPv6 here too.
func (s *Segment) IsIPv6() bool { return s.Src.Addr().Is6() }

// Tuple returns the segment's 4-tuple in the direction it travels.
func (s *Segment) Tuple() Tuple { return Tuple{Src: s.Src, Dst: s.Dst} }

// Tuple is a TCP 4-tuple seen from one direction.
type Tuple struct {
	Src, Dst netip.AddrPort
}

// Reverse returns the tuple seen from the other end.
func (t Tuple) Reverse() Tuple { return Tuple{Src: t.Dst, Dst: t.Src} }

// Canonical returns the tuple oriented so that the lower endpoint is Src,
// and whether t had to be reversed to get there. Both directions of one
// connection share a canonical tuple.
func (t Tuple) Canonical() (c Tuple, reversed bool) {
	if less(t.Dst, t.Src) {
		return t.Reverse(), true
	}
	return t, false
}

// String renders the tuple as "src -> dst".
func (t Tuple) String() string { return t.Src.String() + " -> " + t.Dst.String() }

func less(a, b netip.AddrPort) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Port() < b.Port()
}
