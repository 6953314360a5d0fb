package segment

import (
	"encoding/binary"
	"net/netip"
)

// The rewrite functions change one field of pkt, a raw IP packet that seg
// was decoded from, in place, and update seg to match. Each updates the TCP
// checksum incrementally (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')), so a
// checksum that was right stays right and one that was wrong stays wrong by
// the same amount: a corrupt segment is not made acceptable by a rewrite.
// FixChecksums recomputes them from scratch (a rule's repair-checksum, or
// a checksum the kernel left partial).

// change applies fn to the n bytes of the TCP header at off (both even)
// and updates the TCP checksum for the difference.
func change(pkt []byte, seg *Segment, off, n int, fn func(b []byte)) {
	tcp := pkt[seg.IPHeaderLen:]
	b := tcp[off : off+n]
	old := sum16(0, b)
	fn(b)
	hc := binary.BigEndian.Uint16(tcp[16:18])
	binary.BigEndian.PutUint16(tcp[16:18], fold(uint32(^hc)+uint32(^uint16(old))+sum16(0, b)))
}

// SetFlags sets the TCP flags byte.
func SetFlags(pkt []byte, seg *Segment, f Flags) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 12, 2, func(b []byte) { b[1] = byte(f) })
	seg.Flags = f
	return nil
}

// SetSeq sets the sequence number.
func SetSeq(pkt []byte, seg *Segment, s Seq) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 4, 4, func(b []byte) { binary.BigEndian.PutUint32(b, uint32(s)) })
	seg.Seq = s
	return nil
}

// SetAck sets the acknowledgment number.
func SetAck(pkt []byte, seg *Segment, a Seq) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 8, 4, func(b []byte) { binary.BigEndian.PutUint32(b, uint32(a)) })
	seg.Ack = a
	return nil
}

// SetWindow sets the raw (unscaled) window field.
func SetWindow(pkt []byte, seg *Segment, w uint16) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 14, 2, func(b []byte) { binary.BigEndian.PutUint16(b, w) })
	seg.Window = w
	return nil
}

// StripOptions overwrites every TCP option with NOPs, so the receiver sees
// a header of the same length that carries no option. Lengths and payload
// stay where they were.
func StripOptions(pkt []byte, seg *Segment) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 20, seg.TCPHeaderLen-20, func(b []byte) {
		for i := range b {
			b[i] = 1 // NOP
		}
	})
	seg.WindowScale, seg.MSS = -1, 0
	return nil
}

// checkTCPHeader checks that seg places a whole TCP header, options
// included, inside pkt and after at least a minimal IP header, so that a
// rewrite never lands in the IP header of a mismatched packet.
func checkTCPHeader(pkt []byte, seg *Segment) error {
	if seg.Via&notRewritable != 0 {
		return errNotRewritable
	}
	if seg.IPHeaderLen < 20 || seg.TCPHeaderLen < 20 || seg.TCPHeaderLen > 60 {
		return errMismatch
	}
	if len(pkt) < seg.IPHeaderLen+seg.TCPHeaderLen {
		return errShort
	}
	// A packet shorter than its IP length says is cut: its checksum
	// covers octets that are not here, and the kernel would not take it
	// back whole.
	switch pkt[0] >> 4 {
	case 4:
		if int(binary.BigEndian.Uint16(pkt[2:4])) > len(pkt) {
			return errShort
		}
	case 6:
		if 40+int(binary.BigEndian.Uint16(pkt[4:6])) > len(pkt) {
			return errShort
		}
	}
	return nil
}

// SetSrcPort sets the TCP source port.
func SetSrcPort(pkt []byte, seg *Segment, port uint16) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 0, 2, func(b []byte) { binary.BigEndian.PutUint16(b, port) })
	seg.Src = netip.AddrPortFrom(seg.Src.Addr(), port)
	return nil
}

// SetDstPort sets the TCP destination port.
func SetDstPort(pkt []byte, seg *Segment, port uint16) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	change(pkt, seg, 2, 2, func(b []byte) { binary.BigEndian.PutUint16(b, port) })
	seg.Dst = netip.AddrPortFrom(seg.Dst.Addr(), port)
	return nil
}
