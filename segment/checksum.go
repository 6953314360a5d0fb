package segment

import (
	"encoding/binary"
	"errors"
)

// errShort is returned when a packet is shorter than the headers the
// Segment describes.
var errShort = errors.New("segment: packet shorter than its headers")

// sum16 adds data as big-endian 16-bit words to an unfolded sum.
func sum16(sum uint32, data []byte) uint32 {
	n := len(data)
	i := 0
	for ; i+1 < n; i += 2 {
		sum += uint32(data[i])<<8 | uint32(data[i+1])
	}
	if i < n {
		sum += uint32(data[i]) << 8
	}
	return sum
}

// fold folds a 32-bit one's-complement sum and returns its complement.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// FixChecksums recomputes the IPv4 header checksum (for IPv4) and the TCP
// checksum over the pseudo-header, header and payload of pkt, a raw IP
// packet that seg was decoded from. The TCP length is taken from the IP
// header, so a rewritten packet keeps its length.
func FixChecksums(pkt []byte, seg *Segment) error {
	ihl := seg.IPHeaderLen
	if len(pkt) < ihl+20 {
		return errShort
	}
	var sum uint32
	var tcpLen int
	switch pkt[0] >> 4 {
	case 4:
		hl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if hl < 20 || total > len(pkt) || total < ihl+20 {
			return errShort
		}
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:12], fold(sum16(0, pkt[:hl])))
		tcpLen = total - ihl
		sum = sum16(0, pkt[12:20]) // source and destination address
	case 6:
		payload := int(binary.BigEndian.Uint16(pkt[4:6]))
		if 40+payload > len(pkt) || 40+payload < ihl+20 {
			return errShort
		}
		tcpLen = 40 + payload - ihl
		sum = sum16(0, pkt[8:40])
	default:
		return errVersion
	}
	sum += 6 + uint32(tcpLen) // protocol and TCP length
	tcp := pkt[ihl : ihl+tcpLen]
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:18], fold(sum16(sum, tcp)))
	return nil
}

// ChecksumsValid reports whether the IPv4 header checksum (for IPv4) and
// the TCP checksum of pkt verify.
func ChecksumsValid(pkt []byte, seg *Segment) bool {
	ihl := seg.IPHeaderLen
	if len(pkt) < ihl+20 {
		return false
	}
	var sum uint32
	var tcpLen int
	switch pkt[0] >> 4 {
	case 4:
		hl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if hl < 20 || total > len(pkt) || total < ihl+20 || fold(sum16(0, pkt[:hl])) != 0 {
			return false
		}
		tcpLen = total - ihl
		sum = sum16(0, pkt[12:20])
	case 6:
		payload := int(binary.BigEndian.Uint16(pkt[4:6]))
		if 40+payload > len(pkt) || 40+payload < ihl+20 {
			return false
		}
		tcpLen = 40 + payload - ihl
		sum = sum16(0, pkt[8:40])
	default:
		return false
	}
	sum += 6 + uint32(tcpLen)
	return fold(sum16(sum, pkt[ihl:ihl+tcpLen])) == 0
}
