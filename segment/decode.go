package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ErrNotTCP is returned by the decoders for a well-formed packet that does
// not carry a whole TCP segment: another protocol, any IP fragment (the
// first one too), IP in IP, a link header that carries no IP. Decode
// returns it unwrapped.
var ErrNotTCP = errors.New("segment: not a TCP segment")

var (
	errEmpty     = errors.New("segment: empty packet")
	errVersion   = errors.New("segment: IP version is neither 4 nor 6")
	errTruncated = errors.New("segment: truncated packet")
	// errLinkVersion is an IP header whose version is not the one the link
	// header announced.
	errLinkVersion = errors.New("segment: IP version differs from the link header's protocol")
	// errZeroLength is a zero IP length field: IPv4 from a TSO capture or
	// an IPv6 jumbogram. Neither can be rewritten, so neither is decoded.
	errZeroLength = errors.New("segment: IP length field is zero")
)

// Decoder decodes packets into Segments in place. It keeps its layer
// structs between calls, so after the first packets it allocates nothing.
// A Decoder is not safe for concurrent use: give each goroutine its own.
type Decoder struct {
	parser4 *gopacket.DecodingLayerParser // first layer IPv4
	parser6 *gopacket.DecodingLayerParser // first layer IPv6
	link    *gopacket.DecodingLayerParser // first layer the link type; nil for raw IP
	eth     layers.Ethernet
	sll     layers.LinuxSLL
	sll2    layers.LinuxSLL2
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	decoded []gopacket.LayerType
}

// NewDecoder returns a Decoder for packets that start with the given link
// type: layers.LinkTypeRaw (an IPv4 or IPv6 header, as NFQUEUE delivers),
// LinkTypeIPv4, LinkTypeIPv6, LinkTypeEthernet, LinkTypeLinuxSLL or
// LinkTypeLinuxSLL2.
func NewDecoder(link layers.LinkType) (*Decoder, error) {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 8)}
	newParser := func(first gopacket.LayerType) *gopacket.DecodingLayerParser {
		p := gopacket.NewDecodingLayerParser(first, &d.eth, &d.sll, &d.sll2, &d.ip4, &d.ip6, &d.tcp)
		p.IgnoreUnsupported = true
		return p
	}
	d.parser4, d.parser6 = newParser(layers.LayerTypeIPv4), newParser(layers.LayerTypeIPv6)
	switch link {
	case layers.LinkTypeRaw, layers.LinkType(12), layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		// chosen per packet from the version nibble
	case layers.LinkTypeEthernet:
		d.link = newParser(layers.LayerTypeEthernet)
	case layers.LinkTypeLinuxSLL:
		d.link = newParser(layers.LayerTypeLinuxSLL)
	case layers.LinkTypeLinuxSLL2:
		d.link = newParser(layers.LayerTypeLinuxSLL2)
	default:
		return nil, fmt.Errorf("segment: link type %v is not supported", link)
	}
	return d, nil
}

// Decode decodes one packet into seg. It returns ErrNotTCP (unwrapped) for
// well-formed packets that carry no TCP header: other protocols, IP
// fragments, tunnelled IP, stacked link headers. Malformed or truncated
// headers give another error. seg is only meaningful when the error is nil.
//
// A packet cut short inside its payload (a capture with a small snap
// length, a queue copy range) still decodes: PayloadLen is then the payload
// length the IP header declares, not the octets present. Bytes after the IP
// packet (Ethernet padding) are ignored. Malformed TCP options end option
// parsing, as they do in the receiving stacks, without an error.
func (d *Decoder) Decode(pkt []byte, seg *Segment) error {
	if len(pkt) == 0 {
		return errEmpty
	}
	parser := d.link
	if parser == nil {
		switch pkt[0] >> 4 {
		case 4:
			parser = d.parser4
		case 6:
			parser = d.parser6
		default:
			return errVersion
		}
	}
	err := parser.DecodeLayers(pkt, &d.decoded)
	// The IP layer must come first (raw IP) or right after the one link
	// header; anything else (IP in IP, Ethernet in SLL2, VLAN tags) is a
	// packet whose TCP header FixChecksums could not place.
	ipAt, linkLen := 0, 0
	if parser == d.link {
		if len(d.decoded) == 0 {
			return fmt.Errorf("segment: decode link header: %w", err)
		}
		var next gopacket.LayerType
		switch d.decoded[0] {
		case layers.LayerTypeEthernet:
			linkLen, next = len(d.eth.Contents), d.eth.NextLayerType()
		case layers.LayerTypeLinuxSLL:
			linkLen, next = len(d.sll.Contents), d.sll.NextLayerType()
		case layers.LayerTypeLinuxSLL2:
			linkLen, next = len(d.sll2.Contents), d.sll2.NextLayerType()
		}
		if next != layers.LayerTypeIPv4 && next != layers.LayerTypeIPv6 {
			return ErrNotTCP // the link header carries something else
		}
		if len(d.decoded) == 1 && err == nil {
			return errTruncated // nothing after the link header
		}
		ipAt = 1
	}
	if len(d.decoded) <= ipAt {
		return decodeErr(parser, err)
	}
	// Decide from the outer header's own bytes: after IP in IP of one
	// family the layer struct holds the inner header.
	ip := pkt[linkLen:]
	switch d.decoded[ipAt] {
	case layers.LayerTypeIPv4:
		if ip[0]>>4 != 4 {
			return errLinkVersion
		}
		// Not TCP, or a fragment (MF set or an offset).
		if ip[9] != byte(layers.IPProtocolTCP) || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return ErrNotTCP
		}
	case layers.LayerTypeIPv6:
		if ip[0]>>4 != 6 {
			return errLinkVersion
		}
		next := ip[6]
		if next == byte(layers.IPProtocolIPv6HopByHop) {
			next = ip[40] // the IPv6 layer decoded its hop-by-hop header
		}
		if next != byte(layers.IPProtocolTCP) {
			return ErrNotTCP
		}
	default:
		return ErrNotTCP // cannot happen: the link header said IP
	}
	if err != nil {
		return decodeErr(parser, err)
	}
	if len(d.decoded) != ipAt+2 {
		return errTruncated // the IP header says TCP, but nothing follows
	}
	// The IP layer carries TCP, so its struct describes the outer header.
	var ipHeaderLen, ipLen int // IP header with extensions; whole IP packet
	if d.decoded[ipAt] == layers.LayerTypeIPv4 {
		ip := &d.ip4
		if binary.BigEndian.Uint16(ip.Contents[2:4]) == 0 {
			return errZeroLength // gopacket reads 0 as "the rest of the buffer"
		}
		ipHeaderLen, ipLen = len(ip.Contents), int(ip.Length)
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		seg.TTL = ip.TTL
	} else {
		ip := &d.ip6
		if ip.Length == 0 {
			return errZeroLength // jumbogram
		}
		ipHeaderLen, ipLen = len(ip.Contents), len(ip.Contents)+int(ip.Length)
		if ip.HopByHop != nil {
			ipHeaderLen += len(ip.HopByHop.Contents)
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		seg.TTL = ip.HopLimit
	}
	t := &d.tcp
	payloadLen := ipLen - ipHeaderLen - len(t.Contents)
	if payloadLen < 0 || linkLen+ipHeaderLen+len(t.Contents) > len(pkt) {
		return errTruncated
	}
	seg.Src = netip.AddrPortFrom(seg.Src.Addr(), uint16(t.SrcPort))
	seg.Dst = netip.AddrPortFrom(seg.Dst.Addr(), uint16(t.DstPort))
	seg.Flags = Flags(t.Contents[13])
	seg.Seq, seg.Ack = Seq(t.Seq), Seq(t.Ack)
	seg.Window = t.Window
	seg.PayloadLen = payloadLen
	seg.TCPHeaderLen = len(t.Contents)
	seg.IPHeaderLen = ipHeaderLen
	seg.WindowScale, seg.MSS = -1, 0
	for i := range t.Options {
		o := &t.Options[i]
		switch o.OptionType {
		case layers.TCPOptionKindWindowScale:
			if len(o.OptionData) == 1 {
				seg.WindowScale = int8(min(o.OptionData[0], maxWindowScale))
			}
		case layers.TCPOptionKindMSS:
			if len(o.OptionData) == 2 {
				seg.MSS = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
			}
		}
	}
	return nil
}

// maxWindowScale is the largest shift RFC 7323 section 2.3 allows; a
// receiver uses it in place of any larger value.
const maxWindowScale = 14

// decodeErr wraps an error from gopacket, saying when the packet was cut.
func decodeErr(p *gopacket.DecodingLayerParser, err error) error {
	if err == nil {
		return errTruncated
	}
	if p.Truncated {
		return fmt.Errorf("%w: %w", errTruncated, err)
	}
	return fmt.Errorf("segment: decode: %w", err)
}
