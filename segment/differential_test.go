package segment

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// randPkt returns a random well-formed TCP packet description.
func randPkt(r *rand.Rand) pkt {
	var p pkt
	if r.IntN(2) == 0 {
		var a, b [4]byte
		fill(r, a[:])
		fill(r, b[:])
		p.src = netip.AddrPortFrom(netip.AddrFrom4(a), uint16(r.Uint32()))
		p.dst = netip.AddrPortFrom(netip.AddrFrom4(b), uint16(r.Uint32()))
		if r.IntN(5) == 0 {
			// Router alert, NOPs, maybe an end-of-list.
			p.ipOpts = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
			for range r.IntN(4) {
				p.ipOpts = append(p.ipOpts, layers.IPv4Option{OptionType: 1, OptionLength: 1})
			}
		}
		p.id = uint16(r.Uint32())
		p.tos = uint8(r.Uint32())
	} else {
		var a, b [16]byte
		fill(r, a[:])
		fill(r, b[:])
		a[0], b[0] = 0xfd, 0xfe // keep them out of the IPv4-mapped range
		p.src = netip.AddrPortFrom(netip.AddrFrom16(a), uint16(r.Uint32()))
		p.dst = netip.AddrPortFrom(netip.AddrFrom16(b), uint16(r.Uint32()))
		p.hbh = r.IntN(5) == 0
	}
	p.flags = Flags(r.Uint32())
	p.seq, p.ack = r.Uint32(), r.Uint32()
	p.window = uint16(r.Uint32())
	p.ttl = uint8(r.Uint32())
	if p.flags&URG != 0 {
		p.urgent = uint16(r.Uint32())
	}
	room := 40
	for range r.IntN(8) {
		var o layers.TCPOption
		switch r.IntN(8) {
		case 0:
			o = optNOP
		case 1:
			o = optMSS(uint16(r.Uint32()))
		case 2:
			o = optWS(uint8(r.IntN(20))) // above 14 too
		case 3:
			o = optSACKPerm
		case 4:
			o = optTS(r.Uint32(), r.Uint32())
		case 5:
			blocks := make([]uint32, 2*(1+r.IntN(3)))
			for i := range blocks {
				blocks[i] = r.Uint32()
			}
			o = optSACK(blocks...)
		case 6:
			o = layers.TCPOption{OptionType: 253, OptionData: []byte{byte(r.Uint32()), byte(r.Uint32())}} // experimental
		case 7:
			o = optNOP
		}
		n := 2 + len(o.OptionData)
		if o.OptionType == layers.TCPOptionKindNop {
			n = 1
		}
		if n > room {
			break
		}
		room -= n
		p.opts = append(p.opts, o)
	}
	if room > 0 && r.IntN(4) == 0 {
		p.opts = append(p.opts, optEOL)
	}
	p.payload = make([]byte, r.IntN(4)*r.IntN(200))
	fill(r, p.payload)
	return p
}

func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// reference decodes frame with gopacket's full decoder and returns the
// Segment it describes.
func reference(t *testing.T, frame []byte, first gopacket.LayerType) Segment {
	t.Helper()
	pk := gopacket.NewPacket(frame, first, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	tcp, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("gopacket found no TCP layer in %v", pk)
	}
	var s Segment
	tags := 0
	for _, l := range pk.Layers() {
		q, ok := l.(*layers.Dot1Q)
		if !ok {
			continue
		}
		s.Via |= ViaVLAN
		if tags == 0 && binary.BigEndian.Uint16(frame[12:]) == uint16(layers.EthernetTypeQinQ) {
			s.Via = ViaQinQ
		}
		switch tags {
		case 0:
			s.VLAN = q.VLANIdentifier
		case 1:
			s.InnerVLAN = q.VLANIdentifier
		}
		tags++
	}
	switch ip := pk.NetworkLayer().(type) {
	case *layers.IPv4:
		src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
		s.Src, s.Dst = netip.AddrPortFrom(src, uint16(tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(tcp.DstPort))
		s.TTL = ip.TTL
		s.IPHeaderLen = len(ip.Contents)
	case *layers.IPv6:
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		s.Src, s.Dst = netip.AddrPortFrom(src, uint16(tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(tcp.DstPort))
		s.TTL = ip.HopLimit
		s.IPHeaderLen = len(ip.Contents)
		if hbh, ok := pk.Layer(layers.LayerTypeIPv6HopByHop).(*layers.IPv6HopByHop); ok {
			s.IPHeaderLen += len(hbh.Contents)
			s.Via |= ViaIPv6Ext
		}
	default:
		t.Fatalf("gopacket network layer %T", ip)
	}
	for i, on := range []bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR} {
		if on {
			s.Flags |= 1 << i
		}
	}
	s.Seq, s.Ack, s.Window = Seq(tcp.Seq), Seq(tcp.Ack), tcp.Window
	s.TCPHeaderLen, s.PayloadLen = len(tcp.Contents), len(tcp.Payload)
	s.WindowScale = -1
	for _, o := range tcp.Options {
		switch {
		case o.OptionType == layers.TCPOptionKindWindowScale && len(o.OptionData) == 1:
			s.WindowScale = int8(min(o.OptionData[0], 14)) // RFC 7323 2.3
		case o.OptionType == layers.TCPOptionKindMSS && len(o.OptionData) == 2:
			s.MSS = uint16(o.OptionData[0])<<8 | uint16(o.OptionData[1])
		}
	}
	return s
}

// TestDecodeDifferential decodes random packets in every framing, some
// with trailing bytes after the IP packet, and checks the Decoder against
// gopacket's full decode and against the description they were built from.
func TestDecodeDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	firsts := map[layers.LinkType]gopacket.LayerType{
		layers.LinkTypeEthernet:  layers.LayerTypeEthernet,
		layers.LinkTypeLinuxSLL:  layers.LayerTypeLinuxSLL,
		layers.LinkTypeLinuxSLL2: layers.LayerTypeLinuxSLL2,
	}
	decs := map[layers.LinkType]*Decoder{}
	for _, f := range framings {
		decs[f.link] = newDecoder(t, f.link)
	}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		p := randPkt(r)
		f := framings[r.IntN(len(framings))]
		frame := f.wrap(t, p.raw(t))
		var tagged Segment // what tags add to the description
		if f.link == layers.LinkTypeEthernet && r.IntN(3) == 0 {
			frame, tagged = tag(frame, r)
		}
		if r.IntN(4) == 0 {
			frame = append(frame, make([]byte, 1+r.IntN(20))...) // padding, trailer
		}
		first, ok := firsts[f.link]
		if !ok {
			first = layers.LayerTypeIPv4
			if frame[0]>>4 == 6 {
				first = layers.LayerTypeIPv6
			}
		}
		want := reference(t, frame, first)
		var got Segment
		if err := decs[f.link].Decode(frame, &got); err != nil {
			t.Fatalf("packet %d (%s, %x): Decode: %v", i, f.name, frame, err)
		}
		if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
			t.Fatalf("packet %d (%s, %x): segment (-gopacket +Decode):\n%s", i, f.name, frame, diff)
		}
		desc := p.want()
		desc.Via |= tagged.Via
		desc.VLAN, desc.InnerVLAN = tagged.VLAN, tagged.InnerVLAN
		if diff := cmp.Diff(desc, got, cmpAddr); diff != "" {
			t.Fatalf("packet %d (%s, %x): segment (-description +Decode):\n%s", i, f.name, frame, diff)
		}
	}
}

// tag inserts one 802.1Q tag, or an 802.1ad tag and an 802.1Q tag, into an
// Ethernet frame, and returns the Via and VLAN IDs they stand for.
func tag(frame []byte, r *rand.Rand) ([]byte, Segment) {
	var s Segment
	out := append([]byte(nil), frame[:12]...)
	inner := uint16(r.IntN(4096))
	if r.IntN(2) == 0 {
		outer := uint16(r.IntN(4096))
		out = binary.BigEndian.AppendUint16(out, uint16(layers.EthernetTypeQinQ))
		out = binary.BigEndian.AppendUint16(out, outer|uint16(r.IntN(8))<<13)
		s.Via, s.VLAN, s.InnerVLAN = ViaQinQ|ViaVLAN, outer, inner
	} else {
		s.Via, s.VLAN = ViaVLAN, inner
	}
	out = binary.BigEndian.AppendUint16(out, uint16(layers.EthernetTypeDot1Q))
	out = binary.BigEndian.AppendUint16(out, inner|uint16(r.IntN(8))<<13)
	return append(out, frame[12:]...), s
}
