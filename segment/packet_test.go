package segment

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// This file builds test packets with gopacket's serialisers, so that what
// the tests expect does not come from the code under test.

var (
	cli4 = netip.MustParseAddrPort("192.168.7.10:43512")
	dev4 = netip.MustParseAddrPort("192.168.7.77:80")
	cli6 = netip.MustParseAddrPort("[fd00:7::10]:43512")
	dev6 = netip.MustParseAddrPort("[fd00:7::77]:80")

	cliMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x07, 0x10}
	devMAC = net.HardwareAddr{0x5c, 0xcf, 0x7f, 0x00, 0x07, 0x77}
)

// Common TCP options, as Linux and lwIP send them.
var (
	optNOP      = layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	optEOL      = layers.TCPOption{OptionType: layers.TCPOptionKindEndList}
	optSACKPerm = layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted}
)

func optMSS(v uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionData: binary.BigEndian.AppendUint16(nil, v)}
}

func optWS(shift byte) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{shift}}
}

func optTS(val, echo uint32) layers.TCPOption {
	d := binary.BigEndian.AppendUint32(nil, val)
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionData: binary.BigEndian.AppendUint32(d, echo)}
}

func optSACK(blocks ...uint32) layers.TCPOption {
	var d []byte
	for _, b := range blocks {
		d = binary.BigEndian.AppendUint32(d, b)
	}
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionData: d}
}

// linuxSYN is the option list of a Linux SYN: MSS, SACK permitted,
// timestamps, NOP, window scale 7 (20 octets).
func linuxSYN() []layers.TCPOption {
	return []layers.TCPOption{optMSS(1460), optSACKPerm, optTS(0x11223344, 0), optNOP, optWS(7)}
}

// pkt describes one TCP/IP packet to serialise.
type pkt struct {
	src, dst netip.AddrPort // IPv4 or IPv6 by src
	flags    Flags
	seq, ack uint32
	window   uint16
	ttl      uint8
	urgent   uint16
	opts     []layers.TCPOption
	payload  []byte
	ipOpts   []layers.IPv4Option // IPv4 only
	hbh      bool                // IPv6 only: add an 8-octet hop-by-hop header
	tos      uint8
	id       uint16
}

// layers returns the IP layer (IPv4 or IPv6) and TCP layer for p, wired
// for checksums.
func (p pkt) layers() (ip gopacket.SerializableLayer, tcp *layers.TCP) {
	tcp = &layers.TCP{
		SrcPort: layers.TCPPort(p.src.Port()),
		DstPort: layers.TCPPort(p.dst.Port()),
		Seq:     p.seq,
		Ack:     p.ack,
		Window:  p.window,
		Urgent:  p.urgent,
		FIN:     p.flags&FIN != 0,
		SYN:     p.flags&SYN != 0,
		RST:     p.flags&RST != 0,
		PSH:     p.flags&PSH != 0,
		ACK:     p.flags&ACK != 0,
		URG:     p.flags&URG != 0,
		ECE:     p.flags&ECE != 0,
		CWR:     p.flags&CWR != 0,
		Options: append([]layers.TCPOption(nil), p.opts...),
	}
	if p.src.Addr().Is4() {
		ip4 := &layers.IPv4{
			Version:  4,
			TOS:      p.tos,
			Id:       p.id,
			Flags:    layers.IPv4DontFragment,
			TTL:      p.ttl,
			Protocol: layers.IPProtocolTCP,
			SrcIP:    p.src.Addr().AsSlice(),
			DstIP:    p.dst.Addr().AsSlice(),
			Options:  p.ipOpts,
		}
		tcp.SetNetworkLayerForChecksum(ip4)
		return ip4, tcp
	}
	ip6 := &layers.IPv6{
		Version:    6,
		NextHeader: layers.IPProtocolTCP,
		HopLimit:   p.ttl,
		SrcIP:      p.src.Addr().AsSlice(),
		DstIP:      p.dst.Addr().AsSlice(),
	}
	tcp.SetNetworkLayerForChecksum(ip6)
	return ip6, tcp
}

// hbhHeader is an 8-octet IPv6 hop-by-hop header with a PadN option,
// followed by TCP.
var hbhHeader = gopacket.Payload{6, 0, 1, 4, 0, 0, 0, 0}

// raw serialises p as a raw IP packet with correct lengths and checksums.
func (p pkt) raw(t testing.TB) []byte {
	t.Helper()
	ip, tcp := p.layers()
	ls := []gopacket.SerializableLayer{ip}
	if p.hbh {
		ip.(*layers.IPv6).NextHeader = layers.IPProtocolIPv6HopByHop
		ls = append(ls, hbhHeader)
	}
	ls = append(ls, tcp, gopacket.Payload(p.payload))
	return serialize(t, ls...)
}

// want returns the Segment Decode must produce for p, worked out from the
// description alone.
func (p pkt) want() Segment {
	s := Segment{
		Src: p.src, Dst: p.dst, Flags: p.flags, Seq: Seq(p.seq), Ack: Seq(p.ack),
		Window: p.window, PayloadLen: len(p.payload), WindowScale: -1, TTL: p.ttl,
		IPHeaderLen: 40, TCPHeaderLen: 20,
	}
	if p.src.Addr().Is4() {
		s.IPHeaderLen = 20
		for _, o := range p.ipOpts {
			if o.OptionType <= 1 {
				s.IPHeaderLen++
			} else {
				s.IPHeaderLen += 2 + len(o.OptionData)
			}
		}
		s.IPHeaderLen = (s.IPHeaderLen + 3) &^ 3
	} else if p.hbh {
		s.IPHeaderLen += len(hbhHeader)
		s.Via |= ViaIPv6Ext
	}
	for _, o := range p.opts {
		switch o.OptionType {
		case layers.TCPOptionKindNop, layers.TCPOptionKindEndList:
			s.TCPHeaderLen++
			continue
		case layers.TCPOptionKindWindowScale:
			s.WindowScale = int8(min(o.OptionData[0], 14))
		case layers.TCPOptionKindMSS:
			s.MSS = binary.BigEndian.Uint16(o.OptionData)
		}
		s.TCPHeaderLen += 2 + len(o.OptionData)
	}
	s.TCPHeaderLen = (s.TCPHeaderLen + 3) &^ 3
	return s
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// framing wraps a raw IP packet in a link header.
type framing struct {
	name string
	link layers.LinkType
	wrap func(t testing.TB, ip []byte) []byte
}

var framings = []framing{
	{"raw", layers.LinkTypeRaw, func(_ testing.TB, ip []byte) []byte { return ip }},
	{"ethernet", layers.LinkTypeEthernet, ethernet},
	{"sll", layers.LinkTypeLinuxSLL, sll},
	{"sll2", layers.LinkTypeLinuxSLL2, sll2},
}

func ethType(ip []byte) layers.EthernetType {
	if len(ip) > 0 && ip[0]>>4 == 6 {
		return layers.EthernetTypeIPv6
	}
	return layers.EthernetTypeIPv4
}

func ethernet(t testing.TB, ip []byte) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: cliMAC, DstMAC: devMAC, EthernetType: ethType(ip)}, gopacket.Payload(ip))
}

// sll writes a Linux cooked (v1) header: packet type, ARPHRD_ETHER, address
// length 6, the address padded to 8 octets, protocol.
func sll(_ testing.TB, ip []byte) []byte {
	h := make([]byte, 16, 16+len(ip))
	binary.BigEndian.PutUint16(h[0:], 4) // sent by us
	binary.BigEndian.PutUint16(h[2:], 1)
	binary.BigEndian.PutUint16(h[4:], 6)
	copy(h[6:], cliMAC)
	binary.BigEndian.PutUint16(h[14:], uint16(ethType(ip)))
	return append(h, ip...)
}

// sll2 writes a Linux cooked v2 header: protocol, reserved, interface
// index, ARPHRD_ETHER, packet type, address length, address.
func sll2(_ testing.TB, ip []byte) []byte {
	h := make([]byte, 20, 20+len(ip))
	binary.BigEndian.PutUint16(h[0:], uint16(ethType(ip)))
	binary.BigEndian.PutUint32(h[4:], 3)
	binary.BigEndian.PutUint16(h[8:], 1)
	h[10] = 0
	h[11] = 6
	copy(h[12:], cliMAC)
	return append(h, ip...)
}

func newDecoder(t testing.TB, link layers.LinkType) *Decoder {
	t.Helper()
	d, err := NewDecoder(link)
	if err != nil {
		t.Fatalf("NewDecoder(%v): %v", link, err)
	}
	return d
}

// payload returns n bytes of text.
func payload(n int) []byte {
	const text = "HEAD / HTTP/1.1\r\nHost: nodemcu\r\n\r\n"
	b := make([]byte, n)
	for i := range b {
		b[i] = text[i%len(text)]
	}
	return b
}

// cmpAddr lets cmp compare Segments, whose netip values have unexported
// fields.
var cmpAddr = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
