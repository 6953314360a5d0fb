package segment

import (
	"encoding/binary"
	"errors"
)

// errShort is returned when a packet is shorter than the headers the
// Segment describes.
var errShort = errors.New("segment: packet shorter than its headers")

// errMismatch is returned when a packet's header lengths are not the ones
// its Segment describes (a Segment from another packet, or a zero one).
var errMismatch = errors.New("segment: packet does not match its segment's header lengths")

// errNotRewritable is returned for a segment whose bytes cannot be
// rewritten in place with checksums that stay right: one inside a tunnel
// (its TCP header is not where IPHeaderLen says in the outer packet, and an
// outer checksum would go stale), a first fragment (its TCP checksum covers
// octets that are not in the packet), or one whose IP length field does not
// give its length.
var errNotRewritable = errors.New("segment: tunnelled, fragmented or length-less packet cannot be rewritten")

// notRewritable are the Via bits that make a segment not rewritable.
const notRewritable = ViaIPinIP | ViaGRE | ViaVXLAN | ViaGeneve | ViaFragment | ViaZeroLength | ViaCapped | ViaCutHeader

// sum16 adds data as big-endian 16-bit words to a one's-complement sum and
// returns it folded to 16 bits. It reads 32-bit words: 2^16 is 1 modulo
// 0xffff, so their sum folds to the same value as that of the 16-bit ones.
func sum16(sum uint32, data []byte) uint32 {
	s := uint64(sum)
	for len(data) >= 8 {
		s += uint64(binary.BigEndian.Uint32(data)) + uint64(binary.BigEndian.Uint32(data[4:]))
		data = data[8:]
	}
	if len(data) >= 4 {
		s += uint64(binary.BigEndian.Uint32(data))
		data = data[4:]
	}
	if len(data) >= 2 {
		s += uint64(binary.BigEndian.Uint16(data))
		data = data[2:]
	}
	if len(data) == 1 {
		s += uint64(data[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint32(s)
}

// fold folds a 32-bit one's-complement sum and returns its complement.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// tcpSpan checks that pkt, a raw IP packet, matches seg's header lengths
// and returns the TCP segment (header and payload, as long as the IP
// length says) and the unfolded pseudo-header sum for it.
func tcpSpan(pkt []byte, seg *Segment) (tcp []byte, pseudo uint32, err error) {
	ihl := seg.IPHeaderLen
	if seg.Via&notRewritable != 0 {
		return nil, 0, errNotRewritable
	}
	if len(pkt) == 0 {
		return nil, 0, errEmpty
	}
	var end int // end of the IP packet
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil, 0, errShort
		}
		if ihl < 20 || int(pkt[0]&0x0f)*4 != ihl {
			return nil, 0, errMismatch
		}
		end = int(binary.BigEndian.Uint16(pkt[2:4]))
	case 6:
		if len(pkt) < 40 {
			return nil, 0, errShort
		}
		if ihl < 40 {
			return nil, 0, errMismatch
		}
		end = 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
	default:
		return nil, 0, errVersion
	}
	if end > len(pkt) {
		return nil, 0, errShort
	}
	if end < ihl+20 {
		return nil, 0, errMismatch
	}
	tcp = pkt[ihl:end]
	if pkt[0]>>4 == 4 {
		pseudo = sum16(0, pkt[12:20]) // source and destination address
	} else {
		pseudo = sum16(0, pkt[8:40])
	}
	pseudo += uint32(6) + uint32(len(tcp)) // protocol and TCP length
	return tcp, pseudo, nil
}

// FixChecksums recomputes the IPv4 header checksum (for IPv4) and the TCP
// checksum over the pseudo-header, header and payload of pkt, a raw IP
// packet that seg was decoded from. The TCP length is taken from the IP
// header, so a rewritten packet keeps its length. It changes nothing and
// returns an error when pkt is shorter than its IP length or does not match
// seg's header lengths.
func FixChecksums(pkt []byte, seg *Segment) error {
	tcp, sum, err := tcpSpan(pkt, seg)
	if err != nil {
		return err
	}
	if pkt[0]>>4 == 4 {
		hdr := pkt[:seg.IPHeaderLen]
		hdr[10], hdr[11] = 0, 0
		binary.BigEndian.PutUint16(hdr[10:12], fold(sum16(0, hdr)))
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:18], fold(sum16(sum, tcp)))
	return nil
}

// ChecksumsValid reports whether the IPv4 header checksum (for IPv4) and
// the TCP checksum of pkt verify. It returns false when pkt does not match
// seg's header lengths.
func ChecksumsValid(pkt []byte, seg *Segment) bool {
	tcp, sum, err := tcpSpan(pkt, seg)
	if err != nil {
		return false
	}
	if pkt[0]>>4 == 4 && fold(sum16(0, pkt[:seg.IPHeaderLen])) != 0 {
		return false
	}
	return fold(sum16(sum, tcp)) == 0
}
