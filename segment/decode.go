package segment

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ErrNotTCP is returned by the decoders for a well-formed packet that does
// not carry TCP (or carries a non-first IP fragment).
var ErrNotTCP = errors.New("segment: not a TCP segment")

var (
	errEmpty     = errors.New("segment: empty packet")
	errVersion   = errors.New("segment: IP version is neither 4 nor 6")
	errTruncated = errors.New("segment: truncated packet")
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

// Decode decodes one packet into seg. It returns ErrNotTCP for packets
// that carry no TCP header and another error for malformed ones; seg is
// only meaningful when the error is nil.
func (d *Decoder) Decode(pkt []byte, seg *Segment) error {
	parser := d.link
	if parser == nil {
		if len(pkt) == 0 {
			return errEmpty
		}
		switch pkt[0] >> 4 {
		case 4:
			parser = d.parser4
		case 6:
			parser = d.parser6
		default:
			return errVersion
		}
	}
	if err := parser.DecodeLayers(pkt, &d.decoded); err != nil {
		return fmt.Errorf("segment: decode: %w", err)
	}
	var ipSeen, tcpSeen bool
	var linkLen int
	for _, lt := range d.decoded {
		switch lt {
		case layers.LayerTypeEthernet:
			linkLen = len(d.eth.Contents)
		case layers.LayerTypeLinuxSLL:
			linkLen = len(d.sll.Contents)
		case layers.LayerTypeLinuxSLL2:
			linkLen = len(d.sll2.Contents)
		case layers.LayerTypeIPv4:
			if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 {
				return ErrNotTCP
			}
			src, _ := netip.AddrFromSlice(d.ip4.SrcIP.To4())
			dst, _ := netip.AddrFromSlice(d.ip4.DstIP.To4())
			seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
			seg.TTL = d.ip4.TTL
			ipSeen = true
		case layers.LayerTypeIPv6:
			src, _ := netip.AddrFromSlice(d.ip6.SrcIP)
			dst, _ := netip.AddrFromSlice(d.ip6.DstIP)
			seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
			seg.TTL = d.ip6.HopLimit
			ipSeen = true
		case layers.LayerTypeTCP:
			tcpSeen = true
		}
	}
	if !ipSeen || !tcpSeen {
		if parser.Truncated {
			return errTruncated
		}
		return ErrNotTCP
	}
	t := &d.tcp
	seg.Src = netip.AddrPortFrom(seg.Src.Addr(), uint16(t.SrcPort))
	seg.Dst = netip.AddrPortFrom(seg.Dst.Addr(), uint16(t.DstPort))
	seg.Flags = Flags(t.Contents[13])
	seg.Seq, seg.Ack = Seq(t.Seq), Seq(t.Ack)
	seg.Window = t.Window
	seg.PayloadLen = len(t.Payload)
	seg.TCPHeaderLen = len(t.Contents)
	seg.IPHeaderLen = len(pkt) - linkLen - len(t.Contents) - len(t.Payload)
	seg.WindowScale, seg.MSS = -1, 0
	for i := range t.Options {
		o := &t.Options[i]
		switch o.OptionType {
		case layers.TCPOptionKindWindowScale:
			if len(o.OptionData) == 1 {
				seg.WindowScale = int8(o.OptionData[0])
			}
		case layers.TCPOptionKindMSS:
			if len(o.OptionData) == 2 {
				seg.MSS = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
			}
		}
	}
	return nil
}
