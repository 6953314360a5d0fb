package segment

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// decodeCases are well-formed TCP packets; each decodes to pkt.want() under
// every framing.
func decodeCases() []struct {
	name string
	p    pkt
} {
	return []struct {
		name string
		p    pkt
	}{
		{"v4 linux SYN", pkt{src: cli4, dst: dev4, flags: SYN, seq: 0xfffffff0, window: 64240, ttl: 64, opts: linuxSYN()}},
		{"v4 lwIP SYN+ACK MSS only", pkt{src: dev4, dst: cli4, flags: SYN | ACK, seq: 6510, ack: 0xfffffff1, window: 5840, ttl: 255, opts: []layers.TCPOption{optMSS(1460)}}},
		{"v4 SYN+ACK MSS SACK-perm TS WS", pkt{src: cli4, dst: dev4, flags: SYN | ACK, seq: 1, ack: 2, window: 65160, ttl: 64, opts: []layers.TCPOption{optMSS(1400), optSACKPerm, optTS(5, 6), optNOP, optWS(0)}}},
		{"v4 PSH+ACK with timestamps and payload", pkt{src: cli4, dst: dev4, flags: PSH | ACK, seq: 100, ack: 200, window: 502, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(7, 8)}, payload: payload(77)}},
		{"v4 PSH+ACK odd payload no options", pkt{src: dev4, dst: cli4, flags: PSH | ACK, seq: 4000000000, ack: 17, window: 5840, ttl: 255, payload: payload(1)}},
		{"v4 ACK with SACK blocks", pkt{src: cli4, dst: dev4, flags: ACK, seq: 9, ack: 10, window: 500, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(1, 2), optNOP, optNOP, optSACK(100, 200, 300, 400)}}},
		{"v4 FIN+ACK", pkt{src: dev4, dst: cli4, flags: FIN | ACK, seq: 6600, ack: 1, window: 5840, ttl: 255}},
		{"v4 RST", pkt{src: cli4, dst: dev4, flags: RST, seq: 77, window: 0, ttl: 64}},
		{"v4 RST+ACK", pkt{src: cli4, dst: dev4, flags: RST | ACK, seq: 0, ack: 6601, ttl: 64}},
		{"v4 no flags", pkt{src: cli4, dst: dev4, seq: 5, ttl: 1}},
		{"v4 all flags", pkt{src: cli4, dst: dev4, flags: 0xff, seq: 5, ttl: 1, urgent: 3, payload: payload(4)}},
		{"v4 ECE+CWR+SYN", pkt{src: cli4, dst: dev4, flags: SYN | ECE | CWR, ttl: 64, opts: []layers.TCPOption{optMSS(536)}}},
		{"v4 IP options", pkt{src: cli4, dst: dev4, flags: ACK, seq: 1, ack: 1, ttl: 64, ipOpts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}, payload: payload(3)}},
		{"v4 window scale above 14 reads 14", pkt{src: cli4, dst: dev4, flags: SYN, ttl: 64, opts: []layers.TCPOption{optWS(200)}}},
		{"v4 window scale 255 is not absent", pkt{src: cli4, dst: dev4, flags: SYN, ttl: 64, opts: []layers.TCPOption{optWS(255)}}},
		{"v4 options ending in EOL", pkt{src: cli4, dst: dev4, flags: SYN, ttl: 64, opts: []layers.TCPOption{optMSS(1000), optEOL}}},
		{"v6 linux SYN", pkt{src: cli6, dst: dev6, flags: SYN, seq: 1, window: 64800, ttl: 64, opts: linuxSYN()}},
		{"v6 SYN+ACK MSS only", pkt{src: dev6, dst: cli6, flags: SYN | ACK, seq: 2, ack: 2, window: 5760, ttl: 255, opts: []layers.TCPOption{optMSS(1440)}}},
		{"v6 PSH+ACK payload", pkt{src: cli6, dst: dev6, flags: PSH | ACK, seq: 2, ack: 3, window: 507, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(1, 2)}, payload: payload(35)}},
		{"v6 FIN+ACK", pkt{src: dev6, dst: cli6, flags: FIN | ACK, seq: 3, ack: 37, ttl: 255}},
		{"v6 RST", pkt{src: cli6, dst: dev6, flags: RST, seq: 37, ttl: 64}},
		{"v6 RST+ACK", pkt{src: cli6, dst: dev6, flags: RST | ACK, seq: 37, ack: 4, ttl: 64}},
		{"v6 hop-by-hop header", pkt{src: cli6, dst: dev6, flags: ACK, seq: 37, ack: 4, ttl: 1, hbh: true, payload: payload(9)}},
		{"v6 v4-mapped addresses", pkt{src: mapped(cli4), dst: mapped(dev4), flags: ACK, ttl: 64}},
	}
}

// mapped returns the IPv4-mapped IPv6 form of an IPv4 address and port.
func mapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}

// decodeCase returns the decodeCases packet with the given name.
func decodeCase(t testing.TB, name string) pkt {
	for _, c := range decodeCases() {
		if c.name == name {
			return c.p
		}
	}
	t.Fatalf("no decode case %q", name)
	return pkt{}
}

func TestDecode(t *testing.T) {
	for _, f := range framings {
		d := newDecoder(t, f.link)
		for _, c := range decodeCases() {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				frame := f.wrap(t, c.p.raw(t))
				got := Segment{WindowScale: 99, MSS: 99} // stale values must go
				if err := d.Decode(frame, &got); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if diff := cmp.Diff(c.p.want(), got, cmpAddr); diff != "" {
					t.Errorf("segment (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestDecodeRawLinkTypes checks that every link type meaning "raw IP"
// takes both IP versions.
func TestDecodeRawLinkTypes(t *testing.T) {
	p4, p6 := decodeCase(t, "v4 linux SYN"), decodeCase(t, "v6 linux SYN")
	for _, lt := range []layers.LinkType{layers.LinkTypeRaw, 12, layers.LinkTypeIPv4, layers.LinkTypeIPv6} {
		d := newDecoder(t, lt)
		for _, p := range []pkt{p4, p6} {
			var got Segment
			if err := d.Decode(p.raw(t), &got); err != nil {
				t.Fatalf("link %d: Decode: %v", lt, err)
			}
			if diff := cmp.Diff(p.want(), got, cmpAddr); diff != "" {
				t.Errorf("link %d: segment (-want +got):\n%s", lt, diff)
			}
		}
	}
}

func TestNewDecoderRejectsUnknownLink(t *testing.T) {
	if _, err := NewDecoder(layers.LinkTypeIEEE802_11); err == nil {
		t.Fatal("NewDecoder(802.11) succeeded, want an error")
	}
}

// TestDecodeEthernetPadding: a short frame padded to the Ethernet minimum
// of 60 octets must not count the padding as IP header or payload.
func TestDecodeEthernetPadding(t *testing.T) {
	for _, p := range []pkt{
		{src: cli4, dst: dev4, flags: ACK, seq: 1, ack: 2, ttl: 64},
		{src: cli4, dst: dev4, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, payload: payload(3)},
		{src: cli6, dst: dev6, flags: ACK, seq: 1, ack: 2, ttl: 64},
	} {
		frame := ethernet(t, p.raw(t))
		for len(frame) < 60+8 { // minimum payload, then an FCS-like trailer
			frame = append(frame, 0xee)
		}
		var got Segment
		if err := newDecoder(t, layers.LinkTypeEthernet).Decode(frame, &got); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if diff := cmp.Diff(p.want(), got, cmpAddr); diff != "" {
			t.Errorf("%v: segment (-want +got):\n%s", p.flags, diff)
		}
		// Raw IP with trailing bytes too.
		raw := append(p.raw(t), 0, 0, 0, 0, 0, 0)
		if err := newDecoder(t, layers.LinkTypeRaw).Decode(raw, &got); err != nil {
			t.Fatalf("Decode raw: %v", err)
		}
		if diff := cmp.Diff(p.want(), got, cmpAddr); diff != "" {
			t.Errorf("raw %v: segment (-want +got):\n%s", p.flags, diff)
		}
	}
}

// TestDecodeCutPayload: a packet cut inside its payload (snap length)
// decodes with the payload length its IP header declares; one cut inside
// a header fails.
func TestDecodeCutPayload(t *testing.T) {
	for _, p := range []pkt{
		{src: cli4, dst: dev4, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(1, 2)}, payload: payload(50)},
		{src: cli6, dst: dev6, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(1, 2)}, payload: payload(50)},
		{src: cli6, dst: dev6, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, hbh: true, payload: payload(50)},
	} {
		for _, f := range framings {
			d := newDecoder(t, f.link)
			frame := f.wrap(t, p.raw(t))
			want := p.want()
			headers := len(frame) - len(p.payload)
			for n := 0; n < len(frame); n++ {
				var got Segment
				err := d.Decode(frame[:n], &got)
				if n < headers {
					if err == nil || errors.Is(err, ErrNotTCP) {
						t.Errorf("%s %v: cut at %d of %d headers: err = %v, want a decode error", f.name, p.src, n, headers, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s %v: cut at %d in the payload: %v", f.name, p.src, n, err)
				}
				if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
					t.Fatalf("%s %v: cut at %d: segment (-want +got):\n%s", f.name, p.src, n, diff)
				}
			}
		}
	}
}

// ip4Of and ip6Of serialise non-TCP packets.
func ip4Of(t testing.TB, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: cli4.Addr().AsSlice(), DstIP: dev4.Addr().AsSlice()}
	for _, l := range ls {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			c.SetNetworkLayerForChecksum(ip)
		}
	}
	return serialize(t, append([]gopacket.SerializableLayer{ip}, ls...)...)
}

func ip6Of(t testing.TB, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: cli6.Addr().AsSlice(), DstIP: dev6.Addr().AsSlice()}
	for _, l := range ls {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			c.SetNetworkLayerForChecksum(ip)
		}
	}
	return serialize(t, append([]gopacket.SerializableLayer{ip}, ls...)...)
}

// TestDecodeNotTCP: well-formed packets that are not (whole, untunnelled)
// TCP segments give ErrNotTCP itself, which callers compare with ==.
func TestDecodeNotTCP(t *testing.T) {
	tcp4 := (&pkt{src: cli4, dst: dev4, flags: ACK, ttl: 64, payload: payload(8)}).raw(t)
	tcp6 := (&pkt{src: cli6, dst: dev6, flags: ACK, ttl: 64, payload: payload(8)}).raw(t)
	udp := func() *layers.UDP { return &layers.UDP{SrcPort: 5353, DstPort: 5353} }
	frag := func(flags layers.IPv4Flag, off uint16) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: flags, FragOffset: off, Id: 9, SrcIP: cli4.Addr().AsSlice(), DstIP: dev4.Addr().AsSlice()}
		return serialize(t, ip, gopacket.Payload(tcp4[20:]))
	}
	ip6frag := serialize(t,
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: cli6.Addr().AsSlice(), DstIP: dev6.Addr().AsSlice()},
		gopacket.Payload(append([]byte{6, 0, 0, 8 | 1, 0, 0, 0, 9}, tcp6[40:]...))) // offset 8, more fragments
	cases := []struct {
		name string
		ip   []byte
	}{
		{"v4 UDP", ip4Of(t, layers.IPProtocolUDP, udp(), gopacket.Payload("dns"))},
		{"v6 UDP", ip6Of(t, layers.IPProtocolUDP, udp(), gopacket.Payload("dns"))},
		{"v4 ICMP echo", ip4Of(t, layers.IPProtocolICMPv4, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})},
		{"v6 ICMPv6 echo", ip6Of(t, layers.IPProtocolICMPv6, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload{0, 1, 0, 1})},
		{"v4 middle fragment", frag(layers.IPv4MoreFragments, 3)},
		{"v4 last fragment", frag(0, 3)},
		{"v6 later fragment", ip6frag},
		{"UDP on the VXLAN port carrying ARP", ip4Of(t, layers.IPProtocolUDP, &layers.UDP{SrcPort: 1, DstPort: 4789}, gopacket.Payload(append(make([]byte, 8), arpFrame(t)...)))},
		{"GRE carrying ARP", ip4Of(t, layers.IPProtocolGRE, gopacket.Payload(append([]byte{0, 0, 0x08, 0x06}, arpFrame(t)[14:]...)))},
		{"v4 protocol 0xfd", ip4Of(t, 0xfd, gopacket.Payload(tcp4[20:]))},
	}
	for _, f := range framings {
		d := newDecoder(t, f.link)
		for _, c := range cases {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				var seg Segment
				if err := d.Decode(f.wrap(t, c.ip), &seg); err != ErrNotTCP {
					t.Errorf("Decode = %v, want ErrNotTCP", err)
				}
			})
		}
	}

	// Link payloads that are not IP at all.
	eth := func(typ layers.EthernetType, payload []byte) []byte {
		return serialize(t, &layers.Ethernet{SrcMAC: cliMAC, DstMAC: devMAC, EthernetType: typ}, gopacket.Payload(payload))
	}
	arp := arpFrame(t)
	stp := serialize(t, &layers.Ethernet{SrcMAC: cliMAC, DstMAC: devMAC, EthernetType: layers.EthernetTypeLLC, Length: 38},
		&layers.LLC{DSAP: 0x42, SSAP: 0x42, Control: 3}, gopacket.Payload(make([]byte, 35)))
	for _, c := range []struct {
		name  string
		link  layers.LinkType
		frame []byte
	}{
		{"ethernet ARP", layers.LinkTypeEthernet, arp},
		{"ethernet unknown type", layers.LinkTypeEthernet, eth(0x88b5, tcp4)},
		{"ethernet 802.3 spanning tree", layers.LinkTypeEthernet, stp},
		{"VLAN tag carrying ARP", layers.LinkTypeEthernet, serialize(t, &layers.Ethernet{SrcMAC: cliMAC, DstMAC: devMAC, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeARP}, gopacket.Payload(arp[14:]))},
		{"BSD loopback AF_APPLETALK", layers.LinkTypeNull, append([]byte{16, 0, 0, 0}, tcp4...)},
		{"tags nested beyond the limit", layers.LinkTypeEthernet, deepTags(t, tcp4, 20)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var seg Segment
			if err := newDecoder(t, c.link).Decode(c.frame, &seg); err != ErrNotTCP {
				t.Errorf("Decode = %v, want ErrNotTCP", err)
			}
		})
	}
}

// arpFrame is an Ethernet frame with an ARP request.
func arpFrame(t testing.TB) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: cliMAC, DstMAC: devMAC, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: cliMAC, SourceProtAddress: cli4.Addr().AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: dev4.Addr().AsSlice()})
}

// deepTags wraps ip in Ethernet with n 802.1Q tags.
func deepTags(t testing.TB, ip []byte, n int) []byte {
	f := ethernet(t, ip)
	out := append([]byte(nil), f[:12]...)
	for range n {
		out = append(out, 0x81, 0, 0, 5)
	}
	return append(out, f[12:]...)
}

// TestDecodeMalformed: malformed packets give an error that is not
// ErrNotTCP, and the decoder keeps working afterwards.
func TestDecodeMalformed(t *testing.T) {
	good4 := (&pkt{src: cli4, dst: dev4, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(1, 2)}, payload: payload(10)}).raw(t)
	good6 := (&pkt{src: cli6, dst: dev6, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, payload: payload(10)}).raw(t)
	edit := func(b []byte, f func(b []byte)) []byte {
		b = append([]byte(nil), b...)
		f(b)
		return b
	}
	cases := []struct {
		name string
		link layers.LinkType
		pkt  []byte
	}{
		{"empty", layers.LinkTypeRaw, nil},
		{"version 5", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[0] = 0x55 })},
		{"version 0", layers.LinkTypeRaw, make([]byte, 60)},
		{"v4 one byte", layers.LinkTypeRaw, good4[:1]},
		{"v4 19 bytes", layers.LinkTypeRaw, good4[:19]},
		{"v4 IHL 4", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[0] = 0x44 })},
		{"v4 IHL 0", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[0] = 0x40 })},
		{"v4 IHL 15 beyond total length", layers.LinkTypeRaw, edit(good4[:40], func(b []byte) { b[0] = 0x4f; b[3] = 40 })},
		{"v4 IHL 15 beyond buffer", layers.LinkTypeRaw, edit(good4[:50], func(b []byte) { b[0] = 0x4f })},
		{"v4 total length 19", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[2], b[3] = 0, 19 })},
		{"v4 total length leaves no TCP header", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[2], b[3] = 0, 30 })},
		{"v4 bad IP option length", layers.LinkTypeRaw, edit((&pkt{src: cli4, dst: dev4, ttl: 64, ipOpts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}).raw(t), func(b []byte) { b[21] = 9 })},
		{"v4 TCP data offset 4", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[32] = 0x40 })},
		{"v4 TCP data offset 0", layers.LinkTypeRaw, edit(good4, func(b []byte) { b[32] = 0 })},
		{"v4 TCP data offset 15 beyond packet", layers.LinkTypeRaw, edit(good4[:50], func(b []byte) { b[32] = 0xf0; b[2], b[3] = 0, 50 })},
		{"v4 TCP header cut", layers.LinkTypeRaw, good4[:30]},
		{"v6 39 bytes", layers.LinkTypeRaw, good6[:39]},
		{"v6 payload length leaves no TCP header", layers.LinkTypeRaw, edit(good6, func(b []byte) { b[4], b[5] = 0, 10 })},
		{"v6 TCP data offset 3", layers.LinkTypeRaw, edit(good6, func(b []byte) { b[52] = 0x30 })},
		{"ethernet 13 bytes", layers.LinkTypeEthernet, ethernet(t, good4)[:13]},
		{"ethernet header only", layers.LinkTypeEthernet, ethernet(t, good4)[:14]},
		{"ethernet says IPv4, packet is IPv6", layers.LinkTypeEthernet, edit(ethernet(t, good6), func(b []byte) { b[12], b[13] = 0x08, 0x00 })},
		{"ethernet says IPv6, packet is IPv4", layers.LinkTypeEthernet, edit(append(ethernet(t, good4), make([]byte, 40)...), func(b []byte) { b[12], b[13] = 0x86, 0xdd })},
		{"ethernet says IPv4, version nibble 6", layers.LinkTypeEthernet, edit(ethernet(t, good4), func(b []byte) { b[14] = 0x65 })},
		{"ethernet says IPv6, version nibble 4", layers.LinkTypeEthernet, edit(ethernet(t, good6), func(b []byte) { b[14] = 0x40 })},
		{"sll2 says IPv4, version nibble 6", layers.LinkTypeLinuxSLL2, edit(sll2(t, good4), func(b []byte) { b[20] = 0x65 })},
		{"sll 15 bytes", layers.LinkTypeLinuxSLL, sll(t, good4)[:15]},
		{"sll address length 9", layers.LinkTypeLinuxSLL, edit(sll(t, good4), func(b []byte) { b[5] = 9 })},
		{"sll2 19 bytes", layers.LinkTypeLinuxSLL2, sll2(t, good4)[:19]},
		{"sll2 IPv6 header cut", layers.LinkTypeLinuxSLL2, sll2(t, good6)[:50]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDecoder(t, c.link)
			var seg Segment
			err := d.Decode(c.pkt, &seg)
			if err == nil || errors.Is(err, ErrNotTCP) {
				t.Fatalf("Decode = %v (segment %+v), want a malformed-packet error", err, seg)
			}
			// The decoder still decodes a good packet of its framing.
			frame := good4
			switch c.link {
			case layers.LinkTypeEthernet:
				frame = ethernet(t, good4)
			case layers.LinkTypeLinuxSLL:
				frame = sll(t, good4)
			case layers.LinkTypeLinuxSLL2:
				frame = sll2(t, good4)
			}
			if err := d.Decode(frame, &seg); err != nil {
				t.Fatalf("Decode of a good packet after the bad one: %v", err)
			}
		})
	}
}

// TestDecodeBadTCPOptions: an option whose length cannot be followed ends
// option parsing, as in the receiving stacks; the segment still decodes and
// options before it count.
func TestDecodeBadTCPOptions(t *testing.T) {
	base := pkt{src: cli4, dst: dev4, flags: SYN, seq: 1, window: 8192, ttl: 64,
		opts: []layers.TCPOption{optMSS(1460), optNOP, optWS(3), optNOP, optNOP, optNOP}}
	raw := base.raw(t) // options at 40..51: MSS(4) NOP WS(3) NOP NOP NOP
	cases := []struct {
		name    string
		edit    func(b []byte)
		mss     uint16
		wscale  int8
		comment string
	}{
		{"intact", func([]byte) {}, 1460, 3, ""},
		{"MSS length 0", func(b []byte) { b[41] = 0 }, 0, -1, "stops at once"},
		{"MSS length 1", func(b []byte) { b[41] = 1 }, 0, -1, "stops at once"},
		{"MSS length 3", func(b []byte) { b[41] = 3 }, 0, -1, "MSS of wrong size ignored, the rest is misaligned"},
		{"WS length 2", func(b []byte) { b[46] = 2 }, 1460, -1, "window scale of wrong size ignored"},
		{"WS length runs past header", func(b []byte) { b[46] = 40 }, 1460, -1, "stops at WS"},
		{"EOL before WS", func(b []byte) { b[44] = 0 }, 1460, -1, "stops at EOL"},
	}
	d := newDecoder(t, layers.LinkTypeRaw)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), raw...)
			c.edit(b)
			var got Segment
			if err := d.Decode(b, &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := base.want()
			want.MSS, want.WindowScale = c.mss, c.wscale
			if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
				t.Errorf("segment (-want +got):\n%s", diff)
			}
		})
	}
}
