package segment

import (
	"encoding/binary"
	"errors"
	"net"
)

// Template describes a segment to craft: addresses, ports, flags, numbers
// and window. It carries no payload and no options.
type Template struct {
	Tuple    Tuple // the direction the crafted segment travels
	Flags    Flags
	Seq, Ack Seq
	Window   uint16
	TTL      uint8 // 64 when zero
}

// EthernetHeaderLen is the length of the Ethernet II header Build writes.
const EthernetHeaderLen = 14

// ErrMixedFamilies is returned by Build when source and destination
// addresses are of different IP versions.
var ErrMixedFamilies = errors.New("segment: source and destination address families differ")

var errNoAddr = errors.New("segment: build: template lacks a source or destination address")

// Build writes an Ethernet frame carrying the segment described by t into dst, which it grows when too small, and
// returns the frame. srcMAC and dstMAC are the Ethernet addresses. The IP
// and TCP checksums are valid. The IP packet starts at EthernetHeaderLen.
func Build(dst []byte, srcMAC, dstMAC net.HardwareAddr, t *Template) ([]byte, error) {
	from, to := t.Tuple.Src, t.Tuple.Dst
	if !from.Addr().IsValid() || !to.Addr().IsValid() {
		return nil, errNoAddr
	}
	v4 := from.Addr().Is4()
	if v4 != to.Addr().Is4() {
		return nil, ErrMixedFamilies
	}
	ipLen := 40
	if v4 {
		ipLen = 20
	}
	n := EthernetHeaderLen + ipLen + 20
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	clear(dst)
	copy(dst[0:6], dstMAC)
	copy(dst[6:12], srcMAC)
	ttl := t.TTL
	if ttl == 0 {
		ttl = 64
	}
	ip := dst[EthernetHeaderLen:]
	if v4 {
		binary.BigEndian.PutUint16(dst[12:14], 0x0800)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen+20))
		ip[6] = 0x40 // don't fragment
		ip[8] = ttl
		ip[9] = 6
		a, b := from.Addr().As4(), to.Addr().As4()
		copy(ip[12:16], a[:])
		copy(ip[16:20], b[:])
	} else {
		binary.BigEndian.PutUint16(dst[12:14], 0x86dd)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:6], 20)
		ip[6] = 6
		ip[7] = ttl
		a, b := from.Addr().As16(), to.Addr().As16()
		copy(ip[8:24], a[:])
		copy(ip[24:40], b[:])
	}
	tcp := ip[ipLen:]
	binary.BigEndian.PutUint16(tcp[0:2], from.Port())
	binary.BigEndian.PutUint16(tcp[2:4], to.Port())
	binary.BigEndian.PutUint32(tcp[4:8], uint32(t.Seq))
	binary.BigEndian.PutUint32(tcp[8:12], uint32(t.Ack))
	tcp[12] = 5 << 4
	tcp[13] = byte(t.Flags)
	binary.BigEndian.PutUint16(tcp[14:16], t.Window)
	seg := Segment{IPHeaderLen: ipLen, TCPHeaderLen: 20}
	if err := FixChecksums(ip, &seg); err != nil {
		return nil, err
	}
	return dst, nil
}
