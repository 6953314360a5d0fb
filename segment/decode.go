package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// ErrNotTCP is returned by the decoders for a well-formed packet that does
// not carry a TCP header: another protocol, an IP fragment after the
// first, a link header or tunnel that carries something else, or
// encapsulation nested deeper than the decoder follows. Decode returns it
// unwrapped.
var ErrNotTCP = errors.New("segment: not a TCP segment")

var (
	errEmpty   = errors.New("segment: empty packet")
	errVersion = errors.New("segment: IP version is neither 4 nor 6")
	// ErrTruncated is returned (possibly wrapped) when the packet ends
	// inside a header: a capture's snap length cut it, or it is malformed.
	ErrTruncated = errors.New("segment: truncated packet")
	// errLinkVersion is an IP header whose version is not the one the link
	// header announced.
	errLinkVersion = errors.New("segment: IP version differs from the link header's protocol")
	errIHL         = errors.New("segment: IPv4 header length below 20 octets")
	errIPLength    = errors.New("segment: IP length shorter than its headers")
	errIPOption    = errors.New("segment: malformed IPv4 option")
	errDataOffset  = errors.New("segment: TCP data offset below 20 octets")
	errLinkHeader  = errors.New("segment: malformed link header")
)

// maxDepth bounds how many headers (tags, labels, tunnels, extension
// headers) Decode follows before it gives up with ErrNotTCP.
const maxDepth = 16

// Link types the decoder takes that gopacket has no name for.
const (
	linkTypeRawAlt = layers.LinkType(12)  // DLT_RAW on some BSDs
	linkTypeCHDLC  = layers.LinkType(104) // Cisco HDLC
	linkTypeLoop   = layers.LinkType(108) // OpenBSD loopback
	linkTypeNFLOG  = layers.LinkType(239) // Linux NFLOG
	linkTypeIPoIB  = layers.LinkType(242) // IP over InfiniBand
	linkTypeIPNet  = layers.LinkType(226) // Solaris ipnet
	linkTypePKTAP  = layers.LinkType(258) // Apple PKTAP
)

// link is the framing a Decoder expects at the start of a packet.
type link uint8

const (
	linkRaw link = iota
	linkEthernet
	linkSLL
	linkSLL2
	linkNull // BSD loopback, address family in host byte order
	linkLoop // OpenBSD loopback, address family in network byte order
	linkNFLOG
	linkCHDLC
	linkPPP
	linkIPoIB
	linkIPNet
	linkPKTAP
)

// Decoder decodes packets into Segments in place. It allocates nothing.
// A Decoder is not safe for concurrent use: give each goroutine its own.
type Decoder struct {
	link  link
	via   Via       // what the packet being decoded came through so far
	vlans [2]uint16 // its first two VLAN IDs
	tags  int       // how many VLAN tags it carried
	depth int       // headers followed so far
	limit int       // where the outermost frame ended on the wire
}

// NewDecoder returns a Decoder for packets that start with the given link
// type: layers.LinkTypeRaw (an IPv4 or IPv6 header, as NFQUEUE delivers;
// also DLT 12, LinkTypeIPv4, LinkTypeIPv6), LinkTypeEthernet,
// LinkTypeLinuxSLL, LinkTypeLinuxSLL2, LinkTypeNull (BSD loopback), 108
// (OpenBSD loopback), LinkTypePPP, 104 (Cisco HDLC), 239 (NFLOG), 242
// (IP over InfiniBand), 226 (Solaris ipnet) or 258 (Apple PKTAP, with any
// of these inside).
// Other link types give an error wrapping errors.ErrUnsupported.
func NewDecoder(lt layers.LinkType) (*Decoder, error) {
	k, ok := linkOf(lt)
	if !ok {
		return nil, fmt.Errorf("segment: link type %v (%d): %w", lt, uint16(lt), errors.ErrUnsupported)
	}
	d := &Decoder{link: k}
	return d, nil
}

// linkOf returns the framing of a link type the decoder takes.
func linkOf(lt layers.LinkType) (link, bool) {
	switch lt {
	case layers.LinkTypeRaw, linkTypeRawAlt, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return linkRaw, true
	case layers.LinkTypeEthernet:
		return linkEthernet, true
	case layers.LinkTypeLinuxSLL:
		return linkSLL, true
	case layers.LinkTypeLinuxSLL2:
		return linkSLL2, true
	case layers.LinkTypeNull:
		return linkNull, true
	case linkTypeLoop:
		return linkLoop, true
	case linkTypeNFLOG:
		return linkNFLOG, true
	case linkTypeCHDLC:
		return linkCHDLC, true
	case layers.LinkTypePPP:
		return linkPPP, true
	case linkTypeIPoIB:
		return linkIPoIB, true
	case linkTypeIPNet:
		return linkIPNet, true
	case linkTypePKTAP:
		return linkPKTAP, true
	}
	return 0, false
}

// Decode decodes one packet into seg. It returns ErrNotTCP (unwrapped) for
// well-formed packets that carry no TCP header; malformed or truncated
// headers give another error. seg is only meaningful when the error is nil.
//
// Decode follows VLAN tags (802.1Q, 802.1ad), MPLS labels, 802.3 LLC/SNAP,
// PPPoE, IP in IP, GRE (with ERSPAN), VXLAN (UDP port 4789) and Geneve (UDP
// port 6081) to the TCP inside, and IPv6 extension headers to the TCP
// behind them; seg.Via says which it crossed. The first fragment of a
// fragmented datagram decodes (it carries the TCP header; PayloadLen counts
// the octets in that fragment); later fragments give ErrNotTCP.
//
// Decode does not know how long the packet was on the wire: a packet cut
// short inside its payload (a small snap length, a queue copy range) still
// decodes with the payload length its IP header declares. Use DecodeWire
// when the wire length is known. An IP length field of 0 (TSO, BIG TCP)
// takes the length from the packet. Bytes after the IP packet (Ethernet
// padding) are ignored. Malformed TCP options end option parsing, as they
// do in the receiving stacks, without an error.
func (d *Decoder) Decode(pkt []byte, seg *Segment) error {
	return d.decode(pkt, math.MaxInt, seg)
}

// DecodeWire is Decode for a packet that was wireLen octets long on the
// wire, of which pkt holds the first len(pkt) (a capture record's original
// and captured lengths). A TCP header whose options the capture cut
// decodes from its fixed part (seg.Via has ViaCutHeader). The payload is capped at what the wire carried, as
// Wireshark caps it: an IP length field longer than the frame (seg.Via has
// ViaCapped) does not turn a pure ACK into data. A wireLen below len(pkt)
// counts as len(pkt).
func (d *Decoder) DecodeWire(pkt []byte, wireLen int, seg *Segment) error {
	return d.decode(pkt, max(wireLen, len(pkt)), seg)
}

// decode decodes pkt, whose frame ended on the wire at offset limit.
func (d *Decoder) decode(pkt []byte, limit int, seg *Segment) error {
	if len(pkt) == 0 {
		return errEmpty
	}
	d.via, d.vlans, d.tags, d.depth, d.limit = 0, [2]uint16{}, 0, 0, limit
	return d.linkLayer(pkt, 0, d.link, limit, seg)
}

// linkLayer decodes a link header of the given kind at off.
func (d *Decoder) linkLayer(pkt []byte, off int, kind link, limit int, seg *Segment) error {
	be := binary.BigEndian
	b := pkt[off:]
	switch kind {
	case linkRaw:
		return d.ip(pkt, off, 0, limit, seg)
	case linkEthernet:
		return d.ethernet(pkt, off, limit, seg)
	case linkSLL:
		if len(b) < 16 {
			return ErrTruncated
		}
		if be.Uint16(b[4:]) > 8 {
			return fmt.Errorf("%w: SLL address length %d", errLinkHeader, be.Uint16(b[4:]))
		}
		return d.etherType(pkt, off+16, be.Uint16(b[14:]), limit, seg)
	case linkSLL2:
		if len(b) < 20 {
			return ErrTruncated
		}
		return d.etherType(pkt, off+20, be.Uint16(b[0:]), limit, seg)
	case linkNull, linkLoop:
		if len(b) < 4 {
			return ErrTruncated
		}
		family := be.Uint32(b)
		if kind == linkNull && family > 0xffff {
			family = binary.LittleEndian.Uint32(b) // written in the other byte order
		}
		switch family {
		case 2: // AF_INET everywhere
			return d.ip(pkt, off+4, 4, limit, seg)
		case 10, 24, 28, 30: // AF_INET6: Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			return d.ip(pkt, off+4, 6, limit, seg)
		}
		return ErrNotTCP
	case linkNFLOG:
		return d.nflog(pkt, off, limit, seg)
	case linkCHDLC:
		if len(b) < 4 {
			return ErrTruncated
		}
		return d.etherType(pkt, off+4, be.Uint16(b[2:]), limit, seg)
	case linkPPP:
		return d.ppp(pkt, off, limit, seg)
	case linkIPoIB: // destination and source hardware addresses, then RFC 4391's header
		if len(b) < 44 {
			return ErrTruncated
		}
		return d.etherType(pkt, off+44, be.Uint16(b[40:]), limit, seg)
	case linkIPNet: // Solaris ipnet: version, family, ..., 24 octets
		if len(b) < 24 {
			return ErrTruncated
		}
		switch b[1] {
		case 2:
			return d.ip(pkt, off+24, 4, limit, seg)
		case 26:
			return d.ip(pkt, off+24, 6, limit, seg)
		}
		return ErrNotTCP
	case linkPKTAP: // Apple's PKTAP: its own length and the inner link type, little-endian
		if len(b) < 12 {
			return ErrTruncated
		}
		hlen, inner := int(binary.LittleEndian.Uint32(b)), binary.LittleEndian.Uint32(b[8:])
		if hlen < 12 || inner > 0xffff {
			return fmt.Errorf("%w: PKTAP header length %d, link type %d", errLinkHeader, hlen, inner)
		}
		if len(b) < hlen {
			return ErrTruncated
		}
		k, ok := linkOf(layers.LinkType(inner))
		if !ok || k == linkPKTAP {
			return ErrNotTCP
		}
		return d.linkLayer(pkt, off+hlen, k, limit, seg)
	}
	return ErrNotTCP
}

// ethernet decodes an Ethernet header at off, with 802.3 LLC/SNAP.
func (d *Decoder) ethernet(pkt []byte, off, limit int, seg *Segment) error {
	if len(pkt) < off+14 {
		return ErrTruncated
	}
	typ := binary.BigEndian.Uint16(pkt[off+12:])
	off += 14
	if typ <= 1500 { // an 802.3 length: LLC follows
		if len(pkt) < off+3 {
			return ErrTruncated
		}
		if pkt[off] != 0xaa || pkt[off+1] != 0xaa || pkt[off+2] != 3 {
			return ErrNotTCP // spanning tree, NetBIOS, IPX and the like
		}
		if len(pkt) < off+8 {
			return ErrTruncated
		}
		d.via |= ViaLLC
		typ = binary.BigEndian.Uint16(pkt[off+6:])
		off += 8
	}
	return d.etherType(pkt, off, typ, limit, seg)
}

// Ethernet types the decoder follows.
const (
	etherIPv4    = 0x0800
	etherIPv6    = 0x86dd
	etherDot1Q   = 0x8100
	etherDot1AD  = 0x88a8
	etherQinQOld = 0x9100
	etherMPLS    = 0x8847
	etherMPLSMC  = 0x8848
	etherPPPoE   = 0x8864
	etherTEB     = 0x6558 // transparent Ethernet bridging (GRE, Geneve)
	etherERSPAN2 = 0x88be
	etherERSPAN3 = 0x22eb
	etherPPP     = 0x880b // PPP in GRE version 1 (PPTP)
	etherWCCP    = 0x883e // WCCP redirection in GRE
)

// etherType decodes what follows a header that announced typ at off.
func (d *Decoder) etherType(pkt []byte, off int, typ uint16, limit int, seg *Segment) error {
	be := binary.BigEndian
	for {
		if d.depth++; d.depth > maxDepth {
			return ErrNotTCP
		}
		switch typ {
		case etherIPv4:
			return d.ip(pkt, off, 4, limit, seg)
		case etherIPv6:
			return d.ip(pkt, off, 6, limit, seg)
		case etherDot1Q, etherDot1AD, etherQinQOld:
			if len(pkt) < off+4 {
				return ErrTruncated
			}
			if typ == etherDot1Q {
				d.via |= ViaVLAN
			} else {
				d.via |= ViaQinQ
			}
			if d.tags < len(d.vlans) {
				d.vlans[d.tags] = be.Uint16(pkt[off:]) & 0x0fff
			}
			d.tags++
			typ = be.Uint16(pkt[off+2:])
			off += 4
		case etherMPLS, etherMPLSMC:
			return d.mpls(pkt, off, limit, seg)
		case etherPPPoE:
			if len(pkt) < off+6 {
				return ErrTruncated
			}
			if pkt[off] != 0x11 || pkt[off+1] != 0 {
				return ErrNotTCP // not a PPPoE session packet
			}
			d.via |= ViaPPPoE
			return d.ppp(pkt, off+6, limit, seg)
		case etherPPP:
			return d.ppp(pkt, off, limit, seg)
		case etherTEB:
			// An Ethernet frame is carried as a payload type only by a
			// tunnel (GRE, Geneve); a link-layer header that names it
			// is no framing this decoder knows.
			if !d.via.Tunnelled() {
				return ErrNotTCP
			}
			return d.ethernet(pkt, off, limit, seg)
		default:
			return ErrNotTCP
		}
	}
}

// mpls decodes an MPLS label stack at off and what its bottom label
// carries.
func (d *Decoder) mpls(pkt []byte, off, limit int, seg *Segment) error {
	d.via |= ViaMPLS
	for {
		if len(pkt) < off+4 {
			return ErrTruncated
		}
		bottom := pkt[off+2]&1 != 0
		off += 4
		if bottom {
			break
		}
		if d.depth++; d.depth > maxDepth {
			return ErrNotTCP
		}
	}
	if len(pkt) <= off {
		return ErrTruncated
	}
	// No type field: guess from the first nibble, as Wireshark does.
	switch pkt[off] >> 4 {
	case 4:
		return d.ip(pkt, off, 4, limit, seg)
	case 6:
		return d.ip(pkt, off, 6, limit, seg)
	case 0: // a pseudowire control word, then Ethernet
		return d.ethernet(pkt, off+4, limit, seg)
	}
	return ErrNotTCP
}

// ppp decodes a PPP header (address and control optional, protocol field
// one or two octets) at off.
func (d *Decoder) ppp(pkt []byte, off, limit int, seg *Segment) error {
	if len(pkt) < off+2 {
		return ErrTruncated
	}
	if pkt[off] == 0xff && pkt[off+1] == 0x03 {
		off += 2
		if len(pkt) < off+1 {
			return ErrTruncated
		}
	}
	proto := uint16(pkt[off])
	if proto&1 == 0 { // two-octet protocol field
		if len(pkt) < off+2 {
			return ErrTruncated
		}
		proto = binary.BigEndian.Uint16(pkt[off:])
		off++
	}
	off++
	switch proto {
	case 0x21:
		return d.ip(pkt, off, 4, limit, seg)
	case 0x57:
		return d.ip(pkt, off, 6, limit, seg)
	case 0x281, 0x283: // MPLS unicast, multicast
		return d.mpls(pkt, off, limit, seg)
	}
	return ErrNotTCP
}

// nflog decodes a Linux NFLOG header and its TLVs to the payload TLV.
func (d *Decoder) nflog(pkt []byte, off, limit int, seg *Segment) error {
	if len(pkt) < off+4 {
		return ErrTruncated
	}
	var version byte
	switch pkt[off] {
	case 2:
		version = 4
	case 10:
		version = 6
	default:
		return ErrNotTCP
	}
	off += 4
	for len(pkt) >= off+4 {
		// TLV length and type are in the host byte order of the capturing
		// machine: little-endian in practice.
		l := int(binary.LittleEndian.Uint16(pkt[off:]))
		typ := binary.LittleEndian.Uint16(pkt[off+2:]) & 0x7fff
		if l < 4 {
			return fmt.Errorf("%w: NFLOG TLV length %d", errLinkHeader, l)
		}
		if typ == 9 { // NFULA_PAYLOAD
			return d.ip(pkt, off+4, version, min(limit, off+l), seg)
		}
		off += (l + 3) &^ 3
	}
	return ErrNotTCP // no payload TLV
}

// ip decodes an IP header at off; version is 4 or 6 when the header before
// announced one, 0 for raw IP.
func (d *Decoder) ip(pkt []byte, off int, version byte, limit int, seg *Segment) error {
	if len(pkt) <= off {
		return ErrTruncated
	}
	v := pkt[off] >> 4
	if version != 0 && v != version {
		return errLinkVersion
	}
	if d.depth++; d.depth > maxDepth {
		return ErrNotTCP
	}
	switch v {
	case 4:
		return d.ip4(pkt, off, limit, seg)
	case 6:
		return d.ip6(pkt, off, limit, seg)
	}
	return errVersion
}

// IP protocol numbers the decoder follows.
const (
	protoHopByHop = 0
	protoIPIP     = 4
	protoTCP      = 6
	protoUDP      = 17
	protoIPv6     = 41
	protoRouting  = 43
	protoFragment = 44
	protoGRE      = 47
	protoAH       = 51
	protoDstOpts  = 60
)

// ipEnd returns where an IP packet starting at off with the given length
// field ends, capped at the frame's wire end; length 0 takes the frame.
func (d *Decoder) ipEnd(pkt []byte, off, length, limit int) int {
	frame := min(limit, len(pkt))
	if length == 0 {
		d.via |= ViaZeroLength
		return frame
	}
	end := off + length
	if end > limit {
		d.via |= ViaCapped
		end = limit
	}
	return end
}

func (d *Decoder) ip4(pkt []byte, off, limit int, seg *Segment) error {
	b := pkt[off:]
	if len(b) < 20 {
		return ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return errIHL
	}
	if len(b) < ihl {
		return ErrTruncated
	}
	length := int(binary.BigEndian.Uint16(b[2:]))
	if length != 0 && length < ihl {
		return errIPLength
	}
	for i := 20; i < ihl; { // options: a bad length is a malformed header
		if b[i] == 0 {
			break
		}
		if b[i] == 1 {
			i++
			continue
		}
		if i+1 >= ihl || b[i+1] < 2 || i+int(b[i+1]) > ihl {
			return errIPOption
		}
		i += int(b[i+1])
	}
	frag := binary.BigEndian.Uint16(b[6:])
	proto := b[9]
	if frag&0x1fff != 0 {
		return ErrNotTCP // a later fragment: no TCP header in it
	}
	end := d.ipEnd(pkt, off, length, limit)
	if frag&0x2000 != 0 { // the first fragment of several
		if proto != protoTCP {
			return ErrNotTCP
		}
		d.via |= ViaFragment
	}
	switch proto {
	case protoTCP:
		seg.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), 0)
		seg.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), 0)
		seg.TTL = b[8]
		return d.tcp(pkt, off, ihl, end, seg)
	case protoIPIP, protoIPv6, protoGRE, protoUDP:
		return d.tunnel(pkt, off+ihl, proto, end, seg)
	}
	return ErrNotTCP
}

func (d *Decoder) ip6(pkt []byte, off, limit int, seg *Segment) error {
	b := pkt[off:]
	if len(b) < 40 {
		return ErrTruncated
	}
	length := int(binary.BigEndian.Uint16(b[4:]))
	next, hlen, jumbo := b[6], 40, 0
	for done := false; !done; {
		switch next {
		case protoHopByHop, protoDstOpts, protoRouting, protoAH:
			if len(b) < hlen+2 {
				return ErrTruncated
			}
			l := (int(b[hlen+1]) + 1) * 8
			if next == protoAH {
				l = (int(b[hlen+1]) + 2) * 4
			}
			if len(b) < hlen+l {
				return ErrTruncated
			}
			if next == protoHopByHop && length == 0 {
				jumbo = jumboLength(b[hlen+2 : hlen+l])
			}
			d.via |= ViaIPv6Ext
			next = b[hlen]
			hlen += l
		case protoFragment:
			if len(b) < hlen+8 {
				return ErrTruncated
			}
			fo := binary.BigEndian.Uint16(b[hlen+2:])
			if fo&0xfff8 != 0 {
				return ErrNotTCP // a later fragment: no TCP header in it
			}
			if fo&1 != 0 {
				d.via |= ViaFragment
			}
			d.via |= ViaIPv6Ext
			next = b[hlen]
			hlen += 8
		default:
			done = true
		}
		if d.depth++; d.depth > maxDepth {
			return ErrNotTCP
		}
	}
	if length != 0 && 40+length < hlen {
		return errIPLength
	}
	if length == 0 && jumbo != 0 {
		length = jumbo - 40 // jumboLength counts from the start of the IPv6 header
	}
	end := 0
	if length == 0 {
		end = d.ipEnd(pkt, off, 0, limit)
	} else {
		end = d.ipEnd(pkt, off, 40+length, limit)
	}
	if d.via&ViaFragment != 0 && next != protoTCP {
		return ErrNotTCP
	}
	switch next {
	case protoTCP:
		seg.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), 0)
		seg.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), 0)
		seg.TTL = b[7]
		return d.tcp(pkt, off, hlen, end, seg)
	case protoIPIP, protoIPv6, protoGRE, protoUDP:
		return d.tunnel(pkt, off+hlen, next, end, seg)
	}
	return ErrNotTCP
}

// jumboLength returns 40 plus the Jumbo Payload option's length (RFC 2675)
// among hop-by-hop options, or 0 when there is none.
func jumboLength(opts []byte) int {
	for i := 0; i < len(opts); {
		if opts[i] == 0 { // Pad1
			i++
			continue
		}
		if i+2 > len(opts) || i+2+int(opts[i+1]) > len(opts) {
			return 0
		}
		if opts[i] == 0xc2 && opts[i+1] == 4 {
			return 40 + int(binary.BigEndian.Uint32(opts[i+2:]))
		}
		i += 2 + int(opts[i+1])
	}
	return 0
}

// UDP ports of the tunnels the decoder follows (IANA's, as Wireshark's
// defaults).
const (
	portVXLAN  = 4789
	portGeneve = 6081
)

// tunnel decodes what an IP header whose protocol is proto carries at off,
// up to end.
func (d *Decoder) tunnel(pkt []byte, off int, proto byte, end int, seg *Segment) error {
	be := binary.BigEndian
	switch proto {
	case protoIPIP:
		d.via |= ViaIPinIP
		return d.ip(pkt, off, 4, end, seg)
	case protoIPv6:
		d.via |= ViaIPinIP
		return d.ip(pkt, off, 6, end, seg)
	case protoGRE:
		if len(pkt) < off+4 {
			return ErrTruncated
		}
		flags, typ := be.Uint16(pkt[off:]), be.Uint16(pkt[off+2:])
		hlen := 4
		switch flags & 7 {
		case 0:
			if flags&0x4000 != 0 {
				return ErrNotTCP // source routing (RFC 1701): obsolete
			}
			if flags&0x8000 != 0 { // checksum and reserved
				hlen += 4
			}
		case 1: // enhanced GRE (PPTP): key always, acknowledgment optional
			if typ != etherPPP {
				return ErrNotTCP
			}
			if flags&0x0080 != 0 {
				hlen += 4
			}
		default:
			return ErrNotTCP
		}
		if flags&0x2000 != 0 { // key
			hlen += 4
		}
		if flags&0x1000 != 0 { // sequence number
			hlen += 4
		}
		off += hlen
		d.via |= ViaGRE
		switch typ {
		case etherERSPAN2: // type II has a sequence number and an 8-octet header; type I neither
			if flags&0x1000 != 0 {
				off += 8
			}
			return d.ethernet(pkt, off, end, seg)
		case etherWCCP: // a 4-octet redirect header (WCCPv2) unless IPv4 follows at once (v1)
			if len(pkt) <= off {
				return ErrTruncated
			}
			if pkt[off]>>4 != 4 {
				off += 4
			}
			return d.ip(pkt, off, 4, end, seg)
		case etherERSPAN3:
			if len(pkt) < off+12 {
				return ErrTruncated
			}
			if pkt[off+11]&1 != 0 { // platform-specific subheader
				off += 8
			}
			return d.ethernet(pkt, off+12, end, seg)
		}
		return d.etherType(pkt, off, typ, end, seg)
	case protoUDP:
		if len(pkt) < off+8 {
			return ErrTruncated
		}
		switch be.Uint16(pkt[off+2:]) {
		case portVXLAN:
			if len(pkt) < off+16 {
				return ErrTruncated
			}
			d.via |= ViaVXLAN
			return d.ethernet(pkt, off+16, end, seg)
		case portGeneve:
			g := off + 8
			if len(pkt) < g+8 {
				return ErrTruncated
			}
			if pkt[g]>>6 != 0 {
				return ErrNotTCP // a Geneve version this decoder does not know
			}
			d.via |= ViaGeneve
			return d.etherType(pkt, g+8+int(pkt[g]&0x3f)*4, be.Uint16(pkt[g+2:]), end, seg)
		}
	}
	return ErrNotTCP
}

// tcp decodes the TCP header of the IP packet at off whose headers
// (extensions included) are ihl long and which ends at end.
func (d *Decoder) tcp(pkt []byte, off, ihl, end int, seg *Segment) error {
	t := pkt[off+ihl:]
	if len(t) < 20 {
		return ErrTruncated
	}
	doff := int(t[12]>>4) * 4
	if doff < 20 {
		return errDataOffset
	}
	if len(t) < doff {
		if limit := d.limit; limit <= len(pkt) || limit == math.MaxInt {
			return ErrTruncated
		}
		// The capture's snap length cut the options: what the fixed
		// header says is all there is, as Wireshark reads it.
		d.via |= ViaCutHeader
	}
	if off+ihl+doff > end {
		if d.via&ViaCapped != 0 {
			return ErrTruncated // the frame was shorter on the wire than the headers
		}
		return errIPLength
	}
	be := binary.BigEndian
	seg.Src = netip.AddrPortFrom(seg.Src.Addr(), be.Uint16(t[0:]))
	seg.Dst = netip.AddrPortFrom(seg.Dst.Addr(), be.Uint16(t[2:]))
	seg.Seq, seg.Ack = Seq(be.Uint32(t[4:])), Seq(be.Uint32(t[8:]))
	seg.Flags = Flags(t[13])
	seg.Window = be.Uint16(t[14:])
	seg.PayloadLen = end - off - ihl - doff
	seg.TCPHeaderLen = doff
	seg.IPHeaderLen = ihl
	seg.Via = d.via
	seg.VLAN, seg.InnerVLAN = d.vlans[0], d.vlans[1]
	seg.WindowScale, seg.MSS = -1, 0
	opts := t[20:min(doff, len(t))]
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == 0 { // end of option list
			break
		}
		if kind == 1 { // NOP
			i++
			continue
		}
		if i+1 >= len(opts) {
			break
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			break // a length that cannot be followed ends the options
		}
		switch {
		case kind == 2 && l == 4:
			seg.MSS = be.Uint16(opts[i+2:])
		case kind == 3 && l == 3:
			seg.WindowScale = int8(min(opts[i+2], maxWindowScale))
		}
		i += l
	}
	return nil
}

// maxWindowScale is the largest shift RFC 7323 section 2.3 allows; a
// receiver uses it in place of any larger value.
const maxWindowScale = 14
