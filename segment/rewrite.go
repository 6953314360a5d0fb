package segment

import (
	"encoding/binary"
	"net/netip"
)

// The rewrite functions change one field of pkt, a raw IP packet that seg
// was decoded from, in place, and update seg to match. They do not fix the
// checksums: call FixChecksums once after the last change.

// SetFlags sets the TCP flags byte.
func SetFlags(pkt []byte, seg *Segment, f Flags) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	pkt[seg.IPHeaderLen+13] = byte(f)
	seg.Flags = f
	return nil
}

// SetSeq sets the sequence number.
func SetSeq(pkt []byte, seg *Segment, s Seq) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(pkt[seg.IPHeaderLen+4:], uint32(s))
	seg.Seq = s
	return nil
}

// SetAck sets the acknowledgment number.
func SetAck(pkt []byte, seg *Segment, a Seq) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(pkt[seg.IPHeaderLen+8:], uint32(a))
	seg.Ack = a
	return nil
}

// SetWindow sets the raw (unscaled) window field.
func SetWindow(pkt []byte, seg *Segment, w uint16) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	binary.BigEndian.PutUint16(pkt[seg.IPHeaderLen+14:], w)
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
	start, end := seg.IPHeaderLen+20, seg.IPHeaderLen+seg.TCPHeaderLen
	for i := start; i < end; i++ {
		pkt[i] = 1 // NOP
	}
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
	return nil
}

// SetSrcPort sets the TCP source port.
func SetSrcPort(pkt []byte, seg *Segment, port uint16) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	binary.BigEndian.PutUint16(pkt[seg.IPHeaderLen:], port)
	seg.Src = netip.AddrPortFrom(seg.Src.Addr(), port)
	return nil
}

// SetDstPort sets the TCP destination port.
func SetDstPort(pkt []byte, seg *Segment, port uint16) error {
	if err := checkTCPHeader(pkt, seg); err != nil {
		return err
	}
	binary.BigEndian.PutUint16(pkt[seg.IPHeaderLen+2:], port)
	seg.Dst = netip.AddrPortFrom(seg.Dst.Addr(), port)
	return nil
}
